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
use std::sync::Arc;

use dbtap_core::{Completeness, ErrorCode, Request, Response, Status};

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
        let mut c = SharedContext {
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
}

impl RecordSink {
    /// A sink whose SQL stage has these options.
    pub fn new(sql: SqlOptions, rules: Option<Arc<RuleSet>>) -> Self {
        RecordSink {
            sql: SqlStage::new(sql, rules.clone()),
            rules,
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
        self.write(parts.key, &parts.record(), parts.dialect);
    }

    /// Serialize one record as a JSON line; a record with SQL text goes through the SQL stage
    /// (analysis, password redaction, masking) in `dialect`.
    pub fn write(&mut self, key: RecordKey, record: &AuditRecord<'_>, dialect: Dialect) {
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
        self.sorted = true;
    }
}
