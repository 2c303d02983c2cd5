//! Query answers walked, not kept: describe information (`10`), row headers (`06`), row data
//! (`07`) and bit vectors (`15`), so that the end-of-call block after the rows can be reached
//! from the answer's first byte ([`crate::ttc::call_status`]) and its current row read as the
//! rows a query fetched. Values are stepped over by their lengths; none is decoded or stored.
//!
//! The layouts are python-oracledb's (`messages/base.pyx`: `_process_describe_info`,
//! `_process_metadata`, `_process_row_header`, `_process_bit_vector`, `_process_column_data`),
//! read here only with compressed integers (JDBC thin, python-oracledb thin), where they were
//! checked on the JDBC thin 11g answers of `wswiki__11_sqldeveloper11_2016.pcapng` (TTC field
//! version 6; frames 57, 59, 159, 161: VARCHAR2 columns, AL32UTF8, bit vectors), whose describe
//! reads exactly as python-oracledb reads a field version below 12.2, and JDBC thin 10g in
//! `wswiki__10_sqldeveloper10_2016.pcapng` (field version 4, frame 59): before field version 6
//! a column has no UDS flags and the describe no `dcbqcky` field. The fields of later versions
//! (12.2 column id, 23ai domains, annotations, vectors) are python-oracledb's, seen here only in
//! the scripted responder's answers (`fixtures/tns/live_thin_session`: its describes read at
//! field versions 13 and 24).

use crate::ttc::field_version::{V11_2, V12_2, V23_1, V23_1_EXT_3, V23_4};
use crate::ttc::Cur;

/// Columns of a query's describe information read at the most (Oracle's limit on a select
/// list is 1000 columns).
pub const MAX_COLUMNS: u64 = 1000;
/// Annotations of one column read at the most (23ai).
pub const MAX_ANNOTATIONS: u64 = 1024;

/// Oracle type numbers (python-oracledb constants.pxi `ORA_TYPE_NUM_*`) whose fetched values are
/// one length-prefixed byte string (`read_oracle_data`): VARCHAR2, NUMBER, DATE, RAW, CHAR,
/// BINARY_FLOAT, BINARY_DOUBLE, TIMESTAMP, TIMESTAMP WITH TIME ZONE, INTERVAL YEAR TO MONTH,
/// INTERVAL DAY TO SECOND, TIMESTAMP WITH LOCAL TIME ZONE, BOOLEAN.
const LENGTH_PREFIXED: [u8; 13] = [1, 2, 12, 23, 96, 100, 101, 180, 181, 182, 183, 231, 252];
/// LONG and LONG RAW: a length-prefixed value, then a null indicator sb4 and a return code ub4.
const LONG_TYPES: [u8; 2] = [8, 24];
/// ROWID: in a fetch, a length byte then the rowid's fields.
const ROWID: u8 = 11;
/// UROWID: never null by describe.
const UROWID: u8 = 208;

/// How one column's value is written in row data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// Nothing on the wire: the describe gave the column a buffer size of 0 ("column is null by
    /// describe").
    Absent,
    /// One length-prefixed byte string (0 or 0xFF: null; 0xFE: chunks).
    Bytes,
    /// LONG / LONG RAW: bytes, then null indicator and return code.
    Long,
    /// ROWID: length byte (0 or 0xFF: null), then block address ub4, partition ub2, a byte,
    /// block number ub4, slot ub2.
    Rowid,
}

/// A string or byte string preceded by its ub4 length (`read_str_with_length`,
/// `read_bytes_with_length`): the length, then the value with its own length byte.
fn skip_with_length(c: &mut Cur<'_>) -> Option<()> {
    if c.ub4()? > 0 {
        c.clr(0)?;
    }
    Some(())
}

/// Describe information, from just after its message type: a chunked prefix, then the
/// columns. `None` when a column has a type whose fetched values are not stepped over here
/// (LOBs, objects, cursors, JSON, vectors, UROWID) or when anything does not read.
pub fn describe(c: &mut Cur<'_>, field_version: u8) -> Option<Vec<Form>> {
    c.clr(0)?; // chunked prefix (python-oracledb skips it: `skip_raw_bytes_chunked`)
    let _max_row_size = c.ub4()?;
    let n = c.ub4()?;
    if n > MAX_COLUMNS {
        return None;
    }
    if n > 0 {
        c.u8()?;
    }
    let mut forms = Vec::with_capacity(n as usize);
    for _ in 0..n {
        forms.push(column(c, field_version)?);
    }
    skip_with_length(c)?; // current date
    for _ in 0..4 {
        c.ub4()?; // dcbflag, dcbmdbz, dcbmnpr, dcbmxpr
    }
    if field_version >= V11_2 {
        skip_with_length(c)?; // dcbqcky
    }
    Some(forms)
}

/// One column's metadata (`_process_metadata`).
fn column(c: &mut Cur<'_>, field_version: u8) -> Option<Form> {
    let ora_type = c.u8()?;
    c.u8()?; // flags
    c.u8()?; // precision
    c.u8()?; // scale
    let buffer_size = c.ub4()?;
    c.ub4()?; // max array elements
    c.ub8()?; // continuation flags
    skip_with_length(c)?; // type OID
    c.ub2()?; // version
    c.ub2()?; // character set id
    c.u8()?; // character set form
    c.ub4()?; // max size
    if field_version >= V12_2 {
        c.ub4()?; // column id
    }
    c.u8()?; // nulls allowed
    c.u8()?; // v7 length of name
    for _ in 0..3 {
        skip_with_length(c)?; // name, schema, type name
    }
    c.ub2()?; // column position
    if field_version >= V11_2 {
        c.ub4()?; // UDS flags
    }
    if field_version >= V23_1 {
        skip_with_length(c)?; // domain schema
        skip_with_length(c)?; // domain name
    }
    if field_version >= V23_1_EXT_3 && c.ub4()? > 0 {
        c.u8()?;
        let n = c.ub4()?;
        if n > MAX_ANNOTATIONS {
            return None;
        }
        c.u8()?;
        for _ in 0..n {
            skip_with_length(c)?; // key
            skip_with_length(c)?; // value
            c.ub4()?; // flags
        }
        c.ub4()?; // flags
    }
    if field_version >= V23_4 {
        c.ub4()?; // vector dimensions
        c.u8()?; // vector format
        c.u8()?; // vector flags
    }
    if buffer_size == 0 && !LONG_TYPES.contains(&ora_type) && ora_type != UROWID {
        return Some(Form::Absent);
    }
    if LENGTH_PREFIXED.contains(&ora_type) {
        Some(Form::Bytes)
    } else if LONG_TYPES.contains(&ora_type) {
        Some(Form::Long)
    } else if ora_type == ROWID {
        Some(Form::Rowid)
    } else {
        None
    }
}

/// Bytes of a bit vector for `columns` columns: one bit a column.
fn bit_vector_len(columns: usize) -> usize {
    columns.div_ceil(8)
}

/// A row header, from just after its message type; a bit vector in it applies to the next row.
pub fn row_header(c: &mut Cur<'_>, bits: &mut Option<Vec<u8>>) -> Option<()> {
    c.u8()?; // flags
    c.ub2()?; // requests
    c.ub4()?; // iteration
    c.ub4()?; // iterations
    c.ub2()?; // buffer length
    let n = c.ub4()?;
    if n > 0 {
        c.u8()?; // the length again
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n <= bit_vector_len(MAX_COLUMNS as usize))?;
        *bits = Some(c.take(n)?.to_vec());
    }
    skip_with_length(c) // row id
}

/// A bit vector message, from just after its type: the columns the next row sends (a clear bit:
/// the value is the previous row's, not sent).
pub fn bit_vector(c: &mut Cur<'_>, columns: usize, bits: &mut Option<Vec<u8>>) -> Option<()> {
    c.ub2()?; // columns sent
    *bits = Some(c.take(bit_vector_len(columns))?.to_vec());
    Some(())
}

/// One row of data, from just after its message type: every column's value stepped over, but
/// those the bit vector says are repeated from the previous row. The bit vector is used up.
pub fn row_data(c: &mut Cur<'_>, forms: &[Form], bits: &mut Option<Vec<u8>>) -> Option<()> {
    let bits = bits.take();
    for (i, form) in forms.iter().enumerate() {
        let sent = bits
            .as_ref()
            .is_none_or(|b| b.get(i / 8).is_some_and(|&x| x & (1 << (i % 8)) != 0));
        if !sent {
            continue;
        }
        match form {
            Form::Absent => {}
            Form::Bytes => {
                c.clr(0)?;
            }
            Form::Long => {
                c.clr(0)?;
                c.ub4()?; // null indicator
                c.ub4()?; // return code
            }
            Form::Rowid => {
                let n = c.u8()?;
                if n != 0 && n != 0xff {
                    c.ub4()?;
                    c.ub2()?;
                    c.u8()?;
                    c.ub4()?;
                    c.ub2()?;
                }
            }
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ttc::{call_status, command, IntMode, Repr, REPRS};
    use dbtap_core::testing::unhex;

    /// JDBC thin: compressed integers, 1-byte pointers (the first representation tried).
    const JDBC: Repr = REPRS[0];

    /// wswiki__11_sqldeveloper11_2016.pcapng frame 57 (TTC part): the answer to SQL Developer's
    /// `select parameter, value from nls_session_parameters union all …` (field version 6):
    /// describe (two VARCHAR2 columns), a row header, ten rows (bit vectors between them, the
    /// first column always sent), return parameters, the end-of-call block at row 10.
    const NLS_EXECUTE: &str = "\
        1017f438e0990eee8f806ae9d3283eb2041278740c0f14350d0201180102510180000001780000000002036901011e\
        0109010909504152414d45544552000000000180000001a00000000002036901014b010501050556414c5545000001\
        010001070778740c0f1436100000010a010a000622010200010a000000070c4e4c535f4c414e475541474508414d45\
        524943414e070d4e4c535f5445525249544f525907414d455249434115010203070c4e4c535f43555252454e435901\
        241501020307104e4c535f49534f5f43555252454e435907414d45524943411501020307164e4c535f4e554d455249\
        435f43484152414354455253022e2c15010203070c4e4c535f43414c454e44415209475245474f5249414e15010203\
        070f4e4c535f444154455f464f524d41540944442d4d4f4e2d52521501020307114e4c535f444154455f4c414e4755\
        41474508414d45524943414e1501020307084e4c535f534f52540642494e41525915010203070f4e4c535f54494d45\
        5f464f524d41540e48482e4d492e535358464620414d0801060311e17c0001010000000000000401010130010a0000\
        0001010003000120000000000000000000003000010100000000";

    /// Frame 59: the answer to the fetch that follows: a row header, the last ten rows, no
    /// describe, the block at row 20.
    const NLS_FETCH: &str = "\
        0602010200010a00000007144e4c535f54494d455354414d505f464f524d41541844442d4d4f4e2d52522048482e4d\
        492e535358464620414d07124e4c535f54494d455f545a5f464f524d41541248482e4d492e535358464620414d2054\
        5a5207174e4c535f54494d455354414d505f545a5f464f524d41541c44442d4d4f4e2d52522048482e4d492e535358\
        464620414d20545a5207114e4c535f4455414c5f43555252454e4359012407084e4c535f434f4d500642494e415259\
        07144e4c535f4c454e4754485f53454d414e54494353044259544507134e4c535f4e434841525f434f4e565f455843\
        500546414c5345070b44425f54494d455a4f4e45062b30303a3030071053455353494f4e5f54494d455a4f4e450b41\
        7369612f526979616468071753455353494f4e5f54494d455a4f4e455f4f4646534554072b30333a3030000401010131\
        0114000000010100030000000000000000000000003100010100000000";

    /// wswiki__10_sqldeveloper10_2016.pcapng frame 59: `SELECT DBTIMEZONE FROM DUAL` through
    /// JDBC thin 10g (field version 4): one VARCHAR2 column, one row.
    const DBTIMEZONE_10G: &str = "\
        1017df8ca6f0f8f9da84fe37b7ab2cd9c16c78740c0f133610010601014d0180000001060000000001b2010106010a\
        010a0a444254494d455a4f4e4500000001070778740c0f14251e0101021fe8010201020602010100010100000007\
        062b30303a3030080106030a9770000102000000000000040101012d01010000000102000300000000000000000000\
        00002d00010100000000";

    #[test]
    fn query_answers_are_walked_to_their_block() {
        let mut columns = None;
        let s = call_status(&unhex(NLS_EXECUTE), JDBC, Some(6), &mut columns).unwrap();
        assert_eq!((s.rows, s.error, s.command), (10, 0, command::SELECT));
        assert_eq!(columns, Some(vec![Form::Bytes, Form::Bytes]));
        // The fetch's answer has no describe: the columns of the first answer are used.
        let s = call_status(&unhex(NLS_FETCH), JDBC, Some(6), &mut columns).unwrap();
        assert_eq!((s.rows, s.command), (20, command::SELECT));
        assert_eq!(
            call_status(&unhex(NLS_FETCH), JDBC, Some(6), &mut None),
            None
        );

        let mut columns = None;
        let s = call_status(&unhex(DBTIMEZONE_10G), JDBC, Some(4), &mut columns).unwrap();
        assert_eq!((s.rows, s.command, s.cursor), (1, command::SELECT, 2));
        // Read with the field version 6 layout, the describe runs into the row header.
        assert_eq!(
            call_status(&unhex(DBTIMEZONE_10G), JDBC, Some(6), &mut None),
            None
        );
    }

    #[test]
    fn damaged_or_unknown_answers_give_nothing() {
        let d = unhex(NLS_EXECUTE);
        let whole = call_status(&d, JDBC, Some(6), &mut None);
        // Cut anywhere: no block before the block's head is whole, never another one.
        // The block `04 01 01 01 30 01 0a …` and its 14-byte head (up to the command type).
        let block = d.windows(5).rposition(|w| w == [4, 1, 1, 1, 0x30]).unwrap();
        let head_end = block + 14;
        for n in 0..d.len() {
            let got = call_status(&d[..n], JDBC, Some(6), &mut None);
            if n < head_end {
                assert_eq!(got, None, "cut at {n}");
            } else {
                assert_eq!(got, whole, "cut at {n}");
            }
        }
        // The first column made a CLOB (type 112): its values are not stepped over.
        let mut clob = d.clone();
        // `51 01 80 00 00 02 01 78 …`: the byte before the columns, the first column's type.
        let at = d.windows(3).position(|w| w == [0x51, 0x01, 0x80]).unwrap() + 1;
        clob[at] = 112;
        assert_eq!(call_status(&clob, JDBC, Some(6), &mut None), None);
        // Fixed integers: rows are not walked.
        let fixed = Repr {
            ints: IntMode::FixedLe,
            ptr: 1,
        };
        assert_eq!(call_status(&d, fixed, Some(6), &mut None), None);
    }

    #[test]
    fn bit_vectors_skip_repeated_columns() {
        // Two columns, the second repeated: only the first value is on the wire.
        let forms = [Form::Bytes, Form::Bytes];
        let d = [0x01, 0x01, 0x01, 0x03, b'a', b'b', b'c'];
        let mut bits = None;
        let mut c = Cur::new(&d, 0, JDBC);
        bit_vector(&mut c, 2, &mut bits).unwrap();
        assert_eq!(bits.as_deref(), Some(&[0x01][..]));
        row_data(&mut c, &forms, &mut bits).unwrap();
        assert_eq!((c.pos, bits), (d.len(), None));
        // Absent, LONG and ROWID forms.
        let d = [
            0x01, b'x', 0x00, 0x00, 0x04, 0x01, 0x01, 0x01, 0x02, 0x07, 0x01, 0x03, 0x01, 0x09,
        ];
        let mut c = Cur::new(&d, 0, JDBC);
        row_data(&mut c, &[Form::Absent, Form::Long, Form::Rowid], &mut None).unwrap();
        assert_eq!(c.pos, d.len());
    }
}
