//! Throughput of the parser through `dbtap_core::Driver` on synthetic pgbench-like sessions
//! (issue #3's target: ≥ 1M statements/s end to end). Not a unit test:
//! `cargo test --release -p dbtap-pgsql --test perf -- --ignored --nocapture`.
mod common;

use std::time::Instant;

use common::msg;
use dbtap_core::{DbEvent, Direction, Driver, Limits, SessionOpts, Timestamp};
use dbtap_pgsql::PgParser;

/// One pgbench TPC-B transaction in the simple protocol (`pgbench -M simple`): seven Query
/// messages, each answered in its own segment; the SELECT returns one row.
fn tpcb_simple(i: u64) -> Vec<(Direction, Vec<u8>)> {
    let aid = i % 100_000 + 1;
    let stmts: [(String, Vec<u8>); 7] = [
        ("BEGIN;".into(), msg::complete("BEGIN")),
        (
            format!("UPDATE pgbench_accounts SET abalance = abalance + {} WHERE aid = {aid};", i % 5000),
            msg::complete("UPDATE 1"),
        ),
        (
            format!("SELECT abalance FROM pgbench_accounts WHERE aid = {aid};"),
            [msg::row_desc("abalance"), msg::data_row(b"-4242"), msg::complete("SELECT 1")].concat(),
        ),
        (
            format!("UPDATE pgbench_tellers SET tbalance = tbalance + {} WHERE tid = {};", i % 5000, i % 10 + 1),
            msg::complete("UPDATE 1"),
        ),
        (
            format!("UPDATE pgbench_branches SET bbalance = bbalance + {} WHERE bid = 1;", i % 5000),
            msg::complete("UPDATE 1"),
        ),
        (
            format!("INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ({}, 1, {aid}, {}, CURRENT_TIMESTAMP);", i % 10 + 1, i % 5000),
            msg::complete("INSERT 0 1"),
        ),
        ("END;".into(), msg::complete("COMMIT")),
    ];
    let mut v = Vec::new();
    for (sql, answer) in stmts {
        v.push((Direction::ToServer, msg::query(&sql)));
        v.push((Direction::ToClient, [answer, msg::ready(b'T')].concat()));
    }
    v
}

/// `pgbench -S -M prepared`: Bind/Execute/Sync of a prepared SELECT with a binary int4.
fn select_prepared(i: u64) -> Vec<(Direction, Vec<u8>)> {
    let aid = (i % 100_000 + 1) as i32;
    vec![
        (
            Direction::ToServer,
            [
                msg::bind("", "P0_1", &[1], &[Some(&aid.to_be_bytes())]),
                msg::execute("", 0),
                msg::sync(),
            ]
            .concat(),
        ),
        (
            Direction::ToClient,
            [
                [b'2', 0, 0, 0, 4].to_vec(),
                msg::data_row(b"-4242"),
                msg::complete("SELECT 1"),
                msg::ready(b'I'),
            ]
            .concat(),
        ),
    ]
}

/// The answer to Parse + Bind (+ Describe portal) + Execute + Sync of a one-row SELECT:
/// ParseComplete, BindComplete, [RowDescription], DataRow, CommandComplete, ReadyForQuery.
fn parsed_bound_answer(described: bool) -> Vec<u8> {
    let mut v = [[b'1', 0, 0, 0, 4], [b'2', 0, 0, 0, 4]].concat();
    if described {
        v.extend(msg::row_desc("abalance"));
    }
    v.extend(msg::data_row(b"-4242"));
    v.extend(msg::complete("SELECT 1"));
    v.extend(msg::ready(b'I'));
    v
}

/// `pgbench -S -M extended`: unnamed Parse + Bind + Describe + Execute + Sync per statement.
fn select_extended(i: u64) -> Vec<(Direction, Vec<u8>)> {
    let aid = format!("{}", i % 100_000 + 1);
    vec![
        (
            Direction::ToServer,
            [
                msg::parse(
                    "",
                    "SELECT abalance FROM pgbench_accounts WHERE aid = $1",
                    &[],
                ),
                msg::bind("", "", &[], &[Some(aid.as_bytes())]),
                msg::describe(b'P', ""),
                msg::execute("", 0),
                msg::sync(),
            ]
            .concat(),
        ),
        (Direction::ToClient, parsed_bound_answer(true)),
    ]
}

/// An application that names a new statement per query and never closes it (as a JDBC driver
/// does past its prepare threshold, with a statement cache per connection that outgrows the
/// server's): once the parser's cache is full, every Parse evicts the least recently used one.
fn leaking_named(i: u64) -> Vec<(Direction, Vec<u8>)> {
    let name = format!("S_{i}");
    let aid = format!("{}", i % 100_000 + 1);
    vec![
        (
            Direction::ToServer,
            [
                msg::parse(
                    &name,
                    &format!("SELECT abalance FROM pgbench_accounts WHERE aid = $1 /* {i} */"),
                    &[],
                ),
                msg::bind("", &name, &[], &[Some(aid.as_bytes())]),
                msg::execute("", 0),
                msg::sync(),
            ]
            .concat(),
        ),
        (Direction::ToClient, parsed_bound_answer(false)),
    ]
}

/// A report query returning `rows` rows of 60 bytes, the answer in 1448-byte segments.
fn many_rows(rows: usize) -> Vec<(Direction, Vec<u8>)> {
    let mut answer = msg::row_desc("line");
    for _ in 0..rows {
        answer.extend(msg::data_row(&[b'x'; 60]));
    }
    answer.extend(msg::complete(&format!("SELECT {rows}")));
    answer.extend(msg::ready(b'I'));
    let mut v = vec![(Direction::ToServer, msg::query("SELECT line FROM report"))];
    v.extend(
        answer
            .chunks(1448)
            .map(|c| (Direction::ToClient, c.to_vec())),
    );
    v
}

fn measure(name: &str, segs: &[(Direction, Vec<u8>)], statements: u64) {
    let bytes: usize = segs.iter().map(|s| s.1.len()).sum();
    let mut best = f64::MAX;
    for _ in 0..3 {
        let mut p = PgParser::new(SessionOpts { midstream: false });
        let mut d = Driver::new(Limits::default());
        let mut out: Vec<DbEvent> = Vec::with_capacity(1024);
        let mut records = 0u64;
        let t0 = Instant::now();
        for (i, (dir, b)) in segs.iter().enumerate() {
            d.data(&mut p, *dir, Timestamp(i as u64 * 1000), b, &mut out);
            records += out
                .iter()
                .filter(|e| matches!(e, DbEvent::Request(_)))
                .count() as u64;
            // The engine drains events after every segment.
            out.clear();
        }
        let dt = t0.elapsed().as_secs_f64();
        assert_eq!(records, statements, "{name}");
        best = best.min(dt);
    }
    println!(
        "{name:<28} {statements:>9} statements {:>8.1} ns/statement {:>6.2} M statements/s {:>7.0} MB/s",
        best * 1e9 / statements as f64,
        statements as f64 / best / 1e6,
        bytes as f64 / best / 1e6
    );
}

#[test]
#[ignore]
fn pgbench_like_throughput() {
    // Simple protocol, TPC-B: 7 statements per transaction.
    let mut segs = Vec::new();
    let tx = 150_000u64;
    for i in 0..tx {
        segs.extend(tpcb_simple(i));
    }
    measure("pgbench tpcb (simple)", &segs, tx * 7);

    // Prepared select-only, the Parse sent once.
    let mut segs = vec![(
        Direction::ToServer,
        [
            msg::parse(
                "P0_1",
                "SELECT abalance FROM pgbench_accounts WHERE aid = $1",
                &[23],
            ),
            msg::sync(),
        ]
        .concat(),
    )];
    segs.push((
        Direction::ToClient,
        [[b'1', 0, 0, 0, 4].to_vec(), msg::ready(b'I')].concat(),
    ));
    let n = 1_000_000u64;
    for i in 0..n {
        segs.extend(select_prepared(i));
    }
    measure("pgbench -S -M prepared", &segs, n + 1);

    let n = 1_000_000u64;
    let mut segs = Vec::new();
    for i in 0..n {
        segs.extend(select_extended(i));
    }
    measure("pgbench -S -M extended", &segs, n);

    // Named statements never closed: 100,000 past a full cache.
    let n = 100_000u64 + Limits::default().max_prepared_statements as u64;
    let mut segs = Vec::new();
    for i in 0..n {
        segs.extend(leaking_named(i));
    }
    measure("named, never closed", &segs, n);

    // Many DataRows: 2000 queries × 1000 rows.
    let mut segs = Vec::new();
    for _ in 0..2000 {
        segs.extend(many_rows(1000));
    }
    measure("1000-row results", &segs, 2000);
}
