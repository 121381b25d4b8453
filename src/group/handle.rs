//! The consumer thread's side of the group: [`Group`] starts and stops
//! the group thread and talks to it; [`GroupHandle`] gives commits and
//! committed-offset lookups (from any thread) the group id, the member
//! identity and the coordinator, from the state both threads share.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

use super::coordinator::find_coordinator;
use super::{EventSink, GroupCmd, GroupConfig, GroupMetrics, GroupMsg, Runner, Wake};
use crate::cluster::{Cluster, Purpose};
use crate::error::{Error, Result};
use crate::net::Connection;

/// Who commits or asks: the group and, when a member, its identity.
#[derive(Debug, Clone, Default)]
pub(crate) struct Member {
    pub(crate) group_id: String,
    pub(crate) member_id: String,
    /// The generation (classic) or member epoch (KIP-848); -1 outside.
    pub(crate) generation: i32,
    pub(crate) instance_id: Option<String>,
}

impl Member {
    /// A client outside the group (generation -1, no member id), as the
    /// admin client commits and asks.
    pub(crate) fn outsider(group_id: &str) -> Member {
        Member {
            group_id: group_id.to_owned(),
            member_id: String::new(),
            generation: -1,
            instance_id: None,
        }
    }
}

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

impl GroupShared {
    /// Not a member yet, no poll, no commit due.
    pub(super) fn new() -> GroupShared {
        GroupShared {
            member: Mutex::new(MemberState {
                coordinator: None,
                member_id: String::new(),
                generation: -1,
            }),
            polls: AtomicU64::new(0),
            commit_due: AtomicBool::new(false),
        }
    }
}

/// The consumer thread's handle to the group thread.
pub(crate) struct Group {
    pub(crate) shared: Arc<GroupShared>,
    cmd_tx: Sender<GroupCmd>,
    pub(crate) events: Receiver<GroupMsg>,
    thread: Option<JoinHandle<()>>,
    handle: GroupHandle,
}

/// What commits and committed-offset lookups need of the group, for any
/// thread: its id, the member identity and the coordinator.
#[derive(Clone)]
pub(crate) struct GroupHandle {
    shared: Arc<GroupShared>,
    group_id: String,
    instance_id: Option<String>,
}

impl GroupHandle {
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

    /// The coordinator's `Group` connection, looking it up (blocking, up to
    /// `timeout`) if need be.
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

    /// The coordinator's `Group` connection when the coordinator is known
    /// and the connection has been set up (no I/O, never blocks).
    pub(crate) fn ready_coordinator(&self, cluster: &Cluster) -> Option<Connection> {
        let id = self.shared.member.lock().coordinator?;
        let conn = cluster.connection(id, Purpose::Group).ok()?;
        conn.known_versions().map(|_| conn)
    }

    /// Forgets the coordinator after a coordinator error.
    pub(crate) fn coordinator_failed(&self) {
        self.shared.member.lock().coordinator = None;
    }
}

impl Group {
    /// Starts the group thread for `cfg.group_id`.
    pub(crate) fn start(
        cfg: GroupConfig,
        cluster: Arc<Cluster>,
        metrics: Arc<dyn GroupMetrics>,
        wake: Wake,
    ) -> Result<Group> {
        let group_id = cfg.group_id.clone();
        let shared = Arc::new(GroupShared::new());
        let (cmd_tx, cmd_rx) = crossbeam_channel::unbounded();
        let (event_tx, events) = crossbeam_channel::unbounded();
        let instance_id = cfg.group_instance_id.clone();
        let mut runner = Runner::new(
            group_id.clone(),
            Arc::new(cfg),
            cluster,
            Arc::clone(&shared),
            metrics,
            cmd_rx,
            EventSink { tx: event_tx, wake },
        );
        let thread = std::thread::Builder::new()
            .name("kafka-consumer-group".into())
            .spawn(move || runner.run())
            .map_err(|e| Error::io("spawning the consumer's group thread", e))?;
        Ok(Group {
            shared: Arc::clone(&shared),
            cmd_tx,
            events,
            thread: Some(thread),
            handle: GroupHandle {
                shared,
                group_id,
                instance_id,
            },
        })
    }

    /// A handle for commits and lookups from any thread.
    pub(crate) fn handle(&self) -> &GroupHandle {
        &self.handle
    }

    /// Tells the group thread which topics to be a member for, in
    /// subscription `epoch` (see [`GroupCmd::Subscribe`]).
    pub(crate) fn subscribe(&self, epoch: u64, topics: BTreeSet<String>) {
        let _ = self.cmd_tx.send(GroupCmd::Subscribe { epoch, topics });
    }

    /// Acknowledges the Revoke/Assigned event `id`.
    pub(crate) fn ack(&self, id: u64) {
        let _ = self.cmd_tx.send(GroupCmd::Ack { id });
    }

    /// Records a poll (for `max_poll_interval_ms`).
    #[inline]
    pub(crate) fn polled(&self, n: u64) {
        self.shared.polls.store(n, Ordering::Relaxed);
    }

    /// The identity to commit with.
    pub(crate) fn member(&self) -> Member {
        self.handle.member()
    }

    /// The group id.
    pub(crate) fn group_id(&self) -> &str {
        self.handle.group_id()
    }

    /// The coordinator's `Group` connection, looking it up if need be.
    pub(crate) fn coordinator(&self, cluster: &Cluster, timeout: Duration) -> Result<Connection> {
        self.handle.coordinator(cluster, timeout)
    }

    /// Forgets the coordinator after a coordinator error.
    pub(crate) fn coordinator_failed(&self) {
        self.handle.coordinator_failed();
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
