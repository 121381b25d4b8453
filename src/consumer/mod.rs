//! [`Consumer`]: reads records, alone or in a consumer group; iterate it
//! like kafka-python's `KafkaConsumer`, or poll it like confluent-kafka's.
//!
//! ```no_run
//! use kafka_blocking::consumer::Consumer;
//!
//! # fn main() -> kafka_blocking::Result<()> {
//! let mut consumer = Consumer::builder()
//!     .bootstrap_servers("127.0.0.1:9092")
//!     .group_id("billing")
//!     .auto_offset_reset("earliest")
//!     .consumer_timeout_ms(10_000) // stop iterating after 10 s without records
//!     .build()?;
//! consumer.subscribe(["orders"])?;
//!
//! for msg in &mut consumer {
//!     let msg = msg?;
//!     let order: &str = msg.value_as()?; // borrows the fetched bytes
//!     println!("{}-{}@{}: {order}", msg.topic(), msg.partition(), msg.offset());
//! }
//! consumer.close(true)?; // commits (auto-commit) and leaves the group at once
//! # Ok(())
//! # }
//! ```
//!
//! A poll loop with manual commits (at-least-once):
//!
//! ```no_run
//! use std::time::Duration;
//! use kafka_blocking::consumer::Consumer;
//!
//! # fn process(_: &kafka_blocking::consumer::Message) {}
//! # fn main() -> kafka_blocking::Result<()> {
//! let mut consumer = Consumer::builder()
//!     .bootstrap_servers("127.0.0.1:9092")
//!     .group_id("billing")
//!     .enable_auto_commit(false)
//!     .build()?;
//! consumer.subscribe(["orders"])?;
//! loop {
//!     let records = consumer.poll(Duration::from_millis(500))?;
//!     for msg in &records {
//!         process(msg);
//!     }
//!     if !records.is_empty() {
//!         consumer.commit()?; // the positions after what was processed
//!     }
//! }
//! # }
//! ```
//!
//! `Consumer` is `Send` but not `Sync`: one thread owns it. Inside, a fetch
//! thread keeps one Fetch request in flight per partition leader on its own
//! connections and hands the undecoded answers over (the next one is
//! fetched while the current one is read); records are decoded lazily, as
//! `next()` asks for them, and their keys and values are views into the
//! fetched buffer. With a `group_id`, a group thread heartbeats on its own
//! connection to the coordinator, so slow processing between two `next()`
//! calls does not end the membership (up to `max_poll_interval_ms`).
//! Rebalance callbacks ([`RebalanceListener`]) and `commit_async` callbacks
//! run on the consumer's thread, inside `poll`/`next()`.

mod config;
mod cursor;
mod fetch_session;
mod fetcher;
mod message;
pub(crate) mod metrics;
pub(crate) mod offsets;
mod pattern;
mod positions;

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, Sender};

pub use config::{
    AssignmentStrategy, AutoOffsetReset, ConsumerBuilder, ConsumerConfig, GroupProtocol,
    IsolationLevel,
};
#[cfg(feature = "json")]
pub use message::JsonDeserializer;
pub use message::{
    Deserializer, FromPayload, IntoTopicName, Message, OffsetAndMetadata, OffsetAndTimestamp,
    Records, TopicPartition,
};
pub use metrics::ConsumerMetrics;

use cursor::Cursor;
use fetcher::{FetchSettings, Fetcher, PartitionData};
use offsets::{commit_request, commit_result, list_offsets, EARLIEST, LATEST};
use pattern::Pattern;

use crate::cluster::{Cluster, ClusterMetadata, PartitionMetadata, TopicSelection};
use crate::error::{Error, ErrorKind, Result};
use crate::group::{Group, GroupEvent, GroupMsg};
use crate::net::{decode_response, Completion, Reply};
use crate::protocol::messages::OffsetCommitRequest;
use crate::protocol::ErrorCode;
use crate::records::ReadOptions;

/// Called on the consumer's thread, inside `poll`/`next()`, when the
/// group's assignment changes. Every method has a default that does
/// nothing (`on_partitions_lost` calls `on_partitions_revoked`).
///
/// The consumer is passed in, so a callback can commit, seek or look up
/// positions; it must not poll (that returns an error).
///
/// ```
/// use kafka_blocking::consumer::{Consumer, RebalanceListener, TopicPartition};
///
/// struct CommitOnRevoke;
///
/// impl RebalanceListener for CommitOnRevoke {
///     fn on_partitions_revoked(&mut self, consumer: &mut Consumer, partitions: &[TopicPartition]) {
///         if let Err(e) = consumer.commit() {
///             eprintln!("commit before losing {partitions:?} failed: {e}");
///         }
///     }
/// }
/// ```
pub trait RebalanceListener: Send {
    /// `partitions` are taken away (after an auto-commit of their
    /// positions when `enable_auto_commit` is on). Commit what you processed
    /// here to avoid duplicates.
    fn on_partitions_revoked(&mut self, consumer: &mut Consumer, partitions: &[TopicPartition]) {
        let _ = (consumer, partitions);
    }

    /// `partitions` were added to the assignment (called after every
    /// rebalance, possibly with none). Seeking here sets where reading
    /// starts.
    fn on_partitions_assigned(&mut self, consumer: &mut Consumer, partitions: &[TopicPartition]) {
        let _ = (consumer, partitions);
    }

    /// The membership ended without a clean revocation (the session timed
    /// out, the generation is over): `partitions` may already belong to
    /// another member, so committing them fails.
    fn on_partitions_lost(&mut self, consumer: &mut Consumer, partitions: &[TopicPartition]) {
        self.on_partitions_revoked(consumer, partitions);
    }
}

/// A `commit_async` callback: the offsets and the outcome.
type CommitCallback =
    Box<dyn FnOnce(&HashMap<TopicPartition, OffsetAndMetadata>, Result<()>) + Send>;

/// Where a partition stands for the consumer.
#[derive(Debug)]
struct PartState {
    /// The offset of the next record to return; `None` until known.
    position: Option<i64>,
    /// Changes with every seek, reset, pause or resume.
    epoch: u64,
    paused: bool,
    /// `seek_to_beginning`/`seek_to_end` asked for this.
    pending_reset: Option<i64>,
    /// The leader epoch of the last record returned.
    leader_epoch: Option<i32>,
    /// A fetch error stopped this partition until the next seek.
    stopped: bool,
}

enum SubKind {
    None,
    Topics(BTreeSet<String>),
    Pattern(Pattern),
    Assigned,
}

/// A commit waiting for the coordinator to be found.
struct DeferredCommit {
    offsets: HashMap<TopicPartition, OffsetAndMetadata>,
    callback: Option<CommitCallback>,
    auto: bool,
}

/// The answer of a lookup that ran on a thread of its own.
enum Background {
    Positions(positions::Outcome),
    /// The coordinator was found and connected to (or why not).
    Coordinator(Result<()>),
}

struct PendingCommit {
    version: i16,
    offsets: HashMap<TopicPartition, OffsetAndMetadata>,
    callback: Option<CommitCallback>,
    auto: bool,
}

/// How long a read may wait.
#[derive(Clone, Copy)]
enum Wait {
    /// Only what is buffered already.
    Now,
    Forever,
    For(Duration),
    Until(Instant),
}

/// A Kafka consumer. See the [module documentation](self).
pub struct Consumer {
    cfg: Arc<ConsumerConfig>,
    cluster: Arc<Cluster>,
    metrics: Arc<metrics::Metrics>,
    fetcher: Fetcher,
    group: Option<Group>,
    kind: SubKind,
    pattern_topics: BTreeSet<String>,
    pattern_snapshot: Option<Arc<ClusterMetadata>>,
    /// The metadata version the pattern was last checked against.
    pattern_version: u64,
    /// Changes with every unsubscribe (see `GroupCmd::Subscribe`): group
    /// events of another epoch are about a membership given up.
    sub_epoch: u64,
    assignment: BTreeMap<TopicPartition, PartState>,
    queue: VecDeque<PartitionData>,
    cursor: Option<Cursor>,
    read_options: ReadOptions,
    next_epoch: u64,
    need_positions: bool,
    positions_retry_at: Option<Instant>,
    /// A position lookup runs in the background.
    positions_in_flight: bool,
    /// A coordinator lookup runs in the background.
    coordinator_in_flight: bool,
    deferred_commits: Vec<DeferredCommit>,
    bg_tx: Sender<Background>,
    bg_rx: Receiver<Background>,
    listener: Option<Box<dyn RebalanceListener>>,
    stashed_events: VecDeque<GroupMsg>,
    commit_tx: Sender<Completion>,
    commit_rx: Receiver<Completion>,
    pending_commits: HashMap<u64, PendingCommit>,
    finished_commits: Vec<(
        CommitCallback,
        HashMap<TopicPartition, OffsetAndMetadata>,
        Result<()>,
    )>,
    auto_commit_in_flight: bool,
    last_committed: HashMap<TopicPartition, i64>,
    next_token: u64,
    polls: u64,
    records_consumed: u64,
    bytes_consumed: u64,
    pending_errors: VecDeque<Error>,
    fatal: Option<Error>,
    /// The subscription got its first assignment from the group.
    assigned_once: bool,
    in_callback: bool,
    closed: bool,
    _not_sync: PhantomData<Cell<()>>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("bootstrap_servers", &self.cfg.client.bootstrap_servers())
            .field("group_id", &self.cfg.group_id)
            .field("assignment", &self.assignment.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn check_topic(t: &str) -> Result<()> {
    if t.is_empty() {
        return Err(Error::invalid_argument("a topic name is empty"));
    }
    if t.len() > 249 {
        return Err(Error::invalid_argument(format!(
            "topic name `{t}` is longer than 249 characters"
        )));
    }
    Ok(())
}

impl Consumer {
    /// A builder with kafka-python's names and defaults.
    pub fn builder() -> ConsumerBuilder {
        ConsumerBuilder::default()
    }

    pub(crate) fn from_config(cfg: ConsumerConfig) -> Result<Consumer> {
        let cfg = Arc::new(cfg);
        let cluster = Cluster::new(cfg.client.clone(), cfg.allow_auto_create_topics);
        let metrics = Arc::new(metrics::Metrics::default());
        let fetcher = Fetcher::start(
            Arc::clone(&cluster),
            FetchSettings {
                max_wait: cfg.fetch_max_wait,
                min_bytes: cfg.fetch_min_bytes,
                max_bytes: cfg.fetch_max_bytes,
                partition_max_bytes: cfg.max_partition_fetch_bytes,
                isolation_level: cfg.isolation_level.as_i8(),
                request_timeout: cfg.client.request_timeout(),
                retry_backoff: cfg.client.retry_backoff().max(Duration::from_millis(10)),
                rack: cfg.client_rack.clone().unwrap_or_default(),
                preferred_replica_ttl: cfg.client.metadata_max_age(),
            },
            Arc::clone(&metrics),
        )?;
        let group = match &cfg.group_id {
            Some(_) => Some(Group::start(
                Arc::clone(&cfg),
                Arc::clone(&cluster),
                Arc::clone(&metrics),
            )?),
            None => None,
        };
        let (commit_tx, commit_rx) = crossbeam_channel::unbounded();
        let (bg_tx, bg_rx) = crossbeam_channel::unbounded();
        Ok(Consumer {
            read_options: ReadOptions {
                check_crcs: cfg.check_crcs,
                ..ReadOptions::default()
            },
            cfg,
            cluster,
            metrics,
            fetcher,
            group,
            kind: SubKind::None,
            pattern_topics: BTreeSet::new(),
            pattern_snapshot: None,
            pattern_version: 0,
            sub_epoch: 0,
            assignment: BTreeMap::new(),
            queue: VecDeque::new(),
            cursor: None,
            next_epoch: 1,
            need_positions: false,
            positions_retry_at: None,
            positions_in_flight: false,
            coordinator_in_flight: false,
            deferred_commits: Vec::new(),
            bg_tx,
            bg_rx,
            listener: None,
            stashed_events: VecDeque::new(),
            commit_tx,
            commit_rx,
            pending_commits: HashMap::new(),
            finished_commits: Vec::new(),
            auto_commit_in_flight: false,
            last_committed: HashMap::new(),
            next_token: 1,
            polls: 0,
            records_consumed: 0,
            bytes_consumed: 0,
            pending_errors: VecDeque::new(),
            fatal: None,
            assigned_once: false,
            in_callback: false,
            closed: false,
            _not_sync: PhantomData,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ConsumerConfig {
        &self.cfg
    }

    // ---- subscription and assignment ----------------------------------

    /// Joins the group for `topics` (needs a `group_id`); partitions are
    /// assigned by the group on the next `poll`/`next()`. Replaces an
    /// earlier subscription.
    pub fn subscribe<I, S>(&mut self, topics: I) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let topics: BTreeSet<String> = topics
            .into_iter()
            .map(|t| t.as_ref().trim().to_owned())
            .collect();
        for t in &topics {
            check_topic(t)?;
        }
        if topics.is_empty() {
            self.unsubscribe();
            return Ok(());
        }
        self.check_can_subscribe()?;
        self.cluster.want_all_topics(false);
        self.cluster.add_interest(topics.iter().map(String::as_str));
        if !matches!(&self.kind, SubKind::Topics(t) if *t == topics) {
            self.assigned_once = false;
        }
        self.kind = SubKind::Topics(topics.clone());
        if let Some(g) = &self.group {
            g.subscribe(self.sub_epoch, topics);
        }
        Ok(())
    }

    /// Joins the group for every topic whose whole name matches `pattern`
    /// (a regular expression: see the crate's pattern syntax below), now
    /// and as topics appear (checked every `metadata_max_age_ms`). Internal
    /// topics are skipped with `exclude_internal_topics`.
    ///
    /// Syntax: literals, `.`, classes such as `[a-z0-9_]` and `[^_]`,
    /// `\d \w \s`, groups `(..)`, alternation `|`, quantifiers
    /// `* + ? {n} {n,} {n,m}`, anchors `^ $`.
    pub fn subscribe_pattern(&mut self, pattern: &str) -> Result<()> {
        let pattern = Pattern::new(pattern)?;
        self.check_can_subscribe()?;
        self.cluster.want_all_topics(true);
        self.assigned_once = false;
        self.kind = SubKind::Pattern(pattern);
        self.pattern_snapshot = None;
        self.pattern_version = self.cluster.metadata_version();
        let snap = self.cluster.refresh(TopicSelection::All)?;
        self.check_pattern(&snap);
        Ok(())
    }

    fn check_can_subscribe(&self) -> Result<()> {
        if self.group.is_none() {
            return Err(Error::invalid_argument(
                "subscribe needs a group_id; without a group, assign partitions with assign()",
            ));
        }
        if matches!(self.kind, SubKind::Assigned) {
            return Err(Error::invalid_argument(
                "this consumer has assigned partitions; call unsubscribe() before subscribe()",
            ));
        }
        Ok(())
    }

    /// Recomputes the topics of a pattern subscription when the metadata
    /// snapshot changed.
    fn check_pattern(&mut self, snap: &Arc<ClusterMetadata>) {
        let SubKind::Pattern(p) = &self.kind else {
            return;
        };
        if self
            .pattern_snapshot
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, snap))
        {
            return;
        }
        self.pattern_snapshot = Some(Arc::clone(snap));
        let matched: BTreeSet<String> = snap
            .topics
            .values()
            .filter(|t| {
                !(self.cfg.exclude_internal_topics && (t.is_internal || t.name.starts_with("__")))
            })
            .filter(|t| p.matches(&t.name))
            .map(|t| t.name.clone())
            .collect();
        if matched != self.pattern_topics {
            log::info!(
                "pattern `{}` now matches {} topic(s)",
                p.as_str(),
                matched.len()
            );
            self.pattern_topics = matched.clone();
            if let Some(g) = &self.group {
                g.subscribe(self.sub_epoch, matched);
            }
        }
    }

    /// Leaves the group (revoking every partition: auto-commit, then the
    /// listener) or drops the manual assignment (committing its positions
    /// first with `enable_auto_commit`).
    pub fn unsubscribe(&mut self) {
        self.sync_cursor();
        let subscribed = matches!(self.kind, SubKind::Topics(_) | SubKind::Pattern(_));
        let all: Vec<TopicPartition> = self.assignment.keys().cloned().collect();
        if subscribed {
            // Revoke (commit) while still a member, then leave.
            if !all.is_empty() {
                self.revoke(&all);
            }
            // A new epoch: the group thread leaves and starts over even if
            // the next subscribe names the same topics, and the events it
            // sent for the old membership are dropped when they come.
            self.sub_epoch += 1;
            self.stashed_events
                .retain(|m| matches!(m.event, GroupEvent::Fatal(_) | GroupEvent::CommitDue));
            if let Some(g) = &self.group {
                g.subscribe(self.sub_epoch, BTreeSet::new());
            }
        } else {
            if !all.is_empty() && self.group.is_some() && self.cfg.enable_auto_commit {
                // As a revocation does: the positions are committed before
                // the partitions are forgotten.
                let offsets = self.positions_of(&all);
                if !offsets.is_empty() {
                    if let Err(e) = self.commit_sync_inner(offsets) {
                        log::warn!("auto-commit on unsubscribe failed: {e}");
                    }
                }
            }
            for tp in &all {
                self.drop_partition(tp);
            }
        }
        self.cluster.want_all_topics(false);
        self.kind = SubKind::None;
        self.pattern_topics.clear();
        self.pattern_snapshot = None;
    }

    /// Reads exactly `partitions`, without group membership (replacing an
    /// earlier assignment; empty: none). Positions start at the committed
    /// offsets (with a `group_id`) or follow `auto_offset_reset`, unless
    /// you [`seek`](Consumer::seek).
    pub fn assign<I, T>(&mut self, partitions: I) -> Result<()>
    where
        I: IntoIterator<Item = T>,
        T: Into<TopicPartition>,
    {
        if matches!(self.kind, SubKind::Topics(_) | SubKind::Pattern(_)) {
            return Err(Error::invalid_argument(
                "this consumer is subscribed; call unsubscribe() before assign()",
            ));
        }
        let wanted: BTreeSet<TopicPartition> = partitions.into_iter().map(Into::into).collect();
        for tp in &wanted {
            check_topic(&tp.topic)?;
            if tp.partition < 0 {
                return Err(Error::invalid_argument(format!(
                    "partition {} is negative",
                    tp.partition
                )));
            }
        }
        self.sync_cursor();
        let removed: Vec<TopicPartition> = self
            .assignment
            .keys()
            .filter(|tp| !wanted.contains(*tp))
            .cloned()
            .collect();
        if !removed.is_empty() && self.cfg.enable_auto_commit {
            let offsets = self.positions_of(&removed);
            if !offsets.is_empty() {
                self.commit_async_inner(offsets, None, true);
            }
        }
        for tp in &removed {
            self.drop_partition(tp);
        }
        self.cluster
            .add_interest(wanted.iter().map(|tp| &*tp.topic));
        for tp in wanted {
            if !self.assignment.contains_key(&tp) {
                self.add_partition(tp);
            }
        }
        self.kind = if self.assignment.is_empty() {
            SubKind::None
        } else {
            SubKind::Assigned
        };
        Ok(())
    }

    /// The partitions assigned now, sorted.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.assignment.keys().cloned().collect()
    }

    /// The subscribed topics (for a pattern: those it matches now).
    pub fn subscription(&self) -> BTreeSet<String> {
        match &self.kind {
            SubKind::Topics(t) => t.clone(),
            SubKind::Pattern(_) => self.pattern_topics.clone(),
            _ => BTreeSet::new(),
        }
    }

    /// Sets the listener for rebalance callbacks (replacing any earlier one).
    pub fn set_rebalance_listener(&mut self, listener: impl RebalanceListener + 'static) {
        self.listener = Some(Box::new(listener));
    }

    fn add_partition(&mut self, tp: TopicPartition) {
        let epoch = self.bump_epoch();
        self.assignment.insert(
            tp,
            PartState {
                position: None,
                epoch,
                paused: false,
                pending_reset: None,
                leader_epoch: None,
                stopped: false,
            },
        );
        self.need_positions = true;
        self.positions_retry_at = None;
    }

    fn drop_partition(&mut self, tp: &TopicPartition) {
        self.assignment.remove(tp);
        self.fetcher.remove(tp);
        if self.cursor.as_ref().is_some_and(|c| c.tp == *tp) {
            self.cursor = None;
        }
    }

    fn bump_epoch(&mut self) -> u64 {
        let e = self.next_epoch;
        self.next_epoch += 1;
        e
    }

    /// Saves the reading cursor's progress into its partition.
    fn sync_cursor(&mut self) {
        if let Some(c) = &self.cursor {
            if let Some(p) = self.assignment.get_mut(&c.tp) {
                if p.epoch == c.epoch {
                    p.position = Some(c.position);
                    if c.last_leader_epoch.is_some() {
                        p.leader_epoch = c.last_leader_epoch;
                    }
                }
            }
        }
    }

    /// Moves `tp` to `offset` (a new epoch: fetched data for the old
    /// position is dropped) and starts fetching it unless paused.
    fn set_position(&mut self, tp: &TopicPartition, offset: i64, leader_epoch: Option<i32>) {
        let epoch = self.bump_epoch();
        let Some(p) = self.assignment.get_mut(tp) else {
            return;
        };
        p.position = Some(offset);
        p.epoch = epoch;
        p.pending_reset = None;
        p.stopped = false;
        p.leader_epoch = leader_epoch;
        let paused = p.paused;
        if self.cursor.as_ref().is_some_and(|c| c.tp == *tp) {
            self.cursor = None;
        }
        if paused {
            self.fetcher.remove(tp);
        } else {
            self.fetcher.set_position(tp, offset, epoch);
        }
    }

    fn resolve<I, T>(&self, partitions: I) -> Result<Vec<TopicPartition>>
    where
        I: IntoIterator<Item = T>,
        T: Into<TopicPartition>,
    {
        let list: Vec<TopicPartition> = partitions.into_iter().map(Into::into).collect();
        for tp in &list {
            if !self.assignment.contains_key(tp) {
                return Err(Error::invalid_argument(format!(
                    "partition {tp} is not assigned to this consumer"
                )));
            }
        }
        Ok(list)
    }

    // ---- positions ----------------------------------------------------

    /// Makes the next record of `partition` the one at `offset`.
    pub fn seek(&mut self, partition: impl Into<TopicPartition>, offset: i64) -> Result<()> {
        let tp = partition.into();
        self.resolve([&tp])?;
        if offset < 0 {
            return Err(Error::invalid_argument(format!(
                "seek to negative offset {offset}"
            )));
        }
        self.set_position(&tp, offset, None);
        Ok(())
    }

    fn seek_to(&mut self, partitions: Vec<TopicPartition>, to: i64) -> Result<()> {
        let list = if partitions.is_empty() {
            self.assignment.keys().cloned().collect()
        } else {
            self.resolve(partitions)?
        };
        self.sync_cursor();
        for tp in list {
            let epoch = self.bump_epoch();
            if let Some(p) = self.assignment.get_mut(&tp) {
                p.position = None;
                p.pending_reset = Some(to);
                p.epoch = epoch;
                p.stopped = false;
            }
            self.fetcher.remove(&tp);
            if self.cursor.as_ref().is_some_and(|c| c.tp == tp) {
                self.cursor = None;
            }
        }
        self.need_positions = true;
        self.positions_retry_at = None;
        Ok(())
    }

    /// Moves `partitions` (none: every assigned one) to their first offset,
    /// looked up on the next poll or [`position`](Consumer::position).
    pub fn seek_to_beginning<I, T>(&mut self, partitions: I) -> Result<()>
    where
        I: IntoIterator<Item = T>,
        T: Into<TopicPartition>,
    {
        self.seek_to(partitions.into_iter().map(Into::into).collect(), EARLIEST)
    }

    /// Moves `partitions` (none: every assigned one) past their last
    /// record, looked up on the next poll or [`position`](Consumer::position).
    pub fn seek_to_end<I, T>(&mut self, partitions: I) -> Result<()>
    where
        I: IntoIterator<Item = T>,
        T: Into<TopicPartition>,
    {
        self.seek_to(partitions.into_iter().map(Into::into).collect(), LATEST)
    }

    /// The offset of the next record `partition` will return, looking it
    /// up (committed offset or `auto_offset_reset`) if it is not known yet.
    pub fn position(&mut self, partition: impl Into<TopicPartition>) -> Result<i64> {
        let tp = partition.into();
        self.resolve([&tp])?;
        self.sync_cursor();
        if self
            .assignment
            .get(&tp)
            .is_some_and(|p| p.position.is_none())
        {
            self.update_positions_now()?;
        }
        self.assignment
            .get(&tp)
            .and_then(|p| p.position)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NoOffset,
                    format!("partition {tp} has no position yet; retry"),
                )
            })
    }

    /// Stops fetching `partitions` until [`resume`](Consumer::resume); the
    /// group membership is kept.
    pub fn pause<I, T>(&mut self, partitions: I) -> Result<()>
    where
        I: IntoIterator<Item = T>,
        T: Into<TopicPartition>,
    {
        let list = self.resolve(partitions)?;
        self.sync_cursor();
        for tp in list {
            let epoch = self.bump_epoch();
            if let Some(p) = self.assignment.get_mut(&tp) {
                p.paused = true;
                p.epoch = epoch;
            }
            self.fetcher.remove(&tp);
            if self.cursor.as_ref().is_some_and(|c| c.tp == tp) {
                self.cursor = None;
            }
        }
        Ok(())
    }

    /// Fetches `partitions` again from their positions.
    pub fn resume<I, T>(&mut self, partitions: I) -> Result<()>
    where
        I: IntoIterator<Item = T>,
        T: Into<TopicPartition>,
    {
        let list = self.resolve(partitions)?;
        for tp in list {
            let Some(p) = self.assignment.get_mut(&tp) else {
                continue;
            };
            if !p.paused {
                continue;
            }
            p.paused = false;
            match p.position {
                Some(pos) => {
                    let le = p.leader_epoch;
                    self.set_position(&tp, pos, le);
                }
                None => self.need_positions = true,
            }
        }
        Ok(())
    }

    /// The paused partitions, sorted.
    pub fn paused(&self) -> Vec<TopicPartition> {
        self.assignment
            .iter()
            .filter(|(_, p)| p.paused)
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    /// The partitions without a position, for a lookup.
    fn wanted_positions(&self) -> Vec<positions::Wanted> {
        self.assignment
            .iter()
            .filter(|(_, p)| p.position.is_none())
            .map(|(tp, p)| positions::Wanted {
                tp: tp.clone(),
                epoch: p.epoch,
                reset: p.pending_reset,
            })
            .collect()
    }

    fn lookup_ctx(&self) -> positions::LookupCtx {
        positions::LookupCtx {
            cluster: Arc::clone(&self.cluster),
            group: self.group.as_ref().map(|g| g.handle().clone()),
            isolation_level: self.cfg.isolation_level.as_i8(),
            require_stable: self.cfg.isolation_level == IsolationLevel::ReadCommitted,
            policy: self.cfg.auto_offset_reset,
            timeout: self.cfg.client.request_timeout(),
            backoff: self.backoff(),
        }
    }

    /// Starts looking up the missing positions in the background (resets
    /// asked for, committed offsets, then `auto_offset_reset`), unless a
    /// lookup runs already or the last one failed less than a backoff ago.
    fn start_position_lookup(&mut self) {
        if self.positions_in_flight {
            return;
        }
        if self.positions_retry_at.is_some_and(|t| Instant::now() < t) {
            return;
        }
        self.need_positions = false;
        self.positions_retry_at = None;
        let wanted = self.wanted_positions();
        if wanted.is_empty() {
            return;
        }
        let ctx = self.lookup_ctx();
        let tx = self.bg_tx.clone();
        let spawned = std::thread::Builder::new()
            .name("kafka-consumer-offsets".into())
            .spawn(move || {
                let _ = tx.send(Background::Positions(positions::look_up(&ctx, wanted)));
            });
        match spawned {
            Ok(_) => self.positions_in_flight = true,
            Err(e) => {
                log::warn!("cannot start a thread to look up positions: {e}");
                self.need_positions = true;
                self.positions_retry_at = Some(Instant::now() + self.backoff());
            }
        }
    }

    /// Looks up the missing positions on this thread (blocking).
    fn update_positions_now(&mut self) -> Result<()> {
        self.need_positions = false;
        self.positions_retry_at = None;
        let wanted = self.wanted_positions();
        if wanted.is_empty() {
            return Ok(());
        }
        let out = positions::look_up(&self.lookup_ctx(), wanted);
        self.apply_positions(out)
    }

    /// Takes a lookup's outcome: positions still wanted (same epoch, none
    /// set meanwhile) start fetching; failures are retried after a backoff.
    fn apply_positions(&mut self, out: positions::Outcome) -> Result<()> {
        let incomplete = out.incomplete();
        for f in out.found {
            let current = self
                .assignment
                .get(&f.tp)
                .is_some_and(|p| p.epoch == f.epoch && p.position.is_none());
            if current {
                log::debug!("{}: starting at offset {} ({})", f.tp, f.offset, f.source);
                self.set_position(&f.tp, f.offset, f.leader_epoch);
            }
        }
        for (tp, epoch, ts) in out.resets_left {
            if let Some(p) = self.assignment.get_mut(&tp) {
                if p.epoch == epoch && p.position.is_none() {
                    p.pending_reset = Some(ts);
                }
            }
        }
        self.need_positions = self.assignment.values().any(|p| p.position.is_none());
        if incomplete {
            self.positions_retry_at = Some(Instant::now() + self.backoff());
        }
        if let Some(e) = out.error {
            if !e.is_retriable() {
                return Err(e);
            }
            log::debug!("looking up positions failed (retrying): {e}");
        }
        let no_offset: Vec<TopicPartition> = out
            .no_offset
            .into_iter()
            .filter(|tp| {
                self.assignment
                    .get(tp)
                    .is_some_and(|p| p.position.is_none())
            })
            .collect();
        if let Some(tp) = no_offset.first() {
            return Err(Error::new(
                ErrorKind::NoOffset,
                format!(
                    "{} partition(s) ({}) have no committed offset and auto_offset_reset is none; seek() to an offset, or set auto_offset_reset to earliest or latest",
                    no_offset.len(),
                    no_offset
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .with_partition(&*tp.topic, tp.partition));
        }
        Ok(())
    }

    /// Takes the answer of a background lookup.
    fn handle_background(&mut self, b: Background) {
        match b {
            Background::Positions(out) => {
                self.positions_in_flight = false;
                if let Err(e) = self.apply_positions(out) {
                    self.pending_errors.push_back(e);
                }
            }
            Background::Coordinator(found) => {
                self.coordinator_in_flight = false;
                self.send_deferred_commits(found);
            }
        }
    }

    fn backoff(&self) -> Duration {
        self.cfg
            .client
            .retry_backoff()
            .max(Duration::from_millis(10))
    }

    // ---- reading ------------------------------------------------------

    /// Up to `max_poll_records` records, waiting up to `timeout` for the
    /// first one. Also runs rebalance and commit callbacks.
    pub fn poll(&mut self, timeout: Duration) -> Result<Records> {
        self.check_reentry()?;
        let deadline = Instant::now() + timeout;
        let max = self.cfg.max_poll_records;
        let mut messages = Vec::with_capacity(max.min(1024));
        while messages.len() < max {
            let wait = if messages.is_empty() {
                Wait::Until(deadline)
            } else {
                Wait::Now
            };
            match self.next_message(wait) {
                Some(Ok(m)) => messages.push(m),
                Some(Err(e)) => {
                    if messages.is_empty() {
                        return Err(e);
                    }
                    self.pending_errors.push_back(e);
                    break;
                }
                None => break,
            }
        }
        Ok(Records { messages })
    }

    fn check_reentry(&self) -> Result<()> {
        if self.in_callback {
            return Err(Error::invalid_argument(
                "poll/next called from a rebalance callback; return from the callback first",
            ));
        }
        if self.closed {
            return Err(Error::closed("the consumer is closed"));
        }
        Ok(())
    }

    /// Whether a group subscription still waits for its first assignment.
    fn joining(&self) -> bool {
        !self.assigned_once
            && self.fatal.is_none()
            && matches!(self.kind, SubKind::Topics(_) | SubKind::Pattern(_))
    }

    /// Whether background work waits (group events, commit answers,
    /// positions to look up, a metadata refresh for a pattern).
    #[inline]
    fn attention(&self) -> bool {
        (self.need_positions && !self.positions_in_flight)
            || !self.bg_rx.is_empty()
            || !self.stashed_events.is_empty()
            || !self.finished_commits.is_empty()
            || (!self.pending_commits.is_empty() && !self.commit_rx.is_empty())
            || self.group.as_ref().is_some_and(|g| !g.events.is_empty())
            || !self.pending_errors.is_empty()
            || (matches!(self.kind, SubKind::Pattern(_))
                && self.cluster.metadata_version() != self.pattern_version)
    }

    /// The fatal group error, once there is one: every later read returns
    /// it (a fenced or unauthorized member must not go on processing).
    fn fatal_error(&mut self) -> Option<Error> {
        let e = self.fatal.clone()?;
        // Nothing the group thread sent matters any more.
        if let Some(g) = &self.group {
            while g.events.try_recv().is_ok() {}
        }
        self.stashed_events.clear();
        Some(e)
    }

    /// The next record; `None` when `wait` passes without one.
    fn next_message(&mut self, wait: Wait) -> Option<Result<Message>> {
        if let Some(e) = self.fatal_error() {
            return Some(Err(e));
        }
        let mut wait = wait;
        let mut join_deadline: Option<Instant> = None;
        loop {
            self.polls += 1;
            if let Some(g) = &self.group {
                g.polled(self.polls);
            }
            // Background work only when a read starts, never while `poll`
            // fills its batch (`Wait::Now`): an auto-commit then would
            // commit records the caller has not received yet, and a
            // revocation would run while records of the revoked partitions
            // wait in the batch. What comes meanwhile waits for the next
            // read.
            if !matches!(wait, Wait::Now) && self.attention() {
                if let Some(e) = self.pending_errors.pop_front() {
                    return Some(Err(e));
                }
                if let Err(e) = self.service() {
                    return Some(Err(e));
                }
            }
            if let Some(c) = &mut self.cursor {
                match c.next_message() {
                    Some(Ok(m)) => {
                        self.records_consumed += 1;
                        self.bytes_consumed += (m.key.as_ref().map_or(0, |k| k.len())
                            + m.value.as_ref().map_or(0, |v| v.len()))
                            as u64;
                        return Some(Ok(m));
                    }
                    Some(Err(e)) => {
                        // Java semantics: the position stays at the bad
                        // batch; fetching it again fails again until a seek.
                        let (tp, pos) = (c.tp.clone(), c.position);
                        self.cursor = None;
                        let le = self.assignment.get(&tp).and_then(|p| p.leader_epoch);
                        self.set_position(&tp, pos, le);
                        return Some(Err(e));
                    }
                    None => {
                        self.sync_cursor();
                        self.cursor = None;
                    }
                }
            }
            if let Some(data) = self.queue.pop_front() {
                match self.open(data) {
                    Ok(Some(c)) => self.cursor = Some(c),
                    Ok(None) => {}
                    Err(e) => return Some(Err(e)),
                }
                continue;
            }
            if let Ok(chunk) = self.fetcher.data_rx.try_recv() {
                self.fetcher.taken(chunk.broker);
                self.queue.extend(chunk.parts);
                continue;
            }
            // A fetch connection whose login is refused fetches nothing:
            // say so rather than return no records until the timeout.
            if let Some(e) = self.fetcher.take_auth_failure() {
                return Some(Err(e));
            }
            // Nothing buffered: wait for data or background work.
            if matches!(wait, Wait::Now) {
                return None;
            }
            let now = Instant::now();
            let deadline = match wait {
                Wait::Now => Some(now),
                Wait::Forever => None,
                Wait::For(d) if self.joining() => {
                    // consumer_timeout_ms counts from the first assignment:
                    // joining a group takes seconds (Kafka's initial
                    // rebalance delay), and a consumer that never got
                    // partitions has not run out of records. The join may
                    // take up to request_timeout_ms.
                    let join_by =
                        *join_deadline.get_or_insert(now + self.cfg.client.request_timeout());
                    Some(join_by + d)
                }
                Wait::For(d) => {
                    let t = now + d;
                    wait = Wait::Until(t);
                    Some(t)
                }
                Wait::Until(t) => Some(t),
            };
            if deadline.is_some_and(|t| now >= t) {
                return None;
            }
            // Wake at least every second to show the group thread that the
            // consumer is still polling, and to retry position lookups.
            let mut until = now + Duration::from_secs(1);
            if let Some(t) = deadline {
                until = until.min(t);
            }
            if let Some(t) = self.positions_retry_at {
                until = until.min(t.max(now));
            }
            let never = crossbeam_channel::never();
            let events = self.group.as_ref().map_or(&never, |g| &g.events);
            select! {
                recv(self.fetcher.data_rx) -> c => {
                    if let Ok(chunk) = c {
                        self.fetcher.taken(chunk.broker);
                        self.queue.extend(chunk.parts);
                    }
                }
                recv(events) -> m => {
                    if let Ok(m) = m {
                        self.stashed_events.push_back(m);
                    }
                }
                recv(self.commit_rx) -> c => {
                    if let Ok(c) = c {
                        self.finish_async_commit(c);
                    }
                }
                recv(self.bg_rx) -> b => {
                    if let Ok(b) = b {
                        self.handle_background(b);
                    }
                }
                default(until.saturating_duration_since(now)) => {}
            }
        }
    }

    /// Makes a cursor of fetched data, or acts on its error.
    fn open(&mut self, data: PartitionData) -> Result<Option<Cursor>> {
        let Some(p) = self.assignment.get_mut(&data.tp) else {
            return Ok(None);
        };
        if p.epoch != data.epoch || p.paused || p.position != Some(data.fetch_offset) {
            return Ok(None); // stale: a seek, pause or reset happened since
        }
        let pos = data.fetch_offset;
        match data.error {
            ErrorCode::NONE => Ok(Some(Cursor::new(
                data,
                pos,
                self.read_options,
                self.cfg.isolation_level == IsolationLevel::ReadCommitted,
            ))),
            ErrorCode::OFFSET_OUT_OF_RANGE => {
                let (tp, hw) = (data.tp, data.high_watermark);
                match self.cfg.auto_offset_reset {
                    AutoOffsetReset::None => {
                        p.stopped = true;
                        Err(Error::broker(
                            ErrorCode::OFFSET_OUT_OF_RANGE,
                            format!(
                                "fetch position {pos} is out of range (high watermark {hw}) and auto_offset_reset is none; seek() to a valid offset"
                            ),
                        )
                        .with_partition(&*tp.topic, tp.partition)
                        .with_offset(pos))
                    }
                    policy => {
                        let ts = if policy == AutoOffsetReset::Earliest {
                            EARLIEST
                        } else {
                            LATEST
                        };
                        log::info!("{tp}: fetch offset {pos} is out of range; resetting per auto_offset_reset");
                        p.position = None;
                        p.pending_reset = Some(ts);
                        self.need_positions = true;
                        self.positions_retry_at = None;
                        Ok(None)
                    }
                }
            }
            ErrorCode::MESSAGE_TOO_LARGE => {
                p.stopped = true;
                Err(Error::new(
                    ErrorKind::MessageTooLarge,
                    format!(
                        "a record batch at offset {pos} is larger than max_partition_fetch_bytes ({} bytes) and this broker cannot send it whole; raise max_partition_fetch_bytes",
                        self.cfg.max_partition_fetch_bytes
                    ),
                )
                .with_partition(&*data.tp.topic, data.tp.partition)
                .with_offset(pos))
            }
            code => {
                p.stopped = true;
                Err(Error::broker(code, "fetching records; seek() to retry")
                    .with_partition(&*data.tp.topic, data.tp.partition)
                    .with_offset(pos))
            }
        }
    }

    /// Background work on the consumer's thread: fatal errors, commit
    /// answers and callbacks, group events, pattern updates, positions.
    fn service(&mut self) -> Result<()> {
        if let Some(e) = &self.fatal {
            return Err(e.clone());
        }
        while let Ok(c) = self.commit_rx.try_recv() {
            self.finish_async_commit(c);
        }
        while let Ok(b) = self.bg_rx.try_recv() {
            self.handle_background(b);
        }
        self.run_commit_callbacks();
        if let Some(g) = &self.group {
            while let Ok(m) = g.events.try_recv() {
                self.stashed_events.push_back(m);
            }
        }
        while let Some(m) = self.stashed_events.pop_front() {
            self.handle_event(m)?;
        }
        if matches!(self.kind, SubKind::Pattern(_)) {
            self.pattern_version = self.cluster.metadata_version();
            let snap = self.cluster.metadata();
            self.check_pattern(&snap);
        }
        if self.need_positions {
            self.start_position_lookup();
        }
        match self.pending_errors.pop_front() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn handle_event(&mut self, m: GroupMsg) -> Result<()> {
        let current = m.epoch == self.sub_epoch;
        match m.event {
            GroupEvent::Revoke(_) | GroupEvent::Assigned { .. } | GroupEvent::Lost(_)
                if !current =>
            {
                // About a membership given up by unsubscribe(): its
                // partitions were revoked then. Not acknowledged either: the
                // group thread started over.
                log::debug!("dropping a group event of an earlier subscription");
            }
            GroupEvent::Revoke(parts) => {
                self.revoke(&parts);
                if let Some(g) = &self.group {
                    g.ack(m.id);
                }
            }
            GroupEvent::Assigned { added, revoked } => {
                self.assigned_once = true;
                if !revoked.is_empty() {
                    self.revoke(&revoked);
                }
                for tp in &added {
                    if !self.assignment.contains_key(tp) {
                        self.add_partition(tp.clone());
                    }
                }
                self.cluster.add_interest(added.iter().map(|tp| &*tp.topic));
                self.call_listener(|l, c| l.on_partitions_assigned(c, &added));
                if let Some(g) = &self.group {
                    g.ack(m.id);
                }
            }
            GroupEvent::Lost(parts) => {
                self.sync_cursor();
                self.call_listener(|l, c| l.on_partitions_lost(c, &parts));
                for tp in &parts {
                    self.drop_partition(tp);
                }
            }
            GroupEvent::CommitDue => {
                if let Some(g) = &self.group {
                    g.shared.commit_due.store(false, Ordering::Release);
                }
                self.auto_commit();
            }
            GroupEvent::Fatal(e) => {
                // The consumer cannot go on (fenced, unauthorized, ...): its
                // partitions may belong to another member now, so they are
                // lost, and every later read returns this error.
                self.fatal = Some(e.clone());
                self.sync_cursor();
                let all: Vec<TopicPartition> = self.assignment.keys().cloned().collect();
                if !all.is_empty() {
                    if matches!(self.kind, SubKind::Topics(_) | SubKind::Pattern(_)) {
                        self.call_listener(|l, c| l.on_partitions_lost(c, &all));
                    }
                    for tp in &all {
                        self.drop_partition(tp);
                    }
                }
                self.queue.clear();
                return Err(e);
            }
        }
        Ok(())
    }

    /// Revokes `parts`: auto-commit (sync), the listener, then forget them.
    fn revoke(&mut self, parts: &[TopicPartition]) {
        self.sync_cursor();
        if self.cfg.enable_auto_commit {
            let offsets = self.positions_of(parts);
            if !offsets.is_empty() {
                if let Err(e) = self.commit_sync_inner(offsets) {
                    log::warn!(
                        "auto-commit before revoking {} partition(s) failed: {e}",
                        parts.len()
                    );
                }
            }
        }
        self.call_listener(|l, c| l.on_partitions_revoked(c, parts));
        for tp in parts {
            self.drop_partition(tp);
        }
    }

    fn call_listener(&mut self, f: impl FnOnce(&mut dyn RebalanceListener, &mut Consumer)) {
        let Some(mut l) = self.listener.take() else {
            return;
        };
        self.in_callback = true;
        f(l.as_mut(), self);
        self.in_callback = false;
        if self.listener.is_none() {
            self.listener = Some(l);
        }
    }

    // ---- commits ------------------------------------------------------

    /// The positions of `parts` (those known) as offsets to commit.
    fn positions_of(&self, parts: &[TopicPartition]) -> HashMap<TopicPartition, OffsetAndMetadata> {
        parts
            .iter()
            .filter_map(|tp| {
                let p = self.assignment.get(tp)?;
                Some((
                    tp.clone(),
                    OffsetAndMetadata {
                        offset: p.position?,
                        metadata: String::new(),
                        leader_epoch: p.leader_epoch,
                    },
                ))
            })
            .collect()
    }

    fn all_positions(&mut self) -> HashMap<TopicPartition, OffsetAndMetadata> {
        self.sync_cursor();
        let all: Vec<TopicPartition> = self.assignment.keys().cloned().collect();
        self.positions_of(&all)
    }

    fn require_group(&self) -> Result<&Group> {
        self.group.as_ref().ok_or_else(|| {
            Error::invalid_argument("committing and committed offsets need a group_id")
        })
    }

    /// Commits the positions of every assigned partition (the offsets after
    /// the records returned so far) and waits for the answer.
    pub fn commit(&mut self) -> Result<()> {
        self.require_group()?;
        let offsets = self.all_positions();
        if offsets.is_empty() {
            return Ok(());
        }
        self.commit_sync_inner(offsets)
    }

    /// Commits `offsets` (the next offset to read, per partition) and waits
    /// for the answer.
    pub fn commit_offsets<I, T, O>(&mut self, offsets: I) -> Result<()>
    where
        I: IntoIterator<Item = (T, O)>,
        T: Into<TopicPartition>,
        O: Into<OffsetAndMetadata>,
    {
        self.require_group()?;
        let offsets: HashMap<TopicPartition, OffsetAndMetadata> = offsets
            .into_iter()
            .map(|(t, o)| (t.into(), o.into()))
            .collect();
        if offsets.is_empty() {
            return Ok(());
        }
        self.commit_sync_inner(offsets)
    }

    /// Commits the positions of every assigned partition without waiting;
    /// `callback` runs on this thread inside a later `poll`/`next()` (or
    /// `close`) with the outcome.
    pub fn commit_async(
        &mut self,
        callback: impl FnOnce(&HashMap<TopicPartition, OffsetAndMetadata>, Result<()>) + Send + 'static,
    ) -> Result<()> {
        self.require_group()?;
        let offsets = self.all_positions();
        self.commit_async_inner(offsets, Some(Box::new(callback)), false);
        Ok(())
    }

    /// Commits `offsets` without waiting; see [`commit_async`](Consumer::commit_async).
    pub fn commit_offsets_async<I, T, O>(
        &mut self,
        offsets: I,
        callback: impl FnOnce(&HashMap<TopicPartition, OffsetAndMetadata>, Result<()>) + Send + 'static,
    ) -> Result<()>
    where
        I: IntoIterator<Item = (T, O)>,
        T: Into<TopicPartition>,
        O: Into<OffsetAndMetadata>,
    {
        self.require_group()?;
        let offsets = offsets
            .into_iter()
            .map(|(t, o)| (t.into(), o.into()))
            .collect();
        self.commit_async_inner(offsets, Some(Box::new(callback)), false);
        Ok(())
    }

    fn auto_commit(&mut self) {
        if !self.cfg.enable_auto_commit || self.auto_commit_in_flight {
            return;
        }
        let offsets: HashMap<TopicPartition, OffsetAndMetadata> = self
            .all_positions()
            .into_iter()
            .filter(|(tp, om)| self.last_committed.get(tp) != Some(&om.offset))
            .collect();
        if !offsets.is_empty() {
            self.commit_async_inner(offsets, None, true);
        }
    }

    fn commit_sync_inner(
        &mut self,
        offsets: HashMap<TopicPartition, OffsetAndMetadata>,
    ) -> Result<()> {
        let timeout = self.cfg.client.request_timeout();
        let deadline = Instant::now() + timeout;
        let list: Vec<(TopicPartition, OffsetAndMetadata)> = offsets
            .iter()
            .map(|(t, o)| (t.clone(), o.clone()))
            .collect();
        let mut last: Option<Error> = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.metrics.commit_errors.fetch_add(1, Ordering::Relaxed);
                return Err(last.unwrap_or_else(|| Error::timeout("commit timed out")));
            }
            let group = self.require_group()?;
            let member = group.member();
            let group_id = group.group_id().to_owned();
            let attempt = group.coordinator(&self.cluster, left).and_then(|conn| {
                let mut version = 0;
                let r = conn.send_versioned(left, |v| {
                    version = v;
                    commit_request(v, &member, &list)
                })?;
                let _ = version;
                commit_result(&r, &group_id)
            });
            match attempt {
                Ok(()) => {
                    self.metrics.commits.fetch_add(1, Ordering::Relaxed);
                    for (tp, om) in &list {
                        self.last_committed.insert(tp.clone(), om.offset);
                    }
                    return Ok(());
                }
                Err(e)
                    if e.kafka_code().is_some_and(|c| c.is_coordinator_error())
                        || (e.kafka_code().is_none()
                            && (e.is_retriable() || e.kind() == ErrorKind::Closed)) =>
                {
                    if let Some(g) = &self.group {
                        g.coordinator_failed();
                    }
                    last = Some(e);
                }
                Err(e) if e.is_retriable() => last = Some(e),
                Err(e) => {
                    self.metrics.commit_errors.fetch_add(1, Ordering::Relaxed);
                    return Err(e);
                }
            }
            std::thread::sleep(
                self.backoff()
                    .min(deadline.saturating_duration_since(Instant::now())),
            );
        }
    }

    fn commit_async_inner(
        &mut self,
        offsets: HashMap<TopicPartition, OffsetAndMetadata>,
        callback: Option<CommitCallback>,
        auto: bool,
    ) {
        if offsets.is_empty() {
            if let Some(cb) = callback {
                self.finished_commits.push((cb, offsets, Ok(())));
            }
            return;
        }
        let Some(group) = &self.group else {
            return;
        };
        let Some(conn) = group.handle().ready_coordinator(&self.cluster) else {
            // Finding (or connecting to) the coordinator blocks: it runs in
            // the background, and the commit goes out when it is done.
            self.auto_commit_in_flight |= auto;
            self.deferred_commits.push(DeferredCommit {
                offsets,
                callback,
                auto,
            });
            self.start_coordinator_lookup();
            return;
        };
        let member = group.member();
        let timeout = self.cfg.client.request_timeout();
        let list: Vec<(TopicPartition, OffsetAndMetadata)> = offsets
            .iter()
            .map(|(t, o)| (t.clone(), o.clone()))
            .collect();
        let token = self.next_token;
        let sent = conn
            .known_versions()
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Disconnected,
                    "the coordinator connection was reset",
                )
            })
            .and_then(|v| v.negotiate::<OffsetCommitRequest>())
            .and_then(|version| {
                let request = commit_request(version, &member, &list);
                conn.submit(
                    &request,
                    Some(version),
                    true,
                    timeout,
                    Reply::new(self.commit_tx.clone(), token),
                )?;
                Ok(version)
            });
        match sent {
            Ok(version) => {
                self.next_token += 1;
                self.auto_commit_in_flight |= auto;
                self.pending_commits.insert(
                    token,
                    PendingCommit {
                        version,
                        offsets,
                        callback,
                        auto,
                    },
                );
            }
            Err(e) => {
                if e.kafka_code().is_some_and(|c| c.is_coordinator_error()) || e.is_retriable() {
                    group.coordinator_failed();
                }
                self.metrics.commit_errors.fetch_add(1, Ordering::Relaxed);
                if auto {
                    log::warn!("auto-commit failed: {e}");
                }
                if let Some(cb) = callback {
                    self.finished_commits.push((cb, offsets, Err(e)));
                }
            }
        }
    }

    /// Looks the coordinator up (and connects to it) in the background, for
    /// the commits waiting for it.
    fn start_coordinator_lookup(&mut self) {
        if self.coordinator_in_flight {
            return;
        }
        let Some(group) = &self.group else {
            return;
        };
        let handle = group.handle().clone();
        let cluster = Arc::clone(&self.cluster);
        let timeout = self.cfg.client.request_timeout();
        let tx = self.bg_tx.clone();
        let spawned = std::thread::Builder::new()
            .name("kafka-consumer-coordinator".into())
            .spawn(move || {
                let found = handle
                    .coordinator(&cluster, timeout)
                    .and_then(|conn| conn.versions().map(|_| ()));
                if found.is_err() {
                    handle.coordinator_failed();
                }
                let _ = tx.send(Background::Coordinator(found));
            });
        match spawned {
            Ok(_) => self.coordinator_in_flight = true,
            Err(e) => self.send_deferred_commits(Err(Error::io(
                "spawning a thread to find the group coordinator",
                e,
            ))),
        }
    }

    /// Sends the commits that waited for the coordinator, or fails them.
    fn send_deferred_commits(&mut self, found: Result<()>) {
        for d in std::mem::take(&mut self.deferred_commits) {
            if d.auto {
                self.auto_commit_in_flight = false;
            }
            match &found {
                Ok(()) => self.commit_async_inner(d.offsets, d.callback, d.auto),
                Err(e) => {
                    self.metrics.commit_errors.fetch_add(1, Ordering::Relaxed);
                    if d.auto {
                        log::warn!("auto-commit failed: {e}");
                    }
                    if let Some(cb) = d.callback {
                        self.finished_commits.push((cb, d.offsets, Err(e.clone())));
                    }
                }
            }
        }
    }

    fn finish_async_commit(&mut self, c: Completion) {
        let Some(p) = self.pending_commits.remove(&c.token) else {
            return;
        };
        if p.auto {
            self.auto_commit_in_flight = false;
        }
        let group_id = self.cfg.group_id.clone().unwrap_or_default();
        let result = c
            .result
            .and_then(|body| decode_response::<OffsetCommitRequest>(&body, p.version))
            .and_then(|r| commit_result(&r, &group_id));
        match &result {
            Ok(()) => {
                self.metrics.commits.fetch_add(1, Ordering::Relaxed);
                for (tp, om) in &p.offsets {
                    self.last_committed.insert(tp.clone(), om.offset);
                }
            }
            Err(e) => {
                self.metrics.commit_errors.fetch_add(1, Ordering::Relaxed);
                if e.kafka_code().is_some_and(|c| c.is_coordinator_error()) || e.is_retriable() {
                    if let Some(g) = &self.group {
                        g.coordinator_failed();
                    }
                }
                if p.auto {
                    log::warn!("auto-commit failed: {e}");
                }
            }
        }
        if let Some(cb) = p.callback {
            self.finished_commits.push((cb, p.offsets, result));
        }
        self.run_commit_callbacks();
    }

    fn run_commit_callbacks(&mut self) {
        for (cb, offsets, result) in std::mem::take(&mut self.finished_commits) {
            cb(&offsets, result);
        }
    }

    fn committed_inner(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<HashMap<TopicPartition, OffsetAndMetadata>> {
        let group = self.require_group()?;
        positions::committed(
            &self.cluster,
            group.handle(),
            self.cfg.isolation_level == IsolationLevel::ReadCommitted,
            partitions,
            self.cfg.client.request_timeout(),
            self.backoff(),
        )
    }

    /// The committed offset of `partition` (`None`: nothing committed).
    pub fn committed(
        &mut self,
        partition: impl Into<TopicPartition>,
    ) -> Result<Option<OffsetAndMetadata>> {
        let tp = partition.into();
        Ok(self.committed_inner(std::slice::from_ref(&tp))?.remove(&tp))
    }

    /// The committed offsets of `partitions` (absent: nothing committed).
    pub fn committed_offsets<I, T>(
        &mut self,
        partitions: I,
    ) -> Result<HashMap<TopicPartition, OffsetAndMetadata>>
    where
        I: IntoIterator<Item = T>,
        T: Into<TopicPartition>,
    {
        let list: Vec<TopicPartition> = partitions.into_iter().map(Into::into).collect();
        if list.is_empty() {
            return Ok(HashMap::new());
        }
        self.committed_inner(&list)
    }

    // ---- lookups ------------------------------------------------------

    fn lookup(
        &self,
        partitions: Vec<TopicPartition>,
        ts: i64,
    ) -> Result<HashMap<TopicPartition, i64>> {
        let query: Vec<(TopicPartition, i64)> = partitions.into_iter().map(|tp| (tp, ts)).collect();
        let found = list_offsets(
            &self.cluster,
            self.cfg.isolation_level.as_i8(),
            &query,
            self.cfg.client.request_timeout(),
        )?;
        Ok(found
            .into_iter()
            .filter_map(|(tp, o)| Some((tp, o?.offset)))
            .collect())
    }

    /// The first offset of each partition (any partitions, assigned or not).
    pub fn beginning_offsets<I, T>(&self, partitions: I) -> Result<HashMap<TopicPartition, i64>>
    where
        I: IntoIterator<Item = T>,
        T: Into<TopicPartition>,
    {
        self.lookup(partitions.into_iter().map(Into::into).collect(), EARLIEST)
    }

    /// The offset after the last record of each partition (the last stable
    /// offset with `read_committed`).
    pub fn end_offsets<I, T>(&self, partitions: I) -> Result<HashMap<TopicPartition, i64>>
    where
        I: IntoIterator<Item = T>,
        T: Into<TopicPartition>,
    {
        self.lookup(partitions.into_iter().map(Into::into).collect(), LATEST)
    }

    /// For each `(partition, timestamp ms)`, the first record whose
    /// timestamp is at or after it (`None`: there is none).
    pub fn offsets_for_times<I, T>(
        &self,
        query: I,
    ) -> Result<HashMap<TopicPartition, Option<OffsetAndTimestamp>>>
    where
        I: IntoIterator<Item = (T, i64)>,
        T: Into<TopicPartition>,
    {
        let query: Vec<(TopicPartition, i64)> =
            query.into_iter().map(|(t, ts)| (t.into(), ts)).collect();
        for (tp, ts) in &query {
            if *ts < 0 {
                return Err(Error::invalid_argument(format!(
                    "timestamp {ts} for {tp} is negative"
                )));
            }
        }
        list_offsets(
            &self.cluster,
            self.cfg.isolation_level.as_i8(),
            &query,
            self.cfg.client.request_timeout(),
        )
    }

    /// The last high watermark seen by fetches of `partition` (`None`
    /// before the first fetch answer).
    pub fn highwater(&self, partition: impl Into<TopicPartition>) -> Option<i64> {
        self.fetcher
            .watermarks(&partition.into())
            .map(|w| w.0)
            .filter(|hw| *hw >= 0)
    }

    /// Every topic in the cluster (without internal topics when
    /// `exclude_internal_topics`).
    pub fn topics(&self) -> Result<BTreeSet<String>> {
        let snap = self.cluster.refresh(TopicSelection::All)?;
        Ok(snap
            .topics
            .values()
            .filter(|t| t.error.is_ok())
            .filter(|t| !(self.cfg.exclude_internal_topics && t.is_internal))
            .map(|t| t.name.clone())
            .collect())
    }

    /// The partitions of `topic` (empty when the topic does not exist).
    pub fn partitions_for_topic(&self, topic: &str) -> Result<Vec<PartitionMetadata>> {
        check_topic(topic)?;
        self.cluster.add_interest([topic]);
        let snap = self.cluster.refresh(TopicSelection::Interest)?;
        match snap.topic(topic) {
            Some(t) if t.error.is_ok() => Ok(t.partitions.clone()),
            Some(t) if t.error == ErrorCode::UNKNOWN_TOPIC_OR_PARTITION => Ok(Vec::new()),
            Some(t) if t.error.is_retriable() => Ok(Vec::new()),
            Some(t) => Err(Error::broker(t.error, "looking up partitions").with_topic(topic)),
            None => Ok(Vec::new()),
        }
    }

    /// A snapshot of the consumer's counters.
    pub fn metrics(&self) -> ConsumerMetrics {
        let mut m = self.metrics.snapshot();
        m.records_consumed = self.records_consumed;
        m.bytes_consumed = self.bytes_consumed;
        m.assigned_partitions = self.assignment.len();
        let cursor = self.cursor.as_ref().map(|c| (&c.tp, c.position));
        let mut lag = 0;
        for (tp, hw) in self.fetcher.high_watermarks() {
            let pos = match cursor {
                Some((ctp, p)) if *ctp == tp => Some(p),
                _ => self.assignment.get(&tp).and_then(|p| p.position),
            };
            if let (Some(pos), true) = (pos, hw >= 0) {
                lag = lag.max(hw - pos);
            }
        }
        m.records_lag_max = lag;
        m
    }

    // ---- closing ------------------------------------------------------

    /// Commits the positions (when `autocommit` and `enable_auto_commit`),
    /// revokes the partitions (listener), leaves the group at once so the
    /// others rebalance without waiting for the session timeout (a static
    /// member keeps its place), and stops the background threads. Dropping
    /// the consumer does the same with `autocommit = true`.
    pub fn close(mut self, autocommit: bool) -> Result<()> {
        self.close_inner(autocommit)
    }

    fn close_inner(&mut self, autocommit: bool) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        self.sync_cursor();
        let mut result = Ok(());
        let has_group = self.group.is_some();
        if has_group && autocommit && self.cfg.enable_auto_commit && self.fatal.is_none() {
            let offsets = self.all_positions();
            if !offsets.is_empty() {
                if let Err(e) = self.commit_sync_inner(offsets) {
                    log::warn!("commit on close failed: {e}");
                    result = Err(e);
                }
            }
        }
        // Wait a little for outstanding async commits so their callbacks run.
        let deadline = Instant::now()
            + self
                .cfg
                .client
                .request_timeout()
                .min(Duration::from_secs(5));
        while !self.pending_commits.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.commit_rx.recv_timeout(left) {
                Ok(c) => self.finish_async_commit(c),
                Err(_) => break,
            }
        }
        self.send_deferred_commits(Err(Error::closed(
            "the consumer closed before the group coordinator was found",
        )));
        self.run_commit_callbacks();
        let subscribed = matches!(self.kind, SubKind::Topics(_) | SubKind::Pattern(_));
        if subscribed && !self.assignment.is_empty() && self.fatal.is_none() {
            let all: Vec<TopicPartition> = self.assignment.keys().cloned().collect();
            self.call_listener(|l, c| l.on_partitions_revoked(c, &all));
        }
        let timeout = self
            .cfg
            .client
            .request_timeout()
            .min(Duration::from_secs(5));
        if let Some(mut g) = self.group.take() {
            g.close(true, timeout);
        }
        self.fetcher.close();
        self.cluster.close();
        result
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if let Err(e) = self.close_inner(true) {
            log::warn!("closing the consumer: {e}");
        }
    }
}

/// `for msg in &mut consumer` works too (the standard library's
/// `Iterator for &mut I`), which keeps the consumer usable afterwards.
impl Iterator for Consumer {
    type Item = Result<Message>;

    /// The next record, waiting as long as `consumer_timeout_ms` (forever
    /// by default); `None` when that passes without a record.
    fn next(&mut self) -> Option<Result<Message>> {
        if let Err(e) = self.check_reentry() {
            return Some(Err(e));
        }
        let wait = match self.cfg.consumer_timeout {
            None => Wait::Forever,
            Some(d) => Wait::For(d),
        };
        self.next_message(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}

    #[test]
    fn consumer_is_send() {
        assert_send::<Consumer>();
        assert_send::<Message>();
    }

    #[test]
    fn no_group_means_no_subscribe() {
        let mut c = Consumer::builder()
            .bootstrap_servers("127.0.0.1:1")
            .build()
            .unwrap();
        let e = c.subscribe(["t"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.to_string().contains("group_id"), "{e}");
        c.assign([("t", 0), ("t", 1)]).unwrap();
        assert_eq!(c.assignment().len(), 2);
        assert!(c.commit().is_err());
        let e = c.seek(("u", 0), 5).unwrap_err();
        assert!(e.to_string().contains("not assigned"), "{e}");
        c.pause([("t", 1)]).unwrap();
        assert_eq!(c.paused(), vec![TopicPartition::new("t", 1)]);
        c.resume([("t", 1)]).unwrap();
        assert!(c.paused().is_empty());
        c.assign(Vec::<TopicPartition>::new()).unwrap();
        assert!(c.assignment().is_empty());
    }
}
