//! Transactions seen from the admin side (KIP-664): which transactional
//! ids exist and what state each transaction is in, which producers hold
//! a partition open, and aborting a hanging transaction.

use std::collections::BTreeMap;
use std::time::Duration;

use super::records::LEADER_RETRY;
use super::{check, AdminClient, Answer, TopicPartition, COORDINATOR_RETRY};
use crate::consumer::offsets::by_topic;
use crate::error::{Error, Result};
use crate::group::{find_coordinator_of, CoordinatorKey};
use crate::protocol::messages::describe_producers_request::TopicRequest;
use crate::protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use crate::protocol::messages::{
    DescribeProducersRequest, DescribeTransactionsRequest, ListTransactionsRequest,
    WriteTxnMarkersRequest,
};

/// One transactional id, from [`AdminClient::list_transactions`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionListing {
    /// The transactional id.
    pub transactional_id: String,
    /// Its current producer id.
    pub producer_id: i64,
    /// The coordinator's state name (`Empty`, `Ongoing`, `PrepareCommit`,
    /// `CompleteCommit`, `PrepareAbort`, `CompleteAbort`, ...).
    pub state: String,
    /// The broker coordinating it.
    pub coordinator: i32,
}

/// A transaction's details, from [`AdminClient::describe_transactions`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionDescription {
    /// The transactional id.
    pub transactional_id: String,
    /// The coordinator's state name.
    pub state: String,
    /// `transaction_timeout_ms` of the producer.
    pub timeout_ms: i32,
    /// When the open transaction started (ms since the epoch), -1 if none.
    pub start_time_ms: i64,
    /// Producer id and epoch.
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i16,
    /// The partitions in the open transaction, per topic.
    pub topics: BTreeMap<String, Vec<i32>>,
    /// The broker coordinating it.
    pub coordinator: i32,
}

/// A producer with state on a partition, from
/// [`AdminClient::describe_producers`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerState {
    /// The producer id.
    pub producer_id: i64,
    /// Its epoch.
    pub producer_epoch: i32,
    /// The sequence number of its last record on the partition.
    pub last_sequence: i32,
    /// The timestamp of its last record (ms since the epoch).
    pub last_timestamp_ms: i64,
    /// The epoch of the transaction coordinator that last wrote a marker
    /// for it, -1 if none.
    pub coordinator_epoch: i32,
    /// The first offset of its open transaction on the partition: `Some`
    /// means a transaction is open there (possibly hanging).
    pub current_transaction_start_offset: Option<i64>,
}

/// Which hanging transaction [`AdminClient::abort_transaction`] aborts:
/// the partition it holds open and the producer, as
/// [`AdminClient::describe_producers`] reports them (Java's
/// `AbortTransactionSpec`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbortTransactionSpec {
    /// The partition the transaction holds open.
    pub partition: TopicPartition,
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i16,
    /// The coordinator epoch ([`ProducerState::coordinator_epoch`]).
    pub coordinator_epoch: i32,
}

impl AdminClient {
    /// Every transactional id in the cluster (asking each broker for those
    /// it coordinates). Fails, naming the broker, when a broker cannot
    /// answer: a partial list would look complete.
    pub fn list_transactions(&self) -> Result<Vec<TransactionListing>> {
        let dl = self.deadline(None);
        let brokers: Vec<i32> = self.refresh()?.brokers.keys().copied().collect();
        let per_broker = self.run_items(brokers, &dl, COORDINATOR_RETRY, |pending| {
            Ok(pending
                .iter()
                .map(|id| {
                    let r = self
                        .send_to(
                            *id,
                            &ListTransactionsRequest::default(),
                            dl.attempt_timeout(),
                        )
                        .and_then(|response| {
                            check(
                                response.error_code,
                                None,
                                format_args!("listing the transactions of broker {id}"),
                            )
                            .map(|()| response.transaction_states)
                        })
                        .map_err(|e| e.context(format_args!("broker {id}")));
                    (*id, Answer::from_result(r, COORDINATOR_RETRY))
                })
                .collect())
        })?;
        let mut out = Vec::new();
        for (id, r) in per_broker {
            for t in r? {
                out.push(TransactionListing {
                    transactional_id: t.transactional_id,
                    producer_id: t.producer_id,
                    state: t.transaction_state,
                    coordinator: id,
                });
            }
        }
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        Ok(out)
    }

    /// State, producer and partitions of each transactional id, asked of
    /// its transaction coordinator; per-id results
    /// (`TRANSACTIONAL_ID_NOT_FOUND` for an unknown id).
    pub fn describe_transactions<S: Into<String>>(
        &self,
        transactional_ids: impl IntoIterator<Item = S>,
    ) -> Result<Vec<(String, Result<TransactionDescription>)>> {
        let ids: Vec<String> = transactional_ids.into_iter().map(Into::into).collect();
        let dl = self.deadline(None);
        self.run_items(ids, &dl, COORDINATOR_RETRY, |pending| {
            let mut out = Vec::new();
            let mut by_node: BTreeMap<i32, Vec<String>> = BTreeMap::new();
            for id in pending {
                let found = find_coordinator_of(
                    self.cluster(),
                    CoordinatorKey::Transaction(id),
                    dl.attempt_timeout(),
                );
                match found {
                    Ok(node) => by_node.entry(node).or_default().push(id.clone()),
                    Err(e) => {
                        out.push((id.clone(), Answer::from_result(Err(e), COORDINATOR_RETRY)))
                    }
                }
            }
            for (node, ids) in by_node {
                let request = DescribeTransactionsRequest {
                    transactional_ids: ids.clone(),
                    ..Default::default()
                };
                let states = match self.send_to(node, &request, dl.attempt_timeout()) {
                    Ok(r) => r.transaction_states,
                    Err(e) => {
                        for id in ids {
                            out.push((id, Answer::from_result(Err(e.clone()), COORDINATOR_RETRY)));
                        }
                        continue;
                    }
                };
                for t in states {
                    let id = t.transactional_id.clone();
                    let r = check(
                        t.error_code,
                        None,
                        format_args!("describing transactional id `{id}`"),
                    )
                    .map(|()| TransactionDescription {
                        transactional_id: t.transactional_id,
                        state: t.transaction_state,
                        timeout_ms: t.transaction_timeout_ms,
                        start_time_ms: t.transaction_start_time_ms,
                        producer_id: t.producer_id,
                        producer_epoch: t.producer_epoch,
                        topics: t
                            .topics
                            .into_iter()
                            .map(|d| (d.topic, d.partitions))
                            .collect(),
                        coordinator: node,
                    });
                    out.push((id, Answer::from_result(r, COORDINATOR_RETRY)));
                }
            }
            Ok(out)
        })
    }

    /// The producers with state on each partition (DescribeProducers,
    /// Kafka 2.8+), asked of each partition's leader; per-partition
    /// results whose errors name the partition. A producer whose
    /// [`ProducerState::current_transaction_start_offset`] stays `Some`
    /// long past its transaction timeout holds a hanging transaction
    /// ([`AdminClient::abort_transaction`]). `timeout` (default
    /// `default_api_timeout_ms`) bounds the call, retries included.
    pub fn describe_producers(
        &self,
        partitions: impl IntoIterator<Item = TopicPartition>,
        timeout: Option<Duration>,
    ) -> Result<Vec<(TopicPartition, Result<Vec<ProducerState>>)>> {
        let dl = self.deadline(timeout);
        let order: Vec<TopicPartition> = partitions.into_iter().collect();
        self.run_items(order, &dl, LEADER_RETRY, |pending| {
            let mut out = Vec::new();
            for (leader, parts) in self.by_leader(pending, &dl, &mut out)? {
                let request = DescribeProducersRequest {
                    topics: by_topic(parts.iter().map(|tp| (tp, tp.partition)))
                        .into_iter()
                        .map(|(name, partition_indexes)| TopicRequest {
                            name: name.to_owned(),
                            partition_indexes,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                };
                let response = match self.send_to(leader, &request, dl.attempt_timeout()) {
                    Ok(r) => r,
                    Err(e) => {
                        out.extend(parts.into_iter().map(|tp| {
                            let e = e.clone().with_partition(&*tp.topic, tp.partition);
                            (tp, Answer::from_result(Err(e), LEADER_RETRY))
                        }));
                        continue;
                    }
                };
                for t in response.topics {
                    for p in t.partitions {
                        let tp = TopicPartition::new(t.name.clone(), p.partition_index);
                        let r = check(
                            p.error_code,
                            p.error_message.as_deref(),
                            format_args!("describing the producers of {tp}"),
                        )
                        .map_err(|e| e.with_partition(&*tp.topic, tp.partition))
                        .map(|()| {
                            p.active_producers
                                .into_iter()
                                .map(|s| ProducerState {
                                    producer_id: s.producer_id,
                                    producer_epoch: s.producer_epoch,
                                    last_sequence: s.last_sequence,
                                    last_timestamp_ms: s.last_timestamp,
                                    coordinator_epoch: s.coordinator_epoch,
                                    current_transaction_start_offset: Some(
                                        s.current_txn_start_offset,
                                    )
                                    .filter(|o| *o >= 0),
                                })
                                .collect()
                        });
                        out.push((tp, Answer::from_result(r, LEADER_RETRY)));
                    }
                }
            }
            Ok(out)
        })
    }

    /// Aborts a hanging transaction on one partition (KIP-664): writes an
    /// abort marker for `spec`'s producer through the partition's leader
    /// (WriteTxnMarkers, which needs the ClusterAction permission). Use it
    /// only for a transaction its producer and coordinator lost track of
    /// (one [`AdminClient::list_transactions`] does not show as open):
    /// aborting a live transaction loses its records on that partition.
    /// Errors name the partition (`INVALID_PRODUCER_EPOCH` or
    /// `TRANSACTION_COORDINATOR_FENCED`: the producer or coordinator moved
    /// on, `spec` is stale).
    pub fn abort_transaction(
        &self,
        spec: &AbortTransactionSpec,
        timeout: Option<Duration>,
    ) -> Result<()> {
        let dl = self.deadline(timeout);
        let tp = spec.partition.clone();
        let mut results = self.run_items(vec![tp.clone()], &dl, LEADER_RETRY, |pending| {
            let mut out = Vec::new();
            for (leader, _) in self.by_leader(pending, &dl, &mut out)? {
                let request = WriteTxnMarkersRequest {
                    markers: vec![WritableTxnMarker {
                        producer_id: spec.producer_id,
                        producer_epoch: spec.producer_epoch,
                        transaction_result: false,
                        topics: vec![WritableTxnMarkerTopic {
                            name: tp.topic.to_string(),
                            partition_indexes: vec![tp.partition],
                            ..Default::default()
                        }],
                        coordinator_epoch: spec.coordinator_epoch,
                        ..Default::default()
                    }],
                    ..Default::default()
                };
                let r = self
                    .send_to(leader, &request, dl.long_attempt_timeout())
                    .and_then(|response| {
                        let code = response
                            .markers
                            .iter()
                            .filter(|m| m.producer_id == spec.producer_id)
                            .flat_map(|m| &m.topics)
                            .filter(|t| *t.name == *tp.topic)
                            .flat_map(|t| &t.partitions)
                            .find(|p| p.partition_index == tp.partition)
                            .map(|p| p.error_code)
                            .ok_or_else(|| {
                                Error::protocol(format!(
                                    "the WriteTxnMarkers answer left out {tp} of producer {}",
                                    spec.producer_id
                                ))
                            })?;
                        check(
                            code,
                            None,
                            format_args!(
                                "aborting the transaction of producer {} epoch {}",
                                spec.producer_id, spec.producer_epoch
                            ),
                        )
                    })
                    .map_err(|e| e.with_partition(&*tp.topic, tp.partition));
                out.push((tp.clone(), Answer::from_result(r, LEADER_RETRY)));
            }
            Ok(out)
        })?;
        match results.pop() {
            Some((_, r)) => r,
            None => Err(Error::protocol(format!("no answer for {tp}"))),
        }
    }
}
