//! Who leads what: the metadata snapshot, its refresh, and the pool of
//! broker connections (one per broker and purpose).
//!
//! The snapshot is an `Arc<ClusterMetadata>` swapped under a lock, so readers
//! never wait for a refresh. Connections are keyed by `(node id, purpose)`:
//! a consumer's long-poll fetch never sits in front of its heartbeat, and a
//! producer's pipelined produce requests never delay a metadata refresh.

mod metadata;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

pub use metadata::{BrokerInfo, ClusterMetadata, PartitionMetadata, TopicMetadata};

use crate::config::{BrokerAddress, ClientConfig};
use crate::error::{Error, ErrorKind, Result};
use crate::net::{Connection, ConnectionOptions, Transport};
use crate::protocol::messages::metadata_request::MetadataRequestTopic;
use crate::protocol::messages::MetadataRequest;
use crate::protocol::ErrorCode;

/// What a connection is for; each purpose gets its own connection per broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Purpose {
    /// Metadata, admin and other short requests.
    General,
    /// Produce requests (pipelined).
    Produce,
    /// Fetch requests (long polls).
    Fetch,
    /// Group coordination: join, sync, heartbeat, commits.
    Group,
}

impl Purpose {
    fn tag(self) -> &'static str {
        match self {
            Purpose::General => "gen",
            Purpose::Produce => "prod",
            Purpose::Fetch => "fetch",
            Purpose::Group => "group",
        }
    }
}

/// A place to send a request any broker can answer.
enum Candidate {
    Open(Connection),
    Broker(i32),
    Bootstrap(usize),
}

/// Which topics a refresh asks for.
#[derive(Debug, Clone)]
pub(crate) enum TopicSelection {
    /// Every topic in the cluster.
    All,
    /// The topics this client has shown interest in (possibly none).
    Interest,
}

struct RefreshState {
    interest: BTreeSet<String>,
    want_all: bool,
    stale: bool,
    last_attempt: Option<Instant>,
}

/// The shared core of every client: config, metadata, connections.
pub(crate) struct Cluster {
    config: ClientConfig,
    transport: Arc<dyn Transport>,
    snapshot: RwLock<Arc<ClusterMetadata>>,
    /// Bumped each time the snapshot is replaced.
    snapshot_version: AtomicU64,
    pool: Mutex<HashMap<(i32, Purpose), Connection>>,
    bootstrap: Mutex<HashMap<usize, Connection>>,
    refresh: Mutex<RefreshState>,
    next_bootstrap: AtomicUsize,
    allow_auto_create: bool,
    name: String,
}

impl Cluster {
    /// A cluster client for `config`. No connection is opened yet.
    pub(crate) fn new(config: ClientConfig, allow_auto_create: bool) -> Arc<Cluster> {
        static INSTANCE: AtomicUsize = AtomicUsize::new(0);
        let n = INSTANCE.fetch_add(1, Ordering::Relaxed);
        Arc::new(Cluster {
            name: format!("{n}"),
            transport: config.transport(),
            snapshot: RwLock::new(Arc::new(ClusterMetadata::empty())),
            snapshot_version: AtomicU64::new(0),
            pool: Mutex::new(HashMap::new()),
            bootstrap: Mutex::new(HashMap::new()),
            refresh: Mutex::new(RefreshState {
                interest: BTreeSet::new(),
                want_all: false,
                stale: true,
                last_attempt: None,
            }),
            next_bootstrap: AtomicUsize::new(0),
            allow_auto_create,
            config,
        })
    }

    /// The client configuration.
    pub(crate) fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The current snapshot (no I/O).
    pub(crate) fn metadata(&self) -> Arc<ClusterMetadata> {
        Arc::clone(&self.snapshot.read())
    }

    /// Changes whenever the snapshot is replaced: a lock-free way to notice
    /// a refresh.
    pub(crate) fn metadata_version(&self) -> u64 {
        self.snapshot_version.load(Ordering::Acquire)
    }

    /// Adds topics to those every refresh asks for.
    pub(crate) fn add_interest<'a>(&self, topics: impl IntoIterator<Item = &'a str>) -> bool {
        let mut st = self.refresh.lock();
        let mut added = false;
        for t in topics {
            if !st.interest.contains(t) {
                st.interest.insert(t.to_owned());
                added = true;
            }
        }
        if added {
            st.stale = true;
        }
        added
    }

    /// Makes every refresh ask for all topics (pattern subscriptions).
    pub(crate) fn want_all_topics(&self, on: bool) {
        let mut st = self.refresh.lock();
        st.want_all = on;
        st.stale = true;
    }

    /// Marks the snapshot stale (after NOT_LEADER and friends); the next
    /// [`maybe_refresh`](Cluster::maybe_refresh) refreshes it.
    pub(crate) fn request_update(&self) {
        self.refresh.lock().stale = true;
    }

    /// Refreshes when the snapshot is stale or older than
    /// `metadata_max_age_ms`, but not more often than `retry_backoff_ms`.
    /// Errors are returned but leave the old snapshot in place.
    pub(crate) fn maybe_refresh(&self) -> Result<()> {
        let now = Instant::now();
        {
            let st = self.refresh.lock();
            let snap = self.snapshot.read();
            let too_old = snap.refreshed_at.map_or(true, |t| {
                now.duration_since(t) >= self.config.metadata_max_age
            });
            if !st.stale && !too_old {
                return Ok(());
            }
            if st
                .last_attempt
                .is_some_and(|t| now.duration_since(t) < self.config.retry_backoff)
            {
                return Ok(());
            }
        }
        self.refresh(TopicSelection::Interest).map(|_| ())
    }

    /// Fetches metadata now.
    pub(crate) fn refresh(&self, selection: TopicSelection) -> Result<Arc<ClusterMetadata>> {
        let (topics, all) = {
            let mut st = self.refresh.lock();
            st.last_attempt = Some(Instant::now());
            match selection {
                TopicSelection::All => (None, true),
                TopicSelection::Interest if st.want_all => (None, true),
                TopicSelection::Interest => (
                    Some(
                        st.interest
                            .iter()
                            .map(|t| MetadataRequestTopic {
                                name: Some(t.clone()),
                                ..Default::default()
                            })
                            .collect::<Vec<_>>(),
                    ),
                    false,
                ),
            }
        };
        let request = MetadataRequest {
            topics,
            allow_auto_topic_creation: self.allow_auto_create,
            ..Default::default()
        };
        // A broker that hangs up mid-request (restarting, or failing on one
        // topic of an all-topics listing) is tried again a few times.
        let mut attempt = 0;
        let response = loop {
            match self.send_any(&request) {
                Ok(r) => break r,
                // Only a dropped connection: an unreachable cluster (refused,
                // timed out) fails at once, so callers keep their deadlines.
                Err(e) if e.kind() == ErrorKind::Disconnected && attempt < 2 => {
                    attempt += 1;
                    log::debug!("metadata refresh failed ({e}); retrying");
                    std::thread::sleep(self.config.retry_backoff.max(Duration::from_millis(10)));
                }
                Err(e) => return Err(e),
            }
        };
        let new = {
            let mut snap = self.snapshot.write();
            let merged = Arc::new(snap.merge(&response, all));
            *snap = Arc::clone(&merged);
            self.snapshot_version.fetch_add(1, Ordering::AcqRel);
            merged
        };
        self.refresh.lock().stale = false;
        self.prune_connections(&new);
        // Bootstrap connections were for discovery only; the brokers are
        // known now (they are opened again if every broker is lost).
        if !new.brokers.is_empty() {
            for (_, c) in self.bootstrap.lock().drain() {
                c.close();
            }
        }
        log::debug!(
            "metadata: {} brokers, {} topics, controller {:?}",
            new.brokers.len(),
            new.topics.len(),
            new.controller_id
        );
        Ok(new)
    }

    /// Waits (refreshing) until `topic` has metadata with a leader for every
    /// partition, or `timeout` passes.
    pub(crate) fn wait_for_topic(&self, topic: &str, timeout: Duration) -> Result<TopicMetadata> {
        self.add_interest([topic]);
        let deadline = Instant::now() + timeout;
        let mut last_err: Option<Error> = None;
        loop {
            let snap = self.metadata();
            if let Some(t) = snap.topic(topic) {
                if t.error.is_ok() && !t.partitions.is_empty() {
                    return Ok(t.clone());
                }
                if t.error.is_err() && !t.error.is_retriable() {
                    return Err(
                        Error::broker(t.error, "looking up topic metadata").with_topic(topic)
                    );
                }
            }
            let now = Instant::now();
            if now >= deadline {
                let why = match (&last_err, snap.topic(topic)) {
                    (_, Some(t)) if t.error.is_err() => format!(" (last answer: {})", t.error),
                    (Some(e), _) => format!(" (last error: {e})"),
                    _ => String::new(),
                };
                return Err(Error::timeout(format!(
                    "topic `{topic}` was not found in the cluster metadata within {} ms{why}; check the name, or create the topic",
                    timeout.as_millis()
                ))
                .with_topic(topic));
            }
            match self.refresh(TopicSelection::Interest) {
                Ok(snap)
                    if snap
                        .topic(topic)
                        .is_some_and(|t| t.error.is_ok() && !t.partitions.is_empty()) =>
                {
                    continue
                }
                Ok(_) => {}
                // A refused login, a TLS failure or a missing ACL repeats
                // itself: report it now rather than retrying until the deadline.
                Err(e) if e.repeats_on_reconnect() || e.is_authorization() => return Err(e),
                Err(e) => last_err = Some(e),
            }
            let pause = self
                .config
                .retry_backoff
                .max(Duration::from_millis(10))
                .min(deadline.saturating_duration_since(Instant::now()));
            std::thread::sleep(pause);
        }
    }

    /// The connection to broker `id` for `purpose`.
    pub(crate) fn connection(&self, id: i32, purpose: Purpose) -> Result<Connection> {
        if let Some(c) = self.open_connection(id, purpose) {
            return Ok(c);
        }
        let addr = {
            let snap = self.snapshot.read();
            let b = snap.broker(id).ok_or_else(|| {
                // Retriable: brokers come and go; a metadata refresh tells
                // where the work moved.
                Error::new(
                    ErrorKind::Disconnected,
                    format!(
                        "broker {id} is not in the cluster metadata (it may have left the cluster)"
                    ),
                )
            })?;
            let port = u16::try_from(b.port)
                .map_err(|_| Error::protocol(format!("broker {id} advertises port {}", b.port)))?;
            BrokerAddress::new(b.host.clone(), port)
        };
        let mut pool = self.pool.lock();
        if let Some(c) = pool.get(&(id, purpose)) {
            return Ok(c.clone());
        }
        let conn = Connection::spawn(
            ConnectionOptions::from_config(&self.config, addr, Arc::clone(&self.transport)),
            format!("{}-{}-{}", self.name, id, purpose.tag()),
        )?;
        pool.insert((id, purpose), conn.clone());
        Ok(conn)
    }

    /// The connection to broker `id` for `purpose` if the pool has one
    /// (none is created): for threads that must not start connections.
    pub(crate) fn open_connection(&self, id: i32, purpose: Purpose) -> Option<Connection> {
        self.pool.lock().get(&(id, purpose)).cloned()
    }

    /// Closes connections to brokers that left the cluster or moved.
    fn prune_connections(&self, snap: &ClusterMetadata) {
        let mut pool = self.pool.lock();
        pool.retain(|(id, _), conn| {
            let keep = snap.broker(*id).is_some_and(|b| {
                b.host == conn.addr().host && i32::from(conn.addr().port) == b.port
            });
            if !keep {
                conn.close();
            }
            keep
        });
    }

    /// Where to try a request any broker can answer, best first: open
    /// general-purpose connections, then known brokers (their connections
    /// are created only when reached), then the bootstrap list.
    fn candidates(&self) -> Vec<Candidate> {
        let mut out = Vec::new();
        let mut open = Vec::new();
        for ((id, purpose), c) in self.pool.lock().iter() {
            if *purpose == Purpose::General && c.is_connected() {
                out.push(Candidate::Open(c.clone()));
                open.push(*id);
            }
        }
        let known: Vec<i32> = self.snapshot.read().brokers.keys().copied().collect();
        let start = self.next_bootstrap.fetch_add(1, Ordering::Relaxed);
        // Spread first contacts over the brokers rather than always the lowest id.
        for i in 0..known.len() {
            let id = known[(start + i) % known.len()];
            if !open.contains(&id) {
                out.push(Candidate::Broker(id));
            }
        }
        let boot = self.config.bootstrap_servers.len();
        for i in 0..boot {
            out.push(Candidate::Bootstrap((start + i) % boot));
        }
        out
    }

    fn bootstrap_connection(&self, i: usize) -> Result<Connection> {
        let mut boot = self.bootstrap.lock();
        if let Some(c) = boot.get(&i) {
            return Ok(c.clone());
        }
        let addr = self
            .config
            .bootstrap_servers
            .get(i)
            .cloned()
            .ok_or_else(|| Error::invalid_argument("no such bootstrap server"))?;
        let c = Connection::spawn(
            ConnectionOptions::from_config(&self.config, addr, Arc::clone(&self.transport)),
            format!("{}-boot{i}", self.name),
        )?;
        boot.insert(i, c.clone());
        Ok(c)
    }

    /// Sends a request any broker can answer, trying brokers in turn until
    /// one answers or all have failed.
    pub(crate) fn send_any<R: crate::protocol::Request>(&self, request: &R) -> Result<R::Response> {
        let mut last: Option<Error> = None;
        for candidate in self.candidates() {
            let conn = match candidate {
                Candidate::Open(c) => c,
                Candidate::Broker(id) => match self.connection(id, Purpose::General) {
                    Ok(c) => c,
                    Err(e) => {
                        last = Some(e);
                        continue;
                    }
                },
                Candidate::Bootstrap(i) => match self.bootstrap_connection(i) {
                    Ok(c) => c,
                    Err(e) => {
                        last = Some(e);
                        continue;
                    }
                },
            };
            match conn.send(request) {
                Ok(r) => return Ok(r),
                Err(e) if e.is_retriable() || e.kind() == ErrorKind::Closed => {
                    log::debug!("{} to {} failed: {e}", R::API_KEY, conn.addr());
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last
            .unwrap_or_else(|| Error::new(ErrorKind::Io, "no broker to send to"))
            .context(format_args!(
                "no broker answered {} (bootstrap_servers: {})",
                R::API_KEY,
                self.config
                    .bootstrap_servers
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            )))
    }

    /// Sends to broker `id` on its general-purpose connection.
    pub(crate) fn send_to<R: crate::protocol::Request>(
        &self,
        id: i32,
        request: &R,
    ) -> Result<R::Response> {
        self.ensure_broker_known(id)?;
        self.connection(id, Purpose::General)?.send(request)
    }

    /// Makes sure broker `id` is in the snapshot, refreshing once if not.
    pub(crate) fn ensure_broker_known(&self, id: i32) -> Result<()> {
        if self.snapshot.read().broker(id).is_some() {
            return Ok(());
        }
        self.refresh(TopicSelection::Interest)?;
        if self.snapshot.read().broker(id).is_some() {
            Ok(())
        } else {
            Err(Error::invalid_argument(format!(
                "broker {id} is not part of the cluster"
            )))
        }
    }

    /// Closes every connection.
    pub(crate) fn close(&self) {
        for (_, c) in self.pool.lock().drain() {
            c.close();
        }
        for (_, c) in self.bootstrap.lock().drain() {
            c.close();
        }
    }

    /// Checks an error code in a per-partition answer and marks metadata
    /// stale when it says the leader moved.
    pub(crate) fn note_error(&self, code: ErrorCode) {
        if code.is_stale_metadata() {
            self.request_update();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.close();
    }
}
