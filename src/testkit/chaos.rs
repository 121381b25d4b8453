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
//!   real broker skips its check) in forwarded `Fetch` and `ListOffsets`.
//!
//! What it never does: split a request over nodes, change records, or keep
//! state the real broker does not have (all fake nodes share the real
//! broker's log, so a "moved" leader has the same data; truncation is not
//! simulated).

use std::collections::HashMap;
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::protocol::messages::{
    fetch_response, list_offsets_response, offset_commit_response, offset_fetch_response,
    produce_response, DescribeClusterRequest, FetchRequest, FetchResponse, FindCoordinatorRequest,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListOffsetsRequest, ListOffsetsResponse, MetadataRequest,
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
    ProduceRequest, ProduceResponse, SyncGroupRequest, SyncGroupResponse,
};
use crate::protocol::{
    read_frame, ApiKey, Decoder, ErrorCode, Message, Request, RequestHeader, ResponseHeader, Uuid,
    DEFAULT_MAX_FRAME_BYTES,
};
use crate::Bytes;

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

fn spawn_accept(inner: &Arc<Inner>, node: i32, listener: TcpListener) -> JoinHandle<()> {
    let inner = Arc::clone(inner);
    std::thread::Builder::new()
        .name(format!("chaos-accept-{node}"))
        .spawn(move || {
            for client in listener.incoming() {
                let alive = {
                    let st = inner.state.lock();
                    st.nodes.iter().any(|n| n.id == node && n.alive)
                };
                if !alive || inner.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(upstream) =
                    TcpStream::connect_timeout(&inner.upstream, Duration::from_secs(5))
                else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = upstream.set_nodelay(true);
                let (Ok(c2), Ok(u2)) = (client.try_clone(), upstream.try_clone()) else {
                    continue;
                };
                let conn_id = {
                    let mut st = inner.state.lock();
                    st.next_conn += 1;
                    let id = st.next_conn;
                    match st.nodes.iter_mut().find(|n| n.id == node) {
                        Some(n) => {
                            n.conns.insert(id, (c2, u2));
                        }
                        None => continue,
                    }
                    id
                };
                inner.stats.connections.fetch_add(1, Ordering::Relaxed);
                let inner2 = Arc::clone(&inner);
                let spawned = std::thread::Builder::new()
                    .name(format!("chaos-conn-{node}"))
                    .spawn(move || serve(&inner2, node, conn_id, client, upstream));
                if spawned.is_err() {
                    let mut st = inner.state.lock();
                    if let Some(n) = st.nodes.iter_mut().find(|n| n.id == node) {
                        if let Some((c, u)) = n.conns.remove(&conn_id) {
                            let _ = c.shutdown(Shutdown::Both);
                            let _ = u.shutdown(Shutdown::Both);
                        }
                    }
                }
            }
        })
        .unwrap_or_else(|_| std::thread::spawn(|| {}))
}

enum Outcome {
    Answer(Vec<u8>),
    NoAnswer,
    Close,
}

fn serve(inner: &Inner, node: i32, conn_id: u64, mut client: TcpStream, mut upstream: TcpStream) {
    while let Ok(frame) = read_frame(&mut client, DEFAULT_MAX_FRAME_BYTES) {
        let (alive, silent, delay) = {
            let st = inner.state.lock();
            st.nodes
                .iter()
                .find(|n| n.id == node)
                .map_or((false, false, 0), |n| (n.alive, n.silent, n.delay_ms))
        };
        if !alive {
            break;
        }
        if silent {
            continue;
        }
        let outcome =
            handle(inner, node, Bytes::from(frame), &mut upstream).unwrap_or(Outcome::Close);
        match outcome {
            Outcome::Answer(body) => {
                if delay > 0 {
                    std::thread::sleep(Duration::from_millis(delay));
                }
                let mut out = Vec::with_capacity(body.len() + 4);
                out.extend_from_slice(&(body.len() as i32).to_be_bytes());
                out.extend_from_slice(&body);
                if client.write_all(&out).is_err() {
                    break;
                }
            }
            Outcome::NoAnswer => {}
            Outcome::Close => break,
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = upstream.shutdown(Shutdown::Both);
    let mut st = inner.state.lock();
    if let Some(n) = st.nodes.iter_mut().find(|n| n.id == node) {
        n.conns.remove(&conn_id);
    }
}

fn roll(inner: &Inner) -> u32 {
    // xorshift64: a cheap, good-enough source for choosing cuts.
    let mut x = inner.rng.load(Ordering::Relaxed);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    inner.rng.store(x, Ordering::Relaxed);
    (x % 2000) as u32
}

fn forward(inner: &Inner, frame: &[u8], upstream: &mut TcpStream) -> Result<Bytes> {
    let mut out = Vec::with_capacity(frame.len() + 4);
    out.extend_from_slice(&(frame.len() as i32).to_be_bytes());
    out.extend_from_slice(frame);
    upstream
        .write_all(&out)
        .map_err(|e| Error::io("forwarding to the real broker", e))?;
    inner.stats.forwarded.fetch_add(1, Ordering::Relaxed);
    Ok(Bytes::from(read_frame(upstream, DEFAULT_MAX_FRAME_BYTES)?))
}

fn decode_request<R: Request>(frame: &Bytes, version: i16) -> Result<(RequestHeader, R)> {
    let mut d = Decoder::new(frame);
    let h = RequestHeader::decode(&mut d, R::request_header_version(version))?;
    let r = R::decode(&mut d, version)?;
    Ok((h, r))
}

fn decode_response<R: Request>(
    answer: &Bytes,
    version: i16,
) -> Result<(ResponseHeader, R::Response)> {
    let mut d = Decoder::new(answer);
    let h = ResponseHeader::decode(&mut d, R::response_header_version(version))?;
    let r = <R::Response as Message>::decode(&mut d, version)?;
    Ok((h, r))
}

fn encode_response<R: Request>(
    header: &ResponseHeader,
    body: &R::Response,
    version: i16,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    header.encode(&mut out, R::response_header_version(version))?;
    body.encode(&mut out, version)?;
    Ok(out)
}

fn encode_request_frame<R: Request>(
    header: &RequestHeader,
    body: &R,
    version: i16,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    header.encode(&mut out, R::request_header_version(version))?;
    body.encode(&mut out, version)?;
    Ok(out)
}

fn handle(inner: &Inner, node: i32, frame: Bytes, upstream: &mut TcpStream) -> Result<Outcome> {
    if frame.len() < 8 {
        return Ok(Outcome::Close);
    }
    let s = frame.as_slice();
    let api = ApiKey(i16::from_be_bytes([s[0], s[1]]));
    let version = i16::from_be_bytes([s[2], s[3]]);
    let correlation_id = i32::from_be_bytes([s[4], s[5], s[6], s[7]]);
    let header = ResponseHeader {
        correlation_id,
        ..ResponseHeader::default()
    };

    let cut = inner.cut_per_mille.load(Ordering::Relaxed);
    let mut cut_after = false;
    if cut > 0 {
        let r = roll(inner);
        if r < cut {
            inner.stats.cut.fetch_add(1, Ordering::Relaxed);
            return Ok(Outcome::Close);
        } else if r < 2 * cut {
            cut_after = true;
        }
    }

    let injected = {
        let mut st = inner.state.lock();
        match st.injections.get_mut(&api.0) {
            Some((code, left)) if *left > 0 => {
                *left -= 1;
                Some(*code)
            }
            _ => None,
        }
    };

    let answer = match api {
        ApiKey::METADATA => {
            let raw = forward(inner, frame.as_slice(), upstream)?;
            rewrite_metadata(inner, node, &raw, version).unwrap_or_else(|_| raw.to_vec())
        }
        ApiKey::FIND_COORDINATOR => {
            let keys = match decode_request::<FindCoordinatorRequest>(&frame, version) {
                Ok((_, r)) if version >= 4 => r.coordinator_keys,
                Ok((_, r)) => vec![r.key],
                Err(_) => Vec::new(),
            };
            let raw = forward(inner, frame.as_slice(), upstream)?;
            rewrite_coordinator(inner, &raw, version, &keys).unwrap_or_else(|_| raw.to_vec())
        }
        ApiKey::DESCRIBE_CLUSTER => {
            let raw = forward(inner, frame.as_slice(), upstream)?;
            rewrite_cluster(inner, &raw, version).unwrap_or_else(|_| raw.to_vec())
        }
        ApiKey::PRODUCE => match decode_request::<ProduceRequest>(&frame, version) {
            Ok((_, req)) => {
                let wrong = {
                    let mut st = inner.state.lock();
                    req.topic_data.iter().any(|t| {
                        t.partition_data
                            .iter()
                            .any(|p| place(&mut st, &t.name, p.index).leader != node)
                    })
                };
                match refusal(inner, wrong, injected, ErrorCode::NOT_LEADER_OR_FOLLOWER) {
                    Some(code) => encode_response::<ProduceRequest>(
                        &header,
                        &produce_error(&req, code),
                        version,
                    )?,
                    None if req.acks == 0 => {
                        forward_no_answer(inner, frame.as_slice(), upstream)?;
                        return Ok(Outcome::NoAnswer);
                    }
                    None => forward(inner, frame.as_slice(), upstream)?.to_vec(),
                }
            }
            Err(_) => forward(inner, frame.as_slice(), upstream)?.to_vec(),
        },
        ApiKey::FETCH => match decode_request::<FetchRequest>(&frame, version) {
            Ok((h, mut req)) => {
                let wrong = {
                    let mut st = inner.state.lock();
                    let st = &mut *st;
                    req.topics.iter().any(|t| {
                        let name = topic_name(&st.topic_names, &t.topic, t.topic_id);
                        name.is_some_and(|name| {
                            t.partitions
                                .iter()
                                .any(|p| place(st, &name, p.partition).leader != node)
                        })
                    })
                };
                match refusal(inner, wrong, injected, ErrorCode::NOT_LEADER_OR_FOLLOWER) {
                    Some(code) => {
                        encode_response::<FetchRequest>(&header, &fetch_error(&req, code), version)?
                    }
                    None => {
                        let mut fake_epochs = false;
                        for p in req.topics.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
                            if p.current_leader_epoch != -1 {
                                p.current_leader_epoch = -1;
                                fake_epochs = true;
                            }
                        }
                        if fake_epochs {
                            let f = encode_request_frame(&h, &req, version)?;
                            forward(inner, &f, upstream)?.to_vec()
                        } else {
                            forward(inner, frame.as_slice(), upstream)?.to_vec()
                        }
                    }
                }
            }
            Err(_) => forward(inner, frame.as_slice(), upstream)?.to_vec(),
        },
        ApiKey::LIST_OFFSETS => match decode_request::<ListOffsetsRequest>(&frame, version) {
            Ok((h, mut req)) => {
                let wrong = {
                    let mut st = inner.state.lock();
                    req.topics.iter().any(|t| {
                        t.partitions
                            .iter()
                            .any(|p| place(&mut st, &t.name, p.partition_index).leader != node)
                    })
                };
                match refusal(inner, wrong, injected, ErrorCode::NOT_LEADER_OR_FOLLOWER) {
                    Some(code) => encode_response::<ListOffsetsRequest>(
                        &header,
                        &list_offsets_error(&req, code),
                        version,
                    )?,
                    None => {
                        let mut fake_epochs = false;
                        for p in req.topics.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
                            if p.current_leader_epoch != -1 {
                                p.current_leader_epoch = -1;
                                fake_epochs = true;
                            }
                        }
                        if fake_epochs {
                            let f = encode_request_frame(&h, &req, version)?;
                            forward(inner, &f, upstream)?.to_vec()
                        } else {
                            forward(inner, frame.as_slice(), upstream)?.to_vec()
                        }
                    }
                }
            }
            Err(_) => forward(inner, frame.as_slice(), upstream)?.to_vec(),
        },
        ApiKey::JOIN_GROUP
        | ApiKey::SYNC_GROUP
        | ApiKey::HEARTBEAT
        | ApiKey::LEAVE_GROUP
        | ApiKey::OFFSET_COMMIT
        | ApiKey::OFFSET_FETCH => {
            match group_refusal(inner, node, api, &frame, version, &header, injected) {
                Some(Ok(answer)) => answer,
                Some(Err(e)) => return Err(e),
                None => forward(inner, frame.as_slice(), upstream)?.to_vec(),
            }
        }
        _ => forward(inner, frame.as_slice(), upstream)?.to_vec(),
    };
    if cut_after {
        inner.stats.cut.fetch_add(1, Ordering::Relaxed);
        return Ok(Outcome::Close);
    }
    Ok(Outcome::Answer(answer))
}

fn forward_no_answer(inner: &Inner, frame: &[u8], upstream: &mut TcpStream) -> Result<()> {
    let mut out = Vec::with_capacity(frame.len() + 4);
    out.extend_from_slice(&(frame.len() as i32).to_be_bytes());
    out.extend_from_slice(frame);
    upstream
        .write_all(&out)
        .map_err(|e| Error::io("forwarding to the real broker", e))?;
    inner.stats.forwarded.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// The error code to answer with instead of forwarding, if any: an
/// injected one wins over the wrong-node one.
fn refusal(
    inner: &Inner,
    wrong: bool,
    injected: Option<i16>,
    wrong_code: ErrorCode,
) -> Option<i16> {
    if let Some(code) = injected {
        inner.stats.injected.fetch_add(1, Ordering::Relaxed);
        return Some(code);
    }
    if wrong {
        inner.stats.wrong_node.fetch_add(1, Ordering::Relaxed);
        return Some(wrong_code.0);
    }
    None
}

fn topic_name(names: &HashMap<Uuid, String>, topic: &str, id: Uuid) -> Option<String> {
    if !topic.is_empty() {
        return Some(topic.to_owned());
    }
    names.get(&id).cloned()
}

/// `Some(answer)` when a group request must not reach the real broker.
fn group_refusal(
    inner: &Inner,
    node: i32,
    api: ApiKey,
    frame: &Bytes,
    version: i16,
    header: &ResponseHeader,
    injected: Option<i16>,
) -> Option<Result<Vec<u8>>> {
    let group = match api {
        ApiKey::JOIN_GROUP => {
            decode_request::<JoinGroupRequest>(frame, version)
                .ok()?
                .1
                .group_id
        }
        ApiKey::SYNC_GROUP => {
            decode_request::<SyncGroupRequest>(frame, version)
                .ok()?
                .1
                .group_id
        }
        ApiKey::HEARTBEAT => {
            decode_request::<HeartbeatRequest>(frame, version)
                .ok()?
                .1
                .group_id
        }
        ApiKey::LEAVE_GROUP => {
            decode_request::<LeaveGroupRequest>(frame, version)
                .ok()?
                .1
                .group_id
        }
        ApiKey::OFFSET_COMMIT => {
            decode_request::<OffsetCommitRequest>(frame, version)
                .ok()?
                .1
                .group_id
        }
        _ => {
            let r = decode_request::<OffsetFetchRequest>(frame, version).ok()?.1;
            if version >= 8 {
                r.groups.first()?.group_id.clone()
            } else {
                r.group_id
            }
        }
    };
    let wrong = {
        let mut st = inner.state.lock();
        coordinator_of(&mut st, &group) != node
    };
    let code = refusal(inner, wrong, injected, ErrorCode::NOT_COORDINATOR)?;
    Some(group_error(api, frame, version, header, code))
}

fn group_error(
    api: ApiKey,
    frame: &Bytes,
    version: i16,
    header: &ResponseHeader,
    code: i16,
) -> Result<Vec<u8>> {
    match api {
        ApiKey::JOIN_GROUP => encode_response::<JoinGroupRequest>(
            header,
            &JoinGroupResponse {
                error_code: code,
                generation_id: -1,
                ..Default::default()
            },
            version,
        ),
        ApiKey::SYNC_GROUP => encode_response::<SyncGroupRequest>(
            header,
            &SyncGroupResponse {
                error_code: code,
                ..Default::default()
            },
            version,
        ),
        ApiKey::HEARTBEAT => encode_response::<HeartbeatRequest>(
            header,
            &HeartbeatResponse {
                error_code: code,
                ..Default::default()
            },
            version,
        ),
        ApiKey::LEAVE_GROUP => encode_response::<LeaveGroupRequest>(
            header,
            &LeaveGroupResponse {
                error_code: code,
                ..Default::default()
            },
            version,
        ),
        ApiKey::OFFSET_COMMIT => {
            let (_, req) = decode_request::<OffsetCommitRequest>(frame, version)?;
            let resp = OffsetCommitResponse {
                topics: req
                    .topics
                    .iter()
                    .map(|t| offset_commit_response::OffsetCommitResponseTopic {
                        name: t.name.clone(),
                        partitions: t
                            .partitions
                            .iter()
                            .map(|p| offset_commit_response::OffsetCommitResponsePartition {
                                partition_index: p.partition_index,
                                error_code: code,
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            };
            encode_response::<OffsetCommitRequest>(header, &resp, version)
        }
        _ => {
            let (_, req) = decode_request::<OffsetFetchRequest>(frame, version)?;
            let resp = OffsetFetchResponse {
                error_code: code,
                groups: req
                    .groups
                    .iter()
                    .map(|g| offset_fetch_response::OffsetFetchResponseGroup {
                        group_id: g.group_id.clone(),
                        error_code: code,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            };
            encode_response::<OffsetFetchRequest>(header, &resp, version)
        }
    }
}

fn produce_error(req: &ProduceRequest, code: i16) -> ProduceResponse {
    ProduceResponse {
        responses: req
            .topic_data
            .iter()
            .map(|t| produce_response::TopicProduceResponse {
                name: t.name.clone(),
                partition_responses: t
                    .partition_data
                    .iter()
                    .map(|p| produce_response::PartitionProduceResponse {
                        index: p.index,
                        error_code: code,
                        base_offset: -1,
                        log_append_time_ms: -1,
                        log_start_offset: -1,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn fetch_error(req: &FetchRequest, code: i16) -> FetchResponse {
    FetchResponse {
        session_id: req.session_id,
        responses: req
            .topics
            .iter()
            .map(|t| fetch_response::FetchableTopicResponse {
                topic: t.topic.clone(),
                topic_id: t.topic_id,
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| fetch_response::PartitionData {
                        partition_index: p.partition,
                        error_code: code,
                        high_watermark: -1,
                        last_stable_offset: -1,
                        log_start_offset: -1,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn list_offsets_error(req: &ListOffsetsRequest, code: i16) -> ListOffsetsResponse {
    ListOffsetsResponse {
        topics: req
            .topics
            .iter()
            .map(|t| list_offsets_response::ListOffsetsTopicResponse {
                name: t.name.clone(),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| list_offsets_response::ListOffsetsPartitionResponse {
                        partition_index: p.partition_index,
                        error_code: code,
                        timestamp: -1,
                        offset: -1,
                        leader_epoch: -1,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn rewrite_metadata(inner: &Inner, _node: i32, raw: &Bytes, version: i16) -> Result<Vec<u8>> {
    let (h, mut resp) = decode_response::<MetadataRequest>(raw, version)?;
    let mut st = inner.state.lock();
    let live = live_ids(&st);
    resp.brokers = st
        .nodes
        .iter()
        .filter(|n| n.alive)
        .map(
            |n| crate::protocol::messages::metadata_response::MetadataResponseBroker {
                node_id: n.id,
                host: "127.0.0.1".into(),
                port: i32::from(n.port),
                ..Default::default()
            },
        )
        .collect();
    resp.controller_id = live.first().copied().unwrap_or(-1);
    for t in &mut resp.topics {
        let Some(name) = t.name.clone() else { continue };
        if !t.topic_id.is_zero() {
            st.topic_names.insert(t.topic_id, name.clone());
        }
        for p in &mut t.partitions {
            if p.error_code != 0 || p.leader_id < 0 {
                continue;
            }
            let pl = place(&mut st, &name, p.partition_index);
            p.leader_id = pl.leader;
            p.leader_epoch = p.leader_epoch.max(0) + pl.bump;
            p.replica_nodes = live.clone();
            p.isr_nodes = live.clone();
            p.offline_replicas = Vec::new();
        }
    }
    drop(st);
    inner.stats.rewritten.fetch_add(1, Ordering::Relaxed);
    encode_response::<MetadataRequest>(&h, &resp, version)
}

fn rewrite_coordinator(
    inner: &Inner,
    raw: &Bytes,
    version: i16,
    keys: &[String],
) -> Result<Vec<u8>> {
    let (h, mut resp) = decode_response::<FindCoordinatorRequest>(raw, version)?;
    let mut st = inner.state.lock();
    let port_of = |st: &State, id: i32| {
        st.nodes
            .iter()
            .find(|n| n.id == id)
            .map_or(0, |n| i32::from(n.port))
    };
    if version >= 4 {
        for c in &mut resp.coordinators {
            if c.error_code == 0 {
                c.node_id = coordinator_of(&mut st, &c.key);
                c.port = port_of(&st, c.node_id);
                c.host = "127.0.0.1".into();
            }
        }
    } else if resp.error_code == 0 {
        if let Some(key) = keys.first() {
            resp.node_id = coordinator_of(&mut st, key);
            resp.port = port_of(&st, resp.node_id);
            resp.host = "127.0.0.1".into();
        }
    }
    drop(st);
    inner.stats.rewritten.fetch_add(1, Ordering::Relaxed);
    encode_response::<FindCoordinatorRequest>(&h, &resp, version)
}

fn rewrite_cluster(inner: &Inner, raw: &Bytes, version: i16) -> Result<Vec<u8>> {
    let (h, mut resp) = decode_response::<DescribeClusterRequest>(raw, version)?;
    let st = inner.state.lock();
    resp.brokers = st
        .nodes
        .iter()
        .filter(|n| n.alive)
        .map(
            |n| crate::protocol::messages::describe_cluster_response::DescribeClusterBroker {
                broker_id: n.id,
                host: "127.0.0.1".into(),
                port: i32::from(n.port),
                ..Default::default()
            },
        )
        .collect();
    resp.controller_id = live_ids(&st).first().copied().unwrap_or(-1);
    drop(st);
    inner.stats.rewritten.fetch_add(1, Ordering::Relaxed);
    encode_response::<DescribeClusterRequest>(&h, &resp, version)
}
