//! What goes in ([`Record`]) and what comes back ([`DeliveryFuture`],
//! [`RecordMetadata`]).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::bytes::Bytes;
use crate::error::{Error, Result};

/// Serialized key, value or header bytes: borrowed from the caller, owned,
/// shared, or a small number stored inline (no allocation).
#[derive(Clone)]
pub enum Payload<'a> {
    /// Bytes the record borrows; they are copied into the batch by `send`.
    Borrowed(&'a [u8]),
    /// Bytes the record owns.
    Owned(Vec<u8>),
    /// A shared buffer (e.g. a consumed record's value).
    Shared(Bytes),
    /// Up to 8 bytes held inline (the big-endian numbers).
    Inline([u8; 8], u8),
}

impl Payload<'_> {
    /// The bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Payload::Borrowed(b) => b,
            Payload::Owned(v) => v,
            Payload::Shared(b) => b,
            Payload::Inline(a, n) => &a[..usize::from(*n).min(8)],
        }
    }
}

impl fmt::Debug for Payload<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&Bytes::copy_from_slice(self.as_bytes()), f)
    }
}

/// Turns a value into record bytes: strings as UTF-8, byte slices as they
/// are, integers and floats big-endian like the Java client's
/// `IntegerSerializer`/`LongSerializer`/`DoubleSerializer`.
pub trait IntoPayload<'a> {
    /// The serialized bytes.
    fn into_payload(self) -> Payload<'a>;
}

impl<'a> IntoPayload<'a> for Payload<'a> {
    fn into_payload(self) -> Payload<'a> {
        self
    }
}
impl<'a> IntoPayload<'a> for &'a str {
    fn into_payload(self) -> Payload<'a> {
        Payload::Borrowed(self.as_bytes())
    }
}
impl<'a> IntoPayload<'a> for &'a String {
    fn into_payload(self) -> Payload<'a> {
        Payload::Borrowed(self.as_bytes())
    }
}
impl<'a> IntoPayload<'a> for String {
    fn into_payload(self) -> Payload<'a> {
        Payload::Owned(self.into_bytes())
    }
}
impl<'a> IntoPayload<'a> for &'a [u8] {
    fn into_payload(self) -> Payload<'a> {
        Payload::Borrowed(self)
    }
}
impl<'a, const N: usize> IntoPayload<'a> for &'a [u8; N] {
    fn into_payload(self) -> Payload<'a> {
        Payload::Borrowed(self)
    }
}
impl<'a> IntoPayload<'a> for &'a Vec<u8> {
    fn into_payload(self) -> Payload<'a> {
        Payload::Borrowed(self)
    }
}
impl<'a> IntoPayload<'a> for Vec<u8> {
    fn into_payload(self) -> Payload<'a> {
        Payload::Owned(self)
    }
}
impl<'a> IntoPayload<'a> for Bytes {
    fn into_payload(self) -> Payload<'a> {
        Payload::Shared(self)
    }
}
impl<'a> IntoPayload<'a> for &'a Bytes {
    fn into_payload(self) -> Payload<'a> {
        Payload::Borrowed(self.as_slice())
    }
}

macro_rules! be_numbers {
    ($($t:ty),*) => {$(
        impl<'a> IntoPayload<'a> for $t {
            fn into_payload(self) -> Payload<'a> {
                let b = self.to_be_bytes();
                let mut a = [0u8; 8];
                a[..b.len()].copy_from_slice(&b);
                Payload::Inline(a, b.len() as u8)
            }
        }
    )*};
}
be_numbers!(i8, i16, i32, i64, u8, u16, u32, u64, f32, f64);

/// A record to send: topic, optional partition, key, value, headers and
/// timestamp. Built with chained calls; borrows its data until `send`
/// copies it into a batch.
///
/// ```
/// use kafka_blocking::producer::Record;
///
/// let payload = String::from("{\"atmid\": 1}");
/// let r = Record::new("transactions")
///     .key("atm-1")
///     .value(&payload)
///     .header("source", "atm")
///     .partition(0);
/// assert_eq!(r.topic(), "transactions");
/// ```
#[derive(Clone, Debug)]
pub struct Record<'a> {
    pub(crate) topic: Cow<'a, str>,
    pub(crate) partition: Option<i32>,
    pub(crate) key: Option<Payload<'a>>,
    pub(crate) value: Option<Payload<'a>>,
    pub(crate) headers: Vec<(Cow<'a, str>, Option<Payload<'a>>)>,
    pub(crate) timestamp: Option<i64>,
    pub(crate) error: Option<Error>,
}

impl<'a> Record<'a> {
    /// A record for `topic` with no key, no value (a tombstone unless you
    /// set one), no headers, and the current time as its timestamp.
    pub fn new(topic: impl Into<Cow<'a, str>>) -> Record<'a> {
        Record {
            topic: topic.into(),
            partition: None,
            key: None,
            value: None,
            headers: Vec::new(),
            timestamp: None,
            error: None,
        }
    }

    /// Sends to this partition instead of letting the partitioner choose.
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// The key (see [`IntoPayload`] for how values become bytes).
    pub fn key(mut self, key: impl IntoPayload<'a>) -> Self {
        self.key = Some(key.into_payload());
        self
    }

    /// The value.
    pub fn value(mut self, value: impl IntoPayload<'a>) -> Self {
        self.value = Some(value.into_payload());
        self
    }

    /// The key, serialized by `serializer` (kafka-python's `key_serializer`).
    pub fn key_with<T: ?Sized>(mut self, key: &T, serializer: &dyn Serializer<T>) -> Self {
        match serializer.serialize(&self.topic, key) {
            Ok(b) => self.key = Some(Payload::Owned(b)),
            Err(e) => self.error = Some(e.context("serializing the key")),
        }
        self
    }

    /// The value, serialized by `serializer` (kafka-python's
    /// `value_serializer`).
    pub fn value_with<T: ?Sized>(mut self, value: &T, serializer: &dyn Serializer<T>) -> Self {
        match serializer.serialize(&self.topic, value) {
            Ok(b) => self.value = Some(Payload::Owned(b)),
            Err(e) => self.error = Some(e.context("serializing the value")),
        }
        self
    }

    /// Adds a header (headers may repeat keys; order is kept).
    pub fn header(mut self, key: impl Into<Cow<'a, str>>, value: impl IntoPayload<'a>) -> Self {
        self.headers.push((key.into(), Some(value.into_payload())));
        self
    }

    /// Adds a header with a null value.
    pub fn null_header(mut self, key: impl Into<Cow<'a, str>>) -> Self {
        self.headers.push((key.into(), None));
        self
    }

    /// The create timestamp in milliseconds since the Unix epoch (default:
    /// when `send` is called).
    pub fn timestamp(mut self, ms: i64) -> Self {
        if ms < 0 {
            // As the Java client: a timestamp is non-negative (or unset).
            self.error = Some(Error::invalid_argument(format!(
                "timestamp {ms} is negative: give milliseconds since the Unix epoch"
            )));
        }
        self.timestamp = Some(ms);
        self
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }
}

/// Turns values of type `T` into bytes (the Java client's `Serializer`,
/// kafka-python's `key_serializer`/`value_serializer`).
pub trait Serializer<T: ?Sized>: Send + Sync {
    /// Serializes `value` for `topic`.
    fn serialize(&self, topic: &str, value: &T) -> Result<Vec<u8>>;
}

impl<T: ?Sized, F> Serializer<T> for F
where
    F: Fn(&str, &T) -> Result<Vec<u8>> + Send + Sync,
{
    fn serialize(&self, topic: &str, value: &T) -> Result<Vec<u8>> {
        self(topic, value)
    }
}

/// Where and when a record was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    topic: Arc<str>,
    partition: i32,
    offset: i64,
    timestamp: i64,
    serialized_key_size: i32,
    serialized_value_size: i32,
}

impl RecordMetadata {
    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }
    /// The partition.
    pub fn partition(&self) -> i32 {
        self.partition
    }
    /// The offset, or -1 when unknown (acks=0).
    pub fn offset(&self) -> i64 {
        self.offset
    }
    /// The record's timestamp: its create time, or the broker's log-append
    /// time when the topic uses `LogAppendTime`.
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }
    /// Key size in bytes (-1 for no key).
    pub fn serialized_key_size(&self) -> i32 {
        self.serialized_key_size
    }
    /// Value size in bytes (-1 for no value).
    pub fn serialized_value_size(&self) -> i32 {
        self.serialized_value_size
    }
}

/// How a batch ended.
#[derive(Debug, Clone)]
pub(crate) struct BatchAck {
    pub(crate) base_offset: i64,
    pub(crate) log_append_time: Option<i64>,
    /// Set when the broker refused the batch as too large and it was sent
    /// in pieces: each piece's first record index and outcome, by index.
    pub(crate) pieces: Option<Arc<[Piece]>>,
}

impl BatchAck {
    /// A batch acknowledged in one piece.
    pub(crate) fn whole(base_offset: i64, log_append_time: Option<i64>) -> BatchAck {
        BatchAck {
            base_offset,
            log_append_time,
            pieces: None,
        }
    }
}

/// The outcome of one piece of a split batch.
#[derive(Debug, Clone)]
pub(crate) struct Piece {
    /// The index (in the original batch) of the piece's first record.
    pub(crate) first: u32,
    pub(crate) records: u32,
    pub(crate) result: Result<BatchAck>,
}

type Callback = Box<dyn FnOnce(Result<RecordMetadata>) + Send>;

/// The shared completion of one batch: every record's future points here
/// with its index, so a batch of 10,000 records completes with one store.
pub(crate) struct BatchCompletion {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    state: Mutex<Option<Result<BatchAck>>>,
    cond: Condvar,
    callbacks: Mutex<Vec<(RecordInfo, Callback)>>,
    /// The pieces of a split batch answered so far.
    pieces: Mutex<Vec<Piece>>,
}

/// The per-record facts a future keeps (no allocation per record).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordInfo {
    pub(crate) index: u32,
    pub(crate) timestamp: i64,
    pub(crate) key_size: i32,
    pub(crate) value_size: i32,
}

impl BatchCompletion {
    pub(crate) fn new(topic: Arc<str>, partition: i32) -> Arc<BatchCompletion> {
        Arc::new(BatchCompletion {
            topic,
            partition,
            state: Mutex::new(None),
            cond: Condvar::new(),
            callbacks: Mutex::new(Vec::new()),
            pieces: Mutex::new(Vec::new()),
        })
    }

    /// Registers a callback; runs it at once when the batch is already
    /// complete (checked under the callbacks lock, which `complete` takes
    /// after storing the outcome, so no callback is ever lost).
    pub(crate) fn add_callback(&self, info: RecordInfo, cb: Callback) {
        let mut callbacks = self.callbacks.lock();
        let done = self.state.lock().clone();
        match done {
            None => callbacks.push((info, cb)),
            Some(result) => {
                drop(callbacks);
                cb(self.metadata_for(&result, info));
            }
        }
    }

    /// Records the outcome, wakes every waiter and runs the callbacks.
    /// Only the first call has an effect; returns whether this one did.
    pub(crate) fn complete(&self, result: Result<BatchAck>) -> bool {
        {
            let mut st = self.state.lock();
            if st.is_some() {
                return false;
            }
            *st = Some(result.clone());
        }
        self.cond.notify_all();
        let callbacks = std::mem::take(&mut *self.callbacks.lock());
        for (info, cb) in callbacks {
            let md = self.metadata_for(&result, info);
            // A panicking callback must not take the sender thread down.
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb(md))).is_err() {
                log::error!(
                    "a delivery callback for {}-{} panicked",
                    self.topic,
                    self.partition
                );
            }
        }
        true
    }

    /// Completes the batch with `result` unless it has callbacks (they run
    /// on the sender thread only) or is complete already, without waking
    /// its waiters: call [`wake_waiters`](Self::wake_waiters) after (the
    /// reader first queues the answer for the sender's bookkeeping, so a
    /// waiter that sends again at once finds its partition free). Returns
    /// whether it completed it; then `before` ran just
    /// before the outcome became visible (so counters it moves are current
    /// for whoever sees the batch complete). The check and the store
    /// happen under the callbacks lock, which `add_callback` holds while
    /// it looks at the outcome, so a callback is never run here.
    pub(crate) fn complete_quietly(&self, result: Result<BatchAck>, before: impl FnOnce()) -> bool {
        let callbacks = self.callbacks.lock();
        if !callbacks.is_empty() {
            return false;
        }
        {
            let mut st = self.state.lock();
            if st.is_some() {
                return false;
            }
            before();
            *st = Some(result);
        }
        true
    }

    /// Wakes whoever waits for the batch (after `complete_quietly`).
    pub(crate) fn wake_waiters(&self) {
        self.cond.notify_all();
    }

    /// Records the outcome of one piece of a batch of `total` records that
    /// was split; completes the batch when every record has an outcome.
    /// Returns whether it did.
    pub(crate) fn complete_piece(
        &self,
        first: u32,
        records: u32,
        total: u32,
        result: Result<BatchAck>,
    ) -> bool {
        let done = {
            let mut pieces = self.pieces.lock();
            pieces.push(Piece {
                first,
                records,
                result,
            });
            let answered: u64 = pieces.iter().map(|p| u64::from(p.records)).sum();
            if answered < u64::from(total) {
                return false;
            }
            let mut all = std::mem::take(&mut *pieces);
            all.sort_by_key(|p| p.first);
            all
        };
        self.complete(Ok(BatchAck {
            base_offset: -1,
            log_append_time: None,
            pieces: Some(done.into()),
        }));
        true
    }

    pub(crate) fn is_done(&self) -> bool {
        self.state.lock().is_some()
    }

    fn metadata_for(&self, result: &Result<BatchAck>, info: RecordInfo) -> Result<RecordMetadata> {
        if let Ok(BatchAck {
            pieces: Some(pieces),
            ..
        }) = result
        {
            // The piece holding this record: offsets count from its start.
            let piece = pieces
                .iter()
                .rev()
                .find(|p| p.first <= info.index)
                .ok_or_else(|| Error::protocol("a split batch lost a record's piece"))?;
            let local = RecordInfo {
                index: info.index - piece.first,
                ..info
            };
            return self.metadata_for(&piece.result, local);
        }
        match result {
            Ok(ack) => Ok(RecordMetadata {
                topic: Arc::clone(&self.topic),
                partition: self.partition,
                offset: if ack.base_offset >= 0 {
                    ack.base_offset
                        .checked_add(i64::from(info.index))
                        .unwrap_or(-1)
                } else {
                    -1
                },
                timestamp: ack.log_append_time.unwrap_or(info.timestamp),
                serialized_key_size: info.key_size,
                serialized_value_size: info.value_size,
            }),
            Err(e) => Err(e.clone()),
        }
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Option<Result<BatchAck>> {
        let mut st = self.state.lock();
        loop {
            if let Some(r) = st.as_ref() {
                return Some(r.clone());
            }
            if on_callback_thread() {
                // Inside a delivery callback: this batch can only complete
                // on this very thread.
                return Some(Err(crate::Error::invalid_argument(
                    "waiting for a delivery inside a delivery callback would deadlock; use send_with_callback or wait outside the callback",
                )));
            }
            match deadline {
                None => self.cond.wait(&mut st),
                Some(d) => {
                    if self.cond.wait_until(&mut st, d).timed_out() {
                        return st.as_ref().cloned();
                    }
                }
            }
        }
    }
}

/// The pending result of one [`send`](super::Producer::send): resolves to
/// the record's [`RecordMetadata`] once its batch is acknowledged, or to the
/// error that ended its delivery.
///
/// Futures are cheap (no allocation per record); dropping one does not
/// cancel the send.
#[must_use = "a DeliveryFuture tells whether the record was delivered; call wait() or get(), or drop it explicitly"]
pub struct DeliveryFuture {
    pub(crate) batch: Arc<BatchCompletion>,
    pub(crate) info: RecordInfo,
}

impl DeliveryFuture {
    /// Blocks until the record is acknowledged or has failed.
    pub fn wait(&self) -> Result<RecordMetadata> {
        let r = self
            .batch
            .wait_until(None)
            .unwrap_or_else(|| Err(Error::closed("the producer was dropped")));
        self.batch.metadata_for(&r, self.info)
    }

    /// Like [`wait`](DeliveryFuture::wait), but gives up after `timeout`
    /// with an error of kind [`Timeout`](crate::ErrorKind::Timeout); the
    /// send itself goes on.
    pub fn get(&self, timeout: Duration) -> Result<RecordMetadata> {
        match self.batch.wait_until(Instant::now().checked_add(timeout)) {
            Some(r) => self.batch.metadata_for(&r, self.info),
            None => Err(Error::timeout(format!(
                "the record was not acknowledged within {} ms (it is still being delivered)",
                timeout.as_millis()
            ))
            .with_partition(&*self.batch.topic, self.batch.partition)),
        }
    }

    /// The result, if the record has been acknowledged or failed.
    pub fn try_get(&self) -> Option<Result<RecordMetadata>> {
        let r = self.batch.state.lock().clone()?;
        Some(self.batch.metadata_for(&r, self.info))
    }

    /// Whether the outcome is known.
    pub fn is_done(&self) -> bool {
        self.batch.is_done()
    }

    /// The partition the record was assigned to.
    pub fn partition(&self) -> i32 {
        self.batch.partition
    }
}

impl fmt::Debug for DeliveryFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeliveryFuture")
            .field("topic", &self.batch.topic)
            .field("partition", &self.batch.partition)
            .field("index", &self.info.index)
            .field("done", &self.is_done())
            .finish()
    }
}

thread_local! {
    static ON_CALLBACK_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks the calling thread as the one that completes batches and runs
/// delivery callbacks (the producer's sender thread).
pub(crate) fn mark_callback_thread() {
    ON_CALLBACK_THREAD.with(|f| f.set(true));
}

/// Runs `f` marked as a callback thread (and restores the mark after):
/// for work of the sender's done on a `send()` caller's thread.
pub(crate) fn as_callback_thread<R>(f: impl FnOnce() -> R) -> R {
    let was = ON_CALLBACK_THREAD.with(|c| c.replace(true));
    let r = f();
    ON_CALLBACK_THREAD.with(|c| c.set(was));
    r
}

/// Whether the calling thread is a producer's sender thread (delivery
/// callbacks run there; waiting for a delivery from one would deadlock).
pub(crate) fn on_callback_thread() -> bool {
    ON_CALLBACK_THREAD.with(std::cell::Cell::get)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ErrorCode;

    fn info(index: u32) -> RecordInfo {
        RecordInfo {
            index,
            timestamp: 1_000,
            key_size: -1,
            value_size: 1,
        }
    }

    #[test]
    fn a_quiet_completion_never_runs_a_callback_and_completes_once() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        let ran = Arc::new(AtomicUsize::new(0));
        let before = Arc::new(AtomicUsize::new(0));
        let count = || {
            before.fetch_add(1, SeqCst);
        };
        // A batch with a callback is left to the sender thread.
        let with_cb = BatchCompletion::new("t".into(), 0);
        let r = Arc::clone(&ran);
        with_cb.add_callback(
            info(0),
            Box::new(move |_| {
                r.fetch_add(1, SeqCst);
            }),
        );
        assert!(!with_cb.complete_quietly(Ok(BatchAck::whole(5, None)), count));
        assert!(!with_cb.is_done());
        assert_eq!((ran.load(SeqCst), before.load(SeqCst)), (0, 0));
        assert!(with_cb.complete(Ok(BatchAck::whole(5, None))));
        assert_eq!(ran.load(SeqCst), 1);
        // Without one it completes, once; a later complete has no effect.
        let plain = BatchCompletion::new("t".into(), 0);
        assert!(plain.complete_quietly(Ok(BatchAck::whole(7, None)), count));
        assert_eq!(before.load(SeqCst), 1);
        assert!(!plain.complete(Err(Error::protocol("late"))));
        assert!(!plain.complete_quietly(Ok(BatchAck::whole(8, None)), count));
        assert_eq!(before.load(SeqCst), 1);
        let result = plain.state.lock().clone().expect("complete");
        assert_eq!(
            plain.metadata_for(&result, info(1)).map(|m| m.offset).ok(),
            Some(8)
        );
        // A callback added after runs at once on the adding thread.
        let r = Arc::clone(&ran);
        plain.add_callback(
            info(0),
            Box::new(move |_| {
                r.fetch_add(1, SeqCst);
            }),
        );
        assert_eq!(ran.load(SeqCst), 2);
    }

    #[test]
    fn a_split_batch_completes_when_every_piece_answered() {
        let c = BatchCompletion::new("t".into(), 2);
        // Records 0..10 went out as 0..3, 3..5 (failed) and 5..10, answered
        // out of order.
        assert!(!c.complete_piece(5, 5, 10, Ok(BatchAck::whole(100, None))));
        assert!(!c.complete_piece(0, 3, 10, Ok(BatchAck::whole(40, Some(7)))));
        assert!(!c.is_done());
        let refused = Error::broker(ErrorCode::MESSAGE_TOO_LARGE, "too large");
        assert!(c.complete_piece(3, 2, 10, Err(refused)));
        assert!(c.is_done());
        let result = c.state.lock().clone().expect("complete");
        let offset = |i| c.metadata_for(&result, info(i)).map(|m| m.offset);
        assert_eq!(offset(0).ok(), Some(40));
        assert_eq!(offset(2).ok(), Some(42));
        assert!(offset(3).is_err() && offset(4).is_err());
        assert_eq!(offset(5).ok(), Some(100));
        assert_eq!(offset(9).ok(), Some(104));
        let md = c.metadata_for(&result, info(1)).expect("ok");
        assert_eq!(
            (md.partition, md.timestamp),
            (2, 7),
            "log append time of its piece"
        );
    }
}
