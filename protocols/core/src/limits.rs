//! Named bounds. Every length read from the wire is checked against one of these; going over a
//! bound degrades (truncate, skip, desync), is counted, and never panics or grows memory.

/// Statement text kept per request. Longer text is cut here and the request is marked
/// `Truncated`; the rest of the message is skipped unbuffered.
pub const DEFAULT_MAX_STATEMENT_LEN: usize = 64 * 1024;
/// Largest message a parser asks the stream layer to buffer whole (`Progress::NeedMore`).
/// Messages over it are parsed from their head and the remainder skipped.
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 1024 * 1024;
/// Bind values kept per execute.
pub const DEFAULT_MAX_PARAMS: usize = 1024;
/// Bytes kept per bind value (text or binary).
pub const DEFAULT_MAX_PARAM_LEN: usize = 4 * 1024;
/// Requests awaiting a response per session (pipelining); older ones are closed as unanswered.
pub const DEFAULT_MAX_PENDING_REQUESTS: usize = 1024;
/// Prepared statements remembered per session; the least recently used is evicted and counted.
pub const DEFAULT_MAX_PREPARED_STATEMENTS: usize = 4096;
/// Connection or query attributes kept per message.
pub const DEFAULT_MAX_ATTRIBUTES: usize = 64;
/// Bytes kept per attribute name or value.
pub const DEFAULT_MAX_ATTRIBUTE_LEN: usize = 256;
/// Bytes scanned for a plausible message header after a gap before a direction is given up.
pub const DEFAULT_MAX_RESYNC_SCAN: u64 = 16 * 1024 * 1024;

/// The limits a parser works under. One value per session, shared read-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// See [`DEFAULT_MAX_STATEMENT_LEN`].
    pub max_statement_len: usize,
    /// See [`DEFAULT_MAX_MESSAGE_LEN`].
    pub max_message_len: usize,
    /// See [`DEFAULT_MAX_PARAMS`].
    pub max_params: usize,
    /// See [`DEFAULT_MAX_PARAM_LEN`].
    pub max_param_len: usize,
    /// See [`DEFAULT_MAX_PENDING_REQUESTS`].
    pub max_pending_requests: usize,
    /// See [`DEFAULT_MAX_PREPARED_STATEMENTS`].
    pub max_prepared_statements: usize,
    /// See [`DEFAULT_MAX_ATTRIBUTES`].
    pub max_attributes: usize,
    /// See [`DEFAULT_MAX_ATTRIBUTE_LEN`].
    pub max_attribute_len: usize,
    /// See [`DEFAULT_MAX_RESYNC_SCAN`].
    pub max_resync_scan: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_statement_len: DEFAULT_MAX_STATEMENT_LEN,
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
            max_params: DEFAULT_MAX_PARAMS,
            max_param_len: DEFAULT_MAX_PARAM_LEN,
            max_pending_requests: DEFAULT_MAX_PENDING_REQUESTS,
            max_prepared_statements: DEFAULT_MAX_PREPARED_STATEMENTS,
            max_attributes: DEFAULT_MAX_ATTRIBUTES,
            max_attribute_len: DEFAULT_MAX_ATTRIBUTE_LEN,
            max_resync_scan: DEFAULT_MAX_RESYNC_SCAN,
        }
    }
}
