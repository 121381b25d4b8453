//! Reading a fetched `records` blob: batches, records, headers, control
//! records.

use std::fmt;

use byteorder::{BigEndian, ByteOrder};

use crate::bytes::Bytes;
use crate::error::{Error, Result};
use crate::records::batch::{Batch, Body, ControlRecord, ControlType, ReadOptions, Record};
use crate::records::batch_v2::{self, V2Records};
use crate::records::compression::{decompress, Compression};
use crate::records::legacy::{self, LegacyRecords};
use crate::records::wire::Reader;
use crate::records::TimestampType;

/// An iterator over the batches of a fetched `records` blob.
///
/// Handles magic 2 record batches and legacy magic 0/1 messages (each
/// top-level legacy message, compressed wrapper or not, is one [`Batch`]).
/// A partial batch at the end, which brokers send when a fetch's byte limit
/// cuts one, ends the iteration without an error; see
/// [`position`](RecordBatches::position) to tell.
///
/// A batch that fails its CRC or whose framing, header or legacy inner
/// messages are malformed is an `Err` ([`ErrorKind::Corrupt`](crate::ErrorKind::Corrupt) for a CRC
/// mismatch, [`ErrorKind::Protocol`](crate::ErrorKind::Protocol) otherwise, with
/// [`Error::offset`](crate::Error::offset) set to the batch's base offset),
/// and the iteration ends after it.
#[derive(Debug, Clone)]
pub struct RecordBatches {
    data: Bytes,
    pos: usize,
    options: ReadOptions,
    failed: bool,
}

impl RecordBatches {
    /// Iterates over the batches in `data`; no work is done until `next`.
    pub fn new(data: Bytes, options: ReadOptions) -> RecordBatches {
        RecordBatches {
            data,
            pos: 0,
            options,
            failed: false,
        }
    }

    /// The number of bytes of the blob taken by the batches returned so
    /// far. After the iteration ends without an error, a position short of
    /// the blob's length means the last batch was cut off.
    pub fn position(&self) -> usize {
        self.pos
    }

    fn fail(&mut self, e: Error) -> Option<Result<Batch>> {
        self.failed = true;
        Some(Err(e))
    }
}

impl Iterator for RecordBatches {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        if self.failed {
            return None;
        }
        let rest = self.data.get(self.pos..)?;
        let mut r = Reader::new(&rest, 0);
        let (Some(base_offset), Some(length)) = (r.i64(), r.i32()) else {
            return None; // fewer than 12 bytes: a cut-off batch
        };
        if length < legacy::min_message_size(0) as i32 {
            return self.fail(
                Error::protocol(format!(
                    "record batch at base offset {base_offset} has an impossible length {length}"
                ))
                .with_offset(base_offset),
            );
        }
        let total = 12 + length as usize;
        let raw = rest.get(..total)?; // cut off: the end
        self.pos += total;
        let magic = raw.as_slice().get(16).map_or(-1, |&m| m as i8);
        let batch = match magic {
            2 => batch_v2::parse(raw, &self.options),
            0 | 1 => legacy::parse(raw, &self.options),
            _ => Err(Error::protocol(format!(
                "record batch at base offset {base_offset} has unknown magic {magic}"
            ))
            .with_offset(base_offset)),
        };
        match batch {
            Ok(b) => Some(Ok(b)),
            Err(e) => self.fail(e),
        }
    }
}

impl Batch {
    /// The records, decompressing them first if the batch is compressed
    /// (each call decompresses again).
    ///
    /// Keys, values and headers are views into the fetched buffer, or into
    /// the one decompressed buffer. A decompression error, or a malformed
    /// record, is yielded as an `Err` (with [`Error::offset`] set to the
    /// batch's base offset), after which the iterator ends.
    pub fn records(&self) -> Records {
        let inner = match &self.body {
            Body::V2 {
                records,
                max_decompressed_bytes,
            } => {
                let data = match self.compression() {
                    Compression::None => Ok(records.clone()),
                    codec => decompress(codec, records, *max_decompressed_bytes)
                        .map(Bytes::from)
                        .map_err(|e| {
                            e.context(format_args!(
                                "record batch at base offset {}",
                                self.base_offset
                            ))
                            .with_offset(self.base_offset)
                        }),
                };
                match data {
                    Ok(data) => Inner::V2(V2Records {
                        data,
                        pos: 0,
                        left: self.record_count,
                        base_offset: self.base_offset,
                        base_timestamp: self.base_timestamp,
                        log_append_time: (self.timestamp_type()
                            == Some(TimestampType::LogAppendTime))
                        .then_some(self.max_timestamp),
                    }),
                    Err(e) => Inner::Failed(Some(e)),
                }
            }
            Body::Legacy {
                set,
                offset_base,
                log_append_time,
            } => Inner::Legacy(LegacyRecords {
                set: set.clone(),
                pos: 0,
                offset_base: *offset_base,
                log_append_time: *log_append_time,
                batch_offset: self.base_offset,
            }),
        };
        Records { inner }
    }

    /// The transaction marker of a control batch: `Ok(None)` for a data
    /// batch.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Protocol`](crate::ErrorKind::Protocol) when the control batch has no record or its
    /// key/value are too short (as the Java client).
    pub fn control_record(&self) -> Result<Option<ControlRecord>> {
        if !self.is_control() {
            return Ok(None);
        }
        let bad = |what: &str| {
            Error::protocol(format!(
                "control batch at base offset {}: {what}",
                self.base_offset
            ))
            .with_offset(self.base_offset)
        };
        let record = self
            .records()
            .next()
            .ok_or_else(|| bad("no control record"))??;
        let key = record.key.as_deref().unwrap_or_default();
        if key.len() < 4 {
            return Err(bad("control record key is shorter than 4 bytes"));
        }
        let kind = match BigEndian::read_i16(&key[2..4]) {
            0 => ControlType::Abort,
            1 => ControlType::Commit,
            k => ControlType::Unknown(k),
        };
        let coordinator_epoch = match kind {
            ControlType::Unknown(_) => -1,
            _ => match record.value.as_deref() {
                Some(v) if v.len() >= 6 => BigEndian::read_i32(&v[2..6]),
                _ => return Err(bad("transaction marker value is shorter than 6 bytes")),
            },
        };
        Ok(Some(ControlRecord {
            kind,
            coordinator_epoch,
        }))
    }
}

enum Inner {
    V2(V2Records),
    Legacy(LegacyRecords),
    Failed(Option<Error>),
}

/// An iterator over the records of a [`Batch`]; see [`Batch::records`].
pub struct Records {
    inner: Inner,
}

impl Iterator for Records {
    type Item = Result<Record>;

    #[inline]
    fn next(&mut self) -> Option<Result<Record>> {
        match &mut self.inner {
            Inner::V2(r) => r.next_record(),
            Inner::Legacy(r) => r.next_record(),
            Inner::Failed(e) => e.take().map(Err),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.inner {
            Inner::V2(r) => (0, Some(r.left.max(0) as usize + 1)),
            Inner::Legacy(_) => (0, None),
            Inner::Failed(e) => (usize::from(e.is_some()), Some(usize::from(e.is_some()))),
        }
    }
}

impl fmt::Debug for Records {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Records").finish_non_exhaustive()
    }
}
