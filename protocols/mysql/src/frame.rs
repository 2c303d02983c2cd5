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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algo {
    /// zlib (CLIENT_COMPRESS).
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

/// Decompresses one frame in bounded steps.
pub struct Inflater {
    zlib: flate2::Decompress,
    zstd: Option<ruzstd::decoding::FrameDecoder>,
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

impl Inflater {
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
                let dec = self.zstd.get_or_insert_with(|| {
                    let mut d = ruzstd::decoding::FrameDecoder::new();
                    d.set_max_window_size(MAX_ZSTD_WINDOW);
                    d
                });
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
                    if produced + n > ulen {
                        sink(out.get(..ulen - produced).unwrap_or_default());
                        return InflateEnd::Cut;
                    }
                    produced += n;
                    if !sink(out) {
                        return InflateEnd::Done;
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
            if *produced + n > ulen {
                // More than declared: a "zip bomb" (or garbage). Cut at the declared length.
                sink(out.get(..ulen - *produced).unwrap_or_default());
                *produced = ulen;
                return Some(InflateEnd::Cut);
            }
            *produced += n;
            if n > 0 && !sink(out) {
                return Some(InflateEnd::Done);
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
