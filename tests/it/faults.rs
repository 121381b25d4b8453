//! Fault injection: a TCP proxy in front of the real broker that can swallow,
//! delay, corrupt or cut traffic, and fake servers that never answer or
//! answer garbage. Everything binds 127.0.0.1 and stops on Drop.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use kafka_blocking::testkit::LocalBroker;
use kafka_blocking::{Client, ClientConfig};

/// A Tansu of its own on 127.0.0.1 that advertises a [`Proxy`]'s address,
/// so that every connection a client makes (metadata, produce, offsets,
/// fetches) goes through the proxy. Started in both modes: these tests
/// need only the client side, and an external broker's advertised address
/// cannot be proxied. Both stop on Drop (the proxy first).
pub struct ProxiedBroker {
    pub proxy: Proxy,
    pub broker: LocalBroker,
}

impl ProxiedBroker {
    pub fn start() -> ProxiedBroker {
        let proxy = Proxy::bind();
        let broker = LocalBroker::start_advertising(&proxy.addr()).expect("a local tansu");
        proxy.set_upstream(broker.bootstrap_servers());
        ProxiedBroker { proxy, broker }
    }

    /// The proxy's address.
    pub fn bootstrap(&self) -> String {
        self.proxy.addr()
    }

    /// A raw client that connects through the proxy.
    pub fn client(&self) -> Client {
        Client::new(
            ClientConfig::builder()
                .bootstrap_servers(self.bootstrap())
                .build()
                .expect("config"),
        )
        .expect("client")
    }
}

/// Knobs shared by every connection of a [`Proxy`].
#[derive(Default)]
pub struct Knobs {
    /// Drop broker→client bytes instead of forwarding them (a stuck broker).
    pub swallow_responses: AtomicBool,
    /// Close each connection once this many broker→client bytes passed
    /// (0 = never).
    pub cut_after_response_bytes: AtomicU64,
    /// Sleep this many ms before forwarding each broker→client chunk.
    pub response_delay_ms: AtomicU64,
    /// XOR this byte into broker→client byte number `corrupt_at` of each
    /// connection (0 = off); counts from 1.
    pub corrupt_at: AtomicU64,
    /// Connections accepted so far.
    pub accepted: AtomicUsize,
}

/// A proxy from 127.0.0.1:<free port> to `upstream`.
pub struct Proxy {
    addr: SocketAddr,
    upstream: Arc<Mutex<Option<SocketAddr>>>,
    pub knobs: Arc<Knobs>,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    accept: Option<JoinHandle<()>>,
}

impl Proxy {
    pub fn start(upstream: &str) -> Proxy {
        let p = Proxy::bind();
        p.set_upstream(upstream);
        p
    }

    /// A proxy that listens now and learns where to forward later (so a
    /// broker can be started advertising the proxy's address).
    pub fn bind() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let upstream_slot: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let upstream_for_accept = Arc::clone(&upstream_slot);
        let knobs = Arc::new(Knobs::default());
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (k, s, c) = (Arc::clone(&knobs), Arc::clone(&stop), Arc::clone(&conns));
        let accept = std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Some(upstream) = *upstream_for_accept.lock().unwrap() else {
                    continue;
                };
                let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(5))
                else {
                    continue;
                };
                k.accepted.fetch_add(1, Ordering::SeqCst);
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                {
                    let mut all = c.lock().unwrap();
                    all.push(client.try_clone().unwrap());
                    all.push(server.try_clone().unwrap());
                }
                let (c1, s1) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || pump_requests(c1, s1));
                let k2 = Arc::clone(&k);
                std::thread::spawn(move || pump_responses(server, client, &k2));
            }
        });
        Proxy {
            addr,
            upstream: upstream_slot,
            knobs,
            stop,
            conns,
            accept: Some(accept),
        }
    }

    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    pub fn set_upstream(&self, upstream: &str) {
        *self.upstream.lock().unwrap() = Some(upstream.parse().expect("upstream address"));
    }

    /// Closes every connection made so far (clients see a reset/EOF).
    pub fn cut_all(&self) {
        for s in self.conns.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.cut_all();
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn pump_requests(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

fn pump_responses(mut from: TcpStream, mut to: TcpStream, k: &Knobs) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut passed: u64 = 0;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let delay = k.response_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
        if k.swallow_responses.load(Ordering::SeqCst) {
            continue;
        }
        let corrupt = k.corrupt_at.load(Ordering::SeqCst);
        if corrupt > passed && corrupt <= passed + n as u64 {
            buf[(corrupt - passed - 1) as usize] ^= 0x5a;
        }
        let cut = k.cut_after_response_bytes.load(Ordering::SeqCst);
        if cut > 0 && passed + n as u64 >= cut {
            let keep = (cut - passed) as usize;
            let _ = to.write_all(&buf[..keep.min(n)]);
            break;
        }
        passed += n as u64;
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

/// A server that accepts connections and answers every read with `reply`
/// (or nothing, when `reply` is empty). Stops on Drop.
pub struct FakeServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    accept: Option<JoinHandle<()>>,
}

impl FakeServer {
    pub fn start(reply: Vec<u8>) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake server");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (s, c) = (Arc::clone(&stop), Arc::clone(&conns));
        let accept = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                c.lock().unwrap().push(stream.try_clone().unwrap());
                let reply = reply.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = stream.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        if !reply.is_empty() && stream.write_all(&reply).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        FakeServer {
            addr,
            stop,
            conns,
            accept: Some(accept),
        }
    }

    pub fn addr(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for s in self.conns.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// An address on which nothing listens (connections are refused).
pub fn closed_port() -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let a = l.local_addr().expect("addr");
    drop(l);
    a.to_string()
}

/// One request to a [`FakeCluster`] node.
pub struct FakeReq<'a> {
    /// The node (1-based) the request came to.
    pub node: i32,
    pub key: kafka_blocking::protocol::ApiKey,
    pub version: i16,
    /// Every node's port, index 0 for node 1.
    pub ports: &'a [u16],
    body: &'a kafka_blocking::Bytes,
}

impl FakeReq<'_> {
    /// Decodes the request as `R` and encodes `f`'s answer with its header.
    pub fn answer<R: kafka_blocking::protocol::Request>(
        &self,
        f: impl FnOnce(R) -> R::Response,
    ) -> Option<Vec<u8>> {
        use kafka_blocking::protocol::{Decoder, Message, RequestHeader, ResponseHeader};
        let mut d = Decoder::new(self.body);
        let header = RequestHeader::decode(&mut d, R::request_header_version(self.version)).ok()?;
        let request = R::decode(&mut d, self.version).ok()?;
        let mut out = Vec::new();
        ResponseHeader {
            correlation_id: header.correlation_id,
            ..Default::default()
        }
        .encode(&mut out, R::response_header_version(self.version))
        .ok()?;
        f(request).encode(&mut out, self.version).ok()?;
        Some(out)
    }
}

type Handler = dyn Fn(&FakeReq) -> Option<Vec<u8>> + Send + Sync;

/// A cluster of fake brokers (nodes 1..=n on 127.0.0.1) built from the
/// crate's own protocol types: `handler` answers each request (`None`:
/// no answer, the request hangs; an empty answer: the node hangs up). Counts requests; stops on Drop.
pub struct FakeCluster {
    ports: Vec<u16>,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    seen: Arc<Mutex<Vec<(i32, i16)>>>,
}

impl FakeCluster {
    pub fn start(
        nodes: usize,
        handler: impl Fn(&FakeReq) -> Option<Vec<u8>> + Send + Sync + 'static,
    ) -> FakeCluster {
        let handler: Arc<Handler> = Arc::new(handler);
        let listeners: Vec<TcpListener> = (0..nodes)
            .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind fake broker"))
            .collect();
        let ports: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().expect("addr").port())
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let seen: Arc<Mutex<Vec<(i32, i16)>>> = Arc::default();
        for (i, listener) in listeners.into_iter().enumerate() {
            let node = i as i32 + 1;
            let (stop, conns, seen, handler, ports) = (
                Arc::clone(&stop),
                Arc::clone(&conns),
                Arc::clone(&seen),
                Arc::clone(&handler),
                ports.clone(),
            );
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    conns.lock().unwrap().push(stream.try_clone().unwrap());
                    let (seen, handler, ports) =
                        (Arc::clone(&seen), Arc::clone(&handler), ports.clone());
                    std::thread::spawn(move || serve_fake(stream, node, &ports, &*handler, &seen));
                }
            });
        }
        FakeCluster {
            ports,
            stop,
            conns,
            seen,
        }
    }

    /// Node 1's address.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.ports[0])
    }

    /// How many requests with `key` reached `node`.
    pub fn count(&self, node: i32, key: kafka_blocking::protocol::ApiKey) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, k)| *n == node && *k == key.0)
            .count()
    }
}

impl Drop for FakeCluster {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for s in self.conns.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        for p in &self.ports {
            let _ = TcpStream::connect(("127.0.0.1", *p));
        }
    }
}

fn serve_fake(
    mut s: TcpStream,
    node: i32,
    ports: &[u16],
    handler: &Handler,
    seen: &Mutex<Vec<(i32, i16)>>,
) {
    loop {
        let mut len = [0u8; 4];
        if s.read_exact(&mut len).is_err() {
            return;
        }
        let mut body = vec![0u8; i32::from_be_bytes(len).max(0) as usize];
        if body.len() < 4 || s.read_exact(&mut body).is_err() {
            return;
        }
        let key = i16::from_be_bytes([body[0], body[1]]);
        let version = i16::from_be_bytes([body[2], body[3]]);
        seen.lock().unwrap().push((node, key));
        let body = kafka_blocking::Bytes::from(body);
        let req = FakeReq {
            node,
            key: kafka_blocking::protocol::ApiKey(key),
            version,
            ports,
            body: &body,
        };
        let Some(answer) = handler(&req) else {
            continue;
        };
        if answer.is_empty() {
            // Hang up, as a broker that does not know the request (the
            // cluster holds a clone of the socket, so dropping is not enough).
            let _ = s.shutdown(Shutdown::Both);
            return;
        }
        let mut frame = (answer.len() as i32).to_be_bytes().to_vec();
        frame.extend(answer);
        if s.write_all(&frame).is_err() {
            return;
        }
    }
}

/// What a fake broker serving a consumer without a group offers (Fetch v12:
/// topics by name).
pub const CONSUMER_APIS: &[(kafka_blocking::protocol::ApiKey, i16)] = &[
    (kafka_blocking::protocol::ApiKey::FETCH, 12),
    (kafka_blocking::protocol::ApiKey::METADATA, 12),
    (kafka_blocking::protocol::ApiKey::LIST_OFFSETS, 7),
    (kafka_blocking::protocol::ApiKey::API_VERSIONS, 3),
];

/// ApiVersions for a fake: `apis` with their highest version (lowest 0).
pub fn fake_api_versions(
    req: &FakeReq,
    apis: &[(kafka_blocking::protocol::ApiKey, i16)],
) -> Option<Vec<u8>> {
    use kafka_blocking::protocol::messages::api_versions_response::ApiVersion;
    use kafka_blocking::protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
    req.answer::<ApiVersionsRequest>(|_| ApiVersionsResponse {
        api_keys: apis
            .iter()
            .map(|(k, max)| ApiVersion {
                api_key: k.0,
                min_version: 0,
                max_version: *max,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    })
}

/// Metadata for a fake: every node, and `topics` as (name, id, number of
/// partitions, leader node).
pub fn fake_metadata(
    req: &FakeReq,
    topics: &[(&str, kafka_blocking::protocol::Uuid, i32, i32)],
) -> Option<Vec<u8>> {
    fake_metadata_epoch(req, topics, 0)
}

/// [`fake_metadata`] with every partition at leader epoch `leader_epoch`.
pub fn fake_metadata_epoch(
    req: &FakeReq,
    topics: &[(&str, kafka_blocking::protocol::Uuid, i32, i32)],
    leader_epoch: i32,
) -> Option<Vec<u8>> {
    use kafka_blocking::protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_blocking::protocol::messages::{MetadataRequest, MetadataResponse};
    let brokers = req
        .ports
        .iter()
        .enumerate()
        .map(|(i, p)| MetadataResponseBroker {
            node_id: i as i32 + 1,
            host: "127.0.0.1".into(),
            port: i32::from(*p),
            ..Default::default()
        })
        .collect();
    let replicas: Vec<i32> = (1..=req.ports.len() as i32).collect();
    req.answer::<MetadataRequest>(|_| MetadataResponse {
        brokers,
        controller_id: 1,
        topics: topics
            .iter()
            .map(|(name, id, n, leader)| MetadataResponseTopic {
                name: Some((*name).into()),
                topic_id: *id,
                partitions: (0..*n)
                    .map(|p| MetadataResponsePartition {
                        partition_index: p,
                        leader_id: *leader,
                        leader_epoch,
                        replica_nodes: replicas.clone(),
                        isr_nodes: replicas.clone(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    })
}

/// FindCoordinator for a fake: node 1, or `error` when given.
pub fn fake_find_coordinator(req: &FakeReq, error: i16) -> Option<Vec<u8>> {
    use kafka_blocking::protocol::messages::find_coordinator_response::Coordinator;
    use kafka_blocking::protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};
    let port = i32::from(req.ports[0]);
    // v4+ answers per key only; the top-level fields are v0-3 (and
    // encoding a field the version cannot carry is an error).
    let legacy = req.version < 4;
    req.answer::<FindCoordinatorRequest>(|r| FindCoordinatorResponse {
        error_code: if legacy { error } else { 0 },
        node_id: if legacy { 1 } else { 0 },
        host: if legacy {
            "127.0.0.1".into()
        } else {
            String::new()
        },
        port: if legacy { port } else { 0 },
        coordinators: r
            .coordinator_keys
            .iter()
            .map(|k| Coordinator {
                key: k.clone(),
                node_id: 1,
                host: "127.0.0.1".into(),
                port,
                error_code: error,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    })
}

/// `n` records `"v{offset}"` from `base`, as one batch.
pub fn fake_records(base: i64, n: usize) -> kafka_blocking::Bytes {
    use kafka_blocking::records::{BatchOptions, RecordBatchBuilder};
    let mut b = RecordBatchBuilder::new();
    for i in 0..n {
        b.append(
            0,
            None,
            Some(format!("v{}", base + i as i64).as_bytes()),
            [],
        )
        .expect("append");
    }
    b.build(&BatchOptions {
        base_offset: base,
        ..BatchOptions::default()
    })
    .expect("build")
}

/// A ListOffsets answer giving `offset` for every partition asked.
pub fn list_offsets_at(
    r: kafka_blocking::protocol::messages::ListOffsetsRequest,
    offset: i64,
) -> kafka_blocking::protocol::messages::ListOffsetsResponse {
    use kafka_blocking::protocol::messages::list_offsets_response::{
        ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
    };
    kafka_blocking::protocol::messages::ListOffsetsResponse {
        topics: r
            .topics
            .iter()
            .map(|t| ListOffsetsTopicResponse {
                name: t.name.clone(),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| ListOffsetsPartitionResponse {
                        partition_index: p.partition_index,
                        offset,
                        timestamp: -1,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// A Fetch answer with `partition(p)` for every partition asked.
pub fn fetch_each(
    r: kafka_blocking::protocol::messages::FetchRequest,
    partition: impl Fn(
        &kafka_blocking::protocol::messages::fetch_request::FetchPartition,
    ) -> kafka_blocking::protocol::messages::fetch_response::PartitionData,
) -> kafka_blocking::protocol::messages::FetchResponse {
    use kafka_blocking::protocol::messages::fetch_response::FetchableTopicResponse;
    kafka_blocking::protocol::messages::FetchResponse {
        responses: r
            .topics
            .iter()
            .map(|t| FetchableTopicResponse {
                topic: t.topic.clone(),
                partitions: t.partitions.iter().map(&partition).collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}
