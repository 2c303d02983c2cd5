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

/// Every data segment split at points drawn from `cuts` (0 to 3 cuts per segment), same
/// direction and time: the chunking-invariance tests feed this and compare the events.
pub fn rechunk(segs: &[Seg], cuts: &[u16]) -> Vec<Seg> {
    let mut out = Vec::new();
    let mut k = 0usize;
    for s in segs {
        match s {
            Seg::Data(d, ts, b) if b.len() > 1 => {
                let c = cuts.get(k % cuts.len().max(1)).copied().unwrap_or(0) as usize;
                k += 1;
                let mut pieces = vec![0usize, b.len()];
                for j in 0..(c % 4) {
                    pieces.push((c.wrapping_mul(j + 7)) % b.len());
                }
                pieces.sort_unstable();
                pieces.dedup();
                for w in pieces.windows(2) {
                    out.push(Seg::Data(*d, *ts, b[w[0]..w[1]].to_vec()));
                }
            }
            other => out.push(other.clone()),
        }
    }
    out
}

/// Consecutive data segments of one direction merged (a capture with larger segments).
pub fn coalesce(segs: &[Seg]) -> Vec<Seg> {
    let mut out: Vec<Seg> = Vec::new();
    for s in segs {
        if let (Some(Seg::Data(d0, _, b0)), Seg::Data(d, _, b)) = (out.last_mut(), s) {
            if d0 == d {
                b0.extend_from_slice(b);
                continue;
            }
        }
        out.push(s.clone());
    }
    out
}

/// Events without their capture times (which move when segments are cut or merged).
pub fn timeless(ev: &[DbEvent]) -> Vec<DbEvent> {
    ev.iter()
        .cloned()
        .map(|e| match e {
            DbEvent::Request(mut r) => {
                r.ts = Timestamp(0);
                DbEvent::Request(r)
            }
            DbEvent::Response(mut r) => {
                r.ts_end = Timestamp(0);
                DbEvent::Response(r)
            }
            e => e,
        })
        .collect()
}

/// The value of attribute `key` in a request's or a login's attribute list.
pub fn attribute<'a, K: AsRef<str>>(attrs: &'a [(K, String)], key: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(k, _)| k.as_ref() == key)
        .map(|(_, v)| v.as_str())
}

/// One request's operation name (empty when none).
pub fn op_name(q: &Request) -> String {
    q.op.as_ref()
        .map(|o| o.as_str().to_string())
        .unwrap_or_default()
}

/// The pairs whose request has operation `op` (as [`op_name`] names it), in order.
pub fn pairs_of<'a>(
    p: &'a [(Request, Option<Response>)],
    op: &str,
) -> Vec<&'a (Request, Option<Response>)> {
    p.iter().filter(|(q, _)| op_name(q) == op).collect()
}

/// A response in one line: `Ok rows=Some(1) err=Num(1064)`, `-` when there was none.
pub fn response_line(r: Option<&Response>) -> String {
    match r {
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
    }
}

/// A compact line per request/response pair: tx, op, sql, then the response.
pub fn pair_lines(ev: &[DbEvent]) -> Vec<String> {
    pairs(ev)
        .iter()
        .map(|(q, r)| {
            format!(
                "{} {} {:?} => {}",
                q.tx,
                op_name(q),
                q.sql.as_deref().unwrap_or(""),
                response_line(r.as_ref())
            )
        })
        .collect()
}

/// Cases per property test: `PROPTEST_CASES` when it is set, else `default` (each suite's
/// default is what its properties run in a few seconds). A value that is not a whole number
/// stops the test with the variable's name: a typo must not quietly run the default sample and
/// pass for a longer campaign than it was.
pub fn proptest_cases(default: u32) -> u32 {
    match std::env::var("PROPTEST_CASES") {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("PROPTEST_CASES={v:?} is not a whole number of cases")),
        Err(std::env::VarError::NotPresent) => default,
        Err(e) => panic!("PROPTEST_CASES: {e}"),
    }
}
