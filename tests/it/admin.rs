//! AdminClient against the real broker. Operations Tansu 0.6 does not
//! implement (or implements loosely) are tests of their own, compiled as
//! ignored (with the reason) unless `KAFKA_BOOTSTRAP_SERVERS` points at real
//! Kafka.

use std::time::{Duration, Instant};

use kafka_blocking::admin::{
    AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient, AlterConfigOp,
    ConfigResource, ConfigSource, GroupState, NewPartitions, NewTopic, OffsetAndMetadata,
    PatternType, ResourceType, TopicPartition,
};
use kafka_blocking::protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_blocking::protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_blocking::protocol::messages::{
    consumer_protocol_assignment, ConsumerProtocolAssignment, ConsumerProtocolSubscription,
    JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest,
};
use kafka_blocking::protocol::{ErrorCode, Message};
use kafka_blocking::{Bytes, Client, ErrorKind};

use crate::faults::closed_port;
use crate::harness::{bootstrap, client, unique_topic};

fn admin() -> AdminClient {
    AdminClient::builder()
        .bootstrap_servers(bootstrap())
        .client_id("it-admin")
        .request_timeout_ms(15_000)
        .default_api_timeout_ms(10_000)
        .build()
        .expect("admin client")
}

/// Creates a topic named after `prefix` (replication factor 1).
fn new_topic(a: &AdminClient, prefix: &str, partitions: i32) -> String {
    let t = unique_topic(prefix);
    a.create_topics([NewTopic::new(&t, partitions, 1)], false, None)
        .unwrap()[0]
        .1
        .as_ref()
        .expect("created");
    t
}

fn code(r: &kafka_blocking::Result<impl std::fmt::Debug>) -> Option<ErrorCode> {
    r.as_ref().err().and_then(|e| e.kafka_code())
}

/// Waits (bounded) until `f` holds.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not happen within 10 s");
}

#[test]
fn admin_topics_lifecycle_with_per_topic_results() {
    let a = admin();
    let t1 = unique_topic("adm-t1");
    let t2 = unique_topic("adm-t2");
    let created = a
        .create_topics(
            [
                NewTopic::new(&t1, 3, 1).config("retention.ms", "3600000"),
                NewTopic::new(&t2, 1, 1),
                NewTopic::new("", 1, 1),
            ],
            false,
            Some(Duration::from_secs(10)),
        )
        .expect("create_topics");
    assert_eq!(created.len(), 3);
    assert_eq!(created[0].0, t1);
    assert!(created[0].1.is_ok(), "{:?}", created[0]);
    assert!(created[1].1.is_ok(), "{:?}", created[1]);
    // One bad topic does not hide the others.
    assert_eq!(
        created[2].1.as_ref().unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );

    // Creating it again names the topic and the Kafka error.
    let again = a
        .create_topics([NewTopic::new(&t1, 3, 1)], false, None)
        .expect("create again");
    let e = again[0].1.as_ref().unwrap_err();
    assert_eq!(e.kafka_code(), Some(ErrorCode::TOPIC_ALREADY_EXISTS), "{e}");
    assert_eq!(e.topic(), Some(t1.as_str()));
    let s = e.to_string();
    assert!(s.contains("TOPIC_ALREADY_EXISTS") && s.contains(&t1), "{s}");

    eventually("both topics listed", || {
        let names = a.list_topics().expect("list_topics");
        names.contains(&t1) && names.contains(&t2)
    });
    let names = a.list_topics().expect("list_topics");
    assert!(names.windows(2).all(|w| w[0] <= w[1]), "sorted");
    assert!(names.iter().all(|n| !n.starts_with("__")), "{names:?}");

    let missing = unique_topic("adm-missing");
    // Another broker of a real cluster may learn of the topic a moment later.
    eventually("t1 described", || {
        a.describe_topics([t1.as_str()]).expect("describe_topics")[0]
            .1
            .is_ok()
    });
    let described = a
        .describe_topics([t1.clone(), missing.clone()])
        .expect("describe_topics");
    let d = described[0].1.as_ref().expect("t1 described");
    assert_eq!(d.name, t1);
    assert!(!d.is_internal);
    assert_eq!(d.partitions.len(), 3);
    for (i, p) in d.partitions.iter().enumerate() {
        assert_eq!(p.partition, i as i32);
        let leader = p.leader.expect("a leader");
        assert!(p.replicas.contains(&leader), "{p:?}");
        assert!(p.isr.contains(&leader), "{p:?}");
    }
    assert_eq!(
        code(&described[1].1),
        Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION)
    );
    // Describing does not create the topic.
    assert!(!a.list_topics().unwrap().contains(&missing));

    let deleted = a
        .delete_topics([t1.clone(), t2.clone(), missing.clone()], None)
        .expect("delete_topics");
    assert!(deleted[0].1.is_ok(), "{:?}", deleted[0]);
    assert!(deleted[1].1.is_ok(), "{:?}", deleted[1]);
    let e = deleted[2].1.as_ref().unwrap_err();
    assert_eq!(e.kafka_code(), Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION));
    assert!(e.to_string().contains(&missing), "{e}");
    eventually("topics gone from the list", || {
        let names = a.list_topics().expect("list_topics");
        !names.contains(&t1) && !names.contains(&t2)
    });
}

#[test]
fn admin_describe_and_incrementally_alter_topic_configs() {
    let a = admin();
    let t = unique_topic("adm-cfg");
    let created = a
        .create_topics(
            [NewTopic::new(&t, 1, 1).config("retention.ms", "3600000")],
            false,
            None,
        )
        .unwrap();
    created[0].1.as_ref().expect("created");
    let resource = ConfigResource::topic(&t);
    let value = |a: &AdminClient| -> Option<String> {
        let described = a
            .describe_configs([resource.clone()], true, true)
            .expect("describe_configs");
        assert_eq!(described[0].0, resource);
        let entries = described[0].1.as_ref().expect("configs");
        entries
            .iter()
            .find(|e| e.name == "retention.ms")
            .and_then(|e| e.value.clone())
    };
    assert_eq!(value(&a).as_deref(), Some("3600000"));

    let altered = a
        .incremental_alter_configs(
            [(
                resource.clone(),
                vec![AlterConfigOp::set("retention.ms", "7200000")],
            )],
            false,
        )
        .expect("incremental_alter_configs");
    altered[0].1.as_ref().expect("set");
    eventually("the new value is visible", || {
        value(&a).as_deref() == Some("7200000")
    });

    let altered = a
        .incremental_alter_configs(
            [(
                resource.clone(),
                vec![AlterConfigOp::delete("retention.ms")],
            )],
            false,
        )
        .expect("incremental delete");
    altered[0].1.as_ref().expect("delete");
    // Kafka falls back to the default value; Tansu drops the entry.
    eventually("the override is gone", || {
        value(&a).as_deref() != Some("7200000")
    });
    a.delete_topics([t], None).unwrap();
}

#[test]
fn admin_group_offsets_list_describe_delete() {
    let a = admin();
    let t = new_topic(&a, "adm-off", 3);
    let group = unique_topic("adm-group");
    let tp0 = TopicPartition::new(&t, 0);
    let tp1 = TopicPartition::new(&t, 1);
    let tp2 = TopicPartition::new(&t, 2);
    let committed = a
        .alter_consumer_group_offsets(
            &group,
            [
                (tp0.clone(), OffsetAndMetadata::with_metadata(5, "m")),
                (tp1.clone(), OffsetAndMetadata::new(7)),
            ],
        )
        .expect("alter_consumer_group_offsets");
    assert_eq!(committed.len(), 2);
    for (tp, r) in &committed {
        r.as_ref().unwrap_or_else(|e| panic!("{tp}: {e}"));
    }

    let all = a
        .list_consumer_group_offsets(&group, None)
        .expect("list offsets");
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[&tp0].offset, 5);
    assert_eq!(all[&tp1].offset, 7);
    // Asking for some partitions; one without a commit is left out.
    let some = a
        .list_consumer_group_offsets(&group, Some(&[tp1.clone(), tp2.clone()]))
        .expect("list some offsets");
    assert_eq!(some.len(), 1, "{some:?}");
    assert_eq!(some[&tp1].offset, 7);

    let listed = a.list_consumer_groups().expect("list_consumer_groups");
    let me = listed
        .iter()
        .find(|g| g.group_id == group)
        .unwrap_or_else(|| panic!("{group} not in {listed:?}"));
    assert!(me.coordinator >= 0);

    let unknown = unique_topic("adm-nogroup");
    let described = a
        .describe_consumer_groups([group.clone(), unknown.clone()])
        .expect("describe_consumer_groups");
    let d = described[0].1.as_ref().expect("described");
    assert_eq!(d.group_id, group);
    assert!(d.members.is_empty());
    assert!(d.is_simple_consumer_group);
    assert_eq!(d.state, GroupState::Empty);
    assert!(described[1].1.is_ok(), "{:?}", described[1]);

    let deleted = a
        .delete_consumer_groups([group.clone()])
        .expect("delete_consumer_groups");
    deleted[0].1.as_ref().expect("deleted");
    let after = a.list_consumer_group_offsets(&group, None).unwrap();
    assert!(after.is_empty(), "{after:?}");
    assert!(!a
        .list_consumer_groups()
        .unwrap()
        .iter()
        .any(|g| g.group_id == group));
    a.delete_topics([t], None).unwrap();
}

#[test]
#[cfg_attr(
    not(kafka_external),
    ignore = "needs real Kafka: Tansu 0.6 drops commit metadata; set KAFKA_BOOTSTRAP_SERVERS"
)]
fn admin_commit_metadata_round_trips() {
    let a = admin();
    let t = new_topic(&a, "adm-meta", 1);
    let group = unique_topic("adm-meta-g");
    let tp0 = TopicPartition::new(&t, 0);
    for (tp, r) in a
        .alter_consumer_group_offsets(
            &group,
            [(tp0.clone(), OffsetAndMetadata::with_metadata(5, "m"))],
        )
        .expect("alter_consumer_group_offsets")
    {
        r.unwrap_or_else(|e| panic!("{tp}: {e}"));
    }
    let all = a
        .list_consumer_group_offsets(&group, None)
        .expect("list offsets");
    assert_eq!((all[&tp0].offset, all[&tp0].metadata.as_str()), (5, "m"));
    let _ = a.delete_consumer_groups([group]);
    a.delete_topics([t], None).unwrap();
}

#[test]
#[cfg_attr(
    not(kafka_external),
    ignore = "needs real Kafka: Tansu 0.6 answers NONE and Empty for a group it never had; set KAFKA_BOOTSTRAP_SERVERS"
)]
fn admin_an_unknown_group_is_dead_and_cannot_be_deleted() {
    let a = admin();
    let unknown = unique_topic("adm-nogroup");
    let described = a
        .describe_consumer_groups([unknown.clone()])
        .expect("describe_consumer_groups");
    assert_eq!(described[0].1.as_ref().unwrap().state, GroupState::Dead);
    let r = a.delete_consumer_groups([unknown]).unwrap();
    assert_eq!(code(&r[0].1), Some(ErrorCode::GROUP_ID_NOT_FOUND));
}

fn versioned<T: Message>(m: &T, version: i16) -> Bytes {
    let mut out = version.to_be_bytes().to_vec();
    m.encode(&mut out, version).expect("encode");
    Bytes::from(out)
}

/// One member joins `group` through raw JoinGroup/SyncGroup requests,
/// subscribing to `topic` and assigning itself partitions 0 and 1.
/// Returns the member id.
fn join_as_only_member(c: &Client, coordinator: i32, group: &str, topic: &str) -> String {
    let metadata = versioned(
        &ConsumerProtocolSubscription {
            topics: vec![topic.to_owned()],
            ..Default::default()
        },
        1,
    );
    let mut member_id = String::new();
    let mut joined = None;
    for _ in 0..3 {
        let r = c
            .send_to(
                coordinator,
                &JoinGroupRequest {
                    group_id: group.to_owned(),
                    // Kafka's minimum; Tansu holds a first join for half
                    // the session timeout.
                    session_timeout_ms: 6_000,
                    rebalance_timeout_ms: 6_000,
                    member_id: member_id.clone(),
                    protocol_type: "consumer".into(),
                    protocols: vec![JoinGroupRequestProtocol {
                        name: "range".into(),
                        metadata: metadata.clone(),
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            )
            .expect("JoinGroup");
        member_id = r.member_id.clone();
        if ErrorCode(r.error_code) == ErrorCode::MEMBER_ID_REQUIRED {
            continue;
        }
        assert_eq!(ErrorCode(r.error_code), ErrorCode::NONE, "{r:?}");
        joined = Some(r);
        break;
    }
    let joined = joined.expect("joined within 3 tries");
    let assignment = versioned(
        &ConsumerProtocolAssignment {
            assigned_partitions: vec![consumer_protocol_assignment::TopicPartition {
                topic: topic.to_owned(),
                partitions: vec![0, 1],
                ..Default::default()
            }],
            ..Default::default()
        },
        0,
    );
    let r = c
        .send_to(
            coordinator,
            &SyncGroupRequest {
                group_id: group.to_owned(),
                generation_id: joined.generation_id,
                member_id: member_id.clone(),
                protocol_type: Some("consumer".into()),
                protocol_name: Some("range".into()),
                assignments: vec![SyncGroupRequestAssignment {
                    member_id: member_id.clone(),
                    assignment,
                    ..Default::default()
                }],
                ..Default::default()
            },
        )
        .expect("SyncGroup");
    assert_eq!(ErrorCode(r.error_code), ErrorCode::NONE, "{r:?}");
    member_id
}

/// A group with one live member (raw JoinGroup/SyncGroup) on a fresh
/// two-partition topic.
struct LiveGroup {
    admin: AdminClient,
    client: Client,
    topic: String,
    group: String,
    coordinator: i32,
    member: String,
}

impl LiveGroup {
    fn start() -> LiveGroup {
        let admin = admin();
        let client = client();
        let topic = new_topic(&admin, "adm-members", 2);
        let group = unique_topic("adm-live");
        let coordinator = admin.describe_consumer_groups([group.as_str()]).unwrap()[0]
            .1
            .as_ref()
            .expect("describe (unknown group)")
            .coordinator;
        client.refresh_metadata(None).unwrap();
        let member = join_as_only_member(&client, coordinator, &group, &topic);
        LiveGroup {
            admin,
            client,
            topic,
            group,
            coordinator,
            member,
        }
    }

    /// The member leaves; then the group is deleted, and the topic.
    fn leave_and_delete(self) {
        let left = self
            .client
            .send_to(
                self.coordinator,
                &LeaveGroupRequest {
                    group_id: self.group.clone(),
                    members: vec![
                        kafka_blocking::protocol::messages::leave_group_request::MemberIdentity {
                            member_id: self.member,
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                },
            )
            .expect("LeaveGroup");
        // The session (6 s) may have run out on a slow machine.
        assert!(
            matches!(
                ErrorCode(left.error_code),
                ErrorCode::NONE | ErrorCode::UNKNOWN_MEMBER_ID
            ),
            "{left:?}"
        );
        let r = self.admin.delete_consumer_groups([self.group]).unwrap();
        r[0].1.as_ref().expect("deleted once empty");
        self.admin.delete_topics([self.topic], None).unwrap();
    }
}

#[test]
fn admin_describe_group_decodes_member_assignments() {
    let g = LiveGroup::start();
    let described = g
        .admin
        .describe_consumer_groups([g.group.as_str()])
        .unwrap();
    let d = described[0].1.as_ref().expect("described");
    assert_eq!(d.state, GroupState::Stable, "{d:?}");
    assert_eq!(d.protocol_type, "consumer");
    assert!(!d.is_simple_consumer_group);
    assert_eq!(d.members.len(), 1, "{d:?}");
    assert_eq!(d.members[0].member_id, g.member);
    g.leave_and_delete();
}

#[test]
#[cfg_attr(
    not(kafka_external),
    ignore = "needs real Kafka: Tansu 0.6 sends an empty protocol name and empty member blobs, and deletes a group with live members; set KAFKA_BOOTSTRAP_SERVERS"
)]
fn admin_describe_group_names_the_assignor_and_a_live_group_is_kept() {
    let g = LiveGroup::start();
    let described = g
        .admin
        .describe_consumer_groups([g.group.as_str()])
        .unwrap();
    let d = described[0].1.as_ref().expect("described");
    assert_eq!(d.partition_assignor, "range");
    let m = &d.members[0];
    assert_eq!(m.subscription, vec![g.topic.clone()]);
    assert_eq!(
        m.assignment,
        vec![
            TopicPartition::new(&g.topic, 0),
            TopicPartition::new(&g.topic, 1)
        ]
    );
    let r = g.admin.delete_consumer_groups([g.group.as_str()]).unwrap();
    assert_eq!(code(&r[0].1), Some(ErrorCode::NON_EMPTY_GROUP), "{r:?}");
    g.leave_and_delete();
}

#[test]
fn admin_describe_cluster_and_versions() {
    let a = admin();
    let cluster = a.describe_cluster().expect("describe_cluster");
    assert!(!cluster.brokers.is_empty());
    assert!(cluster.cluster_id.is_some(), "{cluster:?}");
    let controller = cluster.controller.expect("a controller");
    assert!(cluster.brokers.iter().any(|b| b.id == controller));
    let broker = cluster.brokers[0].id;
    let info = a.check_version(Some(broker)).expect("check_version");
    assert_eq!(info.broker_id, Some(broker));
    assert!(info.kafka_version >= (1, 0, 0), "{:?}", info.kafka_version);
    let versions = a.api_versions(None).expect("api_versions");
    assert!(versions
        .range(kafka_blocking::protocol::ApiKey::CREATE_TOPICS)
        .is_some());
    let e = a.check_version(Some(987_654)).unwrap_err();
    assert!(e.to_string().contains("987654"), "{e}");

    // A broker's own configs are asked of that broker.
    let described = a
        .describe_configs([ConfigResource::broker(broker)], false, false)
        .expect("describe broker configs");
    described[0].1.as_ref().expect("broker configs");
}

#[test]
#[cfg_attr(
    not(kafka_external),
    ignore = "needs real Kafka: Tansu 0.6 does not list the broker configs Kafka has, with their sources; set KAFKA_BOOTSTRAP_SERVERS"
)]
fn admin_describe_broker_configs_with_their_sources() {
    let a = admin();
    let broker = a.describe_cluster().expect("describe_cluster").brokers[0].id;
    let described = a
        .describe_configs([ConfigResource::broker(broker)], false, false)
        .expect("describe broker configs");
    let entries = described[0].1.as_ref().expect("broker configs");
    assert!(entries.iter().any(|e| e.name == "log.retention.hours"));
    assert!(entries
        .iter()
        .any(|e| e.source == ConfigSource::StaticBrokerConfig
            || e.source == ConfigSource::DefaultConfig));
}

#[test]
fn admin_unreachable_cluster_fails_the_call_in_time() {
    let a = AdminClient::builder()
        .bootstrap_servers(closed_port())
        .request_timeout_ms(1_000)
        .default_api_timeout_ms(1_500)
        .retry_backoff_ms(50)
        .reconnect_backoff_ms(10)
        .reconnect_backoff_max_ms(50)
        .socket_connection_setup_timeout_ms(500)
        .build()
        .unwrap();
    let t0 = Instant::now();
    let e = a
        .create_topics(
            [NewTopic::new("x", 1, 1)],
            false,
            Some(Duration::from_secs(1)),
        )
        .unwrap_err();
    assert!(e.is_retriable(), "{e}");
    let e = a.list_consumer_groups().unwrap_err();
    assert!(e.is_retriable(), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
}

// ---- Kafka-only --------------------------------------------------------

#[test]
#[cfg_attr(
    not(kafka_external),
    ignore = "needs real Kafka: Tansu accepts any replication factor and creates topics on validate_only; set KAFKA_BOOTSTRAP_SERVERS"
)]
fn admin_create_topic_errors_carry_the_broker_message() {
    let a = admin();
    let t = unique_topic("adm-rf");
    let r = a
        .create_topics([NewTopic::new(&t, 1, 1000)], false, None)
        .unwrap();
    let e = r[0].1.as_ref().unwrap_err();
    assert_eq!(
        e.kafka_code(),
        Some(ErrorCode::INVALID_REPLICATION_FACTOR),
        "{e}"
    );
    let s = e.to_string();
    assert!(
        s.contains(&t) && s.contains("INVALID_REPLICATION_FACTOR"),
        "{s}"
    );
    // validate_only checks without creating.
    let v = unique_topic("adm-validate");
    let r = a
        .create_topics([NewTopic::new(&v, 1, 1)], true, None)
        .unwrap();
    r[0].1.as_ref().expect("valid");
    assert!(!a.list_topics().unwrap().contains(&v));
}

#[test]
#[cfg_attr(
    not(kafka_external),
    ignore = "needs real Kafka: Tansu 0.6 has no CreatePartitions; set KAFKA_BOOTSTRAP_SERVERS"
)]
fn admin_create_partitions_grows_a_topic() {
    let a = admin();
    let t = new_topic(&a, "adm-grow", 1);
    let r = a
        .create_partitions(
            [
                NewPartitions::increase_to(&t, 3),
                NewPartitions::increase_to(unique_topic("adm-nope"), 3),
            ],
            false,
            None,
        )
        .unwrap();
    r[0].1.as_ref().expect("grown");
    assert_eq!(code(&r[1].1), Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION));
    eventually("three partitions", || {
        a.describe_topics([t.as_str()]).unwrap()[0]
            .1
            .as_ref()
            .is_ok_and(|d| d.partitions.len() == 3)
    });
    let r = a
        .create_partitions([NewPartitions::increase_to(&t, 2)], false, None)
        .unwrap();
    assert_eq!(code(&r[0].1), Some(ErrorCode::INVALID_PARTITIONS));
    a.delete_topics([t], None).unwrap();
}

#[test]
#[cfg_attr(
    not(kafka_external),
    ignore = "needs real Kafka: Tansu 0.6 has no AlterConfigs; set KAFKA_BOOTSTRAP_SERVERS"
)]
fn admin_alter_configs_replaces_the_set() {
    let a = admin();
    let t = new_topic(&a, "adm-alter", 1);
    let resource = ConfigResource::topic(&t);
    let r = a
        .alter_configs(
            [(
                resource.clone(),
                vec![("retention.ms".to_owned(), "1234567".to_owned())],
            )],
            false,
        )
        .unwrap();
    r[0].1.as_ref().expect("altered");
    let d = a.describe_configs([resource], false, false).unwrap();
    let entry = d[0]
        .1
        .as_ref()
        .unwrap()
        .iter()
        .find(|e| e.name == "retention.ms")
        .cloned()
        .expect("retention.ms");
    assert_eq!(entry.value.as_deref(), Some("1234567"));
    assert_eq!(entry.source, ConfigSource::DynamicTopicConfig);
    let missing = a
        .describe_configs(
            [ConfigResource::topic(unique_topic("adm-nope"))],
            false,
            false,
        )
        .unwrap();
    assert_eq!(
        code(&missing[0].1),
        Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION)
    );
    a.delete_topics([t], None).unwrap();
}

#[test]
#[cfg_attr(
    not(kafka_external),
    ignore = "needs real Kafka: Tansu 0.6 closes the connection on DeleteRecords; set KAFKA_BOOTSTRAP_SERVERS"
)]
fn admin_delete_records_moves_the_low_watermark() {
    use kafka_blocking::producer::{Producer, Record};
    let a = admin();
    let t = new_topic(&a, "adm-records", 1);
    let p = Producer::builder()
        .bootstrap_servers(bootstrap())
        .build()
        .unwrap();
    for i in 0..20 {
        let _ = p
            .send(Record::new(t.as_str()).value(format!("v{i}")))
            .unwrap();
    }
    p.flush(Duration::from_secs(10)).unwrap();
    let r = a
        .delete_records(
            [
                (TopicPartition::new(&t, 0), 10),
                (TopicPartition::new(&t, 7), 1),
            ],
            None,
        )
        .unwrap();
    assert_eq!(*r[0].1.as_ref().expect("deleted"), 10);
    assert_eq!(code(&r[1].1), Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION));
    a.delete_topics([t], None).unwrap();
}

#[test]
#[cfg_attr(
    not(kafka_external),
    ignore = "needs real Kafka: Tansu 0.6 has no OffsetDelete; set KAFKA_BOOTSTRAP_SERVERS"
)]
fn admin_delete_consumer_group_offsets() {
    let a = admin();
    let t = new_topic(&a, "adm-deloff", 2);
    let group = unique_topic("adm-deloff-g");
    let tp0 = TopicPartition::new(&t, 0);
    let tp1 = TopicPartition::new(&t, 1);
    for (_, r) in a
        .alter_consumer_group_offsets(
            &group,
            [
                (tp0.clone(), OffsetAndMetadata::new(1)),
                (tp1.clone(), OffsetAndMetadata::new(2)),
            ],
        )
        .unwrap()
    {
        r.unwrap();
    }
    let r = a
        .delete_consumer_group_offsets(&group, [tp0.clone()])
        .unwrap();
    r[0].1.as_ref().expect("deleted");
    let left = a.list_consumer_group_offsets(&group, None).unwrap();
    assert!(
        !left.contains_key(&tp0) && left.contains_key(&tp1),
        "{left:?}"
    );
    let _ = a.delete_consumer_groups([group]);
    a.delete_topics([t], None).unwrap();
}

#[test]
#[cfg_attr(
    not(kafka_external),
    ignore = "needs real Kafka: Tansu 0.6 has no ACLs (and its CreateAcls answer does not decode); set KAFKA_BOOTSTRAP_SERVERS"
)]
fn admin_acls_round_trip() {
    let a = admin();
    let acl = AclBinding {
        resource_type: ResourceType::Topic,
        resource_name: unique_topic("adm-acl"),
        pattern_type: PatternType::Literal,
        principal: "User:it-admin".into(),
        host: "*".into(),
        operation: AclOperation::Read,
        permission_type: AclPermissionType::Allow,
    };
    let created = a.create_acls([acl.clone()]).unwrap();
    if code(&created[0].1) == Some(ErrorCode::SECURITY_DISABLED) {
        // No authorizer: every ACL call says so with the typed error (the
        // round trip itself runs in admin_sasl_acls, against the secured
        // broker). Not a skip: the error paths are what this checks here.
        let e = a.describe_acls(&acl.to_filter()).unwrap_err();
        assert_eq!(e.kafka_code(), Some(ErrorCode::SECURITY_DISABLED), "{e}");
        let deleted = a.delete_acls([acl.to_filter()]).unwrap();
        assert_eq!(code(&deleted[0].1), Some(ErrorCode::SECURITY_DISABLED));
        return;
    }
    created[0].1.as_ref().expect("created");
    eventually("the ACL is described", || {
        a.describe_acls(&acl.to_filter())
            .is_ok_and(|l| l.contains(&acl))
    });
    let deleted = a.delete_acls([acl.to_filter()]).unwrap();
    let matched = deleted[0].1.as_ref().expect("deleted");
    assert!(
        matched.iter().any(|(b, r)| b == &acl && r.is_ok()),
        "{matched:?}"
    );
    let _ = a.describe_acls(&AclBindingFilter::any()).unwrap();
}
