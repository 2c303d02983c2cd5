//! Client requests: SQL Batch (MS-TDS 2.2.6.7), RPC Request (2.2.6.6), both after the optional
//! ALL_HEADERS block (2.2.5.3).

use dbtap_core::{Param, ParamValue};
use encoding_rs::Encoding;

use crate::types::{read_type_info, read_value, type_name, Ctx, Stop};
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

/// One decoded RPC parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcParam {
    /// Name (may be empty: positional).
    pub name: String,
    /// Output parameter (fByRefValue).
    pub output: bool,
    /// Type and value.
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
            let name = r.b_varchar().ok_or(Stop::Incomplete)?;
            let status = r.u8().ok_or(Stop::Incomplete)?;
            if status & 0x08 != 0 {
                // fEncrypted (Always Encrypted): cipher text and metadata follow; not decoded.
                return Err(Stop::Bad);
            }
            let ti = read_type_info(r, Ctx::Param, tds72)?;
            let (value, truncated) = read_value(r, &ti, max_param_len, enc)?;
            Ok(RpcParam {
                name,
                output: status & 0x01 != 0,
                param: Param {
                    type_name: type_name(&ti),
                    value,
                    truncated,
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

/// An undecodable placeholder parameter (records show that more parameters were sent).
pub fn undecodable_param() -> Param {
    Param {
        type_name: "unknown".into(),
        value: ParamValue::Undecodable,
        truncated: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use encoding_rs::WINDOWS_1252;

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
        assert_eq!(r.params[2].name, "@P1");
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
        v.extend_from_slice(&[0, 0, 0xF3]); // unnamed param, TVP: not decoded
        let rpcs = parse_rpcs(&v, 8, 64, 4096, true, WINDOWS_1252);
        assert_eq!(rpcs[0].procedure, "p_test");
        assert!(rpcs[0].undecodable);
        assert!(rpcs[0].params.is_empty());
    }
}
