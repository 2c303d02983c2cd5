//! pcapng (draft-ietf-opsawg-pcapng, "PCAP Now Generic (pcapng) Capture File Format").
//!
//! Every block is `type u32, total length u32, body, total length u32` (§3.1), the length a
//! multiple of 4 and covering the whole block. A Section Header Block (§4.1) starts a section and
//! fixes its byte order through the byte-order magic 0x1A2B3C4D; it also forgets the interfaces of
//! the previous section. Interface Description Blocks (§4.2) are numbered from 0 in order of
//! appearance within their section and carry the link type, snaplen and the timestamp options
//! `if_tsresol` (code 9) and `if_tsoffset` (code 14). Packets come in Enhanced Packet Blocks
//! (§4.3), Simple Packet Blocks (§4.4: no interface id, meaning interface 0, and no timestamp) and
//! the obsolete Packet Block (Appendix A). Every other block (NRB, ISB, DSB, custom, unknown) is
//! skipped by its length without being buffered.

use super::source::{ByteSource, BUF_LEN};
use super::{CaptureErrorKind, CaptureStats, Endian, Fail, Frame, LinkType, Timestamp, MAX_CAPLEN};

/// Section Header Block type; the same bytes in both byte orders (§4.1).
const BT_SHB: u32 = 0x0A0D_0D0A;
/// Interface Description Block type (§4.2).
const BT_IDB: u32 = 0x0000_0001;
/// Obsolete Packet Block type (Appendix A).
const BT_PB: u32 = 0x0000_0002;
/// Simple Packet Block type (§4.4).
const BT_SPB: u32 = 0x0000_0003;
/// Enhanced Packet Block type (§4.3).
const BT_EPB: u32 = 0x0000_0006;

/// Option codes of the IDB (§4.2): end of options, timestamp resolution, timestamp offset.
const OPT_ENDOFOPT: u16 = 0;
const IF_TSRESOL: u16 = 9;
const IF_TSOFFSET: u16 = 14;

/// Largest block we read whole (SHB, IDB and packet blocks): the read buffer. A packet block
/// holds at most [`MAX_CAPLEN`] of data, so a legitimate one is far smaller; blocks we only skip
/// may be of any length.
const MAX_BLOCK_LEN: usize = BUF_LEN;

/// Most interfaces one section may describe. Real captures have a handful (`dumpcap -i any`,
/// mergecap of a few files); 4096 keeps the table bounded against a file full of IDBs.
pub const MAX_INTERFACES: usize = 4096;

/// Largest decimal `if_tsresol` exponent we can represent: 10^19 fits a u64 (§4.2 allows up to
/// 127, nothing writes more than 9).
const MAX_TSRESOL_POW10: u8 = 19;

/// Minimum total length of a block of each type: header + fixed body + trailer.
fn min_block_len(block_type: u32) -> u32 {
    match block_type {
        BT_SHB => 28,         // 8 + BOM 4 + version 4 + section length 8 + trailer 4
        BT_IDB => 20,         // 8 + link type 2 + reserved 2 + snaplen 4 + trailer 4
        BT_EPB | BT_PB => 32, // 8 + iface/ts 12 + caplen 4 + origlen 4 + trailer 4
        BT_SPB => 16,         // 8 + origlen 4 + trailer 4
        _ => 12,              // 8 + trailer 4
    }
}

/// How an interface's timestamp units map to nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TsScale {
    /// Units of 10^-n s with n ≤ 9: multiply by 10^(9-n).
    Mul(u64),
    /// Units of 10^-n s with n > 9: divide by 10^(n-9).
    Div(u64),
    /// Units of 2^-n s.
    Pow2(u8),
}

impl TsScale {
    fn from_tsresol(v: u8) -> Option<TsScale> {
        let n = v & 0x7f;
        if v & 0x80 != 0 {
            return Some(TsScale::Pow2(n));
        }
        if n > MAX_TSRESOL_POW10 {
            return None;
        }
        Some(if n <= 9 {
            TsScale::Mul(10u64.pow(u32::from(9 - n)))
        } else {
            TsScale::Div(10u64.pow(u32::from(n - 9)))
        })
    }

    #[inline]
    fn to_ns(self, t: u64) -> u64 {
        match self {
            TsScale::Mul(m) => t.saturating_mul(m),
            TsScale::Div(d) => t / d,
            // t < 2^64 and 10^9 < 2^30: the product fits a u128; n ≤ 127 keeps the shift valid.
            TsScale::Pow2(n) => {
                let v = (u128::from(t) * 1_000_000_000) >> n;
                u64::try_from(v).unwrap_or(u64::MAX)
            }
        }
    }
}

/// What one IDB says about its interface.
#[derive(Clone, Copy, Debug)]
struct Iface {
    link: LinkType,
    snaplen: u32,
    scale: TsScale,
    /// `if_tsoffset`: seconds added to every timestamp of the interface.
    offset_s: i64,
}

impl Iface {
    #[inline]
    fn timestamp(&self, hi: u32, lo: u32) -> Timestamp {
        let ns = self.scale.to_ns((u64::from(hi) << 32) | u64::from(lo));
        if self.offset_s == 0 {
            return Timestamp(ns);
        }
        let v = i128::from(ns) + i128::from(self.offset_s) * 1_000_000_000;
        Timestamp(u64::try_from(v.max(0)).unwrap_or(u64::MAX))
    }
}

/// Per-file state of a pcapng stream.
pub(crate) struct NgState {
    endian: Endian,
    in_section: bool,
    ifaces: Vec<Iface>,
    /// Timestamp of the last EPB/PB: an SPB has none of its own, so it reuses this one.
    last_ts: Timestamp,
}

/// Where the frame of a packet block is, once the block is validated.
struct PacketAt {
    len: usize,
    data_off: usize,
    caplen: usize,
    origlen: u32,
    interface: u32,
    link: LinkType,
    ts: Timestamp,
}

impl NgState {
    pub(crate) fn sniff(head: &[u8]) -> bool {
        head.get(..4) == Some(&[0x0a, 0x0d, 0x0d, 0x0a][..])
    }

    pub(crate) fn new() -> Self {
        NgState {
            endian: Endian::Little,
            in_section: false,
            ifaces: Vec::new(),
            last_ts: Timestamp(0),
        }
    }

    /// The next packet, or `None` at a clean end of file (a block boundary).
    #[inline]
    pub(crate) fn next<'a>(
        &mut self,
        src: &'a mut ByteSource,
        stats: &mut CaptureStats,
    ) -> Result<Option<Frame<'a>>, Fail> {
        loop {
            let at = src.offset();
            let io = |e: std::io::Error| (at, CaptureErrorKind::Io(e));
            // 12 bytes: the block header, plus the SHB byte-order magic when it is one.
            let have = src.ensure(12).map_err(io)?;
            if have == 0 {
                return Ok(None);
            }
            let trunc = |have: usize, need: u64| {
                (
                    at,
                    CaptureErrorKind::TruncatedBlock {
                        have: have as u64,
                        need,
                    },
                )
            };
            if have < 8 {
                return Err(trunc(have, 8));
            }
            let h = src.avail();
            let is_shb = h.get(..4) == Some(&[0x0a, 0x0d, 0x0d, 0x0a][..]);
            if is_shb {
                if have < 12 {
                    return Err(trunc(have, 12));
                }
                self.endian = match h.get(8..12) {
                    Some([0x1a, 0x2b, 0x3c, 0x4d]) => Endian::Big,
                    Some([0x4d, 0x3c, 0x2b, 0x1a]) => Endian::Little,
                    other => {
                        let mut m = [0u8; 4];
                        if let Some(o) = other {
                            m.copy_from_slice(o);
                        }
                        return Err((at, CaptureErrorKind::ByteOrderMagic(m)));
                    }
                };
            }
            let e = self.endian;
            let block_type = e.u32(h, 0);
            if !is_shb && !self.in_section {
                return Err((at, CaptureErrorKind::NoSection(block_type)));
            }
            let len = e.u32(h, 4);
            let bad_len = |why| {
                (
                    at,
                    CaptureErrorKind::BlockLength {
                        block_type,
                        len,
                        why,
                    },
                )
            };
            if len % 4 != 0 {
                return Err(bad_len("not a multiple of 4"));
            }
            if len < min_block_len(block_type) {
                return Err(bad_len("shorter than the minimum for its type"));
            }
            let ulen = len as usize;
            let parsed = matches!(block_type, BT_SHB | BT_IDB | BT_EPB | BT_SPB | BT_PB);
            if !parsed && ulen > MAX_BLOCK_LEN {
                // A block we don't read (e.g. a huge DSB or custom block): skip it unbuffered.
                let skipped = src.skip(u64::from(len)).map_err(io)?;
                if skipped < u64::from(len) {
                    return Err((
                        at,
                        CaptureErrorKind::TruncatedBlock {
                            have: skipped,
                            need: u64::from(len),
                        },
                    ));
                }
                stats.blocks_skipped += 1;
                continue;
            }
            if ulen > MAX_BLOCK_LEN {
                return Err(bad_len("larger than the 1 MiB block limit"));
            }
            let have = src.ensure(ulen).map_err(io)?;
            if have < ulen {
                return Err(trunc(have, u64::from(len)));
            }
            let b = src.avail().get(..ulen).unwrap_or_default();
            let trailer = e.u32(b, ulen - 4);
            if trailer != len {
                return Err((
                    at,
                    CaptureErrorKind::BlockTrailer {
                        header: len,
                        trailer,
                    },
                ));
            }
            let pkt = match block_type {
                BT_SHB => {
                    self.section(b).map_err(|k| (at, k))?;
                    None
                }
                BT_IDB => {
                    self.interface(b).map_err(|k| (at, k))?;
                    None
                }
                BT_EPB | BT_PB => Some(self.packet(b, block_type, stats).map_err(|k| (at, k))?),
                BT_SPB => Some(self.simple(b).map_err(|k| (at, k))?),
                _ => {
                    stats.blocks_skipped += 1;
                    None
                }
            };
            match pkt {
                None => src.consume(ulen),
                Some(p) => {
                    let (block, blk) = src.take_with_block(p.len);
                    let data = blk
                        .get(p.data_off..p.data_off + p.caplen)
                        .unwrap_or_default();
                    return Ok(Some(Frame {
                        ts: p.ts,
                        origlen: p.origlen,
                        link: p.link,
                        interface: p.interface,
                        data,
                        block: Some(block),
                    }));
                }
            }
        }
    }

    /// Section Header Block: version check, forget the previous section's interfaces.
    fn section(&mut self, b: &[u8]) -> Result<(), CaptureErrorKind> {
        let e = self.endian;
        let (major, minor) = (e.u16(b, 12), e.u16(b, 14));
        // §4.1: a reader must not read a section whose major version it does not know.
        if major != 1 {
            return Err(CaptureErrorKind::PcapNgVersion { major, minor });
        }
        self.ifaces.clear();
        self.in_section = true;
        Ok(())
    }

    /// Interface Description Block: link type, snaplen, timestamp resolution and offset.
    fn interface(&mut self, b: &[u8]) -> Result<(), CaptureErrorKind> {
        if self.ifaces.len() >= MAX_INTERFACES {
            return Err(CaptureErrorKind::TooManyInterfaces(MAX_INTERFACES));
        }
        let e = self.endian;
        let mut iface = Iface {
            link: LinkType::from_raw(u32::from(e.u16(b, 8))),
            snaplen: e.u32(b, 12),
            // §4.2: without if_tsresol, timestamps are in microseconds.
            scale: TsScale::Mul(1_000),
            offset_s: 0,
        };
        let opts = b.get(16..b.len() - 4).unwrap_or_default();
        let mut bad = None;
        for_each_option(e, opts, |code, val| match (code, val) {
            (IF_TSRESOL, [v, ..]) => match TsScale::from_tsresol(*v) {
                Some(s) => iface.scale = s,
                None => bad = Some(*v),
            },
            (IF_TSOFFSET, v) if v.len() >= 8 => iface.offset_s = e.u64(v, 0) as i64,
            _ => {}
        });
        if let Some(v) = bad {
            return Err(CaptureErrorKind::TsResol(v));
        }
        self.ifaces.push(iface);
        Ok(())
    }

    /// Enhanced Packet Block (§4.3) or obsolete Packet Block (Appendix A): same offsets, except
    /// that the PB's interface id is 16 bits followed by a 16-bit drop count.
    fn packet(
        &mut self,
        b: &[u8],
        block_type: u32,
        stats: &mut CaptureStats,
    ) -> Result<PacketAt, CaptureErrorKind> {
        let e = self.endian;
        let interface = if block_type == BT_PB {
            u32::from(e.u16(b, 8))
        } else {
            e.u32(b, 8)
        };
        let caplen = e.u32(b, 20);
        let origlen = e.u32(b, 24);
        let room = (b.len() - 32) as u32;
        check_caplen(caplen, room)?;
        let iface = self.iface(interface)?;
        if iface.snaplen != 0 && caplen > iface.snaplen {
            stats.caplen_over_snaplen += 1;
        }
        let ts = iface.timestamp(e.u32(b, 12), e.u32(b, 16));
        self.last_ts = ts;
        Ok(PacketAt {
            len: b.len(),
            data_off: 28,
            caplen: caplen as usize,
            origlen,
            interface,
            link: iface.link,
            ts,
        })
    }

    /// Simple Packet Block (§4.4): interface 0, no timestamp (reuse the last one seen), captured
    /// length = min(original length, interface 0's snaplen, room in the block).
    fn simple(&mut self, b: &[u8]) -> Result<PacketAt, CaptureErrorKind> {
        let e = self.endian;
        let origlen = e.u32(b, 8);
        let room = (b.len() - 16) as u32;
        let iface = self.iface(0)?;
        let snap = if iface.snaplen == 0 {
            u32::MAX
        } else {
            iface.snaplen
        };
        let caplen = origlen.min(snap).min(room);
        check_caplen(caplen, room)?;
        Ok(PacketAt {
            len: b.len(),
            data_off: 12,
            caplen: caplen as usize,
            origlen,
            interface: 0,
            link: iface.link,
            ts: self.last_ts,
        })
    }

    fn iface(&self, id: u32) -> Result<Iface, CaptureErrorKind> {
        self.ifaces
            .get(id as usize)
            .copied()
            .ok_or(CaptureErrorKind::UnknownInterface {
                id,
                count: self.ifaces.len(),
            })
    }
}

fn check_caplen(caplen: u32, room: u32) -> Result<(), CaptureErrorKind> {
    if caplen > MAX_CAPLEN {
        return Err(CaptureErrorKind::CaplenTooLarge {
            caplen,
            limit: MAX_CAPLEN,
        });
    }
    if caplen > room {
        return Err(CaptureErrorKind::CaplenExceedsBlock { caplen, room });
    }
    Ok(())
}

/// Walks the options of a block body (§3.5: code u16, length u16, value padded to 4 bytes).
/// Stops at `opt_endofopt` or at the first option that runs past the body: options are advisory,
/// a malformed one only loses the options after it.
fn for_each_option(e: Endian, opts: &[u8], mut f: impl FnMut(u16, &[u8])) {
    let mut i = 0usize;
    while let Some(h) = opts.get(i..i + 4) {
        let code = e.u16(h, 0);
        let len = usize::from(e.u16(h, 2));
        if code == OPT_ENDOFOPT {
            break;
        }
        let Some(val) = opts.get(i + 4..i + 4 + len) else {
            break;
        };
        f(code, val);
        i += 4 + len.div_ceil(4) * 4;
    }
}
