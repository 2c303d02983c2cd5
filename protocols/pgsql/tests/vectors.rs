//! Hand-made message vectors, laid out field by field as "Message Formats" of the PostgreSQL
//! protocol documentation describes them (builders in `common::msg`, annotated there), fed
//! through `dbtap_core::Driver`. They cover what the captures in tests/streams do not hold:
//! protocol 3.2, GSSAPI encryption, direct TLS, binary binds, suspended portals, COPY TO
//! STDOUT, replication, FunctionCall, encodings, limits, gaps.
mod common;

use common::msg::{self, cstr, typed};
use common::{pairs, summary, Seg};
use dbtap_core::event::SessionUpdate;
use dbtap_core::{
    Completeness, DbEvent, Direction, DriverState, ErrorCode, Limits, Param, ParamValue, Probe,
    SessionOpts, Status, Timestamp, Upgrade,
};

const C: Direction = Direction::ToServer;
const S: Direction = Direction::ToClient;

/// Segments with times 1, 2, 3, … (seconds).
fn segs(parts: &[(Direction, Vec<u8>)]) -> Vec<Seg> {
    parts
        .iter()
        .enumerate()
        .map(|(i, (d, b))| Seg::Data(*d, Timestamp((i as u64 + 1) * 1_000_000_000), b.clone()))
        .collect()
}

fn run(parts: &[(Direction, Vec<u8>)]) -> Vec<DbEvent> {
    common::feed(&segs(parts), SessionOpts::default(), Limits::default()).0
}

fn run_limits(parts: &[(Direction, Vec<u8>)], limits: Limits) -> Vec<DbEvent> {
    common::feed(&segs(parts), SessionOpts::default(), limits).0
}

/// A trust login: StartupMessage; AuthenticationOk, server_version, BackendKeyData,
/// ReadyForQuery(I).
fn login(params: &[(&str, &str)]) -> Vec<(Direction, Vec<u8>)> {
    vec![
        (C, msg::startup(params)),
        (
            S,
            [
                msg::auth(0, &[]),
                msg::param_status("server_version", "16.2"),
                msg::param_status("client_encoding", "UTF8"),
                msg::key_data(4242, 0xdead_beef),
                msg::ready(b'I'),
            ]
            .concat(),
        ),
    ]
}

fn with_login(rest: &[(Direction, Vec<u8>)]) -> Vec<(Direction, Vec<u8>)> {
    let mut v = login(&[("user", "alice"), ("database", "clinic")]);
    v.extend_from_slice(rest);
    v
}

fn ops(ev: &[DbEvent]) -> Vec<String> {
    summary(ev).into_iter().skip(1).collect()
}

fn prm(t: &str, v: ParamValue) -> Param {
    Param {
        name: None,
        type_name: t.to_string().into(),
        value: v,
        truncated: false,
    }
}

// ─── startup, authentication ────────────────────────────────────────────────────────────

#[test]
fn trust_login_server_info_and_session() {
    let ev = run(&login(&[
        ("user", "alice"),
        ("application_name", "ehr-app"),
        ("options", "-c search_path=emr"),
    ]));
    assert_eq!(
        ev[0],
        DbEvent::ServerInfo {
            version: Some("16.2".into()),
            connection_id: Some(4242)
        }
    );
    // The database defaults to the user name.
    assert_eq!(
        ev[1],
        DbEvent::Session(SessionUpdate {
            user: Some("alice".into()),
            database: Some("alice".into()),
            client_program: Some("ehr-app".into()),
        })
    );
    let p = pairs(&ev);
    let l = p[0].0.login.as_ref().unwrap();
    assert_eq!(l.auth_method.as_deref(), Some("trust"));
    assert_eq!(
        l.attributes,
        vec![
            ("user".into(), "alice".to_string()),
            ("application_name".into(), "ehr-app".into()),
            ("options".into(), "-c search_path=emr".into()),
        ]
    );
    assert_eq!(p[0].1.as_ref().unwrap().status, Status::Ok);
    // The BackendKeyData secret (0xdeadbeef = 3735928559) is in no event.
    assert!(!format!("{ev:?}").contains("3735928559"));
}

#[test]
fn database_does_not_exist_3d000() {
    // AuthenticationOk, then FATAL 3D000 (the database check follows authentication).
    let ev = run(&[
        (
            C,
            msg::startup(&[("user", "alice"), ("database", "nosuch")]),
        ),
        (
            S,
            [
                msg::auth(0, &[]),
                msg::error("FATAL", "3D000", "database \"nosuch\" does not exist"),
            ]
            .concat(),
        ),
    ]);
    let p = pairs(&ev);
    assert_eq!(p.len(), 1);
    let e = p[0].1.as_ref().unwrap().error.clone().unwrap();
    assert_eq!(e.code, ErrorCode::Text("3D000".into()));
    assert_eq!(e.sqlstate.as_deref(), Some("3D000"));
    assert_eq!(e.message, "database \"nosuch\" does not exist");
    assert!(!ev.iter().any(|e| matches!(e, DbEvent::Session(_))));
}

#[test]
fn sasl_data_never_appears() {
    // AuthenticationSASL [SCRAM-SHA-256-PLUS, SCRAM-SHA-256]; SASLInitialResponse choosing
    // SCRAM-SHA-256-PLUS (channel binding); SASLContinue / SASLFinal with server data.
    let sasl_init = [
        cstr("SCRAM-SHA-256-PLUS"),
        30u32.to_be_bytes().to_vec(), // Int32 length of the initial response
        b"p=tls-server-end-point,,n=,r=CLIENTNONCE".to_vec(),
    ]
    .concat();
    let ev = run(&[
        (C, msg::startup(&[("user", "bob")])),
        (
            S,
            msg::auth(
                10,
                &[cstr("SCRAM-SHA-256-PLUS"), cstr("SCRAM-SHA-256"), vec![0]].concat(),
            ),
        ),
        (C, typed(b'p', &sasl_init)),
        (
            S,
            msg::auth(11, b"r=CLIENTNONCESERVERNONCE,s=SALTSALT,i=4096"),
        ),
        (
            C,
            typed(
                b'p',
                b"c=cD10bHMtc2VydmVyLWVuZC1wb2ludCws,r=CLIENTNONCESERVERNONCE,p=PROOFPROOF",
            ),
        ),
        (
            S,
            [
                msg::auth(12, b"v=SERVERSIGNATURE"),
                msg::auth(0, &[]),
                msg::ready(b'I'),
            ]
            .concat(),
        ),
    ]);
    let p = pairs(&ev);
    let l = p[0].0.login.as_ref().unwrap();
    assert_eq!(l.auth_method.as_deref(), Some("scram-sha-256-plus"));
    assert!(l.credentials_redacted);
    let dump = format!("{ev:?}");
    for secret in [
        "CLIENTNONCE",
        "SALTSALT",
        "PROOFPROOF",
        "SERVERSIGNATURE",
        "cD10bHMt",
    ] {
        assert!(!dump.contains(secret), "{secret} leaked");
    }
}

#[test]
fn protocol_3_2_negotiation_and_long_cancel_keys() {
    // PostgreSQL 18 clients ask for 3.2 and send _pq_ options; an older server answers
    // NegotiateProtocolVersion(3.0, 1 option unknown). BackendKeyData of 3.2 carries a 32-byte
    // key: its length is what the message length leaves.
    let npv = [
        196_608u32.to_be_bytes().to_vec(), // newest version supported: 3.0
        1u32.to_be_bytes().to_vec(),       // one option not recognised
        cstr("_pq_.test"),
    ]
    .concat();
    let long_key = [7u32.to_be_bytes().to_vec(), vec![0xAB; 32]].concat();
    let ev = run(&[
        (
            C,
            msg::startup_version(196_610, &[("user", "carol"), ("_pq_.test", "on")]),
        ),
        (
            S,
            [
                typed(b'v', &npv),
                msg::auth(0, &[]),
                typed(b'K', &long_key),
                msg::ready(b'I'),
            ]
            .concat(),
        ),
    ]);
    let p = pairs(&ev);
    let l = p[0].0.login.as_ref().unwrap();
    assert!(l
        .attributes
        .contains(&("protocol_version".to_string(), "3.0".to_string())));
    assert!(ev.contains(&DbEvent::ServerInfo {
        version: None,
        connection_id: Some(7)
    }));
    // CancelRequest of 3.2: Int32 len (12 + 32), Int32 80877102, Int32 pid, Byte32 key.
    let cancel = [
        44u32.to_be_bytes().to_vec(),
        80_877_102u32.to_be_bytes().to_vec(),
        7u32.to_be_bytes().to_vec(),
        vec![0xAB; 32],
    ]
    .concat();
    assert!(dbtap_pgsql::session_start(C, &cancel));
    let ev = run(&[(C, cancel)]);
    let p = pairs(&ev);
    assert_eq!(p[0].0.op.as_ref().unwrap().as_str(), "cancel");
    assert_eq!(
        p[0].0.attributes,
        vec![("target_backend_pid".into(), "7".to_string())]
    );
    assert_eq!(p[0].0.bytes, 44);
}

#[test]
fn gssenc_accepted_and_refused() {
    let gss = [8u32.to_be_bytes(), 80_877_104u32.to_be_bytes()].concat();
    let (ev, d, _) = common::feed(
        &segs(&[
            (C, gss.clone()),
            (S, b"G".to_vec()),
            (C, vec![0x60, 0x82, 1, 2]),
        ]),
        SessionOpts::default(),
        Limits::default(),
    );
    assert_eq!(d.state(), DriverState::Upgraded(Upgrade::Tls));
    assert!(ev.contains(&DbEvent::Encrypted));
    let p = pairs(&ev);
    assert_eq!(p.len(), 1);
    assert!(p[0].0.expects_response && p[0].1.is_none());
    // Refused: N, then SSLRequest refused too, then a plaintext startup.
    let ev = run(&[
        (C, gss),
        (S, b"N".to_vec()),
        (C, msg::ssl_request()),
        (S, b"N".to_vec()),
        (C, msg::startup(&[("user", "dave")])),
        (S, [msg::auth(0, &[]), msg::ready(b'I')].concat()),
    ]);
    let p = pairs(&ev);
    assert_eq!(p.len(), 1);
    // GSSENCRequest 8 + SSLRequest 8 + StartupMessage.
    assert_eq!(
        p[0].0.bytes,
        16 + msg::startup(&[("user", "dave")]).len() as u64
    );
    let r = p[0].1.as_ref().unwrap();
    assert_eq!((r.status, r.bytes), (Status::Ok, 2 + 9 + 6));
    assert!(!ev.contains(&DbEvent::Encrypted));
}

#[test]
fn direct_tls_of_postgresql_17() {
    let hello = tls_hello(Some(b"postgresql"), b"db.hospital.example");
    assert_eq!(dbtap_pgsql::probe(C, &hello), Probe::Certain);
    assert_eq!(
        dbtap_pgsql::probe(C, &tls_hello(Some(b"h2"), b"x")),
        Probe::NotForUs
    );
    assert_eq!(dbtap_pgsql::probe(C, &tls_hello(None, b"x")), Probe::Unsure);
    let (ev, d, _) = common::feed(
        &segs(&[(C, hello.clone()), (S, vec![0x16, 3, 3, 0, 1, 2])]),
        SessionOpts::default(),
        Limits::default(),
    );
    assert_eq!(d.state(), DriverState::Upgraded(Upgrade::Tls));
    assert_eq!(d.stats().unparsed, [hello.len() as u64, 6]);
    let p = pairs(&ev);
    assert_eq!(p.len(), 1);
    let l = p[0].0.login.as_ref().unwrap();
    assert_eq!(
        l.attributes,
        vec![
            ("ssl_negotiation".into(), "direct".to_string()),
            ("tls_server_name".into(), "db.hospital.example".into()),
        ]
    );
    assert!(ev.contains(&DbEvent::Encrypted));
}

/// A TLS 1.2 ClientHello record (RFC 8446 §4.1.2 layout) with server_name and ALPN.
fn tls_hello(alpn: Option<&[u8]>, host: &[u8]) -> Vec<u8> {
    let mut ext = Vec::new();
    // server_name (0): list length, type 0 host_name, name length, name.
    let mut sni = vec![0u8];
    sni.extend_from_slice(&(host.len() as u16).to_be_bytes());
    sni.extend_from_slice(host);
    ext.extend_from_slice(&0u16.to_be_bytes());
    ext.extend_from_slice(&((sni.len() + 2) as u16).to_be_bytes());
    ext.extend_from_slice(&(sni.len() as u16).to_be_bytes());
    ext.extend_from_slice(&sni);
    if let Some(a) = alpn {
        // ALPN (16): list length, protocol name length, name.
        ext.extend_from_slice(&16u16.to_be_bytes());
        ext.extend_from_slice(&((a.len() + 3) as u16).to_be_bytes());
        ext.extend_from_slice(&((a.len() + 1) as u16).to_be_bytes());
        ext.push(a.len() as u8);
        ext.extend_from_slice(a);
    }
    let mut body = vec![3, 3]; // legacy_version
    body.extend_from_slice(&[0x42; 32]); // random
    body.push(0); // session id
    body.extend_from_slice(&[0, 2, 0x13, 0x01]); // cipher suites
    body.extend_from_slice(&[1, 0]); // compression methods
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![1]; // ClientHello
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 3, 1];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

// ─── simple query ───────────────────────────────────────────────────────────────────────

#[test]
fn multi_statement_query_one_record_per_statement() {
    let sql =
        "BEGIN; UPDATE patients SET ward = 'B' WHERE id = 7; SELECT name FROM patients; COMMIT";
    let ev = run(&with_login(&[
        (C, msg::query(sql)),
        (
            S,
            [
                msg::complete("BEGIN"),
                msg::notice("some notice"),
                msg::complete("UPDATE 1"),
                msg::row_desc("name"),
                msg::data_row(b"Ann"),
                msg::data_row(b"Bo"),
                msg::complete("SELECT 2"),
                msg::complete("COMMIT"),
                msg::ready(b'I'),
            ]
            .concat(),
        ),
    ]));
    assert_eq!(
        ops(&ev),
        vec![
            "2 query \"BEGIN\" => Ok rows=None",
            "3 query \"UPDATE patients SET ward = 'B' WHERE id = 7\" => Ok rows=Some(1)",
            "4 query \"SELECT name FROM patients\" => Ok rows=Some(2)",
            "5 query \"COMMIT\" => Ok rows=None",
        ]
    );
    let p = pairs(&ev);
    // The Query message's bytes go to the first statement; the notice counts where it came.
    assert_eq!(p[1].0.bytes, msg::query(sql).len() as u64);
    assert_eq!(p[2].0.bytes, 0);
    assert_eq!(p[2].1.as_ref().unwrap().warnings, Some(1));
    // Response bytes: each statement's messages; ReadyForQuery with the last.
    let select = msg::row_desc("name").len()
        + msg::data_row(b"Ann").len()
        + msg::data_row(b"Bo").len()
        + msg::complete("SELECT 2").len();
    assert_eq!(p[3].1.as_ref().unwrap().bytes, select as u64);
    assert_eq!(
        p[4].1.as_ref().unwrap().bytes,
        (msg::complete("COMMIT").len() + 6) as u64
    );
}

/// PostgreSQL 14+ reports changed settings (ParameterStatus) right before ReadyForQuery, after
/// the last CommandComplete; a NOTIFY to a channel the session listens on comes there too.
/// Neither is a statement's result: the query stays one record per statement.
#[test]
fn settings_reported_before_ready_for_query_keep_one_record_per_statement() {
    let sql = "SET TimeZone = 'UTC'; SELECT 3; DELETE FROM audit_log";
    let ev = run(&with_login(&[
        (C, msg::query(sql)),
        (
            S,
            [
                msg::complete("SET"),
                msg::row_desc("?column?"),
                msg::data_row(b"3"),
                msg::complete("SELECT 1"),
                msg::complete("DELETE 9"),
                msg::param_status("TimeZone", "UTC"),
                msg::ready(b'I'),
            ]
            .concat(),
        ),
    ]));
    assert_eq!(
        ops(&ev),
        vec![
            "2 query \"SET TimeZone = 'UTC'\" => Ok rows=None",
            "3 query \"SELECT 3\" => Ok rows=Some(1)",
            "4 query \"DELETE FROM audit_log\" => Ok rows=Some(9)",
        ]
    );
    // The ParameterStatus and ReadyForQuery are counted with the statement answered last.
    let p = pairs(&ev);
    assert_eq!(
        p[3].1.as_ref().unwrap().bytes,
        (msg::complete("DELETE 9").len() + msg::param_status("TimeZone", "UTC").len() + 6) as u64
    );
}

#[test]
fn error_in_a_multi_statement_query_stops_the_rest() {
    let ev = run(&with_login(&[
        (
            C,
            msg::query("DELETE FROM t; SELECT 1/0; DROP TABLE audit; SELECT 2"),
        ),
        (
            S,
            [
                msg::complete("DELETE 3"),
                msg::error("ERROR", "22012", "division by zero"),
                msg::ready(b'I'),
            ]
            .concat(),
        ),
    ]));
    assert_eq!(
        ops(&ev),
        vec![
            "2 query \"DELETE FROM t\" => Ok rows=Some(3)",
            "3 query \"SELECT 1/0\" => Error rows=None err=Text(\"22012\")",
        ]
    );
    let p = pairs(&ev);
    assert_eq!(
        p[2].0.attributes,
        vec![
            ("not_executed_statements".into(), "2".to_string()),
            (
                "not_executed_sql".into(),
                "DROP TABLE audit; SELECT 2".into()
            ),
            ("error_severity".into(), "ERROR".to_string()),
        ]
    );
}

#[test]
fn split_mismatch_falls_back_to_one_record() {
    // A BEGIN ATOMIC body splits into 3 by `;`, the server runs 1 statement.
    let sql = "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END";
    let ev = run(&with_login(&[
        (C, msg::query(sql)),
        (
            S,
            [msg::complete("CREATE FUNCTION"), msg::ready(b'I')].concat(),
        ),
    ]));
    assert_eq!(ops(&ev), vec![format!("2 query {sql:?} => Ok rows=None")]);
    // An empty query: EmptyQueryResponse.
    let ev = run(&with_login(&[
        (C, msg::query(" ; ")),
        (S, [typed(b'I', &[]), msg::ready(b'I')].concat()),
    ]));
    assert_eq!(ops(&ev), vec!["2 query \" ; \" => Ok rows=None"]);
}

#[test]
fn copy_to_stdout_rows_from_the_tag() {
    let copy_out = [0u8, 0, 1, 0, 0].to_vec(); // text format, 1 column, format 0
    let ev = run(&with_login(&[
        (C, msg::query("COPY patients TO STDOUT")),
        (
            S,
            [
                typed(b'H', &copy_out),
                typed(b'd', b"1\tAnn\n"),
                typed(b'd', b"2\tBo\n"),
                typed(b'c', &[]),
                msg::complete("COPY 2"),
                msg::ready(b'I'),
            ]
            .concat(),
        ),
    ]));
    assert_eq!(
        ops(&ev),
        vec!["2 query \"COPY patients TO STDOUT\" => Ok rows=Some(2)"]
    );
    let p = pairs(&ev);
    assert_eq!(
        p[1].1.as_ref().unwrap().bytes,
        (10 + 11 + 10 + 5 + 12 + 6) as u64
    );
}

#[test]
fn copy_from_stdin_failed_by_the_client() {
    let ev = run(&with_login(&[
        (C, msg::query("COPY t FROM STDIN")),
        (S, typed(b'G', &[0, 0, 1, 0, 0])),
        (
            C,
            [typed(b'd', b"1\n"), typed(b'f', &cstr("aborted by user"))].concat(),
        ),
        (
            S,
            [
                msg::error("ERROR", "57014", "COPY from stdin failed: aborted by user"),
                msg::ready(b'I'),
            ]
            .concat(),
        ),
    ]));
    assert_eq!(
        ops(&ev),
        vec!["2 query \"COPY t FROM STDIN\" => Error rows=None err=Text(\"57014\")"]
    );
    let p = pairs(&ev);
    assert_eq!(
        p[1].0.bytes,
        (msg::query("COPY t FROM STDIN").len() + 7 + 21) as u64
    );
}

#[test]
fn terminate_is_a_logout() {
    let ev = run(&with_login(&[(C, msg::terminate())]));
    let p = pairs(&ev);
    assert_eq!(p[1].0.op.as_ref().unwrap().as_str(), "logout");
    assert!(!p[1].0.expects_response);
    assert_eq!(p[1].0.bytes, 5);
}

// ─── extended protocol ──────────────────────────────────────────────────────────────────

/// Binary values as the `*send` functions write them.
fn be<T: Into<i64>>(v: T, n: usize) -> Vec<u8> {
    v.into().to_be_bytes()[8 - n..].to_vec()
}

#[test]
fn binary_binds_of_every_decoded_type() {
    let oids = [
        16, 21, 23, 20, 700, 701, 1700, 25, 1043, 17, 1082, 1114, 1184, 1186, 2950, 3802, 869,
        1007, 0, 0, 999_999,
    ];
    let values: Vec<Option<Vec<u8>>> = vec![
        Some(vec![1]),                                                   // bool true
        Some(be(-2i16, 2)),                                              // int2
        Some(be(123_456i32, 4)),                                         // int4
        Some(be(-9_000_000_000i64, 8)),                                  // int8
        Some(2.5f32.to_bits().to_be_bytes().to_vec()),                   // float4
        Some(0.1f64.to_bits().to_be_bytes().to_vec()),                   // float8
        Some(vec![0, 2, 0, 0, 0, 0, 0, 2, 0, 12, 0x0d, 0x48]),           // numeric 12.34
        Some("Zoë".as_bytes().to_vec()),                                 // text
        Some(b"A-7".to_vec()),                                           // varchar
        Some(vec![0xde, 0xad]),                                          // bytea
        Some(be(8825i32, 4)),                                            // date 2024-02-29
        Some(be(8825i64 * 86_400_000_000 + 3_600_000_000, 8)),           // timestamp
        Some(be(0i64, 8)), // timestamptz 2000-01-01 00:00:00+00
        Some([be(1_500_000i64, 8), be(2i32, 4), be(13i32, 4)].concat()), // interval
        Some((0u8..16).collect()), // uuid
        Some(b"\x01{\"a\": 1}".to_vec()), // jsonb v1
        Some(vec![2, 32, 0, 4, 192, 168, 1, 10]), // inet
        Some(
            [
                be(1i32, 4),
                be(0i32, 4),
                be(23i32, 4),
                be(2i32, 4),
                be(1i32, 4),
                be(4i32, 4),
                be(5i32, 4),
                be(4i32, 4),
                be(6i32, 4),
            ]
            .concat(),
        ), // _int4 {5,6}
        None,              // NULL
        Some(b"x".to_vec()), // unspecified type, binary
        Some(vec![1, 2, 3]), // unknown OID
    ];
    let refs: Vec<Option<&[u8]>> = values.iter().map(|v| v.as_deref()).collect();
    let ev = run(&with_login(&[
        (
            C,
            [
                msg::parse("ins", "INSERT INTO x VALUES ($1,…)", &oids),
                msg::bind("", "ins", &[1], &refs),
                msg::execute("", 0),
                msg::sync(),
            ]
            .concat(),
        ),
        (
            S,
            [
                typed(b'1', &[]),
                typed(b'2', &[]),
                msg::complete("INSERT 0 1"),
                msg::ready(b'I'),
            ]
            .concat(),
        ),
    ]));
    let p = pairs(&ev);
    assert_eq!(
        ops(&ev),
        vec!["2 execute \"INSERT INTO x VALUES ($1,…)\" => Ok rows=Some(1)"]
    );
    let t = |s: &str| ParamValue::Text(s.into());
    assert_eq!(
        p[1].0.decoded_params().unwrap(),
        vec![
            prm("bool", ParamValue::Bool(true)),
            prm("int2", ParamValue::Int(-2)),
            prm("int4", ParamValue::Int(123_456)),
            prm("int8", ParamValue::Int(-9_000_000_000)),
            prm("float4", ParamValue::Float(2.5)),
            prm("float8", ParamValue::Float(0.1)),
            prm("numeric", t("12.34")),
            prm("text", t("Zoë")),
            prm("varchar", t("A-7")),
            prm("bytea", ParamValue::Bytes(vec![0xde, 0xad])),
            prm("date", t("2024-02-29")),
            prm("timestamp", t("2024-02-29 01:00:00")),
            prm("timestamptz", t("2000-01-01 00:00:00+00")),
            prm("interval", t("1 year 1 mon 2 days 00:00:01.5")),
            prm("uuid", t("00010203-0405-0607-0809-0a0b0c0d0e0f")),
            prm("jsonb", t("{\"a\": 1}")),
            prm("inet", t("192.168.1.10")),
            prm(
                "_int4",
                ParamValue::Array(vec![ParamValue::Int(5), ParamValue::Int(6)])
            ),
            prm("unknown", ParamValue::Null),
            // An unspecified type in binary format: the bytes, as sent.
            prm("unknown", ParamValue::Bytes(b"x".to_vec())),
            prm("oid:999999", ParamValue::Bytes(vec![1, 2, 3])),
        ]
    );
    assert_eq!(
        p[1].0.attributes,
        vec![("statement".into(), "ins".to_string())]
    );
}

#[test]
fn text_binds_with_unspecified_types() {
    // Parse declared no types (OID 0): text values are recorded as text, type "unknown";
    // a text-format int4 declared by Parse is an integer; formats: one per parameter.
    let ev = run(&with_login(&[
        (
            C,
            [
                msg::parse(
                    "",
                    "SELECT * FROM p WHERE id = $1 AND name = $2 AND tags = $3",
                    &[23, 0, 1009],
                ),
                msg::bind(
                    "",
                    "",
                    &[0, 0, 0],
                    &[Some(b"42"), Some(b"O'Brien"), Some(b"{a,\"b c\"}")],
                ),
                msg::describe(b'P', ""),
                msg::execute("", 0),
                msg::sync(),
            ]
            .concat(),
        ),
        (
            S,
            [
                typed(b'1', &[]),
                typed(b'2', &[]),
                msg::row_desc("x"),
                msg::data_row(b"1"),
                msg::complete("SELECT 1"),
                msg::ready(b'I'),
            ]
            .concat(),
        ),
    ]));
    let p = pairs(&ev);
    assert_eq!(
        p[1].0.decoded_params().unwrap(),
        vec![
            prm("int4", ParamValue::Int(42)),
            prm("unknown", ParamValue::Text("O'Brien".into())),
            prm(
                "_text",
                ParamValue::Array(vec![
                    ParamValue::Text("a".into()),
                    ParamValue::Text("b c".into())
                ])
            ),
        ]
    );
    assert_eq!(p[1].1.as_ref().unwrap().rows, Some(1));
}

#[test]
fn prepare_then_execute_later_then_close() {
    let ev = run(&with_login(&[
        // libpq PQprepare: Parse + Describe(S) + Sync (its own batch: a `prepare`).
        (
            C,
            [
                msg::parse("q1", "SELECT name FROM patients WHERE id = $1", &[23]),
                msg::describe(b'S', "q1"),
                msg::sync(),
            ]
            .concat(),
        ),
        (
            S,
            [
                typed(b'1', &[]),
                typed(b't', &[0, 1, 0, 0, 0, 23]), // ParameterDescription: 1 × int4
                msg::row_desc("name"),
                msg::ready(b'I'),
            ]
            .concat(),
        ),
        // PQexecPrepared: Bind (portal "c1") + Execute + Sync.
        (
            C,
            [
                msg::bind("c1", "q1", &[], &[Some(b"7")]),
                msg::execute("c1", 0),
                msg::sync(),
            ]
            .concat(),
        ),
        (
            S,
            [
                typed(b'2', &[]),
                msg::data_row(b"Ann"),
                msg::complete("SELECT 1"),
                msg::ready(b'I'),
            ]
            .concat(),
        ),
        // Close the statement, then a Bind of it is an unknown statement.
        (C, [msg::close(b'S', "q1"), msg::sync()].concat()),
        (S, [typed(b'3', &[]), msg::ready(b'I')].concat()),
    ]));
    assert_eq!(
        ops(&ev),
        vec![
            "2 prepare \"SELECT name FROM patients WHERE id = $1\" => Ok rows=None",
            "3 execute \"SELECT name FROM patients WHERE id = $1\" => Ok rows=Some(1)",
        ]
    );
    let p = pairs(&ev);
    assert_eq!(p[1].1.as_ref().unwrap().param_count, Some(1));
    assert_eq!(
        p[1].0.attributes,
        vec![("statement".into(), "q1".to_string())]
    );
    assert_eq!(
        p[2].0.attributes,
        vec![
            ("statement".into(), "q1".to_string()),
            ("portal".into(), "c1".into())
        ]
    );
    assert_eq!(
        p[2].0.decoded_params().unwrap(),
        vec![prm("int4", ParamValue::Int(7))]
    );
}

#[test]
fn suspended_portal_is_one_execute_with_summed_rows() {
    // JDBC fetch size 2 inside a transaction: Execute(c1, 2) → 2 rows, PortalSuspended; again;
    // then the last Execute returns 1 row and "SELECT 1".
    let fetch = |rows: usize, done: bool| {
        let mut v: Vec<u8> = (0..rows).flat_map(|_| msg::data_row(b"r")).collect();
        v.extend(if done {
            msg::complete(&format!("SELECT {rows}"))
        } else {
            typed(b's', &[])
        });
        v.extend(msg::ready(b'T'));
        v
    };
    let ev = run(&with_login(&[
        (C, msg::query("BEGIN")),
        (S, [msg::complete("BEGIN"), msg::ready(b'T')].concat()),
        (
            C,
            [
                msg::parse("", "SELECT * FROM big", &[]),
                msg::bind("c1", "", &[], &[]),
                msg::execute("c1", 2),
                msg::sync(),
            ]
            .concat(),
        ),
        (
            S,
            [typed(b'1', &[]), typed(b'2', &[]), fetch(2, false)].concat(),
        ),
        (C, [msg::execute("c1", 2), msg::sync()].concat()),
        (S, fetch(2, false)),
        (C, [msg::execute("c1", 2), msg::sync()].concat()),
        (S, fetch(1, true)),
        (C, msg::query("COMMIT")),
        (S, [msg::complete("COMMIT"), msg::ready(b'I')].concat()),
    ]));
    assert_eq!(
        ops(&ev),
        vec![
            "2 query \"BEGIN\" => Ok rows=None",
            "3 execute \"SELECT * FROM big\" => Ok rows=Some(5)",
            "4 query \"COMMIT\" => Ok rows=None",
        ]
    );
    // A portal suspended when the transaction ends is complete with what was fetched.
    let ev = run(&with_login(&[
        (
            C,
            [
                msg::parse("", "SELECT * FROM big", &[]),
                msg::bind("", "", &[], &[]),
                msg::execute("", 2),
                msg::sync(),
            ]
            .concat(),
        ),
        (
            S,
            [
                typed(b'1', &[]),
                typed(b'2', &[]),
                msg::data_row(b"a"),
                msg::data_row(b"b"),
                typed(b's', &[]),
                msg::ready(b'I'),
            ]
            .concat(),
        ),
    ]));
    assert_eq!(
        ops(&ev),
        vec!["2 execute \"SELECT * FROM big\" => Ok rows=Some(2)"]
    );
}

/// Two statements pipelined in one extended-protocol batch, the first with an int4 parameter
/// sent as the text "abc" (its Bind fails with 22P02, and the server skips the rest to Sync).
fn batch_whose_first_bind_fails() -> Vec<u8> {
    [
        msg::parse("", "UPDATE a SET x = $1", &[23]),
        msg::bind("", "", &[], &[Some(b"abc")]),
        msg::execute("", 0),
        msg::parse("", "DELETE FROM b", &[]),
        msg::bind("", "", &[], &[]),
        msg::execute("", 0),
        msg::sync(),
    ]
    .concat()
}

#[test]
fn error_in_a_pipeline_skips_to_sync() {
    // Two statements pipelined in one batch; the first Bind fails (22P02): the server skips the
    // rest of the batch up to Sync. The second statement was not run: no record, counted.
    let ev = run(&with_login(&[
        (C, batch_whose_first_bind_fails()),
        (
            S,
            [
                typed(b'1', &[]),
                msg::error(
                    "ERROR",
                    "22P02",
                    "invalid input syntax for type integer: \"abc\"",
                ),
                msg::ready(b'I'),
            ]
            .concat(),
        ),
        // The next batch runs normally.
        (
            C,
            [
                msg::parse("", "SELECT 1", &[]),
                msg::bind("", "", &[], &[]),
                msg::execute("", 0),
                msg::sync(),
            ]
            .concat(),
        ),
        (
            S,
            [
                typed(b'1', &[]),
                typed(b'2', &[]),
                msg::data_row(b"1"),
                msg::complete("SELECT 1"),
                msg::ready(b'I'),
            ]
            .concat(),
        ),
    ]));
    assert_eq!(
        ops(&ev),
        vec![
            "2 execute \"UPDATE a SET x = $1\" => Error rows=None err=Text(\"22P02\")",
            "3 execute \"SELECT 1\" => Ok rows=Some(1)",
        ]
    );
    let p = pairs(&ev);
    assert_eq!(
        p[1].0.attributes,
        vec![
            ("error_severity".into(), "ERROR".to_string()),
            ("not_executed_statements".into(), "1".to_string()),
        ]
    );
    // The failed text value is still recorded as sent.
    assert_eq!(
        p[1].0.decoded_params().unwrap(),
        vec![prm("int4", ParamValue::Text("abc".into()))]
    );
}

#[test]
fn pipelined_batches_are_answered_in_order() {
    let batch = |sql: &str| {
        [
            msg::parse("", sql, &[]),
            msg::bind("", "", &[], &[]),
            msg::execute("", 0),
            msg::sync(),
        ]
        .concat()
    };
    let answer = |tag: &str| {
        [
            typed(b'1', &[]),
            typed(b'2', &[]),
            msg::complete(tag),
            msg::ready(b'I'),
        ]
        .concat()
    };
    let ev = run(&with_login(&[
        (
            C,
            [
                batch("INSERT INTO a VALUES (1)"),
                batch("UPDATE a SET b = 2"),
                batch("DELETE FROM a"),
            ]
            .concat(),
        ),
        (S, [answer("INSERT 0 1"), answer("UPDATE 4")].concat()),
        (S, answer("DELETE 4")),
    ]));
    assert_eq!(
        ops(&ev),
        vec![
            "2 execute \"INSERT INTO a VALUES (1)\" => Ok rows=Some(1)",
            "3 execute \"UPDATE a SET b = 2\" => Ok rows=Some(4)",
            "4 execute \"DELETE FROM a\" => Ok rows=Some(4)",
        ]
    );
    // Each answer ends in its own segment time: latency per operation.
    let p = pairs(&ev);
    assert_eq!(p[3].1.as_ref().unwrap().ts_end, Timestamp(5_000_000_000));
    assert_eq!(p[2].1.as_ref().unwrap().ts_end, Timestamp(4_000_000_000));
}

#[test]
fn statement_cache_is_bounded() {
    let limits = Limits {
        max_prepared_statements: 2,
        ..Limits::default()
    };
    let mut parts = with_login(&[]);
    for i in 0..3 {
        parts.push((
            C,
            [msg::parse(&format!("s{i}"), "SELECT 1", &[]), msg::sync()].concat(),
        ));
        parts.push((S, [typed(b'1', &[]), msg::ready(b'I')].concat()));
    }
    // s0 was evicted: its Bind finds no statement.
    parts.push((
        C,
        [
            msg::bind("", "s0", &[], &[]),
            msg::execute("", 0),
            msg::sync(),
        ]
        .concat(),
    ));
    parts.push((
        S,
        [
            typed(b'2', &[]),
            msg::complete("SELECT 1"),
            msg::ready(b'I'),
        ]
        .concat(),
    ));
    let ev = run_limits(&parts, limits);
    assert!(ev.contains(&DbEvent::Anomaly {
        dir: C,
        kind: "stmt_cache_evicted"
    }));
    assert!(ev.contains(&DbEvent::Anomaly {
        dir: C,
        kind: "unknown_statement"
    }));
    let p = pairs(&ev);
    let last = &p.last().unwrap().0;
    assert_eq!(last.sql, None);
    assert_eq!(last.completeness, Completeness::Partial { lost_bytes: 0 });
}

#[test]
fn function_call() {
    // FunctionCall: oid 1598 (random), one format code (text), one argument "5", result text.
    let mut body = 1598u32.to_be_bytes().to_vec();
    body.extend_from_slice(&[0, 1, 0, 0]); // 1 format: text
    body.extend_from_slice(&[0, 1]); // 1 argument
    body.extend_from_slice(&1u32.to_be_bytes());
    body.push(b'5');
    body.extend_from_slice(&[0, 0]); // result format: text
    let ev = run(&with_login(&[
        (C, typed(b'F', &body)),
        (
            S,
            [
                typed(b'V', &[0, 0, 0, 3, b'0', b'.', b'5']),
                msg::ready(b'I'),
            ]
            .concat(),
        ),
    ]));
    assert_eq!(
        ops(&ev),
        vec!["2 function_call \"function oid 1598\" => Ok rows=None"]
    );
    let p = pairs(&ev);
    assert_eq!(
        p[1].0.decoded_params().unwrap(),
        vec![prm("unknown", ParamValue::Text("5".into()))]
    );
}

// ─── replication ────────────────────────────────────────────────────────────────────────

#[test]
fn replication_stream_is_skipped_and_counted() {
    let mut parts = vec![
        (
            C,
            msg::startup(&[
                ("user", "rep"),
                ("replication", "database"),
                ("database", "clinic"),
            ]),
        ),
        (S, [msg::auth(0, &[]), msg::ready(b'I')].concat()),
        (C, msg::query("IDENTIFY_SYSTEM")),
        (
            S,
            [
                msg::row_desc("systemid"),
                msg::data_row(b"7"),
                msg::complete("IDENTIFY_SYSTEM"),
                msg::ready(b'I'),
            ]
            .concat(),
        ),
        (C, msg::query("START_REPLICATION SLOT s LOGICAL 0/0")),
        (S, typed(b'W', &[0, 0, 0])),
    ];
    for _ in 0..3 {
        parts.push((S, typed(b'd', &[b'w'; 100])));
        parts.push((C, typed(b'd', &[b'r'; 34])));
    }
    let (ev, d, _) = common::feed(&segs(&parts), SessionOpts::default(), Limits::default());
    let p = pairs(&ev);
    let l = p[0].0.login.as_ref().unwrap();
    assert!(l
        .attributes
        .contains(&("replication".to_string(), "database".to_string())));
    assert_eq!(l.database.as_deref(), Some("clinic"));
    assert_eq!(
        ops(&ev),
        vec![
            "2 query \"IDENTIFY_SYSTEM\" => Ok rows=Some(1)",
            "3 query \"START_REPLICATION SLOT s LOGICAL 0/0\" => Ok rows=None",
        ]
    );
    // The stream is still running at the end of the capture: cut, with every byte counted.
    let r = p[2].1.as_ref().unwrap();
    assert_eq!(r.bytes, 8 + 3 * 105);
    assert!(matches!(r.completeness, Completeness::Truncated { .. }));
    assert_eq!(
        p[2].0.bytes,
        msg::query("START_REPLICATION SLOT s LOGICAL 0/0").len() as u64 + 3 * 39
    );
    assert_eq!(d.stats().stalls, 0);
}

// ─── encodings ──────────────────────────────────────────────────────────────────────────

#[test]
fn client_encoding_from_startup_and_parameter_status() {
    // LATIN1 at startup: 0xE9 is é. Then the server reports client_encoding GBK after a SET:
    // "患者" is BB BC D5 DF.
    let ev = run(&[
        (
            C,
            msg::startup(&[("user", "u"), ("client_encoding", "LATIN1")]),
        ),
        (
            S,
            [
                msg::auth(0, &[]),
                msg::param_status("client_encoding", "LATIN1"),
                msg::ready(b'I'),
            ]
            .concat(),
        ),
        (C, typed(b'Q', b"SELECT 'caf\xe9'\0")),
        (S, [msg::complete("SELECT 1"), msg::ready(b'I')].concat()),
        (C, msg::query("SET client_encoding TO 'GBK'")),
        (
            S,
            [
                msg::param_status("client_encoding", "GBK"),
                msg::complete("SET"),
                msg::ready(b'I'),
            ]
            .concat(),
        ),
        (C, typed(b'Q', b"SELECT '\xbb\xbc\xd5\xdf'\0")),
        (
            S,
            [
                typed(b'E', b"SERROR\0C42P01\0M\xbb\xbc\xd5\xdf\0\0"),
                msg::ready(b'I'),
            ]
            .concat(),
        ),
    ]);
    let p = pairs(&ev);
    assert_eq!(p[1].0.sql.as_deref(), Some("SELECT 'café'"));
    assert_eq!(p[3].0.sql.as_deref(), Some("SELECT '患者'"));
    assert_eq!(
        p[3].1.as_ref().unwrap().error.as_ref().unwrap().message,
        "患者"
    );
    // Undecodable bytes are kept as escapes, never dropped.
    let ev = run(&with_login(&[(C, typed(b'Q', b"SELECT '\xff'\0"))]));
    assert_eq!(pairs(&ev)[1].0.sql.as_deref(), Some("SELECT '\\xff'"));
}

#[test]
fn application_name_and_role_changes_update_the_session() {
    let ev = run(&with_login(&[
        (
            C,
            msg::query("SET application_name = 'batch'; SET SESSION AUTHORIZATION auditor"),
        ),
        (
            S,
            [
                msg::param_status("application_name", "batch"),
                msg::complete("SET"),
                msg::param_status("session_authorization", "auditor"),
                msg::complete("SET"),
                msg::ready(b'I'),
            ]
            .concat(),
        ),
    ]));
    // Both changes were reported during the query: one update after its records.
    assert!(ev.contains(&DbEvent::Session(SessionUpdate {
        user: Some("auditor".into()),
        client_program: Some("batch".into()),
        ..Default::default()
    })));
}

/// A session change reported during a query's answer holds from the records after that
/// query's: its statements were sent by the session as it was. PostgreSQL 14+ reports the
/// change just before ReadyForQuery (after every statement of the query), older servers
/// inside the SET; either way the SELECT before it and the SET itself keep the login user.
#[test]
fn a_session_user_change_applies_after_the_query_that_made_it() {
    for reported_at_the_end in [true, false] {
        let status = msg::param_status("session_authorization", "auditor");
        let mut answer = vec![
            msg::row_desc("a"),
            msg::data_row(b"1"),
            msg::complete("SELECT 1"),
        ];
        if !reported_at_the_end {
            answer.push(status.clone());
        }
        answer.push(msg::complete("SET"));
        if reported_at_the_end {
            answer.push(status);
        }
        answer.push(msg::ready(b'I'));
        let ev = run(&with_login(&[
            (
                C,
                msg::query("SELECT secret FROM t; SET SESSION AUTHORIZATION auditor"),
            ),
            (S, answer.concat()),
            (C, msg::query("SELECT 2")),
            (S, [msg::complete("SELECT 1"), msg::ready(b'I')].concat()),
        ]));
        let change = ev
            .iter()
            .position(|e| matches!(e, DbEvent::Session(u) if u.user.as_deref() == Some("auditor")))
            .unwrap();
        let sql_at = |text: &str| {
            ev.iter()
                .position(|e| matches!(e, DbEvent::Request(q) if q.sql.as_deref() == Some(text)))
                .unwrap()
        };
        assert!(sql_at("SELECT secret FROM t") < change, "{ev:?}");
        assert!(sql_at("SET SESSION AUTHORIZATION auditor") < change);
        assert!(change < sql_at("SELECT 2"));
    }
}

// ─── limits, gaps ───────────────────────────────────────────────────────────────────────

#[test]
fn long_statement_is_cut_and_flagged() {
    let limits = Limits {
        max_statement_len: 16,
        ..Limits::default()
    };
    let sql = format!("SELECT '{}'", "x".repeat(40));
    let ev = run_limits(
        &with_login(&[
            (C, msg::query(&sql)),
            (S, [msg::complete("SELECT 1"), msg::ready(b'I')].concat()),
        ]),
        limits,
    );
    let p = pairs(&ev);
    assert_eq!(p[1].0.sql.as_deref(), Some("SELECT 'xxxxxxxx"));
    assert_eq!(
        p[1].0.completeness,
        Completeness::Truncated {
            kept: 16,
            original: 49
        }
    );
    assert_eq!(p[1].0.bytes, msg::query(&sql).len() as u64);
    // A message over max_message_len: the head is read, the rest skipped, not buffered.
    let limits = Limits {
        max_message_len: 4096,
        max_statement_len: 100,
        ..Limits::default()
    };
    let big = msg::query(&format!("INSERT INTO t VALUES ('{}')", "y".repeat(100_000)));
    // In 1460-byte segments, as TCP carries it.
    let mut parts = with_login(&[]);
    parts.extend(big.chunks(1460).map(|c| (C, c.to_vec())));
    parts.push((S, [msg::complete("INSERT 0 1"), msg::ready(b'I')].concat()));
    let (ev, d, _) = common::feed(&segs(&parts), SessionOpts::default(), limits);
    let p = pairs(&ev);
    assert_eq!(p[1].0.sql.as_deref().map(str::len), Some(100));
    assert_eq!(p[1].1.as_ref().unwrap().rows, Some(1));
    assert!(d.stats().skipped[0] > 90_000);
    assert!(d.buffered() <= 2 * (4096 + 64));
}

#[test]
fn gap_inside_a_query_is_absorbed() {
    let q = msg::query("UPDATE t SET a = 1 WHERE b = 2");
    let mut s = segs(&with_login(&[]));
    s.push(Seg::Data(C, Timestamp(10), q[..12].to_vec()));
    s.push(Seg::Gap(C, Timestamp(11), 10));
    s.push(Seg::Data(C, Timestamp(12), q[22..].to_vec()));
    s.push(Seg::Data(
        S,
        Timestamp(13),
        [msg::complete("UPDATE 1"), msg::ready(b'I')].concat(),
    ));
    let (ev, d, _) = common::feed(&s, SessionOpts::default(), Limits::default());
    let p = pairs(&ev);
    assert_eq!(p[1].0.sql.as_deref(), Some("UPDATE "));
    assert_eq!(
        p[1].0.completeness,
        Completeness::Partial { lost_bytes: 10 }
    );
    assert_eq!(p[1].1.as_ref().unwrap().rows, Some(1));
    assert_eq!(d.stats().stalls, 0);
}

#[test]
fn gap_between_requests_resyncs_on_the_next_query() {
    let mut s = segs(&with_login(&[]));
    s.push(Seg::Data(C, Timestamp(10), msg::query("SELECT 1")));
    s.push(Seg::Data(
        S,
        Timestamp(11),
        [
            msg::data_row(b"1"),
            msg::complete("SELECT 1"),
            msg::ready(b'I'),
        ]
        .concat(),
    ));
    // A whole request and its answer are lost.
    s.push(Seg::Gap(C, Timestamp(12), 30));
    s.push(Seg::Gap(S, Timestamp(13), 40));
    s.push(Seg::Data(C, Timestamp(14), msg::query("SELECT 3")));
    s.push(Seg::Data(
        S,
        Timestamp(15),
        [
            msg::row_desc("x"),
            msg::data_row(b"3"),
            msg::complete("SELECT 1"),
            msg::ready(b'I'),
        ]
        .concat(),
    ));
    let (ev, _, _) = common::feed(&s, SessionOpts::default(), Limits::default());
    assert_eq!(
        ops(&ev),
        vec![
            "2 query \"SELECT 1\" => Ok rows=Some(1)",
            "3 query \"SELECT 3\" => Ok rows=Some(1)"
        ]
    );
    assert!(ev.contains(&DbEvent::Desync {
        dir: C,
        lost_bytes: 30
    }));
    assert!(ev.contains(&DbEvent::Resync {
        dir: C,
        skipped_bytes: 0
    }));
}

#[test]
fn lost_request_answers_are_not_paired_with_later_requests() {
    // The client's second Query is lost, the server's answer to it is not: that answer must
    // not be given to the third Query.
    let mut s = segs(&with_login(&[]));
    s.push(Seg::Data(C, Timestamp(10), msg::query("SELECT 1")));
    s.push(Seg::Data(
        S,
        Timestamp(11),
        [msg::complete("SELECT 1"), msg::ready(b'I')].concat(),
    ));
    s.push(Seg::Gap(C, Timestamp(12), 17));
    s.push(Seg::Data(
        S,
        Timestamp(13),
        [
            msg::error("ERROR", "42501", "permission denied"),
            msg::ready(b'I'),
        ]
        .concat(),
    ));
    s.push(Seg::Data(C, Timestamp(14), msg::query("SELECT 3")));
    s.push(Seg::Data(
        S,
        Timestamp(15),
        [msg::complete("SELECT 1"), msg::ready(b'I')].concat(),
    ));
    let (ev, _, _) = common::feed(&s, SessionOpts::default(), Limits::default());
    assert_eq!(
        ops(&ev),
        vec![
            "2 query \"SELECT 1\" => Ok rows=Some(1)",
            "3 query \"SELECT 3\" => Ok rows=Some(1)"
        ]
    );
}

#[test]
fn server_gap_flushes_what_waits() {
    let mut s = segs(&with_login(&[]));
    s.push(Seg::Data(C, Timestamp(10), msg::query("SELECT * FROM big")));
    s.push(Seg::Data(
        S,
        Timestamp(11),
        [msg::row_desc("x"), msg::data_row(b"1")].concat(),
    ));
    s.push(Seg::Gap(S, Timestamp(12), 5000));
    s.push(Seg::Data(C, Timestamp(13), msg::query("SELECT 2")));
    s.push(Seg::Data(
        S,
        Timestamp(14),
        [
            msg::row_desc("x"),
            msg::data_row(b"2"),
            msg::complete("SELECT 1"),
            msg::ready(b'I'),
        ]
        .concat(),
    ));
    let (ev, _, _) = common::feed(&s, SessionOpts::default(), Limits::default());
    let p = pairs(&ev);
    let r = p[1].1.as_ref().unwrap();
    assert_eq!(p[1].0.sql.as_deref(), Some("SELECT * FROM big"));
    assert_eq!(r.completeness, Completeness::Partial { lost_bytes: 5000 });
    assert_eq!(r.rows, Some(1));
    // The server side resyncs on the answer to the next request.
    assert_eq!(ops(&ev)[1], "3 query \"SELECT 2\" => Ok rows=Some(1)");
}

#[test]
fn end_flushes_unanswered_requests() {
    let ev = run(&with_login(&[(C, msg::query("SELECT pg_sleep(100)"))]));
    let p = pairs(&ev);
    assert_eq!(p[1].0.sql.as_deref(), Some("SELECT pg_sleep(100)"));
    assert!(p[1].1.is_none());
    // A request cut by the end of the capture.
    let q = msg::query("SELECT 12345");
    let ev = run(&with_login(&[(C, q[..10].to_vec())]));
    let p = pairs(&ev);
    assert_eq!(p[1].0.sql.as_deref(), Some("SELEC"));
    assert_eq!(
        p[1].0.completeness,
        Completeness::Truncated {
            kept: 10,
            original: 18
        }
    );
}

// ─── probe ──────────────────────────────────────────────────────────────────────────────

#[test]
fn probe_verdicts() {
    // Startup packets.
    assert_eq!(
        dbtap_pgsql::probe(C, &msg::startup(&[("user", "x")])),
        Probe::Certain
    );
    assert_eq!(dbtap_pgsql::probe(C, &msg::ssl_request()), Probe::Certain);
    assert_eq!(
        dbtap_pgsql::probe(C, &msg::ssl_request()[..5]),
        Probe::NeedMore
    );
    // A startup packet without "user" is not one PostgreSQL accepts.
    assert_eq!(
        dbtap_pgsql::probe(C, &msg::startup(&[("database", "x")])),
        Probe::NotForUs
    );
    // Mid-stream requests.
    assert_eq!(
        dbtap_pgsql::probe(C, &msg::query("SELECT 1")),
        Probe::Certain
    );
    assert_eq!(
        dbtap_pgsql::probe(C, &msg::parse("", "SELECT $1", &[23])),
        Probe::Certain
    );
    assert_eq!(
        dbtap_pgsql::probe(C, &[msg::sync(), msg::sync()].concat()),
        Probe::Unsure
    );
    // Server first messages.
    assert_eq!(
        dbtap_pgsql::probe(S, &msg::auth(5, b"salt")),
        Probe::Certain
    );
    assert_eq!(
        dbtap_pgsql::probe(S, &msg::error("FATAL", "28000", "no pg_hba.conf entry")),
        Probe::Certain
    );
    assert_eq!(
        dbtap_pgsql::probe(S, &[msg::complete("SELECT 1"), msg::ready(b'I')].concat()),
        Probe::Unsure
    );
    // Other protocols on 5432.
    // MySQL 8 greeting: 3-byte length, seq 0, protocol 10, "8.0.36".
    let mysql_greeting = b"\x4a\x00\x00\x00\x0a8.0.36\x00\x08\x00\x00\x00abcdefgh\x00";
    assert_eq!(dbtap_pgsql::probe(S, mysql_greeting), Probe::NotForUs);
    // MySQL COM_QUERY "select 1": length 9, seq 0, 0x03.
    assert_eq!(
        dbtap_pgsql::probe(C, b"\x09\x00\x00\x00\x03select 1"),
        Probe::NotForUs
    );
    // MySQL handshake response (seq 1).
    assert_eq!(
        dbtap_pgsql::probe(C, b"\x55\x00\x00\x01\x85\xa6\xff\x01\x00\x00\x00\x01\x21"),
        Probe::NotForUs
    );
    assert_eq!(
        dbtap_pgsql::probe(C, b"GET / HTTP/1.1\r\n"),
        Probe::NotForUs
    );
    assert_eq!(
        dbtap_pgsql::probe(C, b"SSH-2.0-OpenSSH_9.6\r\n"),
        Probe::NotForUs
    );
    assert_eq!(
        dbtap_pgsql::probe(S, b"\x16\x03\x03\x00\x10"),
        Probe::NotForUs
    );
    assert_eq!(
        dbtap_pgsql::probe(C, &[0xde, 0xad, 0xbe, 0xef, 0x01, 0x02]),
        Probe::NotForUs
    );
    assert_eq!(dbtap_pgsql::probe(C, &[]), Probe::NeedMore);
}

#[test]
fn mysql_session_on_5432_gives_no_records() {
    // Forced onto PostgreSQL (e.g. `--port postgresql=5432`), a MySQL session is abandoned.
    let (ev, d, _) = common::feed(
        &segs(&[
            (
                S,
                b"\x4a\x00\x00\x00\x0a8.0.36\x00\x08\x00\x00\x00abcdefgh\x00".to_vec(),
            ),
            (C, b"\x09\x00\x00\x00\x03select 1".to_vec()),
        ]),
        SessionOpts::default(),
        Limits::default(),
    );
    assert!(pairs(&ev).is_empty());
    assert_eq!(
        d.state(),
        DriverState::Abandoned(dbtap_core::Abandon::NotThisProtocol)
    );
}

#[test]
fn session_without_startup_in_view() {
    // The capture starts at a Query (not flagged mid-stream by the stream layer).
    let ev = run(&[
        (C, msg::query("SELECT 1")),
        (
            S,
            [
                msg::row_desc("x"),
                msg::data_row(b"1"),
                msg::complete("SELECT 1"),
                msg::ready(b'I'),
            ]
            .concat(),
        ),
        (C, msg::query("SELECT 2")),
        (
            S,
            [
                msg::row_desc("x"),
                msg::data_row(b"2"),
                msg::complete("SELECT 1"),
                msg::ready(b'I'),
            ]
            .concat(),
        ),
    ]);
    assert_eq!(
        summary(&ev),
        vec![
            "1 query \"SELECT 1\" => Ok rows=Some(1)",
            "2 query \"SELECT 2\" => Ok rows=Some(1)"
        ]
    );
    // Regression: CommandComplete "BEGIN" is `C 00 00 00 0a …`, the shape of a MySQL greeting
    // header (length byte, 0, 0, sequence 0, protocol 10); it is not one.
    let ev = run(&[
        (C, msg::query("BEGIN")),
        (S, [msg::complete("BEGIN"), msg::ready(b'T')].concat()),
    ]);
    assert_eq!(summary(&ev), vec!["1 query \"BEGIN\" => Ok rows=None"]);
    assert_eq!(
        dbtap_pgsql::probe(S, &[msg::complete("BEGIN"), msg::ready(b'T')].concat()),
        Probe::Unsure
    );
}

/// A NoticeResponse's text reaches the record of the statement it came with (`info`, the
/// first one; `warnings` counts them), also for each statement of a multi-statement Query.
#[test]
fn notice_text_is_the_info_attribute() {
    let info = |r: &dbtap_core::Request| {
        r.attributes
            .iter()
            .find(|(k, _)| k == "info")
            .map(|(_, v)| v.clone())
    };
    let ev = run(&with_login(&[
        (C, msg::query("DROP TABLE IF EXISTS nope")),
        (
            S,
            [
                msg::notice("table \"nope\" does not exist, skipping"),
                msg::notice("second"),
                msg::complete("DROP TABLE"),
                msg::ready(b'I'),
            ]
            .concat(),
        ),
    ]));
    let p = pairs(&ev);
    assert_eq!(
        info(&p[1].0).as_deref(),
        Some("00000: table \"nope\" does not exist, skipping")
    );
    assert_eq!(p[1].1.as_ref().unwrap().warnings, Some(2));
    let ev = run(&with_login(&[
        (C, msg::query("SELECT 1; DROP TABLE IF EXISTS gone")),
        (
            S,
            [
                msg::row_desc("?column?"),
                msg::data_row(b"1"),
                msg::complete("SELECT 1"),
                msg::notice("table \"gone\" does not exist, skipping"),
                msg::complete("DROP TABLE"),
                msg::ready(b'I'),
            ]
            .concat(),
        ),
    ]));
    let p = pairs(&ev);
    assert_eq!(p.len(), 3);
    assert_eq!(info(&p[1].0), None);
    assert_eq!(
        info(&p[2].0).as_deref(),
        Some("00000: table \"gone\" does not exist, skipping")
    );
}

/// A Query's ErrorResponse is its whole answer ("the query string is aborted"): a capture that
/// ends before the ReadyForQuery after it leaves the record complete, not truncated.
#[test]
fn error_response_completes_a_query_even_without_ready_for_query() {
    let ev = run(&with_login(&[
        (C, msg::query("SELECT * FROM no_such_table")),
        (
            S,
            msg::error(
                "ERROR",
                "42P01",
                "relation \"no_such_table\" does not exist",
            ),
        ),
    ]));
    let p = pairs(&ev);
    assert_eq!(p.len(), 2);
    let r = p[1].1.as_ref().unwrap();
    assert_eq!(r.status, Status::Error);
    assert_eq!(r.completeness, Completeness::Complete);
    assert_eq!(
        r.error.as_ref().unwrap().code,
        ErrorCode::Text("42P01".into())
    );
    // A statement that succeeded may still be followed by others of the same Query: without
    // ReadyForQuery that is not known, and the record says so.
    let ev = run(&with_login(&[
        (C, msg::query("SELECT 1")),
        (S, msg::complete("SELECT 1")),
    ]));
    let r = pairs(&ev)[1].1.clone().unwrap();
    assert_eq!(r.status, Status::Ok);
    assert_ne!(r.completeness, Completeness::Complete);
}

#[test]
fn fatal_error_ends_the_session() {
    // "terminating connection due to administrator command" while a query runs.
    let ev = run(&with_login(&[
        (C, msg::query("SELECT pg_sleep(60)")),
        (
            S,
            msg::error(
                "FATAL",
                "57P01",
                "terminating connection due to administrator command",
            ),
        ),
    ]));
    let p = pairs(&ev);
    let r = p[1].1.as_ref().unwrap();
    assert_eq!(r.status, Status::Error);
    assert_eq!(r.completeness, Completeness::Complete);
    assert_eq!(
        r.error.as_ref().unwrap().code,
        ErrorCode::Text("57P01".into())
    );
    // The same message when nothing waits (pg_terminate_backend on an idle session): the
    // server ended the session, a `terminated` record says who and why.
    let fatal = msg::error(
        "FATAL",
        "57P01",
        "terminating connection due to administrator command",
    );
    let ev = run(&with_login(&[(S, fatal.clone())]));
    let p = pairs(&ev);
    assert_eq!(p.len(), 2);
    let (q, r) = (&p[1].0, p[1].1.as_ref().unwrap());
    assert_eq!(q.op.as_ref().unwrap().as_str(), "terminated");
    assert_eq!((q.bytes, r.bytes), (0, fatal.len() as u64));
    assert_eq!(r.status, Status::Error);
    assert_eq!(r.completeness, Completeness::Complete);
    let e = r.error.as_ref().unwrap();
    assert_eq!(e.code, ErrorCode::Text("57P01".into()));
    assert_eq!(
        e.message,
        "terminating connection due to administrator command"
    );
    assert!(!ev.iter().any(|e| matches!(e, DbEvent::Anomaly { .. })));
    // An ERROR (not FATAL) with nothing waiting is counted, not recorded.
    let ev = run(&with_login(&[(S, msg::error("ERROR", "XX000", "stray"))]));
    assert_eq!(pairs(&ev).len(), 1);
    assert!(ev.contains(&DbEvent::Anomaly {
        dir: S,
        kind: "unsolicited_error"
    }));
}

#[test]
fn ssl_refusal_delivered_after_the_startup_message() {
    // The stream layer may hand over the client's StartupMessage before the server's `N`
    // (segments of the two directions captured out of order): the `N` is still the answer.
    let ev = run(&[
        (C, msg::ssl_request()),
        (C, msg::startup(&[("user", "erin")])),
        (S, b"N".to_vec()),
        (S, [msg::auth(0, &[]), msg::ready(b'I')].concat()),
    ]);
    let p = pairs(&ev);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].1.as_ref().unwrap().status, Status::Ok);
    assert_eq!(p[0].1.as_ref().unwrap().bytes, 1 + 9 + 6);
}

#[test]
fn gap_inside_a_password_message_keeps_the_login() {
    let pw = typed(b'p', &cstr("md5aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
    let mut s = segs(&[
        (C, msg::startup(&[("user", "frank")])),
        (S, msg::auth(5, b"salt")),
    ]);
    s.push(Seg::Data(C, Timestamp(10), pw[..10].to_vec()));
    s.push(Seg::Gap(C, Timestamp(11), 10));
    s.push(Seg::Data(C, Timestamp(12), pw[20..].to_vec()));
    s.push(Seg::Data(
        S,
        Timestamp(13),
        [msg::auth(0, &[]), msg::ready(b'I')].concat(),
    ));
    let (ev, _, _) = common::feed(&s, SessionOpts::default(), Limits::default());
    let p = pairs(&ev);
    assert_eq!(p.len(), 1);
    let l = p[0].0.login.as_ref().unwrap();
    assert_eq!(l.auth_method.as_deref(), Some("md5"));
    assert!(l.credentials_redacted);
    assert_eq!(p[0].1.as_ref().unwrap().status, Status::Ok);
    assert!(!format!("{ev:?}").contains("aaaa"));
}

#[test]
fn bind_with_more_values_than_kept() {
    let limits = Limits {
        max_params: 2,
        max_param_len: 4,
        ..Limits::default()
    };
    let ev = run_limits(
        &with_login(&[
            (
                C,
                [
                    msg::parse("", "INSERT INTO t VALUES ($1, $2, $3)", &[25, 25, 25]),
                    msg::bind("", "", &[], &[Some(b"abcdefgh"), Some(b"x"), Some(b"y")]),
                    msg::execute("", 0),
                    msg::sync(),
                ]
                .concat(),
            ),
            (
                S,
                [
                    typed(b'1', &[]),
                    typed(b'2', &[]),
                    msg::complete("INSERT 0 1"),
                    msg::ready(b'I'),
                ]
                .concat(),
            ),
        ]),
        limits,
    );
    let p = pairs(&ev);
    let params = p[1].0.decoded_params().unwrap();
    assert_eq!(
        params,
        vec![
            Param {
                name: None,
                type_name: "text".into(),
                value: ParamValue::Text("abcd".into()),
                truncated: true
            },
            prm("text", ParamValue::Text("x".into())),
        ]
    );
    assert!(matches!(
        p[1].0.completeness,
        Completeness::Truncated { .. }
    ));
    assert!(ev.contains(&DbEvent::Anomaly {
        dir: C,
        kind: "over_limit"
    }));
}

#[test]
fn midstream_execute_of_an_unseen_statement() {
    // Picked up after the Parse: Bind of statement "S_3" (binary int4 7) and Execute.
    let (ev, _, _) = common::feed(
        &segs(&[
            (
                C,
                [
                    msg::bind("", "S_3", &[1], &[Some(&7i32.to_be_bytes())]),
                    msg::execute("", 0),
                    msg::sync(),
                ]
                .concat(),
            ),
            (
                S,
                [
                    typed(b'2', &[]),
                    msg::complete("UPDATE 1"),
                    msg::ready(b'I'),
                ]
                .concat(),
            ),
            // An Execute of a portal whose Bind was not seen either.
            (C, [msg::execute("C_9", 50), msg::sync()].concat()),
            (
                S,
                [msg::data_row(b"x"), typed(b's', &[]), msg::ready(b'T')].concat(),
            ),
        ]),
        SessionOpts { midstream: true },
        Limits::default(),
    );
    let p = pairs(&ev);
    assert_eq!(p.len(), 2);
    let (q, r) = &p[0];
    assert_eq!(q.op.as_ref().unwrap().as_str(), "execute");
    assert_eq!(q.sql, None);
    assert_eq!(q.completeness, Completeness::Partial { lost_bytes: 0 });
    assert_eq!(
        q.decoded_params().unwrap(),
        vec![prm("unknown", ParamValue::Bytes(vec![0, 0, 0, 7]))]
    );
    assert_eq!(q.attributes, vec![("statement".into(), "S_3".to_string())]);
    assert_eq!(r.as_ref().unwrap().rows, Some(1));
    // The suspended portal is still open at the end of the capture: emitted with the row
    // fetched so far, cut.
    let (q, r) = &p[1];
    assert_eq!(q.attributes, vec![("portal".into(), "C_9".to_string())]);
    let r = r.as_ref().unwrap();
    assert_eq!(r.rows, Some(1));
    assert!(matches!(r.completeness, Completeness::Truncated { .. }));
    assert!(ev.contains(&DbEvent::Anomaly {
        dir: C,
        kind: "unknown_portal"
    }));
}

#[test]
fn memory_reported_follows_the_operations_waiting_for_their_answer() {
    use dbtap_core::{Driver, StreamParser};
    use dbtap_pgsql::PgParser;
    let text = "SELECT name FROM patients WHERE ward = 'ICU'";
    // Five queries sent before any answer (pipelined, or the server's side not captured), a
    // two-statement query (two results), and an extended batch whose first Bind fails (the
    // server skips the rest up to Sync); then all the answers.
    let requests = [
        vec![msg::query(text); 5].concat(),
        msg::query("SELECT 1; SELECT 2"),
        batch_whose_first_bind_fails(),
    ]
    .concat();
    let answers = [
        [msg::complete("SELECT 0"), msg::ready(b'I')]
            .concat()
            .repeat(5),
        msg::complete("SELECT 1"),
        msg::complete("SELECT 1"),
        msg::ready(b'I'),
        typed(b'1', &[]),
        msg::error("ERROR", "22P02", "invalid input syntax for type integer"),
        msg::ready(b'I'),
    ]
    .concat();
    let mut p = PgParser::new(SessionOpts::default());
    let mut d = Driver::new(Limits::default());
    let mut out = Vec::new();
    let mut t = 0;
    let mut send = |p: &mut PgParser, dir, b: &[u8]| {
        t += 1;
        d.data(p, dir, Timestamp(t), b, &mut out);
    };
    for (dir, b) in login(&[("user", "alice")]) {
        send(&mut p, dir, &b);
    }
    // A first round grows the queues' capacities; the second is measured.
    send(&mut p, C, &requests);
    send(&mut p, S, &answers);
    let idle = p.mem_usage();
    send(&mut p, C, &requests);
    let waiting = p.mem_usage();
    assert!(waiting >= idle + 5 * text.len(), "{idle} -> {waiting}");
    send(&mut p, S, &answers);
    assert_eq!(p.mem_usage(), idle);
    // Per round: five queries, two statements, one failed execute (the skipped one counted
    // on it, not recorded).
    let records = out
        .iter()
        .filter(|e| matches!(e, DbEvent::Request(_)))
        .count();
    assert_eq!(records, 2 * (5 + 2 + 1) + 1);
}

#[test]
fn a_capture_of_the_client_side_only_carries_the_start_up_user() {
    // One direction mirrored: StartupMessage, then commands, no byte from the server.
    let ev = run(&[
        (
            C,
            msg::startup(&[("user", "alice"), ("database", "clinic")]),
        ),
        (C, msg::query("SELECT name FROM patients")),
        (C, msg::query("DELETE FROM audit_log")),
    ]);
    let p = pairs(&ev);
    assert_eq!(
        p.iter()
            .map(|(q, r)| (
                q.op.as_ref().unwrap().as_str(),
                q.sql.as_deref(),
                r.is_some()
            ))
            .collect::<Vec<_>>(),
        [
            ("login", None, false),
            ("query", Some("SELECT name FROM patients"), false),
            ("query", Some("DELETE FROM audit_log"), false),
        ]
    );
    let session = ev
        .iter()
        .position(|e| matches!(e, DbEvent::Session(_)))
        .unwrap();
    let first_query = ev
        .iter()
        .position(|e| matches!(e, DbEvent::Request(q) if q.sql.is_some()))
        .unwrap();
    assert!(session < first_query);
    assert_eq!(
        ev[session],
        DbEvent::Session(SessionUpdate {
            user: Some("alice".into()),
            database: Some("clinic".into()),
            client_program: None,
        })
    );
}

/// An ErrorResponse with the given fields, in order (protocol "ErrorResponse": `Byte1` field
/// code, `String` value, …, a zero byte).
fn error_fields(fields: &[(u8, &str)]) -> Vec<u8> {
    let mut b = Vec::new();
    for (c, v) in fields {
        b.push(*c);
        b.extend(cstr(v));
    }
    b.push(0);
    typed(b'E', &b)
}

fn attr<'a>(r: &'a dbtap_core::Request, k: &str) -> Option<&'a str> {
    dbtap_core::testing::attribute(&r.attributes, k)
}

/// The error's severity (`V`, else the localized `S` of servers before 9.6) and cursor position
/// (`P`, in characters of the query string) are kept; a statement split out of a
/// multi-statement query counts the position from its own text.
#[test]
fn error_severity_and_position_are_recorded() {
    let ev = run(&with_login(&[
        (C, msg::query("SELECT * FROM no_such_table")),
        (
            S,
            [
                // As PostgreSQL 15 answers it.
                error_fields(&[
                    (b'S', "ERROR"),
                    (b'V', "ERROR"),
                    (b'C', "42P01"),
                    (b'M', "relation \"no_such_table\" does not exist"),
                    (b'P', "15"),
                    (b'F', "parse_relation.c"),
                    (b'L', "1392"),
                    (b'R', "parserOpenTable"),
                ]),
                msg::ready(b'I'),
            ]
            .concat(),
        ),
        (C, msg::query("SELECT 1; SELECT naïve FROM t")),
        (
            S,
            [
                msg::row_desc("?column?"),
                msg::data_row(b"1"),
                msg::complete("SELECT 1"),
                // A server before 9.6 sends no `V`; this one speaks German.
                error_fields(&[
                    (b'S', "FEHLER"),
                    (b'C', "42703"),
                    (b'M', "Spalte »naïve« existiert nicht"),
                    (b'P', "18"),
                ]),
                msg::ready(b'I'),
            ]
            .concat(),
        ),
    ]));
    let p = pairs(&ev);
    assert_eq!(p.len(), 4);
    let q = &p[1].0;
    assert_eq!(attr(q, "error_severity"), Some("ERROR"));
    assert_eq!(attr(q, "error_position"), Some("15"));
    assert_eq!(attr(&p[2].0, "error_severity"), None);
    let q = &p[3].0;
    assert_eq!(q.sql.as_deref(), Some("SELECT naïve FROM t"));
    assert_eq!(attr(q, "error_severity"), Some("FEHLER"));
    // Character 18 of the whole query is character 8 of its second statement (`naïve`).
    assert_eq!(attr(q, "error_position"), Some("8"));
}
