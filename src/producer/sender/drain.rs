//! Draining and grouping: which batches go now (retries first, then the
//! accumulator's ready batches), which broker request each joins, closing
//! a batch into wire bytes with its sequence, and submitting the request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::answer::seq_add;
use super::{InFlight, ProducerBatch, SenderThread, CONNECT_TOKEN};
use crate::cluster::Purpose;
use crate::error::{Error, ErrorKind};
use crate::net::{Completion, Reply};
use crate::producer::accumulator::OpenBatch;
use crate::producer::config::Acks;
use crate::producer::transaction::Transactions;
use crate::producer::wire::{produce_frame, PartitionBatch};
use crate::protocol::messages::ProduceRequest;
use crate::protocol::{ApiKey, Message, Request};
use crate::records::BatchOptions;

impl SenderThread {
    /// Sends whatever is ready.
    pub(super) fn send_ready(&mut self, now: Instant) -> Sent {
        if !self.ensure_producer_id(now) {
            // Still tell the caller when to look again.
            return Sent {
                next_linger: self.acc.drain(now, |_, _, _| false).1,
                stays: true,
            };
        }
        let txn = self.txn.clone();
        if let Some(e) = txn.as_ref().and_then(|t| t.undrained_error()) {
            // Aborting, or the transaction cannot commit: what has not
            // been sent fails now (in-flight batches finish on their own).
            self.fail_queued(&e);
            return Sent {
                next_linger: None,
                stays: true,
            };
        }
        if let Some(t) = &txn {
            // Partitions with records waiting (lingering ones too) join the
            // transaction now, so AddPartitionsToTxn overlaps linger_ms
            // and the caller's sends (the Java client adds at send time).
            let new: Vec<(Arc<str>, i32)> = {
                let added = t.lock();
                self.acc
                    .queued_partitions()
                    .into_iter()
                    .filter(|k| !added.partitions.contains(k))
                    .collect()
            };
            if !new.is_empty() {
                if let Err(e) = t.add_partitions(&new, self.cfg.client.request_timeout) {
                    log::warn!("AddPartitionsToTxn failed: {e}");
                }
            }
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
        // The transaction's lock is held over the drain, so it cannot end
        // (and its partition set be cleared) between the look and the take.
        let txn_guard = txn.as_ref().map(|t| t.lock());
        // The producer id or epoch changed since this turn followed it (an
        // EndTxn of protocol v2 gives a new epoch, an abort may bump it):
        // the new transaction's batches wait for the next turn, which
        // stamps them with the new one.
        let stale = txn_guard
            .as_ref()
            .is_some_and(|g| g.producer_id() != self.pid);
        let added = txn_guard.as_ref().map(|g| &g.partitions);
        let mut new_in_txn: Vec<(Arc<str>, i32)> = Vec::new();
        // Whether a batch stays for a reason other than an answer still to
        // come (whose arrival looks again: `quiet_reply`, or a completion).
        let mut stays = false;
        let (drained, next_linger) = self.acc.drain(now, |topic, p, size| {
            if stale {
                stays = true;
                return false;
            }
            if let Some(added) = added {
                // A partition's first batch of a transaction waits for
                // AddPartitionsToTxn (one request per drain).
                if !added.contains(&(Arc::clone(topic), p)) {
                    if !new_in_txn.iter().any(|(t, q)| *q == p && t == topic) {
                        new_in_txn.push((Arc::clone(topic), p));
                    }
                    stays = true;
                    return false;
                }
            }
            let Some(leader) = snap.leader(topic, p) else {
                unknown_leader = true;
                stays = true;
                return false;
            };
            if !ready_brokers.get(&leader).copied().unwrap_or(false) {
                stays = true;
                return false;
            }
            let key = (Arc::clone(topic), p);
            let state = partitions.entry(key.clone()).or_default();
            if !state.retries.is_empty() {
                stays = true;
                return false;
            }
            if state.in_flight >= per_partition {
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
        drop(txn_guard);
        if unknown_leader {
            self.cluster.request_update();
        }
        let mut next_linger = if stale { Some(now) } else { next_linger };
        if let (Some(t), false) = (&txn, new_in_txn.is_empty()) {
            match t.add_partitions(&new_in_txn, self.cfg.client.request_timeout) {
                // Drain them on the next turn of the loop, at once.
                Ok(()) => next_linger = Some(now),
                Err(e) => log::warn!("AddPartitionsToTxn failed: {e}"),
            }
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
        Sent { next_linger, stays }
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
            // Marks the batch as part of the open transaction: consumers
            // with read_committed hold it back until its marker.
            options.transactional = self.txn.is_some();
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
                // Record batches v2 need Produce v3 or newer (Kafka 0.11+);
                // a transaction of protocol v1 stays below v12 (KIP-890).
                let max = self
                    .txn
                    .as_deref()
                    .map_or(i16::MAX, Transactions::produce_max_version)
                    .min(ProduceRequest::MAX_VERSION);
                let version = match conn.known_versions() {
                    Some(v) => v.pick(ApiKey::PRODUCE, (3, max))?,
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
                    self.txn.as_deref().map(Transactions::id),
                    acks.as_i16(),
                    timeout_ms,
                    &parts,
                )?;
                conn.submit_parts(
                    first,
                    rest,
                    (acks != Acks::None).then(|| ProduceRequest::response_header_version(version)),
                    self.cfg.client.request_timeout,
                    self.quiet_reply(token, version, &batches),
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
                let failed = Completion {
                    token,
                    result: Err(e),
                };
                if self.driving {
                    // Retries and failures are the sender thread's.
                    let _ = self.done_tx.send(failed);
                } else {
                    self.handle_completion(failed);
                }
            }
        }
    }
}

/// What one `send_ready` left behind.
pub(super) struct Sent {
    /// The next linger deadline of a batch left in the accumulator.
    pub(super) next_linger: Option<Instant>,
    /// A batch stays for a reason no answer will settle (unknown leader,
    /// connecting, retries, a transaction's step): the sender thread must
    /// look again. A batch waiting only for its partition's answer does
    /// not count: that answer's arrival looks again.
    pub(super) stays: bool,
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
}
