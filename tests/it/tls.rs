//! TLS (`security_protocol=SSL`) against the real broker behind the
//! testkit's [`TlsFront`]: every byte of these tests' connections goes
//! through TLS. Failures (untrusted, mismatched or expired certificates, a
//! missing client certificate, a listener that speaks the other protocol)
//! must be a typed `ErrorKind::Tls` naming the broker and the fix, not a
//! timeout or a generic I/O error.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use kafka_blocking::consumer::Consumer;
use kafka_blocking::producer::{Producer, Record};
use kafka_blocking::protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_blocking::protocol::messages::{FetchRequest, MetadataRequest};
use kafka_blocking::testkit::TlsFront;
use kafka_blocking::{Client, ClientConfig, ClientConfigBuilder, ErrorKind};

use crate::harness::{bootstrap, create_topic, unique_topic};

/// The secrets the tests hand in; no log line may contain them.
const SECRETS: [&str; 2] = ["s3cret-pass", "not-the-pass"];

/// Counts the log lines of this process (debug and above) and keeps any
/// that contains one of [`SECRETS`].
struct SecretWatch {
    lines: AtomicUsize,
    leaks: Mutex<Vec<String>>,
}

impl log::Log for SecretWatch {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Debug
    }
    fn log(&self, r: &log::Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let line = r.args().to_string();
        self.lines.fetch_add(1, Ordering::SeqCst);
        if SECRETS.iter().any(|s| line.contains(s)) {
            self.leaks.lock().unwrap().push(line);
        }
    }
    fn flush(&self) {}
}

fn secret_watch() -> &'static SecretWatch {
    static WATCH: OnceLock<&'static SecretWatch> = OnceLock::new();
    WATCH.get_or_init(|| {
        let w: &'static SecretWatch = Box::leak(Box::new(SecretWatch {
            lines: AtomicUsize::new(0),
            leaks: Mutex::new(Vec::new()),
        }));
        crate::harness::add_log_sink(w);
        w
    })
}

/// A config for `front` with its CA trusted.
fn ssl(front: &TlsFront) -> ClientConfigBuilder {
    ClientConfig::builder()
        .bootstrap_servers(front.bootstrap_servers())
        .security_protocol("SSL")
        .ssl_cafile(front.ca_file())
        .request_timeout_ms(15_000)
        .socket_connection_setup_timeout_ms(5_000)
}

/// A front with no broker behind it: enough for handshake failures, which
/// never reach the broker.
fn front_without_broker(b: kafka_blocking::testkit::TlsFrontBuilder) -> TlsFront {
    // Nothing listens on port 9 of 127.0.0.1 in the test sandbox; the
    // front connects there only after a successful handshake.
    b.start_in_front_of("127.0.0.1:9").expect("front")
}

/// Runs a metadata request with `config` and returns its error, checking it
/// is a TLS error that came at once rather than after retrying.
fn tls_failure(config: ClientConfig, front: Option<&TlsFront>) -> kafka_blocking::Error {
    let client = Client::new(config).expect("client");
    let e = client.refresh_metadata(None).expect_err("must fail");
    assert_eq!(e.kind(), ErrorKind::Tls, "{e}");
    assert!(!e.is_retriable(), "{e}");
    if let Some(front) = front {
        // One attempt, not a retry loop with the same result.
        assert!(
            front.failed_handshakes() <= 2,
            "{} handshakes for one call",
            front.failed_handshakes()
        );
    }
    e
}

#[test]
fn produce_and_consume_100k_records_over_tls_with_key_updates() {
    const N: usize = 100_000;
    // A KeyUpdate from the front every 20 writes: the reader half answers
    // them while the writer half keeps producing.
    let front = TlsFront::builder()
        .key_update_every(20)
        .start()
        .expect("front");
    let client = Client::new(ssl(&front).build().expect("config")).expect("client");
    let topic = unique_topic("tls-100k");
    create_topic(&client, &topic, 3);
    let p = Producer::builder()
        .bootstrap_servers(front.bootstrap_servers())
        .security_protocol("SSL")
        .ssl_cafile(front.ca_file())
        .linger_ms(5)
        .build()
        .expect("producer");
    for i in 0..N {
        let _ = p
            .send(
                Record::new(topic.as_str())
                    .partition((i % 3) as i32)
                    .value(format!("v{i}")),
            )
            .expect("send");
    }
    p.flush(Duration::from_secs(120)).expect("flush");
    p.close(Duration::from_secs(10)).expect("close");
    let mut c = Consumer::builder()
        .bootstrap_servers(front.bootstrap_servers())
        .security_protocol("SSL")
        .ssl_cafile(front.ca_file())
        .auto_offset_reset("earliest")
        .consumer_timeout_ms(5_000)
        .build()
        .expect("consumer");
    c.assign((0..3).map(|p| (topic.as_str(), p)))
        .expect("assign");
    let mut next: HashMap<i32, i64> = HashMap::new();
    let mut n = 0;
    for m in &mut c {
        let m = m.expect("record");
        let want = next.entry(m.partition()).or_insert(0);
        assert_eq!(m.offset(), *want, "in order per partition");
        *want += 1;
        let i = (m.offset() as usize) * 3 + m.partition() as usize;
        assert_eq!(m.value().map(|v| &v[..]), Some(format!("v{i}").as_bytes()));
        n += 1;
        if n == N {
            break;
        }
    }
    assert_eq!(n, N);
    assert!(front.handshakes() >= 2, "every connection went through TLS");
    assert!(front.key_updates() > 0, "no KeyUpdate was exercised");
}

#[test]
fn tls12_works_too() {
    let front = TlsFront::builder().tls12_only().start().expect("front");
    let topic = unique_topic("tls12");
    let p = Producer::builder()
        .bootstrap_servers(front.bootstrap_servers())
        .security_protocol("SSL")
        .ssl_cafile(front.ca_file())
        .build()
        .expect("producer");
    let md = p
        .send(
            Record::new(topic.as_str())
                .partition(0)
                .value("over TLS 1.2"),
        )
        .expect("send")
        .wait()
        .expect("delivered");
    assert_eq!(md.offset(), 0);
    p.close(Duration::from_secs(10)).expect("close");
}

/// `ssl_ciphers` decides the suite the broker's side agrees on (the front
/// honours the client's order, as OpenSSL and rustls servers do by
/// default): unset, AES-128-GCM (the cheaper of the two AES suites); IANA
/// or OpenSSL names, TLS 1.3 or 1.2, each carries records both ways.
#[test]
fn ssl_ciphers_picks_the_suite() {
    let front = TlsFront::builder().start().expect("front");
    let topic = unique_topic("tls-suites");
    let cases = [
        (None, "TLS13_AES_128_GCM_SHA256"),
        (Some("TLS_AES_256_GCM_SHA384"), "TLS13_AES_256_GCM_SHA384"),
        (
            Some("TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"),
            "TLS13_CHACHA20_POLY1305_SHA256",
        ),
        (
            Some("ECDHE-ECDSA-AES256-GCM-SHA384"),
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        ),
    ];
    for (i, (ciphers, want)) in cases.into_iter().enumerate() {
        let before = front.negotiated_cipher_suites().len();
        let mut b = Producer::builder()
            .bootstrap_servers(front.bootstrap_servers())
            .security_protocol("SSL")
            .ssl_cafile(front.ca_file());
        if let Some(c) = ciphers {
            b = b.ssl_ciphers(c);
        }
        let p = b.build().expect("producer");
        let md = p
            .send(Record::new(topic.as_str()).partition(0).value(want))
            .expect("send")
            .wait()
            .expect("delivered");
        assert_eq!(md.offset(), i as i64, "{ciphers:?}");
        p.close(Duration::from_secs(10)).expect("close");
        let suites = front.negotiated_cipher_suites();
        assert!(suites.len() > before, "{ciphers:?}: no handshake seen");
        for s in &suites[before..] {
            assert_eq!(s, want, "ssl_ciphers {ciphers:?}");
        }
    }
}

#[test]
fn client_certificates() {
    let watch = secret_watch();
    let lines_before = watch.lines.load(Ordering::SeqCst);
    let front = TlsFront::builder()
        .require_client_cert()
        .start()
        .expect("front");
    // Presented: works.
    let client = Client::new(
        ssl(&front)
            .ssl_certfile(front.client_cert_file())
            .ssl_keyfile(front.client_key_file())
            .build()
            .expect("config"),
    )
    .expect("client");
    client.refresh_metadata(None).expect("metadata with mTLS");
    // The same key encrypted, opened with ssl_password.
    let encrypted = front
        .encrypted_client_key_file("s3cret-pass")
        .expect("encrypted key");
    let config = ssl(&front)
        .ssl_certfile(front.client_cert_file())
        .ssl_keyfile(&encrypted)
        .ssl_password("s3cret-pass")
        .build()
        .expect("config with an encrypted key");
    assert!(!format!("{config:?}").contains("s3cret-pass"));
    Client::new(config)
        .expect("client")
        .refresh_metadata(None)
        .expect("metadata with an encrypted key");
    // A wrong password fails at build(), naming ssl_password, not showing it.
    let e = ssl(&front)
        .ssl_certfile(front.client_cert_file())
        .ssl_keyfile(&encrypted)
        .ssl_password("not-the-pass")
        .build()
        .expect_err("wrong password");
    assert_eq!(e.kind(), ErrorKind::Config);
    let s = format!("{e} {e:?}");
    assert!(
        s.contains("`ssl_password`") && !s.contains("not-the-pass"),
        "{s}"
    );
    // An encrypted key without a password.
    let e = ssl(&front)
        .ssl_certfile(front.client_cert_file())
        .ssl_keyfile(&encrypted)
        .build()
        .expect_err("no password");
    assert!(e.to_string().contains("`ssl_password`"), "{e}");
    // Missing: a clear error, not a hang or a retry loop.
    let before = front.failed_handshakes();
    let client = Client::new(ssl(&front).build().expect("config")).expect("client");
    let e = client
        .refresh_metadata(None)
        .expect_err("no client certificate");
    assert_eq!(e.kind(), ErrorKind::Tls, "{e}");
    let s = e.to_string();
    assert!(
        s.contains("client certificate") && s.contains("ssl_certfile"),
        "{s}"
    );
    assert!(
        s.contains(front.bootstrap_servers()),
        "names the broker: {s}"
    );
    assert!(front.failed_handshakes() - before <= 2);
    // Nothing logged meanwhile (the failed connection is logged) showed a
    // password.
    assert!(
        watch.lines.load(Ordering::SeqCst) > lines_before,
        "the log capture saw nothing"
    );
    assert!(watch.leaks.lock().unwrap().is_empty(), "{:?}", watch.leaks);
}

#[test]
fn an_untrusted_ca_is_a_clear_error() {
    let front = front_without_broker(TlsFront::builder());
    let other = front_without_broker(TlsFront::builder());
    let config = ssl(&front)
        .ssl_cafile(other.ca_file())
        .build()
        .expect("config");
    let e = tls_failure(config, Some(&front));
    let s = e.to_string();
    assert!(
        s.contains("unknown issuer") && s.contains("ssl_cafile"),
        "{s}"
    );
    assert!(
        s.contains(front.bootstrap_servers()),
        "names the broker: {s}"
    );
    // Turning the host name check off does not turn the chain check off.
    let config = ssl(&front)
        .ssl_cafile(other.ca_file())
        .ssl_check_hostname(false)
        .build()
        .expect("config");
    let e = tls_failure(config, None);
    assert!(e.to_string().contains("unknown issuer"), "{e}");
    // A producer fails its send with the TLS error, not a metadata timeout
    // after max_block_ms of retrying.
    let p = Producer::builder()
        .bootstrap_servers(front.bootstrap_servers())
        .security_protocol("SSL")
        .ssl_cafile(other.ca_file())
        .max_block_ms(60_000)
        .build()
        .expect("producer");
    let e = p.send(Record::new("t").value("v")).expect_err("untrusted");
    assert_eq!(e.kind(), ErrorKind::Tls, "{e}");
    // A consumer's first call fails with it too.
    let mut c = Consumer::builder()
        .bootstrap_servers(front.bootstrap_servers())
        .security_protocol("SSL")
        .ssl_cafile(other.ca_file())
        .consumer_timeout_ms(20_000)
        .build()
        .expect("consumer");
    c.assign([("t", 0)]).expect("assign needs no broker");
    let e = c
        .next()
        .expect("an error, not the end of iteration")
        .expect_err("untrusted");
    assert_eq!(e.kind(), ErrorKind::Tls, "{e}");
    // And so does a group member's.
    let mut g = Consumer::builder()
        .bootstrap_servers(front.bootstrap_servers())
        .security_protocol("SSL")
        .ssl_cafile(other.ca_file())
        .group_id("tls-untrusted")
        .consumer_timeout_ms(20_000)
        .build()
        .expect("consumer");
    g.subscribe(["t"]).expect("subscribe");
    let e = g
        .next()
        .expect("an error, not the end of iteration")
        .expect_err("untrusted");
    assert_eq!(e.kind(), ErrorKind::Tls, "{e}");
}

#[test]
fn a_hostname_mismatch_is_a_clear_error_unless_the_check_is_off() {
    let front = TlsFront::builder()
        .server_names(["broker.example"])
        .start()
        .expect("front");
    let e = tls_failure(ssl(&front).build().expect("config"), Some(&front));
    let s = e.to_string();
    assert!(
        s.contains("name mismatch")
            && s.contains("`localhost`")
            && s.contains("ssl_check_hostname"),
        "{s}"
    );
    let client = Client::new(
        ssl(&front)
            .ssl_check_hostname(false)
            .build()
            .expect("config"),
    )
    .expect("client");
    let md = client
        .refresh_metadata(None)
        .expect("metadata without the host name check");
    assert!(!md.brokers.is_empty());
}

#[test]
fn an_expired_certificate_is_a_clear_error() {
    let front = front_without_broker(TlsFront::builder().expired_certificate());
    let e = tls_failure(ssl(&front).build().expect("config"), Some(&front));
    assert!(e.to_string().contains("expired"), "{e}");
}

#[test]
fn a_revoked_certificate_is_a_clear_error() {
    let front = TlsFront::builder().start().expect("front");
    let e = tls_failure(
        ssl(&front)
            .ssl_crlfile(front.revoking_crl_file())
            .build()
            .expect("config"),
        Some(&front),
    );
    assert!(e.to_string().contains("revoked"), "{e}");
    // Without the list the same broker is fine.
    Client::new(ssl(&front).build().expect("config"))
        .expect("client")
        .refresh_metadata(None)
        .expect("metadata");
}

#[test]
fn a_tls_client_against_a_plaintext_listener_says_so() {
    // The shared broker speaks plaintext only.
    let config = ClientConfig::builder()
        .bootstrap_servers(bootstrap())
        .security_protocol("SSL")
        .ssl_check_hostname(false)
        .ssl_cafile(front_without_broker(TlsFront::builder()).ca_file())
        .socket_connection_setup_timeout_ms(3_000)
        .request_timeout_ms(5_000)
        .build()
        .expect("config");
    let client = Client::new(config).expect("client");
    let e = client
        .refresh_metadata(None)
        .expect_err("plaintext listener");
    assert!(
        matches!(e.kind(), ErrorKind::Tls | ErrorKind::Timeout),
        "{:?}: {e}",
        e.kind()
    );
    let s = e.to_string();
    assert!(s.contains("security_protocol") && s.contains("TLS"), "{s}");
}

#[test]
fn a_plaintext_client_against_a_tls_listener_says_so() {
    let front = front_without_broker(TlsFront::builder());
    let client = Client::new(
        ClientConfig::builder()
            .bootstrap_servers(front.bootstrap_servers())
            .request_timeout_ms(5_000)
            .build()
            .expect("config"),
    )
    .expect("client");
    let e = client.refresh_metadata(None).expect_err("TLS listener");
    assert_eq!(e.kind(), ErrorKind::Tls, "{e}");
    let s = e.to_string();
    assert!(
        s.contains("expects TLS") && s.contains("security_protocol"),
        "{s}"
    );
}

/// The lock invariant: the reader half waits on the socket for a long-poll
/// fetch without holding the TLS session, so a metadata request on the same
/// connection is encrypted and sent meanwhile (the broker answers in order,
/// so what shows it is the front receiving it while the fetch still waits).
#[test]
fn a_waiting_fetch_does_not_hold_up_a_request_on_the_same_tls_connection() {
    let front = TlsFront::builder().start().expect("front");
    let client = Arc::new(Client::new(ssl(&front).build().expect("config")).expect("client"));
    let topic = unique_topic("tls-wait");
    create_topic(&client, &topic, 1);
    let md = client.refresh_metadata(Some(&[&topic])).expect("metadata");
    let t = md.topic(&topic).expect("topic").clone();
    let leader = t.partitions[0].leader;
    let fetch = FetchRequest {
        max_wait_ms: 5_000,
        min_bytes: 1,
        max_bytes: 1 << 20,
        topics: vec![FetchTopic {
            topic: topic.clone(),
            topic_id: t.topic_id,
            partitions: vec![FetchPartition {
                partition: 0,
                fetch_offset: 0,
                partition_max_bytes: 1 << 20,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let done = Arc::new(AtomicBool::new(false));
    let before = front.client_bytes();
    let (c2, d2) = (Arc::clone(&client), Arc::clone(&done));
    let waiter = std::thread::spawn(move || {
        let r = c2.send_to(leader, &fetch);
        d2.store(true, Ordering::SeqCst);
        r
    });
    // Wait (bounded) until the fetch has reached the broker.
    let deadline = Instant::now() + Duration::from_secs(10);
    while front.client_bytes() == before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let after_fetch = front.client_bytes();
    assert!(after_fetch > before, "the fetch never reached the front");
    // Now a metadata request on the same (general) connection.
    let (c3, meta) = (Arc::clone(&client), MetadataRequest::default());
    let meta_thread = std::thread::spawn(move || c3.send_to(leader, &meta));
    let mut sent_while_fetch_waits = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if front.client_bytes() > after_fetch {
            sent_while_fetch_waits = !done.load(Ordering::SeqCst);
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let fetched = waiter.join().expect("fetch thread").expect("fetch");
    meta_thread
        .join()
        .expect("metadata thread")
        .expect("metadata");
    assert!(
        fetched.responses[0].partitions[0]
            .records
            .as_ref()
            .map_or(0, |r| r.len())
            == 0,
        "the partition was empty, so the fetch had to wait"
    );
    assert!(
        sent_while_fetch_waits,
        "the metadata request reached the broker only after the fetch was answered"
    );
}

#[test]
fn bad_tls_settings_fail_at_build_naming_the_key() {
    let dir = std::env::temp_dir().join(format!("kb-tls-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, "this is not PEM\n").expect("write");
    let missing = dir.join("missing.pem");
    let cases: Vec<(ClientConfigBuilder, &str, &str)> = vec![
        (
            ClientConfig::builder().ssl_cafile(&garbage),
            "ssl_cafile",
            "security_protocol",
        ),
        (
            ClientConfig::builder()
                .security_protocol("SSL")
                .ssl_cafile(&missing),
            "ssl_cafile",
            "missing.pem",
        ),
        (
            ClientConfig::builder()
                .security_protocol("SSL")
                .ssl_cafile(&garbage),
            "ssl_cafile",
            "garbage.pem",
        ),
        (
            ClientConfig::builder()
                .security_protocol("SSL")
                .ssl_keyfile(&garbage),
            "ssl_keyfile",
            "ssl_certfile",
        ),
        (
            ClientConfig::builder()
                .security_protocol("SSL")
                .ssl_password("hunter2-pw"),
            "ssl_password",
            "ssl_certfile",
        ),
        (
            ClientConfig::builder()
                .security_protocol("SSL")
                .ssl_crlfile(&garbage),
            "ssl_crlfile",
            "garbage.pem",
        ),
        (
            ClientConfig::builder()
                .security_protocol("SSL")
                .ssl_ciphers("TLS_AES_128_GCM_SHA256:RC4-MD5"),
            "ssl_ciphers",
            "`RC4-MD5` is not a cipher suite",
        ),
        (
            ClientConfig::builder().ssl_ciphers("TLS_AES_128_GCM_SHA256"),
            "ssl_ciphers",
            "security_protocol",
        ),
    ];
    for (b, key, mentions) in cases {
        let debug = format!("{b:?}");
        assert!(!debug.contains("hunter2-pw"), "{debug}");
        let e = b.build().expect_err(key);
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
        let s = e.to_string();
        assert!(s.contains(&format!("`{key}`")), "{key}: {s}");
        assert!(s.contains(mentions), "{key}: {s}");
        assert!(!s.contains("hunter2-pw"), "{s}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same TLS path against a real Kafka SSL listener.
#[test]
#[cfg_attr(
    not(kafka_ssl),
    ignore = "needs a Kafka SSL listener: set KAFKA_SSL_BOOTSTRAP_SERVERS and KAFKA_SSL_CAFILE"
)]
fn real_kafka_over_tls() {
    let servers =
        std::env::var("KAFKA_SSL_BOOTSTRAP_SERVERS").expect("KAFKA_SSL_BOOTSTRAP_SERVERS");
    let cafile = std::env::var("KAFKA_SSL_CAFILE").expect("KAFKA_SSL_CAFILE");
    let topic = unique_topic("tls-real");
    let p = Producer::builder()
        .bootstrap_servers(&servers)
        .security_protocol("SSL")
        .ssl_cafile(&cafile)
        .build()
        .expect("producer");
    for i in 0..1000 {
        let _ = p
            .send(
                Record::new(topic.as_str())
                    .partition(0)
                    .value(format!("v{i}")),
            )
            .expect("send");
    }
    p.flush(Duration::from_secs(60)).expect("flush");
    p.close(Duration::from_secs(10)).expect("close");
    let mut c = Consumer::builder()
        .bootstrap_servers(&servers)
        .security_protocol("SSL")
        .ssl_cafile(&cafile)
        .auto_offset_reset("earliest")
        .consumer_timeout_ms(5_000)
        .build()
        .expect("consumer");
    c.assign([(topic.as_str(), 0)]).expect("assign");
    let mut n = 0;
    for m in (&mut c).take(1000) {
        m.expect("record");
        n += 1;
    }
    assert_eq!(n, 1000);
}
