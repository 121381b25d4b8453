//! Transactions against the real broker: commit, abort, offsets in a
//! transaction, fencing. (Tansu writes commit/abort markers, when Produce
//! carries the transactional id, but does not report aborted transactions
//! in Fetch, so the assertions that aborted records stay hidden from
//! read_committed readers need real Kafka.)

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_blocking::consumer::{Consumer, ConsumerBuilder, OffsetAndMetadata, TopicPartition};
use kafka_blocking::producer::{Producer, ProducerBuilder, Record, TransactionState};
use kafka_blocking::ErrorKind;

use crate::harness::{bootstrap, client, create_topic, fetch_batches, unique_topic};

const T: Duration = Duration::from_secs(30);

fn txn_producer(id: &str) -> ProducerBuilder {
    Producer::builder()
        .bootstrap_servers(bootstrap())
        .request_timeout_ms(10_000)
        .transactional_id(id)
}

fn committed_reader() -> ConsumerBuilder {
    Consumer::builder()
        .bootstrap_servers(bootstrap())
        .auto_offset_reset("earliest")
        .isolation_level("read_committed")
        .consumer_timeout_ms(2_000)
}

/// Every value a read_committed consumer sees in `topic` (all partitions,
/// from the start, until nothing comes for `consumer_timeout_ms`).
fn read_committed(topic: &str, partitions: i32) -> Vec<String> {
    let mut c = committed_reader().build().expect("consumer");
    c.assign((0..partitions).map(|p| (topic, p)))
        .expect("assign");
    let mut out = Vec::new();
    for m in (&mut c).take(1_000_000) {
        let m = m.expect("record");
        out.push(m.value_as::<&str>().expect("utf-8").to_owned());
    }
    out.sort();
    out
}

/// Sends `values(prefix, n)` to `topic` (futures dropped: the commit or
/// flush that follows reports failures).
fn send_values(p: &Producer, topic: &str, prefix: &str, n: usize) {
    for v in values(prefix, n) {
        let _ = p.send(Record::new(topic).value(&v[..])).expect("send");
    }
}

fn values(prefix: &str, n: usize) -> Vec<String> {
    let mut v: Vec<String> = (0..n).map(|i| format!("{prefix}-{i:05}")).collect();
    v.sort();
    v
}

#[test]
fn a_committed_transaction_is_visible_to_read_committed() {
    let topic = unique_topic("txn-commit");
    create_topic(&client(), &topic, 3);
    let id = unique_topic("txn-id");
    let p = txn_producer(&id).build().expect("producer");
    assert_eq!(p.transaction_state(), Some(TransactionState::Uninitialized));
    // Before init nothing may be sent.
    let e = p.send(Record::new(topic.as_str()).value("x")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidState, "{e}");
    p.init_transactions(T).expect("init_transactions");
    assert_eq!(p.transaction_state(), Some(TransactionState::Ready));
    let e = p.send(Record::new(topic.as_str()).value("x")).unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::InvalidState,
        "send outside a transaction: {e}"
    );

    for round in 0..3 {
        p.begin_transaction().expect("begin");
        for v in values(&format!("r{round}"), 300) {
            let _ = p
                .send(Record::new(topic.as_str()).key(&v[..]).value(&v[..]))
                .expect("send");
        }
        p.commit_transaction(T).expect("commit");
        assert_eq!(p.transaction_state(), Some(TransactionState::Ready));
    }
    let mut want: Vec<String> = (0..3).flat_map(|r| values(&format!("r{r}"), 300)).collect();
    want.sort();
    assert_eq!(read_committed(&topic, 3), want);
    p.close(T).expect("close");
}

#[test]
fn an_aborted_transaction_leaves_the_producer_usable() {
    let topic = unique_topic("txn-abort");
    create_topic(&client(), &topic, 2);
    let id = unique_topic("txn-id");
    let p = txn_producer(&id).build().expect("producer");
    p.init_transactions(T).expect("init");
    p.begin_transaction().expect("begin");
    send_values(&p, &topic, "aborted", 100);
    p.flush(T).expect("flush");
    p.abort_transaction(T).expect("abort");
    assert_eq!(p.transaction_state(), Some(TransactionState::Ready));
    // Commit on an aborted (closed) transaction is refused, not sent.
    let e = p.commit_transaction(T).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidState, "{e}");

    p.begin_transaction().expect("begin again");
    send_values(&p, &topic, "kept", 100);
    p.commit_transaction(T).expect("commit");
    let seen = read_committed(&topic, 2);
    let kept: Vec<&String> = seen.iter().filter(|v| v.starts_with("kept")).collect();
    assert_eq!(kept.len(), 100, "the committed transaction is whole");
}

/// The aborted records themselves are hidden from read_committed: needs a
/// broker that reports aborted transactions in Fetch.
#[test]
#[cfg_attr(
    not(kafka_external),
    ignore = "Tansu does not report aborted transactions in Fetch: set KAFKA_BOOTSTRAP_SERVERS to a real Kafka"
)]
fn aborted_records_are_hidden_from_read_committed() {
    let topic = unique_topic("txn-hidden");
    create_topic(&client(), &topic, 2);
    let p = txn_producer(&unique_topic("txn-id"))
        .build()
        .expect("producer");
    p.init_transactions(T).expect("init");
    p.begin_transaction().expect("begin");
    send_values(&p, &topic, "aborted", 100);
    p.flush(T).expect("flush");
    p.abort_transaction(T).expect("abort");
    p.begin_transaction().expect("begin");
    send_values(&p, &topic, "kept", 100);
    p.commit_transaction(T).expect("commit");
    assert_eq!(read_committed(&topic, 2), values("kept", 100));
}

#[test]
fn offsets_sent_to_a_transaction_are_committed_with_it() {
    let input = unique_topic("txn-in");
    let output = unique_topic("txn-out");
    let c = client();
    create_topic(&c, &input, 2);
    create_topic(&c, &output, 1);
    let plain = Producer::builder()
        .bootstrap_servers(bootstrap())
        .build()
        .expect("producer");
    for i in 0..20 {
        let _ = plain
            .send(
                Record::new(input.as_str())
                    .partition(i % 2)
                    .value(i.to_string()),
            )
            .expect("send");
    }
    plain.flush(T).expect("flush");

    let group = unique_topic("txn-group");
    let mut consumer = committed_reader()
        .group_id(&group)
        .enable_auto_commit(false)
        .build()
        .expect("consumer");
    consumer.subscribe([input.as_str()]).expect("subscribe");
    let p = txn_producer(&unique_topic("txn-id"))
        .build()
        .expect("producer");
    p.init_transactions(T).expect("init");
    p.begin_transaction().expect("begin");
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for m in (&mut consumer).take(20) {
        let m = m.expect("record");
        let v: i64 = m.value_as::<&str>().unwrap().parse().unwrap();
        let _ = p
            .send(Record::new(output.as_str()).value((v * 2).to_string()))
            .expect("send");
        next.insert(m.partition(), m.offset() + 1);
    }
    assert_eq!(next.values().sum::<i64>(), 20, "read everything: {next:?}");
    let meta = consumer.group_metadata().expect("in a group");
    assert_eq!(meta.group_id, group);
    assert!(
        meta.generation_id >= 0 && !meta.member_id.is_empty(),
        "{meta:?}"
    );
    let offsets: Vec<(TopicPartition, OffsetAndMetadata)> = next
        .iter()
        .map(|(p, o)| {
            (
                TopicPartition::new(input.as_str(), *p),
                OffsetAndMetadata::new(*o),
            )
        })
        .collect();
    p.send_offsets_to_transaction(offsets, &meta, T)
        .expect("send_offsets_to_transaction");
    p.commit_transaction(T).expect("commit");
    for (part, want) in &next {
        let got = consumer
            .committed((input.as_str(), *part))
            .expect("committed");
        assert_eq!(got.map(|o| o.offset), Some(*want), "partition {part}");
    }
    assert_eq!(read_committed(&output, 1).len(), 20);
}

/// A producer with a record sent in its open transaction, and a second
/// producer with the same transactional id that has just fenced it.
fn fenced_pair(prefix: &str) -> (String, Producer, Producer) {
    let topic = unique_topic(prefix);
    create_topic(&client(), &topic, 1);
    let id = unique_topic("txn-id");
    let old = txn_producer(&id).build().expect("producer");
    old.init_transactions(T).expect("init");
    old.begin_transaction().expect("begin");
    let _ = old
        .send(Record::new(topic.as_str()).value("old"))
        .expect("send");
    old.flush(T).expect("flush");
    let new = txn_producer(&id).build().expect("producer");
    new.init_transactions(T)
        .expect("the new producer takes over");
    (topic, old, new)
}

/// Fencing as every broker shows it: the old producer's next batch is
/// refused with PRODUCER_FENCED, and from then on every call fails with
/// the fatal error.
#[test]
fn a_second_producer_with_the_same_id_fences_the_first() {
    let (topic, old, new) = fenced_pair("txn-fence");

    let late = old
        .send(Record::new(topic.as_str()).value("old-2"))
        .expect("send (the state is still in transaction)");
    let e = late.get(T).unwrap_err();
    assert_eq!(
        e.kafka_code(),
        Some(kafka_blocking::protocol::ErrorCode::PRODUCER_FENCED),
        "{e}"
    );
    assert_eq!(old.transaction_state(), Some(TransactionState::FatalError));
    // Every later call fails with the fatal error, naming the cause.
    for e in [
        old.commit_transaction(T).unwrap_err(),
        old.begin_transaction().unwrap_err(),
        old.abort_transaction(T).unwrap_err(),
        old.send(Record::new(topic.as_str()).value("late"))
            .unwrap_err(),
        old.init_transactions(T).unwrap_err(),
    ] {
        assert_eq!(e.kind(), ErrorKind::TransactionFatal, "{e}");
        assert!(e.to_string().contains("PRODUCER_FENCED"), "{e}");
    }
    new.begin_transaction().expect("begin");
    let _ = new
        .send(Record::new(topic.as_str()).value("new"))
        .expect("send");
    new.commit_transaction(T).expect("commit");
    assert!(read_committed(&topic, 1).contains(&"new".to_owned()));
}

/// A fenced producer's EndTxn gets PRODUCER_FENCED from Kafka (Tansu drops
/// the connection instead, so the commit can only time out there).
#[test]
#[cfg_attr(
    not(kafka_external),
    ignore = "Tansu closes the connection on a fenced EndTxn instead of answering PRODUCER_FENCED: set KAFKA_BOOTSTRAP_SERVERS to a real Kafka"
)]
fn a_fenced_commit_fails_with_the_fatal_error() {
    let (_topic, old, _new) = fenced_pair("txn-fence-commit");
    let e = old.commit_transaction(T).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TransactionFatal, "{e}");
    assert_eq!(
        old.begin_transaction().unwrap_err().kind(),
        ErrorKind::TransactionFatal
    );
}

#[test]
fn a_producer_without_transactional_id_refuses_transaction_calls() {
    let p = Producer::builder()
        .bootstrap_servers(bootstrap())
        .build()
        .expect("producer");
    let e = p.init_transactions(T).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidState);
    assert!(e.to_string().contains("transactional_id"), "{e}");
    assert_eq!(p.transaction_state(), None);
}

/// The values of `topic` that a read_committed reader must return, worked
/// out from the log itself (not from the broker's Fetch filtering, which
/// Tansu lacks): non-transactional records, plus each producer's
/// transactional records up to a COMMIT marker; records followed by an
/// ABORT marker, or by no marker at all, do not count.
fn committed_values(topic: &str) -> (Vec<i64>, usize) {
    use kafka_blocking::records::ControlType;
    use std::collections::HashMap;
    let mut committed = Vec::new();
    let mut aborted = 0;
    let mut open: HashMap<(i32, i64), Vec<i64>> = HashMap::new();
    fetch_batches(&client(), topic, |partition, batch| {
        let key = (partition, batch.producer_id());
        if let Some(marker) = batch.control_record().expect("control record") {
            let pending = open.remove(&key).unwrap_or_default();
            match marker.kind {
                ControlType::Commit => committed.extend(pending),
                _ => aborted += pending.len(),
            }
            return;
        }
        let values = batch.records().map(|r| {
            let r = r.expect("record");
            let v = r.value.expect("a value");
            std::str::from_utf8(&v)
                .expect("utf-8")
                .parse::<i64>()
                .expect("a number")
        });
        if batch.is_transactional() {
            open.entry(key).or_default().extend(values);
        } else {
            committed.extend(values);
        }
    });
    committed.sort_unstable();
    (committed, aborted)
}

/// The path of example `name`, built on demand (`cargo test --test it`
/// does not build examples; a plain `cargo test` has).
fn example(name: &str) -> std::path::PathBuf {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let deps = std::env::current_exe().expect("test binary");
    let profile = deps
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>")
        .to_path_buf();
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if !built.iter().any(|b| b == name) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = std::process::Command::new(cargo);
        build.args([
            "build",
            "--example",
            name,
            "--manifest-path",
            concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
        ]);
        if !cfg!(debug_assertions) {
            build.arg("--release");
        }
        let status = build.status().expect("cargo build --example");
        assert!(status.success(), "building the {name} example failed");
        built.push(name.to_owned());
    }
    profile.join("examples").join(name)
}

/// Runs `examples/exactly_once.rs` with `args`.
fn pipeline(args: &[&str]) -> std::process::Child {
    std::process::Command::new(example("exactly_once"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start examples/exactly_once")
}

/// Waits (bounded) for `child`; kills it (by PID) if it overstays.
/// Returns its exit code (`None`: killed by a signal) and what it said on
/// stderr.
fn finish(mut child: std::process::Child, limit: Duration) -> (Option<i32>, String) {
    use std::io::Read;
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut said = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut said);
            }
            return (status.code(), said);
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let mut said = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut said);
            }
            panic!("the pipeline did not finish within {limit:?}; it said: {said}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What [`run_pipeline`] left: its topics and group, how many inputs, and
/// the seed its crash points came from (for the failure messages).
struct PipelineRun {
    input: String,
    output: String,
    group: String,
    n: i64,
    seed: u64,
}

/// The pipeline's seed: `EOS_PIPELINE_SEED` if set (to reproduce a run),
/// else the clock. Printed either way (shown when a test fails).
fn pipeline_seed() -> u64 {
    let seed = match std::env::var("EOS_PIPELINE_SEED") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("EOS_PIPELINE_SEED={s:?} is not a u64")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    };
    println!(
        "exactly-once pipeline seed {seed} (EOS_PIPELINE_SEED={seed} reproduces its crash points)"
    );
    seed
}

/// splitmix64: the next number of the sequence `state` walks.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Runs the exactly-once pipeline over `N` = 100,000 numbers in
/// transactions of `BATCH`: crashed (std::process::abort) in the middle of
/// a transaction five times at random points (seeded, see
/// [`pipeline_seed`]), then as two instances with the same transactional
/// id (the later one fences the earlier), then to the end.
fn run_pipeline() -> PipelineRun {
    const N: i64 = 100_000;
    const BATCH: u64 = 100;
    let seed = pipeline_seed();
    let mut rng = seed;
    // Each crash run sends at most N/6 records, so the five together leave
    // at least N/6 unprocessed: every run has enough input to reach its
    // crash point, and the two instances have work to be fenced in.
    let crashes: Vec<u64> = (0..5)
        .map(|_| 1 + splitmix(&mut rng) % (N as u64 / 6))
        .collect();
    println!("crash points (records sent by each crashing run): {crashes:?}");
    let input = unique_topic("eos-numbers");
    let output = unique_topic("eos-doubled");
    let c = client();
    create_topic(&c, &input, 3);
    create_topic(&c, &output, 3);
    let producer = Producer::builder()
        .bootstrap_servers(bootstrap())
        .build()
        .expect("producer");
    for i in 0..N {
        let _ = producer
            .send(
                Record::new(input.as_str())
                    .key(i.to_string())
                    .value(i.to_string()),
            )
            .expect("send");
    }
    producer.flush(T).expect("flush");
    let group = unique_topic("eos-group");
    let id = unique_topic("eos-txn");
    let servers = bootstrap();
    // A crashed member holds its partitions for the session timeout: short
    // on the local broker (real Kafka's minimum is 6 s).
    let session = if cfg!(kafka_external) { "6000" } else { "1500" };
    let batch = BATCH.to_string();
    let args = |extra: &[String]| -> Vec<String> {
        let mut a: Vec<String> = [
            servers.as_str(),
            "--session-timeout-ms",
            session,
            "--input",
            &input,
            "--output",
            &output,
            "--group",
            &group,
            "--transactional-id",
            &id,
            "--batch",
            &batch,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().cloned());
        a
    };
    let run = |extra: &[String]| {
        let a = args(extra);
        pipeline(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let idle = ["--idle-exit".to_string(), "2".to_string()];
    let limit = Duration::from_secs(180);
    let started = std::time::Instant::now();
    for (i, k) in crashes.iter().enumerate() {
        println!("{:?}: crash run {i}", started.elapsed());
        let (code, said) = finish(run(&["--crash-after".into(), k.to_string()]), limit);
        assert_eq!(
            code, None,
            "crash run {i} (seed {seed}, after {k}): killed by SIGABRT: {said}"
        );
        assert!(said.contains("crashing mid-transaction"), "{said}");
    }
    // Two instances with the same transactional id: the later init fences
    // the earlier one, which stops (exit code 2). (Not between crash runs:
    // the one left runs to the end.)
    println!("{:?}: two instances", started.elapsed());
    let first = run(&idle);
    std::thread::sleep(Duration::from_millis(300));
    let second = run(&idle);
    let outcomes = [finish(first, limit), finish(second, limit)];
    assert!(
        outcomes.iter().any(|(c, _)| *c == Some(2)),
        "one of two instances with the same transactional id must be fenced (seed {seed}): {outcomes:?}"
    );
    // And once more to the end (the fenced one may have left work).
    println!("{:?}: last run", started.elapsed());
    let (code, said) = finish(run(&idle), limit);
    assert_eq!(code, Some(0), "seed {seed}: {said}");
    println!("{:?}: done", started.elapsed());
    PipelineRun {
        input,
        output,
        group,
        n: N,
        seed,
    }
}

/// Through crashes and fencing the pipeline commits each input exactly
/// once: the group's committed offsets cover every input record, every
/// input appears doubled in the output, and the log read by hand (a record
/// counts only when its producer's COMMIT marker follows) holds each
/// doubled value exactly once, with the crashed transactions' records
/// behind ABORT markers. (That a read_committed reader sees the same is
/// the next test: it needs a broker that reports aborted transactions.)
#[test]
fn the_exactly_once_pipeline_commits_each_input_once_through_crashes_and_fencing() {
    let run = run_pipeline();
    let mut consumer = committed_reader()
        .group_id(&run.group)
        .build()
        .expect("consumer");
    let mut committed = 0;
    for p in 0..3 {
        let o = consumer
            .committed((run.input.as_str(), p))
            .expect("committed")
            .map_or(0, |o| o.offset);
        committed += o;
    }
    assert_eq!(
        committed, run.n,
        "the input offsets committed in transactions (seed {})",
        run.seed
    );
    let mut seen: Vec<i64> = crate::harness::fetch_all(&client(), &run.output)
        .iter()
        .map(|r| {
            let v = r.value.as_deref().expect("a value");
            std::str::from_utf8(v)
                .expect("utf-8")
                .parse()
                .expect("a number")
        })
        .collect();
    // Each crash flushed its open transaction's records before aborting
    // the process, and a later run wrote them again: the log (read
    // uncommitted, aborted records included) holds more than N.
    assert!(
        seen.len() as i64 > run.n,
        "the crashes left records of open transactions in the log: {} records for {} inputs (seed {})",
        seen.len(),
        run.n,
        run.seed
    );
    seen.sort_unstable();
    seen.dedup();
    let want: Vec<i64> = (0..run.n).map(|i| i * 2).collect();
    assert!(
        seen == want,
        "every input doubled, none lost (seed {}): {}",
        run.seed,
        differences(&seen, &want)
    );
    let (from_log, aborted) = committed_values(&run.output);
    assert!(
        from_log == want,
        "each input doubled exactly once (log, seed {}): {}",
        run.seed,
        differences(&from_log, &want)
    );
    assert!(
        aborted > 0,
        "the crashes left aborted records in the log (seed {})",
        run.seed
    );
}

/// Exactly once as a user reads it: a read_committed reader of the
/// output sees each input doubled exactly once (the crashed transactions'
/// records hidden).
#[test]
#[cfg_attr(
    not(kafka_external),
    ignore = "Tansu does not report aborted transactions in Fetch, so read_committed readers get aborted records: set KAFKA_BOOTSTRAP_SERVERS to a real Kafka"
)]
fn the_exactly_once_pipeline_output_reads_exactly_once_with_read_committed() {
    let run = run_pipeline();
    let want: Vec<i64> = (0..run.n).map(|i| i * 2).collect();
    let mut read: Vec<i64> = read_committed(&run.output, 3)
        .iter()
        .map(|v| v.parse().expect("a number"))
        .collect();
    read.sort_unstable();
    assert!(
        read == want,
        "each input doubled exactly once (read_committed, seed {}): {}",
        run.seed,
        differences(&read, &want)
    );
}

/// What tells sorted `got` from sorted `want`: how many values are
/// missing and how many extra (duplicates included), with the first few
/// of each (100,000 values are too many for `assert_eq!`'s message).
fn differences(got: &[i64], want: &[i64]) -> String {
    let (mut missing, mut extra) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < got.len() || j < want.len() {
        match (got.get(i), want.get(j)) {
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a > b => {
                missing.push(*b);
                j += 1;
            }
            (Some(a), _) => {
                extra.push(*a);
                i += 1;
            }
            (None, Some(b)) => {
                missing.push(*b);
                j += 1;
            }
            (None, None) => break,
        }
    }
    format!(
        "{} missing (first {:?}), {} extra (first {:?})",
        missing.len(),
        &missing[..missing.len().min(10)],
        extra.len(),
        &extra[..extra.len().min(10)]
    )
}

/// `kcat -P -X transactional.id=...` writes all of stdin in one
/// transaction: transactional batches, committed at end of input.
#[test]
fn kcat_produces_stdin_in_one_transaction() {
    use std::io::Write;
    let topic = unique_topic("kcat-txn");
    create_topic(&client(), &topic, 1);
    let id = unique_topic("kcat-txn-id");
    let mut child = std::process::Command::new(example("kcat"))
        .args(["-b", &bootstrap(), "-P", "-q", "-t", &topic])
        .args(["-X", &format!("transactional.id={id}")])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("start kcat");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"a\nb\nc\n").expect("write");
    drop(stdin);
    let (code, said) = finish(child, Duration::from_secs(60));
    assert_eq!(code, Some(0), "{said}");
    let mut transactional = 0;
    fetch_batches(&client(), &topic, |_, b| {
        assert!(b.is_transactional(), "a batch outside the transaction");
        transactional += 1;
    });
    assert!(transactional >= 1);
    assert_eq!(read_committed(&topic, 1), ["a", "b", "c"]);
}

/// A read_committed reader stops at the last stable offset: the records
/// of an open transaction are not returned until it commits, and
/// `end_offsets` reports the LSO, not the high watermark.
#[test]
#[cfg_attr(
    not(kafka_external),
    ignore = "Tansu returns an open transaction's records to read_committed readers (no last stable offset): set KAFKA_BOOTSTRAP_SERVERS to a real Kafka"
)]
fn read_committed_stops_at_the_last_stable_offset() {
    let topic = unique_topic("txn-lso");
    create_topic(&client(), &topic, 1);
    let plain = Producer::builder()
        .bootstrap_servers(bootstrap())
        .build()
        .expect("producer");
    send_values(&plain, &topic, "before", 5);
    plain.flush(T).expect("flush");
    let p = txn_producer(&unique_topic("txn-id"))
        .build()
        .expect("producer");
    p.init_transactions(T).expect("init");
    p.begin_transaction().expect("begin");
    send_values(&p, &topic, "open", 5);
    p.flush(T)
        .expect("flush: the open transaction's records are written");
    assert_eq!(read_committed(&topic, 1), values("before", 5));
    let c = committed_reader().build().expect("consumer");
    let ends = c.end_offsets([(topic.as_str(), 0)]).expect("end_offsets");
    assert_eq!(ends.values().copied().collect::<Vec<_>>(), [5], "the LSO");
    p.commit_transaction(T).expect("commit");
    let mut want = values("before", 5);
    want.extend(values("open", 5));
    want.sort();
    assert_eq!(read_committed(&topic, 1), want);
}

/// A transaction left open past `transaction_timeout_ms` is aborted by the
/// coordinator (which bumps the epoch); the producer's next record fails
/// with INVALID_PRODUCER_EPOCH, which makes the transaction abortable (not
/// fatal, as the Java client since KIP-588), and after the abort the
/// producer goes on. Kafka looks for expired transactions every 10 s.
#[test]
#[cfg_attr(
    not(kafka_external),
    ignore = "Tansu never times out a transaction: set KAFKA_BOOTSTRAP_SERVERS to a real Kafka"
)]
fn a_timed_out_transaction_is_reported_as_abortable() {
    let topic = unique_topic("txn-timeout");
    create_topic(&client(), &topic, 1);
    let p = txn_producer(&unique_topic("txn-id"))
        .transaction_timeout_ms(1_000)
        .build()
        .expect("producer");
    p.init_transactions(T).expect("init");
    p.begin_transaction().expect("begin");
    let _ = p
        .send(Record::new(topic.as_str()).value("early"))
        .expect("send");
    p.flush(T).expect("flush");
    std::thread::sleep(Duration::from_secs(15));
    let late = p
        .send(Record::new(topic.as_str()).value("late"))
        .expect("send");
    assert!(late.get(T).is_err(), "a record of a timed-out transaction");
    let e = p.commit_transaction(T).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TransactionAbortable, "{e}");
    p.abort_transaction(T).expect("abort");
    p.begin_transaction().expect("begin");
    let _ = p
        .send(Record::new(topic.as_str()).value("next"))
        .expect("send");
    p.commit_transaction(T).expect("commit");
    assert_eq!(read_committed(&topic, 1), ["next"]);
}

/// A transaction left open (its producer gone silent) shows up in
/// `describe_producers` with its start offset, and `abort_transaction`
/// with what that reported closes it on the partition (KIP-664).
#[test]
#[cfg_attr(
    not(kafka_external),
    ignore = "Tansu does not support DescribeProducers (UnsupportedVersion): set KAFKA_BOOTSTRAP_SERVERS to a real Kafka"
)]
fn the_admin_client_finds_and_aborts_a_hanging_transaction() {
    use kafka_blocking::admin::{AbortTransactionSpec, AdminClient};

    let topic = unique_topic("txn-hanging");
    create_topic(&client(), &topic, 1);
    let id = unique_topic("txn-id");
    let p = txn_producer(&id).build().expect("producer");
    p.init_transactions(T).expect("init");
    p.begin_transaction().expect("begin");
    let _ = p
        .send(Record::new(topic.as_str()).partition(0).value("hanging"))
        .expect("send");
    p.flush(T).expect("flush");

    let admin = AdminClient::builder()
        .bootstrap_servers(bootstrap())
        .build()
        .expect("admin");
    let tp = TopicPartition::new(topic.as_str(), 0);
    let open_on = |admin: &AdminClient| {
        let mut states = admin
            .describe_producers([tp.clone()], Some(T))
            .expect("describe_producers");
        let (_, r) = states.pop().expect("one answer");
        r.expect("the partition's producers")
            .into_iter()
            .filter(|s| s.current_transaction_start_offset.is_some())
            .collect::<Vec<_>>()
    };
    let open = open_on(&admin);
    assert_eq!(open.len(), 1, "one open transaction: {open:?}");
    assert_eq!(open[0].current_transaction_start_offset, Some(0));
    let spec = AbortTransactionSpec {
        partition: tp.clone(),
        producer_id: open[0].producer_id,
        producer_epoch: i16::try_from(open[0].producer_epoch).expect("epoch"),
        coordinator_epoch: open[0].coordinator_epoch,
    };
    admin
        .abort_transaction(&spec, Some(T))
        .expect("abort_transaction");
    assert!(open_on(&admin).is_empty(), "the abort marker closed it");
    assert!(read_committed(&topic, 1).is_empty());
}
