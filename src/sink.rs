//! Records on their way out. A session completes a record as [`RecordParts`] (owned: the
//! request and response events themselves, the session's shared header and context); a
//! [`RecordSink`] turns parts into JSON lines, on the worker's record thread, carried to the
//! writer with a sort key that makes the output the same whatever the number of workers.
//!
//! Serializing on a thread of its own (SQL analysis, rule matching and JSON are about a third of
//! a worker's instructions) lets a shard use two cores: its engine parses the next round of
//! packets while the previous round's records are written.
//!
//! The key is (input position, session id, operation number). The input position is the index of
//! the packet (or timer tick) in the whole replay whose processing completed the record; it does
//! not depend on how flows are spread over workers, so merging the workers' streams by key gives
//! byte-identical output with 1 or N workers.

use std::ops::Range;

use crate::record::{
    AuditRecord, Bytes, Context, Flags, LoginDetails, SessionHeader, TimeText, SCHEMA_VERSION,
};
use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;

use dbtap_core::{Completeness, ErrorCode, Param, Request, Response, Status};

use crate::rules::correlate::{Hit, HitRec};
use crate::rules::{Facts, Matches, RuleSet};
use crate::sql::{Dialect, SqlOptions, SqlStage, SqlStats};

/// Sort key of a record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordKey {
    /// Position in the input (packets and ticks, counted from 0 over all files).
    pub position: u64,
    /// Session id.
    pub session_id: u64,
    /// Operation number within the session.
    pub seq: u64,
}

/// A session's context (user, database, client program, server version) with its JSON
/// rendering, shared by the records written while it holds: a new one is made when it changes.
#[derive(Debug, Default)]
pub struct SharedContext {
    /// Unique in the process (0 only for a default-made context): tells two contexts apart
    /// whatever their values (see [`RecordSink`]'s baseline repeats).
    pub id: u64,
    /// Database user.
    pub user: Option<String>,
    /// Default database.
    pub database: Option<String>,
    /// Client program.
    pub client_program: Option<String>,
    /// Server version.
    pub server_version: Option<String>,
    /// The four fields rendered for records (see [`AuditRecord::context_json`]).
    json: Vec<u8>,
}

impl SharedContext {
    /// A context of these values, rendered.
    pub fn new(
        user: Option<String>,
        database: Option<String>,
        client_program: Option<String>,
        server_version: Option<String>,
    ) -> Self {
        // Relaxed: the ids only need to differ, not to order anything.
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let mut c = SharedContext {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            user,
            database,
            client_program,
            server_version,
            json: Vec::new(),
        };
        Context {
            user: c.user.as_deref(),
            database: c.database.as_deref(),
            client_program: c.client_program.as_deref(),
            server_version: c.server_version.as_deref(),
        }
        .render(&mut c.json);
        c
    }
}

/// A record as its session completed it, owning what it is made of, so that another thread can
/// serialize it ([`RecordSink::write_parts`]).
#[derive(Debug)]
pub struct RecordParts {
    /// Sort key.
    pub key: RecordKey,
    /// The session's shared fields.
    pub header: Arc<SessionHeader>,
    /// The session's context when the record was completed.
    pub context: Arc<SharedContext>,
    /// The SQL dialect of the session's protocol.
    pub dialect: Dialect,
    /// Server-side connection id.
    pub connection_id: Option<u64>,
    /// The request.
    pub req: Box<Request>,
    /// Its response, when one was seen.
    pub resp: Option<Box<Response>>,
    /// Flags of the record.
    pub flags: Flags,
    /// Response bytes (of the response, or opaque bytes of an encrypted session).
    pub response_bytes: u64,
}

impl RecordParts {
    /// The record, borrowing from the parts.
    pub fn record(&self) -> AuditRecord<'_> {
        let req = &*self.req;
        let resp = self.resp.as_deref();
        let login = req.login.as_deref();
        let ctx = &*self.context;
        let lost = |c: Completeness| match c {
            Completeness::Partial { lost_bytes } => lost_bytes,
            _ => 0,
        };
        let status = match resp {
            Some(r) => r.status,
            None if !req.expects_response && !self.flags.contains(Flags::NO_RESPONSE) => Status::Ok,
            None => Status::Unknown,
        };
        AuditRecord {
            schema_version: SCHEMA_VERSION,
            ts: req.ts,
            seq: self.key.seq,
            session: &self.header,
            context: Context {
                // A login record names the user who tried, whatever the outcome.
                user: login
                    .and_then(|l| l.user.as_deref())
                    .or(ctx.user.as_deref()),
                database: login
                    .and_then(|l| l.database.as_deref())
                    .or(ctx.database.as_deref()),
                client_program: login
                    .and_then(|l| l.client_program.as_deref())
                    .or(ctx.client_program.as_deref()),
                server_version: ctx.server_version.as_deref(),
            },
            // Records of ordinary operations share the session's context: rendered once.
            context_json: login.is_none().then_some(ctx.json.as_slice()),
            op: req.op.as_ref().map_or("unknown", |o| o.as_str()),
            procedure: req.procedure.as_deref(),
            sql: req.sql.as_deref(),
            params: req.params.as_deref(),
            param_row_width: req.param_row_width,
            status,
            error: resp.and_then(|r| r.error.as_ref()),
            rows: resp.and_then(|r| r.rows),
            latency_us: resp.map(|r| r.ts_end.micros_since(req.ts)),
            bytes: Bytes {
                request: req.bytes,
                response: self.response_bytes,
            },
            flags: self.flags,
            stmt_id: req.stmt_id.or(resp.and_then(|r| r.stmt_id)),
            connection_id: self.connection_id,
            insert_id: resp.and_then(|r| r.insert_id),
            warnings: resp.and_then(|r| r.warnings),
            lost_bytes: lost(req.completeness) + resp.map_or(0, |r| lost(r.completeness)),
            login: login.map(|l| LoginDetails {
                auth_method: l.auth_method.as_deref(),
                attributes: &l.attributes,
                credentials_redacted: l.credentials_redacted,
            }),
            attributes: &req.attributes,
        }
    }
}

/// Records completed by a worker's sessions, waiting to be serialized, with the input position
/// they belong to.
#[derive(Debug, Default)]
pub struct RecordQueue {
    position: u64,
    parts: Vec<RecordParts>,
}

impl RecordQueue {
    /// The input position records completed from now on belong to.
    pub fn set_position(&mut self, position: u64) {
        self.position = position;
    }

    /// The input position records completed now belong to.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Queue a completed record.
    pub fn push(&mut self, parts: RecordParts) {
        self.parts.push(parts);
    }

    /// Take the queued records, leaving `fresh` (emptied) in their place.
    /// (`fresh` may still hold records serialized elsewhere: they are dropped here.)
    pub fn take(&mut self, mut fresh: Vec<RecordParts>) -> Vec<RecordParts> {
        fresh.clear();
        std::mem::replace(&mut self.parts, fresh)
    }
}

/// A worker's record output: the SQL stage and the serializer, writing into a [`RecordBatch`]
/// that the pipeline takes away at each round.
#[derive(Default)]
pub struct RecordSink {
    batch: RecordBatch,
    clock: TimeText,
    sql: SqlStage,
    /// Rules matched on each record (stateless conditions); hits travel with the record.
    rules: Option<Arc<RuleSet>>,
    matches: Matches,
    /// Per rule: a baseline whose hits are settled by the session, its context and the
    /// statement's fingerprint ([`Rule::settled_by_fingerprint`](crate::rules::Rule)).
    fingerprint_baselines: Vec<bool>,
    /// Hits of those rules already passed on: (rule, session, context id, fingerprint).
    baseline_seen: HashSet<(u16, u64, u64, u64), rustc_hash::FxBuildHasher>,
    /// Deferred bind values of the record being written, decoded (reused between records).
    params: Vec<Param>,
}

/// Entries of [`RecordSink`]'s `baseline_seen` before it starts over (~40 bytes each). Starting
/// over only passes some repeats on again, which the correlator then finds known.
const MAX_BASELINE_SEEN: usize = 1 << 16;

impl RecordSink {
    /// A sink whose SQL stage has these options.
    pub fn new(sql: SqlOptions, rules: Option<Arc<RuleSet>>) -> Self {
        let fingerprint_baselines = rules.as_ref().map_or(Vec::new(), |r| {
            r.rules.iter().map(|r| r.settled_by_fingerprint()).collect()
        });
        RecordSink {
            sql: SqlStage::new(sql, rules.clone()),
            rules,
            fingerprint_baselines,
            ..RecordSink::default()
        }
    }

    /// Serialize the records of `queue` (emptying it).
    pub fn write_queue(&mut self, queue: &mut RecordQueue) {
        for parts in queue.parts.drain(..) {
            self.write_parts(&parts);
        }
    }

    /// Serialize one completed record.
    pub fn write_parts(&mut self, parts: &RecordParts) {
        // A login record names who tried to log in rather than the session's context: it is
        // not of that context.
        let context_id = match parts.req.login {
            Some(_) => 0,
            None => parts.context.id,
        };
        let Some(deferred) = &parts.req.deferred_params else {
            self.write(parts.key, &parts.record(), parts.dialect, context_id);
            return;
        };
        // Bind values the parser left as wire bytes are decoded here, on this thread, and
        // freed here.
        let mut params = std::mem::take(&mut self.params);
        deferred.0.decode_into(&mut params);
        let mut record = parts.record();
        record.params = Some(&params);
        self.write(parts.key, &record, parts.dialect, context_id);
        params.clear();
        self.params = params;
    }

    /// Serialize one record as a JSON line; a record with SQL text goes through the SQL stage
    /// (analysis, password redaction, masking) in `dialect`. `context_id` is its
    /// [`SharedContext::id`] (0: none).
    pub fn write(
        &mut self,
        key: RecordKey,
        record: &AuditRecord<'_>,
        dialect: Dialect,
        context_id: u64,
    ) {
        let session_id = key.session_id;
        let view = record.sql.map(|sql| self.sql.view(dialect, sql));
        let b = &mut self.batch;
        let start = b.buf.len();
        record.write_json(&mut b.buf, &mut self.clock, view.as_ref());
        b.buf.push(b'\n');
        if b.entries.last().is_some_and(|e| e.key > key) {
            b.sorted = false;
        }
        let hits_start = b.hits.len() as u32;
        if let Some(rules) = &self.rules {
            let error_code = record.error.map(|e| match &e.code {
                ErrorCode::Num(n) => Cow::Owned(n.to_string()),
                ErrorCode::Text(t) => Cow::Borrowed(t.as_str()),
            });
            let facts = Facts {
                ts: record.ts,
                protocol: record.session.protocol,
                session_id,
                client_ip: record.session.client.ip,
                client_port: record.session.client.port,
                server_ip: record.session.server.ip,
                server_port: record.session.server.port,
                user: record.context.user,
                database: record.context.database,
                client_program: record.context.client_program,
                op: record.op,
                sql: view.as_ref().map(|v| v.shown),
                analysis: view.as_ref().map(|v| v.analysis),
                status: record.status_str(),
                error_code,
                rows: record.rows,
                latency_us: record.latency_us,
                flags: record.flags,
                // A record without a statement has the statement bits of no statement.
                sql_bits: Some(
                    view.as_ref()
                        .map_or(rules.no_statement_bits(), |v| v.rule_bits),
                ),
                rules: Some(rules),
            };
            rules.matches(&facts, &mut self.matches);
            for &m in &self.matches {
                // A fingerprint baseline's hit is the same (key, value) pair every time the
                // session runs the statement again in the same context. The correlator learnt
                // the pair from the first one and only counts the others: count them here
                // instead of building their keys and passing them on (most statements of an
                // application are repeats).
                if let (true, Some(a), 1..) = (
                    self.fingerprint_baselines.get(usize::from(m)) == Some(&true),
                    facts.analysis,
                    context_id,
                ) {
                    if self.baseline_seen.len() >= MAX_BASELINE_SEEN {
                        self.baseline_seen.clear();
                    }
                    if !self
                        .baseline_seen
                        .insert((m, session_id, context_id, a.fingerprint))
                    {
                        b.repeated_hits += 1;
                        continue;
                    }
                }
                b.hits.push(HitRec::new(rules, m, &facts, &mut b.hit_keys));
            }
        }
        b.entries.push(Entry {
            key,
            line: start..b.buf.len(),
            hits: hits_start..b.hits.len() as u32,
        });
    }

    /// The records written so far, in key order.
    pub fn batch(&mut self) -> &mut RecordBatch {
        self.batch.sort();
        &mut self.batch
    }

    /// Take the records written so far (in key order), leaving `fresh` (emptied) in their place.
    pub fn take(&mut self, mut fresh: RecordBatch) -> RecordBatch {
        fresh.clear();
        // A batch new to the pool (the writer has not given one back yet) is sized like the
        // last one at once, rather than regrown by doubling, copying what it holds each time.
        fresh.reserve_like(&self.batch);
        self.batch.sort();
        std::mem::replace(&mut self.batch, fresh)
    }

    /// Counters of the SQL stage.
    pub fn sql_stats(&self) -> SqlStats {
        self.sql.stats
    }
}

/// Serialized records with their keys, in key order once [`RecordBatch::sort`] ran.
#[derive(Debug)]
pub struct RecordBatch {
    buf: Vec<u8>,
    entries: Vec<Entry>,
    /// Rule hits of the records (each entry's `hits` range).
    hits: Vec<HitRec>,
    /// The key texts of `hits`.
    hit_keys: String,
    /// See [`RecordBatch::repeated_hits`].
    repeated_hits: u64,
    sorted: bool,
}

/// One record of a batch.
#[derive(Debug, Clone)]
struct Entry {
    key: RecordKey,
    line: Range<usize>,
    hits: Range<u32>,
}

impl Default for RecordBatch {
    fn default() -> Self {
        RecordBatch {
            buf: Vec::new(),
            entries: Vec::new(),
            hits: Vec::new(),
            hit_keys: String::new(),
            repeated_hits: 0,
            sorted: true,
        }
    }
}

impl RecordBatch {
    /// Number of records.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of serialized records.
    pub fn byte_len(&self) -> usize {
        self.buf.len()
    }

    /// Put the records in key order (records of one input position may come from several
    /// sessions, e.g. at a timer tick; within a session they are already in order).
    pub fn sort(&mut self) {
        if !self.sorted {
            self.entries.sort_by_key(|e| e.key);
            self.sorted = true;
        }
    }

    /// Keys and lines, in the current order.
    pub fn iter(&self) -> impl Iterator<Item = (RecordKey, &[u8])> {
        self.entries
            .iter()
            .map(|e| (e.key, self.buf.get(e.line.clone()).unwrap_or_default()))
    }

    /// Hits not passed on because they repeat a baseline pair already passed on (see
    /// [`RecordSink::write`]); the correlator adds them to its count of hits.
    pub fn repeated_hits(&self) -> u64 {
        self.repeated_hits
    }

    /// The `i`-th key and line, in the current order.
    pub fn get(&self, i: usize) -> Option<(RecordKey, &[u8])> {
        let e = self.entries.get(i)?;
        Some((e.key, self.buf.get(e.line.clone())?))
    }

    /// Where the `i`-th line (in the current order) lies in [`RecordBatch::bytes`].
    pub fn span(&self, i: usize) -> Option<Range<usize>> {
        self.entries.get(i).map(|e| e.line.clone())
    }

    /// Rule hits of the `i`-th record (in the current order).
    pub fn hits(&self, i: usize) -> impl ExactSizeIterator<Item = Hit<'_>> + '_ {
        self.entries
            .get(i)
            .and_then(|e| self.hits.get(e.hits.start as usize..e.hits.end as usize))
            .unwrap_or_default()
            .iter()
            .map(|h| h.view(&self.hit_keys))
    }

    /// The serialized records, in the order they were written.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Lines, in the current order.
    pub fn lines(&self) -> impl Iterator<Item = &[u8]> {
        self.iter().map(|(_, l)| l)
    }

    /// Room, in this emptied batch, for as much as `other` holds and an eighth more (rounds
    /// vary in size; a batch regrown while being written copies all it holds).
    fn reserve_like(&mut self, other: &RecordBatch) {
        fn room<T>(v: &mut Vec<T>, len: usize) {
            let want = len + len / 8;
            if v.capacity() < want {
                // Empty, so a new allocation loses nothing: growing it in place would copy
                // its old (stale) contents.
                debug_assert!(v.is_empty());
                *v = Vec::with_capacity(want);
            }
        }
        room(&mut self.buf, other.buf.len());
        room(&mut self.entries, other.entries.len());
        room(&mut self.hits, other.hits.len());
        let keys = other.hit_keys.len();
        if self.hit_keys.capacity() < keys + keys / 8 {
            self.hit_keys = String::with_capacity(keys + keys / 8);
        }
    }

    /// Empty it, keeping its allocations.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.entries.clear();
        self.hits.clear();
        self.hit_keys.clear();
        self.repeated_hits = 0;
        self.sorted = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::alerts::AlertStage;
    use crate::rules::AlertReport;
    use crate::testkit::ep;
    use dbtap_core::{Op, Timestamp};
    use std::time::Instant;

    /// A baseline of statements per user and program (learning for no time: every new
    /// statement fires), one per user and normalized text (not settled by the fingerprint),
    /// and an accumulator of rows per session.
    const RULES: &str = r#"
[[rule]]
id = "T-BASE-FP"
title = "new statement"
severity = "low"
category = "policy"
when = { field = "kind", in = ["select", "update"] }
baseline = { learn_secs = 0, key = ["user", "client_program"], value = "fingerprint" }

[[rule]]
id = "T-BASE-TEXT"
title = "new text"
severity = "low"
category = "policy"
when = { field = "kind", equals = "select" }
baseline = { learn_secs = 0, key = ["user"], value = "normalized" }

[[rule]]
id = "T-ROWS"
title = "rows"
severity = "low"
category = "policy"
when = { field = "kind", equals = "select" }
accumulate = { field = "rows", at_least = 5, window_secs = 60, group_by = ["session_id"] }
"#;

    fn parts(
        header: &Arc<SessionHeader>,
        context: &Arc<SharedContext>,
        seq: u64,
        sql: &str,
    ) -> RecordParts {
        let ts = Timestamp::from_parts(1_000 + seq, 0);
        RecordParts {
            key: RecordKey {
                position: seq,
                session_id: header.session_id,
                seq,
            },
            header: header.clone(),
            context: context.clone(),
            dialect: Dialect::MySql,
            connection_id: None,
            req: Box::new(Request {
                tx: seq,
                ts,
                op: Some(Op::QUERY),
                sql: Some(sql.into()),
                expects_response: true,
                ..Request::default()
            }),
            resp: Some(Box::new(Response {
                tx: seq,
                ts_end: ts,
                status: Status::Ok,
                rows: Some(1),
                ..Response::default()
            })),
            flags: Flags::default(),
            response_bytes: 0,
        }
    }

    /// Every hit of the sink's batch, offered to a fresh alert stage; its report.
    fn alerts_of(rules: &Arc<RuleSet>, batch: &RecordBatch) -> AlertReport {
        let mut stage = AlertStage::new(rules.clone(), None, None);
        stage.count_repeated_hits(batch.repeated_hits());
        for (i, (_, line)) in batch.iter().enumerate() {
            stage.record(batch.hits(i), line, Instant::now()).unwrap();
        }
        stage.finish().unwrap()
    }

    #[test]
    fn repeated_fingerprint_baseline_hits_are_counted_not_passed_on_with_the_same_alerts() {
        let mut set = RuleSet::default();
        set.add_text("t.toml", RULES).unwrap();
        let rules = Arc::new(set);
        let header = Arc::new(SessionHeader::new("mysql", 7, ep(1, 40000), ep(2, 3306)));
        let app = Arc::new(SharedContext::new(
            Some("app".into()),
            None,
            Some("HIS".into()),
            None,
        ));
        // The same session after a change of user: another context.
        let admin = Arc::new(SharedContext::new(
            Some("admin".into()),
            None,
            Some("HIS".into()),
            None,
        ));
        let script = [
            (&app, "SELECT a FROM t WHERE id = 1"),
            (&app, "SELECT b FROM t WHERE id = 1"),
            (&app, "SELECT a FROM t WHERE id = 2"),
            (&app, "select a from t where id = 3"),
            (&app, "UPDATE t SET a = 1 WHERE id = 4"),
            (&app, "SELECT b FROM t WHERE id = 9"),
            (&admin, "SELECT a FROM t WHERE id = 5"),
            (&app, "UPDATE t SET a = 2 WHERE id = 5"),
        ];
        let mut skipping = RecordSink::new(SqlOptions::default(), Some(rules.clone()));
        let mut passing = RecordSink::new(SqlOptions::default(), Some(rules.clone()));
        passing.fingerprint_baselines.clear();
        for (seq, (context, sql)) in script.iter().enumerate() {
            let p = parts(&header, context, seq as u64, sql);
            skipping.write_parts(&p);
            passing.write_parts(&p);
        }
        let (skipped, passed) = (skipping.batch(), passing.batch());
        assert_eq!(skipped.bytes(), passed.bytes());
        let count = |b: &RecordBatch, id: &str| {
            (0..b.len())
                .flat_map(|i| b.hits(i))
                .filter(|h| rules.rules[usize::from(h.rule)].id == id)
                .count()
        };
        // Fingerprints: `select a … = ?` by app (4 times), `select b … = ?` by app (twice),
        // the update by app (twice), `select a … = ?` by admin (once).
        assert_eq!(count(passed, "T-BASE-FP"), 8);
        assert_eq!(count(skipped, "T-BASE-FP"), 4);
        assert_eq!(skipped.repeated_hits(), 4);
        // The other rules' hits all go on.
        for id in ["T-BASE-TEXT", "T-ROWS"] {
            assert_eq!(count(skipped, id), count(passed, id), "{id}");
        }
        assert_eq!(count(skipped, "T-BASE-TEXT"), 6);

        let (a, b) = (alerts_of(&rules, skipped), alerts_of(&rules, passed));
        assert_eq!(a.by_rule, b.by_rule);
        assert_eq!(a.correlator, b.correlator);
        assert_eq!(
            a.by_rule,
            [
                ("T-BASE-FP".to_string(), 4),
                ("T-BASE-TEXT".to_string(), 3),
                ("T-ROWS".to_string(), 1)
            ]
        );
        assert_eq!(a.correlator.hits, 8 + 6 + 6);
    }
}
