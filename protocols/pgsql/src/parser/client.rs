//! Client side: startup packets, authentication messages, queries, the extended protocol,
//! COPY data, FunctionCall, Terminate.

use super::*;
use dbtap_core::{
    Abandon, Completeness, Cx, DbEvent, DeferredParams, Direction, Login, Op, Timestamp,
};
use std::sync::Arc;

use crate::bind_values::{decode_values, step_over_values, BindValues};
use crate::charset;
use crate::codes::{fe, startup};
use crate::frame::{Header, StartupHeader, HEADER_LEN, STARTUP_HEADER_LEN};
use crate::messages;
use crate::stmts::Stmt;
use crate::tls;
use crate::wire::Reader;

/// Bytes of a PasswordMessage / SASL message read at most: enough for the SASL mechanism
/// name. The rest (the secret) is skipped unbuffered.
const AUTH_HEAD: usize = 80;

/// Startup parameters whose value is never recorded: none of PostgreSQL's carry a secret,
/// but a misbehaving client could put one there.
fn secret_param(name: &[u8]) -> bool {
    let lower: Vec<u8> = name.iter().map(u8::to_ascii_lowercase).collect();
    [&b"password"[..], b"passwd", b"secret", b"token", b"key"]
        .iter()
        .any(|s| lower.windows(s.len()).any(|w| w == *s))
}

/// A message head to read in full (`Ok(body, cut)`), or the bytes to wait for.
pub(crate) fn whole_or_head(h: Header, rest: &[u8], cap: usize) -> Result<(&[u8], bool), usize> {
    let total = h.total();
    if rest.len() >= total {
        return Ok((rest.get(HEADER_LEN..total).unwrap_or_default(), false));
    }
    if total <= cap {
        return Err(total);
    }
    let have = HEADER_LEN + cap.saturating_sub(HEADER_LEN);
    match rest.get(HEADER_LEN..have) {
        Some(b) if rest.len() >= have => Ok((b, true)),
        _ => Err(have),
    }
}

impl PgParser {
    pub(super) fn client_step(
        &mut self,
        cx: &Cx<'_>,
        data: &[u8],
        pos: usize,
        out: &mut Vec<DbEvent>,
    ) -> Step {
        let rest = data.get(pos..).unwrap_or_default();
        match self.phase {
            Phase::Encrypted => Step::Upgrade(0),
            // The client speaks before the server answered SSLRequest / GSSENCRequest only when
            // that answer was `N` (the byte is in flight or was lost): carry on with startup.
            Phase::Startup | Phase::SslWait | Phase::GssWait => {
                self.startup_step(cx, rest, pos, out)
            }
            Phase::Auth | Phase::Ready | Phase::Closed => {
                self.typed_client_step(cx, rest, pos, out)
            }
        }
    }

    /// An untyped startup packet (or, instead, a TLS ClientHello or a typed message of a session
    /// picked up mid-stream).
    fn startup_step(
        &mut self,
        cx: &Cx<'_>,
        rest: &[u8],
        pos: usize,
        out: &mut Vec<DbEvent>,
    ) -> Step {
        let ts = cx.ts_at(pos);
        if rest.first().is_some_and(|&b| b != 0) {
            if tls::is_handshake_record(rest) {
                return self.direct_tls(ts, rest, out);
            }
            // A startup length below 16 MiB starts with a zero byte; a letter is a message
            // type: the capture began after the startup.
            if rest.first().is_some_and(|&b| fe::is_known(b)) {
                self.phase = Phase::Ready;
                self.server_needs_request = true;
                return Step::Next(0);
            }
            out.push(DbEvent::Anomaly {
                dir: Direction::ToServer,
                kind: anomaly::BAD_FRAME,
            });
            return Step::Abandon(Abandon::NotThisProtocol);
        }
        let Some(sh) = StartupHeader::parse(rest) else {
            return Step::Need(STARTUP_HEADER_LEN);
        };
        if !sh.plausible_len() {
            out.push(DbEvent::Anomaly {
                dir: Direction::ToServer,
                kind: anomaly::BAD_FRAME,
            });
            return Step::Abandon(Abandon::NotThisProtocol);
        }
        match sh.code {
            startup::SSL_REQUEST | startup::GSSENC_REQUEST if sh.len == 8 => {
                let l = self.login_mut(ts);
                l.req.bytes += 8;
                let (phase, answer) = if sh.code == startup::SSL_REQUEST {
                    (Phase::SslWait, b'S')
                } else {
                    (Phase::GssWait, b'G')
                };
                self.phase = phase;
                self.answer_pending = Some(answer);
                Step::Next(8)
            }
            // "Int32(16) … Int32(80877102) … Int32 the process ID … Byte(n) the secret key"
            // (4 bytes in 3.0, up to 256 in 3.2).
            startup::CANCEL_REQUEST if (16..=12 + 256).contains(&sh.len) => {
                let Some(body) = rest.get(STARTUP_HEADER_LEN..sh.len) else {
                    return Step::Need(sh.len);
                };
                let mut req = Self::request(ts, Op::new("cancel"), sh.len);
                req.expects_response = false;
                if let Some(pid) = messages::cancel_target_pid(body) {
                    req.attributes
                        .push(("target_backend_pid".into(), pid.to_string()));
                }
                self.emit(req, None, out);
                self.phase = Phase::Closed;
                Step::Next(sh.len)
            }
            code if code >> 16 == startup::MAJOR_3 => {
                let cap = cx.limits.max_message_len.max(STARTUP_HEADER_LEN);
                let (body, cut) = if rest.len() >= sh.len {
                    (
                        rest.get(STARTUP_HEADER_LEN..sh.len).unwrap_or_default(),
                        false,
                    )
                } else if sh.len <= cap {
                    return Step::Need(sh.len);
                } else {
                    match rest.get(STARTUP_HEADER_LEN..cap) {
                        Some(b) => (b, true),
                        None => return Step::Need(cap),
                    }
                };
                self.startup_message(cx, ts, sh, body, out);
                if cut {
                    Step::Skip {
                        consumed: STARTUP_HEADER_LEN + body.len(),
                        skip: (sh.len - STARTUP_HEADER_LEN - body.len()) as u64,
                    }
                } else {
                    Step::Next(sh.len)
                }
            }
            _ => {
                out.push(DbEvent::Anomaly {
                    dir: Direction::ToServer,
                    kind: anomaly::UNKNOWN_STARTUP_CODE,
                });
                if rest.len() >= sh.len {
                    Step::Next(sh.len)
                } else {
                    Step::Skip {
                        consumed: rest.len(),
                        skip: (sh.len - rest.len()) as u64,
                    }
                }
            }
        }
    }

    /// StartupMessage: "Int32 length, Int32 protocol version, then pairs of parameter name and
    /// value strings" (`user` is required; `database` defaults to the user name).
    pub(crate) fn startup_message(
        &mut self,
        cx: &Cx<'_>,
        ts: Timestamp,
        sh: StartupHeader,
        body: &[u8],
        out: &mut Vec<DbEvent>,
    ) {
        let limits = cx.limits;
        let mut login = Login::default();
        let mut replication = None;
        let mut redacted = false;
        let mut unknown_encoding = false;
        for (name, value) in messages::startup_params(body) {
            let cs = self.charset;
            let v = || cs.decode(value);
            match name {
                b"user" => login.user = Some(v()),
                b"database" => login.database = Some(v()),
                b"application_name" => login.client_program = Some(v()),
                b"replication" => replication = Some(v()),
                b"client_encoding" => match charset::from_name(value) {
                    Some(cs) => self.charset = cs,
                    None => unknown_encoding = true,
                },
                _ => {}
            }
            if secret_param(name) {
                redacted = true;
                continue;
            }
            if login.attributes.len() < limits.max_attributes {
                let mut n = self.charset.decode(name);
                let mut val = self.charset.decode(value);
                dbtap_core::text::truncate_utf8(&mut n, limits.max_attribute_len);
                dbtap_core::text::truncate_utf8(&mut val, limits.max_attribute_len);
                login.attributes.push((n, val));
            }
        }
        if unknown_encoding {
            out.push(DbEvent::Anomaly {
                dir: Direction::ToServer,
                kind: anomaly::UNKNOWN_ENCODING,
            });
        }
        if sh.code & 0xffff != 0 {
            login
                .attributes
                .push(("protocol_version".into(), format!("3.{}", sh.code & 0xffff)));
        }
        // "database: defaults to the user name"; a physical replication connection
        // (replication=true) connects to no database.
        let physical = replication
            .as_deref()
            .is_some_and(|r| matches!(r, "true" | "on" | "yes" | "1"));
        if login.database.is_none() && !physical {
            login.database = login.user.clone();
        }
        self.user = login.user.clone();
        self.database = login.database.clone();
        self.app = login.client_program.clone();
        let l = self.login_mut(ts);
        l.req.bytes += sh.len as u64;
        if let Some(old) = l.req.login.as_mut() {
            login.credentials_redacted |= old.credentials_redacted || redacted;
            **old = login;
        }
        self.phase = Phase::Auth;
    }

    /// PostgreSQL 17 direct TLS: the ClientHello is the first thing the client sends.
    fn direct_tls(&mut self, ts: Timestamp, rest: &[u8], out: &mut Vec<DbEvent>) -> Step {
        let sni = tls::client_hello(rest).and_then(|h| h.sni).map(|s| {
            let mut s = String::from_utf8_lossy(s).into_owned();
            dbtap_core::text::truncate_utf8(&mut s, dbtap_core::limits::DEFAULT_MAX_ATTRIBUTE_LEN);
            s
        });
        let l = self.login_mut(ts);
        if let Some(login) = l.req.login.as_mut() {
            login
                .attributes
                .push(("ssl_negotiation".into(), "direct".into()));
            if let Some(s) = sni {
                login.attributes.push(("tls_server_name".into(), s));
            }
        }
        self.upgrade(out);
        Step::Upgrade(0)
    }

    /// The session switches to TLS / GSSAPI encryption: the login stays open (its outcome is
    /// inside the encryption) and the session layer closes it as `encrypted`.
    pub(crate) fn upgrade(&mut self, out: &mut Vec<DbEvent>) {
        if let Some(l) = self.login.take() {
            self.emit(l.req, None, out);
        }
        out.push(DbEvent::Encrypted);
        self.phase = Phase::Encrypted;
    }

    fn typed_client_step(
        &mut self,
        cx: &Cx<'_>,
        rest: &[u8],
        pos: usize,
        out: &mut Vec<DbEvent>,
    ) -> Step {
        let Some(h) = Header::parse(rest) else {
            return Step::Need(HEADER_LEN);
        };
        if !h.valid_frontend() {
            out.push(DbEvent::Anomaly {
                dir: Direction::ToServer,
                kind: anomaly::BAD_FRAME,
            });
            self.desync(Direction::ToServer, 0, out);
            return Step::Desync(0);
        }
        let limits = cx.limits;
        match h.ty {
            fe::COPY_DATA => {
                // Counted and skipped, never buffered.
                self.copy_bytes(h.total() as u64);
                if rest.len() >= h.total() {
                    Step::Next(h.total())
                } else {
                    Step::Skip {
                        consumed: HEADER_LEN,
                        skip: h.body_len() as u64,
                    }
                }
            }
            fe::PASSWORD => {
                let head = rest.len().min(h.total()).min(HEADER_LEN + AUTH_HEAD);
                let want = h.total().min(HEADER_LEN + AUTH_HEAD);
                if head < want {
                    return Step::Need(want);
                }
                let body = rest.get(HEADER_LEN..head).unwrap_or_default();
                self.password_message(cx.ts_at(pos), h, body, out);
                if rest.len() >= h.total() {
                    Step::Next(h.total())
                } else {
                    Step::Skip {
                        consumed: head,
                        skip: (h.total() - head) as u64,
                    }
                }
            }
            _ => {
                let cap = match h.ty {
                    fe::QUERY | fe::PARSE => limits
                        .max_message_len
                        .min(limits.max_statement_len.saturating_add(512)),
                    _ => limits.max_message_len,
                }
                .max(HEADER_LEN + 16);
                let (body, cut) = match whole_or_head(h, rest, cap) {
                    Ok(x) => x,
                    Err(n) => return Step::Need(n),
                };
                let c = cut.then(|| {
                    out.push(DbEvent::Anomaly {
                        dir: Direction::ToServer,
                        kind: anomaly::OVER_LIMIT,
                    });
                    Completeness::Truncated {
                        kept: body.len() as u64,
                        original: h.body_len() as u64,
                    }
                });
                self.client_message(cx, h, body, pos, c, out);
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

    /// PasswordMessage, SASLInitialResponse, SASLResponse, GSSResponse: counted toward the
    /// login and redacted; only the SASL mechanism name is read.
    fn password_message(&mut self, ts: Timestamp, h: Header, head: &[u8], out: &mut Vec<DbEvent>) {
        if self.phase != Phase::Auth {
            out.push(DbEvent::Anomaly {
                dir: Direction::ToServer,
                kind: anomaly::UNEXPECTED_PHASE,
            });
            return;
        }
        let l = self.login_mut(ts);
        l.req.bytes += h.total() as u64;
        // The first message after AuthenticationSASL is SASLInitialResponse: its first field
        // names the mechanism the client chose.
        let sasl_initial = std::mem::take(&mut l.sasl);
        if let Some(login) = l.req.login.as_mut() {
            login.credentials_redacted = true;
            if sasl_initial {
                if let Some(m) = messages::sasl_initial_mechanism(head) {
                    login.auth_method = Some(String::from_utf8_lossy(m).to_ascii_lowercase());
                }
            }
        }
    }

    /// Bytes of COPY data (or CopyDone / CopyFail) sent by the client.
    fn copy_bytes(&mut self, n: u64) {
        let id = self.copy_in.or(self.last_client_op);
        if let Some(op) = id.and_then(|id| self.op_mut(id)) {
            op.cur.req_bytes += n;
        }
    }

    /// Bytes of Describe / Close / Flush / Sync: to the batch's latest operation, or carried to
    /// the next one.
    fn batch_bytes(&mut self, ts: Timestamp, n: u64) {
        if let Some(op) = self.batch_last.and_then(|id| self.op_mut(id)) {
            op.req.bytes += n;
            return;
        }
        let c = self.batch_carry.get_or_insert((0, ts));
        c.0 += n;
    }

    fn decode_text(&self, raw: &[u8], max: usize) -> (String, Option<Completeness>) {
        let mut s = self
            .charset
            .decode(raw.get(..max.min(raw.len())).unwrap_or_default());
        let cut = dbtap_core::text::truncate_utf8(&mut s, max) || raw.len() > max;
        let c = cut.then_some(Completeness::Truncated {
            kept: s.len() as u64,
            original: raw.len() as u64,
        });
        (s, c)
    }

    /// One whole client message (or the head of a cut one, `cut` saying how).
    pub(crate) fn client_message(
        &mut self,
        cx: &Cx<'_>,
        h: Header,
        body: &[u8],
        pos: usize,
        cut: Option<Completeness>,
        out: &mut Vec<DbEvent>,
    ) {
        let ts = cx.ts_at(pos);
        let limits = cx.limits;
        let total = h.total() as u64;
        if self.phase == Phase::Closed {
            return;
        }
        if h.ty == fe::PASSWORD {
            // The head of a password message cut by a gap or the end of the capture.
            let head = body.get(..body.len().min(AUTH_HEAD)).unwrap_or_default();
            return self.password_message(ts, h, head, out);
        }
        if self.phase == Phase::Auth && h.ty != fe::TERMINATE {
            // Anything but password messages before ReadyForQuery: the login is over from the
            // client's point of view (its outcome was not seen: one direction mirrored, or a
            // gap). A client issues commands once ReadyForQuery said the start-up succeeded, so
            // the session is the start-up message's user, as after ReadyForQuery.
            self.flush_login(out);
            out.push(DbEvent::Session(self.session_update()));
            self.phase = Phase::Ready;
        }
        match h.ty {
            fe::QUERY => {
                let raw = Reader::new(body).cstr_or_rest();
                let (sql, c) = self.decode_text(raw, limits.max_statement_len);
                let mut req = Self::request(ts, Op::QUERY, h.total());
                req.completeness = cut.or(c).unwrap_or_default();
                let splits = if req.completeness.is_incomplete() {
                    None
                } else {
                    crate::split::split_multi(&sql, MAX_SPLIT_STATEMENTS, self.std_strings)
                };
                req.sql = Some(sql.into());
                self.end_unnamed_portal();
                let id = self.push_op(Kind::Query, req, out);
                if let Some(op) = self.op_mut(id) {
                    op.splits = splits;
                }
                self.last_client_op = Some(id);
                self.push_expect(ExpKind::Query, Some(id), ts);
                self.close_batch();
            }
            fe::PARSE => {
                let Some(p) = messages::parse(body) else {
                    return self.malformed(out);
                };
                let (sql, c) = self.decode_text(p.query, limits.max_statement_len);
                let mut oids: Vec<u32> = p.oids().take(limits.max_params).collect();
                oids.shrink_to_fit();
                let stmt_cut = c.is_some() || p.cut;
                let mut req = Self::request(ts, Op::PREPARE, h.total());
                req.completeness = cut.or(c).unwrap_or_default();
                let sql: std::sync::Arc<str> = sql.into();
                req.sql = Some(sql.clone());
                if !p.name.is_empty() {
                    req.attributes
                        .push(("statement".into(), self.charset.decode(p.name)));
                }
                let evicted = self.stmts.insert(
                    p.name,
                    Stmt::new(Some(sql), stmt_cut, oids),
                    limits.max_prepared_statements,
                );
                if evicted {
                    out.push(DbEvent::Anomaly {
                        dir: Direction::ToServer,
                        kind: anomaly::STMT_CACHE_EVICTED,
                    });
                }
                let id = self.push_op(Kind::Prepare, req, out);
                if let Some(op) = self.op_mut(id) {
                    op.stmt = Some(p.name.into());
                }
                self.push_expect(ExpKind::Parse, Some(id), ts);
            }
            fe::BIND => self.bind(cx, h, body, pos, cut, out),
            fe::EXECUTE => {
                let Some((portal, _max_rows)) = messages::execute(body) else {
                    return self.malformed(out);
                };
                let id = self.execute_op(ts, portal, out);
                if let Some(op) = self.op_mut(id) {
                    op.req.bytes += total;
                    op.executed = true;
                    op.done = false;
                    op.suspended = false;
                    op.run_start_rows = op.cur.datarows;
                }
                self.last_client_op = Some(id);
                self.push_expect(ExpKind::Execute, Some(id), ts);
            }
            fe::DESCRIBE => {
                let Some((kind, _)) = messages::target(body) else {
                    return self.malformed(out);
                };
                self.batch_bytes(ts, total);
                let k = if kind == b'S' {
                    ExpKind::DescribeStmt
                } else {
                    ExpKind::DescribePortal
                };
                self.push_expect(k, self.batch_last, ts);
            }
            fe::CLOSE => {
                let Some((kind, name)) = messages::target(body) else {
                    return self.malformed(out);
                };
                self.batch_bytes(ts, total);
                if kind == b'S' {
                    self.stmts.remove(name);
                } else if let Some(id) = self.portals.get(name) {
                    // Closing a suspended portal completes its operation.
                    if let Some(op) = self.op_mut(id) {
                        if op.suspended {
                            op.suspended = false;
                            op.done = true;
                        }
                    }
                    self.portals.remove(name);
                }
                self.push_expect(ExpKind::Close, self.batch_last, ts);
            }
            fe::SYNC => {
                self.batch_bytes(ts, total);
                self.push_expect(ExpKind::Sync, self.batch_last, ts);
                self.close_batch();
            }
            fe::FLUSH => self.batch_bytes(ts, total),
            fe::FUNCTION_CALL => {
                let Some((oid, head)) = messages::function_call(body) else {
                    return self.malformed(out);
                };
                let mut req = Self::request(ts, Op::new("function_call"), h.total());
                req.sql = Some(format!("function oid {oid}").into());
                // The arguments are decoded at once (a FunctionCall is rare; Binds defer theirs).
                let mut params = Vec::new();
                let complete = decode_values(self.charset, &head, &[], limits, &mut params);
                req.params = Some(params);
                req.completeness = cut.unwrap_or_default();
                if !complete {
                    req.completeness = req.completeness.merge(Completeness::Truncated {
                        kept: body.len() as u64,
                        original: h.body_len() as u64,
                    });
                }
                let id = self.push_op(Kind::FunctionCall, req, out);
                self.push_expect(ExpKind::FunctionCall, Some(id), ts);
                self.close_batch();
            }
            fe::COPY_DONE | fe::COPY_FAIL => {
                self.copy_bytes(total);
                self.copy_in = None;
            }
            fe::TERMINATE => {
                let mut req = Self::request(ts, Op::LOGOUT, h.total());
                req.expects_response = false;
                if self.phase == Phase::Auth {
                    // The client gave up during authentication (psql does this to ask for a
                    // password, then reconnects).
                    self.flush_login(out);
                }
                self.emit(req, None, out);
                self.phase = Phase::Closed;
            }
            _ => {}
        }
    }

    fn malformed(&mut self, out: &mut Vec<DbEvent>) {
        out.push(DbEvent::Anomaly {
            dir: Direction::ToServer,
            kind: anomaly::MALFORMED,
        });
    }

    /// Sync, Query and FunctionCall end a batch: the next message starts a new one.
    fn close_batch(&mut self) {
        self.batch += 1;
        self.batch_last = None;
        self.batch_carry = None;
    }

    /// A simple Query (or a Bind to the unnamed portal) destroys the unnamed portal: an
    /// execute suspended on it is complete.
    fn end_unnamed_portal(&mut self) {
        if let Some(id) = self.portals.get(b"") {
            if let Some(op) = self.op_mut(id) {
                if op.suspended {
                    op.suspended = false;
                    op.done = true;
                }
            }
            self.portals.remove(b"");
        }
    }

    /// The operation an Execute of `portal` runs: the one its Bind created (continued when the
    /// portal was suspended), or a new one.
    fn execute_op(&mut self, ts: Timestamp, portal: &[u8], out: &mut Vec<DbEvent>) -> u64 {
        if let Some(id) = self.portals.get(portal) {
            let ran = self.op_mut(id).map(|op| op.executed && !op.suspended);
            match ran {
                // Bound and not executed yet, or suspended: this Execute runs it.
                Some(false) => {
                    let batch = self.batch;
                    if let Some(op) = self.op_mut(id) {
                        op.batch = batch;
                    }
                    self.batch_last = Some(id);
                    return id;
                }
                // The portal ran to completion already: a new execution of the same portal.
                Some(true) => {
                    let mut req = match self.op_mut(id) {
                        Some(op) => op.req.clone(),
                        None => Self::request(ts, Op::EXECUTE, 0),
                    };
                    req.ts = ts;
                    req.bytes = 0;
                    let new = self.push_op(Kind::Execute, req, out);
                    self.portals.bind(portal, new, usize::MAX);
                    return new;
                }
                None => {}
            }
        }
        out.push(DbEvent::Anomaly {
            dir: Direction::ToServer,
            kind: anomaly::UNKNOWN_PORTAL,
        });
        let mut req = Self::request(ts, Op::EXECUTE, 0);
        req.completeness = Completeness::Partial { lost_bytes: 0 };
        if !portal.is_empty() {
            req.attributes
                .push(("portal".into(), self.charset.decode(portal)));
        }
        self.push_op(Kind::Execute, req, out)
    }

    /// Bind: the execute it opens (or the Parse of this batch it turns into an execute), with
    /// the bound values decoded by the types the Parse declared.
    fn bind(
        &mut self,
        cx: &Cx<'_>,
        h: Header,
        body: &[u8],
        pos: usize,
        cut: Option<Completeness>,
        out: &mut Vec<DbEvent>,
    ) {
        let ts = cx.ts_at(pos);
        let limits = cx.limits;
        let Some(head) = messages::bind_head(body) else {
            return self.malformed(out);
        };
        // The Parse of this statement earlier in this batch, not bound yet: it becomes the
        // execute (one record for Parse + Bind + Execute). Operations are pushed at the back
        // with the batch current then, and batches only grow: this batch's are the ones at the
        // back (the others, up to `max_pending` when the server's side is not seen, are not
        // visited).
        let batch = self.batch;
        let parse_op = self
            .ops
            .iter()
            .rev()
            .take_while(|o| o.batch == batch)
            .find(|o| o.kind == Kind::Prepare && o.stmt.as_deref() == Some(head.statement))
            .map(|o| o.id);
        if head.nparams > limits.max_params {
            out.push(DbEvent::Anomaly {
                dir: Direction::ToServer,
                kind: anomaly::OVER_LIMIT,
            });
        }
        let charset = self.charset;
        // The values are stepped over here and decoded when the record is written, on the
        // record stage's thread (see `dbtap_core::ParamDecoder`).
        let (complete, used) = step_over_values(&head, limits);
        let (oids, sql, stmt_cut, known) = match self.stmts.get(head.statement) {
            Some(s) => {
                // The merged Parse operation holds the text already.
                let sql = if parse_op.is_none() {
                    s.sql.clone()
                } else {
                    None
                };
                (s.oids.clone(), sql, s.cut, true)
            }
            None => {
                out.push(DbEvent::Anomaly {
                    dir: Direction::ToServer,
                    kind: anomaly::UNKNOWN_STATEMENT,
                });
                (Arc::from([]), None, false, false)
            }
        };
        let params = DeferredParams::new(BindValues::new(charset, &head, used, oids, limits));
        let mut attrs = Vec::new();
        if !head.statement.is_empty() {
            attrs.push(("statement".into(), self.charset.decode(head.statement)));
        }
        if !head.portal.is_empty() {
            attrs.push(("portal".into(), self.charset.decode(head.portal)));
        }
        let mut completeness = cut.unwrap_or_default();
        if !complete {
            completeness = completeness.merge(Completeness::Truncated {
                kept: body.len() as u64,
                original: h.body_len() as u64,
            });
        }
        if !known {
            // The statement's text was not seen (mid-stream): say so.
            completeness = completeness.merge(Completeness::Partial { lost_bytes: 0 });
        }
        if head.portal.is_empty() {
            self.end_unnamed_portal();
        }
        let id = match parse_op {
            Some(id) => {
                if let Some(op) = self.op_mut(id) {
                    op.kind = Kind::Execute;
                    op.req.op = Some(Op::EXECUTE);
                    op.req.bytes += h.total() as u64;
                    op.req.deferred_params = Some(params);
                    op.req.attributes = attrs;
                    op.req.completeness = op.req.completeness.merge(completeness);
                    // ParseComplete may have arrived already (Parse, Flush, then Bind): the
                    // operation now waits for its Execute.
                    if op.cur.status != Status::Error {
                        op.done = false;
                    }
                }
                self.batch_last = Some(id);
                id
            }
            None => {
                let mut req = Self::request(ts, Op::EXECUTE, h.total());
                req.sql = sql;
                req.deferred_params = Some(params);
                req.attributes = attrs;
                req.completeness = completeness;
                if stmt_cut {
                    let kept = req.sql.as_ref().map_or(0, |s| s.len() as u64);
                    req.completeness = req.completeness.merge(Completeness::Truncated {
                        kept,
                        original: kept,
                    });
                }
                // (No statement name kept on the operation: only a Parse's is ever read.)
                self.push_op(Kind::Execute, req, out)
            }
        };
        self.portals
            .bind(head.portal, id, limits.max_prepared_statements);
        self.push_expect(ExpKind::Bind, Some(id), ts);
    }
}
