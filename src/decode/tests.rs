//! Decoder tests: hand-built frames annotated field by field (IEEE 802.3/802.1Q, `pcap-linktype(7)`
//! for SLL/SLL2/NULL/LOOP, RFC 791, RFC 8200, RFC 9293), real captures against tshark's truth,
//! a differential test against etherparse's packet builder, and robustness proptests.

use super::*;
use crate::capture::tests::{fixture, read_all};
use crate::capture::{CaptureReader, Timestamp};
use std::str::FromStr;

fn frame(link: LinkType, data: &[u8]) -> Frame<'_> {
    Frame {
        ts: Timestamp(1_000_000_000),
        origlen: data.len() as u32,
        link,
        interface: 0,
        data,
        block: None,
    }
}

fn at(ts_s: u64, link: LinkType, data: &[u8]) -> Frame<'_> {
    Frame {
        ts: Timestamp::from_parts(ts_s, 0),
        ..frame(link, data)
    }
}

fn tcp_of(d: Decoded<'_>) -> TcpPacket<'_> {
    match d {
        Decoded::Tcp(t) => t,
        other => panic!("expected TCP, got {other:?}"),
    }
}

fn ip4(s: &str) -> IpAddr {
    IpAddr::from_str(s).unwrap()
}

/// Ethernet II + IPv4 with a 4-byte option + TCP with 12 bytes of options + "hi" + padding.
#[rustfmt::skip]
const ETH_IPV4_TCP: &[u8] = &[
    // Ethernet (IEEE 802.3 §3.1.1)
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55,   // destination MAC
    0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb,   // source MAC
    0x08, 0x00,                           // ethertype IPv4
    // IPv4 (RFC 791 §3.1), offset 14
    0x46,                                 // version 4, IHL 6 (24 bytes: one option word)
    0x00,                                 // DSCP/ECN
    0x00, 0x3a,                           // total length 58 = 24 (IP) + 32 (TCP) + 2 (payload)
    0x12, 0x34,                           // identification
    0x40, 0x00,                           // flags DF, fragment offset 0
    0x40,                                 // TTL 64
    0x06,                                 // protocol TCP
    0x00, 0x00,                           // header checksum (not verified)
    0x0a, 0x00, 0x00, 0x01,               // source 10.0.0.1
    0x0a, 0x00, 0x00, 0x02,               // destination 10.0.0.2
    0x01, 0x01, 0x00, 0x00,               // option: NOP, NOP, EOL, pad
    // TCP (RFC 9293 §3.1), offset 38
    0x0c, 0xea,                           // source port 3306
    0xd4, 0x31,                           // destination port 54321
    0x00, 0x00, 0x01, 0x00,               // sequence number 256
    0x00, 0x00, 0x02, 0x00,               // acknowledgment number 512
    0x80,                                 // data offset 8 words (32 bytes), reserved
    0x18,                                 // flags PSH + ACK
    0x01, 0x00,                           // window 256
    0x00, 0x00,                           // checksum (not verified)
    0x00, 0x00,                           // urgent pointer
    0x01, 0x01, 0x08, 0x0a,               // options: NOP, NOP, timestamps kind 8 len 10
    0x00, 0x00, 0x00, 0x01,               //   TSval 1
    0x00, 0x00, 0x00, 0x02,               //   TSecr 2
    b'h', b'i',                           // payload "hi"
    0x00, 0x00, 0x00, 0x00,               // Ethernet padding (not payload)
];

/// Offset of the IPv4 header in [`ETH_IPV4_TCP`].
const IP_AT: usize = 14;

fn eth_ipv4_tcp() -> Vec<u8> {
    ETH_IPV4_TCP.to_vec()
}

#[test]
fn ethernet_ipv4_options_tcp_options_padding_trimmed() {
    let f = eth_ipv4_tcp();
    let mut d = Decoder::default();
    let t = tcp_of(d.decode(&frame(LinkType::Ethernet, &f)));
    assert_eq!(
        t,
        TcpPacket {
            src: ip4("10.0.0.1"),
            dst: ip4("10.0.0.2"),
            sport: 3306,
            dport: 54321,
            seq: 256,
            ack: 512,
            flags: TcpFlags {
                psh: true,
                ack: true,
                ..TcpFlags::default()
            },
            window: 256,
            payload: b"hi",
            missing: 0,
        }
    );
    let s = d.stats();
    assert_eq!((s.frames, s.link_ethernet, s.ipv4, s.tcp), (1, 1, 1, 1));
    assert_eq!(
        (s.vlan_tagged, s.truncated_by_snaplen, s.dropped_total()),
        (0, 0, 0)
    );
}

/// Inserts VLAN tags (IEEE 802.1Q §9.3: TPID 2 bytes, TCI 2 bytes) after the MAC addresses.
fn with_tags(f: &[u8], tpids: &[u16]) -> Vec<u8> {
    let mut out = f[..12].to_vec();
    for (i, tpid) in tpids.iter().enumerate() {
        out.extend_from_slice(&tpid.to_be_bytes());
        // TCI: PCP 0, DEI 0, VLAN id 100 + i.
        out.extend_from_slice(&(100 + i as u16).to_be_bytes());
    }
    out.extend_from_slice(&f[12..]);
    out
}

#[test]
fn vlan_qinq_and_stacks() {
    let f = eth_ipv4_tcp();
    let mut d = Decoder::default();
    for tags in [
        &[0x8100][..],
        &[0x88a8, 0x8100],
        &[0x9100, 0x9100, 0x8100],
        &[0x8100; MAX_VLAN_TAGS],
    ] {
        let g = with_tags(&f, tags);
        assert_eq!(
            tcp_of(d.decode(&frame(LinkType::Ethernet, &g))).payload,
            b"hi"
        );
    }
    assert_eq!(d.stats().vlan_tagged, 4);
    let g = with_tags(&f, &[0x8100; MAX_VLAN_TAGS + 1]);
    assert_eq!(
        d.decode(&frame(LinkType::Ethernet, &g)),
        Decoded::Dropped(DropReason::VlanTooDeep)
    );
    // A tag cut off in the middle.
    let g = with_tags(&f, &[0x8100]);
    assert_eq!(
        d.decode(&frame(LinkType::Ethernet, &g[..16])),
        Decoded::Dropped(DropReason::LinkTruncated)
    );
    assert_eq!(d.stats().dropped(DropReason::VlanTooDeep), 1);
    assert_eq!(d.stats().dropped(DropReason::LinkTruncated), 1);
}

#[test]
fn linux_cooked_headers() {
    let ip = &eth_ipv4_tcp()[IP_AT..];
    #[rustfmt::skip]
    let sll_hdr: [u8; 16] = [
        0x00, 0x04,                                     // packet type 4: sent by us
        0x00, 0x01,                                     // ARPHRD_ETHER
        0x00, 0x06,                                     // link-layer address length 6
        0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0x00, 0x00, // address, padded to 8
        0x08, 0x00,                                     // protocol: IPv4 ethertype
    ];
    #[rustfmt::skip]
    let sll2_hdr: [u8; 20] = [
        0x86, 0xdd,                                     // protocol: IPv6 ethertype (patched below)
        0x00, 0x00,                                     // reserved
        0x00, 0x00, 0x00, 0x02,                         // interface index 2
        0x00, 0x01,                                     // ARPHRD_ETHER
        0x00,                                           // packet type 0: to us
        0x06,                                           // address length 6
        0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0x00, 0x00, // address
    ];
    let mut d = Decoder::default();
    let f = [&sll_hdr[..], ip].concat();
    assert_eq!(
        tcp_of(d.decode(&frame(LinkType::LinuxSll, &f))).payload,
        b"hi"
    );
    let mut h2 = sll2_hdr;
    h2[..2].copy_from_slice(&[0x08, 0x00]);
    let f = [&h2[..], ip].concat();
    assert_eq!(
        tcp_of(d.decode(&frame(LinkType::LinuxSll2, &f))).sport,
        3306
    );
    // SLL carrying a VLAN tag the kernel did not strip: protocol 0x8100, then TCI + ethertype.
    let mut hv = sll_hdr;
    hv[14..].copy_from_slice(&[0x81, 0x00]);
    let f = [&hv[..], &[0x00, 0x07, 0x08, 0x00], ip].concat();
    assert_eq!(
        tcp_of(d.decode(&frame(LinkType::LinuxSll, &f))).payload,
        b"hi"
    );
    // ARP over SLL: not TCP. A netlink SLL frame (ARPHRD 824): not TCP.
    let mut ha = sll_hdr;
    ha[14..].copy_from_slice(&[0x08, 0x06]);
    assert_eq!(d.decode(&frame(LinkType::LinuxSll, &ha)), Decoded::NotTcp);
    let mut hn = sll_hdr;
    hn[2..4].copy_from_slice(&824u16.to_be_bytes());
    assert_eq!(
        d.decode(&frame(LinkType::LinuxSll, &[&hn[..], ip].concat())),
        Decoded::NotTcp
    );
    assert_eq!(
        d.decode(&frame(LinkType::LinuxSll2, &sll2_hdr[..19])),
        Decoded::Dropped(DropReason::LinkTruncated)
    );
    let s = d.stats();
    assert_eq!((s.link_sll, s.link_sll2, s.tcp, s.non_tcp), (4, 2, 3, 2));
}

#[test]
fn null_loop_and_raw() {
    let ip = &eth_ipv4_tcp()[IP_AT..];
    let v6 = v6_packet(&[], b"v6");
    let mut d = Decoder::default();
    // NULL, family 2 written little-endian (x86 writer).
    let f = [&[2, 0, 0, 0][..], ip].concat();
    assert_eq!(tcp_of(d.decode(&frame(LinkType::Null, &f))).payload, b"hi");
    // NULL, family 2 written big-endian (SPARC/PowerPC writer): the swap is detected.
    let f = [&[0, 0, 0, 2][..], ip].concat();
    assert_eq!(tcp_of(d.decode(&frame(LinkType::Null, &f))).payload, b"hi");
    // NULL, IPv6 as FreeBSD (28) and Darwin (30) write it.
    for fam in [24u32, 28, 30] {
        let f = [&fam.to_le_bytes()[..], &v6].concat();
        assert_eq!(tcp_of(d.decode(&frame(LinkType::Null, &f))).payload, b"v6");
    }
    // NULL, unknown family 7 (e.g. OSI): not TCP.
    let f = [&[7, 0, 0, 0][..], ip].concat();
    assert_eq!(d.decode(&frame(LinkType::Null, &f)), Decoded::NotTcp);
    // LOOP: network byte order always.
    let f = [&[0, 0, 0, 2][..], ip].concat();
    assert_eq!(tcp_of(d.decode(&frame(LinkType::Loop, &f))).payload, b"hi");
    // Raw: version nibble picks v4/v6; LINKTYPE_IPV4/IPV6 are fixed.
    assert_eq!(tcp_of(d.decode(&frame(LinkType::Raw, ip))).payload, b"hi");
    assert_eq!(tcp_of(d.decode(&frame(LinkType::Raw, &v6))).payload, b"v6");
    assert_eq!(tcp_of(d.decode(&frame(LinkType::Ipv4, ip))).payload, b"hi");
    assert_eq!(tcp_of(d.decode(&frame(LinkType::Ipv6, &v6))).payload, b"v6");
    assert_eq!(
        d.decode(&frame(LinkType::Ipv4, &v6)),
        Decoded::Dropped(DropReason::IpBadVersion)
    );
    assert_eq!(
        d.decode(&frame(LinkType::Raw, &[0x55])),
        Decoded::Dropped(DropReason::IpBadVersion)
    );
    assert_eq!(d.decode(&frame(LinkType::Other(147), ip)), Decoded::NotTcp);
    let s = d.stats();
    assert_eq!(
        (
            s.link_null,
            s.link_loop,
            s.link_raw,
            s.link_ipv4,
            s.link_ipv6,
            s.link_other
        ),
        (6, 1, 3, 2, 1, 1)
    );
}

/// A TCP header (20 bytes, no options) with ports 1111 → 2222, seq 7, ack 9, flags ACK.
#[rustfmt::skip]
const TCP_HDR: [u8; 20] = [
    0x04, 0x57,             // source port 1111
    0x08, 0xae,             // destination port 2222
    0x00, 0x00, 0x00, 0x07, // seq 7
    0x00, 0x00, 0x00, 0x09, // ack 9
    0x50, 0x10,             // data offset 5, flags ACK
    0xff, 0xff,             // window 65535
    0x00, 0x00, 0x00, 0x00, // checksum, urgent pointer
];

/// An IPv6 packet (RFC 8200 §3) fd00::1 → fd00::2 with the given extension headers (already
/// encoded, each with its Next Header byte to be patched) and a TCP segment carrying `payload`.
fn v6_packet(exts: &[(u8, Vec<u8>)], payload: &[u8]) -> Vec<u8> {
    let mut body = vec![];
    for (i, (_, h)) in exts.iter().enumerate() {
        let mut h = h.clone();
        // Next Header of this ext header = type of the following one, or TCP.
        h[0] = exts.get(i + 1).map(|e| e.0).unwrap_or(6);
        body.extend_from_slice(&h);
    }
    body.extend_from_slice(&TCP_HDR);
    body.extend_from_slice(payload);
    let first = exts.first().map(|e| e.0).unwrap_or(6);
    let mut p = vec![
        0x60, 0x00, 0x00, 0x00, // version 6, traffic class 0, flow label 0
    ];
    p.extend_from_slice(&(body.len() as u16).to_be_bytes()); // payload length
    p.push(first); // next header
    p.push(64); // hop limit
    p.extend_from_slice(&Ipv6Addr::from_str("fd00::1").unwrap().octets());
    p.extend_from_slice(&Ipv6Addr::from_str("fd00::2").unwrap().octets());
    p.extend_from_slice(&body);
    p
}

#[test]
fn ipv6_extension_headers() {
    // Hop-by-hop (8 bytes: NH, len 0, PadN 4), Routing (16 bytes: len 1), Destination options
    // (8 bytes), AH (RFC 4302: payload len 4 → (4 + 2) * 4 = 24 bytes).
    let hbh = vec![0, 0, 1, 4, 0, 0, 0, 0];
    let mut rt = vec![0, 1, 0, 0, 0, 0, 0, 0];
    rt.extend_from_slice(&[0; 8]);
    let dst = vec![0, 0, 1, 4, 0, 0, 0, 0];
    let mut ah = vec![0, 4, 0, 0];
    ah.extend_from_slice(&[0; 20]);
    let p = v6_packet(&[(0, hbh), (43, rt), (60, dst), (51, ah)], b"payload");
    let mut d = Decoder::default();
    let t = tcp_of(d.decode(&frame(LinkType::Raw, &p)));
    assert_eq!(t.src, ip4("fd00::1"));
    assert_eq!(t.dst, ip4("fd00::2"));
    assert_eq!((t.sport, t.dport, t.seq, t.ack), (1111, 2222, 7, 9));
    assert_eq!(t.payload, b"payload");
    // ESP (50) stops the walk: not TCP. No Next Header (59): not TCP.
    let mut esp = p.clone();
    esp[6] = 50;
    assert_eq!(d.decode(&frame(LinkType::Raw, &esp)), Decoded::NotTcp);
    // A routing header whose length runs past the packet.
    let mut bad = v6_packet(&[(43, vec![0, 200, 0, 0, 0, 0, 0, 0])], b"");
    assert_eq!(
        d.decode(&frame(LinkType::Raw, &bad)),
        Decoded::Dropped(DropReason::Ipv6ExtChain)
    );
    // …and when the frame was cut by the snaplen, the same is a truncation.
    bad.truncate(44);
    let cut = Frame {
        origlen: 200,
        ..frame(LinkType::Raw, &bad)
    };
    assert_eq!(d.decode(&cut), Decoded::Dropped(DropReason::IpTruncated));
    // 17 destination-options headers: over MAX_IPV6_EXT_HEADERS.
    let many: Vec<_> = (0..17)
        .map(|_| (60u8, vec![0, 0, 1, 4, 0, 0, 0, 0]))
        .collect();
    assert_eq!(
        d.decode(&frame(LinkType::Raw, &v6_packet(&many, b""))),
        Decoded::Dropped(DropReason::Ipv6ExtChain)
    );
}

#[test]
fn snaplen_cut_sets_missing() {
    let f = eth_ipv4_tcp();
    let mut d = Decoder::default();
    // Cut after 1 payload byte: 1 of 2 captured, 1 missing.
    let cut = Frame {
        origlen: f.len() as u32,
        ..frame(LinkType::Ethernet, &f[..IP_AT + 24 + 32 + 1])
    };
    let t = tcp_of(d.decode(&cut));
    assert_eq!((t.payload, t.missing), (&b"h"[..], 1));
    assert_eq!(d.stats().truncated_by_snaplen, 1);
    // Cut inside the TCP options: the header is unusable.
    let cut = Frame {
        origlen: f.len() as u32,
        ..frame(LinkType::Ethernet, &f[..IP_AT + 24 + 25])
    };
    assert_eq!(d.decode(&cut), Decoded::Dropped(DropReason::TcpTruncated));
    // Cut inside the IP header, and an empty frame.
    let cut = Frame {
        origlen: f.len() as u32,
        ..frame(LinkType::Ethernet, &f[..IP_AT + 10])
    };
    assert_eq!(d.decode(&cut), Decoded::Dropped(DropReason::IpTruncated));
    assert_eq!(
        d.decode(&frame(LinkType::Ethernet, &[])),
        Decoded::Dropped(DropReason::LinkTruncated)
    );
    // Not cut by the snaplen, but the IP length promises more than the frame holds: short frame.
    let t = tcp_of(d.decode(&frame(LinkType::Ethernet, &f[..IP_AT + 24 + 32])));
    assert_eq!((t.payload.len(), t.missing), (0, 2));
    assert_eq!(d.stats().short_frames, 1);
}

#[test]
fn tso_zero_total_length_trusts_the_capture() {
    let mut f = eth_ipv4_tcp();
    f.truncate(f.len() - 4); // no Ethernet padding on an outgoing super-packet
    f.extend_from_slice(&[b'!'; 3000]);
    f[IP_AT + 2..IP_AT + 4].copy_from_slice(&[0, 0]); // total length 0 (Linux TSO / BIG TCP)
    let mut d = Decoder::default();
    let t = tcp_of(d.decode(&frame(LinkType::Ethernet, &f)));
    assert_eq!((t.payload.len(), t.missing), (3002, 0));
    assert_eq!(d.stats().ipv4_zero_len, 1);
    // IPv6 payload length 0 without a jumbo option (BIG TCP): same rule.
    let mut p = v6_packet(&[], b"big");
    p[4..6].copy_from_slice(&[0, 0]);
    let t = tcp_of(d.decode(&frame(LinkType::Raw, &p)));
    assert_eq!(t.payload, b"big");
    assert_eq!(d.stats().ipv6_zero_len, 1);
}

#[test]
fn malformed_headers_are_counted() {
    let f = eth_ipv4_tcp();
    let mut d = Decoder::default();
    let mut g = f.clone();
    g[IP_AT] = 0x44; // IHL 4 < 5
    assert_eq!(
        d.decode(&frame(LinkType::Ethernet, &g)),
        Decoded::Dropped(DropReason::IpBadHeaderLen)
    );
    let mut g = f.clone();
    g[IP_AT + 2..IP_AT + 4].copy_from_slice(&10u16.to_be_bytes()); // total 10 < IHL 24
    assert_eq!(
        d.decode(&frame(LinkType::Ethernet, &g)),
        Decoded::Dropped(DropReason::IpBadTotalLen)
    );
    let mut g = f.clone();
    g[IP_AT + 24 + 12] = 0x40; // TCP data offset 4 < 5
    assert_eq!(
        d.decode(&frame(LinkType::Ethernet, &g)),
        Decoded::Dropped(DropReason::TcpBadHeaderLen)
    );
    let mut g = f.clone();
    g[IP_AT + 24 + 12] = 0xf0; // data offset 60 bytes > 34-byte segment
    assert_eq!(
        d.decode(&frame(LinkType::Ethernet, &g)),
        Decoded::Dropped(DropReason::TcpBadHeaderLen)
    );
    let mut g = f.clone();
    g[IP_AT + 9] = 17; // UDP
    assert_eq!(d.decode(&frame(LinkType::Ethernet, &g)), Decoded::NotTcp);
    let mut g = f.clone();
    g[12..14].copy_from_slice(&[0x08, 0x06]); // ARP
    assert_eq!(d.decode(&frame(LinkType::Ethernet, &g)), Decoded::NotTcp);
    let s = d.stats();
    assert_eq!(
        (
            s.drop_ip_bad_header_len,
            s.drop_ip_bad_total_len,
            s.drop_tcp_bad_header_len,
            s.non_tcp
        ),
        (1, 1, 2, 2)
    );
    assert_eq!(s.dropped_total(), 4);
}

/// An Ethernet + IPv4 fragment of a TCP datagram (RFC 791 §3.1: MF flag 0x2000, offset in 8-byte
/// units), id 0x4242, 10.0.0.1 → 10.0.0.2, no options.
fn v4_fragment(offset: usize, more: bool, data: &[u8]) -> Vec<u8> {
    let mut f = ETH_IPV4_TCP[..IP_AT].to_vec();
    let total = (20 + data.len()) as u16;
    let frag = ((offset / 8) as u16) | if more { 0x2000 } else { 0 };
    f.extend_from_slice(&[0x45, 0x00]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0x42, 0x42]);
    f.extend_from_slice(&frag.to_be_bytes());
    f.extend_from_slice(&[64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    f.extend_from_slice(data);
    f
}

#[test]
fn ipv4_fragments_reassemble_out_of_order() {
    // A 20-byte TCP header + 20-byte payload, cut into 16 + 16 + 8 bytes.
    let mut dgram = TCP_HDR.to_vec();
    dgram.extend_from_slice(b"abcdefghijklmnopqrst");
    let (a, b, c) = (
        v4_fragment(0, true, &dgram[..16]),
        v4_fragment(16, true, &dgram[16..32]),
        v4_fragment(32, false, &dgram[32..]),
    );
    let mut d = Decoder::default();
    assert_eq!(
        d.decode(&frame(LinkType::Ethernet, &c)),
        Decoded::FragmentHeld
    );
    assert_eq!(
        d.decode(&frame(LinkType::Ethernet, &a)),
        Decoded::FragmentHeld
    );
    assert_eq!(d.defragmenter().held_bytes(), 40);
    let t = tcp_of(d.decode(&frame(LinkType::Ethernet, &b)));
    assert_eq!((t.sport, t.dport, t.seq), (1111, 2222, 7));
    assert_eq!((t.payload, t.missing), (&b"abcdefghijklmnopqrst"[..], 0));
    let s = d.stats();
    assert_eq!(
        (s.fragments, s.fragments_held, s.frag_reassembled, s.tcp),
        (3, 2, 1, 1)
    );
    assert_eq!(d.defragmenter().held_bytes(), 0);
    // A non-TCP fragment is not held.
    let mut u = v4_fragment(0, true, &[0; 8]);
    u[IP_AT + 9] = 17;
    assert_eq!(d.decode(&frame(LinkType::Ethernet, &u)), Decoded::NotTcp);
    // A fragment cut by the snaplen can never complete its datagram.
    let cut = Frame {
        origlen: a.len() as u32,
        ..frame(LinkType::Ethernet, &a[..a.len() - 3])
    };
    assert_eq!(d.decode(&cut), Decoded::Dropped(DropReason::FragmentCut));
    // MF set but 12 bytes (not a multiple of 8).
    let odd = v4_fragment(0, true, &dgram[..12]);
    assert_eq!(
        d.decode(&frame(LinkType::Ethernet, &odd)),
        Decoded::Dropped(DropReason::FragmentInvalid)
    );
}

#[test]
fn fragment_overlap_first_copy_wins_and_timeout_is_packet_time() {
    let mut dgram = TCP_HDR.to_vec();
    dgram.extend_from_slice(b"0123456789ABCDEF"); // 36 bytes
    let first = v4_fragment(0, true, &dgram[..24]);
    let mut evil = dgram[16..24].to_vec();
    evil.copy_from_slice(b"XXXXXXXX");
    let overlap = v4_fragment(16, true, &evil);
    let last = v4_fragment(24, false, &dgram[24..]);
    let mut d = Decoder::default();
    assert_eq!(
        d.decode(&at(100, LinkType::Ethernet, &first)),
        Decoded::FragmentHeld
    );
    assert_eq!(
        d.decode(&at(100, LinkType::Ethernet, &overlap)),
        Decoded::FragmentHeld
    );
    let t = tcp_of(d.decode(&at(101, LinkType::Ethernet, &last)));
    assert_eq!(t.payload, b"0123456789ABCDEF");
    assert_eq!(d.stats().frag_overlap_mismatch, 1);
    // Timeout: first fragment at t=200 s, the rest 30 s later in packet time: expired.
    assert_eq!(
        d.decode(&at(200, LinkType::Ethernet, &first)),
        Decoded::FragmentHeld
    );
    assert_eq!(
        d.decode(&at(230, LinkType::Ethernet, &last)),
        Decoded::FragmentHeld
    );
    assert_eq!(d.stats().frag_expired, 1);
    // The late last fragment started a new datagram that also expires, on any later frame.
    let f = eth_ipv4_tcp();
    let _ = d.decode(&at(260, LinkType::Ethernet, &f));
    assert_eq!(d.stats().frag_expired, 2);
    assert_eq!(d.defragmenter().in_flight(), 0);
}

#[test]
fn ipv6_fragments_reassemble() {
    // Unfragmentable part: the IPv6 header. Fragmentable part: Destination Options (8) + TCP +
    // payload, split at 24 bytes (RFC 8200 §4.5).
    let whole = v6_packet(&[(60, vec![0, 0, 1, 4, 0, 0, 0, 0])], b"fragmented payload");
    let fragmentable = &whole[40..];
    let frag6 = |offset: usize, more: bool, part: &[u8]| {
        let mut p = whole[..40].to_vec();
        p[6] = 44; // next header: Fragment
        p[4..6].copy_from_slice(&((8 + part.len()) as u16).to_be_bytes());
        // Fragment header: next header 60, reserved, offset << 3 | M, identification 0xdeadbeef.
        p.extend_from_slice(&[60, 0]);
        // The 13-bit offset (8-octet units) sits in the top bits: for a multiple of 8 that is the byte offset.
        p.extend_from_slice(&((offset as u16) | u16::from(more)).to_be_bytes());
        p.extend_from_slice(&0xdead_beefu32.to_be_bytes());
        p.extend_from_slice(part);
        p
    };
    let a = frag6(0, true, &fragmentable[..24]);
    let b = frag6(24, false, &fragmentable[24..]);
    let mut d = Decoder::default();
    assert_eq!(d.decode(&frame(LinkType::Ipv6, &b)), Decoded::FragmentHeld);
    let t = tcp_of(d.decode(&frame(LinkType::Ipv6, &a)));
    assert_eq!(t.payload, b"fragmented payload");
    assert_eq!((t.src, t.sport, t.missing), (ip4("fd00::1"), 1111, 0));
    // An atomic fragment (offset 0, M 0; RFC 6946) is a whole packet.
    let atomic = frag6(0, false, fragmentable);
    assert_eq!(
        tcp_of(d.decode(&frame(LinkType::Ipv6, &atomic))).payload,
        b"fragmented payload"
    );
    assert_eq!((d.stats().frag_reassembled, d.stats().fragments), (1, 2));
}

// ---------------------------------------------------------------------------------------------
// Real captures against tshark's truth (fixtures/capture/<case>/tshark.tsv, see the READMEs).
// ---------------------------------------------------------------------------------------------

/// Compares every frame of a fixture with its tshark.tsv row; returns the decoder's stats.
fn check_against_tshark(case: &str) -> DecodeStats {
    let dir = fixture(case);
    let tsv = std::fs::read_to_string(dir.join("tshark.tsv")).unwrap();
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .unwrap();
    let mut r = CaptureReader::open(&file).unwrap();
    let mut d = Decoder::default();
    let mut rows = tsv.lines().skip(1);
    let mut n = 0;
    while let Some(f) = r.next_frame().unwrap() {
        n += 1;
        let row: Vec<&str> = rows.next().expect("tshark row").split('\t').collect();
        assert_eq!(row[0], n.to_string());
        let src = if row[1].is_empty() { row[2] } else { row[1] };
        let dst = if row[3].is_empty() { row[4] } else { row[3] };
        let t = match d.decode(&f) {
            Decoded::Tcp(t) => t,
            other => panic!("{case} frame {n}: {other:?}"),
        };
        let flags = u8::from_str_radix(row[9].trim_start_matches("0x"), 16).unwrap() & 0x1f;
        let got = (
            t.src.to_string(),
            t.dst.to_string(),
            t.sport.to_string(),
            t.dport.to_string(),
            t.seq.to_string(),
            t.ack.to_string(),
            t.flags,
            t.window.to_string(),
            (t.payload.len() + t.missing as usize).to_string(),
        );
        let want = (
            src.to_string(),
            dst.to_string(),
            row[5].to_string(),
            row[6].to_string(),
            row[7].to_string(),
            row[8].to_string(),
            TcpFlags::from_byte(flags),
            row[10].to_string(),
            row[11].to_string(),
        );
        assert_eq!(got, want, "{case} frame {n}");
    }
    assert!(rows.next().is_none(), "{case}: tshark saw more frames");
    d.stats().clone()
}

#[test]
fn real_captures_match_tshark_frame_by_frame() {
    for case in [
        "vlan",
        "linux_sll",
        "null_loopback",
        "raw_ip",
        "ipv4_linktype",
        "pcapng",
        "pcapng_null",
        "big_endian",
    ] {
        let s = check_against_tshark(case);
        assert_eq!(s.tcp, s.frames, "{case}");
        assert_eq!(s.dropped_total(), 0, "{case}");
    }
}

#[test]
fn real_vlan_frame() {
    // tshark: frame 1 192.168.1.81:36762 → 192.168.1.220:3310 seq 3474524 ack 3203084012,
    // tcp.len 154, VLAN id 1.
    let s = check_against_tshark("vlan");
    assert_eq!((s.vlan_tagged, s.tcp), (1, 1));
}

#[test]
fn real_ipv6_mix() {
    // tshark: 218 TCP frames, 84 of them over IPv6; sum of tcp.len 7781.
    let s = check_against_tshark("ipv6");
    assert_eq!((s.frames, s.tcp, s.ipv6, s.ipv4), (218, 218, 84, 134));
}

#[test]
fn real_snaplen_trailer_is_not_payload_loss() {
    // tshark: all 12 frames have cap_len = len - 16, but ip.len covers exactly the captured bytes
    // (e.g. frame 4: len 160, cap_len 144, tcp.len 78 all captured).
    let s = check_against_tshark("snaplen_cut");
    assert_eq!((s.tcp, s.truncated_by_snaplen), (12, 0));
}

#[test]
fn real_snaplen_payload_cut() {
    // tshark: 6 frames cut at 1800 bytes (15, 17, 19, 21, 22, 25); frame 15: len 2962,
    // cap_len 1800, tcp.hdr_len 32, tcp.len 2896 → 1800 - 14 - 20 - 32 = 1734 captured.
    let s = check_against_tshark("snaplen_payload_cut");
    assert_eq!((s.tcp, s.truncated_by_snaplen), (29, 6));
    let (frames, _) = read_all(&fixture(
        "snaplen_payload_cut/junkie__tds_mssql_truncated.pcap",
    ));
    let f15 = &frames[14];
    let mut d = Decoder::default();
    let fr = Frame {
        ts: Timestamp(f15.ts),
        origlen: f15.origlen,
        link: f15.link,
        interface: 0,
        data: &f15.data,
        block: None,
    };
    let t = tcp_of(d.decode(&fr));
    assert_eq!((t.payload.len(), t.missing), (1734, 1162));
}

// ---------------------------------------------------------------------------------------------
// Differential: packets built by etherparse's PacketBuilder decode to what was built.
// ---------------------------------------------------------------------------------------------

mod differential {
    use super::*;
    use etherparse::PacketBuilder;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn etherparse_built_packets(
            v6 in any::<bool>(),
            vlan in proptest::option::of(any::<u16>()),
            src4 in any::<[u8; 4]>(), dst4 in any::<[u8; 4]>(),
            src6 in any::<[u8; 16]>(), dst6 in any::<[u8; 16]>(),
            sport in any::<u16>(), dport in any::<u16>(),
            seq in any::<u32>(), ack in any::<u32>(), window in any::<u16>(),
            syn in any::<bool>(), fin in any::<bool>(), rst in any::<bool>(), psh in any::<bool>(),
            payload in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let eth = PacketBuilder::ethernet2([1; 6], [2; 6]);
            let l3 = match (vlan, v6) {
                (Some(id), true) => eth.single_vlan((id & 0x0fff).try_into().unwrap()).ipv6(src6, dst6, 64),
                (Some(id), false) => eth.single_vlan((id & 0x0fff).try_into().unwrap()).ipv4(src4, dst4, 64),
                (None, true) => eth.ipv6(src6, dst6, 64),
                (None, false) => eth.ipv4(src4, dst4, 64),
            };
            let mut b = l3.tcp(sport, dport, seq, window).ack(ack);
            if syn { b = b.syn(); }
            if fin { b = b.fin(); }
            if rst { b = b.rst(); }
            if psh { b = b.psh(); }
            let mut out = Vec::new();
            b.write(&mut out, &payload).unwrap();
            // Ethernet padding up to the 60-byte minimum frame must not leak into the payload.
            if out.len() < 60 { out.resize(60, 0xee); }
            let mut d = Decoder::default();
            let t = tcp_of(d.decode(&frame(LinkType::Ethernet, &out)));
            let (src, dst) = if v6 {
                (IpAddr::from(src6), IpAddr::from(dst6))
            } else {
                (IpAddr::from(src4), IpAddr::from(dst4))
            };
            prop_assert_eq!((t.src, t.dst, t.sport, t.dport), (src, dst, sport, dport));
            prop_assert_eq!((t.seq, t.ack, t.window), (seq, ack, window));
            prop_assert_eq!(t.flags, TcpFlags { syn, ack: true, fin, rst, psh });
            prop_assert_eq!(t.payload, &payload[..]);
            prop_assert_eq!(t.missing, 0);
            prop_assert_eq!(d.stats().vlan_tagged, u64::from(vlan.is_some()));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Robustness: random bytes, truncations and bit flips never panic; memory stays bounded.
// ---------------------------------------------------------------------------------------------

mod robustness {
    use super::*;
    use proptest::prelude::*;

    const LINKS: [LinkType; 9] = [
        LinkType::Ethernet,
        LinkType::LinuxSll,
        LinkType::LinuxSll2,
        LinkType::Raw,
        LinkType::Ipv4,
        LinkType::Ipv6,
        LinkType::Null,
        LinkType::Loop,
        LinkType::Other(9),
    ];

    fn payload_len(got: Decoded<'_>) -> Option<usize> {
        match got {
            Decoded::Tcp(t) => Some(t.payload.len()),
            _ => None,
        }
    }

    fn check_outcome(d: &Decoder, payload_len: Option<usize>, data_len: usize) {
        if let Some(n) = payload_len {
            // A payload is never longer than the frame or a reassembled datagram.
            assert!(n <= data_len.max(MAX_DATAGRAM_LEN as usize));
        }
        assert!(d.defragmenter().held_bytes() <= DEFAULT_FRAG_MAX_HELD_BYTES);
        assert!(d.defragmenter().in_flight() <= DEFAULT_FRAG_MAX_DATAGRAMS);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn random_bytes(link in 0usize..9, data in proptest::collection::vec(any::<u8>(), 0..200), origlen in any::<u32>()) {
            let mut d = Decoder::default();
            let f = Frame { origlen, ..frame(LINKS[link], &data) };
            let got = payload_len(d.decode(&f));
            check_outcome(&d, got, data.len());
            prop_assert_eq!(d.stats().frames, 1);
        }

        #[test]
        fn mutations_of_real_frames(
            which in 0usize..4,
            cut in any::<proptest::sample::Index>(),
            flips in proptest::collection::vec((any::<proptest::sample::Index>(), 0u8..8), 0..6),
        ) {
            let base = match which {
                0 => eth_ipv4_tcp(),
                1 => [&[2u8, 0, 0, 0][..], &v6_packet(&[(0, vec![0, 0, 1, 4, 0, 0, 0, 0])], b"xyz")].concat(),
                2 => v4_fragment(0, true, &[0x11; 16]),
                _ => with_tags(&eth_ipv4_tcp(), &[0x88a8, 0x8100]),
            };
            let link = if which == 1 { LinkType::Null } else { LinkType::Ethernet };
            let mut b = base.clone();
            for (at, bit) in &flips {
                let i = at.index(b.len());
                b[i] ^= 1 << bit;
            }
            b.truncate(cut.index(b.len() + 1));
            let mut d = Decoder::default();
            let f = Frame { origlen: base.len() as u32, ..frame(link, &b) };
            let got = payload_len(d.decode(&f));
            check_outcome(&d, got, b.len());
        }

        /// A stream of random fragments (many ids, offsets, sizes, times) under tight limits: the
        /// defragmenter never holds more than its budget.
        #[test]
        fn fragment_floods_stay_within_budget(
            frags in proptest::collection::vec((0u16..40, 0usize..8192, 1usize..1500, any::<bool>(), 0u64..100), 1..120),
        ) {
            let limits = DecodeLimits {
                frag_max_held_bytes: 64 * 1024,
                frag_max_datagrams: 8,
                frag_timeout_secs: 30,
                frag_max_fragments: 16,
            };
            let mut d = Decoder::new(limits);
            let mut ts = 0;
            for (id, off, len, more, dt) in frags {
                ts += dt;
                let mut f = v4_fragment((off / 8) * 8, more, &vec![0xab; (len / 8) * 8 + usize::from(!more)]);
                f[IP_AT + 4..IP_AT + 6].copy_from_slice(&id.to_be_bytes());
                let _ = d.decode(&at(ts, LinkType::Ethernet, &f));
                prop_assert!(d.defragmenter().held_bytes() <= limits.frag_max_held_bytes);
                prop_assert!(d.defragmenter().in_flight() <= limits.frag_max_datagrams);
            }
        }
    }
}
