//! SQL analysis and default-rule throughput (kind, objects, normalized text, fingerprint,
//! redaction, then every default rule evaluated) on real statement texts, one core, uncached.
//! `DBTAP_BENCH_RULES=none` measures the analysis alone.
//!
//! The statements are the `sql` fields of every golden fixture's expected records (real MySQL,
//! MariaDB and PostgreSQL sessions), or of a records file given in `DBTAP_BENCH_RECORDS` (e.g. the
//! output of `dbtap replay` on the sysbench or pgbench bench captures). They are analysed in turn
//! until `DBTAP_BENCH_STATEMENTS` (default 2,000,000) analyses have run.
//!
//! ```text
//! cargo bench --bench sql
//! DBTAP_BENCH_RECORDS=records.jsonl cargo bench --bench sql
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use dbtap::rules::{Facts, RuleSet};
use dbtap::sql::{analyze, Dialect};

fn statements_of(path: &Path, out: &mut Vec<(Dialect, String)>) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if let (Some(sql), Some(proto)) = (v["sql"].as_str(), v["protocol"].as_str()) {
            out.push((Dialect::of_protocol(proto), sql.to_owned()));
        }
    }
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut stmts = Vec::new();
    if let Some(p) = std::env::var_os("DBTAP_BENCH_RECORDS") {
        statements_of(Path::new(&p), &mut stmts);
    } else {
        for proto in std::fs::read_dir(root.join("fixtures"))
            .into_iter()
            .flatten()
            .flatten()
        {
            for case in std::fs::read_dir(proto.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                statements_of(&case.path().join("expected.jsonl"), &mut stmts);
            }
        }
    }
    if stmts.is_empty() {
        eprintln!("sql bench: no statements found");
        return;
    }
    let total: usize = std::env::var("DBTAP_BENCH_STATEMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let bytes_per_round: usize = stmts.iter().map(|(_, s)| s.len()).sum();
    // Every statement analysed from scratch (the pipeline caches analyses by text; this is the
    // uncached worst case), then the default rules evaluated on a record carrying it.
    let rules = RuleSet::default_packs().expect("default rules");
    let with_rules = std::env::var("DBTAP_BENCH_RULES").as_deref() != Ok("none");
    let start = Instant::now();
    let mut done = 0usize;
    let mut bytes = 0usize;
    let mut check = 0u64;
    let mut matches = Vec::new();
    while done < total {
        for (d, sql) in &stmts {
            let a = analyze(sql, *d);
            check = check.wrapping_add(a.fingerprint ^ a.objects.len() as u64);
            if with_rules {
                let shown = a.redacted.as_deref().unwrap_or(sql);
                let bits = rules.statement_bits(shown, &a);
                let f = Facts {
                    ts: dbtap_core::Timestamp(1_767_261_600_000_000_000),
                    protocol: "mysql",
                    session_id: 1,
                    user: Some("app"),
                    op: "query",
                    status: "ok",
                    rows: Some(1),
                    latency_us: Some(100),
                    sql_bits: Some(&bits),
                    rules: Some(&rules),
                    ..Facts::of_statement(shown, &a)
                };
                rules.matches(&f, &mut matches);
                check = check.wrapping_add(matches.len() as u64);
            }
            done += 1;
        }
        bytes += bytes_per_round;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "sql analysis{}: {} statements (avg {} bytes), {done} analyses in {secs:.3} s: {:.0} statements/s, {:.1} MB/s on one core (check {check:x})",
        if with_rules { " + default rules" } else { "" },
        stmts.len(),
        bytes_per_round / stmts.len(),
        done as f64 / secs,
        bytes as f64 / secs / 1e6,
    );
}
