//! The end-of-run summary: what was read, what was found, and what could not be seen.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::decode::DecodeStats;
use crate::record::rfc3339;
use crate::redirect::RedirectStats;
use crate::replay::{FileReport, Interruption, ReplayReport, TimeOverlap};
use crate::stats::EngineStats;

/// Summary of one replay (the JSON form of `--summary json`).
#[derive(Debug, Serialize)]
pub struct Summary<'a> {
    /// Files read.
    pub files: &'a [FileReport],
    /// Consecutive files whose traffic overlaps in time (given out of time order, or captured
    /// at the same time): their records are not to be trusted as one input's.
    pub time_overlaps: &'a [TimeOverlap],
    /// Where an interrupt (Ctrl-C, SIGTERM) stopped the reading; `null` when the input was read
    /// to its end.
    pub interrupted: Option<&'a Interruption>,
    /// Frames read from all files.
    pub frames: u64,
    /// Capture time of the earliest and latest frame of all files (RFC 3339, UTC), `null`
    /// without frames: the period the records cover.
    pub first_packet: Option<String>,
    pub last_packet: Option<String>,
    /// Seconds between them.
    #[serde(skip)]
    span_s: Option<f64>,
    /// File bytes read.
    pub input_bytes: u64,
    /// Worker threads.
    pub workers: usize,
    /// Wall-clock seconds.
    pub elapsed_s: f64,
    /// Input MB (10^6 bytes) per second.
    pub mb_per_s: f64,
    /// Frames per second.
    pub packets_per_s: f64,
    /// Records per second.
    pub records_per_s: f64,
    /// Records written.
    pub records: u64,
    /// Record bytes written.
    pub record_bytes: u64,
    /// TCP flows tracked.
    pub flows: u64,
    /// Sessions by protocol.
    pub sessions: BTreeMap<&'static str, u64>,
    /// Encrypted sessions by protocol (counted, not parsed).
    pub encrypted_sessions: BTreeMap<&'static str, u64>,
    /// Gaps (missing bytes) by cause.
    pub gaps: BTreeMap<&'static str, u64>,
    /// Gap bytes by cause.
    pub gap_bytes: BTreeMap<&'static str, u64>,
    /// Parser anomalies by kind, plus desyncs and abandoned sessions.
    pub parse_errors: u64,
    /// L2–L4 decode counters.
    pub decode: &'a DecodeStats,
    /// Engine counters.
    pub engine: &'a EngineStats,
    /// Server redirects announced, and the connections followed to.
    pub redirects: &'a RedirectStats,
    /// Alerts (absent when no rules ran).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alerts: Option<AlertSummary>,
}

/// The alerts of a run.
#[derive(Debug, Serialize)]
pub struct AlertSummary {
    pub total: u64,
    pub by_severity: BTreeMap<&'static str, u64>,
    pub by_rule: BTreeMap<String, u64>,
    /// Hits held back by suppression (storm control).
    pub suppressed: u64,
    /// Suppression periods that held alerts back, each reported by a line of the alerts file
    /// (not counted in `total`).
    pub suppression_reports: u64,
    /// Rule hits offered to the correlator.
    pub hits: u64,
    /// Times the correlator's group tables were emptied at their bound.
    pub groups_dropped: u64,
    /// Batch read → alert written, µs.
    pub latency_us_p50: Option<u64>,
    pub latency_us_p99: Option<u64>,
    /// With `--baseline`: values loaded at the start and saved at the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_values_loaded: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_values_saved: Option<u64>,
}

impl<'a> Summary<'a> {
    /// Summarize a replay.
    pub fn new(r: &'a ReplayReport, workers: usize) -> Self {
        let e = &r.run.engine;
        let secs = r.elapsed.as_secs_f64().max(1e-9);
        let frames: u64 = r.files.iter().map(|f| f.frames).sum();
        let input_bytes: u64 = r.files.iter().map(|f| f.bytes).sum();
        let span = r
            .files
            .iter()
            .filter_map(|f| f.span)
            .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)));
        Summary {
            files: &r.files,
            interrupted: r.interrupted.as_ref(),
            time_overlaps: &r.time_overlaps,
            frames,
            first_packet: span.map(|(lo, _)| rfc3339(lo)),
            last_packet: span.map(|(_, hi)| rfc3339(hi)),
            span_s: span.map(|(lo, hi)| (hi.0 - lo.0) as f64 / 1e9),
            input_bytes,
            workers,
            elapsed_s: round3(secs),
            mb_per_s: round3(input_bytes as f64 / 1e6 / secs),
            packets_per_s: round3(frames as f64 / secs),
            records_per_s: round3(r.run.records as f64 / secs),
            records: r.run.records,
            record_bytes: r.run.record_bytes,
            flows: e.flows,
            sessions: e.sessions_by_protocol(),
            encrypted_sessions: e.encrypted_by_protocol(),
            gaps: e.gaps_by_cause(),
            gap_bytes: e.gap_bytes_by_cause(),
            parse_errors: e.anomalies.values().sum::<u64>() + e.desyncs + e.abandoned_sessions,
            decode: &r.decode,
            engine: e,
            redirects: &r.run.redirects,
            alerts: r.run.alerts.as_ref().map(|a| AlertSummary {
                total: a.total(),
                by_severity: crate::rules::Severity::NAMES
                    .iter()
                    .zip(a.by_severity)
                    .map(|(n, c)| (*n, c))
                    .collect(),
                by_rule: a.by_rule.iter().cloned().collect(),
                suppressed: a.correlator.suppressed,
                suppression_reports: a.correlator.suppression_reports,
                hits: a.correlator.hits,
                groups_dropped: a.correlator.groups_dropped,
                latency_us_p50: a.latency_us_p50,
                latency_us_p99: a.latency_us_p99,
                baseline_values_loaded: a.baseline_seed.as_ref().map(|s| s.values),
                baseline_values_saved: a.baseline.as_ref().map(|b| b.values() as u64),
            }),
        }
    }

    /// Human-readable form.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let e = self.engine;
        let _ = writeln!(s, "dbtap replay summary");
        for f in self.files {
            // The error text starts with the path, already on this line.
            let stopped;
            let status = match (f.error.as_deref(), f.interrupted_at) {
                (Some(e), _) => e
                    .strip_prefix(f.path.as_str())
                    .map_or(e, |t| t.trim_start_matches(": ")),
                (None, Some(at)) => {
                    stopped = format!("interrupted at byte {at}");
                    &stopped
                }
                (None, None) => "ok",
            };

            let _ = writeln!(
                s,
                "  file       {}  {} frames, {} bytes  [{status}]",
                f.path, f.frames, f.bytes
            );
        }
        for line in overlap_warnings(self.time_overlaps) {
            let _ = writeln!(s, "  warning    {line}");
        }
        if let Some(i) = self.interrupted {
            let _ = writeln!(
                s,
                "  stopped    by {} in {} at byte {}{}: every record of the input before that point was written",
                i.signal,
                i.file,
                i.offset,
                match i.files_not_read {
                    0 => String::new(),
                    1 => "; 1 file after it not read".into(),
                    n => format!("; {n} files after it not read"),
                }
            );
        }
        let _ = writeln!(
            s,
            "  input      {} packet{}, {:.1} MB in {:.3} s ({:.1} MB/s, {:.0} packets/s, {} worker{})",
            self.frames,
            if self.frames == 1 { "" } else { "s" },
            self.input_bytes as f64 / 1e6,
            self.elapsed_s,
            self.mb_per_s,
            self.packets_per_s,
            self.workers,
            if self.workers == 1 { "" } else { "s" }
        );
        if let (Some(first), Some(last), Some(secs)) =
            (&self.first_packet, &self.last_packet, self.span_s)
        {
            let _ = writeln!(s, "  traffic    {first} to {last} ({})", human_span(secs));
        }
        let _ = writeln!(
            s,
            "  flows      {} TCP flows, {} unidentified",
            self.flows, e.unidentified_flows
        );
        let _ = writeln!(
            s,
            "  sessions   {}  (encrypted: {}; mid-stream: {})",
            fmt_map(&self.sessions),
            fmt_map(&self.encrypted_sessions),
            e.midstream_sessions
        );
        let rd = self.redirects;
        if rd.announced > 0 || rd.unassembled > 0 {
            let _ = writeln!(
                s,
                "  redirects  {} announced, {} followed to their connection ({} never came, {} over the limit, {} split ones over the reassembly limit)",
                rd.announced, rd.followed, rd.expired, rd.dropped, rd.unassembled
            );
        }
        let _ = writeln!(
            s,
            "  records    {} ({} without response, {:.0} records/s)",
            self.records, e.no_response, self.records_per_s
        );
        if let Some(a) = &self.alerts {
            let _ = writeln!(
                s,
                "  alerts     {}  by severity: {}  (suppressed {} in {} reports; latency p50 {} µs, p99 {} µs)",
                a.total,
                fmt_map(
                    &a.by_severity
                        .iter()
                        .filter(|(_, v)| **v > 0)
                        .map(|(k, v)| (*k, *v))
                        .collect()
                ),
                a.suppressed,
                a.suppression_reports,
                a.latency_us_p50.map_or("-".into(), |v| v.to_string()),
                a.latency_us_p99.map_or("-".into(), |v| v.to_string()),
            );
            if let (Some(loaded), Some(saved)) = (a.baseline_values_loaded, a.baseline_values_saved)
            {
                let _ = writeln!(
                    s,
                    "             baselines: {loaded} learnt values loaded, {saved} saved"
                );
            }
            if !a.by_rule.is_empty() {
                let _ = writeln!(
                    s,
                    "             by rule: {}",
                    a.by_rule
                        .iter()
                        .map(|(k, v)| format!("{k} {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        let gap_total: u64 = self.gaps.values().sum();
        let gap_bytes: u64 = self.gap_bytes.values().sum();
        let _ = writeln!(
            s,
            "  gaps       {gap_total} ({gap_bytes} bytes missing)  by cause: {}",
            fmt_map(&self.gap_bytes)
        );
        let _ = writeln!(
            s,
            "  parsing    {} parse errors (anomalies {}, desyncs {}, abandoned sessions {})",
            self.parse_errors,
            fmt_map(&e.anomalies.iter().map(|(k, v)| (*k, *v)).collect()),
            e.desyncs,
            e.abandoned_sessions
        );
        let _ = writeln!(
            s,
            "  tcp        {} out-of-order segments, {} retransmitted bytes ({} differing from the first copy, {} not compared), {} flows evicted",
            e.ooo_segments,
            e.retransmitted_bytes,
            e.overlap_mismatch_bytes,
            e.retransmit_uncompared_bytes,
            e.evicted_flows
        );
        s
    }
}

/// What to say of files out of time order: the first few overlaps, then how many more.
pub fn overlap_warnings(overlaps: &[TimeOverlap]) -> Vec<String> {
    const SHOWN: usize = 3;
    let mut lines: Vec<String> = overlaps
        .iter()
        .take(SHOWN)
        .map(|o| {
            format!(
                "{} starts at {}, before {} (given before it) ends at {}: files replayed as one input must follow each other in time (give rotated captures in time order; merge captures taken at the same time with mergecap)",
                o.later, o.later_starts, o.earlier, o.earlier_ends
            )
        })
        .collect();
    if overlaps.len() > SHOWN {
        lines.push(format!(
            "and {} more pairs of files out of time order",
            overlaps.len() - SHOWN
        ));
    }
    lines
}

/// A capture's length as a reader takes it in: `0.044 s`, `12 min 5 s`, `3 h 20 min`, `6 d 2 h`.
pub(crate) fn human_span(secs: f64) -> String {
    let whole = secs as u64;
    let (d, h, m, s) = (
        whole / 86_400,
        whole / 3600 % 24,
        whole / 60 % 60,
        whole % 60,
    );
    match whole {
        0..60 => format!("{secs:.3} s"),
        60..3600 => format!("{m} min {s} s"),
        3600..86_400 => format!("{h} h {m} min"),
        _ => format!("{d} d {h} h"),
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn fmt_map(m: &BTreeMap<&'static str, u64>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::human_span;

    #[test]
    fn spans_read_in_the_unit_that_fits() {
        assert_eq!(human_span(0.0436), "0.044 s");
        assert_eq!(human_span(59.9994), "59.999 s");
        assert_eq!(human_span(60.0), "1 min 0 s");
        assert_eq!(human_span(725.4), "12 min 5 s");
        assert_eq!(human_span(3600.0 * 3.0 + 20.0 * 60.0 + 59.0), "3 h 20 min");
        assert_eq!(human_span(86_400.0 * 6.0 + 7200.0 + 5.0), "6 d 2 h");
    }
}
