//! Rule examples: records that must raise a rule and records that must not, run by
//! `dbtap rules test` and by the test suite. Example records go through the real SQL analysis,
//! so a rule on `kind` or `objects` is tested against what the sensor will compute.

use std::net::IpAddr;

use dbtap_core::Timestamp;
use toml::Spanned;

use super::correlate::{Correlator, HitRec};
use super::facts::Facts;
use super::spec::ExamplesSpec;
use super::{RuleError, RuleSet, SourceFile};
use crate::record::Flags;
use crate::sql::{analyze, Dialect};

/// One example record (fields not given take the defaults below).
#[derive(Debug, Clone)]
pub struct ExampleRecord {
    line: usize,
    ts: Timestamp,
    protocol: String,
    session_id: u64,
    client_ip: IpAddr,
    client_port: u16,
    server_ip: IpAddr,
    server_port: u16,
    user: Option<String>,
    database: Option<String>,
    client_program: Option<String>,
    op: String,
    sql: Option<String>,
    status: String,
    error_code: Option<String>,
    rows: Option<u64>,
    latency_us: Option<u64>,
}

#[derive(Debug)]
pub struct Examples {
    matching: Vec<ExampleRecord>,
    no_match: Vec<ExampleRecord>,
}

/// `YYYY-MM-DDTHH:MM:SS[.ffffff][Z]` (UTC) → nanoseconds since the epoch.
fn parse_ts(s: &str) -> Option<Timestamp> {
    let s = s.trim_end_matches('Z');
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, dd) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|x| x.parse::<i64>());
    let (hh, mm, ss) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&dd) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from civil (proleptic Gregorian).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + dd - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let micros: i64 = format!("{frac:0<6}").get(..6)?.parse().ok()?;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    u64::try_from(secs)
        .ok()
        .map(|s| Timestamp(s * 1_000_000_000 + micros as u64 * 1000))
}

impl ExampleRecord {
    fn compile(file: &SourceFile, rule: &str, t: &Spanned<toml::Table>) -> Result<Self, RuleError> {
        let at = t.span().start;
        let err = |msg: String| file.error(at, Some(rule), msg);
        let mut r = ExampleRecord {
            line: file.line_of(at),
            ts: Timestamp(1_767_261_600_000_000_000), // 2026-01-01T10:00:00Z
            protocol: "mysql".into(),
            session_id: 1,
            client_ip: IpAddr::from([10, 0, 0, 1]),
            client_port: 50_000,
            server_ip: IpAddr::from([10, 0, 0, 2]),
            server_port: 3306,
            user: Some("app".into()),
            database: None,
            client_program: None,
            op: "query".into(),
            sql: None,
            status: "ok".into(),
            error_code: None,
            rows: None,
            latency_us: None,
        };
        for (k, v) in t.get_ref() {
            let s = || match v {
                toml::Value::String(s) => Ok(s.clone()),
                toml::Value::Integer(i) => Ok(i.to_string()),
                _ => Err(err(format!(
                    "example field `{k}` must be a string or integer"
                ))),
            };
            let n = || {
                s()?.parse::<u64>()
                    .map_err(|_| err(format!("example field `{k}` must be a number")))
            };
            let ip = || {
                s()?.parse::<IpAddr>()
                    .map_err(|_| err(format!("example field `{k}` must be an IP address")))
            };
            match k.as_str() {
                "ts" => {
                    r.ts = parse_ts(&s()?).ok_or_else(|| {
                        err(format!(
                            "example ts {:?} is not YYYY-MM-DDTHH:MM:SSZ",
                            s().unwrap_or_default()
                        ))
                    })?
                }
                "protocol" => r.protocol = s()?,
                "session_id" => r.session_id = n()?,
                "client_ip" => r.client_ip = ip()?,
                "server_ip" => r.server_ip = ip()?,
                "client_port" => {
                    r.client_port =
                        u16::try_from(n()?).map_err(|_| err("port out of range".into()))?
                }
                "server_port" => {
                    r.server_port =
                        u16::try_from(n()?).map_err(|_| err("port out of range".into()))?
                }
                "user" => r.user = Some(s()?),
                "database" => r.database = Some(s()?),
                "client_program" => r.client_program = Some(s()?),
                "op" => r.op = s()?,
                "sql" => r.sql = Some(s()?),
                "status" => r.status = s()?,
                "error_code" => r.error_code = Some(s()?),
                "rows" => r.rows = Some(n()?),
                "latency_us" => r.latency_us = Some(n()?),
                other => return Err(err(format!("unknown example field `{other}`"))),
            }
        }
        Ok(r)
    }
}

impl Examples {
    pub fn compile(
        file: &SourceFile,
        rule: &str,
        spec: &Spanned<ExamplesSpec>,
    ) -> Result<Self, RuleError> {
        let e = spec.get_ref();
        Ok(Examples {
            matching: e
                .matching
                .iter()
                .map(|t| ExampleRecord::compile(file, rule, t))
                .collect::<Result<_, _>>()?,
            no_match: e
                .no_match
                .iter()
                .map(|t| ExampleRecord::compile(file, rule, t))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// An example that did not behave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExampleFailure {
    pub rule: String,
    pub origin: String,
    pub message: String,
}

impl std::fmt::Display for ExampleFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: rule {}: {}", self.origin, self.rule, self.message)
    }
}

/// Does this sequence of records raise rule `i`? (Stateless rules: each record on its own.)
fn raises(set: &RuleSet, i: u16, recs: &[ExampleRecord]) -> Vec<bool> {
    let mut corr = Correlator::default();
    recs.iter()
        .map(|r| {
            let analysis = r
                .sql
                .as_deref()
                .map(|s| analyze(s, Dialect::of_protocol(&r.protocol)));
            let shown = match (&analysis, &r.sql) {
                (Some(a), Some(s)) => Some(a.redacted.as_deref().unwrap_or(s)),
                _ => None,
            };
            let f = Facts {
                ts: r.ts,
                protocol: &r.protocol,
                session_id: r.session_id,
                client_ip: r.client_ip,
                client_port: r.client_port,
                server_ip: r.server_ip,
                server_port: r.server_port,
                user: r.user.as_deref(),
                database: r.database.as_deref(),
                client_program: r.client_program.as_deref(),
                op: &r.op,
                sql: shown,
                analysis: analysis.as_ref(),
                status: &r.status,
                error_code: r.error_code.as_deref().map(std::borrow::Cow::Borrowed),
                rows: r.rows,
                latency_us: r.latency_us,
                flags: Flags::default(),
                sql_bits: None,
                rules: Some(set),
            };
            let rule = &set.rules[usize::from(i)];
            if !rule.when.eval(&f, set.offset_min) {
                return false;
            }
            let mut keys = String::new();
            let hit = HitRec::new(set, i, &f, &mut keys);
            corr.offer(set, &hit.view(&keys)).is_some()
        })
        .collect()
}

/// Run every rule's examples; a rule without examples is a failure (every rule must carry them).
pub fn run_examples(set: &RuleSet) -> (usize, Vec<ExampleFailure>) {
    let mut failures = Vec::new();
    let mut ran = 0;
    for (i, rule) in set.rules.iter().enumerate() {
        let fail = |failures: &mut Vec<ExampleFailure>, message: String| {
            failures.push(ExampleFailure {
                rule: rule.id.clone(),
                origin: rule.origin.clone(),
                message,
            })
        };
        let Some(ex) = &rule.examples else {
            fail(
                &mut failures,
                "has no examples (every rule carries records that must and must not match)".into(),
            );
            continue;
        };
        if ex.matching.is_empty() || ex.no_match.is_empty() {
            fail(
                &mut failures,
                "needs at least one `match` and one `no_match` example".into(),
            );
        }
        let i = i as u16;
        if rule.threshold.is_some() || rule.accumulate.is_some() || rule.baseline.is_some() {
            // A sequence: it must fire (by its last record); the no_match sequence never.
            ran += 2;
            let fired = raises(set, i, &ex.matching);
            if !fired.last().copied().unwrap_or(false) {
                fail(
                    &mut failures,
                    format!(
                        "the `match` sequence (line {}) does not fire at its last record",
                        ex.matching.first().map_or(0, |r| r.line)
                    ),
                );
            }
            if let Some(pos) = raises(set, i, &ex.no_match).iter().position(|f| *f) {
                fail(
                    &mut failures,
                    format!(
                        "the `no_match` sequence fires at record {} (line {})",
                        pos + 1,
                        ex.no_match[pos].line
                    ),
                );
            }
        } else {
            for r in &ex.matching {
                ran += 1;
                if !raises(set, i, std::slice::from_ref(r))[0] {
                    fail(
                        &mut failures,
                        format!("`match` example at line {} does not match", r.line),
                    );
                }
            }
            for r in &ex.no_match {
                ran += 1;
                if raises(set, i, std::slice::from_ref(r))[0] {
                    fail(
                        &mut failures,
                        format!("`no_match` example at line {} matches", r.line),
                    );
                }
            }
        }
    }
    (ran, failures)
}
