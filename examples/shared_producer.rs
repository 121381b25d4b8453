//! One `Producer` shared by several std threads: each thread sends keyed
//! records through its own clone, half of them with a delivery callback and
//! half with a delivery future, then the main thread flushes and checks
//! that every record landed, and that each key always went to the same
//! partition.
//!
//! ```text
//! cargo run --example shared_producer                 # local broker (testkit)
//! cargo run --example shared_producer -- HOST:PORT 8 50000
//! ```
//!
//! Arguments (all optional): bootstrap servers (default: a local Tansu
//! started by the testkit, or `KAFKA_BOOTSTRAP_SERVERS`), threads (4),
//! records per thread (10000).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_blocking::admin::{AdminClient, NewTopic};
use kafka_blocking::producer::{Producer, Record};
use kafka_blocking::protocol::ErrorCode;
use kafka_blocking::testkit::LocalBroker;
use kafka_blocking::{Error, Result};

const PARTITIONS: i32 = 6;
const KEYS: usize = 32;

/// What the delivery callbacks saw, shared with the sender thread.
#[derive(Default)]
struct Tally {
    delivered: AtomicUsize,
    failed: AtomicUsize,
    /// key → partitions it landed on (must be exactly one each).
    partitions_by_key: Mutex<HashMap<String, Vec<i32>>>,
}

impl Tally {
    fn record(&self, key: String, partition: i32) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut m) = self.partitions_by_key.lock() {
            let seen = m.entry(key).or_default();
            if !seen.contains(&partition) {
                seen.push(partition);
            }
        }
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: usize| -> Result<usize> {
        match args.get(i) {
            None => Ok(default),
            Some(s) => s
                .parse()
                .map_err(|_| Error::invalid_argument(format!("`{s}` is not a count"))),
        }
    };
    let threads = number(1, 4)?.max(1);
    let per_thread = number(2, 10_000)?;

    // Keep the broker alive (it is killed on drop) for the whole run.
    let (_broker, bootstrap) = match args.first() {
        Some(b) => (None, b.clone()),
        None => {
            let b = LocalBroker::start()?;
            let s = b.bootstrap_servers().to_owned();
            (Some(b), s)
        }
    };
    let topic = format!("shared-producer-{}", std::process::id());

    let admin = AdminClient::builder()
        .bootstrap_servers(&bootstrap)
        .build()?;
    for (name, result) in admin.create_topics(
        [NewTopic::new(&topic, PARTITIONS, 1)],
        false,
        Some(Duration::from_secs(30)),
    )? {
        match result {
            Ok(()) => {}
            Err(e) if e.kafka_code() == Some(ErrorCode::TOPIC_ALREADY_EXISTS) => {}
            Err(e) => return Err(e.context(format_args!("creating {name}"))),
        }
    }

    let producer = Producer::builder()
        .bootstrap_servers(&bootstrap)
        .client_id("shared-producer")
        .linger_ms(5)
        .compression_type("lz4")
        .build()?;
    let tally = Arc::new(Tally::default());

    println!("{threads} threads x {per_thread} records into `{topic}` via {bootstrap}");
    let t0 = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let producer = producer.clone();
            let tally = Arc::clone(&tally);
            let topic = topic.clone();
            std::thread::spawn(move || -> Result<Vec<(String, i32, i64)>> {
                let mut futures = Vec::new();
                for i in 0..per_thread {
                    let key = format!("user-{}", (t * per_thread + i) % KEYS);
                    let value = format!("thread {t} record {i}");
                    let record = Record::new(topic.as_str()).key(key.clone()).value(value);
                    if i % 2 == 0 {
                        // A callback runs on the producer's sender thread.
                        let tally = Arc::clone(&tally);
                        producer.send_with_callback(record, move |outcome| match outcome {
                            Ok(meta) => tally.record(key, meta.partition()),
                            Err(e) => {
                                tally.failed.fetch_add(1, Ordering::Relaxed);
                                eprintln!("delivery failed: {e}");
                            }
                        })?;
                    } else {
                        futures.push((key, producer.send(record)?));
                    }
                }
                // Futures resolve once the sender thread has the answers.
                futures
                    .into_iter()
                    .map(|(key, f)| f.wait().map(|m| (key, m.partition(), m.offset())))
                    .collect()
            })
        })
        .collect();

    let mut by_future = Vec::new();
    for w in workers {
        let sent = w
            .join()
            .map_err(|_| Error::invalid_argument("a producer thread panicked"))??;
        by_future.extend(sent);
    }
    producer.flush(Duration::from_secs(60))?;
    let elapsed = t0.elapsed();

    for (key, partition, _) in &by_future {
        tally.record(key.clone(), *partition);
    }
    let total = threads * per_thread;
    let delivered = tally.delivered.load(Ordering::Relaxed);
    let failed = tally.failed.load(Ordering::Relaxed);
    let mut per_partition: BTreeMap<i32, usize> = BTreeMap::new();
    let mut split_keys = 0;
    if let Ok(m) = tally.partitions_by_key.lock() {
        for parts in m.values() {
            if parts.len() != 1 {
                split_keys += 1;
            }
            if let Some(p) = parts.first() {
                *per_partition.entry(*p).or_default() += 1;
            }
        }
    }
    println!(
        "delivered {delivered}/{total} in {:.2?} ({:.0} records/s), {failed} failed",
        elapsed,
        total as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    println!("keys per partition: {per_partition:?}");
    println!("{:?}", producer.metrics());
    producer.close(Duration::from_secs(10))?;
    let _ = admin.delete_topics([topic], None);

    if delivered != total || failed > 0 || split_keys > 0 {
        return Err(Error::invalid_argument(format!(
            "expected {total} deliveries, got {delivered} ({failed} failed, {split_keys} keys on several partitions)"
        )));
    }
    Ok(())
}
