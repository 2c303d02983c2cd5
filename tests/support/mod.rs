//! What the end-to-end tests share: running the `dbtap` binary, finding a fixture's capture,
//! reading JSON lines. (Each test file uses part of it.)
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The `dbtap` binary built for these tests.
pub fn dbtap() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dbtap"))
}

/// The capture file of `fixtures/CASE` (`mysql/errors_1064_1193`, …).
pub fn capture(case: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(case);
    std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .unwrap_or_else(|| panic!("no capture in {}", dir.display()))
}

/// Fail with dbtap's stderr unless it exited 0.
pub fn assert_success(out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One JSON value per non-empty line.
pub fn json_lines(bytes: &[u8]) -> Vec<Value> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

/// The frames of a capture: capture time (ns since the epoch) and bytes.
pub fn frames_of(path: &Path) -> Vec<(u64, Vec<u8>)> {
    let mut frames = Vec::new();
    let mut reader = dbtap::capture::CaptureReader::open(path).unwrap();
    while let Some(f) = reader.next_frame().unwrap() {
        frames.push((f.ts.0, f.data.to_vec()));
    }
    frames
}

/// Writes `frames` (capture time in ns, Ethernet bytes) as a classic pcap file.
pub fn write_pcap(path: &Path, frames: &[(u64, Vec<u8>)]) {
    // File header: nanosecond magic, version 2.4, snaplen 65535, Ethernet.
    let mut out = Vec::new();
    for v in [0xa1b2_3c4d_u32, 0x0004_0002, 0, 0, 65535, 1] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for (ts, data) in frames {
        out.extend_from_slice(&((ts / 1_000_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((ts % 1_000_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
    }
    std::fs::write(path, out).unwrap();
}
