//! Record batches: building them for produce requests and reading the
//! `records` blobs of fetch responses.
//!
//! This layer is pure (no I/O, no threads) and sits under the producer and
//! the consumer:
//!
//! * [`RecordBatchBuilder`] appends records into one growing buffer (no
//!   allocation per record) and [`builds`](RecordBatchBuilder::build) a magic
//!   2 batch: header, CRC-32C, optional compression. [`set_producer_state`]
//!   rewrites the idempotence fields of a built batch for a retry;
//!   [`build_control_batch`] writes transaction markers.
//! * [`RecordBatches`] iterates over a fetched blob: magic 2 batches and the
//!   legacy magic 0/1 message sets of brokers and logs older than 0.11
//!   (including compressed wrapper messages). Each [`Batch`] exposes its
//!   header and yields [`Record`]s whose keys, values and
//!   [`Headers`] are [`Bytes`](crate::Bytes) views into the fetched buffer,
//!   or into the one decompressed buffer of their batch.
//! * [`compress`] and [`decompress`] are the codecs ([`Compression`]);
//!   decompression refuses to grow past a cap
//!   ([`ReadOptions::max_decompressed_bytes`]).
//!
//! ```
//! use kafka_blocking::records::{
//!     BatchOptions, Compression, ReadOptions, RecordBatchBuilder, RecordBatches,
//! };
//!
//! let mut builder = RecordBatchBuilder::new();
//! let (key, value) = ("k".as_bytes(), "v1".as_bytes());
//! builder.append(1_700_000_000_000, Some(key), Some(value), [("trace", Some("7".as_bytes()))])?;
//! builder.append(1_700_000_000_005, None, None, [])?; // a tombstone without a key
//! let batch = builder.build(&BatchOptions {
//!     base_offset: 40, // a broker assigns offsets; set here to show them
//!     compression: Compression::Lz4,
//!     ..BatchOptions::default()
//! })?;
//!
//! for batch in RecordBatches::new(batch, ReadOptions::default()) {
//!     let batch = batch?;
//!     assert_eq!((batch.base_offset(), batch.last_offset()), (40, 41));
//!     for record in batch.records() {
//!         let record = record?;
//!         for (key, value) in record.headers.iter() {
//!             assert_eq!((key, value.as_deref()), ("trace", Some(&b"7"[..])));
//!         }
//!         println!("{} {:?} {:?}", record.offset, record.key, record.value);
//!     }
//! }
//! # Ok::<(), kafka_blocking::Error>(())
//! ```
//!
//! The formats are described in the Kafka documentation's "Message Format"
//! section (record batch, record, control batch) and, for magic 0 and 1, in
//! the protocol guide's "Message Sets".

mod batch;
mod batch_v2;
mod builder;
mod compression;
mod legacy;
mod reader;
mod wire;

#[cfg(test)]
mod tests;

pub use batch::{Batch, ControlRecord, ControlType, HeaderIter, Headers, ReadOptions, Record};
pub use batch_v2::set_producer_state;
pub use builder::{build_control_batch, BatchOptions, RecordBatchBuilder};
pub use compression::{compress, decompress, Compression};
pub use reader::{RecordBatches, Records};

/// Bytes in a magic 2 batch header: everything before the first record.
pub const RECORD_BATCH_OVERHEAD: usize = 61;

/// The timestamp of records that have none (magic 0).
pub const NO_TIMESTAMP: i64 = -1;

/// The default [`ReadOptions::max_decompressed_bytes`]: 64 MiB.
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: usize = 64 << 20;

/// What a batch's timestamps mean (attribute bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimestampType {
    /// The producer set each record's timestamp.
    CreateTime,
    /// The broker stamped the batch when it appended it to the log; every
    /// record's timestamp is the batch's max timestamp.
    LogAppendTime,
}

impl TimestampType {
    /// The name the Java client prints (`CreateTime`, `LogAppendTime`).
    pub fn name(self) -> &'static str {
        match self {
            TimestampType::CreateTime => "CreateTime",
            TimestampType::LogAppendTime => "LogAppendTime",
        }
    }
}
