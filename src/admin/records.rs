//! Records and the cluster: delete records, describe the cluster, probe
//! broker versions.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::{broker_error, check, keyed, AdminClient, Answer, Deadline, TopicPartition};
use crate::client::VersionInfo;
use crate::cluster::{BrokerInfo, Purpose};
use crate::consumer::offsets::by_topic;
use crate::error::{Error, Result};
use crate::protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use crate::protocol::messages::metadata_request::MetadataRequestTopic;
use crate::protocol::messages::{DeleteRecordsRequest, DescribeClusterRequest, MetadataRequest};
use crate::protocol::{ApiKey, BrokerVersions, ErrorCode};

/// What [`AdminClient::describe_cluster`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDescription {
    /// The cluster id (Kafka 0.10.1+).
    pub cluster_id: Option<String>,
    /// The controller's broker id, when the cluster reports one (a KRaft
    /// cluster reports a broker that forwards to the real controller).
    pub controller: Option<i32>,
    /// The brokers, by id.
    pub brokers: Vec<BrokerInfo>,
}

/// Codes worth retrying on a request to a partition leader.
const LEADER_RETRY: &[ErrorCode] = &[
    ErrorCode::NOT_LEADER_OR_FOLLOWER,
    ErrorCode::LEADER_NOT_AVAILABLE,
];

impl AdminClient {
    /// The leader of each partition, from fresh metadata.
    fn leaders(
        &self,
        parts: &[TopicPartition],
        dl: &Deadline,
    ) -> Result<HashMap<TopicPartition, Result<i32>>> {
        let mut topics: Vec<String> = parts.iter().map(|tp| tp.topic.to_string()).collect();
        topics.sort();
        topics.dedup();
        let request = MetadataRequest {
            topics: Some(
                topics
                    .into_iter()
                    .map(|t| MetadataRequestTopic {
                        name: Some(t),
                        ..Default::default()
                    })
                    .collect(),
            ),
            allow_auto_topic_creation: false,
            ..Default::default()
        };
        let id = self.any_broker()?;
        let response = self.send_to(id, &request, dl.attempt_timeout())?;
        let mut leaders: HashMap<String, Result<HashMap<i32, i32>>> = HashMap::new();
        for t in response.topics {
            let Some(name) = t.name else { continue };
            let r = check(
                t.error_code,
                None,
                format_args!("looking up topic `{name}`"),
            )
            .map_err(|e| e.with_topic(&name))
            .map(|()| {
                t.partitions
                    .iter()
                    .map(|p| (p.partition_index, p.leader_id))
                    .collect()
            });
            leaders.insert(name, r);
        }
        Ok(parts
            .iter()
            .map(|tp| {
                let r = match leaders.get(&*tp.topic) {
                    None => Err(Error::protocol(format!(
                        "the metadata answer left out topic `{}`",
                        tp.topic
                    ))),
                    Some(Err(e)) => Err(e.clone().with_partition(&*tp.topic, tp.partition)),
                    Some(Ok(ps)) => match ps.get(&tp.partition) {
                        None => Err(Error::broker(
                            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                            format!("topic `{}` has no partition {}", tp.topic, tp.partition),
                        )
                        .with_partition(&*tp.topic, tp.partition)),
                        Some(l) if *l < 0 => Err(broker_error(
                            ErrorCode::LEADER_NOT_AVAILABLE,
                            None,
                            format_args!("finding the leader of {tp}"),
                        )
                        .with_partition(&*tp.topic, tp.partition)),
                        Some(l) => Ok(*l),
                    },
                };
                (tp.clone(), r)
            })
            .collect())
    }

    /// Deletes the records of each partition before the given offset (-1:
    /// up to the high watermark), asking each partition's leader. Answers
    /// per partition with its new low watermark. `timeout` (default
    /// `default_api_timeout_ms`) bounds the call, retries included.
    pub fn delete_records(
        &self,
        before: impl IntoIterator<Item = (TopicPartition, i64)>,
        timeout: Option<Duration>,
    ) -> Result<Vec<(TopicPartition, Result<i64>)>> {
        let before: Vec<(TopicPartition, i64)> = before.into_iter().collect();
        for (tp, offset) in &before {
            crate::validate::topic(&tp.topic)?;
            crate::validate::partition(&tp.topic, tp.partition)?;
            crate::validate::offset(&tp.topic, tp.partition, *offset, -1)?;
        }
        let (order, offsets) = keyed(before);
        let dl = self.deadline(timeout);
        self.run_items(order, &dl, LEADER_RETRY, |pending| {
            let mut out = Vec::new();
            let mut by_leader: BTreeMap<i32, Vec<TopicPartition>> = BTreeMap::new();
            for (tp, leader) in self.leaders(pending, &dl)? {
                match leader {
                    Ok(l) => by_leader.entry(l).or_default().push(tp),
                    Err(e) => out.push((tp, Answer::from_result(Err(e), LEADER_RETRY))),
                }
            }
            for (leader, parts) in by_leader {
                let topics = by_topic(parts.iter().map(|tp| {
                    let p = DeleteRecordsPartition {
                        partition_index: tp.partition,
                        offset: offsets.get(tp).copied().unwrap_or(-1),
                        ..Default::default()
                    };
                    (tp, p)
                }));
                let request = DeleteRecordsRequest {
                    topics: topics
                        .into_iter()
                        .map(|(name, partitions)| DeleteRecordsTopic {
                            name: name.to_owned(),
                            partitions,
                            ..Default::default()
                        })
                        .collect(),
                    timeout_ms: dl.broker_timeout_ms(),
                    ..Default::default()
                };
                match self.send_to(leader, &request, dl.long_attempt_timeout()) {
                    Ok(response) => {
                        for t in response.topics {
                            for p in t.partitions {
                                let tp = TopicPartition::new(t.name.clone(), p.partition_index);
                                let r = check(
                                    p.error_code,
                                    None,
                                    format_args!(
                                        "deleting records before offset {}",
                                        offsets.get(&tp).copied().unwrap_or(-1)
                                    ),
                                )
                                .map_err(|e| e.with_partition(&*tp.topic, tp.partition))
                                .map(|()| p.low_watermark);
                                out.push((tp, Answer::from_result(r, LEADER_RETRY)));
                            }
                        }
                    }
                    Err(e) => out.extend(
                        parts
                            .into_iter()
                            .map(|tp| (tp, Answer::from_result(Err(e.clone()), LEADER_RETRY))),
                    ),
                }
            }
            Ok(out)
        })
    }

    /// The cluster id, the controller and the brokers (DescribeCluster on
    /// Kafka 2.8+, Metadata before).
    pub fn describe_cluster(&self) -> Result<ClusterDescription> {
        let dl = self.deadline(None);
        self.retry(&dl, &[], None, || {
            let id = self.any_broker()?;
            let versions = self
                .cluster()
                .connection(id, Purpose::General)?
                .versions()?;
            let mut out = if versions.range(ApiKey::DESCRIBE_CLUSTER).is_some() {
                let r =
                    self.send_to(id, &DescribeClusterRequest::default(), dl.attempt_timeout())?;
                check(
                    r.error_code,
                    r.error_message.as_deref(),
                    format_args!("describing the cluster"),
                )?;
                ClusterDescription {
                    cluster_id: Some(r.cluster_id).filter(|c| !c.is_empty()),
                    controller: Some(r.controller_id).filter(|c| *c >= 0),
                    brokers: r
                        .brokers
                        .into_iter()
                        .map(|b| BrokerInfo {
                            id: b.broker_id,
                            host: b.host,
                            port: b.port,
                            rack: b.rack,
                        })
                        .collect(),
                }
            } else {
                let request = MetadataRequest {
                    topics: Some(Vec::new()),
                    allow_auto_topic_creation: false,
                    ..Default::default()
                };
                let r = self.send_to(id, &request, dl.attempt_timeout())?;
                ClusterDescription {
                    cluster_id: r.cluster_id.filter(|c| !c.is_empty()),
                    controller: Some(r.controller_id).filter(|c| *c >= 0),
                    brokers: r
                        .brokers
                        .into_iter()
                        .map(|b| BrokerInfo {
                            id: b.node_id,
                            host: b.host,
                            port: b.port,
                            rack: b.rack,
                        })
                        .collect(),
                }
            };
            out.brokers.sort_by_key(|b| b.id);
            Ok(out)
        })
    }

    /// The API versions broker `broker_id` supports (`None`: any broker).
    pub fn api_versions(&self, broker_id: Option<i32>) -> Result<BrokerVersions> {
        self.check_version(broker_id).map(|v| v.api_versions)
    }

    /// Probes a broker (`None`: any broker): the API versions it supports
    /// and a best guess of its Kafka release, like kafka-python's
    /// `check_version()`.
    pub fn check_version(&self, broker_id: Option<i32>) -> Result<VersionInfo> {
        let dl = self.deadline(None);
        self.retry(&dl, &[], None, || {
            let id = match broker_id {
                Some(id) => {
                    self.cluster().ensure_broker_known(id)?;
                    id
                }
                None => self.any_broker()?,
            };
            let versions = self
                .cluster()
                .connection(id, Purpose::General)?
                .versions()?;
            Ok(VersionInfo {
                broker_id: Some(id),
                kafka_version: versions.guess_kafka_version(),
                api_versions: (*versions).clone(),
            })
        })
    }
}
