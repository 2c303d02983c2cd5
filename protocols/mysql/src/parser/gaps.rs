//! Gaps and ends: the shared gap policy applied to MySQL framing.

use super::*;
use dbtap_core::gap::{judge, GapVerdict, Position};
use dbtap_core::{Completeness, Cx, DbEvent, Direction, Progress};

use crate::frame::{CompHeader, Header, COMP_HEADER_LEN, HEADER_LEN};
use crate::session::Phase;

impl MysqlParser {
    pub(super) fn on_gap(
        &mut self,
        cx: &Cx<'_>,
        dir: Direction,
        len: u64,
        partial: &[u8],
        out: &mut Vec<DbEvent>,
    ) -> Progress {
        let i = dir.index();
        if self.phase == Phase::Encrypted {
            return Progress::Consumed(0);
        }
        if self.dirs[i].resync.absorb_gap(len, partial) {
            return Progress::Consumed(0);
        }
        if self.dirs[i].comp.is_some() {
            // The inner stream cannot continue across a lost frame (each frame is its own zlib
            // stream, and the packets inside span frames): inner desync. The outer framing
            // survives when the gap lies inside one frame.
            let big = self.dirs[i].comp.as_mut().and_then(|c| c.big.take());
            let position = match (big, CompHeader::parse(partial)) {
                // Inside a frame that streams past: its remaining length is known.
                (Some(b), _) => Position::InMessage {
                    have: b.h.clen.saturating_sub(b.left) as u64,
                    total: b.h.clen as u64,
                },
                (None, Some(h)) => Position::InMessage {
                    have: partial.len() as u64,
                    total: (COMP_HEADER_LEN + h.clen) as u64,
                },
                (None, None) if partial.is_empty() => Position::Boundary,
                (None, None) => Position::Unknown,
            };
            self.inner_desync(dir, len, out);
            return match judge(position, len) {
                GapVerdict::Absorb { skip, .. } => Progress::Skip { consumed: 0, skip },
                GapVerdict::Desync { lost } => {
                    self.dirs[i].resync.start(lost);
                    Progress::Consumed(0)
                }
            };
        }
        let head = Header::parse(partial);
        let position = match head {
            Some(h) => Position::InMessage {
                have: partial.len() as u64,
                total: h.total() as u64,
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
                    self.dirs[i].cont = h.continues();
                    self.dirs[i].cont_counts = true;
                }
                Progress::Skip { consumed: 0, skip }
            }
            GapVerdict::Desync { lost } => {
                out.push(DbEvent::Desync {
                    dir,
                    lost_bytes: lost,
                });
                self.dirs[i].cont = false;
                if let Some(h) = head {
                    if dir == Direction::ToServer && self.phase == Phase::Command && h.seq == 0 {
                        // A command whose tail and more were lost: keep what was seen.
                        let missing = h.total().saturating_sub(partial.len()) as u64;
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
                        self.dirs[i].cont = false;
                    }
                }
                if dir == Direction::ToClient {
                    self.flush_all(out, Some(lost));
                    self.server_needs_request = true;
                }
                if matches!(
                    self.phase,
                    Phase::Auth | Phase::AwaitHandshake | Phase::AwaitGreeting
                ) {
                    // Where the login stands is unknown now; what follows is looked at as
                    // commands.
                    if dir == Direction::ToServer {
                        self.flush_pending(out);
                    }
                    self.phase = Phase::Command;
                }
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
        if !partial.is_empty()
            && !self.dirs[i].resync.is_active()
            && self.dirs[i].comp.is_none()
            && !self.dirs[i].cont
        {
            if let Some(h) = Header::parse(partial) {
                let c = Completeness::Truncated {
                    kept: partial.len() as u64,
                    original: h.total() as u64,
                };
                self.seen_head(cx, dir, partial, h, c, out);
            }
        }
        // The server side closed, or both did: a request still waiting gets no response.
        if dir == Direction::ToClient || self.dirs[dir.flip().index()].ended {
            self.flush_all(out, None);
        } else if self
            .newest_mut()
            .is_some_and(|p| matches!(p.req.completeness, Completeness::Truncated { .. }))
        {
            // The client's message was cut by the end: the server cannot answer it.
            self.flush_newest(out);
        }
        Progress::Consumed(0)
    }

    /// Handle the head of a message that will never be complete (gap or end) as if it were the
    /// whole message, and flag what came of it with `c`.
    pub(super) fn seen_head(
        &mut self,
        cx: &Cx<'_>,
        dir: Direction,
        partial: &[u8],
        real: Header,
        c: Completeness,
        out: &mut Vec<DbEvent>,
    ) {
        if self.dirs[dir.index()].cont {
            // The head of a continuation packet: its payload's head was handled already.
            self.dirs[dir.index()].cont = real.continues();
            if self.dirs[dir.index()].cont_counts {
                self.count_cont(dir, real);
            }
            return;
        }
        let synth = Header {
            len: partial.len() - HEADER_LEN,
            seq: real.seq,
        };
        let since = out.len();
        let clock = Clock::Cx(cx, 0);
        let before_tx = self.tx;
        let _ = match dir {
            Direction::ToServer => self.client_packet(clock, cx.limits, synth, partial, 0, out),
            Direction::ToClient => self.server_packet(clock, cx.limits, synth, partial, 0, out),
        };
        let _ = before_tx;
        match dir {
            Direction::ToServer => {
                let ours = self
                    .newest_mut()
                    .filter(|p| p.req_payload == synth.len as u64 && p.req.ts == cx.ts_at(0));
                if let Some(p) = ours {
                    p.req.completeness = p.req.completeness.merge(c);
                    p.req.bytes = p.req.bytes.max(real.total() as u64);
                    p.req_payload = real.len as u64;
                } else if let Some(DbEvent::Request(r)) = out.get_mut(since..).and_then(|s| {
                    s.iter_mut()
                        .rev()
                        .find(|e| matches!(e, DbEvent::Request(_)))
                }) {
                    r.completeness = r.completeness.merge(c);
                }
            }
            Direction::ToClient => {
                if let Some(DbEvent::Response(r)) = out.get_mut(since..).and_then(|s| {
                    s.iter_mut()
                        .rev()
                        .find(|e| matches!(e, DbEvent::Response(_)))
                }) {
                    r.completeness = r.completeness.merge(c);
                } else if let Some(p) = self.pending.as_mut() {
                    p.resp.completeness = p.resp.completeness.merge(c);
                }
            }
        }
    }
}
