//! The audit record: one JSON object per line per database operation.
//!
//! Schema version 1. The field names of the first block are fixed (other tools read them); the
//! README documents every field. Required fields are always present (`null` when unknown);
//! optional extras are omitted when they have no value.

use std::borrow::Cow;
use std::net::IpAddr;

use dbtap_core::{Completeness, DbError, ErrorCode, Param, ParamValue, Status, Timestamp};

use crate::json::JsonOut;
use crate::sql::{Analysis, SecretParam, SqlView};

/// Version of the record schema, written in every record as `schema_version`.
pub const SCHEMA_VERSION: u32 = 1;

/// One side of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// IP address.
    pub ip: IpAddr,
    /// TCP port.
    pub port: u16,
}

/// The fields every record of a session shares (`protocol`, `session_id`, `client`,
/// `server`), rendered as JSON once when the session starts rather than once per record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionHeader {
    /// Wire protocol.
    pub protocol: &'static str,
    /// Stable id of the TCP connection (written as 16 hex digits).
    pub session_id: u64,
    /// Client side.
    pub client: Endpoint,
    /// Server side.
    pub server: Endpoint,
    /// The four fields as JSON object members, without braces.
    json: Box<[u8]>,
}

impl SessionHeader {
    /// Render the shared fields of a session's records.
    pub fn new(
        protocol: &'static str,
        session_id: u64,
        client: Endpoint,
        server: Endpoint,
    ) -> Self {
        let mut buf = Vec::with_capacity(128);
        let mut j = JsonOut::new(&mut buf);
        j.field("protocol");
        j.str(protocol);
        j.field("session_id");
        j.raw_str(&hex_id(session_id));
        for (k, ep) in [("client", &client), ("server", &server)] {
            j.field(k);
            j.begin_object();
            j.field("ip");
            j.ip(&ep.ip);
            j.field("port");
            j.u64(ep.port as u64);
            j.end_object();
        }
        SessionHeader {
            protocol,
            session_id,
            client,
            server,
            json: buf.into_boxed_slice(),
        }
    }
}

/// Flags that say what the sensor could not see or what is special about a record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags(u16);

impl Flags {
    /// Bytes of the operation were never captured.
    pub const PARTIAL: Flags = Flags(1 << 0);
    /// The session was picked up after it started (no handshake seen).
    pub const MIDSTREAM: Flags = Flags(1 << 1);
    /// The session is encrypted (TLS): nothing inside was parsed.
    pub const ENCRYPTED: Flags = Flags(1 << 2);
    /// A response was expected but none was seen.
    pub const NO_RESPONSE: Flags = Flags(1 << 3);
    /// Text was cut at a limit or by the end of the capture.
    pub const TRUNCATED: Flags = Flags(1 << 4);
    /// The session was closed by the sensor: idle timeout.
    pub const IDLE_TIMEOUT: Flags = Flags(1 << 5);
    /// The session was closed by the sensor: flow table memory cap.
    pub const EVICTED: Flags = Flags(1 << 6);
    /// The capture ended while the session was open.
    pub const CAPTURE_END: Flags = Flags(1 << 7);
    /// Bytes of the session were lost just before this operation: operations may be missing
    /// before it.
    pub const AFTER_GAP: Flags = Flags(1 << 8);
    /// The login travelled inside TLS while the session stayed plaintext (TDS `ENCRYPT_OFF`):
    /// the login's user, database and client were not visible.
    pub const LOGIN_ENCRYPTED: Flags = Flags(1 << 9);
    /// The connection was announced by a server's redirect (an Oracle listener's REDIRECT) and
    /// parsed as that protocol from its first captured byte, even picked up mid-stream.
    pub const REDIRECTED: Flags = Flags(1 << 10);

    const NAMES: [(Flags, &'static str); 11] = [
        (Flags::PARTIAL, "partial"),
        (Flags::MIDSTREAM, "midstream"),
        (Flags::ENCRYPTED, "encrypted"),
        (Flags::NO_RESPONSE, "no_response"),
        (Flags::TRUNCATED, "truncated"),
        (Flags::IDLE_TIMEOUT, "idle_timeout"),
        (Flags::EVICTED, "evicted"),
        (Flags::CAPTURE_END, "capture_end"),
        (Flags::AFTER_GAP, "after_gap"),
        (Flags::LOGIN_ENCRYPTED, "login_encrypted"),
        (Flags::REDIRECTED, "redirected"),
    ];

    /// Set `other`'s flags too.
    pub fn insert(&mut self, other: Flags) {
        self.0 |= other.0;
    }
    /// Whether all of `other`'s flags are set.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }
    /// Union.
    pub fn with(mut self, other: Flags) -> Flags {
        self.insert(other);
        self
    }
    /// Flags implied by a completeness.
    pub fn from_completeness(c: Completeness) -> Flags {
        match c {
            Completeness::Complete => Flags::default(),
            Completeness::Partial { .. } => Flags::PARTIAL,
            Completeness::Truncated { .. } => Flags::TRUNCATED,
        }
    }
    /// Every flag name.
    pub fn all_names() -> impl Iterator<Item = &'static str> {
        Flags::NAMES.into_iter().map(|(_, n)| n)
    }

    /// Names of the set flags, in a fixed order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        // Most records have no flag: then the table is not walked at all.
        let table: &'static [(Flags, &'static str)] = if self.0 == 0 { &[] } else { &Flags::NAMES };
        table
            .iter()
            .filter(move |(f, _)| self.contains(*f))
            .map(|(_, n)| *n)
    }
}

/// Request and response byte counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bytes {
    /// Wire bytes of the request.
    pub request: u64,
    /// Wire bytes of the response.
    pub response: u64,
}

/// Login details, on `login` and `change_user` records. No credentials, ever.
#[derive(Debug, Clone, PartialEq)]
pub struct LoginDetails<'a> {
    /// Authentication method.
    pub auth_method: Option<&'a str>,
    /// Connection attributes as sent by the client.
    pub attributes: &'a [(String, String)],
    /// The client sent credentials, which were not recorded.
    pub credentials_redacted: bool,
}

/// Who and where, as of one operation: the record fields `user`, `database`, `client_program`
/// and `server_version`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Context<'a> {
    /// Database user (for `login`/`change_user`: the user who tried).
    pub user: Option<&'a str>,
    /// Default database.
    pub database: Option<&'a str>,
    /// Client program.
    pub client_program: Option<&'a str>,
    /// Server version.
    pub server_version: Option<&'a str>,
}

impl Context<'_> {
    fn write(&self, j: &mut JsonOut<'_>) {
        j.token(b",\"user\":");
        j.opt_str(self.user);
        j.token(b",\"database\":");
        j.opt_str(self.database);
        j.token(b",\"client_program\":");
        j.opt_str(self.client_program);
        j.token(b",\"server_version\":");
        j.opt_str(self.server_version);
    }

    /// The four fields as JSON text that fits where [`AuditRecord::context_json`] goes.
    pub fn render(&self, buf: &mut Vec<u8>) {
        buf.clear();
        // The four names and their punctuation, the values, and room for escapes: one
        // allocation rather than a regrowth per field.
        let values = [
            self.user,
            self.database,
            self.client_program,
            self.server_version,
        ];
        buf.reserve(
            96 + values
                .iter()
                .map(|v| v.map_or(4, |s| s.len() + 2))
                .sum::<usize>(),
        );
        self.write(&mut JsonOut::new(buf));
    }
}

/// One audit record, borrowing from the session and the request it describes.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord<'a> {
    /// Schema version ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// Capture time of the request's first packet, RFC 3339 UTC with microseconds.
    pub ts: Timestamp,
    /// Operation number within the session, from 1.
    pub seq: u64,
    /// Protocol, session id, client and server.
    pub session: &'a SessionHeader,
    /// User, database, client program and server version at the time of the operation.
    pub context: Context<'a>,
    /// `context` already rendered by [`Context::render`] (a session reuses it until its context
    /// changes); when `None`, `context` is written.
    pub context_json: Option<&'a [u8]>,
    /// Operation kind.
    pub op: &'a str,
    /// Procedure called by an RPC (omitted when absent).
    pub procedure: Option<&'a str>,
    /// Statement text.
    pub sql: Option<&'a str>,
    /// Typed bind values.
    pub params: Option<&'a [Param]>,
    /// Array execution: `params` holds rows of this many values (positions repeat per row).
    pub param_row_width: Option<u16>,
    /// Outcome.
    pub status: Status,
    /// Error reported by the server.
    pub error: Option<&'a DbError>,
    /// Rows affected or returned.
    pub rows: Option<u64>,
    /// Request's first packet → response's last packet, µs; null without a response.
    pub latency_us: Option<u64>,
    /// Byte counts.
    pub bytes: Bytes,
    /// What was special or not seen.
    pub flags: Flags,
    /// Server-side statement handle (omitted when absent).
    pub stmt_id: Option<u64>,
    /// Server-side connection id (omitted when absent).
    pub connection_id: Option<u64>,
    /// Last insert id (omitted when absent).
    pub insert_id: Option<u64>,
    /// Warning count (omitted when absent).
    pub warnings: Option<u64>,
    /// Bytes of this operation that were never captured (omitted when 0).
    pub lost_bytes: u64,
    /// Login details (omitted when absent).
    pub login: Option<LoginDetails<'a>>,
    /// Query attributes sent with the statement (omitted when empty).
    pub attributes: &'a [(Cow<'static, str>, String)],
}

impl AuditRecord<'_> {
    /// `status` as written.
    pub fn status_str(&self) -> &'static str {
        match self.status {
            Status::Ok => "ok",
            Status::Error => "error",
            Status::Unknown => "unknown",
        }
    }

    /// Append the record as one JSON object (no newline) to `buf`. `clock` remembers the last
    /// second formatted (records come in bursts within the same second).
    ///
    /// `sql` is the SQL stage's view of the record's statement: its text replaces `self.sql`
    /// (passwords redacted, literals masked when asked), its analysis adds `kind`, `command`,
    /// `objects`, `fingerprint` and `normalized`, and bind values that are passwords (or all of
    /// them, when masking) are written masked.
    pub fn write_json(&self, buf: &mut Vec<u8>, clock: &mut TimeText, sql: Option<&SqlView<'_>>) {
        // The layout is fixed, so each field name goes out as one literal token with its
        // separators (`,"user":`); only the values are formatted.
        macro_rules! key {
            ($j:ident, $lit:literal) => {
                $j.token($lit.as_bytes())
            };
        }
        buf.reserve(512);
        let mut j = JsonOut::new(buf);
        key!(j, "{\"schema_version\":");
        j.u64(self.schema_version as u64);
        key!(j, ",\"ts\":");
        j.raw_str(clock.format(self.ts));
        key!(j, ",\"seq\":");
        j.u64(self.seq);
        key!(j, ",");
        j.token(&self.session.json);
        match self.context_json {
            Some(rendered) => j.token(rendered),
            None => self.context.write(&mut j),
        }
        key!(j, ",\"op\":");
        j.str(self.op);
        if let Some(p) = self.procedure {
            key!(j, ",\"procedure\":");
            j.str(p);
        }
        key!(j, ",\"sql\":");
        match sql {
            Some(v) => j.token(v.text_json),
            None => j.opt_str(self.sql),
        }
        key!(j, ",\"params\":");
        match self.params {
            Some(ps) => {
                j.begin_array();
                for (i, p) in ps.iter().enumerate() {
                    // The position within its row: placeholders repeat per row of a bulk.
                    let pos = match self.param_row_width {
                        Some(w) if w > 0 => i % usize::from(w),
                        _ => i,
                    };
                    let shown = match sql {
                        Some(v) if is_secret(&v.analysis.secret_params, pos, p) => Shown::Secret,
                        Some(v) if v.mask_params => Shown::Masked,
                        _ => Shown::AsIs,
                    };
                    write_param(&mut j, p, shown);
                }
                j.end_array();
            }
            None => j.null(),
        }
        if let Some(v) = sql {
            j.token(v.analysis_json);
        }
        key!(j, ",\"status\":");
        j.token(match self.status {
            Status::Ok => b"\"ok\"",
            Status::Error => b"\"error\"",
            Status::Unknown => b"\"unknown\"",
        });
        match self.error {
            Some(e) => {
                key!(j, ",\"error\":{\"code\":");
                match &e.code {
                    ErrorCode::Num(n) => j.i64(*n),
                    ErrorCode::Text(t) => j.str(t),
                }
                key!(j, ",\"sqlstate\":");
                j.opt_str(e.sqlstate.as_deref());
                key!(j, ",\"message\":");
                // A password written in the statement is scrubbed from the message too: a
                // syntax error quotes the text near the mistake.
                let message = match sql {
                    Some(v) => crate::sql::scrub(&e.message, &v.analysis.secret_values),
                    None => Cow::Borrowed(e.message.as_str()),
                };
                match sql {
                    // Error messages quote the values that failed (`Duplicate entry '42' for key
                    // …`, `Key (id)=(42) already exists`): masked like the statement's literals.
                    // Read as PostgreSQL text, so that "double-quoted" names (relations,
                    // constraints) stay: they are not values.
                    Some(v) if v.mask_params => j.str(&crate::sql::mask_literals(
                        &message,
                        crate::sql::Dialect::Postgres,
                    )),
                    _ => j.str(&message),
                }
                key!(j, "}");
            }
            None => key!(j, ",\"error\":null"),
        }
        key!(j, ",\"rows\":");
        j.opt_u64(self.rows);
        key!(j, ",\"latency_us\":");
        j.opt_u64(self.latency_us);
        key!(j, ",\"bytes\":{\"request\":");
        j.u64(self.bytes.request);
        key!(j, ",\"response\":");
        j.u64(self.bytes.response);
        key!(j, "},\"flags\":");
        j.begin_array();
        for name in self.flags.names() {
            j.str(name);
        }
        j.end_array();
        for (k, v) in [
            (",\"stmt_id\":", self.stmt_id),
            (",\"connection_id\":", self.connection_id),
            (",\"insert_id\":", self.insert_id),
            (",\"warnings\":", self.warnings),
            (
                ",\"lost_bytes\":",
                (self.lost_bytes > 0).then_some(self.lost_bytes),
            ),
        ] {
            if let Some(v) = v {
                j.token(k.as_bytes());
                j.u64(v);
            }
        }
        if let Some(l) = &self.login {
            key!(j, ",\"login\":{\"auth_method\":");
            j.opt_str(l.auth_method);
            key!(j, ",\"attributes\":");
            write_pairs(&mut j, l.attributes);
            key!(j, ",\"credentials_redacted\":");
            j.bool(l.credentials_redacted);
            key!(j, "}");
        }
        if !self.attributes.is_empty() {
            key!(j, ",\"attributes\":");
            j.begin_object();
            for (k, v) in self.attributes {
                j.key(k);
                match sql {
                    // Statements a parser kept beside the one that failed: shown as the
                    // statement is, passwords redacted and literals masked when asked (and
                    // redacted even without a statement to take the settings from).
                    Some(view) if k == NOT_EXECUTED_SQL => {
                        j.str(&crate::sql::shown_text(v, view.dialect, view.mask_params))
                    }
                    None if k == NOT_EXECUTED_SQL => j.str(&crate::sql::shown_text(
                        v,
                        crate::sql::Dialect::of_protocol(self.session.protocol),
                        false,
                    )),
                    _ => j.str(v),
                }
            }
            j.end_object();
        }
        key!(j, "}");
    }
}

/// How a bind value is shown.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shown {
    AsIs,
    /// `--mask literals`: the value is `"?"` (NULL stays null: it reveals nothing).
    Masked,
    /// A password: `"***"`, always.
    Secret,
}

/// Is bind value `index` (`p`) one the statement's analysis says is a password? By position
/// (`?`, `$n`, Oracle binds: the index among the record's params, which for a TDS RPC are the
/// user parameters after `@stmt` / `@params`), or by name (T-SQL `@pw`, matched against the
/// parameter's wire name; T-SQL names are case-insensitive, and the `@` is optional on the
/// wire for some clients).
fn is_secret(secrets: &[SecretParam], index: usize, p: &Param) -> bool {
    secrets.iter().any(|s| match s {
        SecretParam::Index(i) => *i == index,
        SecretParam::Name(n) => p.name.as_deref().is_some_and(|pn| {
            pn.trim_start_matches('@')
                .eq_ignore_ascii_case(n.trim_start_matches('@'))
        }),
    })
}

/// The analysis fields of a statement record, `,"kind":…,"normalized":…`, rendered once per
/// statement text by the SQL stage and copied into each record that has that text.
pub fn render_analysis(a: &Analysis, out: &mut Vec<u8>) {
    let mut j = JsonOut::new(out);
    j.token(b",\"kind\":");
    j.str(a.kind.as_str());
    j.token(b",\"command\":");
    j.str(&a.command);
    if !a.statements.is_empty() {
        // Every statement of a text that holds several, the first included.
        j.token(b",\"statements\":");
        j.begin_array();
        let first = std::iter::once((a.kind, a.command.as_str()));
        for (kind, command) in
            first.chain(a.statements.iter().map(|s| (s.kind, s.command.as_str())))
        {
            j.begin_object();
            j.field("kind");
            j.str(kind.as_str());
            j.field("command");
            j.str(command);
            j.end_object();
        }
        j.end_array();
    }
    j.token(b",\"objects\":");
    j.begin_array();
    for o in &a.objects {
        j.begin_object();
        j.field("name");
        j.str(&o.name);
        j.field("access");
        j.str(o.access.as_str());
        j.end_object();
    }
    j.end_array();
    j.token(b",\"fingerprint\":");
    j.raw_str(format!("{:016x}", a.fingerprint).as_bytes());
    j.token(b",\"normalized\":");
    j.str(&a.normalized);
}

/// A JSON string value, rendered once (the SQL stage caches statement texts this way).
pub fn render_str(s: &str, out: &mut Vec<u8>) {
    JsonOut::new(out).str(s);
}

/// `{"type": …, "name": …, "value": …}` (`name` only when the protocol sent one); binary
/// values as `"hex"`, long data as `"long_data_bytes"`, client-encrypted values as `"hex"`
/// with `"encrypted": true`, table-valued parameters as `"rows"` and `"columns"`.
fn write_param(j: &mut JsonOut<'_>, p: &Param, shown: Shown) {
    j.begin_object();
    // Field names go out as literal tokens with their separators (the object was just
    // opened, so only the first has no comma).
    j.token(b"\"type\":");
    j.str(&p.type_name);
    if let Some(name) = &p.name {
        j.token(b",\"name\":");
        j.str(name);
    }
    let hidden = match (shown, &p.value) {
        (Shown::Secret, _) => Some("***"),
        (Shown::Masked, ParamValue::Null) | (Shown::AsIs, _) => None,
        (Shown::Masked, _) => Some("?"),
    };
    if let Some(text) = hidden {
        j.token(b",\"value\":");
        j.str(text);
        j.end_object();
        return;
    }
    match &p.value {
        ParamValue::Null => {
            j.token(b",\"value\":");
            j.null();
        }
        ParamValue::Bool(b) => {
            j.token(b",\"value\":");
            j.bool(*b);
        }
        ParamValue::Int(i) => {
            j.token(b",\"value\":");
            j.i64(*i);
        }
        ParamValue::UInt(u) => {
            j.token(b",\"value\":");
            j.u64(*u);
        }
        ParamValue::Float(f) => {
            j.token(b",\"value\":");
            j.f64(*f);
        }
        ParamValue::Text(t) => {
            j.token(b",\"value\":");
            j.str(t);
        }
        ParamValue::Bytes(b) => {
            j.token(b",\"hex\":");
            j.hex(b);
        }
        ParamValue::LongData { bytes } => {
            j.token(b",\"long_data_bytes\":");
            j.u64(*bytes);
        }
        ParamValue::Undecodable => {
            j.token(b",\"undecodable\":");
            j.bool(true);
        }
        ParamValue::Array(items) => {
            j.token(b",\"value\":");
            write_array(j, items);
        }
        ParamValue::Encrypted(b) => {
            j.token(b",\"hex\":");
            j.hex(b);
            j.token(b",\"encrypted\":");
            j.bool(true);
        }
        ParamValue::Table { rows, columns } => {
            j.token(b",\"rows\":");
            j.u64(*rows);
            j.token(b",\"columns\":");
            j.u64(*columns as u64);
        }
        ParamValue::Default => {
            j.token(b",\"default\":");
            j.bool(true);
        }
    }
    if p.truncated {
        j.token(b",\"truncated\":");
        j.bool(true);
    }
    j.end_object();
}

/// An array parameter as a JSON list: scalars as JSON values, binary elements as `\\x…` hex
/// text (PostgreSQL's bytea text form), nested arrays as lists, anything undecodable as null.
fn write_array(j: &mut JsonOut<'_>, items: &[ParamValue]) {
    j.begin_array();
    for v in items {
        match v {
            ParamValue::Null
            | ParamValue::Undecodable
            | ParamValue::LongData { .. }
            | ParamValue::Encrypted(_)
            | ParamValue::Table { .. }
            | ParamValue::Default => j.null(),
            ParamValue::Bool(b) => j.bool(*b),
            ParamValue::Int(i) => j.i64(*i),
            ParamValue::UInt(u) => j.u64(*u),
            ParamValue::Float(f) => j.f64(*f),
            ParamValue::Text(t) => j.str(t),
            ParamValue::Bytes(b) => {
                const DIGITS: &[u8; 16] = b"0123456789abcdef";
                let mut s = String::with_capacity(2 + b.len() * 2);
                s.push_str("\\x");
                for &x in b {
                    s.push(DIGITS[(x >> 4) as usize] as char);
                    s.push(DIGITS[(x & 0xf) as usize] as char);
                }
                j.str(&s);
            }
            ParamValue::Array(inner) => write_array(j, inner),
        }
    }
    j.end_array();
}

/// Name/value pairs as an object, in wire order (a repeated name is written again: JSON readers
/// keep the last, and nothing is hidden from a byte-level reader).
/// The attribute that holds the statements of a multi-statement query that were not run
/// (MySQL, PostgreSQL): SQL text, so it is redacted and masked as the statement is.
const NOT_EXECUTED_SQL: &str = "not_executed_sql";

fn write_pairs<K: AsRef<str>>(j: &mut JsonOut<'_>, pairs: &[(K, String)]) {
    j.begin_object();
    for (k, v) in pairs {
        j.key(k.as_ref());
        j.str(v);
    }
    j.end_object();
}

fn hex_id(id: u64) -> [u8; 16] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 16];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = DIGITS[((id >> (60 - 4 * i)) & 0xf) as usize];
    }
    out
}

/// Formats timestamps as RFC 3339, redoing the calendar arithmetic only when the second changes.
#[derive(Debug, Clone, Default)]
pub struct TimeText {
    /// Second of the text in `buf`, if any.
    secs: Option<u64>,
    buf: [u8; 27],
}

impl TimeText {
    /// `ts` as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
    pub fn format(&mut self, ts: Timestamp) -> &[u8] {
        let micros = ts.as_micros();
        let secs = micros / 1_000_000;
        if self.secs != Some(secs) {
            format_rfc3339_micros(ts, &mut self.buf);
            self.secs = Some(secs);
        } else {
            let mut frac = micros % 1_000_000;
            for slot in self.buf[20..26].iter_mut().rev() {
                *slot = b'0' + (frac % 10) as u8;
                frac /= 10;
            }
        }
        &self.buf
    }
}

/// RFC 3339 with microseconds, UTC, as an owned string (summaries; records and alerts write
/// into their buffer with [`format_rfc3339_micros`]).
pub fn rfc3339(ts: Timestamp) -> String {
    format_rfc3339_micros(ts, &mut [0; 27]).to_owned()
}

/// Format `ts` as `YYYY-MM-DDTHH:MM:SS.ffffffZ` into `buf`.
pub fn format_rfc3339_micros(ts: Timestamp, buf: &mut [u8; 27]) -> &str {
    let micros = ts.as_micros();
    let secs = micros / 1_000_000;
    let frac = micros % 1_000_000;
    let days = secs / 86_400;
    let sod = secs % 86_400;
    let (y, m, d) = dbtap_core::time::civil_from_days(days as i64);
    let y = y.clamp(0, 9999) as u64;
    let put = |buf: &mut [u8; 27], at: usize, width: usize, mut v: u64| {
        for i in (0..width).rev() {
            buf[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(buf, 0, 4, y);
    buf[4] = b'-';
    put(buf, 5, 2, m as u64);
    buf[7] = b'-';
    put(buf, 8, 2, d as u64);
    buf[10] = b'T';
    put(buf, 11, 2, sod / 3600);
    buf[13] = b':';
    put(buf, 14, 2, sod / 60 % 60);
    buf[16] = b':';
    put(buf, 17, 2, sod % 60);
    buf[19] = b'.';
    put(buf, 20, 6, frac);
    buf[26] = b'Z';
    // Only ASCII digits and separators were written.
    std::str::from_utf8(buf).unwrap_or("1970-01-01T00:00:00.000000Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_with_micros() {
        let mut buf = [0u8; 27];
        // 2009-02-13T23:31:30.123456Z is Unix time 1234567890.123456.
        let ts = Timestamp(1_234_567_890_123_456_789);
        assert_eq!(
            format_rfc3339_micros(ts, &mut buf),
            "2009-02-13T23:31:30.123456Z"
        );
        assert_eq!(
            format_rfc3339_micros(Timestamp(0), &mut buf),
            "1970-01-01T00:00:00.000000Z"
        );
        // A leap day.
        let ts = Timestamp::from_parts(951_782_400, 0);
        assert_eq!(
            format_rfc3339_micros(ts, &mut buf),
            "2000-02-29T00:00:00.000000Z"
        );
    }

    #[test]
    fn cached_second_gives_the_same_text() {
        let mut c = TimeText::default();
        let a = Timestamp(1_234_567_890_123_456_789);
        let b = Timestamp(1_234_567_890_999_999_000);
        let d = Timestamp(1_234_567_891_000_001_000);
        assert_eq!(c.format(a), b"2009-02-13T23:31:30.123456Z");
        assert_eq!(c.format(b), b"2009-02-13T23:31:30.999999Z");
        assert_eq!(c.format(d), b"2009-02-13T23:31:31.000001Z");
        assert_eq!(c.format(a), b"2009-02-13T23:31:30.123456Z");
    }

    #[test]
    fn flags_are_named_in_a_fixed_order() {
        let f = Flags::NO_RESPONSE
            .with(Flags::MIDSTREAM)
            .with(Flags::PARTIAL);
        assert_eq!(
            f.names().collect::<Vec<_>>(),
            ["partial", "midstream", "no_response"]
        );
        assert_eq!(Flags::default().names().count(), 0);
    }

    pub(super) fn header() -> SessionHeader {
        use std::net::Ipv6Addr;
        SessionHeader::new(
            "mysql",
            0x00ab_cdef_0123_4567,
            Endpoint {
                ip: IpAddr::V6(Ipv6Addr::LOCALHOST),
                port: 40000,
            },
            Endpoint {
                ip: "10.0.0.2".parse().unwrap(),
                port: 3306,
            },
        )
    }

    pub(super) fn record<'a>(
        header: &'a SessionHeader,
        params: &'a [Param],
        error: Option<&'a DbError>,
    ) -> AuditRecord<'a> {
        AuditRecord {
            schema_version: SCHEMA_VERSION,
            ts: Timestamp(1_234_567_890_123_456_789),
            seq: 3,
            session: header,
            context: Context {
                user: Some("root"),
                database: None,
                client_program: None,
                server_version: Some("8.0.26"),
            },
            context_json: None,
            op: "execute",
            procedure: None,
            sql: Some("select ?"),
            params: Some(params),
            param_row_width: None,
            status: Status::Error,
            error,
            rows: None,
            latency_us: Some(12),
            bytes: Bytes {
                request: 10,
                response: 20,
            },
            flags: Flags::PARTIAL,
            stmt_id: Some(1),
            connection_id: None,
            insert_id: None,
            warnings: Some(0),
            lost_bytes: 5,
            login: None,
            attributes: &[],
        }
    }

    #[test]
    fn json_has_every_required_field_in_order() {
        let params = [
            Param {
                name: None,
                type_name: "longlong".into(),
                value: ParamValue::Int(-3),
                truncated: false,
            },
            Param {
                name: None,
                type_name: "var_string".into(),
                value: ParamValue::Null,
                truncated: false,
            },
            Param {
                name: None,
                type_name: "blob".into(),
                value: ParamValue::Bytes(vec![0, 0xab]),
                truncated: true,
            },
            Param {
                name: None,
                type_name: "double".into(),
                value: ParamValue::Float(f64::NAN),
                truncated: false,
            },
            Param {
                name: None,
                type_name: "blob".into(),
                value: ParamValue::LongData { bytes: 70000 },
                truncated: false,
            },
            Param {
                name: None,
                type_name: "_bytea".into(),
                value: ParamValue::Array(vec![
                    ParamValue::Int(1),
                    ParamValue::Null,
                    ParamValue::Bytes(vec![0xde, 0xad]),
                ]),
                truncated: false,
            },
        ];
        let err = DbError {
            code: ErrorCode::Num(1146),
            sqlstate: Some("42S02".into()),
            message: "Table 'x' doesn't exist".into(),
        };
        let mut buf = Vec::new();
        let h = header();
        record(&h, &params, Some(&err)).write_json(&mut buf, &mut TimeText::default(), None);
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            concat!(
                r#"{"schema_version":1,"ts":"2009-02-13T23:31:30.123456Z","seq":3,"protocol":"mysql","#,
                r#""session_id":"00abcdef01234567","client":{"ip":"::1","port":40000},"#,
                r#""server":{"ip":"10.0.0.2","port":3306},"user":"root","database":null,"#,
                r#""client_program":null,"server_version":"8.0.26","op":"execute","sql":"select ?","#,
                r#""params":[{"type":"longlong","value":-3},{"type":"var_string","value":null},"#,
                r#"{"type":"blob","hex":"00ab","truncated":true},{"type":"double","value":"NaN"},"#,
                r#"{"type":"blob","long_data_bytes":70000},"#,
                r#"{"type":"_bytea","value":[1,null,"\\xdead"]}],"status":"error","#,
                r#""error":{"code":1146,"sqlstate":"42S02","message":"Table 'x' doesn't exist"},"#,
                r#""rows":null,"latency_us":12,"bytes":{"request":10,"response":20},"flags":["partial"],"#,
                r#""stmt_id":1,"warnings":0,"lost_bytes":5}"#
            )
        );
    }
}

#[cfg(test)]
mod secret_param_tests {
    use super::tests::{header, record};
    use super::*;
    use crate::sql::{analyze, Dialect};

    fn param(name: Option<&str>, value: &str) -> Param {
        Param {
            name: name.map(str::to_owned),
            type_name: "nvarchar".into(),
            value: ParamValue::Text(value.into()),
            truncated: false,
        }
    }

    /// The SQL stage's view of `sql` with its analysis (no rules, nothing masked).
    fn view<'a>(sql: &'a str, analysis: &'a Analysis) -> SqlView<'a> {
        SqlView {
            shown: sql,
            text_json: b"\"\"",
            analysis,
            analysis_json: b"",
            rule_bits: &[],
            mask_params: false,
            dialect: Dialect::TSql,
        }
    }

    /// The params of a record whose statement `sql` (T-SQL) was analysed, as JSON.
    fn params_json(sql: &str, params: &[Param]) -> String {
        let analysis = analyze(sql, Dialect::TSql);
        let view = view(sql, &analysis);
        let mut buf = Vec::new();
        let mut j = JsonOut::new(&mut buf);
        j.begin_array();
        for (i, p) in params.iter().enumerate() {
            let shown = if is_secret(&view.analysis.secret_params, i, p) {
                Shown::Secret
            } else {
                Shown::AsIs
            };
            write_param(&mut j, p, shown);
        }
        j.end_array();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn a_password_placeholder_hides_its_value_in_every_row_of_a_bulk() {
        // MariaDB bulk execution: params hold rows of 2; the password is the 2nd of each row.
        let sql = "CREATE USER ? IDENTIFIED BY ?";
        let analysis = analyze(sql, Dialect::MySql);
        let view = view(sql, &analysis);
        let params = [
            param(None, "u1"),
            param(None, "pw-1"),
            param(None, "u2"),
            param(None, "pw-2"),
        ];
        let h = header();
        let mut rec = record(&h, &params, None);
        rec.param_row_width = Some(2);
        let mut buf = Vec::new();
        rec.write_json(&mut buf, &mut TimeText::default(), Some(&view));
        let text = String::from_utf8(buf).unwrap();
        assert!(text.contains(
            r#""params":[{"type":"nvarchar","value":"u1"},{"type":"nvarchar","value":"***"},{"type":"nvarchar","value":"u2"},{"type":"nvarchar","value":"***"}]"#
        ), "{text}");
        assert!(!text.contains("pw-"));
    }

    #[test]
    fn a_named_password_placeholder_hides_its_value() {
        // sp_executesql N'ALTER LOGIN app WITH PASSWORD = @pw', N'@pw nvarchar(50)', @PW = …:
        // the wire name's case differs from the text's (T-SQL names are case-insensitive).
        let got = params_json(
            "ALTER LOGIN app WITH PASSWORD = @pw",
            &[param(Some("@PW"), "N3w-Secret!")],
        );
        assert_eq!(got, r#"[{"type":"nvarchar","name":"@PW","value":"***"}]"#);
        // Other named values stay; an unnamed value is not matched by name.
        let got = params_json(
            "CREATE LOGIN @u WITH PASSWORD = @p2",
            &[param(Some("@u"), "bob"), param(None, "x")],
        );
        assert_eq!(
            got,
            r#"[{"type":"nvarchar","name":"@u","value":"bob"},{"type":"nvarchar","value":"x"}]"#
        );
    }

    #[test]
    fn positional_secrets_still_match_by_index() {
        let p = param(None, "s3");
        assert!(is_secret(&[SecretParam::Index(1)], 1, &p));
        assert!(!is_secret(&[SecretParam::Index(1)], 0, &p));
        assert!(is_secret(
            &[SecretParam::Name("pw".into())],
            0,
            &param(Some("@Pw"), "s3")
        ));
    }

    #[test]
    fn encrypted_and_table_values() {
        let mut buf = Vec::new();
        let mut j = JsonOut::new(&mut buf);
        j.begin_array();
        let enc = Param {
            name: Some("@ssn".into()),
            type_name: "nvarchar".into(),
            value: ParamValue::Encrypted(vec![0x01, 0xab]),
            truncated: false,
        };
        write_param(&mut j, &enc, Shown::AsIs);
        let tvp = Param {
            name: Some("@ids".into()),
            type_name: "dbo.IdList".into(),
            value: ParamValue::Table {
                rows: 3,
                columns: 1,
            },
            truncated: false,
        };
        write_param(&mut j, &tvp, Shown::AsIs);
        write_param(&mut j, &enc, Shown::Masked);
        j.end_array();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            concat!(
                r#"[{"type":"nvarchar","name":"@ssn","hex":"01ab","encrypted":true},"#,
                r#"{"type":"dbo.IdList","name":"@ids","rows":3,"columns":1},"#,
                r#"{"type":"nvarchar","name":"@ssn","value":"?"}]"#
            )
        );
    }
}
