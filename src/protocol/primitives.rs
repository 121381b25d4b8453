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

use super::api::Message;
use crate::bytes::Bytes;
use crate::error::{Error, ErrorKind, Result};

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

    // The `_v` readers below pick the classic or the compact (flexible
    // versions) form of a field with `compact`; generated decoders use them.

    /// Reads a non-null string, compact when `compact`. Like the Java
    /// client, refuses a compact string longer than a classic one can be
    /// (32767 bytes).
    #[inline]
    pub fn string_v(&mut self, compact: bool) -> Result<String> {
        if compact {
            check_string_len(self.compact_string()?)
        } else {
            self.string()
        }
    }

    /// Reads a nullable string, compact when `compact`; see
    /// [`Decoder::string_v`].
    #[inline]
    pub fn nullable_string_v(&mut self, compact: bool) -> Result<Option<String>> {
        if compact {
            self.compact_nullable_string()?
                .map(check_string_len)
                .transpose()
        } else {
            self.nullable_string()
        }
    }

    /// Reads non-null bytes (or a `records` field), compact when `compact`.
    #[inline]
    pub fn bytes_v(&mut self, compact: bool) -> Result<Bytes> {
        if compact {
            self.compact_bytes()
        } else {
            self.bytes()
        }
    }

    /// Reads nullable bytes (or a `records` field), compact when `compact`.
    #[inline]
    pub fn nullable_bytes_v(&mut self, compact: bool) -> Result<Option<Bytes>> {
        if compact {
            self.compact_nullable_bytes()
        } else {
            self.nullable_bytes()
        }
    }

    /// Reads an array length (`None` = null), compact when `compact`.
    #[inline]
    pub fn array_len_v(&mut self, compact: bool) -> Result<Option<usize>> {
        if compact {
            self.compact_array_len()
        } else {
            self.array_len()
        }
    }

    /// Reads a non-null array, compact when `compact`, decoding each element
    /// with `element`.
    ///
    /// The length is checked against the bytes left, and the vector grows as
    /// elements are decoded: at most 64 KiB are reserved up front, whatever
    /// length the input claims.
    pub fn array_v<T>(
        &mut self,
        compact: bool,
        element: impl FnMut(&mut Decoder<'a>) -> Result<T>,
    ) -> Result<Vec<T>> {
        match self.array_len_v(compact)? {
            Some(n) => self.elements(n, element),
            None => Err(Error::protocol("null array in a non-nullable field")),
        }
    }

    /// Reads a nullable array, compact when `compact`; see
    /// [`Decoder::array_v`].
    pub fn nullable_array_v<T>(
        &mut self,
        compact: bool,
        element: impl FnMut(&mut Decoder<'a>) -> Result<T>,
    ) -> Result<Option<Vec<T>>> {
        match self.array_len_v(compact)? {
            Some(n) => self.elements(n, element).map(Some),
            None => Ok(None),
        }
    }

    fn elements<T>(
        &mut self,
        n: usize,
        mut element: impl FnMut(&mut Decoder<'a>) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::with_capacity(prealloc::<T>(n));
        for _ in 0..n {
            out.push(element(self)?);
        }
        Ok(out)
    }

    /// Reads a nullable struct: an int8 marker (negative = null) and, when
    /// not null, the struct decoded by `inner`.
    pub fn nullable_struct<T>(
        &mut self,
        inner: impl FnOnce(&mut Decoder<'a>) -> Result<T>,
    ) -> Result<Option<T>> {
        if self.i8()? < 0 {
            Ok(None)
        } else {
            inner(self).map(Some)
        }
    }

    /// Reads the tagged-field section of a struct without known tagged
    /// fields when `flexible`, keeping every field raw; an empty list
    /// otherwise (non-flexible versions have no section).
    #[inline]
    pub fn raw_tagged_fields(&mut self, flexible: bool) -> Result<Vec<RawTaggedField>> {
        if flexible {
            self.tagged_fields(|_, _| Ok(false))
        } else {
            Ok(Vec::new())
        }
    }
}

fn check_string_len(s: String) -> Result<String> {
    if s.len() > i16::MAX as usize {
        Err(string_too_long(s.len()))
    } else {
        Ok(s)
    }
}

#[cold]
fn string_too_long(len: usize) -> Error {
    Error::protocol(format!(
        "string of {len} bytes is longer than the 32767 a Kafka string can hold"
    ))
}

/// How many of `n` claimed elements of `T` to reserve up front.
#[inline]
fn prealloc<T>(n: usize) -> usize {
    n.min(MAX_PREALLOC_BYTES / std::mem::size_of::<T>().max(1))
}

/// The most an array decoder reserves before it has decoded any element.
/// Lengths read off the wire are only bounded by the bytes left, and an
/// element in memory can be much larger than on the wire.
pub(crate) const MAX_PREALLOC_BYTES: usize = 64 * 1024;

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

    /// Writes a non-null string, compact when `compact`. Either form is
    /// limited to 32767 bytes, as in the Java client.
    #[inline]
    fn put_string_v(&mut self, compact: bool, v: &str) -> Result<()> {
        self.put_nullable_string_v(compact, Some(v))
    }

    /// Writes a nullable string, compact when `compact`; see
    /// [`Encoder::put_string_v`].
    #[inline]
    fn put_nullable_string_v(&mut self, compact: bool, v: Option<&str>) -> Result<()> {
        if !compact {
            return self.put_nullable_string(v);
        }
        if let Some(s) = v {
            if s.len() > i16::MAX as usize {
                return Err(string_too_long(s.len()));
            }
        }
        self.put_compact_nullable_string(v)
    }

    /// Writes non-null bytes (or a `records` field), compact when `compact`.
    #[inline]
    fn put_bytes_v(&mut self, compact: bool, v: &[u8]) -> Result<()> {
        if compact {
            self.put_compact_bytes(v)
        } else {
            self.put_bytes(v)
        }
    }

    /// Writes nullable bytes (or a `records` field), compact when `compact`.
    #[inline]
    fn put_nullable_bytes_v(&mut self, compact: bool, v: Option<&[u8]>) -> Result<()> {
        if compact {
            self.put_compact_nullable_bytes(v)
        } else {
            self.put_nullable_bytes(v)
        }
    }

    /// Writes an array length (`None` = null), compact when `compact`.
    #[inline]
    fn put_array_len_v(&mut self, compact: bool, n: Option<usize>) -> Result<()> {
        if compact {
            self.put_compact_array_len(n)
        } else {
            self.put_array_len(n)
        }
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

/// Writes a non-null array, compact when `compact`, encoding each element
/// with `element`.
pub fn put_array<T>(
    out: &mut Vec<u8>,
    compact: bool,
    items: &[T],
    mut element: impl FnMut(&mut Vec<u8>, &T) -> Result<()>,
) -> Result<()> {
    out.put_array_len_v(compact, Some(items.len()))?;
    for item in items {
        element(out, item)?;
    }
    Ok(())
}

/// Writes a nullable array, compact when `compact`; see [`put_array`].
pub fn put_nullable_array<T>(
    out: &mut Vec<u8>,
    compact: bool,
    items: Option<&[T]>,
    element: impl FnMut(&mut Vec<u8>, &T) -> Result<()>,
) -> Result<()> {
    match items {
        Some(items) => put_array(out, compact, items, element),
        None => out.put_array_len_v(compact, None),
    }
}

/// Writes a nullable struct: int8 -1 for null, or 1 followed by the struct
/// written by `inner`.
pub fn put_nullable_struct<T>(
    out: &mut Vec<u8>,
    v: Option<&T>,
    inner: impl FnOnce(&mut Vec<u8>, &T) -> Result<()>,
) -> Result<()> {
    match v {
        None => {
            out.put_i8(-1);
            Ok(())
        }
        Some(v) => {
            out.put_i8(1);
            inner(out, v)
        }
    }
}

// Checks and errors shared by the generated messages. Encoding refuses what
// the chosen version cannot carry (`ErrorKind::UnsupportedVersion`, as the
// Java client's `UnsupportedVersionException`); decoding errors are all
// protocol errors.

/// An error unless `M` has `version` (encoding `M`, called `name`).
pub(crate) fn check_encode_version<M: Message>(name: &str, version: i16) -> Result<()> {
    if (M::MIN_VERSION..=M::MAX_VERSION).contains(&version) {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::UnsupportedVersion,
            format!(
                "cannot encode {name} version {version}: this client supports versions {} to {}",
                M::MIN_VERSION,
                M::MAX_VERSION
            ),
        ))
    }
}

/// An error unless `M` has `version` (decoding `M`, called `name`).
pub(crate) fn check_decode_version<M: Message>(name: &str, version: i16) -> Result<()> {
    if (M::MIN_VERSION..=M::MAX_VERSION).contains(&version) {
        Ok(())
    } else {
        Err(Error::protocol(format!(
            "cannot decode {name} version {version}: this client supports versions {} to {}",
            M::MIN_VERSION,
            M::MAX_VERSION
        )))
    }
}

/// The error for a non-ignorable field that holds a non-default value in a
/// version that does not carry it.
#[cold]
pub(crate) fn field_not_in_version(name: &str, field: &str, version: i16) -> Error {
    Error::new(
        ErrorKind::UnsupportedVersion,
        format!(
            "cannot encode {name} version {version}: `{field}` is not in this version and \
             holds a non-default value; leave it at its default or use a version that carries it"
        ),
    )
}

/// `v`, or an error when it is `None` and the version does not allow null.
#[inline]
pub(crate) fn nullable_in<T>(
    v: Option<T>,
    nullable: bool,
    name: &str,
    field: &str,
    version: i16,
) -> Result<Option<T>> {
    if v.is_some() || nullable {
        Ok(v)
    } else {
        Err(null_not_in_version(name, field, version))
    }
}

/// The value in `v`, or an error when it is `None` (the version does not
/// allow null).
// The generator emits this for a nullable struct field in a version where it
// is not nullable; none of the schemas generated today has one.
#[allow(dead_code)]
#[inline]
pub(crate) fn non_null<T>(v: Option<T>, name: &str, field: &str, version: i16) -> Result<T> {
    v.ok_or_else(|| null_not_in_version(name, field, version))
}

#[cold]
fn null_not_in_version(name: &str, field: &str, version: i16) -> Error {
    Error::new(
        ErrorKind::UnsupportedVersion,
        format!("cannot encode {name} version {version}: `{field}` is None but this version cannot carry a null"),
    )
}

/// An error when `unknown` is not empty: `version` of `name` is not
/// flexible and has no tagged fields.
#[inline]
pub(crate) fn no_tagged_fields(unknown: &[RawTaggedField], name: &str, version: i16) -> Result<()> {
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::UnsupportedVersion,
            format!(
                "cannot encode {name} version {version}: it holds unknown tagged fields \
                 but this version has no tagged fields"
            ),
        ))
    }
}

/// Writes the tagged-field section of a struct without known tagged
/// fields: `unknown` in a flexible version, nothing otherwise (where
/// `unknown` must be empty; see [`no_tagged_fields`]).
#[inline]
pub(crate) fn put_raw_tagged_fields(
    out: &mut Vec<u8>,
    flexible: bool,
    unknown: &[RawTaggedField],
    name: &str,
    version: i16,
) -> Result<()> {
    if flexible {
        put_tagged_fields(out, &[], unknown)
    } else {
        no_tagged_fields(unknown, name, version)
    }
}

/// The error for a known tag read in a version where its field is not
/// tagged (the Java client fails the same way).
#[cold]
pub(crate) fn tag_not_in_version(name: &str, tag: u32, version: i16) -> Error {
    Error::protocol(format!(
        "{name} version {version}: tagged field {tag} is not valid in this version"
    ))
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

    #[test]
    fn versioned_forms_pick_classic_or_compact() {
        for compact in [false, true] {
            let mut out = Vec::new();
            out.put_string_v(compact, "ab").unwrap();
            out.put_nullable_string_v(compact, None).unwrap();
            out.put_bytes_v(compact, &[7]).unwrap();
            out.put_nullable_bytes_v(compact, None).unwrap();
            put_array(&mut out, compact, &[1i16, 2], |out, v| {
                out.put_i16(*v);
                Ok(())
            })
            .unwrap();
            put_nullable_array::<i16>(&mut out, compact, None, |_, _| Ok(())).unwrap();
            put_nullable_struct(&mut out, Some(&5i8), |out, v| {
                out.put_i8(*v);
                Ok(())
            })
            .unwrap();
            put_nullable_struct::<i8>(&mut out, None, |_, _| unreachable!()).unwrap();
            let expect: &[u8] = if compact {
                &[3, b'a', b'b', 0, 2, 7, 0, 3, 0, 1, 0, 2, 0, 1, 5, 0xff]
            } else {
                &[
                    0, 2, b'a', b'b', 0xff, 0xff, 0, 0, 0, 1, 7, 0xff, 0xff, 0xff, 0xff, 0, 0, 0,
                    2, 0, 1, 0, 2, 0xff, 0xff, 0xff, 0xff, 1, 5, 0xff,
                ]
            };
            assert_eq!(out, expect, "compact: {compact}");

            let b = dec(out);
            let mut d = Decoder::new(&b);
            assert_eq!(d.string_v(compact).unwrap(), "ab");
            assert_eq!(d.nullable_string_v(compact).unwrap(), None);
            assert_eq!(&*d.bytes_v(compact).unwrap(), &[7]);
            assert_eq!(d.nullable_bytes_v(compact).unwrap(), None);
            assert_eq!(d.array_v(compact, |d| d.i16()).unwrap(), [1, 2]);
            assert_eq!(d.nullable_array_v(compact, |d| d.i16()).unwrap(), None);
            assert_eq!(d.nullable_struct(|d| d.i8()).unwrap(), Some(5));
            assert_eq!(d.nullable_struct(|d| d.i8()).unwrap(), None);
            d.finish("all").unwrap();
        }
    }

    #[test]
    fn strings_are_limited_in_both_forms() {
        let long = "x".repeat(32768);
        for compact in [false, true] {
            assert!(Vec::new().put_string_v(compact, &long).is_err());
            assert!(Vec::new().put_string_v(compact, &long[1..]).is_ok());
        }
        let mut out = Vec::new();
        out.put_compact_string(&long).unwrap();
        let b = dec(out);
        assert!(Decoder::new(&b).string_v(true).is_err());
        assert!(Decoder::new(&b).nullable_string_v(true).is_err());
    }

    #[test]
    fn null_arrays_and_bad_elements_fail() {
        let b = dec(vec![0xff, 0xff, 0xff, 0xff]);
        assert!(Decoder::new(&b).array_v(false, |d| d.i8()).is_err());
        let b = dec(vec![0]);
        assert!(Decoder::new(&b).array_v(true, |d| d.i8()).is_err());
        // Two elements claimed, one there.
        let b = dec(vec![3, 1]);
        assert!(Decoder::new(&b).array_v(true, |d| d.i8()).is_err());
    }

    #[test]
    fn preallocation_is_capped() {
        assert_eq!(prealloc::<u8>(10), 10);
        assert_eq!(prealloc::<u8>(1 << 30), MAX_PREALLOC_BYTES);
        assert_eq!(prealloc::<[u8; 4096]>(1 << 30), MAX_PREALLOC_BYTES / 4096);
        assert_eq!(prealloc::<()>(1 << 20), MAX_PREALLOC_BYTES);
    }

    #[test]
    fn raw_tagged_sections() {
        let unknown = [RawTaggedField {
            tag: 3,
            data: Bytes::from(vec![9]),
        }];
        let mut out = Vec::new();
        put_raw_tagged_fields(&mut out, true, &unknown, "M", 1).unwrap();
        assert_eq!(out, [1, 3, 1, 9]);
        let err = put_raw_tagged_fields(&mut Vec::new(), false, &unknown, "M", 0).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnsupportedVersion);
        put_raw_tagged_fields(&mut out, false, &[], "M", 0).unwrap();
        assert_eq!(out.len(), 4, "nothing written in a non-flexible version");

        let b = dec(out);
        assert_eq!(Decoder::new(&b).raw_tagged_fields(true).unwrap(), unknown);
        assert!(Decoder::new(&b)
            .raw_tagged_fields(false)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn encode_checks() {
        assert_eq!(nullable_in(Some(1), false, "M", "f", 0).unwrap(), Some(1));
        assert_eq!(nullable_in::<i8>(None, true, "M", "f", 1).unwrap(), None);
        let err = nullable_in::<i8>(None, false, "M", "f", 0).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnsupportedVersion);
        assert!(err.to_string().contains("`f`"), "{err}");
        assert!(non_null::<i8>(None, "M", "f", 0).is_err());
        let err = field_not_in_version("M", "f", 2);
        assert_eq!(err.kind(), ErrorKind::UnsupportedVersion);
        assert!(err.to_string().contains("M version 2"), "{err}");
        assert_eq!(tag_not_in_version("M", 0, 1).kind(), ErrorKind::Protocol);
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
