//! Connection character sets: collation id (handshake response, COM_CHANGE_USER) or charset name
//! (`SET NAMES x`, session tracking of `character_set_client`) → a decoder to UTF-8.
//!
//! Collation ids are those of `SHOW COLLATION` in MySQL 8.0 / MariaDB 10.x (the id space is shared
//! up to 255; MariaDB's `*_nopad_*` collations are the base id + 1024). Unknown ids decode as UTF-8,
//! the default of every current server; undecodable bytes are kept as `\xNN` escapes either way,
//! so a wrong guess never loses data.

use encoding_rs::{
    Encoding, BIG5, EUC_JP, EUC_KR, GB18030, GBK, IBM866, ISO_8859_13, ISO_8859_2, ISO_8859_7,
    ISO_8859_8, KOI8_R, KOI8_U, MACINTOSH, SHIFT_JIS, UTF_16BE, UTF_16LE, UTF_8, WINDOWS_1250,
    WINDOWS_1251, WINDOWS_1252, WINDOWS_1254, WINDOWS_1256, WINDOWS_1257, WINDOWS_874,
};

/// How text of a connection is decoded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Charset {
    /// A charset `encoding_rs` knows.
    Enc(&'static Encoding),
    /// MySQL `utf32` (big-endian UTF-32), decoded here: `encoding_rs` has no UTF-32.
    Utf32,
    /// An 8-bit charset without a decoder here (dec8, cp850, hp8, swe7, armscii8, keybcs2, macce,
    /// cp852, geostd8) and `ascii`: ASCII passes, other bytes become `\xNN`.
    AsciiOnly,
}

impl Default for Charset {
    fn default() -> Self {
        Charset::Enc(UTF_8)
    }
}

use Charset::{AsciiOnly, Enc, Utf32};

/// Charset of a collation id.
pub fn from_collation(id: u16) -> Charset {
    let id = if (1024..2048).contains(&id) {
        id - 1024
    } else {
        id
    };
    match id {
        33 | 76 | 83 | 192..=215 | 223 | 45 | 46 | 224..=247 | 255..=323 => Enc(UTF_8),
        1 | 84 => Enc(BIG5),
        5 | 8 | 15 | 31 | 47 | 48 | 49 | 94 => Enc(WINDOWS_1252),
        2 | 9 | 21 | 27 | 77 => Enc(ISO_8859_2),
        7 | 74 => Enc(KOI8_R),
        22 | 75 => Enc(KOI8_U),
        12 | 91 | 97 | 98 => Enc(EUC_JP),
        13 | 88 | 95 | 96 => Enc(SHIFT_JIS),
        14 | 23 | 50 | 51 | 52 => Enc(WINDOWS_1251),
        16 | 71 => Enc(ISO_8859_8),
        18 | 89 => Enc(WINDOWS_874),
        19 | 85 => Enc(EUC_KR),
        20 | 41 | 42 | 79 => Enc(ISO_8859_13),
        // gb2312 is a subset of GBK: decode with GBK.
        24 | 86 | 28 | 87 => Enc(GBK),
        25 | 70 => Enc(ISO_8859_7),
        26 | 34 | 44 | 66 | 99 => Enc(WINDOWS_1250),
        29 | 58 | 59 => Enc(WINDOWS_1257),
        // latin5 is ISO-8859-9; encoding_rs decodes that label as windows-1254, its superset.
        30 | 78 => Enc(WINDOWS_1254),
        36 | 68 => Enc(IBM866),
        39 | 53 => Enc(MACINTOSH),
        57 | 67 => Enc(WINDOWS_1256),
        // ucs2 is UTF-16BE restricted to the BMP; utf16 is UTF-16BE.
        35 | 90 | 128..=151 | 159 | 54 | 55 | 101..=124 => Enc(UTF_16BE),
        56 | 62 => Enc(UTF_16LE),
        60 | 61 | 160..=183 => Utf32,
        248..=250 => Enc(GB18030),
        // binary: bytes, shown as UTF-8 with escapes.
        63 => Enc(UTF_8),
        3 | 69 | 4 | 80 | 6 | 72 | 10 | 82 | 11 | 65 | 32 | 64 | 37 | 73 | 38 | 43 | 40 | 81
        | 92 | 93 => AsciiOnly,
        _ => Enc(UTF_8),
    }
}

/// Charset of a charset name as written in `SET NAMES` (case-insensitive), `None` if unknown.
pub fn from_name(name: &str) -> Option<Charset> {
    let n = name.to_ascii_lowercase();
    Some(match n.as_str() {
        "utf8" | "utf8mb3" | "utf8mb4" | "binary" => Enc(UTF_8),
        "big5" => Enc(BIG5),
        "latin1" => Enc(WINDOWS_1252),
        "latin2" => Enc(ISO_8859_2),
        "koi8r" => Enc(KOI8_R),
        "koi8u" => Enc(KOI8_U),
        "ujis" | "eucjpms" => Enc(EUC_JP),
        "sjis" | "cp932" => Enc(SHIFT_JIS),
        "cp1251" => Enc(WINDOWS_1251),
        "hebrew" => Enc(ISO_8859_8),
        "tis620" => Enc(WINDOWS_874),
        "euckr" => Enc(EUC_KR),
        "latin7" => Enc(ISO_8859_13),
        "gb2312" | "gbk" => Enc(GBK),
        "gb18030" => Enc(GB18030),
        "greek" => Enc(ISO_8859_7),
        "cp1250" => Enc(WINDOWS_1250),
        "cp1257" => Enc(WINDOWS_1257),
        "latin5" => Enc(WINDOWS_1254),
        "cp866" => Enc(IBM866),
        "macroman" => Enc(MACINTOSH),
        "cp1256" => Enc(WINDOWS_1256),
        "ucs2" | "utf16" => Enc(UTF_16BE),
        "utf16le" => Enc(UTF_16LE),
        "utf32" => Utf32,
        "ascii" | "dec8" | "cp850" | "hp8" | "swe7" | "armscii8" | "keybcs2" | "macce"
        | "cp852" | "geostd8" => AsciiOnly,
        _ => return None,
    })
}

impl Charset {
    /// Decode `bytes` to UTF-8, escaping what does not decode.
    pub fn decode(self, bytes: &[u8]) -> String {
        match self {
            Enc(e) => dbtap_core::text::decode(bytes, e),
            Utf32 => {
                let mut out = String::with_capacity(bytes.len());
                let mut chunks = bytes.chunks_exact(4);
                for c in &mut chunks {
                    let v = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
                    match char::from_u32(v) {
                        Some(ch) => out.push(ch),
                        None => c.iter().for_each(|&b| escape(&mut out, b)),
                    }
                }
                chunks.remainder().iter().for_each(|&b| escape(&mut out, b));
                out
            }
            AsciiOnly => {
                let mut out = String::with_capacity(bytes.len());
                for &b in bytes {
                    if b.is_ascii() {
                        out.push(b as char);
                    } else {
                        escape(&mut out, b);
                    }
                }
                out
            }
        }
    }

    /// True when the charset is ASCII-compatible (so SQL keywords and `;` can be read bytewise).
    pub fn ascii_compatible(self) -> bool {
        match self {
            Enc(e) => e.is_ascii_compatible(),
            Utf32 => false,
            AsciiOnly => true,
        }
    }
}

fn escape(out: &mut String, b: u8) {
    use std::fmt::Write;
    let _ = write!(out, "\\x{b:02x}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collation_ids_map_to_their_charset() {
        assert_eq!(from_collation(33), Enc(UTF_8)); // utf8_general_ci
        assert_eq!(from_collation(255), Enc(UTF_8)); // utf8mb4_0900_ai_ci
        assert_eq!(from_collation(8), Enc(WINDOWS_1252)); // latin1_swedish_ci
        assert_eq!(from_collation(28), Enc(GBK)); // gbk_chinese_ci
        assert_eq!(from_collation(248), Enc(GB18030)); // gb18030_chinese_ci
        assert_eq!(from_collation(95), Enc(SHIFT_JIS)); // cp932_japanese_ci
        assert_eq!(from_collation(1024 + 28), Enc(GBK)); // MariaDB gbk_nopad_chinese_ci
        assert_eq!(from_collation(60), Utf32);
        assert_eq!(from_collation(11), AsciiOnly);
        assert_eq!(from_collation(9999), Enc(UTF_8));
    }

    #[test]
    fn decoders_keep_what_they_cannot_read() {
        // "患者" (patient) in GBK.
        assert_eq!(from_collation(28).decode(b"\xbb\xbc\xd5\xdf"), "患者");
        assert_eq!(
            Utf32.decode(&[0, 0, 0x4e, 0x2d, 0, 0x11, 0, 0, 1]),
            "中\\x00\\x11\\x00\\x00\\x01"
        );
        assert_eq!(AsciiOnly.decode(b"a\xe9"), "a\\xe9");
        assert_eq!(from_name("GBK"), Some(Enc(GBK)));
        assert_eq!(from_name("klingon"), None);
    }
}
