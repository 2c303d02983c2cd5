//! Spec-true TDS conversations, built from the MS-TDS message and token grammars (sections
//! quoted at each builder). Shared by the crate's tests and by the `tds_synth` example that
//! writes them as pcap files for the golden fixtures.
#![allow(dead_code, clippy::vec_init_then_push)]

use dbtap_core::Direction;

/// One conversation: byte runs in the order they travel.
pub type Conversation = Vec<(Direction, Vec<u8>)>;

pub const C: Direction = Direction::ToServer;
pub const S: Direction = Direction::ToClient;

/// UTF-16LE.
pub fn u16s(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|c| c.to_le_bytes()).collect()
}

/// B_VARCHAR (MS-TDS 2.2.5.1.3): character count (1 byte) + UTF-16LE.
pub fn b_varchar(s: &str) -> Vec<u8> {
    let mut v = vec![s.encode_utf16().count() as u8];
    v.extend(u16s(s));
    v
}

/// US_VARCHAR: character count (2 bytes) + UTF-16LE.
pub fn us_varchar(s: &str) -> Vec<u8> {
    let mut v = (s.encode_utf16().count() as u16).to_le_bytes().to_vec();
    v.extend(u16s(s));
    v
}

/// Split a message into packets of at most `size` bytes (MS-TDS 2.2.3.1: 8-byte header, the
/// last packet has status EOM, packet ids count from 1).
/// The server's answer to the last request: `tokens` in 4096-byte packets of [`SPID`].
fn server_sends(conv: &mut Conversation, tokens: &[Vec<u8>]) {
    conv.push((S, packets(0x04, &tokens.concat(), 4096, SPID)));
}

/// A server message of packet type `ty` before the login gave the session its SPID (PRELOGIN
/// answers, the TLS handshake, login failures), in 4096-byte packets.
fn server_sends_before_login(conv: &mut Conversation, ty: u8, msg: &[u8]) {
    conv.push((S, packets(ty, msg, 4096, 0)));
}

/// A client message of packet type `ty` in 4096-byte packets.
fn client_sends(conv: &mut Conversation, ty: u8, msg: &[u8]) {
    conv.push((C, packets(ty, msg, 4096, 0)));
}

pub fn packets(ty: u8, msg: &[u8], size: usize, spid: u16) -> Vec<u8> {
    let room = size - 8;
    let chunks: Vec<&[u8]> = if msg.is_empty() {
        vec![&[][..]]
    } else {
        msg.chunks(room).collect()
    };
    let mut out = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        out.push(ty);
        out.push(if last { 0x01 } else { 0x00 });
        out.extend_from_slice(&((c.len() + 8) as u16).to_be_bytes());
        out.extend_from_slice(&spid.to_be_bytes());
        out.push((i + 1) as u8);
        out.push(0);
        out.extend_from_slice(c);
    }
    out
}

/// PRELOGIN option table (MS-TDS 2.2.6.5): VERSION, ENCRYPTION, INSTOPT, THREADID, MARS.
pub fn prelogin(version: [u8; 6], encryption: u8, mars: bool) -> Vec<u8> {
    let data: Vec<Vec<u8>> = vec![
        version.to_vec(),
        vec![encryption],
        vec![0],
        vec![0, 0, 0x12, 0x34],
        vec![mars as u8],
    ];
    let table_len = data.len() * 5 + 1;
    let mut head = Vec::new();
    let mut body = Vec::new();
    for (token, d) in data.iter().enumerate() {
        head.push(token as u8);
        head.extend_from_slice(&((table_len + body.len()) as u16).to_be_bytes());
        head.extend_from_slice(&(d.len() as u16).to_be_bytes());
        body.extend_from_slice(d);
    }
    head.push(0xFF);
    head.extend(body);
    head
}

/// LOGIN7 (MS-TDS 2.2.6.4), TDS 7.4, with a password obfuscated as the spec says.
pub fn login7(user: &str, password: &str, app: &str, db: &str, sspi: &[u8]) -> Vec<u8> {
    login7_ext(user, password, app, db, sspi, &[])
}

/// FeatureExt option (MS-TDS 2.2.6.4): FeatureId, FeatureDataLen (DWORD), FeatureData.
pub fn feature(id: u8, data: &[u8]) -> Vec<u8> {
    let mut v = vec![id];
    v.extend_from_slice(&(data.len() as u32).to_le_bytes());
    v.extend_from_slice(data);
    v
}

/// LOGIN7 with a FeatureExt block of `features` (each from [`feature`]; the 0xFF terminator
/// is added): OptionFlags3 fExtension, and ibExtension / cbExtension pointing at a DWORD that
/// holds the offset of the block, which goes last.
pub fn login7_ext(
    user: &str,
    password: &str,
    app: &str,
    db: &str,
    sspi: &[u8],
    features: &[u8],
) -> Vec<u8> {
    login7_of_version(0x7400_0004, user, password, app, db, sspi, features)
}

/// LOGIN7 of TDSVersion `version`: before TDS 7.2 the fixed part ends after ibAtchDBFile /
/// cchAtchDBFile (86 bytes: no ibChangePassword / cchChangePassword / cbSSPILong, 2.2.6.4).
pub fn login7_of_version(
    version: u32,
    user: &str,
    password: &str,
    app: &str,
    db: &str,
    sspi: &[u8],
    features: &[u8],
) -> Vec<u8> {
    let v72 = version >= 0x7200_0000;
    let fixed: usize = if v72 { 94 } else { 86 };
    let pw: Vec<u8> = u16s(password)
        .iter()
        .map(|b| b.rotate_left(4) ^ 0xA5)
        .collect();
    let strings: [Vec<u8>; 9] = [
        u16s("WARD-PC-07"),
        u16s(user),
        pw,
        u16s(app),
        u16s("his-db01"),
        // ibExtension: a DWORD, the offset of the FeatureExt block (patched below).
        if features.is_empty() {
            Vec::new()
        } else {
            vec![0; 4]
        },
        u16s("ODBC"),
        u16s("us_english"),
        u16s(db),
    ];
    let mut data = Vec::new();
    let mut pairs = Vec::new();
    for (i, s) in strings.iter().enumerate() {
        let count = if i == 5 { s.len() } else { s.len() / 2 };
        pairs.push(((fixed + data.len()) as u16, count as u16));
        data.extend_from_slice(s);
    }
    let sspi_off = (fixed + data.len()) as u16;
    data.extend_from_slice(sspi);
    if !features.is_empty() {
        let dword_at = pairs[5].0 as usize - fixed;
        let block_off = ((fixed + data.len()) as u32).to_le_bytes();
        data[dword_at..dword_at + 4].copy_from_slice(&block_off);
        data.extend_from_slice(features);
        data.push(0xFF);
    }
    let mut m = Vec::new();
    m.extend_from_slice(&((fixed + data.len()) as u32).to_le_bytes());
    m.extend_from_slice(&version.to_le_bytes());
    m.extend_from_slice(&4096u32.to_le_bytes());
    m.extend_from_slice(&0x0700_0000u32.to_le_bytes());
    m.extend_from_slice(&31337u32.to_le_bytes());
    m.extend_from_slice(&0u32.to_le_bytes());
    let flags2 = if sspi.is_empty() { 0x03 } else { 0x83 };
    let flags3 = if features.is_empty() { 0x00 } else { 0x10 }; // fExtension
    m.extend_from_slice(&[0xE0, flags2, 0x00, flags3]);
    m.extend_from_slice(&(-480i32).to_le_bytes());
    m.extend_from_slice(&0x0804u32.to_le_bytes());
    for (o, l) in &pairs {
        m.extend_from_slice(&o.to_le_bytes());
        m.extend_from_slice(&l.to_le_bytes());
    }
    m.extend_from_slice(&[0x00, 0x50, 0x56, 0x9a, 0x01, 0x02]);
    m.extend_from_slice(&sspi_off.to_le_bytes());
    m.extend_from_slice(&(sspi.len() as u16).to_le_bytes());
    m.extend_from_slice(&[0; 4]); // AtchDBFile
    if v72 {
        m.extend_from_slice(&[0; 4]); // ChangePassword
        m.extend_from_slice(&0u32.to_le_bytes()); // cbSSPILong
    }
    assert_eq!(m.len(), fixed);
    m.extend(data);
    m
}

/// ALL_HEADERS with a transaction descriptor (MS-TDS 2.2.5.3.2), outstanding requests 1.
pub fn all_headers() -> Vec<u8> {
    let mut v = 22u32.to_le_bytes().to_vec();
    v.extend_from_slice(&18u32.to_le_bytes());
    v.extend_from_slice(&2u16.to_le_bytes());
    v.extend_from_slice(&[0; 8]);
    v.extend_from_slice(&1u32.to_le_bytes());
    v
}

/// SQL batch message (MS-TDS 2.2.6.7): ALL_HEADERS, UTF-16LE text.
pub fn sql_batch(text: &str) -> Vec<u8> {
    let mut v = all_headers();
    v.extend(u16s(text));
    v
}

/// A collation (MS-TDS 2.2.5.1.2): Chinese_PRC_CI_AS (LCID 0x0804, IgnoreCase... SortId 0).
pub const CHINESE_PRC: [u8; 5] = [0x04, 0x08, 0xD0, 0x00, 0x00];
/// SQL_Latin1_General_CP1_CI_AS.
pub const LATIN1: [u8; 5] = [0x09, 0x04, 0xD0, 0x00, 0x34];

/// One typed value: TYPE_INFO bytes (parameter form), value bytes (TYPE_VARBYTE).
pub struct Typed {
    pub type_info: Vec<u8>,
    pub value: Vec<u8>,
}

/// TYPE_INFO of a USHORTLEN character type (2.2.5.4.3): type, max length, collation.
fn char_info(ty: u8, max_len: u16, collation: [u8; 5]) -> Vec<u8> {
    let mut ti = vec![ty];
    ti.extend_from_slice(&max_len.to_le_bytes());
    ti.extend_from_slice(&collation);
    ti
}

/// TYPE_INFO of TEXT / NTEXT / IMAGE in an RPC (2.2.5.4.2): type, LONGLEN max length, and the
/// collation of the character ones.
fn text_info(ty: u8, max_len: u32, collation: Option<[u8; 5]>) -> Vec<u8> {
    let mut ti = vec![ty];
    ti.extend_from_slice(&max_len.to_le_bytes());
    ti.extend_from_slice(collation.as_ref().map_or(&[][..], |c| &c[..]));
    ti
}

fn t(type_info: Vec<u8>, value: Vec<u8>) -> Typed {
    Typed { type_info, value }
}

fn plp(data: &[u8], chunk: usize) -> Vec<u8> {
    let mut v = (data.len() as u64).to_le_bytes().to_vec();
    for c in data.chunks(chunk.max(1)) {
        v.extend_from_slice(&(c.len() as u32).to_le_bytes());
        v.extend_from_slice(c);
    }
    v.extend_from_slice(&0u32.to_le_bytes());
    v
}

fn ushort(data: &[u8]) -> Vec<u8> {
    let mut v = (data.len() as u16).to_le_bytes().to_vec();
    v.extend_from_slice(data);
    v
}

fn nvarchar(s: &str) -> Typed {
    let mut ti = vec![0xE7];
    ti.extend_from_slice(&8000u16.to_le_bytes());
    ti.extend_from_slice(&LATIN1);
    t(ti, ushort(&u16s(s)))
}

/// Every parameter type the parser decodes (MS-TDS 2.2.5.4, 2.2.5.5), with its expected
/// rendering: (name, value, type name, expected JSON value text).
pub fn every_param() -> Vec<(&'static str, Typed, &'static str, &'static str)> {
    let dt2 = {
        // DATETIME2(7) 2024-02-29 08:30:00.1234567: time 305,001,234,567 (100 ns), 5 bytes.
        let units: u64 = (8 * 3600 + 30 * 60) * 10_000_000 + 1_234_567;
        let mut v = vec![8];
        v.extend_from_slice(&units.to_le_bytes()[..5]);
        v.extend_from_slice(&[0x80, 0x46, 0x0B]);
        v
    };
    let dto = {
        // DATETIMEOFFSET(0) 2024-02-29 23:30:00 UTC at +08:00.
        let secs: u32 = 23 * 3600 + 30 * 60;
        let mut v = vec![8];
        v.extend_from_slice(&secs.to_le_bytes()[..3]);
        v.extend_from_slice(&[0x80, 0x46, 0x0B]);
        v.extend_from_slice(&480i16.to_le_bytes());
        v
    };
    vec![
        ("@tiny", t(vec![0x26, 1], vec![1, 200]), "tinyint", "200"),
        (
            "@small",
            t(vec![0x26, 2], vec![2, 0x18, 0xFC]),
            "smallint",
            "-1000",
        ),
        (
            "@int",
            t(vec![0x26, 4], vec![4, 0x40, 0xE2, 0x01, 0x00]),
            "int",
            "123456",
        ),
        (
            "@big",
            t(vec![0x26, 8], {
                let mut v = vec![8];
                v.extend_from_slice(&(-9_000_000_000i64).to_le_bytes());
                v
            }),
            "bigint",
            "-9000000000",
        ),
        ("@int_null", t(vec![0x26, 4], vec![0]), "int", "null"),
        ("@bit", t(vec![0x68, 1], vec![1, 1]), "bit", "true"),
        (
            "@real",
            t(vec![0x6D, 4], {
                let mut v = vec![4];
                v.extend_from_slice(&2.5f32.to_le_bytes());
                v
            }),
            "real",
            "2.5",
        ),
        (
            "@float",
            t(vec![0x6D, 8], {
                let mut v = vec![8];
                v.extend_from_slice(&(-0.125f64).to_le_bytes());
                v
            }),
            "float",
            "-0.125",
        ),
        (
            "@dec",
            t(vec![0x6A, 9, 18, 4], {
                // DECIMAL(18,4) 12345.6789 = 123456789 = 0x075BCD15, positive.
                let mut v = vec![9, 1];
                v.extend_from_slice(&123_456_789u64.to_le_bytes());
                v
            }),
            "decimal",
            "\"12345.6789\"",
        ),
        (
            "@num",
            t(vec![0x6C, 5, 9, 2], vec![5, 0, 0x39, 0x30, 0, 0]),
            "numeric",
            "\"-123.45\"",
        ),
        (
            "@money",
            t(vec![0x6E, 8], vec![8, 0, 0, 0, 0, 0x40, 0xE2, 0x01, 0]),
            "money",
            "\"12.3456\"",
        ),
        (
            "@smallmoney",
            t(vec![0x6E, 4], {
                let mut v = vec![4];
                v.extend_from_slice(&(-15000i32).to_le_bytes());
                v
            }),
            "smallmoney",
            "\"-1.5000\"",
        ),
        ("@nvc", nvarchar("患者 José"), "nvarchar", "\"患者 José\""),
        (
            "@vc_gbk",
            t(
                char_info(0xA7, 100, CHINESE_PRC),
                ushort(b"\xbb\xbc\xd5\xdf"),
            ),
            "varchar",
            "\"患者\"",
        ),
        (
            "@nchar",
            t(char_info(0xEF, 6, LATIN1), ushort(&u16s("abc"))),
            "nchar",
            "\"abc\"",
        ),
        (
            "@nvmax",
            t(
                char_info(0xE7, 0xFFFF, LATIN1),
                plp(&u16s("long text in two chunks"), 20),
            ),
            "nvarchar(max)",
            "\"long text in two chunks\"",
        ),
        (
            "@vbin",
            t(vec![0xA5, 0x10, 0x00], ushort(&[0xDE, 0xAD, 0xBE, 0xEF])),
            "varbinary",
            "hex:deadbeef",
        ),
        (
            "@vbmax",
            t(vec![0xA5, 0xFF, 0xFF], plp(&[1, 2, 3], 2)),
            "varbinary(max)",
            "hex:010203",
        ),
        (
            "@bin_null",
            t(vec![0xAD, 0x04, 0x00], vec![0xFF, 0xFF]),
            "binary",
            "null",
        ),
        (
            "@date",
            t(vec![0x28], vec![3, 0x80, 0x46, 0x0B]),
            "date",
            "\"2024-02-29\"",
        ),
        (
            "@time",
            t(vec![0x29, 3], vec![4, 0xF4, 0x2F, 0x93, 0x02]),
            "time",
            "\"12:00:00.500\"",
        ),
        (
            "@dt",
            t(vec![0x6F, 8], vec![8, 1, 0, 0, 0, 0x2C, 0x01, 0, 0]),
            "datetime",
            "\"1900-01-02 00:00:01.000\"",
        ),
        (
            "@sdt",
            t(vec![0x6F, 4], vec![4, 0, 0, 61, 0]),
            "smalldatetime",
            "\"1900-01-01 01:01:00\"",
        ),
        (
            "@dt2",
            t(vec![0x2A, 7], dt2),
            "datetime2",
            "\"2024-02-29 08:30:00.1234567\"",
        ),
        (
            "@dto",
            t(vec![0x2B, 0], dto),
            "datetimeoffset",
            "\"2024-03-01 07:30:00 +08:00\"",
        ),
        (
            "@guid",
            t(
                vec![0x24, 16],
                vec![
                    16, 0xFF, 0x19, 0x96, 0x6F, 0x86, 0x8B, 0x11, 0xD0, 0xB4, 0x2D, 0x00, 0xC0,
                    0x4F, 0xC9, 0x64, 0xFF,
                ],
            ),
            "uniqueidentifier",
            "\"6F9619FF-8B86-D011-B42D-00C04FC964FF\"",
        ),
        (
            "@xml",
            t(vec![0xF1, 0x00], plp(&u16s("<a>1</a>"), 64)),
            "xml",
            "\"<a>1</a>\"",
        ),
        (
            "@variant",
            t(
                vec![0x62, 0x10, 0x1F, 0x00, 0x00],
                vec![6, 0, 0, 0, 0x38, 0, 7, 0, 0, 0],
            ),
            "sql_variant",
            "7",
        ),
        (
            "@text",
            t(text_info(0x23, 0x7FFF_FFFF, Some(LATIN1)), {
                let mut v = 5u32.to_le_bytes().to_vec();
                v.extend_from_slice(b"notes");
                v
            }),
            "text",
            "\"notes\"",
        ),
        // Fixed-length INT4 (0x38: no length byte, 2.2.5.4.1), as JDBC sends an int.
        (
            "@int4",
            t(vec![0x38], (-5i32).to_le_bytes().to_vec()),
            "int",
            "-5",
        ),
        (
            "@bin",
            t(vec![0xAD, 0x04, 0x00], ushort(&[1, 2, 3, 4])),
            "binary",
            "hex:01020304",
        ),
        (
            "@char",
            t(char_info(0xAF, 5, LATIN1), ushort(b"ab   ")),
            "char",
            "\"ab   \"",
        ),
        (
            "@ntext",
            t(text_info(0x63, 0x7FFF_FFFE, Some(LATIN1)), {
                let u = u16s("病历");
                let mut v = (u.len() as u32).to_le_bytes().to_vec();
                v.extend(u);
                v
            }),
            "ntext",
            "\"病历\"",
        ),
        (
            "@image",
            t(text_info(0x22, 0x7FFF_FFFF, None), {
                let mut v = 2u32.to_le_bytes().to_vec();
                v.extend_from_slice(&[0xCA, 0xFE]);
                v
            }),
            "image",
            "hex:cafe",
        ),
        // UDT in an RPC (2.2.5.5.2: UDT_INFO of a parameter is DB_NAME, SCHEMA_NAME, TYPE_NAME;
        // the value is PLP).
        (
            "@udt",
            t(
                [
                    vec![0xF0],
                    b_varchar(""),
                    b_varchar("dbo"),
                    b_varchar("Point"),
                ]
                .concat(),
                plp(&[0x01, 0x0C, 0x00, 0x00], 4),
            ),
            "udt",
            "hex:010c0000",
        ),
    ]
}

/// One RPC (MS-TDS 2.2.6.6): ProcID or name, option flags 0, parameters.
pub fn rpc(proc: Result<u16, &str>, params: &[(&str, bool, &Typed)]) -> Vec<u8> {
    let mut v = Vec::new();
    match proc {
        Ok(id) => {
            v.extend_from_slice(&0xFFFFu16.to_le_bytes());
            v.extend_from_slice(&id.to_le_bytes());
        }
        Err(name) => {
            v.extend_from_slice(&(name.encode_utf16().count() as u16).to_le_bytes());
            v.extend(u16s(name));
        }
    }
    v.extend_from_slice(&0u16.to_le_bytes());
    for (name, output, p) in params {
        v.extend(b_varchar(name));
        v.push(*output as u8);
        v.extend_from_slice(&p.type_info);
        v.extend_from_slice(&p.value);
    }
    v
}

/// An RPC request message: ALL_HEADERS then RPCs separated by the TDS 7.2+ BatchFlag 0xFF.
pub fn rpc_message(rpcs: &[Vec<u8>]) -> Vec<u8> {
    let mut v = all_headers();
    for (i, r) in rpcs.iter().enumerate() {
        if i > 0 {
            v.push(0xFF);
        }
        v.extend_from_slice(r);
    }
    v
}

pub fn nv(s: &str) -> Typed {
    nvarchar(s)
}

pub fn int4(v: i32) -> Typed {
    let mut b = vec![4];
    b.extend_from_slice(&v.to_le_bytes());
    t(vec![0x26, 4], b)
}

pub fn int4_null() -> Typed {
    t(vec![0x26, 4], vec![0])
}

// ---------------------------------------------------------------- server tokens (MS-TDS 2.2.7)

fn with_len16(token: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![token];
    v.extend_from_slice(&(body.len() as u16).to_le_bytes());
    v.extend_from_slice(body);
    v
}

/// LOGINACK (2.2.7.14): interface 1 (SQL), TDS version big-endian, program name, version.
pub fn loginack(tds: u32, prog: &str, ver: [u8; 4]) -> Vec<u8> {
    let mut b = vec![1];
    b.extend_from_slice(&tds.to_be_bytes());
    b.extend(b_varchar(prog));
    b.extend_from_slice(&ver);
    with_len16(0xAD, &b)
}

/// ENVCHANGE (2.2.7.9) with B_VARCHAR values (database 1, language 2, packet size 4).
pub fn envchange_str(ty: u8, new: &str, old: &str) -> Vec<u8> {
    let mut b = vec![ty];
    b.extend(b_varchar(new));
    b.extend(b_varchar(old));
    with_len16(0xE3, &b)
}

/// ENVCHANGE type 7 (SQL collation), B_VARBYTE values.
pub fn envchange_collation(c: [u8; 5]) -> Vec<u8> {
    let mut b = vec![7, 5];
    b.extend_from_slice(&c);
    b.push(0);
    with_len16(0xE3, &b)
}

/// ENVCHANGE type 8 (begin transaction): new value the 8-byte descriptor, old value empty.
pub fn envchange_begin_tran() -> Vec<u8> {
    let mut b = vec![8, 8];
    b.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
    b.push(0);
    with_len16(0xE3, &b)
}

/// ERROR (2.2.7.10) or INFO (2.2.7.13), TDS 7.2+ (4-byte line number).
pub fn message(
    token: u8,
    number: i32,
    state: u8,
    class: u8,
    text: &str,
    proc: &str,
    line: u32,
) -> Vec<u8> {
    let mut b = number.to_le_bytes().to_vec();
    b.push(state);
    b.push(class);
    b.extend(us_varchar(text));
    b.extend(b_varchar("HISDB01"));
    b.extend(b_varchar(proc));
    b.extend_from_slice(&line.to_le_bytes());
    with_len16(token, &b)
}

/// The end of a procedure call's answer: DONEINPROC (DONE_MORE | DONE_COUNT) with `rows`,
/// RETURNSTATUS 0, DONEPROC (final) — 2.2.7.7, 2.2.7.17, 2.2.7.8.
pub fn procedure_done(rows: u64) -> [Vec<u8>; 3] {
    [
        done(0xFF, 0x0011, rows),
        returnstatus(0),
        done(0xFE, 0x0000, 0),
    ]
}

/// DONE / DONEPROC / DONEINPROC (2.2.7.6): status, current command, 8-byte row count.
pub fn done(token: u8, status: u16, count: u64) -> Vec<u8> {
    let mut v = vec![token];
    v.extend_from_slice(&status.to_le_bytes());
    v.extend_from_slice(&0xC1u16.to_le_bytes());
    v.extend_from_slice(&count.to_le_bytes());
    v
}

/// RETURNSTATUS (2.2.7.18).
pub fn returnstatus(v: i32) -> Vec<u8> {
    let mut b = vec![0x79];
    b.extend_from_slice(&v.to_le_bytes());
    b
}

/// RETURNVALUE (2.2.7.18) of an INTN(4) output parameter.
pub fn returnvalue_int(ordinal: u16, name: &str, v: i32) -> Vec<u8> {
    let mut b = vec![0xAC];
    b.extend_from_slice(&ordinal.to_le_bytes());
    b.extend(b_varchar(name));
    b.push(1); // status: output parameter
    b.extend_from_slice(&0u32.to_le_bytes()); // user type
    b.extend_from_slice(&0x0009u16.to_le_bytes()); // flags: nullable
    b.extend_from_slice(&[0x26, 4, 4]);
    b.extend_from_slice(&v.to_le_bytes());
    b
}

/// One result column: TYPE_INFO as COLMETADATA carries it, and one row value.
pub struct Col {
    pub name: &'static str,
    pub type_info: Vec<u8>,
    pub value: Vec<u8>,
}

/// Columns of every type class (fixed, BYTELEN, USHORTLEN, PLP, TEXT/IMAGE with text pointers,
/// sql_variant, UDT, XML), each with one non-NULL value.
pub fn every_column() -> Vec<Col> {
    let text_ti = |ty: u8, coll: bool| {
        let mut ti = vec![ty];
        ti.extend_from_slice(&0x7FFF_FFFFu32.to_le_bytes());
        if coll {
            ti.extend_from_slice(&LATIN1);
        }
        // TableName: NumParts 2, "dbo", "notes" (TDS 7.2+).
        ti.push(2);
        ti.extend(us_varchar("dbo"));
        ti.extend(us_varchar("notes"));
        ti
    };
    let text_val = |data: &[u8]| {
        let mut v = vec![16];
        v.extend_from_slice(&[0x5A; 16]); // text pointer
        v.extend_from_slice(&[0; 8]); // timestamp
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(data);
        v
    };
    let udt_ti = {
        let mut ti = vec![0xF0];
        ti.extend_from_slice(&0xFFFFu16.to_le_bytes());
        ti.extend(b_varchar("his"));
        ti.extend(b_varchar("dbo"));
        ti.extend(b_varchar("geo"));
        ti.extend(us_varchar("Microsoft.SqlServer.Types.SqlGeography"));
        ti
    };
    let mut cols = vec![
        Col {
            name: "id",
            type_info: vec![0x38],
            value: 42i32.to_le_bytes().to_vec(),
        },
        Col {
            name: "big",
            type_info: vec![0x7F],
            value: 7i64.to_le_bytes().to_vec(),
        },
        Col {
            name: "flag",
            type_info: vec![0x32],
            value: vec![1],
        },
        Col {
            name: "ratio",
            type_info: vec![0x3E],
            value: 0.5f64.to_le_bytes().to_vec(),
        },
        Col {
            name: "n",
            type_info: vec![0x26, 4],
            value: vec![4, 1, 0, 0, 0],
        },
        Col {
            name: "d",
            type_info: vec![0x6A, 9, 18, 2],
            value: vec![9, 1, 1, 0, 0, 0, 0, 0, 0, 0],
        },
        Col {
            name: "m",
            type_info: vec![0x6E, 8],
            value: vec![8, 0, 0, 0, 0, 1, 0, 0, 0],
        },
        Col {
            name: "g",
            type_info: vec![0x24, 16],
            value: [vec![16], vec![0xAB; 16]].concat(),
        },
        Col {
            name: "day",
            type_info: vec![0x28],
            value: vec![3, 0x80, 0x46, 0x0B],
        },
        Col {
            name: "at",
            type_info: vec![0x2A, 7],
            value: vec![8, 0, 0, 0, 0, 0, 0x80, 0x46, 0x0B],
        },
        Col {
            name: "ato",
            type_info: vec![0x2B, 7],
            value: vec![10, 0, 0, 0, 0, 0, 0x80, 0x46, 0x0B, 0xE0, 0x01],
        },
        Col {
            name: "dt",
            type_info: vec![0x6F, 8],
            value: vec![8, 1, 0, 0, 0, 0, 0, 0, 0],
        },
        Col {
            name: "name",
            type_info: [vec![0xE7, 0x40, 0x00], LATIN1.to_vec()].concat(),
            value: ushort(&u16s("Zhang San")),
        },
        Col {
            name: "ward",
            type_info: [vec![0xA7, 0x20, 0x00], CHINESE_PRC.to_vec()].concat(),
            value: ushort(b"\xbb\xbc\xd5\xdf"),
        },
        Col {
            name: "raw",
            type_info: vec![0xA5, 0x08, 0x00],
            value: ushort(&[1, 2, 3]),
        },
        Col {
            name: "memo",
            type_info: [vec![0xE7, 0xFF, 0xFF], LATIN1.to_vec()].concat(),
            value: plp(&u16s(&"long memo ".repeat(120)), 1000),
        },
        Col {
            name: "blob",
            type_info: vec![0xA5, 0xFF, 0xFF],
            value: plp(&[0xEE; 3000], 1024),
        },
        Col {
            name: "txt",
            type_info: text_ti(0x23, true),
            value: text_val(b"old text column"),
        },
        Col {
            name: "ntxt",
            type_info: text_ti(0x63, true),
            value: text_val(&u16s("old ntext")),
        },
        Col {
            name: "img",
            type_info: text_ti(0x22, false),
            value: text_val(&[0x89, 0x50, 0x4E, 0x47]),
        },
        Col {
            name: "var",
            type_info: vec![0x62, 0x10, 0x1F, 0x00, 0x00],
            value: vec![6, 0, 0, 0, 0x38, 0, 9, 0, 0, 0],
        },
        Col {
            name: "doc",
            type_info: vec![0xF1, 0x00],
            value: plp(&u16s("<r/>"), 64),
        },
        Col {
            name: "geo",
            type_info: udt_ti,
            value: plp(&[0xE6, 0x10, 0, 0, 1, 0x0C], 64),
        },
    ];
    // A nullable column that is NULL in the NBCROW.
    cols.push(Col {
        name: "maybe",
        type_info: vec![0x26, 4],
        value: vec![4, 9, 0, 0, 0],
    });
    cols
}

/// COLMETADATA (2.2.7.4) for `cols`: UserType (4), Flags (2, nullable), TYPE_INFO, ColName.
pub fn colmetadata(cols: &[Col]) -> Vec<u8> {
    let mut v = vec![0x81];
    v.extend_from_slice(&(cols.len() as u16).to_le_bytes());
    for c in cols {
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&0x0009u16.to_le_bytes());
        v.extend_from_slice(&c.type_info);
        v.extend(b_varchar(c.name));
    }
    v
}

/// ROW (2.2.7.19) with every column's value.
pub fn row(cols: &[Col]) -> Vec<u8> {
    let mut v = vec![0xD1];
    for c in cols {
        v.extend_from_slice(&c.value);
    }
    v
}

/// NBCROW (2.2.7.15): the null bitmap, then the non-NULL values only.
pub fn nbcrow(cols: &[Col], nulls: &[usize]) -> Vec<u8> {
    let mut v = vec![0xD2];
    let mut bitmap = vec![0u8; cols.len().div_ceil(8)];
    for &i in nulls {
        bitmap[i / 8] |= 1 << (i % 8);
    }
    v.extend_from_slice(&bitmap);
    for (i, c) in cols.iter().enumerate() {
        if !nulls.contains(&i) {
            v.extend_from_slice(&c.value);
        }
    }
    v
}

/// A TLS record (RFC 8446 5.1) of `content_type` carrying `len` opaque bytes.
pub fn tls_record(content_type: u8, len: usize, fill: u8) -> Vec<u8> {
    let mut v = vec![content_type, 0x03, 0x03];
    v.extend_from_slice(&(len as u16).to_be_bytes());
    v.extend(std::iter::repeat_n(fill, len));
    v
}

/// A TLS 1.2 ClientHello offering ALPN `alpn` (TDS 8.0 clients offer "tds/8.0").
pub fn client_hello(alpn: &str) -> Vec<u8> {
    let mut ext = Vec::new();
    let mut names = vec![alpn.len() as u8];
    names.extend_from_slice(alpn.as_bytes());
    let mut list = (names.len() as u16).to_be_bytes().to_vec();
    list.extend(names);
    ext.extend_from_slice(&16u16.to_be_bytes());
    ext.extend_from_slice(&(list.len() as u16).to_be_bytes());
    ext.extend(list);
    let mut hello = vec![0x03, 0x03];
    hello.extend_from_slice(&[0x11; 32]);
    hello.push(0);
    hello.extend_from_slice(&[0, 2, 0x13, 0x01]);
    hello.extend_from_slice(&[1, 0]);
    hello.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    hello.extend(ext);
    let mut hs = vec![1];
    hs.extend_from_slice(&(hello.len() as u32).to_be_bytes()[1..]);
    hs.extend(hello);
    let mut rec = vec![0x16, 0x03, 0x01];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend(hs);
    rec
}

/// NTLM AUTHENTICATE (MS-NLMP 2.2.1.3), Unicode, with dummy responses.
pub fn ntlm_authenticate(domain: &str, user: &str, ws: &str) -> Vec<u8> {
    let (d, u, w) = (u16s(domain), u16s(user), u16s(ws));
    let lm = [0x11u8; 24];
    let nt = [0x22u8; 24];
    let mut m = b"NTLMSSP\0".to_vec();
    m.extend_from_slice(&3u32.to_le_bytes());
    let mut off = 64u32;
    let mut payload = Vec::new();
    for part in [&lm[..], &nt[..], &d[..], &u[..], &w[..], &[][..]] {
        m.extend_from_slice(&(part.len() as u16).to_le_bytes());
        m.extend_from_slice(&(part.len() as u16).to_le_bytes());
        m.extend_from_slice(&off.to_le_bytes());
        off += part.len() as u32;
        payload.extend_from_slice(part);
    }
    m.extend_from_slice(&0x0008_8201u32.to_le_bytes());
    m.extend(payload);
    m
}

/// NTLM NEGOTIATE (MS-NLMP 2.2.1.1), minimal.
pub fn ntlm_negotiate() -> Vec<u8> {
    let mut m = b"NTLMSSP\0".to_vec();
    m.extend_from_slice(&1u32.to_le_bytes());
    m.extend_from_slice(&0x0008_8207u32.to_le_bytes());
    m.extend_from_slice(&[0; 16]);
    m
}

// ---------------------------------------------------------------- conversations

const SPID: u16 = 57;

fn login_response(db: &str) -> Vec<u8> {
    [
        envchange_str(1, db, "master"),
        message(
            0xAB,
            5701,
            2,
            0,
            &format!("Changed database context to '{db}'."),
            "",
            1,
        ),
        envchange_collation(CHINESE_PRC),
        envchange_str(2, "us_english", ""),
        loginack(0x7400_0004, "Microsoft SQL Server", [16, 0, 0x10, 0x67]),
        envchange_str(4, "4096", "4096"),
        done(0xFD, 0x0000, 0),
    ]
    .concat()
}

/// The PRELOGIN exchange without encryption (both sides ENCRYPT_NOT_SUP; the server's VERSION
/// is `server_version`), then the client's LOGIN7.
fn login_start(conv: &mut Conversation, server_version: [u8; 6], login7: &[u8]) {
    client_sends(conv, 0x12, &prelogin([17, 0, 0, 1, 0, 0], 2, false));
    server_sends_before_login(conv, 0x04, &prelogin(server_version, 2, false));
    client_sends(conv, 0x10, login7);
}

/// PRELOGIN exchange without encryption (both sides ENCRYPT_NOT_SUP), then a SQL login.
fn plain_login(conv: &mut Conversation, user: &str, db: &str) {
    login_start(
        conv,
        [16, 0, 0x10, 0x67, 0, 0],
        &login7(user, "Sup3r$ecret", "HIS.Registration", db, &[]),
    );
    conv.push((S, packets(0x04, &login_response(db), 4096, SPID)));
}

/// A SQL login, a result set with every column type over many 512-byte packets, an error,
/// a transaction, sp_executesql with every parameter type, sp_prepexec / sp_execute /
/// sp_unprepare with the handle, two RPCs in one message, an Attention.
pub fn full_session() -> Conversation {
    let mut conv = Vec::new();
    plain_login(&mut conv, "his_app", "EMR");
    let cols = every_column();
    let result = [
        colmetadata(&cols),
        row(&cols),
        nbcrow(&cols, &[cols.len() - 1, 1, 18]),
        row(&cols),
        done(0xFD, 0x0010, 3),
    ]
    .concat();
    client_sends(
        &mut conv,
        0x01,
        &sql_batch("SELECT * FROM dbo.patient_notes WHERE ward = N'内科'"),
    );
    conv.push((S, packets(0x04, &result, 512, SPID)));
    let err = [
        message(
            0xAA,
            208,
            1,
            16,
            "Invalid object name 'dbo.patinet'.",
            "",
            1,
        ),
        done(0xFD, 0x0002, 0),
    ]
    .concat();
    client_sends(&mut conv, 0x01, &sql_batch("SELECT * FROM dbo.patinet"));
    conv.push((S, packets(0x04, &err, 4096, SPID)));
    client_sends(
        &mut conv,
        0x01,
        &sql_batch("BEGIN TRANSACTION; UPDATE dbo.beds SET free = 0 WHERE id = 7"),
    );
    server_sends(
        &mut conv,
        &[
            envchange_begin_tran(),
            done(0xFD, 0x0011, 1),
            done(0xFD, 0x0010, 1),
        ],
    );
    // sp_executesql with every parameter type.
    let ps = every_param();
    let decl: Vec<String> = ps.iter().map(|(n, _, ty, _)| format!("{n} {ty}")).collect();
    let stmt = nv("SELECT @int AS v");
    let decl = nv(&decl.join(","));
    let mut params: Vec<(&str, bool, &Typed)> =
        vec![("@stmt", false, &stmt), ("@params", false, &decl)];
    for (n, v, _, _) in &ps {
        params.push((n, false, v));
    }
    client_sends(&mut conv, 0x03, &rpc_message(&[rpc(Ok(10), &params)]));
    server_sends(
        &mut conv,
        &[
            colmetadata(&cols[..1]),
            row(&cols[..1]),
            done(0xFF, 0x0011, 1),
            returnstatus(0),
            done(0xFE, 0x0000, 0),
        ],
    );
    // sp_prepexec: @handle OUTPUT, @params, @stmt, values → RETURNVALUE handle 7.
    let h = int4_null();
    let decl = nv("@P0 int");
    let stmt = nv("SELECT name FROM dbo.patient WHERE id = @P0");
    let p0 = int4(1001);
    client_sends(
        &mut conv,
        0x03,
        &rpc_message(&[rpc(
            Ok(13),
            &[
                ("@handle", true, &h),
                ("", false, &decl),
                ("", false, &stmt),
                ("", false, &p0),
            ],
        )]),
    );
    server_sends(
        &mut conv,
        &[
            returnvalue_int(0, "@handle", 7),
            done(0xFF, 0x0011, 1),
            returnstatus(0),
            done(0xFE, 0x0000, 0),
        ],
    );
    // Two sp_execute of handle 7 in one message.
    let h7 = int4(7);
    let p1 = int4(1002);
    let p2 = int4(1003);
    let e1 = rpc(Ok(12), &[("", false, &h7), ("", false, &p1)]);
    let e2 = rpc(Ok(12), &[("", false, &h7), ("", false, &p2)]);
    client_sends(&mut conv, 0x03, &rpc_message(&[e1, e2]));
    server_sends(
        &mut conv,
        &[
            done(0xFF, 0x0011, 1),
            returnstatus(0),
            done(0xFE, 0x0081, 0),
            done(0xFF, 0x0011, 0),
            returnstatus(0),
            done(0xFE, 0x0000, 0),
        ],
    );
    // sp_unprepare 7.
    client_sends(
        &mut conv,
        0x03,
        &rpc_message(&[rpc(Ok(15), &[("", false, &h7)])]),
    );
    server_sends(&mut conv, &[returnstatus(0), done(0xFE, 0x0000, 0)]);
    // A named procedure with an error inside it.
    let pid = nv("P-0042");
    client_sends(
        &mut conv,
        0x03,
        &rpc_message(&[rpc(Err("dbo.usp_discharge"), &[("@patient", false, &pid)])]),
    );
    server_sends(
        &mut conv,
        &[
            message(
                0xAA,
                547,
                0,
                16,
                "The UPDATE statement conflicted with the FOREIGN KEY constraint.",
                "usp_discharge",
                12,
            ),
            done(0xFF, 0x0002, 0),
            returnstatus(-6),
            done(0xFE, 0x0002, 0),
        ],
    );
    // A long query cancelled with an Attention; the server acknowledges with DONE_ATTN.
    client_sends(&mut conv, 0x01, &sql_batch("WAITFOR DELAY '00:10:00'"));
    client_sends(&mut conv, 0x06, &[]);
    conv.push((S, packets(0x04, &done(0xFD, 0x0020, 0), 4096, SPID)));
    conv
}

/// A login refused: ERROR 18456 then DONE with DONE_ERROR (MS-TDS 4.3 shows the shape).
pub fn login_failed() -> Conversation {
    let mut conv = Vec::new();
    login_start(
        &mut conv,
        [16, 0, 0x10, 0x67, 0, 0],
        &login7("sa", "wrong", "sqlcmd", "master", &[]),
    );
    server_sends_before_login(
        &mut conv,
        0x04,
        &[
            message(0xAA, 18456, 1, 14, "Login failed for user 'sa'.", "", 1),
            done(0xFD, 0x0002, 0),
        ]
        .concat(),
    );
    conv
}

/// ERROR / INFO in the layout of TDS 7.0 and 7.1 (MS-TDS 2.2.7.10, 2.2.7.13): LineNumber is a
/// USHORT before TDS 7.2.
pub fn message_71(token: u8, number: i32, state: u8, class: u8, text: &str, line: u16) -> Vec<u8> {
    let mut b = number.to_le_bytes().to_vec();
    b.push(state);
    b.push(class);
    b.extend(us_varchar(text));
    b.extend(b_varchar("HISDB2000"));
    b.extend(b_varchar(""));
    b.extend_from_slice(&line.to_le_bytes());
    with_len16(token, &b)
}

/// DONE in the layout of TDS 7.0 and 7.1 (2.2.7.6): DoneRowCount is a LONG before TDS 7.2.
pub fn done_71(token: u8, status: u16, count: u32) -> Vec<u8> {
    let mut v = vec![token];
    v.extend_from_slice(&status.to_le_bytes());
    v.extend_from_slice(&0xC1u16.to_le_bytes());
    v.extend_from_slice(&count.to_le_bytes());
    v
}

/// A TDS 7.0 session (SQL Server 7.0, no PRELOGIN): LOGIN7 of TDSVersion 0x70000000, the
/// answer in the 7.0 layouts (INFO with a 2-byte line number, LOGINACK 0x07000000, 4-byte DONE
/// counts). A SQL batch (no ALL_HEADERS before 7.2, 2.2.6.7) answered by a result of a varchar
/// and an nvarchar column whose TYPE_INFO has no collation (collations came with TDS 7.1,
/// 2.2.5.6) and 2-byte UserTypes (4 from 7.2, 2.2.7.4); then sp_executesql (ProcID 10) with
/// nvarchar parameters, also without collation.
pub fn tds70() -> Conversation {
    let mut conv = Vec::new();
    client_sends(
        &mut conv,
        0x10,
        &login7_of_version(0x7000_0000, "his_app", "s3cret", "HIS.Lab", "LAB", &[], &[]),
    );
    server_sends_before_login(
        &mut conv,
        0x04,
        &[
            envchange_str(1, "LAB", "master"),
            message_71(0xAB, 5701, 2, 0, "Changed database context to 'LAB'.", 0),
            loginack(0x0700_0000, "Microsoft SQL Server", [7, 0, 0x03, 0x7B]),
            done_71(0xFD, 0x0000, 0),
        ]
        .concat(),
    );
    client_sends(&mut conv, 0x01, &u16s("SELECT code, name FROM dbo.tests"));
    let varchar = |s: &str| {
        let mut v = (s.len() as u16).to_le_bytes().to_vec();
        v.extend_from_slice(s.as_bytes());
        v
    };
    let nvarchar = |s: &str| {
        let u = u16s(s);
        let mut v = (u.len() as u16).to_le_bytes().to_vec();
        v.extend(u);
        v
    };
    let mut meta = vec![0x81];
    meta.extend_from_slice(&2u16.to_le_bytes());
    for (ty, max, name) in [(0xA7u8, 10u16, "code"), (0xE7, 80, "name")] {
        meta.extend_from_slice(&0u16.to_le_bytes()); // UserType (USHORT before 7.2)
        meta.extend_from_slice(&0x0009u16.to_le_bytes()); // Flags: nullable, updateable
        meta.push(ty);
        meta.extend_from_slice(&max.to_le_bytes()); // no collation before TDS 7.1
        meta.extend(b_varchar(name));
    }
    let mut rows = Vec::new();
    for (code, name) in [("HBA1C", "Hämoglobin A1c"), ("K", "Kalium")] {
        rows.push(0xD1);
        rows.extend(varchar(code));
        rows.extend(nvarchar(name));
    }
    server_sends(&mut conv, &[meta, rows, done_71(0xFD, 0x0010, 2)]);
    let nv70 = |s: &str| Typed {
        type_info: {
            let mut t = vec![0xE7];
            t.extend_from_slice(&8000u16.to_le_bytes());
            t
        },
        value: nvarchar(s),
    };
    let (stmt, decl, code) = (
        nv70("SELECT name FROM dbo.tests WHERE code = @code"),
        nv70("@code nvarchar(10)"),
        nv70("HBA1C"),
    );
    // No ALL_HEADERS before TDS 7.2 (2.2.6.6): the RPC starts the message.
    let call = rpc(
        Ok(10),
        &[
            ("", false, &stmt),
            ("", false, &decl),
            ("@code", false, &code),
        ],
    );
    client_sends(&mut conv, 0x03, &call);
    server_sends(
        &mut conv,
        &[
            done_71(0xFF, 0x0011, 1),
            returnstatus(0),
            done_71(0xFE, 0x0000, 0),
        ],
    );
    conv
}

/// A SQL Server 2000 (PRELOGIN version 8.0.2039) reached by a client whose LOGIN7 asks for TDS
/// 7.4: the server answers in TDS 7.1 (2.2.6.4: the server replies with the highest version it
/// supports, at most the client's). With `fail`, the login fails with 18456 before any
/// LOGINACK; otherwise it succeeds and two batches follow, one counting rows, one failing.
pub fn sql2000(fail: bool) -> Conversation {
    let mut conv = Vec::new();
    login_start(
        &mut conv,
        [8, 0, 0x07, 0xF7, 0, 0],
        &login7("his_app", "s3cret", "HIS.Pharmacy", "HIS", &[]),
    );
    if fail {
        server_sends_before_login(
            &mut conv,
            0x04,
            &[
                message_71(0xAA, 18456, 1, 14, "Login failed for user 'his_app'.", 0),
                done_71(0xFD, 0x0002, 0),
            ]
            .concat(),
        );
        return conv;
    }
    server_sends(
        &mut conv,
        &[
            envchange_str(1, "HIS", "master"),
            message_71(0xAB, 5701, 2, 0, "Changed database context to 'HIS'.", 0),
            loginack(0x7100_0001, "Microsoft SQL Server", [8, 0, 0x07, 0xF7]),
            done_71(0xFD, 0x0000, 0),
        ],
    );
    client_sends(
        &mut conv,
        0x01,
        &sql_batch("UPDATE beds SET free = 1 WHERE ward = 3"),
    );
    server_sends(&mut conv, &[done_71(0xFD, 0x0010, 3)]);
    client_sends(&mut conv, 0x01, &sql_batch("SELECT * FROM no_such_table"));
    server_sends(
        &mut conv,
        &[
            message_71(0xAA, 208, 1, 16, "Invalid object name 'no_such_table'.", 1),
            done_71(0xFD, 0x0002, 0),
        ],
    );
    conv
}

/// After a SQL login: a batch that PRINTs and changes database (INFO 0, ENVCHANGE 1, INFO 5701),
/// one that changes language (ENVCHANGE 2, INFO 5703), then `sp_prepare` (ProcID 11, MS-TDS
/// 2.2.6.6: `@handle int OUTPUT`, `@params`, `@stmt`, `@options`) answered with the handle in
/// a RETURNVALUE, and `sp_execute` (ProcID 12) of that handle with two values.
pub fn informational_and_prepare() -> Conversation {
    let mut conv = Vec::new();
    plain_login(&mut conv, "his_app", "EMR");
    client_sends(
        &mut conv,
        0x01,
        &sql_batch("PRINT 'discharged 3 patients'; USE LIS"),
    );
    server_sends(
        &mut conv,
        &[
            message(0xAB, 0, 1, 0, "discharged 3 patients", "", 1),
            envchange_str(1, "LIS", "EMR"),
            message(
                0xAB,
                5701,
                2,
                0,
                "Changed database context to 'LIS'.",
                "",
                1,
            ),
            done(0xFD, 0x0000, 0),
        ],
    );
    client_sends(&mut conv, 0x01, &sql_batch("SET LANGUAGE Deutsch"));
    server_sends(
        &mut conv,
        &[
            envchange_str(2, "Deutsch", "us_english"),
            message(
                0xAB,
                5703,
                1,
                0,
                "Die Spracheneinstellung wurde auf Deutsch geändert.",
                "",
                1,
            ),
            done(0xFD, 0x0000, 0),
        ],
    );
    let decl = nv("@P0 int,@P1 nvarchar(32)");
    let stmt = nv("SELECT result FROM dbo.lab WHERE patient = @P0 AND test = @P1");
    client_sends(
        &mut conv,
        0x03,
        &rpc_message(&[rpc(
            Ok(11),
            &[
                ("@handle", true, &int4_null()),
                ("@params", false, &decl),
                ("@stmt", false, &stmt),
                ("@options", false, &int4(1)),
            ],
        )]),
    );
    let mut answer = vec![returnvalue_int(0, "@handle", 7)];
    answer.extend(procedure_done(0));
    server_sends(&mut conv, &answer);
    client_sends(
        &mut conv,
        0x03,
        &rpc_message(&[rpc(
            Ok(12),
            &[
                ("@handle", false, &int4(7)),
                ("", false, &int4(4711)),
                ("", false, &nv("HbA1c")),
            ],
        )]),
    );
    server_sends(&mut conv, &procedure_done(1));
    conv
}

/// PRELOGIN (MS-TDS 2.2.6.5) with the options given as (token, data), in order.
pub fn prelogin_options(options: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let table_len = options.len() * 5 + 1;
    let mut head = Vec::new();
    let mut body = Vec::new();
    for (token, d) in options {
        head.push(*token);
        head.extend_from_slice(&((table_len + body.len()) as u16).to_be_bytes());
        head.extend_from_slice(&(d.len() as u16).to_be_bytes());
        body.extend_from_slice(d);
    }
    head.push(0xFF);
    head.extend(body);
    head
}

/// The access token a FedAuth client sends (a JWT, as UTF-16LE in the FEDAUTH_TOKEN message):
/// a secret, which no output may show.
pub const FEDAUTH_JWT: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL2RhdGFiYXNlIn0.SECRET-SIGNATURE-7f3a";

/// A Microsoft Entra ID (Azure AD) login through the ADAL workflow (MS-TDS 3.2.5.1, 3.3.5.1):
/// PRELOGIN with FEDAUTHREQUIRED (2.2.6.5, B_FEDAUTHREQUIRED = 0x01) on both sides; LOGIN7
/// without user name or password and with the FEDAUTH feature (2.2.6.4: FeatureId 0x02,
/// bFedAuthLibrary ADAL = 0x02 with fFedAuthEcho, workflow 0x01 user name and password); the
/// server's FEDAUTHINFO (2.2.7.12: the STS URL and the SPN the client gets its token for); the
/// client's FEDAUTH_TOKEN message (2.2.6.3, packet type 0x08: DataLen, TokenLen, the token);
/// the server's LOGINACK with a FEATUREEXTACK for FEDAUTH (2.2.7.11); then a SQL batch.
pub fn fedauth_login() -> Conversation {
    let mut conv = Vec::new();
    let client_prelogin = prelogin_options(&[
        (0, vec![17, 0, 0, 1, 0, 0]),
        (1, vec![2]),
        (2, vec![0]),
        (3, vec![0, 0, 0x12, 0x34]),
        (4, vec![0]),
        (6, vec![1]),
    ]);
    client_sends(&mut conv, 0x12, &client_prelogin);
    let server_prelogin = prelogin_options(&[
        (0, vec![16, 0, 0x10, 0x67, 0, 0]),
        (1, vec![2]),
        (2, vec![0]),
        (3, vec![]),
        (4, vec![0]),
        (6, vec![1]),
    ]);
    server_sends_before_login(&mut conv, 0x04, &server_prelogin);
    let fedauth = feature(0x02, &[(0x02 << 1) | 1, 0x01]);
    client_sends(
        &mut conv,
        0x10,
        &login7_ext("", "", "HIS.Portal", "EMR", &[], &fedauth),
    );
    // FEDAUTHINFO: TokenLength, CountOfInfoIDs, then per ID: FedAuthInfoID, DataLen,
    // DataOffset (from CountOfInfoIDs), then the data (UTF-16LE).
    let infos = [
        (0x01u8, u16s("https://login.example.org/hospital-tenant")),
        (0x02u8, u16s("https://database.example.org/")),
    ];
    let mut opts = Vec::new();
    let mut data = Vec::new();
    let table = 4 + infos.len() * 9;
    for (id, d) in &infos {
        opts.push(*id);
        opts.extend_from_slice(&(d.len() as u32).to_le_bytes());
        opts.extend_from_slice(&((table + data.len()) as u32).to_le_bytes());
        data.extend_from_slice(d);
    }
    let mut body = (infos.len() as u32).to_le_bytes().to_vec();
    body.extend(opts);
    body.extend(data);
    let mut fedauthinfo = vec![0xEE];
    fedauthinfo.extend_from_slice(&(body.len() as u32).to_le_bytes());
    fedauthinfo.extend(body);
    server_sends_before_login(&mut conv, 0x04, &fedauthinfo);
    // FEDAUTH_TOKEN: DataLen, then FedAuthToken = TokenLen + the token (no nonce: the server's
    // PRELOGIN sent none).
    let token = u16s(FEDAUTH_JWT);
    let mut msg = ((token.len() + 4) as u32).to_le_bytes().to_vec();
    msg.extend_from_slice(&(token.len() as u32).to_le_bytes());
    msg.extend(token);
    client_sends(&mut conv, 0x08, &msg);
    // LOGINACK, then FEATUREEXTACK: FEDAUTH with no data (ADAL), terminator.
    let mut ack = vec![0xAE, 0x02];
    ack.extend_from_slice(&0u32.to_le_bytes());
    ack.push(0xFF);
    let mut answer = login_response("EMR");
    let done_at = answer.len() - 13;
    answer.splice(done_at..done_at, ack);
    conv.push((S, packets(0x04, &answer, 4096, SPID)));
    client_sends(
        &mut conv,
        0x01,
        &sql_batch("SELECT TOP 1 name FROM dbo.patients"),
    );
    server_sends(&mut conv, &[done(0xFD, 0x0010, 1)]);
    conv
}

/// The client calls well-known procedure `id` with unnamed parameters (output flag, value), as
/// the JDBC driver sends the cursor procedures' parameters.
fn cursor_call(conv: &mut Conversation, id: u16, params: &[(bool, Typed)]) {
    let named: Vec<(&str, bool, &Typed)> = params.iter().map(|(o, v)| ("", *o, v)).collect();
    client_sends(conv, 0x03, &rpc_message(&[rpc(Ok(id), &named)]));
}

/// A server cursor as the Microsoft JDBC driver drives one (`selectMethod=cursor`, or a
/// scrollable result set): the statement is prepared and its cursor opened in one call,
/// `sp_cursorprepexec` (ProcID 5), rows come through `sp_cursorfetch` (ProcID 7), the next
/// execution opens a cursor by handle, `sp_cursorexecute` (ProcID 4), and the cursor and the
/// handle end with `sp_cursorclose` (ProcID 9) and `sp_cursorunprepare` (ProcID 6). Parameters
/// in the driver's order, all without names: sp_cursorprepexec handle (in/out), cursor (out),
/// declarations, statement, scrollopt, ccopt, rowcount (out), then the values;
/// sp_cursorexecute handle, cursor (out), scrollopt, ccopt, rowcount (out), then the values.
/// The cursor's result carries the browse-mode tokens of an updatable cursor after its
/// COLMETADATA: TABNAME (MS-TDS 2.2.7.23), COLINFO (2.2.7.3) and ORDER (2.2.7.17).
pub fn cursor_prepexec() -> Conversation {
    const HANDLE: i32 = 1_073_741_825;
    const CURSOR: i32 = 180_150_003;
    let mut conv = Vec::new();
    plain_login(&mut conv, "lis_app", "LIS");
    let cols = [
        Col {
            name: "id",
            type_info: vec![0x38],
            value: 9001i32.to_le_bytes().to_vec(),
        },
        Col {
            name: "result",
            type_info: {
                let mut ti = vec![0xE7];
                ti.extend_from_slice(&64u16.to_le_bytes());
                ti.extend_from_slice(&LATIN1);
                ti
            },
            value: ushort(&u16s("7.1 %")),
        },
    ];
    // TABNAME: one table, NumParts 2 ("dbo", "lab") in US_VARCHARs (TDS 7.1+).
    let tabname = {
        let mut b = vec![2];
        b.extend(us_varchar("dbo"));
        b.extend(us_varchar("lab"));
        with_len16(0xA4, &b)
    };
    // COLINFO: per column ColNum, TableNum, Status (0x08 KEY for `id`; `result` plain).
    let colinfo = with_len16(0xA5, &[1, 1, 0x08, 2, 1, 0x00]);
    // ORDER: the result is ordered by column 1.
    let order = with_len16(0xA9, &1u16.to_le_bytes());
    let decl = nv("@P0 int,@P1 nvarchar(4000)");
    let stmt = nv("SELECT id, result FROM dbo.lab WHERE patient = @P0 AND test = @P1 ORDER BY id");
    cursor_call(
        &mut conv,
        5,
        &[
            (true, int4(0)),
            (true, int4(0)),
            (false, decl),
            (false, stmt),
            (true, int4(4)),
            (true, int4(8193)),
            (true, int4(0)),
            (false, int4(4711)),
            (false, nv("HbA1c")),
        ],
    );
    let mut answer = vec![
        colmetadata(&cols),
        tabname.clone(),
        colinfo.clone(),
        order,
        done(0xFF, 0x0001, 0),
        returnvalue_int(0, "", HANDLE),
        returnvalue_int(1, "", CURSOR),
        returnvalue_int(4, "", 4),
        returnvalue_int(5, "", 8193),
        returnvalue_int(6, "", -1),
    ];
    answer.extend([returnstatus(0), done(0xFE, 0x0000, 0)]);
    server_sends(&mut conv, &answer);
    // Fetch NEXT (2), from row 1, 2 rows.
    cursor_call(
        &mut conv,
        7,
        &[
            (false, int4(CURSOR)),
            (false, int4(2)),
            (false, int4(1)),
            (false, int4(2)),
        ],
    );
    let mut answer = vec![colmetadata(&cols), tabname, colinfo, row(&cols), row(&cols)];
    answer.extend(procedure_done(2));
    server_sends(&mut conv, &answer);
    cursor_call(
        &mut conv,
        4,
        &[
            (false, int4(HANDLE)),
            (true, int4(0)),
            (true, int4(4)),
            (true, int4(8193)),
            (true, int4(0)),
            (false, int4(4712)),
            (false, nv("LDL")),
        ],
    );
    let mut answer = vec![colmetadata(&cols), done(0xFF, 0x0001, 0)];
    answer.push(returnvalue_int(1, "", CURSOR + 1));
    answer.extend([returnstatus(0), done(0xFE, 0x0000, 0)]);
    server_sends(&mut conv, &answer);
    cursor_call(&mut conv, 9, &[(false, int4(CURSOR + 1))]);
    server_sends(&mut conv, &[returnstatus(0), done(0xFE, 0x0000, 0)]);
    cursor_call(&mut conv, 6, &[(false, int4(HANDLE))]);
    server_sends(&mut conv, &[returnstatus(0), done(0xFE, 0x0000, 0)]);
    conv
}

/// ENCRYPT_OFF on both sides: the TLS handshake inside PRELOGIN packets, the LOGIN7 as one TLS
/// application-data record, then plaintext (MS-TDS 2.2.6.5, 3.2.5.2).
pub fn login_only_tls() -> Conversation {
    let mut conv = Vec::new();
    client_sends(&mut conv, 0x12, &prelogin([17, 0, 0, 1, 0, 0], 0, false));
    server_sends_before_login(
        &mut conv,
        0x04,
        &prelogin([16, 0, 0x10, 0x67, 0, 0], 0, false),
    );
    client_sends(&mut conv, 0x12, &client_hello("h2"));
    server_sends_before_login(
        &mut conv,
        0x12,
        &[tls_record(0x16, 900, 0x42), tls_record(0x14, 1, 1)].concat(),
    );
    client_sends(
        &mut conv,
        0x12,
        &[
            tls_record(0x16, 70, 0x43),
            tls_record(0x14, 1, 1),
            tls_record(0x16, 40, 0x44),
        ]
        .concat(),
    );
    server_sends_before_login(
        &mut conv,
        0x12,
        &[tls_record(0x14, 1, 1), tls_record(0x16, 40, 0x45)].concat(),
    );
    conv.push((C, tls_record(0x17, 260, 0x46)));
    conv.push((S, packets(0x04, &login_response("LIS"), 4096, SPID)));
    client_sends(
        &mut conv,
        0x01,
        &sql_batch("SELECT TOP 10 * FROM lab_results"),
    );
    let cols = every_column();
    server_sends(
        &mut conv,
        &[
            colmetadata(&cols[..3]),
            row(&cols[..3]),
            done(0xFD, 0x0010, 1),
        ],
    );
    conv
}

/// ENCRYPT_REQ: everything after the handshake is TLS.
pub fn full_tls() -> Conversation {
    let mut conv = Vec::new();
    client_sends(&mut conv, 0x12, &prelogin([17, 0, 0, 1, 0, 0], 1, false));
    server_sends_before_login(
        &mut conv,
        0x04,
        &prelogin([16, 0, 0x10, 0x67, 0, 0], 3, false),
    );
    client_sends(&mut conv, 0x12, &client_hello("h2"));
    server_sends_before_login(&mut conv, 0x12, &tls_record(0x16, 900, 0x42));
    client_sends(&mut conv, 0x12, &tls_record(0x16, 70, 0x43));
    server_sends_before_login(&mut conv, 0x12, &tls_record(0x16, 40, 0x45));
    conv.push((C, tls_record(0x17, 300, 0x46)));
    conv.push((S, tls_record(0x17, 500, 0x47)));
    conv.push((C, tls_record(0x17, 120, 0x48)));
    conv.push((S, tls_record(0x17, 90, 0x49)));
    conv
}

/// TDS 8.0: TLS from the first byte, ALPN "tds/8.0".
pub fn tds8() -> Conversation {
    vec![
        (C, client_hello("tds/8.0")),
        (S, tls_record(0x16, 1200, 0x50)),
        (C, tls_record(0x17, 400, 0x51)),
        (S, tls_record(0x17, 600, 0x52)),
    ]
}

/// Integrated security: LOGIN7 with NTLM NEGOTIATE, the SSPI token challenge, the client's
/// SSPI message with AUTHENTICATE, LOGINACK (MS-TDS 3.2.5.1 SSPI flow).
pub fn ntlm_login() -> Conversation {
    let mut conv = Vec::new();
    login_start(
        &mut conv,
        [16, 0, 0x10, 0x67, 0, 0],
        &login7("", "", "Nursing", "EMR", &ntlm_negotiate()),
    );
    // NTLM CHALLENGE (MS-NLMP 2.2.1.2): empty target name and target info (offset 56), flags,
    // server challenge, reserved, version.
    let mut challenge = b"NTLMSSP\0".to_vec();
    challenge.extend_from_slice(&2u32.to_le_bytes());
    challenge.extend_from_slice(&[0, 0, 0, 0, 56, 0, 0, 0]);
    challenge.extend_from_slice(&0x0288_8205u32.to_le_bytes());
    challenge.extend_from_slice(&[0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF]);
    challenge.extend_from_slice(&[0; 8]);
    challenge.extend_from_slice(&[0, 0, 0, 0, 56, 0, 0, 0]);
    challenge.extend_from_slice(&[10, 0, 0x61, 0x4A, 0, 0, 0, 0x0F]);
    server_sends_before_login(&mut conv, 0x04, &with_len16(0xED, &challenge));
    client_sends(
        &mut conv,
        0x11,
        &ntlm_authenticate("HOSPITAL", "nurse.li", "WARD-PC-07"),
    );
    conv.push((S, packets(0x04, &login_response("EMR"), 4096, SPID)));
    client_sends(&mut conv, 0x01, &sql_batch("EXEC dbo.usp_rounds @ward = 3"));
    server_sends(
        &mut conv,
        &[
            done(0xFF, 0x0011, 12),
            returnstatus(0),
            done(0xFE, 0x0000, 0),
            done(0xFD, 0x0000, 0),
        ],
    );
    conv
}

/// An SMP packet (MS-SMP 2.2.1): SMID 0x53, flags, session id, length, sequence, window.
pub fn smp(flags: u8, sid: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x53, flags];
    v.extend_from_slice(&sid.to_le_bytes());
    v.extend_from_slice(&((16 + payload.len()) as u32).to_le_bytes());
    v.extend_from_slice(&seq.to_le_bytes());
    v.extend_from_slice(&(seq + 4).to_le_bytes());
    v.extend_from_slice(payload);
    v
}

/// MARS: PRELOGIN with MARS on, a login, then two logical sessions (SMP session ids 0 and 1)
/// whose requests and answers interleave; session 0's result spans two TDS packets carried in
/// two SMP DATA packets, the second TDS packet itself split across SMP packets.
pub fn mars() -> Conversation {
    let mut conv = vec![
        (
            C,
            packets(0x12, &prelogin([17, 0, 0, 1, 0, 0], 2, true), 4096, 0),
        ),
        (
            S,
            packets(0x04, &prelogin([16, 0, 0x10, 0x67, 0, 0], 2, true), 4096, 0),
        ),
        (
            C,
            packets(
                0x10,
                &login7("pacs", "Sup3r$ecret", "PACS.Archive", "PACS", &[]),
                4096,
                0,
            ),
        ),
        (S, packets(0x04, &login_response("PACS"), 4096, SPID)),
    ];
    conv.push((C, [smp(0x01, 0, 0, &[]), smp(0x01, 1, 0, &[])].concat()));
    let q0 = packets(
        0x01,
        &sql_batch("SELECT study_uid FROM dbo.studies WHERE patient_id = 'P-0042'"),
        4096,
        0,
    );
    let q1 = packets(
        0x01,
        &sql_batch("UPDATE dbo.worklist SET state = 2 WHERE id = 9"),
        4096,
        0,
    );
    conv.push((C, [smp(0x08, 0, 1, &q0), smp(0x08, 1, 1, &q1)].concat()));
    conv.push((
        S,
        smp(
            0x08,
            1,
            1,
            &packets(0x04, &done(0xFD, 0x0010, 5), 4096, SPID),
        ),
    ));
    let cols = every_column();
    let result = [
        colmetadata(&cols[..13]),
        row(&cols[..13]),
        row(&cols[..13]),
        done(0xFD, 0x0010, 2),
    ]
    .concat();
    let r0 = packets(0x04, &result, 300, SPID);
    let (a, b) = r0.split_at(r0.len() / 2);
    conv.push((
        S,
        [smp(0x02, 0, 0, &[]), smp(0x08, 0, 1, a), smp(0x08, 0, 2, b)].concat(),
    ));
    conv.push((C, smp(0x04, 1, 2, &[])));
    conv.push((S, smp(0x04, 1, 2, &[])));
    conv
}

/// Bulk load (MS-TDS 2.2.6.1: an INSERT BULK batch, then a BULK_LOAD message of COLMETADATA,
/// ROWs and DONE) and Transaction Manager requests (2.2.6.9: TM_BEGIN_XACT with isolation level
/// and name, TM_COMMIT_XACT), after a login answered with FEATUREEXTACK (2.2.7.11) and a routing
/// ENVCHANGE (2.2.7.9 type 20).
pub fn bulk_and_tm() -> Conversation {
    let mut conv = vec![
        (
            C,
            packets(0x12, &prelogin([17, 0, 0, 1, 0, 0], 2, false), 4096, 0),
        ),
        (
            S,
            packets(
                0x04,
                &prelogin([16, 0, 0x10, 0x67, 0, 0], 2, false),
                4096,
                0,
            ),
        ),
        (
            C,
            packets(
                0x10,
                &login7("etl", "Sup3r$ecret", "LIS.Import", "LIS", &[]),
                4096,
                0,
            ),
        ),
    ];
    let mut routing = vec![20u8];
    let server = us_varchar("lis-replica.hospital.local");
    let mut value = vec![0u8]; // protocol 0: TCP
    value.extend_from_slice(&1434u16.to_le_bytes());
    value.extend(server);
    routing.extend_from_slice(&(value.len() as u16).to_le_bytes());
    routing.extend(value);
    routing.extend_from_slice(&0u16.to_le_bytes());
    let head = login_response("LIS");
    let login = [
        head[..head.len() - 13].to_vec(),
        // FEATUREEXTACK: SESSIONRECOVERY (0x01) with no data, UTF8_SUPPORT (0x0A) 1 byte, end.
        vec![0xAE, 0x01, 0, 0, 0, 0, 0x0A, 1, 0, 0, 0, 1, 0xFF],
        with_len16(0xE3, &routing),
        done(0xFD, 0, 0),
    ]
    .concat();
    conv.push((S, packets(0x04, &login, 4096, SPID)));
    client_sends(
        &mut conv,
        0x01,
        &sql_batch("insert bulk dbo.results (id int, name nvarchar(64))"),
    );
    conv.push((S, packets(0x04, &done(0xFD, 0, 0), 4096, SPID)));
    let cols = every_column();
    let two = [
        Col {
            name: "id",
            type_info: vec![0x26, 4],
            value: vec![4, 1, 0, 0, 0],
        },
        Col {
            name: "name",
            type_info: cols[12].type_info.clone(),
            value: cols[12].value.clone(),
        },
    ];
    let mut bulk = colmetadata(&two);
    for _ in 0..5 {
        bulk.extend(row(&two));
    }
    bulk.extend(done(0xFD, 0, 0));
    conv.push((C, packets(0x07, &bulk, 128, 0)));
    conv.push((S, packets(0x04, &done(0xFD, 0x0010, 5), 4096, SPID)));
    // TM_BEGIN_XACT (5): isolation level 2 (read committed), transaction name "import".
    let mut tm = all_headers();
    tm.extend_from_slice(&5u16.to_le_bytes());
    tm.push(2);
    tm.extend(b_varchar("import"));
    client_sends(&mut conv, 0x0E, &tm);
    server_sends(&mut conv, &[envchange_begin_tran(), done(0xFD, 0, 0)]);
    // TM_COMMIT_XACT (7): name empty, fBeginXact 0.
    let mut tm = all_headers();
    tm.extend_from_slice(&7u16.to_le_bytes());
    tm.push(0);
    tm.push(0);
    client_sends(&mut conv, 0x0E, &tm);
    let mut commit = vec![9u8, 0, 8];
    commit.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
    server_sends(&mut conv, &[with_len16(0xE3, &commit), done(0xFD, 0, 0)]);
    conv
}

/// A table-valued parameter (MS-TDS 2.2.5.5.5, TDS 7.3+) of type dbo.PatientIdList (one
/// INTN(4) column, nullable, ColName empty as the spec requires), no optional metadata, with
/// `ids.len()` rows; sent as the parameter's TYPE_INFO (its value is part of it).
pub fn tvp_ids(ids: &[i32]) -> Typed {
    let mut ti = vec![0xF3];
    ti.extend(b_varchar(""));
    ti.extend(b_varchar("dbo"));
    ti.extend(b_varchar("PatientIdList"));
    ti.extend_from_slice(&1u16.to_le_bytes());
    ti.extend_from_slice(&0u32.to_le_bytes()); // UserType
    ti.extend_from_slice(&0x0001u16.to_le_bytes()); // Flags: fNullable
    ti.extend_from_slice(&[0x26, 4]); // INTN(4)
    ti.extend(b_varchar(""));
    ti.push(0x00); // TVP_END_TOKEN: no TVP_ORDER_UNIQUE / TVP_COLUMN_ORDERING
    for id in ids {
        ti.extend_from_slice(&[0x01, 4]); // TVP_ROW_TOKEN, INTN length
        ti.extend_from_slice(&id.to_le_bytes());
    }
    ti.push(0x00); // TVP_END_TOKEN: no more rows
    t(ti, Vec::new())
}

/// Secrets in RPC parameters: the login of `full_session`, then sp_executesql with a named
/// `@pw` bound to `ALTER LOGIN … WITH PASSWORD = @pw` (ParamName sent, as most drivers do),
/// sp_executesql with its value sent positionally (empty ParamName, MS-TDS 2.2.6.6) for
/// `CREATE LOGIN … WITH PASSWORD = @P1`, and a procedure taking a table-valued parameter.
/// The secret values are `N3w-S3cret!pw` and `P0s1tional-S3cret`.
pub fn rpc_secrets() -> Conversation {
    let mut conv = Vec::new();
    plain_login(&mut conv, "his_admin", "master");
    let answer = || {
        packets(
            0x04,
            &[returnstatus(0), done(0xFE, 0x0000, 0)].concat(),
            4096,
            SPID,
        )
    };
    let stmt = nv("ALTER LOGIN his_app WITH PASSWORD = @pw");
    let decl = nv("@pw nvarchar(50)");
    let pw = nv("N3w-S3cret!pw");
    let call = rpc(
        Ok(10),
        &[
            ("@stmt", false, &stmt),
            ("@params", false, &decl),
            ("@pw", false, &pw),
        ],
    );
    client_sends(&mut conv, 0x03, &rpc_message(&[call]));
    conv.push((S, answer()));
    let stmt = nv("CREATE LOGIN nurse01 WITH PASSWORD = @P1, DEFAULT_DATABASE = @P2");
    let decl = nv("@P1 nvarchar(50),@P2 nvarchar(128)");
    let (pw, db) = (nv("P0s1tional-S3cret"), nv("EMR"));
    let call = rpc(
        Ok(10),
        &[
            ("", false, &stmt),
            ("", false, &decl),
            ("", false, &pw),
            ("", false, &db),
        ],
    );
    client_sends(&mut conv, 0x03, &rpc_message(&[call]));
    conv.push((S, answer()));
    let ids = tvp_ids(&[1001, 1002, 1003]);
    let ward = nv("ICU-2");
    let call = rpc(
        Err("dbo.usp_transfer_patients"),
        &[("@ids", false, &ids), ("@ward", false, &ward)],
    );
    client_sends(&mut conv, 0x03, &rpc_message(&[call]));
    server_sends(&mut conv, &procedure_done(3));
    conv
}

/// An Always Encrypted parameter (MS-TDS 2.2.6.6, StatusFlags fEncrypted): the cipher text as
/// BIGVARBINARY(8000), then ParamCipherInfo: the plain TYPE_INFO (CHAR(11), Latin1),
/// EncryptionAlgo 2 (AEAD_AES_256_CBC_HMAC_SHA256), EncryptionType 2 (randomized),
/// DatabaseId 5, CekId 1, CekVersion 1, CekMDVersion, NormVersion 1. Returns the parameter's
/// bytes after its name (status, TYPE_INFO, value, cipher info).
pub fn encrypted_param(cipher: &[u8]) -> Vec<u8> {
    let mut v = vec![0x08]; // StatusFlags: fEncrypted
    v.extend_from_slice(&[0xA5, 0x40, 0x1F]);
    v.extend(ushort(cipher));
    v.extend_from_slice(&[0xAF, 11, 0]);
    v.extend_from_slice(&LATIN1);
    v.extend_from_slice(&[2, 2]);
    for x in [5u32, 1, 1] {
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.extend_from_slice(&[0x00, 0x00, 0x00, 0x00, 0x2A, 0x0B, 0x00, 0x00]);
    v.push(1);
    v
}

/// DATACLASSIFICATION version 2 (MS-TDS 2.2.7.5) for a two-column result: label
/// Confidential - GDPR, information type Health; column 0 unclassified, column 1 labelled
/// and typed with rank High (30), and the query's rank High.
pub fn dataclassification_v2() -> Vec<u8> {
    let mut v = vec![0xA3];
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend(b_varchar("Confidential - GDPR"));
    v.extend(b_varchar("989ADC05-3F3F-0588-A635-F475B994915B"));
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend(b_varchar("Health"));
    v.extend(b_varchar("6E2C5B18-97CF-3073-27AB-F12F87493DA7"));
    v.extend_from_slice(&30i32.to_le_bytes());
    v.extend_from_slice(&2u16.to_le_bytes());
    v.extend_from_slice(&0u16.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&[0, 0, 0, 0]);
    v.extend_from_slice(&30i32.to_le_bytes());
    v
}

/// Pre-login and a SQL login of `his_app` to `EMR` whose LOGIN7 carries the FeatureExt
/// `features`, answered with the login response plus a FEATUREEXTACK (2.2.7.11) of the feature
/// acknowledgements `acks` (FeatureId, FeatureAckDataLen, data …; the terminator is added).
fn feature_login(conv: &mut Conversation, features: &[u8], acks: &[u8]) {
    client_sends(conv, 0x12, &prelogin([17, 0, 0, 1, 0, 0], 2, false));
    server_sends_before_login(conv, 0x04, &prelogin([16, 0, 0x10, 0x67, 0, 0], 2, false));
    client_sends(
        conv,
        0x10,
        &login7_ext(
            "his_app",
            "Sup3r$ecret",
            "HIS.Registration",
            "EMR",
            &[],
            features,
        ),
    );
    let head = login_response("EMR");
    let login = [
        head[..head.len() - 13].to_vec(),
        vec![0xAE],
        acks.to_vec(),
        vec![0xFF],
        done(0xFD, 0, 0),
    ]
    .concat();
    conv.push((S, packets(0x04, &login, 4096, SPID)));
}

/// Always Encrypted and data classification: a LOGIN7 asking for COLUMNENCRYPTION (version 1)
/// and DATACLASSIFICATION (version 2) in its FeatureExt, acknowledged in FEATUREEXTACK
/// (2.2.7.11); an sp_executesql INSERT whose `@ssn` is sent encrypted; a SELECT whose result
/// has the CekTable COLMETADATA carries when column encryption is on (no keys: no encrypted
/// column) and a DATACLASSIFICATION token.
pub fn always_encrypted() -> Conversation {
    let mut conv = Vec::new();
    // COLUMNENCRYPTION version 1; DATACLASSIFICATION version 2, enabled.
    feature_login(
        &mut conv,
        &[feature(0x04, &[1]), feature(0x09, &[2])].concat(),
        &[0x04, 1, 0, 0, 0, 1, 0x09, 2, 0, 0, 0, 2, 1],
    );
    // sp_executesql N'INSERT …', N'@name nvarchar(64),@ssn char(11)', @name, @ssn (encrypted):
    // 65 bytes of AEAD cipher text (version byte, MAC, IV, one block).
    let stmt = nv("INSERT INTO dbo.patient_secure (name, ssn) VALUES (@name, @ssn)");
    let decl = nv("@name nvarchar(64),@ssn char(11)");
    let name = nv("Ann Lee");
    let mut call = rpc(
        Ok(10),
        &[
            ("@stmt", false, &stmt),
            ("@params", false, &decl),
            ("@name", false, &name),
        ],
    );
    let cipher = aead_cipher_text(37, 0x5A);
    call.extend(b_varchar("@ssn"));
    call.extend(encrypted_param(&cipher));
    client_sends(&mut conv, 0x03, &rpc_message(&[call]));
    server_sends(&mut conv, &procedure_done(1));
    client_sends(
        &mut conv,
        0x01,
        &sql_batch("SELECT id, diagnosis FROM dbo.patient WHERE id = 1001"),
    );
    let cols = [
        Col {
            name: "id",
            type_info: vec![0x26, 4],
            value: vec![4, 0xE9, 0x03, 0, 0],
        },
        Col {
            name: "diagnosis",
            type_info: nv("").type_info,
            value: ushort(&u16s("J45.909")),
        },
    ];
    let mut meta = colmetadata(&cols);
    meta.splice(3..3, [0, 0]); // CekTable: EkValueCount 0
    server_sends(
        &mut conv,
        &[
            meta,
            dataclassification_v2(),
            row(&cols),
            done(0xFD, 0x0010, 1),
        ],
    );
    conv
}

/// `n` made-up bytes standing for key material or cipher text (never real secrets): byte `i`
/// is `i * mul ^ xor`.
fn made_up_bytes(n: u8, mul: u8, xor: u8) -> Vec<u8> {
    (0..n).map(|i| i.wrapping_mul(mul) ^ xor).collect()
}

/// 65 bytes in the shape of AEAD_AES_256_CBC_HMAC_SHA256 cipher text (version byte 0x01, MAC,
/// IV, one block), made up by [`made_up_bytes`].
fn aead_cipher_text(mul: u8, xor: u8) -> Vec<u8> {
    [vec![0x01], made_up_bytes(64, mul, xor)].concat()
}

/// `msg` (a SQL batch or RPC message that starts with [`all_headers`]) with an EnclavePackage
/// after ALL_HEADERS: USHORT length, then the package (MS-TDS 2.2.6.6 / 2.2.6.7).
fn with_enclave_package(msg: &[u8], package: &[u8]) -> Vec<u8> {
    let ah = all_headers().len();
    let mut v = msg[..ah].to_vec();
    v.extend_from_slice(&(package.len() as u16).to_le_bytes());
    v.extend_from_slice(package);
    v.extend_from_slice(&msg[ah..]);
    v
}

/// Always Encrypted with secure enclaves: the LOGIN7 asks for COLUMNENCRYPTION version 3, the
/// server acknowledges version 2 with EnclaveType `VBS` (FEATUREEXTACK, MS-TDS 2.2.7.11), so
/// every request carries an EnclavePackage after ALL_HEADERS: an empty one (length 0) before a
/// SQL batch, and a 48-byte one (made-up bytes standing for the enclave session id and the
/// encrypted column keys) before an sp_executesql whose statement needs the enclave.
pub fn always_encrypted_enclave() -> Conversation {
    let mut conv = Vec::new();
    // COLUMNENCRYPTION version 2 and EnclaveType `VBS` (B_VARCHAR).
    let mut ack = vec![0x04, 8, 0, 0, 0, 2];
    ack.extend(b_varchar("VBS"));
    feature_login(&mut conv, &feature(0x04, &[3]), &ack);
    client_sends(
        &mut conv,
        0x01,
        &with_enclave_package(&sql_batch("SELECT COUNT(*) FROM dbo.patient_secure"), &[]),
    );
    let count = [Col {
        name: "",
        type_info: vec![0x26, 4],
        value: vec![4, 42, 0, 0, 0],
    }];
    let mut meta = colmetadata(&count);
    meta.splice(3..3, [0, 0]); // CekTable: EkValueCount 0
    server_sends(&mut conv, &[meta, row(&count), done(0xFD, 0x0010, 1)]);
    // sp_executesql N'SELECT … WHERE ssn LIKE @pattern', N'@pattern char(11)', @pattern
    // (encrypted: 65 bytes of AEAD cipher text), after a 48-byte EnclavePackage.
    let stmt = nv("SELECT name FROM dbo.patient_secure WHERE ssn LIKE @pattern");
    let decl = nv("@pattern char(11)");
    let mut call = rpc(
        Ok(10),
        &[("@stmt", false, &stmt), ("@params", false, &decl)],
    );
    let cipher = aead_cipher_text(53, 0x3C);
    call.extend(b_varchar("@pattern"));
    call.extend(encrypted_param(&cipher));
    let package = made_up_bytes(48, 29, 0xC3);
    client_sends(
        &mut conv,
        0x03,
        &with_enclave_package(&rpc_message(&[call]), &package),
    );
    server_sends(&mut conv, &procedure_done(0));
    // A result with an encrypted column: COLMETADATA with a CekTable of one key and the
    // column's CryptoMetaData; the rows carry its cipher text as varbinary.
    client_sends(
        &mut conv,
        0x01,
        &with_enclave_package(
            &sql_batch("SELECT id, ssn FROM dbo.patient_secure WHERE id IN (1001, 1002)"),
            &[],
        ),
    );
    server_sends(
        &mut conv,
        &[
            encrypted_result_metadata(),
            encrypted_result_row(1001, 0x11),
            encrypted_result_row(1002, 0x22),
            done(0xFD, 0x0010, 2),
        ],
    );
    conv
}

/// COLMETADATA (2.2.7.4) of `id INT, ssn` where `ssn` is Always Encrypted: Count 2, CekTable
/// with one EK_INFO (DatabaseId 5, CekId 1, CekVersion 1, CekMDVersion, one
/// EncryptionKeyValue: a made-up 40-byte EncryptedKey, KeyStoreName `MSSQL_CERTIFICATE_STORE`,
/// KeyPath, AsymmetricAlgo `RSA_OAEP`), then the columns: `id` INTN(4); `ssn` with fEncrypted,
/// TYPE_INFO BIGVARBINARY(8000) (the cipher text's type), CryptoMetaData = Ordinal 0,
/// UserType 0, BaseTypeInfo BIGCHAR(11) with its collation, EncryptionAlgo 2
/// (AEAD_AES_256_CBC_HMAC_SHA256), EncryptionAlgoType 1 (deterministic), NormVersion 1.
fn encrypted_result_metadata() -> Vec<u8> {
    let mut v = vec![0x81];
    v.extend_from_slice(&2u16.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes()); // EkValueCount
    v.extend_from_slice(&5u32.to_le_bytes());
    v.extend_from_slice(&1u32.to_le_bytes());
    v.extend_from_slice(&1u32.to_le_bytes());
    v.extend_from_slice(&0x0000_0000_0000_07D1u64.to_le_bytes());
    v.push(1);
    let key = made_up_bytes(40, 71, 0x99);
    v.extend_from_slice(&(key.len() as u16).to_le_bytes());
    v.extend(key);
    v.extend(b_varchar("MSSQL_CERTIFICATE_STORE"));
    v.extend(us_varchar(
        "CurrentUser/My/A66BB0F6DD70BDFF02B62D0F87E340288E6F9305",
    ));
    v.extend(b_varchar("RSA_OAEP"));
    // id
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&0x0009u16.to_le_bytes());
    v.extend_from_slice(&[0x26, 4]);
    v.extend(b_varchar("id"));
    // ssn: Flags fNullable | fEncrypted (0x0800)
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&0x0809u16.to_le_bytes());
    v.push(0xA5);
    v.extend_from_slice(&8000u16.to_le_bytes());
    v.extend_from_slice(&0u16.to_le_bytes()); // Ordinal
    v.extend_from_slice(&0u32.to_le_bytes()); // UserType
    v.push(0xAF);
    v.extend_from_slice(&11u16.to_le_bytes());
    v.extend_from_slice(&LATIN1);
    v.extend_from_slice(&[2, 1, 1]);
    v.extend(b_varchar("ssn"));
    v
}

/// A ROW of [`encrypted_result_metadata`]: the id, then 65 bytes of cipher text.
fn encrypted_result_row(id: u32, seed: u8) -> Vec<u8> {
    let mut v = vec![0xD1, 4];
    v.extend_from_slice(&id.to_le_bytes());
    v.extend_from_slice(&65u16.to_le_bytes());
    v.extend(aead_cipher_text(13, seed));
    v
}

/// A pooling client (the JDBC and ODBC drivers' statement caches): `handles` statements are
/// prepared with sp_prepexec (MS-TDS 2.2.6.6, procedure id 13; the server returns each handle as
/// an OUTPUT RETURNVALUE, 2.2.7.18) and kept, then `executes` sp_execute calls (id 12) cycle
/// over them with positional values. Not a golden fixture: `tds_synth --bench-pool` writes it
/// for the benchmark of a session that holds many prepared handles.
pub fn statement_pool(handles: i32, executes: usize) -> Conversation {
    let mut conv = Vec::new();
    plain_login(&mut conv, "his_app", "EMR");
    let decl = nv("@P0 int,@P1 nvarchar(64),@P2 int,@P3 datetime2");
    let null_handle = int4_null();
    for h in 1..=handles {
        let stmt = nv(&format!(
            "SELECT name, ward FROM dbo.patient_{h} WHERE id = @P0 AND ward = @P1 AND bed = @P2 AND admitted < @P3"
        ));
        let (p0, p1, p2) = (int4(h), nv("内科"), int4(7));
        client_sends(
            &mut conv,
            0x03,
            &rpc_message(&[rpc(
                Ok(13),
                &[
                    ("@handle", true, &null_handle),
                    ("", false, &decl),
                    ("", false, &stmt),
                    ("", false, &p0),
                    ("", false, &p1),
                    ("", false, &p2),
                    ("", false, &int4_null()),
                ],
            )]),
        );
        let mut answer = vec![returnvalue_int(0, "@handle", h)];
        answer.extend(procedure_done(1));
        server_sends(&mut conv, &answer);
    }
    for k in 0..executes {
        let h = int4(k as i32 % handles.max(1) + 1);
        let (p0, p1, p2) = (int4(k as i32), nv("外科"), int4(3));
        client_sends(
            &mut conv,
            0x03,
            &rpc_message(&[rpc(
                Ok(12),
                &[
                    ("", false, &h),
                    ("", false, &p0),
                    ("", false, &p1),
                    ("", false, &p2),
                    ("", false, &int4_null()),
                ],
            )]),
        );
        server_sends(&mut conv, &procedure_done(1));
    }
    conv
}

/// sysbench's `oltp_read_write` transaction (its `oltp_common.lua` statements, with the same
/// parameters and result shapes) as the Microsoft JDBC driver sends it over TDS with prepared
/// statements: each statement is prepared on first use with `sp_prepexec` (ProcID 13: the
/// `@handle` OUTPUT, the `@P0 int, …` declaration, the text, the values; the handle comes back as
/// a RETURNVALUE, MS-TDS 2.2.7.18) and run as `sp_execute` (ProcID 12: handle, values) after,
/// strings go as NVARCHAR (the driver's default, `sendStringParametersAsUnicode`), and the
/// transaction is a TM_BEGIN_XACT / TM_COMMIT_XACT pair (2.2.6.9). The table is sysbench's
/// `sbtest1 (id INT, k INT, c CHAR(120), pad CHAR(60))`: `c` comes back as BIGCHAR(120) in the
/// Latin1 collation (2.2.5.4.2, 2.2.5.1.2). The conversation of the benches: it is what an OLTP
/// application's pooled connection carries, the TDS twin of the MySQL bench's sysbench capture.
pub struct Oltp {
    /// Handle of each statement once prepared on this connection.
    handles: [Option<i32>; OLTP_STATEMENTS.len()],
    next_handle: i32,
    rng: u64,
}

/// Statements of one `oltp_read_write` transaction (in sysbench's order, with its defaults: 10
/// point selects, one of each range query, two updates, a delete and an insert) and the rows
/// each returns (a result set) or affects.
const OLTP_STATEMENTS: [(&str, &str, OltpAnswer); 9] = [
    (
        "SELECT c FROM sbtest1 WHERE id=@P0",
        "@P0 int",
        OltpAnswer::CRows(1),
    ),
    (
        "SELECT c FROM sbtest1 WHERE id BETWEEN @P0 AND @P1",
        "@P0 int,@P1 int",
        OltpAnswer::CRows(100),
    ),
    (
        "SELECT SUM(k) FROM sbtest1 WHERE id BETWEEN @P0 AND @P1",
        "@P0 int,@P1 int",
        OltpAnswer::Sum,
    ),
    (
        "SELECT c FROM sbtest1 WHERE id BETWEEN @P0 AND @P1 ORDER BY c",
        "@P0 int,@P1 int",
        OltpAnswer::CRows(100),
    ),
    (
        "SELECT DISTINCT c FROM sbtest1 WHERE id BETWEEN @P0 AND @P1 ORDER BY c",
        "@P0 int,@P1 int",
        OltpAnswer::CRows(100),
    ),
    (
        "UPDATE sbtest1 SET k=k+1 WHERE id=@P0",
        "@P0 int",
        OltpAnswer::Affected(1),
    ),
    (
        "UPDATE sbtest1 SET c=@P0 WHERE id=@P1",
        "@P0 nvarchar(4000),@P1 int",
        OltpAnswer::Affected(1),
    ),
    (
        "DELETE FROM sbtest1 WHERE id=@P0",
        "@P0 int",
        OltpAnswer::Affected(1),
    ),
    (
        "INSERT INTO sbtest1 (id, k, c, pad) VALUES (@P0, @P1, @P2, @P3)",
        "@P0 int,@P1 int,@P2 nvarchar(4000),@P3 nvarchar(4000)",
        OltpAnswer::Affected(1),
    ),
];

#[derive(Clone, Copy)]
enum OltpAnswer {
    /// A result set of `c` with this many rows.
    CRows(u64),
    /// One row, one INTN(4) column.
    Sum,
    /// No result set; the statement affected this many rows.
    Affected(u64),
}

/// What a transaction holds, for checking what a decoder made of it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OltpCounts {
    /// RPC requests (one record each).
    pub rpcs: u64,
    /// Of which `sp_prepexec`.
    pub prepexecs: u64,
    /// TM requests (begin, commit).
    pub tm: u64,
    /// Rows returned or affected, summed over the RPCs.
    pub rows: u64,
}

impl std::ops::AddAssign for OltpCounts {
    fn add_assign(&mut self, c: OltpCounts) {
        self.rpcs += c.rpcs;
        self.prepexecs += c.prepexecs;
        self.tm += c.tm;
        self.rows += c.rows;
    }
}

impl Oltp {
    /// A connection's statement state; `seed` varies the values between connections.
    pub fn new(seed: u64) -> Self {
        Oltp {
            handles: [None; OLTP_STATEMENTS.len()],
            next_handle: 1,
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        }
    }

    /// The login every pooled connection starts with.
    pub fn login() -> Conversation {
        let mut conv = Vec::new();
        client_sends(&mut conv, 0x12, &prelogin([17, 0, 0, 1, 0, 0], 2, false));
        server_sends_before_login(
            &mut conv,
            0x04,
            &prelogin([16, 0, 0x10, 0x67, 0, 0], 2, false),
        );
        client_sends(
            &mut conv,
            0x10,
            &login7(
                "sbtest",
                "Sup3r$ecret",
                "Microsoft JDBC Driver for SQL Server",
                "sbtest",
                &[],
            ),
        );
        conv.push((S, packets(0x04, &login_response("sbtest"), 4096, SPID)));
        conv
    }

    /// A sysbench id: uniform over its default table of 10,000 rows.
    fn id(&mut self) -> i32 {
        // xorshift64: deterministic, so the bench file is the same on every machine.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng % 10_000) as i32 + 1
    }

    /// sysbench's `c` / `pad` text: groups of 11 digits joined by '-'.
    fn text(&mut self, groups: usize) -> String {
        (0..groups)
            .map(|_| format!("{:011}", self.id() as u64 * 7_919_113 % 100_000_000_000))
            .collect::<Vec<_>>()
            .join("-")
    }

    /// One `oltp_read_write` transaction: BEGIN, 18 statements, COMMIT.
    pub fn transaction(&mut self) -> (Conversation, OltpCounts) {
        let mut conv = Vec::new();
        let mut counts = OltpCounts::default();
        let mut tm = all_headers();
        tm.extend_from_slice(&5u16.to_le_bytes()); // TM_BEGIN_XACT
        tm.push(0); // isolation level: unchanged
        tm.push(0); // no transaction name
        client_sends(&mut conv, 0x0E, &tm);
        server_sends(&mut conv, &[envchange_begin_tran(), done(0xFD, 0, 0)]);
        counts.tm += 1;
        let plan = [
            (0usize, 10usize),
            (1, 1),
            (2, 1),
            (3, 1),
            (4, 1),
            (5, 1),
            (6, 1),
            (7, 1),
            (8, 1),
        ];
        for (stmt, times) in plan {
            for _ in 0..times {
                self.statement(stmt, &mut conv, &mut counts);
            }
        }
        let mut tm = all_headers();
        tm.extend_from_slice(&7u16.to_le_bytes()); // TM_COMMIT_XACT
        tm.push(0);
        tm.push(0);
        client_sends(&mut conv, 0x0E, &tm);
        let mut commit = vec![9u8, 0, 8];
        commit.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
        server_sends(&mut conv, &[with_len16(0xE3, &commit), done(0xFD, 0, 0)]);
        counts.tm += 1;
        (conv, counts)
    }

    fn statement(&mut self, k: usize, conv: &mut Conversation, counts: &mut OltpCounts) {
        let (text, decl, answer) = OLTP_STATEMENTS[k];
        let id = self.id();
        let values: Vec<Typed> = match k {
            0 | 5 | 7 => vec![int4(id)],
            1..=4 => vec![int4(id), int4(id + 99)],
            6 => vec![nv(&self.text(10)), int4(id)],
            _ => vec![
                int4(id),
                int4(self.id()),
                nv(&self.text(10)),
                nv(&self.text(5)),
            ],
        };
        let handle = self.handles[k];
        let handle_param = int4_null();
        let decl_param = nv(decl);
        let text_param = nv(text);
        let handle_value = handle.map(int4);
        let mut params: Vec<(&str, bool, &Typed)> = match &handle_value {
            Some(h) => vec![("", false, h)],
            None => vec![
                ("@handle", true, &handle_param),
                ("", false, &decl_param),
                ("", false, &text_param),
            ],
        };
        params.extend(values.iter().map(|v| ("", false, v)));
        let proc_id = if handle.is_some() { 12 } else { 13 };
        client_sends(conv, 0x03, &rpc_message(&[rpc(Ok(proc_id), &params)]));

        let mut tokens = Vec::new();
        let rows = match answer {
            OltpAnswer::CRows(n) => {
                let c = Col {
                    name: "c",
                    type_info: [vec![0xAF], 120u16.to_le_bytes().to_vec(), LATIN1.to_vec()]
                        .concat(),
                    value: Vec::new(),
                };
                tokens.push(colmetadata(std::slice::from_ref(&c)));
                for _ in 0..n {
                    let mut text = self.text(10).into_bytes();
                    text.resize(120, b' '); // CHAR(120) is blank-padded
                    tokens.push([vec![0xD1], 120u16.to_le_bytes().to_vec(), text].concat());
                }
                tokens.push(done(0xFF, 0x0011, n));
                n
            }
            OltpAnswer::Sum => {
                let sum = Col {
                    name: "",
                    type_info: vec![0x26, 4],
                    value: [vec![4], (id * 50).to_le_bytes().to_vec()].concat(),
                };
                tokens.push(colmetadata(std::slice::from_ref(&sum)));
                tokens.push(row(std::slice::from_ref(&sum)));
                tokens.push(done(0xFF, 0x0011, 1));
                1
            }
            OltpAnswer::Affected(n) => {
                tokens.push(done(0xFF, 0x0011, n));
                n
            }
        };
        tokens.push(returnstatus(0));
        if handle.is_none() {
            let h = self.next_handle;
            self.next_handle += 1;
            self.handles[k] = Some(h);
            tokens.push(returnvalue_int(0, "@handle", h));
            counts.prepexecs += 1;
        }
        tokens.push(done(0xFE, 0x0000, 0));
        server_sends(conv, &tokens);
        counts.rpcs += 1;
        counts.rows += rows;
    }
}

/// A pooled connection's login, then `transactions` sysbench `oltp_read_write` transactions
/// (see [`Oltp`]): the first prepares every statement with `sp_prepexec`, the others execute them.
pub fn oltp(transactions: usize) -> Conversation {
    let mut conv = Oltp::login();
    let mut o = Oltp::new(1);
    for _ in 0..transactions {
        conv.extend(o.transaction().0);
    }
    conv
}

/// All conversations by name.
pub fn all() -> Vec<(&'static str, Conversation)> {
    vec![
        ("full_session", full_session()),
        ("login_failed", login_failed()),
        ("login_only_tls", login_only_tls()),
        ("full_tls", full_tls()),
        ("tds8", tds8()),
        ("ntlm_login", ntlm_login()),
        ("mars", mars()),
        ("bulk_and_tm", bulk_and_tm()),
        ("rpc_secrets", rpc_secrets()),
        ("always_encrypted", always_encrypted()),
        ("always_encrypted_enclave", always_encrypted_enclave()),
        ("oltp", oltp(2)),
        ("sql2000", sql2000(false)),
        ("sql2000_login_failed", sql2000(true)),
        ("tds70", tds70()),
        ("cursor_prepexec", cursor_prepexec()),
        ("fedauth_login", fedauth_login()),
    ]
}
