//! Pure parse functions over message bodies (the bytes after the 5-byte header, or after the
//! 8-byte startup header). Field layouts follow "Message Formats" of the PostgreSQL protocol
//! documentation; each function says which message it reads. A body may be the head of a cut
//! message (over a limit, or before a gap): functions that can use a head return what it holds.
//!
//! Credentials are not read here: PasswordMessage, SASL responses, GSS tokens and the
//! SASLContinue/Final data have no parse function beyond the SASL mechanism name.

use crate::wire::Reader;

/// StartupMessage parameters: "pairs of parameter name and value strings. A zero byte is
/// required as a terminator after the last name/value pair." Iterates (name, value) pairs;
/// stops at the terminator or at the first pair that is not complete.
pub fn startup_params(body: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut r = Reader::new(body);
    std::iter::from_fn(move || {
        let name = r.cstr()?;
        if name.is_empty() {
            return None;
        }
        let value = r.cstr()?;
        Some((name, value))
    })
}

/// True when a StartupMessage body is well formed: NUL-terminated pairs, then the final zero
/// byte exactly at the end.
pub fn startup_well_formed(body: &[u8]) -> bool {
    let mut r = Reader::new(body);
    loop {
        let Some(name) = r.cstr() else { return false };
        if name.is_empty() {
            return r.is_empty();
        }
        if r.cstr().is_none() {
            return false;
        }
    }
}

/// The fields of an ErrorResponse / NoticeResponse: "The message body consists of one or more
/// identified fields, followed by a zero byte as a terminator. […] Byte1: a code identifying
/// the field type; if zero, this is the message terminator. String: the field value."
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorFields<'a> {
    /// `S`: severity (localized).
    pub severity: Option<&'a [u8]>,
    /// `V`: severity, never localized (9.6+).
    pub severity_raw: Option<&'a [u8]>,
    /// `C`: SQLSTATE code.
    pub code: Option<&'a [u8]>,
    /// `M`: primary message.
    pub message: Option<&'a [u8]>,
    /// `D`: detail.
    pub detail: Option<&'a [u8]>,
    /// `P`: "the error cursor position as an index into the original query string. The first
    /// character has index 1, and positions are measured in characters not bytes."
    pub position: Option<&'a [u8]>,
}

impl ErrorFields<'_> {
    /// FATAL or PANIC: the server ends the session after sending it.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self.severity_raw.or(self.severity),
            Some(b"FATAL") | Some(b"PANIC")
        )
    }
}

/// Parse an ErrorResponse or NoticeResponse body. Fields after a cut are missing.
pub fn error_fields(body: &[u8]) -> ErrorFields<'_> {
    let mut f = ErrorFields::default();
    let mut r = Reader::new(body);
    while let Some(code) = r.u8() {
        if code == 0 {
            break;
        }
        let Some(v) = r.cstr() else { break };
        match code {
            b'S' => f.severity = Some(v),
            b'V' => f.severity_raw = Some(v),
            b'C' => f.code = Some(v),
            b'M' => f.message = Some(v),
            b'D' => f.detail = Some(v),
            b'P' => f.position = Some(v),
            _ => {}
        }
    }
    f
}

/// True when an ErrorResponse / NoticeResponse body is exactly a list of fields (one-letter
/// codes and NUL-terminated values) ending with the zero terminator at its last byte.
pub fn error_well_formed(body: &[u8]) -> bool {
    let mut r = Reader::new(body);
    let mut fields = 0;
    loop {
        match r.u8() {
            Some(0) => return r.is_empty() && fields > 0,
            Some(c) if c.is_ascii_alphabetic() => {
                if r.cstr().is_none() {
                    return false;
                }
                fields += 1;
            }
            _ => return false,
        }
    }
}

/// Rows reported by a CommandComplete tag: "INSERT oid rows", "DELETE rows", "UPDATE rows",
/// "MERGE rows", "SELECT rows" (also CREATE TABLE AS), "MOVE rows", "FETCH rows", "COPY rows".
/// Other tags carry no count.
pub fn tag_rows(tag: &[u8]) -> Option<u64> {
    let mut words = tag.split(|&b| b == b' ');
    let first = words.next()?;
    let n = match first {
        b"INSERT" => {
            words.next()?;
            words.next()?
        }
        b"DELETE" | b"UPDATE" | b"MERGE" | b"SELECT" | b"MOVE" | b"FETCH" | b"COPY" => {
            words.next()?
        }
        _ => return None,
    };
    if words.next().is_some() || n.is_empty() || n.len() > 20 {
        return None;
    }
    std::str::from_utf8(n).ok()?.parse().ok()
}

/// ParameterStatus: "String: the name of the run-time parameter being reported. String: the
/// current value of the parameter."
pub fn parameter_status(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut r = Reader::new(body);
    let name = r.cstr()?;
    let value = r.cstr()?;
    Some((name, value))
}

/// BackendKeyData: "Int32: the process ID of this backend. Byte(n): the secret key of this
/// backend" (4 bytes in protocol 3.0, up to 256 in 3.2: its length is what the message length
/// leaves). Only the process id is read; the key is a credential for cancelling queries.
pub fn backend_pid(body: &[u8]) -> Option<u32> {
    Reader::new(body).u32()
}

/// CancelRequest after its 8-byte header: "Int32: the process ID of the target backend.
/// Byte(n): the secret key for the target backend." Only the process id is read.
pub fn cancel_target_pid(body: &[u8]) -> Option<u32> {
    Reader::new(body).u32()
}

/// An authentication request: the `Int32` code after `R`, and the bytes after it.
pub fn auth_request(body: &[u8]) -> Option<(u32, &[u8])> {
    let mut r = Reader::new(body);
    let code = r.u32()?;
    Some((code, r.rest()))
}

/// AuthenticationSASL: "String: name of a SASL authentication mechanism", repeated, then a
/// zero byte. At most 8 names are returned.
pub fn sasl_mechanisms(data: &[u8]) -> Vec<&[u8]> {
    let mut r = Reader::new(data);
    let mut v = Vec::new();
    while let Some(m) = r.cstr() {
        if m.is_empty() || v.len() >= 8 {
            break;
        }
        v.push(m);
    }
    v
}

/// SASLInitialResponse: "String: name of the SASL authentication mechanism that the client
/// selected", then the (secret) initial response, which is not read.
pub fn sasl_initial_mechanism(body: &[u8]) -> Option<&[u8]> {
    let m = Reader::new(body).cstr()?;
    (!m.is_empty() && m.len() <= 64 && m.iter().all(|b| b.is_ascii_graphic())).then_some(m)
}

/// NegotiateProtocolVersion: "Int32: newest minor protocol version supported by the server
/// for the major protocol version requested by the client. Int32: number of protocol options
/// not recognized by the server" (then their names).
pub fn negotiate_protocol(body: &[u8]) -> Option<(u32, u32)> {
    let mut r = Reader::new(body);
    Some((r.u32()?, r.u32()?))
}

/// ReadyForQuery: "Byte1: current backend transaction status indicator" (`I`, `T` or `E`).
pub fn ready_status(body: &[u8]) -> Option<u8> {
    match body {
        [s @ (b'I' | b'T' | b'E')] => Some(*s),
        _ => None,
    }
}

/// Parse: "String: the name of the destination prepared statement (an empty string selects
/// the unnamed prepared statement). String: the query string to be parsed. Int16: the number
/// of parameter data types specified (can be zero). […] Int32: the object ID of the parameter
/// data type. Placing a zero here is equivalent to leaving the type unspecified."
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parse<'a> {
    /// Statement name.
    pub name: &'a [u8],
    /// Query text (the head only when `cut`).
    pub query: &'a [u8],
    /// The query text ran past the end of the body (a cut message).
    pub cut: bool,
    /// The declared parameter type OIDs, as raw `Int32`s (4 bytes each).
    pub oids: &'a [u8],
}

impl Parse<'_> {
    /// The declared parameter type OIDs.
    pub fn oids(&self) -> impl Iterator<Item = u32> + '_ {
        self.oids
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }
}

/// Parse a Parse body; a cut body gives the statement name and the head of the text.
pub fn parse(body: &[u8]) -> Option<Parse<'_>> {
    let mut r = Reader::new(body);
    let name = r.cstr()?;
    let (query, cut) = match r.cstr() {
        Some(q) => (q, false),
        None => (r.rest(), true),
    };
    let oids = if cut {
        &[][..]
    } else {
        let n = r.count16().unwrap_or(0);
        let avail = r.remaining() / 4;
        r.take(n.min(avail) * 4).unwrap_or_default()
    };
    Some(Parse {
        name,
        query,
        cut,
        oids,
    })
}

/// True when a Parse body is exactly: name, query, Int16 n, n OIDs.
pub fn parse_well_formed(body: &[u8]) -> bool {
    let mut r = Reader::new(body);
    (|| {
        r.cstr()?;
        r.cstr()?;
        let n = r.count16()?;
        r.take(n.checked_mul(4)?)?;
        r.is_empty().then_some(())
    })()
    .is_some()
}

/// The head of a Bind: "String: the name of the destination portal. String: the name of the
/// source prepared statement. Int16: the number of parameter format codes that follow […].
/// Int16[C]: the parameter format codes. Each must presently be zero (text) or one (binary).
/// Int16: the number of parameter values that follow […]." Then per parameter "Int32: the
/// length of the parameter value, in bytes (this count does not include itself). Can be zero.
/// As a special case, -1 indicates a NULL parameter value. Byte(n): the value", then the
/// result-column format codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindHead<'a> {
    /// Portal name.
    pub portal: &'a [u8],
    /// Statement name.
    pub statement: &'a [u8],
    /// Parameter format codes (2 bytes each).
    pub formats: &'a [u8],
    /// Number of parameter values.
    pub nparams: usize,
    /// The parameter values and what follows them.
    pub values: &'a [u8],
}

impl BindHead<'_> {
    /// Format of parameter `i`: "zero to indicate that there are no parameters or that the
    /// parameters all use the default format (text); or one, in which case the specified
    /// format code is applied to all parameters; or it can equal the actual number of
    /// parameters." Returns `true` for binary.
    pub fn binary(&self, i: usize) -> bool {
        let n = self.formats.len() / 2;
        let at = match n {
            0 => return false,
            1 => 0,
            _ => i,
        };
        self.formats
            .get(at * 2..at * 2 + 2)
            .is_some_and(|f| f == [0, 1])
    }
}

/// Parse the head of a Bind body (portal, statement, formats, parameter count).
pub fn bind_head(body: &[u8]) -> Option<BindHead<'_>> {
    let mut r = Reader::new(body);
    let portal = r.cstr()?;
    let statement = r.cstr()?;
    let nf = r.count16()?;
    let formats = r.take(nf.checked_mul(2)?)?;
    let nparams = r.count16()?;
    Some(BindHead {
        portal,
        statement,
        formats,
        nparams,
        values: r.rest(),
    })
}

/// True when a Bind body is exactly what its counts say.
pub fn bind_well_formed(body: &[u8]) -> bool {
    let Some(h) = bind_head(body) else {
        return false;
    };
    let nf = h.formats.len() / 2;
    if nf > 1 && nf != h.nparams {
        return false;
    }
    let mut r = Reader::new(h.values);
    for _ in 0..h.nparams {
        match r.i32() {
            Some(-1) => {}
            Some(n) if n >= 0 => {
                if r.take(n as usize).is_none() {
                    return false;
                }
            }
            _ => return false,
        }
    }
    match r.count16() {
        Some(n) => r.take(n.saturating_mul(2)).is_some() && r.is_empty(),
        None => false,
    }
}

/// Execute: "String: the name of the portal to execute. Int32: maximum number of rows to
/// return, if portal contains a query that returns rows (ignored otherwise). Zero denotes
/// 'no limit'."
pub fn execute(body: &[u8]) -> Option<(&[u8], u32)> {
    let mut r = Reader::new(body);
    let portal = r.cstr()?;
    let max = r.u32()?;
    r.is_empty().then_some((portal, max))
}

/// Describe / Close: "Byte1: 'S' to describe a prepared statement; or 'P' to describe a
/// portal. String: the name of the prepared statement or portal."
pub fn target(body: &[u8]) -> Option<(u8, &[u8])> {
    let mut r = Reader::new(body);
    let kind = r.u8()?;
    if kind != b'S' && kind != b'P' {
        return None;
    }
    let name = r.cstr()?;
    r.is_empty().then_some((kind, name))
}

/// The head of a FunctionCall: "Int32: specifies the object ID of the function to call.
/// Int16: the number of argument format codes that follow […]. Int16[C]: the argument format
/// codes. Int16: the number of arguments being supplied", then the arguments as in Bind, then
/// "Int16: the format code for the function result".
pub fn function_call(body: &[u8]) -> Option<(u32, BindHead<'_>)> {
    let mut r = Reader::new(body);
    let oid = r.u32()?;
    let nf = r.count16()?;
    let formats = r.take(nf.checked_mul(2)?)?;
    let nparams = r.count16()?;
    Some((
        oid,
        BindHead {
            portal: b"",
            statement: b"",
            formats,
            nparams,
            values: r.rest(),
        },
    ))
}

/// DataRow: "Int16: the number of column values that follow (possibly zero)", then per column
/// "Int32: the length of the column value […] -1 indicates a NULL column value" and its bytes.
/// True when the body is exactly that.
pub fn data_row_well_formed(body: &[u8]) -> bool {
    let mut r = Reader::new(body);
    let Some(n) = r.count16() else { return false };
    for _ in 0..n {
        match r.i32() {
            Some(-1) => {}
            Some(l) if l >= 0 => {
                if r.take(l as usize).is_none() {
                    return false;
                }
            }
            _ => return false,
        }
    }
    r.is_empty()
}

/// RowDescription: "Int16: the number of fields in a row", then per field "String: the field
/// name", table OID (Int32), column number (Int16), type OID (Int32), type size (Int16), type
/// modifier (Int32), format code (Int16). True when the body is exactly that.
pub fn row_description_well_formed(body: &[u8]) -> bool {
    let mut r = Reader::new(body);
    let Some(n) = r.count16() else { return false };
    for _ in 0..n {
        if r.cstr().is_none() || r.take(18).is_none() {
            return false;
        }
    }
    r.is_empty()
}

/// ParameterDescription: "Int16: the number of parameters used by the statement", then one
/// type OID each. Returns the count when the body is exactly that.
pub fn parameter_description(body: &[u8]) -> Option<usize> {
    let mut r = Reader::new(body);
    let n = r.count16()?;
    r.take(n.checked_mul(4)?)?;
    r.is_empty().then_some(n)
}

/// CopyInResponse / CopyOutResponse / CopyBothResponse: "Int8: 0 indicates the overall COPY
/// format is textual […] 1 indicates binary. Int16: the number of columns", then one Int16
/// format per column. True when the body is exactly that.
pub fn copy_response_well_formed(body: &[u8]) -> bool {
    let mut r = Reader::new(body);
    match r.u8() {
        Some(0 | 1) => {}
        _ => return false,
    }
    let Some(n) = r.count16() else { return false };
    r.take(n.saturating_mul(2)).is_some() && r.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_tags() {
        assert_eq!(tag_rows(b"INSERT 0 5"), Some(5));
        assert_eq!(tag_rows(b"UPDATE 12"), Some(12));
        assert_eq!(tag_rows(b"SELECT 0"), Some(0));
        assert_eq!(tag_rows(b"COPY 3"), Some(3));
        assert_eq!(tag_rows(b"MERGE 2"), Some(2));
        assert_eq!(tag_rows(b"FETCH 50"), Some(50));
        assert_eq!(tag_rows(b"MOVE 1"), Some(1));
        assert_eq!(tag_rows(b"DELETE 1"), Some(1));
        assert_eq!(tag_rows(b"CREATE TABLE"), None);
        assert_eq!(tag_rows(b"INSERT 0"), None);
        assert_eq!(tag_rows(b"SELECT x"), None);
        assert_eq!(tag_rows(b"SELECT 99999999999999999999999"), None);
        assert_eq!(tag_rows(b""), None);
    }

    #[test]
    fn error_response_fields() {
        // 'S' "ERROR", 'V' "ERROR", 'C' "42601", 'M' "syntax error", 'D' "d", terminator.
        let body = b"SERROR\0VERROR\0C42601\0Msyntax error\0Dd\0\0";
        let f = error_fields(body);
        assert_eq!(f.code, Some(&b"42601"[..]));
        assert_eq!(f.message, Some(&b"syntax error"[..]));
        assert_eq!(f.detail, Some(&b"d"[..]));
        assert!(!f.is_fatal());
        assert!(error_well_formed(body));
        assert!(!error_well_formed(b"SERROR\0"));
        assert!(!error_well_formed(b"\0"));
        assert!(error_fields(b"SFATAL\0").is_fatal());
    }

    #[test]
    fn bind_formats() {
        // portal "", statement "s1", 1 format (binary), 2 params: int4 7, NULL, 0 result formats.
        let body = b"\0s1\0\x00\x01\x00\x01\x00\x02\x00\x00\x00\x04\x00\x00\x00\x07\xff\xff\xff\xff\x00\x00";
        let h = bind_head(body).unwrap();
        assert_eq!(
            (h.portal, h.statement, h.nparams),
            (&b""[..], &b"s1"[..], 2)
        );
        assert!(h.binary(0) && h.binary(1));
        assert!(bind_well_formed(body));
        assert!(!bind_well_formed(&body[..body.len() - 1]));
    }

    #[test]
    fn parse_body() {
        // name "", query "select $1", 1 OID: 23 (int4).
        let body = b"\0select $1\0\x00\x01\x00\x00\x00\x17";
        let p = parse(body).unwrap();
        assert_eq!(p.query, b"select $1");
        assert_eq!(p.oids().collect::<Vec<_>>(), vec![23]);
        assert!(parse_well_formed(body));
        let cut = parse(&body[..5]).unwrap();
        assert!(cut.cut);
        assert_eq!(cut.query, b"sele");
    }
}
