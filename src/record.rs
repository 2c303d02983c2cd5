//! The audit record: one JSON object per line per database operation.
//!
//! Schema version 1. The field names of the first block are fixed (other tools read them); the
//! README documents every field. Required fields are always present (`null` when unknown);
//! optional extras are omitted when they have no value.

use std::net::IpAddr;

use dbtap_core::{Completeness, DbError, Param, Status, Timestamp};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

/// Version of the record schema, written in every record as `schema_version`.
pub const SCHEMA_VERSION: u32 = 1;

/// One side of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Endpoint {
    /// IP address.
    pub ip: IpAddr,
    /// TCP port.
    pub port: u16,
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

    const NAMES: [(Flags, &'static str); 9] = [
        (Flags::PARTIAL, "partial"),
        (Flags::MIDSTREAM, "midstream"),
        (Flags::ENCRYPTED, "encrypted"),
        (Flags::NO_RESPONSE, "no_response"),
        (Flags::TRUNCATED, "truncated"),
        (Flags::IDLE_TIMEOUT, "idle_timeout"),
        (Flags::EVICTED, "evicted"),
        (Flags::CAPTURE_END, "capture_end"),
        (Flags::AFTER_GAP, "after_gap"),
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
    /// Names of the set flags, in a fixed order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Flags::NAMES
            .into_iter()
            .filter(move |(f, _)| self.contains(*f))
            .map(|(_, n)| n)
    }
}

impl Serialize for Flags {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.names())
    }
}

/// Request and response byte counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Bytes {
    /// Wire bytes of the request.
    pub request: u64,
    /// Wire bytes of the response.
    pub response: u64,
}

/// Login details, on `login` and `change_user` records. No credentials, ever.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoginDetails<'a> {
    /// Authentication method.
    pub auth_method: Option<&'a str>,
    /// Connection attributes as sent by the client.
    #[serde(serialize_with = "pairs_as_map")]
    pub attributes: &'a [(String, String)],
    /// The client sent credentials, which were not recorded.
    pub credentials_redacted: bool,
}

/// One audit record, borrowing from the session and the request it describes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord<'a> {
    /// Schema version ([`SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// Capture time of the request's first packet, RFC 3339 UTC with microseconds.
    #[serde(serialize_with = "rfc3339_micros")]
    pub ts: Timestamp,
    /// Wire protocol.
    pub protocol: &'a str,
    /// Stable id of the TCP connection (16 hex digits).
    #[serde(serialize_with = "hex_id")]
    pub session_id: u64,
    /// Operation number within the session, from 1.
    pub seq: u64,
    /// Client side.
    pub client: Endpoint,
    /// Server side.
    pub server: Endpoint,
    /// Database user.
    pub user: Option<&'a str>,
    /// Default database.
    pub database: Option<&'a str>,
    /// Client program.
    pub client_program: Option<&'a str>,
    /// Server version.
    pub server_version: Option<&'a str>,
    /// Operation kind.
    pub op: &'a str,
    /// Statement text.
    pub sql: Option<&'a str>,
    /// Typed bind values.
    pub params: Option<&'a [Param]>,
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
    /// Server-side statement handle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stmt_id: Option<u64>,
    /// Server-side connection id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_id: Option<u64>,
    /// Last insert id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insert_id: Option<u64>,
    /// Warning count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warnings: Option<u64>,
    /// Bytes of this operation that were never captured.
    #[serde(skip_serializing_if = "is_zero")]
    pub lost_bytes: u64,
    /// Login details.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login: Option<LoginDetails<'a>>,
    /// Query attributes sent with the statement.
    #[serde(
        skip_serializing_if = "slice_is_empty",
        serialize_with = "pairs_as_map"
    )]
    pub attributes: &'a [(String, String)],
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn slice_is_empty(v: &&[(String, String)]) -> bool {
    v.is_empty()
}

fn pairs_as_map<S: Serializer>(pairs: &&[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(pairs.len()))?;
    for (k, v) in pairs.iter() {
        m.serialize_entry(k, v)?;
    }
    m.end()
}

fn hex_id<S: Serializer>(id: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{id:016x}"))
}

fn rfc3339_micros<S: Serializer>(ts: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; 27];
    s.serialize_str(format_rfc3339_micros(*ts, &mut buf))
}

/// Format `ts` as `YYYY-MM-DDTHH:MM:SS.ffffffZ` into `buf`.
pub fn format_rfc3339_micros(ts: Timestamp, buf: &mut [u8; 27]) -> &str {
    let micros = ts.as_micros();
    let secs = micros / 1_000_000;
    let frac = micros % 1_000_000;
    let days = secs / 86_400;
    let sod = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
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

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
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
    fn flags_serialize_in_fixed_order() {
        let f = Flags::NO_RESPONSE
            .with(Flags::MIDSTREAM)
            .with(Flags::PARTIAL);
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            r#"["partial","midstream","no_response"]"#
        );
        assert_eq!(serde_json::to_string(&Flags::default()).unwrap(), "[]");
    }
}
