//! The Kafka wire protocol: primitives, headers, framing, the error-code
//! table, version negotiation, and request/response types generated from the
//! official message schemas.
//!
//! This layer is pure: it turns values into bytes and bytes into values, and
//! does no I/O. It is public so that programs can send any request the
//! client does not wrap yet (kafka-python's `kafka.protocol` is the model):
//!

mod api;
mod error_code;
mod frame;
mod header;
pub mod messages;
mod primitives;

pub use api::{ApiKey, Message, Request};
pub use error_code::ErrorCode;
pub use frame::{encode_request, read_frame, DEFAULT_MAX_FRAME_BYTES};
pub use header::{RequestHeader, ResponseHeader};
pub use primitives::{
    put_tagged_fields, read_uvarint, read_uvarlong, uvarint_len, varint_len, varlong_len, Decoder,
    Encoder, RawTaggedField, Uuid,
};
