//! # dbtap-tds: SQL Server's Tabular Data Stream (TDS 7.0 – 7.4, TDS 8.0 detected), sans-IO
//!
//! Reads both directions of one TDS connection (as handed over by dbtap's stream layer) and
//! emits protocol-neutral [`DbEvent`]s: one `login` record per login (PRELOGIN, LOGIN7, SSPI /
//! NTLM, FedAuth; LOGINACK or the login error), one `query` per SQL batch, one `rpc` per RPC
//! (procedure, statement and typed parameters), `cancel` for Attention, `bulk_load`,
//! `transaction` for Transaction Manager requests; responses with the first error, row counts
//! and return status; encryption (full TLS, or login-only TLS) reported; MARS logical sessions
//! demultiplexed. See `PROTOCOL.md`.
//!
//! Layers, bottom up:
//! - [`packet`]: the 8-byte packet header;
//! - [`wire`], [`prelogin`], [`login7`], [`requests`], [`types`], [`collation`]: pure parse
//!   functions over bounded slices;
//! - [`tokens`]: the incremental token-stream reader that skips result rows;
//! - [`parser`]: the [`StreamParser`].
//!
//! Invariants: no panics, hangs or unbounded allocation on any input; the LOGIN7 password,
//! SSPI / NTLM responses and FedAuth tokens are never read into any event.
#![forbid(unsafe_code)]

pub mod collation;
pub mod login7;
pub mod packet;
pub mod parser;
pub mod prelogin;
pub mod prepared;
pub mod requests;
pub mod tokens;
pub mod tvp;
pub mod types;
pub mod wire;

use dbtap_core::{Direction, Probe, ProtocolSpec, SessionOpts, StreamParser};

pub use parser::TdsParser;

use packet::{ty, Header, HEADER_LEN};

/// Registration with the engine.
pub const SPEC: ProtocolSpec = ProtocolSpec {
    name: "tds",
    default_ports: &[1433],
    probe,
    session_start,
    new_parser,
    redirect: None,
};

fn new_parser(opts: SessionOpts) -> Box<dyn StreamParser> {
    Box::new(TdsParser::new(opts))
}

/// True for a client's PRELOGIN or LOGIN7: the first message of a TDS 7.x connection.
pub fn session_start(dir: Direction, head: &[u8]) -> bool {
    dir == Direction::ToServer
        && matches!(head.first(), Some(&ty::PRELOGIN | &ty::LOGIN7))
        && probe(dir, head) == Probe::Certain
}

/// TDS versions a LOGIN7 asks for (MS-TDS 2.2.6.4 TDSVersion, little-endian on the wire).
const LOGIN7_VERSIONS: [u32; 7] = [
    0x7000_0000,
    0x7100_0000,
    0x7100_0001,
    0x7209_0002,
    0x730A_0003,
    0x730B_0003,
    0x7400_0004,
];

/// Looks at the first bytes of one direction.
///
/// - `ToServer`: a PRELOGIN with a well-formed option table, or a LOGIN7 whose length and TDS
///   version fit, is `Certain`; a TLS ClientHello offering ALPN `tds/8.0` is `Certain` (TDS 8.0);
///   a pre-TDS7 login (TDS 4.2 / Sybase 5.0, recorded as unsupported) is `Certain`; a SQL batch
///   whose text reads as UTF-16, an RPC or an Attention is `Unsure`.
/// - `ToClient`: a PRELOGIN answer is `Certain`; a tabular result starting with a known token is
///   `Unsure`.
/// - HTTP, SSH, MySQL and PostgreSQL packets do not fit the header (type, status bits, window
///   byte) and are `NotForUs`.
pub fn probe(dir: Direction, head: &[u8]) -> Probe {
    if head.is_empty() {
        return Probe::NeedMore;
    }
    if dir == Direction::ToServer && parser::is_tls_record(head) {
        return match tls_client_hello_alpn(head) {
            Some(true) => Probe::Certain,
            Some(false) => Probe::Unsure,
            None if head.len() < 512 && head.first() == Some(&0x16) => Probe::NeedMore,
            None => Probe::NotForUs,
        };
    }
    let Some(h) = Header::parse(head) else {
        return if head.len() < HEADER_LEN {
            Probe::NeedMore
        } else {
            Probe::NotForUs
        };
    };
    if !h.plausible() || h.len > packet::MAX_PACKET_LEN {
        return Probe::NotForUs;
    }
    let payload = head
        .get(HEADER_LEN..h.len.min(head.len()))
        .unwrap_or_default();
    let whole = head.len() >= h.len;
    match (dir, h.ty) {
        (Direction::ToServer, ty::PRELOGIN) => {
            if !whole {
                return if h.len <= 4096 {
                    Probe::NeedMore
                } else {
                    Probe::NotForUs
                };
            }
            if h.eom() && prelogin::well_formed(payload) {
                Probe::Certain
            } else {
                Probe::NotForUs
            }
        }
        (Direction::ToServer, ty::LOGIN7) => {
            let mut r = wire::Reader::new(payload);
            let (Some(len), Some(ver)) = (r.u32le(), r.u32le()) else {
                return Probe::NeedMore;
            };
            if LOGIN7_VERSIONS.contains(&ver)
                && (len as usize) >= login7::FIXED_LEN_71
                && (len as usize) <= login7::MAX_LOGIN7_LEN
            {
                Probe::Certain
            } else {
                Probe::NotForUs
            }
        }
        (Direction::ToServer, ty::PRE_TDS7_LOGIN) => {
            // TDS 4.2 / 5.0 login record: host name (30 bytes) then its length byte (MS-TDS
            // does not cover it; Sybase's TDS 5.0 reference does).
            let Some(host) = payload.get(..31) else {
                return if whole {
                    Probe::NotForUs
                } else {
                    Probe::NeedMore
                };
            };
            // The name is padded with zeros to 30 bytes: random bytes do not look like that.
            let n = host[30] as usize;
            if n <= 30
                && host[..n].iter().all(|b| b.is_ascii_graphic() || *b == b' ')
                && host[n..30].iter().all(|&b| b == 0)
            {
                Probe::Certain
            } else {
                Probe::NotForUs
            }
        }
        (Direction::ToServer, ty::SQL_BATCH) => {
            let body = payload
                .get(requests::all_headers_len(payload)..)
                .unwrap_or_default();
            let pairs: Vec<&[u8]> = body.chunks_exact(2).take(16).collect();
            if pairs.len() < 2 {
                return if whole {
                    Probe::NotForUs
                } else {
                    Probe::NeedMore
                };
            }
            let text = pairs.iter().all(|c| {
                let u = u16::from_le_bytes([c[0], c[1]]);
                u == 0x09 || u == 0x0A || u == 0x0D || (0x20..0xD800).contains(&u) || u >= 0xE000
            });
            let ascii = pairs.iter().filter(|c| c[1] == 0).count() * 2 >= pairs.len();
            if text && ascii {
                Probe::Unsure
            } else {
                Probe::NotForUs
            }
        }
        (Direction::ToServer, ty::RPC) => {
            if payload.len() >= 4 {
                Probe::Unsure
            } else if whole {
                Probe::NotForUs
            } else {
                Probe::NeedMore
            }
        }
        (Direction::ToServer, ty::ATTENTION) if h.len == HEADER_LEN => Probe::Unsure,
        (Direction::ToClient, ty::TABULAR_RESULT) => {
            if whole && h.eom() && prelogin::well_formed(payload) {
                return Probe::Certain;
            }
            match payload.first() {
                Some(&t) if tokens::tok::is_known(t) => Probe::Unsure,
                Some(_) => Probe::NotForUs,
                None => Probe::NeedMore,
            }
        }
        _ => Probe::NotForUs,
    }
}

/// The ALPN of a TLS ClientHello at the head of `d`: `Some(true)` when it offers `tds/8.0`,
/// `Some(false)` for a ClientHello without it, `None` when `d` is not (yet) a whole ClientHello.
fn tls_client_hello_alpn(d: &[u8]) -> Option<bool> {
    let mut r = wire::Reader::new(d);
    if r.u8()? != 0x16 {
        return None;
    }
    r.skip(2)?;
    let rec_len = r.u16be()? as usize;
    let rec = r.take(rec_len)?;
    let mut h = wire::Reader::new(rec);
    if h.u8()? != 1 {
        return None;
    }
    h.skip(3 + 2 + 32)?; // length, client_version, random
    let sid = h.u8()? as usize;
    h.skip(sid)?;
    let cs = h.u16be()? as usize;
    h.skip(cs)?;
    let comp = h.u8()? as usize;
    h.skip(comp)?;
    let Some(ext_len) = h.u16be() else {
        return Some(false);
    };
    let mut e = wire::Reader::new(h.take(ext_len as usize)?);
    while e.remaining() >= 4 {
        let t = e.u16be()?;
        let n = e.u16be()? as usize;
        let body = e.take(n)?;
        if t == 16 {
            // application_layer_protocol_negotiation (RFC 7301): list of length-prefixed names.
            let mut a = wire::Reader::new(body.get(2..).unwrap_or_default());
            while let Some(l) = a.u8() {
                if a.take(l as usize)? == b"tds/8.0" {
                    return Some(true);
                }
            }
            return Some(false);
        }
    }
    Some(false)
}

/// Whether a TLS ClientHello at the head of `d` offers ALPN `tds/8.0`.
pub(crate) fn tls_alpn_tds8(d: &[u8]) -> bool {
    tls_client_hello_alpn(d) == Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_protocols_are_refused() {
        for d in [
            &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"SSH-2.0-OpenSSH_9.6\r\n",
            // MySQL greeting.
            b"\x4a\x00\x00\x00\x0a8.0.36\x00\x08\x00\x00\x00",
            // PostgreSQL StartupMessage and Query.
            b"\x00\x00\x00\x08\x04\xd2\x16\x2f",
            b"Q\x00\x00\x00\x0dselect 1\x00",
        ] {
            assert_eq!(probe(Direction::ToServer, d), Probe::NotForUs, "{d:?}");
            assert!(!session_start(Direction::ToServer, d));
            assert_ne!(probe(Direction::ToClient, d), Probe::Certain, "{d:?}");
        }
    }

    #[test]
    fn pre_tds7_login_needs_a_zero_padded_host_name() {
        let mut p = vec![0x02, 0x00, 0x02, 0x00, 0, 0, 1, 0];
        let mut host = b"ward-pc".to_vec();
        host.resize(30, 0);
        p.extend_from_slice(&host);
        p.push(7);
        p.resize(520, 0);
        assert_eq!(probe(Direction::ToServer, &p), Probe::Certain);
        p[8 + 20] = b'x'; // garbage after the name
        assert_eq!(probe(Direction::ToServer, &p), Probe::NotForUs);
    }

    #[test]
    fn prelogin_and_login7_are_certain() {
        // MS-TDS 4.2 pre-login request.
        let mut p = vec![0x12, 0x01, 0x00, 0x2F, 0x00, 0x00, 0x01, 0x00];
        p.extend_from_slice(&[
            0x00, 0x00, 0x1A, 0x00, 0x06, 0x01, 0x00, 0x20, 0x00, 0x01, 0x02, 0x00, 0x21, 0x00,
            0x01, 0x03, 0x00, 0x22, 0x00, 0x04, 0x04, 0x00, 0x26, 0x00, 0x01, 0xFF, 0x09, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0xB8, 0x0D, 0x00, 0x00, 0x01,
        ]);
        assert_eq!(probe(Direction::ToServer, &p), Probe::Certain);
        assert!(session_start(Direction::ToServer, &p));
        assert_eq!(probe(Direction::ToServer, &p[..20]), Probe::NeedMore);
        let l = login7::tests::build("u", "p", "d", &[]);
        let mut m = vec![0x10, 0x01];
        m.extend_from_slice(&((l.len() + 8) as u16).to_be_bytes());
        m.extend_from_slice(&[0, 0, 1, 0]);
        m.extend_from_slice(&l);
        assert_eq!(probe(Direction::ToServer, &m), Probe::Certain);
    }
}
