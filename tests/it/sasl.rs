//! SASL end to end: every test talks to the real local broker through the
//! testkit's `SaslFront` (Tansu has no SASL), whose broker advertises the
//! front, so every request of every client here is authenticated. The same
//! login/produce/consume cases run against a real SASL_PLAINTEXT Kafka when
//! KAFKA_SASL_BOOTSTRAP_SERVERS, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD
//! are set.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use kafka_blocking::consumer::Consumer;
use kafka_blocking::producer::{Producer, Record};
use kafka_blocking::testkit::SaslFront;
use kafka_blocking::{
    Client, ClientConfig, ErrorKind, OAuthBearerToken, OAuthBearerTokenProvider,
    UnsecuredJwtProvider,
};

use crate::harness::{create_topic, unique_topic};

const USER: &str = "alice";
const PASSWORD: &str = "alice-s3cret-pw";

/// The shared front: every mechanism, sessions that never end.
fn front() -> &'static SaslFront {
    static FRONT: OnceLock<SaslFront> = OnceLock::new();
    FRONT.get_or_init(|| {
        SaslFront::builder()
            .user(USER, PASSWORD)
            .user("bob", "bob-pw")
            .start()
            .expect("start the SASL front and its broker")
    })
}

/// Where a login test runs: the front, or a real SASL Kafka.
struct Target {
    servers: String,
    user: String,
    password: String,
    /// `SASL_PLAINTEXT`, or `SASL_SSL` with the CA file to trust.
    tls_ca: Option<String>,
}

fn on_front() -> Target {
    Target {
        servers: front().bootstrap_servers(),
        user: USER.into(),
        password: PASSWORD.into(),
        tls_ca: None,
    }
}

/// A front with `builder`'s settings before the shared front's broker (for
/// tests that never get past the login, or only bootstrap through it), and
/// the target that logs in through it as alice.
fn side_front(builder: kafka_blocking::testkit::SaslFrontBuilder) -> (SaslFront, Target) {
    let front = builder
        .user(USER, PASSWORD)
        .start_in_front_of(&front().upstream().expect("upstream"))
        .expect("front");
    let t = Target {
        servers: front.bootstrap_servers(),
        ..on_front()
    };
    (front, t)
}

#[allow(dead_code)] // used when built with cfg kafka_sasl
fn on_real_kafka() -> Target {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} must be set"));
    Target {
        servers: var("KAFKA_SASL_BOOTSTRAP_SERVERS"),
        user: var("KAFKA_SASL_USERNAME"),
        password: var("KAFKA_SASL_PASSWORD"),
        tls_ca: None,
    }
}

#[allow(dead_code)] // used when built with cfg kafka_sasl_ssl
fn on_real_kafka_over_tls() -> Target {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} must be set"));
    Target {
        servers: var("KAFKA_SASL_SSL_BOOTSTRAP_SERVERS"),
        user: var("KAFKA_SASL_USERNAME"),
        password: var("KAFKA_SASL_PASSWORD"),
        tls_ca: Some(var("KAFKA_SSL_CAFILE")),
    }
}

/// Sets the SASL options on any builder.
macro_rules! sasl {
    ($b:expr, $t:expr, $mech:expr) => {
        match &$t.tls_ca {
            None => $b.security_protocol("SASL_PLAINTEXT"),
            Some(ca) => $b.security_protocol("SASL_SSL").ssl_cafile(ca),
        }
        .bootstrap_servers(&$t.servers)
        .request_timeout_ms(15_000)
        .sasl_mechanism($mech)
        .sasl_plain_username(&$t.user)
        .sasl_plain_password(&$t.password)
    };
}

fn client_for(t: &Target, mech: &str) -> kafka_blocking::Result<Client> {
    Client::new(sasl!(ClientConfig::builder(), t, mech).build()?)
}

/// Logs in with `mech`, creates a topic, produces `n` records and reads
/// them back with a consumer, all over SASL.
fn produce_consume(t: &Target, mech: &str, n: usize) {
    let client = client_for(t, mech).expect("client");
    let topic = unique_topic(&format!("sasl-{}", mech.to_lowercase()));
    create_topic(&client, &topic, 1);
    let p = sasl!(Producer::builder(), t, mech)
        .linger_ms(5)
        .build()
        .expect("producer");
    for i in 0..n {
        let _ = p
            .send(Record::new(&topic).value(format!("v{i}")))
            .expect("send");
    }
    p.flush(Duration::from_secs(30)).expect("flush");
    p.close(Duration::from_secs(10)).expect("close");
    let mut c = sasl!(Consumer::builder(), t, mech)
        .auto_offset_reset("earliest")
        .consumer_timeout_ms(5_000)
        .build()
        .expect("consumer");
    c.assign([(topic.as_str(), 0)]).expect("assign");
    let mut got = 0;
    for m in c.by_ref().take(n) {
        let m = m.expect("record");
        assert_eq!(
            m.value().map(|v| v.to_vec()),
            Some(format!("v{got}").into_bytes())
        );
        got += 1;
    }
    assert_eq!(got, n, "{mech}: every record comes back");
}

#[test]
fn plain_logs_in_and_produces_and_consumes() {
    produce_consume(&on_front(), "PLAIN", 500);
    assert!(front().stats().logins.load(Ordering::SeqCst) > 0);
}

#[test]
fn scram_sha_256_logs_in_and_produces_and_consumes() {
    produce_consume(&on_front(), "SCRAM-SHA-256", 500);
}

#[test]
fn scram_sha_512_logs_in_and_produces_and_consumes() {
    produce_consume(&on_front(), "SCRAM-SHA-512", 500);
}

/// SASL_SSL: the testkit's TLS front before the SASL front before the
/// broker, which advertises the TLS front; every byte of the login and of
/// the records crosses TLS.
#[test]
fn sasl_ssl_logs_in_over_tls_and_produces_and_consumes() {
    use kafka_blocking::testkit::{LocalBroker, TlsFront};
    let sasl = SaslFront::builder()
        .user(USER, PASSWORD)
        .bind()
        .expect("SASL front");
    let tls = TlsFront::builder()
        .start_in_front_of(&sasl.bootstrap_servers())
        .expect("TLS front");
    let broker = LocalBroker::start_advertising(tls.bootstrap_servers()).expect("broker");
    sasl.set_upstream(broker.bootstrap_servers())
        .expect("upstream");
    for mech in ["PLAIN", "SCRAM-SHA-512"] {
        let t = Target {
            servers: tls.bootstrap_servers().to_owned(),
            ..on_front()
        };
        let client = Client::new(
            sasl!(ClientConfig::builder(), t, mech)
                .security_protocol("SASL_SSL")
                .ssl_cafile(tls.ca_file())
                .build()
                .expect("config"),
        )
        .expect("client");
        let topic = unique_topic("sasl-ssl");
        create_topic(&client, &topic, 1);
        let p = sasl!(Producer::builder(), t, mech)
            .security_protocol("SASL_SSL")
            .ssl_cafile(tls.ca_file())
            .build()
            .expect("producer");
        p.send(Record::new(&topic).value("over TLS"))
            .and_then(|f| f.get(Duration::from_secs(30)))
            .expect("produced");
        let mut c = sasl!(Consumer::builder(), t, mech)
            .security_protocol("SASL_SSL")
            .ssl_cafile(tls.ca_file())
            .auto_offset_reset("earliest")
            .consumer_timeout_ms(5_000)
            .build()
            .expect("consumer");
        c.assign([(topic.as_str(), 0)]).expect("assign");
        let m = c.next().expect("a record").expect("no error");
        assert_eq!(m.value().map(|v| v.to_vec()), Some(b"over TLS".to_vec()));
    }
    assert!(tls.handshakes() >= 2, "the clients went through TLS");
    assert!(sasl.stats().logins.load(Ordering::SeqCst) >= 2);
    // SASL settings with SSL (no SASL) are refused, naming the key.
    let e = ClientConfig::builder()
        .security_protocol("SSL")
        .sasl_mechanism("PLAIN")
        .build()
        .expect_err("SASL with SSL");
    assert!(e.to_string().contains("`sasl_mechanism`"), "{e}");
}

/// Counts how often the client asks for a token.
struct Counting {
    inner: UnsecuredJwtProvider,
    calls: Arc<AtomicUsize>,
}

impl OAuthBearerTokenProvider for Counting {
    fn token(&self) -> kafka_blocking::Result<OAuthBearerToken> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.token()
    }
}

#[test]
fn oauthbearer_logs_in_and_produces_and_consumes() {
    let t = on_front();
    let topic = unique_topic("sasl-oauth");
    let oauth = |b: kafka_blocking::ClientConfigBuilder| {
        b.bootstrap_servers(&t.servers)
            .security_protocol("SASL_PLAINTEXT")
            .sasl_mechanism("OAUTHBEARER")
            .sasl_oauth_token_provider(
                UnsecuredJwtProvider::new("carol").extension("traceId", "t1"),
            )
            .build()
            .expect("config")
    };
    let client = Client::new(oauth(ClientConfig::builder())).expect("client");
    create_topic(&client, &topic, 1);
    let p = Producer::builder()
        .bootstrap_servers(&t.servers)
        .security_protocol("SASL_PLAINTEXT")
        .sasl_mechanism("OAUTHBEARER")
        .sasl_oauth_token_provider(UnsecuredJwtProvider::new("carol"))
        .build()
        .expect("producer");
    for i in 0..100 {
        let _ = p
            .send(Record::new(&topic).value(format!("o{i}")))
            .expect("send");
    }
    p.flush(Duration::from_secs(30)).expect("flush");
    let mut c = Consumer::builder()
        .bootstrap_servers(&t.servers)
        .security_protocol("SASL_PLAINTEXT")
        .sasl_mechanism("OAUTHBEARER")
        .sasl_oauth_token_provider(UnsecuredJwtProvider::new("carol"))
        .auto_offset_reset("earliest")
        .consumer_timeout_ms(5_000)
        .build()
        .expect("consumer");
    c.assign([(topic.as_str(), 0)]).expect("assign");
    assert_eq!(c.by_ref().take(100).filter(|m| m.is_ok()).count(), 100);
}

/// Asserts that `r` is an authentication error that does not leak the
/// password.
fn assert_auth_error<T: std::fmt::Debug>(r: kafka_blocking::Result<T>, secret: &str, says: &str) {
    let e = r.expect_err("the login must fail");
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    assert!(e.is_auth() && !e.is_retriable(), "{e}");
    let shown = format!("{e} {e:?}");
    assert!(
        !shown.contains(secret),
        "the error leaks the secret: {shown}"
    );
    assert!(shown.contains(says), "`{says}` missing from: {shown}");
}

#[test]
fn wrong_password_is_an_auth_error_for_each_mechanism() {
    for mech in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let t = Target {
            password: "not-the-password".into(),
            ..on_front()
        };
        let client = client_for(&t, mech).expect("client");
        // The broker's own message is carried.
        assert_auth_error(
            client.refresh_metadata(None),
            "not-the-password",
            "Authentication failed",
        );
    }
}

#[test]
fn unknown_user_is_an_auth_error() {
    for mech in ["PLAIN", "SCRAM-SHA-256"] {
        let t = Target {
            user: "mallory".into(),
            ..on_front()
        };
        let client = client_for(&t, mech).expect("client");
        assert_auth_error(
            client.refresh_metadata(None),
            PASSWORD,
            "Authentication failed",
        );
    }
}

#[test]
fn a_mechanism_the_listener_lacks_names_the_offered_ones() {
    let (_front, t) =
        side_front(SaslFront::builder().mechanisms(&[kafka_blocking::SaslMechanism::ScramSha512]));
    let client = client_for(&t, "PLAIN").expect("client");
    assert_auth_error(client.refresh_metadata(None), PASSWORD, "SCRAM-SHA-512");
}

#[test]
fn a_server_signature_that_does_not_verify_fails_the_login() {
    let (liar, t) = side_front(SaslFront::builder().bad_server_signature(true));
    for mech in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let client = client_for(&t, mech).expect("client");
        assert_auth_error(client.refresh_metadata(None), PASSWORD, "server signature");
    }
    // The front did log the client in: only the client's check refused it.
    assert!(liar.stats().logins.load(Ordering::SeqCst) >= 2);
}

/// Hands out a token whose JWT `exp` has passed while claiming it is
/// valid: only the broker can notice.
struct ExpiredJwt;

impl OAuthBearerTokenProvider for ExpiredJwt {
    fn token(&self) -> kafka_blocking::Result<OAuthBearerToken> {
        let stale = UnsecuredJwtProvider::new("dave")
            .lifetime(Duration::ZERO)
            .token()?;
        Ok(OAuthBearerToken::new(
            stale.value(),
            Duration::from_secs(3600),
        ))
    }
}

#[test]
fn an_expired_token_is_an_auth_error() {
    let config = ClientConfig::builder()
        .bootstrap_servers(front().bootstrap_servers())
        .security_protocol("SASL_PLAINTEXT")
        .sasl_mechanism("OAUTHBEARER")
        .sasl_oauth_token_provider(ExpiredJwt)
        .build()
        .expect("config");
    let token = ExpiredJwt.token().expect("token");
    let client = Client::new(config).expect("client");
    assert_auth_error(client.refresh_metadata(None), token.value(), "expired");
}

#[test]
fn calls_queued_behind_a_failed_login_get_the_same_error_at_once() {
    let t = Target {
        password: "wrong".into(),
        ..on_front()
    };
    let client = client_for(&t, "PLAIN").expect("client");
    let first = client.refresh_metadata(None).expect_err("fails");
    assert!(first.is_auth());
    // Within the reconnect backoff, the next calls fail with the remembered
    // error instead of repeating the login.
    let logins_before = front().stats().failures.load(Ordering::SeqCst);
    for _ in 0..3 {
        let e = client.refresh_metadata(None).expect_err("fails");
        assert!(e.is_auth(), "{e}");
    }
    let after = front().stats().failures.load(Ordering::SeqCst);
    assert!(
        after - logins_before <= 3,
        "failed logins are not retried in a loop ({} more)",
        after - logins_before
    );
}

#[test]
fn a_login_the_broker_never_answers_times_out() {
    let (_stuck, t) = side_front(SaslFront::builder().stall_logins(true));
    let client = Client::new(
        sasl!(ClientConfig::builder(), t, "SCRAM-SHA-256")
            .socket_connection_setup_timeout_ms(1_500)
            .build()
            .expect("config"),
    )
    .expect("client");
    let e = client.refresh_metadata(None).expect_err("no answer");
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.to_string().contains("SaslAuthenticate"), "{e}");
    assert!(
        e.to_string().contains("socket_connection_setup_timeout_ms"),
        "{e}"
    );
}

#[test]
fn a_plaintext_client_at_a_sasl_listener_is_told_about_security_protocol() {
    let client = Client::new(
        ClientConfig::builder()
            .bootstrap_servers(front().bootstrap_servers())
            .request_timeout_ms(10_000)
            .build()
            .expect("config"),
    )
    .expect("client");
    let e = client
        .refresh_metadata(None)
        .expect_err("the front hangs up");
    assert!(e.to_string().contains("security_protocol"), "{e}");
    assert!(e.to_string().contains("SASL"), "{e}");
}

#[test]
fn brokers_before_1_0_get_raw_tokens_after_handshake_v0() {
    let (old, t) = side_front(SaslFront::builder().pre_1_0(true));
    for mech in ["PLAIN", "SCRAM-SHA-256"] {
        let md = client_for(&t, mech)
            .expect("client")
            .refresh_metadata(None)
            .expect("metadata through a pre-1.0 login");
        assert!(!md.brokers.is_empty());
    }
    let bad = Target {
        password: "wrong".into(),
        ..t
    };
    let e = client_for(&bad, "PLAIN")
        .expect("client")
        .refresh_metadata(None)
        .expect_err("fails");
    assert!(e.is_auth(), "{e}");
    assert_eq!(old.stats().logins.load(Ordering::SeqCst), 2);
}

/// KIP-368: sessions of 2 s during a 20 s produce+consume loop. Every
/// connection re-authenticates many times; no request fails, nothing is
/// lost or reordered, and the front never sees a request after a session
/// ended.
#[test]
fn reauthentication_keeps_a_20_s_produce_consume_loop_whole() {
    let front = SaslFront::builder()
        .user(USER, PASSWORD)
        .session_lifetime(Duration::from_secs(2))
        .start()
        .expect("front");
    let t = Target {
        servers: front.bootstrap_servers(),
        user: USER.into(),
        password: PASSWORD.into(),
        tls_ca: None,
    };
    let topic = unique_topic("sasl-reauth");
    create_topic(&client_for(&t, "SCRAM-SHA-256").expect("client"), &topic, 1);
    let token_calls = Arc::new(AtomicUsize::new(0));
    let mut consumer = Consumer::builder()
        .bootstrap_servers(&t.servers)
        .request_timeout_ms(15_000)
        .security_protocol("SASL_PLAINTEXT")
        .sasl_mechanism("OAUTHBEARER")
        .sasl_oauth_token_provider(Counting {
            inner: UnsecuredJwtProvider::new("carol").lifetime(Duration::from_secs(5)),
            calls: Arc::clone(&token_calls),
        })
        .auto_offset_reset("earliest")
        .consumer_timeout_ms(1_000)
        .build()
        .expect("consumer");
    consumer.assign([(topic.as_str(), 0)]).expect("assign");
    let received: Arc<Mutex<Vec<String>>> = Arc::default();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (received, done) = (Arc::clone(&received), Arc::clone(&done));
        std::thread::spawn(move || {
            let stop_at = Instant::now() + Duration::from_secs(90);
            while Instant::now() < stop_at {
                match consumer.poll(Duration::from_millis(200)) {
                    Ok(records) => {
                        let mut r = received.lock().unwrap();
                        for m in records {
                            r.push(String::from_utf8_lossy(m.value().unwrap()).into_owned());
                        }
                    }
                    Err(e) => panic!("a consumer call failed during re-authentication: {e}"),
                }
                if done.load(Ordering::SeqCst) {
                    break;
                }
            }
            consumer.metrics()
        })
    };
    let producer = sasl!(Producer::builder(), t, "SCRAM-SHA-256")
        .linger_ms(2)
        .build()
        .expect("producer");
    let start = Instant::now();
    let mut sent = 0usize;
    let mut futures = Vec::new();
    while start.elapsed() < Duration::from_secs(20) && sent < 200_000 {
        futures.push(
            producer
                .send(Record::new(&topic).value(format!("r{sent}")))
                .expect("send"),
        );
        sent += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    for f in futures {
        f.get(Duration::from_secs(30))
            .expect("a produce request failed during re-authentication");
    }
    // Wait (bounded) until the consumer has everything.
    let wait_until = Instant::now() + Duration::from_secs(60);
    while received.lock().unwrap().len() < sent && Instant::now() < wait_until {
        std::thread::sleep(Duration::from_millis(100));
    }
    done.store(true, Ordering::SeqCst);
    let consumer_metrics = reader.join().expect("consumer thread");
    // Retries would hide a failed request: there must be none.
    assert_eq!(consumer_metrics.fetch_errors, 0, "no fetch failed");
    let producer_metrics = producer.metrics();
    assert_eq!(producer_metrics.retries, 0, "no produce request failed");
    assert_eq!(producer_metrics.record_errors, 0);
    let got = received.lock().unwrap().clone();
    assert_eq!(got.len(), sent, "nothing lost, nothing duplicated");
    for (i, v) in got.iter().enumerate() {
        assert_eq!(v, &format!("r{i}"), "in order");
    }
    assert_eq!(
        got.iter().collect::<BTreeSet<_>>().len(),
        sent,
        "no duplicates"
    );
    let stats = front.stats();
    let reauths = stats.reauthentications.load(Ordering::SeqCst);
    assert!(
        reauths >= 10,
        "connections re-authenticated ({reauths} times)"
    );
    assert_eq!(
        stats.expired.load(Ordering::SeqCst),
        0,
        "no request was sent after its session ended"
    );
    assert!(
        token_calls.load(Ordering::SeqCst) >= 3,
        "the 5 s token was refreshed ({} tokens)",
        token_calls.load(Ordering::SeqCst)
    );
    producer.close(Duration::from_secs(10)).expect("close");
}

/// A password changed under running clients: their next re-authentication
/// is refused, and their calls fail with the authentication error (not a
/// timeout after retrying, not silence).
#[test]
fn a_password_rotated_under_running_clients_fails_their_calls_with_the_auth_error() {
    let front = SaslFront::builder()
        .user(USER, PASSWORD)
        .session_lifetime(Duration::from_secs(1))
        .start()
        .expect("front");
    let t = Target {
        servers: front.bootstrap_servers(),
        ..on_front()
    };
    let topic = unique_topic("sasl-rotated");
    create_topic(&client_for(&t, "PLAIN").expect("client"), &topic, 1);
    let producer = sasl!(Producer::builder(), t, "SCRAM-SHA-256")
        .linger_ms(0)
        .build()
        .expect("producer");
    let mut consumer = sasl!(Consumer::builder(), t, "PLAIN")
        .auto_offset_reset("earliest")
        .build()
        .expect("consumer");
    consumer.assign([(topic.as_str(), 0)]).expect("assign");
    producer
        .send(Record::new(&topic).value("before"))
        .and_then(|f| f.get(Duration::from_secs(30)))
        .expect("produced before the rotation");
    let mut got = 0;
    for _ in 0..50 {
        got += consumer
            .poll(Duration::from_millis(200))
            .expect("poll before the rotation")
            .into_iter()
            .count();
        if got > 0 {
            break;
        }
    }
    assert_eq!(got, 1, "read before the rotation");
    front.set_user(USER, "rotated-by-the-admin");
    // Within a few session lifetimes, each client's connection has been
    // refused at re-authentication; then every call says so.
    let deadline = Instant::now() + Duration::from_secs(30);
    let produce_error = loop {
        match producer
            .send(Record::new(&topic).value("after"))
            .and_then(|f| f.get(Duration::from_secs(30)))
        {
            Err(e) => break e,
            Ok(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Ok(_) => panic!("the producer kept producing after its password changed"),
        }
    };
    assert!(produce_error.is_auth(), "{produce_error}");
    let consume_error = loop {
        match consumer.poll(Duration::from_millis(200)) {
            Err(e) => break e,
            Ok(_) if Instant::now() < deadline => {}
            Ok(_) => panic!("the consumer kept polling quietly after its password changed"),
        }
    };
    assert!(consume_error.is_auth(), "{consume_error}");
    assert!(front.stats().failures.load(Ordering::SeqCst) >= 2);
}

/// Secrets stay out of `Debug` output and log lines.
#[test]
fn secrets_appear_in_no_debug_output_or_log_line() {
    let config = sasl!(ClientConfig::builder(), on_front(), "PLAIN");
    assert!(!format!("{config:?}").contains(PASSWORD));
    let built = config.build().expect("config");
    assert!(!format!("{built:?}").contains(PASSWORD));
    let p = sasl!(Producer::builder(), on_front(), "SCRAM-SHA-256");
    assert!(!format!("{p:?}").contains(PASSWORD));
    let jwt = UnsecuredJwtProvider::new("carol").token().expect("token");
    let oauth = ClientConfig::builder()
        .security_protocol("SASL_PLAINTEXT")
        .sasl_mechanism("OAUTHBEARER")
        .sasl_oauth_token_provider(UnsecuredJwtProvider::new("carol"))
        .build()
        .expect("config");
    assert!(!format!("{oauth:?} {jwt:?}").contains(jwt.value()));
    // Logged lines: every record logged while logging in (good and bad)
    // and re-authenticating.
    let lines = capture_logs(|| {
        let _ = client_for(&on_front(), "SCRAM-SHA-256").and_then(|c| c.refresh_metadata(None));
        let bad = Target {
            password: "wrong-pw-xyz".into(),
            ..on_front()
        };
        let _ = client_for(&bad, "PLAIN").and_then(|c| c.refresh_metadata(None));
    });
    for line in &lines {
        assert!(
            !line.contains(PASSWORD) && !line.contains("wrong-pw-xyz"),
            "a log line leaks a password: {line}"
        );
    }
}

#[test]
#[cfg_attr(
    not(kafka_sasl),
    ignore = "needs a SASL_PLAINTEXT Kafka: set KAFKA_SASL_BOOTSTRAP_SERVERS, KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD"
)]
fn real_kafka_each_mechanism_logs_in_and_produces_and_consumes() {
    for mech in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        produce_consume(&on_real_kafka(), mech, 200);
    }
}

#[test]
#[cfg_attr(
    not(kafka_sasl_ssl),
    ignore = "needs a SASL_SSL Kafka: set KAFKA_SASL_SSL_BOOTSTRAP_SERVERS, KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD, KAFKA_SSL_CAFILE"
)]
fn real_kafka_sasl_ssl_each_mechanism_logs_in_and_produces_and_consumes() {
    for mech in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        produce_consume(&on_real_kafka_over_tls(), mech, 200);
    }
    // And a wrong password over TLS is the authentication error.
    let t = Target {
        password: "not-the-password".into(),
        ..on_real_kafka_over_tls()
    };
    let client = client_for(&t, "SCRAM-SHA-512").expect("client");
    assert_auth_error(
        client.refresh_metadata(None),
        &t.password,
        "Authentication failed",
    );
}

#[test]
#[cfg_attr(
    not(kafka_sasl),
    ignore = "needs a SASL_PLAINTEXT Kafka: set KAFKA_SASL_BOOTSTRAP_SERVERS, KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD"
)]
fn real_kafka_wrong_password_and_unknown_user_are_auth_errors() {
    for mech in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        for t in [
            Target {
                password: "not-the-password".into(),
                ..on_real_kafka()
            },
            Target {
                user: "no-such-user-kafka-blocking".into(),
                ..on_real_kafka()
            },
        ] {
            let client = client_for(&t, mech).expect("client");
            assert_auth_error(
                client.refresh_metadata(None),
                &t.password,
                "Authentication failed",
            );
        }
    }
}

#[test]
#[cfg_attr(
    not(kafka_sasl),
    ignore = "needs a SASL_PLAINTEXT Kafka: set KAFKA_SASL_BOOTSTRAP_SERVERS, KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD"
)]
fn real_kafka_producer_and_consumer_calls_get_the_auth_error() {
    calls_get_the_auth_error(Target {
        password: "not-the-password".into(),
        ..on_real_kafka()
    });
}

/// Records every log line of this process while `f` runs (lines of tests
/// running at the same time included: more lines to check).
fn capture_logs(f: impl FnOnce()) -> Vec<String> {
    struct Recorder(Mutex<Vec<String>>);
    impl log::Log for Recorder {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &log::Record<'_>) {
            if let Ok(mut lines) = self.0.lock() {
                if lines.len() < 100_000 {
                    lines.push(format!("{} {}", record.target(), record.args()));
                }
            }
        }
        fn flush(&self) {}
    }
    static RECORDER: OnceLock<&'static Recorder> = OnceLock::new();
    let rec = *RECORDER.get_or_init(|| {
        let rec: &'static Recorder = Box::leak(Box::new(Recorder(Mutex::new(Vec::new()))));
        crate::harness::add_log_sink(rec);
        rec
    });
    f();
    let lines = rec.0.lock().map(|l| l.clone()).unwrap_or_default();
    assert!(
        !lines.is_empty(),
        "the login logged nothing: the check would be empty"
    );
    lines
}

/// A producer, a consumer (assigned and in a group) and an admin client
/// with a wrong password get the authentication error from their calls,
/// not a timeout after retrying.
#[test]
fn producer_and_consumer_calls_get_the_auth_error() {
    calls_get_the_auth_error(Target {
        password: "not-the-password".into(),
        ..on_front()
    });
}

fn calls_get_the_auth_error(t: Target) {
    let topic = unique_topic("sasl-denied");
    let p = sasl!(Producer::builder(), t, "SCRAM-SHA-256")
        .max_block_ms(10_000)
        .delivery_timeout_ms(20_000)
        .build()
        .expect("producer");
    let r = p
        .send(Record::new(&topic).value("x"))
        .and_then(|f| f.get(Duration::from_secs(30)));
    assert_auth_error(r, "not-the-password", "Authentication failed");
    let mut c = sasl!(Consumer::builder(), t, "PLAIN")
        .auto_offset_reset("earliest")
        .build()
        .expect("consumer");
    let r = c.assign([(topic.as_str(), 0)]).and_then(|_| {
        c.poll(Duration::from_secs(10))
            .map(|r| r.into_iter().count())
    });
    assert_auth_error(r, "not-the-password", "Authentication failed");
    let mut g = sasl!(Consumer::builder(), t, "SCRAM-SHA-512")
        .group_id(unique_topic("sasl-denied-group"))
        .build()
        .expect("group consumer");
    let r = g.subscribe([topic.as_str()]).and_then(|_| {
        g.poll(Duration::from_secs(10))
            .map(|r| r.into_iter().count())
    });
    assert_auth_error(r, "not-the-password", "Authentication failed");
    let admin = sasl!(kafka_blocking::AdminClient::builder(), t, "PLAIN")
        .build()
        .expect("admin");
    assert_auth_error(
        admin.list_topics(),
        "not-the-password",
        "Authentication failed",
    );
}
