//! The packet layer (MS-TDS 2.2.3.1): every TDS message travels in packets that start with an
//! 8-byte header; a message spans packets until one has the EOM status bit.
//!
//! ```text
//! Type(1) Status(1) Length(2, big-endian, header included) SPID(2, big-endian) PacketID(1) Window(1)
//! ```

use crate::wire::Reader;

/// Header length (MS-TDS 2.2.3.1).
pub const HEADER_LEN: usize = 8;
/// Smallest packet size a client may negotiate is 512; the header's Length is a u16, so no
/// packet is longer than this.
pub const MAX_PACKET_LEN: usize = 65535;

/// Packet types (MS-TDS 2.2.3.1.1).
pub mod ty {
    /// SQL batch.
    pub const SQL_BATCH: u8 = 0x01;
    /// Pre-TDS7 login (TDS 4.2 / Sybase TDS 5.0): not supported.
    pub const PRE_TDS7_LOGIN: u8 = 0x02;
    /// RPC request.
    pub const RPC: u8 = 0x03;
    /// Tabular result (every server message).
    pub const TABULAR_RESULT: u8 = 0x04;
    /// Attention signal (cancel).
    pub const ATTENTION: u8 = 0x06;
    /// Bulk load data.
    pub const BULK_LOAD: u8 = 0x07;
    /// Federated authentication token.
    pub const FEDAUTH_TOKEN: u8 = 0x08;
    /// Transaction manager request.
    pub const TRANSACTION_MANAGER: u8 = 0x0E;
    /// Sybase TDS 5.0 normal tokenized request: not supported.
    pub const TDS5_QUERY: u8 = 0x0F;
    /// TDS7 login.
    pub const LOGIN7: u8 = 0x10;
    /// SSPI message.
    pub const SSPI: u8 = 0x11;
    /// Pre-login.
    pub const PRELOGIN: u8 = 0x12;

    /// Types a client sends.
    pub fn is_client(t: u8) -> bool {
        matches!(
            t,
            SQL_BATCH
                | PRE_TDS7_LOGIN
                | RPC
                | ATTENTION
                | BULK_LOAD
                | FEDAUTH_TOKEN
                | TRANSACTION_MANAGER
                | TDS5_QUERY
                | LOGIN7
                | SSPI
                | PRELOGIN
        )
    }
}

/// Status bits (MS-TDS 2.2.3.1.2).
pub mod status {
    /// End of message: the last packet of a message.
    pub const EOM: u8 = 0x01;
    /// Ignore this event (client to server): the message is to be discarded.
    pub const IGNORE: u8 = 0x02;
    /// Event notification (0x04): listed by older revisions of the specification and sent by
    /// some clients on RPC packets; reserved in current revisions.
    pub const EVENT_NOTIFICATION: u8 = 0x04;
    /// Reset connection (client to server, TDS 7.1+).
    pub const RESET_CONNECTION: u8 = 0x08;
    /// Reset connection, keeping the transaction state (TDS 7.3+).
    pub const RESET_CONNECTION_SKIP_TRAN: u8 = 0x10;
    /// Bits the specification defines.
    pub const KNOWN: u8 =
        EOM | IGNORE | EVENT_NOTIFICATION | RESET_CONNECTION | RESET_CONNECTION_SKIP_TRAN;
}

/// A packet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Packet type.
    pub ty: u8,
    /// Status bits.
    pub status: u8,
    /// Packet length, header included.
    pub len: usize,
    /// Server process id (the server's session id; 0 from clients before login).
    pub spid: u16,
    /// Packet number within the message (modulo 256; not checked by servers).
    pub packet_id: u8,
    /// Window: "currently not used; MUST be 0".
    pub window: u8,
}

impl Header {
    /// Parse the 8-byte header at the head of `d`.
    pub fn parse(d: &[u8]) -> Option<Header> {
        let mut r = Reader::new(d);
        Some(Header {
            ty: r.u8()?,
            status: r.u8()?,
            len: r.u16be()? as usize,
            spid: r.u16be()?,
            packet_id: r.u8()?,
            window: r.u8()?,
        })
    }
    /// The last packet of its message.
    pub fn eom(&self) -> bool {
        self.status & status::EOM != 0
    }
    /// Length and status are possible for a TDS packet: a header at least, only defined status
    /// bits, window 0.
    pub fn plausible(&self) -> bool {
        self.len >= HEADER_LEN && self.status & !status::KNOWN == 0 && self.window == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_from_spec_example() {
        // MS-TDS 4.2 (pre-login request): 12 01 00 2F 00 00 01 00.
        let h = Header::parse(&[0x12, 0x01, 0x00, 0x2f, 0x00, 0x00, 0x01, 0x00]).unwrap();
        assert_eq!(h.ty, ty::PRELOGIN);
        assert!(h.eom());
        assert_eq!(h.len, 47);
        assert_eq!(h.spid, 0);
        assert_eq!(h.packet_id, 1);
        assert!(h.plausible());
        assert!(Header::parse(&[0x12, 1, 0]).is_none());
        assert!(!Header::parse(&[4, 1, 0, 4, 0, 0, 1, 0])
            .unwrap()
            .plausible());
        assert!(!Header::parse(&[4, 0x81, 0, 9, 0, 0, 1, 0])
            .unwrap()
            .plausible());
    }
}
