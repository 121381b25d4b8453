//! The README's main job: bring up a local broker, create a topic, stream
//! records into it from several threads sharing one producer, read them all
//! back, and print what happened.
//!
//! ```text
//! cargo run --release --example quickstart
//! ```
//!
//! Uses `KAFKA_BOOTSTRAP_SERVERS` instead of a local broker when it is set.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kafka_blocking::producer::{Producer, Record};
use kafka_blocking::protocol::messages::create_topics_request::CreatableTopic;
use kafka_blocking::protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_blocking::protocol::messages::{CreateTopicsRequest, FetchRequest};
use kafka_blocking::protocol::ErrorCode;
use kafka_blocking::records::{ReadOptions, RecordBatches};
use kafka_blocking::testkit::LocalBroker;
use kafka_blocking::{Client, ClientConfig, Result};

const TOPIC: &str = "quickstart";
const PARTITIONS: i32 = 3;
const THREADS: usize = 4;
const RECORDS: usize = 1_000_000;

fn main() -> Result<()> {
    let t0 = Instant::now();
    let broker = LocalBroker::start()?;
    let bootstrap = broker.bootstrap_servers().to_owned();
    println!(
        "broker      {} ({})",
        bootstrap,
        if broker.is_external() {
            "KAFKA_BOOTSTRAP_SERVERS"
        } else {
            "local Tansu started by the testkit"
        }
    );

    let client = Client::new(
        ClientConfig::builder()
            .bootstrap_servers(&bootstrap)
            .build()?,
    )?;
    let version = client.check_version()?;
    println!(
        "handshake   {} APIs, broker speaks Kafka {}.{}.{}",
        version.api_versions.ranges().len(),
        version.kafka_version.0,
        version.kafka_version.1,
        version.kafka_version.2
    );
    let created = client.send_any(&CreateTopicsRequest {
        topics: vec![CreatableTopic {
            name: TOPIC.into(),
            num_partitions: PARTITIONS,
            replication_factor: 1,
            ..Default::default()
        }],
        timeout_ms: 10_000,
        ..Default::default()
    })?;
    let code = ErrorCode(created.topics[0].error_code);
    code.check(|| format!("creating topic {TOPIC}"))
        .or_else(|e| {
            if code == ErrorCode::TOPIC_ALREADY_EXISTS {
                Ok(())
            } else {
                Err(e)
            }
        })?;
    println!("topic       {TOPIC} with {PARTITIONS} partitions");

    // Produce: several threads share one producer (it is Clone + Send + Sync).
    let producer = Producer::builder()
        .bootstrap_servers(&bootstrap)
        .compression_type("lz4")
        .build()?;
    let start = producer.partitions_for(TOPIC)?.len();
    let p0 = Instant::now();
    std::thread::scope(|s| -> Result<()> {
        let mut handles = Vec::new();
        for t in 0..THREADS {
            let producer = producer.clone();
            handles.push(s.spawn(move || -> Result<()> {
                for i in (t..RECORDS).step_by(THREADS) {
                    let key = format!("key-{}", i % 1000);
                    let value = format!("record {i}");
                    let _ = producer.send(Record::new(TOPIC).key(&key).value(value))?;
                }
                Ok(())
            }));
        }
        for h in handles {
            h.join()
                .map_err(|_| kafka_blocking::Error::closed("a producer thread panicked"))??;
        }
        Ok(())
    })?;
    producer.flush(Duration::from_secs(120))?;
    let produce_time = p0.elapsed();
    let m = producer.metrics();
    println!(
        "produced    {} records from {THREADS} threads in {:.2} s ({:.0} records/s), {} batches, {:.0} records/batch, lz4 ratio {:.2}",
        m.records_sent,
        produce_time.as_secs_f64(),
        m.records_sent as f64 / produce_time.as_secs_f64(),
        m.batches_sent,
        m.records_per_batch_avg,
        m.compression_ratio
    );
    assert_eq!(start, PARTITIONS as usize);

    // Read back with raw fetches and account for every record.
    let c0 = Instant::now();
    let md = client.refresh_metadata(Some(&[TOPIC]))?;
    let topic = md
        .topic(TOPIC)
        .cloned()
        .ok_or_else(|| kafka_blocking::Error::protocol("topic vanished"))?;
    let mut seen = vec![false; RECORDS];
    let mut per_partition: HashMap<i32, usize> = HashMap::new();
    let mut total = 0usize;
    for p in &topic.partitions {
        let mut offset = 0i64;
        loop {
            let response = client.send_to(
                p.leader,
                &FetchRequest {
                    max_wait_ms: 100,
                    min_bytes: 1,
                    max_bytes: 8 << 20,
                    topics: vec![FetchTopic {
                        topic: TOPIC.into(),
                        topic_id: topic.topic_id,
                        partitions: vec![FetchPartition {
                            partition: p.partition,
                            fetch_offset: offset,
                            partition_max_bytes: 8 << 20,
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            )?;
            let data = &response.responses[0].partitions[0];
            ErrorCode(data.error_code).check(|| "fetch".into())?;
            let before = offset;
            for batch in RecordBatches::new(
                data.records.clone().unwrap_or_default(),
                ReadOptions::default(),
            ) {
                for r in batch?.records() {
                    let r = r?;
                    if r.offset < offset {
                        continue;
                    }
                    offset = r.offset + 1;
                    let value = r.value.unwrap_or_default();
                    let i: usize = std::str::from_utf8(&value)
                        .ok()
                        .and_then(|s| s.strip_prefix("record "))
                        .and_then(|n| n.parse().ok())
                        .ok_or_else(|| kafka_blocking::Error::protocol("unexpected value"))?;
                    if i < RECORDS {
                        seen[i] = true;
                    }
                    total += 1;
                    *per_partition.entry(p.partition).or_default() += 1;
                }
            }
            if offset == before || offset >= data.high_watermark {
                break;
            }
        }
    }
    let consume_time = c0.elapsed();
    let missing = seen.iter().filter(|s| !**s).count();
    println!(
        "read back   {total} records in {:.2} s ({:.0} records/s); per partition {:?}",
        consume_time.as_secs_f64(),
        total as f64 / consume_time.as_secs_f64(),
        {
            let mut v: Vec<_> = per_partition.into_iter().collect();
            v.sort();
            v
        }
    );
    println!(
        "accounted   {} of {RECORDS} records present, {missing} missing, {} duplicates",
        RECORDS - missing,
        total.saturating_sub(RECORDS - missing)
    );
    producer.close(Duration::from_secs(10))?;
    println!("done in {:.2} s", t0.elapsed().as_secs_f64());
    if missing > 0 {
        std::process::exit(3);
    }
    Ok(())
}
