//! TYPE_INFO (MS-TDS 2.2.5.4 – 2.2.5.6) and TYPE_VARBYTE values: how long every value is (to skip
//! result rows) and what it means (to decode RPC parameters and return values).

use std::borrow::Cow;

use dbtap_core::text::{push_hms, push_padded, push_padded_u128};
use dbtap_core::ParamValue;
use encoding_rs::Encoding;

use crate::collation::Collation;
use crate::wire::{utf16, Reader};

/// Data type tokens (MS-TDS 2.2.5.4.1 – 2.2.5.4.3).
pub mod ty {
    #![allow(missing_docs)]
    pub const NULL: u8 = 0x1F;
    pub const INT1: u8 = 0x30;
    pub const BIT: u8 = 0x32;
    pub const INT2: u8 = 0x34;
    pub const INT4: u8 = 0x38;
    pub const DATETIM4: u8 = 0x3A;
    pub const FLT4: u8 = 0x3B;
    pub const MONEY: u8 = 0x3C;
    pub const DATETIME: u8 = 0x3D;
    pub const FLT8: u8 = 0x3E;
    pub const MONEY4: u8 = 0x7A;
    pub const INT8: u8 = 0x7F;
    pub const GUID: u8 = 0x24;
    pub const INTN: u8 = 0x26;
    pub const DECIMAL: u8 = 0x37;
    pub const NUMERIC: u8 = 0x3F;
    pub const BITN: u8 = 0x68;
    pub const DECIMALN: u8 = 0x6A;
    pub const NUMERICN: u8 = 0x6C;
    pub const FLTN: u8 = 0x6D;
    pub const MONEYN: u8 = 0x6E;
    pub const DATETIMN: u8 = 0x6F;
    pub const DATEN: u8 = 0x28;
    pub const TIMEN: u8 = 0x29;
    pub const DATETIME2N: u8 = 0x2A;
    pub const DATETIMEOFFSETN: u8 = 0x2B;
    pub const CHAR: u8 = 0x2F;
    pub const VARCHAR: u8 = 0x27;
    pub const BINARY: u8 = 0x2D;
    pub const VARBINARY: u8 = 0x25;
    pub const BIGVARBIN: u8 = 0xA5;
    pub const BIGVARCHR: u8 = 0xA7;
    pub const BIGBINARY: u8 = 0xAD;
    pub const BIGCHAR: u8 = 0xAF;
    pub const NVARCHAR: u8 = 0xE7;
    pub const NCHAR: u8 = 0xEF;
    pub const XML: u8 = 0xF1;
    pub const UDT: u8 = 0xF0;
    pub const TVP: u8 = 0xF3;
    pub const TEXT: u8 = 0x23;
    pub const IMAGE: u8 = 0x22;
    pub const NTEXT: u8 = 0x63;
    pub const SSVARIANT: u8 = 0x62;
}

/// How a value of a type is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// Exactly this many bytes (FIXEDLENTYPE).
    Fixed(u8),
    /// One length byte, then the value (BYTELEN); 0 is NULL.
    Byte,
    /// Two length bytes (USHORTLEN); 0xFFFF is NULL.
    UShort,
    /// TEXT / NTEXT / IMAGE: in rows a text pointer (B_VARBYTE; empty is NULL), an 8-byte
    /// timestamp and a 4-byte length; in RPC parameters a 4-byte length (0xFFFFFFFF is NULL).
    Text,
    /// sql_variant: a 4-byte length (0 is NULL), then base type, property bytes and data.
    Variant,
    /// Partially length-prefixed (MAX types, XML, UDT): an 8-byte total length (all ones is
    /// NULL), then chunks with a 4-byte length, ended by a zero-length chunk.
    Plp,
}

/// A parsed TYPE_INFO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeInfo {
    /// The type token.
    pub ty: u8,
    /// Declared maximum length (0 for fixed types and for types that have none).
    pub max_len: u32,
    /// Precision (DECIMALN / NUMERICN).
    pub precision: u8,
    /// Scale (DECIMALN / NUMERICN, TIMEN, DATETIME2N, DATETIMEOFFSETN).
    pub scale: u8,
    /// Collation of non-Unicode character types.
    pub collation: Option<Collation>,
    /// Value framing.
    pub form: Form,
}

/// Why a TYPE_INFO or value could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// More bytes are needed.
    Incomplete,
    /// The bytes are not a valid TYPE_INFO / value (unknown type, impossible length).
    Bad,
}

/// Result of reading TYPE_INFO or a value.
pub type Parsed<T> = Result<T, Stop>;

fn need<T>(v: Option<T>) -> Parsed<T> {
    v.ok_or(Stop::Incomplete)
}

/// Where a TYPE_INFO is read: COLMETADATA (TEXT types carry a table name; UDT carries its full
/// description) or an RPC parameter / RETURNVALUE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ctx {
    /// COLMETADATA column of a server's result.
    Column,
    /// COLMETADATA column of a client's Bulk Load message (2.2.6.1): as `Column`, except the
    /// TableName of TEXT / NTEXT / IMAGE, which clients send in either layout
    /// (`skip_bulk_table_name`).
    BulkColumn,
    /// RPC parameter or RETURNVALUE.
    Param,
}

/// TableName of a TEXT / NTEXT / IMAGE column in a client's Bulk Load COLMETADATA.
///
/// MS-TDS 2.2.6.1 says the Bulk Load stream "is equivalent to that produced by the server if it
/// were sending the same rowset on output", so from TDS 7.2 TableName would be NumParts (BYTE)
/// then NumParts US_VARCHAR parts (2.2.7.4). FreeTDS (1.3, TDS 7.4; how freebcp loads into SQL
/// Server) sends one US_VARCHAR, the TDS 7.0/7.1 layout (`0b 00` then `dbo.patient`). The
/// second byte tells them apart: in the one-US_VARCHAR layout it is the high byte of the name's
/// length in characters, 0 for any name under 256 characters (a four-part name of sysname parts
/// is at most 4 × 128 + 3 = 515); in the NumParts layout it is the low byte of the first part's
/// length, which is not 0 for a part of 1 to 255 characters. Before TDS 7.2 there is only the
/// one layout.
fn skip_bulk_table_name(r: &mut Reader<'_>, tds: Tds) -> Parsed<()> {
    let second = need(r.rest().get(1).copied())?;
    if tds.v72() && second != 0 {
        let parts = need(r.u8())?;
        for _ in 0..parts {
            need(r.skip_us_varchar())?;
        }
    } else {
        need(r.skip_us_varchar())?;
    }
    Ok(())
}

/// The layouts a TDS version brings: TYPE_INFO of character types carries a 5-byte collation
/// from TDS 7.1 on (MS-TDS 2.2.5.6; SQL Server 7.0's TDS 7.0 has none), and TDS 7.2 widened DONE
/// row counts to 8 bytes, user types and ERROR line numbers to 4, and gave TEXT table names parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tds {
    /// TDS 7.0 (SQL Server 7.0).
    V70,
    /// TDS 7.1 (SQL Server 2000).
    V71,
    /// TDS 7.2 or later (SQL Server 2005 on; TDS 8.0 too).
    V72,
}

impl Tds {
    /// The layout of a TDSVersion as LOGIN7 (0x70000000, 0x71000001, 0x72090002, …) or LOGINACK
    /// (0x07000000 and 0x07010000 for 7.0 and 7.1, MS-TDS 2.2.7.14) gives it.
    pub fn from_version(v: u32) -> Tds {
        match v {
            0x7000_0000 | 0x0700_0000 => Tds::V70,
            0x7100_0000..=0x71FF_FFFF | 0x0701_0000 => Tds::V71,
            _ => Tds::V72,
        }
    }

    /// TDS 7.2 or later.
    pub fn v72(self) -> bool {
        self == Tds::V72
    }

    /// TYPE_INFO of character types carries a collation.
    pub fn collations(self) -> bool {
        self != Tds::V70
    }
}

/// Read a TYPE_INFO in the layout of TDS version `tds`.
pub fn read_type_info(r: &mut Reader<'_>, ctx: Ctx, tds: Tds) -> Parsed<TypeInfo> {
    let t = need(r.u8())?;
    let mut ti = TypeInfo {
        ty: t,
        max_len: 0,
        precision: 0,
        scale: 0,
        collation: None,
        form: Form::Byte,
    };
    match t {
        ty::NULL => ti.form = Form::Fixed(0),
        ty::INT1 | ty::BIT => ti.form = Form::Fixed(1),
        ty::INT2 => ti.form = Form::Fixed(2),
        ty::INT4 | ty::DATETIM4 | ty::FLT4 | ty::MONEY4 => ti.form = Form::Fixed(4),
        ty::MONEY | ty::DATETIME | ty::FLT8 | ty::INT8 => ti.form = Form::Fixed(8),
        ty::GUID | ty::INTN | ty::BITN | ty::FLTN | ty::MONEYN | ty::DATETIMN => {
            ti.max_len = need(r.u8())? as u32;
        }
        ty::DECIMAL | ty::NUMERIC | ty::DECIMALN | ty::NUMERICN => {
            ti.max_len = need(r.u8())? as u32;
            ti.precision = need(r.u8())?;
            ti.scale = need(r.u8())?;
        }
        ty::DATEN => {}
        ty::TIMEN | ty::DATETIME2N | ty::DATETIMEOFFSETN => {
            ti.scale = need(r.u8())?;
            if ti.scale > 7 {
                return Err(Stop::Bad);
            }
        }
        ty::CHAR | ty::VARCHAR => {
            ti.max_len = need(r.u8())? as u32;
        }
        ty::BINARY | ty::VARBINARY => ti.max_len = need(r.u8())? as u32,
        ty::BIGVARCHR | ty::BIGCHAR | ty::NVARCHAR | ty::NCHAR => {
            ti.max_len = need(r.u16le())? as u32;
            if tds.collations() {
                ti.collation = Some(Collation(need(r.array())?));
            }
            ti.form = if ti.max_len == 0xFFFF && t != ty::BIGCHAR && t != ty::NCHAR {
                Form::Plp
            } else {
                Form::UShort
            };
        }
        ty::BIGVARBIN | ty::BIGBINARY => {
            ti.max_len = need(r.u16le())? as u32;
            ti.form = if ti.max_len == 0xFFFF && t == ty::BIGVARBIN {
                Form::Plp
            } else {
                Form::UShort
            };
        }
        ty::TEXT | ty::NTEXT | ty::IMAGE => {
            ti.max_len = need(r.u32le())?;
            if t != ty::IMAGE && tds.collations() {
                ti.collation = Some(Collation(need(r.array())?));
            }
            match ctx {
                // TableName: TDS 7.2+ NumParts + US_VARCHAR parts; earlier one US_VARCHAR.
                Ctx::Column if tds.v72() => {
                    let parts = need(r.u8())?;
                    for _ in 0..parts {
                        need(r.skip_us_varchar())?;
                    }
                }
                Ctx::Column => {
                    need(r.skip_us_varchar())?;
                }
                Ctx::BulkColumn => skip_bulk_table_name(r, tds)?,
                Ctx::Param => {}
            }
            ti.form = Form::Text;
        }
        ty::SSVARIANT => {
            ti.max_len = need(r.u32le())?;
            ti.form = Form::Variant;
        }
        ty::XML => {
            if need(r.u8())? == 1 {
                need(r.skip_b_varchar())?;
                need(r.skip_b_varchar())?;
                need(r.skip_us_varchar())?;
            }
            ti.form = Form::Plp;
        }
        ty::UDT => {
            if ctx != Ctx::Param {
                ti.max_len = need(r.u16le())? as u32;
            }
            need(r.skip_b_varchar())?;
            need(r.skip_b_varchar())?;
            need(r.skip_b_varchar())?;
            if ctx != Ctx::Param {
                need(r.skip_us_varchar())?;
            }
            ti.form = Form::Plp;
        }
        _ => return Err(Stop::Bad),
    }
    Ok(ti)
}

/// SQL type name for records.
pub fn type_name(ti: &TypeInfo) -> Cow<'static, str> {
    let fixed = |n: u32, a: &'static str, b: &'static str, c: &'static str, d: &'static str| match n
    {
        1 => a,
        2 => b,
        4 => c,
        _ => d,
    };
    let s: &'static str = match ti.ty {
        ty::NULL => "null",
        ty::INT1 => "tinyint",
        ty::BIT | ty::BITN => "bit",
        ty::INT2 => "smallint",
        ty::INT4 => "int",
        ty::INT8 => "bigint",
        ty::INTN => fixed(ti.max_len, "tinyint", "smallint", "int", "bigint"),
        ty::DATETIM4 => "smalldatetime",
        ty::DATETIME => "datetime",
        ty::DATETIMN => fixed(
            ti.max_len,
            "datetime",
            "datetime",
            "smalldatetime",
            "datetime",
        ),
        ty::FLT4 => "real",
        ty::FLT8 => "float",
        ty::FLTN => fixed(ti.max_len, "float", "float", "real", "float"),
        ty::MONEY4 => "smallmoney",
        ty::MONEY => "money",
        ty::MONEYN => fixed(ti.max_len, "money", "money", "smallmoney", "money"),
        ty::GUID => "uniqueidentifier",
        ty::DECIMAL | ty::DECIMALN => "decimal",
        ty::NUMERIC | ty::NUMERICN => "numeric",
        ty::DATEN => "date",
        ty::TIMEN => "time",
        ty::DATETIME2N => "datetime2",
        ty::DATETIMEOFFSETN => "datetimeoffset",
        ty::CHAR | ty::BIGCHAR => "char",
        ty::VARCHAR => "varchar",
        ty::BIGVARCHR if ti.form == Form::Plp => "varchar(max)",
        ty::BIGVARCHR => "varchar",
        ty::NCHAR => "nchar",
        ty::NVARCHAR if ti.form == Form::Plp => "nvarchar(max)",
        ty::NVARCHAR => "nvarchar",
        ty::BINARY | ty::BIGBINARY => "binary",
        ty::VARBINARY => "varbinary",
        ty::BIGVARBIN if ti.form == Form::Plp => "varbinary(max)",
        ty::BIGVARBIN => "varbinary",
        ty::TEXT => "text",
        ty::NTEXT => "ntext",
        ty::IMAGE => "image",
        ty::SSVARIANT => "sql_variant",
        ty::XML => "xml",
        ty::UDT => "udt",
        other => return Cow::Owned(format!("type_0x{other:02x}")),
    };
    Cow::Borrowed(s)
}

/// A decoded value: the value, whether it was cut at the limit.
pub type Value = (ParamValue, bool);

/// Read one RPC parameter / RETURNVALUE value of type `ti` (the whole value must be in `r`).
/// Values longer than `max_len` bytes are cut (and flagged). `enc` decodes non-Unicode text
/// without a collation of its own.
pub fn read_value(
    r: &mut Reader<'_>,
    ti: &TypeInfo,
    max_len: usize,
    default_enc: &'static Encoding,
) -> Parsed<Value> {
    let enc = ti.collation.map_or(default_enc, |c| c.encoding());
    let bytes: Cow<'_, [u8]> = match ti.form {
        Form::Fixed(n) => Cow::Borrowed(need(r.take(n as usize))?),
        Form::Byte => {
            let n = need(r.u8())?;
            if n == 0 && !matches!(ti.ty, ty::CHAR | ty::VARCHAR | ty::BINARY | ty::VARBINARY) {
                return Ok((ParamValue::Null, false));
            }
            Cow::Borrowed(need(r.take(n as usize))?)
        }
        Form::UShort => {
            let n = need(r.u16le())?;
            if n == 0xFFFF {
                return Ok((ParamValue::Null, false));
            }
            Cow::Borrowed(need(r.take(n as usize))?)
        }
        Form::Text => {
            let n = need(r.u32le())?;
            if n == u32::MAX {
                return Ok((ParamValue::Null, false));
            }
            Cow::Borrowed(need(r.take(n as usize))?)
        }
        Form::Variant => {
            let n = need(r.u32le())? as usize;
            if n == 0 {
                return Ok((ParamValue::Null, false));
            }
            let body = need(r.take(n))?;
            return variant(body, max_len, default_enc);
        }
        Form::Plp => {
            let total = need(r.u64le())?;
            if total == u64::MAX {
                return Ok((ParamValue::Null, false));
            }
            let mut v = Vec::new();
            let mut cut = false;
            loop {
                let n = need(r.u32le())? as usize;
                if n == 0 {
                    break;
                }
                let chunk = need(r.take(n))?;
                let room = max_len.saturating_sub(v.len());
                if chunk.len() > room {
                    cut = true;
                }
                v.extend_from_slice(chunk.get(..chunk.len().min(room)).unwrap_or_default());
            }
            let (val, c2) = decode(ti, &v, max_len, enc);
            return Ok((val, cut || c2));
        }
    };
    Ok(decode(ti, &bytes, max_len, enc))
}

/// Step over one value of type `ti` in parameter form (TVP row columns, MS-TDS 2.2.5.5.5.3)
/// without decoding or copying it.
pub fn skip_value(r: &mut Reader<'_>, ti: &TypeInfo) -> Parsed<()> {
    let n = match ti.form {
        Form::Fixed(n) => n as usize,
        Form::Byte => need(r.u8())? as usize,
        Form::UShort => match need(r.u16le())? {
            0xFFFF => 0,
            n => n as usize,
        },
        Form::Text => match need(r.u32le())? {
            u32::MAX => 0,
            n => n as usize,
        },
        Form::Variant => need(r.u32le())? as usize,
        Form::Plp => {
            if need(r.u64le())? == u64::MAX {
                return Ok(());
            }
            // Chunks to the zero-length terminator; each chunk consumes at least its 4-byte
            // length, so the loop ends with the slice.
            loop {
                match need(r.u32le())? {
                    0 => return Ok(()),
                    n => need(r.skip(n as usize))?,
                }
            }
        }
    };
    need(r.skip(n))
}

/// sql_variant body (MS-TDS 2.2.5.5.4): BaseType(1) PropBytes(1) properties, data.
fn variant(body: &[u8], max_len: usize, enc: &'static Encoding) -> Parsed<Value> {
    let mut r = Reader::new(body);
    let base = r.u8().ok_or(Stop::Bad)?;
    let prop_len = r.u8().ok_or(Stop::Bad)? as usize;
    let props = r.take(prop_len).ok_or(Stop::Bad)?;
    let mut p = Reader::new(props);
    let mut ti = TypeInfo {
        ty: base,
        max_len: 0,
        precision: 0,
        scale: 0,
        collation: None,
        form: Form::Byte,
    };
    match base {
        ty::INT1 | ty::BIT => ti.form = Form::Fixed(1),
        ty::INT2 => ti.form = Form::Fixed(2),
        ty::INT4 | ty::DATETIM4 | ty::FLT4 | ty::MONEY4 => ti.form = Form::Fixed(4),
        ty::MONEY | ty::DATETIME | ty::FLT8 | ty::INT8 => ti.form = Form::Fixed(8),
        ty::GUID => {}
        ty::DECIMALN | ty::NUMERICN => {
            ti.precision = p.u8().ok_or(Stop::Bad)?;
            ti.scale = p.u8().ok_or(Stop::Bad)?;
        }
        ty::TIMEN | ty::DATETIME2N | ty::DATETIMEOFFSETN => ti.scale = p.u8().ok_or(Stop::Bad)?,
        ty::DATEN => {}
        ty::BIGVARCHR | ty::BIGCHAR | ty::NVARCHAR | ty::NCHAR => {
            ti.collation = Some(Collation(p.array().ok_or(Stop::Bad)?));
        }
        ty::BIGVARBIN | ty::BIGBINARY => {}
        _ => return Err(Stop::Bad),
    }
    let data = r.rest();
    let (mut v, cut) = decode(&ti, data, max_len, enc);
    if let ParamValue::Null = v {
        v = ParamValue::Undecodable;
    }
    Ok((v, cut))
}

/// Decode the bytes of one non-NULL value.
pub fn decode(ti: &TypeInfo, b: &[u8], max_len: usize, enc: &'static Encoding) -> Value {
    let int = |b: &[u8]| -> Option<i64> {
        Some(match b.len() {
            1 => *b.first()? as i64,
            2 => i16::from_le_bytes(b.try_into().ok()?) as i64,
            4 => i32::from_le_bytes(b.try_into().ok()?) as i64,
            8 => i64::from_le_bytes(b.try_into().ok()?),
            _ => return None,
        })
    };
    let v = match ti.ty {
        ty::NULL => Some(ParamValue::Null),
        ty::INT1 | ty::INT2 | ty::INT4 | ty::INT8 | ty::INTN => int(b).map(ParamValue::Int),
        ty::BIT | ty::BITN => b.first().map(|&x| ParamValue::Bool(x != 0)),
        ty::FLT4 | ty::FLT8 | ty::FLTN => match b.len() {
            4 => b
                .try_into()
                .ok()
                .map(|a| ParamValue::Float(f32::from_le_bytes(a) as f64)),
            8 => b
                .try_into()
                .ok()
                .map(|a| ParamValue::Float(f64::from_le_bytes(a))),
            _ => None,
        },
        ty::MONEY | ty::MONEY4 | ty::MONEYN => money(b).map(ParamValue::Text),
        ty::DECIMAL | ty::NUMERIC | ty::DECIMALN | ty::NUMERICN => {
            decimal(b, ti.scale).map(ParamValue::Text)
        }
        ty::DATETIME | ty::DATETIM4 | ty::DATETIMN => datetime(b).map(ParamValue::Text),
        ty::DATEN => date3(b).map(ParamValue::Text),
        ty::TIMEN => time(b, ti.scale).map(ParamValue::Text),
        ty::DATETIME2N => datetime2(b, ti.scale).map(ParamValue::Text),
        ty::DATETIMEOFFSETN => datetimeoffset(b, ti.scale).map(ParamValue::Text),
        ty::GUID => guid(b).map(ParamValue::Text),
        ty::CHAR | ty::VARCHAR | ty::BIGCHAR | ty::BIGVARCHR | ty::TEXT => {
            let cut = b.len() > max_len;
            let s = dbtap_core::text::decode(b.get(..b.len().min(max_len)).unwrap_or(b), enc);
            return (ParamValue::Text(s), cut);
        }
        ty::NCHAR | ty::NVARCHAR | ty::NTEXT | ty::XML => {
            let keep = b.len().min(max_len) & !1;
            let cut = b.len() > keep;
            return (ParamValue::Text(utf16(b.get(..keep).unwrap_or(b))), cut);
        }
        _ => {
            let cut = b.len() > max_len;
            return (
                ParamValue::Bytes(b.get(..b.len().min(max_len)).unwrap_or(b).to_vec()),
                cut,
            );
        }
    };
    (v.unwrap_or(ParamValue::Undecodable), false)
}

/// MONEY: high 4 bytes then low 4 bytes of a signed 64-bit count of 1/10000; SMALLMONEY: a
/// signed 32-bit count (MS-TDS 2.2.5.5.1.4).
fn money(b: &[u8]) -> Option<String> {
    let v: i64 = match b.len() {
        4 => i32::from_le_bytes(b.try_into().ok()?) as i64,
        8 => {
            let hi = i32::from_le_bytes(b.get(..4)?.try_into().ok()?) as i64;
            let lo = u32::from_le_bytes(b.get(4..)?.try_into().ok()?) as i64;
            (hi << 32) | lo
        }
        _ => return None,
    };
    Some(scaled(v.unsigned_abs() as u128, v < 0, 4))
}

/// DECIMAL / NUMERIC: a sign byte (1 positive, 0 negative), then a little-endian integer of 4,
/// 8, 12 or 16 bytes, scaled by 10^scale (MS-TDS 2.2.5.5.1.6).
fn decimal(b: &[u8], scale: u8) -> Option<String> {
    let (&sign, mag) = b.split_first()?;
    if mag.len() > 16 || scale > 38 {
        return None;
    }
    let mut v: u128 = 0;
    for (i, &x) in mag.iter().enumerate() {
        v |= (x as u128) << (8 * i);
    }
    Some(scaled(v, sign == 0, scale as u32))
}

/// `v / 10^scale` in decimal, with the fraction's leading zeros (`scale` ≤ 38).
fn scaled(v: u128, neg: bool, scale: u32) -> String {
    let mut out = String::with_capacity(24);
    if neg && v != 0 {
        out.push('-');
    }
    let unit = 10u128.pow(scale.min(38));
    push_padded_u128(&mut out, v / unit, 1);
    if scale > 0 {
        out.push('.');
        push_padded_u128(&mut out, v % unit, scale as usize);
    }
    out
}

/// Days from 0001-01-01 to 1900-01-01.
const DAYS_TO_1900: i64 = 693_595;

/// Days from 0001-01-01 to 1970-01-01.
const DAYS_0001_TO_1970: i64 = 719_162;

/// Longest text of a date and time with an offset: `YYYY-MM-DD HH:MM:SS.fffffff +HH:MM`.
const DATETIME_TEXT: usize = 34;

/// Append days since 0001-01-01 as `YYYY-MM-DD`. The year is never negative: the earliest
/// date written is a DATETIMEOFFSET of day 0 shifted by the most negative offset the wire
/// allows (-32768 minutes), 23 days before 0001-01-01, in year 0.
fn push_ymd(out: &mut String, days: i64) {
    let (y, m, d) = dbtap_core::time::civil_from_days(days - DAYS_0001_TO_1970);
    dbtap_core::text::push_ymd(out, y.unsigned_abs(), m.into(), d.into());
}

/// Append `HH:MM:SS` of `secs` since midnight, then `.` and `frac` in `scale` digits when the
/// scale has any.
fn push_time(out: &mut String, secs: u64, frac: u64, scale: u8) {
    push_hms(out, secs / 3600, secs / 60 % 60, secs % 60);
    if scale > 0 {
        out.push('.');
        push_padded(out, frac, scale as usize);
    }
}

/// DATETIME: signed days since 1900-01-01, then 1/300 s since midnight; SMALLDATETIME: unsigned
/// days since 1900-01-01, then minutes (MS-TDS 2.2.5.5.1.8).
fn datetime(b: &[u8]) -> Option<String> {
    let mut s = String::with_capacity(DATETIME_TEXT);
    match b.len() {
        4 => {
            let days = u16::from_le_bytes(b.get(..2)?.try_into().ok()?) as i64;
            let mins = u16::from_le_bytes(b.get(2..)?.try_into().ok()?) as u64;
            if mins >= 24 * 60 {
                return None;
            }
            push_ymd(&mut s, DAYS_TO_1900 + days);
            s.push(' ');
            push_time(&mut s, mins * 60, 0, 0);
        }
        8 => {
            let days = i32::from_le_bytes(b.get(..4)?.try_into().ok()?) as i64;
            let ticks = u32::from_le_bytes(b.get(4..)?.try_into().ok()?) as u64;
            if ticks >= 300 * 86_400 || DAYS_TO_1900 + days < 0 {
                return None;
            }
            // 1/300 s ticks, rounded to milliseconds the way SQL Server displays them.
            let ms = (ticks * 10 + 1) / 3;
            push_ymd(&mut s, DAYS_TO_1900 + days);
            s.push(' ');
            push_time(&mut s, ms / 1000, ms % 1000, 3);
        }
        _ => return None,
    }
    Some(s)
}

/// Little-endian unsigned integer of up to 8 bytes (DATE's 3, TIME's 3 to 5).
fn le_uint(b: &[u8]) -> u64 {
    b.iter().rev().fold(0u64, |a, &x| (a << 8) | x as u64)
}

/// DATE: 3-byte little-endian days since 0001-01-01 (MS-TDS 2.2.5.5.1.10).
fn date3(b: &[u8]) -> Option<String> {
    if b.len() != 3 {
        return None;
    }
    let mut s = String::with_capacity(10);
    push_ymd(&mut s, le_uint(b) as i64);
    Some(s)
}

/// Bytes of a TIME value by scale: 3 for 0-2, 4 for 3-4, 5 for 5-7.
pub fn time_len(scale: u8) -> usize {
    match scale {
        0..=2 => 3,
        3..=4 => 4,
        _ => 5,
    }
}

/// TIME(n)'s count of 10^-n seconds since midnight and the count per second, when `b` is one
/// (the scale is 0 to 7, MS-TDS 2.2.5.4.2; the count is under a day).
fn time_units(b: &[u8], scale: u8) -> Option<(u64, u64)> {
    if scale > 7 || b.len() != time_len(scale) {
        return None;
    }
    let units = le_uint(b);
    let per_sec = 10u64.pow(scale as u32);
    (units / per_sec < 86_400).then_some((units, per_sec))
}

/// TIME(n): an unsigned little-endian count of 10^-n seconds since midnight.
fn time(b: &[u8], scale: u8) -> Option<String> {
    let (units, per_sec) = time_units(b, scale)?;
    let mut s = String::with_capacity(16);
    push_time(&mut s, units / per_sec, units % per_sec, scale);
    Some(s)
}

/// DATETIME2(n): TIME(n) then DATE.
fn datetime2(b: &[u8], scale: u8) -> Option<String> {
    let tl = time_len(scale);
    let (units, per_sec) = time_units(b.get(..tl)?, scale)?;
    let date = b.get(tl..)?;
    if date.len() != 3 {
        return None;
    }
    let mut s = String::with_capacity(DATETIME_TEXT);
    push_ymd(&mut s, le_uint(date) as i64);
    s.push(' ');
    push_time(&mut s, units / per_sec, units % per_sec, scale);
    Some(s)
}

/// DATETIMEOFFSET(n): TIME(n) and DATE in UTC, then a signed 2-byte offset in minutes; shown in
/// local time with its offset, as SQL Server shows it.
fn datetimeoffset(b: &[u8], scale: u8) -> Option<String> {
    let tl = time_len(scale);
    if b.len() != tl + 5 {
        return None;
    }
    let (units, per_sec) = time_units(b.get(..tl)?, scale)?;
    let days = le_uint(b.get(tl..tl + 3)?) as i64;
    let off = i16::from_le_bytes(b.get(tl + 3..)?.try_into().ok()?) as i64;
    let per_day = 86_400 * per_sec as i128;
    let local = (days as i128) * per_day + units as i128 + (off as i128) * 60 * per_sec as i128;
    let ldays = local.div_euclid(per_day) as i64;
    let lunits = local.rem_euclid(per_day) as u64;
    let mut s = String::with_capacity(DATETIME_TEXT);
    push_ymd(&mut s, ldays);
    s.push(' ');
    push_time(&mut s, lunits / per_sec, lunits % per_sec, scale);
    s.push(' ');
    s.push(if off < 0 { '-' } else { '+' });
    push_padded(&mut s, off.unsigned_abs() / 60, 2);
    s.push(':');
    push_padded(&mut s, off.unsigned_abs() % 60, 2);
    Some(s)
}

/// uniqueidentifier: Data1 (4, LE), Data2 (2, LE), Data3 (2, LE), Data4 (8, as is), written as
/// `XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX`.
fn guid(b: &[u8]) -> Option<String> {
    if b.len() != 16 {
        return None;
    }
    let d1 = u32::from_le_bytes(b.get(..4)?.try_into().ok()?).to_be_bytes();
    let d2 = u16::from_le_bytes(b.get(4..6)?.try_into().ok()?).to_be_bytes();
    let d3 = u16::from_le_bytes(b.get(6..8)?.try_into().ok()?).to_be_bytes();
    let d4 = b.get(8..)?;
    let mut s = String::with_capacity(36);
    let groups: [&[u8]; 5] = [&d1, &d2, &d3, d4.get(..2)?, d4.get(2..)?];
    for (i, group) in groups.iter().enumerate() {
        if i > 0 {
            s.push('-');
        }
        for &x in *group {
            s.push(HEX_UPPER[(x >> 4) as usize] as char);
            s.push(HEX_UPPER[(x & 0xf) as usize] as char);
        }
    }
    Some(s)
}

/// Upper-case hex digits by nibble value.
const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

#[cfg(test)]
mod tests {
    use super::*;
    use encoding_rs::WINDOWS_1252;

    fn ti(bytes: &[u8]) -> TypeInfo {
        read_type_info(&mut Reader::new(bytes), Ctx::Param, Tds::V72).unwrap()
    }

    fn val(t: &[u8], v: &[u8]) -> ParamValue {
        read_value(&mut Reader::new(v), &ti(t), 4096, WINDOWS_1252)
            .unwrap()
            .0
    }

    #[test]
    fn integers_and_bits() {
        assert_eq!(
            val(&[ty::INTN, 4], &[4, 0xFE, 0xFF, 0xFF, 0xFF]),
            ParamValue::Int(-2)
        );
        assert_eq!(val(&[ty::INTN, 8], &[0]), ParamValue::Null);
        assert_eq!(val(&[ty::INT1], &[200]), ParamValue::Int(200));
        assert_eq!(val(&[ty::BITN, 1], &[1, 1]), ParamValue::Bool(true));
        assert_eq!(type_name(&ti(&[ty::INTN, 2])), "smallint");
    }

    #[test]
    fn floats_money_decimal() {
        assert_eq!(
            val(&[ty::FLTN, 8], &[8, 0, 0, 0, 0, 0, 0, 0xF8, 0x3F]),
            ParamValue::Float(1.5)
        );
        // MONEY 12.3456 = 123456 = 0x0001E240: high dword 0, low dword 0x0001E240.
        assert_eq!(
            val(&[ty::MONEYN, 8], &[8, 0, 0, 0, 0, 0x40, 0xE2, 0x01, 0]),
            ParamValue::Text("12.3456".into())
        );
        // SMALLMONEY -1.5 = -15000.
        let m = (-15000i32).to_le_bytes();
        assert_eq!(
            val(&[ty::MONEYN, 4], &[4, m[0], m[1], m[2], m[3]]),
            ParamValue::Text("-1.5000".into())
        );
        // DECIMAL(10,2) -123.45: sign 0, 12345 = 0x3039.
        assert_eq!(
            val(&[ty::DECIMALN, 5, 10, 2], &[5, 0, 0x39, 0x30, 0, 0]),
            ParamValue::Text("-123.45".into())
        );
        assert_eq!(
            val(&[ty::NUMERICN, 5, 5, 4], &[5, 1, 5, 0, 0, 0]),
            ParamValue::Text("0.0005".into())
        );
    }

    #[test]
    fn dates_and_times() {
        // DATE 2024-02-29: 738944 days since 0001-01-01 = 0x0B4680.
        assert_eq!(
            val(&[ty::DATEN], &[3, 0x80, 0x46, 0x0B]),
            ParamValue::Text("2024-02-29".into())
        );
        // DATETIME 1900-01-02 00:00:01: days 1, ticks 300.
        assert_eq!(
            val(&[ty::DATETIMN, 8], &[8, 1, 0, 0, 0, 0x2C, 0x01, 0, 0]),
            ParamValue::Text("1900-01-02 00:00:01.000".into())
        );
        // SMALLDATETIME 1900-01-01 01:01.
        assert_eq!(
            val(&[ty::DATETIMN, 4], &[4, 0, 0, 61, 0]),
            ParamValue::Text("1900-01-01 01:01:00".into())
        );
        // TIME(3) 12:00:00.500 = 43200500 ms = 0x0293_2FF4 → 4 bytes.
        assert_eq!(
            val(&[ty::TIMEN, 3], &[4, 0xF4, 0x2F, 0x93, 0x02]),
            ParamValue::Text("12:00:00.500".into())
        );
        // DATETIME2(0) 0001-01-01 00:00:01.
        assert_eq!(
            val(&[ty::DATETIME2N, 0], &[6, 1, 0, 0, 0, 0, 0]),
            ParamValue::Text("0001-01-01 00:00:01".into())
        );
        // DATETIMEOFFSET(0): 2024-02-29 23:30:00 UTC, +08:00 → 2024-03-01 07:30:00 +08:00.
        let secs: u32 = 23 * 3600 + 30 * 60;
        let s = secs.to_le_bytes();
        let off = 480i16.to_le_bytes();
        assert_eq!(
            val(
                &[ty::DATETIMEOFFSETN, 0],
                &[8, s[0], s[1], s[2], 0x80, 0x46, 0x0B, off[0], off[1]]
            ),
            ParamValue::Text("2024-03-01 07:30:00 +08:00".into())
        );
    }

    #[test]
    fn strings_binary_guid_plp() {
        // NVARCHAR(20) with collation: "hi".
        let t = [ty::NVARCHAR, 40, 0, 0x09, 0x04, 0xD0, 0x00, 0x34];
        assert_eq!(
            val(&t, &[4, 0, b'h', 0, b'i', 0]),
            ParamValue::Text("hi".into())
        );
        assert_eq!(val(&t, &[0xFF, 0xFF]), ParamValue::Null);
        // VARCHAR(10) in Chinese_PRC: GBK.
        let t = [ty::BIGVARCHR, 10, 0, 0x04, 0x08, 0x10, 0x00, 0x00];
        assert_eq!(
            val(&t, &[4, 0, 0xbb, 0xbc, 0xd5, 0xdf]),
            ParamValue::Text("患者".into())
        );
        // NVARCHAR(MAX): PLP with two chunks.
        let t = [ty::NVARCHAR, 0xFF, 0xFF, 0x09, 0x04, 0xD0, 0x00, 0x34];
        assert_eq!(type_name(&ti(&t)), "nvarchar(max)");
        let mut v = 6u64.to_le_bytes().to_vec();
        v.extend_from_slice(&[
            2, 0, 0, 0, b'a', 0, 4, 0, 0, 0, b'b', 0, b'c', 0, 0, 0, 0, 0,
        ]);
        assert_eq!(val(&t, &v), ParamValue::Text("abc".into()));
        assert_eq!(val(&t, &u64::MAX.to_le_bytes()), ParamValue::Null);
        // GUID 6F9619FF-8B86-D011-B42D-00C04FC964FF (the spec's example bytes order).
        let g = [
            16, 0xFF, 0x19, 0x96, 0x6F, 0x86, 0x8B, 0x11, 0xD0, 0xB4, 0x2D, 0x00, 0xC0, 0x4F, 0xC9,
            0x64, 0xFF,
        ];
        assert_eq!(
            val(&[ty::GUID, 16], &g),
            ParamValue::Text("6F9619FF-8B86-D011-B42D-00C04FC964FF".into())
        );
        assert_eq!(
            val(&[ty::BIGVARBIN, 8, 0], &[2, 0, 0xde, 0xad]),
            ParamValue::Bytes(vec![0xde, 0xad])
        );
    }

    #[test]
    fn variant_and_limits() {
        // sql_variant holding INT4 7: length 6, base 0x38, no properties, 4 bytes.
        assert_eq!(
            val(
                &[ty::SSVARIANT, 0x10, 0x1F, 0, 0],
                &[6, 0, 0, 0, ty::INT4, 0, 7, 0, 0, 0]
            ),
            ParamValue::Int(7)
        );
        // A value cut at the limit is flagged.
        let t = ti(&[ty::BIGVARBIN, 8, 0]);
        let (v, cut) =
            read_value(&mut Reader::new(&[4, 0, 1, 2, 3, 4]), &t, 2, WINDOWS_1252).unwrap();
        assert_eq!(v, ParamValue::Bytes(vec![1, 2]));
        assert!(cut);
        // Incomplete and unknown.
        assert_eq!(
            read_value(&mut Reader::new(&[4, 0, 1]), &t, 2, WINDOWS_1252),
            Err(Stop::Incomplete)
        );
        assert_eq!(
            read_type_info(&mut Reader::new(&[0x01]), Ctx::Param, Tds::V72),
            Err(Stop::Bad)
        );
    }

    #[test]
    fn variant_time_scales_over_seven_are_undecodable() {
        // sql_variant of a TIMEN, DATETIME2N or DATETIMEOFFSETN: the scale is the one property
        // byte. MS-TDS 2.2.5.4.2 allows scales 0 to 7; a larger one (here 7 and 200 with the
        // same 5 value bytes) must be refused before any 10^scale is computed.
        let units = (10_000_000u64 * 3661 + 1_234_567).to_le_bytes(); // 01:01:01.1234567
        let variant = |base: u8, scale: u8, extra: &[u8]| {
            let mut body = vec![base, 1, scale];
            body.extend_from_slice(&units[..5]);
            body.extend_from_slice(extra);
            let mut v = (body.len() as u32).to_le_bytes().to_vec();
            v.extend_from_slice(&body);
            val(&[ty::SSVARIANT, 0x10, 0x1F, 0, 0], &v)
        };
        // DATE 2024-03-01: 738 945 days since 0001-01-01; offset +08:00 (480 minutes).
        let date = [0x81, 0x46, 0x0b];
        let offset: Vec<u8> = date.iter().copied().chain(480i16.to_le_bytes()).collect();
        assert_eq!(
            variant(ty::TIMEN, 7, &[]),
            ParamValue::Text("01:01:01.1234567".into())
        );
        assert_eq!(
            variant(ty::DATETIME2N, 7, &date),
            ParamValue::Text("2024-03-01 01:01:01.1234567".into())
        );
        assert_eq!(
            variant(ty::DATETIMEOFFSETN, 7, &offset),
            ParamValue::Text("2024-03-01 09:01:01.1234567 +08:00".into())
        );
        assert_eq!(variant(ty::TIMEN, 200, &[]), ParamValue::Undecodable);
        assert_eq!(variant(ty::DATETIME2N, 200, &date), ParamValue::Undecodable);
        assert_eq!(
            variant(ty::DATETIMEOFFSETN, 200, &offset),
            ParamValue::Undecodable
        );
    }
}
