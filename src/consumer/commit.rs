//! Commits: `commit`/`commit_offsets` (sync), `commit_async`/
//! `commit_offsets_async` with their callbacks, commits deferred until the
//! coordinator is found, auto-commit, and `committed`.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::offsets::{commit_request, commit_result};
use super::positions;
use super::{
    Background, CommitCallback, Consumer, DeferredCommit, IsolationLevel, OffsetAndMetadata,
    PendingCommit, TopicPartition,
};
use crate::error::{Error, ErrorKind, Result};
use crate::group::Group;
use crate::net::{decode_response, Completion};
use crate::protocol::messages::OffsetCommitRequest;

impl Consumer {
    /// The positions of `parts` (those known) as offsets to commit.
    pub(super) fn positions_of(
        &self,
        parts: &[TopicPartition],
    ) -> HashMap<TopicPartition, OffsetAndMetadata> {
        parts
            .iter()
            .filter_map(|tp| {
                let p = self.assignment.get(tp)?;
                Some((
                    tp.clone(),
                    OffsetAndMetadata {
                        // A position awaiting validation (KIP-320) is
                        // still what was consumed: committing it keeps the
                        // next owner from reading those records again (it
                        // validates the offset itself).
                        offset: p.position.or(p.pending_validation.map(|(o, _)| o))?,
                        metadata: String::new(),
                        leader_epoch: p.leader_epoch,
                    },
                ))
            })
            .collect()
    }

    pub(super) fn all_positions(&mut self) -> HashMap<TopicPartition, OffsetAndMetadata> {
        self.sync_cursor();
        let all: Vec<TopicPartition> = self.assignment.keys().cloned().collect();
        self.positions_of(&all)
    }

    fn require_group(&self) -> Result<&Group> {
        self.group.as_ref().ok_or_else(|| {
            Error::invalid_argument("committing and committed offsets need a group_id")
        })
    }

    /// Commits the positions of every assigned partition (the offsets after
    /// the records returned so far) and waits for the answer.
    pub fn commit(&mut self) -> Result<()> {
        self.require_group()?;
        let offsets = self.all_positions();
        if offsets.is_empty() {
            return Ok(());
        }
        self.commit_sync_inner(offsets)
    }

    /// Commits `offsets` (the next offset to read, per partition) and waits
    /// for the answer.
    pub fn commit_offsets<I, T, O>(&mut self, offsets: I) -> Result<()>
    where
        I: IntoIterator<Item = (T, O)>,
        T: Into<TopicPartition>,
        O: Into<OffsetAndMetadata>,
    {
        self.require_group()?;
        let offsets: HashMap<TopicPartition, OffsetAndMetadata> = offsets
            .into_iter()
            .map(|(t, o)| (t.into(), o.into()))
            .collect();
        for (tp, o) in &offsets {
            crate::validate::offset(&tp.topic, tp.partition, o.offset, 0)?;
        }
        if offsets.is_empty() {
            return Ok(());
        }
        self.commit_sync_inner(offsets)
    }

    /// Commits the positions of every assigned partition without waiting;
    /// `callback` runs on this thread inside a later `poll`/`next()` (or
    /// `close`) with the outcome.
    pub fn commit_async(
        &mut self,
        callback: impl FnOnce(&HashMap<TopicPartition, OffsetAndMetadata>, Result<()>) + Send + 'static,
    ) -> Result<()> {
        self.require_group()?;
        let offsets = self.all_positions();
        self.commit_async_inner(offsets, Some(Box::new(callback)), false);
        Ok(())
    }

    /// Commits `offsets` without waiting; see [`commit_async`](Consumer::commit_async).
    pub fn commit_offsets_async<I, T, O>(
        &mut self,
        offsets: I,
        callback: impl FnOnce(&HashMap<TopicPartition, OffsetAndMetadata>, Result<()>) + Send + 'static,
    ) -> Result<()>
    where
        I: IntoIterator<Item = (T, O)>,
        T: Into<TopicPartition>,
        O: Into<OffsetAndMetadata>,
    {
        self.require_group()?;
        let offsets = offsets
            .into_iter()
            .map(|(t, o)| (t.into(), o.into()))
            .collect();
        self.commit_async_inner(offsets, Some(Box::new(callback)), false);
        Ok(())
    }

    pub(super) fn auto_commit(&mut self) {
        if !self.cfg.enable_auto_commit || self.auto_commit_in_flight {
            return;
        }
        let offsets: HashMap<TopicPartition, OffsetAndMetadata> = self
            .all_positions()
            .into_iter()
            .filter(|(tp, om)| self.last_committed.get(tp) != Some(&om.offset))
            .collect();
        if !offsets.is_empty() {
            self.commit_async_inner(offsets, None, true);
        }
    }

    pub(super) fn commit_sync_inner(
        &mut self,
        offsets: HashMap<TopicPartition, OffsetAndMetadata>,
    ) -> Result<()> {
        let timeout = self.cfg.client.request_timeout();
        let deadline = Instant::now() + timeout;
        let list: Vec<(TopicPartition, OffsetAndMetadata)> = offsets
            .iter()
            .map(|(t, o)| (t.clone(), o.clone()))
            .collect();
        let mut last: Option<Error> = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.metrics.commit_errors.fetch_add(1, Ordering::Relaxed);
                return Err(last.unwrap_or_else(|| Error::timeout("commit timed out")));
            }
            let group = self.require_group()?;
            let member = group.member();
            let group_id = group.group_id().to_owned();
            let attempt = group.coordinator(&self.cluster, left).and_then(|conn| {
                let mut version = 0;
                let r = conn.send_versioned(left, |v| {
                    version = v;
                    commit_request(v, &member, &list)
                })?;
                let _ = version;
                commit_result(&r, &group_id)
            });
            match attempt {
                Ok(()) => {
                    self.metrics.commits.fetch_add(1, Ordering::Relaxed);
                    for (tp, om) in &list {
                        self.last_committed.insert(tp.clone(), om.offset);
                    }
                    return Ok(());
                }
                Err(e)
                    if e.kafka_code().is_some_and(|c| c.is_coordinator_error())
                        || (e.kafka_code().is_none()
                            && (e.is_retriable() || e.kind() == ErrorKind::Closed)) =>
                {
                    if let Some(g) = &self.group {
                        g.coordinator_failed();
                    }
                    last = Some(e);
                }
                Err(e) if e.is_retriable() => last = Some(e),
                Err(e) => {
                    self.metrics.commit_errors.fetch_add(1, Ordering::Relaxed);
                    return Err(e);
                }
            }
            std::thread::sleep(
                self.backoff()
                    .min(deadline.saturating_duration_since(Instant::now())),
            );
        }
    }

    pub(super) fn commit_async_inner(
        &mut self,
        offsets: HashMap<TopicPartition, OffsetAndMetadata>,
        callback: Option<CommitCallback>,
        auto: bool,
    ) {
        if offsets.is_empty() {
            if let Some(cb) = callback {
                self.finished_commits.push((cb, offsets, Ok(())));
            }
            return;
        }
        let Some(group) = &self.group else {
            return;
        };
        let Some(conn) = group.handle().ready_coordinator(&self.cluster) else {
            // Finding (or connecting to) the coordinator blocks: it runs in
            // the background, and the commit goes out when it is done.
            self.auto_commit_in_flight |= auto;
            self.deferred_commits.push(DeferredCommit {
                offsets,
                callback,
                auto,
            });
            self.start_coordinator_lookup();
            return;
        };
        let member = group.member();
        let timeout = self.cfg.client.request_timeout();
        let list: Vec<(TopicPartition, OffsetAndMetadata)> = offsets
            .iter()
            .map(|(t, o)| (t.clone(), o.clone()))
            .collect();
        let token = self.next_token;
        let sent = conn
            .known_versions()
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Disconnected,
                    "the coordinator connection was reset",
                )
            })
            .and_then(|v| v.negotiate::<OffsetCommitRequest>())
            .and_then(|version| {
                let request = commit_request(version, &member, &list);
                conn.submit(
                    &request,
                    Some(version),
                    true,
                    timeout,
                    self.commit_tx.reply(token),
                )?;
                Ok(version)
            });
        match sent {
            Ok(version) => {
                self.next_token += 1;
                self.auto_commit_in_flight |= auto;
                self.pending_commits.insert(
                    token,
                    PendingCommit {
                        version,
                        offsets,
                        callback,
                        auto,
                    },
                );
            }
            Err(e) => {
                if e.kafka_code().is_some_and(|c| c.is_coordinator_error()) || e.is_retriable() {
                    group.coordinator_failed();
                }
                self.metrics.commit_errors.fetch_add(1, Ordering::Relaxed);
                if auto {
                    log::warn!("auto-commit failed: {e}");
                }
                if let Some(cb) = callback {
                    self.finished_commits.push((cb, offsets, Err(e)));
                }
            }
        }
    }

    /// Looks the coordinator up (and connects to it) in the background, for
    /// the commits waiting for it.
    fn start_coordinator_lookup(&mut self) {
        if self.coordinator_in_flight {
            return;
        }
        let Some(group) = &self.group else {
            return;
        };
        let handle = group.handle().clone();
        let cluster = Arc::clone(&self.cluster);
        let timeout = self.cfg.client.request_timeout();
        let tx = self.bg_tx.clone();
        let spawned = std::thread::Builder::new()
            .name("kafka-consumer-coordinator".into())
            .spawn(move || {
                let found = handle
                    .coordinator(&cluster, timeout)
                    .and_then(|conn| conn.versions().map(|_| ()));
                if found.is_err() {
                    handle.coordinator_failed();
                }
                tx.send(Background::Coordinator(found));
            });
        match spawned {
            Ok(_) => self.coordinator_in_flight = true,
            Err(e) => self.send_deferred_commits(Err(Error::io(
                "spawning a thread to find the group coordinator",
                e,
            ))),
        }
    }

    /// Sends the commits that waited for the coordinator, or fails them.
    pub(super) fn send_deferred_commits(&mut self, found: Result<()>) {
        for d in std::mem::take(&mut self.deferred_commits) {
            if d.auto {
                self.auto_commit_in_flight = false;
            }
            match &found {
                Ok(()) => self.commit_async_inner(d.offsets, d.callback, d.auto),
                Err(e) => {
                    self.metrics.commit_errors.fetch_add(1, Ordering::Relaxed);
                    if d.auto {
                        log::warn!("auto-commit failed: {e}");
                    }
                    if let Some(cb) = d.callback {
                        self.finished_commits.push((cb, d.offsets, Err(e.clone())));
                    }
                }
            }
        }
    }

    pub(super) fn finish_async_commit(&mut self, c: Completion) {
        let Some(p) = self.pending_commits.remove(&c.token) else {
            return;
        };
        if p.auto {
            self.auto_commit_in_flight = false;
        }
        let group_id = self.cfg.group_id.clone().unwrap_or_default();
        let result = c
            .result
            .and_then(|body| decode_response::<OffsetCommitRequest>(&body, p.version))
            .and_then(|r| commit_result(&r, &group_id));
        match &result {
            Ok(()) => {
                self.metrics.commits.fetch_add(1, Ordering::Relaxed);
                for (tp, om) in &p.offsets {
                    self.last_committed.insert(tp.clone(), om.offset);
                }
            }
            Err(e) => {
                self.metrics.commit_errors.fetch_add(1, Ordering::Relaxed);
                if e.kafka_code().is_some_and(|c| c.is_coordinator_error()) || e.is_retriable() {
                    if let Some(g) = &self.group {
                        g.coordinator_failed();
                    }
                }
                if p.auto {
                    log::warn!("auto-commit failed: {e}");
                }
            }
        }
        if let Some(cb) = p.callback {
            self.finished_commits.push((cb, p.offsets, result));
        }
        self.run_commit_callbacks();
    }

    pub(super) fn run_commit_callbacks(&mut self) {
        for (cb, offsets, result) in std::mem::take(&mut self.finished_commits) {
            cb(&offsets, result);
        }
    }

    fn committed_inner(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<HashMap<TopicPartition, OffsetAndMetadata>> {
        let group = self.require_group()?;
        positions::committed(
            &self.cluster,
            group.handle(),
            self.cfg.isolation_level == IsolationLevel::ReadCommitted,
            partitions,
            self.cfg.client.request_timeout(),
            self.backoff(),
        )
    }

    /// The committed offset of `partition` (`None`: nothing committed).
    pub fn committed(
        &mut self,
        partition: impl Into<TopicPartition>,
    ) -> Result<Option<OffsetAndMetadata>> {
        let tp = partition.into();
        Ok(self.committed_inner(std::slice::from_ref(&tp))?.remove(&tp))
    }

    /// The committed offsets of `partitions` (absent: nothing committed).
    pub fn committed_offsets<I, T>(
        &mut self,
        partitions: I,
    ) -> Result<HashMap<TopicPartition, OffsetAndMetadata>>
    where
        I: IntoIterator<Item = T>,
        T: Into<TopicPartition>,
    {
        let list: Vec<TopicPartition> = partitions.into_iter().map(Into::into).collect();
        if list.is_empty() {
            return Ok(HashMap::new());
        }
        self.committed_inner(&list)
    }
}
