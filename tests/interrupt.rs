//! A replay stopped early: by Ctrl-C or SIGTERM (reading stops, and what was read is written
//! whole), or by the reader of its records going away (it stops quietly).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dbtap::engine::EngineConfig;
use dbtap::pipeline::{PipelineConfig, Progress};
use dbtap::replay::{replay, ReplayReport};
use dbtap::rules::RuleSet;

mod support;
use support::{assert_success, dbtap, frames_of, json_lines, write_pcap};

/// A real sysbench session (login, prepares, executes with result sets; pcapng).
fn sysbench() -> PathBuf {
    support::capture("mysql/mariadb_sysbench_prepared")
}

/// Its server's port (the fixture's README).
const SYSBENCH_SERVER_PORT: u16 = 3316;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dbtap-interrupt-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `copies` of the sysbench session one after the other, each from a client port of its own
/// and a minute after the one before, as one classic pcap file (nanosecond timestamps): a long
/// input whose records come out all along (copies with the same ports would be one connection
/// retransmitted, answered only at its end).
fn many_sessions(dir: &Path, copies: u16) -> PathBuf {
    let frames = frames_of(&sysbench());
    let mut all = Vec::with_capacity(frames.len() * usize::from(copies));
    for copy in 0..copies {
        let client_port = 20_000 + copy;
        for (ts, data) in &frames {
            let mut data = data.clone();
            // Ethernet, IPv4 (all of the fixture's frames are): the TCP ports follow the IP header.
            assert_eq!(data[12..14], [0x08, 0x00]);
            let tcp = 14 + usize::from(data[14] & 0x0f) * 4;
            for at in [tcp, tcp + 2] {
                if u16::from_be_bytes([data[at], data[at + 1]]) != SYSBENCH_SERVER_PORT {
                    data[at..at + 2].copy_from_slice(&client_port.to_be_bytes());
                }
            }
            all.push((ts + u64::from(copy) * 60_000_000_000, data));
        }
    }
    let path = dir.join("sessions.pcap");
    write_pcap(&path, &all);
    path
}

/// Records sink that sets the replay's interrupt flag when the first records reach it, as a
/// Ctrl-C pressed once output has started would.
#[derive(Clone)]
struct InterruptingSink {
    out: Arc<Mutex<Vec<u8>>>,
    progress: Arc<Progress>,
}

impl Write for InterruptingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.progress.interrupt.store(2, Ordering::Relaxed);
        self.out.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn config(workers: usize) -> PipelineConfig {
    let rules = RuleSet::default_packs().unwrap();
    PipelineConfig {
        workers,
        engine: EngineConfig {
            rules: Some(Arc::new(rules).into()),
            ..Default::default()
        },
        alerts: None,
        baseline: None,
    }
}

fn replay_to_vec(files: &[PathBuf], progress: Arc<Progress>) -> (Vec<u8>, ReplayReport) {
    let mut out = Vec::new();
    let report = replay(files, &config(1), progress, &mut out).unwrap();
    (out, report)
}

/// The stop is wherever the reader was when the first records were written (the bounded queues
/// keep it within a few rounds of that); whatever that point, the records must be exactly those
/// of a replay of the input cut there: nothing read is lost, nothing unread is invented, and no
/// line is cut. With one worker and with two (whose output is the same as one's).
#[test]
fn an_interrupted_replay_writes_exactly_what_a_replay_of_the_input_it_read_writes() {
    let dir = scratch("cut");
    // 600 sessions, 45 MB: more than the pipeline's queues hold (about 15 rounds of 1 MB).
    let big = many_sessions(&dir, 600);
    let bytes = std::fs::read(&big).unwrap();
    for workers in [1, 2] {
        let files = vec![big.clone(), sysbench()];
        let progress = Arc::new(Progress::default());
        let sink = InterruptingSink {
            out: Arc::default(),
            progress: progress.clone(),
        };
        let report = replay(&files, &config(workers), progress, sink.clone()).unwrap();
        let interrupted = sink.out.lock().unwrap().clone();

        let stop = report
            .interrupted
            .as_ref()
            .expect("the replay was interrupted");
        assert_eq!(stop.signal, "SIGINT");
        assert_eq!(stop.files_not_read, 1);
        assert_eq!(report.files.len(), 1);
        assert_eq!(Some(stop.offset), report.files[0].interrupted_at);
        assert!(
            (stop.offset as usize) < bytes.len(),
            "{workers} workers: stopped at {} of {} bytes",
            stop.offset,
            bytes.len()
        );
        assert_eq!(interrupted.last(), Some(&b'\n'), "the last line is whole");

        // The same input, cut where the interrupt stopped the reading: the first `offset`
        // bytes (the frames before the next one).
        let cut = dir.join("cut.pcap");
        std::fs::write(&cut, &bytes[..stop.offset as usize]).unwrap();
        let (expected, cut_report) = replay_to_vec(&[cut], Arc::new(Progress::default()));

        assert!(cut_report.interrupted.is_none() && !cut_report.had_input_errors());
        assert_eq!(report.files[0].frames, cut_report.files[0].frames);
        assert!(report.run.records > 0);
        assert_eq!(report.run.records, cut_report.run.records);
        assert!(
            interrupted == expected,
            "{workers} workers: records differ from those of the cut input ({} vs {} bytes)",
            interrupted.len(),
            expected.len()
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_interrupt_before_the_first_frame_reads_nothing_and_says_so() {
    let progress = Arc::new(Progress::default());
    progress.interrupt.store(15, Ordering::Relaxed);
    let files = vec![sysbench(), sysbench()];
    let (out, report) = replay_to_vec(&files, progress);
    assert!(out.is_empty());
    let stop = report.interrupted.expect("interrupted");
    assert_eq!(stop.signal, "SIGTERM");
    assert_eq!(stop.offset, 0, "a pcapng file: nothing of it read yet");
    assert_eq!(stop.files_not_read, 1);
    assert_eq!(report.files.len(), 1);
    assert_eq!(report.files[0].frames, 0);
}

/// Waits until `path` has some bytes (the replay is writing records), for at most 60 s.
fn wait_for_output(path: &Path, child: &mut std::process::Child) {
    let start = Instant::now();
    while std::fs::metadata(path).map_or(0, |m| m.len()) == 0 {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("dbtap ended ({status}) before any record was written");
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no records after 60 s"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The real thing: `dbtap replay` signalled as a terminal's Ctrl-C or a service manager's stop
/// would: exit status 128 + the signal, every record line whole, the summary saying where.
#[test]
fn a_signalled_replay_stops_with_whole_records_a_summary_and_128_plus_the_signal() {
    for (signal, name) in [(libc::SIGINT, "SIGINT"), (libc::SIGTERM, "SIGTERM")] {
        let dir = scratch(name);
        many_sessions(&dir, 600);
        let records = dir.join("records.jsonl");
        let summary = dir.join("summary.json");
        // Listed 40 times: 1.8 GB to read, far more than is read before the signal.
        let copies = 40;
        let mut child = dbtap()
            .current_dir(&dir)
            .args([
                "replay",
                "--progress",
                "never",
                "--summary",
                "json",
                "--records",
            ])
            .arg(&records)
            .arg("--summary-file")
            .arg(&summary)
            .args(std::iter::repeat_n("sessions.pcap", copies))
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_output(&records, &mut child);
        // SAFETY: signals a child process of this test, by the id `spawn` returned.
        let rc = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(128 + signal), "{name}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "dbtap: stopped by {name} in sessions.pcap at byte "
            )),
            "{stderr}"
        );

        let written = std::fs::read(&records).unwrap();
        assert_eq!(
            written.last(),
            Some(&b'\n'),
            "{name}: the last record line is whole"
        );
        let lines = json_lines(&written);
        let s: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
        assert_eq!(s["records"], lines.len() as u64, "{name}");
        assert_eq!(s["interrupted"]["signal"], name);
        assert_eq!(s["interrupted"]["file"], "sessions.pcap");
        let read = s["files"].as_array().unwrap().len();
        assert!(
            read < copies,
            "{name}: all {copies} files were read before the signal"
        );
        assert_eq!(s["interrupted"]["files_not_read"], (copies - read) as u64);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// Without a signal nothing changes: the summary says the input was read to its end.
#[test]
fn a_replay_read_to_its_end_says_it_was_not_interrupted() {
    let out = dbtap()
        .args(["replay", "--summary", "json", "--progress", "never"])
        .arg(sysbench())
        .output()
        .unwrap();
    assert_success(&out);
    let s: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert!(s["interrupted"].is_null());
    assert!(s["files"][0].get("interrupted_at").is_none());
}

/// `dbtap replay ... | head`: once the reader of the records has gone, dbtap stops at once and
/// quietly, with the status of a command ended by SIGPIPE (as `cat` in `cat big | head`).
#[test]
fn a_replay_whose_records_reader_goes_away_stops_quietly_with_141() {
    use std::io::BufRead;
    let dir = scratch("epipe");
    many_sessions(&dir, 600);
    let mut child = dbtap()
        .current_dir(&dir)
        .args(["replay", "--progress", "never", "--summary", "text"])
        .args(std::iter::repeat_n("sessions.pcap", 40))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The reader is dropped here: the pipe's read end is closed.
    let record: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(record["op"], "login");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(141));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "no error, no summary"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
