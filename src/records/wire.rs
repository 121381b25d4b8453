//! Small, non-panicking readers for the record formats' hot paths.
//!
//! Everything returns `Option`: the callers turn a `None` into one error
//! that names the batch, so the per-field paths build no error values.

use byteorder::{BigEndian, ByteOrder};

/// Splits `n` bytes off the front of `s`.
#[inline]
pub(crate) fn take<'a>(s: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if n > s.len() {
        return None;
    }
    let (head, tail) = s.split_at(n);
    *s = tail;
    Some(head)
}

/// Splits `N` bytes off the front of `s` as an array.
#[inline]
pub(crate) fn take_array<const N: usize>(s: &mut &[u8]) -> Option<[u8; N]> {
    take(s, N).and_then(|b| b.try_into().ok())
}

/// A position in a buffer, with bounds-checked big-endian and varint reads.
#[derive(Clone, Copy)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    pub(crate) fn new(buf: &'a [u8], pos: usize) -> Reader<'a> {
        // Keep `pos <= buf.len()` so that `skip` needs one comparison.
        Reader {
            buf,
            pos: pos.min(buf.len()),
        }
    }

    /// Bytes left after the position.
    #[inline]
    #[cfg(test)]
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Skips `n` bytes and returns their range.
    #[inline(always)]
    pub(crate) fn skip(&mut self, n: usize) -> Option<(usize, usize)> {
        let start = self.pos;
        // `pos <= len` always holds, so this cannot wrap.
        if n > self.buf.len() - start {
            return None;
        }
        self.pos = start + n;
        Some((start, self.pos))
    }

    #[inline]
    pub(crate) fn slice(&mut self, n: usize) -> Option<&'a [u8]> {
        let (s, e) = self.skip(n)?;
        self.buf.get(s..e)
    }

    #[inline]
    pub(crate) fn u8(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    #[inline]
    pub(crate) fn i32(&mut self) -> Option<i32> {
        self.slice(4).map(BigEndian::read_i32)
    }

    #[inline]
    pub(crate) fn i64(&mut self) -> Option<i64> {
        self.slice(8).map(BigEndian::read_i64)
    }

    /// An unsigned varint of at most 5 bytes (overlong encodings refused).
    #[inline(always)]
    pub(crate) fn uvarint(&mut self) -> Option<u32> {
        // One- and two-byte varints (lengths below 8 KiB) are the norm.
        match self.buf.get(self.pos..) {
            Some(&[b0, ..]) if b0 < 0x80 => {
                self.pos += 1;
                Some(u32::from(b0))
            }
            Some(&[b0, b1, ..]) if b1 < 0x80 => {
                self.pos += 2;
                Some(u32::from(b0 & 0x7f) | u32::from(b1) << 7)
            }
            _ => self.uvarint_slow(),
        }
    }

    fn uvarint_slow(&mut self) -> Option<u32> {
        let mut v = 0u32;
        for i in 0..5 {
            let b = *self.buf.get(self.pos + i)?;
            if i == 4 && b > 0x0f {
                return None;
            }
            v |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                self.pos += i + 1;
                return Some(v);
            }
        }
        None
    }

    /// A zig-zag varint.
    #[inline(always)]
    pub(crate) fn varint(&mut self) -> Option<i32> {
        let v = self.uvarint()?;
        Some(((v >> 1) as i32) ^ -((v & 1) as i32))
    }

    /// A zig-zag varlong of at most 10 bytes.
    #[inline(always)]
    pub(crate) fn varlong(&mut self) -> Option<i64> {
        let v = match self.buf.get(self.pos..) {
            Some(&[b0, ..]) if b0 < 0x80 => {
                self.pos += 1;
                u64::from(b0)
            }
            Some(&[b0, b1, ..]) if b1 < 0x80 => {
                self.pos += 2;
                u64::from(b0 & 0x7f) | u64::from(b1) << 7
            }
            _ => self.uvarlong_slow()?,
        };
        Some(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    fn uvarlong_slow(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = *self.buf.get(self.pos + i)?;
            if i == 9 && b > 0x01 {
                return None;
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                self.pos += i + 1;
                return Some(v);
            }
        }
        None
    }

    /// A varint-length-prefixed nullable byte string (-1 = null): its range.
    #[inline]
    pub(crate) fn nullable_varbytes(&mut self) -> Option<Option<(usize, usize)>> {
        match self.varint()? {
            -1 => Some(None),
            n if n < 0 => None,
            n => self.skip(n as usize).map(Some),
        }
    }
}

/// Writes `v` as an unsigned varint into `out` (which has room).
#[inline]
pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Writes a zig-zag varint.
#[inline]
pub(crate) fn put_varint(out: &mut Vec<u8>, v: i32) {
    put_uvarint(out, ((v << 1) ^ (v >> 31)) as u32);
}

/// Writes a zig-zag varlong.
#[inline]
pub(crate) fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut u = ((v << 1) ^ (v >> 63)) as u64;
    while u >= 0x80 {
        out.push((u as u8) | 0x80);
        u >>= 7;
    }
    out.push(u as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{varint_len, varlong_len, Encoder};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varints_agree_with_the_protocol_module(a in any::<i32>(), b in any::<i64>()) {
            let mut ours = Vec::new();
            put_varint(&mut ours, a);
            put_varlong(&mut ours, b);
            let mut theirs = Vec::new();
            theirs.put_varint(a);
            theirs.put_varlong(b);
            prop_assert_eq!(&ours, &theirs);
            prop_assert_eq!(ours.len(), varint_len(a) + varlong_len(b));
            let mut r = Reader::new(&ours, 0);
            prop_assert_eq!(r.varint(), Some(a));
            prop_assert_eq!(r.varlong(), Some(b));
            prop_assert_eq!(r.remaining(), 0);
        }
    }

    #[test]
    fn overlong_and_truncated_varints_are_refused() {
        assert_eq!(
            Reader::new(&[0xff, 0xff, 0xff, 0xff, 0x7f], 0).uvarint(),
            None
        );
        assert_eq!(Reader::new(&[0x80], 0).uvarint(), None);
        assert_eq!(Reader::new(&[0xff; 10], 0).varlong(), None);
        assert_eq!(Reader::new(&[], 0).varint(), None);
        assert_eq!(Reader::new(&[0x03], 0).nullable_varbytes(), None); // -2
        assert_eq!(Reader::new(&[0x01], 0).nullable_varbytes(), Some(None));
        assert_eq!(Reader::new(&[0x04, 1], 0).nullable_varbytes(), None); // 2 > 1 left
    }
}
