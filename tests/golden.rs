//! Golden tests: every capture under `fixtures/<protocol>/<case>/` replays to exactly its
//! `expected.jsonl`, with 1 worker and with several.
//!
//! To regenerate after a deliberate change: `DBTAP_BLESS=1 cargo test --test golden`, then review
//! the diff of every `expected.jsonl` before committing it.
//!
//! A case folder holds one capture (`*.pcap`, `*.pcapng`, `*.cap`, optionally `.gz`), the
//! `expected.jsonl`, a `README.md` saying where the capture came from and what the case covers,
//! optionally `ports` (lines of `NAME=PORT`, as `--port`) and optionally `secrets` (lines of
//! strings the capture carries that must appear nowhere in the output: passwords sent in
//! parameters, …).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dbtap::engine::EngineConfig;
use dbtap::pipeline::{PipelineConfig, Progress};
use dbtap::registry::Registry;
use dbtap::replay::replay;

fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// All case folders (those with an `expected.jsonl` or a capture), sorted.
fn cases() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(protocols) = std::fs::read_dir(fixtures_root()) else {
        return out;
    };
    for proto in protocols.flatten() {
        if proto.file_name() == "capture" || !proto.path().is_dir() {
            continue; // capture-layer fixtures have their own tests
        }
        for case in std::fs::read_dir(proto.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if case.path().is_dir() && capture_of(&case.path()).is_some() {
                out.push(case.path());
            }
        }
    }
    out.sort();
    out
}

fn capture_of(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            [".pcap", ".pcapng", ".cap", ".pcap.gz", ".pcapng.gz"]
                .iter()
                .any(|ext| name.ends_with(ext))
        })
        .collect();
    found.sort();
    found.into_iter().next()
}

fn config(dir: &Path, workers: usize) -> PipelineConfig {
    let mut registry = Registry::default();
    if let Ok(ports) = std::fs::read_to_string(dir.join("ports")) {
        for line in ports
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let (name, port) = line.split_once('=').expect("ports: NAME=PORT");
            registry
                .force_port(name, port.parse().expect("ports: a port number"))
                .expect("known protocol");
        }
    }
    PipelineConfig {
        workers,
        engine: EngineConfig {
            registry,
            ..Default::default()
        },
        alerts: None,
        baseline: None,
    }
}

fn run_case(dir: &Path, workers: usize) -> Vec<u8> {
    let capture = capture_of(dir).expect("a capture file");
    let mut out = Vec::new();
    let report = replay(
        &[capture],
        &config(dir, workers),
        Arc::new(Progress::default()),
        &mut out,
    )
    .expect("replay");
    // A damaged capture is a case of its own: its README quotes the error, checked here.
    if let Some(e) = report.files.iter().find_map(|f| f.error.as_ref()) {
        let readme = std::fs::read_to_string(dir.join("README.md")).unwrap_or_default();
        let tail = e.split_once(": at byte ").map_or(e.as_str(), |(_, t)| t);
        assert!(
            readme.contains(&format!("at byte {tail}")),
            "{}: unexpected input error: {e}",
            dir.display()
        );
    }
    out
}

fn first_difference(expected: &str, got: &str) -> String {
    for (i, (e, g)) in expected.lines().zip(got.lines()).enumerate() {
        if e != g {
            return format!("line {}:\n  expected: {e}\n  got:      {g}", i + 1);
        }
    }
    format!(
        "line counts differ: expected {}, got {}",
        expected.lines().count(),
        got.lines().count()
    )
}

#[test]
fn every_case_replays_to_its_expected_records() {
    let bless = std::env::var_os("DBTAP_BLESS").is_some();
    let cases = cases();
    assert!(
        !cases.is_empty(),
        "no fixtures found under {}",
        fixtures_root().display()
    );
    let mut failures = Vec::new();
    for dir in &cases {
        let got = String::from_utf8(run_case(dir, 1)).expect("records are UTF-8");
        // Checked before blessing: a leak must never become the expected output.
        if let Ok(secrets) = std::fs::read_to_string(dir.join("secrets")) {
            for secret in secrets.lines().filter(|l| !l.is_empty()) {
                assert!(
                    !got.contains(secret),
                    "{}: the secret {secret:?} reached the output",
                    dir.display()
                );
            }
        }
        let expected_path = dir.join("expected.jsonl");
        if bless {
            std::fs::write(&expected_path, &got).expect("write expected.jsonl");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != got {
            failures.push(format!(
                "{}: {}",
                dir.display(),
                first_difference(&expected, &got)
            ));
        }
        assert!(
            dir.join("README.md").exists(),
            "{} has no README.md (provenance)",
            dir.display()
        );
    }
    assert!(
        failures.is_empty(),
        "{} case(s) differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn one_and_several_workers_give_identical_output() {
    for dir in cases() {
        let one = run_case(&dir, 1);
        for workers in [2, 4] {
            assert!(
                one == run_case(&dir, workers),
                "{}: output differs with {workers} workers",
                dir.display()
            );
        }
    }
}

#[test]
fn records_follow_the_schema_and_session_order() {
    use std::collections::HashMap;
    for dir in cases() {
        let out = String::from_utf8(run_case(&dir, 1)).unwrap();
        let mut last: HashMap<String, (u64, String)> = HashMap::new();
        for line in out.lines() {
            let r: serde_json::Value =
                serde_json::from_str(line).expect("each line is one JSON object");
            dbtap_schema::check(&r).unwrap_or_else(|e| panic!("{}: {e}\n{line}", dir.display()));
            let sid = r["session_id"].as_str().unwrap().to_owned();
            let seq = r["seq"].as_u64().unwrap();
            let ts = r["ts"].as_str().unwrap().to_owned();
            if let Some((prev_seq, prev_ts)) = last.get(&sid) {
                assert_eq!(
                    seq,
                    prev_seq + 1,
                    "{}: session {sid} records out of order",
                    dir.display()
                );
                assert!(
                    ts >= *prev_ts,
                    "{}: session {sid} time runs backwards",
                    dir.display()
                );
            }
            last.insert(sid, (seq, ts));
        }
    }
}

/// The record schema (README, "Record schema"), checked field by field.
mod dbtap_schema {
    use serde_json::Value;

    const REQUIRED: &[&str] = &[
        "schema_version",
        "ts",
        "protocol",
        "session_id",
        "seq",
        "client",
        "server",
        "user",
        "database",
        "client_program",
        "server_version",
        "op",
        "sql",
        "params",
        "status",
        "error",
        "rows",
        "latency_us",
        "bytes",
        "flags",
    ];
    const OPTIONAL: &[&str] = &[
        "procedure",
        "stmt_id",
        "connection_id",
        "insert_id",
        "warnings",
        "lost_bytes",
        "login",
        "attributes",
    ];
    /// The SQL analysis: on every record that carries a statement text, and only there.
    const SQL_ANALYSIS: &[&str] = &[
        "kind",
        "command",
        "statements",
        "objects",
        "fingerprint",
        "normalized",
    ];
    const KINDS: &[&str] = &[
        "select", "insert", "update", "delete", "merge", "ddl", "dcl", "tcl", "call", "set", "use",
        "show", "describe", "explain", "other",
    ];
    const FLAGS: &[&str] = &[
        "partial",
        "midstream",
        "encrypted",
        "no_response",
        "truncated",
        "idle_timeout",
        "evicted",
        "capture_end",
        "after_gap",
        "login_encrypted",
        "redirected",
    ];

    fn str_or_null(r: &Value, k: &str) -> Result<(), String> {
        match &r[k] {
            Value::String(_) | Value::Null => Ok(()),
            v => Err(format!("{k} must be a string or null, is {v}")),
        }
    }

    fn u64_or_null(r: &Value, k: &str) -> Result<(), String> {
        match &r[k] {
            Value::Null => Ok(()),
            v if v.is_u64() => Ok(()),
            v => Err(format!(
                "{k} must be a non-negative integer or null, is {v}"
            )),
        }
    }

    fn endpoint(v: &Value, k: &str) -> Result<(), String> {
        let ip = v["ip"].as_str().ok_or(format!("{k}.ip must be a string"))?;
        ip.parse::<std::net::IpAddr>()
            .map_err(|_| format!("{k}.ip {ip:?} is not an IP address"))?;
        v["port"]
            .as_u64()
            .filter(|p| *p <= 65535)
            .ok_or(format!("{k}.port must be a port number"))?;
        Ok(())
    }

    /// Members a bind value may have (README, `params`).
    const PARAM_KEYS: &[&str] = &[
        "type",
        "name",
        "value",
        "hex",
        "long_data_bytes",
        "undecodable",
        "encrypted",
        "rows",
        "columns",
        "truncated",
    ];

    fn param(p: &Value) -> Result<(), String> {
        let obj = p.as_object().ok_or(format!("a param is an object: {p}"))?;
        if !p["type"].is_string() {
            return Err(format!("param without a type: {p}"));
        }
        if let Some(k) = obj.keys().find(|k| !PARAM_KEYS.contains(&k.as_str())) {
            return Err(format!("param with an unknown member {k}: {p}"));
        }
        if obj.contains_key("name") && !p["name"].is_string() {
            return Err(format!("param name must be a string: {p}"));
        }
        if obj.contains_key("encrypted") && (p["encrypted"] != true || !p["hex"].is_string()) {
            return Err(format!(
                "an encrypted param is hex with encrypted: true: {p}"
            ));
        }
        Ok(())
    }

    pub fn check(r: &Value) -> Result<(), String> {
        let obj = r.as_object().ok_or("a record is a JSON object")?;
        for k in REQUIRED {
            if !obj.contains_key(*k) {
                return Err(format!("missing required field {k}"));
            }
        }
        for k in obj.keys() {
            let k = k.as_str();
            if !REQUIRED.contains(&k) && !OPTIONAL.contains(&k) && !SQL_ANALYSIS.contains(&k) {
                return Err(format!("unknown field {k}"));
            }
        }
        if r["schema_version"] != 1 {
            return Err("schema_version must be 1".into());
        }
        let ts = r["ts"].as_str().ok_or("ts must be a string")?;
        let b = ts.as_bytes();
        if b.len() != 27 || b[4] != b'-' || b[10] != b'T' || b[19] != b'.' || b[26] != b'Z' {
            return Err(format!("ts {ts:?} is not RFC 3339 UTC with microseconds"));
        }
        let sid = r["session_id"]
            .as_str()
            .ok_or("session_id must be a string")?;
        if sid.len() != 16 || !sid.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!("session_id {sid:?} is not 16 hex digits"));
        }
        if r["seq"].as_u64().is_none_or(|s| s == 0) {
            return Err("seq must be a positive integer".into());
        }
        endpoint(&r["client"], "client")?;
        endpoint(&r["server"], "server")?;
        for k in [
            "user",
            "database",
            "client_program",
            "server_version",
            "sql",
        ] {
            str_or_null(r, k)?;
        }
        if obj.contains_key("procedure") && !r["procedure"].is_string() {
            return Err("procedure, when present, must be a string".into());
        }
        let op = r["op"].as_str().ok_or("op must be a string")?;
        if op.is_empty()
            || !op
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'x')
        {
            return Err(format!("op {op:?} is not a lowercase name"));
        }
        match &r["params"] {
            Value::Null => {}
            Value::Array(ps) => {
                for p in ps {
                    param(p)?;
                }
            }
            v => return Err(format!("params must be a list or null, is {v}")),
        }
        let status = r["status"].as_str().ok_or("status must be a string")?;
        if !["ok", "error", "unknown"].contains(&status) {
            return Err(format!("status {status:?}"));
        }
        match &r["error"] {
            Value::Null if status != "error" => {}
            Value::Object(e) if status == "error" => {
                if !(e["code"].is_i64() || e["code"].is_string()) || !e["message"].is_string() {
                    return Err(format!(
                        "error must have a code and a message: {}",
                        r["error"]
                    ));
                }
            }
            v => return Err(format!("error {v} does not match status {status}")),
        }
        u64_or_null(r, "rows")?;
        u64_or_null(r, "latency_us")?;
        if r["bytes"]["request"].as_u64().is_none() || r["bytes"]["response"].as_u64().is_none() {
            return Err("bytes must have request and response counts".into());
        }
        let flags = r["flags"].as_array().ok_or("flags must be a list")?;
        for f in flags {
            let f = f.as_str().unwrap_or("");
            if !FLAGS.contains(&f) {
                return Err(format!("unknown flag {f:?}"));
            }
        }
        if r["sql"].is_string() {
            let kind = r["kind"].as_str().ok_or("a statement record has a kind")?;
            if !KINDS.contains(&kind) {
                return Err(format!("kind {kind:?}"));
            }
            if !r["command"].is_string() || !r["normalized"].is_string() {
                return Err("command and normalized must be strings".into());
            }
            let fp = r["fingerprint"]
                .as_str()
                .ok_or("fingerprint must be a string")?;
            if fp.len() != 16 || !fp.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(format!("fingerprint {fp:?} is not 16 hex digits"));
            }
            if let Some(list) = obj.get("statements") {
                // Only for a text of several statements, the first one being the record's.
                let list = list.as_array().ok_or("statements must be a list")?;
                if list.len() < 2 {
                    return Err(format!(
                        "statements lists fewer than two: {}",
                        r["statements"]
                    ));
                }
                if list[0]["kind"] != r["kind"] || list[0]["command"] != r["command"] {
                    return Err("the first of statements is the record's kind and command".into());
                }
                for s in list {
                    let ok = s["kind"].as_str().is_some_and(|k| KINDS.contains(&k))
                        && s["command"].is_string()
                        && s.as_object().is_some_and(|o| o.len() == 2);
                    if !ok {
                        return Err(format!("statement {s}"));
                    }
                }
            }
            for o in r["objects"].as_array().ok_or("objects must be a list")? {
                let access = o["access"].as_str().unwrap_or("");
                if !o["name"].is_string() || !["read", "write", "execute"].contains(&access) {
                    return Err(format!("object {o}"));
                }
            }
        } else {
            for k in SQL_ANALYSIS {
                if obj.contains_key(*k) {
                    return Err(format!("{k} on a record without sql"));
                }
            }
        }
        // Secrets never reach output.
        let text = r.to_string().to_ascii_lowercase();
        for secret_field in ["\"password\"", "\"auth_response\"", "\"scramble\""] {
            if text.contains(secret_field) {
                return Err(format!("record carries a credential field {secret_field}"));
            }
        }
        Ok(())
    }
}
