//! Framing: the 4-byte packet header and the 7-byte compressed-protocol header, and the
//! decompressors of the compressed protocol.
//!
//! "MySQL Packets": payload_length int<3>, sequence_id int<1>, payload. A payload of 0xFFFFFF
//! bytes or more is split into packets of 0xFFFFFF bytes followed by a shorter one (an exact
//! multiple ends with an empty packet).
//!
//! "Compression": compressed_length int<3>, compressed_sequence_id int<1>,
//! uncompressed_length int<3>, then the compressed payload; an uncompressed length of 0 means
//! the payload is stored as is. Every frame is an independent zlib (or zstd, with
//! CLIENT_ZSTD_COMPRESSION_ALGORITHM) stream, and the packets inside may span frames.

use crate::wire::le;

/// Bytes of a packet header.
pub const HEADER_LEN: usize = 4;
/// Payload length that says "the payload continues in the next packet".
pub const MAX_PACKET: usize = 0xff_ffff;
/// Bytes of a compressed-frame header.
pub const COMP_HEADER_LEN: usize = 7;
/// Decompressed bytes produced per step before the inner packets are parsed: the inner buffer
/// holds at most one unfinished inner message plus this.
pub const INFLATE_CHUNK: usize = 64 * 1024;
/// Largest zstd window accepted: MySQL compresses at most 16 MiB per frame, and this bounds the
/// decoder's allocation for hostile frames.
pub const MAX_ZSTD_WINDOW: u64 = 16 * 1024 * 1024;

/// A packet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Payload length.
    pub len: usize,
    /// Sequence id.
    pub seq: u8,
}

impl Header {
    /// Parse the first 4 bytes of `b`.
    pub fn parse(b: &[u8]) -> Option<Header> {
        let h = b.get(..HEADER_LEN)?;
        Some(Header {
            len: le(h.get(..3)?) as usize,
            seq: *h.get(3)?,
        })
    }
    /// The header in these 4 bytes (for a caller that already holds them, e.g. through a slice
    /// pattern).
    pub fn from_bytes([l0, l1, l2, seq]: [u8; HEADER_LEN]) -> Header {
        Header {
            len: usize::from(l0) | usize::from(l1) << 8 | usize::from(l2) << 16,
            seq,
        }
    }
    /// Header plus payload.
    pub fn total(self) -> usize {
        HEADER_LEN + self.len
    }
    /// The payload continues in the next packet.
    pub fn continues(self) -> bool {
        self.len == MAX_PACKET
    }
}

/// A compressed-frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompHeader {
    /// Compressed payload length.
    pub clen: usize,
    /// Compressed sequence id.
    pub seq: u8,
    /// Uncompressed length; 0 = stored uncompressed.
    pub ulen: usize,
}

impl CompHeader {
    /// Parse the first 7 bytes of `b`.
    pub fn parse(b: &[u8]) -> Option<CompHeader> {
        let h = b.get(..COMP_HEADER_LEN)?;
        Some(CompHeader {
            clen: le(h.get(..3)?) as usize,
            seq: *h.get(3)?,
            ulen: le(h.get(4..7)?) as usize,
        })
    }
}

/// Compression algorithm of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algo {
    /// zlib (CLIENT_COMPRESS).
    #[default]
    Zlib,
    /// zstd (CLIENT_ZSTD_COMPRESSION_ALGORITHM).
    Zstd,
}

/// zlib stream header: CMF 0x78 (deflate, 32K window) and a FLG byte for each compression level.
pub fn is_zlib_head(b: &[u8]) -> bool {
    matches!(b, [0x78, 0x01 | 0x5e | 0x9c | 0xda, ..])
}

/// zstd frame magic number 0xFD2FB528, little-endian.
pub fn is_zstd_head(b: &[u8]) -> bool {
    b.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
}

/// Bytes of a zstd frame header at the most: magic number 4, frame header descriptor 1, window
/// descriptor 1, dictionary id 4, frame content size 8 (RFC 8878 3.1.1.1).
const MAX_ZSTD_FRAME_HEADER: usize = 18;
/// A zstd block header (RFC 8878 3.1.1.2: 3 bytes, little-endian: bit 0 Last_Block, bits 1-2
/// Block_Type, bits 3-23 Block_Size).
const ZSTD_BLOCK_HEADER: usize = 3;
/// Block_Maximum_Size (RFC 8878 3.1.1.2.4): a block's size never exceeds 128 KiB.
const MAX_ZSTD_BLOCK: usize = 128 * 1024;
/// Compressed bytes of a zstd frame held between its parts at the most: one unfinished frame
/// header or block and the checksum; with the next part appended, one part more.
const MAX_ZSTD_CARRY: usize = MAX_ZSTD_FRAME_HEADER + ZSTD_BLOCK_HEADER + MAX_ZSTD_BLOCK + 4;

/// Where a zstd frame inflated in parts stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum ZstdStage {
    /// The frame header is still to come.
    #[default]
    Header,
    /// Blocks (`checksum`: a 4-byte content checksum follows the last one).
    Blocks { checksum: bool },
    /// The last block is done; the content checksum is still to come.
    Checksum,
}

/// Decompresses one frame in bounded steps.
pub struct Inflater {
    zlib: flate2::Decompress,
    zstd: Option<ruzstd::decoding::FrameDecoder>,
    /// A zstd frame inflated in parts: compressed bytes carried to the next part, and where the
    /// frame stands.
    zstd_carry: Vec<u8>,
    zstd_stage: ZstdStage,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Inflater")
    }
}

impl Default for Inflater {
    fn default() -> Self {
        Inflater {
            zlib: flate2::Decompress::new(true),
            zstd: None,
            zstd_carry: Vec::new(),
            zstd_stage: ZstdStage::Header,
            scratch: Vec::new(),
        }
    }
}

/// Result of decompressing one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflateEnd {
    /// Exactly the declared length came out.
    Done,
    /// The frame would inflate beyond its declared length: output cut there (a "zip bomb").
    Cut,
    /// The compressed data is corrupt (or shorter than declared).
    Corrupt,
}

/// Heap an inflater's zlib state is counted for: the 32 KiB window of deflate (RFC 1951 3.2.5:
/// distances up to 32,768) plus roughly 11 KiB of decoding tables.
const ZLIB_STATE: usize = 43 * 1024;

impl Inflater {
    /// Approximate heap bytes held, for the flow table's memory cap: the zlib state, the
    /// buffers, and a zstd decoder's window (at most the frame's content size, itself at most
    /// [`MAX_ZSTD_WINDOW`]).
    pub fn heap(&self) -> usize {
        let zstd = self.zstd.as_ref().map_or(0, |d| {
            usize::try_from(d.content_size().min(MAX_ZSTD_WINDOW)).unwrap_or(usize::MAX)
        });
        ZLIB_STATE + self.scratch.capacity() + self.zstd_carry.capacity() + zstd
    }

    /// Decompress `input` (one frame payload) whose declared output is `ulen` bytes, handing the
    /// output to `sink` in pieces of at most [`INFLATE_CHUNK`] bytes. `sink` returns false to
    /// stop early.
    pub fn run(
        &mut self,
        algo: Algo,
        input: &[u8],
        ulen: usize,
        mut sink: impl FnMut(&[u8]) -> bool,
    ) -> InflateEnd {
        self.scratch.resize(INFLATE_CHUNK, 0);
        let mut produced = 0usize;
        match algo {
            Algo::Zlib => {
                let mut produced = 0usize;
                self.zlib_part(input, true, ulen, &mut produced, sink)
                    .unwrap_or(InflateEnd::Corrupt)
            }
            Algo::Zstd => {
                use ruzstd::io::Read;
                let dec = self.zstd.get_or_insert_with(zstd_decoder);
                let mut src = input;
                let Ok(mut s) = ruzstd::decoding::StreamingDecoder::new_with_decoder(&mut src, dec)
                else {
                    return InflateEnd::Corrupt;
                };
                loop {
                    let dst = self.scratch.get_mut(..INFLATE_CHUNK).unwrap_or_default();
                    let n = match s.read(dst) {
                        Ok(n) => n,
                        Err(_) => return InflateEnd::Corrupt,
                    };
                    if n == 0 {
                        return if produced == ulen {
                            InflateEnd::Done
                        } else {
                            InflateEnd::Corrupt
                        };
                    }
                    let out = self.scratch.get(..n).unwrap_or_default();
                    if let Some(end) = hand_on(out, &mut produced, ulen, &mut sink) {
                        return end;
                    }
                }
            }
        }
    }
}

impl Inflater {
    /// Inflate one more part of a zlib frame whose declared output is `ulen` bytes (`start`:
    /// this part begins the frame). `produced` counts output across parts. Output goes to `sink`
    /// in pieces of at most [`INFLATE_CHUNK`] bytes; `sink` returns false to stop. Returns `None`
    /// when the part was consumed and the stream goes on in the next part, else how it ended.
    /// The compressed input is never copied: a frame too large to buffer is inflated as it
    /// streams past.
    pub fn zlib_part(
        &mut self,
        input: &[u8],
        start: bool,
        ulen: usize,
        produced: &mut usize,
        mut sink: impl FnMut(&[u8]) -> bool,
    ) -> Option<InflateEnd> {
        self.scratch.resize(INFLATE_CHUNK, 0);
        if start {
            self.zlib.reset(true);
        }
        let mut at = 0usize;
        loop {
            let in_before = self.zlib.total_in();
            let out_before = self.zlib.total_out();
            let src = input.get(at..).unwrap_or_default();
            let room = ulen.saturating_sub(*produced).clamp(1, INFLATE_CHUNK);
            let dst = self.scratch.get_mut(..room).unwrap_or_default();
            let st = self
                .zlib
                .decompress(src, dst, flate2::FlushDecompress::None);
            let used = (self.zlib.total_in() - in_before) as usize;
            at += used;
            let n = (self.zlib.total_out() - out_before) as usize;
            let out = self.scratch.get(..n).unwrap_or_default();
            if n > 0 {
                if let Some(end) = hand_on(out, produced, ulen, &mut sink) {
                    return Some(end);
                }
            }
            match st {
                Ok(flate2::Status::StreamEnd) => {
                    return Some(if *produced == ulen {
                        InflateEnd::Done
                    } else {
                        InflateEnd::Corrupt
                    });
                }
                Ok(_) if used == 0 && n == 0 => {
                    return if at >= input.len() {
                        None
                    } else {
                        Some(InflateEnd::Corrupt)
                    };
                }
                Ok(_) => {}
                Err(_) => return Some(InflateEnd::Corrupt),
            }
        }
    }
}

/// Hand one piece of a frame's output to `sink`, counting it in `produced`. More than the
/// declared `ulen` is a "zip bomb" (or garbage): the output is cut at the declared length
/// (`Cut`). `Done` when `sink` asks to stop; `None` to go on.
fn hand_on(
    out: &[u8],
    produced: &mut usize,
    ulen: usize,
    sink: &mut impl FnMut(&[u8]) -> bool,
) -> Option<InflateEnd> {
    if *produced + out.len() > ulen {
        sink(out.get(..ulen - *produced).unwrap_or_default());
        *produced = ulen;
        return Some(InflateEnd::Cut);
    }
    *produced += out.len();
    (!sink(out)).then_some(InflateEnd::Done)
}

/// A zstd decoder whose window is bounded by [`MAX_ZSTD_WINDOW`].
fn zstd_decoder() -> ruzstd::decoding::FrameDecoder {
    let mut d = ruzstd::decoding::FrameDecoder::new();
    d.set_max_window_size(MAX_ZSTD_WINDOW);
    d
}

/// Length of the zstd frame header that starts `b` (RFC 8878 3.1.1.1.1: the descriptor's
/// Frame_Content_Size_flag, Single_Segment_flag and Dictionary_ID_flag give the sizes of the
/// optional fields), or `None` before the descriptor byte.
fn zstd_header_len(b: &[u8]) -> Option<usize> {
    let fhd = *b.get(4)?;
    let single_segment = fhd & 0x20 != 0;
    let content_size = match fhd >> 6 {
        0 => usize::from(single_segment),
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let dictionary_id = match fhd & 0x03 {
        0 => 0,
        1 => 1,
        2 => 2,
        _ => 4,
    };
    let window = usize::from(!single_segment);
    Some(4 + 1 + window + dictionary_id + content_size)
}

impl Inflater {
    /// Inflate one more part of a zstd frame whose declared output is `ulen` bytes, as
    /// [`Inflater::zlib_part`] does for zlib. A part may end anywhere; the decoder only takes
    /// whole units, so the frame header and each block are handed to it once complete (RFC 8878
    /// 3.1.1: a frame header, blocks of at most 128 KiB, an optional 4-byte checksum), and an
    /// unfinished one is carried to the next part (at most [`MAX_ZSTD_CARRY`] bytes). One block
    /// is decoded at a time, its output handed on before the next: memory stays within the
    /// window and one block. The checksum is skipped, not verified.
    pub fn zstd_part(
        &mut self,
        input: &[u8],
        start: bool,
        ulen: usize,
        produced: &mut usize,
        mut sink: impl FnMut(&[u8]) -> bool,
    ) -> Option<InflateEnd> {
        self.scratch.resize(INFLATE_CHUNK, 0);
        if start {
            self.zstd = Some(zstd_decoder());
            self.zstd_carry.clear();
            self.zstd_stage = ZstdStage::Header;
        }
        // Whole units are read from the part itself; only an unfinished one is copied.
        let mut carry = std::mem::take(&mut self.zstd_carry);
        let from_input = carry.is_empty();
        if !from_input {
            carry.extend_from_slice(input);
        }
        let data: &[u8] = if from_input { input } else { &carry };
        let consumed = match self.zstd_units(data, ulen, produced, &mut sink) {
            Ok(consumed) => consumed,
            Err(end) => return Some(end),
        };
        if from_input {
            carry.extend_from_slice(input.get(consumed..).unwrap_or_default());
        } else if consumed > 0 {
            carry.drain(..consumed.min(carry.len()));
        }
        if carry.len() > MAX_ZSTD_CARRY {
            // Cannot happen (every unit's size is checked before it is waited for).
            return Some(InflateEnd::Corrupt);
        }
        self.zstd_carry = carry;
        None
    }

    /// Decode the whole units at the start of `data`: `Ok(bytes used)` when more input is
    /// needed, `Err(end)` when the frame ended (or failed, or `sink` stopped).
    fn zstd_units(
        &mut self,
        data: &[u8],
        ulen: usize,
        produced: &mut usize,
        sink: &mut impl FnMut(&[u8]) -> bool,
    ) -> Result<usize, InflateEnd> {
        use ruzstd::io::Read;
        let Some(dec) = self.zstd.as_mut() else {
            return Err(InflateEnd::Corrupt);
        };
        let mut at = 0usize;
        loop {
            let rest = data.get(at..).unwrap_or_default();
            match self.zstd_stage {
                ZstdStage::Header => {
                    let Some(n) = zstd_header_len(rest).filter(|&n| n <= rest.len()) else {
                        return Ok(at);
                    };
                    let mut src = rest.get(..n).unwrap_or_default();
                    if !is_zstd_head(src) || dec.init(&mut src).is_err() {
                        return Err(InflateEnd::Corrupt);
                    }
                    let checksum = rest.get(4).is_some_and(|&d| d & 0x04 != 0);
                    self.zstd_stage = ZstdStage::Blocks { checksum };
                    at += n;
                }
                ZstdStage::Blocks { checksum } => {
                    let [a, b, c, ..] = *rest else {
                        return Ok(at);
                    };
                    let h = u32::from(a) | (u32::from(b) << 8) | (u32::from(c) << 16);
                    let last = h & 1 != 0;
                    let size = (h >> 3) as usize;
                    let content = match (h >> 1) & 3 {
                        0 | 2 if size <= MAX_ZSTD_BLOCK => size,
                        1 if size <= MAX_ZSTD_BLOCK => 1, // RLE: one byte, repeated `size` times
                        _ => return Err(InflateEnd::Corrupt),
                    };
                    let Some(block) = rest.get(..ZSTD_BLOCK_HEADER + content) else {
                        return Ok(at);
                    };
                    match dec.decode_from_to(block, &mut []) {
                        Ok((read, _)) if read == block.len() => {}
                        _ => return Err(InflateEnd::Corrupt),
                    }
                    at += block.len();
                    loop {
                        let dst = self.scratch.get_mut(..INFLATE_CHUNK).unwrap_or_default();
                        let n = dec.read(dst).map_err(|_| InflateEnd::Corrupt)?;
                        if n == 0 {
                            break;
                        }
                        let out = self.scratch.get(..n).unwrap_or_default();
                        if let Some(end) = hand_on(out, produced, ulen, sink) {
                            return Err(end);
                        }
                    }
                    if last {
                        if !checksum {
                            return Err(self.zstd_finished(*produced, ulen));
                        }
                        self.zstd_stage = ZstdStage::Checksum;
                    }
                }
                ZstdStage::Checksum => {
                    if rest.len() < 4 {
                        return Ok(at);
                    }
                    return Err(self.zstd_finished(*produced, ulen));
                }
            }
        }
    }

    /// The frame's last unit is done: was the declared length produced?
    fn zstd_finished(&mut self, produced: usize, ulen: usize) -> InflateEnd {
        self.zstd_stage = ZstdStage::Header;
        if produced == ulen {
            InflateEnd::Done
        } else {
            InflateEnd::Corrupt
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn headers() {
        // payload length 0x000001, sequence id 0, then COM_QUIT.
        assert_eq!(
            Header::parse(&[1, 0, 0, 0, 1]),
            Some(Header { len: 1, seq: 0 })
        );
        assert!(Header::parse(&[0xff, 0xff, 0xff, 3]).unwrap().continues());
        assert_eq!(Header::parse(&[1, 0, 0]), None);
        // int<3> is little-endian: 0x030201 bytes, sequence id 9; the same read either way.
        assert_eq!(
            Header::from_bytes([1, 2, 3, 9]),
            Header {
                len: 0x03_02_01,
                seq: 9
            }
        );
        assert_eq!(
            Header::parse(&[1, 2, 3, 9]),
            Some(Header::from_bytes([1, 2, 3, 9]))
        );
        // compressed length 0x0b, seq 0, uncompressed length 0 (stored).
        assert_eq!(
            CompHeader::parse(&[0x0b, 0, 0, 0, 0, 0, 0]),
            Some(CompHeader {
                clen: 11,
                seq: 0,
                ulen: 0
            })
        );
    }

    #[test]
    fn zlib_frames_inflate_in_chunks_and_bombs_are_cut() {
        let data = vec![b'x'; 200_000];
        let z = zlib(&data);
        assert!(is_zlib_head(&z));
        let mut inf = Inflater::default();
        let mut got = Vec::new();
        let mut pieces = 0;
        let end = inf.run(Algo::Zlib, &z, data.len(), |c| {
            assert!(c.len() <= INFLATE_CHUNK);
            pieces += 1;
            got.extend_from_slice(c);
            true
        });
        assert_eq!(end, InflateEnd::Done);
        assert_eq!(got, data);
        assert!(pieces >= 4);
        // Declared 1000 bytes, inflates to 200 000: cut at 1000.
        let mut n = 0;
        assert_eq!(
            inf.run(Algo::Zlib, &z, 1000, |c| {
                n += c.len();
                true
            }),
            InflateEnd::Cut
        );
        assert_eq!(n, 1000);
        // Corrupt input.
        assert_eq!(
            inf.run(Algo::Zlib, &[0x78, 0x9c, 1, 2, 3], 10, |_| true),
            InflateEnd::Corrupt
        );
        assert_eq!(
            inf.run(Algo::Zlib, &z[..z.len() / 2], data.len(), |_| true),
            InflateEnd::Corrupt
        );
    }

    #[test]
    fn zlib_frames_inflate_in_parts() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let z = zlib(&data);
        let mut inf = Inflater::default();
        let mut got = Vec::new();
        let mut produced = 0;
        let parts: Vec<&[u8]> = z.chunks(1000).collect();
        let mut end = None;
        for (k, part) in parts.iter().enumerate() {
            end = inf.zlib_part(part, k == 0, data.len(), &mut produced, |c| {
                got.extend_from_slice(c);
                true
            });
            if k + 1 < parts.len() {
                assert_eq!(end, None);
            }
        }
        assert_eq!(end, Some(InflateEnd::Done));
        assert_eq!(got, data);
    }

    /// Bytes that compress poorly (a linear congruential sequence of letters).
    fn letters(n: usize) -> Vec<u8> {
        let mut x = 12345u32;
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                b'a' + (x >> 24) as u8 % 26
            })
            .collect()
    }

    fn zstd_in_parts(z: &[u8], part: usize, ulen: usize) -> (Vec<Option<InflateEnd>>, Vec<u8>) {
        let mut inf = Inflater::default();
        let mut got = Vec::new();
        let mut produced = 0;
        let mut ends = Vec::new();
        // As the parser does: parts until the frame ends (or fails), then no more.
        for (k, p) in z.chunks(part).enumerate() {
            let end = inf.zstd_part(p, k == 0, ulen, &mut produced, |c| {
                got.extend_from_slice(c);
                true
            });
            assert!(inf.zstd_carry.len() <= MAX_ZSTD_CARRY);
            ends.push(end);
            if end.is_some() {
                break;
            }
        }
        (ends, got)
    }

    #[test]
    fn zstd_frames_inflate_in_parts() {
        // 400 000 bytes: several blocks of at most 128 KiB, and a content checksum (ruzstd
        // writes one: Frame_Header_Descriptor bit 2).
        let data = letters(400_000);
        let z = ruzstd::encoding::compress_to_vec(
            &data[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        assert_eq!(z[4] & 0x04, 0x04);
        for part in [1000, 4096, 65_536, 200_000] {
            let (ends, got) = zstd_in_parts(&z, part, data.len());
            let (last, before) = ends.split_last().unwrap();
            assert!(before.iter().all(Option::is_none), "part {part}");
            assert_eq!(*last, Some(InflateEnd::Done), "part {part}");
            assert_eq!(got, data, "part {part}");
        }
        // Byte by byte, on a smaller frame.
        let small = [b"select ".repeat(300), letters(3000), vec![b'x'; 5000]].concat();
        let zs = ruzstd::encoding::compress_to_vec(
            &small[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        let (ends, got) = zstd_in_parts(&zs, 1, small.len());
        assert_eq!(ends.last(), Some(&Some(InflateEnd::Done)));
        assert_eq!(ends.iter().filter(|e| e.is_some()).count(), 1);
        assert_eq!(got, small);
        // Declared shorter than it inflates (a "zip bomb"): cut at the declared length.
        let (ends, got) = zstd_in_parts(&z, 4096, 1000);
        assert!(ends.contains(&Some(InflateEnd::Cut)));
        assert_eq!(got.len(), 1000);
        // Declared longer: corrupt at the end.
        let (ends, _) = zstd_in_parts(&z, 4096, data.len() + 1);
        assert_eq!(ends.last(), Some(&Some(InflateEnd::Corrupt)));
        // A reserved block type (3) right after the frame header.
        let mut bad = z.clone();
        let header = zstd_header_len(&z).unwrap();
        bad[header] |= 0x06;
        let (ends, _) = zstd_in_parts(&bad, 4096, data.len());
        assert_eq!(ends.first(), Some(&Some(InflateEnd::Corrupt)));
        // Not a zstd frame at all.
        let (ends, _) = zstd_in_parts(&letters(5000), 1000, 5000);
        assert_eq!(ends.first(), Some(&Some(InflateEnd::Corrupt)));
    }

    /// Damaged frames (one byte changed anywhere, or the frame cut short) never panic, never
    /// produce more than declared and never carry more than one block.
    #[test]
    fn damaged_zstd_frames_in_parts_stay_bounded() {
        let data = [letters(150_000), b"select 1; ".repeat(5000)].concat();
        let z = ruzstd::encoding::compress_to_vec(
            &data[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        let mut x = 7u32;
        for k in 0..300 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let mut bad = z.clone();
            let at = (x as usize >> 4) % bad.len();
            bad[at] ^= 1 << (k % 8);
            if k % 3 == 0 {
                bad.truncate(at + 1);
            }
            let (ends, got) = zstd_in_parts(&bad, 700, data.len());
            assert!(got.len() <= data.len());
            // Done only when exactly the declared length came out.
            if ends.last() == Some(&Some(InflateEnd::Done)) {
                assert_eq!(got.len(), data.len());
            }
        }
    }

    #[test]
    fn zstd_frames_inflate() {
        let data = b"select 1".repeat(1000);
        let z = ruzstd::encoding::compress_to_vec(
            &data[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        assert!(is_zstd_head(&z));
        let mut inf = Inflater::default();
        let mut got = Vec::new();
        assert_eq!(
            inf.run(Algo::Zstd, &z, data.len(), |c| {
                got.extend_from_slice(c);
                true
            }),
            InflateEnd::Done
        );
        assert_eq!(got, data);
        assert_eq!(
            inf.run(Algo::Zstd, &z[..4], data.len(), |_| true),
            InflateEnd::Corrupt
        );
    }
}
