//! [`Decoder`]: bounds-checked reads over a shared buffer.

use byteorder::{BigEndian, ByteOrder};

use super::varint::{read_uvarint, read_uvarlong};
use super::{RawTaggedField, Uuid};
use crate::bytes::Bytes;
use crate::error::{Error, Result};

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
    pub fn finish(&self, what: impl std::fmt::Display) -> Result<()> {
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
                sub.finish(format_args!("tagged field {tag}"))?;
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
pub(super) fn string_too_long(len: usize) -> Error {
    Error::protocol(format!(
        "string of {len} bytes is longer than the 32767 a Kafka string can hold"
    ))
}

/// How many of `n` claimed elements of `T` to reserve up front.
#[inline]
pub(super) fn prealloc<T>(n: usize) -> usize {
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
