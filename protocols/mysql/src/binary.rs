//! Binary protocol values ("Binary Protocol Value" in the MySQL reference), as sent in
//! COM_STMT_EXECUTE and in COM_QUERY query attributes.
//!
//! Rule for strings and blobs: types that carry characters (VARCHAR, VAR_STRING, STRING, ENUM,
//! SET, JSON, DECIMAL, NEWDECIMAL) are decoded as text in the connection charset (undecodable
//! bytes become `\xNN`). BLOB types (TINY/MEDIUM/LONG/BLOB) are what drivers use for byte arrays
//! *and* for long strings, so a blob is reported as `Text` when its bytes are valid text in the
//! connection charset without control characters other than tab, CR and LF, and as `Bytes`
//! otherwise. BIT and GEOMETRY are always `Bytes` (written as hex).

use dbtap_core::text::{push_hms, push_padded, push_ymd};
use dbtap_core::{Param, ParamValue};

use crate::charset::Charset;
use crate::codes::FieldType;
use crate::wire::Reader;

/// Decode one value of type `ty` from `r`. `None` when the bytes are too short or the type's
/// size is unknown (the caller cannot find the next value then).
pub fn decode_value(
    r: &mut Reader<'_>,
    ty: FieldType,
    unsigned: bool,
    charset: Charset,
    max_len: usize,
) -> Option<Param> {
    let type_name = ty.type_name(unsigned);
    let mut truncated = false;
    let int = |v: u64, bits: u32| -> ParamValue {
        if unsigned {
            ParamValue::UInt(v)
        } else {
            // Sign-extend a `bits`-wide two's complement value.
            let shift = 64 - bits;
            ParamValue::Int(((v << shift) as i64) >> shift)
        }
    };
    let value = match ty {
        FieldType::NULL => ParamValue::Null,
        FieldType::TINY | FieldType::BOOL => int(r.uint(1)?, 8),
        FieldType::SHORT | FieldType::YEAR => int(r.uint(2)?, 16),
        FieldType::LONG | FieldType::INT24 => int(r.uint(4)?, 32),
        FieldType::LONGLONG => int(r.uint(8)?, 64),
        FieldType::FLOAT => {
            let f = f32::from_bits(r.u32()?);
            // Widen through the shortest decimal form so that 2.71f32 reads 3.14, not 3.1400001.
            ParamValue::Float(f.to_string().parse::<f64>().unwrap_or(f as f64))
        }
        FieldType::DOUBLE => ParamValue::Float(f64::from_bits(r.u64()?)),
        FieldType::DATE
        | FieldType::DATETIME
        | FieldType::TIMESTAMP
        | FieldType::NEWDATE
        | FieldType::DATETIME2
        | FieldType::TIMESTAMP2 => {
            let n = r.u8()? as usize;
            let mut d = Reader::new(r.take(n)?);
            ParamValue::Text(datetime(
                &mut d,
                n,
                ty == FieldType::DATE || ty == FieldType::NEWDATE,
            )?)
        }
        FieldType::TIME | FieldType::TIME2 => {
            let n = r.u8()? as usize;
            let mut d = Reader::new(r.take(n)?);
            ParamValue::Text(time(&mut d, n)?)
        }
        FieldType::BIT | FieldType::GEOMETRY | FieldType::VECTOR => {
            let b = r.lenenc_bytes()?;
            let keep = b.get(..max_len).unwrap_or(b);
            truncated = keep.len() < b.len();
            ParamValue::Bytes(keep.to_vec())
        }
        FieldType::TINY_BLOB | FieldType::MEDIUM_BLOB | FieldType::LONG_BLOB | FieldType::BLOB => {
            let b = r.lenenc_bytes()?;
            let keep = b.get(..max_len).unwrap_or(b);
            truncated = keep.len() < b.len();
            match as_text(keep, charset, truncated) {
                Some(t) => ParamValue::Text(t),
                None => ParamValue::Bytes(keep.to_vec()),
            }
        }
        FieldType::DECIMAL
        | FieldType::NEWDECIMAL
        | FieldType::VARCHAR
        | FieldType::VAR_STRING
        | FieldType::STRING
        | FieldType::ENUM
        | FieldType::SET
        | FieldType::JSON => {
            let b = r.lenenc_bytes()?;
            let keep = b.get(..max_len).unwrap_or(b);
            let cs = if ty == FieldType::JSON {
                Charset::default()
            } else {
                charset
            };
            let mut t = cs.decode(keep);
            truncated = keep.len() < b.len();
            // Escapes may have made the text longer than the limit: cut on a char boundary.
            truncated |= dbtap_core::text::truncate_utf8(&mut t, max_len.saturating_mul(4));
            ParamValue::Text(t)
        }
        _ => return None,
    };
    Some(Param {
        name: None,
        type_name,
        value,
        truncated,
    })
}

/// Text when `b` is clean text in `charset` (see the module rule), else `None`.
fn as_text(b: &[u8], charset: Charset, cut: bool) -> Option<String> {
    let clean = |s: &str| {
        s.chars()
            .all(|c| !c.is_control() || matches!(c, '\t' | '\r' | '\n'))
    };
    match charset {
        Charset::Enc(e) => {
            let s = match std::str::from_utf8(b) {
                Ok(s) if e == encoding_rs::UTF_8 => std::borrow::Cow::Borrowed(s),
                // A cut may split a multi-byte character: accept a valid prefix then.
                Err(err) if cut && e == encoding_rs::UTF_8 && err.error_len().is_none() => {
                    std::borrow::Cow::Borrowed(
                        std::str::from_utf8(b.get(..err.valid_up_to())?).ok()?,
                    )
                }
                _ => e.decode_without_bom_handling_and_without_replacement(b)?,
            };
            clean(&s).then(|| s.into_owned())
        }
        _ => {
            let s = std::str::from_utf8(b).ok()?;
            (s.is_ascii() && clean(s)).then(|| s.to_owned())
        }
    }
}

/// DATE / DATETIME / TIMESTAMP body of `n` bytes (0, 4, 7 or 11): year(2) month(1) day(1)
/// [hour(1) minute(1) second(1) [microsecond(4)]].
fn datetime(d: &mut Reader<'_>, n: usize, date_only: bool) -> Option<String> {
    let (mut y, mut mo, mut da, mut h, mut mi, mut s, mut us) = (0u64, 0, 0, 0, 0, 0, 0u64);
    if n >= 4 {
        y = d.uint(2)?;
        mo = d.u8()?;
        da = d.u8()?;
    }
    if n >= 7 {
        h = d.u8()?;
        mi = d.u8()?;
        s = d.u8()?;
    }
    if n >= 11 {
        us = d.uint(4)?;
    }
    if !matches!(n, 0 | 4 | 7 | 11) {
        return None;
    }
    // Written digit by digit rather than with format!, which costs about a thousand
    // instructions a call: applications bind dates all the time.
    let mut t = String::with_capacity(26);
    push_ymd(&mut t, y, mo.into(), da.into());
    if date_only {
        return Some(t);
    }
    t.push(' ');
    push_hms(&mut t, h.into(), mi.into(), s.into());
    if n == 11 {
        t.push('.');
        push_padded(&mut t, us, 6);
    }
    Some(t)
}

/// TIME body of `n` bytes (0, 8 or 12): is_negative(1) days(4) hour(1) minute(1) second(1)
/// [microsecond(4)]. Rendered as `[-]H:MM:SS[.ffffff]` with days folded into the hours.
fn time(d: &mut Reader<'_>, n: usize) -> Option<String> {
    if !matches!(n, 0 | 8 | 12) {
        return None;
    }
    if n == 0 {
        return Some("00:00:00".into());
    }
    let neg = d.u8()? == 1;
    let days = d.uint(4)?;
    let h = d.u8()? as u64;
    let mi = d.u8()?;
    let s = d.u8()?;
    let mut t = String::with_capacity(18);
    if neg {
        t.push('-');
    }
    push_hms(&mut t, days * 24 + h, mi.into(), s.into());
    if n == 12 {
        t.push('.');
        push_padded(&mut t, d.uint(4)?, 6);
    }
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(bytes: &[u8], ty: FieldType, unsigned: bool) -> Option<(ParamValue, bool, usize)> {
        let mut r = Reader::new(bytes);
        let p = decode_value(&mut r, ty, unsigned, Charset::default(), 8)?;
        Some((p.value, p.truncated, r.remaining()))
    }

    #[test]
    fn integers_signed_and_unsigned() {
        assert_eq!(
            dec(&[0xff], FieldType::TINY, false),
            Some((ParamValue::Int(-1), false, 0))
        );
        assert_eq!(
            dec(&[0xff], FieldType::TINY, true),
            Some((ParamValue::UInt(255), false, 0))
        );
        assert_eq!(
            dec(&[0xfe, 0xff], FieldType::SHORT, false),
            Some((ParamValue::Int(-2), false, 0))
        );
        assert_eq!(
            dec(&[0xe8, 0x07], FieldType::YEAR, true),
            Some((ParamValue::UInt(2024), false, 0))
        );
        assert_eq!(
            dec(&[1, 0, 0, 0, 9], FieldType::LONG, false),
            Some((ParamValue::Int(1), false, 1))
        );
        assert_eq!(
            dec(&[0xff; 8], FieldType::LONGLONG, true),
            Some((ParamValue::UInt(u64::MAX), false, 0))
        );
        assert_eq!(dec(&[1, 0, 0], FieldType::LONG, false), None);
    }

    #[test]
    fn floats_read_as_written() {
        assert_eq!(
            dec(&2.71f32.to_le_bytes(), FieldType::FLOAT, false),
            Some((ParamValue::Float(2.71), false, 0))
        );
        assert_eq!(
            dec(&(-2.5f64).to_le_bytes(), FieldType::DOUBLE, false),
            Some((ParamValue::Float(-2.5), false, 0))
        );
    }

    #[test]
    fn dates_and_times() {
        // DATETIME 11-byte form: 2010-10-17 19:27:30.000001.
        let b = [11, 0xda, 0x07, 10, 17, 19, 27, 30, 1, 0, 0, 0];
        assert_eq!(
            dec(&b, FieldType::DATETIME, false),
            Some((
                ParamValue::Text("2010-10-17 19:27:30.000001".into()),
                false,
                0
            ))
        );
        assert_eq!(
            dec(&[4, 0xda, 0x07, 10, 17], FieldType::DATE, false),
            Some((ParamValue::Text("2010-10-17".into()), false, 0))
        );
        assert_eq!(
            dec(&[0], FieldType::TIMESTAMP, false),
            Some((ParamValue::Text("0000-00-00 00:00:00".into()), false, 0))
        );
        // TIME 12-byte form: negative, 120 days 19:27:30.000001 → -2899:27:30.000001.
        let t = [12, 1, 120, 0, 0, 0, 19, 27, 30, 1, 0, 0, 0];
        assert_eq!(
            dec(&t, FieldType::TIME, false),
            Some((ParamValue::Text("-2899:27:30.000001".into()), false, 0))
        );
        assert_eq!(dec(&[5, 1, 2, 3, 4, 5], FieldType::DATETIME, false), None);
    }

    #[test]
    fn strings_blobs_and_limits() {
        assert_eq!(
            dec(b"\x03abc", FieldType::VAR_STRING, false),
            Some((ParamValue::Text("abc".into()), false, 0))
        );
        assert_eq!(
            dec(b"\x0aabcdefghij", FieldType::STRING, false),
            Some((ParamValue::Text("abcdefgh".into()), true, 0))
        );
        assert_eq!(
            dec(b"\x02\x00\xff", FieldType::BLOB, false),
            Some((ParamValue::Bytes(vec![0, 0xff]), false, 0))
        );
        assert_eq!(
            dec(b"\x02hi", FieldType::BLOB, false),
            Some((ParamValue::Text("hi".into()), false, 0))
        );
        assert_eq!(
            dec(b"\x01\x05", FieldType::BIT, false),
            Some((ParamValue::Bytes(vec![5]), false, 0))
        );
        assert_eq!(
            dec(b"", FieldType::NULL, false),
            Some((ParamValue::Null, false, 0))
        );
        assert_eq!(dec(b"\x05ab", FieldType::VARCHAR, false), None);
        assert_eq!(dec(b"\x01", FieldType(0x77), false), None);
    }
}
