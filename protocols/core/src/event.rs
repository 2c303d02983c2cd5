//! Protocol-neutral events: what every parser pushes and what the session layer turns into audit
//! records. Per-protocol message types never leave their crate; these are owned and small.

use std::borrow::Cow;
use std::sync::Arc;

use crate::contract::Direction;
use crate::time::Timestamp;

/// How much of an operation the sensor saw. Lets an auditor tell "no activity" from "activity we
/// could not see".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Completeness {
    /// Every byte was seen.
    #[default]
    Complete,
    /// `lost_bytes` bytes of it were never captured (loss, snaplen, budget overflow).
    Partial { lost_bytes: u64 },
    /// It was cut: at a limit (statement text kept up to `Limits::max_statement_len`) or at the
    /// end of the capture. `kept` bytes were kept of `original` (when known, else `kept`).
    Truncated { kept: u64, original: u64 },
}

impl Completeness {
    /// Combine two observations of the same operation: the worse one wins, losses add up.
    pub fn merge(self, other: Completeness) -> Completeness {
        use Completeness::*;
        match (self, other) {
            (Complete, x) | (x, Complete) => x,
            (Partial { lost_bytes: a }, Partial { lost_bytes: b }) => Partial {
                lost_bytes: a.saturating_add(b),
            },
            (Partial { lost_bytes }, Truncated { .. })
            | (Truncated { .. }, Partial { lost_bytes }) => Partial { lost_bytes },
            (Truncated { kept, original }, Truncated { .. }) => Truncated { kept, original },
        }
    }
    /// True unless `Complete`.
    pub fn is_incomplete(self) -> bool {
        !matches!(self, Completeness::Complete)
    }
}

/// The operation kind of a request, as written in the record's `op` field. One value per kind,
/// lowercase, shared across protocols where the meaning is shared.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Op(pub Cow<'static, str>);

impl Op {
    /// Authentication of a new session.
    pub const LOGIN: Op = Op::new("login");
    /// The client ended the session.
    pub const LOGOUT: Op = Op::new("logout");
    /// A statement sent as text.
    pub const QUERY: Op = Op::new("query");
    /// A statement prepared for later execution.
    pub const PREPARE: Op = Op::new("prepare");
    /// A prepared statement executed with bind values.
    pub const EXECUTE: Op = Op::new("execute");
    /// Change of the default database.
    pub const INIT_DB: Op = Op::new("init_db");
    /// Re-authentication on an open session.
    pub const CHANGE_USER: Op = Op::new("change_user");

    /// A static operation name.
    pub const fn new(name: &'static str) -> Op {
        Op(Cow::Borrowed(name))
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Who logged in and with what: carried by `login` and `change_user` requests.
/// Credentials are never here: only the fact that they were sent and the method used.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Login {
    /// Database user name.
    pub user: Option<String>,
    /// Database (schema) asked for at login.
    pub database: Option<String>,
    /// The client's program name, from connection attributes or the protocol's own field.
    pub client_program: Option<String>,
    /// Authentication method (e.g. `mysql_native_password`, `caching_sha2_password`).
    pub auth_method: Option<String>,
    /// Connection attributes as sent by the client, in wire order (bounded).
    pub attributes: Vec<(String, String)>,
    /// The client sent credentials (a password, hash or token), which were dropped.
    pub credentials_redacted: bool,
}

/// One typed bind value.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// The wire type name (e.g. `long`, `var_string`, `datetime`).
    pub type_name: Cow<'static, str>,
    /// The decoded value.
    pub value: ParamValue,
    /// The value was cut at `Limits::max_param_len`.
    pub truncated: bool,
    /// The parameter's name, when the protocol carries one (TDS RPC parameters: `@P1`,
    /// `@pw`); `None` for positional binds (MySQL, PostgreSQL, Oracle). Records match
    /// password placeholders written in SQL by name against it.
    pub name: Option<String>,
}

/// A decoded bind value.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    /// SQL NULL.
    Null,
    /// Boolean.
    Bool(bool),
    /// Signed integer.
    Int(i64),
    /// Unsigned integer.
    UInt(u64),
    /// Floating point.
    Float(f64),
    /// Text (decimal numbers, strings, dates rendered as text), already converted to UTF-8.
    Text(String),
    /// Binary data, written as hex.
    Bytes(Vec<u8>),
    /// The value was sent out of band (long data) and is not in the execute message.
    LongData {
        /// Bytes that were sent for it in `send_long_data` messages.
        bytes: u64,
    },
    /// The value's bytes could not be decoded (malformed or cut).
    Undecodable,
    /// A one-dimensional array (PostgreSQL array parameters), elements in order.
    Array(Vec<ParamValue>),
    /// Cipher text of a value the client encrypted itself (TDS Always Encrypted): the sensor
    /// cannot read it, so it is kept as bytes and never decoded as the declared type.
    Encrypted(Vec<u8>),
    /// A table-valued parameter (TDS TVP): only its size is kept, the rows are skipped.
    Table {
        /// Rows sent.
        rows: u64,
        /// Columns of the table type.
        columns: u16,
    },
    /// No value was sent: the column's default is used (MariaDB bulk execution indicators
    /// DEFAULT and IGNORE).
    Default,
}

/// Bind values kept as the wire bytes they came in, decoded only when the record is written.
///
/// Decoding values (text conversion, numbers and dates rendered, a string allocated per value)
/// is most of the work of parsing a request with many parameters. The parser still steps over
/// every value, so it knows where the request ends, how many values there are and which cannot
/// be read, but it leaves the decoding to the record stage, which runs on another thread.
pub trait ParamDecoder: std::fmt::Debug + Send + Sync {
    /// Append the values, in order, to `out`: the same list the parser would have decoded.
    fn decode_into(&self, out: &mut Vec<Param>);
    /// Heap bytes held (approximate), for the flow table's memory report.
    fn heap_bytes(&self) -> usize;
}

/// A request's deferred bind values (see [`ParamDecoder`]).
#[derive(Debug, Clone)]
pub struct DeferredParams(pub Arc<dyn ParamDecoder>);

impl DeferredParams {
    /// Defer `values`.
    pub fn new(values: impl ParamDecoder + 'static) -> Self {
        DeferredParams(Arc::new(values))
    }

    /// The values, decoded.
    pub fn decode(&self) -> Vec<Param> {
        let mut out = Vec::new();
        self.0.decode_into(&mut out);
        out
    }
}

/// Two deferred lists are equal when they decode to the same values.
impl PartialEq for DeferredParams {
    fn eq(&self, other: &Self) -> bool {
        self.decode() == other.decode()
    }
}

/// A request: one operation the client asked for.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Request {
    /// Parser-assigned number, increasing within a session; pairs the request with its response.
    pub tx: u64,
    /// Capture time of the request's first byte.
    pub ts: Timestamp,
    /// Operation kind.
    pub op: Option<Op>,
    /// Statement text (UTF-8). For an execute: the prepared text, when the prepare was seen —
    /// shared with the parser's statement cache (an execute costs no copy of its text).
    pub sql: Option<Arc<str>>,
    /// Typed bind values in order (execute), or `None`.
    pub params: Option<Vec<Param>>,
    /// Bind values the parser stepped over and kept as wire bytes, to be decoded when the
    /// record is written ([`DeferredParams`]); when set, `params` is `None`.
    pub deferred_params: Option<DeferredParams>,
    /// Array execution (MariaDB COM_STMT_BULK_EXECUTE): `params` holds several rows of this
    /// many values each, row after row; `None` for one row.
    pub param_row_width: Option<u16>,
    /// Server-side statement handle (prepare response, execute, close).
    pub stmt_id: Option<u64>,
    /// Login details (`login`, `change_user`).
    pub login: Option<Box<Login>>,
    /// The login travelled inside TLS while the rest of the session is plaintext (TDS with
    /// `ENCRYPT_OFF`): who logged in was not visible.
    pub login_encrypted: bool,
    /// Procedure called (RPC requests: TDS RPC, …). Well-known names are borrowed, not
    /// allocated per request.
    pub procedure: Option<Cow<'static, str>>,
    /// Query attributes sent with the statement (name, value), bounded. Names are mostly the
    /// parser's own (`statement`, `portal`, `binds`, …): borrowed, not allocated per request.
    pub attributes: Vec<(Cow<'static, str>, String)>,
    /// Wire bytes of the request, headers included.
    pub bytes: u64,
    /// False for requests the protocol never answers (e.g. MySQL COM_QUIT, COM_STMT_CLOSE).
    pub expects_response: bool,
    /// How much of the request was seen.
    pub completeness: Completeness,
}

impl ParamValue {
    /// Heap bytes the value holds.
    pub fn heap_bytes(&self) -> usize {
        match self {
            ParamValue::Text(t) => t.capacity(),
            ParamValue::Bytes(b) | ParamValue::Encrypted(b) => b.capacity(),
            ParamValue::Array(a) => {
                a.capacity() * std::mem::size_of::<ParamValue>()
                    + a.iter().map(ParamValue::heap_bytes).sum::<usize>()
            }
            _ => 0,
        }
    }
}

impl Request {
    /// The bind values, decoded: `params`, or the deferred ones decoded now.
    pub fn decoded_params(&self) -> Option<Vec<Param>> {
        match &self.deferred_params {
            Some(d) => Some(d.decode()),
            None => self.params.clone(),
        }
    }

    /// Approximate heap bytes the request holds (its text, bind values, attributes and login),
    /// for a parser's memory report while the request waits for its response. It walks the
    /// bind values: call it once per request (when it starts waiting), not per packet.
    pub fn heap_bytes(&self) -> usize {
        let params = self.params.as_ref().map_or(0, |ps| {
            ps.capacity() * std::mem::size_of::<Param>()
                + ps.iter()
                    .map(|p| p.value.heap_bytes() + p.name.as_ref().map_or(0, String::capacity))
                    .sum::<usize>()
        });
        let attributes = self.attributes.capacity()
            * std::mem::size_of::<(Cow<'static, str>, String)>()
            + self
                .attributes
                .iter()
                .map(|(_, v)| v.capacity())
                .sum::<usize>();
        let login = self.login.as_ref().map_or(0, |l| {
            std::mem::size_of::<Login>()
                + l.attributes
                    .iter()
                    .map(|(k, v)| k.capacity() + v.capacity())
                    .sum::<usize>()
        });
        let deferred = self
            .deferred_params
            .as_ref()
            .map_or(0, |d| d.0.heap_bytes());
        self.sql.as_ref().map_or(0, |s| s.len())
            + params
            + deferred
            + attributes
            + login
            + match &self.procedure {
                Some(Cow::Owned(p)) => p.capacity(),
                _ => 0,
            }
    }
}

/// Outcome of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Status {
    /// The server reported success.
    Ok,
    /// The server reported an error.
    Error,
    /// No response was seen.
    #[default]
    Unknown,
}

/// A database error code: numeric (MySQL, TDS, Oracle) or text (PostgreSQL SQLSTATE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorCode {
    /// Numeric code, e.g. MySQL 1045.
    Num(i64),
    /// Text code, e.g. PostgreSQL `28P01`.
    Text(String),
}

/// An error reported by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbError {
    /// Error code.
    pub code: ErrorCode,
    /// SQLSTATE, when the protocol carries one.
    pub sqlstate: Option<String>,
    /// Human-readable message, UTF-8.
    pub message: String,
}

/// The server's answer to one request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Response {
    /// The `tx` of the request this answers.
    pub tx: u64,
    /// Capture time of the response's last byte.
    pub ts_end: Timestamp,
    /// Success or error.
    pub status: Status,
    /// The error, when `status` is `Error`.
    pub error: Option<DbError>,
    /// Rows affected (DML) or returned (result sets).
    pub rows: Option<u64>,
    /// Last insert id, when reported.
    pub insert_id: Option<u64>,
    /// Warning count, when reported.
    pub warnings: Option<u64>,
    /// Statement handle assigned by a prepare.
    pub stmt_id: Option<u64>,
    /// Number of parameters of a prepared statement.
    pub param_count: Option<u64>,
    /// Wire bytes of the response, headers and skipped rows included.
    pub bytes: u64,
    /// How much of the response was seen.
    pub completeness: Completeness,
}

/// Session attributes that changed (after a successful login, change of database, …).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SessionUpdate {
    /// New user.
    pub user: Option<String>,
    /// New default database.
    pub database: Option<String>,
    /// Client program.
    pub client_program: Option<String>,
}

/// Everything a parser reports.
#[derive(Debug, Clone, PartialEq)]
pub enum DbEvent {
    /// The server identified itself.
    ServerInfo {
        /// Server version string.
        version: Option<String>,
        /// Server-side connection (thread / backend / SPID) id.
        connection_id: Option<u64>,
    },
    /// The client asked for something.
    Request(Box<Request>),
    /// The server answered.
    Response(Box<Response>),
    /// Session attributes changed.
    Session(SessionUpdate),
    /// The session switched to TLS: its bytes are counted, nothing else is parsed.
    Encrypted,
    /// The parser lost message boundaries in `dir` after `lost_bytes` missing bytes.
    Desync { dir: Direction, lost_bytes: u64 },
    /// The parser found message boundaries again after discarding `skipped_bytes`.
    Resync { dir: Direction, skipped_bytes: u64 },
    /// A protocol anomaly worth counting (malformed message, over-limit field, unknown message).
    Anomaly {
        /// Direction of the offending message.
        dir: Direction,
        /// Bounded, static kind name (metrics label).
        kind: &'static str,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completeness_merge_keeps_the_worst() {
        use Completeness::*;
        assert_eq!(
            Complete.merge(Partial { lost_bytes: 3 }),
            Partial { lost_bytes: 3 }
        );
        assert_eq!(
            Partial { lost_bytes: 3 }.merge(Partial { lost_bytes: 4 }),
            Partial { lost_bytes: 7 }
        );
        assert_eq!(
            Truncated {
                kept: 1,
                original: 9
            }
            .merge(Complete),
            Truncated {
                kept: 1,
                original: 9
            }
        );
    }
}
