//! Bind values by type OID: names as PostgreSQL spells them (`pg_type.typname`: `int4`, `text`,
//! `_int4` for arrays) and decoding of the text and binary formats ("Data Types" and the
//! `*send`/`*recv` functions the binary format is defined by). Unknown types keep their bytes.
//!
//! Every decoder works on a bounded value (the Bind message is bounded) and never panics:
//! malformed binary values are `Undecodable`, text values are kept as text.

use std::borrow::Cow;
use std::fmt::Write as _;

use dbtap_core::text::{push_hms, push_padded, push_ymd};
use dbtap_core::ParamValue;

use crate::charset::Charset;
use crate::wire::Reader;

/// Type OIDs (`pg_type.oid`; stable across PostgreSQL versions).
pub mod oid {
    pub const UNSPECIFIED: u32 = 0;
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const CHAR: u32 = 18;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const JSON: u32 = 114;
    pub const XML: u32 = 142;
    pub const CIDR: u32 = 650;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const UNKNOWN: u32 = 705;
    pub const MONEY: u32 = 790;
    pub const INET: u32 = 869;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const INTERVAL: u32 = 1186;
    pub const TIMETZ: u32 = 1266;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
}

/// (element OID, element name, array OID, array name) of the types decoded here.
const TYPES: &[(u32, &str, u32, &str)] = &[
    (oid::BOOL, "bool", 1000, "_bool"),
    (oid::BYTEA, "bytea", 1001, "_bytea"),
    (oid::CHAR, "char", 1002, "_char"),
    (oid::NAME, "name", 1003, "_name"),
    (oid::INT8, "int8", 1016, "_int8"),
    (oid::INT2, "int2", 1005, "_int2"),
    (oid::INT4, "int4", 1007, "_int4"),
    (oid::TEXT, "text", 1009, "_text"),
    (oid::OID, "oid", 1028, "_oid"),
    (oid::JSON, "json", 199, "_json"),
    (oid::XML, "xml", 143, "_xml"),
    (oid::CIDR, "cidr", 651, "_cidr"),
    (oid::FLOAT4, "float4", 1021, "_float4"),
    (oid::FLOAT8, "float8", 1022, "_float8"),
    (oid::MONEY, "money", 791, "_money"),
    (oid::INET, "inet", 1041, "_inet"),
    (oid::BPCHAR, "bpchar", 1014, "_bpchar"),
    (oid::VARCHAR, "varchar", 1015, "_varchar"),
    (oid::DATE, "date", 1182, "_date"),
    (oid::TIME, "time", 1183, "_time"),
    (oid::TIMESTAMP, "timestamp", 1115, "_timestamp"),
    (oid::TIMESTAMPTZ, "timestamptz", 1185, "_timestamptz"),
    (oid::INTERVAL, "interval", 1187, "_interval"),
    (oid::TIMETZ, "timetz", 1270, "_timetz"),
    (oid::NUMERIC, "numeric", 1231, "_numeric"),
    (oid::UUID, "uuid", 2951, "_uuid"),
    (oid::JSONB, "jsonb", 3807, "_jsonb"),
];

/// The type name written in `Param::type_name`: PostgreSQL's name for the OIDs known here,
/// `unknown` for an unspecified (0) or `unknown` type, else `oid:NNNN`.
pub fn type_name(oid: u32) -> Cow<'static, str> {
    if oid == oid::UNSPECIFIED || oid == oid::UNKNOWN {
        return Cow::Borrowed("unknown");
    }
    for &(e, en, a, an) in TYPES {
        if e == oid {
            return Cow::Borrowed(en);
        }
        if a == oid {
            return Cow::Borrowed(an);
        }
    }
    Cow::Owned(format!("oid:{oid}"))
}

/// The element OID of a known array type.
pub fn array_element(oid: u32) -> Option<u32> {
    TYPES.iter().find(|t| t.2 == oid).map(|t| t.0)
}

fn known_scalar(oid: u32) -> bool {
    oid == oid::UNKNOWN || TYPES.iter().any(|t| t.0 == oid)
}

/// Bounds for one value.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Bytes kept of a text or binary value (`Limits::max_param_len`).
    pub max_len: usize,
    /// Elements kept of an array (`Limits::max_params`).
    pub max_elements: usize,
}

/// A decoded value and whether it was cut at a bound.
pub type Decoded = (ParamValue, bool);

/// Decode one bind value of type `oid` sent in text (`binary == false`) or binary format.
pub fn decode(oid: u32, binary: bool, v: &[u8], cs: Charset, b: Bounds) -> Decoded {
    // Parameters whose type the client left to the server (oid 0: pgbench, many drivers) are
    // the common case, and never arrays: no table walk for them.
    if oid == oid::UNSPECIFIED {
        return if binary {
            decode_binary(oid, v, cs, b)
        } else {
            text(v, cs, b)
        };
    }
    if let Some(elem) = array_element(oid) {
        return if binary {
            binary_array(elem, v, cs, b)
        } else {
            match text_array(elem, v, cs, b) {
                Some(d) => d,
                None => text(v, cs, b),
            }
        };
    }
    if binary {
        decode_binary(oid, v, cs, b)
    } else {
        decode_text(oid, v, cs, b)
    }
}

/// Text that is cut at `b.max_len` bytes (on a character boundary).
fn text(v: &[u8], cs: Charset, b: Bounds) -> Decoded {
    let cut = v.len() > b.max_len;
    // Decode a little more than kept: escapes and multi-byte characters change the length.
    let head = v.get(..b.max_len.min(v.len())).unwrap_or_default();
    let mut s = cs.decode(head);
    let cut = dbtap_core::text::truncate_utf8(&mut s, b.max_len) || cut;
    (ParamValue::Text(s), cut)
}

fn bytes(v: &[u8], b: Bounds) -> Decoded {
    let n = v.len().min(b.max_len);
    (
        ParamValue::Bytes(v.get(..n).unwrap_or_default().to_vec()),
        n < v.len(),
    )
}

fn decode_text(oid: u32, v: &[u8], cs: Charset, b: Bounds) -> Decoded {
    // Only the types read as numbers or booleans need the text as UTF-8.
    let s = || std::str::from_utf8(v).ok().map(str::trim);
    match oid {
        oid::BOOL => match s() {
            Some("t" | "true" | "TRUE" | "on" | "yes" | "y" | "1") => {
                (ParamValue::Bool(true), false)
            }
            Some("f" | "false" | "FALSE" | "off" | "no" | "n" | "0") => {
                (ParamValue::Bool(false), false)
            }
            _ => text(v, cs, b),
        },
        oid::INT2 | oid::INT4 | oid::INT8 | oid::OID => {
            match s().and_then(|s| s.parse::<i64>().ok()) {
                Some(n) => (ParamValue::Int(n), false),
                None => text(v, cs, b),
            }
        }
        oid::FLOAT4 | oid::FLOAT8 => match s().and_then(|s| s.parse::<f64>().ok()) {
            Some(f) if f.is_finite() => (ParamValue::Float(f), false),
            _ => text(v, cs, b),
        },
        oid::BYTEA => match bytea_text(v) {
            Some(raw) => bytes(&raw, b),
            None => text(v, cs, b),
        },
        _ => text(v, cs, b),
    }
}

/// The text form of bytea: `\x` followed by hex digits (the default output since 9.0), or the
/// escape format (`\\` and `\ooo` octal escapes, other bytes as themselves).
fn bytea_text(v: &[u8]) -> Option<Vec<u8>> {
    if let Some(hex) = v.strip_prefix(b"\\x") {
        let digits: Vec<u8> = hex
            .iter()
            .copied()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        if digits.len() & 1 == 1 {
            return None;
        }
        return digits
            .chunks_exact(2)
            .map(|p| Some((hex_val(p[0])? << 4) | hex_val(p[1])?))
            .collect();
    }
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while let Some(&c) = v.get(i) {
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        match v.get(i + 1..i + 4) {
            _ if v.get(i + 1) == Some(&b'\\') => {
                out.push(b'\\');
                i += 2;
            }
            Some([a @ b'0'..=b'3', b2 @ b'0'..=b'7', c2 @ b'0'..=b'7']) => {
                out.push(((a - b'0') << 6) | ((b2 - b'0') << 3) | (c2 - b'0'));
                i += 4;
            }
            _ => return None,
        }
    }
    Some(out)
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn decode_binary(oid: u32, v: &[u8], cs: Charset, b: Bounds) -> Decoded {
    let mut r = Reader::new(v);
    let undecodable = (ParamValue::Undecodable, false);
    let v_out = match oid {
        // boolsend: one byte, 1 or 0.
        oid::BOOL => match v {
            [x] => ParamValue::Bool(*x != 0),
            _ => return undecodable,
        },
        oid::INT2 => match r.i16() {
            Some(n) if r.is_empty() => ParamValue::Int(n as i64),
            _ => return undecodable,
        },
        oid::INT4 => match r.i32() {
            Some(n) if r.is_empty() => ParamValue::Int(n as i64),
            _ => return undecodable,
        },
        oid::OID => match r.u32() {
            Some(n) if r.is_empty() => ParamValue::Int(n as i64),
            _ => return undecodable,
        },
        oid::INT8 => match r.i64() {
            Some(n) if r.is_empty() => ParamValue::Int(n),
            _ => return undecodable,
        },
        // money: int8 cents (the locale's fraction digits are not known here).
        oid::MONEY => match r.i64() {
            Some(n) if r.is_empty() => ParamValue::Int(n),
            _ => return undecodable,
        },
        oid::FLOAT4 => match r.u32() {
            Some(bits) if r.is_empty() => {
                let f = f32::from_bits(bits);
                if f.is_finite() {
                    // Widen through the shortest decimal form: 2.71f32 → 2.71, not 2.7100000381.
                    ParamValue::Float(f.to_string().parse::<f64>().unwrap_or(f as f64))
                } else {
                    ParamValue::Text(non_finite(f as f64))
                }
            }
            _ => return undecodable,
        },
        oid::FLOAT8 => match r.i64() {
            Some(bits) if r.is_empty() => {
                let f = f64::from_bits(bits as u64);
                if f.is_finite() {
                    ParamValue::Float(f)
                } else {
                    ParamValue::Text(non_finite(f))
                }
            }
            _ => return undecodable,
        },
        oid::NUMERIC => {
            return match numeric(v, b.max_len) {
                Some((s, cut)) => (ParamValue::Text(s), cut),
                None => undecodable,
            }
        }
        // textsend / varcharsend / bpcharsend / namesend / json_send / xml_send: the bytes of
        // the text in the client encoding.
        oid::TEXT
        | oid::VARCHAR
        | oid::BPCHAR
        | oid::NAME
        | oid::JSON
        | oid::XML
        | oid::UNKNOWN
        | oid::CHAR => return text(v, cs, b),
        // jsonb_send: "a version number byte (1), then the text".
        oid::JSONB => match v.split_first() {
            Some((1, t)) => return text(t, cs, b),
            _ => return bytes(v, b),
        },
        oid::BYTEA => return bytes(v, b),
        oid::DATE => match r.i32() {
            Some(d) if r.is_empty() => ParamValue::Text(date(d)),
            _ => return undecodable,
        },
        oid::TIME => match r.i64() {
            Some(us) if r.is_empty() && (0..=86_400_000_000).contains(&us) => {
                let mut s = String::with_capacity(15);
                time_of_day(&mut s, us);
                ParamValue::Text(s)
            }
            _ => return undecodable,
        },
        // timetz_send: Int64 microseconds, then Int32 zone offset in seconds *west* of UTC.
        oid::TIMETZ => match (r.i64(), r.i32()) {
            (Some(us), Some(zone)) if r.is_empty() && (0..=86_400_000_000).contains(&us) => {
                let mut s = String::with_capacity(21);
                time_of_day(&mut s, us);
                utc_offset(&mut s, -(zone as i64));
                ParamValue::Text(s)
            }
            _ => return undecodable,
        },
        oid::TIMESTAMP | oid::TIMESTAMPTZ => match r.i64() {
            Some(us) if r.is_empty() => {
                let mut s = timestamp(us);
                if oid == oid::TIMESTAMPTZ && us != i64::MAX && us != i64::MIN {
                    s.push_str("+00");
                }
                ParamValue::Text(s)
            }
            _ => return undecodable,
        },
        // interval_send: Int64 microseconds, Int32 days, Int32 months.
        oid::INTERVAL => match (r.i64(), r.i32(), r.i32()) {
            (Some(us), Some(days), Some(months)) if r.is_empty() => {
                ParamValue::Text(interval(us, days, months))
            }
            _ => return undecodable,
        },
        oid::UUID => match v.len() {
            16 => {
                let mut s = String::with_capacity(36);
                for (i, x) in v.iter().enumerate() {
                    if matches!(i, 4 | 6 | 8 | 10) {
                        s.push('-');
                    }
                    let _ = write!(s, "{x:02x}");
                }
                ParamValue::Text(s)
            }
            _ => return undecodable,
        },
        oid::INET | oid::CIDR => match inet(v) {
            Some(s) => ParamValue::Text(s),
            None => return undecodable,
        },
        _ => return bytes(v, b),
    };
    (v_out, false)
}

fn non_finite(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f > 0.0 {
        "Infinity".into()
    } else {
        "-Infinity".into()
    }
}

/// Characters of NUMERIC text kept per byte of its binary form. A digit group is 2 bytes for
/// 4 digits; the rest is the header's 8 bytes and the zeros its weight implies, so 16 keeps
/// every number of up to 10^159 with one significant group (160 characters from 10 bytes) and
/// bounds what a crafted weight can amplify.
const NUMERIC_TEXT_PER_WIRE_BYTE: usize = 16;

/// numeric_send: "Int16 ndigits, Int16 weight, Int16 sign, Int16 dscale, then ndigits base-10000
/// digits"; the value is Σ digit[i] · 10000^(weight − i); sign 0x0000 positive, 0x4000
/// negative, 0xC000 NaN, 0xD000 +Infinity, 0xF000 −Infinity; dscale digits after the point.
/// Returns the text and whether it was cut (see below).
fn numeric(v: &[u8], max_len: usize) -> Option<(String, bool)> {
    let mut r = Reader::new(v);
    let ndigits = r.count16()?;
    let weight = r.i16()? as i32;
    let sign = r.i16()? as u16;
    let dscale = r.count16()?;
    // NUMERIC_MAX_DISPLAY_SCALE is 1000; more is not a value the server sends.
    if dscale > 1000 || ndigits > 10_000 || r.remaining() != ndigits * 2 {
        return None;
    }
    match sign {
        0xC000 => return Some(("NaN".into(), false)),
        0xD000 => return Some(("Infinity".into(), false)),
        0xF000 => return Some(("-Infinity".into(), false)),
        0x0000 | 0x4000 => {}
        _ => return None,
    }
    let mut digits = Vec::with_capacity(ndigits);
    for _ in 0..ndigits {
        let d = r.i16()?;
        if !(0..10_000).contains(&d) {
            return None;
        }
        digits.push(d as u64);
    }
    let digit = |i: i32| -> u64 {
        usize::try_from(i)
            .ok()
            .and_then(|i| digits.get(i).copied())
            .unwrap_or(0)
    };
    // The text is cut like any other value at `max_len`, and also at NUMERIC_TEXT_PER_WIRE_BYTE
    // characters per byte of the value: a weight of up to 32767 is a valid NUMERIC (131 072
    // digits before the point) in as little as 10 bytes, and an array may hold a thousand of
    // them, so the bound on one value alone let a 1 MiB Bind become gigabytes of text.
    let max_len = max_len.min(v.len().saturating_mul(NUMERIC_TEXT_PER_WIRE_BYTE));
    let mut s = String::with_capacity((ndigits * 4 + dscale + 3).min(max_len + 4));
    if sign == 0x4000 {
        s.push('-');
    }
    // Integer part: base-10000 groups at positions 0..=weight.
    if weight < 0 {
        s.push('0');
    } else {
        for i in 0..=weight {
            if s.len() > max_len {
                break;
            }
            push_padded(&mut s, digit(i), if i == 0 { 1 } else { 4 });
        }
    }
    if dscale > 0 && s.len() <= max_len {
        s.push('.');
        let end = s.len() + dscale;
        let mut i = weight + 1;
        while s.len() < end && s.len() <= max_len {
            push_padded(&mut s, digit(i), 4);
            i += 1;
        }
        s.truncate(end);
    }
    // ASCII only: any byte is a character boundary.
    let cut = s.len() > max_len;
    s.truncate(max_len);
    Some((s, cut))
}

/// Days from 1970-01-01 to 2000-01-01, PostgreSQL's date and timestamp epoch.
const PG_EPOCH_DAYS: i64 = 10_957;

/// date_send: Int32 days since 2000-01-01; `i32::MIN` / `i32::MAX` are -infinity / infinity.
/// Years before 1 are written "BC" as PostgreSQL does (year 0 is 1 BC).
fn date(d: i32) -> String {
    match d {
        i32::MAX => return "infinity".into(),
        i32::MIN => return "-infinity".into(),
        _ => {}
    }
    let mut s = String::with_capacity(14);
    if push_date(&mut s, d as i64 + PG_EPOCH_DAYS) {
        s.push_str(" BC");
    }
    s
}

fn push_date(s: &mut String, days_since_1970: i64) -> bool {
    let (y, m, d) = dbtap_core::time::civil_from_days(days_since_1970);
    let bc = y <= 0;
    let y = if bc { 1 - y } else { y };
    push_ymd(s, y.unsigned_abs(), m.into(), d.into());
    bc
}

/// `HH:MM:SS[.ffffff]` with trailing fraction zeros dropped, as PostgreSQL prints times.
fn time_of_day(s: &mut String, us: i64) {
    // Every caller passes a time of day (0 to 24:00:00).
    let secs = us.unsigned_abs() / 1_000_000;
    push_hms(s, secs / 3600, secs / 60 % 60, secs % 60);
    push_fraction(s, us.unsigned_abs() % 1_000_000);
}

/// `.ffffff` of `frac` microseconds with trailing zeros dropped; nothing for 0.
fn push_fraction(s: &mut String, frac: u64) {
    if frac != 0 {
        s.push('.');
        push_padded(s, frac, 6);
        // frac is not 0: a non-zero digit stops this before the point.
        while s.ends_with('0') {
            s.pop();
        }
    }
}

/// `+HH[:MM[:SS]]` for an offset in seconds east of UTC.
fn utc_offset(s: &mut String, east: i64) {
    s.push(if east < 0 { '-' } else { '+' });
    let a = east.unsigned_abs();
    push_padded(s, a / 3600, 2);
    if !a.is_multiple_of(3600) {
        s.push(':');
        push_padded(s, a / 60 % 60, 2);
        if !a.is_multiple_of(60) {
            s.push(':');
            push_padded(s, a % 60, 2);
        }
    }
}

/// timestamp_send: Int64 microseconds since 2000-01-01 00:00:00; `i64::MAX` / `i64::MIN` are
/// infinity / -infinity.
fn timestamp(us: i64) -> String {
    match us {
        i64::MAX => return "infinity".into(),
        i64::MIN => return "-infinity".into(),
        _ => {}
    }
    let days = us.div_euclid(86_400_000_000);
    let tod = us.rem_euclid(86_400_000_000);
    let mut s = String::with_capacity(32);
    let bc = push_date(&mut s, days + PG_EPOCH_DAYS);
    s.push(' ');
    time_of_day(&mut s, tod);
    if bc {
        s.push_str(" BC");
    }
    s
}

/// An interval in PostgreSQL's default `postgres` output style: "1 year 2 mons 3 days
/// 04:05:06.5"; a field after a negative one gets an explicit `+` when positive.
fn interval(us: i64, days: i32, months: i32) -> String {
    let mut s = String::new();
    let mut negative_before = false;
    let mut field = |s: &mut String, v: i64, unit: &str| {
        if v == 0 {
            return;
        }
        if !s.is_empty() {
            s.push(' ');
        }
        let plus = if negative_before && v > 0 { "+" } else { "" };
        let plural = if v == 1 { "" } else { "s" };
        let _ = write!(s, "{plus}{v} {unit}{plural}");
        negative_before = v < 0;
    };
    field(&mut s, (months / 12) as i64, "year");
    field(&mut s, (months % 12) as i64, "mon");
    field(&mut s, days as i64, "day");
    if us != 0 || s.is_empty() {
        if !s.is_empty() {
            s.push(' ');
        }
        if us < 0 {
            s.push('-');
        } else if negative_before {
            s.push('+');
        }
        let a = us.unsigned_abs();
        let secs = a / 1_000_000;
        push_hms(&mut s, secs / 3600, secs / 60 % 60, secs % 60);
        push_fraction(&mut s, a % 1_000_000);
    }
    s
}

/// inet_send / cidr_send: family (2 = IPv4, 3 = IPv6), bits, is_cidr, address length, address.
/// Written as PostgreSQL prints them: the prefix length is shown for cidr always and for inet
/// when it is not the full address width.
fn inet(v: &[u8]) -> Option<String> {
    let (&family, rest) = v.split_first()?;
    let [bits, is_cidr, nb, addr @ ..] = rest else {
        return None;
    };
    let (s, width) = match (family, *nb as usize, addr.len()) {
        (2, 4, 4) => (
            std::net::Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]).to_string(),
            32,
        ),
        (3, 16, 16) => {
            let mut a = [0u8; 16];
            a.copy_from_slice(addr);
            (std::net::Ipv6Addr::from(a).to_string(), 128)
        }
        _ => return None,
    };
    if *bits > width {
        return None;
    }
    Some(if *is_cidr != 0 || *bits != width {
        format!("{s}/{bits}")
    } else {
        s
    })
}

/// array_send: "Int32 ndim, Int32 has-nulls flag, Int32 element OID, then per dimension Int32
/// size and Int32 lower bound, then per element Int32 length (-1 = NULL) and the bytes".
/// One dimension → `Array`; none → an empty `Array`; more → the PostgreSQL text form.
fn binary_array(elem: u32, v: &[u8], cs: Charset, b: Bounds) -> Decoded {
    let mut r = Reader::new(v);
    let head = (|| {
        let ndim = r.i32()?;
        let _flags = r.i32()?;
        let elem_oid = r.u32()?;
        if !(0..=6).contains(&ndim) {
            return None;
        }
        let mut dims = [0usize; 6];
        let mut total = 1usize;
        for d in dims.iter_mut().take(ndim as usize) {
            *d = usize::try_from(r.i32()?).ok()?;
            r.i32()?;
            total = total.checked_mul(*d)?;
        }
        Some((
            ndim as usize,
            dims,
            elem_oid,
            if ndim == 0 { 0 } else { total },
        ))
    })();
    let Some((ndim, dims, elem_oid, total)) = head else {
        return (ParamValue::Undecodable, false);
    };
    if total == 0 {
        // No dimension at all, or one of size 0: the array has no elements, whatever the other
        // dimensions say (walking those would cost up to 2^31 steps per dimension for nothing).
        return (ParamValue::Array(Vec::new()), false);
    }
    // The element OID on the wire wins when it is one decoded here.
    let elem = if known_scalar(elem_oid) {
        elem_oid
    } else {
        elem
    };
    let mut items = Vec::with_capacity(total.min(b.max_elements));
    let mut cut = false;
    for _ in 0..total {
        if items.len() == b.max_elements {
            cut = true;
            break;
        }
        let item = match r.i32() {
            Some(-1) => ParamValue::Null,
            Some(n) if n >= 0 => match r.take(n as usize) {
                Some(x) => {
                    let (val, c) = decode_binary(elem, x, cs, b);
                    cut |= c;
                    val
                }
                None => return (ParamValue::Undecodable, false),
            },
            _ => return (ParamValue::Undecodable, false),
        };
        items.push(item);
    }
    if ndim <= 1 || cut {
        if ndim > 1 {
            // A cut multi-dimensional array keeps its elements flat.
            return (ParamValue::Array(items), true);
        }
        return (ParamValue::Array(items), cut);
    }
    let mut s = String::new();
    nested_text(&mut s, &items, dims.get(..ndim).unwrap_or_default());
    (ParamValue::Text(s), false)
}

/// `{{1,2},{3,4}}` for elements laid out in `dims` (row-major).
fn nested_text(s: &mut String, items: &[ParamValue], dims: &[usize]) {
    s.push('{');
    match dims {
        [] => {}
        [_] => {
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                element_text(s, v);
            }
        }
        [n, rest @ ..] => {
            // Never more than the element count (checked when the dimensions were read).
            let step = rest.iter().fold(1usize, |a, &d| a.saturating_mul(d)).max(1);
            for i in 0..*n {
                if i > 0 {
                    s.push(',');
                }
                let part = items.get(i * step..(i + 1) * step).unwrap_or_default();
                nested_text(s, part, rest);
            }
        }
    }
    s.push('}');
}

fn element_text(s: &mut String, v: &ParamValue) {
    match v {
        ParamValue::Null => s.push_str("NULL"),
        ParamValue::Bool(x) => s.push(if *x { 't' } else { 'f' }),
        ParamValue::Int(n) => {
            let _ = write!(s, "{n}");
        }
        ParamValue::UInt(n) => {
            let _ = write!(s, "{n}");
        }
        ParamValue::Float(f) => {
            let _ = write!(s, "{f}");
        }
        ParamValue::Text(t) => {
            s.push('"');
            for c in t.chars() {
                if c == '"' || c == '\\' {
                    s.push('\\');
                }
                s.push(c);
            }
            s.push('"');
        }
        ParamValue::Bytes(x) => {
            s.push_str("\"\\\\x");
            for b in x {
                let _ = write!(s, "{b:02x}");
            }
            s.push('"');
        }
        ParamValue::Array(_)
        | ParamValue::LongData { .. }
        | ParamValue::Undecodable
        | ParamValue::Encrypted(_)
        | ParamValue::Table { .. }
        | ParamValue::Default => s.push_str("NULL"),
    }
}

/// The text form of a one-dimensional array, `{a,"b c",NULL}`: elements separated by `,`,
/// optionally double-quoted (with `\` escapes inside quotes), `NULL` unquoted for a null.
/// `None` for anything else (nested braces, a `[1:3]=` dimension decoration): kept as text.
fn text_array(elem: u32, v: &[u8], cs: Charset, b: Bounds) -> Option<Decoded> {
    let inner = v.trim_ascii().strip_prefix(b"{")?.strip_suffix(b"}")?;
    let mut items = Vec::new();
    let mut cut = false;
    if inner.trim_ascii().is_empty() {
        return Some((ParamValue::Array(items), false));
    }
    let mut i = 0usize;
    let mut buf = Vec::new();
    loop {
        // One element.
        while inner.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        buf.clear();
        let quoted = inner.get(i) == Some(&b'"');
        if quoted {
            i += 1;
            loop {
                match inner.get(i)? {
                    b'"' => {
                        i += 1;
                        break;
                    }
                    b'\\' => {
                        buf.push(*inner.get(i + 1)?);
                        i += 2;
                    }
                    &c => {
                        buf.push(c);
                        i += 1;
                    }
                }
            }
            while inner.get(i).is_some_and(u8::is_ascii_whitespace) {
                i += 1;
            }
        } else {
            while let Some(&c) = inner.get(i) {
                match c {
                    b',' => break,
                    b'{' | b'}' | b'"' => return None,
                    b'\\' => {
                        buf.push(*inner.get(i + 1)?);
                        i += 2;
                    }
                    _ => {
                        buf.push(c);
                        i += 1;
                    }
                }
            }
            let t = buf.trim_ascii_end().len();
            buf.truncate(t);
        }
        if items.len() == b.max_elements {
            cut = true;
        } else if !quoted && buf.eq_ignore_ascii_case(b"NULL") {
            items.push(ParamValue::Null);
        } else {
            let (val, c) = decode_text(elem, &buf, cs, b);
            cut |= c;
            items.push(val);
        }
        match inner.get(i) {
            None => break,
            Some(b',') => i += 1,
            Some(_) => return None,
        }
    }
    Some((ParamValue::Array(items), cut))
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Bounds = Bounds {
        max_len: 4096,
        max_elements: 1024,
    };

    fn bin(oid: u32, v: &[u8]) -> ParamValue {
        decode(oid, true, v, Charset::Utf8, B).0
    }
    fn txt(oid: u32, v: &[u8]) -> ParamValue {
        decode(oid, false, v, Charset::Utf8, B).0
    }
    fn t(s: &str) -> ParamValue {
        ParamValue::Text(s.into())
    }

    #[test]
    fn names() {
        assert_eq!(type_name(23), "int4");
        assert_eq!(type_name(1007), "_int4");
        assert_eq!(type_name(0), "unknown");
        assert_eq!(type_name(99999), "oid:99999");
    }

    #[test]
    fn integers_and_floats() {
        assert_eq!(bin(oid::INT4, &[0, 0, 1, 0]), ParamValue::Int(256));
        assert_eq!(bin(oid::INT2, &[0xff, 0xfe]), ParamValue::Int(-2));
        assert_eq!(
            bin(oid::INT8, &[0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            ParamValue::Int(i64::MAX)
        );
        assert_eq!(bin(oid::INT4, &[0, 1]), ParamValue::Undecodable);
        assert_eq!(bin(oid::BOOL, &[1]), ParamValue::Bool(true));
        // 2.71f32 = 0x402D70A4.
        assert_eq!(
            bin(oid::FLOAT4, &[0x40, 0x2d, 0x70, 0xa4]),
            ParamValue::Float(2.71)
        );
        // 1.5f64 = 0x3FF8000000000000.
        assert_eq!(
            bin(oid::FLOAT8, &[0x3f, 0xf8, 0, 0, 0, 0, 0, 0]),
            ParamValue::Float(1.5)
        );
        assert_eq!(bin(oid::FLOAT8, &[0x7f, 0xf8, 0, 0, 0, 0, 0, 0]), t("NaN"));
        assert_eq!(txt(oid::INT4, b"42"), ParamValue::Int(42));
        assert_eq!(txt(oid::INT4, b"4x"), t("4x"));
        assert_eq!(txt(oid::FLOAT8, b"Infinity"), t("Infinity"));
        assert_eq!(txt(oid::BOOL, b"t"), ParamValue::Bool(true));
        assert_eq!(txt(0, b"abc"), t("abc"));
    }

    #[test]
    fn numeric_binary() {
        // 12345.678: ndigits 3, weight 1, sign +, dscale 3, digits 1 2345 6780.
        let v = [0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1a, 0x7c];
        assert_eq!(bin(oid::NUMERIC, &v), t("12345.678"));
        // -0.05: ndigits 1, weight -1, sign 0x4000, dscale 2, digit 500.
        let v = [0, 1, 0xff, 0xff, 0x40, 0, 0, 2, 0x01, 0xf4];
        assert_eq!(bin(oid::NUMERIC, &v), t("-0.05"));
        // 0 with dscale 0: ndigits 0.
        assert_eq!(bin(oid::NUMERIC, &[0, 0, 0, 0, 0, 0, 0, 0]), t("0"));
        // NaN.
        assert_eq!(bin(oid::NUMERIC, &[0, 0, 0, 0, 0xc0, 0, 0, 0]), t("NaN"));
        // 10000000 (weight 1, digits 1000 0 → trailing zero digit omitted: ndigits 1).
        assert_eq!(
            bin(oid::NUMERIC, &[0, 1, 0, 1, 0, 0, 0, 0, 0x03, 0xe8]),
            t("10000000")
        );
        // Digit out of range.
        assert_eq!(
            bin(oid::NUMERIC, &[0, 1, 0, 0, 0, 0, 0, 0, 0x27, 0x10]),
            ParamValue::Undecodable
        );
    }

    #[test]
    fn dates_and_times() {
        // 2024-02-29 is 8825 days after 2000-01-01.
        assert_eq!(bin(oid::DATE, &8825i32.to_be_bytes()), t("2024-02-29"));
        assert_eq!(bin(oid::DATE, &(-1i32).to_be_bytes()), t("1999-12-31"));
        assert_eq!(bin(oid::DATE, &i32::MAX.to_be_bytes()), t("infinity"));
        // 0001-01-01 BC is day -730485 (year 0 of the proleptic calendar).
        assert_eq!(
            bin(oid::DATE, &(-730_485i32).to_be_bytes()),
            t("0001-01-01 BC")
        );
        // 13:14:15.5
        let us: i64 = (13 * 3600 + 14 * 60 + 15) * 1_000_000 + 500_000;
        assert_eq!(bin(oid::TIME, &us.to_be_bytes()), t("13:14:15.5"));
        // timetz 13:14:15.5, zone -3600 (one hour *east* of UTC) → +01.
        let mut v = us.to_be_bytes().to_vec();
        v.extend_from_slice(&(-3600i32).to_be_bytes());
        assert_eq!(bin(oid::TIMETZ, &v), t("13:14:15.5+01"));
        // Zones with minutes (India, +05:30), with seconds (a historical LMT, +05:30:15), and
        // west of UTC (Newfoundland, -03:30): minutes appear when minutes or seconds do.
        for (west, shown) in [
            (-19_800i32, "13:14:15.5+05:30"),
            (-19_815, "13:14:15.5+05:30:15"),
            (12_600, "13:14:15.5-03:30"),
            (-3_615, "13:14:15.5+01:00:15"),
        ] {
            let mut v = us.to_be_bytes().to_vec();
            v.extend_from_slice(&west.to_be_bytes());
            assert_eq!(bin(oid::TIMETZ, &v), t(shown));
        }
        // timestamp 2024-02-29 13:14:15.5.
        let ts = 8825i64 * 86_400_000_000 + us;
        assert_eq!(
            bin(oid::TIMESTAMP, &ts.to_be_bytes()),
            t("2024-02-29 13:14:15.5")
        );
        assert_eq!(
            bin(oid::TIMESTAMPTZ, &ts.to_be_bytes()),
            t("2024-02-29 13:14:15.5+00")
        );
        assert_eq!(
            bin(oid::TIMESTAMP, &(-1i64).to_be_bytes()),
            t("1999-12-31 23:59:59.999999")
        );
        assert_eq!(bin(oid::TIMESTAMP, &i64::MIN.to_be_bytes()), t("-infinity"));
    }

    #[test]
    fn intervals() {
        let iv = |us: i64, d: i32, m: i32| {
            let mut v = us.to_be_bytes().to_vec();
            v.extend_from_slice(&d.to_be_bytes());
            v.extend_from_slice(&m.to_be_bytes());
            bin(oid::INTERVAL, &v)
        };
        assert_eq!(
            iv(14_706_500_000, 3, 14),
            t("1 year 2 mons 3 days 04:05:06.5")
        );
        assert_eq!(iv(0, 0, 0), t("00:00:00"));
        assert_eq!(iv(7_200_000_000, -1, 0), t("-1 days +02:00:00"));
        assert_eq!(iv(0, 1, -12), t("-1 years +1 day"));
    }

    #[test]
    fn uuid_inet_json_bytea() {
        let u: Vec<u8> = (0u8..16).collect();
        assert_eq!(
            bin(oid::UUID, &u),
            t("00010203-0405-0607-0809-0a0b0c0d0e0f")
        );
        assert_eq!(bin(oid::INET, &[2, 32, 0, 4, 10, 0, 0, 1]), t("10.0.0.1"));
        assert_eq!(
            bin(oid::INET, &[2, 24, 0, 4, 10, 0, 0, 1]),
            t("10.0.0.1/24")
        );
        assert_eq!(
            bin(oid::CIDR, &[2, 24, 1, 4, 10, 0, 0, 0]),
            t("10.0.0.0/24")
        );
        let mut v6 = vec![3, 128, 0, 16];
        v6.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(bin(oid::INET, &v6), t("2001:db8::1"));
        assert_eq!(bin(oid::JSONB, b"\x01{\"a\":1}"), t("{\"a\":1}"));
        assert_eq!(bin(oid::JSON, b"[1]"), t("[1]"));
        assert_eq!(
            bin(oid::BYTEA, b"\x00\xff"),
            ParamValue::Bytes(vec![0, 255])
        );
        assert_eq!(txt(oid::BYTEA, b"\\x00ff"), ParamValue::Bytes(vec![0, 255]));
        assert_eq!(
            txt(oid::BYTEA, b"a\\\\b\\001"),
            ParamValue::Bytes(b"a\\b\x01".to_vec())
        );
        assert_eq!(bin(99999, b"\x01\x02"), ParamValue::Bytes(vec![1, 2]));
    }

    #[test]
    fn arrays() {
        // _int4 binary: ndim 1, flags 1, elem 23, size 3 lbound 1, elements 1, NULL, 3.
        let mut v = Vec::new();
        for x in [1i32, 1, 23, 3, 1, 4, 1, -1, 4, 3] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        assert_eq!(
            bin(1007, &v),
            ParamValue::Array(vec![
                ParamValue::Int(1),
                ParamValue::Null,
                ParamValue::Int(3)
            ])
        );
        // Two dimensions 2x2 of int4 → text form.
        let mut v = Vec::new();
        for x in [2i32, 0, 23, 2, 1, 2, 1, 4, 1, 4, 2, 4, 3, 4, 4] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        assert_eq!(bin(1007, &v), t("{{1,2},{3,4}}"));
        // Empty array: ndim 0.
        let v = [0u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 23];
        assert_eq!(bin(1007, &v), ParamValue::Array(vec![]));
        // Text form.
        assert_eq!(
            txt(1009, br#"{a,"b c",NULL,"NULL","q\"x"}"#),
            ParamValue::Array(vec![
                t("a"),
                t("b c"),
                ParamValue::Null,
                t("NULL"),
                t("q\"x")
            ])
        );
        assert_eq!(
            txt(1007, b"{1, 2}"),
            ParamValue::Array(vec![ParamValue::Int(1), ParamValue::Int(2)])
        );
        assert_eq!(txt(1007, b"{{1},{2}}"), t("{{1},{2}}"));
        assert_eq!(txt(1007, b"{}"), ParamValue::Array(vec![]));
        // Malformed binary.
        assert_eq!(bin(1007, &[0, 0, 0, 1]), ParamValue::Undecodable);
    }

    #[test]
    fn arrays_with_a_zero_dimension_are_empty() {
        // ndim 2 of sizes 2^31-1 and 0, no elements: empty, without walking the first
        // dimension; ndim 4 of sizes 0 and three times 2^31-1: empty, without multiplying the
        // others (their product overflows 64 bits).
        for dims in [&[i32::MAX, 0][..], &[0, i32::MAX, i32::MAX, i32::MAX]] {
            let mut v = Vec::new();
            for x in [dims.len() as i32, 0, 23] {
                v.extend_from_slice(&x.to_be_bytes());
            }
            for &d in dims {
                v.extend_from_slice(&d.to_be_bytes());
                v.extend_from_slice(&1i32.to_be_bytes());
            }
            assert_eq!(bin(1007, &v), ParamValue::Array(vec![]), "{dims:?}");
        }
    }

    #[test]
    fn numeric_text_is_cut_at_its_bounds() {
        // 10^131068: ndigits 1, weight 32767 (the largest), sign +, dscale 0, digit 1. Ten
        // bytes of wire would be 131 069 characters of text: cut at 16 characters per wire
        // byte, and flagged.
        let v = [0, 1, 0x7f, 0xff, 0, 0, 0, 0, 0, 1];
        let (value, cut) = decode(oid::NUMERIC, true, &v, Charset::Utf8, B);
        assert_eq!(value, t(&format!("1{}", "0".repeat(159))));
        assert!(cut);
        // 10^156 (weight 39) is 157 characters: whole.
        let v = [0, 1, 0, 39, 0, 0, 0, 0, 0, 1];
        let (value, cut) = decode(oid::NUMERIC, true, &v, Charset::Utf8, B);
        assert_eq!(value, t(&format!("1{}", "0".repeat(156))));
        assert!(!cut);
        // A short bound cuts the fraction too: 12345.678 in 7 bytes.
        let v = [0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1a, 0x7c];
        let short = Bounds {
            max_len: 7,
            max_elements: 2,
        };
        assert_eq!(
            decode(oid::NUMERIC, true, &v, Charset::Utf8, short),
            (t("12345.6"), true)
        );
        assert_eq!(
            decode(oid::NUMERIC, true, &v, Charset::Utf8, B),
            (t("12345.678"), false)
        );
    }

    #[test]
    fn bounds() {
        let b = Bounds {
            max_len: 3,
            max_elements: 2,
        };
        assert_eq!(
            decode(oid::TEXT, false, b"abcdef", Charset::Utf8, b),
            (t("abc"), true)
        );
        assert_eq!(
            decode(oid::BYTEA, true, b"abcdef", Charset::Utf8, b),
            (ParamValue::Bytes(b"abc".to_vec()), true)
        );
        assert_eq!(
            decode(1007, false, b"{1,2,3}", Charset::Utf8, b),
            (
                ParamValue::Array(vec![ParamValue::Int(1), ParamValue::Int(2)]),
                true
            )
        );
        // A huge declared element count does not allocate.
        let mut v = Vec::new();
        for x in [1i32, 0, 23, i32::MAX, 1] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        assert_eq!(
            decode(1007, true, &v, Charset::Utf8, b).0,
            ParamValue::Undecodable
        );
    }
}
