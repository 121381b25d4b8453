//! KIP-320: after a leader change, check that the log was not truncated
//! below the position before fetching on.
//!
//! The new leader is asked (OffsetForLeaderEpoch v3+) where the leader
//! epoch of the last record returned ends in its log. An end offset below
//! the position means those records are gone: the log diverged there.
//! Positions taken from a committed offset with a leader epoch (OffsetFetch
//! v5+) are validated the same way before the first fetch.
//!
//! The check runs on the position lookup's short-lived thread
//! (`positions.rs`), never on the thread calling `poll`: a partition
//! awaiting validation has no position and is not fetched meanwhile.

use std::time::{Duration, Instant};

use super::{AutoOffsetReset, Consumer};
use crate::cluster::{Cluster, Purpose};
use crate::error::{Error, ErrorKind, Result};
use crate::partition::TopicPartition;
use crate::protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use crate::protocol::messages::OffsetForLeaderEpochRequest;
use crate::protocol::ErrorCode;

/// The first OffsetForLeaderEpoch version a consumer may use (KIP-320).
const MIN_VERSION: i16 = 3;

/// What the leader said about a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Validation {
    /// No truncation below the position (or nothing to check with: a
    /// broker older than v3, an epoch the leader does not know).
    Valid,
    /// The log ends at `offset` for the epoch, below the position; the
    /// records from there on belong to `leader_epoch`.
    Diverged { offset: i64, leader_epoch: i32 },
}

impl Consumer {
    /// A fetch of `tp` at `position` met a leader change: without a leader
    /// epoch to check, fetch on from the position; otherwise stop fetching
    /// and let the background position lookup validate it with the new
    /// leader (the Java client's "awaiting validation" state), so a leader
    /// that is slow or unreachable never holds up `poll`.
    pub(super) fn await_validation(
        &mut self,
        tp: &TopicPartition,
        position: i64,
        leader_epoch: Option<i32>,
    ) {
        let Some(le) = leader_epoch else {
            // Nothing returned yet under a known epoch: nothing to check.
            self.set_position(tp, position, None);
            return;
        };
        let epoch = self.bump_epoch();
        let Some(p) = self.assignment.get_mut(tp) else {
            return;
        };
        p.position = None;
        p.epoch = epoch;
        p.pending_reset = None;
        p.pending_validation = Some((position, le));
        p.leader_epoch = Some(le);
        self.fetcher.remove(tp);
        if self.cursor.as_ref().is_some_and(|c| c.tp == *tp) {
            self.cursor = None;
        }
        self.need_positions = true;
        self.positions_retry_at = None;
    }
}

/// The outcome of validating one position.
#[derive(Debug)]
pub(crate) enum Checked {
    /// Fetch from `offset`: the position, or the divergence point.
    FetchFrom {
        offset: i64,
        leader_epoch: Option<i32>,
        truncated: bool,
    },
    /// Truncated with `auto_offset_reset` `none`: the
    /// [`ErrorKind::LogTruncation`] error to report.
    Truncated(Error),
}

/// Validates `position` (reached under `leader_epoch`) of `tp` with its
/// leader, until `timeout`: where to fetch from, or the typed error with
/// `auto_offset_reset` `none`. `what` says where the position comes from,
/// for the messages.
pub(crate) fn check(
    cluster: &Cluster,
    tp: &TopicPartition,
    position: i64,
    leader_epoch: i32,
    policy: AutoOffsetReset,
    timeout: Duration,
    what: &str,
) -> Result<Checked> {
    match validate(cluster, tp, position, leader_epoch, timeout)? {
        Validation::Valid => Ok(Checked::FetchFrom {
            offset: position,
            leader_epoch: Some(leader_epoch),
            truncated: false,
        }),
        Validation::Diverged {
            offset,
            leader_epoch: new_epoch,
        } => {
            if policy == AutoOffsetReset::None {
                return Ok(Checked::Truncated(
                    Error::new(
                        ErrorKind::LogTruncation,
                        format!(
                            "log truncation detected: {what} position {position} (leader epoch {leader_epoch}) is past the leader's log, which diverges at offset {offset}; auto_offset_reset is none, seek() to go on"
                        ),
                    )
                    .with_partition(&*tp.topic, tp.partition)
                    .with_offset(offset),
                ));
            }
            log::warn!(
                "{tp}: log truncation detected: {what} position {position} is past the leader's log; resetting to the divergence offset {offset}"
            );
            Ok(Checked::FetchFrom {
                offset,
                leader_epoch: Some(new_epoch),
                truncated: true,
            })
        }
    }
}

/// Asks the partition's leader where `leader_epoch` ends, retrying leader
/// moves and retriable errors until `timeout`.
pub(crate) fn validate(
    cluster: &Cluster,
    tp: &TopicPartition,
    position: i64,
    leader_epoch: i32,
    timeout: Duration,
) -> Result<Validation> {
    let deadline = Instant::now() + timeout;
    let backoff = cluster
        .config()
        .retry_backoff()
        .max(Duration::from_millis(10));
    let mut last_error: Option<Error> = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let what = last_error.map_or_else(String::new, |e| format!(": {e}"));
            return Err(Error::timeout(format!(
                "validating position {position} after a leader change did not finish within {} ms{what}",
                timeout.as_millis()
            ))
            .with_partition(&*tp.topic, tp.partition));
        }
        if let Err(e) = cluster.maybe_refresh() {
            log::debug!("{tp}: metadata refresh before validating failed: {e}");
        }
        match ask(cluster, tp, leader_epoch, left) {
            Ok(Some((end_offset, end_epoch))) if end_offset >= 0 && end_offset < position => {
                return Ok(Validation::Diverged {
                    offset: end_offset,
                    leader_epoch: end_epoch,
                })
            }
            Ok(_) => return Ok(Validation::Valid),
            Err(e) if e.is_retriable() || e.kind() == ErrorKind::Closed => {
                cluster.request_update();
                last_error = Some(e);
            }
            Err(e) => return Err(e),
        }
        std::thread::sleep(backoff.min(deadline.saturating_duration_since(Instant::now())));
    }
}

/// One OffsetForLeaderEpoch round: `Some((end offset, its epoch))`, or
/// `None` when the leader's broker is too old to ask.
fn ask(
    cluster: &Cluster,
    tp: &TopicPartition,
    leader_epoch: i32,
    timeout: Duration,
) -> Result<Option<(i64, i32)>> {
    let snap = cluster.metadata();
    let Some(pm) = snap
        .topic(&tp.topic)
        .and_then(|t| t.partition(tp.partition))
        .filter(|p| p.leader >= 0)
    else {
        return Err(Error::broker(
            ErrorCode::LEADER_NOT_AVAILABLE,
            "validating the position: no leader known",
        ));
    };
    let current_epoch = pm.leader_epoch;
    cluster.ensure_broker_known(pm.leader)?;
    let conn = cluster.connection(pm.leader, Purpose::General)?;
    if conn
        .versions()?
        .negotiate::<OffsetForLeaderEpochRequest>()
        .map_or(true, |v| v < MIN_VERSION)
    {
        return Ok(None);
    }
    let answer = conn.send_versioned(timeout.max(Duration::from_millis(1)), |_| {
        OffsetForLeaderEpochRequest {
            replica_id: -1,
            topics: vec![OffsetForLeaderTopic {
                topic: tp.topic.to_string(),
                partitions: vec![OffsetForLeaderPartition {
                    partition: tp.partition,
                    current_leader_epoch: current_epoch,
                    leader_epoch,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    })?;
    let found = answer
        .topics
        .iter()
        .filter(|t| *t.topic == *tp.topic)
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition == tp.partition);
    let Some(p) = found else {
        return Err(Error::new(
            ErrorKind::Protocol,
            "OffsetForLeaderEpoch answer without the partition asked about",
        )
        .with_partition(&*tp.topic, tp.partition));
    };
    let code = ErrorCode(p.error_code);
    if code.is_err() {
        if code.is_retriable() || code.is_stale_metadata() {
            cluster.note_error(code);
            return Err(Error::broker(code, "validating the position")
                .with_partition(&*tp.topic, tp.partition));
        }
        return Err(
            Error::broker(code, "validating the position after a leader change")
                .with_partition(&*tp.topic, tp.partition),
        );
    }
    // Undefined (-1): the leader knows nothing older; nothing to compare.
    if p.end_offset < 0 || p.leader_epoch < 0 {
        return Ok(Some((-1, -1)));
    }
    Ok(Some((p.end_offset, p.leader_epoch)))
}
