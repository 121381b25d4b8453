//! Version negotiation: what a broker supports (its ApiVersions answer)
//! intersected with what this client can encode, and a best guess of the
//! broker's Kafka release.

use std::fmt;

use super::api::{ApiKey, Request};
use crate::error::{Error, ErrorKind, Result};

/// One API's version range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiVersionRange {
    /// The API.
    pub api_key: ApiKey,
    /// Lowest version supported.
    pub min: i16,
    /// Highest version supported.
    pub max: i16,
}

/// The API versions one broker supports, from its ApiVersions response,
/// and the cluster's finalized feature levels it reported (ApiVersions v3+,
/// KIP-584), such as `transaction.version`.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerVersions {
    ranges: Vec<ApiVersionRange>,
    /// `(name, max version level)`, sorted by name.
    features: Vec<(String, i16)>,
}

impl BrokerVersions {
    /// From `(api_key, min, max)` triples as the broker sent them.
    pub fn new(ranges: impl IntoIterator<Item = (i16, i16, i16)>) -> BrokerVersions {
        let mut ranges: Vec<ApiVersionRange> = ranges
            .into_iter()
            .map(|(k, min, max)| ApiVersionRange {
                api_key: ApiKey(k),
                min,
                max,
            })
            .collect();
        ranges.sort_by_key(|r| r.api_key);
        ranges.dedup_by_key(|r| r.api_key);
        BrokerVersions {
            ranges,
            features: Vec::new(),
        }
    }

    /// With the finalized features the broker reported, as `(name, max
    /// version level)`.
    pub fn with_finalized_features(
        mut self,
        features: impl IntoIterator<Item = (String, i16)>,
    ) -> BrokerVersions {
        let mut features: Vec<(String, i16)> = features.into_iter().collect();
        features.sort();
        features.dedup_by(|a, b| a.0 == b.0);
        self.features = features;
        self
    }

    /// The finalized level of feature `name` (its max version level), if
    /// the broker reported one.
    pub fn finalized_feature(&self, name: &str) -> Option<i16> {
        self.features
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| self.features[i].1)
    }

    /// Every range, sorted by API key.
    pub fn ranges(&self) -> &[ApiVersionRange] {
        &self.ranges
    }

    /// The broker's range for `key`, if it supports the API at all.
    pub fn range(&self, key: ApiKey) -> Option<ApiVersionRange> {
        self.ranges
            .binary_search_by_key(&key, |r| r.api_key)
            .ok()
            .map(|i| self.ranges[i])
    }

    /// The highest version of `key` both sides support within `ours`.
    pub fn pick(&self, key: ApiKey, ours: (i16, i16)) -> Result<i16> {
        let theirs = self.range(key).ok_or_else(|| {
            Error::new(
                ErrorKind::UnsupportedVersion,
                format!(
                    "the broker does not support the {key} API (a newer broker is needed for this operation)"
                ),
            )
        })?;
        let lo = ours.0.max(theirs.min);
        let hi = ours.1.min(theirs.max);
        if lo > hi {
            return Err(Error::new(
                ErrorKind::UnsupportedVersion,
                format!(
                    "no common version of {key}: this client speaks {}..={}, the broker {}..={}",
                    ours.0, ours.1, theirs.min, theirs.max
                ),
            ));
        }
        Ok(hi)
    }

    /// The version to use for request type `R`.
    pub fn negotiate<R: Request>(&self) -> Result<i16> {
        self.pick(R::API_KEY, (R::MIN_VERSION, R::MAX_VERSION))
    }

    /// The highest version of `key` the broker supports, if any.
    pub fn max_version(&self, key: ApiKey) -> Option<i16> {
        self.range(key).map(|r| r.max)
    }

    /// A best guess of the broker's Apache Kafka release from the APIs it
    /// supports, like kafka-python's `check_version()`. Kafka-compatible
    /// brokers (Redpanda, Tansu, ...) report what they implement, so the
    /// guess names the Kafka release whose protocol they match.
    pub fn guess_kafka_version(&self) -> (u16, u16, u16) {
        let has = |key: i16, v: i16| self.max_version(ApiKey(key)).is_some_and(|m| m >= v);
        let min_of = |key: i16| self.range(ApiKey(key)).map(|r| r.min);
        // Newest first: the first rule that matches wins.
        if min_of(1).is_some_and(|m| m >= 4) || min_of(0).is_some_and(|m| m >= 3) {
            // KIP-896 removed Fetch v0-v3 (and Produce v0-v2) in 4.0; 4.0
            // still announces Produce from v0 (KAFKA-18659), so Fetch tells.
            (4, 0, 0)
        } else if has(68, 0) {
            // ConsumerGroupHeartbeat (KIP-848) appeared in 3.7.
            (3, 7, 0)
        } else if has(1, 13) {
            // Fetch by topic id (KIP-516).
            (3, 1, 0)
        } else if has(60, 0) {
            // DescribeCluster.
            (2, 8, 0)
        } else if has(1, 12) {
            (2, 7, 0)
        } else if has(48, 0) {
            // DescribeClientQuotas.
            (2, 6, 0)
        } else if has(29, 2) {
            (2, 5, 0)
        } else if has(0, 8) {
            (2, 4, 0)
        } else if has(1, 11) {
            (2, 3, 0)
        } else if has(2, 5) {
            (2, 2, 0)
        } else if has(1, 10) {
            (2, 1, 0)
        } else if has(1, 8) {
            (2, 0, 0)
        } else if has(1, 7) {
            (1, 1, 0)
        } else if has(3, 5) {
            (1, 0, 0)
        } else if has(3, 4) {
            (0, 11, 0)
        } else if has(9, 2) {
            (0, 10, 2)
        } else if has(3, 2) {
            (0, 10, 1)
        } else {
            (0, 10, 0)
        }
    }
}

impl fmt::Debug for BrokerVersions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for r in &self.ranges {
            m.entry(&r.api_key, &(r.min..=r.max));
        }
        for (name, level) in &self.features {
            m.entry(name, level);
        }
        m.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_intersects_ranges() {
        let v = BrokerVersions::new([(3, 0, 9), (1, 4, 11)]);
        assert_eq!(v.pick(ApiKey(3), (0, 12)).unwrap(), 9);
        assert_eq!(v.pick(ApiKey(1), (0, 7)).unwrap(), 7);
        let e = v.pick(ApiKey(1), (0, 3)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnsupportedVersion);
        assert!(e.to_string().contains("0..=3"), "{e}");
        let e = v.pick(ApiKey(60), (0, 1)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnsupportedVersion);
    }

    #[test]
    fn finalized_features_are_looked_up_by_name() {
        let v = BrokerVersions::new([(26, 0, 5)]).with_finalized_features([
            ("transaction.version".to_owned(), 2),
            ("metadata.version".to_owned(), 25),
            ("group.version".to_owned(), 1),
        ]);
        assert_eq!(v.finalized_feature("transaction.version"), Some(2));
        assert_eq!(v.finalized_feature("group.version"), Some(1));
        assert_eq!(v.finalized_feature("kraft.version"), None);
        assert_eq!(
            BrokerVersions::new([]).finalized_feature("transaction.version"),
            None
        );
    }

    #[test]
    fn version_guess() {
        assert_eq!(
            BrokerVersions::new([(0, 3, 12), (1, 4, 17), (68, 0, 0)]).guess_kafka_version(),
            (4, 0, 0)
        );
        assert_eq!(
            BrokerVersions::new([(0, 0, 9), (1, 0, 12), (3, 0, 11), (60, 0, 0)])
                .guess_kafka_version(),
            (2, 8, 0)
        );
        assert_eq!(
            BrokerVersions::new([(0, 0, 3), (1, 0, 5), (3, 0, 4)]).guess_kafka_version(),
            (0, 11, 0)
        );
    }
}
