//! # kafka-blocking
//!
//! A blocking, pure-Rust Apache Kafka client.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod bytes;
mod error;
pub mod protocol;
pub mod records;

pub use crate::bytes::Bytes;
pub use crate::error::{Error, ErrorKind, Result};
