//! # dbtap: database activity audit sensor
//!
//! Mirrored database traffic in (live or from pcap/pcapng files), one audit record per database
//! operation out. The layers, in the order bytes travel (ARCHITECTURE.md has the picture):
//!
//! | layer | module | in → out |
//! |---|---|---|
//! | capture | [`capture`] | file → frames (timestamp, caplen, origlen, link type) |
//! | decode | [`decode`] | frame → TCP segment view (VLAN, IPv4/IPv6, fragments) |
//! | pipeline | [`pipeline`] | segments → sharded batches → workers → merged records |
//! | flows + reassembly | [`engine`], [`reassembly`] | segments → ordered bytes, gaps, ends |
//! | detection | [`detect`], [`registry`], [`redirect`] | first bytes → protocol and client side; connections a server redirected to |
//! | parsers | `protocols/*` crates | bytes → protocol-neutral events (sans-IO) |
//! | session pairing | [`session`] | events → [`record::AuditRecord`]s |
//! | output | [`sink`], [`summary`], [`stats`] | records, counters |
//!
//! Time below the pipeline comes from packets only; a replay gives the same bytes every time,
//! with any number of workers.
pub mod capture;
pub mod cli;
pub mod decode;
pub mod detect;
pub mod engine;
pub mod json;
pub mod pipeline;
pub mod reassembly;
pub mod record;
pub mod redirect;
pub mod registry;
pub mod replay;
pub mod rules;
pub mod session;
pub mod sink;
pub mod sql;
pub mod stats;
pub mod summary;
#[cfg(test)]
mod testkit;
