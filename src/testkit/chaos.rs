//! [`ChaosCluster`]: one real broker made to look like a cluster of N
//! brokers, with controls to move leaders, kill and revive nodes, slow them
//! down, silence them, cut connections and inject error codes.
//!
//! Each fake node listens on its own 127.0.0.1 port. Every client
//! connection gets its own connection to the real broker and one thread
//! that reads a request, decides, and answers before reading the next (a
//! Kafka broker also handles one request per connection at a time, so
//! ordering is what clients expect). The thread:
//!
//! * rewrites `Metadata`, `FindCoordinator` and `DescribeCluster` answers so
//!   the cluster has the live fake nodes, with partition leaders spread over
//!   them and leader epochs bumped by every move;
//! * answers `Produce`, `Fetch` and `ListOffsets` itself with
//!   `NOT_LEADER_OR_FOLLOWER` when a partition in the request is not led by
//!   this node (every partition of that request gets the error: the request
//!   is never split), and the group APIs with `NOT_COORDINATOR` when the
//!   group's coordinator is another node;
//! * forwards everything else byte for byte. Leader epochs the client sends
//!   (which are the fake, bumped ones) are replaced by -1 ("unknown", so the
//!   real broker skips its check) in forwarded `Fetch`, `ListOffsets` and
//!   `OffsetForLeaderEpoch`.
//! * for KIP-320 tests: [`ChaosCluster::set_divergence`] makes a
//!   partition's `OffsetForLeaderEpoch` answers say that its log diverged
//!   at an offset. Over a broker without `OffsetForLeaderEpoch` (Tansu) the
//!   front offers it in `ApiVersions` (v0–4) and answers it itself (the
//!   divergence, else "undefined": it keeps no epoch history); and
//!   where the broker drops the leader epoch of a committed offset
//!   (`OffsetFetch` answers -1, as Tansu does) the front puts back the
//!   epoch committed through it for that same offset.
//!
//! What it never does: split a request over nodes, change records, or keep
//! log state the real broker does not have (all fake nodes share the real
//! broker's log, so a "moved" leader has the same data; a divergence only
//! changes what `OffsetForLeaderEpoch` says, not the records). Forwarded
//! answers are not filtered per partition: a fetch session opened on a node
//! before a leader move may still return the moved partition's data from
//! the same log.

use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

mod answers;
mod proxy;

use proxy::spawn_accept;

use crate::error::{Error, Result};
use crate::protocol::{ApiKey, ErrorCode, Uuid};

/// Counters of what a [`ChaosCluster`] did, for test output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChaosStats {
    /// Client connections accepted (over all nodes and lifetimes).
    pub connections: u64,
    /// Requests forwarded to the real broker.
    pub forwarded: u64,
    /// Answers rewritten (`Metadata`, `FindCoordinator`, `DescribeCluster`).
    pub rewritten: u64,
    /// Requests answered `NOT_LEADER_OR_FOLLOWER` / `NOT_COORDINATOR`
    /// because they reached the wrong node.
    pub wrong_node: u64,
    /// Requests answered with an injected error code.
    pub injected: u64,
    /// Connections cut at random (before or after forwarding).
    pub cut: u64,
    /// Leader moves (explicit, or because the leader's node died).
    pub leader_moves: u64,
    /// `OffsetForLeaderEpoch` partition answers made up for a partition
    /// given a divergence with [`ChaosCluster::set_divergence`].
    pub divergent_answers: u64,
    /// Committed leader epochs the broker dropped and the front put back
    /// into `OffsetFetch` answers.
    pub epochs_restored: u64,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    forwarded: AtomicU64,
    rewritten: AtomicU64,
    wrong_node: AtomicU64,
    injected: AtomicU64,
    cut: AtomicU64,
    leader_moves: AtomicU64,
    divergent_answers: AtomicU64,
    epochs_restored: AtomicU64,
}

struct Node {
    id: i32,
    port: u16,
    alive: bool,
    delay_ms: u64,
    silent: bool,
    accept: Option<JoinHandle<()>>,
    /// Both sockets of every open connection, to close them on kill.
    conns: HashMap<u64, (TcpStream, TcpStream)>,
}

#[derive(Clone, Copy)]
struct Placement {
    leader: i32,
    bump: i32,
}

struct State {
    nodes: Vec<Node>,
    placements: HashMap<(String, i32), Placement>,
    coordinators: HashMap<String, i32>,
    topic_names: HashMap<Uuid, String>,
    /// api key → (error code, answers left).
    injections: HashMap<i16, (i16, u32)>,
    /// (topic, partition) → the offset its log "diverged" at.
    divergences: HashMap<(String, i32), i64>,
    /// (group, topic, partition) → the last (offset, leader epoch)
    /// committed with an epoch through the front.
    committed_epochs: HashMap<(String, String, i32), (i64, i32)>,
    /// The real broker does not offer `OffsetForLeaderEpoch` (Tansu): the
    /// front adds it to `ApiVersions` and answers it itself.
    emulate_epoch_ends: bool,
    next_conn: u64,
}

struct Inner {
    upstream: SocketAddr,
    state: Mutex<State>,
    stats: Counters,
    stop: AtomicBool,
    cut_per_mille: AtomicU32,
    rng: AtomicU64,
}

/// One real broker made to look like a cluster of N brokers on N
/// 127.0.0.1 ports, with controls to break it (feature `testkit`).
///
/// Node ids are `1..=N`. Partition leaders are spread over the nodes the
/// first time the front sees a partition; [`move_leader`](Self::move_leader)
/// moves one (bumping its leader epoch), [`kill`](Self::kill) closes a
/// node's port and connections and moves its partitions and coordinators to
/// live nodes, [`revive`](Self::revive) opens the port again.
///
/// ```no_run
/// # fn main() -> kafka_blocking::Result<()> {
/// use kafka_blocking::testkit::{ChaosCluster, LocalBroker};
///
/// let broker = LocalBroker::start()?;
/// let cluster = ChaosCluster::start(broker.bootstrap_servers(), 3)?;
/// // Give clients cluster.bootstrap_servers(); then, while they run:
/// cluster.move_leader("events", 0, 2)?;
/// cluster.kill(3);
/// cluster.revive(3)?;
/// println!("{:?}", cluster.stats());
/// # Ok(())
/// # }
/// ```
pub struct ChaosCluster {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ChaosCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChaosCluster")
            .field("upstream", &self.inner.upstream)
            .field("bootstrap", &self.bootstrap_servers())
            .finish()
    }
}

impl ChaosCluster {
    /// Starts `nodes` fake nodes (1 to 64) in front of the broker at
    /// `upstream` (`host:port`).
    pub fn start(upstream: &str, nodes: usize) -> Result<ChaosCluster> {
        if !(1..=64).contains(&nodes) {
            return Err(Error::invalid_argument(format!(
                "nodes: {nodes} is outside 1..=64"
            )));
        }
        let upstream: SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(upstream)
            .map_err(|e| Error::io(format!("resolving {upstream}"), e))?
            .next()
            .ok_or_else(|| {
                Error::invalid_argument(format!("upstream: {upstream} resolves to nothing"))
            })?;
        let inner = Arc::new(Inner {
            upstream,
            state: Mutex::new(State {
                nodes: Vec::new(),
                placements: HashMap::new(),
                coordinators: HashMap::new(),
                topic_names: HashMap::new(),
                injections: HashMap::new(),
                divergences: HashMap::new(),
                committed_epochs: HashMap::new(),
                emulate_epoch_ends: false,
                next_conn: 0,
            }),
            stats: Counters::default(),
            stop: AtomicBool::new(false),
            cut_per_mille: AtomicU32::new(0),
            rng: AtomicU64::new(0x9E37_79B9_7F4A_7C15),
        });
        for i in 0..nodes {
            let listener = TcpListener::bind("127.0.0.1:0")
                .map_err(|e| Error::io("binding a chaos node", e))?;
            let port = listener
                .local_addr()
                .map_err(|e| Error::io("binding a chaos node", e))?
                .port();
            let id = i as i32 + 1;
            let accept = spawn_accept(&inner, id, listener);
            inner.state.lock().nodes.push(Node {
                id,
                port,
                alive: true,
                delay_ms: 0,
                silent: false,
                accept: Some(accept),
                conns: HashMap::new(),
            });
        }
        Ok(ChaosCluster { inner })
    }

    /// The live nodes' addresses, comma-separated (dead ones are left out).
    pub fn bootstrap_servers(&self) -> String {
        let st = self.inner.state.lock();
        st.nodes
            .iter()
            .filter(|n| n.alive)
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Every node's address, dead or alive, comma-separated.
    pub fn all_servers(&self) -> String {
        let st = self.inner.state.lock();
        st.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node ids, `1..=N`.
    pub fn node_ids(&self) -> Vec<i32> {
        self.inner.state.lock().nodes.iter().map(|n| n.id).collect()
    }

    /// `host:port` of `node`.
    pub fn address(&self, node: i32) -> Option<String> {
        let st = self.inner.state.lock();
        st.nodes
            .iter()
            .find(|n| n.id == node)
            .map(|n| format!("127.0.0.1:{}", n.port))
    }

    /// The leader and leader epoch bump of a partition the front has seen.
    pub fn leader(&self, topic: &str, partition: i32) -> Option<(i32, i32)> {
        let st = self.inner.state.lock();
        st.placements
            .get(&(topic.to_owned(), partition))
            .map(|p| (p.leader, p.bump))
    }

    /// Moves a partition's leadership to `node` (which must be alive) and
    /// bumps its leader epoch; returns the new bump.
    pub fn move_leader(&self, topic: &str, partition: i32, node: i32) -> Result<i32> {
        let mut st = self.inner.state.lock();
        if !st.nodes.iter().any(|n| n.id == node && n.alive) {
            return Err(Error::invalid_argument(format!(
                "node: {node} is not a live node of this cluster"
            )));
        }
        let p = place(&mut st, topic, partition);
        let new = Placement {
            leader: node,
            bump: p.bump + 1,
        };
        st.placements.insert((topic.to_owned(), partition), new);
        self.inner
            .stats
            .leader_moves
            .fetch_add(1, Ordering::Relaxed);
        Ok(new.bump)
    }

    /// Moves every partition the front has seen to the next live node;
    /// returns how many moved.
    pub fn move_all_leaders(&self) -> usize {
        let mut st = self.inner.state.lock();
        let live = live_ids(&st);
        if live.len() < 2 {
            return 0;
        }
        let mut moved = 0;
        for p in st.placements.values_mut() {
            let at = live.iter().position(|&n| n == p.leader).unwrap_or(0);
            p.leader = live[(at + 1) % live.len()];
            p.bump += 1;
            moved += 1;
        }
        self.inner
            .stats
            .leader_moves
            .fetch_add(moved as u64, Ordering::Relaxed);
        moved
    }

    /// The node coordinating `key` (a group or transactional id), once a
    /// client asked for it.
    pub fn coordinator(&self, key: &str) -> Option<i32> {
        self.inner.state.lock().coordinators.get(key).copied()
    }

    /// Kills `node`: closes its port (new connections are refused) and
    /// every connection to it, and moves its partitions and coordinators to
    /// live nodes (bumping leader epochs), as a cluster does when a broker
    /// dies. Killing a dead node does nothing.
    pub fn kill(&self, node: i32) {
        let (accept, conns) = {
            let mut st = self.inner.state.lock();
            let Some(n) = st.nodes.iter_mut().find(|n| n.id == node && n.alive) else {
                return;
            };
            n.alive = false;
            let port = n.port;
            let accept = n.accept.take();
            let conns: Vec<_> = n.conns.drain().map(|(_, c)| c).collect();
            let live = live_ids(&st);
            let mut moves = 0u64;
            if let Some(&first) = live.first() {
                for p in st.placements.values_mut() {
                    if p.leader == node {
                        p.leader = next_live(&live, node).unwrap_or(first);
                        p.bump += 1;
                        moves += 1;
                    }
                }
                for c in st.coordinators.values_mut() {
                    if *c == node {
                        *c = next_live(&live, node).unwrap_or(first);
                    }
                }
            }
            self.inner
                .stats
                .leader_moves
                .fetch_add(moves, Ordering::Relaxed);
            // Wake the accept thread so it sees `alive == false` and drops
            // the listener.
            let _ = TcpStream::connect_timeout(
                &SocketAddr::from(([127, 0, 0, 1], port)),
                Duration::from_secs(1),
            );
            (accept, conns)
        };
        for (c, u) in conns {
            let _ = c.shutdown(Shutdown::Both);
            let _ = u.shutdown(Shutdown::Both);
        }
        if let Some(t) = accept {
            let _ = t.join();
        }
    }

    /// Opens a dead node's port again. Leaders stay where they moved (as
    /// in a cluster without preferred-leader election).
    pub fn revive(&self, node: i32) -> Result<()> {
        let port = {
            let st = self.inner.state.lock();
            match st.nodes.iter().find(|n| n.id == node) {
                None => {
                    return Err(Error::invalid_argument(format!(
                        "node: {node} is not a node of this cluster"
                    )))
                }
                Some(n) if n.alive => return Ok(()),
                Some(n) => n.port,
            }
        };
        // The old listener is closed; the port may take a moment to free.
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", port)) {
                Ok(l) => break l,
                Err(e) if Instant::now() >= deadline => {
                    return Err(Error::io(
                        format!("reopening chaos node {node} on {port}"),
                        e,
                    ))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        let mut st = self.inner.state.lock();
        if let Some(n) = st.nodes.iter_mut().find(|n| n.id == node) {
            n.alive = true;
            n.accept = Some(spawn_accept(&self.inner, node, listener));
        }
        Ok(())
    }

    /// Makes `node` wait `delay` before each answer (zero to stop).
    pub fn set_delay(&self, node: i32, delay: Duration) {
        let mut st = self.inner.state.lock();
        if let Some(n) = st.nodes.iter_mut().find(|n| n.id == node) {
            n.delay_ms = delay.as_millis() as u64;
        }
    }

    /// Makes `node` read requests and never answer them (or answer again).
    pub fn set_silent(&self, node: i32, silent: bool) {
        let mut st = self.inner.state.lock();
        if let Some(n) = st.nodes.iter_mut().find(|n| n.id == node) {
            n.silent = silent;
        }
    }

    /// Cuts a connection at a request with this probability (per mille,
    /// 0 to stop): half of the cuts happen before forwarding, half after
    /// the real broker handled the request (its answer is lost).
    pub fn set_cut_per_mille(&self, per_mille: u32) {
        self.inner
            .cut_per_mille
            .store(per_mille.min(1000), Ordering::Relaxed);
    }

    /// Answers the next `times` requests of `api` with `code`, on any node.
    /// Supported: Produce, Fetch, ListOffsets, JoinGroup, SyncGroup,
    /// Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch.
    pub fn inject_error(&self, api: ApiKey, code: ErrorCode, times: u32) -> Result<()> {
        if !INJECTABLE.contains(&api) {
            return Err(Error::invalid_argument(format!(
                "api: {api} cannot carry an injected error (supported: {})",
                INJECTABLE
                    .iter()
                    .map(|a| a.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        self.inner
            .state
            .lock()
            .injections
            .insert(api.0, (code.0, times));
        Ok(())
    }

    /// Makes `topic`/`partition` look truncated to a client validating
    /// its position (KIP-320): `OffsetForLeaderEpoch` asked about it is
    /// answered, on any node, as by a leader whose log diverged at
    /// `end_offset`: every leader epoch asked about ends there. `None`
    /// forwards those requests to the broker again.
    ///
    /// The log itself is not changed (all nodes share the one real log):
    /// this tests what a client does with the answer (reset to the
    /// divergence point, or report the truncation), not a real unclean
    /// election. Pair it with [`move_leader`](Self::move_leader): a
    /// divergence comes with a leader change.
    pub fn set_divergence(&self, topic: &str, partition: i32, end_offset: Option<i64>) {
        let mut st = self.inner.state.lock();
        let key = (topic.to_owned(), partition);
        match end_offset {
            Some(o) => {
                st.divergences.insert(key, o);
            }
            None => {
                st.divergences.remove(&key);
            }
        }
    }

    /// What the front did so far.
    pub fn stats(&self) -> ChaosStats {
        let c = &self.inner.stats;
        ChaosStats {
            connections: c.connections.load(Ordering::Relaxed),
            forwarded: c.forwarded.load(Ordering::Relaxed),
            rewritten: c.rewritten.load(Ordering::Relaxed),
            wrong_node: c.wrong_node.load(Ordering::Relaxed),
            injected: c.injected.load(Ordering::Relaxed),
            cut: c.cut.load(Ordering::Relaxed),
            leader_moves: c.leader_moves.load(Ordering::Relaxed),
            divergent_answers: c.divergent_answers.load(Ordering::Relaxed),
            epochs_restored: c.epochs_restored.load(Ordering::Relaxed),
        }
    }

    /// Open client connections over all nodes.
    pub fn open_connections(&self) -> usize {
        self.inner
            .state
            .lock()
            .nodes
            .iter()
            .map(|n| n.conns.len())
            .sum()
    }
}

impl Drop for ChaosCluster {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        for id in self.node_ids() {
            self.kill(id);
        }
        // Connection threads end once their sockets are shut down.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(&self.inner) > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

const INJECTABLE: &[ApiKey] = &[
    ApiKey::PRODUCE,
    ApiKey::FETCH,
    ApiKey::LIST_OFFSETS,
    ApiKey::JOIN_GROUP,
    ApiKey::SYNC_GROUP,
    ApiKey::HEARTBEAT,
    ApiKey::LEAVE_GROUP,
    ApiKey::OFFSET_COMMIT,
    ApiKey::OFFSET_FETCH,
];

fn live_ids(st: &State) -> Vec<i32> {
    st.nodes.iter().filter(|n| n.alive).map(|n| n.id).collect()
}

/// The first live node after `node` (wrapping), by id.
fn next_live(live: &[i32], node: i32) -> Option<i32> {
    live.iter()
        .copied()
        .find(|&n| n > node)
        .or_else(|| live.first().copied())
}

fn hash(s: &str) -> usize {
    s.bytes().fold(2166136261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16777619)
    }) as usize
}

/// Where a partition lives, placing it on first sight: node
/// `(hash(topic) + partition) mod N`, or the next live node if that is dead.
fn place(st: &mut State, topic: &str, partition: i32) -> Placement {
    if let Some(p) = st.placements.get(&(topic.to_owned(), partition)) {
        return *p;
    }
    let ids: Vec<i32> = st.nodes.iter().map(|n| n.id).collect();
    let live = live_ids(st);
    let want = ids[(hash(topic) + partition.max(0) as usize) % ids.len()];
    let leader = if live.contains(&want) {
        want
    } else {
        next_live(&live, want).unwrap_or(want)
    };
    let p = Placement { leader, bump: 0 };
    st.placements.insert((topic.to_owned(), partition), p);
    p
}

fn coordinator_of(st: &mut State, key: &str) -> i32 {
    if let Some(&c) = st.coordinators.get(key) {
        return c;
    }
    let ids: Vec<i32> = st.nodes.iter().map(|n| n.id).collect();
    let live = live_ids(st);
    let want = ids[hash(key) % ids.len()];
    let c = if live.contains(&want) {
        want
    } else {
        next_live(&live, want).unwrap_or(want)
    };
    st.coordinators.insert(key.to_owned(), c);
    c
}
