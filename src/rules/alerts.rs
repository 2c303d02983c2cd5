//! Alerts: rendered in the writer as the records that trigger them are written, one JSON object
//! per line, in the records' order (the same for any number of workers).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hdrhistogram::Histogram;

use super::baseline::BaselineFile;
use super::correlate::{BaselineSeed, Closed, Correlator, CorrelatorStats, Ended, Fired, Hit};
use super::RuleSet;
use crate::json::JsonOut;
use crate::record::format_rfc3339_micros;

/// Where alerts go (`--alerts PATH`).
#[derive(Clone)]
pub struct AlertOutput(pub Arc<Mutex<Box<dyn Write + Send>>>);

impl std::fmt::Debug for AlertOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AlertOutput")
    }
}

impl AlertOutput {
    pub fn new(w: impl Write + Send + 'static) -> Self {
        AlertOutput(Arc::new(Mutex::new(Box::new(w))))
    }
}

/// What the run's alerts were.
#[derive(Debug, Clone, Default)]
pub struct AlertReport {
    /// Alerts written, by severity (info … critical).
    pub by_severity: [u64; 5],
    /// Alerts written, by rule id (rules that fired at least once), in rule order.
    pub by_rule: Vec<(String, u64)>,
    pub correlator: CorrelatorStats,
    /// Read of the triggering packet's batch → alert written, µs: p50 and p99 (None without
    /// alerts).
    pub latency_us_p50: Option<u64>,
    pub latency_us_p99: Option<u64>,
    /// With `--baseline`: what was loaded, and the learnt state to save.
    pub baseline_seed: Option<BaselineSeed>,
    pub baseline: Option<BaselineFile>,
}

impl AlertReport {
    pub fn total(&self) -> u64 {
        self.by_severity.iter().sum()
    }
}

/// The writer's alert stage.
pub struct AlertStage {
    rules: Arc<RuleSet>,
    out: Option<std::io::BufWriter<Box<dyn Write + Send>>>,
    correlator: Correlator,
    counts: Vec<u64>,
    by_severity: [u64; 5],
    latency: Option<Histogram<u64>>,
    line: Vec<u8>,
    pending_flush: bool,
    baseline_seed: Option<BaselineSeed>,
    /// Suppression reports written (added to the correlator's counters at the end).
    correlator_reports: u64,
}

impl AlertStage {
    /// `baseline`: learnt baselines to start from (`--baseline`); when given, the learnt state
    /// comes back in the report to be saved.
    pub fn new(
        rules: Arc<RuleSet>,
        out: Option<AlertOutput>,
        baseline: Option<&BaselineFile>,
    ) -> AlertStage {
        // The writer is the only user of the output for the whole run.
        let out = out.and_then(|o| {
            let mut guard = o.0.lock().ok()?;
            let w: Box<dyn Write + Send> =
                std::mem::replace(&mut *guard, Box::new(std::io::sink()));
            Some(std::io::BufWriter::new(w))
        });
        let n = rules.rules.len();
        let mut correlator = Correlator::default();
        let baseline_seed = baseline.map(|b| correlator.seed_baselines(&rules, b));
        AlertStage {
            rules,
            out,
            correlator,
            baseline_seed,
            counts: vec![0; n],
            by_severity: [0; 5],
            latency: Histogram::new_with_bounds(1, 3_600_000_000, 3).ok(),
            line: Vec::with_capacity(1024),
            pending_flush: false,
            correlator_reports: 0,
        }
    }

    /// The hits of one record being written (`record` is its JSON line).
    pub fn record<'k>(
        &mut self,
        hits: impl IntoIterator<Item = Hit<'k>>,
        record: &[u8],
        read_at: Instant,
    ) -> std::io::Result<()> {
        for hit in hits {
            self.correlator.expire(hit.ts);
            self.write_closed()?;
            let fired = self.correlator.offer(&self.rules, &hit);
            // Group tables emptied at their bound (in `offer`) report what they held back.
            self.write_closed()?;
            let Some(fired) = fired else {
                continue;
            };
            let rule = &self.rules.rules[usize::from(fired.rule)];
            self.counts[usize::from(fired.rule)] += 1;
            self.by_severity[rule.severity as usize] += 1;
            if let Some(out) = &mut self.out {
                self.line.clear();
                render(&self.rules, &fired, record, &mut self.line);
                out.write_all(&self.line)?;
                self.pending_flush = true;
            }
            if let Some(h) = &mut self.latency {
                let _ = h.record((read_at.elapsed().as_micros() as u64).max(1));
            }
        }
        Ok(())
    }

    /// Hits the record stage counted instead of passing on: repeats of baseline pairs it had
    /// passed on before (see `RecordSink::write`), which would have changed nothing here.
    pub fn count_repeated_hits(&mut self, n: u64) {
        self.correlator.stats.hits += n;
    }

    /// Push written alerts out (called whenever the writer waits for input: alerts are not held
    /// back behind records still being parsed).
    pub fn flush(&mut self) -> std::io::Result<()> {
        if std::mem::take(&mut self.pending_flush) {
            if let Some(out) = &mut self.out {
                out.flush()?;
            }
        }
        Ok(())
    }

    /// Writes the suppression periods the correlator closed (see [`Closed`]).
    fn write_closed(&mut self) -> std::io::Result<()> {
        for c in self.correlator.take_closed() {
            self.correlator_reports += 1;
            if let Some(out) = &mut self.out {
                self.line.clear();
                render_closed(&self.rules, &c, &mut self.line);
                out.write_all(&self.line)?;
                self.pending_flush = true;
            }
        }
        Ok(())
    }

    pub fn finish(mut self) -> std::io::Result<AlertReport> {
        self.correlator.close_all(Ended::CaptureEnd);
        self.write_closed()?;
        self.correlator.stats.suppression_reports += std::mem::take(&mut self.correlator_reports);
        self.pending_flush = true;
        self.flush()?;
        let (p50, p99) = match &self.latency {
            Some(h) if !h.is_empty() => (
                Some(h.value_at_quantile(0.5)),
                Some(h.value_at_quantile(0.99)),
            ),
            _ => (None, None),
        };
        Ok(AlertReport {
            by_severity: self.by_severity,
            by_rule: self
                .rules
                .rules
                .iter()
                .zip(&self.counts)
                .filter(|(_, n)| **n > 0)
                .map(|(r, n)| (r.id.clone(), *n))
                .collect(),
            correlator: self.correlator.stats,
            latency_us_p50: p50,
            latency_us_p99: p99,
            baseline: self
                .baseline_seed
                .is_some()
                .then(|| self.correlator.export_baselines(&self.rules)),
            baseline_seed: self.baseline_seed.take(),
        })
    }
}

/// An alert line's start, up to its message: `{"ts": …, "rule": {id, title, severity,
/// category, tags}, "message": `.
fn head(j: &mut JsonOut<'_>, ts: dbtap_core::Timestamp, rule: &super::Rule) {
    let mut b = [0u8; 27];
    j.token(b"{\"ts\":");
    j.raw_str(format_rfc3339_micros(ts, &mut b).as_bytes());
    j.token(b",\"rule\":{\"id\":");
    j.str(&rule.id);
    j.token(b",\"title\":");
    j.str(&rule.title);
    j.token(b",\"severity\":");
    j.str(rule.severity.as_str());
    j.token(b",\"category\":");
    j.str(rule.category);
    j.token(b",\"tags\":");
    j.begin_array();
    for t in &rule.tags {
        j.str(t);
    }
    j.end_array();
    j.token(b"},\"message\":");
}

/// One alert as a JSON line.
fn render(rules: &RuleSet, fired: &Fired, record: &[u8], out: &mut Vec<u8>) {
    let rule = &rules.rules[usize::from(fired.rule)];
    let mut j = JsonOut::new(out);
    head(&mut j, fired.ts, rule);
    let message = match (&fired.threshold, &fired.accumulate, &fired.baseline) {
        (Some(t), _, _) => format!(
            "{}: {} in {} s from {}",
            rule.title,
            t.count,
            t.window_secs,
            t.group.replace('\u{1f}', " / ")
        ),
        (_, Some(a), _) => format!(
            "{}: {} in {} s for {}",
            rule.title,
            a.sum,
            a.window_secs,
            a.group.replace('\u{1f}', " / ")
        ),
        (_, _, Some(b)) => format!("{}: new for {}", rule.title, b.key.replace('\u{1f}', " / ")),
        _ => rule.title.clone(),
    };
    j.str(&message);
    j.token(b",\"suppressed\":");
    j.u64(fired.suppressed);
    if let Some(t) = &fired.threshold {
        j.token(b",\"threshold\":{\"group\":");
        j.str(&t.group.replace('\u{1f}', " / "));
        j.token(b",\"count\":");
        j.u64(t.count);
        j.token(b",\"window_secs\":");
        j.u64(t.window_secs);
        j.token(b",\"records\":");
        write_records(&mut j, &t.records);
        j.token(b"}");
    }
    if let Some(a) = &fired.accumulate {
        j.token(b",\"accumulate\":{\"group\":");
        j.str(&a.group.replace('\u{1f}', " / "));
        j.token(b",\"sum\":");
        j.u64(a.sum);
        j.token(b",\"at_least\":");
        j.u64(a.at_least);
        j.token(b",\"window_secs\":");
        j.u64(a.window_secs);
        j.token(b",\"records\":");
        write_records(&mut j, &a.records);
        j.token(b"}");
    }
    if let Some(b) = &fired.baseline {
        j.token(b",\"baseline\":{\"key\":");
        j.str(&b.key.replace('\u{1f}', " / "));
        j.token(b",\"value\":");
        j.str(&b.value);
        j.token(b"}");
    }
    j.token(b",\"record\":");
    // The record's own JSON line, without its newline.
    j.token(record.strip_suffix(b"\n").unwrap_or(record));
    j.token(b"}\n");
}

/// A suppression period's report as a JSON line: the rule, how many alerts it held back for
/// which group, the first and last of them, the period's end and why it is reported now.
fn render_closed(rules: &RuleSet, c: &Closed, out: &mut Vec<u8>) {
    let rule = &rules.rules[usize::from(c.rule)];
    let ts_of = |t: dbtap_core::Timestamp| {
        let mut b = [0u8; 27];
        format_rfc3339_micros(t, &mut b).to_owned()
    };
    let group = c.group.replace('\u{1f}', " / ");
    let mut j = JsonOut::new(out);
    // Written when the period is over: at its end, or at the last held alert when the run or
    // the tables ended first.
    let at = if c.ended == Ended::Period {
        c.until
    } else {
        c.last
    };
    head(&mut j, at, rule);
    j.str(&format!(
        "{}: {} more held back for {} (one alert per {} s)",
        rule.title, c.held, group, rule.suppress_secs
    ));
    j.token(b",\"suppressed\":");
    j.u64(c.held);
    j.token(b",\"suppression\":{\"group\":");
    j.str(&group);
    j.token(b",\"first\":");
    j.raw_str(ts_of(c.first).as_bytes());
    j.token(b",\"last\":");
    j.raw_str(ts_of(c.last).as_bytes());
    j.token(b",\"until\":");
    j.raw_str(ts_of(c.until).as_bytes());
    j.token(b",\"ended\":");
    j.raw_str(c.ended.as_str().as_bytes());
    j.token(b"},\"record\":null}\n");
}

/// The records behind a threshold or accumulator alert: `[{"session_id": …, "ts": …}, …]`.
fn write_records(j: &mut JsonOut<'_>, records: &[(u64, dbtap_core::Timestamp)]) {
    j.begin_array();
    for (sid, ts_ns) in records {
        let mut b = [0u8; 27];
        j.begin_object();
        j.field("session_id");
        j.raw_str(format!("{sid:016x}").as_bytes());
        j.field("ts");
        j.raw_str(format_rfc3339_micros(*ts_ns, &mut b).as_bytes());
        j.end_object();
    }
    j.end_array();
}
