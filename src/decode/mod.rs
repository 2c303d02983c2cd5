//! # Decode: frame → TCP segment view
//!
//! [`Decoder::decode`] takes one captured [`Frame`] through the link layer (Ethernet with any
//! stack of 802.1Q / 802.1ad tags, Linux SLL / SLL2, BSD NULL / LOOP, raw IP), IPv4 (with
//! options) or IPv6 (with extension headers), IP fragment reassembly, and TCP, and returns a
//! [`TcpPacket`] that borrows the frame (or, for a reassembled datagram, the defragmenter).
//!
//! Contract:
//! - **Never panics, never allocates per packet** on any input; cut-off packets (snaplen) are the
//!   normal case, not an error. Every drop is counted in [`DecodeStats`] under a reason from a
//!   small static set ([`DropReason`]).
//! - **Lengths come from the IP header**, not from the frame: that removes Ethernet padding and
//!   FCS trailers. `missing` says how many payload bytes the frame should have carried but did
//!   not (snaplen cut): the stream layer turns them into a gap of exactly that size.
//! - **TSO/GSO/BIG TCP**: a Linux host capturing its own outgoing traffic sees super-packets
//!   before the NIC segments them; for those larger than 64 KiB the kernel writes an IPv4 total
//!   length of 0 (and an IPv6 payload length of 0), and Windows LSO captures show the same 0.
//!   A zero length is therefore read as "trust the captured length" (as Wireshark does,
//!   "presumed to be because of TCP segmentation offload"). A non-zero length shorter than the
//!   captured bytes is honoured: it cannot be told apart from Ethernet padding or a trailer.
//! - **Time is packet time**: fragment timeouts run on `frame.ts`, never on the OS clock.
//!
//! The parsing is hand-written over fixed offsets (smoltcp's `check_len`-then-read style)
//! rather than through etherparse's slices: etherparse's strict slicers refuse cut-off packets,
//! and its lax slicer neither reports the snaplen loss per layer nor applies the TSO and
//! reassembly policy above. etherparse supplies the protocol number constants and, in the tests,
//! an independent packet builder to check this decoder against.

mod defrag;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{EtherType, IpNumber};

use crate::capture::{Frame, LinkType};
use defrag::{AddResult, Fragment};
pub use defrag::{Defragmenter, FragKey, MAX_DATAGRAM_LEN};

/// Most VLAN tags accepted in one frame. QinQ uses 2; 8 leaves room for odd provider stacks
/// while a frame made of nothing but tags cannot keep the decoder looping.
pub const MAX_VLAN_TAGS: usize = 8;

/// Most IPv6 extension headers walked before TCP. RFC 8200 §4.1 recommends each appears at most
/// once (twice for Destination Options): about 7 in a legal packet; 16 allows some abuse while
/// bounding the walk.
pub const MAX_IPV6_EXT_HEADERS: usize = 16;

/// Default budget of bytes held by the defragmenter: 4 MiB (64 datagrams of 64 KiB).
pub const DEFAULT_FRAG_MAX_HELD_BYTES: usize = 4 << 20;
/// Default number of incomplete datagrams held at once. TCP is rarely fragmented (path MTU
/// discovery is the norm); 256 covers bursts while keeping the linear key lookup cheap.
pub const DEFAULT_FRAG_MAX_DATAGRAMS: usize = 256;
/// Default reassembly timeout: 30 s, Linux's `ipfrag_time` (RFC 791 suggests 15 s as a lower
/// bound for the timer, RFC 8200 §4.5 says 60 s for IPv6: 30 s is a compromise for memory).
pub const DEFAULT_FRAG_TIMEOUT_SECS: u64 = 30;
/// Default cap on fragments per datagram: 64 KiB / 1 KiB. More means tiny-fragment abuse.
pub const DEFAULT_FRAG_MAX_FRAGMENTS: usize = 64;

/// Limits of the decoder (the defragmenter's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Bytes of incomplete datagrams held at most (sum of buffer capacities).
    pub frag_max_held_bytes: usize,
    /// Incomplete datagrams held at most.
    pub frag_max_datagrams: usize,
    /// Seconds (packet time) after its first fragment that an incomplete datagram is dropped.
    pub frag_timeout_secs: u64,
    /// Fragments one datagram may take.
    pub frag_max_fragments: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            frag_max_held_bytes: DEFAULT_FRAG_MAX_HELD_BYTES,
            frag_max_datagrams: DEFAULT_FRAG_MAX_DATAGRAMS,
            frag_timeout_secs: DEFAULT_FRAG_TIMEOUT_SECS,
            frag_max_fragments: DEFAULT_FRAG_MAX_FRAGMENTS,
        }
    }
}

/// TCP control flags (RFC 9293 §3.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpFlags {
    /// Synchronize sequence numbers.
    pub syn: bool,
    /// Acknowledgment field is significant.
    pub ack: bool,
    /// No more data from sender.
    pub fin: bool,
    /// Reset the connection.
    pub rst: bool,
    /// Push function.
    pub psh: bool,
}

impl TcpFlags {
    /// From the flags byte (offset 13 of the TCP header).
    pub const fn from_byte(b: u8) -> Self {
        TcpFlags {
            fin: b & 0x01 != 0,
            syn: b & 0x02 != 0,
            rst: b & 0x04 != 0,
            psh: b & 0x08 != 0,
            ack: b & 0x10 != 0,
        }
    }
}

/// One TCP segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpPacket<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Control flags.
    pub flags: TcpFlags,
    /// Window (unscaled).
    pub window: u16,
    /// Captured TCP payload bytes, Ethernet padding excluded.
    pub payload: &'a [u8],
    /// Payload bytes the IP length promises but the frame does not carry (snaplen cut); 0 when whole.
    pub missing: u32,
}

/// Why a frame was dropped. A small static set: it labels metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The link-layer header is cut off.
    LinkTruncated,
    /// More than [`MAX_VLAN_TAGS`] VLAN tags.
    VlanTooDeep,
    /// The IP header (or an IPv6 extension header) is cut off.
    IpTruncated,
    /// IP version nibble is not what the link layer announced.
    IpBadVersion,
    /// IPv4 header length below 20.
    IpBadHeaderLen,
    /// IPv4 total length below the header length.
    IpBadTotalLen,
    /// IPv6 extension headers run past the packet, or more than [`MAX_IPV6_EXT_HEADERS`].
    Ipv6ExtChain,
    /// The TCP header is cut off.
    TcpTruncated,
    /// TCP data offset below 5 words, or past the end of the segment.
    TcpBadHeaderLen,
    /// A fragment with an impossible offset/length.
    FragmentInvalid,
    /// A fragment that could not be held within the defragmenter's limits.
    FragmentOverBudget,
    /// A fragment whose bytes were cut by the snaplen: its datagram can never be completed.
    FragmentCut,
}

impl DropReason {
    /// Stable snake_case name, for metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            DropReason::LinkTruncated => "link_truncated",
            DropReason::VlanTooDeep => "vlan_too_deep",
            DropReason::IpTruncated => "ip_truncated",
            DropReason::IpBadVersion => "ip_bad_version",
            DropReason::IpBadHeaderLen => "ip_bad_header_len",
            DropReason::IpBadTotalLen => "ip_bad_total_len",
            DropReason::Ipv6ExtChain => "ipv6_ext_chain",
            DropReason::TcpTruncated => "tcp_truncated",
            DropReason::TcpBadHeaderLen => "tcp_bad_header_len",
            DropReason::FragmentInvalid => "fragment_invalid",
            DropReason::FragmentOverBudget => "fragment_over_budget",
            DropReason::FragmentCut => "fragment_cut",
        }
    }
}

/// The outcome of decoding one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A TCP segment (possibly from a reassembled datagram).
    Tcp(TcpPacket<'a>),
    /// A well-formed frame that carries no TCP (ARP, UDP, ICMP, other link types…).
    NotTcp,
    /// An IP fragment, held until its datagram is complete.
    FragmentHeld,
    /// Malformed or cut so badly that nothing can be used.
    Dropped(DropReason),
}

macro_rules! counters {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $f:ident,)* }) => {
        $(#[$m])*
        pub struct $name { $($(#[$fm])* pub $f: u64,)* }
        impl $name {
            /// Adds every counter of `other` to `self` (the pipeline sums per-thread stats).
            pub fn merge(&mut self, other: &Self) {
                $(self.$f += other.$f;)*
            }
        }
    };
}

counters! {
    /// Decoder counters: plain `u64`s, summed by the pipeline with [`DecodeStats::merge`].
    #[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
    pub struct DecodeStats {
        /// Frames seen.
        pub frames,
        /// Frames by link type.
        pub link_ethernet,
        /// Linux SLL frames.
        pub link_sll,
        /// Linux SLL2 frames.
        pub link_sll2,
        /// Raw IP frames (101, 12, 14).
        pub link_raw,
        /// Raw IPv4 frames (228).
        pub link_ipv4,
        /// Raw IPv6 frames (229).
        pub link_ipv6,
        /// BSD NULL frames.
        pub link_null,
        /// OpenBSD LOOP frames.
        pub link_loop,
        /// Frames of any other link type (not decoded).
        pub link_other,
        /// Frames with at least one VLAN tag.
        pub vlan_tagged,
        /// IPv4 packets (fragments included).
        pub ipv4,
        /// IPv6 packets (fragments included).
        pub ipv6,
        /// TCP segments returned (reassembled datagrams included).
        pub tcp,
        /// Frames that carry no TCP.
        pub non_tcp,
        /// IPv4 total length 0 (TSO / BIG TCP): the captured length was used.
        pub ipv4_zero_len,
        /// IPv6 payload length 0 (jumbogram / BIG TCP): the captured length was used.
        pub ipv6_zero_len,
        /// TCP segments whose payload was cut by the snaplen (caplen < origlen).
        pub truncated_by_snaplen,
        /// TCP segments whose IP length exceeds a frame that is not snaplen-cut (short frame).
        pub short_frames,
        /// Fragments seen (of TCP datagrams; others are not held).
        pub fragments,
        /// Fragments held awaiting the rest of their datagram.
        pub fragments_held,
        /// Datagrams reassembled.
        pub frag_reassembled,
        /// Datagrams dropped by the timeout.
        pub frag_expired,
        /// Datagrams dropped over a budget (bytes, datagram count, fragments per datagram).
        pub frag_evicted,
        /// Fragments overlapping held bytes with different content (first copy kept).
        pub frag_overlap_mismatch,
        /// Drops: link header cut off.
        pub drop_link_truncated,
        /// Drops: too many VLAN tags.
        pub drop_vlan_too_deep,
        /// Drops: IP header cut off.
        pub drop_ip_truncated,
        /// Drops: bad IP version.
        pub drop_ip_bad_version,
        /// Drops: bad IPv4 header length.
        pub drop_ip_bad_header_len,
        /// Drops: bad IPv4 total length.
        pub drop_ip_bad_total_len,
        /// Drops: bad IPv6 extension header chain.
        pub drop_ipv6_ext_chain,
        /// Drops: TCP header cut off.
        pub drop_tcp_truncated,
        /// Drops: bad TCP data offset.
        pub drop_tcp_bad_header_len,
        /// Drops: invalid fragment.
        pub drop_fragment_invalid,
        /// Drops: fragment over the defragmenter's budget.
        pub drop_fragment_over_budget,
        /// Drops: fragment cut by the snaplen.
        pub drop_fragment_cut,
    }
}

impl DecodeStats {
    /// The drop counter of `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        *self.drop_slot_ref(reason)
    }

    /// Total drops over all reasons.
    pub fn dropped_total(&self) -> u64 {
        ALL_REASONS.iter().map(|r| self.dropped(*r)).sum()
    }

    fn drop_slot_ref(&self, r: DropReason) -> &u64 {
        match r {
            DropReason::LinkTruncated => &self.drop_link_truncated,
            DropReason::VlanTooDeep => &self.drop_vlan_too_deep,
            DropReason::IpTruncated => &self.drop_ip_truncated,
            DropReason::IpBadVersion => &self.drop_ip_bad_version,
            DropReason::IpBadHeaderLen => &self.drop_ip_bad_header_len,
            DropReason::IpBadTotalLen => &self.drop_ip_bad_total_len,
            DropReason::Ipv6ExtChain => &self.drop_ipv6_ext_chain,
            DropReason::TcpTruncated => &self.drop_tcp_truncated,
            DropReason::TcpBadHeaderLen => &self.drop_tcp_bad_header_len,
            DropReason::FragmentInvalid => &self.drop_fragment_invalid,
            DropReason::FragmentOverBudget => &self.drop_fragment_over_budget,
            DropReason::FragmentCut => &self.drop_fragment_cut,
        }
    }

    fn count_drop(&mut self, r: DropReason) {
        let slot = match r {
            DropReason::LinkTruncated => &mut self.drop_link_truncated,
            DropReason::VlanTooDeep => &mut self.drop_vlan_too_deep,
            DropReason::IpTruncated => &mut self.drop_ip_truncated,
            DropReason::IpBadVersion => &mut self.drop_ip_bad_version,
            DropReason::IpBadHeaderLen => &mut self.drop_ip_bad_header_len,
            DropReason::IpBadTotalLen => &mut self.drop_ip_bad_total_len,
            DropReason::Ipv6ExtChain => &mut self.drop_ipv6_ext_chain,
            DropReason::TcpTruncated => &mut self.drop_tcp_truncated,
            DropReason::TcpBadHeaderLen => &mut self.drop_tcp_bad_header_len,
            DropReason::FragmentInvalid => &mut self.drop_fragment_invalid,
            DropReason::FragmentOverBudget => &mut self.drop_fragment_over_budget,
            DropReason::FragmentCut => &mut self.drop_fragment_cut,
        };
        *slot += 1;
    }
}

/// Every [`DropReason`], for iteration (metrics export).
pub const ALL_REASONS: [DropReason; 12] = [
    DropReason::LinkTruncated,
    DropReason::VlanTooDeep,
    DropReason::IpTruncated,
    DropReason::IpBadVersion,
    DropReason::IpBadHeaderLen,
    DropReason::IpBadTotalLen,
    DropReason::Ipv6ExtChain,
    DropReason::TcpTruncated,
    DropReason::TcpBadHeaderLen,
    DropReason::FragmentInvalid,
    DropReason::FragmentOverBudget,
    DropReason::FragmentCut,
];

/// Why decoding stopped short of a TCP segment (internal).
enum Stop {
    NotTcp,
    Drop(DropReason),
    Held,
}

type Step<T> = Result<T, Stop>;

/// IP version + offset of the IP header in the frame.
#[derive(Clone, Copy)]
enum Net {
    V4(usize),
    V6(usize),
}

/// Ethertypes of VLAN tags: IEEE 802.1Q C-tag, IEEE 802.1ad S-tag, and the pre-standard 0x9100
/// QinQ tag some switches still send.
const ETH_VLAN_TAGS: [u16; 3] = [EtherType::VLAN_TAGGED_FRAME.0, 0x88a8, 0x9100];
/// Ethernet header: destination 6, source 6, ethertype 2 (IEEE 802.3 §3.1.1).
const ETH_HEADER_LEN: usize = 14;
/// VLAN tag: TCI 2 + inner ethertype 2 (IEEE 802.1Q §9.3).
const VLAN_TAG_LEN: usize = 4;
/// Linux SLL header (`pcap-linktype(7)`, LINKTYPE_LINUX_SLL): packet type 2, ARPHRD type 2,
/// address length 2, address 8, protocol 2.
const SLL_HEADER_LEN: usize = 16;
/// Linux SLL2 header (LINKTYPE_LINUX_SLL2): protocol 2, reserved 2, interface index 4, ARPHRD
/// type 2, packet type 1, address length 1, address 8.
const SLL2_HEADER_LEN: usize = 20;
/// `ARPHRD_NETLINK`: the SLL protocol field then holds a netlink family, not an ethertype.
const ARPHRD_NETLINK: u16 = 824;
/// BSD NULL / LOOP header: a 4-byte address family.
const NULL_HEADER_LEN: usize = 4;
/// Address families of NULL/LOOP (tcpdump.org LINKTYPE_NULL): AF_INET is 2 everywhere; AF_INET6
/// is 24 (NetBSD, OpenBSD, BSD/OS), 28 (FreeBSD, DragonFly) or 30 (Darwin).
const BSD_AF_INET: u32 = 2;
const BSD_AF_INET6: [u32; 3] = [24, 28, 30];
/// IPv4 header without options (RFC 791 §3.1).
const IPV4_MIN_HEADER_LEN: usize = 20;
/// IPv6 fixed header (RFC 8200 §3).
const IPV6_HEADER_LEN: usize = 40;
/// TCP header without options (RFC 9293 §3.1).
const TCP_MIN_HEADER_LEN: usize = 20;
/// IPv6 Fragment header length (RFC 8200 §4.5).
const IPV6_FRAG_HEADER_LEN: usize = 8;

/// IPv6 next-header values walked as extension headers (RFC 8200 §4; RFC 7045 for the list).
const NH_HOP_BY_HOP: u8 = 0;
const NH_ROUTING: u8 = 43;
const NH_FRAGMENT: u8 = 44;
const NH_AH: u8 = 51;
const NH_DEST_OPTS: u8 = 60;
const NH_MOBILITY: u8 = 135;
const NH_HIP: u8 = 139;
const NH_SHIM6: u8 = 140;
const NH_TCP: u8 = IpNumber::TCP.0;

/// Decodes frames into TCP segments; owns the defragmenter and the counters.
pub struct Decoder {
    defrag: Defragmenter,
    stats: DecodeStats,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new(DecodeLimits::default())
    }
}

#[inline]
fn be16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(&[x, y]) => u16::from_be_bytes([x, y]),
        _ => 0,
    }
}

#[inline]
fn be32(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(&[a, c, d, e]) => u32::from_be_bytes([a, c, d, e]),
        _ => 0,
    }
}

#[inline]
fn byte(b: &[u8], at: usize) -> u8 {
    b.get(at).copied().unwrap_or(0)
}

fn v4addr(b: &[u8], at: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(be32(b, at)))
}

fn v6addr(b: &[u8], at: usize) -> IpAddr {
    let mut a = [0u8; 16];
    if let Some(s) = b.get(at..at + 16) {
        a.copy_from_slice(s);
    }
    IpAddr::V6(Ipv6Addr::from(a))
}

impl Decoder {
    /// A decoder with the given limits.
    pub fn new(limits: DecodeLimits) -> Self {
        Decoder {
            defrag: Defragmenter::new(limits),
            stats: DecodeStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }

    /// The defragmenter (for its occupancy gauges).
    pub fn defragmenter(&self) -> &Defragmenter {
        &self.defrag
    }

    /// Decodes one frame. The result borrows the frame or, for a reassembled datagram, `self`.
    pub fn decode<'a>(&'a mut self, frame: &Frame<'a>) -> Decoded<'a> {
        let Decoder { defrag, stats } = self;
        stats.frames += 1;
        defrag.expire(frame.ts, stats);
        let res = decode_frame(defrag, stats, frame);
        match res {
            Ok(p) => {
                stats.tcp += 1;
                Decoded::Tcp(p)
            }
            Err(Stop::NotTcp) => {
                stats.non_tcp += 1;
                Decoded::NotTcp
            }
            Err(Stop::Held) => {
                stats.fragments_held += 1;
                Decoded::FragmentHeld
            }
            Err(Stop::Drop(r)) => {
                stats.count_drop(r);
                Decoded::Dropped(r)
            }
        }
    }
}

fn decode_frame<'a>(
    defrag: &'a mut Defragmenter,
    stats: &mut DecodeStats,
    frame: &Frame<'a>,
) -> Step<TcpPacket<'a>> {
    let data = frame.data;
    let net = link(stats, frame.link, data)?;
    // The frame is cut when the capture kept fewer bytes than the wire carried.
    let cut = (frame.origlen as usize) > data.len();
    match net {
        Net::V4(off) => ipv4(
            defrag,
            stats,
            frame,
            data.get(off..).unwrap_or_default(),
            cut,
        ),
        Net::V6(off) => ipv6(
            defrag,
            stats,
            frame,
            data.get(off..).unwrap_or_default(),
            cut,
        ),
    }
}

/// Strips the link layer; says where the IP header starts.
fn link(stats: &mut DecodeStats, link: LinkType, d: &[u8]) -> Step<Net> {
    match link {
        LinkType::Ethernet => {
            stats.link_ethernet += 1;
            if d.len() < ETH_HEADER_LEN {
                return Err(Stop::Drop(DropReason::LinkTruncated));
            }
            ethertype(stats, d, be16(d, 12), ETH_HEADER_LEN)
        }
        LinkType::LinuxSll => {
            stats.link_sll += 1;
            if d.len() < SLL_HEADER_LEN {
                return Err(Stop::Drop(DropReason::LinkTruncated));
            }
            if be16(d, 2) == ARPHRD_NETLINK {
                return Err(Stop::NotTcp);
            }
            ethertype(stats, d, be16(d, 14), SLL_HEADER_LEN)
        }
        LinkType::LinuxSll2 => {
            stats.link_sll2 += 1;
            if d.len() < SLL2_HEADER_LEN {
                return Err(Stop::Drop(DropReason::LinkTruncated));
            }
            if be16(d, 8) == ARPHRD_NETLINK {
                return Err(Stop::NotTcp);
            }
            ethertype(stats, d, be16(d, 0), SLL2_HEADER_LEN)
        }
        LinkType::Raw => {
            stats.link_raw += 1;
            match d.first().map(|b| b >> 4) {
                None => Err(Stop::Drop(DropReason::LinkTruncated)),
                Some(4) => Ok(Net::V4(0)),
                Some(6) => Ok(Net::V6(0)),
                Some(_) => Err(Stop::Drop(DropReason::IpBadVersion)),
            }
        }
        LinkType::Ipv4 => {
            stats.link_ipv4 += 1;
            Ok(Net::V4(0))
        }
        LinkType::Ipv6 => {
            stats.link_ipv6 += 1;
            Ok(Net::V6(0))
        }
        LinkType::Null | LinkType::Loop => {
            let fam = if link == LinkType::Null {
                stats.link_null += 1;
                // The family is in the byte order of the host that wrote the file, which the
                // frame does not tell (files get byte-swapped by converters). Families are small:
                // if the little-endian reading is not, the writer was big-endian.
                let le = match d.get(..NULL_HEADER_LEN) {
                    Some(&[a, b, c, e]) => u32::from_le_bytes([a, b, c, e]),
                    _ => return Err(Stop::Drop(DropReason::LinkTruncated)),
                };
                if le > 0xffff {
                    le.swap_bytes()
                } else {
                    le
                }
            } else {
                stats.link_loop += 1;
                if d.len() < NULL_HEADER_LEN {
                    return Err(Stop::Drop(DropReason::LinkTruncated));
                }
                be32(d, 0)
            };
            if fam == BSD_AF_INET {
                Ok(Net::V4(NULL_HEADER_LEN))
            } else if BSD_AF_INET6.contains(&fam) {
                Ok(Net::V6(NULL_HEADER_LEN))
            } else {
                Err(Stop::NotTcp)
            }
        }
        LinkType::Other(_) => {
            stats.link_other += 1;
            Err(Stop::NotTcp)
        }
    }
}

/// Follows an ethertype through any VLAN tags to IPv4 / IPv6.
fn ethertype(stats: &mut DecodeStats, d: &[u8], mut et: u16, mut off: usize) -> Step<Net> {
    let mut tags = 0usize;
    loop {
        if et == EtherType::IPV4.0 {
            break Ok(Net::V4(off));
        } else if et == EtherType::IPV6.0 {
            break Ok(Net::V6(off));
        } else if ETH_VLAN_TAGS.contains(&et) {
            if tags == MAX_VLAN_TAGS {
                return Err(Stop::Drop(DropReason::VlanTooDeep));
            }
            if d.len() < off + VLAN_TAG_LEN {
                return Err(Stop::Drop(DropReason::LinkTruncated));
            }
            if tags == 0 {
                stats.vlan_tagged += 1;
            }
            tags += 1;
            et = be16(d, off + 2);
            off += VLAN_TAG_LEN;
        } else {
            // ARP, LLDP, 802.3 length fields (< 0x0600), MPLS, PPPoE…: not ours.
            break Err(Stop::NotTcp);
        }
    }
}

/// IPv4 (RFC 791 §3.1). `b` starts at the IP header.
fn ipv4<'a>(
    defrag: &'a mut Defragmenter,
    stats: &mut DecodeStats,
    frame: &Frame<'a>,
    b: &'a [u8],
    cut: bool,
) -> Step<TcpPacket<'a>> {
    stats.ipv4 += 1;
    match b.first() {
        None => return Err(Stop::Drop(DropReason::IpTruncated)),
        Some(v) if v >> 4 != 4 => return Err(Stop::Drop(DropReason::IpBadVersion)),
        Some(_) => {}
    }
    if b.len() < IPV4_MIN_HEADER_LEN {
        return Err(Stop::Drop(DropReason::IpTruncated));
    }
    let ihl = usize::from(byte(b, 0) & 0x0f) * 4;
    if ihl < IPV4_MIN_HEADER_LEN {
        return Err(Stop::Drop(DropReason::IpBadHeaderLen));
    }
    if b.len() < ihl {
        return Err(Stop::Drop(DropReason::IpTruncated));
    }
    let total = usize::from(be16(b, 2));
    let ip_len = if total == 0 {
        // TSO / BIG TCP (see module docs): trust the captured length.
        stats.ipv4_zero_len += 1;
        b.len()
    } else if total < ihl {
        return Err(Stop::Drop(DropReason::IpBadTotalLen));
    } else {
        total
    };
    let src = v4addr(b, 12);
    let dst = v4addr(b, 16);
    let proto = byte(b, 9);
    let avail = b.len().min(ip_len);
    let body = b.get(ihl..avail).unwrap_or_default();
    let expected = ip_len - ihl;
    let frag = be16(b, 6);
    let more = frag & 0x2000 != 0;
    let offset = u32::from(frag & 0x1fff) * 8;
    if more || offset != 0 {
        if proto != NH_TCP {
            return Err(Stop::NotTcp);
        }
        stats.fragments += 1;
        let key = FragKey {
            src,
            dst,
            id: u32::from(be16(b, 4)),
            proto,
        };
        if body.len() < expected {
            defrag.forget(&key);
            return Err(Stop::Drop(DropReason::FragmentCut));
        }
        let f = Fragment {
            offset,
            more,
            data: body,
        };
        fragment(defrag, stats, key, frame, f)?;
        let whole: &'a [u8] = &defrag.done;
        return tcp(stats, src, dst, whole, whole.len(), false);
    }
    if proto != NH_TCP {
        return Err(Stop::NotTcp);
    }
    tcp(stats, src, dst, body, expected, cut)
}

/// Hands a fragment to the defragmenter; `Ok(())` when it completed a datagram.
fn fragment(
    defrag: &mut Defragmenter,
    stats: &mut DecodeStats,
    key: FragKey,
    frame: &Frame<'_>,
    f: Fragment<'_>,
) -> Step<()> {
    match defrag.add(key, frame.ts, f, stats) {
        AddResult::Held => Err(Stop::Held),
        AddResult::Invalid => Err(Stop::Drop(DropReason::FragmentInvalid)),
        AddResult::OverBudget => Err(Stop::Drop(DropReason::FragmentOverBudget)),
        AddResult::Complete => {
            stats.frag_reassembled += 1;
            Ok(())
        }
    }
}

/// Where an IPv6 extension header walk ended.
enum V6End {
    /// TCP header at this offset.
    Tcp(usize),
    /// A Fragment header: fragment data starts at `data`.
    Fragment {
        next: u8,
        offset: u32,
        more: bool,
        id: u32,
        data: usize,
    },
}

/// Walks IPv6 extension headers (RFC 8200 §4) in `b[..end]` from `p` with next header `nh`.
/// `cut`: the packet was cut by the snaplen (a header running past `end` is truncation, not a
/// malformed chain).
fn walk_v6(b: &[u8], mut p: usize, mut nh: u8, end: usize, cut: bool) -> Step<V6End> {
    let past_end = if cut {
        DropReason::IpTruncated
    } else {
        DropReason::Ipv6ExtChain
    };
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        match nh {
            NH_TCP => return Ok(V6End::Tcp(p)),
            NH_HOP_BY_HOP | NH_ROUTING | NH_DEST_OPTS | NH_MOBILITY | NH_HIP | NH_SHIM6 | NH_AH => {
                if p + 2 > end {
                    return Err(Stop::Drop(past_end));
                }
                let len = if nh == NH_AH {
                    // RFC 4302 §2.2: AH length is in 4-byte words, minus 2.
                    (usize::from(byte(b, p + 1)) + 2) * 4
                } else {
                    // RFC 8200 §4.3: Hdr Ext Len in 8-octet units, not counting the first 8.
                    (usize::from(byte(b, p + 1)) + 1) * 8
                };
                nh = byte(b, p);
                p += len;
                if p > end {
                    return Err(Stop::Drop(past_end));
                }
            }
            NH_FRAGMENT => {
                if p + IPV6_FRAG_HEADER_LEN > end {
                    return Err(Stop::Drop(past_end));
                }
                // RFC 8200 §4.5: next header 1, reserved 1, offset 13 bits + res 2 + M 1, id 4.
                let next = byte(b, p);
                let off_m = be16(b, p + 2);
                let offset = u32::from(off_m & 0xfff8);
                let more = off_m & 1 != 0;
                let id = be32(b, p + 4);
                p += IPV6_FRAG_HEADER_LEN;
                if offset == 0 && !more {
                    // An "atomic fragment" (RFC 6946): a whole packet; keep walking.
                    nh = next;
                    continue;
                }
                return Ok(V6End::Fragment {
                    next,
                    offset,
                    more,
                    id,
                    data: p,
                });
            }
            // No Next Header (59), ESP (50), UDP, ICMPv6, unknown: not TCP.
            _ => return Err(Stop::NotTcp),
        }
    }
    Err(Stop::Drop(DropReason::Ipv6ExtChain))
}

/// IPv6 (RFC 8200 §3). `b` starts at the IP header.
fn ipv6<'a>(
    defrag: &'a mut Defragmenter,
    stats: &mut DecodeStats,
    frame: &Frame<'a>,
    b: &'a [u8],
    cut: bool,
) -> Step<TcpPacket<'a>> {
    stats.ipv6 += 1;
    if b.len() < IPV6_HEADER_LEN {
        return Err(Stop::Drop(DropReason::IpTruncated));
    }
    if byte(b, 0) >> 4 != 6 {
        return Err(Stop::Drop(DropReason::IpBadVersion));
    }
    let plen = usize::from(be16(b, 4));
    let ip_len = if plen == 0 {
        // Jumbogram (RFC 2675) or BIG TCP: the length is not in this field; trust the capture.
        stats.ipv6_zero_len += 1;
        b.len()
    } else {
        IPV6_HEADER_LEN + plen
    };
    let avail = b.len().min(ip_len);
    let src = v6addr(b, 8);
    let dst = v6addr(b, 24);
    let end = walk_v6(b, IPV6_HEADER_LEN, byte(b, 6), avail, cut && avail < ip_len)?;
    match end {
        V6End::Tcp(p) => {
            let seg = b.get(p..avail).unwrap_or_default();
            tcp(stats, src, dst, seg, ip_len - p, cut)
        }
        V6End::Fragment {
            next,
            offset,
            more,
            id,
            data,
        } => {
            // Only hold fragments that can lead to TCP (directly or behind more ext headers).
            if !matches!(
                next,
                NH_TCP | NH_DEST_OPTS | NH_ROUTING | NH_AH | NH_MOBILITY | NH_HIP | NH_SHIM6
            ) {
                return Err(Stop::NotTcp);
            }
            stats.fragments += 1;
            let key = FragKey {
                src,
                dst,
                id,
                proto: next,
            };
            let body = b.get(data..avail).unwrap_or_default();
            if avail < ip_len {
                defrag.forget(&key);
                return Err(Stop::Drop(DropReason::FragmentCut));
            }
            let f = Fragment {
                offset,
                more,
                data: body,
            };
            fragment(defrag, stats, key, frame, f)?;
            let whole: &'a [u8] = &defrag.done;
            // The fragmentable part may start with more extension headers (RFC 8200 §4.5).
            match walk_v6(whole, 0, next, whole.len(), false)? {
                V6End::Tcp(p) => {
                    let seg = whole.get(p..).unwrap_or_default();
                    tcp(stats, src, dst, seg, seg.len(), false)
                }
                // A fragment header inside a reassembled payload: not something we nest.
                V6End::Fragment { .. } => Err(Stop::Drop(DropReason::Ipv6ExtChain)),
            }
        }
    }
}

/// TCP (RFC 9293 §3.1). `seg` holds the captured bytes of the segment (already trimmed to the IP
/// length); `expected` is the segment length the IP header announces.
fn tcp<'a>(
    stats: &mut DecodeStats,
    src: IpAddr,
    dst: IpAddr,
    seg: &'a [u8],
    expected: usize,
    cut: bool,
) -> Step<TcpPacket<'a>> {
    if seg.len() < TCP_MIN_HEADER_LEN {
        return Err(Stop::Drop(if expected < TCP_MIN_HEADER_LEN {
            DropReason::TcpBadHeaderLen
        } else {
            DropReason::TcpTruncated
        }));
    }
    let doff = usize::from(byte(seg, 12) >> 4) * 4;
    if doff < TCP_MIN_HEADER_LEN || doff > expected {
        return Err(Stop::Drop(DropReason::TcpBadHeaderLen));
    }
    if seg.len() < doff {
        return Err(Stop::Drop(DropReason::TcpTruncated));
    }
    let payload = seg.get(doff..).unwrap_or_default();
    let missing = (expected - doff).saturating_sub(payload.len());
    if missing > 0 {
        if cut {
            stats.truncated_by_snaplen += 1;
        } else {
            stats.short_frames += 1;
        }
    }
    Ok(TcpPacket {
        src,
        dst,
        sport: be16(seg, 0),
        dport: be16(seg, 2),
        seq: be32(seg, 4),
        ack: be32(seg, 8),
        flags: TcpFlags::from_byte(byte(seg, 13)),
        window: be16(seg, 14),
        payload,
        missing: u32::try_from(missing).unwrap_or(u32::MAX),
    })
}
