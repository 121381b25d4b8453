//! A confluent-kafka style poll loop with manual commits, in the two
//! classic flavours:
//!
//! * **at-least-once** (the default): process, *then* commit. A crash after
//!   processing but before the commit delivers those records again to
//!   whoever takes the partition over: no record is lost, some may be
//!   processed twice.
//! * **at-most-once** (`--at-most-once`): commit, *then* process. A crash
//!   after the commit but before processing has finished skips the rest of
//!   that batch: no record is processed twice, some may never be.
//!
//! ```text
//! cargo run --example poll_loop                         # local broker, at-least-once
//! cargo run --example poll_loop -- --at-most-once
//! cargo run --example poll_loop -- 127.0.0.1:9092 --every 500
//! ```
//!
//! The example produces 10,000 sample orders first, then consumes them in
//! the group `order-processor` and stops after 5 s without new records.

use std::collections::HashMap;
use std::time::Duration;

use kafka_blocking::consumer::{Consumer, Message, TopicPartition};
use kafka_blocking::producer::{Producer, Record};
use kafka_blocking::testkit::LocalBroker;
use kafka_blocking::ErrorKind;

const TOPIC: &str = "orders";

fn process(msg: &Message) -> kafka_blocking::Result<f64> {
    // Pretend work: parse the amount out of the order.
    let order: &str = msg.value_as()?;
    Ok(order
        .rsplit('=')
        .next()
        .and_then(|a| a.parse::<f64>().ok())
        .unwrap_or(0.0))
}

/// Commits the processed offsets. A rebalance may have moved partitions
/// away meanwhile: their commit is refused, and their new owner starts
/// from the last commit that went through (at-least-once still holds).
fn commit_processed(
    consumer: &mut Consumer,
    done: &mut HashMap<TopicPartition, i64>,
) -> kafka_blocking::Result<()> {
    if done.is_empty() {
        return Ok(());
    }
    match consumer.commit_offsets(done.drain()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::Rebalance => {
            eprintln!("commit refused after a rebalance: {e}");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn main() -> kafka_blocking::Result<()> {
    let mut bootstrap = std::env::var("KAFKA_BOOTSTRAP_SERVERS").ok();
    let mut at_most_once = false;
    let mut every: usize = 1000;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--at-most-once" => at_most_once = true,
            "--every" => every = args.next().and_then(|v| v.parse().ok()).unwrap_or(every),
            other => bootstrap = Some(other.to_owned()),
        }
    }
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

    let producer = Producer::builder().bootstrap_servers(&servers).build()?;
    for i in 0..10_000 {
        let _ = producer.send(
            Record::new(TOPIC)
                .key(format!("customer-{}", i % 97))
                .value(format!("order {i} amount={}.{:02}", i % 500, i % 100)),
        )?;
    }
    producer.flush(Duration::from_secs(60))?;

    let mut consumer = Consumer::builder()
        .bootstrap_servers(&servers)
        .group_id("order-processor")
        .auto_offset_reset("earliest")
        // The local test broker (Tansu) holds a group's first join for half
        // the session timeout: 5 s here rather than 22.5 s at the default.
        .session_timeout_ms(10_000)
        // Commits are ours to make: no background auto-commit.
        .enable_auto_commit(false)
        .max_poll_records(500)
        .build()?;
    consumer.subscribe([TOPIC])?;

    let (mut processed, mut idle) = (0usize, 0);
    let mut total = 0.0;
    // At-least-once: the next offset to commit per partition, advanced only
    // once a record is processed.
    let mut done: HashMap<TopicPartition, i64> = HashMap::new();
    let mut since_commit = 0usize;
    while idle < 10 {
        let records = consumer.poll(Duration::from_millis(500))?;
        if records.is_empty() {
            // Joining the group takes a few seconds; count idle polls only
            // once partitions are assigned.
            if !consumer.assignment().is_empty() {
                idle += 1;
            }
            continue;
        }
        idle = 0;
        if at_most_once {
            // Commit first: the positions already point past this batch.
            // If processing below crashes, these records are not read again.
            consumer.commit()?;
        }
        for msg in &records {
            total += process(msg)?;
            processed += 1;
            if at_most_once {
                continue;
            }
            done.insert(msg.topic_partition(), msg.offset() + 1);
            since_commit += 1;
            if since_commit >= every {
                // At-least-once: commit what is processed, not the positions
                // (they already point past the whole batch). A crash before
                // this line re-delivers the records since the last commit.
                commit_processed(&mut consumer, &mut done)?;
                since_commit = 0;
            }
        }
    }
    commit_processed(&mut consumer, &mut done)?;
    println!(
        "{} processed {processed} orders, total amount {total:.2}",
        if at_most_once {
            "at-most-once:"
        } else {
            "at-least-once:"
        }
    );
    // Leaves the group at once, so other members take over without waiting
    // for the session timeout.
    consumer.close(false)?;
    Ok(())
}
