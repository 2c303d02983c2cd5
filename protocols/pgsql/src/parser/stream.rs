//! Data path: first bytes, resync scans, the message loops and the resync candidates.

use super::*;
use dbtap_core::gap::{Candidate, ResyncStep};
use dbtap_core::{Abandon, Cx, DbEvent, Direction, Progress, Upgrade};

use crate::codes::{be, fe};
use crate::frame::{Header, HEADER_LEN};
use crate::messages;

/// Bytes of a message a resync candidate test may ask for (whole small messages are checked
/// field by field; longer ones by their head).
pub(crate) const RESYNC_WHOLE_MAX: usize = 64 * 1024;
/// Bytes of statement text checked for printability by the resync candidate test.
const RESYNC_TEXT_CHECK: usize = 64;

/// What one run of the message loop ended with.
enum Flow {
    /// Answer the stream layer.
    Return(Progress),
    /// Framing was lost at this input position: resync from there.
    Desynced(usize),
}

impl PgParser {
    pub(super) fn on_data(
        &mut self,
        cx: &Cx<'_>,
        dir: Direction,
        data: &[u8],
        out: &mut Vec<DbEvent>,
    ) -> Progress {
        let i = dir.index();
        if self.phase == Phase::Encrypted {
            return Progress::Upgraded {
                consumed: 0,
                to: Upgrade::Tls,
            };
        }
        if !self.dirs[i].seen {
            // The one-byte answer to SSLRequest / GSSENCRequest is judged by its own step.
            let answer_byte = dir == Direction::ToClient && self.answer_pending.is_some();
            let first = if answer_byte {
                First::Ok
            } else {
                first_bytes(dir, data)
            };
            match first {
                First::Wait(n) => {
                    return Progress::NeedMore {
                        consumed: 0,
                        need: n,
                    }
                }
                First::Foreign => return Progress::Abandon(Abandon::NotThisProtocol),
                First::Ok => self.dirs[i].seen = true,
            }
        }
        let mut pos = 0usize;
        loop {
            if pos >= data.len() {
                return Progress::Consumed(data.len());
            }
            if self.dirs[i].resync.is_active() {
                let sub = Cx {
                    base: cx.base + pos as u64,
                    ..*cx
                };
                let rest = data.get(pos..).unwrap_or_default();
                match self.resync_scan(&sub, dir, rest, out) {
                    Ok(skipped) => pos += skipped,
                    Err(Progress::Consumed(n)) => return Progress::Consumed(pos + n),
                    Err(Progress::NeedMore { consumed, need }) => {
                        return Progress::NeedMore {
                            consumed: pos + consumed,
                            need,
                        }
                    }
                    Err(p) => return p,
                }
            }
            match self.messages(cx, dir, data, pos, out) {
                Flow::Return(p) => return p,
                Flow::Desynced(at) => {
                    // Never loop without progress: a desync at the very position just resynced
                    // to drops that byte first.
                    pos = if at <= pos && !self.dirs[i].resync.is_active() {
                        pos + 1
                    } else {
                        at
                    };
                }
            }
        }
    }

    /// Scan for a message start; `Ok(skipped)` when found at `skipped`, else the answer.
    fn resync_scan(
        &mut self,
        cx: &Cx<'_>,
        dir: Direction,
        data: &[u8],
        out: &mut Vec<DbEvent>,
    ) -> Result<usize, Progress> {
        let i = dir.index();
        let max = cx.limits.max_message_len.min(RESYNC_WHOLE_MAX);
        let front = self
            .expect
            .iter()
            .find(|e| e.kind != ExpKind::Lost)
            .map(|e| (e.kind, e.ts));
        let can_server = !self.server_needs_request && front.is_some();
        let mut resync = std::mem::take(&mut self.dirs[i].resync);
        let step = resync.scan(cx, data, |d| match dir {
            Direction::ToServer => client_candidate(d, max),
            Direction::ToClient => {
                let Some((kind, ts)) = front.filter(|_| can_server) else {
                    return Candidate::No;
                };
                // A response cannot begin before its request was sent.
                let at = data.len() - d.len();
                if cx.ts_at(at) < ts {
                    return Candidate::No;
                }
                server_candidate(d, Some(kind), max)
            }
        });
        let result = match step {
            ResyncStep::Found { skipped } => {
                let (lost, total) = resync.finish();
                self.dirs[i].scanned = 0;
                if lost > 0 || total > 0 {
                    out.push(DbEvent::Resync {
                        dir,
                        skipped_bytes: total,
                    });
                }
                if dir == Direction::ToServer && self.phase != Phase::Ready {
                    self.phase = Phase::Ready;
                }
                if dir == Direction::ToClient {
                    self.server_at_boundary = true;
                }
                Ok(skipped)
            }
            ResyncStep::Discard(n) => {
                self.dirs[i].scanned = self.dirs[i].scanned.saturating_add(n as u64);
                if self.dirs[i].scanned > cx.limits.max_resync_scan {
                    Err(Progress::Abandon(Abandon::Unrecoverable))
                } else {
                    Err(Progress::Consumed(n))
                }
            }
            ResyncStep::Wait { consumed, need } => Err(Progress::NeedMore {
                consumed,
                need: need.min(cx.limits.max_message_len),
            }),
        };
        self.dirs[i].resync = resync;
        result
    }

    /// Walk messages from `pos` until the input runs out or something must be answered.
    fn messages(
        &mut self,
        cx: &Cx<'_>,
        dir: Direction,
        data: &[u8],
        mut pos: usize,
        out: &mut Vec<DbEvent>,
    ) -> Flow {
        loop {
            if pos >= data.len() {
                return Flow::Return(Progress::Consumed(data.len()));
            }
            let step = match dir {
                Direction::ToServer => self.client_step(cx, data, pos, out),
                Direction::ToClient => self.server_step(cx, data, pos, out),
            };
            match step {
                Step::Next(n) => pos += n,
                Step::Need(n) => {
                    return Flow::Return(Progress::NeedMore {
                        consumed: pos,
                        need: n,
                    })
                }
                Step::Skip { consumed, skip } => {
                    return Flow::Return(Progress::Skip {
                        consumed: pos + consumed,
                        skip,
                    })
                }
                Step::Upgrade(n) => {
                    return Flow::Return(Progress::Upgraded {
                        consumed: pos + n,
                        to: Upgrade::Tls,
                    })
                }
                Step::Desync(n) => return Flow::Desynced(pos + n),
                Step::Abandon(a) => return Flow::Return(Progress::Abandon(a)),
            }
        }
    }

    /// Framing lost in `dir` at a message whose header cannot be trusted: report, flush what
    /// depends on it, and resync.
    pub(crate) fn desync(&mut self, dir: Direction, lost: u64, out: &mut Vec<DbEvent>) {
        out.push(DbEvent::Desync {
            dir,
            lost_bytes: lost,
        });
        self.after_loss(dir, lost, out);
        self.dirs[dir.index()].resync.start(lost);
    }

    /// What a loss of message boundaries in `dir` means for the session state.
    pub(crate) fn after_loss(&mut self, dir: Direction, lost: u64, out: &mut Vec<DbEvent>) {
        match dir {
            Direction::ToClient => {
                // The answers in flight cannot be matched any more.
                self.flush_all(Some(lost), out);
                self.server_needs_request = true;
                self.answer_pending = None;
            }
            Direction::ToServer => {
                if matches!(
                    self.phase,
                    Phase::Startup | Phase::Auth | Phase::SslWait | Phase::GssWait
                ) {
                    // Where the login stands is unknown now; what follows is looked at as
                    // ordinary messages.
                    self.flush_login(out);
                    self.phase = Phase::Ready;
                }
                // Requests were lost: their answers come before those of later requests.
                if self.expect.back().map(|e| e.kind) != Some(ExpKind::Lost) {
                    self.push_expect(ExpKind::Lost, None, Timestamp(u64::MAX));
                }
                self.batch_last = None;
                self.batch_carry = None;
                self.copy_in = None;
            }
        }
        if matches!(
            self.phase,
            Phase::Startup | Phase::SslWait | Phase::GssWait | Phase::Auth
        ) && dir == Direction::ToClient
        {
            self.phase = Phase::Ready;
        }
    }
}

/// What the first bytes of a direction say.
enum First {
    Ok,
    Foreign,
    Wait(usize),
}

/// The first bytes of a direction: another protocol's signature (HTTP, SSH, a server speaking
/// TLS first) means this is not PostgreSQL. A client's TLS ClientHello is PostgreSQL 17 direct
/// TLS and handled by the startup step.
fn first_bytes(dir: Direction, d: &[u8]) -> First {
    match d.first() {
        None => First::Wait(1),
        // A startup packet length, or a message of a session picked up mid-stream.
        Some(0) => First::Ok,
        Some(_) if d.len() < 4 => First::Wait(4),
        Some(_) => {
            let foreign = crate::looks_foreign(d)
                && !(dir == Direction::ToServer && crate::tls::is_handshake_record(d));
            if foreign {
                First::Foreign
            } else {
                First::Ok
            }
        }
    }
}

/// Printable statement text: no NUL or control characters other than tab, CR, LF.
fn printable(t: &[u8]) -> bool {
    t.iter()
        .all(|&b| b >= 0x20 && b != 0x7f || matches!(b, b'\t' | b'\n' | b'\r'))
}

/// Is this a plausible frontend message start (after the startup phase)? A known type, a
/// length within PostgreSQL's bound, and a body that checks out field by field (whole
/// messages up to `max` bytes; the head of longer statements).
pub(crate) fn client_candidate(d: &[u8], max: usize) -> Candidate {
    let Some(h) = Header::parse(d) else {
        return Candidate::NeedMore(HEADER_LEN);
    };
    if !h.valid_frontend() {
        return Candidate::No;
    }
    let total = h.total();
    fn whole(d: &[u8], total: usize, max: usize) -> Result<&[u8], Candidate> {
        if total > max {
            return Err(Candidate::No);
        }
        d.get(HEADER_LEN..total).ok_or(Candidate::NeedMore(total))
    }
    let yes = |ok: bool| if ok { Candidate::Yes } else { Candidate::No };
    match h.ty {
        fe::SYNC | fe::FLUSH | fe::TERMINATE | fe::COPY_DONE => yes(h.len == 4),
        fe::QUERY => {
            if h.len < 6 {
                return Candidate::No;
            }
            let n = h.body_len().min(RESYNC_TEXT_CHECK);
            let Some(head) = d.get(HEADER_LEN..HEADER_LEN + n) else {
                return Candidate::NeedMore(HEADER_LEN + n);
            };
            let text_head = head.strip_suffix(b"\0").unwrap_or(head);
            if !printable(text_head) || text_head.is_empty() {
                return Candidate::No;
            }
            if total > max {
                // A long statement: its visible text checks out.
                return Candidate::Yes;
            }
            match whole(d, total, max) {
                Ok(body) => yes(body.iter().position(|&b| b == 0) == Some(body.len() - 1)
                    && printable(body.get(..body.len() - 1).unwrap_or_default())),
                Err(c) => c,
            }
        }
        fe::PARSE => {
            if total > max {
                let mut r = crate::wire::Reader::new(d.get(HEADER_LEN..).unwrap_or_default());
                return match r.cstr() {
                    Some(name) if printable(name) => {
                        let q = r.peek_rest();
                        let q = q.get(..q.len().min(RESYNC_TEXT_CHECK)).unwrap_or_default();
                        yes(q.len() == RESYNC_TEXT_CHECK && printable(q))
                    }
                    Some(_) => Candidate::No,
                    None if d.len() < HEADER_LEN + 256 => Candidate::NeedMore(HEADER_LEN + 256),
                    None => Candidate::No,
                };
            }
            match whole(d, total, max) {
                Ok(body) => yes(messages::parse_well_formed(body)
                    && messages::parse(body).is_some_and(|p| {
                        printable(p.name) && printable(p.query) && !p.query.is_empty()
                    })),
                Err(c) => c,
            }
        }
        fe::BIND => match whole(d, total, max) {
            Ok(body) => yes(messages::bind_well_formed(body)),
            Err(c) => c,
        },
        fe::EXECUTE => match whole(d, total, max) {
            Ok(body) => yes(messages::execute(body).is_some_and(|(p, _)| printable(p))),
            Err(c) => c,
        },
        fe::DESCRIBE | fe::CLOSE => match whole(d, total, max) {
            Ok(body) => yes(messages::target(body).is_some_and(|(_, n)| printable(n))),
            Err(c) => c,
        },
        fe::FUNCTION_CALL => match whole(d, total, max) {
            Ok(body) => yes(function_call_well_formed(body)),
            Err(c) => c,
        },
        fe::COPY_FAIL => match whole(d, total, max) {
            Ok(body) => yes(body.last() == Some(&0) && printable(&body[..body.len() - 1])),
            Err(c) => c,
        },
        fe::COPY_DATA => {
            // CopyData bodies are arbitrary: believe one only when the next header checks out.
            if total > max {
                return Candidate::No;
            }
            match Header::parse(d.get(total..).unwrap_or_default()) {
                None if d.len() < total + HEADER_LEN => Candidate::NeedMore(total + HEADER_LEN),
                Some(n) => yes(n.valid_frontend()
                    && matches!(n.ty, fe::COPY_DATA | fe::COPY_DONE | fe::COPY_FAIL)),
                None => Candidate::No,
            }
        }
        _ => Candidate::No,
    }
}

fn function_call_well_formed(body: &[u8]) -> bool {
    let Some((_, h)) = messages::function_call(body) else {
        return false;
    };
    let nf = h.formats.len() / 2;
    if nf > 1 && nf != h.nparams {
        return false;
    }
    let mut r = crate::wire::Reader::new(h.values);
    for _ in 0..h.nparams {
        match r.i32() {
            Some(-1) => {}
            Some(n) if n >= 0 => {
                if r.take(n as usize).is_none() {
                    return false;
                }
            }
            _ => return false,
        }
    }
    r.i16().is_some() && r.is_empty()
}

/// Is this a plausible backend message start, answering `front` (the awaited answer; `None`
/// when nothing in particular is awaited)? A known type, a length within libpq's bound, a body
/// that checks out, and a kind that can begin the awaited answer (asynchronous messages —
/// NoticeResponse, ParameterStatus, NotificationResponse — can come any time).
pub(crate) fn server_candidate(d: &[u8], front: Option<ExpKind>, max: usize) -> Candidate {
    let Some(h) = Header::parse(d) else {
        return Candidate::NeedMore(HEADER_LEN);
    };
    if !h.valid_backend() {
        return Candidate::No;
    }
    let fits = match front {
        None => true,
        Some(k) => {
            matches!(
                h.ty,
                be::NOTICE | be::PARAMETER_STATUS | be::NOTIFICATION | be::ERROR
            ) || match k {
                ExpKind::Query => matches!(
                    h.ty,
                    be::ROW_DESCRIPTION
                        | be::COMMAND_COMPLETE
                        | be::EMPTY_QUERY
                        | be::COPY_IN
                        | be::COPY_OUT
                        | be::COPY_BOTH
                ),
                ExpKind::Parse => h.ty == be::PARSE_COMPLETE,
                ExpKind::Bind => h.ty == be::BIND_COMPLETE,
                ExpKind::DescribeStmt => h.ty == be::PARAMETER_DESCRIPTION,
                ExpKind::DescribePortal => matches!(h.ty, be::ROW_DESCRIPTION | be::NO_DATA),
                ExpKind::Execute => matches!(
                    h.ty,
                    be::DATA_ROW
                        | be::COMMAND_COMPLETE
                        | be::EMPTY_QUERY
                        | be::PORTAL_SUSPENDED
                        | be::COPY_IN
                        | be::COPY_OUT
                        | be::COPY_BOTH
                ),
                ExpKind::Close => h.ty == be::CLOSE_COMPLETE,
                ExpKind::Sync => h.ty == be::READY_FOR_QUERY,
                ExpKind::FunctionCall => h.ty == be::FUNCTION_CALL_RESPONSE,
                ExpKind::Lost => false,
            }
        }
    };
    if !fits {
        return Candidate::No;
    }
    let total = h.total();
    if total > max {
        return Candidate::No;
    }
    let Some(body) = d.get(HEADER_LEN..total) else {
        return Candidate::NeedMore(total);
    };
    let ok = match h.ty {
        be::PARSE_COMPLETE
        | be::BIND_COMPLETE
        | be::CLOSE_COMPLETE
        | be::NO_DATA
        | be::PORTAL_SUSPENDED
        | be::EMPTY_QUERY
        | be::COPY_DONE => body.is_empty(),
        be::READY_FOR_QUERY => messages::ready_status(body).is_some(),
        be::COMMAND_COMPLETE => {
            body.last() == Some(&0)
                && body.first().is_some_and(u8::is_ascii_uppercase)
                && body[..body.len() - 1].iter().all(|&b| {
                    b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ' || b == b'_'
                })
        }
        be::ROW_DESCRIPTION => messages::row_description_well_formed(body),
        be::DATA_ROW => messages::data_row_well_formed(body),
        be::ERROR | be::NOTICE => messages::error_well_formed(body),
        be::PARAMETER_STATUS => messages::parameter_status(body).is_some_and(|(n, v)| {
            !n.is_empty() && printable(n) && printable(v) && n.len() + v.len() + 2 == body.len()
        }),
        be::PARAMETER_DESCRIPTION => messages::parameter_description(body).is_some(),
        be::COPY_IN | be::COPY_OUT | be::COPY_BOTH => messages::copy_response_well_formed(body),
        be::NOTIFICATION => {
            let mut r = crate::wire::Reader::new(body);
            r.u32().is_some() && r.cstr().is_some() && r.cstr().is_some() && r.is_empty()
        }
        be::FUNCTION_CALL_RESPONSE => {
            let mut r = crate::wire::Reader::new(body);
            match r.i32() {
                Some(-1) => r.is_empty(),
                Some(n) if n >= 0 => r.take(n as usize).is_some() && r.is_empty(),
                _ => false,
            }
        }
        _ => false,
    };
    if ok {
        Candidate::Yes
    } else {
        Candidate::No
    }
}
