//! Produce 1,000,000 `f64` values to the topic `doubles`, then read them
//! back with `for msg in &mut consumer` and keep waiting for new ones,
//! printing progress and the rate.
//!
//! ```text
//! cargo run --release --example stream_doubles                 # a local broker (Tansu) is started
//! cargo run --release --example stream_doubles -- 127.0.0.1:9092
//! cargo run --release --example stream_doubles -- 127.0.0.1:9092 --count 1000 --idle-exit 5
//! ```
//!
//! Without a bootstrap address (and without `KAFKA_BOOTSTRAP_SERVERS`) the
//! example starts a throw-away broker with the `testkit`. It runs until
//! Ctrl-C, or until `--idle-exit SECS` pass without a new value.

use std::time::{Duration, Instant};

use kafka_blocking::consumer::Consumer;
use kafka_blocking::producer::{Producer, Record};
use kafka_blocking::testkit::LocalBroker;

const TOPIC: &str = "doubles";

fn main() -> kafka_blocking::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut bootstrap = std::env::var("KAFKA_BOOTSTRAP_SERVERS").ok();
    let mut count: u64 = 1_000_000;
    let mut idle_exit: Option<u64> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--count" => count = args.next().and_then(|v| v.parse().ok()).unwrap_or(count),
            "--idle-exit" => idle_exit = args.next().and_then(|v| v.parse().ok()),
            other => bootstrap = Some(other.to_owned()),
        }
    }
    // Keep the local broker (if any) alive for the whole run.
    let local = match &bootstrap {
        Some(_) => None,
        None => Some(LocalBroker::start()?),
    };
    let servers = bootstrap.unwrap_or_else(|| {
        local
            .as_ref()
            .map(|b| b.bootstrap_servers().to_owned())
            .unwrap_or_default()
    });
    println!("broker: {servers}");

    // 1. Produce: f64 values are written big-endian (8 bytes), as the Java
    //    client's DoubleSerializer does.
    let producer = Producer::builder()
        .bootstrap_servers(&servers)
        .linger_ms(5)
        .compression_type("lz4")
        .build()?;
    let t0 = Instant::now();
    for i in 0..count {
        let x = i as f64 * 0.5;
        let _ = producer.send(Record::new(TOPIC).value(x))?;
    }
    producer.flush(Duration::from_secs(120))?;
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "produced {count} doubles in {secs:.2} s ({:.0}/s)",
        count as f64 / secs
    );

    // 2. Consume: iterate; the value is decoded in place, no copy.
    let mut consumer = Consumer::builder()
        .bootstrap_servers(&servers)
        .group_id("doubles-reader")
        .auto_offset_reset("earliest")
        // The local test broker (Tansu) holds a group's first join for half
        // the session timeout: 5 s here rather than 22.5 s at the default.
        .session_timeout_ms(10_000)
        .consumer_timeout_ms(idle_exit.map_or(-1, |s| (s * 1000) as i64))
        .build()?;
    consumer.subscribe([TOPIC])?;
    let (mut n, mut sum) = (0u64, 0.0f64);
    let mut window = (Instant::now(), 0u64);
    let started = Instant::now();
    for msg in &mut consumer {
        let msg = msg?;
        let x: f64 = msg.value_as()?;
        sum += x;
        n += 1;
        if n % 100_000 == 0 {
            let dt = window.0.elapsed().as_secs_f64();
            println!(
                "read {n:>9} values  sum {sum:.1}  {:.0}/s  (last offset {}-{}@{})",
                (n - window.1) as f64 / dt,
                msg.topic(),
                msg.partition(),
                msg.offset()
            );
            window = (Instant::now(), n);
        }
        if n == count {
            println!(
                "all {count} values read in {:.2} s; waiting for new ones (Ctrl-C to stop)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    println!("no new value for a while: {n} values, sum {sum:.1}");
    consumer.close(true)?;
    Ok(())
}
