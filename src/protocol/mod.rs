//! The Kafka wire protocol: primitives, headers, framing, the error-code
//! table, version negotiation, and request/response types generated from the
//! official message schemas.
//!
//! This layer is pure: it turns values into bytes and bytes into values, and
//! does no I/O. It is public so that programs can send any request the
//! client does not wrap yet (kafka-python's `kafka.protocol` is the model):
//!
//! ```
//! use kafka_blocking::protocol::messages::metadata_request::MetadataRequestTopic;
//! use kafka_blocking::protocol::messages::metadata_response::MetadataResponseBroker;
//! use kafka_blocking::protocol::messages::{MetadataRequest, MetadataResponse};
//! use kafka_blocking::protocol::{encode_request, Decoder, Message, Request, ResponseHeader};
//! use kafka_blocking::Bytes;
//!
//! # fn main() -> kafka_blocking::Result<()> {
//! let version = 12;
//! let request = MetadataRequest {
//!     topics: Some(vec![MetadataRequestTopic {
//!         name: Some("events".into()),
//!         ..Default::default()
//!     }]),
//!     allow_auto_topic_creation: false,
//!     ..Default::default()
//! };
//! let mut frame = Vec::new();
//! encode_request(&mut frame, &request, version, 1, Some("my-app"))?;
//!
//! // Write `frame` to the broker and read the answer with `read_frame`;
//! // here a response is made up instead.
//! let mut answer = Vec::new();
//! ResponseHeader { correlation_id: 1, ..Default::default() }
//!     .encode(&mut answer, MetadataRequest::response_header_version(version))?;
//! MetadataResponse {
//!     brokers: vec![MetadataResponseBroker {
//!         node_id: 1,
//!         host: "localhost".into(),
//!         port: 9092,
//!         ..Default::default()
//!     }],
//!     ..Default::default()
//! }
//! .encode(&mut answer, version)?;
//!
//! let answer = Bytes::from(answer);
//! let mut d = Decoder::new(&answer);
//! let header = ResponseHeader::decode(&mut d, MetadataRequest::response_header_version(version))?;
//! let response = MetadataResponse::decode(&mut d, version)?;
//! d.finish("MetadataResponse")?;
//! assert_eq!(header.correlation_id, 1);
//! assert_eq!(response.brokers[0].port, 9092);
//! # Ok(())
//! # }
//! ```

mod api;
mod broker_releases;
mod error_code;
mod frame;
mod header;
pub mod messages;
mod primitives;
mod versions;

pub(crate) use api::{check_decode_version, check_encode_version};
pub use api::{ApiKey, Message, Request};
pub use error_code::ErrorCode;
pub use frame::{encode_request, read_frame, DEFAULT_MAX_FRAME_BYTES};
pub use header::{RequestHeader, ResponseHeader};
pub use primitives::{
    put_array, put_nullable_array, put_nullable_struct, put_tagged_fields, read_uvarint,
    read_uvarlong, uvarint_len, varint_len, varlong_len, Decoder, Encoder, RawTaggedField, Uuid,
};
pub use versions::{ApiVersionRange, BrokerVersions};
