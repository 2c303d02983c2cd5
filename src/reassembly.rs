//! TCP reassembly of one direction: segments in capture order → an ordered byte stream, gaps and
//! an end, handed to a callback.
//!
//! Rules (ARCHITECTURE.md, "flow + reassembly"):
//! - in-order bytes are delivered at once, straight from the packet (no copy);
//! - out-of-order segments are held (copied) within a byte and segment budget;
//! - retransmissions and overlaps: the **first copy wins**; overlapping bytes that differ from the
//!   first copy are counted (`overlap_mismatch_bytes`): against a held segment, or against the
//!   last [`RECENT_BYTES`] delivered bytes, which each direction keeps for this. A retransmission
//!   of bytes delivered before that window is counted as retransmitted and not compared
//!   (`retransmit_uncompared_bytes`);
//! - a **gap** is declared (and the held data after it delivered) when the budget overflows, when
//!   the oldest hole is older than the hole timeout **in packet time**, when the peer ACKs bytes
//!   never seen ([`HalfStream::peer_acked`]), and for snaplen-cut segments (exactly the missing
//!   bytes);
//! - a stream whose first segment is not a SYN starts where its first segment starts
//!   (mid-stream pickup; the flow marks it).
//!
//! Sequence numbers are turned into 64-bit stream offsets relative to the first byte, so that
//! wrap-around at 2^32 is handled once, here.

use std::collections::BTreeMap;

use dbtap_core::Timestamp;

/// Out-of-order bytes held per direction before a gap is declared.
pub const DEFAULT_MAX_OOO_BYTES: usize = 1024 * 1024;
/// Out-of-order segments held per direction before a gap is declared.
pub const DEFAULT_MAX_OOO_SEGMENTS: usize = 1024;
/// A hole older than this (packet time) is declared a gap.
pub const DEFAULT_HOLE_TIMEOUT_SECS: u64 = 5;
/// Delivered bytes each direction keeps to compare a retransmission with. TCP retransmits what
/// the peer has not acknowledged yet, so a retransmission nearly always repeats the latest bytes
/// of its direction; a database request (the bytes whose copy matters most: what the server
/// ran) is usually shorter than this. Kept small because every open direction has one (charged
/// to the flow's memory, see [`HalfStream::heap_bytes`]) and every delivered segment copies up to
/// this many bytes into it.
pub const RECENT_BYTES: usize = 512;
/// Segments further than this from the next expected byte are treated as bogus (a different
/// connection on a reused 4-tuple, or garbage) and counted, not buffered.
const MAX_SEQ_DISTANCE: i64 = 1 << 30;

/// Reassembly limits for one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyLimits {
    /// See [`DEFAULT_MAX_OOO_BYTES`].
    pub max_ooo_bytes: usize,
    /// See [`DEFAULT_MAX_OOO_SEGMENTS`].
    pub max_ooo_segments: usize,
    /// See [`DEFAULT_HOLE_TIMEOUT_SECS`], in nanoseconds.
    pub hole_timeout_ns: u64,
}

impl Default for ReassemblyLimits {
    fn default() -> Self {
        ReassemblyLimits {
            max_ooo_bytes: DEFAULT_MAX_OOO_BYTES,
            max_ooo_segments: DEFAULT_MAX_OOO_SEGMENTS,
            hole_timeout_ns: DEFAULT_HOLE_TIMEOUT_SECS * 1_000_000_000,
        }
    }
}

/// What reassembly hands on, in stream order.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery<'a> {
    /// In-order bytes captured at `ts`.
    Data { bytes: &'a [u8], ts: Timestamp },
    /// `len` bytes are missing here.
    Gap {
        len: u64,
        ts: Timestamp,
        cause: GapCause,
    },
    /// The direction ended.
    End { reset: bool, ts: Timestamp },
}

/// Why a gap was declared (a metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapCause {
    /// caplen < origlen: the segment was cut by the capture's snaplen.
    Snaplen,
    /// Out-of-order budget exceeded.
    Budget,
    /// A hole outlived the hole timeout.
    Timeout,
    /// The peer acknowledged bytes that were never captured.
    AckedUnseen,
    /// The stream ended (FIN/RST/expiry) with holes still open.
    Closed,
}

impl GapCause {
    /// Label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            GapCause::Snaplen => "snaplen",
            GapCause::Budget => "budget",
            GapCause::Timeout => "timeout",
            GapCause::AckedUnseen => "acked_unseen",
            GapCause::Closed => "closed",
        }
    }
    /// All causes, for metrics.
    pub const ALL: [GapCause; 5] = [
        GapCause::Snaplen,
        GapCause::Budget,
        GapCause::Timeout,
        GapCause::AckedUnseen,
        GapCause::Closed,
    ];
    /// Index into [`GapCause::ALL`].
    pub const fn index(self) -> usize {
        match self {
            GapCause::Snaplen => 0,
            GapCause::Budget => 1,
            GapCause::Timeout => 2,
            GapCause::AckedUnseen => 3,
            GapCause::Closed => 4,
        }
    }
}

/// Counters of one direction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReassemblyStats {
    /// Segments that arrived ahead of a hole and were held.
    pub ooo_segments: u64,
    /// Bytes received again after they were delivered or held (retransmissions, overlaps).
    pub retransmitted_bytes: u64,
    /// Overlapping bytes that differed from the first copy (first copy kept).
    pub overlap_mismatch_bytes: u64,
    /// Retransmitted bytes that could not be compared with the first copy: it was delivered
    /// before the last [`RECENT_BYTES`] (or lost in a gap).
    pub retransmit_uncompared_bytes: u64,
    /// Gap bytes by cause, indexed by [`GapCause::index`].
    pub gap_bytes: [u64; 5],
    /// Gaps by cause.
    pub gaps: [u64; 5],
    /// Segments ignored as too far from the stream position.
    pub bogus_segments: u64,
}

#[derive(Debug)]
struct Held {
    data: Vec<u8>,
    /// Bytes after `data` cut by snaplen.
    missing: u32,
    ts: Timestamp,
}

impl Held {
    fn len(&self) -> u64 {
        self.data.len() as u64 + self.missing as u64
    }
}

/// One direction of a TCP connection.
#[derive(Debug, Default)]
pub struct HalfStream {
    started: bool,
    /// Saw the SYN of this direction (so offset 0 is the first byte of the stream).
    syn_seen: bool,
    /// Sequence number of stream offset 0.
    base_seq: u32,
    /// Stream offset of the next byte to deliver.
    next: u64,
    held: BTreeMap<u64, Held>,
    held_bytes: usize,
    /// A lower bound of the held segments' capture times (segments leave without updating it).
    /// `on_time` runs after every packet of the flow: it looks for the true oldest only when
    /// this bound says a hole may have timed out, instead of walking up to
    /// `max_ooo_segments` held segments each time.
    oldest_bound: Option<Timestamp>,
    /// Offset of the FIN, when seen.
    fin_at: Option<u64>,
    ended: bool,
    /// Highest offset the peer acknowledged (pure ACKs are remembered, acted on later).
    peer_acked: Option<u64>,
    /// The latest delivered bytes: `recent[o % RECENT_BYTES]` holds the byte at stream offset
    /// `o` for `recent_from <= o < next` (at most [`RECENT_BYTES`] of them). Allocated at the
    /// first delivery.
    recent: Option<Box<[u8; RECENT_BYTES]>>,
    /// Oldest offset `recent` holds; bytes lost in a gap are not there, so a gap moves it up.
    recent_from: u64,
    stats: ReassemblyStats,
}

impl HalfStream {
    /// A direction nothing is known about yet.
    pub fn new() -> Self {
        HalfStream::default()
    }

    /// Whether any segment (or the SYN) of this direction was seen.
    pub fn started(&self) -> bool {
        self.started
    }

    /// Whether the SYN of this direction was seen.
    pub fn syn_seen(&self) -> bool {
        self.syn_seen
    }

    /// Whether this direction delivered its `End`.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Whether a FIN was seen (it may still wait for held bytes before it).
    pub fn fin_seen(&self) -> bool {
        self.fin_at.is_some()
    }

    /// Counters.
    pub fn stats(&self) -> &ReassemblyStats {
        &self.stats
    }

    /// Bytes held out of order.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Heap bytes of this direction (memory accounting): the held segments and the buffer of
    /// recent bytes.
    pub fn heap_bytes(&self) -> usize {
        self.held_bytes + self.recent.as_ref().map_or(0, |_| RECENT_BYTES)
    }

    /// Capture time of the oldest held segment.
    pub fn oldest_hole_ts(&self) -> Option<Timestamp> {
        self.held.values().map(|h| h.ts).min()
    }

    /// The initial sequence number of this direction, when its SYN was seen.
    pub fn isn(&self) -> Option<u32> {
        self.syn_seen.then(|| self.base_seq.wrapping_sub(1))
    }

    /// Stream offset of sequence number `seq` (valid within 2^31 of the current position).
    fn offset_of(&self, seq: u32) -> i64 {
        let cur = self.base_seq.wrapping_add(self.next as u32);
        self.next as i64 + (seq.wrapping_sub(cur) as i32) as i64
    }

    /// A SYN of this direction with sequence number `seq`: stream offset 0 is `seq + 1`.
    pub fn on_syn(&mut self, seq: u32) {
        if !self.started {
            self.started = true;
            self.syn_seen = true;
            self.base_seq = seq.wrapping_add(1);
            self.next = 0;
        }
    }

    /// A segment of this direction. `missing` payload bytes after `payload` were cut by snaplen.
    #[allow(clippy::too_many_arguments)]
    pub fn on_segment(
        &mut self,
        limits: &ReassemblyLimits,
        ts: Timestamp,
        seq: u32,
        payload: &[u8],
        missing: u32,
        fin: bool,
        out: &mut dyn FnMut(Delivery<'_>),
    ) {
        if self.ended {
            // A segment after the end of the direction: a late retransmission, compared with
            // the bytes before the end like any other.
            if let Some(start) = self.offset_in_window(seq) {
                self.compare_delivered(start, payload);
            }
            self.stats.retransmitted_bytes += payload.len() as u64;
            return;
        }
        if !self.started {
            // Mid-stream pickup: the stream starts where we start seeing it.
            self.started = true;
            self.base_seq = seq;
            self.next = 0;
        }
        let len = payload.len() as u64 + missing as u64;
        let start = self.offset_of(seq);
        if start < self.next as i64 - MAX_SEQ_DISTANCE
            || start > self.next as i64 + MAX_SEQ_DISTANCE
        {
            self.stats.bogus_segments += 1;
            return;
        }
        let end = start + len as i64;
        if fin {
            let at = end.max(0) as u64;
            if self.fin_at.is_none() {
                self.fin_at = Some(at);
            }
        }
        if len > 0 {
            if end <= self.next as i64 {
                self.stats.retransmitted_bytes += len;
                self.compare_delivered(start, payload);
            } else if start <= self.next as i64 {
                // In order, possibly overlapping what was already delivered: first copy wins.
                let overlap = (self.next as i64 - start) as u64;
                self.stats.retransmitted_bytes += overlap;
                self.compare_delivered(start, payload);
                self.deliver(ts, payload, missing, overlap, out);
                self.drain_held(out);
            } else {
                self.hold(limits, ts, start as u64, payload, missing, out);
            }
        }
        self.maybe_end(ts, out);
    }

    /// The peer acknowledged up to `ack` (a sequence number of this direction).
    /// `peer_sends` is true when the acknowledging packet carries data, FIN or RST: the peer acted
    /// on bytes we must have before its own, so holes below `ack` become gaps now. A pure ACK is
    /// only remembered (captures from a SPAN port may reorder the two directions slightly).
    pub fn peer_acked(
        &mut self,
        ts: Timestamp,
        ack: u32,
        peer_sends: bool,
        out: &mut dyn FnMut(Delivery<'_>),
    ) {
        if !self.started || self.ended {
            return;
        }
        let at = self.offset_of(ack);
        if at <= self.next as i64 || at > self.next as i64 + MAX_SEQ_DISTANCE {
            return;
        }
        // The FIN takes one sequence number: an ACK of it is not an unseen byte.
        let at = match self.fin_at {
            Some(f) if at as u64 == f + 1 => f,
            _ => at as u64,
        };
        self.peer_acked = Some(self.peer_acked.map_or(at, |p| p.max(at)));
        if peer_sends {
            self.flush_upto(ts, at, GapCause::AckedUnseen, out);
            self.maybe_end(ts, out);
        }
    }

    /// Packet time advanced to `now`: a hole older than the timeout becomes a gap.
    #[inline]
    pub fn on_time(
        &mut self,
        limits: &ReassemblyLimits,
        now: Timestamp,
        out: &mut dyn FnMut(Delivery<'_>),
    ) {
        if self.held.is_empty() {
            // Nothing held, no hole (the usual case: called for every packet of the flow, so
            // this test is inlined into the caller and the rest is not).
            self.oldest_bound = None;
            return;
        }
        self.on_time_held(limits, now, out);
    }

    fn on_time_held(
        &mut self,
        limits: &ReassemblyLimits,
        now: Timestamp,
        out: &mut dyn FnMut(Delivery<'_>),
    ) {
        let timed_out = |t: Timestamp| now.0.saturating_sub(t.0) > limits.hole_timeout_ns;
        if self.oldest_bound.is_some_and(|b| !timed_out(b)) {
            return;
        }
        self.oldest_bound = self.oldest_hole_ts();
        if let Some(oldest) = self.oldest_bound {
            if timed_out(oldest) {
                let upto = self.held_end().max(self.peer_acked.unwrap_or(0));
                self.flush_upto(now, upto, GapCause::Timeout, out);
                self.maybe_end(now, out);
            }
        }
    }

    /// The connection was reset, expired or the capture ended: deliver what is held (gaps for
    /// holes, and for bytes the peer acknowledged but we never saw), then `End`.
    pub fn close(&mut self, ts: Timestamp, reset: bool, out: &mut dyn FnMut(Delivery<'_>)) {
        if self.ended {
            return;
        }
        if self.started {
            let upto = self.held_end().max(self.peer_acked.unwrap_or(0));
            self.flush_upto(ts, upto, GapCause::Closed, out);
        }
        self.ended = true;
        out(Delivery::End { reset, ts });
    }

    fn held_end(&self) -> u64 {
        self.held
            .iter()
            .next_back()
            .map_or(self.next, |(s, h)| (s + h.len()).max(self.next))
    }

    fn maybe_end(&mut self, ts: Timestamp, out: &mut dyn FnMut(Delivery<'_>)) {
        if !self.ended && self.fin_at.is_some_and(|f| f <= self.next) && self.held.is_empty() {
            self.ended = true;
            out(Delivery::End { reset: false, ts });
        }
    }

    /// Deliver `payload` (+`missing`) whose first `skip` bytes were already delivered.
    fn deliver(
        &mut self,
        ts: Timestamp,
        payload: &[u8],
        missing: u32,
        skip: u64,
        out: &mut dyn FnMut(Delivery<'_>),
    ) {
        let total = payload.len() as u64 + missing as u64;
        if skip >= total {
            return;
        }
        if let Some(rest) = payload.get(skip as usize..) {
            if !rest.is_empty() {
                self.remember(rest);
                out(Delivery::Data { bytes: rest, ts });
            }
        }
        let missing_left = (missing as u64).min(total - skip);
        self.next += total - skip;
        if missing_left > 0 {
            self.count_gap(GapCause::Snaplen, missing_left);
            self.recent_from = self.next;
            out(Delivery::Gap {
                len: missing_left,
                ts,
                cause: GapCause::Snaplen,
            });
        }
    }

    /// Keep the last [`RECENT_BYTES`] of `bytes`, about to be delivered at `self.next`.
    #[inline]
    fn remember(&mut self, bytes: &[u8]) {
        let ring = self
            .recent
            .get_or_insert_with(|| Box::new([0u8; RECENT_BYTES]));
        let end = self.next + bytes.len() as u64;
        let keep = bytes.len().min(RECENT_BYTES);
        let from = end - keep as u64;
        let tail = bytes.get(bytes.len() - keep..).unwrap_or_default();
        // The kept bytes wrap around the ring at most once.
        let at = (from % RECENT_BYTES as u64) as usize;
        let first = keep.min(RECENT_BYTES - at);
        let (a, b) = tail.split_at(first);
        if let Some(dst) = ring.get_mut(at..at + first) {
            dst.copy_from_slice(a);
        }
        if let Some(dst) = ring.get_mut(..b.len()) {
            dst.copy_from_slice(b);
        }
        self.recent_from = self
            .recent_from
            .max(end.saturating_sub(RECENT_BYTES as u64));
    }

    /// `payload`, starting at stream offset `start`, repeats bytes already delivered (those
    /// below `self.next`): count the ones that differ from the delivered copy, and the ones no
    /// longer kept to compare.
    fn compare_delivered(&mut self, start: i64, payload: &[u8]) {
        let data_end = start + payload.len() as i64;
        let upto = data_end.min(self.next as i64);
        if upto <= start {
            return;
        }
        let from = start.max(self.recent_from as i64);
        let (mut same, mut differing) = (0u64, 0u64);
        if let Some(ring) = &self.recent {
            for o in from..upto {
                let new = payload.get((o - start) as usize);
                let old = ring.get((o as u64 % RECENT_BYTES as u64) as usize);
                match (new, old) {
                    (Some(n), Some(o)) if n == o => same += 1,
                    (Some(_), Some(_)) => differing += 1,
                    _ => {}
                }
            }
        }
        self.stats.overlap_mismatch_bytes += differing;
        self.stats.retransmit_uncompared_bytes += (upto - start) as u64 - same - differing;
    }

    /// Stream offset of `seq` when it lies within reach of the current position.
    fn offset_in_window(&self, seq: u32) -> Option<i64> {
        let start = self.offset_of(seq);
        let near = start >= self.next as i64 - MAX_SEQ_DISTANCE
            && start <= self.next as i64 + MAX_SEQ_DISTANCE;
        (self.started && near).then_some(start)
    }

    /// Deliver held segments that became contiguous.
    fn drain_held(&mut self, out: &mut dyn FnMut(Delivery<'_>)) {
        while let Some(entry) = self.held.first_entry() {
            let start = *entry.key();
            if start > self.next {
                break;
            }
            let held = entry.remove();
            self.held_bytes -= held.data.len();
            let skip = self.next - start;
            let end = start + held.len();
            // A held segment that later in-order bytes reached into: its copy of those bytes
            // came first, and is compared with what was delivered.
            self.compare_delivered(start as i64, &held.data);
            if end <= self.next {
                self.stats.retransmitted_bytes += held.len();
                continue;
            }
            self.stats.retransmitted_bytes += skip;
            self.deliver(held.ts, &held.data, held.missing, skip, out);
        }
    }

    /// Deliver everything held below `upto`, with a gap for every hole, and a final gap up to
    /// `upto` when the bytes there were never seen.
    fn flush_upto(
        &mut self,
        ts: Timestamp,
        upto: u64,
        cause: GapCause,
        out: &mut dyn FnMut(Delivery<'_>),
    ) {
        while let Some(entry) = self.held.first_entry() {
            let start = *entry.key();

            if start >= upto {
                break;
            }
            if start > self.next {
                let len = start - self.next;
                self.count_gap(cause, len);
                out(Delivery::Gap { len, ts, cause });
                self.next = start;
                self.recent_from = start;
            }
            self.drain_held(out);
        }
        if upto > self.next {
            let len = upto - self.next;
            self.count_gap(cause, len);
            out(Delivery::Gap { len, ts, cause });
            self.next = upto;
            self.recent_from = upto;
            self.drain_held(out);
        }
    }

    fn count_gap(&mut self, cause: GapCause, len: u64) {
        self.stats.gaps[cause.index()] += 1;
        self.stats.gap_bytes[cause.index()] += len;
    }

    /// Hold an out-of-order segment, keeping only bytes no held segment covers yet.
    #[allow(clippy::too_many_arguments)]
    fn hold(
        &mut self,
        limits: &ReassemblyLimits,
        ts: Timestamp,
        start: u64,
        payload: &[u8],
        missing: u32,
        out: &mut dyn FnMut(Delivery<'_>),
    ) {
        self.stats.ooo_segments += 1;
        let end = start + payload.len() as u64 + missing as u64;
        // Walk the held segments overlapping [start, end) and keep the uncovered pieces.
        let mut pieces: Vec<(u64, u64)> = Vec::new();
        let mut cursor = start;
        // Held segments do not overlap, so their ends rise with their starts: the ones
        // overlapping [start, end) are the run just below `end`, found walking down (a segment
        // beyond all held ones, the usual case, visits one).
        let mut overlapping: Vec<(u64, u64)> = self
            .held
            .range(..end)
            .rev()
            .take_while(|(s, h)| *s + h.len() > start)
            .map(|(s, h)| (*s, *s + h.len()))
            .collect();
        overlapping.reverse();
        for (s, e) in overlapping {
            if s > cursor {
                pieces.push((cursor, s));
            }
            let ov_start = s.max(start);
            let ov_end = e.min(end);
            if ov_end > ov_start {
                self.stats.retransmitted_bytes += ov_end - ov_start;
                self.compare_overlap(s, start, payload, ov_start, ov_end);
            }
            cursor = cursor.max(e);
        }
        if cursor < end {
            pieces.push((cursor, end));
        }
        let data_end = start + payload.len() as u64;
        if !pieces.is_empty() {
            self.oldest_bound = Some(match self.oldest_bound {
                Some(b) if !self.held.is_empty() => b.min(ts),
                _ => ts,
            });
        }
        for (s, e) in pieces {
            let d_from = (s - start) as usize;
            let d_to = (e.min(data_end).max(s) - start) as usize;
            let data = payload.get(d_from..d_to).unwrap_or_default().to_vec();
            let missing = (e - s) - data.len() as u64;
            self.held_bytes += data.len();
            self.held.insert(
                s,
                Held {
                    data,
                    missing: missing as u32,
                    ts,
                },
            );
        }
        if self.held_bytes > limits.max_ooo_bytes || self.held.len() > limits.max_ooo_segments {
            let upto = self.held_end();
            self.flush_upto(ts, upto, GapCause::Budget, out);
        }
    }

    /// Count bytes of `[ov_start, ov_end)` where the new payload differs from the held copy.
    fn compare_overlap(
        &mut self,
        held_start: u64,
        new_start: u64,
        payload: &[u8],
        ov_start: u64,
        ov_end: u64,
    ) {
        let Some(held) = self.held.get(&held_start) else {
            return;
        };
        let h = held
            .data
            .get((ov_start - held_start) as usize..)
            .unwrap_or_default();
        let n = payload
            .get((ov_start - new_start) as usize..)
            .unwrap_or_default();
        let len = ((ov_end - ov_start) as usize).min(h.len()).min(n.len());
        let differing = h.iter().zip(n).take(len).filter(|(a, b)| a != b).count();
        self.stats.overlap_mismatch_bytes += differing as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    enum D {
        Data(Vec<u8>),
        Gap(u64, GapCause),
        End(bool),
    }

    fn run(
        h: &mut HalfStream,
        f: impl FnOnce(&mut HalfStream, &mut dyn FnMut(Delivery<'_>)),
    ) -> Vec<D> {
        let mut got = Vec::new();
        let mut sink = |d: Delivery<'_>| {
            got.push(match d {
                Delivery::Data { bytes, .. } => D::Data(bytes.to_vec()),
                Delivery::Gap { len, cause, .. } => D::Gap(len, cause),
                Delivery::End { reset, .. } => D::End(reset),
            })
        };
        f(h, &mut sink);
        got
    }

    const L: ReassemblyLimits = ReassemblyLimits {
        max_ooo_bytes: 16,
        max_ooo_segments: 4,
        hole_timeout_ns: 1_000,
    };

    fn seg(h: &mut HalfStream, seq: u32, data: &[u8]) -> Vec<D> {
        run(h, |h, o| {
            h.on_segment(&L, Timestamp(0), seq, data, 0, false, o)
        })
    }

    #[test]
    fn in_order_after_syn() {
        let mut h = HalfStream::new();
        h.on_syn(1000);
        assert_eq!(seg(&mut h, 1001, b"abc"), vec![D::Data(b"abc".to_vec())]);
        assert_eq!(seg(&mut h, 1004, b"de"), vec![D::Data(b"de".to_vec())]);
        assert_eq!(h.isn(), Some(1000));
    }

    #[test]
    fn out_of_order_is_held_then_released_in_order() {
        let mut h = HalfStream::new();
        h.on_syn(0);
        assert_eq!(seg(&mut h, 4, b"def"), vec![]);
        assert_eq!(h.held_bytes(), 3);
        assert_eq!(
            seg(&mut h, 1, b"abc"),
            vec![D::Data(b"abc".to_vec()), D::Data(b"def".to_vec())]
        );
        assert_eq!(h.held_bytes(), 0);
        assert_eq!(h.stats().ooo_segments, 1);
    }

    /// A retransmission of delivered bytes is compared with the last `RECENT_BYTES` delivered,
    /// also where the kept bytes wrap around their ring; older bytes are counted as not
    /// compared. The first copy is what was delivered either way.
    #[test]
    fn retransmission_of_delivered_bytes_is_compared_with_the_recent_bytes() {
        let mut h = HalfStream::new();
        h.on_syn(0);
        let first: Vec<u8> = (0..300u32).map(|i| (i % 251) as u8).collect();
        let second: Vec<u8> = (0..400u32).map(|i| (i % 241) as u8 ^ 0x55).collect();
        assert_eq!(seg(&mut h, 1, &first), vec![D::Data(first.clone())]);
        assert_eq!(seg(&mut h, 301, &second), vec![D::Data(second.clone())]);
        // Offsets 300..700 are kept in ring slots 300..512 and 0..188.
        assert_eq!(seg(&mut h, 301, &second), vec![]);
        assert_eq!(h.stats().overlap_mismatch_bytes, 0);
        assert_eq!(h.stats().retransmit_uncompared_bytes, 0);
        // The same segment with two bytes changed, one each side of the wrap (offsets 310, 650).
        let mut changed = second.clone();
        changed[10] ^= 1;
        changed[350] ^= 1;
        assert_eq!(seg(&mut h, 301, &changed), vec![]);
        assert_eq!(h.stats().overlap_mismatch_bytes, 2);
        assert_eq!(h.stats().retransmit_uncompared_bytes, 0);
        // The first segment: offsets 0..188 are older than the kept 512 (188..700), 188..300
        // are compared (and equal).
        assert_eq!(seg(&mut h, 1, &first), vec![]);
        assert_eq!(h.stats().overlap_mismatch_bytes, 2);
        assert_eq!(h.stats().retransmit_uncompared_bytes, 188);
        assert_eq!(h.stats().retransmitted_bytes, 400 + 400 + 300);
        // A retransmission reaching past the end: the old part compared, the new part delivered.
        let mut tail = second[390..].to_vec();
        tail[0] ^= 0xff;
        tail.extend_from_slice(b"new");
        assert_eq!(seg(&mut h, 691, &tail), vec![D::Data(b"new".to_vec())]);
        assert_eq!(h.stats().overlap_mismatch_bytes, 3);
        assert_eq!(h.heap_bytes(), RECENT_BYTES);
    }

    /// Bytes lost in a gap were never seen: a later copy of them cannot be compared. The kept
    /// bytes restart after a gap (one lower bound, no holes), so the bytes before it are not
    /// compared either.
    #[test]
    fn retransmission_over_a_gap_is_not_compared() {
        let mut h = HalfStream::new();
        h.on_syn(0);
        // "abcd" captured, 4 bytes cut by snaplen.
        let got = run(&mut h, |h, o| {
            h.on_segment(&L, Timestamp(0), 1, b"abcd", 4, false, o)
        });
        assert_eq!(
            got,
            vec![D::Data(b"abcd".to_vec()), D::Gap(4, GapCause::Snaplen)]
        );
        // Its retransmission, captured whole: nothing to compare it with.
        assert_eq!(seg(&mut h, 1, b"abcdefgh"), vec![]);
        assert_eq!(h.stats().overlap_mismatch_bytes, 0);
        assert_eq!(h.stats().retransmit_uncompared_bytes, 8);
        // Bytes after the gap are kept again.
        assert_eq!(seg(&mut h, 9, b"ijkl"), vec![D::Data(b"ijkl".to_vec())]);
        assert_eq!(seg(&mut h, 9, b"ijkL"), vec![]);
        assert_eq!(h.stats().overlap_mismatch_bytes, 1);
        assert_eq!(h.stats().retransmit_uncompared_bytes, 8);
    }

    /// A held segment that in-order bytes later reached into came first: its copy of the shared
    /// bytes is compared with the delivered one.
    #[test]
    fn held_segment_overlapped_by_later_in_order_bytes_is_compared() {
        let mut h = HalfStream::new();
        h.on_syn(0);
        assert_eq!(seg(&mut h, 5, b"efgh"), vec![]);
        assert_eq!(
            seg(&mut h, 1, b"abcdEF"),
            vec![D::Data(b"abcdEF".to_vec()), D::Data(b"gh".to_vec())]
        );
        assert_eq!(h.stats().overlap_mismatch_bytes, 2);
        assert_eq!(h.stats().retransmitted_bytes, 2);
    }

    /// A retransmission after the direction ended (FIN delivered) is still compared.
    #[test]
    fn retransmission_after_the_end_is_compared() {
        let mut h = HalfStream::new();
        h.on_syn(0);
        let got = run(&mut h, |h, o| {
            h.on_segment(&L, Timestamp(0), 1, b"bye", 0, true, o)
        });
        assert_eq!(got, vec![D::Data(b"bye".to_vec()), D::End(false)]);
        assert!(h.ended());
        assert_eq!(seg(&mut h, 1, b"byE"), vec![]);
        assert_eq!(h.stats().overlap_mismatch_bytes, 1);
        assert_eq!(h.stats().retransmitted_bytes, 3);
    }

    #[test]
    fn retransmission_and_overlap_first_copy_wins() {
        let mut h = HalfStream::new();
        h.on_syn(0);
        assert_eq!(seg(&mut h, 1, b"abcd"), vec![D::Data(b"abcd".to_vec())]);
        // Full retransmission: nothing new.
        assert_eq!(seg(&mut h, 1, b"abcd"), vec![]);
        assert_eq!(h.stats().overlap_mismatch_bytes, 0);
        // Partial overlap: only the new bytes are delivered; "XX" differs from the delivered
        // "cd" (compared with the recent bytes), and "cd" stays what was delivered.
        assert_eq!(seg(&mut h, 3, b"XXef"), vec![D::Data(b"ef".to_vec())]);
        assert_eq!(h.stats().retransmitted_bytes, 6);
        assert_eq!(h.stats().overlap_mismatch_bytes, 2);
        // Held overlaps are compared: "J" differs from the held "j"; the first copy is kept.
        assert_eq!(seg(&mut h, 10, b"jk"), vec![]);
        assert_eq!(seg(&mut h, 9, b"iJ"), vec![]);
        assert_eq!(h.stats().overlap_mismatch_bytes, 3);
        assert_eq!(h.stats().retransmit_uncompared_bytes, 0);
        assert_eq!(h.held_bytes(), 3);
        assert_eq!(
            seg(&mut h, 7, b"gh"),
            vec![
                D::Data(b"gh".to_vec()),
                D::Data(b"i".to_vec()),
                D::Data(b"jk".to_vec())
            ]
        );
        assert_eq!(h.held_bytes(), 0);
    }

    const WIDE: ReassemblyLimits = ReassemblyLimits {
        max_ooo_bytes: 64,
        max_ooo_segments: 16,
        hole_timeout_ns: 1_000,
    };

    fn seg_at(h: &mut HalfStream, ts: u64, seq: u32, data: &[u8]) -> Vec<D> {
        run(h, |h, o| {
            h.on_segment(&WIDE, Timestamp(ts), seq, data, 0, false, o)
        })
    }

    #[test]
    fn a_segment_over_several_held_ones_keeps_only_the_bytes_between_them() {
        let mut h = HalfStream::new();
        h.on_syn(0);
        for (seq, data) in [(3, b"cd"), (7, b"gh"), (11, b"kl")] {
            assert_eq!(seg_at(&mut h, 0, seq, data), vec![]);
        }
        // Offsets 4..10 overlap "gh" only ("cd" ends at 4, "kl" starts at 10).
        assert_eq!(seg_at(&mut h, 0, 5, b"EFGHIJ"), vec![]);
        assert_eq!(h.stats().retransmitted_bytes, 2);
        assert_eq!(h.stats().overlap_mismatch_bytes, 2);
        assert_eq!(h.held_bytes(), 10);
        let all: Vec<u8> = seg_at(&mut h, 0, 1, b"ab")
            .into_iter()
            .flat_map(|d| match d {
                D::Data(b) => b,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(all, b"abcdEFghIJkl");
    }

    #[test]
    fn the_hole_timeout_follows_the_oldest_segment_still_held() {
        let mut h = HalfStream::new();
        h.on_syn(0);
        assert_eq!(seg_at(&mut h, 0, 3, b"cd"), vec![]);
        assert_eq!(seg_at(&mut h, 800, 9, b"ij"), vec![]);
        // The segment held since 0 leaves; the one from 800 waits behind a hole at 4..8.
        assert_eq!(
            seg_at(&mut h, 900, 1, b"ab"),
            vec![D::Data(b"ab".to_vec()), D::Data(b"cd".to_vec())]
        );
        let tick = |h: &mut HalfStream, now| run(h, |h, o| h.on_time(&WIDE, Timestamp(now), o));
        assert_eq!(tick(&mut h, 1_500), vec![]);
        assert_eq!(tick(&mut h, 1_800), vec![]);
        assert_eq!(
            tick(&mut h, 1_801),
            vec![D::Gap(4, GapCause::Timeout), D::Data(b"ij".to_vec())]
        );
    }

    #[test]
    fn seq_wraparound() {
        let mut h = HalfStream::new();
        h.on_syn(u32::MAX - 1);
        assert_eq!(seg(&mut h, u32::MAX, b"ab"), vec![D::Data(b"ab".to_vec())]);
        assert_eq!(seg(&mut h, 1, b"cd"), vec![D::Data(b"cd".to_vec())]);
    }

    #[test]
    fn snaplen_cut_becomes_an_exact_gap() {
        let mut h = HalfStream::new();
        h.on_syn(0);
        let got = run(&mut h, |h, o| {
            h.on_segment(&L, Timestamp(0), 1, b"abc", 97, false, o)
        });
        assert_eq!(
            got,
            vec![D::Data(b"abc".to_vec()), D::Gap(97, GapCause::Snaplen)]
        );
        assert_eq!(seg(&mut h, 101, b"z"), vec![D::Data(b"z".to_vec())]);
    }

    #[test]
    fn budget_overflow_declares_the_hole_a_gap() {
        let mut h = HalfStream::new();
        h.on_syn(0);
        assert_eq!(seg(&mut h, 11, b"0123456789"), vec![]);
        let got = seg(&mut h, 21, b"abcdefghij");
        assert_eq!(
            got,
            vec![
                D::Gap(10, GapCause::Budget),
                D::Data(b"0123456789".to_vec()),
                D::Data(b"abcdefghij".to_vec())
            ]
        );
        assert_eq!(h.stats().gap_bytes[GapCause::Budget.index()], 10);
    }

    #[test]
    fn hole_timeout_in_packet_time() {
        let mut h = HalfStream::new();
        h.on_syn(0);
        assert_eq!(
            run(&mut h, |h, o| h.on_segment(
                &L,
                Timestamp(100),
                5,
                b"x",
                0,
                false,
                o
            )),
            vec![]
        );
        assert_eq!(
            run(&mut h, |h, o| h.on_time(&L, Timestamp(1_000), o)),
            vec![]
        );
        assert_eq!(
            run(&mut h, |h, o| h.on_time(&L, Timestamp(1_101), o)),
            vec![D::Gap(4, GapCause::Timeout), D::Data(b"x".to_vec())]
        );
    }

    #[test]
    fn peer_ack_beyond_the_hole() {
        let mut h = HalfStream::new();
        h.on_syn(0);
        assert_eq!(seg(&mut h, 1, b"ab"), vec![D::Data(b"ab".to_vec())]);
        // A pure ACK is remembered only.
        assert_eq!(
            run(&mut h, |h, o| h.peer_acked(Timestamp(0), 11, false, o)),
            vec![]
        );
        // The peer sends data acknowledging 10 bytes we only saw 2 of.
        assert_eq!(
            run(&mut h, |h, o| h.peer_acked(Timestamp(0), 11, true, o)),
            vec![D::Gap(8, GapCause::AckedUnseen)]
        );
        assert_eq!(seg(&mut h, 11, b"k"), vec![D::Data(b"k".to_vec())]);
    }

    #[test]
    fn fin_ends_after_held_bytes_and_ack_of_fin_is_not_a_gap() {
        let mut h = HalfStream::new();
        h.on_syn(0);
        let got = run(&mut h, |h, o| {
            h.on_segment(&L, Timestamp(0), 3, b"cd", 0, true, o)
        });
        assert_eq!(got, vec![]);
        assert_eq!(
            seg(&mut h, 1, b"ab"),
            vec![
                D::Data(b"ab".to_vec()),
                D::Data(b"cd".to_vec()),
                D::End(false)
            ]
        );
        assert_eq!(
            run(&mut h, |h, o| h.peer_acked(Timestamp(0), 6, true, o)),
            vec![]
        );
    }

    #[test]
    fn close_flushes_holes_and_ends() {
        let mut h = HalfStream::new();
        h.on_syn(0);
        assert_eq!(seg(&mut h, 5, b"ef"), vec![]);
        let got = run(&mut h, |h, o| h.close(Timestamp(0), true, o));
        assert_eq!(
            got,
            vec![
                D::Gap(4, GapCause::Closed),
                D::Data(b"ef".to_vec()),
                D::End(true)
            ]
        );
        assert!(h.ended());
    }

    #[test]
    fn midstream_pickup_starts_at_first_segment() {
        let mut h = HalfStream::new();
        assert_eq!(seg(&mut h, 123_456, b"xyz"), vec![D::Data(b"xyz".to_vec())]);
        assert!(!h.syn_seen());
        assert_eq!(seg(&mut h, 123_459, b"!"), vec![D::Data(b"!".to_vec())]);
    }

    #[test]
    fn bogus_far_segment_is_ignored() {
        let mut h = HalfStream::new();
        h.on_syn(0);
        assert_eq!(seg(&mut h, 1 << 31, b"far"), vec![]);
        assert_eq!(h.stats().bogus_segments, 1);
        assert_eq!(h.held_bytes(), 0);
    }
}
