//! The byte-owning half of the stream layer: feeds one parser session with in-order bytes, gaps
//! and ends, per direction, and keeps the promises of [`Progress`]:
//!
//! - a parser that said `NeedMore { need }` is not called again before `need` bytes are buffered
//!   (so a large message is parsed once, not once per segment);
//! - bytes under `Skip` are dropped unbuffered, and gaps inside them are absorbed here;
//! - in the common case (nothing left over from the previous segment) the parser reads straight
//!   from the caller's slice: only unconsumed tails are copied;
//! - after `Upgraded` or `Abandon` the parser is never called again; bytes are only counted.
//!
//! The TCP reassembler in the `dbtap` crate sits on top of this and decides what is in order and
//! what is a gap. Parser crates use the same driver in their tests, so both run the same code.

use std::collections::VecDeque;

use crate::contract::{Abandon, Cx, Direction, Input, Mark, Progress, StreamParser, Upgrade};
use crate::event::DbEvent;
use crate::limits::Limits;
use crate::time::Timestamp;

/// Slack allowed above `Limits::max_message_len` for headers around a maximal body.
const NEED_SLACK: usize = 64;
/// Segment marks kept per direction; older ones are merged (their time is then approximate).
const MAX_MARKS: usize = 4096;

/// Whether the parser is still being fed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverState {
    /// Bytes go to the parser.
    Parsing,
    /// The session upgraded (TLS): bytes are counted only.
    Upgraded(Upgrade),
    /// The parser gave up: bytes are counted only.
    Abandoned(Abandon),
}

/// Byte accounting of one session, per direction (index with [`Direction::index`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// Bytes handed to the parser (each byte counted once).
    pub parsed: [u64; 2],
    /// Bytes dropped under `Skip`.
    pub skipped: [u64; 2],
    /// Bytes missing in gaps (including those absorbed inside `Skip`).
    pub gap_bytes: [u64; 2],
    /// Bytes seen after `Upgraded` / `Abandon` / `End`.
    pub unparsed: [u64; 2],
    /// `NeedMore` answers over the limit (a parser bug or hostile length): session abandoned.
    pub need_over_limit: u64,
    /// `Consumed(0)` answers on non-empty input (no progress): treated as a need of one more byte.
    pub stalls: u64,
}

#[derive(Debug, Default)]
struct DirState {
    /// Unconsumed bytes (the head of an incomplete message).
    tail: Vec<u8>,
    /// Bytes the parser needs buffered from `tail[0]` before it is called again.
    need: usize,
    /// Bytes still to drop before parsing resumes.
    skip: u64,
    /// Stream offset of `tail[0]` (equivalently: of the next byte to arrive, when `tail` is empty).
    offset: u64,
    /// Segment starts covering `tail` and beyond.
    marks: VecDeque<Mark>,
    /// FIN/RST seen: later bytes are counted only.
    ended: bool,
}

/// Feeds one parser session (both directions).
#[derive(Debug)]
pub struct Driver {
    dirs: [DirState; 2],
    limits: Limits,
    state: DriverState,
    stats: DriverStats,
}

impl Driver {
    /// A driver for a new session.
    pub fn new(limits: Limits) -> Self {
        Driver {
            dirs: Default::default(),
            limits,
            state: DriverState::Parsing,
            stats: DriverStats::default(),
        }
    }

    /// Whether the parser is still fed.
    pub fn state(&self) -> DriverState {
        self.state
    }

    /// Byte accounting so far.
    pub fn stats(&self) -> &DriverStats {
        &self.stats
    }

    /// The limits the session runs under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Bytes currently buffered (both directions): for memory accounting.
    pub fn buffered(&self) -> usize {
        self.dirs.iter().map(|d| d.tail.capacity()).sum()
    }

    /// In-order bytes of direction `dir`, captured at `ts`.
    pub fn data(
        &mut self,
        parser: &mut dyn StreamParser,
        dir: Direction,
        ts: Timestamp,
        bytes: &[u8],
        out: &mut Vec<DbEvent>,
    ) {
        if bytes.is_empty() {
            return;
        }
        let i = dir.index();
        if self.state != DriverState::Parsing || self.dirs[i].ended {
            self.stats.unparsed[i] += bytes.len() as u64;
            return;
        }
        let mut bytes = bytes;
        let mut marked = false;
        while !bytes.is_empty() && self.state == DriverState::Parsing {
            let d = &mut self.dirs[i];
            if d.skip > 0 {
                let n = d.skip.min(bytes.len() as u64);
                d.skip -= n;
                d.offset += n;
                self.stats.skipped[i] += n;
                bytes = &bytes[n as usize..];
                continue;
            }
            if !marked {
                let start = d.offset + d.tail.len() as u64;
                push_mark(&mut d.marks, Mark { offset: start, ts });
                marked = true;
            }
            if d.tail.is_empty() {
                // Fast path: parse straight from the caller's slice, keep only what is left over.
                self.stats.parsed[i] += bytes.len() as u64;
                let used = self.run(parser, dir, ts, bytes, out);
                let d = &mut self.dirs[i];
                if let Some(rest) = bytes.get(used..) {
                    d.tail.extend_from_slice(rest);
                }
                self.after_run(i);
                return;
            }
            // Complete the pending message by copying only the bytes it still needs; whatever
            // follows it in this segment is then parsed in place by the fast path above.
            let want = d.need.saturating_sub(d.tail.len()).max(1).min(bytes.len());
            d.tail.extend_from_slice(&bytes[..want]);
            self.stats.parsed[i] += want as u64;
            bytes = &bytes[want..];
            if d.tail.len() < d.need {
                return;
            }
            let buf = std::mem::take(&mut self.dirs[i].tail);
            let used = self.run(parser, dir, ts, &buf, out);
            let mut buf = buf;
            buf.drain(..used.min(buf.len()));
            self.dirs[i].tail = buf;
            self.after_run(i);
        }
        // The parser stopped (upgrade or abandon) before the end of this segment.
        self.stats.unparsed[i] += bytes.len() as u64;
    }

    /// `len` bytes of direction `dir` are missing.
    pub fn gap(
        &mut self,
        parser: &mut dyn StreamParser,
        dir: Direction,
        ts: Timestamp,
        len: u64,
        out: &mut Vec<DbEvent>,
    ) {
        let i = dir.index();
        self.stats.gap_bytes[i] += len;
        if self.state != DriverState::Parsing || self.dirs[i].ended || len == 0 {
            return;
        }
        let d = &mut self.dirs[i];
        let mut len = len;
        if d.skip > 0 {
            // A gap inside skipped bytes changes nothing for the parser.
            let n = d.skip.min(len);
            d.skip -= n;
            d.offset += n;
            len -= n;
            if len == 0 {
                return;
            }
        }
        let partial = std::mem::take(&mut d.tail);
        let base = d.offset;
        let marks: Vec<Mark> = d.marks.iter().copied().collect();
        let progress = {
            let cx = Cx {
                ts,
                base,
                marks: &marks,
                limits: &self.limits,
            };
            parser.handle(
                &cx,
                dir,
                Input::Gap {
                    len,
                    partial: &partial,
                },
                out,
            )
        };
        let d = &mut self.dirs[i];
        d.offset += partial.len() as u64 + len;
        d.need = 0;
        d.marks.clear();
        let mut partial = partial;
        partial.clear();
        d.tail = partial;
        self.apply_side_effects(i, progress);
    }

    /// Direction `dir` ended (FIN: `reset == false`; RST, expiry or end of capture).
    pub fn end(
        &mut self,
        parser: &mut dyn StreamParser,
        dir: Direction,
        ts: Timestamp,
        reset: bool,
        out: &mut Vec<DbEvent>,
    ) {
        let i = dir.index();
        if self.dirs[i].ended {
            return;
        }
        self.dirs[i].ended = true;
        if self.state != DriverState::Parsing {
            return;
        }
        let d = &mut self.dirs[i];
        let partial = std::mem::take(&mut d.tail);
        let marks: Vec<Mark> = d.marks.iter().copied().collect();
        let cx = Cx {
            ts,
            base: d.offset,
            marks: &marks,
            limits: &self.limits,
        };
        let progress = parser.handle(
            &cx,
            dir,
            Input::End {
                reset,
                partial: &partial,
            },
            out,
        );
        let d = &mut self.dirs[i];
        d.offset += partial.len() as u64;
        d.need = 0;
        d.skip = 0;
        d.marks.clear();
        match progress {
            Progress::Upgraded { to, .. } => self.state = DriverState::Upgraded(to),
            Progress::Abandon(a) => self.state = DriverState::Abandoned(a),
            _ => {}
        }
    }

    /// Call the parser on `buf` until it stops making progress; return the bytes it used.
    fn run(
        &mut self,
        parser: &mut dyn StreamParser,
        dir: Direction,
        ts: Timestamp,
        buf: &[u8],
        out: &mut Vec<DbEvent>,
    ) -> usize {
        let i = dir.index();
        let mut pos = 0usize;
        self.dirs[i].need = 0;
        while pos < buf.len() {
            let input = &buf[pos..];
            let d = &self.dirs[i];
            let (a, b) = d.marks.as_slices();
            // Marks live in one slice unless the deque wrapped; `push_mark` keeps them
            // contiguous in the common case, and `make_contiguous` below handles the rest.
            let marks: &[Mark] = if b.is_empty() { a } else { &[] };
            let progress = if b.is_empty() {
                let cx = Cx {
                    ts,
                    base: d.offset + pos as u64,
                    marks,
                    limits: &self.limits,
                };
                parser.handle(&cx, dir, Input::Data(input), out)
            } else {
                let marks: Vec<Mark> = d.marks.iter().copied().collect();
                let cx = Cx {
                    ts,
                    base: d.offset + pos as u64,
                    marks: &marks,
                    limits: &self.limits,
                };
                parser.handle(&cx, dir, Input::Data(input), out)
            };
            match progress {
                Progress::Consumed(n) => {
                    if n == 0 {
                        // No progress on non-empty input breaks the contract; wait for one more
                        // byte rather than loop for ever.
                        self.stats.stalls += 1;
                        self.dirs[i].need = input.len() + 1;
                        break;
                    }
                    pos += n.min(input.len());
                }
                Progress::NeedMore { consumed, need } => {
                    let consumed = consumed.min(input.len());
                    pos += consumed;
                    let remaining = input.len() - consumed;
                    if need > self.limits.max_message_len.saturating_add(NEED_SLACK) {
                        self.stats.need_over_limit += 1;
                        self.stop(
                            i,
                            Progress::Abandon(Abandon::Unrecoverable),
                            buf.len() - pos,
                        );
                        return buf.len();
                    }
                    if need <= remaining {
                        if consumed == 0 {
                            // Asked for bytes it already has and consumed nothing: a stall.
                            self.stats.stalls += 1;
                            self.dirs[i].need = remaining + 1;
                            break;
                        }
                        continue;
                    }
                    self.dirs[i].need = need;
                    break;
                }
                Progress::Skip { consumed, skip } => {
                    pos += consumed.min(input.len());
                    let avail = (buf.len() - pos) as u64;
                    if skip <= avail {
                        pos += skip as usize;
                        self.stats.skipped[i] += skip;
                        self.stats.parsed[i] -= skip;
                    } else {
                        self.stats.skipped[i] += avail;
                        self.stats.parsed[i] -= avail;
                        self.dirs[i].skip = skip - avail;
                        // Bytes beyond this buffer: the offset moves as they are dropped.
                        let d = &mut self.dirs[i];
                        d.offset += pos as u64 + avail;
                        d.marks.clear();
                        // Report everything as used; offset already advanced past it.
                        return usize::MAX;
                    }
                }
                p @ (Progress::Upgraded { .. } | Progress::Abandon(_)) => {
                    if let Progress::Upgraded { consumed, .. } = p {
                        pos += consumed.min(input.len());
                    }
                    let rest = buf.len() - pos;
                    self.stop(i, p, rest);
                    return buf.len();
                }
            }
        }
        self.dirs[i].offset += pos as u64;
        pos
    }

    /// Trim marks no longer needed: keep the one covering the first unconsumed byte.
    fn after_run(&mut self, i: usize) {
        let d = &mut self.dirs[i];
        if d.tail.is_empty() {
            d.marks.clear();
            return;
        }
        let first = d.offset;
        while d.marks.len() > 1 && d.marks.get(1).is_some_and(|m| m.offset <= first) {
            d.marks.pop_front();
        }
        keep_contiguous(&mut d.marks);
    }

    fn apply_side_effects(&mut self, i: usize, progress: Progress) {
        match progress {
            Progress::Skip { skip, .. } => self.dirs[i].skip = skip,
            p @ (Progress::Upgraded { .. } | Progress::Abandon(_)) => self.stop(i, p, 0),
            Progress::Consumed(_) | Progress::NeedMore { .. } => {}
        }
    }

    fn stop(&mut self, i: usize, progress: Progress, unparsed_here: usize) {
        self.state = match progress {
            Progress::Upgraded { to, .. } => DriverState::Upgraded(to),
            Progress::Abandon(a) => DriverState::Abandoned(a),
            _ => return,
        };
        self.stats.parsed[i] -= unparsed_here as u64;
        self.stats.unparsed[i] += unparsed_here as u64;
        for d in &mut self.dirs {
            d.need = 0;
            d.skip = 0;
            d.marks.clear();
        }
        // Whatever the other direction had buffered will never be parsed.
        for (j, d) in self.dirs.iter_mut().enumerate() {
            let n = d.tail.len() as u64;
            if j != i {
                self.stats.parsed[j] -= n;
                self.stats.unparsed[j] += n;
            }
            d.tail = Vec::new();
        }
    }
}

fn push_mark(marks: &mut VecDeque<Mark>, mark: Mark) {
    if marks.len() >= MAX_MARKS {
        thin_older_half(marks);
    }
    marks.push_back(mark);
    // Thinning leaves a quarter of the ring free, so this moves the marks at most once per
    // MAX_MARKS / 4 pushes (a merge of one mark per push, as before, kept the ring full and
    // moved all 4,096 marks on every segment of a long message once it wrapped).
    keep_contiguous(marks);
}

/// Keep the marks in one slice, so that `Cx::marks` can borrow them without copying. Checked
/// here first: `make_contiguous` is not inlined, and this runs for every segment.
fn keep_contiguous(marks: &mut VecDeque<Mark>) {
    if !marks.as_slices().1.is_empty() {
        marks.make_contiguous();
    }
}

/// Merges the older half of the marks pairwise: every second one of them goes, so the bytes it
/// began are dated by the mark before it (the older time). The first mark, which dates the
/// oldest unconsumed byte (a request's start), and the newer half stay exact.
fn thin_older_half(marks: &mut VecDeque<Mark>) {
    let half = marks.len() / 2;
    let mut i = 0usize;
    marks.retain(|_| {
        let keep = i >= half || i.is_multiple_of(2);
        i += 1;
        keep
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Op, Request};

    /// A toy protocol for driver tests: messages are `[len u8][body]`; a body starting with `S`
    /// asks to skip the next `body[1]` bytes; `T` upgrades to TLS.
    #[derive(Default)]
    struct Toy {
        seen: Vec<(Direction, Vec<u8>, u64)>,
        calls: usize,
        gaps: Vec<(u64, usize)>,
    }

    impl StreamParser for Toy {
        fn handle(
            &mut self,
            cx: &Cx<'_>,
            dir: Direction,
            input: Input<'_>,
            out: &mut Vec<DbEvent>,
        ) -> Progress {
            self.calls += 1;
            match input {
                Input::Data(d) => {
                    let Some(&len) = d.first() else {
                        return Progress::Consumed(0);
                    };
                    let total = 1 + len as usize;
                    if d.len() < total {
                        return Progress::NeedMore {
                            consumed: 0,
                            need: total,
                        };
                    }
                    let body = &d[1..total];
                    self.seen.push((dir, body.to_vec(), cx.ts_at(0).0));
                    out.push(DbEvent::Request(Box::new(Request {
                        op: Some(Op::QUERY),
                        ..Default::default()
                    })));
                    match body.first() {
                        Some(b'S') => Progress::Skip {
                            consumed: total,
                            skip: body.get(1).copied().unwrap_or(0) as u64,
                        },
                        Some(b'T') => Progress::Upgraded {
                            consumed: total,
                            to: Upgrade::Tls,
                        },
                        _ => Progress::Consumed(total),
                    }
                }
                Input::Gap { len, partial } => {
                    self.gaps.push((len, partial.len()));
                    Progress::Consumed(0)
                }
                Input::End { .. } => Progress::Consumed(0),
            }
        }
    }

    fn feed(chunks: &[&[u8]]) -> (Toy, Driver) {
        let mut p = Toy::default();
        let mut d = Driver::new(Limits::default());
        let mut out = Vec::new();
        for (n, c) in chunks.iter().enumerate() {
            d.data(
                &mut p,
                Direction::ToServer,
                Timestamp(n as u64 + 1),
                c,
                &mut out,
            );
        }
        (p, d)
    }

    #[test]
    fn messages_split_anywhere_parse_the_same() {
        let stream: &[u8] = b"\x03abc\x02de\x01f";
        let (whole, _) = feed(&[stream]);
        for cut in 1..stream.len() {
            let (split, _) = feed(&[&stream[..cut], &stream[cut..]]);
            let bodies: Vec<_> = split.seen.iter().map(|s| s.1.clone()).collect();
            assert_eq!(
                bodies,
                whole.seen.iter().map(|s| s.1.clone()).collect::<Vec<_>>(),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn need_more_is_honoured_without_reparsing() {
        // A 200-byte message in 1-byte pieces: the parser is called twice (once for the header,
        // once when complete), not 200 times.
        let mut msg = vec![200u8];
        msg.extend(std::iter::repeat_n(b'x', 200));
        let pieces: Vec<&[u8]> = msg.chunks(1).collect();
        let (p, d) = feed(&pieces);
        assert_eq!(p.seen.len(), 1);
        assert_eq!(p.calls, 2);
        assert_eq!(d.stats().parsed[0], 201);
    }

    /// A parser whose only message is `len` bytes long; it notes the times of the message's
    /// first and last byte.
    struct OneLong {
        len: usize,
        times: Option<(u64, u64)>,
        marks_seen: usize,
    }

    impl StreamParser for OneLong {
        fn handle(
            &mut self,
            cx: &Cx<'_>,
            _dir: Direction,
            input: Input<'_>,
            _out: &mut Vec<DbEvent>,
        ) -> Progress {
            self.marks_seen = self.marks_seen.max(cx.marks.len());
            match input {
                Input::Data(d) if d.len() < self.len => Progress::NeedMore {
                    consumed: 0,
                    need: self.len,
                },
                Input::Data(_) => {
                    self.times = Some((cx.ts_at(0).0, cx.ts_at(self.len - 1).0));
                    Progress::Consumed(self.len)
                }
                _ => Progress::Consumed(0),
            }
        }
    }

    #[test]
    fn a_message_over_more_segments_than_marks_kept_keeps_its_first_and_last_times() {
        // 3.5 × MAX_MARKS one-byte segments, segment k at time k + 1.
        let len = MAX_MARKS * 7 / 2;
        let mut p = OneLong {
            len,
            times: None,
            marks_seen: 0,
        };
        let mut d = Driver::new(Limits::default());
        let mut out = Vec::new();
        for k in 0..len {
            d.data(
                &mut p,
                Direction::ToServer,
                Timestamp(k as u64 + 1),
                b"x",
                &mut out,
            );
            assert!(d.dirs[0].marks.len() <= MAX_MARKS, "segment {k}");
            assert_eq!(d.dirs[0].marks.as_slices().1.len(), 0, "marks in one slice");
        }
        assert_eq!(p.times, Some((1, len as u64)));
        assert!(p.marks_seen > MAX_MARKS / 2 && p.marks_seen <= MAX_MARKS);
        assert!(d.dirs[0].marks.is_empty());
    }

    #[test]
    fn thinning_merges_the_older_half_into_the_earlier_times() {
        let mut marks: VecDeque<Mark> = (0..8u64)
            .map(|k| Mark {
                offset: k * 10,
                ts: Timestamp(k),
            })
            .collect();
        thin_older_half(&mut marks);
        let left: Vec<u64> = marks.iter().map(|m| m.ts.0).collect();
        assert_eq!(left, [0, 2, 4, 5, 6, 7]);
        // Byte 15 was carried by the segment at time 1, now dated by the older mark's time 0.
        let cx = Cx {
            ts: Timestamp(9),
            base: 0,
            marks: marks.make_contiguous(),
            limits: &Limits::default(),
        };
        assert_eq!(cx.ts_at(15).0, 0);
        assert_eq!(cx.ts_at(45).0, 4);
        assert_eq!(cx.ts_at(55).0, 5);
    }

    #[test]
    fn request_time_is_the_time_of_its_first_byte() {
        let (p, _) = feed(&[b"\x05ab", b"c", b"de\x01z"]);
        assert_eq!(p.seen[0].1, b"abcde");
        assert_eq!(p.seen[0].2, 1);
        assert_eq!(p.seen[1].2, 3);
    }

    #[test]
    fn skip_drops_bytes_across_segments_and_absorbs_gaps() {
        let mut p = Toy::default();
        let mut d = Driver::new(Limits::default());
        let mut out = Vec::new();
        let dir = Direction::ToClient;
        // "S" + skip 10: then 10 bytes dropped (4 here, 3 lost in a gap, 3 in the next chunk).
        d.data(&mut p, dir, Timestamp(1), b"\x02S\x0aabcd", &mut out);
        d.gap(&mut p, dir, Timestamp(2), 3, &mut out);
        d.data(&mut p, dir, Timestamp(3), b"efg\x01k", &mut out);
        assert_eq!(
            p.seen.iter().map(|s| s.1.clone()).collect::<Vec<_>>(),
            vec![b"S\x0a".to_vec(), b"k".to_vec()]
        );
        assert!(
            p.gaps.is_empty(),
            "gap inside skip must not reach the parser"
        );
        assert_eq!(d.stats().skipped[1], 7);
        assert_eq!(d.stats().gap_bytes[1], 3);
    }

    #[test]
    fn gap_hands_over_the_partial_message_and_drops_it() {
        let mut p = Toy::default();
        let mut d = Driver::new(Limits::default());
        let mut out = Vec::new();
        let dir = Direction::ToServer;
        d.data(&mut p, dir, Timestamp(1), b"\x09abc", &mut out);
        d.gap(&mut p, dir, Timestamp(2), 5, &mut out);
        assert_eq!(p.gaps, vec![(5, 4)]);
        d.data(&mut p, dir, Timestamp(3), b"\x01q", &mut out);
        assert_eq!(p.seen.last().unwrap().1, b"q");
    }

    #[test]
    fn upgrade_stops_parsing_and_counts_bytes() {
        let mut p = Toy::default();
        let mut d = Driver::new(Limits::default());
        let mut out = Vec::new();
        d.data(
            &mut p,
            Direction::ToServer,
            Timestamp(1),
            b"\x01T\x16\x03\x01",
            &mut out,
        );
        d.data(
            &mut p,
            Direction::ToClient,
            Timestamp(2),
            b"\x16\x03\x03\x00",
            &mut out,
        );
        assert_eq!(d.state(), DriverState::Upgraded(Upgrade::Tls));
        assert_eq!(p.seen.len(), 1);
        assert_eq!(d.stats().unparsed, [3, 4]);
        assert_eq!(d.stats().parsed, [2, 0]);
    }

    #[test]
    fn need_over_the_limit_abandons() {
        struct Greedy;
        impl StreamParser for Greedy {
            fn handle(
                &mut self,
                _: &Cx<'_>,
                _: Direction,
                _: Input<'_>,
                _: &mut Vec<DbEvent>,
            ) -> Progress {
                Progress::NeedMore {
                    consumed: 0,
                    need: usize::MAX,
                }
            }
        }
        let mut d = Driver::new(Limits::default());
        let mut out = Vec::new();
        d.data(
            &mut Greedy,
            Direction::ToServer,
            Timestamp(1),
            b"abc",
            &mut out,
        );
        assert_eq!(d.state(), DriverState::Abandoned(Abandon::Unrecoverable));
        assert_eq!(d.stats().need_over_limit, 1);
        assert_eq!(d.buffered(), 0);
    }
}
