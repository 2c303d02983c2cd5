//! Records on their way out: serialized on the worker that owns the flow, carried to the writer
//! with a sort key that makes the output the same whatever the number of workers.
//!
//! The key is (input position, session id, operation number). The input position is the index of
//! the packet (or timer tick) in the whole replay whose processing completed the record; it does
//! not depend on how flows are spread over workers, so merging the workers' streams by key gives
//! byte-identical output with 1 or N workers.

use std::ops::Range;

use crate::record::{AuditRecord, TimeText};
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
}

impl RecordSink {
    /// A sink whose SQL stage has these options.
    pub fn new(sql: SqlOptions) -> Self {
        RecordSink {
            sql: SqlStage::new(sql),
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
        if b.entries.last().is_some_and(|(last, _)| *last > key) {
            b.sorted = false;
        }
        b.entries.push((key, start..b.buf.len()));
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
    entries: Vec<(RecordKey, Range<usize>)>,
    sorted: bool,
}

impl Default for RecordBatch {
    fn default() -> Self {
        RecordBatch {
            buf: Vec::new(),
            entries: Vec::new(),
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
            self.entries.sort_by_key(|(k, _)| *k);
            self.sorted = true;
        }
    }

    /// Keys and lines, in the current order.
    pub fn iter(&self) -> impl Iterator<Item = (RecordKey, &[u8])> {
        self.entries
            .iter()
            .map(|(k, r)| (*k, self.buf.get(r.clone()).unwrap_or_default()))
    }

    /// The `i`-th key and line, in the current order.
    pub fn get(&self, i: usize) -> Option<(RecordKey, &[u8])> {
        let (k, r) = self.entries.get(i)?;
        Some((*k, self.buf.get(r.clone())?))
    }

    /// Where the `i`-th line (in the current order) lies in [`RecordBatch::bytes`].
    pub fn span(&self, i: usize) -> Option<Range<usize>> {
        self.entries.get(i).map(|(_, r)| r.clone())
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
        self.sorted = true;
    }
}
