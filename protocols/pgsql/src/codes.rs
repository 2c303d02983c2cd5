//! Wire codes of the PostgreSQL frontend/backend protocol ("Message Formats" in the PostgreSQL
//! documentation, chapter "Frontend/Backend Protocol"): message type bytes, startup codes,
//! authentication request codes. Unknown values stay representable (plain `u8` / `u32`) and
//! print as hex.

/// Startup-phase request codes (the Int32 after the length of an untyped startup packet).
pub mod startup {
    /// Protocol 3.0: `196608` = `3 << 16 | 0`.
    pub const PROTOCOL_3_0: u32 = 196_608;
    /// Protocol 3.2 (PostgreSQL 18): `3 << 16 | 2`.
    pub const PROTOCOL_3_2: u32 = 196_610;
    /// SSLRequest: "`1234` in the most significant 16 bits, `5679` in the least" = 80877103.
    pub const SSL_REQUEST: u32 = 80_877_103;
    /// GSSENCRequest: `1234`/`5680` = 80877104.
    pub const GSSENC_REQUEST: u32 = 80_877_104;
    /// CancelRequest: `1234`/`5678` = 80877102.
    pub const CANCEL_REQUEST: u32 = 80_877_102;
    /// Major protocol version 3 (the only one in use since PostgreSQL 7.4).
    pub const MAJOR_3: u32 = 3;
}

/// Frontend (client → server) message type bytes.
pub mod fe {
    /// Bind.
    pub const BIND: u8 = b'B';
    /// Close (statement or portal).
    pub const CLOSE: u8 = b'C';
    /// CopyData.
    pub const COPY_DATA: u8 = b'd';
    /// CopyDone.
    pub const COPY_DONE: u8 = b'c';
    /// CopyFail.
    pub const COPY_FAIL: u8 = b'f';
    /// Describe (statement or portal).
    pub const DESCRIBE: u8 = b'D';
    /// Execute.
    pub const EXECUTE: u8 = b'E';
    /// Flush.
    pub const FLUSH: u8 = b'H';
    /// FunctionCall.
    pub const FUNCTION_CALL: u8 = b'F';
    /// Parse.
    pub const PARSE: u8 = b'P';
    /// PasswordMessage, GSSResponse, SASLInitialResponse and SASLResponse all use `p`.
    pub const PASSWORD: u8 = b'p';
    /// Query (simple query protocol).
    pub const QUERY: u8 = b'Q';
    /// Sync.
    pub const SYNC: u8 = b'S';
    /// Terminate.
    pub const TERMINATE: u8 = b'X';

    /// True for every type byte a frontend sends after the startup packet.
    pub const fn is_known(t: u8) -> bool {
        matches!(
            t,
            BIND | CLOSE
                | COPY_DATA
                | COPY_DONE
                | COPY_FAIL
                | DESCRIBE
                | EXECUTE
                | FLUSH
                | FUNCTION_CALL
                | PARSE
                | PASSWORD
                | QUERY
                | SYNC
                | TERMINATE
        )
    }
}

/// Backend (server → client) message type bytes.
pub mod be {
    /// Authentication request (all kinds).
    pub const AUTH: u8 = b'R';
    /// BackendKeyData.
    pub const BACKEND_KEY_DATA: u8 = b'K';
    /// BindComplete.
    pub const BIND_COMPLETE: u8 = b'2';
    /// CloseComplete.
    pub const CLOSE_COMPLETE: u8 = b'3';
    /// CommandComplete.
    pub const COMMAND_COMPLETE: u8 = b'C';
    /// CopyData.
    pub const COPY_DATA: u8 = b'd';
    /// CopyDone.
    pub const COPY_DONE: u8 = b'c';
    /// CopyInResponse.
    pub const COPY_IN: u8 = b'G';
    /// CopyOutResponse.
    pub const COPY_OUT: u8 = b'H';
    /// CopyBothResponse (streaming replication).
    pub const COPY_BOTH: u8 = b'W';
    /// DataRow.
    pub const DATA_ROW: u8 = b'D';
    /// EmptyQueryResponse.
    pub const EMPTY_QUERY: u8 = b'I';
    /// ErrorResponse.
    pub const ERROR: u8 = b'E';
    /// FunctionCallResponse.
    pub const FUNCTION_CALL_RESPONSE: u8 = b'V';
    /// NegotiateProtocolVersion.
    pub const NEGOTIATE_PROTOCOL: u8 = b'v';
    /// NoData.
    pub const NO_DATA: u8 = b'n';
    /// NoticeResponse.
    pub const NOTICE: u8 = b'N';
    /// NotificationResponse (LISTEN/NOTIFY).
    pub const NOTIFICATION: u8 = b'A';
    /// ParameterDescription.
    pub const PARAMETER_DESCRIPTION: u8 = b't';
    /// ParameterStatus.
    pub const PARAMETER_STATUS: u8 = b'S';
    /// ParseComplete.
    pub const PARSE_COMPLETE: u8 = b'1';
    /// PortalSuspended.
    pub const PORTAL_SUSPENDED: u8 = b's';
    /// ReadyForQuery.
    pub const READY_FOR_QUERY: u8 = b'Z';
    /// RowDescription.
    pub const ROW_DESCRIPTION: u8 = b'T';

    /// True for every type byte a backend sends.
    pub const fn is_known(t: u8) -> bool {
        matches!(
            t,
            AUTH | BACKEND_KEY_DATA
                | BIND_COMPLETE
                | CLOSE_COMPLETE
                | COMMAND_COMPLETE
                | COPY_DATA
                | COPY_DONE
                | COPY_IN
                | COPY_OUT
                | COPY_BOTH
                | DATA_ROW
                | EMPTY_QUERY
                | ERROR
                | FUNCTION_CALL_RESPONSE
                | NEGOTIATE_PROTOCOL
                | NO_DATA
                | NOTICE
                | NOTIFICATION
                | PARAMETER_DESCRIPTION
                | PARAMETER_STATUS
                | PARSE_COMPLETE
                | PORTAL_SUSPENDED
                | READY_FOR_QUERY
                | ROW_DESCRIPTION
        )
    }
}

/// Authentication request codes (the Int32 after `R`).
pub mod auth {
    /// AuthenticationOk.
    pub const OK: u32 = 0;
    /// AuthenticationKerberosV5 (no longer supported by servers).
    pub const KERBEROS_V5: u32 = 2;
    /// AuthenticationCleartextPassword.
    pub const CLEARTEXT: u32 = 3;
    /// AuthenticationMD5Password (followed by a 4-byte salt).
    pub const MD5: u32 = 5;
    /// AuthenticationGSS.
    pub const GSS: u32 = 7;
    /// AuthenticationGSSContinue (followed by GSSAPI or SSPI data).
    pub const GSS_CONTINUE: u32 = 8;
    /// AuthenticationSSPI.
    pub const SSPI: u32 = 9;
    /// AuthenticationSASL (followed by the mechanism names).
    pub const SASL: u32 = 10;
    /// AuthenticationSASLContinue (followed by SASL challenge data).
    pub const SASL_CONTINUE: u32 = 11;
    /// AuthenticationSASLFinal (followed by SASL outcome data).
    pub const SASL_FINAL: u32 = 12;

    /// The method name written in login records for a server's first authentication request;
    /// `None` for codes that continue an exchange.
    pub const fn method(code: u32) -> Option<&'static str> {
        match code {
            OK => Some("trust"),
            KERBEROS_V5 => Some("kerberos5"),
            CLEARTEXT => Some("cleartext"),
            MD5 => Some("md5"),
            GSS => Some("gss"),
            SSPI => Some("sspi"),
            SASL => Some("scram-sha-256"),
            _ => None,
        }
    }
}

/// ReadyForQuery transaction status indicators.
pub mod txn {
    /// Idle (not in a transaction block).
    pub const IDLE: u8 = b'I';
    /// In a transaction block.
    pub const IN_BLOCK: u8 = b'T';
    /// In a failed transaction block (queries rejected until the block ends).
    pub const FAILED: u8 = b'E';
}
