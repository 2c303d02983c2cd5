//! The `StreamParser`: framing loop per direction, request/response pairing, gaps and ends.
//!
//! PostgreSQL answers in order, also when the client pipelines: every client message that gets
//! an answer pushes an [`Expect`] on a FIFO, and server messages are matched against its front.
//! Operations (the records) are built from client messages:
//!
//! - a simple Query is one operation, split into one record per statement when it completes;
//! - Parse opens a `prepare`; a Bind of that statement before the next Sync turns it into the
//!   `execute` (Parse + Bind + Execute = one record); a Parse never bound before Sync stays a
//!   `prepare`; a Bind of a statement prepared earlier opens a new `execute`;
//! - Describe, Close, Flush and Sync belong to the batch's latest operation (their bytes count
//!   there);
//! - FunctionCall is `function_call`; Terminate `logout`; CancelRequest `cancel`;
//! - a FATAL ErrorResponse while no request waits (the server ended the session) is
//!   `terminated`.
//!
//! A batch ends at ReadyForQuery (the answer to Sync, Query or FunctionCall): its completed
//! operations are emitted then, in the order they were sent, each as `Request` + `Response`.
//! An execute whose portal was suspended (Execute with a row limit) stays open across batches
//! until its portal completes, is closed, or its transaction ends.
//!
//! Buffering: the stream layer owns the bytes. This parser asks for whole messages only for
//! the ones it reads (capped at `Limits::max_message_len`; over it, the head is read and the rest
//! skipped); DataRow, CopyData, RowDescription and the like are counted by their headers and
//! skipped, never buffered.

use std::collections::VecDeque;
use std::ops::Range;

use dbtap_core::gap::Resync;
use dbtap_core::{
    Completeness, Cx, DbError, DbEvent, Direction, Input, Login, Op, Progress, Request, Response,
    SessionOpts, Status, StreamParser, Timestamp,
};

use crate::charset::Charset;
use crate::stmts::{Portals, Statements};

/// `authentication` attribute of a login whose connection ended before its outcome.
pub const AUTH_UNFINISHED: &str = "unfinished: the connection ended before its outcome";
/// `op` of the record of a session the server ended while it waited for nothing.
pub const OP_TERMINATED: &str = "terminated";
/// Statements a simple Query is split into at most; more → one record for the whole text.
pub const MAX_SPLIT_STATEMENTS: usize = 256;
/// Expected server answers queued at most per pending request (a client whose server side is
/// not seen must not grow the queue without bound).
const EXPECTS_PER_REQUEST: usize = 8;

/// Anomaly kinds (metrics labels): a small, fixed set.
pub mod anomaly {
    /// A message inside a valid frame could not be parsed; it was skipped.
    pub const MALFORMED: &str = "malformed_message";
    // A message type this direction never sends, or a length out of PostgreSQL's bounds.
    pub use dbtap_core::anomaly::BAD_FRAME;
    /// Server messages when no answer was awaited, or of a kind the awaited one cannot be.
    pub const UNEXPECTED_RESPONSE: &str = "unexpected_response";
    /// A client message that does not fit the session phase.
    pub const UNEXPECTED_PHASE: &str = "unexpected_phase";
    /// A prepared statement was evicted from the bounded cache.
    pub const STMT_CACHE_EVICTED: &str = "stmt_cache_evicted";
    // A message or field went over a limit and was cut.
    pub use dbtap_core::anomaly::OVER_LIMIT;
    /// A Bind of a statement whose Parse was not seen.
    pub const UNKNOWN_STATEMENT: &str = "unknown_statement";
    /// An Execute of a portal whose Bind was not seen.
    pub const UNKNOWN_PORTAL: &str = "unknown_portal";
    /// A startup packet with an unknown request code.
    pub const UNKNOWN_STARTUP_CODE: &str = "unknown_startup_code";
    /// A `client_encoding` this parser has no decoder for (text is decoded as UTF-8).
    pub const UNKNOWN_ENCODING: &str = "unknown_client_encoding";
    // Too many requests waiting: the oldest was emitted without its response.
    pub use dbtap_core::anomaly::PENDING_OVERFLOW;
    /// An ErrorResponse that answers no request (e.g. the server terminating the session).
    pub const UNSOLICITED_ERROR: &str = "unsolicited_error";
}

/// Where the session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for the client's startup packet.
    Startup,
    /// SSLRequest sent: the server answers one byte, `S` or `N`.
    SslWait,
    /// GSSENCRequest sent: the server answers one byte, `G` or `N`.
    GssWait,
    /// StartupMessage sent: authentication until ReadyForQuery or ErrorResponse.
    Auth,
    /// Normal operation.
    Ready,
    /// TLS or GSSAPI encryption: nothing more is parsed.
    Encrypted,
    /// The session ended (fatal error, CancelRequest, Terminate): later bytes are skipped.
    Closed,
}

/// Operation kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Simple Query.
    Query,
    /// Parse not (yet) bound.
    Prepare,
    /// Bind + Execute.
    Execute,
    /// FunctionCall.
    FunctionCall,
}

/// The outcome of one statement (or of a whole operation) as the server reports it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outcome {
    pub status: Status,
    pub error: Option<DbError>,
    /// Rows from the command tag.
    pub rows: Option<u64>,
    /// DataRow messages seen.
    pub datarows: u64,
    pub warnings: u64,
    /// Response wire bytes.
    pub bytes: u64,
    /// Request wire bytes that belong to this statement (COPY FROM STDIN data).
    pub req_bytes: u64,
    pub ts_end: Timestamp,
    pub started: bool,
    /// Parts of the response that were cut or lost.
    pub completeness: Completeness,
    /// The command tag was ROLLBACK (a COMMIT of a failed transaction reports it).
    pub rolled_back: bool,
    /// The first NoticeResponse, `SQLSTATE: message` (bounded by the attribute length).
    pub notice: Option<Box<str>>,
    /// The error's severity (`ERROR`, `FATAL`, `PANIC`) and cursor position, when it failed.
    pub error_at: Option<Box<ErrorAt>>,
}

/// Where and how badly a statement failed: the ErrorResponse's `V` (else `S`) and `P` fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ErrorAt {
    pub severity: String,
    /// 1-based, in characters of the whole query string.
    pub position: Option<u32>,
}

/// One operation being built.
#[derive(Debug)]
pub(crate) struct OpState {
    pub id: u64,
    /// The batch (ReadyForQuery) that completes it.
    pub batch: u64,
    pub kind: Kind,
    pub req: Box<Request>,
    /// The result being accumulated.
    pub cur: Outcome,
    /// Finished results (Query: one per statement).
    pub results: Vec<Outcome>,
    /// The response is complete (or failed): emit at the end of the batch.
    pub done: bool,
    /// The portal was suspended (PortalSuspended): more Executes may follow.
    pub suspended: bool,
    /// An Execute was sent for it.
    pub executed: bool,
    /// Rows counted before the current Execute run (suspended portals).
    pub run_start_rows: u64,
    /// Statement name of a Parse (to find it again from a Bind of the same batch, and to forget
    /// the statement when the Parse fails).
    pub stmt: Option<Box<[u8]>>,
    /// Split statements of a Query (byte ranges of `req.sql`).
    pub splits: Option<Vec<Range<usize>>>,
    /// Operations or statements the server did not run because this one failed.
    pub not_executed: u64,
    /// Parameters of the statement (ParameterDescription).
    pub param_count: Option<u64>,
    /// The operation failed: the server skipped the rest of the batch.
    pub failed: bool,
    /// Bytes it is counted for in `PgParser::ops_heap` (set when it starts waiting, grown with
    /// its results).
    pub charge: usize,
}

/// Heap bytes an operation's result adds to its charge.
pub(crate) const RESULT_CHARGE: usize = std::mem::size_of::<Outcome>();

/// A server answer the client is waiting for, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExpKind {
    Parse,
    Bind,
    DescribeStmt,
    DescribePortal,
    Execute,
    Close,
    Sync,
    Query,
    FunctionCall,
    /// Client bytes were lost here: answers to unknown requests come first.
    Lost,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Expect {
    pub kind: ExpKind,
    pub op: Option<u64>,
    pub batch: u64,
    /// Capture time of the client message (for `Lost`: of the first message after the loss).
    pub ts: Timestamp,
}

/// The login being negotiated.
#[derive(Debug)]
pub(crate) struct LoginState {
    pub req: Box<Request>,
    pub resp: Response,
    pub started: bool,
    /// AuthenticationOk seen.
    pub auth_ok: bool,
    /// The server asked for SASL.
    pub sasl: bool,
}

/// Per-direction framing state.
#[derive(Debug, Default)]
pub(crate) struct Dir {
    pub resync: Resync,
    /// First bytes of this direction seen.
    pub seen: bool,
    /// Bytes discarded by resync scans since the last sync (bounded by `max_resync_scan`).
    pub scanned: u64,
    pub ended: bool,
}

/// One step of a message loop.
pub(crate) enum Step {
    /// The message (`n` bytes) was handled; go on.
    Next(usize),
    /// Need `n` bytes from the message start.
    Need(usize),
    /// Consumed `consumed` bytes from the message start, then skip `skip`.
    Skip { consumed: usize, skip: u64 },
    /// TLS / GSSAPI after `n` bytes.
    Upgrade(usize),
    /// Framing was lost after `n` bytes: resync.
    Desync(usize),
    /// Give up.
    Abandon(dbtap_core::Abandon),
}

/// The PostgreSQL parser of one session.
#[derive(Debug)]
pub struct PgParser {
    pub(crate) phase: Phase,
    pub(crate) dirs: [Dir; 2],
    pub(crate) tx: u64,
    pub(crate) charset: Charset,
    /// `standard_conforming_strings` (on unless the server reports off).
    pub(crate) std_strings: bool,
    pub(crate) user: Option<String>,
    pub(crate) database: Option<String>,
    pub(crate) app: Option<String>,
    pub(crate) session_user_reported: Option<String>,
    /// Session changes (`SET SESSION AUTHORIZATION`, `SET application_name`) reported while
    /// operations were in flight: they take effect for the records after those of the batch
    /// that made them (see `session_change`).
    pub(crate) deferred_session: Option<dbtap_core::event::SessionUpdate>,
    pub(crate) server_version: Option<String>,
    pub(crate) backend_pid: Option<u32>,
    pub(crate) login: Option<Box<LoginState>>,
    pub(crate) next_op: u64,
    pub(crate) ops: VecDeque<Box<OpState>>,
    /// Heap bytes of `ops`, kept as operations come and go: a capture missing the server's side
    /// keeps up to `max_pending` of them waiting, and `mem_usage` runs after every packet.
    pub(crate) ops_heap: usize,
    pub(crate) expect: VecDeque<Expect>,
    /// The client's current batch (incremented by Sync, Query, FunctionCall).
    pub(crate) batch: u64,
    /// Latest operation created in the client's current batch.
    pub(crate) batch_last: Option<u64>,
    /// Bytes of Describe/Close/Flush sent in this batch before any operation (and their time).
    pub(crate) batch_carry: Option<(u64, Timestamp)>,
    /// The batch whose operation failed, and that operation: the server skips to Sync.
    pub(crate) batch_error: Option<(u64, u64)>,
    pub(crate) stmts: Statements,
    pub(crate) portals: Portals,
    /// Operation receiving the client's CopyData (COPY FROM STDIN, CopyBoth).
    pub(crate) copy_in: Option<u64>,
    /// Latest Query / Execute operation the client sent.
    pub(crate) last_client_op: Option<u64>,
    pub(crate) max_pending: usize,
    /// `Limits::max_attribute_len` (taken from the latest call's limits).
    pub(crate) max_attr_len: usize,
    /// The server side lost sync: wait for a request sent after that before resyncing.
    pub(crate) server_needs_request: bool,
    /// SSLRequest / GSSENCRequest sent: the server's next byte is the one-byte answer; the
    /// byte that accepts (`S` / `G`).
    pub(crate) answer_pending: Option<u8>,
    /// Last server message was ReadyForQuery (a batch boundary), for leaving a `Lost` region.
    pub(crate) server_at_boundary: bool,
}

impl PgParser {
    /// A parser for a new session.
    pub fn new(opts: SessionOpts) -> Self {
        let mut p = PgParser {
            phase: Phase::Startup,
            dirs: Default::default(),
            tx: 0,
            charset: Charset::Utf8,
            std_strings: true,
            user: None,
            database: None,
            app: None,
            session_user_reported: None,
            deferred_session: None,
            server_version: None,
            backend_pid: None,
            login: None,
            next_op: 0,
            ops: VecDeque::new(),
            ops_heap: 0,
            expect: VecDeque::new(),
            batch: 0,
            batch_last: None,
            batch_carry: None,
            batch_error: None,
            stmts: Statements::default(),
            portals: Portals::default(),
            copy_in: None,
            last_client_op: None,
            max_pending: dbtap_core::limits::DEFAULT_MAX_PENDING_REQUESTS,
            max_attr_len: dbtap_core::limits::DEFAULT_MAX_ATTRIBUTE_LEN,
            server_needs_request: false,
            server_at_boundary: true,
            answer_pending: None,
        };
        if opts.midstream {
            p.enter_midstream();
        }
        p
    }

    /// Prepared statements remembered (the unnamed one included).
    pub fn cached_statements(&self) -> usize {
        self.stmts.len()
    }

    /// Operations waiting for their answer.
    pub fn pending_operations(&self) -> usize {
        self.ops.len()
    }

    /// The session phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// A session picked up after its start: message boundaries are unknown in both directions
    /// until a plausible message start is found; the server side waits for a request.
    pub(crate) fn enter_midstream(&mut self) {
        self.phase = Phase::Ready;
        for d in &mut self.dirs {
            if !d.resync.is_active() {
                d.resync.start(0);
            }
        }
        self.server_needs_request = true;
    }

    pub(crate) fn next_tx(&mut self) -> u64 {
        self.tx += 1;
        self.tx
    }

    /// Emit a request and, if any, its response (same tx).
    pub(crate) fn emit(
        &mut self,
        mut req: Box<Request>,
        resp: Option<Response>,
        out: &mut Vec<DbEvent>,
    ) {
        req.tx = self.next_tx();
        let tx = req.tx;
        out.push(DbEvent::Request(req));
        if let Some(mut r) = resp {
            r.tx = tx;
            out.push(DbEvent::Response(Box::new(r)));
        }
    }

    /// A new request of kind `op` whose first byte arrived at `ts`.
    pub(crate) fn request(ts: Timestamp, op: Op, bytes: usize) -> Box<Request> {
        // Boxed from the start: the request travels boxed to the session, so it is never copied
        // on its way (operation queue, event).
        Box::new(Request {
            ts,
            op: Some(op),
            bytes: bytes as u64,
            expects_response: true,
            ..Default::default()
        })
    }

    /// Register a new operation in the current batch; returns its id. Operations are only
    /// pushed here, at the back, so `ops` stays in batch order (Bind and `end_batch` rely on it).
    pub(crate) fn push_op(
        &mut self,
        kind: Kind,
        mut req: Box<Request>,
        out: &mut Vec<DbEvent>,
    ) -> u64 {
        self.server_needs_request = false;
        if let Some((carry, ts)) = self.batch_carry.take() {
            req.bytes += carry;
            req.ts = req.ts.min(ts);
        }
        self.next_op += 1;
        let id = self.next_op;
        if self.ops.len() >= self.max_pending {
            // Bounded: the oldest waiting operation is given up (emitted as it stands).
            out.push(DbEvent::Anomaly {
                dir: Direction::ToServer,
                kind: anomaly::PENDING_OVERFLOW,
            });
            if let Some(old) = self.pop_op() {
                self.emit_op(old, None, out);
            }
        }
        let charge =
            std::mem::size_of::<OpState>() + std::mem::size_of::<Request>() + req.heap_bytes();
        self.ops_heap += charge;
        self.ops.push_back(Box::new(OpState {
            id,
            batch: self.batch,
            kind,
            req,
            cur: Outcome::default(),
            results: Vec::new(),
            done: false,
            suspended: false,
            executed: false,
            run_start_rows: 0,
            stmt: None,
            splits: None,
            not_executed: 0,
            param_count: None,
            failed: false,
            charge,
        }));
        self.batch_last = Some(id);
        id
    }

    pub(crate) fn op_mut(&mut self, id: u64) -> Option<&mut OpState> {
        // Almost always the newest (or the only) operation: try the ends before searching.
        let i = if self.ops.back().is_some_and(|o| o.id == id) {
            self.ops.len() - 1
        } else if self.ops.front().is_some_and(|o| o.id == id) {
            0
        } else {
            self.ops.binary_search_by_key(&id, |o| o.id).ok()?
        };
        self.ops.get_mut(i).map(|b| &mut **b)
    }

    /// Queue an expected answer (bounded: the oldest is dropped when full).
    pub(crate) fn push_expect(&mut self, kind: ExpKind, op: Option<u64>, ts: Timestamp) {
        let max = self.max_pending.saturating_mul(EXPECTS_PER_REQUEST).max(16);
        if self.expect.len() >= max {
            self.expect.pop_front();
        }
        self.expect.push_back(Expect {
            kind,
            op,
            batch: self.batch,
            ts,
        });
    }

    /// The operation the front expected answer belongs to.
    pub(crate) fn front_op(&mut self) -> Option<&mut OpState> {
        let id = self.expect.front()?.op?;
        self.op_mut(id)
    }

    /// Emit one operation: records for what it holds. `lost`: a gap cut its response
    /// (`Some(bytes)`), or the stream ended (`None`) when it is not done.
    pub(crate) fn emit_op(
        &mut self,
        mut op: Box<OpState>,
        lost: Option<u64>,
        out: &mut Vec<DbEvent>,
    ) {
        if op.kind == Kind::Query {
            return self.emit_query(op, lost, out);
        }
        let cut = !op.done;
        let mut resp = None;
        if op.done || op.cur.started || !op.results.is_empty() {
            let o = op
                .results
                .pop()
                .unwrap_or_else(|| std::mem::take(&mut op.cur));
            if o.rolled_back {
                mark_rollback(&mut op.req);
            }
            notice_attr(&o, &mut op.req.attributes);
            error_attrs(&o, 0, &mut op.req.attributes);
            let mut r = response_of(&o);
            r.param_count = op.param_count;
            if cut {
                if o.status == Status::Unknown {
                    r.status = Status::Ok;
                }
                r.completeness = r.completeness.merge(cut_completeness(lost, r.bytes));
            }
            resp = Some(r);
        }
        if op.not_executed > 0 {
            op.req.attributes.push((
                "not_executed_statements".into(),
                op.not_executed.to_string(),
            ));
        }
        self.emit(op.req, resp, out);
    }

    /// Emit a simple Query: one record per statement when the server answered each of them,
    /// else one record for the whole text.
    fn emit_query(&mut self, mut op: Box<OpState>, lost: Option<u64>, out: &mut Vec<DbEvent>) {
        let mut results = std::mem::take(&mut op.results);
        let cut = !op.done;
        if op.cur.started {
            let mut c = std::mem::take(&mut op.cur);
            if c.status == Status::Unknown {
                c.status = Status::Ok;
            }
            results.push(c);
        }
        let splits = op.splits.take();
        let n = splits.as_ref().map_or(1, Vec::len);
        let failed = results.iter().any(|r| r.status == Status::Error);
        let per_statement = n > 1
            && match (failed, cut) {
                (false, false) => results.len() == n,
                // Up to the failing statement (the last result), the rest was not run.
                (true, _) => results.len() <= n,
                // Cut: the statements answered so far.
                (false, true) => results.len() <= n && !results.is_empty(),
            };
        if results.is_empty() {
            if op.not_executed > 0 {
                op.req.attributes.push((
                    "not_executed_statements".into(),
                    op.not_executed.to_string(),
                ));
            }
            return self.emit(op.req, None, out);
        }
        if !per_statement {
            let mut total = Outcome {
                status: Status::Ok,
                ..Default::default()
            };
            let mut rows: Option<u64> = None;
            for r in &results {
                total.bytes += r.bytes;
                total.warnings += r.warnings;
                total.ts_end = total.ts_end.max(r.ts_end);
                if let Some(n) = result_rows(r) {
                    rows = Some(rows.unwrap_or(0).saturating_add(n));
                }
                if r.status == Status::Error && total.error.is_none() {
                    total.status = Status::Error;
                    total.error = r.error.clone();
                }
            }
            total.rows = rows;
            total.datarows = 0;
            let mut resp = response_of(&total);
            resp.rows = rows;
            if cut {
                resp.completeness = cut_completeness(lost, resp.bytes);
            }
            let mut req = op.req;
            req.bytes += results.iter().map(|r| r.req_bytes).sum::<u64>();
            if let Some(with_notice) = results.iter().find(|r| r.notice.is_some()) {
                notice_attr(with_notice, &mut req.attributes);
            }
            if let Some(failed) = results.iter().find(|r| r.status == Status::Error) {
                error_attrs(failed, 0, &mut req.attributes);
            }
            if results.last().is_some_and(|r| r.rolled_back) {
                mark_rollback(&mut req);
            }
            if op.not_executed > 0 {
                req.attributes.push((
                    "not_executed_statements".into(),
                    op.not_executed.to_string(),
                ));
            }
            return self.emit(req, Some(resp), out);
        }
        let splits = splits.unwrap_or_default();
        let sql = op.req.sql.take().unwrap_or_default();
        let last = results.len() - 1;
        let not_run = n - results.len();
        for (i, r) in results.into_iter().enumerate() {
            let mut req = Box::new(Request {
                tx: 0,
                ts: op.req.ts,
                op: op.req.op.clone(),
                sql: splits
                    .get(i)
                    .and_then(|s| sql.get(s.clone()))
                    .map(Into::into),
                bytes: if i == 0 { op.req.bytes } else { 0 } + r.req_bytes,
                expects_response: true,
                completeness: op.req.completeness,
                ..Default::default()
            });
            if i == last && not_run > 0 && r.status == Status::Error {
                req.attributes
                    .push(("not_executed_statements".into(), not_run.to_string()));
                if let Some(rest) = splits.get(i + 1).and_then(|s| sql.get(s.start..)) {
                    let mut rest = rest.to_owned();
                    dbtap_core::text::truncate_utf8(&mut rest, self.max_attr_len);
                    req.attributes.push(("not_executed_sql".into(), rest));
                }
            }
            if r.rolled_back {
                mark_rollback(&mut req);
            }
            notice_attr(&r, &mut req.attributes);
            // The characters before this statement are counted only for a failed one: a
            // count per statement would read the text once per statement.
            if r.error_at.is_some() {
                let before = splits
                    .get(i)
                    .and_then(|s| sql.get(..s.start))
                    .map_or(0, |head| {
                        u32::try_from(head.chars().count()).unwrap_or(u32::MAX)
                    });
                error_attrs(&r, before, &mut req.attributes);
            }
            let mut resp = response_of(&r);
            if i == last && cut {
                resp.completeness = resp.completeness.merge(cut_completeness(lost, resp.bytes));
            }
            self.emit(req, Some(resp), out);
        }
    }

    /// The oldest waiting operation, leaving `ops` (and its bytes leaving `ops_heap`).
    pub(crate) fn pop_op(&mut self) -> Option<Box<OpState>> {
        let op = self.ops.pop_front()?;
        self.uncharge(op.charge);
        Some(op)
    }

    /// Operations worth `charge` bytes left `ops`. The sum never goes below zero; a drift in
    /// the accounting fails the tests (debug assertions) instead of reaching the cap.
    pub(crate) fn uncharge(&mut self, charge: usize) {
        debug_assert!(charge <= self.ops_heap, "{charge} > {}", self.ops_heap);
        self.ops_heap = self.ops_heap.saturating_sub(charge);
    }

    /// Emit every waiting operation (the session ended, or the server side lost sync).
    pub(crate) fn flush_all(&mut self, lost: Option<u64>, out: &mut Vec<DbEvent>) {
        self.flush_login(out);
        while let Some(op) = self.pop_op() {
            self.emit_op(op, lost, out);
        }
        self.expect.clear();
        self.copy_in = None;
        self.batch_error = None;
    }

    /// Emit a login whose outcome was not seen.
    pub(crate) fn flush_login(&mut self, out: &mut Vec<DbEvent>) {
        let Some(mut l) = self.login.take() else {
            return;
        };
        if !l.started {
            return self.emit(l.req, None, out);
        }
        // The server answered (an authentication request at least) and the connection ended
        // before the login's outcome. psql does this on every password login: its first
        // connection learns that a password is needed, closes, and a second one sends it.
        // The answer's bytes and time are the record's; the outcome is unknown unless the
        // server had already accepted the credentials.
        l.resp.status = if l.auth_ok {
            Status::Ok
        } else {
            Status::Unknown
        };
        l.req
            .attributes
            .push(("authentication".into(), AUTH_UNFINISHED.into()));
        self.emit(l.req, Some(l.resp), out);
    }

    /// Who the session is: the start-up message's user, database and application (as the
    /// server's ParameterStatus messages may have changed them).
    pub(crate) fn session_update(&self) -> dbtap_core::event::SessionUpdate {
        dbtap_core::event::SessionUpdate {
            user: self.user.clone(),
            database: self.database.clone(),
            client_program: self.app.clone(),
        }
    }

    /// A login request for a new session attempt.
    pub(crate) fn login_mut(&mut self, ts: Timestamp) -> &mut LoginState {
        self.login.get_or_insert_with(|| {
            let mut req = Self::request(ts, Op::LOGIN, 0);
            req.login = Some(Box::new(Login::default()));
            Box::new(LoginState {
                req,
                resp: Response::default(),
                started: false,
                auth_ok: false,
                sasl: false,
            })
        })
    }
}

/// A COMMIT (or END) answered with the tag ROLLBACK: "If the transaction was aborted, COMMIT
/// rolls it back" — the changes were discarded, which the record must say.
fn mark_rollback(req: &mut Request) {
    let commit = req.sql.as_deref().is_some_and(|s| {
        let w = s
            .trim_start()
            .split(|c: char| !c.is_ascii_alphabetic())
            .next()
            .unwrap_or("");
        w.eq_ignore_ascii_case("commit") || w.eq_ignore_ascii_case("end")
    });
    if commit {
        req.attributes
            .push(("transaction".into(), "rolled_back".into()));
    }
}

/// Rows of a finished result: the command tag's count, else the DataRows seen (a SHOW or
/// EXPLAIN returns rows under a tag that carries no count).
pub(crate) fn result_rows(o: &Outcome) -> Option<u64> {
    o.rows.or((o.datarows > 0).then_some(o.datarows))
}

/// The Response for an outcome (tx set by `emit`).
/// The `info` attribute (the first notice of the answer; `warnings` counts them all).
fn notice_attr(o: &Outcome, attrs: &mut Vec<(std::borrow::Cow<'static, str>, String)>) {
    if let Some(n) = &o.notice {
        attrs.push(("info".into(), n.to_string()));
    }
}

/// The `error_severity` and `error_position` attributes of a failed statement. `before`: the
/// characters of the query string before the record's own `sql` (a statement split out of a
/// multi-statement query), which the server's position counts and the record's text does not.
fn error_attrs(
    o: &Outcome,
    before: u32,
    attrs: &mut Vec<(std::borrow::Cow<'static, str>, String)>,
) {
    let Some(at) = o.error_at.as_deref() else {
        return;
    };
    severity_attr(&at.severity, attrs);
    if let Some(p) = at
        .position
        .and_then(|p| p.checked_sub(before))
        .filter(|p| *p > 0)
    {
        attrs.push(("error_position".into(), p.to_string()));
    }
}

/// The `error_severity` attribute, when the ErrorResponse had a severity.
pub(crate) fn severity_attr(
    severity: &str,
    attrs: &mut Vec<(std::borrow::Cow<'static, str>, String)>,
) {
    if !severity.is_empty() {
        attrs.push(("error_severity".into(), severity.to_owned()));
    }
}

pub(crate) fn response_of(o: &Outcome) -> Response {
    Response {
        tx: 0,
        ts_end: o.ts_end,
        status: o.status,
        error: o.error.clone(),
        rows: if o.status == Status::Error {
            None
        } else {
            result_rows(o)
        },
        warnings: (o.warnings > 0).then_some(o.warnings),
        bytes: o.bytes,
        completeness: o.completeness,
        ..Default::default()
    }
}

fn cut_completeness(lost: Option<u64>, kept: u64) -> Completeness {
    match lost {
        Some(lost_bytes) => Completeness::Partial { lost_bytes },
        None => Completeness::Truncated {
            kept,
            original: kept,
        },
    }
}

impl StreamParser for PgParser {
    fn handle(
        &mut self,
        cx: &Cx<'_>,
        dir: Direction,
        input: Input<'_>,
        out: &mut Vec<DbEvent>,
    ) -> Progress {
        self.max_pending = cx.limits.max_pending_requests.max(1);
        self.max_attr_len = cx.limits.max_attribute_len;
        match input {
            Input::Data(data) => self.on_data(cx, dir, data, out),
            Input::Gap { len, partial } => self.on_gap(cx, dir, len, partial, out),
            Input::End { partial, .. } => self.on_end(cx, dir, partial, out),
        }
    }

    fn mem_usage(&self) -> usize {
        self.stmts.heap() + self.ops_heap + self.expect.capacity() * std::mem::size_of::<Expect>()
    }
}

mod client;
mod gaps;
mod server;
mod stream;

pub(crate) use stream::{client_candidate, server_candidate};
