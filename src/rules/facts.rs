//! The fields of a record that rules test.

use std::borrow::Cow;
use std::net::IpAddr;

use dbtap_core::text::push_padded;
use dbtap_core::Timestamp;

use crate::record::Flags;
use crate::sql::{Access, Analysis};

/// A record as rules see it.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub ts: Timestamp,
    pub protocol: &'a str,
    pub session_id: u64,
    pub client_ip: IpAddr,
    pub client_port: u16,
    pub server_ip: IpAddr,
    pub server_port: u16,
    pub user: Option<&'a str>,
    pub database: Option<&'a str>,
    pub client_program: Option<&'a str>,
    pub op: &'a str,
    /// The statement as written to the record (passwords redacted).
    pub sql: Option<&'a str>,
    pub analysis: Option<&'a Analysis>,
    pub status: &'a str,
    pub error_code: Option<Cow<'a, str>>,
    pub rows: Option<u64>,
    pub latency_us: Option<u64>,
    pub flags: Flags,
    /// Results of the rule set's statement tests for this statement (cached per distinct text
    /// by the SQL stage), when known.
    pub sql_bits: Option<&'a [u64]>,
    /// The rule set, to evaluate statement tests when `sql_bits` is not given.
    pub rules: Option<&'a super::RuleSet>,
}

/// A field rules can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Protocol,
    SessionId,
    User,
    Database,
    ClientProgram,
    ClientIp,
    ClientPort,
    ServerIp,
    ServerPort,
    Op,
    Sql,
    Kind,
    Command,
    Objects,
    ObjectsRead,
    ObjectsWrite,
    ObjectsExecute,
    Fingerprint,
    Normalized,
    /// The kinds (`update`, `delete`) of the text's statements that have no WHERE clause.
    Unfiltered,
    /// The words of the statement that may name something (see [`crate::sql::identifiers`]).
    Identifiers,
    Status,
    ErrorCode,
    Rows,
    LatencyUs,
    Flags,
}

/// Every field name, for error messages and the README.
pub const FIELD_NAMES: &[(&str, Field)] = &[
    ("protocol", Field::Protocol),
    ("session_id", Field::SessionId),
    ("user", Field::User),
    ("database", Field::Database),
    ("client_program", Field::ClientProgram),
    ("client_ip", Field::ClientIp),
    ("client_port", Field::ClientPort),
    ("server_ip", Field::ServerIp),
    ("server_port", Field::ServerPort),
    ("op", Field::Op),
    ("sql", Field::Sql),
    ("kind", Field::Kind),
    ("command", Field::Command),
    ("objects", Field::Objects),
    ("objects.read", Field::ObjectsRead),
    ("objects.write", Field::ObjectsWrite),
    ("objects.execute", Field::ObjectsExecute),
    ("fingerprint", Field::Fingerprint),
    ("normalized", Field::Normalized),
    ("unfiltered", Field::Unfiltered),
    ("identifiers", Field::Identifiers),
    ("status", Field::Status),
    ("error_code", Field::ErrorCode),
    ("rows", Field::Rows),
    ("latency_us", Field::LatencyUs),
    ("flags", Field::Flags),
];

impl Field {
    /// The field's name in rule files.
    pub fn name(self) -> &'static str {
        FIELD_NAMES
            .iter()
            .find(|(_, f)| *f == self)
            .map_or("?", |(n, _)| n)
    }

    pub fn parse(name: &str) -> Option<Field> {
        FIELD_NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| *f)
    }

    /// A field that depends only on the statement text.
    pub fn is_statement(self) -> bool {
        matches!(
            self,
            Field::Sql
                | Field::Kind
                | Field::Command
                | Field::Objects
                | Field::ObjectsRead
                | Field::ObjectsWrite
                | Field::ObjectsExecute
                | Field::Fingerprint
                | Field::Normalized
                | Field::Unfiltered
                | Field::Identifiers
        )
    }

    /// A field whose value stays the same while a session's context (user, database, client
    /// program) does: the connection's and the context's fields.
    pub fn is_session_constant(self) -> bool {
        matches!(
            self,
            Field::Protocol
                | Field::SessionId
                | Field::ClientIp
                | Field::ClientPort
                | Field::ServerIp
                | Field::ServerPort
                | Field::User
                | Field::Database
                | Field::ClientProgram
        )
    }

    /// A field whose value is a number (`gt` / `ge` / `lt` / `le` compare it).
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            Field::Rows | Field::LatencyUs | Field::ClientPort | Field::ServerPort
        )
    }

    pub fn is_ip(self) -> bool {
        matches!(self, Field::ClientIp | Field::ServerIp)
    }
}

/// A field's value(s): a field like `objects` or `flags` has several, a missing one none.
pub enum Values<'a> {
    None,
    One(Cow<'a, str>),
    Many(Vec<Cow<'a, str>>),
}

impl Values<'_> {
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let (one, many): (Option<&str>, &[Cow<'_, str>]) = match self {
            Values::None => (None, &[]),
            Values::One(v) => (Some(v), &[]),
            Values::Many(v) => (None, v),
        };
        one.into_iter().chain(many.iter().map(|c| &**c))
    }
}

impl<'a> Facts<'a> {
    /// A record that is only a statement (the other fields empty or zero): for evaluating the
    /// statement tests of a rule set once per distinct text, and for benchmarks.
    pub fn of_statement(shown: &'a str, analysis: &'a Analysis) -> Facts<'a> {
        Facts {
            sql: Some(shown),
            analysis: Some(analysis),
            ..Facts::no_statement()
        }
    }

    /// A record with nothing in it, statement included.
    pub fn no_statement() -> Facts<'a> {
        Facts {
            ts: Timestamp(0),
            protocol: "",
            session_id: 0,
            client_ip: IpAddr::from([0, 0, 0, 0]),
            client_port: 0,
            server_ip: IpAddr::from([0, 0, 0, 0]),
            server_port: 0,
            user: None,
            database: None,
            client_program: None,
            op: "",
            sql: None,
            analysis: None,
            status: "",
            error_code: None,
            rows: None,
            latency_us: None,
            flags: Flags::default(),
            sql_bits: None,
            rules: None,
        }
    }

    fn objects(&self, access: Option<Access>) -> Values<'a> {
        match self.analysis {
            Some(a) => Values::Many(
                a.objects
                    .iter()
                    .filter(|o| access.is_none_or(|x| o.access == x))
                    .map(|o| Cow::Borrowed(o.name.as_str()))
                    .collect(),
            ),
            None => Values::None,
        }
    }

    /// Append the value(s) of `field` to `out`, several joined by `,` — the same text as
    /// [`Facts::values`] gives, without a string per value: correlation keys are built from it
    /// for every rule hit.
    pub fn append_values(&self, field: Field, out: &mut String) {
        use std::fmt::Write as _;
        match field {
            Field::ClientIp | Field::ServerIp => {
                let ip = if field == Field::ClientIp {
                    self.client_ip
                } else {
                    self.server_ip
                };
                match ip {
                    IpAddr::V4(v4) => {
                        for (i, octet) in v4.octets().iter().enumerate() {
                            if i > 0 {
                                out.push('.');
                            }
                            push_padded(out, u64::from(*octet), 1);
                        }
                    }
                    IpAddr::V6(v6) => {
                        let _ = write!(out, "{v6}");
                    }
                }
            }
            Field::SessionId => push_hex16(out, self.session_id),
            Field::Fingerprint => {
                if let Some(a) = self.analysis {
                    push_hex16(out, a.fingerprint);
                }
            }
            Field::ClientPort => push_padded(out, u64::from(self.client_port), 1),
            Field::ServerPort => push_padded(out, u64::from(self.server_port), 1),
            Field::Rows => {
                if let Some(n) = self.rows {
                    push_padded(out, n, 1);
                }
            }
            Field::LatencyUs => {
                if let Some(n) = self.latency_us {
                    push_padded(out, n, 1);
                }
            }
            _ => match self.text(field) {
                Some(v) => out.push_str(v.unwrap_or_default()),
                None => {
                    let mut first = true;
                    self.each_value(field, |v| {
                        if !first {
                            out.push(',');
                        }
                        out.push_str(v);
                        first = false;
                    });
                }
            },
        }
    }

    /// Call `f` on each value of `field`, without collecting them (the object lists).
    pub fn each_value(&self, field: Field, mut f: impl FnMut(&str)) {
        let access = match field {
            Field::Objects => None,
            Field::ObjectsRead => Some(Access::Read),
            Field::ObjectsWrite => Some(Access::Write),
            Field::ObjectsExecute => Some(Access::Execute),
            _ => {
                self.values(field).iter().for_each(f);
                return;
            }
        };
        if let Some(a) = self.analysis {
            a.objects
                .iter()
                .filter(|o| access.is_none_or(|x| o.access == x))
                .for_each(|o| f(&o.name));
        }
    }

    /// The value(s) of `field`.
    pub fn values(&self, field: Field) -> Values<'a> {
        let opt = |v: Option<&'a str>| v.map_or(Values::None, |s| Values::One(Cow::Borrowed(s)));
        let num =
            |v: Option<u64>| v.map_or(Values::None, |n| Values::One(Cow::Owned(n.to_string())));
        match field {
            Field::Protocol => opt(Some(self.protocol)),
            Field::SessionId => Values::One(Cow::Owned(format!("{:016x}", self.session_id))),
            Field::User => opt(self.user),
            Field::Database => opt(self.database),
            Field::ClientProgram => opt(self.client_program),
            Field::ClientIp => Values::One(Cow::Owned(self.client_ip.to_string())),
            Field::ClientPort => num(Some(u64::from(self.client_port))),
            Field::ServerIp => Values::One(Cow::Owned(self.server_ip.to_string())),
            Field::ServerPort => num(Some(u64::from(self.server_port))),
            Field::Op => opt(Some(self.op)),
            Field::Sql => opt(self.sql),
            Field::Kind | Field::Command => match self.analysis {
                // Every statement of the text: a `kind` or `command` test holds when one of
                // them passes it (`SET NOCOUNT ON; DROP TABLE t` is a DROP TABLE too).
                Some(a) => {
                    let of = |kind: crate::sql::Kind, command: &'a str| match field {
                        Field::Kind => Cow::Borrowed(kind.as_str()),
                        _ => Cow::Borrowed(command),
                    };
                    let first = of(a.kind, &a.command);
                    if a.statements.is_empty() {
                        Values::One(first)
                    } else {
                        let later = a.statements.iter().map(|s| of(s.kind, &s.command));
                        Values::Many(std::iter::once(first).chain(later).collect())
                    }
                }
                None => Values::None,
            },
            Field::Objects => self.objects(None),
            Field::ObjectsRead => self.objects(Some(Access::Read)),
            Field::ObjectsWrite => self.objects(Some(Access::Write)),
            Field::ObjectsExecute => self.objects(Some(Access::Execute)),
            Field::Fingerprint => self.analysis.map_or(Values::None, |a| {
                Values::One(Cow::Owned(format!("{:016x}", a.fingerprint)))
            }),
            Field::Normalized => opt(self.analysis.map(|a| a.normalized.as_str())),
            Field::Unfiltered => self.analysis.map_or(Values::None, |a| {
                Values::Many(
                    a.unfiltered
                        .kinds()
                        .map(|k| Cow::Borrowed(k.as_str()))
                        .collect(),
                )
            }),
            // Read from the text as recorded (passwords redacted) in the analysis's dialect, only
            // when a rule asks: statement tests run once per distinct text.
            Field::Identifiers => match (self.sql, self.analysis) {
                (Some(sql), Some(a)) => Values::Many(
                    crate::sql::identifiers(sql, a.dialect)
                        .into_iter()
                        .map(Cow::Borrowed)
                        .collect(),
                ),
                _ => Values::None,
            },
            Field::Status => opt(Some(self.status)),
            Field::ErrorCode => self.error_code.clone().map_or(Values::None, Values::One),
            Field::Rows => num(self.rows),
            Field::LatencyUs => num(self.latency_us),
            Field::Flags => Values::Many(self.flags.names().map(Cow::Borrowed).collect()),
        }
    }

    /// A numeric field's value: `None` for other fields, `Some(None)` when absent.
    pub fn number(&self, field: Field) -> Option<Option<f64>> {
        Some(match field {
            Field::Rows => self.rows.map(|v| v as f64),
            Field::LatencyUs => self.latency_us.map(|v| v as f64),
            Field::ClientPort => Some(f64::from(self.client_port)),
            Field::ServerPort => Some(f64::from(self.server_port)),
            _ => return None,
        })
    }

    /// A single-valued text field's value, without copying: `None` for other fields,
    /// `Some(None)` when absent.
    pub fn text(&self, field: Field) -> Option<Option<&str>> {
        Some(match field {
            Field::Protocol => Some(self.protocol),
            Field::User => self.user,
            Field::Database => self.database,
            Field::ClientProgram => self.client_program,
            Field::Op => Some(self.op),
            Field::Sql => self.sql,
            // Several values when the text holds several statements (see `values`).
            Field::Kind | Field::Command
                if self.analysis.is_some_and(|a| !a.statements.is_empty()) =>
            {
                return None
            }
            Field::Kind => self.analysis.map(|a| a.kind.as_str()),
            Field::Command => self.analysis.map(|a| a.command.as_str()),
            Field::Normalized => self.analysis.map(|a| a.normalized.as_str()),
            Field::Status => Some(self.status),
            Field::ErrorCode => self.error_code.as_deref(),
            _ => return None,
        })
    }

    /// The IP of an IP field.
    pub fn ip(&self, field: Field) -> Option<IpAddr> {
        match field {
            Field::ClientIp => Some(self.client_ip),
            Field::ServerIp => Some(self.server_ip),
            _ => None,
        }
    }
}

/// `n` as 16 lower-case hex digits (the record's session id and fingerprint form).
fn push_hex16(out: &mut String, n: u64) {
    // Two digits per byte from a table: session ids and fingerprints are keys of most rule
    // hits (every statement a baseline rule sees), so this runs for nearly every record.
    const PAIRS: [[u8; 2]; 256] = {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut t = [[0u8; 2]; 256];
        let mut i = 0;
        while i < 256 {
            t[i] = [HEX[i >> 4], HEX[i & 0xf]];
            i += 1;
        }
        t
    };
    let mut digits = [0u8; 16];
    for (pair, byte) in digits.chunks_exact_mut(2).zip(n.to_be_bytes()) {
        pair.copy_from_slice(&PAIRS[usize::from(byte)]);
    }
    push_ascii(out, &digits);
}

/// Bytes known to be ASCII (digits made above), appended in one go.
fn push_ascii(out: &mut String, ascii: &[u8]) {
    out.push_str(std::str::from_utf8(ascii).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::push_hex16;

    proptest::proptest! {
        #[test]
        fn hex16_is_what_format_writes(n: u64) {
            let mut s = String::new();
            push_hex16(&mut s, n);
            proptest::prop_assert_eq!(s, format!("{n:016x}"));
        }
    }

    #[test]
    fn hex16_is_sixteen_lower_case_digits_most_significant_first() {
        for (n, want) in [
            (0, "0000000000000000"),
            (0x0123_4567_89ab_cdef, "0123456789abcdef"),
            (0xfedc_ba98_7654_3210, "fedcba9876543210"),
            (u64::MAX, "ffffffffffffffff"),
            (0xa140_ce9a_976d_2bca, "a140ce9a976d2bca"),
        ] {
            let mut s = String::from("x");
            push_hex16(&mut s, n);
            assert_eq!(s, format!("x{want}"));
            assert_eq!(s[1..], format!("{n:016x}"));
        }
    }
}
