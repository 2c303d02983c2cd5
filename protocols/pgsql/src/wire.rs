//! A bounds-checked cursor over one message body: every read returns `None` instead of
//! panicking when the body is too short, so no accessor can index past the end. Integer
//! encodings follow "Message Data Types" of the PostgreSQL protocol documentation: `Int16` and
//! `Int32` are big-endian ("network byte order"); `String` is NUL-terminated.

/// A cursor over a message body.
#[derive(Clone, Copy, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A cursor at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }
    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }
    /// True when nothing is left.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    /// The unread bytes, without consuming them.
    pub fn peek_rest(&self) -> &'a [u8] {
        self.buf
    }
    /// `n` bytes.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.buf.len() {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }
    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }
    /// `Byte1`.
    pub fn u8(&mut self) -> Option<u8> {
        let (&b, tail) = self.buf.split_first()?;
        self.buf = tail;
        Some(b)
    }
    /// `Int16`, as the signed value the documentation specifies.
    pub fn i16(&mut self) -> Option<i16> {
        let b = self.take(2)?;
        Some(i16::from_be_bytes([b[0], b[1]]))
    }
    /// `Int16` read as a count: negative counts are `None`.
    pub fn count16(&mut self) -> Option<usize> {
        let v = self.i16()?;
        usize::try_from(v).ok()
    }
    /// `Int32`, signed.
    pub fn i32(&mut self) -> Option<i32> {
        let b = self.take(4)?;
        Some(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// `Int32`, unsigned (OIDs, codes).
    pub fn u32(&mut self) -> Option<u32> {
        self.i32().map(|v| v as u32)
    }
    /// `Int64`, signed.
    pub fn i64(&mut self) -> Option<i64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(i64::from_be_bytes(a))
    }
    /// `String`: bytes up to (not including) the next NUL, which is consumed.
    pub fn cstr(&mut self) -> Option<&'a [u8]> {
        let n = self.buf.iter().position(|&b| b == 0)?;
        let s = self.take(n)?;
        self.take(1)?;
        Some(s)
    }
    /// A `String` that may be cut: up to the next NUL, or everything left when there is none.
    pub fn cstr_or_rest(&mut self) -> &'a [u8] {
        match self.cstr() {
            Some(s) => s,
            None => self.rest(),
        }
    }
}

/// Big-endian `Int32` at `at` of `b`, if present.
#[inline]
pub fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Big-endian `Int16` at `at` of `b`, if present.
#[inline]
pub fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounded() {
        let mut r = Reader::new(b"\x00\x01\xff\xff\xff\xfeab\x00c");
        assert_eq!(r.i16(), Some(1));
        assert_eq!(r.i32(), Some(-2));
        assert_eq!(r.cstr(), Some(&b"ab"[..]));
        assert_eq!(r.cstr(), None);
        assert_eq!(r.cstr_or_rest(), b"c");
        assert_eq!(r.u8(), None);
        assert_eq!(r.i64(), None);
        assert_eq!(Reader::new(b"\xff\xff").count16(), None);
        assert_eq!(be32(b"\x00\x00\x01\x00", 0), Some(256));
        assert_eq!(be32(b"\x00\x00\x01", 0), None);
        assert_eq!(be32(b"", usize::MAX), None);
    }
}
