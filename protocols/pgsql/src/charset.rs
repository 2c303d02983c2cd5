//! The session's `client_encoding` → a text decoder. PostgreSQL converts everything it sends
//! and expects everything it receives in the client encoding ("Character Set Support" in the
//! PostgreSQL documentation): statement text, bind values in text format, error messages.
//! Decoding is lossless: bytes that do not decode become `\xNN` (see `dbtap_core::text`).

use encoding_rs::Encoding;

/// A decoder for one client encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Charset {
    /// UTF8, and SQL_ASCII (bytes "uninterpreted": UTF-8 where valid, escapes elsewhere),
    /// and encodings without a decoder here (EUC_TW, MULE_INTERNAL, JOHAB).
    #[default]
    Utf8,
    /// LATIN1 is ISO 8859-1: every byte is the code point of the same value (encoding_rs only
    /// has windows-1252, which differs at 0x80..0x9F).
    Latin1,
    /// Any other encoding_rs decoder.
    Other(&'static Encoding),
}

impl Charset {
    /// Decode `bytes`, appending to `out`.
    pub fn decode_into(self, bytes: &[u8], out: &mut String) {
        match self {
            Charset::Utf8 => dbtap_core::text::decode_utf8_into(bytes, out),
            Charset::Latin1 => out.extend(bytes.iter().map(|&b| b as char)),
            Charset::Other(e) => dbtap_core::text::decode_into(bytes, e, out),
        }
    }
    /// Decode `bytes` into a new string.
    pub fn decode(self, bytes: &[u8]) -> String {
        if let Ok(s) = std::str::from_utf8(bytes) {
            if self == Charset::Utf8 || bytes.is_ascii() {
                return s.to_owned();
            }
        }
        let mut out = String::with_capacity(bytes.len() + bytes.len() / 2 + 4);
        self.decode_into(bytes, &mut out);
        out
    }
}

/// The decoder for a `client_encoding` value (PostgreSQL's names and the aliases it accepts:
/// case and `-`/`_` are ignored, as PostgreSQL's `clean_encoding_name` does). `None` for a name
/// PostgreSQL does not know.
pub fn from_name(name: &[u8]) -> Option<Charset> {
    let mut key = [0u8; 24];
    let mut n = 0;
    for &b in name {
        if b == b'-' || b == b'_' || b == b' ' {
            continue;
        }
        if !b.is_ascii_alphanumeric() || n == key.len() {
            return None;
        }
        key[n] = b.to_ascii_uppercase();
        n += 1;
    }
    use encoding_rs::*;
    let e: &'static Encoding = match &key[..n] {
        b"UTF8" | b"UNICODE" | b"SQLASCII" | b"EUCTW" | b"MULEINTERNAL" | b"JOHAB" => {
            return Some(Charset::Utf8)
        }
        b"LATIN1" | b"ISO88591" => return Some(Charset::Latin1),
        b"LATIN2" | b"ISO88592" => ISO_8859_2,
        b"LATIN3" | b"ISO88593" => ISO_8859_3,
        b"LATIN4" | b"ISO88594" => ISO_8859_4,
        // encoding_rs decodes ISO 8859-9 as its superset windows-1254.
        b"LATIN5" | b"ISO88599" => WINDOWS_1254,
        b"LATIN6" | b"ISO885910" => ISO_8859_10,
        b"LATIN7" | b"ISO885913" => ISO_8859_13,
        b"LATIN8" | b"ISO885914" => ISO_8859_14,
        b"LATIN9" | b"ISO885915" => ISO_8859_15,
        b"LATIN10" | b"ISO885916" => ISO_8859_16,
        b"ISO88595" => ISO_8859_5,
        b"ISO88596" => ISO_8859_6,
        b"ISO88597" => ISO_8859_7,
        b"ISO88598" => ISO_8859_8,
        b"WIN1250" | b"WINDOWS1250" => WINDOWS_1250,
        b"WIN1251" | b"WINDOWS1251" | b"WIN" => WINDOWS_1251,
        b"WIN1252" | b"WINDOWS1252" => WINDOWS_1252,
        b"WIN1253" | b"WINDOWS1253" => WINDOWS_1253,
        b"WIN1254" | b"WINDOWS1254" => WINDOWS_1254,
        b"WIN1255" | b"WINDOWS1255" => WINDOWS_1255,
        b"WIN1256" | b"WINDOWS1256" => WINDOWS_1256,
        b"WIN1257" | b"WINDOWS1257" => WINDOWS_1257,
        b"WIN1258" | b"WINDOWS1258" | b"ABC" | b"TCVN" | b"TCVN5712" => WINDOWS_1258,
        b"WIN866" | b"ALT" => IBM866,
        b"WIN874" => WINDOWS_874,
        b"KOI8" | b"KOI8R" => KOI8_R,
        b"KOI8U" => KOI8_U,
        b"GBK" | b"WIN936" | b"WINDOWS936" => GBK,
        // EUC-CN is GB2312, a subset of GBK.
        b"EUCCN" => GBK,
        b"GB18030" => GB18030,
        b"BIG5" | b"WIN950" | b"WINDOWS950" => BIG5,
        b"EUCJP" | b"EUCJIS2004" => EUC_JP,
        // encoding_rs's EUC-KR is windows-949, i.e. UHC, a superset of EUC-KR.
        b"EUCKR" | b"UHC" | b"WIN949" | b"WINDOWS949" => EUC_KR,
        b"SJIS" | b"SHIFTJIS" | b"MSKANJI" | b"WIN932" | b"WINDOWS932" | b"SHIFTJIS2004" => {
            SHIFT_JIS
        }
        _ => return None,
    };
    Some(Charset::Other(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases() {
        assert_eq!(from_name(b"UTF8"), Some(Charset::Utf8));
        assert_eq!(from_name(b"utf-8"), Some(Charset::Utf8));
        assert_eq!(from_name(b"SQL_ASCII"), Some(Charset::Utf8));
        assert_eq!(from_name(b"latin1"), Some(Charset::Latin1));
        assert_eq!(
            from_name(b"WIN1252"),
            Some(Charset::Other(encoding_rs::WINDOWS_1252))
        );
        assert_eq!(
            from_name(b"EUC_KR"),
            Some(Charset::Other(encoding_rs::EUC_KR))
        );
        assert_eq!(from_name(b"klingon"), None);
        assert_eq!(from_name(b"UTF8\xff"), None);
    }

    #[test]
    fn decoding() {
        // LATIN1 0xE9 is é; 0x80 stays the C1 control U+0080 (not the euro sign of cp1252).
        assert_eq!(Charset::Latin1.decode(b"caf\xe9\x80"), "caf\u{e9}\u{80}");
        // "患者" (patient) in GBK.
        assert_eq!(
            from_name(b"GBK").unwrap().decode(b"\xbb\xbc\xd5\xdf"),
            "患者"
        );
        // KOI8-R "да".
        assert_eq!(from_name(b"KOI8R").unwrap().decode(b"\xc4\xc1"), "да");
        // Invalid UTF-8 keeps every byte.
        assert_eq!(Charset::Utf8.decode(b"a\xffb"), "a\\xffb");
    }
}
