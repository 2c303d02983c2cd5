//! Re-executions by cursor id on the real bytes of python-oracledb 26.1 thin
//! (`fixtures/tns/live_thin_session`; streams `thin_reexecute` = its 19c-like connection, tcp
//! stream 0, and `thin_reexecute_23ai` = its 23ai-like connection, tcp stream 2, with tokens).
mod common;

use common::{feed, load, pairs, run, summary, Seg};
use dbtap_core::{Completeness, Limits, ParamValue, Request, SessionOpts};

fn attr<'a>(q: &'a Request, k: &str) -> Option<&'a str> {
    dbtap_core::testing::attribute(&q.attributes, k)
}

fn values(q: &Request) -> Vec<String> {
    q.params
        .iter()
        .flatten()
        .map(|p| match &p.value {
            ParamValue::Text(t) => t.clone(),
            other => format!("{other:?}"),
        })
        .collect()
}

const BY_ID: &str = "select id, name from patient where id = :id";
const UPDATE: &str = "update beds set ward = :ward, free = :free where id = :id";

#[test]
fn reexecutions_get_the_text_of_their_cursor() {
    for name in ["thin_reexecute", "thin_reexecute_23ai"] {
        let ev = run(name);
        let p = pairs(&ev);
        let s = summary(&ev);
        // login, 6-bind SELECT, UPDATE, INSERT, ORA-00942, then the statement cache at work.
        assert_eq!(
            s[5..],
            [
                format!("execute {BY_ID:?} Ok rows=Some(2)"),
                format!("execute {BY_ID:?} Ok rows=Some(2)"),
                format!("execute {BY_ID:?} Ok rows=Some(2)"),
                format!("execute {BY_ID:?} Ok rows=Some(2)"),
                format!("execute {UPDATE:?} Ok rows=Some(1)"),
                format!("execute {UPDATE:?} Ok rows=Some(1)"),
                "commit \"\" Ok rows=None".to_string(),
                "logout \"\" Ok rows=None".to_string(),
            ],
            "{name}"
        );
        let reexec: Vec<&Request> = p[6..11].iter().map(|(q, _)| q).collect();
        // Frames 26, 28 (re-execute and fetch, 78), 30 (OALL8 on cursor 4 without text, the
        // bind now VARCHAR2), 32, 34 (re-execute, 4, of the UPDATE's cursor 2).
        let expect = [
            ("4", vec!["1002"]),
            ("4", vec!["1003"]),
            ("4", vec!["1004"]),
            ("2", vec!["外科", "1", "4"]),
            ("2", vec!["儿科", "0", "5"]),
        ];
        for (q, (cursor, vals)) in reexec.iter().zip(expect) {
            assert_eq!(attr(q, "cursor"), Some(cursor), "{name}");
            assert_eq!(values(q), vals, "{name}");
            assert_eq!(q.completeness, Completeness::Complete, "{name}");
        }
        assert_eq!(reexec[2].params.as_ref().unwrap()[0].type_name, "VARCHAR2");
        assert_eq!(reexec[0].params.as_ref().unwrap()[0].type_name, "NUMBER");
        // The statements that carried their text have no cursor attribute.
        assert!(p[..6].iter().all(|(q, _)| attr(q, "cursor").is_none()));
    }
}

/// Client segment whose payload contains `needle`, and the server's answer after it.
fn find(segs: &[Seg], needle: &[u8]) -> usize {
    segs.iter()
        .position(|s| match s {
            Seg::Data(_, _, d) => d.windows(needle.len()).any(|w| w == needle),
            _ => false,
        })
        .unwrap()
}

#[test]
fn closed_cursor_is_forgotten() {
    // The re-execution of cursor 2 (frame 32 and its answer) replayed after the close-cursors
    // piggy-back that closed 1, 3 and 2 (frame 36 and its answer): no text any more.
    let segs = load("thin_reexecute");
    let re = find(&segs, &[0x03, 0x04, 0x0b, 0x01, 0x02]);
    let close = find(&segs, &[0x11, 0x69, 0x0d]);
    let mut moved: Vec<Seg> = segs[..=close + 1].to_vec();
    moved.extend_from_slice(&segs[re..re + 2]);
    moved.extend_from_slice(&segs[close + 2..]);
    let (ev, _, _) = feed(&moved, SessionOpts::default(), Limits::default());
    let p = pairs(&ev);
    let (q, r) = &p[p.len() - 2];
    assert_eq!(q.sql, None);
    assert_eq!(attr(q, "cursor"), Some("2"));
    assert!(matches!(q.completeness, Completeness::Partial { .. }));
    assert!(r.is_some());
    // Cursor 4, not closed by that piggy-back, is still known: the order as recorded gives
    // its text (see above).
}

#[test]
fn picked_up_midstream_reexecutions_stay_partial() {
    // From the first re-execution on (frame 26): the parse of cursor 4 was not seen.
    let segs = load("thin_reexecute");
    let first = find(&segs, &[0x03, 0x4e, 0x08]);
    let opts = SessionOpts { midstream: true };
    let (ev, _, _) = feed(&segs[first..], opts, Limits::default());
    let p = pairs(&ev);
    let cursors: Vec<Option<&str>> = p.iter().map(|(q, _)| attr(q, "cursor")).collect();
    assert_eq!(
        cursors[..5],
        [Some("4"), Some("4"), Some("4"), Some("2"), Some("2")]
    );
    for (q, _) in &p[..5] {
        assert_eq!(q.sql, None);
        assert!(matches!(q.completeness, Completeness::Partial { .. }));
    }
}
