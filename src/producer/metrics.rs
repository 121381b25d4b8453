//! Producer counters, updated with relaxed atomics off the per-record path.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

#[derive(Default)]
pub(crate) struct Metrics {
    records_acked: AtomicU64,
    record_errors: AtomicU64,
    batches: AtomicU64,
    records_in_batches: AtomicU64,
    bytes: AtomicU64,
    uncompressed_bytes: AtomicU64,
    retries: AtomicU64,
    requests: AtomicU64,
    latency_us_sum: AtomicU64,
    latency_us_max: AtomicU64,
    sender_wakeups: AtomicU64,
}

impl Metrics {
    pub(crate) fn batch_sent(&self, records: u64, bytes: u64, uncompressed: u64) {
        self.batches.fetch_add(1, Relaxed);
        self.records_in_batches.fetch_add(records, Relaxed);
        self.bytes.fetch_add(bytes, Relaxed);
        self.uncompressed_bytes.fetch_add(uncompressed, Relaxed);
    }
    pub(crate) fn records_acked(&self, n: u64) {
        self.records_acked.fetch_add(n, Relaxed);
    }
    pub(crate) fn record_errors(&self, n: u64) {
        self.record_errors.fetch_add(n, Relaxed);
    }
    pub(crate) fn retry(&self) {
        self.retries.fetch_add(1, Relaxed);
    }
    pub(crate) fn sender_woke(&self) {
        self.sender_wakeups.fetch_add(1, Relaxed);
    }
    pub(crate) fn request_latency(&self, d: Duration) {
        let us = d.as_micros().min(u128::from(u64::MAX)) as u64;
        self.requests.fetch_add(1, Relaxed);
        self.latency_us_sum.fetch_add(us, Relaxed);
        self.latency_us_max.fetch_max(us, Relaxed);
    }

    pub(crate) fn snapshot(
        &self,
        buffer_bytes_used: u64,
        buffer_bytes_peak: u64,
    ) -> ProducerMetrics {
        let batches = self.batches.load(Relaxed);
        let requests = self.requests.load(Relaxed);
        let bytes = self.bytes.load(Relaxed);
        let uncompressed = self.uncompressed_bytes.load(Relaxed);
        ProducerMetrics {
            records_sent: self.records_acked.load(Relaxed),
            record_errors: self.record_errors.load(Relaxed),
            batches_sent: batches,
            bytes_sent: bytes,
            retries: self.retries.load(Relaxed),
            requests,
            batch_size_avg: if batches == 0 {
                0.0
            } else {
                bytes as f64 / batches as f64
            },
            records_per_batch_avg: if batches == 0 {
                0.0
            } else {
                self.records_in_batches.load(Relaxed) as f64 / batches as f64
            },
            compression_ratio: if uncompressed == 0 {
                1.0
            } else {
                bytes as f64 / uncompressed as f64
            },
            request_latency_avg: Duration::from_micros(
                self.latency_us_sum
                    .load(Relaxed)
                    .checked_div(requests)
                    .unwrap_or(0),
            ),
            request_latency_max: Duration::from_micros(self.latency_us_max.load(Relaxed)),
            buffer_bytes_used,
            buffer_bytes_peak,
            sender_wakeups: self.sender_wakeups.load(Relaxed),
        }
    }
}

/// A snapshot of a producer's counters ([`Producer::metrics`](super::Producer::metrics)).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ProducerMetrics {
    /// Records acknowledged by the broker (or written, with acks=0).
    pub records_sent: u64,
    /// Records whose delivery failed.
    pub record_errors: u64,
    /// Batches handed to a broker connection (retries included).
    pub batches_sent: u64,
    /// Bytes of batches sent (after compression, retries included).
    pub bytes_sent: u64,
    /// Batch retries.
    pub retries: u64,
    /// Produce requests answered or failed.
    pub requests: u64,
    /// Average batch size in bytes, as sent.
    pub batch_size_avg: f64,
    /// Average records per batch.
    pub records_per_batch_avg: f64,
    /// Sent bytes over uncompressed bytes (1.0 without compression).
    pub compression_ratio: f64,
    /// Average produce request latency.
    pub request_latency_avg: Duration,
    /// Largest produce request latency.
    pub request_latency_max: Duration,
    /// Bytes of `buffer_memory` in use.
    pub buffer_bytes_used: u64,
    /// The most bytes of `buffer_memory` in use at any time.
    pub buffer_bytes_peak: u64,
    /// Times the sender thread woke up (a new batch, an answer, a timer).
    /// With `linger_ms` 0, records sent one at a time mostly never wake
    /// it: `send()` takes its turn and the connection's reader settles
    /// the answer, so this stays far below the number of records.
    pub sender_wakeups: u64,
}
