//! Gaps and ends: the shared gap policy (`dbtap_core::gap`) applied to PostgreSQL framing.

use super::*;
use dbtap_core::gap::{judge, GapVerdict, Position};
use dbtap_core::{Completeness, Cx, DbEvent, Direction, Progress};

use crate::codes::startup;
use crate::frame::{Header, StartupHeader, HEADER_LEN, STARTUP_HEADER_LEN};

/// What a partial message (the unconsumed head before a gap or an end) is.
enum Head {
    Typed(Header),
    Startup(StartupHeader),
}

impl PgParser {
    fn head_of(&self, dir: Direction, partial: &[u8]) -> Option<Head> {
        let startup = dir == Direction::ToServer && self.phase == Phase::Startup;
        if startup {
            let sh = StartupHeader::parse(partial)?;
            return sh.plausible_len().then_some(Head::Startup(sh));
        }
        let h = Header::parse(partial)?;
        let ok = match dir {
            Direction::ToServer => h.valid_frontend(),
            Direction::ToClient => h.valid_backend(),
        };
        ok.then_some(Head::Typed(h))
    }

    pub(super) fn on_gap(
        &mut self,
        cx: &Cx<'_>,
        dir: Direction,
        len: u64,
        partial: &[u8],
        out: &mut Vec<DbEvent>,
    ) -> Progress {
        let i = dir.index();
        if matches!(self.phase, Phase::Encrypted) {
            return Progress::Consumed(0);
        }
        if self.dirs[i].resync.absorb_gap(len, partial) {
            return Progress::Consumed(0);
        }
        let head = self.head_of(dir, partial);
        let position = match &head {
            Some(Head::Typed(h)) => Position::InMessage {
                have: partial.len() as u64,
                total: h.total() as u64,
            },
            Some(Head::Startup(sh)) => Position::InMessage {
                have: partial.len() as u64,
                total: sh.len as u64,
            },
            None if partial.is_empty() => Position::Boundary,
            None => Position::Unknown,
        };
        match judge(position, len) {
            GapVerdict::Absorb { lost, skip } => {
                if let Some(h) = head {
                    self.seen_head(
                        cx,
                        dir,
                        partial,
                        h,
                        Completeness::Partial { lost_bytes: lost },
                        out,
                    );
                }
                Progress::Skip { consumed: 0, skip }
            }
            GapVerdict::Desync { lost } => {
                out.push(DbEvent::Desync {
                    dir,
                    lost_bytes: lost,
                });
                if let (Direction::ToServer, Some(h @ Head::Typed(_))) = (dir, head) {
                    if self.phase == Phase::Ready {
                        // A request whose tail and more were lost: keep what was seen.
                        let missing = match h {
                            Head::Typed(t) => t.total().saturating_sub(partial.len()) as u64,
                            Head::Startup(_) => 0,
                        };
                        self.seen_head(
                            cx,
                            dir,
                            partial,
                            h,
                            Completeness::Partial {
                                lost_bytes: missing,
                            },
                            out,
                        );
                    }
                }
                self.after_loss(dir, lost, out);
                self.dirs[i].resync.start(lost);
                Progress::Consumed(0)
            }
        }
    }

    pub(super) fn on_end(
        &mut self,
        cx: &Cx<'_>,
        dir: Direction,
        partial: &[u8],
        out: &mut Vec<DbEvent>,
    ) -> Progress {
        let i = dir.index();
        self.dirs[i].ended = true;
        if self.phase == Phase::Encrypted {
            return Progress::Consumed(0);
        }
        if !partial.is_empty() && !self.dirs[i].resync.is_active() {
            if let Some(h) = self.head_of(dir, partial) {
                let original = match &h {
                    Head::Typed(t) => t.total(),
                    Head::Startup(s) => s.len,
                } as u64;
                let c = Completeness::Truncated {
                    kept: partial.len() as u64,
                    original,
                };
                self.seen_head(cx, dir, partial, h, c, out);
            }
        }
        // The server side closed, or both did: what still waits gets no answer.
        if dir == Direction::ToClient || self.dirs[dir.flip().index()].ended {
            self.flush_all(None, out);
        }
        Progress::Consumed(0)
    }

    /// Handle the head of a message that will never be complete (gap or end) as if it were the
    /// whole message, and flag what came of it with `c`.
    fn seen_head(
        &mut self,
        cx: &Cx<'_>,
        dir: Direction,
        partial: &[u8],
        head: Head,
        c: Completeness,
        out: &mut Vec<DbEvent>,
    ) {
        match head {
            Head::Startup(sh) => {
                let body = partial.get(STARTUP_HEADER_LEN..).unwrap_or_default();
                if sh.code >> 16 == startup::MAJOR_3 {
                    let ts = cx.ts_at(0);
                    self.startup_message(cx, ts, sh, body, out);
                    if let Some(l) = self.login.as_mut() {
                        l.req.completeness = l.req.completeness.merge(c);
                    }
                }
            }
            Head::Typed(h) => {
                let body = partial.get(HEADER_LEN..).unwrap_or_default();
                match dir {
                    Direction::ToServer => {
                        let before = self.next_op;
                        self.client_message(cx, h, body, 0, Some(c), out);
                        if self.next_op == before {
                            // Continued an existing operation (Bind of a Parse, Execute).
                            if let Some(op) = self.batch_last.and_then(|id| self.op_mut(id)) {
                                op.req.completeness = op.req.completeness.merge(c);
                            }
                        }
                    }
                    Direction::ToClient => self.server_message(cx, h, body, 0, Some(c), out),
                }
            }
        }
    }
}
