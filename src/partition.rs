//! The names every layer shares: a [`TopicPartition`] and an
//! [`OffsetAndMetadata`] to commit. They sit under the crate root so that
//! the consumer, the group layer and the admin client can all use them
//! without importing each other; users find them at the crate root and in
//! [`consumer`](crate::consumer) and [`admin`](crate::admin).

use std::fmt;
use std::sync::Arc;

/// A partition of a topic.
///
/// ```
/// use kafka_blocking::consumer::TopicPartition;
///
/// let tp = TopicPartition::new("orders", 3);
/// assert_eq!(tp, ("orders", 3).into());
/// assert_eq!(tp.to_string(), "orders-3");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// The topic (shared: cloning does not copy the name).
    pub topic: Arc<str>,
    /// The partition index.
    pub partition: i32,
}

impl TopicPartition {
    /// A topic partition.
    pub fn new(topic: impl IntoTopicName, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.into_topic_name(),
            partition,
        }
    }
}

/// Anything that names a topic: `&str`, `String`, `&String`, `Arc<str>`
/// (shared without copying).
pub trait IntoTopicName {
    /// The name as a shared string.
    fn into_topic_name(self) -> Arc<str>;
}

impl IntoTopicName for &str {
    fn into_topic_name(self) -> Arc<str> {
        Arc::from(self)
    }
}
impl IntoTopicName for String {
    fn into_topic_name(self) -> Arc<str> {
        Arc::from(self)
    }
}
impl IntoTopicName for &String {
    fn into_topic_name(self) -> Arc<str> {
        Arc::from(self.as_str())
    }
}
impl IntoTopicName for Arc<str> {
    fn into_topic_name(self) -> Arc<str> {
        self
    }
}
impl IntoTopicName for &Arc<str> {
    fn into_topic_name(self) -> Arc<str> {
        Arc::clone(self)
    }
}

impl<T: IntoTopicName> From<(T, i32)> for TopicPartition {
    fn from((topic, partition): (T, i32)) -> TopicPartition {
        TopicPartition::new(topic, partition)
    }
}

impl From<&TopicPartition> for TopicPartition {
    fn from(tp: &TopicPartition) -> TopicPartition {
        tp.clone()
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

impl fmt::Debug for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// An offset to commit, or a committed one: the offset of the next record
/// to read, optional metadata, and the leader epoch of the last record read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OffsetAndMetadata {
    /// The next offset to consume (the last processed offset + 1).
    pub offset: i64,
    /// Free-form metadata stored with the offset (empty by default).
    pub metadata: String,
    /// The leader epoch of the last consumed record, when known.
    pub leader_epoch: Option<i32>,
}

impl OffsetAndMetadata {
    /// `offset` with no metadata.
    pub fn new(offset: i64) -> OffsetAndMetadata {
        OffsetAndMetadata {
            offset,
            metadata: String::new(),
            leader_epoch: None,
        }
    }

    /// `offset` with `metadata`.
    pub fn with_metadata(offset: i64, metadata: impl Into<String>) -> OffsetAndMetadata {
        OffsetAndMetadata {
            offset,
            metadata: metadata.into(),
            leader_epoch: None,
        }
    }
}

impl From<i64> for OffsetAndMetadata {
    fn from(offset: i64) -> OffsetAndMetadata {
        OffsetAndMetadata::new(offset)
    }
}
