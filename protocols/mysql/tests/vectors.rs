//! Hand-made sessions built field by field from the MySQL Client/Server Protocol reference
//! (dev.mysql.com/doc/dev/mysql-server/latest/PAGE_PROTOCOL.html) and MariaDB's protocol pages,
//! for behaviour no public capture shows: GBK text, multi-statements, LOCAL INFILE, payloads of
//! 16 MiB and more, zlib and zstd compression (and a "zip bomb"), execute type reuse, long data,
//! mid-stream execute inference, the statement cache bound, gaps, ends, probes, and other
//! protocols on port 3306.
mod common;

use common::pairs;
use dbtap_core::{
    Completeness, DbEvent, Direction, Driver, Limits, ParamValue, Probe, SessionOpts, Status,
    Timestamp,
};
use dbtap_mysql::codes::Caps;
use dbtap_mysql::{probe, MysqlParser};
use std::io::Write;

const C: Direction = Direction::ToServer;
const S: Direction = Direction::ToClient;

/// A packet: payload_length int<3>, sequence_id int<1>, payload.
fn pkt(seq: u8, payload: &[u8]) -> Vec<u8> {
    let n = payload.len() as u32;
    let mut v = vec![n as u8, (n >> 8) as u8, (n >> 16) as u8, seq];
    v.extend_from_slice(payload);
    v
}

/// HandshakeV10 offering `caps` (4.1 style, mysql_native_password).
fn greeting(caps: u32) -> Vec<u8> {
    let mut g = vec![10]; // protocol version
    g.extend_from_slice(b"8.0.36\0"); // server version
    g.extend_from_slice(&42u32.to_le_bytes()); // connection id
    g.extend_from_slice(b"abcdefgh"); // auth-plugin-data-part-1
    g.push(0); // filler
    g.extend_from_slice(&(caps as u16).to_le_bytes()); // capability flags, lower
    g.push(255); // character set utf8mb4_0900_ai_ci
    g.extend_from_slice(&2u16.to_le_bytes()); // status: autocommit
    g.extend_from_slice(&((caps >> 16) as u16).to_le_bytes()); // capability flags, upper
    g.push(21); // auth-plugin-data length
    g.extend_from_slice(&[0; 10]); // reserved
    g.extend_from_slice(b"ijklmnopqrst\0"); // auth-plugin-data-part-2 (13)
    g.extend_from_slice(b"mysql_native_password\0");
    pkt(0, &g)
}

/// The fake password hash sent by [`login`]: must never appear in any event.
const SECRET: &[u8; 20] = b"S3CR3T-HASH-0123456!";

/// HandshakeResponse41 with `caps`, collation and user.
fn login(caps: u32, collation: u8, user: &str) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&caps.to_le_bytes()); // client capabilities
    b.extend_from_slice(&(16u32 << 20).to_le_bytes()); // max packet size
    b.push(collation); // character set
    b.extend_from_slice(&[0; 23]); // filler
    b.extend_from_slice(user.as_bytes());
    b.push(0); // username<NUL>
    b.push(20); // auth response length (CLIENT_SECURE_CONNECTION)
    b.extend_from_slice(SECRET); // auth response
    b.extend_from_slice(b"mysql_native_password\0"); // client plugin name (CLIENT_PLUGIN_AUTH)
    pkt(1, &b)
}

/// OK: 0x00, affected rows, last insert id, status flags, warnings.
fn ok(seq: u8, affected: u8, status: u16) -> Vec<u8> {
    let mut b = vec![0x00, affected, 0];
    b.extend_from_slice(&status.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    pkt(seq, &b)
}

/// EOF (4.1): 0xFE, warnings, status flags.
fn eof(seq: u8, status: u16) -> Vec<u8> {
    let mut b = vec![0xfe, 0, 0];
    b.extend_from_slice(&status.to_le_bytes());
    pkt(seq, &b)
}

/// A column definition (content irrelevant to the parser: skipped by its header).
fn coldef(seq: u8) -> Vec<u8> {
    pkt(
        seq,
        b"\x03def\x00\x00\x00\x01a\x00\x0c\x3f\x00\x0b\x00\x00\x00\x03\x00\x00\x00\x00\x00",
    )
}

/// A one-column result set: column count, definition, EOF, `rows` text rows, EOF(status).
fn resultset(mut seq: u8, rows: usize, status: u16) -> Vec<u8> {
    let mut v = pkt(seq, &[1]);
    seq += 1;
    v.extend(coldef(seq));
    seq += 1;
    v.extend(eof(seq, 0));
    for i in 0..rows {
        seq = seq.wrapping_add(1);
        v.extend(pkt(seq, format!("\x01{}", i % 10).as_bytes()));
    }
    v.extend(eof(seq.wrapping_add(1), status));
    v
}

const BASE_CAPS: u32 = (Caps::PROTOCOL_41
    | Caps::SECURE_CONNECTION
    | Caps::PLUGIN_AUTH
    | Caps::TRANSACTIONS
    | Caps::MULTI_RESULTS
    | Caps::LOCAL_FILES) as u32;

struct Session {
    p: MysqlParser,
    d: Driver,
    out: Vec<DbEvent>,
    t: u64,
}

impl Session {
    fn new(limits: Limits, midstream: bool) -> Self {
        Session {
            p: MysqlParser::new(SessionOpts { midstream }),
            d: Driver::new(limits),
            out: Vec::new(),
            t: 0,
        }
    }
    /// A logged-in session with `caps` and `collation`.
    fn logged_in(caps: u32, collation: u8) -> Self {
        let mut s = Session::new(Limits::default(), false);
        s.send(S, &greeting(caps));
        s.send(C, &login(caps, collation, "nurse"));
        s.send(S, &ok(2, 0, 2));
        s.out.clear();
        s
    }
    fn send(&mut self, dir: Direction, b: &[u8]) {
        self.t += 1;
        self.d
            .data(&mut self.p, dir, Timestamp(self.t), b, &mut self.out);
    }
    fn gap(&mut self, dir: Direction, n: u64) {
        self.t += 1;
        self.d
            .gap(&mut self.p, dir, Timestamp(self.t), n, &mut self.out);
    }
    fn end(&mut self) {
        self.d
            .end(&mut self.p, C, Timestamp(self.t), false, &mut self.out);
        self.d
            .end(&mut self.p, S, Timestamp(self.t), false, &mut self.out);
    }
}

fn query(text: &[u8]) -> Vec<u8> {
    let mut b = vec![0x03]; // COM_QUERY
    b.extend_from_slice(text);
    pkt(0, &b)
}

#[test]
fn login_events_never_carry_the_credentials() {
    let caps = BASE_CAPS | Caps::CONNECT_WITH_DB as u32;
    let mut s = Session::new(Limits::default(), false);
    s.send(S, &greeting(caps));
    s.send(C, &login(BASE_CAPS, 45, "nurse"));
    // AuthSwitchRequest to caching_sha2_password with a new scramble, the client's answer,
    // AuthMoreData "perform full auth" (0x04), a cleartext password (over TLS in real life),
    // then OK.
    s.send(
        S,
        &pkt(2, b"\xfecaching_sha2_password\0SCRAMBLE-SCRAMBLE-1\0"),
    );
    s.send(C, &pkt(3, b"SWITCH-RESPONSE-SECRET-32-BYTES!"));
    s.send(S, &pkt(4, b"\x01\x04"));
    s.send(C, &pkt(5, b"cleartext-password\0"));
    s.send(S, &ok(6, 0, 2));
    let p = pairs(&s.out);
    let l = p[0].0.login.as_ref().unwrap();
    assert_eq!(l.user.as_deref(), Some("nurse"));
    assert_eq!(l.auth_method.as_deref(), Some("caching_sha2_password"));
    assert!(l.credentials_redacted);
    // Handshake response (4+59+22=?) plus both auth packets count toward the login request.
    assert_eq!(
        p[0].0.bytes,
        login(BASE_CAPS, 45, "nurse").len() as u64 + 36 + 23
    );
    assert_eq!(p[0].1.as_ref().unwrap().status, Status::Ok);
    let dump = format!("{:?}", s.out);
    for secret in [
        &SECRET[..],
        b"SCRAMBLE",
        b"SWITCH-RESPONSE",
        b"cleartext-password",
        b"abcdefgh",
        b"ijklmnop",
    ] {
        let txt = String::from_utf8_lossy(secret);
        assert!(!dump.contains(&*txt), "{txt} leaked");
    }
}

#[test]
fn gbk_statement_decodes_with_the_connection_charset() {
    // Collation 28 = gbk_chinese_ci. "患者" (patient) in GBK: BB BC D5 DF.
    let mut s = Session::logged_in(BASE_CAPS, 28);
    s.send(C, &query(b"SELECT name FROM \xbb\xbc\xd5\xdf WHERE id=1"));
    s.send(S, &ok(1, 0, 2));
    let p = pairs(&s.out);
    assert_eq!(
        p[0].0.sql.as_deref(),
        Some("SELECT name FROM 患者 WHERE id=1")
    );
    // An undecodable byte is kept as an escape, not dropped.
    s.send(C, &query(b"SELECT '\xff'"));
    s.send(S, &ok(1, 0, 2));
    assert_eq!(pairs(&s.out)[1].0.sql.as_deref(), Some("SELECT '\\xff'"));
}

#[test]
fn set_names_switches_decoding_after_ok() {
    let mut s = Session::logged_in(BASE_CAPS, 255);
    s.send(C, &query(b"SET NAMES gbk"));
    s.send(S, &ok(1, 0, 2));
    s.send(C, &query(b"SELECT '\xbb\xbc\xd5\xdf'"));
    s.send(S, &ok(1, 0, 2));
    assert_eq!(pairs(&s.out)[1].0.sql.as_deref(), Some("SELECT '患者'"));
    // A failed SET NAMES changes nothing.
    let mut s = Session::logged_in(BASE_CAPS, 255);
    s.send(C, &query(b"SET NAMES gbk"));
    s.send(S, &pkt(1, b"\xff\x15\x04#42000nope"));
    s.send(C, &query("SELECT '患者'".as_bytes()));
    s.send(S, &ok(1, 0, 2));
    assert_eq!(pairs(&s.out)[1].0.sql.as_deref(), Some("SELECT '患者'"));
}

#[test]
fn rows_are_counted_alike_whole_and_byte_by_byte_empty_packets_included() {
    // A result set whose rows include an empty packet (no row has an empty payload; a capture
    // can still carry one): the fast row count steps over whole rows only and leaves the rest
    // to the general path, so the events are the same however the bytes arrive.
    let mut rs = pkt(1, &[1]);
    rs.extend(coldef(2));
    rs.extend(eof(3, 0));
    rs.extend(pkt(4, b"\x01a"));
    rs.extend(pkt(5, b""));
    rs.extend(pkt(6, b"\x01b"));
    rs.extend(pkt(7, b"\x01c"));
    rs.extend(eof(8, 0x0002));
    // Status, rows and bytes of each answer (the times differ: each piece is a new packet).
    let run = |chunk: usize| {
        let mut s = Session::logged_in(BASE_CAPS, 255);
        s.send(C, &query(b"SELECT a FROM t"));
        for part in rs.chunks(chunk) {
            s.send(S, part);
        }
        pairs(&s.out)
            .iter()
            .map(|(_, r)| r.as_ref().map(|r| (r.status, r.rows, r.bytes)))
            .collect::<Vec<_>>()
    };
    // The empty packet is counted as a row, as the general path counts any packet there.
    let whole = run(rs.len());
    assert_eq!(whole, [Some((Status::Ok, Some(4), rs.len() as u64))]);
    assert_eq!(run(1), whole);
    assert_eq!(run(7), whole);
}

#[test]
fn multi_statements_split_when_results_match() {
    let caps = BASE_CAPS | Caps::MULTI_STATEMENTS as u32;
    let mut s = Session::logged_in(caps, 255);
    s.send(C, &query(b"UPDATE t SET a=1; SELECT a FROM t"));
    // First result: OK with SERVER_MORE_RESULTS_EXISTS (0x0008), 3 affected rows.
    let mut r = ok(1, 3, 0x0002 | 0x0008);
    r.extend(resultset(2, 2, 0x0002));
    s.send(S, &r);
    let p = pairs(&s.out);
    assert_eq!(p.len(), 2);
    assert_eq!(p[0].0.sql.as_deref(), Some("UPDATE t SET a=1"));
    assert_eq!(p[0].1.as_ref().unwrap().rows, Some(3));
    assert_eq!(p[1].0.sql.as_deref(), Some("SELECT a FROM t"));
    assert_eq!(p[1].1.as_ref().unwrap().rows, Some(2));
    assert_eq!(
        p[0].0.bytes,
        query(b"UPDATE t SET a=1; SELECT a FROM t").len() as u64
    );
    assert_eq!(p[1].0.bytes, 0);
    assert_eq!((p[0].0.tx + 1, p[0].0.ts), (p[1].0.tx, p[1].0.ts));
    // An error in the second statement stops the chain (the server runs no statement after a
    // failed one): the UPDATE ran and says so, the failing statement has the error, and what
    // was not run is named on it.
    s.out.clear();
    s.send(C, &query(b"UPDATE t SET a=1; SELECT nope; SELECT 1"));
    let mut r = ok(1, 3, 0x0002 | 0x0008);
    r.extend(pkt(2, b"\xff\x7a\x04#42S22Unknown column 'nope'"));
    s.send(S, &r);
    let p = pairs(&s.out);
    assert_eq!(p.len(), 2);
    assert_eq!(p[0].0.sql.as_deref(), Some("UPDATE t SET a=1"));
    let resp = p[0].1.as_ref().unwrap();
    assert_eq!((resp.status, resp.rows), (Status::Ok, Some(3)));
    assert_eq!(p[1].0.sql.as_deref(), Some("SELECT nope"));
    let resp = p[1].1.as_ref().unwrap();
    assert_eq!(resp.status, Status::Error);
    assert_eq!(
        resp.error.as_ref().unwrap().code,
        dbtap_core::ErrorCode::Num(0x047a)
    );
    let attrs: Vec<(&str, &str)> = p[1]
        .0
        .attributes
        .iter()
        .map(|(k, v)| (&**k, v.as_str()))
        .collect();
    assert_eq!(
        attrs,
        [
            ("not_executed_statements", "1"),
            ("not_executed_sql", "SELECT 1")
        ]
    );
    assert!(p[0].0.attributes.is_empty());
}

#[test]
fn local_infile_counts_the_file_but_keeps_nothing() {
    let mut s = Session::logged_in(BASE_CAPS, 255);
    let q = query(b"LOAD DATA LOCAL INFILE '/tmp/patients.csv' INTO TABLE p");
    s.send(C, &q);
    s.send(S, &pkt(1, b"\xfb/tmp/patients.csv"));
    let data = pkt(2, b"1,Alice,1980-01-01\n2,Bob,1975-05-05\n");
    s.send(C, &data);
    s.send(C, &pkt(3, b""));
    s.send(S, &ok(4, 2, 2));
    let p = pairs(&s.out);
    assert_eq!(p.len(), 1);
    let (req, resp) = &p[0];
    assert_eq!(
        req.attributes,
        vec![("local_infile".into(), "/tmp/patients.csv".into())]
    );
    assert_eq!(req.bytes, (q.len() + data.len() + 4) as u64);
    assert_eq!(resp.as_ref().unwrap().rows, Some(2));
    assert!(!format!("{:?}", s.out).contains("Alice"));
}

#[test]
fn payload_of_16_mib_and_more_is_cut_not_buffered() {
    let limits = Limits::default();
    let mut s = Session::logged_in(BASE_CAPS, 255);
    // 0xFFFFFF + 10 bytes of payload: one full packet (length 0xFFFFFF) and one of 10 bytes.
    let mut payload = vec![0x03];
    payload.extend(b"INSERT INTO blobs VALUES ('");
    payload.resize(0xff_ffff + 10, b'x');
    let mut wire = Vec::new();
    wire.extend_from_slice(&[0xff, 0xff, 0xff, 0]);
    wire.extend_from_slice(&payload[..0xff_ffff]);
    wire.extend(pkt(1, &payload[0xff_ffff..]));
    for c in wire.chunks(65536) {
        s.send(C, c);
        assert!(s.d.buffered() < limits.max_message_len + 2 * 65536);
    }
    s.send(S, &ok(2, 1, 2));
    let p = pairs(&s.out);
    let req = &p[0].0;
    assert_eq!(req.sql.as_ref().unwrap().len(), limits.max_statement_len);
    assert!(req
        .sql
        .as_ref()
        .unwrap()
        .starts_with("INSERT INTO blobs VALUES ('xxx"));
    assert_eq!(
        req.completeness,
        Completeness::Truncated {
            kept: limits.max_statement_len as u64,
            original: 0xff_ffff + 10 - 1
        }
    );
    assert_eq!(req.bytes, wire.len() as u64);
    assert_eq!(p[0].1.as_ref().unwrap().rows, Some(1));
    // Exactly 0xFFFFFF bytes: the payload ends with an empty packet.
    let mut s = Session::logged_in(BASE_CAPS, 255);
    let mut wire = vec![0xff, 0xff, 0xff, 0];
    wire.push(0x03);
    wire.resize(4 + 0xff_ffff, b'y');
    wire.extend(pkt(1, b""));
    s.send(C, &wire);
    s.send(S, &ok(2, 0, 2));
    let p = pairs(&s.out);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].1.as_ref().unwrap().status, Status::Ok);
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A compressed frame: compressed_length int<3>, compressed_sequence_id int<1>,
/// uncompressed_length int<3>, payload.
fn frame(seq: u8, ulen: usize, payload: &[u8]) -> Vec<u8> {
    let c = payload.len();
    let mut v = vec![
        c as u8,
        (c >> 8) as u8,
        (c >> 16) as u8,
        seq,
        ulen as u8,
        (ulen >> 8) as u8,
        (ulen >> 16) as u8,
    ];
    v.extend_from_slice(payload);
    v
}

#[test]
fn zlib_compressed_session_with_rows_spanning_frames() {
    let caps = BASE_CAPS | Caps::COMPRESS as u32;
    let mut s = Session::new(Limits::default(), false);
    s.send(S, &greeting(caps));
    s.send(C, &login(caps, 255, "nurse"));
    // The login OK is not compressed; everything after it is.
    s.send(S, &ok(2, 0, 2));
    let q = query(b"SELECT a FROM t");
    s.send(C, &frame(0, 0, &q)); // stored (uncompressed length 0)
                                 // 500 rows, compressed, cut into two frames in the middle of a packet.
    let rs = resultset(1, 500, 2);
    let (a, b) = rs.split_at(rs.len() / 2 + 3);
    let mut wire = frame(1, a.len(), &zlib(a));
    wire.extend(frame(2, b.len(), &zlib(b)));
    for c in wire.chunks(7) {
        s.send(S, c);
    }
    let p = pairs(&s.out);
    assert_eq!(p.len(), 2);
    assert_eq!(p[1].0.sql.as_deref(), Some("SELECT a FROM t"));
    let r = p[1].1.as_ref().unwrap();
    assert_eq!(
        (r.status, r.rows, r.bytes),
        (Status::Ok, Some(500), rs.len() as u64)
    );
    assert_eq!(s.p.buffered(), 0);
}

#[test]
fn zstd_compressed_session() {
    let caps = BASE_CAPS | Caps::ZSTD as u32;
    let mut s = Session::new(Limits::default(), false);
    s.send(S, &greeting(caps));
    s.send(C, &login(caps, 255, "nurse"));
    s.send(S, &ok(2, 0, 2));
    let q = query(b"SELECT 1");
    let z = ruzstd::encoding::compress_to_vec(&q[..], ruzstd::encoding::CompressionLevel::Fastest);
    s.send(C, &frame(0, q.len(), &z));
    let rs = resultset(1, 3, 2);
    let z = ruzstd::encoding::compress_to_vec(&rs[..], ruzstd::encoding::CompressionLevel::Fastest);
    s.send(S, &frame(1, rs.len(), &z));
    let p = pairs(&s.out);
    assert_eq!(p[1].0.sql.as_deref(), Some("SELECT 1"));
    assert_eq!(p[1].1.as_ref().unwrap().rows, Some(3));
}

#[test]
fn zstd_frames_larger_than_the_message_limit_stream_past() {
    let limits = Limits {
        max_message_len: 64 * 1024,
        ..Limits::default()
    };
    let caps = BASE_CAPS | Caps::ZSTD as u32;
    let mut s = Session::new(limits.clone(), false);
    s.send(S, &greeting(caps));
    s.send(C, &login(caps, 255, "nurse"));
    s.send(S, &ok(2, 0, 2));
    let q = query(b"SELECT note FROM notes");
    let zq = ruzstd::encoding::compress_to_vec(&q[..], ruzstd::encoding::CompressionLevel::Fastest);
    s.send(C, &frame(0, q.len(), &zq));
    // 20 000 rows of poorly compressible bytes in one zstd frame (> 64 KiB compressed, several
    // blocks), sent in 1500-byte segments.
    let rs = poorly_compressible_resultset();
    let z = ruzstd::encoding::compress_to_vec(&rs[..], ruzstd::encoding::CompressionLevel::Fastest);
    assert!(z.len() > limits.max_message_len);
    for c in frame(1, rs.len(), &z).chunks(1500) {
        s.send(S, c);
    }
    let p = pairs(&s.out);
    assert_eq!(p[1].0.sql.as_deref(), Some("SELECT note FROM notes"));
    let r = p[1].1.as_ref().unwrap();
    assert_eq!((r.status, r.rows), (Status::Ok, Some(20_000)));
    assert_eq!(r.completeness, Completeness::Complete);
    assert!(!s.out.iter().any(|e| matches!(e, DbEvent::Anomaly { .. })));
    assert!(s.d.buffered() <= limits.max_message_len + 4096);
    assert!(s.p.buffered() <= dbtap_mysql::parser::max_inner_buffer(&limits));
    // The next frames are read as before.
    s.send(C, &frame(0, 0, &query(b"SELECT 2")));
    s.send(S, &frame(1, 0, &ok(1, 0, 2)));
    let p = pairs(&s.out);
    assert_eq!(p[2].0.sql.as_deref(), Some("SELECT 2"));
    assert_eq!(p[2].1.as_ref().unwrap().status, Status::Ok);
    // The same frame handed over whole, in one piece larger than the limit: read the same way.
    s.send(C, &frame(0, q.len(), &zq));
    s.send(S, &frame(1, rs.len(), &z));
    let p = pairs(&s.out);
    let r = p[3].1.as_ref().unwrap();
    assert_eq!((r.status, r.rows), (Status::Ok, Some(20_000)));
    assert!(!s.out.iter().any(|e| matches!(e, DbEvent::Anomaly { .. })));
}

#[test]
fn zip_bomb_frame_is_cut_and_counted() {
    let caps = BASE_CAPS | Caps::COMPRESS as u32;
    let mut s = Session::new(Limits::default(), false);
    s.send(S, &greeting(caps));
    s.send(C, &login(caps, 255, "nurse"));
    s.send(S, &ok(2, 0, 2));
    // Declares 20 bytes, inflates to 10 MB of zeros.
    let bomb = zlib(&vec![0u8; 10_000_000]);
    s.send(C, &frame(0, 20, &bomb));
    assert!(s.out.contains(&DbEvent::Anomaly {
        dir: C,
        kind: "decompress_error"
    }));
    assert!(s.p.buffered() <= dbtap_mysql::parser::max_inner_buffer(&Limits::default()));
}

fn prepare(text: &[u8]) -> Vec<u8> {
    let mut b = vec![0x16]; // COM_STMT_PREPARE
    b.extend_from_slice(text);
    pkt(0, &b)
}

/// COM_STMT_PREPARE_OK: 0x00, statement_id int<4>, num_columns int<2>, num_params int<2>,
/// reserved, warning_count int<2>; then `params` definitions + EOF (no columns here).
fn prepare_ok(id: u32, params: u16) -> Vec<u8> {
    let mut b = vec![0x00];
    b.extend_from_slice(&id.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&params.to_le_bytes());
    b.push(0);
    b.extend_from_slice(&0u16.to_le_bytes());
    let mut v = pkt(1, &b);
    let mut seq = 2;
    for _ in 0..params {
        v.extend(coldef(seq));
        seq += 1;
    }
    if params > 0 {
        v.extend(eof(seq, 2));
    }
    v
}

/// COM_STMT_EXECUTE: statement_id, flags 0, iteration_count 1, null bitmap, new_params_bound,
/// [types], values.
fn execute(id: u32, bitmap: &[u8], types: Option<&[(u8, u8)]>, values: &[u8]) -> Vec<u8> {
    let mut b = vec![0x17];
    b.extend_from_slice(&id.to_le_bytes());
    b.push(0); // flags: CURSOR_TYPE_NO_CURSOR
    b.extend_from_slice(&1u32.to_le_bytes()); // iteration count
    b.extend_from_slice(bitmap);
    match types {
        Some(t) => {
            b.push(1); // new_params_bind_flag
            for (ty, fl) in t {
                b.push(*ty);
                b.push(*fl);
            }
        }
        None => b.push(0),
    }
    b.extend_from_slice(values);
    pkt(0, &b)
}

#[test]
fn execute_remembers_types_and_reports_long_data() {
    let mut s = Session::logged_in(BASE_CAPS, 255);
    s.send(C, &prepare(b"INSERT INTO t VALUES (?, ?, ?)"));
    s.send(S, &prepare_ok(7, 3));
    // LONGLONG unsigned (0x08, 0x80) = 2^63; VAR_STRING "abc"; DATETIME NULL (bit 2).
    let mut v = (1u64 << 63).to_le_bytes().to_vec();
    v.extend_from_slice(b"\x03abc");
    s.send(
        C,
        &execute(7, &[0b100], Some(&[(0x08, 0x80), (0xfd, 0), (0x0c, 0)]), &v),
    );
    s.send(S, &ok(1, 1, 2));
    // Second execute: new_params_bound 0 → the types of the first are reused; param 1 was
    // sent as long data (COM_STMT_SEND_LONG_DATA: statement_id, param_id, data).
    let mut ld = vec![0x18];
    ld.extend_from_slice(&7u32.to_le_bytes());
    ld.extend_from_slice(&1u16.to_le_bytes());
    ld.extend_from_slice(&[b'z'; 100]);
    s.send(C, &pkt(0, &ld));
    let mut v = 5u64.to_le_bytes().to_vec();
    v.extend_from_slice(&[7, 0xe8, 0x07, 2, 29, 13, 14, 15]); // DATETIME 7-byte form
    s.send(C, &execute(7, &[0], None, &v));
    s.send(S, &ok(1, 1, 2));
    let p = pairs(&s.out);
    let ops: Vec<_> = p
        .iter()
        .map(|(q, _)| q.op.as_ref().unwrap().as_str().to_string())
        .collect();
    assert_eq!(
        ops,
        vec!["prepare", "execute", "stmt_send_long_data", "execute"]
    );
    let first = p[1].0.params.as_ref().unwrap();
    assert_eq!(first[0].type_name, "unsigned longlong");
    assert_eq!(first[0].value, ParamValue::UInt(1 << 63));
    assert_eq!(first[1].value, ParamValue::Text("abc".into()));
    assert_eq!(
        (first[2].type_name.as_ref(), &first[2].value),
        ("datetime", &ParamValue::Null)
    );
    assert!(!p[2].0.expects_response);
    let second = p[3].0.params.as_ref().unwrap();
    assert_eq!(second[0].value, ParamValue::UInt(5));
    assert_eq!(second[1].value, ParamValue::LongData { bytes: 100 });
    assert_eq!(
        second[2].value,
        ParamValue::Text("2024-02-29 13:14:15".into())
    );
    assert_eq!(
        p[3].0.sql.as_deref(),
        Some("INSERT INTO t VALUES (?, ?, ?)")
    );
}

#[test]
fn midstream_execute_infers_params_only_when_unambiguous() {
    let mut s = Session::new(Limits::default(), true);
    // LONG 42 and VAR_STRING "x": only 2 parameters fit this layout.
    let mut v = 42u32.to_le_bytes().to_vec();
    v.extend_from_slice(b"\x01x");
    s.send(C, &execute(9, &[0], Some(&[(0x03, 0), (0xfd, 0)]), &v));
    s.send(S, &ok(1, 0, 2));
    // Flag 0 and an unknown statement: the types are unknown.
    s.send(C, &execute(11, &[0], None, &[1, 2, 3, 4]));
    s.send(S, &ok(1, 0, 2));
    let p = pairs(&s.out);
    assert_eq!(p[0].0.sql, None);
    assert_eq!(p[0].0.stmt_id, Some(9));
    let params = p[0].0.params.as_ref().unwrap();
    assert_eq!(
        params.iter().map(|x| x.value.clone()).collect::<Vec<_>>(),
        vec![ParamValue::Int(42), ParamValue::Text("x".into())]
    );
    assert_eq!(p[1].0.params, None);
    assert_eq!(p[1].0.completeness, Completeness::Partial { lost_bytes: 0 });
}

#[test]
fn statement_cache_is_bounded() {
    let limits = Limits {
        max_prepared_statements: 2,
        ..Limits::default()
    };
    let mut s = Session::new(limits, false);
    s.send(S, &greeting(BASE_CAPS));
    s.send(C, &login(BASE_CAPS, 255, "nurse"));
    s.send(S, &ok(2, 0, 2));
    for id in 1..=3u32 {
        s.send(C, &prepare(format!("SELECT {id}").as_bytes()));
        s.send(S, &prepare_ok(id, 0));
    }
    assert_eq!(s.p.cached_statements(), 2);
    assert_eq!(
        s.out
            .iter()
            .filter(|e| matches!(
                e,
                DbEvent::Anomaly {
                    kind: "stmt_cache_evicted",
                    ..
                }
            ))
            .count(),
        1
    );
    // Statement 1 (least recently used) is gone: its execute has no SQL; 3 is still known.
    s.send(C, &execute(1, &[], None, &[]));
    s.send(S, &ok(1, 0, 2));
    s.send(C, &execute(3, &[], None, &[]));
    s.send(S, &ok(1, 0, 2));
    let p = pairs(&s.out);
    let n = p.len();
    assert_eq!(p[n - 2].0.sql, None);
    assert_eq!(p[n - 1].0.sql.as_deref(), Some("SELECT 3"));
    // COM_STMT_CLOSE removes.
    let mut close = vec![0x19];
    close.extend_from_slice(&3u32.to_le_bytes());
    s.send(C, &pkt(0, &close));
    assert_eq!(s.p.cached_statements(), 1);
}

#[test]
fn deprecate_eof_result_set_and_prepare() {
    let caps = BASE_CAPS | Caps::DEPRECATE_EOF as u32;
    let mut s = Session::logged_in(caps, 255);
    s.send(C, &query(b"SELECT a FROM t"));
    // Column count, definition, no EOF, 2 rows, OK with 0xFE header as terminator.
    let mut r = pkt(1, &[1]);
    r.extend(coldef(2));
    r.extend(pkt(3, b"\x011"));
    r.extend(pkt(4, b"\x012"));
    r.extend(pkt(5, b"\xfe\x00\x00\x02\x00\x00\x00"));
    s.send(S, &r);
    s.send(C, &prepare(b"SELECT ?"));
    let mut b = vec![0x00, 4, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0];
    let mut r = pkt(1, &b);
    r.extend(coldef(2)); // parameter definition, no EOF
    r.extend(coldef(3)); // column definition, no EOF
    s.send(S, &r);
    b.clear();
    s.send(C, &query(b"DO 1"));
    s.send(S, &ok(1, 0, 2));
    let p = pairs(&s.out);
    assert_eq!(p.len(), 3);
    assert_eq!(p[0].1.as_ref().unwrap().rows, Some(2));
    assert_eq!(p[1].1.as_ref().unwrap().stmt_id, Some(4));
    assert_eq!(p[2].0.sql.as_deref(), Some("DO 1"));
    assert_eq!(p[2].1.as_ref().unwrap().status, Status::Ok);
}

/// A snaplen cut inside the handshake response: the login keeps the user, its size is the whole
/// packet's, and the bytes lost are counted (they were neither, only `Partial` with 0 lost).
#[test]
fn gap_inside_the_handshake_response_counts_the_whole_packet_and_the_loss() {
    let mut s = Session::new(Limits::default(), false);
    s.send(S, &greeting(BASE_CAPS));
    let l = login(BASE_CAPS, 255, "his_app");
    // Header (4), capabilities, max packet, collation, filler (23), the user name and its NUL.
    let kept = 4 + 4 + 4 + 1 + 23 + "his_app".len() + 1;
    s.send(C, &l[..kept]);
    s.gap(C, (l.len() - kept) as u64);
    s.send(S, &ok(2, 0, 2));
    let p = pairs(&s.out);
    assert_eq!(p.len(), 1);
    let (q, r) = &p[0];
    assert_eq!(q.login.as_ref().unwrap().user.as_deref(), Some("his_app"));
    assert_eq!(q.bytes, l.len() as u64);
    assert_eq!(
        q.completeness,
        Completeness::Partial {
            lost_bytes: (l.len() - kept) as u64
        }
    );
    assert_eq!(r.as_ref().unwrap().status, Status::Ok);
}

#[test]
fn gap_inside_a_query_is_absorbed_and_flagged() {
    let mut s = Session::logged_in(BASE_CAPS, 255);
    let q = query(b"SELECT * FROM patients WHERE name = 'Alice'");
    s.send(C, &q[..20]);
    s.gap(C, 10);
    s.send(C, &q[30..]);
    s.send(S, &ok(1, 0, 2));
    let p = pairs(&s.out);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].0.sql.as_deref(), Some("SELECT * FROM p"));
    assert_eq!(
        p[0].0.completeness,
        Completeness::Partial { lost_bytes: 10 }
    );
    assert_eq!(p[0].1.as_ref().unwrap().status, Status::Ok);
    assert!(!s.out.iter().any(|e| matches!(e, DbEvent::Desync { .. })));
}

#[test]
fn server_gap_between_messages_desyncs_then_resyncs() {
    let mut s = Session::logged_in(BASE_CAPS, 255);
    s.send(C, &query(b"SELECT 1"));
    s.gap(S, 100); // the whole response is lost
    s.send(C, &query(b"SELECT 2"));
    s.send(S, &resultset(1, 1, 2));
    let ev = s.out.clone();
    assert!(ev.contains(&DbEvent::Desync {
        dir: S,
        lost_bytes: 100
    }));
    let p = pairs(&ev);
    assert_eq!(p.len(), 2);
    assert_eq!(p[0].0.sql.as_deref(), Some("SELECT 1"));
    assert!(p[0].1.is_none(), "the lost response is not invented");
    assert_eq!(p[1].0.sql.as_deref(), Some("SELECT 2"));
    assert_eq!(p[1].1.as_ref().unwrap().rows, Some(1));
    assert!(ev
        .iter()
        .any(|e| matches!(e, DbEvent::Resync { dir: S, .. })));
}

#[test]
fn client_gap_in_a_header_resyncs_on_the_next_command() {
    let mut s = Session::logged_in(BASE_CAPS, 255);
    s.send(C, &query(b"SELECT 1")[..2]);
    s.gap(C, 50);
    s.send(C, b"garbage!");
    s.send(C, &query(b"SELECT 3"));
    s.send(S, &ok(1, 0, 2));
    let p = pairs(&s.out);
    assert_eq!(p.last().unwrap().0.sql.as_deref(), Some("SELECT 3"));
    assert!(s.out.contains(&DbEvent::Desync {
        dir: C,
        lost_bytes: 50
    }));
    assert!(
        s.out.contains(&DbEvent::Resync {
            dir: C,
            skipped_bytes: 8
        }),
        "{:?}",
        s.out
    );
}

#[test]
fn end_of_capture_keeps_the_head_of_a_cut_query() {
    let mut s = Session::logged_in(BASE_CAPS, 255);
    let q = query(b"SELECT * FROM patients WHERE ward = 7");
    s.send(C, &q[..25]);
    s.end();
    let p = pairs(&s.out);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].0.sql.as_deref(), Some("SELECT * FROM patien"));
    assert_eq!(
        p[0].0.completeness,
        Completeness::Truncated {
            kept: 25,
            original: q.len() as u64
        }
    );
    assert!(p[0].1.is_none());
}

#[test]
fn end_flushes_a_request_waiting_for_its_response() {
    let mut s = Session::logged_in(BASE_CAPS, 255);
    s.send(C, &query(b"SELECT SLEEP(100)"));
    s.end();
    let p = pairs(&s.out);
    assert_eq!(p.len(), 1);
    assert!(p[0].1.is_none());
    assert!(p[0].0.expects_response);
}

#[test]
fn session_tracking_schema_and_charset() {
    let caps = BASE_CAPS | Caps::SESSION_TRACK as u32;
    let mut s = Session::logged_in(caps, 255);
    s.send(C, &query(b"USE ward7"));
    // OK with SERVER_SESSION_STATE_CHANGED (0x4000): info "" then state changes:
    // SESSION_TRACK_SCHEMA "ward7", SESSION_TRACK_SYSTEM_VARIABLES character_set_client=gbk.
    let mut b = vec![0x00, 0, 0, 0x02, 0x40, 0, 0, 0];
    let mut st = vec![0x01, 6, 5];
    st.extend_from_slice(b"ward7");
    let var = b"\x14character_set_client\x03gbk";
    st.push(0x00);
    st.push(var.len() as u8);
    st.extend_from_slice(var);
    b.push(st.len() as u8);
    b.extend(st);
    s.send(S, &pkt(1, &b));
    s.send(C, &query(b"SELECT '\xbb\xbc\xd5\xdf'"));
    s.send(S, &ok(1, 0, 2));
    assert!(s
        .out
        .contains(&DbEvent::Session(dbtap_core::event::SessionUpdate {
            database: Some("ward7".into()),
            ..Default::default()
        })));
    assert_eq!(pairs(&s.out)[1].0.sql.as_deref(), Some("SELECT '患者'"));
}

#[test]
fn other_protocols_on_3306_yield_nothing() {
    for (first, bytes) in [
        (C, &b"GET / HTTP/1.1\r\nHost: db\r\n\r\n"[..]),
        (C, &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..]),
        (S, &b"SSH-2.0-OpenSSH_9.6\r\n"[..]),
        (S, &b"HTTP/1.1 200 OK\r\n\r\n"[..]),
    ] {
        for mid in [false, true] {
            let mut s = Session::new(Limits::default(), mid);
            s.send(first, bytes);
            s.send(first.flip(), b"HTTP/1.1 400 Bad Request\r\n\r\n");
            s.end();
            assert!(
                !s.out.iter().any(|e| matches!(e, DbEvent::Request(_))),
                "{bytes:?}"
            );
            assert!(
                matches!(s.d.state(), dbtap_core::DriverState::Abandoned(_)),
                "{bytes:?} mid={mid}"
            );
        }
        assert_eq!(probe(first, bytes), Probe::NotForUs);
    }
}

#[test]
fn probes() {
    assert_eq!(probe(S, &greeting(BASE_CAPS)), Probe::Certain);
    assert_eq!(probe(C, &query(b"SELECT 1")), Probe::Certain);
    let mut two = query(b"SELECT 1");
    two.extend(pkt(0, &[0x0e])); // COM_PING
    assert_eq!(probe(C, &two), Probe::Certain);
    assert_eq!(probe(C, &login(BASE_CAPS, 255, "x")), Probe::Certain);
    assert_eq!(probe(S, &ok(1, 0, 2)), Probe::Unsure);
    assert_eq!(probe(C, &query(b"\x01\x02\x03 binary")), Probe::Unsure);
    assert_eq!(probe(C, b"\x00\x00"), Probe::NeedMore);
    assert_eq!(
        probe(C, &[0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04, 0x05]),
        Probe::NotForUs
    );
    assert_eq!(
        probe(C, b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1"),
        Probe::NotForUs
    );
    assert_eq!(probe(S, b"SSH-2.0-x\r\n"), Probe::NotForUs);
    assert_eq!(probe(C, b"POST /x HTTP/1.1\r\n"), Probe::NotForUs);
    // Compressed frames (a session picked up after compression was switched on): certain when
    // a whole frame holds what makes a plain probe certain (stored), or inflates with its
    // Adler-32 right to exactly its declared length of packets (zlib); unsure otherwise.
    assert_eq!(probe(C, &frame(0, 0, &query(b"SELECT 1"))), Probe::Certain);
    assert_eq!(probe(S, &frame(1, 0, &ok(1, 0, 2))), Probe::Unsure);
    let rs = resultset(1, 3, 2);
    let z = frame(1, rs.len(), &zlib(&rs));
    assert_eq!(probe(S, &z), Probe::Certain);
    assert_eq!(probe(S, &z[..z.len() - 1]), Probe::Unsure, "not whole");
    let mut bad_sum = z.clone();
    *bad_sum.last_mut().unwrap() ^= 1;
    assert_eq!(probe(S, &bad_sum), Probe::Unsure, "Adler-32 wrong");
    let wrong_len = frame(1, rs.len() + 1, &zlib(&rs));
    assert_eq!(probe(S, &wrong_len), Probe::Unsure, "declared length wrong");
    let mut not_packets = rs.clone();
    not_packets.push(0);
    assert_eq!(
        probe(S, &frame(1, not_packets.len(), &zlib(&not_packets))),
        Probe::Unsure,
        "a stray byte after the packets"
    );
}

#[test]
fn midstream_empty_result_with_deprecate_eof() {
    // Mid-stream, DEPRECATE_EOF unknown: column count, definition, then the OK(0xFE)
    // terminator (7 bytes) right away. It must not be taken for an EOF before rows.
    let mut s = Session::new(Limits::default(), true);
    s.send(C, &query(b"SELECT a FROM t WHERE 0"));
    let mut r = pkt(1, &[1]);
    r.extend(coldef(2));
    r.extend(pkt(3, b"\xfe\x00\x00\x02\x00\x00\x00"));
    s.send(S, &r);
    s.send(C, &query(b"SELECT 2"));
    s.send(S, &ok(1, 0, 2));
    let p = pairs(&s.out);
    assert_eq!(p.len(), 2);
    assert_eq!(p[0].1.as_ref().unwrap().rows, Some(0));
    assert_eq!(p[1].1.as_ref().unwrap().status, Status::Ok);
}

/// Throughput of a sysbench-like point-select replay through the driver (run with
/// `cargo test --release -p dbtap-mysql --test vectors -- --ignored --nocapture throughput`).
#[test]
#[ignore]
fn throughput() {
    let mut stream: Vec<(Direction, Vec<u8>)> = vec![
        (S, greeting(BASE_CAPS)),
        (C, login(BASE_CAPS, 255, "sbtest")),
        (S, ok(2, 0, 2)),
    ];
    for i in 0..100_000u32 {
        stream.push((
            C,
            query(format!("SELECT c FROM sbtest1 WHERE id={}", i % 5000).as_bytes()),
        ));
        let mut r = pkt(1, &[1]);
        r.extend(coldef(2));
        r.extend(eof(3, 2));
        r.extend(pkt(4, &[120; 121][..]));
        r.extend(eof(5, 2));
        stream.push((S, r));
        if i % 10 == 0 {
            stream.push((C, query(b"UPDATE sbtest1 SET k=k+1 WHERE id=42")));
            stream.push((S, ok(1, 1, 2)));
        }
    }
    let bytes: usize = stream.iter().map(|(_, b)| b.len()).sum();
    let start = std::time::Instant::now();
    let mut s = Session::new(Limits::default(), false);
    let mut n = 0;
    for (d, b) in &stream {
        s.send(*d, b);
        n += s.out.len();
        s.out.clear();
    }
    let el = start.elapsed();
    println!(
        "{} bytes, {} events in {:?}: {:.0} MB/s, {:.0} ns per query+response",
        bytes,
        n,
        el,
        bytes as f64 / el.as_secs_f64() / 1e6,
        el.as_nanos() as f64 / 110_000.0
    );
}

#[test]
fn handshake_response_320_of_an_old_client() {
    // Protocol 10 greeting without CLIENT_PROTOCOL_41 support on the client side:
    // HandshakeResponse320 = capability_flags int<2>, max_packet_size int<3>,
    // username string<NUL>, auth-response string<NUL>, database string<NUL> (CONNECT_WITH_DB).
    let mut s = Session::new(Limits::default(), false);
    s.send(S, &greeting(BASE_CAPS));
    let caps = (Caps::LONG_PASSWORD | Caps::CONNECT_WITH_DB | Caps::TRANSACTIONS) as u16;
    let mut b = caps.to_le_bytes().to_vec();
    b.extend_from_slice(&[0, 0, 0x01]); // max packet size
    b.extend_from_slice(b"olduser\0"); // username
    b.extend_from_slice(b"OLDHASH1\0"); // 4.0 scrambled password: dropped
    b.extend_from_slice(b"clinic\0"); // database
    s.send(C, &pkt(1, &b));
    // Pre-4.1 OK: header, affected rows, insert id, status (CLIENT_TRANSACTIONS).
    s.send(S, &pkt(2, &[0, 0, 0, 2, 0]));
    s.send(C, &query(b"SELECT 1"));
    s.send(S, &pkt(1, &[0, 0, 0, 2, 0]));
    let p = pairs(&s.out);
    let l = p[0].0.login.as_ref().unwrap();
    assert_eq!(
        (l.user.as_deref(), l.database.as_deref()),
        (Some("olduser"), Some("clinic"))
    );
    assert!(l.credentials_redacted);
    assert_eq!(p[0].1.as_ref().unwrap().status, Status::Ok);
    assert_eq!(p[1].0.sql.as_deref(), Some("SELECT 1"));
    assert!(!format!("{:?}", s.out).contains("OLDHASH"));
}

#[test]
fn cursor_execute_then_fetch() {
    let mut s = Session::logged_in(BASE_CAPS, 255);
    s.send(C, &prepare(b"SELECT a FROM t"));
    let mut r = vec![0x00];
    r.extend_from_slice(&5u32.to_le_bytes()); // statement id
    r.extend_from_slice(&1u16.to_le_bytes()); // 1 column
    r.extend_from_slice(&0u16.to_le_bytes()); // 0 params
    r.extend_from_slice(&[0, 0, 0]); // reserved, warnings
    let mut w = pkt(1, &r);
    w.extend(coldef(2));
    w.extend(eof(3, 2));
    s.send(S, &w);
    // COM_STMT_EXECUTE with flags CURSOR_TYPE_READ_ONLY (1): the response is the column
    // definitions and an EOF with SERVER_STATUS_CURSOR_EXISTS (0x40), no rows.
    let mut e = vec![0x17];
    e.extend_from_slice(&5u32.to_le_bytes());
    e.push(1);
    e.extend_from_slice(&1u32.to_le_bytes());
    s.send(C, &pkt(0, &e));
    let mut w = pkt(1, &[1]);
    w.extend(coldef(2));
    w.extend(eof(3, 0x0042));
    s.send(S, &w);
    // COM_STMT_FETCH: statement id, number of rows; binary rows then EOF.
    let mut f = vec![0x1c];
    f.extend_from_slice(&5u32.to_le_bytes());
    f.extend_from_slice(&100u32.to_le_bytes());
    s.send(C, &pkt(0, &f));
    let mut w = pkt(1, &[0x00, 0x00, 0x01, 0x61]);
    w.extend(pkt(2, &[0x00, 0x00, 0x01, 0x62]));
    w.extend(eof(3, 0x0082)); // SERVER_STATUS_LAST_ROW_SENT
    s.send(S, &w);
    let p = pairs(&s.out);
    let ops: Vec<_> = p
        .iter()
        .map(|(q, _)| q.op.as_ref().unwrap().as_str().to_string())
        .collect();
    assert_eq!(ops, vec!["prepare", "execute", "stmt_fetch"]);
    assert_eq!(p[1].1.as_ref().unwrap().rows, Some(0));
    assert_eq!(p[2].0.sql.as_deref(), Some("SELECT a FROM t"));
    assert_eq!(p[2].1.as_ref().unwrap().rows, Some(2));
}

#[test]
fn result_without_metadata() {
    // MySQL CLIENT_OPTIONAL_RESULTSET_METADATA: column count followed by metadata_follows = 0
    // (RESULTSET_METADATA_NONE): no column definitions, no EOF; rows, then the terminator.
    let caps = BASE_CAPS | (Caps::OPTIONAL_RESULTSET_METADATA | Caps::DEPRECATE_EOF) as u32;
    let mut s = Session::logged_in(caps, 255);
    s.send(C, &query(b"SELECT a FROM t"));
    let mut w = pkt(1, &[1, 0]);
    w.extend(pkt(2, b"\x011"));
    w.extend(pkt(3, b"\x012"));
    w.extend(pkt(4, b"\x013"));
    w.extend(pkt(5, b"\xfe\x00\x00\x02\x00\x00\x00"));
    s.send(S, &w);
    let p = pairs(&s.out);
    assert_eq!(p[0].1.as_ref().unwrap().rows, Some(3));
}

#[test]
fn change_user_and_reset_connection_forget_prepared_statements() {
    let mut s = Session::logged_in(BASE_CAPS, 255);
    s.send(C, &prepare(b"SELECT 1"));
    s.send(S, &prepare_ok(1, 0));
    assert_eq!(s.p.cached_statements(), 1);
    s.send(C, &pkt(0, &[0x1f])); // COM_RESET_CONNECTION
    s.send(S, &ok(1, 0, 2));
    assert_eq!(s.p.cached_statements(), 0);
    s.send(C, &prepare(b"SELECT 2"));
    s.send(S, &prepare_ok(2, 0));
    // COM_CHANGE_USER: user<NUL>, auth length + data, database<NUL>, collation int<2>,
    // plugin<NUL>.
    let mut b = vec![0x11];
    b.extend_from_slice(b"doctor\0");
    b.push(20);
    b.extend_from_slice(SECRET);
    b.extend_from_slice(b"ward9\0");
    b.extend_from_slice(&28u16.to_le_bytes()); // gbk_chinese_ci
    b.extend_from_slice(b"mysql_native_password\0");
    s.send(C, &pkt(0, &b));
    s.send(S, &ok(1, 0, 2));
    assert_eq!(s.p.cached_statements(), 0);
    s.send(C, &query(b"SELECT '\xbb\xbc\xd5\xdf'"));
    s.send(S, &ok(1, 0, 2));
    let p = pairs(&s.out);
    let cu = &p[3];
    assert_eq!(cu.0.op.as_ref().unwrap().as_str(), "change_user");
    let l = cu.0.login.as_ref().unwrap();
    assert_eq!(
        (l.user.as_deref(), l.database.as_deref()),
        (Some("doctor"), Some("ward9"))
    );
    assert!(l.credentials_redacted);
    assert_eq!(p[4].0.sql.as_deref(), Some("SELECT '患者'"));
    assert!(!format!("{:?}", s.out).contains("S3CR3T"));
}

#[test]
fn mariadb_statement_id_minus_one_is_the_last_prepared() {
    let mut s = Session::logged_in(BASE_CAPS, 255);
    s.send(C, &prepare(b"SELECT ?"));
    s.send(S, &prepare_ok(12, 1));
    let v = 7u32.to_le_bytes();
    s.send(C, &execute(u32::MAX, &[0], Some(&[(0x03, 0)]), &v));
    s.send(S, &ok(1, 0, 2));
    let p = pairs(&s.out);
    assert_eq!(p[1].0.stmt_id, Some(12));
    assert_eq!(p[1].0.sql.as_deref(), Some("SELECT ?"));
    assert_eq!(p[1].0.params.as_ref().unwrap()[0].value, ParamValue::Int(7));
}

#[test]
fn gap_in_the_middle_of_rows_keeps_what_was_seen() {
    let mut s = Session::logged_in(BASE_CAPS, 255);
    s.send(C, &query(b"SELECT a FROM t"));
    let rs = resultset(1, 10, 2);
    // Header packets (column count 5 bytes, definition, EOF) and 3 rows (6 bytes each),
    // then the rest of the response is lost with more.
    let head = 5 + coldef(2).len() + 9 + 3 * 6;
    s.send(S, &rs[..head]);
    s.gap(S, 1000);
    let p = pairs(&s.out);
    assert_eq!(p.len(), 1);
    let r = p[0].1.as_ref().unwrap();
    assert_eq!(r.rows, Some(3));
    assert_eq!(r.completeness, Completeness::Partial { lost_bytes: 1000 });
    assert!(s.out.contains(&DbEvent::Desync {
        dir: S,
        lost_bytes: 1000
    }));
}

#[test]
fn pipelined_prepare_and_execute_minus_one() {
    // MariaDB Connector/J 3 sends COM_STMT_PREPARE and COM_STMT_EXECUTE(-1) in one write, then
    // reads both responses.
    let mut s = Session::logged_in(BASE_CAPS, 255);
    let mut w = prepare(b"SELECT ? + 1");
    w.extend(execute(
        u32::MAX,
        &[0],
        Some(&[(0x08, 0)]),
        &41u64.to_le_bytes(),
    ));
    s.send(C, &w);
    let mut r = prepare_ok(3, 1);
    r.extend(resultset(1, 1, 2));
    s.send(S, &r);
    let p = pairs(&s.out);
    assert_eq!(p.len(), 2);
    assert_eq!(p[0].0.op.as_ref().unwrap().as_str(), "prepare");
    assert_eq!(p[0].1.as_ref().unwrap().stmt_id, Some(3));
    let (ex, er) = &p[1];
    assert_eq!(ex.op.as_ref().unwrap().as_str(), "execute");
    assert_eq!(ex.sql.as_deref(), Some("SELECT ? + 1"));
    assert_eq!(ex.stmt_id, Some(3));
    assert_eq!(ex.params.as_ref().unwrap()[0].value, ParamValue::Int(41));
    assert_eq!(er.as_ref().unwrap().rows, Some(1));
    assert!(!s.out.iter().any(|e| matches!(e, DbEvent::Anomaly { .. })));
}

#[test]
fn pipelined_queue_is_bounded() {
    let limits = Limits {
        max_pending_requests: 2,
        ..Limits::default()
    };
    let mut s = Session::new(limits, false);
    s.send(S, &greeting(BASE_CAPS));
    s.send(C, &login(BASE_CAPS, 255, "nurse"));
    s.send(S, &ok(2, 0, 2));
    s.out.clear();
    let mut w = Vec::new();
    for i in 0..5 {
        w.extend(query(format!("SELECT {i}").as_bytes()));
    }
    s.send(C, &w);
    // The oldest requests beyond the bound are given up (no response), the rest wait.
    let given_up = pairs(&s.out);
    assert_eq!(given_up.len(), 2);
    assert!(given_up.iter().all(|(_, r)| r.is_none()));
    for _ in 0..3 {
        s.send(S, &ok(1, 0, 2));
    }
    let p = pairs(&s.out);
    assert_eq!(p.len(), 5);
    assert_eq!(p[4].0.sql.as_deref(), Some("SELECT 4"));
    assert!(p[4].1.is_some());
}

/// A result set of 20 000 rows of 12 pseudo-random letters each (one column, EOF packets):
/// about 340 KB that compresses poorly, so that its compressed frame exceeds 64 KiB.
fn poorly_compressible_resultset() -> Vec<u8> {
    let mut rs = pkt(1, &[1]);
    rs.extend(coldef(2));
    rs.extend(eof(3, 0));
    let mut seq = 3u8;
    let mut x = 12345u32;
    for _ in 0..20_000 {
        seq = seq.wrapping_add(1);
        let mut row = vec![12u8];
        for _ in 0..12 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            row.push(b'a' + (x >> 24) as u8 % 26);
        }
        rs.extend(pkt(seq, &row));
    }
    rs.extend(eof(seq.wrapping_add(1), 2));
    rs
}

#[test]
fn compressed_frames_larger_than_the_message_limit_stream_past() {
    let limits = Limits {
        max_message_len: 64 * 1024,
        max_statement_len: 1000,
        ..Limits::default()
    };
    let caps = BASE_CAPS | Caps::COMPRESS as u32;
    let mut s = Session::new(limits.clone(), false);
    s.send(S, &greeting(caps));
    s.send(C, &login(caps, 255, "nurse"));
    s.send(S, &ok(2, 0, 2));
    // A 200 000-byte query in one stored frame (uncompressed length 0).
    let mut text = b"INSERT INTO notes VALUES ('".to_vec();
    text.resize(200_000, b'n');
    let q = query(&text);
    for c in frame(0, 0, &q).chunks(4096) {
        s.send(C, c);
    }
    // 20 000 rows of poorly compressible bytes in one zlib frame (> 64 KiB compressed).
    let rs = poorly_compressible_resultset();
    let z = zlib(&rs);
    assert!(z.len() > limits.max_message_len);
    for c in frame(1, rs.len(), &z).chunks(1500) {
        s.send(S, c);
    }
    let p = pairs(&s.out);
    assert_eq!(p.len(), 2);
    assert_eq!(p[1].0.sql.as_ref().unwrap().len(), 1000);
    assert!(matches!(
        p[1].0.completeness,
        Completeness::Truncated { kept: 1000, .. }
    ));
    let r = p[1].1.as_ref().unwrap();
    assert_eq!((r.status, r.rows), (Status::Ok, Some(20_000)));
    assert!(s.d.buffered() <= limits.max_message_len + 4096);
    assert!(s.p.buffered() <= dbtap_mysql::parser::max_inner_buffer(&limits));
    // A gap inside such a frame: the frame's rest is skipped, the inner stream resyncs at the
    // next frame.
    s.send(C, &frame(0, 0, &query(b"SELECT a FROM t")));
    let f = frame(1, rs.len(), &z);
    s.send(S, &f[..20_000]);
    s.gap(S, 1000);
    s.send(S, &f[21_000..]);
    s.send(C, &frame(0, 0, &query(b"SELECT 2")));
    s.send(S, &frame(1, 0, &ok(1, 0, 2)));
    let p = pairs(&s.out);
    assert_eq!(p[2].0.sql.as_deref(), Some("SELECT a FROM t"));
    assert!(matches!(
        p[2].1.as_ref().unwrap().completeness,
        Completeness::Partial { .. }
    ));
    assert_eq!(p[3].0.sql.as_deref(), Some("SELECT 2"));
    assert_eq!(p[3].1.as_ref().unwrap().status, Status::Ok);
}

#[test]
fn reference_examples_query_attributes_and_err() {
    // The COM_QUERY example of the MySQL reference ("COM_QUERY" page), with query attributes.
    // The reference prints the length as 21 00 00 (33), but its payload is 43 bytes (11 of
    // attributes + 32 of text); the header here is corrected to 2b 00 00.
    // 2b 00 00  length 43
    // 00        sequence id
    // 03        COM_QUERY
    // 01        parameter_count 1
    // 01        parameter_set_count 1
    // 00        null_bitmap
    // 01        new_params_bind_flag
    // fe 00     param_type_and_flag: MYSQL_TYPE_STRING, signed
    // 01 61     parameter name "a"
    // 01 31     value "1" (string<lenenc>)
    // …         "select @@version_comment limit 1"
    let q = common::unhex(
        "2b000000 03 01 01 00 01 fe00 0161 0131
         73656c656374204040766572 73696f6e5f636f6d6d656e74206c696d69742031",
    );
    let caps = BASE_CAPS | Caps::QUERY_ATTRIBUTES as u32;
    let mut s = Session::logged_in(caps, 255);
    s.send(C, &q);
    // The ERR example of the reference ("ERR_Packet" page):
    // 17 00 00 01  length 23, sequence id 1
    // ff           ERR header
    // 48 04        error code 1096
    // 23           SQL state marker '#'
    // 48 59 30 30 30  SQL state "HY000"
    // …            "No tables used"
    s.send(
        S,
        &common::unhex("17000001 ff 4804 23 4859303030 4e6f207461626c65732075736564"),
    );
    let p = pairs(&s.out);
    assert_eq!(
        p[0].0.sql.as_deref(),
        Some("select @@version_comment limit 1")
    );
    assert_eq!(p[0].0.attributes, vec![("a".into(), "1".to_string())]);
    assert_eq!(p[0].0.bytes, 47);
    let e = p[0].1.as_ref().unwrap().error.clone().unwrap();
    assert_eq!(e.code, dbtap_core::ErrorCode::Num(1096));
    assert_eq!(e.sqlstate.as_deref(), Some("HY000"));
    assert_eq!(e.message, "No tables used");
    // The OK example ("OK_Packet" page): 07 00 00 02 | 00 00 00 02 00 00 00 — 0 affected rows,
    // last insert id 0, SERVER_STATUS_AUTOCOMMIT, 0 warnings.
    s.send(C, &query(b"DO 1"));
    s.send(S, &common::unhex("07000001 00 00 00 0200 0000"));
    let p = pairs(&s.out);
    let r = p[1].1.as_ref().unwrap();
    assert_eq!(
        (r.status, r.rows, r.insert_id, r.warnings, r.bytes),
        (Status::Ok, Some(0), Some(0), Some(0), 11)
    );
}

#[test]
fn too_many_params_are_cut_and_counted() {
    let limits = Limits {
        max_params: 2,
        max_param_len: 3,
        ..Limits::default()
    };
    let mut s = Session::new(limits, false);
    s.send(S, &greeting(BASE_CAPS));
    s.send(C, &login(BASE_CAPS, 255, "nurse"));
    s.send(S, &ok(2, 0, 2));
    s.send(C, &prepare(b"SELECT ?, ?, ?"));
    s.send(S, &prepare_ok(1, 3));
    // Three VAR_STRING values "abcdef", "x", "y".
    s.send(
        C,
        &execute(
            1,
            &[0],
            Some(&[(0xfd, 0), (0xfd, 0), (0xfd, 0)]),
            b"\x06abcdef\x01x\x01y",
        ),
    );
    s.send(S, &ok(1, 0, 2));
    let p = pairs(&s.out);
    let params = p[2].0.params.as_ref().unwrap();
    assert_eq!(params.len(), 2);
    assert_eq!(
        (&params[0].value, params[0].truncated),
        (&ParamValue::Text("abc".into()), true)
    );
    assert_eq!(
        (&params[1].value, params[1].truncated),
        (&ParamValue::Text("x".into()), false)
    );
    assert!(s.out.contains(&DbEvent::Anomaly {
        dir: C,
        kind: "over_limit"
    }));
}

#[test]
fn small_commands_and_their_responses() {
    let caps = BASE_CAPS | Caps::MULTI_STATEMENTS as u32;
    let mut s = Session::logged_in(caps, 255);
    s.send(C, &pkt(0, &[0x0e])); // COM_PING → OK
    s.send(S, &ok(1, 0, 2));
    s.send(C, &pkt(0, &[0x09])); // COM_STATISTICS → a string packet
    s.send(S, &pkt(1, b"Uptime: 42  Threads: 1  Questions: 7"));
    s.send(C, &pkt(0, b"\x04nosuch\0")); // COM_FIELD_LIST → ERR 1146
    s.send(
        S,
        &pkt(1, b"\xff\x7a\x04#42S02Table 'd.nosuch' doesn't exist"),
    );
    s.send(C, &pkt(0, &[0x0c, 7, 0, 0, 0])); // COM_PROCESS_KILL 7
    s.send(S, &ok(1, 0, 2));
    s.send(C, &pkt(0, &[0x0d])); // COM_DEBUG → EOF
    s.send(S, &eof(1, 2));
    s.send(C, &pkt(0, &[0x42, 1, 2])); // unknown command → ERR 1047
    s.send(S, &pkt(1, b"\xff\x17\x04#08S01Unknown command"));
    s.send(C, &pkt(0, &[0x1b, 1, 0])); // COM_SET_OPTION MULTI_STATEMENTS_OFF
    s.send(S, &eof(1, 2));
    s.send(C, &query(b"SELECT 1; SELECT 2")); // no longer split
    s.send(S, &ok(1, 0, 2));
    s.send(C, &pkt(0, &[0x01])); // COM_QUIT
    let p = pairs(&s.out);
    let got: Vec<(String, Option<Status>)> = p
        .iter()
        .map(|(q, r)| {
            (
                q.op.as_ref().unwrap().as_str().to_string(),
                r.as_ref().map(|r| r.status),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("ping".into(), Some(Status::Ok)),
            ("statistics".into(), Some(Status::Ok)),
            ("field_list".into(), Some(Status::Error)),
            ("process_kill".into(), Some(Status::Ok)),
            ("debug".into(), Some(Status::Ok)),
            ("unknown_0x42".into(), Some(Status::Error)),
            ("set_option".into(), Some(Status::Ok)),
            ("query".into(), Some(Status::Ok)),
            ("logout".into(), None),
        ]
    );
    assert_eq!(p[2].0.sql.as_deref(), Some("nosuch"));
    assert_eq!(
        p[3].0.attributes,
        vec![("connection_id".into(), "7".into())]
    );
    assert_eq!(p[7].0.sql.as_deref(), Some("SELECT 1; SELECT 2"));
    assert!(s.out.contains(&DbEvent::Anomaly {
        dir: C,
        kind: "unknown_command"
    }));
}

#[test]
fn mariadb_cache_metadata_without_deprecate_eof_keeps_the_eof() {
    // MariaDB client with MARIADB_CLIENT_CACHE_METADATA but not CLIENT_DEPRECATE_EOF
    // (libmariadb under sysbench): the execute result is a column count followed by
    // metadata_follows = 0, no column definitions, *still* an EOF, binary rows, and an EOF.
    // Bytes as captured from MariaDB 10.11 (fixtures/mysql/mariadb_sysbench_prepared):
    // 02 00 00 01 | 01 00          column count 1, metadata_follows 0
    // 05 00 00 02 | fe 00 00 03 00 EOF (warnings 0, status 0x0003)
    // .. 00 00 03 | 00 00 <lenenc string>  binary row: header 0x00, NULL bitmap, value
    let mut s = Session::logged_in(BASE_CAPS, 255);
    s.send(
        C,
        &prepare(b"SELECT c FROM sbtest1 WHERE id BETWEEN ? AND ?"),
    );
    s.send(S, &prepare_ok(7, 2));
    let v = [1u64.to_le_bytes(), 100u64.to_le_bytes()].concat();
    s.send(C, &execute(7, &[0], Some(&[(0x08, 0), (0x08, 0)]), &v));
    let mut w = pkt(1, &[1, 0]);
    w.extend(pkt(2, b"\xfe\x00\x00\x03\x00"));
    let mut seq = 3u8;
    for row in [&b"alpha"[..], b"beta", b"gamma"] {
        let mut body = vec![0x00, 0x00, row.len() as u8];
        body.extend_from_slice(row);
        w.extend(pkt(seq, &body));
        seq += 1;
    }
    w.extend(pkt(seq, b"\xfe\x00\x00\x02\x00"));
    s.send(S, &w);
    let p = pairs(&s.out);
    assert_eq!(p.len(), 2);
    assert_eq!(p[1].0.op.as_ref().unwrap().as_str(), "execute");
    let r = p[1].1.as_ref().unwrap();
    assert_eq!(r.rows, Some(3));
    assert_eq!(r.status, dbtap_core::Status::Ok);
    assert!(
        !s.out.iter().any(|e| matches!(e, DbEvent::Anomaly { .. })),
        "{:?}",
        s.out
    );
}

#[test]
fn memory_reported_follows_requests_waiting_for_their_response() {
    use dbtap_core::StreamParser;
    let mut s = Session::logged_in(BASE_CAPS, 255);
    let idle = s.p.mem_usage();
    // Pipelined (or a capture missing the server's side): requests wait in the queue.
    let text = "SELECT name FROM patients WHERE ward = 'ICU'";
    for _ in 0..5 {
        s.send(C, &query(text.as_bytes()));
    }
    let waiting = s.p.mem_usage();
    assert!(waiting >= idle + 5 * text.len(), "{idle} -> {waiting}");
    // Each answer releases one; the last answered leaves the parser as it was.
    for _ in 0..5 {
        s.send(S, &ok(1, 0, 2));
    }
    assert_eq!(s.p.mem_usage(), idle);
    assert_eq!(pairs(&s.out).len(), 5);
}

#[test]
fn a_capture_of_the_client_side_only_still_records_every_command() {
    // One direction mirrored: no greeting, no OK. The client's HandshakeResponse (sequence 1)
    // starts the login; its next packet has sequence 0, which only a command has ("reset to 0
    // when a new command begins in the Command Phase").
    let mut s = Session::new(Limits::default(), false);
    s.send(C, &login(BASE_CAPS, 45, "nurse"));
    s.send(C, &query(b"SELECT name FROM patients"));
    s.send(C, &query(b"DELETE FROM audit_log"));
    s.end();
    let p = pairs(&s.out);
    let ops: Vec<_> = p
        .iter()
        .map(|(q, r)| {
            (
                q.op.as_ref().unwrap().as_str(),
                q.sql.as_deref(),
                r.is_some(),
            )
        })
        .collect();
    assert_eq!(
        ops,
        [
            ("login", None, false),
            ("query", Some("SELECT name FROM patients"), false),
            ("query", Some("DELETE FROM audit_log"), false),
        ]
    );
    // The session carries the user the login named.
    let user = s.out.iter().find_map(|e| match e {
        DbEvent::Session(u) => u.user.clone(),
        _ => None,
    });
    assert_eq!(user.as_deref(), Some("nurse"));
    // The auth response never reaches an event.
    assert!(!format!("{:?}", s.out).contains(&format!("{:?}", SECRET)));
}

/// An application that prepares a statement per query and never closes it: once the cache is
/// full (`max_prepared_statements`), every prepare evicts the least recently used one. Timing,
/// not a unit test: `cargo test --release -p dbtap-mysql --test vectors -- --ignored
/// leaking_prepares --nocapture`.
#[test]
#[ignore]
fn leaking_prepares_throughput() {
    let mut s = Session::logged_in(BASE_CAPS, 45);
    let n = 100_000u32;
    let reqs: Vec<(Vec<u8>, Vec<u8>)> = (1..=n)
        .map(|id| {
            (
                prepare(format!("SELECT name FROM patients WHERE id = {id}").as_bytes()),
                prepare_ok(id, 0),
            )
        })
        .collect();
    let t = std::time::Instant::now();
    for (q, a) in &reqs {
        s.send(C, q);
        s.send(S, a);
    }
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(
        s.p.cached_statements(),
        Limits::default().max_prepared_statements
    );
    println!(
        "{n} prepares, cache of {}: {secs:.3} s, {:.0} prepares/s",
        Limits::default().max_prepared_statements,
        f64::from(n) / secs
    );
}
