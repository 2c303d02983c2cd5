//! The `StreamParser`: framing loop per direction, command/response pairing, gaps and ends.
//!
//! MySQL is strictly request → response: a client sends one command (sequence id 0) and waits
//! for the whole response before sending the next. So one request at most is pending, and its
//! `Request` event is emitted together with its `Response` when the response completes; bytes
//! the client sends inside the exchange (auth switch responses, LOCAL INFILE data) count toward
//! the request.
//!
//! Buffering: the stream layer owns the bytes. This parser asks for whole packets only for
//! messages it reads (commands, OK/ERR/EOF, column counts, prepare OK), capped at
//! `Limits::max_message_len`; rows, column definitions and auth data are walked by their headers
//! and skipped. The one private buffer is the decompressed stream of the compressed protocol,
//! bounded by [`MAX_INNER_BUFFER`](crate::parser::max_inner_buffer).

use dbtap_core::event::SessionUpdate;
use dbtap_core::gap::{judge, Candidate, GapVerdict, Position, Resync, ResyncStep};
use dbtap_core::{
    Abandon, Completeness, Cx, DbError, DbEvent, Direction, ErrorCode, Input, Limits, Login, Op,
    Param, ParamValue, Progress, Request, Response, SessionOpts, Status, StreamParser, Timestamp,
    Upgrade,
};

use crate::binary::decode_value;
use crate::charset::{self, Charset};
use crate::codes::{header, status, Caps, Command, FieldType};
use crate::frame::{
    self, Algo, CompHeader, Header, InflateEnd, Inflater, COMP_HEADER_LEN, HEADER_LEN,
};
use crate::messages::{self, LoginInfo, ParamType};
use crate::prepared::{Cache, Stmt, MAX_LONG_DATA_PARAMS};
use crate::session::{transition, Event, Phase};
use crate::split;
use crate::wire::Reader;

/// Statements a multi-statement COM_QUERY is split into at most; more → one record for all.
pub const MAX_SPLIT_STATEMENTS: usize = 256;
/// Parameter counts tried when inferring the layout of an execute whose prepare was not seen.
pub const MAX_INFERRED_PARAMS: usize = 256;
/// Bytes needed before the first data of a direction is checked for another protocol's
/// signature (HTTP method, TLS record header, SSH banner).
const FOREIGN_CHECK_LEN: usize = 8;
/// Bytes of COM_QUERY text checked for printability by the resync candidate test.
const RESYNC_TEXT_CHECK: usize = 16;

/// Bound of the decompressed-stream buffer: one unfinished inner message (at most
/// `max_message_len` plus a header) plus one inflate step.
pub fn max_inner_buffer(limits: &Limits) -> usize {
    limits.max_message_len + 64 + frame::INFLATE_CHUNK
}

/// Capabilities assumed for a session picked up mid-stream (no greeting seen): every server
/// since 4.1 speaks protocol 4.1. The rest (DEPRECATE_EOF, compression, query attributes) is
/// discovered from the bytes.
const MIDSTREAM_CAPS: u64 = Caps::PROTOCOL_41
    | Caps::SECURE_CONNECTION
    | Caps::TRANSACTIONS
    | Caps::MULTI_STATEMENTS
    | Caps::MULTI_RESULTS
    | Caps::PS_MULTI_RESULTS
    | Caps::PLUGIN_AUTH;

/// Anomaly kinds (metrics labels): a small, fixed set.
pub mod anomaly {
    /// A message inside a valid frame could not be parsed; it was skipped.
    pub const MALFORMED: &str = "malformed_packet";
    /// A command byte this parser does not know (still recorded as `unknown_0xNN`).
    pub const UNKNOWN_COMMAND: &str = "unknown_command";
    /// Server bytes when no request was waiting, or of a kind the request cannot get.
    pub const UNEXPECTED_RESPONSE: &str = "unexpected_response";
    /// A client packet out of sequence.
    pub const UNEXPECTED_SEQUENCE: &str = "unexpected_sequence";
    /// A prepared statement was evicted from the bounded cache.
    pub const STMT_CACHE_EVICTED: &str = "stmt_cache_evicted";
    /// A message or field went over a limit and was cut.
    pub const OVER_LIMIT: &str = "over_limit";
    /// A compressed frame did not inflate (or inflated beyond its declared length).
    pub const DECOMPRESS_ERROR: &str = "decompress_error";
    /// An execute for a statement whose prepare was not seen.
    pub const UNKNOWN_STATEMENT: &str = "unknown_statement";
    /// A phase transition that does not fit the connection phase.
    pub const UNEXPECTED_PHASE: &str = "unexpected_phase";
}

/// What the response to the pending request looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// OK / ERR / result sets / LOCAL INFILE (COM_QUERY, COM_STMT_EXECUTE, and most others).
    Generic,
    /// COM_STMT_PREPARE_OK + definitions, or ERR.
    Prepare,
    /// Column definitions until EOF, or ERR (COM_FIELD_LIST).
    FieldList,
    /// One string packet (COM_STATISTICS).
    Statistics,
    /// Binary rows until EOF, or ERR (COM_STMT_FETCH).
    Fetch,
    /// Packets until EOF or ERR (COM_BINLOG_DUMP*: replication events).
    Stream,
    /// Auth exchange until OK or ERR (login, COM_CHANGE_USER).
    Auth,
}

/// Where the response of the pending request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RState {
    /// Next packet starts a result (OK, ERR, column count, LOCAL INFILE, …).
    First,
    /// `left` column definitions to skip, then maybe an EOF.
    ColumnDefs { left: u64 },
    /// After column definitions: an EOF (unless DEPRECATE_EOF), then rows.
    ColumnsEnd,
    /// Rows until EOF / OK(0xFE) / ERR.
    Rows,
    /// Prepare: `left` parameter definitions, then `cols` column definitions.
    PrepParams { left: u64, cols: u64 },
    /// Prepare: EOF after parameter definitions (unless DEPRECATE_EOF).
    PrepParamsEnd { cols: u64 },
    /// Prepare: `left` column definitions.
    PrepCols { left: u64 },
    /// Prepare: EOF after column definitions (unless DEPRECATE_EOF).
    PrepColsEnd,
    /// LOCAL INFILE: the client sends the file; OK/ERR after its empty packet.
    InfileData,
}

/// What a successful response changes in the session.
#[derive(Debug, Clone, PartialEq, Default)]
enum Effect {
    #[default]
    None,
    /// COM_INIT_DB: new default database.
    Database(String),
    /// `SET NAMES` and friends.
    Charset(Charset),
    /// COM_RESET_CONNECTION.
    Reset,
    /// COM_SET_OPTION: multi-statements on/off.
    MultiStatements(bool),
}

/// Outcome of one result of a (multi-)statement.
#[derive(Debug, Clone, Default)]
struct Outcome {
    status: Status,
    error: Option<DbError>,
    rows: Option<u64>,
    insert_id: Option<u64>,
    warnings: Option<u64>,
    ts_end: Timestamp,
    bytes: u64,
}

/// The request waiting for its response.
#[derive(Debug)]
struct Pending {
    req: Request,
    kind: Kind,
    state: RState,
    effect: Effect,
    /// Result so far (summed over results).
    resp: Response,
    /// Per-result outcomes, kept when the text has several statements.
    results: Vec<Outcome>,
    /// Split statements (byte ranges in `req.sql`), when more than one.
    split: Option<Vec<std::ops::Range<usize>>>,
    /// Current result: rows counted / bytes.
    cur: Outcome,
    /// Any server byte of the response was seen.
    started: bool,
    /// Prepare: sql to cache on OK.
    prepare_sql: Option<String>,
    /// The response could already be complete if the session uses DEPRECATE_EOF (mid-stream).
    maybe_done: bool,
    /// Payload bytes of the request (for `Truncated::original` of a cut text).
    req_payload: u64,
    /// Text offset in the payload and bytes kept, when the text was cut at a limit.
    text_cut: Option<(u64, u64)>,
    /// Auth plugin after an AuthSwitchRequest.
    switched_plugin: Option<String>,
    /// Execute: the statement, to remember types after the response.
    stmt_id: Option<u32>,
    /// New default schema reported by session state tracking.
    tracked_db: Option<String>,
}

/// Per-direction framing state.
#[derive(Debug, Default)]
struct Dir {
    resync: Resync,
    /// The next packet continues a multi-packet payload whose head was handled: skip it.
    cont: bool,
    /// Whether the current continuation belongs to the pending request / response.
    cont_counts: bool,
    /// First bytes of this direction seen.
    seen: bool,
    /// Bytes discarded by resync scans since the last sync (bounded by `max_resync_scan`).
    scanned: u64,
    /// Compressed-protocol state, once compression is on.
    comp: Option<Box<Comp>>,
    /// End seen.
    ended: bool,
}

/// The compressed-protocol layer of one direction.
#[derive(Debug, Default)]
struct Comp {
    /// Decompressed bytes not consumed yet (at most one unfinished inner message + a chunk).
    inner: Vec<u8>,
    /// Decompressed bytes still to drop (an inner Skip).
    skip: u64,
    /// The inner stream lost its boundaries: find a packet start at the next frame.
    desync: bool,
    /// Capture time of the frame that carried the inner buffer's first byte.
    ts: Timestamp,
    inflater: Inflater,
    /// A frame too large to buffer, inflated as it streams past.
    big: Option<BigFrame>,
    /// Output bytes of the frame being inflated in parts.
    produced: usize,
}

/// A compressed frame larger than `max_message_len`, inflated part by part (zlib or stored).
#[derive(Debug, Clone, Copy)]
struct BigFrame {
    h: CompHeader,
    /// Compressed bytes still to come.
    left: usize,
    /// Its first part was inflated.
    started: bool,
    /// Inflating failed: the rest of the frame is skipped.
    dead: bool,
}

/// Time source for positions of the bytes being parsed.
#[derive(Clone, Copy)]
enum Clock<'a> {
    /// Raw bytes: segment marks of the stream layer; positions are offset by the second field
    /// (bytes of this call's input before the slice being parsed).
    Cx(&'a Cx<'a>, usize),
    /// Decompressed bytes: the time of the frame that carried them.
    Fixed(Timestamp),
}

impl Clock<'_> {
    fn at(&self, pos: usize) -> Timestamp {
        match self {
            Clock::Cx(cx, off) => cx.ts_at(off.saturating_add(pos)),
            Clock::Fixed(t) => *t,
        }
    }
}

/// One step of a packet loop.
enum Step {
    /// The packet (`n` bytes) was handled; go on.
    Next(usize),
    /// The packet was handled and the framing changes (compression on): return to the caller.
    Switch(usize),
    /// Need `n` bytes from the packet start.
    Need(usize),
    /// Consumed `consumed` bytes from the packet start, then skip `skip`.
    Skip { consumed: usize, skip: u64 },
    /// TLS after `n` bytes.
    Upgrade(usize),
    /// Give up.
    Abandon(Abandon),
}

/// The MySQL / MariaDB parser of one session.
#[derive(Debug)]
pub struct MysqlParser {
    opts: SessionOpts,
    phase: Phase,
    /// Negotiated capabilities (client ∧ server), or assumed ones mid-stream.
    caps: Caps,
    server_caps: Caps,
    /// CLIENT_DEPRECATE_EOF, `None` until known (mid-stream).
    deprecate_eof: Option<bool>,
    /// CLIENT_QUERY_ATTRIBUTES, `None` until known (mid-stream).
    query_attrs: Option<bool>,
    charset: Charset,
    tx: u64,
    stmts: Cache,
    pending: Option<Box<Pending>>,
    dirs: [Dir; 2],
    /// Compression negotiated, switched on by the login OK.
    compress_negotiated: bool,
    /// The server side lost sync: wait for a request sent after that before resyncing.
    server_needs_request: bool,
    server_plugin: Option<String>,
    /// Requests pipelined behind `pending`, oldest first.
    queue: std::collections::VecDeque<Box<Pending>>,
    /// Bound of `queue` (`Limits::max_pending_requests`, taken from the first call's limits).
    max_queue: usize,
    /// Id of the last successful prepare (MariaDB's statement id -1).
    last_prepared: Option<u32>,
}

impl MysqlParser {
    /// A parser for a new session.
    pub fn new(opts: SessionOpts) -> Self {
        let mut p = MysqlParser {
            opts,
            phase: Phase::AwaitGreeting,
            caps: Caps(0),
            server_caps: Caps(0),
            deprecate_eof: None,
            query_attrs: None,
            charset: Charset::default(),
            tx: 0,
            stmts: Cache::default(),
            pending: None,
            dirs: Default::default(),
            compress_negotiated: false,
            server_needs_request: false,
            server_plugin: None,
            queue: Default::default(),
            max_queue: dbtap_core::limits::DEFAULT_MAX_PENDING_REQUESTS,
            last_prepared: None,
        };
        if opts.midstream {
            p.phase = Phase::Command;
            p.caps = Caps(MIDSTREAM_CAPS);
            for d in &mut p.dirs {
                // Boundaries are unknown until a plausible message start is found.
                d.resync.start(0);
            }
            p.server_needs_request = true;
        }
        p
    }

    /// Prepared statements remembered (for tests and memory accounting).
    pub fn cached_statements(&self) -> usize {
        self.stmts.len()
    }

    /// Bytes held in the decompressed-stream buffers (the parser's only private buffers).
    pub fn buffered(&self) -> usize {
        self.dirs
            .iter()
            .filter_map(|d| d.comp.as_ref())
            .map(|c| c.inner.len())
            .sum()
    }

    fn next_tx(&mut self) -> u64 {
        self.tx += 1;
        self.tx
    }

    fn new_request(&mut self, ts: Timestamp, op: Op, bytes: usize) -> Request {
        Request {
            tx: 0,
            ts,
            op: Some(op),
            bytes: bytes as u64,
            expects_response: true,
            ..Default::default()
        }
    }

    fn pend(&mut self, req: Request, kind: Kind, out: &mut Vec<DbEvent>) -> Option<&mut Pending> {
        self.server_needs_request = false;
        let p = Box::new(Pending {
            req,
            kind,
            state: if kind == Kind::Fetch {
                RState::Rows
            } else {
                RState::First
            },
            effect: Effect::None,
            resp: Response::default(),
            results: Vec::new(),
            split: None,
            cur: Outcome::default(),
            started: false,
            prepare_sql: None,
            maybe_done: false,
            req_payload: 0,
            text_cut: None,
            switched_plugin: None,
            stmt_id: None,
            tracked_db: None,
        });
        if self.pending.is_none() {
            return Some(self.pending.insert(p));
        }
        // Pipelined behind the request whose response is awaited (MariaDB connectors send
        // COM_STMT_PREPARE and COM_STMT_EXECUTE(-1) in one write). Bounded: the oldest waiting
        // request is given up (emitted without a response) when the queue is full.
        if self.queue.len() >= self.max_queue {
            self.flush_pending_lost(out, None);
        }
        self.queue.push_back(p);
        self.queue.back_mut().map(|p| &mut **p)
    }

    /// The most recently created request (the back of the queue, or the front).
    fn newest_mut(&mut self) -> Option<&mut Pending> {
        match self.queue.back_mut() {
            Some(p) => Some(&mut **p),
            None => self.pending.as_deref_mut(),
        }
    }

    /// Emit the most recent request without a response (it was cut: nothing can answer it).
    fn flush_newest(&mut self, out: &mut Vec<DbEvent>) {
        match self.queue.pop_back() {
            Some(p) => {
                let mut p = *p;
                self.finish_text_cut(&mut p);
                p.req.tx = self.next_tx();
                out.push(DbEvent::Request(Box::new(p.req)));
            }
            None => self.flush_pending(out),
        }
    }

    /// Emit every waiting request without a response (server side lost or over).
    fn flush_all(&mut self, out: &mut Vec<DbEvent>, lost: Option<u64>) {
        while self.pending.is_some() {
            self.flush_pending_lost(out, lost);
        }
    }

    /// Emit a request that gets no response by protocol.
    fn emit_lone(&mut self, mut req: Request, out: &mut Vec<DbEvent>) {
        req.tx = self.next_tx();
        req.expects_response = false;
        out.push(DbEvent::Request(Box::new(req)));
    }

    /// Emit the pending request without a response (session over, or server desync). When part
    /// of the response was seen, it is emitted too, flagged as cut.
    fn flush_pending(&mut self, out: &mut Vec<DbEvent>) {
        self.flush_pending_lost(out, None)
    }

    /// As [`Self::flush_pending`]; a response seen in part is flagged `Partial { lost }` when a
    /// gap cut it (`Some(lost)`), `Truncated` when the stream ended or moved on.
    fn flush_pending_lost(&mut self, out: &mut Vec<DbEvent>, lost: Option<u64>) {
        let Some(p) = self.pending.take() else { return };
        self.pending = self.queue.pop_front();
        let mut p = *p;
        self.finish_text_cut(&mut p);
        if p.started && p.state != RState::First {
            // Rows or definitions were flowing: the request was accepted; what was seen counts.
            let kept = p.resp.bytes + p.cur.bytes;
            p.cur.status = Status::Ok;
            self.push_outcome(&mut p);
            let mut resp = std::mem::take(&mut p.resp);
            resp.completeness = resp.completeness.merge(match lost {
                Some(lost_bytes) => Completeness::Partial { lost_bytes },
                None => Completeness::Truncated {
                    kept,
                    original: kept,
                },
            });
            p.req.tx = self.next_tx();
            resp.tx = p.req.tx;
            out.push(DbEvent::Request(Box::new(p.req)));
            out.push(DbEvent::Response(Box::new(resp)));
        } else {
            p.req.tx = self.next_tx();
            out.push(DbEvent::Request(Box::new(p.req)));
        }
    }

    fn finish_text_cut(&self, p: &mut Pending) {
        if let Some((offset, kept)) = p.text_cut.take() {
            let original = p.req_payload.saturating_sub(offset).max(kept);
            p.req.completeness = p
                .req
                .completeness
                .merge(Completeness::Truncated { kept, original });
        }
    }
}

impl StreamParser for MysqlParser {
    fn handle(
        &mut self,
        cx: &Cx<'_>,
        dir: Direction,
        input: Input<'_>,
        out: &mut Vec<DbEvent>,
    ) -> Progress {
        match input {
            Input::Data(data) => self.on_data(cx, dir, data, out),
            Input::Gap { len, partial } => self.on_gap(cx, dir, len, partial, out),
            Input::End { partial, .. } => self.on_end(cx, dir, partial, out),
        }
    }
}

// ───────────────────────────── data: framing, resync, compression ─────────────────────────────

impl MysqlParser {
    fn on_data(
        &mut self,
        cx: &Cx<'_>,
        dir: Direction,
        data: &[u8],
        out: &mut Vec<DbEvent>,
    ) -> Progress {
        let i = dir.index();
        self.max_queue = cx.limits.max_pending_requests.max(1);
        if !self.dirs[i].seen && data.len() >= FOREIGN_CHECK_LEN {
            self.dirs[i].seen = true;
            if foreign_signature(data) {
                return Progress::Abandon(Abandon::NotThisProtocol);
            }
        }
        if self.phase == Phase::Encrypted {
            return Progress::Upgraded {
                consumed: 0,
                to: Upgrade::Tls,
            };
        }
        if self.phase == Phase::AwaitGreeting
            && dir == Direction::ToServer
            && self.dirs[i].comp.is_none()
            && client_candidate(data) == Candidate::No
        {
            match comp_candidate(data, cx.limits.max_message_len, dir, false) {
                Candidate::Yes => {
                    // The client speaks first, in compressed frames: the capture began after
                    // a login that switched compression on. Carry on as a compressed mid-stream
                    // pick-up.
                    self.phase = Phase::Command;
                    self.caps = Caps(MIDSTREAM_CAPS);
                    self.compress_negotiated = true;
                    for d in &mut self.dirs {
                        d.comp.get_or_insert_with(Default::default);
                    }
                }
                Candidate::NeedMore(n) if data.len() < n => {
                    return Progress::NeedMore {
                        consumed: 0,
                        need: n.min(cx.limits.max_message_len),
                    };
                }
                _ => {}
            }
        }
        let mut base = 0usize;
        if self.dirs[i].resync.is_active() {
            match self.resync_scan(cx, dir, data, out) {
                Ok(skipped) => base = skipped,
                Err(p) => return p,
            }
        }
        let rest = data.get(base..).unwrap_or_default();
        let progress = if self.dirs[i].comp.is_some() {
            self.compressed(cx, dir, rest, base, out)
        } else {
            let clock = Clock::Cx(cx, base);
            self.packets(clock, cx.limits, dir, rest, base, out)
        };
        progress
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
        let mut found_compressed = false;
        let compressed_on = self.dirs[i].comp.is_some();
        let midstream = self.opts.midstream;
        let can_server = self.pending.is_some() && !self.server_needs_request;
        let max_msg = cx.limits.max_message_len;
        let mut resync = std::mem::take(&mut self.dirs[i].resync);
        let step = resync.scan(cx, data, |d| {
            let raw = || match dir {
                Direction::ToServer => client_candidate(d),
                Direction::ToClient if can_server => server_candidate(d),
                Direction::ToClient => Candidate::No,
            };
            if compressed_on {
                let c = comp_candidate(d, max_msg, dir, can_server);
                found_compressed = c == Candidate::Yes;
                return c;
            }
            match raw() {
                Candidate::No if midstream => {
                    let c = comp_candidate(d, max_msg, dir, can_server);
                    found_compressed = c == Candidate::Yes;
                    c
                }
                c => c,
            }
        });
        let out_step = match step {
            ResyncStep::Found { skipped } => {
                // `skipped_total` counts every byte discarded since the desync began.
                let (lost, total) = resync.finish();
                self.dirs[i].scanned = 0;
                if lost > 0 || total > 0 {
                    out.push(DbEvent::Resync {
                        dir,
                        skipped_bytes: total,
                    });
                }
                self.dirs[i].cont = false;
                if found_compressed && !compressed_on {
                    // Mid-stream pick-up of a compressed session: both directions are compressed.
                    self.compress_negotiated = true;
                    for d in &mut self.dirs {
                        d.comp.get_or_insert_with(Default::default);
                    }
                }
                if let Some(c) = self.dirs[i].comp.as_mut() {
                    c.inner.clear();
                    c.skip = 0;
                    c.desync = true;
                }
                if self.phase != Phase::Command {
                    if let Ok(p) = transition(self.phase, Event::Resynced) {
                        self.phase = p;
                    }
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
        out_step
    }

    /// The compressed layer: whole frames (bounded), inflated in steps, inner packets parsed from
    /// the bounded inner buffer.
    fn compressed(
        &mut self,
        cx: &Cx<'_>,
        dir: Direction,
        data: &[u8],
        base: usize,
        out: &mut Vec<DbEvent>,
    ) -> Progress {
        let i = dir.index();
        let mut pos = 0usize;
        loop {
            let rest = data.get(pos..).unwrap_or_default();
            if rest.is_empty() {
                return Progress::Consumed(base + pos);
            }
            let big = self.dirs[i].comp.as_mut().and_then(|c| c.big.take());
            if let Some(mut big) = big {
                // The next part of a frame too large to buffer.
                let n = big.left.min(rest.len());
                let part = rest.get(..n).unwrap_or_default();
                big.left -= n;
                let last = big.left == 0;
                let ts = cx.ts_at(base + pos);
                pos += n;
                if !big.dead {
                    let (r, dead) =
                        self.inflate_part(cx.limits, dir, big.h, part, !big.started, last, ts, out);
                    big.started = true;
                    big.dead = dead;
                    match r {
                        Some(Progress::Upgraded { to, .. }) => {
                            return Progress::Upgraded {
                                consumed: base + pos,
                                to,
                            };
                        }
                        Some(p @ Progress::Abandon(_)) => return p,
                        _ => {}
                    }
                }
                if !last {
                    if let Some(c) = self.dirs[i].comp.as_mut() {
                        c.big = Some(big);
                    }
                }
                continue;
            }
            let Some(h) = CompHeader::parse(rest) else {
                return Progress::NeedMore {
                    consumed: base + pos,
                    need: COMP_HEADER_LEN,
                };
            };
            let total = COMP_HEADER_LEN + h.clen;
            if h.clen > cx.limits.max_message_len && rest.len() < total {
                // Too large to buffer: zlib and stored frames are inflated as they stream past
                // (no copy of the compressed input is kept); zstd ones are skipped.
                let Some(head) = rest.get(COMP_HEADER_LEN..COMP_HEADER_LEN + 4) else {
                    return Progress::NeedMore {
                        consumed: base + pos,
                        need: COMP_HEADER_LEN + 4,
                    };
                };
                if h.ulen == 0 || !frame::is_zstd_head(head) {
                    if let Some(c) = self.dirs[i].comp.as_mut() {
                        c.big = Some(BigFrame {
                            h,
                            left: h.clen,
                            started: false,
                            dead: false,
                        });
                    }
                    pos += COMP_HEADER_LEN;
                    continue;
                }
            }
            if h.clen > cx.limits.max_message_len {
                // A frame too large to hold: its content is lost to us; the inner stream desyncs.
                out.push(DbEvent::Anomaly {
                    dir,
                    kind: anomaly::OVER_LIMIT,
                });
                self.inner_desync(dir, h.ulen.max(h.clen) as u64, out);
                return Progress::Skip {
                    consumed: base + pos + COMP_HEADER_LEN,
                    skip: h.clen as u64,
                };
            }
            if rest.len() < total {
                return Progress::NeedMore {
                    consumed: base + pos,
                    need: total,
                };
            }
            let payload = rest.get(COMP_HEADER_LEN..total).unwrap_or_default();
            let ts = cx.ts_at(base + pos);
            let (r, _) = self.inflate_part(cx.limits, dir, h, payload, true, true, ts, out);
            pos += total;
            match r {
                None => {}
                Some(Progress::Upgraded { to, .. }) => {
                    return Progress::Upgraded {
                        consumed: base + pos,
                        to,
                    };
                }
                Some(p @ Progress::Abandon(_)) => return p,
                Some(_) => {}
            }
            if self.dirs[i].comp.is_none() {
                return Progress::Consumed(base + pos);
            }
        }
    }

    fn inner_desync(&mut self, dir: Direction, lost: u64, out: &mut Vec<DbEvent>) {
        let i = dir.index();
        if let Some(c) = self.dirs[i].comp.as_mut() {
            if !c.desync {
                out.push(DbEvent::Desync {
                    dir,
                    lost_bytes: lost,
                });
            }
            c.inner.clear();
            c.skip = 0;
            c.desync = true;
        }
        self.dirs[i].cont = false;
        if dir == Direction::ToClient {
            self.flush_all(out, Some(lost));
            self.server_needs_request = true;
        }
    }

    /// Inflate one frame and parse the inner packets it completes.
    /// Inflate `payload`, a whole frame (`start && last`) or one part of a frame too large to
    /// buffer, and parse the inner packets it completes. Returns the progress to pass up
    /// (TLS, abandon) and whether the frame is dead (corrupt: skip its remaining parts).
    #[allow(clippy::too_many_arguments)]
    fn inflate_part(
        &mut self,
        limits: &Limits,
        dir: Direction,
        h: CompHeader,
        payload: &[u8],
        start: bool,
        last: bool,
        ts: Timestamp,
        out: &mut Vec<DbEvent>,
    ) -> (Option<Progress>, bool) {
        let i = dir.index();
        let Some(mut comp) = self.dirs[i].comp.take() else {
            return (None, true);
        };
        if comp.inner.is_empty() {
            comp.ts = ts;
        }
        if start {
            comp.produced = 0;
        }
        let mut result = None;
        let mut first_piece = start;
        let mut feed = |this: &mut MysqlParser,
                        comp: &mut Comp,
                        piece: &[u8],
                        out: &mut Vec<DbEvent>|
         -> bool {
            let mut piece = piece;
            if comp.desync && first_piece {
                // Frames usually start with a packet: resync there or drop the frame.
                let can_server = this.pending.is_some() && !this.server_needs_request;
                let c = match dir {
                    Direction::ToServer => client_candidate(piece),
                    Direction::ToClient if can_server => server_candidate(piece),
                    Direction::ToClient => Candidate::No,
                };
                if c == Candidate::No {
                    first_piece = false;
                    return false;
                }
                comp.desync = false;
                out.push(DbEvent::Resync {
                    dir,
                    skipped_bytes: 0,
                });
                if this.phase != Phase::Command {
                    this.phase = Phase::Command;
                }
            }
            first_piece = false;
            if comp.desync {
                return false;
            }
            if comp.skip > 0 {
                let n = comp.skip.min(piece.len() as u64) as usize;
                comp.skip -= n as u64;
                piece = piece.get(n..).unwrap_or_default();
            }
            comp.inner.extend_from_slice(piece);
            loop {
                let inner = std::mem::take(&mut comp.inner);
                let clock = Clock::Fixed(comp.ts);
                let p = this.packets(clock, limits, dir, &inner, 0, out);
                let mut inner = inner;
                let (used, stop) = match p {
                    Progress::Consumed(n) => (n, false),
                    Progress::NeedMore { consumed, .. } => (consumed, true),
                    Progress::Skip { consumed, skip } => {
                        let consumed = consumed.min(inner.len());
                        let avail = inner.len().saturating_sub(consumed) as u64;
                        let n = skip.min(avail);
                        comp.skip = skip - n;
                        (consumed + n as usize, false)
                    }
                    p @ (Progress::Upgraded { .. } | Progress::Abandon(_)) => {
                        result = Some(p);
                        return false;
                    }
                };
                let used = used.min(inner.len());
                inner.drain(..used);
                comp.inner = inner;
                if comp.inner.len() > max_inner_buffer(limits) {
                    out.push(DbEvent::Anomaly {
                        dir,
                        kind: anomaly::OVER_LIMIT,
                    });
                    comp.inner.clear();
                    comp.desync = true;
                    return false;
                }
                if stop || comp.inner.is_empty() || used == 0 {
                    break;
                }
            }
            comp.ts = ts;
            true
        };
        if h.ulen == 0 {
            // Stored uncompressed.
            let mut at = 0;
            while at < payload.len() {
                let end = (at + frame::INFLATE_CHUNK).min(payload.len());
                if !feed(
                    self,
                    &mut comp,
                    payload.get(at..end).unwrap_or_default(),
                    out,
                ) {
                    break;
                }
                at = end;
            }
        } else {
            let algo = if frame::is_zstd_head(payload) {
                Algo::Zstd
            } else {
                Algo::Zlib
            };
            let mut inflater = std::mem::take(&mut comp.inflater);
            let end = if start && last {
                inflater.run(algo, payload, h.ulen, |piece| {
                    feed(self, &mut comp, piece, out)
                })
            } else {
                let mut produced = comp.produced;
                let end = inflater.zlib_part(payload, start, h.ulen, &mut produced, |piece| {
                    feed(self, &mut comp, piece, out)
                });
                comp.produced = produced;
                match end {
                    None if last => InflateEnd::Corrupt,
                    None => {
                        comp.inflater = inflater;
                        self.dirs[i].comp.get_or_insert(comp);
                        return (result, false);
                    }
                    Some(e) => e,
                }
            };
            comp.inflater = inflater;
            match end {
                InflateEnd::Done => {}
                InflateEnd::Cut => out.push(DbEvent::Anomaly {
                    dir,
                    kind: anomaly::DECOMPRESS_ERROR,
                }),
                InflateEnd::Corrupt => {
                    out.push(DbEvent::Anomaly {
                        dir,
                        kind: anomaly::DECOMPRESS_ERROR,
                    });
                    self.dirs[i].comp = Some(comp);
                    self.inner_desync(dir, h.ulen as u64, out);
                    return (result, true);
                }
            }
        }
        if self.dirs[i].comp.is_none() {
            self.dirs[i].comp = Some(comp);
        }
        (result, false)
    }

    /// The packet loop over `data` (raw stream or decompressed stream). Positions in the
    /// returned progress are offset by `base`.
    fn packets(
        &mut self,
        clock: Clock<'_>,
        limits: &Limits,
        dir: Direction,
        data: &[u8],
        base: usize,
        out: &mut Vec<DbEvent>,
    ) -> Progress {
        let i = dir.index();
        let mut pos = 0usize;
        loop {
            let rest = data.get(pos..).unwrap_or_default();
            if rest.is_empty() {
                return Progress::Consumed(base + pos);
            }
            let Some(h) = Header::parse(rest) else {
                return Progress::NeedMore {
                    consumed: base + pos,
                    need: HEADER_LEN,
                };
            };
            if self.dirs[i].cont {
                // A continuation packet of a payload whose head was handled: count and skip.
                self.dirs[i].cont = h.continues();
                if self.dirs[i].cont_counts {
                    self.count_cont(dir, h);
                }
                if rest.len() >= h.total() {
                    pos += h.total();
                    continue;
                }
                return Progress::Skip {
                    consumed: base + pos + HEADER_LEN,
                    skip: h.len as u64,
                };
            }
            let step = match dir {
                Direction::ToServer => self.client_packet(clock, limits, h, rest, pos, out),
                Direction::ToClient => self.server_packet(clock, limits, h, rest, pos, out),
            };
            match step {
                Step::Next(n) => pos += n,
                Step::Switch(n) => return Progress::Consumed(base + pos + n),
                Step::Need(n) => {
                    return Progress::NeedMore {
                        consumed: base + pos,
                        need: n,
                    };
                }
                Step::Skip { consumed, skip } => {
                    return Progress::Skip {
                        consumed: base + pos + consumed,
                        skip,
                    };
                }
                Step::Upgrade(n) => {
                    return Progress::Upgraded {
                        consumed: base + pos + n,
                        to: Upgrade::Tls,
                    };
                }
                Step::Abandon(a) => return Progress::Abandon(a),
            }
        }
    }

    fn count_cont(&mut self, dir: Direction, h: Header) {
        if let Some(p) = self.pending.as_mut() {
            match dir {
                Direction::ToServer => {
                    p.req.bytes += h.total() as u64;
                    p.req_payload += h.len as u64;
                }
                Direction::ToClient => p.cur.bytes += h.total() as u64,
            }
        }
    }
}

/// The payload of a packet when it is all there; or its head, cut at `cap`, when the payload
/// is larger than `cap` (the caller skips the rest); or how many bytes are needed.
fn whole(h: Header, rest: &[u8], cap: usize) -> Result<(&[u8], bool), usize> {
    if rest.len() >= h.total() {
        return Ok((rest.get(HEADER_LEN..h.total()).unwrap_or_default(), false));
    }
    if h.len <= cap {
        return Err(h.total());
    }
    let have = HEADER_LEN + cap;
    if rest.len() >= have {
        Ok((rest.get(HEADER_LEN..have).unwrap_or_default(), true))
    } else {
        Err(have)
    }
}

/// Bytes that announce another protocol: HTTP, a TLS record, an SSH banner.
fn foreign_signature(d: &[u8]) -> bool {
    const HTTP: [&[u8]; 10] = [
        b"GET ",
        b"POST ",
        b"PUT ",
        b"HEAD ",
        b"DELETE ",
        b"OPTIONS ",
        b"PATCH ",
        b"CONNECT ",
        b"HTTP/",
        b"PRI * HTTP",
    ];
    HTTP.iter().any(|m| d.starts_with(m))
        || d.starts_with(b"SSH-")
        // TLS record: handshake (22) or alert (21), version 3.x.
        || matches!(d, [0x15 | 0x16, 0x03, 0x00..=0x04, ..])
}

/// Is this a plausible client command start? seq 0, sane length, a command clients send, and
/// for text commands printable text.
pub(crate) fn client_candidate(d: &[u8]) -> Candidate {
    let Some(h) = Header::parse(d) else {
        return Candidate::NeedMore(HEADER_LEN);
    };
    if h.seq != 0 || h.len == 0 {
        return Candidate::No;
    }
    let Some(&c) = d.get(HEADER_LEN) else {
        return Candidate::NeedMore(HEADER_LEN + 1);
    };
    let cmd = Command(c);
    let len_ok = match cmd {
        Command::QUIT | Command::PING | Command::STATISTICS | Command::RESET_CONNECTION => {
            h.len == 1
        }
        Command::STMT_CLOSE | Command::STMT_RESET | Command::PROCESS_KILL => h.len == 5,
        Command::STMT_FETCH => h.len == 9,
        Command::SET_OPTION => h.len == 3,
        Command::STMT_EXECUTE => h.len >= 10,
        Command::STMT_SEND_LONG_DATA => h.len >= 7,
        Command::INIT_DB | Command::FIELD_LIST | Command::CHANGE_USER => (2..4096).contains(&h.len),
        Command::QUERY | Command::STMT_PREPARE => h.len >= 2,
        Command::BINLOG_DUMP | Command::BINLOG_DUMP_GTID | Command::REGISTER_SLAVE => h.len >= 7,
        _ => false,
    };
    if !len_ok {
        return Candidate::No;
    }
    if matches!(
        cmd,
        Command::QUERY | Command::STMT_PREPARE | Command::INIT_DB | Command::FIELD_LIST
    ) {
        let n = (h.len - 1).min(RESYNC_TEXT_CHECK);
        let Some(text) = d.get(HEADER_LEN + 1..HEADER_LEN + 1 + n) else {
            return Candidate::NeedMore(HEADER_LEN + 1 + n);
        };
        // Query attributes: parameter_count (small lenenc) then parameter_set_count = 1.
        let attrs = cmd == Command::QUERY
            && text.get(1) == Some(&1)
            && text.first().is_some_and(|&b| b < 0xfb);
        if !attrs
            && !text
                .iter()
                .all(|&b| b >= 0x20 || matches!(b, b'\t' | b'\n' | b'\r'))
        {
            return Candidate::No;
        }
        if !attrs
            && text
                .first()
                .is_some_and(|b| !(b.is_ascii_graphic() || b.is_ascii_whitespace() || *b >= 0x80))
        {
            return Candidate::No;
        }
    }
    Candidate::Yes
}

/// Is this a plausible first packet of a response? seq 1 and an OK/ERR/EOF/LOCAL INFILE header
/// or a small column count.
pub(crate) fn server_candidate(d: &[u8]) -> Candidate {
    let Some(h) = Header::parse(d) else {
        return Candidate::NeedMore(HEADER_LEN);
    };
    if h.seq != 1 || h.len == 0 {
        return Candidate::No;
    }
    let Some(&b) = d.get(HEADER_LEN) else {
        return Candidate::NeedMore(HEADER_LEN + 1);
    };
    let ok = match b {
        header::OK => (7..1 << 16).contains(&h.len),
        header::ERR => (3..1024).contains(&h.len),
        header::EOF => h.len < 9,
        header::LOCAL_INFILE => h.len < 4096,
        1..=0xfa => h.len <= 2,
        0xfc => (3..=4).contains(&h.len),
        _ => false,
    };
    if ok {
        Candidate::Yes
    } else {
        Candidate::No
    }
}

/// Is this a plausible compressed frame start (mid-stream detection)? Header lengths consistent
/// with the data and a zlib / zstd stream head, or a stored frame holding a plausible packet.
fn comp_candidate(d: &[u8], max: usize, dir: Direction, can_server: bool) -> Candidate {
    let Some(h) = CompHeader::parse(d) else {
        return Candidate::NeedMore(COMP_HEADER_LEN);
    };
    if h.clen == 0 || h.clen > max {
        return Candidate::No;
    }
    let Some(head) = d.get(COMP_HEADER_LEN..COMP_HEADER_LEN + 4.min(h.clen)) else {
        return Candidate::NeedMore(COMP_HEADER_LEN + 4.min(h.clen));
    };
    if h.ulen == 0 {
        let inner = d.get(COMP_HEADER_LEN..).unwrap_or_default();
        let c = match dir {
            Direction::ToServer => client_candidate(inner),
            Direction::ToClient if can_server => server_candidate(inner),
            Direction::ToClient => Candidate::No,
        };
        // The stored packet must fit the frame exactly or begin a longer payload.
        return match (c, Header::parse(inner)) {
            (Candidate::NeedMore(n), _) => Candidate::NeedMore(COMP_HEADER_LEN + n),
            (Candidate::Yes, Some(ih)) if ih.total() <= h.clen || h.clen >= 1024 => Candidate::Yes,
            _ => Candidate::No,
        };
    }
    // Deflate cannot shrink data below ~1/1032 of its size; nor is a compressed frame much
    // larger than its content.
    if h.ulen > h.clen.saturating_mul(1100) || h.clen > h.ulen + 64 {
        return Candidate::No;
    }
    if frame::is_zlib_head(head) || frame::is_zstd_head(head) {
        if dir == Direction::ToClient && !can_server {
            return Candidate::No;
        }
        Candidate::Yes
    } else {
        Candidate::No
    }
}

// ─────────────────────────────────────── client side ───────────────────────────────────────

impl MysqlParser {
    fn client_packet(
        &mut self,
        clock: Clock<'_>,
        limits: &Limits,
        h: Header,
        rest: &[u8],
        pos: usize,
        out: &mut Vec<DbEvent>,
    ) -> Step {
        let ts = clock.at(pos);
        match self.phase {
            Phase::AwaitGreeting | Phase::AwaitHandshake => {
                if self.phase == Phase::AwaitGreeting && h.seq == 0 {
                    // The client spoke first with a command: the greeting and login were not
                    // captured. Carry on as a mid-stream pick-up if it is a plausible command.
                    match client_candidate(rest) {
                        Candidate::Yes => {
                            self.phase = Phase::Command;
                            self.caps = Caps(MIDSTREAM_CAPS);
                            return self.command(clock, limits, h, rest, pos, out);
                        }
                        Candidate::NeedMore(n) if rest.len() < n => return Step::Need(n),
                        _ => return Step::Abandon(Abandon::NotThisProtocol),
                    }
                }
                if h.seq != 1 && self.phase == Phase::AwaitGreeting {
                    return Step::Abandon(Abandon::NotThisProtocol);
                }
                self.handshake_response(ts, limits, h, rest, out)
            }
            Phase::Auth => {
                // Auth data (auth switch response, RSA key request, encrypted or cleartext
                // password): counted toward the login, never read.
                if let Some(p) = self.pending.as_mut() {
                    p.req.bytes += h.total() as u64;
                    if h.len > 0 {
                        if let Some(l) = p.req.login.as_mut() {
                            l.credentials_redacted = true;
                        }
                    }
                }
                self.skip_body(h, rest, true)
            }
            Phase::Command => self.command(clock, limits, h, rest, pos, out),
            Phase::Closed | Phase::Encrypted => self.skip_body(h, rest, false),
        }
    }

    /// Skip a packet's body; continuation packets of the same payload follow when it is full.
    fn skip_body(&mut self, h: Header, rest: &[u8], counts: bool) -> Step {
        self.note_cont(Direction::ToServer, h, counts);
        if rest.len() >= h.total() {
            Step::Next(h.total())
        } else {
            Step::Skip {
                consumed: HEADER_LEN,
                skip: h.len as u64,
            }
        }
    }

    fn note_cont(&mut self, dir: Direction, h: Header, counts: bool) {
        let d = &mut self.dirs[dir.index()];
        d.cont = h.continues();
        d.cont_counts = counts;
    }

    /// After handling `keep` bytes of a packet's payload: continue past it (whole packet) or
    /// skip the rest of a payload that was cut at a limit.
    fn after(&mut self, dir: Direction, h: Header, rest: &[u8], kept: usize, counts: bool) -> Step {
        self.note_cont(dir, h, counts);
        if rest.len() >= h.total() {
            Step::Next(h.total())
        } else {
            let consumed = (HEADER_LEN + kept).min(rest.len());
            Step::Skip {
                consumed,
                skip: h.total().saturating_sub(consumed) as u64,
            }
        }
    }

    fn handshake_response(
        &mut self,
        ts: Timestamp,
        limits: &Limits,
        h: Header,
        rest: &[u8],
        out: &mut Vec<DbEvent>,
    ) -> Step {
        let body = match whole(h, rest, limits.max_message_len) {
            Ok((b, _)) => b,
            Err(n) => return Step::Need(n),
        };
        if messages::is_ssl_request(body) {
            let mut req = self.new_request(ts, Op::LOGIN, h.total());
            req.login = Some(Box::new(Login::default()));
            req.expects_response = false;
            req.tx = self.next_tx();
            out.push(DbEvent::Request(Box::new(req)));
            out.push(DbEvent::Encrypted);
            self.phase = Phase::Encrypted;
            return Step::Upgrade(h.total().min(rest.len()));
        }
        let Some(info) =
            messages::handshake_response(body, self.server_caps, limits.max_attributes)
        else {
            out.push(DbEvent::Anomaly {
                dir: Direction::ToServer,
                kind: anomaly::MALFORMED,
            });
            return self.skip_body(h, rest, false);
        };
        // Negotiated capabilities: what both sides said (all of the client's when the greeting
        // was not seen).
        let mut caps = info.caps.0;
        if self.server_caps.0 != 0 {
            caps &= self.server_caps.0 | 0xffff_ffff_0000_0000;
            // MariaDB extended capabilities are offered by the server and echoed by the client
            // in the filler; without reading those, keep the server's offer.
            caps = (caps & 0xffff_ffff) | (self.server_caps.0 & 0xffff_ffff_0000_0000);
        }
        self.caps = Caps(caps);
        self.deprecate_eof = Some(self.caps.has(Caps::DEPRECATE_EOF));
        self.query_attrs = Some(self.caps.has(Caps::QUERY_ATTRIBUTES));
        self.compress_negotiated = self.caps.0 & (Caps::COMPRESS | Caps::ZSTD) != 0;
        if info.collation != 0 {
            self.charset = charset::from_collation(info.collation);
        }
        let mut login = self.login_from(&info, limits);
        if login.auth_method.is_none() {
            login.auth_method = self.server_plugin.clone();
        }
        let mut req = self.new_request(ts, Op::LOGIN, h.total());
        if info.short {
            req.completeness = Completeness::Partial { lost_bytes: 0 };
        }
        req.login = Some(Box::new(login));
        self.pend(req, Kind::Auth, out);
        self.phase = transition(self.phase, Event::HandshakeResponse).unwrap_or(Phase::Auth);
        self.after(Direction::ToServer, h, rest, body.len(), true)
    }

    fn login_from(&self, info: &LoginInfo<'_>, limits: &Limits) -> Login {
        let cs = if info.collation != 0 {
            charset::from_collation(info.collation)
        } else {
            self.charset
        };
        let s = |b: &[u8]| bounded(cs.decode(b), limits.max_attribute_len);
        let attributes: Vec<(String, String)> =
            info.attrs.iter().map(|(k, v)| (s(k), s(v))).collect();
        let find = |k: &str| {
            attributes
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        };
        Login {
            user: Some(cs.decode(info.user)),
            database: info
                .database
                .filter(|d| !d.is_empty())
                .map(|d| cs.decode(d)),
            client_program: find("program_name").or_else(|| find("_client_name")),
            auth_method: info.plugin.filter(|p| !p.is_empty()).map(|p| cs.decode(p)),
            attributes,
            credentials_redacted: info.auth_sent,
        }
    }

    /// A command-phase client packet.
    fn command(
        &mut self,
        clock: Clock<'_>,
        limits: &Limits,
        h: Header,
        rest: &[u8],
        pos: usize,
        out: &mut Vec<DbEvent>,
    ) -> Step {
        let ts = clock.at(pos);
        if h.seq != 0 {
            // Inside an exchange: LOCAL INFILE data, or auth data of COM_CHANGE_USER.
            if let Some(p) = self.pending.as_mut() {
                p.req.bytes += h.total() as u64;
                if p.kind == Kind::Auth && h.len > 0 {
                    if let Some(l) = p.req.login.as_mut() {
                        l.credentials_redacted = true;
                    }
                }
                if p.state == RState::InfileData && h.len == 0 {
                    // The empty packet ends the file; the server's OK/ERR follows.
                    p.state = RState::First;
                }
                return self.skip_body(h, rest, true);
            }
            out.push(DbEvent::Anomaly {
                dir: Direction::ToServer,
                kind: anomaly::UNEXPECTED_SEQUENCE,
            });
            return self.skip_body(h, rest, false);
        }
        if h.len == 0 {
            out.push(DbEvent::Anomaly {
                dir: Direction::ToServer,
                kind: anomaly::MALFORMED,
            });
            return Step::Next(h.total().min(rest.len()).max(HEADER_LEN));
        }
        let Some(&c) = rest.get(HEADER_LEN) else {
            return Step::Need(HEADER_LEN + 1);
        };
        let cmd = Command(c);
        // How much of the payload to read: text commands only need the kept text (plus query
        // attributes, which come first); COM_STMT_SEND_LONG_DATA only its ids.
        let cap = match cmd {
            Command::QUERY if self.query_attrs != Some(false) => limits.max_message_len,
            Command::QUERY | Command::STMT_PREPARE => {
                (limits.max_statement_len + 1).min(limits.max_message_len)
            }
            Command::STMT_SEND_LONG_DATA => 7,
            _ => limits.max_message_len,
        };
        let (body, cut) = match whole(h, rest, cap) {
            Ok(x) => x,
            Err(n) => return Step::Need(n),
        };
        if let Some(p) = self.pending.as_ref() {
            if p.maybe_done {
                // Mid-stream, DEPRECATE_EOF unknown: the prepare response was complete.
                self.deprecate_eof = Some(true);
                self.finish(out);
            } else if p.started {
                // The server had begun answering and the client moved on: it saw the end of
                // that response, which we missed. Give the request up rather than pair the
                // next response with it. (A response not yet begun is a pipelined request:
                // the new one waits behind it.)
                self.flush_pending(out);
            }
        }
        if cut && cmd != Command::STMT_SEND_LONG_DATA {
            // Over `max_message_len` (or, for text, `max_statement_len`): the head is parsed,
            // the rest skipped, the request flagged.
            out.push(DbEvent::Anomaly {
                dir: Direction::ToServer,
                kind: anomaly::OVER_LIMIT,
            });
        }
        if !cmd.is_known() {
            out.push(DbEvent::Anomaly {
                dir: Direction::ToServer,
                kind: anomaly::UNKNOWN_COMMAND,
            });
        }
        let mut req = self.new_request(ts, cmd.op(), h.total());
        let args = body.get(1..).unwrap_or_default();
        let mut kind = Kind::Generic;
        let mut effect = Effect::None;
        let mut text_cut = None;
        let mut prepare_sql = None;
        let mut split_ranges = None;
        let mut exec_stmt = None;
        match cmd {
            Command::QUERY => {
                let text = self.query_text(args, &mut req, limits, out);
                let (sql, tcut) = self.text(text, cut, limits);
                if tcut {
                    text_cut = Some((
                        (args.len() - text.len() + 1) as u64,
                        limits.max_statement_len.min(text.len()) as u64,
                    ));
                    if !cut {
                        out.push(DbEvent::Anomaly {
                            dir: Direction::ToServer,
                            kind: anomaly::OVER_LIMIT,
                        });
                    }
                }
                effect = set_charset_effect(&sql);
                if self.caps.has(Caps::MULTI_STATEMENTS) && !tcut && sql.contains(';') {
                    split_ranges = split::split(&sql, MAX_SPLIT_STATEMENTS).filter(|r| r.len() > 1);
                }
                req.sql = Some(sql);
            }
            Command::STMT_PREPARE => {
                let (sql, tcut) = self.text(args, cut, limits);
                if tcut {
                    text_cut = Some((1, limits.max_statement_len.min(args.len()) as u64));
                }
                prepare_sql = Some(sql.clone());
                req.sql = Some(sql);
                kind = Kind::Prepare;
            }
            Command::INIT_DB | Command::CREATE_DB | Command::DROP_DB => {
                let name = self.charset.decode(args);
                if cmd == Command::INIT_DB {
                    effect = Effect::Database(name.clone());
                }
                req.sql = Some(name);
            }
            Command::FIELD_LIST => {
                let table = Reader::new(args).nul_or_rest();
                req.sql = Some(self.charset.decode(table));
                kind = Kind::FieldList;
            }
            Command::STATISTICS => kind = Kind::Statistics,
            Command::QUIT => {
                if let Ok(p) = transition(self.phase, Event::Quit) {
                    self.phase = p;
                }
                self.emit_lone(req, out);
                return self.after(Direction::ToServer, h, rest, body.len(), false);
            }
            Command::STMT_CLOSE | Command::STMT_SEND_LONG_DATA => {
                let mut r = Reader::new(args);
                let id = r.u32();
                req.stmt_id = id.map(u64::from);
                if let Some(id) = id {
                    if cmd == Command::STMT_CLOSE {
                        if let Some(s) = self.stmts.get_mut(id) {
                            req.sql = s.sql.clone();
                        }
                        self.stmts.remove(id);
                    } else if let (Some(s), Some(param)) = (self.stmts.get_mut(id), r.u16()) {
                        req.sql = s.sql.clone();
                        let n = (h.len as u64).saturating_sub(7);
                        if let Some(e) = s.long_data.iter_mut().find(|(p, _)| *p == param) {
                            e.1 += n;
                        } else if s.long_data.len() < MAX_LONG_DATA_PARAMS {
                            s.long_data.push((param, n));
                        }
                        req.attributes.push(("param_id".into(), param.to_string()));
                    }
                }
                self.emit_lone(req, out);
                return self.after(Direction::ToServer, h, rest, body.len(), false);
            }
            Command::STMT_EXECUTE => {
                exec_stmt = self.execute(args, cut, &mut req, limits, out);
            }
            Command::STMT_RESET | Command::STMT_FETCH | Command::STMT_BULK_EXECUTE => {
                if let Some(id) = Reader::new(args).u32() {
                    req.stmt_id = Some(id as u64);
                    if let Some(s) = self.stmts.get_mut(id) {
                        req.sql = s.sql.clone();
                        if cmd == Command::STMT_RESET {
                            s.long_data.clear();
                        }
                    }
                }
                if cmd == Command::STMT_FETCH {
                    kind = Kind::Fetch;
                }
            }
            Command::CHANGE_USER => {
                match messages::change_user(args, self.caps, limits.max_attributes) {
                    Some(info) => {
                        let mut login = self.login_from(&info, limits);
                        if info.collation != 0 {
                            effect = Effect::Charset(charset::from_collation(info.collation));
                        }
                        if login.auth_method.is_none() {
                            login.auth_method = self.server_plugin.clone();
                        }
                        req.login = Some(Box::new(login));
                    }
                    None => out.push(DbEvent::Anomaly {
                        dir: Direction::ToServer,
                        kind: anomaly::MALFORMED,
                    }),
                }
                kind = Kind::Auth;
            }
            Command::RESET_CONNECTION => effect = Effect::Reset,
            Command::SET_OPTION => {
                // 0 = MYSQL_OPTION_MULTI_STATEMENTS_ON, 1 = …_OFF.
                if let Some(o) = Reader::new(args).u16() {
                    effect = Effect::MultiStatements(o == 0);
                    req.attributes.push(("option".into(), o.to_string()));
                }
            }
            Command::PROCESS_KILL => {
                if let Some(id) = Reader::new(args).u32() {
                    req.attributes
                        .push(("connection_id".into(), id.to_string()));
                }
            }
            Command::BINLOG_DUMP | Command::BINLOG_DUMP_GTID => kind = Kind::Stream,
            _ => {}
        }
        if let Some(p) = self.pend(req, kind, out) {
            p.effect = effect;
            p.text_cut = text_cut;
            p.req_payload = h.len as u64;
            p.prepare_sql = prepare_sql;
            p.split = split_ranges;
            p.stmt_id = exec_stmt;
        }
        self.after(Direction::ToServer, h, rest, body.len(), true)
    }

    /// Decode statement text, cut at `max_statement_len`; returns (text, cut).
    fn text(&self, raw: &[u8], payload_cut: bool, limits: &Limits) -> (String, bool) {
        let keep = raw.get(..limits.max_statement_len).unwrap_or(raw);
        let mut s = self.charset.decode(keep);
        let cut = keep.len() < raw.len() || payload_cut;
        let cut2 =
            dbtap_core::text::truncate_utf8(&mut s, limits.max_statement_len.saturating_mul(4));
        (s, cut || cut2)
    }

    /// COM_QUERY arguments: query attributes (CLIENT_QUERY_ATTRIBUTES) into `req.attributes`,
    /// and the text.
    fn query_text<'a>(
        &mut self,
        args: &'a [u8],
        req: &mut Request,
        limits: &Limits,
        out: &mut Vec<DbEvent>,
    ) -> &'a [u8] {
        let try_attrs = match self.query_attrs {
            Some(q) => q,
            // Unknown (mid-stream): SQL text never starts with a control byte, attributes
            // start with parameter_count then parameter_set_count = 1.
            None => args.get(1) == Some(&1) && args.first().is_some_and(|&b| b < 0x20),
        };
        if !try_attrs {
            return args;
        }
        let mut r = Reader::new(args);
        match self.read_query_attrs(&mut r, req, limits) {
            Some(()) => {
                if self.query_attrs.is_none() {
                    self.query_attrs = Some(true);
                }
                r.rest()
            }
            None => {
                if self.query_attrs == Some(true) {
                    out.push(DbEvent::Anomaly {
                        dir: Direction::ToServer,
                        kind: anomaly::MALFORMED,
                    });
                }
                req.attributes.clear();
                args
            }
        }
    }

    fn read_query_attrs(
        &self,
        r: &mut Reader<'_>,
        req: &mut Request,
        limits: &Limits,
    ) -> Option<()> {
        let count = usize::try_from(r.lenenc()?).ok()?;
        let _sets = r.lenenc()?;
        if count == 0 {
            return Some(());
        }
        let bitmap = r.take(count.div_ceil(8))?;
        if r.u8()? != 1 {
            return None;
        }
        let mut types: Vec<(ParamType, &[u8])> =
            Vec::with_capacity(count.min(limits.max_attributes));
        for _ in 0..count {
            let t = messages::param_type(r)?;
            let name = r.lenenc_bytes()?;
            if types.len() < limits.max_attributes {
                types.push((t, name));
            }
        }
        for i in 0..count {
            let null = bitmap.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0);
            let (ty, name) = match types.get(i) {
                Some(&((ty, uns), name)) => ((ty, uns), Some(name)),
                None => ((FieldType::NULL, false), None),
            };
            let value = if null {
                "NULL".to_string()
            } else {
                let p = decode_value(r, ty.0, ty.1, self.charset, limits.max_attribute_len)?;
                value_text(&p.value)
            };
            if let Some(name) = name {
                req.attributes.push((
                    bounded(self.charset.decode(name), limits.max_attribute_len),
                    bounded(value, limits.max_attribute_len),
                ));
            }
        }
        Some(())
    }

    /// COM_STMT_EXECUTE arguments (after the command byte). Returns the statement id.
    fn execute(
        &mut self,
        args: &[u8],
        cut: bool,
        req: &mut Request,
        limits: &Limits,
        out: &mut Vec<DbEvent>,
    ) -> Option<u32> {
        let mut r = Reader::new(args);
        let mut id = r.u32()?;
        // MariaDB 10.2+: statement id -1 means "the statement prepared last". When that
        // prepare is still waiting for its answer (pipelined in the same write), its text is
        // known but not its id or parameter count yet.
        let mut pipelined = None;
        if id == u32::MAX {
            pipelined = self
                .newest_mut()
                .filter(|p| p.kind == Kind::Prepare)
                .and_then(|p| p.prepare_sql.clone());
            if pipelined.is_none() {
                id = self.last_prepared.unwrap_or(id);
            }
        }
        req.stmt_id = Some(id as u64);
        let flags = r.u8()?;
        let _iterations = r.u32()?;
        let qa = self.query_attrs == Some(true);
        let charset = self.charset;
        let stmt = if pipelined.is_some() {
            None
        } else {
            self.stmts.get_mut(id)
        };
        let Some(stmt) = stmt else {
            if pipelined.is_some() {
                req.sql = pipelined;
            } else {
                out.push(DbEvent::Anomaly {
                    dir: Direction::ToServer,
                    kind: anomaly::UNKNOWN_STATEMENT,
                });
            }
            let inferred = if qa {
                None
            } else {
                infer_params(r.peek_rest(), charset, limits)
            };
            match inferred {
                Some((types, params)) => {
                    let n = types.len() as u16;
                    let stmt = Stmt {
                        sql: None,
                        params: n,
                        types: Some(types),
                        ..Default::default()
                    };
                    if id != u32::MAX && self.stmts.insert(id, stmt, limits.max_prepared_statements)
                    {
                        out.push(DbEvent::Anomaly {
                            dir: Direction::ToServer,
                            kind: anomaly::STMT_CACHE_EVICTED,
                        });
                    }
                    req.params = Some(params);
                }
                None => req.completeness = Completeness::Partial { lost_bytes: 0 },
            }
            return Some(id);
        };
        req.sql = stmt.sql.clone();
        let mut count = stmt.params as usize;
        // PARAMETER_COUNT_AVAILABLE (0x08): with query attributes, a parameter_count follows.
        if qa && (count > 0 || flags & 0x08 != 0) {
            count = usize::try_from(r.lenenc()?).ok()?;
        }
        if count == 0 {
            req.params = Some(Vec::new());
            stmt.long_data.clear();
            return Some(id);
        }
        let Some(bitmap) = r.take(count.div_ceil(8)) else {
            req.completeness = Completeness::Partial { lost_bytes: 0 };
            return Some(id);
        };
        let bound = r.u8().unwrap_or(0);
        let mut names: Vec<Option<&[u8]>> = Vec::new();
        if bound == 1 {
            let mut types = Vec::with_capacity(count.min(limits.max_params + 1));
            for _ in 0..count {
                let Some(t) = messages::param_type(&mut r) else {
                    req.completeness = Completeness::Partial { lost_bytes: 0 };
                    return Some(id);
                };
                let name = if qa { r.lenenc_bytes() } else { None };
                if types.len() <= MAX_INFERRED_PARAMS.max(limits.max_params) {
                    types.push(t);
                    names.push(name);
                }
            }
            stmt.types = Some(types);
        }
        let Some(types) = stmt.types.as_ref() else {
            // Types were bound by an execute we did not see.
            req.completeness = Completeness::Partial { lost_bytes: 0 };
            return Some(id);
        };
        let num_params = stmt.params as usize;
        let mut params = Vec::with_capacity(count.min(limits.max_params));
        let mut broken = false;
        for i in 0..count {
            let null = bitmap.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0);
            let p = if null {
                Param {
                    type_name: type_name_of(types.get(i)),
                    value: ParamValue::Null,
                    truncated: false,
                }
            } else if let Some(bytes) = stmt.long_data_for(i) {
                Param {
                    type_name: type_name_of(types.get(i)),
                    value: ParamValue::LongData { bytes },
                    truncated: false,
                }
            } else if broken {
                Param {
                    type_name: type_name_of(types.get(i)),
                    value: ParamValue::Undecodable,
                    truncated: cut,
                }
            } else {
                let (ty, uns) = types.get(i).copied().unwrap_or((FieldType(0xf3), false));
                match decode_value(&mut r, ty, uns, charset, limits.max_param_len) {
                    Some(p) => p,
                    None => {
                        broken = true;
                        if !cut {
                            out.push(DbEvent::Anomaly {
                                dir: Direction::ToServer,
                                kind: anomaly::MALFORMED,
                            });
                        }
                        Param {
                            type_name: type_name_of(types.get(i)),
                            value: ParamValue::Undecodable,
                            truncated: cut,
                        }
                    }
                }
            };
            if i >= num_params {
                // Beyond the prepared parameters: named query attributes.
                if let Some(Some(name)) = names.get(i) {
                    if req.attributes.len() < limits.max_attributes {
                        req.attributes.push((
                            bounded(charset.decode(name), limits.max_attribute_len),
                            bounded(value_text(&p.value), limits.max_attribute_len),
                        ));
                    }
                }
                continue;
            }
            if params.len() < limits.max_params {
                params.push(p);
            } else if params.len() == limits.max_params && i == limits.max_params {
                out.push(DbEvent::Anomaly {
                    dir: Direction::ToServer,
                    kind: anomaly::OVER_LIMIT,
                });
            }
        }
        stmt.long_data.clear();
        if broken || cut {
            req.completeness = if cut {
                req.completeness
            } else {
                Completeness::Partial { lost_bytes: 0 }
            };
        }
        req.params = Some(params);
        Some(id)
    }
}

fn type_name_of(t: Option<&ParamType>) -> std::borrow::Cow<'static, str> {
    match t {
        Some(&(ty, uns)) => ty.type_name(uns),
        None => "unknown".into(),
    }
}

/// A parameter value as attribute text.
fn value_text(v: &ParamValue) -> String {
    match v {
        ParamValue::Null => "NULL".into(),
        ParamValue::Bool(b) => b.to_string(),
        ParamValue::Int(i) => i.to_string(),
        ParamValue::UInt(u) => u.to_string(),
        ParamValue::Float(f) => f.to_string(),
        ParamValue::Text(t) => t.clone(),
        ParamValue::Bytes(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
        ParamValue::LongData { bytes } => format!("<{bytes} bytes>"),
        ParamValue::Undecodable => "<undecodable>".into(),
    }
}

fn bounded(mut s: String, max: usize) -> String {
    dbtap_core::text::truncate_utf8(&mut s, max);
    s
}

/// Mid-stream execute without its prepare: find the parameter count from the layout (null
/// bitmap, new-params-bound flag 1, types, values consuming the body exactly). Only when
/// exactly one count fits.
fn infer_params(
    rest: &[u8],
    charset: Charset,
    limits: &Limits,
) -> Option<(Vec<ParamType>, Vec<Param>)> {
    if rest.is_empty() {
        return Some((Vec::new(), Vec::new()));
    }
    let mut found = None;
    for n in 1..=MAX_INFERRED_PARAMS.min(rest.len()) {
        let mut r = Reader::new(rest);
        let Some(bitmap) = r.take(n.div_ceil(8)) else {
            break;
        };
        // Bits beyond n in the last bitmap byte are zero.
        if n % 8 != 0 && bitmap.last().is_some_and(|b| b >> (n % 8) != 0) {
            continue;
        }
        if r.u8() != Some(1) {
            continue;
        }
        let mut types = Vec::with_capacity(n);
        let mut ok = true;
        for _ in 0..n {
            match messages::param_type(&mut r) {
                Some((t, u))
                    if t.name().is_some() && t != FieldType::NULL || t == FieldType::NULL =>
                {
                    let _ = u;
                    types.push((t, u));
                }
                _ => {
                    ok = false;
                    break;
                }
            }
        }
        if !ok {
            continue;
        }
        let mut params = Vec::with_capacity(n.min(limits.max_params));
        for (i, &(t, u)) in types.iter().enumerate() {
            let null = bitmap.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0);
            let p = if null {
                Some(Param {
                    type_name: t.type_name(u),
                    value: ParamValue::Null,
                    truncated: false,
                })
            } else {
                decode_value(&mut r, t, u, charset, limits.max_param_len)
            };
            match p {
                Some(p) if params.len() < limits.max_params => params.push(p),
                Some(_) => {}
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if ok && r.is_empty() {
            if found.is_some() {
                return None; // ambiguous
            }
            found = Some((types, params));
        }
    }
    found
}

/// `SET NAMES x`, `SET CHARACTER SET x`, `SET CHARSET x`, `SET [SESSION|@@session.|@@]
/// character_set_client = x`: the charset the client switches to, applied when the server says OK.
fn set_charset_effect(sql: &str) -> Effect {
    let t = sql.trim_start();
    let Some(head) = t.get(..3) else {
        return Effect::None;
    };
    if !head.eq_ignore_ascii_case("set") {
        return Effect::None;
    }
    let words: Vec<&str> = t
        .get(3..)
        .unwrap_or_default()
        .split(|c: char| c.is_whitespace() || c == '=' || c == ';' || c == ',')
        .filter(|w| !w.is_empty())
        .take(4)
        .collect();
    let lower: Vec<String> = words.iter().map(|w| w.to_ascii_lowercase()).collect();
    let name = match lower
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["names", ..] | ["charset", ..] => words.get(1),
        ["character", "set", ..] => words.get(2),
        ["session", v, ..] | [v, ..]
            if matches!(
                v.trim_start_matches("@@session.").trim_start_matches("@@"),
                "character_set_client"
            ) =>
        {
            if lower.first().map(String::as_str) == Some("session") {
                words.get(2)
            } else {
                words.get(1)
            }
        }
        _ => None,
    };
    name.map(|n| n.trim_matches(|c| c == '\'' || c == '"' || c == '`'))
        .and_then(charset::from_name)
        .map(Effect::Charset)
        .unwrap_or(Effect::None)
}

// ─────────────────────────────────────── server side ───────────────────────────────────────

impl MysqlParser {
    fn server_packet(
        &mut self,
        clock: Clock<'_>,
        limits: &Limits,
        h: Header,
        rest: &[u8],
        pos: usize,
        out: &mut Vec<DbEvent>,
    ) -> Step {
        match self.phase {
            Phase::AwaitGreeting => self.greeting(clock.at(pos), limits, h, rest, out),
            Phase::Auth => self.auth_packet(clock, limits, h, rest, pos, out),
            Phase::Command => self.response_packet(clock, limits, h, rest, pos, out),
            Phase::AwaitHandshake => {
                // The server only speaks after the client's handshake response; an ERR here
                // (e.g. a timeout) ends the connection.
                if rest.get(HEADER_LEN) == Some(&header::ERR) {
                    if let Ok(p) = transition(self.phase, Event::Refused) {
                        self.phase = p;
                    }
                } else {
                    out.push(DbEvent::Anomaly {
                        dir: Direction::ToClient,
                        kind: anomaly::UNEXPECTED_RESPONSE,
                    });
                }
                self.skip_server(h, rest, false)
            }
            Phase::Closed | Phase::Encrypted => self.skip_server(h, rest, false),
        }
    }

    fn skip_server(&mut self, h: Header, rest: &[u8], counts: bool) -> Step {
        self.note_cont(Direction::ToClient, h, counts);
        if rest.len() >= h.total() {
            Step::Next(h.total())
        } else {
            Step::Skip {
                consumed: HEADER_LEN,
                skip: h.len as u64,
            }
        }
    }

    fn greeting(
        &mut self,
        ts: Timestamp,
        limits: &Limits,
        h: Header,
        rest: &[u8],
        out: &mut Vec<DbEvent>,
    ) -> Step {
        let first = rest.get(HEADER_LEN).copied();
        if h.seq != 0 || !matches!(first, Some(9) | Some(10) | Some(header::ERR) | None) {
            // Not a greeting. A plausible response means the capture began after the
            // handshake (no SYN seen, or the stream layer did not say): carry on as a mid-stream
            // pick-up. Anything else is not MySQL.
            return match server_candidate(rest) {
                Candidate::Yes => {
                    self.phase = Phase::Command;
                    self.caps = Caps(MIDSTREAM_CAPS);
                    out.push(DbEvent::Anomaly {
                        dir: Direction::ToClient,
                        kind: anomaly::UNEXPECTED_RESPONSE,
                    });
                    self.skip_server(h, rest, false)
                }
                Candidate::NeedMore(n) if rest.len() < n => Step::Need(n),
                _ => Step::Abandon(Abandon::NotThisProtocol),
            };
        }
        let body = match whole(h, rest, limits.max_message_len.min(4096)) {
            Ok((b, _)) => b,
            Err(n) => return Step::Need(n),
        };
        if first == Some(header::ERR) {
            // Refused before the handshake (1130 host not allowed, 1040 too many connections):
            // a login attempt that failed, without a user.
            let Some(e) = messages::err_packet(body) else {
                return Step::Abandon(Abandon::NotThisProtocol);
            };
            let mut req = self.new_request(ts, Op::LOGIN, 0);
            req.login = Some(Box::new(Login::default()));
            req.tx = self.next_tx();
            let resp = Response {
                tx: req.tx,
                ts_end: ts,
                status: Status::Error,
                error: Some(self.db_error(&e)),
                bytes: h.total() as u64,
                ..Default::default()
            };
            out.push(DbEvent::Request(Box::new(req)));
            out.push(DbEvent::Response(Box::new(resp)));
            self.phase = transition(self.phase, Event::Refused).unwrap_or(Phase::Closed);
            return self.skip_server(h, rest, false);
        }
        let Some(g) = messages::greeting(body) else {
            return Step::Abandon(Abandon::NotThisProtocol);
        };
        if !g.version.iter().all(|&b| (0x20..0x7f).contains(&b)) || g.version.is_empty() {
            return Step::Abandon(Abandon::NotThisProtocol);
        }
        let mut version = String::from_utf8_lossy(g.version).into_owned();
        // MariaDB 10+ prefixes "5.5.5-" so that old clients accept it; report the real version.
        if version.starts_with("5.5.5-") && version.contains("MariaDB") {
            version.drain(..6);
        }
        out.push(DbEvent::ServerInfo {
            version: Some(version),
            connection_id: Some(g.connection_id as u64),
        });
        self.server_caps = g.caps;
        if g.protocol == 9 {
            // Pre-4.1 server: no 4.1 capabilities anywhere.
            self.server_caps = Caps(Caps::LONG_PASSWORD);
        }
        self.server_plugin = g
            .auth_plugin
            .filter(|p| !p.is_empty())
            .map(|p| String::from_utf8_lossy(p).into_owned());
        if g.collation != 0 {
            self.charset = charset::from_collation(g.collation as u16);
        }
        self.phase = transition(self.phase, Event::Greeting).unwrap_or(Phase::AwaitHandshake);
        self.skip_server(h, rest, false)
    }

    /// A server packet of an auth exchange (login or COM_CHANGE_USER).
    fn auth_packet(
        &mut self,
        clock: Clock<'_>,
        limits: &Limits,
        h: Header,
        rest: &[u8],
        pos: usize,
        out: &mut Vec<DbEvent>,
    ) -> Step {
        let Some(&b) = rest.get(HEADER_LEN) else {
            if h.len == 0 {
                return self.skip_server(h, rest, false);
            }
            return Step::Need(HEADER_LEN + 1);
        };
        let Some(p) = self.pending.as_mut() else {
            out.push(DbEvent::Anomaly {
                dir: Direction::ToClient,
                kind: anomaly::UNEXPECTED_RESPONSE,
            });
            return self.skip_server(h, rest, false);
        };
        if b == header::AUTH_MORE_DATA || !matches!(b, header::OK | header::ERR | header::EOF) {
            // AuthMoreData (fast-auth result, RSA public key, …) or plugin data: skipped.
            p.started = true;
            p.cur.bytes += h.total() as u64;
            if b != header::AUTH_MORE_DATA {
                out.push(DbEvent::Anomaly {
                    dir: Direction::ToClient,
                    kind: anomaly::UNEXPECTED_RESPONSE,
                });
            }
            return self.skip_server(h, rest, true);
        }
        let body = match whole(h, rest, limits.max_message_len.min(64 * 1024)) {
            Ok((body, _)) => body,
            Err(n) => return Step::Need(n),
        };
        p.started = true;
        p.cur.bytes += h.total() as u64;
        let end_ts = clock.at(pos + h.total().saturating_sub(1));
        match b {
            header::EOF => {
                // AuthSwitchRequest: the client answers with data for the named plugin.
                let plugin = messages::auth_switch_plugin(body);
                p.switched_plugin = Some(String::from_utf8_lossy(plugin).into_owned());
                self.skip_server(h, rest, true)
            }
            header::OK => {
                let ok = messages::ok_packet(body, self.caps);
                p.cur.status = Status::Ok;
                p.cur.ts_end = end_ts;
                if let Some(ok) = ok {
                    p.cur.warnings = Some(ok.warnings as u64);
                }
                let login = self.phase == Phase::Auth;
                let mut pp = self.pending.take();
                if let Some(p) = pp.as_mut() {
                    self.push_outcome(p);
                }
                self.pending = pp;
                self.finish(out);
                if login {
                    self.phase = transition(self.phase, Event::AuthOk).unwrap_or(Phase::Command);
                    if self.compress_negotiated {
                        // "the compression is switched on after the OK of the handshake".
                        for d in &mut self.dirs {
                            d.comp.get_or_insert_with(Default::default);
                        }
                        self.note_cont(Direction::ToClient, h, false);
                        return Step::Switch(h.total());
                    }
                }
                self.skip_server(h, rest, false)
            }
            _ => {
                let e = messages::err_packet(body);
                p.cur.status = Status::Error;
                p.cur.ts_end = end_ts;
                let err = e.map(|e| self.db_error(&e));
                if let Some(p) = self.pending.as_mut() {
                    p.cur.error = err;
                }
                let login = self.phase == Phase::Auth;
                let mut pp = self.pending.take();
                if let Some(p) = pp.as_mut() {
                    self.push_outcome(p);
                }
                self.pending = pp;
                self.finish(out);
                if login {
                    self.phase = transition(self.phase, Event::AuthErr).unwrap_or(Phase::Closed);
                }
                self.skip_server(h, rest, false)
            }
        }
    }

    fn db_error(&self, e: &messages::ErrPacket<'_>) -> DbError {
        DbError {
            code: ErrorCode::Num(e.code as i64),
            sqlstate: e.sqlstate.map(|s| String::from_utf8_lossy(s).into_owned()),
            // Error messages are in character_set_results; UTF-8 with escapes is the safe reading.
            message: dbtap_core::text::decode_utf8(e.message),
        }
    }

    /// A command-phase response packet.
    fn response_packet(
        &mut self,
        clock: Clock<'_>,
        limits: &Limits,
        h: Header,
        rest: &[u8],
        pos: usize,
        out: &mut Vec<DbEvent>,
    ) -> Step {
        let Some(p) = self.pending.as_ref() else {
            out.push(DbEvent::Anomaly {
                dir: Direction::ToClient,
                kind: anomaly::UNEXPECTED_RESPONSE,
            });
            return self.skip_server(h, rest, false);
        };
        if p.kind == Kind::Auth {
            return self.auth_packet(clock, limits, h, rest, pos, out);
        }
        let state = p.state;
        let kind = p.kind;
        let b = match rest.get(HEADER_LEN) {
            Some(&b) => b,
            None if h.len == 0 => 0,
            None => return Step::Need(HEADER_LEN + 1),
        };
        let end_ts = clock.at(pos + h.total().saturating_sub(1));
        let cap = limits.max_message_len.min(64 * 1024);
        let deprecate = self.deprecate_eof;
        // A terminator: EOF (0xFE, shorter than 9 bytes) or, with DEPRECATE_EOF, an OK packet
        // with a 0xFE header (any length below 16 MiB: a row starting with 0xFE would be a
        // length-encoded string of ≥ 2^24 bytes, which needs a multi-packet payload).
        // An EOF packet is 5 bytes (4.1: header, warnings, status) or 1 (older); an OK packet
        // with a 0xFE header is at least 7 (header, two lenenc ints, status, warnings).
        let is_eof = b == header::EOF && (h.len == 5 || h.len == 1);
        let is_term = b == header::EOF && h.len < frame::MAX_PACKET && h.len > 0;
        let is_err = b == header::ERR && h.len > 0;
        if let Some(p) = self.pending.as_mut() {
            p.started = true;
        }
        macro_rules! whole_body {
            () => {
                match whole(h, rest, cap) {
                    Ok((body, _)) => body,
                    Err(n) => return Step::Need(n),
                }
            };
        }
        macro_rules! skip_def {
            () => {{
                if let Some(p) = self.pending.as_mut() {
                    p.cur.bytes += h.total() as u64;
                }
                return self.skip_server(h, rest, true);
            }};
        }
        if is_err
            && !matches!(
                state,
                RState::ColumnDefs { .. } | RState::PrepParams { .. } | RState::PrepCols { .. }
            )
        {
            let body = whole_body!();
            let e = messages::err_packet(body).map(|e| self.db_error(&e));
            if let Some(p) = self.pending.as_mut() {
                p.cur.bytes += h.total() as u64;
                p.cur.status = Status::Error;
                p.cur.error = e;
                p.cur.ts_end = end_ts;
            }
            self.end_result(false, out);
            return self.skip_server(h, rest, false);
        }
        match state {
            RState::First | RState::InfileData => match kind {
                Kind::Statistics => {
                    if let Some(p) = self.pending.as_mut() {
                        p.cur.bytes += h.total() as u64;
                        p.cur.status = Status::Ok;
                        p.cur.ts_end = end_ts;
                    }
                    self.end_result(false, out);
                    self.skip_server(h, rest, false)
                }
                Kind::FieldList | Kind::Stream => {
                    // Ends with EOF, or an OK with a 0xFE header under DEPRECATE_EOF; column
                    // definitions start with the lenenc catalog "def", binlog events with 0x00.
                    if is_term {
                        let _ = whole_body!();
                        if let Some(p) = self.pending.as_mut() {
                            p.cur.bytes += h.total() as u64;
                            p.cur.status = Status::Ok;
                            p.cur.ts_end = end_ts;
                        }
                        self.end_result(false, out);
                        return self.skip_server(h, rest, false);
                    }
                    skip_def!()
                }
                Kind::Prepare if b == header::OK => {
                    let body = whole_body!();
                    let Some(ok) = messages::prepare_ok(body) else {
                        out.push(DbEvent::Anomaly {
                            dir: Direction::ToClient,
                            kind: anomaly::MALFORMED,
                        });
                        skip_def!()
                    };
                    let sql = self.pending.as_mut().and_then(|p| p.prepare_sql.take());
                    self.last_prepared = Some(ok.stmt_id);
                    let stmt = Stmt {
                        sql,
                        params: ok.params,
                        ..Default::default()
                    };
                    if self
                        .stmts
                        .insert(ok.stmt_id, stmt, limits.max_prepared_statements)
                    {
                        out.push(DbEvent::Anomaly {
                            dir: Direction::ToClient,
                            kind: anomaly::STMT_CACHE_EVICTED,
                        });
                    }
                    let deprecate = self.deprecate_eof;
                    let Some(p) = self.pending.as_mut() else {
                        return self.skip_server(h, rest, false);
                    };
                    p.cur.bytes += h.total() as u64;
                    p.cur.status = Status::Ok;
                    p.cur.warnings = Some(ok.warnings as u64);
                    p.cur.ts_end = end_ts;
                    p.resp.stmt_id = Some(ok.stmt_id as u64);
                    p.resp.param_count = Some(ok.params as u64);
                    p.req.stmt_id = Some(ok.stmt_id as u64);
                    let (params, cols) = if ok.metadata_follows {
                        (ok.params as u64, ok.columns as u64)
                    } else {
                        (0, 0)
                    };
                    if params == 0 && cols == 0 {
                        self.end_result(false, out);
                        return self.skip_server(h, rest, false);
                    }
                    p.state = if params > 0 {
                        RState::PrepParams { left: params, cols }
                    } else {
                        RState::PrepCols { left: cols }
                    };
                    let _ = deprecate;
                    self.skip_server(h, rest, false)
                }
                // A column count is never 0, so 0x00 is an OK (3 bytes minimum before 4.1).
                _ if b == header::OK && h.len >= 3 => {
                    let body = whole_body!();
                    let ok = messages::ok_packet(body, self.caps);
                    let more = self.ok_outcome(ok.as_ref(), h, end_ts, true, out);
                    self.end_result(more, out);
                    self.skip_server(h, rest, false)
                }
                _ if b == header::LOCAL_INFILE => {
                    let body = whole_body!();
                    let name = self.charset.decode(body.get(1..).unwrap_or_default());
                    if let Some(p) = self.pending.as_mut() {
                        p.cur.bytes += h.total() as u64;
                        if p.req.attributes.len() < limits.max_attributes {
                            p.req.attributes.push((
                                "local_infile".into(),
                                bounded(name, limits.max_attribute_len),
                            ));
                        }
                        p.state = RState::InfileData;
                    }
                    self.skip_server(h, rest, false)
                }
                _ if is_eof => {
                    let body = whole_body!();
                    let st = messages::eof_status(body);
                    if let Some(p) = self.pending.as_mut() {
                        p.cur.bytes += h.total() as u64;
                        p.cur.status = Status::Ok;
                        p.cur.ts_end = end_ts;
                    }
                    self.end_result(st & status::MORE_RESULTS_EXISTS != 0, out);
                    self.skip_server(h, rest, false)
                }
                _ => {
                    // Column count, optionally followed by metadata_follows (MySQL
                    // CLIENT_OPTIONAL_RESULTSET_METADATA, MariaDB CACHE_METADATA).
                    let body = whole_body!();
                    let mut r = Reader::new(body);
                    let count = r.lenenc().filter(|&c| c > 0);
                    let Some(count) = count else {
                        out.push(DbEvent::Anomaly {
                            dir: Direction::ToClient,
                            kind: anomaly::MALFORMED,
                        });
                        skip_def!()
                    };
                    let metadata = r.u8().is_none_or(|m| m != 0);
                    if let Some(p) = self.pending.as_mut() {
                        p.cur.bytes += h.total() as u64;
                        p.cur.rows = Some(p.cur.rows.unwrap_or(0));
                        p.state = if metadata {
                            RState::ColumnDefs { left: count }
                        } else {
                            RState::Rows
                        };
                    }
                    self.skip_server(h, rest, false)
                }
            },
            RState::ColumnDefs { left } => {
                if let Some(p) = self.pending.as_mut() {
                    p.state = if left <= 1 {
                        RState::ColumnsEnd
                    } else {
                        RState::ColumnDefs { left: left - 1 }
                    };
                }
                skip_def!()
            }
            RState::PrepParams { left, cols } => {
                if let Some(p) = self.pending.as_mut() {
                    p.state = if left > 1 {
                        RState::PrepParams {
                            left: left - 1,
                            cols,
                        }
                    } else if deprecate == Some(true) {
                        if cols > 0 {
                            RState::PrepCols { left: cols }
                        } else {
                            RState::PrepColsEnd
                        }
                    } else {
                        p.maybe_done = cols == 0 && deprecate.is_none();
                        RState::PrepParamsEnd { cols }
                    };
                }
                let step = self.skip_server(h, rest, true);
                if let Some(p) = self.pending.as_mut() {
                    p.cur.bytes += h.total() as u64;
                    p.cur.ts_end = end_ts;
                    if p.state == RState::PrepColsEnd {
                        self.end_result(false, out);
                    }
                }
                step
            }
            RState::PrepCols { left } => {
                if let Some(p) = self.pending.as_mut() {
                    p.cur.bytes += h.total() as u64;
                    p.cur.ts_end = end_ts;
                    if left > 1 {
                        p.state = RState::PrepCols { left: left - 1 };
                    } else if deprecate == Some(true) {
                        let step = self.skip_server(h, rest, true);
                        self.end_result(false, out);
                        return step;
                    } else {
                        p.maybe_done = deprecate.is_none();
                        p.state = RState::PrepColsEnd;
                    }
                }
                self.skip_server(h, rest, true)
            }
            RState::PrepParamsEnd { .. } | RState::PrepColsEnd | RState::ColumnsEnd => {
                if is_eof && deprecate != Some(true) {
                    let body = whole_body!();
                    let st = messages::eof_status(body);
                    self.deprecate_eof = Some(false);
                    let Some(p) = self.pending.as_mut() else {
                        return self.skip_server(h, rest, false);
                    };
                    p.maybe_done = false;
                    p.cur.bytes += h.total() as u64;
                    p.cur.ts_end = end_ts;
                    match state {
                        RState::PrepParamsEnd { cols } if cols > 0 => {
                            p.state = RState::PrepCols { left: cols }
                        }
                        RState::ColumnsEnd if st & status::CURSOR_EXISTS == 0 => {
                            p.state = RState::Rows
                        }
                        RState::ColumnsEnd => {
                            // A cursor was opened: rows come with COM_STMT_FETCH.
                            p.cur.status = Status::Ok;
                            self.end_result(false, out);
                        }
                        _ => self.end_result(false, out),
                    }
                    return self.skip_server(h, rest, false);
                }
                // No EOF: the session uses DEPRECATE_EOF.
                if self.deprecate_eof.is_none() {
                    self.deprecate_eof = Some(true);
                }
                match state {
                    RState::ColumnsEnd => {
                        if let Some(p) = self.pending.as_mut() {
                            p.state = RState::Rows;
                        }
                        self.response_packet(clock, limits, h, rest, pos, out)
                    }
                    RState::PrepParamsEnd { cols } if cols > 0 => {
                        if let Some(p) = self.pending.as_mut() {
                            p.state = RState::PrepCols { left: cols };
                        }
                        self.response_packet(clock, limits, h, rest, pos, out)
                    }
                    _ => {
                        // The prepare response was complete; this packet answers nothing.
                        self.end_result(false, out);
                        out.push(DbEvent::Anomaly {
                            dir: Direction::ToClient,
                            kind: anomaly::UNEXPECTED_RESPONSE,
                        });
                        self.skip_server(h, rest, false)
                    }
                }
            }
            RState::Rows => {
                if is_term && (is_eof || deprecate != Some(false)) {
                    let body = whole_body!();
                    let more = if is_eof {
                        let st = messages::eof_status(body);
                        if let Some(p) = self.pending.as_mut() {
                            p.cur.bytes += h.total() as u64;
                            p.cur.status = Status::Ok;
                            p.cur.ts_end = end_ts;
                            p.cur.warnings = Reader::new(body.get(1..).unwrap_or_default())
                                .u16()
                                .map(u64::from);
                        }
                        st & status::MORE_RESULTS_EXISTS != 0
                    } else {
                        let ok = messages::ok_packet(body, self.caps);
                        self.ok_outcome(ok.as_ref(), h, end_ts, false, out)
                    };
                    self.end_result(more, out);
                    return self.skip_server(h, rest, false);
                }
                // A row: counted and skipped, never buffered.
                if let Some(p) = self.pending.as_mut() {
                    p.cur.rows = Some(p.cur.rows.unwrap_or(0) + 1);
                    p.cur.bytes += h.total() as u64;
                }
                self.skip_server(h, rest, true)
            }
        }
    }

    /// Record an OK packet as the current result's outcome; returns "more results follow".
    fn ok_outcome(
        &mut self,
        ok: Option<&messages::OkPacket<'_>>,
        h: Header,
        end_ts: Timestamp,
        affected: bool,
        out: &mut Vec<DbEvent>,
    ) -> bool {
        let Some(p) = self.pending.as_mut() else {
            return false;
        };
        p.cur.bytes += h.total() as u64;
        p.cur.status = Status::Ok;
        p.cur.ts_end = end_ts;
        let Some(ok) = ok else {
            out.push(DbEvent::Anomaly {
                dir: Direction::ToClient,
                kind: anomaly::MALFORMED,
            });
            return false;
        };
        if affected {
            p.cur.rows = Some(ok.affected_rows);
            p.cur.insert_id = Some(ok.last_insert_id);
        }
        p.cur.warnings = Some(ok.warnings as u64);
        if let Some(cs) = ok
            .charset
            .and_then(|c| std::str::from_utf8(c).ok())
            .and_then(charset::from_name)
        {
            self.charset = cs;
        }
        if let Some(db) = ok.schema {
            p.tracked_db = Some(self.charset.decode(db));
        }
        ok.status & status::MORE_RESULTS_EXISTS != 0
    }

    /// The current result ended; more follow or the response is complete.
    fn end_result(&mut self, more: bool, out: &mut Vec<DbEvent>) {
        let Some(mut p) = self.pending.take() else {
            return;
        };
        self.push_outcome(&mut p);
        let error = p.resp.status == Status::Error;
        if more && !error {
            p.state = RState::First;
            self.pending = Some(p);
            return;
        }
        self.pending = Some(p);
        self.finish(out);
    }

    fn push_outcome(&self, p: &mut Pending) {
        let cur = std::mem::take(&mut p.cur);
        if let Some(r) = cur.rows {
            p.resp.rows = Some(p.resp.rows.unwrap_or(0) + r);
        }
        p.resp.bytes += cur.bytes;
        p.resp.status = cur.status;
        p.resp.error = cur.error.clone();
        if cur.insert_id.is_some() {
            p.resp.insert_id = cur.insert_id;
        }
        if cur.warnings.is_some() {
            p.resp.warnings = cur.warnings;
        }
        if cur.ts_end > p.resp.ts_end {
            p.resp.ts_end = cur.ts_end;
        }
        if p.split.is_some() && p.results.len() <= MAX_SPLIT_STATEMENTS {
            p.results.push(cur);
        }
    }

    /// The pending request's response is complete: emit the pair(s) and apply session effects.
    fn finish(&mut self, out: &mut Vec<DbEvent>) {
        let Some(p) = self.pending.take() else { return };
        self.pending = self.queue.pop_front();
        let mut p = *p;
        if p.req.stmt_id == Some(u32::MAX as u64) {
            // A pipelined execute of statement -1: the prepare it follows has been answered.
            p.req.stmt_id = self.last_prepared.map(u64::from).or(p.req.stmt_id);
        }
        self.finish_text_cut(&mut p);
        if p.cur.bytes > 0 {
            self.push_outcome(&mut p);
        }
        let ok = p.resp.status == Status::Ok;
        if let (Some(plugin), Some(login)) = (p.switched_plugin.take(), p.req.login.as_mut()) {
            login.auth_method = Some(plugin);
        }
        let session = if ok && p.kind == Kind::Auth {
            p.req.login.as_ref().map(|l| SessionUpdate {
                user: l.user.clone(),
                database: l.database.clone(),
                client_program: l.client_program.clone(),
            })
        } else {
            None
        };
        let login_charset = p.req_login_charset();
        let kind = p.kind;
        let split_ok = p.split.as_ref().is_some_and(|s| s.len() == p.results.len());
        if split_ok {
            let ranges = p.split.take().unwrap_or_default();
            let sql = p.req.sql.take().unwrap_or_default();
            let results = std::mem::take(&mut p.results);
            for (k, (range, o)) in ranges.into_iter().zip(results).enumerate() {
                let tx = self.next_tx();
                let req = Request {
                    tx,
                    ts: p.req.ts,
                    op: p.req.op.clone(),
                    sql: sql.get(range).map(str::to_owned),
                    bytes: if k == 0 { p.req.bytes } else { 0 },
                    attributes: if k == 0 {
                        std::mem::take(&mut p.req.attributes)
                    } else {
                        Vec::new()
                    },
                    expects_response: true,
                    completeness: p.req.completeness,
                    ..Default::default()
                };
                let resp = Response {
                    tx,
                    ts_end: o.ts_end,
                    status: o.status,
                    error: o.error,
                    rows: o.rows,
                    insert_id: o.insert_id,
                    warnings: o.warnings,
                    bytes: o.bytes,
                    completeness: p.resp.completeness,
                    ..Default::default()
                };
                out.push(DbEvent::Request(Box::new(req)));
                out.push(DbEvent::Response(Box::new(resp)));
            }
        } else {
            let tx = self.next_tx();
            p.req.tx = tx;
            p.resp.tx = tx;
            out.push(DbEvent::Request(Box::new(p.req)));
            out.push(DbEvent::Response(Box::new(p.resp)));
        }
        if let Some(s) = session {
            if let Some(l) = login_charset {
                self.charset = l;
            }
            if kind == Kind::Auth && self.phase == Phase::Command {
                // COM_CHANGE_USER starts a new session: prepared statements are gone.
                self.stmts.clear();
            }
            out.push(DbEvent::Session(s));
        }
        let tracked = p.tracked_db.take();
        if ok {
            match std::mem::take(&mut p.effect) {
                Effect::None => {}
                Effect::Database(db) => {
                    if tracked.as_ref().is_none_or(|t| *t != db) {
                        out_session_db(out, db);
                    }
                }
                Effect::Charset(cs) => self.charset = cs,
                Effect::Reset => self.stmts.clear(),
                Effect::MultiStatements(on) => {
                    if on {
                        self.caps.0 |= Caps::MULTI_STATEMENTS;
                    } else {
                        self.caps.0 &= !Caps::MULTI_STATEMENTS;
                    }
                }
            }
        }
        if let Some(db) = tracked {
            // Session state tracking (CLIENT_SESSION_TRACK) saw the schema change.
            out_session_db(out, db);
        }
    }
}

impl Pending {
    /// Charset change carried by a COM_CHANGE_USER (its effect), applied on OK.
    fn req_login_charset(&self) -> Option<Charset> {
        match self.effect {
            Effect::Charset(c) if self.kind == Kind::Auth => Some(c),
            _ => None,
        }
    }
}

fn out_session_db(out: &mut Vec<DbEvent>, db: String) {
    out.push(DbEvent::Session(SessionUpdate {
        database: Some(db),
        ..Default::default()
    }));
}

// ─────────────────────────────────────────── gaps and ends ─────────────────────────────────────

impl MysqlParser {
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
        if self.dirs[i].resync.is_active() {
            self.dirs[i]
                .resync
                .start(len.saturating_add(partial.len() as u64));
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

    fn on_end(
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
    fn seen_head(
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
