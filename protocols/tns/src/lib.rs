//! # dbtap-tns: Oracle TNS and TTC, sans-IO
//!
//! Reads both directions of one Oracle Net connection (as handed over by dbtap's stream layer)
//! and emits protocol-neutral [`DbEvent`]s: one `Request` + `Response` per operation (login,
//! statement, commit, rollback, logout), the server banner, session updates, encryption (native
//! network encryption, TCPS), desyncs. See `PROTOCOL.md` for what is decoded, how it was
//! learnt, and what is not decoded.
//!
//! Layers, bottom up:
//! - [`frame`]: the TNS header (2-byte length, 4-byte from version 315), packet types;
//! - [`net`]: CONNECT / ACCEPT / REFUSE / REDIRECT, connect descriptors, ANO;
//! - [`redirect`]: a listener's REDIRECT found in the server's bytes, for the pipeline;
//! - [`ttc`], [`rows`], [`charset`]: TTC messages and functions, query answers stepped over,
//!   character sets;
//! - [`parser`]: the [`StreamParser`].
//!
//! Invariants: no panics, hangs or unbounded allocation on any input; credentials
//! (AUTH_PASSWORD, AUTH_SESSKEY, AUTH_VFR_DATA, verifiers) are never read into any event.
#![forbid(unsafe_code)]

pub mod charset;
pub mod frame;
pub mod net;
pub mod parser;
pub mod redirect;
pub mod rows;
pub mod ttc;

use dbtap_core::{DbEvent, Direction, Probe, ProtocolSpec, SessionOpts, StreamParser};

pub use parser::TnsParser;
pub use redirect::redirect_in;

use frame::{be16, ty, Header, HEADER_LEN};

/// Registration with the engine.
pub const SPEC: ProtocolSpec = ProtocolSpec {
    name: "tns",
    default_ports: &[1521, 1522, 1526, 2483, 2484],
    probe,
    session_start,
    new_parser,
    redirect: Some(dbtap_core::RedirectFinder {
        // The packet type (TNS header byte 4).
        type_at: 4,
        type_byte: ty::REDIRECT,
        find: redirect_in,
    }),
};

fn new_parser(opts: SessionOpts) -> Box<dyn StreamParser> {
    Box::new(TnsParser::new(opts))
}

/// True for a client's CONNECT: the first packet of every TNS connection.
pub fn session_start(dir: Direction, head: &[u8]) -> bool {
    dir == Direction::ToServer && connect_probe(head) == Probe::Certain
}

/// Versions of TNS seen in practice (Oracle 7 … 23ai).
fn plausible_version(v: u16) -> bool {
    (300..=330).contains(&v)
}

/// A CONNECT packet at the head: `Certain` when its version fields are plausible and its connect
/// data (when in view) is a descriptor.
fn connect_probe(head: &[u8]) -> Probe {
    if head.len() < HEADER_LEN {
        return Probe::NeedMore;
    }
    if !Header::plausible(head, false) || head.get(4) != Some(&ty::CONNECT) {
        return Probe::NotForUs;
    }
    let (Some(v), Some(c)) = (be16(head, 8), be16(head, 10)) else {
        return Probe::NeedMore;
    };
    if !plausible_version(v) || !plausible_version(c) || c > v {
        return Probe::NotForUs;
    }
    let (Some(len), Some(off)) = (be16(head, 24), be16(head, 26)) else {
        return Probe::NeedMore;
    };
    let (len, off) = (len as usize, off as usize);
    if len == 0 {
        // Connect data in the next DATA packet.
        return Probe::Unsure;
    }
    match head.get(off..) {
        Some(d) if !d.is_empty() => {
            if d.first() == Some(&b'(') {
                Probe::Certain
            } else {
                Probe::NotForUs
            }
        }
        _ => Probe::NeedMore,
    }
}

/// Looks at the first bytes of one direction.
///
/// - `ToServer`: a CONNECT with plausible versions and a `(`-descriptor is `Certain`; a TLS
///   ClientHello (TCPS) or a plausible DATA packet (a session picked up mid-stream) is `Unsure`.
/// - `ToClient`: ACCEPT with a plausible version, REFUSE or REDIRECT with a descriptor, RESEND
///   are `Certain`; a plausible DATA or MARKER packet is `Unsure`.
/// - Anything whose header is not a TNS header (HTTP, MySQL and PostgreSQL messages, TLS from a
///   server) is `NotForUs`.
pub fn probe(dir: Direction, head: &[u8]) -> Probe {
    if head.is_empty() {
        return Probe::NeedMore;
    }
    if dir == Direction::ToServer && parser::is_tls_client_hello(head) {
        return Probe::Unsure;
    }
    if head.len() < HEADER_LEN {
        return Probe::NeedMore;
    }
    // Headers with 4-byte lengths (mid-stream after a large-SDU ACCEPT).
    let large = head.get(..2) == Some(&[0, 0]) && head.get(2..4) != Some(&[0, 0]);
    if !Header::plausible(head, large) {
        return Probe::NotForUs;
    }
    let t = head.get(4).copied().unwrap_or(0);
    match (dir, t) {
        (Direction::ToServer, ty::CONNECT) if !large => connect_probe(head),
        (Direction::ToClient, ty::ACCEPT) if !large => match be16(head, 8) {
            Some(v) if plausible_version(v) => Probe::Certain,
            Some(_) => Probe::NotForUs,
            None => Probe::NeedMore,
        },
        (Direction::ToClient, ty::RESEND) if !large => {
            if be16(head, 0) == Some(8) {
                Probe::Certain
            } else {
                Probe::NotForUs
            }
        }
        (Direction::ToClient, ty::REFUSE | ty::REDIRECT) if !large => {
            if head
                .windows(2)
                .any(|w| w == b"(D" || w == b"(A" || w == b"(d" || w == b"(a")
            {
                Probe::Certain
            } else if head.len() >= 64 {
                Probe::NotForUs
            } else {
                Probe::NeedMore
            }
        }
        (_, ty::DATA) => {
            let len = Header::parse(head, large).map_or(0, |h| h.len);
            if len >= HEADER_LEN + 2 {
                Probe::Unsure
            } else {
                Probe::NotForUs
            }
        }
        (_, ty::MARKER) if head.len() >= 11 => Probe::Unsure,
        _ => Probe::NotForUs,
    }
}

/// Events are plain data: re-exported for tests and callers.
pub type Event = DbEvent;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_rejects_other_protocols() {
        // MySQL greeting, PostgreSQL startup, HTTP.
        let mysql = b"\x4a\x00\x00\x00\x0a8.0.36\x00\x01\x00\x00\x00";
        assert_eq!(probe(Direction::ToClient, mysql), Probe::NotForUs);
        let pg = b"\x00\x00\x00\x29\x00\x03\x00\x00user\x00postgres\x00\x00";
        assert_eq!(probe(Direction::ToServer, pg), Probe::NotForUs);
        assert_eq!(
            probe(Direction::ToServer, b"GET / HTTP/1.1\r\n"),
            Probe::NotForUs
        );
        assert_eq!(
            probe(Direction::ToClient, b"HTTP/1.1 200 OK\r\n"),
            Probe::NotForUs
        );
    }

    #[test]
    fn probe_accepts_a_connect() {
        // junkie__oracle_select.pcap frame 4, first 64 bytes.
        let mut c = vec![
            0x00, 0xd5, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x39, 0x01, 0x2c, 0x0c, 0x01,
            0x08, 0x00, 0x7f, 0xff, 0x7f, 0x08, 0x00, 0x00, 0x01, 0x00, 0x00, 0x9b, 0x00, 0x3a,
        ];
        c.resize(0x3a, 0);
        c.extend_from_slice(b"(DESCRIPTION=(CONNECT_DATA=(SERVICE_NAME=XE)");
        assert_eq!(probe(Direction::ToServer, &c), Probe::Certain);
        assert!(session_start(Direction::ToServer, &c));
        assert!(!session_start(Direction::ToClient, &c));
    }
}
