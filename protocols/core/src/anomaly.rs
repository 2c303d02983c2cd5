//! Anomaly names that mean the same trouble in every protocol: counted under one metrics label
//! whichever parser met it. Protocol-specific names stay in their crates.

/// A message or field went over a named limit and was cut (the rest counted, not read).
pub const OVER_LIMIT: &str = "over_limit";
/// A frame header that cannot be right: framing lost in this direction.
pub const BAD_FRAME: &str = "bad_frame";
/// Too many requests waiting for a response: the oldest was emitted without one.
pub const PENDING_OVERFLOW: &str = "pending_overflow";
