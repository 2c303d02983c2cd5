//! Collations (MS-TDS 2.2.5.1.2) and the code page of non-Unicode text.
//!
//! A collation is 5 bytes: a little-endian u32 holding the LCID (bits 0-19), comparison flags
//! (bits 20-27, bit 26 = UTF-8 collation, SQL Server 2019+) and a version (bits 28-31), then a
//! SortId byte. SortId 0 means a Windows collation: the code page follows from the LCID's
//! language. A non-zero SortId is a SQL collation whose code page the SortId decides.

use encoding_rs::{
    Encoding, BIG5, EUC_KR, GBK, SHIFT_JIS, UTF_8, WINDOWS_1250, WINDOWS_1251, WINDOWS_1252,
    WINDOWS_1253, WINDOWS_1254, WINDOWS_1255, WINDOWS_1256, WINDOWS_1257, WINDOWS_1258,
    WINDOWS_874,
};

/// A 5-byte collation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Collation(pub [u8; 5]);

/// Bit 26 of the info word: a UTF-8 collation (`*_UTF8`).
const F_UTF8: u32 = 1 << 26;

impl Collation {
    /// The info word (LCID, flags, version).
    pub fn info(&self) -> u32 {
        u32::from_le_bytes([self.0[0], self.0[1], self.0[2], self.0[3]])
    }
    /// The Windows locale id.
    pub fn lcid(&self) -> u32 {
        self.info() & 0x000F_FFFF
    }
    /// The SQL sort id (0 for Windows collations).
    pub fn sort_id(&self) -> u8 {
        self.0[4]
    }
    /// The encoding of non-Unicode text under this collation. Code pages that have no decoder
    /// here (the OEM code pages 437 and 850 of a few legacy SQL collations) fall back to 1252,
    /// which agrees with them on ASCII.
    pub fn encoding(&self) -> &'static Encoding {
        if self.info() & F_UTF8 != 0 {
            return UTF_8;
        }
        match self.sort_id() {
            0 => by_lcid(self.lcid()),
            // SQL collations: code page by SortId range (SQL Server's sort order table).
            80..=98 => WINDOWS_1250,
            104..=108 => WINDOWS_1251,
            112..=124 => WINDOWS_1253,
            128..=130 => WINDOWS_1254,
            136..=138 => WINDOWS_1255,
            144..=146 => WINDOWS_1256,
            152..=160 => WINDOWS_1257,
            _ => WINDOWS_1252,
        }
    }
}

/// Code page of a Windows locale, by its primary language (the low 10 bits) and, for Chinese,
/// the sub-language.
fn by_lcid(lcid: u32) -> &'static Encoding {
    let lang = lcid & 0x3FF;
    match lang {
        // Chinese: PRC 0x0804 and Singapore 0x1004 use 936 (GBK); Taiwan 0x0404, Hong Kong
        // 0x0C04 and Macau 0x1404 use 950 (Big5).
        0x04 => match lcid & 0xFFFF {
            0x0804 | 0x1004 => GBK,
            _ => BIG5,
        },
        0x11 => SHIFT_JIS,
        0x12 => EUC_KR,
        0x1E => WINDOWS_874,
        0x2A => WINDOWS_1258,
        0x02 | 0x19 | 0x22 | 0x23 | 0x2F | 0x3F | 0x40 | 0x43 | 0x44 | 0x50 => WINDOWS_1251,
        // Serbian / Croatian / Bosnian share 0x1A: Cyrillic sub-languages use 1251.
        0x1A => match lcid & 0xFFFF {
            0x0C1A | 0x1C1A | 0x201A => WINDOWS_1251,
            _ => WINDOWS_1250,
        },
        0x05 | 0x0E | 0x15 | 0x18 | 0x1B | 0x24 | 0x1C => WINDOWS_1250,
        0x08 => WINDOWS_1253,
        0x1F | 0x2C => WINDOWS_1254,
        0x0D => WINDOWS_1255,
        0x01 | 0x20 | 0x29 => WINDOWS_1256,
        0x25..=0x27 => WINDOWS_1257,
        _ => WINDOWS_1252,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_prc_is_gbk() {
        // Chinese_PRC_CI_AS: LCID 0x0804, IgnoreCase (bit 20), version 0, SortId 0.
        let c = Collation([0x04, 0x08, 0x10, 0x00, 0x00]);
        assert_eq!(c.lcid(), 0x0804);
        assert_eq!(c.encoding(), GBK);
        assert_eq!(
            dbtap_core::text::decode(b"\xbb\xbc\xd5\xdf", c.encoding()),
            "患者"
        );
    }

    #[test]
    fn common_collations() {
        // SQL_Latin1_General_CP1_CI_AS: LCID 0x0409, flags 0xD0 (bits 20,22,23), SortId 52.
        assert_eq!(
            Collation([0x09, 0x04, 0xD0, 0x00, 0x34]).encoding(),
            WINDOWS_1252
        );
        // Taiwan: Big5.
        assert_eq!(Collation([0x04, 0x04, 0x10, 0x00, 0x00]).encoding(), BIG5);
        // Cyrillic_General_CI_AS: LCID 0x0419.
        assert_eq!(
            Collation([0x19, 0x04, 0x10, 0x00, 0x00]).encoding(),
            WINDOWS_1251
        );
        // Latin1_General_100_CI_AS_SC_UTF8: the UTF-8 bit.
        assert_eq!(Collation([0x09, 0x04, 0x10, 0x24, 0x00]).encoding(), UTF_8);
    }
}
