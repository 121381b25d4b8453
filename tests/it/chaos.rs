//! The clients against `testkit::ChaosCluster`: the real local broker
//! made to look like a 3-node cluster whose leaders move, whose nodes die
//! and come back. Each test prints its numbers.
//!
//! Record counts are smaller than the 200k so that each test stays
//! well under a minute on a loaded 2-core machine; the chaos is the same
//! (leaders move every 200 ms, one node killed and revived).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kafka_blocking::consumer::Consumer;
use kafka_blocking::producer::{Producer, Record};
use kafka_blocking::testkit::ChaosCluster;

use crate::harness::{bootstrap, client, create_topic, fetch_all, unique_topic};

/// Moves every leader every `every` and kills node 2 a third of the way
/// through `span`, reviving it at two thirds; stops when `stop` is set or
/// after `span` + 60 s at the latest.
fn chaos_loop(
    cluster: Arc<ChaosCluster>,
    every: Duration,
    span: Duration,
    stop: Arc<AtomicBool>,
) -> JoinHandle<(usize, bool, bool)> {
    std::thread::spawn(move || {
        let start = Instant::now();
        let (mut moves, mut killed, mut revived) = (0usize, false, false);
        while !stop.load(SeqCst) && start.elapsed() < span + Duration::from_secs(60) {
            std::thread::sleep(every);
            moves += cluster.move_all_leaders();
            if !killed && start.elapsed() >= span / 3 {
                cluster.kill(2);
                killed = true;
            }
            if killed && !revived && start.elapsed() >= span * 2 / 3 {
                cluster.revive(2).expect("revive node 2");
                revived = true;
            }
        }
        if !revived {
            cluster.revive(2).expect("revive node 2");
        }
        (moves, killed, revived)
    })
}

fn chaos_cluster() -> Arc<ChaosCluster> {
    Arc::new(ChaosCluster::start(&bootstrap(), 3).expect("chaos cluster"))
}

#[test]
fn idempotent_producer_loses_and_duplicates_nothing_while_leaders_move_and_a_node_dies() {
    const N: usize = 100_000;
    const PARTITIONS: i32 = 6;
    let topic = unique_topic("chaos-produce");
    create_topic(&client(), &topic, PARTITIONS);
    let cluster = chaos_cluster();
    let producer = Producer::builder()
        .bootstrap_servers(cluster.bootstrap_servers())
        .enable_idempotence(true)
        .acks("all")
        .linger_ms(5)
        .delivery_timeout_ms(120_000)
        .request_timeout_ms(5_000)
        .retry_backoff_ms(20)
        .build()
        .expect("producer");
    // 1 request in 100 loses its connection, half of them after the broker
    // wrote the batch (the answer is lost: the retry must be deduplicated).
    cluster.set_cut_per_mille(10);
    let stop = Arc::new(AtomicBool::new(false));
    let chaos = chaos_loop(
        Arc::clone(&cluster),
        Duration::from_millis(200),
        Duration::from_secs(6),
        Arc::clone(&stop),
    );
    let started = Instant::now();
    let mut futures = Vec::with_capacity(N);
    for i in 0..N {
        let f = producer
            .send(
                Record::new(topic.as_str())
                    .partition((i % PARTITIONS as usize) as i32)
                    .value(format!("{i}")),
            )
            .expect("send");
        futures.push(f);
        if i % 5000 == 4999 {
            // Spread the sends over the chaos window.
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    producer.flush(Duration::from_secs(120)).expect("flush");
    stop.store(true, SeqCst);
    let (moves, killed, revived) = chaos.join().expect("chaos thread");
    let mut acked: HashMap<(i32, i64), usize> = HashMap::new();
    let mut failed = 0;
    for (i, f) in futures.iter().enumerate() {
        match f.get(Duration::from_secs(60)) {
            Ok(md) => {
                acked.insert((md.partition(), md.offset()), i);
            }
            Err(e) => {
                failed += 1;
                eprintln!("record {i}: {e}");
            }
        }
    }
    producer.close(Duration::from_secs(10)).expect("close");
    let elapsed = started.elapsed();

    let back = fetch_all(&client(), &topic);
    let mut seen = HashSet::new();
    let mut duplicates = 0;
    let mut out_of_order = 0;
    let mut last: BTreeMap<i32, usize> = BTreeMap::new();
    let mut wrong_offset = 0;
    for r in &back {
        let id: usize = std::str::from_utf8(r.value.as_deref().unwrap_or_default())
            .expect("utf8")
            .parse()
            .expect("id");
        if !seen.insert(id) {
            duplicates += 1;
        }
        if let Some(&prev) = last.get(&r.partition) {
            if id <= prev {
                out_of_order += 1;
            }
        }
        last.insert(r.partition, id);
        if acked.get(&(r.partition, r.offset)) != Some(&id) {
            wrong_offset += 1;
        }
    }
    let lost = N - seen.len();
    let stats = cluster.stats();
    println!(
        "chaos producer: {N} records, {PARTITIONS} partitions, 3 nodes, {elapsed:?}: \
         lost {lost}, duplicated {duplicates}, out of order {out_of_order}, \
         futures failed {failed}, ack offsets not matching the log {wrong_offset}; \
         leader moves {moves} (+ node death), node 2 killed {killed} revived {revived}; {stats:?}"
    );
    assert!(killed && revived, "the chaos did not happen");
    assert!(moves > 0 && stats.wrong_node > 0, "no leader move was noticed");
    assert_eq!(failed, 0, "every future resolves with success");
    assert_eq!(lost, 0, "lost records");
    assert_eq!(duplicates, 0, "duplicated records");
    assert_eq!(out_of_order, 0, "records out of order within a partition");
    assert_eq!(wrong_offset, 0, "acknowledged offsets differ from the log");
    assert_eq!(back.len(), N);
}
