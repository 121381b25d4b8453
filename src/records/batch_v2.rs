//! The magic 2 record batch: header layout, CRC-32C, and record decoding.
//!
//! ```text
//! baseOffset: int64             0   \ not covered
//! batchLength: int32            8   | by the CRC
//! partitionLeaderEpoch: int32  12   |
//! magic: int8 (= 2)            16   |
//! crc: uint32 (CRC-32C)        17   /
//! attributes: int16            21   bits 0-2 codec, 3 timestamp type,
//! lastOffsetDelta: int32       23        4 transactional, 5 control
//! baseTimestamp: int64         27
//! maxTimestamp: int64          35
//! producerId: int64            43
//! producerEpoch: int16         51
//! baseSequence: int32          53
//! recordCount: int32           57
//! records                      61   (compressed as a whole if the codec is set)
//!
//! record: length varint, attributes int8, timestampDelta varlong,
//!         offsetDelta varint, key varint-bytes, value varint-bytes,
//!         headerCount varint, headers [key varint-string, value varint-bytes]
//! ```

use byteorder::{BigEndian, ByteOrder};

use crate::bytes::Bytes;
use crate::error::{Error, ErrorKind, Result};
use crate::records::batch::{Batch, Body, Headers, ReadOptions, Record, COMPRESSION_MASK};
use crate::records::compression::Compression;
use crate::records::wire::Reader;
use crate::records::RECORD_BATCH_OVERHEAD;

const LEADER_EPOCH_AT: usize = 12;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;

/// The header fields the builder fills in.
pub(crate) struct HeaderFields {
    pub base_offset: i64,
    pub partition_leader_epoch: i32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

/// Writes the header into `buf[..61]` (the batch length is `buf.len()`,
/// which the caller checked fits an i32) and then the CRC.
pub(crate) fn write_header(buf: &mut [u8], h: &HeaderFields) {
    let mut header = [0u8; RECORD_BATCH_OVERHEAD];
    BigEndian::write_i64(&mut header[0..], h.base_offset);
    BigEndian::write_i32(&mut header[8..], (buf.len() - 12) as i32);
    BigEndian::write_i32(&mut header[LEADER_EPOCH_AT..], h.partition_leader_epoch);
    header[16] = 2;
    BigEndian::write_i16(&mut header[ATTRIBUTES_AT..], h.attributes);
    BigEndian::write_i32(&mut header[23..], h.last_offset_delta);
    BigEndian::write_i64(&mut header[27..], h.base_timestamp);
    BigEndian::write_i64(&mut header[35..], h.max_timestamp);
    BigEndian::write_i64(&mut header[PRODUCER_ID_AT..], h.producer_id);
    BigEndian::write_i16(&mut header[PRODUCER_EPOCH_AT..], h.producer_epoch);
    BigEndian::write_i32(&mut header[BASE_SEQUENCE_AT..], h.base_sequence);
    BigEndian::write_i32(&mut header[57..], h.record_count);
    if let Some(dst) = buf.get_mut(..RECORD_BATCH_OVERHEAD) {
        dst.copy_from_slice(&header);
    }
    update_crc(buf);
}

fn update_crc(buf: &mut [u8]) {
    let crc = crc32c::crc32c(buf.get(ATTRIBUTES_AT..).unwrap_or_default());
    if let Some(dst) = buf.get_mut(CRC_AT..ATTRIBUTES_AT) {
        BigEndian::write_u32(dst, crc);
    }
}

/// Rewrites the producer id, epoch and base sequence of a built magic 2
/// batch and recomputes its CRC, for a retry after the producer's epoch was
/// bumped or its sequences were reset.
///
/// Copies the batch only when another view of its buffer is alive.
///
/// ```
/// use kafka_blocking::records::*;
///
/// let mut b = RecordBatchBuilder::new();
/// b.append(0, None, Some("v".as_bytes()), [])?;
/// let batch = b.build(&BatchOptions { producer_id: 7, producer_epoch: 0, base_sequence: 0,
///                                     ..BatchOptions::default() })?;
/// let batch = set_producer_state(batch, 7, 1, 30)?;
/// let read = RecordBatches::new(batch, ReadOptions::default()).next().unwrap()?;
/// assert_eq!((read.producer_id(), read.producer_epoch(), read.base_sequence()), (7, 1, 30));
/// # Ok::<(), kafka_blocking::Error>(())
/// ```
///
/// # Errors
///
/// [`ErrorKind::InvalidArgument`] when `batch` is not one whole magic 2
/// batch.
pub fn set_producer_state(
    batch: Bytes,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Result<Bytes> {
    let whole = batch.len() >= RECORD_BATCH_OVERHEAD
        && batch.as_slice().get(16) == Some(&2)
        && batch
            .as_slice()
            .get(8..12)
            .map(BigEndian::read_i32)
            .is_some_and(|n| n as i64 + 12 == batch.len() as i64);
    if !whole {
        return Err(Error::invalid_argument(
            "set_producer_state needs exactly one whole magic 2 record batch",
        ));
    }
    let mut buf = batch.into_vec();
    if let Some(dst) = buf.get_mut(PRODUCER_ID_AT..RECORD_BATCH_OVERHEAD) {
        BigEndian::write_i64(&mut dst[0..], producer_id);
        BigEndian::write_i16(&mut dst[8..], producer_epoch);
        BigEndian::write_i32(&mut dst[10..], base_sequence);
    }
    update_crc(&mut buf);
    Ok(Bytes::from(buf))
}

#[cold]
fn corrupt(kind: ErrorKind, base_offset: i64, what: impl std::fmt::Display) -> Error {
    Error::new(
        kind,
        format!("corrupt record batch at base offset {base_offset}: {what}"),
    )
    .with_offset(base_offset)
}

/// Parses and checks the header of one whole magic 2 batch.
pub(crate) fn parse(raw: Bytes, options: &ReadOptions) -> Result<Batch> {
    let h = raw.as_slice();
    let mut r = Reader::new(h, 0);
    let base_offset = r.i64().unwrap_or(-1);
    if h.len() < RECORD_BATCH_OVERHEAD {
        return Err(corrupt(
            ErrorKind::Protocol,
            base_offset,
            format!("{} bytes is shorter than a batch header", h.len()),
        ));
    }
    let field = |at: usize, n: usize| h.get(at..at + n).unwrap_or(&[0; 8][..n]);
    let crc = BigEndian::read_u32(field(CRC_AT, 4));
    if options.check_crcs {
        let actual = crc32c::crc32c(h.get(ATTRIBUTES_AT..).unwrap_or_default());
        if actual != crc {
            return Err(corrupt(
                ErrorKind::Corrupt,
                base_offset,
                format!("CRC-32C is {actual:#010x}, the header says {crc:#010x}"),
            ));
        }
    }
    let attributes = BigEndian::read_i16(field(ATTRIBUTES_AT, 2));
    let codec = (attributes & COMPRESSION_MASK) as u8;
    if Compression::from_id(codec).is_none() {
        return Err(corrupt(
            ErrorKind::Protocol,
            base_offset,
            format!("unknown compression codec id {codec}"),
        ));
    }
    let last_offset_delta = BigEndian::read_i32(field(23, 4));
    let record_count = BigEndian::read_i32(field(57, 4));
    if record_count < 0 {
        return Err(corrupt(
            ErrorKind::Protocol,
            base_offset,
            format!("negative record count {record_count}"),
        ));
    }
    let records = raw.slice(RECORD_BATCH_OVERHEAD..);
    Ok(Batch {
        magic: 2,
        base_offset,
        last_offset: base_offset.wrapping_add(i64::from(last_offset_delta)),
        partition_leader_epoch: BigEndian::read_i32(field(LEADER_EPOCH_AT, 4)),
        crc,
        attributes,
        base_timestamp: BigEndian::read_i64(field(27, 8)),
        max_timestamp: BigEndian::read_i64(field(35, 8)),
        producer_id: BigEndian::read_i64(field(PRODUCER_ID_AT, 8)),
        producer_epoch: BigEndian::read_i16(field(PRODUCER_EPOCH_AT, 2)),
        base_sequence: BigEndian::read_i32(field(BASE_SEQUENCE_AT, 4)),
        record_count,
        body: Body::V2 {
            records,
            max_decompressed_bytes: options.max_decompressed_bytes,
        },
        raw,
    })
}

/// Iterates over the (uncompressed) records section of a magic 2 batch.
pub(crate) struct V2Records {
    pub data: Bytes,
    pub pos: usize,
    pub left: i32,
    pub base_offset: i64,
    pub base_timestamp: i64,
    /// `Some(max timestamp)` for LogAppendTime batches.
    pub log_append_time: Option<i64>,
}

impl V2Records {
    #[inline(always)]
    pub(crate) fn next_record(&mut self) -> Option<Result<Record>> {
        if self.left <= 0 {
            return self.end();
        }
        self.left -= 1;
        let all = self.data.as_slice();
        let mut r = Reader::new(all, self.pos);
        let Some(len) = r.varint() else {
            return self.malformed();
        };
        let Some(end) = usize::try_from(len).ok().and_then(|n| r.pos.checked_add(n)) else {
            return self.malformed();
        };
        let Some(record) = all.get(..end) else {
            return self.malformed();
        };
        // Every read below stays inside this record.
        let mut r = Reader::new(record, r.pos);
        let Some(fields) = Self::fields(&mut r) else {
            return self.malformed();
        };
        let (timestamp_delta, offset_delta, key, value, header_count, headers_at) = fields;
        if r.pos != end {
            return self.malformed();
        }
        self.pos = end;
        let view = |range: Option<(usize, usize)>| match range {
            Some((s, e)) => self.data.get(s..e),
            None => None,
        };
        Some(Ok(Record {
            offset: self.base_offset.wrapping_add(i64::from(offset_delta)),
            timestamp: match self.log_append_time {
                Some(t) => t,
                None => self.base_timestamp.wrapping_add(timestamp_delta),
            },
            key: view(key),
            value: view(value),
            headers: if header_count == 0 {
                Headers::default()
            } else {
                Headers::new(self.data.slice(headers_at..end), header_count as u32)
            },
        }))
    }

    /// Reads a record's fields after its length; checks the headers.
    #[inline(always)]
    #[allow(clippy::type_complexity)]
    fn fields(
        r: &mut Reader<'_>,
    ) -> Option<(
        i64,
        i32,
        Option<(usize, usize)>,
        Option<(usize, usize)>,
        i32,
        usize,
    )> {
        r.u8()?; // record attributes: unused
        let timestamp_delta = r.varlong()?;
        let offset_delta = r.varint()?;
        let key = r.nullable_varbytes()?;
        let value = r.nullable_varbytes()?;
        let header_count = r.varint()?;
        if header_count < 0 {
            return None;
        }
        let headers_at = r.pos;
        for _ in 0..header_count {
            let key_len = r.varint()?;
            let key = r.slice(usize::try_from(key_len).ok()?)?;
            std::str::from_utf8(key).ok()?;
            r.nullable_varbytes()?;
        }
        Some((
            timestamp_delta,
            offset_delta,
            key,
            value,
            header_count,
            headers_at,
        ))
    }

    #[cold]
    fn malformed(&mut self) -> Option<Result<Record>> {
        self.left = -1; // fused
        Some(Err(corrupt(
            ErrorKind::Protocol,
            self.base_offset,
            format!("malformed record at byte {} of the records", self.pos),
        )))
    }

    #[cold]
    fn end(&mut self) -> Option<Result<Record>> {
        if self.left == 0 {
            self.left = -1;
            if self.pos != self.data.len() {
                let extra = self.data.len().saturating_sub(self.pos);
                return Some(Err(corrupt(
                    ErrorKind::Protocol,
                    self.base_offset,
                    format!("{extra} bytes after the last record"),
                )));
            }
        }
        None
    }
}
