//! Following an Oracle listener's REDIRECT to the connection that carries the session
//! (`fixtures/tns/redirect_followed`: a real REDIRECT, then a real JDBC session moved onto the
//! announced address and picked up mid-stream; `fixtures/tns/redirect_followed_split`: the same
//! with the REDIRECT split over two TCP segments).

use std::path::{Path, PathBuf};

use serde_json::Value;

mod support;
use support::{assert_success, dbtap, json_lines};

fn capture() -> PathBuf {
    support::capture("tns/redirect_followed")
}

/// Replay `pcap` with `workers` workers: the records and the JSON summary.
fn replay(pcap: &Path, workers: usize) -> (Vec<Value>, Value) {
    let out = dbtap()
        .args(["replay", "--summary", "json", "--workers"])
        .arg(workers.to_string())
        .arg(pcap)
        .output()
        .unwrap();
    assert_success(&out);
    (
        json_lines(&out.stdout),
        serde_json::from_slice(&out.stderr).unwrap(),
    )
}

/// `pcap` (classic, little-endian) without its first `skip` packets.
fn without_first_packets(pcap: &[u8], skip: usize) -> Vec<u8> {
    let mut out = pcap[..24].to_vec();
    let mut off = 24;
    let mut n = 0;
    while off + 16 <= pcap.len() {
        let incl = u32::from_le_bytes(pcap[off + 8..off + 12].try_into().unwrap()) as usize;
        if n >= skip {
            out.extend_from_slice(&pcap[off..off + 16 + incl]);
        }
        off += 16 + incl;
        n += 1;
    }
    out
}

#[test]
fn the_redirected_connection_is_parsed_and_flagged() {
    for workers in [1, 2] {
        let (records, summary) = replay(&capture(), workers);
        assert_eq!(records.len(), 3, "{records:#?}");
        // The listener's answer: where the client was sent.
        assert_eq!(records[0]["server"]["port"], 1521);
        assert_eq!(
            records[0]["login"]["attributes"]["redirect_to"],
            "192.168.0.4:2143"
        );
        assert_eq!(records[0]["flags"], serde_json::json!([]));
        // The session there: picked up mid-stream, parsed because it was announced.
        for r in &records[1..] {
            assert_eq!(r["client"]["ip"], "192.168.0.218");
            assert_eq!(r["server"]["port"], 2143);
            assert_eq!(r["flags"], serde_json::json!(["midstream", "redirected"]));
        }
        assert_eq!(records[1]["op"], "login");
        assert_eq!(records[1]["user"], "SYSTEM");
        assert_eq!(records[1]["status"], "ok");
        assert_eq!(records[2]["op"], "query");
        assert_eq!(records[2]["sql"], "SELECT * FROM \"Toto\"");
        assert_eq!(summary["redirects"]["announced"], 1);
        assert_eq!(summary["redirects"]["followed"], 1);
        assert_eq!(summary["redirects"]["expired"], 0);
        assert_eq!(summary["redirects"]["dropped"], 0);
        assert_eq!(summary["redirects"]["unassembled"], 0);
    }
}

#[test]
fn a_redirect_split_over_two_segments_is_followed_the_same() {
    let (whole, whole_summary) = replay(&capture(), 1);
    for workers in [1, 2] {
        let (split, summary) = replay(&support::capture("tns/redirect_followed_split"), workers);
        assert_eq!(split, whole);
        assert_eq!(
            split[1]["flags"],
            serde_json::json!(["midstream", "redirected"])
        );
        assert_eq!(summary["redirects"], whole_summary["redirects"]);
        assert_eq!(summary["redirects"]["followed"], 1);
    }
}

#[test]
fn without_the_redirect_the_same_session_is_not_recognised() {
    let bytes = std::fs::read(capture()).unwrap();
    let dir = std::env::temp_dir().join(format!("dbtap-redirect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("session_only.pcap");
    // The first 10 packets are the CONNECT/REDIRECT connection.
    std::fs::write(&pcap, without_first_packets(&bytes, 10)).unwrap();
    let (records, summary) = replay(&pcap, 1);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(records.is_empty(), "{records:#?}");
    assert_eq!(summary["engine"]["unidentified_flows"], 1);
    assert_eq!(summary["redirects"]["announced"], 0);
}
