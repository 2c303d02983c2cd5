//! Server side: greeting, auth exchange, responses (OK, ERR, result sets, prepare), finishing a request.

use super::*;
use dbtap_core::event::SessionUpdate;
use dbtap_core::gap::Candidate;
use dbtap_core::{
    Abandon, DbError, DbEvent, Direction, ErrorCode, Limits, Login, Op, Request, Response, Status,
    Timestamp,
};

use crate::charset::{self, Charset};
use crate::codes::{header, status, Caps};
use crate::frame::{self, Header, HEADER_LEN};
use crate::messages::{self};
use crate::prepared::Stmt;
use crate::session::{transition, Event, Phase};
use crate::wire::Reader;

impl MysqlParser {
    pub(super) fn server_packet(
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

    pub(super) fn skip_server(&mut self, h: Header, rest: &[u8], counts: bool) -> Step {
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

    pub(super) fn greeting(
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
    pub(super) fn auth_packet(
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

    pub(super) fn db_error(&self, e: &messages::ErrPacket<'_>) -> DbError {
        DbError {
            code: ErrorCode::Num(e.code as i64),
            sqlstate: e.sqlstate.map(|s| String::from_utf8_lossy(s).into_owned()),
            // Error messages are in character_set_results; UTF-8 with escapes is the safe reading.
            message: dbtap_core::text::decode_utf8(e.message),
        }
    }

    /// A command-phase response packet.
    pub(super) fn response_packet(
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
                        // Without metadata the column definitions are absent, but the EOF
                        // that ends them is still sent unless the session uses DEPRECATE_EOF
                        // (MariaDB "Result set packets": "if not CLIENT_DEPRECATE_EOF: EOF
                        // packet" sits outside the metadata condition; MySQL's text_resultset
                        // page has the same layout for CLIENT_OPTIONAL_RESULTSET_METADATA).
                        p.state = if metadata {
                            RState::ColumnDefs { left: count }
                        } else {
                            RState::ColumnsEnd
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
    pub(super) fn ok_outcome(
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
    pub(super) fn end_result(&mut self, more: bool, out: &mut Vec<DbEvent>) {
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

    pub(super) fn push_outcome(&self, p: &mut Pending) {
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
    pub(super) fn finish(&mut self, out: &mut Vec<DbEvent>) {
        // Kept in its box: the fields are moved out one by one, not the whole struct first
        // (a copy of several hundred bytes per operation).
        let Some(mut p) = self.pending.take() else {
            return;
        };
        self.pending = self.pop_queued();
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
            p.req.login.as_deref().map(session_of)
        } else {
            None
        };
        let login_charset = p.req_login_charset();
        let kind = p.kind;
        // One record per statement when the server answered each; or up to a statement that
        // failed, the last result: the server stops a multi-statement query at its first error
        // (MySQL Reference Manual, "Multiple Statement Execution Support"), so what follows it
        // was not run, and the records must not say the statements before it failed.
        let answered = p.results.len();
        let stopped_at_error = answered > 0
            && p.results.last().is_some_and(|o| o.status == Status::Error)
            && p.split.as_ref().is_some_and(|s| s.len() > answered);
        let split_ok = p.split.as_ref().is_some_and(|s| s.len() == answered) || stopped_at_error;
        if split_ok {
            let ranges = p.split.take().unwrap_or_default();
            let sql = p.req.sql.take().unwrap_or_default();
            let results = std::mem::take(&mut p.results);
            let not_run = ranges.len() - answered;
            let rest = ranges.get(answered).and_then(|r| sql.get(r.start..));
            let mut not_run_attrs = Vec::new();
            if let (true, Some(rest)) = (stopped_at_error, rest) {
                let mut rest = rest.to_owned();
                dbtap_core::text::truncate_utf8(&mut rest, self.max_attr_len);
                not_run_attrs.push(("not_executed_statements".into(), not_run.to_string()));
                not_run_attrs.push(("not_executed_sql".into(), rest));
            }
            for (k, (range, o)) in ranges.into_iter().zip(results).enumerate() {
                let tx = self.next_tx();
                let mut req = Request {
                    tx,
                    ts: p.req.ts,
                    op: p.req.op.clone(),
                    sql: sql.get(range).map(Into::into),
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
                if k + 1 == answered {
                    req.attributes.append(&mut not_run_attrs);
                }
                out.push(DbEvent::Request(Box::new(req)));
                out.push(DbEvent::Response(Box::new(resp)));
            }
        } else {
            let tx = self.next_tx();
            p.req.tx = tx;
            p.resp.tx = tx;
            out.push(DbEvent::Request(p.req));
            out.push(DbEvent::Response(p.resp));
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
    pub(super) fn req_login_charset(&self) -> Option<Charset> {
        match self.effect {
            Effect::Charset(c) if self.kind == Kind::Auth => Some(c),
            _ => None,
        }
    }
}

/// Who the session is, as a login names it (applied once the login is accepted).
pub(super) fn session_of(l: &Login) -> SessionUpdate {
    SessionUpdate {
        user: l.user.clone(),
        database: l.database.clone(),
        client_program: l.client_program.clone(),
    }
}

pub(super) fn out_session_db(out: &mut Vec<DbEvent>, db: String) {
    out.push(DbEvent::Session(SessionUpdate {
        database: Some(db),
        ..Default::default()
    }));
}
