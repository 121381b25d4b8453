//! The KIP-848 consumer group protocol (`group_protocol=consumer`): one
//! ConsumerGroupHeartbeat loop; the coordinator assigns partitions and the
//! member reconciles (revoke what left the target, take what joined it,
//! report what it owns in the next heartbeat).

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{GroupEvent, Runner};
use crate::cluster::TopicSelection;
use crate::error::Error;
use crate::net::Connection;
use crate::partition::TopicPartition;
use crate::protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use crate::protocol::messages::ConsumerGroupHeartbeatRequest;
use crate::protocol::{ErrorCode, Uuid};

/// Leave as a dynamic member.
const LEAVE_EPOCH: i32 = -1;
/// Leave as a static member, keeping the instance's place.
const STATIC_LEAVE_EPOCH: i32 = -2;

struct Member848 {
    member_id: String,
    epoch: i32,
    owned: BTreeSet<TopicPartition>,
    target: Option<Vec<(Uuid, Vec<i32>)>>,
    interval: Duration,
    next_heartbeat: Instant,
    joined: bool,
    retry_at: Option<Instant>,
}

fn fatal(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::GROUP_AUTHORIZATION_FAILED
            | ErrorCode::TOPIC_AUTHORIZATION_FAILED
            | ErrorCode::INVALID_REQUEST
            | ErrorCode::GROUP_MAX_SIZE_REACHED
            | ErrorCode::UNSUPPORTED_ASSIGNOR
            | ErrorCode::UNSUPPORTED_VERSION
            | ErrorCode::UNRELEASED_INSTANCE_ID
            | ErrorCode::FENCED_INSTANCE_ID
    )
}

/// A random member id, as Kafka formats UUIDs (KIP-1082: the client
/// picks its member id).
fn random_member_id() -> String {
    let mut bytes = [0u8; 16];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.write_u32(std::process::id());
        chunk.copy_from_slice(&h.finish().to_be_bytes());
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // variant
    Uuid(bytes).to_string()
}

/// Resolves a target assignment given by topic id, or `None` when an id is
/// not in the metadata yet.
pub(crate) fn resolve(
    target: &[(Uuid, Vec<i32>)],
    names: &HashMap<Uuid, Arc<str>>,
) -> Option<BTreeSet<TopicPartition>> {
    let mut out = BTreeSet::new();
    for (id, parts) in target {
        let name = names.get(id)?;
        for p in parts {
            out.insert(TopicPartition::new(Arc::clone(name), *p));
        }
    }
    Some(out)
}

pub(super) fn run(r: &mut Runner) {
    let mut m = Member848 {
        member_id: String::new(),
        epoch: 0,
        owned: BTreeSet::new(),
        target: None,
        interval: r.cfg.heartbeat_interval,
        next_heartbeat: Instant::now(),
        joined: false,
        retry_at: None,
    };
    loop {
        let old = r.subscription.clone();
        r.handle_cmds();
        if let Some((leave, _)) = &r.closing {
            if *leave && m.joined {
                m.leave(r);
            }
            return;
        }
        let now = Instant::now();
        if r.take_restart() {
            // The consumer unsubscribed since and forgot every partition:
            // leave, and join afresh (epoch 0) for the new subscription.
            m.owned.clear();
            m.target = None;
            if m.joined {
                m.leave(r);
            }
            m.next_heartbeat = now;
        }
        if std::mem::take(&mut r.acked) {
            // The consumer took the new assignment: report it at once.
            m.next_heartbeat = now;
        }
        if r.subscription != old {
            m.next_heartbeat = now;
        }
        r.tick(now);
        if r.must_leave_for_poll(now, m.joined) {
            m.leave(r);
            m.lose(r);
            r.left_for_poll();
        }
        if r.polled_again() {
            m.next_heartbeat = now;
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
            } else if m.joined && !r.awaiting() {
                m.leave(r);
            }
            r.wait(r.next_timer(now + Duration::from_secs(1)));
            continue;
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
        if !r.awaiting() {
            if let Some(target) = m.target.take() {
                m.reconcile(r, target);
                continue;
            }
        }
        if now >= m.next_heartbeat {
            m.heartbeat(r, &conn);
            continue;
        }
        r.wait(r.next_timer(m.next_heartbeat));
    }
}

impl Member848 {
    fn lose(&mut self, r: &mut Runner) {
        self.epoch = 0;
        self.joined = false;
        self.target = None;
        r.set_member(&self.member_id, -1);
        if !self.owned.is_empty() {
            let lost: Vec<TopicPartition> = std::mem::take(&mut self.owned).into_iter().collect();
            r.emit(GroupEvent::Lost(lost));
        }
    }

    fn reconcile(&mut self, r: &mut Runner, target: Vec<(Uuid, Vec<i32>)>) {
        let names = |r: &Runner| -> HashMap<Uuid, Arc<str>> {
            r.cluster
                .metadata()
                .topics
                .values()
                .filter(|t| !t.topic_id.is_zero())
                .map(|t| (t.topic_id, Arc::from(t.name.as_str())))
                .collect()
        };
        let mut resolved = resolve(&target, &names(r));
        if resolved.is_none() {
            r.cluster
                .add_interest(r.subscription.iter().map(String::as_str));
            let _ = r.cluster.refresh(TopicSelection::Interest);
            resolved = resolve(&target, &names(r));
        }
        let Some(new) = resolved else {
            log::debug!(
                "group `{}`: assigned topic ids not in the metadata yet; retrying",
                r.group_id
            );
            self.target = Some(target);
            self.retry_at = Some(Instant::now() + r.backoff());
            return;
        };
        let revoked: Vec<TopicPartition> = self.owned.difference(&new).cloned().collect();
        let added: Vec<TopicPartition> = new.difference(&self.owned).cloned().collect();
        if revoked.is_empty() && added.is_empty() {
            return;
        }
        self.owned = new;
        r.metrics.rebalanced();
        // The next heartbeat after the acknowledgement reports the new
        // ownership (the run loop sends it at once).
        r.emit_for_ack(GroupEvent::Assigned { added, revoked });
    }

    fn request(&self, r: &Runner, full: bool) -> ConsumerGroupHeartbeatRequest {
        let snap = r.cluster.metadata();
        let mut by_topic: HashMap<Uuid, Vec<i32>> = HashMap::new();
        for tp in &self.owned {
            if let Some(t) = snap.topic(&tp.topic) {
                by_topic.entry(t.topic_id).or_default().push(tp.partition);
            }
        }
        let mut owned: Vec<TopicPartitions> = by_topic
            .into_iter()
            .map(|(topic_id, mut partitions)| {
                partitions.sort_unstable();
                TopicPartitions {
                    topic_id,
                    partitions,
                    ..Default::default()
                }
            })
            .collect();
        owned.sort_by_key(|t| t.topic_id.0);
        ConsumerGroupHeartbeatRequest {
            group_id: r.group_id.clone(),
            member_id: self.member_id.clone(),
            member_epoch: self.epoch,
            instance_id: r.cfg.group_instance_id.clone(),
            rack_id: r.cfg.client_rack.clone(),
            rebalance_timeout_ms: r.cfg.max_poll_interval.as_millis().min(i32::MAX as u128) as i32,
            subscribed_topic_names: Some(r.subscription.iter().cloned().collect()),
            server_assignor: r.cfg.group_remote_assignor.clone(),
            // While the consumer still applies a new assignment, report
            // nothing (null: unchanged).
            topic_partitions: full.then_some(owned),
            ..Default::default()
        }
    }

    fn heartbeat(&mut self, r: &mut Runner, conn: &Connection) {
        let now = Instant::now();
        self.next_heartbeat = now + self.interval;
        if self.member_id.is_empty() {
            if let Ok(v) = conn.versions() {
                if v.max_version(crate::protocol::ApiKey::CONSUMER_GROUP_HEARTBEAT)
                    .is_some_and(|v| v >= 1)
                {
                    self.member_id = random_member_id();
                }
            }
        }
        let request = self.request(r, !r.awaiting() || self.epoch == 0);
        let answer = r.call(conn, r.cfg.client.request_timeout(), |_| request);
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                if r.closing.is_none() {
                    log::debug!("group `{}`: ConsumerGroupHeartbeat failed: {e}", r.group_id);
                    r.coordinator_lost();
                    self.retry_at = Some(now + r.backoff());
                }
                return;
            }
        };
        let code = ErrorCode(answer.error_code);
        match code {
            ErrorCode::NONE => {}
            ErrorCode::UNKNOWN_MEMBER_ID | ErrorCode::FENCED_MEMBER_EPOCH => {
                log::info!("group `{}`: fenced ({code}); rejoining", r.group_id);
                self.lose(r);
                self.next_heartbeat = now;
                return;
            }
            c if c.is_coordinator_error() => {
                r.coordinator_lost();
                self.retry_at = Some(now + r.backoff());
                return;
            }
            c if fatal(c) => {
                self.lose(r);
                r.fail(Error::broker(
                    c,
                    format!(
                        "heartbeat in group `{}`{}",
                        r.group_id,
                        answer
                            .error_message
                            .map_or_else(String::new, |m| format!(": {m}"))
                    ),
                ));
                return;
            }
            c => {
                log::debug!("group `{}`: ConsumerGroupHeartbeat: {c}", r.group_id);
                self.retry_at = Some(now + r.backoff());
                return;
            }
        }
        r.metrics.heartbeat();
        if let Some(id) = answer.member_id {
            self.member_id = id;
        }
        self.epoch = answer.member_epoch;
        self.joined = true;
        if answer.heartbeat_interval_ms > 0 {
            self.interval = Duration::from_millis(answer.heartbeat_interval_ms as u64);
            self.next_heartbeat = now + self.interval;
        }
        r.set_member(&self.member_id, self.epoch);
        if let Some(a) = answer.assignment {
            self.target = Some(
                a.topic_partitions
                    .into_iter()
                    .map(|t| (t.topic_id, t.partitions))
                    .collect(),
            );
        }
    }

    fn leave(&mut self, r: &mut Runner) {
        let Some(conn) = r.coordinator.as_ref().map(|(_, c)| c.clone()) else {
            self.joined = false;
            self.epoch = 0;
            self.target = None;
            return;
        };
        let mut request = self.request(r, false);
        request.member_epoch = if r.cfg.group_instance_id.is_some() {
            STATIC_LEAVE_EPOCH
        } else {
            LEAVE_EPOCH
        };
        request.subscribed_topic_names = None;
        request.rebalance_timeout_ms = -1;
        let closing = r.closing.take();
        let timeout = r.cfg.client.request_timeout().min(Duration::from_secs(5));
        if let Err(e) = r.call(&conn, timeout, |_| request) {
            log::debug!("group `{}`: leaving failed: {e}", r.group_id);
        }
        if r.closing.is_none() {
            r.closing = closing;
        }
        self.joined = false;
        self.epoch = 0;
        // A target received before leaving is void for the next membership.
        self.target = None;
        r.set_member(&self.member_id, -1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_ids_are_kafka_uuids() {
        let a = random_member_id();
        let b = random_member_id();
        assert_eq!(a.len(), 22);
        assert_ne!(a, b);
    }

    #[test]
    fn targets_resolve_by_topic_id() {
        let id = Uuid([7; 16]);
        let names: HashMap<Uuid, Arc<str>> = [(id, Arc::from("t"))].into_iter().collect();
        let got = resolve(&[(id, vec![2, 0])], &names).unwrap();
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            vec![TopicPartition::new("t", 0), TopicPartition::new("t", 2)]
        );
        assert!(resolve(&[(Uuid([1; 16]), vec![0])], &names).is_none());
    }
}
