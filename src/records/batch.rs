//! What reading a `records` blob gives: [`ReadOptions`], a [`Batch`] with
//! its header fields, [`Record`]s, their [`Headers`], and control records.
//! The decoders (`batch_v2.rs`, `legacy.rs`) build these; `reader.rs`
//! drives them and adds the methods that decode a batch's records
//! ([`Batch::records`], [`Batch::control_record`]), so the decoders and the
//! reader never import each other both ways.

use std::fmt;

use crate::bytes::Bytes;
use crate::records::compression::Compression;
use crate::records::wire::Reader;
use crate::records::{TimestampType, DEFAULT_MAX_DECOMPRESSED_BYTES};

// The attribute bits of a magic 2 batch (the decoders and the builder
// share them; legacy messages have their own).
pub(crate) const COMPRESSION_MASK: i16 = 0x07;
pub(crate) const TIMESTAMP_TYPE_BIT: i16 = 0x08;
pub(crate) const TRANSACTIONAL_BIT: i16 = 0x10;
pub(crate) const CONTROL_BIT: i16 = 0x20;

/// How [`RecordBatches`](super::RecordBatches) reads.
///
/// ```
/// use kafka_blocking::records::ReadOptions;
///
/// let trusting = ReadOptions { check_crcs: false, ..ReadOptions::default() };
/// # let _ = trusting;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOptions {
    /// Verify each batch's CRC (CRC-32C for magic 2, CRC-32 for every
    /// legacy message), as the Java consumer's `check.crcs` (default
    /// `true`).
    pub check_crcs: bool,
    /// The most bytes one batch may decompress to (default
    /// [`DEFAULT_MAX_DECOMPRESSED_BYTES`], 64 MiB); more is an
    /// [`ErrorKind::Compression`](crate::ErrorKind::Compression) error, raised before more than this is
    /// allocated.
    pub max_decompressed_bytes: usize,
}

impl Default for ReadOptions {
    fn default() -> ReadOptions {
        ReadOptions {
            check_crcs: true,
            max_decompressed_bytes: DEFAULT_MAX_DECOMPRESSED_BYTES,
        }
    }
}

/// What a batch holds besides its header.
#[derive(Clone)]
pub(crate) enum Body {
    /// The records section, still compressed if the batch is.
    V2 {
        records: Bytes,
        max_decompressed_bytes: usize,
    },
    /// A set of uncompressed legacy messages: the top-level message itself,
    /// or the decompressed inner set of a wrapper.
    Legacy {
        set: Bytes,
        /// Added to inner offsets (magic 1 relative offsets).
        offset_base: Option<i64>,
        /// Overrides inner timestamps (magic 1 LogAppendTime wrapper).
        log_append_time: Option<i64>,
    },
}

/// One record batch (or one legacy top-level message) of a fetched blob.
///
/// The header fields are read when the batch is; the records are decoded,
/// and decompressed, only when [`records`](Batch::records) is called. For
/// legacy messages, the fields magic 0/1 lack read as Kafka's "none"
/// values: partition leader epoch, producer id/epoch and base sequence -1,
/// timestamps -1 for magic 0.
#[derive(Clone)]
pub struct Batch {
    pub(crate) raw: Bytes,
    pub(crate) magic: i8,
    pub(crate) base_offset: i64,
    pub(crate) last_offset: i64,
    pub(crate) partition_leader_epoch: i32,
    pub(crate) crc: u32,
    pub(crate) attributes: i16,
    pub(crate) base_timestamp: i64,
    pub(crate) max_timestamp: i64,
    pub(crate) producer_id: i64,
    pub(crate) producer_epoch: i16,
    pub(crate) base_sequence: i32,
    pub(crate) record_count: i32,
    pub(crate) body: Body,
}

impl Batch {
    /// The offset of the first record.
    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    /// The offset of the last record (for a magic 2 batch whose records
    /// were compacted away, still the last offset it once held).
    pub fn last_offset(&self) -> i64 {
        self.last_offset
    }

    /// `last_offset() + 1`: where a consumer goes on after this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset.wrapping_add(1)
    }

    /// The partition leader epoch (-1 when unknown or legacy).
    pub fn partition_leader_epoch(&self) -> i32 {
        self.partition_leader_epoch
    }

    /// The format version: 0, 1 or 2.
    pub fn magic(&self) -> i8 {
        self.magic
    }

    /// The CRC stored in the batch (CRC-32C for magic 2, CRC-32 of the
    /// top-level message for legacy).
    pub fn crc(&self) -> u32 {
        self.crc
    }

    /// The raw attributes.
    pub fn attributes(&self) -> i16 {
        self.attributes
    }

    /// The compression codec of the records.
    pub fn compression(&self) -> Compression {
        // Checked when the batch was read.
        Compression::from_id((self.attributes & COMPRESSION_MASK) as u8).unwrap_or_default()
    }

    /// What the timestamps mean; `None` for magic 0, which has none.
    pub fn timestamp_type(&self) -> Option<TimestampType> {
        if self.magic == 0 {
            None
        } else if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            Some(TimestampType::LogAppendTime)
        } else {
            Some(TimestampType::CreateTime)
        }
    }

    /// Whether the batch belongs to a transaction.
    pub fn is_transactional(&self) -> bool {
        self.magic >= 2 && self.attributes & TRANSACTIONAL_BIT != 0
    }

    /// Whether this is a control batch (transaction markers), which a
    /// consumer never hands to the application.
    pub fn is_control(&self) -> bool {
        self.magic >= 2 && self.attributes & CONTROL_BIT != 0
    }

    /// The first record's timestamp (magic 2), or the message's timestamp
    /// (legacy).
    pub fn base_timestamp(&self) -> i64 {
        self.base_timestamp
    }

    /// The largest record timestamp, or the log append time.
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    /// The producer id (-1 for none).
    pub fn producer_id(&self) -> i64 {
        self.producer_id
    }

    /// The producer epoch (-1 for none).
    pub fn producer_epoch(&self) -> i16 {
        self.producer_epoch
    }

    /// The sequence number of the first record (-1 for none).
    pub fn base_sequence(&self) -> i32 {
        self.base_sequence
    }

    /// The number of records the header declares (for a legacy compressed
    /// wrapper, the number of inner messages).
    pub fn record_count(&self) -> i32 {
        self.record_count
    }

    /// The batch's bytes as they were fetched (for legacy batches, the
    /// top-level message), e.g. to forward it unchanged.
    pub fn as_bytes(&self) -> &Bytes {
        &self.raw
    }
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("base_offset", &self.base_offset)
            .field("last_offset", &self.last_offset)
            .field("magic", &self.magic)
            .field("compression", &self.compression())
            .field("record_count", &self.record_count)
            .field("timestamp_type", &self.timestamp_type())
            .field("max_timestamp", &self.max_timestamp)
            .field("producer_id", &self.producer_id)
            .field("is_transactional", &self.is_transactional())
            .field("is_control", &self.is_control())
            .field("size", &self.raw.len())
            .finish()
    }
}

/// One record.
///
/// `key`, `value` and `headers` share the fetched (or decompressed) buffer:
/// keeping a record alive keeps that buffer alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The record's offset in its partition.
    pub offset: i64,
    /// Milliseconds since the epoch: the create time, or the log append
    /// time for LogAppendTime batches; -1 for magic 0.
    pub timestamp: i64,
    /// The key, `None` for a null key.
    pub key: Option<Bytes>,
    /// The value, `None` for a null value (a tombstone).
    pub value: Option<Bytes>,
    /// The headers (always empty before magic 2), decoded on demand.
    pub headers: Headers,
}

/// A record's headers, decoded lazily from the batch's bytes.
///
/// Iterating yields `(key, value)` pairs in order; keys may repeat. The
/// bytes were checked (lengths, UTF-8 keys) when the record was read, so
/// iterating cannot fail.
///
/// ```
/// # use kafka_blocking::records::*;
/// # let mut b = RecordBatchBuilder::new();
/// # b.append(0, None, None, [("a", Some("1".as_bytes())), ("b", None), ("a", Some("2".as_bytes()))])?;
/// # let batch = RecordBatches::new(b.build(&BatchOptions::default())?, ReadOptions::default())
/// #     .next().unwrap()?;
/// # let record = batch.records().next().unwrap()?;
/// let headers = &record.headers;
/// assert_eq!(headers.len(), 3);
/// assert_eq!(headers.last("a").unwrap().as_deref(), Some(&b"2"[..]));
/// assert_eq!(headers.last("b"), Some(None));
/// let keys: Vec<&str> = headers.iter().map(|(k, _)| k).collect();
/// assert_eq!(keys, ["a", "b", "a"]);
/// # Ok::<(), kafka_blocking::Error>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    data: Bytes,
    count: u32,
}

impl Headers {
    pub(crate) fn new(data: Bytes, count: u32) -> Headers {
        Headers { data, count }
    }

    /// The number of headers.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// `true` when there are no headers.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Iterates over `(key, value)` pairs.
    pub fn iter(&self) -> HeaderIter<'_> {
        HeaderIter {
            data: &self.data,
            pos: 0,
            left: self.count,
        }
    }

    /// The value of the last header named `key`: `None` when there is no
    /// such header, `Some(None)` when its value is null.
    pub fn last(&self, key: &str) -> Option<Option<Bytes>> {
        self.iter()
            .filter(|(k, _)| *k == key)
            .last()
            .map(|(_, v)| v)
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = (&'a str, Option<Bytes>);
    type IntoIter = HeaderIter<'a>;

    fn into_iter(self) -> HeaderIter<'a> {
        self.iter()
    }
}

/// An iterator over a record's headers; see [`Headers`].
#[derive(Clone)]
pub struct HeaderIter<'a> {
    data: &'a Bytes,
    pos: usize,
    left: u32,
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = (&'a str, Option<Bytes>);

    fn next(&mut self) -> Option<(&'a str, Option<Bytes>)> {
        if self.left == 0 {
            return None;
        }
        let data: &'a [u8] = self.data.as_slice();
        let mut r = Reader::new(data, self.pos);
        let parsed = (|| {
            let key_len = usize::try_from(r.varint()?).ok()?;
            let key = std::str::from_utf8(r.slice(key_len)?).ok()?;
            let value = match r.nullable_varbytes()? {
                Some((s, e)) => Some(self.data.get(s..e)?),
                None => None,
            };
            Some((key, value))
        })();
        match parsed {
            Some(h) => {
                self.pos = r.pos;
                self.left -= 1;
                Some(h)
            }
            None => {
                // Checked when the record was read; cannot happen.
                self.left = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left as usize))
    }
}

impl fmt::Debug for HeaderIter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeaderIter")
            .field("left", &self.left)
            .finish()
    }
}

/// The kind of a control record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlType {
    /// A transaction was aborted: its records are to be skipped by
    /// `read_committed` consumers.
    Abort,
    /// A transaction was committed.
    Commit,
    /// A control record type this client does not know (e.g. KRaft's);
    /// consumers skip it.
    Unknown(i16),
}

/// A control record: the transaction marker a coordinator writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ControlRecord {
    /// Abort or commit.
    pub kind: ControlType,
    /// The transaction coordinator's epoch (-1 for unknown types).
    pub coordinator_epoch: i32,
}
