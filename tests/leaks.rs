//! Clients created and dropped (or closed) in a loop give back their
//! threads, file descriptors and memory: thread count and open descriptors
//! return to where they started, the live heap (a counting allocator) too,
//! and RSS stays within a tolerance (allocator caches: glibc keeps an arena
//! per thread that allocated).
//!
//! Its own test binary, with one `#[test]`, because it counts the whole
//! process's threads and descriptors: no other test may run beside it. It
//! starts its own local broker (or uses `KAFKA_BOOTSTRAP_SERVERS`). Every
//! group member, closed or only dropped, must have left its group.
//!
//! By default 200 producers, 200 admin clients and 20 group members, so
//! that the test stays well under a minute on a loaded 2-core machine;
//! `LEAK_COUNT=1000` runs the 1,000 of each. A group member waits
//! for its join, which Tansu holds for half the session timeout (3 s with
//! the default 6 s, per member, since each joins an empty group): the
//! members here use a short session (`LEAK_SESSION_MS`, default 600 ms),
//! which brings a join down to ~1 s, and `LEAK_WORKERS` (default 4) threads
//! each run members one after another in a group of their own, so that
//! 1,000 members take minutes, not an hour.

use std::time::{Duration, Instant};

use kafka_blocking::admin::{AdminClient, NewTopic};
use kafka_blocking::consumer::Consumer;
use kafka_blocking::producer::{Producer, Record};
use kafka_blocking::testkit::LocalBroker;

#[path = "support/live_heap.rs"]
mod live_heap;
#[path = "support/usage.rs"]
mod usage;
use live_heap::live_heap_kib;
use usage::{usage, Usage};

/// Waits (bounded) until threads and descriptors are back to `base`;
/// also says how long that took.
fn settle_timed(base: Usage) -> (Usage, Duration) {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(5);
    loop {
        let u = usage();
        if (u.threads <= base.threads && u.fds <= base.fds) || Instant::now() >= deadline {
            return (u, start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn settle(base: Usage) -> Usage {
    settle_timed(base).0
}

/// The reading once threads and descriptors stopped changing (the same for
/// half a second, bounded): the base, after the warm-up clients' threads
/// have ended.
fn stable() -> Usage {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = usage();
    let mut same = 0;
    while same < 10 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        let u = usage();
        same = if (u.threads, u.fds) == (last.threads, last.fds) {
            same + 1
        } else {
            0
        };
        last = u;
    }
    last
}

fn producer_round(servers: &str, topic: &str, i: usize) {
    let p = Producer::builder()
        .bootstrap_servers(servers)
        .linger_ms(0)
        .build()
        .expect("producer");
    p.send(Record::new(topic).value(format!("{i}")))
        .expect("send")
        .get(Duration::from_secs(30))
        .expect("delivered");
    if i % 2 == 0 {
        p.close(Duration::from_secs(10)).expect("close");
    } // else dropped without close
}

fn admin_round(servers: &str) {
    let a = AdminClient::builder()
        .bootstrap_servers(servers)
        .build()
        .expect("admin");
    a.list_topics().expect("list topics");
}

fn session_ms() -> i64 {
    std::env::var("LEAK_SESSION_MS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600)
}

fn consumer_round(servers: &str, topic: &str, group: &str, i: usize) {
    let session = session_ms();
    let mut c = Consumer::builder()
        .bootstrap_servers(servers)
        .group_id(group)
        .auto_offset_reset("earliest")
        .session_timeout_ms(session)
        .heartbeat_interval_ms((session / 5).max(1))
        .build()
        .expect("consumer");
    c.subscribe([topic]).expect("subscribe");
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.assignment().is_empty() && Instant::now() < deadline {
        let _ = c.poll(Duration::from_millis(100)).expect("poll");
    }
    assert!(!c.assignment().is_empty(), "member {i} never joined");
    if i % 2 == 0 {
        c.close(true).expect("close");
    } // else dropped: Drop leaves the group
}

#[test]
fn clients_give_back_threads_descriptors_and_memory() {
    let count: Option<usize> = std::env::var("LEAK_COUNT")
        .ok()
        .and_then(|s| s.parse().ok());
    let (producers, admins, members) = match count {
        Some(n) => (n, n, n),
        None => (200, 200, 20),
    };
    let broker = LocalBroker::start().expect("broker");
    let servers = broker.bootstrap_servers().to_owned();
    let topic = format!("leaks-{}", std::process::id());
    let admin = AdminClient::builder()
        .bootstrap_servers(&servers)
        .build()
        .expect("admin");
    let _ = admin.create_topics([NewTopic::new(topic.as_str(), 1, 1)], false, None);
    // Kept (and counted in the base) to check that members leave the group.

    // Warm up: one of each, so lazily created statics count in the base.
    producer_round(&servers, &topic, 0);
    admin_round(&servers);
    consumer_round(&servers, &topic, &format!("{topic}-warm"), 0);
    let base = stable();
    let base_heap = live_heap_kib();
    let started = Instant::now();

    for i in 0..producers {
        producer_round(&servers, &topic, i);
    }
    let after_producers = settle(base);
    let producers_took = started.elapsed();
    let admins_started = Instant::now();
    for _ in 0..admins {
        admin_round(&servers);
    }
    let after_admins = settle(base);
    let admins_took = admins_started.elapsed();
    let members_started = Instant::now();
    // Each worker's members join its group one after another, each after
    // the previous one left.
    let workers: usize = std::env::var("LEAK_WORKERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4)
        .clamp(1, 64);
    let left: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let (servers, topic, admin) = (&servers, &topic, &admin);
                s.spawn(move || {
                    let group = format!("{topic}-group-{w}");
                    let mut left = 0;
                    for i in (w..members).step_by(workers) {
                        consumer_round(servers, topic, &group, i);
                        // Closed or dropped, the member has left: no member
                        // remains.
                        let described = admin
                            .describe_consumer_groups([group.as_str()])
                            .expect("describe group");
                        let members_left = described
                            .into_iter()
                            .next()
                            .and_then(|(_, d)| d.ok())
                            .map_or(usize::MAX, |d| d.members.len());
                        assert_eq!(
                            members_left, 0,
                            "member {i} is still in the group after its drop"
                        );
                        left += 1;
                    }
                    left
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("member worker"))
            .sum()
    });
    assert_eq!(left, members);
    let after = settle(base);
    let after_heap = live_heap_kib();
    let members_took = members_started.elapsed();
    // How long the last client's threads outlive it (a figure, not asserted:
    // wall-clock time on a loaded machine).
    let mut outlive = Duration::ZERO;
    for i in 0..10 {
        producer_round(&servers, &topic, i);
        outlive = outlive.max(settle_timed(base).1);
        admin_round(&servers);
        outlive = outlive.max(settle_timed(base).1);
    }
    println!(
        "leaks: threads outlived their client by at most {outlive:?} (20 samples); \
         {left} members left the group on close or drop"
    );
    println!(
        "leaks: producers took {producers_took:?}, admin clients {admins_took:?}, \
         members {members_took:?} (session {} ms, {workers} workers)",
        session_ms()
    );
    println!(
        "leaks: {producers} producers, {admins} admin clients, {members} group members \
         in {:?}: threads {} -> {} (after producers {}, admins {}), fds {} -> {} \
         (after producers {}, admins {}), RSS {} KiB -> {} KiB ({:+} KiB), \
         live heap {base_heap} KiB -> {after_heap} KiB",
        started.elapsed(),
        base.threads,
        after.threads,
        after_producers.threads,
        after_admins.threads,
        base.fds,
        after.fds,
        after_producers.fds,
        after_admins.fds,
        base.rss_kib,
        after.rss_kib,
        after.rss_kib as i64 - base.rss_kib as i64
    );
    assert!(
        after_producers.threads <= base.threads && after_producers.fds <= base.fds,
        "producers leaked: {base:?} -> {after_producers:?}"
    );
    assert!(
        after_admins.threads <= base.threads && after_admins.fds <= base.fds,
        "admin clients leaked: {base:?} -> {after_admins:?}"
    );
    assert!(
        after.threads <= base.threads && after.fds <= base.fds,
        "consumers leaked: {base:?} -> {after:?}"
    );
    // The live heap (a counting allocator) tells a leak from allocator
    // caching: after closing them, the clients hold nothing. 512 KiB is
    // ~1.2 KiB per client in the default run.
    assert!(
        after_heap <= base_heap + 512,
        "live heap grew from {base_heap} KiB to {after_heap} KiB"
    );
    // Allocator caches make RSS noisy; a leak of even 1 KiB per client
    // would pass 16 MiB only at ~16k clients, so this bounds gross leaks.
    assert!(
        after.rss_kib <= base.rss_kib + 16 * 1024,
        "RSS grew from {} KiB to {} KiB",
        base.rss_kib,
        after.rss_kib
    );
}
