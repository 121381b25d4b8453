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

pub(crate) mod assignor;
mod classic;
mod consumer_group;
pub(crate) mod protocol;

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, Sender};
use parking_lot::Mutex;

use crate::cluster::{Cluster, Purpose};
use crate::consumer::metrics::Metrics;
use crate::consumer::offsets::Member;
use crate::consumer::{ConsumerConfig, GroupProtocol, TopicPartition};
use crate::error::{Error, ErrorKind, Result};
use crate::net::{decode_response, Completion, Connection, Reply};
use crate::protocol::messages::FindCoordinatorRequest;
use crate::protocol::{ApiKey, ErrorCode, Request};

/// Membership details the consumer thread reads for commits.
#[derive(Debug, Clone)]
pub(crate) struct MemberState {
    pub(crate) coordinator: Option<i32>,
    pub(crate) member_id: String,
    /// Generation (classic) or member epoch (KIP-848); -1 outside a group.
    pub(crate) generation: i32,
}

/// State shared by the consumer thread and the group thread.
pub(crate) struct GroupShared {
    pub(crate) member: Mutex<MemberState>,
    /// Bumped by the consumer on every poll and `next()` (a plain store).
    pub(crate) polls: AtomicU64,
    /// A `CommitDue` event is waiting for the consumer.
    pub(crate) commit_due: AtomicBool,
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
    /// The topics to be a member for (empty: leave).
    Subscribe(BTreeSet<String>),
    /// The last Revoke/Assigned event was handled.
    Ack,
    /// Leave (unless `leave` is false or the member is static) and stop.
    Close { leave: bool, done: Sender<()> },
}

/// The consumer thread's handle to the group thread.
pub(crate) struct Group {
    pub(crate) shared: Arc<GroupShared>,
    cmd_tx: Sender<GroupCmd>,
    pub(crate) events: Receiver<GroupEvent>,
    thread: Option<JoinHandle<()>>,
    group_id: String,
    instance_id: Option<String>,
}

impl Group {
    /// Starts the group thread for `cfg.group_id`.
    pub(crate) fn start(
        cfg: Arc<ConsumerConfig>,
        cluster: Arc<Cluster>,
        metrics: Arc<Metrics>,
    ) -> Result<Group> {
        let group_id = cfg
            .group_id
            .clone()
            .ok_or_else(|| Error::invalid_argument("no group_id"))?;
        let shared = Arc::new(GroupShared {
            member: Mutex::new(MemberState {
                coordinator: None,
                member_id: String::new(),
                generation: -1,
            }),
            polls: AtomicU64::new(0),
            commit_due: AtomicBool::new(false),
        });
        let (cmd_tx, cmd_rx) = crossbeam_channel::unbounded();
        let (event_tx, events) = crossbeam_channel::unbounded();
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        let now = Instant::now();
        let instance_id = cfg.group_instance_id.clone();
        let mut runner = Runner {
            group_id: group_id.clone(),
            cfg,
            cluster,
            shared: Arc::clone(&shared),
            metrics,
            cmd_rx,
            event_tx,
            done_tx,
            done_rx,
            next_token: 1,
            pending: VecDeque::new(),
            closing: None,
            subscription: BTreeSet::new(),
            awaiting_ack: false,
            polls_seen: (0, now),
            left_at_polls: None,
            next_commit_due: None,
            coordinator: None,
            coordinator_retry_at: None,
            fatal: false,
        };
        let thread = std::thread::Builder::new()
            .name("kafka-consumer-group".into())
            .spawn(move || runner.run())
            .map_err(|e| Error::io("spawning the consumer's group thread", e))?;
        Ok(Group {
            shared,
            cmd_tx,
            events,
            thread: Some(thread),
            group_id,
            instance_id,
        })
    }

    /// Tells the group thread which topics to be a member for.
    pub(crate) fn subscribe(&self, topics: BTreeSet<String>) {
        let _ = self.cmd_tx.send(GroupCmd::Subscribe(topics));
    }

    /// Acknowledges the last Revoke/Assigned event.
    pub(crate) fn ack(&self) {
        let _ = self.cmd_tx.send(GroupCmd::Ack);
    }

    /// Records a poll (for `max_poll_interval_ms`).
    #[inline]
    pub(crate) fn polled(&self, n: u64) {
        self.shared.polls.store(n, Ordering::Relaxed);
    }

    /// The identity to commit with.
    pub(crate) fn member(&self) -> Member {
        let m = self.shared.member.lock();
        Member {
            group_id: self.group_id.clone(),
            member_id: m.member_id.clone(),
            generation: m.generation,
            instance_id: self.instance_id.clone(),
        }
    }

    /// The group id.
    pub(crate) fn group_id(&self) -> &str {
        &self.group_id
    }

    /// The coordinator's `Group` connection, looking it up if need be.
    pub(crate) fn coordinator(&self, cluster: &Cluster, timeout: Duration) -> Result<Connection> {
        let known = self.shared.member.lock().coordinator;
        let id = match known {
            Some(id) => id,
            None => {
                let id = find_coordinator(cluster, &self.group_id, timeout)?;
                self.shared.member.lock().coordinator = Some(id);
                id
            }
        };
        cluster.connection(id, Purpose::Group)
    }

    /// Forgets the coordinator after a coordinator error.
    pub(crate) fn coordinator_failed(&self) {
        self.shared.member.lock().coordinator = None;
    }

    /// Stops the group thread, leaving the group when `leave` (and the
    /// member is not static); waits up to `timeout`.
    pub(crate) fn close(&mut self, leave: bool, timeout: Duration) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        let (tx, rx) = crossbeam_channel::bounded(1);
        if self
            .cmd_tx
            .send(GroupCmd::Close { leave, done: tx })
            .is_ok()
        {
            let _ = rx.recv_timeout(timeout);
        }
        let deadline = Instant::now() + Duration::from_millis(200);
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        if thread.is_finished() {
            let _ = thread.join();
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.close(false, Duration::from_secs(1));
    }
}

/// Looks up the coordinator of `group_id`; returns its node id (known to
/// the metadata snapshot afterwards).
pub(crate) fn find_coordinator(
    cluster: &Cluster,
    group_id: &str,
    timeout: Duration,
) -> Result<i32> {
    let deadline = Instant::now() + timeout;
    let backoff = cluster
        .config()
        .retry_backoff()
        .max(Duration::from_millis(10));
    let mut last: Option<Error> = None;
    loop {
        if Instant::now() >= deadline {
            let why = last.map_or_else(String::new, |e| format!(": {e}"));
            return Err(Error::timeout(format!(
                "finding the coordinator of group `{group_id}` did not finish within {} ms{why}",
                timeout.as_millis()
            )));
        }
        let mut ids: Vec<i32> = cluster.metadata().brokers.keys().copied().collect();
        if ids.is_empty() {
            match cluster.refresh(crate::cluster::TopicSelection::Interest) {
                Ok(s) => ids = s.brokers.keys().copied().collect(),
                Err(e) => last = Some(e),
            }
        }
        for id in ids {
            let left = deadline.saturating_duration_since(Instant::now());
            let conn = match cluster.connection(id, Purpose::General) {
                Ok(c) => c,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            let mut version = 0;
            let answer = conn.send_versioned(left.max(Duration::from_millis(1)), |v| {
                version = v;
                if v >= 4 {
                    FindCoordinatorRequest {
                        key_type: 0,
                        coordinator_keys: vec![group_id.to_owned()],
                        ..Default::default()
                    }
                } else {
                    FindCoordinatorRequest {
                        key: group_id.to_owned(),
                        key_type: 0,
                        ..Default::default()
                    }
                }
            });
            let r = match answer {
                Ok(r) => r,
                Err(e) if e.is_retriable() || e.kind() == ErrorKind::Closed => {
                    last = Some(e);
                    continue;
                }
                Err(e) => return Err(e.context("finding the group coordinator")),
            };
            let (code, node, message) = if version >= 4 {
                match r.coordinators.first() {
                    Some(c) => (ErrorCode(c.error_code), c.node_id, c.error_message.clone()),
                    None => (ErrorCode::COORDINATOR_NOT_AVAILABLE, -1, None),
                }
            } else {
                (ErrorCode(r.error_code), r.node_id, r.error_message.clone())
            };
            if code.is_err() {
                let e = Error::broker(
                    code,
                    format!(
                        "finding the coordinator of group `{group_id}`{}",
                        message.map_or_else(String::new, |m| format!(": {m}"))
                    ),
                );
                if code.is_retriable() {
                    last = Some(e);
                    break;
                }
                return Err(e);
            }
            cluster.ensure_broker_known(node)?;
            return Ok(node);
        }
        std::thread::sleep(backoff.min(deadline.saturating_duration_since(Instant::now())));
    }
}

/// The plumbing both group protocols share: commands, events, timers, the
/// coordinator, and requests that a close can interrupt.
pub(crate) struct Runner {
    group_id: String,
    cfg: Arc<ConsumerConfig>,
    cluster: Arc<Cluster>,
    shared: Arc<GroupShared>,
    metrics: Arc<Metrics>,
    cmd_rx: Receiver<GroupCmd>,
    event_tx: Sender<GroupEvent>,
    done_tx: Sender<Completion>,
    done_rx: Receiver<Completion>,
    next_token: u64,
    pending: VecDeque<GroupCmd>,
    closing: Option<(bool, Sender<()>)>,
    subscription: BTreeSet<String>,
    awaiting_ack: bool,
    polls_seen: (u64, Instant),
    /// The poll count when `max_poll_interval_ms` made us leave.
    left_at_polls: Option<u64>,
    next_commit_due: Option<Instant>,
    coordinator: Option<(i32, Connection)>,
    coordinator_retry_at: Option<Instant>,
    fatal: bool,
}

impl Runner {
    fn run(&mut self) {
        if self.cfg.enable_auto_commit {
            self.next_commit_due = Some(Instant::now() + self.cfg.auto_commit_interval);
        }
        // Wait for a subscription (or a close) before looking anything up:
        // consumers that only assign partitions never need membership.
        loop {
            self.handle_cmds();
            if let Some((_, done)) = self.closing.take() {
                let _ = done.send(());
                return;
            }
            if !self.subscription.is_empty() {
                break;
            }
            self.wait(self.next_timer(Instant::now() + Duration::from_secs(1)));
        }
        let mut protocol = self.cfg.group_protocol;
        if protocol == GroupProtocol::Consumer {
            // Decide once the coordinator is known.
            loop {
                self.handle_cmds();
                if let Some((_, done)) = self.closing.take() {
                    let _ = done.send(());
                    return;
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
                        Err(e) => {
                            log::debug!(
                                "group `{}`: coordinator handshake failed: {e}",
                                self.group_id
                            );
                            self.coordinator_lost();
                        }
                    }
                }
                self.wait(self.next_timer(Instant::now() + self.backoff()));
            }
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

    fn emit(&self, e: GroupEvent) {
        let _ = self.event_tx.send(e);
    }

    /// A fatal error: the consumer reports it and membership stops.
    fn fail(&mut self, e: Error) {
        log::error!("group `{}`: {e}", self.group_id);
        self.fatal = true;
        self.emit(GroupEvent::Fatal(e));
    }

    fn handle_cmd(&mut self, cmd: GroupCmd) {
        match cmd {
            GroupCmd::Subscribe(topics) => self.subscription = topics,
            GroupCmd::Ack => self.awaiting_ack = false,
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
                self.next_commit_due = Some(now + self.cfg.auto_commit_interval);
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

    /// Whether the consumer polled since `left_at_polls` was set.
    fn polled_since_leaving(&self) -> bool {
        self.left_at_polls
            .is_some_and(|n| self.shared.polls.load(Ordering::Relaxed) != n)
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
                if e.kafka_code() == Some(ErrorCode::GROUP_AUTHORIZATION_FAILED) {
                    self.fail(e);
                    return None;
                }
                log::debug!("group `{}`: {e}", self.group_id);
                self.coordinator_retry_at = Some(now + self.backoff());
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
