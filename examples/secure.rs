//! A secured cluster on one machine: the local test broker behind the
//! testkit's TLS front and SASL front (client → TLS → SASL → broker), then
//! a producer and a group consumer over `SASL_SSL` with SCRAM-SHA-512,
//! and what a wrong CA and a wrong password look like.
//!
//! ```text
//! cargo run --release --example secure
//! ```
//!
//! The settings it prints are the ones a real cluster takes (see the
//! README, "Connecting to a secured cluster"); only the CA file comes from
//! the front instead of your provider.

use std::time::{Duration, Instant};

use kafka_blocking::consumer::Consumer;
use kafka_blocking::producer::{Producer, Record};
use kafka_blocking::testkit::{LocalBroker, SaslFront, TlsFront};

const USER: &str = "alice";
const PASSWORD: &str = "alice-secret";
const MECHANISM: &str = "SCRAM-SHA-512";
const RECORDS: usize = 10_000;

fn main() -> kafka_blocking::Result<()> {
    let started = Instant::now();
    // SASL front first (bound, not yet forwarding), the TLS front before it,
    // then the broker, which must advertise the outermost address.
    let sasl = SaslFront::builder().user(USER, PASSWORD).bind()?;
    let tls = TlsFront::builder().start_in_front_of(&sasl.bootstrap_servers())?;
    let broker = LocalBroker::start_advertising(tls.bootstrap_servers())?;
    sasl.set_upstream(broker.bootstrap_servers())?;
    let servers = tls.bootstrap_servers().to_owned();
    let ca = tls.ca_file();
    println!("cluster     {servers}: TLS front → SASL front → local broker");
    println!(
        "settings    security_protocol=SASL_SSL sasl_mechanism={MECHANISM} \
         sasl_plain_username={USER} ssl_cafile={}",
        ca.display()
    );

    let topic = format!("secure-{}", std::process::id());
    let producer = Producer::builder()
        .bootstrap_servers(&servers)
        .security_protocol("SASL_SSL")
        .ssl_cafile(&ca)
        .sasl_mechanism(MECHANISM)
        .sasl_plain_username(USER)
        .sasl_plain_password(PASSWORD)
        .compression_type("lz4")
        .build()?;
    let t0 = Instant::now();
    let mut last = None;
    for i in 0..RECORDS {
        last = Some(
            producer.send(
                Record::new(&topic)
                    .key(format!("k{}", i % 16))
                    .value(format!("record {i}")),
            )?,
        );
    }
    producer.flush(Duration::from_secs(30))?;
    if let Some(f) = last {
        let meta = f.get(Duration::from_secs(1))?;
        println!(
            "produced    {RECORDS} records over SASL_SSL in {:.2} s (last at partition {} offset {})",
            t0.elapsed().as_secs_f64(),
            meta.partition(),
            meta.offset()
        );
    }
    producer.close(Duration::from_secs(5))?;

    let mut consumer = Consumer::builder()
        .bootstrap_servers(&servers)
        .security_protocol("SASL_SSL")
        .ssl_cafile(&ca)
        .sasl_mechanism(MECHANISM)
        .sasl_plain_username(USER)
        .sasl_plain_password(PASSWORD)
        .group_id(format!("{topic}-readers"))
        .auto_offset_reset("earliest")
        // The local broker holds a group's first join for half of this.
        .session_timeout_ms(6_000)
        .consumer_timeout_ms(10_000)
        .build()?;
    consumer.subscribe([topic.as_str()])?;
    let t0 = Instant::now();
    let mut read = 0usize;
    let mut first = None;
    for msg in &mut consumer {
        msg?;
        first.get_or_insert_with(|| t0.elapsed());
        read += 1;
        if read == RECORDS {
            break;
        }
    }
    consumer.commit()?;
    consumer.close(false)?;
    println!(
        "consumed    {read} of {RECORDS} records in a group: first after {:.2} s (the join), all after {:.2} s",
        first.unwrap_or_default().as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
    println!(
        "fronts      {} TLS handshakes, {} SASL logins",
        tls.handshakes(),
        sasl.stats()
            .logins
            .load(std::sync::atomic::Ordering::SeqCst)
    );

    // What goes wrong looks like this: typed errors, at once.
    let wrong_password = Producer::builder()
        .bootstrap_servers(&servers)
        .security_protocol("SASL_SSL")
        .ssl_cafile(&ca)
        .sasl_mechanism(MECHANISM)
        .sasl_plain_username(USER)
        .sasl_plain_password("not-the-password")
        .max_block_ms(10_000)
        .build()?;
    show_failure("wrong pw", &wrong_password, &topic);
    let without_ca = Producer::builder()
        .bootstrap_servers(&servers)
        .security_protocol("SASL_SSL")
        .sasl_mechanism(MECHANISM)
        .sasl_plain_username(USER)
        .sasl_plain_password(PASSWORD)
        .max_block_ms(10_000)
        .build()?;
    show_failure("system CAs", &without_ca, &topic);
    let ok = read == RECORDS;
    println!(
        "done in {:.2} s{}",
        started.elapsed().as_secs_f64(),
        if ok { "" } else { ": records missing" }
    );
    if !ok {
        std::process::exit(3);
    }
    Ok(())
}

/// Sends one record and prints the error it meets (there must be one).
fn show_failure(label: &str, producer: &Producer, topic: &str) {
    let outcome = producer
        .send(Record::new(topic).value("x"))
        .and_then(|f| f.get(Duration::from_secs(10)));
    match outcome {
        Err(e) => println!("{label:<11} {:?}: {e}", e.kind()),
        Ok(_) => println!("{label:<11} unexpectedly accepted"),
    }
}
