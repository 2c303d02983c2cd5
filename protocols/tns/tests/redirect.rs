//! The REDIRECT finder the pipeline runs on the server's bytes (`dbtap_tns::redirect_in`), on
//! the real REDIRECT of `wswiki__TNS_Oracle4.pcap` (stream file `redirect`, frame 6) cut at
//! every byte, and on the bare-REDIRECT form of newer listeners, where the data follows in a
//! DATA packet; the session parser reads the same address from both forms.
mod common;

use common::{load, pairs, Seg};
use dbtap_core::{Direction, Limits, Redirect, RedirectScan, SessionOpts};
use dbtap_tns::redirect_in;

/// The client's CONNECT and the listener's REDIRECT (63 bytes) of the real capture.
fn oracle4() -> (Vec<u8>, Vec<u8>) {
    let segs = load("redirect");
    let data = |want: Direction| {
        segs.iter()
            .find_map(|s| match s {
                Seg::Data(d, _, b) if *d == want => Some(b.clone()),
                _ => None,
            })
            .unwrap()
    };
    (data(Direction::ToServer), data(Direction::ToClient))
}

fn to(host: &str, port: u16) -> RedirectScan {
    RedirectScan::Found(Redirect {
        host: host.into(),
        port,
    })
}

/// The address of the real REDIRECT, and the connect descriptor of the real CONNECT.
const ADDRESS: &[u8] = b"(ADDRESS=(PROTOCOL=tcp)(HOST=192.168.0.4)(PORT=2143))";

/// A REDIRECT as newer listeners send it (python-oracledb's thin client reads it so: the
/// REDIRECT carries only the 2-byte data length; the data is read from the next packet, a DATA
/// packet, after its 2-byte data flags; the data is the address, a NUL, then the connect data
/// the client sends to the new address). Both packets have 2-byte lengths: no ACCEPT yet.
fn bare_form(data: &[u8], data_flags: u16) -> Vec<u8> {
    let mut p = vec![0x00, 0x0a, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00];
    p.extend_from_slice(&(data.len() as u16).to_be_bytes());
    let len = 10 + data.len();
    p.extend_from_slice(&[
        (len >> 8) as u8,
        len as u8,
        0x00,
        0x00,
        0x06,
        0x00,
        0x00,
        0x00,
    ]);
    p.extend_from_slice(&data_flags.to_be_bytes());
    p.extend_from_slice(data);
    p
}

/// Redirect data in the newer form: the real address, a NUL, the real client's descriptor.
fn address_then_connect_data() -> Vec<u8> {
    let (connect, _) = oracle4();
    let off = usize::from(u16::from_be_bytes([connect[26], connect[27]]));
    let mut data = ADDRESS.to_vec();
    data.push(0);
    data.extend_from_slice(&connect[off..]);
    data
}

#[test]
fn the_real_redirect_whole_and_coalesced() {
    let (_, r) = oracle4();
    assert_eq!(r.len(), 63);
    assert_eq!(&r[10..], ADDRESS);
    assert_eq!(redirect_in(&r), to("192.168.0.4", 2143));
    // With the start of another packet in the same payload.
    let mut more = r.clone();
    more.extend_from_slice(&[0x00, 0x0b, 0x00, 0x00, 0x0c]);
    assert_eq!(redirect_in(&more), to("192.168.0.4", 2143));
}

#[test]
fn the_real_redirect_cut_at_every_byte_asks_for_the_rest() {
    let (_, r) = oracle4();
    for k in 1..r.len() {
        // Before the header is whole, the header; then the packet's exact length.
        let want = if k < 8 { 8 } else { r.len() };
        assert_eq!(
            redirect_in(&r[..k]),
            RedirectScan::NeedMore(want),
            "cut at {k}"
        );
    }
}

#[test]
fn the_bare_form_whole_and_cut_at_every_byte() {
    let data = address_then_connect_data();
    for flags in [0x0000, 0x0040] {
        let p = bare_form(&data, flags);
        assert_eq!(redirect_in(&p), to("192.168.0.4", 2143));
        for k in 1..p.len() {
            let want = match k {
                0..8 => 8,
                8..10 => 10,
                10..18 => 18,
                _ => p.len(),
            };
            assert_eq!(
                redirect_in(&p[..k]),
                RedirectScan::NeedMore(want),
                "cut at {k}"
            );
        }
    }
}

#[test]
fn the_session_parser_reads_the_address_of_either_form_at_any_cut() {
    let (connect, r) = oracle4();
    let bare = bare_form(&address_then_connect_data(), 0x0040);
    for answer in [r, bare] {
        for k in 1..answer.len() {
            let segs = [
                Seg::Data(
                    Direction::ToServer,
                    dbtap_core::Timestamp(1),
                    connect.clone(),
                ),
                Seg::Data(
                    Direction::ToClient,
                    dbtap_core::Timestamp(2),
                    answer[..k].to_vec(),
                ),
                Seg::Data(
                    Direction::ToClient,
                    dbtap_core::Timestamp(3),
                    answer[k..].to_vec(),
                ),
            ];
            let ev = common::feed(&segs, SessionOpts::default(), Limits::default()).0;
            let p = pairs(&ev);
            assert_eq!(p.len(), 1, "cut at {k}");
            let l = p[0].0.login.as_deref().unwrap();
            let redirect_to = l.attributes.iter().find(|(n, _)| n == "redirect_to");
            assert_eq!(
                redirect_to.map(|(_, v)| v.as_str()),
                Some("192.168.0.4:2143"),
                "cut at {k}"
            );
            assert_eq!(l.database.as_deref(), Some("void.domain"));
        }
    }
}
