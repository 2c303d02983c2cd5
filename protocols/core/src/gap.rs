//! The one gap policy, shared by every parser.
//!
//! Gaps are produced by the reassembler (loss, snaplen cut, budget overflow, ACK beyond a hole,
//! mid-stream pickup), never inferred by parsers. A parser facing `Input::Gap` asks [`judge`]:
//!
//! - gap inside a `Progress::Skip` region: the stream layer already absorbed it, the parser never
//!   hears of it;
//! - gap inside a message whose length is known: **absorb**: parse the head that was seen, mark it
//!   `Partial { lost_bytes }`, and skip the rest of the message ([`GapVerdict::Absorb`]);
//! - gap between messages, in a header, or longer than the rest of the message: **desync**
//!   ([`GapVerdict::Desync`]); then [`Resync`] scans for a plausible message start, preferring
//!   TCP segment starts, where clients and servers begin messages.

use crate::contract::Cx;

/// Where a parser stands in one direction when a gap arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// Between two messages.
    Boundary,
    /// Inside a message of `total` bytes (header included), `have` of which were seen.
    InMessage { have: u64, total: u64 },
    /// Somewhere whose extent is unknown (a header was cut, or already desynced).
    Unknown,
}

/// What to do about a gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapVerdict {
    /// The gap lies inside the current message: `lost` bytes of it are missing and the message
    /// ends `skip` bytes after the gap. Parse the head that was seen as `Partial`, then
    /// `Progress::Skip { skip }`; the next byte after that starts a message.
    Absorb { lost: u64, skip: u64 },
    /// Message boundaries are lost: emit `Desync` and resync.
    Desync { lost: u64 },
}

/// Decide between absorbing a gap of `len` bytes and desyncing.
pub fn judge(position: Position, len: u64) -> GapVerdict {
    match position {
        Position::InMessage { have, total } => {
            let remaining = total.saturating_sub(have);
            if len <= remaining {
                GapVerdict::Absorb {
                    lost: len,
                    skip: remaining - len,
                }
            } else {
                GapVerdict::Desync { lost: len }
            }
        }
        Position::Boundary | Position::Unknown => GapVerdict::Desync { lost: len },
    }
}

/// A parser's verdict on whether a message plausibly starts at the head of a slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Candidate {
    /// A message plausibly starts here.
    Yes,
    /// No message starts here.
    No,
    /// Cannot tell with fewer than this many bytes (from the candidate position).
    NeedMore(usize),
}

/// One step of a resync scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResyncStep {
    /// A message starts `skipped` bytes into the data: drop those, parse from there.
    Found { skipped: usize },
    /// Nothing here: drop `discard` bytes and wait for more data.
    Discard(usize),
    /// A candidate at `consumed` needs `need` bytes from there before it can be judged.
    Wait { consumed: usize, need: usize },
}

/// Resync state of one direction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resync {
    active: bool,
    /// Bytes lost in the gap(s) that caused the desync.
    lost: u64,
    /// Bytes discarded while looking for a message start.
    skipped: u64,
    /// The next scan may accept the first byte of its data as a candidate, even without a
    /// segment mark there (the data right after a gap starts where the stream resumed).
    head_is_candidate: bool,
}

impl Resync {
    /// A direction that is in sync.
    pub fn new() -> Self {
        Resync::default()
    }

    /// Enter (or stay in) desync after `lost` missing bytes.
    pub fn start(&mut self, lost: u64) {
        self.active = true;
        self.lost = self.lost.saturating_add(lost);
        self.head_is_candidate = true;
    }

    /// A gap met while already out of sync: the lost bytes, and the unparsed bytes before them
    /// (`partial`), join the desync. True when it did (the parser has nothing more to judge).
    pub fn absorb_gap(&mut self, len: u64, partial: &[u8]) -> bool {
        if self.active {
            self.start(len.saturating_add(partial.len() as u64));
        }
        self.active
    }

    /// True while message boundaries are unknown.
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Bytes lost plus bytes skipped since the desync began.
    pub fn lost_and_skipped(&self) -> (u64, u64) {
        (self.lost, self.skipped)
    }

    /// Look for a message start in `data`, at segment starts (and at the head of the data right
    /// after a gap). `candidate` judges a position. On `Found`, the resync is over and the
    /// returned `skipped` count is what the caller reports in its `Resync` event via
    /// [`Resync::finish`].
    pub fn scan(
        &mut self,
        cx: &Cx<'_>,
        data: &[u8],
        mut candidate: impl FnMut(&[u8]) -> Candidate,
    ) -> ResyncStep {
        let head = if self.head_is_candidate || cx.marks.is_empty() {
            Some(0)
        } else {
            None
        };
        let starts = head.into_iter().chain(cx.segment_starts());
        let mut last_checked = None;
        for at in starts {
            if Some(at) == last_checked || at >= data.len() {
                continue;
            }
            last_checked = Some(at);
            let Some(rest) = data.get(at..) else { break };
            match candidate(rest) {
                Candidate::Yes => {
                    self.skipped = self.skipped.saturating_add(at as u64);
                    return ResyncStep::Found { skipped: at };
                }
                Candidate::No => {}
                Candidate::NeedMore(need) => {
                    self.skipped = self.skipped.saturating_add(at as u64);
                    // Keep the candidate's head; judge it again when more bytes are in.
                    self.head_is_candidate = true;
                    return ResyncStep::Wait { consumed: at, need };
                }
            }
        }
        self.skipped = self.skipped.saturating_add(data.len() as u64);
        self.head_is_candidate = false;
        ResyncStep::Discard(data.len())
    }

    /// Leave desync; returns (lost, skipped) for the `Resync` event and counters.
    pub fn finish(&mut self) -> (u64, u64) {
        let out = (self.lost, self.skipped);
        *self = Resync::default();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::Mark;
    use crate::limits::Limits;
    use crate::time::Timestamp;

    #[test]
    fn a_gap_while_out_of_sync_joins_the_desync() {
        let mut r = Resync::new();
        assert!(
            !r.absorb_gap(100, b"abc"),
            "in sync: the parser judges the gap"
        );
        assert_eq!(r.lost_and_skipped(), (0, 0));
        r.start(10);
        assert!(r.absorb_gap(100, b"abc"));
        assert_eq!(r.lost_and_skipped(), (113, 0));
    }

    #[test]
    fn gap_inside_a_known_body_is_absorbed() {
        let v = judge(
            Position::InMessage {
                have: 500,
                total: 1000,
            },
            200,
        );
        assert_eq!(
            v,
            GapVerdict::Absorb {
                lost: 200,
                skip: 300
            }
        );
        // A gap that ends exactly at the message end leaves the stream on a boundary.
        let v = judge(
            Position::InMessage {
                have: 500,
                total: 1000,
            },
            500,
        );
        assert_eq!(v, GapVerdict::Absorb { lost: 500, skip: 0 });
    }

    #[test]
    fn gap_past_the_message_end_or_between_messages_desyncs() {
        assert_eq!(
            judge(
                Position::InMessage {
                    have: 500,
                    total: 1000
                },
                501
            ),
            GapVerdict::Desync { lost: 501 }
        );
        assert_eq!(
            judge(Position::Boundary, 10),
            GapVerdict::Desync { lost: 10 }
        );
        assert_eq!(
            judge(Position::Unknown, 10),
            GapVerdict::Desync { lost: 10 }
        );
    }

    #[test]
    fn resync_finds_a_candidate_at_a_segment_start() {
        let limits = Limits::default();
        let marks = [
            Mark {
                offset: 0,
                ts: Timestamp(1),
            },
            Mark {
                offset: 6,
                ts: Timestamp(2),
            },
        ];
        let cx = Cx {
            ts: Timestamp(2),
            base: 0,
            marks: &marks,
            limits: &limits,
        };
        let mut r = Resync::new();
        r.start(40);
        let data = b"xxxxxxOKrest";
        let step = r.scan(&cx, data, |d| {
            if d.starts_with(b"OK") {
                Candidate::Yes
            } else {
                Candidate::No
            }
        });
        assert_eq!(step, ResyncStep::Found { skipped: 6 });
        assert_eq!(r.finish(), (40, 6));
        assert!(!r.is_active());
    }

    #[test]
    fn resync_discards_when_nothing_plausible_and_waits_on_short_candidates() {
        let limits = Limits::default();
        let cx = Cx::at(Timestamp(1), &limits);
        let mut r = Resync::new();
        r.start(1);
        assert_eq!(
            r.scan(&cx, b"zzzz", |_| Candidate::No),
            ResyncStep::Discard(4)
        );
        r.start(0);
        assert_eq!(
            r.scan(&cx, b"O", |_| Candidate::NeedMore(2)),
            ResyncStep::Wait {
                consumed: 0,
                need: 2
            }
        );
        assert!(r.is_active());
    }
}
