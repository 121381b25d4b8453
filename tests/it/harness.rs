//! The shared broker for this test binary, and helpers.
//!
//! One broker per test process (Tansu on a free port, or
//! `KAFKA_BOOTSTRAP_SERVERS`). It lives in a static, so its Drop never runs;
//! the testkit's watchdog kills it (by PID) within a second of this process
//! exiting.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use kafka_blocking::protocol::messages::create_topics_request::CreatableTopic;
use kafka_blocking::protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_blocking::protocol::ErrorCode;
use kafka_blocking::testkit::LocalBroker;
use kafka_blocking::{Client, ClientConfig};

static BROKER: OnceLock<LocalBroker> = OnceLock::new();

/// The broker's bootstrap address, starting it on first use.
pub fn bootstrap() -> String {
    BROKER
        .get_or_init(|| LocalBroker::start().expect("start the local test broker"))
        .bootstrap_servers()
        .to_owned()
}

/// A topic name no other test (or earlier run) uses.
pub fn unique_topic(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() % 1_000_000_000);
    format!("{prefix}-{}-{t}-{n}", std::process::id())
}

/// A raw client for the shared broker.
pub fn client() -> Client {
    Client::new(
        ClientConfig::builder()
            .bootstrap_servers(bootstrap())
            .request_timeout_ms(15_000)
            .build()
            .expect("config"),
    )
    .expect("client")
}

/// Creates `name` with `partitions` partitions (replication factor 1) and
/// waits until every partition has a leader.
pub fn create_topic(client: &Client, name: &str, partitions: i32) {
    let response: CreateTopicsResponse = client
        .send_any(&CreateTopicsRequest {
            topics: vec![CreatableTopic {
                name: name.to_owned(),
                num_partitions: partitions,
                replication_factor: 1,
                ..Default::default()
            }],
            timeout_ms: 10_000,
            ..Default::default()
        })
        .expect("CreateTopics");
    let code = ErrorCode(response.topics[0].error_code);
    assert!(
        code.is_ok() || code == ErrorCode::TOPIC_ALREADY_EXISTS,
        "creating {name}: {code:?} {:?}",
        response.topics[0].error_message
    );
    for _ in 0..100 {
        let md = client.refresh_metadata(Some(&[name])).expect("metadata");
        if let Some(t) = md.topic(name) {
            if t.error.is_ok()
                && t.partitions.len() == partitions as usize
                && t.partitions.iter().all(|p| p.leader >= 0)
            {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("topic {name} never got leaders for {partitions} partitions");
}

/// Sends one record batch to partition 0 of `topic` on `leader` with a raw
/// Produce request (acks=all); returns the partition's answer.
#[allow(dead_code)]
pub fn produce_batch(
    client: &Client,
    leader: i32,
    topic: &str,
    batch: kafka_blocking::Bytes,
) -> kafka_blocking::protocol::messages::produce_response::PartitionProduceResponse {
    use kafka_blocking::protocol::messages::produce_request::{
        PartitionProduceData, TopicProduceData,
    };
    use kafka_blocking::protocol::messages::ProduceRequest;
    let mut response = client
        .send_to(
            leader,
            &ProduceRequest {
                acks: -1,
                timeout_ms: 10_000,
                topic_data: vec![TopicProduceData {
                    name: topic.to_owned(),
                    partition_data: vec![PartitionProduceData {
                        index: 0,
                        records: Some(batch),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            },
        )
        .expect("produce");
    response.responses.remove(0).partition_responses.remove(0)
}

/// One record read back with raw fetches.
#[allow(dead_code)]
#[derive(Debug, Clone)]
pub struct Fetched {
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Reads every partition of `topic` from offset 0 up to its high watermark
/// with raw Fetch requests (independent of the consumer under test).
#[allow(dead_code)]
pub fn fetch_all(client: &Client, topic: &str) -> Vec<Fetched> {
    let mut out = Vec::new();
    fetch_batches(client, topic, |partition, batch| {
        if batch.is_control() {
            return;
        }
        for r in batch.records() {
            let r = r.expect("record");
            out.push(Fetched {
                partition,
                offset: r.offset,
                timestamp: r.timestamp,
                key: r.key.map(|k| k.to_vec()),
                value: r.value.map(|v| v.to_vec()),
                headers: r
                    .headers
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.map(|v| v.to_vec())))
                    .collect(),
            });
        }
    });
    out
}

/// Hands every record batch of `topic` (control batches included, read
/// uncommitted) to `f` with its partition, in offset order per partition,
/// from offset 0 up to the high watermark, with raw Fetch requests. A
/// batch that starts before the offset asked for is handed over whole.
#[allow(dead_code)]
pub fn fetch_batches(
    client: &Client,
    topic: &str,
    mut f: impl FnMut(i32, &kafka_blocking::records::Batch),
) {
    use kafka_blocking::protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_blocking::protocol::messages::FetchRequest;
    use kafka_blocking::records::{ReadOptions, RecordBatches};

    let md = client.refresh_metadata(Some(&[topic])).expect("metadata");
    let t = md.topic(topic).expect("topic").clone();
    for p in &t.partitions {
        let mut offset = 0i64;
        for _ in 0..100_000 {
            let response = client
                .send_to(
                    p.leader,
                    &FetchRequest {
                        max_wait_ms: 50,
                        min_bytes: 1,
                        max_bytes: 16 << 20,
                        topics: vec![FetchTopic {
                            topic: topic.to_owned(),
                            topic_id: t.topic_id,
                            partitions: vec![FetchPartition {
                                partition: p.partition,
                                fetch_offset: offset,
                                partition_max_bytes: 16 << 20,
                                ..Default::default()
                            }],
                            ..Default::default()
                        }],
                        ..Default::default()
                    },
                )
                .expect("fetch");
            let data = &response.responses[0].partitions[0];
            assert_eq!(
                data.error_code, 0,
                "fetch error on partition {}",
                p.partition
            );
            let before = offset;
            let records = data.records.clone().unwrap_or_default();
            for batch in RecordBatches::new(records, ReadOptions::default()) {
                let batch = batch.expect("batch");
                if batch.last_offset() < offset {
                    continue;
                }
                offset = batch.last_offset() + 1;
                f(p.partition, &batch);
            }
            if offset >= data.high_watermark || offset == before {
                break;
            }
        }
    }
}

/// One process-wide logger that hands every record to the sinks tests
/// register (the `log` crate takes a single logger per process, and
/// several test modules check log lines).
struct FanOut(std::sync::Mutex<Vec<&'static dyn log::Log>>);

impl log::Log for FanOut {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let sinks = self.0.lock().map(|s| s.clone()).unwrap_or_default();
        for s in sinks {
            if s.enabled(record.metadata()) {
                s.log(record);
            }
        }
    }
    fn flush(&self) {}
}

/// Sends this process's log records (debug and above) to `sink` too.
#[allow(dead_code)]
pub fn add_log_sink(sink: &'static dyn log::Log) {
    static FAN: OnceLock<&'static FanOut> = OnceLock::new();
    let fan = *FAN.get_or_init(|| {
        let fan: &'static FanOut = Box::leak(Box::new(FanOut(std::sync::Mutex::new(Vec::new()))));
        let _ = log::set_logger(fan);
        log::set_max_level(log::LevelFilter::Debug);
        fan
    });
    if let Ok(mut sinks) = fan.0.lock() {
        sinks.push(sink);
    }
}
