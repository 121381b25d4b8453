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

/// `true` when the tests run against an external broker (real Kafka).
#[allow(dead_code)] // for tests that need real Kafka behaviour
pub fn external() -> bool {
    std::env::var("KAFKA_BOOTSTRAP_SERVERS").is_ok_and(|s| !s.trim().is_empty())
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
