//! Consumer groups: list, describe, delete, and their committed offsets.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use super::{
    broker_error, check, keyed, AdminClient, Answer, Deadline, OffsetAndMetadata, TopicPartition,
    COORDINATOR_RETRY,
};
use crate::bytes::Bytes;
use crate::consumer::offsets::{by_topic, commit_request, fetch_request, fetch_rows};
use crate::error::{Error, ErrorKind, Result};
use crate::group::Member;
use crate::protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use crate::protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, DeleteGroupsRequest,
    DescribeGroupsRequest, FindCoordinatorRequest, ListGroupsRequest, OffsetDeleteRequest,
    OffsetFetchRequest,
};
use crate::protocol::{Decoder, Message};

/// The state of a consumer group, as the coordinator reports it.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    /// Members are (re)joining.
    PreparingRebalance,
    /// Waiting for the leader's assignment.
    CompletingRebalance,
    /// Members are consuming.
    Stable,
    /// The group has no members and no offsets (or does not exist).
    Dead,
    /// No members, but committed offsets.
    Empty,
    /// KIP-848 groups: the coordinator is computing an assignment.
    Assigning,
    /// KIP-848 groups: members are moving to a new assignment.
    Reconciling,
    /// A state this client does not know, or none was reported.
    Unknown,
}

impl GroupState {
    /// Parses the coordinator's state name (case-insensitive).
    pub fn parse(s: &str) -> GroupState {
        const NAMES: &[(&str, GroupState)] = &[
            ("PreparingRebalance", GroupState::PreparingRebalance),
            ("CompletingRebalance", GroupState::CompletingRebalance),
            ("AwaitingSync", GroupState::CompletingRebalance),
            ("Stable", GroupState::Stable),
            ("Dead", GroupState::Dead),
            ("Empty", GroupState::Empty),
            ("Assigning", GroupState::Assigning),
            ("Reconciling", GroupState::Reconciling),
        ];
        NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(s.trim()))
            .map_or(GroupState::Unknown, |(_, st)| *st)
    }

    /// The state's name as Kafka spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
            GroupState::Empty => "Empty",
            GroupState::Assigning => "Assigning",
            GroupState::Reconciling => "Reconciling",
            GroupState::Unknown => "Unknown",
        }
    }
}

impl fmt::Display for GroupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A consumer group as [`AdminClient::list_consumer_groups`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupListing {
    /// The group id.
    pub group_id: String,
    /// `consumer` for groups of consumers, empty for groups that only
    /// commit offsets ("simple" groups).
    pub protocol_type: String,
    /// The group's state (ListGroups v4+, Kafka 2.6+).
    pub state: Option<GroupState>,
    /// `classic` or `consumer` (ListGroups v5+, Kafka 3.8+).
    pub group_type: Option<String>,
    /// The coordinator's broker id.
    pub coordinator: i32,
}

/// A member of a consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    /// The member id the coordinator gave it.
    pub member_id: String,
    /// Its static membership id (`group.instance.id`), if any.
    pub group_instance_id: Option<String>,
    /// The member's `client_id`.
    pub client_id: String,
    /// The host it connects from.
    pub host: String,
    /// The topics it subscribed to (decoded from its join metadata).
    pub subscription: Vec<String>,
    /// The partitions assigned to it (decoded from its assignment).
    pub assignment: Vec<TopicPartition>,
}

/// A consumer group as [`AdminClient::describe_consumer_groups`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupDescription {
    /// The group id.
    pub group_id: String,
    /// Whether the group has no protocol (it only commits offsets).
    pub is_simple_consumer_group: bool,
    /// `consumer`, or empty for a simple group.
    pub protocol_type: String,
    /// The assignor the members agreed on (`range`, `cooperative-sticky`, ...).
    pub partition_assignor: String,
    /// The group's state ([`GroupState::Dead`] when it does not exist).
    pub state: GroupState,
    /// The coordinator's broker id.
    pub coordinator: i32,
    /// The members and their assignments.
    pub members: Vec<MemberDescription>,
}

/// Reads a `version: i16` + body blob of the consumer protocol, decoding a
/// newer version than this client knows as the newest it knows (newer
/// versions only append fields).
fn decode_versioned<T: Message>(bytes: &Bytes, what: &str) -> Result<Option<T>> {
    if bytes.is_empty() {
        return Ok(None);
    }
    let mut d = Decoder::new(bytes);
    let version = d.i16()?;
    if version < T::MIN_VERSION {
        return Err(Error::protocol(format!("{what} has version {version}")));
    }
    T::decode(&mut d, version.min(T::MAX_VERSION)).map(Some)
}

fn decode_member(
    m: crate::protocol::messages::describe_groups_response::DescribedGroupMember,
    consumer_protocol: bool,
    group: &str,
) -> Result<MemberDescription> {
    let (subscription, assignment) = if consumer_protocol {
        let context = |e: Error| {
            e.context(format_args!(
                "decoding member `{}` of group `{group}`",
                m.member_id
            ))
        };
        let sub: Option<ConsumerProtocolSubscription> =
            decode_versioned(&m.member_metadata, "a subscription").map_err(context)?;
        let asg: Option<ConsumerProtocolAssignment> =
            decode_versioned(&m.member_assignment, "an assignment").map_err(context)?;
        let assignment = asg
            .map(|a| {
                a.assigned_partitions
                    .into_iter()
                    .flat_map(|tp| {
                        let topic = tp.topic;
                        tp.partitions
                            .into_iter()
                            .map(move |p| TopicPartition::new(topic.clone(), p))
                    })
                    .collect()
            })
            .unwrap_or_default();
        (sub.map(|s| s.topics).unwrap_or_default(), assignment)
    } else {
        (Vec::new(), Vec::new())
    };
    Ok(MemberDescription {
        member_id: m.member_id,
        group_instance_id: m.group_instance_id,
        client_id: m.client_id,
        host: m.client_host,
        subscription,
        assignment,
    })
}

impl AdminClient {
    /// The coordinator of each group: remembered, or asked with
    /// FindCoordinator (one request for all of them on brokers with v4+).
    fn coordinators(
        &self,
        groups: &[String],
        dl: &Deadline,
    ) -> Result<HashMap<String, Result<i32>>> {
        let mut out = HashMap::new();
        let mut missing = Vec::new();
        {
            let cache = self.inner.coordinators.lock();
            for g in groups {
                match cache.get(g) {
                    Some(id) => {
                        out.insert(g.clone(), Ok(*id));
                    }
                    None => missing.push(g.clone()),
                }
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        let id = self.any_broker()?;
        let mut found: Vec<(String, Result<i32>)> = Vec::new();
        if self.version::<FindCoordinatorRequest>(id)? >= 4 {
            let request = FindCoordinatorRequest {
                key_type: 0,
                coordinator_keys: missing.clone(),
                ..Default::default()
            };
            let response = self.send_to(id, &request, dl.attempt_timeout())?;
            for c in response.coordinators {
                let r = check(
                    c.error_code,
                    c.error_message.as_deref(),
                    format_args!("finding the coordinator of group `{}`", c.key),
                )
                .map(|()| c.node_id);
                found.push((c.key, r));
            }
        } else {
            for g in missing {
                let request = FindCoordinatorRequest {
                    key: g.clone(),
                    key_type: 0,
                    ..Default::default()
                };
                let r = self
                    .send_to(id, &request, dl.attempt_timeout())
                    .and_then(|response| {
                        check(
                            response.error_code,
                            response.error_message.as_deref(),
                            format_args!("finding the coordinator of group `{g}`"),
                        )
                        .map(|()| response.node_id)
                    });
                found.push((g, r));
            }
        }
        for (g, r) in found {
            let r = r.and_then(|node| {
                self.cluster().ensure_broker_known(node)?;
                self.inner.coordinators.lock().insert(g.clone(), node);
                Ok(node)
            });
            out.insert(g, r);
        }
        Ok(out)
    }

    /// The coordinator of one group.
    fn coordinator(&self, group: &str, dl: &Deadline) -> Result<i32> {
        let g = group.to_owned();
        self.coordinators(std::slice::from_ref(&g), dl)?
            .remove(group)
            .unwrap_or_else(|| {
                Err(Error::protocol(format!(
                    "FindCoordinator answered without group `{group}`"
                )))
            })
    }

    /// Sends one request per coordinator with its groups (`send`), and
    /// answers per group; coordinator errors and lost connections are
    /// retried after looking the coordinator up again.
    fn per_coordinator<V>(
        &self,
        groups: &[String],
        dl: &Deadline,
        mut send: impl FnMut(i32, &[String]) -> Result<Vec<(String, Result<V>)>>,
    ) -> Result<Vec<(String, Answer<V>)>> {
        let coordinators = self.coordinators(groups, dl)?;
        let mut out = Vec::new();
        let mut by_node: BTreeMap<i32, Vec<String>> = BTreeMap::new();
        for g in groups {
            match coordinators.get(g) {
                Some(Ok(node)) => by_node.entry(*node).or_default().push(g.clone()),
                Some(Err(e)) => out.push((
                    g.clone(),
                    Answer::from_result(Err(e.clone()), COORDINATOR_RETRY),
                )),
                None => {}
            }
        }
        for (node, gs) in by_node {
            match send(node, &gs) {
                Ok(answers) => {
                    for (g, r) in answers {
                        if let Err(e) = &r {
                            self.forget_coordinator(&g, e);
                        }
                        out.push((g, Answer::from_result(r, COORDINATOR_RETRY)));
                    }
                }
                Err(e) => {
                    for g in gs {
                        self.forget_coordinator(&g, &e);
                        out.push((g, Answer::from_result(Err(e.clone()), COORDINATOR_RETRY)));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Every consumer group in the cluster (asking each broker for the
    /// groups it coordinates): groups of consumers and "simple" groups
    /// that only commit offsets, not Connect or other protocols.
    ///
    /// Fails, naming the broker, when a broker cannot answer within the
    /// timeout: a partial list would look complete.
    pub fn list_consumer_groups(&self) -> Result<Vec<ConsumerGroupListing>> {
        let dl = self.deadline(None);
        let brokers: Vec<i32> = self.refresh()?.brokers.keys().copied().collect();
        let per_broker = self.run_items(brokers, &dl, COORDINATOR_RETRY, |pending| {
            Ok(pending
                .iter()
                .map(|id| {
                    let r = self
                        .send_to(*id, &ListGroupsRequest::default(), dl.attempt_timeout())
                        .and_then(|response| {
                            check(
                                response.error_code,
                                None,
                                format_args!("listing the groups of broker {id}"),
                            )
                            .map(|()| response.groups)
                        })
                        .map_err(|e| e.context(format_args!("broker {id}")));
                    (*id, Answer::from_result(r, COORDINATOR_RETRY))
                })
                .collect())
        })?;
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for (id, r) in per_broker {
            for g in r? {
                if !(g.protocol_type.is_empty() || g.protocol_type == "consumer") {
                    continue;
                }
                if !seen.insert(g.group_id.clone()) {
                    continue;
                }
                out.push(ConsumerGroupListing {
                    group_id: g.group_id,
                    protocol_type: g.protocol_type,
                    state: Some(g.group_state)
                        .filter(|s| !s.is_empty())
                        .map(|s| GroupState::parse(&s)),
                    group_type: Some(g.group_type).filter(|s| !s.is_empty()),
                    coordinator: id,
                });
            }
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(out)
    }

    /// Members, assignments, state and protocol of each group, asked of
    /// each group's coordinator. A group that does not exist is described
    /// with state [`GroupState::Dead`] and no members (as Kafka answers).
    pub fn describe_consumer_groups<S: Into<String>>(
        &self,
        group_ids: impl IntoIterator<Item = S>,
    ) -> Result<Vec<(String, Result<ConsumerGroupDescription>)>> {
        let groups: Vec<String> = group_ids.into_iter().map(Into::into).collect();
        let dl = self.deadline(None);
        self.run_items(groups, &dl, COORDINATOR_RETRY, |pending| {
            self.per_coordinator(pending, &dl, |node, gs| {
                let request = DescribeGroupsRequest {
                    groups: gs.to_vec(),
                    ..Default::default()
                };
                let response = self.send_to(node, &request, dl.attempt_timeout())?;
                Ok(response
                    .groups
                    .into_iter()
                    .map(|g| {
                        let id = g.group_id.clone();
                        let r = check(
                            g.error_code,
                            None,
                            format_args!("describing consumer group `{id}`"),
                        )
                        .and_then(|()| {
                            let consumer = g.protocol_type == "consumer";
                            let members = g
                                .members
                                .into_iter()
                                .map(|m| decode_member(m, consumer, &g.group_id))
                                .collect::<Result<Vec<_>>>()?;
                            Ok(ConsumerGroupDescription {
                                is_simple_consumer_group: g.protocol_type.is_empty(),
                                state: GroupState::parse(&g.group_state),
                                group_id: g.group_id,
                                protocol_type: g.protocol_type,
                                partition_assignor: g.protocol_data,
                                coordinator: node,
                                members,
                            })
                        });
                        (id, r)
                    })
                    .collect())
            })
        })
    }

    /// Deletes groups (which must have no members), answering per group:
    /// `GROUP_ID_NOT_FOUND` for an unknown group, `NON_EMPTY_GROUP` while
    /// consumers are in it.
    pub fn delete_consumer_groups<S: Into<String>>(
        &self,
        group_ids: impl IntoIterator<Item = S>,
    ) -> Result<Vec<(String, Result<()>)>> {
        let groups: Vec<String> = group_ids.into_iter().map(Into::into).collect();
        let dl = self.deadline(None);
        let results = self.run_items(groups, &dl, COORDINATOR_RETRY, |pending| {
            self.per_coordinator(pending, &dl, |node, gs| {
                let request = DeleteGroupsRequest {
                    groups_names: gs.to_vec(),
                    ..Default::default()
                };
                let response = self.send_to(node, &request, dl.attempt_timeout())?;
                Ok(response
                    .results
                    .into_iter()
                    .map(|r| {
                        let result = check(
                            r.error_code,
                            None,
                            format_args!("deleting consumer group `{}`", r.group_id),
                        );
                        (r.group_id, result)
                    })
                    .collect())
            })
        })?;
        for (g, r) in &results {
            if r.is_ok() {
                self.inner.coordinators.lock().remove(g);
            }
        }
        Ok(results)
    }

    /// The committed offsets of `group_id`: of every partition it has
    /// offsets for (`partitions` = `None`), or of the given ones.
    /// Partitions without a committed offset are left out.
    pub fn list_consumer_group_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<BTreeMap<TopicPartition, OffsetAndMetadata>> {
        let dl = self.deadline(None);
        self.retry(&dl, COORDINATOR_RETRY, Some(group_id), || {
            let node = self.coordinator(group_id, &dl)?;
            let version = self.version::<OffsetFetchRequest>(node)?;
            if partitions.is_none() && version < 2 {
                return Err(Error::new(
                    ErrorKind::UnsupportedVersion,
                    "listing all of a group's offsets needs OffsetFetch v2 (Kafka 0.10.2+); name the partitions",
                ));
            }
            let topics = partitions.map(|p| {
                by_topic(p.iter().map(|tp| (tp, tp.partition)))
                    .into_iter()
                    .map(|(name, ps)| (name.to_owned(), ps))
                    .collect()
            });
            let request = fetch_request(version, &Member::outsider(group_id), topics, false);
            let response = self.send_to(node, &request, dl.attempt_timeout())?;
            let (group_error, rows) = fetch_rows(response, version, group_id)?;
            check(
                group_error.0,
                None,
                format_args!("fetching the offsets of group `{group_id}`"),
            )?;
            let mut out = BTreeMap::new();
            for row in rows {
                if row.error.is_err() {
                    return Err(broker_error(
                        row.error,
                        None,
                        format_args!("fetching the offset of group `{group_id}`"),
                    )
                    .with_partition(row.topic, row.partition));
                }
                if let Some(committed) = row.committed {
                    out.insert(TopicPartition::new(row.topic, row.partition), committed);
                }
            }
            Ok(out)
        })
    }

    /// Commits offsets for `group_id` as a standalone client would
    /// (generation -1, no member id), answering per partition. The group
    /// must have no active members, or the coordinator refuses with
    /// `UNKNOWN_MEMBER_ID`/`ILLEGAL_GENERATION`.
    pub fn alter_consumer_group_offsets(
        &self,
        group_id: &str,
        offsets: impl IntoIterator<Item = (TopicPartition, OffsetAndMetadata)>,
    ) -> Result<Vec<(TopicPartition, Result<()>)>> {
        let (order, wanted) = keyed(offsets);
        let dl = self.deadline(None);
        self.run_items(order, &dl, COORDINATOR_RETRY, |pending| {
            let sent = (|| {
                let node = self.coordinator(group_id, &dl)?;
                let offsets: Vec<(TopicPartition, OffsetAndMetadata)> = pending
                    .iter()
                    .filter_map(|tp| Some((tp.clone(), wanted.get(tp)?.clone())))
                    .collect();
                // Outside the group there is no instance id: the version
                // only matters for that field.
                let request = commit_request(0, &Member::outsider(group_id), &offsets);
                self.send_to(node, &request, dl.attempt_timeout())
            })();
            let response = sent.map_err(|e| {
                self.forget_coordinator(group_id, &e);
                e
            })?;
            let mut out = Vec::new();
            for t in response.topics {
                for p in t.partitions {
                    let tp = TopicPartition::new(t.name.clone(), p.partition_index);
                    let offset = wanted.get(&tp).map_or(-1, |o| o.offset);
                    let r = check(
                        p.error_code,
                        None,
                        format_args!("committing offset {offset} for group `{group_id}`"),
                    )
                    .map_err(|e| e.with_partition(&*tp.topic, tp.partition));
                    if let Err(e) = &r {
                        self.forget_coordinator(group_id, e);
                    }
                    out.push((tp, Answer::from_result(r, COORDINATOR_RETRY)));
                }
            }
            Ok(out)
        })
    }

    /// Deletes committed offsets of `group_id` (Kafka 2.4+), answering per
    /// partition; `GROUP_SUBSCRIBED_TO_TOPIC` while members still consume
    /// the topic.
    pub fn delete_consumer_group_offsets(
        &self,
        group_id: &str,
        partitions: impl IntoIterator<Item = TopicPartition>,
    ) -> Result<Vec<(TopicPartition, Result<()>)>> {
        let parts: Vec<TopicPartition> = partitions.into_iter().collect();
        let dl = self.deadline(None);
        self.run_items(parts, &dl, COORDINATOR_RETRY, |pending| {
            let sent = (|| {
                let node = self.coordinator(group_id, &dl)?;
                let request = OffsetDeleteRequest {
                    group_id: group_id.to_owned(),
                    topics: by_topic(pending.iter().map(|tp| (tp, tp.partition)))
                        .into_iter()
                        .map(|(name, ps)| OffsetDeleteRequestTopic {
                            name: name.to_owned(),
                            partitions: ps
                                .into_iter()
                                .map(|p| OffsetDeleteRequestPartition {
                                    partition_index: p,
                                    ..Default::default()
                                })
                                .collect(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                };
                self.send_to(node, &request, dl.attempt_timeout())
            })();
            let response = sent.map_err(|e| {
                self.forget_coordinator(group_id, &e);
                e
            })?;
            let what = format_args!("deleting the offsets of group `{group_id}`");
            let group_error = check(response.error_code, None, what).err();
            if let Some(e) = &group_error {
                self.forget_coordinator(group_id, e);
                return Ok(pending
                    .iter()
                    .map(|tp| {
                        let r = Err(e.clone().with_partition(&*tp.topic, tp.partition));
                        (tp.clone(), Answer::from_result(r, COORDINATOR_RETRY))
                    })
                    .collect());
            }
            let mut out = Vec::new();
            for t in response.topics {
                for p in t.partitions {
                    let tp = TopicPartition::new(t.name.clone(), p.partition_index);
                    let r = check(
                        p.error_code,
                        None,
                        format_args!("deleting the offset of group `{group_id}`"),
                    )
                    .map_err(|e| e.with_partition(&*tp.topic, tp.partition));
                    out.push((tp, Answer::from_result(r, COORDINATOR_RETRY)));
                }
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::messages::consumer_protocol_assignment::TopicPartition as WireTp;
    use crate::protocol::messages::describe_groups_response::DescribedGroupMember;

    fn versioned<T: Message>(m: &T, version: i16) -> Bytes {
        let mut out = version.to_be_bytes().to_vec();
        m.encode(&mut out, version).unwrap();
        Bytes::from(out)
    }

    #[test]
    fn states_parse() {
        assert_eq!(GroupState::parse("Stable"), GroupState::Stable);
        assert_eq!(GroupState::parse("empty"), GroupState::Empty);
        assert_eq!(
            GroupState::parse("CompletingRebalance"),
            GroupState::CompletingRebalance
        );
        assert_eq!(GroupState::parse("whatever"), GroupState::Unknown);
        assert_eq!(GroupState::Dead.to_string(), "Dead");
    }

    #[test]
    fn member_assignment_and_subscription_decode() {
        let asg = ConsumerProtocolAssignment {
            assigned_partitions: vec![WireTp {
                topic: "t".into(),
                partitions: vec![0, 2],
                ..Default::default()
            }],
            ..Default::default()
        };
        let sub = ConsumerProtocolSubscription {
            topics: vec!["t".into(), "u".into()],
            ..Default::default()
        };
        let m = DescribedGroupMember {
            member_id: "m1".into(),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            member_metadata: versioned(&sub, 1),
            member_assignment: versioned(&asg, 3),
            ..Default::default()
        };
        let d = decode_member(m.clone(), true, "g").unwrap();
        assert_eq!(d.subscription, vec!["t", "u"]);
        assert_eq!(
            d.assignment,
            vec![TopicPartition::new("t", 0), TopicPartition::new("t", 2)]
        );
        // Not the consumer protocol: the blobs are opaque.
        let d = decode_member(m.clone(), false, "g").unwrap();
        assert!(d.assignment.is_empty());
        // A newer version than we know decodes as the newest we know.
        let mut newer = m.clone();
        let mut bytes = newer.member_assignment.to_vec();
        bytes[1] = 9;
        newer.member_assignment = Bytes::from(bytes);
        assert_eq!(decode_member(newer, true, "g").unwrap().assignment.len(), 2);
        // Garbage is an error naming the member, not a panic.
        let mut bad = m;
        bad.member_assignment = Bytes::from(vec![0, 0, 0xff, 0xff, 0xff]);
        let e = decode_member(bad, true, "g").unwrap_err();
        assert!(e.to_string().contains("member `m1` of group `g`"), "{e}");
    }

    #[test]
    fn empty_blobs_mean_no_assignment() {
        let m = DescribedGroupMember::default();
        let d = decode_member(m, true, "g").unwrap();
        assert!(d.assignment.is_empty() && d.subscription.is_empty());
    }
}
