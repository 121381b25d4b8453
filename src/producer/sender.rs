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
use crate::bytes::Bytes;
use crate::cluster::{Cluster, Purpose};
use crate::error::{Error, ErrorKind, Result};
use crate::net::{decode_response, Completion, Reply};
use crate::protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use crate::protocol::messages::{InitProducerIdRequest, ProduceRequest};
use crate::protocol::{ApiKey, ErrorCode};
use crate::records::{set_producer_state, BatchOptions};

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
}

#[derive(Default)]
struct PartitionState {
    next_sequence: i32,
    last_acked_sequence: i32,
    in_flight: usize,
    retries: VecDeque<ProducerBatch>,
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
}

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
        }
    }

    pub(crate) fn run(mut self) {
        loop {
            let state = self.state.load(Ordering::Acquire);
            if state == ABORT {
                self.abort_all();
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
        for p in self.partitions.values() {
            if let Some(r) = p.retries.front().and_then(|b| b.retry_at) {
                at = at.min(r);
            }
        }
        if let Some(r) = self.pid_retry_at {
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
                        state.next_sequence = seq.wrapping_add(b.records);
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
        let max_in_flight = self.cfg.client.max_in_flight_requests_per_connection;
        let per_partition = if self.cfg.enable_idempotence {
            max_in_flight
        } else {
            1
        };
        let max_request = self.cfg.max_request_size;
        // Requests being assembled per broker: (batches, size).
        let mut requests: HashMap<i32, Vec<(Vec<ProducerBatch>, usize)>> = HashMap::new();
        let mut unknown_leader = false;

        // Retries first, in partition order.
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
            while let Some(state) = self.partitions.get_mut(&key) {
                let ready = state
                    .retries
                    .front()
                    .is_some_and(|b| b.retry_at.map_or(true, |t| t <= now));
                if !ready || state.in_flight >= per_partition {
                    break;
                }
                let size = state.retries.front().map_or(0, |b| b.data.len());
                let Some(index) = Self::reserve_slot(
                    &mut requests,
                    &self.broker_in_flight,
                    leader,
                    size,
                    max_in_flight,
                    max_request,
                ) else {
                    break;
                };
                let Some(b) = state.retries.pop_front() else {
                    break;
                };
                state.in_flight += 1;
                Self::push_batch(&mut requests, leader, index, b);
            }
        }

        // Then new batches from the accumulator.
        let mut drained_leaders: Vec<(i32, usize)> = Vec::new();
        let partitions = &mut self.partitions;
        let broker_in_flight = &self.broker_in_flight;
        let (drained, next_linger) = self.acc.drain(now, |topic, p, size| {
            let Some(leader) = snap.leader(topic, p) else {
                unknown_leader = true;
                return false;
            };
            let state =
                partitions
                    .entry((Arc::clone(topic), p))
                    .or_insert_with(|| PartitionState {
                        last_acked_sequence: -1,
                        ..PartitionState::default()
                    });
            if !state.retries.is_empty() || state.in_flight >= per_partition {
                return false;
            }
            let Some(index) = Self::reserve_slot(
                &mut requests,
                broker_in_flight,
                leader,
                size,
                max_in_flight,
                max_request,
            ) else {
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
            match self.build(open, now) {
                Ok(b) => Self::push_batch(&mut requests, leader, index, b),
                Err((b_info, e)) => {
                    if let Some(s) = self.partitions.get_mut(&(b_info.0, b_info.1)) {
                        s.in_flight = s.in_flight.saturating_sub(1);
                    }
                    log::warn!("building a batch failed: {e}");
                }
            }
        }
        for (broker, reqs) in requests {
            for (batches, _) in reqs {
                if !batches.is_empty() {
                    self.send_request(broker, batches, now);
                }
            }
        }
        next_linger
    }

    /// Finds (or opens) a request to `broker` with room for `size` more
    /// bytes and books them; returns the request's index.
    fn reserve_slot(
        requests: &mut HashMap<i32, Vec<(Vec<ProducerBatch>, usize)>>,
        broker_in_flight: &HashMap<i32, usize>,
        broker: i32,
        size: usize,
        max_in_flight: usize,
        max_request: usize,
    ) -> Option<usize> {
        let in_flight = broker_in_flight.get(&broker).copied().unwrap_or(0);
        let reqs = requests.entry(broker).or_default();
        if let Some(last) = reqs.last_mut() {
            // A batch larger than max_request_size still goes alone.
            if last.1 + size <= max_request || last.1 == 0 {
                last.1 += size;
                return Some(reqs.len() - 1);
            }
        }
        if in_flight + reqs.len() >= max_in_flight {
            return None;
        }
        reqs.push((Vec::new(), size));
        Some(reqs.len() - 1)
    }

    fn push_batch(
        requests: &mut HashMap<i32, Vec<(Vec<ProducerBatch>, usize)>>,
        broker: i32,
        index: usize,
        b: ProducerBatch,
    ) {
        if let Some(req) = requests.get_mut(&broker).and_then(|r| r.get_mut(index)) {
            req.0.push(b);
        }
    }

    /// Closes an accumulator batch into wire bytes, assigning its sequence.
    fn build(
        &mut self,
        open: OpenBatch,
        now: Instant,
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
                .or_insert_with(|| PartitionState {
                    last_acked_sequence: -1,
                    ..PartitionState::default()
                });
            base_sequence = state.next_sequence;
            state.next_sequence = base_sequence.wrapping_add(records);
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
            }),
            Err(e) => {
                let e = e.with_partition(&*topic, partition);
                completion.complete(Err(e.clone()));
                self.acc.finished(id, reserved);
                self.metrics.record_errors(records as u64);
                if base_sequence >= 0 {
                    self.need_bump = true;
                }
                let _ = now;
                Err(((topic, partition), e))
            }
        }
    }

    fn send_request(&mut self, broker: i32, batches: Vec<ProducerBatch>, now: Instant) {
        let acks = self.cfg.acks;
        let mut topic_data: Vec<TopicProduceData> = Vec::new();
        for b in &batches {
            let pd = PartitionProduceData {
                index: b.partition,
                records: Some(b.data.clone()),
                ..Default::default()
            };
            match topic_data.iter_mut().find(|t| *t.name == *b.topic) {
                Some(t) => t.partition_data.push(pd),
                None => topic_data.push(TopicProduceData {
                    name: b.topic.to_string(),
                    partition_data: vec![pd],
                    ..Default::default()
                }),
            }
        }
        let request = ProduceRequest {
            transactional_id: None,
            acks: acks.as_i16(),
            timeout_ms: i32::try_from(self.cfg.client.request_timeout.as_millis())
                .unwrap_or(i32::MAX),
            topic_data,
            ..Default::default()
        };
        let token = self.next_token;
        self.next_token += 1;
        let size: usize = batches
            .iter()
            .map(|b| b.data.len() + b.topic.len() + 32)
            .sum::<usize>()
            + 128;
        let submitted = self
            .cluster
            .connection(broker, Purpose::Produce)
            .and_then(|conn| {
                conn.submit_sized(
                    &request,
                    None,
                    acks != Acks::None,
                    self.cfg.client.request_timeout,
                    Reply::new(self.done_tx.clone(), token),
                    size,
                )
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
                Self::finish(
                    &self.acc,
                    &self.metrics,
                    b,
                    Ok(BatchAck {
                        base_offset: -1,
                        log_append_time: None,
                    }),
                );
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
            let ack = BatchAck {
                base_offset: p.base_offset,
                log_append_time: Some(p.log_append_time_ms).filter(|t| *t >= 0),
            };
            if code.is_ok() || code == ErrorCode::DUPLICATE_SEQUENCE_NUMBER {
                if b.base_sequence >= 0 {
                    if let Some(s) = self
                        .partitions
                        .get_mut(&(Arc::clone(&b.topic), b.partition))
                    {
                        s.last_acked_sequence = b.base_sequence.wrapping_add(b.records - 1);
                    }
                }
                Self::finish(&self.acc, &self.metrics, b, Ok(ack));
            } else {
                let mut msg = format!("the broker rejected the batch ({} records)", b.records);
                if let Some(m) = p.error_message.as_deref().filter(|m| !m.is_empty()) {
                    msg.push_str(": ");
                    msg.push_str(m);
                }
                self.cluster.note_error(code);
                self.batch_failed(b, Error::broker(code, msg), now);
            }
        }
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
                .map_or(0, |s| s.last_acked_sequence.wrapping_add(1));
            if b.base_sequence == next_expected || code == Some(ErrorCode::UNKNOWN_PRODUCER_ID) {
                // The broker lost our sequence state: bump the epoch and
                // renumber (KIP-360), as the Java client does.
                self.need_bump = true;
            }
        }
        let retriable = e.is_retriable() || (idempotent && sequence_trouble);
        let expired = now.duration_since(b.created) >= self.cfg.delivery_timeout;
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
            let state = self
                .partitions
                .entry(key)
                .or_insert_with(|| PartitionState {
                    last_acked_sequence: -1,
                    ..PartitionState::default()
                });
            // Keep retries in send order (by sequence when idempotent).
            let pos = state
                .retries
                .iter()
                .position(|x| {
                    seq_before(b.base_sequence, x.base_sequence)
                        || (b.base_sequence < 0 && b.id < x.id)
                })
                .unwrap_or(state.retries.len());
            state.retries.insert(pos, b);
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
        b.completion.complete(result);
        acc.finished(b.id, b.reserved);
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

/// `a` comes before `b` in sequence order (both non-negative, wrapping).
fn seq_before(a: i32, b: i32) -> bool {
    a >= 0 && b >= 0 && b.wrapping_sub(a) > 0
}
