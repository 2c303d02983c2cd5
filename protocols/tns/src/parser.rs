//! The `StreamParser`: TNS packet loop per direction, TTC calls assembled across DATA packets,
//! request/response pairing by turns, gaps and ends.
//!
//! TNS is half-duplex at the TTC level: the client sends one call (one or more DATA packets,
//! possibly with piggy-backed calls in front), the server answers with one or more DATA packets
//! (MARKER packets may interrupt a call). A call is therefore complete when the server starts
//! answering, and an answer is complete when the client sends its next call. Operations:
//!
//! - CONNECT … ACCEPT … authentication (phase one and two) is one `login`; REFUSE ends it as an
//!   error; REDIRECT ends it with the new address recorded;
//! - OALL8 is a `query` (`execute` when it carries binds); the FETCH calls that follow belong to
//!   it, so its response covers every row fetched and ends with ORA-01403 (not an error);
//! - COMMIT, ROLLBACK are `commit` / `rollback`; LOGOFF is `logout`;
//! - negotiation, version, cursor-close and unknown calls make no record (unknown ones are
//!   counted as anomalies).
//!
//! Buffering: whole TNS packets are asked for (bounded by `Limits::max_message_len`); the TTC
//! bytes of one client call are kept (bounded) until the call is complete; of a server answer
//! only a bounded tail is kept, where the error block is.

use dbtap_core::gap::{judge, Candidate, GapVerdict, Position, Resync, ResyncStep};
use dbtap_core::text::{decode, truncate_utf8};
use dbtap_core::{
    Completeness, Cx, DbError, DbEvent, Direction, ErrorCode, Input, Login, Op, Param, ParamValue,
    Progress, Request, Response, SessionOpts, SessionUpdate, Status, StreamParser, Timestamp,
    Upgrade,
};
use encoding_rs::{Encoding, UTF_8};

use crate::frame::{data_flags, ty, Header, HEADER_LEN, VERSION_LARGE_SDU};
use crate::net;
use crate::rows;
use crate::ttc::{self, func, msg, Repr};

/// Bytes of a server answer kept (its tail), where the error block is.
pub const MAX_RESPONSE_TAIL: usize = 16 * 1024;
/// Extra bytes of a client call kept beyond `Limits::max_statement_len` (headers, binds).
pub const CALL_SLACK: usize = 16 * 1024;
/// Cursors remembered per session (cursor id → statement text and bind metadata), so that a
/// re-execution by cursor id gets its statement. The least recently used one is dropped first
/// (counted: [`anomaly::CURSOR_EVICTED`]). python-oracledb caches 20 statements by default
/// (`stmtcachesize`), and the server's open-cursor limit is typically a few hundred
/// (AUTH_MAX_OPEN_CURSORS).
pub const MAX_CURSORS: usize = 256;
/// Bytes of statement text remembered over all cursors of a session (evictions as above).
pub const MAX_CURSOR_TEXT: usize = 256 * 1024;

/// Anomaly kinds (metrics labels).
pub mod anomaly {
    // A header that cannot be a TNS header: framing lost in this direction.
    pub use dbtap_core::anomaly::BAD_FRAME;
    /// A TTC function this parser does not decode.
    pub const UNKNOWN_FUNCTION: &str = "unknown_function";
    /// A TNS packet type this parser does not decode (ACK, NULL, ABORT, ATTENTION, CONTROL).
    pub const UNKNOWN_PACKET: &str = "unknown_packet";
    /// An OALL8 call whose statement text could not be located.
    pub const SQL_NOT_FOUND: &str = "sql_not_found";
    // A call or packet went over a limit and was cut.
    pub use dbtap_core::anomaly::OVER_LIMIT;
    /// A character set id without a decoder (text decoded as UTF-8).
    pub const UNKNOWN_CHARSET: &str = "unknown_charset";
    /// A MARKER packet (break / reset).
    pub const MARKER: &str = "marker";
    /// A remembered cursor was dropped to stay within [`super::MAX_CURSORS`] /
    /// [`super::MAX_CURSOR_TEXT`]: a later re-execution of it is recorded without its text.
    pub const CURSOR_EVICTED: &str = "cursor_evicted";
}

/// A statement the server parsed into a cursor, as the call that carried its text said it.
#[derive(Debug, Clone)]
struct CursorEntry {
    sql: std::sync::Arc<str>,
    /// Length of the text on the wire when it was cut at the statement limit.
    cut_from: Option<u64>,
    /// Bind metadata of the latest call that described the binds (re-executions send values
    /// only); empty when there are no binds or they could not be read.
    metas: Vec<ttc::BindMeta>,
    /// Bind count announced by that call.
    binds: Option<u64>,
    /// Last use (a counter), for least-recently-used eviction.
    used: u64,
}

/// Cursor id → statement, per session, bounded by [`MAX_CURSORS`] and [`MAX_CURSOR_TEXT`].
#[derive(Debug, Default)]
struct Cursors {
    // foldhash rather than the standard SipHash, as in the PostgreSQL statement cache: cursor
    // ids come from the wire, so the hasher stays seeded per process, but it is several times
    // cheaper; every re-execution looks its cursor up.
    map: foldhash::HashMap<u64, CursorEntry>,
    text: usize,
    /// Heap bytes of the entries' bind metadata, kept as entries come and go: the flow table
    /// asks for the session's memory after every packet, and a walk over the cursors each time
    /// cost up to [`MAX_CURSORS`] steps per packet.
    metas: usize,
    clock: u64,
    /// The least recently used cursors, for eviction without a scan per new cursor.
    oldest: dbtap_core::recency::OldestFirst<u64>,
}

fn metas_heap(e: &CursorEntry) -> usize {
    e.metas.capacity() * std::mem::size_of::<ttc::BindMeta>()
}

impl Cursors {
    fn get(&mut self, id: u64) -> Option<CursorEntry> {
        self.clock += 1;
        let clock = self.clock;
        let e = self.map.get_mut(&id)?;
        e.used = clock;
        Some(e.clone())
    }

    /// Remember `e` under `id`; returns how many other cursors were dropped to make room.
    fn insert(&mut self, id: u64, mut e: CursorEntry) -> usize {
        self.remove(id);
        if e.sql.len() > MAX_CURSOR_TEXT {
            return 0;
        }
        let mut evicted = 0;
        while self.map.len() >= MAX_CURSORS || self.text + e.sql.len() > MAX_CURSOR_TEXT {
            let map = &self.map;
            let old = self.oldest.pop_oldest(
                |k| map.get(k).map(|v| v.used),
                || map.iter().map(|(k, v)| (v.used, k)),
            );
            let Some(old) = old else {
                break;
            };
            self.remove(old);
            evicted += 1;
        }
        self.clock += 1;
        e.used = self.clock;
        self.text += e.sql.len();
        self.metas += metas_heap(&e);
        self.map.insert(id, e);
        evicted
    }

    fn remove(&mut self, id: u64) {
        if let Some(e) = self.map.remove(&id) {
            self.text = self.text.saturating_sub(e.sql.len());
            self.metas = self.metas.saturating_sub(metas_heap(&e));
        }
    }

    fn mem_usage(&self) -> usize {
        self.text + self.map.capacity() * (std::mem::size_of::<CursorEntry>() + 8) + self.metas
    }
}

/// Where the session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Before ACCEPT.
    Connect,
    /// TTC in DATA packets.
    Data,
    /// Native network encryption or checksumming is on: DATA is counted, not read.
    Encrypted,
}

/// What a client call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Login,
    Statement,
    Commit,
    Rollback,
    Logoff,
    /// No record: negotiation, version, cursor close, unknown calls.
    Internal,
    /// Server banner call.
    Version,
    /// Protocol negotiation (server answer carries its character set).
    Protocol,
}

/// An operation being built.
#[derive(Debug)]
struct OpState {
    kind: Kind,
    req: Request,
    resp_bytes: u64,
    resp_ts: Timestamp,
    resp_started: bool,
    resp_completeness: Completeness,
    /// Tail of the answer (bounded).
    tail: AnswerTail,
    /// Bytes of the latest answer (server DATA since the client's last call), the end of `tail`.
    answer_len: usize,
    /// Nothing of the latest answer was lost, cut or interleaved with other packets.
    answer_whole: bool,
    /// A final status for this operation, decided without TTC (REFUSE, REDIRECT).
    fixed: Option<Response>,
    /// Login: phase two sent.
    phase_two: bool,
    /// Statement: made by the old parse call (0x03), not executed yet (an execute call 0x04
    /// continues it: `wswiki__TNS_Oracle2.pcap` frames 26-28).
    parse_only: bool,
    /// Statement: what to remember for the cursor its answer names (text and bind metadata).
    learn: Option<CursorEntry>,
    /// Statement: the cursor id the call itself named (executions of a cursor parsed earlier).
    call_cursor: Option<u64>,
    /// Statement: how the query's columns are written in row data, from the describe
    /// information of its first answer; the answers to its fetches have rows but no describe.
    columns: Option<Vec<rows::Form>>,
    /// What walking the latest answer gave ([`answer_status`]), until more of it arrives: the
    /// answer is looked at when the next call starts, to learn a cursor, and when emitted.
    walked: Option<Option<ttc::CallStatus>>,
}

/// Per-direction state.
#[derive(Debug, Default)]
struct Dir {
    resync: Resync,
    seen: bool,
    /// FIN / RST / expiry seen.
    ended: bool,
    /// Bytes of the packet in progress that a gap cut (for `Partial`).
    lost: u64,
}

/// The TNS parser of one connection.
#[derive(Debug)]
pub struct TnsParser {
    phase: Phase,
    /// Headers carry a 4-byte length.
    large: bool,
    large_known: bool,
    repr: Option<Repr>,
    encoding: &'static Encoding,
    charset_known: bool,
    /// TTC field versions announced by the client (data types) and the server (protocol
    /// answer): from [`ttc::FIELD_VERSION_TOKEN`] on, calls carry a token.
    client_fv: Option<u8>,
    server_fv: Option<u8>,
    /// The server's banner was read (a version call): it names the server better than the
    /// login answer's version number.
    banner_seen: bool,
    next_tx: u64,
    /// The operation the server is (or will be) answering.
    cur: Option<OpState>,
    /// The client call being assembled (TTC bytes of its DATA packets).
    call: Vec<u8>,
    call_ts: Timestamp,
    call_bytes: u64,
    call_truncated: bool,
    call_completeness: Completeness,
    /// The client sent DATA since the server last answered.
    call_open: bool,
    /// The server answered since the client's last DATA.
    answered: bool,
    /// Connect descriptor bytes still expected in DATA packets (overflowing CONNECT).
    connect_pending: usize,
    connect_data: Vec<u8>,
    /// REDIRECT data still expected in DATA packets (a bare REDIRECT: newer listeners).
    redirect_pending: usize,
    redirect_data: Vec<u8>,
    /// The connection's login operation (from CONNECT until it is answered).
    login: Option<OpState>,
    /// The login was emitted.
    login_done: bool,
    /// What the CONNECT said (service, program, host, OS user): the base of every login on
    /// this connection.
    connect_login: Option<Login>,
    /// The first client DATA after ACCEPT was an ANO negotiation: read the server's answer.
    ano_pending: bool,
    /// Statements parsed into cursors on this session, for re-executions by cursor id.
    cursors: Cursors,
    dirs: [Dir; 2],
}

impl TnsParser {
    /// A parser for a new connection.
    pub fn new(opts: SessionOpts) -> Self {
        TnsParser {
            phase: if opts.midstream {
                Phase::Data
            } else {
                Phase::Connect
            },
            large: false,
            large_known: !opts.midstream,
            repr: None,
            encoding: UTF_8,
            charset_known: false,
            client_fv: None,
            server_fv: None,
            banner_seen: false,
            next_tx: 1,
            cur: None,
            call: Vec::new(),
            call_ts: Timestamp(0),
            call_bytes: 0,
            call_truncated: false,
            call_completeness: Completeness::Complete,
            call_open: false,
            answered: false,
            connect_pending: 0,
            connect_data: Vec::new(),
            redirect_pending: 0,
            redirect_data: Vec::new(),
            login: None,
            login_done: opts.midstream,
            connect_login: None,
            ano_pending: false,
            cursors: Cursors::default(),
            dirs: Default::default(),
        }
    }

    /// Where the session stands.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The TTC representation learnt from the authentication call.
    pub fn repr(&self) -> Option<Repr> {
        self.repr
    }

    /// Function calls carry a ub8 token after their sequence number: both sides announced a
    /// TTC field version of at least [`ttc::FIELD_VERSION_TOKEN`].
    fn token(&self) -> bool {
        matches!((self.client_fv, self.server_fv), (Some(c), Some(s)) if c.min(s) >= ttc::FIELD_VERSION_TOKEN)
    }

    fn tx(&mut self) -> u64 {
        let t = self.next_tx;
        self.next_tx += 1;
        t
    }

    fn text(&self, b: &[u8]) -> String {
        decode(b, self.encoding)
    }

    fn new_op(&mut self, kind: Kind, ts: Timestamp, op: Option<Op>) -> OpState {
        let tx = if matches!(kind, Kind::Internal | Kind::Version | Kind::Protocol) {
            0
        } else {
            self.tx()
        };
        OpState {
            kind,
            req: Request {
                tx,
                ts,
                op,
                expects_response: true,
                ..Default::default()
            },
            resp_bytes: 0,
            resp_ts: ts,
            resp_started: false,
            resp_completeness: Completeness::Complete,
            tail: AnswerTail::default(),
            answer_len: 0,
            answer_whole: false,
            fixed: None,
            phase_two: false,
            parse_only: false,
            learn: None,
            call_cursor: None,
            columns: None,
            walked: None,
        }
    }

    // ---- packets ----------------------------------------------------------------------------

    fn packet(
        &mut self,
        cx: &Cx<'_>,
        dir: Direction,
        pkt: &[u8],
        full_len: usize,
        ts: Timestamp,
        out: &mut Vec<DbEvent>,
    ) {
        let Some(h) = Header::parse(pkt, self.large) else {
            return;
        };
        let len = full_len as u64;
        match (dir, h.ty) {
            (Direction::ToServer, ty::CONNECT) => self.on_connect(pkt, len, ts),
            (Direction::ToClient, ty::ACCEPT) => {
                if let Some(a) = net::accept(pkt) {
                    self.large = a.version >= VERSION_LARGE_SDU;
                    self.large_known = true;
                }
                self.phase = Phase::Data;
                self.add_login_resp(len, ts);
            }
            (Direction::ToClient, ty::RESEND) => self.add_login_resp(len, ts),
            (Direction::ToClient, ty::REFUSE) => self.on_refuse(pkt, len, ts, out),
            (Direction::ToClient, ty::REDIRECT) => self.on_redirect(pkt, len, ts, out),
            (_, ty::DATA) => self.on_data(cx, dir, pkt, len, ts, out),
            (_, ty::MARKER) => {
                out.push(DbEvent::Anomaly {
                    dir,
                    kind: anomaly::MARKER,
                });
                self.count_other(dir, len, ts);
            }
            _ => {
                out.push(DbEvent::Anomaly {
                    dir,
                    kind: anomaly::UNKNOWN_PACKET,
                });
                self.count_other(dir, len, ts);
            }
        }
    }

    /// Bytes of packets that belong to whatever is in progress.
    fn count_other(&mut self, dir: Direction, len: u64, ts: Timestamp) {
        match dir {
            Direction::ToServer => {
                if self.call_open {
                    self.call_bytes += len;
                } else if let Some(op) = self.cur.as_mut() {
                    op.req.bytes += len;
                } else if let Some(l) = self.login.as_mut() {
                    l.req.bytes += len;
                }
            }
            Direction::ToClient => {
                if let Some(op) = self.cur.as_mut() {
                    op.resp_bytes += len;
                    op.resp_ts = ts;
                    // A MARKER (or other packet) inside an answer: its messages are no longer
                    // one stream that can be walked.
                    op.answer_whole = false;
                } else if let Some(l) = self.login.as_mut() {
                    l.resp_bytes += len;
                    l.resp_ts = ts;
                }
            }
        }
    }

    fn add_login_resp(&mut self, len: u64, ts: Timestamp) {
        if let Some(l) = self.login.as_mut() {
            l.resp_bytes += len;
            l.resp_ts = ts;
            l.resp_started = true;
        }
    }

    fn on_connect(&mut self, pkt: &[u8], len: u64, ts: Timestamp) {
        if self.login.is_none() && !self.login_done {
            let op = self.new_op(Kind::Login, ts, Some(Op::LOGIN));
            self.login = Some(op);
        }
        if let Some(c) = net::connect(pkt) {
            self.connect_data = c.data.clone();
            self.connect_pending = c
                .data_len
                .min(net::MAX_DESCRIPTOR_LEN)
                .saturating_sub(c.data.len());
            self.apply_descriptor();
        }
        if let Some(l) = self.login.as_mut() {
            l.req.bytes += len;
        }
    }

    fn apply_descriptor(&mut self) {
        let d = net::descriptor(&self.connect_data);
        let Some(l) = self.login.as_mut() else {
            return;
        };
        let login = l.req.login.get_or_insert_with(Default::default);
        if d.service.is_some() {
            login.database = d.service;
        }
        if login.client_program.is_none() {
            login.client_program = d.program;
        }
        set_attr(&mut login.attributes, "os_user", d.os_user);
        set_attr(&mut login.attributes, "client_host", d.host);
        self.connect_login = Some((**login).clone());
    }

    fn on_refuse(&mut self, pkt: &[u8], len: u64, ts: Timestamp, out: &mut Vec<DbEvent>) {
        self.add_login_resp(len, ts);
        let Some(r) = net::refuse(pkt) else { return };
        let text = dbtap_core::text::decode_utf8(&r.data);
        let err = net::value(&r.data, "ERR")
            .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u32>().ok())
            .filter(|&n| n != 0);
        let code = match err {
            Some(n) => ErrorCode::Text(format!("ORA-{n:05}")),
            None => ErrorCode::Text("TNS-REFUSE".into()),
        };
        if let Some(mut l) = self.login.take() {
            l.fixed = Some(Response {
                status: Status::Error,
                error: Some(DbError {
                    code,
                    sqlstate: None,
                    message: format!(
                        "connection refused (user reason {}, system reason {}): {text}",
                        r.user_reason, r.system_reason
                    ),
                }),
                ..Default::default()
            });
            self.emit(l, out);
            self.login_done = true;
        }
    }

    fn on_redirect(&mut self, pkt: &[u8], len: u64, ts: Timestamp, out: &mut Vec<DbEvent>) {
        self.add_login_resp(len, ts);
        let Some((data_len, data)) = net::redirect(pkt) else {
            return;
        };
        if data.is_empty() && data_len > 0 && self.login.is_some() {
            // A bare REDIRECT: its data follows in DATA packets (see `crate::redirect`).
            self.redirect_pending = data_len.min(net::MAX_DESCRIPTOR_LEN);
            self.redirect_data.clear();
            return;
        }
        self.end_redirect(&data, out);
    }

    /// The login ends with the address the client is sent to.
    fn end_redirect(&mut self, data: &[u8], out: &mut Vec<DbEvent>) {
        let data = net::redirect_address(data);
        if let Some(mut l) = self.login.take() {
            let host = net::value(data, "HOST").map(dbtap_core::text::decode_utf8);
            let port = net::value(data, "PORT").map(dbtap_core::text::decode_utf8);
            let login = l.req.login.get_or_insert_with(Default::default);
            let to = match (host, port) {
                (Some(h), Some(p)) => Some(format!("{h}:{p}")),
                (Some(h), None) => Some(h),
                _ => Some(dbtap_core::text::decode_utf8(data)),
            };
            set_attr(&mut login.attributes, "redirect_to", to);
            l.fixed = Some(Response {
                status: Status::Unknown,
                ..Default::default()
            });
            l.req.attributes.push(("tns".into(), "redirect".into()));
            self.emit(l, out);
            self.login_done = true;
        }
    }

    fn on_data(
        &mut self,
        cx: &Cx<'_>,
        dir: Direction,
        pkt: &[u8],
        len: u64,
        ts: Timestamp,
        out: &mut Vec<DbEvent>,
    ) {
        let flags = crate::frame::be16(pkt, HEADER_LEN).unwrap_or(0);
        let payload = pkt.get(HEADER_LEN + 2..).unwrap_or_default();
        let _ = cx;
        // Connect data that did not fit in the CONNECT packet.
        if dir == Direction::ToServer && self.connect_pending > 0 && self.phase == Phase::Connect {
            let n = self.connect_pending.min(payload.len());
            self.connect_data
                .extend_from_slice(payload.get(..n).unwrap_or_default());
            self.connect_pending -= n;
            self.apply_descriptor();
            if let Some(l) = self.login.as_mut() {
                l.req.bytes += len;
            }
            return;
        }
        // The data of a bare REDIRECT.
        if dir == Direction::ToClient && self.redirect_pending > 0 && self.phase == Phase::Connect {
            let n = self.redirect_pending.min(payload.len());
            self.redirect_data
                .extend_from_slice(payload.get(..n).unwrap_or_default());
            self.redirect_pending -= n;
            self.add_login_resp(len, ts);
            if self.redirect_pending == 0 {
                let data = std::mem::take(&mut self.redirect_data);
                self.end_redirect(&data, out);
            }
            return;
        }
        if self.phase == Phase::Encrypted {
            self.count_other(dir, len, ts);
            return;
        }
        if payload.get(..4) == Some(&net::ANO_MAGIC[..]) {
            match dir {
                Direction::ToServer => {
                    self.ano_pending = true;
                    self.count_login_or_other(dir, len, ts);
                }
                Direction::ToClient => {
                    self.count_login_or_other(dir, len, ts);
                    if self.ano_pending {
                        self.ano_pending = false;
                        if let Some(c) = net::ano_choice(payload) {
                            let on = c.encryption.is_some_and(|a| a != 0)
                                || c.integrity.is_some_and(|a| a != 0);
                            if on {
                                self.phase = Phase::Encrypted;
                                out.push(DbEvent::Encrypted);
                            }
                        }
                    }
                }
            }
            return;
        }
        match dir {
            Direction::ToServer => {
                if payload.is_empty() && flags & data_flags::EOF != 0 {
                    // The client closes: bytes go to the last operation.
                    self.count_other(dir, len, ts);
                    return;
                }
                if self.answered || !self.call_open {
                    if self.answered {
                        self.keep_columns();
                    }
                    self.answered = false;
                    self.call_open = true;
                    self.call.clear();
                    self.call_ts = ts;
                    self.call_bytes = 0;
                    self.call_truncated = false;
                    self.call_completeness = Completeness::Complete;
                }
                self.call_bytes += len;
                self.call_completeness = self
                    .call_completeness
                    .merge(lost(std::mem::take(&mut self.dirs[0].lost)));
                let cap = cx.limits.max_statement_len.saturating_add(CALL_SLACK);
                let room = cap.saturating_sub(self.call.len());
                if payload.len() > room {
                    self.call_truncated = true;
                }
                self.call
                    .extend_from_slice(payload.get(..room.min(payload.len())).unwrap_or_default());
            }
            Direction::ToClient => {
                if self.call_open {
                    self.close_call(cx, out);
                }
                let new_answer = !self.answered;
                self.answered = true;
                let l = lost(std::mem::take(&mut self.dirs[1].lost));
                // A packet longer than the limit reached us cut to its head.
                let cut = usize::try_from(len).map_or(true, |n| n > pkt.len());
                let target = if self.cur.is_some() {
                    self.cur.as_mut()
                } else {
                    self.login.as_mut()
                };
                if let Some(op) = target {
                    op.resp_started = true;
                    op.resp_bytes += len;
                    op.resp_ts = ts;
                    op.resp_completeness = op.resp_completeness.merge(l);
                    if new_answer {
                        op.answer_len = 0;
                        op.answer_whole = true;
                    }
                    if cut || l != Completeness::Complete {
                        op.answer_whole = false;
                    }
                    op.answer_len = op.answer_len.saturating_add(payload.len());
                    op.walked = None;
                    op.tail.push(payload);
                }
            }
        }
    }

    fn count_login_or_other(&mut self, dir: Direction, len: u64, ts: Timestamp) {
        if let Some(l) = self.login.as_mut() {
            match dir {
                Direction::ToServer => l.req.bytes += len,
                Direction::ToClient => {
                    l.resp_bytes += len;
                    l.resp_ts = ts;
                }
            }
        } else {
            self.count_other(dir, len, ts);
        }
    }

    // ---- calls ------------------------------------------------------------------------------

    /// The client call is complete (the server answers): decide what it is.
    fn close_call(&mut self, cx: &Cx<'_>, out: &mut Vec<DbEvent>) {
        self.call_open = false;
        let call = std::mem::take(&mut self.call);
        let ts = self.call_ts;
        let bytes = self.call_bytes;
        let completeness = self.call_completeness;
        match call.first() {
            Some(&msg::PROTOCOL) => {
                self.finish_cur(out);
                let op = self.new_op(Kind::Protocol, ts, None);
                self.start(op, bytes, completeness);
            }
            Some(&msg::DATA_TYPES) => {
                self.finish_cur(out);
                if let Some(id) = ttc::client_charset(&call) {
                    self.set_charset(id, out);
                }
                self.client_fv = ttc::client_field_version(&call);
                let op = self.new_op(Kind::Internal, ts, None);
                self.start(op, bytes, completeness);
            }
            Some(&msg::FAST_AUTH) => match ttc::fast_auth(&call) {
                // Protocol, data types and AUTH phase one in one call; the answer holds the
                // protocol answer, the data types answer and the phase-one answer.
                Some(fa) => {
                    let dt = call.get(fa.data_types_at..).unwrap_or_default();
                    if let Some(id) = ttc::client_charset(dt) {
                        self.set_charset(id, out);
                    }
                    self.client_fv = ttc::client_field_version(dt);
                    let token = fa.field_version >= ttc::FIELD_VERSION_TOKEN;
                    if self.repr.is_none() {
                        self.repr = ttc::detect_repr(&call, fa.auth_at, token);
                    }
                    self.finish_cur(out);
                    self.auth(
                        cx,
                        &call,
                        fa.auth_at,
                        func::AUTH_PHASE_ONE,
                        token,
                        ts,
                        bytes,
                        completeness,
                    );
                }
                None => {
                    self.unknown_call(ts, bytes, completeness, out);
                }
            },
            Some(&msg::FUNCTION) | Some(&msg::PIGGYBACK) => {
                self.function(cx, &call, ts, bytes, completeness, out)
            }
            _ => {
                self.unknown_call(ts, bytes, completeness, out);
            }
        }
        self.call = call;
        self.call.clear();
    }

    fn set_charset(&mut self, id: u16, out: &mut Vec<DbEvent>) {
        match crate::charset::encoding(id) {
            Some(e) => {
                self.encoding = e;
                self.charset_known = true;
            }
            None => out.push(DbEvent::Anomaly {
                dir: Direction::ToServer,
                kind: anomaly::UNKNOWN_CHARSET,
            }),
        }
    }

    /// A call whose function is not known (or not found): the open operation ends, the
    /// anomaly is counted, and the call's bytes go to an internal operation (no record).
    fn unknown_call(
        &mut self,
        ts: Timestamp,
        bytes: u64,
        completeness: Completeness,
        out: &mut Vec<DbEvent>,
    ) {
        self.finish_cur(out);
        out.push(DbEvent::Anomaly {
            dir: Direction::ToServer,
            kind: anomaly::UNKNOWN_FUNCTION,
        });
        let op = self.new_op(Kind::Internal, ts, None);
        self.start(op, bytes, completeness);
    }

    fn start(&mut self, mut op: OpState, bytes: u64, completeness: Completeness) {
        op.req.bytes += bytes;
        op.req.completeness = op.req.completeness.merge(completeness);
        self.cur = Some(op);
    }

    fn function(
        &mut self,
        cx: &Cx<'_>,
        call: &[u8],
        ts: Timestamp,
        bytes: u64,
        completeness: Completeness,
        out: &mut Vec<DbEvent>,
    ) {
        let reprs: Vec<Repr> = match self.repr {
            Some(r) => vec![r],
            None => ttc::REPRS.to_vec(),
        };
        // The answer to fast authentication (the login's phase one, still open) carried the
        // server's protocol answer: its field version says how the next calls are written.
        if self.server_fv.is_none() {
            let phase_one = self
                .cur
                .as_ref()
                .filter(|o| o.kind == Kind::Login && !o.phase_two);
            if let Some(op) = phase_one {
                self.server_fv = ttc::server_field_version(op.tail.bytes());
            }
        }
        let token = self.token();
        let main = reprs
            .iter()
            .find_map(|&r| ttc::main_call(call, 0, r, token));
        let Some((at, piggy)) = main else {
            self.unknown_call(ts, bytes, completeness, out);
            return;
        };
        self.main_function(cx, call, at, &reprs, token, ts, bytes, completeness, out);
        // Cursors closed by piggy-backs of this call (python-oracledb sends the ids of the
        // statements dropped from its cache: statement_cache.pyx): forget them, after the
        // previous answer (finished above) was learnt from.
        for id in piggy.closed {
            self.cursors.remove(id);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn main_function(
        &mut self,
        cx: &Cx<'_>,
        call: &[u8],
        at: usize,
        reprs: &[Repr],
        token: bool,
        ts: Timestamp,
        bytes: u64,
        completeness: Completeness,
        out: &mut Vec<DbEvent>,
    ) {
        // The current statement's answer is complete (the client calls again): the cursor it
        // names is known before this call, which may re-execute it, is looked at.
        if let Some(mut op) = self.cur.take() {
            if op.kind == Kind::Statement && op.resp_started && op.learn.is_some() {
                let err = ttc::find_error(op.tail.bytes(), self.repr, 0);
                let status = if err.is_none() {
                    answer_status(&mut op, self.repr, self.field_version())
                } else {
                    None
                };
                self.learn_cursor(&mut op, err.as_ref(), status, out);
            }
            self.cur = Some(op);
        }
        let f = call.get(at + 1).copied().unwrap_or(0);
        match f {
            func::AUTH_PHASE_ONE | func::AUTH_PHASE_TWO => {
                if self.repr.is_none() {
                    self.repr = ttc::detect_repr(call, at, token);
                }
                self.finish_cur(out);
                self.auth(cx, call, at, f, token, ts, bytes, completeness);
            }
            func::OALL8 | func::OALL7 | func::PARSE => {
                let mut op = self.new_op(Kind::Statement, ts, Some(Op::QUERY));
                op.parse_only = f == func::PARSE;
                let max = cx.limits.max_statement_len;
                let found = reprs
                    .iter()
                    .find_map(|&r| ttc::oall8(call, at, r, token, max).map(|o| (r, o)));
                let found = found.map(|(r, o)| {
                    if self.repr.is_none() {
                        // Picked up mid-stream: no login to learn the representation from.
                        // The one the statement call reads with is the session's.
                        self.repr = Some(r);
                    }
                    o
                });
                match found {
                    Some(ttc::Oall8::Cursor { cursor, options }) => {
                        // A new execution (EXECUTE bit) of a cursor whose statement is known:
                        // its own record, with the text of the call that parsed it.
                        let executes = options & ttc::exec_option::EXECUTE != 0;
                        let known = if executes && f == func::OALL8 {
                            self.cursors.get(cursor)
                        } else {
                            None
                        };
                        if let Some(entry) = known {
                            self.finish_cur(out);
                            let repr = self.repr.unwrap_or(ttc::REPRS[0]);
                            let fv = self.field_version();
                            let vals = ttc::cursor_bind_values(
                                call,
                                at,
                                repr,
                                token,
                                fv,
                                cx.limits.max_param_len,
                            );
                            self.reexecution(cx, &mut op, cursor, entry, vals);
                            self.start(op, bytes, completeness);
                            return;
                        }
                        match self.cur.as_mut() {
                            // Fetch of the statement just run (no EXECUTE bit), or an execute
                            // of an unknown cursor right after a statement: same operation.
                            Some(c)
                                if c.kind == Kind::Statement
                                    && (!executes || c.call_cursor.is_none()) =>
                            {
                                c.req.bytes += bytes;
                                c.req.completeness = c.req.completeness.merge(completeness);
                                return;
                            }
                            _ => self.unknown_cursor(&mut op, cursor),
                        }
                    }
                    Some(ttc::Oall8::Sql(s)) => {
                        let mut sql = self.text(&s.sql);
                        let cut =
                            truncate_utf8(&mut sql, max) || s.truncated || self.call_truncated;
                        if cut {
                            op.req.completeness =
                                op.req.completeness.merge(Completeness::Truncated {
                                    kept: sql.len() as u64,
                                    original: s.total as u64,
                                });
                        }
                        let mut metas = Vec::new();
                        if let Some(n) = s.binds.filter(|&b| b > 0) {
                            op.req.op = Some(Op::EXECUTE);
                            op.req.attributes.push(("binds".into(), n.to_string()));
                            let repr = self.repr.unwrap_or(ttc::REPRS[0]);
                            let vals =
                                ttc::bind_values(call, s.end, repr, n, cx.limits.max_param_len);
                            if let Some(v) = vals {
                                self.set_params(cx, &mut op, &v);
                                metas = v.metas;
                            }
                        }
                        let sql: std::sync::Arc<str> = sql.into();
                        op.learn = Some(CursorEntry {
                            sql: sql.clone(),
                            cut_from: cut.then_some(s.total as u64),
                            metas,
                            binds: s.binds,
                            used: 0,
                        });
                        op.req.sql = Some(sql);
                    }
                    None => {
                        out.push(DbEvent::Anomaly {
                            dir: Direction::ToServer,
                            kind: anomaly::SQL_NOT_FOUND,
                        });
                        // The call was seen but its text could not be read: say so.
                        op.req.completeness = op
                            .req
                            .completeness
                            .merge(Completeness::Partial { lost_bytes: 0 });
                        op.req
                            .attributes
                            .push(("tns".into(), "statement text not decoded".into()));
                    }
                }
                self.finish_cur(out);
                self.start(op, bytes, completeness);
            }
            func::EXECUTE | func::REEXECUTE_AND_FETCH => {
                let repr = self.repr.unwrap_or(ttc::REPRS[0]);
                let re = ttc::reexecute(call, at, repr, token);
                let parsed_just_before = self
                    .cur
                    .as_ref()
                    .is_some_and(|o| o.kind == Kind::Statement && o.parse_only);
                let known = match re {
                    Some(r) if !parsed_just_before => self.cursors.get(r.cursor).map(|e| (r, e)),
                    _ => None,
                };
                if let Some((r, entry)) = known {
                    // python-oracledb re-executes a cached statement with its cursor id and
                    // the bind values only (messages/execute.pyx `_write_reexecute_message`).
                    self.finish_cur(out);
                    let mut op = self.new_op(Kind::Statement, ts, Some(Op::QUERY));
                    let vals = ttc::reexecute_values(
                        call,
                        r.values_at,
                        repr,
                        &entry.metas,
                        cx.limits.max_param_len,
                    );
                    self.reexecution(cx, &mut op, r.cursor, entry, vals);
                    self.start(op, bytes, completeness);
                    return;
                }
                match (self.cur.as_mut(), re) {
                    // The old OCI execute of the statement just parsed (`wswiki__TNS_Oracle2.pcap`
                    // frames 26-28), or rows of the open statement: the answer continues it.
                    (Some(op), _)
                        if op.kind == Kind::Statement && (op.parse_only || re.is_none()) =>
                    {
                        op.parse_only = false;
                        op.req.bytes += bytes;
                        op.req.completeness = op.req.completeness.merge(completeness);
                    }
                    // A re-execution of a cursor parsed before this parser saw it (picked up
                    // mid-stream, or evicted): recorded without its text.
                    (_, Some(r)) => {
                        self.finish_cur(out);
                        let mut op = self.new_op(Kind::Statement, ts, Some(Op::QUERY));
                        self.unknown_cursor(&mut op, r.cursor);
                        self.start(op, bytes, completeness);
                    }
                    (_, None) => {
                        self.finish_cur(out);
                        let op = self.new_op(Kind::Internal, ts, None);
                        self.start(op, bytes, completeness);
                    }
                }
            }
            func::FETCH => {
                // Rows of the open statement: the answer continues it. The fetch names the
                // statement's cursor, which a query with more rows to come did not say yet.
                let repr = self.repr.unwrap_or(ttc::REPRS[0]);
                match self.cur.as_mut() {
                    Some(op) if op.kind == Kind::Statement => {
                        op.req.bytes += bytes;
                        op.req.completeness = op.req.completeness.merge(completeness);
                        if op.call_cursor.is_none() {
                            op.call_cursor = ttc::fetch_cursor(call, at, repr, token);
                        }
                    }
                    _ => {
                        self.finish_cur(out);
                        let op = self.new_op(Kind::Internal, ts, None);
                        self.start(op, bytes, completeness);
                    }
                }
            }
            func::COMMIT => self.simple(
                Kind::Commit,
                Op::new("commit"),
                ts,
                bytes,
                completeness,
                out,
            ),
            func::ROLLBACK => self.simple(
                Kind::Rollback,
                Op::new("rollback"),
                ts,
                bytes,
                completeness,
                out,
            ),
            func::LOGOFF => self.simple(Kind::Logoff, Op::LOGOUT, ts, bytes, completeness, out),
            func::VERSION => {
                self.finish_cur(out);
                let op = self.new_op(Kind::Version, ts, None);
                self.start(op, bytes, completeness);
            }
            other => {
                self.finish_cur(out);
                if !ttc::is_known_func(other) {
                    out.push(DbEvent::Anomaly {
                        dir: Direction::ToServer,
                        kind: anomaly::UNKNOWN_FUNCTION,
                    });
                }
                let op = self.new_op(Kind::Internal, ts, None);
                self.start(op, bytes, completeness);
            }
        }
    }

    /// Bind values read from a call as the operation's parameters (an array execute: the rows'
    /// values one after the other, `attributes.bulk_rows`; the same attribute as MariaDB's bulk
    /// execute; positions repeat per row and password placeholders are masked in each).
    fn set_params(&self, cx: &Cx<'_>, op: &mut OpState, v: &ttc::BindRows) {
        if v.rows > 1 {
            op.req
                .attributes
                .push(("bulk_rows".into(), v.rows.to_string()));
            op.req.param_row_width = u16::try_from(v.metas.len()).ok();
        }
        op.req.params = Some(
            v.values
                .iter()
                .take(cx.limits.max_params)
                .map(|b| self.param(b))
                .collect(),
        );
    }

    /// An execution of a cursor parsed on an earlier call: the statement text of that call,
    /// the bind values of this one (read with `vals`: this call's own metadata, or the
    /// remembered one).
    fn reexecution(
        &mut self,
        cx: &Cx<'_>,
        op: &mut OpState,
        cursor: u64,
        entry: CursorEntry,
        vals: Option<ttc::BindRows>,
    ) {
        name_cursor(
            &mut op.req,
            cursor,
            "re-execution: statement text from the call that parsed this cursor",
        );
        if let Some(n) = entry.cut_from {
            op.req.completeness = op.req.completeness.merge(Completeness::Truncated {
                kept: entry.sql.len() as u64,
                original: n,
            });
        }
        let mut learn = entry.clone();
        let binds = match &vals {
            Some(v) => Some(v.metas.len() as u64),
            None => entry.binds.filter(|&n| n > 0),
        };
        if let Some(n) = binds.filter(|&n| n > 0) {
            op.req.op = Some(Op::EXECUTE);
            op.req.attributes.push(("binds".into(), n.to_string()));
        }
        if let Some(v) = vals {
            self.set_params(cx, op, &v);
            // The binds may have been described anew (a full execute by cursor id).
            learn.binds = Some(v.metas.len() as u64);
            learn.metas = v.metas;
        }
        op.req.sql = Some(entry.sql);
        op.call_cursor = Some(cursor);
        op.learn = Some(learn);
    }

    /// An execution of a cursor whose statement this parser does not know.
    fn unknown_cursor(&self, op: &mut OpState, cursor: u64) {
        op.call_cursor = Some(cursor);
        name_cursor(
            &mut op.req,
            cursor,
            "execution of a cursor opened earlier: statement text not in this call",
        );
        op.req.completeness = op
            .req
            .completeness
            .merge(Completeness::Partial { lost_bytes: 0 });
    }

    /// A bind value as a typed parameter.
    fn param(&self, b: &ttc::Bind) -> Param {
        let (name, value): (&'static str, ParamValue) = match (&b.value, b.ty) {
            (None, t) => (type_name(t), ParamValue::Null),
            (Some(v), 1 | 9 | 96) => {
                let text = if b.csfrm == 2 {
                    // National character set: AL16UTF16.
                    decode(v, encoding_rs::UTF_16BE)
                } else {
                    let enc = crate::charset::encoding(b.charset).unwrap_or(self.encoding);
                    decode(v, enc)
                };
                (type_name(b.ty), ParamValue::Text(text))
            }
            (Some(v), 2 | 6) => match ttc::number_text(v) {
                Some(t) => ("NUMBER", ParamValue::Text(t)),
                None => ("NUMBER", ParamValue::Undecodable),
            },
            (Some(v), 12 | 180) => match ttc::date_text(v) {
                Some(t) => (type_name(b.ty), ParamValue::Text(t)),
                None => (type_name(b.ty), ParamValue::Undecodable),
            },
            (Some(v), t) => (type_name(t), ParamValue::Bytes(v.clone())),
        };
        Param {
            name: None,
            type_name: if name.is_empty() {
                format!("type_{}", b.ty).into()
            } else {
                name.into()
            },
            value,
            truncated: b.truncated,
        }
    }

    fn simple(
        &mut self,
        kind: Kind,
        op: Op,
        ts: Timestamp,
        bytes: u64,
        completeness: Completeness,
        out: &mut Vec<DbEvent>,
    ) {
        self.finish_cur(out);
        let op = self.new_op(kind, ts, Some(op));
        self.start(op, bytes, completeness);
    }

    #[allow(clippy::too_many_arguments)]
    fn auth(
        &mut self,
        cx: &Cx<'_>,
        call: &[u8],
        at: usize,
        f: u8,
        token: bool,
        ts: Timestamp,
        bytes: u64,
        completeness: Completeness,
    ) {
        let mut l = match self.login.take() {
            Some(l) => l,
            None => {
                // A login without CONNECT in view (mid-stream), or a second logon on the same
                // connection (proxy sessions).
                self.login_done = false;
                let mut op = self.new_op(Kind::Login, ts, Some(Op::LOGIN));
                op.req.login = self.connect_login.clone().map(Box::new);
                op
            }
        };
        // The answer to phase one (AUTH_SESSKEY) is part of the login, not a result.
        l.tail.clear();
        l.req.bytes += bytes;
        l.req.completeness = l.req.completeness.merge(completeness);
        // AUTH_ALTER_SESSION is SQL: kept up to the statement limit, the others up to the
        // attribute limit (cut values are flagged: `truncated_attributes`).
        let max_value = cx.limits.max_attribute_len.max(cx.limits.max_statement_len);
        let parsed = self
            .repr
            .and_then(|r| ttc::auth(call, at, r, token, max_value));
        let mut cut = false;
        let enc = self.encoding;
        let login = l.req.login.get_or_insert_with(Default::default);
        let parsed_mode = parsed.as_ref().map(|a| a.mode);
        match parsed {
            Some(a) => {
                if !a.user.is_empty() {
                    login.user = Some(decode(&a.user, enc));
                }
                for (k, v) in &a.pairs {
                    let mut v = decode(v, enc);
                    if k != "AUTH_ALTER_SESSION" {
                        cut |= truncate_utf8(&mut v, cx.limits.max_attribute_len);
                    }
                    match k.as_str() {
                        "AUTH_PROGRAM_NM" => login.client_program = Some(v),
                        "AUTH_TERMINAL" => set_attr(&mut login.attributes, "terminal", Some(v)),
                        "AUTH_MACHINE" => set_attr(&mut login.attributes, "machine", Some(v)),
                        "AUTH_PID" => set_attr(&mut login.attributes, "client_pid", Some(v)),
                        "AUTH_SID" => set_attr(&mut login.attributes, "os_user", Some(v)),
                        // SQL the server runs as part of the logon (sent by the client).
                        "AUTH_ALTER_SESSION" => {
                            set_attr(&mut login.attributes, "alter_session", Some(v))
                        }
                        _ => {}
                    }
                }
                if a.keys.iter().any(|k| {
                    matches!(
                        k.as_str(),
                        "AUTH_PASSWORD" | "AUTH_SESSKEY" | "AUTH_PBKDF2_SPEEDY_KEY"
                    )
                }) {
                    login.credentials_redacted = true;
                }
            }
            None => {
                l.req.attributes.retain(|(k, _)| k != "tns");
                l.req
                    .attributes
                    .push(("tns".into(), "authentication call not decoded".into()));
                l.req.completeness = l
                    .req
                    .completeness
                    .merge(Completeness::Partial { lost_bytes: 0 });
            }
        }
        if cut {
            l.req.attributes.push((
                "tns".into(),
                "login attribute cut at the attribute limit".into(),
            ));
        }
        if f == func::AUTH_PHASE_TWO {
            l.phase_two = true;
            login.credentials_redacted = true;
        }
        if let Some(a) = &parsed_mode {
            let privilege = if a & ttc::auth_mode::SYSDBA != 0 {
                Some("SYSDBA")
            } else if a & ttc::auth_mode::SYSOPER != 0 {
                Some("SYSOPER")
            } else {
                None
            };
            set_attr(
                &mut login.attributes,
                "privilege",
                privilege.map(str::to_string),
            );
        }
        if l.req.ts > ts || l.req.ts == Timestamp(0) {
            l.req.ts = ts;
        }
        self.cur = Some(l);
    }

    /// A protocol-negotiation answer (alone, or first in the answer to fast authentication):
    /// the server's character set and TTC field version.
    fn protocol_answer(&mut self, tail: &[u8], out: &mut Vec<DbEvent>) {
        if let Some(id) = ttc::server_charset(tail) {
            if !self.charset_known {
                self.set_charset(id, out);
            }
        }
        if let Some(v) = ttc::server_field_version(tail) {
            self.server_fv = Some(v);
        }
    }

    /// The current operation's answer is complete: emit it (or absorb internal calls).
    fn finish_cur(&mut self, out: &mut Vec<DbEvent>) {
        let Some(op) = self.cur.take() else { return };
        match op.kind {
            Kind::Internal => {}
            Kind::Protocol => self.protocol_answer(op.tail.bytes(), out),
            Kind::Version => {
                if let Some(b) = ttc::banner(op.tail.bytes()) {
                    self.banner_seen = true;
                    out.push(DbEvent::ServerInfo {
                        version: Some(self.text(b)),
                        connection_id: None,
                    });
                }
            }
            Kind::Login => {
                // Phase one answered without error: the login goes on with phase two.
                let mut op = op;
                // The answer to fast authentication starts with the protocol answer.
                if !op.phase_two {
                    self.protocol_answer(op.tail.bytes(), out);
                }
                if !op.phase_two {
                    if let (Some(r), Some(l)) = (self.repr, op.req.login.as_mut()) {
                        if let Some(m) = ttc::auth_method(op.tail.bytes(), r) {
                            l.auth_method = Some(m.into());
                        }
                    }
                }
                let err = ttc::find_error(op.tail.bytes(), self.repr, 1024);
                if !op.phase_two && err.is_none() && op.resp_started {
                    self.login = Some(op);
                    return;
                }
                if op.phase_two && err.is_none() {
                    self.session_identity(&mut op, out);
                }
                self.emit(op, out);
            }
            _ => self.emit(op, out),
        }
    }

    /// The session the server opened, from its answer to the second authentication call:
    /// AUTH_SESSION_ID (the SID: the records' `connection_id`, as in V$SESSION) and
    /// AUTH_SERIAL_NUM (its SERIAL#: login attribute `session_serial`; SID and SERIAL# together
    /// name the session, `ALTER SYSTEM KILL SESSION 'sid,serial#'`).
    fn session_identity(&mut self, op: &mut OpState, out: &mut Vec<DbEvent>) {
        let Some(repr) = self.repr else { return };
        if let (Some(serial), Some(l)) = (
            ttc::auth_number(op.tail.bytes(), b"AUTH_SERIAL_NUM", repr),
            op.req.login.as_mut(),
        ) {
            set_attr(
                &mut l.attributes,
                "session_serial",
                Some(serial.to_string()),
            );
        }
        // The database version as the login answer numbers it, unless a banner call (JDBC 8.x
        // makes it before logging in) named the server already; OCI calls for the banner after
        // the login, which then replaces the number. Thin clients make no banner call.
        let fv = self.field_version();
        let version = ttc::auth_number(op.tail.bytes(), b"AUTH_VERSION_NO", repr)
            .filter(|_| !self.banner_seen)
            .and_then(|v| ttc::version_number(v, fv));
        let sid = ttc::auth_number(op.tail.bytes(), b"AUTH_SESSION_ID", repr);
        if version.is_some() || sid.is_some() {
            out.push(DbEvent::ServerInfo {
                version,
                connection_id: sid,
            });
        }
    }

    /// Rows of a statement whose answer ended without error, from the end-of-call block found by
    /// walking the whole answer ([`answer_status`]): rows processed by DML
    /// (`junkie__oracle_delete.pcap` frame 43: 3 rows deleted), rows fetched so far by a query
    /// (`wswiki__11_sqldeveloper11_2016.pcapng` frame 159: SQL Developer stops at 50 rows).
    /// `None` when the answer was not kept whole (longer than the tail, a gap, a cut packet, a
    /// MARKER), when its messages cannot all be walked (an I/O vector, LOB columns, fixed
    /// integers with rows, …), or when the block's command type is neither DML nor SELECT (DDL
    /// and PL/SQL report counts that are not rows).
    fn statement_rows(status: Option<ttc::CallStatus>) -> Option<u64> {
        let s = status?;
        let counts_rows = ttc::command::is_dml(s.command) || s.command == ttc::command::SELECT;
        (s.error == 0 && counts_rows).then_some(s.rows)
    }

    /// The negotiated TTC field version: the lower of the client's and the server's.
    fn field_version(&self) -> Option<u8> {
        self.client_fv.zip(self.server_fv).map(|(c, s)| c.min(s))
    }

    /// A new call starts: the describe information of the answer that just ended is kept with its
    /// query, before the answers to the query's fetches replace it in the tail.
    fn keep_columns(&mut self) {
        let (repr, fv) = (self.repr, self.field_version());
        if let Some(op) = self.cur.as_mut() {
            if op.kind == Kind::Statement && op.columns.is_none() {
                let _ = answer_status(op, repr, fv);
            }
        }
    }

    /// Remember the statement of a call under the cursor id its answer gave: the cursor field
    /// of the end-of-call block (python-oracledb messages/base.pyx `_process_error_info` reads
    /// it as `cursor_id` and keeps it as the statement's cursor when not 0), found before the
    /// call's error message ([`ttc::find_error`]: ORA-01403 closing a query) or by walking a
    /// whole answer ([`ttc::call_status`]: DML). A re-execution keeps the cursor it named.
    fn learn_cursor(
        &mut self,
        op: &mut OpState,
        err: Option<&ttc::OraError>,
        status: Option<ttc::CallStatus>,
        out: &mut Vec<DbEvent>,
    ) {
        let Some(entry) = op.learn.take() else { return };
        let from_answer = match err {
            Some(e) => e.cursor,
            None => status.map(|s| s.cursor),
        };
        let Some(id) = from_answer.filter(|&c| c > 0).or(op.call_cursor) else {
            // Not known yet (a query with more rows to fetch: no end-of-call block so far):
            // kept for a later answer, or for the cursor its fetch calls name.
            op.learn = Some(entry);
            return;
        };
        for _ in 0..self.cursors.insert(id, entry) {
            out.push(DbEvent::Anomaly {
                dir: Direction::ToClient,
                kind: anomaly::CURSOR_EVICTED,
            });
        }
    }

    /// Emit an operation: its request, then its response when one was seen.
    fn emit(&mut self, mut op: OpState, out: &mut Vec<DbEvent>) {
        if op.kind == Kind::Login {
            self.login_done = true;
        }
        let tx = op.req.tx;
        let resp = if let Some(mut r) = op.fixed.take() {
            r.tx = tx;
            r.ts_end = op.resp_ts;
            r.bytes = op.resp_bytes;
            r.completeness = op.resp_completeness;
            Some(r)
        } else if op.resp_started {
            let mut r = Response {
                tx,
                ts_end: op.resp_ts,
                bytes: op.resp_bytes,
                completeness: op.resp_completeness,
                status: Status::Ok,
                ..Default::default()
            };
            if op.kind == Kind::Login && !op.phase_two {
                // The connection ended before the password was sent (a probe, a scan, a
                // session that died): no verdict.
                r.status = Status::Unknown;
            }
            let err = ttc::find_error(op.tail.bytes(), self.repr, 4096);
            let status = if err.is_none() && op.kind == Kind::Statement {
                answer_status(&mut op, self.repr, self.field_version())
            } else {
                None
            };
            r.rows = Self::statement_rows(status);
            if op.kind == Kind::Statement {
                self.learn_cursor(&mut op, err.as_ref(), status, out);
            }
            if let Some(e) = err {
                if op.kind != Kind::Login {
                    r.rows = e.rows;
                }
                // ORA-01403 (no data found) ends a fetch: not a failure.
                if e.code != 1403 || op.kind == Kind::Login {
                    r.status = Status::Error;
                    r.error = Some(DbError {
                        code: ErrorCode::Text(format!("ORA-{:05}", e.code)),
                        sqlstate: None,
                        message: self.text(&e.message),
                    });
                }
            }
            Some(r)
        } else {
            None
        };
        let login_ok =
            op.kind == Kind::Login && resp.as_ref().is_some_and(|r| r.status == Status::Ok);
        let update = if login_ok {
            op.req.login.as_ref().map(|l| SessionUpdate {
                user: l.user.clone(),
                database: l.database.clone(),
                client_program: l.client_program.clone(),
            })
        } else {
            None
        };
        out.push(DbEvent::Request(Box::new(op.req)));
        if let Some(r) = resp {
            out.push(DbEvent::Response(Box::new(r)));
        }
        if let Some(u) = update {
            out.push(DbEvent::Session(u));
        }
    }

    // ---- stream plumbing --------------------------------------------------------------------

    fn data(&mut self, cx: &Cx<'_>, dir: Direction, d: &[u8], out: &mut Vec<DbEvent>) -> Progress {
        let i = dir.index();
        if !self.dirs[i].seen {
            self.dirs[i].seen = true;
            // TCPS: TLS from the first byte.
            if dir == Direction::ToServer && is_tls_client_hello(d) {
                let op = self.new_op(Kind::Login, cx.ts_at(0), Some(Op::LOGIN));
                let mut req = op.req;
                req.attributes.push(("tns".into(), "tcps".into()));
                self.login_done = true;
                out.push(DbEvent::Request(Box::new(req)));
                out.push(DbEvent::Encrypted);
                return Progress::Upgraded {
                    consumed: 0,
                    to: Upgrade::Tls,
                };
            }
        }
        let mut pos = 0usize;
        let cap = cx.limits.max_message_len.max(HEADER_LEN + 2);
        loop {
            let rest = d.get(pos..).unwrap_or_default();
            if self.dirs[i].resync.is_active() {
                let large = self.large;
                let step = self.dirs[i].resync.scan(cx, rest, |c| candidate(c, large));
                match step {
                    ResyncStep::Found { skipped } => {
                        pos += skipped;
                        let (_, skipped_total) = self.dirs[i].resync.finish();
                        out.push(DbEvent::Resync {
                            dir,
                            skipped_bytes: skipped_total,
                        });
                        continue;
                    }
                    ResyncStep::Discard(n) => return Progress::Consumed(pos + n),
                    ResyncStep::Wait { consumed, need } => {
                        return Progress::NeedMore {
                            consumed: pos + consumed,
                            need,
                        }
                    }
                }
            }
            if rest.is_empty() {
                return Progress::Consumed(pos);
            }
            if rest.len() < HEADER_LEN {
                return Progress::NeedMore {
                    consumed: pos,
                    need: HEADER_LEN,
                };
            }
            if !self.large_known {
                // Mid-stream: a 4-byte length shows as two zero bytes then a non-zero checksum.
                self.large = rest.first() == Some(&0)
                    && rest.get(1) == Some(&0)
                    && rest.get(2..4) != Some(&[0, 0]);
                self.large_known = true;
            }
            if !Header::plausible(rest, self.large) {
                out.push(DbEvent::Anomaly {
                    dir,
                    kind: anomaly::BAD_FRAME,
                });
                out.push(DbEvent::Desync { dir, lost_bytes: 0 });
                self.mark_lost(dir, 0);
                self.dirs[i].resync.start(0);
                continue;
            }
            let Some(h) = Header::parse(rest, self.large) else {
                return Progress::Consumed(pos);
            };
            let take = h.len.min(cap);
            if rest.len() < take {
                return Progress::NeedMore {
                    consumed: pos,
                    need: take,
                };
            }
            let pkt = rest.get(..take).unwrap_or_default();
            let ts = cx.ts_at(pos);
            if h.len > take {
                out.push(DbEvent::Anomaly {
                    dir,
                    kind: anomaly::OVER_LIMIT,
                });
                if dir == Direction::ToServer {
                    self.call_truncated = true;
                }
            }
            self.packet(cx, dir, pkt, h.len, ts, out);
            pos += take;
            if h.len > take {
                return Progress::Skip {
                    consumed: pos,
                    skip: (h.len - take) as u64,
                };
            }
        }
    }

    fn mark_lost(&mut self, dir: Direction, n: u64) {
        let c = Completeness::Partial { lost_bytes: n };
        match dir {
            Direction::ToServer => {
                if self.call_open {
                    self.call_completeness = self.call_completeness.merge(c);
                } else {
                    self.dirs[0].lost = self.dirs[0].lost.saturating_add(n.max(1));
                }
            }
            Direction::ToClient => {
                if let Some(op) = self.cur.as_mut() {
                    op.resp_completeness = op.resp_completeness.merge(c);
                    op.answer_whole = false;
                } else if let Some(l) = self.login.as_mut() {
                    l.resp_completeness = l.resp_completeness.merge(c);
                }
            }
        }
    }

    fn gap(
        &mut self,
        dir: Direction,
        len: u64,
        partial: &[u8],
        out: &mut Vec<DbEvent>,
    ) -> Progress {
        let i = dir.index();
        // Already out of sync: the gap and the unparsed bytes before it join the desync (the
        // shared policy of every protocol crate).
        if self.dirs[i].resync.absorb_gap(len, partial) {
            return Progress::Consumed(0);
        }
        let position = match Header::parse(partial, self.large) {
            Some(h) if Header::plausible(partial, self.large) => Position::InMessage {
                have: partial.len() as u64,
                total: h.len as u64,
            },
            _ if partial.is_empty() => Position::Boundary,
            _ => Position::Unknown,
        };
        match judge(position, len) {
            GapVerdict::Absorb { lost, skip } => {
                self.mark_lost(dir, lost);
                Progress::Skip { consumed: 0, skip }
            }
            GapVerdict::Desync { lost } => {
                self.mark_lost(dir, lost);
                out.push(DbEvent::Desync {
                    dir,
                    lost_bytes: lost,
                });
                self.dirs[i].resync.start(lost);
                Progress::Consumed(0)
            }
        }
    }

    fn end(&mut self, dir: Direction, partial: &[u8], out: &mut Vec<DbEvent>) -> Progress {
        if !partial.is_empty() {
            self.mark_lost(dir, 0);
        }
        self.dirs[dir.index()].ended = true;
        // The server may still answer after the client's FIN (half-close): flush when the
        // server's direction ends, or when both have (flushing twice is harmless).
        if dir == Direction::ToClient || self.dirs.iter().all(|d| d.ended) {
            self.flush(out);
        }
        Progress::Consumed(0)
    }

    /// Emit everything still open.
    fn flush(&mut self, out: &mut Vec<DbEvent>) {
        if self.call_open {
            // A call the server never answered.
            self.call_open = false;
            self.finish_cur(out);
            let call = std::mem::take(&mut self.call);
            let (ts, bytes, c) = (self.call_ts, self.call_bytes, self.call_completeness);
            let dummy = Cx::at(ts, &DEFAULT_LIMITS);
            self.function(&dummy, &call, ts, bytes, c, out);
        }
        self.finish_cur(out);
        if let Some(l) = self.login.take() {
            if !self.login_done {
                self.emit(l, out);
            }
        }
    }
}

/// Oracle's name of an external type number ("" when not named here).
fn type_name(t: u8) -> &'static str {
    match t {
        1 => "VARCHAR2",
        2 | 6 => "NUMBER",
        9 => "VARCHAR",
        12 => "DATE",
        23 => "RAW",
        96 => "CHAR",
        102 | 116 => "REF CURSOR",
        112 => "CLOB",
        113 => "BLOB",
        180 => "TIMESTAMP",
        _ => "",
    }
}

static DEFAULT_LIMITS: std::sync::LazyLock<dbtap_core::Limits> =
    std::sync::LazyLock::new(dbtap_core::Limits::default);

fn lost(n: u64) -> Completeness {
    if n == 0 {
        Completeness::Complete
    } else {
        Completeness::Partial { lost_bytes: n }
    }
}

/// An execution by cursor id: the attributes `cursor` (the id) and `tns` (where its text came
/// from, or that it is not known).
fn name_cursor(req: &mut Request, cursor: u64, note: &str) {
    req.attributes.push(("cursor".into(), cursor.to_string()));
    req.attributes.push(("tns".into(), note.into()));
}

/// The end-of-call block of an operation's latest answer, walked from its first byte (see
/// [`ttc::call_status`]); a describe met on the way is kept in `op.columns`.
fn answer_status(
    op: &mut OpState,
    repr: Option<Repr>,
    field_version: Option<u8>,
) -> Option<ttc::CallStatus> {
    let repr = repr?;
    if !op.answer_whole || op.resp_completeness != Completeness::Complete {
        return None;
    }
    if let Some(status) = op.walked {
        return status;
    }
    let start = op.tail.len().checked_sub(op.answer_len)?;
    let answer = op.tail.bytes().get(start..)?;
    let status = ttc::call_status(answer, repr, field_version, &mut op.columns);
    op.walked = Some(status);
    status
}

/// The last [`MAX_RESPONSE_TAIL`] bytes of an answer, in one slice.
///
/// New bytes go behind a moving start; the dropped prefix is given back only when the buffer
/// would pass twice the kept length. Dropping the oldest bytes on every packet moved up to
/// 16 KiB per packet: a long answer in small packets (SDU 512) copied each byte about 30 times.
/// Now a byte is copied about twice, and the buffer stays under 2 × [`MAX_RESPONSE_TAIL`].
#[derive(Debug, Default)]
struct AnswerTail {
    buf: Vec<u8>,
    /// `buf[start..]` is the tail; `buf[..start]` was dropped.
    start: usize,
}

impl AnswerTail {
    /// The kept bytes, oldest first.
    fn bytes(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }

    fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
    }

    fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    fn push(&mut self, payload: &[u8]) {
        if payload.len() >= MAX_RESPONSE_TAIL {
            self.clear();
            self.buf.extend_from_slice(
                payload
                    .get(payload.len() - MAX_RESPONSE_TAIL..)
                    .unwrap_or_default(),
            );
            return;
        }
        if self.buf.len() + payload.len() > 2 * MAX_RESPONSE_TAIL {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(payload);
        self.start += self.len().saturating_sub(MAX_RESPONSE_TAIL);
    }
}

fn set_attr(attrs: &mut Vec<(String, String)>, key: &str, v: Option<String>) {
    let Some(v) = v else { return };
    if let Some(slot) = attrs.iter_mut().find(|(k, _)| k == key) {
        slot.1 = v;
    } else {
        attrs.push((key.to_string(), v));
    }
}

/// A TLS ClientHello record at the head (TCPS).
pub fn is_tls_client_hello(d: &[u8]) -> bool {
    matches!(d, [0x16, 0x03, 0x00..=0x04, _, _, 0x01, ..])
}

/// Resync candidate: a plausible DATA or MARKER header.
pub(crate) fn candidate(d: &[u8], large: bool) -> Candidate {
    if d.len() < HEADER_LEN {
        return Candidate::NeedMore(HEADER_LEN);
    }
    match Header::parse(d, large) {
        Some(h) if Header::plausible(d, large) && matches!(h.ty, ty::DATA | ty::MARKER) => {
            Candidate::Yes
        }
        _ => Candidate::No,
    }
}

impl StreamParser for TnsParser {
    fn handle(
        &mut self,
        cx: &Cx<'_>,
        dir: Direction,
        input: Input<'_>,
        out: &mut Vec<DbEvent>,
    ) -> Progress {
        match input {
            Input::Data(d) => self.data(cx, dir, d, out),
            Input::Gap { len, partial } => self.gap(dir, len, partial, out),
            Input::End { partial, .. } => self.end(dir, partial, out),
        }
    }

    fn mem_usage(&self) -> usize {
        self.call.capacity()
            + self.connect_data.capacity()
            + self.redirect_data.capacity()
            + self.cur.as_ref().map_or(0, |o| o.tail.capacity())
            + self.login.as_ref().map_or(0, |o| o.tail.capacity())
            + self.cursors.mem_usage()
    }
}

#[cfg(test)]
mod cursor_tests {
    use super::*;

    fn entry(sql: &str) -> CursorEntry {
        CursorEntry {
            sql: sql.into(),
            cut_from: None,
            metas: Vec::new(),
            binds: None,
            used: 0,
        }
    }

    #[test]
    fn cursors_are_bounded_and_least_recently_used_go_first() {
        let mut c = Cursors::default();
        for id in 1..=MAX_CURSORS as u64 {
            assert_eq!(c.insert(id, entry("select 1 from dual")), 0);
        }
        // Cursor 1 used again: 2 is now the oldest.
        assert!(c.get(1).is_some());
        assert_eq!(c.insert(10_000, entry("select 2 from dual")), 1);
        assert!(c.get(2).is_none());
        assert!(c.get(1).is_some());
        assert_eq!(c.map.len(), MAX_CURSORS);
        // Text is bounded too.
        let big = "x".repeat(MAX_CURSOR_TEXT / 2);
        assert!(c.insert(20_000, entry(&big)) > 0);
        assert!(c.insert(20_001, entry(&big)) > 0);
        assert!(c.text <= MAX_CURSOR_TEXT);
        assert_eq!(c.insert(20_002, entry(&"y".repeat(MAX_CURSOR_TEXT + 1))), 0);
        assert!(c.get(20_002).is_none());
        c.remove(20_001);
        assert!(c.get(20_001).is_none());
    }

    #[test]
    fn bind_metadata_memory_follows_the_cursors() {
        let mut c = Cursors::default();
        let meta = ttc::BindMeta {
            ty: 1,
            charset: 873,
            csfrm: 1,
        };
        let mut e = entry("select :1, :2 from dual");
        e.metas = vec![meta; 2];
        let per_entry = e.metas.capacity() * std::mem::size_of::<ttc::BindMeta>();
        c.insert(1, e.clone());
        c.insert(2, e.clone());
        assert_eq!(c.metas, 2 * per_entry);
        // Replacing a cursor counts its metadata once; evicting and removing give it back.
        c.insert(2, e.clone());
        assert_eq!(c.metas, 2 * per_entry);
        for id in 3..=MAX_CURSORS as u64 + 1 {
            c.insert(id, entry("select 1 from dual"));
        }
        assert!(c.get(1).is_none());
        assert_eq!(c.metas, per_entry);
        c.remove(2);
        assert_eq!(c.metas, 0);
    }
}

#[cfg(test)]
mod tail_tests {
    use super::*;

    #[test]
    fn the_tail_is_the_last_bytes_of_the_answer_whatever_the_packet_sizes() {
        let mut tail = AnswerTail::default();
        let mut all: Vec<u8> = Vec::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for step in 0..3_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Mostly small packets, now and then one over the whole tail.
            let len = match x % 50 {
                0 => MAX_RESPONSE_TAIL + (x >> 40) as usize % 1000,
                1..=5 => (x >> 20) as usize % MAX_RESPONSE_TAIL,
                _ => (x >> 20) as usize % 600,
            };
            let payload: Vec<u8> = (0..len).map(|i| (i as u64 ^ x) as u8).collect();
            tail.push(&payload);
            all.extend_from_slice(&payload);
            let want = &all[all.len().saturating_sub(MAX_RESPONSE_TAIL)..];
            assert_eq!(tail.bytes(), want, "step {step}");
            assert_eq!(tail.len(), want.len());
            assert!(tail.buf.len() <= 2 * MAX_RESPONSE_TAIL, "step {step}");
        }
        tail.clear();
        assert!(tail.bytes().is_empty());
    }
}
