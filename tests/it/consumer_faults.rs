//! The consumer against a broker behind a fault-injecting proxy (a Tansu of
//! its own that advertises the proxy's address, in both modes), and against
//! fake clusters.

use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use std::sync::{Arc, Mutex};

use kafka_blocking::consumer::Consumer;
use kafka_blocking::protocol::messages::fetch_response::PartitionData;
use kafka_blocking::protocol::messages::FetchRequest;
use kafka_blocking::protocol::{ApiKey, Uuid};
use kafka_blocking::{Bytes, ErrorKind};

use crate::consumer::produce_to;
use crate::faults::{
    fake_api_versions, fake_metadata, fake_records, fetch_each, FakeCluster, FakeServer,
    ProxiedBroker, CONSUMER_APIS,
};
use crate::harness::{create_topic, unique_topic};

#[test]
fn a_corrupted_batch_is_a_crc_error_and_a_refetch_recovers() {
    let b = ProxiedBroker::start();
    let topic = unique_topic("cf-crc");
    create_topic(&b.client(), &topic, 1);
    // ~50 kB of records in batches of about 16 kB.
    let p = kafka_blocking::producer::Producer::builder()
        .bootstrap_servers(b.bootstrap())
        .linger_ms(20)
        .build()
        .expect("producer");
    for i in 0..50 {
        let _ = p
            .send(
                kafka_blocking::producer::Record::new(topic.as_str())
                    .value(format!("{i:04}").repeat(250)),
            )
            .expect("send");
    }
    p.flush(Duration::from_secs(30)).expect("flush");
    p.close(Duration::from_secs(5)).expect("close");

    // Flip one byte 20 kB into every connection's answers: past the small
    // metadata and offset answers, inside the fetched records.
    b.proxy.knobs.corrupt_at.store(20_000, SeqCst);
    let mut c = Consumer::builder()
        .bootstrap_servers(b.bootstrap())
        .auto_offset_reset("earliest")
        .consumer_timeout_ms(5_000)
        .build()
        .expect("consumer");
    c.assign([(topic.as_str(), 0)]).expect("assign");
    let mut offsets = Vec::new();
    let mut error = None;
    for m in &mut c {
        match m {
            Ok(m) => {
                assert_eq!(
                    m.value_as::<&str>().unwrap(),
                    format!("{:04}", m.offset()).repeat(250)
                );
                offsets.push(m.offset());
            }
            Err(e) if error.is_none() => error = Some(e),
            Err(e) => panic!("a second error: {e}"),
        }
    }
    let e = error.expect("the corrupted batch is reported");
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert_eq!(e.topic(), Some(topic.as_str()));
    assert_eq!(e.partition(), Some(0));
    let at = e.offset().expect("the batch offset");
    assert!(e.to_string().contains("CRC"), "{e}");
    // Nothing skipped, nothing twice: the records before the bad batch,
    // then (fetched again, clean this time) the rest.
    assert_eq!(offsets, (0..50).collect::<Vec<i64>>(), "error at {at}");
    assert!(at > 0 && at < 50, "{at}");
}

#[test]
fn a_cut_fetch_connection_loses_nothing() {
    let b = ProxiedBroker::start();
    let topic = unique_topic("cf-cut");
    create_topic(&b.client(), &topic, 1);
    produce_to(&b.bootstrap(), &topic, 1, 3000, "none");
    // Slow answers so that the cut lands while fetches are in flight.
    b.proxy.knobs.response_delay_ms.store(2, SeqCst);
    let mut c = Consumer::builder()
        .bootstrap_servers(b.bootstrap())
        .auto_offset_reset("earliest")
        .fetch_max_bytes(2048)
        .max_partition_fetch_bytes(2048)
        .consumer_timeout_ms(5_000)
        .build()
        .expect("consumer");
    c.assign([(topic.as_str(), 0)]).expect("assign");
    let before = b.proxy.knobs.accepted.load(SeqCst);
    let mut offsets = Vec::new();
    let mut cuts = 0;
    for m in &mut c {
        let m = m.expect("connection failures are retried, not returned");
        offsets.push(m.offset());
        if offsets.len() % 700 == 0 && cuts < 3 {
            b.proxy.cut_all();
            cuts += 1;
        }
    }
    assert_eq!(offsets, (0..3000).collect::<Vec<i64>>());
    assert!(b.proxy.knobs.accepted.load(SeqCst) > before, "reconnected");
}

#[test]
fn fetches_go_to_the_preferred_read_replica() {
    const TOPIC: &str = "kip392-topic";
    // Node 1 leads and, as with RackAwareReplicaSelector, answers with
    // preferred_read_replica = 2 and no records; node 2 serves records.
    let cluster = FakeCluster::start(2, |req| match req.key {
        ApiKey::API_VERSIONS => fake_api_versions(req, CONSUMER_APIS),
        ApiKey::METADATA => fake_metadata(req, &[(TOPIC, Uuid([5; 16]), 1, 1)]),
        ApiKey::FETCH => {
            let node = req.node;
            req.answer::<FetchRequest>(|r| {
                fetch_each(r, |p| PartitionData {
                    partition_index: p.partition,
                    high_watermark: 1_000,
                    preferred_read_replica: if node == 1 { 2 } else { -1 },
                    records: Some(if node == 1 {
                        Bytes::new()
                    } else {
                        fake_records(p.fetch_offset, 10)
                    }),
                    ..Default::default()
                })
            })
        }
        _ => None,
    });
    let mut c = Consumer::builder()
        .bootstrap_servers(cluster.bootstrap())
        .client_rack("rack-2")
        .build()
        .expect("consumer");
    c.assign([(TOPIC, 0)]).expect("assign");
    c.seek((TOPIC, 0), 0).expect("seek");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut offsets = Vec::new();
    while offsets.len() < 30 {
        assert!(
            Instant::now() < deadline,
            "no records from the preferred replica"
        );
        let records = c.poll(Duration::from_millis(100)).expect("poll");
        offsets.extend(records.iter().map(|m| m.offset()));
    }
    assert_eq!(offsets[..30], (0..30).collect::<Vec<i64>>()[..]);
    assert!(cluster.count(2, ApiKey::FETCH) >= 3);
    assert!(
        cluster.count(1, ApiKey::FETCH) <= 2,
        "the leader is asked again only after metadata_max_age_ms: {} fetches",
        cluster.count(1, ApiKey::FETCH)
    );
}

#[test]
fn reads_return_on_time_when_the_cluster_does_not_answer() {
    // Accepts connections, never answers: coordinator lookups, committed
    // offsets and metadata all hang until request_timeout_ms.
    let blackhole = FakeServer::start(Vec::new());
    let mut c = Consumer::builder()
        .bootstrap_servers(blackhole.addr())
        .group_id("blackholed")
        .request_timeout_ms(30_000)
        .auto_commit_interval_ms(100)
        .consumer_timeout_ms(100)
        .build()
        .expect("consumer");
    c.assign([("t", 0)]).expect("assign");
    for _ in 0..3 {
        let t = Instant::now();
        let r = c.poll(Duration::from_millis(100)).expect("poll");
        assert!(r.is_empty());
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "poll took {:?}",
            t.elapsed()
        );
    }
    let t = Instant::now();
    assert!(c.next().is_none());
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "next took {:?}",
        t.elapsed()
    );
    // A commit that needs the coordinator found first does not wait for it.
    let outcome: Arc<Mutex<Option<bool>>> = Arc::default();
    let o = Arc::clone(&outcome);
    let t = Instant::now();
    c.commit_offsets_async([(("t", 0), 5)], move |_, r| {
        *o.lock().unwrap() = Some(r.is_ok());
    })
    .expect("commit_offsets_async");
    let r = c.poll(Duration::from_millis(100)).expect("poll");
    assert!(r.is_empty());
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t.elapsed()
    );
    let t = Instant::now();
    c.close(true).expect("close");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "close took {:?}",
        t.elapsed()
    );
    assert_eq!(
        *outcome.lock().unwrap(),
        Some(false),
        "the callback ran on close"
    );
}
