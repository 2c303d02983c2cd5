//! PRELOGIN (MS-TDS 2.2.6.5): a table of option tokens (`token(1) offset(2 BE) length(2 BE)`)
//! ended by 0xFF, then the option data the offsets point into. Sent by the client in a PRELOGIN
//! packet and answered by the server in a tabular-result packet with the same layout.

use crate::wire::Reader;

/// Option tokens.
pub mod opt {
    /// UL_VERSION (4, big-endian) + US_SUBBUILD (2).
    pub const VERSION: u8 = 0x00;
    /// B_FENCRYPTION.
    pub const ENCRYPTION: u8 = 0x01;
    /// B_INSTVALIDITY: NUL-terminated instance name.
    pub const INSTOPT: u8 = 0x02;
    /// UL_THREADID.
    pub const THREADID: u8 = 0x03;
    /// B_MARS.
    pub const MARS: u8 = 0x04;
    /// GUID_CONNID + ACTIVITY_GUID + SEQUENCE_ID.
    pub const TRACEID: u8 = 0x05;
    /// B_FEDAUTHREQUIRED.
    pub const FEDAUTHREQUIRED: u8 = 0x06;
    /// NONCE (32 bytes).
    pub const NONCEOPT: u8 = 0x07;
    /// End of the option table.
    pub const TERMINATOR: u8 = 0xFF;
}

/// Encryption values (MS-TDS 2.2.6.5, ENCRYPTION option).
pub mod encrypt {
    /// Encryption available but off: only the login is encrypted.
    pub const OFF: u8 = 0x00;
    /// Encryption available and on.
    pub const ON: u8 = 0x01;
    /// Encryption not available.
    pub const NOT_SUP: u8 = 0x02;
    /// Encryption required.
    pub const REQ: u8 = 0x03;
    /// Client certificate authentication (TDS 7.4, with ON or REQ).
    pub const CLIENT_CERT: u8 = 0x80;

    /// Name for records.
    pub fn name(v: u8) -> &'static str {
        match v & !CLIENT_CERT {
            OFF => "off",
            ON => "on",
            NOT_SUP => "not_supported",
            REQ => "required",
            _ => "unknown",
        }
    }
}

/// What a PRELOGIN message says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prelogin {
    /// Version: major, minor, build, sub-build.
    pub version: Option<(u8, u8, u16, u16)>,
    /// Encryption value.
    pub encryption: Option<u8>,
    /// Instance name (client) or validity byte as text (server).
    pub instance: Option<String>,
    /// Client thread id.
    pub thread_id: Option<u32>,
    /// MARS requested / granted.
    pub mars: Option<bool>,
    /// FedAuth required.
    pub fedauth_required: Option<bool>,
}

/// Options kept per PRELOGIN at most (the table is tiny in practice).
const MAX_OPTIONS: usize = 32;

/// Parse a PRELOGIN payload. `None` when the option table is not well formed.
pub fn parse(payload: &[u8]) -> Option<Prelogin> {
    let mut r = Reader::new(payload);
    let mut p = Prelogin::default();
    for _ in 0..MAX_OPTIONS {
        let token = r.u8()?;
        if token == opt::TERMINATOR {
            return Some(p);
        }
        let off = r.u16be()? as usize;
        let len = r.u16be()? as usize;
        let data = payload.get(off..off.checked_add(len)?)?;
        let mut d = Reader::new(data);
        match token {
            opt::VERSION => {
                let v = d.u32be()?;
                let sub = d.u16be().unwrap_or(0);
                p.version = Some(((v >> 24) as u8, (v >> 16) as u8, v as u16, sub));
            }
            opt::ENCRYPTION => p.encryption = d.u8(),
            opt::INSTOPT => {
                let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
                let name = data.get(..end).unwrap_or_default();
                if !name.is_empty() && name.iter().all(|b| b.is_ascii_graphic()) {
                    p.instance = Some(String::from_utf8_lossy(name).into_owned());
                }
            }
            opt::THREADID => p.thread_id = d.u32be(),
            opt::MARS => p.mars = d.u8().map(|b| b == 1),
            opt::FEDAUTHREQUIRED => p.fedauth_required = d.u8().map(|b| b == 1),
            _ => {}
        }
    }
    None
}

/// A well-formed PRELOGIN option table at the head of `payload` (for the probe): known tokens,
/// offsets inside the payload, VERSION first.
pub fn well_formed(payload: &[u8]) -> bool {
    let mut r = Reader::new(payload);
    let mut first = true;
    for _ in 0..MAX_OPTIONS {
        let Some(token) = r.u8() else { return false };
        if token == opt::TERMINATOR {
            return !first;
        }
        if token > opt::NONCEOPT || (first && token != opt::VERSION) {
            return false;
        }
        first = false;
        let (Some(off), Some(len)) = (r.u16be(), r.u16be()) else {
            return false;
        };
        if off as usize + len as usize > payload.len() {
            return false;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MS-TDS 4.2, pre-login request payload (after the 8-byte header).
    const SPEC_REQUEST: [u8; 39] = [
        0x00, 0x00, 0x1A, 0x00, 0x06, // VERSION at 26, 6 bytes
        0x01, 0x00, 0x20, 0x00, 0x01, // ENCRYPTION at 32, 1 byte
        0x02, 0x00, 0x21, 0x00, 0x01, // INSTOPT at 33, 1 byte
        0x03, 0x00, 0x22, 0x00, 0x04, // THREADID at 34, 4 bytes
        0x04, 0x00, 0x26, 0x00, 0x01, // MARS at 38, 1 byte
        0xFF, // terminator
        0x09, 0x00, 0x00, 0x00, 0x00, 0x00, // version 9.0.0.0
        0x01, // ENCRYPT_ON
        0x00, // instance: empty
        0xB8, 0x0D, 0x00, 0x00, // thread id
        0x01, // MARS on
    ];

    #[test]
    fn spec_prelogin_request() {
        let p = parse(&SPEC_REQUEST).unwrap();
        assert_eq!(p.version, Some((9, 0, 0, 0)));
        assert_eq!(p.encryption, Some(encrypt::ON));
        assert_eq!(p.instance, None);
        assert_eq!(p.thread_id, Some(0xB80D_0000));
        assert_eq!(p.mars, Some(true));
        assert!(well_formed(&SPEC_REQUEST));
    }

    #[test]
    fn bad_tables_are_refused() {
        assert!(parse(&[0x00, 0x00, 0x30, 0x00, 0x06, 0xff]).is_none());
        assert!(!well_formed(&[0xff]));
        assert!(!well_formed(b"GET / HTTP/1.1"));
        assert_eq!(encrypt::name(0x81), "on");
    }
}
