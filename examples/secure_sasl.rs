//! Logs in to the local test broker through the testkit's SASL front with
//! every mechanism, produces and reads back a record with each, and shows
//! what a wrong password looks like.
//!
//! ```text
//! cargo run --example secure_sasl            # the tour
//! cargo run --example secure_sasl -- serve   # keep the front up for kcat (until Enter)
//! cargo run --release --example secure_sasl -- logins   # time 50 fresh logins per mechanism
//! ```
//!
//! In `serve` mode, try for example:
//! `kcat -b <front> -L -X security.protocol=SASL_PLAINTEXT -X sasl.mechanism=SCRAM-SHA-512
//!  -X sasl.username=alice -X sasl.password=alice-secret`

use std::time::Duration;

use kafka_blocking::consumer::Consumer;
use kafka_blocking::producer::{Producer, Record};
use kafka_blocking::testkit::SaslFront;
use kafka_blocking::{Client, ClientConfig, UnsecuredJwtProvider};

fn main() -> kafka_blocking::Result<()> {
    let front = SaslFront::builder()
        .user("alice", "alice-secret")
        .session_lifetime(Duration::from_secs(60))
        .start()?;
    let servers = front.bootstrap_servers();
    println!(
        "SASL front on {servers}, broker behind it at {:?}",
        front.upstream()
    );
    if std::env::args().nth(1).as_deref() == Some("serve") {
        println!("user alice, password alice-secret; press Enter to stop");
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        return Ok(());
    }
    if std::env::args().nth(1).as_deref() == Some("logins") {
        return time_logins(&servers);
    }
    for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] {
        let topic = format!("secure-{}", mechanism.to_lowercase());
        let producer = if mechanism == "OAUTHBEARER" {
            Producer::builder().sasl_oauth_token_provider(UnsecuredJwtProvider::new("alice"))
        } else {
            Producer::builder()
                .sasl_plain_username("alice")
                .sasl_plain_password("alice-secret")
        }
        .bootstrap_servers(&servers)
        .security_protocol("SASL_PLAINTEXT")
        .sasl_mechanism(mechanism)
        .build()?;
        let meta = producer
            .send(Record::new(&topic).value(format!("hello over {mechanism}")))?
            .get(Duration::from_secs(30))?;
        producer.close(Duration::from_secs(5))?;
        let mut consumer = if mechanism == "OAUTHBEARER" {
            Consumer::builder().sasl_oauth_token_provider(UnsecuredJwtProvider::new("alice"))
        } else {
            Consumer::builder()
                .sasl_plain_username("alice")
                .sasl_plain_password("alice-secret")
        }
        .bootstrap_servers(&servers)
        .security_protocol("SASL_PLAINTEXT")
        .sasl_mechanism(mechanism)
        .auto_offset_reset("earliest")
        .consumer_timeout_ms(5_000)
        .build()?;
        consumer.assign([(topic.as_str(), meta.partition())])?;
        if let Some(m) = consumer.next() {
            let m = m?;
            println!(
                "{mechanism:>13}: wrote and read back {:?} at offset {}",
                String::from_utf8_lossy(m.value().map_or(&[][..], |v| v.as_slice())),
                m.offset()
            );
        }
    }
    let wrong = Client::new(
        ClientConfig::builder()
            .bootstrap_servers(&servers)
            .security_protocol("SASL_PLAINTEXT")
            .sasl_mechanism("SCRAM-SHA-256")
            .sasl_plain_username("alice")
            .sasl_plain_password("guess")
            .build()?,
    )?;
    match wrong.refresh_metadata(None) {
        Err(e) => println!("wrong password: is_auth()={}: {e}", e.is_auth()),
        Ok(_) => println!("wrong password was accepted?!"),
    }
    let stats = front.stats();
    println!("front: {stats:?}");
    Ok(())
}

/// A fresh client's first metadata request (TCP connect, ApiVersions, the
/// login, Metadata) per mechanism, 50 times each: the median and the 90th
/// percentile. PLAIN is the baseline (one round trip, no crypto).
fn time_logins(servers: &str) -> kafka_blocking::Result<()> {
    for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] {
        let mut times = Vec::with_capacity(50);
        for _ in 0..50 {
            let builder = ClientConfig::builder()
                .bootstrap_servers(servers)
                .security_protocol("SASL_PLAINTEXT")
                .sasl_mechanism(mechanism);
            let config = if mechanism == "OAUTHBEARER" {
                builder.sasl_oauth_token_provider(UnsecuredJwtProvider::new("alice"))
            } else {
                builder
                    .sasl_plain_username("alice")
                    .sasl_plain_password("alice-secret")
            }
            .build()?;
            let started = std::time::Instant::now();
            Client::new(config)?.refresh_metadata(None)?;
            times.push(started.elapsed());
        }
        times.sort();
        println!(
            "{mechanism:>13}: connect + login + Metadata: median {:.2} ms, p90 {:.2} ms (50 fresh clients)",
            times[25].as_secs_f64() * 1e3,
            times[45].as_secs_f64() * 1e3
        );
    }
    Ok(())
}
