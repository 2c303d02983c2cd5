//! Server side: the SSL/GSS answer byte, authentication, session parameters, and the answers
//! to queries and extended-protocol messages.

use super::*;
use dbtap_core::event::SessionUpdate;
use dbtap_core::{Completeness, Cx, DbError, DbEvent, Direction, ErrorCode, Status, Timestamp};

use crate::charset;
use crate::codes::{auth, be, txn};
use crate::frame::{Header, HEADER_LEN};
use crate::messages;

use super::client::whole_or_head;

impl PgParser {
    pub(super) fn server_step(
        &mut self,
        cx: &Cx<'_>,
        data: &[u8],
        pos: usize,
        out: &mut Vec<DbEvent>,
    ) -> Step {
        let rest = data.get(pos..).unwrap_or_default();
        match self.phase {
            Phase::Encrypted => return Step::Upgrade(0),
            _ if self.answer_pending.is_some() => {
                return self.encryption_answer(cx, rest, pos, out)
            }
            Phase::Startup => {
                // The server speaks first only in a session picked up after its startup.
                self.enter_midstream();
                return Step::Desync(0);
            }
            _ => {}
        }
        let Some(h) = Header::parse(rest) else {
            return Step::Need(HEADER_LEN);
        };
        if !h.valid_backend() {
            out.push(DbEvent::Anomaly {
                dir: Direction::ToClient,
                kind: anomaly::BAD_FRAME,
            });
            self.desync(Direction::ToClient, 0, out);
            return Step::Desync(0);
        }
        match h.ty {
            be::DATA_ROW if self.phase == Phase::Ready => self.data_rows(cx, data, pos, out),
            be::COPY_DATA => {
                // COPY TO STDOUT rows and replication stream data: counted, skipped.
                let ts = cx.ts_at(pos);
                self.account(h.total() as u64, ts, out);
                if rest.len() >= h.total() {
                    Step::Next(h.total())
                } else {
                    Step::Skip {
                        consumed: HEADER_LEN,
                        skip: h.body_len() as u64,
                    }
                }
            }
            // Messages whose content is not needed (only their bytes count): handled from their
            // header when they run past the input, the rest skipped, never buffered.
            // (NoticeResponse is read whole, up to the message bound, like ErrorResponse: its
            // text is the record's `info`, the same however the bytes arrive.)
            be::ROW_DESCRIPTION
            | be::FUNCTION_CALL_RESPONSE
            | be::NOTIFICATION
            | be::PARAMETER_DESCRIPTION
                if rest.len() < h.total() =>
            {
                // ParameterDescription: only its leading Int16 count is read.
                let head = if h.ty == be::PARAMETER_DESCRIPTION {
                    match rest.get(HEADER_LEN..HEADER_LEN + 2) {
                        Some(c) => c,
                        None => return Step::Need(HEADER_LEN + 2),
                    }
                } else {
                    &[]
                };
                self.server_message(cx, h, head, pos, None, out);
                Step::Skip {
                    consumed: HEADER_LEN,
                    skip: h.body_len() as u64,
                }
            }
            _ => {
                let cap = cx.limits.max_message_len.max(HEADER_LEN + 16);
                let (body, cut) = match whole_or_head(h, rest, cap) {
                    Ok(x) => x,
                    Err(n) => return Step::Need(n),
                };
                let c = cut.then(|| {
                    out.push(DbEvent::Anomaly {
                        dir: Direction::ToClient,
                        kind: anomaly::OVER_LIMIT,
                    });
                    Completeness::Truncated {
                        kept: body.len() as u64,
                        original: h.body_len() as u64,
                    }
                });
                self.server_message(cx, h, body, pos, c, out);
                if cut {
                    Step::Skip {
                        consumed: HEADER_LEN + body.len(),
                        skip: (h.body_len() - body.len()) as u64,
                    }
                } else {
                    Step::Next(h.total())
                }
            }
        }
    }

    /// The one-byte answer to SSLRequest (`S` / `N`) or GSSENCRequest (`G` / `N`). "The server
    /// then responds with a single byte containing S or N, indicating that it is willing or
    /// unwilling to perform SSL, respectively." An old server may answer with an ErrorResponse.
    fn encryption_answer(
        &mut self,
        cx: &Cx<'_>,
        rest: &[u8],
        pos: usize,
        out: &mut Vec<DbEvent>,
    ) -> Step {
        let Some(&b) = rest.first() else {
            return Step::Need(1);
        };
        let ts = cx.ts_at(pos);
        let Some(wanted) = self.answer_pending.take() else {
            return Step::Next(0);
        };
        if b == wanted && matches!(self.phase, Phase::SslWait | Phase::GssWait) {
            let l = self.login_mut(ts);
            l.resp.bytes += 1;
            self.upgrade(out);
            return Step::Upgrade(1);
        }
        if b == b'N' {
            let l = self.login_mut(ts);
            l.resp.bytes += 1;
            l.started = true;
            // The client may already have sent its StartupMessage (its bytes were delivered
            // before this one): then the phase moved on already.
            if matches!(self.phase, Phase::SslWait | Phase::GssWait) {
                self.phase = Phase::Startup;
            }
            return Step::Next(1);
        }
        // An ErrorResponse instead (servers that do not know the request).
        if matches!(self.phase, Phase::SslWait | Phase::GssWait) {
            self.phase = Phase::Auth;
        }
        Step::Next(0)
    }

    /// A run of DataRow messages: counted in a tight loop, skipped, never buffered.
    fn data_rows(&mut self, cx: &Cx<'_>, data: &[u8], pos: usize, out: &mut Vec<DbEvent>) -> Step {
        let mut p = pos;
        let mut rows = 0u64;
        let mut bytes = 0u64;
        let mut step = None;
        while let Some(h) = data.get(p..).and_then(Header::parse) {
            if h.ty != be::DATA_ROW || !h.valid_backend() {
                break;
            }
            rows += 1;
            bytes += h.total() as u64;
            if data.len() - p >= h.total() {
                p += h.total();
            } else {
                step = Some(Step::Skip {
                    consumed: p - pos + HEADER_LEN,
                    skip: h.body_len() as u64,
                });
                break;
            }
        }
        let ts = cx.ts_at(pos);
        if self.account(bytes, ts, out) {
            if let Some(op) = self.front_op() {
                op.cur.datarows += rows;
            }
        }
        step.unwrap_or(Step::Next(p - pos))
    }

    /// Count `bytes` of the answer being received toward the awaited operation. Returns false
    /// when no operation awaits an answer (the bytes are then only counted by the stream layer).
    fn account(&mut self, bytes: u64, ts: Timestamp, out: &mut Vec<DbEvent>) -> bool {
        if self.leave_lost_region(ts, false) {
            return false;
        }
        if self.phase == Phase::Auth {
            if let Some(l) = self.login.as_mut() {
                l.resp.bytes += bytes;
                l.started = true;
                return true;
            }
        }
        match self.front_op() {
            Some(op) => {
                op.cur.bytes += bytes;
                op.cur.started = true;
                true
            }
            None => {
                if self.expect.is_empty() {
                    out.push(DbEvent::Anomaly {
                        dir: Direction::ToClient,
                        kind: anomaly::UNEXPECTED_RESPONSE,
                    });
                }
                false
            }
        }
    }

    /// While the front of the queue is a `Lost` marker (client bytes were lost), server
    /// messages answer requests that were never seen. The region ends at a batch boundary
    /// (after a ReadyForQuery) once the server speaks after the first request seen after the
    /// loss was sent. Returns true while the message at `ts` is still inside the region.
    fn leave_lost_region(&mut self, ts: Timestamp, is_ready: bool) -> bool {
        while self.expect.front().is_some_and(|e| e.kind == ExpKind::Lost) {
            let next = self.expect.get(1).map(|e| e.ts);
            match next {
                Some(t) if self.server_at_boundary && ts >= t => {
                    self.expect.pop_front();
                }
                _ => {
                    self.server_at_boundary = is_ready;
                    return true;
                }
            }
        }
        false
    }

    /// One whole server message (or the head of a cut one).
    pub(crate) fn server_message(
        &mut self,
        cx: &Cx<'_>,
        h: Header,
        body: &[u8],
        pos: usize,
        cut: Option<Completeness>,
        out: &mut Vec<DbEvent>,
    ) {
        let ts = cx.ts_at(pos);
        let ts_end = cx.ts_at(pos + h.total().saturating_sub(1));
        let total = h.total() as u64;
        if h.ty == be::PARAMETER_STATUS {
            self.parameter_status(body, out);
        }
        match self.phase {
            Phase::Auth => return self.auth_message(h, body, ts, ts_end, out),
            Phase::Closed => return,
            _ => {}
        }
        if self.leave_lost_region(ts, h.ty == be::READY_FOR_QUERY) {
            return;
        }
        // A notice over the message bound only loses the end of its own text (`info` keeps
        // less than that anyway); the statement's answer is whole.
        if let Some(c) = cut.filter(|_| h.ty != be::NOTICE) {
            if let Some(op) = self.front_op() {
                op.cur.completeness = op.cur.completeness.merge(c);
            }
        }
        self.server_at_boundary = h.ty == be::READY_FOR_QUERY;
        match h.ty {
            be::PARAMETER_STATUS | be::NOTIFICATION => {
                // Not a statement's result: PostgreSQL 14+ reports changed settings right before
                // ReadyForQuery, after the last CommandComplete (`ReportChangedGUCOptions`), and
                // a NOTIFY to a channel the session listens on comes there too. Their bytes go to
                // the statement answered last; taken as the start of one more result, they made
                // a multi-statement query one record (`SET TimeZone = 'UTC'; SELECT 3`).
                if !self.leave_lost_region(ts, false) {
                    if let Some(op) = self.front_op() {
                        match op.results.last_mut() {
                            Some(last) if !op.cur.started => last.bytes += total,
                            _ => op.cur.bytes += total,
                        }
                    }
                }
            }
            be::NOTICE => {
                let first = self.front_op().is_some_and(|op| op.cur.notice.is_none());
                // The first notice's text: PL/pgSQL RAISE NOTICE output, "table … does not
                // exist, skipping", deprecation warnings (its head only, past the message
                // bound).
                let notice = (first && !body.is_empty()).then(|| self.notice_text(body));
                if let Some(op) = self.front_op() {
                    op.cur.warnings += 1;
                    op.cur.bytes += total;
                    if let Some(n) = notice {
                        op.cur.notice = Some(n.into_boxed_str());
                    }
                }
            }
            be::PARSE_COMPLETE => {
                if let Some(e) = self.seek(&[ExpKind::Parse], out) {
                    self.expect.pop_front();
                    if let Some(op) = e.op.and_then(|id| self.op_mut(id)) {
                        op.cur.bytes += total;
                        op.cur.started = true;
                        op.cur.ts_end = ts_end;
                        if op.kind == Kind::Prepare {
                            op.cur.status = Status::Ok;
                            op.done = true;
                        }
                    }
                }
            }
            be::BIND_COMPLETE | be::CLOSE_COMPLETE | be::NO_DATA => {
                let kinds: &[ExpKind] = match h.ty {
                    be::BIND_COMPLETE => &[ExpKind::Bind],
                    be::CLOSE_COMPLETE => &[ExpKind::Close],
                    _ => &[ExpKind::DescribeStmt, ExpKind::DescribePortal],
                };
                if let Some(e) = self.seek(kinds, out) {
                    self.expect.pop_front();
                    if let Some(op) = e.op.and_then(|id| self.op_mut(id)) {
                        op.cur.bytes += total;
                        op.cur.started = true;
                        op.cur.ts_end = op.cur.ts_end.max(ts_end);
                    }
                }
            }
            be::PARAMETER_DESCRIPTION => {
                if let Some(e) = self.seek(&[ExpKind::DescribeStmt], out) {
                    // "Int16: the number of parameters used by the statement (can be zero)."
                    let n = crate::wire::Reader::new(body).count16();
                    if let Some(op) = e.op.and_then(|id| self.op_mut(id)) {
                        op.cur.bytes += total;
                        op.param_count = n.map(|n| n as u64);
                    }
                }
            }
            be::ROW_DESCRIPTION => {
                let front = self.expect.front().map(|e| e.kind);
                if matches!(front, Some(ExpKind::Query | ExpKind::Execute)) {
                    self.account(total, ts, out);
                } else if let Some(e) =
                    self.seek(&[ExpKind::DescribeStmt, ExpKind::DescribePortal], out)
                {
                    self.expect.pop_front();
                    if let Some(op) = e.op.and_then(|id| self.op_mut(id)) {
                        op.cur.bytes += total;
                    }
                }
            }
            be::DATA_ROW => {
                if self.account(total, ts, out) {
                    if let Some(op) = self.front_op() {
                        op.cur.datarows += 1;
                    }
                }
            }
            be::COMMAND_COMPLETE | be::EMPTY_QUERY | be::PORTAL_SUSPENDED => {
                let kinds: &[ExpKind] = if h.ty == be::PORTAL_SUSPENDED {
                    &[ExpKind::Execute]
                } else {
                    &[ExpKind::Query, ExpKind::Execute]
                };
                let Some(e) = self.seek(kinds, out) else {
                    return;
                };
                let tag = crate::wire::Reader::new(body).cstr_or_rest();
                let Some(op) = e.op.and_then(|id| self.op_mut(id)) else {
                    self.expect.pop_front();
                    return;
                };
                op.cur.bytes += total;
                op.cur.started = true;
                op.cur.ts_end = ts_end;
                op.cur.status = Status::Ok;
                op.cur.rolled_back = tag == b"ROLLBACK";
                // Servers before 9.0 send a bare "SELECT" tag: the rows are the DataRows.
                let bare_select = h.ty == be::COMMAND_COMPLETE && tag == b"SELECT";
                match (e.kind, h.ty) {
                    (ExpKind::Query, _) => {
                        op.cur.rows = if h.ty == be::COMMAND_COMPLETE {
                            messages::tag_rows(tag).or(bare_select.then_some(op.cur.datarows))
                        } else {
                            None
                        };
                        let done = std::mem::take(&mut op.cur);
                        op.results.push(done);
                        op.charge += RESULT_CHARGE;
                        self.ops_heap += RESULT_CHARGE;
                        return;
                    }
                    (_, be::PORTAL_SUSPENDED) => {
                        op.suspended = true;
                    }
                    _ => {
                        if h.ty == be::COMMAND_COMPLETE {
                            op.cur.rows = messages::tag_rows(tag)
                                .map(|n| op.run_start_rows.saturating_add(n))
                                .or(bare_select.then_some(op.cur.datarows));
                        }
                        op.done = true;
                    }
                }
                self.expect.pop_front();
            }
            be::COPY_IN | be::COPY_OUT | be::COPY_BOTH => {
                if self.account(total, ts, out) && h.ty != be::COPY_OUT {
                    self.copy_in = self.expect.front().and_then(|e| e.op);
                }
            }
            be::COPY_DONE => {
                self.account(total, ts, out);
            }
            be::FUNCTION_CALL_RESPONSE => {
                if let Some(e) = self.seek(&[ExpKind::FunctionCall], out) {
                    if let Some(op) = e.op.and_then(|id| self.op_mut(id)) {
                        op.cur.bytes += total;
                        op.cur.started = true;
                        op.cur.ts_end = ts_end;
                        op.cur.status = Status::Ok;
                    }
                }
            }
            be::ERROR => self.error_response(body, total, ts, ts_end, out),
            be::READY_FOR_QUERY => self.ready_for_query(body, total, ts_end, out),
            _ => {
                // AuthenticationRequest, BackendKeyData, NegotiateProtocolVersion after login.
                out.push(DbEvent::Anomaly {
                    dir: Direction::ToClient,
                    kind: anomaly::UNEXPECTED_RESPONSE,
                });
            }
        }
    }

    /// Bring an awaited answer of one of `kinds` to the front of the queue: answers awaited
    /// before it in the same batch were not seen (counted). `None` (and an anomaly) when the
    /// batch awaits no such answer.
    fn seek(&mut self, kinds: &[ExpKind], out: &mut Vec<DbEvent>) -> Option<Expect> {
        // The usual case: the answer awaited first is this one.
        if let Some(front) = self.expect.front().filter(|e| kinds.contains(&e.kind)) {
            return Some(*front);
        }
        let at = self.expect.iter().position(|e| {
            kinds.contains(&e.kind)
                || matches!(
                    e.kind,
                    ExpKind::Sync | ExpKind::Query | ExpKind::FunctionCall | ExpKind::Lost
                )
        });
        match at.and_then(|i| self.expect.get(i).map(|e| (i, *e))) {
            Some((i, e)) if kinds.contains(&e.kind) => {
                if i > 0 {
                    out.push(DbEvent::Anomaly {
                        dir: Direction::ToClient,
                        kind: anomaly::UNEXPECTED_RESPONSE,
                    });
                    self.expect.drain(..i);
                }
                Some(e)
            }
            _ => {
                out.push(DbEvent::Anomaly {
                    dir: Direction::ToClient,
                    kind: anomaly::UNEXPECTED_RESPONSE,
                });
                None
            }
        }
    }

    /// A NoticeResponse as `SQLSTATE: message`, cut at the attribute bound.
    fn notice_text(&self, body: &[u8]) -> String {
        let f = messages::error_fields(body);
        let mut text = String::from_utf8_lossy(f.code.unwrap_or_default()).into_owned();
        text.push_str(": ");
        self.charset
            .decode_into(f.message.unwrap_or_default(), &mut text);
        dbtap_core::text::truncate_utf8(&mut text, self.max_attr_len);
        text
    }

    /// The severity (`V`, never localized, else `S` in the connection's character set) and the
    /// cursor position of an ErrorResponse.
    fn error_at(&self, f: &messages::ErrorFields<'_>) -> ErrorAt {
        let mut severity = match (f.severity_raw, f.severity) {
            (Some(v), _) => String::from_utf8_lossy(v).into_owned(),
            (None, Some(s)) => self.charset.decode(s),
            (None, None) => String::new(),
        };
        dbtap_core::text::truncate_utf8(&mut severity, self.max_attr_len);
        let position = f
            .position
            .and_then(|p| std::str::from_utf8(p).ok())
            .and_then(|p| p.parse().ok());
        ErrorAt { severity, position }
    }

    fn db_error(&self, f: &messages::ErrorFields<'_>) -> DbError {
        let code = f
            .code
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .unwrap_or_default();
        let mut message = self.charset.decode(f.message.unwrap_or_default());
        if let Some(d) = f.detail {
            message.push_str(" (detail: ");
            self.charset.decode_into(d, &mut message);
            message.push(')');
        }
        DbError {
            code: ErrorCode::Text(code.clone()),
            sqlstate: (!code.is_empty()).then_some(code),
            message,
        }
    }

    fn error_response(
        &mut self,
        body: &[u8],
        total: u64,
        ts: Timestamp,
        ts_end: Timestamp,
        out: &mut Vec<DbEvent>,
    ) {
        let f = messages::error_fields(body);
        let err = self.db_error(&f);
        let at = self.error_at(&f);
        let Some(e) = self.expect.front().copied() else {
            if f.is_fatal() {
                // The server ended a session that asked for nothing: pg_terminate_backend
                // (57P01 "terminating connection due to administrator command"),
                // idle_session_timeout (57P05), idle_in_transaction_session_timeout (25P03), a
                // shutdown. No request, but the trail must show who was cut off and why.
                let mut req = Self::request(ts, Op::new(OP_TERMINATED), 0);
                severity_attr(&at.severity, &mut req.attributes);
                let resp = Response {
                    ts_end,
                    status: Status::Error,
                    error: Some(err),
                    bytes: total,
                    ..Default::default()
                };
                self.emit(req, Some(resp), out);
                self.phase = Phase::Closed;
            } else {
                out.push(DbEvent::Anomaly {
                    dir: Direction::ToClient,
                    kind: anomaly::UNSOLICITED_ERROR,
                });
            }
            return;
        };
        let failing = e.op;
        if let Some(op) = failing.and_then(|id| self.op_mut(id)) {
            op.cur.bytes += total;
            op.cur.started = true;
            op.cur.ts_end = ts_end;
            op.cur.status = Status::Error;
            op.cur.error = Some(err);
            op.cur.error_at = Some(Box::new(at));
            op.failed = true;
            match e.kind {
                ExpKind::Query => {
                    let done = std::mem::take(&mut op.cur);
                    op.results.push(done);
                    op.charge += RESULT_CHARGE;
                    // "ErrorResponse … the query string is aborted": nothing more of it runs, so
                    // its answer is whole even when the capture ends before ReadyForQuery.
                    op.done = true;
                    self.ops_heap += RESULT_CHARGE;
                }
                ExpKind::Sync => {
                    // An error while closing the batch (a deferred constraint at commit):
                    // the batch's last operation did not take effect.
                    op.done = true;
                }
                _ => op.done = true,
            }
        }
        match e.kind {
            ExpKind::Query | ExpKind::FunctionCall | ExpKind::Sync | ExpKind::Lost => {}
            _ => {
                // "When an error is detected while processing any extended-query message, the
                // backend issues ErrorResponse, then reads and discards messages until a Sync is
                // reached."
                if let Some(op) = failing.and_then(|id| self.op_mut(id)) {
                    if op.kind == Kind::Prepare {
                        if let Some(name) = op.stmt.clone() {
                            self.stmts.remove(&name);
                        }
                    }
                }
                while self.expect.front().is_some_and(|x| {
                    !matches!(
                        x.kind,
                        ExpKind::Sync | ExpKind::Query | ExpKind::FunctionCall | ExpKind::Lost
                    )
                }) {
                    self.expect.pop_front();
                }
                if let Some(id) = failing {
                    self.batch_error = Some((e.batch, id));
                }
            }
        }
        if f.is_fatal() {
            // "FATAL: the session is terminated": no ReadyForQuery will come. The failing
            // operation is complete; the batch ends here.
            if let Some(op) = failing.and_then(|id| self.op_mut(id)) {
                op.done = true;
            }
            self.end_batch(e.batch, None, out);
            self.phase = Phase::Closed;
        }
    }

    /// ReadyForQuery: the batch (Sync, Query or FunctionCall) is over; its operations are
    /// emitted.
    fn ready_for_query(
        &mut self,
        body: &[u8],
        total: u64,
        ts_end: Timestamp,
        out: &mut Vec<DbEvent>,
    ) {
        let status = messages::ready_status(body);
        let Some(e) = self.seek(&[ExpKind::Sync, ExpKind::Query, ExpKind::FunctionCall], out)
        else {
            return;
        };
        self.expect.pop_front();
        if let Some(op) = e.op.and_then(|id| self.op_mut(id)) {
            match op.results.last_mut() {
                Some(r) if op.kind == Kind::Query => {
                    r.bytes += total;
                    r.ts_end = ts_end;
                }
                _ => {
                    op.cur.bytes += total;
                    op.cur.ts_end = op.cur.ts_end.max(ts_end);
                    if op.cur.status == Status::Unknown && op.kind == Kind::FunctionCall {
                        op.cur.status = Status::Ok;
                    }
                }
            }
            if matches!(e.kind, ExpKind::Query | ExpKind::FunctionCall) {
                op.done = true;
            }
        }
        if status == Some(txn::IDLE) {
            // Not in a transaction block: every portal is gone.
            self.portals.clear();
        }
        self.end_batch(e.batch, status, out);
        if let Some(u) = self.deferred_session.take() {
            out.push(DbEvent::Session(u));
        }
    }

    /// A change of session user or program. Reported during a query's answer (PostgreSQL 14+
    /// reports changed settings just before ReadyForQuery, older servers inside the SET), it
    /// waits for the batch's records: their statements were sent by the session as it was,
    /// so they keep its user and program, the SET's own record included; the change holds
    /// from the records after them.
    fn session_change(&mut self, u: SessionUpdate, out: &mut Vec<DbEvent>) {
        if self.ops.is_empty() {
            out.push(DbEvent::Session(u));
            return;
        }
        let d = self
            .deferred_session
            .get_or_insert_with(SessionUpdate::default);
        if u.user.is_some() {
            d.user = u.user;
        }
        if u.client_program.is_some() {
            d.client_program = u.client_program;
        }
        if u.database.is_some() {
            d.database = u.database;
        }
    }

    /// Emit the operations of batches up to `b`.
    fn end_batch(&mut self, b: u64, status: Option<u8>, out: &mut Vec<DbEvent>) {
        let failing = match self.batch_error {
            Some((eb, id)) if eb <= b => {
                self.batch_error = None;
                Some((eb, id))
            }
            _ => None,
        };
        let idle = status == Some(txn::IDLE);
        // First the operations the server skipped after an error: not run, counted on the
        // failing one.
        let mut skipped = 0u64;
        if let Some((eb, fid)) = failing {
            let mut freed = 0;
            self.ops.retain(|o| {
                let drop = o.batch == eb && o.id != fid && !o.done && !o.suspended;
                if drop {
                    skipped += 1;
                    freed += o.charge;
                }
                !drop
            });
            self.uncharge(freed);
            if let Some(op) = self.op_mut(fid) {
                op.not_executed += skipped;
            }
        }
        let mut i = 0;
        while let Some(op) = self.ops.get_mut(i) {
            if op.batch > b {
                // Batches only grow along `ops` (see `push_op`): the rest are later batches.
                break;
            }
            if op.suspended && idle {
                op.suspended = false;
                op.done = true;
            }
            if op.suspended {
                i += 1;
                continue;
            }
            if let Some(op) = self.ops.remove(i) {
                self.uncharge(op.charge);
                self.emit_op(op, None, out);
            }
        }
        if let Some(ops) = self.copy_in {
            if self.op_mut(ops).is_none() {
                self.copy_in = None;
            }
        }
    }

    /// ParameterStatus: session facts the server reports (at startup and when they change).
    fn parameter_status(&mut self, body: &[u8], out: &mut Vec<DbEvent>) {
        let Some((name, value)) = messages::parameter_status(body) else {
            out.push(DbEvent::Anomaly {
                dir: Direction::ToClient,
                kind: anomaly::MALFORMED,
            });
            return;
        };
        let after_login = self.phase == Phase::Ready;
        match name {
            b"server_version" => self.server_version = Some(self.charset.decode(value)),
            b"client_encoding" => match charset::from_name(value) {
                Some(cs) => self.charset = cs,
                None => out.push(DbEvent::Anomaly {
                    dir: Direction::ToClient,
                    kind: anomaly::UNKNOWN_ENCODING,
                }),
            },
            b"standard_conforming_strings" => self.std_strings = value != b"off",
            b"application_name" => {
                let v = self.charset.decode(value);
                if v.is_empty() && !after_login {
                    return;
                }
                if after_login && self.app.as_deref() != Some(v.as_str()) {
                    self.session_change(
                        SessionUpdate {
                            client_program: Some(v.clone()),
                            ..Default::default()
                        },
                        out,
                    );
                }
                self.app = Some(v);
            }
            b"session_authorization" => {
                let v = self.charset.decode(value);
                if after_login && self.user.as_deref() != Some(v.as_str()) {
                    self.session_change(
                        SessionUpdate {
                            user: Some(v.clone()),
                            ..Default::default()
                        },
                        out,
                    );
                    self.user = Some(v.clone());
                }
                self.session_user_reported = Some(v);
            }
            _ => {}
        }
    }

    /// A server message during authentication.
    fn auth_message(
        &mut self,
        h: Header,
        body: &[u8],
        ts: Timestamp,
        ts_end: Timestamp,
        out: &mut Vec<DbEvent>,
    ) {
        let total = h.total() as u64;
        let l = self.login_mut(ts);
        l.resp.bytes += total;
        l.resp.ts_end = ts_end;
        l.started = true;
        match h.ty {
            be::AUTH => {
                let Some((code, data)) = messages::auth_request(body) else {
                    return;
                };
                if let Some(login) = l.req.login.as_mut() {
                    if code == auth::OK {
                        l.auth_ok = true;
                    }
                    if login.auth_method.is_none() {
                        login.auth_method = auth::method(code).map(str::to_owned);
                    }
                    if code == auth::SASL {
                        l.sasl = true;
                        // Offered mechanisms: a -PLUS variant means channel binding is possible.
                        let _ = messages::sasl_mechanisms(data);
                    }
                }
            }
            be::BACKEND_KEY_DATA => {
                if let Some(pid) = messages::backend_pid(body) {
                    self.backend_pid = Some(pid);
                }
            }
            be::NOTICE => l.resp.warnings = Some(l.resp.warnings.unwrap_or(0) + 1),
            be::NEGOTIATE_PROTOCOL => {
                if let Some((version, _)) = messages::negotiate_protocol(body) {
                    if let Some(login) = l.req.login.as_mut() {
                        login.attributes.retain(|(k, _)| k != "protocol_version");
                        login.attributes.push((
                            "protocol_version".into(),
                            format!("{}.{}", version >> 16, version & 0xffff),
                        ));
                    }
                }
            }
            be::PARAMETER_STATUS => {}
            be::ERROR => {
                let f = messages::error_fields(body);
                let err = self.db_error(&f);
                let at = self.error_at(&f);
                self.server_info(out);
                if let Some(mut l) = self.login.take() {
                    severity_attr(&at.severity, &mut l.req.attributes);
                    l.resp.status = Status::Error;
                    l.resp.error = Some(err);
                    l.resp.ts_end = ts_end;
                    self.emit(l.req, Some(l.resp), out);
                }
                self.phase = if f.is_fatal() || f.severity.is_none() {
                    Phase::Closed
                } else {
                    Phase::Auth
                };
            }
            be::READY_FOR_QUERY => {
                self.server_info(out);
                out.push(DbEvent::Session(self.session_update()));
                if let Some(mut l) = self.login.take() {
                    l.resp.status = Status::Ok;
                    l.resp.ts_end = ts_end;
                    self.emit(l.req, Some(l.resp), out);
                }
                self.phase = Phase::Ready;
                self.server_at_boundary = true;
            }
            _ => out.push(DbEvent::Anomaly {
                dir: Direction::ToClient,
                kind: anomaly::UNEXPECTED_RESPONSE,
            }),
        }
    }

    /// ServerInfo, once, when the server identified itself.
    fn server_info(&mut self, out: &mut Vec<DbEvent>) {
        if self.server_version.is_some() || self.backend_pid.is_some() {
            out.push(DbEvent::ServerInfo {
                version: self.server_version.clone(),
                connection_id: self.backend_pid.map(u64::from),
            });
        }
    }
}
