//! Connections to brokers: one writer thread and one reader thread per
//! connection, fed by crossbeam channels.
//!
//! ```text
//! caller ──Call──► writer thread ──bytes──► socket ──bytes──► reader thread ──Completion──► caller
//!                      │  (connect, backoff,        ▲              │ (match by correlation id,
//!                      │   handshake, in-flight cap) │              │  deadlines, fail-all on death)
//!                      └──────── Pending ───────────┼──────────────┘
//! ```
//!
//! A call's `Reply` is a channel the caller waits on, or a completion run on
//! the reader thread itself (`Reply::run`: the consumer's fetch answers),
//! which saves a hand-off.

mod backoff;
pub(crate) mod connection;
mod handshake;
mod io;
pub(crate) mod sasl;
pub(crate) mod transport;

pub(crate) use connection::{
    decode_response, Completion, Connection, ConnectionOptions, FramePart, Reply,
};
#[cfg(feature = "tls")]
pub(crate) mod tls;
pub(crate) use transport::{TcpTransport, Transport};
