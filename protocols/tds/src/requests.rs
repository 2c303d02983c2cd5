//! Client requests: SQL Batch (MS-TDS 2.2.6.7), RPC Request (2.2.6.6), both after the optional
//! ALL_HEADERS block (2.2.5.3).

use dbtap_core::{Param, ParamValue};
use encoding_rs::Encoding;

use crate::types::{read_type_info, read_value, ty, type_name, Ctx, Stop, TypeInfo};
use crate::wire::{utf16, Reader};

/// Header types inside ALL_HEADERS.
const HEADER_TYPES: std::ops::RangeInclusive<u16> = 1..=3;
/// Headers read at most inside ALL_HEADERS.
const MAX_HEADERS: usize = 16;

/// Length of an ALL_HEADERS block at the head of `d` (TDS 7.2+), or 0 when there is none.
///
/// ALL_HEADERS: TotalLength (4, LE, itself included), then headers of HeaderLength (4, LE,
/// itself included) + HeaderType (2, LE) + data. Only a block whose headers chain exactly to
/// TotalLength with known types is taken, so that TDS 7.1 text (which has no ALL_HEADERS) is not
/// eaten: UTF-16LE text never starts with such a chain.
pub fn all_headers_len(d: &[u8]) -> usize {
    let mut r = Reader::new(d);
    let Some(total) = r.u32le() else { return 0 };
    let total = total as usize;
    if total < 4 || total > d.len() {
        return 0;
    }
    let mut pos = 4usize;
    for _ in 0..MAX_HEADERS {
        if pos == total {
            return total;
        }
        let mut h = Reader::new(d.get(pos..total).unwrap_or_default());
        let (Some(len), Some(t)) = (h.u32le(), h.u16le()) else {
            return 0;
        };
        if (len as usize) < 6 || !HEADER_TYPES.contains(&t) {
            return 0;
        }
        pos = match pos.checked_add(len as usize) {
            Some(p) if p <= total => p,
            _ => return 0,
        };
    }
    0
}

/// The EnclavePackage that follows ALL_HEADERS when the session negotiated Always Encrypted
/// with secure enclaves (MS-TDS 2.2.6.6 and 2.2.6.7: `ALL_HEADERS *EnclavePackage` before the
/// RPCs or the SQL text; sent when the acknowledged COLUMNENCRYPTION version is 2 or 3, with
/// length 0 when the statement needs no enclave). It is a USHORT length and that many bytes:
/// the enclave session id and column encryption keys encrypted for the enclave, never shown.
/// Returns the package length and what follows it, or `None` when the length runs past `d`.
pub fn skip_enclave_package(d: &[u8]) -> Option<(usize, &[u8])> {
    let mut r = Reader::new(d);
    let n = usize::from(r.u16le()?);
    let rest = d.get(2..)?;
    Some((n, rest.get(n..)?))
}

/// Well-known procedure ids (MS-TDS 2.2.6.6, ProcID).
pub fn proc_name(id: u16) -> Option<&'static str> {
    Some(match id {
        1 => "sp_cursor",
        2 => "sp_cursoropen",
        3 => "sp_cursorprepare",
        4 => "sp_cursorexecute",
        5 => "sp_cursorprepexec",
        6 => "sp_cursorunprepare",
        7 => "sp_cursorfetch",
        8 => "sp_cursoroption",
        9 => "sp_cursorclose",
        10 => "sp_executesql",
        11 => "sp_prepare",
        12 => "sp_execute",
        13 => "sp_prepexec",
        14 => "sp_prepexecrpc",
        15 => "sp_unprepare",
        _ => return None,
    })
}

/// StatusFlags (MS-TDS 2.2.6.6): fByRefValue, an output parameter.
const F_BY_REF_VALUE: u8 = 0x01;
/// StatusFlags fEncrypted (TDS 7.4, Always Encrypted): the value is cipher text and a
/// ParamCipherInfo follows it.
const F_ENCRYPTED: u8 = 0x08;
/// ParamCipherInfo EncryptionAlgo 0: a custom algorithm, named by an AlgoName that follows.
const CUSTOM_ALGORITHM: u8 = 0;

/// One decoded RPC parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcParam {
    /// Output parameter (fByRefValue).
    pub output: bool,
    /// Name (`None` when the ParamName is empty: positional), type and value.
    pub param: Param,
}

/// One RPC of an RPC request message.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rpc {
    /// Procedure name (well-known ids mapped to their names, others `proc_id_N`).
    pub procedure: String,
    /// Parameters in order (bounded).
    pub params: Vec<RpcParam>,
    /// Parameters dropped at the limit.
    pub params_dropped: u64,
    /// Parameter data could not be decoded from some parameter on (unsupported type such as a
    /// table-valued parameter, or a malformed / cut message).
    pub undecodable: bool,
}

/// Parse an RPC request message (after ALL_HEADERS): one or more RPCs separated by a batch
/// flag (0x80 in TDS 7.1, 0xFF in TDS 7.2+; 0xFE NoExec in 7.2+). Stops at the first RPC it
/// cannot read; what was read is returned.
pub fn parse_rpcs(
    d: &[u8],
    max_rpcs: usize,
    max_params: usize,
    max_param_len: usize,
    tds72: bool,
    enc: &'static Encoding,
) -> Vec<Rpc> {
    let mut r = Reader::new(d);
    let mut out = Vec::new();
    while r.remaining() > 0 && out.len() < max_rpcs {
        let Some(rpc) = parse_one(&mut r, max_params, max_param_len, tds72, enc) else {
            break;
        };
        let stop = rpc.undecodable;
        out.push(rpc);
        if stop {
            break;
        }
        match r.rest().first() {
            Some(0x80 | 0xFF | 0xFE) => {
                r.skip(1);
            }
            _ => break,
        }
    }
    out
}

fn parse_one(
    r: &mut Reader<'_>,
    max_params: usize,
    max_param_len: usize,
    tds72: bool,
    enc: &'static Encoding,
) -> Option<Rpc> {
    let name_len = r.u16le()?;
    let procedure = if name_len == 0xFFFF {
        let id = r.u16le()?;
        proc_name(id)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("proc_id_{id}"))
    } else {
        utf16(r.take(name_len as usize * 2)?)
    };
    let _options = r.u16le()?;
    let mut rpc = Rpc {
        procedure,
        ..Default::default()
    };
    loop {
        match r.rest().first() {
            None | Some(0x80 | 0xFF | 0xFE) => return Some(rpc),
            Some(_) => {}
        }
        let before = *r;
        let param = (|| -> Result<RpcParam, Stop> {
            // ParameterData = ParamMetaData (B_VARCHAR name, StatusFlags, TYPE_INFO or
            // TVP_TYPE_INFO) ParamLenData [ParamCipherInfo] (MS-TDS 2.2.6.6).
            let name = r.b_varchar().ok_or(Stop::Incomplete)?;
            let status = r.u8().ok_or(Stop::Incomplete)?;
            let param = if r.rest().first() == Some(&ty::TVP) {
                table_param(r, tds72)?
            } else if status & F_ENCRYPTED != 0 {
                encrypted_param(r, max_param_len, tds72)?
            } else {
                let ti = read_type_info(r, Ctx::Param, tds72)?;
                let (value, truncated) = read_value(r, &ti, max_param_len, enc)?;
                Param {
                    name: None,
                    type_name: type_name(&ti),
                    value,
                    truncated,
                }
            };
            Ok(RpcParam {
                output: status & F_BY_REF_VALUE != 0,
                param: Param {
                    name: (!name.is_empty()).then_some(name),
                    ..param
                },
            })
        })();
        match param {
            Ok(p) => {
                if rpc.params.len() < max_params {
                    rpc.params.push(p);
                } else {
                    rpc.params_dropped += 1;
                }
            }
            Err(_) => {
                *r = before;
                rpc.undecodable = true;
                return Some(rpc);
            }
        }
    }
}

/// A table-valued parameter (MS-TDS 2.2.5.5.5): its table type and row count; the rows are
/// skipped.
fn table_param(r: &mut Reader<'_>, tds72: bool) -> Result<Param, Stop> {
    let t = crate::tvp::read(r, tds72)?;
    Ok(Param {
        name: None,
        type_name: t.type_name.into(),
        value: if t.null {
            ParamValue::Null
        } else {
            ParamValue::Table {
                rows: t.rows,
                columns: t.columns,
            }
        },
        truncated: false,
    })
}

/// An Always Encrypted parameter (StatusFlags fEncrypted): TYPE_INFO and value of the cipher
/// text (varbinary), then ParamCipherInfo = TYPE_INFO of the plain value, EncryptionAlgo,
/// [AlgoName], EncryptionType, DatabaseId, CekId, CekVersion (ULONGs), CekMDVersion
/// (ULONGLONG), NormVersion (MS-TDS 2.2.6.6). The cipher text is kept as bytes under the plain
/// value's type name: decoding it as that type would print garbage.
fn encrypted_param(r: &mut Reader<'_>, max_param_len: usize, tds72: bool) -> Result<Param, Stop> {
    let outer = read_type_info(r, Ctx::Param, tds72)?;
    // Read the value's bytes as binary whatever the outer type says: they are cipher text.
    let as_binary = TypeInfo {
        ty: ty::BIGVARBIN,
        collation: None,
        ..outer
    };
    let (value, truncated) = read_value(r, &as_binary, max_param_len, encoding_rs::UTF_8)?;
    let plain = read_type_info(r, Ctx::Param, tds72)?;
    let algo = r.u8().ok_or(Stop::Incomplete)?;
    if algo == CUSTOM_ALGORITHM {
        r.b_varchar().ok_or(Stop::Incomplete)?;
    }
    let _encryption_type = r.u8().ok_or(Stop::Incomplete)?;
    // DatabaseId, CekId, CekVersion (4 each), CekMDVersion (8), NormVersion (1).
    r.skip(4 + 4 + 4 + 8 + 1).ok_or(Stop::Incomplete)?;
    Ok(Param {
        name: None,
        type_name: type_name(&plain),
        value: match value {
            ParamValue::Bytes(b) => ParamValue::Encrypted(b),
            other => other,
        },
        truncated,
    })
}

/// Names of the parameters declared in an `@params` string (`sp_executesql`, `sp_prepare`…:
/// `@P1 int, @P2 decimal(10,2) OUTPUT`), in order, at most `max`. A client may pass the
/// values after `@params` positionally (empty ParamName): the n-th value is the n-th
/// declared parameter.
pub fn declared_names(decl: &str, max: usize) -> Vec<String> {
    // Walked a byte at a time where an item may start: the declaration's syntax (`@`, `,`,
    // parentheses, ASCII identifiers and spaces) is ASCII, and a character is decoded only
    // where a byte is not.
    let bytes = decl.as_bytes();
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut item_start = true;
    let mut i = 0;
    loop {
        if !item_start {
            // Until the next item, only commas and parentheses change anything (a type, its
            // size, OUTPUT): straight to the next of them. ASCII bytes never occur inside a
            // multi-byte character, so a byte search is a character search here.
            let next = bytes
                .get(i..)
                .and_then(|rest| rest.iter().position(|&c| matches!(c, b',' | b'(' | b')')));
            match next {
                Some(n) => i += n,
                None => break,
            }
        }
        let Some(&b) = bytes.get(i) else {
            break;
        };
        if !b.is_ascii() {
            let (c, len) = char_at(decl, i);
            item_start &= c.is_whitespace();
            i += len;
            continue;
        }
        match b {
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            b',' if depth == 0 => item_start = true,
            b'@' if depth == 0 && item_start => {
                let end = name_end(decl, i + 1);
                if out.len() >= max {
                    break;
                }
                out.push(decl.get(i..end).unwrap_or_default().to_owned());
                item_start = false;
                i = end;
                continue;
            }
            // char::is_whitespace's ASCII members: space, and tab through carriage return.
            b' ' | b'\t'..=b'\r' => {}
            _ => item_start = false,
        }
        i += 1;
    }
    out
}

/// Distinct `@params` declarations remembered per connection.
const RECENT_DECLARATIONS: usize = 8;
/// Longer declarations are parsed each time, not remembered.
const MAX_REMEMBERED_DECLARATION: usize = 4096;

/// The parameter names of a connection's most recent distinct `@params` declarations, newest
/// first. An application (a connection pool) sends the same few declarations with every
/// `sp_executesql`, and parsing one costs hundreds to thousands of instructions per call.
#[derive(Debug, Default)]
pub struct Declarations {
    recent: std::collections::VecDeque<Declared>,
    heap: usize,
}

#[derive(Debug)]
struct Declared {
    text: Box<str>,
    max: usize,
    names: std::sync::Arc<[String]>,
}

impl Declared {
    fn heap(&self) -> usize {
        const PER_NAME: usize = std::mem::size_of::<String>();
        self.text.len()
            + self
                .names
                .iter()
                .map(|n| n.capacity() + PER_NAME)
                .sum::<usize>()
    }
}

impl Declarations {
    /// [`declared_names`] of `decl`, from memory when it was seen lately.
    pub fn names(&mut self, decl: &str, max: usize) -> std::sync::Arc<[String]> {
        let seen = self
            .recent
            .iter()
            .position(|d| d.max == max && *d.text == *decl);
        if let Some(d) = seen.and_then(|i| self.recent.remove(i)) {
            let names = d.names.clone();
            self.recent.push_front(d);
            return names;
        }
        let names: std::sync::Arc<[String]> = declared_names(decl, max).into();
        if decl.len() <= MAX_REMEMBERED_DECLARATION {
            let d = Declared {
                text: decl.into(),
                max,
                names: names.clone(),
            };
            self.heap += d.heap();
            self.recent.push_front(d);
            if self.recent.len() > RECENT_DECLARATIONS {
                if let Some(old) = self.recent.pop_back() {
                    self.heap -= old.heap();
                }
            }
        }
        names
    }

    /// Heap bytes held (approximate), for the flow table's memory cap.
    pub fn heap(&self) -> usize {
        self.heap
    }
}

/// Where the parameter name whose text continues at byte `from` of `decl` ends: after the last
/// alphanumeric character or `_`, `@`, `#`, `$`.
fn name_end(decl: &str, from: usize) -> usize {
    let bytes = decl.as_bytes();
    let mut end = from;
    while let Some(&b) = bytes.get(end) {
        let len = if b.is_ascii() {
            (b.is_ascii_alphanumeric() || matches!(b, b'_' | b'@' | b'#' | b'$')).then_some(1)
        } else {
            let (c, len) = char_at(decl, end);
            c.is_alphanumeric().then_some(len)
        };
        match len {
            Some(len) => end += len,
            None => break,
        }
    }
    end
}

/// The character of `s` that starts at byte `i` and its length in bytes.
fn char_at(s: &str, i: usize) -> (char, usize) {
    let c = s
        .get(i..)
        .and_then(|rest| rest.chars().next())
        .unwrap_or('\u{fffd}');
    (c, c.len_utf8().max(1))
}

/// An undecodable placeholder parameter (records show that more parameters were sent).
pub fn undecodable_param() -> Param {
    Param {
        name: None,
        type_name: "unknown".into(),
        value: ParamValue::Undecodable,
        truncated: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use encoding_rs::WINDOWS_1252;

    #[test]
    fn a_declaration_seen_lately_gives_the_same_names_without_parsing_it_again() {
        let mut d = Declarations::default();
        let a = d.names("@P1 int, @P2 nvarchar(50)", 64);
        assert_eq!(&*a, ["@P1", "@P2"]);
        assert!(std::sync::Arc::ptr_eq(
            &a,
            &d.names("@P1 int, @P2 nvarchar(50)", 64)
        ));
        // Another limit is another answer.
        assert_eq!(&*d.names("@P1 int, @P2 nvarchar(50)", 1), ["@P1"]);
        // Nine other declarations push the first out; it is parsed again, to the same names.
        for i in 0..RECENT_DECLARATIONS + 1 {
            d.names(&format!("@x{i} int"), 64);
        }
        assert_eq!(d.recent.len(), RECENT_DECLARATIONS);
        let again = d.names("@P1 int, @P2 nvarchar(50)", 64);
        assert!(!std::sync::Arc::ptr_eq(&a, &again));
        assert_eq!(again, a);
        let expect: usize = d.recent.iter().map(Declared::heap).sum();
        assert_eq!(d.heap(), expect);
    }

    fn u16s(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(|c| c.to_le_bytes()).collect()
    }

    /// ALL_HEADERS with a transaction descriptor header (MS-TDS 2.2.5.3.2): total 22.
    pub(crate) fn all_headers() -> Vec<u8> {
        let mut v = 22u32.to_le_bytes().to_vec();
        v.extend_from_slice(&18u32.to_le_bytes());
        v.extend_from_slice(&2u16.to_le_bytes());
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&1u32.to_le_bytes());
        v
    }

    #[test]
    fn enclave_package_lengths() {
        // USHORT length, package, then the request (MS-TDS 2.2.6.6 EnclavePackage).
        assert_eq!(
            skip_enclave_package(&[0, 0, b's', 0]),
            Some((0, &[b's', 0][..]))
        );
        assert_eq!(
            skip_enclave_package(&[3, 0, 9, 9, 9, 0xFF, 0xFF]),
            Some((3, &[0xFF, 0xFF][..]))
        );
        // A length past the message, or no room for the length.
        assert_eq!(skip_enclave_package(&[4, 0, 9, 9, 9]), None);
        assert_eq!(skip_enclave_package(&[4]), None);
    }

    #[test]
    fn all_headers_detection() {
        let mut v = all_headers();
        v.extend_from_slice(&u16s("select 1"));
        assert_eq!(all_headers_len(&v), 22);
        assert_eq!(all_headers_len(&u16s("select 1")), 0);
        assert_eq!(all_headers_len(&[4, 0, 0, 0]), 4);
        assert_eq!(all_headers_len(&[30, 0, 0, 0, 1]), 0);
    }

    #[test]
    fn sp_executesql_by_id() {
        // ProcID 10, options 0, @stmt NVARCHAR(4000) "select @P1", @params "@P1 int", @P1 INTN 7.
        let mut v = vec![0xFF, 0xFF, 10, 0, 0, 0];
        for (name, text) in [("@stmt", "select @P1"), ("@params", "@P1 int")] {
            v.push(name.len() as u8);
            v.extend_from_slice(&u16s(name));
            v.push(0);
            v.extend_from_slice(&[0xE7, 0x40, 0x1F, 0x09, 0x04, 0xD0, 0x00, 0x34]);
            v.extend_from_slice(&(text.len() as u16 * 2).to_le_bytes());
            v.extend_from_slice(&u16s(text));
        }
        v.push(3);
        v.extend_from_slice(&u16s("@P1"));
        v.push(0);
        v.extend_from_slice(&[0x26, 4, 4, 7, 0, 0, 0]);
        let rpcs = parse_rpcs(&v, 8, 64, 4096, true, WINDOWS_1252);
        assert_eq!(rpcs.len(), 1);
        let r = &rpcs[0];
        assert_eq!(r.procedure, "sp_executesql");
        assert_eq!(r.params.len(), 3);
        assert_eq!(
            r.params[0].param.value,
            ParamValue::Text("select @P1".into())
        );
        assert_eq!(r.params[2].param.name.as_deref(), Some("@P1"));
        assert_eq!(r.params[2].param.value, ParamValue::Int(7));
        assert_eq!(r.params[2].param.type_name, "int");
        assert!(!r.undecodable);
        // Two RPCs separated by the 7.2+ batch flag.
        let mut two = v.clone();
        two.push(0xFF);
        two.extend_from_slice(&v);
        assert_eq!(parse_rpcs(&two, 8, 64, 4096, true, WINDOWS_1252).len(), 2);
    }

    #[test]
    fn named_procedure_and_unknown_type() {
        let mut v = vec![6, 0];
        v.extend_from_slice(&u16s("p_test"));
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(&[0, 0, 0x01]); // unnamed param, type 0x01: no such type
        let rpcs = parse_rpcs(&v, 8, 64, 4096, true, WINDOWS_1252);
        assert_eq!(rpcs[0].procedure, "p_test");
        assert!(rpcs[0].undecodable);
        assert!(rpcs[0].params.is_empty());
    }

    /// RPC `p_test` (by name, options 0) with the given raw parameter bytes.
    fn named_rpc(params: &[u8]) -> Vec<u8> {
        let mut v = vec![6, 0];
        v.extend_from_slice(&u16s("p_test"));
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(params);
        v
    }

    #[test]
    fn table_valued_parameter_is_one_summarized_param() {
        // @ids dbo.IdList: one INTN(4) column, two rows (5, NULL), then @n INTN 9 (MS-TDS
        // 2.2.5.5.5: TVP_TYPE_INFO, TVP_COLMETADATA, TVP_END_TOKEN, TVP_ROWs, TVP_END_TOKEN).
        let mut p = vec![4];
        p.extend_from_slice(&u16s("@ids"));
        p.push(0); // StatusFlags
        p.extend_from_slice(&[0xF3, 0, 3]);
        p.extend_from_slice(&u16s("dbo"));
        p.push(6);
        p.extend_from_slice(&u16s("IdList"));
        p.extend_from_slice(&[1, 0]); // Count
        p.extend_from_slice(&[0, 0, 0, 0, 1, 0, 0x26, 4, 0]); // UserType, Flags, INTN(4), ""
        p.push(0x00); // TVP_END_TOKEN: no optional metadata
        p.extend_from_slice(&[0x01, 4, 5, 0, 0, 0, 0x01, 0]); // rows: 5, NULL
        p.push(0x00); // TVP_END_TOKEN
        p.push(2);
        p.extend_from_slice(&u16s("@n"));
        p.extend_from_slice(&[0, 0x26, 4, 4, 9, 0, 0, 0]);
        let rpcs = parse_rpcs(&named_rpc(&p), 8, 64, 4096, true, WINDOWS_1252);
        let r = &rpcs[0];
        assert!(!r.undecodable);
        assert_eq!(r.params.len(), 2);
        let tvp = &r.params[0].param;
        assert_eq!(tvp.type_name, "dbo.IdList");
        assert_eq!(tvp.name.as_deref(), Some("@ids"));
        assert_eq!(
            tvp.value,
            ParamValue::Table {
                rows: 2,
                columns: 1
            }
        );
        assert_eq!(r.params[1].param.value, ParamValue::Int(9));
    }

    /// An Always Encrypted parameter (StatusFlags fEncrypted, MS-TDS 2.2.6.6): cipher text as
    /// varbinary(8000), then ParamCipherInfo for a plain NVARCHAR(11): algorithm 2
    /// (AEAD_AES_256_CBC_HMAC_SHA256), deterministic (1), database 5, CEK 1 version 1,
    /// metadata version, normalization version 1.
    fn encrypted(algo: u8) -> Vec<u8> {
        let mut p = vec![4];
        p.extend_from_slice(&u16s("@ssn"));
        p.push(0x08);
        p.extend_from_slice(&[0xA5, 0x40, 0x1F]); // BIGVARBINARY(8000)
        p.extend_from_slice(&[6, 0, 0x01, 0x9A, 0x33, 0x00, 0x7F, 0xE2]);
        p.extend_from_slice(&[0xE7, 22, 0, 0x09, 0x04, 0xD0, 0x00, 0x34]); // NVARCHAR(11)
        p.push(algo);
        if algo == 0 {
            p.push(3);
            p.extend_from_slice(&u16s("AES"));
        }
        p.push(1);
        for v in [5u32, 1, 1] {
            p.extend_from_slice(&v.to_le_bytes());
        }
        p.extend_from_slice(&[0xC1, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xC7, 0xC8]);
        p.push(1);
        p
    }

    #[test]
    fn always_encrypted_parameter_is_cipher_text() {
        for algo in [2, 0] {
            let mut p = encrypted(algo);
            p.push(2);
            p.extend_from_slice(&u16s("@n"));
            p.extend_from_slice(&[0, 0x26, 4, 4, 9, 0, 0, 0]);
            let rpcs = parse_rpcs(&named_rpc(&p), 8, 64, 4096, true, WINDOWS_1252);
            let r = &rpcs[0];
            assert!(!r.undecodable, "algo {algo}");
            let e = &r.params[0].param;
            assert_eq!(e.type_name, "nvarchar");
            assert_eq!(
                e.value,
                ParamValue::Encrypted(vec![0x01, 0x9A, 0x33, 0x00, 0x7F, 0xE2])
            );
            assert_eq!(r.params[1].param.value, ParamValue::Int(9));
        }
        // Cut inside ParamCipherInfo: undecodable, nothing half-read is kept.
        let p = encrypted(2);
        let rpcs = parse_rpcs(
            &named_rpc(&p[..p.len() - 3]),
            8,
            64,
            4096,
            true,
            WINDOWS_1252,
        );
        assert!(rpcs[0].undecodable);
        assert!(rpcs[0].params.is_empty());
    }

    /// The same reading, char by char and without shortcuts: the oracle of the property below.
    fn declared_names_by_chars(decl: &str, max: usize) -> Vec<String> {
        let mut out = Vec::new();
        let (mut depth, mut item_start) = (0usize, true);
        let mut chars = decl.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                ',' if depth == 0 => item_start = true,
                '@' if depth == 0 && item_start => {
                    if out.len() >= max {
                        break;
                    }
                    let mut end = i + 1;
                    while let Some(&(j, d)) = chars.peek() {
                        if !(d.is_alphanumeric() || matches!(d, '_' | '@' | '#' | '$')) {
                            break;
                        }
                        end = j + d.len_utf8();
                        chars.next();
                    }
                    out.push(decl[i..end].to_owned());
                    item_start = false;
                }
                c if c.is_whitespace() => {}
                _ => item_start = false,
            }
        }
        out
    }

    proptest::proptest! {
        /// Declarations pieced together from names, types, sizes, separators, Unicode letters
        /// and spaces and stray characters give the same names as the char-by-char reading.
        #[test]
        fn declared_names_agree_with_a_char_by_char_reading(
            pieces in proptest::collection::vec(0usize..22, 0..40),
            max in 0usize..12,
        ) {
            const PIECES: [&str; 22] = [
                "@", "@P1", "a", "_x", "9", " ", "  ", ",", "(", ")", "\t", "\u{b}", "\u{1}",
                "患者", "\u{a0}", "\u{3000}", "，", "#t", "int", "nvarchar(max)", "decimal(10,2)",
                " OUTPUT",
            ];
            let decl: String = pieces.iter().map(|&p| PIECES[p]).collect();
            proptest::prop_assert_eq!(
                declared_names(&decl, max),
                declared_names_by_chars(&decl, max),
                "{:?}", decl
            );
        }
    }

    #[test]
    fn declared_parameter_names() {
        assert_eq!(
            declared_names("@P1 int, @P2 decimal(10,2) OUTPUT,@pw nvarchar(50)", 64),
            ["@P1", "@P2", "@pw"]
        );
        assert_eq!(declared_names("  @a varchar(max) , @b int", 1), ["@a"]);
        assert_eq!(declared_names("", 8), Vec::<String>::new());
        assert_eq!(declared_names("@x numeric(5, 2)", 8), ["@x"]);
        // Unicode identifiers and separators: a name ends at the first character that is not
        // alphanumeric (here a full-width comma, U+FF0C), and a non-breaking space (U+00A0)
        // separates like a space.
        assert_eq!(
            declared_names("@患者 int,\u{a0}@病区 nvarchar(20)，@x int", 8),
            ["@患者", "@病区"]
        );
        // Every ASCII whitespace that char::is_whitespace knows (vertical tab and form feed
        // included) separates; other control characters end an item.
        assert_eq!(
            declared_names("@a int,\u{b}@b int,\u{c}@c int,\u{1}@d int", 8),
            ["@a", "@b", "@c"]
        );
    }
}
