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
//! bounded by [`max_inner_buffer`].

use dbtap_core::gap::Resync;
use dbtap_core::{
    Abandon, Completeness, Cx, DbError, DbEvent, Direction, Input, Limits, Op, Progress, Request,
    Response, SessionOpts, Status, StreamParser, Timestamp,
};

use crate::charset::Charset;
use crate::codes::Caps;
use crate::frame::{self, Algo, CompHeader, Inflater};
use crate::prepared::Cache;
use crate::session::Phase;

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
    // A message or field went over a limit and was cut.
    pub use dbtap_core::anomaly::OVER_LIMIT;
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
    /// Boxed from the start: it leaves as the event's box, never copied again.
    req: Box<Request>,
    kind: Kind,
    state: RState,
    effect: Effect,
    /// Result so far (summed over results); boxed as `req` is.
    resp: Box<Response>,
    /// Per-result outcomes, kept when the text has several statements.
    results: Vec<Outcome>,
    /// Split statements (byte ranges in `req.sql`), when more than one.
    split: Option<Vec<std::ops::Range<usize>>>,
    /// Current result: rows counted / bytes.
    cur: Outcome,
    /// Any server byte of the response was seen.
    started: bool,
    /// Prepare: sql to cache on OK.
    prepare_sql: Option<std::sync::Arc<str>>,
    /// The response could already be complete if the session uses DEPRECATE_EOF (mid-stream).
    maybe_done: bool,
    /// Payload bytes of the request (for `Truncated::original` of a cut text).
    req_payload: u64,
    /// Text offset in the payload and bytes kept, when the text was cut at a limit.
    text_cut: Option<(u64, u64)>,
    /// Auth plugin after an AuthSwitchRequest.
    switched_plugin: Option<String>,
    /// Heap bytes it is counted for while it waits (set when it starts waiting: its request is
    /// complete then).
    charge: usize,
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
    /// Algorithm of the frame being inflated in parts (its first part shows it).
    part_algo: Algo,
}

/// A compressed frame larger than `max_message_len`, inflated part by part.
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
    /// `Limits::max_attribute_len` of the latest call (for attributes made when a response ends).
    max_attr_len: usize,
    /// Heap bytes of the queued operations, kept as they come and go: a capture that misses
    /// the server's side keeps the queue full, and `mem_usage` runs after every packet.
    queued_heap: usize,
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
            max_attr_len: dbtap_core::limits::DEFAULT_MAX_ATTRIBUTE_LEN,
            queued_heap: 0,
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
        let charge = std::mem::size_of::<Pending>() + req.heap_bytes();
        let p = Box::new(Pending {
            req: Box::new(req),
            kind,
            state: if kind == Kind::Fetch {
                RState::Rows
            } else {
                RState::First
            },
            effect: Effect::None,
            resp: Box::default(),
            results: Vec::new(),
            split: None,
            cur: Outcome::default(),
            started: false,
            prepare_sql: None,
            maybe_done: false,
            req_payload: 0,
            text_cut: None,
            switched_plugin: None,
            charge,
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
        self.queued_heap += p.charge;
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

    /// The oldest queued operation, leaving the queue (and its bytes leaving `queued_heap`).
    fn pop_queued(&mut self) -> Option<Box<Pending>> {
        let p = self.queue.pop_front()?;
        self.unqueue(p.charge);
        Some(p)
    }

    /// A queued operation worth `charge` bytes left the queue. The sum never goes below zero; a
    /// drift in the accounting fails the tests (debug assertions) instead of reaching the cap.
    fn unqueue(&mut self, charge: usize) {
        debug_assert!(
            charge <= self.queued_heap,
            "{charge} > {}",
            self.queued_heap
        );
        self.queued_heap = self.queued_heap.saturating_sub(charge);
    }

    /// Emit the most recent request without a response (it was cut: nothing can answer it).
    fn flush_newest(&mut self, out: &mut Vec<DbEvent>) {
        match self.queue.pop_back() {
            Some(p) => {
                self.unqueue(p.charge);
                let mut p = *p;
                self.finish_text_cut(&mut p);
                p.req.tx = self.next_tx();
                out.push(DbEvent::Request(p.req));
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
        self.pending = self.pop_queued();
        let mut p = *p;
        self.finish_text_cut(&mut p);
        if p.started && p.state != RState::First {
            // Rows or definitions were flowing: the request was accepted; what was seen counts.
            let kept = p.resp.bytes + p.cur.bytes;
            p.cur.status = Status::Ok;
            self.push_outcome(&mut p);
            let mut resp = std::mem::take(&mut *p.resp);
            resp.completeness = resp.completeness.merge(match lost {
                Some(lost_bytes) => Completeness::Partial { lost_bytes },
                None => Completeness::Truncated {
                    kept,
                    original: kept,
                },
            });
            p.req.tx = self.next_tx();
            resp.tx = p.req.tx;
            out.push(DbEvent::Request(p.req));
            out.push(DbEvent::Response(Box::new(resp)));
        } else {
            p.req.tx = self.next_tx();
            out.push(DbEvent::Request(p.req));
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

    fn mem_usage(&self) -> usize {
        // Operations waiting for their response: the one answered next, and those queued.
        let pending = self.pending.as_ref().map_or(0, |p| p.charge) + self.queued_heap;
        let comp = self
            .dirs
            .iter()
            .filter_map(|d| d.comp.as_ref())
            .map(|c| c.inner.capacity() + c.inflater.heap())
            .sum::<usize>();
        self.stmts.heap() + pending + comp
    }
}

mod client;
mod gaps;
mod server;
mod stream;

use client::bounded;
use stream::whole;
pub(crate) use stream::{client_candidate, comp_candidate, server_candidate};
