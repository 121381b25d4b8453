//! The sender thread: drains ready batches from the accumulator, groups
//! them per partition leader into produce requests, sends them through the
//! broker connections, and completes, retries or fails each batch when the
//! answer comes back.
//!
//! Ordering: batches of one partition are sent in order; a partition with a
//! batch waiting for a retry sends nothing newer until that retry is out.
//! With idempotence the broker rejects anything out of sequence, so up to
//! `max_in_flight_requests_per_connection` (≤ 5) batches per partition may
//! be in flight; without it only one is, so a retry can never overtake a
//! later batch.

mod answer;
mod drain;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, Sender};
use parking_lot::Mutex;

use super::accumulator::Accumulator;
use super::config::ProducerConfig;
use super::metrics::Metrics;
use super::record::{as_callback_thread, mark_callback_thread};
use super::transaction::{ProducerId, Transactions};
use crate::bytes::Bytes;
use crate::cluster::{Cluster, Purpose};
use crate::error::{Error, ErrorKind, Result};
use crate::net::Completion;
use crate::protocol::messages::InitProducerIdRequest;
use crate::protocol::{ApiKey, ErrorCode};
use crate::records::set_producer_state;
use answer::{seq_add, Answer};

/// Sender run state, set by the producer handle.
pub(crate) const RUNNING: u8 = 0;
/// Finish what is queued and in flight, then stop.
pub(crate) const CLOSING: u8 = 1;
/// Fail everything left and stop now.
pub(crate) const ABORT: u8 = 2;

/// A built batch on its way to the broker.
struct ProducerBatch {
    id: u64,
    topic: Arc<str>,
    partition: i32,
    data: Bytes,
    records: i32,
    uncompressed: usize,
    created: Instant,
    attempts: u32,
    retry_at: Option<Instant>,
    base_sequence: i32,
    completion: Arc<super::record::BatchCompletion>,
    reserved: usize,
    /// A piece of a batch the broker refused as too large: the index of
    /// its first record in the original batch, and that batch's size.
    split: Option<(u32, u32)>,
}

impl ProducerBatch {
    /// Where the batch goes among a partition's retries: batch ids grow in
    /// creation order, and the pieces of a split batch share its id.
    fn send_order(&self) -> (u64, u32) {
        (self.id, self.split.map_or(0, |(first, _)| first))
    }
}

struct PartitionState {
    next_sequence: i32,
    last_acked_sequence: i32,
    in_flight: usize,
    retries: VecDeque<ProducerBatch>,
}

impl Default for PartitionState {
    /// Nothing sent yet: the first sequence is 0, none acknowledged.
    fn default() -> PartitionState {
        PartitionState {
            next_sequence: 0,
            last_acked_sequence: -1,
            in_flight: 0,
            retries: VecDeque::new(),
        }
    }
}

struct InFlight {
    broker: i32,
    version: i16,
    sent_at: Instant,
    batches: Vec<ProducerBatch>,
}

pub(crate) struct SenderThread {
    cfg: Arc<ProducerConfig>,
    cluster: Arc<Cluster>,
    acc: Arc<Accumulator>,
    metrics: Arc<Metrics>,
    state: Arc<AtomicU8>,
    wake_rx: Receiver<()>,
    done_tx: Sender<Completion>,
    done_rx: Receiver<Completion>,
    /// Produce answers, in the order each connection got them. Pushed by
    /// the connection's reader (see `quiet_reply`); the sender does not
    /// wait on this channel, the reader wakes it when it must look.
    answers_tx: Sender<Answer>,
    answers_rx: Receiver<Answer>,
    /// Answers a `send()` caller took off `answers_rx` but left to the
    /// sender thread (`drive`); taken before the channel's.
    deferred: VecDeque<Answer>,
    /// Set while the sender has work that waits on an answer (retries, an
    /// epoch bump, closing): every answer then wakes it.
    eager: Arc<AtomicBool>,
    in_flight: HashMap<u64, InFlight>,
    broker_in_flight: HashMap<i32, usize>,
    partitions: HashMap<(Arc<str>, i32), PartitionState>,
    next_token: u64,
    pid: Option<ProducerId>,
    need_bump: bool,
    pid_retry_at: Option<Instant>,
    seen_refresh: Option<Instant>,
    connecting: std::collections::HashSet<i32>,
    /// Set for a transactional producer: it owns the producer id.
    txn: Option<Arc<Transactions>>,
    /// A `send()` caller is taking this turn ([`SenderThread::drive`]):
    /// what must be handled on the sender thread goes through `done_tx`.
    driving: bool,
    /// This state, as the thread and `send()` callers share it: a reader
    /// settling an answer takes the next turn through it (`quiet_reply`).
    me: Weak<Mutex<SenderThread>>,
}

/// Completion tokens with this bit set answer a background connect to the
/// broker in the low 32 bits.
const CONNECT_TOKEN: u64 = 1 << 63;

impl SenderThread {
    pub(crate) fn new(
        cfg: Arc<ProducerConfig>,
        cluster: Arc<Cluster>,
        acc: Arc<Accumulator>,
        metrics: Arc<Metrics>,
        state: Arc<AtomicU8>,
        wake_rx: Receiver<()>,
        txn: Option<Arc<Transactions>>,
    ) -> Arc<Mutex<SenderThread>> {
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        let (answers_tx, answers_rx) = crossbeam_channel::unbounded();
        Arc::new_cyclic(|me| {
            Mutex::new(SenderThread {
                cfg,
                cluster,
                acc,
                metrics,
                state,
                wake_rx,
                done_tx,
                done_rx,
                answers_tx,
                answers_rx,
                deferred: VecDeque::new(),
                eager: Arc::new(AtomicBool::new(true)),
                in_flight: HashMap::new(),
                broker_in_flight: HashMap::new(),
                partitions: HashMap::new(),
                next_token: 1,
                pid: None,
                need_bump: false,
                pid_retry_at: None,
                seen_refresh: None,
                connecting: std::collections::HashSet::new(),
                txn,
                driving: false,
                me: me.clone(),
            })
        })
    }

    /// The thread's body: turns until the producer closes. Callers of
    /// `send()` may take a turn's work themselves ([`SenderThread::drive`])
    /// while this thread waits, so the state lives behind `core`'s lock,
    /// which is never held while waiting.
    pub(crate) fn run(core: Arc<Mutex<SenderThread>>) {
        mark_callback_thread();
        let (wake_rx, done_rx, metrics) = {
            let s = core.lock();
            (s.wake_rx.clone(), s.done_rx.clone(), Arc::clone(&s.metrics))
        };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Self::run_loop(&core, &wake_rx, &done_rx, &metrics)
        }));
        if outcome.is_err() {
            log::error!("the producer's sender thread panicked; failing every pending record");
        }
        // Whatever is left (an abort, a panic, a send that raced close())
        // fails now: no future may wait for a thread that is gone.
        let mut s = core.lock();
        s.acc.close();
        s.eager.store(true, Ordering::SeqCst);
        s.take_answers();
        s.abort_all();
    }

    fn run_loop(
        core: &Mutex<SenderThread>,
        wake_rx: &Receiver<()>,
        done_rx: &Receiver<Completion>,
        metrics: &Metrics,
    ) {
        loop {
            let Some(wait) = core.lock().turn() else {
                return;
            };
            select! {
                recv(wake_rx) -> _ => {}
                recv(done_rx) -> c => {
                    if let Ok(c) = c {
                        core.lock().handle_completion(c);
                    }
                }
                default(wait) => {}
            }
            metrics.sender_woke();
        }
    }

    /// One turn of the loop: answers, metadata, expiry, sending; returns
    /// how long to wait for the next, or `None` when the thread must stop.
    fn turn(&mut self) -> Option<Duration> {
        let state = self.state.load(Ordering::Acquire);
        if state == ABORT {
            return None;
        }
        self.take_answers();
        while let Ok(c) = self.done_rx.try_recv() {
            self.handle_completion(c);
        }
        let now = Instant::now();
        if let Err(e) = self.cluster.maybe_refresh() {
            log::debug!("producer metadata refresh failed: {e}");
        }
        self.follow_partition_growth();
        self.expire(now);
        let next_linger = self.send_ready(now).next_linger;
        if state == CLOSING && self.idle() {
            return None;
        }
        // An answer that finds `eager` clear does not wake us: its
        // records are complete already (`quiet_reply`), only our
        // bookkeeping is left, done on the next turn (or by a `send()`
        // taking it, `drive`). Store, then look (the reader pushes, then
        // loads): one of the two sees the other.
        let eager =
            state != RUNNING || self.need_bump || self.pid_retry_at.is_some() || self.has_retries();
        self.eager.store(eager, Ordering::SeqCst);
        std::sync::atomic::fence(Ordering::SeqCst);
        if eager && !self.answers_rx.is_empty() {
            return Some(Duration::ZERO);
        }
        Some(self.next_wakeup(now, next_linger))
    }

    /// Sends what is ready now, on the calling thread: `send()` with
    /// `linger_ms` 0 takes the sender's turn itself when the sender thread
    /// is not busy, which saves a thread wake-up on the record's way to
    /// the broker (the request still goes through the connection's writer
    /// thread; answers still come to the sender thread). Only the plain
    /// path: no transaction, a producer id in hand, no retries or answers
    /// waiting. Returns whether the sender thread has nothing to look at
    /// (else the caller wakes it).
    pub(crate) fn drive(&mut self, now: Instant) -> bool {
        if self.state.load(Ordering::Acquire) != RUNNING
            || self.txn.is_some()
            || !self.done_rx.is_empty()
            || !self.deferred.is_empty()
            || (self.cfg.enable_idempotence && (self.pid.is_none() || self.need_bump))
            || self.has_retries()
        {
            return false;
        }
        // Answers the readers settled: their bookkeeping (in-flight counts,
        // sequences) frees the partitions for this turn. Anything more (a
        // callback to run, an error) stays the sender thread's, in order.
        while let Ok(a) = self.answers_rx.try_recv() {
            match a {
                Answer::Settled { token, at, pending } if pending.iter().all(Option::is_none) => {
                    self.handle_settled(token, at, pending)
                }
                other => {
                    self.deferred.push_back(other);
                    return false;
                }
            }
        }
        self.driving = true;
        // Callbacks do not run here (answers are the sender's), but a batch
        // that fails to build completes at once: it must not wait for the
        // sender thread from inside its callback while this turn holds the
        // sender's state.
        let sent = as_callback_thread(|| self.send_ready(now));
        self.driving = false;
        !sent.stays
    }

    /// Whether a batch waits for a retry.
    fn has_retries(&self) -> bool {
        self.partitions.values().any(|p| !p.retries.is_empty())
    }

    /// Topics can gain partitions; new sends spread over them once the
    /// metadata shows them.
    fn follow_partition_growth(&mut self) {
        let snap = self.cluster.metadata();
        if snap.refreshed_at() == self.seen_refresh {
            return;
        }
        self.seen_refresh = snap.refreshed_at();
        for t in self.acc.topics() {
            if let Some(md) = snap.topic(&t.name) {
                let n = md.partitions.len() as i32;
                if md.error.is_ok() && n > t.partition_count() {
                    log::info!("topic {} grew to {n} partitions", t.name);
                    self.acc.ensure_topic(&t.name, n);
                }
            }
        }
    }

    fn idle(&self) -> bool {
        self.in_flight.is_empty() && !self.has_retries() && !self.acc.has_queued()
    }

    fn next_wakeup(&self, now: Instant, next_linger: Option<Instant>) -> Duration {
        let mut at = now + Duration::from_millis(250);
        if let Some(l) = next_linger {
            at = at.min(l);
        }
        // Only future times: a retry that is due but blocked (in-flight cap,
        // unknown leader, connecting) is looked at again on the next
        // completion, wake-up or tick, not in a busy loop.
        for p in self.partitions.values() {
            if let Some(r) = p.retries.front().and_then(|b| b.retry_at) {
                if r > now {
                    at = at.min(r);
                }
            }
        }
        if let Some(r) = self.pid_retry_at.filter(|r| *r > now) {
            at = at.min(r);
        }
        at.saturating_duration_since(now)
            .max(Duration::from_micros(100))
    }

    /// Whether batches may be sent now (idempotence needs a producer id).
    fn ensure_producer_id(&mut self, now: Instant) -> bool {
        if !self.cfg.enable_idempotence {
            return true;
        }
        if let Some(txn) = self.txn.clone() {
            return self.follow_transactional_id(&txn);
        }
        if self.pid.is_some() && !self.need_bump {
            return true;
        }
        if !self.in_flight.is_empty() {
            // An epoch bump waits until every in-flight request is answered.
            return false;
        }
        if self.pid_retry_at.is_some_and(|t| t > now) {
            return false;
        }
        match self.init_producer_id() {
            Ok(new) => {
                log::debug!("producer id {} epoch {}", new.id, new.epoch);
                let bumped = self.pid.is_some();
                self.pid = Some(new);
                self.need_bump = false;
                self.pid_retry_at = None;
                if bumped {
                    self.resequence(new);
                }
                true
            }
            Err(e) => {
                log::warn!("InitProducerId failed: {e}");
                self.pid_retry_at = Some(now + self.cfg.client.retry_backoff);
                false
            }
        }
    }

    /// A transactional producer's id and epoch come from
    /// `init_transactions` (and epoch bumps after an abort); the sender
    /// follows them and renumbers what waits when the epoch changes.
    fn follow_transactional_id(&mut self, txn: &Transactions) -> bool {
        if self.need_bump {
            // A sequence gap: only an abort (which bumps the epoch) mends it.
            self.need_bump = false;
            txn.batch_failed(
                &Error::new(
                    ErrorKind::TransactionAbortable,
                    "a batch of the transaction failed, leaving a gap in its partition's sequence",
                ),
                true,
            );
        }
        let Some(pid) = txn.producer_id() else {
            return false;
        };
        if self.pid != Some(pid) {
            let bumped = self.pid.is_some();
            self.pid = Some(pid);
            if bumped {
                self.resequence(pid);
            }
        }
        true
    }

    fn init_producer_id(&self) -> Result<ProducerId> {
        let mut request = InitProducerIdRequest {
            transactional_id: None,
            transaction_timeout_ms: i32::MAX,
            ..Default::default()
        };
        let bump_in_place = self.pid.filter(|_| {
            self.any_broker_version(ApiKey::INIT_PRODUCER_ID)
                .is_some_and(|v| v >= 3)
        });
        if let Some(pid) = bump_in_place {
            request.producer_id = pid.id;
            request.producer_epoch = pid.epoch;
        }
        let response = self.cluster.send_any(&request)?;
        ErrorCode(response.error_code).check(|| "InitProducerId (idempotent producer)".into())?;
        Ok(ProducerId {
            id: response.producer_id,
            epoch: response.producer_epoch,
        })
    }

    fn any_broker_version(&self, key: ApiKey) -> Option<i16> {
        let snap = self.cluster.metadata();
        let id = *snap.brokers.keys().next()?;
        let conn = self.cluster.connection(id, Purpose::General).ok()?;
        conn.versions().ok()?.max_version(key)
    }

    /// After an epoch bump: every partition starts again at sequence 0 and
    /// the batches waiting for a retry are renumbered in order.
    fn resequence(&mut self, pid: ProducerId) {
        for state in self.partitions.values_mut() {
            state.next_sequence = 0;
            state.last_acked_sequence = -1;
            let mut failed = Vec::new();
            for b in state.retries.iter_mut() {
                let seq = state.next_sequence;
                match set_producer_state(b.data.clone(), pid.id, pid.epoch, seq) {
                    Ok(data) => {
                        b.data = data;
                        b.base_sequence = seq;
                        state.next_sequence = seq_add(seq, b.records);
                    }
                    Err(e) => failed.push((b.id, e)),
                }
            }
            for (id, e) in failed {
                if let Some(pos) = state.retries.iter().position(|b| b.id == id) {
                    if let Some(b) = state.retries.remove(pos) {
                        Self::finish(&self.acc, &self.metrics, self.txn.as_deref(), b, Err(e));
                    }
                }
            }
        }
    }
}
