//! Batch compression codecs: gzip, snappy (raw and xerial-framed), LZ4
//! (frame format, as Kafka's `KafkaLZ4BlockOutputStream`) and zstd.
//!
//! Decompression is bounded: every codec writes into one output buffer that
//! never grows past the caller's cap (plus at most one byte for gzip and
//! zstd, used to tell "exactly the cap" from "more"), whatever sizes the
//! compressed stream claims, so a decompression bomb costs at most `cap`
//! bytes of memory before it is refused.

use std::fmt;
use std::io::Read;
use std::str::FromStr;

use crate::error::{Error, ErrorKind, Result};
use crate::records::wire::{take, take_array};

/// A record batch compression codec (attribute bits 0..=2 of a batch).
///
/// Parses from the names kafka-python and librdkafka use (`none`, `gzip`,
/// `snappy`, `lz4`, `zstd`, any case):
///
/// ```
/// use kafka_blocking::records::Compression;
///
/// let c: Compression = "LZ4".parse().unwrap();
/// assert_eq!(c, Compression::Lz4);
/// assert_eq!(c.name(), "lz4");
/// assert_eq!(c.id(), 3);
/// assert!("brotli".parse::<Compression>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// No compression (id 0).
    #[default]
    None,
    /// gzip, RFC 1952 (id 1).
    Gzip,
    /// Snappy; written with the xerial framing the Java client uses (id 2).
    Snappy,
    /// LZ4 frame format with independent 64 KiB blocks (id 3).
    Lz4,
    /// Zstandard, level 3 (id 4). Needs magic 2 (Kafka 2.1+).
    Zstd,
}

impl Compression {
    /// Every codec, in id order.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// The codec's id: its value in a batch's attribute bits 0..=2.
    #[inline]
    pub const fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The codec with id `id`, or `None` for an unknown id.
    #[inline]
    pub const fn from_id(id: u8) -> Option<Compression> {
        match id {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// The codec's configuration name (`"none"`, `"gzip"`, `"snappy"`,
    /// `"lz4"` or `"zstd"`).
    pub const fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Compression {
    type Err = Error;

    fn from_str(s: &str) -> Result<Compression> {
        Compression::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                Error::invalid_argument(format!(
                    "unknown compression codec `{s}`: use one of none, gzip, snappy, lz4, zstd"
                ))
            })
    }
}

#[cold]
fn codec_error(codec: Compression, what: impl fmt::Display) -> Error {
    Error::new(
        ErrorKind::Compression,
        format!("{} compression: {what}", codec.name()),
    )
}

#[cold]
fn over_cap(codec: Compression, cap: usize) -> Error {
    codec_error(
        codec,
        format!(
            "data decompresses to more than the {cap}-byte cap (if the batch is \
             genuine, raise ConsumerBuilder::max_decompressed_bytes, or \
             ReadOptions::max_decompressed_bytes when reading batches directly)"
        ),
    )
}

/// Compresses `input` with `codec`, appending the result to `out`.
///
/// `Compression::None` appends `input` unchanged. The formats are the ones
/// the Java producer writes: gzip at the default level, snappy in xerial
/// framing with 32 KiB blocks, LZ4 frames with independent 64 KiB blocks and
/// no checksums, zstd at level 3.
pub fn compress(codec: Compression, input: &[u8], out: &mut Vec<u8>) -> Result<()> {
    match codec {
        Compression::None => {
            out.extend_from_slice(input);
            Ok(())
        }
        Compression::Gzip => gzip_compress(input, out),
        Compression::Snappy => snappy_compress(input, out),
        Compression::Lz4 => lz4_compress(input, out),
        Compression::Zstd => zstd_compress(input, out),
    }
}

/// Decompresses `input` with `codec` into a new buffer of at most `cap`
/// bytes.
///
/// Accepts what any Kafka client writes: gzip with one or more members, raw
/// snappy or xerial-framed snappy, LZ4 frames (also with the wrong header
/// checksum Kafka 0.8/0.9 wrote for magic 0, with content size, block or
/// content checksums, or linked blocks), zstd with one or more frames.
///
/// # Errors
///
/// [`ErrorKind::Compression`] when the data is not valid for the codec or
/// decompresses to more than `cap` bytes; the buffer never grows past the
/// cap (plus one byte) first.
pub fn decompress(codec: Compression, input: &[u8], cap: usize) -> Result<Vec<u8>> {
    match codec {
        Compression::None => {
            if input.len() > cap {
                return Err(over_cap(codec, cap));
            }
            Ok(input.to_vec())
        }
        Compression::Gzip => gzip_decompress(input, cap),
        Compression::Snappy => snappy_decompress(input, cap),
        Compression::Lz4 => lz4_decompress(input, cap),
        Compression::Zstd => zstd_decompress(input, cap),
    }
}

/// Grows `out` to `new_len` (zero-filled) without letting its capacity pass
/// `limit`, which amortized `Vec` growth would do.
#[inline]
fn grow(out: &mut Vec<u8>, new_len: usize, limit: usize) {
    if new_len > out.capacity() {
        let target = new_len.max(out.capacity().saturating_mul(2).min(limit));
        out.reserve_exact(target - out.len());
    }
    out.resize(new_len, 0);
}

/// Reads `r` to the end into a buffer of at most `cap` bytes; `hint` is the
/// expected size (from a header: it only reserves capacity, and never more
/// than the cap).
fn read_capped(codec: Compression, mut r: impl Read, cap: usize, hint: usize) -> Result<Vec<u8>> {
    // One byte past the cap tells "exactly cap" from "more than cap".
    let limit = cap.saturating_add(1);
    let mut out = Vec::with_capacity(hint.min(limit));
    let mut len = 0;
    loop {
        if len == out.len() {
            if len >= limit {
                return Err(over_cap(codec, cap));
            }
            // Zero-fill step by step: a lying hint costs no writes.
            let want = len.saturating_mul(2).max(8192).min(limit);
            grow(&mut out, want, limit);
        }
        let dst = out.get_mut(len..).unwrap_or_default();
        match r.read(dst) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(codec_error(codec, &e).with_source(e)),
        }
    }
    if len > cap {
        return Err(over_cap(codec, cap));
    }
    out.truncate(len);
    Ok(out)
}

// ---------------------------------------------------------------- gzip

fn gzip_compress(input: &[u8], out: &mut Vec<u8>) -> Result<()> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    enc.write_all(input)
        .and_then(|_| enc.try_finish())
        .map_err(|e| codec_error(Compression::Gzip, e))
}

fn gzip_decompress(input: &[u8], cap: usize) -> Result<Vec<u8>> {
    // ISIZE, the last member's size mod 2^32, is a good first guess, within
    // deflate's best ratio (1032:1).
    let hint = match input.len().checked_sub(4).and_then(|at| input.get(at..)) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]) as usize,
        _ => 0,
    };
    let hint = hint.min(input.len().saturating_mul(1032));
    read_capped(
        Compression::Gzip,
        flate2::bufread::MultiGzDecoder::new(input),
        cap,
        hint,
    )
}

// ---------------------------------------------------------------- snappy

/// snappy-java's stream header: magic, then version 1 and compatible
/// version 1 as big-endian ints.
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_HEADER_LEN: usize = 16;
/// snappy-java's default block size, which the Java producer uses.
const XERIAL_BLOCK: usize = 32 * 1024;

fn snappy_compress(input: &[u8], out: &mut Vec<u8>) -> Result<()> {
    out.extend_from_slice(&XERIAL_MAGIC);
    out.extend_from_slice(&1i32.to_be_bytes());
    out.extend_from_slice(&1i32.to_be_bytes());
    let mut enc = snap::raw::Encoder::new();
    for chunk in input.chunks(XERIAL_BLOCK) {
        let start = out.len();
        out.resize(start + 4 + snap::raw::max_compress_len(chunk.len()), 0);
        let (len_field, body) = out.split_at_mut(start + 4);
        let n = enc
            .compress(chunk, body)
            .map_err(|e| codec_error(Compression::Snappy, e))?;
        // n <= max_compress_len(32 KiB) always fits an i32.
        len_field[start..].copy_from_slice(&(n as u32).to_be_bytes());
        out.truncate(start + 4 + n);
    }
    Ok(())
}

/// Calls `each` with every raw snappy block of `input`: the whole input for
/// raw snappy, the length-prefixed blocks after the header for xerial.
fn snappy_blocks(input: &[u8], each: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
    let codec = Compression::Snappy;
    if !(input.len() >= XERIAL_HEADER_LEN && input.starts_with(&XERIAL_MAGIC)) {
        return each(input);
    }
    let mut rest = input.get(XERIAL_HEADER_LEN..).unwrap_or_default();
    while !rest.is_empty() {
        let Some(len) = take_array::<4>(&mut rest) else {
            return Err(codec_error(codec, "truncated xerial block length"));
        };
        let len = i32::from_be_bytes(len);
        let Some(block) = usize::try_from(len).ok().and_then(|n| take(&mut rest, n)) else {
            return Err(codec_error(
                codec,
                format!(
                    "xerial block length {len} exceeds the {} bytes left",
                    rest.len()
                ),
            ));
        };
        each(block)?;
    }
    Ok(())
}

fn snappy_decompress(input: &[u8], cap: usize) -> Result<Vec<u8>> {
    let codec = Compression::Snappy;
    // Every block states its decompressed length: add them up first, so the
    // output is allocated once, exactly, and a bomb not at all.
    let mut total = 0usize;
    snappy_blocks(input, &mut |block| {
        let n = snap::raw::decompress_len(block).map_err(|e| codec_error(codec, e))?;
        total = total.saturating_add(n);
        if total > cap {
            return Err(over_cap(codec, cap));
        }
        Ok(())
    })?;
    let mut out = vec![0u8; total];
    let mut at = 0;
    let mut dec = snap::raw::Decoder::new();
    snappy_blocks(input, &mut |block| {
        let dst = out.get_mut(at..).unwrap_or_default();
        at += dec
            .decompress(block, dst)
            .map_err(|e| codec_error(codec, e))?;
        Ok(())
    })?;
    out.truncate(at);
    Ok(out)
}

// ---------------------------------------------------------------- lz4

const LZ4_MAGIC: u32 = 0x184D_2204;
const LZ4_BLOCK: usize = 64 * 1024;
/// FLG: version 01, independent blocks, no checksums, no content size.
const LZ4_FLG: u8 = 0x60;
/// BD: 64 KiB maximum block size.
const LZ4_BD: u8 = 0x40;
const LZ4_UNCOMPRESSED: u32 = 0x8000_0000;

fn lz4_compress(input: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let codec = Compression::Lz4;
    out.extend_from_slice(&LZ4_MAGIC.to_le_bytes());
    out.extend_from_slice(&[LZ4_FLG, LZ4_BD, lz4_header_checksum(&[LZ4_FLG, LZ4_BD])]);
    for chunk in input.chunks(LZ4_BLOCK) {
        let start = out.len();
        let bound = lz4::block::compress_bound(chunk.len()).map_err(|e| codec_error(codec, e))?;
        out.resize(start + 4 + bound, 0);
        let (len_field, body) = out.split_at_mut(start + 4);
        let n = lz4::block::compress_to_buffer(chunk, None, false, body)
            .map_err(|e| codec_error(codec, e))?;
        if n >= chunk.len() {
            // Incompressible: store it raw, as KafkaLZ4BlockOutputStream does.
            out.truncate(start);
            out.extend_from_slice(&(chunk.len() as u32 | LZ4_UNCOMPRESSED).to_le_bytes());
            out.extend_from_slice(chunk);
        } else {
            len_field[start..].copy_from_slice(&(n as u32).to_le_bytes());
            out.truncate(start + 4 + n);
        }
    }
    out.extend_from_slice(&0u32.to_le_bytes());
    Ok(())
}

/// The frame descriptor checksum byte: the second byte of xxh32 of `desc`.
fn lz4_header_checksum(desc: &[u8]) -> u8 {
    (xxh32(desc, 0) >> 8) as u8
}

fn lz4_decompress(input: &[u8], cap: usize) -> Result<Vec<u8>> {
    let codec = Compression::Lz4;
    let bad = |what: &str| codec_error(codec, what);
    let mut head = input;
    let (Some(magic), Some([flg, bd])) = (take_array::<4>(&mut head), take_array::<2>(&mut head))
    else {
        return Err(bad("truncated frame header"));
    };
    if u32::from_le_bytes(magic) != LZ4_MAGIC {
        return Err(bad("not an LZ4 frame (bad magic number)"));
    }
    if flg >> 6 != 1 || flg & 0x02 != 0 || bd & 0x8f != 0 {
        return Err(bad("unsupported LZ4 frame version or reserved bits set"));
    }
    let independent = flg & 0x20 != 0;
    let block_checksum = flg & 0x10 != 0;
    let has_content_size = flg & 0x08 != 0;
    let content_checksum = flg & 0x04 != 0;
    if flg & 0x01 != 0 {
        return Err(bad("LZ4 frames with a dictionary id are not supported"));
    }
    let block_max = match bd >> 4 {
        4 => 64 << 10,
        5 => 256 << 10,
        6 => 1 << 20,
        7 => 4 << 20,
        _ => return Err(bad("invalid LZ4 block maximum size")),
    };
    let desc_end = 6 + if has_content_size { 8 } else { 0 };
    let (Some(desc), Some(&hc)) = (input.get(4..desc_end), input.get(desc_end)) else {
        return Err(bad("truncated frame header"));
    };
    let content_size = if has_content_size {
        take_array::<8>(&mut head).map(u64::from_le_bytes)
    } else {
        None
    };
    // Kafka 0.8/0.9 (magic 0) hashed the magic number too; accept both.
    let broken = input.get(..desc_end).map(lz4_header_checksum);
    if hc != lz4_header_checksum(desc) && Some(hc) != broken {
        return Err(bad("LZ4 frame header checksum mismatch"));
    }
    if let Some(n) = content_size {
        if n > cap as u64 {
            return Err(over_cap(codec, cap));
        }
    }
    let hint = content_size.map_or(input.len().saturating_mul(4), |n| n as usize);
    if !independent {
        // Linked blocks (never written by Kafka clients): let liblz4 keep
        // the window. The decoder checks the header checksum itself, so
        // hand it a corrected header.
        let mut fixed = input.to_vec();
        if let Some(b) = fixed.get_mut(desc_end) {
            *b = lz4_header_checksum(desc);
        }
        let dec = lz4::Decoder::new(fixed.as_slice()).map_err(|e| codec_error(codec, e))?;
        return read_capped(codec, dec, cap, hint);
    }

    let mut out = Vec::with_capacity(hint.min(cap));
    let mut rest = input.get(desc_end + 1..).unwrap_or_default();
    loop {
        let Some(len) = take_array::<4>(&mut rest) else {
            return Err(bad("truncated LZ4 frame (no end mark)"));
        };
        let len = u32::from_le_bytes(len);
        if len == 0 {
            break;
        }
        let stored = len & LZ4_UNCOMPRESSED != 0;
        let n = (len & !LZ4_UNCOMPRESSED) as usize;
        let Some(block) = take(&mut rest, n) else {
            return Err(bad("LZ4 block is longer than the data left"));
        };
        if block_checksum {
            let Some(sum) = take_array::<4>(&mut rest) else {
                return Err(bad("truncated LZ4 block checksum"));
            };
            if u32::from_le_bytes(sum) != xxh32(block, 0) {
                return Err(bad("LZ4 block checksum mismatch"));
            }
        }
        let start = out.len();
        if stored {
            if n > block_max {
                return Err(bad("stored LZ4 block is larger than the block maximum"));
            }
            if n > cap - start {
                return Err(over_cap(codec, cap));
            }
            grow(&mut out, start, cap);
            out.extend_from_slice(block);
            continue;
        }
        let room = block_max.min(cap - start);
        grow(&mut out, start + room, cap);
        let dst = out.get_mut(start..).unwrap_or_default();
        match lz4::block::decompress_to_buffer(block, Some(room as i32), dst) {
            Ok(got) => out.truncate(start + got),
            Err(_) if room < block_max => return Err(over_cap(codec, cap)),
            Err(e) => return Err(codec_error(codec, e)),
        }
    }
    if content_checksum {
        let Some(sum) = take_array::<4>(&mut rest) else {
            return Err(bad("truncated LZ4 content checksum"));
        };
        if u32::from_le_bytes(sum) != xxh32(&out, 0) {
            return Err(bad("LZ4 content checksum mismatch"));
        }
    }
    if content_size.is_some_and(|n| n != out.len() as u64) {
        return Err(bad("LZ4 frame content size does not match its data"));
    }
    Ok(out)
}

/// xxHash32, for LZ4 frame checksums (tiny inputs on the hot path).
fn xxh32(input: &[u8], seed: u32) -> u32 {
    const P1: u32 = 0x9E37_79B1;
    const P2: u32 = 0x85EB_CA77;
    const P3: u32 = 0xC2B2_AE3D;
    const P4: u32 = 0x27D4_EB2F;
    const P5: u32 = 0x1656_67B1;
    #[inline]
    fn round(acc: u32, lane: u32) -> u32 {
        acc.wrapping_add(lane.wrapping_mul(P2))
            .rotate_left(13)
            .wrapping_mul(P1)
    }
    let mut rest = input;
    let mut h = if input.len() >= 16 {
        let mut v = [
            seed.wrapping_add(P1).wrapping_add(P2),
            seed.wrapping_add(P2),
            seed,
            seed.wrapping_sub(P1),
        ];
        while let Some(stripe) = take_array::<16>(&mut rest) {
            for (acc, lane) in v.iter_mut().zip(stripe.chunks_exact(4)) {
                let lane = u32::from_le_bytes([lane[0], lane[1], lane[2], lane[3]]);
                *acc = round(*acc, lane);
            }
        }
        v[0].rotate_left(1)
            .wrapping_add(v[1].rotate_left(7))
            .wrapping_add(v[2].rotate_left(12))
            .wrapping_add(v[3].rotate_left(18))
    } else {
        seed.wrapping_add(P5)
    };
    h = h.wrapping_add(input.len() as u32);
    while let Some(word) = take_array::<4>(&mut rest) {
        h = h
            .wrapping_add(u32::from_le_bytes(word).wrapping_mul(P3))
            .rotate_left(17)
            .wrapping_mul(P4);
    }
    for &b in rest {
        h = h
            .wrapping_add(u32::from(b).wrapping_mul(P5))
            .rotate_left(11)
            .wrapping_mul(P1);
    }
    h ^= h >> 15;
    h = h.wrapping_mul(P2);
    h ^= h >> 13;
    h = h.wrapping_mul(P3);
    h ^ (h >> 16)
}

// ---------------------------------------------------------------- zstd

/// The Java client's default level.
const ZSTD_LEVEL: i32 = 3;

fn zstd_compress(input: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let codec = Compression::Zstd;
    let start = out.len();
    out.reserve(zstd::zstd_safe::compress_bound(input.len()));
    let mut cctx = zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(|e| codec_error(codec, e))?;
    // The cursor makes zstd write after what `out` already holds.
    let mut cursor = std::io::Cursor::new(&mut *out);
    cursor.set_position(start as u64);
    cctx.compress_to_buffer(input, &mut cursor)
        .map_err(|e| codec_error(codec, e))?;
    Ok(())
}

fn zstd_decompress(input: &[u8], cap: usize) -> Result<Vec<u8>> {
    let codec = Compression::Zstd;
    let content_size = zstd::zstd_safe::get_frame_content_size(input)
        .ok()
        .flatten();
    if let Some(n) = content_size {
        if n > cap as u64 {
            return Err(over_cap(codec, cap));
        }
        // One shot into an exact buffer; a stream with several frames, or
        // lying about its size, falls through to the bounded stream reader.
        let mut out = Vec::with_capacity(n as usize);
        let mut dctx = zstd::bulk::Decompressor::new().map_err(|e| codec_error(codec, e))?;
        if dctx.decompress_to_buffer(input, &mut out).is_ok() {
            return Ok(out);
        }
    }
    let hint = content_size.map_or(input.len().saturating_mul(4), |n| n as usize);
    let mut dec =
        zstd::stream::read::Decoder::with_buffer(input).map_err(|e| codec_error(codec, e))?;
    // The streaming decoder allocates the frame's window itself (C heap),
    // up to 128 MiB by default: bound it by the cap too, but never below
    // the 4 MiB that zstd's own levels 1-5 use.
    dec.window_log_max(zstd_window_log_max(cap))
        .map_err(|e| codec_error(codec, e))?;
    read_capped(codec, dec, cap, hint)
}

/// log2 of the largest zstd window accepted for `cap`: the cap rounded up
/// to a power of two, within 2^22..=2^27 (zstd's default maximum).
fn zstd_window_log_max(cap: usize) -> u32 {
    let log = usize::BITS - cap.saturating_sub(1).leading_zeros();
    log.clamp(22, 27)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic, moderately compressible text.
    fn sample(n: usize) -> Vec<u8> {
        let mut x: u32 = 0x1234_5678;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                b"abcdefghijklmnop"[(x % 16) as usize]
            })
            .collect()
    }

    #[test]
    fn xxh32_matches_reference() {
        // Values from the Python `xxhash` package.
        assert_eq!(xxh32(b"", 0), 0x02cc_5d05);
        assert_eq!(xxh32(b"a", 0), 0x550d_7456);
        assert_eq!(xxh32(b"abc", 0), 0x32d1_53ff);
        assert_eq!(xxh32(b"0123456789abcdef", 0), 0xc2c4_5b69);
        assert_eq!(xxh32(&b"hello kafka ".repeat(10), 0), 0x71dc_dacb);
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(xxh32(&all, 0), 0x5944_1253);
        assert_eq!(xxh32(b"abc", 0x9747_b28c), 0x4d4c_b222);
        assert_eq!(lz4_header_checksum(&[LZ4_FLG, LZ4_BD]), 0x82);
    }

    #[test]
    fn every_codec_round_trips() {
        for n in [0, 1, 100, 32 * 1024, 64 * 1024, 64 * 1024 + 1, 300_000] {
            let data = sample(n);
            for codec in Compression::ALL {
                let mut out = vec![0xAA; 3]; // appends after existing bytes
                compress(codec, &data, &mut out).unwrap();
                assert_eq!(&out[..3], &[0xAA; 3]);
                let back = decompress(codec, &out[3..], n).unwrap();
                assert!(back == data, "{codec} n={n}");
                if n > 0 {
                    let e = decompress(codec, &out[3..], n - 1).unwrap_err();
                    assert_eq!(e.kind(), ErrorKind::Compression, "{codec} n={n}: {e}");
                }
            }
        }
    }

    #[test]
    fn names_parse_case_insensitively() {
        for c in Compression::ALL {
            assert_eq!(c.name().parse::<Compression>().unwrap(), c);
            assert_eq!(c.name().to_uppercase().parse::<Compression>().unwrap(), c);
            assert_eq!(Compression::from_id(c.id()), Some(c));
            assert_eq!(c.to_string(), c.name());
        }
        assert_eq!(Compression::from_id(5), None);
        let e = "lzma".parse::<Compression>().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn snappy_reads_raw_and_xerial() {
        let data = sample(100_000);
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(
            decompress(Compression::Snappy, &raw, 1 << 20).unwrap(),
            data
        );
        let mut framed = Vec::new();
        snappy_compress(&data, &mut framed).unwrap();
        assert_eq!(&framed[..8], &XERIAL_MAGIC);
        assert_eq!(
            decompress(Compression::Snappy, &framed, 1 << 20).unwrap(),
            data
        );
        // A block length running past the end is an error, not a panic.
        framed.truncate(40);
        assert!(decompress(Compression::Snappy, &framed, 1 << 20).is_err());
    }

    #[test]
    fn lz4_frame_is_kafka_style() {
        let mut out = Vec::new();
        lz4_compress(&[7u8; 100], &mut out).unwrap();
        assert_eq!(&out[..7], &[0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82]);
        assert_eq!(&out[out.len() - 4..], &[0, 0, 0, 0]);
        // Incompressible blocks are stored raw with the high bit set.
        let mut x = 0x9E37_79B9u32;
        let noise: Vec<u8> = (0..1000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 24) as u8
            })
            .collect();
        let mut out = Vec::new();
        lz4_compress(&noise, &mut out).unwrap();
        assert_eq!(out[10] & 0x80, 0x80);
        assert_eq!(decompress(Compression::Lz4, &out, 1000).unwrap(), noise);
    }

    #[test]
    fn lz4_tolerates_old_kafka_header_checksum() {
        let data = sample(5000);
        let mut out = Vec::new();
        lz4_compress(&data, &mut out).unwrap();
        out[6] = lz4_header_checksum(&out[..6]); // Kafka 0.8/0.9's wrong checksum
        assert_eq!(decompress(Compression::Lz4, &out, 1 << 20).unwrap(), data);
        out[6] ^= 0xff;
        assert!(decompress(Compression::Lz4, &out, 1 << 20).is_err());
    }

    #[test]
    fn lz4_reads_liblz4_frames_with_checksums_and_linked_blocks() {
        use std::io::Write;
        let data = sample(300_000);
        for mode in [lz4::BlockMode::Linked, lz4::BlockMode::Independent] {
            let mut enc = lz4::EncoderBuilder::new()
                .block_mode(mode)
                .block_checksum(lz4::liblz4::BlockChecksum::BlockChecksumEnabled)
                .checksum(lz4::ContentChecksum::ChecksumEnabled)
                .content_size(data.len() as u64)
                .build(Vec::new())
                .unwrap();
            enc.write_all(&data).unwrap();
            let (frame, r) = enc.finish();
            r.unwrap();
            assert_eq!(decompress(Compression::Lz4, &frame, 1 << 20).unwrap(), data);
            let e = decompress(Compression::Lz4, &frame, 1000).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Compression);
        }
    }

    #[test]
    fn bombs_stop_at_the_cap() {
        let zeros = vec![0u8; 4 << 20];
        for codec in Compression::ALL {
            let mut packed = Vec::new();
            compress(codec, &zeros, &mut packed).unwrap();
            let e = decompress(codec, &packed, 64 << 10).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Compression, "{codec}");
            assert!(e.to_string().contains("cap"), "{codec}: {e}");
        }
    }

    #[test]
    fn garbage_is_an_error_for_every_codec() {
        let junk = sample(500);
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let e = decompress(codec, &junk, 1 << 20).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Compression, "{codec}");
            assert!(decompress(codec, &[], 1 << 20).is_err() || codec == Compression::Snappy);
        }
    }

    #[test]
    fn zstd_window_follows_the_cap() {
        assert_eq!(zstd_window_log_max(0), 22);
        assert_eq!(zstd_window_log_max(1 << 20), 22);
        assert_eq!(zstd_window_log_max(64 << 20), 26);
        assert_eq!(zstd_window_log_max((64 << 20) + 1), 27);
        assert_eq!(zstd_window_log_max(usize::MAX), 27);
        // A frame whose window is larger than allowed is refused, not
        // allocated.
        let data = sample(9 << 20);
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
        enc.long_distance_matching(true).unwrap();
        enc.window_log(24).unwrap();
        std::io::Write::write_all(&mut enc, &data).unwrap();
        let frame = enc.finish().unwrap();
        let e = zstd_decompress(&frame, 1 << 20).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Compression);
        assert_eq!(zstd_decompress(&frame, 16 << 20).unwrap(), data);
    }

    #[test]
    fn gzip_reads_concatenated_members() {
        let mut a = Vec::new();
        gzip_compress(b"hello ", &mut a).unwrap();
        gzip_compress(b"world", &mut a).unwrap();
        assert_eq!(
            decompress(Compression::Gzip, &a, 100).unwrap(),
            b"hello world"
        );
    }

    #[test]
    fn every_truncation_fails_cleanly() {
        let data = sample(70_000);
        for codec in Compression::ALL {
            let mut packed = Vec::new();
            compress(codec, &data, &mut packed).unwrap();
            let step = (packed.len() / 300).max(1);
            let cuts = (0..packed.len())
                .step_by(step)
                .chain(packed.len().saturating_sub(40)..packed.len());
            for cut in cuts {
                assert!(
                    decompress(codec, &packed[..cut], 1 << 20).is_err()
                        || codec == Compression::None
                );
            }
        }
    }
}
