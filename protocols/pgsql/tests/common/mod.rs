//! Test support: stream files (see `streams/extract.py`) fed through `dbtap_core::Driver`
//! exactly as the engine does, and helpers to build messages by hand.
#![allow(dead_code)]

use dbtap_core::{DbEvent, Driver, Limits, SessionOpts};
use dbtap_pgsql::PgParser;

#[allow(unused_imports)] // each test binary uses its own subset
pub use dbtap_core::testing::{pairs, unhex, Seg};

pub fn load(name: &str) -> Vec<Seg> {
    let path = format!("{}/tests/streams/{name}.txt", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    dbtap_core::testing::parse_stream(&text)
}

/// Parse the text of a stream file.
pub fn parse(text: &str) -> Vec<Seg> {
    dbtap_core::testing::parse_stream(text)
}

/// Feed segments through a driver, then end both directions.
pub fn feed(segs: &[Seg], opts: SessionOpts, limits: Limits) -> (Vec<DbEvent>, Driver, PgParser) {
    let mut p = PgParser::new(opts);
    let (out, d) = dbtap_core::testing::feed(&mut p, segs, limits);
    (out, d, p)
}

pub fn run(name: &str) -> Vec<DbEvent> {
    feed(&load(name), SessionOpts::default(), Limits::default()).0
}

pub fn run_mid(name: &str) -> Vec<DbEvent> {
    feed(
        &load(name),
        SessionOpts { midstream: true },
        Limits::default(),
    )
    .0
}

/// A compact line per pair: tx, op, sql, status, rows, error code.
pub fn summary(ev: &[DbEvent]) -> Vec<String> {
    dbtap_core::testing::pair_lines(ev)
}

/// Hand-made messages, laid out as "Message Formats" describes them.
pub mod msg {
    /// A typed message: type byte, Int32 length (body + 4), body.
    pub fn typed(ty: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![ty];
        v.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        v.extend_from_slice(body);
        v
    }
    /// `String`: the bytes and a NUL.
    pub fn cstr(s: &str) -> Vec<u8> {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        v
    }
    /// StartupMessage: Int32 length, Int32 196608 (3.0), name/value pairs, final NUL.
    pub fn startup(params: &[(&str, &str)]) -> Vec<u8> {
        startup_version(196_608, params)
    }
    pub fn startup_version(version: u32, params: &[(&str, &str)]) -> Vec<u8> {
        let mut body = version.to_be_bytes().to_vec();
        for (k, v) in params {
            body.extend(cstr(k));
            body.extend(cstr(v));
        }
        body.push(0);
        let mut m = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        m.extend(body);
        m
    }
    /// SSLRequest: Int32(8) Int32(80877103).
    pub fn ssl_request() -> Vec<u8> {
        [8u32.to_be_bytes(), 80_877_103u32.to_be_bytes()].concat()
    }
    /// AuthenticationRequest: 'R', Int32 length, Int32 code, data.
    pub fn auth(code: u32, data: &[u8]) -> Vec<u8> {
        let mut b = code.to_be_bytes().to_vec();
        b.extend_from_slice(data);
        typed(b'R', &b)
    }
    /// ParameterStatus: 'S', name, value.
    pub fn param_status(k: &str, v: &str) -> Vec<u8> {
        typed(b'S', &[cstr(k), cstr(v)].concat())
    }
    /// BackendKeyData: 'K', Int32 pid, Byte4 key (3.0).
    pub fn key_data(pid: u32, key: u32) -> Vec<u8> {
        typed(b'K', &[pid.to_be_bytes(), key.to_be_bytes()].concat())
    }
    /// ReadyForQuery: 'Z', status byte.
    pub fn ready(status: u8) -> Vec<u8> {
        typed(b'Z', &[status])
    }
    /// Query: 'Q', text.
    pub fn query(sql: &str) -> Vec<u8> {
        typed(b'Q', &cstr(sql))
    }
    /// CommandComplete: 'C', tag.
    pub fn complete(tag: &str) -> Vec<u8> {
        typed(b'C', &cstr(tag))
    }
    /// RowDescription with one text column named `name`.
    pub fn row_desc(name: &str) -> Vec<u8> {
        let mut b = 1u16.to_be_bytes().to_vec();
        b.extend(cstr(name));
        b.extend_from_slice(&0u32.to_be_bytes()); // table OID
        b.extend_from_slice(&0u16.to_be_bytes()); // column number
        b.extend_from_slice(&25u32.to_be_bytes()); // type OID: text
        b.extend_from_slice(&(-1i16).to_be_bytes()); // type size: variable
        b.extend_from_slice(&(-1i32).to_be_bytes()); // type modifier
        b.extend_from_slice(&0u16.to_be_bytes()); // format: text
        typed(b'T', &b)
    }
    /// DataRow with one column value.
    pub fn data_row(v: &[u8]) -> Vec<u8> {
        let mut b = 1u16.to_be_bytes().to_vec();
        b.extend_from_slice(&(v.len() as u32).to_be_bytes());
        b.extend_from_slice(v);
        typed(b'D', &b)
    }
    /// ErrorResponse: S, V, C, M fields, terminator.
    pub fn error(sev: &str, code: &str, m: &str) -> Vec<u8> {
        let mut b = Vec::new();
        for (c, v) in [(b'S', sev), (b'V', sev), (b'C', code), (b'M', m)] {
            b.push(c);
            b.extend(cstr(v));
        }
        b.push(0);
        typed(b'E', &b)
    }
    /// NoticeResponse.
    pub fn notice(m: &str) -> Vec<u8> {
        let mut e = error("NOTICE", "00000", m);
        e[0] = b'N';
        e
    }
    /// Parse: name, query, Int16 n, n OIDs.
    pub fn parse(name: &str, sql: &str, oids: &[u32]) -> Vec<u8> {
        let mut b = [cstr(name), cstr(sql)].concat();
        b.extend_from_slice(&(oids.len() as u16).to_be_bytes());
        for o in oids {
            b.extend_from_slice(&o.to_be_bytes());
        }
        typed(b'P', &b)
    }
    /// Bind: portal, statement, formats, values (None = NULL), no result formats.
    pub fn bind(portal: &str, stmt: &str, formats: &[u16], values: &[Option<&[u8]>]) -> Vec<u8> {
        let mut b = [cstr(portal), cstr(stmt)].concat();
        b.extend_from_slice(&(formats.len() as u16).to_be_bytes());
        for f in formats {
            b.extend_from_slice(&f.to_be_bytes());
        }
        b.extend_from_slice(&(values.len() as u16).to_be_bytes());
        for v in values {
            match v {
                None => b.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(v) => {
                    b.extend_from_slice(&(v.len() as u32).to_be_bytes());
                    b.extend_from_slice(v);
                }
            }
        }
        b.extend_from_slice(&0u16.to_be_bytes());
        typed(b'B', &b)
    }
    /// Execute: portal, Int32 max rows.
    pub fn execute(portal: &str, max_rows: u32) -> Vec<u8> {
        let mut b = cstr(portal);
        b.extend_from_slice(&max_rows.to_be_bytes());
        typed(b'E', &b)
    }
    /// Describe / Close: 'S' or 'P', name.
    pub fn describe(kind: u8, name: &str) -> Vec<u8> {
        let mut b = vec![kind];
        b.extend(cstr(name));
        typed(b'D', &b)
    }
    pub fn close(kind: u8, name: &str) -> Vec<u8> {
        let mut b = vec![kind];
        b.extend(cstr(name));
        typed(b'C', &b)
    }
    pub fn sync() -> Vec<u8> {
        typed(b'S', &[])
    }
    pub fn terminate() -> Vec<u8> {
        typed(b'X', &[])
    }
}
