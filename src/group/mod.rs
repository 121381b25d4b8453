//! Consumer group membership, on a background thread with its own `Group`
//! connection to the coordinator, so heartbeats go out while the
//! application works between two `next()` calls.
//!
//! The group thread finds the coordinator, joins (classic JoinGroup and
//! SyncGroup, or KIP-848 ConsumerGroupHeartbeat), heartbeats, watches
//! `max_poll_interval_ms`, and leaves. It never touches positions or runs
//! user code: what the consumer thread must do — revoke partitions (commit,
//! call the listener), take new ones, forget lost ones, commit on the
//! auto-commit interval — arrives as a [`GroupEvent`], handled inside the
//! next `poll`/`next()`. Where the protocol needs the consumer to be done
//! first (eager revocation before rejoining, cooperative revocation before
//! the follow-up rebalance) the thread waits for the consumer's
//! [`GroupCmd::Ack`], heartbeating meanwhile.
//!
//! ```text
//! consumer thread ── Subscribe / Ack / Close ──► group thread ──► coordinator
//!        ▲                                            │
//!        └── Revoke / Assigned / Lost / CommitDue ────┘
//! ```
//!
//! This file holds the messages between the two threads and the
//! [`Runner`], the plumbing both protocols share (commands, events,
//! timers, the coordinator connection). `handle.rs` is the consumer
//! thread's side ([`Group`], [`GroupHandle`], the commit [`Member`]);
//! `coordinator.rs` looks the coordinator up; `classic.rs` and
//! `consumer_group.rs` run each protocol on a `Runner`; `config.rs` is what
//! the consumer hands over. Nothing here imports `consumer/`.

pub(crate) mod assignor;
mod classic;
mod config;
mod consumer_group;
mod coordinator;
mod handle;
pub(crate) mod protocol;

pub(crate) use config::GroupConfig;
pub(crate) use handle::{Group, GroupHandle, GroupShared, Member};

pub use config::{AssignmentStrategy, GroupProtocol};
use coordinator::find_coordinator;
pub(crate) use coordinator::{find_coordinator_of, CoordinatorKey};

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, Sender};

use crate::cluster::{Cluster, Purpose};
use crate::error::{Error, Result};
use crate::net::{decode_response, Completion, Connection, Reply};
use crate::partition::TopicPartition;
use crate::protocol::{ApiKey, ErrorCode, Request};

/// Where the group thread counts what it does (the consumer's metrics
/// implement it; the group layer knows nothing of the consumer).
pub(crate) trait GroupMetrics: Send + Sync {
    /// An assignment arrived: a rebalance completed.
    fn rebalanced(&self);
    /// The coordinator answered a heartbeat.
    fn heartbeat(&self);
}

/// One [`GroupEvent`] with what it belongs to.
#[derive(Debug)]
pub(crate) struct GroupMsg {
    /// The subscription epoch (see [`GroupCmd::Subscribe`]) the group
    /// thread was serving when it sent this: events of an earlier epoch are
    /// about a membership the consumer has given up.
    pub(crate) epoch: u64,
    /// Numbers the events; [`GroupCmd::Ack`] names the one it acknowledges.
    pub(crate) id: u64,
    pub(crate) event: GroupEvent,
}

/// What the group thread asks of the consumer thread.
#[derive(Debug)]
pub(crate) enum GroupEvent {
    /// Revoke these (commit, call the listener), then [`GroupCmd::Ack`].
    Revoke(Vec<TopicPartition>),
    /// A new assignment: revoke `revoked` first, then take `added`; then
    /// [`GroupCmd::Ack`].
    Assigned {
        added: Vec<TopicPartition>,
        revoked: Vec<TopicPartition>,
    },
    /// The membership ended: these are gone, do not commit them.
    Lost(Vec<TopicPartition>),
    /// `auto_commit_interval_ms` passed.
    CommitDue,
    /// The group cannot be used (fenced instance, authorization, ...).
    Fatal(Error),
}

/// What the consumer thread tells the group thread.
#[derive(Debug)]
pub(crate) enum GroupCmd {
    /// The topics to be a member for (empty: leave). `epoch` changes each
    /// time the consumer unsubscribes: a new epoch means the consumer has
    /// revoked and forgotten everything, so the thread leaves the group (if
    /// it is a member) before serving the new subscription, even when the
    /// topics are the same as before.
    Subscribe {
        epoch: u64,
        topics: BTreeSet<String>,
    },
    /// The Revoke/Assigned event `id` was handled.
    Ack { id: u64 },
    /// Leave (unless `leave` is false or the member is static) and stop.
    Close { leave: bool, done: Sender<()> },
}

/// The plumbing both group protocols share: commands, events, timers, the
/// coordinator, and requests that a close can interrupt.
pub(crate) struct Runner {
    group_id: String,
    cfg: Arc<GroupConfig>,
    cluster: Arc<Cluster>,
    shared: Arc<GroupShared>,
    metrics: Arc<dyn GroupMetrics>,
    cmd_rx: Receiver<GroupCmd>,
    event_tx: EventSink,
    done_tx: Sender<Completion>,
    done_rx: Receiver<Completion>,
    next_token: u64,
    pending: VecDeque<GroupCmd>,
    closing: Option<(bool, Sender<()>)>,
    subscription: BTreeSet<String>,
    /// The epoch of the last Subscribe command.
    sub_epoch: u64,
    /// A Subscribe of a new epoch arrived: the protocol loop must drop what
    /// it owns, leave, and start over (latched until the loop takes it).
    restart: bool,
    next_event_id: u64,
    /// The id of the Revoke/Assigned event the consumer has not
    /// acknowledged yet.
    awaiting_ack: Option<u64>,
    /// The awaited acknowledgement arrived (latched until the loop takes it).
    acked: bool,
    polls_seen: (u64, Instant),
    /// The poll count when `max_poll_interval_ms` made us leave.
    left_at_polls: Option<u64>,
    next_commit_due: Option<Instant>,
    coordinator: Option<(i32, Connection)>,
    coordinator_retry_at: Option<Instant>,
    fatal: bool,
}

/// Wakes the consumer for a group event (it may be blocked waiting for
/// fetched data, not on the events channel).
pub(crate) type Wake = Arc<dyn Fn() + Send + Sync>;

/// Where the group thread's events go: the consumer's channel, then a
/// wake-up for the consumer.
pub(crate) struct EventSink {
    pub(crate) tx: Sender<GroupMsg>,
    pub(crate) wake: Wake,
}

impl Runner {
    fn new(
        group_id: String,
        cfg: Arc<GroupConfig>,
        cluster: Arc<Cluster>,
        shared: Arc<GroupShared>,
        metrics: Arc<dyn GroupMetrics>,
        cmd_rx: Receiver<GroupCmd>,
        event_tx: EventSink,
    ) -> Runner {
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        Runner {
            group_id,
            cfg,
            cluster,
            shared,
            metrics,
            cmd_rx,
            event_tx,
            done_tx,
            done_rx,
            next_token: 1,
            pending: VecDeque::new(),
            closing: None,
            subscription: BTreeSet::new(),
            sub_epoch: 0,
            restart: false,
            next_event_id: 1,
            awaiting_ack: None,
            acked: false,
            polls_seen: (0, Instant::now()),
            left_at_polls: None,
            next_commit_due: None,
            coordinator: None,
            coordinator_retry_at: None,
            fatal: false,
        }
    }

    fn run(&mut self) {
        if self.cfg.enable_auto_commit {
            self.next_commit_due = Some(Instant::now() + self.cfg.auto_commit_interval);
        }
        // Wait for a subscription (or a close) before looking anything up:
        // consumers that only assign partitions never need membership.
        // The auto-commit timer runs meanwhile: a consumer with a group_id
        // that assigns its partitions itself commits on the interval too.
        loop {
            self.handle_cmds();
            if let Some((_, done)) = self.closing.take() {
                let _ = done.send(());
                return;
            }
            if !self.subscription.is_empty() {
                break;
            }
            let now = Instant::now();
            self.tick(now);
            self.wait(self.next_timer(now + Duration::from_secs(1)));
        }
        // Nothing was owned yet: an unsubscribe so far changes nothing.
        self.restart = false;
        let mut protocol = self.cfg.group_protocol;
        if protocol == GroupProtocol::Consumer {
            // Decide once the coordinator is known.
            loop {
                self.handle_cmds();
                if let Some((_, done)) = self.closing.take() {
                    let _ = done.send(());
                    return;
                }
                let now = Instant::now();
                self.tick(now);
                if self.fatal {
                    // Reported once; only a close is left to wait for.
                    self.wait(self.next_timer(now + Duration::from_secs(1)));
                    continue;
                }
                if let Some(conn) = self.ensure_coordinator() {
                    match conn.versions() {
                        Ok(v) if v.max_version(ApiKey::CONSUMER_GROUP_HEARTBEAT).is_some() => break,
                        Ok(_) => {
                            log::warn!(
                                "group `{}`: the coordinator does not offer ConsumerGroupHeartbeat (KIP-848, Kafka 4.0+); using group_protocol=classic",
                                self.group_id
                            );
                            protocol = GroupProtocol::Classic;
                            break;
                        }
                        // A refused login or a TLS failure: retrying
                        // cannot help.
                        Err(e) if e.repeats_on_reconnect() => {
                            self.fail(e);
                            self.coordinator_lost();
                        }
                        Err(e) => {
                            log::debug!(
                                "group `{}`: coordinator handshake failed: {e}",
                                self.group_id
                            );
                            self.coordinator_lost();
                        }
                    }
                }
                self.wait(self.next_timer(now + self.backoff()));
            }
            self.restart = false;
        }
        match protocol {
            GroupProtocol::Classic => classic::run(self),
            GroupProtocol::Consumer => consumer_group::run(self),
        }
        if let Some((_, done)) = self.closing.take() {
            let _ = done.send(());
        }
    }

    fn backoff(&self) -> Duration {
        self.cfg
            .client
            .retry_backoff()
            .max(Duration::from_millis(10))
    }

    /// Sends `e` to the consumer; returns its id.
    fn emit(&mut self, event: GroupEvent) -> u64 {
        let id = self.next_event_id;
        self.next_event_id += 1;
        let _ = self.event_tx.tx.send(GroupMsg {
            epoch: self.sub_epoch,
            id,
            event,
        });
        (self.event_tx.wake)();
        id
    }

    /// Sends `e` (a Revoke or Assigned) and waits for its acknowledgement.
    fn emit_for_ack(&mut self, event: GroupEvent) {
        let id = self.emit(event);
        self.awaiting_ack = Some(id);
    }

    /// Whether an event waits for the consumer's acknowledgement.
    fn awaiting(&self) -> bool {
        self.awaiting_ack.is_some()
    }

    /// Takes the "subscription epoch changed" latch.
    fn take_restart(&mut self) -> bool {
        let r = std::mem::take(&mut self.restart);
        if r {
            self.awaiting_ack = None;
            self.acked = false;
        }
        r
    }

    /// A fatal error: the consumer reports it and membership stops.
    fn fail(&mut self, e: Error) {
        log::error!("group `{}`: {e}", self.group_id);
        self.fatal = true;
        self.emit(GroupEvent::Fatal(e));
    }

    fn handle_cmd(&mut self, cmd: GroupCmd) {
        match cmd {
            GroupCmd::Subscribe { epoch, topics } => {
                if epoch != self.sub_epoch {
                    self.sub_epoch = epoch;
                    self.restart = true;
                }
                self.subscription = topics;
            }
            GroupCmd::Ack { id } => {
                // An acknowledgement of an event that no longer counts (its
                // membership ended, or the consumer dropped it) is ignored.
                if self.awaiting_ack == Some(id) {
                    self.awaiting_ack = None;
                    self.acked = true;
                }
            }
            GroupCmd::Close { leave, done } => self.closing = Some((leave, done)),
        }
    }

    /// Takes every queued command.
    fn handle_cmds(&mut self) {
        while let Some(c) = self.pending.pop_front() {
            self.handle_cmd(c);
        }
        loop {
            match self.cmd_rx.try_recv() {
                Ok(c) => self.handle_cmd(c),
                Err(crossbeam_channel::TryRecvError::Empty) => break,
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    if self.closing.is_none() {
                        let (tx, _rx) = crossbeam_channel::bounded(1);
                        self.closing = Some((false, tx));
                    }
                    break;
                }
            }
        }
    }

    /// Sleeps until `until` or a command arrives.
    fn wait(&mut self, until: Instant) {
        if !self.pending.is_empty() || self.closing.is_some() {
            return;
        }
        let d = until
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        select! {
            recv(self.cmd_rx) -> c => match c {
                Ok(c) => self.pending.push_back(c),
                Err(_) => {
                    let (tx, _rx) = crossbeam_channel::bounded(1);
                    self.closing = Some((false, tx));
                }
            },
            default(d) => {}
        }
    }

    /// The earlier of `t` and the next auto-commit.
    fn next_timer(&self, t: Instant) -> Instant {
        match self.next_commit_due {
            Some(c) => t.min(c),
            None => t,
        }
    }

    /// Auto-commit ticks and poll tracking; call every loop.
    fn tick(&mut self, now: Instant) {
        let polls = self.shared.polls.load(Ordering::Relaxed);
        if polls != self.polls_seen.0 {
            self.polls_seen = (polls, now);
        }
        if let Some(due) = self.next_commit_due {
            if now >= due {
                // At least 1 ms: an interval of 0 must not make a timer that
                // is always due.
                let every = self.cfg.auto_commit_interval.max(Duration::from_millis(1));
                self.next_commit_due = Some(now + every);
                if !self.shared.commit_due.swap(true, Ordering::AcqRel) {
                    self.emit(GroupEvent::CommitDue);
                }
            }
        }
    }

    /// Whether the consumer has not polled for `max_poll_interval_ms`.
    fn poll_interval_exceeded(&self, now: Instant) -> bool {
        now.duration_since(self.polls_seen.1) > self.cfg.max_poll_interval
    }

    /// Whether a member (`in_group`) must leave now because the consumer
    /// has not polled for `max_poll_interval_ms`, as the Java client does;
    /// says so in the log. The caller leaves, loses its partitions, then
    /// calls [`left_for_poll`](Self::left_for_poll).
    fn must_leave_for_poll(&self, now: Instant, in_group: bool) -> bool {
        let leave = self.left_at_polls.is_none() && in_group && self.poll_interval_exceeded(now);
        if leave {
            log::warn!(
                "group `{}`: no poll for more than max_poll_interval_ms ({} ms): leaving the group so its partitions can move; the next poll rejoins. Poll more often, or raise max_poll_interval_ms / lower max_poll_records",
                self.group_id,
                self.cfg.max_poll_interval.as_millis()
            );
        }
        leave
    }

    /// Notes that the member left for want of polls: nothing waits for an
    /// acknowledgement any more, and the next poll rejoins.
    fn left_for_poll(&mut self) {
        self.awaiting_ack = None;
        self.left_at_polls = Some(self.shared.polls.load(Ordering::Relaxed));
    }

    /// Whether the consumer polled again since the member left for want of
    /// polls (once: the member rejoins).
    fn polled_again(&mut self) -> bool {
        let again = self
            .left_at_polls
            .is_some_and(|n| self.shared.polls.load(Ordering::Relaxed) != n);
        if again {
            self.left_at_polls = None;
        }
        again
    }

    fn set_member(&self, member_id: &str, generation: i32) {
        let mut m = self.shared.member.lock();
        m.member_id = member_id.to_owned();
        m.generation = generation;
    }

    /// The coordinator connection, looked up when unknown (not more often
    /// than the retry backoff); `None` for now when it cannot be found.
    fn ensure_coordinator(&mut self) -> Option<Connection> {
        if let Some((_, c)) = &self.coordinator {
            return Some(c.clone());
        }
        let now = Instant::now();
        if self.coordinator_retry_at.is_some_and(|t| t > now) {
            return None;
        }
        let found = find_coordinator(
            &self.cluster,
            &self.group_id,
            self.cfg.client.request_timeout(),
        )
        .and_then(|id| Ok((id, self.cluster.connection(id, Purpose::Group)?)));
        match found {
            Ok((id, conn)) => {
                log::debug!("group `{}`: coordinator is broker {id}", self.group_id);
                self.shared.member.lock().coordinator = Some(id);
                self.coordinator = Some((id, conn.clone()));
                self.coordinator_retry_at = None;
                Some(conn)
            }
            Err(e) => {
                self.coordinator_retry_at = Some(now + self.backoff());
                if e.kafka_code() == Some(ErrorCode::GROUP_AUTHORIZATION_FAILED)
                    || e.repeats_on_reconnect()
                {
                    if !self.fatal {
                        self.fail(e);
                    }
                    return None;
                }
                log::debug!("group `{}`: {e}", self.group_id);
                None
            }
        }
    }

    /// Forgets the coordinator (it moved or its connection failed).
    fn coordinator_lost(&mut self) {
        self.coordinator = None;
        self.shared.member.lock().coordinator = None;
        self.cluster.request_update();
    }

    /// Sends a request to the coordinator and waits for the answer, taking
    /// commands meanwhile; a close interrupts it with a `Closed` error.
    fn call<R: Request>(
        &mut self,
        conn: &Connection,
        timeout: Duration,
        build: impl FnOnce(i16) -> R,
    ) -> Result<R::Response> {
        let version = conn.versions()?.negotiate::<R>()?;
        let request = build(version);
        let token = self.next_token;
        self.next_token += 1;
        conn.submit(
            &request,
            Some(version),
            true,
            timeout,
            Reply::new(self.done_tx.clone(), token),
        )?;
        loop {
            select! {
                recv(self.done_rx) -> c => {
                    let Ok(c) = c else {
                        return Err(Error::closed("the group thread's reply channel closed"));
                    };
                    if c.token != token {
                        continue; // an answer to an interrupted request
                    }
                    return decode_response::<R>(&c.result?, version);
                }
                recv(self.cmd_rx) -> cmd => match cmd {
                    Ok(GroupCmd::Close { leave, done }) => {
                        self.closing = Some((leave, done));
                        return Err(Error::closed("the consumer is closing"));
                    }
                    Ok(other) => self.pending.push_back(other),
                    Err(_) => {
                        let (tx, _rx) = crossbeam_channel::bounded(1);
                        self.closing = Some((false, tx));
                        return Err(Error::closed("the consumer is gone"));
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClientConfig;

    struct NoMetrics;
    impl GroupMetrics for NoMetrics {
        fn rebalanced(&self) {}
        fn heartbeat(&self) {}
    }

    fn runner() -> (Runner, Sender<GroupCmd>, Receiver<GroupMsg>) {
        let cfg = GroupConfig {
            client: ClientConfig::builder()
                .bootstrap_servers("127.0.0.1:1")
                .build()
                .unwrap(),
            group_id: "g".into(),
            group_instance_id: None,
            enable_auto_commit: true,
            auto_commit_interval: Duration::ZERO,
            max_poll_interval: Duration::from_secs(300),
            session_timeout: Duration::from_secs(45),
            heartbeat_interval: Duration::from_secs(3),
            assignors: vec![AssignmentStrategy::Range],
            group_protocol: GroupProtocol::Classic,
            group_remote_assignor: None,
            client_rack: None,
        };
        let cluster = Cluster::new(cfg.client.clone(), false);
        let shared = Arc::new(GroupShared::new());
        let (cmd_tx, cmd_rx) = crossbeam_channel::unbounded();
        let (event_tx, events) = crossbeam_channel::unbounded();
        let r = Runner::new(
            "g".into(),
            Arc::new(cfg),
            cluster,
            shared,
            Arc::new(NoMetrics),
            cmd_rx,
            EventSink {
                tx: event_tx,
                wake: Arc::new(|| {}),
            },
        );
        (r, cmd_tx, events)
    }

    fn topics(t: &[&str]) -> BTreeSet<String> {
        t.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn unsubscribe_then_subscribe_in_one_batch_still_restarts() {
        let (mut r, tx, events) = runner();
        tx.send(GroupCmd::Subscribe {
            epoch: 0,
            topics: topics(&["t"]),
        })
        .unwrap();
        r.handle_cmds();
        assert!(!r.take_restart());
        r.emit_for_ack(GroupEvent::Assigned {
            added: vec![TopicPartition::new("t", 0)],
            revoked: Vec::new(),
        });
        let sent = events.try_recv().unwrap();
        assert_eq!(sent.epoch, 0);
        // unsubscribe() and subscribe() back to back, seen together.
        tx.send(GroupCmd::Subscribe {
            epoch: 1,
            topics: BTreeSet::new(),
        })
        .unwrap();
        tx.send(GroupCmd::Subscribe {
            epoch: 1,
            topics: topics(&["t"]),
        })
        .unwrap();
        r.handle_cmds();
        assert_eq!(r.subscription, topics(&["t"]));
        assert!(r.take_restart(), "the unsubscribe is not lost");
        assert!(!r.awaiting(), "the old event's acknowledgement is void");
        assert!(!r.take_restart());
        r.emit(GroupEvent::CommitDue);
        assert_eq!(events.try_recv().unwrap().epoch, 1);
    }

    #[test]
    fn only_the_awaited_event_is_acknowledged() {
        let (mut r, tx, _events) = runner();
        r.emit_for_ack(GroupEvent::Revoke(Vec::new()));
        let first = r.awaiting_ack.unwrap();
        r.awaiting_ack = None;
        r.emit_for_ack(GroupEvent::Revoke(Vec::new()));
        let second = r.awaiting_ack.unwrap();
        tx.send(GroupCmd::Ack { id: first }).unwrap();
        r.handle_cmds();
        assert!(r.awaiting(), "a late acknowledgement of an older event");
        tx.send(GroupCmd::Ack { id: second }).unwrap();
        r.handle_cmds();
        assert!(!r.awaiting());
        assert!(r.acked);
    }

    #[test]
    fn an_interval_of_zero_does_not_make_an_always_due_timer() {
        let (mut r, _tx, events) = runner();
        let now = Instant::now();
        r.next_commit_due = Some(now);
        r.tick(now);
        assert!(matches!(
            events.try_recv().unwrap().event,
            GroupEvent::CommitDue
        ));
        assert!(r.next_commit_due.unwrap() > now);
    }
}
