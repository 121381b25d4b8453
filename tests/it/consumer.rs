//! The consumer without a group: assign, iterate, poll, seek, pause,
//! lookups, compression and headers.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use kafka_blocking::consumer::{Consumer, ConsumerBuilder, TopicPartition};
use kafka_blocking::producer::{Producer, Record};
use kafka_blocking::records::TimestampType;

use crate::harness::{bootstrap, client, create_topic, produce_batch, unique_topic};

/// Produces `n` records `i -> "v{i}"` with key `k{i}`, record i to partition
/// i mod `partitions`.
pub fn produce(topic: &str, partitions: i32, n: usize) {
    produce_to(&bootstrap(), topic, partitions, n, "none");
}

/// [`produce`] through `servers` with `codec`.
pub fn produce_to(servers: &str, topic: &str, partitions: i32, n: usize, codec: &str) {
    let p = Producer::builder()
        .bootstrap_servers(servers)
        .linger_ms(5)
        .compression_type(codec)
        .build()
        .expect("producer");
    for i in 0..n {
        let _ = p
            .send(
                Record::new(topic)
                    .partition((i % partitions as usize) as i32)
                    .key(format!("k{i}"))
                    .value(format!("v{i}")),
            )
            .expect("send");
    }
    p.flush(Duration::from_secs(60)).expect("flush");
    p.close(Duration::from_secs(10)).expect("close");
}

/// One record per partition, each in a batch of its own (Tansu 0.6 answers
/// ListOffsets "latest" with the last batch's base offset + 1, which is only
/// the end when that batch holds one record).
fn produce_single_tail(topic: &str, partitions: i32) {
    let p = Producer::builder()
        .bootstrap_servers(bootstrap())
        .linger_ms(0)
        .build()
        .expect("producer");
    for part in 0..partitions {
        p.send(Record::new(topic).partition(part).value("tail"))
            .expect("send")
            .wait()
            .expect("delivered");
    }
    p.close(Duration::from_secs(10)).expect("close");
}

fn consumer() -> ConsumerBuilder {
    Consumer::builder()
        .bootstrap_servers(bootstrap())
        .auto_offset_reset("earliest")
        .consumer_timeout_ms(2_000)
}

#[test]
fn iterates_100k_records_in_order_then_stops() {
    const N: usize = 100_000;
    let topic = unique_topic("c-iterate");
    create_topic(&client(), &topic, 3);
    produce(&topic, 3, N);
    let mut c = consumer().build().expect("consumer");
    c.assign((0..3).map(|p| (topic.as_str(), p)))
        .expect("assign");
    let mut next: HashMap<i32, i64> = HashMap::new();
    let mut n = 0;
    for m in &mut c {
        let m = m.expect("record");
        let want = next.entry(m.partition()).or_insert(0);
        assert_eq!(m.offset(), *want, "offsets in order per partition");
        *want += 1;
        let i: usize = m.value_as::<&str>().unwrap()[1..].parse().unwrap();
        assert_eq!(i % 3, m.partition() as usize);
        assert_eq!(m.key_as::<&str>().unwrap(), format!("k{i}"));
        assert_eq!(m.topic(), topic);
        assert_eq!(m.timestamp_type(), Some(TimestampType::CreateTime));
        n += 1;
    }
    // The loop ended: consumer_timeout_ms passed without a record.
    assert_eq!(n, N);
    let m = c.metrics();
    assert_eq!(m.records_consumed, N as u64);
    assert_eq!(m.assigned_partitions, 3);
    assert_eq!(m.records_lag_max, 0);
    assert!(m.fetch_requests > 0 && m.fetch_bytes > 0, "{m:?}");
    for p in 0..3 {
        assert_eq!(c.highwater((topic.as_str(), p)), Some(next[&p]));
    }
}

/// On a steady stream each fetch answer sends its broker's next request
/// where it is handled (the connection's reader, or the consumer taking
/// the chunk): the fetch thread is woken only to start, not once per answer.
#[test]
fn a_steady_stream_does_not_wake_the_fetch_thread_per_answer() {
    const N: usize = 100;
    let topic = unique_topic("c-steady");
    create_topic(&client(), &topic, 1);
    let p = Producer::builder()
        .bootstrap_servers(bootstrap())
        .linger_ms(0)
        .build()
        .expect("producer");
    let mut c = consumer().fetch_max_wait_ms(5).build().expect("consumer");
    c.assign([(topic.as_str(), 0)]).expect("assign");
    // One record at a time, each read before the next is sent: at least
    // one answer per record, and empty answers between them.
    for i in 0..N {
        p.send(
            Record::new(topic.as_str())
                .partition(0)
                .value(format!("v{i}")),
        )
        .expect("send")
        .wait()
        .expect("delivered");
        let m = c.next().expect("a record").expect("record");
        assert_eq!(m.offset(), i as i64);
    }
    p.close(Duration::from_secs(10)).expect("close");
    let m = c.metrics();
    assert!(m.fetch_requests >= N as u64, "{m:?}");
    // Before answers sent the next request themselves, every answer (or
    // the consumer taking it) woke the fetch thread: as many wake-ups as
    // answers. Now: the assignment, the first connection, a few more.
    assert!(
        m.fetch_thread_wakeups * 10 < m.fetch_requests,
        "fetch thread woken {} times for {} answers",
        m.fetch_thread_wakeups,
        m.fetch_requests
    );
}

#[test]
fn poll_returns_at_most_max_poll_records() {
    let topic = unique_topic("c-poll");
    create_topic(&client(), &topic, 1);
    produce(&topic, 1, 250);
    let mut c = consumer().max_poll_records(100).build().expect("consumer");
    c.assign([(topic.as_str(), 0)]).expect("assign");
    let mut sizes = Vec::new();
    let mut offsets = Vec::new();
    while offsets.len() < 250 {
        let r = c.poll(Duration::from_secs(10)).expect("poll");
        assert!(!r.is_empty(), "nothing within 10 s");
        assert!(r.len() <= 100);
        assert_eq!(r.partitions(), vec![TopicPartition::new(topic.as_str(), 0)]);
        sizes.push(r.len());
        offsets.extend(r.into_iter().map(|m| m.offset()));
    }
    assert_eq!(offsets, (0..250).collect::<Vec<i64>>());
    assert!(c.poll(Duration::from_millis(200)).expect("poll").is_empty());
}

#[test]
fn seek_pause_resume_and_positions() {
    let topic = unique_topic("c-seek");
    create_topic(&client(), &topic, 2);
    produce(&topic, 2, 98);
    produce_single_tail(&topic, 2); // 50 records per partition
    let (p0, p1) = (
        TopicPartition::new(topic.as_str(), 0),
        TopicPartition::new(topic.as_str(), 1),
    );
    let mut c = consumer().build().expect("consumer");
    c.assign([&p0, &p1]).expect("assign");
    assert_eq!(c.position(&p0).expect("position"), 0, "earliest");

    c.seek(&p0, 10).expect("seek");
    c.seek_to_end([&p1]).expect("seek_to_end");
    assert_eq!(c.position(&p1).expect("position"), 50);
    let first = c.next().expect("a record").expect("record");
    assert_eq!((first.partition(), first.offset()), (0, 10));
    let rest: Vec<(i32, i64)> = c
        .by_ref()
        .map(|m| m.map(|m| (m.partition(), m.offset())).expect("record"))
        .collect();
    assert_eq!(rest.len(), 39, "offsets 11..50 of partition 0 only");
    assert!(rest.iter().all(|(p, _)| *p == 0));
    assert_eq!(c.position(&p0).expect("position"), 50);

    // Back to the start, with partition 0 paused.
    c.seek_to_beginning(Vec::<TopicPartition>::new())
        .expect("seek_to_beginning");
    c.pause([&p0]).expect("pause");
    assert_eq!(c.paused(), vec![p0.clone()]);
    let got: Vec<(i32, i64)> = c
        .by_ref()
        .map(|m| m.map(|m| (m.partition(), m.offset())).expect("record"))
        .collect();
    assert_eq!(got.len(), 50);
    assert!(
        got.iter().all(|(p, _)| *p == 1),
        "nothing from the paused partition"
    );
    assert_eq!(c.position(&p0).expect("position"), 0);
    c.resume([&p0]).expect("resume");
    let got: Vec<i64> = c
        .by_ref()
        .map(|m| m.map(|m| m.offset()).expect("record"))
        .collect();
    assert_eq!(got, (0..50).collect::<Vec<i64>>());
}

#[test]
fn offset_and_metadata_lookups() {
    let topic = unique_topic("c-lookup");
    create_topic(&client(), &topic, 2);
    produce(&topic, 2, 38);
    produce_single_tail(&topic, 2); // 20 records per partition
    let c = consumer()
        .allow_auto_create_topics(false)
        .build()
        .expect("consumer");
    let parts = [(topic.as_str(), 0), (topic.as_str(), 1)];
    let begin = c.beginning_offsets(parts).expect("beginning_offsets");
    let end = c.end_offsets(parts).expect("end_offsets");
    for p in 0..2 {
        let tp = TopicPartition::new(topic.as_str(), p);
        assert_eq!(begin[&tp], 0);
        assert_eq!(end[&tp], 20);
    }
    assert!(c.topics().expect("topics").contains(&topic));
    assert_eq!(c.partitions_for_topic(&topic).expect("partitions").len(), 2);
    let missing = unique_topic("c-lookup-missing");
    assert!(c
        .partitions_for_topic(&missing)
        .expect("partitions")
        .is_empty());
}

/// Real Kafka: the end of a partition whose last batch has many records, and
/// timestamp lookups.
#[test]
#[cfg_attr(
    not(kafka_external),
    ignore = "needs real Kafka: Tansu 0.6 answers ListOffsets by timestamp and the end of a many-record batch wrong; set KAFKA_BOOTSTRAP_SERVERS"
)]
fn offsets_for_times_and_the_end_of_a_many_record_batch() {
    let c = consumer()
        .allow_auto_create_topics(false)
        .build()
        .expect("consumer");
    let t2 = unique_topic("c-lookup-times");
    create_topic(&client(), &t2, 1);
    let p = Producer::builder()
        .bootstrap_servers(bootstrap())
        .linger_ms(20)
        .build()
        .expect("producer");
    for i in 0..10 {
        let _ = p
            .send(
                Record::new(t2.as_str())
                    .partition(0)
                    .timestamp(1_000 + i * 100)
                    .value("x"),
            )
            .expect("send");
    }
    p.flush(Duration::from_secs(30)).expect("flush");
    let tp = TopicPartition::new(t2.as_str(), 0);
    assert_eq!(c.end_offsets([&tp]).expect("end")[&tp], 10);
    let found = c
        .offsets_for_times([(&tp, 1_250)])
        .expect("offsets_for_times");
    let hit = found[&tp].expect("a record at or after 1250");
    assert_eq!((hit.offset, hit.timestamp), (3, 1_300));
    let none = c
        .offsets_for_times([(&tp, 99_999)])
        .expect("offsets_for_times");
    assert_eq!(none[&tp], None);
}

#[test]
fn compressed_batches_headers_and_timestamps() {
    let topic = unique_topic("c-codecs");
    let codecs = ["none", "gzip", "snappy", "lz4", "zstd"];
    create_topic(&client(), &topic, codecs.len() as i32);
    for (p, codec) in codecs.iter().enumerate() {
        let producer = Producer::builder()
            .bootstrap_servers(bootstrap())
            .linger_ms(20)
            .compression_type(*codec)
            .build()
            .expect("producer");
        for i in 0..200i64 {
            let _ = producer
                .send(
                    Record::new(topic.as_str())
                        .partition(p as i32)
                        .key(i)
                        .value(format!("{codec}-{i}").repeat(3))
                        .header("codec", *codec)
                        .null_header("nothing")
                        .timestamp(1_700_000_000_000 + i),
                )
                .expect("send");
        }
        producer.flush(Duration::from_secs(30)).expect("flush");
    }
    let mut c = consumer().build().expect("consumer");
    c.assign((0..codecs.len() as i32).map(|p| (topic.as_str(), p)))
        .expect("assign");
    let mut per_partition: HashMap<i32, i64> = HashMap::new();
    for m in &mut c {
        let m = m.expect("record");
        let codec = codecs[m.partition() as usize];
        let i: i64 = m.key_as().expect("i64 key");
        assert_eq!(i, m.offset());
        assert_eq!(
            m.value_as::<&str>().unwrap(),
            format!("{codec}-{i}").repeat(3)
        );
        assert_eq!(m.timestamp(), 1_700_000_000_000 + i);
        let headers: Vec<(String, Option<Vec<u8>>)> = m
            .headers()
            .iter()
            .map(|(k, v)| (k.to_owned(), v.map(|b| b.to_vec())))
            .collect();
        assert_eq!(
            headers,
            [
                ("codec".to_owned(), Some(codec.as_bytes().to_vec())),
                ("nothing".to_owned(), None)
            ]
        );
        *per_partition.entry(m.partition()).or_insert(0) += 1;
    }
    assert_eq!(
        per_partition.values().copied().collect::<BTreeSet<i64>>(),
        [200].into()
    );
    assert_eq!(per_partition.len(), codecs.len());
}

#[test]
#[cfg_attr(
    not(kafka_external),
    ignore = "needs real Kafka: Tansu 0.6 answers a fetch past the end with no data instead of OFFSET_OUT_OF_RANGE; set KAFKA_BOOTSTRAP_SERVERS"
)]
fn an_out_of_range_position_follows_auto_offset_reset() {
    let topic = unique_topic("c-range");
    create_topic(&client(), &topic, 1);
    produce(&topic, 1, 20);
    let tp = TopicPartition::new(topic.as_str(), 0);
    let mut c = consumer().build().expect("consumer");
    c.assign([&tp]).expect("assign");
    c.seek(&tp, 1_000).expect("seek past the end");
    let first = c.next().expect("a record").expect("reset to earliest");
    assert_eq!(first.offset(), 0);

    let mut strict = consumer()
        .auto_offset_reset("none")
        .build()
        .expect("consumer");
    strict.assign([&tp]).expect("assign");
    strict.seek(&tp, 1_000).expect("seek past the end");
    let e = strict.next().expect("an error").unwrap_err();
    assert_eq!(
        e.kafka_code(),
        Some(kafka_blocking::protocol::ErrorCode::OFFSET_OUT_OF_RANGE),
        "{e}"
    );
    assert_eq!((e.partition(), e.offset()), (Some(0), Some(1_000)));
    strict.seek(&tp, 15).expect("seek");
    let m = strict.next().expect("a record").expect("record");
    assert_eq!(m.offset(), 15);
}

/// A genuine zstd batch of one record that decompresses to just over the
/// default cap (64 MiB of zeros, a few KB on the wire): the default
/// consumer reports a Compression error naming the setting to raise, and a
/// consumer with `max_decompressed_bytes` raised reads it.
#[test]
fn a_batch_past_the_decompression_cap_is_readable_once_the_cap_is_raised() {
    use kafka_blocking::records::{
        BatchOptions, Compression, RecordBatchBuilder, DEFAULT_MAX_DECOMPRESSED_BYTES,
    };

    let c = client();
    let topic = unique_topic("c-bomb");
    create_topic(&c, &topic, 1);
    let leader = c.metadata().topic(&topic).expect("topic").partitions[0].leader;
    let value = vec![0u8; DEFAULT_MAX_DECOMPRESSED_BYTES + 1];
    let mut b = RecordBatchBuilder::new();
    b.append(0, None, Some(&value), []).expect("append");
    let batch = b
        .build(&BatchOptions {
            compression: Compression::Zstd,
            ..BatchOptions::default()
        })
        .expect("build");
    assert!(batch.len() < 1 << 20, "{} bytes on the wire", batch.len());
    let p = produce_batch(&c, leader, &topic, batch);
    assert_eq!(p.error_code, 0, "{p:?}");

    let tp = TopicPartition::new(topic.as_str(), 0);
    let mut capped = consumer()
        .consumer_timeout_ms(30_000)
        .build()
        .expect("consumer");
    capped.assign([&tp]).expect("assign");
    let e = capped
        .next()
        .expect("an answer")
        .expect_err("over the default cap");
    assert_eq!(e.kind(), kafka_blocking::ErrorKind::Compression, "{e}");
    assert!(
        e.to_string()
            .contains("ConsumerBuilder::max_decompressed_bytes"),
        "{e}"
    );
    assert_eq!((e.partition(), e.offset()), (Some(0), Some(0)), "{e}");

    let mut raised = consumer()
        .consumer_timeout_ms(30_000)
        .max_decompressed_bytes(2 * DEFAULT_MAX_DECOMPRESSED_BYTES as i64)
        .build()
        .expect("consumer");
    raised.assign([&tp]).expect("assign");
    let m = raised.next().expect("a record").expect("read");
    assert_eq!(
        (m.offset(), m.value().map(|v| v.len())),
        (0, Some(value.len()))
    );
}
