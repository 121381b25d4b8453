//! Subscription and assignment: `subscribe`, `subscribe_pattern`,
//! `unsubscribe`, `assign`, and the bookkeeping that adds and drops
//! partitions (epochs, the fetch thread's view).

use std::collections::BTreeSet;
use std::sync::Arc;

use super::pattern::Pattern;
use super::{check_topic, Consumer, PartState, RebalanceListener, SubKind, TopicPartition};
use crate::cluster::{ClusterMetadata, TopicSelection};
use crate::error::{Error, Result};
use crate::group::GroupEvent;

impl Consumer {
    /// Joins the group for `topics` (needs a `group_id`); partitions are
    /// assigned by the group on the next `poll`/`next()`. Replaces an
    /// earlier subscription.
    pub fn subscribe<I, S>(&mut self, topics: I) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let topics: BTreeSet<String> = topics
            .into_iter()
            .map(|t| t.as_ref().trim().to_owned())
            .collect();
        for t in &topics {
            check_topic(t)?;
        }
        if topics.is_empty() {
            self.unsubscribe();
            return Ok(());
        }
        self.check_can_subscribe()?;
        self.cluster.want_all_topics(false);
        self.cluster.add_interest(topics.iter().map(String::as_str));
        if !matches!(&self.kind, SubKind::Topics(t) if *t == topics) {
            self.assigned_once = false;
        }
        self.kind = SubKind::Topics(topics.clone());
        if let Some(g) = &self.group {
            g.subscribe(self.sub_epoch, topics);
        }
        Ok(())
    }

    /// Joins the group for every topic whose whole name matches `pattern`
    /// (a regular expression: see the crate's pattern syntax below), now
    /// and as topics appear (checked every `metadata_max_age_ms`). Internal
    /// topics are skipped with `exclude_internal_topics`.
    ///
    /// Syntax: literals, `.`, classes such as `[a-z0-9_]` and `[^_]`,
    /// `\d \w \s`, groups `(..)`, alternation `|`, quantifiers
    /// `* + ? {n} {n,} {n,m}`, anchors `^ $`.
    pub fn subscribe_pattern(&mut self, pattern: &str) -> Result<()> {
        let pattern = Pattern::new(pattern)?;
        self.check_can_subscribe()?;
        self.cluster.want_all_topics(true);
        self.assigned_once = false;
        self.kind = SubKind::Pattern(pattern);
        self.pattern_snapshot = None;
        self.pattern_version = self.cluster.metadata_version();
        let snap = self.cluster.refresh(TopicSelection::All)?;
        self.check_pattern(&snap);
        Ok(())
    }

    fn check_can_subscribe(&self) -> Result<()> {
        if self.group.is_none() {
            return Err(Error::invalid_argument(
                "subscribe needs a group_id; without a group, assign partitions with assign()",
            ));
        }
        if matches!(self.kind, SubKind::Assigned) {
            return Err(Error::invalid_argument(
                "this consumer has assigned partitions; call unsubscribe() before subscribe()",
            ));
        }
        Ok(())
    }

    /// Recomputes the topics of a pattern subscription when the metadata
    /// snapshot changed.
    pub(super) fn check_pattern(&mut self, snap: &Arc<ClusterMetadata>) {
        let SubKind::Pattern(p) = &self.kind else {
            return;
        };
        if self
            .pattern_snapshot
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, snap))
        {
            return;
        }
        self.pattern_snapshot = Some(Arc::clone(snap));
        let matched: BTreeSet<String> = snap
            .topics
            .values()
            // The broker's flag, as topics() and the Java client: a user
            // topic may start with `__` too.
            .filter(|t| !(self.cfg.exclude_internal_topics && t.is_internal))
            .filter(|t| p.matches(&t.name))
            .map(|t| t.name.clone())
            .collect();
        if matched != self.pattern_topics {
            log::info!(
                "pattern `{}` now matches {} topic(s)",
                p.as_str(),
                matched.len()
            );
            self.pattern_topics = matched.clone();
            if let Some(g) = &self.group {
                g.subscribe(self.sub_epoch, matched);
            }
        }
    }

    /// Leaves the group (revoking every partition: auto-commit, then the
    /// listener) or drops the manual assignment (committing its positions
    /// first with `enable_auto_commit`).
    pub fn unsubscribe(&mut self) {
        self.sync_cursor();
        let subscribed = matches!(self.kind, SubKind::Topics(_) | SubKind::Pattern(_));
        let all: Vec<TopicPartition> = self.assignment.keys().cloned().collect();
        if subscribed {
            // Revoke (commit) while still a member, then leave.
            if !all.is_empty() {
                self.revoke(&all);
            }
            // A new epoch: the group thread leaves and starts over even if
            // the next subscribe names the same topics, and the events it
            // sent for the old membership are dropped when they come.
            self.sub_epoch += 1;
            self.stashed_events
                .retain(|m| matches!(m.event, GroupEvent::Fatal(_) | GroupEvent::CommitDue));
            if let Some(g) = &self.group {
                g.subscribe(self.sub_epoch, BTreeSet::new());
            }
        } else {
            if !all.is_empty() && self.group.is_some() && self.cfg.enable_auto_commit {
                // As a revocation does: the positions are committed before
                // the partitions are forgotten.
                let offsets = self.positions_of(&all);
                if !offsets.is_empty() {
                    if let Err(e) = self.commit_sync_inner(offsets) {
                        log::warn!("auto-commit on unsubscribe failed: {e}");
                    }
                }
            }
            for tp in &all {
                self.drop_partition(tp);
            }
        }
        self.cluster.want_all_topics(false);
        self.kind = SubKind::None;
        self.pattern_topics.clear();
        self.pattern_snapshot = None;
    }

    /// Reads exactly `partitions`, without group membership (replacing an
    /// earlier assignment; empty: none). Positions start at the committed
    /// offsets (with a `group_id`) or follow `auto_offset_reset`, unless
    /// you [`seek`](Consumer::seek).
    pub fn assign<I, T>(&mut self, partitions: I) -> Result<()>
    where
        I: IntoIterator<Item = T>,
        T: Into<TopicPartition>,
    {
        if matches!(self.kind, SubKind::Topics(_) | SubKind::Pattern(_)) {
            return Err(Error::invalid_argument(
                "this consumer is subscribed; call unsubscribe() before assign()",
            ));
        }
        let wanted: BTreeSet<TopicPartition> = partitions.into_iter().map(Into::into).collect();
        for tp in &wanted {
            check_topic(&tp.topic)?;
            if tp.partition < 0 {
                return Err(Error::invalid_argument(format!(
                    "partition {} is negative",
                    tp.partition
                )));
            }
        }
        self.sync_cursor();
        let removed: Vec<TopicPartition> = self
            .assignment
            .keys()
            .filter(|tp| !wanted.contains(*tp))
            .cloned()
            .collect();
        if !removed.is_empty() && self.cfg.enable_auto_commit {
            let offsets = self.positions_of(&removed);
            if !offsets.is_empty() {
                self.commit_async_inner(offsets, None, true);
            }
        }
        for tp in &removed {
            self.drop_partition(tp);
        }
        self.cluster
            .add_interest(wanted.iter().map(|tp| &*tp.topic));
        for tp in wanted {
            if !self.assignment.contains_key(&tp) {
                self.add_partition(tp);
            }
        }
        self.kind = if self.assignment.is_empty() {
            SubKind::None
        } else {
            SubKind::Assigned
        };
        Ok(())
    }

    /// The partitions assigned now, sorted.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.assignment.keys().cloned().collect()
    }

    /// The subscribed topics (for a pattern: those it matches now).
    pub fn subscription(&self) -> BTreeSet<String> {
        match &self.kind {
            SubKind::Topics(t) => t.clone(),
            SubKind::Pattern(_) => self.pattern_topics.clone(),
            _ => BTreeSet::new(),
        }
    }

    /// Sets the listener for rebalance callbacks (replacing any earlier one).
    pub fn set_rebalance_listener(&mut self, listener: impl RebalanceListener + 'static) {
        self.listener = Some(Box::new(listener));
    }

    pub(super) fn add_partition(&mut self, tp: TopicPartition) {
        let epoch = self.bump_epoch();
        self.assignment.insert(
            tp,
            PartState {
                position: None,
                epoch,
                paused: false,
                pending_reset: None,
                leader_epoch: None,
                stopped: false,
                pending_validation: None,
            },
        );
        self.need_positions = true;
        self.positions_retry_at = None;
    }

    pub(super) fn drop_partition(&mut self, tp: &TopicPartition) {
        self.assignment.remove(tp);
        self.fetcher.remove(tp);
        if self.cursor.as_ref().is_some_and(|c| c.tp == *tp) {
            self.cursor = None;
        }
    }

    pub(super) fn bump_epoch(&mut self) -> u64 {
        let e = self.next_epoch;
        self.next_epoch += 1;
        e
    }

    /// Saves the reading cursor's progress into its partition.
    pub(super) fn sync_cursor(&mut self) {
        if let Some(c) = &self.cursor {
            if let Some(p) = self.assignment.get_mut(&c.tp) {
                if p.epoch == c.epoch {
                    p.position = Some(c.position);
                    if c.last_leader_epoch.is_some() {
                        p.leader_epoch = c.last_leader_epoch;
                    }
                }
            }
        }
    }

    /// Moves `tp` to `offset` (a new epoch: fetched data for the old
    /// position is dropped) and starts fetching it unless paused.
    pub(super) fn set_position(
        &mut self,
        tp: &TopicPartition,
        offset: i64,
        leader_epoch: Option<i32>,
    ) {
        let epoch = self.bump_epoch();
        let Some(p) = self.assignment.get_mut(tp) else {
            return;
        };
        p.position = Some(offset);
        p.epoch = epoch;
        p.pending_reset = None;
        p.pending_validation = None;
        p.stopped = false;
        p.leader_epoch = leader_epoch;
        let paused = p.paused;
        if self.cursor.as_ref().is_some_and(|c| c.tp == *tp) {
            self.cursor = None;
        }
        if paused {
            self.fetcher.remove(tp);
        } else {
            self.fetcher.set_position(tp, offset, epoch);
        }
    }

    pub(super) fn resolve<I, T>(&self, partitions: I) -> Result<Vec<TopicPartition>>
    where
        I: IntoIterator<Item = T>,
        T: Into<TopicPartition>,
    {
        let list: Vec<TopicPartition> = partitions.into_iter().map(Into::into).collect();
        for tp in &list {
            if !self.assignment.contains_key(tp) {
                return Err(Error::invalid_argument(format!(
                    "partition {tp} is not assigned to this consumer"
                )));
            }
        }
        Ok(list)
    }
}
