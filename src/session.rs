//! Session pairing: protocol-neutral events of one session → audit records.
//!
//! A session keeps what the records need that no single event carries (user, database, client
//! program, server version) and the requests waiting for their response. Responses are matched
//! in order by `tx`: a response to request *n* closes every earlier request still waiting as
//! unanswered first, so records of a session come out in the order the operations happened.

use std::collections::VecDeque;
use std::sync::Arc;

use dbtap_core::{DbEvent, Request, Response};

use crate::record::{Endpoint, Flags, SessionHeader};
use crate::sink::{RecordKey, RecordParts, RecordQueue, SharedContext};

/// Fixed facts about a session.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// Stable id (from the connection 4-tuple and its first packet time).
    pub id: u64,
    /// Protocol name.
    pub protocol: &'static str,
    /// Client side.
    pub client: Endpoint,
    /// Server side.
    pub server: Endpoint,
    /// Picked up after its start.
    pub midstream: bool,
    /// A redirect announced this connection (see [`crate::redirect`]).
    pub redirected: bool,
}

/// Counters of one session, added to the engine's on close.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionCounters {
    /// Records written.
    pub records: u64,
    /// Records without a response.
    pub no_response: u64,
    /// Responses that matched no waiting request.
    pub unmatched_responses: u64,
    /// Requests closed because too many were waiting.
    pub pending_overflow: u64,
    /// Desync events.
    pub desyncs: u64,
    /// Resync events.
    pub resyncs: u64,
}

/// Why a session is closed, when the sensor (not the protocol) closes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// FIN/RST: the connection ended.
    Ended,
    /// No packet for the idle timeout.
    Idle,
    /// Flow table memory cap.
    Evicted,
    /// End of the capture.
    CaptureEnd,
}

impl CloseReason {
    fn flags(self) -> Flags {
        match self {
            CloseReason::Ended => Flags::default(),
            CloseReason::Idle => Flags::IDLE_TIMEOUT,
            CloseReason::Evicted => Flags::EVICTED,
            CloseReason::CaptureEnd => Flags::CAPTURE_END,
        }
    }
}

/// One protocol session: context and waiting requests.
#[derive(Debug)]
pub struct Session {
    info: SessionInfo,
    /// The SQL dialect of the session's statements (from its protocol).
    dialect: crate::sql::Dialect,
    /// The fields all records of the session share, rendered once.
    header: Arc<SessionHeader>,
    user: Option<String>,
    database: Option<String>,
    client_program: Option<String>,
    server_version: Option<String>,
    /// The session's context (user, database, client program, server version) as records share
    /// it; dropped whenever the context changes, made again for the next record.
    context: Option<Arc<SharedContext>>,
    connection_id: Option<u64>,
    pending: VecDeque<Box<Request>>,
    max_pending: usize,
    next_seq: u64,
    encrypted: bool,
    /// A desync happened since the last record: the next one says so.
    after_gap: bool,
    counters: SessionCounters,
}

impl Session {
    /// A new session.
    pub fn new(info: SessionInfo, max_pending: usize) -> Self {
        Session {
            dialect: crate::sql::Dialect::of_protocol(info.protocol),
            header: Arc::new(SessionHeader::new(
                info.protocol,
                info.id,
                info.client,
                info.server,
            )),
            info,
            user: None,
            database: None,
            client_program: None,
            server_version: None,
            context: None,
            connection_id: None,
            pending: VecDeque::new(),
            max_pending: max_pending.max(1),
            next_seq: 1,
            encrypted: false,
            after_gap: false,
            counters: SessionCounters::default(),
        }
    }

    /// Fixed facts.
    pub fn info(&self) -> &SessionInfo {
        &self.info
    }

    /// Counters so far.
    pub fn counters(&self) -> &SessionCounters {
        &self.counters
    }

    /// Whether the session switched to TLS.
    pub fn encrypted(&self) -> bool {
        self.encrypted
    }

    /// Apply one event; write the records it completes.
    pub fn on_event(&mut self, event: DbEvent, queue: &mut RecordQueue) {
        match event {
            DbEvent::ServerInfo {
                version,
                connection_id,
            } => {
                self.context = None;
                if version.is_some() {
                    self.server_version = version;
                }
                if connection_id.is_some() {
                    self.connection_id = connection_id;
                }
            }
            DbEvent::Request(req) => {
                if !req.expects_response {
                    self.flush_before(req.tx, queue);
                    self.write(req, None, Flags::default(), queue);
                    return;
                }
                if self.pending.len() >= self.max_pending {
                    if let Some(old) = self.pending.pop_front() {
                        self.counters.pending_overflow += 1;
                        self.write_unanswered(old, Flags::default(), queue);
                    }
                }
                self.pending.push_back(req);
            }
            DbEvent::Response(resp) => {
                self.flush_before(resp.tx, queue);
                match self.pending.front() {
                    Some(front) if front.tx == resp.tx => {
                        if let Some(req) = self.pending.pop_front() {
                            self.write(req, Some(resp), Flags::default(), queue);
                        }
                    }
                    _ => self.counters.unmatched_responses += 1,
                }
            }
            DbEvent::Session(update) => {
                self.context = None;
                if update.user.is_some() {
                    self.user = update.user;
                }
                if let Some(db) = update.database {
                    // An empty name means "no default database" (e.g. after DROP DATABASE).
                    self.database = (!db.is_empty()).then_some(db);
                }
                if update.client_program.is_some() {
                    self.client_program = update.client_program;
                }
            }
            DbEvent::Encrypted => self.encrypted = true,
            DbEvent::Desync { .. } => {
                self.counters.desyncs += 1;
                self.after_gap = true;
            }
            DbEvent::Resync { .. } => self.counters.resyncs += 1,
            // Counted by the engine, per kind.
            DbEvent::Anomaly { .. } => {}
        }
    }

    /// Close the session: requests still waiting are written as unanswered (or, in an encrypted
    /// session, as encrypted with the bytes that could not be read).
    pub fn close(
        &mut self,
        reason: CloseReason,
        encrypted_bytes: [u64; 2],
        queue: &mut RecordQueue,
    ) {
        let mut first = true;
        while let Some(req) = self.pending.pop_front() {
            if self.encrypted {
                let mut req = req;
                if first {
                    // The opaque bytes belong to the operation that switched to TLS.
                    req.bytes += encrypted_bytes[0];
                }
                let resp_bytes = if first { encrypted_bytes[1] } else { 0 };
                first = false;
                self.write_encrypted(req, resp_bytes, reason.flags(), queue);
            } else {
                self.write_unanswered(req, reason.flags(), queue);
            }
        }
    }

    fn flush_before(&mut self, tx: u64, queue: &mut RecordQueue) {
        while self.pending.front().is_some_and(|r| r.tx < tx) {
            if let Some(old) = self.pending.pop_front() {
                self.write_unanswered(old, Flags::default(), queue);
            }
        }
    }

    fn write_unanswered(&mut self, req: Box<Request>, extra: Flags, queue: &mut RecordQueue) {
        self.counters.no_response += 1;
        self.write(req, None, extra.with(Flags::NO_RESPONSE), queue);
    }

    fn write_encrypted(
        &mut self,
        req: Box<Request>,
        response_bytes: u64,
        extra: Flags,
        queue: &mut RecordQueue,
    ) {
        let mut flags = extra.with(Flags::ENCRYPTED);
        flags.insert(Flags::from_completeness(req.completeness));
        self.emit(req, None, flags, response_bytes, queue);
    }

    fn write(
        &mut self,
        req: Box<Request>,
        resp: Option<Box<Response>>,
        extra: Flags,
        queue: &mut RecordQueue,
    ) {
        let mut flags = extra;
        flags.insert(Flags::from_completeness(req.completeness));
        if let Some(r) = &resp {
            flags.insert(Flags::from_completeness(r.completeness));
        }
        if self.encrypted {
            flags.insert(Flags::ENCRYPTED);
        }
        let response_bytes = resp.as_ref().map_or(0, |r| r.bytes);
        self.emit(req, resp, flags, response_bytes, queue);
    }

    fn emit(
        &mut self,
        req: Box<Request>,
        resp: Option<Box<Response>>,
        mut flags: Flags,
        response_bytes: u64,
        queue: &mut RecordQueue,
    ) {
        if self.info.midstream {
            flags.insert(Flags::MIDSTREAM);
        }
        if self.info.redirected {
            flags.insert(Flags::REDIRECTED);
        }
        if std::mem::take(&mut self.after_gap) {
            flags.insert(Flags::AFTER_GAP);
        }
        if req.login_encrypted {
            flags.insert(Flags::LOGIN_ENCRYPTED);
        }
        let context = self
            .context
            .get_or_insert_with(|| {
                Arc::new(SharedContext::new(
                    self.user.clone(),
                    self.database.clone(),
                    self.client_program.clone(),
                    self.server_version.clone(),
                ))
            })
            .clone();
        let seq = self.next_seq;
        self.next_seq += 1;
        self.counters.records += 1;
        queue.push(RecordParts {
            key: RecordKey {
                position: queue.position(),
                session_id: self.info.id,
                seq,
            },
            header: self.header.clone(),
            context,
            dialect: self.dialect,
            connection_id: self.connection_id,
            req,
            resp,
            flags,
            response_bytes,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::RecordSink;
    use dbtap_core::{DbError, ErrorCode, Login, Op, SessionUpdate, Status, Timestamp};
    use std::net::{IpAddr, Ipv4Addr};

    fn session() -> Session {
        let ep = |last, port| Endpoint {
            ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)),
            port,
        };
        Session::new(
            SessionInfo {
                id: 0xabc,
                protocol: "mysql",
                client: ep(1, 40000),
                server: ep(2, 3306),
                midstream: false,
                redirected: false,
            },
            4,
        )
    }

    fn req(tx: u64, op: Op, sql: &str) -> DbEvent {
        DbEvent::Request(Box::new(Request {
            tx,
            ts: Timestamp(1_000_000_000 + tx * 1_000_000),
            op: Some(op),
            sql: Some(sql.into()),
            bytes: 10,
            expects_response: true,
            ..Default::default()
        }))
    }

    fn resp(tx: u64, rows: u64) -> DbEvent {
        DbEvent::Response(Box::new(Response {
            tx,
            ts_end: Timestamp(1_000_000_000 + tx * 1_000_000 + 250_000),
            status: Status::Ok,
            rows: Some(rows),
            bytes: 20,
            ..Default::default()
        }))
    }

    fn lines(queue: &mut RecordQueue) -> Vec<serde_json::Value> {
        let mut out = RecordSink::default();
        out.write_queue(queue);
        out.batch()
            .lines()
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    #[test]
    fn login_then_query_carry_user_and_latency() {
        let mut s = session();
        let mut queue = RecordQueue::default();
        s.on_event(
            DbEvent::ServerInfo {
                version: Some("8.0.26".into()),
                connection_id: Some(7),
            },
            &mut queue,
        );
        s.on_event(
            DbEvent::Request(Box::new(Request {
                tx: 0,
                ts: Timestamp(1_000_000_000),
                op: Some(Op::LOGIN),
                login: Some(Box::new(Login {
                    user: Some("root".into()),
                    database: Some("his".into()),
                    client_program: Some("mysql".into()),
                    auth_method: Some("mysql_native_password".into()),
                    attributes: vec![("_os".into(), "Linux".into())],
                    credentials_redacted: true,
                })),
                bytes: 80,
                expects_response: true,
                ..Default::default()
            })),
            &mut queue,
        );
        s.on_event(resp(0, 0), &mut queue);
        s.on_event(
            DbEvent::Session(SessionUpdate {
                user: Some("root".into()),
                database: Some("his".into()),
                client_program: None,
            }),
            &mut queue,
        );
        s.on_event(req(1, Op::QUERY, "select 1"), &mut queue);
        s.on_event(resp(1, 1), &mut queue);
        let got = lines(&mut queue);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0]["op"], "login");
        assert_eq!(got[0]["user"], "root");
        assert_eq!(got[0]["login"]["attributes"]["_os"], "Linux");
        assert_eq!(got[0]["login"]["credentials_redacted"], true);
        assert_eq!(got[0]["server_version"], "8.0.26");
        assert_eq!(got[1]["seq"], 2);
        assert_eq!(got[1]["user"], "root");
        assert_eq!(got[1]["database"], "his");
        assert_eq!(got[1]["sql"], "select 1");
        assert_eq!(got[1]["rows"], 1);
        assert_eq!(got[1]["latency_us"], 250); // 250_000 ns
        assert_eq!(got[1]["bytes"]["request"], 10);
        assert_eq!(got[1]["bytes"]["response"], 20);
        assert_eq!(got[1]["session_id"], "0000000000000abc");
        assert_eq!(got[1]["ts"], "1970-01-01T00:00:01.001000Z");
        assert_eq!(got[1]["connection_id"], 7);
    }

    #[test]
    fn a_record_keeps_the_context_it_was_completed_in() {
        // Records are serialized later, on the record thread: one completed before a change of
        // database must still say the old one.
        let mut s = session();
        let mut queue = RecordQueue::default();
        let use_db = |db: &str| {
            DbEvent::Session(SessionUpdate {
                user: Some("his_app".into()),
                database: Some(db.into()),
                client_program: None,
            })
        };
        s.on_event(use_db("his"), &mut queue);
        s.on_event(req(1, Op::QUERY, "select 1"), &mut queue);
        s.on_event(resp(1, 1), &mut queue);
        s.on_event(use_db("lis"), &mut queue);
        s.on_event(req(2, Op::QUERY, "select 2"), &mut queue);
        s.on_event(resp(2, 1), &mut queue);
        let got = lines(&mut queue);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0]["sql"], "select 1");
        assert_eq!(got[0]["database"], "his");
        assert_eq!(got[1]["sql"], "select 2");
        assert_eq!(got[1]["database"], "lis");
        assert_eq!(got[1]["user"], "his_app");
    }

    #[test]
    fn a_later_response_closes_earlier_requests_as_unanswered_in_order() {
        let mut s = session();
        let mut queue = RecordQueue::default();
        s.on_event(req(1, Op::QUERY, "a"), &mut queue);
        s.on_event(req(2, Op::QUERY, "b"), &mut queue);
        s.on_event(
            DbEvent::Response(Box::new(Response {
                tx: 2,
                status: Status::Error,
                error: Some(DbError {
                    code: ErrorCode::Num(1146),
                    sqlstate: Some("42S02".into()),
                    message: "no table".into(),
                }),
                ..Default::default()
            })),
            &mut queue,
        );
        let got = lines(&mut queue);
        assert_eq!(got[0]["sql"], "a");
        assert_eq!(got[0]["status"], "unknown");
        assert_eq!(got[0]["flags"], serde_json::json!(["no_response"]));
        assert_eq!(got[0]["latency_us"], serde_json::Value::Null);
        assert_eq!(got[1]["sql"], "b");
        assert_eq!(got[1]["status"], "error");
        assert_eq!(got[1]["error"]["code"], 1146);
        assert_eq!(got[1]["error"]["sqlstate"], "42S02");
        assert_eq!(s.counters().no_response, 1);
    }

    #[test]
    fn close_writes_waiting_requests_with_the_reason() {
        let mut s = session();
        let mut queue = RecordQueue::default();
        s.on_event(req(1, Op::QUERY, "slow"), &mut queue);
        s.close(CloseReason::CaptureEnd, [0, 0], &mut queue);
        let got = lines(&mut queue);
        assert_eq!(
            got[0]["flags"],
            serde_json::json!(["no_response", "capture_end"])
        );
    }

    #[test]
    fn encrypted_session_gets_its_opaque_bytes() {
        let mut s = session();
        let mut queue = RecordQueue::default();
        s.on_event(req(0, Op::LOGIN, ""), &mut queue);
        s.on_event(DbEvent::Encrypted, &mut queue);
        s.close(CloseReason::Ended, [500, 4000], &mut queue);
        let got = lines(&mut queue);
        assert_eq!(got[0]["flags"], serde_json::json!(["encrypted"]));
        assert_eq!(got[0]["status"], "unknown");
        assert_eq!(got[0]["bytes"]["request"], 510);
        assert_eq!(got[0]["bytes"]["response"], 4000);
    }

    #[test]
    fn no_response_expected_is_ok_at_once() {
        let mut s = session();
        let mut queue = RecordQueue::default();
        let mut r = Request {
            tx: 3,
            op: Some(Op::LOGOUT),
            expects_response: false,
            ..Default::default()
        };
        r.bytes = 5;
        s.on_event(DbEvent::Request(Box::new(r)), &mut queue);
        let got = lines(&mut queue);
        assert_eq!(got[0]["op"], "logout");
        assert_eq!(got[0]["status"], "ok");
        assert_eq!(got[0]["flags"], serde_json::json!([]));
    }

    #[test]
    fn pending_overflow_closes_the_oldest() {
        let mut s = session();
        let mut queue = RecordQueue::default();
        for tx in 0..5 {
            s.on_event(req(tx, Op::QUERY, "q"), &mut queue);
        }
        assert_eq!(s.counters().pending_overflow, 1);
        assert_eq!(lines(&mut queue).len(), 1);
    }
}
