//! KIP-320 against a fake cluster: after a leader change the consumer asks
//! the new leader (OffsetForLeaderEpoch) where the epoch of its last record
//! ends, and acts on a log that was truncated below its position.
//!
//! The fake's log: offsets 0..20 written under leader epoch 0. The first
//! fetch at 20 answers NOT_LEADER_OR_FOLLOWER (the leader changed); from
//! then on the log is the new leader's: from `DIVERGE` on, records
//! `"w{offset}"` under epoch 1, up to offset 30. OffsetForLeaderEpoch says
//! epoch 0 ends at `end_offset`. In the other mode there is no error: the
//! fetch at 20 answers nothing until the client fetches with leader epoch
//! 1, which the metadata shows from then on (a leader change the client
//! learns from a metadata update).
//! In the third mode the client starts from the group's committed offset
//! 20, committed under leader epoch 0, and the log is the new leader's
//! from the start: the committed position is validated before the first
//! fetch.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_blocking::consumer::Consumer;
use kafka_blocking::protocol::messages::fetch_response::PartitionData;
use kafka_blocking::protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_blocking::protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_blocking::protocol::messages::{
    FetchRequest, OffsetFetchRequest, OffsetFetchResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse,
};
use kafka_blocking::protocol::{ApiKey, Uuid};
use kafka_blocking::{Bytes, Error, ErrorKind};

use crate::faults::{
    fake_api_versions, fake_find_coordinator, fake_metadata_epoch, fetch_each, FakeCluster,
};

const TOPIC: &str = "kip320-topic";
const CHANGE_AT: i64 = 20;
const END: i64 = 30;

const APIS: &[(ApiKey, i16)] = &[
    (ApiKey::FETCH, 12),
    (ApiKey::METADATA, 12),
    (ApiKey::LIST_OFFSETS, 7),
    (ApiKey::API_VERSIONS, 3),
    (ApiKey::OFFSET_FOR_LEADER_EPOCH, 4),
    (ApiKey::FIND_COORDINATOR, 4),
    (ApiKey::OFFSET_FETCH, 7),
];

/// How the fake shows the leader change.
#[derive(Clone, Copy, PartialEq)]
enum Change {
    /// The first fetch at `CHANGE_AT` answers NOT_LEADER_OR_FOLLOWER.
    Error,
    /// The metadata shows leader epoch 1 once a fetch reached `CHANGE_AT`.
    Metadata,
    /// Before the client starts: the log is the new leader's from the
    /// first fetch, and the group's committed offset is `CHANGE_AT` under
    /// leader epoch 0 (OffsetFetch v5+ carries it).
    Committed,
}

/// Up to 10 records from `base`, `"{prefix}{offset}"`, under `epoch`.
fn batch(base: i64, limit: i64, prefix: &str, epoch: i32) -> Bytes {
    use kafka_blocking::records::{BatchOptions, RecordBatchBuilder};
    let n = (limit - base).clamp(0, 10);
    if n == 0 {
        return Bytes::new();
    }
    let mut b = RecordBatchBuilder::new();
    for o in base..base + n {
        b.append(0, None, Some(format!("{prefix}{o}").as_bytes()), [])
            .expect("append");
    }
    b.build(&BatchOptions {
        base_offset: base,
        partition_leader_epoch: epoch,
        ..BatchOptions::default()
    })
    .expect("build")
}

/// The fake cluster; OffsetForLeaderEpoch answers `end_offset` for epoch
/// 0, and the new leader's log differs from `diverge` on.
/// With `by_metadata`, the change shows as a new leader epoch in the
/// metadata instead of NOT_LEADER_OR_FOLLOWER.
fn truncating_cluster(end_offset: i64, diverge: i64, change: Change) -> FakeCluster {
    let by_metadata = change == Change::Metadata;
    let changed = Arc::new(AtomicBool::new(change == Change::Committed));
    let epoch = Arc::new(AtomicI32::new(0));
    let meta_epoch = Arc::clone(&epoch);
    FakeCluster::start(1, move |req| match req.key {
        ApiKey::API_VERSIONS => fake_api_versions(req, APIS),
        ApiKey::METADATA => fake_metadata_epoch(
            req,
            &[(TOPIC, Uuid([7; 16]), 1, 1)],
            meta_epoch.load(SeqCst),
        ),
        ApiKey::FIND_COORDINATOR => fake_find_coordinator(req, 0),
        ApiKey::OFFSET_FETCH => req.answer::<OffsetFetchRequest>(|_| OffsetFetchResponse {
            topics: vec![OffsetFetchResponseTopic {
                name: TOPIC.to_owned(),
                partitions: vec![OffsetFetchResponsePartition {
                    partition_index: 0,
                    committed_offset: CHANGE_AT,
                    committed_leader_epoch: 0,
                    metadata: Some(String::new()),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }),
        ApiKey::OFFSET_FOR_LEADER_EPOCH => {
            req.answer::<OffsetForLeaderEpochRequest>(|r| OffsetForLeaderEpochResponse {
                topics: r
                    .topics
                    .iter()
                    .map(|t| OffsetForLeaderTopicResult {
                        topic: t.topic.clone(),
                        partitions: t
                            .partitions
                            .iter()
                            .map(|p| EpochEndOffset {
                                partition: p.partition,
                                leader_epoch: 0,
                                end_offset,
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
        }
        ApiKey::FETCH => {
            let changed = Arc::clone(&changed);
            let epoch = Arc::clone(&epoch);
            req.answer::<FetchRequest>(move |r| {
                fetch_each(r, |p| {
                    let at = p.fetch_offset;
                    if by_metadata && at >= CHANGE_AT && p.current_leader_epoch < 1 {
                        // The leader moved; this client has not heard yet.
                        epoch.store(1, SeqCst);
                        changed.store(true, SeqCst);
                        return PartitionData {
                            partition_index: p.partition,
                            high_watermark: END,
                            records: Some(Bytes::new()),
                            ..Default::default()
                        };
                    }
                    if !by_metadata && at >= CHANGE_AT && !changed.swap(true, SeqCst) {
                        return PartitionData {
                            partition_index: p.partition,
                            error_code: 6, // NOT_LEADER_OR_FOLLOWER
                            high_watermark: -1,
                            ..Default::default()
                        };
                    }
                    let records = if !changed.load(SeqCst) {
                        batch(at, CHANGE_AT, "v", 0)
                    } else if at < diverge {
                        batch(at, diverge, "v", 0)
                    } else {
                        batch(at, END, "w", 1)
                    };
                    PartitionData {
                        partition_index: p.partition,
                        high_watermark: END,
                        records: Some(records),
                        ..Default::default()
                    }
                })
            })
        }
        _ => None,
    })
}

/// Reads `(offset, value)` until offset `END - 1` or the first error.
fn read(cluster: &FakeCluster, reset: &str) -> (Vec<(i64, String)>, Option<Error>) {
    let mut c = Consumer::builder()
        .bootstrap_servers(cluster.bootstrap())
        .auto_offset_reset(reset)
        .request_timeout_ms(5_000)
        .metadata_max_age_ms(300)
        .build()
        .expect("consumer");
    c.assign([(TOPIC, 0)]).expect("assign");
    c.seek((TOPIC, 0), 0).expect("seek");
    read_from(&mut c)
}

/// A member of a group whose committed offset is `CHANGE_AT`: reads from
/// the committed offset (no seek).
fn read_committed(cluster: &FakeCluster, reset: &str) -> (Vec<(i64, String)>, Option<Error>) {
    let mut c = Consumer::builder()
        .bootstrap_servers(cluster.bootstrap())
        .group_id("kip320-group")
        .enable_auto_commit(false)
        .auto_offset_reset(reset)
        .request_timeout_ms(5_000)
        .build()
        .expect("consumer");
    c.assign([(TOPIC, 0)]).expect("assign");
    read_from(&mut c)
}

fn read_from(c: &mut Consumer) -> (Vec<(i64, String)>, Option<Error>) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut got = Vec::new();
    while Instant::now() < deadline && got.last().map_or(true, |(o, _)| *o < END - 1) {
        match c.poll(Duration::from_millis(100)) {
            Ok(records) => got.extend(
                records
                    .iter()
                    .map(|m| (m.offset(), m.value_as::<&str>().expect("utf-8").to_owned())),
            ),
            Err(e) => return (got, Some(e)),
        }
    }
    (got, None)
}

fn expected(from: i64, to: i64, prefix: &str) -> Vec<(i64, String)> {
    (from..to).map(|o| (o, format!("{prefix}{o}"))).collect()
}

#[test]
fn a_truncated_log_resets_to_the_divergence_point() {
    let cluster = truncating_cluster(15, 15, Change::Error);
    let (got, error) = read(&cluster, "earliest");
    assert!(error.is_none(), "{error:?}");
    let mut want = expected(0, CHANGE_AT, "v");
    want.extend(expected(15, END, "w"));
    assert_eq!(got, want);
    assert!(cluster.count(1, ApiKey::OFFSET_FOR_LEADER_EPOCH) >= 1);
}

#[test]
fn a_truncated_log_with_auto_offset_reset_none_is_a_typed_error() {
    let cluster = truncating_cluster(15, 15, Change::Error);
    let (got, error) = read(&cluster, "none");
    assert_eq!(got, expected(0, CHANGE_AT, "v"));
    let e = error.expect("the truncation is reported");
    assert_eq!(e.kind(), ErrorKind::LogTruncation, "{e}");
    assert_eq!(e.topic(), Some(TOPIC));
    assert_eq!(e.partition(), Some(0));
    assert_eq!(e.offset(), Some(15), "the divergence offset");
    assert!(e.to_string().contains("position 20"), "{e}");
}

#[test]
fn a_leader_change_without_truncation_reads_on_without_gaps_or_repeats() {
    // The new leader's log ends epoch 0 at 20, the position: nothing lost.
    let cluster = truncating_cluster(CHANGE_AT, CHANGE_AT, Change::Error);
    let (got, error) = read(&cluster, "none");
    assert!(error.is_none(), "{error:?}");
    let mut want = expected(0, CHANGE_AT, "v");
    want.extend(expected(CHANGE_AT, END, "w"));
    assert_eq!(got, want);
    assert!(
        cluster.count(1, ApiKey::OFFSET_FOR_LEADER_EPOCH) >= 1,
        "the position was validated"
    );
}

#[test]
fn a_new_leader_epoch_in_the_metadata_is_validated_too() {
    let cluster = truncating_cluster(15, 15, Change::Metadata);
    let (got, error) = read(&cluster, "earliest");
    assert!(error.is_none(), "{error:?}");
    let mut want = expected(0, CHANGE_AT, "v");
    want.extend(expected(15, END, "w"));
    assert_eq!(got, want);
}

#[test]
fn a_committed_offset_past_a_truncated_log_resets_to_the_divergence_point() {
    let cluster = truncating_cluster(15, 15, Change::Committed);
    let (got, error) = read_committed(&cluster, "earliest");
    assert!(error.is_none(), "{error:?}");
    assert_eq!(got, expected(15, END, "w"));
    assert_eq!(cluster.count(1, ApiKey::OFFSET_FOR_LEADER_EPOCH), 1);
}

#[test]
fn a_committed_offset_past_a_truncated_log_with_auto_offset_reset_none_is_a_typed_error() {
    let cluster = truncating_cluster(15, 15, Change::Committed);
    let (got, error) = read_committed(&cluster, "none");
    assert_eq!(got, Vec::new(), "nothing read from the committed offset");
    let e = error.expect("the truncation is reported");
    assert_eq!(e.kind(), ErrorKind::LogTruncation, "{e}");
    assert_eq!((e.topic(), e.partition()), (Some(TOPIC), Some(0)));
    assert_eq!(e.offset(), Some(15), "the divergence offset");
    assert!(
        e.to_string().contains("committed offset position 20"),
        "{e}"
    );
    assert_eq!(
        cluster.count(1, ApiKey::FETCH),
        0,
        "no fetch from the unvalidated position"
    );
}

#[test]
fn a_valid_committed_offset_is_read_from_after_validation() {
    let cluster = truncating_cluster(CHANGE_AT, CHANGE_AT, Change::Committed);
    let (got, error) = read_committed(&cluster, "none");
    assert!(error.is_none(), "{error:?}");
    assert_eq!(got, expected(CHANGE_AT, END, "w"));
    assert_eq!(cluster.count(1, ApiKey::OFFSET_FOR_LEADER_EPOCH), 1);
}
