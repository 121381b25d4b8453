//! Varints and varlongs (unsigned and zig-zag): decoding from a slice and
//! the encoded lengths.

use crate::error::{Error, Result};

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
