//! Real captures (tests/streams/*.txt, extracted with extract.py; provenance in each file's
//! header) fed through `dbtap_core::Driver` exactly as the engine does. Expected values were
//! cross-checked against tshark's decode (`-T fields -e mysql.query -e mysql.error_code …`) and
//! the capture rows of shared/captures/SOURCES.md.
mod common;

use common::{pairs, pairs_of, run, run_mid, summary};
use dbtap_core::event::SessionUpdate;
use dbtap_core::{Completeness, DbEvent, ErrorCode, ParamValue, Request, Status};

#[test]
fn login_with_native_password_then_query() {
    let ev = run("login_native_ok");
    assert!(
        matches!(&ev[0], DbEvent::ServerInfo { version: Some(v), connection_id: Some(152) } if v == "5.5.35-0ubuntu0.12.04.2")
    );
    let p = pairs(&ev);
    assert_eq!(p.len(), 2);
    let (login, resp) = &p[0];
    let l = login.login.as_ref().unwrap();
    assert_eq!(l.user.as_deref(), Some("user10"));
    assert_eq!(l.auth_method.as_deref(), Some("mysql_native_password"));
    assert!(l.credentials_redacted);
    assert_eq!(login.bytes, 86);
    assert_eq!(resp.as_ref().unwrap().status, Status::Ok);
    assert!(ev.contains(&DbEvent::Session(SessionUpdate {
        user: Some("user10".into()),
        database: None,
        client_program: None
    })));
    let (q, r) = &p[1];
    assert_eq!(q.sql.as_deref(), Some("select @@version_comment limit 1"));
    let r = r.as_ref().unwrap();
    assert_eq!((r.status, r.rows), (Status::Ok, Some(1)));
    assert!(r.ts_end >= q.ts);
}

#[test]
fn login_failure_1045() {
    let ev = run("login_fail_1045");
    let p = pairs(&ev);
    assert_eq!(p.len(), 1);
    assert_eq!(
        p[0].0.login.as_ref().unwrap().user.as_deref(),
        Some("msandbox")
    );
    let e = p[0].1.as_ref().unwrap().error.clone().unwrap();
    assert_eq!(e.code, ErrorCode::Num(1045));
    assert_eq!(e.sqlstate.as_deref(), Some("28000"));
    assert_eq!(
        e.message,
        "Access denied for user 'msandbox'@'localhost' (using password: YES)"
    );
    assert!(!ev.iter().any(|e| matches!(e, DbEvent::Session(_))));
}

#[test]
fn refused_before_handshake_is_a_failed_login() {
    let p = pairs(&run("auth_refused_0"));
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].0.op.as_ref().unwrap().as_str(), "login");
    let e = p[0].1.as_ref().unwrap().error.clone().unwrap();
    assert_eq!(e.code, ErrorCode::Num(1130));
    assert_eq!(
        e.message,
        "Host 'lumberjack.home' is not allowed to connect to this MySQL server"
    );
}

#[test]
fn too_many_connections_1040() {
    let p = pairs(&run("login_error_1040"));
    let l = p[0].0.login.as_ref().unwrap();
    assert_eq!(l.user.as_deref(), Some("mydemo"));
    assert_eq!(l.database.as_deref(), Some("mydemo-dn1"));
    assert_eq!(l.client_program.as_deref(), Some("MySQL Connector/J"));
    assert_eq!(
        p[0].1.as_ref().unwrap().error.as_ref().unwrap().code,
        ErrorCode::Num(1040)
    );
}

#[test]
fn caching_sha2_full_auth_then_commands() {
    // Stream 1: full authentication (AuthMoreData 0x04 → RSA key exchange) then OK.
    let ev = run("caching_sha2_1");
    assert_eq!(
        summary(&ev),
        vec![
            "1 login \"\" => Ok rows=None",
            "2 query \"show databases\" => Ok rows=Some(5)",
            "3 query \"show tables\" => Ok rows=Some(1)",
            "4 field_list \"t\" => Ok rows=None",
            "5 query \"select @@version_comment limit 1\" => Ok rows=Some(1)",
            "6 logout \"\" => -",
        ]
    );
    let p = pairs(&ev);
    let l = p[0].0.login.as_ref().unwrap();
    assert_eq!(l.user.as_deref(), Some("root"));
    assert_eq!(l.database.as_deref(), Some("test"));
    assert_eq!(l.client_program.as_deref(), Some("mysql"));
    assert_eq!(l.auth_method.as_deref(), Some("caching_sha2_password"));
    assert_eq!(l.attributes.len(), 7);
    assert!(l
        .attributes
        .contains(&("_client_name".into(), "libmysql".into())));
    // The login request counts the client's auth packets (RSA key request, encrypted password).
    assert_eq!(p[0].0.bytes, 488);
    assert!(!p[5].0.expects_response);
    // Stream 0: the client gave up during auth: 1158.
    let p0 = pairs(&run("caching_sha2_0"));
    assert_eq!(
        p0[0].1.as_ref().unwrap().error.as_ref().unwrap().code,
        ErrorCode::Num(1158)
    );
    // Stream 2: fast auth.
    let p2 = pairs(&run("caching_sha2_2"));
    assert_eq!(p2[0].1.as_ref().unwrap().status, Status::Ok);
    assert_eq!(p2.len(), 6);
}

#[test]
fn change_user_success_and_error() {
    let ev = run("change_user_ok");
    assert_eq!(
        summary(&ev),
        vec![
            "1 login \"\" => Ok rows=None",
            "2 ping \"\" => Ok rows=Some(0)",
            "3 change_user \"\" => Ok rows=None",
            "4 query \"SET NAMES 'utf8mb4' COLLATE 'utf8mb4_0900_ai_ci'\" => Ok rows=Some(0)",
            "5 query \"SET @@session.autocommit = OFF\" => Ok rows=Some(0)",
            "6 ping \"\" => Ok rows=Some(0)",
            "7 logout \"\" => -",
        ]
    );
    let p = pairs(&ev);
    assert_eq!(
        p[2].0.login.as_ref().unwrap().user.as_deref(),
        Some("root2")
    );
    assert!(p[2].0.login.as_ref().unwrap().credentials_redacted);
    assert!(ev.contains(&DbEvent::Session(SessionUpdate {
        user: Some("root2".into()),
        database: None,
        client_program: Some("mysql-connector-python".into())
    })));
    let p = pairs(&run("change_user_error"));
    assert_eq!(p[2].0.op.as_ref().unwrap().as_str(), "change_user");
    let e = p[2].1.as_ref().unwrap().error.clone().unwrap();
    assert_eq!(e.code, ErrorCode::Num(1045));
    assert_eq!(
        e.message,
        "Access denied for user 'root2'@'127.0.0.1' (using password: YES)"
    );
}

#[test]
fn prepared_statement_with_string_param() {
    let p = pairs(&run("stmt_prepare_exec"));
    assert_eq!(p.len(), 3);
    let (prep, pr) = &p[0];
    assert_eq!(prep.op.as_ref().unwrap().as_str(), "prepare");
    assert_eq!(prep.sql.as_deref(), Some("SELECT i FROM d.t WHERE i=?"));
    let pr = pr.as_ref().unwrap();
    assert_eq!((pr.stmt_id, pr.param_count), (Some(2), Some(1)));
    let (ex, er) = &p[1];
    assert_eq!(ex.sql.as_deref(), Some("SELECT i FROM d.t WHERE i=?"));
    assert_eq!(ex.stmt_id, Some(2));
    let params = ex.params.as_ref().unwrap();
    assert_eq!(params.len(), 1);
    assert_eq!(params[0].type_name, "string");
    assert_eq!(params[0].value, ParamValue::Text("3".into()));
    assert_eq!(er.as_ref().unwrap().rows, Some(1));
}

#[test]
fn prepared_statement_nulls() {
    let p = pairs(&run("stmt_null_value"));
    let v: Vec<_> = p[1]
        .0
        .params
        .as_ref()
        .unwrap()
        .iter()
        .map(|x| (x.type_name.to_string(), x.value.clone()))
        .collect();
    assert_eq!(
        v,
        vec![
            ("null".into(), ParamValue::Null),
            ("string".into(), ParamValue::Text("5".into()))
        ]
    );
    let p = pairs(&run("stmt_all_null"));
    let params = p[1].0.params.as_ref().unwrap();
    assert_eq!(params.len(), 3);
    assert!(params.iter().all(|x| x.value == ParamValue::Null));
    let p = pairs(&run("stmt_string_char_float"));
    let v: Vec<_> = p[1]
        .0
        .params
        .as_ref()
        .unwrap()
        .iter()
        .map(|x| x.value.clone())
        .collect();
    assert_eq!(
        v,
        vec![
            ParamValue::Text("hello world".into()),
            ParamValue::Text("a".into()),
            ParamValue::Text("1.23".into())
        ]
    );
}

#[test]
fn prepared_statement_typed_params_and_null_bitmap() {
    // tshark: LONG 42, LONG 2009, VAR_STRING "hello world", DOUBLE 1.23, DOUBLE 4.56,
    // VAR_STRING "2009-12-01" ×2, LONG …, with NULLs in the bitmap.
    let p = pairs(&run("stmt_null_bitmap"));
    assert_eq!(p[0].1.as_ref().unwrap().param_count, Some(10));
    let params = p[1].0.params.as_ref().unwrap();
    assert_eq!(params.len(), 10);
    let got: Vec<(String, ParamValue)> = params
        .iter()
        .map(|x| (x.type_name.to_string(), x.value.clone()))
        .collect();
    assert_eq!(got[0], ("long".into(), ParamValue::Int(42)));
    assert_eq!(got[1], ("long".into(), ParamValue::Int(2009)));
    assert_eq!(
        got[2],
        ("var_string".into(), ParamValue::Text("hello world".into()))
    );
    assert_eq!(got[3], ("double".into(), ParamValue::Float(1.23)));
    assert_eq!(got[4], ("double".into(), ParamValue::Float(4.56)));
    assert_eq!(
        got[5],
        ("var_string".into(), ParamValue::Text("2009-12-01".into()))
    );
    assert_eq!(
        got[6],
        ("var_string".into(), ParamValue::Text("2009-12-01".into()))
    );
    assert_eq!(p[1].0.completeness, Completeness::Complete);
}

#[test]
fn prepared_statement_97_params_deepflow() {
    let p = pairs(&run("deepflow_exec"));
    assert_eq!(p[0].1.as_ref().unwrap().param_count, Some(97));
    assert_eq!(p[0].1.as_ref().unwrap().stmt_id, Some(55));
    let params = p[1].0.params.as_ref().unwrap();
    assert_eq!(params.len(), 97);
    assert_eq!(params[0].type_name, "longlong");
    assert_eq!(params[0].value, ParamValue::Int(12));
    assert_eq!(params[1].value, ParamValue::Int(24187645952));
    assert_eq!(
        params[6].value,
        ParamValue::Text("499c7536-806d-4d00-aced-abd3fea2da76".into())
    );
    assert_eq!(params[96].value, ParamValue::Text("alpine 3.18.4".into()));
    assert_eq!(p[1].1.as_ref().unwrap().status, Status::Ok);
}

#[test]
fn prepared_statements_close_and_reuse() {
    let ev = run("stmt_analyses");
    let p = pairs(&ev);
    let closes = pairs_of(&p, "stmt_close");
    assert_eq!(closes.len(), 3);
    assert!(closes
        .iter()
        .all(|(q, r)| !q.expects_response && r.is_none()));
    assert_eq!(
        closes[0].0.sql.as_deref(),
        Some("select * from d.t where name=\"adam\"")
    );
    let execs = pairs_of(&p, "execute").len();
    assert_eq!(execs, 7);
}

#[test]
fn compressed_session_old_password() {
    // 4.1 server, old password auth switch (0xFE alone), compression switched on after OK.
    let ev = run("compression_old_password");
    let p = pairs(&ev);
    let l = p[0].0.login.as_ref().unwrap();
    assert_eq!(l.user.as_deref(), Some("luck"));
    assert_eq!(l.database.as_deref(), Some("nepool_ftr"));
    assert_eq!(l.auth_method.as_deref(), Some("mysql_old_password"));
    assert_eq!(p[0].1.as_ref().unwrap().status, Status::Ok);
    // The query travels in a compressed frame (stored: uncompressed length 0); the capture
    // ends before its response.
    assert_eq!(p[1].0.sql.as_deref(), Some("show databases"));
    assert!(p[1].1.is_none());
}

#[test]
fn compressed_midstream_pickups() {
    let ev = run_mid("compressed_response");
    let p = pairs(&ev);
    assert_eq!(p.len(), 1);
    assert_eq!(
        p[0].0.sql.as_deref(),
        Some("SELECT * FROM `az_controller_connection`")
    );
    // The response is a zlib frame holding the whole result set: rows still counted.
    let r = p[0].1.as_ref().unwrap();
    assert_eq!((r.status, r.rows), (Status::Ok, Some(5)));
    let p = pairs(&run_mid("compression_midstream"));
    assert_eq!(p[0].0.sql.as_deref(), Some("show databases"));
}

#[test]
fn query_attributes() {
    let p = pairs(&run("query_attr"));
    assert_eq!(p[2].0.sql.as_deref(), Some("select now()"));
    assert_eq!(
        p[2].0.attributes,
        vec![("n1".into(), "v1".into()), ("n2".into(), "v2".into())]
    );
    assert!(p[3].0.attributes.is_empty());
    let p = pairs(&run("query_attr_9"));
    assert_eq!(p[2].0.sql.as_deref(), Some("SELECT version()"));
    assert_eq!(
        p[2].0.attributes,
        vec![
            ("number1".into(), "42".into()),
            ("string1".into(), "a string".into()),
            ("date1".into(), "1987-10-18".into()),
            ("datetime1".into(), "1990-09-26 12:13:14".into()),
        ]
    );
}

#[test]
fn tls_upgrade() {
    let ev = run("tls_encrypted");
    assert!(
        matches!(&ev[0], DbEvent::ServerInfo { version: Some(v), connection_id: Some(33) } if v == "10.0.36-MariaDB-0ubuntu0.16.04.1")
    );
    let p = pairs(&ev);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].0.op.as_ref().unwrap().as_str(), "login");
    assert_eq!(p[0].0.login.as_ref().unwrap().user, None);
    assert_eq!(p[0].0.bytes, 36);
    assert_eq!(ev.last(), Some(&DbEvent::Encrypted));
}

#[test]
fn large_result_rows_counted_not_buffered() {
    let segs = common::load("large_result");
    let (ev, d, parser) = common::feed(&segs, Default::default(), Default::default());
    let p = pairs(&ev);
    let r = p[0].1.as_ref().unwrap();
    assert_eq!((r.status, r.rows, r.bytes), (Status::Ok, Some(400), 180473));
    assert_eq!(parser.buffered(), 0);
    // Rows were skipped by the stream layer, not copied around.
    assert!(d.stats().skipped[1] > 0);
}

#[test]
fn query_errors_1064_1193() {
    let p = pairs(&run("errors_1064_1193"));
    assert_eq!(p.len(), 2);
    assert_eq!(p[0].0.sql.as_deref(), Some("select"));
    let e = p[0].1.as_ref().unwrap().error.clone().unwrap();
    assert_eq!(
        (e.code, e.sqlstate.as_deref()),
        (ErrorCode::Num(1064), Some("42000"))
    );
    assert_eq!(p[1].0.sql.as_deref(), Some("set global nono = 2"));
    let e = p[1].1.as_ref().unwrap().error.clone().unwrap();
    assert_eq!(
        (e.code, e.message.as_str()),
        (ErrorCode::Num(1193), "Unknown system variable 'nono'")
    );
}

#[test]
fn init_db_and_session_tracking() {
    let ev = run("session_init_db");
    let p = pairs(&ev);
    let i = p
        .iter()
        .position(|(q, _)| q.op.as_ref().unwrap().as_str() == "init_db")
        .unwrap();
    assert_eq!(p[i].0.sql.as_deref(), Some("test"));
    // One session update for the new database, after the init_db response.
    let tx = p[i].0.tx;
    let at = ev
        .iter()
        .position(|e| matches!(e, DbEvent::Response(r) if r.tx == tx))
        .unwrap();
    assert_eq!(
        ev[at + 1],
        DbEvent::Session(SessionUpdate {
            database: Some("test".into()),
            ..Default::default()
        })
    );
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, DbEvent::Session(s) if s.database.as_deref() == Some("test")))
            .count(),
        1
    );
    // CREATE DATABASE reports 1 affected row.
    assert_eq!(p[2].1.as_ref().unwrap().rows, Some(1));
}

#[test]
fn capture_starting_mid_session_with_lost_segments() {
    // No handshake; the query's tail and more were never captured (TCP sequence jumps).
    let ev = run("incomplete_query");
    assert!(ev.contains(&DbEvent::Desync {
        dir: dbtap_core::Direction::ToServer,
        lost_bytes: 2885
    }));
    let p = pairs(&ev);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].0.sql.as_deref(), Some("UPDATE"));
    assert_eq!(p[0].0.completeness, Completeness::Partial { lost_bytes: 8 });
}

#[test]
fn binary_literal_in_sql_is_kept_with_escapes() {
    let p = pairs(&run("snaplen_cut"));
    assert_eq!(p.len(), 2);
    assert_eq!(p[0].0.sql.as_deref(), Some("set @@SQL_SELECT_LIMIT=60001"));
    let sql = p[1].0.sql.as_deref().unwrap();
    assert!(sql.starts_with("INSERT INTO XX_XXXXXXX_XXX_XXXX (message_id"));
    // 0x89 is not UTF-8 on its own: kept as an escape, not dropped.
    assert!(sql.contains("\\x89"));
    assert!(sql.ends_with("3, 'M', 1)\u{19}"));
    assert_eq!(p[1].1.as_ref().unwrap().rows, Some(1));
}

#[test]
fn many_queries_match_tshark() {
    // tshark decodes 157 queries (and flags 16 frames MALFORMED where it mis-frames rows).
    let p = pairs(&run("many_queries"));
    let q = pairs_of(&p, "query");
    assert_eq!(q.len(), 157);
    assert_eq!(q[0].0.sql.as_deref(), Some("SELECT SUBSTRING('11', 1, 1)"));
    assert_eq!(q[1].0.sql.as_deref(), Some("SELECT SUBSTRING('11', 2)"));
    assert_eq!(
        q[156].0.sql.as_deref(),
        Some("SET GLOBAL SLAVE_TYPE_CONVERSIONS = @saved_slave_type_conversions")
    );
    assert!(q
        .iter()
        .all(|(_, r)| r.as_ref().is_some_and(|r| r.status == Status::Ok)));
    assert_eq!(p[0].0.login.as_ref().unwrap().user.as_deref(), Some("root"));
}

#[test]
fn query_spanning_segments_is_parsed_whole() {
    // An 18 526-byte COM_QUERY in two TCP segments (16 384 + 2 146 bytes); tshark does not
    // reassemble it. The capture splices two sessions (TCP sequence jump → desync, resync).
    let ev = run("fragmented_query");
    let p = pairs(&ev);
    assert_eq!(p.len(), 2);
    assert_eq!(
        p[0].0.sql.as_deref(),
        Some("select \"hello world\" as greeting")
    );
    let sql = p[1].0.sql.as_deref().unwrap();
    assert_eq!(sql.len(), 18_525);
    assert!(sql.starts_with("insert into t values ('NEW YORK \\(Reuters\\)"));
    assert_eq!(p[1].0.bytes, 18_530);
    assert!(ev.iter().any(|e| matches!(e, DbEvent::Resync { .. })));
}

/// The bind values of a request, in order.
fn values(q: &Request) -> Vec<&ParamValue> {
    q.params.iter().flatten().map(|p| &p.value).collect()
}

#[test]
fn mariadb_bulk_execute_rows_of_values() {
    // MariaDB Connector/Python executemany(): COM_STMT_PREPARE and COM_STMT_BULK_EXECUTE with
    // statement id -1 in one write, types sent (SEND_TYPES_TO_SERVER), rows of indicator +
    // value; the parameter count is not known yet when the bulk arrives.
    let p = pairs(&run("mariadb_bulk"));
    let bulks = pairs_of(&p, "stmt_bulk_execute");
    assert_eq!(bulks.len(), 3);
    let (q, r) = bulks[0];
    assert_eq!(
        q.sql.as_deref(),
        Some("INSERT INTO rx (id, patient, drug, dose, given) VALUES (?, ?, ?, ?, ?)")
    );
    assert_eq!(q.param_row_width, Some(5));
    assert!(q.attributes.contains(&("bulk_rows".into(), "3".into())));
    let v = values(q);
    assert_eq!(v.len(), 15);
    assert_eq!(v[0], &ParamValue::Int(1));
    assert_eq!(v[1], &ParamValue::Text("张伟".into()));
    assert_eq!(v[3], &ParamValue::Float(500.0));
    assert_eq!(v[4], &ParamValue::Text("2026-11-20".into()));
    // Row 2's date: indicator NULL.
    assert_eq!(v[9], &ParamValue::Null);
    assert_eq!(v[11], &ParamValue::Text("José Núñez".into()));
    assert_eq!(v[13], &ParamValue::Float(850.5));
    let r = r.as_ref().unwrap();
    assert_eq!(r.status, Status::Ok);
    assert_eq!(r.rows, Some(3));
    let (q, r) = bulks[1];
    assert_eq!(
        q.sql.as_deref(),
        Some("UPDATE rx SET dose = ? WHERE id = ?")
    );
    let v = values(q);
    assert_eq!(
        v,
        [
            &ParamValue::Float(250.0),
            &ParamValue::Int(1),
            &ParamValue::Float(1000.0),
            &ParamValue::Int(3)
        ]
    );
    assert_eq!(r.as_ref().unwrap().rows, Some(2));
    // The duplicate key: ERR 1062 for the whole bulk.
    let (q, r) = bulks[2];
    assert!(q.attributes.contains(&("bulk_rows".into(), "2".into())));
    let r = r.as_ref().unwrap();
    assert_eq!(r.status, Status::Error);
    assert_eq!(
        r.error.as_ref().unwrap().code,
        dbtap_core::ErrorCode::Num(1062)
    );
}
