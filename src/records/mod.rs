//! Record batches: building them for produce requests and reading the
//! `records` blobs of fetch responses.
//!
//! [`compress`] and [`decompress`] are the codecs ([`Compression`]);
//! decompression refuses to grow past a cap.

mod compression;
mod wire;

pub use compression::{compress, decompress, Compression};
