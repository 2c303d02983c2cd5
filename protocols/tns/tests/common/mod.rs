//! Test support: stream files (see `streams/extract.py`) fed through `dbtap_core::Driver`
//! exactly as the engine does.
#![allow(dead_code)]

use dbtap_core::{DbEvent, Direction, Driver, Limits, Request, Response, SessionOpts, Timestamp};
use dbtap_tns::TnsParser;

/// One line of a stream file.
#[derive(Debug, Clone)]
pub enum Seg {
    Data(Direction, Timestamp, Vec<u8>),
    Gap(Direction, Timestamp, u64),
}

pub fn load(name: &str) -> Vec<Seg> {
    let path = format!("{}/tests/streams/{name}.txt", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut f = l.split_whitespace();
            let ts = Timestamp(f.next().unwrap().parse().unwrap());
            let dir = match f.next().unwrap() {
                ">" => Direction::ToServer,
                "<" => Direction::ToClient,
                d => panic!("bad direction {d}"),
            };
            match f.next().unwrap() {
                "gap" => Seg::Gap(dir, ts, f.next().unwrap().parse().unwrap()),
                hex => Seg::Data(dir, ts, unhex(hex)),
            }
        })
        .collect()
}

pub fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// Feed segments through a driver, then end both directions.
pub fn feed(segs: &[Seg], opts: SessionOpts, limits: Limits) -> (Vec<DbEvent>, Driver, TnsParser) {
    let mut p = TnsParser::new(opts);
    let mut d = Driver::new(limits);
    let mut out = Vec::new();
    let mut last = Timestamp(0);
    for s in segs {
        match s {
            Seg::Data(dir, ts, b) => {
                last = *ts;
                d.data(&mut p, *dir, *ts, b, &mut out)
            }
            Seg::Gap(dir, ts, n) => d.gap(&mut p, *dir, *ts, *n, &mut out),
        }
    }
    d.end(&mut p, Direction::ToServer, last, false, &mut out);
    d.end(&mut p, Direction::ToClient, last, false, &mut out);
    (out, d, p)
}

pub fn run(name: &str) -> Vec<DbEvent> {
    feed(&load(name), SessionOpts::default(), Limits::default()).0
}

/// Request/response pairs by tx (response `None` when none was emitted).
pub fn pairs(ev: &[DbEvent]) -> Vec<(Request, Option<Response>)> {
    let mut v: Vec<(Request, Option<Response>)> = Vec::new();
    for e in ev {
        match e {
            DbEvent::Request(r) => v.push(((**r).clone(), None)),
            DbEvent::Response(r) => {
                let slot = v
                    .iter_mut()
                    .rev()
                    .find(|(q, _)| q.tx == r.tx)
                    .expect("response without request");
                assert!(slot.1.is_none(), "two responses for tx {}", r.tx);
                slot.1 = Some((**r).clone());
            }
            _ => {}
        }
    }
    v
}

/// A compact line per operation: op, sql, status, rows, error code.
pub fn summary(ev: &[DbEvent]) -> Vec<String> {
    pairs(ev)
        .iter()
        .map(|(q, r)| {
            let op =
                q.op.as_ref()
                    .map(|o| o.as_str().to_string())
                    .unwrap_or_default();
            let resp = match r {
                None => "-".to_string(),
                Some(r) => format!(
                    "{:?} rows={:?}{}",
                    r.status,
                    r.rows,
                    r.error
                        .as_ref()
                        .map(|e| format!(" err={:?}", e.code))
                        .unwrap_or_default()
                ),
            };
            format!("{op} {:?} {resp}", q.sql.as_deref().unwrap_or(""))
        })
        .collect()
}
