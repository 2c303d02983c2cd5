//! Whole conversations through the stream driver: what each record says, value by value.
mod synth;

use dbtap_core::{
    DbEvent, Direction, Driver, ErrorCode, Limits, ParamValue, SessionOpts, Status, Timestamp,
};
use dbtap_tds::TdsParser;
use synth::Conversation;

/// Feed a conversation, one chunk per run of bytes, 1 ms apart; end both directions.
pub fn run(conv: &Conversation, limits: Limits) -> (Vec<DbEvent>, Driver, TdsParser) {
    let mut p = TdsParser::new(SessionOpts::default());
    let mut d = Driver::new(limits);
    let mut out = Vec::new();
    for (i, (dir, bytes)) in conv.iter().enumerate() {
        d.data(
            &mut p,
            *dir,
            Timestamp(1_000_000 * (i as u64 + 1)),
            bytes,
            &mut out,
        );
    }
    let end = Timestamp(1_000_000 * (conv.len() as u64 + 1));
    d.end(&mut p, Direction::ToServer, end, false, &mut out);
    d.end(&mut p, Direction::ToClient, end, false, &mut out);
    (out, d, p)
}

/// No anomaly among the events and nothing left unparsed in either direction.
fn assert_clean(ev: &[DbEvent], d: &Driver) {
    assert!(
        !ev.iter().any(|e| matches!(e, DbEvent::Anomaly { .. })),
        "{ev:?}"
    );
    assert_eq!(d.stats().unparsed, [0, 0]);
}

/// Request/response pairs (a response without its request, or two for one, fails the test).
use dbtap_core::testing::pairs as records;

/// The op of every record, in order.
fn ops(recs: &[(dbtap_core::Request, Option<dbtap_core::Response>)]) -> Vec<String> {
    recs.iter()
        .map(|(q, _)| dbtap_core::testing::op_name(q))
        .collect()
}

fn attr<'a>(r: &'a dbtap_core::Request, k: &str) -> Option<&'a str> {
    dbtap_core::testing::attribute(&r.attributes, k)
}

fn login_attr<'a>(r: &'a dbtap_core::Request, k: &str) -> Option<&'a str> {
    dbtap_core::testing::attribute(&r.login.as_ref()?.attributes, k)
}

#[test]
fn full_session_record_by_record() {
    let (ev, d, p) = run(&synth::full_session(), Limits::default());
    let recs = records(&ev);
    let ops = ops(&recs);
    assert_eq!(
        ops,
        [
            "login", "query", "query", "query", "rpc", "rpc", "rpc", "rpc", "rpc", "rpc", "query",
            "cancel"
        ]
    );
    // Login: every LOGIN7 field, never the password.
    let (login, resp) = &recs[0];
    let l = login.login.as_ref().unwrap();
    assert_eq!(l.user.as_deref(), Some("his_app"));
    assert_eq!(l.database.as_deref(), Some("EMR"));
    assert_eq!(l.client_program.as_deref(), Some("HIS.Registration"));
    assert_eq!(l.auth_method.as_deref(), Some("sql_password"));
    assert!(l.credentials_redacted);
    assert_eq!(login_attr(login, "host_name"), Some("WARD-PC-07"));
    assert_eq!(login_attr(login, "server_name"), Some("his-db01"));
    assert_eq!(login_attr(login, "client_library"), Some("ODBC"));
    assert_eq!(login_attr(login, "language"), Some("us_english"));
    assert_eq!(login_attr(login, "client_pid"), Some("31337"));
    assert_eq!(login_attr(login, "tds_version"), Some("7.4"));
    assert_eq!(login_attr(login, "server_tds_version"), Some("7.4"));
    assert_eq!(
        login_attr(login, "prelogin_client_encryption"),
        Some("not_supported")
    );
    assert!(!format!("{ev:?}").contains("Sup3r"));
    let resp = resp.as_ref().unwrap();
    assert_eq!(resp.status, Status::Ok);
    assert!(ev.iter().any(|e| matches!(e, DbEvent::ServerInfo { version: Some(v), connection_id: Some(57) } if v == "Microsoft SQL Server 16.0.4199")));
    // The result set with every column type, over 512-byte packets: 3 rows (DONE count).
    let (q, r) = &recs[1];
    assert_eq!(
        q.sql.as_deref(),
        Some("SELECT * FROM dbo.patient_notes WHERE ward = N'内科'")
    );
    let r = r.as_ref().unwrap();
    assert_eq!(r.rows, Some(3));
    assert_eq!(r.status, Status::Ok);
    assert_eq!(r.completeness, dbtap_core::Completeness::Complete);
    assert!(r.bytes > 2 * 512, "multi-packet response: {}", r.bytes);
    // Error 208.
    let r = recs[2].1.as_ref().unwrap();
    assert_eq!(r.status, Status::Error);
    let e = r.error.as_ref().unwrap();
    assert_eq!(e.code, ErrorCode::Num(208));
    assert_eq!(e.message, "Invalid object name 'dbo.patinet'.");
    assert_eq!(attr(&recs[2].0, "error_class"), Some("16"));
    // Transaction begin seen in ENVCHANGE; rows 1 + 1.
    assert_eq!(attr(&recs[3].0, "transaction"), Some("begin"));
    assert_eq!(recs[3].1.as_ref().unwrap().rows, Some(2));
    // sp_executesql: sql = @stmt, params = every value in order with its type.
    let (q, r) = &recs[4];
    assert_eq!(q.procedure.as_deref(), Some("sp_executesql"));
    assert_eq!(q.sql.as_deref(), Some("SELECT @int AS v"));
    let expect = synth::every_param();
    // The whole declaration, longer than the attribute limit (kept as statement text is).
    let declared: Vec<String> = expect
        .iter()
        .map(|(n, _, ty, _)| format!("{n} {ty}"))
        .collect();
    assert!(declared.join(",").len() > dbtap_core::limits::DEFAULT_MAX_ATTRIBUTE_LEN);
    assert_eq!(attr(q, "param_declarations"), Some(&*declared.join(",")));
    assert_eq!(q.completeness, dbtap_core::Completeness::Complete);
    let params = q.decoded_params().unwrap();
    assert_eq!(params.len(), expect.len());
    for (p, (name, _, ty, val)) in params.iter().zip(&expect) {
        assert_eq!(p.type_name, *ty, "{name}");
        let got = match &p.value {
            ParamValue::Null => "null".to_owned(),
            ParamValue::Bool(b) => b.to_string(),
            ParamValue::Int(i) => i.to_string(),
            ParamValue::Float(f) => f.to_string(),
            ParamValue::Text(t) => format!("\"{t}\""),
            ParamValue::Bytes(b) => format!(
                "hex:{}",
                b.iter().map(|x| format!("{x:02x}")).collect::<String>()
            ),
            other => format!("{other:?}"),
        };
        assert_eq!(got, *val, "{name}");
        assert!(!p.truncated, "{name}");
    }
    assert_eq!(r.as_ref().unwrap().rows, Some(1));
    // sp_prepexec: the handle comes back in RETURNVALUE and is remembered.
    let (q, r) = &recs[5];
    assert_eq!(q.procedure.as_deref(), Some("sp_prepexec"));
    assert_eq!(
        q.sql.as_deref(),
        Some("SELECT name FROM dbo.patient WHERE id = @P0")
    );
    assert_eq!(q.decoded_params().unwrap()[0].value, ParamValue::Int(1001));
    assert_eq!(r.as_ref().unwrap().stmt_id, Some(7));
    // Two sp_execute in one message: one record each, with the prepared text and own values.
    for (k, v) in [(6, 1002), (7, 1003)] {
        let (q, r) = &recs[k];
        assert_eq!(q.procedure.as_deref(), Some("sp_execute"));
        assert_eq!(
            q.sql.as_deref(),
            Some("SELECT name FROM dbo.patient WHERE id = @P0")
        );
        assert_eq!(q.stmt_id, Some(7));
        // Sent without a ParamName: named by the declaration sp_prepexec gave the handle.
        assert_eq!(
            q.decoded_params().unwrap(),
            vec![dbtap_core::Param {
                name: Some("@P0".into()),
                type_name: "int".into(),
                value: ParamValue::Int(v),
                truncated: false
            }]
        );
        assert_eq!(r.as_ref().unwrap().status, Status::Ok);
    }
    assert_eq!(recs[6].1.as_ref().unwrap().rows, Some(1));
    assert_eq!(recs[7].1.as_ref().unwrap().rows, Some(0));
    // sp_unprepare forgets the handle.
    assert_eq!(recs[8].0.procedure.as_deref(), Some("sp_unprepare"));
    assert_eq!(p.prepared_handles(), 0);
    // A named procedure failing inside: error 547 with its procedure and line.
    let (q, r) = &recs[9];
    assert_eq!(q.procedure.as_deref(), Some("dbo.usp_discharge"));
    assert_eq!(
        q.decoded_params().unwrap()[0].value,
        ParamValue::Text("P-0042".into())
    );
    assert_eq!(
        r.as_ref().unwrap().error.as_ref().unwrap().code,
        ErrorCode::Num(547)
    );
    assert_eq!(attr(q, "error_procedure"), Some("usp_discharge"));
    assert_eq!(attr(q, "error_line"), Some("12"));
    assert_eq!(attr(q, "return_status"), Some("-6"));
    // Attention: the batch is marked cancelled, the cancel is acknowledged.
    assert_eq!(attr(&recs[10].0, "cancelled"), Some("true"));
    assert_eq!(recs[11].1.as_ref().unwrap().status, Status::Ok);
    assert!(
        !ev.iter()
            .any(|e| matches!(e, DbEvent::Anomaly { .. } | DbEvent::Desync { .. })),
        "{ev:?}"
    );
    assert_eq!(d.stats().unparsed, [0, 0]);
}

#[test]
fn login_failure_is_18456() {
    let (ev, _, _) = run(&synth::login_failed(), Limits::default());
    let recs = records(&ev);
    assert_eq!(recs.len(), 1);
    let (q, r) = &recs[0];
    assert_eq!(q.login.as_ref().unwrap().user.as_deref(), Some("sa"));
    let r = r.as_ref().unwrap();
    assert_eq!(r.status, Status::Error);
    assert_eq!(r.error.as_ref().unwrap().code, ErrorCode::Num(18456));
    assert_eq!(
        r.error.as_ref().unwrap().message,
        "Login failed for user 'sa'."
    );
}

/// A parameter declaration over the statement limit is cut there, and the request says so.
#[test]
fn a_declaration_over_the_statement_limit_is_cut_and_flagged() {
    let limits = Limits {
        max_statement_len: 100,
        ..Limits::default()
    };
    let (ev, _, _) = run(&synth::full_session(), limits);
    let recs = records(&ev);
    let (q, _) = &recs[4];
    assert_eq!(q.procedure.as_deref(), Some("sp_executesql"));
    let d = attr(q, "param_declarations").unwrap();
    assert_eq!(d.len(), 100);
    assert!(d.starts_with("@tiny tinyint,@small smallint"));
    assert!(matches!(
        q.completeness,
        dbtap_core::Completeness::Truncated { kept: 100, original } if original > 256
    ));
}

/// INFO messages and a language change reach the record of the request they answered; a
/// handle from `sp_prepare` (ProcID 11) gives `sp_execute` its text and parameter names.
#[test]
fn informational_messages_language_and_sp_prepare_then_sp_execute() {
    let (ev, d, _) = run(&synth::informational_and_prepare(), Limits::default());
    let recs = records(&ev);
    assert_eq!(ops(&recs), ["login", "query", "query", "rpc", "rpc"]);
    let (q, _) = &recs[1];
    assert_eq!(attr(q, "info_messages"), Some("2"));
    assert_eq!(attr(q, "info"), Some("0: discharged 3 patients"));
    assert!(ev
        .iter()
        .any(|e| matches!(e, DbEvent::Session(u) if u.database.as_deref() == Some("LIS"))));
    let (q, _) = &recs[2];
    assert_eq!(attr(q, "language"), Some("Deutsch"));
    assert_eq!(
        attr(q, "info"),
        Some("5703: Die Spracheneinstellung wurde auf Deutsch geändert.")
    );
    let (prepare, r) = &recs[3];
    assert_eq!(prepare.procedure.as_deref(), Some("sp_prepare"));
    assert_eq!(
        prepare.sql.as_deref(),
        Some("SELECT result FROM dbo.lab WHERE patient = @P0 AND test = @P1")
    );
    assert_eq!(prepare.stmt_id, Some(7));
    assert_eq!(r.as_ref().unwrap().status, Status::Ok);
    let (exec, r) = &recs[4];
    assert_eq!(exec.procedure.as_deref(), Some("sp_execute"));
    assert_eq!(exec.sql, prepare.sql);
    assert_eq!(exec.stmt_id, Some(7));
    let params = exec.decoded_params().unwrap();
    let got: Vec<_> = params
        .iter()
        .map(|p| (p.name.clone(), p.value.clone()))
        .collect();
    assert_eq!(
        got,
        [
            (Some("@P0".to_owned()), ParamValue::Int(4711)),
            (Some("@P1".to_owned()), ParamValue::Text("HbA1c".into())),
        ]
    );
    assert_eq!(r.as_ref().unwrap().rows, Some(1));
    assert_clean(&ev, &d);
}

/// A TDS 7.0 session: character TYPE_INFO without collations (in COLMETADATA and in RPC
/// parameters), 2-byte UserTypes, 4-byte DONE counts.
#[test]
fn a_tds_70_session_has_no_collations() {
    let (ev, d, _) = run(&synth::tds70(), Limits::default());
    let recs = records(&ev);
    assert_eq!(ops(&recs), ["login", "query", "rpc"]);
    let (login, r) = &recs[0];
    assert_eq!(r.as_ref().unwrap().status, Status::Ok);
    assert_eq!(login_attr(login, "tds_version"), Some("7.0"));
    assert_eq!(login_attr(login, "server_tds_version"), Some("7.0"));
    let (q, r) = &recs[1];
    assert_eq!(q.sql.as_deref(), Some("SELECT code, name FROM dbo.tests"));
    let r = r.as_ref().unwrap();
    assert_eq!((r.status, r.rows), (Status::Ok, Some(2)));
    assert_eq!(r.completeness, dbtap_core::Completeness::Complete);
    let (q, r) = &recs[2];
    assert_eq!(q.procedure.as_deref(), Some("sp_executesql"));
    assert_eq!(
        q.sql.as_deref(),
        Some("SELECT name FROM dbo.tests WHERE code = @code")
    );
    let params = q.decoded_params().unwrap();
    assert_eq!(params.len(), 1);
    assert_eq!(params[0].name.as_deref(), Some("@code"));
    assert_eq!(params[0].value, ParamValue::Text("HBA1C".into()));
    assert_eq!(r.as_ref().unwrap().rows, Some(1));
    assert_clean(&ev, &d);
}

/// The client requests of MS-TDS section 4, byte for byte as the specification prints them:
/// 4.6 (SQL Batch Client Request: ALL_HEADERS with a transaction descriptor, then the text) and
/// 4.8 (RPC Client Request: procedure `foo3` by name, one unnamed parameter sent as its default,
/// StatusFlags fDefaultValue, TYPE_INFO INTNTYPE of length 2, no value bytes).
#[test]
fn the_client_requests_of_the_specification_examples() {
    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }
    let batch = hex("01 01 00 5C 00 00 01 00 16 00 00 00 12 00 00 00
         02 00 00 00 00 00 00 00 00 01 00 00 00 00 0A 00
         73 00 65 00 6C 00 65 00 63 00 74 00 20 00 27 00
         66 00 6F 00 6F 00 27 00 20 00 61 00 73 00 20 00
         27 00 62 00 61 00 72 00 27 00 0A 00 20 00 20 00
         20 00 20 00 20 00 20 00 20 00 20 00");
    let rpc = hex("03 01 00 2F 00 00 01 00 16 00 00 00 12 00 00 00
         02 00 00 00 00 00 00 00 00 01 00 00 00 00 04 00
         66 00 6F 00 6F 00 33 00 00 00 00 02 26 02 00");
    assert_eq!((batch.len(), rpc.len()), (0x5C, 0x2F));
    let conv = vec![(Direction::ToServer, batch), (Direction::ToServer, rpc)];
    let (ev, d, _) = run(&conv, Limits::default());
    let reqs: Vec<&dbtap_core::Request> = ev
        .iter()
        .filter_map(|e| match e {
            DbEvent::Request(r) => Some(&**r),
            _ => None,
        })
        .collect();
    assert_eq!(reqs.len(), 2, "{ev:?}");
    assert_eq!(dbtap_core::testing::op_name(reqs[0]), "query");
    assert_eq!(
        reqs[0].sql.as_deref(),
        Some("\nselect 'foo' as 'bar'\n        ")
    );
    assert_eq!(reqs[0].bytes, 0x5C);
    assert_eq!(dbtap_core::testing::op_name(reqs[1]), "rpc");
    assert_eq!(reqs[1].procedure.as_deref(), Some("foo3"));
    let params = reqs[1].decoded_params().unwrap();
    assert_eq!(params.len(), 1);
    assert_eq!(params[0].name, None);
    assert_eq!(params[0].value, ParamValue::Null);
    assert_clean(&ev, &d);
}

/// A client asking for TDS 7.4 and a SQL Server 2000 answering in TDS 7.1: its messages have
/// 2-byte line numbers and its DONE tokens 4-byte row counts, from before its LOGINACK (or with
/// none, when the login fails) to the end of the session.
#[test]
fn a_sql_server_2000_answers_a_newer_client_in_tds_71() {
    let (ev, d, _) = run(&synth::sql2000(true), Limits::default());
    let recs = records(&ev);
    assert_eq!(recs.len(), 1);
    let r = recs[0].1.as_ref().unwrap();
    assert_eq!(r.status, Status::Error);
    let e = r.error.as_ref().unwrap();
    assert_eq!(e.code, ErrorCode::Num(18456));
    assert_eq!(e.message, "Login failed for user 'his_app'.");
    assert_eq!(r.completeness, dbtap_core::Completeness::Complete);
    assert!(
        !ev.iter().any(|e| matches!(e, DbEvent::Anomaly { .. })),
        "{ev:?}"
    );

    let (ev, d2, _) = run(&synth::sql2000(false), Limits::default());
    let recs = records(&ev);
    assert_eq!(ops(&recs), ["login", "query", "query"]);
    let (login, resp) = &recs[0];
    assert_eq!(resp.as_ref().unwrap().status, Status::Ok);
    assert_eq!(login_attr(login, "server_tds_version"), Some("7.1"));
    assert!(ev.iter().any(|e| matches!(e, DbEvent::ServerInfo { version: Some(v), .. } if v == "Microsoft SQL Server 8.0.2039")));
    let update = recs[1].1.as_ref().unwrap();
    assert_eq!((update.status, update.rows), (Status::Ok, Some(3)));
    let select = recs[2].1.as_ref().unwrap();
    assert_eq!(select.status, Status::Error);
    let e = select.error.as_ref().unwrap();
    assert_eq!(e.code, ErrorCode::Num(208));
    assert_eq!(e.message, "Invalid object name 'no_such_table'.");
    assert!(
        !ev.iter().any(|e| matches!(e, DbEvent::Anomaly { .. })),
        "{ev:?}"
    );
    assert_eq!((d.stats().unparsed, d2.stats().unparsed), ([0, 0], [0, 0]));
}

#[test]
fn login_only_tls_keeps_auditing() {
    let (ev, d, _) = run(&synth::login_only_tls(), Limits::default());
    let recs = records(&ev);
    assert_eq!(recs.len(), 2);
    let (q, r) = &recs[0];
    assert!(q.login_encrypted);
    assert_eq!(q.login.as_ref().unwrap().user, None);
    assert_eq!(r.as_ref().unwrap().status, Status::Ok);
    assert_eq!(
        recs[1].0.sql.as_deref(),
        Some("SELECT TOP 10 * FROM lab_results")
    );
    assert_eq!(recs[1].1.as_ref().unwrap().rows, Some(1));
    assert!(!ev.iter().any(|e| matches!(e, DbEvent::Encrypted)));
    assert_eq!(d.state(), dbtap_core::DriverState::Parsing);
}

#[test]
fn full_encryption_and_tds8_are_flagged() {
    for conv in [synth::full_tls(), synth::tds8()] {
        let (ev, d, _) = run(&conv, Limits::default());
        assert!(ev.iter().any(|e| matches!(e, DbEvent::Encrypted)), "{ev:?}");
        assert_eq!(
            d.state(),
            dbtap_core::DriverState::Upgraded(dbtap_core::Upgrade::Tls)
        );
        assert!(d.stats().unparsed[0] > 0 && d.stats().unparsed[1] > 0);
        let recs = records(&ev);
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].0.op.as_ref().unwrap().as_str(), "login");
    }
    let (ev, _, _) = run(&synth::tds8(), Limits::default());
    let recs = records(&ev);
    assert_eq!(attr(&recs[0].0, "tds_version"), Some("8.0"));
}

#[test]
fn ntlm_user_and_domain() {
    let (ev, _, _) = run(&synth::ntlm_login(), Limits::default());
    let recs = records(&ev);
    assert_eq!(recs.len(), 2);
    let (q, r) = &recs[0];
    let l = q.login.as_ref().unwrap();
    assert_eq!(l.user.as_deref(), Some("HOSPITAL\\nurse.li"));
    assert_eq!(l.auth_method.as_deref(), Some("ntlm"));
    assert_eq!(login_attr(q, "ntlm_workstation"), Some("WARD-PC-07"));
    assert_eq!(r.as_ref().unwrap().status, Status::Ok);
    assert_eq!(recs[1].1.as_ref().unwrap().rows, Some(12));
}

#[test]
fn small_limits_cut_and_flag() {
    let limits = Limits {
        max_statement_len: 10,
        max_param_len: 4,
        ..Limits::default()
    };
    let (ev, _, _) = run(&synth::full_session(), limits);
    let recs = records(&ev);
    let q = &recs[1].0;
    assert_eq!(q.sql.as_deref(), Some("SELECT * F"));
    assert!(matches!(
        q.completeness,
        dbtap_core::Completeness::Truncated { .. }
    ));
    let p = &recs[4].0.decoded_params().unwrap();
    let nvc = p.iter().find(|p| p.type_name == "nvarchar").unwrap();
    assert_eq!(nvc.value, ParamValue::Text("患者".into()));
    assert!(nvc.truncated);
}

#[test]
fn mars_sessions_are_demultiplexed() {
    let (ev, d, _) = run(&synth::mars(), Limits::default());
    let recs = records(&ev);
    assert_eq!(recs.len(), 3, "{ev:?}");
    assert_eq!(recs[0].0.op.as_ref().unwrap().as_str(), "login");
    assert_eq!(login_attr(&recs[0].0, "prelogin_client_mars"), Some("true"));
    // Session 1 answered first.
    let (q, r) = &recs[1];
    assert_eq!(
        q.sql.as_deref(),
        Some("UPDATE dbo.worklist SET state = 2 WHERE id = 9")
    );
    assert_eq!(attr(q, "mars_session"), Some("1"));
    assert_eq!(r.as_ref().unwrap().rows, Some(5));
    let (q, r) = &recs[2];
    assert_eq!(
        q.sql.as_deref(),
        Some("SELECT study_uid FROM dbo.studies WHERE patient_id = 'P-0042'")
    );
    assert_eq!(attr(q, "mars_session"), Some("0"));
    let r = r.as_ref().unwrap();
    assert_eq!(r.rows, Some(2));
    assert_eq!(r.completeness, dbtap_core::Completeness::Complete);
    assert!(
        !ev.iter()
            .any(|e| matches!(e, DbEvent::Anomaly { .. } | DbEvent::Desync { .. })),
        "{ev:?}"
    );
    assert_eq!(d.state(), dbtap_core::DriverState::Parsing);
}

#[test]
fn bulk_load_and_transaction_manager() {
    let (ev, _, _) = run(&synth::bulk_and_tm(), Limits::default());
    let recs = records(&ev);
    let ops = ops(&recs);
    assert_eq!(
        ops,
        ["login", "query", "bulk_load", "transaction", "transaction"]
    );
    assert_eq!(
        attr(&recs[0].0, "routing"),
        Some("lis-replica.hospital.local:1434")
    );
    assert_eq!(recs[0].1.as_ref().unwrap().status, Status::Ok);
    assert_eq!(attr(&recs[2].0, "rows_sent"), Some("5"));
    assert_eq!(recs[2].1.as_ref().unwrap().rows, Some(5));
    assert_eq!(attr(&recs[3].0, "tm_request"), Some("begin"));
    assert_eq!(attr(&recs[3].0, "transaction"), Some("begin"));
    assert_eq!(attr(&recs[4].0, "tm_request"), Some("commit"));
    assert_eq!(attr(&recs[4].0, "transaction"), Some("commit"));
    assert!(
        !ev.iter().any(|e| matches!(e, DbEvent::Anomaly { .. })),
        "{ev:?}"
    );
}

/// A Bulk Load message (2.2.6.1) as FreeTDS 1.3 `freebcp` sends it at TDS 7.4 (captured in the
/// fixture `tds/live_freebcp_session`): the TEXT column's TableName is one US_VARCHAR
/// (`dbo.patient`, the TDS 7.0/7.1 layout, not NumParts + parts), a text value has a 16-byte
/// text pointer and 8-byte timestamp of 0xFF, a NULL text value is a text pointer length of 0,
/// and the message ends after its last ROW, without the DONE token. With `numparts_and_done`
/// the same rows in the layout the spec describes (TableName as NumParts + parts, DONE).
fn freetds_bulk_load(numparts_and_done: bool) -> Vec<u8> {
    let mut m = vec![0x81];
    m.extend_from_slice(&3u16.to_le_bytes());
    // id int NOT NULL: UserType, Flags 0x0008, INT4TYPE
    m.extend_from_slice(&[0, 0, 0, 0, 0x08, 0, 0x38]);
    m.extend(synth::b_varchar("id"));
    // name nvarchar(64): NVARCHARTYPE, 128 bytes, collation
    m.extend_from_slice(&[0, 0, 0, 0, 0x08, 0, 0xE7, 128, 0]);
    m.extend_from_slice(&synth::LATIN1);
    m.extend(synth::b_varchar("name"));
    // note text NULL: TEXTTYPE, 0x7FFFFFFF, collation, TableName
    m.extend_from_slice(&[0, 0, 0, 0, 0x09, 0, 0x23, 0xFF, 0xFF, 0xFF, 0x7F]);
    m.extend_from_slice(&synth::LATIN1);
    if numparts_and_done {
        m.push(2);
        m.extend(synth::us_varchar("dbo"));
        m.extend(synth::us_varchar("patient"));
    } else {
        m.extend(synth::us_varchar("dbo.patient"));
    }
    m.extend(synth::b_varchar("note"));
    let name = |m: &mut Vec<u8>, s: &str| {
        let u = synth::u16s(s);
        m.extend_from_slice(&(u.len() as u16).to_le_bytes());
        m.extend(u);
    };
    // ROW 1: text value with its text pointer and timestamp
    m.push(0xD1);
    m.extend_from_slice(&1i32.to_le_bytes());
    name(&mut m, "张三");
    m.push(16);
    m.extend_from_slice(&[0xFF; 24]);
    m.extend_from_slice(&22u32.to_le_bytes());
    m.extend_from_slice(b"allergic to penicillin");
    // ROW 2: NULL text (text pointer length 0)
    m.push(0xD1);
    m.extend_from_slice(&2i32.to_le_bytes());
    name(&mut m, "José Pérez");
    m.push(0);
    // NBCROW 3: the last column NULL by the bitmap, so the row ends on a NULL bit
    m.push(0xD2);
    m.push(0b100);
    m.extend_from_slice(&3i32.to_le_bytes());
    name(&mut m, "李四");
    if numparts_and_done {
        m.extend(synth::done(0xFD, 0, 0));
    }
    m
}

/// The login and `insert bulk` batch of `synth::bulk_and_tm`, then the Bulk Load message
/// `bulk` in packets of `packet_size` bytes and the server's DONE counting 3 rows.
fn bulk_load_conversation(bulk: &[u8], packet_size: usize) -> synth::Conversation {
    let mut conv = synth::bulk_and_tm();
    conv.truncate(6); // login, the insert bulk batch and its DONE
    conv.push((synth::C, synth::packets(0x07, bulk, packet_size, 0)));
    conv.push((
        synth::S,
        synth::packets(0x04, &synth::done(0xFD, 0x0010, 3), 4096, 57),
    ));
    conv
}

#[test]
fn freetds_bulk_load_one_part_table_name_and_no_done() {
    for numparts_and_done in [false, true] {
        // 40-byte packets: column metadata, text pointers and rows cross packet boundaries.
        let conv = bulk_load_conversation(&freetds_bulk_load(numparts_and_done), 40);
        let (ev, _, _) = run(&conv, Limits::default());
        let recs = records(&ev);
        assert_eq!(ops(&recs), ["login", "query", "bulk_load"]);
        let (q, r) = &recs[2];
        assert_eq!(attr(q, "rows_sent"), Some("3"), "{numparts_and_done}");
        assert_eq!(q.completeness, dbtap_core::Completeness::Complete);
        assert_eq!(r.as_ref().unwrap().rows, Some(3));
        assert!(
            !ev.iter().any(|e| matches!(e, DbEvent::Anomaly { .. })),
            "{ev:?}"
        );
    }
}

#[test]
fn a_bulk_load_cut_inside_a_row_is_flagged() {
    // Without a DONE the end of the message ends the rows, but only after a whole row: a
    // message ending inside a value is still cut.
    let mut bulk = freetds_bulk_load(false);
    bulk.truncate(bulk.len() - 3);
    let conv = bulk_load_conversation(&bulk, 4096);
    let (ev, _, _) = run(&conv, Limits::default());
    let recs = records(&ev);
    assert_eq!(ops(&recs), ["login", "query", "bulk_load"]);
    assert!(matches!(
        recs[2].0.completeness,
        dbtap_core::Completeness::Truncated { .. }
    ));
    assert!(ev.iter().any(|e| matches!(
        e,
        DbEvent::Anomaly {
            kind: "token_stream_cut",
            ..
        }
    )));
}

#[test]
fn a_message_the_client_abandons_with_ignore_is_not_recorded() {
    // MS-TDS 2.2.3.1.2: a batch whose last packet has IGNORE (0x02) with EOM is discarded by
    // the server, which does not answer it.
    let mut conv = synth::login_failed();
    conv.truncate(2); // PRELOGIN exchange only
    let mut abandoned = synth::packets(0x01, &synth::sql_batch("DELETE FROM dbo.patient"), 4096, 0);
    abandoned[1] = 0x03;
    conv.push((synth::C, abandoned));
    conv.push((
        synth::C,
        synth::packets(0x01, &synth::sql_batch("SELECT 1"), 4096, 0),
    ));
    conv.push((
        synth::S,
        synth::packets(0x04, &synth::done(0xFD, 0x0010, 1), 4096, 57),
    ));
    let (ev, _, _) = run(&conv, Limits::default());
    let recs = records(&ev);
    let sqls: Vec<_> = recs.iter().filter_map(|(q, _)| q.sql.as_deref()).collect();
    assert_eq!(sqls, ["SELECT 1"]);
    let select = recs
        .iter()
        .find(|(q, _)| q.sql.as_deref() == Some("SELECT 1"))
        .unwrap();
    assert_eq!(select.1.as_ref().unwrap().rows, Some(1));
    assert!(ev.iter().any(|e| matches!(
        e,
        DbEvent::Anomaly {
            kind: "ignored_message",
            ..
        }
    )));
}

#[test]
fn passwords_passed_to_system_procedures_are_not_recorded() {
    use synth::{done, nv, packets, rpc, rpc_message, C, S};
    // The login of the bulk/TM conversation, then direct calls (RPC by name, MS-TDS 2.2.6.6):
    // sp_addlogin 'bob', 'S3cret-pw', 'emr' (positional), sp_addlinkedsrvlogin with a named
    // @rmtpassword, and an ordinary procedure whose parameters stay as sent.
    let mut conv: synth::Conversation = synth::bulk_and_tm().into_iter().take(4).collect();
    let call = rpc_message(&[
        rpc(
            Err("sp_addlogin"),
            &[
                ("", false, &nv("bob")),
                ("", false, &nv("S3cret-pw")),
                ("", false, &nv("emr")),
            ],
        ),
        rpc(
            Err("master.dbo.sp_addlinkedsrvlogin"),
            &[
                ("@rmtsrvname", false, &nv("LIS")),
                ("@rmtpassword", false, &nv("Link-pw")),
            ],
        ),
        rpc(Err("dbo.usp_admit"), &[("@patient", false, &nv("P-0042"))]),
    ]);
    conv.push((C, packets(0x03, &call, 4096, 0)));
    let answer = [
        done(0xFF, 0x0001, 0),
        done(0xFF, 0x0001, 0),
        done(0xFE, 0, 0),
    ]
    .concat();
    conv.push((S, packets(0x04, &answer, 4096, 57)));
    let (ev, _, _) = run(&conv, Limits::default());
    let recs = records(&ev);
    let rpcs: Vec<_> = recs
        .iter()
        .filter(|(q, _)| q.op.as_ref().unwrap().as_str() == "rpc")
        .collect();
    assert_eq!(rpcs.len(), 3);
    let values = |i: usize| -> Vec<ParamValue> {
        rpcs[i]
            .0
            .decoded_params()
            .unwrap()
            .iter()
            .map(|p| p.value.clone())
            .collect()
    };
    let text = |s: &str| ParamValue::Text(s.into());
    assert_eq!(values(0), [text("bob"), text("***"), text("emr")]);
    assert_eq!(values(1), [text("LIS"), text("***")]);
    assert_eq!(values(2), [text("P-0042")]);
    // Neither in the events nor in the values decoded from them.
    let all = format!("{ev:?}");
    assert!(!all.contains("S3cret-pw") && !all.contains("Link-pw"));
    let decoded = format!(
        "{:?}",
        rpcs.iter()
            .map(|r| r.0.decoded_params())
            .collect::<Vec<_>>()
    );
    assert!(decoded.contains("***"));
    assert!(!decoded.contains("S3cret-pw") && !decoded.contains("Link-pw"));
}

/// Several RPCs in one message (MS-TDS 2.2.6.6: RPCs separated by the BatchFlag), answered by
/// one message with a DONEPROC closing each (2.2.7.7): every record gets its own share of the
/// bytes both ways, and the shares add up to the messages.
#[test]
fn several_rpcs_in_one_message_share_its_bytes() {
    use synth::{done, message, nv, packets, returnstatus, rpc, rpc_message, C, S};
    let mut conv: synth::Conversation = synth::bulk_and_tm().into_iter().take(4).collect();
    let rpcs = [
        rpc(Err("dbo.usp_admit"), &[("@patient", false, &nv("P-0042"))]),
        rpc(
            Err("dbo.usp_bed"),
            &[("@ward", false, &nv("ICU-3")), ("@bed", false, &nv("7"))],
        ),
        rpc(Err("dbo.usp_note"), &[]),
    ];
    let call = rpc_message(&rpcs);
    let call_packets = packets(0x03, &call, 4096, 0);
    conv.push((C, call_packets.clone()));
    let answers = [
        [done(0xFF, 0x0011, 2), returnstatus(0), done(0xFE, 0, 0)].concat(),
        [
            message(
                0xAA,
                547,
                0,
                16,
                "The INSERT statement conflicted",
                "usp_bed",
                12,
            ),
            done(0xFE, 0x0002, 0),
        ]
        .concat(),
        [returnstatus(0), done(0xFE, 0, 0)].concat(),
    ];
    let answer_packets = packets(0x04, &answers.concat(), 4096, 57);
    conv.push((S, answer_packets.clone()));
    let (ev, _, _) = run(&conv, Limits::default());
    let recs = records(&ev);
    let rpcs_seen: Vec<_> = recs
        .iter()
        .filter(|(q, _)| q.op.as_ref().unwrap().as_str() == "rpc")
        .collect();
    assert_eq!(rpcs_seen.len(), 3);
    let req: Vec<u64> = rpcs_seen.iter().map(|(q, _)| q.bytes).collect();
    let resp: Vec<u64> = rpcs_seen
        .iter()
        .map(|(_, r)| r.as_ref().unwrap().bytes)
        .collect();
    // The second RPC: its own bytes and the BatchFlag after it; the last: its own; the first:
    // the rest (packet header, ALL_HEADERS, itself and its BatchFlag).
    let wire = call_packets.len() as u64;
    let (r1, r2) = (rpcs[1].len() as u64 + 1, rpcs[2].len() as u64);
    assert_eq!(req, [wire - r1 - r2, r1, r2]);
    // Each answer up to its DONEPROC; the first also the packet header.
    let header = (answer_packets.len() - answers.concat().len()) as u64;
    assert_eq!(
        resp,
        [
            answers[0].len() as u64 + header,
            answers[1].len() as u64,
            answers[2].len() as u64
        ]
    );
    assert_eq!(resp.iter().sum::<u64>(), answer_packets.len() as u64);
    let status = |i: usize| rpcs_seen[i].1.as_ref().unwrap().status;
    assert_eq!(
        [status(0), status(1), status(2)],
        [Status::Ok, Status::Error, Status::Ok]
    );
    assert_eq!(rpcs_seen[0].1.as_ref().unwrap().rows, Some(2));
}

#[test]
fn rpc_parameter_names_and_table_valued_parameters() {
    let (ev, _, _) = run(&synth::rpc_secrets(), Limits::default());
    let recs = records(&ev);
    let names = |i: usize| -> Vec<Option<String>> {
        recs[i]
            .0
            .decoded_params()
            .unwrap()
            .iter()
            .map(|p| p.name.clone())
            .collect()
    };
    // ParamName as sent.
    assert_eq!(
        recs[1].0.sql.as_deref(),
        Some("ALTER LOGIN his_app WITH PASSWORD = @pw")
    );
    assert_eq!(names(1), [Some("@pw".into())]);
    // Sent positionally: named by the @params declaration, in order.
    assert_eq!(names(2), [Some("@P1".into()), Some("@P2".into())]);
    // The TVP: one parameter with its table type and row count; the next one still decoded.
    let ps = recs[3].0.decoded_params().unwrap();
    assert_eq!(
        recs[3].0.procedure.as_deref(),
        Some("dbo.usp_transfer_patients")
    );
    assert_eq!(ps[0].type_name, "dbo.PatientIdList");
    assert_eq!(
        ps[0].value,
        ParamValue::Table {
            rows: 3,
            columns: 1
        }
    );
    assert_eq!(ps[1].value, ParamValue::Text("ICU-2".into()));
    assert_eq!(recs[3].0.completeness, dbtap_core::Completeness::Complete);
    assert_eq!(recs[3].1.as_ref().unwrap().rows, Some(3));
    assert!(!ev.iter().any(|e| matches!(e, DbEvent::Anomaly { .. })));
}

#[test]
fn enclave_packages_and_encrypted_result_columns() {
    let (ev, _, _) = run(&synth::always_encrypted_enclave(), Limits::default());
    let recs = records(&ev);
    assert_eq!(recs.len(), 4);
    // The batch after an empty EnclavePackage: its text starts right after the length.
    let (q, r) = &recs[1];
    assert_eq!(
        q.sql.as_deref(),
        Some("SELECT COUNT(*) FROM dbo.patient_secure")
    );
    assert_eq!(attr(q, "enclave_package_bytes"), None);
    assert_eq!(r.as_ref().unwrap().rows, Some(1));
    // The RPC after a 48-byte package: procedure, statement and the encrypted parameter.
    let (q, r) = &recs[2];
    assert_eq!(q.procedure.as_deref(), Some("sp_executesql"));
    assert_eq!(
        q.sql.as_deref(),
        Some("SELECT name FROM dbo.patient_secure WHERE ssn LIKE @pattern")
    );
    assert_eq!(attr(q, "enclave_package_bytes"), Some("48"));
    let ps = q.decoded_params().unwrap();
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0].name.as_deref(), Some("@pattern"));
    assert!(matches!(&ps[0].value, ParamValue::Encrypted(b) if b.len() == 65));
    assert_eq!(r.as_ref().unwrap().status, Status::Ok);
    // A result with an encrypted column: the CekTable and CryptoMetaData are read past, the
    // two rows counted, the column counted as encrypted.
    let (q, r) = &recs[3];
    assert_eq!(
        q.sql.as_deref(),
        Some("SELECT id, ssn FROM dbo.patient_secure WHERE id IN (1001, 1002)")
    );
    let r = r.as_ref().unwrap();
    assert_eq!(r.rows, Some(2));
    assert_eq!(r.completeness, dbtap_core::Completeness::Complete);
    assert_eq!(attr(q, "encrypted_columns"), Some("1"));
    assert!(!ev.iter().any(|e| matches!(e, DbEvent::Anomaly { .. })));
}

#[test]
fn always_encrypted_parameters_and_data_classification() {
    let (ev, _, _) = run(&synth::always_encrypted(), Limits::default());
    let recs = records(&ev);
    assert_eq!(recs.len(), 3);
    let (q, r) = &recs[1];
    let ps = q.decoded_params().unwrap();
    assert_eq!(ps[0].value, ParamValue::Text("Ann Lee".into()));
    assert_eq!(ps[1].name.as_deref(), Some("@ssn"));
    assert_eq!(ps[1].type_name, "char");
    match &ps[1].value {
        ParamValue::Encrypted(b) => {
            assert_eq!(b.len(), 65);
            assert_eq!(b[0], 0x01);
        }
        v => panic!("not cipher text: {v:?}"),
    }
    assert_eq!(attr(q, "encrypted_params"), Some("1"));
    assert_eq!(r.as_ref().unwrap().status, Status::Ok);
    // The SELECT: COLMETADATA with an empty CekTable, DATACLASSIFICATION v2, one row.
    let (q, r) = &recs[2];
    assert_eq!(r.as_ref().unwrap().rows, Some(1));
    assert_eq!(
        r.as_ref().unwrap().completeness,
        dbtap_core::Completeness::Complete
    );
    assert_eq!(attr(q, "sensitivity"), Some("Confidential - GDPR: Health"));
    assert!(!ev.iter().any(|e| matches!(e, DbEvent::Anomaly { .. })));
}

#[test]
fn a_capture_of_the_client_side_only_still_records_every_request_with_its_user() {
    // One direction mirrored: the spec-true full session without a byte from the server.
    let client_only: Conversation = synth::full_session()
        .into_iter()
        .filter(|(d, _)| *d == Direction::ToServer)
        .collect();
    let (ev, _, _) = run(&client_only, Limits::default());
    let recs = records(&ev);
    assert_eq!(
        ops(&recs),
        [
            "login", "query", "query", "query", "rpc", "rpc", "rpc", "rpc", "rpc", "rpc", "query",
            "cancel"
        ]
    );
    assert!(recs.iter().all(|(_, r)| r.is_none()));
    assert_eq!(
        recs[1].0.sql.as_deref(),
        Some("SELECT * FROM dbo.patient_notes WHERE ward = N'内科'")
    );
    // Requests come only after a login is accepted: the session is the login's user's, from
    // the first request on.
    let sessions: Vec<_> = ev
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e {
            DbEvent::Session(s) => Some((i, s.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(sessions.len(), 1);
    let (at, s) = &sessions[0];
    assert_eq!(s.user.as_deref(), Some("his_app"));
    assert_eq!(s.database.as_deref(), Some("EMR"));
    assert_eq!(s.client_program.as_deref(), Some("HIS.Registration"));
    let first_query = ev
        .iter()
        .position(|e| matches!(e, DbEvent::Request(q) if q.sql.is_some()))
        .unwrap();
    assert!(at < &first_query);
    assert!(!format!("{ev:?}").contains("Sup3r"));
}

#[test]
fn memory_reported_follows_the_requests_waiting_for_their_answer() {
    use dbtap_core::StreamParser;
    let ward = "x".repeat(1000);
    let (h, v) = (synth::int4(1), synth::nv(&ward));
    let execute = synth::packets(
        0x03,
        &synth::rpc_message(&[synth::rpc(Ok(12), &[("", false, &h), ("", false, &v)])]),
        4096,
        0,
    );
    let answer = synth::packets(
        0x04,
        &[
            synth::done(0xFF, 0x0011, 1),
            synth::returnstatus(0),
            synth::done(0xFE, 0x0000, 0),
        ]
        .concat(),
        4096,
        57,
    );
    let mut p = TdsParser::new(SessionOpts::default());
    let mut d = Driver::new(Limits::default());
    let mut out = Vec::new();
    let mut t = 0;
    let mut send = |p: &mut TdsParser, dir, b: &[u8]| {
        t += 1;
        d.data(p, dir, Timestamp(t), b, &mut out);
    };
    // Log in and prepare handle 1, then a first round of five executes and their answers
    // (buffers reach their size); the second round is measured.
    for (dir, b) in synth::statement_pool(1, 0) {
        send(&mut p, dir, &b);
    }
    for round in 0..2 {
        let idle = p.mem_usage();
        for _ in 0..5 {
            send(&mut p, Direction::ToServer, &execute);
        }
        let waiting = p.mem_usage();
        assert!(waiting >= idle + 5 * ward.len(), "{idle} -> {waiting}");
        for _ in 0..5 {
            send(&mut p, Direction::ToClient, &answer);
        }
        if round == 1 {
            assert_eq!(p.mem_usage(), idle);
        }
    }
    let executes = records(&out)
        .iter()
        .filter(|(q, r)| q.procedure.as_deref() == Some("sp_execute") && r.is_some())
        .count();
    assert_eq!(executes, 10);
}

/// The bench's OLTP conversation (sysbench `oltp_read_write` as the JDBC driver sends it):
/// every statement recorded once, prepared on first use and executed by handle after, with
/// its text, values and row count; the transaction requests recorded as such.
#[test]
fn oltp_transactions_as_a_jdbc_client_sends_them() {
    let mut conv = synth::Oltp::login();
    let mut oltp = synth::Oltp::new(7);
    let mut want = synth::OltpCounts::default();
    for _ in 0..3 {
        let (t, c) = oltp.transaction();
        conv.extend(t);
        want += c;
    }
    assert_eq!(
        want,
        synth::OltpCounts {
            rpcs: 54,
            prepexecs: 9,
            tm: 6,
            rows: 3 * (10 + 100 + 1 + 100 + 100 + 4)
        }
    );
    let (ev, _, _) = run(&conv, Limits::default());
    let recs = records(&ev);
    assert!(
        !ev.iter().any(|e| matches!(e, DbEvent::Anomaly { .. })),
        "{ev:?}"
    );
    let ops = ops(&recs);
    assert_eq!(ops.len(), 1 + 54 + 6);
    assert_eq!(ops[0], "login");
    assert_eq!(ops.iter().filter(|o| *o == "rpc").count(), 54);
    assert_eq!(ops.iter().filter(|o| *o == "transaction").count(), 6);
    // Transaction 1: BEGIN, then the first point select is prepared and run at once.
    assert_eq!(attr(&recs[1].0, "tm_request"), Some("begin"));
    let (q, r) = &recs[2];
    assert_eq!(q.procedure.as_deref(), Some("sp_prepexec"));
    assert_eq!(q.sql.as_deref(), Some("SELECT c FROM sbtest1 WHERE id=@P0"));
    assert_eq!(r.as_ref().unwrap().rows, Some(1));
    assert_eq!(r.as_ref().unwrap().status, Status::Ok);
    // Its second run goes by handle, with the prepared text.
    let (q, r) = &recs[3];
    assert_eq!(q.procedure.as_deref(), Some("sp_execute"));
    assert_eq!(q.sql.as_deref(), Some("SELECT c FROM sbtest1 WHERE id=@P0"));
    assert_eq!(q.decoded_params().unwrap().len(), 1);
    assert!(matches!(
        q.decoded_params().unwrap()[0].value,
        ParamValue::Int(1..=10_000)
    ));
    assert_eq!(r.as_ref().unwrap().rows, Some(1));
    // The range query after the ten point selects: 100 rows, two int bounds 99 apart.
    let (q, r) = &recs[12];
    assert_eq!(
        q.sql.as_deref(),
        Some("SELECT c FROM sbtest1 WHERE id BETWEEN @P0 AND @P1")
    );
    let p = q.decoded_params().unwrap();
    match (&p[0].value, &p[1].value) {
        (ParamValue::Int(a), ParamValue::Int(b)) => assert_eq!(b - a, 99),
        other => panic!("{other:?}"),
    }
    assert_eq!(r.as_ref().unwrap().rows, Some(100));
    // The insert ends the statements: four values, the texts as sysbench makes them.
    let (q, r) = &recs[19];
    assert!(q.sql.as_deref().unwrap().starts_with("INSERT INTO sbtest1"));
    let p = q.decoded_params().unwrap();
    assert_eq!(p.len(), 4);
    match &p[2].value {
        ParamValue::Text(t) => assert_eq!((t.len(), t.matches('-').count()), (119, 9)),
        other => panic!("{other:?}"),
    }
    assert_eq!(r.as_ref().unwrap().rows, Some(1));
    assert_eq!(attr(&recs[20].0, "tm_request"), Some("commit"));
    // Later transactions only execute: every statement by handle, with its text.
    for (q, _) in &recs[22..40] {
        assert_eq!(q.procedure.as_deref(), Some("sp_execute"));
        assert!(q.sql.is_some(), "{q:?}");
    }
    let rows: u64 = recs
        .iter()
        .filter(|(q, _)| q.procedure.is_some())
        .map(|(_, r)| r.as_ref().unwrap().rows.unwrap_or(0))
        .sum();
    assert_eq!(rows, want.rows);
}

/// A server cursor as the Microsoft JDBC driver opens one: the statement and its values sit
/// where the driver puts them (sp_cursorprepexec: declarations 3rd, statement 4th, values from
/// the 8th parameter; sp_cursorexecute: values from the 6th), and the browse-mode tokens of the
/// cursor's result (TABNAME, COLINFO, ORDER) are stepped over.
#[test]
fn a_jdbc_server_cursor_prepared_fetched_and_executed_again() {
    const HANDLE: u64 = 1_073_741_825;
    let (ev, d, _) = run(&synth::cursor_prepexec(), Limits::default());
    let recs = records(&ev);
    assert_eq!(ops(&recs), ["login", "rpc", "rpc", "rpc", "rpc", "rpc"]);
    let values = |q: &dbtap_core::Request| -> Vec<(Option<String>, ParamValue)> {
        q.decoded_params()
            .unwrap()
            .iter()
            .map(|p| (p.name.clone(), p.value.clone()))
            .collect()
    };
    let stmt = "SELECT id, result FROM dbo.lab WHERE patient = @P0 AND test = @P1 ORDER BY id";

    let (open, r) = &recs[1];
    assert_eq!(open.procedure.as_deref(), Some("sp_cursorprepexec"));
    assert_eq!(open.sql.as_deref(), Some(stmt));
    assert_eq!(
        attr(open, "param_declarations"),
        Some("@P0 int,@P1 nvarchar(4000)")
    );
    assert_eq!(
        values(open),
        [
            (Some("@P0".to_owned()), ParamValue::Int(4711)),
            (Some("@P1".to_owned()), ParamValue::Text("HbA1c".into())),
        ]
    );
    assert_eq!(open.stmt_id, Some(HANDLE));
    assert_eq!(r.as_ref().unwrap().status, Status::Ok);

    let (fetch, r) = &recs[2];
    assert_eq!(fetch.procedure.as_deref(), Some("sp_cursorfetch"));
    assert_eq!(
        values(fetch),
        [
            (None, ParamValue::Int(180_150_003)),
            (None, ParamValue::Int(2)),
            (None, ParamValue::Int(1)),
            (None, ParamValue::Int(2)),
        ]
    );
    assert_eq!(r.as_ref().unwrap().rows, Some(2));

    let (exec, r) = &recs[3];
    assert_eq!(exec.procedure.as_deref(), Some("sp_cursorexecute"));
    assert_eq!(exec.sql.as_deref(), Some(stmt));
    assert_eq!(exec.stmt_id, Some(HANDLE));
    assert_eq!(
        values(exec),
        [
            (Some("@P0".to_owned()), ParamValue::Int(4712)),
            (Some("@P1".to_owned()), ParamValue::Text("LDL".into())),
        ]
    );
    assert_eq!(r.as_ref().unwrap().status, Status::Ok);

    assert_eq!(recs[4].0.procedure.as_deref(), Some("sp_cursorclose"));
    let (unprepare, r) = &recs[5];
    assert_eq!(unprepare.procedure.as_deref(), Some("sp_cursorunprepare"));
    assert_eq!(r.as_ref().unwrap().status, Status::Ok);
    assert_clean(&ev, &d);
}

/// An Entra ID (FedAuth, ADAL workflow) login: the login record says how it authenticated and
/// that its credentials are not shown; the access token the client sends in its FEDAUTH_TOKEN
/// message appears in no event; the session goes on to its SQL batch.
#[test]
fn a_fedauth_login_keeps_its_token_out_of_every_event() {
    let (ev, d, _) = run(&synth::fedauth_login(), Limits::default());
    let recs = records(&ev);
    assert_eq!(ops(&recs), ["login", "query"]);
    let (login, r) = &recs[0];
    let l = login.login.as_ref().unwrap();
    assert_eq!(l.auth_method.as_deref(), Some("fedauth"));
    assert!(l.credentials_redacted);
    assert_eq!(l.user, None);
    assert_eq!(
        login_attr(login, "prelogin_client_fedauth_required"),
        Some("true")
    );
    assert_eq!(r.as_ref().unwrap().status, Status::Ok);
    let (q, r) = &recs[1];
    assert_eq!(
        q.sql.as_deref(),
        Some("SELECT TOP 1 name FROM dbo.patients")
    );
    assert_eq!(r.as_ref().unwrap().rows, Some(1));
    let all = format!("{ev:?}");
    for secret in ["eyJ0eXAi", "SECRET-SIGNATURE"] {
        assert!(!all.contains(secret), "{secret} in {all}");
    }
    assert_clean(&ev, &d);
}
