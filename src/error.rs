//! The crate's one error type.
//!
//! Every fallible call returns [`Result<T>`](crate::Result). An [`Error`] says
//! what happened and what to do about it (its `Display`), what sort of failure
//! it is ([`Error::kind`]), whether trying again can help
//! ([`Error::is_retriable`]), the Kafka error code when a broker sent one
//! ([`Error::kafka_code`]), and the topic/partition it concerns when there is
//! one.

use std::fmt;
use std::sync::Arc;

use crate::protocol::ErrorCode;

/// Shorthand for `std::result::Result<T, kafka_blocking::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What sort of failure an [`Error`] is.
///
/// New kinds may be added in minor releases; match with a wildcard arm.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A configuration value is invalid; the message names the key.
    Config,
    /// An argument to a call is invalid (an empty topic name, a negative
    /// partition, ...).
    InvalidArgument,
    /// A socket operation failed (connect refused, reset, DNS failure, ...).
    Io,
    /// The connection to a broker closed while a request was pending. Retriable.
    Disconnected,
    /// An operation did not finish within its deadline.
    Timeout,
    /// The bytes received (or about to be sent) do not follow the Kafka
    /// protocol: truncated, oversized, trailing garbage, an unknown value.
    Protocol,
    /// A record batch failed its CRC check.
    Corrupt,
    /// TLS failed: the broker's certificate is not trusted, has expired or
    /// does not match its name, the broker refused this client's
    /// certificate, or one side does not speak TLS (`security_protocol`
    /// does not match the listener). The message names the broker and the
    /// fix. Not retriable: the next attempt fails the same way.
    Tls,
    /// The broker answered with a Kafka error code; see [`Error::kafka_code`].
    Broker,
    /// The broker and this client share no version of an API.
    UnsupportedVersion,
    /// A record or request is larger than a configured or broker limit.
    MessageTooLarge,
    /// The producer's buffer stayed full for `max_block_ms`.
    BufferExhausted,
    /// A key or value could not be serialized or deserialized.
    Serialization,
    /// Compressing or decompressing a batch failed.
    Compression,
    /// The client (or the part of it this call needed) has been closed.
    Closed,
    /// The consumer has no committed or reset position for a partition and
    /// `auto_offset_reset` is `none`.
    NoOffset,
    /// After a leader change the new leader's log ends below the consumer's
    /// position for the leader epoch of the last record returned (KIP-320):
    /// records were lost. Returned with `auto_offset_reset` `none`; the
    /// message names the partition, the position and the divergence offset
    /// (also in [`Error::offset`]); `seek()` to go on. Also returned when a
    /// position taken from a committed offset (with its leader epoch) is
    /// past the leader's log.
    LogTruncation,
    /// A topic being read was deleted and created again under the same
    /// name (its topic id changed): the position belonged to the old
    /// incarnation. Returned with `auto_offset_reset` `none` (otherwise the
    /// consumer resets per `auto_offset_reset` in the new incarnation); the
    /// message names the partition and the old position; `seek()` to go on.
    TopicRecreated,
    /// The consumer group changed under this member; commits for the old
    /// assignment are refused.
    Rebalance,
    /// The broker refused to log this client in (SASL): a wrong password,
    /// an unknown user, an expired token, a mechanism the listener does not
    /// enable, or a broker that could not prove it knows the password. The
    /// message carries the broker's reason. Not retriable: fix the
    /// credentials.
    Authentication,
    /// The broker refused an operation because the principal lacks an ACL
    /// (TOPIC_, GROUP_, CLUSTER_, TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
    /// the message names the resource. Not retriable.
    Authorization,
    /// The current transaction cannot commit (a record or offset of it
    /// failed, the broker aborted it, ...): call `abort_transaction`, then
    /// begin a new one. The producer stays usable.
    TransactionAbortable,
    /// The transactional producer cannot go on (fenced by a newer producer
    /// with the same `transactional_id`, not authorized, ...): close it.
    /// Every later transactional call fails with this error.
    TransactionFatal,
    /// The call is not allowed in the object's current state
    /// (`begin_transaction` twice, `send` outside a transaction, ...).
    InvalidState,
}

impl ErrorKind {
    fn retriable(self) -> bool {
        matches!(
            self,
            ErrorKind::Io | ErrorKind::Disconnected | ErrorKind::Timeout
        )
    }
}

/// An error from this crate.
///
/// Cheap to clone (one batch failure is handed to every record of the
/// batch). Its `Display` is a sentence a user can act on, including the
/// topic/partition and Kafka error name where they apply.
#[derive(Clone)]
pub struct Error {
    inner: Box<Inner>,
}

#[derive(Clone)]
struct Inner {
    kind: ErrorKind,
    code: Option<ErrorCode>,
    message: String,
    topic: Option<String>,
    partition: Option<i32>,
    offset: Option<i64>,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    /// A new error of `kind` with a message that says what happened and what
    /// to do.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            inner: Box::new(Inner {
                kind,
                code: None,
                message: message.into(),
                topic: None,
                partition: None,
                offset: None,
                source: None,
            }),
        }
    }

    /// An invalid configuration value; `key` is the kafka-python name of the
    /// setting.
    pub fn config(key: &str, message: impl fmt::Display) -> Error {
        Error::new(
            ErrorKind::Config,
            format!("invalid configuration `{key}`: {message}"),
        )
    }

    /// An invalid argument to a call.
    pub fn invalid_argument(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidArgument, message)
    }

    /// Malformed or unexpected protocol bytes.
    pub fn protocol(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Protocol, message)
    }

    /// A deadline passed.
    pub fn timeout(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Timeout, message)
    }

    /// The client or component has been closed.
    pub fn closed(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Closed, message)
    }

    /// The broker answered with `code` (never `NONE`). Authorization codes
    /// give [`ErrorKind::Authorization`], SASL_AUTHENTICATION_FAILED
    /// [`ErrorKind::Authentication`].
    pub fn broker(code: ErrorCode, message: impl Into<String>) -> Error {
        let kind = match code {
            ErrorCode::TOPIC_AUTHORIZATION_FAILED
            | ErrorCode::GROUP_AUTHORIZATION_FAILED
            | ErrorCode::CLUSTER_AUTHORIZATION_FAILED
            | ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED
            | ErrorCode::DELEGATION_TOKEN_AUTHORIZATION_FAILED => ErrorKind::Authorization,
            ErrorCode::SASL_AUTHENTICATION_FAILED => ErrorKind::Authentication,
            _ => ErrorKind::Broker,
        };
        let mut e = Error::new(kind, message);
        e.inner.code = Some(code);
        e
    }

    /// An I/O failure, with what we were doing. A crate error carried
    /// inside the `io::Error` (a TLS failure from the transport) comes back
    /// out with its own kind.
    pub fn io(context: impl Into<String>, err: std::io::Error) -> Error {
        if let Some(inner) = err.get_ref().and_then(|e| e.downcast_ref::<Error>()) {
            return inner.clone().context(context.into());
        }
        let kind = match err.kind() {
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => ErrorKind::Timeout,
            _ => ErrorKind::Io,
        };
        Error::new(kind, format!("{}: {err}", context.into())).with_source(err)
    }

    /// The same error as another kind (keeping the Kafka code and context).
    pub(crate) fn with_kind(mut self, kind: ErrorKind) -> Error {
        self.inner.kind = kind;
        self
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Error {
        self.inner.source = Some(Arc::new(source));
        self
    }

    /// Attaches the topic and partition this error concerns.
    pub fn with_partition(mut self, topic: impl Into<String>, partition: i32) -> Error {
        self.inner.topic = Some(topic.into());
        self.inner.partition = Some(partition);
        self
    }

    /// Attaches the topic this error concerns.
    pub fn with_topic(mut self, topic: impl Into<String>) -> Error {
        self.inner.topic = Some(topic.into());
        self
    }

    /// Attaches the offset this error concerns.
    pub fn with_offset(mut self, offset: i64) -> Error {
        self.inner.offset = Some(offset);
        self
    }

    /// Prefixes the message with what the caller was doing.
    pub fn context(mut self, what: impl fmt::Display) -> Error {
        self.inner.message = format!("{what}: {}", self.inner.message);
        self
    }

    /// What sort of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The Kafka error code the broker answered with, if this came from a
    /// broker.
    pub fn kafka_code(&self) -> Option<ErrorCode> {
        self.inner.code
    }

    /// Whether the same operation may succeed if tried again (a broker
    /// restarting, a leader moving, a timeout).
    pub fn is_retriable(&self) -> bool {
        match self.inner.code {
            Some(code) => code.is_retriable(),
            None => self.inner.kind.retriable(),
        }
    }

    /// Whether the broker refused to log this client in
    /// ([`ErrorKind::Authentication`]).
    pub fn is_auth(&self) -> bool {
        self.inner.kind == ErrorKind::Authentication
    }

    /// Whether the broker refused an operation for lack of an ACL
    /// ([`ErrorKind::Authorization`]).
    pub fn is_authorization(&self) -> bool {
        self.inner.kind == ErrorKind::Authorization
    }

    /// Whether every new connection would fail the same way (TLS: an
    /// untrusted or mismatched certificate, a listener speaking the other
    /// protocol; SASL: a refused login), so loops that retry connections
    /// report it instead.
    pub(crate) fn repeats_on_reconnect(&self) -> bool {
        matches!(self.inner.kind, ErrorKind::Tls | ErrorKind::Authentication)
    }

    /// The topic this error concerns, if any.
    pub fn topic(&self) -> Option<&str> {
        self.inner.topic.as_deref()
    }

    /// The partition this error concerns, if any.
    pub fn partition(&self) -> Option<i32> {
        self.inner.partition
    }

    /// The offset this error concerns, if any.
    pub fn offset(&self) -> Option<i64> {
        self.inner.offset
    }

    /// The message without the context suffixes.
    pub fn message(&self) -> &str {
        &self.inner.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.write_str(&i.message)?;
        if let Some(code) = i.code {
            write!(f, " [{} ({}): {}]", code.name(), code.0, code.description())?;
        }
        match (&i.topic, i.partition) {
            (Some(t), Some(p)) => write!(f, " (topic `{t}` partition {p}")?,
            (Some(t), None) => write!(f, " (topic `{t}`")?,
            (None, Some(p)) => write!(f, " (partition {p}")?,
            (None, None) => {}
        }
        if let Some(o) = i.offset {
            if i.topic.is_some() || i.partition.is_some() {
                write!(f, " offset {o})")?;
            } else {
                write!(f, " (offset {o})")?;
            }
        } else if i.topic.is_some() || i.partition.is_some() {
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind);
        if let Some(code) = self.inner.code {
            d.field("code", &code);
        }
        d.field("message", &self.inner.message);
        if let Some(t) = &self.inner.topic {
            d.field("topic", t);
        }
        if let Some(p) = self.inner.partition {
            d.field("partition", &p);
        }
        if let Some(o) = self.inner.offset {
            d.field("offset", &o);
        }
        if let Some(s) = &self.inner.source {
            d.field("source", s);
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.inner.source {
            Some(s) => Some(s.as_ref() as &(dyn std::error::Error + 'static)),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_carries_code_and_context() {
        let e = Error::broker(ErrorCode::NOT_LEADER_OR_FOLLOWER, "produce failed")
            .with_partition("orders", 3);
        let s = e.to_string();
        assert!(s.contains("NOT_LEADER_OR_FOLLOWER"), "{s}");
        assert!(s.contains("topic `orders` partition 3"), "{s}");
        assert!(e.is_retriable());
        assert_eq!(e.kind(), ErrorKind::Broker);
        assert_eq!(e.kafka_code(), Some(ErrorCode::NOT_LEADER_OR_FOLLOWER));
    }

    #[test]
    fn auth_codes_are_typed() {
        let e = Error::broker(ErrorCode::TOPIC_AUTHORIZATION_FAILED, "producing")
            .with_topic("payments");
        assert_eq!(e.kind(), ErrorKind::Authorization);
        assert!(e.is_authorization() && !e.is_auth() && !e.is_retriable());
        assert!(e.to_string().contains("topic `payments`"), "{e}");
        let e = Error::broker(ErrorCode::SASL_AUTHENTICATION_FAILED, "login");
        assert!(e.is_auth() && !e.is_retriable());
    }

    #[test]
    fn config_errors_name_the_key() {
        let e = Error::config("linger_ms", "must be >= 0");
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("`linger_ms`"));
        assert!(!e.is_retriable());
    }

    #[test]
    fn io_timeouts_are_timeouts() {
        let e = Error::io(
            "reading from broker",
            std::io::Error::new(std::io::ErrorKind::TimedOut, "t"),
        );
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(e.is_retriable());
        assert!(std::error::Error::source(&e).is_some());
    }
}
