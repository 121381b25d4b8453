//! Topics: create, delete, list, describe, add partitions.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::{check, AdminClient, Answer, CONTROLLER_RETRY};
use crate::error::{Error, ErrorKind, Result};
use crate::protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use crate::protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use crate::protocol::messages::delete_topics_request::DeleteTopicState;
use crate::protocol::messages::metadata_request::MetadataRequestTopic;
use crate::protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, MetadataRequest,
};
use crate::protocol::{ErrorCode, Uuid};

/// A topic to create (kafka-python's `NewTopic`).
///
/// ```
/// use kafka_blocking::admin::NewTopic;
///
/// let t = NewTopic::new("orders", 6, 3)
///     .config("cleanup.policy", "compact")
///     .config("min.insync.replicas", "2");
/// assert_eq!(t.num_partitions, Some(6));
///
/// // Replicas chosen by hand: partition → broker ids (leader first).
/// let t = NewTopic::with_assignment("pinned", [(0, vec![1, 2]), (1, vec![2, 1])]);
/// assert_eq!(t.num_partitions, None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// The topic name.
    pub name: String,
    /// How many partitions; `None` for the broker's `num.partitions`
    /// (brokers 2.4+). Must be `None` when `replica_assignment` is given.
    pub num_partitions: Option<i32>,
    /// How many replicas of each partition; `None` for the broker's
    /// `default.replication.factor` (brokers 2.4+). Must be `None` when
    /// `replica_assignment` is given.
    pub replication_factor: Option<i16>,
    /// Topic configs (`retention.ms`, `cleanup.policy`, ...).
    pub configs: BTreeMap<String, String>,
    /// Partition index → the broker ids of its replicas, preferred leader
    /// first. Empty: the broker places replicas.
    pub replica_assignment: BTreeMap<i32, Vec<i32>>,
}

impl NewTopic {
    /// `name` with `num_partitions` partitions of `replication_factor`
    /// replicas each.
    pub fn new(name: impl Into<String>, num_partitions: i32, replication_factor: i16) -> NewTopic {
        NewTopic {
            name: name.into(),
            num_partitions: Some(num_partitions),
            replication_factor: Some(replication_factor),
            configs: BTreeMap::new(),
            replica_assignment: BTreeMap::new(),
        }
    }

    /// `name` with the broker's default partition count and replication
    /// factor (brokers 2.4+).
    pub fn with_defaults(name: impl Into<String>) -> NewTopic {
        NewTopic {
            name: name.into(),
            num_partitions: None,
            replication_factor: None,
            configs: BTreeMap::new(),
            replica_assignment: BTreeMap::new(),
        }
    }

    /// `name` with replicas placed by hand: partition index → broker ids.
    pub fn with_assignment(
        name: impl Into<String>,
        assignment: impl IntoIterator<Item = (i32, Vec<i32>)>,
    ) -> NewTopic {
        NewTopic {
            replica_assignment: assignment.into_iter().collect(),
            ..NewTopic::with_defaults(name)
        }
    }

    /// Adds (or replaces) one topic config.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> NewTopic {
        self.configs.insert(key.into(), value.into());
        self
    }

    fn to_request(&self) -> Result<CreatableTopic> {
        crate::validate::topic(&self.name)?;
        for (what, n) in [
            ("num_partitions", self.num_partitions.map(i64::from)),
            ("replication_factor", self.replication_factor.map(i64::from)),
        ] {
            if let Some(n) = n {
                crate::validate::count_or_default(what, &self.name, n)?;
            }
        }
        if !self.replica_assignment.is_empty()
            && (self.num_partitions.is_some() || self.replication_factor.is_some())
        {
            return Err(Error::invalid_argument(format!(
                "topic `{}`: give either num_partitions/replication_factor or replica_assignment, not both",
                self.name
            ))
            .with_topic(&self.name));
        }
        Ok(CreatableTopic {
            name: self.name.clone(),
            num_partitions: self.num_partitions.unwrap_or(-1),
            replication_factor: self.replication_factor.unwrap_or(-1),
            assignments: self
                .replica_assignment
                .iter()
                .map(|(p, brokers)| CreatableReplicaAssignment {
                    partition_index: *p,
                    broker_ids: brokers.clone(),
                    ..Default::default()
                })
                .collect(),
            configs: self
                .configs
                .iter()
                .map(|(k, v)| CreatableTopicConfig {
                    name: k.clone(),
                    value: Some(v.clone()),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
    }
}

/// Partitions to add to an existing topic (kafka-python's `NewPartitions`).
///
/// ```
/// use kafka_blocking::admin::NewPartitions;
///
/// let grow = NewPartitions::increase_to("orders", 12);
/// // Or with the replicas of each new partition placed by hand:
/// let grow = NewPartitions::increase_to("audit", 3).assignments(vec![vec![1], vec![2]]);
/// # let _ = grow;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPartitions {
    /// The topic.
    pub topic: String,
    /// The partition count after the change (it only grows).
    pub total_count: i32,
    /// For each new partition, its replicas' broker ids; `None`: the
    /// broker places them.
    pub assignments: Option<Vec<Vec<i32>>>,
}

impl NewPartitions {
    /// Grow `topic` to `total_count` partitions.
    pub fn increase_to(topic: impl Into<String>, total_count: i32) -> NewPartitions {
        NewPartitions {
            topic: topic.into(),
            total_count,
            assignments: None,
        }
    }

    /// Places the replicas of the new partitions (one list per new
    /// partition).
    pub fn assignments(mut self, assignments: Vec<Vec<i32>>) -> NewPartitions {
        self.assignments = Some(assignments);
        self
    }
}

/// A topic as [`AdminClient::describe_topics`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    /// The topic name.
    pub name: String,
    /// The topic id (zero on brokers before 2.8).
    pub topic_id: Uuid,
    /// Whether it is an internal topic such as `__consumer_offsets`.
    pub is_internal: bool,
    /// Its partitions, by index.
    pub partitions: Vec<PartitionDescription>,
}

/// One partition of a [`TopicDescription`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionDescription {
    /// The partition index.
    pub partition: i32,
    /// The leader's broker id; `None` while there is none.
    pub leader: Option<i32>,
    /// The leader epoch, when the broker reports it.
    pub leader_epoch: Option<i32>,
    /// Every replica's broker id, preferred leader first.
    pub replicas: Vec<i32>,
    /// The in-sync replicas.
    pub isr: Vec<i32>,
    /// Replicas on offline brokers or log dirs.
    pub offline_replicas: Vec<i32>,
}

impl AdminClient {
    /// Creates topics (on the controller), answering per topic.
    ///
    /// With `validate_only` the broker checks the request without creating
    /// anything. `timeout` (default `default_api_timeout_ms`) bounds the
    /// whole call, retries included, and is also what the broker may wait
    /// for the creation to finish. A topic that exists already fails with
    /// `TOPIC_ALREADY_EXISTS`; a bad replication factor with
    /// `INVALID_REPLICATION_FACTOR` and the broker's explanation.
    pub fn create_topics(
        &self,
        topics: impl IntoIterator<Item = NewTopic>,
        validate_only: bool,
        timeout: Option<Duration>,
    ) -> Result<Vec<(String, Result<()>)>> {
        let mut by_name: HashMap<String, NewTopic> = HashMap::new();
        let mut names = Vec::new();
        for t in topics {
            names.push(t.name.clone());
            by_name.entry(t.name.clone()).or_insert(t);
        }
        let dl = self.deadline(timeout);
        self.run_items(names, &dl, CONTROLLER_RETRY, |pending| {
            let mut out = Vec::new();
            let mut wanted = Vec::new();
            for name in pending {
                match by_name.get(name).map(NewTopic::to_request) {
                    Some(Ok(t)) => wanted.push(t),
                    Some(Err(e)) => out.push((name.clone(), Answer::Final(Err(e)))),
                    None => {}
                }
            }
            if wanted.is_empty() {
                return Ok(out);
            }
            let id = self.controller()?;
            if validate_only && self.version::<CreateTopicsRequest>(id)? < 1 {
                return Err(Error::new(
                    ErrorKind::UnsupportedVersion,
                    "validate_only needs CreateTopics v1 (Kafka 0.10.2+)",
                ));
            }
            let request = CreateTopicsRequest {
                topics: wanted,
                timeout_ms: dl.broker_timeout_ms(),
                validate_only,
                ..Default::default()
            };
            let response = self.send_to(id, &request, dl.long_attempt_timeout())?;
            for r in response.topics {
                let result = check(
                    r.error_code,
                    r.error_message.as_deref(),
                    format_args!("creating topic `{}`", r.name),
                )
                .map_err(|e| e.with_topic(&r.name));
                out.push((r.name, Answer::from_result(result, CONTROLLER_RETRY)));
            }
            Ok(out)
        })
    }

    /// Deletes topics (on the controller), answering per topic. A topic
    /// that does not exist fails with `UNKNOWN_TOPIC_OR_PARTITION`.
    pub fn delete_topics<S: Into<String>>(
        &self,
        topics: impl IntoIterator<Item = S>,
        timeout: Option<Duration>,
    ) -> Result<Vec<(String, Result<()>)>> {
        let names: Vec<String> = topics.into_iter().map(Into::into).collect();
        for n in &names {
            crate::validate::topic(n)?;
        }
        let dl = self.deadline(timeout);
        self.run_items(names, &dl, CONTROLLER_RETRY, |pending| {
            let id = self.controller()?;
            let version = self.version::<DeleteTopicsRequest>(id)?;
            let mut request = DeleteTopicsRequest {
                timeout_ms: dl.broker_timeout_ms(),
                ..Default::default()
            };
            if version >= 6 {
                request.topics = pending
                    .iter()
                    .map(|n| DeleteTopicState {
                        name: Some(n.clone()),
                        ..Default::default()
                    })
                    .collect();
            } else {
                request.topic_names = pending.to_vec();
            }
            let response = self.send_to(id, &request, dl.long_attempt_timeout())?;
            Ok(response
                .responses
                .into_iter()
                .filter_map(|r| {
                    let name = r.name?;
                    let result = check(
                        r.error_code,
                        r.error_message.as_deref(),
                        format_args!("deleting topic `{name}`"),
                    )
                    .map_err(|e| e.with_topic(&name));
                    Some((name, Answer::from_result(result, CONTROLLER_RETRY)))
                })
                .collect())
        })
    }

    /// The names of every topic in the cluster except internal ones
    /// (`__consumer_offsets`, ...), sorted.
    pub fn list_topics(&self) -> Result<Vec<String>> {
        let dl = self.deadline(None);
        let request = MetadataRequest {
            topics: None,
            allow_auto_topic_creation: false,
            ..Default::default()
        };
        let response = self.retry(&dl, &[], None, || {
            let id = self.any_broker()?;
            self.send_to(id, &request, dl.attempt_timeout())
        })?;
        let mut names: Vec<String> = response
            .topics
            .into_iter()
            .filter(|t| !t.is_internal && ErrorCode(t.error_code).is_ok())
            .filter_map(|t| t.name)
            .collect();
        names.sort();
        Ok(names)
    }

    /// Partitions, leaders, replicas and in-sync replicas of each topic.
    /// A topic that does not exist fails with `UNKNOWN_TOPIC_OR_PARTITION`
    /// (nothing is created, whatever `auto.create.topics.enable` says).
    pub fn describe_topics<S: Into<String>>(
        &self,
        topics: impl IntoIterator<Item = S>,
    ) -> Result<Vec<(String, Result<TopicDescription>)>> {
        let names: Vec<String> = topics.into_iter().map(Into::into).collect();
        let dl = self.deadline(None);
        // A topic just created may not have leaders everywhere yet.
        const RETRY: &[ErrorCode] = &[ErrorCode::LEADER_NOT_AVAILABLE];
        self.run_items(names, &dl, RETRY, |pending| {
            let id = self.any_broker()?;
            let request = MetadataRequest {
                topics: Some(
                    pending
                        .iter()
                        .map(|n| MetadataRequestTopic {
                            name: Some(n.clone()),
                            ..Default::default()
                        })
                        .collect(),
                ),
                allow_auto_topic_creation: false,
                ..Default::default()
            };
            let response = self.send_to(id, &request, dl.attempt_timeout())?;
            Ok(response
                .topics
                .into_iter()
                .filter_map(|t| {
                    let name = t.name?;
                    let result = check(
                        t.error_code,
                        None,
                        format_args!("describing topic `{name}`"),
                    )
                    .map_err(|e| e.with_topic(&name))
                    .map(|()| {
                        let mut partitions: Vec<PartitionDescription> = t
                            .partitions
                            .into_iter()
                            .map(|p| PartitionDescription {
                                partition: p.partition_index,
                                leader: Some(p.leader_id).filter(|l| *l >= 0),
                                leader_epoch: Some(p.leader_epoch).filter(|e| *e >= 0),
                                replicas: p.replica_nodes,
                                isr: p.isr_nodes,
                                offline_replicas: p.offline_replicas,
                            })
                            .collect();
                        partitions.sort_by_key(|p| p.partition);
                        TopicDescription {
                            name: name.clone(),
                            topic_id: t.topic_id,
                            is_internal: t.is_internal,
                            partitions,
                        }
                    });
                    Some((name, Answer::from_result(result, RETRY)))
                })
                .collect())
        })
    }

    /// Adds partitions to existing topics (on the controller), answering
    /// per topic. Partitions can only be added, never removed; asking for
    /// fewer than the topic has fails with `INVALID_PARTITIONS`.
    pub fn create_partitions(
        &self,
        partitions: impl IntoIterator<Item = NewPartitions>,
        validate_only: bool,
        timeout: Option<Duration>,
    ) -> Result<Vec<(String, Result<()>)>> {
        let mut by_topic: HashMap<String, NewPartitions> = HashMap::new();
        let mut names = Vec::new();
        for p in partitions {
            crate::validate::topic(&p.topic)?;
            if p.total_count < 1 {
                return Err(Error::invalid_argument(format!(
                    "total partitions {} for `{}` must be at least 1",
                    p.total_count, p.topic
                ))
                .with_topic(&p.topic));
            }
            names.push(p.topic.clone());
            by_topic.entry(p.topic.clone()).or_insert(p);
        }
        let dl = self.deadline(timeout);
        self.run_items(names, &dl, CONTROLLER_RETRY, |pending| {
            let id = self.controller()?;
            let request = CreatePartitionsRequest {
                topics: pending
                    .iter()
                    .filter_map(|n| by_topic.get(n))
                    .map(|p| CreatePartitionsTopic {
                        name: p.topic.clone(),
                        count: p.total_count,
                        assignments: p.assignments.as_ref().map(|a| {
                            a.iter()
                                .map(|brokers| CreatePartitionsAssignment {
                                    broker_ids: brokers.clone(),
                                    ..Default::default()
                                })
                                .collect()
                        }),
                        ..Default::default()
                    })
                    .collect(),
                timeout_ms: dl.broker_timeout_ms(),
                validate_only,
                ..Default::default()
            };
            let response = self.send_to(id, &request, dl.long_attempt_timeout())?;
            Ok(response
                .results
                .into_iter()
                .map(|r| {
                    let result = check(
                        r.error_code,
                        r.error_message.as_deref(),
                        format_args!("adding partitions to topic `{}`", r.name),
                    )
                    .map_err(|e| e.with_topic(&r.name));
                    (r.name, Answer::from_result(result, CONTROLLER_RETRY))
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_topic_maps_defaults_and_assignments() {
        let t = NewTopic::with_defaults("a").to_request().unwrap();
        assert_eq!((t.num_partitions, t.replication_factor), (-1, -1));
        let t = NewTopic::new("b", 3, 2)
            .config("retention.ms", "1000")
            .to_request()
            .unwrap();
        assert_eq!((t.num_partitions, t.replication_factor), (3, 2));
        assert_eq!(t.configs[0].name, "retention.ms");
        assert_eq!(t.configs[0].value.as_deref(), Some("1000"));
        let t = NewTopic::with_assignment("c", [(1, vec![2, 3]), (0, vec![3, 2])])
            .to_request()
            .unwrap();
        assert_eq!(t.assignments.len(), 2);
        assert_eq!(t.assignments[0].partition_index, 0);
        assert_eq!(t.assignments[0].broker_ids, vec![3, 2]);
        assert_eq!((t.num_partitions, t.replication_factor), (-1, -1));
    }

    #[test]
    fn new_topic_rejects_contradictions() {
        let mut t = NewTopic::with_assignment("c", [(0, vec![1])]);
        t.num_partitions = Some(1);
        let e = t.to_request().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert_eq!(e.topic(), Some("c"));
        assert!(NewTopic::new("", 1, 1).to_request().is_err());
    }
}
