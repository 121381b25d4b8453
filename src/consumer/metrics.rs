//! Consumer counters: the background threads update relaxed atomics; the
//! consumer thread keeps its per-record counters in plain fields.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// A snapshot of a consumer's counters; see
/// [`Consumer::metrics`](super::Consumer::metrics).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ConsumerMetrics {
    /// Records returned to the application.
    pub records_consumed: u64,
    /// Key and value bytes of those records.
    pub bytes_consumed: u64,
    /// Fetch requests answered.
    pub fetch_requests: u64,
    /// Record bytes received in fetch responses.
    pub fetch_bytes: u64,
    /// Fetch requests or partitions that failed (retried or reported).
    pub fetch_errors: u64,
    /// Mean fetch round trip (including the broker's wait for data).
    pub fetch_latency_avg: Duration,
    /// Longest fetch round trip.
    pub fetch_latency_max: Duration,
    /// The largest lag (high watermark minus position) over the assigned
    /// partitions whose high watermark is known.
    pub records_lag_max: i64,
    /// Partitions assigned now.
    pub assigned_partitions: usize,
    /// Offset commits that succeeded.
    pub commits: u64,
    /// Offset commits that failed.
    pub commit_errors: u64,
    /// Completed rebalances (assignments received).
    pub rebalances: u64,
    /// Heartbeats answered.
    pub heartbeats: u64,
    /// Times the fetch thread was woken to look for work (a new position,
    /// or an answer or a taken chunk whose broker's next request could not
    /// simply be sent where it was handled: metadata missing, a back-off,
    /// another broker waiting). On a steady stream each answer sends its
    /// broker's next request itself, so this stays far below
    /// `fetch_requests`.
    pub fetch_thread_wakeups: u64,
}

#[derive(Default)]
pub(crate) struct Metrics {
    pub(crate) fetch_requests: AtomicU64,
    pub(crate) fetch_bytes: AtomicU64,
    pub(crate) fetch_errors: AtomicU64,
    fetch_latency_us_sum: AtomicU64,
    fetch_latency_us_max: AtomicU64,
    pub(crate) commits: AtomicU64,
    pub(crate) commit_errors: AtomicU64,
    pub(crate) rebalances: AtomicU64,
    pub(crate) heartbeats: AtomicU64,
    pub(crate) fetch_thread_wakeups: AtomicU64,
}

impl crate::group::GroupMetrics for Metrics {
    fn rebalanced(&self) {
        Metrics::add(&self.rebalances, 1);
    }

    fn heartbeat(&self) {
        Metrics::add(&self.heartbeats, 1);
    }
}

impl Metrics {
    pub(crate) fn fetch_done(&self, latency: Duration, bytes: u64) {
        let us = latency.as_micros().min(u128::from(u64::MAX)) as u64;
        self.fetch_requests.fetch_add(1, Relaxed);
        self.fetch_bytes.fetch_add(bytes, Relaxed);
        self.fetch_latency_us_sum.fetch_add(us, Relaxed);
        self.fetch_latency_us_max.fetch_max(us, Relaxed);
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> ConsumerMetrics {
        let requests = self.fetch_requests.load(Relaxed);
        ConsumerMetrics {
            fetch_requests: requests,
            fetch_bytes: self.fetch_bytes.load(Relaxed),
            fetch_errors: self.fetch_errors.load(Relaxed),
            fetch_latency_avg: Duration::from_micros(
                self.fetch_latency_us_sum
                    .load(Relaxed)
                    .checked_div(requests)
                    .unwrap_or(0),
            ),
            fetch_latency_max: Duration::from_micros(self.fetch_latency_us_max.load(Relaxed)),
            commits: self.commits.load(Relaxed),
            commit_errors: self.commit_errors.load(Relaxed),
            rebalances: self.rebalances.load(Relaxed),
            heartbeats: self.heartbeats.load(Relaxed),
            fetch_thread_wakeups: self.fetch_thread_wakeups.load(Relaxed),
            ..ConsumerMetrics::default()
        }
    }
}
