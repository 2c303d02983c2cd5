//! `--baseline PATH`: what a baseline rule learnt carries over to the next run.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

mod support;
use support::{assert_success, dbtap};

/// A pack with one baseline rule: statement fingerprints per user, learnt for 5 s of capture
/// time.
const PACK: &str = r#"
[[rule]]
id = "T-BASE"
title = "Statement never seen for this user"
severity = "medium"
category = "policy"
description = "test"
when = { field = "kind", in = ["select", "insert", "update", "delete"] }
baseline = { learn_secs = 5, key = ["user"], value = "fingerprint" }
[rule.examples]
match = [
  { sql = "SELECT 1", ts = "2026-01-01T10:00:00Z" },
  { sql = "SELECT 2 FROM t", ts = "2026-01-01T10:00:10Z" },
]
no_match = [
  { sql = "SELECT 1", ts = "2026-01-01T10:00:00Z" },
  { sql = "SELECT 2", ts = "2026-01-01T10:00:10Z" },
]
"#;

/// A PostgreSQL application session: 84 statements over 41 s, one user.
fn capture() -> PathBuf {
    support::capture("pgsql/greenhouse_app")
}

struct Temp(PathBuf);

impl Temp {
    fn new(tag: &str) -> Temp {
        let dir = std::env::temp_dir().join(format!("dbtap-baseline-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("pack.toml"), PACK).unwrap();
        Temp(dir)
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn replay(dir: &Path, baseline: Option<&Path>) -> Output {
    let mut cmd = dbtap();
    cmd.args(["replay", "--summary", "json", "--summary-file"])
        .arg(dir.join("summary.json"))
        .arg("--records")
        .arg(dir.join("records.jsonl"))
        .arg("--rules")
        .arg(dir.join("pack.toml"));
    if let Some(b) = baseline {
        cmd.arg("--baseline").arg(b);
    }
    cmd.arg(capture()).output().unwrap()
}

fn alerts(dir: &Path, out: &Output) -> u64 {
    assert_success(out);
    let summary: Value =
        serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    summary["alerts"]["total"].as_u64().unwrap()
}

/// Distinct fingerprints of the rule's kinds in the capture's reviewed golden records.
fn fingerprints_in_golden_records() -> usize {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pgsql/greenhouse_app/expected.jsonl"),
    )
    .unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for line in text.lines() {
        let r: Value = serde_json::from_str(line).unwrap();
        if ["select", "insert", "update", "delete"].contains(&r["kind"].as_str().unwrap_or("")) {
            assert_eq!(r["user"], "user");
            seen.insert(r["fingerprint"].as_str().unwrap().to_owned());
        }
    }
    seen.len()
}

#[test]
fn learnt_values_carry_over_to_the_next_run() {
    let t = Temp::new("carry");
    let file = t.0.join("baseline.json");
    // Without a baseline file every run learns from scratch and alerts the same.
    let fresh = alerts(&t.0, &replay(&t.0, None));
    assert!(
        fresh > 0,
        "statements first seen after the learning period alert"
    );
    assert_eq!(alerts(&t.0, &replay(&t.0, None)), fresh);

    // First run with the file: same alerts, and the learnt state is saved.
    assert_eq!(alerts(&t.0, &replay(&t.0, Some(&file))), fresh);
    let saved: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(saved["format"], "dbtap-baseline");
    let rule = &saved["rules"]["T-BASE"];
    assert_eq!(rule["key_fields"], serde_json::json!(["user"]));
    assert_eq!(rule["value_field"], "fingerprint");
    assert_eq!(
        rule["known"]["user"].as_array().unwrap().len(),
        fingerprints_in_golden_records()
    );

    // Second run: every fingerprint is known now, nothing alerts; the file is unchanged.
    assert_eq!(alerts(&t.0, &replay(&t.0, Some(&file))), 0);
    let again: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(again, saved);
}

#[test]
fn a_baseline_learnt_with_other_fields_is_not_used() {
    let t = Temp::new("changed");
    let file = t.0.join("baseline.json");
    alerts(&t.0, &replay(&t.0, Some(&file)));
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace(r#"["user"]"#, r#"["client_program"]"#)).unwrap();
    let out = replay(&t.0, Some(&file));
    let changed = alerts(&t.0, &out);
    let fresh = alerts(&t.0, &replay(&t.0, None));
    assert_eq!(changed, fresh, "learning started over");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("T-BASE changed their key or value fields"),
        "{stderr}"
    );
}

#[test]
fn an_unreadable_baseline_file_stops_the_run_and_is_kept() {
    let t = Temp::new("bad");
    let file = t.0.join("baseline.json");
    std::fs::write(&file, "{ not json").unwrap();
    let out = replay(&t.0, Some(&file));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("baseline.json: not a dbtap baseline file (line 1, column 3"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "{ not json");
}
