//! [`Encoder`] for `Vec<u8>`, and the writers for tagged-field sections,
//! arrays and nullable structs.

use super::decoder::string_too_long;
use super::{RawTaggedField, Uuid};
use crate::error::{Error, Result};

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
