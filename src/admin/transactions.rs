//! Transactions seen from the admin side (KIP-664): which transactional
//! ids exist and what state each transaction is in, to find a hanging one.

use std::collections::BTreeMap;

use super::{check, AdminClient, Answer, COORDINATOR_RETRY};
use crate::error::Result;
use crate::group::{find_coordinator_of, CoordinatorKey};
use crate::protocol::messages::{DescribeTransactionsRequest, ListTransactionsRequest};

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
}
