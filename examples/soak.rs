//! Soak: mixed load through a `ChaosCluster` for a set time, reporting
//! whether anything was lost and whether RSS, threads or descriptors grow.
//!
//! ```text
//! cargo run --release --example soak -- [seconds, default 180] [consumer restart every s, default 30]
//! ```
//!
//! `SOAK_LINGER_MS` sets the producers' `linger_ms` (default 5; 0 runs
//! the path where `send()` takes the sender's turn).
//!
//! Load: 4 producer threads (idempotent, acks=all, ~500 records/s each), a
//! group of 3 consumers committing after processing (one of them closed
//! and replaced every restart period), an admin call every 10 s. Faults,
//! one every 3 s in turn: all leaders move, a node is killed (revived at
//! the next fault), 1 request in 50 loses its connection for 3 s, a node
//! answers 200 ms late for 3 s.
//!
//! The broker and the chaos front run in a child process (this program
//! with `--front`), so that the threads and descriptors counted here are
//! the clients' alone. Samples every 5 s; after a warm-up of a fifth of
//! the run, the RSS slope is a least-squares fit, and so is the slope of
//! live heap bytes (a counting allocator): a leak grows both, allocator
//! caching and fragmentation only RSS. This program's own bookkeeping (a
//! bit per record acknowledged and per record seen) grows the heap too; it
//! is printed, and taken out of the "without bookkeeping" slope. Exit code 3 when a record
//! acknowledged by the broker was never consumed.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_blocking::admin::{AdminClient, NewTopic};
use kafka_blocking::consumer::Consumer;
use kafka_blocking::producer::{Producer, Record};
use kafka_blocking::testkit::{ChaosCluster, LocalBroker};

const PRODUCERS: u64 = 4;
const PARTITIONS: i32 = 6;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--front") {
        front();
        return ExitCode::SUCCESS;
    }
    let secs: u64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(180);
    let restart: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(30);
    match soak(Duration::from_secs(secs), Duration::from_secs(restart)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(3),
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The child: broker + 3-node chaos front; prints the bootstrap list, then
/// injects a fault every 3 s until stdin closes (the parent died or ended).
fn front() {
    let broker = LocalBroker::start().expect("broker");
    let cluster = Arc::new(ChaosCluster::start(broker.bootstrap_servers(), 3).expect("front"));
    println!("BROKER {}", broker.bootstrap_servers());
    println!("FRONT {}", cluster.bootstrap_servers());
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = Arc::clone(&stop);
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        s2.store(true, SeqCst);
    });
    let mut step = 0u64;
    let mut dead: Option<i32> = None;
    while !stop.load(SeqCst) {
        std::thread::sleep(Duration::from_secs(3));
        cluster.set_cut_per_mille(0);
        cluster.set_delay(1 + (step % 3) as i32, Duration::ZERO);
        if let Some(n) = dead.take() {
            let _ = cluster.revive(n);
        }
        match step % 4 {
            0 => {
                cluster.move_all_leaders();
            }
            1 => {
                let n = 1 + (step / 4 % 3) as i32;
                cluster.kill(n);
                dead = Some(n);
            }
            2 => cluster.set_cut_per_mille(20),
            _ => cluster.set_delay(1 + ((step + 1) % 3) as i32, Duration::from_millis(200)),
        }
        step += 1;
        eprintln!("front: fault {step}; {:?}", cluster.stats());
    }
}

#[path = "../tests/support/usage.rs"]
mod usage;

#[path = "../tests/support/live_heap.rs"]
mod live_heap;

#[derive(Clone, Copy, Debug)]
struct Sample {
    at: f64,
    rss_kib: u64,
    heap_kib: u64,
    /// Of `heap_kib`, this program's own bookkeeping (the bitsets of ids
    /// acknowledged and seen, which grow with every record).
    book_kib: u64,
    threads: usize,
    fds: usize,
}

fn sample(start: Instant, book_bytes: u64) -> Sample {
    let u = usage::usage();
    Sample {
        at: start.elapsed().as_secs_f64(),
        rss_kib: u.rss_kib,
        heap_kib: live_heap::live_heap_kib(),
        book_kib: book_bytes / 1024,
        threads: u.threads,
        fds: u.fds,
    }
}

/// Bitsets of the ids seen, one per producer thread.
#[derive(Default)]
struct Seen(Mutex<HashMap<u64, Vec<u64>>>);

impl Seen {
    fn insert(&self, id: u64) {
        let (t, n) = (id >> 40, (id & ((1 << 40) - 1)) as usize);
        let mut m = self.0.lock().unwrap();
        let bits = m.entry(t).or_default();
        if bits.len() <= n / 64 {
            bits.resize(n / 64 + 1024, 0);
        }
        bits[n / 64] |= 1 << (n % 64);
    }
    /// Heap bytes the bitsets hold (their capacity).
    fn bytes(&self) -> u64 {
        let m = self.0.lock().unwrap();
        m.values().map(|b| b.capacity() as u64 * 8).sum()
    }
    /// How many ids in `self` are not in `other`.
    fn missing_from(&self, other: &Seen) -> usize {
        let mine = self.0.lock().unwrap();
        let theirs = other.0.lock().unwrap();
        let mut missing = 0;
        for (t, bits) in mine.iter() {
            let empty = Vec::new();
            let other_bits = theirs.get(t).unwrap_or(&empty);
            for (i, w) in bits.iter().enumerate() {
                let o = other_bits.get(i).copied().unwrap_or(0);
                missing += (w & !o).count_ones() as usize;
            }
        }
        missing
    }
}

fn soak(run: Duration, restart: Duration) -> kafka_blocking::Result<bool> {
    let exe = std::env::current_exe().map_err(|e| kafka_blocking::Error::io("current_exe", e))?;
    let mut child = Command::new(exe)
        .arg("--front")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| kafka_blocking::Error::io("starting the front", e))?;
    let mut lines = BufReader::new(child.stdout.take().expect("piped"));
    let (mut broker, mut front) = (String::new(), String::new());
    for _ in 0..2 {
        let mut l = String::new();
        lines
            .read_line(&mut l)
            .map_err(|e| kafka_blocking::Error::io("reading the front", e))?;
        if let Some(b) = l.trim().strip_prefix("BROKER ") {
            broker = b.to_owned();
        } else if let Some(f) = l.trim().strip_prefix("FRONT ") {
            front = f.to_owned();
        }
    }
    let result = drive(&broker, &front, run, restart);
    drop(child.stdin.take()); // the front stops
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn drive(
    broker: &str,
    front: &str,
    run: Duration,
    restart: Duration,
) -> kafka_blocking::Result<bool> {
    let topic = format!("soak-{}", std::process::id());
    let group = format!("{topic}-group");
    AdminClient::builder()
        .bootstrap_servers(broker)
        .build()?
        .create_topics([NewTopic::new(topic.as_str(), PARTITIONS, 1)], false, None)?;
    println!("soak: {run:?}, topic {topic}, front {front}");
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    // Bitsets, not lists: the harness's own memory must stay flat too.
    let acked = Arc::new(Seen::default());
    let acked_count = Arc::new(AtomicU64::new(0));
    let produced = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(Seen::default());
    let consumed = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();

    let producer = Producer::builder()
        .bootstrap_servers(front)
        .enable_idempotence(true)
        .acks("all")
        // SOAK_LINGER_MS=0: sends take the sender's turn themselves.
        .linger_ms(
            std::env::var("SOAK_LINGER_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(5),
        )
        .delivery_timeout_ms(120_000)
        .request_timeout_ms(5_000)
        .build()?;
    for t in 0..PRODUCERS {
        let topic = topic.clone();
        let (producer, stop, acked, acked_count, produced) = (
            producer.clone(),
            Arc::clone(&stop),
            Arc::clone(&acked),
            Arc::clone(&acked_count),
            Arc::clone(&produced),
        );
        threads.push(std::thread::spawn(move || {
            let mut pending = Vec::new();
            let mut n = 0u64;
            while !stop.load(SeqCst) {
                let id = (t << 40) | n;
                match producer.send(Record::new(topic.as_str()).value(id.to_string())) {
                    Ok(f) => pending.push((id, f)),
                    Err(e) => eprintln!("send: {e}"),
                }
                n += 1;
                produced.fetch_add(1, SeqCst);
                if n % 50 == 0 {
                    std::thread::sleep(Duration::from_millis(100));
                    pending.retain(|(id, f)| match f.try_get() {
                        Some(Ok(_)) => {
                            acked.insert(*id);
                            acked_count.fetch_add(1, SeqCst);
                            false
                        }
                        Some(Err(e)) => {
                            eprintln!("record {id}: {e}");
                            false
                        }
                        None => true,
                    });
                }
            }
            for (id, f) in pending {
                if f.get(Duration::from_secs(120)).is_ok() {
                    acked.insert(id);
                    acked_count.fetch_add(1, SeqCst);
                }
            }
        }));
    }

    let consumers_stop = Arc::new(AtomicBool::new(false));
    let mut members = Vec::new();
    let spawn_member = |m: usize| {
        let (front, group, topic) = (front.to_owned(), group.clone(), topic.clone());
        let (stop, seen, consumed) = (
            Arc::clone(&consumers_stop),
            Arc::clone(&seen),
            Arc::clone(&consumed),
        );
        let quit = Arc::new(AtomicBool::new(false));
        let q2 = Arc::clone(&quit);
        let h = std::thread::spawn(move || {
            let mut c = match Consumer::builder()
                .bootstrap_servers(&front)
                .group_id(&group)
                .auto_offset_reset("earliest")
                .enable_auto_commit(false)
                .session_timeout_ms(6_000)
                .heartbeat_interval_ms(500)
                .request_timeout_ms(5_000)
                .build()
            {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("member {m}: {e}");
                    return;
                }
            };
            let _ = c.subscribe([topic.as_str()]);
            while !stop.load(SeqCst) && !q2.load(SeqCst) {
                let Ok(records) = c.poll(Duration::from_millis(200)) else {
                    continue;
                };
                for r in &records {
                    if let Some(id) = r
                        .value()
                        .and_then(|v| std::str::from_utf8(v.as_slice()).ok())
                        .and_then(|s| s.parse().ok())
                    {
                        seen.insert(id);
                        consumed.fetch_add(1, SeqCst);
                    }
                }
                if !records.is_empty() {
                    let _ = c.commit();
                }
            }
            let _ = c.close(true);
        });
        (quit, h)
    };
    for m in 0..3 {
        members.push(spawn_member(m));
    }

    let admin = AdminClient::builder()
        .bootstrap_servers(front)
        .request_timeout_ms(5_000)
        .build()?;
    let mut samples = Vec::new();
    let mut last_admin = Instant::now();
    let mut last_restart = Instant::now();
    let mut restarts = 0usize;
    let mut admin_calls = (0usize, 0usize);
    let mut next_sample = Instant::now();
    while start.elapsed() < run {
        std::thread::sleep(Duration::from_millis(200));
        if last_admin.elapsed() >= Duration::from_secs(10) {
            last_admin = Instant::now();
            admin_calls.0 += 1;
            if admin.list_topics().is_err() {
                admin_calls.1 += 1;
            }
        }
        if last_restart.elapsed() >= restart {
            last_restart = Instant::now();
            let which = restarts % 3;
            let (quit, h) = members.remove(which);
            quit.store(true, SeqCst);
            let _ = h.join();
            members.insert(which, spawn_member(3 + restarts));
            restarts += 1;
        }
        if Instant::now() >= next_sample {
            next_sample += Duration::from_secs(5);
            let s = sample(start, acked.bytes() + seen.bytes());
            println!(
                "t={:>5.0}s rss={} KiB heap={} KiB (bookkeeping {} KiB) threads={} fds={} produced={} consumed={}",
                s.at,
                s.rss_kib,
                s.heap_kib,
                s.book_kib,
                s.threads,
                s.fds,
                produced.load(SeqCst),
                consumed.load(SeqCst)
            );
            samples.push(s);
        }
    }
    stop.store(true, SeqCst);
    for t in threads {
        let _ = t.join();
    }
    // Let the group catch up (bounded), then check.
    let deadline = Instant::now() + Duration::from_secs(120);
    let missing = loop {
        let missing = acked.missing_from(&seen);
        if missing == 0 || Instant::now() >= deadline {
            break missing;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    consumers_stop.store(true, SeqCst);
    for (_, h) in members {
        let _ = h.join();
    }
    drop(admin);
    drop(producer);

    let warm: Vec<Sample> = samples
        .iter()
        .copied()
        .filter(|s| s.at >= run.as_secs_f64() / 5.0)
        .collect();
    let slope = slope_of(&warm, |s| s.rss_kib);
    let heap_slope = slope_of(&warm, |s| s.heap_kib);
    let client_heap_slope = slope_of(&warm, |s| s.heap_kib.saturating_sub(s.book_kib));
    let range = |f: fn(&Sample) -> u64| {
        (
            warm.iter().map(f).min().unwrap_or(0),
            warm.iter().map(f).max().unwrap_or(0),
        )
    };
    let threads = range(|s| s.threads as u64);
    let fds = range(|s| s.fds as u64);
    let rss = range(|s| s.rss_kib);
    println!(
        "soak result: {:?}, {} produced, {} acknowledged, {} consumed (with repeats), \
         missing {missing}; consumer restarts {restarts}; admin calls {} ({} failed); \
         after warm-up: RSS {}..{} KiB, slope {:+.1} KiB/min; live heap slope {:+.1} KiB/min, \
         without this program's bookkeeping {:+.1} KiB/min; threads {}..{}; fds {}..{}",
        start.elapsed(),
        produced.load(SeqCst),
        acked_count.load(SeqCst),
        consumed.load(SeqCst),
        admin_calls.0,
        admin_calls.1,
        rss.0,
        rss.1,
        slope * 60.0,
        heap_slope * 60.0,
        client_heap_slope * 60.0,
        threads.0,
        threads.1,
        fds.0,
        fds.1
    );
    Ok(missing == 0)
}

/// Least-squares slope of `y` (KiB) over time (s).
fn slope_of(s: &[Sample], y: fn(&Sample) -> u64) -> f64 {
    if s.len() < 2 {
        return 0.0;
    }
    let n = s.len() as f64;
    let mx = s.iter().map(|x| x.at).sum::<f64>() / n;
    let my = s.iter().map(|x| y(x) as f64).sum::<f64>() / n;
    let num: f64 = s.iter().map(|x| (x.at - mx) * (y(x) as f64 - my)).sum();
    let den: f64 = s.iter().map(|x| (x.at - mx).powi(2)).sum();
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}
