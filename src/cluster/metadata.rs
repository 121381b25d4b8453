//! The immutable metadata snapshot: brokers, topics, partitions, leaders.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use crate::protocol::messages::MetadataResponse;
use crate::protocol::{ErrorCode, Uuid};

/// A broker as the cluster advertises it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    /// The broker's node id.
    pub id: i32,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: i32,
    /// Rack, when configured.
    pub rack: Option<String>,
}

/// One partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMetadata {
    /// Partition index.
    pub partition: i32,
    /// Leader's node id, or -1 while there is none.
    pub leader: i32,
    /// The leader epoch (-1 when the broker does not report it).
    pub leader_epoch: i32,
    /// All replicas.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// Offline replicas.
    pub offline_replicas: Vec<i32>,
    /// A per-partition error (e.g. LEADER_NOT_AVAILABLE).
    pub error: ErrorCode,
}

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    /// Topic name.
    pub name: String,
    /// Topic id (zero on brokers before 2.8).
    pub topic_id: Uuid,
    /// Whether this is an internal topic such as `__consumer_offsets`.
    pub is_internal: bool,
    /// A topic-level error (UNKNOWN_TOPIC_OR_PARTITION, TOPIC_AUTHORIZATION_FAILED, ...).
    pub error: ErrorCode,
    /// Partitions sorted by index.
    pub partitions: Vec<PartitionMetadata>,
}

impl TopicMetadata {
    /// The partition with index `p`, if any.
    pub fn partition(&self, p: i32) -> Option<&PartitionMetadata> {
        // Partitions are sorted and usually dense, so try the index first.
        match self.partitions.get(p as usize) {
            Some(m) if m.partition == p => Some(m),
            _ => self.partitions.iter().find(|m| m.partition == p),
        }
    }
}

/// What the client knows about the cluster at one moment. Immutable; a
/// refresh builds a new snapshot and swaps it in.
#[derive(Debug, Clone)]
pub struct ClusterMetadata {
    /// The cluster id (brokers 0.10.1+).
    pub cluster_id: Option<String>,
    /// The controller's node id, when known.
    pub controller_id: Option<i32>,
    /// Brokers by node id.
    pub brokers: BTreeMap<i32, BrokerInfo>,
    /// Topics by name.
    pub topics: HashMap<String, TopicMetadata>,
    pub(crate) refreshed_at: Option<Instant>,
}

impl ClusterMetadata {
    pub(crate) fn empty() -> ClusterMetadata {
        ClusterMetadata {
            cluster_id: None,
            controller_id: None,
            brokers: BTreeMap::new(),
            topics: HashMap::new(),
            refreshed_at: None,
        }
    }

    /// The topic named `name`, if known.
    pub fn topic(&self, name: &str) -> Option<&TopicMetadata> {
        self.topics.get(name)
    }

    /// The leader of `topic`/`partition`, if known and available.
    pub fn leader(&self, topic: &str, partition: i32) -> Option<i32> {
        self.topic(topic)?
            .partition(partition)
            .map(|p| p.leader)
            .filter(|l| *l >= 0)
    }

    /// The broker with node id `id`.
    pub fn broker(&self, id: i32) -> Option<&BrokerInfo> {
        self.brokers.get(&id)
    }

    /// When this snapshot was fetched.
    pub fn refreshed_at(&self) -> Option<Instant> {
        self.refreshed_at
    }

    /// A new snapshot: `response` merged over `self`. When `all_topics` is
    /// set the response is the whole topic list and replaces it; otherwise
    /// only the topics in the response are replaced.
    pub(crate) fn merge(&self, response: &MetadataResponse, all_topics: bool) -> ClusterMetadata {
        let brokers = response
            .brokers
            .iter()
            .map(|b| {
                (
                    b.node_id,
                    BrokerInfo {
                        id: b.node_id,
                        host: b.host.clone(),
                        port: b.port,
                        rack: b.rack.clone(),
                    },
                )
            })
            .collect();
        let mut topics = if all_topics {
            HashMap::new()
        } else {
            self.topics.clone()
        };
        for t in &response.topics {
            let Some(name) = t.name.clone() else { continue };
            let mut partitions: Vec<PartitionMetadata> = t
                .partitions
                .iter()
                .map(|p| PartitionMetadata {
                    partition: p.partition_index,
                    leader: p.leader_id,
                    leader_epoch: p.leader_epoch,
                    replicas: p.replica_nodes.clone(),
                    isr: p.isr_nodes.clone(),
                    offline_replicas: p.offline_replicas.clone(),
                    error: ErrorCode(p.error_code),
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            topics.insert(
                name.clone(),
                TopicMetadata {
                    name,
                    topic_id: t.topic_id,
                    is_internal: t.is_internal,
                    error: ErrorCode(t.error_code),
                    partitions,
                },
            );
        }
        ClusterMetadata {
            cluster_id: response.cluster_id.clone(),
            controller_id: Some(response.controller_id).filter(|c| *c >= 0),
            brokers,
            topics,
            refreshed_at: Some(Instant::now()),
        }
    }
}
