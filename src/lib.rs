//! # kafka-blocking
//!
//! A blocking, pure-Rust Apache Kafka client for programs that do not want
//! an async runtime: CLI tools, batch jobs, embedded services, threads
//! sharing one producer.
//!
//! Every broker connection is served by its own I/O threads fed by
//! crossbeam channels; callers block on plain channel receives.
//!
//! ## Layers
//!
//! * [`protocol`] — the wire format: primitives, headers, the error-code
//!   table, version negotiation and every request/response type, generated
//!   from the official message schemas.
//! * [`Client`] — sends any protocol request to any broker and returns the
//!   typed response, with version negotiation and metadata.
//! * [`AdminClient`] — topics, configs, consumer groups, records and ACLs.
//! * [`ClientConfig`] — the options every client shares, with kafka-python's
//!   names and defaults.
//! * [`consumer::Consumer`] — reads records alone or in a consumer group:
//!   `for msg in &mut consumer`, or a poll loop; commits, seeks, rebalance
//!   callbacks.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod admin;
mod bytes;
mod client;
pub mod cluster;
mod config;
pub mod consumer;
mod error;
mod group;
mod hash;
mod net;
pub mod producer;
pub mod protocol;
pub mod records;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use crate::admin::AdminClient;
pub use crate::bytes::Bytes;
pub use crate::client::{Client, VersionInfo};
pub use crate::config::{
    BrokerAddress, ClientConfig, ClientConfigBuilder, SecurityProtocol, DEFAULT_PORT,
};
pub use crate::consumer::{Consumer, Message, OffsetAndMetadata, TopicPartition};
pub use crate::error::{Error, ErrorKind, Result};
pub use crate::producer::{Producer, Record};
