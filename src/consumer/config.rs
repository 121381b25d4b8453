//! Consumer configuration: kafka-python's names and defaults, checked at
//! build time.

use std::time::Duration;

use crate::config::{client_options, ClientConfig, ClientConfigBuilder};
use crate::error::{Error, Result};
use crate::group::GroupConfig;
pub use crate::group::{AssignmentStrategy, GroupProtocol};

/// What to do when a partition has no committed offset, or its position is
/// out of range (kafka-python's `auto_offset_reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AutoOffsetReset {
    /// Start from the oldest record (`earliest`, `smallest`, `beginning`).
    Earliest,
    /// Start after the newest record (`latest`, `largest`, `end`; the default).
    Latest,
    /// Fail with [`ErrorKind::NoOffset`](crate::ErrorKind::NoOffset)
    /// (`none`, `error`).
    None,
}

impl AutoOffsetReset {
    fn parse(s: &str) -> Option<AutoOffsetReset> {
        match s.trim().to_ascii_lowercase().as_str() {
            "earliest" | "smallest" | "beginning" => Some(AutoOffsetReset::Earliest),
            "latest" | "largest" | "end" => Some(AutoOffsetReset::Latest),
            "none" | "error" => Some(AutoOffsetReset::None),
            _ => None,
        }
    }
}

/// Which records a consumer sees from transactional producers
/// (kafka-python's `isolation_level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IsolationLevel {
    /// Every record, including those of open and aborted transactions (the
    /// default).
    ReadUncommitted,
    /// Only records of committed transactions, up to the last stable offset.
    ReadCommitted,
}

impl IsolationLevel {
    pub(crate) fn as_i8(self) -> i8 {
        match self {
            IsolationLevel::ReadUncommitted => 0,
            IsolationLevel::ReadCommitted => 1,
        }
    }
}

/// A validated consumer configuration; see [`ConsumerBuilder`].
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub(crate) client: ClientConfig,
    pub(crate) group_id: Option<String>,
    pub(crate) group_instance_id: Option<String>,
    pub(crate) auto_offset_reset: AutoOffsetReset,
    pub(crate) enable_auto_commit: bool,
    pub(crate) auto_commit_interval: Duration,
    pub(crate) fetch_min_bytes: i32,
    pub(crate) fetch_max_wait: Duration,
    pub(crate) fetch_max_bytes: i32,
    pub(crate) max_partition_fetch_bytes: i32,
    pub(crate) max_poll_records: usize,
    pub(crate) max_poll_interval: Duration,
    pub(crate) session_timeout: Duration,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) assignors: Vec<AssignmentStrategy>,
    pub(crate) isolation_level: IsolationLevel,
    pub(crate) consumer_timeout: Option<Duration>,
    pub(crate) check_crcs: bool,
    pub(crate) max_decompressed_bytes: usize,
    pub(crate) exclude_internal_topics: bool,
    pub(crate) allow_auto_create_topics: bool,
    pub(crate) group_protocol: GroupProtocol,
    pub(crate) group_remote_assignor: Option<String>,
    pub(crate) client_rack: Option<String>,
}

impl ConsumerConfig {
    /// The shared client options.
    pub fn client(&self) -> &ClientConfig {
        &self.client
    }
    /// `group_id` (`None`: no group; partitions must be assigned).
    pub fn group_id(&self) -> Option<&str> {
        self.group_id.as_deref()
    }
    /// `group_instance_id` (static membership).
    pub fn group_instance_id(&self) -> Option<&str> {
        self.group_instance_id.as_deref()
    }
    /// `auto_offset_reset`.
    pub fn auto_offset_reset(&self) -> AutoOffsetReset {
        self.auto_offset_reset
    }
    /// Whether offsets are committed automatically.
    pub fn enable_auto_commit(&self) -> bool {
        self.enable_auto_commit
    }
    /// `auto_commit_interval_ms`.
    pub fn auto_commit_interval(&self) -> Duration {
        self.auto_commit_interval
    }
    /// `fetch_max_wait_ms`.
    pub fn fetch_max_wait(&self) -> Duration {
        self.fetch_max_wait
    }
    /// `max_poll_records`.
    pub fn max_poll_records(&self) -> usize {
        self.max_poll_records
    }
    /// `max_poll_interval_ms`.
    pub fn max_poll_interval(&self) -> Duration {
        self.max_poll_interval
    }
    /// `session_timeout_ms`.
    pub fn session_timeout(&self) -> Duration {
        self.session_timeout
    }
    /// `heartbeat_interval_ms`.
    pub fn heartbeat_interval(&self) -> Duration {
        self.heartbeat_interval
    }
    /// `partition_assignment_strategy`, in order of preference.
    pub fn assignors(&self) -> &[AssignmentStrategy] {
        &self.assignors
    }
    /// `isolation_level`.
    pub fn isolation_level(&self) -> IsolationLevel {
        self.isolation_level
    }
    /// `consumer_timeout_ms` (`None`: iteration blocks forever).
    pub fn consumer_timeout(&self) -> Option<Duration> {
        self.consumer_timeout
    }
    /// `check_crcs`.
    pub fn check_crcs(&self) -> bool {
        self.check_crcs
    }
    /// `max_decompressed_bytes`.
    pub fn max_decompressed_bytes(&self) -> usize {
        self.max_decompressed_bytes
    }
    /// `group_protocol`.
    pub fn group_protocol(&self) -> GroupProtocol {
        self.group_protocol
    }

    /// The group thread's settings, when there is a `group_id`.
    pub(crate) fn group_config(&self) -> Option<GroupConfig> {
        Some(GroupConfig {
            client: self.client.clone(),
            group_id: self.group_id.clone()?,
            group_instance_id: self.group_instance_id.clone(),
            enable_auto_commit: self.enable_auto_commit,
            auto_commit_interval: self.auto_commit_interval,
            max_poll_interval: self.max_poll_interval,
            session_timeout: self.session_timeout,
            heartbeat_interval: self.heartbeat_interval,
            assignors: self.assignors.clone(),
            group_protocol: self.group_protocol,
            group_remote_assignor: self.group_remote_assignor.clone(),
            client_rack: self.client_rack.clone(),
        })
    }
}

/// Builds a [`Consumer`](super::Consumer). Setters take kafka-python's
/// names; [`build`](ConsumerBuilder::build) checks every value and names the
/// first bad key.
///
/// | key | default | note |
/// |---|---|---|
/// | `group_id` | none | without it, [`assign`](super::Consumer::assign) partitions yourself |
/// | `group_instance_id` | none | static membership (needs `group_id`) |
/// | `auto_offset_reset` | `latest` | `earliest`/`smallest`/`beginning`, `latest`/`largest`/`end`, `none`/`error` |
/// | `enable_auto_commit` | `true` | only with a `group_id` |
/// | `auto_commit_interval_ms` | 5000 | |
/// | `fetch_min_bytes` | 1 | |
/// | `fetch_max_wait_ms` | 500 | |
/// | `fetch_max_bytes` | 52428800 | per fetch request (one per broker) |
/// | `max_partition_fetch_bytes` | 1048576 | per partition and request |
/// | `max_poll_records` | 500 | per [`poll`](super::Consumer::poll) |
/// | `max_poll_interval_ms` | 300000 | longer between polls leaves the group |
/// | `session_timeout_ms` | 45000 | classic protocol |
/// | `heartbeat_interval_ms` | 3000 | classic protocol; below `session_timeout_ms` |
/// | `partition_assignment_strategy` | `range`, `cooperative-sticky` | also `roundrobin`, `sticky` (as the Java client 4.x) |
/// | `isolation_level` | `read_uncommitted` | or `read_committed` |
/// | `consumer_timeout_ms` | forever | iteration ends after this long without records (from the first assignment) |
/// | `check_crcs` | `true` | |
/// | `max_decompressed_bytes` | 67108864 | the most one compressed batch may decompress to (not a kafka-python key) |
/// | `exclude_internal_topics` | `true` | pattern subscriptions skip the topics the broker flags internal (`__consumer_offsets`, ...) |
/// | `allow_auto_create_topics` | `true` | subscribing to a missing topic may create it |
/// | `group_protocol` | `classic` | `consumer`: KIP-848, when the broker offers it |
/// | `group_remote_assignor` | broker's | `group_protocol=consumer` only (`uniform`, `range`) |
/// | `client_rack` | none | sent in Fetch (the leader may name a closer replica to read from, KIP-392), to the coordinator (KIP-848) and in subscriptions |
#[derive(Debug, Clone, Default)]
pub struct ConsumerBuilder {
    pub(crate) client: ClientConfigBuilder,
    group_id: Option<String>,
    group_instance_id: Option<String>,
    auto_offset_reset: Option<String>,
    enable_auto_commit: Option<bool>,
    auto_commit_interval_ms: Option<i64>,
    fetch_min_bytes: Option<i64>,
    fetch_max_wait_ms: Option<i64>,
    fetch_max_bytes: Option<i64>,
    max_partition_fetch_bytes: Option<i64>,
    max_poll_records: Option<i64>,
    max_poll_interval_ms: Option<i64>,
    session_timeout_ms: Option<i64>,
    heartbeat_interval_ms: Option<i64>,
    partition_assignment_strategy: Option<Vec<String>>,
    isolation_level: Option<String>,
    consumer_timeout_ms: Option<i64>,
    check_crcs: Option<bool>,
    max_decompressed_bytes: Option<i64>,
    exclude_internal_topics: Option<bool>,
    allow_auto_create_topics: Option<bool>,
    group_protocol: Option<String>,
    group_remote_assignor: Option<String>,
    client_rack: Option<String>,
}

impl ConsumerBuilder {
    client_options!();

    /// `group_id`: the consumer group to join (default none: no group, no
    /// commits; assign partitions with [`assign`](super::Consumer::assign)).
    pub fn group_id(mut self, id: impl Into<String>) -> Self {
        self.group_id = Some(id.into());
        self
    }

    /// `group_instance_id`: a stable id for static membership; a restart
    /// within `session_timeout_ms` gets the same partitions back without a
    /// rebalance.
    pub fn group_instance_id(mut self, id: impl Into<String>) -> Self {
        self.group_instance_id = Some(id.into());
        self
    }

    /// `auto_offset_reset`: `earliest`, `latest` (default) or `none`; the
    /// librdkafka spellings `smallest`, `largest`, `beginning`, `end` and
    /// `error` are accepted too.
    pub fn auto_offset_reset(mut self, policy: impl Into<String>) -> Self {
        self.auto_offset_reset = Some(policy.into());
        self
    }

    /// `enable_auto_commit`: commit the positions every
    /// `auto_commit_interval_ms`, before partitions are revoked and on close
    /// (default `true` with a `group_id`).
    pub fn enable_auto_commit(mut self, on: bool) -> Self {
        self.enable_auto_commit = Some(on);
        self
    }

    /// `auto_commit_interval_ms` (default 5000).
    pub fn auto_commit_interval_ms(mut self, ms: i64) -> Self {
        self.auto_commit_interval_ms = Some(ms);
        self
    }

    /// `fetch_min_bytes`: the broker waits for this much data, up to
    /// `fetch_max_wait_ms` (default 1).
    pub fn fetch_min_bytes(mut self, n: i64) -> Self {
        self.fetch_min_bytes = Some(n);
        self
    }

    /// `fetch_max_wait_ms`: how long the broker may hold a fetch waiting for
    /// `fetch_min_bytes` (default 500).
    pub fn fetch_max_wait_ms(mut self, ms: i64) -> Self {
        self.fetch_max_wait_ms = Some(ms);
        self
    }

    /// `fetch_max_bytes`: the most data one fetch response may carry
    /// (default 52428800); also bounds what is buffered per broker.
    pub fn fetch_max_bytes(mut self, n: i64) -> Self {
        self.fetch_max_bytes = Some(n);
        self
    }

    /// `max_partition_fetch_bytes`: the most data per partition in one
    /// fetch (default 1048576).
    pub fn max_partition_fetch_bytes(mut self, n: i64) -> Self {
        self.max_partition_fetch_bytes = Some(n);
        self
    }

    /// `max_poll_records`: the most records one [`poll`](super::Consumer::poll)
    /// returns (default 500).
    pub fn max_poll_records(mut self, n: i64) -> Self {
        self.max_poll_records = Some(n);
        self
    }

    /// `max_poll_interval_ms`: the longest time between two polls (or
    /// `next()` calls) before the consumer leaves its group so the others can
    /// take its partitions (default 300000).
    pub fn max_poll_interval_ms(mut self, ms: i64) -> Self {
        self.max_poll_interval_ms = Some(ms);
        self
    }

    /// `session_timeout_ms`: the coordinator drops a member whose heartbeats
    /// stop for this long (default 45000).
    pub fn session_timeout_ms(mut self, ms: i64) -> Self {
        self.session_timeout_ms = Some(ms);
        self
    }

    /// `heartbeat_interval_ms` (default 3000; below `session_timeout_ms`).
    pub fn heartbeat_interval_ms(mut self, ms: i64) -> Self {
        self.heartbeat_interval_ms = Some(ms);
        self
    }

    /// `partition_assignment_strategy`: strategies in order of preference,
    /// by protocol name (`range`, `roundrobin`, `sticky`,
    /// `cooperative-sticky`) or Java class name (default `range`,
    /// `cooperative-sticky`, as the Java client 4.x).
    pub fn partition_assignment_strategy<I, S>(mut self, strategies: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.partition_assignment_strategy = Some(
            strategies
                .into_iter()
                .flat_map(|s| {
                    s.as_ref()
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
                .collect(),
        );
        self
    }

    /// `isolation_level`: `read_uncommitted` (default) or `read_committed`.
    pub fn isolation_level(mut self, level: impl Into<String>) -> Self {
        self.isolation_level = Some(level.into());
        self
    }

    /// `consumer_timeout_ms`: iteration ends (`next()` returns `None`) after
    /// this long without a record; `-1` blocks forever (the default). With a
    /// group subscription the clock starts at the first assignment: joining
    /// takes seconds (the broker's initial rebalance delay) and may take up
    /// to `request_timeout_ms` before it counts.
    pub fn consumer_timeout_ms(mut self, ms: i64) -> Self {
        self.consumer_timeout_ms = Some(ms);
        self
    }

    /// `check_crcs`: verify each batch's CRC (default `true`).
    pub fn check_crcs(mut self, on: bool) -> Self {
        self.check_crcs = Some(on);
        self
    }

    /// `max_decompressed_bytes`: the most one compressed batch may
    /// decompress to (default 64 MiB,
    /// [`DEFAULT_MAX_DECOMPRESSED_BYTES`](crate::records::DEFAULT_MAX_DECOMPRESSED_BYTES)).
    /// A batch that decompresses to more is reported as a `Compression`
    /// error naming this setting, and the partition cannot be read past it
    /// until the setting is raised: the cap guards against decompression
    /// bombs, so raise it only for producers you trust to send highly
    /// compressible batches. Not a kafka-python key (it has no cap).
    pub fn max_decompressed_bytes(mut self, n: i64) -> Self {
        self.max_decompressed_bytes = Some(n);
        self
    }

    /// `exclude_internal_topics`: pattern subscriptions never match the
    /// topics the broker flags as internal, such as `__consumer_offsets`
    /// (default `true`). A user topic whose name starts with `__` is not
    /// internal and is matched.
    pub fn exclude_internal_topics(mut self, on: bool) -> Self {
        self.exclude_internal_topics = Some(on);
        self
    }

    /// `allow_auto_create_topics`: let metadata requests for subscribed
    /// topics create them when the broker allows it (default `true`).
    pub fn allow_auto_create_topics(mut self, on: bool) -> Self {
        self.allow_auto_create_topics = Some(on);
        self
    }

    /// `group_protocol`: `classic` (default) or `consumer` (KIP-848).
    pub fn group_protocol(mut self, protocol: impl Into<String>) -> Self {
        self.group_protocol = Some(protocol.into());
        self
    }

    /// `group_remote_assignor`: the server-side assignor to ask for with
    /// `group_protocol=consumer` (default: the broker's).
    pub fn group_remote_assignor(mut self, name: impl Into<String>) -> Self {
        self.group_remote_assignor = Some(name.into());
        self
    }

    /// `client_rack`: the rack of this consumer.
    pub fn client_rack(mut self, rack: impl Into<String>) -> Self {
        self.client_rack = Some(rack.into());
        self
    }

    /// The options without starting a consumer.
    pub fn config(self) -> Result<ConsumerConfig> {
        let client = self.client.build()?;
        let range = |key: &str, v: Option<i64>, default: i64, min: i64, max: i64| -> Result<i64> {
            match v {
                None => Ok(default),
                Some(v) if (min..=max).contains(&v) => Ok(v),
                Some(v) => Err(Error::config(key, format!("{v} is outside {min}..={max}"))),
            }
        };
        let ms = |key: &str, v: Option<i64>, default: i64, min: i64| -> Result<Duration> {
            range(key, v, default, min, i32::MAX as i64).map(|v| Duration::from_millis(v as u64))
        };
        let non_empty = |key: &str, v: Option<String>| -> Result<Option<String>> {
            match v {
                Some(s) if s.trim().is_empty() => {
                    Err(Error::config(key, "is empty; leave it unset instead"))
                }
                other => Ok(other),
            }
        };
        let group_id = non_empty("group_id", self.group_id)?;
        let group_instance_id = non_empty("group_instance_id", self.group_instance_id)?;
        if group_instance_id.is_some() && group_id.is_none() {
            return Err(Error::config(
                "group_instance_id",
                "needs a group_id: static membership is membership of a group",
            ));
        }
        let auto_offset_reset = match &self.auto_offset_reset {
            None => AutoOffsetReset::Latest,
            Some(s) => AutoOffsetReset::parse(s).ok_or_else(|| {
                Error::config(
                    "auto_offset_reset",
                    format!("`{s}`: expected earliest, latest or none"),
                )
            })?,
        };
        let enable_auto_commit = match (self.enable_auto_commit, &group_id) {
            (Some(true), None) => {
                return Err(Error::config(
                    "enable_auto_commit",
                    "needs a group_id: offsets are committed for a group; set group_id or enable_auto_commit=false",
                ))
            }
            (Some(on), Some(_)) => on,
            (None, Some(_)) => true,
            (_, None) => false,
        };
        let auto_commit_interval = ms(
            "auto_commit_interval_ms",
            self.auto_commit_interval_ms,
            5_000,
            0,
        )?;
        let fetch_min_bytes = range(
            "fetch_min_bytes",
            self.fetch_min_bytes,
            1,
            0,
            i32::MAX as i64,
        )? as i32;
        let fetch_max_wait = ms("fetch_max_wait_ms", self.fetch_max_wait_ms, 500, 0)?;
        let fetch_max_bytes = range(
            "fetch_max_bytes",
            self.fetch_max_bytes,
            52_428_800,
            1,
            i32::MAX as i64,
        )? as i32;
        let max_partition_fetch_bytes = range(
            "max_partition_fetch_bytes",
            self.max_partition_fetch_bytes,
            1_048_576,
            1,
            i32::MAX as i64,
        )? as i32;
        let max_poll_records = range(
            "max_poll_records",
            self.max_poll_records,
            500,
            1,
            i32::MAX as i64,
        )? as usize;
        let max_poll_interval = ms(
            "max_poll_interval_ms",
            self.max_poll_interval_ms,
            300_000,
            1,
        )?;
        let session_timeout = ms("session_timeout_ms", self.session_timeout_ms, 45_000, 1)?;
        let heartbeat_interval = ms(
            "heartbeat_interval_ms",
            self.heartbeat_interval_ms,
            3_000,
            1,
        )?;
        let group_protocol = match self.group_protocol.as_deref().map(str::trim) {
            None => GroupProtocol::Classic,
            Some(p) if p.eq_ignore_ascii_case("classic") => GroupProtocol::Classic,
            Some(p) if p.eq_ignore_ascii_case("consumer") => GroupProtocol::Consumer,
            Some(p) => {
                return Err(Error::config(
                    "group_protocol",
                    format!("`{p}`: expected classic or consumer"),
                ))
            }
        };
        if group_protocol == GroupProtocol::Consumer {
            // As the Java client: these belong to the classic protocol; with
            // KIP-848 the broker decides them.
            for (key, set) in [
                (
                    "partition_assignment_strategy",
                    self.partition_assignment_strategy.is_some(),
                ),
                ("session_timeout_ms", self.session_timeout_ms.is_some()),
                (
                    "heartbeat_interval_ms",
                    self.heartbeat_interval_ms.is_some(),
                ),
            ] {
                if set {
                    return Err(Error::config(
                        key,
                        "is not used with group_protocol=consumer (the broker's group.consumer.* settings apply); remove it or use group_protocol=classic",
                    ));
                }
            }
        } else {
            if self.group_remote_assignor.is_some() {
                return Err(Error::config(
                    "group_remote_assignor",
                    "only applies to group_protocol=consumer",
                ));
            }
            if heartbeat_interval >= session_timeout {
                return Err(Error::config(
                    "heartbeat_interval_ms",
                    format!(
                        "{} ms must be lower than session_timeout_ms ({} ms); a third of it is usual",
                        heartbeat_interval.as_millis(),
                        session_timeout.as_millis()
                    ),
                ));
            }
        }
        let assignors = match &self.partition_assignment_strategy {
            None => vec![
                AssignmentStrategy::Range,
                AssignmentStrategy::CooperativeSticky,
            ],
            Some(names) if names.is_empty() => {
                return Err(Error::config(
                    "partition_assignment_strategy",
                    "no strategy given",
                ))
            }
            Some(names) => {
                let mut out = Vec::new();
                for n in names {
                    let a = AssignmentStrategy::parse(n).ok_or_else(|| {
                        Error::config(
                            "partition_assignment_strategy",
                            format!(
                                "`{n}`: expected range, roundrobin, sticky or cooperative-sticky"
                            ),
                        )
                    })?;
                    if !out.contains(&a) {
                        out.push(a);
                    }
                }
                out
            }
        };
        let isolation_level = match self.isolation_level.as_deref().map(str::trim) {
            None => IsolationLevel::ReadUncommitted,
            Some(l) if l.eq_ignore_ascii_case("read_uncommitted") => {
                IsolationLevel::ReadUncommitted
            }
            Some(l) if l.eq_ignore_ascii_case("read_committed") => IsolationLevel::ReadCommitted,
            Some(l) => {
                return Err(Error::config(
                    "isolation_level",
                    format!("`{l}`: expected read_uncommitted or read_committed"),
                ))
            }
        };
        let consumer_timeout = match self.consumer_timeout_ms {
            None | Some(-1) => None,
            Some(v) if v < 0 => {
                return Err(Error::config(
                    "consumer_timeout_ms",
                    format!("{v}: use a non-negative number, or -1 to block forever"),
                ))
            }
            Some(v) => Some(Duration::from_millis(v as u64)),
        };
        Ok(ConsumerConfig {
            client,
            group_id,
            group_instance_id,
            auto_offset_reset,
            enable_auto_commit,
            auto_commit_interval,
            fetch_min_bytes,
            fetch_max_wait,
            fetch_max_bytes,
            max_partition_fetch_bytes,
            max_poll_records,
            max_poll_interval,
            session_timeout,
            heartbeat_interval,
            assignors,
            isolation_level,
            consumer_timeout,
            check_crcs: self.check_crcs.unwrap_or(true),
            max_decompressed_bytes: range(
                "max_decompressed_bytes",
                self.max_decompressed_bytes,
                crate::records::DEFAULT_MAX_DECOMPRESSED_BYTES as i64,
                1,
                isize::MAX as i64,
            )? as usize,
            exclude_internal_topics: self.exclude_internal_topics.unwrap_or(true),
            allow_auto_create_topics: self.allow_auto_create_topics.unwrap_or(true),
            group_protocol,
            group_remote_assignor: non_empty("group_remote_assignor", self.group_remote_assignor)?,
            client_rack: non_empty("client_rack", self.client_rack)?,
        })
    }

    /// Checks the options and creates the consumer (it connects lazily).
    pub fn build(self) -> Result<super::Consumer> {
        super::Consumer::from_config(self.config()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn defaults_match_the_documented_table() {
        let c = ConsumerBuilder::default().group_id("g").config().unwrap();
        assert_eq!(c.auto_offset_reset, AutoOffsetReset::Latest);
        assert!(c.enable_auto_commit);
        assert_eq!(c.auto_commit_interval, Duration::from_millis(5_000));
        assert_eq!(c.fetch_min_bytes, 1);
        assert_eq!(c.fetch_max_wait, Duration::from_millis(500));
        assert_eq!(c.fetch_max_bytes, 52_428_800);
        assert_eq!(c.max_partition_fetch_bytes, 1_048_576);
        assert_eq!(c.max_poll_records, 500);
        assert_eq!(c.max_poll_interval, Duration::from_millis(300_000));
        assert_eq!(c.session_timeout, Duration::from_millis(45_000));
        assert_eq!(c.heartbeat_interval, Duration::from_millis(3_000));
        assert_eq!(
            c.assignors,
            [
                AssignmentStrategy::Range,
                AssignmentStrategy::CooperativeSticky
            ]
        );
        assert_eq!(c.isolation_level, IsolationLevel::ReadUncommitted);
        assert_eq!(c.consumer_timeout, None);
        assert!(c.check_crcs && c.exclude_internal_topics && c.allow_auto_create_topics);
        assert_eq!(c.group_protocol, GroupProtocol::Classic);
        let no_group = ConsumerBuilder::default().config().unwrap();
        assert!(!no_group.enable_auto_commit, "no group, no auto-commit");
    }

    #[test]
    fn spellings() {
        for (s, want) in [
            ("smallest", AutoOffsetReset::Earliest),
            ("EARLIEST", AutoOffsetReset::Earliest),
            ("beginning", AutoOffsetReset::Earliest),
            ("largest", AutoOffsetReset::Latest),
            ("end", AutoOffsetReset::Latest),
            ("error", AutoOffsetReset::None),
            ("none", AutoOffsetReset::None),
        ] {
            let c = ConsumerBuilder::default()
                .auto_offset_reset(s)
                .config()
                .unwrap();
            assert_eq!(c.auto_offset_reset, want, "{s}");
        }
        let c = ConsumerBuilder::default()
            .partition_assignment_strategy([
                "org.apache.kafka.clients.consumer.RoundRobinAssignor",
                "sticky, cooperative-sticky",
                "range",
            ])
            .config()
            .unwrap();
        assert_eq!(
            c.assignors,
            [
                AssignmentStrategy::RoundRobin,
                AssignmentStrategy::Sticky,
                AssignmentStrategy::CooperativeSticky,
                AssignmentStrategy::Range
            ]
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let b = || ConsumerBuilder::default().group_id("g");
        let cases: Vec<(ConsumerBuilder, &str)> = vec![
            (b().auto_offset_reset("oldest"), "auto_offset_reset"),
            (
                b().session_timeout_ms(3000).heartbeat_interval_ms(3000),
                "heartbeat_interval_ms",
            ),
            (
                ConsumerBuilder::default().enable_auto_commit(true),
                "enable_auto_commit",
            ),
            (
                ConsumerBuilder::default().group_instance_id("i"),
                "group_instance_id",
            ),
            (b().max_poll_records(0), "max_poll_records"),
            (b().fetch_max_bytes(0), "fetch_max_bytes"),
            (b().fetch_max_wait_ms(-1), "fetch_max_wait_ms"),
            (b().isolation_level("serializable"), "isolation_level"),
            (
                b().partition_assignment_strategy(["fair"]),
                "partition_assignment_strategy",
            ),
            (b().group_protocol("streams"), "group_protocol"),
            (
                b().group_protocol("consumer").session_timeout_ms(6000),
                "session_timeout_ms",
            ),
            (
                b().group_remote_assignor("uniform"),
                "group_remote_assignor",
            ),
            (b().consumer_timeout_ms(-5), "consumer_timeout_ms"),
            (b().group_id(" "), "group_id"),
            (b().bootstrap_servers("h:x"), "bootstrap_servers"),
        ];
        for (builder, key) in cases {
            let e = builder.config().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config);
            assert!(e.to_string().contains(&format!("`{key}`")), "{key}: {e}");
        }
    }
}
