//! # dbtap-core: the stage contract
//!
//! This crate is the only thing the stream layer (TCP reassembly, in the `dbtap` crate) and the
//! wire-protocol parsers (`protocols/mysql`, later `pgsql`, `tds`, `tns`) share.
//!
//! ```text
//!  stream layer (owns the bytes)                  parser (owns the protocol state)
//!  ─────────────────────────────                  ─────────────────────────────────
//!  Input::Data(all unconsumed bytes)  ─────────►  StreamParser::handle(cx, dir, input, out)
//!                                     ◄─────────  Progress::{Consumed, NeedMore, Skip, Upgraded, Abandon}
//!  Input::Gap { len, partial }        ─────────►  absorb (known-length body) or desync + resync
//!  Input::End { reset, partial }      ─────────►  flush what is pending, flagged
//!                                                 out: Vec<DbEvent> (protocol-neutral, owned)
//! ```
//!
//! Invariants every parser keeps:
//! - **Sans-IO**: no sockets, threads, clocks or files. Time comes from packets through [`Cx`].
//! - **The stream layer owns the bytes**: a parser keeps no private copy of partial input. It says
//!   how much it consumed and, when it needs more, exactly how many bytes (`need`) so that a large
//!   message is parsed once, not once per segment.
//! - **Bounded**: every length read from the wire is checked against a named limit ([`limits`]).
//!   Going over a limit degrades (truncate, skip, desync) and is reported; it never panics.
//! - **Gaps are inputs**: the absorb / desync / resync policy is written once, in [`gap`].
//! - **Secrets never leave the parser**: passwords, scrambles and auth tokens are dropped at the
//!   parser boundary; events only say that they existed.
#![forbid(unsafe_code)]

pub mod anomaly;
pub mod contract;
pub mod driver;
pub mod event;
pub mod gap;
pub mod limits;
pub mod recency;
#[cfg(feature = "testing")]
pub mod testing;
pub mod text;
pub mod time;

pub use contract::{
    Abandon, Cx, Direction, Input, Mark, Probe, Progress, ProtocolSpec, Redirect, RedirectFinder,
    RedirectScan, SessionOpts, StreamParser, Upgrade,
};
pub use driver::{Driver, DriverState, DriverStats};
pub use event::{
    Completeness, DbError, DbEvent, DeferredParams, ErrorCode, Login, Op, Param, ParamDecoder,
    ParamValue, Request, Response, SessionUpdate, Status,
};
pub use limits::Limits;
pub use time::Timestamp;
