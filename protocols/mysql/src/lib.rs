//! # dbtap-mysql: the MySQL / MariaDB client/server protocol, sans-IO
//!
//! Reads both directions of one MySQL connection (as handed over by dbtap's stream layer) and
//! emits protocol-neutral [`DbEvent`]s: server info, one `Request` + `Response` pair per
//! operation (login, query, prepare, execute, …), session updates, TLS upgrades, desyncs.
//!
//! Layers, bottom up:
//! - [`frame`]: 4-byte packet header, multi-packet payloads, 7-byte compressed frames + inflate;
//! - [`wire`], [`messages`], [`binary`]: pure parse functions over exactly-sized bodies;
//! - [`charset`], [`split`]: text decoding and multi-statement splitting;
//! - [`session`]: the connection-phase transition table; [`prepared`]: the statement cache;
//! - [`parser`]: the [`StreamParser`] (framing loop, request/response pairing, gaps, ends).
//!
//! Invariants: no panics, hangs or unbounded allocation on any input; no private copy of
//! partial input except the bounded decompressed stream of the compressed protocol;
//! credentials (scramble, auth responses, auth-switch data, RSA keys, cleartext passwords) are
//! never read into any event.
#![forbid(unsafe_code)]

pub mod binary;
pub mod charset;
pub mod codes;
pub mod frame;
pub mod messages;
pub mod parser;
pub mod prepared;
pub mod session;
pub mod split;
pub mod wire;

use dbtap_core::{DbEvent, Direction, Probe, ProtocolSpec, SessionOpts, StreamParser};

pub use parser::MysqlParser;

use codes::Command;
use frame::{Header, HEADER_LEN};

/// Registration with the engine.
pub const SPEC: ProtocolSpec = ProtocolSpec {
    name: "mysql",
    default_ports: &[3306],
    probe,
    session_start,
    new_parser,
    redirect: None,
};

/// True for a server greeting (Protocol::HandshakeV10, or V9 of MySQL 3.x): the first packet of
/// every MySQL connection, sent by the server with sequence id 0.
pub fn session_start(dir: Direction, head: &[u8]) -> bool {
    dir == Direction::ToClient
        && head.get(3) == Some(&0)
        && matches!(head.get(HEADER_LEN), Some(9 | 10))
        && probe(dir, head) == Probe::Certain
}

fn new_parser(opts: SessionOpts) -> Box<dyn StreamParser> {
    Box::new(MysqlParser::new(opts))
}

/// Longest server version string accepted by the probe.
const MAX_VERSION_LEN: usize = 256;

/// Looks at the first bytes of one direction.
///
/// - `ToClient`: a greeting (seq 0, protocol 10 or 9, printable NUL-terminated version) is
///   `Certain`; packets whose length chain fits the data exactly are `Unsure`.
/// - `ToServer`: command packets whose length chain fits exactly, with seq 0 and a known
///   command (plausible SQL text for COM_QUERY / COM_STMT_PREPARE) are `Certain`; a handshake
///   response (seq 1, 4.1 capabilities) is `Certain`; a consistent chain is `Unsure`.
/// - A compressed-protocol frame (picked up after compression was switched on) is `Unsure`.
/// - HTTP, TLS records, SSH banners and bytes whose lengths do not chain are `NotForUs`.
pub fn probe(dir: Direction, head: &[u8]) -> Probe {
    match probe_plain(dir, head) {
        // A compressed frame (a session picked up after compression was switched on):
        // consistent lengths and a zlib / zstd head, or a stored frame holding a packet.
        Probe::NeedMore | Probe::NotForUs
            if head.len() > frame::COMP_HEADER_LEN + 4 && !looks_foreign(head) =>
        {
            match parser::comp_candidate(head, usize::MAX >> 1, dir, true) {
                dbtap_core::gap::Candidate::Yes if compressed_frame_holds_packets(dir, head) => {
                    Probe::Certain
                }
                dbtap_core::gap::Candidate::Yes => Probe::Unsure,
                _ => probe_plain(dir, head),
            }
        }
        p => p,
    }
}

/// Largest frame content the probe inflates to check it.
const MAX_PROBE_INFLATE: usize = 64 * 1024;

/// A whole compressed-protocol frame at the head of `head` (MySQL Internals, "Compression":
/// 3-byte compressed length, sequence id, 3-byte uncompressed length) that is as good as a
/// greeting: a zlib stream that inflates, its Adler-32 checked, to exactly the declared length,
/// all of it MySQL packets; or a stored frame (uncompressed length 0) whose content the plain
/// probe is certain of. This is what makes a session picked up after compression was switched on
/// certain on any port, not only on 3306. zstd frames stay unsure here.
fn compressed_frame_holds_packets(dir: Direction, head: &[u8]) -> bool {
    let Some(h) = frame::CompHeader::parse(head) else {
        return false;
    };
    let Some(payload) = head.get(frame::COMP_HEADER_LEN..frame::COMP_HEADER_LEN + h.clen) else {
        return false;
    };
    let fills = |inner: &[u8]| {
        let mut pos = 0;
        while let Some(p) = Header::parse(inner.get(pos..).unwrap_or_default()) {
            pos += p.total();
        }
        pos == inner.len() && chain(inner) == Probe::Unsure
    };
    if h.ulen == 0 {
        return fills(payload) && probe_plain(dir, payload) == Probe::Certain;
    }
    if h.ulen > MAX_PROBE_INFLATE || !frame::is_zlib_head(payload) {
        return false;
    }
    let mut out = vec![0u8; h.ulen];
    let mut z = flate2::Decompress::new(true);
    matches!(
        z.decompress(payload, &mut out, flate2::FlushDecompress::Finish),
        Ok(flate2::Status::StreamEnd)
    ) && z.total_in() == h.clen as u64
        && z.total_out() == h.ulen as u64
        && fills(&out)
}

fn probe_plain(dir: Direction, head: &[u8]) -> Probe {
    if head.len() < HEADER_LEN + 1 {
        return if head.is_empty() || plausible_prefix(head) {
            Probe::NeedMore
        } else {
            Probe::NotForUs
        };
    }
    if looks_foreign(head) {
        return Probe::NotForUs;
    }
    let Some(h) = Header::parse(head) else {
        return Probe::NeedMore;
    };
    let first = head.get(HEADER_LEN).copied().unwrap_or(0);
    match dir {
        Direction::ToClient => {
            if h.seq == 0 && matches!(first, 9 | 10) {
                let body = head.get(HEADER_LEN + 1..).unwrap_or_default();
                let limit = body.len().min(MAX_VERSION_LEN);
                let window = body.get(..limit).unwrap_or_default();
                return match window.iter().position(|&b| b == 0) {
                    Some(0) => Probe::NotForUs,
                    Some(n)
                        if window
                            .get(..n)
                            .unwrap_or_default()
                            .iter()
                            .all(|&b| (0x20..0x7f).contains(&b))
                            && h.len >= n + 2 =>
                    {
                        Probe::Certain
                    }
                    Some(_) => Probe::NotForUs,
                    None if limit == MAX_VERSION_LEN => Probe::NotForUs,
                    None if window.iter().all(|&b| (0x20..0x7f).contains(&b)) => Probe::NeedMore,
                    None => Probe::NotForUs,
                };
            }
            chain(head)
        }
        Direction::ToServer => {
            if h.seq == 1 && h.len >= 32 && head.len() >= HEADER_LEN + 4 {
                let caps = wire::le(head.get(HEADER_LEN..HEADER_LEN + 4).unwrap_or_default());
                if caps & codes::Caps::PROTOCOL_41 != 0 && chain(head) != Probe::NotForUs {
                    return Probe::Certain;
                }
            }
            match chain(head) {
                Probe::NotForUs => Probe::NotForUs,
                c => {
                    let candidate = h.seq == 0
                        && Command(first).is_known()
                        && parser::client_candidate(head) == dbtap_core::gap::Candidate::Yes;
                    // A statement too long for the head the stream layer shows (a big INSERT
                    // picked up mid-stream) is still certain when its visible text checks out.
                    let long_statement = c == Probe::NeedMore
                        && matches!(Command(first), Command::QUERY | Command::STMT_PREPARE);
                    if candidate && (c == Probe::Unsure || long_statement) {
                        Probe::Certain
                    } else if h.seq == 0 && Command(first).is_known() {
                        c
                    } else if c == Probe::Unsure {
                        Probe::Unsure
                    } else {
                        c
                    }
                }
            }
        }
    }
}

/// Packet headers that chain exactly to the end of `head` → `Unsure`; a chain that runs past
/// the data (an incomplete last packet) → `NeedMore` while short, `Unsure` once a few packets
/// chained; anything else → `NotForUs`.
fn chain(head: &[u8]) -> Probe {
    let mut pos = 0usize;
    let mut packets = 0;
    let mut last_seq: Option<u8> = None;
    while let Some(h) = Header::parse(head.get(pos..).unwrap_or_default()) {
        if let Some(s) = last_seq {
            // Within one exchange sequence ids increase by one; a new command restarts at 0.
            if h.seq != s.wrapping_add(1) && h.seq != 0 {
                return Probe::NotForUs;
            }
        }
        last_seq = Some(h.seq);
        pos += h.total();
        packets += 1;
        if pos == head.len() {
            return Probe::Unsure;
        }
        if pos > head.len() {
            // The last packet runs past the data: believable only for plausible sizes.
            return if packets > 1 && h.len < (1 << 20) {
                Probe::Unsure
            } else if h.len < (1 << 20) {
                Probe::NeedMore
            } else {
                Probe::NotForUs
            };
        }
    }
    if pos < head.len() {
        Probe::NeedMore
    } else {
        Probe::Unsure
    }
}

fn plausible_prefix(head: &[u8]) -> bool {
    !looks_foreign(head)
}

fn looks_foreign(d: &[u8]) -> bool {
    const SIGS: [&[u8]; 12] = [
        b"GET ",
        b"POST",
        b"PUT ",
        b"HEAD",
        b"DELE",
        b"OPTI",
        b"PATC",
        b"CONN",
        b"HTTP",
        b"PRI ",
        b"SSH-",
        b"\x16\x03",
    ];
    SIGS.iter()
        .any(|s| d.starts_with(s) || (d.len() < s.len() && s.starts_with(d) && d.len() >= 2))
        || matches!(d, [0x15..=0x17, 0x03, 0x00..=0x04, ..])
}

/// Events are plain data: re-exported for tests and callers.
pub type Event = DbEvent;
