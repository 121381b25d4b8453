//! [`Producer`]: a thread-safe, batching, idempotent Kafka producer.
//!
//! ```no_run
//! use std::time::Duration;
//! use kafka_blocking::producer::{Producer, Record};
//!
//! # fn main() -> kafka_blocking::Result<()> {
//! let producer = Producer::builder()
//!     .bootstrap_servers("127.0.0.1:9092")
//!     .linger_ms(5)
//!     .compression_type("lz4")
//!     .build()?;
//!
//! // Fire and forget, then wait for everything at the end.
//! for i in 0..1000 {
//!     let _ = producer.send(Record::new("events").key(i.to_string()).value("hello"))?;
//! }
//! producer.flush(Duration::from_secs(30))?;
//!
//! // Or wait for one record's acknowledgement.
//! let meta = producer.send(Record::new("events").value("one"))?.wait()?;
//! println!("stored at {}-{}@{}", meta.topic(), meta.partition(), meta.offset());
//! # Ok(())
//! # }
//! ```
//!
//! `Producer` is `Clone + Send + Sync`; clones share one sender thread and
//! one set of broker connections, so share it across threads freely.
//!
//! Inside: `send` appends the record to its partition's open batch in the
//! accumulator (in the caller's thread, under that
//! partition's lock, with no allocation per record), and returns a
//! [`DeliveryFuture`] pointing at the batch. The sender thread drains full
//! or lingered batches, compresses them, groups them per leader into
//! produce requests and completes each batch once (one store per batch
//! wakes every future of it). A batch the broker refuses as too large
//! (`MESSAGE_TOO_LARGE`: the topic's `max.message.bytes` is below
//! `batch_size`) is sent again in halves, as the Java client does, and each
//! record's future gets the offset its piece was stored at.
//!
//! With `linger_ms` 0 a record should leave at once, so the thread that
//! sends it does the sender's work itself when the sender thread is idle,
//! and the connection's reader completes the answer: a request/reply
//! service sending one record at a time wakes no sender thread at all
//! (callbacks still run on the sender thread only).

mod accumulator;
mod config;
mod metrics;
mod partitioner;
mod record;
mod sender;
mod serializer;
mod transaction;
mod typed;
mod wire;

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

pub use config::{Acks, AcksSetting, ProducerBuilder, ProducerConfig};
pub use metrics::ProducerMetrics;
pub use partitioner::{murmur2, partition_for_key, Partitioner};
pub use record::{DeliveryFuture, IntoPayload, Payload, Record, RecordMetadata, Serializer};
#[cfg(feature = "json")]
pub use serializer::JsonSerializer;
pub use serializer::{BigEndianSerializer, BytesSerializer, StringSerializer};
pub use transaction::{ConsumerGroupMetadata, TransactionState};
pub use typed::TypedProducer;

use accumulator::{Accumulator, AccumulatorConfig, AppendRecord, Appended, TopicQueues};
use record::RecordInfo;
use transaction::Transactions;

use crate::cluster::{Cluster, PartitionMetadata};
use crate::error::{Error, ErrorKind, Result};
use crate::{OffsetAndMetadata, TopicPartition};

/// A Kafka producer. See the [module documentation](self).
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: Arc<ProducerConfig>,
    cluster: Arc<Cluster>,
    acc: Arc<Accumulator>,
    metrics: Arc<metrics::Metrics>,
    state: Arc<AtomicU8>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// The sender's state: its thread's, and a `send()` caller's for a
    /// turn when `linger_ms` is 0 ([`Producer::kick`]).
    sender: Arc<Mutex<sender::SenderThread>>,
    round_robin: partitioner::PartitionerState,
    txn: Option<Arc<Transactions>>,
}

impl Producer {
    /// A builder with kafka-python's names and defaults.
    pub fn builder() -> ProducerBuilder {
        ProducerBuilder::default()
    }

    pub(crate) fn from_config(cfg: ProducerConfig) -> Result<Producer> {
        let cfg = Arc::new(cfg);
        let cluster = Cluster::new(cfg.client.clone(), true);
        let (wake_tx, wake_rx) = crossbeam_channel::bounded(1);
        let acc = Arc::new(Accumulator::new(
            AccumulatorConfig {
                batch_size: cfg.batch_size,
                linger: cfg.linger,
                buffer_memory: cfg.buffer_memory,
            },
            wake_tx,
        ));
        let metrics = Arc::new(metrics::Metrics::default());
        let state = Arc::new(AtomicU8::new(sender::RUNNING));
        let txn = cfg.transactional_id.as_ref().map(|id| {
            Arc::new(Transactions::new(
                id.clone(),
                cfg.transaction_timeout_ms,
                Arc::clone(&cluster),
            ))
        });
        let sender = sender::SenderThread::new(
            Arc::clone(&cfg),
            Arc::clone(&cluster),
            Arc::clone(&acc),
            Arc::clone(&metrics),
            Arc::clone(&state),
            wake_rx,
            txn.clone(),
        );
        let core = Arc::clone(&sender);
        let thread = std::thread::Builder::new()
            .name("kafka-producer-sender".into())
            .spawn(move || sender::SenderThread::run(core))
            .map_err(|e| Error::io("spawning the producer's sender thread", e))?;
        Ok(Producer {
            inner: Arc::new(Inner {
                cfg,
                cluster,
                acc,
                metrics,
                state,
                thread: Mutex::new(Some(thread)),
                sender,
                round_robin: partitioner::PartitionerState::default(),
                txn,
            }),
        })
    }

    /// Queues `record` for sending and returns a future for its outcome.
    ///
    /// Returns at once unless the buffer (`buffer_memory`) is full or the
    /// topic's metadata is not known yet; then it blocks up to
    /// `max_block_ms` and fails with [`ErrorKind::BufferExhausted`] or
    /// [`ErrorKind::Timeout`]. A record larger than `max_request_size`
    /// fails at once with [`ErrorKind::MessageTooLarge`].
    pub fn send(&self, record: Record<'_>) -> Result<DeliveryFuture> {
        let done = self.append_record(&record)?;
        if done.kick {
            self.kick();
        }
        Ok(DeliveryFuture {
            batch: done.completion,
            info: done.info,
        })
    }

    /// Like [`send`](Producer::send), but calls `callback` with the outcome
    /// instead of returning a future. The callback runs on the producer's
    /// sender thread (keep it short); nothing needs to be polled.
    pub fn send_with_callback(
        &self,
        record: Record<'_>,
        callback: impl FnOnce(Result<RecordMetadata>) + Send + 'static,
    ) -> Result<()> {
        let done = self.append_record(&record)?;
        // Registered before the sender may look: a batch sent and answered
        // at once (linger_ms 0) must not find it missing and complete
        // without it.
        done.completion.add_callback(done.info, Box::new(callback));
        if done.kick {
            self.kick();
        }
        Ok(())
    }

    /// The sender has something new to look at. With `linger_ms` 0 the
    /// record should leave now: the caller takes the sender's turn itself
    /// when the sender thread is not busy (one thread wake-up fewer on the
    /// record's way); otherwise, or when something is left for it, the
    /// sender thread is woken.
    fn kick(&self) {
        let inner = &*self.inner;
        if inner.cfg.linger.is_zero() {
            if let Some(mut sender) = inner.sender.try_lock() {
                if sender.drive(Instant::now()) {
                    return;
                }
            }
        }
        inner.acc.wake();
    }

    fn append_record(&self, record: &Record<'_>) -> Result<Appended> {
        if let Some(e) = &record.error {
            return Err(e.clone());
        }
        let inner = &*self.inner;
        if inner.acc.is_closed() {
            return Err(Error::closed("send() on a closed producer"));
        }
        if let Some(txn) = &inner.txn {
            txn.check_send()?;
        }
        let topic = match inner.acc.topic(&record.topic) {
            Some(t) => t,
            None => self.setup_topic(&record.topic)?,
        };
        let key = record.key.as_ref().map(Payload::as_bytes);
        let value = record.value.as_ref().map(Payload::as_bytes);
        let timestamp = record.timestamp.unwrap_or_else(now_ms);
        let rec = AppendRecord {
            timestamp,
            key,
            value,
            headers: &record.headers,
        };
        self.check_size(&rec, &topic.name)?;
        let max_block = inner.cfg.max_block;
        let count = topic.partition_count();
        let partition = match record.partition {
            Some(p) => {
                if p < 0 || p >= count {
                    return Err(Error::invalid_argument(format!(
                        "partition {p} does not exist: the topic has {count} partitions"
                    ))
                    .with_partition(&*topic.name, p));
                }
                p
            }
            None => match (inner.cfg.partitioner, key) {
                (Partitioner::RoundRobin, _) => {
                    (inner.round_robin.next() % count.max(1) as u32) as i32
                }
                (_, Some(k)) => partition_for_key(k, count),
                (Partitioner::Random, None) => {
                    (partitioner::random_u32() % count.max(1) as u32) as i32
                }
                (_, None) => {
                    // Sticky: fill the current partition's batch; when it
                    // would need a new one, move on (KIP-480).
                    let p = topic.sticky();
                    if let Some(done) =
                        inner
                            .acc
                            .append(&topic, p, &rec, false, max_block, Instant::now)?
                    {
                        return Ok(done);
                    }
                    topic.next_sticky(p)
                }
            },
        };
        inner
            .acc
            .append(&topic, partition, &rec, true, max_block, Instant::now)?
            .ok_or_else(|| Error::protocol("the accumulator refused a record"))
    }

    #[inline]
    fn check_size(&self, rec: &AppendRecord<'_>, topic: &str) -> Result<()> {
        let size = max_record_size(rec) + crate::records::RECORD_BATCH_OVERHEAD;
        if size <= self.inner.cfg.max_request_size && size <= self.inner.cfg.buffer_memory {
            return Ok(());
        }
        self.size_error(size, topic)
    }

    #[cold]
    fn size_error(&self, size: usize, topic: &str) -> Result<()> {
        let limit = self.inner.cfg.max_request_size;
        if size > limit {
            return Err(Error::new(
                ErrorKind::MessageTooLarge,
                format!(
                    "the record is {size} bytes serialized, more than max_request_size ({limit} bytes); raise max_request_size (and the broker's message.max.bytes) or send smaller records"
                ),
            )
            .with_topic(topic));
        }
        if size > self.inner.cfg.buffer_memory {
            return Err(Error::new(
                ErrorKind::MessageTooLarge,
                format!(
                    "the record is {size} bytes serialized, more than buffer_memory ({} bytes)",
                    self.inner.cfg.buffer_memory
                ),
            )
            .with_topic(topic));
        }
        Ok(())
    }

    fn setup_topic(&self, topic: &str) -> Result<Arc<TopicQueues>> {
        crate::validate::topic(topic)?;
        let md = self
            .inner
            .cluster
            .wait_for_topic(topic, self.inner.cfg.max_block)
            .map_err(|e| {
                if e.repeats_on_reconnect() {
                    // Failed at once (TLS, authentication): no wait to blame.
                    e.context("send() could not get the topic's metadata")
                } else {
                    e.context("send() could not get the topic's metadata within max_block_ms")
                }
            })?;
        Ok(self
            .inner
            .acc
            .ensure_topic(topic, md.partitions.len() as i32))
    }

    /// Sends every queued record now (ignoring `linger_ms`) and waits until
    /// each record sent before this call is acknowledged or has failed, or
    /// `timeout` passes.
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        if record::on_callback_thread() {
            return Err(Error::invalid_argument(
                "flush() inside a delivery callback would wait for the thread running the callback",
            ));
        }
        // `None`: no deadline (Duration::MAX).
        let deadline = Instant::now().checked_add(timeout);
        let pending = self.inner.acc.begin_flush();
        let mut result = Ok(());
        for batch in pending {
            let fut = DeliveryFuture {
                batch,
                info: RecordInfo {
                    index: 0,
                    timestamp: 0,
                    key_size: 0,
                    value_size: 0,
                },
            };
            let left = deadline.map_or(Duration::MAX, |d| {
                d.saturating_duration_since(Instant::now())
            });
            if let Err(e) = fut.get(left) {
                if e.kind() == ErrorKind::Timeout && !fut.is_done() {
                    result = Err(Error::timeout(format!(
                        "flush: records still unacknowledged after {} ms",
                        timeout.as_millis()
                    )));
                    break;
                }
            }
        }
        self.inner.acc.end_flush();
        result
    }

    /// Delivers what is queued (up to `timeout`), fails the rest with
    /// [`ErrorKind::Closed`], and stops the sender thread. Later sends fail.
    /// Dropping the last clone closes with `delivery_timeout_ms`.
    pub fn close(&self, timeout: Duration) -> Result<()> {
        self.inner.close(timeout)
    }

    /// Transactions: gets the producer id and epoch for `transactional_id`
    /// from its transaction coordinator, which fences any older producer
    /// with the same id and completes (aborts) a transaction it left open.
    /// Call once, before the first [`begin_transaction`](Self::begin_transaction).
    /// A timeout leaves the call resumable: call it again.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use kafka_blocking::producer::{Producer, Record};
    ///
    /// # fn main() -> kafka_blocking::Result<()> {
    /// let producer = Producer::builder()
    ///     .bootstrap_servers("127.0.0.1:9092")
    ///     .transactional_id("orders-writer-1")
    ///     .build()?;
    /// let t = Duration::from_secs(30);
    /// producer.init_transactions(t)?;
    /// producer.begin_transaction()?;
    /// producer.send(Record::new("orders").value("one"))?;
    /// producer.send(Record::new("orders").value("two"))?;
    /// match producer.commit_transaction(t) {
    ///     Ok(()) => {}
    ///     Err(e) if e.kind() == kafka_blocking::ErrorKind::TransactionAbortable => {
    ///         producer.abort_transaction(t)?; // and try the work again
    ///     }
    ///     Err(e) => return Err(e), // fatal (fenced, ...): close the producer
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn init_transactions(&self, timeout: Duration) -> Result<()> {
        self.txn("init_transactions()")?.init(timeout)
    }

    /// Opens a transaction: the records sent until the commit or abort
    /// belong to it. Local only (the coordinator hears of it with the
    /// first partition or offsets added).
    pub fn begin_transaction(&self) -> Result<()> {
        self.txn("begin_transaction()")?.begin()
    }

    /// Adds a consumer's offsets to the open transaction: they are
    /// committed for `group` if and only if the transaction commits (the
    /// read-process-write pattern). `group` comes from
    /// [`Consumer::group_metadata`](crate::Consumer::group_metadata), so
    /// a member that left the group's generation cannot commit (KIP-447).
    pub fn send_offsets_to_transaction<I>(
        &self,
        offsets: I,
        group: &ConsumerGroupMetadata,
        timeout: Duration,
    ) -> Result<()>
    where
        I: IntoIterator<Item = (TopicPartition, OffsetAndMetadata)>,
    {
        let txn = self.txn("send_offsets_to_transaction()")?;
        let offsets: Vec<(TopicPartition, OffsetAndMetadata)> = offsets.into_iter().collect();
        txn.send_offsets(&offsets, group, timeout)
    }

    /// Sends every record of the transaction, waits for their
    /// acknowledgements, and commits. Fails with
    /// [`ErrorKind::TransactionAbortable`] when any record (or offset) of
    /// the transaction failed: then call
    /// [`abort_transaction`](Self::abort_transaction). A timeout leaves the
    /// commit resumable: call it again (it does not start over).
    pub fn commit_transaction(&self, timeout: Duration) -> Result<()> {
        self.txn("commit_transaction()")?
            .commit(timeout, |left| self.flush(left))
    }

    /// Aborts the open transaction: records not sent yet fail, records
    /// already written are never shown to `read_committed` consumers. A
    /// timeout leaves the abort resumable: call it again.
    pub fn abort_transaction(&self, timeout: Duration) -> Result<()> {
        self.txn("abort_transaction()")?
            .abort(timeout, |left| self.flush(left))
    }

    /// Where the transactional producer is; `None` without
    /// `transactional_id`.
    pub fn transaction_state(&self) -> Option<TransactionState> {
        self.inner.txn.as_ref().map(|t| t.state())
    }

    fn txn(&self, call: &str) -> Result<&Transactions> {
        self.inner.txn.as_deref().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidState,
                format!("{call} needs a transactional producer: set transactional_id"),
            )
        })
    }

    /// The partitions of `topic` (fetching metadata if need be).
    pub fn partitions_for(&self, topic: &str) -> Result<Vec<PartitionMetadata>> {
        crate::validate::topic(topic)?;
        Ok(self
            .inner
            .cluster
            .wait_for_topic(topic, self.inner.cfg.max_block)?
            .partitions)
    }

    /// A snapshot of the producer's counters.
    pub fn metrics(&self) -> ProducerMetrics {
        self.inner.metrics.snapshot(
            self.inner.acc.memory_used() as u64,
            self.inner.acc.memory_peak() as u64,
        )
    }

    /// The configuration.
    pub fn config(&self) -> &ProducerConfig {
        &self.inner.cfg
    }
}

impl Inner {
    fn close(&self, timeout: Duration) -> Result<()> {
        let Some(thread) = self.thread.lock().take() else {
            return Ok(());
        };
        if thread.thread().id() == std::thread::current().id() {
            // Called from a delivery callback: the sender cannot wait for
            // itself; it stops once everything queued is done.
            self.acc.close();
            self.state.store(sender::CLOSING, Ordering::Release);
            return Ok(());
        }
        let deadline = Instant::now().checked_add(timeout);
        self.acc.close();
        self.state.store(sender::CLOSING, Ordering::Release);
        let mut delivered = true;
        while !thread.is_finished() {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                delivered = false;
                self.state.store(sender::ABORT, Ordering::Release);
                self.acc.close();
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        // After an abort the sender fails everything and stops at its next
        // loop; it may sit in a blocking metadata request for a while, so
        // wait a bounded grace period and then let it finish on its own.
        let grace = Instant::now() + Duration::from_secs(5);
        while !thread.is_finished() && Instant::now() < grace {
            std::thread::sleep(Duration::from_millis(1));
        }
        if thread.is_finished() {
            let _ = thread.join();
        }
        self.cluster.close();
        if delivered {
            Ok(())
        } else {
            Err(Error::timeout(format!(
                "close: records were still unsent after {} ms; they failed with a Closed error",
                timeout.as_millis()
            )))
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.close(self.cfg.delivery_timeout);
    }
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field(
                "bootstrap_servers",
                &self.inner.cfg.client.bootstrap_servers(),
            )
            .field("closed", &self.inner.acc.is_closed())
            .finish()
    }
}

/// An upper bound of a record's encoded size (every varint at its widest),
/// computed without touching a builder: the check runs on every send.
#[inline]
fn max_record_size(rec: &AppendRecord<'_>) -> usize {
    const VARINT: usize = 5;
    const VARLONG: usize = 10;
    let mut n = VARINT + 1 + VARLONG + VARINT; // length, attributes, timestamp and offset deltas
    n += VARINT + rec.key.map_or(0, <[u8]>::len);
    n += VARINT + rec.value.map_or(0, <[u8]>::len);
    n += VARINT;
    for (k, v) in rec.headers() {
        n += VARINT + k.len() + VARINT + v.map_or(0, <[u8]>::len);
    }
    n
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
