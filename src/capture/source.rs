//! The byte source under the format parsers: one reusable buffer filled in large reads from a
//! plain file or a gzip stream.
//!
//! Invariants:
//! - the read buffer is a reference-counted block of [`BUF_LEN`] bytes. Frames lend it out
//!   (`Frame::block`) so that the pipeline can hand payloads to workers without copying them; a
//!   block still lent out is never written again: the next refill moves to a free block from a
//!   small pool (allocating one only when every pooled block is still in use). Nothing here
//!   allocates per record.
//! - `buf[start..end]` holds unconsumed stream bytes; `base` is the stream offset of `buf[0]`, so
//!   `base + start` is the stream offset of the next unconsumed byte (the offset errors report).
//! - Bytes move to the front of the buffer only when a record does not fit behind `start`, i.e. at
//!   most one partial record (≤ [`BUF_LEN`]) is copied per refill.

use std::fs::File;
use std::io::{self, Read};
use std::sync::Arc;

use flate2::read::MultiGzDecoder;

/// Size of one read block. 1 MiB: large enough that the per-`read` cost disappears (200 reads for
/// a 200 MB file), small enough that the blocks in flight between the reader and the workers (a few
/// per worker) stay in the shared cache: with 4 MiB blocks the kernel's copy into a block and the
/// worker's first look at its payloads both went to memory, and a replay took ~25% longer. It is
/// also the largest block or record a parser may ask to see whole (≥ the largest pcap record,
/// `MAX_CAPLEN` + header); larger pcapng blocks are skipped without buffering or rejected.
pub const BUF_LEN: usize = 1 << 20;
// A whole pcap record (header + the largest accepted packet) must fit in one block.
const _: () = assert!(BUF_LEN >= super::MAX_CAPLEN as usize + 64);

/// Blocks kept for reuse once the pipeline has let go of them. In flight at once are at most the
/// blocks referenced by queued batches (a few per worker), so a small pool covers the steady
/// state; a block over this count is freed when released.
const MAX_SPARE_BLOCKS: usize = 64;

/// Keep reading until at least this many bytes are buffered (or the buffer is full / EOF), so a
/// gzip stream, whose decoder hands out ~32 KiB per `read`, still refills in large steps.
const MIN_FILL: usize = 256 << 10;

/// Counts the compressed bytes the gzip decoder has pulled from the file (for the progress bar).
pub(crate) struct Counting<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(out)?;
        self.count = self.count.saturating_add(n as u64);
        Ok(n)
    }
}

/// An input whose first bytes were read already (to tell gzip from a capture) and are handed
/// back before the rest: nothing is read twice and nothing seeks, so a pipe or standard input
/// reads like a file.
pub(crate) type Prefixed = io::Chain<io::Take<io::Cursor<[u8; 2]>>, File>;

/// `file`, whose first `len` bytes (≤ 2) were read into `head`.
pub(crate) fn prefixed(head: [u8; 2], len: usize, file: File) -> Prefixed {
    io::Cursor::new(head).take(len as u64).chain(file)
}

/// Where the bytes come from.
enum Reader {
    /// An uncompressed input.
    Plain(Prefixed),
    /// A gzip input (any number of concatenated members, as `cat a.gz b.gz` produces).
    Gz(Box<MultiGzDecoder<Counting<Prefixed>>>),
}

impl Reader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        match self {
            Reader::Plain(f) => f.read(out),
            Reader::Gz(d) => d.read(out),
        }
    }
}

/// A buffered, position-tracking byte stream (see the module docs for the invariants).
pub(crate) struct ByteSource {
    reader: Reader,
    buf: Arc<Vec<u8>>,
    /// Blocks handed out earlier, reusable once nobody else holds them.
    spare: Vec<Arc<Vec<u8>>>,
    start: usize,
    end: usize,
    base: u64,
    eof: bool,
    /// A read error met after the bytes the parser asked for had been gathered: those bytes (the
    /// frames before the damage) are handed out first, and the error is returned when more is
    /// asked for. Without this, a refill that met a cut or corrupt gzip stream threw away
    /// everything it had decoded (up to a block of frames before the damage).
    deferred: Option<io::Error>,
}

impl ByteSource {
    /// A source over an uncompressed input, positioned at its start.
    pub(crate) fn plain(file: Prefixed) -> Self {
        Self::new(Reader::Plain(file))
    }

    /// A source over a gzip input, positioned at its start.
    pub(crate) fn gzip(file: Prefixed) -> Self {
        Self::new(Reader::Gz(Box::new(MultiGzDecoder::new(Counting {
            inner: file,
            count: 0,
        }))))
    }

    fn new(reader: Reader) -> Self {
        ByteSource {
            reader,
            buf: Arc::new(vec![0u8; BUF_LEN]),
            spare: Vec::new(),
            start: 0,
            end: 0,
            base: 0,
            eof: false,
            deferred: None,
        }
    }

    /// Compressed bytes read from the file so far (gzip), `None` for a plain file.
    pub(crate) fn compressed_pos(&self) -> Option<u64> {
        match &self.reader {
            Reader::Plain(_) => None,
            Reader::Gz(d) => Some(d.get_ref().count),
        }
    }

    /// Stream offset of the next unconsumed byte.
    #[inline]
    pub(crate) fn offset(&self) -> u64 {
        self.base + self.start as u64
    }

    /// The unconsumed buffered bytes.
    #[inline]
    pub(crate) fn avail(&self) -> &[u8] {
        // start <= end <= buf.len() is kept by every method below.
        &self.buf[self.start..self.end]
    }

    /// Marks `n` buffered bytes consumed. `n` must not exceed `avail().len()`.
    #[inline]
    pub(crate) fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.end - self.start);
        self.start = (self.start + n).min(self.end);
    }

    /// Consumes `n` buffered bytes and returns them (clamped to what is buffered).
    #[inline]
    pub(crate) fn take(&mut self, n: usize) -> &[u8] {
        self.take_with_block(n).1
    }

    /// Like [`ByteSource::take`], and also the block the bytes live in.
    #[inline]
    pub(crate) fn take_with_block(&mut self, n: usize) -> (&Arc<Vec<u8>>, &[u8]) {
        let s = self.start;
        let e = s.saturating_add(n).min(self.end);
        self.start = e;
        (&self.buf, &self.buf[s..e])
    }

    /// Make the current block one that no one else holds, so it can be written: it stays when
    /// it is not lent out, else a free spare (or a new block) replaces it, with the unconsumed
    /// bytes moved to its front.
    fn writable(&mut self) {
        if Arc::get_mut(&mut self.buf).is_none() {
            let pos = self.spare.iter().position(|b| Arc::strong_count(b) == 1);
            let mut fresh = match pos {
                Some(i) => self.spare.swap_remove(i),
                None => Arc::new(vec![0u8; BUF_LEN]),
            };
            if let Some(dst) = Arc::get_mut(&mut fresh) {
                let live = self.end - self.start;
                dst[..live].copy_from_slice(&self.buf[self.start..self.end]);
            }
            let old = std::mem::replace(&mut self.buf, fresh);
            self.base += self.start as u64;
            self.end -= self.start;
            self.start = 0;
            if self.spare.len() < MAX_SPARE_BLOCKS {
                self.spare.push(old);
            }
        }
    }

    /// Tries to have at least `n` (≤ [`BUF_LEN`]) bytes buffered. Returns how many are buffered:
    /// fewer than `n` only at the end of the stream.
    #[inline]
    pub(crate) fn ensure(&mut self, n: usize) -> io::Result<usize> {
        let have = self.end - self.start;
        if have >= n {
            return Ok(have);
        }
        self.refill(n.min(BUF_LEN))
    }

    #[cold]
    fn refill(&mut self, n: usize) -> io::Result<usize> {
        if let Some(e) = self.deferred.take() {
            return Err(e);
        }
        self.writable();
        let (start, end) = (self.start, self.end);
        if start + n > BUF_LEN || BUF_LEN - end < MIN_FILL {
            // Move the partial record to the front (at most one record's worth of bytes) so that
            // the read below gets a large free tail rather than a few bytes at the end.
            if let Some(buf) = Arc::get_mut(&mut self.buf) {
                buf.copy_within(start..end, 0);
            }
            self.base += start as u64;
            self.end -= start;
            self.start = 0;
        }

        let want = n.max(MIN_FILL);
        while !self.eof && self.end - self.start < want && self.end < self.buf.len() {
            // The block was made unique above and nothing lends it out during a refill.
            let Some(buf) = Arc::get_mut(&mut self.buf) else {
                break;
            };
            match self.reader.read(&mut buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if self.end - self.start >= n => {
                    self.deferred = Some(e);
                    break;
                }
                Err(e) => return Err(e),
            }
            if self.end - self.start >= n && matches!(self.reader, Reader::Plain(_)) {
                // A plain file returns whole chunks; don't spend a second syscall per refill.
                break;
            }
        }
        Ok(self.end - self.start)
    }

    /// Skips `n` bytes, reading (and discarding) past the buffer as needed. Returns the number
    /// skipped: fewer than `n` only at the end of the stream.
    pub(crate) fn skip(&mut self, n: u64) -> io::Result<u64> {
        let mut left = n;
        loop {
            let have = (self.end - self.start) as u64;
            let take = have.min(left);
            self.start += take as usize;
            left -= take;
            if left == 0 {
                return Ok(n);
            }
            // Buffer drained: restart it empty at the current offset and read more.
            self.base += self.end as u64;
            self.start = 0;
            self.end = 0;
            if self.refill(1)? == 0 {
                return Ok(n - left);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::tests::temp_file;

    /// The bytes read to sniff the format come back first, then the rest, whatever the sizes
    /// asked for: the stream is the file's, byte for byte, without seeking.
    #[test]
    fn prefixed_input_hands_back_its_head_then_the_rest() {
        let bytes: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        for head in 0..=2 {
            for step in [1, 2, 3, 7, 4096] {
                let tmp = temp_file("prefixed", &bytes);
                let mut file = File::open(&*tmp).unwrap();
                let mut first = [0u8; 2];
                file.read_exact(&mut first[..head]).unwrap();
                let mut input = prefixed(first, head, file);
                let mut got = Vec::new();
                let mut buf = vec![0u8; step];
                loop {
                    let n = input.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                assert_eq!(got, bytes, "head {head}, reads of {step}");
            }
        }
    }
}
