//! Reading: `poll` and `next()`, opening fetched partition data into
//! cursors, and handling what the group thread sends (revocations,
//! assignments, lost partitions, commit ticks) between records.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::cursor::Cursor;
use super::fetcher::PartitionData;
use super::offsets::{EARLIEST, LATEST};
use super::{
    AutoOffsetReset, Consumer, IsolationLevel, Message, PartState, RebalanceListener, Records,
    SubKind, TopicPartition, Wait,
};
use crate::error::{Error, ErrorKind, Result};
use crate::group::{GroupEvent, GroupMsg};
use crate::protocol::ErrorCode;

impl Consumer {
    /// Up to `max_poll_records` records, waiting up to `timeout` for the
    /// first one. Also runs rebalance and commit callbacks.
    pub fn poll(&mut self, timeout: Duration) -> Result<Records> {
        self.check_reentry()?;
        let deadline = Instant::now() + timeout;
        let max = self.cfg.max_poll_records;
        let mut messages = Vec::with_capacity(max.min(1024));
        while messages.len() < max {
            let wait = if messages.is_empty() {
                Wait::Until(deadline)
            } else {
                Wait::Now
            };
            match self.next_message(wait) {
                Some(Ok(m)) => messages.push(m),
                Some(Err(e)) => {
                    if messages.is_empty() {
                        return Err(e);
                    }
                    self.pending_errors.push_back(e);
                    break;
                }
                None => break,
            }
        }
        Ok(Records { messages })
    }

    pub(super) fn check_reentry(&self) -> Result<()> {
        if self.in_callback {
            return Err(Error::invalid_argument(
                "poll/next called from a rebalance callback; return from the callback first",
            ));
        }
        if self.closed {
            return Err(Error::closed("the consumer is closed"));
        }
        Ok(())
    }

    /// Whether a group subscription still waits for its first assignment.
    fn joining(&self) -> bool {
        !self.assigned_once
            && self.fatal.is_none()
            && matches!(self.kind, SubKind::Topics(_) | SubKind::Pattern(_))
    }

    /// Whether background work waits (group events, commit answers,
    /// positions to look up, a metadata refresh for a pattern).
    #[inline]
    fn attention(&self) -> bool {
        (self.need_positions && !self.positions_in_flight)
            || !self.bg_rx.is_empty()
            || !self.stashed_events.is_empty()
            || !self.finished_commits.is_empty()
            || (!self.pending_commits.is_empty() && !self.commit_rx.is_empty())
            || self.group.as_ref().is_some_and(|g| !g.events.is_empty())
            || !self.pending_errors.is_empty()
            || (matches!(self.kind, SubKind::Pattern(_))
                && self.cluster.metadata_version() != self.pattern_version)
    }

    /// The fatal group error, once there is one: every later read returns
    /// it (a fenced or unauthorized member must not go on processing).
    fn fatal_error(&mut self) -> Option<Error> {
        let e = self.fatal.clone()?;
        // Nothing the group thread sent matters any more.
        if let Some(g) = &self.group {
            while g.events.try_recv().is_ok() {}
        }
        self.stashed_events.clear();
        Some(e)
    }

    /// The next record; `None` when `wait` passes without one.
    pub(super) fn next_message(&mut self, wait: Wait) -> Option<Result<Message>> {
        if let Some(e) = self.fatal_error() {
            return Some(Err(e));
        }
        let mut wait = wait;
        let mut join_deadline: Option<Instant> = None;
        loop {
            self.polls += 1;
            if let Some(g) = &self.group {
                g.polled(self.polls);
            }
            // Background work only when a read starts, never while `poll`
            // fills its batch (`Wait::Now`): an auto-commit then would
            // commit records the caller has not received yet, and a
            // revocation would run while records of the revoked partitions
            // wait in the batch. What comes meanwhile waits for the next
            // read.
            if !matches!(wait, Wait::Now) && self.attention() {
                if let Some(e) = self.pending_errors.pop_front() {
                    return Some(Err(e));
                }
                if let Err(e) = self.service() {
                    return Some(Err(e));
                }
            }
            if let Some(c) = &mut self.cursor {
                match c.next_message() {
                    Some(Ok(m)) => {
                        self.records_consumed += 1;
                        self.bytes_consumed += (m.key.as_ref().map_or(0, |k| k.len())
                            + m.value.as_ref().map_or(0, |v| v.len()))
                            as u64;
                        return Some(Ok(m));
                    }
                    Some(Err(e)) => {
                        // Java semantics: the position stays at the bad
                        // batch; fetching it again fails again until a seek.
                        let (tp, pos) = (c.tp.clone(), c.position);
                        self.cursor = None;
                        let le = self.assignment.get(&tp).and_then(|p| p.leader_epoch);
                        self.set_position(&tp, pos, le);
                        return Some(Err(e));
                    }
                    None => {
                        self.sync_cursor();
                        self.cursor = None;
                    }
                }
            }
            if let Some(data) = self.queue.pop_front() {
                match self.open(data) {
                    Ok(Some(c)) => self.cursor = Some(c),
                    Ok(None) => {}
                    Err(e) => return Some(Err(e)),
                }
                continue;
            }
            if let Ok(chunk) = self.fetcher.data_rx.try_recv() {
                self.fetcher.taken(&chunk);
                self.queue.extend(chunk.parts);
                continue;
            }
            // A fetch connection whose login is refused fetches nothing:
            // say so rather than return no records until the timeout.
            if let Some(e) = self.fetcher.take_auth_failure() {
                return Some(Err(e));
            }
            // Nothing buffered: wait for data or background work.
            if matches!(wait, Wait::Now) {
                return None;
            }
            let now = Instant::now();
            let deadline = match wait {
                Wait::Now => Some(now),
                Wait::Forever => None,
                Wait::For(d) if self.joining() => {
                    // consumer_timeout_ms counts from the first assignment:
                    // joining a group takes seconds (Kafka's initial
                    // rebalance delay), and a consumer that never got
                    // partitions has not run out of records. The join may
                    // take up to request_timeout_ms.
                    let join_by =
                        *join_deadline.get_or_insert(now + self.cfg.client.request_timeout());
                    Some(join_by + d)
                }
                Wait::For(d) => {
                    let t = now + d;
                    wait = Wait::Until(t);
                    Some(t)
                }
                Wait::Until(t) => Some(t),
            };
            if deadline.is_some_and(|t| now >= t) {
                return None;
            }
            // Wake at least every second to show the group thread that the
            // consumer is still polling, and to retry position lookups.
            let mut until = now + Duration::from_secs(1);
            if let Some(t) = deadline {
                until = until.min(t);
            }
            if let Some(t) = self.positions_retry_at {
                until = until.min(t.max(now));
            }
            // Nothing buffered or being read: an answer arriving now is
            // taken at once, so the fetcher need not wait for this thread.
            self.fetcher.waiting(true);
            // Group events, commit answers and background results nudge the
            // data channel (`fetcher::Nudge`), so this waits on it alone;
            // what came before the flag was set is taken here.
            let mut news = false;
            if let Some(m) = self.group.as_ref().and_then(|g| g.events.try_recv().ok()) {
                self.stashed_events.push_back(m);
                news = true;
            }
            if let Ok(c) = self.commit_rx.try_recv() {
                self.finish_async_commit(c);
                news = true;
            }
            if let Ok(b) = self.bg_rx.try_recv() {
                self.handle_background(b);
                news = true;
            }
            if !news {
                if let Ok(chunk) = self
                    .fetcher
                    .data_rx
                    .recv_timeout(until.saturating_duration_since(now))
                {
                    self.fetcher.taken(&chunk);
                    self.queue.extend(chunk.parts);
                }
            }
            self.fetcher.waiting(false);
        }
    }

    /// Makes a cursor of fetched data, or acts on its error.
    fn open(&mut self, data: PartitionData) -> Result<Option<Cursor>> {
        let Some(p) = self.assignment.get_mut(&data.tp) else {
            return Ok(None);
        };
        if p.epoch != data.epoch || p.paused || p.position != Some(data.fetch_offset) {
            return Ok(None); // stale: a seek, pause or reset happened since
        }
        let pos = data.fetch_offset;
        match data.error {
            ErrorCode::NONE => Ok(Some(Cursor::new(
                data,
                pos,
                self.read_options,
                self.cfg.isolation_level == IsolationLevel::ReadCommitted,
            ))),
            ErrorCode::OFFSET_OUT_OF_RANGE => {
                let (tp, hw) = (data.tp, data.high_watermark);
                match self.cfg.auto_offset_reset {
                    AutoOffsetReset::None => {
                        p.stopped = true;
                        Err(Error::broker(
                            ErrorCode::OFFSET_OUT_OF_RANGE,
                            format!(
                                "fetch position {pos} is out of range (high watermark {hw}) and auto_offset_reset is none; seek() to a valid offset"
                            ),
                        )
                        .with_partition(&*tp.topic, tp.partition)
                        .with_offset(pos))
                    }
                    policy => {
                        log::info!("{tp}: fetch offset {pos} is out of range; resetting per auto_offset_reset");
                        reset_per_policy(p, policy);
                        self.need_positions = true;
                        self.positions_retry_at = None;
                        Ok(None)
                    }
                }
            }
            // Sent by the fetch thread (never passed on from a broker): the
            // metadata shows another topic id than the one this position
            // was fetched under.
            ErrorCode::INCONSISTENT_TOPIC_ID => {
                let tp = data.tp;
                match self.cfg.auto_offset_reset {
                    AutoOffsetReset::None => {
                        p.stopped = true;
                        Err(Error::new(
                            ErrorKind::TopicRecreated,
                            format!(
                                "the topic was deleted and created again (its topic id changed); position {pos} belongs to the old incarnation and auto_offset_reset is none; seek() to read the new one"
                            ),
                        )
                        .with_partition(&*tp.topic, tp.partition)
                        .with_offset(pos))
                    }
                    policy => {
                        log::warn!("{tp}: the topic was deleted and created again (new topic id); position {pos} belonged to the old incarnation; resetting per auto_offset_reset");
                        reset_per_policy(p, policy);
                        p.leader_epoch = None;
                        self.need_positions = true;
                        self.positions_retry_at = None;
                        Ok(None)
                    }
                }
            }
            ErrorCode::NOT_LEADER_OR_FOLLOWER | ErrorCode::FENCED_LEADER_EPOCH => {
                let (tp, le) = (data.tp, p.leader_epoch);
                self.await_validation(&tp, pos, le);
                Ok(None)
            }
            ErrorCode::MESSAGE_TOO_LARGE => {
                p.stopped = true;
                Err(Error::new(
                    ErrorKind::MessageTooLarge,
                    format!(
                        "a record batch at offset {pos} is larger than max_partition_fetch_bytes ({} bytes) and this broker cannot send it whole; raise max_partition_fetch_bytes",
                        self.cfg.max_partition_fetch_bytes
                    ),
                )
                .with_partition(&*data.tp.topic, data.tp.partition)
                .with_offset(pos))
            }
            code => {
                p.stopped = true;
                Err(Error::broker(code, "fetching records; seek() to retry")
                    .with_partition(&*data.tp.topic, data.tp.partition)
                    .with_offset(pos))
            }
        }
    }

    /// Background work on the consumer's thread: fatal errors, commit
    /// answers and callbacks, group events, pattern updates, positions.
    fn service(&mut self) -> Result<()> {
        if let Some(e) = &self.fatal {
            return Err(e.clone());
        }
        while let Ok(c) = self.commit_rx.try_recv() {
            self.finish_async_commit(c);
        }
        while let Ok(b) = self.bg_rx.try_recv() {
            self.handle_background(b);
        }
        self.run_commit_callbacks();
        if let Some(g) = &self.group {
            while let Ok(m) = g.events.try_recv() {
                self.stashed_events.push_back(m);
            }
        }
        while let Some(m) = self.stashed_events.pop_front() {
            self.handle_event(m)?;
        }
        if matches!(self.kind, SubKind::Pattern(_)) {
            self.pattern_version = self.cluster.metadata_version();
            let snap = self.cluster.metadata();
            self.check_pattern(&snap);
        }
        if self.need_positions {
            self.start_position_lookup();
        }
        match self.pending_errors.pop_front() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn handle_event(&mut self, m: GroupMsg) -> Result<()> {
        let current = m.epoch == self.sub_epoch;
        match m.event {
            GroupEvent::Revoke(_) | GroupEvent::Assigned { .. } | GroupEvent::Lost(_)
                if !current =>
            {
                // About a membership given up by unsubscribe(): its
                // partitions were revoked then. Not acknowledged either: the
                // group thread started over.
                log::debug!("dropping a group event of an earlier subscription");
            }
            GroupEvent::Revoke(parts) => {
                self.revoke(&parts);
                if let Some(g) = &self.group {
                    g.ack(m.id);
                }
            }
            GroupEvent::Assigned { added, revoked } => {
                self.assigned_once = true;
                if !revoked.is_empty() {
                    self.revoke(&revoked);
                }
                for tp in &added {
                    if !self.assignment.contains_key(tp) {
                        self.add_partition(tp.clone());
                    }
                }
                self.cluster.add_interest(added.iter().map(|tp| &*tp.topic));
                self.call_listener(|l, c| l.on_partitions_assigned(c, &added));
                if let Some(g) = &self.group {
                    g.ack(m.id);
                }
            }
            GroupEvent::Lost(parts) => {
                self.sync_cursor();
                self.call_listener(|l, c| l.on_partitions_lost(c, &parts));
                for tp in &parts {
                    self.drop_partition(tp);
                }
            }
            GroupEvent::CommitDue => {
                if let Some(g) = &self.group {
                    g.shared.commit_due.store(false, Ordering::Release);
                }
                self.auto_commit();
            }
            GroupEvent::Fatal(e) => {
                // The consumer cannot go on (fenced, unauthorized, ...): its
                // partitions may belong to another member now, so they are
                // lost, and every later read returns this error.
                self.fatal = Some(e.clone());
                self.sync_cursor();
                let all: Vec<TopicPartition> = self.assignment.keys().cloned().collect();
                if !all.is_empty() {
                    if matches!(self.kind, SubKind::Topics(_) | SubKind::Pattern(_)) {
                        self.call_listener(|l, c| l.on_partitions_lost(c, &all));
                    }
                    for tp in &all {
                        self.drop_partition(tp);
                    }
                }
                self.queue.clear();
                return Err(e);
            }
        }
        Ok(())
    }

    /// Revokes `parts`: auto-commit (sync), the listener, then forget them.
    pub(super) fn revoke(&mut self, parts: &[TopicPartition]) {
        self.sync_cursor();
        if self.cfg.enable_auto_commit {
            let offsets = self.positions_of(parts);
            if !offsets.is_empty() {
                if let Err(e) = self.commit_sync_inner(offsets) {
                    log::warn!(
                        "auto-commit before revoking {} partition(s) failed: {e}",
                        parts.len()
                    );
                }
            }
        }
        self.call_listener(|l, c| l.on_partitions_revoked(c, parts));
        for tp in parts {
            self.drop_partition(tp);
        }
    }

    pub(super) fn call_listener(
        &mut self,
        f: impl FnOnce(&mut dyn RebalanceListener, &mut Consumer),
    ) {
        let Some(mut l) = self.listener.take() else {
            return;
        };
        self.in_callback = true;
        f(l.as_mut(), self);
        self.in_callback = false;
        if self.listener.is_none() {
            self.listener = Some(l);
        }
    }
}

/// Drops `p`'s position (and any validation it awaited) for a lookup of
/// the earliest or latest offset per `policy`, which the consumer runs on
/// its next turn once told that positions are needed.
fn reset_per_policy(p: &mut PartState, policy: AutoOffsetReset) {
    p.position = None;
    p.pending_reset = Some(if policy == AutoOffsetReset::Earliest {
        EARLIEST
    } else {
        LATEST
    });
    p.pending_validation = None;
}
