//! The foundation against a real broker: handshake, metadata, topic admin
//! and produce/fetch through raw protocol requests, and failure handling.

use std::time::{Duration, Instant};

use kafka_blocking::protocol::messages::{DeleteTopicsRequest, MetadataRequest};
use kafka_blocking::protocol::{ApiKey, ErrorCode};
use kafka_blocking::{Client, ClientConfig, ErrorKind};

use crate::faults::{closed_port, fake_metadata, FakeCluster, FakeServer, Proxy};
use crate::harness::{bootstrap, client, create_topic, produce_batch, unique_topic};

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

/// Produces one batch per codec with a raw Produce request and reads it back
/// with a raw Fetch, checking every record.
#[test]
fn produce_and_fetch_one_batch_per_codec_with_raw_requests() {
    use kafka_blocking::protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_blocking::protocol::messages::FetchRequest;
    use kafka_blocking::records::{
        BatchOptions, Compression, ReadOptions, RecordBatchBuilder, RecordBatches,
    };

    let c = client();
    let topic = unique_topic("raw-codec");
    create_topic(&c, &topic, 1);
    let md = c.metadata();
    let t = md.topic(&topic).expect("topic");
    let leader = t.partitions[0].leader;
    let topic_id = t.topic_id;

    let codecs = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    let per_batch = 50usize;
    let mut expected = Vec::new();
    for (n, codec) in codecs.iter().enumerate() {
        let mut b = RecordBatchBuilder::new();
        for i in 0..per_batch {
            let key = format!("{codec:?}-{i}");
            let value = format!("value {i} of batch {n}: {}", "x".repeat(i));
            b.append(
                1_700_000_000_000 + i as i64,
                Some(key.as_bytes()),
                Some(value.as_bytes()),
                [("codec", Some(codec.name().as_bytes()))],
            )
            .expect("append");
            expected.push((key, value, codec.name()));
        }
        let batch = b
            .build(&BatchOptions {
                compression: *codec,
                ..BatchOptions::default()
            })
            .expect("build");
        let p = produce_batch(&c, leader, &topic, batch);
        assert_eq!(ErrorCode(p.error_code), ErrorCode::NONE, "{codec:?}");
        assert_eq!(p.base_offset, (n * per_batch) as i64, "{codec:?}");
    }

    // Fetch everything back (several fetches if the broker returns less).
    let mut got: Vec<(i64, String, String, String)> = Vec::new();
    let mut offset = 0i64;
    for _ in 0..50 {
        if got.len() >= expected.len() {
            break;
        }
        let response = c
            .send_to(
                leader,
                &FetchRequest {
                    max_wait_ms: 100,
                    min_bytes: 1,
                    max_bytes: 1 << 20,
                    topics: vec![FetchTopic {
                        topic: topic.clone(),
                        topic_id,
                        partitions: vec![FetchPartition {
                            partition: 0,
                            fetch_offset: offset,
                            partition_max_bytes: 1 << 20,
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            )
            .expect("fetch");
        let pd = &response.responses[0].partitions[0];
        assert_eq!(ErrorCode(pd.error_code), ErrorCode::NONE);
        let records = pd.records.clone().unwrap_or_default();
        for batch in RecordBatches::new(records, ReadOptions::default()) {
            let batch = batch.expect("batch");
            for r in batch.records() {
                let r = r.expect("record");
                if r.offset < offset {
                    continue;
                }
                let header = r
                    .headers
                    .iter()
                    .next()
                    .map(|(k, v)| (k.to_owned(), v.map(|v| v.to_vec())));
                let codec = match header {
                    Some((k, Some(v))) if k == "codec" => String::from_utf8(v).expect("utf8"),
                    other => panic!("unexpected header {other:?}"),
                };
                got.push((
                    r.offset,
                    String::from_utf8(r.key.expect("key").to_vec()).expect("utf8"),
                    String::from_utf8(r.value.expect("value").to_vec()).expect("utf8"),
                    codec,
                ));
                offset = r.offset + 1;
            }
        }
    }
    assert_eq!(got.len(), expected.len());
    for (i, ((o, k, v, codec), (ek, ev, ecodec))) in got.iter().zip(&expected).enumerate() {
        assert_eq!(*o, i as i64);
        assert_eq!((k, v, codec.as_str()), (ek, ev, *ecodec));
    }
}

#[test]
fn idle_connections_close_and_reopen_on_demand() {
    use std::sync::atomic::Ordering::SeqCst;
    let proxy = Proxy::start(&bootstrap());
    let c = Client::new(
        ClientConfig::builder()
            .bootstrap_servers(proxy.addr())
            .connections_max_idle_ms(300)
            .build()
            .expect("config"),
    )
    .expect("client");
    c.send_any(&MetadataRequest::default()).expect("first");
    assert_eq!(proxy.knobs.accepted.load(SeqCst), 1);
    c.send_any(&MetadataRequest::default())
        .expect("second, same connection");
    assert_eq!(proxy.knobs.accepted.load(SeqCst), 1);
    // Idle for well over connections_max_idle_ms (the writer checks twice a second).
    std::thread::sleep(Duration::from_millis(1_500));
    c.send_any(&MetadataRequest::default())
        .expect("after idle close");
    assert_eq!(
        proxy.knobs.accepted.load(SeqCst),
        2,
        "the idle connection should have been closed and a new one opened"
    );
}

/// When a connection dies, every request pending on it fails at once with
/// a retriable error, long before request_timeout_ms.
#[test]
fn a_dying_connection_fails_every_pending_request_at_once() {
    use std::sync::atomic::Ordering::SeqCst;
    let proxy = Proxy::start(&bootstrap());
    let c = Client::new(
        ClientConfig::builder()
            .bootstrap_servers(proxy.addr())
            .request_timeout_ms(60_000)
            .build()
            .expect("config"),
    )
    .expect("client");
    c.send_any(&MetadataRequest::default()).expect("warm up");
    proxy.knobs.swallow_responses.store(true, SeqCst);
    let t0 = Instant::now();
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| c.send_any(&MetadataRequest::default())))
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        proxy.cut_all();
        handles
            .into_iter()
            .map(|h| h.join().expect("join"))
            .collect()
    });
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t0.elapsed()
    );
    for r in results {
        let e = r.expect_err("the connection died under it");
        assert!(e.is_retriable(), "{e}");
        assert!(
            matches!(e.kind(), ErrorKind::Disconnected | ErrorKind::Io),
            "{e:?}"
        );
    }
}

/// A fake broker that hangs up on ApiVersions (as brokers before 0.10 and
/// some proxies do) and answers Metadata, recording the versions asked.
fn refuses_api_versions() -> (FakeCluster, std::sync::Arc<std::sync::Mutex<Vec<i16>>>) {
    let seen: std::sync::Arc<std::sync::Mutex<Vec<i16>>> = Default::default();
    let s = std::sync::Arc::clone(&seen);
    let cluster = FakeCluster::start(1, move |req| match req.key {
        ApiKey::API_VERSIONS => Some(Vec::new()),
        ApiKey::METADATA => {
            s.lock().unwrap().push(req.version);
            fake_metadata(req, &[])
        }
        _ => None,
    });
    (cluster, seen)
}

/// With `api_version` set, a broker that refuses ApiVersions is spoken to
/// in the versions of that Kafka release (as kafka-python does), not in
/// version 0 of everything.
#[test]
fn a_broker_refusing_api_versions_gets_the_versions_of_api_version() {
    // (api_version, Metadata, Produce, Fetch as that release has them)
    for (release, kafka, metadata, produce, fetch) in [
        ("0.11", (0, 11, 0), 4, 3, 5),
        ("1.0.0", (1, 0, 0), 5, 5, 6),
        ("2.0", (2, 0, 0), 6, 6, 8),
        ("2.8", (2, 8, 0), 11, 9, 12),
    ] {
        let (cluster, seen) = refuses_api_versions();
        let config = ClientConfig::builder()
            .bootstrap_servers(cluster.bootstrap())
            .api_version(release)
            .request_timeout_ms(5_000)
            .build()
            .expect("config");
        let c = Client::new(config).expect("client");
        let info = c.check_version().expect("check_version");
        assert_eq!(info.kafka_version, kafka, "api_version {release}");
        let v = &info.api_versions;
        assert_eq!(
            (v.max_version(ApiKey::PRODUCE), v.max_version(ApiKey::FETCH)),
            (Some(produce), Some(fetch)),
            "api_version {release}"
        );
        assert_eq!(
            seen.lock().unwrap().first(),
            Some(&metadata),
            "the Metadata version for api_version {release}"
        );
    }
}

/// Without `api_version`, a broker that hangs up on ApiVersions is a
/// connection failure, not a guess.
#[test]
fn a_broker_refusing_api_versions_without_api_version_is_an_error() {
    let (cluster, seen) = refuses_api_versions();
    let c = Client::new(config_for(&cluster.bootstrap())).expect("client");
    let e = c.send_any(&MetadataRequest::default()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Disconnected, "{e}");
    assert!(seen.lock().unwrap().is_empty());
}

/// The writer keeps at most `max_in_flight_requests_per_connection`
/// requests unanswered on a connection, and sends the ones waiting behind
/// them as answers come back (the reader tells the writer only when it was
/// at that limit, so this is the path that must not stall).
#[test]
fn a_connection_keeps_at_most_max_in_flight_requests_on_the_wire() {
    use kafka_blocking::protocol::messages::metadata_response::MetadataResponseBroker;
    use kafka_blocking::protocol::messages::{
        ApiVersionsRequest, ApiVersionsResponse, MetadataResponse,
    };
    use kafka_blocking::protocol::{read_frame, Decoder, Request, RequestHeader, ResponseHeader};
    use kafka_blocking::Bytes;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use std::sync::{Arc, Mutex};

    fn answer<R: Request>(frame: &Bytes, version: i16, response: &R::Response) -> Vec<u8> {
        use kafka_blocking::protocol::Message;
        let mut d = Decoder::new(frame);
        let header = RequestHeader::decode(&mut d, R::request_header_version(version))
            .expect("request header");
        let mut out = vec![0; 4];
        ResponseHeader {
            correlation_id: header.correlation_id,
            ..Default::default()
        }
        .encode(&mut out, R::response_header_version(version))
        .expect("header");
        response.encode(&mut out, version).expect("response");
        let len = (out.len() - 4) as i32;
        out[..4].copy_from_slice(&len.to_be_bytes());
        out
    }

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let metadata = MetadataResponse {
        brokers: vec![MetadataResponseBroker {
            node_id: 1,
            host: "127.0.0.1".into(),
            port: i32::from(port),
            ..Default::default()
        }],
        controller_id: 1,
        ..Default::default()
    };
    let hold = Arc::new(AtomicBool::new(false));
    // Held Metadata requests: (connection, its number, frame, version).
    type Held = Vec<(TcpStream, usize, Bytes, i16)>;
    let held: Arc<Mutex<Held>> = Arc::default();
    let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    {
        let (hold, held, conns, metadata) =
            (hold.clone(), held.clone(), conns.clone(), metadata.clone());
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { return };
                let Ok(clone) = stream.try_clone() else {
                    return;
                };
                conns.lock().unwrap().push(clone);
                let (hold, held, metadata) = (hold.clone(), held.clone(), metadata.clone());
                std::thread::spawn(move || {
                    while let Ok(frame) = read_frame(&mut stream, 1 << 20) {
                        if frame.len() < 8 {
                            return;
                        }
                        let key = i16::from_be_bytes([frame[0], frame[1]]);
                        let version = i16::from_be_bytes([frame[2], frame[3]]);
                        let frame = Bytes::from(frame);
                        let reply = if key == ApiVersionsRequest::API_KEY.0 {
                            let mut r = ApiVersionsResponse::default();
                            for (api_key, max_version) in [(18, 3), (3, 12)] {
                                r.api_keys.push(
                                    kafka_blocking::protocol::messages::api_versions_response::ApiVersion {
                                        api_key,
                                        min_version: 0,
                                        max_version,
                                        ..Default::default()
                                    },
                                );
                            }
                            answer::<ApiVersionsRequest>(&frame, version.min(3), &r)
                        } else if hold.load(SeqCst) {
                            let Ok(s) = stream.try_clone() else { return };
                            held.lock().unwrap().push((s, n, frame, version));
                            continue;
                        } else {
                            answer::<MetadataRequest>(&frame, version, &metadata)
                        };
                        if stream.write_all(&reply).is_err() {
                            return;
                        }
                    }
                });
            }
        });
    }
    let c = Arc::new(
        Client::new(
            ClientConfig::builder()
                .bootstrap_servers(format!("127.0.0.1:{port}"))
                .max_in_flight_requests_per_connection(2)
                .request_timeout_ms(20_000)
                .build()
                .expect("config"),
        )
        .expect("client"),
    );
    // All on node 1's connection.
    c.send_to(1, &MetadataRequest::default()).expect("warm up");
    hold.store(true, SeqCst);
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let c = Arc::clone(&c);
            std::thread::spawn(move || c.send_to(1, &MetadataRequest::default()))
        })
        .collect();
    let per_conn_max = |held: &Held| {
        let mut count = std::collections::HashMap::new();
        for (_, n, _, _) in held {
            *count.entry(*n).or_insert(0usize) += 1;
        }
        count.values().copied().max().unwrap_or(0)
    };
    let mut answered = 0;
    let started = Instant::now();
    while answered < 4 && started.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(200));
        let mut h = held.lock().unwrap();
        assert!(
            per_conn_max(&h) <= 2,
            "more than max_in_flight requests unanswered on one connection"
        );
        // Answer what is held, in order; the rest may then go out.
        for (mut s, _, frame, version) in h.drain(..) {
            let reply = answer::<MetadataRequest>(&frame, version, &metadata);
            s.write_all(&reply).expect("answer");
            answered += 1;
        }
    }
    for call in calls {
        call.join()
            .expect("thread")
            .expect("every call is answered");
    }
    assert_eq!(answered, 4);
    for s in conns.lock().unwrap().drain(..) {
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
}
