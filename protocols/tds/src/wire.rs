//! A bounds-checked reader over a byte slice: every read returns `Option`, nothing indexes.

use encoding_rs::{Encoding, UTF_16LE};

/// Reads little- and big-endian integers and TDS strings from a slice.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    /// Bytes read so far.
    pub fn pos(&self) -> usize {
        self.pos
    }
    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }
    /// The unread bytes.
    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }
    /// Take `n` bytes.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    /// Skip `n` bytes.
    pub fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }
    /// One byte.
    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).and_then(|b| b.first().copied())
    }
    /// `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).and_then(|b| b.try_into().ok())
    }
    /// Little-endian u16.
    pub fn u16le(&mut self) -> Option<u16> {
        self.array().map(u16::from_le_bytes)
    }
    /// Big-endian u16.
    pub fn u16be(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }
    /// Little-endian u32.
    pub fn u32le(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }
    /// Big-endian u32.
    pub fn u32be(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }
    /// Little-endian u64.
    pub fn u64le(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }
    /// B_VARCHAR: a one-byte character count, then UTF-16LE text.
    pub fn b_varchar(&mut self) -> Option<String> {
        let n = self.u8()? as usize;
        self.take(n * 2).map(utf16)
    }
    /// US_VARCHAR: a two-byte character count, then UTF-16LE text.
    pub fn us_varchar(&mut self) -> Option<String> {
        let n = self.u16le()? as usize;
        self.take(n * 2).map(utf16)
    }
    /// Step over a B_VARCHAR whose text is not needed (a column name, a table name part): the
    /// text is never decoded.
    pub fn skip_b_varchar(&mut self) -> Option<()> {
        let n = self.u8()? as usize;
        self.skip(n * 2)
    }
    /// Step over a US_VARCHAR whose text is not needed.
    pub fn skip_us_varchar(&mut self) -> Option<()> {
        let n = self.u16le()? as usize;
        self.skip(n * 2)
    }
    /// B_VARBYTE: a one-byte length, then bytes.
    pub fn b_varbyte(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()? as usize;
        self.take(n)
    }
}

/// UTF-16LE bytes to UTF-8; unpaired surrogates are escaped losslessly (`\xNN` per byte).
pub fn utf16(bytes: &[u8]) -> String {
    ascii_utf16(bytes).unwrap_or_else(|| dbtap_core::text::decode(bytes, UTF_16LE))
}

/// Plain ASCII in UTF-16LE (every code unit 0x01..=0x7f) is the common case: it is checked and
/// narrowed here without a decoder. `None` for anything else (NUL included, which the decoder
/// handles).
fn ascii_utf16(bytes: &[u8]) -> Option<String> {
    /// Bits a code unit of 0..=0x7f never has, in each of four 16-bit lanes.
    const NOT_ASCII: u64 = 0xff80_ff80_ff80_ff80;
    /// 0x7f in each lane: added to a unit of 0..=0x7f, it sets bit 7 unless the unit is 0.
    const ADD_7F: u64 = 0x007f_007f_007f_007f;
    const BIT_7: u64 = 0x0080_0080_0080_0080;
    /// Up to this many bytes (parameter and column names, most ENVCHANGE values), one pass
    /// that checks and appends a unit at a time costs less than setting up the two below.
    const SHORT: usize = 64;
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    if bytes.len() <= SHORT {
        let mut s = String::with_capacity(bytes.len() / 2);
        for unit in bytes.chunks_exact(2) {
            match *unit {
                [lo @ 1..=0x7f, 0] => s.push(char::from(lo)),
                _ => return None,
            }
        }
        return Some(s);
    }
    // Two passes without an early exit or a per-unit branch, which the compiler turns into wide
    // vector operations: the check (a lane over 0x7f, or a NUL lane, leaves a bit in `bad`; a
    // carry out of a lane over 0x7f only adds to what that lane already left), then the
    // narrowing. Checking and appending four units at a time cost about twice as much.
    let words = bytes.chunks_exact(8);
    let tail_ok = words
        .remainder()
        .chunks_exact(2)
        .all(|unit| matches!(*unit, [lo, 0] if (1..0x80).contains(&lo)));
    let bad = words.fold(0u64, |bad, word| {
        let w = u64::from_le_bytes(word.try_into().unwrap_or([0xff; 8]));
        bad | (w & NOT_ASCII) | (!w.wrapping_add(ADD_7F) & BIT_7)
    });
    if bad != 0 || !tail_ok {
        return None;
    }
    let narrow: Vec<u8> = bytes
        .chunks_exact(2)
        .map(|unit| unit.first().copied().unwrap_or(0))
        .collect();
    String::from_utf8(narrow).ok()
}

/// Decode `bytes` from `enc` (non-Unicode text in a collation's code page).
pub fn decode(bytes: &[u8], enc: &'static Encoding) -> String {
    dbtap_core::text::decode(bytes, enc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounded() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16le(), Some(0x0201));
        assert_eq!(r.u16le(), None);
        assert_eq!(r.u8(), Some(3));
        assert_eq!(r.u8(), None);
        assert_eq!(Reader::new(&[0xff]).take(usize::MAX), None);
    }

    #[test]
    fn utf16_text() {
        assert_eq!(utf16(b"s\0e\0l\0"), "sel");
        // "ç" U+00E7 and "患" U+60A3.
        assert_eq!(utf16(&[0xe7, 0x00, 0xa3, 0x60]), "ç患");
        // Not plain ASCII, so decoded: a high byte, a low byte over 0x7f, an odd length.
        assert_eq!(utf16(&[b'a', 0, 0x41, 0x01]), "aŁ");
        assert_eq!(utf16(&[b'a', 0, 0xe9, 0]), "aé");
        assert_eq!(utf16(&[b'a', 0, b'b']), "a\\x62");
        let mut r = Reader::new(&[2, b'a', 0, b'b', 0]);
        assert_eq!(r.b_varchar().as_deref(), Some("ab"));
    }

    #[test]
    fn ascii_path_agrees_with_the_decoder() {
        // Strings of 0 to 19 characters with, at every position, a character the ASCII path
        // must refuse (NUL, é, Ł, a lone surrogate half) or accept (DEL's neighbour ~): the
        // result is always what the UTF-16 decoder gives.
        for len in 0..20usize {
            for at in 0..len.max(1) {
                for odd in [[0u8, 0], [0xe9, 0], [0x41, 0x01], [0x00, 0xd8], [b'~', 0]] {
                    let mut units: Vec<u8> =
                        (0..len).flat_map(|i| [b'a' + (i % 26) as u8, 0]).collect();
                    if let Some(slot) = units.get_mut(2 * at..2 * at + 2) {
                        slot.copy_from_slice(&odd);
                    }
                    assert_eq!(utf16(&units), dbtap_core::text::decode(&units, UTF_16LE));
                }
            }
        }
    }
}
