//! What the group thread needs to know: its [`GroupConfig`] (built by the
//! consumer from its own configuration), the [`GroupProtocol`] and the
//! classic [`AssignmentStrategy`]s (public, re-exported by
//! [`consumer`](crate::consumer)).

use std::time::Duration;

use crate::config::ClientConfig;

/// The consumer group protocol (`group_protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupProtocol {
    /// JoinGroup/SyncGroup/Heartbeat with client-side assignment (the
    /// default; every broker).
    Classic,
    /// KIP-848: the broker assigns partitions through ConsumerGroupHeartbeat
    /// (Kafka 4.0+). When the coordinator does not offer that API the
    /// consumer falls back to `classic` and logs a warning.
    Consumer,
}

/// A partition assignment strategy of the classic protocol, with the names
/// the Java client and kafka-python put on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AssignmentStrategy {
    /// `range`: per topic, consecutive partition ranges to members sorted
    /// by id (eager).
    Range,
    /// `roundrobin`: all partitions dealt one by one to the members (eager).
    RoundRobin,
    /// `sticky`: balanced, keeping as many previous owners as possible
    /// (eager: every partition is revoked at each rebalance). The contract
    /// of the Java client's `StickyAssignor`, not its exact algorithm: a
    /// group led by this client may place partitions differently (see the
    /// crate's `group/assignor.rs` docs).
    Sticky,
    /// `cooperative-sticky`: as `sticky`, but only partitions that move are
    /// revoked (incremental cooperative rebalancing).
    CooperativeSticky,
}

impl AssignmentStrategy {
    /// The protocol name sent in JoinGroup.
    pub fn name(self) -> &'static str {
        match self {
            AssignmentStrategy::Range => "range",
            AssignmentStrategy::RoundRobin => "roundrobin",
            AssignmentStrategy::Sticky => "sticky",
            AssignmentStrategy::CooperativeSticky => "cooperative-sticky",
        }
    }

    /// Whether this strategy supports the cooperative rebalance protocol.
    pub fn is_cooperative(self) -> bool {
        self == AssignmentStrategy::CooperativeSticky
    }

    /// Parses a protocol name, a Java class name, or a kafka-python class
    /// name.
    pub fn parse(s: &str) -> Option<AssignmentStrategy> {
        let s = s.trim();
        let short = s.rsplit('.').next().unwrap_or(s).to_ascii_lowercase();
        match short.as_str() {
            "range" | "rangeassignor" | "rangepartitionassignor" => Some(AssignmentStrategy::Range),
            "roundrobin" | "round_robin" | "roundrobinassignor" | "roundrobinpartitionassignor" => {
                Some(AssignmentStrategy::RoundRobin)
            }
            "sticky" | "stickyassignor" | "stickypartitionassignor" => {
                Some(AssignmentStrategy::Sticky)
            }
            "cooperative-sticky" | "cooperative_sticky" | "cooperativestickyassignor" => {
                Some(AssignmentStrategy::CooperativeSticky)
            }
            _ => None,
        }
    }

    /// Looks a strategy up by its protocol name.
    pub(crate) fn from_name(name: &str) -> Option<AssignmentStrategy> {
        [
            AssignmentStrategy::Range,
            AssignmentStrategy::RoundRobin,
            AssignmentStrategy::Sticky,
            AssignmentStrategy::CooperativeSticky,
        ]
        .into_iter()
        .find(|a| a.name() == name)
    }
}

/// The group thread's settings, taken from the consumer's configuration
/// (see `ConsumerConfig::group_config`).
#[derive(Debug, Clone)]
pub(crate) struct GroupConfig {
    pub(crate) client: ClientConfig,
    pub(crate) group_id: String,
    pub(crate) group_instance_id: Option<String>,
    pub(crate) enable_auto_commit: bool,
    pub(crate) auto_commit_interval: Duration,
    pub(crate) max_poll_interval: Duration,
    pub(crate) session_timeout: Duration,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) assignors: Vec<AssignmentStrategy>,
    pub(crate) group_protocol: GroupProtocol,
    pub(crate) group_remote_assignor: Option<String>,
    pub(crate) client_rack: Option<String>,
}
