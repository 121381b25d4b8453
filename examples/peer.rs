//! kafka-blocking's entry in the peer benchmark (`../shared/bench/peers`):
//!
//! ```text
//! peer BOOTSTRAP TOPIC COUNT SIZE produce|consume|latency none|lz4|zstd|gzip|snappy
//! ```
//!
//! Prints one `RESULT key=value ...` line; exit 0 on success, 3 when
//! messages were lost or failed, 4 for an unsupported mode/codec, anything
//! else on error. Settings match the other peers: acks=1, linger 5 ms (`PEER_LINGER_MS` overrides it for `produce`),
//! batches up to 1 MiB, requests up to 2 MiB, idempotence off, 32 MiB of
//! buffer, message i to partition i mod P. `consume` assigns every
//! partition from the beginning (no group) with the consumer's defaults;
//! `latency` sends one message at a time (linger 0) to partition 0 and
//! reads it back with a fetch wait of `PEER_LATENCY_FETCH_WAIT_MS` (1 ms);
//! `PEER_LATENCY_DUMP=<file>` writes every latency there, one per line.
//!
//! Through TLS: `PEER_SECURITY_PROTOCOL=SSL PEER_SSL_CAFILE=<ca.pem>` (see
//! `examples/tls_front.rs`), and `PEER_SSL_CIPHERS` to pick the cipher
//! suites (`ssl_ciphers`).
//!
//! ```text
//! cargo build --release --example peer
//! CLIENT_CMD_kafka_blocking=target/release/examples/peer \
//! CLIENTS="kafka_blocking rdkafka" ../shared/bench/peers/run.sh 127.0.0.1:29092
//! ```

use std::process::exit;
use std::time::{Duration, Instant};

use kafka_blocking::consumer::Consumer;
use kafka_blocking::producer::{Producer, Record};
use kafka_blocking::Client;

/// Applies `PEER_SECURITY_PROTOCOL` (e.g. `SSL`), `PEER_SSL_CAFILE`
/// (a PEM file) and `PEER_SSL_CIPHERS` when set, for runs through a TLS
/// front.
macro_rules! secured {
    ($builder:expr) => {{
        let mut b = $builder;
        if let Ok(p) = std::env::var("PEER_SECURITY_PROTOCOL") {
            b = b.security_protocol(p);
        }
        if let Ok(f) = std::env::var("PEER_SSL_CAFILE") {
            b = b.ssl_cafile(f);
        }
        if let Ok(c) = std::env::var("PEER_SSL_CIPHERS") {
            b = b.ssl_ciphers(c);
        }
        b
    }};
}

const LINGER_MS: i64 = 5;
const BATCH_BYTES: i64 = 1 << 20;
const POOL_SIZE: usize = 65536;
const POOL_STRIDE: usize = 7919;
const LATENCY_WARMUP: usize = 100;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Produce,
    Consume,
    Latency,
}

struct Args {
    bootstrap: String,
    topic: String,
    count: usize,
    size: usize,
    mode: Mode,
    compression: String,
}

fn usage() -> ! {
    eprintln!(
        "usage: peer BOOTSTRAP TOPIC COUNT SIZE produce|consume|latency none|lz4|zstd|gzip|snappy"
    );
    exit(2)
}

fn parse_args() -> Args {
    let argv: Vec<String> = std::env::args().collect();
    if argv.len() != 7 {
        usage();
    }
    let count = argv[3].parse().unwrap_or_else(|_| usage());
    let size: usize = argv[4].parse().unwrap_or_else(|_| usage());
    let mode = match argv[5].as_str() {
        "produce" => Mode::Produce,
        "consume" => Mode::Consume,
        "latency" => Mode::Latency,
        _ => usage(),
    };
    let compression = argv[6].clone();
    if !["none", "lz4", "zstd", "gzip", "snappy"].contains(&compression.as_str()) {
        usage();
    }
    if size == 0 || size > POOL_SIZE - 1 {
        eprintln!("SIZE must be in 1..{}", POOL_SIZE - 1);
        exit(2);
    }
    Args {
        bootstrap: argv[1].clone(),
        topic: argv[2].clone(),
        count,
        size,
        mode,
        compression,
    }
}

/// The shared payload pool: 64 KiB of xorshift32 output over a 64-character
/// alphabet; message i is the SIZE-byte window at (i*7919) mod (65536-SIZE).
struct Payloads {
    pool: Vec<u8>,
    size: usize,
}

impl Payloads {
    fn new(size: usize) -> Payloads {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut x: u32 = 2_463_534_242;
        let mut pool = Vec::with_capacity(POOL_SIZE);
        for _ in 0..POOL_SIZE {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            pool.push(ALPHABET[(x & 63) as usize]);
        }
        Payloads { pool, size }
    }

    #[inline]
    fn get(&self, i: usize) -> &[u8] {
        let off = i.wrapping_mul(POOL_STRIDE) % (POOL_SIZE - self.size);
        &self.pool[off..off + self.size]
    }
}

struct Report {
    mode: &'static str,
    partitions: usize,
    messages: usize,
    bytes: u64,
    elapsed: Duration,
    errors: u64,
    latencies_us: Option<Vec<f64>>,
}

fn proc_self() -> (f64, f64, u64) {
    // utime and stime are fields 14 and 15 of /proc/self/stat, in ticks.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let tick = 100.0;
    let user = fields
        .get(11)
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / tick;
    let sys = fields
        .get(12)
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / tick;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (user, sys, rss)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Report {
    fn print(&mut self, a: &Args) {
        let secs = self.elapsed.as_secs_f64();
        let (u, s, rss) = proc_self();
        let mut line = format!(
            "RESULT client=kafka_blocking mode={} topic={} partitions={} count={} size={} compression={} \
             messages={} bytes={} elapsed_s={:.6} msgs_per_s={:.1} mb_per_s={:.3} errors={} \
             self_user_s={:.3} self_sys_s={:.3} self_maxrss_kb={}",
            self.mode,
            a.topic,
            self.partitions,
            a.count,
            a.size,
            a.compression,
            self.messages,
            self.bytes,
            secs,
            self.messages as f64 / secs,
            self.bytes as f64 / 1e6 / secs,
            self.errors,
            u,
            s,
            rss
        );
        if let Some(l) = self.latencies_us.as_mut() {
            l.sort_by(|a, b| a.total_cmp(b));
            let mean = l.iter().sum::<f64>() / l.len().max(1) as f64;
            line.push_str(&format!(
                " lat_n={} lat_mean_us={:.1} lat_p50_us={:.1} lat_p90_us={:.1} lat_p99_us={:.1} lat_p999_us={:.1} lat_max_us={:.1}",
                l.len(),
                mean,
                pct(l, 50.0),
                pct(l, 90.0),
                pct(l, 99.0),
                pct(l, 99.9),
                l.last().copied().unwrap_or(f64::NAN)
            ));
        }
        println!("{line}");
    }
}

fn partitions_of(a: &Args) -> usize {
    let config = secured!(kafka_blocking::ClientConfig::builder().bootstrap_servers(&a.bootstrap))
        .build()
        .unwrap_or_else(|e| fail(e));
    let client = Client::new(config).unwrap_or_else(|e| fail(e));
    for _ in 0..50 {
        if let Ok(md) = client.refresh_metadata(Some(&[a.topic.as_str()])) {
            if let Some(t) = md.topic(&a.topic) {
                if t.error.is_ok() && !t.partitions.is_empty() {
                    return t.partitions.len();
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("topic {} not found", a.topic);
    exit(1)
}

fn fail(e: kafka_blocking::Error) -> ! {
    eprintln!("error: {e}");
    exit(1)
}

fn produce(a: &Args) -> Report {
    let producer = secured!(Producer::builder().bootstrap_servers(&a.bootstrap))
        .client_id("peer-kafka-blocking")
        .acks(1)
        .enable_idempotence(false)
        .linger_ms(
            std::env::var("PEER_LINGER_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(LINGER_MS),
        )
        .batch_size(BATCH_BYTES)
        .max_request_size(2 * BATCH_BYTES)
        .buffer_memory(32 << 20)
        .compression_type(a.compression.as_str())
        .build()
        .unwrap_or_else(|e| fail(e));
    // Look the topic up once so the timer excludes metadata, as the peers do.
    let parts = producer
        .partitions_for(&a.topic)
        .unwrap_or_else(|e| fail(e))
        .len();
    let payloads = Payloads::new(a.size);
    let t0 = Instant::now();
    let mut send_errors = 0u64;
    for i in 0..a.count {
        let r = producer.send(
            Record::new(a.topic.as_str())
                .partition((i % parts) as i32)
                .value(payloads.get(i)),
        );
        if let Err(e) = r {
            if send_errors < 5 {
                eprintln!("send failed: {e}");
            }
            send_errors += 1;
        }
    }
    if let Err(e) = producer.flush(Duration::from_secs(300)) {
        eprintln!("flush: {e}");
    }
    let elapsed = t0.elapsed();
    let m = producer.metrics();
    let ok = m.records_sent as usize;
    let errors = m.record_errors
        + send_errors
        + (a.count as u64).saturating_sub(ok as u64 + m.record_errors + send_errors);
    eprintln!(
        "batches={} avg_batch_bytes={:.0} records_per_batch={:.0} requests={} latency_avg={:?} latency_max={:?} buffer_peak={}",
        m.batches_sent, m.batch_size_avg, m.records_per_batch_avg, m.requests, m.request_latency_avg, m.request_latency_max, m.buffer_bytes_peak
    );
    let _ = producer.close(Duration::from_secs(10));
    Report {
        mode: "produce",
        partitions: parts,
        messages: ok,
        bytes: ok as u64 * a.size as u64,
        elapsed,
        errors,
        latencies_us: None,
    }
}

/// Assigns every partition from the beginning (no group, no commits) and
/// reads COUNT records; the timer runs from assignment to the last record.
fn consume(a: &Args) -> Report {
    let parts = partitions_of(a);
    let mut consumer = secured!(Consumer::builder().bootstrap_servers(&a.bootstrap))
        .client_id("peer-kafka-blocking")
        .auto_offset_reset("earliest")
        .consumer_timeout_ms(30_000)
        .build()
        .unwrap_or_else(|e| fail(e));
    let t0 = Instant::now();
    consumer
        .assign((0..parts).map(|p| (a.topic.as_str(), p as i32)))
        .unwrap_or_else(|e| fail(e));
    let (mut n, mut bytes, mut errors) = (0usize, 0u64, 0u64);
    while n < a.count {
        match consumer.next() {
            Some(Ok(m)) => {
                n += 1;
                bytes += m.value().map_or(0, |v| v.len()) as u64;
            }
            Some(Err(e)) => {
                errors += 1;
                eprintln!("consume error: {e}");
                if errors > 100 {
                    break;
                }
            }
            None => {
                eprintln!("stalled at {n}/{} messages", a.count);
                break;
            }
        }
    }
    let elapsed = t0.elapsed();
    let m = consumer.metrics();
    eprintln!(
        "fetch_requests={} fetch_bytes={} fetch_latency_avg={:?} fetch_latency_max={:?}",
        m.fetch_requests, m.fetch_bytes, m.fetch_latency_avg, m.fetch_latency_max
    );
    Report {
        mode: "consume",
        partitions: parts,
        messages: n,
        bytes,
        elapsed,
        errors: errors + (a.count - n) as u64,
        latencies_us: None,
    }
}

/// One message in flight at a time: send it (linger 0), read until it
/// arrives; the latency runs from the send call to the receipt.
fn latency(a: &Args) -> Report {
    let parts = partitions_of(a);
    let fetch_wait: i64 = std::env::var("PEER_LATENCY_FETCH_WAIT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let producer = secured!(Producer::builder().bootstrap_servers(&a.bootstrap))
        .client_id("peer-kafka-blocking")
        .acks(1)
        .enable_idempotence(false)
        .linger_ms(0)
        .compression_type(a.compression.as_str())
        .build()
        .unwrap_or_else(|e| fail(e));
    let mut consumer = secured!(Consumer::builder().bootstrap_servers(&a.bootstrap))
        .client_id("peer-kafka-blocking")
        .auto_offset_reset("earliest")
        .fetch_max_wait_ms(fetch_wait)
        .consumer_timeout_ms(30_000)
        .build()
        .unwrap_or_else(|e| fail(e));
    consumer
        .assign([(a.topic.as_str(), 0)])
        .unwrap_or_else(|e| fail(e));
    let payloads = Payloads::new(a.size);
    let total = a.count + LATENCY_WARMUP;
    let mut lat = Vec::with_capacity(a.count);
    let mut errors = 0u64;
    let mut t_meas = Instant::now();
    for i in 0..total {
        if i == LATENCY_WARMUP {
            t_meas = Instant::now();
        }
        let t0 = Instant::now();
        if let Err(e) = producer.send(
            Record::new(a.topic.as_str())
                .partition(0)
                .value(payloads.get(i)),
        ) {
            fail(e);
        }
        loop {
            match consumer.next() {
                Some(Ok(m)) => {
                    if m.value().map_or(0, |v| v.len()) != a.size {
                        errors += 1;
                    }
                    break;
                }
                Some(Err(e)) => {
                    errors += 1;
                    eprintln!("consume error: {e}");
                }
                None => {
                    eprintln!("latency: message {i} not received in 30 s");
                    exit(1);
                }
            }
        }
        if i >= LATENCY_WARMUP {
            lat.push(t0.elapsed().as_secs_f64() * 1e6);
        }
    }
    let elapsed = t_meas.elapsed();
    let _ = producer.close(Duration::from_secs(10));
    if let Ok(path) = std::env::var("PEER_LATENCY_DUMP") {
        // One latency (µs) per line, in send order: where the outliers are.
        let text: String = lat.iter().map(|l| format!("{l:.1}\n")).collect();
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("PEER_LATENCY_DUMP {path}: {e}");
        }
    }
    Report {
        mode: "latency",
        partitions: parts,
        messages: lat.len(),
        bytes: (lat.len() * a.size) as u64,
        elapsed,
        errors,
        latencies_us: Some(lat),
    }
}

fn main() {
    let a = parse_args();
    let mut report = match a.mode {
        Mode::Produce => produce(&a),
        Mode::Consume => consume(&a),
        Mode::Latency => latency(&a),
    };
    report.print(&a);
    if report.errors > 0 || report.messages < a.count {
        exit(3);
    }
}
