//! Property tests: chunking invariance on real streams and hand-made pipelines, and robustness
//! (random bytes, truncations, bit flips, random gaps): never panic, never hang, buffers stay
//! bounded.
mod common;

use common::{feed, load, Seg};
use dbtap_core::testing::{coalesce, proptest_cases, rechunk, timeless};
use dbtap_core::{Direction, Limits, SessionOpts, Timestamp};
use proptest::prelude::*;

const STREAMS: &[&str] = &[
    "scram_select_now",
    "scram_crud",
    "md5_login_pgadmin",
    "cancel_session",
    "copy_in",
    "rollback",
    "extended_query",
    "extended_errors_42P01",
    "ndpi_extended_0",
    "large_select",
    "long_result",
    "query_error_exit",
    "listen_notify",
    "greenhouse_1",
    "upgrade_tls",
    "bad_backend_message",
    "midstream_simple_query",
    "midstream_prepare_mismatch",
];

/// A hand-made session touching every message kind (startup, SCRAM, ParameterStatus,
/// simple and extended protocol, Describe, suspended portals, COPY both ways, notices,
/// notifications, FunctionCall, errors, Terminate), one segment per direction change.
fn synthetic_session() -> Vec<Seg> {
    use common::msg::{self, cstr, typed};
    let c = Direction::ToServer;
    let s = Direction::ToClient;
    let parts: Vec<(Direction, Vec<u8>)> = vec![
        (c, msg::ssl_request()),
        (s, b"N".to_vec()),
        (
            c,
            msg::startup(&[
                ("user", "u"),
                ("database", "d"),
                ("client_encoding", "LATIN1"),
            ]),
        ),
        (s, msg::auth(10, &[cstr("SCRAM-SHA-256"), vec![0]].concat())),
        (
            c,
            typed(
                b'p',
                &[
                    cstr("SCRAM-SHA-256"),
                    8u32.to_be_bytes().to_vec(),
                    b"n,,n=,r=".to_vec(),
                ]
                .concat(),
            ),
        ),
        (s, msg::auth(11, b"r=x,s=y,i=4096")),
        (c, typed(b'p', b"c=biws,r=x,p=z")),
        (
            s,
            [
                msg::auth(12, b"v=w"),
                msg::auth(0, &[]),
                msg::param_status("server_version", "17.0"),
                msg::param_status("client_encoding", "LATIN1"),
                msg::key_data(9, 9),
                msg::ready(b'I'),
            ]
            .concat(),
        ),
        (c, typed(b'Q', b"SELECT 'caf\xe9'; SELECT 2\0")),
        (
            s,
            [
                msg::row_desc("a"),
                msg::data_row(b"caf\xe9"),
                msg::complete("SELECT 1"),
                msg::notice("n"),
                msg::row_desc("b"),
                msg::data_row(b"2"),
                msg::complete("SELECT 1"),
                msg::ready(b'I'),
            ]
            .concat(),
        ),
        (
            c,
            [
                msg::parse("s1", "SELECT * FROM t WHERE a = $1", &[23]),
                msg::describe(b'S', "s1"),
                msg::sync(),
            ]
            .concat(),
        ),
        (
            s,
            [
                typed(b'1', &[]),
                typed(b't', &[0, 1, 0, 0, 0, 23]),
                msg::row_desc("a"),
                msg::ready(b'I'),
            ]
            .concat(),
        ),
        (c, msg::query("BEGIN")),
        (s, [msg::complete("BEGIN"), msg::ready(b'T')].concat()),
        (
            c,
            [
                msg::bind("p1", "s1", &[1], &[Some(&5i32.to_be_bytes())]),
                msg::describe(b'P', "p1"),
                msg::execute("p1", 2),
                msg::sync(),
            ]
            .concat(),
        ),
        (
            s,
            [
                typed(b'2', &[]),
                msg::row_desc("a"),
                msg::data_row(b"1"),
                msg::data_row(b"2"),
                typed(b's', &[]),
                msg::ready(b'T'),
            ]
            .concat(),
        ),
        (c, [msg::execute("p1", 2), msg::sync()].concat()),
        (
            s,
            [
                msg::data_row(b"3"),
                msg::complete("SELECT 1"),
                msg::ready(b'T'),
            ]
            .concat(),
        ),
        (c, msg::query("COPY t FROM STDIN")),
        (s, typed(b'G', &[0, 0, 1, 0, 0])),
        (
            c,
            [typed(b'd', b"1\n"), typed(b'd', b"2\n"), typed(b'c', &[])].concat(),
        ),
        (s, [msg::complete("COPY 2"), msg::ready(b'T')].concat()),
        (c, msg::query("COPY t TO STDOUT")),
        (
            s,
            [
                typed(b'H', &[0, 0, 1, 0, 0]),
                typed(b'd', b"1\n"),
                typed(b'd', b"2\n"),
                typed(b'c', &[]),
                msg::complete("COPY 2"),
                msg::ready(b'T'),
            ]
            .concat(),
        ),
        (c, msg::query("SELECT 1/0")),
        (
            s,
            [
                msg::error("ERROR", "22012", "division by zero"),
                msg::ready(b'E'),
            ]
            .concat(),
        ),
        (c, msg::query("ROLLBACK")),
        (
            s,
            [
                msg::complete("ROLLBACK"),
                msg::ready(b'I'),
                typed(b'A', &[0, 0, 0, 9, b'c', 0, b'p', 0]),
            ]
            .concat(),
        ),
        (
            c,
            typed(b'F', &[0, 0, 6, 62, 0, 0, 0, 1, 0, 0, 0, 1, b'7', 0, 0]),
        ),
        (
            s,
            [typed(b'V', &[0, 0, 0, 1, b'x']), msg::ready(b'I')].concat(),
        ),
        (c, msg::terminate()),
    ];
    parts
        .into_iter()
        .enumerate()
        .map(|(i, (d, b))| Seg::Data(d, Timestamp(i as u64 + 1), b))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(proptest_cases(128)))]

    #[test]
    fn chunking_a_session_of_every_message_kind(cuts in prop::collection::vec(any::<u16>(), 1..64)) {
        let segs = synthetic_session();
        let (whole, _, _) = feed(&segs, SessionOpts::default(), Limits::default());
        let (split, d, _) = feed(&rechunk(&segs, &cuts), SessionOpts::default(), Limits::default());
        prop_assert_eq!(&whole, &split);
        prop_assert_eq!(d.stats().stalls, 0);
    }

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
        let (split, d, _) = feed(&bytes, SessionOpts::default(), Limits::default());
        prop_assert_eq!(whole, split);
        prop_assert_eq!(d.stats().stalls, 0);
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
    fn plausible_messages_in_random_order_never_panic(
        msgs in prop::collection::vec((any::<bool>(), 0usize..TYPES.len(), prop::collection::vec(any::<u8>(), 0..40), any::<u8>()), 0..40),
        mid in any::<bool>(),
    ) {
        // Valid headers with random bodies and random lengths: exercises every handler.
        let segs: Vec<Seg> = msgs.into_iter().enumerate().map(|(i, (d, t, body, extra))| {
            let dir = if d { Direction::ToServer } else { Direction::ToClient };
            let mut m = vec![TYPES[t]];
            let len = (body.len() + 4 + (extra as usize % 3)) as u32;
            m.extend_from_slice(&len.to_be_bytes());
            m.extend_from_slice(&body);
            Seg::Data(dir, Timestamp(i as u64), m)
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

const TYPES: &[u8] = b"QPBEDCSHXFdcfpRKSZTDCIEN123tnsGHWdcVvA";

fn check_bounded(segs: &[Seg], mid: bool) {
    let limits = Limits {
        max_message_len: 64 * 1024,
        ..Limits::default()
    };
    let (ev, d, p) = feed(segs, SessionOpts { midstream: mid }, limits.clone());
    assert!(
        d.buffered() <= 2 * (limits.max_message_len + 64 + 4096),
        "driver buffered {}",
        d.buffered()
    );
    assert!(p.pending_operations() <= limits.max_pending_requests);
    // Every response pairs with an earlier request, once.
    let _ = common::pairs(&ev);
}

#[test]
fn synthetic_session_records() {
    let (ev, _, _) = feed(
        &synthetic_session(),
        SessionOpts::default(),
        Limits::default(),
    );
    assert_eq!(
        common::summary(&ev),
        vec![
            "1 login \"\" => Ok rows=None",
            "2 query \"SELECT 'café'\" => Ok rows=Some(1)",
            "3 query \"SELECT 2\" => Ok rows=Some(1)",
            "4 prepare \"SELECT * FROM t WHERE a = $1\" => Ok rows=None",
            "5 query \"BEGIN\" => Ok rows=None",
            "6 execute \"SELECT * FROM t WHERE a = $1\" => Ok rows=Some(3)",
            "7 query \"COPY t FROM STDIN\" => Ok rows=Some(2)",
            "8 query \"COPY t TO STDOUT\" => Ok rows=Some(2)",
            "9 query \"SELECT 1/0\" => Error rows=None err=Text(\"22012\")",
            "10 query \"ROLLBACK\" => Ok rows=None",
            "11 function_call \"function oid 1598\" => Ok rows=None",
            "12 logout \"\" => -",
        ]
    );
    let p = common::pairs(&ev);
    assert_eq!(p[3].1.as_ref().unwrap().param_count, Some(1));
    assert_eq!(p[2].1.as_ref().unwrap().warnings, Some(1));
}

#[test]
fn coarser_segments_give_the_same_records() {
    // Whole directions merged into few large segments: only times may differ.
    let synthetic = synthetic_session();
    for (name, segs) in STREAMS
        .iter()
        .map(|n| (*n, load(n)))
        .chain(std::iter::once(("synthetic", synthetic)))
    {
        let (a, _, _) = feed(&segs, SessionOpts::default(), Limits::default());
        let (b, _, _) = feed(&coalesce(&segs), SessionOpts::default(), Limits::default());
        assert_eq!(timeless(&a), timeless(&b), "{name}");
    }
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

#[test]
fn pending_operations_are_bounded_without_a_server() {
    // A client whose server side is never seen: requests pile up to the limit, the oldest are
    // emitted without answers, nothing grows without bound.
    let limits = Limits {
        max_pending_requests: 8,
        ..Limits::default()
    };
    let mut segs = vec![];
    for i in 0..100u64 {
        segs.push(Seg::Data(
            Direction::ToServer,
            Timestamp(i),
            common::msg::query(&format!("SELECT {i}")),
        ));
    }
    let (ev, _, p) = feed(&segs, SessionOpts { midstream: true }, limits);
    assert_eq!(common::pairs(&ev).len(), 100);
    assert_eq!(p.pending_operations(), 0);
}
