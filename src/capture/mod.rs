//! # Capture: files in, frames out
//!
//! [`CaptureReader`] reads classic pcap (both byte orders, µs and ns timestamps, and the
//! Kuznetsov "modified" variant) and pcapng (several sections and interfaces, EPB/SPB/PB), plain
//! or gzip-compressed, and hands out one [`Frame`] at a time.
//!
//! Contract:
//! - **No per-frame allocation or syscall.** The file is read in [`READ_BUF_LEN`] chunks into
//!   one buffer allocated at open; a [`Frame`] borrows its bytes from that buffer (a lending
//!   iterator: the frame is valid until the next call).
//! - **Bounded.** A record's captured length is checked against [`MAX_CAPLEN`] and against the
//!   room its pcapng block has *before* anything is buffered; the number of pcapng interfaces is
//!   capped by [`MAX_INTERFACES`]. Unknown pcapng blocks of any size are skipped without
//!   being buffered.
//! - **Corrupt or truncated files** give every frame before the damage, then one
//!   [`CaptureError`] naming the file and the byte offset (in the uncompressed stream) of the
//!   record or block that is bad. After an error the reader is finished: `next_frame` returns
//!   `Ok(None)`.
//! - Time comes from the file. Nothing here reads the OS clock.

mod pcap;
mod pcapng;
mod source;
#[cfg(test)]
pub(crate) mod tests;

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::Arc;

pub use dbtap_core::time::Timestamp;

pub use pcapng::MAX_INTERFACES;
pub use source::BUF_LEN as READ_BUF_LEN;
use source::{prefixed, ByteSource};

/// Largest captured length accepted for one frame: 256 KiB. libpcap's own cap
/// (`MAXIMUM_SNAPLEN` = 262144 in `pcap-int.h`) is the same number, and Wireshark's
/// `WTAP_MAX_PACKET_SIZE_STANDARD` is 262144 too, so no real capture tool writes more. A larger
/// value means a corrupt record header; we stop there instead of allocating or reading on.
pub const MAX_CAPLEN: u32 = 256 * 1024;

/// The link-layer header type of a frame (tcpdump.org `linktypes.html`, `pcap-linktype(7)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// `LINKTYPE_ETHERNET` (1): IEEE 802.3 / Ethernet II.
    Ethernet,
    /// `LINKTYPE_LINUX_SLL` (113): Linux "cooked" capture v1, 16-byte header.
    LinuxSll,
    /// `LINKTYPE_LINUX_SLL2` (276): Linux "cooked" capture v2, 20-byte header.
    LinuxSll2,
    /// `LINKTYPE_RAW` (101), and the legacy `DLT_RAW` values 12 and 14 that old files carry:
    /// a raw IPv4 or IPv6 packet, told apart by the version nibble.
    Raw,
    /// `LINKTYPE_IPV4` (228): raw IPv4.
    Ipv4,
    /// `LINKTYPE_IPV6` (229): raw IPv6.
    Ipv6,
    /// `LINKTYPE_NULL` (0): BSD loopback, a 4-byte address family in the writer's *host* byte order.
    Null,
    /// `LINKTYPE_LOOP` (108): OpenBSD loopback, a 4-byte address family in network byte order.
    Loop,
    /// Any other link type; frames are handed out, the decoder counts them as not-TCP.
    Other(u32),
}

impl LinkType {
    /// Maps a `LINKTYPE_*` value (pcap header or pcapng IDB) to a [`LinkType`].
    pub const fn from_raw(v: u32) -> Self {
        match v {
            0 => LinkType::Null,
            1 => LinkType::Ethernet,
            12 | 14 | 101 => LinkType::Raw,
            108 => LinkType::Loop,
            113 => LinkType::LinuxSll,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            276 => LinkType::LinuxSll2,
            other => LinkType::Other(other),
        }
    }
}

/// One captured frame. Borrows the reader's buffer: valid until the next `next_frame` call.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// Capture time, nanoseconds since the Unix epoch.
    pub ts: Timestamp,
    /// Length of the frame on the wire (may exceed `data.len()` when the snaplen cut it).
    pub origlen: u32,
    /// Link-layer header type of `data`.
    pub link: LinkType,
    /// pcapng interface id within the current section (0 for classic pcap and SPB).
    pub interface: u32,
    /// The captured bytes (`caplen` of them).
    pub data: &'a [u8],
    /// The reference-counted read buffer `data` lives in, when it does: a clone keeps those bytes
    /// alive and unchanged after the reader moves on, so the pipeline can hand payloads to its
    /// workers without copying them.
    pub block: Option<&'a Arc<Vec<u8>>>,
}

/// Which container the file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Classic libpcap format.
    Pcap,
    /// pcapng (draft-ietf-opsawg-pcapng).
    PcapNg,
}

/// What went wrong, without the position (see [`CaptureError`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureErrorKind {
    /// The OS or the gzip decoder reported an error.
    #[error("read error: {0}")]
    Io(#[from] io::Error),
    /// The file (or the decompressed stream) is empty.
    #[error("empty file")]
    Empty,
    /// The first bytes are no pcap, pcapng or gzip magic.
    #[error("not a pcap, pcapng or gzip file (starts with {0:02x?})")]
    UnknownFormat(Vec<u8>),
    /// The file ends inside the file header or a section header.
    #[error("truncated file header: {have} of {need} bytes")]
    TruncatedHeader {
        /// Bytes present.
        have: usize,
        /// Bytes the header needs.
        need: usize,
    },
    /// The file ends inside a pcap record (the common case: a capture cut while being written).
    #[error("truncated record: {have} of {need} bytes")]
    TruncatedRecord {
        /// Bytes present.
        have: u64,
        /// Bytes the record (header + captured data) needs.
        need: u64,
    },
    /// The file ends inside a pcapng block.
    #[error("truncated block: {have} of {need} bytes")]
    TruncatedBlock {
        /// Bytes present.
        have: u64,
        /// Bytes the block needs.
        need: u64,
    },
    /// pcap header version other than 2.x.
    #[error("unsupported pcap version {major}.{minor}")]
    PcapVersion {
        /// Major version found.
        major: u16,
        /// Minor version found.
        minor: u16,
    },
    /// pcapng section header version other than 1.x.
    #[error("unsupported pcapng version {major}.{minor}")]
    PcapNgVersion {
        /// Major version found.
        major: u16,
        /// Minor version found.
        minor: u16,
    },
    /// The section header's byte-order magic is neither 0x1A2B3C4D nor its swap.
    #[error("bad pcapng byte-order magic {0:02x?}")]
    ByteOrderMagic([u8; 4]),
    /// A captured length over [`MAX_CAPLEN`].
    #[error("captured length {caplen} exceeds the limit of {limit} bytes")]
    CaplenTooLarge {
        /// Captured length in the record.
        caplen: u32,
        /// The limit.
        limit: u32,
    },
    /// A pcapng packet block whose captured length does not fit in the block.
    #[error("captured length {caplen} does not fit in the block ({room} bytes of room)")]
    CaplenExceedsBlock {
        /// Captured length in the block.
        caplen: u32,
        /// Bytes the block has for packet data.
        room: u32,
    },
    /// A pcapng block length that is not a multiple of 4, too small for its type, or too large.
    #[error("bad block length {len} for block type {block_type:#010x}: {why}")]
    BlockLength {
        /// Block type.
        block_type: u32,
        /// Length found.
        len: u32,
        /// Which rule it breaks.
        why: &'static str,
    },
    /// The trailing copy of the block length differs from the leading one.
    #[error("block length {header} does not match its trailer {trailer}")]
    BlockTrailer {
        /// Leading length.
        header: u32,
        /// Trailing length.
        trailer: u32,
    },
    /// A pcapng block before the first section header.
    #[error("block {0:#010x} before any section header")]
    NoSection(u32),
    /// A packet block naming an interface the section has not described.
    #[error("packet for interface {id}, but the section describes {count} interface(s)")]
    UnknownInterface {
        /// Interface id in the block.
        id: u32,
        /// Interfaces described so far in this section.
        count: usize,
    },
    /// More interface description blocks in one section than [`MAX_INTERFACES`].
    #[error("more than {0} interfaces in one section")]
    TooManyInterfaces(usize),
    /// An `if_tsresol` value we cannot represent (10^-n with n > 19).
    #[error("unsupported if_tsresol {0:#04x}")]
    TsResol(u8),
}

/// A capture file error: the file, the byte offset and what went wrong.
///
/// `Display` is `"<path>: at byte <offset>: <what>"`; for a gzip file the offset is in the
/// decompressed capture stream, and the message says so.
#[derive(Debug)]
pub struct CaptureError {
    /// The file, as given to [`CaptureReader::open`].
    pub path: String,
    /// Offset of the bad record / block / header in the (uncompressed) capture stream.
    pub offset: u64,
    /// True when the file is gzip-compressed (the offset is in the decompressed stream).
    pub compressed: bool,
    /// What went wrong.
    pub kind: CaptureErrorKind,
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.compressed {
            write!(
                f,
                "{}: at byte {} of the decompressed stream: {}",
                self.path, self.offset, self.kind
            )
        } else {
            write!(f, "{}: at byte {}: {}", self.path, self.offset, self.kind)
        }
    }
}

impl std::error::Error for CaptureError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            CaptureErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// A failure inside a format parser: stream offset + kind. The reader adds the path.
pub(crate) type Fail = (u64, CaptureErrorKind);

/// Counters of the reader (plain `u64`s; the pipeline aggregates them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Frames handed out.
    pub frames: u64,
    /// Captured bytes handed out.
    pub captured_bytes: u64,
    /// Frames whose captured length exceeds the file's / interface's snaplen. Accepted, as
    /// libpcap (`sf-pcap.c`) and Wireshark accept them, since old writers got the snaplen wrong;
    /// only [`MAX_CAPLEN`] is fatal.
    pub caplen_over_snaplen: u64,
    /// pcapng blocks skipped (name resolution, statistics, decryption secrets, custom, unknown).
    pub blocks_skipped: u64,
}

enum State {
    Pcap(pcap::PcapState),
    PcapNg(pcapng::NgState),
    /// After an error (or before the first header was read): no more frames.
    Done,
}

/// Reads frames from a pcap / pcapng file, plain or gzip-compressed.
pub struct CaptureReader {
    path: String,
    src: ByteSource,
    state: State,
    format: Format,
    compressed: bool,
    file_len: Option<u64>,
    stats: CaptureStats,
}

/// The input name that stands for standard input.
pub const STDIN: &str = "-";

/// How an input is named in reports and errors: its path, or `stdin` for `-`.
pub fn input_name(path: &Path) -> String {
    if path.as_os_str() == STDIN {
        "stdin".into()
    } else {
        path.display().to_string()
    }
}

/// First two bytes of a gzip member (RFC 1952 §2.3.1: ID1 = 0x1f, ID2 = 0x8b).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

impl CaptureReader {
    /// Opens `path` (`-`: standard input), sniffs gzip / pcap / pcapng from the first bytes and
    /// reads the file header. The input is read once from start to end and never sought, so a
    /// pipe, a FIFO or standard input does as well as a file.
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        let shown = input_name(path);
        let err = |offset: u64, compressed: bool, kind: CaptureErrorKind| CaptureError {
            path: shown.clone(),
            offset,
            compressed,
            kind,
        };
        let mut file = if path.as_os_str() == STDIN {
            std::io::stdin()
                .as_fd()
                .try_clone_to_owned()
                .map(File::from)
        } else {
            File::open(path)
        }
        .map_err(|e| err(0, false, e.into()))?;
        // A regular file's size, for progress (a pipe's is 0: unknown).
        let file_len = file
            .metadata()
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len());
        let mut magic = [0u8; 2];
        let n = read_up_to(&mut file, &mut magic).map_err(|e| err(0, false, e.into()))?;
        let compressed = n == 2 && magic == GZIP_MAGIC;
        let input = prefixed(magic, n, file);
        let mut src = if compressed {
            ByteSource::gzip(input)
        } else {
            ByteSource::plain(input)
        };
        let (state, format) = match Self::sniff(&mut src) {
            Ok(v) => v,
            Err((off, kind)) => return Err(err(off, compressed, kind)),
        };
        Ok(CaptureReader {
            path: shown,
            src,
            state,
            format,
            compressed,
            file_len,
            stats: CaptureStats::default(),
        })
    }

    fn sniff(src: &mut ByteSource) -> Result<(State, Format), Fail> {
        let have = src.ensure(4).map_err(|e| (0, e.into()))?;
        let head = src.avail();
        if have == 0 {
            return Err((0, CaptureErrorKind::Empty));
        }
        if let Some(pcap) = pcap::PcapState::sniff(head) {
            let st = pcap.read_header(src)?;
            return Ok((State::Pcap(st), Format::Pcap));
        }
        if pcapng::NgState::sniff(head) {
            return Ok((State::PcapNg(pcapng::NgState::new()), Format::PcapNg));
        }
        let shown = head.get(..have.min(4)).unwrap_or_default().to_vec();
        Err((0, CaptureErrorKind::UnknownFormat(shown)))
    }

    /// The next frame, `Ok(None)` at a clean end of file. After an `Err` the reader is finished
    /// and returns `Ok(None)`.
    #[inline]
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, CaptureError> {
        let res = match &mut self.state {
            State::Pcap(st) => st.next(&mut self.src, &mut self.stats),
            State::PcapNg(st) => st.next(&mut self.src, &mut self.stats),
            State::Done => return Ok(None),
        };
        match res {
            Ok(Some(f)) => {
                self.stats.frames += 1;
                self.stats.captured_bytes += f.data.len() as u64;
                Ok(Some(f))
            }
            Ok(None) => {
                self.state = State::Done;
                Ok(None)
            }
            Err((offset, kind)) => {
                self.state = State::Done;
                Err(CaptureError {
                    path: self.path.clone(),
                    offset,
                    compressed: self.compressed,
                    kind,
                })
            }
        }
    }

    /// Bytes of the file consumed so far (compressed bytes for a gzip file), for a progress bar.
    pub fn position(&self) -> u64 {
        self.src
            .compressed_pos()
            .unwrap_or_else(|| self.src.offset())
    }

    /// Bytes of the (uncompressed) capture stream consumed so far: the offset errors refer to.
    pub fn stream_offset(&self) -> u64 {
        self.src.offset()
    }

    /// Size of the file on disk, when the OS tells it.
    pub fn file_len(&self) -> Option<u64> {
        self.file_len
    }

    /// Container format of the file.
    pub fn format(&self) -> Format {
        self.format
    }

    /// True when the file is gzip-compressed.
    pub fn is_compressed(&self) -> bool {
        self.compressed
    }

    /// Reader counters.
    pub fn stats(&self) -> &CaptureStats {
        &self.stats
    }
}

/// Reads until `buf` is full or EOF; returns the bytes read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Byte order of a file or section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endian {
    Little,
    Big,
}

impl Endian {
    #[inline]
    pub(crate) fn u16(self, b: &[u8], at: usize) -> u16 {
        let mut a = [0u8; 2];
        if let Some(s) = b.get(at..at + 2) {
            a.copy_from_slice(s);
        }
        match self {
            Endian::Little => u16::from_le_bytes(a),
            Endian::Big => u16::from_be_bytes(a),
        }
    }

    #[inline]
    pub(crate) fn u32(self, b: &[u8], at: usize) -> u32 {
        let mut a = [0u8; 4];
        if let Some(s) = b.get(at..at + 4) {
            a.copy_from_slice(s);
        }
        match self {
            Endian::Little => u32::from_le_bytes(a),
            Endian::Big => u32::from_be_bytes(a),
        }
    }

    #[inline]
    pub(crate) fn u64(self, b: &[u8], at: usize) -> u64 {
        let mut a = [0u8; 8];
        if let Some(s) = b.get(at..at + 8) {
            a.copy_from_slice(s);
        }
        match self {
            Endian::Little => u64::from_le_bytes(a),
            Endian::Big => u64::from_be_bytes(a),
        }
    }
}
