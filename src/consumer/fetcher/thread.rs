//! The fetch thread itself: per broker, a fetch session and at most one
//! request in flight; sends a Fetch to every idle leader (or preferred
//! replica) with something to fetch. Each answer is turned into
//! [`PartitionData`] for the consumer, moving the fetch positions on, by
//! [`Core::fetch_done`] on the connection's reader thread, which then
//! sends that broker its next request itself ([`Core::send_next`]: it
//! only puts it on the connection writer's channel) when that is all
//! there is to do, and otherwise wakes the fetch thread. The fetch thread
//! keeps the rest: connecting, back-offs, metadata, partitions that move.
//!
//! Everything the threads share is under the one state lock, and every
//! chunk is sent to the consumer while holding it: so a partition's error
//! (KIP-320) never overtakes its data, whichever thread sends which. A
//! request is registered in flight under the lock before it is submitted;
//! a broker the fetch thread is about to send to is claimed meanwhile, so
//! no broker ever has two requests in flight.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, Sender};

use super::request::{build_request, partial_is_too_large, scan_next_offset, Scan};
use super::{FetchSettings, FetchState, FetchedChunk, PartitionData, Shared, MAX_QUEUED};
use crate::bytes::Bytes;
use crate::cluster::{Cluster, ClusterMetadata, Purpose};
use crate::consumer::fetch_session::{SentPart, Session, Want};
use crate::consumer::metrics::Metrics;
use crate::error::{Error, Result};
use crate::net::{decode_response, Completion, Connection, Reply};
use crate::partition::TopicPartition;
use crate::protocol::messages::FetchRequest;
use crate::protocol::{ErrorCode, Uuid};

#[derive(Default)]
pub(super) struct BrokerState {
    session: Session,
    in_flight: Option<InFlight>,
    connecting: Option<u64>,
    /// The fetch thread collected this broker's wants and is getting its
    /// connection: nobody else sends it a request meanwhile.
    claimed: bool,
    retry_at: Option<Instant>,
    /// Rotates where each request starts, so that a broker that fills its
    /// answer from the first partitions listed serves them all in turn.
    rotation: usize,
}

struct InFlight {
    token: u64,
    version: i16,
    full: bool,
    sent_at: Instant,
    /// Every partition of the request (listed or kept by the session):
    /// the offset and epoch it was fetched for, and whether the broker is a
    /// preferred read replica rather than the leader.
    parts: HashMap<TopicPartition, (i64, u64, bool)>,
    ids: HashMap<Uuid, Arc<str>>,
}

/// What the fetch thread, the answer handlers (on connection reader
/// threads) and the consumer taking a chunk use.
pub(super) struct Core {
    pub(super) shared: Arc<Shared>,
    pub(super) cluster: Arc<Cluster>,
    pub(super) settings: FetchSettings,
    pub(super) metrics: Arc<Metrics>,
    pub(super) data_tx: Sender<FetchedChunk>,
    /// Request and connection-attempt tokens, taken on any thread.
    pub(super) next_token: AtomicU64,
}

pub(super) struct FetchThread {
    pub(super) core: Arc<Core>,
    pub(super) wake_rx: Receiver<()>,
    /// Connection attempts' completions (fetch answers do not come here).
    pub(super) done_tx: Sender<Completion>,
    pub(super) done_rx: Receiver<Completion>,
    /// Connection attempts in progress: token → broker.
    pub(super) tokens: HashMap<u64, i32>,
}

struct WantWithId {
    want: Want,
    epoch: u64,
    /// Fetched from a preferred read replica, not the leader.
    follower: bool,
}

/// What one look at the fetch positions found (see [`Core::collect`]).
#[derive(Default)]
struct Wants {
    /// Per broker, the partitions to ask it for.
    by_broker: HashMap<i32, Vec<WantWithId>>,
    /// A partition's topic or leader is unknown.
    need_metadata: bool,
    /// The earliest back-off (of a partition or a broker) holding a fetch.
    next: Option<Instant>,
    /// Looking at one broker only: a partition of another broker could be
    /// fetched now.
    others: bool,
    /// A partition was stopped (new leader epoch, re-created topic) and its
    /// error queued for the consumer.
    moved: bool,
}

impl Wants {
    fn hold_until(&mut self, at: Instant) {
        self.next = Some(self.next.map_or(at, |n| n.min(at)));
    }

    /// Nothing but requests to send: no metadata, timer or other broker
    /// needs the fetch thread.
    fn only_requests(&self) -> bool {
        !(self.need_metadata || self.others || self.moved || self.next.is_some())
    }
}

impl FetchThread {
    pub(super) fn run(mut self) {
        loop {
            while let Ok(c) = self.done_rx.try_recv() {
                self.connected(c);
            }
            if self.core.shared.state.lock().closed {
                return;
            }
            self.ask_metadata();
            if let Err(e) = self.core.cluster.maybe_refresh() {
                log::debug!("fetcher: metadata refresh failed: {e}");
            }
            let now = Instant::now();
            let next = self.send_fetches(now);
            self.ask_metadata();
            let wait = next
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            select! {
                recv(self.done_rx) -> c => {
                    if let Ok(c) = c {
                        self.connected(c);
                    }
                }
                recv(self.wake_rx) -> _ => {
                    Metrics::add(&self.core.metrics.fetch_thread_wakeups, 1);
                }
                default(wait) => {}
            }
        }
    }

    /// Passes on a metadata refresh an answer asked for.
    fn ask_metadata(&self) {
        let need = std::mem::take(&mut self.core.shared.state.lock().need_metadata);
        if need {
            self.core.cluster.request_update();
        }
    }

    /// Sends a request to every idle leader with something to fetch;
    /// returns when to look again at the latest.
    fn send_fetches(&mut self, now: Instant) -> Instant {
        let snap = self.core.cluster.metadata();
        let wants = {
            let mut st = self.core.shared.state.lock();
            let wants = self.core.collect(&mut st, &snap, now, None);
            // Until its request is registered (or given up), no answer
            // handler sends this broker one too.
            for broker in wants.by_broker.keys() {
                st.brokers.entry(*broker).or_default().claimed = true;
            }
            wants
        };
        let mut next = now + Duration::from_millis(250);
        if let Some(at) = wants.next {
            next = next.min(at);
        }
        if wants.need_metadata {
            self.core.cluster.request_update();
            next = next.min(
                now + self
                    .core
                    .settings
                    .retry_backoff
                    .max(Duration::from_millis(10)),
            );
        }
        for (broker, wants) in wants.by_broker {
            self.send(broker, wants, now);
        }
        next
    }

    /// Gives up the claim on `broker` and backs it off.
    fn back_off(&self, broker: i32, now: Instant) {
        let mut st = self.core.shared.state.lock();
        unclaim(&mut st, broker);
        back_off(&mut st, broker, now + self.core.settings.retry_backoff);
    }

    /// Sends `wants` (claimed in [`send_fetches`](Self::send_fetches)) to
    /// `broker`, connecting first if need be.
    fn send(&mut self, broker: i32, wants: Vec<WantWithId>, now: Instant) {
        let conn = match self.core.cluster.connection(broker, Purpose::Fetch) {
            Ok(c) => c,
            Err(e) => {
                log::debug!("fetcher: no connection to broker {broker}: {e}");
                self.back_off(broker, now);
                return;
            }
        };
        let Some(versions) = conn.known_versions() else {
            let token = self.core.token();
            self.tokens.insert(token, broker);
            if conn
                .connect_async(Reply::new(self.done_tx.clone(), token))
                .is_err()
            {
                self.tokens.remove(&token);
                self.back_off(broker, now);
            } else {
                let mut st = self.core.shared.state.lock();
                unclaim(&mut st, broker);
                st.brokers.entry(broker).or_default().connecting = Some(token);
            }
            return;
        };
        let version = match versions.negotiate::<FetchRequest>() {
            Ok(v) => v,
            Err(e) => {
                let mut st = self.core.shared.state.lock();
                unclaim(&mut st, broker);
                self.core.fail_partitions(
                    &mut st,
                    broker,
                    wants,
                    ErrorCode::UNSUPPORTED_VERSION,
                    &e,
                );
                return;
            }
        };
        let (token, version, request) = {
            let mut st = self.core.shared.state.lock();
            self.core.register(&mut st, broker, version, wants, now)
        };
        self.core
            .submit(&conn, broker, token, version, &request, now);
    }

    /// A connection attempt ended.
    fn connected(&mut self, c: Completion) {
        let Some(broker) = self.tokens.remove(&c.token) else {
            return;
        };
        let mut st = self.core.shared.state.lock();
        st.brokers.entry(broker).or_default().connecting = None;
        if let Err(e) = c.result {
            log::debug!("fetcher: connecting to broker {broker} failed: {e}");
            note_auth_failure(&mut st, &e);
            back_off(
                &mut st,
                broker,
                Instant::now() + self.core.settings.retry_backoff,
            );
        }
    }
}

/// The fetch thread no longer holds `broker` for its request.
fn unclaim(st: &mut FetchState, broker: i32) {
    if let Some(b) = st.brokers.get_mut(&broker) {
        b.claimed = false;
    }
}

/// Whether `broker` may get a request now: none in flight, not connecting
/// or claimed, not backing off (else `w` notes until when), and none of its
/// answers waiting for the consumer beyond [`MAX_QUEUED`].
fn broker_ready(
    brokers: &mut HashMap<i32, BrokerState>,
    queued: &HashMap<i32, usize>,
    broker: i32,
    now: Instant,
    w: &mut Wants,
) -> bool {
    let b = brokers.entry(broker).or_default();
    if b.in_flight.is_some() || b.connecting.is_some() || b.claimed {
        return false;
    }
    if let Some(at) = b.retry_at {
        if at > now {
            w.hold_until(at);
            return false;
        }
    }
    queued.get(&broker).copied().unwrap_or(0) < MAX_QUEUED
}

impl Core {
    fn token(&self) -> u64 {
        self.next_token.fetch_add(1, Ordering::Relaxed)
    }

    /// Under the state lock: what to ask each idle broker for (only broker
    /// `only`'s partitions, when given). A partition whose metadata shows a
    /// new leader epoch or topic id is stopped here and its error queued
    /// for the consumer, under the lock.
    fn collect(
        &self,
        st: &mut FetchState,
        snap: &ClusterMetadata,
        now: Instant,
        only: Option<i32>,
    ) -> Wants {
        let mut w = Wants::default();
        let FetchState {
            parts,
            queued,
            brokers,
            ..
        } = st;
        let mut moved: Vec<(i32, PartitionData)> = Vec::new();
        for (tp, pos) in parts.iter_mut() {
            if pos.stopped || pos.in_flight.is_some() {
                continue;
            }
            if let Some(at) = pos.retry_at {
                if at > now {
                    w.hold_until(at);
                    continue;
                }
            }
            let Some(topic) = snap.topic(&tp.topic) else {
                w.need_metadata = true;
                continue;
            };
            let Some(pm) = topic.partition(tp.partition).filter(|p| p.leader >= 0) else {
                w.need_metadata = true;
                continue;
            };
            // KIP-392: the replica the leader pointed at, while that
            // advice is fresh and the broker is known.
            let target = match pos.preferred {
                Some((replica, until))
                    if until > now && replica != pm.leader && snap.broker(replica).is_some() =>
                {
                    replica
                }
                _ => pm.leader,
            };
            if only.is_some_and(|o| o != target) {
                // The fetch thread's business; left untouched.
                let mut ignored = Wants::default();
                w.others |= broker_ready(brokers, queued, target, now, &mut ignored);
                continue;
            }
            // The topic was deleted and created again (a new topic id):
            // the position belongs to the old incarnation; the consumer
            // resets it (or reports it), never fetches it from the new
            // one.
            let recreated = if topic.topic_id.is_zero() {
                false
            } else if pos.topic_id.is_zero() {
                pos.topic_id = topic.topic_id;
                false
            } else {
                pos.topic_id != topic.topic_id
            };
            // KIP-320: the metadata shows a new leader epoch; the
            // consumer validates its position before fetching on.
            let seen = pos.leader_epoch.replace(pm.leader_epoch);
            if recreated || seen.is_some_and(|e| pm.leader_epoch > e) {
                pos.stopped = true;
                moved.push((
                    pm.leader,
                    PartitionData {
                        tp: tp.clone(),
                        epoch: pos.epoch,
                        fetch_offset: pos.offset,
                        next_offset: pos.offset,
                        records: Bytes::new(),
                        error: if recreated {
                            ErrorCode::INCONSISTENT_TOPIC_ID
                        } else {
                            ErrorCode::FENCED_LEADER_EPOCH
                        },
                        high_watermark: -1,
                        aborted: Vec::new(),
                    },
                ));
                continue;
            }
            if !broker_ready(brokers, queued, target, now, &mut w) {
                continue;
            }
            w.by_broker.entry(target).or_default().push(WantWithId {
                want: Want {
                    tp: tp.clone(),
                    topic_id: topic.topic_id,
                    part: SentPart {
                        offset: pos.offset,
                        max_bytes: self.settings.partition_max_bytes,
                        leader_epoch: pm.leader_epoch,
                    },
                },
                epoch: pos.epoch,
                follower: target != pm.leader,
            });
        }
        // Sent under the lock: no answer handler can queue this
        // partition's data after its error (none is in flight anyway).
        w.moved = !moved.is_empty();
        for (broker, part) in moved {
            *queued.entry(broker).or_insert(0) += 1;
            let _ = self.data_tx.send(FetchedChunk {
                broker,
                parts: vec![part],
                counted: true,
            });
        }
        w
    }

    /// Under the state lock: the request for `wants` to `broker` (Fetch
    /// `version` at most), registered as in flight before it is submitted,
    /// since its answer is handled on the reader thread and may come at
    /// once. Returns its token, version and the request.
    fn register(
        &self,
        st: &mut FetchState,
        broker: i32,
        mut version: i16,
        mut wants: Vec<WantWithId>,
        now: Instant,
    ) -> (u64, i16, FetchRequest) {
        if wants.iter().any(|w| w.want.topic_id.is_zero()) {
            // Fetch v13+ names topics by id only.
            version = version.min(12);
        }
        wants.sort_by(|a, b| a.want.tp.cmp(&b.want.tp));
        let mut parts = HashMap::with_capacity(wants.len());
        let mut ids: HashMap<Uuid, Arc<str>> = HashMap::new();
        for w in &wants {
            parts.insert(w.want.tp.clone(), (w.want.part.offset, w.epoch, w.follower));
            if !w.want.topic_id.is_zero() {
                ids.insert(w.want.topic_id, Arc::clone(&w.want.tp.topic));
            }
        }
        let token = self.token();
        let b = st.brokers.entry(broker).or_default();
        b.claimed = false;
        let plan = b
            .session
            .plan(wants.into_iter().map(|w| w.want).collect(), version);
        let rotation = b.rotation;
        b.rotation = b.rotation.wrapping_add(1);
        let request = build_request(&self.settings, &plan, rotation);
        log::trace!(
            "fetcher: fetch v{version} to broker {broker}: {} partition(s), {} listed",
            parts.len(),
            plan.include.len()
        );
        for tp in parts.keys() {
            if let Some(p) = st.parts.get_mut(tp) {
                p.in_flight = Some(token);
            }
        }
        st.brokers.entry(broker).or_default().in_flight = Some(InFlight {
            token,
            version,
            full: plan.full,
            sent_at: now,
            parts,
            ids,
        });
        (token, version, request)
    }

    /// Puts a [registered](Self::register) request on `conn`'s writer
    /// channel; its answer runs [`fetch_done`](Self::fetch_done) on the
    /// connection's reader thread. Called with no lock held: a call
    /// refused at once is answered (with an error, by dropping it) on
    /// this thread.
    fn submit(
        self: &Arc<Self>,
        conn: &Connection,
        broker: i32,
        token: u64,
        version: i16,
        request: &FetchRequest,
        now: Instant,
    ) {
        let timeout = self.settings.request_timeout + self.settings.max_wait;
        let core = Arc::clone(self);
        let sent = conn.submit(
            request,
            Some(version),
            true,
            timeout,
            Reply::run(token, move |c| {
                core.fetch_done(broker, c.token, version, c.result)
            }),
        );
        if let Err(e) = sent {
            // The dropped reply has handled it already (cleared the
            // request, backed off); this only makes sure.
            log::debug!("fetcher: sending to broker {broker} failed: {e}");
            let mut st = self.shared.state.lock();
            if let Some(inf) = take_in_flight(&mut st, broker, token) {
                clear_in_flight(&mut st, &inf);
            }
            back_off(&mut st, broker, now + self.settings.retry_backoff);
        }
    }

    /// Sends `broker` its next request from this thread (the reader that
    /// has its answer, or the consumer taking one of its chunks) when that
    /// is all there is to do: its connection is open and its versions are
    /// known, no metadata is missing, no back-off is running and no other
    /// broker's partition waits. Returns `false` when the fetch thread must
    /// look instead. Never blocks; the lock is not held while submitting.
    pub(super) fn send_next(self: &Arc<Self>, broker: i32) -> bool {
        let Some(conn) = self.cluster.open_connection(broker, Purpose::Fetch) else {
            return false;
        };
        let Some(version) = conn
            .known_versions()
            .and_then(|v| v.negotiate::<FetchRequest>().ok())
        else {
            return false;
        };
        let snap = self.cluster.metadata();
        let now = Instant::now();
        let (token, version, request) = {
            let mut st = self.shared.state.lock();
            if st.closed || st.need_metadata {
                return false;
            }
            let mut w = self.collect(&mut st, &snap, now, Some(broker));
            if !w.only_requests() {
                st.need_metadata |= w.need_metadata;
                return false;
            }
            let Some(wants) = w.by_broker.remove(&broker) else {
                // Nothing to fetch from it (or it is busy): nothing to do.
                return true;
            };
            self.register(&mut st, broker, version, wants, now)
        };
        self.submit(&conn, broker, token, version, &request, now);
        true
    }

    /// Under the state lock: hands `code` to the consumer for every
    /// partition of `wants`.
    fn fail_partitions(
        &self,
        st: &mut FetchState,
        broker: i32,
        wants: Vec<WantWithId>,
        code: ErrorCode,
        e: &Error,
    ) {
        log::warn!("fetcher: broker {broker}: {e}");
        let mut parts = Vec::new();
        for w in wants {
            if w.follower {
                // A replica the leader suggested: the leader it is.
                if let Some(p) = st.parts.get_mut(&w.want.tp) {
                    p.preferred = None;
                }
                continue;
            }
            if let Some(p) = st.parts.get_mut(&w.want.tp) {
                p.stopped = true;
            }
            parts.push(PartitionData {
                tp: w.want.tp,
                epoch: w.epoch,
                fetch_offset: w.want.part.offset,
                next_offset: w.want.part.offset,
                records: Bytes::new(),
                error: code,
                high_watermark: -1,
                aborted: Vec::new(),
            });
        }
        if parts.is_empty() {
            return;
        }
        *st.queued.entry(broker).or_insert(0) += 1;
        let _ = self.data_tx.send(FetchedChunk {
            broker,
            parts,
            counted: true,
        });
    }
}

/// No fetch from `broker` before `until`; its session restarts, and the
/// partitions read from it as a preferred replica go back to their leader.
fn back_off(st: &mut FetchState, broker: i32, until: Instant) {
    let b = st.brokers.entry(broker).or_default();
    b.retry_at = Some(until);
    b.session.reset();
    st.need_metadata = true;
    for p in st.parts.values_mut() {
        if p.preferred.is_some_and(|(r, _)| r == broker) {
            p.preferred = None;
        }
    }
}

/// Keeps a failure that repeats on reconnect for the consumer to report.
fn note_auth_failure(st: &mut FetchState, e: &Error) {
    if e.repeats_on_reconnect() {
        st.auth_failure = Some(e.clone());
    }
}

/// The request `token` to `broker`, if it is still the one in flight.
fn take_in_flight(st: &mut FetchState, broker: i32, token: u64) -> Option<InFlight> {
    let b = st.brokers.get_mut(&broker)?;
    if b.in_flight.as_ref().map(|i| i.token) != Some(token) {
        return None;
    }
    b.in_flight.take()
}

/// Its partitions are no longer in flight.
fn clear_in_flight(st: &mut FetchState, inf: &InFlight) {
    for tp in inf.parts.keys() {
        if let Some(p) = st.parts.get_mut(tp) {
            if p.in_flight == Some(inf.token) {
                p.in_flight = None;
            }
        }
    }
}

impl Core {
    /// Handles the answer to fetch `token` of `broker`, on the thread that
    /// has it (the connection's reader): moves the positions on, queues the
    /// data and errors for the consumer, then sends the broker its next
    /// request if it may take one and nothing else needs doing, and wakes
    /// the fetch thread otherwise (metadata, a back-off, an error). Never
    /// blocks: the lock is only ever held briefly, never while submitting.
    pub(super) fn fetch_done(
        self: &Arc<Self>,
        broker: i32,
        token: u64,
        version: i16,
        result: Result<Bytes>,
    ) {
        // Decoding the answer (not its records) needs no lock.
        let response = result.and_then(|body| decode_response::<FetchRequest>(&body, version));
        let now = Instant::now();
        let mut st = self.shared.state.lock();
        let Some(inf) = take_in_flight(&mut st, broker, token) else {
            return;
        };
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                Metrics::add(&self.metrics.fetch_errors, 1);
                log::debug!("fetcher: fetch from broker {broker} failed: {e}");
                note_auth_failure(&mut st, &e);
                clear_in_flight(&mut st, &inf);
                back_off(&mut st, broker, now + self.settings.retry_backoff);
                drop(st);
                self.shared.wake();
                return;
            }
        };
        let top = ErrorCode(response.error_code);
        if top.is_err() {
            Metrics::add(&self.metrics.fetch_errors, 1);
            clear_in_flight(&mut st, &inf);
            st.brokers.entry(broker).or_default().session.reset();
            if !matches!(
                top,
                ErrorCode::FETCH_SESSION_ID_NOT_FOUND
                    | ErrorCode::INVALID_FETCH_SESSION_EPOCH
                    | ErrorCode::FETCH_SESSION_TOPIC_ID_ERROR
            ) {
                log::debug!("fetcher: broker {broker} answered {top}");
                back_off(&mut st, broker, now + self.settings.retry_backoff);
            }
            drop(st);
            self.shared.wake();
            return;
        }
        if let Some(b) = st.brokers.get_mut(&broker) {
            b.session.answered(inf.full, response.session_id);
        }
        let mut chunks = Vec::new();
        let mut bytes = 0u64;
        let mut stale_metadata = false;
        let backoff = self.settings.retry_backoff;
        {
            let FetchState { parts, .. } = &mut *st;
            for topic in response.responses {
                let name: Arc<str> = match inf.ids.get(&topic.topic_id) {
                    Some(n) if !topic.topic_id.is_zero() => Arc::clone(n),
                    _ => Arc::from(topic.topic.as_str()),
                };
                for p in topic.partitions {
                    let tp = TopicPartition::new(Arc::clone(&name), p.partition_index);
                    let Some(&(fetch_offset, epoch, follower)) = inf.parts.get(&tp) else {
                        continue;
                    };
                    let Some(pos) = parts.get_mut(&tp) else {
                        continue;
                    };
                    if pos.epoch != epoch || pos.offset != fetch_offset {
                        continue; // the consumer moved on: stale data
                    }
                    let code = ErrorCode(p.error_code);
                    if p.high_watermark >= 0 {
                        pos.high_watermark = p.high_watermark;
                    }
                    if p.last_stable_offset >= 0 {
                        pos.last_stable_offset = p.last_stable_offset;
                    }
                    if p.log_start_offset >= 0 {
                        pos.log_start_offset = p.log_start_offset;
                    }
                    let mut data = PartitionData {
                        tp,
                        epoch,
                        fetch_offset,
                        next_offset: fetch_offset,
                        records: Bytes::new(),
                        error: code,
                        high_watermark: p.high_watermark,
                        aborted: Vec::new(),
                    };
                    if code.is_ok() && p.preferred_read_replica >= 0 {
                        // KIP-392 (Fetch v11+, with client_rack): read from
                        // this replica for a while. The leader's answer
                        // carries no records then; the next fetch goes
                        // there at once.
                        if p.preferred_read_replica != broker {
                            log::debug!(
                                    "fetcher: {}: reading from preferred replica {} (told by broker {broker})",
                                    data.tp,
                                    p.preferred_read_replica
                                );
                        }
                        pos.preferred = Some((
                            p.preferred_read_replica,
                            now + self.settings.preferred_replica_ttl,
                        ));
                    }
                    if code.is_err() && follower {
                        // The follower cannot serve it (lagging, moved,
                        // out of range there): back to the leader, which
                        // decides.
                        Metrics::add(&self.metrics.fetch_errors, 1);
                        log::debug!(
                                "fetcher: {}: preferred replica {broker} answered {code}; fetching from the leader",
                                data.tp
                            );
                        pos.preferred = None;
                        continue;
                    }
                    if code.is_ok() {
                        let records = p.records.unwrap_or_default();
                        if records.is_empty() {
                            continue;
                        }
                        match scan_next_offset(&records) {
                            Scan::Next(next) => {
                                data.next_offset = next.max(fetch_offset);
                                pos.offset = data.next_offset;
                            }
                            Scan::Malformed => {
                                // The consumer reports it when decoding.
                                pos.stopped = true;
                            }
                            Scan::Partial
                                if !partial_is_too_large(
                                    inf.version,
                                    records.len(),
                                    &self.settings,
                                ) =>
                            {
                                // Cut off by the response's size limit after
                                // other partitions: nothing whole yet, fetch
                                // again.
                                continue;
                            }
                            Scan::Partial => {
                                pos.stopped = true;
                                data.error = ErrorCode::MESSAGE_TOO_LARGE;
                            }
                        }
                        bytes += records.len() as u64;
                        if let Some(mut aborted) = p.aborted_transactions {
                            aborted.sort_by_key(|a| a.first_offset);
                            data.aborted = aborted
                                .into_iter()
                                .map(|a| (a.producer_id, a.first_offset))
                                .collect();
                        }
                        data.records = records;
                        chunks.push(data);
                    } else if !follower
                        && (code == ErrorCode::NOT_LEADER_OR_FOLLOWER
                            || code == ErrorCode::FENCED_LEADER_EPOCH)
                    {
                        // A leader change: the consumer validates its
                        // position (KIP-320) before fetching again.
                        Metrics::add(&self.metrics.fetch_errors, 1);
                        stale_metadata = true;
                        pos.stopped = true;
                        chunks.push(data);
                    } else if code.is_stale_metadata()
                        || (code.is_retriable() && code != ErrorCode::CORRUPT_MESSAGE)
                    {
                        Metrics::add(&self.metrics.fetch_errors, 1);
                        log::debug!(
                            "fetcher: {}: {code}; retrying after a metadata refresh",
                            data.tp
                        );
                        stale_metadata |= code.is_stale_metadata();
                        pos.retry_at = Some(now + backoff);
                    } else {
                        // OFFSET_OUT_OF_RANGE, authorization, corrupt...: the
                        // consumer decides.
                        Metrics::add(&self.metrics.fetch_errors, 1);
                        pos.stopped = true;
                        chunks.push(data);
                    }
                }
            }
        }
        clear_in_flight(&mut st, &inf);
        st.need_metadata |= stale_metadata;
        let may_send = if chunks.is_empty() {
            true
        } else {
            // A consumer waiting on an empty channel takes this at once: it
            // is not counted, and the broker's next request goes out now
            // (in parallel with the consumer's wake-up, not after it).
            // (Swapped only when the channel is empty; under the lock, so
            // two answers never both find it waiting.)
            let counted = !(self.data_tx.is_empty()
                && self.shared.consumer_waiting.swap(false, Ordering::AcqRel));
            let mut q = st.queued.get(&broker).copied().unwrap_or(0);
            if counted {
                q += 1;
                st.queued.insert(broker, q);
            }
            // Sent under the lock, so that it stays in order with errors
            // the fetch thread queues for the same partitions.
            let _ = self.data_tx.send(FetchedChunk {
                broker,
                parts: chunks,
                counted,
            });
            q < MAX_QUEUED
        };
        drop(st);
        self.metrics
            .fetch_done(now.duration_since(inf.sent_at), bytes);
        log::trace!(
            "fetcher: answer of broker {broker} after {:?}: {bytes} record bytes",
            now.duration_since(inf.sent_at)
        );
        // The consumer sends this broker's next request when it takes the
        // chunk (`Fetcher::taken`); until then it gets none.
        if stale_metadata || (may_send && !self.send_next(broker)) {
            self.shared.wake();
        }
    }
}
