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

// This file holds the `Consumer` type, its construction and closing; its
// methods live with their concern: `subscription.rs` (subscribe, assign),
// `seek.rs` (seek, position, pause), `poll.rs` (poll/next, group events),
// `commit.rs` (sync/async/auto commits, committed), `lookups.rs`
// (offsets by time, watermarks, topics, metrics).
mod commit;
mod config;
mod cursor;
mod fetch_session;
mod fetcher;
mod lookups;
mod message;
pub(crate) mod metrics;
pub(crate) mod offsets;
mod pattern;
mod poll;
mod positions;
mod seek;
mod subscription;
mod validate;

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

pub use config::{
    AssignmentStrategy, AutoOffsetReset, ConsumerBuilder, ConsumerConfig, GroupProtocol,
    IsolationLevel,
};
#[cfg(feature = "json")]
pub use message::JsonDeserializer;
pub use message::{Deserializer, FromPayload, Message, OffsetAndTimestamp, Records};
pub use metrics::ConsumerMetrics;

pub use crate::partition::{IntoTopicName, OffsetAndMetadata, TopicPartition};

use cursor::Cursor;
use fetcher::{FetchSettings, Fetcher, Mailbox, PartitionData};
use pattern::Pattern;

use crate::cluster::{Cluster, ClusterMetadata};
use crate::error::{Error, Result};
use crate::group::{Group, GroupMsg};
use crate::net::Completion;
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
    /// KIP-320: a position `(offset, leader epoch)` to validate with the
    /// leader before fetching from it (after a leader change); the
    /// position itself is `None` meanwhile, so the background lookup
    /// takes it.
    pending_validation: Option<(i64, i32)>,
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
    bg_tx: Mailbox<Background>,
    bg_rx: Receiver<Background>,
    listener: Option<Box<dyn RebalanceListener>>,
    stashed_events: VecDeque<GroupMsg>,
    commit_tx: Mailbox<Completion>,
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
    crate::validate::topic(t)
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
        let nudge = fetcher.nudger();
        let group = match cfg.group_config() {
            Some(group_cfg) => {
                let nudge = nudge.clone();
                Some(Group::start(
                    group_cfg,
                    Arc::clone(&cluster),
                    Arc::clone(&metrics) as Arc<dyn crate::group::GroupMetrics>,
                    Arc::new(move || nudge.nudge()),
                )?)
            }
            None => None,
        };
        let (commit_tx, commit_rx) = crossbeam_channel::unbounded();
        let commit_tx = Mailbox::new(commit_tx, nudge.clone());
        let (bg_tx, bg_rx) = crossbeam_channel::unbounded();
        let bg_tx = Mailbox::new(bg_tx, nudge);
        Ok(Consumer {
            read_options: ReadOptions {
                check_crcs: cfg.check_crcs,
                max_decompressed_bytes: cfg.max_decompressed_bytes,
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
    use crate::error::ErrorKind;

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
