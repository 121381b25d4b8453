//! Wire primitives: fixed-width integers, varints, (compact) strings, bytes
//! and arrays, UUIDs and tagged-field sections.
//!
//! [`Decoder`] reads from a shared [`Bytes`] buffer so that `bytes` and
//! `records` fields are views into it, not copies. Every length read off the
//! wire is checked against the bytes left before anything is allocated, and
//! every read returns an error instead of panicking on short input.
//!
//! [`Encoder`] is implemented for `Vec<u8>`; it never fails except where a
//! value cannot be represented (a string longer than `i16::MAX` bytes).

use std::fmt;

use byteorder::{BigEndian, ByteOrder};

use crate::bytes::Bytes;
use crate::error::{Error, Result};

/// A 128-bit UUID as used for topic ids (`uuid` in the schemas).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// The all-zero UUID, Kafka's "no topic id".
    pub const ZERO: Uuid = Uuid([0; 16]);

    /// `true` for the all-zero UUID.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 16]
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Uuid {
    /// Kafka prints topic ids as URL-safe base64 without padding.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::with_capacity(22);
        for chunk in self.0.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
            let chars = chunk.len() + 1;
            for i in 0..chars {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        f.write_str(&out)
    }
}

/// A tagged field this client does not know, kept so that it survives a
/// decode/encode round trip.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawTaggedField {
    /// The field's tag.
    pub tag: u32,
    /// The field's raw bytes.
    pub data: Bytes,
}

/// A bounds-checked reader over a shared buffer.
pub struct Decoder<'a> {
    src: &'a Bytes,
    pos: usize,
    end: usize,
}

impl<'a> Decoder<'a> {
    /// A decoder over all of `src`.
    pub fn new(src: &'a Bytes) -> Decoder<'a> {
        Decoder {
            src,
            pos: 0,
            end: src.len(),
        }
    }

    /// Bytes not read yet.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.end - self.pos
    }

    /// Bytes read so far.
    #[inline]
    pub fn position(&self) -> usize {
        self.pos
    }

    /// An error unless every byte has been read.
    pub fn finish(&self, what: &str) -> Result<()> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(Error::protocol(format!(
                "{} trailing bytes after {what}",
                self.remaining()
            )))
        }
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(short(n, self.remaining()));
        }
        let s = &self.src.as_slice()[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Reads `n` raw bytes as a shared view (no copy).
    #[inline]
    pub fn bytes_exact(&mut self, n: usize) -> Result<Bytes> {
        if n > self.remaining() {
            return Err(short(n, self.remaining()));
        }
        let b = self.src.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(b)
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: usize) -> Result<()> {
        self.take(n).map(|_| ())
    }

    /// Reads a `bool` (any non-zero byte is true, as in the Java client).
    #[inline]
    pub fn bool(&mut self) -> Result<bool> {
        Ok(self.take(1)?[0] != 0)
    }

    /// Reads an `int8`.
    #[inline]
    pub fn i8(&mut self) -> Result<i8> {
        Ok(self.take(1)?[0] as i8)
    }

    /// Reads an `int16`.
    #[inline]
    pub fn i16(&mut self) -> Result<i16> {
        Ok(BigEndian::read_i16(self.take(2)?))
    }

    /// Reads a `uint16`.
    #[inline]
    pub fn u16(&mut self) -> Result<u16> {
        Ok(BigEndian::read_u16(self.take(2)?))
    }

    /// Reads an `int32`.
    #[inline]
    pub fn i32(&mut self) -> Result<i32> {
        Ok(BigEndian::read_i32(self.take(4)?))
    }

    /// Reads a `uint32`.
    #[inline]
    pub fn u32(&mut self) -> Result<u32> {
        Ok(BigEndian::read_u32(self.take(4)?))
    }

    /// Reads an `int64`.
    #[inline]
    pub fn i64(&mut self) -> Result<i64> {
        Ok(BigEndian::read_i64(self.take(8)?))
    }

    /// Reads a `float64`.
    #[inline]
    pub fn f64(&mut self) -> Result<f64> {
        Ok(BigEndian::read_f64(self.take(8)?))
    }

    /// Reads a `uuid`.
    #[inline]
    pub fn uuid(&mut self) -> Result<Uuid> {
        let mut u = [0u8; 16];
        u.copy_from_slice(self.take(16)?);
        Ok(Uuid(u))
    }

    /// Reads an unsigned varint (at most 5 bytes).
    #[inline]
    pub fn uvarint(&mut self) -> Result<u32> {
        let s = &self.src.as_slice()[self.pos..self.end];
        let (v, n) = read_uvarint(s)?;
        self.pos += n;
        Ok(v)
    }

    /// Reads a zig-zag signed varint.
    #[inline]
    pub fn varint(&mut self) -> Result<i32> {
        let v = self.uvarint()?;
        Ok(((v >> 1) as i32) ^ -((v & 1) as i32))
    }

    /// Reads an unsigned varlong (at most 10 bytes).
    #[inline]
    pub fn uvarlong(&mut self) -> Result<u64> {
        let s = &self.src.as_slice()[self.pos..self.end];
        let (v, n) = read_uvarlong(s)?;
        self.pos += n;
        Ok(v)
    }

    /// Reads a zig-zag signed varlong.
    #[inline]
    pub fn varlong(&mut self) -> Result<i64> {
        let v = self.uvarlong()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    fn length(&mut self, n: i64, what: &str) -> Result<Option<usize>> {
        if n == -1 {
            return Ok(None);
        }
        if n < -1 {
            return Err(Error::protocol(format!("negative {what} length {n}")));
        }
        let n = n as usize;
        if n > self.remaining() {
            return Err(Error::protocol(format!(
                "{what} length {n} exceeds the {} bytes left",
                self.remaining()
            )));
        }
        Ok(Some(n))
    }

    fn utf8(&mut self, n: usize) -> Result<String> {
        let raw = self.take(n)?;
        match std::str::from_utf8(raw) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(Error::protocol(format!("string is not UTF-8: {e}"))),
        }
    }

    /// Reads a nullable `string` (int16 length, -1 = null).
    pub fn nullable_string(&mut self) -> Result<Option<String>> {
        let n = i64::from(self.i16()?);
        match self.length(n, "string")? {
            Some(n) => self.utf8(n).map(Some),
            None => Ok(None),
        }
    }

    /// Reads a non-null `string`.
    pub fn string(&mut self) -> Result<String> {
        self.nullable_string()?
            .ok_or_else(|| Error::protocol("null string in a non-nullable field"))
    }

    /// Reads a nullable compact string (uvarint length + 1, 0 = null).
    pub fn compact_nullable_string(&mut self) -> Result<Option<String>> {
        let n = i64::from(self.uvarint()?) - 1;
        match self.length(n, "compact string")? {
            Some(n) => self.utf8(n).map(Some),
            None => Ok(None),
        }
    }

    /// Reads a non-null compact string.
    pub fn compact_string(&mut self) -> Result<String> {
        self.compact_nullable_string()?
            .ok_or_else(|| Error::protocol("null compact string in a non-nullable field"))
    }

    /// Reads nullable `bytes` (int32 length, -1 = null) as a shared view.
    pub fn nullable_bytes(&mut self) -> Result<Option<Bytes>> {
        let n = i64::from(self.i32()?);
        match self.length(n, "bytes")? {
            Some(n) => self.bytes_exact(n).map(Some),
            None => Ok(None),
        }
    }

    /// Reads non-null `bytes`.
    pub fn bytes(&mut self) -> Result<Bytes> {
        self.nullable_bytes()?
            .ok_or_else(|| Error::protocol("null bytes in a non-nullable field"))
    }

    /// Reads nullable compact bytes (uvarint length + 1, 0 = null).
    pub fn compact_nullable_bytes(&mut self) -> Result<Option<Bytes>> {
        let n = i64::from(self.uvarint()?) - 1;
        match self.length(n, "compact bytes")? {
            Some(n) => self.bytes_exact(n).map(Some),
            None => Ok(None),
        }
    }

    /// Reads non-null compact bytes.
    pub fn compact_bytes(&mut self) -> Result<Bytes> {
        self.compact_nullable_bytes()?
            .ok_or_else(|| Error::protocol("null compact bytes in a non-nullable field"))
    }

    /// Reads an array length (int32, -1 = null). The count is checked
    /// against the bytes left (every element takes at least one byte), so a
    /// caller may `Vec::with_capacity` it.
    pub fn array_len(&mut self) -> Result<Option<usize>> {
        let n = i64::from(self.i32()?);
        self.length(n, "array")
    }

    /// Reads a compact array length (uvarint count + 1, 0 = null), checked
    /// like [`Decoder::array_len`].
    pub fn compact_array_len(&mut self) -> Result<Option<usize>> {
        let n = i64::from(self.uvarint()?) - 1;
        self.length(n, "compact array")
    }

    /// Reads a tagged-field section, calling `known(tag, decoder_over_field)`
    /// for each field; it returns `Ok(true)` when it consumed the field and
    /// `Ok(false)` for tags it does not know, which are returned raw.
    /// A known field's decoder must read its whole payload.
    pub fn tagged_fields(
        &mut self,
        mut known: impl FnMut(u32, &mut Decoder<'_>) -> Result<bool>,
    ) -> Result<Vec<RawTaggedField>> {
        let count = self.uvarint()? as usize;
        if count > self.remaining() {
            return Err(Error::protocol(format!(
                "tagged field count {count} exceeds the {} bytes left",
                self.remaining()
            )));
        }
        let mut unknown = Vec::new();
        let mut last: Option<u32> = None;
        for _ in 0..count {
            let tag = self.uvarint()?;
            if last.is_some_and(|l| tag <= l) {
                return Err(Error::protocol(format!(
                    "tagged fields out of order: tag {tag} after {}",
                    last.unwrap_or(0)
                )));
            }
            last = Some(tag);
            let size = self.uvarint()? as usize;
            let data = self.bytes_exact(size)?;
            let mut sub = Decoder::new(&data);
            if known(tag, &mut sub)? {
                sub.finish(&format!("tagged field {tag}"))?;
            } else {
                unknown.push(RawTaggedField { tag, data });
            }
        }
        Ok(unknown)
    }
}

#[cold]
fn short(want: usize, have: usize) -> Error {
    Error::protocol(format!(
        "truncated input: needed {want} more bytes, {have} left"
    ))
}

/// Decodes an unsigned varint from the start of `s`: (value, bytes used).
#[inline]
pub fn read_uvarint(s: &[u8]) -> Result<(u32, usize)> {
    let mut v: u32 = 0;
    for i in 0..5 {
        let Some(&b) = s.get(i) else {
            return Err(Error::protocol("truncated varint"));
        };
        if i == 4 && b > 0x0f {
            return Err(Error::protocol("varint is longer than 32 bits"));
        }
        v |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((v, i + 1));
        }
    }
    Err(Error::protocol("varint is longer than 5 bytes"))
}

/// Decodes an unsigned varlong from the start of `s`: (value, bytes used).
#[inline]
pub fn read_uvarlong(s: &[u8]) -> Result<(u64, usize)> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let Some(&b) = s.get(i) else {
            return Err(Error::protocol("truncated varlong"));
        };
        if i == 9 && b > 0x01 {
            return Err(Error::protocol("varlong is longer than 64 bits"));
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((v, i + 1));
        }
    }
    Err(Error::protocol("varlong is longer than 10 bytes"))
}

/// The number of bytes `v` takes as an unsigned varint.
#[inline]
pub fn uvarint_len(v: u32) -> usize {
    match v {
        0..=0x7f => 1,
        0x80..=0x3fff => 2,
        0x4000..=0x1f_ffff => 3,
        0x20_0000..=0x0fff_ffff => 4,
        _ => 5,
    }
}

/// The number of bytes `v` takes as a zig-zag varint.
#[inline]
pub fn varint_len(v: i32) -> usize {
    uvarint_len(((v << 1) ^ (v >> 31)) as u32)
}

/// The number of bytes `v` takes as a zig-zag varlong.
#[inline]
pub fn varlong_len(v: i64) -> usize {
    let mut u = ((v << 1) ^ (v >> 63)) as u64;
    let mut n = 1;
    while u >= 0x80 {
        u >>= 7;
        n += 1;
    }
    n
}

/// Writing wire primitives. Implemented for `Vec<u8>`.
pub trait Encoder {
    /// Appends raw bytes.
    fn put_slice(&mut self, s: &[u8]);
    /// Writes a `bool` as 0 or 1.
    fn put_bool(&mut self, v: bool);
    /// Writes an `int8`.
    fn put_i8(&mut self, v: i8);
    /// Writes an `int16`.
    fn put_i16(&mut self, v: i16);
    /// Writes a `uint16`.
    fn put_u16(&mut self, v: u16);
    /// Writes an `int32`.
    fn put_i32(&mut self, v: i32);
    /// Writes a `uint32`.
    fn put_u32(&mut self, v: u32);
    /// Writes an `int64`.
    fn put_i64(&mut self, v: i64);
    /// Writes a `float64`.
    fn put_f64(&mut self, v: f64);
    /// Writes a `uuid`.
    fn put_uuid(&mut self, v: &Uuid);
    /// Writes an unsigned varint.
    fn put_uvarint(&mut self, v: u32);
    /// Writes a zig-zag varint.
    fn put_varint(&mut self, v: i32);
    /// Writes an unsigned varlong.
    fn put_uvarlong(&mut self, v: u64);
    /// Writes a zig-zag varlong.
    fn put_varlong(&mut self, v: i64);

    /// Writes a nullable `string` (int16 length).
    fn put_nullable_string(&mut self, v: Option<&str>) -> Result<()> {
        match v {
            None => {
                self.put_i16(-1);
                Ok(())
            }
            Some(s) => {
                let n = i16::try_from(s.len()).map_err(|_| {
                    Error::protocol(format!(
                        "string of {} bytes is longer than the 32767 a Kafka string can hold",
                        s.len()
                    ))
                })?;
                self.put_i16(n);
                self.put_slice(s.as_bytes());
                Ok(())
            }
        }
    }

    /// Writes a non-null `string`.
    fn put_string(&mut self, v: &str) -> Result<()> {
        self.put_nullable_string(Some(v))
    }

    /// Writes a nullable compact string.
    fn put_compact_nullable_string(&mut self, v: Option<&str>) -> Result<()> {
        match v {
            None => self.put_uvarint(0),
            Some(s) => {
                let n = u32::try_from(s.len())
                    .ok()
                    .filter(|n| *n < u32::MAX)
                    .ok_or_else(|| Error::protocol("compact string is too long"))?;
                self.put_uvarint(n + 1);
                self.put_slice(s.as_bytes());
            }
        }
        Ok(())
    }

    /// Writes a non-null compact string.
    fn put_compact_string(&mut self, v: &str) -> Result<()> {
        self.put_compact_nullable_string(Some(v))
    }

    /// Writes nullable `bytes` (int32 length).
    fn put_nullable_bytes(&mut self, v: Option<&[u8]>) -> Result<()> {
        match v {
            None => self.put_i32(-1),
            Some(b) => {
                let n = i32::try_from(b.len())
                    .map_err(|_| Error::protocol("bytes field is longer than 2 GiB"))?;
                self.put_i32(n);
                self.put_slice(b);
            }
        }
        Ok(())
    }

    /// Writes non-null `bytes`.
    fn put_bytes(&mut self, v: &[u8]) -> Result<()> {
        self.put_nullable_bytes(Some(v))
    }

    /// Writes nullable compact bytes.
    fn put_compact_nullable_bytes(&mut self, v: Option<&[u8]>) -> Result<()> {
        match v {
            None => self.put_uvarint(0),
            Some(b) => {
                let n = u32::try_from(b.len())
                    .ok()
                    .filter(|n| *n < u32::MAX)
                    .ok_or_else(|| Error::protocol("compact bytes field is too long"))?;
                self.put_uvarint(n + 1);
                self.put_slice(b);
            }
        }
        Ok(())
    }

    /// Writes non-null compact bytes.
    fn put_compact_bytes(&mut self, v: &[u8]) -> Result<()> {
        self.put_compact_nullable_bytes(Some(v))
    }

    /// Writes an array length (int32; `None` = null).
    fn put_array_len(&mut self, n: Option<usize>) -> Result<()> {
        match n {
            None => self.put_i32(-1),
            Some(n) => self.put_i32(
                i32::try_from(n).map_err(|_| Error::protocol("array has too many elements"))?,
            ),
        }
        Ok(())
    }

    /// Writes a compact array length (`None` = null).
    fn put_compact_array_len(&mut self, n: Option<usize>) -> Result<()> {
        match n {
            None => self.put_uvarint(0),
            Some(n) => self.put_uvarint(
                u32::try_from(n)
                    .ok()
                    .filter(|n| *n < u32::MAX)
                    .ok_or_else(|| Error::protocol("compact array has too many elements"))?
                    + 1,
            ),
        }
        Ok(())
    }
}

impl Encoder for Vec<u8> {
    #[inline]
    fn put_slice(&mut self, s: &[u8]) {
        self.extend_from_slice(s);
    }
    #[inline]
    fn put_bool(&mut self, v: bool) {
        self.push(u8::from(v));
    }
    #[inline]
    fn put_i8(&mut self, v: i8) {
        self.push(v as u8);
    }
    #[inline]
    fn put_i16(&mut self, v: i16) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    #[inline]
    fn put_u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    #[inline]
    fn put_i32(&mut self, v: i32) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    #[inline]
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    #[inline]
    fn put_i64(&mut self, v: i64) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    #[inline]
    fn put_f64(&mut self, v: f64) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    #[inline]
    fn put_uuid(&mut self, v: &Uuid) {
        self.extend_from_slice(&v.0);
    }
    #[inline]
    fn put_uvarint(&mut self, mut v: u32) {
        while v >= 0x80 {
            self.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.push(v as u8);
    }
    #[inline]
    fn put_varint(&mut self, v: i32) {
        self.put_uvarint(((v << 1) ^ (v >> 31)) as u32);
    }
    #[inline]
    fn put_uvarlong(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.push(v as u8);
    }
    #[inline]
    fn put_varlong(&mut self, v: i64) {
        self.put_uvarlong(((v << 1) ^ (v >> 63)) as u64);
    }
}

/// Writes a tagged-field section: the known fields `(tag, payload)` (already
/// encoded, in ascending tag order) merged with the unknown ones by tag.
pub fn put_tagged_fields(
    out: &mut Vec<u8>,
    known: &[(u32, Vec<u8>)],
    unknown: &[RawTaggedField],
) -> Result<()> {
    let total = known.len() + unknown.len();
    out.put_uvarint(u32::try_from(total).map_err(|_| Error::protocol("too many tagged fields"))?);
    let (mut k, mut u) = (0, 0);
    let mut last: Option<u32> = None;
    while k < known.len() || u < unknown.len() {
        let take_known = match (known.get(k), unknown.get(u)) {
            (Some(a), Some(b)) => a.0 <= b.tag,
            (Some(_), None) => true,
            _ => false,
        };
        let (tag, data): (u32, &[u8]) = if take_known {
            k += 1;
            (known[k - 1].0, &known[k - 1].1)
        } else {
            u += 1;
            (unknown[u - 1].tag, &unknown[u - 1].data)
        };
        if last.is_some_and(|l| tag <= l) {
            return Err(Error::protocol(format!(
                "duplicate or unordered tagged field {tag}"
            )));
        }
        last = Some(tag);
        out.put_uvarint(tag);
        out.put_uvarint(
            u32::try_from(data.len()).map_err(|_| Error::protocol("tagged field too long"))?,
        );
        out.put_slice(data);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dec(v: Vec<u8>) -> Bytes {
        Bytes::from(v)
    }

    #[test]
    fn varint_known_vectors() {
        // From the Kafka protocol guide / ByteUtilsTest.
        let cases: &[(i32, &[u8])] = &[
            (0, &[0x00]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (63, &[0x7e]),
            (-64, &[0x7f]),
            (64, &[0x80, 0x01]),
            (i32::MAX, &[0xfe, 0xff, 0xff, 0xff, 0x0f]),
            (i32::MIN, &[0xff, 0xff, 0xff, 0xff, 0x0f]),
        ];
        for (v, bytes) in cases {
            let mut out = Vec::new();
            out.put_varint(*v);
            assert_eq!(&out, bytes, "{v}");
            assert_eq!(varint_len(*v), bytes.len());
            let b = dec(out);
            let mut d = Decoder::new(&b);
            assert_eq!(d.varint().unwrap(), *v);
            d.finish("varint").unwrap();
        }
    }

    #[test]
    fn overlong_varints_are_rejected() {
        let b = dec(vec![0xff, 0xff, 0xff, 0xff, 0x7f]);
        assert!(Decoder::new(&b).uvarint().is_err());
        let b = dec(vec![0xff; 11]);
        assert!(Decoder::new(&b).uvarlong().is_err());
        let b = dec(vec![0x80]);
        assert!(Decoder::new(&b).uvarint().is_err());
    }

    #[test]
    fn lengths_are_checked_before_allocating() {
        // An array claiming 2^31-1 elements in 4 bytes must fail, not allocate.
        let b = dec(vec![0x7f, 0xff, 0xff, 0xff]);
        assert!(Decoder::new(&b).array_len().is_err());
        let b = dec(vec![0x00, 0x10, b'a']);
        assert!(Decoder::new(&b).string().is_err());
        let b = dec(vec![0xff, 0xfe]);
        assert!(Decoder::new(&b).nullable_string().is_err());
        let b = dec(vec![0xff, 0xff]);
        assert_eq!(Decoder::new(&b).nullable_string().unwrap(), None);
        assert!(Decoder::new(&b).string().is_err());
        let b = dec(vec![0x00, 0x02, 0xff, 0xfe]);
        assert!(Decoder::new(&b).string().is_err(), "invalid UTF-8");
    }

    #[test]
    fn bytes_are_shared_views() {
        let b = dec(vec![0, 0, 0, 3, 1, 2, 3, 9]);
        let mut d = Decoder::new(&b);
        let v = d.bytes().unwrap();
        assert_eq!(&*v, &[1, 2, 3]);
        assert!(d.finish("x").is_err());
        assert_eq!(d.i8().unwrap(), 9);
        d.finish("x").unwrap();
    }

    #[test]
    fn tagged_fields_keep_unknown_and_reject_disorder() {
        let mut out = Vec::new();
        let unknown = vec![RawTaggedField {
            tag: 7,
            data: Bytes::from(vec![1, 2]),
        }];
        put_tagged_fields(&mut out, &[(1, vec![42])], &unknown).unwrap();
        let b = dec(out);
        let mut d = Decoder::new(&b);
        let mut seen = None;
        let rest = d
            .tagged_fields(|tag, sub| {
                if tag == 1 {
                    seen = Some(sub.i8()?);
                    Ok(true)
                } else {
                    Ok(false)
                }
            })
            .unwrap();
        d.finish("tags").unwrap();
        assert_eq!(seen, Some(42));
        assert_eq!(rest, unknown);

        let b = dec(vec![2, 5, 0, 3, 0]);
        assert!(Decoder::new(&b).tagged_fields(|_, _| Ok(false)).is_err());
    }

    #[test]
    fn uuid_displays_like_kafka() {
        let u = Uuid([0; 16]);
        assert_eq!(u.to_string(), "AAAAAAAAAAAAAAAAAAAAAA");
        let u = Uuid([0xff; 16]);
        assert_eq!(u.to_string(), "_____________________w");
    }

    proptest! {
        #[test]
        fn varlong_round_trips(v in any::<i64>()) {
            let mut out = Vec::new();
            out.put_varlong(v);
            prop_assert_eq!(out.len(), varlong_len(v));
            let b = dec(out);
            let mut d = Decoder::new(&b);
            prop_assert_eq!(d.varlong().unwrap(), v);
        }

        #[test]
        fn compact_strings_round_trip(s in proptest::option::of(".{0,40}")) {
            let mut out = Vec::new();
            out.put_compact_nullable_string(s.as_deref()).unwrap();
            let b = dec(out);
            let mut d = Decoder::new(&b);
            prop_assert_eq!(d.compact_nullable_string().unwrap(), s);
            d.finish("s").unwrap();
        }

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let b = dec(data);
            let mut d = Decoder::new(&b);
            let _ = d.compact_nullable_string();
            let _ = d.nullable_bytes();
            let _ = d.compact_array_len();
            let _ = d.tagged_fields(|_, _| Ok(false));
            let _ = d.varlong();
        }
    }
}
