//! Tests of the generated messages (hand-written; the generator leaves this
//! file alone).
//!
//! Every generated struct implements [`Arbitrary`]: a random value holding
//! only what a given version can carry. For every top-level type and every
//! version, proptest checks encode → decode → equal → re-encode → same
//! bytes, that every strict prefix of an encoding fails to decode, and that
//! random and corrupted bytes never make a decoder panic.

use proptest::prelude::*;

use super::*;
use crate::protocol::{Decoder, Message, RawTaggedField, Request, Uuid};
use crate::{Bytes, ErrorKind};

/// A small deterministic generator (SplitMix64) seeded by proptest.
pub(crate) struct Gen(u64);

impl Gen {
    pub(crate) fn new(seed: u64) -> Gen {
        Gen(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Mostly edge values (0, -1, MIN, MAX), otherwise random bits.
    fn int(&mut self) -> u64 {
        match self.below(8) {
            0 => 0,
            1 => u64::MAX,
            2 => 1 << 63,
            3 => (1 << 63) - 1,
            _ => self.next(),
        }
    }

    pub(crate) fn bool(&mut self) -> bool {
        self.below(2) == 1
    }
    pub(crate) fn i8(&mut self) -> i8 {
        self.int() as i8
    }
    pub(crate) fn i16(&mut self) -> i16 {
        self.int() as i16
    }
    // No generated schema has this type yet; the generator supports it.
    #[allow(dead_code)]
    pub(crate) fn u16(&mut self) -> u16 {
        self.int() as u16
    }
    pub(crate) fn i32(&mut self) -> i32 {
        self.int() as i32
    }
    // No generated schema has this type yet; the generator supports it.
    #[allow(dead_code)]
    pub(crate) fn u32(&mut self) -> u32 {
        self.int() as u32
    }
    pub(crate) fn i64(&mut self) -> i64 {
        self.int() as i64
    }
    // No generated schema has this type yet; the generator supports it.
    #[allow(dead_code)]
    pub(crate) fn f64(&mut self) -> f64 {
        // Finite, so that values compare equal to themselves.
        (self.int() as i64) as f64 / 3.0
    }
    pub(crate) fn uuid(&mut self) -> Uuid {
        let mut u = [0u8; 16];
        u[..8].copy_from_slice(&self.next().to_be_bytes());
        u[8..].copy_from_slice(&self.next().to_be_bytes());
        Uuid(u)
    }

    /// 0 to 6 characters, some of them multi-byte.
    pub(crate) fn string(&mut self) -> String {
        const CHARS: &[char] = &['a', 'z', '0', '-', '.', '_', ' ', 'é', '€', '🦀'];
        let n = self.below(7);
        (0..n)
            .map(|_| CHARS[self.below(CHARS.len() as u64) as usize])
            .collect()
    }

    /// 0 to 8 random bytes.
    pub(crate) fn bytes(&mut self) -> Bytes {
        let n = self.below(9);
        Bytes::from((0..n).map(|_| self.next() as u8).collect::<Vec<u8>>())
    }

    /// 0 to 2 elements (nested arrays multiply).
    pub(crate) fn vec<T>(&mut self, mut element: impl FnMut(&mut Gen) -> T) -> Vec<T> {
        let n = self.below(3);
        (0..n).map(|_| element(self)).collect()
    }

    /// `None` one time in four when `nullable`.
    pub(crate) fn option<T>(
        &mut self,
        nullable: bool,
        value: impl FnOnce(&mut Gen) -> T,
    ) -> Option<T> {
        if nullable && self.below(4) == 0 {
            None
        } else {
            Some(value(self))
        }
    }

    /// 0 to 2 unknown tagged fields with tags from `first` up, ascending.
    pub(crate) fn unknown_tagged_fields(&mut self, first: u32) -> Vec<RawTaggedField> {
        let n = self.below(3);
        let mut tag = first;
        let mut out = Vec::new();
        for _ in 0..n {
            tag += self.below(200) as u32;
            out.push(RawTaggedField {
                tag,
                data: self.bytes(),
            });
            tag += 1;
        }
        out
    }
}

/// A random value of a generated struct for one version.
pub(crate) trait Arbitrary: Sized {
    /// Fills the fields `version` carries; the others keep their defaults.
    fn arbitrary(g: &mut Gen, version: i16) -> Self;
}

fn encode<M: Message>(m: &M, version: i16) -> Vec<u8> {
    let mut out = Vec::new();
    m.encode(&mut out, version)
        .unwrap_or_else(|e| panic!("encoding {m:?} v{version}: {e}"));
    out
}

fn decode<M: Message>(bytes: &[u8], version: i16) -> crate::Result<M> {
    let b = Bytes::copy_from_slice(bytes);
    let mut d = Decoder::new(&b);
    let m = M::decode(&mut d, version)?;
    d.finish("message")?;
    Ok(m)
}

/// What the driver needs of one message type, with the type erased so
/// that only these two small functions are compiled per type (a generic
/// driver per type took most of the test build time).
struct Case {
    min: i16,
    max: i16,
    /// Random value for (seed, version): encode, decode, compare, re-encode.
    /// Returns the encoding, or what went wrong.
    round_trip: fn(u64, i16) -> Result<Vec<u8>, String>,
    /// Whether the bytes decode (as a whole message) in the version.
    decodes: fn(&[u8], i16) -> bool,
}

impl Case {
    fn of<M: Message + Arbitrary>() -> Case {
        Case {
            min: M::MIN_VERSION,
            max: M::MAX_VERSION,
            round_trip: round_trip::<M>,
            decodes: |bytes, version| decode::<M>(bytes, version).is_ok(),
        }
    }
}

fn round_trip<M: Message + Arbitrary>(seed: u64, version: i16) -> Result<Vec<u8>, String> {
    let m = M::arbitrary(&mut Gen::new(seed), version);
    let bytes = encode(&m, version);
    let back: M = decode(&bytes, version).map_err(|e| {
        format!(
            "decoding failed: {e}
{m:?}
{bytes:02x?}"
        )
    })?;
    if back != m {
        return Err(format!(
            "decoded a different value:
{m:?}
{back:?}"
        ));
    }
    if encode(&back, version) != bytes {
        return Err(format!(
            "re-encoding differs:
{m:?}"
        ));
    }
    Ok(bytes)
}

/// Round trip, truncations and corruption for every version.
fn check(case: &Case, seed: u64) -> Result<(), TestCaseError> {
    for version in case.min..=case.max {
        let seed = seed ^ ((version as u64) << 48);
        let bytes = (case.round_trip)(seed, version)
            .map_err(|e| TestCaseError::fail(format!("v{version}: {e}")))?;

        // A strict prefix can never be a whole message: decoding reads the
        // same fields as before and runs out of bytes.
        for cut in 0..bytes.len() {
            prop_assert!(
                !(case.decodes)(&bytes[..cut], version),
                "v{} decoded a {}-byte prefix of {} bytes",
                version,
                cut,
                bytes.len()
            );
        }
        // Corrupted and random input: any result but a panic.
        let mut g = Gen::new(!seed);
        if !bytes.is_empty() {
            let mut bad = bytes.clone();
            for _ in 0..1 + g.below(4) {
                let i = g.below(bad.len() as u64) as usize;
                bad[i] = g.next() as u8;
            }
            let _ = (case.decodes)(&bad, version);
        }
        let noise: Vec<u8> = (0..g.below(48)).map(|_| g.next() as u8).collect();
        let _ = (case.decodes)(&noise, version);
    }
    Ok(())
}

fn run(case: Case) {
    let config = ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    if let Err(e) = runner.run(&any::<u64>(), |seed| check(&case, seed)) {
        panic!("{e}");
    }
}

macro_rules! round_trip_tests {
    ($($module:ident :: $ty:ident),* $(,)?) => {
        /// One proptest per generated top-level type, over all its versions.
        mod round_trip {
            use super::*;

            $(
                #[test]
                fn $module() {
                    run(Case::of::<$ty>());
                }
            )*
        }
    };
}

for_each_message!(round_trip_tests);

fn bytes_of<M: Message>(m: &M, version: i16) -> Vec<u8> {
    encode(m, version)
}

// --- Known bytes, checked by hand against the protocol guide. ---

#[test]
fn api_versions_request_v3_bytes() {
    let req = ApiVersionsRequest {
        client_software_name: "kafka-blocking".into(),
        client_software_version: "0.1.0".into(),
        ..Default::default()
    };
    // COMPACT_STRING = uvarint(len + 1) + bytes; then an empty tagged section.
    let mut want = vec![15];
    want.extend_from_slice(b"kafka-blocking");
    want.push(6);
    want.extend_from_slice(b"0.1.0");
    want.push(0);
    assert_eq!(bytes_of(&req, 3), want);
    assert_eq!(decode::<ApiVersionsRequest>(&want, 3).unwrap(), req);
    // v0-v2 have no body; the software name is ignorable and dropped.
    assert_eq!(bytes_of(&req, 2), Vec::<u8>::new());

    // The whole frame: size, header v2 (key 18, version 3, correlation id 7,
    // client id "c" as a classic nullable string, no tags), body.
    let mut frame = Vec::new();
    crate::protocol::encode_request(&mut frame, &req, 3, 7, Some("c")).unwrap();
    let size = 12 + want.len() as u8;
    let mut expect = vec![0, 0, 0, size, 0, 18, 0, 3, 0, 0, 0, 7];
    expect.extend_from_slice(&[0, 1, b'c', 0]);
    expect.extend_from_slice(&want);
    assert_eq!(frame, expect);
}

#[test]
fn metadata_request_null_topics() {
    let all = MetadataRequest {
        topics: None,
        ..Default::default()
    };
    // v1: a null ARRAY is int32 -1.
    assert_eq!(bytes_of(&all, 1), [0xff, 0xff, 0xff, 0xff]);
    // v0 cannot carry null ("all topics" is an empty array there).
    let err = all.encode(&mut Vec::new(), 0).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedVersion);
    assert!(err.to_string().contains("topics"), "{err}");
    // v4 adds AllowAutoTopicCreation (default true).
    assert_eq!(bytes_of(&all, 4), [0xff, 0xff, 0xff, 0xff, 1]);
    // v9 is flexible: a null COMPACT_ARRAY is uvarint 0; then the two
    // authorized-operations booleans and an empty tagged section.
    assert_eq!(bytes_of(&all, 9), [0, 1, 0, 0, 0]);
    assert_eq!(decode::<MetadataRequest>(&[0, 1, 0, 0, 0], 9).unwrap(), all);
}

#[test]
fn heartbeat_request_v4_flexible_bytes() {
    let req = HeartbeatRequest {
        group_id: "g".into(),
        generation_id: 5,
        member_id: "m".into(),
        group_instance_id: None,
        ..Default::default()
    };
    let want = [2, b'g', 0, 0, 0, 5, 2, b'm', 0, 0];
    assert_eq!(bytes_of(&req, 4), want);
    assert_eq!(decode::<HeartbeatRequest>(&want, 4).unwrap(), req);
    // v3 is the last classic version: int16-length strings, -1 = null.
    assert_eq!(
        bytes_of(&req, 3),
        [0, 1, b'g', 0, 0, 0, 5, 0, 1, b'm', 0xff, 0xff]
    );
}

#[test]
fn metadata_response_v0_decodes() {
    #[rustfmt::skip]
    let raw = [
        0, 0, 0, 1,                     // brokers: 1
        0, 0, 0, 1, 0, 1, b'h', 0, 0, 0x23, 0x84, // node 1, "h", 9092
        0, 0, 0, 1,                     // topics: 1
        0, 0, 0, 1, b't',               // error 0, name "t"
        0, 0, 0, 1,                     // partitions: 1
        0, 0, 0, 0, 0, 0, 0, 0, 0, 1,   // error 0, index 0, leader 1
        0, 0, 0, 1, 0, 0, 0, 1,         // replicas [1]
        0, 0, 0, 1, 0, 0, 0, 1,         // isr [1]
    ];
    let m: MetadataResponse = decode(&raw, 0).unwrap();
    assert_eq!(m.brokers.len(), 1);
    assert_eq!(m.brokers[0].node_id, 1);
    assert_eq!(m.brokers[0].host, "h");
    assert_eq!(m.brokers[0].port, 9092);
    assert_eq!(m.brokers[0].rack, None);
    // Fields v0 lacks read as their schema defaults.
    assert_eq!(m.controller_id, -1);
    assert_eq!(m.cluster_id, None);
    let t = &m.topics[0];
    assert_eq!(t.name.as_deref(), Some("t"));
    let p = &t.partitions[0];
    assert_eq!((p.partition_index, p.leader_id, p.leader_epoch), (0, 1, -1));
    assert_eq!(p.replica_nodes, [1]);
    assert_eq!(p.isr_nodes, [1]);
    assert_eq!(bytes_of(&m, 0), raw);
}

#[test]
fn api_versions_response_v3_tagged_fields() {
    #[rustfmt::skip]
    let raw = [
        0, 0,                   // error code
        2, 0, 18, 0, 0, 0, 4, 0, // api_keys: [ApiVersions 0..=4], no tags
        0, 0, 0, 0,             // throttle time
        2,                      // two tagged fields:
        1, 8, 0, 0, 0, 0, 0, 0, 0, 5, // tag 1 FinalizedFeaturesEpoch = 5
        9, 2, 0xab, 0xcd,       // tag 9, unknown to this client
    ];
    let m: ApiVersionsResponse = decode(&raw, 3).unwrap();
    assert_eq!(m.api_keys.len(), 1);
    assert_eq!((m.api_keys[0].api_key, m.api_keys[0].max_version), (18, 4));
    assert_eq!(m.finalized_features_epoch, 5);
    assert!(m.supported_features.is_empty());
    assert_eq!(m.unknown_tagged_fields.len(), 1);
    assert_eq!(m.unknown_tagged_fields[0].tag, 9);
    assert_eq!(&*m.unknown_tagged_fields[0].data, &[0xab, 0xcd]);
    // Tags at their default are not written; unknown ones go back in order.
    assert_eq!(bytes_of(&m, 3), raw);
}

// --- The encoding rules. ---

#[test]
fn ignorable_fields_are_dropped_and_others_refused() {
    // ThrottleTimeMs (v3+) is ignorable: silently dropped in v0.
    let m = MetadataResponse {
        throttle_time_ms: 100,
        ..Default::default()
    };
    assert_eq!(bytes_of(&m, 0), [0, 0, 0, 0, 0, 0, 0, 0]);

    // ProduceRequest.TransactionalId (v3+) is not: a v2 request with it set
    // would lose the transaction.
    let p = ProduceRequest {
        transactional_id: Some("tx".into()),
        ..Default::default()
    };
    let err = p.encode(&mut Vec::new(), 2).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedVersion);
    let msg = err.to_string();
    assert!(
        msg.contains("ProduceRequest") && msg.contains("transactional_id") && msg.contains('2'),
        "{msg}"
    );
    p.encode(&mut Vec::new(), 3).unwrap();

    // FetchRequest.ReplicaState is a non-ignorable tagged field from v15.
    let f = FetchRequest {
        replica_state: fetch_request::ReplicaState {
            replica_id: 3,
            ..Default::default()
        },
        ..Default::default()
    };
    assert!(f.encode(&mut Vec::new(), 14).is_err());
    f.encode(&mut Vec::new(), 15).unwrap();
}

#[test]
fn versions_out_of_range_and_stray_tags_fail() {
    let m = MetadataRequest::default();
    let err = m.encode(&mut Vec::new(), 13).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedVersion);
    let err = decode::<MetadataRequest>(&[], -1).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol);

    // Unknown tagged fields cannot go into a non-flexible version.
    let m = MetadataRequest {
        unknown_tagged_fields: vec![RawTaggedField {
            tag: 5,
            data: Bytes::new(),
        }],
        ..Default::default()
    };
    assert!(m.encode(&mut Vec::new(), 8).is_err());
    m.encode(&mut Vec::new(), 9).unwrap();

    // ProduceResponse tag 0 (NodeEndpoints) is only valid from v10; v9 is
    // flexible but must refuse it, as the Java client does.
    let raw = [1, 0, 0, 0, 0, 1, 0, 1, 0];
    assert!(decode::<ProduceResponse>(&raw, 9).is_err());
}

#[test]
fn nullable_struct_field() {
    use consumer_group_heartbeat_response::{Assignment, TopicPartitions};
    let mut m = ConsumerGroupHeartbeatResponse::default();
    assert_eq!(m.assignment, None);
    let none = bytes_of(&m, 0);
    assert_eq!(
        *none.iter().rev().nth(1).unwrap(),
        0xff,
        "int8 -1 marks null"
    );
    m.assignment = Some(Assignment {
        topic_partitions: vec![TopicPartitions {
            topic_id: Uuid([1; 16]),
            partitions: vec![0, 7],
            ..Default::default()
        }],
        ..Default::default()
    });
    let some = bytes_of(&m, 0);
    assert_eq!(
        decode::<ConsumerGroupHeartbeatResponse>(&some, 0).unwrap(),
        m
    );
}

#[test]
fn decoders_do_not_trust_lengths() {
    // An array claiming i32::MAX elements over a few bytes fails without
    // reserving memory for them.
    let raw = [0x7f, 0xff, 0xff, 0xff, 0, 0];
    assert!(decode::<MetadataResponse>(&raw, 0).is_err());
    assert!(decode::<FetchResponse>(&[0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff], 1).is_err());
    // The same in compact form (uvarint 2^32 - 1).
    assert!(decode::<MetadataRequest>(&[0xff, 0xff, 0xff, 0xff, 0x0f], 12).is_err());
}

#[test]
fn api_keys_and_supported_versions() {
    assert_eq!(ApiKey::FETCH, ApiKey(1));
    assert_eq!(ApiKey::FETCH.name(), "Fetch");
    assert_eq!(
        ApiKey::OFFSET_FOR_LEADER_EPOCH.name(),
        "OffsetForLeaderEpoch"
    );
    assert_eq!(ApiKey(9999).name(), "UNKNOWN");
    assert_eq!(format!("{:?}", ApiKey::PRODUCE), "Produce(0)");
    assert_eq!(<FetchRequest as Request>::API_KEY, ApiKey::FETCH);
    assert!(SUPPORTED_APIS.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(SUPPORTED_APIS.len(), 42);
    let fetch = SUPPORTED_APIS
        .iter()
        .find(|a| a.0 == ApiKey::FETCH)
        .unwrap();
    assert_eq!(
        (fetch.1, fetch.2),
        (FetchRequest::MIN_VERSION, FetchRequest::MAX_VERSION)
    );
    // EndTxn v5 is marked unstable in the schema folder but stable since
    // Kafka 4.0 (tests/codegen.rs, STABLE_SINCE_4_0); Produce v12 and
    // TxnOffsetCommit v5 are 4.0's (SAME_BODY_UP_TO).
    let max = |key: ApiKey| SUPPORTED_APIS.iter().find(|a| a.0 == key).unwrap().2;
    assert_eq!(max(ApiKey::END_TXN), 5);
    assert_eq!(max(ApiKey::END_TXN), EndTxnRequest::MAX_VERSION);
    assert_eq!(max(ApiKey::PRODUCE), 12);
    assert_eq!(max(ApiKey::TXN_OFFSET_COMMIT), 5);
    // Response header v0 for ApiVersions, v1 for other flexible versions.
    assert_eq!(ApiVersionsRequest::response_header_version(3), 0);
    assert_eq!(MetadataRequest::response_header_version(9), 1);
    assert_eq!(MetadataRequest::request_header_version(9), 2);
    assert_eq!(MetadataRequest::request_header_version(8), 1);
}

#[test]
fn defaults_follow_the_schema() {
    let f = FetchRequest::default();
    assert_eq!(f.replica_id, -1);
    assert_eq!(f.max_bytes, i32::MAX);
    assert_eq!(f.session_epoch, -1);
    assert_eq!(f.cluster_id, None);
    assert_eq!(f.replica_state.replica_epoch, -1);
    assert_eq!(MetadataResponse::default().topics, vec![]);
    assert_eq!(
        metadata_response::MetadataResponseTopic::default().topic_authorized_operations,
        i32::MIN
    );
    assert!(MetadataRequest::default().allow_auto_topic_creation);
    let p = fetch_request::FetchPartition::default();
    assert_eq!(
        (
            p.current_leader_epoch,
            p.last_fetched_epoch,
            p.log_start_offset
        ),
        (-1, -1, -1)
    );
}
