//! A small, fast, in-memory Kafka-compatible broker: a **benchmark
//! instrument**, not a test broker (correctness tests run against a real
//! broker). It answers in microseconds so that a client benchmark measures
//! the client, not the broker: against Tansu one round trip costs about
//! 2 ms, which hides what a client adds.
//!
//! ```text
//! cargo run --release --example bench_broker -- [ADDR] [DEFAULT_PARTITIONS]
//! #   ADDR defaults to 127.0.0.1:29092, DEFAULT_PARTITIONS (auto-created topics) to 1
//! ../shared/bench/peers/run.sh 127.0.0.1:29092   # with BROKER_PID=<its pid>
//! ```
//!
//! What it speaks (built from the crate's own message types): ApiVersions,
//! Metadata, Produce (acks 0/1/all, every batch appended as sent, offsets
//! assigned), Fetch (up to v12, topics by name, no fetch sessions; a fetch
//! that finds less than `min_bytes` waits and is woken as soon as a produce
//! appends data), ListOffsets (earliest/latest), OffsetForLeaderEpoch,
//! InitProducerId, CreateTopics and DeleteTopics. Single node (id 1), no
//! groups, no retention: everything stays in memory until the topic is
//! deleted.
//!
//! Transactions, enough for a transactional producer to run at full speed
//! and nothing more (transaction protocol version 1): FindCoordinator (any
//! key type: this node), InitProducerId with a transactional id (a fresh
//! producer id, the epoch bumped at every later call for the same id),
//! AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit and EndTxn all
//! answer success at once, and transactional Produce batches are appended
//! like any other. **No transaction semantics**: no state machine, no
//! fencing, no markers, no last stable offset (a read_committed consumer
//! sees everything), offsets sent to a transaction are dropped. It measures
//! what a transaction costs the client, not whether anything is correct.
//!
//! With `BENCH_BROKER_DISCARD=1` in its environment it keeps no data:
//! Produce checks each batch's framing and assigns offsets, then drops the
//! bytes (fetches find nothing). That takes the broker's page faults and
//! copies of the log out of a produce benchmark, leaving the socket and the
//! request's decoding.
//!
//! On SIGINT/SIGTERM it prints its own CPU time (user, sys) and the number
//! of requests it served to stderr, as `BROKER cpu_user_s=.. cpu_sys_s=..`.

use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_blocking::protocol::messages::{
    add_partitions_to_txn_response, find_coordinator_response, txn_offset_commit_response,
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, EndTxnRequest, EndTxnResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use kafka_blocking::protocol::messages::{
    api_versions_response, create_topics_response, delete_topics_response, fetch_response,
    list_offsets_response, metadata_response, offset_for_leader_epoch_response, produce_response,
    ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, FetchRequest, FetchResponse, InitProducerIdRequest,
    InitProducerIdResponse, ListOffsetsRequest, ListOffsetsResponse, MetadataRequest,
    MetadataResponse, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, ProduceRequest,
    ProduceResponse,
};
use kafka_blocking::protocol::{
    read_frame, Decoder, ErrorCode, Message, Request, RequestHeader, ResponseHeader, Uuid,
};
use kafka_blocking::Bytes;
use parking_lot::{Condvar, Mutex};

/// The only node.
const NODE_ID: i32 = 1;
/// Largest request frame accepted.
const MAX_FRAME: usize = 64 << 20;

/// One partition's log: the batches exactly as produced (base offsets
/// rewritten) in one buffer, and where each batch starts.
#[derive(Default)]
struct Log {
    data: Vec<u8>,
    /// (base offset, byte position) of every batch, ascending.
    index: Vec<(i64, usize)>,
    next_offset: i64,
}

impl Log {
    /// Appends the record batches of one produce; the base offset of the
    /// first, or an error code.
    fn append(&mut self, records: &[u8], discard: bool) -> Result<i64, ErrorCode> {
        let first = self.next_offset;
        let mut pos = 0;
        while pos < records.len() {
            let rest = &records[pos..];
            if rest.len() < 61 || rest[16] != 2 {
                return Err(ErrorCode::CORRUPT_MESSAGE);
            }
            let batch_len = i32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]);
            let total = 12 + usize::try_from(batch_len).map_err(|_| ErrorCode::CORRUPT_MESSAGE)?;
            let delta = i32::from_be_bytes([rest[23], rest[24], rest[25], rest[26]]);
            if total > rest.len() || delta < 0 {
                return Err(ErrorCode::CORRUPT_MESSAGE);
            }
            if discard {
                self.next_offset += i64::from(delta) + 1;
                pos += total;
                continue;
            }
            let at = self.data.len();
            self.index.push((self.next_offset, at));
            self.data.extend_from_slice(&rest[..total]);
            // Base offset and partition leader epoch lie outside the CRC.
            self.data[at..at + 8].copy_from_slice(&self.next_offset.to_be_bytes());
            self.data[at + 12..at + 16].copy_from_slice(&0i32.to_be_bytes());
            self.next_offset += i64::from(delta) + 1;
            pos += total;
        }
        Ok(first)
    }

    /// Whole batches from the one holding `offset`, at most `max` bytes
    /// unless the first batch alone is larger (it is returned whole).
    fn read(&self, offset: i64, max: usize) -> &[u8] {
        if offset >= self.next_offset || self.index.is_empty() {
            return &[];
        }
        let i = self.index.partition_point(|&(base, _)| base <= offset);
        let i = i.saturating_sub(1);
        let start = self.index[i].1;
        if self.data.len() - start <= max || i + 1 == self.index.len() {
            return &self.data[start..];
        }
        // Batches after the first whose start lies within `max`: every one
        // before such a start fits whole.
        let fit = self.index[i + 1..].partition_point(|&(_, pos)| pos - start <= max);
        let end = self.index[i + fit.max(1)].1;
        &self.data[start..end]
    }
}

struct Topic {
    id: Uuid,
    partitions: Vec<Mutex<Log>>,
}

struct Broker {
    host: String,
    port: i32,
    default_partitions: i32,
    /// `BENCH_BROKER_DISCARD`: produced data is not kept.
    discard: bool,
    topics: Mutex<HashMap<String, Arc<Topic>>>,
    /// Bumped by every append; waiting fetches sleep on `data_arrived`.
    generation: Mutex<u64>,
    data_arrived: Condvar,
    topic_ids: AtomicU64,
    producer_ids: AtomicU64,
    /// Producer id and epoch of every transactional id seen.
    transactional_ids: Mutex<HashMap<String, (i64, i16)>>,
    requests: AtomicU64,
}

impl Broker {
    fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.lock().get(name).cloned()
    }

    fn create(&self, name: &str, partitions: i32) -> Result<Arc<Topic>, ErrorCode> {
        let mut topics = self.topics.lock();
        if topics.contains_key(name) {
            return Err(ErrorCode::TOPIC_ALREADY_EXISTS);
        }
        if name.is_empty() || partitions <= 0 || partitions > 10_000 {
            return Err(ErrorCode(37)); // INVALID_PARTITIONS
        }
        let n = self.topic_ids.fetch_add(1, Ordering::Relaxed) + 1;
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&0x6265_6e63_685f_6272u64.to_be_bytes());
        id[8..].copy_from_slice(&n.to_be_bytes());
        let topic = Arc::new(Topic {
            id: Uuid(id),
            partitions: (0..partitions).map(|_| Mutex::default()).collect(),
        });
        topics.insert(name.to_owned(), topic.clone());
        Ok(topic)
    }

    fn log(&self, topic: &str, partition: i32) -> Option<(Arc<Topic>, usize)> {
        let t = self.topic(topic)?;
        let p = usize::try_from(partition).ok()?;
        (p < t.partitions.len()).then_some((t, p))
    }
}

/// The APIs and versions this broker answers. Fetch stops at v12 (topics
/// by name); DeleteTopics at v5 (topic names); ListOffsets starts at v1.
fn api_ranges() -> Vec<(i16, i16, i16)> {
    fn r<R: Request>(min: i16, max: i16) -> (i16, i16, i16) {
        (R::API_KEY.0, min, max)
    }
    vec![
        r::<ProduceRequest>(3, 9),
        r::<FetchRequest>(4, 12),
        r::<ListOffsetsRequest>(1, 7),
        r::<MetadataRequest>(1, 12),
        r::<OffsetForLeaderEpochRequest>(2, 4),
        r::<InitProducerIdRequest>(0, 4),
        r::<ApiVersionsRequest>(0, 3),
        r::<CreateTopicsRequest>(2, 7),
        r::<DeleteTopicsRequest>(1, 5),
        r::<FindCoordinatorRequest>(0, 5),
        r::<AddPartitionsToTxnRequest>(0, 3),
        r::<AddOffsetsToTxnRequest>(0, 4),
        r::<EndTxnRequest>(0, 4),
        r::<TxnOffsetCommitRequest>(0, 4),
    ]
}

/// Decodes the request `R` in `frame`, lets `f` answer, and encodes the
/// answer with its header (`None` from `f`: no answer, as for acks=0).
fn answer<R: Request>(
    frame: &Bytes,
    version: i16,
    out: &mut Vec<u8>,
    f: impl FnOnce(R, i16) -> Option<R::Response>,
) -> Result<bool, String> {
    let mut d = Decoder::new(frame);
    let header = RequestHeader::decode(&mut d, R::request_header_version(version))
        .map_err(|e| e.to_string())?;
    let request = R::decode(&mut d, version).map_err(|e| e.to_string())?;
    let Some(response) = f(request, version) else {
        return Ok(false);
    };
    out.clear();
    out.extend_from_slice(&[0; 4]);
    ResponseHeader {
        correlation_id: header.correlation_id,
        ..Default::default()
    }
    .encode(out, R::response_header_version(version))
    .map_err(|e| e.to_string())?;
    response.encode(out, version).map_err(|e| e.to_string())?;
    let len = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&len.to_be_bytes());
    Ok(true)
}

fn serve(broker: Arc<Broker>, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut writer = write_half;
    let mut reader = BufReader::with_capacity(256 << 10, stream);
    let mut out = Vec::with_capacity(64 << 10);
    loop {
        let Ok(frame) = read_frame(&mut reader, MAX_FRAME) else {
            return;
        };
        if frame.len() < 8 {
            return;
        }
        let key = i16::from_be_bytes([frame[0], frame[1]]);
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        let frame = Bytes::from(frame);
        broker.requests.fetch_add(1, Ordering::Relaxed);
        match dispatch(&broker, key, version, &frame, &mut out) {
            Ok(true) => {
                if writer.write_all(&out).is_err() {
                    return;
                }
            }
            Ok(false) => {}
            Err(e) => {
                eprintln!("bench_broker: api {key} v{version}: {e}; closing the connection");
                return;
            }
        }
    }
}

fn dispatch(
    b: &Broker,
    key: i16,
    version: i16,
    frame: &Bytes,
    out: &mut Vec<u8>,
) -> Result<bool, String> {
    let supported = api_ranges()
        .into_iter()
        .any(|(k, min, max)| k == key && (min..=max).contains(&version));
    if key == ApiVersionsRequest::API_KEY.0 && !supported {
        // Answer in v0 with UNSUPPORTED_VERSION so the client retries lower.
        let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
        out.clear();
        out.extend_from_slice(&[0; 4]);
        ResponseHeader {
            correlation_id,
            ..Default::default()
        }
        .encode(out, 0)
        .map_err(|e| e.to_string())?;
        api_versions(ErrorCode::UNSUPPORTED_VERSION)
            .encode(out, 0)
            .map_err(|e| e.to_string())?;
        let len = (out.len() - 4) as i32;
        out[..4].copy_from_slice(&len.to_be_bytes());
        return Ok(true);
    }
    if !supported {
        return Err("unsupported api or version".into());
    }
    match key {
        k if k == ProduceRequest::API_KEY.0 => {
            answer::<ProduceRequest>(frame, version, out, |r, _| produce(b, r))
        }
        k if k == FetchRequest::API_KEY.0 => {
            answer::<FetchRequest>(frame, version, out, |r, _| Some(fetch(b, r)))
        }
        k if k == ListOffsetsRequest::API_KEY.0 => {
            answer::<ListOffsetsRequest>(frame, version, out, |r, _| Some(list_offsets(b, r)))
        }
        k if k == MetadataRequest::API_KEY.0 => {
            answer::<MetadataRequest>(frame, version, out, |r, v| Some(metadata(b, r, v)))
        }
        k if k == OffsetForLeaderEpochRequest::API_KEY.0 => {
            answer::<OffsetForLeaderEpochRequest>(frame, version, out, |r, _| {
                Some(leader_epochs(b, r))
            })
        }
        k if k == InitProducerIdRequest::API_KEY.0 => {
            answer::<InitProducerIdRequest>(frame, version, out, |r, _| {
                Some(init_producer_id(b, r))
            })
        }
        k if k == ApiVersionsRequest::API_KEY.0 => {
            answer::<ApiVersionsRequest>(frame, version, out, |_, _| {
                Some(api_versions(ErrorCode::NONE))
            })
        }
        k if k == CreateTopicsRequest::API_KEY.0 => {
            answer::<CreateTopicsRequest>(frame, version, out, |r, _| Some(create_topics(b, r)))
        }
        k if k == DeleteTopicsRequest::API_KEY.0 => {
            answer::<DeleteTopicsRequest>(frame, version, out, |r, _| Some(delete_topics(b, r)))
        }
        k if k == FindCoordinatorRequest::API_KEY.0 => {
            answer::<FindCoordinatorRequest>(frame, version, out, |r, v| {
                Some(find_coordinator(b, r, v))
            })
        }
        k if k == AddPartitionsToTxnRequest::API_KEY.0 => {
            answer::<AddPartitionsToTxnRequest>(frame, version, out, |r, _| {
                Some(AddPartitionsToTxnResponse {
                    results_by_topic_v3_and_below: r
                        .v3_and_below_topics
                        .iter()
                        .map(|t| add_partitions_to_txn_response::AddPartitionsToTxnTopicResult {
                            name: t.name.clone(),
                            results_by_partition: t
                                .partitions
                                .iter()
                                .map(|&partition_index| {
                                    add_partitions_to_txn_response::AddPartitionsToTxnPartitionResult {
                                        partition_index,
                                        partition_error_code: match b.log(&t.name, partition_index) {
                                            Some(_) => 0,
                                            None => ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0,
                                        },
                                        ..Default::default()
                                    }
                                })
                                .collect(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })
            })
        }
        k if k == AddOffsetsToTxnRequest::API_KEY.0 => {
            answer::<AddOffsetsToTxnRequest>(frame, version, out, |_, _| {
                Some(AddOffsetsToTxnResponse::default())
            })
        }
        k if k == EndTxnRequest::API_KEY.0 => {
            answer::<EndTxnRequest>(frame, version, out, |r, _| {
                Some(EndTxnResponse {
                    producer_id: r.producer_id,
                    producer_epoch: r.producer_epoch,
                    ..Default::default()
                })
            })
        }
        k if k == TxnOffsetCommitRequest::API_KEY.0 => {
            answer::<TxnOffsetCommitRequest>(frame, version, out, |r, _| {
                Some(TxnOffsetCommitResponse {
                    topics: r
                        .topics
                        .iter()
                        .map(|t| txn_offset_commit_response::TxnOffsetCommitResponseTopic {
                            name: t.name.clone(),
                            partitions: t
                                .partitions
                                .iter()
                                .map(|p| txn_offset_commit_response::TxnOffsetCommitResponsePartition {
                                    partition_index: p.partition_index,
                                    ..Default::default()
                                })
                                .collect(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })
            })
        }
        _ => Err("unsupported api".into()),
    }
}

/// A fresh producer id; for a transactional id seen before, its producer id
/// with the epoch bumped (no fencing of the previous holder).
fn init_producer_id(b: &Broker, r: InitProducerIdRequest) -> InitProducerIdResponse {
    let fresh = || b.producer_ids.fetch_add(1, Ordering::Relaxed) as i64 + 1000;
    let (producer_id, producer_epoch) = match r.transactional_id {
        None => (fresh(), 0),
        Some(id) => {
            let mut ids = b.transactional_ids.lock();
            let entry = ids.entry(id).or_insert_with(|| (fresh(), -1));
            entry.1 = entry.1.wrapping_add(1).max(0);
            *entry
        }
    };
    InitProducerIdResponse {
        producer_id,
        producer_epoch,
        ..Default::default()
    }
}

/// This node coordinates everything, groups and transactions alike.
/// Versions 0-3 name one key and answer in the top-level fields, 4 and
/// later a list of keys, one coordinator each.
fn find_coordinator(
    b: &Broker,
    r: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    if version < 4 {
        return FindCoordinatorResponse {
            node_id: NODE_ID,
            host: b.host.clone(),
            port: b.port,
            ..Default::default()
        };
    }
    FindCoordinatorResponse {
        coordinators: r
            .coordinator_keys
            .into_iter()
            .map(|key| find_coordinator_response::Coordinator {
                key,
                node_id: NODE_ID,
                host: b.host.clone(),
                port: b.port,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn api_versions(error: ErrorCode) -> ApiVersionsResponse {
    ApiVersionsResponse {
        error_code: error.0,
        api_keys: api_ranges()
            .into_iter()
            .map(
                |(api_key, min_version, max_version)| api_versions_response::ApiVersion {
                    api_key,
                    min_version,
                    max_version,
                    ..Default::default()
                },
            )
            .collect(),
        finalized_features_epoch: -1,
        ..Default::default()
    }
}

fn produce(b: &Broker, r: ProduceRequest) -> Option<ProduceResponse> {
    let mut appended = false;
    let responses = r
        .topic_data
        .iter()
        .map(|t| produce_response::TopicProduceResponse {
            name: t.name.clone(),
            partition_responses: t
                .partition_data
                .iter()
                .map(|p| {
                    let result = match (b.log(&t.name, p.index), &p.records) {
                        (None, _) => Err(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
                        (Some(_), None) => Err(ErrorCode::CORRUPT_MESSAGE),
                        (Some((topic, i)), Some(records)) => topic.partitions[i]
                            .lock()
                            .append(records.as_slice(), b.discard),
                    };
                    appended |= result.is_ok();
                    produce_response::PartitionProduceResponse {
                        index: p.index,
                        error_code: result.err().unwrap_or(ErrorCode::NONE).0,
                        base_offset: result.unwrap_or(-1),
                        log_append_time_ms: -1,
                        log_start_offset: 0,
                        ..Default::default()
                    }
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    if appended {
        *b.generation.lock() += 1;
        b.data_arrived.notify_all();
    }
    (r.acks != 0).then_some(ProduceResponse {
        responses,
        ..Default::default()
    })
}

fn fetch(b: &Broker, r: FetchRequest) -> FetchResponse {
    let deadline = Instant::now() + Duration::from_millis(r.max_wait_ms.max(0) as u64);
    let max_bytes = usize::try_from(r.max_bytes).unwrap_or(0).max(1);
    loop {
        let seen = *b.generation.lock();
        let mut total = 0usize;
        let responses: Vec<_> = r
            .topics
            .iter()
            .map(|t| fetch_response::FetchableTopicResponse {
                topic: t.topic.clone(),
                topic_id: t.topic_id,
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| {
                        let mut data = fetch_response::PartitionData {
                            partition_index: p.partition,
                            high_watermark: -1,
                            last_stable_offset: -1,
                            log_start_offset: -1,
                            preferred_read_replica: -1,
                            aborted_transactions: Some(Vec::new()),
                            records: Some(Bytes::default()),
                            ..Default::default()
                        };
                        let Some((topic, i)) = b.log(&t.topic, p.partition) else {
                            data.error_code = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0;
                            return data;
                        };
                        let log = topic.partitions[i].lock();
                        data.high_watermark = log.next_offset;
                        data.last_stable_offset = log.next_offset;
                        data.log_start_offset = 0;
                        if p.fetch_offset > log.next_offset || p.fetch_offset < 0 {
                            data.error_code = ErrorCode::OFFSET_OUT_OF_RANGE.0;
                            return data;
                        }
                        let room = max_bytes.saturating_sub(total);
                        if room == 0 && total > 0 {
                            return data;
                        }
                        let limit = usize::try_from(p.partition_max_bytes)
                            .unwrap_or(0)
                            .min(room.max(1));
                        let bytes = log.read(p.fetch_offset, limit);
                        total += bytes.len();
                        data.records = Some(Bytes::copy_from_slice(bytes));
                        data
                    })
                    .collect(),
                ..Default::default()
            })
            .collect();
        let now = Instant::now();
        if total >= usize::try_from(r.min_bytes).unwrap_or(0).max(1) || now >= deadline {
            return FetchResponse {
                responses,
                ..Default::default()
            };
        }
        let mut generation = b.generation.lock();
        if *generation == seen {
            b.data_arrived.wait_until(&mut generation, deadline);
        }
    }
}

fn list_offsets(b: &Broker, r: ListOffsetsRequest) -> ListOffsetsResponse {
    ListOffsetsResponse {
        topics: r
            .topics
            .iter()
            .map(|t| list_offsets_response::ListOffsetsTopicResponse {
                name: t.name.clone(),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| {
                        let mut answer = list_offsets_response::ListOffsetsPartitionResponse {
                            partition_index: p.partition_index,
                            timestamp: -1,
                            offset: -1,
                            leader_epoch: 0,
                            ..Default::default()
                        };
                        match b.log(&t.name, p.partition_index) {
                            None => answer.error_code = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0,
                            Some((topic, i)) => {
                                let end = topic.partitions[i].lock().next_offset;
                                // -2 earliest; -1 latest; timestamps: the end.
                                answer.offset = if p.timestamp == -2 { 0 } else { end };
                            }
                        }
                        answer
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn leader_epochs(b: &Broker, r: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    OffsetForLeaderEpochResponse {
        topics: r
            .topics
            .iter()
            .map(
                |t| offset_for_leader_epoch_response::OffsetForLeaderTopicResult {
                    topic: t.topic.clone(),
                    partitions: t
                        .partitions
                        .iter()
                        .map(|p| {
                            let mut answer = offset_for_leader_epoch_response::EpochEndOffset {
                                partition: p.partition,
                                leader_epoch: 0,
                                ..Default::default()
                            };
                            match b.log(&t.topic, p.partition) {
                                None => answer.error_code = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0,
                                Some((topic, i)) => {
                                    answer.end_offset = topic.partitions[i].lock().next_offset
                                }
                            }
                            answer
                        })
                        .collect(),
                    ..Default::default()
                },
            )
            .collect(),
        ..Default::default()
    }
}

fn metadata(b: &Broker, r: MetadataRequest, _version: i16) -> MetadataResponse {
    let wanted: Vec<(String, Option<Arc<Topic>>)> = match &r.topics {
        None => b
            .topics
            .lock()
            .iter()
            .map(|(n, t)| (n.clone(), Some(t.clone())))
            .collect(),
        Some(list) => list
            .iter()
            .filter_map(|t| t.name.clone())
            .map(|name| {
                let topic = b.topic(&name).or_else(|| {
                    r.allow_auto_topic_creation
                        .then(|| b.create(&name, b.default_partitions).ok())
                        .flatten()
                        .or_else(|| b.topic(&name))
                });
                (name, topic)
            })
            .collect(),
    };
    MetadataResponse {
        brokers: vec![metadata_response::MetadataResponseBroker {
            node_id: NODE_ID,
            host: b.host.clone(),
            port: b.port,
            ..Default::default()
        }],
        cluster_id: Some("bench-broker".into()),
        controller_id: NODE_ID,
        cluster_authorized_operations: i32::MIN,
        topics: wanted
            .into_iter()
            .map(|(name, topic)| match topic {
                None => metadata_response::MetadataResponseTopic {
                    error_code: ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0,
                    name: Some(name),
                    topic_authorized_operations: i32::MIN,
                    ..Default::default()
                },
                Some(topic) => metadata_response::MetadataResponseTopic {
                    name: Some(name),
                    topic_id: topic.id,
                    topic_authorized_operations: i32::MIN,
                    partitions: (0..topic.partitions.len() as i32)
                        .map(|p| metadata_response::MetadataResponsePartition {
                            partition_index: p,
                            leader_id: NODE_ID,
                            leader_epoch: 0,
                            replica_nodes: vec![NODE_ID],
                            isr_nodes: vec![NODE_ID],
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                },
            })
            .collect(),
        ..Default::default()
    }
}

fn create_topics(b: &Broker, r: CreateTopicsRequest) -> CreateTopicsResponse {
    CreateTopicsResponse {
        topics: r
            .topics
            .iter()
            .map(|t| {
                let partitions = if t.num_partitions < 0 {
                    b.default_partitions
                } else {
                    t.num_partitions
                };
                let result = if r.validate_only {
                    Err(ErrorCode::NONE)
                } else {
                    b.create(&t.name, partitions)
                };
                create_topics_response::CreatableTopicResult {
                    name: t.name.clone(),
                    topic_id: result.as_ref().map_or(Uuid::ZERO, |t| t.id),
                    error_code: result.as_ref().err().map_or(0, |e| e.0),
                    num_partitions: partitions,
                    replication_factor: 1,
                    configs: Some(Vec::new()),
                    ..Default::default()
                }
            })
            .collect(),
        ..Default::default()
    }
}

fn delete_topics(b: &Broker, r: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let names = r
        .topic_names
        .iter()
        .cloned()
        .chain(r.topics.iter().filter_map(|t| t.name.clone()));
    DeleteTopicsResponse {
        responses: names
            .map(|name| {
                let gone = b.topics.lock().remove(&name);
                delete_topics_response::DeletableTopicResult {
                    error_code: if gone.is_some() {
                        0
                    } else {
                        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0
                    },
                    topic_id: gone.map_or(Uuid::ZERO, |t| t.id),
                    name: Some(name),
                    ..Default::default()
                }
            })
            .collect(),
        ..Default::default()
    }
}

/// (user, sys) CPU seconds of this process, from /proc/self/stat.
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 100.0
    };
    (ticks(11), ticks(12))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = args
        .first()
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:29092".into());
    let default_partitions: i32 = match args.get(1).map(|p| p.parse()) {
        None => 1,
        Some(Ok(p)) if p > 0 => p,
        Some(_) => {
            eprintln!("usage: bench_broker [ADDR] [DEFAULT_PARTITIONS]");
            std::process::exit(2);
        }
    };
    let listener = match TcpListener::bind(&addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("bench_broker: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    let local = listener
        .local_addr()
        .expect("a bound listener has an address");
    let broker = Arc::new(Broker {
        host: local.ip().to_string(),
        port: i32::from(local.port()),
        default_partitions,
        discard: std::env::var("BENCH_BROKER_DISCARD").is_ok_and(|v| v == "1"),
        topics: Mutex::default(),
        generation: Mutex::new(0),
        data_arrived: Condvar::new(),
        topic_ids: AtomicU64::new(0),
        producer_ids: AtomicU64::new(0),
        transactional_ids: Mutex::default(),
        requests: AtomicU64::new(0),
    });
    let on_exit = broker.clone();
    let _ = ctrlc::set_handler(move || {
        let (user, sys) = cpu_seconds();
        eprintln!(
            "BROKER cpu_user_s={user:.2} cpu_sys_s={sys:.2} cpu_s={:.2} requests={}",
            user + sys,
            on_exit.requests.load(Ordering::Relaxed)
        );
        std::process::exit(0);
    });
    eprintln!(
        "bench_broker listening on {local} (pid {})",
        std::process::id()
    );
    for stream in listener.incoming().flatten() {
        let broker = broker.clone();
        let _ = std::thread::Builder::new()
            .name("bench-broker-conn".into())
            .spawn(move || serve(broker, stream));
    }
}
