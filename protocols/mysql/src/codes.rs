//! Wire codes as newtypes with named constants, so that unknown values survive a round trip and
//! `Debug` prints a name when there is one.
//!
//! Sources: MySQL Client/Server Protocol reference (dev.mysql.com/doc/dev/mysql-server/latest/,
//! pages "Command Phase", "Capabilities Flags", "SERVER_STATUS_flags_enum", "enum_field_types")
//! and MariaDB's "Client/Server Protocol" pages for the MariaDB-only values.

use std::fmt;

/// The first byte of a command-phase client packet.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Command(pub u8);

macro_rules! commands {
    ($($name:ident = $val:expr, $op:expr;)*) => {
        impl Command {
            $(#[doc = concat!("`", $op, "`")] pub const $name: Command = Command($val);)*
            /// The record's `op` name, or `None` for an unknown byte.
            pub const fn op_name(self) -> Option<&'static str> {
                match self.0 { $($val => Some($op),)* _ => None }
            }
        }
    };
}

commands! {
    SLEEP = 0x00, "sleep";
    QUIT = 0x01, "logout";
    INIT_DB = 0x02, "init_db";
    QUERY = 0x03, "query";
    FIELD_LIST = 0x04, "field_list";
    CREATE_DB = 0x05, "create_db";
    DROP_DB = 0x06, "drop_db";
    REFRESH = 0x07, "refresh";
    SHUTDOWN = 0x08, "shutdown";
    STATISTICS = 0x09, "statistics";
    PROCESS_INFO = 0x0a, "process_info";
    CONNECT = 0x0b, "connect";
    PROCESS_KILL = 0x0c, "process_kill";
    DEBUG = 0x0d, "debug";
    PING = 0x0e, "ping";
    TIME = 0x0f, "time";
    DELAYED_INSERT = 0x10, "delayed_insert";
    CHANGE_USER = 0x11, "change_user";
    BINLOG_DUMP = 0x12, "binlog_dump";
    TABLE_DUMP = 0x13, "table_dump";
    CONNECT_OUT = 0x14, "connect_out";
    REGISTER_SLAVE = 0x15, "register_slave";
    STMT_PREPARE = 0x16, "prepare";
    STMT_EXECUTE = 0x17, "execute";
    STMT_SEND_LONG_DATA = 0x18, "stmt_send_long_data";
    STMT_CLOSE = 0x19, "stmt_close";
    STMT_RESET = 0x1a, "stmt_reset";
    SET_OPTION = 0x1b, "set_option";
    STMT_FETCH = 0x1c, "stmt_fetch";
    DAEMON = 0x1d, "daemon";
    BINLOG_DUMP_GTID = 0x1e, "binlog_dump_gtid";
    RESET_CONNECTION = 0x1f, "reset_connection";
    STMT_BULK_EXECUTE = 0xfa, "stmt_bulk_execute";
}

impl Command {
    /// True for a command byte this parser knows.
    pub const fn is_known(self) -> bool {
        self.op_name().is_some()
    }
    /// `op` value for the record: the known name or `unknown_0xNN`.
    pub fn op(self) -> dbtap_core::Op {
        match self.op_name() {
            Some(n) => dbtap_core::Op::new(n),
            None => dbtap_core::Op(format!("unknown_0x{:02x}", self.0).into()),
        }
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.op_name() {
            Some(n) => write!(f, "Command({n})"),
            None => write!(f, "Command(0x{:02x})", self.0),
        }
    }
}

/// Capability flags (`CLIENT_*`). The low 32 bits are MySQL's; MariaDB's extended capabilities
/// (sent in the greeting's reserved bytes when `CLIENT_LONG_PASSWORD` is clear) sit above bit 32.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Caps(pub u64);

impl Caps {
    /// `CLIENT_LONG_PASSWORD` (MariaDB calls it `CLIENT_MYSQL`).
    pub const LONG_PASSWORD: u64 = 1;
    /// `CLIENT_CONNECT_WITH_DB`: the handshake response carries a database name.
    pub const CONNECT_WITH_DB: u64 = 1 << 3;
    /// `CLIENT_COMPRESS`: compressed protocol after the handshake.
    pub const COMPRESS: u64 = 1 << 5;
    /// `CLIENT_LOCAL_FILES`: LOAD DATA LOCAL allowed.
    pub const LOCAL_FILES: u64 = 1 << 7;
    /// `CLIENT_PROTOCOL_41`.
    pub const PROTOCOL_41: u64 = 1 << 9;
    /// `CLIENT_SSL`: switch to TLS after the SSLRequest.
    pub const SSL: u64 = 1 << 11;
    /// `CLIENT_TRANSACTIONS`.
    pub const TRANSACTIONS: u64 = 1 << 13;
    /// `CLIENT_SECURE_CONNECTION` (4.1 auth: 1-byte length before the auth response).
    pub const SECURE_CONNECTION: u64 = 1 << 15;
    /// `CLIENT_MULTI_STATEMENTS`.
    pub const MULTI_STATEMENTS: u64 = 1 << 16;
    /// `CLIENT_MULTI_RESULTS`.
    pub const MULTI_RESULTS: u64 = 1 << 17;
    /// `CLIENT_PS_MULTI_RESULTS`.
    pub const PS_MULTI_RESULTS: u64 = 1 << 18;
    /// `CLIENT_PLUGIN_AUTH`: the handshake carries auth plugin names.
    pub const PLUGIN_AUTH: u64 = 1 << 19;
    /// `CLIENT_CONNECT_ATTRS`: the handshake response carries connection attributes.
    pub const CONNECT_ATTRS: u64 = 1 << 20;
    /// `CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA`: auth response is a length-encoded string.
    pub const PLUGIN_AUTH_LENENC_DATA: u64 = 1 << 21;
    /// `CLIENT_SESSION_TRACK`: OK packets may carry session state changes.
    pub const SESSION_TRACK: u64 = 1 << 23;
    /// `CLIENT_DEPRECATE_EOF`: result sets end with an OK packet (0xFE header), no EOF.
    pub const DEPRECATE_EOF: u64 = 1 << 24;
    /// `CLIENT_OPTIONAL_RESULTSET_METADATA`: result sets may omit column definitions.
    pub const OPTIONAL_RESULTSET_METADATA: u64 = 1 << 25;
    /// `CLIENT_ZSTD_COMPRESSION_ALGORITHM` (MySQL 8.0.18+).
    pub const ZSTD: u64 = 1 << 26;
    /// `CLIENT_QUERY_ATTRIBUTES` (MySQL 8.0.23+).
    pub const QUERY_ATTRIBUTES: u64 = 1 << 27;
    /// MariaDB `MARIADB_CLIENT_CACHE_METADATA` (extended capability bit 4).
    pub const MARIADB_CACHE_METADATA: u64 = 1 << (32 + 4);

    /// True when every bit of `flag` is set.
    pub const fn has(self, flag: u64) -> bool {
        self.0 & flag == flag
    }
}

impl fmt::Debug for Caps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Caps(0x{:x})", self.0)
    }
}

/// Server status flags (`SERVER_*`) carried by OK and EOF packets.
pub mod status {
    /// `SERVER_STATUS_IN_TRANS`.
    pub const IN_TRANS: u16 = 0x0001;
    /// `SERVER_MORE_RESULTS_EXISTS`: another result follows.
    pub const MORE_RESULTS_EXISTS: u16 = 0x0008;
    /// `SERVER_STATUS_CURSOR_EXISTS`: the execute opened a cursor; rows come with COM_STMT_FETCH.
    pub const CURSOR_EXISTS: u16 = 0x0040;
    /// `SERVER_SESSION_STATE_CHANGED`: the OK packet carries session state information.
    pub const SESSION_STATE_CHANGED: u16 = 0x4000;
}

/// Session state change types in an OK packet's session state information.
pub mod session_track {
    /// `SESSION_TRACK_SYSTEM_VARIABLES`: name, value.
    pub const SYSTEM_VARIABLES: u8 = 0x00;
    /// `SESSION_TRACK_SCHEMA`: the new default schema.
    pub const SCHEMA: u8 = 0x01;
}

/// A column / parameter type (`enum_field_types`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FieldType(pub u8);

macro_rules! field_types {
    ($($name:ident = $val:expr, $s:expr;)*) => {
        impl FieldType {
            $(#[doc = concat!("`MYSQL_TYPE_", stringify!($name), "`")] pub const $name: FieldType = FieldType($val);)*
            /// Lowercase MySQL type name, `None` when unknown.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 { $($val => Some($s),)* _ => None }
            }
        }
    };
}

field_types! {
    DECIMAL = 0x00, "decimal";
    TINY = 0x01, "tiny";
    SHORT = 0x02, "short";
    LONG = 0x03, "long";
    FLOAT = 0x04, "float";
    DOUBLE = 0x05, "double";
    NULL = 0x06, "null";
    TIMESTAMP = 0x07, "timestamp";
    LONGLONG = 0x08, "longlong";
    INT24 = 0x09, "int24";
    DATE = 0x0a, "date";
    TIME = 0x0b, "time";
    DATETIME = 0x0c, "datetime";
    YEAR = 0x0d, "year";
    NEWDATE = 0x0e, "newdate";
    VARCHAR = 0x0f, "varchar";
    BIT = 0x10, "bit";
    TIMESTAMP2 = 0x11, "timestamp2";
    DATETIME2 = 0x12, "datetime2";
    TIME2 = 0x13, "time2";
    TYPED_ARRAY = 0x14, "typed_array";
    VECTOR = 0xf2, "vector";
    INVALID = 0xf3, "invalid";
    BOOL = 0xf4, "bool";
    JSON = 0xf5, "json";
    NEWDECIMAL = 0xf6, "newdecimal";
    ENUM = 0xf7, "enum";
    SET = 0xf8, "set";
    TINY_BLOB = 0xf9, "tiny_blob";
    MEDIUM_BLOB = 0xfa, "medium_blob";
    LONG_BLOB = 0xfb, "long_blob";
    BLOB = 0xfc, "blob";
    VAR_STRING = 0xfd, "var_string";
    STRING = 0xfe, "string";
    GEOMETRY = 0xff, "geometry";
}

impl FieldType {
    /// Type name for a record, with the `unsigned ` prefix when flagged (static, no allocation).
    pub fn type_name(self, unsigned: bool) -> std::borrow::Cow<'static, str> {
        match (self.name(), unsigned) {
            (Some(n), false) => n.into(),
            (Some(n), true) => format!("unsigned {n}").into(),
            (None, _) => format!("unknown_0x{:02x}", self.0).into(),
        }
    }
}

impl fmt::Debug for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "FieldType({n})"),
            None => write!(f, "FieldType(0x{:02x})", self.0),
        }
    }
}

/// First byte of a server response packet.
pub mod header {
    /// OK packet.
    pub const OK: u8 = 0x00;
    /// AuthMoreData (caching_sha2_password fast/full auth, RSA key).
    pub const AUTH_MORE_DATA: u8 = 0x01;
    /// LOCAL INFILE request.
    pub const LOCAL_INFILE: u8 = 0xfb;
    /// EOF packet, or OK with CLIENT_DEPRECATE_EOF, or AuthSwitchRequest during auth.
    pub const EOF: u8 = 0xfe;
    /// ERR packet.
    pub const ERR: u8 = 0xff;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_has_its_op_name() {
        // Command bytes from the "Text Protocol" / "Prepared Statements" / "Replication
        // Protocol" pages, and MariaDB's COM_STMT_BULK_EXECUTE (0xFA).
        let names: Vec<(u8, &str)> = (0u8..=0x1f)
            .chain([0xfa, 0x20, 0xff])
            .map(|b| (b, Command(b).op_name().unwrap_or("-")))
            .collect();
        assert_eq!(
            names,
            vec![
                (0x00, "sleep"),
                (0x01, "logout"),
                (0x02, "init_db"),
                (0x03, "query"),
                (0x04, "field_list"),
                (0x05, "create_db"),
                (0x06, "drop_db"),
                (0x07, "refresh"),
                (0x08, "shutdown"),
                (0x09, "statistics"),
                (0x0a, "process_info"),
                (0x0b, "connect"),
                (0x0c, "process_kill"),
                (0x0d, "debug"),
                (0x0e, "ping"),
                (0x0f, "time"),
                (0x10, "delayed_insert"),
                (0x11, "change_user"),
                (0x12, "binlog_dump"),
                (0x13, "table_dump"),
                (0x14, "connect_out"),
                (0x15, "register_slave"),
                (0x16, "prepare"),
                (0x17, "execute"),
                (0x18, "stmt_send_long_data"),
                (0x19, "stmt_close"),
                (0x1a, "stmt_reset"),
                (0x1b, "set_option"),
                (0x1c, "stmt_fetch"),
                (0x1d, "daemon"),
                (0x1e, "binlog_dump_gtid"),
                (0x1f, "reset_connection"),
                (0xfa, "stmt_bulk_execute"),
                (0x20, "-"),
                (0xff, "-"),
            ]
        );
    }

    #[test]
    fn unknown_codes_survive_and_print_hex() {
        assert_eq!(Command(0x03).op().as_str(), "query");
        assert_eq!(Command(0x42).op().as_str(), "unknown_0x42");
        assert_eq!(format!("{:?}", Command(0x42)), "Command(0x42)");
        assert_eq!(format!("{:?}", Command::STMT_EXECUTE), "Command(execute)");
        assert_eq!(FieldType::LONGLONG.type_name(true), "unsigned longlong");
        assert_eq!(FieldType(0x77).type_name(false), "unknown_0x77");
    }
}
