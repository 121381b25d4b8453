//! What the fetch thread puts on and reads off the wire without decoding
//! records: the Fetch request for a session's plan, the batch-header scan
//! that finds where the next fetch starts, and the KIP-74 "too large" rule.

use super::FetchSettings;
use crate::consumer::fetch_session::Plan;
use crate::protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use crate::protocol::messages::FetchRequest;

/// Whether `len` bytes without one whole batch, fetched with Fetch
/// `version`, mean a batch too large to ever come whole. Before v3
/// (KIP-74) a broker never sends a batch larger than the partition limit;
/// from v3 on it sends the first batch whole whatever the limits, so a
/// cut-off batch smaller than the limits means the response filled up with
/// other partitions first (fetch again), while one that fills a limit comes
/// from a broker that ignores KIP-74 (too large, or it would never end).
pub(crate) fn partial_is_too_large(version: i16, len: usize, s: &FetchSettings) -> bool {
    let limit = s.partition_max_bytes.min(s.max_bytes).max(0) as usize;
    version < 3 || len >= limit
}

/// The Fetch request for `plan` (partitions listed in `rotation`'s order).
pub(super) fn build_request(s: &FetchSettings, plan: &Plan, rotation: usize) -> FetchRequest {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for w in &plan.include {
        if topics.last().map_or(true, |t| *t.topic != *w.tp.topic) {
            topics.push(FetchTopic {
                topic: w.tp.topic.to_string(),
                topic_id: w.topic_id,
                partitions: Vec::new(),
                ..Default::default()
            });
        }
        if let Some(t) = topics.last_mut() {
            t.partitions.push(FetchPartition {
                partition: w.tp.partition,
                current_leader_epoch: w.part.leader_epoch,
                fetch_offset: w.part.offset,
                last_fetched_epoch: -1,
                log_start_offset: -1,
                partition_max_bytes: w.part.max_bytes,
                ..Default::default()
            });
        }
    }
    for t in &mut topics {
        let n = t.partitions.len();
        t.partitions.rotate_left(rotation % n.max(1));
    }
    let n = topics.len();
    topics.rotate_left(rotation % n.max(1));
    let mut forgotten: Vec<ForgottenTopic> = Vec::new();
    for (tp, topic_id) in &plan.forget {
        if forgotten.last().map_or(true, |t| *t.topic != *tp.topic) {
            forgotten.push(ForgottenTopic {
                topic: tp.topic.to_string(),
                topic_id: *topic_id,
                partitions: Vec::new(),
                ..Default::default()
            });
        }
        if let Some(t) = forgotten.last_mut() {
            t.partitions.push(tp.partition);
        }
    }
    FetchRequest {
        max_wait_ms: s.max_wait.as_millis().min(i32::MAX as u128) as i32,
        min_bytes: s.min_bytes,
        max_bytes: s.max_bytes,
        isolation_level: s.isolation_level,
        session_id: plan.session_id,
        session_epoch: plan.session_epoch,
        topics,
        forgotten_topics_data: forgotten,
        rack_id: s.rack.clone(),
        ..Default::default()
    }
}

/// What the batch headers of a fetched blob say.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Scan {
    /// The offset after the last whole batch.
    Next(i64),
    /// The first batch is cut off: it is larger than the fetch allowed
    /// (brokers before 0.10.1 send no partial first batch whole).
    Partial,
    /// A batch header is impossible.
    Malformed,
}

/// Walks the batch headers of `records` (no CRC, no decompression).
pub(crate) fn scan_next_offset(records: &[u8]) -> Scan {
    let mut pos = 0usize;
    let mut next: Option<i64> = None;
    while let Some(header) = records.get(pos..pos + 17) {
        let base = i64::from_be_bytes(header[0..8].try_into().unwrap_or([0; 8]));
        let len = i32::from_be_bytes(header[8..12].try_into().unwrap_or([0; 4]));
        if len < 14 {
            return match next {
                Some(n) => Scan::Next(n),
                None => Scan::Malformed,
            };
        }
        let total = 12 + len as usize;
        let Some(batch) = records.get(pos..pos + total) else {
            break;
        };
        let last = if header[16] == 2 {
            match batch.get(23..27) {
                Some(d) => base.wrapping_add(i64::from(i32::from_be_bytes(
                    d.try_into().unwrap_or([0; 4]),
                ))),
                None => return Scan::Malformed,
            }
        } else {
            // Legacy: a wrapper carries the offset of its last inner message.
            base
        };
        let n = last.wrapping_add(1);
        next = Some(next.map_or(n, |m| m.max(n)));
        pos += total;
    }
    match next {
        Some(n) => Scan::Next(n),
        None => Scan::Partial,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::consumer::fetch_session::{SentPart, Session, Want};
    use crate::partition::TopicPartition;
    use crate::protocol::Uuid;
    use crate::records::{BatchOptions, RecordBatchBuilder};

    fn batch(base: i64, n: usize) -> Vec<u8> {
        let mut b = RecordBatchBuilder::new();
        for i in 0..n {
            b.append(0, None, Some(format!("v{i}").as_bytes()), [])
                .unwrap();
        }
        b.build(&BatchOptions {
            base_offset: base,
            ..BatchOptions::default()
        })
        .unwrap()
        .to_vec()
    }

    #[test]
    fn scan_finds_the_end_of_the_last_whole_batch() {
        let mut blob = batch(10, 3);
        blob.extend(batch(13, 5));
        assert_eq!(scan_next_offset(&blob), Scan::Next(18));
        let whole = blob.len();
        blob.extend(&batch(18, 4)[..20]);
        assert_eq!(scan_next_offset(&blob), Scan::Next(18), "partial tail");
        assert_eq!(scan_next_offset(&blob[whole..]), Scan::Partial);
        assert_eq!(scan_next_offset(&[]), Scan::Partial);
        let mut bad = batch(0, 1);
        bad[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert_eq!(scan_next_offset(&bad), Scan::Malformed);
    }

    fn settings() -> FetchSettings {
        FetchSettings {
            max_wait: Duration::from_millis(500),
            min_bytes: 1,
            max_bytes: 1 << 20,
            partition_max_bytes: 1000,
            isolation_level: 0,
            request_timeout: Duration::from_secs(30),
            retry_backoff: Duration::from_millis(100),
            rack: String::new(),
            preferred_replica_ttl: Duration::from_secs(300),
        }
    }

    fn want(topic: &str, id: u8, p: i32) -> Want {
        Want {
            tp: TopicPartition::new(topic, p),
            topic_id: Uuid([id; 16]),
            part: SentPart {
                offset: 0,
                max_bytes: 1000,
                leader_epoch: -1,
            },
        }
    }

    #[test]
    fn a_paused_topic_is_forgotten_by_id_on_fetch_v13() {
        let mut session = Session::default();
        let plan = session.plan(vec![want("a", 1, 0), want("b", 2, 0)], 13);
        session.answered(plan.full, 42);
        // Topic b paused as a whole: only a is wanted.
        let plan = session.plan(vec![want("a", 1, 0)], 13);
        let r = build_request(&settings(), &plan, 0);
        assert_eq!(r.session_id, 42);
        assert_eq!(r.forgotten_topics_data.len(), 1);
        let f = &r.forgotten_topics_data[0];
        assert_eq!((f.topic_id, f.partitions.clone()), (Uuid([2; 16]), vec![0]));
        assert!(r.topics.is_empty(), "a is unchanged: not listed");
    }

    #[test]
    fn a_cut_off_first_batch_is_too_large_only_when_it_fills_a_limit() {
        let s = settings();
        assert!(partial_is_too_large(2, 10, &s), "before KIP-74");
        assert!(
            !partial_is_too_large(3, 10, &s),
            "the response filled up first"
        );
        assert!(
            partial_is_too_large(12, 1000, &s),
            "cut at the partition limit"
        );
    }
}
