//! Bad input from the user: every row calls a public method with a topic
//! name, partition, offset or size out of range and expects a typed
//! `InvalidArgument` error (`MessageTooLarge` for a record over
//! `max_request_size`) whose message names the argument, before
//! anything reaches the broker.

use kafka_blocking::admin::{AdminClient, NewPartitions, NewTopic};
use kafka_blocking::consumer::{Consumer, OffsetAndMetadata, TopicPartition};
use kafka_blocking::producer::{Producer, Record};
use kafka_blocking::{ErrorKind, Result};

use crate::harness::{bootstrap, client, create_topic, unique_topic};

type Row<'a> = (
    &'static str,
    &'static str,
    Box<dyn FnOnce() -> Result<()> + 'a>,
);

fn first<T>(items: Vec<(T, Result<impl Sized>)>) -> Result<()> {
    match items.into_iter().next() {
        Some((_, r)) => r.map(|_| ()),
        None => Ok(()),
    }
}

#[test]
fn out_of_range_arguments_get_typed_errors_naming_them() {
    let topic = unique_topic("bad-input");
    create_topic(&client(), &topic, 1);
    let long = "x".repeat(250);
    let producer = Producer::builder()
        .bootstrap_servers(bootstrap())
        .max_request_size(10_000)
        .build()
        .expect("producer");
    let admin = AdminClient::builder()
        .bootstrap_servers(bootstrap())
        .build()
        .expect("admin");
    let consumer = || {
        Consumer::builder()
            .bootstrap_servers(bootstrap())
            .group_id(unique_topic("bad-input-g"))
            .build()
            .expect("consumer")
    };
    let big = vec![0u8; 20_000];
    let t = topic.as_str();
    let rows: Vec<Row> = vec![
        (
            "producer.send empty topic",
            "topic",
            Box::new(|| producer.send(Record::new("").value("v")).map(|_| ())),
        ),
        (
            "producer.send long topic",
            "topic",
            Box::new(|| {
                producer
                    .send(Record::new(long.as_str()).value("v"))
                    .map(|_| ())
            }),
        ),
        (
            "producer.send bad topic chars",
            "topic",
            Box::new(|| producer.send(Record::new("a b/c").value("v")).map(|_| ())),
        ),
        (
            "producer.send partition -2",
            "partition",
            Box::new(|| {
                producer
                    .send(Record::new(t).partition(-2).value("v"))
                    .map(|_| ())
            }),
        ),
        (
            "producer.send record over max_request_size",
            "max_request_size",
            Box::new(|| {
                producer
                    .send(Record::new(t).value(big.as_slice()))
                    .map(|_| ())
            }),
        ),
        (
            "producer.send timestamp -5",
            "timestamp",
            Box::new(|| {
                producer
                    .send(Record::new(t).timestamp(-5).value("v"))
                    .map(|_| ())
            }),
        ),
        (
            "producer.partitions_for empty topic",
            "topic",
            Box::new(|| producer.partitions_for("").map(|_| ())),
        ),
        (
            "consumer.subscribe empty topic",
            "topic",
            Box::new(|| consumer().subscribe([""])),
        ),
        (
            "consumer.subscribe long topic",
            "topic",
            Box::new(|| consumer().subscribe([long.as_str()])),
        ),
        (
            "consumer.assign partition -1",
            "partition",
            Box::new(|| consumer().assign([TopicPartition::new(t, -1)])),
        ),
        (
            "consumer.assign empty topic",
            "topic",
            Box::new(|| consumer().assign([TopicPartition::new("", 0)])),
        ),
        (
            "consumer.seek offset -5",
            "offset",
            Box::new(|| {
                let mut c = consumer();
                c.assign([TopicPartition::new(t, 0)])?;
                c.seek(TopicPartition::new(t, 0), -5)
            }),
        ),
        (
            "consumer.commit_offsets offset -2",
            "offset",
            Box::new(|| {
                let mut c = consumer();
                c.assign([TopicPartition::new(t, 0)])?;
                c.commit_offsets([(TopicPartition::new(t, 0), OffsetAndMetadata::new(-2))])
            }),
        ),
        (
            "consumer.partitions_for_topic empty",
            "topic",
            Box::new(|| consumer().partitions_for_topic("").map(|_| ())),
        ),
        (
            "admin.create_topics empty name",
            "topic",
            Box::new(|| first(admin.create_topics([NewTopic::new("", 1, 1)], false, None)?)),
        ),
        (
            "admin.create_topics 0 partitions",
            "partitions",
            Box::new(|| {
                first(admin.create_topics(
                    [NewTopic::new(unique_topic("bad-0p"), 0, 1)],
                    false,
                    None,
                )?)
            }),
        ),
        (
            "admin.create_topics replication -5",
            "replication",
            Box::new(|| {
                first(admin.create_topics(
                    [NewTopic::new(unique_topic("bad-rf"), 1, -5)],
                    false,
                    None,
                )?)
            }),
        ),
        (
            "admin.delete_topics empty name",
            "topic",
            Box::new(|| first(admin.delete_topics([""], None)?)),
        ),
        (
            "admin.create_partitions 0",
            "partitions",
            Box::new(|| {
                first(admin.create_partitions([NewPartitions::increase_to(t, 0)], false, None)?)
            }),
        ),
        (
            "admin.delete_records offset -5",
            "offset",
            Box::new(|| first(admin.delete_records([(TopicPartition::new(t, 0), -5)], None)?)),
        ),
        (
            "admin.delete_records partition -1",
            "partition",
            Box::new(|| first(admin.delete_records([(TopicPartition::new(t, -1), 0)], None)?)),
        ),
    ];
    let mut wrong = Vec::new();
    let n = rows.len();
    for (what, arg, call) in rows {
        let outcome = call();
        // A record over the size limit has its own kind, naming the setting.
        let kind = if arg == "max_request_size" {
            ErrorKind::MessageTooLarge
        } else {
            ErrorKind::InvalidArgument
        };
        let ok = match &outcome {
            Err(e) => e.kind() == kind && e.to_string().to_lowercase().contains(arg),
            Ok(()) => false,
        };
        println!(
            "bad input: {what}: {}",
            match &outcome {
                Ok(()) => "accepted".to_owned(),
                Err(e) => format!("{:?}: {e}", e.kind()),
            }
        );
        if !ok {
            wrong.push(what);
        }
    }
    println!(
        "bad input: {} of {n} rows give a typed error naming the argument",
        n - wrong.len()
    );
    assert!(
        wrong.is_empty(),
        "rows without a typed error naming the argument: {wrong:#?}"
    );
}
