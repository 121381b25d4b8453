//! Transactions against a fake two-node cluster ([`FakeCluster`]) whose
//! transaction coordinator answers what Tansu cannot be made to:
//! CONCURRENT_TRANSACTIONS, a coordinator that moves (NOT_COORDINATOR), a
//! coordinator that stops answering in the middle of a commit; and a
//! Kafka 4.0 that offers transaction protocol v2 (KIP-890 part 2) or does
//! not (`transaction.version` not finalized), which Tansu cannot be either.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
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

/// Which broker the fake plays.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Broker {
    /// A pre-4.0 broker (Produce v9, EndTxn v3): protocol v1.
    Old,
    /// Kafka 4.0 that offers the v2 requests but has not finalized
    /// `transaction.version` 2: the client must stay on protocol v1 and
    /// below the versions that mean v2.
    Kafka4Tv1,
    /// Kafka 4.0 with `transaction.version` 2 finalized: protocol v2.
    Kafka4Tv2,
}

/// What one Produce request carried for one partition.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    version: i16,
    transactional_id: Option<String>,
    producer_id: i64,
    epoch: i16,
    base_sequence: i32,
}

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
    /// The producer epoch the coordinator is at.
    epoch: AtomicI32,
    /// A Kafka 4.0 fake finalizes `transaction.version` 2 from now on
    /// (seen by new connections).
    finalize_tv2: AtomicBool,
    records: AtomicUsize,
    committed: AtomicUsize,
    /// Every partition's batch header as Produce carried it.
    produced: Mutex<Vec<Seen>>,
    /// The versions of the EndTxn and TxnOffsetCommit requests received.
    end_versions: Mutex<Vec<i16>>,
    offset_commit_versions: Mutex<Vec<i16>>,
}

fn fake_txn_cluster() -> (FakeCluster, Arc<Knobs>) {
    fake_txn_cluster_as(Broker::Old)
}

/// The versions of the transaction protocol's APIs a Kafka 4.0 broker
/// offers, and the ones a pre-4.0 broker does.
fn offered(broker: Broker) -> Vec<(ApiKey, i16)> {
    let mut apis = vec![
        (ApiKey::API_VERSIONS, 3),
        (ApiKey::METADATA, 12),
        (ApiKey::FIND_COORDINATOR, 4),
    ];
    if broker == Broker::Old {
        apis.extend([
            (ApiKey::PRODUCE, 9),
            (ApiKey::INIT_PRODUCER_ID, 4),
            (ApiKey::ADD_PARTITIONS_TO_TXN, 3),
            (ApiKey::END_TXN, 3),
        ]);
    } else {
        apis.extend([
            (ApiKey::PRODUCE, 12),
            (ApiKey::INIT_PRODUCER_ID, 5),
            (ApiKey::ADD_PARTITIONS_TO_TXN, 5),
            (ApiKey::ADD_OFFSETS_TO_TXN, 4),
            (ApiKey::END_TXN, 5),
            (ApiKey::TXN_OFFSET_COMMIT, 5),
        ]);
    }
    apis
}

/// The header fields of a record batch (v2) the client wrote.
fn batch_header(records: &[u8]) -> (i64, i16, i32) {
    let at = |range: std::ops::Range<usize>| records.get(range).expect("a whole batch header");
    (
        i64::from_be_bytes(at(43..51).try_into().expect("8 bytes")),
        i16::from_be_bytes(at(51..53).try_into().expect("2 bytes")),
        i32::from_be_bytes(at(53..57).try_into().expect("4 bytes")),
    )
}

fn fake_txn_cluster_as(broker: Broker) -> (FakeCluster, Arc<Knobs>) {
    let knobs = Arc::new(Knobs::default());
    knobs.coordinator.store(1, SeqCst);
    knobs.epoch.store(3, SeqCst);
    let k = Arc::clone(&knobs);
    let cluster = FakeCluster::start(2, move |req: &FakeReq| {
        let not_coordinator = req.node != k.coordinator.load(SeqCst);
        let tv2 = broker == Broker::Kafka4Tv2
            || (broker == Broker::Kafka4Tv1 && k.finalize_tv2.load(SeqCst));
        match req.key {
            ApiKey::API_VERSIONS if tv2 => {
                use kafka_blocking::protocol::messages::api_versions_response::{
                    ApiVersion, FinalizedFeatureKey,
                };
                req.answer::<ApiVersionsRequest>(|_| ApiVersionsResponse {
                    api_keys: offered(Broker::Kafka4Tv2)
                        .iter()
                        .map(|(k, max)| ApiVersion {
                            api_key: k.0,
                            min_version: 0,
                            max_version: *max,
                            ..Default::default()
                        })
                        .collect(),
                    finalized_features_epoch: 7,
                    finalized_features: vec![FinalizedFeatureKey {
                        name: "transaction.version".into(),
                        max_version_level: 2,
                        min_version_level: 2,
                        ..Default::default()
                    }],
                    ..Default::default()
                })
            }
            ApiKey::API_VERSIONS => fake_api_versions(req, &offered(broker)),
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
                if r.producer_id == 4242 && !not_coordinator {
                    k.bumps.fetch_add(1, SeqCst);
                    k.epoch.fetch_add(1, SeqCst);
                }
                InitProducerIdResponse {
                    error_code: if not_coordinator {
                        ErrorCode::NOT_COORDINATOR.0
                    } else {
                        0
                    },
                    producer_id: 4242,
                    producer_epoch: k.epoch.load(SeqCst) as i16,
                    ..Default::default()
                }
            }),
            ApiKey::ADD_OFFSETS_TO_TXN => {
                req.answer::<AddOffsetsToTxnRequest>(|_| AddOffsetsToTxnResponse::default())
            }
            ApiKey::TXN_OFFSET_COMMIT => {
                use kafka_blocking::protocol::messages::txn_offset_commit_response::{
                    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
                };
                k.offset_commit_versions
                    .lock()
                    .expect("lock")
                    .push(req.version);
                req.answer::<TxnOffsetCommitRequest>(|r| TxnOffsetCommitResponse {
                    topics: r
                        .topics
                        .iter()
                        .map(|t| TxnOffsetCommitResponseTopic {
                            name: t.name.clone(),
                            partitions: t
                                .partitions
                                .iter()
                                .map(|p| TxnOffsetCommitResponsePartition {
                                    partition_index: p.partition_index,
                                    error_code: 0,
                                    ..Default::default()
                                })
                                .collect(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })
            }
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
                for p in r.topic_data.iter().flat_map(|t| &t.partition_data) {
                    let (producer_id, epoch, base_sequence) =
                        batch_header(p.records.as_deref().unwrap_or_default());
                    k.produced.lock().expect("lock").push(Seen {
                        version: req.version,
                        transactional_id: r.transactional_id.clone(),
                        producer_id,
                        epoch,
                        base_sequence,
                    });
                }
                // Protocol v2: a transactional Produce v12+ adds its
                // partitions to the transaction.
                if tv2 && req.version >= 12 {
                    k.added.store(true, SeqCst);
                }
                // Kafka refuses transactional batches without the id; a
                // partition not added to the transaction is refused.
                let code = if r.transactional_id.as_deref() != Some("fake-txn") {
                    ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED.0
                } else if !k.added.load(SeqCst) {
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
                k.end_versions.lock().expect("lock").push(req.version);
                let code = if not_coordinator {
                    ErrorCode::NOT_COORDINATOR
                } else if req.node == 1 && k.move_on_end.swap(false, SeqCst) {
                    k.coordinator.store(2, SeqCst);
                    ErrorCode::NOT_COORDINATOR
                } else {
                    k.added.store(false, SeqCst);
                    ErrorCode::NONE
                };
                req.answer::<EndTxnRequest>(|r| {
                    if code.is_ok() && r.committed {
                        k.committed.fetch_add(1, SeqCst);
                    }
                    // EndTxn v5 (protocol v2) bumps the epoch and says so.
                    let (producer_id, producer_epoch) = if code.is_ok() && req.version >= 5 {
                        (4242, k.epoch.fetch_add(1, SeqCst) as i16 + 1)
                    } else {
                        (-1, -1)
                    };
                    EndTxnResponse {
                        error_code: code.0,
                        producer_id,
                        producer_epoch,
                        ..Default::default()
                    }
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

/// The batches Produce carried since `from` (an index into `produced`).
fn produced_since(knobs: &Knobs, from: usize) -> Vec<Seen> {
    knobs.produced.lock().expect("lock")[from..].to_vec()
}

fn send_offsets(p: &Producer) {
    use kafka_blocking::consumer::{OffsetAndMetadata, TopicPartition};
    use kafka_blocking::producer::ConsumerGroupMetadata;
    p.send_offsets_to_transaction(
        [(TopicPartition::new("input", 0), OffsetAndMetadata::new(17))],
        &ConsumerGroupMetadata::new("fake-group"),
        Duration::from_secs(10),
    )
    .expect("send_offsets_to_transaction");
}

/// Kafka 4.0 with `transaction.version` 2: no AddPartitionsToTxn or
/// AddOffsetsToTxn (Produce v12 and TxnOffsetCommit v5 add implicitly),
/// and every EndTxn (v5) bumps the epoch: the next transaction's batches
/// carry the epoch from its answer, from sequence 0, and an abort needs
/// no InitProducerId to bump it.
#[test]
fn protocol_v2_adds_implicitly_and_takes_each_epoch_from_end_txn() {
    let (cluster, knobs) = fake_txn_cluster_as(Broker::Kafka4Tv2);
    let p = producer(&cluster);
    for round in 0..2i16 {
        let from = knobs.produced.lock().expect("lock").len();
        send_some(&p);
        send_offsets(&p);
        p.commit_transaction(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("commit {round}: {e}"));
        let seen = produced_since(&knobs, from);
        assert!(!seen.is_empty(), "transaction {round} produced nothing");
        for b in &seen {
            assert!(b.version >= 12, "transaction {round}: {b:?}");
            assert_eq!(b.transactional_id.as_deref(), Some("fake-txn"), "{b:?}");
            assert_eq!(
                (b.producer_id, b.epoch),
                (4242, 3 + round),
                "transaction {round}: the epoch from InitProducerId, then from EndTxn: {b:?}"
            );
        }
        // The partitions start the new epoch at sequence 0 (without the
        // reset the second transaction's would start at 5).
        assert_eq!(
            seen.iter().map(|b| b.base_sequence).min(),
            Some(0),
            "transaction {round}: {seen:?}"
        );
    }
    assert_eq!(cluster.count(1, ApiKey::ADD_PARTITIONS_TO_TXN), 0);
    assert_eq!(cluster.count(2, ApiKey::ADD_PARTITIONS_TO_TXN), 0);
    assert_eq!(cluster.count(1, ApiKey::ADD_OFFSETS_TO_TXN), 0);
    assert_eq!(*knobs.end_versions.lock().expect("lock"), [5, 5]);
    assert_eq!(*knobs.offset_commit_versions.lock().expect("lock"), [5, 5]);
    assert_eq!(knobs.committed.load(SeqCst), 2);

    // A refused record: the abort's EndTxn bumps the epoch, no
    // InitProducerId needed, and the next transaction uses it.
    knobs.refuse_produce.store(true, SeqCst);
    p.begin_transaction().expect("begin");
    let failed = p
        .send(Record::new(TOPIC).partition(0).value("refused"))
        .expect("send");
    assert!(failed.get(Duration::from_secs(10)).is_err());
    p.abort_transaction(Duration::from_secs(10)).expect("abort");
    assert_eq!(knobs.bumps.load(SeqCst), 0, "no InitProducerId bump");
    assert_eq!(*knobs.end_versions.lock().expect("lock"), [5, 5, 5]);
    let from = knobs.produced.lock().expect("lock").len();
    send_some(&p);
    p.commit_transaction(Duration::from_secs(10))
        .expect("the transaction after the abort");
    let seen = produced_since(&knobs, from);
    assert!(!seen.is_empty());
    for b in &seen {
        assert_eq!((b.epoch, b.version >= 12), (6, true), "{b:?}");
    }
    assert_eq!(cluster.count(1, ApiKey::ADD_PARTITIONS_TO_TXN), 0);
}

/// Kafka 4.0 without `transaction.version` 2 finalized offers Produce v12
/// and EndTxn v5 all the same; the client speaks protocol v1 and stays
/// below them (a v12 transactional Produce or a v5 EndTxn would be read as
/// protocol v2).
#[test]
fn kafka_4_without_the_feature_gets_protocol_v1_below_the_v2_versions() {
    let (cluster, knobs) = fake_txn_cluster_as(Broker::Kafka4Tv1);
    let p = producer(&cluster);
    for round in 0..2 {
        send_some(&p);
        send_offsets(&p);
        p.commit_transaction(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("commit {round}: {e}"));
    }
    let seen = produced_since(&knobs, 0);
    assert!(!seen.is_empty());
    for b in &seen {
        assert_eq!(
            (b.version, b.epoch, b.transactional_id.as_deref()),
            (11, 3, Some("fake-txn")),
            "one epoch for both transactions, Produce v11: {b:?}"
        );
    }
    assert!(cluster.count(1, ApiKey::ADD_PARTITIONS_TO_TXN) >= 2);
    assert_eq!(cluster.count(1, ApiKey::ADD_OFFSETS_TO_TXN), 2);
    assert_eq!(*knobs.end_versions.lock().expect("lock"), [4, 4]);
    assert_eq!(*knobs.offset_commit_versions.lock().expect("lock"), [4, 4]);
    assert_eq!(knobs.committed.load(SeqCst), 2);
}

/// A cluster that finalizes `transaction.version` 2 while the producer
/// runs: at the end of the first transaction that sees it (on a new
/// connection to the coordinator) the producer bumps its epoch with
/// InitProducerId and speaks protocol v2 from the next one, as the Java
/// 4.0 client does.
#[test]
fn a_feature_upgrade_switches_to_protocol_v2_at_a_transaction_end() {
    let (cluster, knobs) = fake_txn_cluster_as(Broker::Kafka4Tv1);
    let p = producer(&cluster);
    send_some(&p);
    p.commit_transaction(Duration::from_secs(10))
        .expect("a commit in protocol v1");
    let added = cluster.count(1, ApiKey::ADD_PARTITIONS_TO_TXN);
    assert!(added >= 1);
    // The upgrade; the client sees it when its coordinator connection is
    // replaced (here: EndTxn hangs past the request timeout, and the
    // resumed commit connects again).
    knobs.finalize_tv2.store(true, SeqCst);
    send_some(&p);
    knobs.hang_end.store(true, SeqCst);
    let e = p
        .commit_transaction(Duration::from_millis(2_500))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    knobs.hang_end.store(false, SeqCst);
    p.commit_transaction(Duration::from_secs(10))
        .expect("the resumed commit, still protocol v1");
    assert_eq!(knobs.bumps.load(SeqCst), 1, "the epoch bump before v2");
    assert_eq!(knobs.epoch.load(SeqCst), 4);
    let from = knobs.produced.lock().expect("lock").len();
    let ends = knobs.end_versions.lock().expect("lock").len();
    // The second (v1) transaction added its partitions (in one request or
    // two: its records may reach the sender over two turns).
    let added_v1 = cluster.count(1, ApiKey::ADD_PARTITIONS_TO_TXN);
    assert!(added_v1 > added);
    send_some(&p);
    p.commit_transaction(Duration::from_secs(10))
        .expect("a commit in protocol v2");
    let seen = produced_since(&knobs, from);
    assert!(!seen.is_empty());
    for b in &seen {
        assert_eq!((b.version, b.epoch), (12, 4), "{b:?}");
    }
    assert_eq!(
        cluster.count(1, ApiKey::ADD_PARTITIONS_TO_TXN),
        added_v1,
        "the v2 transaction adds no partitions"
    );
    assert_eq!(knobs.end_versions.lock().expect("lock")[ends..], [5]);
    assert_eq!(knobs.committed.load(SeqCst), 3);
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

/// `describe_producers` asks each partition's leader (topic `p1` leads on
/// node 1, `p2` on node 2) for just its partitions and answers per
/// partition, errors naming the partition; `abort_transaction` writes an
/// abort marker with the spec's producer, epoch and coordinator epoch to
/// the leader, retries a moved leader, and names the partition in a
/// broker's refusal.
#[test]
fn the_admin_client_describes_producers_and_aborts_hanging_transactions() {
    use std::sync::Mutex;

    use kafka_blocking::admin::{AbortTransactionSpec, AdminClient, TopicPartition};
    use kafka_blocking::protocol::messages::describe_producers_response::{
        PartitionResponse, ProducerState as Active, TopicResponse,
    };
    use kafka_blocking::protocol::messages::write_txn_markers_response::{
        WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
    };

    // (node, topic, partitions) of each DescribeProducers; each marker
    // written as (node, producer id, epoch, commit?, coordinator epoch,
    // topic, partitions).
    type Marker = (i32, i64, i16, bool, i32, String, Vec<i32>);
    type Described = (i32, String, Vec<i32>);
    let described: Arc<Mutex<Vec<Described>>> = Arc::default();
    let markers: Arc<Mutex<Vec<Marker>>> = Arc::default();
    let moved_once = Arc::new(AtomicBool::new(false));
    let (d, m, moved) = (
        Arc::clone(&described),
        Arc::clone(&markers),
        Arc::clone(&moved_once),
    );
    let cluster = FakeCluster::start(2, move |req: &FakeReq| match req.key {
        ApiKey::API_VERSIONS => fake_api_versions(
            req,
            &[
                (ApiKey::API_VERSIONS, 3),
                (ApiKey::METADATA, 12),
                (ApiKey::DESCRIBE_PRODUCERS, 0),
                (ApiKey::WRITE_TXN_MARKERS, 1),
            ],
        ),
        ApiKey::METADATA => fake_metadata(
            req,
            &[("p1", Uuid([1; 16]), 2, 1), ("p2", Uuid([2; 16]), 1, 2)],
        ),
        ApiKey::DESCRIBE_PRODUCERS => {
            let node = req.node;
            req.answer::<DescribeProducersRequest>(|r| {
                let mut seen = d.lock().expect("lock");
                DescribeProducersResponse {
                    topics: r
                        .topics
                        .iter()
                        .map(|t| {
                            seen.push((node, t.name.clone(), t.partition_indexes.clone()));
                            TopicResponse {
                                name: t.name.clone(),
                                partitions: t
                                    .partition_indexes
                                    .iter()
                                    .map(|&p| match (t.name.as_str(), p) {
                                        ("p1", 1) => PartitionResponse {
                                            partition_index: p,
                                            error_code: ErrorCode::TOPIC_AUTHORIZATION_FAILED.0,
                                            error_message: Some("not yours".into()),
                                            ..Default::default()
                                        },
                                        _ => PartitionResponse {
                                            partition_index: p,
                                            active_producers: vec![Active {
                                                producer_id: 7 + i64::from(node),
                                                producer_epoch: 3,
                                                last_sequence: 41,
                                                last_timestamp: 1_000,
                                                coordinator_epoch: 5,
                                                // Node 1's producer holds an open transaction.
                                                current_txn_start_offset: if node == 1 {
                                                    100
                                                } else {
                                                    -1
                                                },
                                                ..Default::default()
                                            }],
                                            ..Default::default()
                                        },
                                    })
                                    .collect(),
                                ..Default::default()
                            }
                        })
                        .collect(),
                    ..Default::default()
                }
            })
        }
        ApiKey::WRITE_TXN_MARKERS => {
            let node = req.node;
            req.answer::<WriteTxnMarkersRequest>(|r| {
                let mut seen = m.lock().expect("lock");
                WriteTxnMarkersResponse {
                    markers: r
                        .markers
                        .iter()
                        .map(|w| WritableTxnMarkerResult {
                            producer_id: w.producer_id,
                            topics: w
                                .topics
                                .iter()
                                .map(|t| {
                                    seen.push((
                                        node,
                                        w.producer_id,
                                        w.producer_epoch,
                                        w.transaction_result,
                                        w.coordinator_epoch,
                                        t.name.clone(),
                                        t.partition_indexes.clone(),
                                    ));
                                    // Node 1 first says its leadership moved,
                                    // then refuses the stale epoch 2.
                                    let code = if node != 1 {
                                        ErrorCode::NONE
                                    } else if !moved.swap(true, SeqCst) {
                                        ErrorCode::NOT_LEADER_OR_FOLLOWER
                                    } else if w.producer_epoch == 2 {
                                        ErrorCode::INVALID_PRODUCER_EPOCH
                                    } else {
                                        ErrorCode::NONE
                                    };
                                    WritableTxnMarkerTopicResult {
                                        name: t.name.clone(),
                                        partitions: t
                                            .partition_indexes
                                            .iter()
                                            .map(|&p| WritableTxnMarkerPartitionResult {
                                                partition_index: p,
                                                error_code: code.0,
                                                ..Default::default()
                                            })
                                            .collect(),
                                        ..Default::default()
                                    }
                                })
                                .collect(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }
            })
        }
        _ => None,
    });
    let admin = AdminClient::builder()
        .bootstrap_servers(cluster.bootstrap())
        .build()
        .expect("admin");

    let asked = [
        TopicPartition::new("p2", 0),
        TopicPartition::new("p1", 1),
        TopicPartition::new("p1", 0),
        TopicPartition::new("p1", 9),
    ];
    let states = admin
        .describe_producers(asked.clone(), Some(Duration::from_secs(10)))
        .expect("describe_producers");
    let order: Vec<&TopicPartition> = states.iter().map(|(tp, _)| tp).collect();
    assert_eq!(
        order,
        asked.iter().collect::<Vec<_>>(),
        "in the asked order"
    );
    let p2 = states[0].1.as_ref().expect("p2-0");
    assert_eq!(p2.len(), 1);
    assert_eq!(
        (p2[0].producer_id, p2[0].current_transaction_start_offset),
        (9, None)
    );
    let denied = states[1].1.as_ref().expect_err("p1-1 is refused");
    assert_eq!(
        denied.kafka_code(),
        Some(ErrorCode::TOPIC_AUTHORIZATION_FAILED)
    );
    assert_eq!((denied.topic(), denied.partition()), (Some("p1"), Some(1)));
    assert!(denied.to_string().contains("not yours"), "{denied}");
    let open = &states[2].1.as_ref().expect("p1-0")[0];
    assert_eq!(
        (
            open.producer_id,
            open.producer_epoch,
            open.last_sequence,
            open.coordinator_epoch,
            open.current_transaction_start_offset
        ),
        (8, 3, 41, 5, Some(100))
    );
    let missing = states[3].1.as_ref().expect_err("p1 has no partition 9");
    assert_eq!(
        missing.kafka_code(),
        Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION)
    );
    assert_eq!(
        (missing.topic(), missing.partition()),
        (Some("p1"), Some(9))
    );
    let mut seen = described.lock().expect("lock").clone();
    seen.iter_mut().for_each(|(_, _, ps)| ps.sort());
    seen.sort();
    assert_eq!(
        seen,
        [
            (1, "p1".to_string(), vec![0, 1]),
            (2, "p2".to_string(), vec![0])
        ],
        "one request per leader with only its partitions, none for the missing one"
    );

    // Abort the open transaction found on p1-0, first with a stale epoch.
    let mut spec = AbortTransactionSpec {
        partition: TopicPartition::new("p1", 0),
        producer_id: open.producer_id,
        producer_epoch: 2,
        coordinator_epoch: open.coordinator_epoch,
    };
    let stale = admin
        .abort_transaction(&spec, Some(Duration::from_secs(10)))
        .expect_err("a stale epoch is refused");
    assert_eq!(stale.kafka_code(), Some(ErrorCode::INVALID_PRODUCER_EPOCH));
    assert_eq!((stale.topic(), stale.partition()), (Some("p1"), Some(0)));
    spec.producer_epoch = 3;
    admin
        .abort_transaction(&spec, Some(Duration::from_secs(10)))
        .expect("abort_transaction");
    assert_eq!(
        markers.lock().expect("lock").clone(),
        [
            // NOT_LEADER_OR_FOLLOWER, retried.
            (1, 8, 2, false, 5, "p1".to_string(), vec![0]),
            (1, 8, 2, false, 5, "p1".to_string(), vec![0]),
            (1, 8, 3, false, 5, "p1".to_string(), vec![0]),
        ],
        "abort markers (result false) for just the spec's partition, to its leader"
    );
    assert_eq!(cluster.count(2, ApiKey::WRITE_TXN_MARKERS), 0);
}
