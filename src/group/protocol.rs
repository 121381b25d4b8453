//! The consumer's embedded group protocol: subscription and assignment
//! bytes as the Java client's `ConsumerProtocol` writes them (a big-endian
//! `int16` version, then the `ConsumerProtocolSubscription` or
//! `ConsumerProtocolAssignment` struct in that version), and the assignors'
//! user data (the sticky assignor's previous assignment, the cooperative
//! sticky assignor's generation), so our members can share a group with
//! Java and kafka-python members.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::bytes::Bytes;
use crate::error::{Error, Result};
use crate::partition::TopicPartition;
use crate::protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use crate::protocol::messages::consumer_protocol_subscription::TopicPartition as OwnedTopic;
use crate::protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use crate::protocol::{Decoder, Encoder, Message};

/// The version this client writes (the Java client's highest).
pub(crate) const VERSION: i16 = 3;

/// A member's subscription, decoded.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Subscription {
    pub(crate) topics: Vec<String>,
    pub(crate) user_data: Option<Bytes>,
    pub(crate) owned: Vec<TopicPartition>,
    /// -1 when absent (before v2).
    pub(crate) generation: i32,
    pub(crate) rack: Option<String>,
}

fn group_by_topic(partitions: &[TopicPartition]) -> BTreeMap<Arc<str>, Vec<i32>> {
    let mut by: BTreeMap<Arc<str>, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        by.entry(Arc::clone(&tp.topic))
            .or_default()
            .push(tp.partition);
    }
    for ps in by.values_mut() {
        ps.sort_unstable();
        ps.dedup();
    }
    by
}

/// Writes a subscription (version [`VERSION`]).
pub(crate) fn encode_subscription(s: &Subscription) -> Result<Bytes> {
    let data = ConsumerProtocolSubscription {
        topics: s.topics.clone(),
        user_data: s.user_data.clone(),
        owned_partitions: group_by_topic(&s.owned)
            .into_iter()
            .map(|(topic, partitions)| OwnedTopic {
                topic: topic.to_string(),
                partitions,
                ..Default::default()
            })
            .collect(),
        generation_id: s.generation,
        rack_id: s.rack.clone(),
        ..Default::default()
    };
    let mut out = Vec::with_capacity(64);
    out.put_i16(VERSION);
    data.encode(&mut out, VERSION)?;
    Ok(Bytes::from(out))
}

/// Reads a subscription of any version (newer versions are read as the
/// newest known one, their extra fields ignored, as the Java client does).
pub(crate) fn decode_subscription(bytes: &Bytes) -> Result<Subscription> {
    let mut d = Decoder::new(bytes);
    let version = d.i16()?;
    if version < 0 {
        return Err(Error::protocol(format!(
            "consumer subscription version {version} is negative"
        )));
    }
    let data = ConsumerProtocolSubscription::decode(&mut d, version.min(VERSION))?;
    Ok(Subscription {
        topics: data.topics,
        user_data: data.user_data,
        owned: data
            .owned_partitions
            .into_iter()
            .flat_map(|t| {
                let topic: Arc<str> = Arc::from(t.topic);
                t.partitions
                    .into_iter()
                    .map(move |p| TopicPartition::new(Arc::clone(&topic), p))
            })
            .collect(),
        generation: data.generation_id,
        rack: data.rack_id,
    })
}

/// Writes an assignment (version [`VERSION`]).
pub(crate) fn encode_assignment(
    partitions: &[TopicPartition],
    user_data: Option<Bytes>,
) -> Result<Bytes> {
    let data = ConsumerProtocolAssignment {
        assigned_partitions: group_by_topic(partitions)
            .into_iter()
            .map(|(topic, partitions)| AssignedTopic {
                topic: topic.to_string(),
                partitions,
                ..Default::default()
            })
            .collect(),
        user_data,
        ..Default::default()
    };
    let mut out = Vec::with_capacity(64);
    out.put_i16(VERSION);
    data.encode(&mut out, VERSION)?;
    Ok(Bytes::from(out))
}

/// Reads an assignment; empty bytes (a member the leader left out) are an
/// empty assignment.
pub(crate) fn decode_assignment(bytes: &Bytes) -> Result<Vec<TopicPartition>> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut d = Decoder::new(bytes);
    let version = d.i16()?;
    if version < 0 {
        return Err(Error::protocol(format!(
            "consumer assignment version {version} is negative"
        )));
    }
    let data = ConsumerProtocolAssignment::decode(&mut d, version.min(VERSION))?;
    let mut out = Vec::new();
    for t in data.assigned_partitions {
        let topic: Arc<str> = Arc::from(t.topic);
        for p in t.partitions {
            out.push(TopicPartition::new(Arc::clone(&topic), p));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The cooperative sticky assignor's user data: the generation as an
/// `int32` (for members older than subscription v2).
pub(crate) fn cooperative_user_data(generation: i32) -> Bytes {
    Bytes::from(generation.to_be_bytes().to_vec())
}

/// Reads [`cooperative_user_data`].
pub(crate) fn decode_cooperative_user_data(data: &[u8]) -> Option<i32> {
    data.get(..4)
        .and_then(|b| b.try_into().ok())
        .map(i32::from_be_bytes)
}

/// The (eager) sticky assignor's user data, its `StickyAssignorUserData`
/// v1: the previous assignment and its generation.
pub(crate) fn sticky_user_data(previous: &[TopicPartition], generation: i32) -> Result<Bytes> {
    let mut out = Vec::with_capacity(32);
    let by = group_by_topic(previous);
    out.put_i32(by.len() as i32);
    for (topic, partitions) in by {
        out.put_string_v(false, &topic)?;
        out.put_i32(partitions.len() as i32);
        for p in partitions {
            out.put_i32(p);
        }
    }
    out.put_i32(generation);
    Ok(Bytes::from(out))
}

/// Reads [`sticky_user_data`] (v0 has no generation: -1).
pub(crate) fn decode_sticky_user_data(data: &Bytes) -> Result<(Vec<TopicPartition>, i32)> {
    let mut d = Decoder::new(data);
    let mut out = Vec::new();
    let topics = d.array_v(false, |d| {
        let topic = d.string_v(false)?;
        let partitions = d.array_v(false, |d| d.i32())?;
        Ok((topic, partitions))
    })?;
    for (topic, partitions) in topics {
        let topic: Arc<str> = Arc::from(topic);
        for p in partitions {
            out.push(TopicPartition::new(Arc::clone(&topic), p));
        }
    }
    let generation = if d.remaining() >= 4 { d.i32()? } else { -1 };
    Ok((out, generation))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(t: &str, p: i32) -> TopicPartition {
        TopicPartition::new(t, p)
    }

    #[test]
    fn subscription_round_trip_and_layout() {
        let s = Subscription {
            topics: vec!["a".into(), "b".into()],
            user_data: Some(cooperative_user_data(7)),
            owned: vec![tp("b", 2), tp("a", 0), tp("b", 1)],
            generation: 7,
            rack: None,
        };
        let bytes = encode_subscription(&s).unwrap();
        // version 3, then topics ["a", "b"]
        assert_eq!(&bytes[..2], &[0, 3]);
        assert_eq!(&bytes[2..6], &[0, 0, 0, 2]);
        assert_eq!(&bytes[6..9], &[0, 1, b'a']);
        let back = decode_subscription(&bytes).unwrap();
        assert_eq!(back.topics, s.topics);
        assert_eq!(back.owned, vec![tp("a", 0), tp("b", 1), tp("b", 2)]);
        assert_eq!(back.generation, 7);
        assert_eq!(
            decode_cooperative_user_data(back.user_data.as_deref().unwrap()),
            Some(7)
        );
    }

    #[test]
    fn reads_version_0_and_future_versions() {
        // kafka-python 2.0 writes v0: version, topics, user data.
        let mut v0 = Vec::new();
        v0.put_i16(0);
        v0.put_i32(1);
        v0.put_string_v(false, "t").unwrap();
        v0.put_i32(-1);
        let s = decode_subscription(&Bytes::from(v0)).unwrap();
        assert_eq!(s.topics, ["t"]);
        assert_eq!(s.generation, -1);
        // A future v9 with an extra trailing field.
        let mut v9 = encode_subscription(&Subscription {
            topics: vec!["x".into()],
            generation: 2,
            ..Default::default()
        })
        .unwrap()
        .to_vec();
        v9[1] = 9;
        v9.extend([1, 2, 3, 4]);
        let s = decode_subscription(&Bytes::from(v9)).unwrap();
        assert_eq!((s.topics.len(), s.generation), (1, 2));
        assert!(decode_subscription(&Bytes::from(vec![0xff, 0xff])).is_err());
        assert!(decode_subscription(&Bytes::from(vec![0, 1, 0])).is_err());
    }

    #[test]
    fn assignment_round_trip() {
        let parts = vec![tp("z", 1), tp("a", 3), tp("a", 1)];
        let bytes = encode_assignment(&parts, None).unwrap();
        assert_eq!(
            decode_assignment(&bytes).unwrap(),
            vec![tp("a", 1), tp("a", 3), tp("z", 1)]
        );
        assert!(decode_assignment(&Bytes::new()).unwrap().is_empty());
    }

    #[test]
    fn sticky_user_data_round_trip() {
        let prev = vec![tp("t", 0), tp("t", 4), tp("u", 1)];
        let b = sticky_user_data(&prev, 12).unwrap();
        assert_eq!(decode_sticky_user_data(&b).unwrap(), (prev, 12));
    }
}
