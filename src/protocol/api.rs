//! The traits every generated message implements.

use std::fmt;

use super::primitives::Decoder;
use crate::error::{Error, ErrorKind, Result};

/// A Kafka API key (the request type), e.g. `ApiKey::FETCH`.
///
/// The named constants and [`ApiKey::name`] are generated along with the
/// messages; see [`messages`](super::messages).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApiKey(pub i16);

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), self.0)
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A message body that can be written and read in any of its versions.
pub trait Message: Sized + Clone + fmt::Debug + Default + PartialEq {
    /// The lowest version this type can encode and decode.
    const MIN_VERSION: i16;
    /// The highest version this type can encode and decode.
    const MAX_VERSION: i16;
    /// The first flexible version (compact types, tagged fields), or
    /// `i16::MAX` when there is none.
    const FLEXIBLE_FROM: i16;

    /// Whether `version` uses the flexible encoding.
    #[inline]
    fn is_flexible(version: i16) -> bool {
        version >= Self::FLEXIBLE_FROM
    }

    /// Appends the body in `version` to `out`.
    ///
    /// Fails when `version` is out of range, or when a field that `version`
    /// cannot carry holds a non-default value and is not marked ignorable in
    /// the schema (ignorable fields are dropped, as the Java client does).
    fn encode(&self, out: &mut Vec<u8>, version: i16) -> Result<()>;

    /// Reads a body in `version`. Reads exactly the message; callers check
    /// for trailing bytes.
    fn decode(d: &mut Decoder<'_>, version: i16) -> Result<Self>;
}

/// A request: a message with an API key and a response type.
pub trait Request: Message {
    /// The request's API key.
    const API_KEY: ApiKey;
    /// The response the broker answers with.
    type Response: Message;

    /// The request header version used with `version` (2 when flexible).
    #[inline]
    fn request_header_version(version: i16) -> i16 {
        if Self::is_flexible(version) {
            2
        } else {
            1
        }
    }

    /// The response header version used with `version` (1 when flexible;
    /// ApiVersions always answers with header v0).
    #[inline]
    fn response_header_version(version: i16) -> i16 {
        if Self::API_KEY == ApiKey::API_VERSIONS {
            0
        } else if <Self::Response as Message>::is_flexible(version) {
            1
        } else {
            0
        }
    }
}

// Version-range checks the generated messages make before encoding or
// decoding; the other checks they share are in `primitives/checks.rs`.

/// An error unless `M` has `version` (encoding `M`, called `name`).
pub(crate) fn check_encode_version<M: Message>(name: &str, version: i16) -> Result<()> {
    if (M::MIN_VERSION..=M::MAX_VERSION).contains(&version) {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::UnsupportedVersion,
            format!(
                "cannot encode {name} version {version}: this client supports versions {} to {}",
                M::MIN_VERSION,
                M::MAX_VERSION
            ),
        ))
    }
}

/// An error unless `M` has `version` (decoding `M`, called `name`).
pub(crate) fn check_decode_version<M: Message>(name: &str, version: i16) -> Result<()> {
    if (M::MIN_VERSION..=M::MAX_VERSION).contains(&version) {
        Ok(())
    } else {
        Err(Error::protocol(format!(
            "cannot decode {name} version {version}: this client supports versions {} to {}",
            M::MIN_VERSION,
            M::MAX_VERSION
        )))
    }
}
