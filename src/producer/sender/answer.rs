//! Answer handling: completing a produce request's batches, retrying
//! them (in sequence order), splitting a batch the broker refused as too
//! large, expiring batches past `delivery_timeout_ms`, and the sequence
//! bookkeeping that goes with it.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::{InFlight, ProducerBatch, SenderThread, CONNECT_TOKEN, RUNNING};
use crate::bytes::Bytes;
use crate::error::{Error, ErrorKind, Result};
use crate::net::{decode_response, Completion, Reply};
use crate::producer::accumulator::{Accumulator, OpenBatch};
use crate::producer::config::Acks;
use crate::producer::metrics::Metrics;
use crate::producer::record::{BatchAck, BatchCompletion};
use crate::producer::transaction::Transactions;
use crate::protocol::messages::produce_response::PartitionProduceResponse;
use crate::protocol::messages::{ProduceRequest, ProduceResponse};
use crate::protocol::ErrorCode;
use crate::records::{BatchOptions, Compression, ReadOptions, RecordBatchBuilder, RecordBatches};

/// A produce answer on its way from the connection's reader to the sender.
pub(super) enum Answer {
    /// For the sender to take apart (errors, callbacks, transactions).
    Raw(Completion),
    /// Every batch of the request was acknowledged; the reader completed
    /// those whose `pending` entry is `None` (futures woken, memory freed)
    /// and left the sender its bookkeeping and the others to finish.
    Settled {
        token: u64,
        at: Instant,
        pending: Vec<Option<BatchAck>>,
    },
}

/// What the reader needs of a batch to complete it.
struct QuietBatch {
    topic: Arc<str>,
    partition: i32,
    id: u64,
    reserved: usize,
    records: i32,
    completion: Arc<BatchCompletion>,
}

impl SenderThread {
    /// The reply for a produce request of `batches` sent in `version`.
    ///
    /// It runs on the connection's reader thread: when every batch was
    /// acknowledged it completes them there (no callbacks: those run on
    /// the sender thread, so a batch with one is left to it), then queues
    /// the answer for the sender's bookkeeping and wakes the sender only
    /// if something waits on it: queued records (a partition's next batch
    /// waits for its in-flight one), `eager` work (retries, an epoch bump,
    /// closing) or a batch left to finish. So an answer nobody waits for
    /// costs no sender wake-up, and a waiting future is woken one hop
    /// sooner. Errors, `acks=0`, split batches and transactions take the
    /// sender's path.
    pub(super) fn quiet_reply(&self, token: u64, version: i16, batches: &[ProducerBatch]) -> Reply {
        let tx = self.answers_tx.clone();
        let acc = Arc::clone(&self.acc);
        // A piece of a split batch completes through `complete_piece`.
        let split = batches.iter().any(|b| b.split.is_some());
        if self.cfg.acks == Acks::None || self.txn.is_some() || split {
            return Reply::run(token, move |c| {
                let _ = tx.send(Answer::Raw(c));
                acc.wake();
            });
        }
        let metrics = Arc::clone(&self.metrics);
        let me = self.me.clone();
        let drives = self.cfg.linger.is_zero();
        let eager: Arc<AtomicBool> = Arc::clone(&self.eager);
        let state: Arc<AtomicU8> = Arc::clone(&self.state);
        let quiet: Vec<QuietBatch> = batches
            .iter()
            .map(|b| QuietBatch {
                topic: Arc::clone(&b.topic),
                partition: b.partition,
                id: b.id,
                reserved: b.reserved,
                records: b.records,
                completion: Arc::clone(&b.completion),
            })
            .collect();
        Reply::run(token, move |c| {
            let settled = c
                .result
                .as_ref()
                .ok()
                .and_then(|body| settle(body, version, &quiet, &acc, &metrics));
            let must_wake = match settled {
                Some(pending) => {
                    let left = pending.iter().any(Option::is_some);
                    let _ = tx.send(Answer::Settled {
                        token,
                        at: Instant::now(),
                        pending,
                    });
                    for b in &quiet {
                        b.completion.wake_waiters();
                    }
                    left
                }
                None => {
                    let _ = tx.send(Answer::Raw(c));
                    true
                }
            };
            // Pushed, then look (the sender stores `eager`, then looks).
            std::sync::atomic::fence(Ordering::SeqCst);
            if must_wake
                || eager.load(Ordering::SeqCst)
                || state.load(Ordering::SeqCst) != RUNNING
                || acc.is_closed()
            {
                acc.wake();
            } else if acc.has_queued() {
                // A partition's next batch waited for this answer. With
                // linger_ms 0 it goes now: this thread takes the sender's
                // turn when no one else has it (a wake-up fewer).
                let driven = drives
                    && me
                        .upgrade()
                        .and_then(|core| core.try_lock().map(|mut s| s.drive(Instant::now())))
                        .unwrap_or(false);
                if !driven {
                    acc.wake();
                }
            }
        })
    }

    /// Takes the answers the readers queued, in order.
    pub(super) fn take_answers(&mut self) {
        while let Some(a) = self
            .deferred
            .pop_front()
            .or_else(|| self.answers_rx.try_recv().ok())
        {
            match a {
                Answer::Raw(c) => self.handle_completion(c),
                Answer::Settled { token, at, pending } => self.handle_settled(token, at, pending),
            }
        }
    }

    /// The sender's part of an answer whose batches were all acknowledged.
    pub(super) fn handle_settled(
        &mut self,
        token: u64,
        at: Instant,
        pending: Vec<Option<BatchAck>>,
    ) {
        let Some(req) = self.close_request(token, at) else {
            return;
        };
        for (b, ack) in req.batches.into_iter().zip(pending) {
            self.acked(&b);
            match ack {
                Some(ack) => {
                    Self::finish(&self.acc, &self.metrics, self.txn.as_deref(), b, Ok(ack))
                }
                None => self.acc.recycle(b.data),
            }
        }
    }

    /// Takes request `token` out of flight (answered at `at`): the
    /// broker's and its partitions' in-flight counts drop, its latency is
    /// counted.
    fn close_request(&mut self, token: u64, at: Instant) -> Option<InFlight> {
        let req = self.in_flight.remove(&token)?;
        if let Some(n) = self.broker_in_flight.get_mut(&req.broker) {
            *n = n.saturating_sub(1);
        }
        self.metrics
            .request_latency(at.saturating_duration_since(req.sent_at));
        for b in &req.batches {
            if let Some(s) = self
                .partitions
                .get_mut(&(Arc::clone(&b.topic), b.partition))
            {
                s.in_flight = s.in_flight.saturating_sub(1);
            }
        }
        Some(req)
    }

    /// The broker stored `b`: its partition's last acknowledged sequence
    /// moves on (with idempotence).
    fn acked(&mut self, b: &ProducerBatch) {
        if b.base_sequence < 0 {
            return;
        }
        if let Some(s) = self
            .partitions
            .get_mut(&(Arc::clone(&b.topic), b.partition))
        {
            s.last_acked_sequence = seq_add(b.base_sequence, b.records - 1);
        }
    }

    pub(super) fn handle_completion(&mut self, c: Completion) {
        if c.token & CONNECT_TOKEN != 0 {
            let broker = c.token as u32 as i32;
            self.connecting.remove(&broker);
            if let Err(e) = c.result {
                log::debug!("connecting to broker {broker} failed: {e}");
                self.cluster.request_update();
            }
            return;
        }
        let now = Instant::now();
        let Some(req) = self.close_request(c.token, now) else {
            return;
        };
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
                    self.txn.as_deref(),
                    b,
                    Ok(BatchAck::whole(-1, None)),
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
            let Some(p) = partition_answer(&response, &b.topic, b.partition) else {
                let e = Error::protocol("the produce response left out this partition");
                self.batch_failed(b, e, now);
                continue;
            };
            let code = ErrorCode(p.error_code);
            let ack = ack_of(p);
            if code.is_ok() || code == ErrorCode::DUPLICATE_SEQUENCE_NUMBER {
                self.acked(&b);
                Self::finish(&self.acc, &self.metrics, self.txn.as_deref(), b, Ok(ack));
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
    pub(super) fn queue_retry(&mut self, b: ProducerBatch) {
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
    pub(super) fn batch_failed(&mut self, mut b: ProducerBatch, e: Error, now: Instant) {
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
        Self::finish(&self.acc, &self.metrics, self.txn.as_deref(), b, Err(e));
    }

    /// Fails batches (queued or waiting for a retry) older than
    /// `delivery_timeout_ms`.
    pub(super) fn expire(&mut self, now: Instant) {
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
            Self::finish(&self.acc, &self.metrics, self.txn.as_deref(), b, Err(e));
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
            self.fail_open(open, e);
        }
    }

    /// Fails a batch that never left the accumulator (no sequence yet).
    pub(super) fn fail_open(&self, open: OpenBatch, e: Error) {
        self.metrics
            .record_errors(open.builder.record_count() as u64);
        if let Some(t) = &self.txn {
            t.batch_failed(&e, false);
        }
        open.completion.complete(Err(e));
        self.acc.finished(open.id, open.reserved);
    }

    /// Fails what waits for a retry and what is still in the accumulator
    /// (an aborted transaction, a close timeout); in-flight batches finish
    /// on their own.
    pub(super) fn fail_queued(&mut self, e: &Error) {
        for state in self.partitions.values_mut() {
            for b in state.retries.drain(..) {
                Self::finish(
                    &self.acc,
                    &self.metrics,
                    self.txn.as_deref(),
                    b,
                    Err(e.clone()),
                );
            }
        }
        for open in self.acc.take_all() {
            self.fail_open(open, e.clone());
        }
    }

    pub(super) fn finish(
        acc: &Accumulator,
        metrics: &Metrics,
        txn: Option<&Transactions>,
        b: ProducerBatch,
        result: Result<BatchAck>,
    ) {
        if b.split.is_none() && b.completion.is_done() {
            // Completed already: on the reader thread, as the answer came
            // in while the sender was aborting (see `quiet_reply`).
            acc.recycle(b.data);
            return;
        }
        match &result {
            Ok(_) => metrics.records_acked(b.records as u64),
            Err(e) => {
                metrics.record_errors(b.records as u64);
                if let Some(t) = txn {
                    t.batch_failed(e, b.base_sequence >= 0);
                }
            }
        }
        match b.split {
            None => {
                if b.completion.complete(result) {
                    acc.finished(b.id, b.reserved);
                }
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
        acc.recycle(b.data);
    }

    /// Fails everything still queued, waiting or in flight (close timeout).
    pub(super) fn abort_all(&mut self) {
        let e = Error::closed("the producer was closed before the record was delivered");
        for (_, req) in self.in_flight.drain() {
            for b in req.batches {
                Self::finish(
                    &self.acc,
                    &self.metrics,
                    self.txn.as_deref(),
                    b,
                    Err(e.clone()),
                );
            }
        }
        self.fail_queued(&e);
    }
}

/// On the reader: when the answer acknowledges every batch of `quiet`,
/// completes each one that has no callback and returns, per batch, `None`
/// (done) or the acknowledgement the sender must finish it with. `None`
/// when the answer does not decode or refuses any batch: the sender takes
/// it apart then.
fn settle(
    body: &Bytes,
    version: i16,
    quiet: &[QuietBatch],
    acc: &Accumulator,
    metrics: &Metrics,
) -> Option<Vec<Option<BatchAck>>> {
    let response = decode_response::<ProduceRequest>(body, version).ok()?;
    let mut acks = Vec::with_capacity(quiet.len());
    for b in quiet {
        let p = partition_answer(&response, &b.topic, b.partition)?;
        if !ErrorCode(p.error_code).is_ok() {
            return None;
        }
        acks.push(ack_of(p));
    }
    Some(
        quiet
            .iter()
            .zip(acks)
            .map(|(b, ack)| {
                let counted = || metrics.records_acked(b.records as u64);
                if b.completion.complete_quietly(Ok(ack.clone()), counted) {
                    acc.finished(b.id, b.reserved);
                    None
                } else if b.completion.is_done() {
                    // Finished by the sender as it aborted: nothing left.
                    None
                } else {
                    Some(ack)
                }
            })
            .collect(),
    )
}

/// The answer's entry for `partition` of `topic`.
fn partition_answer<'r>(
    response: &'r ProduceResponse,
    topic: &str,
    partition: i32,
) -> Option<&'r PartitionProduceResponse> {
    response
        .responses
        .iter()
        .find(|t| t.name == topic)?
        .partition_responses
        .iter()
        .find(|p| p.index == partition)
}

/// Where an acknowledged batch was stored.
fn ack_of(p: &PartitionProduceResponse) -> BatchAck {
    BatchAck::whole(
        p.base_offset,
        Some(p.log_append_time_ms).filter(|t| *t >= 0),
    )
}

/// Sequence arithmetic: Kafka sequences run from 0 to `i32::MAX` and wrap
/// to 0 (never negative).
pub(super) fn seq_add(seq: i32, n: i32) -> i32 {
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
    fn sequences_wrap_to_zero_not_negative() {
        assert_eq!(seq_add(0, 5), 5);
        assert_eq!(seq_add(-1, 1), 0);
        assert_eq!(seq_add(i32::MAX - 3, 4), 0);
        assert_eq!(seq_add(i32::MAX - 3, 10), 6);
        assert_eq!(seq_add(i32::MAX, 0), i32::MAX);
        assert_eq!(seq_add(i32::MAX - 1, 5 - 1), 2);
    }
}
