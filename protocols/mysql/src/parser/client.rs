//! Client side: handshake response, commands, COM_QUERY text and attributes, COM_STMT_EXECUTE.

use super::*;
use dbtap_core::gap::Candidate;
use dbtap_core::{
    Abandon, Completeness, DbEvent, Direction, Limits, Login, Op, Param, ParamValue, Request,
    Timestamp,
};

use crate::binary::decode_value;
use crate::charset::{self, Charset};
use crate::codes::{Caps, Command, FieldType};
use crate::frame::{Header, HEADER_LEN};
use crate::messages::{self, LoginInfo, ParamType};
use crate::prepared::{Stmt, MAX_LONG_DATA_PARAMS};
use crate::session::{transition, Event, Phase};
use crate::split;
use crate::wire::Reader;

impl MysqlParser {
    pub(super) fn client_packet(
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
            // "The sequence-id ... is reset to 0 when a new command begins in the Command
            // Phase": auth data never has sequence 0 (it follows the server's packets). A
            // command here means the login's answer is missing from the capture (one direction
            // mirrored, or a gap). Compressed sessions are left alone: their commands would be
            // framed differently from here on, and the switch point was not seen.
            Phase::Auth
                if h.seq == 0
                    && !self.compress_negotiated
                    && matches!(client_candidate(rest), Candidate::Yes) =>
            {
                self.login_unanswered(out);
                self.command(clock, limits, h, rest, pos, out)
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

    /// The client went on to commands without the login's answer in the capture: the login is
    /// recorded without a response (status unknown), and the session carries the user, database
    /// and program it named, as after an OK.
    fn login_unanswered(&mut self, out: &mut Vec<DbEvent>) {
        let session = self
            .pending
            .as_ref()
            .filter(|p| p.kind == Kind::Auth)
            .and_then(|p| p.req.login.as_deref())
            .map(super::server::session_of);
        let charset = self.pending.as_ref().and_then(|p| p.req_login_charset());
        self.flush_pending(out);
        if let Some(cs) = charset {
            self.charset = cs;
        }
        if let Some(s) = session {
            out.push(DbEvent::Session(s));
        }
        self.phase = transition(self.phase, Event::CommandAfterAuth).unwrap_or(Phase::Command);
    }

    /// Skip a packet's body; continuation packets of the same payload follow when it is full.
    pub(super) fn skip_body(&mut self, h: Header, rest: &[u8], counts: bool) -> Step {
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

    pub(super) fn note_cont(&mut self, dir: Direction, h: Header, counts: bool) {
        let d = &mut self.dirs[dir.index()];
        d.cont = h.continues();
        d.cont_counts = counts;
    }

    /// After handling `keep` bytes of a packet's payload: continue past it (whole packet) or
    /// skip the rest of a payload that was cut at a limit.
    pub(super) fn after(
        &mut self,
        dir: Direction,
        h: Header,
        rest: &[u8],
        kept: usize,
        counts: bool,
    ) -> Step {
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

    pub(super) fn handshake_response(
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
            // The answer is inside TLS: the request stays open, and the session layer closes
            // it as `encrypted` with the opaque bytes of both directions.
            req.expects_response = true;
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
            // Both sides must have a capability (MariaDB's extended ones included: the server
            // offers them in the greeting, the client in the handshake response's filler).
            caps &= self.server_caps.0;
        }
        self.caps = Caps(caps);
        self.deprecate_eof = Some(self.caps.has(Caps::DEPRECATE_EOF));
        self.query_attrs = Some(self.caps.has(Caps::QUERY_ATTRIBUTES));
        self.compress_negotiated = self.caps.0 & (Caps::COMPRESS | Caps::ZSTD) != 0;
        if info.collation != 0 {
            self.charset = charset::from_collation(info.collation);
        }
        if info.attrs_cut {
            out.push(DbEvent::Anomaly {
                dir: Direction::ToServer,
                kind: anomaly::OVER_LIMIT,
            });
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
        if let Some(p) = self.pend(req, Kind::Auth, out) {
            // What a gap inside this packet finds it by (`seen_head`), to give it the packet's
            // whole size and the bytes lost.
            p.req_payload = h.len as u64;
        }
        self.phase = transition(self.phase, Event::HandshakeResponse).unwrap_or(Phase::Auth);
        self.after(Direction::ToServer, h, rest, body.len(), true)
    }

    pub(super) fn login_from(&self, info: &LoginInfo<'_>, limits: &Limits) -> Login {
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
    pub(super) fn command(
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
                req.sql = Some(sql.into());
            }
            Command::STMT_PREPARE => {
                let (sql, tcut) = self.text(args, cut, limits);
                if tcut {
                    text_cut = Some((1, limits.max_statement_len.min(args.len()) as u64));
                }
                let sql: std::sync::Arc<str> = sql.into();
                prepare_sql = Some(sql.clone());
                req.sql = Some(sql);
                kind = Kind::Prepare;
            }
            Command::INIT_DB | Command::CREATE_DB | Command::DROP_DB => {
                let name = self.charset.decode(args);
                if cmd == Command::INIT_DB {
                    effect = Effect::Database(name.clone());
                }
                req.sql = Some(name.into());
            }
            Command::FIELD_LIST => {
                let table = Reader::new(args).nul_or_rest();
                req.sql = Some(self.charset.decode(table).into());
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
            Command::STMT_BULK_EXECUTE => {
                exec_stmt = self.bulk_execute(args, cut, &mut req, limits, out);
            }
            Command::STMT_RESET | Command::STMT_FETCH => {
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
                        if info.attrs_cut {
                            out.push(DbEvent::Anomaly {
                                dir: Direction::ToServer,
                                kind: anomaly::OVER_LIMIT,
                            });
                        }
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
    pub(super) fn text(&self, raw: &[u8], payload_cut: bool, limits: &Limits) -> (String, bool) {
        let keep = raw.get(..limits.max_statement_len).unwrap_or(raw);
        let mut s = self.charset.decode(keep);
        let cut = keep.len() < raw.len() || payload_cut;
        let cut2 =
            dbtap_core::text::truncate_utf8(&mut s, limits.max_statement_len.saturating_mul(4));
        (s, cut || cut2)
    }

    /// COM_QUERY arguments: query attributes (CLIENT_QUERY_ATTRIBUTES) into `req.attributes`,
    /// and the text.
    pub(super) fn query_text<'a>(
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

    pub(super) fn read_query_attrs(
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
                    bounded(self.charset.decode(name), limits.max_attribute_len).into(),
                    bounded(value, limits.max_attribute_len),
                ));
            }
        }
        Some(())
    }

    /// COM_STMT_EXECUTE arguments (after the command byte). Returns the statement id.
    /// The statement an execute names. MariaDB 10.2+: id -1 means "the statement prepared
    /// last"; when that prepare is still waiting for its answer (pipelined in the same write),
    /// its text is known but not its id or parameter count yet: returned as the second value
    /// (and the id stays -1). Otherwise the id, with -1 resolved to the last prepared one.
    fn named_statement(&mut self, id: u32) -> (u32, Option<std::sync::Arc<str>>) {
        if id != u32::MAX {
            return (id, None);
        }
        let pipelined = self
            .newest_mut()
            .filter(|p| p.kind == Kind::Prepare)
            .and_then(|p| p.prepare_sql.clone());
        match pipelined {
            Some(sql) => (id, Some(sql)),
            None => (self.last_prepared.unwrap_or(id), None),
        }
    }

    /// The prepared statement an execute (or bulk execute) names by `raw` id (see
    /// [`Self::named_statement`]). Sets the request's statement id and its text (the pipelined
    /// prepare's, or the statement's); an id never prepared in view counts `unknown_statement`.
    /// The statement comes back only when it is known with its parameter count.
    fn executed_statement(
        &mut self,
        raw: u32,
        req: &mut Request,
        out: &mut Vec<DbEvent>,
    ) -> (u32, Option<&mut Stmt>) {
        let (id, pipelined) = self.named_statement(raw);
        req.stmt_id = Some(id as u64);
        if pipelined.is_some() {
            req.sql = pipelined;
            return (id, None);
        }
        match self.stmts.get_mut(id) {
            Some(stmt) => {
                req.sql = stmt.sql.clone();
                (id, Some(stmt))
            }
            None => {
                out.push(DbEvent::Anomaly {
                    dir: Direction::ToServer,
                    kind: anomaly::UNKNOWN_STATEMENT,
                });
                (id, None)
            }
        }
    }

    /// MariaDB COM_STMT_BULK_EXECUTE (0xFA, 10.2.7+): int<4> statement id (-1: the statement
    /// prepared last, often pipelined in the same write), int<2> bulk flags, then the rows
    /// ([`bulk_rows`]). One record for the whole message: `params` holds every row's values
    /// in order (`param_row_width` per row), the attribute `bulk_rows` how many rows.
    pub(super) fn bulk_execute(
        &mut self,
        args: &[u8],
        cut: bool,
        req: &mut Request,
        limits: &Limits,
        out: &mut Vec<DbEvent>,
    ) -> Option<u32> {
        let mut r = Reader::new(args);
        let charset = self.charset;
        let (id, stmt) = self.executed_statement(r.u32()?, req, out);
        let flags = r.u16()?;
        let send_types = flags & BULK_SEND_TYPES != 0;
        let body = r.peek_rest();
        let rows = match stmt {
            Some(stmt) => {
                let b = bulk_rows(
                    body,
                    send_types,
                    stmt.params as usize,
                    stmt.types.as_deref(),
                    cut,
                    charset,
                    limits,
                );
                if let (Some(b), true) = (&b, send_types) {
                    stmt.types = Some(b.types.clone());
                }
                b
            }
            None => {
                if send_types && !cut {
                    infer_bulk(body, charset, limits)
                } else {
                    None
                }
            }
        };
        match rows {
            Some(b) => {
                if b.values_cut {
                    out.push(DbEvent::Anomaly {
                        dir: Direction::ToServer,
                        kind: anomaly::OVER_LIMIT,
                    });
                }
                if b.partial && !cut {
                    req.completeness = Completeness::Partial { lost_bytes: 0 };
                }
                req.attributes
                    .push(("bulk_rows".into(), b.rows.to_string()));
                req.param_row_width = u16::try_from(b.width).ok();
                req.params = Some(b.params);
            }
            None if !cut => req.completeness = Completeness::Partial { lost_bytes: 0 },
            None => {}
        }
        Some(id)
    }

    pub(super) fn execute(
        &mut self,
        args: &[u8],
        cut: bool,
        req: &mut Request,
        limits: &Limits,
        out: &mut Vec<DbEvent>,
    ) -> Option<u32> {
        let mut r = Reader::new(args);
        let qa = self.query_attrs == Some(true);
        let charset = self.charset;
        let (id, stmt) = self.executed_statement(r.u32()?, req, out);
        let flags = r.u8()?;
        let _iterations = r.u32()?;
        let Some(stmt) = stmt else {
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
            if i > limits.max_params && i >= num_params.min(limits.max_params) && names.is_empty() {
                // Nothing more will be kept (no named attributes follow): stop walking values.
                break;
            }
            let null = bitmap.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0);
            let p = if null {
                Param {
                    name: None,
                    type_name: type_name_of(types.get(i)),
                    value: ParamValue::Null,
                    truncated: false,
                }
            } else if let Some(bytes) = stmt.long_data_for(i) {
                Param {
                    name: None,
                    type_name: type_name_of(types.get(i)),
                    value: ParamValue::LongData { bytes },
                    truncated: false,
                }
            } else if broken {
                Param {
                    name: None,
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
                            name: None,
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
                            bounded(charset.decode(name), limits.max_attribute_len).into(),
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

/// COM_STMT_BULK_EXECUTE bulk flag: a field type and a flag byte per parameter follow.
const BULK_SEND_TYPES: u16 = 128;

/// The rows of a COM_STMT_BULK_EXECUTE.
pub(super) struct BulkRows {
    /// Parameter types the rows were read with.
    pub types: Vec<ParamType>,
    /// Values, row after row, at most `max_params`.
    pub params: Vec<Param>,
    /// Parameters per row.
    pub width: usize,
    /// Rows in the message.
    pub rows: u64,
    /// Values past `max_params` were walked, not kept.
    pub values_cut: bool,
    /// The message was cut inside a row (only accepted for a cut message).
    pub partial: bool,
}

/// Read the rows of a COM_STMT_BULK_EXECUTE body after its flags (MariaDB KB,
/// "COM_STMT_BULK_EXECUTE"): with SEND_TYPES_TO_SERVER, `width` (field type, flag) pairs;
/// then, until the end of the packet, rows of `width` values, each a parameter indicator
/// (0 NONE: the value follows in the binary protocol encoding of its type; 1 NULL; 2 DEFAULT;
/// 3 IGNORE) and, for NONE, the value. Without types in the message, `known` (the types bound
/// before) are used. `None` when the body does not read that way: it must end on a row
/// boundary unless the message was `cut`.
pub(super) fn bulk_rows(
    body: &[u8],
    send_types: bool,
    width: usize,
    known: Option<&[ParamType]>,
    cut: bool,
    charset: Charset,
    limits: &Limits,
) -> Option<BulkRows> {
    read_bulk_rows(
        body,
        send_types,
        width,
        known,
        cut,
        charset,
        limits,
        u64::MAX,
    )
}

/// [`bulk_rows`], reading at most `max_rows` rows (the rest of the body is then not looked at:
/// a probe of the first rows).
#[allow(clippy::too_many_arguments)]
fn read_bulk_rows(
    body: &[u8],
    send_types: bool,
    width: usize,
    known: Option<&[ParamType]>,
    cut: bool,
    charset: Charset,
    limits: &Limits,
    max_rows: u64,
) -> Option<BulkRows> {
    let mut r = Reader::new(body);
    let types: Vec<ParamType> = if send_types {
        let mut t = Vec::with_capacity(width.min(MAX_INFERRED_PARAMS));
        for _ in 0..width {
            let (ty, uns) = messages::param_type(&mut r)?;
            // Only known field types: a guessed parameter count must not read garbage.
            ty.name()?;
            t.push((ty, uns));
        }
        t
    } else {
        known.filter(|k| k.len() == width)?.to_vec()
    };
    let mut b = BulkRows {
        types,
        params: Vec::new(),
        width,
        rows: 0,
        values_cut: false,
        partial: false,
    };
    if width == 0 {
        return r.peek_rest().is_empty().then_some(b);
    }
    'rows: while !r.peek_rest().is_empty() && b.rows < max_rows {
        for &(ty, uns) in &b.types {
            let value = match r.u8() {
                Some(0) => decode_value(&mut r, ty, uns, charset, limits.max_param_len),
                Some(1) => Some(Param {
                    name: None,
                    type_name: ty.type_name(uns),
                    value: ParamValue::Null,
                    truncated: false,
                }),
                Some(2 | 3) => Some(Param {
                    name: None,
                    type_name: ty.type_name(uns),
                    value: ParamValue::Default,
                    truncated: false,
                }),
                _ => None,
            };
            let Some(p) = value else {
                if cut {
                    b.partial = true;
                    break 'rows;
                }
                return None;
            };
            if b.params.len() < limits.max_params {
                b.params.push(p);
            } else {
                b.values_cut = true;
            }
        }
        b.rows += 1;
    }
    Some(b)
}

/// Rows of a candidate parameter count decoded before it is tried on the whole message.
const BULK_PROBE_ROWS: u64 = 16;
/// Candidate counts whose probe succeeded that are tried on the whole message; more means the
/// message reads several ways, and no count is guessed.
const MAX_BULK_CANDIDATES: usize = 2;

/// A bulk execute whose statement's parameter count is not known (its prepare is pipelined in
/// the same write, or was not seen): the count for which the types and the rows read the
/// message exactly, when exactly one does. Needs the types in the message. Bounded work on a
/// hostile message: each count is first probed on [`BULK_PROBE_ROWS`] rows, and at most
/// [`MAX_BULK_CANDIDATES`] counts are read through the whole message.
fn infer_bulk(body: &[u8], charset: Charset, limits: &Limits) -> Option<BulkRows> {
    let mut candidates = Vec::new();
    for n in 1..=MAX_INFERRED_PARAMS.min(body.len() / 3) {
        // Cheap test first: n valid types, then a valid first indicator.
        let mut r = Reader::new(body);
        let types_ok =
            (0..n).all(|_| messages::param_type(&mut r).is_some_and(|(t, _)| t.name().is_some()));
        if !types_ok || !matches!(r.u8(), Some(0..=3)) {
            continue;
        }
        let probe = read_bulk_rows(body, true, n, None, false, charset, limits, BULK_PROBE_ROWS);
        if probe.is_some_and(|b| b.rows > 0) {
            if candidates.len() == MAX_BULK_CANDIDATES {
                return None;
            }
            candidates.push(n);
        }
    }
    let mut found = None;
    for n in candidates {
        if let Some(b) = bulk_rows(body, true, n, None, false, charset, limits) {
            if found.is_some() {
                return None;
            }
            found = Some(b);
        }
    }
    found
}

pub(super) fn type_name_of(t: Option<&ParamType>) -> std::borrow::Cow<'static, str> {
    match t {
        Some(&(ty, uns)) => ty.type_name(uns),
        None => "unknown".into(),
    }
}

/// A parameter value as attribute text.
pub(super) fn value_text(v: &ParamValue) -> String {
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
        // MySQL has no array values; kept total for the shared type.
        ParamValue::Array(items) => {
            let inner: Vec<String> = items.iter().map(value_text).collect();
            format!("[{}]", inner.join(","))
        }
        // TDS-only shapes, kept total for the shared type.
        ParamValue::Encrypted(_) => "<encrypted>".into(),
        ParamValue::Table { rows, .. } => format!("<table: {rows} rows>"),
        ParamValue::Default => "DEFAULT".into(),
    }
}

pub(super) fn bounded(mut s: String, max: usize) -> String {
    dbtap_core::text::truncate_utf8(&mut s, max);
    s
}

/// Mid-stream execute without its prepare: find the parameter count from the layout (null
/// bitmap, new-params-bound flag 1, types, values consuming the body exactly). Only when
/// exactly one count fits.
pub(super) fn infer_params(
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
                    name: None,
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
pub(super) fn set_charset_effect(sql: &str) -> Effect {
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

#[cfg(test)]
mod bulk_tests {
    use super::*;

    /// Two rows of (INT, VARCHAR) as the MariaDB KB lays COM_STMT_BULK_EXECUTE out after its
    /// flags: no types (bound before), then per value an indicator and, for NONE, the value.
    fn rows_without_types() -> Vec<u8> {
        let mut v = Vec::new();
        v.extend([0, 7, 0, 0, 0]); // NONE, LONG 7
        v.extend([0, 3, b'a', b'b', b'c']); // NONE, lenenc "abc"
        v.extend([1]); // NULL
        v.extend([2]); // DEFAULT
        v
    }

    const TYPES: [ParamType; 2] = [(FieldType(0x03), false), (FieldType(0xfd), false)];

    #[test]
    fn rows_with_types_bound_before() {
        let b = bulk_rows(
            &rows_without_types(),
            false,
            2,
            Some(&TYPES),
            false,
            Charset::default(),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!((b.rows, b.width, b.partial), (2, 2, false));
        let v: Vec<_> = b.params.iter().map(|p| p.value.clone()).collect();
        assert_eq!(
            v,
            [
                ParamValue::Int(7),
                ParamValue::Text("abc".into()),
                ParamValue::Null,
                ParamValue::Default
            ]
        );
        // Without the types there is nothing to read the values by.
        let none = bulk_rows(
            &rows_without_types(),
            false,
            2,
            None,
            false,
            Charset::default(),
            &Limits::default(),
        );
        assert!(none.is_none());
    }

    #[test]
    fn rows_must_end_on_a_row_boundary_unless_cut() {
        let mut body = rows_without_types();
        body.pop(); // the last row lacks its second value
        let args = |cut| {
            bulk_rows(
                &body,
                false,
                2,
                Some(&TYPES),
                cut,
                Charset::default(),
                &Limits::default(),
            )
        };
        assert!(args(false).is_none());
        let b = args(true).unwrap();
        assert_eq!((b.rows, b.partial, b.params.len()), (1, true, 3));
    }

    #[test]
    fn a_message_that_reads_several_ways_gives_no_count() {
        // All zeros: DECIMAL types and empty values read for many counts. None is guessed, and
        // the work stays bounded (probes of a few rows, at most two whole reads).
        let body = vec![0u8; 1 << 20];
        assert!(infer_bulk(&body, Charset::default(), &Limits::default()).is_none());
    }

    #[test]
    fn the_parameter_count_is_inferred_from_types_and_rows() {
        let mut body = vec![0x03, 0, 0xfd, 0]; // SEND_TYPES_TO_SERVER: LONG, VAR_STRING
        body.extend(rows_without_types());
        let b = infer_bulk(&body, Charset::default(), &Limits::default()).unwrap();
        assert_eq!((b.width, b.rows), (2, 2));
        // Values past max_params are walked (rows still counted), not kept.
        let limits = Limits {
            max_params: 3,
            ..Limits::default()
        };
        let b = infer_bulk(&body, Charset::default(), &limits).unwrap();
        assert_eq!((b.rows, b.params.len(), b.values_cut), (2, 3, true));
    }
}
