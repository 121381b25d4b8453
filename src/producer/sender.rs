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

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, Sender};

use super::accumulator::{Accumulator, OpenBatch};
use super::config::{Acks, ProducerConfig};
use super::metrics::Metrics;
use super::record::BatchAck;
use super::wire::{produce_frame, PartitionBatch};
use crate::bytes::Bytes;
use crate::cluster::{Cluster, Purpose};
use crate::error::{Error, ErrorKind, Result};
use crate::net::{decode_response, Completion, Reply};
use crate::protocol::messages::{InitProducerIdRequest, ProduceRequest};
use crate::protocol::{ApiKey, ErrorCode, Message, Request};
use crate::records::{set_producer_state, BatchOptions, Compression};
use crate::records::{ReadOptions, RecordBatchBuilder, RecordBatches};

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

#[derive(Clone, Copy)]
struct ProducerId {
    id: i64,
    epoch: i16,
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
    in_flight: HashMap<u64, InFlight>,
    broker_in_flight: HashMap<i32, usize>,
    partitions: HashMap<(Arc<str>, i32), PartitionState>,
    next_token: u64,
    pid: Option<ProducerId>,
    need_bump: bool,
    pid_retry_at: Option<Instant>,
    seen_refresh: Option<Instant>,
    connecting: std::collections::HashSet<i32>,
}

thread_local! {
    static ON_SENDER_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the calling thread is a producer's sender thread (delivery
/// callbacks run there; waiting for a delivery from one would deadlock).
pub(crate) fn on_sender_thread() -> bool {
    ON_SENDER_THREAD.with(std::cell::Cell::get)
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
    ) -> SenderThread {
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        SenderThread {
            cfg,
            cluster,
            acc,
            metrics,
            state,
            wake_rx,
            done_tx,
            done_rx,
            in_flight: HashMap::new(),
            broker_in_flight: HashMap::new(),
            partitions: HashMap::new(),
            next_token: 1,
            pid: None,
            need_bump: false,
            pid_retry_at: None,
            seen_refresh: None,
            connecting: std::collections::HashSet::new(),
        }
    }

    pub(crate) fn run(mut self) {
        ON_SENDER_THREAD.with(|f| f.set(true));
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run_loop()));
        if outcome.is_err() {
            log::error!("the producer's sender thread panicked; failing every pending record");
        }
        // Whatever is left (an abort, a panic, a send that raced close())
        // fails now: no future may wait for a thread that is gone.
        self.acc.close();
        self.abort_all();
    }

    fn run_loop(&mut self) {
        loop {
            let state = self.state.load(Ordering::Acquire);
            if state == ABORT {
                return;
            }
            while let Ok(c) = self.done_rx.try_recv() {
                self.handle_completion(c);
            }
            let now = Instant::now();
            if let Err(e) = self.cluster.maybe_refresh() {
                log::debug!("producer metadata refresh failed: {e}");
            }
            self.follow_partition_growth();
            self.expire(now);
            let next_linger = self.send_ready(now);
            if state == CLOSING && self.idle() {
                return;
            }
            let wait = self.next_wakeup(now, next_linger);
            select! {
                recv(self.wake_rx) -> _ => {}
                recv(self.done_rx) -> c => {
                    if let Ok(c) = c {
                        self.handle_completion(c);
                    }
                }
                default(wait) => {}
            }
        }
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
        self.in_flight.is_empty()
            && self.partitions.values().all(|p| p.retries.is_empty())
            && !self.acc.has_queued()
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
                        Self::finish(&self.acc, &self.metrics, b, Err(e));
                    }
                }
            }
        }
    }

    /// Sends whatever is ready; returns the next linger deadline.
    fn send_ready(&mut self, now: Instant) -> Option<Instant> {
        if !self.ensure_producer_id(now) {
            // Still tell the caller when to look again.
            return self.acc.drain(now, |_, _, _| false).1;
        }
        let snap = self.cluster.metadata();
        let limits = Limits {
            max_in_flight: self.cfg.client.max_in_flight_requests_per_connection,
            max_request: self.cfg.max_request_size,
        };
        let per_partition = if self.cfg.enable_idempotence {
            limits.max_in_flight
        } else {
            1
        };
        let mut requests: HashMap<i32, Vec<PendingRequest>> = HashMap::new();
        let mut ready_brokers: HashMap<i32, bool> = HashMap::new();
        let mut unknown_leader = false;

        // Retries first, oldest batch first within each partition.
        let keys: Vec<(Arc<str>, i32)> = self
            .partitions
            .iter()
            .filter(|(_, s)| {
                s.retries
                    .front()
                    .is_some_and(|b| b.retry_at.map_or(true, |t| t <= now))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            let Some(leader) = snap.leader(&key.0, key.1) else {
                unknown_leader = true;
                continue;
            };
            if !self.broker_ready(leader, &mut ready_brokers) {
                continue;
            }
            while let Some(state) = self.partitions.get_mut(&key) {
                let ready = state
                    .retries
                    .front()
                    .is_some_and(|b| b.retry_at.map_or(true, |t| t <= now));
                if !ready || state.in_flight >= per_partition {
                    break;
                }
                let size = state.retries.front().map_or(0, |b| b.data.len());
                let Some(index) = reserve_slot(
                    &mut requests,
                    &self.broker_in_flight,
                    leader,
                    &key,
                    size,
                    limits,
                ) else {
                    break;
                };
                let Some(b) = state.retries.pop_front() else {
                    break;
                };
                state.in_flight += 1;
                push_batch(&mut requests, leader, index, b);
            }
        }

        // Then new batches from the accumulator. Which brokers can take
        // requests is settled first (it may start connections).
        for t in self.acc.topics() {
            for p in 0..t.partition_count() {
                if let Some(leader) = snap.leader(&t.name, p) {
                    self.broker_ready(leader, &mut ready_brokers);
                }
            }
        }
        let mut drained_leaders: Vec<(i32, usize)> = Vec::new();
        let partitions = &mut self.partitions;
        let broker_in_flight = &self.broker_in_flight;
        let (drained, next_linger) = self.acc.drain(now, |topic, p, size| {
            let Some(leader) = snap.leader(topic, p) else {
                unknown_leader = true;
                return false;
            };
            if !ready_brokers.get(&leader).copied().unwrap_or(false) {
                return false;
            }
            let key = (Arc::clone(topic), p);
            let state = partitions.entry(key.clone()).or_default();
            if !state.retries.is_empty() || state.in_flight >= per_partition {
                return false;
            }
            let Some(index) =
                reserve_slot(&mut requests, broker_in_flight, leader, &key, size, limits)
            else {
                return false;
            };
            state.in_flight += 1;
            drained_leaders.push((leader, index));
            true
        });
        if unknown_leader {
            self.cluster.request_update();
        }
        for (open, (leader, index)) in drained.into_iter().zip(drained_leaders) {
            match self.build(open) {
                Ok(b) => push_batch(&mut requests, leader, index, b),
                Err((b_info, e)) => {
                    if let Some(s) = self.partitions.get_mut(&(b_info.0, b_info.1)) {
                        s.in_flight = s.in_flight.saturating_sub(1);
                    }
                    log::warn!("building a batch failed: {e}");
                }
            }
        }
        for (broker, reqs) in requests {
            for req in reqs {
                if !req.batches.is_empty() {
                    self.send_request(broker, req.batches, now);
                }
            }
        }
        next_linger
    }

    /// Whether requests can be encoded for `broker` now, i.e. its API
    /// versions are known. If not, a connection is started in the
    /// background (its outcome arrives as a completion), so one unreachable
    /// broker never blocks the sender thread.
    fn broker_ready(&mut self, broker: i32, cache: &mut HashMap<i32, bool>) -> bool {
        if let Some(r) = cache.get(&broker) {
            return *r;
        }
        let ready = match self.cluster.connection(broker, Purpose::Produce) {
            Ok(conn) => {
                if conn.known_versions().is_some() {
                    true
                } else {
                    if self.connecting.insert(broker) {
                        // On failure the dropped reply answers `Disconnected`.
                        let _ = conn.connect_async(Reply::new(
                            self.done_tx.clone(),
                            CONNECT_TOKEN | broker as u32 as u64,
                        ));
                    }
                    false
                }
            }
            Err(e) => {
                log::debug!("no connection to broker {broker}: {e}");
                self.cluster.request_update();
                false
            }
        };
        cache.insert(broker, ready);
        ready
    }

    /// Closes an accumulator batch into wire bytes, assigning its sequence.
    fn build(
        &mut self,
        open: OpenBatch,
    ) -> std::result::Result<ProducerBatch, ((Arc<str>, i32), Error)> {
        let topic = Arc::clone(&open.completion.topic);
        let partition = open.completion.partition;
        let records = open.builder.record_count();
        let uncompressed = open.builder.size_estimate();
        let mut options = BatchOptions {
            compression: self.cfg.compression,
            ..BatchOptions::default()
        };
        let mut base_sequence = -1;
        if let (true, Some(pid)) = (self.cfg.enable_idempotence, self.pid) {
            let state = self
                .partitions
                .entry((Arc::clone(&topic), partition))
                .or_default();
            base_sequence = state.next_sequence;
            state.next_sequence = seq_add(base_sequence, records);
            options.producer_id = pid.id;
            options.producer_epoch = pid.epoch;
            options.base_sequence = base_sequence;
        }
        let id = open.id;
        let reserved = open.reserved;
        let completion = Arc::clone(&open.completion);
        match open.builder.build(&options) {
            Ok(data) => Ok(ProducerBatch {
                id,
                topic,
                partition,
                data,
                records,
                uncompressed,
                created: open.created,
                attempts: 0,
                retry_at: None,
                base_sequence,
                completion,
                reserved,
                split: None,
            }),
            Err(e) => {
                let e = e.with_partition(&*topic, partition);
                completion.complete(Err(e.clone()));
                self.acc.finished(id, reserved);
                self.metrics.record_errors(records as u64);
                if base_sequence >= 0 {
                    self.need_bump = true;
                }
                Err(((topic, partition), e))
            }
        }
    }

    fn send_request(&mut self, broker: i32, mut batches: Vec<ProducerBatch>, now: Instant) {
        let acks = self.cfg.acks;
        // The request lists each topic once: group the batches by topic.
        batches.sort_by(|a, b| a.topic.cmp(&b.topic));
        let token = self.next_token;
        self.next_token += 1;
        let timeout_ms =
            i32::try_from(self.cfg.client.request_timeout.as_millis()).unwrap_or(i32::MAX);
        let submitted = self
            .cluster
            .connection(broker, Purpose::Produce)
            .and_then(|conn| {
                // Record batches v2 need Produce v3 or newer (Kafka 0.11+).
                let version = match conn.known_versions() {
                    Some(v) => v.pick(ApiKey::PRODUCE, (3, ProduceRequest::MAX_VERSION))?,
                    None => {
                        return Err(Error::new(
                            ErrorKind::Disconnected,
                            format!("the connection to broker {broker} is not ready"),
                        ))
                    }
                };
                let parts: Vec<PartitionBatch<'_>> = batches
                    .iter()
                    .map(|b| PartitionBatch {
                        topic: &b.topic,
                        partition: b.partition,
                        records: &b.data,
                    })
                    .collect();
                let (first, rest) = produce_frame(
                    version,
                    self.cfg.client.client_id(),
                    acks.as_i16(),
                    timeout_ms,
                    &parts,
                )?;
                conn.submit_parts(
                    first,
                    rest,
                    (acks != Acks::None).then(|| ProduceRequest::response_header_version(version)),
                    self.cfg.client.request_timeout,
                    Reply::new(self.done_tx.clone(), token),
                )?;
                Ok(version)
            });
        for b in &batches {
            self.metrics
                .batch_sent(b.records as u64, b.data.len() as u64, b.uncompressed as u64);
        }
        *self.broker_in_flight.entry(broker).or_default() += 1;
        let inflight = InFlight {
            broker,
            version: 0,
            sent_at: now,
            batches,
        };
        match submitted {
            Ok(version) => {
                self.in_flight.insert(
                    token,
                    InFlight {
                        version,
                        ..inflight
                    },
                );
            }
            Err(e) => {
                self.in_flight.insert(token, inflight);
                self.handle_completion(Completion {
                    token,
                    result: Err(e),
                });
            }
        }
    }

    fn handle_completion(&mut self, c: Completion) {
        if c.token & CONNECT_TOKEN != 0 {
            let broker = c.token as u32 as i32;
            self.connecting.remove(&broker);
            if let Err(e) = c.result {
                log::debug!("connecting to broker {broker} failed: {e}");
                self.cluster.request_update();
            }
            return;
        }
        let Some(req) = self.in_flight.remove(&c.token) else {
            return;
        };
        if let Some(n) = self.broker_in_flight.get_mut(&req.broker) {
            *n = n.saturating_sub(1);
        }
        let now = Instant::now();
        self.metrics
            .request_latency(now.duration_since(req.sent_at));
        for b in &req.batches {
            if let Some(s) = self
                .partitions
                .get_mut(&(Arc::clone(&b.topic), b.partition))
            {
                s.in_flight = s.in_flight.saturating_sub(1);
            }
        }
        let body = match c.result {
            Ok(body) => body,
            Err(e) => {
                for b in req.batches {
                    self.batch_failed(b, e.clone(), now);
                }
                return;
            }
        };
        if self.cfg.acks == Acks::None {
            for b in req.batches {
                Self::finish(&self.acc, &self.metrics, b, Ok(BatchAck::whole(-1, None)));
            }
            return;
        }
        let response = match decode_response::<ProduceRequest>(&body, req.version) {
            Ok(r) => r,
            Err(e) => {
                for b in req.batches {
                    self.batch_failed(b, e.clone(), now);
                }
                return;
            }
        };
        for b in req.batches {
            let answer = response
                .responses
                .iter()
                .find(|t| t.name == *b.topic)
                .and_then(|t| {
                    t.partition_responses
                        .iter()
                        .find(|p| p.index == b.partition)
                });
            let Some(p) = answer else {
                let e = Error::protocol("the produce response left out this partition");
                self.batch_failed(b, e, now);
                continue;
            };
            let code = ErrorCode(p.error_code);
            let ack = BatchAck::whole(
                p.base_offset,
                Some(p.log_append_time_ms).filter(|t| *t >= 0),
            );
            if code.is_ok() || code == ErrorCode::DUPLICATE_SEQUENCE_NUMBER {
                if b.base_sequence >= 0 {
                    if let Some(s) = self
                        .partitions
                        .get_mut(&(Arc::clone(&b.topic), b.partition))
                    {
                        s.last_acked_sequence = seq_add(b.base_sequence, b.records - 1);
                    }
                }
                Self::finish(&self.acc, &self.metrics, b, Ok(ack));
            } else {
                let mut msg = format!("the broker rejected the batch ({} records)", b.records);
                if let Some(m) = p.error_message.as_deref().filter(|m| !m.is_empty()) {
                    msg.push_str(": ");
                    msg.push_str(m);
                }
                if code == ErrorCode::MESSAGE_TOO_LARGE {
                    // Batches of several records are split and sent again;
                    // one record alone is over the topic's limit.
                    msg.push_str(
                        "; the record is larger than the topic's max.message.bytes: raise that limit or send smaller records",
                    );
                }
                self.cluster.note_error(code);
                self.batch_failed(b, Error::broker(code, msg), now);
            }
        }
    }

    /// Queues `b` among its partition's retries, in send order (by sequence
    /// when idempotent): batch ids grow in creation order, which within a
    /// partition is send (and sequence) order.
    fn queue_retry(&mut self, b: ProducerBatch) {
        let state = self
            .partitions
            .entry((Arc::clone(&b.topic), b.partition))
            .or_default();
        let pos = state
            .retries
            .iter()
            .position(|x| b.send_order() < x.send_order())
            .unwrap_or(state.retries.len());
        state.retries.insert(pos, b);
    }

    /// Retries `b` when the error allows and time is left, else fails it.
    fn batch_failed(&mut self, mut b: ProducerBatch, e: Error, now: Instant) {
        let code = e.kafka_code();
        let key = (Arc::clone(&b.topic), b.partition);
        let idempotent = b.base_sequence >= 0;
        let sequence_trouble = matches!(
            code,
            Some(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER) | Some(ErrorCode::UNKNOWN_PRODUCER_ID)
        );
        if idempotent && sequence_trouble {
            let next_expected = self
                .partitions
                .get(&key)
                .map_or(0, |s| seq_add(s.last_acked_sequence, 1));
            if b.base_sequence == next_expected || code == Some(ErrorCode::UNKNOWN_PRODUCER_ID) {
                // The broker lost our sequence state: bump the epoch and
                // renumber (KIP-360), as the Java client does.
                self.need_bump = true;
            }
        }
        let retriable = e.is_retriable() || (idempotent && sequence_trouble);
        let expired = now.duration_since(b.created) >= self.cfg.delivery_timeout;
        if code == Some(ErrorCode::MESSAGE_TOO_LARGE) && b.records > 1 && !expired {
            // The topic's max.message.bytes is below our batch: send the
            // records again in two halves, as the Java client does.
            match split_batch(&b, self.cfg.compression) {
                Ok(pieces) => {
                    log::info!(
                        "{}-{}: the broker refused a batch of {} records ({} bytes) as too large; splitting it",
                        b.topic,
                        b.partition,
                        b.records,
                        b.data.len()
                    );
                    if idempotent {
                        // Its sequence range is a gap now: renumber from
                        // a new epoch, as after any failed batch.
                        self.need_bump = true;
                    }
                    for piece in pieces {
                        self.queue_retry(piece);
                    }
                    return;
                }
                Err(split_error) => {
                    log::warn!(
                        "cannot split a batch the broker refused as too large: {split_error}"
                    );
                }
            }
        }
        if retriable && !expired && b.attempts < self.cfg.retries {
            if code.is_some_and(|c| c.is_stale_metadata()) || e.kind() == ErrorKind::Disconnected {
                self.cluster.request_update();
            }
            b.attempts += 1;
            b.retry_at = Some(now + self.cfg.client.retry_backoff);
            self.metrics.retry();
            log::debug!(
                "retrying {} records for {}-{} (attempt {}): {e}",
                b.records,
                b.topic,
                b.partition,
                b.attempts
            );
            self.queue_retry(b);
            return;
        }
        if idempotent {
            // A gap in the sequence: later batches need a new epoch.
            self.need_bump = true;
        }
        let e = if expired && retriable {
            Error::timeout(format!(
                "the batch was not acknowledged within delivery_timeout_ms ({} ms); last error: {e}",
                self.cfg.delivery_timeout.as_millis()
            ))
        } else {
            e
        };
        let e = e.with_partition(&*b.topic, b.partition);
        Self::finish(&self.acc, &self.metrics, b, Err(e));
    }

    /// Fails batches (queued or waiting for a retry) older than
    /// `delivery_timeout_ms`.
    fn expire(&mut self, now: Instant) {
        let timeout = self.cfg.delivery_timeout;
        let mut expired = Vec::new();
        for state in self.partitions.values_mut() {
            while state
                .retries
                .front()
                .is_some_and(|b| now.duration_since(b.created) >= timeout)
            {
                if let Some(b) = state.retries.pop_front() {
                    expired.push(b);
                }
            }
        }
        for b in expired {
            if b.base_sequence >= 0 {
                self.need_bump = true;
            }
            let e = Error::timeout(format!(
                "the batch was not acknowledged within delivery_timeout_ms ({} ms)",
                timeout.as_millis()
            ))
            .with_partition(&*b.topic, b.partition);
            Self::finish(&self.acc, &self.metrics, b, Err(e));
        }
        // Batches stuck in the accumulator (no leader, broker down).
        for open in self.acc.take_expired(now, timeout) {
            let topic = Arc::clone(&open.completion.topic);
            let p = open.completion.partition;
            let e = Error::timeout(format!(
                "the batch waited longer than delivery_timeout_ms ({} ms) for a leader of its partition",
                timeout.as_millis()
            ))
            .with_partition(&*topic, p);
            self.metrics
                .record_errors(open.builder.record_count() as u64);
            open.completion.complete(Err(e));
            self.acc.finished(open.id, open.reserved);
        }
    }

    fn finish(acc: &Accumulator, metrics: &Metrics, b: ProducerBatch, result: Result<BatchAck>) {
        match &result {
            Ok(_) => metrics.records_acked(b.records as u64),
            Err(_) => metrics.record_errors(b.records as u64),
        }
        match b.split {
            None => {
                b.completion.complete(result);
                acc.finished(b.id, b.reserved);
            }
            Some((first, total)) => {
                let records = u32::try_from(b.records).unwrap_or(0);
                if b.completion.complete_piece(first, records, total, result) {
                    acc.finished(b.id, b.reserved);
                } else {
                    acc.release(b.reserved);
                }
            }
        }
        if let Ok(buf) = b.data.try_into_vec() {
            acc.recycle(buf);
        }
    }

    /// Fails everything still queued, waiting or in flight (close timeout).
    fn abort_all(&mut self) {
        let e = Error::closed("the producer was closed before the record was delivered");
        for (_, req) in self.in_flight.drain() {
            for b in req.batches {
                Self::finish(&self.acc, &self.metrics, b, Err(e.clone()));
            }
        }
        for state in self.partitions.values_mut() {
            for b in state.retries.drain(..) {
                Self::finish(&self.acc, &self.metrics, b, Err(e.clone()));
            }
        }
        for open in self.acc.take_all() {
            self.metrics
                .record_errors(open.builder.record_count() as u64);
            open.completion.complete(Err(e.clone()));
            self.acc.finished(open.id, open.reserved);
        }
    }
}

/// Request size limits.
#[derive(Clone, Copy)]
struct Limits {
    max_in_flight: usize,
    max_request: usize,
}

/// A produce request being assembled.
#[derive(Default)]
struct PendingRequest {
    batches: Vec<ProducerBatch>,
    size: usize,
    partitions: Vec<(Arc<str>, i32)>,
}

/// Finds (or opens) a request to `broker` with room for `size` more bytes
/// that does not carry `partition` yet (a broker keeps only one entry per
/// partition of a request), books it, and returns the request's index.
fn reserve_slot(
    requests: &mut HashMap<i32, Vec<PendingRequest>>,
    broker_in_flight: &HashMap<i32, usize>,
    broker: i32,
    partition: &(Arc<str>, i32),
    size: usize,
    limits: Limits,
) -> Option<usize> {
    let in_flight = broker_in_flight.get(&broker).copied().unwrap_or(0);
    let reqs = requests.entry(broker).or_default();
    let fits = |r: &PendingRequest| {
        // A batch larger than max_request_size still goes, alone.
        (r.size + size <= limits.max_request || r.size == 0) && !r.partitions.contains(partition)
    };
    let index = match reqs.iter().position(fits) {
        Some(i) => i,
        None => {
            if in_flight + reqs.len() >= limits.max_in_flight {
                return None;
            }
            reqs.push(PendingRequest::default());
            reqs.len() - 1
        }
    };
    let r = &mut reqs[index];
    r.size += size;
    r.partitions.push(partition.clone());
    Some(index)
}

fn push_batch(
    requests: &mut HashMap<i32, Vec<PendingRequest>>,
    broker: i32,
    index: usize,
    b: ProducerBatch,
) {
    if let Some(req) = requests.get_mut(&broker).and_then(|r| r.get_mut(index)) {
        req.batches.push(b);
    }
}

/// Sequence arithmetic: Kafka sequences run from 0 to `i32::MAX` and wrap
/// to 0 (never negative).
fn seq_add(seq: i32, n: i32) -> i32 {
    (i64::from(seq) + i64::from(n)).rem_euclid(i64::from(i32::MAX) + 1) as i32
}

/// The records of `b` as two pieces of about half the records each, in
/// send order, without producer id or sequence (an epoch bump stamps them).
/// Each piece keeps `b`'s id and completion and half its hold on
/// `buffer_memory`.
fn split_batch(b: &ProducerBatch, compression: Compression) -> Result<[ProducerBatch; 2]> {
    let half = b.records / 2;
    let mut builders = [RecordBatchBuilder::new(), RecordBatchBuilder::new()];
    let mut n = 0i32;
    let options = ReadOptions {
        check_crcs: false,
        ..ReadOptions::default()
    };
    for batch in RecordBatches::new(b.data.clone(), options) {
        for record in batch?.records() {
            let r = record?;
            // A rare path: collecting the headers per record is fine here.
            let headers: Vec<(&str, Option<Bytes>)> = r.headers.iter().collect();
            builders[usize::from(n >= half)].append(
                r.timestamp,
                r.key.as_deref(),
                r.value.as_deref(),
                headers.iter().map(|(k, v)| (*k, v.as_deref())),
            )?;
            n += 1;
        }
    }
    if n != b.records {
        return Err(Error::protocol(format!(
            "a batch of {} records decoded to {n}",
            b.records
        )));
    }
    let options = BatchOptions {
        compression,
        ..BatchOptions::default()
    };
    let (origin, total) = b.split.unwrap_or((0, b.records.max(0) as u32));
    let [first, second] = builders;
    let first_records = first.record_count();
    let piece = |builder: RecordBatchBuilder, at: u32, reserved: usize| -> Result<ProducerBatch> {
        let records = builder.record_count();
        let data = builder.build(&options)?;
        Ok(ProducerBatch {
            id: b.id,
            topic: Arc::clone(&b.topic),
            partition: b.partition,
            uncompressed: data.len(),
            data,
            records,
            created: b.created,
            attempts: b.attempts,
            retry_at: None,
            base_sequence: -1,
            completion: Arc::clone(&b.completion),
            reserved,
            split: Some((at, total)),
        })
    };
    Ok([
        piece(first, origin, b.reserved / 2)?,
        piece(
            second,
            origin + first_records.max(0) as u32,
            b.reserved - b.reserved / 2,
        )?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_never_carries_a_partition_twice() {
        let mut requests = HashMap::new();
        let in_flight = HashMap::new();
        let limits = Limits {
            max_in_flight: 5,
            max_request: 1 << 20,
        };
        let p0: (Arc<str>, i32) = (Arc::from("t"), 0);
        let p1: (Arc<str>, i32) = (Arc::from("t"), 1);
        assert_eq!(
            reserve_slot(&mut requests, &in_flight, 1, &p0, 100, limits),
            Some(0)
        );
        assert_eq!(
            reserve_slot(&mut requests, &in_flight, 1, &p1, 100, limits),
            Some(0)
        );
        // The same partition again goes to a second request.
        assert_eq!(
            reserve_slot(&mut requests, &in_flight, 1, &p0, 100, limits),
            Some(1)
        );
        assert_eq!(
            reserve_slot(&mut requests, &in_flight, 1, &p1, 100, limits),
            Some(1)
        );
        // A full request spills into a new one; the in-flight cap bounds them.
        let big = 1 << 20;
        assert_eq!(
            reserve_slot(&mut requests, &in_flight, 1, &p0, big, limits),
            Some(2)
        );
        let busy: HashMap<i32, usize> = [(1, 2)].into_iter().collect();
        assert_eq!(
            reserve_slot(&mut requests, &busy, 1, &p0, 100, limits),
            None
        );
    }

    #[test]
    fn sequences_wrap_to_zero_not_negative() {
        assert_eq!(seq_add(0, 5), 5);
        assert_eq!(seq_add(-1, 1), 0);
        assert_eq!(seq_add(i32::MAX - 3, 4), 0);
        assert_eq!(seq_add(i32::MAX - 3, 10), 6);
        assert_eq!(seq_add(i32::MAX, 0), i32::MAX);
        assert_eq!(seq_add(i32::MAX - 1, 5 - 1), 2);
    }
}
