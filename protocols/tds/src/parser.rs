//! The `StreamParser`: packet framing per direction, message assembly, request/response
//! pairing, the login sequence and its encryption, gaps and ends.
//!
//! Outside MARS, TDS is strictly half-duplex (MS-TDS 1.3, 3.1): the client sends one request
//! message and the server answers with one tabular-result message before the next request (an
//! Attention may interrupt). Each client message that gets an answer pushes a [`Pending`];
//! each server message (packets up to EOM) answers the front one. Records are emitted when the
//! answer is complete: `Request` and `Response` together.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;

use dbtap_core::gap::{judge, Candidate, GapVerdict, Position, Resync, ResyncStep};
use dbtap_core::{
    Abandon, Completeness, Cx, DbEvent, DeferredParams, Direction, Input, Login, Op, ParamValue,
    Progress, Request, Response, SessionOpts, SessionUpdate, Status, StreamParser, Timestamp,
    Upgrade,
};
use encoding_rs::Encoding;

use crate::login7::{self, version_name};
use crate::packet::{ty, Header, HEADER_LEN};
use crate::prelogin::{self, encrypt, Prelogin};
use crate::requests::{
    all_headers_len, parse_rpcs, skip_enclave_package, statement_signature, undecodable_param, Rpc,
    RpcValues,
};
use crate::tokens::{Acc, EnvChange, Outcome, TokenStream};
use crate::types::Tds;
use crate::wire::utf16;

/// RPCs read per RPC request message.
pub const MAX_RPCS_PER_MESSAGE: usize = 256;
/// Bytes of a PRELOGIN message kept (the option table is a few dozen bytes).
pub const MAX_PRELOGIN_LEN: usize = 4096;
/// Packet length accepted when looking for a packet start after a gap (SQL Server negotiates at
/// most 32767).
pub const MAX_RESYNC_PACKET_LEN: usize = 32768;

/// Largest TLS record read whole to look for the TDS 8.0 ALPN (RFC 8446: records carry at most
/// 2^14 bytes).
const MAX_CLIENT_HELLO: usize = 16 * 1024 + 256;

/// Capacity up to which a request's assembly buffer is kept for the session's next message.
const MAX_SPARE_REQUEST_BUF: usize = 64 * 1024;

/// Anomaly kinds (metrics labels).
pub mod anomaly {
    /// A packet type this direction never sends.
    pub const UNKNOWN_PACKET_TYPE: &str = "unknown_packet_type";
    /// A packet header whose length or status cannot be right.
    pub const BAD_HEADER: &str = "bad_packet_header";
    /// A server message that answers no request.
    pub const UNSOLICITED_RESPONSE: &str = "unsolicited_response";
    // A message cut at `Limits::max_message_len` (the rest was counted, not read).
    pub use dbtap_core::anomaly::OVER_LIMIT;
    /// A LOGIN7 that could not be parsed.
    pub const MALFORMED_LOGIN7: &str = "malformed_login7";
    /// A PRELOGIN that could not be parsed.
    pub const MALFORMED_PRELOGIN: &str = "malformed_prelogin";
    /// Pre-TDS7 (TDS 4.2 / Sybase TDS 5.0) traffic: not supported, the session is given up.
    pub const SYBASE_UNSUPPORTED: &str = "tds4_tds5_unsupported";
    /// More MARS logical sessions than `smp::MAX_SESSIONS`: their data is counted, not read.
    pub const SMP_TOO_MANY_SESSIONS: &str = "mars_too_many_sessions";
    /// RPC parameters that could not be decoded.
    pub const UNDECODABLE_PARAMS: &str = "undecodable_rpc_params";
    // Requests waiting overflowed `max_pending_requests`.
    pub use dbtap_core::anomaly::PENDING_OVERFLOW;
    /// A message the client abandoned with the IGNORE status bit (not executed, not recorded).
    pub const IGNORED_MESSAGE: &str = "ignored_message";
    /// A prepared handle evicted from the bounded map.
    pub const HANDLE_EVICTED: &str = "prepared_handle_evicted";
    /// sp_execute of a handle whose sp_prepare was not seen.
    pub const UNKNOWN_HANDLE: &str = "unknown_prepared_handle";
    /// An EnclavePackage whose length runs past its message.
    pub const BAD_ENCLAVE_PACKAGE: &str = "bad_enclave_package";
}

/// Session phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Nothing seen yet: PRELOGIN, LOGIN7, or TLS (TDS 8.0) comes first.
    Start,
    /// PRELOGIN / LOGIN7 / SSPI exchange.
    Login,
    /// Logged in: requests and responses.
    Ready,
    /// Encrypted: nothing more is parsed.
    Encrypted,
}

#[derive(Debug, Default)]
struct Dir {
    resync: Resync,
    ended: bool,
    scanned: u64,
}

/// A client message being assembled from its packets.
#[derive(Debug)]
struct ReqAsm {
    ty: u8,
    ts: Timestamp,
    buf: Vec<u8>,
    wire: u64,
    /// Payload bytes past the limit (counted, not kept).
    dropped: u64,
    /// Bytes lost in gaps.
    lost: u64,
    /// Bulk load: rows counted by a token reader over the client's data.
    bulk: Option<Box<(TokenStream, Acc)>>,
}

/// What kind of answer the front request waits for.
#[derive(Debug)]
enum Pending {
    /// The server's PRELOGIN answer.
    Prelogin,
    /// A login step (LOGIN7, SSPI, FEDAUTH token, encrypted LOGIN7).
    Login,
    /// Operations (one per RPC of a message; one for a batch).
    Ops(Vec<OpReq>),
    /// An Attention.
    Cancel(Box<Request>),
}

impl Pending {
    /// Heap bytes it holds while it waits (its requests' texts, bind values, attributes).
    fn heap(&self) -> usize {
        let reqs = match self {
            Pending::Ops(ops) => ops
                .iter()
                .map(|o| {
                    std::mem::size_of::<OpReq>()
                        + std::mem::size_of::<Request>()
                        + o.req.heap_bytes()
                })
                .sum(),
            Pending::Cancel(r) => std::mem::size_of::<Request>() + r.heap_bytes(),
            Pending::Prelogin | Pending::Login => 0,
        };
        std::mem::size_of::<Pending>() + reqs
    }
}

/// Requests waiting for their answer, oldest first, with the heap bytes they hold kept as a
/// running sum: the flow table asks for it after every packet, and a capture missing the
/// server's side keeps up to `max_pending` of them waiting.
#[derive(Debug, Default)]
struct Waiting {
    queue: VecDeque<(usize, Pending)>,
    heap: usize,
}

impl Waiting {
    fn push_back(&mut self, p: Pending) {
        let charge = p.heap();
        self.heap += charge;
        self.queue.push_back((charge, p));
    }

    fn pop_front(&mut self) -> Option<Pending> {
        let (charge, p) = self.queue.pop_front()?;
        self.uncharge(charge);
        Some(p)
    }

    fn front(&self) -> Option<&Pending> {
        self.queue.front().map(|(_, p)| p)
    }

    fn len(&self) -> usize {
        self.queue.len()
    }

    fn retain(&mut self, keep: impl Fn(&Pending) -> bool) {
        let mut freed = 0;
        self.queue.retain(|(charge, p)| {
            let k = keep(p);
            if !k {
                freed += charge;
            }
            k
        });
        self.uncharge(freed);
    }

    /// The sum never goes below zero; a drift in the accounting fails the tests (debug
    /// assertions) instead of reaching the cap.
    fn uncharge(&mut self, charge: usize) {
        debug_assert!(charge <= self.heap, "{charge} > {}", self.heap);
        self.heap = self.heap.saturating_sub(charge);
    }
}

#[derive(Debug)]
struct OpReq {
    /// Boxed from the start: it waits in `pending` and leaves as the event's box, never copied
    /// again on the way.
    req: Box<Request>,
    /// sp_prepare / sp_prepexec / sp_cursorprepare…: the statement text to remember under the
    /// handle the server returns.
    prepare_sql: Option<Arc<str>>,
    /// The parameter names its `@params` declares (for the positional values of a later
    /// sp_execute of the handle).
    prepare_names: Option<Arc<[String]>>,
    /// sp_unprepare: the handle to forget.
    unprepare: Option<i64>,
}

impl OpReq {
    /// A request that touches no prepared handle.
    fn plain(req: Request) -> Self {
        OpReq {
            req: Box::new(req),
            prepare_sql: None,
            prepare_names: None,
            unprepare: None,
        }
    }
}

/// The server message being read.
#[derive(Debug, Default)]
struct RespAsm {
    started: bool,
    ts_start: Timestamp,
    wire: u64,
    lost: u64,
    cut: bool,
    acc: Acc,
    raw: Vec<u8>,
}

/// The login being negotiated.
#[derive(Debug)]
struct LoginState {
    req: Request,
    /// Server bytes so far.
    resp_bytes: u64,
    ts_end: Timestamp,
    /// A login step was queued for the encrypted LOGIN7 already.
    encrypted_queued: bool,
    /// TLS handshake bytes seen in PRELOGIN packets.
    tls: bool,
    client_enc: Option<u8>,
    server_enc: Option<u8>,
}

/// One MARS logical session: its request/response state and, per direction, the bytes of an
/// incomplete TDS packet carried over from earlier SMP DATA packets.
#[derive(Debug, Default)]
struct Mars {
    sid: u16,
    req: Option<ReqAsm>,
    resp: RespAsm,
    tokens: TokenStream,
    pending: Waiting,
    buf: [Vec<u8>; 2],
}

/// MS-SMP (the session multiplexing protocol MARS runs on), 2.2.1: a 16-byte header —
/// SMID 0x53, FLAGS (SYN 0x01, ACK 0x02, FIN 0x04, DATA 0x08), SID (2, LE), LENGTH (4, LE,
/// header included), SEQNUM (4, LE), WNDW (4, LE) — then, for DATA, the TDS bytes of that
/// logical session.
pub mod smp {
    /// SMID.
    pub const SMID: u8 = 0x53;
    /// Header length.
    pub const HEADER_LEN: usize = 16;
    /// SYN: a new session.
    pub const SYN: u8 = 0x01;
    /// ACK: a window update.
    pub const ACK: u8 = 0x02;
    /// FIN: the session ends.
    pub const FIN: u8 = 0x04;
    /// DATA: payload follows.
    pub const DATA: u8 = 0x08;
    /// Longest SMP packet believed (a TDS packet of at most 32767 bytes plus the header;
    /// generous).
    pub const MAX_LEN: usize = 65536 + HEADER_LEN;
    /// Logical sessions tracked per connection; more are counted, their data not read.
    pub const MAX_SESSIONS: usize = 64;
    /// Bytes of an incomplete TDS packet carried per session and direction.
    pub const MAX_CARRY: usize = 65536;

    /// (flags, sid, length) of a plausible SMP header at the head of `d`.
    pub fn header(d: &[u8]) -> Option<(u8, u16, usize)> {
        let h = d.get(..HEADER_LEN)?;
        if h[0] != SMID {
            return None;
        }
        let flags = h[1];
        let sid = u16::from_le_bytes([h[2], h[3]]);
        let len = u32::from_le_bytes([h[4], h[5], h[6], h[7]]) as usize;
        let ok = matches!(flags, SYN | ACK | FIN | DATA)
            && (HEADER_LEN..=MAX_LEN).contains(&len)
            && (flags == DATA || len == HEADER_LEN);
        ok.then_some((flags, sid, len))
    }
}

/// The TDS parser of one connection.
#[derive(Debug)]
pub struct TdsParser {
    phase: Phase,
    dirs: [Dir; 2],
    tx: u64,
    req: Option<ReqAsm>,
    resp: RespAsm,
    tokens: TokenStream,
    pending: Waiting,
    login: Option<Box<LoginState>>,
    tds: Tds,
    /// The TDS version was seen (LOGIN7 or LOGINACK).
    version_known: bool,
    /// The server's PRELOGIN gave a version before SQL Server 2005 (major ≤ 8): it speaks TDS
    /// 7.1 at most, whatever the client's LOGIN7 asks for, and answers the login in that
    /// layout (4-byte DONE row counts) before its LOGINACK says so; a failed login has no
    /// LOGINACK at all.
    server_pre_72: bool,
    /// DATACLASSIFICATION_VERSION from the login's FEATUREEXTACK.
    dataclass_version: Option<u8>,
    /// COLUMNENCRYPTION acknowledged in the login's FEATUREEXTACK.
    column_encryption: bool,
    /// COLUMNENCRYPTION version 2+ acknowledged: SQL batches and RPCs carry an EnclavePackage.
    enclave_packages: bool,
    enc: &'static Encoding,
    /// sp_prepare handles → statement text and declared parameter names, oldest first
    /// (bounded).
    prepared: crate::prepared::Handles,
    /// Parameter names of the latest `@params` declarations (`sp_executesql` and friends).
    declarations: crate::requests::Declarations,
    server_version: Option<String>,
    /// SPID from the server's packet headers.
    spid: Option<u16>,
    /// MARS: the other logical sessions (MS-SMP), by session id. The one being processed is
    /// swapped into `req` / `resp` / `tokens` / `pending`.
    mars: Vec<Mars>,
    /// The SMP session id whose state is swapped in (records get a `mars_session` attribute).
    cur_sid: Option<u16>,
    max_pending: usize,
    /// The last request's assembly buffer, emptied, for the next one.
    spare_buf: Vec<u8>,
    /// The session's limits, as of the latest call (for work done outside a call's context).
    limits: dbtap_core::Limits,
}

impl TdsParser {
    /// A parser for a new connection.
    pub fn new(opts: SessionOpts) -> Self {
        let mut p = TdsParser {
            phase: Phase::Start,
            dirs: Default::default(),
            tx: 0,
            req: None,
            resp: RespAsm::default(),
            tokens: TokenStream::default(),
            pending: Waiting::default(),
            login: None,
            tds: Tds::V72,
            version_known: false,
            server_pre_72: false,
            dataclass_version: None,
            column_encryption: false,
            enclave_packages: false,
            enc: encoding_rs::WINDOWS_1252,
            prepared: crate::prepared::Handles::default(),
            declarations: crate::requests::Declarations::default(),
            server_version: None,
            spid: None,
            mars: Vec::new(),
            cur_sid: None,
            max_pending: dbtap_core::limits::DEFAULT_MAX_PENDING_REQUESTS,
            spare_buf: Vec::new(),
            limits: dbtap_core::Limits::default(),
        };
        if opts.midstream {
            p.phase = Phase::Ready;
            for d in &mut p.dirs {
                d.resync.start(0);
            }
        }
        p
    }

    /// The session phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Prepared handles remembered.
    pub fn prepared_handles(&self) -> usize {
        self.prepared.len()
    }

    fn emit(&mut self, mut req: Box<Request>, resp: Option<Response>, out: &mut Vec<DbEvent>) {
        if let Some(sid) = self.cur_sid {
            req.attributes
                .push(("mars_session".into(), sid.to_string()));
        }
        self.tx += 1;
        req.tx = self.tx;
        out.push(DbEvent::Request(req));
        if let Some(mut r) = resp {
            r.tx = self.tx;
            out.push(DbEvent::Response(Box::new(r)));
        }
    }

    fn push_pending(&mut self, p: Pending, out: &mut Vec<DbEvent>) {
        if self.pending.len() >= self.max_pending {
            out.push(DbEvent::Anomaly {
                dir: Direction::ToServer,
                kind: anomaly::PENDING_OVERFLOW,
            });
            if let Some(old) = self.pending.pop_front() {
                self.flush_one(old, out);
            }
        }
        self.pending.push_back(p);
    }

    /// Emit a waiting request without an answer.
    fn flush_one(&mut self, p: Pending, out: &mut Vec<DbEvent>) {
        match p {
            Pending::Prelogin | Pending::Login => {}
            Pending::Ops(ops) => {
                for op in ops {
                    self.emit(op.req, None, out);
                }
            }
            Pending::Cancel(req) => self.emit(req, None, out),
        }
    }

    fn flush_all(&mut self, out: &mut Vec<DbEvent>) {
        if let Some(l) = self.login.take() {
            self.emit(Box::new(l.req), None, out);
        }
        while let Some(p) = self.pending.pop_front() {
            self.flush_one(p, out);
        }
        for k in 0..self.mars.len() {
            self.with_session(k, |p| {
                while let Some(q) = p.pending.pop_front() {
                    p.flush_one(q, out);
                }
            });
        }
    }

    /// Run `f` with MARS session `k`'s state swapped in.
    fn with_session(&mut self, k: usize, f: impl FnOnce(&mut Self)) {
        let Some(mut m) = self.mars.get_mut(k).map(std::mem::take) else {
            return;
        };
        self.swap_in(&mut m);
        self.cur_sid = Some(m.sid);
        f(self);
        self.cur_sid = None;
        self.swap_in(&mut m);
        if let Some(slot) = self.mars.get_mut(k) {
            *slot = m;
        }
    }

    fn swap_in(&mut self, m: &mut Mars) {
        std::mem::swap(&mut self.req, &mut m.req);
        std::mem::swap(&mut self.resp, &mut m.resp);
        std::mem::swap(&mut self.tokens, &mut m.tokens);
        std::mem::swap(&mut self.pending, &mut m.pending);
    }

    /// One SMP packet (whole, `len` bytes at the head of `d`).
    fn smp_packet(
        &mut self,
        cx: &Cx<'_>,
        dir: Direction,
        ts: Timestamp,
        (flags, sid): (u8, u16),
        d: &[u8],
        out: &mut Vec<DbEvent>,
    ) -> Option<Progress> {
        let k = match self.mars.iter().position(|m| m.sid == sid) {
            Some(k) => k,
            None if self.mars.len() < smp::MAX_SESSIONS => {
                self.mars.push(Mars {
                    sid,
                    ..Default::default()
                });
                self.mars.len() - 1
            }
            None => {
                out.push(DbEvent::Anomaly {
                    dir,
                    kind: anomaly::SMP_TOO_MANY_SESSIONS,
                });
                return None;
            }
        };
        if flags == smp::FIN {
            self.with_session(k, |p| {
                if let Some(asm) = p.req.take() {
                    p.finish_request(asm, out);
                }
                while let Some(q) = p.pending.pop_front() {
                    p.flush_one(q, out);
                }
            });
            self.mars.remove(k);
            return None;
        }
        if flags != smp::DATA {
            return None;
        }
        let payload = d.get(smp::HEADER_LEN..).unwrap_or_default();
        let i = dir.index();
        let mut buf = std::mem::take(&mut self.mars[k].buf[i]);
        buf.extend_from_slice(payload);
        let mut result = None;
        self.with_session(k, |p| {
            let (used, r) = p.smp_tds_packets(cx, dir, ts, &buf, out);
            buf.drain(..used.min(buf.len()));
            result = r;
        });
        if buf.len() > smp::MAX_CARRY {
            out.push(DbEvent::Anomaly {
                dir,
                kind: anomaly::BAD_HEADER,
            });
            buf.clear();
        }
        if let Some(m) = self.mars.get_mut(k) {
            m.buf[i] = buf;
        }
        result
    }

    /// The whole TDS packets at the head of a MARS session's bytes; returns the bytes used.
    fn smp_tds_packets(
        &mut self,
        cx: &Cx<'_>,
        dir: Direction,
        ts: Timestamp,
        buf: &[u8],
        out: &mut Vec<DbEvent>,
    ) -> (usize, Option<Progress>) {
        let mut pos = 0usize;
        while let Some(h) = buf.get(pos..).and_then(Header::parse) {
            let type_ok = match dir {
                Direction::ToServer => ty::is_client(h.ty),
                Direction::ToClient => h.ty == ty::TABULAR_RESULT,
            };
            if !h.plausible() || !type_ok {
                out.push(DbEvent::Anomaly {
                    dir,
                    kind: anomaly::BAD_HEADER,
                });
                return (buf.len(), None);
            }
            let Some(packet) = buf.get(pos..pos + h.len) else {
                break;
            };
            let payload = packet.get(HEADER_LEN..).unwrap_or_default();
            match dir {
                Direction::ToServer => {
                    if let Some(p) = self.client_packet(cx, ts, h, payload, 0, out) {
                        return (pos + h.len, Some(p));
                    }
                }
                Direction::ToClient => self.server_packet(ts, h, payload, 0, out),
            }
            pos += h.len;
        }
        (pos, None)
    }

    /// The client sent a request while its login's answer was not seen (a capture of one
    /// direction, or a gap). A client sends requests only once logged in, which the server's
    /// LOGINACK makes it (MS-TDS 3.2.5, client states): the login was accepted. It is recorded
    /// without a response (status unknown), and the session carries the user, database and
    /// program the login named.
    fn login_unanswered(&mut self, out: &mut Vec<DbEvent>) {
        self.phase = Phase::Ready;
        let Some(l) = self.login.take() else {
            return;
        };
        // The answers these login steps wait for are not coming before the request's.
        self.pending
            .retain(|p| !matches!(p, Pending::Prelogin | Pending::Login));
        let session = l.req.login.as_ref().map(|x| SessionUpdate {
            user: x.user.clone(),
            database: x.database.clone().filter(|d| !d.is_empty()),
            client_program: x.client_program.clone(),
        });
        self.emit(Box::new(l.req), None, out);
        if let Some(s) = session.filter(|s| s.user.is_some() || s.client_program.is_some()) {
            out.push(DbEvent::Session(s));
        }
    }

    fn login_mut(&mut self, ts: Timestamp) -> &mut LoginState {
        self.login.get_or_insert_with(|| {
            Box::new(LoginState {
                req: Request {
                    ts,
                    op: Some(Op::LOGIN),
                    login: Some(Box::default()),
                    expects_response: true,
                    ..Default::default()
                },
                resp_bytes: 0,
                ts_end: ts,
                encrypted_queued: false,
                tls: false,
                client_enc: None,
                server_enc: None,
            })
        })
    }

    fn full_encryption(&self) -> bool {
        let Some(l) = &self.login else { return false };
        let on = |v: Option<u8>| {
            v.is_some_and(|e| matches!(e & !encrypt::CLIENT_CERT, encrypt::ON | encrypt::REQ))
        };
        on(l.client_enc) || on(l.server_enc)
    }

    // ------------------------------------------------------------------ framing

    fn on_data(
        &mut self,
        cx: &Cx<'_>,
        dir: Direction,
        data: &[u8],
        out: &mut Vec<DbEvent>,
    ) -> Progress {
        let i = dir.index();
        let mut pos = 0usize;
        if self.dirs[i].resync.is_active() {
            let step = {
                let d = &mut self.dirs[i];
                d.resync.scan(cx, data, |c| candidate(dir, c))
            };
            match step {
                ResyncStep::Found { skipped } => {
                    let (lost, skipped_total) = self.dirs[i].resync.finish();
                    self.dirs[i].scanned = 0;
                    if lost > 0 || skipped_total > 0 {
                        out.push(DbEvent::Resync {
                            dir,
                            skipped_bytes: skipped_total,
                        });
                    }
                    pos = skipped;
                }
                ResyncStep::Discard(n) => {
                    return self.scanned(cx, i, n);
                }
                ResyncStep::Wait { consumed, need } => {
                    return Progress::NeedMore { consumed, need };
                }
            }
        }
        while let Some(rest) = data.get(pos..).filter(|r| !r.is_empty()) {
            // TLS records where a packet header is expected (MS-TDS 2.2.6.5: after the
            // handshake carried in PRELOGIN packets, TLS records travel on their own).
            if is_tls_record(rest) {
                match self.tls_record(cx, dir, pos, rest, out) {
                    TlsStep::Skip { used, skip } => {
                        return Progress::Skip {
                            consumed: pos + used,
                            skip,
                        }
                    }
                    TlsStep::Need(n) => {
                        return Progress::NeedMore {
                            consumed: pos,
                            need: n,
                        }
                    }
                    TlsStep::Upgrade => {
                        return Progress::Upgraded {
                            consumed: pos,
                            to: Upgrade::Tls,
                        }
                    }
                }
            }
            if rest.first() == Some(&smp::SMID) && self.phase != Phase::Start {
                // MARS: an SMP packet (MS-SMP 2.2.1); its DATA goes to its logical session.
                if rest.len() < smp::HEADER_LEN {
                    return Progress::NeedMore {
                        consumed: pos,
                        need: smp::HEADER_LEN,
                    };
                }
                let Some((flags, sid, len)) = smp::header(rest) else {
                    out.push(DbEvent::Anomaly {
                        dir,
                        kind: anomaly::BAD_HEADER,
                    });
                    self.desync(dir, 0, out);
                    return Progress::Consumed(pos.max(1));
                };
                if rest.len() < len {
                    return Progress::NeedMore {
                        consumed: pos,
                        need: len,
                    };
                }
                let ts = cx.ts_at(pos);
                let packet = rest.get(..len).unwrap_or_default();
                let r = self.smp_packet(cx, dir, ts, (flags, sid), packet, out);
                pos += len;
                if let Some(p) = r {
                    return match p {
                        Progress::Upgraded { to, .. } => Progress::Upgraded { consumed: pos, to },
                        other => other,
                    };
                }
                continue;
            }
            let Some(h) = Header::parse(rest) else {
                return Progress::NeedMore {
                    consumed: pos,
                    need: HEADER_LEN,
                };
            };
            let type_ok = match dir {
                Direction::ToServer => ty::is_client(h.ty),
                Direction::ToClient => matches!(h.ty, ty::TABULAR_RESULT | ty::PRELOGIN | ty::SSPI),
            };
            if !h.plausible() || !type_ok {
                out.push(DbEvent::Anomaly {
                    dir,
                    kind: if type_ok {
                        anomaly::BAD_HEADER
                    } else {
                        anomaly::UNKNOWN_PACKET_TYPE
                    },
                });
                if self.phase == Phase::Start {
                    return Progress::Abandon(Abandon::NotThisProtocol);
                }
                self.desync(dir, 0, out);
                return Progress::Consumed(pos.max(1));
            }
            if rest.len() < h.len {
                return Progress::NeedMore {
                    consumed: pos,
                    need: h.len,
                };
            }
            let payload = rest.get(HEADER_LEN..h.len).unwrap_or_default();
            let ts = cx.ts_at(pos);
            let r = match dir {
                Direction::ToServer => self.client_packet(cx, ts, h, payload, 0, out),
                Direction::ToClient => {
                    self.server_packet(ts, h, payload, 0, out);
                    None
                }
            };
            pos += h.len;
            if let Some(p) = r {
                return match p {
                    Progress::Upgraded { to, .. } => Progress::Upgraded { consumed: pos, to },
                    other => other,
                };
            }
        }
        Progress::Consumed(pos)
    }

    fn scanned(&mut self, cx: &Cx<'_>, i: usize, n: usize) -> Progress {
        let d = &mut self.dirs[i];
        d.scanned = d.scanned.saturating_add(n as u64);
        if d.scanned > cx.limits.max_resync_scan {
            return Progress::Abandon(Abandon::Unrecoverable);
        }
        Progress::Consumed(n)
    }

    fn desync(&mut self, dir: Direction, lost: u64, out: &mut Vec<DbEvent>) {
        out.push(DbEvent::Desync {
            dir,
            lost_bytes: lost,
        });
        match dir {
            Direction::ToServer => {
                if let Some(mut asm) = self.req.take() {
                    asm.lost = asm.lost.saturating_add(lost.max(1));
                    self.finish_request(asm, out);
                }
            }
            Direction::ToClient => {
                if self.resp.started {
                    self.resp.lost = self.resp.lost.saturating_add(lost.max(1));
                    self.tokens.lose_sync();
                    let ts = self.resp.acc.cur.ts_end.max(self.resp.ts_start);
                    self.finish_response(ts, out);
                }
            }
        }
        self.dirs[dir.index()].resync.start(lost);
    }

    // ------------------------------------------------------------------ TLS

    fn tls_record(
        &mut self,
        cx: &Cx<'_>,
        dir: Direction,
        pos: usize,
        rest: &[u8],
        out: &mut Vec<DbEvent>,
    ) -> TlsStep {
        let Some(len) = rest
            .get(3..5)
            .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
        else {
            return TlsStep::Need(5);
        };
        let ts = cx.ts_at(pos);
        if self.phase == Phase::Start && dir == Direction::ToServer {
            // TDS 8.0 (MS-TDS 2.2.6.5 / 3.2.5.1): TLS from the first byte, PRELOGIN inside.
            // The whole ClientHello record decides (its ALPN names tds/8.0).
            if rest.len() < 5 + len && len <= MAX_CLIENT_HELLO {
                return TlsStep::Need(5 + len);
            }
            let alpn = crate::tls_alpn_tds8(rest);
            let l = self.login_mut(ts);
            l.req.attributes.push((
                "tds_version".into(),
                if alpn { "8.0" } else { "tls_first" }.into(),
            ));
            return self.upgrade(out);
        }
        let login_only = dir == Direction::ToServer
            && self.phase == Phase::Login
            && self.login.as_ref().is_some_and(|l| l.tls)
            && !self.full_encryption();
        if !login_only {
            return self.upgrade(out);
        }
        // ENCRYPT_OFF: only the LOGIN7 travels in TLS; the session is plaintext afterwards.
        let queue = {
            let l = self.login_mut(ts);
            l.req.login_encrypted = true;
            l.req.bytes += 5 + len as u64;
            let q = !l.encrypted_queued;
            l.encrypted_queued = true;
            q
        };
        if queue {
            self.push_pending(Pending::Login, out);
        }
        TlsStep::Skip {
            used: 5.min(rest.len()),
            skip: len as u64,
        }
    }

    fn upgrade(&mut self, out: &mut Vec<DbEvent>) -> TlsStep {
        // Operations waiting stay pending in the session layer, closed as encrypted.
        if let Some(l) = self.login.take() {
            self.emit(Box::new(l.req), None, out);
        }
        while let Some(p) = self.pending.pop_front() {
            self.flush_one(p, out);
        }
        out.push(DbEvent::Encrypted);
        self.phase = Phase::Encrypted;
        TlsStep::Upgrade
    }

    // ------------------------------------------------------------------ client

    /// One complete client packet. `lost`: bytes of it missing (a gap inside it).
    fn client_packet(
        &mut self,
        cx: &Cx<'_>,
        ts: Timestamp,
        h: Header,
        payload: &[u8],
        lost: u64,
        out: &mut Vec<DbEvent>,
    ) -> Option<Progress> {
        match h.ty {
            ty::PRE_TDS7_LOGIN | ty::TDS5_QUERY => {
                out.push(DbEvent::Anomaly {
                    dir: Direction::ToServer,
                    kind: anomaly::SYBASE_UNSUPPORTED,
                });
                self.flush_all(out);
                return Some(Progress::Abandon(Abandon::NotThisProtocol));
            }
            ty::PRELOGIN if is_tls_record(payload) => {
                // TLS handshake inside PRELOGIN packets: counted with the login.
                let l = self.login_mut(ts);
                l.tls = true;
                l.req.bytes += h.len as u64;
                if self.phase == Phase::Start {
                    self.phase = Phase::Login;
                }
                return None;
            }
            ty::ATTENTION => {
                // MS-TDS 2.2.1.7: a header-only message; the server answers with DONE_ATTN.
                if let Some(asm) = self.req.take() {
                    self.finish_request(asm, out);
                }
                let req = Request {
                    ts,
                    op: Some(Op::new("cancel")),
                    bytes: h.len as u64,
                    expects_response: true,
                    ..Default::default()
                };
                self.push_pending(Pending::Cancel(Box::new(req)), out);
                return None;
            }
            _ => {}
        }
        if self.req.as_ref().is_some_and(|a| a.ty != h.ty) {
            // A new message began before the last one's EOM: close the old one as cut.
            if let Some(mut asm) = self.req.take() {
                asm.lost = asm.lost.max(1);
                self.finish_request(asm, out);
            }
        }
        let max = match h.ty {
            ty::PRELOGIN => MAX_PRELOGIN_LEN,
            ty::LOGIN7 => login7::MAX_LOGIN7_LEN,
            ty::FEDAUTH_TOKEN => 0,
            _ => cx.limits.max_message_len,
        };
        let asm = self.req.get_or_insert_with(|| ReqAsm {
            ty: h.ty,
            ts,
            buf: std::mem::take(&mut self.spare_buf),
            wire: 0,
            dropped: 0,
            lost: 0,
            bulk: (h.ty == ty::BULK_LOAD).then(|| {
                let mut stream = TokenStream::default();
                stream.bulk_load = true;
                Box::new((stream, Acc::default()))
            }),
        });
        asm.wire += h.len as u64;
        asm.lost = asm.lost.saturating_add(lost);
        if let Some(b) = asm.bulk.as_mut() {
            let (stream, acc) = &mut **b;
            stream.tds = self.tds;
            stream.feed(payload, ts, acc);
            if lost > 0 {
                stream.lose_sync();
            }
        } else {
            let room = max.saturating_sub(asm.buf.len());
            let keep = payload.len().min(room);
            asm.buf
                .extend_from_slice(payload.get(..keep).unwrap_or_default());
            asm.dropped += (payload.len() - keep) as u64;
        }
        if h.eom() && h.status & crate::packet::status::IGNORE != 0 {
            // MS-TDS 2.2.3.1.2: IGNORE with EOM: the client abandoned the message it was
            // sending; the server discards it and does not answer.
            if self.req.take().is_some() {
                out.push(DbEvent::Anomaly {
                    dir: Direction::ToServer,
                    kind: anomaly::IGNORED_MESSAGE,
                });
            }
            return None;
        }
        if h.eom() {
            if let Some(asm) = self.req.take() {
                if asm.dropped > 0 && asm.ty != ty::FEDAUTH_TOKEN {
                    out.push(DbEvent::Anomaly {
                        dir: Direction::ToServer,
                        kind: anomaly::OVER_LIMIT,
                    });
                }
                self.finish_request_cx(cx, asm, out);
            }
        }
        None
    }

    fn finish_request(&mut self, asm: ReqAsm, out: &mut Vec<DbEvent>) {
        let limits = self.limits.clone();
        let cx = Cx::at(asm.ts, &limits);
        self.finish_request_cx(&cx, asm, out);
    }

    fn completeness(asm: &ReqAsm) -> Completeness {
        if asm.lost > 0 {
            Completeness::Partial {
                lost_bytes: asm.lost,
            }
        } else if asm.dropped > 0 {
            Completeness::Truncated {
                kept: asm.buf.len() as u64,
                original: asm.buf.len() as u64 + asm.dropped,
            }
        } else {
            Completeness::Complete
        }
    }

    fn finish_request_cx(&mut self, cx: &Cx<'_>, mut asm: ReqAsm, out: &mut Vec<DbEvent>) {
        self.finish_request_in(cx, &mut asm, out);
        // The assembly buffer is kept for the next message (one allocation per session, not
        // one per request), unless a large message grew it.
        let mut buf = asm.buf;
        buf.clear();
        if buf.capacity() <= MAX_SPARE_REQUEST_BUF {
            self.spare_buf = buf;
        }
    }

    fn finish_request_in(&mut self, cx: &Cx<'_>, asm: &mut ReqAsm, out: &mut Vec<DbEvent>) {
        let c = Self::completeness(asm);
        let base = Request {
            ts: asm.ts,
            bytes: asm.wire,
            expects_response: true,
            completeness: c,
            ..Default::default()
        };
        if self.phase == Phase::Login
            && matches!(
                asm.ty,
                ty::SQL_BATCH | ty::RPC | ty::TRANSACTION_MANAGER | ty::BULK_LOAD
            )
        {
            self.login_unanswered(out);
        }
        match asm.ty {
            ty::PRELOGIN => {
                let p = prelogin::parse(&asm.buf);
                if p.is_none() {
                    out.push(DbEvent::Anomaly {
                        dir: Direction::ToServer,
                        kind: anomaly::MALFORMED_PRELOGIN,
                    });
                }
                if self.phase == Phase::Start {
                    self.phase = Phase::Login;
                }
                let l = self.login_mut(asm.ts);
                l.req.bytes += asm.wire;
                if let Some(p) = p {
                    l.client_enc = p.encryption;
                    let attrs = &mut l.req.login.get_or_insert_with(Box::default).attributes;
                    prelogin_attrs(&p, "prelogin_client_", attrs);
                }
                self.push_pending(Pending::Prelogin, out);
            }
            ty::LOGIN7 => {
                if self.phase == Phase::Start {
                    self.phase = Phase::Login;
                }
                let parsed = login7::parse(&asm.buf);
                if parsed.is_none() {
                    out.push(DbEvent::Anomaly {
                        dir: Direction::ToServer,
                        kind: anomaly::MALFORMED_LOGIN7,
                    });
                }
                let max_attr = cx.limits.max_attribute_len;
                let l = self.login_mut(asm.ts);
                l.req.bytes += asm.wire;
                l.req.completeness = l.req.completeness.merge(c);
                if let Some(p) = parsed {
                    self.tds = Tds::from_version(p.tds_version);
                    if self.server_pre_72 {
                        self.tds = self.tds.min(Tds::V71);
                    }
                    self.version_known = true;
                    let l = self.login_mut(asm.ts);
                    fill_login(l.req.login.get_or_insert_with(Box::default), &p, max_attr);
                }
                self.push_pending(Pending::Login, out);
            }
            ty::SSPI => {
                let l = self.login_mut(asm.ts);
                l.req.bytes += asm.wire;
                if let Some(a) = login7::ntlm_authenticate(&asm.buf) {
                    let login = l.req.login.get_or_insert_with(Box::default);
                    login.user = Some(a.account());
                    login.auth_method = Some("ntlm".into());
                    login.credentials_redacted = true;
                    login.attributes.push(("ntlm_domain".into(), a.domain));
                    login.attributes.push(("ntlm_user".into(), a.user));
                    login
                        .attributes
                        .push(("ntlm_workstation".into(), a.workstation));
                }
                self.push_pending(Pending::Login, out);
            }
            ty::FEDAUTH_TOKEN => {
                // The token itself is a secret: counted, never read.
                let l = self.login_mut(asm.ts);
                l.req.bytes += asm.wire;
                self.push_pending(Pending::Login, out);
            }
            ty::SQL_BATCH => {
                let ah = all_headers_len(&asm.buf);
                let mut req = base;
                let body = self.request_body(asm.buf.get(ah..).unwrap_or_default(), &mut req, out);
                let max = cx.limits.max_statement_len.saturating_mul(2);
                let keep = body.len().min(max) & !1;
                req.op = Some(Op::QUERY);
                req.sql = Some(utf16(body.get(..keep).unwrap_or_default()).into());
                if keep < body.len() && c == Completeness::Complete {
                    req.completeness = Completeness::Truncated {
                        kept: keep as u64,
                        original: body.len() as u64,
                    };
                }
                self.push_pending(Pending::Ops(vec![OpReq::plain(req)]), out);
            }
            ty::RPC => {
                let ah = all_headers_len(&asm.buf);
                let mut base = base;
                let body = self.request_body(asm.buf.get(ah..).unwrap_or_default(), &mut base, out);
                let rpcs = parse_rpcs(
                    body,
                    MAX_RPCS_PER_MESSAGE,
                    cx.limits.max_params,
                    cx.limits.max_param_len,
                    self.tds,
                    self.enc,
                    true,
                );
                let mut ops = Vec::with_capacity(rpcs.len());
                if rpcs.iter().any(|r| r.undecodable) {
                    out.push(DbEvent::Anomaly {
                        dir: Direction::ToServer,
                        kind: anomaly::UNDECODABLE_PARAMS,
                    });
                }
                let n = rpcs.len();
                // Each RPC after the first counts its own bytes; the first the rest (packet
                // headers, ALL_HEADERS and itself).
                let later: u64 = rpcs.iter().skip(1).map(|r| r.wire_len as u64).sum();
                for (k, rpc) in rpcs.into_iter().enumerate() {
                    let mut req = base.clone();
                    req.bytes = if k == 0 {
                        base.bytes.saturating_sub(later)
                    } else {
                        rpc.wire_len as u64
                    };
                    ops.push(self.rpc_request(req, rpc, body, cx, out));
                }
                if n == 0 {
                    let mut req = base;
                    req.op = Some(Op::new("rpc"));
                    req.params = Some(vec![undecodable_param()]);
                    ops.push(OpReq::plain(req));
                }
                self.push_pending(Pending::Ops(ops), out);
            }
            ty::TRANSACTION_MANAGER => {
                let ah = all_headers_len(&asm.buf);
                let mut req = base;
                req.op = Some(Op::new("transaction"));
                let t = asm
                    .buf
                    .get(ah..ah + 2)
                    .map(|b| u16::from_le_bytes([b[0], b[1]]));
                // MS-TDS 2.2.6.9 RequestType.
                let name = match t {
                    Some(0) => "get_dtc_address",
                    Some(1) => "propagate",
                    Some(5) => "begin",
                    Some(6) => "promote",
                    Some(7) => "commit",
                    Some(8) => "rollback",
                    Some(9) => "save",
                    _ => "unknown",
                };
                req.attributes.push(("tm_request".into(), name.into()));
                self.push_pending(Pending::Ops(vec![OpReq::plain(req)]), out);
            }
            ty::BULK_LOAD => {
                let mut req = base;
                req.op = Some(Op::new("bulk_load"));
                if let Some(b) = asm.bulk.take() {
                    let (mut stream, mut acc) = *b;
                    stream.end_message(&mut acc);
                    for kind in acc.anomalies.drain(..) {
                        out.push(DbEvent::Anomaly {
                            dir: Direction::ToServer,
                            kind,
                        });
                    }
                    let rows =
                        acc.segments.iter().map(|s| s.row_tokens).sum::<u64>() + acc.cur.row_tokens;
                    req.attributes.push(("rows_sent".into(), rows.to_string()));
                    if acc.lost {
                        req.completeness = req.completeness.merge(Completeness::Truncated {
                            kept: asm.wire,
                            original: asm.wire,
                        });
                    }
                }
                self.push_pending(Pending::Ops(vec![OpReq::plain(req)]), out);
            }
            _ => {}
        }
    }

    /// The record of one RPC: procedure, statement and parameters by the well-known
    /// procedures' signatures (sp_executesql, sp_prepare, sp_execute, sp_prepexec, sp_cursor*).
    /// What follows ALL_HEADERS in a SQL batch or RPC message. With enclave computations
    /// negotiated the EnclavePackage comes first: stepped over, its size noted in the record
    /// (`enclave_package_bytes`); its content (encrypted keys) is never shown.
    fn request_body<'b>(&self, d: &'b [u8], req: &mut Request, out: &mut Vec<DbEvent>) -> &'b [u8] {
        if !self.enclave_packages {
            return d;
        }
        match skip_enclave_package(d) {
            Some((0, rest)) => rest,
            Some((n, rest)) => {
                req.attributes
                    .push(("enclave_package_bytes".into(), n.to_string()));
                rest
            }
            None => {
                // The package runs past the message (cut at `max_message_len`, or not a
                // package at all): nothing after it can be placed.
                out.push(DbEvent::Anomaly {
                    dir: Direction::ToServer,
                    kind: anomaly::BAD_ENCLAVE_PACKAGE,
                });
                req.completeness = req
                    .completeness
                    .merge(Completeness::Partial { lost_bytes: 0 });
                &[]
            }
        }
    }

    /// `body` is the message [`parse_rpcs`] read `rpc` from. `rpc.params` holds the parameters
    /// before the first bind value (statement, declarations, handle); the bind values are in
    /// `rpc.deferred`, stepped over, and are decoded when the record is written.
    fn rpc_request(
        &mut self,
        mut req: Request,
        rpc: Rpc,
        body: &[u8],
        cx: &Cx<'_>,
        out: &mut Vec<DbEvent>,
    ) -> OpReq {
        req.op = Some(Op::new("rpc"));
        let proc_lower = crate::requests::ascii_lowercase(&rpc.procedure);
        let mut prepare_sql = None;
        let mut unprepare = None;
        // The statement and declaration texts are taken out of their parameters (which are not
        // shown as bind values), not copied.
        let take_text = |p: Option<&mut crate::requests::RpcParam>| -> Option<String> {
            match p.map(|p| &mut p.param.value) {
                Some(ParamValue::Text(t)) => Some(std::mem::take(t)),
                _ => None,
            }
        };
        let int = |p: Option<&crate::requests::RpcParam>| -> Option<i64> {
            match p.map(|p| &p.param.value) {
                Some(ParamValue::Int(i)) => Some(*i),
                _ => None,
            }
        };
        let deferred = rpc.deferred.as_ref();
        let mut ps = rpc.params;
        // Names of the bind values as `@params` declares them, in order: a value sent without
        // a ParamName is the declared parameter at its position.
        // (`None` rather than an empty list: an empty `Arc` still allocates its counts.)
        let mut declared: Option<Arc<[String]>> = None;
        let mut prepare_names = None;
        let mut direct_call = false;
        if let Some((stmt, decl, _)) = statement_signature(&proc_lower) {
            let prepares = matches!(
                &*proc_lower,
                "sp_prepare" | "sp_prepexec" | "sp_cursorprepare" | "sp_cursorprepexec"
            );
            req.sql = take_text(ps.get_mut(stmt)).map(Into::into);
            if let Some(d) = decl.and_then(|d| take_text(ps.get_mut(d))) {
                // The names are read from the declaration only when something will use them: a
                // value sent without its name here, or a later sp_execute of this handle.
                // Clients that name every value (ODBC, JDBC, ADO.NET do) never need them.
                if prepares || deferred.is_some_and(|d| d.unnamed) {
                    declared = Some(self.declarations.names(&d, cx.limits.max_params));
                }
                if !d.is_empty() {
                    // Part of the statement (ORMs declare hundreds of parameters): kept, and cut,
                    // as statement text is.
                    let mut d = d;
                    let original = d.len() as u64;
                    if dbtap_core::text::truncate_utf8(&mut d, cx.limits.max_statement_len) {
                        req.completeness = req.completeness.merge(Completeness::Truncated {
                            kept: d.len() as u64,
                            original,
                        });
                    }
                    req.attributes.push(("param_declarations".into(), d));
                }
            }
            if prepares {
                prepare_sql = req.sql.clone();
                prepare_names = declared.clone();
            }
        } else if matches!(&*proc_lower, "sp_execute" | "sp_cursorexecute") {
            let handle = int(ps.first());
            req.stmt_id = handle.map(|h| h as u64);
            match handle.and_then(|h| self.prepared.get(h)) {
                Some(p) => {
                    req.sql = Some(p.sql.clone());
                    declared = Some(p.names.clone());
                }
                None => out.push(DbEvent::Anomaly {
                    dir: Direction::ToServer,
                    kind: anomaly::UNKNOWN_HANDLE,
                }),
            }
        } else if matches!(&*proc_lower, "sp_unprepare" | "sp_cursorunprepare") {
            unprepare = int(ps.first());
            req.stmt_id = unprepare.map(|h| h as u64);
        } else {
            // A direct procedure call: its values are checked for passwords when decoded.
            direct_call = true;
        }
        let encrypted = deferred.map_or(0, |d| d.encrypted);
        if encrypted > 0 {
            // Always Encrypted: the values are cipher text; say so on the record too.
            req.attributes
                .push(("encrypted_params".into(), encrypted.to_string()));
        }
        if rpc.undecodable {
            req.completeness = req.completeness.merge(Completeness::Truncated {
                kept: req.bytes,
                original: req.bytes,
            });
        }
        if rpc.params_dropped > 0 {
            req.attributes
                .push(("params_dropped".into(), rpc.params_dropped.to_string()));
        }
        if let Some(sql) = req
            .sql
            .as_ref()
            .filter(|s| s.len() > cx.limits.max_statement_len)
        {
            let mut sql = sql.to_string();
            dbtap_core::text::truncate_utf8(&mut sql, cx.limits.max_statement_len);
            req.completeness = req.completeness.merge(Completeness::Truncated {
                kept: sql.len() as u64,
                original: sql.len() as u64,
            });
            req.sql = Some(sql.into());
        }
        match deferred {
            // The values are decoded when the record is written, on the record stage's thread.
            Some(over) => {
                let mut values =
                    RpcValues::new(body, over, cx.limits.max_param_len, self.tds, self.enc);
                values.declared = declared;
                values.undecodable = rpc.undecodable;
                values.direct_call = direct_call.then(|| proc_lower.into_owned());
                req.deferred_params = Some(DeferredParams::new(values));
            }
            // No value could be read: the placeholder says that some were sent.
            None if rpc.undecodable => req.params = Some(vec![undecodable_param()]),
            None => {}
        }
        req.procedure = Some(rpc.procedure);
        OpReq {
            req: Box::new(req),
            prepare_sql,
            prepare_names,
            unprepare,
        }
    }

    // ------------------------------------------------------------------ server

    fn server_packet(
        &mut self,
        ts: Timestamp,
        h: Header,
        payload: &[u8],
        lost: u64,
        out: &mut Vec<DbEvent>,
    ) {
        if h.ty == ty::PRELOGIN {
            // The server's half of the TLS handshake inside PRELOGIN packets.
            if let Some(l) = self.login.as_mut() {
                l.resp_bytes += h.len as u64;
                l.ts_end = ts;
            }
            return;
        }
        if !self.resp.started {
            self.resp = RespAsm {
                started: true,
                ts_start: ts,
                ..Default::default()
            };
        }
        self.resp.wire += h.len as u64;
        self.resp.lost = self.resp.lost.saturating_add(lost);
        let prelogin_answer = matches!(self.pending.front(), Some(Pending::Prelogin));
        if h.ty == ty::SSPI {
            // Not in MS-TDS (servers send the challenge as an SSPI token in a tabular result),
            // but some implementations answer LOGIN7 with an SSPI packet: a challenge, counted,
            // never read.
            self.resp.acc.sspi = true;
        } else if prelogin_answer {
            let room = MAX_PRELOGIN_LEN.saturating_sub(self.resp.raw.len());
            self.resp
                .raw
                .extend_from_slice(payload.get(..payload.len().min(room)).unwrap_or_default());
        } else {
            self.tokens.tds = self.tds;
            self.tokens.version_known = self.version_known;
            self.tokens.default_enc = self.enc;
            self.tokens.dataclass_version = self.dataclass_version;
            self.tokens.column_encryption = self.column_encryption;
            self.tokens.enclave_packages = self.enclave_packages;
            self.tokens.feed(payload, ts, &mut self.resp.acc);
            if let Some(ack) = &self.resp.acc.loginack {
                // The version the server chose, for the rest of this response too (the token
                // stream switched at the LOGINACK already).
                self.tds = Tds::from_version(ack.tds_version);
                self.version_known = true;
            }
            // Learned from the login's FEATUREEXTACK; MARS sessions swap token streams.
            self.dataclass_version = self.tokens.dataclass_version;
            self.column_encryption = self.tokens.column_encryption;
            self.enclave_packages = self.tokens.enclave_packages;
            if !self.version_known {
                self.tds = self.tokens.tds;
            }
            if lost > 0 {
                self.tokens.lose_sync();
                self.resp.acc.lost = true;
            }
        }
        self.resp.acc.cur.ts_end = self.resp.acc.cur.ts_end.max(ts);
        if h.eom() {
            self.spid = Some(h.spid);
            self.finish_response(ts, out);
        }
    }

    fn finish_response(&mut self, ts: Timestamp, out: &mut Vec<DbEvent>) {
        let mut resp = std::mem::take(&mut self.resp);
        if self.tokens.end_message(&mut resp.acc) {
            resp.cut = true;
        }
        for kind in resp.acc.anomalies.drain(..) {
            out.push(DbEvent::Anomaly {
                dir: Direction::ToClient,
                kind,
            });
        }
        let mut env_attrs: Vec<(Cow<'static, str>, String)> = Vec::new();
        let mut new_db = None;
        for e in resp.acc.env.drain(..) {
            match e {
                EnvChange::Database(db) => new_db = Some(db),
                EnvChange::Collation(c) => self.enc = c.encoding(),
                EnvChange::BeginTran => env_attrs.push(("transaction".into(), "begin".into())),
                EnvChange::CommitTran => env_attrs.push(("transaction".into(), "commit".into())),
                EnvChange::RollbackTran => {
                    env_attrs.push(("transaction".into(), "rollback".into()))
                }
                EnvChange::Routing { server, port } => {
                    env_attrs.push(("routing".into(), format!("{server}:{port}")))
                }
                EnvChange::PacketSize(n) => env_attrs.push(("packet_size".into(), n.to_string())),
                EnvChange::Language(mut l) => {
                    dbtap_core::text::truncate_utf8(&mut l, self.limits.max_attribute_len);
                    env_attrs.push(("language".into(), l))
                }
                EnvChange::TranEnded | EnvChange::ResetAck | EnvChange::Other(_) => {}
            }
        }
        let completeness = if resp.lost > 0 {
            Completeness::Partial {
                lost_bytes: resp.lost,
            }
        } else if resp.acc.lost || resp.cut {
            Completeness::Truncated {
                kept: resp.wire,
                original: resp.wire,
            }
        } else {
            Completeness::Complete
        };
        let attn_ack = resp.acc.attn_ack;
        let Some(front) = self.pending.pop_front() else {
            out.push(DbEvent::Anomaly {
                dir: Direction::ToClient,
                kind: anomaly::UNSOLICITED_RESPONSE,
            });
            if let Some(db) = new_db {
                out.push(DbEvent::Session(SessionUpdate {
                    database: Some(db),
                    ..Default::default()
                }));
            }
            return;
        };
        match front {
            Pending::Prelogin => {
                if let Some(p) = prelogin::parse(&resp.raw) {
                    // SQL Server 2000 is version 8 (MS-TDS 2.2.6.5 VERSION: UL_VERSION is the
                    // server's major.minor.build); TDS 7.2 came with SQL Server 2005 (9).
                    if let Some((major, ..)) = p.version {
                        self.server_pre_72 = major <= 8;
                        if self.server_pre_72 {
                            self.tds = self.tds.min(Tds::V71);
                        }
                    }
                    let l = self.login_mut(resp.ts_start);
                    l.server_enc = p.encryption;
                    l.resp_bytes += resp.wire;
                    l.ts_end = ts;
                    let attrs = &mut l.req.login.get_or_insert_with(Box::default).attributes;
                    prelogin_attrs(&p, "prelogin_server_", attrs);
                } else {
                    out.push(DbEvent::Anomaly {
                        dir: Direction::ToClient,
                        kind: anomaly::MALFORMED_PRELOGIN,
                    });
                    if let Some(l) = self.login.as_mut() {
                        l.resp_bytes += resp.wire;
                    }
                }
            }
            Pending::Login => self.login_answer(resp, completeness, new_db, env_attrs, ts, out),
            Pending::Ops(ops) => {
                if let Some(db) = new_db {
                    out.push(DbEvent::Session(SessionUpdate {
                        database: Some(db),
                        ..Default::default()
                    }));
                }
                self.ops_answer(ops, &mut resp, completeness, env_attrs, ts, out);
            }
            Pending::Cancel(req) => {
                let r = Response {
                    ts_end: ts,
                    status: Status::Ok,
                    bytes: resp.wire,
                    completeness,
                    ..Default::default()
                };
                self.emit(req, Some(r), out);
                return;
            }
        }
        // The same message acknowledged a waiting Attention (DONE_ATTN).
        if attn_ack && matches!(self.pending.front(), Some(Pending::Cancel(_))) {
            if let Some(Pending::Cancel(req)) = self.pending.pop_front() {
                let r = Response {
                    ts_end: ts,
                    status: Status::Ok,
                    ..Default::default()
                };
                self.emit(req, Some(r), out);
            }
        }
    }

    fn login_answer(
        &mut self,
        resp: RespAsm,
        completeness: Completeness,
        new_db: Option<String>,
        env_attrs: Vec<(Cow<'static, str>, String)>,
        ts: Timestamp,
        out: &mut Vec<DbEvent>,
    ) {
        let acc = &resp.acc;
        let max_attr = self.limits.max_attribute_len;
        let error = acc
            .segments
            .iter()
            .chain(std::iter::once(&acc.cur))
            .find_map(|o| o.error.clone());
        let done_error = acc
            .segments
            .iter()
            .chain(std::iter::once(&acc.cur))
            .any(|o| o.done_error);
        let l = self.login_mut(resp.ts_start);
        l.resp_bytes += resp.wire;
        l.ts_end = ts;
        if acc.loginack.is_none()
            && error.is_none()
            && !done_error
            && (acc.sspi || acc.fedauth_info)
        {
            // An authentication challenge: the client answers with SSPI / FEDAUTH, the login
            // goes on.
            return;
        }
        if self.pending.front().is_some() && acc.loginack.is_none() && error.is_none() {
            return;
        }
        let Some(mut l) = self.login.take() else {
            return;
        };
        // Pending login steps queued for the same login are answered by this message.
        while matches!(self.pending.front(), Some(Pending::Login)) {
            self.pending.pop_front();
        }
        let mut status = Status::Ok;
        if let Some(ack) = &acc.loginack {
            self.tds = Tds::from_version(ack.tds_version);
            self.version_known = true;
            let version = format!(
                "{} {}.{}.{}",
                ack.program, ack.version.0, ack.version.1, ack.version.2
            );
            self.server_version = Some(version.clone());
            if let Some(login) = l.req.login.as_mut() {
                login
                    .attributes
                    .push(("server_tds_version".into(), version_name(ack.tds_version)));
            }
            out.push(DbEvent::ServerInfo {
                version: Some(version),
                connection_id: self.spid.map(u64::from),
            });
            self.phase = Phase::Ready;
        }
        if error.is_some() || (acc.loginack.is_none() && done_error) {
            status = Status::Error;
        }
        if acc.loginack.is_none() && error.is_none() && !done_error {
            status = Status::Unknown;
        }
        l.req.attributes.extend(env_attrs);
        let mut info = Outcome::default();
        for o in acc.segments.iter().chain(std::iter::once(&acc.cur)) {
            info.infos = info.infos.saturating_add(o.infos);
            if info.info.is_none() {
                info.info.clone_from(&o.info);
            }
        }
        info_attrs(&info, max_attr, &mut l.req.attributes);
        let db = new_db.clone();
        let r = Response {
            ts_end: l.ts_end,
            status,
            error: (status == Status::Error).then(|| error_of(error.as_ref())),
            bytes: l.resp_bytes,
            completeness,
            ..Default::default()
        };
        let user = l.req.login.as_ref().and_then(|x| x.user.clone());
        let app = l.req.login.as_ref().and_then(|x| x.client_program.clone());
        if status == Status::Ok {
            if let (Some(login), Some(db)) = (l.req.login.as_mut(), db.clone()) {
                if login.database.as_deref().is_none_or(str::is_empty) {
                    login.database = Some(db);
                }
            }
        }
        self.emit(Box::new(l.req), Some(r), out);
        if status == Status::Ok {
            out.push(DbEvent::Session(SessionUpdate {
                user,
                database: db,
                client_program: app,
            }));
        }
    }

    fn ops_answer(
        &mut self,
        ops: Vec<OpReq>,
        resp: &mut RespAsm,
        completeness: Completeness,
        env_attrs: Vec<(Cow<'static, str>, String)>,
        ts: Timestamp,
        out: &mut Vec<DbEvent>,
    ) {
        let n = ops.len();
        // The outcomes are merged in place and read by reference: an `Outcome` is large, and
        // this runs for every request.
        let mut segments = std::mem::take(&mut resp.acc.segments);
        let mut cur = std::mem::take(&mut resp.acc.cur);
        let batch = n == 1;
        if batch {
            // One request: everything in the message is its answer.
            if let Some((all, later)) = segments.split_first_mut() {
                for s in later {
                    merge_into(all, s);
                }
                // What followed the last DONEPROC (nothing, usually).
                if cur != Outcome::default() {
                    merge_into(all, &mut cur);
                }
            }
        } else if cur != Outcome::default() {
            // One DONEPROC closes each RPC (MS-TDS 2.2.7.7); what follows the last belongs to it.
            let len = segments.len();
            match segments.last_mut() {
                Some(last) if len >= n => merge_into(last, &mut cur),
                _ => segments.push(std::mem::take(&mut cur)),
            }
        }
        // A batch's answer: its first segment (the others merged into it), or what came with no
        // DONEPROC at all.
        let single = (batch && segments.is_empty()).then_some(&cur);
        // Several RPCs: each gets the bytes of its own tokens (up to its DONEPROC), the first
        // also the rest of the message (packet headers, ENVCHANGEs after the last DONEPROC).
        let shared = resp
            .wire
            .saturating_sub(segments.iter().map(|s| s.bytes).sum::<u64>());
        let mut outcomes = single.into_iter().chain(segments.iter());
        for (k, mut op) in ops.into_iter().enumerate() {
            let Some(o) = outcomes.next() else {
                // Not answered: the server stopped before it (e.g. the message was cut).
                self.emit(op.req, None, out);
                continue;
            };
            if k == 0 {
                op.req.attributes.extend(env_attrs.iter().cloned());
                if resp.acc.attn_ack {
                    op.req.attributes.push(("cancelled".into(), "true".into()));
                }
            }
            if let Some(rs) = o.return_status {
                op.req
                    .attributes
                    .push(("return_status".into(), int_text(rs)));
            }
            if let Some(s) = &o.sensitivity {
                // DATACLASSIFICATION: what the server says the result's columns hold.
                op.req.attributes.push(("sensitivity".into(), s.clone()));
            }
            if o.encrypted_columns > 0 {
                // Always Encrypted result columns: their values travel as cipher text.
                op.req
                    .attributes
                    .push(("encrypted_columns".into(), o.encrypted_columns.to_string()));
            }
            let failed = o.error.is_some() || o.done_error;
            let handle = o.return_values.iter().find_map(|(_, _, v)| match v {
                ParamValue::Int(i) => Some(*i),
                _ => None,
            });
            if let (Some(sql), Some(h), false) = (op.prepare_sql.take(), handle, failed) {
                let names = op.prepare_names.take().unwrap_or_else(|| Arc::new([]));
                self.remember(h, sql, names, out);
                op.req.stmt_id = Some(h as u64);
            }
            if let (Some(h), false) = (op.unprepare, failed) {
                self.prepared.forget(h);
            }
            info_attrs(o, self.limits.max_attribute_len, &mut op.req.attributes);
            if let Some(e) = &o.error {
                op.req
                    .attributes
                    .push(("error_state".into(), e.state.to_string()));
                op.req
                    .attributes
                    .push(("error_class".into(), e.class.to_string()));
                if !e.procedure.is_empty() {
                    op.req
                        .attributes
                        .push(("error_procedure".into(), e.procedure.clone()));
                }
                op.req
                    .attributes
                    .push(("error_line".into(), e.line.to_string()));
            }
            let r = Response {
                ts_end: if o.ts_end == Timestamp::default() {
                    ts
                } else {
                    o.ts_end
                },
                status: if failed { Status::Error } else { Status::Ok },
                error: o.error.as_ref().map(|m| m.to_error()),
                rows: if o.rows.is_some() {
                    o.rows
                } else {
                    (o.row_tokens > 0).then_some(o.row_tokens)
                },
                stmt_id: op.req.stmt_id,
                bytes: match (batch, k) {
                    (true, _) => resp.wire,
                    (false, 0) => o.bytes.saturating_add(shared),
                    (false, _) => o.bytes,
                },
                completeness: if k + 1 == n || k == 0 {
                    completeness
                } else {
                    Completeness::Complete
                },
                ..Default::default()
            };
            self.emit(op.req, Some(r), out);
        }
    }

    fn remember(
        &mut self,
        handle: i64,
        sql: Arc<str>,
        names: Arc<[String]>,
        out: &mut Vec<DbEvent>,
    ) {
        let max = dbtap_core::limits::DEFAULT_MAX_PREPARED_STATEMENTS;
        if self.prepared.remember(handle, sql, names, max) {
            out.push(DbEvent::Anomaly {
                dir: Direction::ToClient,
                kind: anomaly::HANDLE_EVICTED,
            });
        }
    }

    // ------------------------------------------------------------------ gaps and ends

    fn on_gap(
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
        let head = Header::parse(partial).filter(|h| h.plausible() && !is_tls_record(partial));
        let position = match head {
            Some(h) => Position::InMessage {
                have: partial.len() as u64,
                total: h.len as u64,
            },
            None if partial.is_empty() => Position::Boundary,
            None => Position::Unknown,
        };
        match (judge(position, len), head) {
            (GapVerdict::Absorb { lost, skip }, Some(h)) => {
                // The packet lost bytes, its end is known: what follows starts a packet.
                let payload = partial.get(HEADER_LEN..).unwrap_or_default();
                let ts = cx.ts_at(0);
                match dir {
                    Direction::ToServer => {
                        if let Some(p) = self.client_packet(cx, ts, h, payload, lost, out) {
                            return p;
                        }
                    }
                    Direction::ToClient => self.server_packet(ts, h, payload, lost, out),
                }
                Progress::Skip { consumed: 0, skip }
            }
            (v, _) => {
                let lost = match v {
                    GapVerdict::Absorb { lost, .. } | GapVerdict::Desync { lost } => lost,
                };
                self.desync(dir, lost.saturating_add(partial.len() as u64), out);
                Progress::Consumed(0)
            }
        }
    }

    fn on_end(
        &mut self,
        dir: Direction,
        partial: &[u8],
        ts: Timestamp,
        out: &mut Vec<DbEvent>,
    ) -> Progress {
        let i = dir.index();
        self.dirs[i].ended = true;
        if self.phase == Phase::Encrypted {
            return Progress::Consumed(0);
        }
        match dir {
            Direction::ToServer => {
                if let Some(mut asm) = self.req.take() {
                    asm.dropped += partial.len().max(1) as u64;
                    self.finish_request(asm, out);
                }
            }
            Direction::ToClient => {
                if self.resp.started {
                    self.resp.acc.lost = true;
                    self.finish_response(ts, out);
                }
            }
        }
        if dir == Direction::ToClient || self.dirs[dir.flip().index()].ended {
            self.flush_all(out);
        }
        Progress::Consumed(0)
    }
}

enum TlsStep {
    Skip { used: usize, skip: u64 },
    Need(usize),
    Upgrade,
}

/// A TLS record header: content type 20-23, protocol major version 3.
pub(crate) fn is_tls_record(d: &[u8]) -> bool {
    matches!(d, [0x14..=0x17, 0x03, 0x00..=0x04, ..])
}

/// The record's error: the first ERROR token, or, when only a DONE status said that the
/// request failed (its ERROR token was not seen), code 0 and a message saying so.
fn error_of(m: Option<&crate::tokens::Message>) -> dbtap_core::DbError {
    match m {
        Some(m) => m.to_error(),
        None => dbtap_core::DbError {
            code: dbtap_core::ErrorCode::Num(0),
            sqlstate: None,
            message: "DONE_ERROR without a visible ERROR token".into(),
        },
    }
}

/// `v` in decimal. RETURNSTATUS ends nearly every RPC's answer and is nearly always 0: written
/// without the formatting machinery, which costs more than the record's other attributes.
fn int_text(v: i32) -> String {
    match v {
        0 => "0".to_owned(),
        v => v.to_string(),
    }
}

/// Adds what the segment `s` says to `o`, the outcome of one request whose answer came in
/// several segments (in order): rows summed, the first error kept, the last return status.
/// Adding a default `Outcome` changes nothing, so `o` may start as the first segment itself.
/// What `s` holds is taken, not copied (`s` is left without its error and values).
fn merge_into(o: &mut Outcome, s: &mut Outcome) {
    if let Some(r) = s.rows {
        o.rows = Some(o.rows.unwrap_or(0).saturating_add(r));
    }
    o.row_tokens += s.row_tokens;
    if o.error.is_none() {
        o.error = s.error.take();
    }
    o.done_error |= s.done_error;
    if s.return_status.is_some() {
        o.return_status = s.return_status;
    }
    o.return_values.append(&mut s.return_values);
    if let Some(more) = &s.sensitivity {
        crate::tokens::add_sensitivity(&mut o.sensitivity, more);
    }
    o.encrypted_columns = o.encrypted_columns.saturating_add(s.encrypted_columns);
    o.infos = o.infos.saturating_add(s.infos);
    if o.info.is_none() {
        o.info = s.info.take();
    }
    o.ts_end = o.ts_end.max(s.ts_end);
    o.bytes = o.bytes.saturating_add(s.bytes);
}

/// The `info_messages` (how many) and `info` (the first, `number: text`) attributes of a
/// request whose answer carried INFO tokens.
fn info_attrs(o: &Outcome, max_len: usize, attrs: &mut Vec<(Cow<'static, str>, String)>) {
    if let Some(first) = &o.info {
        attrs.push(("info_messages".into(), o.infos.to_string()));
        let mut text = first.summary();
        dbtap_core::text::truncate_utf8(&mut text, max_len);
        attrs.push(("info".into(), text));
    }
}

fn prelogin_attrs(p: &Prelogin, prefix: &str, attrs: &mut Vec<(String, String)>) {
    // Names and values joined by hand, not with format!: this runs for every login.
    let name = |field: &str| [prefix, field].concat();
    if let Some((a, b, c, d)) = p.version {
        let mut v = String::with_capacity(16);
        for (i, part) in [u64::from(a), u64::from(b), u64::from(c), u64::from(d)]
            .into_iter()
            .enumerate()
        {
            if i > 0 {
                v.push('.');
            }
            dbtap_core::text::push_padded(&mut v, part, 1);
        }
        attrs.push((name("version"), v));
    }
    if let Some(e) = p.encryption {
        attrs.push((name("encryption"), encrypt::name(e).into()));
    }
    if let Some(i) = &p.instance {
        attrs.push((name("instance"), i.clone()));
    }
    if let Some(t) = p.thread_id {
        attrs.push((name("thread_id"), t.to_string()));
    }
    if let Some(m) = p.mars {
        attrs.push((name("mars"), if m { "true" } else { "false" }.into()));
    }
    if p.fedauth_required == Some(true) {
        attrs.push((name("fedauth_required"), "true".into()));
    }
}

fn fill_login(login: &mut Login, p: &login7::Login7, max_attr: usize) {
    let mut put = |k: &str, v: &str| {
        if !v.is_empty() {
            let mut v = v.to_owned();
            dbtap_core::text::truncate_utf8(&mut v, max_attr);
            login.attributes.push((k.to_owned(), v));
        }
    };
    put("host_name", &p.host_name);
    put("server_name", &p.server_name);
    put("client_library", &p.client_library);
    put("language", &p.language);
    put("client_pid", &p.client_pid.to_string());
    put("tds_version", &version_name(p.tds_version));
    put("packet_size", &p.packet_size.to_string());
    if !p.user_name.is_empty() {
        login.user = Some(p.user_name.clone());
    }
    if !p.database.is_empty() {
        login.database = Some(p.database.clone());
    }
    if !p.app_name.is_empty() {
        login.client_program = Some(p.app_name.clone());
    }
    login.auth_method = Some(
        if p.fedauth {
            "fedauth"
        } else if p.integrated_security && p.sspi_ntlm {
            "ntlm"
        } else if p.integrated_security {
            "sspi"
        } else {
            "sql_password"
        }
        .into(),
    );
    if let Some(a) = &p.ntlm {
        login.user = Some(a.account());
    }
    login.credentials_redacted = p.password_sent || p.integrated_security || p.fedauth;
}

/// A plausible packet start after a gap: a header of a type this direction sends, a length
/// within what SQL Server negotiates, the first packet of a message (packet id 0 or 1), and for
/// server packets a known first token.
pub(crate) fn candidate(dir: Direction, d: &[u8]) -> Candidate {
    if d.first() == Some(&smp::SMID) {
        // A MARS SMP DATA packet whose payload starts a plausible TDS packet.
        if d.len() < smp::HEADER_LEN + HEADER_LEN + 1 {
            return Candidate::NeedMore(smp::HEADER_LEN + HEADER_LEN + 1);
        }
        return match smp::header(d) {
            Some((smp::DATA, _, len)) if len > smp::HEADER_LEN + HEADER_LEN => {
                candidate(dir, d.get(smp::HEADER_LEN..).unwrap_or_default())
            }
            _ => Candidate::No,
        };
    }
    let Some(h) = Header::parse(d) else {
        return Candidate::NeedMore(HEADER_LEN);
    };
    let type_ok = match dir {
        Direction::ToServer => matches!(
            h.ty,
            ty::SQL_BATCH | ty::RPC | ty::ATTENTION | ty::TRANSACTION_MANAGER | ty::BULK_LOAD
        ),
        Direction::ToClient => h.ty == ty::TABULAR_RESULT,
    };
    if !type_ok || !h.plausible() || h.len > MAX_RESYNC_PACKET_LEN || h.packet_id > 1 {
        return Candidate::No;
    }
    if h.ty == ty::ATTENTION {
        return if h.len == HEADER_LEN && h.eom() {
            Candidate::Yes
        } else {
            Candidate::No
        };
    }
    let Some(&first) = d.get(HEADER_LEN) else {
        return if h.len == HEADER_LEN {
            Candidate::No
        } else {
            Candidate::NeedMore(HEADER_LEN + 1)
        };
    };
    match dir {
        Direction::ToClient => {
            if crate::tokens::tok::is_known(first) {
                Candidate::Yes
            } else {
                Candidate::No
            }
        }
        Direction::ToServer => Candidate::Yes,
    }
}

impl StreamParser for TdsParser {
    fn handle(
        &mut self,
        cx: &Cx<'_>,
        dir: Direction,
        input: Input<'_>,
        out: &mut Vec<DbEvent>,
    ) -> Progress {
        self.max_pending = cx.limits.max_pending_requests.max(1);
        if self.limits != *cx.limits {
            self.limits = cx.limits.clone();
        }
        if self.phase == Phase::Encrypted {
            return match input {
                Input::Data(d) => Progress::Consumed(d.len()),
                _ => Progress::Consumed(0),
            };
        }
        match input {
            Input::Data(d) => self.on_data(cx, dir, d, out),
            Input::Gap { len, partial } => self.on_gap(cx, dir, len, partial, out),
            Input::End { partial, .. } => self.on_end(dir, partial, cx.ts, out),
        }
    }

    fn mem_usage(&self) -> usize {
        self.tokens.heap()
            + self.req.as_ref().map_or(0, |r| r.buf.capacity())
            + self.spare_buf.capacity()
            + self.resp.raw.capacity()
            + self.prepared.heap()
            + self.declarations.heap()
            + self.pending.heap
            + self
                .mars
                .iter()
                .map(|m| {
                    m.buf.iter().map(Vec::capacity).sum::<usize>()
                        + m.tokens.heap()
                        + m.req.as_ref().map_or(0, |r| r.buf.capacity())
                        + m.pending.heap
                })
                .sum::<usize>()
    }
}
