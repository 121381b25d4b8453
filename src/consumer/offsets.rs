//! Offset requests: ListOffsets (resets and lookups), OffsetFetch
//! (committed offsets) and OffsetCommit, each built for the version the
//! broker speaks.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::message::OffsetAndTimestamp;
use crate::cluster::{Cluster, Purpose, TopicSelection};
use crate::error::{Error, ErrorKind, Result};
use crate::group::Member;
use crate::partition::{OffsetAndMetadata, TopicPartition};
use crate::protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use crate::protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use crate::protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use crate::protocol::messages::{
    ListOffsetsRequest, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest,
    OffsetFetchResponse,
};
use crate::protocol::ErrorCode;

/// `items` grouped by topic (topics in name order, each topic's items in
/// the order given), for requests that list topics with their partitions.
pub(crate) fn by_topic<'a, V>(
    items: impl IntoIterator<Item = (&'a TopicPartition, V)>,
) -> BTreeMap<&'a str, Vec<V>> {
    let mut topics: BTreeMap<&str, Vec<V>> = BTreeMap::new();
    for (tp, v) in items {
        topics.entry(&*tp.topic).or_default().push(v);
    }
    topics
}

/// ListOffsets' "earliest" timestamp.
pub(crate) const EARLIEST: i64 = -2;
/// ListOffsets' "latest" timestamp.
pub(crate) const LATEST: i64 = -1;

/// Looks up offsets by timestamp (or [`EARLIEST`]/[`LATEST`]) from each
/// partition's leader, retrying leader moves until `timeout`. `None` for a
/// partition means no record at or after the timestamp.
pub(crate) fn list_offsets(
    cluster: &Cluster,
    isolation_level: i8,
    query: &[(TopicPartition, i64)],
    timeout: Duration,
) -> Result<HashMap<TopicPartition, Option<OffsetAndTimestamp>>> {
    let deadline = Instant::now() + timeout;
    let mut out = HashMap::with_capacity(query.len());
    let mut todo: Vec<(TopicPartition, i64)> = query.to_vec();
    cluster.add_interest(todo.iter().map(|(tp, _)| &*tp.topic));
    let backoff = cluster
        .config()
        .retry_backoff()
        .max(Duration::from_millis(10));
    let mut last_error: Option<Error> = None;
    // Whether metadata was already fetched for topics this client had none
    // for (the first lookup after `assign()`).
    let mut asked_for_unknown = false;
    while !todo.is_empty() {
        if Instant::now() >= deadline {
            let what = last_error.map_or_else(String::new, |e| format!(": {e}"));
            return Err(Error::timeout(format!(
                "looking up offsets of {} partition(s) did not finish within {} ms{what}",
                todo.len(),
                timeout.as_millis()
            )));
        }
        let snap = cluster.metadata();
        let mut by_leader: HashMap<i32, Vec<(TopicPartition, i64)>> = HashMap::new();
        let mut leaderless = Vec::new();
        for (tp, ts) in todo.drain(..) {
            match snap.topic(&tp.topic) {
                Some(t) if t.error.is_err() && !t.error.is_retriable() => {
                    return Err(Error::broker(t.error, "looking up offsets").with_topic(&*tp.topic))
                }
                Some(t) if t.error.is_ok() && t.partition(tp.partition).is_none() => {
                    return Err(Error::invalid_argument(format!(
                        "partition {} does not exist: the topic has {} partitions",
                        tp.partition,
                        t.partitions.len()
                    ))
                    .with_partition(&*tp.topic, tp.partition))
                }
                _ => {}
            }
            match snap.leader(&tp.topic, tp.partition) {
                Some(l) => by_leader.entry(l).or_default().push((tp, ts)),
                None => leaderless.push((tp, ts)),
            }
        }
        let mut retry = leaderless;
        for (leader, parts) in by_leader {
            let conn = match cluster
                .ensure_broker_known(leader)
                .and_then(|_| cluster.connection(leader, Purpose::General))
            {
                Ok(c) => c,
                Err(e) => {
                    last_error = Some(e);
                    retry.extend(parts);
                    continue;
                }
            };
            let left = deadline.saturating_duration_since(Instant::now());
            let mut sorted = parts.clone();
            sorted.sort();
            let topics: Vec<ListOffsetsTopic> = by_topic(sorted.iter().map(|(tp, ts)| {
                let p = ListOffsetsPartition {
                    partition_index: tp.partition,
                    timestamp: *ts,
                    max_num_offsets: 1,
                    ..Default::default()
                };
                (tp, p)
            }))
            .into_iter()
            .map(|(name, partitions)| ListOffsetsTopic {
                name: name.to_owned(),
                partitions,
                ..Default::default()
            })
            .collect();
            let mut version = 0;
            let answer = conn.send_versioned(left.max(Duration::from_millis(1)), |v| {
                version = v;
                ListOffsetsRequest {
                    replica_id: -1,
                    isolation_level: if v >= 2 { isolation_level } else { 0 },
                    topics,
                    timeout_ms: left.as_millis().min(i32::MAX as u128) as i32,
                    ..Default::default()
                }
            });
            let answer = match answer {
                Ok(a) => a,
                Err(e) if e.is_retriable() || e.kind() == ErrorKind::Closed => {
                    cluster.request_update();
                    last_error = Some(e);
                    retry.extend(parts);
                    continue;
                }
                Err(e) => return Err(e.context("looking up offsets")),
            };
            let mut answered: HashMap<TopicPartition, ()> = HashMap::new();
            for t in answer.topics {
                let topic: Arc<str> = Arc::from(t.name.as_str());
                for p in t.partitions {
                    let tp = TopicPartition::new(Arc::clone(&topic), p.partition_index);
                    let Some(&(_, ts)) = parts.iter().find(|(q, _)| *q == tp) else {
                        continue;
                    };
                    let code = ErrorCode(p.error_code);
                    if code.is_err() {
                        if code.is_retriable() || code.is_stale_metadata() {
                            cluster.note_error(code);
                            last_error = Some(
                                Error::broker(code, "looking up offsets")
                                    .with_partition(&*tp.topic, tp.partition),
                            );
                            continue; // not marked answered: retried
                        }
                        return Err(Error::broker(code, "looking up offsets")
                            .with_partition(&*tp.topic, tp.partition));
                    }
                    answered.insert(tp.clone(), ());
                    let offset = if version == 0 {
                        p.old_style_offsets.first().copied().unwrap_or(-1)
                    } else {
                        p.offset
                    };
                    let found = (offset >= 0).then_some(OffsetAndTimestamp {
                        offset,
                        timestamp: if version == 0 { ts } else { p.timestamp },
                        leader_epoch: (p.leader_epoch >= 0).then_some(p.leader_epoch),
                    });
                    out.insert(tp, found);
                }
            }
            retry.extend(
                parts
                    .into_iter()
                    .filter(|(tp, _)| !answered.contains_key(tp)),
            );
        }
        if !retry.is_empty() {
            let unknown = retry.iter().any(|(tp, _)| snap.topic(&tp.topic).is_none());
            if unknown && !asked_for_unknown {
                // Not a failure to back off from: this client never asked
                // about the topic yet (a pause here cost every `assign()`
                // of a new topic `retry_backoff_ms`, 100 ms, before its
                // first record). Ask now, once.
                asked_for_unknown = true;
                if let Err(e) = cluster.refresh(TopicSelection::Interest) {
                    if e.repeats_on_reconnect() {
                        return Err(e);
                    }
                    last_error = Some(e);
                }
            } else {
                cluster.request_update();
                std::thread::sleep(backoff.min(deadline.saturating_duration_since(Instant::now())));
                if let Err(e) = cluster.maybe_refresh() {
                    if e.repeats_on_reconnect() {
                        return Err(e);
                    }
                }
            }
        }
        todo = retry;
    }
    Ok(out)
}

/// The OffsetFetch request in `version` for `member`'s group: the
/// partitions of `topics` (name and partitions), or every partition the
/// group has offsets for when `None` (v2+).
pub(crate) fn fetch_request(
    version: i16,
    member: &Member,
    topics: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
) -> OffsetFetchRequest {
    if version >= 8 {
        OffsetFetchRequest {
            groups: vec![OffsetFetchRequestGroup {
                group_id: member.group_id.clone(),
                member_id: (member.generation >= 0 && !member.member_id.is_empty())
                    .then(|| member.member_id.clone()),
                member_epoch: if member.member_id.is_empty() {
                    -1
                } else {
                    member.generation
                },
                topics: topics.map(|t| {
                    t.into_iter()
                        .map(|(name, partition_indexes)| OffsetFetchRequestTopics {
                            name,
                            partition_indexes,
                            ..Default::default()
                        })
                        .collect()
                }),
                ..Default::default()
            }],
            require_stable,
            ..Default::default()
        }
    } else {
        OffsetFetchRequest {
            group_id: member.group_id.clone(),
            topics: topics.map(|t| {
                t.into_iter()
                    .map(|(name, partition_indexes)| OffsetFetchRequestTopic {
                        name,
                        partition_indexes,
                        ..Default::default()
                    })
                    .collect()
            }),
            require_stable: require_stable && version >= 7,
            ..Default::default()
        }
    }
}

/// One partition of an OffsetFetch answer: its error, and its committed
/// offset (`None`: nothing committed).
pub(crate) struct CommittedRow {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) error: ErrorCode,
    pub(crate) committed: Option<OffsetAndMetadata>,
}

/// The group's error code and its partitions in an OffsetFetch answer in
/// `version` (one group per answer from v8, top-level fields before).
pub(crate) fn fetch_rows(
    response: OffsetFetchResponse,
    version: i16,
    group_id: &str,
) -> Result<(ErrorCode, Vec<CommittedRow>)> {
    // The two layouts have the same fields in different types.
    macro_rules! flatten {
        ($topics:expr) => {
            $topics
                .into_iter()
                .map(|t| {
                    let partitions: Vec<_> = t
                        .partitions
                        .into_iter()
                        .map(|p| {
                            let (offset, epoch) = (p.committed_offset, p.committed_leader_epoch);
                            (p.partition_index, p.error_code, offset, epoch, p.metadata)
                        })
                        .collect();
                    (t.name, partitions)
                })
                .collect::<Vec<_>>()
        };
    }
    let (error, topics) = if version >= 8 {
        let g = response
            .groups
            .into_iter()
            .find(|g| g.group_id == group_id)
            .ok_or_else(|| {
                Error::protocol(format!("OffsetFetch answered without group `{group_id}`"))
            })?;
        (g.error_code, flatten!(g.topics))
    } else {
        (response.error_code, flatten!(response.topics))
    };
    let mut rows = Vec::new();
    for (topic, partitions) in topics {
        for (partition, error, offset, epoch, metadata) in partitions {
            rows.push(CommittedRow {
                topic: topic.clone(),
                partition,
                error: ErrorCode(error),
                committed: (offset >= 0).then(|| OffsetAndMetadata {
                    offset,
                    metadata: metadata.unwrap_or_default(),
                    leader_epoch: (epoch >= 0).then_some(epoch),
                }),
            });
        }
    }
    Ok((ErrorCode(error), rows))
}

/// The committed offsets of `partitions` (absent: nothing committed).
/// Coordinator errors are returned as such for the caller to look the
/// coordinator up again.
pub(crate) fn fetch_committed(
    conn: &crate::net::Connection,
    member: &Member,
    require_stable: bool,
    partitions: &[TopicPartition],
    timeout: Duration,
) -> Result<HashMap<TopicPartition, OffsetAndMetadata>> {
    let mut sorted = partitions.to_vec();
    sorted.sort();
    sorted.dedup();
    let topics: Vec<(String, Vec<i32>)> = by_topic(sorted.iter().map(|tp| (tp, tp.partition)))
        .into_iter()
        .map(|(name, partitions)| (name.to_owned(), partitions))
        .collect();
    let mut version = 0;
    let response = conn.send_versioned(timeout, |v| {
        version = v;
        fetch_request(v, member, Some(topics), require_stable)
    })?;
    let what = || {
        format!(
            "fetching the committed offsets of group `{}`",
            member.group_id
        )
    };
    let (group_error, rows) = fetch_rows(response, version, &member.group_id)?;
    if group_error.is_err() {
        return Err(Error::broker(group_error, what()));
    }
    let mut out = HashMap::new();
    for row in rows {
        if row.error.is_err() {
            return Err(Error::broker(row.error, what()).with_partition(row.topic, row.partition));
        }
        let Some(committed) = row.committed else {
            continue;
        };
        let Some(tp) = sorted
            .iter()
            .find(|tp| tp.partition == row.partition && *tp.topic == *row.topic)
        else {
            continue;
        };
        out.insert(tp.clone(), committed);
    }
    Ok(out)
}

/// The OffsetCommit request for `offsets` in `version`.
pub(crate) fn commit_request(
    version: i16,
    member: &Member,
    offsets: &[(TopicPartition, OffsetAndMetadata)],
) -> OffsetCommitRequest {
    let mut sorted: Vec<&(TopicPartition, OffsetAndMetadata)> = offsets.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let topics = by_topic(sorted.into_iter().map(|(tp, om)| {
        let p = OffsetCommitRequestPartition {
            partition_index: tp.partition,
            committed_offset: om.offset,
            committed_leader_epoch: om.leader_epoch.unwrap_or(-1),
            committed_metadata: Some(om.metadata.clone()),
            ..Default::default()
        };
        (tp, p)
    }))
    .into_iter()
    .map(|(name, partitions)| OffsetCommitRequestTopic {
        name: name.to_owned(),
        partitions,
        ..Default::default()
    })
    .collect();
    OffsetCommitRequest {
        group_id: member.group_id.clone(),
        generation_id_or_member_epoch: member.generation,
        member_id: member.member_id.clone(),
        group_instance_id: if version >= 7 {
            member.instance_id.clone()
        } else {
            None
        },
        topics,
        ..Default::default()
    }
}

/// The outcome of an OffsetCommit answer: the first partition error, as a
/// [`ErrorKind::Rebalance`] error when the group moved on.
pub(crate) fn commit_result(response: &OffsetCommitResponse, group_id: &str) -> Result<()> {
    for t in &response.topics {
        for p in &t.partitions {
            let code = ErrorCode(p.error_code);
            if code.is_ok() {
                continue;
            }
            let e = commit_error(code, group_id).with_partition(t.name.clone(), p.partition_index);
            return Err(e);
        }
    }
    Ok(())
}

/// The error for a failed commit answered with `code`.
pub(crate) fn commit_error(code: ErrorCode, group_id: &str) -> Error {
    match code {
        ErrorCode::ILLEGAL_GENERATION
        | ErrorCode::UNKNOWN_MEMBER_ID
        | ErrorCode::REBALANCE_IN_PROGRESS
        | ErrorCode::FENCED_INSTANCE_ID
        | ErrorCode::STALE_MEMBER_EPOCH
        | ErrorCode::FENCED_MEMBER_EPOCH => Error::new(
            ErrorKind::Rebalance,
            format!(
                "the commit was refused because group `{group_id}` rebalanced ({code}); the partitions may have moved to another member: poll again and commit what you process next"
            ),
        ),
        _ => Error::broker(code, format!("committing offsets of group `{group_id}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Message as _;

    #[test]
    fn commit_requests_encode_in_every_version() {
        let member = Member {
            group_id: "g".into(),
            member_id: "m".into(),
            generation: 3,
            instance_id: Some("i".into()),
        };
        let offsets = vec![
            (TopicPartition::new("b", 1), OffsetAndMetadata::new(10)),
            (
                TopicPartition::new("a", 0),
                OffsetAndMetadata::with_metadata(5, "meta"),
            ),
        ];
        for v in OffsetCommitRequest::MIN_VERSION..=OffsetCommitRequest::MAX_VERSION {
            let r = commit_request(v, &member, &offsets);
            assert_eq!(r.topics[0].name, "a");
            let mut out = Vec::new();
            r.encode(&mut out, v)
                .unwrap_or_else(|e| panic!("v{v}: {e}"));
        }
    }

    #[test]
    fn rebalance_codes_are_rebalance_errors() {
        let e = commit_error(ErrorCode::ILLEGAL_GENERATION, "g");
        assert_eq!(e.kind(), ErrorKind::Rebalance);
        let e = commit_error(ErrorCode::NOT_COORDINATOR, "g");
        assert_eq!(e.kind(), ErrorKind::Broker);
        assert!(e.is_retriable());
    }
}
