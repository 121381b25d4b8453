//! The classic Kafka tutorial lab, step by step: an admin client creates
//! the topic `bankbranch` (2 partitions, replication factor 1) and
//! describes it and its configs, a producer sends ATM transactions as JSON
//! (`{"atmid": 1, "transid": 100}`), and a consumer iterates over them and
//! prints each one.
//!
//! ```text
//! cargo run --example admin_lab                     # a local broker is started
//! cargo run --example admin_lab -- 127.0.0.1:9092   # or KAFKA_BOOTSTRAP_SERVERS=...
//! ```
//!
//! In kafka-python the same lab reads:
//!
//! ```text
//! admin.create_topics([NewTopic(name="bankbranch", num_partitions=2, replication_factor=1)])
//! admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "bankbranch")])
//! producer = KafkaProducer(value_serializer=lambda v: json.dumps(v).encode("utf-8"))
//! producer.send("bankbranch", {"atmid": 1, "transid": 100})
//! consumer = KafkaConsumer("bankbranch", group_id=..., auto_offset_reset="earliest")
//! for msg in consumer: print(msg.value.decode("utf-8"))
//! ```

use std::time::Duration;

use kafka_blocking::admin::{AdminClient, ConfigResource, NewTopic};
use kafka_blocking::consumer::{Consumer, JsonDeserializer};
use kafka_blocking::producer::{JsonSerializer, Producer, StringSerializer};
use kafka_blocking::protocol::ErrorCode;
use kafka_blocking::testkit::LocalBroker;
use kafka_blocking::Result;
use serde_json::{json, Value};

const TOPIC: &str = "bankbranch";

fn main() -> Result<()> {
    // Keep the local broker (if any) alive for the whole run.
    let (servers, _local) = match std::env::args().nth(1) {
        Some(servers) => (servers, None),
        None => {
            let broker = LocalBroker::start()?;
            (broker.bootstrap_servers().to_owned(), Some(broker))
        }
    };
    println!("bootstrap_servers = {servers}\n");

    // 1. Create the topic. A rerun finds it there already, which is fine.
    let admin = AdminClient::builder()
        .bootstrap_servers(&servers)
        .client_id("admin-lab")
        .build()?;
    // Keep a week of transactions.
    let new_topic = NewTopic::new(TOPIC, 2, 1).config("retention.ms", "604800000");
    for (name, result) in admin.create_topics([new_topic], false, None)? {
        match result {
            Ok(()) => println!("created topic {name}"),
            Err(e) if e.kafka_code() == Some(ErrorCode::TOPIC_ALREADY_EXISTS) => {
                println!("topic {name} exists already")
            }
            Err(e) => return Err(e),
        }
    }

    // 2. Describe it: partitions, then its configs.
    for (name, described) in admin.describe_topics([TOPIC])? {
        for p in described?.partitions {
            println!(
                "  {name}-{}: leader {:?}, replicas {:?}, in sync {:?}",
                p.partition, p.leader, p.replicas, p.isr
            );
        }
    }
    for (resource, entries) in
        admin.describe_configs([ConfigResource::topic(TOPIC)], false, false)?
    {
        let entries = entries?;
        println!("configs of {resource} ({} reported):", entries.len());
        if entries.is_empty() {
            println!("  (none reported; Tansu 0.6 lists only the configs set on the topic)");
        }
        for e in entries.iter().filter(|e| {
            [
                "cleanup.policy",
                "retention.ms",
                "segment.bytes",
                "compression.type",
            ]
            .contains(&e.name.as_str())
        }) {
            println!(
                "  {} = {} ({:?})",
                e.name,
                e.value.as_deref().unwrap_or("-"),
                e.source
            );
        }
    }

    // 3. Produce ATM transactions as JSON, keyed by ATM: each ATM's
    //    transactions land in one partition, in order.
    let producer = Producer::builder()
        .bootstrap_servers(&servers)
        .client_id("atm-feed")
        .build()?;
    let atm = producer.typed::<str, Value>(StringSerializer, JsonSerializer);
    let transactions = [(1, 100), (2, 101), (1, 102), (2, 103), (1, 104), (2, 105)];
    for (atmid, transid) in transactions {
        let value = json!({ "atmid": atmid, "transid": transid });
        let meta = atm
            .send(TOPIC, Some(&format!("atm{atmid}")), Some(&value))?
            .wait()?;
        println!(
            "sent {value} to {}-{} at offset {}",
            meta.topic(),
            meta.partition(),
            meta.offset()
        );
    }
    producer.close(Duration::from_secs(10))?;

    // 4. Consume: iterate until 3 s pass without a new transaction.
    let mut consumer = Consumer::builder()
        .bootstrap_servers(&servers)
        .group_id("bankbranch-auditors")
        .auto_offset_reset("earliest")
        // The local test broker (Tansu) holds a group's first join for half
        // the session timeout.
        .session_timeout_ms(6_000)
        .heartbeat_interval_ms(2_000)
        .consumer_timeout_ms(3_000)
        .build()?;
    consumer.subscribe([TOPIC])?;
    let mut seen = 0;
    for msg in &mut consumer {
        let msg = msg?;
        let key: Option<&str> = msg.key_as()?;
        // kafka-python's value_deserializer=lambda m: json.loads(m)
        let tx: Value = msg.value_with(&JsonDeserializer)?;
        println!(
            "received {tx} (key {}, {}-{} offset {})",
            key.unwrap_or("-"),
            msg.topic(),
            msg.partition(),
            msg.offset()
        );
        seen += 1;
    }
    println!("{seen} transactions read; the group's offsets are committed on close");
    consumer.close(true)?;
    Ok(())
}
