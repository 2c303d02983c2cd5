//! A small JSON writer for records: the hot path of every replay writes one object per database
//! operation, so it appends straight into a reused buffer with no intermediate values, and
//! copies runs of text that need no escaping eight bytes at a time.

/// Appends JSON tokens to a byte buffer. The caller keeps the structure well-formed (objects
/// and arrays are written by the record code, which is small and tested).
pub struct JsonOut<'a> {
    buf: &'a mut Vec<u8>,
    /// A value was written at the current nesting level: the next one needs a comma.
    need_comma: bool,
}

impl<'a> JsonOut<'a> {
    /// Write into `buf` (appending).
    pub fn new(buf: &'a mut Vec<u8>) -> Self {
        JsonOut {
            buf,
            need_comma: false,
        }
    }

    #[inline]
    fn sep(&mut self) {
        if self.need_comma {
            self.buf.push(b',');
        }
        self.need_comma = true;
    }

    /// `{`
    #[inline]
    pub fn begin_object(&mut self) {
        self.sep();
        self.buf.push(b'{');
        self.need_comma = false;
    }

    /// `}`
    #[inline]
    pub fn end_object(&mut self) {
        self.buf.push(b'}');
        self.need_comma = true;
    }

    /// `[`
    #[inline]
    pub fn begin_array(&mut self) {
        self.sep();
        self.buf.push(b'[');
        self.need_comma = false;
    }

    /// `]`
    #[inline]
    pub fn end_array(&mut self) {
        self.buf.push(b']');
        self.need_comma = true;
    }

    /// An object key from the wire (escaped; the value follows).
    pub fn key(&mut self, k: &str) {
        self.sep();
        write_str(self.buf, k);
        self.buf.push(b':');
        self.need_comma = false;
    }

    /// A fixed field name: plain ASCII known not to need escaping (the value follows).
    #[inline]
    pub fn field(&mut self, name: &'static str) {
        debug_assert!(name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\'));
        self.sep();
        self.buf.push(b'"');
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b"\":");
        self.need_comma = false;
    }

    /// A string value.
    #[inline]
    pub fn str(&mut self, v: &str) {
        self.sep();
        write_str(self.buf, v);
    }

    /// A string value or `null`.
    #[inline]
    pub fn opt_str(&mut self, v: Option<&str>) {
        match v {
            Some(s) => self.str(s),
            None => self.null(),
        }
    }

    /// An unsigned integer.
    #[inline]
    pub fn u64(&mut self, v: u64) {
        self.sep();
        push_u64(self.buf, v);
    }

    /// An unsigned integer or `null`.
    #[inline]
    pub fn opt_u64(&mut self, v: Option<u64>) {
        match v {
            Some(n) => self.u64(n),
            None => self.null(),
        }
    }

    /// A signed integer.
    #[inline]
    pub fn i64(&mut self, v: i64) {
        self.sep();
        if v < 0 {
            self.buf.push(b'-');
        }
        push_u64(self.buf, v.unsigned_abs());
    }

    /// A float; JSON has no NaN or infinity, so those are written as strings.
    pub fn f64(&mut self, v: f64) {
        if v.is_finite() {
            self.sep();
            self.buf
                .extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
        } else {
            self.str(&v.to_string());
        }
    }

    /// `true` / `false`.
    #[inline]
    pub fn bool(&mut self, v: bool) {
        self.sep();
        self.buf
            .extend_from_slice(if v { b"true" } else { b"false" });
    }

    /// `null`.
    #[inline]
    pub fn null(&mut self) {
        self.sep();
        self.buf.extend_from_slice(b"null");
    }

    /// A string of lowercase hex digits for `bytes`.
    pub fn hex(&mut self, bytes: &[u8]) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        self.sep();
        self.buf.reserve(bytes.len() * 2 + 2);
        self.buf.push(b'"');
        for &b in bytes {
            self.buf.push(DIGITS[(b >> 4) as usize]);
            self.buf.push(DIGITS[(b & 0xf) as usize]);
        }
        self.buf.push(b'"');
    }

    /// Literal JSON text that carries its own separators (`,"user":`, `}`): written as it is,
    /// and the value that follows needs no comma.
    #[inline]
    pub fn token(&mut self, literal: &[u8]) {
        self.buf.extend_from_slice(literal);
        self.need_comma = false;
    }

    /// An IP address as a string. IPv4 is written digit by digit: `to_string()` goes through
    /// the formatting machinery (about a thousand instructions), and every connection writes
    /// two addresses when its session starts (a capture of short connections has thousands).
    pub fn ip(&mut self, ip: &std::net::IpAddr) {
        match ip {
            std::net::IpAddr::V4(v4) => {
                self.sep();
                self.buf.push(b'"');
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        self.buf.push(b'.');
                    }
                    self.buf
                        .extend_from_slice(itoa::Buffer::new().format(octet).as_bytes());
                }
                self.buf.push(b'"');
            }
            std::net::IpAddr::V6(_) => self.str(&ip.to_string()),
        }
    }

    /// Pre-formatted ASCII text that needs no escaping (timestamps, hex ids).
    #[inline]
    pub fn raw_str(&mut self, ascii: &[u8]) {
        self.sep();
        self.buf.push(b'"');
        self.buf.extend_from_slice(ascii);
        self.buf.push(b'"');
    }
}

/// The decimal digits of `v`, appended.
///
/// A record has about ten numbers, most of them under 10,000 (ids, row counts, byte counts,
/// latencies). Formatted by `itoa`, each lands right-aligned in its own buffer, a slice of
/// unknown length copied with a call to `memcpy` (about 25 instructions for a few bytes); up to
/// four digits are appended here as one or two pairs from a table, copies of known size.
#[inline]
fn push_u64(buf: &mut Vec<u8>, v: u64) {
    if v < 100 {
        push_pair_or_digit(buf, v);
    } else if v < 10_000 {
        push_pair_or_digit(buf, v / 100);
        buf.extend_from_slice(&DIGIT_PAIRS[(v % 100) as usize]);
    } else {
        push_u64_long(buf, v);
    }
}

/// "00" "01" … "99".
const DIGIT_PAIRS: [[u8; 2]; 100] = {
    let mut t = [[0u8; 2]; 100];
    let mut i = 0;
    while i < 100 {
        t[i] = [b'0' + (i / 10) as u8, b'0' + (i % 10) as u8];
        i += 1;
    }
    t
};

/// `v` < 100, without a leading zero.
#[inline]
fn push_pair_or_digit(buf: &mut Vec<u8>, v: u64) {
    if v < 10 {
        buf.push(b'0' + v as u8);
    } else {
        buf.extend_from_slice(&DIGIT_PAIRS[(v % 100) as usize]);
    }
}

#[inline(never)]
fn push_u64_long(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// True when any byte of the 8 needs escaping: a control character, `"` or `\`.
/// (SWAR: a zero byte of `x ^ c` marks a byte equal to `c`; `x - 0x20` borrows for bytes
/// below 0x20; bytes ≥ 0x80 are UTF-8 and never need escaping, hence `& !x`.)
#[inline]
fn any_special(x: u64) -> bool {
    let quote = x ^ (ONES * b'"' as u64);
    let backslash = x ^ (ONES * b'\\' as u64);
    let control = x.wrapping_sub(ONES * 0x20) & !x;
    let has_quote = quote.wrapping_sub(ONES) & !quote;
    let has_backslash = backslash.wrapping_sub(ONES) & !backslash;
    (control | has_quote | has_backslash) & HIGHS != 0
}

/// Write `s` as a JSON string (quotes included), escaping as RFC 8259 requires.
pub fn write_str(buf: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    buf.reserve(bytes.len() + 2);
    buf.push(b'"');
    // Most text needs no escaping at all. This check has no early exit, so the compiler turns it
    // into a few wide vector operations; then the whole text is copied at once.
    let special = bytes.iter().fold(false, |acc, &b| {
        acc | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if !special {
        buf.extend_from_slice(bytes);
        buf.push(b'"');
        return;
    }
    let mut start = 0; // first byte not yet copied
    let mut i = 0;
    loop {
        // Whole 8-byte words that need no escaping: the common case, no per-byte work.
        while let Some(chunk) = bytes.get(i..i + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            if any_special(u64::from_le_bytes(word)) {
                break;
            }
            i += 8;
        }
        // Byte by byte through the word that holds something to escape, or the short tail.
        let stop = (i + 8).min(bytes.len());
        while i < stop {
            let b = bytes[i];
            let esc: Option<&[u8]> = match b {
                b'"' => Some(b"\\\""),
                b'\\' => Some(b"\\\\"),
                b'\n' => Some(b"\\n"),
                b'\r' => Some(b"\\r"),
                b'\t' => Some(b"\\t"),
                0x08 => Some(b"\\b"),
                0x0c => Some(b"\\f"),
                0..=0x1f => None,
                _ => {
                    i += 1;
                    continue;
                }
            };
            buf.extend_from_slice(&bytes[start..i]);
            match esc {
                Some(e) => buf.extend_from_slice(e),
                None => {
                    const DIGITS: &[u8; 16] = b"0123456789abcdef";
                    buf.extend_from_slice(b"\\u00");
                    buf.push(DIGITS[(b >> 4) as usize]);
                    buf.push(DIGITS[(b & 0xf) as usize]);
                }
            }
            i += 1;
            start = i;
        }
        if i >= bytes.len() {
            break;
        }
    }
    buf.extend_from_slice(&bytes[start..]);
    buf.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(v: &str) -> String {
        let mut b = Vec::new();
        write_str(&mut b, v);
        String::from_utf8(b).unwrap()
    }

    fn int(v: i64) -> String {
        let mut b = b"x".to_vec();
        JsonOut::new(&mut b).i64(v);
        String::from_utf8(b).unwrap()
    }

    fn uint(v: u64) -> String {
        let mut b = b"x".to_vec();
        JsonOut::new(&mut b).u64(v);
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn integers_are_written_as_their_display_at_every_length() {
        let mut edges = vec![0u64, 1, 9, 10, 11, 99, 100, 101, u64::MAX, u64::MAX - 1];
        let mut p = 1u64;
        while let Some(next) = p.checked_mul(10) {
            edges.extend([p - 1, p, p + 1, next - 1]);
            p = next;
        }
        edges.extend(0..=1000);
        for v in edges {
            assert_eq!(uint(v), format!("x{v}"));
            if let Ok(i) = i64::try_from(v) {
                assert_eq!(int(i), format!("x{i}"));
                assert_eq!(int(-i), format!("x{}", -i));
            }
        }
        assert_eq!(int(i64::MIN), format!("x{}", i64::MIN));
        // After other text, with the buffer's spare room left as it was found.
        let mut b = Vec::with_capacity(64);
        b.extend_from_slice(b"[1");
        push_u64(&mut b, 42);
        b.push(b']');
        assert_eq!(b, b"[142]");
    }

    proptest! {
        #[test]
        fn integers_are_written_as_their_display(v: u64, i: i64) {
            prop_assert_eq!(uint(v), format!("x{v}"));
            prop_assert_eq!(int(i), format!("x{i}"));
        }

        #[test]
        fn ip_addresses_are_written_as_their_display(v4: u32, v6: u128, v6_mapped: bool) {
            let v6 = if v6_mapped { u128::from(v4) | 0xffff << 32 } else { v6 };
            for ip in [
                std::net::IpAddr::from(std::net::Ipv4Addr::from(v4)),
                std::net::IpAddr::from(std::net::Ipv6Addr::from(v6)),
            ] {
                let mut b = Vec::new();
                let mut j = JsonOut::new(&mut b);
                j.ip(&ip);
                j.ip(&ip);
                prop_assert_eq!(String::from_utf8(b).unwrap(), format!("\"{ip}\",\"{ip}\""));
            }
        }
    }

    #[test]
    fn escapes_what_rfc_8259_requires() {
        assert_eq!(
            s("plain text, longer than eight bytes"),
            "\"plain text, longer than eight bytes\""
        );
        assert_eq!(
            s("a\"b\\c\nd\te\r\u{1}\u{8}\u{c}"),
            r#""a\"b\\c\nd\te\r\u0001\b\f""#
        );
        assert_eq!(s("患者 'x'"), "\"患者 'x'\"");
        assert_eq!(s(""), "\"\"");
    }

    proptest! {
        #[test]
        fn any_string_round_trips_through_serde_json(v in any::<String>()) {
            let mut b = Vec::new();
            write_str(&mut b, &v);
            let back: String = serde_json::from_slice(&b).unwrap();
            prop_assert_eq!(back, v);
        }
    }

    #[test]
    fn objects_and_arrays() {
        let mut b = Vec::new();
        let mut j = JsonOut::new(&mut b);
        j.begin_object();
        j.key("a");
        j.u64(1);
        j.key("b");
        j.begin_array();
        j.null();
        j.f64(1.5);
        j.f64(f64::INFINITY);
        j.i64(-2);
        j.end_array();
        j.key("c");
        j.hex(&[0, 0xab]);
        j.end_object();
        assert_eq!(
            String::from_utf8(b).unwrap(),
            r#"{"a":1,"b":[null,1.5,"inf",-2],"c":"00ab"}"#
        );
    }
}
