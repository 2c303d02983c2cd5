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
