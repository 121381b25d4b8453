//! The record accumulator: one queue of batches per partition, filled by
//! `send` in the caller's thread and drained by the sender thread.
//!
//! It does no I/O and takes `now` from its callers, so its decisions (is a
//! batch full, has it lingered long enough, is memory exhausted) are unit
//! tested without sleeping.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use parking_lot::{Condvar, Mutex, RwLock};

use super::record::{BatchCompletion, Payload, RecordInfo};
use crate::error::{Error, ErrorKind, Result};
use crate::hash::FxHashMap;
use crate::records::RecordBatchBuilder;

/// The accumulator's fixed settings.
#[derive(Debug, Clone)]
pub(crate) struct AccumulatorConfig {
    pub(crate) batch_size: usize,
    pub(crate) linger: Duration,
    pub(crate) buffer_memory: usize,
}

/// A batch still taking records, or closed and waiting for the sender.
pub(crate) struct OpenBatch {
    pub(crate) id: u64,
    pub(crate) builder: RecordBatchBuilder,
    pub(crate) created: Instant,
    pub(crate) completion: Arc<BatchCompletion>,
    /// Bytes of `buffer_memory` this batch holds until it completes.
    pub(crate) reserved: usize,
}

/// One partition's queue.
#[derive(Default)]
pub(crate) struct PartitionQueue {
    open: Option<OpenBatch>,
    full: VecDeque<OpenBatch>,
}

/// The queues of one topic. Immutable: when the partition count grows, a
/// new `TopicQueues` sharing the existing partitions' queues replaces it.
pub(crate) struct TopicQueues {
    pub(crate) name: Arc<str>,
    pub(crate) partitions: Vec<Arc<Mutex<PartitionQueue>>>,
    sticky: AtomicI32,
}

impl TopicQueues {
    pub(crate) fn partition_count(&self) -> i32 {
        self.partitions.len() as i32
    }

    /// The current sticky partition for unkeyed records.
    pub(crate) fn sticky(&self) -> i32 {
        let p = self.sticky.load(Ordering::Relaxed);
        if p >= 0 && p < self.partition_count() {
            return p;
        }
        let n = self.partition_count().max(1);
        let fresh = (super::partitioner::random_u32() % n as u32) as i32;
        let _ = self
            .sticky
            .compare_exchange(p, fresh, Ordering::Relaxed, Ordering::Relaxed);
        self.sticky.load(Ordering::Relaxed).clamp(0, n - 1)
    }

    /// Moves the sticky partition away from `from` (KIP-480: when its
    /// batch is done). Returns the partition to use now.
    pub(crate) fn next_sticky(&self, from: i32) -> i32 {
        let n = self.partition_count();
        if n <= 1 {
            return 0;
        }
        let mut fresh = (super::partitioner::random_u32() % (n as u32 - 1)) as i32;
        if fresh >= from {
            fresh += 1;
        }
        match self
            .sticky
            .compare_exchange(from, fresh, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => fresh,
            Err(current) => current.clamp(0, n - 1),
        }
    }
}

/// What `append` needs to know about the record.
pub(crate) struct AppendRecord<'r> {
    pub(crate) timestamp: i64,
    pub(crate) key: Option<&'r [u8]>,
    pub(crate) value: Option<&'r [u8]>,
    /// The record's own headers, read in place: no copy per record.
    pub(crate) headers: &'r [(Cow<'r, str>, Option<Payload<'r>>)],
}

impl AppendRecord<'_> {
    /// The headers as the batch builder takes them.
    pub(crate) fn headers(&self) -> impl Iterator<Item = (&str, Option<&[u8]>)> + Clone {
        self.headers
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_ref().map(Payload::as_bytes)))
    }
}

/// `buffer_memory` accounting, per batch (as the Java client's BufferPool).
struct Memory {
    used: Mutex<usize>,
    freed: Condvar,
    limit: usize,
    waiters: AtomicUsize,
    peak: AtomicUsize,
}

/// The accumulator shared by `send` callers and the sender thread.
pub(crate) struct Accumulator {
    cfg: AccumulatorConfig,
    topics: RwLock<FxHashMap<Arc<str>, Arc<TopicQueues>>>,
    memory: Memory,
    incomplete: Mutex<HashMap<u64, Arc<BatchCompletion>>>,
    next_id: AtomicU64,
    flushing: AtomicUsize,
    closed: AtomicBool,
    wake: Sender<()>,
    /// Buffers of completed batches, reused for new ones.
    spare: Mutex<Vec<Vec<u8>>>,
}

/// Outcome of trying to append without opening a batch.
enum TryAppend {
    Done(Appended),
    NeedBatch,
}

/// A record appended to its partition's batch.
pub(crate) struct Appended {
    pub(crate) info: RecordInfo,
    pub(crate) completion: Arc<BatchCompletion>,
    /// The append opened a batch or filled one: the sender has something
    /// new to look at. The caller wakes it ([`Accumulator::wake`]) or takes
    /// its turn, once it holds no queue lock.
    pub(crate) kick: bool,
}

impl Accumulator {
    pub(crate) fn new(cfg: AccumulatorConfig, wake: Sender<()>) -> Accumulator {
        Accumulator {
            memory: Memory {
                used: Mutex::new(0),
                freed: Condvar::new(),
                limit: cfg.buffer_memory,
                waiters: AtomicUsize::new(0),
                peak: AtomicUsize::new(0),
            },
            cfg,
            topics: RwLock::new(FxHashMap::default()),
            incomplete: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            flushing: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            wake,
            spare: Mutex::new(Vec::new()),
        }
    }

    /// The queues of `topic`, if it has been set up.
    #[inline]
    pub(crate) fn topic(&self, topic: &str) -> Option<Arc<TopicQueues>> {
        self.topics.read().get(topic).cloned()
    }

    /// Sets up (or grows) the queues of `topic` for `partitions` partitions.
    pub(crate) fn ensure_topic(&self, topic: &str, partitions: i32) -> Arc<TopicQueues> {
        let partitions = partitions.max(1) as usize;
        let mut map = self.topics.write();
        if let Some(t) = map.get(topic) {
            if t.partitions.len() >= partitions {
                return Arc::clone(t);
            }
        }
        let old = map.get(topic).cloned();
        let mut queues: Vec<Arc<Mutex<PartitionQueue>>> = old
            .as_ref()
            .map(|t| t.partitions.clone())
            .unwrap_or_default();
        while queues.len() < partitions {
            queues.push(Arc::default());
        }
        let name: Arc<str> = old
            .as_ref()
            .map(|t| Arc::clone(&t.name))
            .unwrap_or_else(|| Arc::from(topic));
        let t = Arc::new(TopicQueues {
            name: Arc::clone(&name),
            partitions: queues,
            sticky: AtomicI32::new(old.map_or(-1, |o| o.sticky.load(Ordering::Relaxed))),
        });
        map.insert(name, Arc::clone(&t));
        t
    }

    /// Every topic's queues.
    pub(crate) fn topics(&self) -> Vec<Arc<TopicQueues>> {
        self.topics.read().values().cloned().collect()
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        // Taking the lock orders this with a waiter's check of `closed`.
        drop(self.memory.used.lock());
        self.memory.freed.notify_all();
        let _ = self.wake.try_send(());
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Appends to the partition's open batch. With `may_open` false it
    /// refuses to start a new batch (used by the sticky partitioner to move
    /// on instead).
    pub(crate) fn append(
        &self,
        topic: &TopicQueues,
        partition: i32,
        rec: &AppendRecord<'_>,
        may_open: bool,
        max_block: Duration,
        now: impl FnOnce() -> Instant,
    ) -> Result<Option<Appended>> {
        let Some(queue) = topic.partitions.get(partition as usize) else {
            return Err(Error::invalid_argument(format!(
                "partition {partition} does not exist (the topic has {})",
                topic.partitions.len()
            ))
            .with_partition(&*topic.name, partition));
        };
        {
            let mut q = queue.lock();
            // Checked under the queue lock: the sender's last look at the
            // queues (after close) takes the same locks, so a record can
            // never slip in after it and wait forever.
            if self.is_closed() {
                return Err(Error::closed("send() on a closed producer"));
            }
            if let TryAppend::Done(done) = self.try_append(&mut q, rec)? {
                return Ok(Some(done));
            }
        }
        if !may_open {
            return Ok(None);
        }
        // A new batch: reserve its memory without holding the queue lock.
        let headers = rec.headers();
        let record_size = RecordBatchBuilder::new().record_size(
            rec.timestamp,
            rec.key.map(<[u8]>::len),
            rec.value.map(<[u8]>::len),
            headers,
        ) + crate::records::RECORD_BATCH_OVERHEAD;
        let reserve = self.cfg.batch_size.max(record_size);
        // The clock is read only here, when a batch opens: appending to an
        // open batch (the common case) needs no time at all.
        let now = now();
        self.reserve(reserve, now + max_block)?;
        let mut q = queue.lock();
        if self.is_closed() {
            drop(q);
            self.release(reserve);
            return Err(Error::closed("send() on a closed producer"));
        }
        match self.try_append(&mut q, rec) {
            Ok(TryAppend::Done(done)) => {
                drop(q);
                self.release(reserve);
                return Ok(Some(done));
            }
            Ok(TryAppend::NeedBatch) => {}
            Err(e) => {
                drop(q);
                self.release(reserve);
                return Err(e);
            }
        }
        if let Some(full) = q.open.take() {
            q.full.push_back(full);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let completion = BatchCompletion::new(Arc::clone(&topic.name), partition);
        let mut batch = OpenBatch {
            id,
            builder: match self.spare.lock().pop() {
                Some(buf) => RecordBatchBuilder::with_buffer(buf),
                None => {
                    RecordBatchBuilder::with_capacity(reserve.min(self.cfg.batch_size.max(1024)))
                }
            },
            created: now,
            completion: Arc::clone(&completion),
            reserved: reserve,
        };
        // The first record of a batch always fits.
        let info = match Self::append_to(&mut batch, rec, usize::MAX) {
            Ok(Some(info)) => info,
            Ok(None) => {
                drop(q);
                self.release(reserve);
                return Err(Error::protocol("a new batch refused its first record"));
            }
            Err(e) => {
                drop(q);
                self.release(reserve);
                return Err(e);
            }
        };
        // Registered before the batch is visible to the sender, so its
        // completion always finds (and removes) the entry.
        self.incomplete.lock().insert(id, Arc::clone(&completion));
        q.open = Some(batch);
        drop(q);
        // The sender must look: a new batch has a linger deadline, and a
        // closed one may be ready to go.
        Ok(Some(Appended {
            info,
            completion,
            kick: true,
        }))
    }

    /// Wakes the sender thread (a no-op when a wake-up is pending).
    pub(crate) fn wake(&self) {
        let _ = self.wake.try_send(());
    }

    #[inline]
    fn try_append(&self, q: &mut PartitionQueue, rec: &AppendRecord<'_>) -> Result<TryAppend> {
        let Some(batch) = q.open.as_mut() else {
            return Ok(TryAppend::NeedBatch);
        };
        let Some(info) = Self::append_to(batch, rec, self.cfg.batch_size)? else {
            return Ok(TryAppend::NeedBatch);
        };
        let completion = Arc::clone(&batch.completion);
        // Full: hand it to the sender now rather than at linger.
        let kick = batch.builder.size_estimate() >= self.cfg.batch_size;
        if kick {
            if let Some(b) = q.open.take() {
                q.full.push_back(b);
            }
        }
        Ok(TryAppend::Done(Appended {
            info,
            completion,
            kick,
        }))
    }

    /// Appends within `limit` bytes; `None` when the record does not fit.
    #[inline]
    fn append_to(
        batch: &mut OpenBatch,
        rec: &AppendRecord<'_>,
        limit: usize,
    ) -> Result<Option<RecordInfo>> {
        let Some(index) =
            batch
                .builder
                .append_within(limit, rec.timestamp, rec.key, rec.value, rec.headers())?
        else {
            return Ok(None);
        };
        Ok(Some(RecordInfo {
            index: index as u32,
            timestamp: rec.timestamp,
            key_size: rec.key.map_or(-1, |k| k.len() as i32),
            value_size: rec.value.map_or(-1, |v| v.len() as i32),
        }))
    }

    fn reserve(&self, n: usize, deadline: Instant) -> Result<()> {
        let mut used = self.memory.used.lock();
        // A batch larger than the whole buffer still goes through when the
        // buffer is empty, so one big record cannot wedge the producer.
        while *used > 0 && *used + n > self.memory.limit {
            if self.is_closed() {
                return Err(Error::closed("the producer is closed"));
            }
            self.memory.waiters.fetch_add(1, Ordering::Relaxed);
            let _ = self.wake.try_send(());
            let timed_out = self
                .memory
                .freed
                .wait_until(&mut used, deadline)
                .timed_out();
            self.memory.waiters.fetch_sub(1, Ordering::Relaxed);
            if timed_out && *used > 0 && *used + n > self.memory.limit {
                return Err(Error::new(
                    ErrorKind::BufferExhausted,
                    format!(
                        "the producer's buffer ({} bytes, buffer_memory) stayed full for max_block_ms; the broker is slower than the send rate or unreachable",
                        self.memory.limit
                    ),
                ));
            }
        }
        *used += n;
        self.memory.peak.fetch_max(*used, Ordering::Relaxed);
        Ok(())
    }

    /// Returns `n` bytes of `buffer_memory`.
    pub(crate) fn release(&self, n: usize) {
        let mut used = self.memory.used.lock();
        *used = used.saturating_sub(n);
        drop(used);
        self.memory.freed.notify_all();
    }

    /// The most bytes of `buffer_memory` ever in use.
    pub(crate) fn memory_peak(&self) -> usize {
        self.memory.peak.load(Ordering::Relaxed)
    }

    /// Keeps a completed batch's buffer for reuse (up to what
    /// `buffer_memory` could hold at once), when nothing else holds it.
    pub(crate) fn recycle(&self, data: crate::bytes::Bytes) {
        let Ok(buf) = data.try_into_vec() else {
            return;
        };
        let want = self.cfg.batch_size.max(1024);
        if buf.capacity() < want || buf.capacity() > want * 2 {
            return;
        }
        let mut spare = self.spare.lock();
        if spare.len() < self.cfg.buffer_memory / want {
            spare.push(buf);
        }
    }

    /// Bytes of `buffer_memory` in use.
    pub(crate) fn memory_used(&self) -> usize {
        *self.memory.used.lock()
    }

    /// Forgets a completed batch (for flush) and frees its memory.
    pub(crate) fn finished(&self, id: u64, reserved: usize) {
        self.incomplete.lock().remove(&id);
        self.release(reserved);
    }

    /// Asks the sender to send every open batch now.
    pub(crate) fn begin_flush(&self) -> Vec<Arc<BatchCompletion>> {
        self.flushing.fetch_add(1, Ordering::AcqRel);
        let _ = self.wake.try_send(());
        self.incomplete.lock().values().cloned().collect()
    }

    pub(crate) fn end_flush(&self) {
        self.flushing.fetch_sub(1, Ordering::AcqRel);
    }

    /// Takes the batches that are ready to send: full ones, and open ones
    /// that have lingered `linger_ms` (or all, when flushing, closing, or
    /// when `send` is blocked on memory). `accept(topic, partition, size)`
    /// decides, in order, whether the sender can take one more batch for
    /// that partition now. Returns the batches and the next time an open
    /// batch becomes ready.
    pub(crate) fn drain(
        &self,
        now: Instant,
        mut accept: impl FnMut(&Arc<str>, i32, usize) -> bool,
    ) -> (Vec<OpenBatch>, Option<Instant>) {
        let hurry = self.flushing.load(Ordering::Acquire) > 0
            || self.is_closed()
            || self.memory.waiters.load(Ordering::Relaxed) > 0;
        let mut out = Vec::new();
        let mut next: Option<Instant> = None;
        for topic in self.topics() {
            for (p, queue) in topic.partitions.iter().enumerate() {
                let p = p as i32;
                let mut q = queue.lock();
                loop {
                    let candidate_size = match (q.full.front(), q.open.as_ref()) {
                        (Some(b), _) => Some(b.builder.size_estimate()),
                        (None, Some(open)) => {
                            let due = open.created + self.cfg.linger;
                            if hurry || due <= now {
                                Some(open.builder.size_estimate())
                            } else {
                                next = Some(next.map_or(due, |n| n.min(due)));
                                None
                            }
                        }
                        (None, None) => None,
                    };
                    let Some(size) = candidate_size else { break };
                    if !accept(&topic.name, p, size) {
                        break;
                    }
                    let b = match q.full.pop_front() {
                        Some(b) => b,
                        None => match q.open.take() {
                            Some(b) => b,
                            None => break,
                        },
                    };
                    out.push(b);
                }
            }
        }
        (out, next)
    }

    /// Whether any batch (open or full) is waiting in the queues.
    pub(crate) fn has_queued(&self) -> bool {
        self.topics().iter().any(|t| {
            t.partitions.iter().any(|q| {
                let q = q.lock();
                q.open.is_some() || !q.full.is_empty()
            })
        })
    }

    /// The partitions with a batch (open or full) waiting.
    pub(crate) fn queued_partitions(&self) -> Vec<(Arc<str>, i32)> {
        let mut out = Vec::new();
        for t in self.topics() {
            for (p, q) in t.partitions.iter().enumerate() {
                let q = q.lock();
                if q.open.is_some() || !q.full.is_empty() {
                    out.push((Arc::clone(&t.name), p as i32));
                }
            }
        }
        out
    }

    /// Removes queued batches created more than `timeout` before `now`.
    pub(crate) fn take_expired(&self, now: Instant, timeout: Duration) -> Vec<OpenBatch> {
        let expired = |b: &OpenBatch| now.saturating_duration_since(b.created) >= timeout;
        let mut out = Vec::new();
        for t in self.topics() {
            for q in &t.partitions {
                let mut q = q.lock();
                while q.full.front().is_some_and(expired) {
                    out.extend(q.full.pop_front());
                }
                if q.open.as_ref().is_some_and(expired) {
                    out.extend(q.open.take());
                }
            }
        }
        out
    }

    /// Removes every queued batch (at close, when the sender gives up).
    pub(crate) fn take_all(&self) -> Vec<OpenBatch> {
        let mut out = Vec::new();
        for t in self.topics() {
            for q in &t.partitions {
                let mut q = q.lock();
                out.extend(q.full.drain(..));
                out.extend(q.open.take());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(
        batch_size: usize,
        linger_ms: u64,
        memory: usize,
    ) -> (Accumulator, crossbeam_channel::Receiver<()>) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        (
            Accumulator::new(
                AccumulatorConfig {
                    batch_size,
                    linger: Duration::from_millis(linger_ms),
                    buffer_memory: memory,
                },
                tx,
            ),
            rx,
        )
    }

    fn rec(value: &[u8]) -> AppendRecord<'_> {
        AppendRecord {
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(value),
            headers: &[],
        }
    }

    #[test]
    fn batches_fill_then_close() {
        let (a, _rx) = acc(1024, 1000, 1 << 20);
        let t = a.ensure_topic("t", 2);
        let now = Instant::now();
        let v = [7u8; 100];
        let mut batches = std::collections::BTreeSet::new();
        for _ in 0..30 {
            let done = a
                .append(&t, 1, &rec(&v), true, Duration::ZERO, || now)
                .unwrap()
                .unwrap();
            // A new batch is news for the sender (so is a full one).
            if batches.insert(Arc::as_ptr(&done.completion) as usize) {
                assert!(done.kick, "a new batch must kick the sender");
            }
            assert!(done.info.index < 10);
        }
        assert!(
            batches.len() >= 3,
            "30 x 100 B must span several 1 KiB batches"
        );
        // Full batches are ready at once; the open one waits for linger.
        let (ready, next) = a.drain(now, |_, _, _| true);
        assert_eq!(ready.len(), batches.len() - 1);
        assert!(ready.iter().all(|b| b.builder.size_estimate() <= 1024));
        assert_eq!(next, Some(now + Duration::from_millis(1000)));
        let (ready, next) = a.drain(now + Duration::from_millis(1000), |_, _, _| true);
        assert_eq!(ready.len(), 1);
        assert_eq!(next, None);
        assert!(!a.has_queued());
    }

    #[test]
    fn drain_respects_the_senders_limits() {
        let (a, _rx) = acc(200, 0, 1 << 20);
        let t = a.ensure_topic("t", 1);
        let now = Instant::now();
        for _ in 0..10 {
            a.append(&t, 0, &rec(&[1u8; 100]), true, Duration::ZERO, || now)
                .unwrap();
        }
        let mut taken = 0;
        let (ready, _) = a.drain(now, |_, _, _| {
            taken += 1;
            taken <= 2
        });
        assert_eq!(ready.len(), 2);
        let (rest, _) = a.drain(now, |_, _, _| true);
        assert!(!rest.is_empty());
    }

    #[test]
    fn full_buffer_blocks_then_fails_after_max_block() {
        let (a, _rx) = acc(1000, 1000, 2000);
        let t = a.ensure_topic("t", 3);
        let now = Instant::now();
        a.append(&t, 0, &rec(b"x"), true, Duration::ZERO, || now)
            .unwrap();
        a.append(&t, 1, &rec(b"x"), true, Duration::ZERO, || now)
            .unwrap();
        // A third batch does not fit in 2000 bytes of buffer_memory.
        let t0 = Instant::now();
        let e = match a.append(
            &t,
            2,
            &rec(b"x"),
            true,
            Duration::from_millis(50),
            Instant::now,
        ) {
            Err(e) => e,
            Ok(_) => panic!("a full buffer must refuse a new batch"),
        };
        assert_eq!(e.kind(), ErrorKind::BufferExhausted);
        assert!(t0.elapsed() >= Duration::from_millis(50));
        // Completing a batch frees room.
        let (ready, _) = a.drain(now + Duration::from_secs(2), |_, _, _| true);
        for b in ready {
            a.finished(b.id, b.reserved);
        }
        assert_eq!(a.memory_used(), 0);
        a.append(&t, 2, &rec(b"x"), true, Duration::ZERO, Instant::now)
            .unwrap();
    }

    #[test]
    fn sticky_partition_moves_on() {
        let (a, _rx) = acc(1000, 1000, 1 << 20);
        let t = a.ensure_topic("t", 4);
        let p = t.sticky();
        let q = t.next_sticky(p);
        assert_ne!(p, q);
        assert_eq!(t.sticky(), q);
        // Growing the topic keeps the queues.
        a.append(&t, 3, &rec(b"x"), true, Duration::ZERO, Instant::now)
            .unwrap();
        let t2 = a.ensure_topic("t", 6);
        assert_eq!(t2.partition_count(), 6);
        assert!(Arc::ptr_eq(&t.partitions[3], &t2.partitions[3]));
    }

    #[test]
    fn appends_after_close_fail() {
        let (a, _rx) = acc(1000, 1000, 1 << 20);
        let t = a.ensure_topic("t", 1);
        a.append(&t, 0, &rec(b"x"), true, Duration::ZERO, Instant::now)
            .unwrap();
        a.close();
        for may_open in [false, true] {
            match a.append(&t, 0, &rec(b"x"), may_open, Duration::ZERO, Instant::now) {
                Err(e) => assert_eq!(e.kind(), ErrorKind::Closed),
                Ok(_) => panic!("appended after close"),
            }
        }
    }

    #[test]
    fn a_refused_open_leaves_the_record_unsent() {
        let (a, _rx) = acc(1000, 1000, 1 << 20);
        let t = a.ensure_topic("t", 2);
        assert!(a
            .append(&t, 0, &rec(b"x"), false, Duration::ZERO, Instant::now)
            .unwrap()
            .is_none());
        assert!(!a.has_queued());
        assert!(a
            .append(&t, 9, &rec(b"x"), true, Duration::ZERO, Instant::now)
            .is_err());
    }
}
