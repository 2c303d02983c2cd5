//! Test support: stream files (see `streams/extract.py`) fed through `dbtap_core::Driver`
//! exactly as the engine does.
#![allow(dead_code)]

use dbtap_core::{DbEvent, Driver, Limits, SessionOpts};
use dbtap_mysql::MysqlParser;

#[allow(unused_imports)] // each test binary uses its own subset
pub use dbtap_core::testing::{pairs, pairs_of, unhex, Seg};

pub fn load(name: &str) -> Vec<Seg> {
    let path = format!("{}/tests/streams/{name}.txt", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    dbtap_core::testing::parse_stream(&text)
}

/// Parse the text of a stream file.
pub fn parse(text: &str) -> Vec<Seg> {
    dbtap_core::testing::parse_stream(text)
}

/// Feed segments through a driver, then end both directions.
pub fn feed(
    segs: &[Seg],
    opts: SessionOpts,
    limits: Limits,
) -> (Vec<DbEvent>, Driver, MysqlParser) {
    let mut p = MysqlParser::new(opts);
    let (out, d) = dbtap_core::testing::feed(&mut p, segs, limits);
    (out, d, p)
}

pub fn run(name: &str) -> Vec<DbEvent> {
    feed(&load(name), SessionOpts::default(), Limits::default()).0
}

pub fn run_mid(name: &str) -> Vec<DbEvent> {
    feed(
        &load(name),
        SessionOpts { midstream: true },
        Limits::default(),
    )
    .0
}

/// A compact line per pair: tx, op, sql, status, rows, error code.
pub fn summary(ev: &[DbEvent]) -> Vec<String> {
    dbtap_core::testing::pair_lines(ev)
}
