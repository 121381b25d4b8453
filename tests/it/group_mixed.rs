//! A classic group mixing this client with librdkafka (kcat), both with
//! `cooperative-sticky`: whichever member leads (and so runs its own
//! assignor), the group converges, every partition owned by exactly one
//! member, and records produced afterwards are read once, by their owner.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_blocking::consumer::{Consumer, TopicPartition};
use kafka_blocking::producer::{Producer, Record};

use crate::consumer::produce;
use crate::harness::{bootstrap, client, create_topic, unique_topic};

const PARTITIONS: i32 = 4;
/// Records per partition before the second member joins.
const BEFORE: i64 = 20;
/// Records per partition once the group has converged.
const AFTER: i64 = 10;

/// kcat in a group; what it prints is collected; killed (by PID) on Drop.
struct Kcat {
    child: Child,
    /// (partition, offset) of every record it printed.
    seen: Arc<Mutex<Vec<(i32, i64)>>>,
    log: Arc<Mutex<String>>,
}

impl Kcat {
    fn join(group: &str, topic: &str) -> Kcat {
        let mut cmd = Command::new("kcat");
        // Debian's librdkafka 2.0.2 cannot talk to Tansu 0.6: a newer one
        // can be named (as the peer benchmark does).
        if let Ok(dir) = std::env::var("KCAT_LIBRDKAFKA_DIR") {
            cmd.env("LD_LIBRARY_PATH", dir);
        }
        let mut child = cmd
            .args([
                "-b",
                &bootstrap(),
                "-G",
                group,
                "-X",
                "partition.assignment.strategy=cooperative-sticky",
                "-X",
                "auto.offset.reset=earliest",
                "-X",
                "session.timeout.ms=6000",
                "-X",
                "heartbeat.interval.ms=500",
                "-f",
                "%p %o\\n",
                "-u",
                topic,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start kcat");
        let seen: Arc<Mutex<Vec<(i32, i64)>>> = Arc::default();
        let log: Arc<Mutex<String>> = Arc::default();
        let (out, err) = (child.stdout.take(), child.stderr.take());
        let s = Arc::clone(&seen);
        if let Some(out) = out {
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    let mut it = line.split_whitespace().map(str::parse::<i64>);
                    if let (Some(Ok(p)), Some(Ok(o))) = (it.next(), it.next()) {
                        s.lock().unwrap().push((p as i32, o));
                    }
                }
            });
        }
        let l = Arc::clone(&log);
        if let Some(err) = err {
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    let mut l = l.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        Kcat { child, seen, log }
    }

    /// The partitions kcat printed records of from offset `from` on.
    fn read_from(&self, from: i64) -> Vec<(i32, i64)> {
        let mut v: Vec<(i32, i64)> = self
            .seen
            .lock()
            .unwrap()
            .iter()
            .copied()
            .filter(|&(_, o)| o >= from)
            .collect();
        v.sort();
        v
    }
}

impl Drop for Kcat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ours(group: &str) -> Consumer {
    Consumer::builder()
        .bootstrap_servers(bootstrap())
        .group_id(group)
        .partition_assignment_strategy(["cooperative-sticky"])
        .auto_offset_reset("earliest")
        .enable_auto_commit(false)
        .session_timeout_ms(6_000)
        .heartbeat_interval_ms(500)
        .build()
        .expect("consumer")
}

/// Runs one mixed group; `kcat_first`: kcat joins (and leads) first.
fn converges(kcat_first: bool) {
    let topic = unique_topic("g-mixed");
    let group = unique_topic("g-mixed-group");
    create_topic(&client(), &topic, PARTITIONS);
    produce(&topic, PARTITIONS, (BEFORE * PARTITIONS as i64) as usize);

    let mut kcat = None;
    if kcat_first {
        let k = Kcat::join(&group, &topic);
        let deadline = Instant::now() + Duration::from_secs(60);
        while k.read_from(0).len() < (BEFORE * PARTITIONS as i64) as usize {
            assert!(
                Instant::now() < deadline,
                "kcat alone read {:?}; its log:\n{}",
                k.read_from(0).len(),
                k.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        kcat = Some(k);
    }
    let mut c = ours(&group);
    c.subscribe([topic.as_str()]).expect("subscribe");
    if !kcat_first {
        let deadline = Instant::now() + Duration::from_secs(60);
        while c.assignment().len() != PARTITIONS as usize {
            assert!(Instant::now() < deadline, "we never got all partitions");
            c.poll(Duration::from_millis(50)).expect("poll");
        }
        kcat = Some(Kcat::join(&group, &topic));
    }
    let kcat = kcat.expect("kcat");

    // Converged: we own half, stably (the cooperative hand-over takes two
    // rebalances).
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut stable_since: Option<(Instant, Vec<TopicPartition>)> = None;
    loop {
        assert!(
            Instant::now() < deadline,
            "no convergence: we own {:?}; kcat's log:\n{}",
            c.assignment(),
            kcat.log.lock().unwrap()
        );
        c.poll(Duration::from_millis(50)).expect("poll");
        let mine = c.assignment();
        if mine.len() != (PARTITIONS / 2) as usize {
            stable_since = None;
            continue;
        }
        match &stable_since {
            Some((t, a)) if *a == mine && t.elapsed() > Duration::from_secs(3) => break,
            Some((_, a)) if *a == mine => {}
            _ => stable_since = Some((Instant::now(), mine)),
        }
    }
    let mine: BTreeSet<i32> = c.assignment().iter().map(|tp| tp.partition).collect();

    // New records: ours read those of our partitions, kcat the others.
    let p = Producer::builder()
        .bootstrap_servers(bootstrap())
        .build()
        .expect("producer");
    for i in 0..AFTER * PARTITIONS as i64 {
        let _ = p
            .send(
                Record::new(topic.as_str())
                    .partition((i % PARTITIONS as i64) as i32)
                    .value("after"),
            )
            .expect("send");
    }
    p.flush(Duration::from_secs(30)).expect("flush");
    let want = |theirs: bool| -> Vec<(i32, i64)> {
        (0..PARTITIONS)
            .filter(|p| mine.contains(p) != theirs)
            .flat_map(|p| (BEFORE..BEFORE + AFTER).map(move |o| (p, o)))
            .collect()
    };
    let mut got: Vec<(i32, i64)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < want(false).len() || kcat.read_from(BEFORE).len() < want(true).len() {
        assert!(
            Instant::now() < deadline,
            "ours {got:?}, kcat's {:?}",
            kcat.read_from(BEFORE)
        );
        for m in c.poll(Duration::from_millis(50)).expect("poll") {
            if m.offset() >= BEFORE {
                got.push((m.partition(), m.offset()));
            }
        }
    }
    got.sort();
    assert_eq!(got, want(false), "ours: only our partitions, once each");
    assert_eq!(
        kcat.read_from(BEFORE),
        want(true),
        "kcat: only its partitions, once each"
    );
    c.close(false).expect("close");
}

#[test]
#[cfg_attr(
    not(has_kcat),
    ignore = "needs kcat on PATH (with the local Tansu, a librdkafka newer than 2.0: KCAT_LIBRDKAFKA_DIR=/folder/with/librdkafka.so.1)"
)]
fn a_group_with_librdkafka_converges_when_we_lead() {
    converges(false);
}

#[test]
#[cfg_attr(
    not(has_kcat),
    ignore = "needs kcat on PATH (with the local Tansu, a librdkafka newer than 2.0: KCAT_LIBRDKAFKA_DIR=/folder/with/librdkafka.so.1)"
)]
fn a_group_with_librdkafka_converges_when_it_leads() {
    converges(true);
}
