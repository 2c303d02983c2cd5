//! Property tests: chunking invariance on real streams, and robustness (random bytes,
//! truncations, bit flips, random gaps): never panic, never hang, buffers stay bounded.
mod common;

use common::{feed, load, Seg};
use dbtap_core::testing::{proptest_cases, rechunk};
use dbtap_core::{Direction, Limits, SessionOpts, Timestamp};
use proptest::prelude::*;

const STREAMS: &[&str] = &[
    "login_native_ok",
    "caching_sha2_1",
    "change_user_ok",
    "stmt_null_bitmap",
    "deepflow_exec",
    "compression_old_password",
    "query_attr_9",
    "errors_1064_1193",
    "session_init_db",
    "tls_encrypted",
    "stmt_analyses",
    "compressed_response",
    "compression_midstream",
    "incomplete_query",
    "mariadb_bulk",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(proptest_cases(128)))]

    #[test]
    fn chunking_does_not_change_events(which in 0..STREAMS.len(), cuts in prop::collection::vec(any::<u16>(), 1..32)) {
        let segs = load(STREAMS[which]);
        let (whole, d0, _) = feed(&segs, SessionOpts::default(), Limits::default());
        let (split, d1, _) = feed(&rechunk(&segs, &cuts), SessionOpts::default(), Limits::default());
        prop_assert_eq!(&whole, &split);
        prop_assert_eq!(d0.stats().stalls, 0);
        prop_assert_eq!(d1.stats().stalls, 0);
    }

    #[test]
    fn one_byte_at_a_time_is_the_same(which in 0..STREAMS.len()) {
        let segs = load(STREAMS[which]);
        let (whole, _, _) = feed(&segs, SessionOpts::default(), Limits::default());
        let bytes: Vec<Seg> = segs.iter().flat_map(|s| match s {
            Seg::Data(d, ts, b) => b.iter().map(|x| Seg::Data(*d, *ts, vec![*x])).collect::<Vec<_>>(),
            g => vec![g.clone()],
        }).collect();
        let (split, _, _) = feed(&bytes, SessionOpts::default(), Limits::default());
        prop_assert_eq!(whole, split);
    }

    #[test]
    fn random_bytes_never_panic(dirs in prop::collection::vec((any::<bool>(), prop::collection::vec(any::<u8>(), 0..300)), 0..20), mid in any::<bool>()) {
        let segs: Vec<Seg> = dirs.into_iter().enumerate().map(|(i, (d, b))| {
            let dir = if d { Direction::ToServer } else { Direction::ToClient };
            Seg::Data(dir, Timestamp(i as u64), b)
        }).collect();
        check_bounded(&segs, mid);
    }

    #[test]
    fn mangled_real_streams_never_panic(
        which in 0..STREAMS.len(),
        flips in prop::collection::vec((any::<u16>(), any::<u16>(), any::<u8>()), 0..8),
        cut in any::<u16>(),
        gaps in prop::collection::vec((any::<u16>(), 1u64..5000), 0..4),
        mid in any::<bool>(),
    ) {
        let mut segs = load(STREAMS[which]);
        for (s, at, x) in flips {
            let n = segs.len();
            if let Some(Seg::Data(_, _, b)) = segs.get_mut(s as usize % n.max(1)) {
                if !b.is_empty() {
                    let i = at as usize % b.len();
                    b[i] ^= x.max(1);
                }
            }
        }
        for (at, len) in gaps {
            let n = segs.len().max(1);
            let i = at as usize % n;
            let dir = match segs.get(i) { Some(Seg::Data(d, _, _)) | Some(Seg::Gap(d, _, _)) => *d, None => Direction::ToServer };
            segs.insert(i, Seg::Gap(dir, Timestamp(0), len));
        }
        let keep = (cut as usize % (segs.len() + 1)).max(1);
        segs.truncate(keep);
        check_bounded(&segs, mid);
    }
}

fn check_bounded(segs: &[Seg], mid: bool) {
    let limits = Limits {
        max_message_len: 64 * 1024,
        ..Limits::default()
    };
    let (ev, d, p) = feed(segs, SessionOpts { midstream: mid }, limits.clone());
    assert!(p.buffered() <= dbtap_mysql::parser::max_inner_buffer(&limits));
    assert!(
        d.buffered() <= 2 * (limits.max_message_len + 64 + 4096),
        "driver buffered {}",
        d.buffered()
    );
    // Every response pairs with an earlier request.
    let _ = common::pairs(&ev);
}

#[test]
fn truncations_of_every_stream_at_every_byte_never_panic() {
    for name in STREAMS {
        let segs = load(name);
        let total: usize = segs
            .iter()
            .map(|s| match s {
                Seg::Data(_, _, b) => b.len(),
                _ => 0,
            })
            .sum();
        let step = (total / 200).max(1);
        let mut n = 0;
        while n < total {
            let mut left = n;
            let mut cut = Vec::new();
            for s in &segs {
                if let Seg::Data(d, ts, b) = s {
                    if left == 0 {
                        break;
                    }
                    let k = left.min(b.len());
                    cut.push(Seg::Data(*d, *ts, b[..k].to_vec()));
                    left -= k;
                }
            }
            let (ev, _, _) = feed(&cut, SessionOpts::default(), Limits::default());
            let _ = common::pairs(&ev);
            n += step;
        }
    }
}
