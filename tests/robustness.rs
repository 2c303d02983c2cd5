//! Robustness: damaged captures never make the replay panic, hang, or grow memory past its caps.
//!
//! Every golden capture is replayed after random truncations, bit flips in the packet bytes and
//! byte runs overwritten with noise, under deliberately small limits. The run must finish, write
//! only well-formed JSON lines, and keep the flow table under its memory cap (plus at most one
//! packet's worth, since eviction runs after the packet that crossed the cap).
//!
//! The suite runs a fixed sample (the same damage on every run, so a failure reproduces). A
//! longer campaign with other damage: `DBTAP_ROBUST_CASES=N` cases per capture and
//! `DBTAP_ROBUST_SEED=S` (any number; a failure names it, and the same S replays the same cases).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dbtap::engine::EngineConfig;
use dbtap::pipeline::{PipelineConfig, Progress};
use dbtap::reassembly::ReassemblyLimits;
use dbtap::replay::replay;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// Flow table cap used here (small on purpose).
const CAP: usize = 512 * 1024;
/// Largest amount one packet can add to a flow before eviction runs: detection buffer (64 KiB),
/// out-of-order budget of both directions, and a parser message buffer.
const ONE_PACKET_SLACK: usize = 64 * 1024 + 2 * 64 * 1024 + 1024 * 1024 + 64 * 1024;

/// Longest a replay of one damaged capture may take before it counts as a hang (a replay of
/// these ≤ 64 KiB files takes milliseconds, even in the checked profile on a busy machine).
const HANG_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// A test runner of `cases` cases (or `DBTAP_ROBUST_CASES`), from the fixed seed (or
/// `DBTAP_ROBUST_SEED`).
fn runner(cases: u32) -> TestRunner {
    let cases = env_number("DBTAP_ROBUST_CASES").map_or(cases, |n| {
        u32::try_from(n).unwrap_or_else(|_| panic!("DBTAP_ROBUST_CASES={n}: at most {}", u32::MAX))
    });
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let rng = match seed() {
        Some(s) => {
            let mut bytes = [0u8; 32];
            bytes[..8].copy_from_slice(&s.to_le_bytes());
            TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
        }
        None => TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    };
    TestRunner::new_with_rng(config, rng)
}

/// `DBTAP_ROBUST_SEED`, when set.
fn seed() -> Option<u64> {
    env_number("DBTAP_ROBUST_SEED")
}

/// A whole number from the environment; a value that is not one stops the test (a typo must not
/// quietly run the fixed sample instead of the campaign asked for).
fn env_number(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
    )
}

fn captures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut out: Vec<PathBuf> = ["mysql", "pgsql", "tds", "tns"]
        .iter()
        .flat_map(|proto| std::fs::read_dir(root.join(proto)).unwrap().flatten())
        .flat_map(|case| {
            std::fs::read_dir(case.path())
                .unwrap()
                .flatten()
                .map(|e| e.path())
        })
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "pcap" || e == "pcapng" || e == "cap")
        })
        .filter(|p| {
            std::fs::metadata(p)
                .map(|m| m.len() < 64 * 1024)
                .unwrap_or(false)
        })
        .collect();
    out.sort();
    out
}

fn run_bytes(bytes: &[u8], name: &str) {
    let dir = std::env::temp_dir().join(format!("dbtap-robust-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let mut engine = EngineConfig {
        max_flow_memory: CAP,
        ..Default::default()
    };
    engine.reassembly = ReassemblyLimits {
        max_ooo_bytes: 64 * 1024,
        max_ooo_segments: 64,
        ..Default::default()
    };
    // The default rules run too, with alerts written (to nowhere): damaged input must not trip
    // the SQL analysis, the rules or the correlator either.
    engine.rules =
        Some(std::sync::Arc::new(dbtap::rules::RuleSet::default_packs().unwrap()).into());
    let cfg = PipelineConfig {
        workers: 1,
        engine,
        alerts: Some(dbtap::rules::AlertOutput::new(std::io::sink())),
        baseline: None,
    };
    // A hang must fail the test, not stall the suite: the replay runs on a thread of its own
    // and is given HANG_LIMIT (these files are at most 64 KiB; a replay takes milliseconds).
    let (done, finished) = std::sync::mpsc::channel();
    let input = path.clone();
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let report = replay(
            std::slice::from_ref(&input),
            &cfg,
            Arc::new(Progress::default()),
            &mut out,
        );
        let _ = done.send((report, out));
    });
    let (report, out) = finished
        .recv_timeout(HANG_LIMIT)
        .unwrap_or_else(|_| panic!("{name}: the replay did not end within {HANG_LIMIT:?}"));
    let report = report.expect("replay runs");
    let _ = std::fs::remove_file(&path);
    for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let v: serde_json::Value = serde_json::from_slice(line).expect("a well-formed JSON record");
        assert!(v["op"].is_string());
    }
    let peak = report.run.engine.peak_flow_memory as usize;
    assert!(
        peak <= CAP + ONE_PACKET_SLACK,
        "flow memory peaked at {peak} bytes (cap {CAP})"
    );
}

#[derive(Debug, Clone)]
enum Damage {
    Truncate(usize),
    Flip { at: usize, bit: u8 },
    Noise { at: usize, bytes: Vec<u8> },
}

fn damage() -> impl Strategy<Value = Vec<Damage>> {
    let one = prop_oneof![
        any::<usize>().prop_map(Damage::Truncate),
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Damage::Flip { at, bit }),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..64)
        )
            .prop_map(|(at, bytes)| Damage::Noise { at, bytes }),
    ];
    proptest::collection::vec(one, 1..8)
}

fn apply(original: &[u8], damage: &[Damage]) -> Vec<u8> {
    let mut b = original.to_vec();
    // Keep the 24-byte file header intact most of the time so that damage reaches the packets.
    for d in damage {
        match d {
            Damage::Truncate(at) => {
                let keep = 24 + at % b.len().saturating_sub(24).max(1);
                b.truncate(keep);
            }
            Damage::Flip { at, bit } => {
                if b.len() > 24 {
                    let i = 24 + at % (b.len() - 24);
                    b[i] ^= 1 << bit;
                }
            }
            Damage::Noise { at, bytes } => {
                if b.len() > 24 {
                    let i = 24 + at % (b.len() - 24);
                    for (j, x) in bytes.iter().enumerate() {
                        if let Some(slot) = b.get_mut(i + j) {
                            *slot = *x;
                        }
                    }
                }
            }
        }
    }
    b
}

#[test]
fn damaged_captures_never_panic_or_overgrow() {
    let caps = captures();
    assert!(
        caps.len() >= 15,
        "expected the golden captures, found {}",
        caps.len()
    );
    for cap in caps {
        let original = std::fs::read(&cap).unwrap();
        let name = cap.file_name().unwrap().to_string_lossy().into_owned();
        runner(24)
            .run(&damage(), |d| {
                run_bytes(&apply(&original, &d), &name);
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{} (seed {:?}): {e}", cap.display(), seed()));
    }
}

#[test]
fn random_payload_streams_on_a_database_port_never_panic() {
    // Whole captures of noise: a pcap header and random records (valid framing, random TCP).
    let mut runner = runner(64);
    let packets = proptest::collection::vec(proptest::collection::vec(any::<u8>(), 40..600), 1..40);
    runner
        .run(&packets, |pkts| {
            let mut f = Vec::new();
            // pcap header: magic, v2.4, tz 0, sigfigs 0, snaplen 65535, linktype 101 (raw IP).
            f.extend_from_slice(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0]);
            f.extend_from_slice(&[0; 8]);
            f.extend_from_slice(&65535u32.to_le_bytes());
            f.extend_from_slice(&101u32.to_le_bytes());
            for (i, p) in pkts.iter().enumerate() {
                let mut p = p.clone();
                // An IPv4/TCP skeleton so that the random bytes reach reassembly and the parser:
                // version/IHL, total length, protocol 6, ports 40000 → 3306 (1521, the Oracle
                // listener port, for odd packet counts), data offset 5.
                p[0] = 0x45;
                let total = (p.len() as u16).to_be_bytes();
                p[2..4].copy_from_slice(&total);

                p[6] = 0;
                p[7] = 0;
                p[9] = 6;
                p[20..22].copy_from_slice(&40000u16.to_be_bytes());
                let port: u16 = if pkts.len() % 2 == 0 { 3306 } else { 1521 };
                p[22..24].copy_from_slice(&port.to_be_bytes());
                p[32] = 0x50;
                f.extend_from_slice(&(i as u32).to_le_bytes());
                f.extend_from_slice(&0u32.to_le_bytes());
                f.extend_from_slice(&(p.len() as u32).to_le_bytes());
                f.extend_from_slice(&(p.len() as u32).to_le_bytes());
                f.extend_from_slice(&p);
            }
            run_bytes(&f, "noise.pcap");
            Ok(())
        })
        .unwrap_or_else(|e| panic!("seed {:?}: {e}", seed()));
}
