//! [`TypedProducer`]: a producer with key and value serializers attached,
//! kafka-python's `key_serializer=` / `value_serializer=`.

use std::sync::Arc;

use super::record::{DeliveryFuture, Payload, Record, Serializer};
use super::Producer;
use crate::error::Result;

/// A [`Producer`] that serializes keys of type `K` and values of type `V`
/// itself. Cheap to clone; clones share the producer.
///
/// ```no_run
/// use kafka_blocking::producer::{Producer, StringSerializer, BigEndianSerializer};
///
/// # fn main() -> kafka_blocking::Result<()> {
/// let producer = Producer::builder().bootstrap_servers("127.0.0.1:9092").build()?;
/// let readings = producer.typed::<str, f64>(StringSerializer, BigEndianSerializer);
/// readings.send("temperatures", Some("sensor-7"), Some(&21.5))?;
/// # Ok(())
/// # }
/// ```
pub struct TypedProducer<K: ?Sized, V: ?Sized> {
    producer: Producer,
    key: Arc<dyn Serializer<K>>,
    value: Arc<dyn Serializer<V>>,
}

impl<K: ?Sized, V: ?Sized> Clone for TypedProducer<K, V> {
    fn clone(&self) -> Self {
        TypedProducer {
            producer: self.producer.clone(),
            key: Arc::clone(&self.key),
            value: Arc::clone(&self.value),
        }
    }
}

impl<K: ?Sized, V: ?Sized> TypedProducer<K, V> {
    pub(crate) fn new(
        producer: Producer,
        key: impl Serializer<K> + 'static,
        value: impl Serializer<V> + 'static,
    ) -> Self {
        TypedProducer {
            producer,
            key: Arc::new(key),
            value: Arc::new(value),
        }
    }

    /// Serializes and sends; `None` key or value are sent as null.
    pub fn send(&self, topic: &str, key: Option<&K>, value: Option<&V>) -> Result<DeliveryFuture> {
        self.producer.send(self.record(topic, key, value)?)
    }

    /// Serializes into a [`Record`] (to add a partition, headers or a
    /// timestamp before [`Producer::send`]).
    pub fn record<'a>(
        &self,
        topic: &'a str,
        key: Option<&K>,
        value: Option<&V>,
    ) -> Result<Record<'a>> {
        let mut r = Record::new(topic);
        if let Some(k) = key {
            r = r.key(Payload::Owned(
                self.key
                    .serialize(topic, k)
                    .map_err(|e| e.context("serializing the key"))?,
            ));
        }
        if let Some(v) = value {
            r = r.value(Payload::Owned(
                self.value
                    .serialize(topic, v)
                    .map_err(|e| e.context("serializing the value"))?,
            ));
        }
        Ok(r)
    }

    /// The underlying producer (flush, close, metrics).
    pub fn producer(&self) -> &Producer {
        &self.producer
    }
}

impl Producer {
    /// This producer with a key and a value serializer attached
    /// (kafka-python's `key_serializer` and `value_serializer`).
    pub fn typed<K: ?Sized, V: ?Sized>(
        &self,
        key_serializer: impl Serializer<K> + 'static,
        value_serializer: impl Serializer<V> + 'static,
    ) -> TypedProducer<K, V> {
        TypedProducer::new(self.clone(), key_serializer, value_serializer)
    }
}
