//! The producer against a real broker (and a fault-injecting proxy).

use std::collections::HashMap;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_blocking::producer::{partition_for_key, Producer, ProducerBuilder, Record};
use kafka_blocking::ErrorKind;

use crate::faults::ProxiedBroker;
use crate::harness::{bootstrap, client, create_topic, fetch_all, unique_topic};

fn producer() -> ProducerBuilder {
    Producer::builder()
        .bootstrap_servers(bootstrap())
        .request_timeout_ms(10_000)
}

/// 100k keyed records from 8 threads sharing one producer: every record
/// is stored exactly once, per-key order is kept, and each key lands on the
/// partition the Java client's murmur2 partitioner picks.
#[test]
fn many_threads_share_one_producer() {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 12_500;
    const PARTITIONS: i32 = 6;
    let c = client();
    let topic = unique_topic("p-threads");
    create_topic(&c, &topic, PARTITIONS);
    let p = producer().linger_ms(10).build().expect("producer");
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let p = p.clone();
            let topic = topic.as_str();
            s.spawn(move || {
                for i in 0..PER_THREAD {
                    // Keys are per thread, so per-key order is the send order.
                    let key = format!("t{t}-k{}", i % 50);
                    let value = format!("{t}:{i}");
                    let _ = p
                        .send(Record::new(topic).key(&key).value(value))
                        .expect("send");
                }
            });
        }
    });
    p.flush(Duration::from_secs(60)).expect("flush");
    let m = p.metrics();
    assert_eq!(m.records_sent, (THREADS * PER_THREAD) as u64, "{m:?}");
    assert_eq!(m.record_errors, 0);

    let records = fetch_all(&c, &topic);
    assert_eq!(records.len(), THREADS * PER_THREAD, "records stored");
    let mut seen = vec![vec![false; PER_THREAD]; THREADS];
    let mut last_per_key: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut by_partition: HashMap<i32, Vec<&crate::harness::Fetched>> = HashMap::new();
    for r in &records {
        by_partition.entry(r.partition).or_default().push(r);
    }
    for list in by_partition.values_mut() {
        list.sort_by_key(|r| r.offset);
    }
    for list in by_partition.values() {
        for r in list {
            let key = r.key.clone().expect("key");
            assert_eq!(
                r.partition,
                partition_for_key(&key, PARTITIONS),
                "key {:?} on the wrong partition",
                String::from_utf8_lossy(&key)
            );
            let value = String::from_utf8(r.value.clone().expect("value")).expect("utf8");
            let (t, i) = value.split_once(':').expect("t:i");
            let (t, i): (usize, usize) = (t.parse().expect("t"), i.parse().expect("i"));
            assert!(!seen[t][i], "record {t}:{i} stored twice");
            seen[t][i] = true;
            if let Some(prev) = last_per_key.insert(key.clone(), i) {
                assert!(
                    prev < i,
                    "key {:?}: {i} after {prev}",
                    String::from_utf8_lossy(&key)
                );
            }
        }
    }
    assert!(
        seen.iter().flatten().all(|s| *s),
        "some records are missing"
    );
    p.close(Duration::from_secs(10)).expect("close");
}

/// Every codec round-trips, with headers, explicit timestamps and null
/// keys/values, and the futures report the offsets the broker assigned.
#[test]
fn codecs_headers_and_timestamps_round_trip() {
    let c = client();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = unique_topic(&format!("p-codec-{codec}"));
        create_topic(&c, &topic, 1);
        let p = producer()
            .compression_type(codec)
            .build()
            .expect("producer");
        let mut futures = Vec::new();
        for i in 0..200i64 {
            let mut r = Record::new(topic.as_str())
                .partition(0)
                .timestamp(1_600_000_000_000 + i)
                .header("codec", codec)
                .header("i", i);
            if i % 7 != 0 {
                r = r.key(format!("k{i}"));
            }
            if i % 11 != 0 {
                r = r.value(format!("v{i}-{}", "z".repeat(i as usize)));
            } else {
                r = r.null_header("tombstone");
            }
            futures.push(p.send(r).expect("send"));
        }
        let metas: Vec<_> = futures
            .iter()
            .map(|f| f.wait().expect("delivered"))
            .collect();
        for (i, m) in metas.iter().enumerate() {
            assert_eq!(m.offset(), i as i64, "{codec}");
            assert_eq!(m.timestamp(), 1_600_000_000_000 + i as i64);
            assert_eq!(m.partition(), 0);
        }
        let got = fetch_all(&c, &topic);
        assert_eq!(got.len(), 200, "{codec}");
        for (i, r) in got.iter().enumerate() {
            let i64i = i as i64;
            assert_eq!(r.offset, i64i);
            assert_eq!(r.timestamp, 1_600_000_000_000 + i64i, "{codec}");
            assert_eq!(r.key.is_none(), i % 7 == 0);
            if i % 11 == 0 {
                assert!(r.value.is_none());
                assert_eq!(r.headers.len(), 3);
                assert_eq!(r.headers[2], ("tombstone".to_owned(), None));
            } else {
                let v = format!("v{i}-{}", "z".repeat(i));
                assert_eq!(r.value.as_deref(), Some(v.as_bytes()));
            }
            assert_eq!(
                r.headers[0],
                ("codec".to_owned(), Some(codec.as_bytes().to_vec()))
            );
            assert_eq!(
                r.headers[1],
                ("i".to_owned(), Some(i64i.to_be_bytes().to_vec()))
            );
        }
        assert!(p.metrics().compression_ratio <= 1.0 || codec == "none");
        p.close(Duration::from_secs(5)).expect("close");
    }
}

#[test]
fn a_record_over_max_request_size_fails_at_once() {
    let c = client();
    let topic = unique_topic("p-large");
    create_topic(&c, &topic, 1);
    let p = producer()
        .max_request_size(10_000)
        .build()
        .expect("producer");
    let big = vec![b'x'; 20_000];
    let t0 = Instant::now();
    let e = p
        .send(Record::new(topic.as_str()).value(&big))
        .expect_err("too large");
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(e.kind(), ErrorKind::MessageTooLarge);
    let s = e.to_string();
    assert!(s.contains("max_request_size") && s.contains("10000"), "{s}");
    // A record that fits still goes through.
    p.send(Record::new(topic.as_str()).value("small"))
        .expect("send")
        .wait()
        .expect("delivered");
}

/// With the broker stuck, the buffer fills, `send` blocks for max_block_ms
/// and then fails with BufferExhausted.
#[test]
fn full_buffer_blocks_then_fails() {
    let ProxiedBroker {
        proxy,
        broker: _broker,
    } = ProxiedBroker::start();
    let p = Producer::builder()
        .bootstrap_servers(proxy.addr())
        .buffer_memory(64 * 1024)
        .batch_size(16 * 1024)
        .max_block_ms(500)
        .request_timeout_ms(5_000)
        .build()
        .expect("producer");
    let topic = unique_topic("p-full");
    p.partitions_for(&topic).expect("auto-created topic");
    proxy.knobs.swallow_responses.store(true, SeqCst);
    let value = vec![b'v'; 1000];
    let mut blocked = None;
    for i in 0..10_000 {
        let t0 = Instant::now();
        match p.send(Record::new(topic.as_str()).partition(i % 4).value(&value)) {
            Ok(_) => {}
            Err(e) => {
                blocked = Some((e, t0.elapsed()));
                break;
            }
        }
    }
    let (e, took) = blocked.expect("the buffer never filled");
    assert_eq!(e.kind(), ErrorKind::BufferExhausted, "{e}");
    assert!(e.to_string().contains("buffer_memory"), "{e}");
    assert!(
        took >= Duration::from_millis(450),
        "failed after {took:?}, before max_block_ms"
    );
    let _ = p.close(Duration::from_millis(100));
}

/// A broker that stops answering makes every future fail with a timeout
/// once delivery_timeout_ms has passed; nothing hangs.
#[test]
fn dead_broker_fails_futures_after_delivery_timeout() {
    let ProxiedBroker { proxy, broker } = ProxiedBroker::start();
    let p = Producer::builder()
        .bootstrap_servers(proxy.addr())
        .request_timeout_ms(500)
        .linger_ms(0)
        .delivery_timeout_ms(2_000)
        .reconnect_backoff_max_ms(200)
        .build()
        .expect("producer");
    let topic = unique_topic("p-dead");
    p.partitions_for(&topic).expect("auto-created topic");
    drop(broker);
    proxy.cut_all();
    let t0 = Instant::now();
    let futures: Vec<_> = (0..20)
        .map(|i| {
            p.send(Record::new(topic.as_str()).partition(i % 4).value("x"))
                .expect("send")
        })
        .collect();
    for f in &futures {
        let e = f
            .get(Duration::from_secs(30))
            .expect_err("cannot be delivered");
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        assert!(e.to_string().contains("delivery_timeout_ms"), "{e}");
    }
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(1_900),
        "failed early: {took:?}"
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let _ = p.close(Duration::from_millis(100));
}

/// close() delivers what is still lingering.
#[test]
fn close_delivers_pending_records() {
    let c = client();
    let topic = unique_topic("p-close");
    create_topic(&c, &topic, 2);
    let p = producer().linger_ms(60_000).build().expect("producer");
    let futures: Vec<_> = (0..100)
        .map(|i| {
            p.send(Record::new(topic.as_str()).key(format!("{i}")).value("x"))
                .expect("send")
        })
        .collect();
    assert!(
        futures.iter().all(|f| !f.is_done()),
        "linger should hold them"
    );
    p.close(Duration::from_secs(10)).expect("close");
    for f in &futures {
        f.try_get().expect("done after close").expect("delivered");
    }
    assert_eq!(fetch_all(&c, &topic).len(), 100);
    let e = p
        .send(Record::new(topic.as_str()).value("late"))
        .expect_err("closed");
    assert_eq!(e.kind(), ErrorKind::Closed);
}

/// Callbacks run without anyone polling.
#[test]
fn callbacks_run_on_their_own() {
    let c = client();
    let topic = unique_topic("p-cb");
    create_topic(&c, &topic, 1);
    let p = producer().build().expect("producer");
    let (tx, rx) = crossbeam_channel::unbounded();
    for i in 0..50 {
        let tx = tx.clone();
        p.send_with_callback(
            Record::new(topic.as_str()).value(format!("{i}")),
            move |r| {
                let _ = tx.send(r.map(|m| m.offset()));
            },
        )
        .expect("send");
    }
    let mut offsets: Vec<i64> = (0..50)
        .map(|_| {
            rx.recv_timeout(Duration::from_secs(20))
                .expect("callback ran")
                .expect("delivered")
        })
        .collect();
    offsets.sort();
    assert_eq!(offsets, (0..50).collect::<Vec<_>>());
}

/// linger_ms 0, one record at a time (a request/reply service): `send()`
/// takes the sender's turn itself and the connection's reader settles each
/// answer, so the sender thread is not woken per record; every record is
/// stored once and in order, and callbacks still run on the sender thread
/// only, never on the caller's or a reader's.
#[test]
fn one_at_a_time_with_linger_zero_needs_no_sender_wakeup_per_record() {
    const N: i64 = 300;
    let c = client();
    let topic = unique_topic("p-linger0");
    create_topic(&c, &topic, 1);
    let p = producer().linger_ms(0).build().expect("producer");
    // The first send sets up the topic and the producer id.
    p.send(Record::new(topic.as_str()).value("0"))
        .expect("send")
        .wait()
        .expect("delivered");
    let before = p.metrics().sender_wakeups;
    for i in 1..N {
        let meta = p
            .send(Record::new(topic.as_str()).value(i.to_string()))
            .expect("send")
            .wait()
            .expect("delivered");
        assert_eq!(meta.offset(), i);
    }
    let wakeups = p.metrics().sender_wakeups - before;
    // Without it the sender wakes at least twice per record (the record,
    // its answer); what is left are its timer ticks and the odd race.
    assert!(
        wakeups < (N as u64) / 4,
        "the sender woke {wakeups} times for {N} records"
    );
    let (tx, rx) = crossbeam_channel::unbounded();
    for i in N..N + 20 {
        let tx = tx.clone();
        p.send_with_callback(Record::new(topic.as_str()).value(i.to_string()), move |r| {
            let thread = std::thread::current().name().map(str::to_owned);
            let _ = tx.send((r.map(|m| m.offset()), thread));
        })
        .expect("send");
        let (offset, thread) = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the callback ran");
        assert_eq!(offset.expect("delivered"), i);
        assert_eq!(thread.as_deref(), Some("kafka-producer-sender"));
    }
    p.close(Duration::from_secs(10)).expect("close");
    let values: Vec<i64> = fetch_all(&c, &topic)
        .iter()
        .map(|r| {
            String::from_utf8_lossy(r.value.as_deref().unwrap_or_default())
                .parse()
                .unwrap_or(-1)
        })
        .collect();
    assert_eq!(values, (0..N + 20).collect::<Vec<_>>());
}

/// The proxy cuts every connection after a few KB of responses (and the
/// test cuts them all now and then): with idempotence and acks=all, 50k
/// records still end up stored exactly once and in order per partition.
#[test]
fn cut_connections_lose_and_duplicate_nothing() {
    const N: usize = 50_000;
    let ProxiedBroker {
        proxy,
        broker: _broker,
    } = ProxiedBroker::start();
    proxy.knobs.cut_after_response_bytes.store(4_000, SeqCst);
    let p = Producer::builder()
        .bootstrap_servers(proxy.addr())
        .linger_ms(2)
        .batch_size(4_096)
        .request_timeout_ms(5_000)
        .reconnect_backoff_ms(5)
        .reconnect_backoff_max_ms(50)
        .retry_backoff_ms(10)
        .build()
        .expect("producer");
    let topic = unique_topic("p-cut");
    p.partitions_for(&topic).expect("auto-created topic");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let connections = {
        let proxy = &proxy;
        std::thread::scope(|s| {
            let stop_cutter = Arc::clone(&stop);
            s.spawn(move || {
                let stop = stop_cutter;
                let mut n = 0;
                while !stop.load(SeqCst) && n < 200 {
                    std::thread::sleep(Duration::from_millis(50));
                    proxy.cut_all();
                    n += 1;
                }
                n
            });
            let mut futures = Vec::with_capacity(N);
            for i in 0..N {
                futures.push(
                    p.send(
                        Record::new(topic.as_str())
                            .key(format!("k{}", i % 97))
                            .value(format!("{i}")),
                    )
                    .expect("send"),
                );
            }
            for f in &futures {
                f.get(Duration::from_secs(120))
                    .expect("delivered despite the cuts");
            }
            stop.store(true, SeqCst);
        });
        proxy.knobs.accepted.load(SeqCst)
    };
    assert!(
        connections > 3,
        "the proxy should have seen reconnects ({connections} connections)"
    );
    proxy.knobs.cut_after_response_bytes.store(0, SeqCst);
    let m = p.metrics();
    assert!(m.retries > 0, "no retry happened: {m:?}");
    // Read back directly from the broker (not through the proxy).
    let c = kafka_blocking::Client::new(
        kafka_blocking::ClientConfig::builder()
            .bootstrap_servers(proxy.addr())
            .build()
            .expect("config"),
    )
    .expect("client");
    let got = fetch_all(&c, &topic);
    let mut seen = vec![false; N];
    let mut last: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut sorted = got.clone();
    sorted.sort_by_key(|r| (r.partition, r.offset));
    for r in &sorted {
        let i: usize = String::from_utf8(r.value.clone().expect("value"))
            .expect("utf8")
            .parse()
            .expect("index");
        assert!(!seen[i], "record {i} stored twice");
        seen[i] = true;
        let key = r.key.clone().expect("key");
        if let Some(prev) = last.insert(key, i) {
            assert!(prev < i, "reordered: {i} after {prev}");
        }
    }
    let missing = seen.iter().filter(|s| !**s).count();
    assert_eq!(missing, 0, "{missing} records lost");
    assert_eq!(got.len(), N);
}

/// acks=0: the broker sends no answer; futures complete once written, with
/// offset -1, and the records are stored.
#[test]
fn acks_zero_fires_and_forgets() {
    let c = client();
    let topic = unique_topic("p-acks0");
    create_topic(&c, &topic, 1);
    let p = producer().acks(0).build().expect("producer");
    let futures: Vec<_> = (0..300)
        .map(|i| {
            p.send(Record::new(topic.as_str()).value(format!("{i}")))
                .expect("send")
        })
        .collect();
    for f in &futures {
        assert_eq!(f.wait().expect("written").offset(), -1);
    }
    p.close(Duration::from_secs(5)).expect("close");
    let mut got = Vec::new();
    for _ in 0..50 {
        got = fetch_all(&c, &topic);
        if got.len() >= 300 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(got.len(), 300);
}

/// A panicking callback does not take the producer down, and waiting for a
/// delivery inside a callback fails instead of deadlocking.
#[test]
fn callbacks_that_panic_or_wait_do_not_wedge_the_producer() {
    let c = client();
    let topic = unique_topic("p-cb-bad");
    create_topic(&c, &topic, 1);
    let p = producer().build().expect("producer");
    p.send_with_callback(Record::new(topic.as_str()).value("boom"), |_| {
        panic!("a user callback panics");
    })
    .expect("send");
    let other = p
        .send(Record::new(topic.as_str()).value("later"))
        .expect("send");
    let (tx, rx) = crossbeam_channel::bounded(1);
    p.send_with_callback(Record::new(topic.as_str()).value("waits"), move |_| {
        let _ = tx.send(other.get(Duration::from_secs(5)).map(|m| m.offset()));
    })
    .expect("send");
    let waited = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("callback ran");
    // Either the other batch was already complete, or waiting was refused.
    if let Err(e) = waited {
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    }
    p.send(Record::new(topic.as_str()).value("after"))
        .expect("send")
        .wait()
        .expect("the sender survived the panic");
    p.close(Duration::from_secs(5)).expect("close");
}

/// Typed sends: the Java client's number/string encodings and JSON.
#[test]
fn typed_producer_serializes_like_the_java_client() {
    use kafka_blocking::producer::{BigEndianSerializer, JsonSerializer, StringSerializer};
    let c = client();
    let topic = unique_topic("p-typed");
    create_topic(&c, &topic, 1);
    let p = producer().build().expect("producer");
    let doubles = p.typed::<str, f64>(StringSerializer, BigEndianSerializer);
    doubles
        .send(&topic, Some("pi"), Some(&std::f64::consts::PI))
        .expect("send")
        .wait()
        .expect("delivered");
    let json = p.typed::<i64, serde_json::Value>(BigEndianSerializer, JsonSerializer);
    let txn = serde_json::json!({"atmid": 1, "transid": 100});
    json.send(&topic, Some(&7), Some(&txn))
        .expect("send")
        .wait()
        .expect("delivered");
    let got = fetch_all(&c, &topic);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].key.as_deref(), Some(&b"pi"[..]));
    assert_eq!(
        got[0].value.as_deref(),
        Some(&std::f64::consts::PI.to_be_bytes()[..])
    );
    assert_eq!(got[1].key.as_deref(), Some(&7i64.to_be_bytes()[..]));
    assert_eq!(
        got[1].value.as_deref(),
        Some(&br#"{"atmid":1,"transid":100}"#[..])
    );
}
