//! Transactions against a fake two-node cluster ([`FakeCluster`]) whose
//! transaction coordinator answers what Tansu cannot be made to:
//! CONCURRENT_TRANSACTIONS, a coordinator that moves (NOT_COORDINATOR), a
//! coordinator that stops answering in the middle of a commit.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use kafka_blocking::producer::{Producer, Record, TransactionState};
use kafka_blocking::protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_blocking::protocol::messages::find_coordinator_response::Coordinator;
use kafka_blocking::protocol::messages::produce_response::{
    PartitionProduceResponse, TopicProduceResponse,
};
use kafka_blocking::protocol::messages::*;
use kafka_blocking::protocol::{ApiKey, ErrorCode, Uuid};
use kafka_blocking::ErrorKind;

use crate::faults::{fake_api_versions, fake_metadata, FakeCluster, FakeReq};

const TOPIC: &str = "fake-txn-topic";

/// What the fake coordinator does.
#[derive(Default)]
struct Knobs {
    /// The node FindCoordinator names (1 or 2).
    coordinator: AtomicI32,
    /// AddPartitionsToTxn answers CONCURRENT_TRANSACTIONS this many times.
    concurrent: AtomicUsize,
    /// The next EndTxn to node 1 answers NOT_COORDINATOR and moves the
    /// coordinator to node 2.
    move_on_end: AtomicBool,
    /// EndTxn gets no answer and its connection stalls past the client's
    /// request timeout (the coordinator hangs, as a dying broker does).
    hang_end: AtomicBool,
    /// AddPartitionsToTxn succeeded (Produce before it is refused).
    added: AtomicBool,
    /// The next Produce is refused (a non-retriable error).
    refuse_produce: AtomicBool,
    /// InitProducerId requests that carried our id and epoch (KIP-360 bumps).
    bumps: AtomicUsize,
    records: AtomicUsize,
    committed: AtomicUsize,
}

fn fake_txn_cluster() -> (FakeCluster, Arc<Knobs>) {
    let knobs = Arc::new(Knobs::default());
    knobs.coordinator.store(1, SeqCst);
    let k = Arc::clone(&knobs);
    let cluster = FakeCluster::start(2, move |req: &FakeReq| {
        let not_coordinator = req.node != k.coordinator.load(SeqCst);
        match req.key {
            ApiKey::API_VERSIONS => fake_api_versions(
                req,
                &[
                    (ApiKey::API_VERSIONS, 3),
                    (ApiKey::METADATA, 12),
                    (ApiKey::PRODUCE, 9),
                    (ApiKey::FIND_COORDINATOR, 4),
                    (ApiKey::INIT_PRODUCER_ID, 4),
                    (ApiKey::ADD_PARTITIONS_TO_TXN, 3),
                    (ApiKey::END_TXN, 3),
                ],
            ),
            ApiKey::METADATA => fake_metadata(req, &[(TOPIC, Uuid([9; 16]), 2, 1)]),
            ApiKey::FIND_COORDINATOR => {
                let node = k.coordinator.load(SeqCst);
                let port = i32::from(req.ports[node as usize - 1]);
                req.answer::<FindCoordinatorRequest>(|r| FindCoordinatorResponse {
                    coordinators: r
                        .coordinator_keys
                        .iter()
                        .map(|key| Coordinator {
                            key: key.clone(),
                            node_id: node,
                            host: "127.0.0.1".into(),
                            port,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })
            }
            ApiKey::INIT_PRODUCER_ID => req.answer::<InitProducerIdRequest>(|r| {
                if r.producer_id == 4242 {
                    k.bumps.fetch_add(1, SeqCst);
                }
                InitProducerIdResponse {
                    error_code: if not_coordinator {
                        ErrorCode::NOT_COORDINATOR.0
                    } else {
                        0
                    },
                    producer_id: 4242,
                    producer_epoch: 3 + k.bumps.load(SeqCst) as i16,
                    ..Default::default()
                }
            }),
            ApiKey::ADD_PARTITIONS_TO_TXN => {
                let code = if not_coordinator {
                    ErrorCode::NOT_COORDINATOR
                } else if k
                    .concurrent
                    .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
                    .is_ok()
                {
                    ErrorCode::CONCURRENT_TRANSACTIONS
                } else {
                    k.added.store(true, SeqCst);
                    ErrorCode::NONE
                };
                req.answer::<AddPartitionsToTxnRequest>(|r| AddPartitionsToTxnResponse {
                    results_by_topic_v3_and_below: r
                        .v3_and_below_topics
                        .iter()
                        .map(|t| AddPartitionsToTxnTopicResult {
                            name: t.name.clone(),
                            results_by_partition: t
                                .partitions
                                .iter()
                                .map(|p| AddPartitionsToTxnPartitionResult {
                                    partition_index: *p,
                                    partition_error_code: code.0,
                                    ..Default::default()
                                })
                                .collect(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })
            }
            ApiKey::PRODUCE => req.answer::<ProduceRequest>(|r| {
                // A partition not added to the transaction is refused.
                let code = if !k.added.load(SeqCst) {
                    ErrorCode::INVALID_TXN_STATE.0
                } else if k.refuse_produce.swap(false, SeqCst) {
                    ErrorCode::INVALID_RECORD.0
                } else {
                    0
                };
                ProduceResponse {
                    responses: r
                        .topic_data
                        .iter()
                        .map(|t| TopicProduceResponse {
                            name: t.name.clone(),
                            partition_responses: t
                                .partition_data
                                .iter()
                                .map(|p| {
                                    k.records.fetch_add(1, SeqCst);
                                    PartitionProduceResponse {
                                        index: p.index,
                                        error_code: code,
                                        base_offset: 0,
                                        log_append_time_ms: -1,
                                        ..Default::default()
                                    }
                                })
                                .collect(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }
            }),
            ApiKey::END_TXN => {
                if k.hang_end.load(SeqCst) {
                    // Longer than request_timeout_ms: the client gives up
                    // on the connection (answers stay in order).
                    std::thread::sleep(Duration::from_millis(1_300));
                    return None;
                }
                let code = if not_coordinator {
                    ErrorCode::NOT_COORDINATOR
                } else if req.node == 1 && k.move_on_end.swap(false, SeqCst) {
                    k.coordinator.store(2, SeqCst);
                    ErrorCode::NOT_COORDINATOR
                } else {
                    k.committed.fetch_add(1, SeqCst);
                    k.added.store(false, SeqCst);
                    ErrorCode::NONE
                };
                req.answer::<EndTxnRequest>(|_| EndTxnResponse {
                    error_code: code.0,
                    ..Default::default()
                })
            }
            _ => None,
        }
    });
    (cluster, knobs)
}

fn producer(cluster: &FakeCluster) -> Producer {
    let p = Producer::builder()
        .bootstrap_servers(cluster.bootstrap())
        .transactional_id("fake-txn")
        .request_timeout_ms(1_000)
        .delivery_timeout_ms(10_000)
        .retry_backoff_ms(10)
        .build()
        .expect("producer");
    p.init_transactions(Duration::from_secs(10))
        .expect("init_transactions");
    p
}

fn send_some(p: &Producer) {
    p.begin_transaction().expect("begin");
    for i in 0..10 {
        let _ = p
            .send(Record::new(TOPIC).partition(i % 2).value("v"))
            .expect("send");
    }
}

#[test]
fn concurrent_transactions_is_retried_until_the_partitions_are_added() {
    let (cluster, knobs) = fake_txn_cluster();
    knobs.concurrent.store(3, SeqCst);
    let p = producer(&cluster);
    send_some(&p);
    p.commit_transaction(Duration::from_secs(10))
        .expect("commit after CONCURRENT_TRANSACTIONS x3");
    // Three refusals, then at least one request that added the partitions
    // (whether both partitions go in one request or two depends on when the
    // sender first sees records waiting for each).
    assert_eq!(knobs.concurrent.load(SeqCst), 0, "every refusal consumed");
    assert!(cluster.count(1, ApiKey::ADD_PARTITIONS_TO_TXN) >= 4);
    assert_eq!(knobs.committed.load(SeqCst), 1);
    assert_eq!(p.metrics().record_errors, 0);
}

#[test]
fn a_coordinator_that_moves_is_found_again() {
    let (cluster, knobs) = fake_txn_cluster();
    let p = producer(&cluster);
    send_some(&p);
    knobs.move_on_end.store(true, SeqCst);
    p.commit_transaction(Duration::from_secs(10))
        .expect("commit on the new coordinator");
    assert_eq!(cluster.count(1, ApiKey::END_TXN), 1, "refused by node 1");
    assert_eq!(cluster.count(2, ApiKey::END_TXN), 1, "done by node 2");
    assert!(cluster.count(1, ApiKey::FIND_COORDINATOR) >= 2);
    // The next transaction goes to node 2 from the start.
    let on_node_1 = cluster.count(1, ApiKey::ADD_PARTITIONS_TO_TXN);
    send_some(&p);
    p.commit_transaction(Duration::from_secs(10))
        .expect("second commit");
    assert_eq!(
        cluster.count(1, ApiKey::ADD_PARTITIONS_TO_TXN),
        on_node_1,
        "nothing of the second transaction asked of node 1"
    );
    assert!(cluster.count(2, ApiKey::ADD_PARTITIONS_TO_TXN) >= 1);
    assert_eq!(knobs.committed.load(SeqCst), 2);
}

#[test]
fn a_commit_cut_off_by_a_dead_coordinator_resumes() {
    let (cluster, knobs) = fake_txn_cluster();
    let p = producer(&cluster);
    send_some(&p);
    knobs.hang_end.store(true, SeqCst);
    let e = p
        .commit_transaction(Duration::from_millis(2_500))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert_eq!(p.transaction_state(), Some(TransactionState::Committing));
    let produced = cluster.count(1, ApiKey::PRODUCE);
    let added = cluster.count(1, ApiKey::ADD_PARTITIONS_TO_TXN);
    // Nothing else is allowed until the commit is finished.
    assert_eq!(
        p.begin_transaction().unwrap_err().kind(),
        ErrorKind::InvalidState
    );
    assert_eq!(
        p.abort_transaction(Duration::from_secs(1))
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidState
    );
    // The coordinator comes back: the same commit resumes with EndTxn only.
    knobs.hang_end.store(false, SeqCst);
    p.commit_transaction(Duration::from_secs(10))
        .expect("the resumed commit");
    assert_eq!(p.transaction_state(), Some(TransactionState::Ready));
    assert_eq!(cluster.count(1, ApiKey::PRODUCE), produced);
    assert_eq!(cluster.count(1, ApiKey::ADD_PARTITIONS_TO_TXN), added);
    assert_eq!(knobs.committed.load(SeqCst), 1);
    assert_eq!(knobs.records.load(SeqCst), 2, "one batch per partition");
}

#[test]
fn a_failed_record_makes_the_commit_abortable_and_the_abort_bumps_the_epoch() {
    let (cluster, knobs) = fake_txn_cluster();
    let p = producer(&cluster);
    knobs.refuse_produce.store(true, SeqCst);
    p.begin_transaction().expect("begin");
    let failed = p
        .send(Record::new(TOPIC).partition(0).value("refused"))
        .expect("send");
    assert_eq!(
        failed
            .get(Duration::from_secs(10))
            .unwrap_err()
            .kafka_code(),
        Some(ErrorCode::INVALID_RECORD)
    );
    assert_eq!(
        p.transaction_state(),
        Some(TransactionState::AbortableError)
    );
    // Sends and the commit report the abortable error with its cause.
    let e = p.send(Record::new(TOPIC).value("more")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TransactionAbortable, "{e}");
    let e = p.commit_transaction(Duration::from_secs(5)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TransactionAbortable, "{e}");
    assert_eq!(e.kafka_code(), Some(ErrorCode::INVALID_RECORD), "{e}");
    assert_eq!(knobs.committed.load(SeqCst), 0, "no EndTxn(commit) sent");
    p.abort_transaction(Duration::from_secs(10)).expect("abort");
    assert_eq!(
        knobs.bumps.load(SeqCst),
        1,
        "the failed batch had a sequence: the abort bumps the epoch"
    );
    // The producer goes on with the next transaction.
    send_some(&p);
    p.commit_transaction(Duration::from_secs(10))
        .expect("the next transaction commits");
}

/// The admin client lists transactional ids from every broker and
/// describes each at its own coordinator (Tansu has neither API).
#[test]
fn the_admin_client_lists_and_describes_transactions() {
    use kafka_blocking::admin::AdminClient;
    use kafka_blocking::protocol::messages::describe_transactions_response::{
        TopicData, TransactionState as Described,
    };
    use kafka_blocking::protocol::messages::list_transactions_response::TransactionState as Listed;

    // Transactional id "a" lives on node 1, "b" on node 2.
    let cluster = FakeCluster::start(2, |req: &FakeReq| match req.key {
        ApiKey::API_VERSIONS => fake_api_versions(
            req,
            &[
                (ApiKey::API_VERSIONS, 3),
                (ApiKey::METADATA, 12),
                (ApiKey::FIND_COORDINATOR, 4),
                (ApiKey::LIST_TRANSACTIONS, 0),
                (ApiKey::DESCRIBE_TRANSACTIONS, 0),
            ],
        ),
        ApiKey::METADATA => fake_metadata(req, &[]),
        ApiKey::FIND_COORDINATOR => {
            req.answer::<FindCoordinatorRequest>(|r| FindCoordinatorResponse {
                coordinators: r
                    .coordinator_keys
                    .iter()
                    .map(|key| {
                        let node = if key == "b" { 2 } else { 1 };
                        Coordinator {
                            key: key.clone(),
                            node_id: node,
                            host: "127.0.0.1".into(),
                            port: i32::from(req.ports[node as usize - 1]),
                            ..Default::default()
                        }
                    })
                    .collect(),
                ..Default::default()
            })
        }
        ApiKey::LIST_TRANSACTIONS => {
            let id = if req.node == 1 { "a" } else { "b" };
            req.answer::<ListTransactionsRequest>(|_| ListTransactionsResponse {
                transaction_states: vec![Listed {
                    transactional_id: id.into(),
                    producer_id: i64::from(req.node) * 100,
                    transaction_state: "Ongoing".into(),
                    ..Default::default()
                }],
                ..Default::default()
            })
        }
        ApiKey::DESCRIBE_TRANSACTIONS => {
            let node = req.node;
            req.answer::<DescribeTransactionsRequest>(|r| DescribeTransactionsResponse {
                transaction_states: r
                    .transactional_ids
                    .iter()
                    .map(|id| {
                        let mine = (id == "a" && node == 1) || (id == "b" && node == 2);
                        Described {
                            error_code: if mine {
                                0
                            } else {
                                ErrorCode::TRANSACTIONAL_ID_NOT_FOUND.0
                            },
                            transactional_id: id.clone(),
                            transaction_state: "Ongoing".into(),
                            transaction_timeout_ms: 60_000,
                            transaction_start_time_ms: 1_000,
                            producer_id: i64::from(node) * 100,
                            producer_epoch: 2,
                            topics: vec![TopicData {
                                topic: "t".into(),
                                partitions: vec![0, 3],
                                ..Default::default()
                            }],
                            ..Default::default()
                        }
                    })
                    .collect(),
                ..Default::default()
            })
        }
        _ => None,
    });
    let admin = AdminClient::builder()
        .bootstrap_servers(cluster.bootstrap())
        .build()
        .expect("admin");
    let listed = admin.list_transactions().expect("list_transactions");
    let ids: Vec<(&str, i64, i32)> = listed
        .iter()
        .map(|t| (t.transactional_id.as_str(), t.producer_id, t.coordinator))
        .collect();
    assert_eq!(ids, [("a", 100, 1), ("b", 200, 2)]);

    let described = admin
        .describe_transactions(["b", "a"])
        .expect("describe_transactions");
    assert_eq!(described.len(), 2);
    assert_eq!(described[0].0, "b");
    let b = described[0].1.as_ref().expect("b");
    assert_eq!(
        (b.coordinator, b.producer_id, b.producer_epoch),
        (2, 200, 2)
    );
    assert_eq!(b.topics.get("t"), Some(&vec![0, 3]));
    assert_eq!(described[1].1.as_ref().expect("a").coordinator, 1);
    assert_eq!(cluster.count(2, ApiKey::DESCRIBE_TRANSACTIONS), 1);
}
