//! What each Apache Kafka release answers to ApiVersions, for brokers that
//! refuse the request (a proxy that drops it, a broker older than 0.10):
//! with `api_version` set, the client assumes the versions of that release,
//! as kafka-python does, instead of guessing.
//!
//! The table holds, per release, what changed since the release before:
//! `(api key, min version, max version)`, with `-1, -1` for an API the
//! release removed. The ranges are the brokers' own ApiVersions answers
//! (kafka-python records the same facts in
//! `kafka/protocol/broker_api_versions.py`); API keys are listed in the
//! protocol guide (<https://kafka.apache.org/protocol#protocol_api_keys>).

use super::versions::BrokerVersions;

/// A release and the `(api key, min, max)` ranges it changed.
type Release = ((u16, u16, u16), &'static [(i16, i16, i16)]);

/// Releases, oldest first, each with the ApiVersions ranges that changed.
#[rustfmt::skip]
const RELEASES: &[Release] = &[
    ((0, 10, 0), &[
        (0, 0, 2), (1, 0, 2), (2, 0, 0), (3, 0, 1), (4, 0, 0), (5, 0, 0), (6, 0, 2), (7, 1, 1),
        (8, 0, 2), (9, 0, 1), (10, 0, 0), (11, 0, 0), (12, 0, 0), (13, 0, 0), (14, 0, 0), (15, 0, 0),
        (16, 0, 0), (17, 0, 0), (18, 0, 0),
    ]),
    ((0, 10, 1), &[
        (1, 0, 3), (2, 0, 1), (3, 0, 2), (11, 0, 1), (19, 0, 0), (20, 0, 0),
    ]),
    ((0, 10, 2), &[
        (6, 0, 3), (9, 0, 2), (19, 0, 1),
    ]),
    ((0, 11, 0), &[
        (0, 0, 3), (1, 0, 5), (2, 0, 2), (3, 0, 4), (8, 0, 3), (9, 0, 3), (10, 0, 1), (11, 0, 2),
        (12, 0, 1), (13, 0, 1), (14, 0, 1), (15, 0, 1), (16, 0, 1), (18, 0, 1), (19, 0, 2), (20, 0, 1),
        (21, 0, 0), (22, 0, 0), (23, 0, 0), (24, 0, 0), (25, 0, 0), (26, 0, 0), (27, 0, 0), (28, 0, 0),
        (29, 0, 0), (30, 0, 0), (31, 0, 0), (32, 0, 0), (33, 0, 0),
    ]),
    ((1, 0, 0), &[
        (0, 0, 5), (1, 0, 6), (3, 0, 5), (4, 0, 1), (6, 0, 4), (7, 0, 1), (17, 0, 1), (34, 0, 0),
        (35, 0, 0), (36, 0, 0), (37, 0, 0),
    ]),
    ((1, 1, 0), &[
        (1, 0, 7), (32, 0, 1), (38, 0, 0), (39, 0, 0), (40, 0, 0), (41, 0, 0), (42, 0, 0),
    ]),
    ((2, 0, 0), &[
        (0, 0, 6), (1, 0, 8), (2, 0, 3), (3, 0, 6), (8, 0, 4), (9, 0, 4), (10, 0, 2), (11, 0, 3),
        (12, 0, 2), (13, 0, 2), (14, 0, 2), (15, 0, 2), (16, 0, 2), (18, 0, 2), (19, 0, 3), (20, 0, 2),
        (21, 0, 1), (22, 0, 1), (23, 0, 1), (24, 0, 1), (25, 0, 1), (26, 0, 1), (28, 0, 1), (29, 0, 1),
        (30, 0, 1), (31, 0, 1), (32, 0, 2), (33, 0, 1), (34, 0, 1), (35, 0, 1), (37, 0, 1), (38, 0, 1),
        (39, 0, 1), (40, 0, 1), (41, 0, 1), (42, 0, 1),
    ]),
    ((2, 1, 0), &[
        (0, 0, 7), (1, 0, 10), (2, 0, 4), (3, 0, 7), (8, 0, 6), (9, 0, 5), (20, 0, 3), (23, 0, 2),
        (28, 0, 2),
    ]),
    ((2, 2, 0), &[
        (2, 0, 5), (4, 0, 2), (5, 0, 1), (6, 0, 5), (7, 0, 2), (11, 0, 4), (36, 0, 1), (43, 0, 0),
    ]),
    ((2, 3, 0), &[
        (1, 0, 11), (3, 0, 8), (8, 0, 7), (11, 0, 5), (12, 0, 3), (14, 0, 3), (15, 0, 3), (23, 0, 3),
        (44, 0, 0),
    ]),
    ((2, 4, 0), &[
        (0, 0, 8), (3, 0, 9), (4, 0, 4), (5, 0, 2), (6, 0, 6), (7, 0, 3), (8, 0, 8), (9, 0, 6),
        (10, 0, 3), (11, 0, 6), (12, 0, 4), (13, 0, 4), (14, 0, 4), (15, 0, 5), (16, 0, 3), (18, 0, 3),
        (19, 0, 5), (20, 0, 4), (22, 0, 2), (38, 0, 2), (42, 0, 2), (43, 0, 2), (44, 0, 1), (45, 0, 0),
        (46, 0, 0), (47, 0, 0),
    ]),
    ((2, 5, 0), &[
        (9, 0, 7), (11, 0, 7), (14, 0, 5), (22, 0, 3), (28, 0, 3), (29, 0, 2), (30, 0, 2), (31, 0, 2),
        (36, 0, 2), (37, 0, 2), (39, 0, 2), (40, 0, 2), (41, 0, 2),
    ]),
    ((2, 6, 0), &[
        (5, 0, 3), (16, 0, 4), (21, 0, 2), (32, 0, 3), (35, 0, 2), (48, 0, 0), (49, 0, 0),
    ]),
    ((2, 7, 0), &[
        (1, 0, 12), (19, 0, 6), (20, 0, 5), (22, 0, 4), (24, 0, 2), (25, 0, 2), (26, 0, 2), (37, 0, 3),
        (50, 0, 0), (51, 0, 0), (56, 0, 0), (57, 0, 0),
    ]),
    ((2, 8, 0), &[
        (0, 0, 9), (2, 0, 6), (3, 0, 11), (4, 0, 5), (6, 0, 7), (19, 0, 7), (20, 0, 6), (23, 0, 4),
        (24, 0, 3), (25, 0, 3), (26, 0, 3), (27, 0, 1), (32, 0, 4), (33, 0, 2), (34, 0, 2), (48, 0, 1),
        (49, 0, 1), (60, 0, 0), (61, 0, 0),
    ]),
    ((3, 0, 0), &[
        (2, 0, 7), (9, 0, 8), (10, 0, 4), (65, 0, 0), (66, 0, 0), (67, 0, 0),
    ]),
    ((3, 1, 0), &[
        (1, 0, 13), (3, 0, 12),
    ]),
    ((3, 2, 0), &[
        (4, 0, 6), (11, 0, 9), (13, 0, 5), (35, 0, 3), (56, 0, 1),
    ]),
    ((3, 3, 0), &[
        (29, 0, 3), (30, 0, 3), (31, 0, 3), (35, 0, 4), (38, 0, 3), (41, 0, 3), (56, 0, 2), (57, 0, 1),
    ]),
    ((3, 4, 0), &[
        (4, 0, 7), (5, 0, 4), (6, 0, 8), (58, 0, 0),
    ]),
    ((3, 5, 0), &[
        (1, 0, 15), (2, 0, 8), (56, 0, 3),
    ]),
    ((3, 6, 0), &[
        (24, 0, 4),
    ]),
    ((3, 7, 0), &[
        (0, 0, 10), (1, 0, 16), (8, 0, 9), (9, 0, 9), (60, 0, 1), (68, 0, 0),
    ]),
    ((3, 8, 0), &[
        (0, 0, 11), (10, 0, 5), (16, 0, 5), (22, 0, 5), (24, 0, 5), (25, 0, 4), (26, 0, 4), (28, 0, 4),
        (66, 0, 1), (69, 0, 0),
    ]),
    ((3, 9, 0), &[
        (1, 0, 17), (2, 0, 9), (10, 0, 6), (18, 0, 4),
    ]),
    ((4, 0, 0), &[
        (0, 0, 12), (1, 4, 17), (2, 1, 10), (3, 0, 13), (4, -1, -1), (5, -1, -1), (6, -1, -1), (7, -1, -1),
        (8, 2, 9), (9, 1, 9), (11, 2, 9), (15, 0, 6), (19, 2, 7), (20, 1, 6), (23, 2, 4), (26, 0, 5),
        (27, 1, 1), (28, 0, 5), (29, 1, 3), (30, 1, 3), (31, 1, 3), (32, 1, 4), (34, 1, 2), (35, 1, 4),
        (38, 1, 3), (39, 1, 2), (40, 1, 2), (41, 1, 3), (55, 0, 2), (56, -1, -1), (57, 0, 2), (58, -1, -1),
        (60, 0, 2), (64, 0, 0), (67, -1, -1), (68, 0, 1), (69, 0, 1), (74, 0, 0), (75, 0, 0), (80, 0, 0),
        (81, 0, 0),
    ]),
];

impl BrokerVersions {
    /// The API versions an Apache Kafka `release` (`(major, minor,
    /// patch)`) supports: those of the newest release in the table that is
    /// not newer (so `(2, 8, 1)` gets 2.8's, `(4, 1, 0)` 4.0's). `None`
    /// for a release older than 0.10.0, whose protocol this client does
    /// not speak.
    pub fn for_kafka_release(release: (u16, u16, u16)) -> Option<BrokerVersions> {
        let newest = RELEASES.iter().rposition(|(r, _)| *r <= release)?;
        let mut ranges: Vec<(i16, i16, i16)> = Vec::with_capacity(64);
        for (_, changes) in &RELEASES[..=newest] {
            for &(key, min, max) in *changes {
                ranges.retain(|r| r.0 != key);
                if min >= 0 {
                    ranges.push((key, min, max));
                }
            }
        }
        Some(BrokerVersions::new(ranges))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ApiKey;

    #[test]
    fn releases_are_in_order() {
        assert!(RELEASES.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn a_release_gets_its_own_ranges() {
        let v = |r, key| {
            BrokerVersions::for_kafka_release(r)
                .unwrap()
                .range(key)
                .map(|r| (r.min, r.max))
        };
        assert_eq!(v((0, 11, 0), ApiKey::PRODUCE), Some((0, 3)));
        assert_eq!(v((0, 11, 0), ApiKey::METADATA), Some((0, 4)));
        assert_eq!(v((0, 11, 0), ApiKey::SASL_AUTHENTICATE), None);
        assert_eq!(v((1, 0, 0), ApiKey::METADATA), Some((0, 5)));
        assert_eq!(v((1, 0, 0), ApiKey::SASL_AUTHENTICATE), Some((0, 0)));
        assert_eq!(v((2, 8, 0), ApiKey::FETCH), Some((0, 12)));
        // A patch release, and one newer than the table.
        assert_eq!(v((2, 8, 2), ApiKey::FETCH), Some((0, 12)));
        assert_eq!(v((4, 1, 0), ApiKey::FETCH), Some((4, 17)));
        // 4.0 removed the broker-to-broker LeaderAndIsr (key 4).
        assert_eq!(v((3, 9, 0), ApiKey(4)), Some((0, 7)));
        assert_eq!(v((4, 0, 0), ApiKey(4)), None);
        assert!(BrokerVersions::for_kafka_release((0, 9, 0)).is_none());
    }

    #[test]
    fn the_release_guess_names_the_release_back() {
        for (release, _) in RELEASES {
            let guess = BrokerVersions::for_kafka_release(*release)
                .unwrap()
                .guess_kafka_version();
            assert!(guess <= *release, "{release:?} guessed as {guess:?}");
        }
        for release in [
            (0, 11, 0),
            (1, 0, 0),
            (2, 0, 0),
            (2, 8, 0),
            (3, 7, 0),
            (4, 0, 0),
        ] {
            let guess = BrokerVersions::for_kafka_release(release)
                .unwrap()
                .guess_kafka_version();
            assert_eq!(guess, release);
        }
    }
}
