//! Reading legacy message sets (magic 0 and 1, brokers and logs from before
//! Kafka 0.11).
//!
//! ```text
//! message set entry: offset int64, messageSize int32, message
//! message: crc uint32 (CRC-32 of the rest), magic int8, attributes int8,
//!          [timestamp int64, magic 1 only], key bytes, value bytes
//! ```
//!
//! A compressed message (attribute bits 0-2) is a wrapper whose value is a
//! compressed message set of uncompressed messages of the same magic. For
//! magic 1 the inner offsets are relative: the wrapper carries the absolute
//! offset of the last inner message. A magic 1 wrapper marked LogAppendTime
//! (attribute bit 3) gives every inner message its own timestamp.

use byteorder::{BigEndian, ByteOrder};

use crate::bytes::Bytes;
use crate::error::{Error, ErrorKind, Result};
use crate::records::batch::{Batch, Body, Headers, ReadOptions, Record};
use crate::records::compression::{decompress, Compression};
use crate::records::wire::Reader;
use crate::records::NO_TIMESTAMP;

const CODEC_MASK: u8 = 0x07;
const TIMESTAMP_TYPE_BIT: u8 = 0x08;

/// The smallest message: crc, magic, attributes, key and value lengths
/// (plus a timestamp for magic 1).
pub(crate) fn min_message_size(magic: i8) -> usize {
    if magic == 0 {
        14
    } else {
        22
    }
}

/// One decoded message; ranges index the entry it came from.
struct Message {
    offset: i64,
    crc: u32,
    magic: i8,
    attributes: u8,
    timestamp: i64,
    key: Option<(usize, usize)>,
    value: Option<(usize, usize)>,
    /// The entry's length: 12 + messageSize.
    len: usize,
}

impl Message {
    /// Decodes the entry at the start of `buf` (which may hold more).
    fn parse(buf: &[u8]) -> Option<Message> {
        let mut r = Reader::new(buf, 0);
        let offset = r.i64()?;
        let size = usize::try_from(r.i32()?).ok()?;
        let len = 12usize.checked_add(size)?;
        let mut r = Reader::new(buf.get(..len)?, 12);
        let crc = r.i32()? as u32;
        let magic = r.u8()? as i8;
        if !(0..=1).contains(&magic) || size < min_message_size(magic) {
            return None;
        }
        let attributes = r.u8()?;
        let timestamp = if magic == 1 { r.i64()? } else { NO_TIMESTAMP };
        let mut bytes = || match r.i32()? {
            -1 => Some(None),
            n if n < 0 => None,
            n => r.skip(n as usize).map(Some),
        };
        let key = bytes()?;
        let value = bytes()?;
        // Bytes after the value are ignored, as the Java client does.
        Some(Message {
            offset,
            crc,
            magic,
            attributes,
            timestamp,
            key,
            value,
            len,
        })
    }

    fn crc_ok(&self, entry: &[u8]) -> bool {
        let mut crc = flate2::Crc::new();
        crc.update(entry.get(16..self.len).unwrap_or_default());
        crc.sum() == self.crc
    }
}

#[cold]
fn corrupt(kind: ErrorKind, offset: i64, what: impl std::fmt::Display) -> Error {
    Error::new(
        kind,
        format!("corrupt legacy message at offset {offset}: {what}"),
    )
    .with_offset(offset)
}

/// Parses one whole top-level message (magic 0 or 1); a compressed wrapper
/// is decompressed and its inner messages checked here, once.
pub(crate) fn parse(raw: Bytes, options: &ReadOptions) -> Result<Batch> {
    let offset = raw.get(..8).map_or(-1, |b| BigEndian::read_i64(&b));
    let Some(msg) = Message::parse(&raw) else {
        return Err(corrupt(ErrorKind::Protocol, offset, "malformed message"));
    };
    if options.check_crcs && !msg.crc_ok(&raw) {
        return Err(corrupt(ErrorKind::Corrupt, offset, "CRC-32 mismatch"));
    }
    let Some(codec) = Compression::from_id(msg.attributes & CODEC_MASK) else {
        return Err(corrupt(
            ErrorKind::Protocol,
            offset,
            format!(
                "unknown compression codec id {}",
                msg.attributes & CODEC_MASK
            ),
        ));
    };
    let mut batch = Batch {
        magic: msg.magic,
        base_offset: offset,
        last_offset: offset,
        partition_leader_epoch: -1,
        crc: msg.crc,
        attributes: i16::from(msg.attributes),
        base_timestamp: msg.timestamp,
        max_timestamp: msg.timestamp,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        record_count: 1,
        body: Body::Legacy {
            set: raw.clone(),
            offset_base: None,
            log_append_time: None,
        },
        raw: raw.clone(),
    };
    if codec == Compression::None {
        return Ok(batch);
    }

    let Some((s, e)) = msg.value else {
        return Err(corrupt(
            ErrorKind::Protocol,
            offset,
            "compressed wrapper message has a null value",
        ));
    };
    let compressed = raw.get(s..e).unwrap_or_default();
    let inner = decompress(codec, &compressed, options.max_decompressed_bytes).map_err(|e| {
        e.context(format_args!("legacy message at offset {offset}"))
            .with_offset(offset)
    })?;
    let inner = Bytes::from(inner);

    // Walk the inner set once: validate it, count it, find its offsets.
    let (mut count, mut first, mut last) = (0i32, 0i64, 0i64);
    let mut pos = 0;
    while pos < inner.len() {
        let entry = inner.get(pos..).unwrap_or_default();
        let Some(m) = Message::parse(&entry) else {
            return Err(corrupt(
                ErrorKind::Protocol,
                offset,
                format!("malformed inner message at byte {pos} of the decompressed set"),
            ));
        };
        if m.magic != msg.magic {
            return Err(corrupt(
                ErrorKind::Protocol,
                offset,
                format!(
                    "inner message magic {} in a magic {} wrapper",
                    m.magic, msg.magic
                ),
            ));
        }
        if m.attributes & CODEC_MASK != 0 {
            return Err(corrupt(
                ErrorKind::Protocol,
                offset,
                "nested compressed message",
            ));
        }
        if options.check_crcs && !m.crc_ok(&entry) {
            return Err(corrupt(
                ErrorKind::Corrupt,
                offset,
                format!("CRC-32 mismatch in inner message {}", m.offset),
            ));
        }
        if count == 0 {
            first = m.offset;
        }
        last = m.offset;
        count = count.saturating_add(1);
        pos += m.len;
    }
    if count == 0 {
        return Err(corrupt(
            ErrorKind::Protocol,
            offset,
            "compressed message set is empty",
        ));
    }
    // Magic 1 inner offsets are relative to the wrapper's (the last one);
    // like the Java client, keep them as they are if that goes negative.
    let offset_base = (msg.magic == 1)
        .then(|| offset.wrapping_sub(last))
        .filter(|base| *base >= 0);
    let log_append_time =
        (msg.magic == 1 && msg.attributes & TIMESTAMP_TYPE_BIT != 0).then_some(msg.timestamp);
    batch.base_offset = first.wrapping_add(offset_base.unwrap_or(0));
    batch.record_count = count;
    batch.body = Body::Legacy {
        set: inner,
        offset_base,
        log_append_time,
    };
    Ok(batch)
}

/// Iterates over a set of uncompressed legacy messages.
pub(crate) struct LegacyRecords {
    pub set: Bytes,
    pub pos: usize,
    pub offset_base: Option<i64>,
    pub log_append_time: Option<i64>,
    /// For errors.
    pub batch_offset: i64,
}

impl LegacyRecords {
    pub(crate) fn next_record(&mut self) -> Option<Result<Record>> {
        if self.pos >= self.set.len() {
            return None;
        }
        let entry = self.set.get(self.pos..).unwrap_or_default();
        let Some(m) = Message::parse(&entry) else {
            self.pos = self.set.len();
            return Some(Err(corrupt(
                ErrorKind::Protocol,
                self.batch_offset,
                "malformed message",
            )));
        };
        self.pos += m.len;
        let view = |range: Option<(usize, usize)>| range.and_then(|(s, e)| entry.get(s..e));
        Some(Ok(Record {
            offset: m.offset.wrapping_add(self.offset_base.unwrap_or(0)),
            timestamp: self.log_append_time.unwrap_or(m.timestamp),
            key: view(m.key),
            value: view(m.value),
            headers: Headers::default(),
        }))
    }
}
