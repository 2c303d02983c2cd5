//! The `dbtap` command as users run it: exit statuses, error messages, summary, several files.

use std::path::{Path, PathBuf};

mod support;
use support::{assert_success, dbtap, frames_of, json_lines, write_pcap};

fn fixture(case: &str) -> PathBuf {
    support::capture(&format!("mysql/{case}"))
}

#[test]
fn replay_writes_the_records_to_stdout_and_a_summary_to_stderr() {
    let out = dbtap()
        .args(["replay", "--summary", "json"])
        .arg(fixture("errors_1064_1193"))
        .output()
        .unwrap();
    assert_success(&out);
    let records = json_lines(&out.stdout);
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["error"]["code"], 1064);
    assert_eq!(records[1]["error"]["code"], 1193);
    let summary: serde_json::Value =
        serde_json::from_slice(&out.stderr).expect("--summary json is one JSON object");
    assert_eq!(summary["records"], 2);
    assert_eq!(summary["sessions"]["mysql"], 1);
    assert_eq!(summary["frames"], 6);
    // The period the records cover (capinfos: first 1257087284.293137, last 1257087292.814025).
    assert_eq!(summary["first_packet"], "2009-11-01T14:54:44.293137Z");
    assert_eq!(summary["last_packet"], "2009-11-01T14:54:52.814025Z");
    assert_eq!(
        summary["files"][0]["first_packet"],
        "2009-11-01T14:54:44.293137Z"
    );
    assert_eq!(
        summary["files"][0]["last_packet"],
        "2009-11-01T14:54:52.814025Z"
    );

    let out = dbtap()
        .args(["replay", "--summary", "text"])
        .arg(fixture("errors_1064_1193"))
        .output()
        .unwrap();
    assert_success(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains(
        "  traffic    2009-11-01T14:54:44.293137Z to 2009-11-01T14:54:52.814025Z (8.521 s)\n"
    ));
}

#[test]
fn a_damaged_file_names_the_file_and_offset_and_the_other_files_still_run() {
    let dir = std::env::temp_dir().join(format!("dbtap-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let records = dir.join("records.jsonl");
    let out = dbtap()
        .arg("replay")
        .arg(fixture("truncated_capture"))
        .arg(fixture("errors_1064_1193"))
        .arg("--records")
        .arg(&records)
        .args(["--summary", "none"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "caching_sha2_cut_at_5000.pcap: at byte 4959: truncated record: 41 of 90 bytes"
        ),
        "{stderr}"
    );
    let written = std::fs::read_to_string(&records).unwrap();
    // 7 records before the damage in the first file, 2 in the second.
    assert_eq!(written.lines().count(), 9);
    assert!(written
        .lines()
        .last()
        .unwrap()
        .contains("set global nono = 2"));

    // With the summary on stderr, the summary says it, and a JSON one stays one JSON object.
    let out = dbtap()
        .arg("replay")
        .arg(fixture("truncated_capture"))
        .arg("--records")
        .arg(&records)
        .args(["--summary", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let summary: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert!(summary["files"][0]["error"].as_str().unwrap().ends_with(
        "caching_sha2_cut_at_5000.pcap: at byte 4959: truncated record: 41 of 90 bytes"
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_file_and_bad_arguments_are_clear_errors() {
    let out = dbtap()
        .args(["replay", "/nonexistent/x.pcap", "--summary", "none"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.pcap"));

    let out = dbtap()
        .args(["replay", "--port", "oracle=1521"])
        .arg(fixture("vlan"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("unknown protocol \"oracle\" (known: mysql, postgresql, tds, tns)"));

    let out = dbtap()
        .args(["replay", "--port", "mysql"])
        .arg(fixture("vlan"))
        .output()
        .unwrap();
    // A malformed argument is a bad argument like any other: 1, not clap's 2 (which would read
    // as "some input could not be read").
    assert_eq!(out.status.code(), Some(1), "a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected NAME=PORT"));

    for (workers, says) in [("0", "must be at least 1"), ("257", "at most 256")] {
        let out = dbtap()
            .args(["replay", "--workers", workers])
            .arg(fixture("vlan"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "--workers {workers}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("'--workers <WORKERS>'") && stderr.contains(says),
            "{stderr}"
        );
        assert!(out.stdout.is_empty());
    }
    let out = dbtap().arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: dbtap <COMMAND>"));
}

#[test]
fn a_forced_port_gives_the_records_detection_gives() {
    // A lone COM_QUERY packet on port 3310 with no response: found by content already, and
    // with --port the same record comes out.
    let plain = dbtap()
        .args(["replay", "--summary", "none"])
        .arg(fixture("vlan"))
        .output()
        .unwrap();
    let forced = dbtap()
        .args(["replay", "--summary", "none", "--port", "mysql=3310"])
        .arg(fixture("vlan"))
        .output()
        .unwrap();
    assert_eq!(plain.stdout, forced.stdout);
    assert!(!plain.stdout.is_empty());
}

fn records_of(args: &[&str], file: &Path) -> Vec<serde_json::Value> {
    let out = dbtap()
        .args(["replay", "--summary", "none"])
        .args(args)
        .arg(file)
        .output()
        .unwrap();
    assert_success(&out);
    json_lines(&out.stdout)
}

#[test]
fn mask_literals_hides_values_and_keeps_the_analysis() {
    let pcap = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/pgsql/live_psycopg_session/psycopg_session.pcap");
    let plain = records_of(&[], &pcap);
    let masked = records_of(&["--mask", "literals"], &pcap);
    assert_eq!(plain.len(), masked.len());
    let text = serde_json::to_string(&masked).unwrap();
    // Literals of the session (a GBK-encoded Chinese value, a bulk-insert name) are gone…
    assert!(plain
        .iter()
        .any(|r| r["sql"].as_str().is_some_and(|s| s.contains("'患者'"))));
    assert!(!text.contains("'患者'") && !text.contains("bulk-01000"));
    let mut masked_params = 0;
    for (p, m) in plain.iter().zip(&masked) {
        // … every bind value is `?` (NULL stays null) …
        for v in m["params"].as_array().into_iter().flatten() {
            assert!(v["value"] == "?" || v["value"].is_null(), "{v}");
            masked_params += usize::from(v["value"] == "?");
        }
        // … and the analysis is that of the unmasked statement.
        for k in ["kind", "command", "objects", "fingerprint", "normalized"] {
            assert_eq!(p[k], m[k], "{k}");
        }
    }
    assert!(masked_params > 20, "{masked_params}");
    // Error messages quote the failing values: masked too. (23505: Key (id)=(1) already exists.)
    let dup = |rs: &[serde_json::Value]| {
        rs.iter()
            .find(|r| r["error"]["code"] == "23505")
            .map(|r| r["error"]["message"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert!(
        dup(&plain).contains("Key (id)=(1) already exists"),
        "{}",
        dup(&plain)
    );
    assert!(
        dup(&masked).contains("Key (id)=(?) already exists"),
        "{}",
        dup(&masked)
    );
    // Without the option nothing is masked.
    assert!(plain
        .iter()
        .any(|r| r["sql"].as_str().is_some_and(|s| s.contains("bulk-01000"))));
}

#[test]
fn rules_check_and_test_report_clearly() {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let out = dbtap()
        .args(["rules", "test"])
        .arg(&rules)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with("examples: 0 failed\n"), "{text}");
    // A mistake names the file, the line and the field.
    let bad = std::env::temp_dir().join(format!("dbtap-bad-rule-{}.toml", std::process::id()));
    std::fs::write(
        &bad,
        "[[rule]]\nid = \"X\"\ntitle = \"t\"\nseverity = \"high\"\ncategory = \"policy\"\nwhen = { field = \"usr\", equals = \"x\" }\n",
    )
    .unwrap();
    let out = dbtap().args(["rules", "check"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!(
            "dbtap: {}:6: rule X: unknown field `usr`",
            bad.display()
        )),
        "{err}"
    );
    let _ = std::fs::remove_file(&bad);
}

/// Runs `dbtap replay` with `input` written to its standard input.
fn replay_stdin(args: &[&str], input: Vec<u8>) -> std::process::Output {
    use std::io::Write;
    let mut child = dbtap()
        .arg("replay")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // From another thread: the pipe holds less than the capture, and dbtap writes as it reads.
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    out
}

#[test]
fn a_capture_piped_to_standard_input_gives_the_records_the_file_gives() {
    use std::io::Write;
    let file = fixture("mariadb_sysbench_prepared");
    let from_file = dbtap()
        .args(["replay", "--summary", "none"])
        .arg(&file)
        .output()
        .unwrap();
    assert_success(&from_file);
    assert_eq!(json_lines(&from_file.stdout).len(), 72);
    let bytes = std::fs::read(&file).unwrap();

    let piped = replay_stdin(&["-", "--summary", "json"], bytes.clone());
    assert_success(&piped);
    assert_eq!(piped.stdout, from_file.stdout);
    let summary: serde_json::Value = serde_json::from_slice(&piped.stderr).unwrap();
    assert_eq!(summary["files"][0]["path"], "stdin");
    assert_eq!(summary["files"][0]["bytes"], bytes.len() as u64);

    // Compressed on the way: gzip is told from its first bytes, with nothing to seek back to.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&bytes).unwrap();
    let piped = replay_stdin(&["-", "--summary", "none"], gz.finish().unwrap());
    assert_success(&piped);
    assert_eq!(piped.stdout, from_file.stdout);

    // A named pipe given as a path reads the same way (as `<(zcat x.pcap.gz)` gives one).
    let dir = std::env::temp_dir().join(format!("dbtap-cli-fifo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("capture.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::write(fifo, bytes))
    };
    let out = dbtap()
        .args(["replay", "--summary", "none"])
        .arg(&fifo)
        .output()
        .unwrap();
    writer.join().unwrap().unwrap();
    assert_success(&out);
    assert_eq!(out.stdout, from_file.stdout);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn standard_input_given_twice_and_an_empty_one_are_clear_errors() {
    let out = replay_stdin(&["-", "-"], Vec::new());
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("standard input (-) can be given only once: it is read once"));

    let out = replay_stdin(&["-", "--summary", "none"], Vec::new());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("dbtap: stdin: at byte 0: empty file"));
}

/// Rotated captures given out of time order (`cap10` sorted before `cap2` by a shell glob) give
/// wrong records: the summary and stderr say which files overlap, and in time order they give
/// the records of the whole capture.
#[test]
fn files_given_out_of_time_order_are_warned_of() {
    let whole = fixture("mariadb_sysbench_prepared");
    let frames = frames_of(&whole);
    let dir = std::env::temp_dir().join(format!("dbtap-cli-rotated-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (first, second) = (dir.join("cap1.pcap"), dir.join("cap2.pcap"));
    write_pcap(&first, &frames[..75]);
    write_pcap(&second, &frames[75..]);

    let in_order = dbtap()
        .args(["replay", "--summary", "json"])
        .args([&first, &second])
        .output()
        .unwrap();
    assert_success(&in_order);
    let from_whole = records_of(&[], &whole);
    assert_eq!(json_lines(&in_order.stdout), from_whole);
    let summary: serde_json::Value = serde_json::from_slice(&in_order.stderr).unwrap();
    assert_eq!(summary["time_overlaps"], serde_json::json!([]));

    let reversed = dbtap()
        .args(["replay", "--summary", "json", "--summary-file"])
        .arg(dir.join("summary.json"))
        .args([&second, &first])
        .output()
        .unwrap();
    assert_success(&reversed);
    assert_ne!(json_lines(&reversed.stdout), from_whole);
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    let overlaps = s["time_overlaps"].as_array().unwrap();
    assert_eq!(overlaps.len(), 1);
    let o = &overlaps[0];
    assert_eq!(o["earlier"], second.display().to_string());
    assert_eq!(o["later"], first.display().to_string());
    assert_eq!(o["earlier_ends"], s["files"][0]["last_packet"]);
    assert_eq!(o["later_starts"], s["files"][1]["first_packet"]);
    let stderr = String::from_utf8_lossy(&reversed.stderr);
    assert!(
        stderr.starts_with(&format!(
            "dbtap: warning: {} starts at {}, before {} (given before it) ends at {}: ",
            first.display(),
            o["later_starts"].as_str().unwrap(),
            second.display(),
            o["earlier_ends"].as_str().unwrap()
        )),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
