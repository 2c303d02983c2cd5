//! Client requests: SQL Batch (MS-TDS 2.2.6.7), RPC Request (2.2.6.6), both after the optional
//! ALL_HEADERS block (2.2.5.3).

use std::borrow::Cow;

use dbtap_core::{Param, ParamValue};
use encoding_rs::Encoding;

use crate::types::{
    read_type_info, read_value, skip_value, ty, type_name, Ctx, Form, Stop, Tds, TypeInfo,
};
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

/// `name` in ASCII lower case (T-SQL procedure names are matched case-insensitively), copied
/// only when it has an upper-case letter: the well-known names never do.
pub fn ascii_lowercase(name: &str) -> Cow<'_, str> {
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    }
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
    pub procedure: Cow<'static, str>,
    /// Parameters read and decoded, in order (bounded): all of them, or (when decoding the bind
    /// values is deferred) those before the first bind value.
    pub params: Vec<RpcParam>,
    /// The bind values after `params`, stepped over and kept as wire bytes.
    pub deferred: Option<SteppedOver>,
    /// Bytes of the message this RPC took: its name, options and parameters, and the batch
    /// separator after it (the request's share of the message when it holds several).
    pub wire_len: usize,
    /// Parameters dropped at the limit.
    pub params_dropped: u64,
    /// Parameter data could not be decoded from some parameter on (unsupported type such as a
    /// table-valued parameter, or a malformed / cut message).
    pub undecodable: bool,
}

/// Parameters of an RPC stepped over, not decoded: where they are in the message and what the
/// request needs to know of them now.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SteppedOver {
    /// Their bytes in the message (after ALL_HEADERS).
    pub range: std::ops::Range<usize>,
    /// How many (all readable; the bound on parameters applied).
    pub count: usize,
    /// Some of them were sent without a name (positionally).
    pub unnamed: bool,
    /// How many carry Always Encrypted cipher text.
    pub encrypted: usize,
}

/// Where the statement, the `@params` declarations and the first bind value sit among the
/// parameters of the well-known procedures that carry a statement (by position, as the SQL
/// Server documentation gives their signatures); `usize::MAX` when no bind values follow.
pub fn statement_signature(proc_lower: &str) -> Option<(usize, Option<usize>, usize)> {
    Some(match proc_lower {
        "sp_executesql" => (0, Some(1), 2),
        "sp_prepare" => (2, Some(1), usize::MAX),
        "sp_prepexec" => (2, Some(1), 3),
        "sp_cursoropen" => (1, Some(5), 6),
        "sp_cursorprepare" => (2, Some(1), usize::MAX),
        "sp_cursorprepexec" => (3, Some(2), 7),
        _ => return None,
    })
}

/// Position of the first bind value of a call to `proc_lower` (`usize::MAX`: none): after the
/// statement and declarations of [`statement_signature`], after the handle of `sp_execute`
/// (and the handle and options of `sp_cursorexecute`); a direct procedure call's parameters
/// are all values. The parameters before it are decoded at once: the parser needs them.
pub fn first_bind_value(proc_lower: &str) -> usize {
    if let Some((_, _, first)) = statement_signature(proc_lower) {
        return first;
    }
    match proc_lower {
        "sp_execute" => EXECUTE_HANDLE_PARAMS,
        "sp_cursorexecute" => CURSOREXECUTE_LEADING_PARAMS,
        "sp_unprepare" | "sp_cursorunprepare" => usize::MAX,
        _ => 0,
    }
}

/// `sp_execute handle, values…`.
const EXECUTE_HANDLE_PARAMS: usize = 1;
/// `sp_cursorexecute handle, cursor OUTPUT, scrollopt, ccopt, rowcount, values…`.
const CURSOREXECUTE_LEADING_PARAMS: usize = 5;

/// Parse an RPC request message (after ALL_HEADERS): one or more RPCs separated by a batch
/// flag (0x80 in TDS 7.1, 0xFF in TDS 7.2+; 0xFE NoExec in 7.2+). Stops at the first RPC it
/// cannot read; what was read is returned. With `defer`, each RPC's bind values (from
/// [`first_bind_value`] on) are stepped over and left in [`Rpc::deferred`] instead of decoded.
pub fn parse_rpcs(
    d: &[u8],
    max_rpcs: usize,
    max_params: usize,
    max_param_len: usize,
    tds: Tds,
    enc: &'static Encoding,
    defer: bool,
) -> Vec<Rpc> {
    let mut r = Reader::new(d);
    // Nearly every message holds one RPC.
    let mut out = Vec::with_capacity(1);
    let p = ParamReading {
        max_param_len,
        tds,
        enc,
    };
    while r.remaining() > 0 && out.len() < max_rpcs {
        let start = r.pos();
        let Some(mut rpc) = parse_one(&mut r, max_params, &p, defer) else {
            break;
        };
        let stop = rpc.undecodable;
        let more = matches!(r.rest().first(), Some(0x80 | 0xFF | 0xFE));
        if !stop && more {
            r.skip(1);
        }
        rpc.wire_len = r.pos() - start;
        out.push(rpc);
        if stop || !more {
            break;
        }
    }
    out
}

/// How a request's parameter values are read: the same when they are decoded at once and
/// when deferred values are decoded later.
#[derive(Debug, Clone, Copy)]
struct ParamReading {
    max_param_len: usize,
    tds: Tds,
    enc: &'static Encoding,
}

fn parse_one(r: &mut Reader<'_>, max_params: usize, p: &ParamReading, defer: bool) -> Option<Rpc> {
    let name_len = r.u16le()?;
    let procedure: Cow<'static, str> = if name_len == 0xFFFF {
        let id = r.u16le()?;
        match proc_name(id) {
            Some(name) => Cow::Borrowed(name),
            None => Cow::Owned(format!("proc_id_{id}")),
        }
    } else {
        Cow::Owned(utf16(r.take(name_len as usize * 2)?))
    };
    let _options = r.u16le()?;
    let defer_from = if defer {
        first_bind_value(&ascii_lowercase(&procedure))
    } else {
        usize::MAX
    };
    let mut rpc = Rpc {
        procedure,
        // Deferring, only the parameters before the first bind value are kept: a few.
        params: Vec::with_capacity(defer_from.min(4)),
        ..Default::default()
    };
    let mut index = 0usize;
    loop {
        match r.rest().first() {
            None | Some(0x80 | 0xFF | 0xFE) => return Some(rpc),
            Some(_) => {}
        }
        let before = *r;
        let kept = rpc.params.len() + rpc.deferred.as_ref().map_or(0, |d| d.count);
        if index >= defer_from {
            match step_over_param(r, p) {
                Ok(seen) if kept < max_params => {
                    let d = rpc.deferred.get_or_insert_with(|| SteppedOver {
                        range: before.pos()..before.pos(),
                        ..Default::default()
                    });
                    d.range.end = r.pos();
                    d.count += 1;
                    d.unnamed |= !seen.named;
                    d.encrypted += usize::from(seen.encrypted);
                }
                Ok(_) => rpc.params_dropped += 1,
                Err(_) => {
                    *r = before;
                    rpc.undecodable = true;
                    return Some(rpc);
                }
            }
        } else {
            match read_param(r, p) {
                Ok(param) if kept < max_params => rpc.params.push(param),
                Ok(_) => rpc.params_dropped += 1,
                Err(_) => {
                    *r = before;
                    rpc.undecodable = true;
                    return Some(rpc);
                }
            }
        }
        index += 1;
    }
}

/// Read and decode one parameter: ParameterData = ParamMetaData (B_VARCHAR name, StatusFlags,
/// TYPE_INFO or TVP_TYPE_INFO) ParamLenData [ParamCipherInfo] (MS-TDS 2.2.6.6).
fn read_param(r: &mut Reader<'_>, p: &ParamReading) -> Result<RpcParam, Stop> {
    let name = r.b_varchar().ok_or(Stop::Incomplete)?;
    let status = r.u8().ok_or(Stop::Incomplete)?;
    let param = if r.rest().first() == Some(&ty::TVP) {
        table_param(r, p.tds)?
    } else if status & F_ENCRYPTED != 0 {
        encrypted_param(r, p.max_param_len, p.tds)?
    } else {
        let ti = read_type_info(r, Ctx::Param, p.tds)?;
        let (value, truncated) = read_value(r, &ti, p.max_param_len, p.enc)?;
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
}

/// What stepping over a parameter tells.
struct Seen {
    named: bool,
    encrypted: bool,
}

/// Step over one parameter without decoding its value: it ends where [`read_param`] would end,
/// and fails where it would fail. Table-valued, Always Encrypted and sql_variant values (rare,
/// and their reading can fail inside the value) are read whole.
fn step_over_param(r: &mut Reader<'_>, p: &ParamReading) -> Result<Seen, Stop> {
    let start = *r;
    let name_len = r.u8().ok_or(Stop::Incomplete)?;
    r.skip(2 * usize::from(name_len)).ok_or(Stop::Incomplete)?;
    let named = name_len > 0;
    let status = r.u8().ok_or(Stop::Incomplete)?;
    if status & F_ENCRYPTED != 0 || r.rest().first() == Some(&ty::TVP) {
        *r = start;
        let param = read_param(r, p)?;
        return Ok(Seen {
            named,
            encrypted: matches!(param.param.value, ParamValue::Encrypted(_)),
        });
    }
    let ti = read_type_info(r, Ctx::Param, p.tds)?;
    if ti.form == Form::Variant {
        read_value(r, &ti, p.max_param_len, p.enc)?;
    } else {
        skip_value(r, &ti)?;
    }
    Ok(Seen {
        named,
        encrypted: false,
    })
}

/// A table-valued parameter (MS-TDS 2.2.5.5.5): its table type and row count; the rows are
/// skipped.
fn table_param(r: &mut Reader<'_>, tds: Tds) -> Result<Param, Stop> {
    let t = crate::tvp::read(r, tds)?;
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
fn encrypted_param(r: &mut Reader<'_>, max_param_len: usize, tds: Tds) -> Result<Param, Stop> {
    let outer = read_type_info(r, Ctx::Param, tds)?;
    // Read the value's bytes as binary whatever the outer type says: they are cipher text.
    let as_binary = TypeInfo {
        ty: ty::BIGVARBIN,
        collation: None,
        ..outer
    };
    let (value, truncated) = read_value(r, &as_binary, max_param_len, encoding_rs::UTF_8)?;
    let plain = read_type_info(r, Ctx::Param, tds)?;
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

/// Is parameter `index` (0-based; `name` as sent, possibly empty) of a direct call to procedure
/// `proc_lower` a password? Named parameters whose name says so (`@passwd`, `@rmtpassword`,
/// `@pwd`…), and the positional password arguments of the system procedures that take one
/// (SQL Server docs: sp_addlogin [@loginame], [@passwd], …; sp_password [@old], [@new],
/// [@loginame]; sp_addlinkedsrvlogin …, [@rmtpassword] 5th; sp_setapprole [@rolename],
/// [@password]).
fn secret_rpc_param(proc_lower: &str, index: usize, name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    if n.contains("passw") || n.contains("pwd") {
        return true;
    }
    let proc = proc_lower.rsplit('.').next().unwrap_or(proc_lower);
    if proc == "sp_password" && (n == "@old" || n == "@new") {
        return true;
    }
    if !n.is_empty() {
        return false;
    }
    match proc {
        "sp_addlogin" | "sp_setapprole" => index == 1,
        "sp_password" => index <= 1,
        "sp_addlinkedsrvlogin" => index == 4,
        _ => false,
    }
}

/// The bind values of one RPC, stepped over by the parser and decoded when the record is
/// written: the same values, names and masking the parser would have produced.
pub struct RpcValues {
    /// The stepped-over parameters' bytes.
    pub bytes: Vec<u8>,
    /// How many parameters `bytes` holds.
    pub count: usize,
    reading: ParamReading,
    /// Names for values sent without one, by position among the values (`@params`).
    pub declared: Option<std::sync::Arc<[String]>>,
    /// A direct procedure call: its lower-cased name, for [`secret_rpc_param`].
    pub direct_call: Option<String>,
    /// More parameters followed that could not be read: an undecodable placeholder ends the
    /// list.
    pub undecodable: bool,
}

impl RpcValues {
    /// The values of `rpc`'s stepped-over parameters in `body` (the message after ALL_HEADERS
    /// that [`parse_rpcs`] read), read as it would have read them.
    pub fn new(
        body: &[u8],
        over: &SteppedOver,
        max_param_len: usize,
        tds: Tds,
        enc: &'static Encoding,
    ) -> Self {
        RpcValues {
            bytes: body.get(over.range.clone()).unwrap_or_default().to_vec(),
            count: over.count,
            reading: ParamReading {
                max_param_len,
                tds,
                enc,
            },
            declared: None,
            direct_call: None,
            undecodable: false,
        }
    }
}

/// Sizes only: the bytes may hold a password that only decoding masks.
impl std::fmt::Debug for RpcValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcValues")
            .field("bytes", &self.bytes.len())
            .field("count", &self.count)
            .field("undecodable", &self.undecodable)
            .finish_non_exhaustive()
    }
}

impl dbtap_core::ParamDecoder for RpcValues {
    fn decode_into(&self, out: &mut Vec<Param>) {
        out.reserve(self.count + 1);
        let mut r = Reader::new(&self.bytes);
        for index in 0..self.count {
            // The bytes were stepped over parameter by parameter already: reading them again
            // cannot fail; if it did, the rest would show as undecodable.
            let Ok(p) = read_param(&mut r, &self.reading) else {
                out.push(undecodable_param());
                return;
            };
            let mut p = p.param;
            if let Some(proc_lower) = &self.direct_call {
                if secret_rpc_param(proc_lower, index, p.name.as_deref().unwrap_or_default()) {
                    // A password passed to a procedure: its type stays, its value never leaves.
                    p.value = ParamValue::Text("***".into());
                    p.truncated = false;
                }
            }
            if p.name.is_none() {
                p.name = self.declared.as_ref().and_then(|d| d.get(index)).cloned();
            }
            out.push(p);
        }
        if self.undecodable {
            out.push(undecodable_param());
        }
    }

    fn heap_bytes(&self) -> usize {
        self.bytes.capacity() + self.direct_call.as_ref().map_or(0, String::capacity)
    }
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
    use dbtap_core::DeferredParams;
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

    /// An RPC parameter (2.2.6.6): B_VARCHAR name, status 0, NVARCHAR(4000) in the Latin1
    /// collation (TYPE_INFO 0xE7, max length 8000 bytes, 5-byte collation), then the text
    /// with its USHORT byte length.
    fn push_nvarchar_param(v: &mut Vec<u8>, name: &str, text: &str) {
        v.push(name.len() as u8);
        v.extend_from_slice(&u16s(name));
        v.push(0);
        v.extend_from_slice(&[0xE7, 0x40, 0x1F, 0x09, 0x04, 0xD0, 0x00, 0x34]);
        v.extend_from_slice(&(text.len() as u16 * 2).to_le_bytes());
        v.extend_from_slice(&u16s(text));
    }

    #[test]
    fn sp_executesql_by_id() {
        // ProcID 10, options 0, @stmt NVARCHAR(4000) "select @P1", @params "@P1 int", @P1 INTN 7.
        let mut v = vec![0xFF, 0xFF, 10, 0, 0, 0];
        for (name, text) in [("@stmt", "select @P1"), ("@params", "@P1 int")] {
            push_nvarchar_param(&mut v, name, text);
        }
        v.push(3);
        v.extend_from_slice(&u16s("@P1"));
        v.push(0);
        v.extend_from_slice(&[0x26, 4, 4, 7, 0, 0, 0]);
        let rpcs = parse_rpcs(&v, 8, 64, 4096, Tds::V72, WINDOWS_1252, false);
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
        assert_eq!(
            parse_rpcs(&two, 8, 64, 4096, Tds::V72, WINDOWS_1252, false).len(),
            2
        );
    }

    #[test]
    fn named_procedure_and_unknown_type() {
        let mut v = vec![6, 0];
        v.extend_from_slice(&u16s("p_test"));
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(&[0, 0, 0x01]); // unnamed param, type 0x01: no such type
        let rpcs = parse_rpcs(&v, 8, 64, 4096, Tds::V72, WINDOWS_1252, false);
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
        let rpcs = parse_rpcs(&named_rpc(&p), 8, 64, 4096, Tds::V72, WINDOWS_1252, false);
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
            let rpcs = parse_rpcs(&named_rpc(&p), 8, 64, 4096, Tds::V72, WINDOWS_1252, false);
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
            Tds::V72,
            WINDOWS_1252,
            false,
        );
        assert!(rpcs[0].undecodable);
        assert!(rpcs[0].params.is_empty());
    }

    /// `d` parsed with the bind values stepped over, then decoded as the record stage does:
    /// per RPC, the parameters read at once and the deferred ones decoded (names and masking
    /// are the parser's, not applied here).
    fn deferred_then_decoded(d: &[u8]) -> Vec<(Vec<Param>, bool)> {
        parse_rpcs(d, 8, 64, 4096, Tds::V72, WINDOWS_1252, true)
            .into_iter()
            .map(|rpc| {
                let mut all: Vec<Param> = rpc.params.into_iter().map(|p| p.param).collect();
                if let Some(over) = &rpc.deferred {
                    let mut v = RpcValues::new(d, over, 4096, Tds::V72, WINDOWS_1252);
                    v.undecodable = rpc.undecodable;
                    dbtap_core::ParamDecoder::decode_into(&v, &mut all);
                } else if rpc.undecodable {
                    all.push(undecodable_param());
                }
                (all, rpc.undecodable)
            })
            .collect()
    }

    fn decoded_at_once(d: &[u8]) -> Vec<(Vec<Param>, bool)> {
        parse_rpcs(d, 8, 64, 4096, Tds::V72, WINDOWS_1252, false)
            .into_iter()
            .map(|rpc| {
                let mut all: Vec<Param> = rpc.params.into_iter().map(|p| p.param).collect();
                if rpc.undecodable {
                    all.push(undecodable_param());
                }
                (all, rpc.undecodable)
            })
            .collect()
    }

    #[test]
    fn bind_values_stepped_over_decode_later_to_what_reading_them_at_once_gives() {
        // sp_executesql (values from the third parameter on), a direct call (all values), a
        // table-valued parameter, Always Encrypted values, an unknown type, and each of them
        // cut at every length: the same values, and undecodable at the same place.
        let mut exec = vec![0xFF, 0xFF, 10, 0, 0, 0];
        for (name, text) in [
            ("@stmt", "select @P1, @P2"),
            ("@params", "@P1 int, @P2 nvarchar(9)"),
        ] {
            push_nvarchar_param(&mut exec, name, text);
        }
        exec.extend_from_slice(&[3]);
        exec.extend_from_slice(&u16s("@P1"));
        exec.extend_from_slice(&[0, 0x26, 4, 4, 7, 0, 0, 0]);
        exec.extend_from_slice(&[0, 0]); // unnamed: @P2 by position
        exec.extend_from_slice(&[0xE7, 0x12, 0x00, 0x09, 0x04, 0xD0, 0x00, 0x34, 4, 0]);
        exec.extend_from_slice(&u16s("患者"));
        let mut tvp = vec![4];
        tvp.extend_from_slice(&u16s("@ids"));
        tvp.push(0);
        tvp.extend_from_slice(&[0xF3, 0, 3]);
        tvp.extend_from_slice(&u16s("dbo"));
        tvp.push(6);
        tvp.extend_from_slice(&u16s("IdList"));
        tvp.extend_from_slice(&[1, 0, 0, 0, 0, 0, 1, 0, 0x26, 4, 0, 0x00]);
        tvp.extend_from_slice(&[0x01, 4, 5, 0, 0, 0, 0x00]);
        let unknown = [0, 0, 0x01];
        // sql_variant (MS-TDS 2.2.5.5.4) whose body claims 5 property bytes and has none: the
        // length steps over it, reading it fails.
        let bad_variant = [0, 0, 0x62, 0x10, 0x1F, 0, 0, 2, 0, 0, 0, 0x38, 5];
        let mut cases = vec![exec.clone()];
        cases.push(named_rpc(&tvp));
        cases.push(named_rpc(&encrypted(2)));
        cases.push(named_rpc(
            &[&encrypted(0)[..], &tvp[..], &unknown[..]].concat(),
        ));
        cases.push(named_rpc(&[&tvp[..], &bad_variant[..], &tvp[..]].concat()));
        let mut two = exec.clone();
        two.push(0xFF);
        two.extend_from_slice(&named_rpc(&tvp));
        cases.push(two);
        for case in &cases {
            for cut in 0..=case.len() {
                let d = &case[..cut];
                assert_eq!(
                    deferred_then_decoded(d),
                    decoded_at_once(d),
                    "{case:02x?} cut at {cut}"
                );
            }
        }
        // The direct call's values are all stepped over; sp_executesql's from the third on.
        let rpcs = parse_rpcs(&exec, 8, 64, 4096, Tds::V72, WINDOWS_1252, true);
        assert_eq!(rpcs[0].params.len(), 2);
        let over = rpcs[0].deferred.as_ref().unwrap();
        assert_eq!((over.count, over.unnamed, over.encrypted), (2, true, 0));
        let rpcs = parse_rpcs(
            &named_rpc(&encrypted(2)),
            8,
            64,
            4096,
            Tds::V72,
            WINDOWS_1252,
            true,
        );
        assert!(rpcs[0].params.is_empty());
        assert_eq!(rpcs[0].deferred.as_ref().map(|d| d.encrypted), Some(1));
    }

    #[test]
    fn deferred_values_are_bounded_like_decoded_ones_and_never_shown_raw() {
        // Five direct-call values with room for three: three kept, two counted as dropped.
        let mut p = Vec::new();
        for v in 1..=5u8 {
            p.extend_from_slice(&[0, 0, 0x26, 4, 4, v, 0, 0, 0]);
        }
        let d = named_rpc(&p);
        let rpc = &parse_rpcs(&d, 8, 3, 4096, Tds::V72, WINDOWS_1252, true)[0];
        let over = rpc.deferred.as_ref().unwrap();
        assert_eq!((over.count, rpc.params_dropped), (3, 2));
        let mut v = RpcValues::new(&d, over, 4096, Tds::V72, WINDOWS_1252);
        v.direct_call = Some("p_test".into());
        let values = DeferredParams::new(v);
        let got: Vec<ParamValue> = values.decode().into_iter().map(|p| p.value).collect();
        assert_eq!(
            got,
            [ParamValue::Int(1), ParamValue::Int(2), ParamValue::Int(3)]
        );
        // A password passed by name is masked when decoded; its bytes never show in Debug.
        let mut pw = vec![7];
        pw.extend_from_slice(&u16s("@passwd"));
        pw.extend_from_slice(&[0, 0xE7, 0x12, 0x00, 0x09, 0x04, 0xD0, 0x00, 0x34, 4, 0]);
        pw.extend_from_slice(&u16s("pw"));
        let d = named_rpc(&pw);
        let rpc = &parse_rpcs(&d, 8, 64, 4096, Tds::V72, WINDOWS_1252, true)[0];
        let mut v = RpcValues::new(
            &d,
            rpc.deferred.as_ref().unwrap(),
            4096,
            Tds::V72,
            WINDOWS_1252,
        );
        v.direct_call = Some("p_test".into());
        assert!(!format!("{v:?}").contains("112, 0, 119"), "{v:?}");
        let values = DeferredParams::new(v);
        assert_eq!(values.decode()[0].value, ParamValue::Text("***".into()));
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
