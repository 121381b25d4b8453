//! What transactions cost: COUNT records of SIZE bytes produced without
//! transactions (idempotent, acks=all) and in transactions of 1,000 and
//! 10,000 records, same broker, same run, fresh topic each.
//!
//! ```text
//! cargo run --release --example txn_bench                          # a local broker (Tansu) is started
//! cargo run --release --example txn_bench -- 127.0.0.1:9092 1000000 100
//! ```
//!
//! Settings as the peer benchmark where transactions allow: linger 5 ms,
//! batches up to 1 MiB, requests up to 2 MiB, 32 MiB of buffer, record i
//! to partition i mod 6; idempotence and acks=all (transactions need
//! both). Prints one line per mode with records/s and MB/s of payload.

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
    let admin = AdminClient::builder().bootstrap_servers(&servers).build()?;
    let payload = vec![b'x'; size];
    println!("{count} records of {size} B, {PARTITIONS} partitions, broker {servers}");
    for txn_size in [None, Some(1_000), Some(10_000)] {
        let topic = format!("txn-bench-{}-{}", std::process::id(), txn_size.unwrap_or(0));
        for (_, r) in admin.create_topics([NewTopic::new(&topic, PARTITIONS, 1)], false, None)? {
            r?;
        }
        let mut b = ProducerBuilder::default()
            .bootstrap_servers(&servers)
            .linger_ms(5)
            .batch_size(1 << 20)
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
        let start = Instant::now();
        let mut i = 0;
        while i < count {
            let n = txn_size.unwrap_or(count).min(count - i);
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
            if txn_size.is_some() {
                p.commit_transaction(t)?;
            }
            i += n;
        }
        p.flush(t)?;
        let secs = start.elapsed().as_secs_f64();
        let errors = p.metrics().record_errors;
        p.close(t)?;
        println!(
            "RESULT mode={} records={count} seconds={secs:.2} records_per_s={:.0} mb_per_s={:.1} errors={errors}",
            txn_size.map_or("no-transactions".to_owned(), |n| format!("transactions-of-{n}")),
            count as f64 / secs,
            (count * size) as f64 / secs / 1e6,
        );
    }
    Ok(())
}
