//! IP fragment reassembly (IPv4: RFC 791 §3.2 "Fragmentation and Reassembly"; IPv6: RFC 8200 §4.5).
//!
//! Datagrams are keyed by (source, destination, identification, protocol): RFC 791 keys IPv4 on
//! exactly these four. For IPv6 the "protocol" is the Next Header of the Fragment header. RFC 8200
//! §4.5 keys on (source, destination, identification) only and lets non-first fragments carry a
//! different Next Header (only the offset-0 one counts); real stacks (Linux, BSDs, Windows) copy
//! the same value into every fragment, and keying on it lets the decoder keep non-TCP fragments
//! (fragmented UDP is common on IPv6) out of the TCP budget. The cost: a datagram whose fragments
//! disagree is not reassembled; it expires and is counted (`frag_expired`).
//!
//! Policy (all of it counted in [`DecodeStats`], none of it panics):
//! - **First copy wins.** Bytes already held are never overwritten; a later fragment that covers
//!   them with different bytes bumps `frag_overlap_mismatch` (an evasion signal: the receiver may
//!   keep either copy, RFC 5722 says discard for IPv6).
//! - **Bounded.** A datagram may not exceed [`MAX_DATAGRAM_LEN`]; the buffers of all datagrams in
//!   flight together may not exceed [`DecodeLimits::frag_max_held_bytes`]; at most
//!   [`DecodeLimits::frag_max_datagrams`] datagrams are in flight and each may take at most
//!   [`DecodeLimits::frag_max_fragments`] fragments. Over a bound, the oldest datagram is evicted
//!   (`frag_evicted`).
//! - **Timeout in packet time.** A datagram not complete [`DecodeLimits::frag_timeout_secs`] after
//!   its first fragment (capture time, never the OS clock) is dropped (`frag_expired`). This is the
//!   reassembly timer of RFC 791 (Linux `ipfrag_time` defaults to the same 30 s).
//!
//! A completed datagram's buffer moves into [`Defragmenter::done`], from which the decoder hands
//! out a [`super::TcpPacket`] that borrows it until the next `decode` call.

use std::net::IpAddr;

use dbtap_core::time::Timestamp;

use super::{DecodeLimits, DecodeStats};

/// Largest reassembled payload: the 16-bit IPv4 total length / IPv6 payload length field caps a
/// datagram at 65535 bytes (RFC 791 §3.1, RFC 8200 §3; jumbograms, RFC 2675, cannot be fragmented).
pub const MAX_DATAGRAM_LEN: u32 = 65_535;

/// Identifies the datagram a fragment belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FragKey {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IPv4 identification (16 bits) or IPv6 fragment identification (32 bits).
    pub id: u32,
    /// IPv4 protocol, or the IPv6 fragment header's Next Header.
    pub proto: u8,
}

/// One fragment as the decoder hands it over.
#[derive(Clone, Copy, Debug)]
pub struct Fragment<'a> {
    /// Byte offset of `data` in the reassembled payload.
    pub offset: u32,
    /// "More fragments" flag: false on the last fragment.
    pub more: bool,
    /// The fragment's payload (after the IP header / the Fragment header).
    pub data: &'a [u8],
}

/// What happened to a fragment.
#[derive(Debug, PartialEq, Eq)]
pub enum AddResult {
    /// Buffered; the datagram is not complete yet.
    Held,
    /// The datagram is complete; its payload is in [`Defragmenter::done`].
    Complete,
    /// Not usable (bad offset/length); nothing held.
    Invalid,
    /// The datagram could not be held within the limits and was dropped.
    OverBudget,
}

struct Datagram {
    key: FragKey,
    first: Timestamp,
    buf: Vec<u8>,
    /// Received byte ranges `[start, end)`: sorted, disjoint, not adjacent.
    have: Vec<(u32, u32)>,
    /// Payload length, known once the last fragment (MF = 0) arrived.
    total: Option<u32>,
    fragments: usize,
}

/// The IP defragmenter (see the module docs for the policy).
pub struct Defragmenter {
    limits: DecodeLimits,
    /// In order of arrival of their first fragment: index 0 is the oldest. A list searched per
    /// fragment, not a map: with at most `frag_max_datagrams` (256) entries, a two-fragment
    /// datagram took 96 ns here with the table empty (the usual case) and 188 ns beside 255
    /// datagrams that never complete; a map with an arrival queue took 157 and 88 ns.
    datagrams: Vec<Datagram>,
    /// Sum of the buffer capacities of `datagrams`.
    held: usize,
    /// Payload of the most recently completed datagram.
    pub(crate) done: Vec<u8>,
    next_expiry: Timestamp,
}

impl Defragmenter {
    /// An empty defragmenter.
    pub fn new(limits: DecodeLimits) -> Self {
        Defragmenter {
            limits,
            datagrams: Vec::new(),
            held: 0,
            done: Vec::new(),
            next_expiry: Timestamp(u64::MAX),
        }
    }

    /// Bytes currently held for incomplete datagrams (never above `frag_max_held_bytes`).
    pub fn held_bytes(&self) -> usize {
        self.held
    }

    /// Datagrams currently incomplete.
    pub fn in_flight(&self) -> usize {
        self.datagrams.len()
    }

    /// Forgets a datagram (e.g. when one of its fragments was cut by the snaplen).
    pub fn forget(&mut self, key: &FragKey) {
        if let Some(i) = self.datagrams.iter().position(|d| d.key == *key) {
            self.remove(i);
        }
    }

    /// Drops datagrams whose first fragment is older than the timeout at packet time `now`.
    #[inline]
    pub fn expire(&mut self, now: Timestamp, stats: &mut DecodeStats) {
        if now < self.next_expiry {
            return;
        }
        let timeout = self.limits.frag_timeout_secs;
        let mut i = 0;
        while i < self.datagrams.len() {
            if self.datagrams[i].first.plus_secs(timeout) <= now {
                self.remove(i);
                stats.frag_expired += 1;
            } else {
                i += 1;
            }
        }
        self.recompute_expiry();
    }

    fn recompute_expiry(&mut self) {
        let timeout = self.limits.frag_timeout_secs;
        self.next_expiry = self
            .datagrams
            .iter()
            .map(|d| d.first.plus_secs(timeout))
            .min()
            .unwrap_or(Timestamp(u64::MAX));
    }

    fn remove(&mut self, i: usize) -> Datagram {
        let d = self.datagrams.remove(i);
        self.held -= d.buf.capacity();
        d
    }

    /// Adds one fragment received at packet time `now`.
    pub fn add(
        &mut self,
        key: FragKey,
        now: Timestamp,
        frag: Fragment<'_>,
        stats: &mut DecodeStats,
    ) -> AddResult {
        let len = frag.data.len() as u32;
        let Some(end) = frag
            .offset
            .checked_add(len)
            .filter(|e| *e <= MAX_DATAGRAM_LEN)
        else {
            return AddResult::Invalid;
        };
        // RFC 791 / RFC 8200: every fragment but the last carries a multiple of 8 bytes.
        if frag.more && len % 8 != 0 {
            return AddResult::Invalid;
        }
        let idx = match self.datagrams.iter().position(|d| d.key == key) {
            Some(i) => i,
            None => {
                if self.datagrams.len() >= self.limits.frag_max_datagrams {
                    if self.datagrams.is_empty() {
                        return AddResult::OverBudget;
                    }
                    self.remove(0);
                    stats.frag_evicted += 1;
                }
                self.datagrams.push(Datagram {
                    key,
                    first: now,
                    buf: Vec::new(),
                    have: Vec::new(),
                    total: None,
                    fragments: 0,
                });
                let exp = now.plus_secs(self.limits.frag_timeout_secs);
                if exp < self.next_expiry {
                    self.next_expiry = exp;
                }
                self.datagrams.len() - 1
            }
        };

        self.datagrams[idx].fragments += 1;
        if self.datagrams[idx].fragments > self.limits.frag_max_fragments {
            self.remove(idx);
            self.recompute_expiry();
            stats.frag_evicted += 1;
            return AddResult::OverBudget;
        }

        // Where the datagram ends: the first "last fragment" wins; a conflicting one is a mismatch.
        let mut end = end;
        let mut data = frag.data;
        {
            let d = &mut self.datagrams[idx];
            if !frag.more {
                match d.total {
                    None => d.total = Some(end),
                    Some(t) if t != end => stats.frag_overlap_mismatch += 1,
                    Some(_) => {}
                }
            }
            if let Some(t) = d.total {
                if end > t {
                    // Bytes past the end the last fragment declared: drop them.
                    stats.frag_overlap_mismatch += 1;
                    end = t.max(frag.offset);
                    data = data.get(..(end - frag.offset) as usize).unwrap_or_default();
                }
            }
        }

        // Grow the buffer within the budget, evicting the oldest other datagrams if needed.
        let want = end as usize;
        let grow = want.saturating_sub(self.datagrams[idx].buf.capacity());
        let mut idx = idx;
        while self.held + grow > self.limits.frag_max_held_bytes {
            let Some(victim) = (0..self.datagrams.len()).find(|i| *i != idx) else {
                self.remove(idx);
                self.recompute_expiry();
                stats.frag_evicted += 1;
                return AddResult::OverBudget;
            };
            self.remove(victim);
            stats.frag_evicted += 1;
            if victim < idx {
                idx -= 1;
            }
        }
        let d = &mut self.datagrams[idx];
        if d.buf.len() < want {
            let before = d.buf.capacity();
            d.buf.reserve_exact(want - d.buf.len());
            d.buf.resize(want, 0);
            self.held += d.buf.capacity() - before;
        }

        // First copy wins: fill only the holes, compare what overlaps.
        let start = frag.offset;
        let mut cur = start;
        let mut mismatch = false;
        for &(a, b) in &d.have {
            if b <= cur {
                continue;
            }
            if a >= end {
                break;
            }
            if a > cur {
                copy(&mut d.buf, data, start, cur, a);
            }
            let (o1, o2) = (a.max(cur), b.min(end));
            let old = d.buf.get(o1 as usize..o2 as usize);
            let new = data.get((o1 - start) as usize..(o2 - start) as usize);
            if old != new {
                mismatch = true;
            }
            cur = o2;
            if cur >= end {
                break;
            }
        }
        if cur < end {
            copy(&mut d.buf, data, start, cur, end);
        }
        if mismatch {
            stats.frag_overlap_mismatch += 1;
        }
        if start < end {
            insert_range(&mut d.have, start, end);
        }

        let complete =
            matches!(d.total, Some(t) if d.have.as_slice() == [(0, t)]) || d.total == Some(0);
        if !complete {
            return AddResult::Held;
        }
        let mut d = self.remove(idx);
        self.recompute_expiry();
        d.buf.truncate(d.total.unwrap_or(0) as usize);
        self.done = d.buf;
        AddResult::Complete
    }
}

/// Copies datagram bytes `[from, to)` out of a fragment whose data starts at datagram offset `start`.
fn copy(buf: &mut [u8], data: &[u8], start: u32, from: u32, to: u32) {
    let src = data.get((from - start) as usize..(to - start) as usize);
    let dst = buf.get_mut(from as usize..to as usize);
    if let (Some(s), Some(d)) = (src, dst) {
        d.copy_from_slice(s);
    }
}

/// Inserts `[s, e)` into sorted disjoint ranges, merging overlapping or touching ones.
fn insert_range(have: &mut Vec<(u32, u32)>, s: u32, e: u32) {
    let pos = have.partition_point(|&(a, _)| a < s);
    have.insert(pos, (s, e));
    let mut out = 0usize;
    for i in 1..have.len() {
        let (a, b) = have[i];
        if a <= have[out].1 {
            have[out].1 = have[out].1.max(b);
        } else {
            out += 1;
            have[out] = (a, b);
        }
    }
    have.truncate(out + 1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn key(id: u32) -> FragKey {
        FragKey {
            src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            id,
            proto: 6,
        }
    }

    fn frag(offset: u32, more: bool, data: &[u8]) -> Fragment<'_> {
        Fragment { offset, more, data }
    }

    #[test]
    fn ranges_merge() {
        let mut h = vec![];
        insert_range(&mut h, 16, 24);
        insert_range(&mut h, 0, 8);
        assert_eq!(h, vec![(0, 8), (16, 24)]);
        insert_range(&mut h, 8, 16);
        assert_eq!(h, vec![(0, 24)]);
        insert_range(&mut h, 30, 40);
        insert_range(&mut h, 20, 35);
        assert_eq!(h, vec![(0, 40)]);
    }

    #[test]
    fn out_of_order_and_first_copy_wins() {
        let mut d = Defragmenter::new(DecodeLimits::default());
        let mut st = DecodeStats::default();
        let t = Timestamp(1_000);
        assert_eq!(
            d.add(key(1), t, frag(8, false, b"BBBB"), &mut st),
            AddResult::Held
        );
        assert_eq!(d.held_bytes(), 12);
        // Overlapping retransmission of [8, 12) with different bytes: kept "BBBB", counted.
        assert_eq!(
            d.add(key(1), t, frag(8, false, b"XXXX"), &mut st),
            AddResult::Held
        );
        assert_eq!(st.frag_overlap_mismatch, 1);
        assert_eq!(
            d.add(key(1), t, frag(0, true, b"AAAAAAAA"), &mut st),
            AddResult::Complete
        );
        assert_eq!(d.done, b"AAAAAAAABBBB");
        assert_eq!(d.held_bytes(), 0);
        assert_eq!(d.in_flight(), 0);
    }

    #[test]
    fn invalid_fragments() {
        let mut d = Defragmenter::new(DecodeLimits::default());
        let mut st = DecodeStats::default();
        // Not a multiple of 8 but MF set.
        assert_eq!(
            d.add(key(1), Timestamp(0), frag(0, true, b"abc"), &mut st),
            AddResult::Invalid
        );
        // Ends past 65535.
        assert_eq!(
            d.add(key(1), Timestamp(0), frag(65_528, false, &[0; 16]), &mut st),
            AddResult::Invalid
        );
        assert_eq!(d.in_flight(), 0);
    }

    #[test]
    fn expiry_runs_on_packet_time() {
        let mut d = Defragmenter::new(DecodeLimits::default());
        let mut st = DecodeStats::default();
        let t0 = Timestamp::from_parts(100, 0);
        d.add(key(1), t0, frag(0, true, &[1; 8]), &mut st);
        d.expire(Timestamp::from_parts(129, 999_999_999), &mut st);
        assert_eq!((d.in_flight(), st.frag_expired), (1, 0));
        d.expire(Timestamp::from_parts(130, 0), &mut st);
        assert_eq!((d.in_flight(), st.frag_expired, d.held_bytes()), (0, 1, 0));
    }

    #[test]
    fn the_oldest_datagram_still_held_is_evicted_first() {
        let limits = DecodeLimits {
            frag_max_datagrams: 4,
            ..DecodeLimits::default()
        };
        let mut d = Defragmenter::new(limits);
        let mut st = DecodeStats::default();
        let first = |d: &mut Defragmenter, st: &mut DecodeStats, id: u32, t: u64| {
            d.add(key(id), Timestamp(t), frag(0, true, &[id as u8; 8]), st)
        };
        for id in 1..=4 {
            assert_eq!(first(&mut d, &mut st, id, 0), AddResult::Held);
        }
        // 2 completes, 3 is forgotten, then 1's identification is used again by a new datagram
        // after 1 completes: the arrival order is now 4, 1 (new).
        assert_eq!(
            d.add(key(2), Timestamp(1), frag(8, false, b"end"), &mut st),
            AddResult::Complete
        );
        assert_eq!(d.done, b"\x02\x02\x02\x02\x02\x02\x02\x02end");
        d.forget(&key(3));
        assert_eq!(
            d.add(key(1), Timestamp(2), frag(8, false, b"x"), &mut st),
            AddResult::Complete
        );
        first(&mut d, &mut st, 1, 3);
        first(&mut d, &mut st, 5, 4);
        first(&mut d, &mut st, 6, 5);
        assert_eq!((d.in_flight(), st.frag_evicted), (4, 0));
        // Full: 7 evicts 4, the oldest still held, then 8 evicts the new 1.
        first(&mut d, &mut st, 7, 6);
        assert_eq!(st.frag_evicted, 1);
        assert!(d.datagrams.iter().all(|g| g.key != key(4)));
        first(&mut d, &mut st, 8, 7);
        let mut left: Vec<u32> = d.datagrams.iter().map(|g| g.key.id).collect();
        left.sort_unstable();
        assert_eq!((left, st.frag_evicted), (vec![5, 6, 7, 8], 2));
        assert_eq!(d.held_bytes(), 32);
    }

    #[test]
    fn budget_evicts_oldest() {
        let limits = DecodeLimits {
            frag_max_held_bytes: 100_000,
            frag_max_datagrams: 2,
            ..DecodeLimits::default()
        };
        let mut d = Defragmenter::new(limits);
        let mut st = DecodeStats::default();
        let big = vec![7u8; 60_000];
        d.add(key(1), Timestamp(0), frag(0, true, &big), &mut st);
        // A second 60 000-byte datagram does not fit next to the first: the first is evicted.
        d.add(key(2), Timestamp(0), frag(0, true, &big), &mut st);
        assert_eq!(
            (d.in_flight(), d.held_bytes(), st.frag_evicted),
            (1, 60_000, 1)
        );
        d.add(key(3), Timestamp(0), frag(0, true, &[0; 8]), &mut st);
        // Datagram count limit 2: a fourth evicts the oldest (key 2).
        d.add(key(4), Timestamp(0), frag(0, true, &[0; 8]), &mut st);
        assert_eq!((d.in_flight(), d.held_bytes(), st.frag_evicted), (2, 16, 2));
    }
}
