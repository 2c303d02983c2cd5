//! Wire text to UTF-8, losslessly: bytes that do not decode in the session's character set are
//! kept as `\xNN` escapes, never dropped or replaced. Hospital systems in China still run GBK, so
//! the charset matters.

use encoding_rs::{DecoderResult, Encoding, UTF_8};

/// Decode `bytes` from `encoding` into a new UTF-8 string; undecodable bytes become `\xNN`.
pub fn decode(bytes: &[u8], encoding: &'static Encoding) -> String {
    // Fast path, the common case: valid UTF-8 in a UTF-8 session, or plain ASCII in any
    // ASCII-compatible charset (it reads the same in all of them).
    if encoding == UTF_8 || encoding.is_ascii_compatible() {
        if let Ok(s) = std::str::from_utf8(bytes) {
            if encoding == UTF_8 || s.is_ascii() {
                return s.to_owned();
            }
        }
    }
    let mut out = String::with_capacity(bytes.len() + bytes.len() / 2 + 4);

    decode_into(bytes, encoding, &mut out);
    out
}

/// Decode `bytes` from `encoding`, appending to `out`; undecodable bytes become `\xNN`.
pub fn decode_into(bytes: &[u8], encoding: &'static Encoding, out: &mut String) {
    if encoding == UTF_8 {
        decode_utf8_into(bytes, out);
        return;
    }
    // ASCII-compatible fast path: plain ASCII decodes the same in every charset we accept.
    if bytes.is_ascii() && encoding.is_ascii_compatible() {
        // Safe to append directly: ASCII is valid UTF-8.
        out.push_str(std::str::from_utf8(bytes).unwrap_or_default());
        return;
    }
    let mut decoder = encoding.new_decoder_without_bom_handling();
    let mut src = bytes;
    loop {
        let needed = decoder
            .max_utf8_buffer_length_without_replacement(src.len())
            .unwrap_or(src.len().saturating_mul(3).saturating_add(16));
        out.reserve(needed);
        let (result, read) = decoder.decode_to_string_without_replacement(src, out, true);
        match result {
            DecoderResult::InputEmpty => return,
            DecoderResult::OutputFull => src = src.get(read..).unwrap_or_default(),
            DecoderResult::Malformed(bad, extra) => {
                // `bad` malformed bytes end `extra` bytes before the read position; the `extra`
                // bytes were consumed but not emitted, so decode them again after the escape.
                let end = read.saturating_sub(extra as usize);
                let start = end.saturating_sub(bad as usize);
                for &b in src.get(start..end).unwrap_or_default() {
                    push_escape(out, b);
                }
                src = src.get(end..).unwrap_or_default();
                decoder = encoding.new_decoder_without_bom_handling();
            }
        }
    }
}

/// Decode UTF-8, escaping invalid bytes as `\xNN`.
pub fn decode_utf8_into(bytes: &[u8], out: &mut String) {
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for &b in chunk.invalid() {
            push_escape(out, b);
        }
    }
}

/// Decode UTF-8 into a new string, escaping invalid bytes as `\xNN`.
pub fn decode_utf8(bytes: &[u8]) -> String {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    decode_utf8_into(bytes, &mut out);
    out
}

fn push_escape(out: &mut String, b: u8) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.push('\\');
    out.push('x');
    out.push(DIGITS[(b >> 4) as usize] as char);
    out.push(DIGITS[(b & 0xf) as usize] as char);
}

/// Cut `s` to at most `max` bytes on a character boundary. Returns true when it cut.
pub fn truncate_utf8(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let mut cut = max;
    while cut > 0 && !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    true
}

/// Append `v` in decimal, zero-padded to at least `width` digits: `{v:0width$}` without the
/// formatting machinery, which costs about a thousand instructions a call, and the parsers
/// write several numbers for every date and time bind value.
pub fn push_padded(out: &mut String, v: u64, width: usize) {
    let mut digits = [0u8; 20];
    let mut n = 0;
    let mut rest = v;
    for slot in digits.iter_mut().rev() {
        *slot = b'0' + (rest % 10) as u8;
        rest /= 10;
        n += 1;
        if rest == 0 {
            break;
        }
    }
    for _ in n..width {
        out.push('0');
    }
    for &d in digits.iter().skip(digits.len() - n) {
        out.push(d as char);
    }
}

/// Append a date as `YYYY-MM-DD` (the year in at least four digits).
pub fn push_ymd(out: &mut String, year: u64, month: u64, day: u64) {
    push_padded(out, year, 4);
    out.push('-');
    push_padded(out, month, 2);
    out.push('-');
    push_padded(out, day, 2);
}

/// Append a clock time as `HH:MM:SS` (the hours in at least two digits: a MySQL TIME or a
/// PostgreSQL interval may go past 99).
pub fn push_hms(out: &mut String, hours: u64, minutes: u64, seconds: u64) {
    push_padded(out, hours, 2);
    out.push(':');
    push_padded(out, minutes, 2);
    out.push(':');
    push_padded(out, seconds, 2);
}

/// [`push_padded`] for 128-bit values (DECIMAL and NUMERIC magnitudes), 19 digits at a time.
pub fn push_padded_u128(out: &mut String, v: u128, width: usize) {
    const E19: u128 = 10_000_000_000_000_000_000;
    match u64::try_from(v) {
        Ok(small) => push_padded(out, small, width),
        Err(_) => {
            push_padded_u128(out, v / E19, width.saturating_sub(19));
            push_padded(out, (v % E19) as u64, 19);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use encoding_rs::{BIG5, GB18030, GBK, WINDOWS_1252};

    #[test]
    fn utf8_invalid_bytes_are_escaped_not_dropped() {
        assert_eq!(decode(b"ab\xffc\xc3", UTF_8), "ab\\xffc\\xc3");
        assert_eq!(decode("é中".as_bytes(), UTF_8), "é中");
    }

    #[test]
    fn gbk_decodes_chinese_text() {
        // "患者" (patient) in GBK: BB BC D5 DF.
        assert_eq!(decode(b"SELECT '\xbb\xbc\xd5\xdf'", GBK), "SELECT '患者'");
        assert_eq!(decode(b"\xbb\xbc\xd5\xdf", GB18030), "患者");
    }

    #[test]
    fn gbk_bad_lead_byte_keeps_the_following_ascii() {
        // 0x81 is a lead byte; a space cannot trail it. The space must survive.
        assert_eq!(decode(b"a\x81 b", GBK), "a\\x81 b");
        // A lone lead byte at the end.
        assert_eq!(decode(b"ab\x81", GBK), "ab\\x81");
        // 0xFF is never valid in GBK.
        assert_eq!(decode(b"\xffx", GBK), "\\xffx");
    }

    #[test]
    fn big5_and_latin1() {
        // "醫院" (hospital) in Big5: C2 E5 B0 7C.
        assert_eq!(decode(b"\xc2\xe5\xb0\x7c", BIG5), "醫院");
        // MySQL's latin1 is cp1252: every byte decodes.
        assert_eq!(decode(b"caf\xe9 \x80", WINDOWS_1252), "café €");
    }

    #[test]
    fn truncate_on_char_boundary() {
        let mut s = String::from("a中b");
        assert!(truncate_utf8(&mut s, 2));
        assert_eq!(s, "a");
        let mut t = String::from("abc");
        assert!(!truncate_utf8(&mut t, 3));
    }

    #[test]
    fn padded_decimals_match_the_formatter() {
        for v in [0u64, 7, 42, 999, 1_000, 86_399, u64::MAX] {
            for width in [0usize, 1, 2, 4, 7, 20, 25] {
                let mut s = String::from("x");
                push_padded(&mut s, v, width);
                assert_eq!(s, format!("x{v:0width$}"));
            }
        }
        let mut s = String::new();
        push_ymd(&mut s, 2024, 3, 1);
        s.push(' ');
        push_hms(&mut s, 123, 4, 5);
        assert_eq!(
            s,
            format!("{:04}-{:02}-{:02} {:02}:{:02}:{:02}", 2024, 3, 1, 123, 4, 5)
        );
        for v in [
            0u128,
            5,
            u64::MAX as u128 + 1,
            10u128.pow(38) - 1,
            u128::MAX,
        ] {
            for width in [1usize, 4, 39, 45] {
                let mut s = String::new();
                push_padded_u128(&mut s, v, width);
                assert_eq!(s, format!("{v:0width$}"));
            }
        }
    }
}
