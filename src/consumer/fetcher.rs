//! The fetch thread: one Fetch request in flight per leader, covering the
//! fetchable partitions it leads, on the broker's `Fetch` connection; the
//! answers go to the consumer thread over a channel, undecoded.
//!
//! The thread only moves buffers. It reads the batch headers of each
//! partition's `records` blob (offset and length, no CRC, no
//! decompression) to know where the next fetch starts, so the next request
//! can go out while the consumer is still decoding the previous answer.
//! Memory stays bounded: a broker gets no new request while one of its
//! answers waits in the channel untouched ([`MAX_QUEUED`]), so at most
//! three answers per broker are alive (one being read, one queued, one in
//! flight), each at most `fetch_max_bytes`.
//!
//! Every position the consumer hands over carries an epoch; it changes on
//! each seek, reset, pause or reassignment. An answer is kept only when the
//! partition's epoch is still the one the request was made with, so data
//! for an old position is dropped here, and the consumer checks again.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, Sender};
use parking_lot::Mutex;

use super::fetch_session::{Plan, SentPart, Session, Want};
use super::message::TopicPartition;
use super::metrics::Metrics;
use crate::bytes::Bytes;
use crate::cluster::{Cluster, Purpose};
use crate::error::{Error, Result};
use crate::net::{decode_response, Completion, Reply};
use crate::protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use crate::protocol::messages::FetchRequest;
use crate::protocol::{ErrorCode, Uuid};

/// Answers a broker may have waiting for the consumer before it gets no
/// new request.
pub(crate) const MAX_QUEUED: usize = 1;

/// The fetch settings from the consumer config.
#[derive(Debug, Clone)]
pub(crate) struct FetchSettings {
    pub(crate) max_wait: Duration,
    pub(crate) min_bytes: i32,
    pub(crate) max_bytes: i32,
    pub(crate) partition_max_bytes: i32,
    pub(crate) isolation_level: i8,
    pub(crate) request_timeout: Duration,
    pub(crate) retry_backoff: Duration,
    pub(crate) rack: String,
    /// How long a preferred read replica (KIP-392) is used before asking
    /// the leader again (`metadata_max_age_ms`, as the Java client).
    pub(crate) preferred_replica_ttl: Duration,
}

/// The fetch state of one partition.
#[derive(Debug, Clone)]
pub(crate) struct FetchPos {
    /// Where the next fetch starts.
    pub(crate) offset: i64,
    /// The consumer's position epoch this offset belongs to.
    pub(crate) epoch: u64,
    /// The token of the request carrying this partition.
    in_flight: Option<u64>,
    /// No fetch before this (after a retriable error).
    retry_at: Option<Instant>,
    /// An error the consumer must resolve first (out of range, denied).
    stopped: bool,
    /// The replica the leader said to fetch from (KIP-392, with
    /// `client_rack`), until when.
    preferred: Option<(i32, Instant)>,
    pub(crate) high_watermark: i64,
    pub(crate) last_stable_offset: i64,
    pub(crate) log_start_offset: i64,
}

#[derive(Default)]
struct FetchState {
    parts: HashMap<TopicPartition, FetchPos>,
    queued: HashMap<i32, usize>,
    closed: bool,
    /// A refused SASL login on a fetch connection, for the consumer to
    /// report (retrying it would only repeat the refusal).
    auth_failure: Option<Error>,
}

struct Shared {
    state: Mutex<FetchState>,
    wake_tx: Sender<()>,
}

impl Shared {
    fn wake(&self) {
        let _ = self.wake_tx.try_send(());
    }
}

/// One partition's part of a fetch answer.
#[derive(Debug)]
pub(crate) struct PartitionData {
    pub(crate) tp: TopicPartition,
    pub(crate) epoch: u64,
    /// The offset the fetch asked for.
    pub(crate) fetch_offset: i64,
    /// Just after the last whole batch of `records`.
    pub(crate) next_offset: i64,
    pub(crate) records: Bytes,
    /// `NONE`, or an error the consumer must act on.
    pub(crate) error: ErrorCode,
    pub(crate) high_watermark: i64,
    /// Aborted transactions `(producer id, first offset)`, sorted by offset.
    pub(crate) aborted: Vec<(i64, i64)>,
}

/// One fetch answer with data (or errors) for the consumer.
#[derive(Debug)]
pub(crate) struct FetchedChunk {
    pub(crate) broker: i32,
    pub(crate) parts: Vec<PartitionData>,
}

/// The consumer thread's handle to the fetch thread.
pub(crate) struct Fetcher {
    shared: Arc<Shared>,
    pub(crate) data_rx: Receiver<FetchedChunk>,
    thread: Option<JoinHandle<()>>,
}

impl Fetcher {
    /// Starts the fetch thread.
    pub(crate) fn start(
        cluster: Arc<Cluster>,
        settings: FetchSettings,
        metrics: Arc<Metrics>,
    ) -> Result<Fetcher> {
        let (wake_tx, wake_rx) = crossbeam_channel::bounded(1);
        let (data_tx, data_rx) = crossbeam_channel::unbounded();
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        let shared = Arc::new(Shared {
            state: Mutex::new(FetchState::default()),
            wake_tx,
        });
        let t = FetchThread {
            cluster,
            shared: Arc::clone(&shared),
            settings,
            metrics,
            data_tx,
            wake_rx,
            done_tx,
            done_rx,
            brokers: HashMap::new(),
            tokens: HashMap::new(),
            next_token: 1,
        };
        let thread = std::thread::Builder::new()
            .name("kafka-consumer-fetch".into())
            .spawn(move || t.run())
            .map_err(|e| Error::io("spawning the consumer's fetch thread", e))?;
        Ok(Fetcher {
            shared,
            data_rx,
            thread: Some(thread),
        })
    }

    /// Takes the last refused login of a fetch connection, if any.
    pub(crate) fn take_auth_failure(&self) -> Option<Error> {
        self.shared.state.lock().auth_failure.take()
    }

    /// Fetches `tp` from `offset` on, for position epoch `epoch`.
    pub(crate) fn set_position(&self, tp: &TopicPartition, offset: i64, epoch: u64) {
        {
            let mut st = self.shared.state.lock();
            match st.parts.get_mut(tp) {
                Some(p) => {
                    p.offset = offset;
                    p.epoch = epoch;
                    p.stopped = false;
                    p.retry_at = None;
                }
                None => {
                    st.parts.insert(
                        tp.clone(),
                        FetchPos {
                            offset,
                            epoch,
                            in_flight: None,
                            retry_at: None,
                            stopped: false,
                            preferred: None,
                            high_watermark: -1,
                            last_stable_offset: -1,
                            log_start_offset: -1,
                        },
                    );
                }
            }
        }
        self.shared.wake();
    }

    /// Stops fetching `tp` (paused, revoked, or no position yet).
    pub(crate) fn remove(&self, tp: &TopicPartition) {
        self.shared.state.lock().parts.remove(tp);
    }

    /// The consumer took an answer of `broker` from the channel: that broker
    /// may get its next request.
    pub(crate) fn taken(&self, broker: i32) {
        let wake = {
            let mut st = self.shared.state.lock();
            let q = st.queued.entry(broker).or_insert(0);
            *q = q.saturating_sub(1);
            *q < MAX_QUEUED
        };
        if wake {
            self.shared.wake();
        }
    }

    /// The last high watermark, last stable offset and log start offset the
    /// fetches saw for `tp` (-1 where unknown).
    pub(crate) fn watermarks(&self, tp: &TopicPartition) -> Option<(i64, i64, i64)> {
        self.shared
            .state
            .lock()
            .parts
            .get(tp)
            .map(|p| (p.high_watermark, p.last_stable_offset, p.log_start_offset))
    }

    /// Every partition's high watermark and fetch position.
    pub(crate) fn high_watermarks(&self) -> Vec<(TopicPartition, i64)> {
        self.shared
            .state
            .lock()
            .parts
            .iter()
            .map(|(tp, p)| (tp.clone(), p.high_watermark))
            .collect()
    }

    /// Stops the thread (waiting a moment for it to finish).
    pub(crate) fn close(&mut self) {
        self.shared.state.lock().closed = true;
        self.shared.wake();
        if let Some(t) = self.thread.take() {
            let deadline = Instant::now() + Duration::from_secs(2);
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

impl Drop for Fetcher {
    fn drop(&mut self) {
        self.close();
    }
}

#[derive(Default)]
struct BrokerState {
    session: Session,
    in_flight: Option<InFlight>,
    connecting: Option<u64>,
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

enum TokenKind {
    Connect,
    Fetch,
}

struct FetchThread {
    cluster: Arc<Cluster>,
    shared: Arc<Shared>,
    settings: FetchSettings,
    metrics: Arc<Metrics>,
    data_tx: Sender<FetchedChunk>,
    wake_rx: Receiver<()>,
    done_tx: Sender<Completion>,
    done_rx: Receiver<Completion>,
    brokers: HashMap<i32, BrokerState>,
    tokens: HashMap<u64, (i32, TokenKind)>,
    next_token: u64,
}

struct WantWithId {
    want: Want,
    epoch: u64,
    /// Fetched from a preferred read replica, not the leader.
    follower: bool,
}

impl FetchThread {
    fn run(mut self) {
        loop {
            while let Ok(c) = self.done_rx.try_recv() {
                self.complete(c);
            }
            if self.shared.state.lock().closed {
                return;
            }
            if let Err(e) = self.cluster.maybe_refresh() {
                log::debug!("fetcher: metadata refresh failed: {e}");
            }
            let now = Instant::now();
            let next = self.send_fetches(now);
            let wait = next
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            select! {
                recv(self.done_rx) -> c => {
                    if let Ok(c) = c {
                        self.complete(c);
                    }
                }
                recv(self.wake_rx) -> _ => {}
                default(wait) => {}
            }
        }
    }

    /// Sends a request to every idle leader with something to fetch;
    /// returns when to look again at the latest.
    fn send_fetches(&mut self, now: Instant) -> Instant {
        let snap = self.cluster.metadata();
        let mut next = now + Duration::from_millis(250);
        let mut by_broker: HashMap<i32, Vec<WantWithId>> = HashMap::new();
        let mut need_metadata = false;
        {
            let st = self.shared.state.lock();
            for (tp, pos) in &st.parts {
                if pos.stopped || pos.in_flight.is_some() {
                    continue;
                }
                if let Some(at) = pos.retry_at {
                    if at > now {
                        next = next.min(at);
                        continue;
                    }
                }
                let Some(topic) = snap.topic(&tp.topic) else {
                    need_metadata = true;
                    continue;
                };
                let Some(pm) = topic.partition(tp.partition).filter(|p| p.leader >= 0) else {
                    need_metadata = true;
                    continue;
                };
                // KIP-392: the replica the leader pointed at, while that
                // advice is fresh and the broker is known.
                let target = match pos.preferred {
                    Some((replica, until))
                        if until > now
                            && replica != pm.leader
                            && snap.broker(replica).is_some() =>
                    {
                        replica
                    }
                    _ => pm.leader,
                };
                let b = self.brokers.entry(target).or_default();
                if b.in_flight.is_some() || b.connecting.is_some() {
                    continue;
                }
                if let Some(at) = b.retry_at {
                    if at > now {
                        next = next.min(at);
                        continue;
                    }
                }
                if st.queued.get(&target).copied().unwrap_or(0) >= MAX_QUEUED {
                    continue;
                }
                by_broker.entry(target).or_default().push(WantWithId {
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
        }
        if need_metadata {
            self.cluster.request_update();
            next = next.min(now + self.settings.retry_backoff.max(Duration::from_millis(10)));
        }
        for (broker, wants) in by_broker {
            self.send(broker, wants, now);
        }
        next
    }

    fn token(&mut self) -> u64 {
        let t = self.next_token;
        self.next_token += 1;
        t
    }

    fn back_off(&mut self, broker: i32, now: Instant) {
        let b = self.brokers.entry(broker).or_default();
        b.retry_at = Some(now + self.settings.retry_backoff);
        b.session.reset();
        self.cluster.request_update();
        // Partitions read from this broker as a preferred replica go back
        // to their leader.
        let mut st = self.shared.state.lock();
        for p in st.parts.values_mut() {
            if p.preferred.is_some_and(|(r, _)| r == broker) {
                p.preferred = None;
            }
        }
    }

    fn send(&mut self, broker: i32, mut wants: Vec<WantWithId>, now: Instant) {
        let conn = match self.cluster.connection(broker, Purpose::Fetch) {
            Ok(c) => c,
            Err(e) => {
                log::debug!("fetcher: no connection to broker {broker}: {e}");
                self.back_off(broker, now);
                return;
            }
        };
        let Some(versions) = conn.known_versions() else {
            let token = self.token();
            self.tokens.insert(token, (broker, TokenKind::Connect));
            if conn
                .connect_async(Reply::new(self.done_tx.clone(), token))
                .is_err()
            {
                self.tokens.remove(&token);
                self.back_off(broker, now);
            } else {
                self.brokers.entry(broker).or_default().connecting = Some(token);
            }
            return;
        };
        let mut version = match versions.negotiate::<FetchRequest>() {
            Ok(v) => v,
            Err(e) => {
                self.fail_partitions(broker, wants, ErrorCode::UNSUPPORTED_VERSION, &e);
                return;
            }
        };
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
        let b = self.brokers.entry(broker).or_default();
        let plan = b
            .session
            .plan(wants.into_iter().map(|w| w.want).collect(), version);
        let rotation = b.rotation;
        b.rotation = b.rotation.wrapping_add(1);
        let request = build_request(&self.settings, &plan, rotation);
        let timeout = self.settings.request_timeout + self.settings.max_wait;
        let token = self.token();
        let sent = conn.submit(
            &request,
            Some(version),
            true,
            timeout,
            Reply::new(self.done_tx.clone(), token),
        );
        if let Err(e) = sent {
            log::debug!("fetcher: sending to broker {broker} failed: {e}");
            self.back_off(broker, now);
            return;
        }
        {
            let mut st = self.shared.state.lock();
            for tp in parts.keys() {
                if let Some(p) = st.parts.get_mut(tp) {
                    p.in_flight = Some(token);
                }
            }
        }
        log::trace!(
            "fetcher: fetch v{version} to broker {broker}: {} partition(s), {} listed",
            parts.len(),
            plan.include.len()
        );
        self.tokens.insert(token, (broker, TokenKind::Fetch));
        let b = self.brokers.entry(broker).or_default();
        b.in_flight = Some(InFlight {
            token,
            version,
            full: plan.full,
            sent_at: now,
            parts,
            ids,
        });
    }

    /// Hands `code` to the consumer for every partition of `wants`.
    fn fail_partitions(&mut self, broker: i32, wants: Vec<WantWithId>, code: ErrorCode, e: &Error) {
        log::warn!("fetcher: broker {broker}: {e}");
        let mut parts = Vec::new();
        {
            let mut st = self.shared.state.lock();
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
        }
        let _ = self.data_tx.send(FetchedChunk { broker, parts });
    }

    fn complete(&mut self, c: Completion) {
        let Some((broker, kind)) = self.tokens.remove(&c.token) else {
            return;
        };
        let now = Instant::now();
        match kind {
            TokenKind::Connect => {
                let b = self.brokers.entry(broker).or_default();
                b.connecting = None;
                if let Err(e) = c.result {
                    log::debug!("fetcher: connecting to broker {broker} failed: {e}");
                    self.note_auth_failure(&e);
                    self.back_off(broker, now);
                }
            }
            TokenKind::Fetch => self.fetch_done(broker, c.result, now),
        }
    }

    fn note_auth_failure(&self, e: &Error) {
        if e.is_auth() {
            self.shared.state.lock().auth_failure = Some(e.clone());
        }
    }

    fn fetch_done(&mut self, broker: i32, result: Result<Bytes>, now: Instant) {
        let Some(inf) = self
            .brokers
            .get_mut(&broker)
            .and_then(|b| b.in_flight.take())
        else {
            return;
        };
        let response = result.and_then(|body| decode_response::<FetchRequest>(&body, inf.version));
        let clear_in_flight = |shared: &Shared| {
            let mut st = shared.state.lock();
            for tp in inf.parts.keys() {
                if let Some(p) = st.parts.get_mut(tp) {
                    if p.in_flight == Some(inf.token) {
                        p.in_flight = None;
                    }
                }
            }
        };
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                Metrics::add(&self.metrics.fetch_errors, 1);
                log::debug!("fetcher: fetch from broker {broker} failed: {e}");
                self.note_auth_failure(&e);
                clear_in_flight(&self.shared);
                self.back_off(broker, now);
                return;
            }
        };
        let top = ErrorCode(response.error_code);
        if top.is_err() {
            Metrics::add(&self.metrics.fetch_errors, 1);
            clear_in_flight(&self.shared);
            let b = self.brokers.entry(broker).or_default();
            b.session.reset();
            if !matches!(
                top,
                ErrorCode::FETCH_SESSION_ID_NOT_FOUND
                    | ErrorCode::INVALID_FETCH_SESSION_EPOCH
                    | ErrorCode::FETCH_SESSION_TOPIC_ID_ERROR
            ) {
                log::debug!("fetcher: broker {broker} answered {top}");
                self.back_off(broker, now);
            }
            return;
        }
        if let Some(b) = self.brokers.get_mut(&broker) {
            b.session.answered(inf.full, response.session_id);
        }
        let mut chunks = Vec::new();
        let mut bytes = 0u64;
        let mut stale_metadata = false;
        let backoff = self.settings.retry_backoff;
        {
            let mut st = self.shared.state.lock();
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
                    let Some(pos) = st.parts.get_mut(&tp) else {
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
            for tp in inf.parts.keys() {
                if let Some(p) = st.parts.get_mut(tp) {
                    if p.in_flight == Some(inf.token) {
                        p.in_flight = None;
                    }
                }
            }
            if !chunks.is_empty() {
                *st.queued.entry(broker).or_insert(0) += 1;
            }
        }
        if stale_metadata {
            self.cluster.request_update();
        }
        self.metrics
            .fetch_done(now.duration_since(inf.sent_at), bytes);
        log::trace!(
            "fetcher: answer of broker {broker} after {:?}: {bytes} record bytes",
            now.duration_since(inf.sent_at)
        );
        if !chunks.is_empty() {
            let _ = self.data_tx.send(FetchedChunk {
                broker,
                parts: chunks,
            });
        }
    }
}

/// Whether `len` bytes without one whole batch, fetched with Fetch
/// `version`, mean a batch too large to ever come whole. Before v3
/// (KIP-74) a broker never sends a batch larger than the partition limit;
/// from v3 on it sends the first batch whole whatever the limits, so a
/// cut-off batch smaller than the limits means the response filled up with
/// other partitions first (fetch again), while one that fills a limit comes
/// from a broker that ignores KIP-74 (too large, or it would never end).
pub(crate) fn partial_is_too_large(version: i16, len: usize, s: &FetchSettings) -> bool {
    let limit = s.partition_max_bytes.min(s.max_bytes).max(0) as usize;
    version < 3 || len >= limit
}

/// The Fetch request for `plan` (partitions listed in `rotation`'s order).
fn build_request(s: &FetchSettings, plan: &Plan, rotation: usize) -> FetchRequest {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for w in &plan.include {
        if topics.last().map_or(true, |t| *t.topic != *w.tp.topic) {
            topics.push(FetchTopic {
                topic: w.tp.topic.to_string(),
                topic_id: w.topic_id,
                partitions: Vec::new(),
                ..Default::default()
            });
        }
        if let Some(t) = topics.last_mut() {
            t.partitions.push(FetchPartition {
                partition: w.tp.partition,
                current_leader_epoch: w.part.leader_epoch,
                fetch_offset: w.part.offset,
                last_fetched_epoch: -1,
                log_start_offset: -1,
                partition_max_bytes: w.part.max_bytes,
                ..Default::default()
            });
        }
    }
    for t in &mut topics {
        let n = t.partitions.len();
        t.partitions.rotate_left(rotation % n.max(1));
    }
    let n = topics.len();
    topics.rotate_left(rotation % n.max(1));
    let mut forgotten: Vec<ForgottenTopic> = Vec::new();
    for (tp, topic_id) in &plan.forget {
        if forgotten.last().map_or(true, |t| *t.topic != *tp.topic) {
            forgotten.push(ForgottenTopic {
                topic: tp.topic.to_string(),
                topic_id: *topic_id,
                partitions: Vec::new(),
                ..Default::default()
            });
        }
        if let Some(t) = forgotten.last_mut() {
            t.partitions.push(tp.partition);
        }
    }
    FetchRequest {
        max_wait_ms: s.max_wait.as_millis().min(i32::MAX as u128) as i32,
        min_bytes: s.min_bytes,
        max_bytes: s.max_bytes,
        isolation_level: s.isolation_level,
        session_id: plan.session_id,
        session_epoch: plan.session_epoch,
        topics,
        forgotten_topics_data: forgotten,
        rack_id: s.rack.clone(),
        ..Default::default()
    }
}

/// What the batch headers of a fetched blob say.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Scan {
    /// The offset after the last whole batch.
    Next(i64),
    /// The first batch is cut off: it is larger than the fetch allowed
    /// (brokers before 0.10.1 send no partial first batch whole).
    Partial,
    /// A batch header is impossible.
    Malformed,
}

/// Walks the batch headers of `records` (no CRC, no decompression).
pub(crate) fn scan_next_offset(records: &[u8]) -> Scan {
    let mut pos = 0usize;
    let mut next: Option<i64> = None;
    while let Some(header) = records.get(pos..pos + 17) {
        let base = i64::from_be_bytes(header[0..8].try_into().unwrap_or([0; 8]));
        let len = i32::from_be_bytes(header[8..12].try_into().unwrap_or([0; 4]));
        if len < 14 {
            return match next {
                Some(n) => Scan::Next(n),
                None => Scan::Malformed,
            };
        }
        let total = 12 + len as usize;
        let Some(batch) = records.get(pos..pos + total) else {
            break;
        };
        let last = if header[16] == 2 {
            match batch.get(23..27) {
                Some(d) => base.wrapping_add(i64::from(i32::from_be_bytes(
                    d.try_into().unwrap_or([0; 4]),
                ))),
                None => return Scan::Malformed,
            }
        } else {
            // Legacy: a wrapper carries the offset of its last inner message.
            base
        };
        let n = last.wrapping_add(1);
        next = Some(next.map_or(n, |m| m.max(n)));
        pos += total;
    }
    match next {
        Some(n) => Scan::Next(n),
        None => Scan::Partial,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{BatchOptions, RecordBatchBuilder};

    fn batch(base: i64, n: usize) -> Vec<u8> {
        let mut b = RecordBatchBuilder::new();
        for i in 0..n {
            b.append(0, None, Some(format!("v{i}").as_bytes()), [])
                .unwrap();
        }
        b.build(&BatchOptions {
            base_offset: base,
            ..BatchOptions::default()
        })
        .unwrap()
        .to_vec()
    }

    #[test]
    fn scan_finds_the_end_of_the_last_whole_batch() {
        let mut blob = batch(10, 3);
        blob.extend(batch(13, 5));
        assert_eq!(scan_next_offset(&blob), Scan::Next(18));
        let whole = blob.len();
        blob.extend(&batch(18, 4)[..20]);
        assert_eq!(scan_next_offset(&blob), Scan::Next(18), "partial tail");
        assert_eq!(scan_next_offset(&blob[whole..]), Scan::Partial);
        assert_eq!(scan_next_offset(&[]), Scan::Partial);
        let mut bad = batch(0, 1);
        bad[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert_eq!(scan_next_offset(&bad), Scan::Malformed);
    }

    fn settings() -> FetchSettings {
        FetchSettings {
            max_wait: Duration::from_millis(500),
            min_bytes: 1,
            max_bytes: 1 << 20,
            partition_max_bytes: 1000,
            isolation_level: 0,
            request_timeout: Duration::from_secs(30),
            retry_backoff: Duration::from_millis(100),
            rack: String::new(),
            preferred_replica_ttl: Duration::from_secs(300),
        }
    }

    fn want(topic: &str, id: u8, p: i32) -> Want {
        Want {
            tp: TopicPartition::new(topic, p),
            topic_id: Uuid([id; 16]),
            part: SentPart {
                offset: 0,
                max_bytes: 1000,
                leader_epoch: -1,
            },
        }
    }

    #[test]
    fn a_paused_topic_is_forgotten_by_id_on_fetch_v13() {
        let mut session = Session::default();
        let plan = session.plan(vec![want("a", 1, 0), want("b", 2, 0)], 13);
        session.answered(plan.full, 42);
        // Topic b paused as a whole: only a is wanted.
        let plan = session.plan(vec![want("a", 1, 0)], 13);
        let r = build_request(&settings(), &plan, 0);
        assert_eq!(r.session_id, 42);
        assert_eq!(r.forgotten_topics_data.len(), 1);
        let f = &r.forgotten_topics_data[0];
        assert_eq!((f.topic_id, f.partitions.clone()), (Uuid([2; 16]), vec![0]));
        assert!(r.topics.is_empty(), "a is unchanged: not listed");
    }

    #[test]
    fn a_cut_off_first_batch_is_too_large_only_when_it_fills_a_limit() {
        let s = settings();
        assert!(partial_is_too_large(2, 10, &s), "before KIP-74");
        assert!(
            !partial_is_too_large(3, 10, &s),
            "the response filled up first"
        );
        assert!(
            partial_is_too_large(12, 1000, &s),
            "cut at the partition limit"
        );
    }
}
