//! KIP-227 incremental fetch sessions against a fake broker that keeps real
//! session state (ids, epochs, the partitions of each session) and injects
//! session errors: the consumer opens a session with a full request, goes
//! on incrementally, and after FETCH_SESSION_ID_NOT_FOUND,
//! INVALID_FETCH_SESSION_EPOCH or an answer for another session starts over
//! with a full request, without losing or repeating a record.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_blocking::consumer::Consumer;
use kafka_blocking::protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_blocking::protocol::messages::{FetchRequest, FetchResponse};
use kafka_blocking::protocol::{ApiKey, ErrorCode, Uuid};

use crate::faults::{
    fake_api_versions, fake_metadata, fake_records, FakeCluster, FakeReq, CONSUMER_APIS,
};

const TOPIC: &str = "kip227-topic";
/// Records per partition.
const LOG_END: i64 = 30;
/// Records per partition and answer, so the log takes many fetches.
const PER_ANSWER: i64 = 2;

/// What the fake does with the n-th Fetch (0-based).
#[derive(Clone, Copy, PartialEq, Debug)]
enum Fault {
    None,
    /// Top-level error; the broker forgets the session.
    Error(ErrorCode),
    /// A normal answer carrying another session's id.
    OtherSessionId,
}

/// One Fetch as the fake saw it.
#[derive(Debug, Clone)]
struct Seen {
    session_id: i32,
    epoch: i32,
    listed: Vec<i32>,
}

#[derive(Default)]
struct Broker {
    next_id: i32,
    /// The open session: id, expected epoch, partition → fetch offset.
    session: Option<(i32, i32, BTreeMap<i32, i64>)>,
    seen: Vec<Seen>,
}

fn answer(b: &mut Broker, r: FetchRequest, faults: &[(usize, Fault)]) -> FetchResponse {
    let n = b.seen.len();
    b.seen.push(Seen {
        session_id: r.session_id,
        epoch: r.session_epoch,
        listed: r
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.partition))
            .collect(),
    });
    let fault = faults
        .iter()
        .find(|(i, _)| *i == n)
        .map_or(Fault::None, |f| f.1);
    let error = |code: ErrorCode| FetchResponse {
        error_code: code.0,
        ..Default::default()
    };
    if let Fault::Error(code) = fault {
        b.session = None;
        return error(code);
    }
    let listed = r
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (p.partition, p.fetch_offset)));
    let (id, parts) = if r.session_id == 0 {
        // A full request opens a new session.
        b.next_id += 1;
        let parts: BTreeMap<i32, i64> = listed.collect();
        b.session = Some((b.next_id, 1, parts.clone()));
        (b.next_id, parts)
    } else {
        let Some((id, epoch, parts)) = b.session.as_mut() else {
            return error(ErrorCode::FETCH_SESSION_ID_NOT_FOUND);
        };
        if *id != r.session_id {
            return error(ErrorCode::FETCH_SESSION_ID_NOT_FOUND);
        }
        if *epoch != r.session_epoch {
            return error(ErrorCode::INVALID_FETCH_SESSION_EPOCH);
        }
        *epoch += 1;
        parts.extend(listed);
        for t in &r.forgotten_topics_data {
            for p in &t.partitions {
                parts.remove(p);
            }
        }
        (*id, parts.clone())
    };
    // Every session partition with records left (an incremental answer
    // lists only those with news).
    let partitions: Vec<PartitionData> = parts
        .iter()
        .filter(|(_, offset)| **offset < LOG_END)
        .map(|(p, offset)| PartitionData {
            partition_index: *p,
            high_watermark: LOG_END,
            records: Some(fake_records(
                *offset,
                (LOG_END - offset).min(PER_ANSWER) as usize,
            )),
            ..Default::default()
        })
        .collect();
    if partitions.is_empty() {
        // Nothing new: a real broker waits max_wait_ms.
        std::thread::sleep(Duration::from_millis(20));
    }
    FetchResponse {
        session_id: if fault == Fault::OtherSessionId {
            id + 1000
        } else {
            id
        },
        responses: vec![FetchableTopicResponse {
            topic: TOPIC.into(),
            partitions,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn session_broker(faults: Vec<(usize, Fault)>) -> (FakeCluster, Arc<Mutex<Broker>>) {
    let state: Arc<Mutex<Broker>> = Arc::new(Mutex::new(Broker {
        next_id: 100,
        ..Default::default()
    }));
    let st = Arc::clone(&state);
    let cluster = FakeCluster::start(1, move |req: &FakeReq| match req.key {
        ApiKey::API_VERSIONS => fake_api_versions(req, CONSUMER_APIS),
        ApiKey::METADATA => fake_metadata(req, &[(TOPIC, Uuid([7; 16]), 2, 1)]),
        ApiKey::FETCH => {
            req.answer::<FetchRequest>(|r| answer(&mut st.lock().unwrap(), r, &faults))
        }
        _ => None,
    });
    (cluster, state)
}

/// Reads both partitions to the end (bounded in time and count); returns
/// the offsets per partition in the order returned.
fn read_all(cluster: &FakeCluster) -> HashMap<i32, Vec<i64>> {
    let mut c = Consumer::builder()
        .bootstrap_servers(cluster.bootstrap())
        .fetch_max_wait_ms(50)
        .retry_backoff_ms(10)
        .build()
        .expect("consumer");
    c.assign([(TOPIC, 0), (TOPIC, 1)]).expect("assign");
    c.seek((TOPIC, 0), 0).expect("seek");
    c.seek((TOPIC, 1), 0).expect("seek");
    let mut got: HashMap<i32, Vec<i64>> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    for _ in 0..1_000 {
        if got.values().map(Vec::len).sum::<usize>() >= 2 * LOG_END as usize {
            break;
        }
        assert!(Instant::now() < deadline, "only {got:?} within 20 s");
        for m in c.poll(Duration::from_millis(100)).expect("poll") {
            assert_eq!(
                m.value_as::<&str>().expect("utf-8"),
                format!("v{}", m.offset())
            );
            got.entry(m.partition()).or_default().push(m.offset());
        }
    }
    got
}

#[test]
fn a_full_request_opens_the_session_then_requests_are_incremental() {
    let (cluster, state) = session_broker(Vec::new());
    let got = read_all(&cluster);
    for p in 0..2 {
        assert_eq!(got[&p], (0..LOG_END).collect::<Vec<_>>(), "partition {p}");
    }
    let seen = state.lock().unwrap().seen.clone();
    assert_eq!((seen[0].session_id, seen[0].epoch), (0, 0), "{seen:?}");
    assert_eq!(seen[0].listed.len(), 2, "a full request lists everything");
    for (i, s) in seen.iter().enumerate().skip(1) {
        assert_eq!((s.session_id, s.epoch), (101, i as i32), "{seen:?}");
    }
}

#[test]
fn session_errors_and_a_foreign_session_id_restart_with_a_full_request() {
    let faults = vec![
        (3, Fault::Error(ErrorCode::FETCH_SESSION_ID_NOT_FOUND)),
        (7, Fault::Error(ErrorCode::INVALID_FETCH_SESSION_EPOCH)),
        (10, Fault::OtherSessionId),
    ];
    let (cluster, state) = session_broker(faults);
    let got = read_all(&cluster);
    // Nothing lost, nothing twice, in order.
    for p in 0..2 {
        assert_eq!(got[&p], (0..LOG_END).collect::<Vec<_>>(), "partition {p}");
    }
    let seen = state.lock().unwrap().seen.clone();
    let kinds: Vec<(i32, i32)> = seen.iter().map(|s| (s.session_id, s.epoch)).collect();
    assert!(kinds.len() > 12, "{kinds:?}");
    assert_eq!(kinds[0], (0, 0), "{kinds:?}");
    assert_eq!(kinds[1..3], [(101, 1), (101, 2)], "{kinds:?}");
    // After each fault, a full request opening a new session.
    for (after, session) in [(4, 102), (8, 103), (11, 104)] {
        assert_eq!(kinds[after], (0, 0), "request {after}: {kinds:?}");
        assert_eq!(seen[after].listed.len(), 2, "{seen:?}");
        assert_eq!(kinds[after + 1], (session, 1), "{kinds:?}");
    }
    // No other request was refused: every incremental one matched.
    assert_eq!(
        kinds.iter().filter(|k| k.0 == 0).count(),
        4,
        "full requests only where needed: {kinds:?}"
    );
}
