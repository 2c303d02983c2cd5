//! Real captures (tests/streams/*.txt, extracted with extract.py; provenance in each file's
//! header) fed through `dbtap_core::Driver` exactly as the engine does. Expected values were
//! cross-checked against tshark's decode (`tshark -Y pgsql -T fields -e pgsql.query -e pgsql.type
//! -e pgsql.code -e pgsql.tag`) and the capture rows of shared/captures/SOURCES.md; where this
//! parser and tshark differ, the test says why.
mod common;

use common::{feed, load, pairs, run, run_mid, summary, Seg};
use dbtap_core::event::SessionUpdate;
use dbtap_core::{
    Completeness, DbEvent, Direction, DriverState, ErrorCode, Limits, ParamValue, SessionOpts,
    Status, Upgrade,
};

fn login_of(ev: &[DbEvent]) -> (dbtap_core::Request, Option<dbtap_core::Response>) {
    pairs(ev)
        .into_iter()
        .find(|(r, _)| r.op.as_ref().is_some_and(|o| o.as_str() == "login"))
        .expect("a login record")
}

fn sqlstate(r: &Option<dbtap_core::Response>) -> String {
    match &r.as_ref().unwrap().error.as_ref().unwrap().code {
        ErrorCode::Text(s) => s.clone(),
        c => panic!("{c:?}"),
    }
}

#[test]
fn scram_login_then_query_then_logout() {
    // psql-select-now: SSLRequest refused (N), SCRAM-SHA-256 (AuthenticationSASL 10, 11, 12,
    // then 0), ParameterStatus × 13, BackendKeyData, ReadyForQuery; select now(); Terminate.
    let ev = run("scram_select_now");
    assert_eq!(
        ev[0],
        DbEvent::ServerInfo {
            version: Some("14.5 (Debian 14.5-1.pgdg110+1)".into()),
            connection_id: Some(96),
        }
    );
    assert!(ev.contains(&DbEvent::Session(SessionUpdate {
        user: Some("zeek".into()),
        database: Some("zeek".into()),
        client_program: Some("psql".into()),
    })));
    assert_eq!(
        summary(&ev),
        vec![
            "1 login \"\" => Ok rows=None",
            "2 query \"select now()\" => Ok rows=Some(1)",
            "3 logout \"\" => -",
        ]
    );
    let (login, resp) = login_of(&ev);
    let l = login.login.as_ref().unwrap();
    assert_eq!(l.auth_method.as_deref(), Some("scram-sha-256"));
    assert!(l.credentials_redacted);
    assert_eq!(
        l.attributes,
        vec![
            ("user".into(), "zeek".to_string()),
            ("database".into(), "zeek".into()),
            ("application_name".into(), "psql".into()),
            ("client_encoding".into(), "UTF8".into()),
        ]
    );
    // SSLRequest 8 + StartupMessage 76 + SASLInitialResponse 55 + SASLResponse 109.
    assert_eq!(login.bytes, 8 + 76 + 55 + 109);
    // 'N' 1 + AuthenticationSASL 24 + SASLContinue 93 + SASLFinal, Ok, ParameterStatus ×13,
    // BackendKeyData, ReadyForQuery 465.
    assert_eq!(resp.as_ref().unwrap().bytes, 1 + 24 + 93 + 465);
    assert_eq!(resp.as_ref().unwrap().status, Status::Ok);
    let p = pairs(&ev);
    assert!(!p[2].0.expects_response);
    assert!(p[1].1.as_ref().unwrap().ts_end >= p[1].0.ts);
}

#[test]
fn scram_wrong_password_is_28p01() {
    for name in ["scram_login_wrong", "scram_login_fail"] {
        let ev = run(name);
        let p = pairs(&ev);
        assert_eq!(p.len(), 1, "{name}");
        let (login, resp) = &p[0];
        assert_eq!(sqlstate(resp), "28P01");
        let user = login.login.as_ref().unwrap().user.clone().unwrap();
        assert_eq!(
            resp.as_ref().unwrap().error.as_ref().unwrap().message,
            format!("password authentication failed for user \"{user}\"")
        );
        assert_eq!(
            login.login.as_ref().unwrap().auth_method.as_deref(),
            Some("scram-sha-256")
        );
        assert!(login.login.as_ref().unwrap().credentials_redacted);
        // No session: the login failed.
        assert!(!ev.iter().any(|e| matches!(e, DbEvent::Session(_))));
    }
}

#[test]
fn unknown_role_is_28000_without_credentials() {
    let ev = run("login_no_role");
    let (login, resp) = login_of(&ev);
    assert_eq!(sqlstate(&resp), "28000");
    assert_eq!(
        resp.as_ref().unwrap().error.as_ref().unwrap().message,
        "role \"test\" does not exist"
    );
    let l = login.login.as_ref().unwrap();
    assert_eq!(l.user.as_deref(), Some("test"));
    assert_eq!(l.client_program.as_deref(), Some("Navicat"));
    // pg_hba says trust: AuthenticationOk, then the role lookup fails (28000). No password
    // was sent.
    assert_eq!(l.auth_method.as_deref(), Some("trust"));
    assert!(!l.credentials_redacted);
}

#[test]
fn md5_logins() {
    // Failed MD5 (junkie cant_connect): 28000 on PostgreSQL 8.4 (before 9.x it had no 28P01).
    let ev = run("md5_login_fail_28000");
    let (login, resp) = login_of(&ev);
    assert_eq!(sqlstate(&resp), "28000");
    assert_eq!(
        resp.as_ref().unwrap().error.as_ref().unwrap().message,
        "password authentication failed for user \"nova\""
    );
    assert_eq!(
        login.login.as_ref().unwrap().auth_method.as_deref(),
        Some("md5")
    );
    // Successful MD5 after a refused SSLRequest (suricata-verify ssl-rejected-md5…, stream 1).
    let ev = run("ssl_rejected_md5_query");
    assert_eq!(
        summary(&ev),
        vec![
            "1 login \"\" => Ok rows=None",
            "2 query \"select * from rules where sid = 2021701;\" => Ok rows=Some(3)",
            "3 logout \"\" => -",
        ]
    );
    let (login, _) = login_of(&ev);
    assert_eq!(
        login.login.as_ref().unwrap().auth_method.as_deref(),
        Some("md5")
    );
    assert_eq!(
        login.login.as_ref().unwrap().user.as_deref(),
        Some("indexer")
    );
    // Stream 0 of the same capture: the client gave up at the password prompt (psql
    // reconnects after asking the user): a login without an outcome, but with the server's
    // answer (the SSL refusal `N` and AuthenticationMD5Password: 1 + 13 bytes).
    let p = pairs(&run("ssl_rejected_abandoned"));
    assert_eq!(p.len(), 1);
    let r = p[0]
        .1
        .as_ref()
        .expect("the server's answer is the record's");
    assert_eq!((r.status, r.bytes), (Status::Unknown, 14));
    assert_eq!(
        p[0].0.attributes,
        [(
            "authentication".into(),
            "unfinished: the connection ended before its outcome".to_string()
        )]
    );
    assert_eq!(
        p[0].0.login.as_ref().unwrap().auth_method.as_deref(),
        Some("md5")
    );
    // pgAdmin's MD5 login: the client program comes from application_name.
    let ev = run("md5_login_pgadmin");
    let (login, resp) = login_of(&ev);
    let l = login.login.as_ref().unwrap();
    assert_eq!(
        (
            l.user.as_deref(),
            l.database.as_deref(),
            l.client_program.as_deref()
        ),
        (
            Some("cooluser"),
            Some("dbdbdbdb"),
            Some("pgAdmin III - Browser")
        )
    );
    assert_eq!(resp.unwrap().status, Status::Ok);
    assert!(ev.contains(&DbEvent::ServerInfo {
        version: Some("8.4.17".into()),
        connection_id: Some(26997)
    }));
}

#[test]
fn cleartext_and_trust_logins() {
    let ev = run("cleartext_login");
    let (login, resp) = login_of(&ev);
    let l = login.login.as_ref().unwrap();
    assert_eq!(l.auth_method.as_deref(), Some("cleartext"));
    assert_eq!(l.user.as_deref(), Some("ju-Test"));
    assert!(l.credentials_redacted);
    assert_eq!(resp.unwrap().status, Status::Ok);
    // The cleartext password ("TestTest!2" in the capture) appears in no event.
    let dump = format!("{ev:?}");
    assert!(!dump.contains("TestTest"), "password leaked: {dump}");
    // Trust: AuthenticationOk straight away.
    let ev = run("trust_login_terminate");
    let (login, _) = login_of(&ev);
    assert_eq!(
        login.login.as_ref().unwrap().auth_method.as_deref(),
        Some("trust")
    );
    assert!(!login.login.as_ref().unwrap().credentials_redacted);
}

#[test]
fn no_secret_in_any_event() {
    // Every PasswordMessage / SASLInitialResponse / SASLResponse the clients sent: no piece of
    // their secret part (MD5 hash, SCRAM nonce and proof, cleartext password) may appear in
    // any event. SCRAM's first message starts with the mechanism name, which is not secret.
    for name in [
        "scram_select_now",
        "scram_login_wrong",
        "scram_login_fail",
        "scram_crud",
        "md5_select_now",
        "md5_login_pgadmin",
        "cleartext_login",
        "cancel_session",
        "rollback",
    ] {
        let segs = load(name);
        let dump = format!("{:?}", run(name));
        let mut checked = 0;
        for s in &segs {
            let Seg::Data(Direction::ToServer, _, b) = s else {
                continue;
            };
            if b.first() != Some(&b'p') {
                continue;
            }
            let body = &b[5..];
            let secret = match body.iter().position(|&x| x == 0) {
                // SASLInitialResponse: mechanism NUL, Int32 length, client-first-message.
                Some(n) if body.starts_with(b"SCRAM") => &body[n + 5..],
                _ => body,
            };
            for w in secret
                .chunks(6)
                .filter(|w| w.len() == 6 && w.iter().all(|c| c.is_ascii_graphic()))
            {
                let w = std::str::from_utf8(w).unwrap();
                assert!(
                    !dump.contains(w),
                    "{name}: {w:?} of a credential is in the events"
                );
                checked += 1;
            }
        }
        assert!(checked > 0, "{name}: no credential message found");
    }
    // The cancel key of BackendKeyData (stream 0) and CancelRequest (stream 1) is not kept:
    // only the process id.
    let dump = format!("{:?}", run("cancel_request"));
    assert!(!dump.contains("key"));
}

#[test]
fn ssl_accepted_is_encrypted() {
    for name in ["ssl_require_aws", "upgrade_tls", "ssl_accepted_junkie"] {
        let segs = load(name);
        let (ev, d, _) = feed(&segs, SessionOpts::default(), Limits::default());
        assert_eq!(d.state(), DriverState::Upgraded(Upgrade::Tls), "{name}");
        // SSLRequest (8 bytes) then 'S': the login stays open, the session is encrypted.
        let p = pairs(&ev);
        assert_eq!(p.len(), 1, "{name}");
        assert_eq!(p[0].0.op.as_ref().unwrap().as_str(), "login");
        assert!(p[0].0.expects_response);
        assert!(p[0].1.is_none());
        assert_eq!(p[0].0.bytes, 8);
        assert!(ev.contains(&DbEvent::Encrypted));
        assert_eq!(d.stats().parsed, [8, 1], "{name}");
    }
}

#[test]
fn replication_refused_by_pg_hba() {
    // upgrade-tls, stream 1: a walreceiver's replication connection without SSL, refused.
    let ev = run("replication_refused");
    let (login, resp) = login_of(&ev);
    let l = login.login.as_ref().unwrap();
    assert_eq!(l.user.as_deref(), Some("rep"));
    assert_eq!(l.client_program.as_deref(), Some("walreceiver"));
    assert!(l
        .attributes
        .contains(&("replication".to_string(), "true".to_string())));
    // A physical replication connection connects to no database.
    assert_eq!(l.database.as_deref(), Some("replication"));
    assert_eq!(sqlstate(&resp), "28000");
    assert!(resp.unwrap().error.unwrap().message.starts_with(
        "no pg_hba.conf entry for replication connection from host \"192.168.50.11\""
    ));
}

#[test]
fn cancel_request_on_its_own_connection() {
    // Stream 1: CancelRequest(pid 28954); the server closes it without an answer.
    let p = pairs(&run("cancel_request"));
    assert_eq!(p.len(), 1);
    let (c, r) = &p[0];
    assert_eq!(c.op.as_ref().unwrap().as_str(), "cancel");
    assert!(!c.expects_response);
    assert!(r.is_none());
    assert_eq!(c.bytes, 16);
    assert_eq!(
        c.attributes,
        vec![("target_backend_pid".into(), "28954".to_string())]
    );
    // Stream 0: the cancelled query fails with 57014; its backend pid is the target.
    let ev = run("cancel_session");
    assert!(ev.contains(&DbEvent::ServerInfo {
        version: Some("13.6 (Debian 13.6-1.pgdg110+1)".into()),
        connection_id: Some(28954)
    }));
    let p = pairs(&ev);
    assert_eq!(p[1].0.sql.as_deref(), Some("select pg_sleep(9)"));
    assert_eq!(sqlstate(&p[1].1), "57014");
    assert_eq!(
        p[1].1.as_ref().unwrap().error.as_ref().unwrap().message,
        "canceling statement due to user request"
    );
}

#[test]
fn copy_from_stdin_is_skipped_and_counted() {
    let segs = load("copy_in");
    let (ev, d, _) = feed(&segs, SessionOpts::default(), Limits::default());
    let p = pairs(&ev);
    let (q, r) = &p[1];
    assert_eq!(q.sql.as_deref(), Some("COPY tmp FROM STDIN"));
    let r = r.as_ref().unwrap();
    // CommandComplete "COPY 5".
    assert_eq!((r.status, r.rows), (Status::Ok, Some(5)));
    // Query (25) + CopyData + CopyDone: every byte the client sent for the COPY.
    assert_eq!(q.bytes, 2814);
    // The CopyData bodies were skipped, not buffered.
    assert_eq!(d.stats().skipped[0], 2779);
    // All client bytes are in some record.
    let client: u64 = p.iter().map(|(q, _)| q.bytes).sum();
    assert_eq!(client, d.stats().parsed[0] + d.stats().skipped[0]);
}

#[test]
fn error_inside_a_transaction_and_commit_that_rolls_back() {
    let ev = run("rollback");
    let s = summary(&ev);
    // tshark: 22 simple queries; 22012 then 25P02 × 3 then COMMIT answered ROLLBACK.
    assert_eq!(s.len(), 1 + 22 + 1);
    assert_eq!(
        &s[10..15],
        &[
            "11 query \"SELECT 1/0;\" => Error rows=None err=Text(\"22012\")",
            "12 query \"INSERT INTO new_table VALUES('Maugre', 'prof_folloy@gmail.com');\" => Error rows=None err=Text(\"25P02\")",
            "13 query \"INSERT INTO new_table VALUES('Londubat', 'prof_londubat@gmail.com');\" => Error rows=None err=Text(\"25P02\")",
            "14 query \"SELECT * FROM new_table;\" => Error rows=None err=Text(\"25P02\")",
            "15 query \"COMMIT;\" => Ok rows=None",
        ]
    );
    let p = pairs(&ev);
    // The COMMIT of the failed transaction was answered ROLLBACK: the record says so.
    assert_eq!(
        p[14].0.attributes,
        vec![("transaction".into(), "rolled_back".to_string())]
    );
    assert!(p[6].0.attributes.is_empty()); // the first COMMIT committed
    assert_eq!(
        p[10].1.as_ref().unwrap().error.as_ref().unwrap().message,
        "division by zero"
    );
    assert_eq!(s.last().unwrap(), "24 logout \"\" => -");
    assert_eq!(
        s[22],
        "23 query \"SELECT * FROM new_table;\" => Ok rows=Some(8)"
    );
}

#[test]
fn extended_protocol_from_a_jdbc_like_client() {
    // beats pgsql_extended_query: Parse/Bind/Execute/Sync, then Parse/Bind/Describe/Execute/
    // Sync with one int4 parameter.
    let ev = run("extended_query");
    let p = pairs(&ev);
    assert_eq!(
        summary(&ev)[1..],
        [
            "2 execute \"SET extra_float_digits = 3\" => Ok rows=None",
            "3 execute \"SELECT * from test where id = $1\" => Ok rows=Some(1)",
        ]
    );
    let (q, r) = &p[2];
    assert_eq!(
        q.decoded_params().unwrap(),
        vec![dbtap_core::Param {
            name: None,
            type_name: "int4".into(),
            value: ParamValue::Int(1),
            truncated: false
        }]
    );
    assert!(q.attributes.is_empty()); // unnamed statement and portal
    assert_eq!(q.stmt_id, None);
    // Parse + Bind + Describe + Execute + Sync.
    assert_eq!(q.bytes, 90);
    // ParseComplete, BindComplete, RowDescription, DataRow, CommandComplete, ReadyForQuery.
    assert_eq!(r.as_ref().unwrap().bytes, 117);
}

#[test]
fn extended_protocol_errors_skip_to_sync() {
    // pgsql-5524: DROP TABLE of a missing table fails at Execute (42P01).
    let ev = run("extended_errors_42P01");
    assert_eq!(
        summary(&ev)[1..5],
        [
            "2 execute \"DROP TABLE test_a CASCADE \" => Error rows=None err=Text(\"42P01\")",
            "3 execute \"create table test_a (imagename name,image oid,id int4)\" => Ok rows=None",
            "4 execute \"DROP TABLE test_c CASCADE \" => Error rows=None err=Text(\"42P01\")",
            "5 execute \"create table test_c (source text,cost money,imageid int4)\" => Ok rows=None",
        ]
    );
    let p = pairs(&ev);
    assert_eq!(
        p[1].1.as_ref().unwrap().error.as_ref().unwrap().message,
        "table \"test_a\" does not exist"
    );
}

#[test]
fn pipelined_extended_batches() {
    // ndpi / wswiki pgsql.cap (PostgreSQL 7.4): Parse/Bind/Execute × 2 in one batch, named
    // statements, bare "SELECT" tags (no count before 9.0: the DataRows are the rows).
    for name in ["ndpi_extended_0", "wswiki_0"] {
        let ev = run(name);
        let s = summary(&ev);
        assert_eq!(
            s[1..5],
            [
                "2 execute \"begin\" => Ok rows=None",
                "3 execute \"select revision from mailstore for update\" => Ok rows=Some(1)",
                "4 execute \"commit\" => Ok rows=None",
                "5 execute \"select u.id, u.address, u.inbox, n.name as parentspace, u.login, u.id, u.secret, a.name, a.localpart, a.domain from users u, addresses a, namespaces n where u.login=$1 and u.id=a.id and n.id=u.parentspace\" => Ok rows=Some(0)",
            ],
            "{name}"
        );
    }
    // Statement "4" is prepared once and executed twice: tshark lists 4 Parse messages (its
    // query count); the second execution is a Bind of the prepared statement with no text on
    // the wire, recorded here with the prepared text and its own bound value.
    let p = pairs(&run("ndpi_extended_0"));
    let params = |i: usize| p[i].0.decoded_params().unwrap();
    assert_eq!(
        params(4),
        vec![dbtap_core::Param {
            name: None,
            type_name: "unknown".into(),
            value: ParamValue::Text("ams".into()),
            truncated: false
        }]
    );
    assert_eq!(params(5)[0].value, ParamValue::Text("arnt".into()));
    assert_eq!(p[5].0.sql, p[4].0.sql);
    assert_eq!(
        p[5].0.attributes,
        vec![("statement".into(), "4".to_string())]
    );
    // Bind + Describe + Execute + Sync, no Parse.
    assert_eq!(p[5].0.bytes, 48);
    let ev = run("ndpi_extended_1");
    assert_eq!(
        summary(&ev)[1..],
        [
            "2 execute \"select * from mailboxes\" => Ok rows=Some(0)",
            "3 execute \"select id,name from flag_names where id>0\" => Ok rows=Some(0)",
        ]
    );
}

#[test]
fn large_results_are_counted_not_buffered() {
    let segs = load("large_select");
    let (ev, d, _) = feed(&segs, SessionOpts::default(), Limits::default());
    let p = pairs(&ev);
    let (q, r) = &p[1];
    assert_eq!(q.sql.as_deref(), Some("select * from meta_table ;"));
    let r = r.as_ref().unwrap();
    assert_eq!(r.rows, Some(644));
    // Every server byte after the login belongs to the result.
    let login_resp = p[0].1.as_ref().unwrap().bytes;
    assert_eq!(
        r.bytes + login_resp,
        d.stats().parsed[1] + d.stats().skipped[1]
    );
    // DataRows that ran past a segment were skipped, not buffered.
    assert!(d.stats().skipped[1] > 0);
    let p = pairs(&run("long_result"));
    assert_eq!(p[0].1.as_ref().unwrap().rows, Some(15));
    assert_eq!(p[0].0.sql.as_deref(), Some("select * from long_response;"));
}

#[test]
fn crud_session() {
    let ev = run("scram_crud");
    assert_eq!(
        summary(&ev),
        vec![
            "1 login \"\" => Ok rows=None",
            "2 query \"DROP TABLE IF EXISTS t;\" => Ok rows=None",
            "3 query \"CREATE TABLE IF NOT EXISTS t (i int, s varchar, t time);\" => Ok rows=None",
            "4 query \"INSERT INTO t VALUES (42, 'forty-two', now());\" => Ok rows=Some(1)",
            "5 query \"INSERT INTO t VALUES (86, 'eighty-six', now());\" => Ok rows=Some(1)",
            "6 query \"SELECT * from t;\" => Ok rows=Some(2)",
            "7 query \"DELETE FROM t;\" => Ok rows=Some(2)",
            "8 query \"DROP TABLE t;\" => Ok rows=None",
            "9 logout \"\" => -",
        ]
    );
    // DROP TABLE IF EXISTS of a missing table answers with a NoticeResponse.
    let p = pairs(&ev);
    assert_eq!(p[1].1.as_ref().unwrap().warnings, Some(1));
    assert_eq!(p[2].1.as_ref().unwrap().warnings, None);
}

#[test]
fn notification_between_queries() {
    // LISTEN; a NotificationResponse arrives while idle; SELECT 1.
    let ev = run("listen_notify");
    assert_eq!(
        summary(&ev)[1..],
        [
            "2 query \"LISTEN rules;\" => Ok rows=None",
            "3 query \"SELECT 1;\" => Ok rows=Some(1)",
            "4 logout \"\" => -",
        ]
    );
}

#[test]
fn query_errors() {
    let p = pairs(&run("insert_error_23505"));
    assert_eq!(sqlstate(&p[0].1), "23505");
    assert_eq!(
        p[0].1.as_ref().unwrap().error.as_ref().unwrap().message,
        "duplicate key value violates unique constraint \"unique_a\" (detail: Key (a)=(mea5) already exists.)"
    );
    let ev = run("query_error_exit");
    assert_eq!(
        summary(&ev)[1..],
        [
            "2 query \"select * from  udp_metric limit 10;\" => Ok rows=Some(10)",
            "3 query \"exit\\n;\" => Error rows=None err=Text(\"42601\")",
            "4 logout \"\" => -",
        ]
    );
}

#[test]
fn streams_that_start_mid_session() {
    // deepflow captures hold no startup: the first client message is a Query.
    let p = pairs(&run("midstream_simple_query"));
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].0.sql.as_deref(), Some("delete  from test;"));
    assert_eq!(p[0].1.as_ref().unwrap().rows, Some(1));
    let p = pairs(&run("midstream_error_42601"));
    assert_eq!(sqlstate(&p[0].1), "42601");
    // The same streams flagged as mid-stream by the stream layer.
    assert_eq!(pairs(&run_mid("midstream_simple_query")).len(), 1);
    // A capture cut after the login: the records start at the next complete request.
    let segs = load("scram_crud");
    let cut: Vec<Seg> = segs.into_iter().skip(6).collect();
    let (ev, _, _) = feed(&cut, SessionOpts { midstream: true }, Limits::default());
    let s = summary(&ev);
    assert_eq!(s[0], "1 query \"DROP TABLE IF EXISTS t;\" => Ok rows=None");
    assert_eq!(s.len(), 8);
    // deepflow prepare_stat: Parse/Describe/Sync answered by BindComplete/CommandComplete/
    // ReadyForQuery (the capture holds answers of another exchange): the prepare is recorded
    // without a response and the mismatch counted.
    let ev = run("midstream_prepare_mismatch");
    let p = pairs(&ev);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].0.op.as_ref().unwrap().as_str(), "prepare");
    assert!(p[0].1.is_none());
    assert!(ev.contains(&DbEvent::Anomaly {
        dir: Direction::ToClient,
        kind: "unexpected_response"
    }));
}

#[test]
fn malformed_startup_and_backend_messages() {
    // bad-startup-message: a startup length of 3 (< 8): not PostgreSQL.
    let (ev, d, _) = feed(
        &load("bad_startup_message"),
        SessionOpts::default(),
        Limits::default(),
    );
    assert_eq!(
        d.state(),
        DriverState::Abandoned(dbtap_core::Abandon::NotThisProtocol)
    );
    assert!(pairs(&ev).is_empty());
    // bad-backend-message: ReadyForQuery with length 1 after a valid startup: the login is
    // recorded without an outcome, the server side desyncs.
    let (ev, d, _) = feed(
        &load("bad_backend_message"),
        SessionOpts::default(),
        Limits::default(),
    );
    assert_eq!(d.state(), DriverState::Parsing);
    let p = pairs(&ev);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].0.login.as_ref().unwrap().user.as_deref(), Some("zeek"));
    assert!(p[0].1.is_none());
    assert!(ev.contains(&DbEvent::Desync {
        dir: Direction::ToClient,
        lost_bytes: 0
    }));
    // An unknown startup request code (0x00ff00ff): counted, no record.
    let ev = run("unknown_startup_code");
    assert!(pairs(&ev).is_empty());
    assert!(ev.contains(&DbEvent::Anomaly {
        dir: Direction::ToServer,
        kind: "unknown_startup_code"
    }));
}

#[test]
fn other_protocols_on_5432() {
    use dbtap_core::Probe;
    // zeek http-on-port-5432: an HTTP request.
    let segs = load("http_on_5432");
    let Seg::Data(dir, _, head) = &segs[0] else {
        panic!()
    };
    assert_eq!(*dir, Direction::ToServer);
    assert_eq!(
        dbtap_pgsql::probe(Direction::ToServer, head),
        Probe::NotForUs
    );
    let (ev, d, _) = feed(&segs, SessionOpts::default(), Limits::default());
    assert!(ev.is_empty());
    assert_eq!(
        d.state(),
        DriverState::Abandoned(dbtap_core::Abandon::NotThisProtocol)
    );
    // suricata-verify bug 6080: ':' bytes from the server side only.
    let segs = load("not_pgsql_6080");
    let Seg::Data(_, _, head) = &segs[0] else {
        panic!()
    };
    assert_eq!(
        dbtap_pgsql::probe(Direction::ToClient, head),
        Probe::NotForUs
    );
}

#[test]
fn probe_and_session_start_on_real_first_messages() {
    use dbtap_core::Probe;
    for name in [
        "scram_select_now",
        "md5_login_pgadmin",
        "trust_login_terminate",
        "cancel_request",
        "upgrade_tls",
        "copy_in",
    ] {
        let segs = load(name);
        let first = segs
            .iter()
            .find_map(|s| match s {
                Seg::Data(Direction::ToServer, _, b) => Some(b.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(
            dbtap_pgsql::probe(Direction::ToServer, &first),
            Probe::Certain,
            "{name}"
        );
        assert!(
            dbtap_pgsql::session_start(Direction::ToServer, &first),
            "{name}"
        );
        assert!(
            !dbtap_pgsql::session_start(Direction::ToClient, &first),
            "{name}"
        );
    }
    // Mid-stream: a complete Query is certain.
    let segs = load("midstream_simple_query");
    let Seg::Data(_, _, q) = &segs[0] else {
        panic!()
    };
    assert_eq!(dbtap_pgsql::probe(Direction::ToServer, q), Probe::Certain);
    assert!(!dbtap_pgsql::session_start(Direction::ToServer, q));
}

#[test]
fn every_stream_keeps_byte_accounting() {
    // Request and response bytes of all records never exceed what the stream layer saw.
    let dir = format!("{}/tests/streams", env!("CARGO_MANIFEST_DIR"));
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        let Some(name) = name.strip_suffix(".txt") else {
            continue;
        };
        let (ev, d, _) = feed(&load(name), SessionOpts::default(), Limits::default());
        let p = pairs(&ev);
        let req: u64 = p.iter().map(|(q, _)| q.bytes).sum();
        let resp: u64 = p
            .iter()
            .filter_map(|(_, r)| r.as_ref())
            .map(|r| r.bytes)
            .sum();
        let s = d.stats();
        assert!(req <= s.parsed[0] + s.skipped[0], "{name}: {req} {s:?}");
        assert!(resp <= s.parsed[1] + s.skipped[1], "{name}: {resp} {s:?}");
        assert_eq!(s.stalls, 0, "{name}");
        for (q, r) in &p {
            if let Some(r) = r {
                assert!(r.ts_end >= q.ts, "{name}: {q:?} {r:?}");
            }
            assert_eq!(q.completeness, Completeness::Complete, "{name}: {q:?}");
        }
    }
}
