//! LOGIN7 (MS-TDS 2.2.6.4) and the NTLM messages carried in SSPI (MS-NLMP 2.2.1).
//!
//! The password (and the ChangePassword field) is obfuscated, not encrypted, on the wire: it is
//! never read here. Neither is any SSPI or FedAuth token: only the NTLM AUTHENTICATE message's
//! user, domain and workstation names, which are sent in clear.

use crate::wire::{utf16, Reader};

/// Fixed part of LOGIN7 up to and including `cbSSPILong` (TDS 7.2+); TDS 7.0/7.1 stop at 86.
pub const FIXED_LEN: usize = 94;
/// Fixed part of TDS 7.0 / 7.1 LOGIN7.
pub const FIXED_LEN_71: usize = 86;
/// A LOGIN7 longer than this is not believed (the length field is a u32; the variable part
/// holds a few short names and an SSPI blob).
pub const MAX_LOGIN7_LEN: usize = 128 * 1024;

/// OptionFlags2 fIntSecurity: integrated (SSPI) authentication.
pub const F_INT_SECURITY: u8 = 0x80;
/// OptionFlags3 fExtension: ibExtension points at a FeatureExt block.
pub const F_EXTENSION: u8 = 0x10;
/// FeatureExt feature id for federated authentication.
pub const FEATURE_FEDAUTH: u8 = 0x02;
/// FeatureExt terminator.
pub const FEATURE_TERMINATOR: u8 = 0xFF;
/// FeatureExt features read at most.
const MAX_FEATURES: usize = 32;

/// What a LOGIN7 says (no secrets).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Login7 {
    /// TDS version the client asks for (as on the wire, e.g. 0x74000004).
    pub tds_version: u32,
    /// Packet size the client asks for.
    pub packet_size: u32,
    /// Client program version.
    pub client_prog_ver: u32,
    /// Client process id.
    pub client_pid: u32,
    /// Client host name.
    pub host_name: String,
    /// SQL login name (empty with integrated security).
    pub user_name: String,
    /// A password was sent (it is never decoded).
    pub password_sent: bool,
    /// Application name.
    pub app_name: String,
    /// Server name as the client addressed it.
    pub server_name: String,
    /// Client interface library (e.g. "ODBC", "Core .Net SqlClient Data Provider").
    pub client_library: String,
    /// Initial language.
    pub language: String,
    /// Initial database.
    pub database: String,
    /// Integrated security (SSPI) was asked for.
    pub integrated_security: bool,
    /// The SSPI blob is NTLM (else Kerberos / SPNEGO).
    pub sspi_ntlm: bool,
    /// Names from an NTLM AUTHENTICATE carried in the login itself (rare).
    pub ntlm: Option<NtlmAuth>,
    /// The FedAuth feature was asked for.
    pub fedauth: bool,
    /// Fields whose offsets fell outside the message.
    pub bad_fields: u32,
}

fn field(msg: &[u8], fixed: &mut Reader<'_>, bad: &mut u32) -> Option<String> {
    let off = fixed.u16le()? as usize;
    let cch = fixed.u16le()? as usize;
    match msg.get(off..off + cch * 2) {
        Some(b) => Some(utf16(b)),
        None => {
            *bad += 1;
            Some(String::new())
        }
    }
}

/// Parse a LOGIN7 message (the payload of all its packets). `None` when it is too short or its
/// length field does not fit.
pub fn parse(msg: &[u8]) -> Option<Login7> {
    let mut r = Reader::new(msg);
    let length = r.u32le()? as usize;
    if !(FIXED_LEN_71..=MAX_LOGIN7_LEN).contains(&length) || msg.len() < FIXED_LEN_71 {
        return None;
    }
    let mut l = Login7 {
        tds_version: r.u32le()?,
        packet_size: r.u32le()?,
        client_prog_ver: r.u32le()?,
        client_pid: r.u32le()?,
        ..Default::default()
    };
    let _connection_id = r.u32le()?;
    let _flags1 = r.u8()?;
    let flags2 = r.u8()?;
    let _type_flags = r.u8()?;
    let flags3 = r.u8()?;
    let _tz = r.u32le()?;
    let _lcid = r.u32le()?;
    let mut bad = 0;
    l.host_name = field(msg, &mut r, &mut bad)?;
    l.user_name = field(msg, &mut r, &mut bad)?;
    // ibPassword / cchPassword: only whether one was sent.
    let _ib_pw = r.u16le()?;
    l.password_sent = r.u16le()? > 0;
    l.app_name = field(msg, &mut r, &mut bad)?;
    l.server_name = field(msg, &mut r, &mut bad)?;
    let ib_ext = r.u16le()? as usize;
    let cb_ext = r.u16le()? as usize;
    l.client_library = field(msg, &mut r, &mut bad)?;
    l.language = field(msg, &mut r, &mut bad)?;
    l.database = field(msg, &mut r, &mut bad)?;
    let _client_id = r.take(6)?;
    let ib_sspi = r.u16le()? as usize;
    let mut cb_sspi = r.u16le()? as usize;
    let _atch = r.u32le()?;
    if msg.len() >= FIXED_LEN && crate::types::Tds::from_version(l.tds_version).v72() {
        let _change_pw = r.u32le()?;
        let long = r.u32le()? as usize;
        if cb_sspi == 0xFFFF && long > 0 {
            cb_sspi = long;
        }
    }
    l.integrated_security = flags2 & F_INT_SECURITY != 0;
    if cb_sspi > 0 {
        let end = ib_sspi.saturating_add(cb_sspi).min(msg.len());
        let blob = msg.get(ib_sspi.min(end)..end).unwrap_or_default();
        l.sspi_ntlm = find_ntlm(blob).is_some();
        l.ntlm = ntlm_authenticate(blob);
    }
    if flags3 & F_EXTENSION != 0 && cb_ext >= 4 {
        // ibExtension points at a DWORD holding the offset of the FeatureExt block.
        let feat_off = msg
            .get(ib_ext..ib_ext + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes);
        if let Some(off) = feat_off {
            l.fedauth =
                features(msg.get(off as usize..).unwrap_or_default()).contains(&FEATURE_FEDAUTH);
        }
    }
    l.bad_fields = bad;
    Some(l)
}

/// Feature ids of a FeatureExt block (MS-TDS 2.2.6.4: FeatureId(1) FeatureDataLen(4) data).
fn features(d: &[u8]) -> Vec<u8> {
    let mut r = Reader::new(d);
    let mut out = Vec::new();
    for _ in 0..MAX_FEATURES {
        let Some(id) = r.u8() else { break };
        if id == FEATURE_TERMINATOR {
            break;
        }
        out.push(id);
        let Some(len) = r.u32le() else { break };
        if r.skip(len as usize).is_none() {
            break;
        }
    }
    out
}

/// Names from an NTLM AUTHENTICATE message (MS-NLMP 2.2.1.3). No responses, no session key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NtlmAuth {
    /// Domain name.
    pub domain: String,
    /// User name.
    pub user: String,
    /// Workstation name.
    pub workstation: String,
}

const NTLM_SIGNATURE: &[u8; 8] = b"NTLMSSP\0";
/// MS-NLMP 2.2.2.5: NTLMSSP_NEGOTIATE_UNICODE.
const NTLM_UNICODE: u32 = 0x0000_0001;
/// Bytes of an SSPI blob searched for the NTLM signature (SPNEGO wraps it a few dozen bytes in).
const NTLM_SEARCH: usize = 256;

fn find_ntlm(blob: &[u8]) -> Option<&[u8]> {
    let head = blob.get(..blob.len().min(NTLM_SEARCH + 8))?;
    let at = head.windows(8).position(|w| w == NTLM_SIGNATURE)?;
    blob.get(at..)
}

/// The NTLM message type of an SSPI blob (1 negotiate, 2 challenge, 3 authenticate).
pub fn ntlm_type(blob: &[u8]) -> Option<u32> {
    Reader::new(find_ntlm(blob)?.get(8..)?).u32le()
}

impl NtlmAuth {
    /// The account as Windows writes it: `DOMAIN\user`, or the user alone when the message
    /// names no domain (a local account, or a UPN in the user field).
    pub fn account(&self) -> String {
        if self.domain.is_empty() {
            self.user.clone()
        } else {
            format!("{}\\{}", self.domain, self.user)
        }
    }
}

/// User, domain and workstation from an NTLM AUTHENTICATE message inside `blob`.
pub fn ntlm_authenticate(blob: &[u8]) -> Option<NtlmAuth> {
    let m = find_ntlm(blob)?;
    let mut r = Reader::new(m.get(8..)?);
    if r.u32le()? != 3 {
        return None;
    }
    r.skip(16)?; // LM and NT challenge responses: never read
    let mut fields = [(0usize, 0usize); 3];
    for f in &mut fields {
        let len = r.u16le()? as usize;
        let _max = r.u16le()?;
        let off = r.u32le()? as usize;
        *f = (off, len);
    }
    r.skip(8)?; // EncryptedRandomSessionKey: never read
    let flags = r.u32le()?;
    let text = |(off, len): (usize, usize)| -> String {
        let b = m.get(off..off.saturating_add(len)).unwrap_or_default();
        if flags & NTLM_UNICODE != 0 {
            utf16(b)
        } else {
            dbtap_core::text::decode(b, encoding_rs::WINDOWS_1252)
        }
    };
    Some(NtlmAuth {
        domain: text(fields[0]),
        user: text(fields[1]),
        workstation: text(fields[2]),
    })
}

/// TDS version as text ("7.4"), from the LOGIN7 or LOGINACK value.
pub fn version_name(v: u32) -> String {
    match v {
        // A LOGINACK from SQL Server 7.0 / 2000 gives 0x07000000 / 0x07010000 (MS-TDS 2.2.7.14,
        // product behaviour note): the same versions with their bytes the other way round.
        0x7000_0000 | 0x0700_0000 => "7.0".into(),
        0x7100_0000 | 0x7100_0001 | 0x0701_0000 => "7.1".into(),
        0x7209_0002 => "7.2".into(),
        0x730A_0003 => "7.3A".into(),
        0x730B_0003 => "7.3B".into(),
        0x7400_0004 => "7.4".into(),
        0x0800_0000 => "8.0".into(),
        other => format!("0x{other:08x}"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn an_ntlm_account_without_a_domain_is_the_user_alone() {
        let mut a = NtlmAuth {
            domain: String::new(),
            user: "nurse01@hospital.example".into(),
            workstation: "WARD-PC-07".into(),
        };
        assert_eq!(a.account(), "nurse01@hospital.example");
        a.domain = "HOSP".into();
        a.user = "nurse01".into();
        assert_eq!(a.account(), "HOSP\\nurse01");
    }

    /// Build a LOGIN7 the way MS-TDS 2.2.6.4 lays it out: fixed part, then the strings in the
    /// order of their offset/length pairs.
    pub(crate) fn build(user: &str, password: &str, db: &str, sspi: &[u8]) -> Vec<u8> {
        let u16s = |s: &str| {
            s.encode_utf16()
                .flat_map(|c| c.to_le_bytes())
                .collect::<Vec<u8>>()
        };
        let strings = [
            u16s("WS01"),
            u16s(user),
            // Obfuscated the way the spec says (swap nibbles, XOR 0xA5); never decoded.
            u16s(password)
                .iter()
                .map(|b| (b.rotate_left(4)) ^ 0xA5)
                .collect(),
            u16s("his-app"),
            u16s("db1"),
            Vec::new(),
            u16s("ODBC"),
            u16s("us_english"),
            u16s(db),
        ];
        let mut data = Vec::new();
        let mut pairs = Vec::new();
        for s in &strings {
            pairs.push(((FIXED_LEN + data.len()) as u16, (s.len() / 2) as u16));
            data.extend_from_slice(s);
        }
        let sspi_off = (FIXED_LEN + data.len()) as u16;
        data.extend_from_slice(sspi);
        let mut m = Vec::new();
        m.extend_from_slice(&((FIXED_LEN + data.len()) as u32).to_le_bytes());
        m.extend_from_slice(&0x7400_0004u32.to_le_bytes());
        m.extend_from_slice(&4096u32.to_le_bytes());
        m.extend_from_slice(&0x0700_0000u32.to_le_bytes());
        m.extend_from_slice(&4242u32.to_le_bytes());
        m.extend_from_slice(&0u32.to_le_bytes());
        m.extend_from_slice(&[0xE0, if sspi.is_empty() { 0x03 } else { 0x83 }, 0, 0]);
        m.extend_from_slice(&0u32.to_le_bytes());
        m.extend_from_slice(&0x0409u32.to_le_bytes());
        for (o, l) in &pairs[..7] {
            m.extend_from_slice(&o.to_le_bytes());
            m.extend_from_slice(&l.to_le_bytes());
        }
        // Pairs 5 (extension) is unused here; pairs 6..8 are CltIntName, Language, Database.
        for (o, l) in &pairs[7..] {
            m.extend_from_slice(&o.to_le_bytes());
            m.extend_from_slice(&l.to_le_bytes());
        }
        m.extend_from_slice(&[0, 0x50, 0x8b, 0xe2, 0x39, 0x37]);
        m.extend_from_slice(&sspi_off.to_le_bytes());
        m.extend_from_slice(&(sspi.len() as u16).to_le_bytes());
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(&0u32.to_le_bytes());
        assert_eq!(m.len(), FIXED_LEN);
        m.extend_from_slice(&data);
        m
    }

    #[test]
    fn login7_fields_and_no_password() {
        let m = build("his_user", "S3cret!", "EMR", &[]);
        let l = parse(&m).unwrap();
        assert_eq!(l.user_name, "his_user");
        assert_eq!(l.host_name, "WS01");
        assert_eq!(l.app_name, "his-app");
        assert_eq!(l.server_name, "db1");
        assert_eq!(l.client_library, "ODBC");
        assert_eq!(l.language, "us_english");
        assert_eq!(l.database, "EMR");
        assert_eq!(l.client_pid, 4242);
        assert_eq!(l.packet_size, 4096);
        assert_eq!(version_name(l.tds_version), "7.4");
        assert!(l.password_sent);
        assert!(!l.integrated_security);
        assert_eq!(l.bad_fields, 0);
        assert!(!format!("{l:?}").contains("S3cret"));
    }

    pub(crate) fn ntlm_auth(domain: &str, user: &str, ws: &str) -> Vec<u8> {
        let u16s = |s: &str| {
            s.encode_utf16()
                .flat_map(|c| c.to_le_bytes())
                .collect::<Vec<u8>>()
        };
        let (d, u, w) = (u16s(domain), u16s(user), u16s(ws));
        let lm = [0x11u8; 24];
        let nt = [0x22u8; 24];
        let mut m = Vec::new();
        m.extend_from_slice(NTLM_SIGNATURE);
        m.extend_from_slice(&3u32.to_le_bytes());
        let mut off = 64u32;
        let mut payload = Vec::new();
        for part in [&lm[..], &nt[..], &d[..], &u[..], &w[..], &[][..]] {
            m.extend_from_slice(&(part.len() as u16).to_le_bytes());
            m.extend_from_slice(&(part.len() as u16).to_le_bytes());
            m.extend_from_slice(&off.to_le_bytes());
            off += part.len() as u32;
            payload.extend_from_slice(part);
        }
        m.extend_from_slice(&(NTLM_UNICODE | 0x0008_0000).to_le_bytes());
        m.extend_from_slice(&payload);
        m
    }

    #[test]
    fn ntlm_authenticate_names_only() {
        let blob = ntlm_auth("HOSP", "nurse1", "WARD-PC");
        let a = ntlm_authenticate(&blob).unwrap();
        assert_eq!(a.domain, "HOSP");
        assert_eq!(a.user, "nurse1");
        assert_eq!(a.workstation, "WARD-PC");
        assert_eq!(ntlm_type(&blob), Some(3));
        assert!(ntlm_authenticate(b"NTLMSSP\0\x01\0\0\0").is_none());
    }

    #[test]
    fn fedauth_feature_is_flagged() {
        // MS-TDS 2.2.6.4: fExtension (OptionFlags3 0x10); ibExtension points at a DWORD holding
        // the offset of the FeatureExt block: FEDAUTH (0x02), FeatureDataLen 1, data, 0xFF.
        let mut m = build("", "", "EMR", &[]);
        m[27] |= F_EXTENSION;
        let dword_at = m.len();
        let feat_at = dword_at + 4;
        m.extend_from_slice(&(feat_at as u32).to_le_bytes());
        m.extend_from_slice(&[FEATURE_FEDAUTH, 1, 0, 0, 0, 0x02, FEATURE_TERMINATOR]);
        m[56..58].copy_from_slice(&(dword_at as u16).to_le_bytes());
        m[58..60].copy_from_slice(&4u16.to_le_bytes());
        let len = m.len() as u32;
        m[..4].copy_from_slice(&len.to_le_bytes());
        let l = parse(&m).unwrap();
        assert!(l.fedauth);
        assert_eq!(l.database, "EMR");
        // Without the flag the block is not read.
        m[27] &= !F_EXTENSION;
        assert!(!parse(&m).unwrap().fedauth);
    }

    #[test]
    fn short_or_huge_login7_is_refused() {
        assert!(parse(&[0; 20]).is_none());
        let mut m = build("a", "", "", &[]);
        m[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse(&m).is_none());
    }
}
