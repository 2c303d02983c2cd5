//! # dbtap-pgsql: the PostgreSQL frontend/backend protocol (3.0 and 3.2), sans-IO
//!
//! Reads both directions of one PostgreSQL connection (as handed over by dbtap's stream layer)
//! and emits protocol-neutral [`DbEvent`]s: server info, one `Request` + `Response` pair per
//! operation (login, query, prepare, execute, function call, cancel, logout), session updates,
//! TLS / GSSAPI encryption, desyncs. See `PROTOCOL.md` for what is implemented and decided.
//!
//! Layers, bottom up:
//! - [`frame`]: type byte + length, untyped startup packets, PostgreSQL's own length bounds;
//! - [`wire`], [`messages`], [`types`], [`tls`]: pure parse functions over bounded bodies;
//! - [`charset`], [`split`]: `client_encoding` decoding and statement splitting;
//! - [`stmts`]: the bounded statement and portal maps;
//! - [`parser`]: the [`StreamParser`] (message loops, pairing, gaps, ends).
//!
//! Invariants: no panics, hangs or unbounded allocation on any input; no private copy of
//! partial input; credentials (PasswordMessage, SASL and GSS exchanges, the cancel key of
//! BackendKeyData and CancelRequest) are never read into any event.
#![forbid(unsafe_code)]

pub mod bind_values;
pub mod charset;
pub mod codes;
pub mod frame;
pub mod messages;
pub mod parser;
pub mod split;
pub mod stmts;
pub mod tls;
pub mod types;
pub mod wire;

use dbtap_core::gap::Candidate;
use dbtap_core::{DbEvent, Direction, Probe, ProtocolSpec, SessionOpts, StreamParser};

pub use parser::PgParser;

use codes::{auth, be, startup};
use frame::{Header, StartupHeader, HEADER_LEN, STARTUP_HEADER_LEN};

/// Registration with the engine.
pub const SPEC: ProtocolSpec = ProtocolSpec {
    name: "postgresql",
    default_ports: &[5432],
    probe,
    session_start,
    new_parser,
    redirect: None,
};

fn new_parser(opts: SessionOpts) -> Box<dyn StreamParser> {
    Box::new(PgParser::new(opts))
}

/// True for a client's StartupMessage, SSLRequest, GSSENCRequest or CancelRequest: the first
/// message of every PostgreSQL connection.
pub fn session_start(dir: Direction, head: &[u8]) -> bool {
    dir == Direction::ToServer && startup_packet(head) == Probe::Certain
}

/// Looks at the first bytes of one direction.
///
/// - `ToServer`: a well-formed startup packet (StartupMessage with its parameters,
///   SSLRequest, GSSENCRequest, CancelRequest) is `Certain`; a TLS ClientHello (PostgreSQL 17
///   direct TLS) is `Certain` when its ALPN names `postgresql`, `NotForUs` when ALPN names other
///   protocols only, `Unsure` when it has no ALPN or the extensions are not in view; a complete
///   Query or Parse with printable text (a session picked up mid-stream) is `Certain`, other
///   plausible frontend messages `Unsure`.
/// - `ToClient`: an authentication request or a well-formed ErrorResponse (a server's first
///   message) is `Certain`; other plausible backend messages are `Unsure`.
/// - HTTP, SSH, TLS from a server, MySQL packets and bytes whose lengths do not fit are
///   `NotForUs`.
pub fn probe(dir: Direction, head: &[u8]) -> Probe {
    if head.is_empty() {
        return Probe::NeedMore;
    }
    if head.len() < 4 {
        return if head[0] == 0 || plausible_type(dir, head[0]) {
            Probe::NeedMore
        } else {
            Probe::NotForUs
        };
    }
    match dir {
        Direction::ToServer => {
            if tls::is_handshake_record(head) {
                return match tls::client_hello(head) {
                    Some(h) => match h.alpn {
                        Some(tls::Alpn::Postgresql) => Probe::Certain,
                        Some(tls::Alpn::Other) => Probe::NotForUs,
                        Some(tls::Alpn::Absent) | None => Probe::Unsure,
                    },
                    None => Probe::NotForUs,
                };
            }
            if looks_foreign(head) {
                return Probe::NotForUs;
            }
            if head[0] == 0 {
                return startup_packet(head);
            }
            typed(dir, head)
        }
        Direction::ToClient => {
            if looks_foreign(head) {
                return Probe::NotForUs;
            }
            typed(dir, head)
        }
    }
}

fn plausible_type(dir: Direction, t: u8) -> bool {
    match dir {
        Direction::ToServer => codes::fe::is_known(t) || t == 0x16,
        Direction::ToClient => be::is_known(t),
    }
}

/// A startup packet at the head: `Certain` when well formed.
fn startup_packet(head: &[u8]) -> Probe {
    let Some(sh) = StartupHeader::parse(head) else {
        return if head.first() == Some(&0) {
            Probe::NeedMore
        } else {
            Probe::NotForUs
        };
    };
    if !sh.plausible_len() {
        return Probe::NotForUs;
    }
    match sh.code {
        startup::SSL_REQUEST | startup::GSSENC_REQUEST => {
            if sh.len == 8 {
                Probe::Certain
            } else {
                Probe::NotForUs
            }
        }
        startup::CANCEL_REQUEST => {
            if (16..=12 + 256).contains(&sh.len) {
                Probe::Certain
            } else {
                Probe::NotForUs
            }
        }
        code if code >> 16 == startup::MAJOR_3 && (code & 0xffff) < 16 => {
            match head.get(STARTUP_HEADER_LEN..sh.len) {
                Some(body) => {
                    let printable = body.iter().all(|&b| b == 0 || b >= 0x20);
                    let has_user = messages::startup_params(body).any(|(n, _)| n == b"user");
                    if messages::startup_well_formed(body) && printable && has_user {
                        Probe::Certain
                    } else {
                        Probe::NotForUs
                    }
                }
                // The stream layer shows a bounded head: believe a long packet whose visible
                // parameters are text.
                None if head.len() >= 64 => {
                    let body = head.get(STARTUP_HEADER_LEN..).unwrap_or_default();
                    if body.iter().all(|&b| b == 0 || b >= 0x20) {
                        Probe::Unsure
                    } else {
                        Probe::NotForUs
                    }
                }
                None => Probe::NeedMore,
            }
        }
        _ => Probe::NotForUs,
    }
}

/// Typed messages at the head (mid-stream, or a server's first message).
fn typed(dir: Direction, head: &[u8]) -> Probe {
    let Some(h) = Header::parse(head) else {
        return Probe::NeedMore;
    };
    let valid = match dir {
        Direction::ToServer => h.valid_frontend(),
        Direction::ToClient => h.valid_backend(),
    };
    if !valid {
        return Probe::NotForUs;
    }
    let max = dbtap_core::limits::DEFAULT_MAX_MESSAGE_LEN;
    match dir {
        Direction::ToServer => match parser::client_candidate(head, max) {
            Candidate::Yes if matches!(h.ty, codes::fe::QUERY | codes::fe::PARSE) => Probe::Certain,
            Candidate::Yes => chain(dir, head),
            Candidate::NeedMore(_) if matches!(h.ty, codes::fe::QUERY | codes::fe::PARSE) => {
                // A statement longer than the head in view: its visible text decides.
                let n = head.len().min(HEADER_LEN + 64);
                let text = head.get(HEADER_LEN..n).unwrap_or_default();
                if n == HEADER_LEN + 64
                    && text
                        .iter()
                        .all(|&b| b >= 0x20 || b == b'\n' || b == b'\t' || b == b'\r')
                {
                    Probe::Unsure
                } else {
                    Probe::NeedMore
                }
            }
            Candidate::NeedMore(_) => Probe::NeedMore,
            Candidate::No => Probe::NotForUs,
        },
        Direction::ToClient => {
            if h.ty == be::AUTH {
                let code = wire::be32(head, HEADER_LEN);
                return match code {
                    Some(c)
                        if auth::method(c).is_some()
                            || matches!(
                                c,
                                auth::SASL_CONTINUE | auth::SASL_FINAL | auth::GSS_CONTINUE
                            ) =>
                    {
                        if h.len <= 2048 {
                            Probe::Certain
                        } else {
                            Probe::NotForUs
                        }
                    }
                    Some(_) => Probe::NotForUs,
                    None => Probe::NeedMore,
                };
            }
            match parser::server_candidate(head, None, max) {
                Candidate::Yes if h.ty == be::ERROR => Probe::Certain,
                Candidate::Yes => chain(dir, head),
                Candidate::NeedMore(_) => Probe::NeedMore,
                Candidate::No => Probe::NotForUs,
            }
        }
    }
}

/// Headers that chain to the end of the head (or into a last, incomplete message) → `Unsure`.
fn chain(dir: Direction, head: &[u8]) -> Probe {
    let mut pos = 0usize;
    while let Some(h) = head.get(pos..).and_then(Header::parse) {
        let valid = match dir {
            Direction::ToServer => h.valid_frontend(),
            Direction::ToClient => h.valid_backend(),
        };
        if !valid {
            return Probe::NotForUs;
        }
        pos += h.total();
        if pos >= head.len() {
            return Probe::Unsure;
        }
    }
    Probe::Unsure
}

/// Bytes that announce another protocol: HTTP, SSH, a TLS record (a server's, or a client's
/// that is not direct TLS: the caller decides), a MySQL greeting.
pub(crate) fn looks_foreign(d: &[u8]) -> bool {
    const SIGS: [&[u8]; 11] = [
        b"GET ",
        b"POST ",
        b"PUT ",
        b"HEAD ",
        b"DELETE ",
        b"OPTIONS ",
        b"PATCH ",
        b"CONNECT ",
        b"HTTP/",
        b"PRI * HTTP",
        b"SSH-",
    ];
    SIGS.iter().any(|s| d.starts_with(s))
        || matches!(d, [0x14..=0x17, 0x03, 0x00..=0x04, ..])
        || mysql_greeting(d)
}

/// A MySQL server greeting: 3-byte little-endian length (under 256 here), sequence id 0,
/// protocol version 10, then a NUL-terminated version string such as "8.0.36". As a PostgreSQL
/// header the same bytes would be a 10-byte message whose body starts with a digit, a dot and
/// runs past its own end to the NUL: no backend message looks like that.
fn mysql_greeting(d: &[u8]) -> bool {
    let [_, 0, 0, 0, 10, rest @ ..] = d else {
        return false;
    };
    let head = rest.get(..rest.len().min(64)).unwrap_or_default();
    let Some(nul) = head.iter().position(|&b| b == 0) else {
        return false;
    };
    let version = &head[..nul];
    version.len() >= 5
        && version.first().is_some_and(u8::is_ascii_digit)
        && version.contains(&b'.')
        && version
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'+' | b'~'))
}

/// Events are plain data: re-exported for tests and callers.
pub type Event = DbEvent;
