//! The README's main job: bring up a local broker, create a topic with the
//! admin client, stream 1,000,000 records into it from 4 threads sharing
//! one producer while a consumer in a group reads them with
//! `for msg in &mut consumer`, and report what happened: records/s each
//! way, end-to-end latency, and whether every record arrived exactly once.
//!
//! ```text
//! cargo run --release --example quickstart
//! KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 cargo run --release --example quickstart
//! ```
//!
//! Every run uses a fresh topic and group (their names are printed), so it
//! can be repeated against the same external broker. Exit code 3 when a
//! record is missing or was read twice.

use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kafka_blocking::admin::{AdminClient, NewTopic};
use kafka_blocking::consumer::{Consumer, RebalanceListener, TopicPartition};
use kafka_blocking::producer::{Producer, Record};
use kafka_blocking::testkit::LocalBroker;
use kafka_blocking::{Error, Result};

const PARTITIONS: i32 = 3;
const THREADS: u64 = 4;
const RECORDS: u64 = 1_000_000;

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("quickstart: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode> {
    let t0 = Instant::now();
    let broker = LocalBroker::start()?;
    let servers = broker.bootstrap_servers().to_owned();
    let origin = if broker.is_external() {
        "KAFKA_BOOTSTRAP_SERVERS"
    } else {
        "local Tansu started by the testkit"
    };
    println!("broker      {servers} ({origin})");

    // 1. A fresh topic with 3 partitions.
    let run = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let topic = format!("quickstart-{run}");
    let admin = AdminClient::builder().bootstrap_servers(&servers).build()?;
    for (_, created) in admin.create_topics(
        [NewTopic::new(&topic, PARTITIONS, 1)],
        false,
        Some(Duration::from_secs(30)),
    )? {
        created?;
    }
    println!("topic       {topic}, {PARTITIONS} partitions");

    // 2. A consumer in a group, reading on its own thread.
    let group = format!("{topic}-readers");
    let mut consumer = Consumer::builder()
        .bootstrap_servers(&servers)
        .group_id(&group)
        .auto_offset_reset("earliest")
        // Tansu holds a group's first join for half the session timeout.
        .session_timeout_ms(6_000)
        .heartbeat_interval_ms(2_000)
        // Tansu does not wake a waiting fetch when records arrive.
        .fetch_max_wait_ms(100)
        // Stop iterating after 5 s without a record.
        .consumer_timeout_ms(5_000)
        .build()?;
    consumer.subscribe([&topic])?;
    let (assigned_tx, assigned_rx) = mpsc::channel();
    consumer.set_rebalance_listener(OnAssigned(assigned_tx));
    let clock = Instant::now(); // values carry microseconds since this
    let reader = std::thread::spawn(move || read_all(consumer, clock));
    let joined = match assigned_rx.recv_timeout(Duration::from_secs(60)) {
        Ok(partitions) => partitions,
        // The reader stopped before its first assignment: say why.
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            reader.join().expect("the consumer thread panicked")?;
            return Err(Error::closed(
                "the consumer stopped before it got partitions",
            ));
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            return Err(Error::timeout("the consumer got no partitions within 60 s"));
        }
    };
    println!(
        "consumer    group {group}, {} partitions assigned after {:.1} s",
        joined.len(),
        t0.elapsed().as_secs_f64()
    );

    // 3. Four threads share one producer (Clone + Send + Sync). Each value
    //    is 16 bytes: the record's sequence number and its send time.
    let producer = Producer::builder()
        .bootstrap_servers(&servers)
        .compression_type("lz4")
        // send() blocks once 1 MiB waits to be sent, so the threads cannot
        // run far ahead of the broker: lower latency at the same rate (the
        // default 32 MiB lets a whole burst queue up, ~0.5 s of it here).
        .buffer_memory(1 << 20)
        .build()?;
    let p0 = Instant::now();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (producer, topic) = (producer.clone(), &topic);
                s.spawn(move || -> Result<()> {
                    for seq in (t..RECORDS).step_by(THREADS as usize) {
                        let value = encode(seq, clock.elapsed().as_micros() as u64);
                        // The future is dropped: flush() below waits for all.
                        let _ = producer.send(Record::new(topic).value(&value))?;
                    }
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().expect("a producer thread panicked"))
    })?;
    producer.flush(Duration::from_secs(120))?;
    let produce_secs = p0.elapsed().as_secs_f64();
    let m = producer.metrics();
    println!(
        "produced    {} records from {THREADS} threads in {produce_secs:.2} s: {:.0} records/s ({} lz4 batches)",
        m.records_sent,
        m.records_sent as f64 / produce_secs,
        m.batches_sent,
    );
    producer.close(Duration::from_secs(10))?;

    // 4. The consumer's report.
    let report = reader.join().expect("the consumer thread panicked")?;
    let split: Vec<String> = report.per_partition.iter().map(u64::to_string).collect();
    println!(
        "consumed    {} records in {:.2} s: {:.0} records/s ({} per partition)",
        report.read,
        report.read_secs,
        report.read as f64 / report.read_secs.max(1e-9),
        split.join(" + ")
    );
    let ms = |p: f64| report.latency_ms(p);
    println!(
        "latency     send() to next(): p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(0.50),
        ms(0.90),
        ms(0.99),
        ms(1.0)
    );
    let missing = RECORDS - report.distinct;
    println!(
        "accounted   {} of {RECORDS} records accounted for, {missing} missing, {} duplicates",
        report.distinct, report.duplicates
    );
    println!("done in {:.2} s", t0.elapsed().as_secs_f64());
    Ok(if missing > 0 || report.duplicates > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

/// A value: the sequence number and the send time (µs), big-endian.
fn encode(seq: u64, sent_us: u64) -> [u8; 16] {
    let mut v = [0u8; 16];
    v[..8].copy_from_slice(&seq.to_be_bytes());
    v[8..].copy_from_slice(&sent_us.to_be_bytes());
    v
}

fn decode(v: &[u8]) -> Option<(u64, u64)> {
    let seq = v.get(..8)?.try_into().ok()?;
    let sent = v.get(8..16)?.try_into().ok()?;
    Some((u64::from_be_bytes(seq), u64::from_be_bytes(sent)))
}

/// Tells the main thread when the group has assigned partitions.
struct OnAssigned(mpsc::Sender<Vec<TopicPartition>>);

impl RebalanceListener for OnAssigned {
    fn on_partitions_assigned(&mut self, _: &mut Consumer, partitions: &[TopicPartition]) {
        if !partitions.is_empty() {
            let _ = self.0.send(partitions.to_vec());
        }
    }
}

/// What the consumer saw.
struct Report {
    read: u64,
    distinct: u64,
    duplicates: u64,
    read_secs: f64,
    per_partition: Vec<u64>,
    /// Sorted end-to-end latencies in microseconds.
    latencies_us: Vec<u64>,
}

impl Report {
    fn latency_ms(&self, quantile: f64) -> f64 {
        let n = self.latencies_us.len();
        if n == 0 {
            return f64::NAN;
        }
        let i = ((n as f64 * quantile).ceil() as usize).clamp(1, n) - 1;
        self.latencies_us[i] as f64 / 1000.0
    }
}

/// Reads until every record was seen (or 5 s pass without one), marking
/// each sequence number in a bitmap.
fn read_all(mut consumer: Consumer, clock: Instant) -> Result<Report> {
    let mut seen = vec![0u64; (RECORDS as usize).div_ceil(64)];
    let mut report = Report {
        read: 0,
        distinct: 0,
        duplicates: 0,
        read_secs: 0.0,
        per_partition: vec![0; PARTITIONS as usize],
        latencies_us: Vec::with_capacity(RECORDS as usize),
    };
    let mut first: Option<Instant> = None;
    for msg in &mut consumer {
        let msg = msg?;
        let now = clock.elapsed().as_micros() as u64;
        first.get_or_insert_with(Instant::now);
        let value: &[u8] = msg.value_as()?;
        let (seq, sent) =
            decode(value).ok_or_else(|| Error::protocol(format!("unexpected value {value:?}")))?;
        report.read += 1;
        report.latencies_us.push(now.saturating_sub(sent));
        if let Some(n) = report.per_partition.get_mut(msg.partition() as usize) {
            *n += 1;
        }
        let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        match seen.get_mut(word) {
            Some(w) if *w & bit != 0 => report.duplicates += 1,
            Some(w) => {
                *w |= bit;
                report.distinct += 1;
            }
            None => return Err(Error::protocol(format!("sequence {seq} out of range"))),
        }
        if report.distinct == RECORDS {
            break;
        }
    }
    report.read_secs = first.map_or(0.0, |t| t.elapsed().as_secs_f64());
    report.latencies_us.sort_unstable();
    consumer.close(true)?;
    Ok(report)
}
