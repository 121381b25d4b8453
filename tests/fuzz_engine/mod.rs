//! The decoder fuzzer shared by `examples/fuzz_decoders.rs` (the long run)
//! and `tests/fuzz.rs` (100k inputs in `cargo test`). Stable Rust, no
//! external fuzzing engine: a seedable generator (SplitMix64) makes valid
//! encodings and mutates them the way a broken or hostile broker would
//! (lengths, varints, counts, truncations, splices, compressed payloads
//! holding bad records), and feeds them to every decoder a broker reaches:
//!
//! * the response header (v0, v1) followed by the body, for every generated
//!   message in every version (requests too: a broker's bytes and a fake
//!   server's are read by the same code);
//! * record batches: magic 0, 1 and 2 with every codec (the fixtures the
//!   record tests use, and batches built here);
//! * the consumer group protocol's version-prefixed subscription and
//!   assignment bytes.
//!
//! Each input is checked for: no panic, no single allocation larger than
//! the input allows (a counting global allocator), and its decode time.
//! A corpus per target grows with mutated inputs that still decode, so
//! arrays and nested structs get populated over time.

#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use kafka_blocking::protocol::messages::*;
use kafka_blocking::protocol::{Decoder, Message, ResponseHeader};
use kafka_blocking::records::{
    compress, BatchOptions, Compression, ReadOptions, RecordBatchBuilder, RecordBatches,
};
use kafka_blocking::Bytes;

// ---- the counting allocator ------------------------------------------------

struct Counting;

static TRACK: AtomicBool = AtomicBool::new(false);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to `System` unchanged; only records the size
// of the largest request while TRACK is set.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if TRACK.load(Relaxed) {
            LARGEST.fetch_max(layout.size(), Relaxed);
        }
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if TRACK.load(Relaxed) {
            LARGEST.fetch_max(layout.size(), Relaxed);
        }
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if TRACK.load(Relaxed) {
            LARGEST.fetch_max(new_size, Relaxed);
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The decompression cap the fuzzer reads batches with.
pub const CAP: usize = 1 << 20;

/// The largest single allocation an input of `len` bytes may cause.
///
/// Decoders may size a collection from a count only after checking that
/// the bytes left can hold that many elements (at least one byte each), so
/// one allocation is at most `len` elements of the largest decoded struct
/// (well under 256 bytes); a record batch may also decompress to the cap.
pub fn allowed(len: usize, records: bool) -> usize {
    let base = 4096 + len.saturating_mul(256);
    if records {
        base + CAP + 1 + (256 << 10)
    } else {
        base
    }
}

// ---- the generator ---------------------------------------------------------

/// SplitMix64.
pub struct Gen(u64);

impl Gen {
    pub fn new(seed: u64) -> Gen {
        Gen(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    /// Up to `max - 1` random bytes.
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max);
        (0..n).map(|_| self.next() as u8).collect()
    }
}

const INTERESTING32: &[i32] = &[
    -1,
    0,
    1,
    2,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0x8000,
    0xffff,
    0x7fff_ffff,
    i32::MIN,
    1 << 20,
    1 << 24,
    -2,
    100_000_000,
];

fn uvarint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// One structure-aware mutation of `data` (which may be empty).
pub fn mutate(g: &mut Gen, data: &mut Vec<u8>, donor: &[u8]) {
    let len = data.len();
    match g.below(12) {
        // A length/count field (int16/int32/int64, big-endian) set to an
        // interesting value.
        0 | 1 if len >= 4 => {
            let at = g.below(len - 3);
            let v = INTERESTING32[g.below(INTERESTING32.len())];
            data[at..at + 4].copy_from_slice(&v.to_be_bytes());
        }
        2 if len >= 2 => {
            let at = g.below(len - 1);
            let v = INTERESTING32[g.below(INTERESTING32.len())] as i16;
            data[at..at + 2].copy_from_slice(&v.to_be_bytes());
        }
        // A varint (compact length, count, tag) replaced or inserted.
        3 | 4 => {
            let mut v = Vec::new();
            let value = match g.below(6) {
                0 => 0,
                1 => 1,
                2 => 0x80,
                3 => u64::from(u32::MAX),
                4 => u64::MAX,
                _ => g.next() % 100_000,
            };
            uvarint(value, &mut v);
            let at = g.below(len + 1);
            if g.below(2) == 0 {
                let end = (at + v.len()).min(len);
                data.splice(at..end, v);
            } else {
                data.splice(at..at, v);
            }
        }
        // An over-long varint (continuation bits forever).
        5 => {
            let at = g.below(len + 1);
            let n = 1 + g.below(12);
            data.splice(at..at, std::iter::repeat(0xff).take(n));
        }
        // Truncation.
        6 if len > 0 => data.truncate(g.below(len)),
        // A chunk duplicated (grows arrays) or deleted.
        7 if len > 0 => {
            let a = g.below(len);
            let b = (a + 1 + g.below(32)).min(len);
            let chunk = data[a..b].to_vec();
            data.splice(b..b, chunk);
        }
        8 if len > 0 => {
            let a = g.below(len);
            let b = (a + 1 + g.below(16)).min(len);
            data.drain(a..b);
        }
        // A splice from another valid encoding of the same target.
        9 if !donor.is_empty() => {
            let a = g.below(donor.len());
            let b = (a + 1 + g.below(64)).min(donor.len());
            let at = g.below(len + 1);
            data.splice(at..at, donor[a..b].iter().copied());
        }
        // Random bytes flipped.
        _ => {
            if len == 0 {
                data.extend(g.bytes(17));
            } else {
                for _ in 0..1 + g.below(4) {
                    let i = g.below(len);
                    data[i] ^= 1 << g.below(8);
                }
            }
        }
    }
}

// ---- targets ---------------------------------------------------------------

/// One decoder with the versions it reads.
pub struct Target {
    pub name: &'static str,
    pub min: i16,
    pub max: i16,
    /// Decodes a response header (`flexible` selects v1) and the body.
    pub decode: fn(&Bytes, i16) -> bool,
    /// The default value's encoding in a version (a valid seed).
    pub seed: fn(i16) -> Vec<u8>,
    pub flexible_from: i16,
}

fn decode_framed<M: Message>(b: &Bytes, version: i16) -> bool {
    let mut d = Decoder::new(b);
    let hv = if version >= M::FLEXIBLE_FROM { 1 } else { 0 };
    ResponseHeader::decode(&mut d, hv).is_ok()
        && M::decode(&mut d, version).is_ok()
        && d.finish("fuzz").is_ok()
}

fn seed_of<M: Message>(version: i16) -> Vec<u8> {
    let mut out = Vec::new();
    let hv = if version >= M::FLEXIBLE_FROM { 1 } else { 0 };
    let _ = ResponseHeader {
        correlation_id: 7,
        ..Default::default()
    }
    .encode(&mut out, hv);
    let _ = M::default().encode(&mut out, version);
    out
}

macro_rules! targets {
    ($($module:ident :: $ty:ident),* $(,)?) => {
        /// Every generated message.
        pub fn message_targets() -> Vec<Target> {
            vec![$(Target {
                name: stringify!($ty),
                min: <$ty as Message>::MIN_VERSION,
                max: <$ty as Message>::MAX_VERSION,
                decode: decode_framed::<$ty>,
                seed: seed_of::<$ty>,
                flexible_from: <$ty as Message>::FLEXIBLE_FROM,
            }),*]
        }
    };
}

targets! {
    add_offsets_to_txn_request::AddOffsetsToTxnRequest,
    add_offsets_to_txn_response::AddOffsetsToTxnResponse,
    add_partitions_to_txn_request::AddPartitionsToTxnRequest,
    add_partitions_to_txn_response::AddPartitionsToTxnResponse,
    alter_configs_request::AlterConfigsRequest,
    alter_configs_response::AlterConfigsResponse,
    api_versions_request::ApiVersionsRequest,
    api_versions_response::ApiVersionsResponse,
    consumer_group_describe_request::ConsumerGroupDescribeRequest,
    consumer_group_describe_response::ConsumerGroupDescribeResponse,
    consumer_group_heartbeat_request::ConsumerGroupHeartbeatRequest,
    consumer_group_heartbeat_response::ConsumerGroupHeartbeatResponse,
    consumer_protocol_assignment::ConsumerProtocolAssignment,
    consumer_protocol_subscription::ConsumerProtocolSubscription,
    create_acls_request::CreateAclsRequest,
    create_acls_response::CreateAclsResponse,
    create_partitions_request::CreatePartitionsRequest,
    create_partitions_response::CreatePartitionsResponse,
    create_topics_request::CreateTopicsRequest,
    create_topics_response::CreateTopicsResponse,
    delete_acls_request::DeleteAclsRequest,
    delete_acls_response::DeleteAclsResponse,
    delete_groups_request::DeleteGroupsRequest,
    delete_groups_response::DeleteGroupsResponse,
    delete_records_request::DeleteRecordsRequest,
    delete_records_response::DeleteRecordsResponse,
    delete_topics_request::DeleteTopicsRequest,
    delete_topics_response::DeleteTopicsResponse,
    describe_acls_request::DescribeAclsRequest,
    describe_acls_response::DescribeAclsResponse,
    describe_cluster_request::DescribeClusterRequest,
    describe_cluster_response::DescribeClusterResponse,
    describe_configs_request::DescribeConfigsRequest,
    describe_configs_response::DescribeConfigsResponse,
    describe_groups_request::DescribeGroupsRequest,
    describe_groups_response::DescribeGroupsResponse,
    describe_log_dirs_request::DescribeLogDirsRequest,
    describe_log_dirs_response::DescribeLogDirsResponse,
    describe_producers_request::DescribeProducersRequest,
    describe_producers_response::DescribeProducersResponse,
    describe_transactions_request::DescribeTransactionsRequest,
    describe_transactions_response::DescribeTransactionsResponse,
    end_txn_request::EndTxnRequest,
    end_txn_response::EndTxnResponse,
    fetch_request::FetchRequest,
    fetch_response::FetchResponse,
    find_coordinator_request::FindCoordinatorRequest,
    find_coordinator_response::FindCoordinatorResponse,
    heartbeat_request::HeartbeatRequest,
    heartbeat_response::HeartbeatResponse,
    incremental_alter_configs_request::IncrementalAlterConfigsRequest,
    incremental_alter_configs_response::IncrementalAlterConfigsResponse,
    init_producer_id_request::InitProducerIdRequest,
    init_producer_id_response::InitProducerIdResponse,
    join_group_request::JoinGroupRequest,
    join_group_response::JoinGroupResponse,
    leave_group_request::LeaveGroupRequest,
    leave_group_response::LeaveGroupResponse,
    list_groups_request::ListGroupsRequest,
    list_groups_response::ListGroupsResponse,
    list_offsets_request::ListOffsetsRequest,
    list_offsets_response::ListOffsetsResponse,
    list_transactions_request::ListTransactionsRequest,
    list_transactions_response::ListTransactionsResponse,
    metadata_request::MetadataRequest,
    metadata_response::MetadataResponse,
    offset_commit_request::OffsetCommitRequest,
    offset_commit_response::OffsetCommitResponse,
    offset_delete_request::OffsetDeleteRequest,
    offset_delete_response::OffsetDeleteResponse,
    offset_fetch_request::OffsetFetchRequest,
    offset_fetch_response::OffsetFetchResponse,
    offset_for_leader_epoch_request::OffsetForLeaderEpochRequest,
    offset_for_leader_epoch_response::OffsetForLeaderEpochResponse,
    produce_request::ProduceRequest,
    produce_response::ProduceResponse,
    sasl_authenticate_request::SaslAuthenticateRequest,
    sasl_authenticate_response::SaslAuthenticateResponse,
    sasl_handshake_request::SaslHandshakeRequest,
    sasl_handshake_response::SaslHandshakeResponse,
    sync_group_request::SyncGroupRequest,
    sync_group_response::SyncGroupResponse,
    txn_offset_commit_request::TxnOffsetCommitRequest,
    txn_offset_commit_response::TxnOffsetCommitResponse,
}

// ---- record batches and group protocol bytes -------------------------------

const FIXTURES: &[&[u8]] = &[
    include_bytes!("../fixtures/records/v0_gzip.bin"),
    include_bytes!("../fixtures/records/v0_lz4.bin"),
    include_bytes!("../fixtures/records/v0_none.bin"),
    include_bytes!("../fixtures/records/v0_snappy.bin"),
    include_bytes!("../fixtures/records/v1_gzip.bin"),
    include_bytes!("../fixtures/records/v1_gzip_log_append.bin"),
    include_bytes!("../fixtures/records/v1_lz4.bin"),
    include_bytes!("../fixtures/records/v1_none.bin"),
    include_bytes!("../fixtures/records/v1_snappy.bin"),
    include_bytes!("../fixtures/records/v2_gzip.bin"),
    include_bytes!("../fixtures/records/v2_lz4.bin"),
    include_bytes!("../fixtures/records/v2_none.bin"),
    include_bytes!("../fixtures/records/v2_snappy.bin"),
    include_bytes!("../fixtures/records/v2_txn.bin"),
    include_bytes!("../fixtures/records/v2_zstd.bin"),
];

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// A magic 2 batch of 1 to 5 random records.
fn built_batch(g: &mut Gen, codec: Compression) -> Vec<u8> {
    let mut b = RecordBatchBuilder::new();
    for i in 0..1 + g.below(5) {
        let key = g.bytes(12);
        let value = g.bytes(64);
        let hv = g.bytes(6);
        let headers: Vec<(&str, Option<&[u8]>)> = match g.below(3) {
            0 => vec![],
            1 => vec![("h", Some(hv.as_slice()))],
            _ => vec![("a", None), ("bb", Some(hv.as_slice()))],
        };
        let _ = b.append(
            1_700_000_000_000 + i as i64,
            (g.below(4) != 0).then_some(key.as_slice()),
            (g.below(8) != 0).then_some(value.as_slice()),
            headers.iter().copied(),
        );
    }
    b.build(&BatchOptions {
        base_offset: g.below(1000) as i64,
        compression: codec,
        ..BatchOptions::default()
    })
    .map(|b| b.to_vec())
    .unwrap_or_default()
}

/// A magic 2 batch whose (valid) compressed payload holds mutated records:
/// the decompressor succeeds and the record decoder meets the bad bytes.
fn batch_with_bad_payload(g: &mut Gen, donor: &[u8]) -> Vec<u8> {
    let plain = built_batch(g, Compression::None);
    if plain.len() < 61 {
        return plain;
    }
    let mut records = plain[61..].to_vec();
    for _ in 0..1 + g.below(3) {
        mutate(g, &mut records, donor);
    }
    let codec = CODECS[g.below(CODECS.len())];
    let mut payload = Vec::new();
    if compress(codec, &records, &mut payload).is_err() {
        return plain;
    }
    let mut out = plain[..61].to_vec();
    out.extend_from_slice(&payload);
    fix_v2_header(&mut out, Some(codec));
    out
}

/// Sets a magic 2 batch's length, codec bits and CRC to match its bytes, so
/// that a mutation gets past the CRC check.
fn fix_v2_header(b: &mut [u8], codec: Option<Compression>) {
    if b.len() < 61 || b[16] != 2 {
        return;
    }
    let len = (b.len() - 12) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    if let Some(codec) = codec {
        let bits = match codec {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            _ => 4,
        };
        b[22] = (b[22] & !7) | bits;
    }
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
}

fn decode_records(b: &Bytes, check_crcs: bool) -> bool {
    let options = ReadOptions {
        check_crcs,
        max_decompressed_bytes: CAP,
    };
    let mut ok = true;
    for batch in RecordBatches::new(b.clone(), options).take(10_000) {
        match batch {
            Ok(batch) => {
                let _ = batch.control_record();
                for r in batch.records().take(100_000) {
                    match r {
                        Ok(r) => {
                            let _ = r.headers.iter().count();
                        }
                        Err(_) => {
                            ok = false;
                            break;
                        }
                    }
                }
            }
            Err(_) => {
                ok = false;
                break;
            }
        }
    }
    ok
}

/// The group protocol's framing: an int16 version, then the struct read in
/// `min(version, newest known)` (newer versions only add fields), as the
/// consumer's assignor code does.
fn decode_group<M: Message>(b: &Bytes) -> bool {
    let mut d = Decoder::new(b);
    let Ok(version) = d.i16() else { return false };
    if version < 0 {
        return false;
    }
    M::decode(&mut d, version.min(M::MAX_VERSION)).is_ok()
}

fn group_seed<M: Message>(version: i16) -> Vec<u8> {
    let mut out = version.to_be_bytes().to_vec();
    let _ = M::default().encode(&mut out, version);
    out
}

// ---- the driver ------------------------------------------------------------

enum Kind {
    Message(usize, i16),
    Records,
    Subscription,
    Assignment,
}

struct Unit {
    kind: Kind,
    corpus: Vec<Vec<u8>>,
}

/// What a run found.
#[derive(Debug, Default)]
pub struct Report {
    pub inputs: u64,
    pub decoded_ok: u64,
    pub message_inputs: u64,
    pub record_inputs: u64,
    pub group_inputs: u64,
    pub panics: u64,
    /// Inputs whose largest allocation passed [`allowed`].
    pub over_allocations: u64,
    /// The largest single allocation seen and the input length it came with.
    pub largest_allocation: (usize, usize),
    /// The same for message and group inputs only (no decompression).
    pub largest_message_allocation: (usize, usize),
    pub slowest: Duration,
    pub slowest_what: String,
    pub units: usize,
    pub corpus_entries: usize,
    pub elapsed: Duration,
    /// The first failures, for the report (target, version, hex).
    pub failures: Vec<String>,
}

/// Runs `inputs` inputs from `seed`; prints progress every `progress`
/// inputs (0: never).
pub fn run(seed: u64, inputs: u64, progress: u64) -> Report {
    std::panic::set_hook(Box::new(|_| {}));
    let targets = message_targets();
    let mut units = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        for v in t.min..=t.max {
            units.push(Unit {
                kind: Kind::Message(i, v),
                corpus: vec![(t.seed)(v)],
            });
        }
    }
    let message_units = units.len();
    let mut g = Gen::new(seed);
    let mut rec = Vec::new();
    for f in FIXTURES {
        rec.push(f.to_vec());
    }
    for codec in CODECS {
        for _ in 0..3 {
            rec.push(built_batch(&mut g, codec));
        }
    }
    units.push(Unit {
        kind: Kind::Records,
        corpus: rec,
    });
    units.push(Unit {
        kind: Kind::Subscription,
        corpus: (0..=ConsumerProtocolSubscription::MAX_VERSION)
            .map(group_seed::<ConsumerProtocolSubscription>)
            .collect(),
    });
    units.push(Unit {
        kind: Kind::Assignment,
        corpus: (0..=ConsumerProtocolAssignment::MAX_VERSION)
            .map(group_seed::<ConsumerProtocolAssignment>)
            .collect(),
    });

    let watchdog = std::sync::Arc::new(AtomicUsize::new(0));
    let done = std::sync::Arc::new(AtomicBool::new(false));
    {
        let (w, done) = (
            std::sync::Arc::clone(&watchdog),
            std::sync::Arc::clone(&done),
        );
        std::thread::spawn(move || {
            let mut last = usize::MAX;
            let mut still = 0;
            while !done.load(Relaxed) {
                std::thread::sleep(Duration::from_secs(1));
                let now = w.load(Relaxed);
                still = if now == last { still + 1 } else { 0 };
                last = now;
                if still >= 30 {
                    eprintln!("fuzz: input {now} (seed {seed}) has run for 30 s: a hang");
                    std::process::exit(2);
                }
            }
        });
    }

    let mut report = Report {
        units: units.len(),
        ..Report::default()
    };
    let started = Instant::now();
    for n in 0..inputs {
        watchdog.store(n as usize, Relaxed);
        let u = match g.below(10) {
            0..=5 => g.below(message_units),
            6..=8 => message_units,
            _ => message_units + 1 + g.below(2),
        };
        let unit = &units[u];
        let pick = g.below(unit.corpus.len());
        let donor = &unit.corpus[g.below(unit.corpus.len())];
        let mut data = unit.corpus[pick].clone();
        let records = matches!(unit.kind, Kind::Records);
        if records && g.below(5) == 0 {
            data = batch_with_bad_payload(&mut g, donor);
        } else {
            for _ in 0..1 + g.below(4) {
                mutate(&mut g, &mut data, donor);
            }
            if records && g.below(2) == 0 {
                fix_v2_header(&mut data, None);
            }
        }
        let check_crcs = g.below(2) == 0;
        let bytes = Bytes::from(data);
        let what = match unit.kind {
            Kind::Message(i, v) => format!("{} v{v}", targets[i].name),
            Kind::Records => "record batches".to_owned(),
            Kind::Subscription => "subscription".to_owned(),
            Kind::Assignment => "assignment".to_owned(),
        };
        match unit.kind {
            Kind::Message(..) => report.message_inputs += 1,
            Kind::Records => report.record_inputs += 1,
            _ => report.group_inputs += 1,
        }
        LARGEST.store(0, Relaxed);
        let t0 = Instant::now();
        TRACK.store(true, Relaxed);
        let result = catch_unwind(AssertUnwindSafe(|| match unit.kind {
            Kind::Message(i, v) => (targets[i].decode)(&bytes, v),
            Kind::Records => decode_records(&bytes, check_crcs),
            Kind::Subscription => decode_group::<ConsumerProtocolSubscription>(&bytes),
            Kind::Assignment => decode_group::<ConsumerProtocolAssignment>(&bytes),
        }));
        TRACK.store(false, Relaxed);
        let took = t0.elapsed();
        let largest = LARGEST.load(Relaxed);
        if took > report.slowest {
            report.slowest = took;
            report.slowest_what = format!("{what} ({} bytes)", bytes.len());
        }
        if largest > report.largest_allocation.0 {
            report.largest_allocation = (largest, bytes.len());
        }
        if !records && largest > report.largest_message_allocation.0 {
            report.largest_message_allocation = (largest, bytes.len());
        }
        let mut failed = None;
        match result {
            Err(_) => {
                report.panics += 1;
                failed = Some("panic");
            }
            Ok(ok) => {
                if ok {
                    report.decoded_ok += 1;
                    if unit.corpus.len() < 32 && bytes.len() < 64 << 10 {
                        units[u].corpus.push(bytes.to_vec());
                    }
                }
            }
        }
        if largest > allowed(bytes.len(), records) {
            report.over_allocations += 1;
            failed = Some("allocation");
        }
        if let Some(why) = failed {
            if report.failures.len() < 10 {
                let hex: String = bytes
                    .as_slice()
                    .iter()
                    .take(256)
                    .map(|b| format!("{b:02x}"))
                    .collect();
                report.failures.push(format!(
                    "input {n}: {why} ({largest} bytes allocated) in {what}: {hex}"
                ));
            }
        }
        report.inputs += 1;
        if progress > 0 && (n + 1) % progress == 0 {
            eprintln!(
                "fuzz: {} inputs, {} panics, {} over-allocations, slowest {:?}, {:.0}/s",
                n + 1,
                report.panics,
                report.over_allocations,
                report.slowest,
                (n + 1) as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    done.store(true, Relaxed);
    let _ = std::panic::take_hook();
    report.elapsed = started.elapsed();
    report.corpus_entries = units.iter().map(|u| u.corpus.len()).sum();
    report
}
