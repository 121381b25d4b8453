//! `group_protocol=consumer` (KIP-848) against a fake coordinator: Tansu
//! 0.6 does not offer ConsumerGroupHeartbeat, so a small in-process broker
//! built from the crate's own protocol types plays one (127.0.0.1, stops on
//! Drop). It checks the member's side of the protocol: joining with epoch
//! 0, reconciling a smaller target (revoke, then report what it owns),
//! committing with the member epoch, leaving with epoch -1, and leaving
//! then rejoining when the consumer stops polling (`max_poll_interval_ms`).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_blocking::consumer::{Consumer, RebalanceListener, TopicPartition};
use kafka_blocking::protocol::messages::api_versions_response::ApiVersion;
use kafka_blocking::protocol::messages::consumer_group_heartbeat_response::{
    Assignment, TopicPartitions,
};
use kafka_blocking::protocol::messages::fetch_response::PartitionData;
use kafka_blocking::protocol::messages::find_coordinator_response::Coordinator;
use kafka_blocking::protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_blocking::protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_blocking::protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartitions, OffsetFetchResponseTopics,
};
use kafka_blocking::protocol::messages::*;
use kafka_blocking::protocol::{
    ApiKey, Decoder, Message, Request, RequestHeader, ResponseHeader, Uuid,
};
use kafka_blocking::{Bytes, Result};

use crate::faults::{fetch_each, list_offsets_at};

const TOPIC: &str = "kip848-topic";
const TOPIC_ID: Uuid = Uuid([9; 16]);
const NODE: i32 = 1;

/// A commit the coordinator saw: member id, epoch, (partition, offset)s.
type Commit = (String, i32, Vec<(i32, i64)>);

/// What the fake coordinator saw and what it assigns.
#[derive(Default)]
struct Coord {
    member_id: String,
    epoch: i32,
    target: Vec<i32>,
    target_changed: bool,
    /// The ownership the member last reported.
    reported: Option<Vec<i32>>,
    joins: usize,
    left_with: Option<i32>,
    commits: Vec<Commit>,
    /// The heartbeat interval the coordinator asks for.
    interval_ms: i32,
}

struct FakeBroker {
    port: u16,
    hb_version: i16,
    coord: Arc<Mutex<Coord>>,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl FakeBroker {
    /// A broker offering ConsumerGroupHeartbeat up to `hb_version`.
    fn start(hb_version: i16) -> FakeBroker {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let coord = Arc::new(Mutex::new(Coord {
            target: vec![0, 1, 2],
            interval_ms: 100,
            ..Coord::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (c, s, cs) = (Arc::clone(&coord), Arc::clone(&stop), Arc::clone(&conns));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                cs.lock().unwrap().push(stream.try_clone().unwrap());
                let c = Arc::clone(&c);
                std::thread::spawn(move || serve(stream, port, hb_version, &c));
            }
        });
        FakeBroker {
            port,
            hb_version,
            coord,
            stop,
            conns,
        }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for FakeBroker {
    fn drop(&mut self) {
        self.stop.store(true, SeqCst);
        for s in self.conns.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(mut s: TcpStream, port: u16, hb_version: i16, coord: &Mutex<Coord>) {
    loop {
        let mut len = [0u8; 4];
        if s.read_exact(&mut len).is_err() {
            return;
        }
        let mut body = vec![0u8; i32::from_be_bytes(len).max(0) as usize];
        if s.read_exact(&mut body).is_err() {
            return;
        }
        let body = Bytes::from(body);
        let key = i16::from_be_bytes([body[0], body[1]]);
        let version = i16::from_be_bytes([body[2], body[3]]);
        let answer = match ApiKey(key) {
            ApiKey::API_VERSIONS => {
                answer::<ApiVersionsRequest>(&body, version, |_| api_versions(hb_version))
            }
            ApiKey::METADATA => answer::<MetadataRequest>(&body, version, |_| metadata(port)),
            ApiKey::FIND_COORDINATOR => {
                answer::<FindCoordinatorRequest>(&body, version, |r| FindCoordinatorResponse {
                    coordinators: r
                        .coordinator_keys
                        .iter()
                        .map(|k| Coordinator {
                            key: k.clone(),
                            node_id: NODE,
                            host: "127.0.0.1".into(),
                            port: i32::from(port),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })
            }
            ApiKey::CONSUMER_GROUP_HEARTBEAT => {
                answer::<ConsumerGroupHeartbeatRequest>(&body, version, |r| {
                    heartbeat(coord, version, r)
                })
            }
            ApiKey::OFFSET_FETCH => {
                answer::<OffsetFetchRequest>(&body, version, |r| OffsetFetchResponse {
                    groups: r
                        .groups
                        .iter()
                        .map(|g| OffsetFetchResponseGroup {
                            group_id: g.group_id.clone(),
                            topics: g
                                .topics
                                .iter()
                                .flatten()
                                .map(|t| OffsetFetchResponseTopics {
                                    name: t.name.clone(),
                                    partitions: t
                                        .partition_indexes
                                        .iter()
                                        .map(|p| OffsetFetchResponsePartitions {
                                            partition_index: *p,
                                            committed_offset: -1,
                                            ..Default::default()
                                        })
                                        .collect(),
                                    ..Default::default()
                                })
                                .collect(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })
            }
            ApiKey::OFFSET_COMMIT => answer::<OffsetCommitRequest>(&body, version, |r| {
                let offsets = r
                    .topics
                    .iter()
                    .flat_map(|t| {
                        t.partitions
                            .iter()
                            .map(|p| (p.partition_index, p.committed_offset))
                    })
                    .collect();
                coord.lock().unwrap().commits.push((
                    r.member_id.clone(),
                    r.generation_id_or_member_epoch,
                    offsets,
                ));
                OffsetCommitResponse {
                    topics: r
                        .topics
                        .iter()
                        .map(|t| OffsetCommitResponseTopic {
                            name: t.name.clone(),
                            partitions: t
                                .partitions
                                .iter()
                                .map(|p| OffsetCommitResponsePartition {
                                    partition_index: p.partition_index,
                                    ..Default::default()
                                })
                                .collect(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }
            }),
            ApiKey::LIST_OFFSETS => {
                answer::<ListOffsetsRequest>(&body, version, |r| list_offsets_at(r, 0))
            }
            ApiKey::FETCH => answer::<FetchRequest>(&body, version, |r| {
                std::thread::sleep(Duration::from_millis(r.max_wait_ms.clamp(0, 50) as u64));
                fetch_each(r, |p| PartitionData {
                    partition_index: p.partition,
                    high_watermark: 0,
                    records: Some(Bytes::new()),
                    ..Default::default()
                })
            }),
            _ => return,
        };
        let Ok(answer) = answer else { return };
        let mut frame = (answer.len() as i32).to_be_bytes().to_vec();
        frame.extend(answer);
        if s.write_all(&frame).is_err() {
            return;
        }
    }
}

/// Decodes a request of type `R` and encodes `f`'s answer with its header.
fn answer<R: Request>(
    body: &Bytes,
    version: i16,
    f: impl FnOnce(R) -> R::Response,
) -> Result<Vec<u8>> {
    let mut d = Decoder::new(body);
    let header = RequestHeader::decode(&mut d, R::request_header_version(version))?;
    let request = R::decode(&mut d, version)?;
    let mut out = Vec::new();
    ResponseHeader {
        correlation_id: header.correlation_id,
        ..Default::default()
    }
    .encode(&mut out, R::response_header_version(version))?;
    f(request).encode(&mut out, version)?;
    Ok(out)
}

fn api_versions(hb_version: i16) -> ApiVersionsResponse {
    let v = |k: ApiKey, max: i16| ApiVersion {
        api_key: k.0,
        min_version: 0,
        max_version: max,
        ..Default::default()
    };
    ApiVersionsResponse {
        api_keys: vec![
            v(ApiKey::FETCH, 12),
            v(ApiKey::LIST_OFFSETS, 7),
            v(ApiKey::METADATA, 12),
            v(ApiKey::OFFSET_COMMIT, 9),
            v(ApiKey::OFFSET_FETCH, 9),
            v(ApiKey::FIND_COORDINATOR, 4),
            v(ApiKey::API_VERSIONS, 3),
            v(ApiKey::CONSUMER_GROUP_HEARTBEAT, hb_version),
        ],
        ..Default::default()
    }
}

fn metadata(port: u16) -> MetadataResponse {
    MetadataResponse {
        brokers: vec![MetadataResponseBroker {
            node_id: NODE,
            host: "127.0.0.1".into(),
            port: i32::from(port),
            ..Default::default()
        }],
        controller_id: NODE,
        topics: vec![MetadataResponseTopic {
            name: Some(TOPIC.into()),
            topic_id: TOPIC_ID,
            partitions: (0..3)
                .map(|p| MetadataResponsePartition {
                    partition_index: p,
                    leader_id: NODE,
                    leader_epoch: 0,
                    replica_nodes: vec![NODE],
                    isr_nodes: vec![NODE],
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn heartbeat(
    coord: &Mutex<Coord>,
    version: i16,
    r: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    let mut c = coord.lock().unwrap();
    if let Some(tps) = &r.topic_partitions {
        let mut owned: Vec<i32> = tps
            .iter()
            .filter(|t| t.topic_id == TOPIC_ID)
            .flat_map(|t| t.partitions.clone())
            .collect();
        owned.sort();
        c.reported = Some(owned);
    }
    let mut resp = ConsumerGroupHeartbeatResponse {
        heartbeat_interval_ms: c.interval_ms,
        ..Default::default()
    };
    if r.member_epoch < 0 {
        c.left_with = Some(r.member_epoch);
        resp.member_id = Some(r.member_id);
        resp.member_epoch = r.member_epoch;
        return resp;
    }
    if r.member_epoch == 0 {
        assert!(
            r.subscribed_topic_names.is_some(),
            "a join names the topics"
        );
        c.joins += 1;
        // v1 (KIP-1082): the member brings its own id.
        assert_eq!(
            r.member_id.is_empty(),
            version == 0,
            "member id on join, v{version}"
        );
        c.member_id = if r.member_id.is_empty() {
            "member-from-coordinator".into()
        } else {
            r.member_id.clone()
        };
        c.epoch = 1;
        c.target_changed = true;
    } else if r.member_epoch != c.epoch {
        resp.error_code = kafka_blocking::protocol::ErrorCode::FENCED_MEMBER_EPOCH.0;
        return resp;
    } else if c.target_changed {
        c.epoch += 1;
    }
    resp.member_id = Some(c.member_id.clone());
    resp.member_epoch = c.epoch;
    if std::mem::take(&mut c.target_changed) {
        resp.assignment = Some(Assignment {
            topic_partitions: vec![TopicPartitions {
                topic_id: TOPIC_ID,
                partitions: c.target.clone(),
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    resp
}

/// A listener call: `R`evoked, `A`ssigned or `L`ost, and the partitions.
type Call = (char, Vec<i32>);

#[derive(Clone, Default)]
struct Calls(Arc<Mutex<Vec<Call>>>);

impl RebalanceListener for Calls {
    fn on_partitions_revoked(&mut self, _: &mut Consumer, p: &[TopicPartition]) {
        self.0
            .lock()
            .unwrap()
            .push(('R', p.iter().map(|tp| tp.partition).collect()));
    }
    fn on_partitions_assigned(&mut self, _: &mut Consumer, p: &[TopicPartition]) {
        self.0
            .lock()
            .unwrap()
            .push(('A', p.iter().map(|tp| tp.partition).collect()));
    }
    fn on_partitions_lost(&mut self, _: &mut Consumer, p: &[TopicPartition]) {
        self.0
            .lock()
            .unwrap()
            .push(('L', p.iter().map(|tp| tp.partition).collect()));
    }
}

fn wait_for(what: &str, c: &mut Consumer, mut f: impl FnMut(&Consumer) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f(c) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        c.poll(Duration::from_millis(20)).expect("poll");
    }
}

#[test]
fn kip_848_member_joins_reconciles_commits_and_leaves() {
    for version in [0, 1] {
        run_member(FakeBroker::start(version));
    }
}

fn run_member(broker: FakeBroker) {
    println!("ConsumerGroupHeartbeat v{}", broker.hb_version);
    let mut c = Consumer::builder()
        .bootstrap_servers(broker.addr())
        .group_id("kip848-group")
        .group_protocol("consumer")
        .enable_auto_commit(false)
        .auto_offset_reset("earliest")
        .build()
        .expect("consumer");
    let calls = Calls::default();
    c.set_rebalance_listener(calls.clone());
    c.subscribe([TOPIC]).expect("subscribe");

    wait_for("3 partitions from the coordinator", &mut c, |c| {
        c.assignment().len() == 3
    });
    let coord = Arc::clone(&broker.coord);
    wait_for("the member reporting 3 partitions", &mut c, |_| {
        coord.lock().unwrap().reported.as_deref() == Some(&[0, 1, 2])
    });

    // The coordinator takes partitions 1 and 2 away.
    {
        let mut g = coord.lock().unwrap();
        g.target = vec![0];
        g.target_changed = true;
    }
    wait_for("1 partition left", &mut c, |c| c.assignment().len() == 1);
    wait_for("the member reporting 1 partition", &mut c, |_| {
        coord.lock().unwrap().reported.as_deref() == Some(&[0])
    });
    assert_eq!(
        *calls.0.lock().unwrap(),
        vec![('A', vec![0, 1, 2]), ('R', vec![1, 2]), ('A', vec![])]
    );

    c.commit_offsets([((TOPIC, 0), 7)]).expect("commit");
    let (member_id, epoch) = {
        let g = coord.lock().unwrap();
        (g.member_id.clone(), g.epoch)
    };
    assert_eq!(
        coord.lock().unwrap().commits,
        vec![(member_id, epoch, vec![(0, 7)])]
    );
    c.close(false).expect("close");
    let g = coord.lock().unwrap();
    assert_eq!(
        g.left_with,
        Some(-1),
        "a dynamic member leaves with epoch -1"
    );
    assert_eq!(g.joins, 1);
}

#[test]
fn kip_848_new_ownership_is_reported_as_soon_as_it_is_taken() {
    let broker = FakeBroker::start(1);
    // A long interval: a report that waits for the next regular heartbeat
    // comes seconds late.
    broker.coord.lock().unwrap().interval_ms = 3_000;
    let mut c = Consumer::builder()
        .bootstrap_servers(broker.addr())
        .group_id("kip848-report-group")
        .group_protocol("consumer")
        .enable_auto_commit(false)
        .auto_offset_reset("earliest")
        .build()
        .expect("consumer");
    c.subscribe([TOPIC]).expect("subscribe");
    wait_for("3 partitions from the coordinator", &mut c, |c| {
        c.assignment().len() == 3
    });
    let taken = Instant::now();
    let coord = Arc::clone(&broker.coord);
    wait_for("the member reporting 3 partitions", &mut c, |_| {
        coord.lock().unwrap().reported.as_deref() == Some(&[0, 1, 2])
    });
    assert!(
        taken.elapsed() < Duration::from_millis(1_500),
        "reported {:?} after taking the partitions (heartbeat interval 3 s)",
        taken.elapsed()
    );
    c.close(false).expect("close");
}

/// KIP-848 `max_poll_interval_ms`: a member whose consumer stops polling
/// leaves (epoch -1) so its partitions can move, as the Java client does;
/// the next poll reports them lost and joins again (epoch 0).
#[test]
fn kip_848_a_member_that_stops_polling_leaves_and_rejoins() {
    let broker = FakeBroker::start(1);
    let mut c = Consumer::builder()
        .bootstrap_servers(broker.addr())
        .group_id("kip848-stall-group")
        .group_protocol("consumer")
        .enable_auto_commit(false)
        .auto_offset_reset("earliest")
        .max_poll_interval_ms(1_000)
        .build()
        .expect("consumer");
    let calls = Calls::default();
    c.set_rebalance_listener(calls.clone());
    c.subscribe([TOPIC]).expect("subscribe");
    let coord = Arc::clone(&broker.coord);
    wait_for("3 partitions, reported", &mut c, |c| {
        c.assignment().len() == 3 && coord.lock().unwrap().reported.as_deref() == Some(&[0, 1, 2])
    });
    assert_eq!(coord.lock().unwrap().left_with, None);

    // The consumer stalls (no poll): the member leaves on its own.
    let deadline = Instant::now() + Duration::from_secs(20);
    while coord.lock().unwrap().left_with.is_none() {
        assert!(
            Instant::now() < deadline,
            "no leave while the consumer stalled"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(coord.lock().unwrap().left_with, Some(-1));
    assert_eq!(coord.lock().unwrap().joins, 1);

    // Polling again: the partitions were lost; the member joins afresh.
    wait_for("a second join with 3 partitions", &mut c, |c| {
        coord.lock().unwrap().joins == 2 && c.assignment().len() == 3
    });
    assert_eq!(
        *calls.0.lock().unwrap(),
        vec![
            ('A', vec![0, 1, 2]),
            ('L', vec![0, 1, 2]),
            ('A', vec![0, 1, 2])
        ]
    );
    c.close(false).expect("close");
}
