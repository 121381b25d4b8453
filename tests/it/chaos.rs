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
use kafka_blocking::protocol::Uuid;
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
    const N: usize = 200_000;
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
    // 1 request in 40 loses its connection, half of them after the broker
    // wrote the batch (the answer is lost: the retry must be deduplicated).
    cluster.set_cut_per_mille(25);
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
        if i % 10_000 == 9_999 {
            // Spread the sends over the chaos window.
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    producer.flush(Duration::from_secs(120)).expect("flush");
    stop.store(true, SeqCst);
    let (moves, killed, revived) = chaos.join().expect("chaos thread");
    let mut acked: HashMap<(i32, i64), usize> = HashMap::new();
    let mut failed = 0;
    // A retried batch the broker recognises as a duplicate may be answered
    // without its offset (DUPLICATE_SEQUENCE_NUMBER, or an old broker's
    // -1): the future resolves with offset -1, as in the Java client.
    let mut unknown_offset = HashSet::new();
    for (i, f) in futures.iter().enumerate() {
        match f.get(Duration::from_secs(60)) {
            Ok(md) if md.offset() < 0 => {
                unknown_offset.insert(i);
            }
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
        if acked.get(&(r.partition, r.offset)) != Some(&id) && !unknown_offset.contains(&id) {
            if wrong_offset < 5 {
                let f = &futures[id];
                eprintln!(
                    "record {id}: in the log at {}/{}, its future says {:?}",
                    r.partition,
                    r.offset,
                    f.get(Duration::ZERO).map(|m| (m.partition(), m.offset()))
                );
            }
            wrong_offset += 1;
        }
    }
    let lost = N - seen.len();
    let stats = cluster.stats();
    println!(
        "chaos producer: {N} records, {PARTITIONS} partitions, 3 nodes, {elapsed:?}: \
         lost {lost}, duplicated {duplicates}, out of order {out_of_order}, \
         futures failed {failed}, acked offsets not matching the log {wrong_offset}, \
         acked without an offset (duplicate answers) {}; \
         leader moves {moves} (+ node death), node 2 killed {killed} revived {revived}; {stats:?}",
        unknown_offset.len()
    );
    assert!(killed && revived, "the chaos did not happen");
    assert!(
        moves > 0 && stats.wrong_node > 0,
        "no leader move was noticed"
    );
    assert_eq!(failed, 0, "every future resolves with success");
    assert_eq!(lost, 0, "lost records");
    assert_eq!(duplicates, 0, "duplicated records");
    assert_eq!(out_of_order, 0, "records out of order within a partition");
    assert_eq!(wrong_offset, 0, "acknowledged offsets differ from the log");
    assert_eq!(back.len(), N);
}

/// Produces `n` records `0..n` (value = id) round-robin over `partitions`
/// straight to the real broker, `per_second` at most.
fn produce_paced(topic: &str, partitions: i32, n: usize, per_second: usize) {
    let p = Producer::builder()
        .bootstrap_servers(bootstrap())
        .linger_ms(5)
        .build()
        .expect("producer");
    let start = Instant::now();
    for i in 0..n {
        let _ = p
            .send(
                Record::new(topic)
                    .partition((i % partitions as usize) as i32)
                    .value(format!("{i}")),
            )
            .expect("send");
        if i % 500 == 499 {
            let due = Duration::from_secs_f64((i + 1) as f64 / per_second as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    p.flush(Duration::from_secs(60)).expect("flush");
    p.close(Duration::from_secs(10)).expect("close");
}

fn chaos_member(cluster: &ChaosCluster, group: &str) -> Consumer {
    Consumer::builder()
        .bootstrap_servers(cluster.bootstrap_servers())
        .group_id(group)
        .auto_offset_reset("earliest")
        .enable_auto_commit(false)
        .session_timeout_ms(6_000)
        .heartbeat_interval_ms(500)
        .max_poll_records(200)
        .request_timeout_ms(5_000)
        .retry_backoff_ms(50)
        .build()
        .expect("consumer")
}

#[test]
fn consumer_group_of_three_loses_nothing_while_leaders_move_and_a_node_dies() {
    const N: usize = 30_000;
    const PARTITIONS: i32 = 12;
    let topic = unique_topic("chaos-group");
    let group = unique_topic("chaos-group-g");
    create_topic(&client(), &topic, PARTITIONS);
    let cluster = chaos_cluster();
    // 1 request in 200 loses its connection (commits among them).
    cluster.set_cut_per_mille(5);
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<usize>>> = Arc::default();
    let commit_failures = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let members: Vec<_> = (0..3)
        .map(|m| {
            let (cluster, group, topic) = (Arc::clone(&cluster), group.clone(), topic.clone());
            let (stop, seen, commit_failures, errors) = (
                Arc::clone(&stop),
                Arc::clone(&seen),
                Arc::clone(&commit_failures),
                Arc::clone(&errors),
            );
            std::thread::spawn(move || {
                let mut c = chaos_member(&cluster, &group);
                c.subscribe([topic.as_str()]).expect("subscribe");
                let deadline = Instant::now() + Duration::from_secs(50);
                while !stop.load(SeqCst) && Instant::now() < deadline {
                    let records = match c.poll(Duration::from_millis(100)) {
                        Ok(r) => r,
                        Err(e)
                            if e.is_retriable()
                                || e.kind() == kafka_blocking::ErrorKind::Rebalance =>
                        {
                            continue
                        }
                        Err(e) => {
                            errors
                                .lock()
                                .unwrap()
                                .push(format!("member {m}: poll: {e}"));
                            continue;
                        }
                    };
                    if records.is_empty() {
                        continue;
                    }
                    // "Process", then commit what was processed.
                    seen.lock().unwrap().extend(records.iter().map(|r| {
                        std::str::from_utf8(r.value().map_or(&[][..], |v| v.as_slice()))
                            .ok()
                            .and_then(|s| s.parse::<usize>().ok())
                            .unwrap_or(usize::MAX)
                    }));
                    if c.commit().is_err() {
                        commit_failures.fetch_add(1, SeqCst);
                    }
                }
                let _ = c.close(true);
            })
        })
        .collect();
    let chaos = chaos_loop(
        Arc::clone(&cluster),
        Duration::from_millis(200),
        Duration::from_secs(12),
        Arc::clone(&stop),
    );
    let started = Instant::now();
    produce_paced(&topic, PARTITIONS, N, 3_000);
    // Wait until every record was processed (bounded).
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let unique: HashSet<usize> = seen.lock().unwrap().iter().copied().collect();
        if unique.len() >= N || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, SeqCst);
    let (moves, killed, revived) = chaos.join().expect("chaos thread");
    for m in members {
        m.join().expect("member thread");
    }
    let seen = seen.lock().unwrap();
    let unique: HashSet<usize> = seen.iter().copied().collect();
    let lost = (0..N).filter(|i| !unique.contains(i)).count();
    let duplicates = seen.len() - unique.len();
    let stats = cluster.stats();
    println!(
        "chaos group: {N} records, {PARTITIONS} partitions, 3 members, 3 nodes, {:?}: \
         lost {lost}, processed twice {duplicates} (uncommitted window; {} commits failed), \
         leader moves {moves}, node 2 killed {killed} revived {revived}; {stats:?}",
        started.elapsed(),
        commit_failures.load(SeqCst)
    );
    let errors = errors.lock().unwrap();
    assert!(errors.is_empty(), "non-retriable errors: {errors:?}");
    assert!(killed && revived, "the chaos did not happen");
    assert!(!unique.contains(&usize::MAX), "a record that is not ours");
    assert_eq!(lost, 0, "lost records");
}

#[test]
fn group_finds_a_new_coordinator_when_its_node_dies_and_keeps_its_commits() {
    const PARTITIONS: i32 = 3;
    let topic = unique_topic("chaos-coord");
    let group = unique_topic("chaos-coord-g");
    create_topic(&client(), &topic, PARTITIONS);
    produce_paced(&topic, PARTITIONS, 300, 100_000);
    let cluster = chaos_cluster();
    let mut c = chaos_member(&cluster, &group);
    c.subscribe([topic.as_str()]).expect("subscribe");
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while got < 150 && Instant::now() < deadline {
        got += c.poll(Duration::from_millis(200)).expect("poll").len();
    }
    c.commit().expect("commit before the coordinator dies");
    let before: HashMap<_, _> = c
        .committed_offsets((0..PARTITIONS).map(|p| (topic.as_str(), p)))
        .expect("committed");
    let coordinator = cluster
        .coordinator(&group)
        .expect("a coordinator was asked for");
    cluster.kill(coordinator);
    let moved_to = cluster.coordinator(&group).expect("coordinator");
    // Go on: read the rest and commit through the new coordinator.
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut committed_after = false;
    while Instant::now() < deadline {
        let records = c.poll(Duration::from_millis(200)).expect("poll");
        got += records.len();
        if got >= 300 && c.commit().is_ok() {
            committed_after = true;
            break;
        }
    }
    let after: HashMap<_, _> = c
        .committed_offsets((0..PARTITIONS).map(|p| (topic.as_str(), p)))
        .expect("committed after");
    c.close(true).expect("close");
    let sum = |m: &HashMap<_, kafka_blocking::consumer::OffsetAndMetadata>| {
        m.values().map(|o| o.offset).sum::<i64>()
    };
    println!(
        "chaos coordinator: node {coordinator} died, coordinator now {moved_to}; \
         committed before {} records, after {} (of 300 read: {got}); {:?}",
        sum(&before),
        sum(&after),
        cluster.stats()
    );
    assert_ne!(coordinator, moved_to);
    assert!(
        committed_after,
        "no commit succeeded through the new coordinator"
    );
    assert!(
        sum(&before) >= 150,
        "the first commit covered what was read"
    );
    for (tp, o) in &before {
        assert!(
            after.get(tp).is_some_and(|a| a.offset >= o.offset),
            "commit of {tp:?} lost: before {o:?}, after {:?}",
            after.get(tp)
        );
    }
    assert_eq!(sum(&after), 300, "everything read was committed");
}

#[test]
fn bootstrap_list_with_dead_addresses_still_connects() {
    let topic = unique_topic("chaos-boot");
    create_topic(&client(), &topic, 1);
    let cluster = chaos_cluster();
    cluster.kill(1);
    cluster.kill(2);
    // Two dead nodes first, then a port nothing listens on, then the live one.
    let dead = cluster.address(1).expect("node 1");
    let dead2 = cluster.address(2).expect("node 2");
    let live = cluster.address(3).expect("node 3");
    let servers = format!("{dead},{dead2},127.0.0.1:1,{live}");
    let producer = Producer::builder()
        .bootstrap_servers(&servers)
        .request_timeout_ms(5_000)
        .build()
        .expect("producer");
    let md = producer
        .send(Record::new(topic.as_str()).value("x"))
        .expect("send")
        .get(Duration::from_secs(30))
        .expect("delivered through the live address");
    producer.close(Duration::from_secs(10)).expect("close");
    // The cluster as the admin client sees it: only the live node.
    let admin = kafka_blocking::AdminClient::builder()
        .bootstrap_servers(&servers)
        .build()
        .expect("admin");
    let cluster_view = admin.describe_cluster().expect("describe cluster");
    cluster.revive(2).expect("revive node 2");
    let revived_view = admin.describe_cluster().expect("describe cluster");
    println!(
        "chaos bootstrap: {servers}: delivered at {}/{}; cluster seen: {:?} then {:?}; {:?}",
        md.partition(),
        md.offset(),
        cluster_view
            .brokers
            .iter()
            .map(|b| b.id)
            .collect::<Vec<_>>(),
        revived_view
            .brokers
            .iter()
            .map(|b| b.id)
            .collect::<Vec<_>>(),
        cluster.stats()
    );
    assert!(md.offset() >= 0);
    assert_eq!(cluster_view.controller, Some(3));
    assert_eq!(
        cluster_view
            .brokers
            .iter()
            .map(|b| b.id)
            .collect::<Vec<_>>(),
        [3]
    );
    assert_eq!(
        revived_view
            .brokers
            .iter()
            .map(|b| b.id)
            .collect::<Vec<_>>(),
        [2, 3]
    );
}

#[test]
fn clients_recover_when_every_broker_dies_and_comes_back() {
    const N: usize = 1_000;
    let topic = unique_topic("chaos-alldead");
    create_topic(&client(), &topic, 3);
    let cluster = chaos_cluster();
    let producer = Producer::builder()
        .bootstrap_servers(cluster.bootstrap_servers())
        .enable_idempotence(true)
        .acks("all")
        .delivery_timeout_ms(60_000)
        .request_timeout_ms(3_000)
        .reconnect_backoff_max_ms(500)
        .build()
        .expect("producer");
    producer
        .send(Record::new(topic.as_str()).value("0"))
        .expect("send")
        .get(Duration::from_secs(30))
        .expect("first record");
    for id in cluster.node_ids() {
        cluster.kill(id);
    }
    let mut futures = Vec::new();
    for i in 1..N {
        futures.push(
            producer
                .send(Record::new(topic.as_str()).value(format!("{i}")))
                .expect("send while every broker is down queues"),
        );
    }
    std::thread::sleep(Duration::from_secs(2));
    let pending_while_down = futures.iter().filter(|f| !f.is_done()).count();
    for id in cluster.node_ids() {
        cluster.revive(id).expect("revive");
    }
    let failed = futures
        .iter()
        .filter(|f| f.get(Duration::from_secs(60)).is_err())
        .count();
    producer.close(Duration::from_secs(10)).expect("close");
    let back = fetch_all(&client(), &topic);
    let unique: HashSet<_> = back.iter().map(|r| r.value.clone()).collect();
    println!(
        "chaos all dead: {pending_while_down} of {} records waited while all 3 nodes were down; \
         after revival: failed {failed}, in the log {} ({} unique); {:?}",
        N - 1,
        back.len(),
        unique.len(),
        cluster.stats()
    );
    assert_eq!(
        pending_while_down,
        N - 1,
        "nothing can be delivered with every node down"
    );
    assert_eq!(failed, 0);
    assert_eq!(back.len(), N);
    assert_eq!(unique.len(), N);
}

#[test]
fn injected_errors_slow_and_silent_nodes_are_retried_through() {
    use kafka_blocking::protocol::{ApiKey, ErrorCode};
    let topic = unique_topic("chaos-inject");
    create_topic(&client(), &topic, 1);
    let cluster = chaos_cluster();
    let producer = Producer::builder()
        .bootstrap_servers(cluster.bootstrap_servers())
        .enable_idempotence(true)
        .acks("all")
        .request_timeout_ms(2_000)
        .retry_backoff_ms(20)
        .delivery_timeout_ms(60_000)
        .build()
        .expect("producer");
    let send = |v: &str| {
        producer
            .send(Record::new(topic.as_str()).partition(0).value(v.to_owned()))
            .expect("send")
    };
    send("warm")
        .get(Duration::from_secs(30))
        .expect("first record");
    let leader = cluster.leader(&topic, 0).expect("placed").0;

    // Retriable codes on Produce: retried until they run out.
    cluster
        .inject_error(ApiKey::PRODUCE, ErrorCode::NOT_ENOUGH_REPLICAS, 3)
        .expect("inject");
    let a = send("a").get(Duration::from_secs(30));
    let injected = cluster.stats().injected;

    // The leader answers late, then not at all (until the request times
    // out and the producer reconnects), then normally again.
    cluster.set_delay(leader, Duration::from_millis(300));
    let b = send("b").get(Duration::from_secs(30));
    cluster.set_delay(leader, Duration::ZERO);
    cluster.set_silent(leader, true);
    let c = send("c");
    std::thread::sleep(Duration::from_secs(3));
    let c_done_while_silent = c.is_done();
    cluster.set_silent(leader, false);
    let c = c.get(Duration::from_secs(30));
    // A code the API cannot carry is refused by name.
    let refused = cluster.inject_error(ApiKey::METADATA, ErrorCode::NOT_COORDINATOR, 1);
    producer.close(Duration::from_secs(10)).expect("close");
    let values: Vec<_> = fetch_all(&client(), &topic)
        .into_iter()
        .map(|r| String::from_utf8(r.value.unwrap_or_default()).unwrap_or_default())
        .collect();
    println!(
        "chaos inject: {injected} injected NOT_ENOUGH_REPLICAS answers -> {:?}; slow leader -> {:?}; \
         silent leader: done while silent {c_done_while_silent}, after -> {:?}; log {values:?}; {:?}",
        a.as_ref().map(|m| m.offset()),
        b.as_ref().map(|m| m.offset()),
        c.as_ref().map(|m| m.offset()),
        cluster.stats()
    );
    assert_eq!(injected, 3);
    assert!(a.is_ok() && b.is_ok() && c.is_ok());
    assert!(
        !c_done_while_silent,
        "nothing can be acknowledged by a silent leader"
    );
    assert_eq!(values, ["warm", "a", "b", "c"]);
    let e = refused.expect_err("Metadata cannot carry an injected error");
    assert!(e.to_string().contains("api: Metadata"), "{e}");
}

#[test]
fn a_topic_deleted_and_recreated_gets_no_record_of_the_wrong_incarnation() {
    const N: usize = 100;
    let topic = unique_topic("chaos-reborn");
    create_topic(&client(), &topic, 1);
    let admin = kafka_blocking::AdminClient::builder()
        .bootstrap_servers(bootstrap())
        .build()
        .expect("admin");
    let producer = Producer::builder()
        .bootstrap_servers(bootstrap())
        .enable_idempotence(true)
        .acks("all")
        .delivery_timeout_ms(20_000)
        .request_timeout_ms(5_000)
        .metadata_max_age_ms(500)
        .build()
        .expect("producer");
    let send_all = |prefix: &str| -> Vec<_> {
        (0..N)
            .map(|i| {
                let v = format!("{prefix}-{i}");
                (
                    v.clone(),
                    producer.send(Record::new(topic.as_str()).value(v)),
                )
            })
            .collect()
    };
    for (v, f) in send_all("old") {
        f.expect("send")
            .get(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("{v}: {e}"));
    }
    let old_id = client()
        .refresh_metadata(Some(&[topic.as_str()]))
        .expect("metadata")
        .topic(&topic)
        .map(|t| t.topic_id);
    for (_, r) in admin.delete_topics([topic.as_str()], None).expect("delete") {
        r.expect("deleted");
    }
    create_topic(&client(), &topic, 1);
    let new_id = client()
        .refresh_metadata(Some(&[topic.as_str()]))
        .expect("metadata")
        .topic(&topic)
        .map(|t| t.topic_id);
    // The same producer goes on: each record either lands in the new
    // incarnation at the offset its future reports, or fails with an error.
    let mut acked = HashMap::new();
    let mut failed: BTreeMap<String, usize> = BTreeMap::new();
    for (v, f) in send_all("new") {
        match f.and_then(|f| f.get(Duration::from_secs(40))) {
            Ok(md) => {
                acked.insert(v, md.offset());
            }
            Err(e) => *failed.entry(format!("{:?}", e.kind())).or_default() += 1,
        }
    }
    producer.close(Duration::from_secs(10)).expect("close");
    let log: Vec<(i64, String)> = fetch_all(&client(), &topic)
        .into_iter()
        .map(|r| {
            let v = String::from_utf8(r.value.unwrap_or_default()).unwrap_or_default();
            (r.offset, v)
        })
        .collect();
    let old_in_new = log.iter().filter(|(_, v)| v.starts_with("old-")).count();
    let at: HashMap<&str, i64> = log.iter().map(|(o, v)| (v.as_str(), *o)).collect();
    let misplaced = acked
        .iter()
        .filter(|(v, o)| **o >= 0 && at.get(v.as_str()) != Some(o))
        .count();
    let missing = acked
        .keys()
        .filter(|v| !at.contains_key(v.as_str()))
        .count();
    println!(
        "chaos reborn: topic id {old_id:?} -> {new_id:?}; after re-creation {} acknowledged, \
         failed {failed:?}; new log {} records, old records in it {old_in_new}, \
         acknowledged but missing {missing}, at another offset {misplaced}",
        acked.len(),
        log.len()
    );
    assert_ne!(
        old_id, new_id,
        "the broker gave the new incarnation a new id"
    );
    assert_eq!(
        old_in_new, 0,
        "records of the old incarnation in the new one"
    );
    assert_eq!(
        missing, 0,
        "acknowledged records that are not in the new incarnation"
    );
    assert_eq!(
        misplaced, 0,
        "acknowledged offsets that do not match the log"
    );
}

/// Deletes `topic` and creates it again (1 partition); the two topic ids.
fn recreate(admin: &kafka_blocking::AdminClient, topic: &str) -> (Option<Uuid>, Option<Uuid>) {
    let id = || {
        client()
            .refresh_metadata(Some(&[topic]))
            .expect("metadata")
            .topic(topic)
            .map(|t| t.topic_id)
    };
    let old_id = id();
    for (_, r) in admin.delete_topics([topic], None).expect("delete") {
        r.expect("deleted");
    }
    create_topic(&client(), topic, 1);
    (old_id, id())
}

/// What the broker answers a Fetch (its highest version) of `topic`
/// partition 0 at offset 100 naming the topic by `id`: (version, error
/// code, record bytes).
fn fetch_by_id(topic: &str, id: Uuid) -> (i16, i16, usize) {
    use kafka_blocking::protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_blocking::protocol::messages::FetchRequest;
    use kafka_blocking::protocol::ApiKey;
    let c = client();
    let snap = c.refresh_metadata(Some(&[topic])).expect("metadata");
    let leader = snap
        .topic(topic)
        .and_then(|t| t.partition(0))
        .map_or(-1, |p| p.leader);
    let version = c
        .api_versions(leader)
        .ok()
        .and_then(|v| v.max_version(ApiKey::FETCH))
        .unwrap_or(-1);
    let answer = c
        .send_to(
            leader,
            &FetchRequest {
                max_wait_ms: 10,
                min_bytes: 1,
                max_bytes: 1 << 20,
                topics: vec![FetchTopic {
                    topic: topic.to_owned(),
                    topic_id: id,
                    partitions: vec![FetchPartition {
                        partition: 0,
                        fetch_offset: 100,
                        partition_max_bytes: 1 << 20,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            },
        )
        .expect("fetch");
    let p = answer
        .responses
        .first()
        .and_then(|t| t.partitions.first())
        .map_or((answer.error_code, 0), |p| {
            (p.error_code, p.records.as_ref().map_or(0, |r| r.len()))
        });
    (version, p.0, p.1)
}

/// Sends `prefix-0..n` to `topic` and waits for every acknowledgement.
fn send_values(topic: &str, prefix: &str, n: usize) {
    let producer = Producer::builder()
        .bootstrap_servers(bootstrap())
        .build()
        .expect("producer");
    for i in 0..n {
        let _ = producer
            .send(Record::new(topic).value(format!("{prefix}-{i}")))
            .expect("send");
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
    producer.close(Duration::from_secs(10)).expect("close");
}

/// Polls until `want` records arrived, an error, or 20 s.
fn poll_values(
    c: &mut Consumer,
    want: usize,
) -> (Vec<(i64, String)>, Option<kafka_blocking::Error>) {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < want && Instant::now() < deadline {
        match c.poll(Duration::from_millis(200)) {
            Ok(records) => got.extend(records.iter().map(|m| {
                let v = String::from_utf8(m.value().map(|b| b.to_vec()).unwrap_or_default())
                    .unwrap_or_default();
                (m.offset(), v)
            })),
            Err(e) => return (got, Some(e)),
        }
    }
    (got, None)
}

/// The consumer side of a topic deleted and re-created under the same
/// name (real broker, no front): a consumer positioned at offset 100 of
/// the old incarnation must not go on reading the new one from offset 100
/// (skipping its first 100 records) nor read old records. With
/// `auto_offset_reset=earliest` it reads the new incarnation from its
/// start; with `none` it gets a typed error.
#[test]
fn a_consumer_of_a_topic_deleted_and_recreated_starts_the_new_incarnation_per_auto_offset_reset() {
    let admin = kafka_blocking::AdminClient::builder()
        .bootstrap_servers(bootstrap())
        .build()
        .expect("admin");
    for reset in ["earliest", "none"] {
        let topic = unique_topic("chaos-reborn-consumer");
        create_topic(&client(), &topic, 1);
        send_values(&topic, "old", 100);
        let mut c = Consumer::builder()
            .bootstrap_servers(bootstrap())
            .auto_offset_reset(reset)
            .metadata_max_age_ms(500)
            .build()
            .expect("consumer");
        c.assign([(topic.as_str(), 0)]).expect("assign");
        c.seek((topic.as_str(), 0), 0).expect("seek");
        let (old, error) = poll_values(&mut c, 100);
        assert!(error.is_none(), "{error:?}");
        assert_eq!(old.len(), 100);
        // More records in the new incarnation than the old position: an
        // out-of-range answer cannot give the change away.
        let (old_id, new_id) = recreate(&admin, &topic);
        assert_ne!(
            old_id, new_id,
            "the broker gave the new incarnation a new id"
        );
        send_values(&topic, "new", 150);
        let probe = fetch_by_id(&topic, old_id.unwrap_or_default());
        let (got, error) = poll_values(&mut c, 150);
        let old_seen = got.iter().filter(|(_, v)| v.starts_with("old-")).count();
        println!(
            "chaos reborn consumer ({reset}): topic id {old_id:?} -> {new_id:?}; a Fetch v{} by \
             the old id answers error {} with {} record bytes; read {} records \
             after re-creation (first {:?}), old ones among them {old_seen}, error {:?}",
            probe.0,
            probe.1,
            probe.2,
            got.len(),
            got.first(),
            error.as_ref().map(|e| e.to_string())
        );
        assert_eq!(old_seen, 0, "records of the old incarnation");
        if reset == "earliest" {
            assert!(error.is_none(), "{error:?}");
            let want: Vec<(i64, String)> = (0..150).map(|i| (i, format!("new-{i}"))).collect();
            assert_eq!(got, want, "the new incarnation, whole, from its start");
        } else {
            assert!(got.is_empty(), "nothing read before the error: {got:?}");
            let e = error.expect("a typed error");
            assert_eq!(e.kind(), kafka_blocking::ErrorKind::TopicRecreated, "{e}");
            assert_eq!((e.topic(), e.partition()), (Some(topic.as_str()), Some(0)));
        }
    }
}

/// A group member of `group` through `cluster`, committing only by hand.
fn kip320_member(cluster: &ChaosCluster, group: &str, reset: &str) -> Consumer {
    Consumer::builder()
        .bootstrap_servers(cluster.bootstrap_servers())
        .group_id(group)
        .auto_offset_reset(reset)
        .enable_auto_commit(false)
        .session_timeout_ms(2_000)
        .heartbeat_interval_ms(300)
        .request_timeout_ms(10_000)
        .build()
        .expect("consumer")
}

/// KIP-320 for a committed position, through the front and the real
/// broker: offset 20 is committed with a leader epoch (the front keeps the
/// epoch, which Tansu drops); then the leader moves and the new leader's
/// log "diverges" at 15 (`set_divergence`). A new member of the group must
/// not fetch from 20 unchecked.
#[test]
fn a_committed_offset_past_a_truncated_log_is_detected_by_a_new_group_member() {
    let cluster = chaos_cluster();
    let topic = unique_topic("chaos-kip320");
    let group = unique_topic("chaos-kip320-group");
    create_topic(&client(), &topic, 1);
    let producer = Producer::builder()
        .bootstrap_servers(cluster.bootstrap_servers())
        .build()
        .expect("producer");
    for i in 0..30 {
        let _ = producer
            .send(Record::new(topic.as_str()).value(format!("new-{i}")))
            .expect("send");
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
    let tp = (topic.as_str(), 0);

    let mut c = kip320_member(&cluster, &group, "earliest");
    let epoch = c.partitions_for_topic(&topic).expect("partitions")[0].leader_epoch;
    let committed = kafka_blocking::OffsetAndMetadata {
        leader_epoch: Some(epoch),
        ..kafka_blocking::OffsetAndMetadata::new(20)
    };
    c.commit_offsets([(tp, committed)]).expect("commit");
    let kept = c.committed(tp).expect("committed").expect("an offset");
    assert_eq!((kept.offset, kept.leader_epoch), (20, Some(epoch)));
    c.close(false).expect("close");

    // A leader change whose new leader's log ends that epoch at 15.
    let (leader, _) = cluster.leader(&topic, 0).expect("placed");
    let other = cluster
        .node_ids()
        .into_iter()
        .find(|n| *n != leader)
        .expect("another node");
    cluster.move_leader(&topic, 0, other).expect("move");
    cluster.set_divergence(&topic, 0, Some(15));

    // auto_offset_reset=none: the typed error, nothing read.
    let mut c = kip320_member(&cluster, &group, "none");
    c.subscribe([topic.as_str()]).expect("subscribe");
    let (got, error) = poll_values(&mut c, 1);
    assert_eq!(got, Vec::new(), "nothing read from the committed offset");
    let e = error.expect("the truncation is reported");
    assert_eq!(e.kind(), kafka_blocking::ErrorKind::LogTruncation, "{e}");
    assert_eq!((e.topic(), e.partition()), (Some(topic.as_str()), Some(0)));
    assert_eq!(e.offset(), Some(15), "the divergence offset");
    assert!(e.to_string().contains("position 20"), "{e}");
    // Stopped at its position until a seek; then reads from there.
    assert_eq!(c.position(tp).expect("position"), 20);
    let again = c.poll(Duration::from_millis(500)).expect("reported once");
    assert_eq!(
        again.iter().count(),
        0,
        "nothing fetched from the stopped partition"
    );
    c.seek(tp, 15).expect("seek");
    let (got, error) = poll_values(&mut c, 1);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(got.first(), Some(&(15, "new-15".to_owned())));
    c.close(false).expect("close");

    // auto_offset_reset=earliest: from the divergence point.
    let mut c = kip320_member(&cluster, &group, "earliest");
    c.subscribe([topic.as_str()]).expect("subscribe");
    let (got, error) = poll_values(&mut c, 15);
    assert!(error.is_none(), "{error:?}");
    let want: Vec<(i64, String)> = (15..30).map(|i| (i, format!("new-{i}"))).collect();
    assert_eq!(got, want);
    c.close(false).expect("close");
    let diverged = cluster.stats().divergent_answers;

    // No divergence: the validated committed offset is where reading starts.
    cluster.set_divergence(&topic, 0, None);
    let mut c = kip320_member(&cluster, &group, "none");
    c.subscribe([topic.as_str()]).expect("subscribe");
    let (got, error) = poll_values(&mut c, 10);
    assert!(error.is_none(), "{error:?}");
    let want: Vec<(i64, String)> = (20..30).map(|i| (i, format!("new-{i}"))).collect();
    assert_eq!(got, want);
    c.close(false).expect("close");
    let stats = cluster.stats();
    println!(
        "chaos kip320: committed 20 under leader epoch {epoch}; new leader diverging at 15 \
         answered {diverged} time(s): none -> LogTruncation at 15 (position 20), earliest -> \
         15..29; without divergence -> 20..29; committed epochs restored {}",
        stats.epochs_restored
    );
    assert!(diverged >= 2, "each member validated the committed offset");
}

/// The same for a group member (subscribed): running through the
/// re-creation it reads the new incarnation whole; a member starting after
/// another re-creation does too (the broker drops the committed offsets of
/// a deleted topic, as Kafka does; Tansu does too).
#[test]
fn a_group_member_reads_a_recreated_topic_whole_while_running_and_after_a_restart() {
    let admin = kafka_blocking::AdminClient::builder()
        .bootstrap_servers(bootstrap())
        .build()
        .expect("admin");
    let topic = unique_topic("chaos-reborn-group");
    let group = unique_topic("chaos-reborn-group");
    let member = || {
        let mut c = Consumer::builder()
            .bootstrap_servers(bootstrap())
            .group_id(&group)
            .auto_offset_reset("earliest")
            .session_timeout_ms(2_000)
            .heartbeat_interval_ms(300)
            .metadata_max_age_ms(500)
            .build()
            .expect("consumer");
        c.subscribe([topic.as_str()]).expect("subscribe");
        c
    };
    let values = |prefix: &str, n: usize| -> Vec<(i64, String)> {
        (0..n as i64)
            .map(|i| (i, format!("{prefix}-{i}")))
            .collect()
    };
    create_topic(&client(), &topic, 1);
    send_values(&topic, "old", 100);
    let mut c = member();
    let (got, error) = poll_values(&mut c, 100);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(got, values("old", 100));
    c.commit().expect("commit");

    recreate(&admin, &topic);
    send_values(&topic, "new", 150);
    let (got, error) = poll_values(&mut c, 150);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(got, values("new", 150), "the running member");
    c.commit().expect("commit");
    c.close(false).expect("close");

    recreate(&admin, &topic);
    send_values(&topic, "third", 120);
    let mut c = member();
    let committed = c.committed((topic.as_str(), 0)).expect("committed");
    let (got, error) = poll_values(&mut c, 120);
    println!(
        "chaos reborn group: running member read the new incarnation whole; committed offset \
         after another re-creation {:?}; a new member read {} records from {:?}",
        committed.as_ref().map(|o| o.offset),
        got.len(),
        got.first()
    );
    assert!(error.is_none(), "{error:?}");
    assert_eq!(got, values("third", 120), "a member starting afterwards");
    c.close(false).expect("close");
}
