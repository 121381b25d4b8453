//! Where reading starts: committed offsets first, then `auto_offset_reset`
//! (or an explicit `seek_to_beginning`/`seek_to_end`).
//!
//! The lookup blocks (FindCoordinator, OffsetFetch, ListOffsets, with
//! retries up to `request_timeout_ms`), so `poll` and `next()` run it on a
//! short-lived thread of its own and pick the outcome up when it is there:
//! a coordinator that is loading, restarting or unreachable never holds a
//! read up beyond its timeout. [`Consumer::position`](super::Consumer::position)
//! runs the same lookup on the caller's thread.
//!
//! A position to validate (KIP-320: after a leader change, or a committed
//! offset that carries a leader epoch) is checked with the leader here too
//! (`validate.rs`), so that check never blocks `poll` either.
//!
//! Every partition is looked up for the position epoch it had when the
//! lookup started; an outcome for an older epoch (a seek, pause or
//! reassignment happened meanwhile) is dropped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::offsets::{fetch_committed, list_offsets, EARLIEST, LATEST};
use super::validate::{check, Checked};
use super::AutoOffsetReset;
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::group::GroupHandle;
use crate::partition::{OffsetAndMetadata, TopicPartition};

/// What a lookup needs, owned, so it can run on any thread.
#[derive(Clone)]
pub(crate) struct LookupCtx {
    pub(crate) cluster: Arc<Cluster>,
    pub(crate) group: Option<GroupHandle>,
    pub(crate) isolation_level: i8,
    pub(crate) require_stable: bool,
    pub(crate) policy: AutoOffsetReset,
    pub(crate) timeout: Duration,
    pub(crate) backoff: Duration,
}

/// A partition without a position.
#[derive(Debug, Clone)]
pub(crate) struct Wanted {
    pub(crate) tp: TopicPartition,
    /// The position epoch at the start of the lookup.
    pub(crate) epoch: u64,
    /// A reset asked for ([`EARLIEST`]/[`LATEST`]): no committed lookup.
    pub(crate) reset: Option<i64>,
    /// A position `(offset, leader epoch)` to validate with the leader
    /// (KIP-320, after a leader change): no committed lookup either.
    pub(crate) validate: Option<(i64, i32)>,
}

/// A position found.
#[derive(Debug)]
pub(crate) struct Found {
    pub(crate) tp: TopicPartition,
    pub(crate) epoch: u64,
    pub(crate) offset: i64,
    pub(crate) leader_epoch: Option<i32>,
    /// For the log: where the offset comes from.
    pub(crate) source: &'static str,
}

/// What a lookup found out.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) found: Vec<Found>,
    /// Resets that could not be looked up: `(partition, epoch, timestamp)`,
    /// retried later without asking for the committed offset again.
    pub(crate) resets_left: Vec<(TopicPartition, u64, i64)>,
    /// No committed offset and `auto_offset_reset` is `none`.
    pub(crate) no_offset: Vec<TopicPartition>,
    /// Positions `(partition, epoch, offset, leader epoch)` whose
    /// validation did not finish, retried later.
    pub(crate) validations_left: Vec<(TopicPartition, u64, i64, i32)>,
    /// Positions found truncated with `auto_offset_reset` `none`:
    /// `(partition, epoch, position, leader epoch, the LogTruncation error)`.
    pub(crate) truncated: Vec<(TopicPartition, u64, i64, i32, Error)>,
    /// Why the lookup stopped early, if it did.
    pub(crate) error: Option<Error>,
}

impl Outcome {
    /// Whether something is left to retry after a backoff.
    pub(crate) fn incomplete(&self) -> bool {
        self.error.is_some()
            || !self.no_offset.is_empty()
            || !self.resets_left.is_empty()
            || !self.validations_left.is_empty()
    }
}

/// The committed offsets of `partitions` (absent: nothing committed),
/// retrying coordinator moves and retriable errors until `timeout`.
pub(crate) fn committed(
    cluster: &Cluster,
    group: &GroupHandle,
    require_stable: bool,
    partitions: &[TopicPartition],
    timeout: Duration,
    backoff: Duration,
) -> Result<HashMap<TopicPartition, OffsetAndMetadata>> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let attempt = group.coordinator(cluster, left).and_then(|conn| {
            fetch_committed(&conn, &group.member(), require_stable, partitions, left)
        });
        match attempt {
            Ok(c) => return Ok(c),
            Err(e)
                if !left.is_zero()
                    && (e
                        .kafka_code()
                        .is_some_and(|c| c.is_coordinator_error() || c.is_retriable())
                        || (e.kafka_code().is_none() && e.is_retriable())) =>
            {
                if e.kafka_code().map_or(true, |c| c.is_coordinator_error()) {
                    group.coordinator_failed();
                }
                std::thread::sleep(backoff.min(deadline.saturating_duration_since(Instant::now())));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Looks up positions for `wanted`: the committed offset (with a group),
/// else `auto_offset_reset`; explicit resets directly.
pub(crate) fn look_up(ctx: &LookupCtx, wanted: Vec<Wanted>) -> Outcome {
    let mut out = Outcome::default();
    let mut resets: Vec<(Wanted, i64)> = Vec::new();
    let mut unknown: Vec<Wanted> = Vec::new();
    // (partition, epoch, offset, leader epoch, where the offset comes from)
    let mut to_validate: Vec<(TopicPartition, u64, i64, i32, &'static str)> = Vec::new();
    for w in wanted {
        match (w.reset, w.validate) {
            (Some(ts), _) => resets.push((w, ts)),
            (None, Some((offset, le))) => {
                to_validate.push((w.tp, w.epoch, offset, le, "after a leader change"));
            }
            (None, None) => unknown.push(w),
        }
    }
    if !unknown.is_empty() {
        let committed = match &ctx.group {
            Some(g) => {
                let tps: Vec<TopicPartition> = unknown.iter().map(|w| w.tp.clone()).collect();
                match committed(
                    &ctx.cluster,
                    g,
                    ctx.require_stable,
                    &tps,
                    ctx.timeout,
                    ctx.backoff,
                ) {
                    Ok(c) => c,
                    Err(e) => {
                        // Nothing else this round: the resets wait too.
                        for (w, ts) in resets {
                            out.resets_left.push((w.tp, w.epoch, ts));
                        }
                        out.error = Some(e);
                        return out;
                    }
                }
            }
            None => HashMap::new(),
        };
        for w in unknown {
            match committed.get(&w.tp) {
                // KIP-320: a committed offset with the leader epoch of the
                // record before it is validated like a position after a
                // leader change (the log may have been truncated since).
                Some(om) if om.leader_epoch.is_some_and(|e| e >= 0) => {
                    let le = om.leader_epoch.unwrap_or(-1);
                    to_validate.push((w.tp, w.epoch, om.offset, le, "committed offset"));
                }
                Some(om) => out.found.push(Found {
                    offset: om.offset,
                    leader_epoch: om.leader_epoch,
                    tp: w.tp,
                    epoch: w.epoch,
                    source: "committed offset",
                }),
                None => match ctx.policy {
                    AutoOffsetReset::Earliest => resets.push((w, EARLIEST)),
                    AutoOffsetReset::Latest => resets.push((w, LATEST)),
                    AutoOffsetReset::None => out.no_offset.push(w.tp),
                },
            }
        }
    }
    validate_all(ctx, to_validate, &mut out);
    if resets.is_empty() {
        return out;
    }
    let query: Vec<(TopicPartition, i64)> =
        resets.iter().map(|(w, ts)| (w.tp.clone(), *ts)).collect();
    match list_offsets(&ctx.cluster, ctx.isolation_level, &query, ctx.timeout) {
        Ok(found) => {
            for (w, ts) in resets {
                match found.get(&w.tp).copied().flatten() {
                    Some(o) => out.found.push(Found {
                        offset: o.offset,
                        leader_epoch: o.leader_epoch,
                        tp: w.tp,
                        epoch: w.epoch,
                        source: if ts == EARLIEST {
                            "reset to earliest"
                        } else {
                            "reset to latest"
                        },
                    }),
                    None => out.resets_left.push((w.tp, w.epoch, ts)),
                }
            }
        }
        Err(e) => {
            for (w, ts) in resets {
                out.resets_left.push((w.tp, w.epoch, ts));
            }
            out.error = Some(e);
        }
    }
    out
}

/// Validates positions with their leaders (KIP-320), all within one
/// `ctx.timeout`; what does not finish is left for the next lookup.
fn validate_all(
    ctx: &LookupCtx,
    list: Vec<(TopicPartition, u64, i64, i32, &'static str)>,
    out: &mut Outcome,
) {
    let deadline = Instant::now() + ctx.timeout;
    for (tp, epoch, offset, le, what) in list {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || out.error.is_some() {
            out.validations_left.push((tp, epoch, offset, le));
            continue;
        }
        match check(&ctx.cluster, &tp, offset, le, ctx.policy, left, what) {
            Ok(Checked::FetchFrom {
                offset: from,
                leader_epoch,
                truncated,
            }) => out.found.push(Found {
                tp,
                epoch,
                offset: from,
                leader_epoch,
                source: match (truncated, what) {
                    (true, _) => "the divergence point: the log was truncated below the position",
                    (false, "committed offset") => "committed offset, validated",
                    (false, _) => "validated after a leader change",
                },
            }),
            Ok(Checked::Truncated(e)) => out.truncated.push((tp, epoch, offset, le, e)),
            Err(e) => {
                out.validations_left.push((tp, epoch, offset, le));
                out.error = Some(e);
            }
        }
    }
}
