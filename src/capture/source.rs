//! The byte source under the format parsers: one reusable buffer filled in large reads from a
//! plain file or a gzip stream.
//!
//! Invariants:
//! - `buf` is allocated once ([`BUF_LEN`]); nothing here allocates per record.
//! - `buf[start..end]` holds unconsumed stream bytes; `base` is the stream offset of `buf[0]`, so
//!   `base + start` is the stream offset of the next unconsumed byte (the offset errors report).
//! - Bytes move to the front of the buffer only when a record does not fit behind `start`, i.e. at
//!   most one partial record (≤ [`BUF_LEN`]) is copied per refill.

use std::fs::File;
use std::io::{self, Read};

use flate2::read::MultiGzDecoder;

/// Size of the one read buffer. 4 MiB: large enough that a warm-cache replay costs one `read`
/// syscall per 4 MiB (the per-syscall cost disappears), small enough to stay in L2/L3-friendly
/// territory for the copy the kernel does. It is also the largest block or record a parser may ask
/// to see whole; larger blocks are skipped without buffering or rejected.
pub const BUF_LEN: usize = 4 << 20;

/// Keep reading until at least this many bytes are buffered (or the buffer is full / EOF), so a
/// gzip stream, whose decoder hands out ~32 KiB per `read`, still refills in large steps.
const MIN_FILL: usize = 1 << 20;

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

/// Where the bytes come from.
enum Reader {
    /// An uncompressed file.
    Plain(File),
    /// A gzip file (any number of concatenated members, as `cat a.gz b.gz` produces).
    Gz(Box<MultiGzDecoder<Counting<File>>>),
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
    buf: Vec<u8>,
    start: usize,
    end: usize,
    base: u64,
    eof: bool,
}

impl ByteSource {
    /// A source over an uncompressed file, positioned at its start.
    pub(crate) fn plain(file: File) -> Self {
        Self::new(Reader::Plain(file))
    }

    /// A source over a gzip file, positioned at its start.
    pub(crate) fn gzip(file: File) -> Self {
        Self::new(Reader::Gz(Box::new(MultiGzDecoder::new(Counting {
            inner: file,
            count: 0,
        }))))
    }

    fn new(reader: Reader) -> Self {
        ByteSource {
            reader,
            buf: vec![0u8; BUF_LEN],
            start: 0,
            end: 0,
            base: 0,
            eof: false,
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
        let s = self.start;
        let e = s.saturating_add(n).min(self.end);
        self.start = e;
        &self.buf[s..e]
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
        if self.start + n > self.buf.len() || self.buf.len() - self.end < MIN_FILL {
            // Move the partial record to the front (at most one record's worth of bytes) so that
            // the read below gets a large free tail rather than a few bytes at the end.
            self.buf.copy_within(self.start..self.end, 0);
            self.base += self.start as u64;
            self.end -= self.start;
            self.start = 0;
        }
        let want = n.max(MIN_FILL);
        while !self.eof && self.end - self.start < want && self.end < self.buf.len() {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
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
