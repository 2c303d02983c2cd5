//! Real sessions, decoded end to end: every value asserted here was checked against the bytes
//! of the capture (see `streams/README.md`) and tshark's view of its TNS packets.
mod common;

use common::{pairs, run, summary};
use dbtap_core::{Completeness, DbEvent, ErrorCode, Status};

fn attr<'a>(l: &'a dbtap_core::Login, k: &str) -> Option<&'a str> {
    dbtap_core::testing::attribute(&l.attributes, k)
}

#[test]
fn sqlplus_10g_session_fixed_representation() {
    // junkie__oracle_select.pcap: 32-bit OCI, fixed little-endian integers, 1-byte pointers.
    let ev = run("sqlplus10g_select");
    let p = pairs(&ev);
    let (login, resp) = &p[0];
    let l = login.login.as_deref().unwrap();
    assert_eq!(l.user.as_deref(), Some("rixed"));
    assert_eq!(l.database.as_deref(), Some("XE"));
    assert_eq!(
        l.client_program.as_deref(),
        Some("sqlplus@xyodis (TNS V1-V3)")
    );
    assert_eq!(l.auth_method.as_deref(), Some("O3LOGON"));
    assert_eq!(attr(l, "os_user"), Some("guest"));
    assert_eq!(attr(l, "terminal"), Some("pts/26"));
    assert_eq!(attr(l, "client_pid"), Some("19562"));
    assert!(l.credentials_redacted);
    assert_eq!(resp.as_ref().unwrap().status, Status::Ok);
    assert_eq!(
        summary(&ev)[1..],
        [
            "query \"SELECT USER FROM DUAL\" Ok rows=Some(1)",
            "query \"BEGIN DBMS_OUTPUT.DISABLE; END;\" Ok rows=None",
            "query \"SELECT ATTRIBUTE,SCOPE,NUMERIC_VALUE,CHAR_VALUE,DATE_VALUE FROM SYSTEM.PRODUCT_PRIVS WHERE (UPPER('SQL*Plus') LIKE UPPER(PRODUCT)) AND (UPPER(USER) LIKE USERID)\" Ok rows=Some(0)",
            "query \"SELECT CHAR_VALUE FROM SYSTEM.PRODUCT_PRIVS WHERE   (UPPER('SQL*Plus') LIKE UPPER(PRODUCT)) AND   ((UPPER(USER) LIKE USERID) OR (USERID = 'PUBLIC')) AND   (UPPER(ATTRIBUTE) = 'ROLES')\" Ok rows=Some(0)",
            // One bind ('SQL*Plus'): 32-bit OCI bind count and metadata (frame 33).
            "execute \"BEGIN DBMS_APPLICATION_INFO.SET_MODULE(:1,NULL); END;\" Ok rows=None",
            "query \"SELECT DECODE('A','A','1','2') FROM DUAL\" Ok rows=Some(1)",
            // Fetched over three calls; ORA-01403 closes it with 23 rows, not as an error.
            "query \"select * from regions\" Ok rows=Some(23)",
            "logout \"\" Ok rows=None",
        ]
    );
    assert!(ev
        .iter()
        .any(|e| matches!(e, DbEvent::ServerInfo { version: Some(v), .. }
        if v == "Oracle Database 10g Express Edition Release 10.2.0.1.0 - Production")));
}

#[test]
fn sql_in_64_byte_chunks_and_dml() {
    // junkie__oracle_insert.pcap frame 42: 0xFE, a 64-byte chunk, a 1-byte chunk, 0. Its
    // answer (frame 43) ends with the end-of-call block: current row 1, command INSERT.
    let s = summary(&run("sqlplus10g_insert"));
    assert!(s.contains(
        &"query \"INSERT INTO regions (region_id, region_name) VALUES (75, 'Paris')\" Ok rows=Some(1)"
            .to_string()
    ));
    // junkie__oracle_delete.pcap frame 43: 3 rows deleted (regions 91, 93 and 94 of the
    // select taken 12 s earlier).
    let s = summary(&run("sqlplus10g_delete"));
    assert!(s.contains(
        &"query \"delete from regions where region_id > 90\" Ok rows=Some(3)".to_string()
    ));
    // PL/SQL blocks report row 1 whatever they do: not a row count.
    assert!(s.contains(&"query \"BEGIN DBMS_OUTPUT.DISABLE; END;\" Ok rows=None".to_string()));
}

#[test]
fn secrets_never_reach_events() {
    for name in [
        "sqlplus10g_select",
        "o5logon_11g_sqlplus",
        "o5logon_win64",
        "jdbc_login_failed",
        "sqldeveloper11g",
        "russian_login",
    ] {
        let text = format!("{:?}", run(name));
        for secret in [
            "AUTH_SESSKEY",
            "AUTH_PASSWORD",
            "AUTH_VFR_DATA",
            "AUTH_PBKDF2",
        ] {
            assert!(!text.contains(secret), "{name}: {secret}");
        }
        // The session key of john-samples__O5LOGON_Oracle-good.pcap frame 19 starts so.
        assert!(!text.contains("475FEF5BD6E8"), "{name}");
    }
}

#[test]
fn o5logon_11g_64bit_and_binds() {
    let ev = run("o5logon_11g_sqlplus");
    let p = pairs(&ev);
    let l = p[0].0.login.as_deref().unwrap();
    assert_eq!(l.user.as_deref(), Some("openwall"));
    assert_eq!(l.auth_method.as_deref(), Some("O5LOGON"));
    assert_eq!(
        attr(l, "alter_session"),
        Some("ALTER SESSION SET TIME_ZONE='+05:30'")
    );
    let module = p
        .iter()
        .find(|(q, _)| {
            q.sql.as_deref() == Some("BEGIN DBMS_APPLICATION_INFO.SET_MODULE(:1,NULL); END;")
        })
        .unwrap();
    assert_eq!(module.0.op.as_ref().unwrap().as_str(), "execute");
    // 64-bit OCI bind metadata; the value in WE8MSWIN1252 (charset 178 in the metadata).
    assert_eq!(
        module.0.params,
        Some(vec![dbtap_core::Param {
            name: None,
            type_name: "VARCHAR2".into(),
            value: dbtap_core::ParamValue::Text("SQL*Plus".into()),
            truncated: false,
        }])
    );
    let ops: Vec<&str> = p
        .iter()
        .map(|(q, _)| q.op.as_ref().unwrap().as_str())
        .collect();
    assert_eq!(
        ops,
        [
            "login", "query", "query", "query", "query", "execute", "query", "commit", "commit",
            "logout"
        ]
    );
}

#[test]
fn win64_padding_is_read() {
    let p = pairs(&run("o5logon_win64"));
    let l = p[0].0.login.as_deref().unwrap();
    assert_eq!(l.user.as_deref(), Some("testuser"));
    assert_eq!(attr(l, "machine"), Some("WORKGROUP\\WIN-7RSSC38TVCL"));
    assert_eq!(p[0].0.completeness, Completeness::Complete);
    assert_eq!(p.len(), 9);
}

#[test]
fn jdbc_thin_errors_after_markers() {
    let ev = run("jdbc_ora00942");
    let p = pairs(&ev);
    assert_eq!(
        p[0].0.login.as_deref().unwrap().user.as_deref(),
        Some("SYSTEM")
    );
    let (q, r) = &p[1];
    assert_eq!(q.sql.as_deref(), Some("SELECT * FROM \"Toto\""));
    let r = r.as_ref().unwrap();
    assert_eq!(r.status, Status::Error);
    let e = r.error.as_ref().unwrap();
    assert_eq!(e.code, ErrorCode::Text("ORA-00942".into()));
    assert_eq!(e.message, "ORA-00942: table or view does not exist");
    assert!(ev
        .iter()
        .any(|e| matches!(e, DbEvent::Anomaly { kind: "marker", .. })));
}

#[test]
fn failed_logins_are_errors() {
    let p = pairs(&run("jdbc_login_failed"));
    assert_eq!(p.len(), 1);
    let (q, r) = &p[0];
    assert_eq!(q.login.as_deref().unwrap().user.as_deref(), Some("USERGUY"));
    let r = r.as_ref().unwrap();
    assert_eq!(r.status, Status::Error);
    assert_eq!(
        r.error.as_ref().unwrap().code,
        ErrorCode::Text("ORA-01017".into())
    );
    assert_eq!(r.rows, None);

    let p = pairs(&run("russian_login_failed"));
    assert_eq!(
        p[0].0.login.as_deref().unwrap().user.as_deref(),
        Some("yuri")
    );
    assert_eq!(
        p[0].1.as_ref().unwrap().error.as_ref().unwrap().code,
        ErrorCode::Text("ORA-01017".into())
    );
}

#[test]
fn charsets_cyrillic_and_chinese() {
    // CL8ISO8859P5: 'р.' is E0 2E on the wire.
    let p = pairs(&run("russian_login"));
    let l = p[0].0.login.as_deref().unwrap();
    assert_eq!(l.user.as_deref(), Some("onegin"));
    assert!(attr(l, "alter_session")
        .unwrap()
        .contains("NLS_CURRENCY= 'р.'"));
    // Oracle 9i: old parse call, statement and error message in Chinese.
    let p = pairs(&run("chinese_9i"));
    let (q, r) = p.last().unwrap();
    assert_eq!(
        q.sql.as_deref(),
        Some("insert into newtable values ('大家好，要下雨了哦！')")
    );
    let e = r.as_ref().unwrap().error.as_ref().unwrap();
    assert_eq!(e.code, ErrorCode::Text("ORA-01401".into()));
    assert_eq!(e.message, "ORA-01401: 插入的值对于列过大");
}

#[test]
fn ddl_dcl_on_10g() {
    let s = summary(&run("sqlplus10g_ddl_dcl"));
    assert!(s.contains(
        &"query \"create user hackerman identified by hackerman\" Ok rows=None".to_string()
    ));
    assert!(s.contains(&"query \"grant dba to hackerman\" Ok rows=None".to_string()));
}

#[test]
fn jdbc_raw_statements_and_binds() {
    let ev = run("sqldeveloper11g");
    let p = pairs(&ev);
    let l = p[0].0.login.as_deref().unwrap();
    assert_eq!(l.user.as_deref(), Some("SYS"));
    assert_eq!(attr(l, "privilege"), Some("SYSDBA"));
    assert_eq!(l.client_program.as_deref(), Some("SQL Developer"));
    assert_eq!(
        p[1].0.sql.as_deref(),
        Some("select * from v$version where banner like '%Oracle%'")
    );
    let bound = p
        .iter()
        .find(|(q, _)| {
            q.sql.as_deref() == Some("select count(1) from all_objects where object_name = :1 ")
        })
        .unwrap();
    assert_eq!(bound.0.op.as_ref().unwrap().as_str(), "execute");
    assert_eq!(
        bound.0.params,
        Some(vec![dbtap_core::Param {
            name: None,
            type_name: "VARCHAR2".into(),
            value: dbtap_core::ParamValue::Text("APEX_RELEASE".into()),
            truncated: false,
        }])
    );
    let errs: Vec<String> = p
        .iter()
        .filter_map(|(_, r)| r.as_ref()?.error.as_ref().map(|e| format!("{:?}", e.code)))
        .collect();
    assert_eq!(errs, ["Text(\"ORA-00942\")", "Text(\"ORA-06564\")"]);
    // No statement text was left undecoded.
    assert!(p
        .iter()
        .all(|(q, _)| q.op.as_ref().unwrap().as_str() == "login"
            || q.op.as_ref().unwrap().as_str() == "logout"
            || q.sql.is_some()));
}

#[test]
fn redirect_and_refuse() {
    let p = pairs(&run("redirect"));
    assert_eq!(p.len(), 1);
    let l = p[0].0.login.as_deref().unwrap();
    assert_eq!(attr(l, "redirect_to"), Some("192.168.0.4:2143"));
    assert_eq!(l.database.as_deref(), Some("void.domain"));
    assert_eq!(p[0].1.as_ref().unwrap().status, Status::Unknown);

    let p = pairs(&run("refuse"));
    assert_eq!(p.len(), 1);
    let r = p[0].1.as_ref().unwrap();
    assert_eq!(r.status, Status::Error);
    assert!(r.error.as_ref().unwrap().message.contains("(ERR=0)"));
}
