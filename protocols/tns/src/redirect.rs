//! Finding a listener's REDIRECT in the bytes the server sends, for the pipeline that follows
//! the client to the announced address ([`dbtap_core::ProtocolSpec::redirect`]).
//!
//! A REDIRECT (type 5) answers a CONNECT, before an ACCEPT could negotiate 4-byte lengths, so
//! its header has the 2-byte length (the 4-byte form is accepted too, defensively). After the
//! header: the 2-byte length of the redirect data, then either
//! - the data itself, in the same packet (header length > 10: `wswiki__TNS_Oracle4.pcap`
//!   frame 6, a TNS 314 listener), or
//! - nothing (header length 10): the data follows in the next DATA packet(s), after their
//!   2-byte data flags — how newer listeners send it (python-oracledb reads the length from
//!   the REDIRECT and the data from the next packet; go-ora reads the next packet when the
//!   REDIRECT is no longer than its 10 bytes).
//!
//! The data is an address, optionally followed by a NUL and the connect data the client is to
//! send to that address: `(ADDRESS=(PROTOCOL=tcp)(HOST=192.168.0.4)(PORT=2143))`.
//!
//! [`redirect_in`] looks at the head of a direction's bytes as they come (one payload, or
//! several reassembled by the caller), and says `NeedMore` for a plausible start cut short at
//! any byte, so that a REDIRECT split over TCP segments is found as well as a whole one.

use dbtap_core::{Redirect, RedirectScan};

use crate::frame::{be16, be32, ty, HEADER_LEN};
use crate::net;

/// Longest announcement looked for, in bytes: a REDIRECT with its data, or a bare REDIRECT and
/// the DATA packets that carry its data. The address and the connect data after it are a few
/// hundred bytes.
pub const MAX_REDIRECT_LEN: usize = 4096;

/// Bytes of a bare REDIRECT: header and data length.
const BARE_LEN: usize = HEADER_LEN + 2;

/// Finds a REDIRECT at the head of `buf` (bytes of one direction from a packet's first byte).
///
/// `Found` with the announced host and port; `NeedMore(n)` when `buf` is a plausible start of
/// one, cut short (call again with at least `n` bytes from the same start); `No` otherwise.
/// Bytes after the announcement (the next packet coalesced into the same payload) are ignored.
pub fn redirect_in(buf: &[u8]) -> RedirectScan {
    // Type byte first: this runs on every payload of every flow.
    if buf.get(4).is_some_and(|&t| t != ty::REDIRECT)
        || !header_could_start(buf, ty::REDIRECT, MAX_REDIRECT_LEN, None)
    {
        return RedirectScan::No;
    }
    let Some((len, large)) = whole_len(buf) else {
        return RedirectScan::NeedMore(HEADER_LEN);
    };
    let Some(pkt) = buf.get(..len) else {
        return RedirectScan::NeedMore(len);
    };
    let data_len = be16(pkt, HEADER_LEN).map_or(0, usize::from);
    if data_len == 0 || data_len > MAX_REDIRECT_LEN {
        return RedirectScan::No;
    }
    if len > BARE_LEN {
        // The data in the REDIRECT itself.
        let data = pkt.get(BARE_LEN..).unwrap_or_default();
        return found(data.get(..data_len).unwrap_or(data));
    }
    // A bare REDIRECT: the data in the DATA packets that follow, after their data flags.
    let mut data = Vec::new();
    let mut at = len;
    while data.len() < data_len {
        let rest = buf.get(at..).unwrap_or_default();
        let room = MAX_REDIRECT_LEN.saturating_sub(at);
        if rest.get(4).is_some_and(|&t| t != ty::DATA)
            || !header_could_start(rest, ty::DATA, room, Some(large))
        {
            return RedirectScan::No;
        }
        let Some((plen, _)) = whole_len(rest) else {
            return RedirectScan::NeedMore(at + HEADER_LEN);
        };
        let Some(pkt) = rest.get(..plen) else {
            return RedirectScan::NeedMore(at + plen);
        };
        data.extend_from_slice(pkt.get(BARE_LEN..).unwrap_or_default());
        at += plen;
    }
    found(data.get(..data_len).unwrap_or_default())
}

/// The announcement in complete redirect data: `HOST` and `PORT` of its address.
fn found(data: &[u8]) -> RedirectScan {
    let addr = net::redirect_address(data);
    let (Some(host), Some(port)) = (net::value(addr, "HOST"), net::value(addr, "PORT")) else {
        return RedirectScan::No;
    };
    let Some(port) = std::str::from_utf8(port)
        .ok()
        .and_then(|p| p.trim().parse::<u16>().ok())
    else {
        return RedirectScan::No;
    };
    RedirectScan::Found(Redirect {
        host: String::from_utf8_lossy(host).trim().to_owned(),
        port,
    })
}

/// Could `p` start the header of a packet of type `want`, at least [`BARE_LEN`] and at most
/// `max` (≤ [`MAX_REDIRECT_LEN`]) bytes long, with zero checksums? Only the bytes in view are
/// checked, so a whole header gets an exact answer and a shorter start a possible one.
/// `large`: the length form when known (`Some(true)`: 4 bytes, as after an ACCEPT of version
/// 315 or more).
fn header_could_start(p: &[u8], want: u8, max: usize, large: Option<bool>) -> bool {
    let at = |i: usize| p.get(i).copied();
    let zero = |i: usize| at(i).is_none_or(|b| b == 0);
    let fits = |l: usize| (BARE_LEN..=max).contains(&l);
    // Lengths are below 64 KiB here: in view, the high byte of the length says enough.
    let high_fits = |i: usize| at(i).is_none_or(|b| usize::from(b) << 8 <= max);
    if !(at(4).is_none_or(|t| t == want) && zero(6) && zero(7)) {
        return false;
    }
    // 2-byte length, zero packet checksum (never 0: the 4-byte form starts with two zeros).
    let small = large != Some(true)
        && be16(p, 0).map_or(high_fits(0), |l| fits(usize::from(l)))
        && zero(2)
        && zero(3);
    // 4-byte length in place of length and checksum.
    let big = large != Some(false)
        && zero(0)
        && zero(1)
        && be32(p, 0).map_or(high_fits(2), |l| usize::try_from(l).is_ok_and(fits));
    small || big
}

/// The length of the packet whose (plausible) header starts `p`, and whether it is in the
/// 4-byte form; `None` before the whole header is in view.
fn whole_len(p: &[u8]) -> Option<(usize, bool)> {
    if p.len() < HEADER_LEN {
        return None;
    }
    match be16(p, 0)? {
        0 => Some((usize::try_from(be32(p, 0)?).ok()?, true)),
        l => Some((usize::from(l), false)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bare(data_len: usize, large: bool) -> Vec<u8> {
        let mut p = if large {
            vec![0, 0, 0, 10, 5, 0, 0, 0]
        } else {
            vec![0, 10, 0, 0, 5, 0, 0, 0]
        };
        p.extend_from_slice(&(data_len as u16).to_be_bytes());
        p
    }

    fn data_packet(flags: u16, data: &[u8], large: bool) -> Vec<u8> {
        let len = BARE_LEN + data.len();
        let mut p = if large {
            let mut h = (len as u32).to_be_bytes().to_vec();
            h.extend_from_slice(&[6, 0, 0, 0]);
            h
        } else {
            vec![(len >> 8) as u8, len as u8, 0, 0, 6, 0, 0, 0]
        };
        p.extend_from_slice(&flags.to_be_bytes());
        p.extend_from_slice(data);
        p
    }

    fn found(host: &str, port: u16) -> RedirectScan {
        RedirectScan::Found(Redirect {
            host: host.into(),
            port,
        })
    }

    #[test]
    fn foreign_bytes_are_rejected_on_sight() {
        for p in [
            &b"GET / HTTP/1.1\r\n"[..],
            &b"\x4a\x00\x00\x00\x0a8.0.36\x00"[..],
            &[0x17, 0x03, 0x03, 0x00, 0x20][..],
            // A DATA packet, an ACCEPT.
            &[0, 10, 0, 0, 6, 0, 0, 0, 0, 0][..],
            &[0, 32, 0, 0, 2, 0, 0, 0][..],
            // A REDIRECT without data, or too long, or with a packet checksum.
            &[0, 10, 0, 0, 5, 0, 0, 0, 0, 0][..],
            &[0x20, 0, 0, 0, 5, 0, 0, 0][..],
            &[0, 63, 0, 1, 5, 0, 0, 0][..],
            // Starts that no REDIRECT has.
            &[0x41][..],
            &[0, 9][..],
            &[0, 63, 1][..],
        ] {
            assert_eq!(redirect_in(p), RedirectScan::No, "{p:?}");
        }
    }

    #[test]
    fn a_bare_redirect_then_something_else_is_not_one() {
        let mut p = bare(53, false);
        p.extend_from_slice(&[0, 11, 0, 0, 12, 0, 0, 0, 1, 0, 1]); // MARKER
        assert_eq!(redirect_in(&p), RedirectScan::No);
    }

    #[test]
    fn data_in_the_next_packet_in_the_four_byte_form() {
        // Defensive: no REDIRECT precedes an ACCEPT that would negotiate this form.
        let addr = b"(ADDRESS=(PROTOCOL=TCP)(HOST=10.1.1.3)(PORT=1599))";
        let mut p = bare(addr.len(), true);
        p.extend(data_packet(0, addr, true));
        assert_eq!(redirect_in(&p), found("10.1.1.3", 1599));
        // The two forms do not mix.
        let mut p = bare(addr.len(), true);
        p.extend(data_packet(0, addr, false));
        assert_eq!(redirect_in(&p), RedirectScan::No);
    }

    #[test]
    fn data_over_two_data_packets() {
        let addr = b"(ADDRESS=(PROTOCOL=TCP)(HOST=10.1.1.3)(PORT=1599))";
        let (a, b) = addr.split_at(20);
        let mut p = bare(addr.len(), false);
        p.extend(data_packet(0, a, false));
        let first = p.len();
        assert_eq!(redirect_in(&p), RedirectScan::NeedMore(first + HEADER_LEN));
        p.extend(data_packet(0, b, false));
        assert_eq!(redirect_in(&p), found("10.1.1.3", 1599));
    }

    #[test]
    fn an_overlong_announcement_is_not_waited_for() {
        // 5000 bytes of data announced; the DATA header that would carry them.
        let mut p = bare(5000, false);
        p.extend_from_slice(&[0x13, 0x92, 0, 0, 6, 0, 0, 0]);
        assert_eq!(redirect_in(&p), RedirectScan::No);
        assert_eq!(redirect_in(&p[..BARE_LEN]), RedirectScan::No);
    }
}
