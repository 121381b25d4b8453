//! Consumer groups against the real broker: assignment, take-over after a
//! clean leave and after a crash (a child process killed with SIGKILL),
//! commits and restarts, offset resets, cooperative rebalancing, patterns.
//!
//! Session timeouts stay at 6 s: Tansu holds the first JoinGroup of a group
//! for about half of it.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_blocking::consumer::{Consumer, ConsumerBuilder, RebalanceListener, TopicPartition};
use kafka_blocking::producer::{Producer, Record};
use kafka_blocking::ErrorKind;

use crate::consumer::produce;
use crate::harness::{bootstrap, client, create_topic, unique_topic};

const BATCH: i64 = 100;

fn member(group: &str) -> ConsumerBuilder {
    Consumer::builder()
        .bootstrap_servers(bootstrap())
        .group_id(group)
        .auto_offset_reset("earliest")
        .enable_auto_commit(false)
        .session_timeout_ms(6_000)
        .heartbeat_interval_ms(500)
        .max_poll_records(BATCH)
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Shared by the in-process members of the take-over test.
#[derive(Default)]
struct Board {
    seen: Mutex<Vec<(i32, i64)>>,
    assignment: Mutex<HashMap<String, Vec<TopicPartition>>>,
    /// Records processed whose commit failed (they may come again).
    uncommitted: AtomicUsize,
}

/// A group member in a thread: poll, "process" (record), commit; slowly
/// while `throttle` is set; until `stop` or `done` says so.
fn spawn_member(
    name: &'static str,
    group: String,
    topic: String,
    board: Arc<Board>,
    throttle: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut c = member(&group).build().expect("consumer");
        c.subscribe([topic.as_str()]).expect("subscribe");
        let deadline = Instant::now() + Duration::from_secs(90);
        while !stop.load(SeqCst) && !done.load(SeqCst) && Instant::now() < deadline {
            let records = match c.poll(Duration::from_millis(100)) {
                Ok(r) => r,
                Err(e) => panic!("{name}: poll: {e}"),
            };
            board
                .assignment
                .lock()
                .unwrap()
                .insert(name.to_owned(), c.assignment());
            if records.is_empty() {
                continue;
            }
            board
                .seen
                .lock()
                .unwrap()
                .extend(records.iter().map(|m| (m.partition(), m.offset())));
            if throttle.load(SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
            if let Err(e) = c.commit() {
                assert!(
                    e.kind() == ErrorKind::Rebalance || e.is_retriable(),
                    "{name}: commit: {e}"
                );
                board.uncommitted.fetch_add(records.len(), SeqCst);
            }
        }
        board.assignment.lock().unwrap().remove(name);
        c.close(true).expect("close");
    })
}

/// Run by the take-over test in a child process (this test binary, this
/// test, with `KB_CHILD_GROUP` set); prints what it does on stdout.
#[test]
#[ignore = "a helper the take-over test runs in a child process"]
fn child_member() {
    let (Ok(group), Ok(topic)) = (
        std::env::var("KB_CHILD_GROUP"),
        std::env::var("KB_CHILD_TOPIC"),
    ) else {
        return;
    };
    let mut c = member(&group).build().expect("consumer");
    c.subscribe([topic.as_str()]).expect("subscribe");
    let out = std::io::stdout();
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        let records = c.poll(Duration::from_millis(100)).expect("poll");
        let mut o = out.lock();
        let parts: Vec<String> = c
            .assignment()
            .iter()
            .map(|tp| tp.partition.to_string())
            .collect();
        writeln!(o, "ASSIGN {}", parts.join(",")).unwrap();
        for m in &records {
            writeln!(o, "REC {} {}", m.partition(), m.offset()).unwrap();
        }
        o.flush().unwrap();
        drop(o);
        if records.is_empty() {
            continue;
        }
        std::thread::sleep(Duration::from_millis(20));
        if c.commit().is_ok() {
            let mut o = out.lock();
            writeln!(o, "COMMIT").unwrap();
            o.flush().unwrap();
        }
    }
}

#[derive(Default)]
struct ChildView {
    seen: Vec<(i32, i64)>,
    assignment: Vec<i32>,
    since_commit: usize,
}

#[test]
fn three_members_share_partitions_and_take_over_without_loss() {
    const N: usize = 100_000;
    let topic = unique_topic("g-take-over");
    let group = unique_topic("g-take-over-group");
    create_topic(&client(), &topic, 6);
    produce(&topic, 6, N);

    // C: a separate process, killed later without any chance to leave.
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args([
            "group::child_member",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap())
        .env("KB_CHILD_GROUP", &group)
        .env("KB_CHILD_TOPIC", &topic)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the child member");
    let child_view = Arc::new(Mutex::new(ChildView::default()));
    let stdout = child.stdout.take().expect("child stdout");
    let cv = Arc::clone(&child_view);
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let mut v = cv.lock().unwrap();
            let mut words = line.split_whitespace();
            match words.next() {
                Some("REC") => {
                    let (Some(Ok(p)), Some(Ok(o))) = (
                        words.next().map(str::parse::<i32>),
                        words.next().map(str::parse::<i64>),
                    ) else {
                        continue; // a line cut by the kill
                    };
                    v.seen.push((p, o));
                    v.since_commit += 1;
                }
                Some("COMMIT") => v.since_commit = 0,
                Some("ASSIGN") => {
                    v.assignment = words
                        .next()
                        .unwrap_or("")
                        .split(',')
                        .filter_map(|p| p.parse().ok())
                        .collect();
                }
                _ => {}
            }
        }
    });

    let board = Arc::new(Board::default());
    let throttle = Arc::new(AtomicBool::new(true));
    let done = Arc::new(AtomicBool::new(false));
    let stop_a = Arc::new(AtomicBool::new(false));
    let never = Arc::new(AtomicBool::new(false));
    let a = spawn_member(
        "A",
        group.clone(),
        topic.clone(),
        Arc::clone(&board),
        Arc::clone(&throttle),
        Arc::clone(&stop_a),
        Arc::clone(&done),
    );
    let b = spawn_member(
        "B",
        group.clone(),
        topic.clone(),
        Arc::clone(&board),
        Arc::clone(&throttle),
        never,
        Arc::clone(&done),
    );

    // All three members share the six partitions, each exactly once.
    wait_for(
        "three members covering six partitions",
        Duration::from_secs(45),
        || {
            let asg = board.assignment.lock().unwrap();
            let child = child_view.lock().unwrap().assignment.clone();
            let (Some(pa), Some(pb)) = (asg.get("A"), asg.get("B")) else {
                return false;
            };
            if pa.is_empty() || pb.is_empty() || child.is_empty() {
                return false;
            }
            let mut all: Vec<i32> = pa.iter().chain(pb).map(|tp| tp.partition).collect();
            all.extend(&child);
            all.sort();
            all == [0, 1, 2, 3, 4, 5]
        },
    );

    // A leaves cleanly; C dies.
    stop_a.store(true, SeqCst);
    a.join().expect("member A");
    child.kill().expect("kill the child member");
    let _ = child.wait();
    let _ = reader.join();
    throttle.store(false, SeqCst);

    // B takes everything over (C's partitions after its session times out).
    let total = |board: &Board, cv: &ChildView| -> BTreeSet<(i32, i64)> {
        let mut s: BTreeSet<(i32, i64)> = board.seen.lock().unwrap().iter().copied().collect();
        s.extend(cv.seen.iter().copied());
        s
    };
    wait_for("every record consumed", Duration::from_secs(60), || {
        total(&board, &child_view.lock().unwrap()).len() == N
    });
    done.store(true, SeqCst);
    b.join().expect("member B");

    let cv = child_view.lock().unwrap();
    let distinct = total(&board, &cv);
    assert_eq!(distinct.len(), N, "no record lost");
    for p in 0..6 {
        let n = distinct.iter().filter(|(q, _)| *q == p).count() as i64;
        assert_eq!(
            distinct
                .iter()
                .filter(|(q, _)| *q == p)
                .map(|(_, o)| *o)
                .max(),
            Some(n - 1),
            "partition {p}: offsets 0..{n} without gaps"
        );
    }
    let processed = board.seen.lock().unwrap().len() + cv.seen.len();
    let duplicates = processed - N;
    let allowed = cv.since_commit + board.uncommitted.load(SeqCst);
    println!(
        "processed {processed}, duplicates {duplicates}, uncommitted at the kill {}, failed commits {}",
        cv.since_commit,
        board.uncommitted.load(SeqCst)
    );
    assert!(
        duplicates <= allowed,
        "{duplicates} duplicates, but only {allowed} records were processed without a commit"
    );
}

#[test]
fn restart_resumes_from_committed_offsets() {
    let topic = unique_topic("g-resume");
    let group = unique_topic("g-resume-group");
    create_topic(&client(), &topic, 2);
    produce(&topic, 2, 1000);
    let mut first = member(&group).build().expect("consumer");
    first.subscribe([topic.as_str()]).expect("subscribe");
    let mut got = Vec::new();
    while got.len() < 400 {
        let r = first.poll(Duration::from_secs(10)).expect("poll");
        assert!(!r.is_empty(), "no records within 10 s");
        got.extend(r.iter().map(|m| (m.partition(), m.offset())));
    }
    first.commit().expect("commit");
    let committed = first
        .committed_offsets([(topic.as_str(), 0), (topic.as_str(), 1)])
        .expect("committed");
    for p in 0..2 {
        let n = got.iter().filter(|(q, _)| *q == p).count() as i64;
        let c = committed
            .get(&TopicPartition::new(topic.as_str(), p))
            .map(|o| o.offset);
        assert_eq!(c.unwrap_or(0), n, "partition {p}");
    }
    first.close(false).expect("close");

    let mut second = member(&group)
        .consumer_timeout_ms(3_000)
        .build()
        .expect("consumer");
    second.subscribe([topic.as_str()]).expect("subscribe");
    for m in &mut second {
        let m = m.expect("record");
        got.push((m.partition(), m.offset()));
    }
    let distinct: BTreeSet<_> = got.iter().copied().collect();
    assert_eq!(got.len(), 1000, "nothing read twice");
    assert_eq!(distinct.len(), 1000, "nothing lost");
}

#[test]
fn commit_async_callback_runs_on_the_consumer_thread() {
    let topic = unique_topic("g-async");
    let group = unique_topic("g-async-group");
    create_topic(&client(), &topic, 1);
    produce(&topic, 1, 50);
    let mut c = member(&group).build().expect("consumer");
    c.subscribe([topic.as_str()]).expect("subscribe");
    let mut n = 0;
    while n < 50 {
        n += c.poll(Duration::from_secs(10)).expect("poll").len();
    }
    let me = std::thread::current().id();
    let result: Arc<Mutex<Option<(bool, i64)>>> = Arc::default();
    let r2 = Arc::clone(&result);
    c.commit_async(move |offsets, outcome| {
        assert_eq!(
            std::thread::current().id(),
            me,
            "runs on the consumer's thread"
        );
        let o = offsets.values().next().map_or(-1, |o| o.offset);
        *r2.lock().unwrap() = Some((outcome.is_ok(), o));
    })
    .expect("commit_async");
    wait_for("the commit callback", Duration::from_secs(10), || {
        let _ = c.poll(Duration::from_millis(50)).expect("poll");
        result.lock().unwrap().is_some()
    });
    assert_eq!(*result.lock().unwrap(), Some((true, 50)));
    assert_eq!(
        c.committed((topic.as_str(), 0))
            .expect("committed")
            .map(|o| o.offset),
        Some(50)
    );
    c.close(false).expect("close");
}

#[test]
fn auto_offset_reset_policies() {
    let topic = unique_topic("g-reset");
    create_topic(&client(), &topic, 1);
    // The last record in a batch of its own: Tansu 0.6 answers "latest"
    // with the last batch's base offset + 1.
    produce(&topic, 1, 9);
    produce(&topic, 1, 1);

    let mut earliest = member(&unique_topic("g-reset-e"))
        .consumer_timeout_ms(2_000)
        .build()
        .expect("consumer");
    earliest.subscribe([topic.as_str()]).expect("subscribe");
    assert_eq!(earliest.by_ref().count(), 10);

    let mut latest = member(&unique_topic("g-reset-l"))
        .auto_offset_reset("latest")
        .consumer_timeout_ms(10_000)
        .build()
        .expect("consumer");
    latest.subscribe([topic.as_str()]).expect("subscribe");
    // Wait until the group assigned the partition and the position is set.
    wait_for("an assignment", Duration::from_secs(20), || {
        let _ = latest.poll(Duration::from_millis(100)).expect("poll");
        !latest.assignment().is_empty()
    });
    assert_eq!(latest.position((topic.as_str(), 0)).expect("position"), 10);
    produce(&topic, 1, 1);
    let m = latest.next().expect("a new record").expect("record");
    assert_eq!(m.offset(), 10, "only records produced after the reset");

    let mut none = member(&unique_topic("g-reset-n"))
        .auto_offset_reset("none")
        .build()
        .expect("consumer");
    none.assign([(topic.as_str(), 0)]).expect("assign");
    let e = none.poll(Duration::from_secs(5)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoOffset, "{e}");
    assert!(e.to_string().contains("auto_offset_reset is none"), "{e}");
    none.seek((topic.as_str(), 0), 4).expect("seek");
    let r = none.poll(Duration::from_secs(5)).expect("poll after seek");
    assert_eq!(r.iter().next().map(|m| m.offset()), Some(4));
}

/// One callback: `R`evoked, `A`ssigned or `L`ost, and its partitions.
type Call = (char, Vec<TopicPartition>);

/// Remembers what the listener was told.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Call>>>);

impl RebalanceListener for Recorder {
    fn on_partitions_revoked(&mut self, _: &mut Consumer, p: &[TopicPartition]) {
        self.0.lock().unwrap().push(('R', p.to_vec()));
    }
    fn on_partitions_assigned(&mut self, _: &mut Consumer, p: &[TopicPartition]) {
        self.0.lock().unwrap().push(('A', p.to_vec()));
    }
    fn on_partitions_lost(&mut self, _: &mut Consumer, p: &[TopicPartition]) {
        self.0.lock().unwrap().push(('L', p.to_vec()));
    }
}

#[test]
fn cooperative_rebalance_revokes_only_what_moves() {
    let topic = unique_topic("g-coop");
    let group = unique_topic("g-coop-group");
    create_topic(&client(), &topic, 4);
    let coop = || member(&group).partition_assignment_strategy(["cooperative-sticky"]);
    let mut first = coop().build().expect("consumer");
    let rec1 = Recorder::default();
    first.set_rebalance_listener(rec1.clone());
    first.subscribe([topic.as_str()]).expect("subscribe");
    wait_for(
        "the first member owning all 4",
        Duration::from_secs(20),
        || {
            first.poll(Duration::from_millis(50)).expect("poll");
            first.assignment().len() == 4
        },
    );
    let mut second = coop().build().expect("consumer");
    second.subscribe([topic.as_str()]).expect("subscribe");
    wait_for("2 partitions each", Duration::from_secs(30), || {
        first.poll(Duration::from_millis(20)).expect("poll");
        second.poll(Duration::from_millis(20)).expect("poll");
        first.assignment().len() == 2 && second.assignment().len() == 2
    });
    let events = rec1.0.lock().unwrap().clone();
    let revoked: Vec<TopicPartition> = events
        .iter()
        .filter(|(k, _)| *k == 'R')
        .flat_map(|(_, p)| p.clone())
        .collect();
    assert_eq!(
        revoked.len(),
        2,
        "only the two moving partitions are revoked: {events:?}"
    );
    assert!(
        revoked.iter().all(|tp| second.assignment().contains(tp)),
        "{events:?}"
    );
    assert!(!events.iter().any(|(k, _)| *k == 'L'), "{events:?}");
    second.close(true).expect("close");
    wait_for(
        "the first member owning all 4 again",
        Duration::from_secs(20),
        || {
            first.poll(Duration::from_millis(50)).expect("poll");
            first.assignment().len() == 4
        },
    );
    first.close(true).expect("close");
}

#[test]
fn pattern_subscription_follows_matching_topics() {
    let prefix = unique_topic("g-pattern");
    let (t1, t2, other) = (
        format!("{prefix}-a"),
        format!("{prefix}-b"),
        format!("{prefix}x"),
    );
    let c = client();
    for t in [&t1, &t2, &other] {
        create_topic(&c, t, 1);
    }
    let p = Producer::builder()
        .bootstrap_servers(bootstrap())
        .build()
        .expect("producer");
    for t in [&t1, &t2, &other] {
        let _ = p
            .send(Record::new(t.as_str()).value(t.as_str()))
            .expect("send");
    }
    p.flush(Duration::from_secs(30)).expect("flush");
    let mut consumer = member(&unique_topic("g-pattern-group"))
        .consumer_timeout_ms(3_000)
        .build()
        .expect("consumer");
    consumer
        .subscribe_pattern(&format!("{}-[ab]", prefix.replace('-', "\\-")))
        .expect("subscribe");
    assert_eq!(
        consumer.subscription(),
        [t1.clone(), t2.clone()]
            .into_iter()
            .collect::<BTreeSet<_>>()
    );
    let mut values: Vec<String> = consumer
        .by_ref()
        .map(|m| m.expect("record").value_as::<String>().expect("utf-8"))
        .collect();
    values.sort();
    assert_eq!(values, [t1, t2]);
}

/// `exclude_internal_topics` (on by default) goes by the broker's
/// `is_internal` flag, as `topics()` and the Java client: a user topic named
/// `__audit...` is matched by a pattern.
#[test]
fn a_pattern_matches_a_user_topic_starting_with_two_underscores() {
    let audit = format!("__{}", unique_topic("audit"));
    let c = client();
    create_topic(&c, &audit, 1);
    let md = c
        .refresh_metadata(Some(&[audit.as_str()]))
        .expect("metadata");
    assert!(!md.topic(&audit).expect("the topic").is_internal);
    let mut consumer = member(&unique_topic("g-audit-group"))
        .build()
        .expect("consumer");
    consumer
        .subscribe_pattern(&audit.replace('-', "\\-"))
        .expect("subscribe");
    assert_eq!(
        consumer.subscription(),
        [audit].into_iter().collect::<BTreeSet<_>>()
    );
    consumer.close(false).expect("close");
}

#[test]
fn subscribe_needs_a_group_and_excludes_assign() {
    let mut c = Consumer::builder()
        .bootstrap_servers(bootstrap())
        .build()
        .expect("consumer");
    assert_eq!(
        c.subscribe(["t"]).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    let mut g = member("g-misuse").build().expect("consumer");
    g.assign([("t", 0)]).expect("assign");
    let e = g.subscribe(["t"]).unwrap_err();
    assert!(e.to_string().contains("unsubscribe"), "{e}");
    g.unsubscribe();
    g.subscribe(["t"]).expect("subscribe after unsubscribe");
}

#[test]
fn a_member_that_stops_polling_leaves_and_rejoins() {
    let topic = unique_topic("g-stall");
    let group = unique_topic("g-stall-group");
    create_topic(&client(), &topic, 4);
    let mut a = member(&group)
        .max_poll_interval_ms(2_000)
        .build()
        .expect("consumer");
    let rec = Recorder::default();
    a.set_rebalance_listener(rec.clone());
    a.subscribe([topic.as_str()]).expect("subscribe");
    let mut b = member(&group).build().expect("consumer");
    b.subscribe([topic.as_str()]).expect("subscribe");
    wait_for("2 partitions each", Duration::from_secs(30), || {
        a.poll(Duration::from_millis(20)).expect("poll");
        b.poll(Duration::from_millis(20)).expect("poll");
        a.assignment().len() == 2 && b.assignment().len() == 2
    });
    // A stalls past max_poll_interval_ms: it leaves, B takes everything.
    let stalled_at = Instant::now();
    wait_for(
        "B owning all 4 while A stalls",
        Duration::from_secs(30),
        || {
            b.poll(Duration::from_millis(50)).expect("poll");
            b.assignment().len() == 4
        },
    );
    assert!(stalled_at.elapsed() >= Duration::from_secs(2));
    // A polls again: its partitions were lost; it rejoins.
    wait_for("A and B sharing again", Duration::from_secs(30), || {
        a.poll(Duration::from_millis(20)).expect("poll");
        b.poll(Duration::from_millis(20)).expect("poll");
        a.assignment().len() == 2 && b.assignment().len() == 2
    });
    let kinds: String = rec.0.lock().unwrap().iter().map(|(k, _)| *k).collect();
    assert!(kinds.contains('L'), "A's partitions were lost: {kinds}");
    assert!(kinds.ends_with('A'), "A got partitions again: {kinds}");
    a.close(false).expect("close");
    b.close(false).expect("close");
}

/// Two static members (B joined first and leads: Tansu 0.6 keeps a
/// departed static leader's member id as the leader, so no one would assign
/// after its restart) share 4 partitions; then A closes (a static member
/// sends no LeaveGroup: its place waits for it for session_timeout_ms) and
/// a new consumer with A's instance id subscribes. Returns (new A, B, A's
/// partitions before the restart, B's listener, B's listener calls before).
fn restart_a_static_member(
    group: &str,
    topic: &str,
) -> (Consumer, Consumer, Vec<TopicPartition>, Recorder, usize) {
    let stat = |id: &str| member(group).group_instance_id(id);
    let mut b = stat("instance-b").build().expect("consumer");
    let rec_b = Recorder::default();
    b.set_rebalance_listener(rec_b.clone());
    b.subscribe([topic]).expect("subscribe");
    wait_for("B owning all 4", Duration::from_secs(30), || {
        b.poll(Duration::from_millis(20)).expect("poll");
        b.assignment().len() == 4
    });
    let mut a = stat("instance-a").build().expect("consumer");
    a.subscribe([topic]).expect("subscribe");
    wait_for("2 partitions each", Duration::from_secs(30), || {
        a.poll(Duration::from_millis(20)).expect("poll");
        b.poll(Duration::from_millis(20)).expect("poll");
        a.assignment().len() == 2 && b.assignment().len() == 2
    });
    let before = a.assignment();
    let b_calls = rec_b.0.lock().unwrap().len();
    a.close(true).expect("close");
    let mut a = stat("instance-a").build().expect("consumer");
    a.subscribe([topic]).expect("subscribe");
    (a, b, before, rec_b, b_calls)
}

#[test]
fn a_static_member_gets_its_partitions_back_after_a_restart() {
    let topic = unique_topic("g-static");
    let group = unique_topic("g-static-group");
    create_topic(&client(), &topic, 4);
    let (mut a, mut b, before, _, _) = restart_a_static_member(&group, &topic);
    wait_for("A back", Duration::from_secs(45), || {
        a.poll(Duration::from_millis(20)).expect("poll");
        b.poll(Duration::from_millis(20)).expect("poll");
        !a.assignment().is_empty()
    });
    assert_eq!(
        a.assignment(),
        before,
        "the same partitions for the same instance"
    );
    a.close(true).expect("close");
    b.close(true).expect("close");
}

#[test]
#[cfg_attr(
    not(kafka_external),
    ignore = "needs real Kafka: Tansu 0.6 keeps expiring a restarted static member's old session and evicts it again every session timeout; set KAFKA_BOOTSTRAP_SERVERS"
)]
fn a_static_member_restart_causes_no_rebalance() {
    let topic = unique_topic("g-static2");
    let group = unique_topic("g-static2-group");
    create_topic(&client(), &topic, 4);
    let (mut a, mut b, before, rec_b, b_calls) = restart_a_static_member(&group, &topic);
    wait_for("A back, 2 partitions each", Duration::from_secs(30), || {
        a.poll(Duration::from_millis(20)).expect("poll");
        b.poll(Duration::from_millis(20)).expect("poll");
        a.assignment().len() == 2 && b.assignment().len() == 2
    });
    assert_eq!(
        a.assignment(),
        before,
        "the same partitions for the same instance"
    );
    let calls = rec_b.0.lock().unwrap().clone();
    assert_eq!(calls.len(), b_calls, "B saw no rebalance: {calls:?}");
    a.close(true).expect("close");
    b.close(true).expect("close");
}

#[test]
fn group_protocol_consumer_works_with_or_without_kip_848() {
    let topic = unique_topic("g-848");
    let group = unique_topic("g-848-group");
    create_topic(&client(), &topic, 3);
    produce(&topic, 3, 300);
    let offers_848 = client()
        .check_version()
        .map(|v| {
            v.api_versions
                .max_version(kafka_blocking::protocol::ApiKey::CONSUMER_GROUP_HEARTBEAT)
                .is_some()
        })
        .unwrap_or(false);
    if !offers_848 {
        println!("the broker has no ConsumerGroupHeartbeat: checking the fallback to classic");
    }
    let mut c = Consumer::builder()
        .bootstrap_servers(bootstrap())
        .group_id(&group)
        .group_protocol("consumer")
        .auto_offset_reset("earliest")
        .consumer_timeout_ms(3_000)
        .build()
        .expect("consumer");
    c.subscribe([topic.as_str()]).expect("subscribe");
    let mut n = 0;
    for m in &mut c {
        m.expect("record");
        n += 1;
    }
    assert_eq!(n, 300);
    assert_eq!(c.assignment().len(), 3);
    c.commit().expect("commit");
    c.close(true).expect("close");
}

#[test]
fn auto_commit_on_the_interval_and_on_close() {
    let topic = unique_topic("g-auto");
    let group = unique_topic("g-auto-group");
    create_topic(&client(), &topic, 1);
    produce(&topic, 1, 100);
    let tp = TopicPartition::new(topic.as_str(), 0);
    let mut c = member(&group)
        .enable_auto_commit(true)
        .auto_commit_interval_ms(300)
        .build()
        .expect("consumer");
    c.subscribe([topic.as_str()]).expect("subscribe");
    let mut n = 0;
    while n < 100 {
        n += c.poll(Duration::from_secs(10)).expect("poll").len();
    }
    // No explicit commit: the interval commits the position.
    wait_for("an automatic commit", Duration::from_secs(10), || {
        c.poll(Duration::from_millis(50)).expect("poll");
        c.committed(&tp).expect("committed").is_some()
    });
    // close(true) commits whatever was read last.
    let pos = c.position(&tp).expect("position");
    c.close(true).expect("close");
    let mut check = member(&group).build().expect("consumer");
    assert_eq!(
        check.committed(&tp).expect("committed").map(|o| o.offset),
        Some(pos)
    );
}

#[test]
fn unsubscribe_then_subscribe_at_once_gets_partitions_again() {
    let topic = unique_topic("g-resub");
    let group = unique_topic("g-resub-group");
    create_topic(&client(), &topic, 2);
    produce(&topic, 2, 20);
    let mut c = member(&group).build().expect("consumer");
    c.subscribe([topic.as_str()]).expect("subscribe");
    wait_for("an assignment", Duration::from_secs(30), || {
        c.poll(Duration::from_millis(50)).expect("poll");
        c.assignment().len() == 2
    });
    // No pause between the two: the group thread may see both at once.
    c.unsubscribe();
    c.subscribe([topic.as_str()]).expect("subscribe again");
    assert!(c.assignment().is_empty());
    let mut n = 0;
    wait_for(
        "records after subscribing again",
        Duration::from_secs(15),
        || {
            n += c.poll(Duration::from_millis(50)).expect("poll").len();
            n > 0
        },
    );
    assert_eq!(c.assignment().len(), 2);
    c.close(false).expect("close");
}

#[test]
fn a_pattern_picks_up_a_new_topic_without_auto_commit() {
    let prefix = unique_topic("g-late");
    let mut c = member(&unique_topic("g-late-group"))
        .metadata_max_age_ms(500)
        .build()
        .expect("consumer");
    c.subscribe_pattern(&format!("{}-.*", prefix.replace('-', "\\-")))
        .expect("subscribe");
    assert!(c.poll(Duration::from_millis(300)).expect("poll").is_empty());
    assert!(c.subscription().is_empty());
    let topic = format!("{prefix}-new");
    create_topic(&client(), &topic, 1);
    produce(&topic, 1, 3);
    let mut n = 0;
    wait_for("a record of the new topic", Duration::from_secs(20), || {
        n += c.poll(Duration::from_millis(50)).expect("poll").len();
        n > 0
    });
    assert_eq!(c.subscription(), [topic].into_iter().collect());
    c.close(false).expect("close");
}

#[test]
fn a_manual_assignment_auto_commits_on_the_interval_and_on_unsubscribe() {
    let topic = unique_topic("g-assign-auto");
    let group = unique_topic("g-assign-auto-group");
    create_topic(&client(), &topic, 2);
    produce(&topic, 2, 20); // 10 per partition
    let (p0, p1) = (
        TopicPartition::new(topic.as_str(), 0),
        TopicPartition::new(topic.as_str(), 1),
    );
    let mut check = member(&group).build().expect("consumer");
    let committed = |check: &mut Consumer, tp: &TopicPartition| {
        check.committed(tp).expect("committed").map(|o| o.offset)
    };

    let mut c = member(&group)
        .enable_auto_commit(true)
        .auto_commit_interval_ms(200)
        .build()
        .expect("consumer");
    c.assign([&p0]).expect("assign");
    let mut n = 0;
    while n < 10 {
        let r = c.poll(Duration::from_secs(10)).expect("poll");
        assert!(!r.is_empty(), "no records within 10 s");
        n += r.len();
    }
    wait_for("a commit on the interval", Duration::from_secs(10), || {
        c.poll(Duration::from_millis(50)).expect("poll");
        committed(&mut check, &p0) == Some(10)
    });
    c.close(false).expect("close");

    let mut c = member(&group)
        .enable_auto_commit(true)
        .auto_commit_interval_ms(600_000)
        .build()
        .expect("consumer");
    c.assign([&p1]).expect("assign");
    let mut n = 0;
    while n < 10 {
        let r = c.poll(Duration::from_secs(10)).expect("poll");
        assert!(!r.is_empty(), "no records within 10 s");
        n += r.len();
    }
    c.unsubscribe();
    assert_eq!(
        committed(&mut check, &p1),
        Some(10),
        "committed on unsubscribe"
    );
    c.close(false).expect("close");
}

#[test]
fn auto_commit_never_covers_records_not_yet_returned() {
    const N: usize = 20_000;
    let topic = unique_topic("g-auto-batch");
    let group = unique_topic("g-auto-batch-group");
    create_topic(&client(), &topic, 1);
    produce(&topic, 1, N);
    let tp = TopicPartition::new(topic.as_str(), 0);
    let mut check = member(&group).build().expect("consumer");
    // A commit is due all the time, and a poll takes everything buffered.
    let mut c = member(&group)
        .enable_auto_commit(true)
        .auto_commit_interval_ms(1)
        .max_poll_records(1_000_000)
        .build()
        .expect("consumer");
    c.assign([&tp]).expect("assign");
    let mut returned = 0;
    let mut polls = 0;
    while returned < N && polls < 200 {
        polls += 1;
        let batch = c.poll(Duration::from_secs(10)).expect("poll").len();
        assert!(batch > 0, "no records within 10 s");
        // Let a commit sent during that poll land.
        std::thread::sleep(Duration::from_millis(200));
        let committed = check
            .committed(&tp)
            .expect("committed")
            .map_or(0, |o| o.offset);
        assert!(
            committed <= returned as i64,
            "committed {committed}, but only {returned} records had been returned before this poll (which returned {batch})"
        );
        returned += batch;
    }
    assert_eq!(returned, N);
    c.close(false).expect("close");
}
