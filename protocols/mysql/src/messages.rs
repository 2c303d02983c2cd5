//! Pure parse functions over exactly-sized message bodies (the payload of one packet, or the
//! head of a payload that was cut at a limit). None of them can panic: they read through
//! [`Reader`], and a body that is too short yields `None` (malformed) or a partial value where
//! the field layout allows it. Layouts follow the "Connection Phase" and "Command Phase" pages of
//! the MySQL Client/Server Protocol reference and MariaDB's protocol pages.
//!
//! Credentials never leave this module: the auth-plugin data of the greeting and the auth
//! response of the handshake are skipped, only their presence is reported.

use crate::codes::{session_track, status, Caps, FieldType};
use crate::wire::Reader;

/// Protocol::HandshakeV10 (or V9) from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting<'a> {
    /// Protocol version: 10, or 9 for servers older than 3.21.
    pub protocol: u8,
    /// Human-readable server version (NUL-terminated on the wire).
    pub version: &'a [u8],
    /// Connection (thread) id.
    pub connection_id: u32,
    /// Server capabilities, MariaDB extended capabilities above bit 32.
    pub caps: Caps,
    /// Server default collation.
    pub collation: u8,
    /// Default auth plugin, when `CLIENT_PLUGIN_AUTH`.
    pub auth_plugin: Option<&'a [u8]>,
}

/// Parse a server greeting.
pub fn greeting(body: &[u8]) -> Option<Greeting<'_>> {
    let mut r = Reader::new(body);
    let protocol = r.u8()?;
    let version = r.nul_bytes()?;
    let connection_id = r.u32()?;
    if protocol == 9 {
        // HandshakeV9: scramble<NUL> and nothing else worth reading.
        return Some(Greeting {
            protocol,
            version,
            connection_id,
            caps: Caps(0),
            collation: 0,
            auth_plugin: None,
        });
    }
    if protocol != 10 {
        return None;
    }
    // auth-plugin-data-part-1 (8) + filler (1): skipped, never kept.
    r.skip(9)?;
    let mut caps = r.u16()? as u64;
    if r.is_empty() {
        // Pre-4.1 servers may end here.
        return Some(Greeting {
            protocol,
            version,
            connection_id,
            caps: Caps(caps),
            collation: 0,
            auth_plugin: None,
        });
    }
    let collation = r.u8()?;
    let _status = r.u16()?;
    caps |= (r.u16()? as u64) << 16;
    let auth_len = r.u8()?;
    // reserved (10): MariaDB puts its extended capabilities in the last 4 when it clears
    // CLIENT_LONG_PASSWORD ("CLIENT_MYSQL") in the base capabilities.
    let reserved = r.take(10)?;
    if caps & Caps::LONG_PASSWORD == 0 {
        let ext = reserved.get(6..10).map(crate::wire::le).unwrap_or(0);
        caps |= ext << 32;
    }
    let mut auth_plugin = None;
    if caps & Caps::SECURE_CONNECTION != 0 {
        // auth-plugin-data-part-2: max(13, auth_len - 8) bytes, skipped.
        let n = (auth_len as usize).saturating_sub(8).max(13);
        if r.skip(n).is_none() {
            let _ = r.rest();
        }
    }
    if caps & Caps::PLUGIN_AUTH != 0 && !r.is_empty() {
        auth_plugin = Some(r.nul_or_rest());
    }
    Some(Greeting {
        protocol,
        version,
        connection_id,
        caps: Caps(caps),
        collation,
        auth_plugin,
    })
}

/// What a client's handshake response (or COM_CHANGE_USER) says, credentials left out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LoginInfo<'a> {
    /// Client capabilities.
    pub caps: Caps,
    /// Requested collation (0 when absent).
    pub collation: u16,
    /// User name.
    pub user: &'a [u8],
    /// A non-empty auth response was sent (and dropped).
    pub auth_sent: bool,
    /// Database asked for.
    pub database: Option<&'a [u8]>,
    /// Auth plugin name.
    pub plugin: Option<&'a [u8]>,
    /// Connection attributes (key, value), at most `max_attrs`.
    pub attrs: Vec<(&'a [u8], &'a [u8])>,
    /// Attributes beyond `max_attrs` were dropped.
    pub attrs_cut: bool,
    /// The body ended early (cut at a limit or malformed); fields after that point are missing.
    pub short: bool,
}

/// Length of an SSLRequest payload: caps(4) max_packet(4) charset(1) filler(23).
pub const SSL_REQUEST_LEN: usize = 32;

/// True when a handshake response body is an SSLRequest (the client switches to TLS next).
pub fn is_ssl_request(body: &[u8]) -> bool {
    let caps = Reader::new(body).u32().unwrap_or(0) as u64;
    if caps & Caps::PROTOCOL_41 != 0 {
        body.len() == SSL_REQUEST_LEN && caps & Caps::SSL != 0
    } else {
        // HandshakeResponse320-era SSL request: caps(2) max_packet(3).
        body.len() == 5 && caps & Caps::SSL != 0
    }
}

/// Parse Protocol::HandshakeResponse41 or HandshakeResponse320 (chosen by CLIENT_PROTOCOL_41 in
/// the first two bytes). `server_caps` masks features the server did not offer.
pub fn handshake_response(
    body: &[u8],
    server_caps: Caps,
    max_attrs: usize,
) -> Option<LoginInfo<'_>> {
    let mut r = Reader::new(body);
    let low = r.u16()? as u64;
    let mut info = LoginInfo::default();
    if low & Caps::PROTOCOL_41 == 0 {
        // HandshakeResponse320: caps(2) max_packet(3) user<NUL> auth-response (NUL-terminated,
        // or rest) [database<NUL> when CLIENT_CONNECT_WITH_DB].
        info.caps = Caps(low);
        r.skip(3)?;
        info.user = r.nul_or_rest();
        let auth = if low & Caps::CONNECT_WITH_DB != 0 {
            r.nul_or_rest()
        } else {
            r.rest()
        };
        info.auth_sent = !auth.is_empty();
        if low & Caps::CONNECT_WITH_DB != 0 && !r.is_empty() {
            info.database = Some(r.nul_or_rest());
        }
        return Some(info);
    }
    let caps = low | (r.u16()? as u64) << 16;
    // Features both sides must support; when the greeting was not seen, trust the client.
    let eff = if server_caps.0 == 0 {
        caps
    } else {
        caps & (server_caps.0 | 0xffff_ffff_0000_0000)
    };
    info.caps = Caps(caps);
    r.skip(4)?; // max packet size
    info.collation = r.u8()? as u16;
    // filler (23); MariaDB clients put their extended capabilities in its last 4 bytes when
    // they clear CLIENT_LONG_PASSWORD ("CLIENT_MYSQL").
    let filler = r.take(23)?;
    if caps & Caps::LONG_PASSWORD == 0 {
        let ext = filler.get(19..23).map(crate::wire::le).unwrap_or(0);
        info.caps = Caps(caps | ext << 32);
    }
    let Some(user) = r.nul_bytes() else {
        info.user = r.rest();
        info.short = true;
        return Some(info);
    };
    info.user = user;
    let auth = if eff & Caps::PLUGIN_AUTH_LENENC_DATA != 0 {
        r.lenenc_bytes()
    } else if eff & Caps::SECURE_CONNECTION != 0 {
        r.u8().and_then(|n| r.take(n as usize))
    } else {
        r.nul_bytes()
    };
    let Some(auth) = auth else {
        info.auth_sent = true;
        info.short = true;
        return Some(info);
    };
    info.auth_sent = !auth.is_empty();
    if eff & Caps::CONNECT_WITH_DB != 0 && !r.is_empty() {
        info.database = Some(r.nul_or_rest());
    }
    if eff & Caps::PLUGIN_AUTH != 0 && !r.is_empty() {
        info.plugin = Some(r.nul_or_rest());
    }
    if eff & Caps::CONNECT_ATTRS != 0 && !r.is_empty() {
        read_attrs(&mut r, max_attrs, &mut info);
    }
    Some(info)
}

/// Parse COM_CHANGE_USER (after the command byte): `user<NUL>`, auth response (1-byte length
/// with CLIENT_SECURE_CONNECTION, else NUL-terminated), `database<NUL>`, then
/// `collation(2)`, `plugin<NUL>` and attributes, each only when bytes are left.
pub fn change_user(body: &[u8], caps: Caps, max_attrs: usize) -> Option<LoginInfo<'_>> {
    let mut r = Reader::new(body);
    let mut info = LoginInfo {
        caps,
        ..Default::default()
    };
    info.user = r.nul_or_rest();
    let auth = if caps.has(Caps::SECURE_CONNECTION) {
        r.u8().and_then(|n| r.take(n as usize))
    } else {
        Some(r.nul_or_rest())
    };
    let Some(auth) = auth else {
        info.short = true;
        return Some(info);
    };
    info.auth_sent = !auth.is_empty();
    if !r.is_empty() {
        info.database = Some(r.nul_or_rest());
    }
    if r.remaining() >= 2 {
        info.collation = r.u16()?;
    }
    if caps.has(Caps::PLUGIN_AUTH) && !r.is_empty() {
        info.plugin = Some(r.nul_or_rest());
    }
    if caps.has(Caps::CONNECT_ATTRS) && !r.is_empty() {
        read_attrs(&mut r, max_attrs, &mut info);
    }
    Some(info)
}

fn read_attrs<'a>(r: &mut Reader<'a>, max_attrs: usize, info: &mut LoginInfo<'a>) {
    let total = r.lenenc().and_then(|n| usize::try_from(n).ok());
    let Some(total) = total else {
        info.short = true;
        return;
    };
    let avail = r.remaining();
    let Some(block) = r.take(total.min(avail)) else {
        return;
    };
    if total > avail {
        info.short = true;
    }
    let mut a = Reader::new(block);
    while !a.is_empty() {
        let (Some(k), Some(v)) = (a.lenenc_bytes(), a.lenenc_bytes()) else {
            info.short |= total <= avail;
            break;
        };
        if info.attrs.len() >= max_attrs {
            info.attrs_cut = true;
            break;
        }
        info.attrs.push((k, v));
    }
}

/// OK packet (0x00, or 0xFE with CLIENT_DEPRECATE_EOF) fields an audit record uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OkPacket<'a> {
    /// Affected rows.
    pub affected_rows: u64,
    /// Last insert id.
    pub last_insert_id: u64,
    /// Server status flags.
    pub status: u16,
    /// Warnings.
    pub warnings: u16,
    /// New default schema, from session state tracking.
    pub schema: Option<&'a [u8]>,
    /// New `character_set_client` (or `character_set_connection`), from session state tracking.
    pub charset: Option<&'a [u8]>,
}

/// Parse an OK packet: `header(1) affected_rows<lenenc> last_insert_id<lenenc>`, `status(2)
/// warnings(2)` when 4.1, then info, and session state changes when CLIENT_SESSION_TRACK and
/// SERVER_SESSION_STATE_CHANGED.
pub fn ok_packet(body: &[u8], caps: Caps) -> Option<OkPacket<'_>> {
    let mut r = Reader::new(body);
    r.u8()?;
    let mut ok = OkPacket {
        affected_rows: r.lenenc()?,
        last_insert_id: r.lenenc()?,
        ..Default::default()
    };
    if caps.has(Caps::PROTOCOL_41) {
        ok.status = r.u16()?;
        ok.warnings = r.u16()?;
    } else if caps.has(Caps::TRANSACTIONS) {
        ok.status = r.u16()?;
    }
    if caps.has(Caps::SESSION_TRACK) && !r.is_empty() {
        // info<lenenc>, then session state info<lenenc> when the status flag says so.
        let _info = r.lenenc_bytes();
        if ok.status & status::SESSION_STATE_CHANGED != 0 {
            if let Some(block) = r.lenenc_bytes() {
                let mut s = Reader::new(block);
                while let (Some(ty), Some(data)) = (s.u8(), s.lenenc_bytes()) {
                    let mut d = Reader::new(data);
                    match ty {
                        session_track::SCHEMA => ok.schema = d.lenenc_bytes(),
                        session_track::SYSTEM_VARIABLES => {
                            if let (Some(name), Some(value)) = (d.lenenc_bytes(), d.lenenc_bytes())
                            {
                                if name.eq_ignore_ascii_case(b"character_set_client") {
                                    ok.charset = Some(value);
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    Some(ok)
}

/// ERR packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrPacket<'a> {
    /// Error code.
    pub code: u16,
    /// SQLSTATE (after `#`, 4.1 only).
    pub sqlstate: Option<&'a [u8]>,
    /// Message (possibly cut when the packet was).
    pub message: &'a [u8],
}

/// Parse an ERR packet: `0xFF code(2) ['#' sqlstate(5)] message<EOF>`. The `#` marker is looked
/// for even without CLIENT_PROTOCOL_41 (mid-stream pick-ups do not know the capabilities).
pub fn err_packet(body: &[u8]) -> Option<ErrPacket<'_>> {
    let mut r = Reader::new(body);
    if r.u8()? != 0xff {
        return None;
    }
    let code = r.u16()?;
    let mut sqlstate = None;
    if r.peek_u8() == Some(b'#') && r.remaining() >= 6 {
        r.skip(1)?;
        sqlstate = r.take(5);
    }
    Some(ErrPacket {
        code,
        sqlstate,
        message: r.rest(),
    })
}

/// EOF packet: 0xFE warnings(2) status(2) (4.1), or just 0xFE.
pub fn eof_status(body: &[u8]) -> u16 {
    let mut r = Reader::new(body);
    let _ = r.u8();
    let _warnings = r.u16();
    r.u16().unwrap_or(0)
}

/// COM_STMT_PREPARE_OK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrepareOk {
    /// Statement id.
    pub stmt_id: u32,
    /// Result columns.
    pub columns: u16,
    /// Parameters.
    pub params: u16,
    /// Warnings.
    pub warnings: u16,
    /// Column and parameter definitions follow (always, unless
    /// CLIENT_OPTIONAL_RESULTSET_METADATA says otherwise).
    pub metadata_follows: bool,
}

/// Parse COM_STMT_PREPARE_OK: 0x00 stmt_id(4) columns(2) params(2) reserved(1) warnings(2)
/// [metadata_follows(1)].
pub fn prepare_ok(body: &[u8]) -> Option<PrepareOk> {
    let mut r = Reader::new(body);
    if r.u8()? != 0 {
        return None;
    }
    let stmt_id = r.u32()?;
    let columns = r.u16()?;
    let params = r.u16()?;
    let _reserved = r.u8();
    let warnings = r.u16().unwrap_or(0);
    let metadata_follows = r.u8().is_none_or(|m| m != 0);
    Some(PrepareOk {
        stmt_id,
        columns,
        params,
        warnings,
        metadata_follows,
    })
}

/// Plugin name of an AuthSwitchRequest (`0xFE plugin<NUL> data`); the data is the scramble and
/// is not returned. A lone 0xFE is the pre-4.1 "use old password" request.
pub fn auth_switch_plugin(body: &[u8]) -> &[u8] {
    let mut r = Reader::new(body);
    let _ = r.u8();
    if r.is_empty() {
        return b"mysql_old_password";
    }
    r.nul_or_rest()
}

/// Binary-protocol parameter type: type byte and the unsigned flag (0x80 in the second byte).
pub type ParamType = (FieldType, bool);

/// Read a `param_type_and_flag` (int<2>).
pub fn param_type(r: &mut Reader<'_>) -> Option<ParamType> {
    let t = r.u8()?;
    let flags = r.u8()?;
    Some((FieldType(t), flags & 0x80 != 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A MySQL 5.7-style HandshakeV10, built field by field.
    fn greeting_bytes() -> Vec<u8> {
        let mut g = vec![10]; // protocol version 10
        g.extend_from_slice(b"5.5.5-10.6.12-MariaDB\0"); // server version<NUL>
        g.extend_from_slice(&[7, 0, 0, 0]); // connection id = 7
        g.extend_from_slice(b"SCRAMBL1"); // auth-plugin-data-part-1 (8)
        g.push(0); // filler
        g.extend_from_slice(&[0xfe, 0xf7]); // capability flags (lower): no CLIENT_MYSQL bit
        g.push(45); // character set: utf8mb4_general_ci
        g.extend_from_slice(&[2, 0]); // status flags: autocommit
        g.extend_from_slice(&[0xff, 0x81]); // capability flags (upper)
        g.push(21); // auth-plugin-data length
        g.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // reserved (6)
        g.extend_from_slice(&[0x1d, 0, 0, 0]); // MariaDB extended caps (incl. CACHE_METADATA 1<<4)
        g.extend_from_slice(b"SCRAMBLE2345\0"); // auth-plugin-data-part-2 (13)
        g.extend_from_slice(b"mysql_native_password\0"); // auth plugin name
        g
    }

    #[test]
    fn greeting_fields_and_mariadb_extended_caps() {
        let b = greeting_bytes();
        let g = greeting(&b).unwrap();
        assert_eq!(g.version, b"5.5.5-10.6.12-MariaDB");
        assert_eq!(g.connection_id, 7);
        assert_eq!(g.collation, 45);
        assert!(g
            .caps
            .has(Caps::PROTOCOL_41 | Caps::PLUGIN_AUTH | Caps::SECURE_CONNECTION));
        assert!(g.caps.has(Caps::MARIADB_CACHE_METADATA));
        assert_eq!(g.auth_plugin, Some(&b"mysql_native_password"[..]));
        // Truncations never panic.
        for n in 0..b.len() {
            let _ = greeting(&b[..n]);
        }
    }

    #[test]
    fn handshake_response41_drops_the_auth_response() {
        let mut b = Vec::new();
        // capabilities: PROTOCOL_41|SECURE_CONNECTION|CONNECT_WITH_DB|PLUGIN_AUTH|CONNECT_ATTRS
        // |PLUGIN_AUTH_LENENC_CLIENT_DATA
        let caps = (Caps::PROTOCOL_41
            | Caps::SECURE_CONNECTION
            | Caps::CONNECT_WITH_DB
            | Caps::PLUGIN_AUTH
            | Caps::CONNECT_ATTRS
            | Caps::PLUGIN_AUTH_LENENC_DATA) as u32;
        b.extend_from_slice(&caps.to_le_bytes());
        b.extend_from_slice(&[0, 0, 0, 1]); // max packet size 16 MiB
        b.push(28); // collation: gbk_chinese_ci
        b.extend_from_slice(&[0; 23]); // filler
        b.extend_from_slice(b"nurse\0"); // username<NUL>
        b.extend_from_slice(&[20]); // auth response length (lenenc)
        b.extend_from_slice(&[0xaa; 20]); // auth response (hash): must be dropped
        b.extend_from_slice(b"ward7\0"); // database<NUL>
        b.extend_from_slice(b"mysql_native_password\0"); // client plugin name
                                                         // attributes: lenenc total, then lenenc key/value pairs
        let attrs = b"\x0c_client_name\x08libmysql\x0cprogram_name\x05mysql";
        b.push(attrs.len() as u8);
        b.extend_from_slice(attrs);
        let info = handshake_response(&b, Caps(0), 64).unwrap();
        assert_eq!(info.user, b"nurse");
        assert!(info.auth_sent);
        assert_eq!(info.database, Some(&b"ward7"[..]));
        assert_eq!(info.plugin, Some(&b"mysql_native_password"[..]));
        assert_eq!(info.collation, 28);
        assert_eq!(
            info.attrs,
            vec![
                (&b"_client_name"[..], &b"libmysql"[..]),
                (&b"program_name"[..], &b"mysql"[..])
            ]
        );
        assert!(!info.short);
        // Only one attribute allowed: cut and flagged.
        let info = handshake_response(&b, Caps(0), 1).unwrap();
        assert_eq!(info.attrs.len(), 1);
        assert!(info.attrs_cut);
        for n in 0..b.len() {
            let _ = handshake_response(&b[..n], Caps(0), 64);
        }
    }

    #[test]
    fn ok_err_eof_prepare() {
        // OK: header 00, affected 3, insert id 0x1234 (fc 34 12), status 0x0002, warnings 1.
        let ok = ok_packet(
            &[0, 3, 0xfc, 0x34, 0x12, 2, 0, 1, 0],
            Caps(Caps::PROTOCOL_41),
        )
        .unwrap();
        assert_eq!(
            (ok.affected_rows, ok.last_insert_id, ok.status, ok.warnings),
            (3, 0x1234, 2, 1)
        );
        // OK with session tracking: status 0x4002, info "" , state block with SCHEMA "db2" and
        // SYSTEM_VARIABLES character_set_client=gbk.
        let mut b = vec![0, 0, 0, 0x02, 0x40, 0, 0, 0];
        let mut st = vec![1, 4, 3, b'd', b'b', b'2'];
        let var = b"\x14character_set_client\x03gbk";
        st.push(0);
        st.push(var.len() as u8);
        st.extend_from_slice(var);
        b.push(st.len() as u8);
        b.extend_from_slice(&st);
        let ok = ok_packet(&b, Caps(Caps::PROTOCOL_41 | Caps::SESSION_TRACK)).unwrap();
        assert_eq!(ok.schema, Some(&b"db2"[..]));
        assert_eq!(ok.charset, Some(&b"gbk"[..]));
        // ERR 1045 #28000 Access denied.
        let e = err_packet(b"\xff\x15\x04#28000Access denied").unwrap();
        assert_eq!(
            (e.code, e.sqlstate, e.message),
            (1045, Some(&b"28000"[..]), &b"Access denied"[..])
        );
        let e = err_packet(b"\xff\x15\x04No hash").unwrap();
        assert_eq!(e.sqlstate, None);
        assert_eq!(eof_status(&[0xfe, 0, 0, 0x0a, 0]), 0x000a);
        let p = prepare_ok(&[0, 1, 0, 0, 0, 2, 0, 3, 0, 0, 0, 0]).unwrap();
        assert_eq!(
            (p.stmt_id, p.columns, p.params, p.metadata_follows),
            (1, 2, 3, true)
        );
        assert_eq!(
            auth_switch_plugin(b"\xfecaching_sha2_password\0SALT"),
            b"caching_sha2_password"
        );
        assert_eq!(auth_switch_plugin(b"\xfe"), b"mysql_old_password");
    }
}
