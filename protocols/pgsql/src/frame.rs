//! Framing: the only layer that says how long a message is.
//!
//! "All communication is through a stream of messages. The first byte of a message identifies
//! the message type, and the next four bytes specify the length of the rest of the message
//! (this length count includes itself, but not the message-type byte)." Startup-phase messages
//! of the frontend (StartupMessage, SSLRequest, GSSENCRequest, CancelRequest) have no type byte:
//! an `Int32` length (including itself) then an `Int32` request code.
//!
//! A length below 4 (8 for startup packets), or above the bound PostgreSQL itself applies to
//! the message type, means the stream is not PostgreSQL or framing was lost. The bounds are
//! PostgreSQL's own, named below; `Limits::max_message_len` (what the parser asks the stream
//! layer to buffer) is applied on top by the parser.

use crate::codes::{be, fe};
use crate::wire::be32;

/// Type byte + `Int32` length.
pub const HEADER_LEN: usize = 5;
/// `Int32` length + `Int32` code of an untyped startup packet.
pub const STARTUP_HEADER_LEN: usize = 8;
/// The server rejects startup packets longer than this (`MAX_STARTUP_PACKET_LENGTH`).
pub const MAX_STARTUP_LEN: usize = 10_000;
/// `PQ_SMALL_MESSAGE_LIMIT`: the server's bound on frontend messages that "shouldn't be too
/// long" (Sync, Flush, Terminate, Describe, Close, Execute, CopyDone, CopyFail).
pub const MAX_SMALL_FRONTEND: usize = 10_000;
/// `PG_MAX_AUTH_TOKEN_LENGTH`: the server's bound on password / SASL / GSS messages.
pub const MAX_AUTH_MESSAGE: usize = 65_535;
/// `PQ_LARGE_MESSAGE_LIMIT` (`MaxAllocSize - 1`, 1 GiB - 2): the bound on messages that can be
/// long (Query, Parse, Bind, FunctionCall, CopyData, and the backend's long types).
pub const MAX_LARGE: usize = 0x3fff_fffe;
/// libpq treats a backend message over 30000 bytes whose type is not one of the long ones
/// (RowDescription, DataRow, CopyData, FunctionCallResponse, ErrorResponse, NoticeResponse,
/// NotificationResponse; ParameterDescription lists one OID per parameter and can be long too)
/// as lost synchronisation.
pub const MAX_SMALL_BACKEND: usize = 30_000;

/// A typed message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Type byte.
    pub ty: u8,
    /// The length field: body length + 4.
    pub len: usize,
}

impl Header {
    /// The header at the start of `b`, if 5 bytes are there (not validated).
    #[inline]
    pub fn parse(b: &[u8]) -> Option<Header> {
        let ty = *b.first()?;
        let len = be32(b, 1)? as usize;
        Some(Header { ty, len })
    }
    /// Wire bytes of the whole message (type byte included).
    #[inline]
    pub fn total(&self) -> usize {
        self.len + 1
    }
    /// Bytes of the body (after the header).
    #[inline]
    pub fn body_len(&self) -> usize {
        self.len.saturating_sub(4)
    }
    /// A frontend message of a known type and a length within PostgreSQL's bound for it.
    pub fn valid_frontend(&self) -> bool {
        frontend_max(self.ty).is_some_and(|max| self.len >= 4 && self.len <= max)
    }
    /// A backend message of a known type and a length within libpq's bound for it.
    pub fn valid_backend(&self) -> bool {
        backend_max(self.ty).is_some_and(|max| self.len >= 4 && self.len <= max)
    }
}

/// PostgreSQL's bound on the length field of frontend message type `ty`; `None` for a type
/// no frontend sends.
pub const fn frontend_max(ty: u8) -> Option<usize> {
    match ty {
        fe::QUERY | fe::PARSE | fe::BIND | fe::FUNCTION_CALL | fe::COPY_DATA => Some(MAX_LARGE),
        fe::PASSWORD => Some(MAX_AUTH_MESSAGE),
        fe::SYNC
        | fe::FLUSH
        | fe::TERMINATE
        | fe::DESCRIBE
        | fe::CLOSE
        | fe::EXECUTE
        | fe::COPY_DONE
        | fe::COPY_FAIL => Some(MAX_SMALL_FRONTEND),
        _ => None,
    }
}

/// libpq's bound on the length field of backend message type `ty`; `None` for a type no
/// backend sends.
pub const fn backend_max(ty: u8) -> Option<usize> {
    match ty {
        be::ROW_DESCRIPTION
        | be::DATA_ROW
        | be::COPY_DATA
        | be::FUNCTION_CALL_RESPONSE
        | be::ERROR
        | be::NOTICE
        | be::NOTIFICATION
        | be::PARAMETER_DESCRIPTION => Some(MAX_LARGE),
        t if be::is_known(t) => Some(MAX_SMALL_BACKEND),
        _ => None,
    }
}

/// An untyped startup packet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartupHeader {
    /// The length field (the whole packet, including itself).
    pub len: usize,
    /// The request code or protocol version.
    pub code: u32,
}

impl StartupHeader {
    /// The header at the start of `b`, if 8 bytes are there (not validated).
    pub fn parse(b: &[u8]) -> Option<StartupHeader> {
        Some(StartupHeader {
            len: be32(b, 0)? as usize,
            code: be32(b, 4)?,
        })
    }
    /// A length PostgreSQL accepts for a startup packet.
    pub fn plausible_len(&self) -> bool {
        (STARTUP_HEADER_LEN..=MAX_STARTUP_LEN).contains(&self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bounds_follow_the_message_type() {
        // Sync: 'S' Int32(4).
        let h = Header::parse(b"S\x00\x00\x00\x04").unwrap();
        assert_eq!((h.ty, h.len, h.total(), h.body_len()), (b'S', 4, 5, 0));
        assert!(h.valid_frontend());
        // Length 3 cannot be: the length counts itself.
        assert!(!Header::parse(b"S\x00\x00\x00\x03")
            .unwrap()
            .valid_frontend());
        // A 20000-byte Sync is beyond PQ_SMALL_MESSAGE_LIMIT; a 20000-byte Query is fine.
        assert!(!Header::parse(b"S\x00\x00\x4e\x20")
            .unwrap()
            .valid_frontend());
        assert!(Header::parse(b"Q\x00\x00\x4e\x20")
            .unwrap()
            .valid_frontend());
        // 'J' is no message type.
        assert!(!Header::parse(b"J\x00\x00\x00\x04")
            .unwrap()
            .valid_frontend());
        // Backend: a 40000-byte ReadyForQuery is lost sync; a 40000-byte DataRow is fine.
        assert!(!Header::parse(b"Z\x00\x00\x9c\x40").unwrap().valid_backend());
        assert!(Header::parse(b"D\x00\x00\x9c\x40").unwrap().valid_backend());
        assert_eq!(Header::parse(b"Q\x00\x00"), None);
    }

    #[test]
    fn startup_header() {
        // SSLRequest: Int32(8) Int32(80877103).
        let h = StartupHeader::parse(b"\x00\x00\x00\x08\x04\xd2\x16\x2f").unwrap();
        assert_eq!((h.len, h.code), (8, crate::codes::startup::SSL_REQUEST));
        assert!(h.plausible_len());
        assert!(!StartupHeader::parse(b"\x00\x00\x00\x03\x00\x03\x00\x00")
            .unwrap()
            .plausible_len());
    }
}
