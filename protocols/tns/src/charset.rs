//! Oracle character set ids (as negotiated in TTC) → decoders.

use encoding_rs::Encoding;

/// `AL32UTF8`.
pub const AL32UTF8: u16 = 873;
/// `UTF8` (CESU-8; decoded as UTF-8).
pub const UTF8: u16 = 871;
/// `US7ASCII`.
pub const US7ASCII: u16 = 1;
/// `WE8ISO8859P1`.
pub const WE8ISO8859P1: u16 = 31;
/// `EE8ISO8859P2`.
pub const EE8ISO8859P2: u16 = 32;
/// `CL8ISO8859P5` (Cyrillic ISO; wswiki__TNS_Oracle1.pcap frame 21 negotiates it).
pub const CL8ISO8859P5: u16 = 35;
/// `WE8ISO8859P15`.
pub const WE8ISO8859P15: u16 = 46;
/// `CL8MSWIN1251` (Russian Windows).
pub const CL8MSWIN1251: u16 = 171;
/// `EE8MSWIN1250`.
pub const EE8MSWIN1250: u16 = 170;
/// `WE8MSWIN1252`.
pub const WE8MSWIN1252: u16 = 178;
/// `CL8KOI8R`.
pub const CL8KOI8R: u16 = 51;
/// `JA16SJIS`.
pub const JA16SJIS: u16 = 832;
/// `JA16EUC`.
pub const JA16EUC: u16 = 830;
/// `KO16MSWIN949`.
pub const KO16MSWIN949: u16 = 846;
/// `ZHS16CGB231280`.
pub const ZHS16CGB231280: u16 = 850;
/// `ZHS16GBK`.
pub const ZHS16GBK: u16 = 852;
/// `ZHS32GB18030`.
pub const ZHS32GB18030: u16 = 854;
/// `ZHT16BIG5`.
pub const ZHT16BIG5: u16 = 856;
/// `ZHT16MSWIN950`.
pub const ZHT16MSWIN950: u16 = 867;

/// The decoder for an Oracle character set id, `None` when unknown.
pub fn encoding(id: u16) -> Option<&'static Encoding> {
    use encoding_rs::*;
    Some(match id {
        AL32UTF8 | UTF8 | US7ASCII => UTF_8,
        WE8ISO8859P1 | WE8MSWIN1252 => WINDOWS_1252,
        WE8ISO8859P15 => ISO_8859_15,
        EE8ISO8859P2 => ISO_8859_2,
        CL8ISO8859P5 => ISO_8859_5,
        CL8MSWIN1251 => WINDOWS_1251,
        EE8MSWIN1250 => WINDOWS_1250,
        CL8KOI8R => KOI8_R,
        JA16SJIS => SHIFT_JIS,
        JA16EUC => EUC_JP,
        KO16MSWIN949 => EUC_KR,
        ZHS16CGB231280 | ZHS16GBK => GBK,
        ZHS32GB18030 => GB18030,
        ZHT16BIG5 | ZHT16MSWIN950 => BIG5,
        _ => return None,
    })
}

/// The Oracle name of a character set id, for documentation and tests.
pub fn name(id: u16) -> Option<&'static str> {
    Some(match id {
        AL32UTF8 => "AL32UTF8",
        UTF8 => "UTF8",
        US7ASCII => "US7ASCII",
        WE8ISO8859P1 => "WE8ISO8859P1",
        WE8ISO8859P15 => "WE8ISO8859P15",
        EE8ISO8859P2 => "EE8ISO8859P2",
        CL8ISO8859P5 => "CL8ISO8859P5",
        CL8MSWIN1251 => "CL8MSWIN1251",
        EE8MSWIN1250 => "EE8MSWIN1250",
        WE8MSWIN1252 => "WE8MSWIN1252",
        CL8KOI8R => "CL8KOI8R",
        JA16SJIS => "JA16SJIS",
        JA16EUC => "JA16EUC",
        KO16MSWIN949 => "KO16MSWIN949",
        ZHS16CGB231280 => "ZHS16CGB231280",
        ZHS16GBK => "ZHS16GBK",
        ZHS32GB18030 => "ZHS32GB18030",
        ZHT16BIG5 => "ZHT16BIG5",
        ZHT16MSWIN950 => "ZHT16MSWIN950",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbtap_core::text::decode;

    #[test]
    fn gbk_and_1251() {
        let gbk = encoding(ZHS16GBK).unwrap();
        assert_eq!(decode(b"\xbb\xbc\xd5\xdf", gbk), "患者");
        let ru = encoding(CL8MSWIN1251).unwrap();
        // "Да" in Windows-1251.
        assert_eq!(decode(b"\xc4\xe0", ru), "Да");
        assert_eq!(encoding(9999), None);
    }
}
