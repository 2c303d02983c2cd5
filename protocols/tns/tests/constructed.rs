//! Cases no shared capture shows, built from real packets and changed in one documented place
//! each: large-SDU framing, native encryption switched on, TCPS, connect data overflowing into a
//! DATA packet, a REFUSE with an ORA number. Every other test uses captures as they are.
mod common;

use common::{feed, load, pairs, unhex, Seg};
use dbtap_core::{DbEvent, Direction, Limits, SessionOpts, Status, Timestamp};
use dbtap_tns::parser::Phase;

fn data(dir: Direction, t: u64, hex: &str) -> Seg {
    Seg::Data(dir, Timestamp(t), unhex(hex))
}

/// Rewrite a 2-byte-length header as the 4-byte form (length, then type at byte 4).
fn large(pkt: &[u8]) -> Vec<u8> {
    let len = u16::from_be_bytes([pkt[0], pkt[1]]) as u32;
    let mut v = len.to_be_bytes().to_vec();
    v.extend_from_slice(&pkt[4..]);
    v
}

#[test]
fn large_sdu_headers_after_a_315_accept() {
    // sqlplus10g_select (junkie__oracle_select.pcap) with its ACCEPT turned into version 315
    // (the 4-byte SDU/TDU fields appended at 32/36) and every later packet header rewritten
    // with a 4-byte length: the operations must be the same.
    let segs = load("sqlplus10g_select");
    let mut out = Vec::new();
    let mut accepted = false;
    for s in &segs {
        let Seg::Data(d, ts, b) = s else {
            unreachable!()
        };
        // Every segment of this stream holds whole packets; check it.
        let mut pos = 0;
        let mut rebuilt = Vec::new();
        while pos < b.len() {
            let len = u16::from_be_bytes([b[pos], b[pos + 1]]) as usize;
            let pkt = &b[pos..pos + len];
            if pkt[4] == 2 {
                // ACCEPT: version 313 → 315, length 32 → 40, SDU 8192 / TDU 32767 as u32.
                let mut a = pkt.to_vec();
                a[8..10].copy_from_slice(&315u16.to_be_bytes());
                a.resize(32, 0);
                a.extend_from_slice(&8192u32.to_be_bytes());
                a.extend_from_slice(&32767u32.to_be_bytes());
                a[0..2].copy_from_slice(&40u16.to_be_bytes());
                rebuilt.extend_from_slice(&a);
                accepted = true;
            } else if accepted {
                rebuilt.extend_from_slice(&large(pkt));
            } else {
                rebuilt.extend_from_slice(pkt);
            }
            pos += len;
        }
        out.push(Seg::Data(*d, *ts, rebuilt));
    }
    let a = feed(&segs, SessionOpts::default(), Limits::default()).0;
    let b = feed(&out, SessionOpts::default(), Limits::default()).0;
    let ops = |ev: &[DbEvent]| {
        pairs(ev)
            .into_iter()
            .map(|(q, r)| (q.op, q.sql, r.map(|r| (r.status, r.rows, r.error))))
            .collect::<Vec<_>>()
    };
    assert_eq!(ops(&a).len(), 9);
    assert_eq!(ops(&a), ops(&b));
}

/// wswiki__11_sqldeveloper11_2016.pcapng frames 1, 4, 5, 6: CONNECT, ACCEPT, ANO request and
/// answer (encryption and integrity: algorithm 0, none).
const CONNECT: &str = "00dd000001000000013c012c0c412000ffff4f980000000100970046000000008181000000000000000000000000000000000000000000000000000020000020000000000000284445534352495054494f4e3d28434f4e4e4543545f444154413d285349443d6f72636c31316729284349443d2850524f4752414d3d53514c20446576656c6f7065722928484f53543d5f5f6a6462635f5f2928555345523d7669736f7229292928414444524553533d2850524f544f434f4c3d5443502928484f53543d31302e302e37322e3131332928504f52543d31353231292929";
const ACCEPT: &str = "0020000002000000013a0c412000ffff010000000020c1010000000000000000";
const ANO_REQ: &str = "009f0000060000000000deadbeef00950a2000000004000004000300000000000400050a20000000080001090909090909090900120001deadbeef00030000000400040001000200030001000300000000000400050a20000000020003e0e100020006fcff0002000200000000000400050a200000000c00010001080a0603020b0c0f10110003000200000000000400050a20000000060001000103040506";
const ANO_ANS: &str = "007f0000060000000000deadbeef0075000000000004000004000300000000000400050b20030000020006001f000e0001deadbeef000300000002000400010001000200000000000400050b20030000020006fbff0002000200000000000400050b20030000010002000003000200000000000400050b2003000001000200";

#[test]
fn ano_without_encryption_goes_on_and_with_encryption_stops_reading() {
    let auth = load("sqldeveloper11g")
        .into_iter()
        .skip(4)
        .collect::<Vec<_>>();
    let run = |answer: &str| {
        let mut segs = vec![
            data(Direction::ToServer, 1, CONNECT),
            data(Direction::ToClient, 2, ACCEPT),
            data(Direction::ToServer, 3, ANO_REQ),
            data(Direction::ToClient, 4, answer),
        ];
        segs.extend(auth.iter().cloned());
        feed(&segs, SessionOpts::default(), Limits::default())
    };
    let (ev, _, p) = run(ANO_ANS);
    assert_eq!(p.phase(), Phase::Data);
    assert!(!ev.iter().any(|e| matches!(e, DbEvent::Encrypted)));
    assert!(pairs(&ev).len() > 40);

    // The encryption service's chosen algorithm (its type-2 sub-packet, `0001 0002 00`, the
    // third service of the answer) set to 17.
    let service2 = "0002000200000000000400050b200300000100020000";
    assert!(ANO_ANS.contains(service2));
    let on = ANO_ANS.replacen(service2, "0002000200000000000400050b200300000100021100", 1);
    let (ev, _, p) = run(&on);
    assert_eq!(p.phase(), Phase::Encrypted);
    assert!(ev.iter().any(|e| matches!(e, DbEvent::Encrypted)));
    let pr = pairs(&ev);
    // One login (what the CONNECT said), no statements: the rest is opaque.
    assert_eq!(pr.len(), 1);
    let l = pr[0].0.login.as_deref().unwrap();
    assert_eq!(l.database.as_deref(), Some("orcl11g"));
    assert_eq!(l.user, None);
}

#[test]
fn tcps_is_reported_as_encrypted() {
    // A TLS 1.2 ClientHello record header and handshake type as a client's first bytes.
    let segs = vec![data(
        Direction::ToServer,
        1,
        "160301002f0100002b0303000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f00000200ff0100",
    )];
    let (ev, d, _) = feed(&segs, SessionOpts::default(), Limits::default());
    assert!(ev.iter().any(|e| matches!(e, DbEvent::Encrypted)));
    let pr = pairs(&ev);
    assert_eq!(pr.len(), 1);
    assert!(pr[0].0.attributes.contains(&("tns".into(), "tcps".into())));
    assert!(matches!(d.state(), dbtap_core::DriverState::Upgraded(_)));
}

#[test]
fn connect_data_in_the_next_data_packet() {
    // The CONNECT of wswiki__11_sqldeveloper11_2016.pcapng frame 1 cut after its fixed part
    // (0x46 = 70 bytes; the data length field still says 0x97), the descriptor sent in a DATA
    // packet after it, as clients do when it does not fit.
    let full = unhex(CONNECT);
    let mut head = full[..70].to_vec();
    head[0..2].copy_from_slice(&70u16.to_be_bytes());
    let desc = &full[70..];
    let mut dpkt = ((desc.len() + 10) as u16).to_be_bytes().to_vec();
    dpkt.extend_from_slice(&[0, 0, 6, 0, 0, 0, 0, 0]);
    dpkt.extend_from_slice(desc);
    let segs = vec![
        Seg::Data(Direction::ToServer, Timestamp(1), head),
        Seg::Data(Direction::ToServer, Timestamp(2), dpkt),
        data(Direction::ToClient, 3, ACCEPT),
    ];
    let pr = pairs(&feed(&segs, SessionOpts::default(), Limits::default()).0);
    assert_eq!(pr.len(), 1);
    let l = pr[0].0.login.as_deref().unwrap();
    assert_eq!(l.database.as_deref(), Some("orcl11g"));
    assert_eq!(l.client_program.as_deref(), Some("SQL Developer"));
}

#[test]
fn refuse_with_an_error_number() {
    // The listener's REFUSE of deepflow__…_tns_port1533.pcap with ERR=0 replaced by ERR=12514.
    let segs = load("refuse");
    let mut out = Vec::new();
    for s in segs {
        let Seg::Data(d, ts, b) = s else {
            unreachable!()
        };
        if d == Direction::ToClient && b.windows(6).any(|w| w == b"(ERR=0") {
            let text_at = 12;
            let text = String::from_utf8(b[text_at..].to_vec()).unwrap();
            let text = text.replace("(ERR=0)", "(ERR=12514)");
            let mut p = ((text.len() + 12) as u16).to_be_bytes().to_vec();
            p.extend_from_slice(&b[2..10]);
            p.extend_from_slice(&(text.len() as u16).to_be_bytes());
            p.extend_from_slice(text.as_bytes());
            out.push(Seg::Data(d, ts, p));
        } else {
            out.push(Seg::Data(d, ts, b));
        }
    }
    let pr = pairs(&feed(&out, SessionOpts::default(), Limits::default()).0);
    let r = pr[0].1.as_ref().unwrap();
    assert_eq!(r.status, Status::Error);
    assert_eq!(
        r.error.as_ref().unwrap().code,
        dbtap_core::ErrorCode::Text("ORA-12514".into())
    );
}

#[test]
fn long_chunked_statement_is_cut_and_flagged() {
    // junkie__oracle_insert.pcap with a statement limit of 20 bytes: the INSERT (65 bytes in
    // 64 + 1 byte chunks) is kept to 20 bytes and flagged truncated.
    let limits = Limits {
        max_statement_len: 20,
        ..Limits::default()
    };
    let ev = feed(&load("sqlplus10g_insert"), SessionOpts::default(), limits).0;
    let p = pairs(&ev);
    let (q, _) = p
        .iter()
        .find(|(q, _)| q.sql.as_deref().is_some_and(|s| s.starts_with("INSERT")))
        .unwrap();
    assert_eq!(q.sql.as_deref(), Some("INSERT INTO regions "));
    assert_eq!(
        q.completeness,
        dbtap_core::Completeness::Truncated {
            kept: 20,
            original: 65
        }
    );
}
