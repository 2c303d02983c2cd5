//! TNS packet framing: the 8-byte header.
//!
//! ```text
//! 0..2  packet length (big endian), header included      | 0..4 length (u32 BE) once ACCEPT
//! 2..4  packet checksum (0 in practice)                  |      negotiated version >= 315
//! 4     packet type                                       |      ("large SDU")
//! 5     flags
//! 6..8  header checksum (0 in practice)
//! ```
//! This is the only module that says how long a packet is.

/// Header length of every TNS packet.
pub const HEADER_LEN: usize = 8;
/// Largest TNS packet accepted. The SDU is at most 2 MiB (large SDU, 12c+); anything longer is
/// not a TNS header.
pub const MAX_PACKET_LEN: usize = 2 * 1024 * 1024 + HEADER_LEN;
/// Lowest ACCEPT version from which headers carry a 4-byte length.
pub const VERSION_LARGE_SDU: u16 = 315;

/// Packet types (byte 4 of the header).
pub mod ty {
    /// Client asks to connect: version, options, connect descriptor.
    pub const CONNECT: u8 = 1;
    /// Server accepts: negotiated version, SDU/TDU.
    pub const ACCEPT: u8 = 2;
    /// Acknowledge (unused in practice).
    pub const ACK: u8 = 3;
    /// Listener refuses the connection: reasons and a descriptor with `ERR=`.
    pub const REFUSE: u8 = 4;
    /// Listener sends the client to another address.
    pub const REDIRECT: u8 = 5;
    /// Data: 2-byte data flags, then the TTC stream.
    pub const DATA: u8 = 6;
    /// Null packet.
    pub const NULL: u8 = 7;
    /// Abort.
    pub const ABORT: u8 = 9;
    /// Server asks the client to send its CONNECT again.
    pub const RESEND: u8 = 11;
    /// Break / reset markers (interrupt a call).
    pub const MARKER: u8 = 12;
    /// Attention.
    pub const ATTENTION: u8 = 13;
    /// Control (e.g. inband notification).
    pub const CONTROL: u8 = 14;

    /// True for the types this parser knows.
    pub const fn is_known(t: u8) -> bool {
        matches!(t, 1..=7 | 9 | 11..=14)
    }
}

/// DATA packet flags (the 2 bytes after the header).
pub mod data_flags {
    /// The sender closes the connection (sent with the last DATA packet).
    pub const EOF: u16 = 0x0040;
}

/// A parsed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Packet length, header included.
    pub len: usize,
    /// Packet type.
    pub ty: u8,
    /// Header flags.
    pub flags: u8,
}

impl Header {
    /// Parse a header at the head of `d`; `large` when lengths are 4 bytes. `None` when fewer
    /// than 8 bytes are in view.
    pub fn parse(d: &[u8], large: bool) -> Option<Header> {
        let h = d.get(..HEADER_LEN)?;
        let len = if large {
            u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize
        } else {
            u16::from_be_bytes([h[0], h[1]]) as usize
        };
        Some(Header {
            len,
            ty: h[4],
            flags: h[5],
        })
    }

    /// A header that can be trusted to delimit a packet: known type, length within bounds,
    /// zero header checksum (and, with 2-byte lengths, zero packet checksum).
    pub fn plausible(d: &[u8], large: bool) -> bool {
        let Some(h) = Header::parse(d, large) else {
            return false;
        };
        let sums_zero = d.get(6..8) == Some(&[0, 0]) && (large || d.get(2..4) == Some(&[0, 0]));
        ty::is_known(h.ty) && h.len >= HEADER_LEN && h.len <= MAX_PACKET_LEN && sums_zero
    }
}

/// Big-endian u16 at `at`.
pub fn be16(d: &[u8], at: usize) -> Option<u16> {
    let b = d.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

/// Big-endian u32 at `at`.
pub fn be32(d: &[u8], at: usize) -> Option<u32> {
    let b = d.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_large_headers() {
        // junkie__oracle_select.pcap frame 10: ACCEPT, 32 bytes.
        let accept = [0x00, 0x20, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00];
        let h = Header::parse(&accept, false).unwrap();
        assert_eq!((h.len, h.ty), (32, ty::ACCEPT));
        assert!(Header::plausible(&accept, false));
        // The same DATA packet with a 4-byte length (after a version >= 315 ACCEPT).
        let large = [0x00, 0x00, 0x01, 0x02, 0x06, 0x00, 0x00, 0x00];
        let h = Header::parse(&large, true).unwrap();
        assert_eq!((h.len, h.ty), (258, ty::DATA));
        assert!(Header::plausible(&large, true));
        assert!(!Header::plausible(&large, false));
        assert!(!Header::plausible(b"GET / HT", false));
        assert_eq!(Header::parse(&accept[..7], false), None);
    }
}
