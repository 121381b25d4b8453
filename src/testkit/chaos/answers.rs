//! The answers a chaos node makes itself: error answers shaped after the
//! request, and the rewritten cluster shape (Metadata, FindCoordinator,
//! DescribeCluster).

use std::sync::atomic::Ordering;

use crate::error::Result;
use crate::protocol::messages::{
    fetch_response, list_offsets_response, offset_commit_response, offset_fetch_response,
    produce_response, DescribeClusterRequest, FetchRequest, FetchResponse, FindCoordinatorRequest,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListOffsetsRequest, ListOffsetsResponse, MetadataRequest,
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
    ProduceRequest, ProduceResponse, SyncGroupRequest, SyncGroupResponse,
};
use crate::protocol::{ApiKey, ResponseHeader};
use crate::Bytes;

use super::proxy::{decode_request, decode_response, encode_response};
use super::{coordinator_of, live_ids, place, Inner, State};

pub(super) fn group_error(
    api: ApiKey,
    frame: &Bytes,
    version: i16,
    header: &ResponseHeader,
    code: i16,
) -> Result<Vec<u8>> {
    match api {
        // Answers holding nothing but the error code.
        ApiKey::JOIN_GROUP => {
            let r = JoinGroupResponse {
                error_code: code,
                generation_id: -1,
                ..Default::default()
            };
            encode_response::<JoinGroupRequest>(header, &r, version)
        }
        ApiKey::SYNC_GROUP => {
            let r = SyncGroupResponse {
                error_code: code,
                ..Default::default()
            };
            encode_response::<SyncGroupRequest>(header, &r, version)
        }
        ApiKey::HEARTBEAT => {
            let r = HeartbeatResponse {
                error_code: code,
                ..Default::default()
            };
            encode_response::<HeartbeatRequest>(header, &r, version)
        }
        ApiKey::LEAVE_GROUP => {
            let r = LeaveGroupResponse {
                error_code: code,
                ..Default::default()
            };
            encode_response::<LeaveGroupRequest>(header, &r, version)
        }
        ApiKey::OFFSET_COMMIT => {
            let (_, req) = decode_request::<OffsetCommitRequest>(frame, version)?;
            let resp = OffsetCommitResponse {
                topics: req
                    .topics
                    .iter()
                    .map(|t| offset_commit_response::OffsetCommitResponseTopic {
                        name: t.name.clone(),
                        partitions: t
                            .partitions
                            .iter()
                            .map(|p| offset_commit_response::OffsetCommitResponsePartition {
                                partition_index: p.partition_index,
                                error_code: code,
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            };
            encode_response::<OffsetCommitRequest>(header, &resp, version)
        }
        _ => {
            let (_, req) = decode_request::<OffsetFetchRequest>(frame, version)?;
            let resp = OffsetFetchResponse {
                error_code: code,
                groups: req
                    .groups
                    .iter()
                    .map(|g| offset_fetch_response::OffsetFetchResponseGroup {
                        group_id: g.group_id.clone(),
                        error_code: code,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            };
            encode_response::<OffsetFetchRequest>(header, &resp, version)
        }
    }
}

pub(super) fn produce_error(req: &ProduceRequest, code: i16) -> ProduceResponse {
    ProduceResponse {
        responses: req
            .topic_data
            .iter()
            .map(|t| produce_response::TopicProduceResponse {
                name: t.name.clone(),
                partition_responses: t
                    .partition_data
                    .iter()
                    .map(|p| produce_response::PartitionProduceResponse {
                        index: p.index,
                        error_code: code,
                        base_offset: -1,
                        log_append_time_ms: -1,
                        log_start_offset: -1,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

pub(super) fn fetch_error(req: &FetchRequest, code: i16) -> FetchResponse {
    FetchResponse {
        session_id: req.session_id,
        responses: req
            .topics
            .iter()
            .map(|t| fetch_response::FetchableTopicResponse {
                topic: t.topic.clone(),
                topic_id: t.topic_id,
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| fetch_response::PartitionData {
                        partition_index: p.partition,
                        error_code: code,
                        high_watermark: -1,
                        last_stable_offset: -1,
                        log_start_offset: -1,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

pub(super) fn list_offsets_error(req: &ListOffsetsRequest, code: i16) -> ListOffsetsResponse {
    ListOffsetsResponse {
        topics: req
            .topics
            .iter()
            .map(|t| list_offsets_response::ListOffsetsTopicResponse {
                name: t.name.clone(),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| list_offsets_response::ListOffsetsPartitionResponse {
                        partition_index: p.partition_index,
                        error_code: code,
                        timestamp: -1,
                        offset: -1,
                        leader_epoch: -1,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

pub(super) fn rewrite_metadata(
    inner: &Inner,
    _node: i32,
    raw: &Bytes,
    version: i16,
) -> Result<Vec<u8>> {
    let (h, mut resp) = decode_response::<MetadataRequest>(raw, version)?;
    let mut st = inner.state.lock();
    let live = live_ids(&st);
    resp.brokers = st
        .nodes
        .iter()
        .filter(|n| n.alive)
        .map(
            |n| crate::protocol::messages::metadata_response::MetadataResponseBroker {
                node_id: n.id,
                host: "127.0.0.1".into(),
                port: i32::from(n.port),
                ..Default::default()
            },
        )
        .collect();
    resp.controller_id = live.first().copied().unwrap_or(-1);
    for t in &mut resp.topics {
        let Some(name) = t.name.clone() else { continue };
        if !t.topic_id.is_zero() {
            st.topic_names.insert(t.topic_id, name.clone());
        }
        for p in &mut t.partitions {
            if p.error_code != 0 || p.leader_id < 0 {
                continue;
            }
            let pl = place(&mut st, &name, p.partition_index);
            p.leader_id = pl.leader;
            p.leader_epoch = p.leader_epoch.max(0) + pl.bump;
            p.replica_nodes = live.clone();
            p.isr_nodes = live.clone();
            p.offline_replicas = Vec::new();
        }
    }
    drop(st);
    inner.stats.rewritten.fetch_add(1, Ordering::Relaxed);
    encode_response::<MetadataRequest>(&h, &resp, version)
}

pub(super) fn rewrite_coordinator(
    inner: &Inner,
    raw: &Bytes,
    version: i16,
    keys: &[String],
) -> Result<Vec<u8>> {
    let (h, mut resp) = decode_response::<FindCoordinatorRequest>(raw, version)?;
    let mut st = inner.state.lock();
    let port_of = |st: &State, id: i32| {
        st.nodes
            .iter()
            .find(|n| n.id == id)
            .map_or(0, |n| i32::from(n.port))
    };
    if version >= 4 {
        for c in &mut resp.coordinators {
            if c.error_code == 0 {
                c.node_id = coordinator_of(&mut st, &c.key);
                c.port = port_of(&st, c.node_id);
                c.host = "127.0.0.1".into();
            }
        }
    } else if resp.error_code == 0 {
        if let Some(key) = keys.first() {
            resp.node_id = coordinator_of(&mut st, key);
            resp.port = port_of(&st, resp.node_id);
            resp.host = "127.0.0.1".into();
        }
    }
    drop(st);
    inner.stats.rewritten.fetch_add(1, Ordering::Relaxed);
    encode_response::<FindCoordinatorRequest>(&h, &resp, version)
}

pub(super) fn rewrite_cluster(inner: &Inner, raw: &Bytes, version: i16) -> Result<Vec<u8>> {
    let (h, mut resp) = decode_response::<DescribeClusterRequest>(raw, version)?;
    let st = inner.state.lock();
    resp.brokers = st
        .nodes
        .iter()
        .filter(|n| n.alive)
        .map(
            |n| crate::protocol::messages::describe_cluster_response::DescribeClusterBroker {
                broker_id: n.id,
                host: "127.0.0.1".into(),
                port: i32::from(n.port),
                ..Default::default()
            },
        )
        .collect();
    resp.controller_id = live_ids(&st).first().copied().unwrap_or(-1);
    drop(st);
    inner.stats.rewritten.fetch_add(1, Ordering::Relaxed);
    encode_response::<DescribeClusterRequest>(&h, &resp, version)
}
