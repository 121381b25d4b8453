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
//!
//! `decoder.rs` reads, `encoder.rs` writes, `varint.rs` holds the varint
//! helpers both use, `checks.rs` the errors the generated messages raise
//! for what a version cannot carry. Nothing here knows the `Message` trait
//! (`api.rs` builds on these, not the other way round).

mod checks;
mod decoder;
mod encoder;
#[cfg(test)]
mod tests;
mod varint;

use std::fmt;

pub(crate) use checks::{
    field_not_in_version, no_tagged_fields, nullable_in, put_raw_tagged_fields, tag_not_in_version,
};
// The generator may emit it (no schema needs it today).
#[allow(unused_imports)]
pub(crate) use checks::non_null;
pub use decoder::Decoder;
pub use encoder::{put_array, put_nullable_array, put_nullable_struct, put_tagged_fields, Encoder};
pub use varint::{read_uvarint, read_uvarlong, uvarint_len, varint_len, varlong_len};

use crate::bytes::Bytes;

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
