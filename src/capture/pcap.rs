//! Classic pcap (draft-ietf-opsawg-pcap, "PCAP Capture File Format"; tcpdump.org `pcap-savefile(5)`).
//!
//! ```text
//! file header (24 bytes)                      record header (16 bytes), then caplen bytes
//!  0  magic   a1b2c3d4 µs | a1b23c4d ns        0  ts seconds
//!  4  major 2, 6 minor 4                       4  ts µs or ns (per magic)
//!  8  reserved (thiszone), 12 reserved         8  captured length (caplen)
//! 16  snaplen                                 12  original length
//! 20  link type (low 16 bits) + FCS info
//! ```
//! All fields are in the writer's byte order; the magic read in the other order says "swap".
//! The "modified" (Kuznetsov) variant, magic a1b2cd34, adds 8 bytes to each record header
//! (ifindex u32, protocol u16, packet type u8, pad u8) and is otherwise the same.

use super::source::ByteSource;
use super::{CaptureErrorKind, CaptureStats, Endian, Fail, Frame, LinkType, Timestamp, MAX_CAPLEN};

/// Length of the pcap file header.
const FILE_HEADER_LEN: usize = 24;
/// Length of a standard record header.
const RECORD_HEADER_LEN: usize = 16;
/// Length of a Kuznetsov "modified pcap" record header (16 + ifindex 4 + protocol 2 + type 1 + pad 1).
const MODIFIED_RECORD_HEADER_LEN: usize = 24;

/// Per-file state of a classic pcap stream.
pub(crate) struct PcapState {
    endian: Endian,
    /// Nanosecond timestamps (magic a1b23c4d) rather than microseconds.
    nanos: bool,
    record_header_len: usize,
    snaplen: u32,
    link: LinkType,
}

impl PcapState {
    /// Recognises the four standard magics (µs/ns × both byte orders) and the modified-pcap magic.
    pub(crate) fn sniff(head: &[u8]) -> Option<PcapState> {
        let m: [u8; 4] = head.get(..4)?.try_into().ok()?;
        let (endian, nanos, modified) = match m {
            [0xa1, 0xb2, 0xc3, 0xd4] => (Endian::Big, false, false),
            [0xd4, 0xc3, 0xb2, 0xa1] => (Endian::Little, false, false),
            [0xa1, 0xb2, 0x3c, 0x4d] => (Endian::Big, true, false),
            [0x4d, 0x3c, 0xb2, 0xa1] => (Endian::Little, true, false),
            [0xa1, 0xb2, 0xcd, 0x34] => (Endian::Big, false, true),
            [0x34, 0xcd, 0xb2, 0xa1] => (Endian::Little, false, true),
            _ => return None,
        };
        Some(PcapState {
            endian,
            nanos,
            record_header_len: if modified {
                MODIFIED_RECORD_HEADER_LEN
            } else {
                RECORD_HEADER_LEN
            },
            snaplen: 0,
            link: LinkType::Other(u32::MAX),
        })
    }

    /// Reads the 24-byte file header.
    pub(crate) fn read_header(mut self, src: &mut ByteSource) -> Result<PcapState, Fail> {
        let have = src.ensure(FILE_HEADER_LEN).map_err(|e| (0, e.into()))?;
        if have < FILE_HEADER_LEN {
            return Err((
                0,
                CaptureErrorKind::TruncatedHeader {
                    have,
                    need: FILE_HEADER_LEN,
                },
            ));
        }
        let h = src.take(FILE_HEADER_LEN);
        let e = self.endian;
        let (major, minor) = (e.u16(h, 4), e.u16(h, 6));
        // Version 2.4 is what everything writes; libpcap also reads 2.2/2.3 (same record layout).
        if major != 2 {
            return Err((0, CaptureErrorKind::PcapVersion { major, minor }));
        }
        self.snaplen = e.u32(h, 16);
        // The link type is the low 16 bits; bits 26-31 carry FCS information (draft-ietf-opsawg-pcap
        // §4, "LinkType and additional information"). The decoder does not need the FCS length:
        // IP lengths already trim any trailer.
        self.link = LinkType::from_raw(e.u32(h, 20) & 0xffff);
        Ok(self)
    }

    /// The next record, or `None` at a clean end of file.
    #[inline]
    pub(crate) fn next<'a>(
        &mut self,
        src: &'a mut ByteSource,
        stats: &mut CaptureStats,
    ) -> Result<Option<Frame<'a>>, Fail> {
        let at = src.offset();
        let hlen = self.record_header_len;
        let have = src.ensure(hlen).map_err(|e| (at, e.into()))?;
        if have == 0 {
            return Ok(None);
        }
        if have < hlen {
            return Err((
                at,
                CaptureErrorKind::TruncatedRecord {
                    have: have as u64,
                    need: hlen as u64,
                },
            ));
        }
        let e = self.endian;
        let h = src.avail();
        let secs = e.u32(h, 0);
        let frac = e.u32(h, 4);
        let caplen = e.u32(h, 8);
        let origlen = e.u32(h, 12);
        if caplen > MAX_CAPLEN {
            return Err((
                at,
                CaptureErrorKind::CaplenTooLarge {
                    caplen,
                    limit: MAX_CAPLEN,
                },
            ));
        }
        if self.snaplen != 0 && caplen > self.snaplen {
            stats.caplen_over_snaplen += 1;
        }
        // caplen ≤ MAX_CAPLEN, so `need` ≤ BUF_LEN and fits in the buffer.
        let need = hlen + caplen as usize;
        let have = src.ensure(need).map_err(|e| (at, e.into()))?;
        if have < need {
            return Err((
                at,
                CaptureErrorKind::TruncatedRecord {
                    have: have as u64,
                    need: need as u64,
                },
            ));
        }
        let nanos = if self.nanos {
            frac
        } else {
            frac.saturating_mul(1000)
        };
        let link = self.link;
        let (block, rec) = src.take_with_block(need);
        Ok(Some(Frame {
            ts: Timestamp::from_parts(u64::from(secs), nanos),
            origlen,
            link,
            interface: 0,
            data: rec.get(hlen..).unwrap_or_default(),
            block: Some(block),
        }))
    }
}
