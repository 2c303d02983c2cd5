//! Property tests: the same conversation gives the same events however it is cut into segments;
//! random bytes, truncations, bit flips and gaps never panic, hang or grow the parser's memory.
mod synth;

use dbtap_core::testing::{proptest_cases, timeless};
use dbtap_core::{DbEvent, Direction, Driver, Limits, SessionOpts, StreamParser, Timestamp};
use dbtap_tds::TdsParser;
use proptest::prelude::*;

/// Feed `conv`, cutting every run of bytes at the given points.
fn feed(conv: &synth::Conversation, cuts: &[usize], midstream: bool) -> (Vec<DbEvent>, usize) {
    let mut p = TdsParser::new(SessionOpts { midstream });
    let mut d = Driver::new(Limits::default());
    let mut out = Vec::new();
    let mut k = 0usize;
    let mut peak = 0usize;
    for (i, (dir, bytes)) in conv.iter().enumerate() {
        let mut pos = 0usize;
        while pos < bytes.len() {
            let c = cuts
                .get(k % cuts.len().max(1))
                .copied()
                .unwrap_or(bytes.len());
            k += 1;
            let end = (pos + c.max(1)).min(bytes.len());
            d.data(
                &mut p,
                *dir,
                Timestamp(i as u64),
                &bytes[pos..end],
                &mut out,
            );
            pos = end;
            peak = peak.max(p.mem_usage() + d.buffered());
        }
    }
    d.end(&mut p, Direction::ToServer, Timestamp(999), false, &mut out);
    d.end(&mut p, Direction::ToClient, Timestamp(999), false, &mut out);
    (timeless(&out), peak)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: proptest_cases(256), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn chunking_does_not_change_events(cuts in proptest::collection::vec(1usize..700, 1..16)) {
        for (name, conv) in synth::all() {
            let (whole, _) = feed(&conv, &[], false);
            let (cut, _) = feed(&conv, &cuts, false);
            prop_assert_eq!(&whole, &cut, "{}", name);
        }
    }

    #[test]
    fn one_byte_at_a_time_too(n in 1usize..4) {
        let conv = synth::full_session();
        let (whole, _) = feed(&conv, &[], false);
        let (cut, _) = feed(&conv, &[n], false);
        prop_assert_eq!(whole, cut);
    }

    #[test]
    fn random_bytes_never_panic(chunks in proptest::collection::vec((any::<bool>(), proptest::collection::vec(any::<u8>(), 0..300)), 0..20), midstream in any::<bool>()) {
        let conv: synth::Conversation = chunks
            .into_iter()
            .map(|(c, b)| (if c { Direction::ToServer } else { Direction::ToClient }, b))
            .collect();
        let (_, peak) = feed(&conv, &[37], midstream);
        prop_assert!(peak < 4 * 1024 * 1024);
    }

    #[test]
    fn damaged_conversations_never_panic(
        which in 0usize..synth::all().len(),
        flips in proptest::collection::vec((any::<usize>(), any::<usize>(), 0u8..8), 0..12),
        gap_at in proptest::option::of((any::<usize>(), 1u64..5000)),
        truncate in proptest::option::of(any::<usize>()),
    ) {
        let (_, mut conv) = synth::all().swap_remove(which);
        for (i, at, bit) in &flips {
            let n = conv.len();
            let seg = &mut conv[i % n].1;
            if !seg.is_empty() {
                let j = at % seg.len();
                seg[j] ^= 1 << bit;
            }
        }
        if let Some(t) = truncate {
            let n = conv.len();
            let seg = &mut conv[t % n].1;
            let keep = t % (seg.len() + 1);
            seg.truncate(keep);
        }
        let mut p = TdsParser::new(SessionOpts::default());
        let mut d = Driver::new(Limits::default());
        let mut out = Vec::new();
        for (i, (dir, bytes)) in conv.iter().enumerate() {
            if let Some((g, len)) = gap_at {
                if g % conv.len() == i {
                    d.gap(&mut p, *dir, Timestamp(i as u64), len, &mut out);
                }
            }
            d.data(&mut p, *dir, Timestamp(i as u64), bytes, &mut out);
            prop_assert!(p.mem_usage() + d.buffered() < 4 * 1024 * 1024);
        }
        d.end(&mut p, Direction::ToServer, Timestamp(999), true, &mut out);
        d.end(&mut p, Direction::ToClient, Timestamp(999), true, &mut out);
        // Every response answers a request of the same tx, emitted before it.
        let mut seen = std::collections::HashSet::new();
        for e in &out {
            match e {
                DbEvent::Request(r) => { seen.insert(r.tx); }
                DbEvent::Response(r) => prop_assert!(seen.contains(&r.tx)),
                _ => {}
            }
        }
        let text = format!("{:?}", out);
        prop_assert!(!leaks_a_password(&text), "{}", text);
    }
}

/// Whether `text` (the events, formatted) holds a LOGIN7 password of the generated
/// conversations: as text, or as its bytes on the wire (MS-TDS 2.2.6.4: UTF-16LE, each byte's
/// nibbles swapped, then XOR 0xA5), listed or in hex.
fn leaks_a_password(text: &str) -> bool {
    ["Sup3r$ecret", "s3cret", "wrong"].iter().any(|pw| {
        let wire: Vec<u8> = synth::u16s(pw)
            .iter()
            .map(|b| b.rotate_left(4) ^ 0xA5)
            .collect();
        let listed = format!("{wire:?}");
        let hex: String = wire.iter().map(|b| format!("{b:02x}")).collect();
        (pw.len() > 5 && text.contains(pw))
            || text.contains(listed.trim_matches(['[', ']']))
            || text.contains(&hex)
    })
}

#[test]
fn the_password_check_sees_a_password_in_every_form() {
    let wire: Vec<u8> = synth::u16s("s3cret")
        .iter()
        .map(|b| b.rotate_left(4) ^ 0xA5)
        .collect();
    assert!(leaks_a_password("user s3cret"));
    assert!(leaks_a_password(&format!("Bytes({wire:?})")));
    let hex: String = wire.iter().map(|b| format!("{b:02x}")).collect();
    assert!(leaks_a_password(&format!("value: \"0x{hex}\"")));
    assert!(!leaks_a_password(
        "Login failed for user 'sa'. (wrong database)"
    ));
}

#[test]
fn midstream_pickup_finds_the_next_message() {
    // Drop the login and the first half of the first result: the parser resyncs on the next
    // request and audits from there.
    let conv = synth::full_session();
    let (dir, result) = conv[5].clone();
    assert_eq!(dir, Direction::ToClient);
    let mut tail: synth::Conversation = vec![(dir, result[result.len() / 2 + 3..].to_vec())];
    tail.extend(conv.into_iter().skip(6));
    let (ev, _) = feed(&tail, &[], true);
    let reqs: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            DbEvent::Request(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(reqs[0].sql.as_deref(), Some("SELECT * FROM dbo.patinet"));
    let resp = ev.iter().find_map(|e| match e {
        DbEvent::Response(r) if r.tx == reqs[0].tx => Some(r.clone()),
        _ => None,
    });
    assert_eq!(
        resp.unwrap().error.unwrap().code,
        dbtap_core::ErrorCode::Num(208)
    );
    assert!(reqs
        .iter()
        .any(|r| r.procedure.as_deref() == Some("sp_executesql")));
}
