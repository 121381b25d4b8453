//! Incremental fetch sessions (KIP-227), one per broker: what the broker
//! already knows about, so each request carries only what changed.
//!
//! The first request of a session is a full one (session id 0, epoch 0)
//! listing every partition; when the broker answers with a session id, the
//! following requests carry that id and an increasing epoch, list only the
//! partitions that are new or whose fetch offset, limit or leader epoch
//! changed, and name the partitions to forget. A response then lists only
//! partitions with news. Brokers without sessions (id 0 in every answer,
//! or Fetch older than v7) get a full request each time. A session error
//! (FETCH_SESSION_ID_NOT_FOUND, INVALID_FETCH_SESSION_EPOCH, ...) or an
//! incremental answer carrying another session id (0: the broker closed
//! it) drops the session: the next request is a full one, from the
//! positions the consumer holds, so nothing is skipped or read twice.

use std::collections::HashMap;
use std::sync::Arc;

use crate::partition::TopicPartition;
use crate::protocol::Uuid;

/// What the broker has been told about one partition of the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SentPart {
    pub(crate) offset: i64,
    pub(crate) max_bytes: i32,
    pub(crate) leader_epoch: i32,
}

/// One partition the next request wants.
#[derive(Debug, Clone)]
pub(crate) struct Want {
    pub(crate) tp: TopicPartition,
    /// The topic's id (zero when unknown: Fetch v12 and older).
    pub(crate) topic_id: Uuid,
    pub(crate) part: SentPart,
}

/// The session with one broker.
#[derive(Debug, Default)]
pub(crate) struct Session {
    /// 0: none.
    id: i32,
    /// The epoch of the next request (0 opens a session).
    epoch: i32,
    sent: HashMap<TopicPartition, SentPart>,
    /// The id of each topic in `sent`: forgetting a partition on Fetch v13+
    /// names its topic by id, also when no partition of it is wanted any
    /// more.
    topic_ids: HashMap<Arc<str>, Uuid>,
    /// The Fetch version the session was made with (topic ids or names).
    version: i16,
}

/// The session fields and partition lists of the next request.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) session_id: i32,
    pub(crate) session_epoch: i32,
    /// Partitions to list in the request.
    pub(crate) include: Vec<Want>,
    /// Partitions to drop from the session, with their topic's id.
    pub(crate) forget: Vec<(TopicPartition, Uuid)>,
    /// Whether this is a full request (every wanted partition listed).
    pub(crate) full: bool,
}

impl Session {
    /// Plans the next request for `want` (every partition the consumer
    /// wants from this broker now) at Fetch `version`, and records it as
    /// sent.
    pub(crate) fn plan(&mut self, want: Vec<Want>, version: i16) -> Plan {
        if version < 7 {
            self.reset();
            return Plan {
                session_id: 0,
                session_epoch: -1,
                include: want,
                forget: Vec::new(),
                full: true,
            };
        }
        if self.id != 0 && self.version != version {
            // Topic ids and names must not be mixed within a session.
            self.reset();
        }
        self.version = version;
        if self.id == 0 {
            self.sent = want.iter().map(|w| (w.tp.clone(), w.part)).collect();
            self.topic_ids = ids_of(&want);
            self.epoch = 0;
            return Plan {
                session_id: 0,
                session_epoch: 0,
                include: want,
                forget: Vec::new(),
                full: true,
            };
        }
        let ids = ids_of(&want);
        let mut include = Vec::new();
        let mut keep: HashMap<TopicPartition, SentPart> = HashMap::with_capacity(want.len());
        for w in want {
            if self.sent.get(&w.tp) != Some(&w.part) {
                include.push(w.clone());
            }
            keep.insert(w.tp, w.part);
        }
        let mut forget: Vec<(TopicPartition, Uuid)> = self
            .sent
            .keys()
            .filter(|tp| !keep.contains_key(*tp))
            .map(|tp| {
                let id = self.topic_ids.get(&tp.topic).copied();
                (tp.clone(), id.unwrap_or(Uuid::ZERO))
            })
            .collect();
        forget.sort();
        self.sent = keep;
        self.topic_ids = ids;
        Plan {
            session_id: self.id,
            session_epoch: self.epoch,
            include,
            forget,
            full: false,
        }
    }

    /// The offset the broker uses for `tp` in this session.
    #[cfg(test)]
    pub(crate) fn sent(&self, tp: &TopicPartition) -> Option<SentPart> {
        self.sent.get(tp).copied()
    }

    /// Takes the answer to a request planned with `plan` (`session_id` as
    /// the broker returned it, no top-level error).
    pub(crate) fn answered(&mut self, full: bool, session_id: i32) {
        if full {
            if session_id != 0 && session_id != self.id {
                log::debug!("fetch session {session_id} opened");
            }
            self.id = session_id;
            self.epoch = if session_id == 0 { 0 } else { 1 };
            if session_id == 0 {
                self.sent.clear();
            }
        } else if session_id != self.id {
            // The broker closed the session (id 0: the Java client then
            // starts over too) or answered for another one (the Java
            // client does not compare ids and goes on; we cannot know what
            // the broker holds for us, so we start over as well). The
            // answer's data still answers this request's offsets.
            log::debug!(
                "fetch session {}: incremental answer for session {session_id}; next fetch is a full one",
                self.id
            );
            self.reset();
        } else {
            self.epoch = if self.epoch == i32::MAX {
                1
            } else {
                self.epoch + 1
            };
        }
    }

    /// Forgets the session (after a session error or a lost connection):
    /// the next request is a full one.
    pub(crate) fn reset(&mut self) {
        self.id = 0;
        self.epoch = 0;
        self.sent.clear();
        self.topic_ids.clear();
    }

    /// Whether a session is open.
    #[cfg(test)]
    pub(crate) fn is_open(&self) -> bool {
        self.id != 0
    }
}

/// The topic ids of `want`.
fn ids_of(want: &[Want]) -> HashMap<Arc<str>, Uuid> {
    want.iter()
        .map(|w| (Arc::clone(&w.tp.topic), w.topic_id))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(p: i32, offset: i64) -> Want {
        Want {
            tp: TopicPartition::new("t", p),
            topic_id: Uuid([1; 16]),
            part: SentPart {
                offset,
                max_bytes: 100,
                leader_epoch: -1,
            },
        }
    }

    #[test]
    fn full_then_incremental() {
        let mut s = Session::default();
        let p = s.plan(vec![want(0, 0), want(1, 0)], 13);
        assert!(p.full);
        assert_eq!((p.session_id, p.session_epoch), (0, 0));
        assert_eq!(p.include.len(), 2);
        s.answered(true, 77);
        assert!(s.is_open());

        // Partition 0 got data (offset moved), partition 1 did not.
        let p = s.plan(vec![want(0, 10), want(1, 0)], 13);
        assert!(!p.full);
        assert_eq!((p.session_id, p.session_epoch), (77, 1));
        assert_eq!(p.include.len(), 1);
        assert_eq!(p.include[0].tp.partition, 0);
        assert!(p.forget.is_empty());
        s.answered(false, 77);

        // Partition 1 paused: forgotten; partition 2 added.
        let p = s.plan(vec![want(0, 10), want(2, 5)], 13);
        assert_eq!(p.session_epoch, 2);
        assert_eq!(p.include.len(), 1);
        assert_eq!(p.include[0].tp.partition, 2);
        assert_eq!(p.forget, vec![(TopicPartition::new("t", 1), Uuid([1; 16]))]);
        assert_eq!(
            s.sent(&TopicPartition::new("t", 2)).map(|p| p.offset),
            Some(5)
        );
    }

    #[test]
    fn a_topic_left_entirely_is_forgotten_by_its_id() {
        let other = |p: i32| Want {
            tp: TopicPartition::new("u", p),
            topic_id: Uuid([2; 16]),
            ..want(p, 0)
        };
        let mut s = Session::default();
        s.plan(vec![want(0, 0), other(0), other(1)], 13);
        s.answered(true, 9);
        // Every partition of `u` paused: no want names `u` any more.
        let p = s.plan(vec![want(0, 0)], 13);
        assert_eq!(
            p.forget,
            vec![
                (TopicPartition::new("u", 0), Uuid([2; 16])),
                (TopicPartition::new("u", 1), Uuid([2; 16]))
            ]
        );
    }

    #[test]
    fn no_session_means_full_requests() {
        let mut s = Session::default();
        s.plan(vec![want(0, 0)], 13);
        s.answered(true, 0);
        let p = s.plan(vec![want(0, 3)], 13);
        assert!(p.full);
        assert_eq!(p.session_epoch, 0);
        let p = s.plan(vec![want(0, 3)], 6);
        assert!(p.full);
        assert_eq!((p.session_id, p.session_epoch), (0, -1));
    }

    #[test]
    fn an_incremental_answer_for_another_session_starts_over() {
        for answered_id in [0, 78] {
            let mut s = Session::default();
            s.plan(vec![want(0, 0)], 13);
            s.answered(true, 77);
            let p = s.plan(vec![want(0, 4)], 13);
            assert!(!p.full);
            s.answered(false, answered_id);
            let p = s.plan(vec![want(0, 8)], 13);
            assert!(p.full, "after an answer for session {answered_id}");
            assert_eq!((p.session_id, p.session_epoch), (0, 0));
            assert_eq!(p.include.len(), 1);
        }
    }

    #[test]
    fn version_change_and_reset_start_over() {
        let mut s = Session::default();
        s.plan(vec![want(0, 0)], 13);
        s.answered(true, 5);
        let p = s.plan(vec![want(0, 0)], 12);
        assert!(p.full, "a new version opens a new session");
        s.answered(true, 6);
        s.reset();
        assert!(s.plan(vec![want(0, 0)], 12).full);
    }
}
