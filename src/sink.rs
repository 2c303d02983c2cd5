//! Records on their way out: serialized on the worker that owns the flow, carried to the writer
//! with a sort key that makes the output the same whatever the number of workers.
//!
//! The key is (input position, session id, operation number). The input position is the index of
//! the packet (or timer tick) in the whole replay whose processing completed the record; it does
//! not depend on how flows are spread over workers, so merging the workers' streams by key gives
//! byte-identical output with 1 or N workers.

use std::ops::Range;

use crate::record::{AuditRecord, TimeText};
use std::borrow::Cow;
use std::sync::Arc;

use dbtap_core::ErrorCode;

use crate::rules::correlate::Hit;
use crate::rules::{Facts, Matches, RuleSet};
use crate::sql::{SqlOptions, SqlStage, SqlStats};

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

/// A worker's record output: the SQL stage and the serializer, writing into a [`RecordBatch`]
/// that the pipeline takes away at each round.
#[derive(Default)]
pub struct RecordSink {
    batch: RecordBatch,
    position: u64,
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

    /// The input position records written from now on belong to.
    pub fn set_position(&mut self, position: u64) {
        self.position = position;
    }

    /// Serialize one record as a JSON line; a record with SQL text goes through the SQL stage
    /// (analysis, password redaction, masking) in `dialect`.
    pub fn write(
        &mut self,
        session_id: u64,
        seq: u64,
        record: &AuditRecord<'_>,
        dialect: crate::sql::Dialect,
    ) {
        let view = record.sql.map(|sql| self.sql.view(dialect, sql));
        let b = &mut self.batch;
        let start = b.buf.len();
        record.write_json(&mut b.buf, &mut self.clock, view.as_ref());
        b.buf.push(b'\n');
        let key = RecordKey {
            position: self.position,
            session_id,
            seq,
        };
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
                sql_bits: view.as_ref().map(|v| v.rule_bits),
                rules: Some(rules),
            };
            rules.matches(&facts, &mut self.matches);
            for &m in &self.matches {
                b.hits.push(Hit::new(rules, m, &facts));
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
    hits: Vec<Hit>,
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
    pub fn hits(&self, i: usize) -> &[Hit] {
        self.entries
            .get(i)
            .and_then(|e| self.hits.get(e.hits.start as usize..e.hits.end as usize))
            .unwrap_or_default()
    }

    /// The serialized records, in the order they were written.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Lines, in the current order.
    pub fn lines(&self) -> impl Iterator<Item = &[u8]> {
        self.iter().map(|(_, l)| l)
    }

    /// Empty it, keeping its allocations.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.entries.clear();
        self.hits.clear();
        self.sorted = true;
    }
}
