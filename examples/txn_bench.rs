//! What transactions cost: COUNT records of SIZE bytes produced without
//! transactions (idempotent, acks=all) and in transactions of 1,000 and
//! 10,000 records, same broker, same run, fresh topic each.
//!
//! ```text
//! cargo run --release --example txn_bench                          # a local broker (Tansu) is started
//! cargo run --release --example txn_bench -- 127.0.0.1:9092 1000000 100
//! ```
//!
//! With `TXN_BENCH_PEER` set to a command line (e.g.
//! `"/tmp/peerbench/venv/bin/python benches/txn_confluent.py"`, librdkafka's
//! transactional producer), each mode also runs that command on a fresh topic
//! of the same broker right after ours, with the arguments
//! `BOOTSTRAP TOPIC COUNT SIZE TXN_SIZE` (0: no transactions), and prints its
//! `RESULT` line.
//!
//! Settings as the peer benchmark where transactions allow: linger 5 ms,
//! batches up to 1 MiB, requests up to 2 MiB, 32 MiB of buffer, record i
//! to partition i mod 6; idempotence and acks=all (transactions need
//! both). Prints one line per mode with records/s and MB/s of payload and
//! the CPU time (user + sys) this process spent in the mode.
//!
//! To measure the client rather than the broker, run it against
//! `examples/bench_broker.rs` (answers transactions at once, writes no
//! markers): `bench_broker 127.0.0.1:29311 &` then
//! `txn_bench 127.0.0.1:29311 1000000 100`.

use std::time::{Duration, Instant};

use kafka_blocking::admin::{AdminClient, NewTopic};
use kafka_blocking::producer::{Producer, ProducerBuilder, Record};
use kafka_blocking::testkit::LocalBroker;

const PARTITIONS: i32 = 6;

fn main() -> kafka_blocking::Result<()> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args
        .next()
        .or_else(|| std::env::var("KAFKA_BOOTSTRAP_SERVERS").ok());
    let count: usize = args
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let size: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or(100);
    let local = match &bootstrap {
        Some(_) => None,
        None => Some(LocalBroker::start()?),
    };
    let servers = bootstrap.unwrap_or_else(|| {
        local
            .as_ref()
            .map(|b| b.bootstrap_servers().to_owned())
            .unwrap_or_default()
    });
    // `TXN_BENCH_LINGER_MS` (default 5) changes linger_ms for every mode.
    let linger_ms: i64 = std::env::var("TXN_BENCH_LINGER_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    // `TXN_BENCH_BATCH_SIZE` (default 1 MiB) changes batch_size for every mode.
    let batch_size: i64 = std::env::var("TXN_BENCH_BATCH_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 20);
    let admin = AdminClient::builder().bootstrap_servers(&servers).build()?;
    let payload = vec![b'x'; size];
    println!("{count} records of {size} B, {PARTITIONS} partitions, broker {servers}");
    // `TXN_BENCH_FLUSH_EVERY=1` adds two reference modes: no transactions,
    // but a flush after every 1,000 or 10,000 records, the wait a
    // commit starts with, so what is left is what transactions add.
    let mut modes = vec![(None, None), (Some(1_000), None), (Some(10_000), None)];
    if std::env::var("TXN_BENCH_FLUSH_EVERY").is_ok_and(|v| v == "1") {
        modes.extend([(None, Some(1_000)), (None, Some(10_000))]);
    }
    for (txn_size, flush_every) in modes {
        let topic = format!(
            "txn-bench-{}-{}-{}",
            std::process::id(),
            txn_size.unwrap_or(0),
            flush_every.unwrap_or(0)
        );
        for (_, r) in admin.create_topics([NewTopic::new(&topic, PARTITIONS, 1)], false, None)? {
            r?;
        }
        let mut b = ProducerBuilder::default()
            .bootstrap_servers(&servers)
            .linger_ms(linger_ms)
            .batch_size(batch_size)
            .max_request_size(2 << 20)
            .buffer_memory(32 << 20);
        if txn_size.is_some() {
            b = b.transactional_id(format!("{topic}-writer"));
        }
        let p: Producer = b.build()?;
        let t = Duration::from_secs(120);
        if txn_size.is_some() {
            p.init_transactions(t)?;
        }
        let cpu_start = cpu_seconds();
        let start = Instant::now();
        // Where a transaction's end goes, the part the caller cannot
        // overlap with its sends: waiting for its records (an explicit
        // flush, the same wait commit_transaction does first), then
        // commit_transaction itself (EndTxn, the flush finding nothing).
        let (mut flushing, mut committing) = (Duration::ZERO, Duration::ZERO);
        let mut i = 0;
        while i < count {
            let n = txn_size.or(flush_every).unwrap_or(count).min(count - i);
            if txn_size.is_some() {
                p.begin_transaction()?;
            }
            for j in i..i + n {
                let _ = p.send(
                    Record::new(topic.as_str())
                        .partition((j % PARTITIONS as usize) as i32)
                        .value(&payload[..]),
                )?;
            }
            if flush_every.is_some() {
                let f = Instant::now();
                p.flush(t)?;
                flushing += f.elapsed();
            }
            if txn_size.is_some() {
                let f = Instant::now();
                p.flush(t)?;
                let c = Instant::now();
                p.commit_transaction(t)?;
                flushing += c - f;
                committing += c.elapsed();
            }
            i += n;
        }
        p.flush(t)?;
        let secs = start.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu_start;
        let errors = p.metrics().record_errors;
        p.close(t)?;
        println!(
            "RESULT mode={} records={count} seconds={secs:.2} records_per_s={:.0} mb_per_s={:.1} errors={errors} flushing_s={:.2} committing_s={:.2} cpu_s={cpu:.2}",
            match (txn_size, flush_every) {
                (Some(n), _) => format!("transactions-of-{n}"),
                (None, Some(n)) => format!("flush-every-{n}"),
                (None, None) => "no-transactions".to_owned(),
            },
            count as f64 / secs,
            (count * size) as f64 / secs / 1e6,
            flushing.as_secs_f64(),
            committing.as_secs_f64(),
        );
        if let (Ok(peer), None) = (std::env::var("TXN_BENCH_PEER"), flush_every) {
            let topic = format!("{topic}-peer");
            for (_, r) in
                admin.create_topics([NewTopic::new(&topic, PARTITIONS, 1)], false, None)?
            {
                r?;
            }
            let status = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "{peer} {servers} {topic} {count} {size} {}",
                    txn_size.unwrap_or(0)
                ))
                .status();
            if !status.as_ref().is_ok_and(|s| s.success()) {
                eprintln!("the peer command `{peer}` failed: {status:?}");
            }
        }
    }
    Ok(())
}

/// User + system CPU seconds of this process so far (all its threads),
/// from /proc/self/stat; 0 where that is not readable.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: f64 = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}
