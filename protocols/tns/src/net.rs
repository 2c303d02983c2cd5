//! TNS connection packets (CONNECT, ACCEPT, REFUSE, REDIRECT), the connect descriptor, and the
//! Advanced Networking Option (ANO) negotiation that precedes TTC in the first DATA packets.
//! Pure functions over complete packets (header included); nothing here can panic.

use crate::frame::{be16, be32, HEADER_LEN};

/// Bytes of a connect descriptor kept (the longest real ones are a few hundred bytes).
pub const MAX_DESCRIPTOR_LEN: usize = 4096;
/// Bytes kept of one descriptor value (service name, program, host, user).
pub const MAX_VALUE_LEN: usize = 256;

/// The fixed part of a CONNECT packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// TNS version the client proposes.
    pub version: u16,
    /// Lowest version the client accepts.
    pub compat: u16,
    /// Connect data length announced.
    pub data_len: usize,
    /// Offset of the connect data from the start of the packet.
    pub data_offset: usize,
    /// The connect data in this packet (may be shorter than `data_len`: the rest, or all of it,
    /// then follows in DATA packets).
    pub data: Vec<u8>,
}

/// Parse a CONNECT packet.
pub fn connect(pkt: &[u8]) -> Option<Connect> {
    let version = be16(pkt, 8)?;
    let compat = be16(pkt, 10)?;
    let data_len = be16(pkt, 24)? as usize;
    let data_offset = be16(pkt, 26)? as usize;
    let data = if data_len > 0 && data_offset >= HEADER_LEN {
        let end = data_offset
            .saturating_add(data_len)
            .min(pkt.len())
            .min(data_offset.saturating_add(MAX_DESCRIPTOR_LEN));
        pkt.get(data_offset..end).unwrap_or_default().to_vec()
    } else {
        Vec::new()
    };
    Some(Connect {
        version,
        compat,
        data_len,
        data_offset,
        data,
    })
}

/// The fixed part of an ACCEPT packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accept {
    /// Negotiated TNS version.
    pub version: u16,
    /// Session data unit (the 4-byte field from version 315 on).
    pub sdu: u32,
    /// Transport data unit.
    pub tdu: u32,
}

/// Parse an ACCEPT packet.
pub fn accept(pkt: &[u8]) -> Option<Accept> {
    let version = be16(pkt, 8)?;
    let mut sdu = u32::from(be16(pkt, 12)?);
    let mut tdu = u32::from(be16(pkt, 14)?);
    if version >= crate::frame::VERSION_LARGE_SDU {
        if let (Some(s), Some(t)) = (be32(pkt, 32), be32(pkt, 36)) {
            sdu = s;
            tdu = t;
        }
    }
    Some(Accept { version, sdu, tdu })
}

/// A REFUSE packet: reasons and the listener's descriptor (with `ERR=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refuse {
    /// User reason byte.
    pub user_reason: u8,
    /// System reason byte.
    pub system_reason: u8,
    /// The refuse data (a descriptor), bounded.
    pub data: Vec<u8>,
}

/// Parse a REFUSE packet.
pub fn refuse(pkt: &[u8]) -> Option<Refuse> {
    let user_reason = *pkt.get(8)?;
    let system_reason = *pkt.get(9)?;
    let len = be16(pkt, 10)? as usize;
    let end = 12usize
        .saturating_add(len.min(MAX_DESCRIPTOR_LEN))
        .min(pkt.len());
    Some(Refuse {
        user_reason,
        system_reason,
        data: pkt.get(12..end).unwrap_or_default().to_vec(),
    })
}

/// Parse a REDIRECT packet: (announced data length, the data in this packet).
pub fn redirect(pkt: &[u8]) -> Option<(usize, Vec<u8>)> {
    let len = be16(pkt, 8)? as usize;
    let end = 10usize
        .saturating_add(len.min(MAX_DESCRIPTOR_LEN))
        .min(pkt.len());
    Some((len, pkt.get(10..end).unwrap_or_default().to_vec()))
}

/// The address part of REDIRECT data: all of it, or what comes before a NUL (newer listeners
/// send the address, a NUL, then the connect data the client is to send to that address:
/// python-oracledb splits there; go-ora when the REDIRECT's header flag 0x02 is set).
pub fn redirect_address(data: &[u8]) -> &[u8] {
    match data.iter().position(|&b| b == 0) {
        Some(nul) => data.get(..nul).unwrap_or_default(),
        None => data,
    }
}

/// The value of `key` in a descriptor like `(DESCRIPTION=(CONNECT_DATA=(SERVICE_NAME=XE)…))`,
/// searched from the start of `desc` (ASCII case-insensitive key). Bounded.
pub fn value<'a>(desc: &'a [u8], key: &str) -> Option<&'a [u8]> {
    let k = key.as_bytes();
    let mut i = 0usize;
    while i < desc.len() {
        if desc.get(i) == Some(&b'(') {
            let after = i + 1;
            let name_end = after + k.len();
            if desc
                .get(after..name_end)
                .is_some_and(|n| n.eq_ignore_ascii_case(k))
            {
                // Allow spaces before '='.
                let mut j = name_end;
                while desc.get(j) == Some(&b' ') {
                    j += 1;
                }
                if desc.get(j) == Some(&b'=') {
                    let start = j + 1;
                    let rest = desc.get(start..).unwrap_or_default();
                    let end = rest
                        .iter()
                        .position(|&b| b == b')' || b == b'(')
                        .unwrap_or(rest.len());
                    let v = rest.get(..end.min(MAX_VALUE_LEN)).unwrap_or_default();
                    return Some(trim(v));
                }
            }
        }
        i += 1;
    }
    None
}

/// The body of the first `(KEY=…)` group (to search inside `CID` or `CONNECT_DATA`).
pub fn group<'a>(desc: &'a [u8], key: &str) -> Option<&'a [u8]> {
    let k = key.as_bytes();
    let mut i = 0usize;
    while i < desc.len() {
        if desc.get(i) == Some(&b'(')
            && desc
                .get(i + 1..i + 1 + k.len())
                .is_some_and(|n| n.eq_ignore_ascii_case(k))
            && desc.get(i + 1 + k.len()) == Some(&b'=')
        {
            let start = i + 2 + k.len();
            let mut depth = 1usize;
            let mut j = start;
            while j < desc.len() {
                match desc.get(j) {
                    Some(b'(') => depth += 1,
                    Some(b')') => {
                        depth -= 1;
                        if depth == 0 {
                            return desc.get(start..j);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            return desc.get(start..);
        }
        i += 1;
    }
    None
}

fn trim(v: &[u8]) -> &[u8] {
    let s = v.iter().position(|&b| b != b' ').unwrap_or(v.len());
    let e = v.iter().rposition(|&b| b != b' ').map_or(s, |p| p + 1);
    v.get(s..e).unwrap_or_default()
}

/// What a connect descriptor says about the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Descriptor {
    /// `SERVICE_NAME`, else `SID`.
    pub service: Option<String>,
    /// `CID.PROGRAM`.
    pub program: Option<String>,
    /// `CID.HOST`.
    pub host: Option<String>,
    /// `CID.USER`: the client's OS user.
    pub os_user: Option<String>,
}

/// Read the fields dbtap reports from a connect descriptor.
pub fn descriptor(desc: &[u8]) -> Descriptor {
    let text = |v: &[u8]| dbtap_core::text::decode_utf8(v);
    let cd = group(desc, "CONNECT_DATA").unwrap_or(desc);
    let cid = group(desc, "CID");
    Descriptor {
        service: value(cd, "SERVICE_NAME")
            .or_else(|| value(cd, "SID"))
            .filter(|v| !v.is_empty())
            .map(text),
        program: cid.and_then(|c| value(c, "PROGRAM")).map(text),
        host: cid.and_then(|c| value(c, "HOST")).map(text),
        os_user: cid.and_then(|c| value(c, "USER")).map(text),
    }
}

/// ANO magic at the start of the TTC stream of the first DATA packets.
pub const ANO_MAGIC: [u8; 4] = [0xde, 0xad, 0xbe, 0xef];
/// ANO service numbers.
pub mod ano_service {
    /// Supervisor.
    pub const SUPERVISOR: u16 = 4;
    /// Authentication (Kerberos, RADIUS, …).
    pub const AUTHENTICATION: u16 = 1;
    /// Native network encryption.
    pub const ENCRYPTION: u16 = 2;
    /// Data integrity (checksumming).
    pub const INTEGRITY: u16 = 3;
}
/// Services read at most from one ANO packet.
const MAX_ANO_SERVICES: usize = 16;
/// Sub-packets read at most per service.
const MAX_ANO_SUBPACKETS: usize = 64;

/// What a server's ANO answer chose.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AnoChoice {
    /// Encryption algorithm id chosen (0: none).
    pub encryption: Option<u8>,
    /// Checksum algorithm id chosen (0: none).
    pub integrity: Option<u8>,
}

/// Parse an ANO packet body (starting at the magic) as the server's answer: for the encryption
/// and integrity services, the chosen algorithm is the one-byte (type 2) sub-packet.
pub fn ano_choice(d: &[u8]) -> Option<AnoChoice> {
    if d.get(..4)? != ANO_MAGIC {
        return None;
    }
    let total = be16(d, 4)? as usize;
    let d = d.get(..total.min(d.len()))?;
    let services = be16(d, 10)? as usize;
    let mut at = 13usize;
    let mut out = AnoChoice::default();
    for _ in 0..services.min(MAX_ANO_SERVICES) {
        let service = be16(d, at)?;
        let subs = be16(d, at + 2)? as usize;
        at += 8;
        for _ in 0..subs.min(MAX_ANO_SUBPACKETS) {
            let len = be16(d, at)? as usize;
            let ty = be16(d, at + 2)?;
            let val = d.get(at + 4..at + 4 + len)?;
            if ty == 2 && len == 1 {
                let v = val.first().copied();
                match service {
                    ano_service::ENCRYPTION => out.encryption = v,
                    ano_service::INTEGRITY => out.integrity = v,
                    _ => {}
                }
            }
            at += 4 + len;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_fields_from_junkie_select_frame_4() {
        let d = b"(DESCRIPTION=(CONNECT_DATA=(SERVICE_NAME=XE)(CID=(PROGRAM=sqlplus@xyodis)(HOST=xyodis)(USER=guest)))(ADDRESS=(PROTOCOL=TCP)(HOST=192.168.10.9)(PORT=1521)))";
        let x = descriptor(d);
        assert_eq!(x.service.as_deref(), Some("XE"));
        assert_eq!(x.program.as_deref(), Some("sqlplus@xyodis"));
        assert_eq!(x.host.as_deref(), Some("xyodis"));
        assert_eq!(x.os_user.as_deref(), Some("guest"));
        assert_eq!(value(d, "PORT"), Some(&b"1521"[..]));
    }

    #[test]
    fn sid_when_no_service_name() {
        let d = b"(DESCRIPTION=(CONNECT_DATA=(SID=orcl11g)(CID=(PROGRAM=SQL Developer)(HOST=__jdbc__)(USER=visor))))";
        let x = descriptor(d);
        assert_eq!(x.service.as_deref(), Some("orcl11g"));
        assert_eq!(x.program.as_deref(), Some("SQL Developer"));
    }
}
