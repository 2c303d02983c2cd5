//! A bounds-checked cursor over one exactly-sized message body: every read returns `None`
//! instead of panicking when the body is too short (the `check_len` discipline: no accessor can
//! index past the end). Integer encodings follow "Basic Data Types" of the MySQL protocol
//! reference: fixed-length little-endian `int<n>` and length-encoded `int<lenenc>`.

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
    /// The next byte, without consuming it.
    pub fn peek_u8(&self) -> Option<u8> {
        self.buf.first().copied()
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
    /// Skip `n` bytes.
    pub fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }
    /// Everything left (`string<EOF>`).
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }
    /// `int<1>`.
    pub fn u8(&mut self) -> Option<u8> {
        let (&b, tail) = self.buf.split_first()?;
        self.buf = tail;
        Some(b)
    }
    /// `int<n>` little-endian, n ≤ 8.
    pub fn uint(&mut self, n: usize) -> Option<u64> {
        let b = self.take(n)?;
        Some(le(b))
    }
    /// `int<2>`.
    pub fn u16(&mut self) -> Option<u16> {
        self.uint(2).map(|v| v as u16)
    }
    /// `int<3>`.
    pub fn u24(&mut self) -> Option<u32> {
        self.uint(3).map(|v| v as u32)
    }
    /// `int<4>`.
    pub fn u32(&mut self) -> Option<u32> {
        self.uint(4).map(|v| v as u32)
    }
    /// `int<8>`.
    pub fn u64(&mut self) -> Option<u64> {
        self.uint(8)
    }
    /// `int<lenenc>`: < 0xFB is the value; 0xFC + int<2>; 0xFD + int<3>; 0xFE + int<8>.
    /// 0xFB (NULL in rows) and 0xFF (ERR) are not integers here: `None`.
    pub fn lenenc(&mut self) -> Option<u64> {
        match self.u8()? {
            b @ 0..=0xfa => Some(b as u64),
            0xfc => self.uint(2),
            0xfd => self.uint(3),
            0xfe => self.uint(8),
            _ => None,
        }
    }
    /// `string<lenenc>`.
    pub fn lenenc_bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.lenenc()?;
        let n = usize::try_from(n).ok()?;
        self.take(n)
    }
    /// `string<NUL>`: bytes up to a NUL, which is consumed.
    pub fn nul_bytes(&mut self) -> Option<&'a [u8]> {
        let end = self.buf.iter().position(|&b| b == 0)?;
        let s = self.take(end)?;
        self.skip(1)?;
        Some(s)
    }
    /// `string<NUL>`, or the rest when the NUL is missing (some clients omit the final NUL).
    pub fn nul_or_rest(&mut self) -> &'a [u8] {
        match self.buf.iter().position(|&b| b == 0) {
            Some(end) => {
                let s = self.take(end).unwrap_or_default();
                let _ = self.skip(1);
                s
            }
            None => self.rest(),
        }
    }
}

/// Little-endian unsigned integer of up to 8 bytes.
pub fn le(b: &[u8]) -> u64 {
    b.iter()
        .take(8)
        .rev()
        .fold(0u64, |acc, &x| (acc << 8) | x as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenenc_forms() {
        // 0xFA: one byte; 0xFC 0x34 0x12: 0x1234; 0xFD + 3 bytes; 0xFE + 8 bytes.
        let mut r = Reader::new(&[
            0xfa, 0xfc, 0x34, 0x12, 0xfd, 1, 2, 3, 0xfe, 1, 0, 0, 0, 0, 0, 0, 0x80,
        ]);
        assert_eq!(r.lenenc(), Some(0xfa));
        assert_eq!(r.lenenc(), Some(0x1234));
        assert_eq!(r.lenenc(), Some(0x030201));
        assert_eq!(r.lenenc(), Some(0x8000_0000_0000_0001));
        assert_eq!(r.lenenc(), None);
        assert_eq!(Reader::new(&[0xfb]).lenenc(), None);
        assert_eq!(Reader::new(&[0xfc, 1]).lenenc(), None);
    }

    #[test]
    fn strings_never_read_past_the_end() {
        let mut r = Reader::new(b"ab\0cd");
        assert_eq!(r.nul_bytes(), Some(&b"ab"[..]));
        assert_eq!(r.nul_bytes(), None);
        assert_eq!(r.nul_or_rest(), b"cd");
        assert_eq!(Reader::new(&[5, b'a']).lenenc_bytes(), None);
        assert_eq!(
            Reader::new(&[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).lenenc_bytes(),
            None
        );
    }
}
