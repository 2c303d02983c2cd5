//! The server's token stream (MS-TDS 2.2.7): read incrementally across packets, rows skipped by
//! their column metadata, never buffered whole.
//!
//! Result rows carry no length (MS-TDS 2.2.7.19 ROW, 2.2.7.15 NBCROW): skipping one means reading
//! each column's length by its TYPE_INFO from the current COLMETADATA. Large values become
//! `skip` counts, so a multi-megabyte LOB costs no memory. What must be held across a packet
//! boundary is one small unit (a token header, a column length, one COLMETADATA column, an
//! ERROR token...), bounded by [`MAX_CARRY`].

use dbtap_core::{DbError, ErrorCode, ParamValue, Timestamp};
use encoding_rs::Encoding;

use crate::collation::Collation;
use crate::types::{read_type_info, read_value, Ctx, Form, Stop, Tds};
use crate::wire::Reader;

/// Token types (MS-TDS 2.2.7).
pub mod tok {
    #![allow(missing_docs)]
    pub const OFFSET: u8 = 0x78;
    pub const RETURNSTATUS: u8 = 0x79;
    pub const COLMETADATA: u8 = 0x81;
    pub const ALTMETADATA: u8 = 0x88;
    pub const DATACLASSIFICATION: u8 = 0xA3;
    pub const TABNAME: u8 = 0xA4;
    pub const COLINFO: u8 = 0xA5;
    pub const ORDER: u8 = 0xA9;
    pub const ERROR: u8 = 0xAA;
    pub const INFO: u8 = 0xAB;
    pub const RETURNVALUE: u8 = 0xAC;
    pub const LOGINACK: u8 = 0xAD;
    pub const FEATUREEXTACK: u8 = 0xAE;
    pub const ROW: u8 = 0xD1;
    pub const NBCROW: u8 = 0xD2;
    pub const ALTROW: u8 = 0xD3;
    pub const ENVCHANGE: u8 = 0xE3;
    pub const SESSIONSTATE: u8 = 0xE4;
    pub const SSPI: u8 = 0xED;
    pub const FEDAUTHINFO: u8 = 0xEE;
    pub const DONE: u8 = 0xFD;
    pub const DONEPROC: u8 = 0xFE;
    pub const DONEINPROC: u8 = 0xFF;

    /// Tokens a server's first message (a login response) or any response may start with.
    pub fn is_known(t: u8) -> bool {
        matches!(
            t,
            OFFSET
                | RETURNSTATUS
                | COLMETADATA
                | ALTMETADATA
                | DATACLASSIFICATION
                | TABNAME
                | COLINFO
                | ORDER
                | ERROR
                | INFO
                | RETURNVALUE
                | LOGINACK
                | FEATUREEXTACK
                | ROW
                | NBCROW
                | ALTROW
                | ENVCHANGE
                | SESSIONSTATE
                | SSPI
                | FEDAUTHINFO
                | DONE
                | DONEPROC
                | DONEINPROC
        )
    }
}

/// DONE status bits (MS-TDS 2.2.7.6).
pub mod done {
    /// More results follow.
    pub const MORE: u16 = 0x0001;
    /// The statement failed.
    pub const ERROR: u16 = 0x0002;
    /// A transaction is in progress.
    pub const INXACT: u16 = 0x0004;
    /// The row count is valid.
    pub const COUNT: u16 = 0x0010;
    /// Acknowledges an attention (cancel).
    pub const ATTN: u16 = 0x0020;
    /// A severe server error.
    pub const SRVERROR: u16 = 0x0100;
}

/// Most bytes held across packet boundaries for one unit.
pub const MAX_CARRY: usize = 128 * 1024;
/// Most columns in one COLMETADATA (SQL Server allows 4096 per SELECT).
pub const MAX_COLUMNS: usize = 4096;
/// RETURNVALUE tokens kept per response.
pub const MAX_RETURN_VALUES: usize = 64;
/// Bytes kept of a RETURNVALUE's value.
pub const MAX_RETURN_VALUE_LEN: usize = 256;
/// ALTMETADATA sets (one per COMPUTE clause) kept per result set.
pub const MAX_ALT_SETS: usize = 64;
/// Sensitivity labels, information types, and properties per column, read at most in one
/// DATACLASSIFICATION token.
pub const MAX_CLASSIFICATION_ITEMS: usize = 1024;
/// Bytes of the `sensitivity` summary kept per result.
pub const MAX_SENSITIVITY_LEN: usize = 256;
/// FeatureExt / FEATUREEXTACK feature id of DATACLASSIFICATION (MS-TDS 2.2.6.4, 2.2.7.11).
const FEATURE_DATACLASSIFICATION: u8 = 0x09;
/// FeatureExt / FEATUREEXTACK feature id of COLUMNENCRYPTION (Always Encrypted).
const FEATURE_COLUMNENCRYPTION: u8 = 0x04;
/// COLMETADATA Flags fEncrypted (TDS 7.4): the column is encrypted, CryptoMetaData follows.
const COL_F_ENCRYPTED: u16 = 0x0800;
/// Column encryption keys (EK_INFO entries) read at most in one COLMETADATA CekTable, and
/// encrypted values per key: more is taken for a broken token.
const MAX_CEKS: usize = 256;
const MAX_CEK_VALUES: u8 = 16;

/// Length of a COLMETADATA CekTable at the head of `d` (MS-TDS 2.2.7.4): EkValueCount
/// (USHORT), then per key EK_INFO = DatabaseId, CekId, CekVersion (ULONG each), CekMDVersion
/// (ULONGLONG), Count (BYTE) and Count × EncryptionKeyValue = EncryptedKey (US_VARBYTE),
/// KeyStoreName (B_VARCHAR), KeyPath (US_VARCHAR), AsymmetricAlgo (B_VARCHAR). The keys (the
/// column encryption keys, encrypted with the column master key) are stepped over, never
/// kept. `Ok(None)`: more bytes are needed; `Err`: not a CekTable within the limits.
fn cek_table_len(d: &[u8]) -> Result<Option<usize>, ()> {
    let mut r = Reader::new(d);
    let Some(n) = r.u16le() else { return Ok(None) };
    if usize::from(n) > MAX_CEKS {
        return Err(());
    }
    for _ in 0..n {
        let Some(()) = r.skip(20) else {
            return Ok(None);
        };
        let Some(values) = r.u8() else {
            return Ok(None);
        };
        if values > MAX_CEK_VALUES {
            return Err(());
        }
        for _ in 0..values {
            let Some(key_len) = r.u16le() else {
                return Ok(None);
            };
            let Some(()) = r.skip(usize::from(key_len)) else {
                return Ok(None);
            };
            let Some(store) = r.u8() else { return Ok(None) };
            let Some(()) = r.skip(usize::from(store) * 2) else {
                return Ok(None);
            };
            let Some(path) = r.u16le() else {
                return Ok(None);
            };
            let Some(()) = r.skip(usize::from(path) * 2) else {
                return Ok(None);
            };
            let Some(algo) = r.u8() else { return Ok(None) };
            let Some(()) = r.skip(usize::from(algo) * 2) else {
                return Ok(None);
            };
        }
    }
    Ok(Some(r.pos()))
}

/// An ERROR or INFO token (MS-TDS 2.2.7.10, 2.2.7.13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Error number (18456: login failed).
    pub number: i32,
    /// State.
    pub state: u8,
    /// Class (severity): above 10 is an error.
    pub class: u8,
    /// Message text.
    pub text: String,
    /// Server name.
    pub server: String,
    /// Procedure name.
    pub procedure: String,
    /// Line number.
    pub line: u32,
}

impl Message {
    /// `number: text`, as a record attribute shows an informational message.
    pub fn summary(&self) -> String {
        format!("{}: {}", self.number, self.text)
    }

    /// As a record's error.
    pub fn to_error(&self) -> DbError {
        DbError {
            code: ErrorCode::Num(self.number as i64),
            sqlstate: None,
            message: self.text.clone(),
        }
    }
}

/// An ENVCHANGE (MS-TDS 2.2.7.9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvChange {
    /// Type 1.
    Database(String),
    /// Type 2.
    Language(String),
    /// Type 4.
    PacketSize(u32),
    /// Type 7.
    Collation(Collation),
    /// Type 8.
    BeginTran,
    /// Type 9.
    CommitTran,
    /// Type 10.
    RollbackTran,
    /// Type 17.
    TranEnded,
    /// Type 18.
    ResetAck,
    /// Type 20: the client is told to reconnect elsewhere.
    Routing {
        /// Alternate server.
        server: String,
        /// Its port.
        port: u16,
    },
    /// Any other type.
    Other(u8),
}

/// LOGINACK (MS-TDS 2.2.7.14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginAck {
    /// TDS version (big-endian on the wire, e.g. 0x74000004).
    pub tds_version: u32,
    /// Server program name.
    pub program: String,
    /// major.minor.build.
    pub version: (u8, u8, u16),
}

/// What one result segment (an RPC's part of a response, or a whole batch response) said.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Sum of DONE row counts (when any had DONE_COUNT).
    pub rows: Option<u64>,
    /// ROW / NBCROW tokens seen.
    pub row_tokens: u64,
    /// First ERROR token (class > 10).
    pub error: Option<Message>,
    /// A DONE had DONE_ERROR / DONE_SRVERROR.
    pub done_error: bool,
    /// RETURNSTATUS.
    pub return_status: Option<i32>,
    /// RETURNVALUE tokens: ordinal, name, value.
    pub return_values: Vec<(u16, String, ParamValue)>,
    /// Sensitivity labels and information types a DATACLASSIFICATION token gave the result
    /// (`label: information type` pairs in token order, bounded by [`MAX_SENSITIVITY_LEN`]).
    pub sensitivity: Option<String>,
    /// Columns of its result sets that are Always Encrypted (COLMETADATA fEncrypted).
    pub encrypted_columns: u32,
    /// INFO tokens (informational messages: PRINT output, warnings, "Changed database
    /// context"), and the first of them.
    pub infos: u32,
    /// The first INFO token.
    pub info: Option<Box<Message>>,
    /// Capture time of the packet that ended it.
    pub ts_end: Timestamp,
    /// Token bytes of the message from the end of the previous DONEPROC to the end of the one
    /// that closed this segment (0 while it is open): the share of the answer that is this
    /// RPC's, when one message answers several.
    pub bytes: u64,
}

/// Everything one server message said.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Acc {
    /// Finished segments (closed by DONEPROC).
    pub segments: Vec<Outcome>,
    /// The open segment.
    pub cur: Outcome,
    /// LOGINACK.
    pub loginack: Option<LoginAck>,
    /// ENVCHANGEs in order (bounded).
    pub env: Vec<EnvChange>,
    /// A DONE acknowledged an attention.
    pub attn_ack: bool,
    /// An SSPI token (an authentication challenge).
    pub sspi: bool,
    /// A FEDAUTHINFO token.
    pub fedauth_info: bool,
    /// Anomalies (token kinds not understood, units over limits).
    pub anomalies: Vec<&'static str>,
    /// Token framing was lost for the rest of the message.
    pub lost: bool,
    /// A final DONE (without DONE_MORE) was seen.
    pub final_done: bool,
}

/// Anomalies kept per message (the rest are dropped; the first ones say what went wrong).
const MAX_ANOMALIES: usize = 16;

impl Acc {
    /// Note an anomaly (bounded).
    pub fn anomaly(&mut self, kind: &'static str) {
        if self.anomalies.len() < MAX_ANOMALIES {
            self.anomalies.push(kind);
        }
    }
}

/// ENVCHANGEs kept per message.
const MAX_ENV: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Token,
    ColMeta { left: u16 },
    Row { col: usize },
    Plp { col: usize },
    FeatureExt,
}

/// Which metadata the row being skipped follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowOf {
    /// COLMETADATA (ROW, NBCROW).
    Columns,
    /// The ALTMETADATA set at this index of `alt` (ALTROW).
    Alt(usize),
}

/// Steps over the whole ROW / NBCROW tokens (2.2.7.19, 2.2.7.15) at the front of `d`, every
/// column of `cols` being fixed-length (FIXEDLENTYPE), BYTELEN (0 is NULL) or USHORTLEN (0xFFFF is
/// NULL, CHARBIN_NULL): returns the bytes and the rows stepped over. Stops before the first token
/// that is not a row or not whole in `d`, which the token-by-token path then reads: this is only
/// a faster way through the same grammar.
fn skip_plain_rows(cols: &[Form], d: &[u8]) -> (usize, u64) {
    let bitmap_len = cols.len().div_ceil(8);
    let mut pos = 0usize;
    let mut rows = 0u64;
    'rows: loop {
        let (mut at, bitmap) = match d.get(pos) {
            Some(&tok::ROW) => (pos + 1, None),
            Some(&tok::NBCROW) => match d.get(pos + 1..pos + 1 + bitmap_len) {
                Some(b) => (pos + 1 + bitmap_len, Some(b)),
                None => break,
            },
            _ => break,
        };
        for (i, form) in cols.iter().enumerate() {
            if bitmap.is_some_and(|b| b.get(i / 8).is_some_and(|x| x & (1 << (i % 8)) != 0)) {
                continue;
            }
            at += match *form {
                Form::Fixed(n) => usize::from(n),
                Form::Byte => match d.get(at) {
                    Some(&n) => 1 + usize::from(n),
                    None => break 'rows,
                },
                Form::UShort => match d.get(at..at + 2) {
                    Some(&[a, b]) => match u16::from_le_bytes([a, b]) {
                        0xFFFF => 2,
                        n => 2 + usize::from(n),
                    },
                    _ => break 'rows,
                },
                _ => break 'rows,
            };
        }
        if at > d.len() {
            break;
        }
        pos = at;
        rows += 1;
    }
    (pos, rows)
}

enum Step {
    Used(usize),
    Skip { used: usize, skip: u64 },
    Need,
    Lost(&'static str),
}

/// Incremental reader of one direction's token stream.
#[derive(Debug)]
pub struct TokenStream {
    carry: Vec<u8>,
    skip: u64,
    state: State,
    cols: Vec<Form>,
    /// Every column of `cols` is fixed-length or has a BYTELEN / USHORTLEN length: whole ROW
    /// and NBCROW tokens can be stepped over in one tight loop ([`skip_plain_rows`]).
    plain_cols: bool,
    /// ALTMETADATA sets of the result set: Id, column forms.
    alt: Vec<(u16, Vec<Form>)>,
    row_of: RowOf,
    nbc: Vec<u8>,
    nbc_on: bool,
    /// DATACLASSIFICATION_VERSION the server acknowledged in FEATUREEXTACK (2 adds sensitivity
    /// ranks to the token); `None` when the login was not seen.
    pub dataclass_version: Option<u8>,
    /// The server acknowledged COLUMNENCRYPTION (Always Encrypted) in FEATUREEXTACK:
    /// COLMETADATA carries a CekTable.
    pub column_encryption: bool,
    /// The acknowledged COLUMNENCRYPTION version is 2 or 3 (secure enclaves): requests carry
    /// an EnclavePackage after ALL_HEADERS.
    pub enclave_packages: bool,
    /// The session's layout: 7.2+ has 8-byte DONE row counts, 4-byte user types and ERROR line
    /// numbers; 7.0 has no collations (see [`Tds`]).
    pub tds: Tds,
    /// Encoding for non-Unicode values without a collation of their own.
    pub default_enc: &'static Encoding,
    /// The TDS version is known (from LOGIN7 / LOGINACK). When it is not (a session picked up
    /// mid-stream), a DONE token that ends its packet 9 bytes after its start is taken as the
    /// TDS 7.0/7.1 layout (4-byte row count) and `tds` becomes 7.1.
    pub version_known: bool,
    /// The stream is a client's Bulk Load message (2.2.6.1), not a server's response: the
    /// COLMETADATA columns are read with `Ctx::BulkColumn`.
    pub bulk_load: bool,
    lost: bool,
    /// Token bytes of the current message used so far (by earlier `run`s).
    used: u64,
    /// Message offset of the bytes the current step reads.
    step_at: u64,
    /// Message offset where the open segment began (after the last DONEPROC).
    segment_at: u64,
}

impl Default for TokenStream {
    fn default() -> Self {
        TokenStream {
            carry: Vec::new(),
            skip: 0,
            state: State::Token,
            cols: Vec::new(),
            plain_cols: false,
            alt: Vec::new(),
            row_of: RowOf::Columns,
            nbc: Vec::new(),
            nbc_on: false,
            dataclass_version: None,
            column_encryption: false,
            enclave_packages: false,
            tds: Tds::V72,
            default_enc: encoding_rs::WINDOWS_1252,
            version_known: false,
            bulk_load: false,
            lost: false,
            used: 0,
            step_at: 0,
            segment_at: 0,
        }
    }
}

fn need<T>(v: Option<T>) -> Result<T, ()> {
    v.ok_or(())
}

impl TokenStream {
    /// Heap bytes held.
    pub fn heap(&self) -> usize {
        self.carry.capacity()
            + self.cols.capacity() * std::mem::size_of::<Form>()
            + self
                .alt
                .iter()
                .map(|(_, f)| f.capacity() * std::mem::size_of::<Form>() + 32)
                .sum::<usize>()
            + self.nbc.capacity()
    }

    /// Feed the payload of one packet of the message.
    pub fn feed(&mut self, data: &[u8], ts: Timestamp, acc: &mut Acc) {
        if self.lost {
            return;
        }
        if self.carry.is_empty() {
            let used = self.run(data, ts, acc);
            self.used += used as u64;
            let rest = data.get(used..).unwrap_or_default();
            self.keep(rest, acc);
        } else {
            let mut buf = std::mem::take(&mut self.carry);
            buf.extend_from_slice(data);
            let used = self.run(&buf, ts, acc);
            self.used += used as u64;
            buf.drain(..used.min(buf.len()));
            let rest = std::mem::take(&mut buf);
            self.carry = buf;
            self.keep(&rest, acc);
        }
    }

    fn keep(&mut self, rest: &[u8], acc: &mut Acc) {
        if self.lost || rest.is_empty() {
            return;
        }
        if rest.len() > MAX_CARRY {
            self.lose("token_over_limit", acc);
            return;
        }
        self.carry.clear();
        self.carry.extend_from_slice(rest);
    }

    fn lose(&mut self, kind: &'static str, acc: &mut Acc) {
        self.lost = true;
        acc.lost = true;
        acc.anomaly(kind);
        self.carry = Vec::new();
        self.skip = 0;
    }

    /// The message ended (EOM): anything half-read is reported and the stream is reset.
    /// Returns true when the message ended in the middle of a token.
    pub fn end_message(&mut self, acc: &mut Acc) -> bool {
        let settled = self.state == State::Token || (self.bulk_load && self.row_complete());
        let cut = !self.lost && (!self.carry.is_empty() || self.skip > 0 || !settled);
        if cut {
            acc.anomaly("token_stream_cut");
            acc.lost = true;
        }
        self.carry.clear();
        self.skip = 0;
        self.used = 0;
        self.segment_at = 0;
        self.state = State::Token;
        self.cols.clear();
        self.plain_cols = false;
        self.alt.clear();
        self.row_of = RowOf::Columns;
        self.lost = false;
        if self.carry.capacity() > MAX_CARRY {
            self.carry = Vec::new();
        }
        cut
    }

    /// Every column of the row being skipped has been read (or is NULL by the NBCROW bitmap):
    /// only the move back to `State::Token`, made when the next byte is looked at, is left.
    /// MS-TDS 2.2.6.1 ends a Bulk Load with a DONE token, but FreeTDS (1.3) ends the message
    /// after the last ROW (the EOM of its last packet ends the rows).
    fn row_complete(&self) -> bool {
        let State::Row { col } = self.state else {
            return false;
        };
        let n = match self.row_of {
            RowOf::Columns => self.cols.len(),
            RowOf::Alt(k) => self.alt.get(k).map_or(0, |(_, f)| f.len()),
        };
        (col..n)
            .all(|c| self.nbc_on && self.nbc.get(c / 8).is_some_and(|b| b & (1 << (c % 8)) != 0))
    }

    /// Stop reading until the end of the current message (a gap cut it).
    pub fn lose_sync(&mut self) {
        self.lost = true;
        self.carry = Vec::new();
        self.skip = 0;
    }

    fn run(&mut self, d: &[u8], ts: Timestamp, acc: &mut Acc) -> usize {
        let mut pos = 0usize;
        loop {
            if self.skip > 0 {
                let n = self.skip.min(d.len().saturating_sub(pos) as u64);
                self.skip -= n;
                pos += n as usize;
                if self.skip > 0 {
                    return pos;
                }
            }
            if pos >= d.len() {
                return pos;
            }
            let rest = d.get(pos..).unwrap_or_default();
            if self.plain_cols && self.state == State::Token {
                // The rows of a result set are most of its bytes: whole ones go in one loop.
                let (used, rows) = skip_plain_rows(&self.cols, rest);
                if rows > 0 {
                    acc.cur.row_tokens += rows;
                    pos += used;
                    continue;
                }
            }
            self.step_at = self.used + pos as u64;
            match self.step(rest, ts, acc) {
                Step::Used(n) => pos += n,
                Step::Skip { used, skip } => {
                    pos += used;
                    self.skip = skip;
                }
                Step::Need => return pos,
                Step::Lost(kind) => {
                    self.lose(kind, acc);
                    return d.len();
                }
            }
        }
    }

    fn step(&mut self, d: &[u8], ts: Timestamp, acc: &mut Acc) -> Step {
        match self.state {
            State::Token => self.token(d, ts, acc),
            State::ColMeta { left } => {
                if left == 0 {
                    self.state = State::Token;
                    // (A row needs columns: without any, a ROW is reported by `token`.)
                    self.plain_cols = !self.cols.is_empty()
                        && self
                            .cols
                            .iter()
                            .all(|f| matches!(f, Form::Fixed(_) | Form::Byte | Form::UShort));
                    return Step::Used(0);
                }
                let mut r = Reader::new(d);
                let res = (|| -> Result<Result<(Form, bool), Stop>, ()> {
                    if self.tds.v72() {
                        need(r.u32le())?;
                    } else {
                        need(r.u16le())?;
                    }
                    let flags = need(r.u16le())?;
                    let encrypted = self.column_encryption && flags & COL_F_ENCRYPTED != 0;
                    // ColumnData = UserType Flags TYPE_INFO [TableName] [CryptoMetaData]
                    // ColName (2.2.7.4). An encrypted column's TYPE_INFO is the cipher text's
                    // (varbinary), which is what its row values are skipped by.
                    let ctx = if self.bulk_load {
                        Ctx::BulkColumn
                    } else {
                        Ctx::Column
                    };
                    let ti = match read_type_info(&mut r, ctx, self.tds) {
                        Ok(t) => t,
                        Err(Stop::Incomplete) => return Err(()),
                        Err(Stop::Bad) => return Ok(Err(Stop::Bad)),
                    };
                    if encrypted {
                        // CryptoMetaData = Ordinal (USHORT, into the CekTable), UserType,
                        // BaseTypeInfo (the plain TYPE_INFO), EncryptionAlgo (BYTE), AlgoName
                        // (B_VARCHAR, only for algorithm 0), EncryptionAlgoType (BYTE),
                        // NormVersion (BYTE).
                        need(r.u16le())?;
                        if self.tds.v72() {
                            need(r.u32le())?;
                        } else {
                            need(r.u16le())?;
                        }
                        match read_type_info(&mut r, Ctx::Param, self.tds) {
                            Ok(_) => {}
                            Err(Stop::Incomplete) => return Err(()),
                            Err(Stop::Bad) => return Ok(Err(Stop::Bad)),
                        }
                        if need(r.u8())? == 0 {
                            need(r.skip_b_varchar())?;
                        }
                        need(r.skip(2))?;
                    }
                    need(r.skip_b_varchar())?;
                    Ok(Ok((ti.form, encrypted)))
                })();
                match res {
                    Err(()) => Step::Need,
                    Ok(Err(_)) if self.column_encryption => Step::Lost("encrypted_column_metadata"),
                    Ok(Err(_)) => Step::Lost("unknown_column_type"),
                    Ok(Ok((form, encrypted))) => {
                        if encrypted {
                            acc.cur.encrypted_columns += 1;
                        }
                        self.cols.push(form);
                        self.state = State::ColMeta { left: left - 1 };
                        Step::Used(r.pos())
                    }
                }
            }
            State::Row { col } => self.column(d, col),
            State::Plp { col } => {
                let Some(n) = Reader::new(d).u32le() else {
                    return Step::Need;
                };
                if n == 0 {
                    self.state = State::Row { col: col + 1 };
                    Step::Used(4)
                } else {
                    Step::Skip {
                        used: 4,
                        skip: n as u64,
                    }
                }
            }
            State::FeatureExt => {
                let mut r = Reader::new(d);
                let Some(id) = r.u8() else { return Step::Need };
                if id == 0xFF {
                    self.state = State::Token;
                    return Step::Used(1);
                }
                let Some(n) = r.u32le() else {
                    return Step::Need;
                };
                if id == FEATURE_COLUMNENCRYPTION {
                    self.column_encryption = true;
                    if n >= 1 {
                        // FeatureAckData: ColumnEncryptionVersion (BYTE), then for versions 2
                        // and 3 the EnclaveType (B_VARCHAR). From version 2 on every SQL batch
                        // and RPC carries an EnclavePackage (mssql-jdbc `sendEnclavePackage`:
                        // written whenever the acknowledged version is at least 2).
                        let Some(v) = r.u8() else { return Step::Need };
                        self.enclave_packages = v >= 2;
                        return Step::Skip {
                            used: 6,
                            skip: n as u64 - 1,
                        };
                    }
                }
                if id == FEATURE_DATACLASSIFICATION && n >= 1 {
                    // FeatureAckData: DATACLASSIFICATION_VERSION (BYTE), IsEnabled (BYTE).
                    let Some(v) = r.u8() else { return Step::Need };
                    self.dataclass_version = Some(v);
                    return Step::Skip {
                        used: 6,
                        skip: n as u64 - 1,
                    };
                }
                Step::Skip {
                    used: 5,
                    skip: n as u64,
                }
            }
        }
    }

    /// The form of column `col` of the row being skipped.
    fn form_at(&self, col: usize) -> Option<Form> {
        match self.row_of {
            RowOf::Columns => self.cols.get(col).copied(),
            RowOf::Alt(k) => self.alt.get(k).and_then(|(_, f)| f.get(col).copied()),
        }
    }

    /// One column of the current row.
    fn column(&mut self, d: &[u8], col: usize) -> Step {
        let Some(form) = self.form_at(col) else {
            self.state = State::Token;
            self.row_of = RowOf::Columns;
            return Step::Used(0);
        };
        if self.nbc_on {
            let bit = self
                .nbc
                .get(col / 8)
                .is_some_and(|b| b & (1 << (col % 8)) != 0);
            if bit {
                self.state = State::Row { col: col + 1 };
                return Step::Used(0);
            }
        }
        let mut r = Reader::new(d);
        let next = State::Row { col: col + 1 };
        match form {
            Form::Fixed(n) => {
                self.state = next;
                Step::Skip {
                    used: 0,
                    skip: n as u64,
                }
            }
            Form::Byte => match r.u8() {
                Some(n) => {
                    self.state = next;
                    Step::Skip {
                        used: 1,
                        skip: n as u64,
                    }
                }
                None => Step::Need,
            },
            Form::UShort => match r.u16le() {
                Some(0xFFFF) => {
                    self.state = next;
                    Step::Used(2)
                }
                Some(n) => {
                    self.state = next;
                    Step::Skip {
                        used: 2,
                        skip: n as u64,
                    }
                }
                None => Step::Need,
            },
            Form::Text => {
                // TEXTPTR (B_VARBYTE; empty = NULL), TIMESTAMP (8), then a 4-byte length.
                let Some(tp) = r.u8() else { return Step::Need };
                if tp == 0 {
                    self.state = next;
                    return Step::Used(1);
                }
                if r.skip(tp as usize + 8).is_none() {
                    return Step::Need;
                }
                match r.u32le() {
                    Some(n) => {
                        self.state = next;
                        Step::Skip {
                            used: r.pos(),
                            skip: n as u64,
                        }
                    }
                    None => Step::Need,
                }
            }
            Form::Variant => match r.u32le() {
                Some(n) => {
                    self.state = next;
                    Step::Skip {
                        used: 4,
                        skip: n as u64,
                    }
                }
                None => Step::Need,
            },
            Form::Plp => match r.u64le() {
                Some(u64::MAX) => {
                    self.state = next;
                    Step::Used(8)
                }
                Some(_) => {
                    self.state = State::Plp { col };
                    Step::Used(8)
                }
                None => Step::Need,
            },
        }
    }

    fn token(&mut self, d: &[u8], ts: Timestamp, acc: &mut Acc) -> Step {
        let mut r = Reader::new(d);
        let Some(t) = r.u8() else { return Step::Need };
        match t {
            tok::COLMETADATA => {
                let Some(n) = r.u16le() else {
                    return Step::Need;
                };
                let mut used = 3;
                if self.column_encryption {
                    // COLMETADATA = TokenType Count [CekTable] …: with COLUMNENCRYPTION on, a
                    // CekTable always follows Count (2.2.7.4); its keys are stepped over.
                    match cek_table_len(r.rest()) {
                        Ok(None) => return Step::Need,
                        Ok(Some(n)) => used += n,
                        Err(()) => return Step::Lost("encrypted_column_metadata"),
                    }
                }
                self.cols.clear();
                self.plain_cols = false;
                self.alt.clear();
                if n == 0xFFFF {
                    return Step::Used(used);
                }
                if n as usize > MAX_COLUMNS {
                    return Step::Lost("too_many_columns");
                }
                self.state = State::ColMeta { left: n };
                Step::Used(used)
            }
            tok::ROW | tok::NBCROW => {
                if self.cols.is_empty() {
                    return Step::Lost("row_without_metadata");
                }
                let mut used = 1;
                if t == tok::NBCROW {
                    let n = self.cols.len().div_ceil(8);
                    let Some(bits) = r.take(n) else {
                        return Step::Need;
                    };
                    self.nbc.clear();
                    self.nbc.extend_from_slice(bits);
                    used += n;
                }
                self.nbc_on = t == tok::NBCROW;
                self.row_of = RowOf::Columns;
                acc.cur.row_tokens += 1;
                self.state = State::Row { col: 0 };
                Step::Used(used)
            }
            tok::ALTMETADATA => self.alt_metadata(d),
            tok::ALTROW => {
                // ALTROW (2.2.7.2): Id, then one TYPE_VARBYTE per column of the ALTMETADATA
                // with that Id; no null bitmap. Totals rows are not counted as result rows.
                let Some(id) = r.u16le() else {
                    return Step::Need;
                };
                let Some(k) = self.alt.iter().position(|(i, _)| *i == id) else {
                    return Step::Lost("altrow_without_metadata");
                };
                self.nbc_on = false;
                self.row_of = RowOf::Alt(k);
                self.state = State::Row { col: 0 };
                Step::Used(3)
            }
            tok::DATACLASSIFICATION => self.data_classification(d, acc),
            tok::DONE | tok::DONEPROC | tok::DONEINPROC => {
                if !self.version_known && self.tds.v72() && d.len() == 9 {
                    self.tds = Tds::V71;
                }
                let (Some(status), Some(_cur)) = (r.u16le(), r.u16le()) else {
                    return Step::Need;
                };
                let count = if self.tds.v72() {
                    r.u64le()
                } else {
                    r.u32le().map(u64::from)
                };
                let Some(count) = count else {
                    return Step::Need;
                };
                if status & done::COUNT != 0 {
                    acc.cur.rows = Some(acc.cur.rows.unwrap_or(0).saturating_add(count));
                }
                if status & (done::ERROR | done::SRVERROR) != 0 {
                    acc.cur.done_error = true;
                }
                if status & done::ATTN != 0 {
                    acc.attn_ack = true;
                }
                acc.cur.ts_end = ts;
                if t == tok::DONEPROC {
                    let end = self.step_at + r.pos() as u64;
                    acc.cur.bytes = end.saturating_sub(self.segment_at);
                    self.segment_at = end;
                    let seg = std::mem::take(&mut acc.cur);
                    if acc.segments.len() < MAX_RETURN_VALUES * 64 {
                        acc.segments.push(seg);
                    }
                }
                if t == tok::DONE && status & done::MORE == 0 {
                    acc.final_done = true;
                }
                Step::Used(r.pos())
            }
            tok::RETURNSTATUS => match r.array::<4>() {
                Some(b) => {
                    acc.cur.return_status = Some(i32::from_le_bytes(b));
                    Step::Used(5)
                }
                None => Step::Need,
            },
            tok::OFFSET => {
                if d.len() < 5 {
                    Step::Need
                } else {
                    Step::Used(5)
                }
            }
            tok::RETURNVALUE => self.return_value(d, acc),
            tok::ERROR | tok::INFO | tok::LOGINACK | tok::ENVCHANGE => {
                let Some(len) = r.u16le() else {
                    return Step::Need;
                };
                let Some(body) = r.take(len as usize) else {
                    return Step::Need;
                };
                match t {
                    tok::ERROR | tok::INFO => match self.message(body) {
                        Some(m) => {
                            if t == tok::ERROR || m.class > 10 {
                                if acc.cur.error.is_none() {
                                    acc.cur.error = Some(m);
                                }
                            } else {
                                acc.cur.infos = acc.cur.infos.saturating_add(1);
                                if acc.cur.info.is_none() {
                                    acc.cur.info = Some(Box::new(m));
                                }
                            }
                        }
                        None => acc.anomaly("malformed_error_token"),
                    },
                    tok::LOGINACK => match loginack(body) {
                        Some(l) => {
                            // The tokens after it (the login's DONE) are in the layout of the
                            // version the server chose, which may be older than the client's.
                            self.tds = Tds::from_version(l.tds_version);
                            self.version_known = true;
                            acc.loginack = Some(l);
                        }
                        None => acc.anomaly("malformed_loginack"),
                    },
                    _ => match envchange(body) {
                        Some(e) => {
                            if acc.env.len() < MAX_ENV {
                                acc.env.push(e);
                            }
                        }
                        None => acc.anomaly("malformed_envchange"),
                    },
                }
                Step::Used(r.pos())
            }
            tok::SSPI | tok::ORDER | tok::TABNAME | tok::COLINFO => {
                let Some(len) = r.u16le() else {
                    return Step::Need;
                };
                if t == tok::SSPI {
                    acc.sspi = true;
                }
                Step::Skip {
                    used: 3,
                    skip: len as u64,
                }
            }
            tok::FEDAUTHINFO | tok::SESSIONSTATE => {
                let Some(len) = r.u32le() else {
                    return Step::Need;
                };
                if t == tok::FEDAUTHINFO {
                    acc.fedauth_info = true;
                }
                Step::Skip {
                    used: 5,
                    skip: len as u64,
                }
            }
            tok::FEATUREEXTACK => {
                self.state = State::FeatureExt;
                Step::Used(1)
            }
            _ => Step::Lost("unknown_token"),
        }
    }

    /// ALTMETADATA (2.2.7.1): Count, Id, ByCols, ByCols × ColNum, then Count × ComputeData (Op,
    /// Operand, UserType, Flags, TYPE_INFO, [TableName], ColName). It has no length: the whole
    /// token is read at once (held across packets, bounded by [`MAX_CARRY`]).
    fn alt_metadata(&mut self, d: &[u8]) -> Step {
        let mut r = Reader::new(d);
        r.skip(1);
        let res = (|| -> Result<Result<(u16, Vec<Form>), &'static str>, ()> {
            let count = need(r.u16le())?;
            let id = need(r.u16le())?;
            let by_cols = need(r.u8())?;
            if count as usize > MAX_COLUMNS {
                return Ok(Err("too_many_columns"));
            }
            need(r.skip(by_cols as usize * 2))?;
            let mut forms = Vec::with_capacity(count as usize);
            for _ in 0..count {
                let _op = need(r.u8())?;
                let _operand = need(r.u16le())?;
                if self.tds.v72() {
                    need(r.u32le())?;
                } else {
                    need(r.u16le())?;
                }
                let _flags = need(r.u16le())?;
                // Ctx::Column: a TEXT / NTEXT / IMAGE TYPE_INFO carries its TableName here.
                let ti = match read_type_info(&mut r, Ctx::Column, self.tds) {
                    Ok(t) => t,
                    Err(Stop::Incomplete) => return Err(()),
                    Err(Stop::Bad) => return Ok(Err("unknown_column_type")),
                };
                need(r.skip_b_varchar())?;
                forms.push(ti.form);
            }
            Ok(Ok((id, forms)))
        })();
        match res {
            Err(()) => Step::Need,
            Ok(Err(kind)) => Step::Lost(kind),
            Ok(Ok((id, forms))) => {
                self.alt.retain(|(i, _)| *i != id);
                if self.alt.len() >= MAX_ALT_SETS {
                    return Step::Lost("too_many_altmetadata");
                }
                self.alt.push((id, forms));
                Step::Used(r.pos())
            }
        }
    }

    /// DATACLASSIFICATION (2.2.7.5, TDS 7.4): sensitivity labels and information types (name
    /// and id, B_VARCHARs), a SensitivityRank (LONG) in version 2, then per result column its
    /// sensitivity properties (label index, information type index, version 2: rank). No
    /// length: read whole, like ALTMETADATA. Without the login's FEATUREEXTACK the version is
    /// unknown: the layout that is followed by a known token is taken.
    fn data_classification(&mut self, d: &[u8], acc: &mut Acc) -> Step {
        let versions: &[u8] = match self.dataclass_version {
            Some(v) if v >= 2 => &[2],
            Some(_) => &[1],
            None => &[2, 1],
        };
        for &v in versions {
            match classification(d.get(1..).unwrap_or_default(), v) {
                Classified::Need => return Step::Need,
                Classified::Bad => continue,
                Classified::Ok { len, summary } => {
                    let end = 1 + len;
                    if self.dataclass_version.is_none() {
                        match d.get(end) {
                            None => return Step::Need,
                            Some(&t) if !tok::is_known(t) => continue,
                            Some(_) => {}
                        }
                    }
                    add_sensitivity(&mut acc.cur.sensitivity, &summary);
                    return Step::Used(end);
                }
            }
        }
        Step::Lost("malformed_dataclassification")
    }

    fn message(&self, body: &[u8]) -> Option<Message> {
        let mut r = Reader::new(body);
        Some(Message {
            number: r.u32le()? as i32,
            state: r.u8()?,
            class: r.u8()?,
            text: r.us_varchar()?,
            server: r.b_varchar()?,
            procedure: r.b_varchar()?,
            // LineNumber is a USHORT before TDS 7.2 and a LONG from 7.2 on (MS-TDS 2.2.7.10).
            // The token's own length tells which: a server older than the client's LOGIN7
            // version answers a failed login in its own layout, with no LOGINACK before it.
            line: match r.remaining() {
                2 => r.u16le()? as u32,
                4 => r.u32le()?,
                _ if self.tds.v72() => r.u32le()?,
                _ => r.u16le()? as u32,
            },
        })
    }

    fn return_value(&mut self, d: &[u8], acc: &mut Acc) -> Step {
        let mut r = Reader::new(d);
        r.skip(1);
        let res = (|| -> Result<Result<(u16, String, ParamValue), Stop>, ()> {
            let ordinal = need(r.u16le())?;
            let name = need(r.b_varchar())?;
            let _status = need(r.u8())?;
            if self.tds.v72() {
                need(r.u32le())?;
            } else {
                need(r.u16le())?;
            }
            let _flags = need(r.u16le())?;
            let ti = match read_type_info(&mut r, Ctx::Param, self.tds) {
                Ok(t) => t,
                Err(Stop::Incomplete) => return Err(()),
                Err(e) => return Ok(Err(e)),
            };
            match read_value(&mut r, &ti, MAX_RETURN_VALUE_LEN, self.default_enc) {
                Ok((v, _)) => Ok(Ok((ordinal, name, v))),
                Err(Stop::Incomplete) => Err(()),
                Err(e) => Ok(Err(e)),
            }
        })();
        match res {
            Err(()) => Step::Need,
            Ok(Err(_)) => Step::Lost("malformed_returnvalue"),
            Ok(Ok(v)) => {
                if acc.cur.return_values.len() < MAX_RETURN_VALUES {
                    acc.cur.return_values.push(v);
                }
                Step::Used(r.pos())
            }
        }
    }
}

/// Add the `; `-separated items of `more` to a sensitivity summary, skipping repeats, up to
/// [`MAX_SENSITIVITY_LEN`] bytes (several result sets of one request each classify theirs).
pub fn add_sensitivity(dst: &mut Option<String>, more: &str) {
    for item in more.split("; ").filter(|i| !i.is_empty()) {
        let cur = dst.get_or_insert_with(String::new);
        if cur.split("; ").any(|s| s == item) || cur.len() + item.len() + 2 > MAX_SENSITIVITY_LEN {
            continue;
        }
        if !cur.is_empty() {
            cur.push_str("; ");
        }
        cur.push_str(item);
    }
}

/// A DATACLASSIFICATION body read in one layout.
enum Classified {
    Need,
    Bad,
    /// Its length, and `label: information type` of each column property, deduplicated.
    Ok {
        len: usize,
        summary: String,
    },
}

/// Read a DATACLASSIFICATION body (after the token byte) in the layout of `version`.
fn classification(d: &[u8], version: u8) -> Classified {
    let mut r = Reader::new(d);
    let res = (|| -> Result<Option<String>, ()> {
        let mut names = [Vec::new(), Vec::new()];
        for list in names.iter_mut() {
            let n = need(r.u16le())? as usize;
            if n > MAX_CLASSIFICATION_ITEMS {
                return Ok(None);
            }
            for _ in 0..n {
                list.push(need(r.b_varchar())?);
                need(r.skip_b_varchar())?; // the id: for information protection systems
            }
        }
        if version >= 2 {
            need(r.u32le())?;
        }
        let cols = need(r.u16le())? as usize;
        if cols > MAX_COLUMNS {
            return Ok(None);
        }
        let mut summary = String::new();
        for _ in 0..cols {
            let props = need(r.u16le())? as usize;
            if props > MAX_CLASSIFICATION_ITEMS {
                return Ok(None);
            }
            for _ in 0..props {
                let label = need(r.u16le())?;
                let info = need(r.u16le())?;
                if version >= 2 {
                    need(r.u32le())?;
                }
                // 0xFFFF: no label / no information type; any other index must exist.
                let name = |k: usize, i: u16| -> Option<Option<&str>> {
                    match i {
                        0xFFFF => Some(None),
                        i => names.get(k)?.get(i as usize).map(|s| Some(s.as_str())),
                    }
                };
                let (Some(l), Some(t)) = (name(0, label), name(1, info)) else {
                    return Ok(None);
                };
                let item = format!("{}: {}", l.unwrap_or("-"), t.unwrap_or("-"));
                if !summary.split("; ").any(|s| s == item)
                    && summary.len() + item.len() + 2 <= MAX_SENSITIVITY_LEN
                {
                    if !summary.is_empty() {
                        summary.push_str("; ");
                    }
                    summary.push_str(&item);
                }
            }
        }
        Ok(Some(summary))
    })();
    match res {
        Err(()) => Classified::Need,
        Ok(None) => Classified::Bad,
        Ok(Some(summary)) => Classified::Ok {
            len: r.pos(),
            summary,
        },
    }
}

fn loginack(body: &[u8]) -> Option<LoginAck> {
    let mut r = Reader::new(body);
    let _interface = r.u8()?;
    let tds_version = r.u32be()?;
    let program = r.b_varchar()?.trim_end_matches('\0').to_owned();
    let major = r.u8()?;
    let minor = r.u8()?;
    let build = r.u16be()?;
    Some(LoginAck {
        tds_version,
        program,
        version: (major, minor, build),
    })
}

fn envchange(body: &[u8]) -> Option<EnvChange> {
    let mut r = Reader::new(body);
    let t = r.u8()?;
    Some(match t {
        1 => EnvChange::Database(r.b_varchar()?),
        2 => EnvChange::Language(r.b_varchar()?),
        4 => EnvChange::PacketSize(r.b_varchar()?.trim().parse().ok()?),
        7 => {
            let v = r.b_varbyte()?;
            EnvChange::Collation(Collation(v.get(..5)?.try_into().ok()?))
        }
        8 => EnvChange::BeginTran,
        9 => EnvChange::CommitTran,
        10 => EnvChange::RollbackTran,
        17 => EnvChange::TranEnded,
        18 => EnvChange::ResetAck,
        20 => {
            let _len = r.u16le()?;
            let _protocol = r.u8()?;
            let port = r.u16le()?;
            let server = r.us_varchar()?;
            EnvChange::Routing { server, port }
        }
        other => EnvChange::Other(other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(ts: &mut TokenStream, chunks: &[&[u8]]) -> Acc {
        ts.version_known = true;
        let mut acc = Acc::default();
        for c in chunks {
            ts.feed(c, Timestamp(1), &mut acc);
        }
        ts.end_message(&mut acc);
        acc
    }

    /// MS-TDS 4.8 (SQL batch server response): COLMETADATA with one INT4 column... here built
    /// by the spec's grammar: COLMETADATA(1 col INTN(4) "c"), ROW, ROW, DONE(COUNT, 2).
    fn small_result() -> Vec<u8> {
        let mut v = vec![tok::COLMETADATA, 1, 0];
        v.extend_from_slice(&[0, 0, 0, 0, 0x09, 0x00, 0x26, 4, 1, b'c', 0]);
        v.extend_from_slice(&[tok::ROW, 4, 1, 0, 0, 0]);
        v.extend_from_slice(&[tok::ROW, 0]);
        v.extend_from_slice(&[tok::DONE, 0x10, 0, 0xC1, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
        v
    }

    #[test]
    fn rows_are_skipped_and_counted_in_any_chunking() {
        let v = small_result();
        for cut in 0..v.len() {
            let mut ts = TokenStream::default();
            let acc = feed_all(&mut ts, &[&v[..cut], &v[cut..]]);
            assert_eq!(acc.cur.rows, Some(2), "cut at {cut}");
            assert_eq!(acc.cur.row_tokens, 2);
            assert!(acc.final_done);
            assert!(!acc.lost);
        }
    }

    /// Rows of fixed, BYTELEN and USHORTLEN columns (2.2.5.4.1, 2.2.5.4.2), as ROW and as
    /// NBCROW (2.2.7.15) with NULLs both ways, then a result set with a PLP column: whole rows go
    /// through the one-loop path, rows cut by a chunk boundary through the token-by-token one,
    /// and every chunking counts the same rows.
    #[test]
    fn plain_rows_are_counted_alike_whole_and_cut() {
        let mut v = vec![tok::COLMETADATA, 3, 0];
        // INT4 (fixed, 4 bytes), INTN(4) (BYTELEN), BIGVARCHAR(10) Latin1 (USHORTLEN); names a, b, c.
        v.extend_from_slice(&[0, 0, 0, 0, 0x00, 0x00, 0x38, 1, b'a', 0]);
        v.extend_from_slice(&[0, 0, 0, 0, 0x09, 0x00, 0x26, 4, 1, b'b', 0]);
        v.extend_from_slice(&[
            0, 0, 0, 0, 0x09, 0x00, 0xA7, 10, 0, 0x09, 0x04, 0xD0, 0x00, 0x34,
        ]);
        v.extend_from_slice(&[1, b'c', 0]);
        v.extend_from_slice(&[tok::ROW, 1, 0, 0, 0, 4, 2, 0, 0, 0, 3, 0, b'x', b'y', b'z']);
        v.extend_from_slice(&[tok::ROW, 5, 0, 0, 0, 0, 0xFF, 0xFF]); // b NULL, c NULL
        v.extend_from_slice(&[tok::NBCROW, 0b0000_0110, 6, 0, 0, 0]); // b, c NULL by the bitmap
        v.extend_from_slice(&[tok::NBCROW, 0, 7, 0, 0, 0, 4, 8, 0, 0, 0, 0, 0]); // c empty
        v.extend_from_slice(&[tok::DONE, 0x11, 0, 0xC1, 0, 4, 0, 0, 0, 0, 0, 0, 0]);
        // A second result set: NVARCHAR(MAX) (PLP) is not plain; its rows go token by token.
        v.extend_from_slice(&[
            tok::COLMETADATA,
            1,
            0,
            0,
            0,
            0,
            0,
            0x09,
            0x00,
            0xE7,
            0xFF,
            0xFF,
        ]);
        v.extend_from_slice(&[0x09, 0x04, 0xD0, 0x00, 0x34, 1, b'd', 0]);
        v.extend_from_slice(&[
            tok::ROW,
            2,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            2,
            0,
            0,
            0,
            b'h',
            0,
            0,
            0,
            0,
            0,
        ]);
        v.extend_from_slice(&[tok::DONE, 0x10, 0, 0xC1, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
        for cut in 0..v.len() {
            for second in [cut, (cut + 7).min(v.len())] {
                let mut ts = TokenStream::default();
                let acc = feed_all(&mut ts, &[&v[..cut], &v[cut..second], &v[second..]]);
                assert_eq!(acc.cur.row_tokens, 5, "cuts at {cut}, {second}");
                assert_eq!(acc.cur.rows, Some(5));
                assert!(acc.final_done);
                assert!(!acc.lost, "cuts at {cut}, {second}");
                assert!(acc.anomalies.is_empty(), "{:?}", acc.anomalies);
            }
        }
    }

    #[test]
    fn error_token_tds72() {
        // ERROR 208 "Invalid object name 'x'." state 1 class 16, server "S", proc "", line 1.
        let text: Vec<u8> = "Invalid object name 'x'."
            .encode_utf16()
            .flat_map(|c| c.to_le_bytes())
            .collect();
        let mut body = Vec::new();
        body.extend_from_slice(&208u32.to_le_bytes());
        body.extend_from_slice(&[1, 16]);
        body.extend_from_slice(&(text.len() as u16 / 2).to_le_bytes());
        body.extend_from_slice(&text);
        body.extend_from_slice(&[1, b'S', 0, 0]);
        body.extend_from_slice(&1u32.to_le_bytes());
        let mut v = vec![tok::ERROR];
        v.extend_from_slice(&(body.len() as u16).to_le_bytes());
        v.extend_from_slice(&body);
        v.extend_from_slice(&[tok::DONE, 0x02, 0, 0xC1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let acc = feed_all(&mut TokenStream::default(), &[&v]);
        let e = acc.cur.error.unwrap();
        assert_eq!(e.number, 208);
        assert_eq!(e.class, 16);
        assert_eq!(e.text, "Invalid object name 'x'.");
        assert_eq!(e.line, 1);
        assert!(acc.cur.done_error);
    }

    #[test]
    fn plp_and_text_rows_are_skipped() {
        // Two columns: NVARCHAR(MAX) and TEXT; one NBCROW with the TEXT column NULL.
        let mut v = vec![tok::COLMETADATA, 2, 0];
        v.extend_from_slice(&[
            0, 0, 0, 0, 0x09, 0x00, 0xE7, 0xFF, 0xFF, 9, 4, 0xD0, 0, 0x34, 1, b'a', 0,
        ]);
        v.extend_from_slice(&[
            0, 0, 0, 0, 0x09, 0x00, 0x23, 0xFF, 0xFF, 0xFF, 0x7F, 9, 4, 0xD0, 0, 0x34,
        ]);
        v.extend_from_slice(&[1, 1, 0, b't', 0, 1, b'b', 0]);
        // NBCROW: bitmap 0b10 (column 1 NULL); column 0 PLP: total 4, chunk 4 "xy", terminator.
        v.extend_from_slice(&[tok::NBCROW, 0b10]);
        v.extend_from_slice(&4u64.to_le_bytes());
        v.extend_from_slice(&[4, 0, 0, 0, b'x', 0, b'y', 0, 0, 0, 0, 0]);
        // ROW: PLP NULL, TEXT with a 16-byte pointer, timestamp, 3 bytes.
        v.push(tok::ROW);
        v.extend_from_slice(&u64::MAX.to_le_bytes());
        v.push(16);
        v.extend_from_slice(&[0xAB; 16]);
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&[3, 0, 0, 0, b'a', b'b', b'c']);
        v.extend_from_slice(&[tok::DONE, 0x10, 0, 0xC1, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
        for cut in 0..v.len() {
            let acc = feed_all(&mut TokenStream::default(), &[&v[..cut], &v[cut..]]);
            assert_eq!(acc.cur.row_tokens, 2, "cut at {cut}");
            assert_eq!(acc.cur.rows, Some(2));
            assert!(!acc.lost, "cut at {cut}: {:?}", acc.anomalies);
        }
    }

    #[test]
    fn tds71_done_is_guessed_mid_stream() {
        // A TDS 7.1 DONE (4-byte row count) ending its packet: 9 bytes.
        let mut ts = TokenStream::default();
        let mut acc = Acc::default();
        ts.feed(
            &[tok::DONE, 0x10, 0, 0xC1, 0, 3, 0, 0, 0],
            Timestamp(1),
            &mut acc,
        );
        assert!(!ts.end_message(&mut acc));
        assert_eq!(ts.tds, Tds::V71);
        assert_eq!(acc.cur.rows, Some(3));
    }

    /// OFFSET (MS-TDS 2.2.7.16: token 0x78, "removed in TDS 7.2"; TokenType BYTE, Identifier
    /// USHORT, OffSetLen USHORT) tells a TDS 7.0/7.1 client where a keyword sits in its SQL text
    /// (`SET OFFSETS`). It carries nothing an audit record uses: it is stepped over, 5 bytes, and
    /// the rows around it still count, however the response is cut. The spec gives the
    /// Identifier no values, so any USHORT is grammatical; 0x0001 here.
    /// The result follows the TDS 7.1 grammar: COLMETADATA's UserType is a USHORT before 7.2
    /// (2.2.7.4) and DONE's DoneRowCount a LONG (2.2.7.6).
    #[test]
    fn offset_token_is_stepped_over_in_any_chunking() {
        let mut v = vec![tok::COLMETADATA, 1, 0];
        // UserType (USHORT), Flags (nullable), INTN(4), ColName "c".
        v.extend_from_slice(&[0, 0, 0x09, 0x00, 0x26, 4, 1, b'c', 0]);
        // OFFSET: Identifier 1, OffSetLen 7 (the keyword's offset in the batch text).
        v.extend_from_slice(&[tok::OFFSET, 0x01, 0x00, 0x07, 0x00]);
        v.extend_from_slice(&[tok::ROW, 4, 42, 0, 0, 0]);
        v.extend_from_slice(&[tok::ROW, 0]);
        // DONE: Status DONE_COUNT (0x10), CurCmd 0xC1 (SELECT), DoneRowCount 2 (LONG).
        v.extend_from_slice(&[tok::DONE, 0x10, 0, 0xC1, 0, 2, 0, 0, 0]);
        for cut in 0..=v.len() {
            let mut ts = TokenStream {
                tds: Tds::V71,
                ..TokenStream::default()
            };
            let acc = feed_all(&mut ts, &[&v[..cut], &v[cut..]]);
            assert_eq!(acc.cur.rows, Some(2), "cut at {cut}");
            assert_eq!(acc.cur.row_tokens, 2, "cut at {cut}");
            assert!(acc.final_done, "cut at {cut}");
            assert!(!acc.lost, "cut at {cut}");
        }
    }

    fn bv(s: &str) -> Vec<u8> {
        let mut v = vec![s.len() as u8];
        v.extend(s.encode_utf16().flat_map(|c| c.to_le_bytes()));
        v
    }

    /// `SELECT id, amount FROM t COMPUTE SUM(amount)` in TDS 7.2+ (MS-TDS 2.2.7.1, 2.2.7.2):
    /// COLMETADATA (INTN(4) id, MONEYN(8) amount), two ROWs, ALTMETADATA Id 1 with one
    /// ComputeData (AOPSUM of column 2, MONEYN(8), name "sum"), DONEINPROC-less: an ALTROW of
    /// Id 1, then DONE(COUNT, 2).
    fn compute_result() -> Vec<u8> {
        let mut v = vec![tok::COLMETADATA, 2, 0];
        v.extend_from_slice(&[0, 0, 0, 0, 0x09, 0x00, 0x26, 4]);
        v.extend(bv("id"));
        v.extend_from_slice(&[0, 0, 0, 0, 0x09, 0x00, 0x6E, 8]);
        v.extend(bv("amount"));
        for id in [1u8, 2] {
            v.extend_from_slice(&[tok::ROW, 4, id, 0, 0, 0, 8, 0, 0, 0, 0, 0x10, 0x27, 0, 0]);
        }
        // ALTMETADATA: Count 1, Id 1, ByCols 0; Op 0x4D (SUM), Operand 2, UserType 0 (ULONG),
        // Flags nullable, MONEYN(8), ColName "sum".
        v.extend_from_slice(&[tok::ALTMETADATA, 1, 0, 1, 0, 0]);
        v.extend_from_slice(&[0x4D, 2, 0, 0, 0, 0, 0, 0x01, 0x00, 0x6E, 8]);
        v.extend(bv("sum"));
        // ALTROW Id 1: MONEYN 2.0000 = 20000.
        v.extend_from_slice(&[tok::ALTROW, 1, 0, 8, 0, 0, 0, 0, 0x20, 0x4E, 0, 0]);
        v.extend_from_slice(&[tok::DONE, 0x10, 0, 0xC1, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
        v
    }

    #[test]
    fn altmetadata_and_altrow_are_skipped() {
        let v = compute_result();
        for cut in 0..v.len() {
            let acc = feed_all(&mut TokenStream::default(), &[&v[..cut], &v[cut..]]);
            assert!(!acc.lost, "cut at {cut}: {:?}", acc.anomalies);
            assert_eq!(acc.cur.rows, Some(2), "cut at {cut}");
            assert_eq!(acc.cur.row_tokens, 2, "totals rows are not result rows");
            assert!(acc.final_done);
        }
        // An ALTROW whose Id no ALTMETADATA gave cannot be framed: counted, stream stopped.
        let mut bad = v.clone();
        let at = bad.iter().position(|&b| b == tok::ALTROW).unwrap();
        bad[at + 1] = 9;
        let acc = feed_all(&mut TokenStream::default(), &[&bad]);
        assert!(acc.lost);
        assert_eq!(acc.anomalies, ["altrow_without_metadata"]);
    }

    /// DATACLASSIFICATION (MS-TDS 2.2.7.5) for a one-column result: labels
    /// [Confidential], information types [Health, Contact Info], one column with two
    /// properties (Confidential/Health, no label/Contact Info); `version` 2 adds the ranks.
    fn classification_token(version: u8) -> Vec<u8> {
        let mut v = vec![tok::DATACLASSIFICATION, 1, 0];
        v.extend(bv("Confidential"));
        v.extend(bv("331F0B13-76B5-2F1B-A77B-DEF5A73C73C2"));
        v.extend_from_slice(&[2, 0]);
        v.extend(bv("Health"));
        v.extend(bv("6E2C5B18-97CF-3073-27AB-F12F87493DA7"));
        v.extend(bv("Contact Info"));
        v.extend(bv("5C503E21-22C6-81FA-620B-F369B8EC38D1"));
        if version >= 2 {
            v.extend_from_slice(&30i32.to_le_bytes()); // High
        }
        v.extend_from_slice(&[1, 0, 2, 0]); // one column, two properties
        v.extend_from_slice(&[0, 0, 0, 0]);
        if version >= 2 {
            v.extend_from_slice(&30i32.to_le_bytes());
        }
        v.extend_from_slice(&[0xFF, 0xFF, 1, 0]);
        if version >= 2 {
            v.extend_from_slice(&(-1i32).to_le_bytes());
        }
        v
    }

    /// A login answer's FEATUREEXTACK acknowledging DATACLASSIFICATION `version`, enabled.
    fn featureextack(version: u8) -> Vec<u8> {
        vec![tok::FEATUREEXTACK, 0x09, 2, 0, 0, 0, version, 1, 0xFF]
    }

    /// COLMETADATA (one INTN(4) column), DATACLASSIFICATION, one ROW, DONE(COUNT, 1).
    fn classified_result(version: u8) -> Vec<u8> {
        let mut v = vec![tok::COLMETADATA, 1, 0];
        v.extend_from_slice(&[0, 0, 0, 0, 0x09, 0x00, 0x26, 4, 1, b'c', 0]);
        v.extend(classification_token(version));
        v.extend_from_slice(&[tok::ROW, 4, 1, 0, 0, 0]);
        v.extend_from_slice(&[tok::DONE, 0x10, 0, 0xC1, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
        v
    }

    #[test]
    fn dataclassification_versions_from_featureextack() {
        for version in [1u8, 2] {
            let mut ts = TokenStream::default();
            let login = [featureextack(version), small_result()].concat();
            feed_all(&mut ts, &[&login]);
            assert_eq!(ts.dataclass_version, Some(version));
            let v = classified_result(version);
            for cut in 0..v.len() {
                let acc = feed_all(&mut ts, &[&v[..cut], &v[cut..]]);
                assert!(!acc.lost, "v{version} cut at {cut}: {:?}", acc.anomalies);
                assert_eq!(acc.cur.rows, Some(1));
                assert_eq!(
                    acc.cur.sensitivity.as_deref(),
                    Some("Confidential: Health; -: Contact Info")
                );
            }
        }
    }

    #[test]
    fn dataclassification_version_is_guessed_mid_stream() {
        for version in [1u8, 2] {
            let acc = feed_all(&mut TokenStream::default(), &[&classified_result(version)]);
            assert!(!acc.lost, "v{version}: {:?}", acc.anomalies);
            assert_eq!(acc.cur.rows, Some(1));
            assert!(acc.cur.sensitivity.is_some());
        }
        // An index past the label list is not a DATACLASSIFICATION: framing is lost.
        let mut v = classified_result(1);
        let at = v.len() - 6 - 13 - 4;
        v[at] = 7;
        let mut ts = TokenStream {
            dataclass_version: Some(1),
            ..Default::default()
        };
        let acc = feed_all(&mut ts, &[&v]);
        assert!(acc.lost);
        assert_eq!(acc.anomalies, ["malformed_dataclassification"]);
    }

    #[test]
    fn column_encryption_cek_table() {
        // FEATUREEXTACK: COLUMNENCRYPTION (0x04), version 1.
        let mut ts = TokenStream::default();
        let ack = [
            vec![tok::FEATUREEXTACK, 0x04, 1, 0, 0, 0, 1, 0xFF],
            small_result(),
        ]
        .concat();
        feed_all(&mut ts, &[&ack]);
        assert!(ts.column_encryption);
        // COLMETADATA Count 1, CekTable with EkValueCount 0, then the column as usual.
        let mut v = small_result();
        v.splice(3..3, [0, 0]);
        for cut in 0..v.len() {
            let acc = feed_all(&mut ts, &[&v[..cut], &v[cut..]]);
            assert!(!acc.lost, "cut at {cut}: {:?}", acc.anomalies);
            assert_eq!(acc.cur.rows, Some(2));
        }
        // A CekTable with one key (EK_INFO: DatabaseId, CekId, CekVersion, CekMDVersion,
        // Count 1, EncryptedKey US_VARBYTE, KeyStoreName B_VARCHAR, KeyPath US_VARCHAR,
        // AsymmetricAlgo B_VARCHAR) is stepped over, however the bytes are cut.
        let mut cek = vec![1, 0, 5, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0];
        cek.extend([0; 8]);
        cek.push(1);
        cek.extend([3, 0, 0xAA, 0xBB, 0xCC]);
        cek.extend([1, b'S', 0]);
        cek.extend([1, 0, b'P', 0]);
        cek.extend([1, b'R', 0]);
        let mut v = small_result();
        v.splice(3..3, cek);
        for cut in 0..v.len() {
            let acc = feed_all(&mut ts, &[&v[..cut], &v[cut..]]);
            assert!(!acc.lost, "cut at {cut}: {:?}", acc.anomalies);
            assert_eq!(acc.cur.rows, Some(2));
        }
        // More keys than MAX_CEKS: not a CekTable; said so.
        let mut v = small_result();
        v.splice(3..3, [0xFF, 0xFF]);
        let acc = feed_all(&mut ts, &[&v]);
        assert!(acc.lost);
        assert_eq!(acc.anomalies, ["encrypted_column_metadata"]);
    }

    #[test]
    fn unknown_token_loses_sync_until_eom() {
        let mut ts = TokenStream::default();
        let acc = feed_all(&mut ts, &[&[0x01, 0x02, 0x03]]);
        assert!(acc.lost);
        assert_eq!(acc.anomalies, vec!["unknown_token"]);
        // The next message starts clean.
        let acc = feed_all(&mut ts, &[&small_result()]);
        assert_eq!(acc.cur.rows, Some(2));
    }
}
