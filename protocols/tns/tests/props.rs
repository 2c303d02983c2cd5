//! Property tests: chunking invariance on real streams, and robustness (random bytes,
//! truncations, bit flips, random gaps): never panic, never hang, buffers stay bounded.
mod common;

use common::{feed, load, Seg};
use dbtap_core::testing::{coalesce, proptest_cases, rechunk, timeless};
use dbtap_core::{DbEvent, Direction, Limits, SessionOpts, Timestamp};
use proptest::prelude::*;

const STREAMS: &[&str] = &[
    "sqlplus10g_select",
    "sqlplus10g_insert",
    "sqlplus10g_delete",
    "jdbc_ora00942",
    "jdbc_login_failed",
    "o5logon_11g_sqlplus",
    "o5logon_win64",
    "sqlplus10g_ddl_dcl",
    "sqldeveloper11g",
    "russian_login",
    "russian_login_failed",
    "chinese_9i",
    "redirect",
    "refuse",
    "gsql_11g",
];

#[test]
fn coalesced_streams_give_the_same_operations() {
    for name in STREAMS {
        let segs = load(name);
        let a = feed(&segs, SessionOpts::default(), Limits::default()).0;
        let b = feed(&coalesce(&segs), SessionOpts::default(), Limits::default()).0;
        assert_eq!(timeless(&a), timeless(&b), "{name}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(proptest_cases(64)))]

    #[test]
    fn chunking_does_not_change_events(cuts in prop::collection::vec(any::<u16>(), 1..32), which in 0..STREAMS.len()) {
        let segs = load(STREAMS[which]);
        let a = feed(&segs, SessionOpts::default(), Limits::default()).0;
        let b = feed(&rechunk(&segs, &cuts), SessionOpts::default(), Limits::default()).0;
        prop_assert_eq!(a, b);
    }

    #[test]
    fn random_bytes_never_panic(chunks in prop::collection::vec((any::<bool>(), prop::collection::vec(any::<u8>(), 0..300)), 0..20), mid in any::<bool>()) {
        let segs: Vec<Seg> = chunks.into_iter().enumerate().map(|(i, (d, b))| {
            let dir = if d { Direction::ToServer } else { Direction::ToClient };
            Seg::Data(dir, Timestamp(i as u64), b)
        }).collect();
        let (_, driver, p) = feed(&segs, SessionOpts { midstream: mid }, Limits::default());
        prop_assert!(driver.buffered() <= 2 * Limits::default().max_message_len + 4096);
        prop_assert!(dbtap_core::StreamParser::mem_usage(&p) <= 1 << 20);
    }

    #[test]
    fn damaged_real_streams_never_panic(which in 0..STREAMS.len(), flips in prop::collection::vec((any::<u16>(), any::<u8>()), 0..16), cut in any::<u16>(), gaps in prop::collection::vec((any::<u16>(), 1u64..5000), 0..4)) {
        let mut segs = load(STREAMS[which]);
        let n = segs.len();
        for (at, x) in flips {
            if let Some(Seg::Data(_, _, b)) = segs.get_mut(at as usize % n.max(1)) {
                if !b.is_empty() {
                    let i = (x as usize * 7919) % b.len();
                    b[i] ^= x | 1;
                }
            }
        }
        for (at, len) in gaps {
            let i = at as usize % n.max(1);
            if let Some(Seg::Data(d, ts, _)) = segs.get(i).cloned() {
                segs[i] = Seg::Gap(d, ts, len);
            }
        }
        segs.truncate(1 + cut as usize % n.max(1));
        let _ = feed(&segs, SessionOpts::default(), Limits::default());
        let _ = feed(&segs, SessionOpts { midstream: true }, Limits::default());
    }
}

#[test]
fn gaps_are_reported_and_the_session_goes_on() {
    // Lose one client segment in the middle of sqlplus10g_select: a desync, records after it.
    let mut segs = load("sqlplus10g_select");
    let i = segs.len() / 2;
    let (d, ts, len) = match &segs[i] {
        Seg::Data(d, ts, b) => (*d, *ts, b.len() as u64),
        Seg::Gap(..) => unreachable!(),
    };
    segs[i] = Seg::Gap(d, ts, len);
    let ev = feed(&segs, SessionOpts::default(), Limits::default()).0;
    let after = ev
        .iter()
        .skip_while(|e| !matches!(e, DbEvent::Desync { .. } | DbEvent::Response(_)))
        .filter(|e| matches!(e, DbEvent::Request(_)))
        .count();
    assert!(after > 0);
    let lost: u64 = ev
        .iter()
        .filter_map(|e| match e {
            DbEvent::Request(r) => match r.completeness {
                dbtap_core::Completeness::Partial { lost_bytes } => Some(lost_bytes),
                _ => None,
            },
            DbEvent::Response(r) => match r.completeness {
                dbtap_core::Completeness::Partial { lost_bytes } => Some(lost_bytes),
                _ => None,
            },
            _ => None,
        })
        .sum();
    assert!(lost > 0, "the loss is flagged on an operation");
}
