//! Replay throughput: the whole pipeline (read, decode, reassemble, parse, JSON records written
//! to a file) on one capture, repeated, reporting the median run.
//!
//! ```text
//! benches/make-sysbench-capture.sh bench-data/sysbench.pcap     # once: a real MariaDB capture
//! cargo bench --bench replay                                     # uses bench-data/sysbench.pcap
//! DBTAP_BENCH_PCAP=other.pcap DBTAP_BENCH_RUNS=5 cargo bench --bench replay
//! ```
//! `benches/compare-tshark.sh` puts the same figures beside tshark and `cat` on the same file.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dbtap::pipeline::{default_workers, PipelineConfig, Progress};
use dbtap::replay::replay;

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let pcap = std::env::var_os("DBTAP_BENCH_PCAP")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("bench-data/sysbench.pcap"));
    if !pcap.exists() {
        eprintln!(
            "replay bench: {} not found; make it with benches/make-sysbench-capture.sh {} (or set DBTAP_BENCH_PCAP)",
            pcap.display(),
            pcap.display()
        );
        return;
    }
    let runs: usize = std::env::var("DBTAP_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let workers: usize = std::env::var("DBTAP_BENCH_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(default_workers);
    let out_path = std::env::temp_dir().join("dbtap-bench-records.jsonl");
    // As `dbtap replay` runs by default: the built-in rules matched on every record, alerts
    // counted (DBTAP_BENCH_RULES=none leaves them out).
    let mut engine = dbtap::engine::EngineConfig::default();
    if std::env::var("DBTAP_BENCH_RULES").as_deref() != Ok("none") {
        engine.rules =
            Some(Arc::new(dbtap::rules::RuleSet::default_packs().expect("default rules")).into());
    }
    let cfg = PipelineConfig {
        workers,
        engine,
        alerts: None,
        baseline: None,
    };
    let mut times: Vec<(Duration, u64, u64, u64)> = Vec::new();
    for _ in 0..runs {
        let out = std::fs::File::create(&out_path).expect("create the records file");
        let report = replay(
            std::slice::from_ref(&pcap),
            &cfg,
            Arc::new(Progress::default()),
            out,
        )
        .expect("replay");
        let frames: u64 = report.files.iter().map(|f| f.frames).sum();
        let bytes: u64 = report.files.iter().map(|f| f.bytes).sum();
        times.push((report.elapsed, frames, bytes, report.run.records));
    }
    times.sort_by_key(|t| t.0);
    let (elapsed, frames, bytes, records) = times[times.len() / 2];
    let s = elapsed.as_secs_f64();
    println!(
        "replay {}: {workers} worker(s), median of {runs}: {:.3} s  {:.1} MB/s  {:.0} packets/s  {:.0} records/s  ({} packets, {} records)",
        pcap.display(),
        s,
        bytes as f64 / 1e6 / s,
        frames as f64 / s,
        records as f64 / s,
        frames,
        records
    );
    let _ = std::fs::remove_file(&out_path);
}
