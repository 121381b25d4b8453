//! An exactly-once read-process-write pipeline: read numbers from `numbers`
//! in a consumer group, write each one doubled to `doubled`, in
//! transactions of `--batch` records that also commit the input offsets
//! (`send_offsets_to_transaction`). A crash or a fenced instance loses or
//! repeats nothing: the open transaction is aborted and its input read
//! again by whoever takes over.
//!
//! ```text
//! cargo run --example exactly_once                        # a local broker (Tansu) is started
//! cargo run --example exactly_once -- 127.0.0.1:9092 --batch 100 --idle-exit 5
//! cargo run --example exactly_once -- 127.0.0.1:9092 --crash-after 250   # std::process::abort mid-transaction
//! ```
//!
//! Options: `--input TOPIC` (`numbers`), `--output TOPIC` (`doubled`),
//! `--group ID` (`doubler`), `--transactional-id ID` (`doubler-1`),
//! `--batch N` (100 records per transaction), `--crash-after K` (abort the
//! process after sending the K-th record of this run, before its
//! transaction commits), `--idle-exit SECS` (stop after that long without
//! input once partitions are assigned; default: run until Ctrl-C),
//! `--produce N` (first write the numbers 0..N to the input topic,
//! non-transactionally), `--session-timeout-ms MS` (6000).
//!
//! Exit codes: 0 done, 2 fenced by another instance with the same
//! transactional id (the error is printed), 1 other errors.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka_blocking::consumer::{Consumer, OffsetAndMetadata, TopicPartition};
use kafka_blocking::producer::{Producer, Record};
use kafka_blocking::testkit::LocalBroker;
use kafka_blocking::ErrorKind;

struct Options {
    bootstrap: Option<String>,
    input: String,
    output: String,
    group: String,
    transactional_id: String,
    batch: usize,
    crash_after: Option<u64>,
    idle_exit: Option<u64>,
    produce: u64,
    session_timeout_ms: i64,
}

fn options() -> Options {
    let mut o = Options {
        bootstrap: std::env::var("KAFKA_BOOTSTRAP_SERVERS").ok(),
        input: "numbers".into(),
        output: "doubled".into(),
        group: "doubler".into(),
        transactional_id: "doubler-1".into(),
        batch: 100,
        crash_after: None,
        idle_exit: None,
        produce: 0,
        session_timeout_ms: 6_000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_default();
        match a.as_str() {
            "--input" => o.input = value(),
            "--output" => o.output = value(),
            "--group" => o.group = value(),
            "--transactional-id" => o.transactional_id = value(),
            "--batch" => o.batch = value().parse().unwrap_or(o.batch).max(1),
            "--crash-after" => o.crash_after = value().parse().ok(),
            "--idle-exit" => o.idle_exit = value().parse().ok(),
            "--produce" => o.produce = value().parse().unwrap_or(0),
            "--session-timeout-ms" => {
                o.session_timeout_ms = value().parse().unwrap_or(o.session_timeout_ms)
            }
            other => o.bootstrap = Some(other.to_owned()),
        }
    }
    o
}

fn main() {
    let o = options();
    match run(&o) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::TransactionFatal => {
            eprintln!("exactly_once: stopping: {e}");
            std::process::exit(2);
        }
        Err(e) => {
            eprintln!("exactly_once: {e}");
            std::process::exit(1);
        }
    }
}

fn run(o: &Options) -> kafka_blocking::Result<()> {
    // Keep the local broker (if any) alive for the whole run.
    let local = match &o.bootstrap {
        Some(_) => None,
        None => Some(LocalBroker::start()?),
    };
    let servers = o.bootstrap.clone().unwrap_or_else(|| {
        local
            .as_ref()
            .map(|b| b.bootstrap_servers().to_owned())
            .unwrap_or_default()
    });
    let begun = Instant::now();
    let t = Duration::from_secs(30);
    if o.produce > 0 {
        let p = Producer::builder().bootstrap_servers(&servers).build()?;
        for i in 0..o.produce {
            let _ = p.send(
                Record::new(o.input.as_str())
                    .key(i.to_string())
                    .value(i.to_string()),
            )?;
        }
        p.flush(Duration::from_secs(120))?;
        p.close(t)?;
    }

    let mut consumer = Consumer::builder()
        .bootstrap_servers(&servers)
        .group_id(&o.group)
        .enable_auto_commit(false)
        .auto_offset_reset("earliest")
        .isolation_level("read_committed")
        // The local test broker holds a group's first join for half the
        // session timeout; a crashed member is dropped after all of it.
        .session_timeout_ms(o.session_timeout_ms)
        .heartbeat_interval_ms((o.session_timeout_ms / 6).max(100))
        // One poll never returns more than a transaction takes.
        .max_poll_records(o.batch as i64)
        .build()?;
    consumer.subscribe([o.input.as_str()])?;
    let producer = Producer::builder()
        .bootstrap_servers(&servers)
        .transactional_id(&o.transactional_id)
        .linger_ms(5)
        .build()?;
    producer.init_transactions(t)?;

    let mut sent_this_run = 0u64;
    let mut idle_since = Instant::now();
    let mut assigned = false;
    loop {
        producer.begin_transaction()?;
        // Where each partition's next unprocessed record is.
        let mut next: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        let mut n = 0;
        let started = Instant::now();
        while n < o.batch && started.elapsed() < Duration::from_millis(500) {
            for m in consumer.poll(Duration::from_millis(100))? {
                let x: i64 = m.value_as::<&str>()?.parse().map_err(|_| {
                    kafka_blocking::Error::invalid_argument("the input is not a number")
                })?;
                let doubled = (x * 2).to_string();
                let mut out = Record::new(o.output.as_str()).value(doubled);
                if let Some(k) = m.key() {
                    out = out.key(k.as_slice());
                }
                let _ = producer.send(out)?;
                next.insert(
                    TopicPartition::new(m.topic(), m.partition()),
                    m.offset() + 1,
                );
                n += 1;
                sent_this_run += 1;
                if o.crash_after == Some(sent_this_run) {
                    // The records of the open transaction reach the broker
                    // first, so the crash leaves real work to abort.
                    producer.flush(t)?;
                    eprintln!(
                        "exactly_once: crashing mid-transaction after {sent_this_run} records"
                    );
                    std::process::abort();
                }
            }
        }
        if !assigned && !consumer.assignment().is_empty() {
            // Where a restart's time goes: the group join (the broker waits
            // for a crashed member's session to time out).
            assigned = true;
            println!(
                "assigned {:?} {} ms after start",
                consumer.assignment(),
                begun.elapsed().as_millis()
            );
        }
        if n == 0 {
            producer.abort_transaction(t)?;
            if consumer.assignment().is_empty() {
                // Still joining the group: not idle yet.
                idle_since = Instant::now();
            }
            if o.idle_exit
                .is_some_and(|s| idle_since.elapsed() >= Duration::from_secs(s))
            {
                break;
            }
            continue;
        }
        idle_since = Instant::now();
        let group = consumer
            .group_metadata()
            .ok_or_else(|| kafka_blocking::Error::invalid_argument("the consumer has no group"))?;
        let offsets: Vec<(TopicPartition, OffsetAndMetadata)> = next
            .iter()
            .map(|(tp, o)| (tp.clone(), OffsetAndMetadata::new(*o)))
            .collect();
        let committed = producer
            .send_offsets_to_transaction(offsets, &group, t)
            .and_then(|()| producer.commit_transaction(t));
        match committed {
            Ok(()) => println!("committed {n} records"),
            Err(e) if e.kind() == ErrorKind::TransactionAbortable => {
                // Nothing of this transaction counts: abort, and read its
                // input again from the last committed offsets.
                eprintln!("exactly_once: aborting: {e}");
                producer.abort_transaction(t)?;
                for tp in next.keys() {
                    let at = consumer.committed(tp.clone())?.map_or(0, |c| c.offset);
                    consumer.seek(tp.clone(), at)?;
                }
            }
            Err(e) => return Err(e),
        }
    }
    producer.close(t)?;
    consumer.close(true)?;
    println!(
        "done: {sent_this_run} records in {} ms",
        begun.elapsed().as_millis()
    );
    Ok(())
}
