//! The foundation against a real broker: handshake, metadata, topic admin
//! and produce/fetch through raw protocol requests, and failure handling.

use std::time::{Duration, Instant};

use kafka_blocking::protocol::messages::{DeleteTopicsRequest, MetadataRequest};
use kafka_blocking::protocol::{ApiKey, ErrorCode};
use kafka_blocking::{Client, ClientConfig, ErrorKind};

use crate::faults::{closed_port, FakeServer, Proxy};
use crate::harness::{bootstrap, client, create_topic, unique_topic};

#[test]
fn api_versions_handshake_and_version_guess() {
    let c = client();
    let info = c.check_version().expect("check_version");
    for key in [
        ApiKey::PRODUCE,
        ApiKey::FETCH,
        ApiKey::METADATA,
        ApiKey::API_VERSIONS,
    ] {
        let r = info
            .api_versions
            .range(key)
            .unwrap_or_else(|| panic!("broker lacks {key:?}"));
        assert!(r.min <= r.max, "{key:?}: {r:?}");
    }
    assert!(info.kafka_version >= (0, 11, 0), "{:?}", info.kafka_version);
    assert!(info.broker_id.is_some());
}

#[test]
fn metadata_lists_brokers_and_topics() {
    let c = client();
    let topic = unique_topic("md");
    create_topic(&c, &topic, 3);
    let md = c
        .refresh_metadata(Some(&[topic.as_str()]))
        .expect("metadata");
    assert!(!md.brokers.is_empty());
    let t = md.topic(&topic).expect("topic in metadata");
    assert_eq!(t.partitions.len(), 3);
    for (i, p) in t.partitions.iter().enumerate() {
        assert_eq!(p.partition, i as i32);
        assert!(md.broker(p.leader).is_some(), "leader {} unknown", p.leader);
    }
    // The raw request path gives the same answer.
    let raw = c
        .send_any(&MetadataRequest::default())
        .expect("raw metadata");
    assert!(!raw.brokers.is_empty());
}

#[test]
fn create_and_delete_topics_with_raw_requests() {
    let c = client();
    let topic = unique_topic("admin");
    create_topic(&c, &topic, 2);
    let response = c
        .send_any(&DeleteTopicsRequest {
            topic_names: vec![topic.clone()],
            topics: vec![
                kafka_blocking::protocol::messages::delete_topics_request::DeleteTopicState {
                    name: Some(topic.clone()),
                    ..Default::default()
                },
            ],
            timeout_ms: 10_000,
            ..Default::default()
        })
        .expect("DeleteTopics");
    assert_eq!(response.responses.len(), 1);
    assert_eq!(ErrorCode(response.responses[0].error_code), ErrorCode::NONE);
    let md = c
        .refresh_metadata(Some(&[topic.as_str()]))
        .expect("metadata");
    if let Some(t) = md.topic(&topic) {
        assert!(
            t.error == ErrorCode::UNKNOWN_TOPIC_OR_PARTITION || t.partitions.is_empty(),
            "deleted topic still listed: {t:?}"
        );
    }
}

fn config_for(addr: &str) -> ClientConfig {
    ClientConfig::builder()
        .bootstrap_servers(addr)
        .request_timeout_ms(1_000)
        .socket_connection_setup_timeout_ms(1_000)
        .reconnect_backoff_ms(10)
        .reconnect_backoff_max_ms(50)
        .build()
        .expect("config")
}

#[test]
fn refused_connection_fails_fast_with_a_retriable_error() {
    let c = Client::new(config_for(&closed_port())).expect("client");
    let t0 = Instant::now();
    let e = c.send_any(&MetadataRequest::default()).unwrap_err();
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t0.elapsed()
    );
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert!(e.is_retriable());
    assert!(e.to_string().contains("cannot connect"), "{e}");
}

#[test]
fn silent_server_times_out_in_the_handshake() {
    let silent = FakeServer::start(Vec::new());
    let c = Client::new(config_for(&silent.addr())).expect("client");
    let t0 = Instant::now();
    let e = c.send_any(&MetadataRequest::default()).unwrap_err();
    let took = t0.elapsed();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.to_string().contains("ApiVersions"), "{e}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(10),
        "took {took:?}"
    );
}

#[test]
fn garbage_answers_are_protocol_errors() {
    // A frame length far beyond receive_message_max_bytes, then a frame too
    // short to hold a header.
    for reply in [vec![0x7f, 0xff, 0xff, 0xff, 1, 2, 3], vec![0, 0, 0, 1, 7]] {
        let liar = FakeServer::start(reply);
        let c = Client::new(config_for(&liar.addr())).expect("client");
        let e = c.send_any(&MetadataRequest::default()).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::Protocol),
            "expected a protocol error, got {e:?}"
        );
    }
}

#[test]
fn stuck_broker_times_out_then_the_client_recovers() {
    use std::sync::atomic::Ordering::SeqCst;
    let proxy = Proxy::start(&bootstrap());
    // `send_any` does not update the metadata snapshot, so every request
    // here goes through the bootstrap connection, i.e. through the proxy.
    let c = Client::new(config_for(&proxy.addr())).expect("client");
    c.send_any(&MetadataRequest::default())
        .expect("handshake and a first answer through the proxy");
    proxy.knobs.swallow_responses.store(true, SeqCst);
    let t0 = Instant::now();
    let e = c.send_any(&MetadataRequest::default()).unwrap_err();
    let took = t0.elapsed();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.to_string().contains("request_timeout_ms"), "{e}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(10),
        "took {took:?}"
    );
    proxy.knobs.swallow_responses.store(false, SeqCst);
    c.send_any(&MetadataRequest::default())
        .expect("the client reconnects once the broker answers again");
}

#[test]
fn a_cut_connection_fails_pending_requests_and_reconnects() {
    let proxy = Proxy::start(&bootstrap());
    let c = Client::new(config_for(&proxy.addr())).expect("client");
    c.send_any(&MetadataRequest::default())
        .expect("first request");
    let before = proxy
        .knobs
        .accepted
        .load(std::sync::atomic::Ordering::SeqCst);
    proxy.cut_all();
    // The next request may see the dead socket once (retriable), but the
    // client must reconnect rather than hang or stay broken.
    let mut ok = false;
    for _ in 0..5 {
        match c.send_any(&MetadataRequest::default()) {
            Ok(_) => {
                ok = true;
                break;
            }
            Err(e) => assert!(e.is_retriable(), "{e}"),
        }
    }
    assert!(ok, "never reconnected");
    assert!(
        proxy
            .knobs
            .accepted
            .load(std::sync::atomic::Ordering::SeqCst)
            > before
    );
}
