//! Alerts end to end: the default rules on real captures, deterministic for any worker count,
//! and quiet on benign workloads.

use std::io::Write;

use std::sync::{Arc, Mutex};

use dbtap::engine::EngineConfig;
use dbtap::pipeline::{PipelineConfig, Progress};
use dbtap::replay::replay;
use dbtap::rules::{AlertOutput, RuleSet};

/// A `Write` whose bytes the test reads back.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

mod support;
use support::capture;

/// Replay with the default rules; returns the alert lines.
fn alerts(case: &str, workers: usize) -> Vec<serde_json::Value> {
    let shared = Shared::default();
    let engine = EngineConfig {
        rules: Some(Arc::new(RuleSet::default_packs().unwrap()).into()),
        ..Default::default()
    };
    let cfg = PipelineConfig {
        workers,
        engine,
        alerts: Some(AlertOutput::new(shared.clone())),
        baseline: None,
    };
    let report = replay(
        &[capture(case)],
        &cfg,
        Arc::new(Progress::default()),
        std::io::sink(),
    )
    .unwrap();
    let text = String::from_utf8(shared.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let a = report.run.alerts.as_ref().unwrap();
    assert_eq!(
        a.total() + a.correlator.suppression_reports,
        lines.len() as u64
    );
    lines
}

fn summary(lines: &[serde_json::Value]) -> Vec<(String, String)> {
    lines
        .iter()
        .map(|a| {
            (
                a["rule"]["id"].as_str().unwrap().to_owned(),
                a["record"]["sql"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[test]
fn default_rules_on_a_recorded_postgresql_session() {
    let got = alerts("pgsql/live_psycopg_session", 1);
    let want: Vec<(String, String)> = [
        ("DBTAP-DDL-001", "DROP TABLE IF EXISTS items"),
        ("DBTAP-SQLI-001", "SELECT pg_sleep(10)"),
        ("DBTAP-DDL-001", "DROP TABLE IF EXISTS typed"),
        ("DBTAP-NOWHERE-001", "DELETE FROM gbk_text"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    let mut got_sorted = summary(&got);
    let mut want_sorted = want.clone();
    got_sorted.sort();
    want_sorted.sort();
    assert_eq!(got_sorted, want_sorted);
    // Each alert carries its rule and the whole triggering record.
    for a in &got {
        assert!(["high", "medium"].contains(&a["rule"]["severity"].as_str().unwrap()));
        assert_eq!(a["record"]["protocol"], "postgresql");
        assert_eq!(a["ts"], a["record"]["ts"]);
        assert_eq!(a["suppressed"], 0);
    }
}

#[test]
fn alerts_are_the_same_for_any_worker_count() {
    for case in [
        "pgsql/live_psycopg_session",
        "mysql/mariadb_sysbench_prepared",
        "mysql/login_failed_1045",
    ] {
        let one = alerts(case, 1);
        for w in [2, 4] {
            assert_eq!(one, alerts(case, w), "{case} with {w} workers");
        }
    }
}

#[test]
fn a_benign_workload_raises_no_high_or_critical_alert() {
    let got = alerts("mysql/mariadb_sysbench_prepared", 2);
    let serious: Vec<_> = got
        .iter()
        .filter(|a| ["high", "critical"].contains(&a["rule"]["severity"].as_str().unwrap()))
        .collect();
    assert!(serious.is_empty(), "{serious:?}");
}

#[test]
fn oracle_account_and_privilege_changes_raise_alerts() {
    // SQL*Plus on Oracle 10g: create user … identified by …, grant dba, a read of sys.user$.
    let got = summary(&alerts("tns/sqlplus10g_ddl_dcl", 1));
    let want: Vec<(String, String)> = [
        ("DBTAP-PRIV-001", "create user hackerman identified by ***"),
        ("DBTAP-PRIV-001", "grant dba to hackerman"),
        ("DBTAP-CRED-001", "select name, password from sys.user$"),
        ("DBTAP-PRIV-001", "alter user scott identified by ***"),
        ("DBTAP-PRIV-001", "alter user scott account unlock"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(got, want);
}

#[test]
fn an_nmap_password_guessing_run_is_brute_force_and_spraying() {
    // nmap's oracle-brute against 11gR2: failed O5LOGON logins from one address.
    let got = alerts("tns/o5logon_bruteforce_nmap", 2);
    let ids: Vec<&str> = got
        .iter()
        .map(|a| a["rule"]["id"].as_str().unwrap())
        .collect();
    // The last line reports the brute-force alert held back after the first (10 failures in
    // all: the 10th would have fired again within the 600 s of suppression).
    assert_eq!(ids, ["DBTAP-AUTH-001", "DBTAP-AUTH-002", "DBTAP-AUTH-001"]);
    let t = &got[0]["threshold"];
    assert_eq!(t["group"], "192.168.2.2");
    assert_eq!(t["count"], 5);
    assert_eq!(t["window_secs"], 180);
    assert_eq!(t["records"].as_array().unwrap().len(), 5);
    assert_eq!(got[1]["threshold"]["count"], 10);
    assert_eq!(got[0]["record"]["op"], "login");
    assert_eq!(got[0]["record"]["status"], "error");
    let held = &got[2];
    assert_eq!(held["suppressed"], 1);
    assert_eq!(held["record"], serde_json::Value::Null);
    let s = &held["suppression"];
    assert_eq!(s["group"], "192.168.2.2");
    assert_eq!(s["ended"], "capture_end");
    assert_eq!(s["first"], s["last"]);
    assert_eq!(held["ts"], s["last"]);
    // The period began with the first alert and lasts the rule's 600 s.
    let secs = |v: &serde_json::Value| {
        let t = v.as_str().unwrap();
        let (hms, frac) = t[11..26].split_once('.').unwrap();
        let mut n = 0f64;
        for part in hms.split(':') {
            n = n * 60.0 + part.parse::<f64>().unwrap();
        }
        n + format!("0.{frac}").parse::<f64>().unwrap()
    };
    assert!((secs(&s["until"]) - secs(&got[0]["ts"]) - 600.0).abs() < 1e-6);
}
