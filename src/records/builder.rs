//! Writing magic 2 record batches.

use crate::bytes::Bytes;
use crate::error::{Error, ErrorKind, Result};
use crate::protocol::{varint_len, varlong_len};
use crate::records::batch::{
    ControlRecord, ControlType, CONTROL_BIT, TIMESTAMP_TYPE_BIT, TRANSACTIONAL_BIT,
};
use crate::records::batch_v2::{self, HeaderFields};
use crate::records::compression::{compress, Compression};
use crate::records::wire::{put_uvarint, put_varint, put_varlong};
use crate::records::RECORD_BATCH_OVERHEAD;

/// The header fields of a batch to [`build`](RecordBatchBuilder::build).
///
/// The defaults are what a producer without idempotence sends: base offset
/// 0 (the broker assigns offsets), no partition leader epoch (-1), no
/// producer id/epoch/sequence (-1), not transactional, no compression,
/// CreateTime.
///
/// ```
/// use kafka_blocking::records::{BatchOptions, Compression};
///
/// let idempotent = BatchOptions {
///     producer_id: 4000,
///     producer_epoch: 0,
///     base_sequence: 17,
///     compression: Compression::Zstd,
///     ..BatchOptions::default()
/// };
/// # let _ = idempotent;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOptions {
    /// The offset of the first record (0 in produce requests).
    pub base_offset: i64,
    /// The partition leader epoch (-1 in produce requests; brokers set it).
    pub partition_leader_epoch: i32,
    /// The idempotent/transactional producer id, or -1.
    pub producer_id: i64,
    /// The producer epoch, or -1.
    pub producer_epoch: i16,
    /// The sequence number of the first record, or -1.
    pub base_sequence: i32,
    /// Whether the batch belongs to a transaction (attribute bit 4).
    pub transactional: bool,
    /// How to compress the records section.
    pub compression: Compression,
    /// Mark the batch LogAppendTime with this max timestamp, as a broker
    /// does (attribute bit 3). Producers leave it `None` (CreateTime); it is
    /// here for brokers, tools and tests.
    pub log_append_time: Option<i64>,
}

impl Default for BatchOptions {
    fn default() -> BatchOptions {
        BatchOptions {
            base_offset: 0,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            transactional: false,
            compression: Compression::None,
            log_append_time: None,
        }
    }
}

/// Accumulates records into a magic 2 record batch.
///
/// Records are encoded as they are appended, into one buffer that starts
/// with room for the 61-byte batch header: appending does not allocate
/// except to grow that buffer, and [`build`](RecordBatchBuilder::build)
/// fills in the header in place when the batch is not compressed (one more
/// buffer when it is).
///
/// Headers are given as any cloneable iterator of `(&str, Option<&[u8]>)`
/// (it is walked twice: once to size the record, once to write it): an
/// array such as `[("k", Some(v))]`, `[]` for none, or
/// `headers.iter().map(|(k, v)| (k.as_str(), v.as_deref()))` over owned
/// ones.
///
/// Timestamps are stored as Kafka does: the first record's timestamp is the
/// batch's base timestamp, each record stores its delta from it (which may
/// be negative), and the batch carries the largest timestamp.
///
/// ```
/// use kafka_blocking::records::{BatchOptions, RecordBatchBuilder};
///
/// let mut b = RecordBatchBuilder::with_capacity(16 * 1024);
/// let value = vec![b'x'; 100];
/// let limit = 16 * 1024; // batch_size
/// while b.would_fit(limit, 1_700_000_000_000, None, Some(value.len()), []) {
///     b.append(1_700_000_000_000, None, Some(value.as_slice()), [])?;
/// }
/// let size = b.size_estimate();
/// assert!(size <= limit);
/// assert_eq!(b.build(&BatchOptions::default())?.len(), size);
/// # Ok::<(), kafka_blocking::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct RecordBatchBuilder {
    buf: Vec<u8>,
    count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
}

impl Default for RecordBatchBuilder {
    fn default() -> RecordBatchBuilder {
        RecordBatchBuilder::new()
    }
}

/// Encoded size of a record body (everything after its length varint), and
/// its header count.
#[inline]
fn body_size<'h, H>(
    timestamp_delta: i64,
    offset_delta: i32,
    key_len: Option<usize>,
    value_len: Option<usize>,
    headers: H,
) -> (usize, usize)
where
    H: Iterator<Item = (&'h str, Option<&'h [u8]>)>,
{
    #[inline]
    fn field(len: Option<usize>) -> usize {
        match len {
            None => 1,
            Some(n) => varint_len(clamp_i32(n)).saturating_add(n),
        }
    }
    let mut size = 1 // attributes
        + varlong_len(timestamp_delta)
        + varint_len(offset_delta);
    size = size
        .saturating_add(field(key_len))
        .saturating_add(field(value_len));
    let mut count = 0usize;
    for (k, v) in headers {
        count += 1;
        size = size
            .saturating_add(field(Some(k.len())))
            .saturating_add(field(v.map(<[u8]>::len)));
    }
    (size.saturating_add(varint_len(clamp_i32(count))), count)
}

#[inline]
fn clamp_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[cold]
fn too_large(what: &str, size: usize) -> Error {
    Error::new(
        ErrorKind::MessageTooLarge,
        format!("{what} of {size} bytes is larger than a record batch can hold (2 GiB)"),
    )
}

impl RecordBatchBuilder {
    /// An empty builder.
    pub fn new() -> RecordBatchBuilder {
        RecordBatchBuilder::with_capacity(0)
    }

    /// An empty builder that writes into `buf` (cleared first): lets a
    /// producer reuse the buffers of completed batches instead of asking the
    /// allocator (and the kernel, page by page) for fresh ones.
    pub fn with_buffer(mut buf: Vec<u8>) -> RecordBatchBuilder {
        buf.clear();
        buf.resize(RECORD_BATCH_OVERHEAD, 0);
        RecordBatchBuilder {
            buf,
            count: 0,
            base_timestamp: -1,
            max_timestamp: -1,
        }
    }

    /// An empty builder whose buffer holds `bytes` (e.g. `batch_size`)
    /// before it grows.
    pub fn with_capacity(bytes: usize) -> RecordBatchBuilder {
        let mut buf = Vec::with_capacity(bytes.max(RECORD_BATCH_OVERHEAD));
        buf.resize(RECORD_BATCH_OVERHEAD, 0);
        RecordBatchBuilder {
            buf,
            count: 0,
            base_timestamp: -1,
            max_timestamp: -1,
        }
    }

    /// Appends a record and returns its offset delta (its index in the
    /// batch): its offset will be the batch's base offset plus this.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::MessageTooLarge`] when the record or the batch would
    /// pass 2 GiB; the builder is unchanged then.
    #[inline]
    pub fn append<'h, H>(
        &mut self,
        timestamp_ms: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: H,
    ) -> Result<i32>
    where
        H: IntoIterator<Item = (&'h str, Option<&'h [u8]>)>,
        H::IntoIter: Clone,
    {
        self.append_within(usize::MAX, timestamp_ms, key, value, headers)
            .map(|appended| appended.unwrap_or(-1))
    }

    /// Appends a record only if the batch stays within `limit` bytes (as
    /// [`would_fit`](RecordBatchBuilder::would_fit), the first record always
    /// fits): `Ok(Some(offset_delta))` when appended, `Ok(None)` when it
    /// would not fit. One size computation instead of `would_fit` plus
    /// `append`, for the producer's hot path.
    ///
    /// # Errors
    ///
    /// As [`append`](RecordBatchBuilder::append).
    #[inline]
    pub fn append_within<'h, H>(
        &mut self,
        limit: usize,
        timestamp_ms: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: H,
    ) -> Result<Option<i32>>
    where
        H: IntoIterator<Item = (&'h str, Option<&'h [u8]>)>,
        H::IntoIter: Clone,
    {
        let headers = headers.into_iter();
        let offset_delta = self.count;
        let timestamp_delta = self.timestamp_delta(timestamp_ms);
        let (body, header_count) = body_size(
            timestamp_delta,
            offset_delta,
            key.map(<[u8]>::len),
            value.map(<[u8]>::len),
            headers.clone(),
        );
        let record = body.saturating_add(varint_len(clamp_i32(body)));
        if self.count > 0 && self.buf.len().saturating_add(record) > limit {
            return Ok(None);
        }
        let total = self.buf.len().saturating_add(body).saturating_add(5);
        if body > i32::MAX as usize || total > i32::MAX as usize || offset_delta == i32::MAX {
            return Err(too_large("record", body));
        }
        let buf = &mut self.buf;
        buf.reserve(body + 5);
        put_varint(buf, body as i32);
        buf.push(0); // record attributes: unused
        put_varlong(buf, timestamp_delta);
        put_varint(buf, offset_delta);
        put_nullable(buf, key);
        put_nullable(buf, value);
        put_varint(buf, header_count as i32);
        for (k, v) in headers {
            put_nullable(buf, Some(k.as_bytes()));
            put_nullable(buf, v);
        }
        if self.count == 0 {
            self.base_timestamp = timestamp_ms;
            self.max_timestamp = timestamp_ms;
        } else if timestamp_ms > self.max_timestamp {
            self.max_timestamp = timestamp_ms;
        }
        self.count += 1;
        Ok(Some(offset_delta))
    }

    #[inline]
    fn timestamp_delta(&self, timestamp_ms: i64) -> i64 {
        if self.count == 0 {
            0
        } else {
            timestamp_ms.wrapping_sub(self.base_timestamp)
        }
    }

    /// The exact number of bytes [`append`](RecordBatchBuilder::append)
    /// would add for a record with these fields (`None` lengths are null
    /// keys/values).
    ///
    /// On an empty builder, `RECORD_BATCH_OVERHEAD + record_size(..)` is the
    /// size of a batch holding just that record (uncompressed).
    pub fn record_size<'h, H>(
        &self,
        timestamp_ms: i64,
        key_len: Option<usize>,
        value_len: Option<usize>,
        headers: H,
    ) -> usize
    where
        H: IntoIterator<Item = (&'h str, Option<&'h [u8]>)>,
    {
        let (body, _) = body_size(
            self.timestamp_delta(timestamp_ms),
            self.count,
            key_len,
            value_len,
            headers.into_iter(),
        );
        body.saturating_add(varint_len(clamp_i32(body)))
    }

    /// Whether a record with these fields fits within `limit` bytes
    /// (`batch_size`) of uncompressed batch: always `true` for the first
    /// record, as in the Java client, so that a record larger than
    /// `batch_size` still gets a batch of its own.
    pub fn would_fit<'h, H>(
        &self,
        limit: usize,
        timestamp_ms: i64,
        key_len: Option<usize>,
        value_len: Option<usize>,
        headers: H,
    ) -> bool
    where
        H: IntoIterator<Item = (&'h str, Option<&'h [u8]>)>,
    {
        self.count == 0
            || self.size_estimate().saturating_add(self.record_size(
                timestamp_ms,
                key_len,
                value_len,
                headers,
            )) <= limit
    }

    /// The size of the batch so far, uncompressed, header included: the
    /// exact size [`build`](RecordBatchBuilder::build) returns without
    /// compression, an upper bound in practice with it.
    #[inline]
    pub fn size_estimate(&self) -> usize {
        self.buf.len()
    }

    /// The number of records appended.
    #[inline]
    pub fn record_count(&self) -> i32 {
        self.count
    }

    /// `true` when no record has been appended.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The first record's timestamp (-1 while empty).
    pub fn base_timestamp(&self) -> i64 {
        self.base_timestamp
    }

    /// The largest record timestamp so far (-1 while empty).
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    /// Finishes the batch: compresses the records if asked, writes the
    /// header and its CRC-32C.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidArgument`] for a batch with no records (a
    /// producer never sends one), [`ErrorKind::Compression`] if the codec
    /// fails, [`ErrorKind::MessageTooLarge`] past 2 GiB.
    pub fn build(self, options: &BatchOptions) -> Result<Bytes> {
        self.finish(options, options.compression, false)
    }

    fn finish(
        self,
        options: &BatchOptions,
        compression: Compression,
        control: bool,
    ) -> Result<Bytes> {
        if self.count == 0 {
            return Err(Error::invalid_argument(
                "cannot build a record batch with no records",
            ));
        }
        let mut buf = match compression {
            Compression::None => self.buf,
            codec => {
                let records = self.buf.get(RECORD_BATCH_OVERHEAD..).unwrap_or_default();
                let mut out = Vec::with_capacity(RECORD_BATCH_OVERHEAD + records.len() / 2 + 64);
                out.resize(RECORD_BATCH_OVERHEAD, 0);
                compress(codec, records, &mut out)?;
                out
            }
        };
        let mut attributes = i16::from(compression.id());
        if options.log_append_time.is_some() {
            attributes |= TIMESTAMP_TYPE_BIT;
        }
        if options.transactional || control {
            attributes |= TRANSACTIONAL_BIT;
        }
        if control {
            attributes |= CONTROL_BIT;
        }
        let len = buf.len();
        if len > i32::MAX as usize {
            return Err(too_large("record batch", len));
        }
        batch_v2::write_header(
            &mut buf,
            &HeaderFields {
                base_offset: options.base_offset,
                partition_leader_epoch: options.partition_leader_epoch,
                attributes,
                last_offset_delta: self.count - 1,
                base_timestamp: self.base_timestamp,
                max_timestamp: options.log_append_time.unwrap_or(self.max_timestamp),
                producer_id: options.producer_id,
                producer_epoch: options.producer_epoch,
                base_sequence: options.base_sequence,
                record_count: self.count,
            },
        );
        Ok(Bytes::from(buf))
    }
}

#[inline]
fn put_nullable(buf: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        None => buf.push(1), // zig-zag -1
        Some(b) => {
            // Lengths were checked against i32::MAX by the caller.
            put_uvarint(buf, (b.len() as u32) << 1);
            buf.extend_from_slice(b);
        }
    }
}

/// Builds a control batch holding one transaction marker, as a transaction
/// coordinator writes it: transactional, control bit set, never compressed
/// (`options.compression` is ignored).
///
/// ```
/// use kafka_blocking::records::*;
///
/// let marker = ControlRecord { kind: ControlType::Commit, coordinator_epoch: 5 };
/// let opts = BatchOptions { producer_id: 9, producer_epoch: 1, ..BatchOptions::default() };
/// let bytes = build_control_batch(marker, 1_700_000_000_000, &opts)?;
/// let batch = RecordBatches::new(bytes, ReadOptions::default()).next().unwrap()?;
/// assert!(batch.is_control() && batch.is_transactional());
/// assert_eq!(batch.control_record()?, Some(marker));
/// # Ok::<(), kafka_blocking::Error>(())
/// ```
///
/// # Errors
///
/// [`ErrorKind::InvalidArgument`] for a [`ControlType::Unknown`] marker.
pub fn build_control_batch(
    control: ControlRecord,
    timestamp_ms: i64,
    options: &BatchOptions,
) -> Result<Bytes> {
    let kind: i16 = match control.kind {
        ControlType::Abort => 0,
        ControlType::Commit => 1,
        ControlType::Unknown(k) => {
            return Err(Error::invalid_argument(format!(
                "cannot write a control record of unknown type {k}"
            )))
        }
    };
    let mut key = [0u8; 4]; // version 0, type
    key[2..].copy_from_slice(&kind.to_be_bytes());
    let mut value = [0u8; 6]; // version 0, coordinator epoch
    value[2..].copy_from_slice(&control.coordinator_epoch.to_be_bytes());
    let mut b = RecordBatchBuilder::with_capacity(RECORD_BATCH_OVERHEAD + 20);
    b.append(timestamp_ms, Some(&key), Some(&value), [])?;
    b.finish(options, Compression::None, true)
}
