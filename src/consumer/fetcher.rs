//! The fetch thread: one Fetch request in flight per leader, covering the
//! fetchable partitions it leads, on the broker's `Fetch` connection; the
//! answers go to the consumer thread over a channel, undecoded.
//!
//! Each answer is taken apart on the connection's reader thread (a
//! `Reply::run` completion: the session, the positions, the chunk for the
//! consumer, all under the state lock), which then puts that broker's next
//! request on the connection's writer channel itself; a consumer taking a
//! chunk its broker waited on does the same. The fetch thread decides
//! everything else (first requests, connecting, back-offs, metadata,
//! leader changes) and is woken only for that. So an answer reaches a
//! waiting consumer in one hand-off (reader → consumer), and the next
//! request its writer in one (reader → writer).
//!
//! Nothing here decodes records. It reads the batch headers of each
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
//!
//! This file is the consumer's handle and the positions both threads
//! share; `thread.rs` is the thread, `request.rs` the Fetch request it
//! builds and the batch-header scan of the answers.

mod request;
mod thread;

use thread::{BrokerState, Core, FetchThread};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

use super::metrics::Metrics;
use crate::bytes::Bytes;
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::partition::TopicPartition;
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
    /// The leader epoch in the metadata the last fetch was made with:
    /// a newer one means a leader change the consumer validates (KIP-320).
    leader_epoch: Option<i32>,
    /// The topic id in the metadata when this position was first fetched
    /// (zero: not known yet). Another id means the topic was deleted and
    /// created again: the position belongs to the old incarnation.
    topic_id: Uuid,
}

#[derive(Default)]
struct FetchState {
    parts: HashMap<TopicPartition, FetchPos>,
    queued: HashMap<i32, usize>,
    closed: bool,
    /// A refused SASL login (or a TLS failure) on a fetch connection, for
    /// the consumer to report: retrying it would only repeat it.
    auth_failure: Option<Error>,
    /// Per broker: fetch session, request in flight, backoff. Under this
    /// lock because answers are handled on connection reader threads.
    brokers: HashMap<i32, BrokerState>,
    /// An answer asked for a metadata refresh (the fetch thread asks the
    /// cluster: a reader thread holds no handle to it).
    need_metadata: bool,
}

struct Shared {
    state: Mutex<FetchState>,
    wake_tx: Sender<()>,
    /// The consumer is blocked waiting for a chunk with nothing buffered:
    /// the next answer is as good as taken (see [`FetchedChunk::counted`]).
    /// Outside the lock, so that the consumer waking up for a chunk does
    /// not meet the reader that sent it still holding the lock.
    consumer_waiting: AtomicBool,
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
    /// Counted in its broker's queued answers until the consumer takes it.
    /// An answer that finds the consumer waiting with an empty channel is
    /// not: it is taken at once, so its broker gets its next request
    /// straight away rather than after the consumer's wake-up.
    pub(crate) counted: bool,
}

/// Wakes a consumer blocked on the data channel for news that came on
/// another of its channels (a group event, a commit's answer, a background
/// lookup). The consumer waits on the data channel alone: a wait on several
/// (`select!`) unregisters from each on waking and so often meets the
/// thread that woke it still holding that channel's lock, a second
/// sleep on the record's way. A chunk with nothing in it (not counted,
/// no parts) sends the consumer round its loop.
#[derive(Clone)]
pub(crate) struct Nudge {
    tx: Sender<FetchedChunk>,
    shared: Arc<Shared>,
}

impl Nudge {
    /// Call after the news is queued: either the consumer sees it before it
    /// blocks, or this sees the consumer waiting (both sides fence).
    pub(crate) fn nudge(&self) {
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.shared.consumer_waiting.load(Ordering::SeqCst) {
            let _ = self.tx.send(FetchedChunk {
                broker: -1,
                parts: Vec::new(),
                counted: false,
            });
        }
    }
}

/// A channel to the consumer whose every message nudges it.
pub(crate) struct Mailbox<T> {
    tx: Sender<T>,
    nudge: Nudge,
}

impl<T> Clone for Mailbox<T> {
    fn clone(&self) -> Self {
        Mailbox {
            tx: self.tx.clone(),
            nudge: self.nudge.clone(),
        }
    }
}

impl<T> Mailbox<T> {
    /// A mailbox sending into `tx`.
    pub(crate) fn new(tx: Sender<T>, nudge: Nudge) -> Mailbox<T> {
        Mailbox { tx, nudge }
    }

    /// Queues `m` for the consumer and wakes it if it waits.
    pub(crate) fn send(&self, m: T) {
        let _ = self.tx.send(m);
        self.nudge.nudge();
    }
}

impl Mailbox<crate::net::Completion> {
    /// A reply delivered into this mailbox (on the connection's reader).
    pub(crate) fn reply(&self, token: u64) -> crate::net::Reply {
        let mailbox = self.clone();
        crate::net::Reply::run(token, move |c| mailbox.send(c))
    }
}

/// The consumer thread's handle to the fetch thread.
pub(crate) struct Fetcher {
    shared: Arc<Shared>,
    core: Arc<Core>,
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
            consumer_waiting: AtomicBool::new(false),
        });
        let core = Arc::new(Core {
            shared: Arc::clone(&shared),
            cluster,
            settings,
            metrics,
            data_tx,
            next_token: AtomicU64::new(1),
        });
        let t = FetchThread {
            core: Arc::clone(&core),
            wake_rx,
            done_tx,
            done_rx,
            tokens: HashMap::new(),
        };
        let thread = std::thread::Builder::new()
            .name("kafka-consumer-fetch".into())
            .spawn(move || t.run())
            .map_err(|e| Error::io("spawning the consumer's fetch thread", e))?;
        Ok(Fetcher {
            shared,
            core,
            data_rx,
            thread: Some(thread),
        })
    }

    /// Takes the last connection failure that repeats on reconnect (a
    /// refused login, a TLS failure) of a fetch connection, if any.
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
                    // Validated (or moved) from here: the current leader
                    // epoch, and the current topic id, are the ones to
                    // compare with.
                    p.leader_epoch = None;
                    p.topic_id = Uuid::default();
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
                            leader_epoch: None,
                            topic_id: Uuid::default(),
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

    /// The consumer is about to block waiting for a chunk (`true`, with
    /// nothing buffered), or stopped waiting (`false`). After `true` (a
    /// full fence) the consumer looks at its other channels once more
    /// before it blocks: news queued before this is seen there, news queued
    /// after it is nudged ([`Nudge`]).
    pub(crate) fn waiting(&self, on: bool) {
        self.shared.consumer_waiting.store(on, Ordering::SeqCst);
        if on {
            std::sync::atomic::fence(Ordering::SeqCst);
        }
    }

    /// A handle that wakes the consumer blocked on the data channel when
    /// news arrives on another of its channels.
    pub(crate) fn nudger(&self) -> Nudge {
        Nudge {
            tx: self.core.data_tx.clone(),
            shared: Arc::clone(&self.shared),
        }
    }

    /// The consumer took `chunk` from the channel: its broker may get its
    /// next request, sent from this thread when nothing else needs the
    /// fetch thread.
    pub(crate) fn taken(&self, chunk: &FetchedChunk) {
        if !chunk.counted {
            return;
        }
        let broker = chunk.broker;
        let may_send = {
            let mut st = self.shared.state.lock();
            let q = st.queued.entry(broker).or_insert(0);
            *q = q.saturating_sub(1);
            *q < MAX_QUEUED
        };
        if may_send && !self.core.send_next(broker) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn nudge() -> (Nudge, Receiver<FetchedChunk>) {
        let (wake_tx, _wake_rx) = crossbeam_channel::bounded(1);
        let shared = Arc::new(Shared {
            state: Mutex::new(FetchState::default()),
            wake_tx,
            consumer_waiting: AtomicBool::new(false),
        });
        let (tx, rx) = crossbeam_channel::unbounded();
        (Nudge { tx, shared }, rx)
    }

    #[test]
    fn a_mailbox_message_nudges_only_a_waiting_consumer() {
        let (nudge, data) = nudge();
        let (tx, inbox) = crossbeam_channel::unbounded();
        let mailbox = Mailbox::new(tx, nudge.clone());
        // Not waiting: the message is queued, the data channel left alone.
        mailbox.send(1);
        assert_eq!(inbox.try_recv().ok(), Some(1));
        assert!(data.is_empty());
        // Waiting on the data channel: an empty, uncounted chunk wakes it.
        nudge.shared.consumer_waiting.store(true, Ordering::SeqCst);
        mailbox.send(2);
        assert_eq!(inbox.try_recv().ok(), Some(2));
        let chunk = data.try_recv().expect("a nudge");
        assert!(chunk.parts.is_empty() && !chunk.counted);
        // An answer delivered through the mailbox's reply nudges too.
        let (tx, answers) = crossbeam_channel::unbounded();
        let replies = Mailbox::new(tx, nudge);
        replies.reply(7).complete(Ok(Bytes::new()));
        assert_eq!(answers.try_recv().map(|c| c.token).ok(), Some(7));
        assert!(data.try_recv().is_ok());
    }
}
