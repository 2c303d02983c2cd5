//! Replay: capture files → decode → pipeline → records, with a summary of everything counted.
//!
//! Files are read one after the other, in the order given, as one input (so a capture split by
//! `tcpdump -C`/`-G` replays as one). A damaged file stops at the damage: everything before it is
//! processed, the error names the file and byte offset, and the other files still run.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::capture::{CaptureReader, Timestamp};
use crate::decode::{DecodeLimits, DecodeStats, Decoded, Decoder};
use crate::engine::{Segment, TcpFlags};
use crate::pipeline::{self, Feeder, PipelineConfig, PipelineError, Progress, RunOutcome};
use crate::record::{rfc3339, Endpoint};

/// Frames between two updates of the shared progress counters.
const PROGRESS_EVERY: u64 = 4096;

/// Frames between two looks at the interrupt flag (a power of two: the test is a mask).
const STOP_CHECK_EVERY: u64 = 64;

/// What was read from one file.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FileReport {
    /// The path as given (`stdin` for `-`).
    pub path: String,
    /// Frames read.
    pub frames: u64,
    /// File bytes read.
    pub bytes: u64,
    /// Why reading stopped early, with the byte offset.
    pub error: Option<String>,
    /// Reading stopped here on an interrupt, at this offset of the capture stream (of the
    /// decompressed stream for a gzip file): the next frame's first byte.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interrupted_at: Option<u64>,
    /// Capture time of its earliest and latest frame (RFC 3339, UTC), `null` without frames:
    /// the period its records cover.
    pub first_packet: Option<String>,
    pub last_packet: Option<String>,
    /// The same, as timestamps (for the run's span).
    #[serde(skip)]
    pub span: Option<(Timestamp, Timestamp)>,
}

/// Where a replay stopped on an interrupt (`Progress::interrupt`).
#[derive(Debug, Clone, Serialize)]
pub struct Interruption {
    /// What asked it to stop: the signal's name (`SIGINT`, `SIGTERM`), or its number.
    pub signal: String,
    /// The file being read then.
    pub file: String,
    /// The offset of its next frame then (in the decompressed stream for a gzip file): every
    /// frame before it was replayed, none after.
    pub offset: u64,
    /// Files given after it, not read at all.
    pub files_not_read: usize,
}

/// Two files given one after the other whose traffic overlaps in time: the later one starts
/// before the earlier one ends. Files replayed as one input must follow each other in time
/// (rotated captures): `cap.pcap10` sorted before `cap.pcap2` by a shell glob, or two captures
/// taken at the same time, make the second's packets come "back in time", and its sessions are
/// cut and retransmitted as the reassembly sees them.
#[derive(Debug, Clone, Serialize)]
pub struct TimeOverlap {
    /// The file given first, and when its traffic ends.
    pub earlier: String,
    pub earlier_ends: String,
    /// The file given right after it, and when its traffic starts.
    pub later: String,
    pub later_starts: String,
}

/// Everything a replay counted.
#[derive(Debug, Default)]
pub struct ReplayReport {
    /// Consecutive files whose traffic overlaps in time (see [`TimeOverlap`]).
    pub time_overlaps: Vec<TimeOverlap>,
    /// Per file read (files after an interrupt are not listed).
    pub files: Vec<FileReport>,
    /// Set when an interrupt stopped the reading before the end of the input.
    pub interrupted: Option<Interruption>,
    /// L2–L4 decode counters.
    pub decode: DecodeStats,
    /// Pipeline and engine counters.
    pub run: RunOutcome,
    /// Wall-clock time of the replay.
    pub elapsed: Duration,
}

impl ReplayReport {
    /// True when a file could not be read to its end.
    pub fn had_input_errors(&self) -> bool {
        self.files.iter().any(|f| f.error.is_some())
    }
}

/// Replay `files` into `out` (JSON lines).
pub fn replay<W: Write + Send>(
    files: &[PathBuf],
    cfg: &PipelineConfig,
    progress: Arc<Progress>,
    out: W,
) -> Result<ReplayReport, PipelineError> {
    let started = Instant::now();
    // Unknown (0) when an input is a pipe or standard input: it has no size to show progress of.
    // A missing file reads as its error, and adds nothing.
    let total: u64 = files
        .iter()
        .map(|p| match std::fs::metadata(p) {
            _ if p.as_os_str() == crate::capture::STDIN => None,
            Ok(m) if !m.is_file() => None,
            m => Some(m.map_or(0, |m| m.len())),
        })
        .sum::<Option<u64>>()
        .unwrap_or(0);
    progress.input_total.store(total, Ordering::Relaxed);
    let mut reports = Vec::new();
    let mut interrupted = None;
    let mut decoder = Decoder::new(DecodeLimits::default());
    let source = |feeder: &mut Feeder| -> Result<(), ()> {
        let mut done_bytes = 0u64;
        for (i, path) in files.iter().enumerate() {
            let report = read_file(path, &mut decoder, feeder, &progress, done_bytes);
            done_bytes += report.bytes;
            let stopped = report.interrupted_at.is_some();
            reports.push(report);
            if stopped {
                interrupted = Some(i);
                break;
            }
            if feeder.stopped() {
                // The run failed (its error is what `run` returns): reading on is wasted.
                break;
            }
        }
        // The rest is as at the end of the input: every flow is closed and its open requests
        // written (flagged as unanswered), so the records of everything read are complete.
        Ok(())
    };
    let (run, _) = pipeline::run(cfg, progress.clone(), out, source)?;
    let interrupted = interrupted.and_then(|i| {
        let file = reports.get(i)?;
        Some(Interruption {
            signal: signal_name(progress.interrupt.load(Ordering::Relaxed)),
            file: file.path.clone(),
            offset: file.interrupted_at?,
            files_not_read: files.len() - i - 1,
        })
    });
    Ok(ReplayReport {
        time_overlaps: time_overlaps(&reports),
        files: reports,
        interrupted,
        decode: decoder.stats().clone(),
        run,
        elapsed: started.elapsed(),
    })
}

/// Consecutive files (with frames) whose traffic overlaps: the later starts before the earlier
/// ends.
fn time_overlaps(files: &[FileReport]) -> Vec<TimeOverlap> {
    let with_frames: Vec<(&FileReport, (Timestamp, Timestamp))> =
        files.iter().filter_map(|f| Some((f, f.span?))).collect();
    with_frames
        .windows(2)
        .filter_map(|pair| {
            let [(a, (_, a_end)), (b, (b_start, _))] = pair else {
                return None;
            };
            (b_start < a_end).then(|| TimeOverlap {
                earlier: a.path.clone(),
                earlier_ends: rfc3339(*a_end),
                later: b.path.clone(),
                later_starts: rfc3339(*b_start),
            })
        })
        .collect()
}

/// The signal's name (`SIGINT`, `SIGTERM`, …); a value that is no signal as its number.
fn signal_name(n: usize) -> String {
    i32::try_from(n)
        .ok()
        .and_then(signal_hook::low_level::signal_name)
        .map_or_else(|| n.to_string(), str::to_owned)
}

fn read_file(
    path: &Path,
    decoder: &mut Decoder,
    feeder: &mut Feeder,
    progress: &Progress,
    before: u64,
) -> FileReport {
    let mut report = FileReport {
        path: crate::capture::input_name(path),
        ..Default::default()
    };
    let mut reader = match CaptureReader::open(path) {
        Ok(r) => r,
        Err(e) => {
            report.error = Some(e.to_string());
            return report;
        }
    };
    // Earliest and latest capture time (frames of several interfaces need not come in time
    // order); `lo > hi` until the first frame.
    let (mut lo, mut hi) = (u64::MAX, 0u64);
    loop {
        // Every few frames (a fraction of a millisecond of reading): stop on an interrupt, or
        // once the run has failed (its error is what the pipeline returns) and reading on is
        // wasted. Frame 0 included: an interrupt before it reads nothing.
        if report.frames % STOP_CHECK_EVERY == 0 {
            if progress.interrupt.load(Ordering::Relaxed) != 0 {
                report.interrupted_at = Some(reader.stream_offset());
                break;
            }
            if feeder.stopped() {
                break;
            }
        }
        let frame = match reader.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                report.error = Some(e.to_string());
                break;
            }
        };
        report.frames += 1;
        lo = lo.min(frame.ts.0);
        hi = hi.max(frame.ts.0);
        if let Decoded::Tcp(p) = decoder.decode(&frame) {
            let seg = Segment {
                ts: frame.ts,
                src: Endpoint {
                    ip: p.src,
                    port: p.sport,
                },
                dst: Endpoint {
                    ip: p.dst,
                    port: p.dport,
                },
                seq: p.seq,
                ack: p.ack,
                flags: TcpFlags {
                    syn: p.flags.syn,
                    ack: p.flags.ack,
                    fin: p.flags.fin,
                    rst: p.flags.rst,
                },
                payload: p.payload,
                missing: p.missing,
            };
            feeder.push(&seg, frame.block);
        }
        if report.frames % PROGRESS_EVERY == 0 {
            progress.frames.fetch_add(PROGRESS_EVERY, Ordering::Relaxed);
            progress
                .input_bytes
                .store(before + reader.position(), Ordering::Relaxed);
        }
    }
    progress
        .frames
        .fetch_add(report.frames % PROGRESS_EVERY, Ordering::Relaxed);
    report.bytes = reader.position();
    let span = (lo <= hi).then_some((Timestamp(lo), Timestamp(hi)));
    report.span = span;
    report.first_packet = span.map(|(lo, _)| rfc3339(lo));
    report.last_packet = span.map(|(_, hi)| rfc3339(hi));
    progress
        .input_bytes
        .store(before + report.bytes, Ordering::Relaxed);
    report
}
