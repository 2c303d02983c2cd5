//! Table-valued parameters (MS-TDS 2.2.5.5.5, TDS 7.3+): walked, not decoded. An audit record
//! says which table type was passed and how many rows it carried; the row values are skipped
//! by their column TYPE_INFOs (a TVP row, like a result row, has no length of its own).
//!
//! ```text
//! TVP_TYPE_INFO   = %xF3 DbName OwningSchema TypeName          ; three B_VARCHARs
//!                   TVP_COLMETADATA                            ; Count, or %xFFFF = NULL TVP
//!                   [TVP_ORDER_UNIQUE] [TVP_COLUMN_ORDERING]   ; %x10 / %x11
//!                   TVP_END_TOKEN                              ; %x00
//!                   *(TVP_ROW_TOKEN AllColumnData)             ; %x01, one value per column
//!                   TVP_END_TOKEN
//! TvpColumnMetaData = UserType (ULONG) Flags (USHORT) TYPE_INFO ColName (B_VARCHAR)
//! ```

use crate::types::{read_type_info, skip_value, ty, Ctx, Parsed, Stop, Tds, TypeInfo};
use crate::wire::Reader;

/// Most columns of a table type (SQL Server allows 1024 per table).
pub const MAX_TVP_COLUMNS: usize = 1024;

/// TVP_NULL_TOKEN in place of the column count: a NULL table (no metadata, no rows).
const TVP_NULL_TOKEN: u16 = 0xFFFF;
/// Ends the optional metadata tokens, then the rows.
const TVP_END_TOKEN: u8 = 0x00;
/// Starts a row.
const TVP_ROW_TOKEN: u8 = 0x01;
/// TVP_ORDER_UNIQUE (2.2.5.5.5.2): Count, then Count × (ColNum USHORT, flags BYTE).
const TVP_ORDER_UNIQUE_TOKEN: u8 = 0x10;
/// TVP_COLUMN_ORDERING (2.2.5.5.5.2): Count, then Count × ColNum USHORT.
const TVP_COLUMN_ORDERING_TOKEN: u8 = 0x11;
/// TvpColumnMetaData Flags fDefault: the column takes its default, and its value is not sent
/// in the rows.
const F_DEFAULT: u16 = 0x0200;

/// What a TVP parameter carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tvp {
    /// `schema.type` as sent (the database part, which MUST be empty, is left out).
    pub type_name: String,
    /// Columns of the table type (0 for a NULL TVP).
    pub columns: u16,
    /// Rows sent.
    pub rows: u64,
    /// The NULL table (TVP_NULL_TOKEN).
    pub null: bool,
}

/// Read a TVP_TYPE_INFO and its rows at `r` (positioned on the 0xF3 type byte).
pub fn read(r: &mut Reader<'_>, tds: Tds) -> Parsed<Tvp> {
    if r.u8().ok_or(Stop::Incomplete)? != ty::TVP {
        return Err(Stop::Bad);
    }
    let _db = r.b_varchar().ok_or(Stop::Incomplete)?;
    let schema = r.b_varchar().ok_or(Stop::Incomplete)?;
    let name = r.b_varchar().ok_or(Stop::Incomplete)?;
    let type_name = if schema.is_empty() {
        name
    } else {
        format!("{schema}.{name}")
    };
    let count = r.u16le().ok_or(Stop::Incomplete)?;
    let mut cols: Vec<TypeInfo> = Vec::new();
    let null = count == TVP_NULL_TOKEN;
    if !null {
        if count as usize > MAX_TVP_COLUMNS {
            return Err(Stop::Bad);
        }
        for _ in 0..count {
            let _user_type = r.u32le().ok_or(Stop::Incomplete)?;
            let flags = r.u16le().ok_or(Stop::Incomplete)?;
            let ti = read_type_info(r, Ctx::Param, tds)?;
            let _col_name = r.b_varchar().ok_or(Stop::Incomplete)?;
            if flags & F_DEFAULT == 0 {
                cols.push(ti);
            }
        }
    }
    optional_metadata(r)?;
    let mut rows = 0u64;
    loop {
        match r.u8().ok_or(Stop::Incomplete)? {
            TVP_END_TOKEN => break,
            TVP_ROW_TOKEN if !null => {
                for ti in &cols {
                    skip_value(r, ti)?;
                }
                rows += 1;
            }
            _ => return Err(Stop::Bad),
        }
    }
    Ok(Tvp {
        type_name,
        columns: if null { 0 } else { count },
        rows,
        null,
    })
}

/// TVP_ORDER_UNIQUE and TVP_COLUMN_ORDERING (each at most once, in that order), up to and
/// including the TVP_END_TOKEN that ends the metadata.
fn optional_metadata(r: &mut Reader<'_>) -> Parsed<()> {
    let mut seen = 0u8;
    loop {
        let t = r.u8().ok_or(Stop::Incomplete)?;
        let entry = match t {
            TVP_END_TOKEN => return Ok(()),
            TVP_ORDER_UNIQUE_TOKEN if seen == 0 => 3,
            TVP_COLUMN_ORDERING_TOKEN if seen <= 1 => 2,
            _ => return Err(Stop::Bad),
        };
        seen = t - TVP_ORDER_UNIQUE_TOKEN + 1;
        let n = r.u16le().ok_or(Stop::Incomplete)? as usize;
        if n > MAX_TVP_COLUMNS {
            return Err(Stop::Bad);
        }
        r.skip(n * entry).ok_or(Stop::Incomplete)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b_varchar(s: &str) -> Vec<u8> {
        let mut v = vec![s.len() as u8];
        v.extend(s.encode_utf16().flat_map(|c| c.to_le_bytes()));
        v
    }

    /// A TVP of type dbo.PatientList (id INT NOT NULL, name NVARCHAR(50), a defaulted
    /// admitted DATETIME2), ordered unique on id, with two rows.
    fn patient_list() -> Vec<u8> {
        let mut v = vec![ty::TVP];
        v.extend(b_varchar(""));
        v.extend(b_varchar("dbo"));
        v.extend(b_varchar("PatientList"));
        v.extend_from_slice(&3u16.to_le_bytes());
        // id: UserType 0, Flags 0 (not nullable), INTN(4), ColName empty.
        v.extend_from_slice(&[0, 0, 0, 0, 0x00, 0x00, ty::INTN, 4, 0]);
        // name: nullable, NVARCHAR(50) with collation.
        v.extend_from_slice(&[0, 0, 0, 0, 0x01, 0x00, ty::NVARCHAR, 100, 0]);
        v.extend_from_slice(&[0x09, 0x04, 0xD0, 0x00, 0x34, 0]);
        // admitted: fDefault | fNullable, DATETIME2N(7): not sent in rows.
        v.extend_from_slice(&[0, 0, 0, 0, 0x01, 0x02, ty::DATETIME2N, 7, 0]);
        // TVP_ORDER_UNIQUE: 1 column, ColNum 1, fOrderAsc | fUnique.
        v.extend_from_slice(&[TVP_ORDER_UNIQUE_TOKEN, 1, 0, 1, 0, 0x05]);
        v.push(TVP_END_TOKEN);
        // Row 1: id 7, name "Ann".
        v.extend_from_slice(&[TVP_ROW_TOKEN, 4, 7, 0, 0, 0, 6, 0]);
        v.extend("Ann".encode_utf16().flat_map(|c| c.to_le_bytes()));
        // Row 2: id 8, name NULL.
        v.extend_from_slice(&[TVP_ROW_TOKEN, 4, 8, 0, 0, 0, 0xFF, 0xFF]);
        v.push(TVP_END_TOKEN);
        v
    }

    #[test]
    fn rows_are_counted_and_skipped() {
        let v = patient_list();
        let mut r = Reader::new(&v);
        let t = read(&mut r, Tds::V72).unwrap();
        assert_eq!(
            t,
            Tvp {
                type_name: "dbo.PatientList".into(),
                columns: 3,
                rows: 2,
                null: false
            }
        );
        assert_eq!(r.remaining(), 0);
        // Every cut is incomplete, never a panic or a wrong answer.
        for cut in 0..v.len() {
            assert_eq!(
                read(&mut Reader::new(&v[..cut]), Tds::V72),
                Err(Stop::Incomplete),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn null_tvp_and_bad_tokens() {
        // A NULL TVP: TVP_NULL_TOKEN, end of metadata, no rows.
        let mut v = vec![ty::TVP, 0, 0];
        v.extend(b_varchar("Ids"));
        v.extend_from_slice(&[0xFF, 0xFF, TVP_END_TOKEN, TVP_END_TOKEN]);
        let t = read(&mut Reader::new(&v), Tds::V72).unwrap();
        assert!(t.null);
        assert_eq!((t.type_name.as_str(), t.rows, t.columns), ("Ids", 0, 0));
        // A row in a NULL TVP, an unknown metadata token, too many columns: not a TVP.
        let mut bad = v.clone();
        bad[v.len() - 1] = TVP_ROW_TOKEN;
        assert_eq!(read(&mut Reader::new(&bad), Tds::V72), Err(Stop::Bad));
        let mut bad = v.clone();
        bad[v.len() - 2] = 0x12;
        assert_eq!(read(&mut Reader::new(&bad), Tds::V72), Err(Stop::Bad));
        let mut bad = v[..v.len() - 4].to_vec();
        bad.extend_from_slice(&(MAX_TVP_COLUMNS as u16 + 1).to_le_bytes());
        assert_eq!(read(&mut Reader::new(&bad), Tds::V72), Err(Stop::Bad));
    }
}
