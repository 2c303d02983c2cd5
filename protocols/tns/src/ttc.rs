//! TTC, the layer inside DATA packets: message types, function codes, and the parse functions
//! dbtap needs (authentication key/value pairs, OALL8 statement text, error text, banners).
//!
//! TTC integers and pointers are written in a representation the two sides negotiate: compressed
//! (a length byte, then big-endian bytes: JDBC thin, python-oracledb) or fixed 4-byte
//! little-endian integers with 1-byte or 8-byte pointers (OCI clients of 10g/11g on x86). This
//! parser does not decode the negotiation tables; it learns the representation from the
//! authentication message, whose structure is fixed and self-checking (see [`Repr::detect`]).
//! All functions are bounded and return `None` on anything malformed.

use crate::rows;

/// TTC message types (first byte of a message).
pub mod msg {
    /// Protocol negotiation.
    pub const PROTOCOL: u8 = 1;
    /// Data type negotiation.
    pub const DATA_TYPES: u8 = 2;
    /// Function call (client) .
    pub const FUNCTION: u8 = 3;
    /// Error / end-of-call information (server).
    pub const ERROR: u8 = 4;
    /// Row header (server).
    pub const ROW_HEADER: u8 = 6;
    /// Row data (server) / bind values (client).
    pub const ROW_DATA: u8 = 7;
    /// Return parameters (server).
    pub const PARAMETER: u8 = 8;
    /// Status (server).
    pub const STATUS: u8 = 9;
    /// Describe information of a query's columns (server).
    pub const DESCRIBE: u8 = 16;
    /// Bit vector: the columns the next row sends (server).
    pub const BIT_VECTOR: u8 = 21;
    /// Piggy-backed function call (client), followed by the main call.
    pub const PIGGYBACK: u8 = 17;
    /// Fast authentication (client, 23ai servers): protocol, data types and AUTH phase one in
    /// one message (python-oracledb constants.pxi TNS_MSG_TYPE_FAST_AUTH = 34,
    /// messages/fast_auth.pyx; fixtures/tns/live_thin_session frame 69).
    pub const FAST_AUTH: u8 = 34;
}

/// TTC field versions (python-oracledb constants.pxi `TNS_CCAP_FIELD_VERSION_*`) at which
/// messages change layout. The version in force is the lower of the client's (data types
/// message) and the server's (protocol answer).
pub mod field_version {
    /// 11.2: column metadata carries UDS flags, describe information `dcbqcky`
    /// ([`crate::rows`]).
    pub const V11_2: u8 = 6;
    /// 12.2: OALL8 gains SQL signature and SQL id fields; column metadata a column id.
    pub const V12_2: u8 = 8;
    /// 12.2 ext 1: OALL8 gains the chunk ids pointer and count.
    pub const V12_2_EXT1: u8 = 9;
    /// 18.1 ext 1: AUTH_VERSION_NO in the 18c bit layout ([`super::version_number`]).
    pub const V18_1_EXT_1: u8 = 11;
    /// 23.1: column metadata carries the domain schema and name.
    pub const V23_1: u8 = 17;
    /// 23.1 ext 1: every function call and piggy-back carries a ub8 token
    /// ([`super::FIELD_VERSION_TOKEN`]).
    pub const V23_1_EXT_1: u8 = 18;
    /// 23.1 ext 3: column metadata carries annotations.
    pub const V23_1_EXT_3: u8 = 20;
    /// 23.4: column metadata carries vector dimensions, format and flags.
    pub const V23_4: u8 = 24;
}

/// TTC field version from which every function call and piggy-back carries a ub8 token after
/// its sequence number (python-oracledb messages/base.pyx `_write_function_code`,
/// `_write_piggyback_code`).
pub const FIELD_VERSION_TOKEN: u8 = field_version::V23_1_EXT_1;
/// Index of the TTC field version in the compile-time capabilities (python-oracledb
/// constants.pxi TNS_CCAP_FIELD_VERSION).
const CCAP_FIELD_VERSION: usize = 7;

/// TTC function codes (second byte of a function call).
pub mod func {
    /// Parse a statement into a cursor (Oracle 7-9i OCI; text like OALL8 without options).
    pub const PARSE: u8 = 3;
    /// Execute a parsed cursor: Oracle 7-9i OCI after a parse (`wswiki__TNS_Oracle2.pcap`
    /// frames 26-28), and the re-execute of a cached statement by python-oracledb thin
    /// (constants.pxi `TNS_FUNC_REEXECUTE`; messages/execute.pyx `_write_reexecute_message`:
    /// ub4 cursor id, ub4 iterations, two ub4 option words, then one row-data message of bind
    /// values per iteration; `fixtures/tns/live_thin_session` frame 32).
    pub const EXECUTE: u8 = 4;
    /// Fetch rows of an open cursor.
    pub const FETCH: u8 = 5;
    /// Close (older clients).
    pub const CLOSE: u8 = 8;
    /// Log off.
    pub const LOGOFF: u8 = 9;
    /// Commit.
    pub const COMMIT: u8 = 14;
    /// Rollback.
    pub const ROLLBACK: u8 = 15;
    /// Server version (banner).
    pub const VERSION: u8 = 59;
    /// OALL7 (Oracle 7/8 all-in-one call).
    pub const OALL7: u8 = 71;
    /// Re-execute a cached query and fetch its first rows (python-oracledb constants.pxi
    /// `TNS_FUNC_REEXECUTE_AND_FETCH`; same body as [`EXECUTE`]'s re-execute;
    /// `fixtures/tns/live_thin_session` frame 26).
    pub const REEXECUTE_AND_FETCH: u8 = 78;
    /// OALL8: parse / bind / execute / fetch in one call.
    pub const OALL8: u8 = 94;
    /// Close cursors (usually piggy-backed).
    pub const CLOSE_CURSORS: u8 = 105;
    /// Authentication, phase two (O3LOGON / O5LOGON: password verifier).
    pub const AUTH_PHASE_TWO: u8 = 115;
    /// Authentication, phase one (user name and client facts; server answers AUTH_SESSKEY).
    pub const AUTH_PHASE_ONE: u8 = 118;
    /// Close temporary LOBs / cursors (piggy-backed by JDBC).
    pub const CLOSE_TEMP: u8 = 120;
}

/// OALL8 option bits (python-oracledb constants.pxi `TNS_EXEC_OPTION_*`).
pub mod exec_option {
    /// The call executes the statement (set on every execute, clear on a fetch-only or
    /// define-only OALL8 on an open cursor: messages/execute.pyx `_write_execute_message`).
    pub const EXECUTE: u64 = 0x20;
}

/// Logon mode bits of an authentication call.
pub mod auth_mode {
    /// Connect AS SYSDBA.
    pub const SYSDBA: u64 = 0x20;
    /// Connect AS SYSOPER.
    pub const SYSOPER: u64 = 0x40;
}

/// Values read at most from one authentication message.
pub const MAX_AUTH_PAIRS: usize = 64;
/// Bytes searched after OALL8's SQL length field for the statement text.
pub const MAX_SQL_SEARCH: usize = 512;
/// Chunks read at most from one chunked (0xFE) string.
pub const MAX_CHUNKS: usize = 65536;

/// How integers are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntMode {
    /// A length byte, then that many big-endian bytes.
    Compressed,
    /// Fixed width (2 or 4 bytes), little endian.
    FixedLe,
    /// Fixed width (2 or 4 bytes), big endian.
    FixedBe,
}

/// The session's TTC representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Integers.
    pub ints: IntMode,
    /// Pointer width in bytes (1, 4 or 8).
    pub ptr: usize,
}

/// Every representation tried, most common first.
pub const REPRS: [Repr; 7] = [
    Repr {
        ints: IntMode::Compressed,
        ptr: 1,
    },
    Repr {
        ints: IntMode::FixedLe,
        ptr: 1,
    },
    Repr {
        ints: IntMode::FixedLe,
        ptr: 8,
    },
    Repr {
        ints: IntMode::FixedLe,
        ptr: 4,
    },
    Repr {
        ints: IntMode::FixedBe,
        ptr: 1,
    },
    Repr {
        ints: IntMode::FixedBe,
        ptr: 8,
    },
    Repr {
        ints: IntMode::FixedBe,
        ptr: 4,
    },
];

/// A bounded reader over one TTC message stream.
#[derive(Debug, Clone)]
pub struct Cur<'a> {
    d: &'a [u8],
    /// Position of the next byte.
    pub pos: usize,
    repr: Repr,
}

impl<'a> Cur<'a> {
    /// A reader at `pos`.
    pub fn new(d: &'a [u8], pos: usize, repr: Repr) -> Self {
        Cur { d, pos, repr }
    }

    /// One byte.
    pub fn u8(&mut self) -> Option<u8> {
        let b = *self.d.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn fixed(&mut self, n: usize) -> Option<u64> {
        let b = self.d.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        let mut v = 0u64;
        match self.repr.ints {
            IntMode::FixedBe | IntMode::Compressed => {
                for &x in b {
                    v = (v << 8) | u64::from(x);
                }
            }
            IntMode::FixedLe => {
                for &x in b.iter().rev() {
                    v = (v << 8) | u64::from(x);
                }
            }
        }
        Some(v)
    }

    fn compressed(&mut self, max: usize) -> Option<u64> {
        let n = self.u8()?;
        // The high bit marks a negative number; only magnitudes are used here.
        let n = (n & 0x7f) as usize;
        if n > max {
            return None;
        }
        let b = self.d.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(b.iter().fold(0u64, |v, &x| (v << 8) | u64::from(x)))
    }

    /// An unsigned 2-byte integer in the session's representation.
    pub fn ub2(&mut self) -> Option<u64> {
        match self.repr.ints {
            IntMode::Compressed => self.compressed(2),
            _ => self.fixed(2),
        }
    }

    /// An unsigned 8-byte integer in the session's representation.
    pub fn ub8(&mut self) -> Option<u64> {
        match self.repr.ints {
            IntMode::Compressed => self.compressed(8),
            _ => self.fixed(8),
        }
    }

    /// An unsigned 4-byte integer in the session's representation.
    pub fn ub4(&mut self) -> Option<u64> {
        match self.repr.ints {
            IntMode::Compressed => self.compressed(4),
            _ => self.fixed(4),
        }
    }

    /// A pointer: `Some(true)` when not null.
    pub fn ptr(&mut self) -> Option<bool> {
        let b = self.d.get(self.pos..self.pos.checked_add(self.repr.ptr)?)?;
        self.pos += self.repr.ptr;
        Some(b.iter().any(|&x| x != 0))
    }

    /// A length-prefixed string (1-byte length, or 0xFE then chunks until a zero length).
    /// Keeps at most `max` bytes; returns (kept bytes, total length).
    pub fn clr(&mut self, max: usize) -> Option<(Vec<u8>, usize)> {
        let first = self.u8()?;
        match first {
            0 | 0xff => Some((Vec::new(), 0)),
            0xfe => {
                let mut out = Vec::new();
                let mut total = 0usize;
                // Chunk lengths are one byte (OCI, JDBC thin 8.x: 64-byte chunks) or, in the
                // compressed representation of newer clients, a ub4 (length byte 1 to 4 first).
                let ub4_lengths = self.repr.ints == IntMode::Compressed
                    && self.d.get(self.pos).is_some_and(|&b| (1..=4).contains(&b));
                for _ in 0..MAX_CHUNKS {
                    let n = if ub4_lengths {
                        self.ub4()? as usize
                    } else {
                        self.u8()? as usize
                    };
                    if n == 0 {
                        return Some((out, total));
                    }
                    let b = self.d.get(self.pos..self.pos.checked_add(n)?)?;
                    self.pos += n;
                    total = total.saturating_add(n);
                    let room = max.saturating_sub(out.len());
                    out.extend_from_slice(b.get(..room.min(b.len())).unwrap_or_default());
                }
                None
            }
            n => {
                let n = n as usize;
                let b = self.d.get(self.pos..self.pos.checked_add(n)?)?;
                self.pos += n;
                Some((b.get(..max.min(n)).unwrap_or_default().to_vec(), n))
            }
        }
    }

    /// A call's sequence number, then its ub8 token when the negotiated TTC field version
    /// carries one ([`FIELD_VERSION_TOKEN`]).
    pub fn seq(&mut self, token: bool) -> Option<u8> {
        let seq = self.u8()?;
        if token {
            self.ub8()?;
        }
        Some(seq)
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let b = self.d.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(b)
    }

    /// Bytes left.
    pub fn rest(&self) -> &'a [u8] {
        self.d.get(self.pos..).unwrap_or_default()
    }
}

/// Keys of the authentication pairs that dbtap reports. Everything else (AUTH_SESSKEY,
/// AUTH_PASSWORD, AUTH_VFR_DATA, verifiers, …) is dropped unread.
pub const REPORTED_AUTH_KEYS: [&str; 6] = [
    "AUTH_TERMINAL",
    "AUTH_PROGRAM_NM",
    "AUTH_MACHINE",
    "AUTH_PID",
    "AUTH_SID",
    "AUTH_ALTER_SESSION",
];

/// A parsed authentication call (phase one or two).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Auth {
    /// The function (phase one or two).
    pub func: u8,
    /// Database user name (raw bytes).
    pub user: Vec<u8>,
    /// Logon mode bits.
    pub mode: u64,
    /// Reported pairs (key, value bytes), in wire order; only [`REPORTED_AUTH_KEYS`].
    pub pairs: Vec<(String, Vec<u8>)>,
    /// Keys seen (all of them, values not kept), for the record of credentials sent.
    pub keys: Vec<String>,
}

/// Parse an authentication call starting at its `03` byte. Two layouts seen in real captures
/// are tried besides the plain one: the user name written raw, without its length byte (JDBC
/// thin: junkie__oracle_error_no_table.pcap frame 13), and a pair count padded to 8 bytes
/// (64-bit Windows OCI: john-samples__O5LOGON_Oracle-WinWin-1.pcap frame 13). A layout is
/// accepted only when every key reads as an upper-case name and one at least as an `AUTH_`
/// name (phase two also sends `SESSION_CLIENT_*` keys).
pub fn auth(d: &[u8], at: usize, repr: Repr, token: bool, max_value: usize) -> Option<Auth> {
    [(false, false), (true, false), (false, true), (true, true)]
        .into_iter()
        .filter(|&(_, pad)| !pad || repr.ptr == 8)
        .find_map(|(raw_user, pad)| {
            auth_layout(d, at, repr, token, max_value, raw_user, pad).filter(|a| {
                a.keys.iter().any(|k| k.starts_with("AUTH_"))
                    && a.keys.iter().all(|k| {
                        k.bytes()
                            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                    })
            })
        })
}

fn auth_layout(
    d: &[u8],
    at: usize,
    repr: Repr,
    token: bool,
    max_value: usize,
    raw_user: bool,
    pad: bool,
) -> Option<Auth> {
    let mut c = Cur::new(d, at, repr);
    if c.u8()? != msg::FUNCTION {
        return None;
    }
    let func = c.u8()?;
    if func != func::AUTH_PHASE_ONE && func != func::AUTH_PHASE_TWO {
        return None;
    }
    let _seq = c.seq(token)?;
    let has_user = c.ptr()?;
    let user_len = c.ub4()?;
    let mode = c.ub4()?;
    let _ = c.ptr()?;
    let pairs = c.ub4()? as usize;
    if pairs > MAX_AUTH_PAIRS {
        return None;
    }
    if pad {
        // Padding to 8 bytes; not always zeroed (WinWin-1 frame 16 carries stack bytes there).
        c.rest().get(..4)?;
        c.pos += 4;
    }
    let _ = c.ptr()?;
    let _ = c.ptr()?;
    let mut out = Auth {
        func,
        mode,
        ..Default::default()
    };
    if has_user && user_len > 0 {
        let u = if raw_user {
            let n = usize::try_from(user_len).ok()?.min(MAX_USER_LEN);
            let b = c.rest().get(..n)?.to_vec();
            c.pos += n;
            b
        } else {
            let (u, n) = c.clr(max_value.max(MAX_USER_LEN))?;
            if n == 0 {
                return None;
            }
            u
        };
        if u.is_empty() || !u.iter().all(|&b| b >= 0x20 && b != 0x7f) {
            return None;
        }
        out.user = u;
    }
    for _ in 0..pairs {
        let klen = c.ub4()?;
        let key = if klen > 0 { c.clr(64)?.0 } else { Vec::new() };
        let vlen = c.ub4()?;
        let key_ok = !key.is_empty() && key.iter().all(|b| b.is_ascii_graphic());
        if !key_ok {
            return None;
        }
        let key = String::from_utf8_lossy(&key).into_owned();
        let reported = REPORTED_AUTH_KEYS.contains(&key.as_str());
        let val = if vlen > 0 {
            let (v, _) = c.clr(if reported { max_value } else { 0 })?;
            v
        } else {
            Vec::new()
        };
        let _flags = c.ub4()?;
        if reported {
            out.pairs.push((key.clone(), strip_nul(&val).to_vec()));
        }
        out.keys.push(key);
    }
    Some(out)
}

/// Bytes kept of a user name.
pub const MAX_USER_LEN: usize = 256;

/// Learn the representation from an authentication call at `at`: the first representation under
/// which the whole call parses, with AUTH_ keys, is the session's.
pub fn detect_repr(d: &[u8], at: usize, token: bool) -> Option<Repr> {
    REPRS
        .into_iter()
        .find(|&r| auth(d, at, r, token, 0).is_some())
}

/// What an OALL8 call carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Oall8 {
    /// Statement text (a parse, or parse + execute).
    Sql(Statement),
    /// No statement text: execute or fetch on an open cursor.
    Cursor {
        /// Cursor id.
        cursor: u64,
        /// Options bits.
        options: u64,
    },
}

/// Where an OALL8 statement was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// Statement text (raw bytes, trailing NULs removed), at most `max` bytes.
    pub sql: Vec<u8>,
    /// Length on the wire.
    pub total: usize,
    /// Bind count, when the representation lets us read it.
    pub binds: Option<u64>,
    /// The statement was cut at `max`.
    pub truncated: bool,
    /// Position right after the statement text in the call.
    pub end: usize,
}

fn text_like(b: u8) -> bool {
    (b >= 0x20 && b != 0x7f) || matches!(b, b'\t' | b'\n' | b'\r')
}

/// Read OALL8's statement: options, cursor, SQL pointer and SQL length are read exactly; the
/// text is then located as the first string after them whose own length agrees with the
/// announced one (1-byte length, 0xFE chunks, or raw bytes right after a zero field), and whose
/// bytes are text. The announced length is in bytes of the server's character set: OCI clients
/// announce up to 4 bytes per client byte, so a ratio of 1 to 4 is accepted.
pub fn oall8(d: &[u8], at: usize, repr: Repr, token: bool, max: usize) -> Option<Oall8> {
    let mut c = Cur::new(d, at, repr);
    if c.u8()? != msg::FUNCTION {
        return None;
    }
    let f = c.u8()?;
    if f != func::OALL8 && f != func::OALL7 && f != func::PARSE {
        return None;
    }
    let _seq = c.seq(token)?;
    // The old parse call (Oracle 7-9i OCI) has no options field.
    let options = if f == func::PARSE { 0 } else { c.ub4()? };
    let cursor = c.ub4()?;
    let has_sql = c.ptr()?;
    let declared = c.ub4()? as usize;
    if !has_sql || declared == 0 {
        // A cursor id but no statement: re-execute or fetch. The pointer must be a clean null
        // for this reading to be trusted.
        return (cursor > 0 && cursor < 1 << 31).then_some(Oall8::Cursor { cursor, options });
    }
    let after_len = c.pos;
    // al8i4 pointer and length, al8o4 and al8o4l pointers, prefetch buffer size, prefetch rows,
    // maximum long size, binds pointer, bind count: python-oracledb's layout, found the same in
    // JDBC thin 11g (wswiki__11_sqldeveloper11_2016.pcapng frame 52), 64-bit OCI 11g
    // (john-samples__O5LOGON_Oracle-good.pcap frame 35) and 32-bit OCI 10g
    // (junkie__oracle_select.pcap frame 33 against frame 23: only the bind pointer and count
    // differ). Accepted when the pointer and the count agree.
    let binds = {
        let mut b = Cur::new(d, after_len, repr);
        (|| {
            b.ptr()?;
            if b.ub4()? != 13 {
                return None;
            }
            b.ptr()?;
            b.ptr()?;
            b.ub4()?;
            b.ub4()?;
            b.ub4()?;
            let has = b.ptr()?;
            let n = b.ub4()?;
            (has == (n > 0) && n <= 65535).then_some(n)
        })()
    };
    // Two passes: the exact length first (JDBC thin and most OCI calls), then, for OCI's fixed
    // representation only, the announced length as bytes of the client's character set times
    // its maximum expansion into the server's (the wire text is in the negotiated set):
    // junkie__oracle_select.pcap frame 23 announces 3 × 22 bytes, wswiki__TNS_Oracle2.pcap
    // frame 32 announces 3 × 52 GBK bytes for 62 bytes of UTF-8.
    let exact = |n: usize| n == declared;
    let ratio = |n: usize| n > 0 && n <= declared && n.saturating_mul(4) >= declared;
    let end = after_len.saturating_add(MAX_SQL_SEARCH).min(d.len());
    let passes: &[&dyn Fn(usize) -> bool] = if repr.ints == IntMode::Compressed {
        &[&exact]
    } else {
        &[&exact, &ratio]
    };
    for accept in passes {
        for p in after_len..end {
            // A string starts after a field byte, never inside ASCII text.
            if d.get(p.wrapping_sub(1))
                .is_some_and(|&b| text_like(b) && b < 0x80)
            {
                continue;
            }
            let Some(&first) = d.get(p) else { break };
            // 1-byte length; the text must end where the length says.
            if (1..=0xfc).contains(&first) && accept(first as usize) {
                let stop = p + 1 + first as usize;
                if let Some(s) = d.get(p + 1..stop) {
                    let body = strip_nul(s);
                    let ends = !d.get(stop).is_some_and(|&b| text_like(b));
                    if ends && !body.is_empty() && body.iter().all(|&b| text_like(b)) {
                        return Some(Oall8::Sql(cut(body, s.len(), binds, max, stop)));
                    }
                }
            }
            // 0xFE, then chunks.
            if first == 0xfe {
                let mut cc = Cur::new(d, p, repr);
                if let Some((s, total)) = cc.clr(max) {
                    let body = strip_nul(&s);
                    if accept(total) && !body.is_empty() && body.iter().all(|&b| text_like(b)) {
                        return Some(Oall8::Sql(cut(body, total, binds, max, cc.pos)));
                    }
                }
            }
            // Raw bytes after a field byte (JDBC thin), exactly as long as announced.
            if repr.ints == IntMode::Compressed && p > after_len {
                let stop = p + declared;
                if let Some(s) = d.get(p..stop) {
                    let ends = !d.get(stop).is_some_and(|&b| text_like(b));
                    if ends && s.iter().all(|&b| text_like(b)) {
                        return Some(Oall8::Sql(cut(s, declared, binds, max, stop)));
                    }
                }
            }
        }
    }
    None
}

fn strip_nul(s: &[u8]) -> &[u8] {
    let mut e = s.len();
    while e > 0 && s.get(e - 1) == Some(&0) {
        e -= 1;
    }
    s.get(..e).unwrap_or_default()
}

fn cut(body: &[u8], total: usize, binds: Option<u64>, max: usize, end: usize) -> Statement {
    // Chunked text is read up to `max` bytes only: `total` says how long it was.
    let truncated = body.len() > max || total > max;
    Statement {
        sql: body.get(..max.min(body.len())).unwrap_or_default().to_vec(),
        total,
        binds,
        truncated,
        end,
    }
}

/// One bind as sent with OALL8: its metadata and raw value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// Oracle external type number (1 VARCHAR2, 2 NUMBER, 12 DATE, 23 RAW, 96 CHAR, …).
    pub ty: u8,
    /// Character set id of the value (text types).
    pub charset: u16,
    /// Character set form (2: national character set).
    pub csfrm: u8,
    /// The value bytes (at most `max` kept), `None` for NULL.
    pub value: Option<Vec<u8>>,
    /// The value was cut.
    pub truncated: bool,
}

/// A re-execute call (functions [`func::EXECUTE`] and [`func::REEXECUTE_AND_FETCH`] of
/// python-oracledb thin): the cursor it names and where its row-data messages start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reexecute {
    /// Cursor id, as the server returned it in the end-of-call block of the call that parsed
    /// the statement.
    pub cursor: u64,
    /// Position of the first row-data message (bind values), or the end of the call.
    pub values_at: usize,
}

/// Read a re-execute call at `at` (`03`, function, sequence[, token]): ub4 cursor id, ub4
/// iterations, ub4 options, ub4 options (python-oracledb messages/execute.pyx
/// `_write_reexecute_message`). Real bytes, python-oracledb 26.1
/// (`fixtures/tns/live_thin_session` frame 26): `03 4e 08 | 01 04 | 01 02 | 01 20 | 00 | 07 03
/// c2 0b 03`: cursor 4, 2 rows to prefetch, EXECUTE, then one row-data message with NUMBER
/// 1002. What follows the header must be nothing or a row-data message.
pub fn reexecute(d: &[u8], at: usize, repr: Repr, token: bool) -> Option<Reexecute> {
    let mut c = Cur::new(d, at, repr);
    if c.u8()? != msg::FUNCTION {
        return None;
    }
    let f = c.u8()?;
    if f != func::EXECUTE && f != func::REEXECUTE_AND_FETCH {
        return None;
    }
    c.seq(token)?;
    let cursor = c.ub4()?;
    let _iterations = c.ub4()?;
    let _options = c.ub4()?;
    let _options2 = c.ub4()?;
    let values_at = c.pos;
    let next_ok = match d.get(values_at) {
        None => values_at == d.len(),
        Some(&b) => b == msg::ROW_DATA,
    };
    (cursor > 0 && cursor < 1 << 31 && next_ok).then_some(Reexecute { cursor, values_at })
}

/// The cursor a fetch call (function 0x05) names: after the function header, the cursor id
/// and the number of rows asked for (python-oracledb `messages/fetch.pyx`: cursor id ub4,
/// array size ub4). `junkie__oracle_select.pcap` (OCI 10.2, fixed integers): `03 05 07
/// 01000000 02000000`, cursor 1, 2 rows; `wswiki__11_sqldeveloper11_2016.pcapng` (JDBC thin,
/// compressed integers): `03 05 31 01 01 01 0a`, cursor 1, 10 rows. The call must end there.
pub fn fetch_cursor(d: &[u8], at: usize, repr: Repr, token: bool) -> Option<u64> {
    let mut c = Cur::new(d, at, repr);
    if c.u8()? != msg::FUNCTION || c.u8()? != func::FETCH {
        return None;
    }
    c.seq(token)?;
    let cursor = c.ub4()?;
    let _rows = c.ub4()?;
    (cursor > 0 && cursor < 1 << 31 && c.pos == d.len()).then_some(cursor)
}

/// The bind values of a re-execute call, read with the metadata of the call that described
/// the binds (a re-execute sends values only).
pub fn reexecute_values(
    d: &[u8],
    values_at: usize,
    repr: Repr,
    metas: &[BindMeta],
    max: usize,
) -> Option<BindRows> {
    if metas.is_empty() {
        return None;
    }
    let mut c = Cur::new(d, values_at, repr);
    bind_rows(&mut c, metas, max)
}

/// Fields of OALL8 after the statement length, up to the al8i4 array, in python-oracledb's
/// layout (messages/execute.pyx `_write_execute_message`): al8i4 pointer, al8i4 length (13),
/// al8o4 and al8o4l pointers, prefetch buffer size, prefetch rows, maximum long size, binds
/// pointer, bind count, five pointers (al8app, al8txn, al8txl, al8kv, al8kvl), defines pointer,
/// define count, registration id, three pointers (al8objlist, al8objlen, al8blv), al8blvl,
/// al8dnam pointer, al8dnaml, al8regid_msb, DML row counts pointer, count, pointer. `true` is a
/// pointer, `false` a ub4.
const OALL8_TAIL: [bool; 27] = [
    true, false, true, true, false, false, false, true, false, true, true, true, true, true, true,
    false, false, true, true, true, false, true, false, false, true, false, true,
];
/// Fields after [`OALL8_TAIL`] by field version: from 12.2 ext 1 (chunk ids pointer and count
/// too), from 12.2 (SQL signature pointer and length, SQL id pointer and size, SQL id length
/// pointer), before 12.2.
const OALL8_TAIL_EXT: [(u8, &[bool]); 3] = [
    (
        field_version::V12_2_EXT1,
        &[true, false, true, false, true, true, false],
    ),
    (field_version::V12_2, &[true, false, true, false, true]),
    (0, &[]),
];

/// Bind values of an OALL8 call without statement text (a full execute of a cursor parsed
/// earlier, sent by python-oracledb when the binds changed type:
/// `fixtures/tns/live_thin_session` frame 30), as many as the header's bind count (accepted when
/// the binds pointer agrees). The header is walked field by
/// field ([`OALL8_TAIL`]) in the layout of the negotiated TTC field version, and it counts only
/// when the al8i4 array, the metadata and the row-data messages that follow end exactly at the
/// end of the call ([`bind_values`]). With the field version unknown, every layout is tried and
/// the values are read only when exactly one fits (frame 30 fits two: no guess).
pub fn cursor_bind_values(
    d: &[u8],
    at: usize,
    repr: Repr,
    token: bool,
    field_version: Option<u8>,
    max: usize,
) -> Option<BindRows> {
    let mut c = Cur::new(d, at, repr);
    if c.u8()? != msg::FUNCTION || c.u8()? != func::OALL8 {
        return None;
    }
    c.seq(token)?;
    let _options = c.ub4()?;
    let _cursor = c.ub4()?;
    if c.ptr()? || c.ub4()? != 0 {
        return None; // statement text follows: not this reading
    }
    // Fields read, pointers as 0/1.
    let walk = |c: &mut Cur<'_>, fields: &[bool]| -> Option<Vec<u64>> {
        let mut v = Vec::with_capacity(fields.len());
        for &is_ptr in fields {
            v.push(if is_ptr {
                u64::from(c.ptr()?)
            } else {
                c.ub4()?
            });
        }
        Some(v)
    };
    let head = walk(&mut c, &OALL8_TAIL)?;
    // al8i4 length, then binds pointer and count (fields 1, 7 and 8).
    if head.get(1) != Some(&13) {
        return None;
    }
    let count = *head.get(8)?;
    if head.get(7) != Some(&u64::from(count > 0)) || count == 0 || count > 65535 {
        return None;
    }
    let mut fits = OALL8_TAIL_EXT
        .iter()
        .filter(|(from, _)| match field_version {
            // The layout of the version in force: the highest threshold it reaches.
            Some(v) => v >= *from && !OALL8_TAIL_EXT.iter().any(|(f2, _)| *f2 > *from && v >= *f2),
            None => true,
        })
        .filter_map(|(_, ext)| {
            let mut e = c.clone();
            walk(&mut e, ext)?;
            bind_values(d, e.pos, repr, count, max)
        });
    let first = fits.next()?;
    fits.next().is_none().then_some(first)
}

/// Integers skipped after the statement text (the al8i4 array: 13 entries, 14 in some JDBC
/// thin 11g calls).
const AL8I4_LENS: [usize; 2] = [13, 14];

/// Fields of one bind metadata entry.
#[derive(Clone, Copy)]
enum F {
    U8,
    Ub2,
    Ub4,
    Ub8,
    /// The entry's character set id (ub2).
    Charset,
    /// The character set form (u8).
    Form,
    /// The external type (u8).
    Type,
}

/// Fields every metadata layout starts with: type, flags, precision, scale, buffer size,
/// array size, continuation flags.
const META_HEAD: [F; 7] = [F::Type, F::U8, F::U8, F::U8, F::Ub4, F::Ub4, F::Ub8];

/// Metadata layouts seen in real captures: whether a byte precedes the entries, and the fields
/// of each entry after [`META_HEAD`].
const META_LAYOUTS: [(&str, bool, &[F]); 4] = [
    // JDBC thin (wswiki__DumpFile01.pcap frame 554, wswiki__11_sqldeveloper11_2016.pcapng
    // frame 52): then a ub4, version ub2, charset, form, max chars ub4.
    (
        "jdbc",
        false,
        &[F::Ub4, F::Ub2, F::Charset, F::Form, F::Ub4],
    ),
    // OCI 11.1 64-bit (john-samples__O5LOGON_Oracle-good.pcap frame 35) and 10.2 32-bit
    // (junkie__oracle_select.pcap frame 33): version ub2, charset, form, max chars ub4.
    ("oci", false, &[F::Ub2, F::Charset, F::Form, F::Ub4]),
    // OCI 10.2 and 11.2 XE 64-bit (wswiki__7_oracle10_2016.pcapng, john-samples__O5LOGON_
    // oracle_11g_password1234567890.pcapng): one byte after al8i4; then a ub4, two ub2,
    // charset, form, two ub4 and a byte.
    (
        "oci64-10g",
        true,
        &[
            F::Ub4,
            F::Ub2,
            F::Ub2,
            F::Charset,
            F::Form,
            F::Ub4,
            F::Ub4,
            F::U8,
        ],
    ),
    // python-oracledb 26.1 thin with TTC field version 13 (fixtures/tns/live_thin_session,
    // frames 16, 18 and 20): the JDBC thin entry plus one ub4, the column id python-oracledb
    // writes from field version 12.2 on (messages/base.pyx `_write_column_metadata`:
    // "oaccolid"). Frame 16, bind 1: `02 01 00 00 | 01 16 | 00 | 00 | 00 | 00 | 00 | 00 | 00 |
    // 00` (NUMBER, buffer 22); bind 2: `01 01 00 00 | 01 18 | 00 | 00 | 00 | 00 | 02 03 69 |
    // 01 | 00 | 00` (VARCHAR2, AL32UTF8, implicit form). Tried last: no older capture has it.
    (
        "thin-12.2",
        false,
        &[F::Ub4, F::Ub2, F::Charset, F::Form, F::Ub4, F::Ub4],
    ),
];

/// What a bind's value needs to be read: its metadata entry, as sent with the call that
/// described the binds (kept per cursor for re-executions, which send values only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindMeta {
    /// Oracle external type number.
    pub ty: u8,
    /// Character set id of the value (text types).
    pub charset: u16,
    /// Character set form (2: national character set).
    pub csfrm: u8,
}

/// Rows of bind values read from one call (an array execute sends one row-data message per
/// row: python-oracledb `executemany`, fixtures/tns/live_thin_session frame 20). More rows than
/// this and the values are not decoded.
pub const MAX_BIND_ROWS: usize = 1024;

/// The bind values of one call: `rows` row-data messages of `values.len() / rows` values each,
/// in call order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindRows {
    pub values: Vec<Bind>,
    pub rows: usize,
    /// The metadata the values were read with.
    pub metas: Vec<BindMeta>,
}

/// Row-data messages (`07`) from the reader's position to the end of the call, each with one
/// value per entry of `metas`: at least one, at most [`MAX_BIND_ROWS`], ending exactly at the
/// end of the call.
fn bind_rows(c: &mut Cur<'_>, metas: &[BindMeta], max: usize) -> Option<BindRows> {
    let mut out = Vec::with_capacity(metas.len().min(64));
    let mut rows = 0usize;
    while rows == 0 || !c.rest().is_empty() {
        if rows == MAX_BIND_ROWS || c.u8()? != msg::ROW_DATA {
            return None;
        }
        rows += 1;
        for m in metas {
            let first = *c.rest().first()?;
            let (value, truncated) = if first == 0 || first == 0xff {
                c.pos += 1;
                (None, false)
            } else {
                let (v, n) = c.clr(max)?;
                (Some(v), n > max)
            };
            out.push(Bind {
                ty: m.ty,
                charset: m.charset,
                csfrm: m.csfrm,
                value,
                truncated,
            });
        }
    }
    Some(BindRows {
        values: out,
        rows,
        metas: metas.to_vec(),
    })
}

/// Read the bind metadata and values that follow the statement text of an OALL8 call: `count`
/// metadata entries (one of [`META_LAYOUTS`]), then row-data messages (`07`), each with one
/// value per bind (one message, or one per row of an array execute, at most
/// [`MAX_BIND_ROWS`]). A layout is accepted only when a `07` follows the last entry and the
/// values end exactly at the end of the call.
pub fn bind_values(d: &[u8], end: usize, repr: Repr, count: u64, max: usize) -> Option<BindRows> {
    let count = usize::try_from(count)
        .ok()
        .filter(|&n| n > 0 && n <= 1024)?;
    for skip in AL8I4_LENS {
        for (_, extra_byte, fields) in META_LAYOUTS {
            let mut c = Cur::new(d, end, repr);
            let parsed = (|| {
                for _ in 0..skip {
                    c.ub4()?;
                }
                if extra_byte {
                    c.u8()?;
                }
                let mut metas = Vec::with_capacity(count.min(64));
                for _ in 0..count {
                    let (mut ty, mut charset, mut csfrm) = (0u8, 0u16, 0u8);
                    for f in META_HEAD.iter().chain(fields.iter()) {
                        match f {
                            F::U8 => {
                                c.u8()?;
                            }
                            F::Ub2 => {
                                c.ub2()?;
                            }
                            F::Ub4 => {
                                c.ub4()?;
                            }
                            F::Ub8 => {
                                c.ub8()?;
                            }
                            F::Charset => charset = u16::try_from(c.ub2()?).ok()?,
                            F::Form => csfrm = c.u8()?,
                            F::Type => ty = c.u8()?,
                        }
                    }
                    metas.push(BindMeta { ty, charset, csfrm });
                }
                bind_rows(&mut c, &metas, max)
            })();
            if parsed.is_some() {
                return parsed;
            }
        }
    }
    None
}

/// Oracle NUMBER (1 to 21 bytes: exponent byte, base-100 mantissa) as decimal text.
pub fn number_text(b: &[u8]) -> Option<String> {
    let (&e, m) = b.split_first()?;
    if e == 0x80 && m.is_empty() {
        return Some("0".into());
    }
    if m.len() > 20 {
        return None;
    }
    let negative = e & 0x80 == 0;
    let (exp, digits): (i32, Vec<u8>) = if negative {
        let m = match m.last() {
            Some(102) => m.get(..m.len() - 1)?,
            _ => m,
        };
        let exp = i32::from(!e & 0x7f) - 65;
        (exp, m.iter().map(|&x| 101u8.wrapping_sub(x)).collect())
    } else {
        (
            i32::from(e & 0x7f) - 65,
            m.iter().map(|&x| x.wrapping_sub(1)).collect(),
        )
    };
    if digits.iter().any(|&d| d > 99) || digits.is_empty() {
        return None;
    }
    // Digits are base-100 pairs; the first pair is multiplied by 100^exp.
    let mut s = String::new();
    for (i, d) in digits.iter().enumerate() {
        if i == 0 {
            s.push_str(&d.to_string());
        } else {
            s.push_str(&format!("{d:02}"));
        }
    }
    // Position of the decimal point, counted in digits from the left of `s`.
    let first_len = if digits[0] >= 10 { 2 } else { 1 };
    let point = first_len + 2 * exp;
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if point <= 0 {
        out.push_str("0.");
        for _ in 0..(-point) {
            out.push('0');
        }
        out.push_str(s.trim_end_matches('0'));
    } else if point as usize >= s.len() {
        out.push_str(&s);
        for _ in 0..(point as usize - s.len()) {
            out.push('0');
        }
    } else {
        let (a, f) = s.split_at(point as usize);
        out.push_str(a);
        let f = f.trim_end_matches('0');
        if !f.is_empty() {
            out.push('.');
            out.push_str(f);
        }
    }
    Some(out)
}

/// Oracle DATE (7 bytes) or TIMESTAMP (7 or 11 bytes) as `YYYY-MM-DD HH:MM:SS[.fffffffff]`.
pub fn date_text(b: &[u8]) -> Option<String> {
    let [c, y, mo, d, h, mi, s, rest @ ..] = b else {
        return None;
    };
    let year = (i32::from(*c) - 100) * 100 + (i32::from(*y) - 100);
    let mut out = format!(
        "{year:04}-{mo:02}-{d:02} {:02}:{:02}:{:02}",
        h.wrapping_sub(1),
        mi.wrapping_sub(1),
        s.wrapping_sub(1)
    );
    if let [a, b2, c2, d2] = rest {
        let ns = u32::from_be_bytes([*a, *b2, *c2, *d2]);
        if ns > 0 {
            out.push_str(&format!(".{ns:09}"));
        }
    }
    Some(out)
}

/// An error found in a server response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OraError {
    /// The ORA number.
    pub code: u32,
    /// The message (raw bytes, trailing newline removed).
    pub message: Vec<u8>,
    /// Rows processed, from the error block's current-row field, when the block was found.
    pub rows: Option<u64>,
    /// Cursor id of the error block, when the block was found and its layout is known
    /// ([`block_layout_known`]).
    pub cursor: Option<u64>,
}

/// Bytes allowed after an error message at the end of an answer. In every answer of the shared
/// captures (178 with an error) the message is the last thing; newer servers may add a small
/// end-of-response message.
pub const MAX_ERROR_TRAILER: usize = 32;

/// Find the call's error in a server response: the length-prefixed string that starts with
/// `ORA-nnnnn` and ends last, within [`MAX_ERROR_TRAILER`] bytes of the end (the message ends
/// the error block, which ends the answer; row values that happen to read `ORA-…` come before
/// it). Its number is checked against
/// the error block's numeric error field when the block can be found just before it; rows
/// processed are read from that block.
pub fn find_error(d: &[u8], repr: Option<Repr>, max_message: usize) -> Option<OraError> {
    let mut best: Option<(usize, usize)> = None; // (start of length byte, end)
    let mut i = 1usize;
    while i + 9 <= d.len() {
        if d.get(i..i + 4) == Some(b"ORA-")
            && d.get(i + 4..i + 9)
                .is_some_and(|x| x.iter().all(u8::is_ascii_digit))
        {
            let l = d.get(i - 1).copied().unwrap_or(0) as usize;
            let end = i + l;
            if (9..=0xfc).contains(&l) && end <= d.len() {
                let better = match best {
                    None => true,
                    Some((s, e)) => end > e || (end == e && i - 1 < s),
                };
                if better {
                    best = Some((i - 1, end));
                }
            }
        }
        i += 1;
    }
    let (s, e) = best?;
    if d.len() - e > MAX_ERROR_TRAILER {
        return None;
    }
    let text = d.get(s + 1..e)?;
    let code: u32 = std::str::from_utf8(text.get(4..9)?).ok()?.parse().ok()?;
    let mut msg = text;
    while let [rest @ .., b'\n' | b'\r' | 0] = msg {
        msg = rest;
    }
    let block = repr.and_then(|r| block_rows(d.get(..s)?, r, code));
    let rows = block.map(|(rows, _)| rows);
    let cursor = block.and_then(|(_, cursor)| cursor);
    Some(OraError {
        code,
        message: msg
            .get(..max_message.min(msg.len()))
            .unwrap_or_default()
            .to_vec(),
        rows,
        cursor,
    })
}

/// Bytes searched backwards from an error message for the start of its error block.
const MAX_BLOCK_SEARCH: usize = 512;

/// How the head of an error block (`04`) is laid out: the fields before the error number differ
/// between clients and servers. A layout is trusted only where its error-number field reads
/// the code of the message that follows the block; they are tried in this order and the first
/// that reads the code wins (a sequenced block whose current row happens to equal the code
/// reads the code both ways: it stays sequenced).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockHead {
    /// Call status ub4, end-to-end sequence ub2, current row ub4, error number ub2: OCI 10g/11g
    /// 32-bit (`junkie__oracle_select.pcap` frame 26), JDBC thin 11g and python-oracledb
    /// (`messages/base.pyx` `_process_error_info`).
    Sequenced,
    /// Call status ub4, current row ub4, error number ub2: no sequence field, as JDBC thin 8.2
    /// against 11.1 writes it. `junkie__oracle_query_no_data.pcap` frame 20 `04 01 05 00 02 05 7b`
    /// (status 5, row 0, ORA-01403) and `junkie__oracle_one_row_response.pcap` frame 20
    /// `04 01 05 01 01 02 05 7b` (row 1: the one row of frame 18), each followed by two zero
    /// array-error fields, cursor `01 02` and command type 3 (SELECT).
    Unsequenced,
    /// Call status ub4, sequence ub2, one byte (1 in every block seen), current row ub4, error
    /// number ub2: 64-bit OCI with fixed integers. `wswiki__7_oracle10_2016.pcapng` (10.2),
    /// `select name, password from sys.user$` fetched 15 rows at a time: the blocks of frames 26,
    /// 28, 30 read rows 1, 16, 31 (`04 01000000 0a00 01 01000000 0000`, …) and the last, frame
    /// 36, `04 01000000 0f00 01 3f000000 7b05`: 63 rows, then ORA-01403.
    Wide,
}

impl BlockHead {
    /// Layouts that can occur with a representation: the wide one only with 8-byte pointers.
    fn candidates(repr: Repr) -> &'static [BlockHead] {
        if repr.ptr == 8 {
            &[
                BlockHead::Sequenced,
                BlockHead::Unsequenced,
                BlockHead::Wide,
            ]
        } else {
            &[BlockHead::Sequenced, BlockHead::Unsequenced]
        }
    }

    /// Read the head from just after the `04`: (current row, error number), the cursor left
    /// at the first field after the error number.
    fn read(self, c: &mut Cur<'_>) -> Option<(u64, u64)> {
        let _status = c.ub4()?;
        if self != BlockHead::Unsequenced {
            let _seq = c.ub2()?;
        }
        if self == BlockHead::Wide {
            let _ = c.u8()?;
        }
        let row = c.ub4()?;
        let err = c.ub2()?;
        Some((row, err))
    }

    /// Whether the fields after the error number (two array-error ub2, then the cursor ub2) are
    /// known for this layout and representation ([`block_layout_known`]).
    fn cursor_known(self, repr: Repr) -> bool {
        match self {
            BlockHead::Sequenced => block_layout_known(repr),
            BlockHead::Unsequenced => repr.ints == IntMode::Compressed,
            BlockHead::Wide => false,
        }
    }
}

/// The error block that ends right before an error message and carries `code`: its
/// current-row field, and its cursor id (after two array-error ub2) where the block's layout
/// is known. The block nearest the message wins.
fn block_rows(d: &[u8], repr: Repr, code: u32) -> Option<(u64, Option<u64>)> {
    let lo = d.len().saturating_sub(MAX_BLOCK_SEARCH);
    (lo..d.len()).rev().find_map(|q| {
        if d.get(q) != Some(&msg::ERROR) {
            return None;
        }
        BlockHead::candidates(repr).iter().find_map(|&head| {
            let mut c = Cur::new(d, q + 1, repr);
            let (row, err) = head.read(&mut c)?;
            if err != u64::from(code) {
                return None;
            }
            let cursor = head
                .cursor_known(repr)
                .then(|| {
                    c.ub2()?;
                    c.ub2()?;
                    c.ub2()
                })
                .flatten();
            Some((row, cursor))
        })
    })
}

/// Oracle command types (the `sql type` byte of the end-of-call block, the numbering of
/// `V$SQLCOMMAND`) whose row count is the number of rows the statement processed.
pub mod command {
    /// INSERT (`junkie__oracle_insert.pcap` frame 43).
    pub const INSERT: u8 = 2;
    /// SELECT (`junkie__oracle_one_row_response.pcap` frame 20): its count is the rows fetched
    /// so far.
    pub const SELECT: u8 = 3;
    /// UPDATE.
    pub const UPDATE: u8 = 6;
    /// DELETE (`junkie__oracle_delete.pcap` frame 43).
    pub const DELETE: u8 = 7;
    /// MERGE.
    pub const MERGE: u8 = 189;

    /// A DML statement: its row count is rows inserted, updated, deleted or merged. DDL, DCL,
    /// ALTER SESSION report 0 and PL/SQL blocks 1 whatever they did (e.g.
    /// `junkie__oracle_delete.pcap` frame 27: `BEGIN DBMS_OUTPUT.DISABLE; END;`, type 47, row 1),
    /// so those counts are not rows.
    pub fn is_dml(t: u8) -> bool {
        matches!(t, INSERT | UPDATE | DELETE | MERGE)
    }
}

/// The start of the end-of-call block (message `04`) that closes an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallStatus {
    /// Current row number: rows processed by the call.
    pub rows: u64,
    /// Error number (0: success).
    pub error: u64,
    /// Command type of the statement the call ran ([`command`]).
    pub command: u8,
    /// Cursor id: for a call that parsed a statement, the id the client names in later
    /// re-executions (python-oracledb messages/base.pyx `_process_error_info` reads it as
    /// `cursor_id` and keeps it as the statement's cursor).
    pub cursor: u64,
}

/// Messages walked in one answer before giving up: every message takes at least one byte, and
/// an answer is walked only when it was kept whole (at most 16 KiB, `MAX_RESPONSE_TAIL`).
pub const MAX_ANSWER_MESSAGES: usize = 16 * 1024;
/// Integers (`al8o4l`) in a return-parameters message (6 in every shared capture).
pub const MAX_RETURN_INTS: u64 = 64;
/// Key/value pairs in a return-parameters message (0 or 1 in the shared captures).
pub const MAX_RETURN_PAIRS: u64 = 64;

/// Length-prefixed fields that close a return-parameters message after its key/value pairs,
/// by server and representation: none for 10.2 with fixed integers
/// (`junkie__oracle_delete.pcap` frame 43), one (registration, as in python-oracledb) for 11g
/// with compressed integers (`wswiki__11_sqldeveloper11_2016.pcapng` frames 45, 127, 141:
/// ALTER SESSION, CREATE USER, GRANT). Nothing in the message says which: a layout counts only
/// when it is the one that lands on a known message.
const TRAILING_FIELDS: [usize; 2] = [0, 1];

/// Representations whose end-of-call block layout was checked on captures: 32-bit OCI with
/// fixed integers and 1-byte pointers (10.2: `junkie__oracle_delete.pcap`,
/// `junkie__oracle_insert.pcap`) and compressed integers (JDBC thin 11g:
/// `wswiki__11_sqldeveloper11_2016.pcapng`, the command type matching every statement). 64-bit
/// OCI against 11.2 (`wswiki__8_oracle11_2016.pcapng` frames 23, 25, 49) writes the block
/// differently (an extra byte before the current row, 4 more bytes before the command type)
/// and is not read.
fn block_layout_known(repr: Repr) -> bool {
    match repr.ints {
        IntMode::Compressed => true,
        IntMode::FixedLe => repr.ptr == 1,
        IntMode::FixedBe => false,
    }
}

/// The end-of-call block of a whole answer, found by walking its messages from the first byte:
/// return parameters (`08`), status (`09`), then the block (`04`: call status ub4, sequence
/// ub2, current row ub4, error number ub2, two array-error ub2, cursor ub2, error position ub2,
/// command type ub1). With compressed integers a query's describe information, row headers,
/// bit vectors and rows are stepped over too ([`crate::rows`]); the columns of a describe are
/// left in `columns` for the answers to later fetches of the same query, which have rows but
/// no describe. Any other message (I/O vector, piggy-backs), a row without known columns, or
/// any doubt about a message's length gives `None`: the block is never searched for.
pub fn call_status(
    d: &[u8],
    repr: Repr,
    field_version: Option<u8>,
    columns: &mut Option<Vec<rows::Form>>,
) -> Option<CallStatus> {
    if !block_layout_known(repr) {
        return None;
    }
    let rows_known = repr.ints == IntMode::Compressed;
    let mut bits: Option<Vec<u8>> = None;
    let mut pos = 0usize;
    for _ in 0..MAX_ANSWER_MESSAGES {
        let mut c = Cur::new(d, pos, repr);
        match c.u8()? {
            msg::ERROR => {
                let _call_status = c.ub4()?;
                let _seq = c.ub2()?;
                let rows = c.ub4()?;
                let error = c.ub2()?;
                let _array_error = c.ub2()?;
                let _array_error2 = c.ub2()?;
                let cursor = c.ub2()?;
                let _error_pos = c.ub2()?;
                let command = c.u8()?;
                return Some(CallStatus {
                    rows,
                    error,
                    command,
                    cursor,
                });
            }
            msg::PARAMETER => {
                let base = return_params(&mut c)?;
                let mut next = None;
                for n in TRAILING_FIELDS {
                    let Some(end) = skip_lengths(d, base, repr, n) else {
                        continue;
                    };
                    let lands = matches!(
                        d.get(end),
                        Some(&(msg::ERROR | msg::PARAMETER | msg::STATUS))
                    );
                    if lands {
                        if next.is_some() {
                            return None; // two layouts fit: do not choose
                        }
                        next = Some(end);
                    }
                }
                pos = next?;
                continue;
            }
            msg::STATUS => {
                let _call_status = c.ub4()?;
                let _seq = c.ub2()?;
            }
            msg::DESCRIBE if rows_known => {
                *columns = Some(rows::describe(&mut c, field_version.unwrap_or(0))?);
            }
            msg::ROW_HEADER if rows_known => rows::row_header(&mut c, &mut bits)?,
            msg::BIT_VECTOR if rows_known => {
                rows::bit_vector(&mut c, columns.as_ref()?.len(), &mut bits)?;
            }
            msg::ROW_DATA if rows_known => rows::row_data(&mut c, columns.as_deref()?, &mut bits)?,
            _ => return None,
        }
        pos = c.pos;
    }
    None
}

/// A return-parameters message up to its key/value pairs included: ub2 count then that many
/// ub4, ub2 length then that many bytes, ub2 pair count then pairs (ub2 length + string for the
/// text, the same for the binary value, ub2 keyword number). Returns the position after them.
fn return_params(c: &mut Cur<'_>) -> Option<usize> {
    let n = c.ub2()?;
    if n > MAX_RETURN_INTS {
        return None;
    }
    for _ in 0..n {
        c.ub4()?;
    }
    let txl = usize::try_from(c.ub2()?).ok()?;
    c.pos = c.pos.checked_add(txl)?;
    let pairs = c.ub2()?;
    if pairs > MAX_RETURN_PAIRS {
        return None;
    }
    for _ in 0..pairs {
        // Text then binary value: a length (4 bytes with fixed integers:
        // `wswiki__8_oracle11_2016.pcapng` frame 23 has text 0, then `0b 00 00 00` and an
        // 11-byte string, then keyword 0xa3), then, when not 0, the value as a length-prefixed
        // string.
        for _ in 0..2 {
            if c.ub4()? > 0 {
                c.clr(0)?;
            }
        }
        c.ub2()?;
    }
    (c.pos <= c.d.len()).then_some(c.pos)
}

/// Skip `n` fields of a ub2 length then that many bytes, from `at`.
fn skip_lengths(d: &[u8], at: usize, repr: Repr, n: usize) -> Option<usize> {
    let mut c = Cur::new(d, at, repr);
    for _ in 0..n {
        let l = usize::try_from(c.ub2()?).ok()?;
        c.pos = c.pos.checked_add(l)?;
    }
    (c.pos <= d.len()).then_some(c.pos)
}

/// Verifier types announced in AUTH_VFR_DATA's flags (the password hash the server keeps).
pub mod verifier {
    /// 10g: DES-based hash (the O3LOGON exchange).
    pub const V10G: u64 = 0x0939;
    /// 11g: SHA-1 (O5LOGON).
    pub const V11G_1: u64 = 0xb152;
    /// 11g: SHA-1 (O5LOGON).
    pub const V11G_2: u64 = 0x1b25;
    /// 12c: PBKDF2 + SHA-512 (O5LOGON with the 12c verifier).
    pub const V12C: u64 = 0x4815;
}

/// The authentication method named by the server's phase-one answer: the flags of its
/// AUTH_VFR_DATA pair give the verifier type. The value itself (a salt) is never read.
pub fn auth_method(d: &[u8], repr: Repr) -> Option<&'static str> {
    let mut c = auth_pair(d, b"AUTH_VFR_DATA", repr)?;
    if c.ub4()? > 0 {
        c.clr(0)?;
    }
    Some(match c.ub4()? {
        verifier::V10G => "O3LOGON",
        verifier::V11G_1 | verifier::V11G_2 => "O5LOGON",
        verifier::V12C => "O5LOGON (12c verifier)",
        _ => return None,
    })
}

/// A cursor just past the key `key` of a key/value pair in an authentication answer (pair:
/// key length ub4, key as a length-prefixed string, value length ub4, value, flags ub4;
/// python-oracledb `messages/auth.pyx` `_process_return_parameters`). The key is found by its
/// bytes preceded by its one-byte length.
fn auth_pair<'a>(d: &'a [u8], key: &[u8], repr: Repr) -> Option<Cur<'a>> {
    let i = d.windows(key.len()).position(|w| w == key)?;
    if d.get(i.checked_sub(1)?) != Some(&(key.len() as u8)) {
        return None;
    }
    let mut c = Cur::new(d, i - 1, repr);
    c.clr(0)?;
    Some(c)
}

/// A number the server gives in its answer to the second authentication call, such as
/// AUTH_SESSION_ID (the session's SID) and AUTH_SERIAL_NUM (its SERIAL#): the value is decimal
/// text (`junkie__oracle_select.pcap` frame 20; `wswiki__11_sqldeveloper11_2016.pcapng`).
pub fn auth_number(d: &[u8], key: &[u8], repr: Repr) -> Option<u64> {
    let mut c = auth_pair(d, key, repr)?;
    if c.ub4()? == 0 {
        return None;
    }
    let (v, _) = c.clr(32)?;
    std::str::from_utf8(&v).ok()?.trim().parse().ok()
}

/// The database version in AUTH_VERSION_NO (decimal text in the phase-two answer), as the five
/// numbers Oracle prints (`11.2.0.3.0`). Two layouts of the 32 bits (python-oracledb
/// `messages/auth.pyx` `_get_version_tuple`): up to 12c major 8 bits, minor 4, update 4
/// (bits 12–15), port release 4 (bits 8–11), port update 8; from TTC field version 18.1 ext 1
/// on, major 8, minor 8, update 4 (bits 12–15), port release 8 (bits 4–11), port update 4.
/// Checked on the shared captures against the server's banner: `186647296` = `0x0B200300` is
/// 11.2.0.3.0 (`wswiki__11_sqldeveloper11_2016.pcapng`), `169869568` 10.2.0.1.0
/// (`junkie__oracle_select.pcap`), `185599744` 11.1.0.7.0 (`john-samples__O5LOGON_Oracle-good.pcap`),
/// `153092352` 9.2.0.1.0 (`wswiki__TNS_Oracle2.pcap`). `field_version` is the session's
/// (client's and server's, the lower); when it is not known the old layout is used only for a
/// major version below 18, which cannot have the new one.
pub fn version_number(v: u64, field_version: Option<u8>) -> Option<String> {
    let v = u32::try_from(v).ok()?;
    let major = v >> 24;
    let new_layout = match field_version {
        Some(f) => f >= field_version::V18_1_EXT_1,
        None if major < 18 => false,
        None => return None,
    };
    if major == 0 {
        return None;
    }
    let parts = if new_layout {
        [
            major,
            (v >> 16) & 0xff,
            (v >> 12) & 0x0f,
            (v >> 4) & 0xff,
            v & 0x0f,
        ]
    } else {
        [
            major,
            (v >> 20) & 0x0f,
            (v >> 12) & 0x0f,
            (v >> 8) & 0x0f,
            v & 0xff,
        ]
    };
    Some(
        parts
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join("."),
    )
}

/// The first length-prefixed string of `d` that reads as a server banner (`Oracle…`).
pub fn banner(d: &[u8]) -> Option<&[u8]> {
    let mut i = 0usize;
    while i + 7 <= d.len() {
        if d.get(i + 1..i + 7) == Some(b"Oracle") {
            let l = d.get(i).copied().unwrap_or(0) as usize;
            if let Some(s) = d.get(i + 1..i + 1 + l) {
                if l >= 8 && s.iter().all(|&b| text_like(b)) {
                    return Some(strip_nul(s));
                }
            }
        }
        i += 1;
    }
    None
}

/// The character set id in a server's protocol-negotiation answer
/// (`01`, version, `00`, banner NUL-terminated, charset ub2 little endian).
pub fn server_charset(d: &[u8]) -> Option<u16> {
    if d.first() != Some(&msg::PROTOCOL) {
        return None;
    }
    let rest = d.get(3..)?;
    let nul = rest.iter().take(256).position(|&b| b == 0)?;
    let b = rest.get(nul + 1..nul + 3)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

/// The TTC field version in a server's protocol-negotiation answer: after the charset, a flags
/// byte, an element count (ub2 LE) and that many 5-byte elements, a big-endian ub2 length and
/// that many bytes, then the compile capabilities (length-prefixed): their byte
/// [`CCAP_FIELD_VERSION`] (python-oracledb messages/protocol.pyx `_process_protocol_info`;
/// fixtures/tns/live_thin_session frames 9 and 70: 13 and 24).
pub fn server_field_version(d: &[u8]) -> Option<u8> {
    if d.first() != Some(&msg::PROTOCOL) {
        return None;
    }
    let rest = d.get(3..)?;
    let nul = rest.iter().take(256).position(|&b| b == 0)?;
    let mut pos = 3 + nul + 1 + 2 + 1;
    let n = u16::from_le_bytes([*d.get(pos)?, *d.get(pos + 1)?]) as usize;
    pos += 2 + n.checked_mul(5)?;
    let fdo = u16::from_be_bytes([*d.get(pos)?, *d.get(pos + 1)?]) as usize;
    pos += 2 + fdo;
    let len = *d.get(pos)? as usize;
    d.get(pos + 1..pos + 1 + len)?
        .get(CCAP_FIELD_VERSION)
        .copied()
}

/// The TTC field version in a client's data-types message (`02`, two charsets ub2 LE, an
/// encoding flags byte, then the compile capabilities, length-prefixed: python-oracledb
/// messages/data_types.pyx `_write_message`; fixtures/tns/live_thin_session frame 10: 24).
pub fn client_field_version(d: &[u8]) -> Option<u8> {
    if d.first() != Some(&msg::DATA_TYPES) {
        return None;
    }
    let len = *d.get(6)? as usize;
    d.get(7..7 + len)?.get(CCAP_FIELD_VERSION).copied()
}

/// What a fast-authentication message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FastAuth {
    /// The embedded data-types message starts here.
    pub data_types_at: usize,
    /// The embedded AUTH phase one call starts here.
    pub auth_at: usize,
    /// The field version the embedded calls are written with.
    pub field_version: u8,
}

/// Data type entries read at most in an embedded data-types message (python-oracledb 26.1
/// sends 322).
pub const MAX_DATA_TYPES: usize = 1024;

/// A fast-authentication message (python-oracledb messages/fast_auth.pyx `_write_message`):
/// `22`, version, two flag bytes, the protocol message (`01`, version, `00`, driver name,
/// NUL), server charset ub2, a flag byte, national charset ub2, the field version byte, the
/// data-types message (`02`, two charsets ub2 LE, flags, compile and runtime capabilities
/// length-prefixed, entries of four big-endian ub2 ended by a zero ub2), then AUTH phase one
/// (fixtures/tns/live_thin_session frame 69).
pub fn fast_auth(d: &[u8]) -> Option<FastAuth> {
    if d.first() != Some(&msg::FAST_AUTH) || d.get(4) != Some(&msg::PROTOCOL) {
        return None;
    }
    let nul = d.get(7..)?.iter().take(256).position(|&b| b == 0)?;
    let field_version = *d.get(7 + nul + 1 + 5)?;
    let data_types_at = 7 + nul + 1 + 6;
    if d.get(data_types_at) != Some(&msg::DATA_TYPES) {
        return None;
    }
    let mut pos = data_types_at + 6;
    for _ in 0..2 {
        pos += 1 + *d.get(pos)? as usize;
    }
    for _ in 0..MAX_DATA_TYPES {
        match d.get(pos..pos + 2)? {
            [0, 0] => {
                let auth_at = pos + 2;
                let ok =
                    d.get(auth_at..auth_at + 2) == Some(&[msg::FUNCTION, func::AUTH_PHASE_ONE]);
                return ok.then_some(FastAuth {
                    data_types_at,
                    auth_at,
                    field_version,
                });
            }
            _ => pos += 8,
        }
    }
    None
}

/// The client character set in a data-types negotiation (`02`, charset ub2 little endian).
pub fn client_charset(d: &[u8]) -> Option<u16> {
    if d.first() != Some(&msg::DATA_TYPES) {
        return None;
    }
    let b = d.get(1..3)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

/// The piggy-backs in front of a main call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Piggybacks {
    /// Function codes, in order.
    pub funcs: Vec<u8>,
    /// Cursor ids listed by close-cursors piggy-backs ([`func::CLOSE_CURSORS`]), at most
    /// [`MAX_CLOSED_IDS`].
    pub closed: Vec<u64>,
}

/// Cursor ids kept from the close-cursors piggy-backs of one call.
pub const MAX_CLOSED_IDS: usize = 4096;

/// Skip piggy-backed calls at `at` (`11`, function, sequence, pointer, count ub4, count cursor
/// ids ub4) and return the position of the main call (`03`). Piggy-backs of other shapes are
/// passed by looking for the next `03` followed by a known function code. The ids listed by a
/// close-cursors piggy-back (python-oracledb messages/base.pyx
/// `_write_close_cursors_piggyback`, statement_cache.pyx `write_cursors_to_close`: pointer, ub4
/// count, that many ub4 cursor ids; `fixtures/tns/live_thin_session` frame 36: `11 69 0d 01 01
/// 03 01 01 01 03 01 02` closes cursors 1, 3 and 2) are returned.
pub fn main_call(d: &[u8], at: usize, repr: Repr, token: bool) -> Option<(usize, Piggybacks)> {
    let mut pos = at;
    let mut piggy = Piggybacks::default();
    for _ in 0..16 {
        match d.get(pos) {
            Some(&msg::FUNCTION) => return Some((pos, piggy)),
            Some(&msg::PIGGYBACK) => {
                let f = *d.get(pos + 1)?;
                piggy.funcs.push(f);
                // Padded first: a padded count read plain would take the padding for a cursor id.
                let padded = (repr.ptr == 8)
                    .then(|| piggy_body(d, pos + 2, repr, token, true))
                    .flatten();
                match padded.or_else(|| piggy_body(d, pos + 2, repr, token, false)) {
                    Some((p, ids)) => {
                        if f == func::CLOSE_CURSORS {
                            let room = MAX_CLOSED_IDS.saturating_sub(piggy.closed.len());
                            piggy.closed.extend(ids.into_iter().take(room));
                        }
                        pos = p;
                    }
                    None => {
                        // Unknown piggy-back body: find the next plausible main call.
                        let from = pos + 2;
                        let rel = d
                            .get(from..)?
                            .windows(2)
                            .position(|w| w[0] == msg::FUNCTION && is_known_func(w[1]))?;
                        pos = from + rel;
                    }
                }
            }
            _ => return None,
        }
    }
    None
}

/// A cursor-list piggy-back body (sequence, pointer, count, count ids) ending where another
/// call starts; `pad`: the count is padded to 8 bytes (64-bit Windows OCI). Returns the
/// position after it and the ids.
fn piggy_body(
    d: &[u8],
    at: usize,
    repr: Repr,
    token: bool,
    pad: bool,
) -> Option<(usize, Vec<u64>)> {
    let mut c = Cur::new(d, at, repr);
    c.seq(token)?;
    c.ptr()?;
    let n = c.ub4()?;
    if pad {
        if c.rest().get(..4)? != [0, 0, 0, 0] {
            return None;
        }
        c.pos += 4;
    }
    if n > 4096 {
        return None;
    }
    let mut ids = Vec::with_capacity((n as usize).min(64));
    for _ in 0..n {
        ids.push(c.ub4()?);
    }
    let p = c.pos;
    let next_ok = match d.get(p) {
        Some(&msg::FUNCTION) | Some(&msg::PIGGYBACK) => d.get(p + 1).is_some(),
        _ => false,
    };
    next_ok.then_some((p, ids))
}

/// Function codes this parser names.
pub fn is_known_func(f: u8) -> bool {
    matches!(
        f,
        func::PARSE
            | func::EXECUTE
            | func::FETCH
            | func::CLOSE
            | func::LOGOFF
            | func::COMMIT
            | func::ROLLBACK
            | func::VERSION
            | func::OALL7
            | func::OALL8
            | func::REEXECUTE_AND_FETCH
            | func::CLOSE_CURSORS
            | func::AUTH_PHASE_TWO
            | func::AUTH_PHASE_ONE
            | func::CLOSE_TEMP
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    /// wswiki__11_sqldeveloper11_2016.pcapng frame 12 (TTC part): JDBC thin, compressed
    /// integers, the user name written raw.
    const JDBC_AUTH1: &str = "\
        03760101010301210101050101535953010d0d415554485f5445524d494e414c010707756e6b6e6f776e00010f0f4155\
        54485f50524f4752414d5f4e4d010d0d53514c20446576656c6f70657200010c0c415554485f4d414348494e45010f0f\
        57494e2d544456444e554e4537333000010808415554485f5049440104043230373200010808415554485f5349440105\
        057669736f7200";

    #[test]
    fn jdbc_auth_is_compressed() {
        let d = unhex(JDBC_AUTH1);
        let r = detect_repr(&d, 0, false).unwrap();
        assert_eq!(
            r,
            Repr {
                ints: IntMode::Compressed,
                ptr: 1
            }
        );
        let a = auth(&d, 0, r, false, 256).unwrap();
        assert_eq!(a.user, b"SYS");
        assert_eq!(a.func, func::AUTH_PHASE_ONE);
        assert_eq!(a.keys.len(), 5);
        assert_eq!(a.mode, 0x21);
        assert_eq!(
            a.pairs,
            vec![
                ("AUTH_TERMINAL".to_string(), b"unknown".to_vec()),
                ("AUTH_PROGRAM_NM".to_string(), b"SQL Developer".to_vec()),
                ("AUTH_MACHINE".to_string(), b"WIN-TDVDNUNE730".to_vec()),
                ("AUTH_PID".to_string(), b"2072".to_vec()),
                ("AUTH_SID".to_string(), b"visor".to_vec()),
            ]
        );
    }

    #[test]
    fn oci_10g_oall8_with_64_byte_chunks() {
        // junkie__oracle_insert.pcap frame 42 (TTC part): fixed little-endian ints, 1-byte
        // pointers, SQL in 0xFE + 64-byte chunks; the announced length (0xc3) is 3 × 65.
        let d = unhex(
            "035e15218000000000000001c3000000010d000000000100000000010000000000000000000000000000000001010000\
             0000fe40494e5345525420494e544f20726567696f6e732028726567696f6e5f69642c20726567696f6e5f6e616d6529\
             2056414c554553202837352c202750617269732701290001000000010000000000000000000000000000000000000000\
             000000040000000000000000000000000000000000000000000000",
        );
        let Some(Oall8::Sql(s)) = oall8(&d, 0, FIXED_LE, false, 1000) else {
            panic!("no statement")
        };
        assert_eq!(
            String::from_utf8(s.sql).unwrap(),
            "INSERT INTO regions (region_id, region_name) VALUES (75, 'Paris')"
        );
        assert_eq!(s.total, 65);
    }

    #[test]
    fn jdbc_bind_values() {
        // wswiki__DumpFile01.pcap frame 554 (TTC part, from the OALL8 call's end of text):
        // al8i4, three bind metadata entries (NUMBER, VARCHAR2, REF CURSOR), then `07` values.
        let d = unhex(
            "01010101000000000000000000000006030000011600000000020369010001030000027f000001100000020369\
             0100740300000110000000000203690100 07 02c105 03505449 0100",
        );
        let r = Repr {
            ints: IntMode::Compressed,
            ptr: 1,
        };
        let b = bind_values(&d, 0, r, 3, 100).unwrap();
        assert_eq!(b.rows, 1);
        let b = b.values;
        assert_eq!(
            b.iter().map(|x| (x.ty, x.charset)).collect::<Vec<_>>(),
            [(6, 873), (1, 873), (116, 873)]
        );
        assert_eq!(
            number_text(b[0].value.as_deref().unwrap()).as_deref(),
            Some("4")
        );
        assert_eq!(b[1].value.as_deref(), Some(&b"PTI"[..]));
        // One value fewer than announced does not parse.
        assert_eq!(bind_values(&d, 0, r, 4, 100), None);
    }

    #[test]
    fn thin_array_bind_values() {
        // fixtures/tns/live_thin_session frame 20 (python-oracledb 26.1 `executemany`, TTC
        // field version 13), from the end of the text: al8i4 (execution count 2), three
        // entries of the 12.2 layout (NUMBER, VARCHAR2 AL32UTF8, DATE), then two `07` rows.
        let d = unhex(
            "0101 0102 0000 0000 0000 0000 0000 00\
             02010000 0116 00 00 00 00 00 00 00 00\
             01010000 0118 00 00 00 00 020369 01 00 00\
             0c010000 0107 00 00 00 00 00 00 00 00\
             07 03c20b02 06e5a48de8af8a 07787c03020a0101\
             07 03c20b03 06e9a696e8af8a 07787c03020a1001",
        );
        let r = Repr {
            ints: IntMode::Compressed,
            ptr: 1,
        };
        let b = bind_values(&d, 0, r, 3, 100).unwrap();
        assert_eq!(b.rows, 2);
        assert_eq!(
            b.values
                .iter()
                .map(|x| (x.ty, x.charset))
                .collect::<Vec<_>>(),
            [(2, 0), (1, 873), (12, 0), (2, 0), (1, 873), (12, 0)]
        );
        let v = |i: usize| b.values[i].value.as_deref().unwrap();
        assert_eq!(number_text(v(3)).as_deref(), Some("1002"));
        assert_eq!(v(4), "首诊".as_bytes());
        assert_eq!(date_text(v(5)).as_deref(), Some("2024-03-02 09:15:00"));
        // A row cut short does not parse.
        assert_eq!(bind_values(&d[..d.len() - 1], 0, r, 3, 100), None);
    }

    #[test]
    fn numbers_and_dates() {
        assert_eq!(number_text(&[0xc1, 0x05]).as_deref(), Some("4"));
        assert_eq!(number_text(&[0x80]).as_deref(), Some("0"));
        assert_eq!(number_text(&[0xc2, 0x02, 0x18]).as_deref(), Some("123"));
        assert_eq!(number_text(&[0xc1, 0x02, 0x33]).as_deref(), Some("1.5"));
        assert_eq!(number_text(&[0x3e, 0x64, 0x66]).as_deref(), Some("-1"));
        assert_eq!(number_text(&[0xc0, 0x33]).as_deref(), Some("0.5"));
        assert_eq!(
            date_text(&[0x78, 0x7c, 0x0b, 0x17, 0x17, 0x24, 0x01]).as_deref(),
            Some("2024-11-23 22:35:00")
        );
    }

    #[test]
    fn ora_error_and_rows_from_a_fixed_block() {
        // junkie__oracle_select.pcap frame 26 (TTC part).
        let d = unhex(
            "04010000000500010000007b050000000001000000030000000000000000000000000000000000000000000000070000\
             010000000000000000000000000000000000194f52412d30313430333a206e6f206461746120666f756e640a",
        );
        let e = find_error(&d, Some(FIXED_LE), 1000).unwrap();
        assert_eq!(e.code, 1403);
        assert_eq!(e.message, b"ORA-01403: no data found");
        assert_eq!(e.rows, Some(1));
    }

    /// JDBC thin 8.2 against 11.1 writes no sequence field (`BlockHead::Unsequenced`).
    #[test]
    fn rows_from_a_block_without_sequence() {
        // Frame 20 (TTC part) of junkie__oracle_one_row_response.pcap (one row fetched) and of
        // junkie__oracle_query_no_data.pcap (none): the blocks differ only in the current row.
        let after_row = "02057b00000102000300000000000000000000000000000101\
                         194f52412d30313430333a206e6f206461746120666f756e640a";
        for (head, rows) in [("0401050101", 1), ("04010500", 0)] {
            let e = find_error(&unhex(&format!("{head}{after_row}")), Some(THIN), 100).unwrap();
            assert_eq!((e.code, e.rows, e.cursor), (1403, Some(rows), Some(2)));
        }
    }

    /// 64-bit OCI writes one more byte before the current row (`BlockHead::Wide`).
    #[test]
    fn rows_from_a_64_bit_oci_block() {
        // wswiki__7_oracle10_2016.pcapng frame 36 (TTC part, from the error block on):
        // `select name, password from sys.user$`, 63 rows in all, then ORA-01403.
        let d = unhex(
            "04010000000f00013f0000007b05000000000500000003000000000000000000000000000000000000000000\
             00000000001100000100000036010000000000000000000000000000e0935806000000000000000000000000\
             0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
             00000000194f52412d30313430333a206e6f206461746120666f756e640a",
        );
        let e = find_error(&d, Some(OCI64), 100).unwrap();
        assert_eq!((e.code, e.rows, e.cursor), (1403, Some(63), None));
        // The same bytes read with 1-byte pointers: only the 32-bit layouts are tried, and
        // neither reads 1403 there.
        assert_eq!(find_error(&d, Some(FIXED_LE), 100).unwrap().rows, None);
    }

    #[test]
    fn version_numbers_in_both_layouts() {
        // Shared captures (old layout), each matching the server's banner.
        assert_eq!(
            version_number(186_647_296, Some(6)).as_deref(),
            Some("11.2.0.3.0")
        );
        assert_eq!(
            version_number(169_869_568, None).as_deref(),
            Some("10.2.0.1.0")
        );
        assert_eq!(
            version_number(185_599_744, None).as_deref(),
            Some("11.1.0.7.0")
        );
        assert_eq!(
            version_number(153_092_352, None).as_deref(),
            Some("9.2.0.1.0")
        );
        // 18c layout: 19.22 (19 << 24 | 22 << 16) and 23.9 with a field version of 13 or more.
        assert_eq!(
            version_number(320_208_896, Some(13)).as_deref(),
            Some("19.22.0.0.0")
        );
        assert_eq!(
            version_number(386_465_792, Some(24)).as_deref(),
            Some("23.9.0.0.0")
        );
        // A major version of 18 or more with the field version unknown: layout unknown.
        assert_eq!(version_number(320_208_896, None), None);
        assert_eq!(version_number(0, None), None);
        assert_eq!(version_number(u64::MAX, Some(13)), None);
    }

    const FIXED_LE: Repr = Repr {
        ints: IntMode::FixedLe,
        ptr: 1,
    };

    /// 64-bit OCI: fixed little-endian integers, 8-byte pointers.
    const OCI64: Repr = Repr {
        ints: IntMode::FixedLe,
        ptr: 8,
    };

    /// junkie__oracle_delete.pcap frame 43 (TTC part): the answer to
    /// `delete from regions where region_id > 90` (10.2 XE, 32-bit OCI). Return parameters
    /// (`08`, six ub4, no text, no pairs), then the end-of-call block: current row 3, error 0,
    /// command 7. The same session's `select * from regions` 12 s earlier
    /// (junkie__oracle_select.pcap) lists exactly three regions above 90: 91, 93 and 94.
    const DELETE_ANSWER: &str = "\
        08060078230600000000000100000001000000000000000000000000000000040200000013000300000000\
        000000000001000c0007000000000045350000040000d600000017000000000000150000010000000d000d\
        01000035450004000000d60017000000000000000000000000";

    #[test]
    fn delete_answer_gives_rows_deleted() {
        let d = unhex(DELETE_ANSWER);
        let s = call_status(&d, FIXED_LE, None, &mut None).unwrap();
        assert_eq!(
            s,
            CallStatus {
                rows: 3,
                error: 0,
                command: command::DELETE,
                cursor: 1,
            }
        );
        assert!(command::is_dml(s.command));
        // Only the tail of the answer: the walk does not start on a message, no guess.
        assert_eq!(
            call_status(d.get(20..).unwrap(), FIXED_LE, None, &mut None),
            None
        );
        // Cut inside the block: nothing.
        assert_eq!(
            call_status(d.get(..40).unwrap(), FIXED_LE, None, &mut None),
            None
        );
    }

    #[test]
    fn insert_answer_gives_one_row() {
        // junkie__oracle_insert.pcap frame 43: `INSERT INTO regions (region_id, region_name)
        // VALUES (75, 'Paris')`.
        let d = unhex(
            "080600a2220600000000000100000001000000000000000000000000000000040200000013000100000000\
             000000000001000c0002000000000045350000040000d400000000000000000000150000010000000d\
             000d01000035450004000000d40000000000000000000000000000",
        );
        let s = call_status(&d, FIXED_LE, None, &mut None).unwrap();
        assert_eq!((s.rows, s.error, s.command), (1, 0, command::INSERT));
    }

    #[test]
    fn return_parameters_of_compressed_answers_and_64_bit_oci() {
        // wswiki__8_oracle11_2016.pcapng frame 23: `create user …` (11.2, 64-bit OCI, 8-byte
        // pointers): its block has another layout, so nothing is read from it.
        let d = unhex(
            "08060065122c00000000000100000000000000000000000000000000000100000000000b0000000b8000\
             0000373c3c80000000a30000000000040100000006000100000000000000000000010000003300000000",
        );
        assert_eq!(call_status(&d, OCI64, None, &mut None), None);
        // wswiki__11_sqldeveloper11_2016.pcapng frame 45: `alter session set …` (JDBC thin,
        // compressed integers, registration field as in python-oracledb); command 42.
        let d = unhex(
            "08010603 11e17c00 01010000 00000000 04010101 20000000 00010100 2a000000 00000000\
             00000000 20000101 00000000",
        );
        let jdbc = Repr {
            ints: IntMode::Compressed,
            ptr: 1,
        };
        let s = call_status(&d, jdbc, None, &mut None).unwrap();
        assert_eq!((s.rows, s.error, s.command), (0, 0, 42));
    }

    #[test]
    fn answers_that_cannot_be_walked_give_nothing() {
        // junkie__oracle_delete.pcap frame 33: a PL/SQL call with a bind starts with an I/O
        // vector (`0b`), whose layout is not known here.
        let d = unhex(
            "0b0501000000010000000000000000000000200806007323060000000000010000000000000000000000\
             000000000000000004010000000d0001000000000000000000010000002f000000000000000000",
        );
        assert_eq!(call_status(&d, FIXED_LE, None, &mut None), None);
        // Frame 23 of the same capture: a query's answer starts with describe information.
        assert_eq!(
            call_status(&[0x10, 0x17, 0x60, 0xbb], FIXED_LE, None, &mut None),
            None
        );
        assert_eq!(call_status(&[], FIXED_LE, None, &mut None), None);
        // A pair count over the limit.
        assert_eq!(
            call_status(
                &[0x08, 0, 0, 0, 0, 0xff, 0xff, 0x04],
                FIXED_LE,
                None,
                &mut None
            ),
            None
        );
    }

    // ---- cursors: python-oracledb 26.1 thin, fixtures/tns/live_thin_session (19c-like
    // server, compressed integers, no token) ----

    const THIN: Repr = Repr {
        ints: IntMode::Compressed,
        ptr: 1,
    };

    /// Frame 24's answer (tail): rows, then the end-of-call block `04 00 00 01 02 02 05 7b 00
    /// 00 01 04 …`: 2 rows, ORA-01403, cursor 4 (the id the next calls name).
    const THIN_SELECT_ANSWER_TAIL: &str = "\
        0703c20b0206e5bca0e4bc9f0703c20b0306e69d8ee5a89c040000010202057b0000010400030000000000000000\
        000000000000000000000002057b0102184f52412d30313430333a206e6f206461746120666f756e64";

    #[test]
    fn end_of_call_block_gives_the_cursor_id() {
        let d = unhex(THIN_SELECT_ANSWER_TAIL);
        let e = find_error(&d, Some(THIN), 100).unwrap();
        assert_eq!((e.code, e.rows, e.cursor), (1403, Some(2), Some(4)));
        // The same block had the query fetched 1403 rows: read without a sequence field it
        // would also end in 1403 (at the row field), but the sequenced reading comes first.
        let block = "040000010202057b";
        let at = THIN_SELECT_ANSWER_TAIL.find(block).unwrap();
        let fetched_1403 = format!(
            "{}0400000205 7b02057b{}",
            &THIN_SELECT_ANSWER_TAIL[..at],
            &THIN_SELECT_ANSWER_TAIL[at + block.len()..]
        );
        let e = find_error(&unhex(&fetched_1403), Some(THIN), 100).unwrap();
        assert_eq!((e.rows, e.cursor), (Some(1403), Some(4)));
        // 64-bit OCI against 11.2 writes the block differently: no cursor read there.
        assert!(!block_layout_known(OCI64));
    }

    #[test]
    fn session_id_and_serial_from_the_phase_two_answer() {
        // junkie__oracle_select.pcap frame 20 (10.2, fixed integers): AUTH_SESSION_ID "26",
        // AUTH_SERIAL_NUM "1302".
        let d = unhex(
            "0f0000000f415554485f53455353494f4e5f4944020000000232360000000\
             00f0000000f415554485f53455249414c5f4e554d0400000004313330320000000000",
        );
        assert_eq!(auth_number(&d, b"AUTH_SESSION_ID", FIXED_LE), Some(26));
        assert_eq!(auth_number(&d, b"AUTH_SERIAL_NUM", FIXED_LE), Some(1302));
        // wswiki__11_sqldeveloper11_2016.pcapng (JDBC thin, compressed): "32".
        let d = unhex("010f0f415554485f53455353494f4e5f49440102023332");
        assert_eq!(auth_number(&d, b"AUTH_SESSION_ID", THIN), Some(32));
        assert_eq!(auth_number(&d, b"AUTH_SERIAL_NUM", THIN), None);
    }

    #[test]
    fn fetch_names_its_cursor() {
        // junkie__oracle_select.pcap (sqlplus 10.2, fixed little-endian integers): fetch 2
        // rows of cursor 1; wswiki__11_sqldeveloper11_2016.pcapng (JDBC thin, compressed):
        // fetch 10 rows of cursor 1, then of cursor 2.
        let oci = unhex("03050701000000");
        assert_eq!(
            fetch_cursor(&oci, 0, FIXED_LE, false),
            None,
            "array size missing"
        );
        let oci = unhex("0305070100000002000000");
        assert_eq!(fetch_cursor(&oci, 0, FIXED_LE, false), Some(1));
        assert_eq!(
            fetch_cursor(&unhex("0305310101010a"), 0, THIN, false),
            Some(1)
        );
        assert_eq!(
            fetch_cursor(&unhex("03053a0102010a"), 0, THIN, false),
            Some(2)
        );
        // Not a fetch.
        assert_eq!(fetch_cursor(&unhex("03040b0102010a"), 0, THIN, false), None);
    }

    #[test]
    fn reexecute_and_fetch_names_its_cursor() {
        // Frame 26: re-execute and fetch (78) of cursor 4 with NUMBER 1002.
        let d = unhex("034e08010401020120000703c20b03");
        let r = reexecute(&d, 0, THIN, false).unwrap();
        assert_eq!(r.cursor, 4);
        let metas = [BindMeta {
            ty: 2,
            charset: 0,
            csfrm: 0,
        }];
        let v = reexecute_values(&d, r.values_at, THIN, &metas, 100).unwrap();
        assert_eq!(v.rows, 1);
        assert_eq!(v.values[0].value.as_deref(), Some(&[0xc2, 0x0b, 0x03][..]));
        // Frame 32: re-execute (4) of cursor 2 (the UPDATE), three values.
        let d = unhex("03040b0102010100000706e5a496e7a79102c10202c105");
        let r = reexecute(&d, 0, THIN, false).unwrap();
        assert_eq!(r.cursor, 2);
        let metas = [
            BindMeta {
                ty: 1,
                charset: 873,
                csfrm: 1,
            },
            BindMeta {
                ty: 2,
                charset: 0,
                csfrm: 0,
            },
            BindMeta {
                ty: 2,
                charset: 0,
                csfrm: 0,
            },
        ];
        let v = reexecute_values(&d, r.values_at, THIN, &metas, 100).unwrap();
        assert_eq!(v.values[0].value.as_deref(), Some("外科".as_bytes()));
        // Values that do not fit the remembered metadata are not read.
        assert_eq!(
            reexecute_values(&d, r.values_at, THIN, &metas[..2], 100),
            None
        );
        // The same call with token (field version 18+: the 23ai-like connection, frame 83).
        let d = unhex("034e0800010401020120000703c20b03");
        assert_eq!(reexecute(&d, 0, THIN, true).map(|r| r.cursor), Some(4));
    }

    #[test]
    fn oall8_by_cursor_reads_its_new_binds() {
        // Frame 30: OALL8 without text on cursor 4 (options 0x8068: no parse), the id bound
        // as text this time: new metadata (VARCHAR2) and the value '1004'.
        let d = unhex(
            "035e0a0280680104000001010d0000000164047fffffff0101010000000000000000000100000000000000\
             0000000000000000000164000000000001010002800000000001010000011000000000020369010000070431303034",
        );
        assert_eq!(
            oall8(&d, 0, THIN, false, 100),
            Some(Oall8::Cursor {
                cursor: 4,
                options: 0x8068
            })
        );
        // Field version 13 (the negotiated one): the 12.2 ext 1 layout.
        let v = cursor_bind_values(&d, 0, THIN, false, Some(13), 100).unwrap();
        assert_eq!(v.metas.len(), 1);
        assert_eq!((v.metas[0].ty, v.metas[0].charset), (1, 873));
        assert_eq!(v.values[0].value.as_deref(), Some(&b"1004"[..]));
        // Read in the 12.2 layout, two zero fields shorter, the same bytes also end exactly
        // (as a type-0 bind): with the field version unknown, two layouts fit and none is
        // chosen.
        assert!(cursor_bind_values(&d, 0, THIN, false, Some(8), 100).is_some());
        assert_eq!(cursor_bind_values(&d, 0, THIN, false, None, 100), None);
    }

    #[test]
    fn close_cursors_piggyback_lists_ids() {
        // Frame 36: close cursors 1, 3, 2, then commit.
        let d = unhex("11690d010103010101030102030e0e");
        let (at, p) = main_call(&d, 0, THIN, false).unwrap();
        assert_eq!(d.get(at..at + 2), Some(&[3, func::COMMIT][..]));
        assert_eq!(p.funcs, vec![func::CLOSE_CURSORS]);
        assert_eq!(p.closed, vec![1, 3, 2]);
    }
}
