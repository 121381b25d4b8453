//! [`Bytes`]: a cheap, shared, immutable byte slice.
//!
//! A fetched response is read into one buffer; every record key, value and
//! nested `records` field decoded from it is a `Bytes` pointing into that
//! buffer. Cloning or slicing a `Bytes` bumps a reference count and never
//! copies or allocates.

use std::fmt;
use std::ops::{Bound, Deref, RangeBounds};
use std::sync::Arc;

/// A reference-counted, immutable view into a byte buffer.
///
/// `Bytes` derefs to `&[u8]`. [`clone`](Clone::clone) and
/// [`slice`](Bytes::slice) are O(1) and allocation-free; the buffer is freed
/// when the last view of it is dropped.
///
/// ```
/// use kafka_blocking::Bytes;
///
/// let all = Bytes::from(b"hello world".to_vec());
/// let world = all.slice(6..);
/// assert_eq!(&*world, b"world");
/// ```
#[derive(Clone)]
pub struct Bytes {
    buf: Option<Arc<Vec<u8>>>,
    start: usize,
    end: usize,
}

impl Bytes {
    /// An empty `Bytes`; does not allocate.
    pub const fn new() -> Bytes {
        Bytes {
            buf: None,
            start: 0,
            end: 0,
        }
    }

    /// Copies `data` into a new buffer.
    pub fn copy_from_slice(data: &[u8]) -> Bytes {
        Bytes::from(data.to_vec())
    }

    /// The number of bytes in this view.
    #[inline]
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// `true` when the view holds no bytes.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// The bytes of this view.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        match &self.buf {
            Some(buf) => &buf[self.start..self.end],
            None => &[],
        }
    }

    /// A view of `range` (relative to this view) sharing the same buffer.
    ///
    /// # Panics
    ///
    /// Panics when the range is out of bounds, like slice indexing. Decoders
    /// check lengths before slicing and use [`Bytes::get`] where a length
    /// comes off the wire.
    #[inline]
    pub fn slice(&self, range: impl RangeBounds<usize>) -> Bytes {
        let len = self.len();
        let (from, to) = bounds(&range, len);
        assert!(
            from <= to && to <= len,
            "Bytes::slice {from}..{to} out of bounds for length {len}"
        );
        self.slice_unchecked(from, to)
    }

    /// A view of `range`, or `None` when it does not fit in this view.
    #[inline]
    pub fn get(&self, range: impl RangeBounds<usize>) -> Option<Bytes> {
        let len = self.len();
        let (from, to) = bounds(&range, len);
        if from <= to && to <= len {
            Some(self.slice_unchecked(from, to))
        } else {
            None
        }
    }

    #[inline]
    fn slice_unchecked(&self, from: usize, to: usize) -> Bytes {
        if from == to {
            return Bytes::new();
        }
        Bytes {
            buf: self.buf.clone(),
            start: self.start + from,
            end: self.start + to,
        }
    }

    /// Copies the bytes into a `Vec<u8>`.
    pub fn to_vec(&self) -> Vec<u8> {
        self.as_slice().to_vec()
    }

    /// The whole underlying buffer, when this is its only view and covers
    /// all of it (no copy); otherwise `self` back.
    pub fn try_into_vec(self) -> Result<Vec<u8>, Bytes> {
        match self.buf {
            Some(buf) if self.start == 0 && self.end == buf.len() => {
                Arc::try_unwrap(buf).map_err(|shared| Bytes {
                    buf: Some(shared),
                    start: self.start,
                    end: self.end,
                })
            }
            buf => Err(Bytes {
                buf,
                start: self.start,
                end: self.end,
            }),
        }
    }

    /// Turns the view back into a `Vec<u8>`, without copying when this is the
    /// only view of a whole buffer.
    pub fn into_vec(self) -> Vec<u8> {
        match self.buf {
            Some(buf) if self.start == 0 && self.end == buf.len() => {
                Arc::try_unwrap(buf).unwrap_or_else(|shared| shared.as_ref().clone())
            }
            Some(buf) => buf[self.start..self.end].to_vec(),
            None => Vec::new(),
        }
    }
}

#[inline]
fn bounds(range: &impl RangeBounds<usize>, len: usize) -> (usize, usize) {
    let from = match range.start_bound() {
        Bound::Included(&n) => n,
        Bound::Excluded(&n) => n.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let to = match range.end_bound() {
        Bound::Included(&n) => n.saturating_add(1),
        Bound::Excluded(&n) => n,
        Bound::Unbounded => len,
    };
    (from, to)
}

impl Default for Bytes {
    fn default() -> Bytes {
        Bytes::new()
    }
}

impl Deref for Bytes {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for Bytes {
    #[inline]
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Bytes {
        if v.is_empty() {
            return Bytes::new();
        }
        let end = v.len();
        Bytes {
            buf: Some(Arc::new(v)),
            start: 0,
            end,
        }
    }
}

impl From<&[u8]> for Bytes {
    fn from(v: &[u8]) -> Bytes {
        Bytes::copy_from_slice(v)
    }
}

impl<const N: usize> From<&[u8; N]> for Bytes {
    fn from(v: &[u8; N]) -> Bytes {
        Bytes::copy_from_slice(v)
    }
}

impl From<&str> for Bytes {
    fn from(v: &str) -> Bytes {
        Bytes::copy_from_slice(v.as_bytes())
    }
}

impl From<String> for Bytes {
    fn from(v: String) -> Bytes {
        Bytes::from(v.into_bytes())
    }
}

impl PartialEq for Bytes {
    fn eq(&self, other: &Bytes) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Bytes {}

impl PartialEq<[u8]> for Bytes {
    fn eq(&self, other: &[u8]) -> bool {
        self.as_slice() == other
    }
}

impl PartialEq<&[u8]> for Bytes {
    fn eq(&self, other: &&[u8]) -> bool {
        self.as_slice() == *other
    }
}

impl PartialEq<Vec<u8>> for Bytes {
    fn eq(&self, other: &Vec<u8>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl std::hash::Hash for Bytes {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state)
    }
}

impl PartialOrd for Bytes {
    fn partial_cmp(&self, other: &Bytes) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Bytes {
    fn cmp(&self, other: &Bytes) -> std::cmp::Ordering {
        self.as_slice().cmp(other.as_slice())
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"")?;
        for &b in self.as_slice().iter().take(64) {
            match b {
                b'\\' => write!(f, "\\\\")?,
                b'"' => write!(f, "\\\"")?,
                0x20..=0x7e => write!(f, "{}", b as char)?,
                _ => write!(f, "\\x{b:02x}")?,
            }
        }
        if self.len() > 64 {
            write!(f, "\"... ({} bytes)", self.len())
        } else {
            write!(f, "\"")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slicing_shares_and_checks_bounds() {
        let b = Bytes::from(vec![1, 2, 3, 4, 5]);
        let s = b.slice(1..4);
        assert_eq!(&*s, &[2, 3, 4]);
        assert_eq!(&*s.slice(1..), &[3, 4]);
        assert!(s.get(2..5).is_none());
        assert_eq!(s.get(..=0).map(|x| x.to_vec()), Some(vec![2]));
        assert!(Bytes::new().is_empty());
        assert_eq!(b.slice(2..2).len(), 0);
    }

    #[test]
    fn into_vec_avoids_copy_when_unique() {
        let v = vec![9u8; 10];
        let ptr = v.as_ptr();
        let b = Bytes::from(v);
        let back = b.into_vec();
        assert_eq!(back.as_ptr(), ptr);
        let b = Bytes::from(vec![1, 2, 3]);
        let c = b.slice(1..);
        assert_eq!(c.into_vec(), vec![2, 3]);
        let b = Bytes::from(vec![4, 5]);
        let shared = b.clone();
        let b = b.try_into_vec().unwrap_err();
        drop(shared);
        assert_eq!(b.try_into_vec().unwrap(), vec![4, 5]);
        assert!(Bytes::from(vec![1, 2]).slice(1..).try_into_vec().is_err());
    }

    #[test]
    fn debug_is_readable() {
        let b = Bytes::from("a\"b\x01");
        assert_eq!(format!("{b:?}"), "b\"a\\\"b\\x01\"");
    }
}
