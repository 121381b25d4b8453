//! Group membership against fake coordinators ([`FakeCluster`]) that
//! answer with errors Tansu cannot be made to give: a fenced static member,
//! an unauthorized group.

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_blocking::consumer::Consumer;
use kafka_blocking::protocol::messages::fetch_response::PartitionData;
use kafka_blocking::protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_blocking::protocol::messages::*;
use kafka_blocking::protocol::{ApiKey, ErrorCode, Uuid};
use kafka_blocking::Bytes;

use crate::faults::{
    fake_api_versions, fake_find_coordinator, fake_metadata, fake_records, fetch_each,
    list_offsets_at, FakeCluster, FakeReq,
};

const TOPIC: &str = "fake-group-topic";

/// A ConsumerProtocolAssignment (v0) of `partitions` of [`TOPIC`].
fn assignment(partitions: &[i32]) -> Bytes {
    let mut b = Vec::new();
    b.extend(0i16.to_be_bytes()); // version
    b.extend(1i32.to_be_bytes()); // one topic
    b.extend((TOPIC.len() as i16).to_be_bytes());
    b.extend(TOPIC.as_bytes());
    b.extend((partitions.len() as i32).to_be_bytes());
    for p in partitions {
        b.extend(p.to_be_bytes());
    }
    b.extend((-1i32).to_be_bytes()); // no user data
    Bytes::from(b)
}

/// Offsets, fetches and metadata for one partition of [`TOPIC`] on node 1,
/// with an endless stream of records.
fn data_plane(req: &FakeReq) -> Option<Vec<u8>> {
    match req.key {
        ApiKey::METADATA => fake_metadata(req, &[(TOPIC, Uuid([3; 16]), 1, 1)]),
        ApiKey::OFFSET_FETCH => req.answer::<OffsetFetchRequest>(|r| OffsetFetchResponse {
            topics: r
                .topics
                .iter()
                .flatten()
                .map(|t| OffsetFetchResponseTopic {
                    name: t.name.clone(),
                    partitions: t
                        .partition_indexes
                        .iter()
                        .map(|p| OffsetFetchResponsePartition {
                            partition_index: *p,
                            committed_offset: -1,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
        ApiKey::LIST_OFFSETS => req.answer::<ListOffsetsRequest>(|r| list_offsets_at(r, 0)),
        ApiKey::FETCH => req.answer::<FetchRequest>(|r| {
            std::thread::sleep(Duration::from_millis(5));
            fetch_each(r, |p| PartitionData {
                partition_index: p.partition,
                high_watermark: p.fetch_offset + 10,
                records: Some(fake_records(p.fetch_offset, 10)),
                ..Default::default()
            })
        }),
        _ => None,
    }
}

#[test]
fn a_fenced_member_gets_the_error_on_every_read_and_no_records() {
    // A classic coordinator that takes the member in, then (once `fence`
    // is set) starts a rebalance and refuses the rejoin: another instance
    // with the same group_instance_id has taken over.
    let fence = Arc::new(AtomicBool::new(false));
    let f = Arc::clone(&fence);
    let cluster = FakeCluster::start(1, move |req| match req.key {
        ApiKey::API_VERSIONS => fake_api_versions(
            req,
            &[
                (ApiKey::API_VERSIONS, 3),
                (ApiKey::METADATA, 12),
                (ApiKey::FIND_COORDINATOR, 4),
                (ApiKey::JOIN_GROUP, 7),
                (ApiKey::SYNC_GROUP, 5),
                (ApiKey::HEARTBEAT, 4),
                (ApiKey::LEAVE_GROUP, 4),
                (ApiKey::OFFSET_FETCH, 7),
                (ApiKey::OFFSET_COMMIT, 8),
                (ApiKey::LIST_OFFSETS, 7),
                (ApiKey::FETCH, 12),
            ],
        ),
        ApiKey::FIND_COORDINATOR => fake_find_coordinator(req, 0),
        ApiKey::JOIN_GROUP => {
            let fenced = f.load(SeqCst);
            req.answer::<JoinGroupRequest>(|_| JoinGroupResponse {
                error_code: if fenced {
                    ErrorCode::FENCED_INSTANCE_ID.0
                } else {
                    0
                },
                generation_id: 1,
                protocol_type: Some("consumer".into()),
                protocol_name: Some("cooperative-sticky".into()),
                leader: "the-leader".into(),
                member_id: "zombie-1".into(),
                ..Default::default()
            })
        }
        ApiKey::SYNC_GROUP => req.answer::<SyncGroupRequest>(|_| SyncGroupResponse {
            protocol_type: Some("consumer".into()),
            protocol_name: Some("cooperative-sticky".into()),
            assignment: assignment(&[0]),
            ..Default::default()
        }),
        ApiKey::HEARTBEAT => {
            let fenced = f.load(SeqCst);
            req.answer::<HeartbeatRequest>(|_| HeartbeatResponse {
                error_code: if fenced {
                    ErrorCode::REBALANCE_IN_PROGRESS.0
                } else {
                    0
                },
                ..Default::default()
            })
        }
        ApiKey::LEAVE_GROUP => req.answer::<LeaveGroupRequest>(|_| LeaveGroupResponse::default()),
        _ => data_plane(req),
    });
    let mut c = Consumer::builder()
        .bootstrap_servers(cluster.bootstrap())
        .group_id("fenced-group")
        .group_instance_id("zombie")
        .partition_assignment_strategy(["cooperative-sticky"])
        .enable_auto_commit(false)
        .auto_offset_reset("earliest")
        .session_timeout_ms(6_000)
        .heartbeat_interval_ms(100)
        .build()
        .expect("consumer");
    c.subscribe([TOPIC]).expect("subscribe");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "no records before the fence");
        if !c.poll(Duration::from_millis(50)).expect("poll").is_empty() {
            break;
        }
    }
    fence.store(true, SeqCst);
    let deadline = Instant::now() + Duration::from_secs(10);
    let e = loop {
        assert!(Instant::now() < deadline, "the fence was never reported");
        match c.poll(Duration::from_millis(50)) {
            Ok(_) => continue, // records fetched before the fence
            Err(e) => break e,
        }
    };
    assert_eq!(e.kafka_code(), Some(ErrorCode::FENCED_INSTANCE_ID), "{e}");
    // A zombie processes nothing more: every later read is the error.
    for _ in 0..10 {
        let e = c
            .poll(Duration::from_millis(20))
            .expect_err("records after the fence");
        assert_eq!(e.kafka_code(), Some(ErrorCode::FENCED_INSTANCE_ID), "{e}");
    }
    assert!(c.next().expect("an error").is_err());
    assert!(c.assignment().is_empty(), "the partitions are lost");
    c.close(false).expect("close");
}

#[test]
fn an_unauthorized_kip_848_group_fails_once_and_stops_asking() {
    let cluster = FakeCluster::start(1, |req| match req.key {
        ApiKey::API_VERSIONS => fake_api_versions(
            req,
            &[
                (ApiKey::API_VERSIONS, 3),
                (ApiKey::METADATA, 12),
                (ApiKey::FIND_COORDINATOR, 4),
                (ApiKey::CONSUMER_GROUP_HEARTBEAT, 1),
                (ApiKey::OFFSET_FETCH, 9),
                (ApiKey::LIST_OFFSETS, 7),
                (ApiKey::FETCH, 12),
            ],
        ),
        ApiKey::FIND_COORDINATOR => {
            fake_find_coordinator(req, ErrorCode::GROUP_AUTHORIZATION_FAILED.0)
        }
        _ => data_plane(req),
    });
    let mut c = Consumer::builder()
        .bootstrap_servers(cluster.bootstrap())
        .group_id("forbidden-group")
        .group_protocol("consumer")
        .enable_auto_commit(false)
        .retry_backoff_ms(20)
        .build()
        .expect("consumer");
    c.subscribe([TOPIC]).expect("subscribe");
    let deadline = Instant::now() + Duration::from_secs(10);
    let e = loop {
        assert!(Instant::now() < deadline, "the error was never reported");
        if let Err(e) = c.poll(Duration::from_millis(50)) {
            break e;
        }
    };
    assert_eq!(
        e.kafka_code(),
        Some(ErrorCode::GROUP_AUTHORIZATION_FAILED),
        "{e}"
    );
    // Half a second more (25 retry backoffs): no new lookups.
    let until = Instant::now() + Duration::from_millis(500);
    while Instant::now() < until {
        assert!(c.poll(Duration::from_millis(20)).is_err());
    }
    let lookups = cluster.count(1, ApiKey::FIND_COORDINATOR);
    assert!(lookups <= 2, "{lookups} FindCoordinator requests");
    c.close(false).expect("close");
}
