//! The classic group protocol: JoinGroup (with the member-id retry),
//! leader-side assignment, SyncGroup, Heartbeat and LeaveGroup, with eager
//! or cooperative rebalancing and static membership.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::assignor::{self, Member};
use super::protocol::{self, Subscription};
use super::AssignmentStrategy;
use super::{GroupEvent, Runner};
use crate::cluster::TopicSelection;
use crate::error::{Error, ErrorKind, Result};
use crate::net::Connection;
use crate::partition::TopicPartition;
use crate::protocol::messages::join_group_request::JoinGroupRequestProtocol;
use crate::protocol::messages::join_group_response::JoinGroupResponseMember;
use crate::protocol::messages::leave_group_request::MemberIdentity;
use crate::protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use crate::protocol::messages::{
    HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest,
};
use crate::protocol::ErrorCode;

const PROTOCOL_TYPE: &str = "consumer";
/// Extra time a JoinGroup may take beyond the rebalance timeout (as Java).
const JOIN_SLACK: Duration = Duration::from_secs(5);

struct Classic {
    member_id: String,
    generation: i32,
    owned: BTreeSet<TopicPartition>,
    /// The last assignment, for the sticky assignor's user data (eager
    /// members have revoked it by the time they rejoin).
    last_assignment: Vec<TopicPartition>,
    needs_join: bool,
    stable: bool,
    eager: bool,
    rejoin_after_ack: bool,
    next_heartbeat: Instant,
    retry_at: Option<Instant>,
    /// Partition counts (None: no such topic) at the last assignment, to
    /// rejoin when they change.
    topic_counts: BTreeMap<Arc<str>, Option<usize>>,
}

fn is_fatal(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::FENCED_INSTANCE_ID
            | ErrorCode::INCONSISTENT_GROUP_PROTOCOL
            | ErrorCode::INVALID_SESSION_TIMEOUT
            | ErrorCode::INVALID_GROUP_ID
            | ErrorCode::GROUP_AUTHORIZATION_FAILED
            | ErrorCode::GROUP_MAX_SIZE_REACHED
            | ErrorCode::UNSUPPORTED_VERSION
            | ErrorCode::INVALID_REQUEST
    )
}

pub(super) fn run(r: &mut Runner) {
    let eager = !r.cfg.assignors.iter().all(|a| a.is_cooperative());
    let mut m = Classic {
        member_id: String::new(),
        generation: -1,
        owned: BTreeSet::new(),
        last_assignment: Vec::new(),
        needs_join: true,
        stable: false,
        eager,
        rejoin_after_ack: false,
        next_heartbeat: Instant::now(),
        retry_at: None,
        topic_counts: BTreeMap::new(),
    };
    loop {
        let old_subscription = r.subscription.clone();
        r.handle_cmds();
        if let Some((leave, _)) = &r.closing {
            if *leave {
                m.leave(r, "the consumer is closing");
            }
            return;
        }
        if r.take_restart() {
            // The consumer unsubscribed since: it revoked and forgot every
            // partition, and events about them are void. Leave, so that a
            // subscription to the same topics joins afresh instead of
            // carrying on with partitions the consumer no longer reads.
            m.owned.clear();
            m.last_assignment.clear();
            m.rejoin_after_ack = false;
            if !m.member_id.is_empty() || m.stable {
                m.leave(r, "the consumer unsubscribed");
            }
            m.needs_join = true;
        }
        r.acked = false;
        if r.subscription != old_subscription && !r.subscription.is_empty() {
            m.needs_join = true;
        }
        let now = Instant::now();
        r.tick(now);
        let in_group = !m.member_id.is_empty() || m.stable;
        if r.must_leave_for_poll(now, in_group) {
            m.leave(r, "consumer poll timeout has expired");
            m.lose(r);
            r.left_for_poll();
        }
        if r.polled_again() {
            m.needs_join = true;
        }
        if r.fatal || r.left_at_polls.is_some() {
            r.wait(r.next_timer(now + Duration::from_secs(1)));
            continue;
        }
        if r.subscription.is_empty() {
            // A pattern that matches no topic any more (an unsubscribe
            // restarts above): give the partitions back, then leave.
            if !m.owned.is_empty() && !r.awaiting() {
                let all: Vec<TopicPartition> = std::mem::take(&mut m.owned).into_iter().collect();
                r.emit_for_ack(GroupEvent::Revoke(all));
            } else if in_group && !r.awaiting() {
                m.leave(r, "the subscription matches no topic");
            }
            r.wait(r.next_timer(now + Duration::from_secs(1)));
            continue;
        }
        if r.awaiting() {
            // Heartbeat while the consumer works on the event.
            let mut wake = now + Duration::from_secs(1);
            if m.stable {
                if now >= m.next_heartbeat {
                    if let Some(conn) = r.ensure_coordinator() {
                        m.heartbeat(r, &conn);
                        continue;
                    }
                }
                wake = ack_wait_wake(now, m.next_heartbeat, r.coordinator_retry_at, wake);
            }
            r.wait(r.next_timer(wake));
            continue;
        }
        if m.rejoin_after_ack {
            m.rejoin_after_ack = false;
            m.needs_join = true;
        }
        if let Some(t) = m.retry_at {
            if t > now {
                r.wait(r.next_timer(t));
                continue;
            }
            m.retry_at = None;
        }
        let Some(conn) = r.ensure_coordinator() else {
            r.wait(r.next_timer(now + r.backoff()));
            continue;
        };
        if m.needs_join {
            if m.eager && !m.owned.is_empty() {
                let all: Vec<TopicPartition> = std::mem::take(&mut m.owned).into_iter().collect();
                r.emit_for_ack(GroupEvent::Revoke(all));
                continue;
            }
            m.join_and_sync(r, &conn);
            continue;
        }
        if now >= m.next_heartbeat {
            m.heartbeat(r, &conn);
            if m.metadata_changed(r) {
                log::info!(
                    "group `{}`: the partitions of subscribed topics changed; rejoining",
                    r.group_id
                );
                m.needs_join = true;
            }
            continue;
        }
        r.wait(r.next_timer(m.next_heartbeat));
    }
}

/// When to wake while waiting for the consumer's acknowledgement as a
/// stable member: for the next heartbeat, or when the coordinator may be
/// looked up again if a due heartbeat found none; never in the past (that
/// would spin), never after `latest`.
fn ack_wait_wake(
    now: Instant,
    next_heartbeat: Instant,
    coordinator_retry_at: Option<Instant>,
    latest: Instant,
) -> Instant {
    let due = if next_heartbeat > now {
        next_heartbeat
    } else {
        coordinator_retry_at.unwrap_or(now)
    };
    due.max(now + Duration::from_millis(1)).min(latest)
}

impl Classic {
    fn static_member(&self, r: &Runner) -> bool {
        r.cfg.group_instance_id.is_some()
    }

    /// The membership is gone: the owned partitions are lost.
    fn lose(&mut self, r: &mut Runner) {
        self.generation = -1;
        self.stable = false;
        r.set_member(&self.member_id, -1);
        if !self.owned.is_empty() {
            let lost: Vec<TopicPartition> = std::mem::take(&mut self.owned).into_iter().collect();
            r.emit(GroupEvent::Lost(lost));
        }
    }

    /// The errors JoinGroup and SyncGroup share (`api`, and `verb` for the
    /// message): the member id or generation is gone (lost, rejoin), the
    /// coordinator moved, a fatal error, or one to retry after a backoff.
    fn join_error(&mut self, r: &mut Runner, code: ErrorCode, api: &str, verb: &str) {
        match code {
            ErrorCode::UNKNOWN_MEMBER_ID => {
                self.member_id.clear();
                self.lose(r);
            }
            ErrorCode::ILLEGAL_GENERATION => self.lose(r),
            c if c.is_coordinator_error() => {
                r.coordinator_lost();
                self.back_off(r);
            }
            c if is_fatal(c) => {
                r.fail(Error::broker(c, format!("{verb} group `{}`", r.group_id)));
            }
            c => {
                log::debug!("group `{}`: {api}: {c}", r.group_id);
                self.back_off(r);
            }
        }
    }

    fn back_off(&mut self, r: &Runner) {
        self.retry_at = Some(Instant::now() + r.backoff());
    }

    /// Handles a transport error of a coordinator request.
    fn transport_error(&mut self, r: &mut Runner, what: &str, e: &Error) {
        if e.kind() == ErrorKind::Closed && r.closing.is_some() {
            return;
        }
        log::debug!("group `{}`: {what} failed: {e}", r.group_id);
        r.coordinator_lost();
        self.back_off(r);
    }

    fn subscription_bytes(
        &self,
        r: &Runner,
        strategy: AssignmentStrategy,
    ) -> Result<crate::bytes::Bytes> {
        let user_data = match strategy {
            AssignmentStrategy::Sticky
                if self.generation >= 0 || !self.last_assignment.is_empty() =>
            {
                Some(protocol::sticky_user_data(
                    &self.last_assignment,
                    self.generation,
                )?)
            }
            AssignmentStrategy::CooperativeSticky => {
                Some(protocol::cooperative_user_data(self.generation))
            }
            _ => None,
        };
        protocol::encode_subscription(&Subscription {
            topics: r.subscription.iter().cloned().collect(),
            user_data,
            owned: self.owned.iter().cloned().collect(),
            generation: self.generation,
            rack: r.cfg.client_rack.clone(),
        })
    }

    fn join_and_sync(&mut self, r: &mut Runner, conn: &Connection) {
        let mut protocols = Vec::new();
        for a in &r.cfg.assignors {
            match self.subscription_bytes(r, *a) {
                Ok(metadata) => protocols.push(JoinGroupRequestProtocol {
                    name: a.name().to_owned(),
                    metadata,
                    ..Default::default()
                }),
                Err(e) => {
                    r.fail(e);
                    return;
                }
            }
        }
        let cfg = Arc::clone(&r.cfg);
        let group_id = r.group_id.clone();
        let timeout = (cfg.max_poll_interval + JOIN_SLACK).max(cfg.client.request_timeout());
        let member_id = self.member_id.clone();
        let mut static_unsupported = false;
        let joined = r.call(conn, timeout, |v| {
            static_unsupported = v < 5 && cfg.group_instance_id.is_some();
            JoinGroupRequest {
                group_id: group_id.clone(),
                session_timeout_ms: cfg.session_timeout.as_millis().min(i32::MAX as u128) as i32,
                rebalance_timeout_ms: cfg.max_poll_interval.as_millis().min(i32::MAX as u128)
                    as i32,
                member_id,
                group_instance_id: if v >= 5 {
                    cfg.group_instance_id.clone()
                } else {
                    None
                },
                protocol_type: PROTOCOL_TYPE.to_owned(),
                protocols,
                reason: Some("joining (kafka-blocking)".to_owned()),
                ..Default::default()
            }
        });
        if static_unsupported {
            r.fail(Error::new(
                ErrorKind::UnsupportedVersion,
                "group_instance_id (static membership) needs JoinGroup v5 (Kafka 2.3+)",
            ));
            return;
        }
        let joined = match joined {
            Ok(j) => j,
            Err(e) => return self.transport_error(r, "JoinGroup", &e),
        };
        let code = ErrorCode(joined.error_code);
        match code {
            ErrorCode::NONE => {}
            ErrorCode::MEMBER_ID_REQUIRED => {
                // KIP-394: rejoin at once with the id the coordinator gave.
                self.member_id = joined.member_id;
                return;
            }
            c => {
                self.join_error(r, c, "JoinGroup", "joining");
                return;
            }
        }
        self.member_id = joined.member_id.clone();
        self.generation = joined.generation_id;
        let protocol_name = joined.protocol_name.clone().unwrap_or_default();
        let leader = joined.leader == joined.member_id;
        log::debug!(
            "group `{}`: joined generation {} as {} ({} members, protocol {protocol_name}{})",
            r.group_id,
            self.generation,
            self.member_id,
            joined.members.len(),
            if leader { ", leader" } else { "" }
        );
        let assignments = if leader && !joined.skip_assignment {
            match self.assign(r, &protocol_name, &joined.members) {
                Ok(a) => a,
                Err(e)
                    if e.kind() == ErrorKind::Protocol
                        || e.kind() == ErrorKind::InvalidArgument =>
                {
                    r.fail(e);
                    return;
                }
                Err(e) => {
                    log::debug!("group `{}`: assignment failed: {e}", r.group_id);
                    self.back_off(r);
                    return;
                }
            }
        } else {
            Vec::new()
        };
        if !leader {
            self.record_topic_counts(r, r.subscription.iter().map(|s| s.as_str()));
        }
        let cfg = Arc::clone(&r.cfg);
        let group_id = r.group_id.clone();
        let (generation, member_id) = (self.generation, self.member_id.clone());
        let synced = r.call(conn, cfg.client.request_timeout(), |v| SyncGroupRequest {
            group_id,
            generation_id: generation,
            member_id,
            group_instance_id: if v >= 3 {
                cfg.group_instance_id.clone()
            } else {
                None
            },
            protocol_type: Some(PROTOCOL_TYPE.to_owned()),
            protocol_name: Some(protocol_name.clone()),
            assignments,
            ..Default::default()
        });
        let synced = match synced {
            Ok(s) => s,
            Err(e) => return self.transport_error(r, "SyncGroup", &e),
        };
        let code = ErrorCode(synced.error_code);
        if code.is_err() && code != ErrorCode::REBALANCE_IN_PROGRESS {
            log::debug!("group `{}`: SyncGroup: {code}", r.group_id);
        }
        match code {
            ErrorCode::NONE => {}
            ErrorCode::REBALANCE_IN_PROGRESS => {
                log::debug!(
                    "group `{}`: SyncGroup: rebalance in progress; joining again",
                    r.group_id
                );
                return;
            }
            c => {
                self.join_error(r, c, "SyncGroup", "syncing");
                return;
            }
        }
        let assigned = match protocol::decode_assignment(&synced.assignment) {
            Ok(a) => a,
            Err(e) => {
                log::warn!(
                    "group `{}`: the leader sent an assignment that cannot be read ({e}); rejoining",
                    r.group_id
                );
                self.back_off(r);
                return;
            }
        };
        let assigned_set: BTreeSet<TopicPartition> = assigned.iter().cloned().collect();
        let revoked: Vec<TopicPartition> = self.owned.difference(&assigned_set).cloned().collect();
        let added: Vec<TopicPartition> = assigned_set.difference(&self.owned).cloned().collect();
        self.owned = assigned_set;
        self.last_assignment = assigned;
        self.stable = true;
        self.needs_join = false;
        self.next_heartbeat = Instant::now() + r.cfg.heartbeat_interval;
        r.set_member(&self.member_id, self.generation);
        r.metrics.rebalanced();
        log::info!(
            "group `{}` generation {}: {} partition(s) assigned, {} added, {} revoked",
            r.group_id,
            self.generation,
            self.owned.len(),
            added.len(),
            revoked.len()
        );
        if !revoked.is_empty() {
            // Cooperative: give these up, then rejoin so they can move.
            self.rejoin_after_ack = true;
        }
        r.emit_for_ack(GroupEvent::Assigned { added, revoked });
    }

    /// The leader's assignment for every member.
    fn assign(
        &mut self,
        r: &mut Runner,
        protocol_name: &str,
        members: &[JoinGroupResponseMember],
    ) -> Result<Vec<SyncGroupRequestAssignment>> {
        let strategy = AssignmentStrategy::from_name(protocol_name)
            .filter(|s| r.cfg.assignors.contains(s))
            .ok_or_else(|| {
                Error::protocol(format!(
                    "the coordinator chose assignment protocol `{protocol_name}`, which this consumer did not offer"
                ))
            })?;
        let mut decoded = Vec::with_capacity(members.len());
        let mut topics: BTreeSet<String> = BTreeSet::new();
        for m in members {
            let subscription = protocol::decode_subscription(&m.metadata).map_err(|e| {
                e.context(format_args!(
                    "reading the subscription of member {}",
                    m.member_id
                ))
            })?;
            topics.extend(subscription.topics.iter().cloned());
            decoded.push(Member {
                member_id: m.member_id.clone(),
                instance_id: m.group_instance_id.clone(),
                subscription,
            });
        }
        r.cluster.add_interest(topics.iter().map(String::as_str));
        let snap = r.cluster.refresh(TopicSelection::Interest)?;
        let mut partitions: BTreeMap<Arc<str>, i32> = BTreeMap::new();
        for t in &topics {
            if let Some(md) = snap.topic(t) {
                if md.error.is_ok() && !md.partitions.is_empty() {
                    partitions.insert(Arc::from(t.as_str()), md.partitions.len() as i32);
                }
            }
        }
        self.record_topic_counts(r, topics.iter().map(String::as_str));
        let plan = assignor::assign(strategy, &partitions, &decoded);
        let mut out = Vec::with_capacity(plan.len());
        for (member_id, parts) in plan {
            out.push(SyncGroupRequestAssignment {
                member_id,
                assignment: protocol::encode_assignment(&parts, None)?,
                ..Default::default()
            });
        }
        Ok(out)
    }

    fn record_topic_counts<'a>(&mut self, r: &Runner, topics: impl Iterator<Item = &'a str>) {
        let snap = r.cluster.metadata();
        self.topic_counts = topics
            .map(|t| {
                let count = snap
                    .topic(t)
                    .filter(|md| md.error.is_ok())
                    .map(|md| md.partitions.len());
                (Arc::from(t), count)
            })
            .collect();
    }

    /// Whether a topic of the assignment gained partitions or appeared
    /// since (as far as the metadata snapshot knows).
    fn metadata_changed(&self, r: &Runner) -> bool {
        let snap = r.cluster.metadata();
        self.topic_counts
            .iter()
            .any(|(t, before)| match snap.topic(t) {
                Some(md) if md.error.is_ok() => *before != Some(md.partitions.len()),
                _ => false,
            })
    }

    fn heartbeat(&mut self, r: &mut Runner, conn: &Connection) {
        let now = Instant::now();
        self.next_heartbeat = now + r.cfg.heartbeat_interval;
        let cfg = Arc::clone(&r.cfg);
        let group_id = r.group_id.clone();
        let (generation, member_id) = (self.generation, self.member_id.clone());
        let timeout = cfg
            .client
            .request_timeout()
            .min(cfg.session_timeout.max(Duration::from_secs(1)));
        let answer = r.call(conn, timeout, |v| HeartbeatRequest {
            group_id,
            generation_id: generation,
            member_id,
            group_instance_id: if v >= 3 {
                cfg.group_instance_id.clone()
            } else {
                None
            },
            ..Default::default()
        });
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                self.transport_error(r, "Heartbeat", &e);
                self.next_heartbeat = now + r.backoff();
                return;
            }
        };
        match ErrorCode(answer.error_code) {
            ErrorCode::NONE => r.metrics.heartbeat(),
            ErrorCode::REBALANCE_IN_PROGRESS => {
                log::debug!("group `{}`: rebalance in progress; rejoining", r.group_id);
                self.needs_join = true;
            }
            ErrorCode::ILLEGAL_GENERATION => {
                log::info!(
                    "group `{}`: generation {} is over; rejoining",
                    r.group_id,
                    self.generation
                );
                self.lose(r);
                self.needs_join = true;
            }
            ErrorCode::UNKNOWN_MEMBER_ID => {
                log::info!(
                    "group `{}`: the coordinator forgot this member; rejoining",
                    r.group_id
                );
                self.member_id.clear();
                self.lose(r);
                self.needs_join = true;
            }
            c if c.is_coordinator_error() => {
                r.coordinator_lost();
                self.next_heartbeat = now + r.backoff();
            }
            c if is_fatal(c) => {
                self.lose(r);
                r.fail(Error::broker(
                    c,
                    format!("heartbeat in group `{}`", r.group_id),
                ));
            }
            c => log::debug!("group `{}`: Heartbeat: {c}", r.group_id),
        }
    }

    /// Sends LeaveGroup (dynamic members only: a static member keeps its
    /// place until the session times out, so a restart finds it again).
    fn leave(&mut self, r: &mut Runner, reason: &str) {
        let member_id = std::mem::take(&mut self.member_id);
        self.generation = -1;
        self.stable = false;
        self.needs_join = true;
        r.set_member("", -1);
        if member_id.is_empty() || self.static_member(r) {
            return;
        }
        let Some(conn) = r.coordinator.as_ref().map(|(_, c)| c.clone()) else {
            return;
        };
        let group_id = r.group_id.clone();
        let timeout = r.cfg.client.request_timeout().min(Duration::from_secs(5));
        // A close that interrupts a call must not interrupt the leave.
        let closing = r.closing.take();
        let answer = r.call(&conn, timeout, |v| {
            if v >= 3 {
                LeaveGroupRequest {
                    group_id,
                    members: vec![MemberIdentity {
                        member_id: member_id.clone(),
                        reason: Some(reason.to_owned()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }
            } else {
                LeaveGroupRequest {
                    group_id,
                    member_id: member_id.clone(),
                    ..Default::default()
                }
            }
        });
        if r.closing.is_none() {
            r.closing = closing;
        }
        match answer {
            Ok(a) if ErrorCode(a.error_code).is_ok() => {
                log::debug!("group `{}`: left ({reason})", r.group_id)
            }
            Ok(a) => log::debug!(
                "group `{}`: LeaveGroup: {}",
                r.group_id,
                ErrorCode(a.error_code)
            ),
            Err(e) => log::debug!("group `{}`: LeaveGroup failed: {e}", r.group_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_for_an_ack_never_wakes_in_the_past() {
        let now = Instant::now();
        let second = now + Duration::from_secs(1);
        let ms = Duration::from_millis(1);
        // A heartbeat ahead: wake for it.
        let hb = now + Duration::from_millis(300);
        assert_eq!(ack_wait_wake(now, hb, None, second), hb);
        // A heartbeat due but no coordinator: wake when it may be looked
        // up again, not every millisecond.
        let retry = now + Duration::from_millis(100);
        let past = now.checked_sub(Duration::from_secs(5)).unwrap_or(now);
        assert_eq!(ack_wait_wake(now, past, Some(retry), second), retry);
        assert!(ack_wait_wake(now, past, None, second) >= now + ms);
        assert_eq!(
            ack_wait_wake(now, now + Duration::from_secs(9), None, second),
            second
        );
    }
}
