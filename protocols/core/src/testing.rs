//! Test support for the parser crates (feature `testing`, enabled by their dev-dependencies):
//! stream files — one segment per line, `TS > HEX` / `TS < HEX` / `TS > gap N` — fed through the
//! [`Driver`] exactly as the engine does, and request/response pairing of the events.
//!
//! These helpers read the crates' own test files and panic on a malformed one: they are never
//! given wire data from outside.

use crate::{DbEvent, Direction, Driver, Limits, Request, Response, StreamParser, Timestamp};

/// One line of a stream file.
#[derive(Debug, Clone)]
pub enum Seg {
    Data(Direction, Timestamp, Vec<u8>),
    Gap(Direction, Timestamp, u64),
}

/// Parse the text of a stream file (`#` comments and blank lines skipped).
pub fn parse_stream(text: &str) -> Vec<Seg> {
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

/// Bytes of a hex string (non-hex characters ignored).
pub fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// Feed segments to `parser` through a driver, then end both directions at the last data time.
pub fn feed(parser: &mut dyn StreamParser, segs: &[Seg], limits: Limits) -> (Vec<DbEvent>, Driver) {
    let mut d = Driver::new(limits);
    let mut out = Vec::new();
    let mut last = Timestamp(0);
    for s in segs {
        match s {
            Seg::Data(dir, ts, b) => {
                last = *ts;
                d.data(parser, *dir, *ts, b, &mut out)
            }
            Seg::Gap(dir, ts, n) => d.gap(parser, *dir, *ts, *n, &mut out),
        }
    }
    d.end(parser, Direction::ToServer, last, false, &mut out);
    d.end(parser, Direction::ToClient, last, false, &mut out);
    (out, d)
}

/// Request/response pairs by tx (response `None` when none was emitted). A response without its
/// request, or a second response for one request, is a test failure.
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
