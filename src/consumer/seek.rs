//! Positions: `seek`, `seek_to_beginning`/`seek_to_end`, `position`,
//! `pause`/`resume`, and applying the committed-offset and reset lookups
//! (`positions.rs`) that run in the background.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::offsets::{EARLIEST, LATEST};
use super::positions;
use super::{Background, Consumer, IsolationLevel, TopicPartition};
use crate::error::{Error, ErrorKind, Result};

impl Consumer {
    /// Makes the next record of `partition` the one at `offset`.
    pub fn seek(&mut self, partition: impl Into<TopicPartition>, offset: i64) -> Result<()> {
        let tp = partition.into();
        self.resolve([&tp])?;
        if offset < 0 {
            return Err(Error::invalid_argument(format!(
                "seek to negative offset {offset}"
            )));
        }
        self.set_position(&tp, offset, None);
        Ok(())
    }

    fn seek_to(&mut self, partitions: Vec<TopicPartition>, to: i64) -> Result<()> {
        let list = if partitions.is_empty() {
            self.assignment.keys().cloned().collect()
        } else {
            self.resolve(partitions)?
        };
        self.sync_cursor();
        for tp in list {
            let epoch = self.bump_epoch();
            if let Some(p) = self.assignment.get_mut(&tp) {
                p.position = None;
                p.pending_reset = Some(to);
                p.pending_validation = None;
                p.epoch = epoch;
                p.stopped = false;
            }
            self.fetcher.remove(&tp);
            if self.cursor.as_ref().is_some_and(|c| c.tp == tp) {
                self.cursor = None;
            }
        }
        self.need_positions = true;
        self.positions_retry_at = None;
        Ok(())
    }

    /// Moves `partitions` (none: every assigned one) to their first offset,
    /// looked up on the next poll or [`position`](Consumer::position).
    pub fn seek_to_beginning<I, T>(&mut self, partitions: I) -> Result<()>
    where
        I: IntoIterator<Item = T>,
        T: Into<TopicPartition>,
    {
        self.seek_to(partitions.into_iter().map(Into::into).collect(), EARLIEST)
    }

    /// Moves `partitions` (none: every assigned one) past their last
    /// record, looked up on the next poll or [`position`](Consumer::position).
    pub fn seek_to_end<I, T>(&mut self, partitions: I) -> Result<()>
    where
        I: IntoIterator<Item = T>,
        T: Into<TopicPartition>,
    {
        self.seek_to(partitions.into_iter().map(Into::into).collect(), LATEST)
    }

    /// The offset of the next record `partition` will return, looking it
    /// up (committed offset or `auto_offset_reset`) if it is not known yet.
    pub fn position(&mut self, partition: impl Into<TopicPartition>) -> Result<i64> {
        let tp = partition.into();
        self.resolve([&tp])?;
        self.sync_cursor();
        if self
            .assignment
            .get(&tp)
            .is_some_and(|p| p.position.is_none())
        {
            self.update_positions_now()?;
        }
        self.assignment
            .get(&tp)
            .and_then(|p| p.position)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NoOffset,
                    format!("partition {tp} has no position yet; retry"),
                )
            })
    }

    /// Stops fetching `partitions` until [`resume`](Consumer::resume); the
    /// group membership is kept.
    pub fn pause<I, T>(&mut self, partitions: I) -> Result<()>
    where
        I: IntoIterator<Item = T>,
        T: Into<TopicPartition>,
    {
        let list = self.resolve(partitions)?;
        self.sync_cursor();
        for tp in list {
            let epoch = self.bump_epoch();
            if let Some(p) = self.assignment.get_mut(&tp) {
                p.paused = true;
                p.epoch = epoch;
            }
            self.fetcher.remove(&tp);
            if self.cursor.as_ref().is_some_and(|c| c.tp == tp) {
                self.cursor = None;
            }
        }
        Ok(())
    }

    /// Fetches `partitions` again from their positions.
    pub fn resume<I, T>(&mut self, partitions: I) -> Result<()>
    where
        I: IntoIterator<Item = T>,
        T: Into<TopicPartition>,
    {
        let list = self.resolve(partitions)?;
        for tp in list {
            let Some(p) = self.assignment.get_mut(&tp) else {
                continue;
            };
            if !p.paused {
                continue;
            }
            p.paused = false;
            match p.position {
                Some(pos) => {
                    let le = p.leader_epoch;
                    self.set_position(&tp, pos, le);
                }
                None => self.need_positions = true,
            }
        }
        Ok(())
    }

    /// The paused partitions, sorted.
    pub fn paused(&self) -> Vec<TopicPartition> {
        self.assignment
            .iter()
            .filter(|(_, p)| p.paused)
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    /// The partitions without a position, for a lookup.
    fn wanted_positions(&self) -> Vec<positions::Wanted> {
        self.assignment
            .iter()
            .filter(|(_, p)| p.position.is_none())
            .map(|(tp, p)| positions::Wanted {
                tp: tp.clone(),
                epoch: p.epoch,
                reset: p.pending_reset,
                validate: p
                    .pending_reset
                    .is_none()
                    .then_some(p.pending_validation)
                    .flatten(),
            })
            .collect()
    }

    fn lookup_ctx(&self) -> positions::LookupCtx {
        positions::LookupCtx {
            cluster: Arc::clone(&self.cluster),
            group: self.group.as_ref().map(|g| g.handle().clone()),
            isolation_level: self.cfg.isolation_level.as_i8(),
            require_stable: self.cfg.isolation_level == IsolationLevel::ReadCommitted,
            policy: self.cfg.auto_offset_reset,
            timeout: self.cfg.client.request_timeout(),
            backoff: self.backoff(),
        }
    }

    /// Starts looking up the missing positions in the background (resets
    /// asked for, committed offsets, then `auto_offset_reset`), unless a
    /// lookup runs already or the last one failed less than a backoff ago.
    pub(super) fn start_position_lookup(&mut self) {
        if self.positions_in_flight {
            return;
        }
        if self.positions_retry_at.is_some_and(|t| Instant::now() < t) {
            return;
        }
        self.need_positions = false;
        self.positions_retry_at = None;
        let wanted = self.wanted_positions();
        if wanted.is_empty() {
            return;
        }
        let ctx = self.lookup_ctx();
        let tx = self.bg_tx.clone();
        let spawned = std::thread::Builder::new()
            .name("kafka-consumer-offsets".into())
            .spawn(move || {
                tx.send(Background::Positions(positions::look_up(&ctx, wanted)));
            });
        match spawned {
            Ok(_) => self.positions_in_flight = true,
            Err(e) => {
                log::warn!("cannot start a thread to look up positions: {e}");
                self.need_positions = true;
                self.positions_retry_at = Some(Instant::now() + self.backoff());
            }
        }
    }

    /// Looks up the missing positions on this thread (blocking).
    fn update_positions_now(&mut self) -> Result<()> {
        self.need_positions = false;
        self.positions_retry_at = None;
        let wanted = self.wanted_positions();
        if wanted.is_empty() {
            return Ok(());
        }
        let out = positions::look_up(&self.lookup_ctx(), wanted);
        self.apply_positions(out)
    }

    /// Takes a lookup's outcome: positions still wanted (same epoch, none
    /// set meanwhile) start fetching; failures are retried after a backoff.
    fn apply_positions(&mut self, out: positions::Outcome) -> Result<()> {
        let incomplete = out.incomplete();
        for f in out.found {
            let current = self
                .assignment
                .get(&f.tp)
                .is_some_and(|p| p.epoch == f.epoch && p.position.is_none());
            if current {
                log::debug!("{}: starting at offset {} ({})", f.tp, f.offset, f.source);
                self.set_position(&f.tp, f.offset, f.leader_epoch);
            }
        }
        for (tp, epoch, ts) in out.resets_left {
            if let Some(p) = self.assignment.get_mut(&tp) {
                if p.epoch == epoch && p.position.is_none() {
                    p.pending_reset = Some(ts);
                }
            }
        }
        for (tp, epoch, offset, le) in out.validations_left {
            if let Some(p) = self.assignment.get_mut(&tp) {
                if p.epoch == epoch && p.position.is_none() {
                    p.pending_validation = Some((offset, le));
                }
            }
        }
        // Truncated with auto_offset_reset=none: the position stays where
        // it was, stopped (not fetched) until a seek; the error is
        // reported once.
        let mut truncations: Vec<Error> = Vec::new();
        for (tp, epoch, offset, le, e) in out.truncated {
            let Some(p) = self.assignment.get_mut(&tp) else {
                continue;
            };
            if p.epoch != epoch || p.position.is_some() {
                continue;
            }
            p.position = Some(offset);
            p.leader_epoch = Some(le);
            p.pending_validation = None;
            p.stopped = true;
            self.fetcher.remove(&tp);
            truncations.push(e);
        }
        self.need_positions = self.assignment.values().any(|p| p.position.is_none());
        if incomplete {
            self.positions_retry_at = Some(Instant::now() + self.backoff());
        }
        if !truncations.is_empty() {
            let first = truncations.remove(0);
            self.pending_errors.extend(truncations);
            if let Some(e) = out.error {
                log::debug!("looking up positions failed (retrying): {e}");
            }
            return Err(first);
        }
        if let Some(e) = out.error {
            if !e.is_retriable() {
                return Err(e);
            }
            log::debug!("looking up positions failed (retrying): {e}");
        }
        let no_offset: Vec<TopicPartition> = out
            .no_offset
            .into_iter()
            .filter(|tp| {
                self.assignment
                    .get(tp)
                    .is_some_and(|p| p.position.is_none())
            })
            .collect();
        if let Some(tp) = no_offset.first() {
            return Err(Error::new(
                ErrorKind::NoOffset,
                format!(
                    "{} partition(s) ({}) have no committed offset and auto_offset_reset is none; seek() to an offset, or set auto_offset_reset to earliest or latest",
                    no_offset.len(),
                    no_offset
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .with_partition(&*tp.topic, tp.partition));
        }
        Ok(())
    }

    /// Takes the answer of a background lookup.
    pub(super) fn handle_background(&mut self, b: Background) {
        match b {
            Background::Positions(out) => {
                self.positions_in_flight = false;
                if let Err(e) = self.apply_positions(out) {
                    self.pending_errors.push_back(e);
                }
            }
            Background::Coordinator(found) => {
                self.coordinator_in_flight = false;
                self.send_deferred_commits(found);
            }
        }
    }

    pub(super) fn backoff(&self) -> Duration {
        self.cfg
            .client
            .retry_backoff()
            .max(Duration::from_millis(10))
    }
}
