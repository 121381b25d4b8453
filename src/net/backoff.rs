//! Exponential reconnect backoff with jitter (`reconnect_backoff_ms` doubling
//! up to `reconnect_backoff_max_ms`, ±20 % as the Java client does).

use std::time::{Duration, Instant};

/// Tracks consecutive failures and when the next attempt may start.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    base: Duration,
    max: Duration,
    failures: u32,
    next_attempt: Option<Instant>,
    seed: u64,
}

impl Backoff {
    pub(crate) fn new(base: Duration, max: Duration) -> Backoff {
        // A per-instance random seed, so that connections failing together
        // do not retry in lockstep.
        use std::hash::{BuildHasher, Hasher};
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        Backoff {
            base,
            max,
            failures: 0,
            next_attempt: None,
            seed: seed | 1,
        }
    }

    /// The pause after `failures` consecutive failures, before jitter.
    pub(crate) fn delay_for(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let exp = (failures - 1).min(31);
        let d = self.base.saturating_mul(1u32 << exp);
        d.min(self.max)
    }

    /// Records a failure at `now`; returns the pause before the next attempt.
    pub(crate) fn fail(&mut self, now: Instant) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let d = self.delay_for(self.failures);
        // xorshift jitter in [0.8, 1.2).
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let factor = 0.8 + (self.seed % 4000) as f64 / 10_000.0;
        let d = d.mul_f64(factor).min(self.max.max(self.base));
        self.next_attempt = Some(now + d);
        d
    }

    /// Forgets past failures after a success.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
        self.next_attempt = None;
    }

    /// When the next attempt may start (`None`: now).
    pub(crate) fn next_attempt(&self) -> Option<Instant> {
        self.next_attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let b = Backoff::new(Duration::from_millis(50), Duration::from_millis(1000));
        assert_eq!(b.delay_for(0), Duration::ZERO);
        assert_eq!(b.delay_for(1), Duration::from_millis(50));
        assert_eq!(b.delay_for(2), Duration::from_millis(100));
        assert_eq!(b.delay_for(5), Duration::from_millis(800));
        assert_eq!(b.delay_for(6), Duration::from_millis(1000));
        assert_eq!(b.delay_for(60), Duration::from_millis(1000));
    }

    #[test]
    fn jitter_stays_in_bounds_and_reset_clears() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(10_000));
        let now = Instant::now();
        for i in 1..=6u32 {
            let d = b.fail(now);
            let nominal = b.delay_for(i).as_secs_f64();
            assert!(d.as_secs_f64() >= nominal * 0.79 && d.as_secs_f64() <= nominal * 1.21);
        }
        assert!(b.next_attempt().is_some());
        b.reset();
        assert_eq!(b.failures, 0);
        assert!(b.next_attempt().is_none());
    }
}
