//! What the consumer hands out: [`Message`], the [`Records`] of one poll,
//! the offset-for-timestamp answer, and typed access to keys and
//! values ([`FromPayload`], [`Deserializer`]).

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use crate::bytes::Bytes;
use crate::error::{Error, ErrorKind, Result};
use crate::partition::TopicPartition;
use crate::records::{Headers, TimestampType};

/// The answer of an offset-for-timestamp lookup: the first record at or
/// after the timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OffsetAndTimestamp {
    /// Its offset.
    pub offset: i64,
    /// Its timestamp.
    pub timestamp: i64,
    /// The leader epoch, when the broker reports it.
    pub leader_epoch: Option<i32>,
}

/// One consumed record.
///
/// The key, value and headers are [`Bytes`] views into the fetched (or
/// decompressed) buffer: reading them copies nothing, and keeping a message
/// keeps that buffer alive. [`key_as`](Message::key_as) and
/// [`value_as`](Message::value_as) give typed access; `&str` and `&[u8]`
/// borrow from the message.
///
/// ```
/// # use kafka_blocking::consumer::Message;
/// # fn show(msg: &Message) -> kafka_blocking::Result<()> {
/// let reading: f64 = msg.value_as()?;            // 8 bytes, big-endian
/// let sensor: Option<&str> = msg.key_as()?;      // borrowed, UTF-8 checked
/// println!("{}-{}@{} {sensor:?} = {reading}", msg.topic(), msg.partition(), msg.offset());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Message {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) timestamp: i64,
    pub(crate) timestamp_type: Option<TimestampType>,
    pub(crate) key: Option<Bytes>,
    pub(crate) value: Option<Bytes>,
    pub(crate) headers: Headers,
    pub(crate) leader_epoch: Option<i32>,
}

impl Message {
    /// The topic.
    #[inline]
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The topic as a shared string (cloning it does not copy).
    #[inline]
    pub fn topic_arc(&self) -> &Arc<str> {
        &self.topic
    }

    /// The partition.
    #[inline]
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// The topic and partition.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition {
            topic: Arc::clone(&self.topic),
            partition: self.partition,
        }
    }

    /// The offset in the partition.
    #[inline]
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// Milliseconds since the Unix epoch (-1 when the record has none).
    #[inline]
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// Whether the timestamp is the producer's or the broker's; `None` for
    /// pre-0.10 records, which have no timestamp.
    #[inline]
    pub fn timestamp_type(&self) -> Option<TimestampType> {
        self.timestamp_type
    }

    /// The key bytes (`None` for a null key).
    #[inline]
    pub fn key(&self) -> Option<&Bytes> {
        self.key.as_ref()
    }

    /// The value bytes (`None` for a null value, a tombstone).
    #[inline]
    pub fn value(&self) -> Option<&Bytes> {
        self.value.as_ref()
    }

    /// The headers, decoded on demand.
    #[inline]
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The leader epoch of the batch, when the broker set one.
    #[inline]
    pub fn leader_epoch(&self) -> Option<i32> {
        self.leader_epoch
    }

    /// The key as a `T` (see [`FromPayload`]): `&str`, `String`, `&[u8]`,
    /// `Vec<u8>`, `Bytes`, a big-endian number, or `Option` of one of those
    /// for nullable keys.
    pub fn key_as<'a, T: FromPayload<'a>>(&'a self) -> Result<T> {
        T::from_payload(self.key.as_ref()).map_err(|e| self.context(e, "key"))
    }

    /// The value as a `T`; see [`key_as`](Message::key_as).
    pub fn value_as<'a, T: FromPayload<'a>>(&'a self) -> Result<T> {
        T::from_payload(self.value.as_ref()).map_err(|e| self.context(e, "value"))
    }

    /// The key, decoded by `deserializer` (kafka-python's
    /// `key_deserializer`).
    pub fn key_with<T>(&self, deserializer: &dyn Deserializer<T>) -> Result<T> {
        deserializer
            .deserialize(&self.topic, self.key.as_ref())
            .map_err(|e| self.context(e, "key"))
    }

    /// The value, decoded by `deserializer` (kafka-python's
    /// `value_deserializer`).
    pub fn value_with<T>(&self, deserializer: &dyn Deserializer<T>) -> Result<T> {
        deserializer
            .deserialize(&self.topic, self.value.as_ref())
            .map_err(|e| self.context(e, "value"))
    }

    fn context(&self, e: Error, what: &str) -> Error {
        e.context(format_args!("deserializing the {what}"))
            .with_partition(&*self.topic, self.partition)
            .with_offset(self.offset)
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .field("offset", &self.offset)
            .field("timestamp", &self.timestamp)
            .field("timestamp_type", &self.timestamp_type)
            .field("key", &self.key)
            .field("value", &self.value)
            .field("headers", &self.headers)
            .field("leader_epoch", &self.leader_epoch)
            .finish()
    }
}

/// Decodes key or value bytes into a type: the consumer-side mirror of the
/// producer's [`IntoPayload`](crate::producer::IntoPayload).
///
/// Strings are UTF-8 (`&str` borrows, `String` copies), byte types are the
/// bytes (`Bytes` shares the buffer), integers and floats are big-endian of
/// exactly their size (the Java client's `IntegerDeserializer`,
/// `LongDeserializer`, `DoubleDeserializer`...). A null key or value is an
/// error unless the type is an `Option`.
pub trait FromPayload<'a>: Sized {
    /// Decodes `data` (`None` for null).
    fn from_payload(data: Option<&'a Bytes>) -> Result<Self>;
}

fn serialization(message: String) -> Error {
    Error::new(ErrorKind::Serialization, message)
}

fn required<'a>(data: Option<&'a Bytes>, what: &str) -> Result<&'a Bytes> {
    data.ok_or_else(|| {
        serialization(format!(
            "it is null, which is not a valid {what}; read it as an Option"
        ))
    })
}

impl<'a, T: FromPayload<'a>> FromPayload<'a> for Option<T> {
    fn from_payload(data: Option<&'a Bytes>) -> Result<Self> {
        match data {
            None => Ok(None),
            Some(_) => T::from_payload(data).map(Some),
        }
    }
}

impl<'a> FromPayload<'a> for &'a str {
    fn from_payload(data: Option<&'a Bytes>) -> Result<Self> {
        let b = required(data, "string")?;
        std::str::from_utf8(b).map_err(|e| serialization(format!("it is not UTF-8: {e}")))
    }
}

impl<'a> FromPayload<'a> for String {
    fn from_payload(data: Option<&'a Bytes>) -> Result<Self> {
        <&str>::from_payload(data).map(str::to_owned)
    }
}

impl<'a> FromPayload<'a> for &'a [u8] {
    fn from_payload(data: Option<&'a Bytes>) -> Result<Self> {
        required(data, "byte string").map(|b| b.as_slice())
    }
}

impl<'a> FromPayload<'a> for Vec<u8> {
    fn from_payload(data: Option<&'a Bytes>) -> Result<Self> {
        required(data, "byte string").map(|b| b.to_vec())
    }
}

impl<'a> FromPayload<'a> for Bytes {
    fn from_payload(data: Option<&'a Bytes>) -> Result<Self> {
        required(data, "byte string").cloned()
    }
}

macro_rules! be_numbers {
    ($($t:ty),*) => {$(
        impl<'a> FromPayload<'a> for $t {
            fn from_payload(data: Option<&'a Bytes>) -> Result<Self> {
                let b = required(data, stringify!($t))?;
                let arr: [u8; std::mem::size_of::<$t>()] = b.as_slice().try_into().map_err(|_| {
                    serialization(format!(
                        "it is {} bytes, a big-endian {} takes {}",
                        b.len(),
                        stringify!($t),
                        std::mem::size_of::<$t>()
                    ))
                })?;
                Ok(<$t>::from_be_bytes(arr))
            }
        }
    )*};
}
be_numbers!(i8, i16, i32, i64, u8, u16, u32, u64, f32, f64);

/// Turns key or value bytes into a `T` (the Java client's `Deserializer`,
/// kafka-python's `key_deserializer`/`value_deserializer`), for formats
/// [`FromPayload`] does not cover. Closures
/// `Fn(&str, Option<&Bytes>) -> Result<T>` are deserializers.
///
/// ```
/// use kafka_blocking::consumer::Deserializer;
/// use kafka_blocking::{Bytes, Error, ErrorKind, Result};
///
/// // Comma-separated integers.
/// let csv = |_topic: &str, data: Option<&Bytes>| -> Result<Vec<i64>> {
///     let text = std::str::from_utf8(data.map_or(&[][..], |b| b.as_slice()))
///         .map_err(|e| Error::new(ErrorKind::Serialization, e.to_string()))?;
///     text.split(',')
///         .filter(|s| !s.is_empty())
///         .map(|s| s.parse().map_err(|_| Error::new(ErrorKind::Serialization, format!("`{s}`"))))
///         .collect()
/// };
/// let d: &dyn Deserializer<Vec<i64>> = &csv;
/// assert_eq!(d.deserialize("t", Some(&Bytes::from("1,2,3")))?, vec![1, 2, 3]);
/// # Ok::<(), kafka_blocking::Error>(())
/// ```
pub trait Deserializer<T>: Send + Sync {
    /// Decodes `data` (`None` for null) of a record from `topic`.
    fn deserialize(&self, topic: &str, data: Option<&Bytes>) -> Result<T>;
}

impl<T, F> Deserializer<T> for F
where
    F: Fn(&str, Option<&Bytes>) -> Result<T> + Send + Sync,
{
    fn deserialize(&self, topic: &str, data: Option<&Bytes>) -> Result<T> {
        self(topic, data)
    }
}

/// JSON via serde_json (feature `json`), like kafka-python's
/// `value_deserializer=lambda m: json.loads(m.decode())`.
///
/// ```no_run
/// # #[cfg(feature = "json")]
/// # fn demo(msg: &kafka_blocking::consumer::Message) -> kafka_blocking::Result<()> {
/// use kafka_blocking::consumer::JsonDeserializer;
///
/// let txn: serde_json::Value = msg.value_with(&JsonDeserializer)?;
/// println!("{}", txn["atmid"]);
/// # Ok(())
/// # }
/// ```
#[cfg(feature = "json")]
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonDeserializer;

#[cfg(feature = "json")]
impl<T: serde::de::DeserializeOwned> Deserializer<T> for JsonDeserializer {
    fn deserialize(&self, topic: &str, data: Option<&Bytes>) -> Result<T> {
        let data = required(data, "a JSON value")?;
        serde_json::from_slice(data).map_err(|e| {
            serialization(format!("the record is not the expected JSON: {e}")).with_topic(topic)
        })
    }
}

/// The records returned by one [`poll`](super::Consumer::poll), in the order
/// they were fetched (in offset order within each partition).
#[derive(Debug, Clone, Default)]
pub struct Records {
    pub(crate) messages: Vec<Message>,
}

impl Records {
    /// The number of records.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// `true` when the poll returned nothing.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Iterates over the records.
    pub fn iter(&self) -> std::slice::Iter<'_, Message> {
        self.messages.iter()
    }

    /// The partitions that have records here, sorted.
    pub fn partitions(&self) -> Vec<TopicPartition> {
        let set: BTreeSet<(&Arc<str>, i32)> = self
            .messages
            .iter()
            .map(|m| (&m.topic, m.partition))
            .collect();
        set.into_iter()
            .map(|(t, p)| TopicPartition::new(Arc::clone(t), p))
            .collect()
    }

    /// The records of one partition.
    pub fn records<'a>(&'a self, tp: &'a TopicPartition) -> impl Iterator<Item = &'a Message> + 'a {
        self.messages
            .iter()
            .filter(move |m| m.partition == tp.partition && *m.topic == *tp.topic)
    }

    /// The records as a vector.
    pub fn into_vec(self) -> Vec<Message> {
        self.messages
    }
}

impl IntoIterator for Records {
    type Item = Message;
    type IntoIter = std::vec::IntoIter<Message>;
    fn into_iter(self) -> Self::IntoIter {
        self.messages.into_iter()
    }
}

impl<'a> IntoIterator for &'a Records {
    type Item = &'a Message;
    type IntoIter = std::slice::Iter<'a, Message>;
    fn into_iter(self) -> Self::IntoIter {
        self.messages.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(key: Option<&[u8]>, value: Option<&[u8]>) -> Message {
        Message {
            topic: Arc::from("t"),
            partition: 1,
            offset: 7,
            timestamp: 0,
            timestamp_type: Some(TimestampType::CreateTime),
            key: key.map(Bytes::copy_from_slice),
            value: value.map(Bytes::copy_from_slice),
            headers: Headers::default(),
            leader_epoch: None,
        }
    }

    #[test]
    fn typed_access() {
        let m = msg(Some(b"k1"), Some(&2.5f64.to_be_bytes()));
        assert_eq!(m.value_as::<f64>().unwrap(), 2.5);
        assert_eq!(m.key_as::<&str>().unwrap(), "k1");
        assert_eq!(m.key_as::<Option<String>>().unwrap().as_deref(), Some("k1"));
        let e = m.value_as::<i32>().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Serialization);
        let s = e.to_string();
        assert!(
            s.contains("8 bytes") && s.contains("t") && s.contains("offset 7"),
            "{s}"
        );
        let tomb = msg(None, None);
        assert_eq!(tomb.value_as::<Option<f64>>().unwrap(), None);
        assert!(tomb.value_as::<f64>().is_err());
        assert!(msg(None, Some(&[0xff])).value_as::<&str>().is_err());
        let upper = |_: &str, d: Option<&Bytes>| -> Result<String> {
            Ok(String::from_utf8_lossy(d.map_or(&[][..], |b| b)).to_uppercase())
        };
        assert_eq!(m.key_with(&upper).unwrap(), "K1");
    }

    #[test]
    fn value_views_share_the_buffer() {
        let buf = Bytes::from(b"xxhello".to_vec());
        let mut m = msg(None, None);
        m.value = Some(buf.slice(2..));
        let v: &[u8] = m.value_as().unwrap();
        assert_eq!(v, b"hello");
        assert_eq!(v.as_ptr(), buf[2..].as_ptr(), "no copy");
    }
}
