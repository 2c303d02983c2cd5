//! Records on their way out: serialized on the worker that owns the flow, carried to the writer
//! with a sort key that makes the output the same whatever the number of workers.
//!
//! The key is (input position, session id, operation number). The input position is the index of
//! the packet (or timer tick) in the whole replay whose processing completed the record; it does
//! not depend on how flows are spread over workers, so merging the workers' streams by key gives
//! byte-identical output with 1 or N workers.

use std::ops::Range;

use crate::record::{AuditRecord, TimeText};

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

/// Serialized records with their keys, in key order once [`RecordSink::sort`] ran.
#[derive(Debug, Default)]
pub struct RecordSink {
    buf: Vec<u8>,
    entries: Vec<(RecordKey, Range<usize>)>,
    position: u64,
    sorted: bool,
    clock: TimeText,
}

impl RecordSink {
    /// The input position records written from now on belong to.
    pub fn set_position(&mut self, position: u64) {
        self.position = position;
    }

    /// Serialize one record as a JSON line.
    pub fn write(&mut self, session_id: u64, seq: u64, record: &AuditRecord<'_>) {
        let start = self.buf.len();
        record.write_json(&mut self.buf, &mut self.clock);
        self.buf.push(b'\n');
        let key = RecordKey {
            position: self.position,
            session_id,
            seq,
        };
        if self.entries.last().is_some_and(|(last, _)| *last > key) {
            self.sorted = false;
        }
        self.entries.push((key, start..self.buf.len()));
    }

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

    /// Where the `i`-th line (in the current order) lies in [`RecordSink::bytes`].
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
