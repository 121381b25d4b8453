//! Ready-made [`Serializer`]s, matching the Java client's
//! `StringSerializer`, `ByteArraySerializer`, `IntegerSerializer`,
//! `LongSerializer`, `DoubleSerializer`, and a JSON one (feature `json`).

use super::record::Serializer;
use crate::error::Result;

/// UTF-8 bytes of a string.
#[derive(Debug, Clone, Copy, Default)]
pub struct StringSerializer;

impl Serializer<str> for StringSerializer {
    fn serialize(&self, _topic: &str, value: &str) -> Result<Vec<u8>> {
        Ok(value.as_bytes().to_vec())
    }
}

impl Serializer<String> for StringSerializer {
    fn serialize(&self, _topic: &str, value: &String) -> Result<Vec<u8>> {
        Ok(value.as_bytes().to_vec())
    }
}

/// Bytes as they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesSerializer;

impl Serializer<[u8]> for BytesSerializer {
    fn serialize(&self, _topic: &str, value: &[u8]) -> Result<Vec<u8>> {
        Ok(value.to_vec())
    }
}

impl Serializer<Vec<u8>> for BytesSerializer {
    fn serialize(&self, _topic: &str, value: &Vec<u8>) -> Result<Vec<u8>> {
        Ok(value.clone())
    }
}

/// Numbers big-endian, as the Java client's number serializers
/// (`i32` = `IntegerSerializer`, `i64` = `LongSerializer`, `f64` =
/// `DoubleSerializer`, ...).
#[derive(Debug, Clone, Copy, Default)]
pub struct BigEndianSerializer;

macro_rules! be {
    ($($t:ty),*) => {$(
        impl Serializer<$t> for BigEndianSerializer {
            fn serialize(&self, _topic: &str, value: &$t) -> Result<Vec<u8>> {
                Ok(value.to_be_bytes().to_vec())
            }
        }
    )*};
}
be!(i8, i16, i32, i64, u8, u16, u32, u64, f32, f64);

/// JSON via serde_json (feature `json`), like kafka-python's
/// `value_serializer=lambda v: json.dumps(v).encode()`.
#[cfg(feature = "json")]
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonSerializer;

#[cfg(feature = "json")]
impl<T: serde::Serialize + ?Sized> Serializer<T> for JsonSerializer {
    fn serialize(&self, topic: &str, value: &T) -> Result<Vec<u8>> {
        serde_json::to_vec(value).map_err(|e| {
            crate::Error::new(
                crate::ErrorKind::Serialization,
                format!("cannot encode the value as JSON: {e}"),
            )
            .with_topic(topic)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_compatible_bytes() {
        assert_eq!(
            BigEndianSerializer.serialize("t", &1i32).unwrap(),
            [0, 0, 0, 1]
        );
        assert_eq!(
            BigEndianSerializer.serialize("t", &-2i64).unwrap(),
            (-2i64).to_be_bytes()
        );
        assert_eq!(
            BigEndianSerializer.serialize("t", &1.5f64).unwrap(),
            1.5f64.to_be_bytes()
        );
        assert_eq!(
            StringSerializer.serialize("t", "é").unwrap(),
            "é".as_bytes()
        );
        assert_eq!(
            BytesSerializer.serialize("t", &[1u8, 2][..]).unwrap(),
            [1, 2]
        );
    }

    #[cfg(feature = "json")]
    #[test]
    fn json() {
        let v = serde_json::json!({"atmid": 1, "transid": 100});
        assert_eq!(
            JsonSerializer.serialize("t", &v).unwrap(),
            br#"{"atmid":1,"transid":100}"#
        );
    }
}
