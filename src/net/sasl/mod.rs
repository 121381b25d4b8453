//! SASL authentication: the step of the connection handshake that runs after
//! ApiVersions when `security_protocol` is `SASL_PLAINTEXT` (or `SASL_SSL`).
//!
//! This room owns the mechanisms (PLAIN, SCRAM-SHA-256/512 behind the
//! `scram` feature, OAUTHBEARER) and the driver that walks one of them
//! through SaslHandshake and SaslAuthenticate, or through the raw token
//! frames that brokers older than 1.0 expect after SaslHandshake v0. It
//! never touches a socket itself: the driver talks through an [`Exchange`],
//! which the handshake implements on the raw stream (first login) and the
//! writer thread implements as ordinary calls through the reader
//! (re-authentication, KIP-368). It never puts a password or a token in an
//! error, a log line or `Debug` output.

pub(crate) mod base64;
mod oauth;
mod plain;
#[cfg(feature = "scram")]
mod scram;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub(crate) use crate::config::Secret;
use crate::config::{BrokerAddress, SecurityProtocol};
use crate::error::{Error, ErrorKind, Result};
use crate::protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use crate::protocol::{ApiKey, BrokerVersions, ErrorCode, Message, Request};

pub(crate) use oauth::TokenCache;
pub use oauth::{OAuthBearerToken, OAuthBearerTokenProvider, UnsecuredJwtProvider};

/// A SASL mechanism (kafka-python's `sasl_mechanism`).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    /// `PLAIN`: user name and password in the clear (RFC 4616); use it only
    /// over TLS (`SASL_SSL`) outside a trusted network.
    Plain,
    /// `SCRAM-SHA-256` (RFC 7677; feature `scram`).
    ScramSha256,
    /// `SCRAM-SHA-512` (feature `scram`).
    ScramSha512,
    /// `OAUTHBEARER` (RFC 7628, KIP-255), with a token provider.
    OAuthBearer,
}

impl SaslMechanism {
    /// The name the broker knows the mechanism by.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            SaslMechanism::OAuthBearer => "OAUTHBEARER",
        }
    }

    /// Parses a mechanism name (case-insensitive), failing with an error that
    /// names `sasl_mechanism` and, for GSSAPI and AWS_MSK_IAM, what to use
    /// instead.
    pub fn parse(s: &str) -> Result<SaslMechanism> {
        let upper = s.trim().to_ascii_uppercase();
        let bad = |why: String| Error::config("sasl_mechanism", why);
        match upper.as_str() {
            "PLAIN" => Ok(SaslMechanism::Plain),
            "SCRAM-SHA-256" => Ok(SaslMechanism::ScramSha256),
            "SCRAM-SHA-512" => Ok(SaslMechanism::ScramSha512),
            "OAUTHBEARER" => Ok(SaslMechanism::OAuthBearer),
            "GSSAPI" => Err(bad(
                "GSSAPI (Kerberos) is not supported: it needs a system Kerberos library, and this client is pure Rust; ask for a SCRAM-SHA-256/512 user or use OAUTHBEARER".into(),
            )),
            "AWS_MSK_IAM" => Err(bad(
                "AWS_MSK_IAM is not supported: enable SASL/SCRAM on the MSK cluster and use SCRAM-SHA-512, or use OAUTHBEARER with a `sasl_oauth_token_provider` that returns MSK IAM tokens".into(),
            )),
            _ => Err(bad(format!(
                "`{s}` is not a SASL mechanism this client knows; use PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER"
            ))),
        }
    }

    #[cfg_attr(feature = "scram", allow(dead_code))]
    fn is_scram(self) -> bool {
        matches!(
            self,
            SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512
        )
    }
}

impl fmt::Display for SaslMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A token provider in a builder (it has no `Debug` of its own).
#[derive(Clone)]
pub(crate) struct ProviderSlot(pub(crate) Arc<dyn OAuthBearerTokenProvider>);

impl fmt::Debug for ProviderSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OAuthBearerTokenProvider")
    }
}

/// The SASL settings of a built config: validated, secrets hidden from
/// `Debug`.
#[derive(Clone, Debug)]
pub(crate) struct SaslConfig {
    pub(crate) mechanism: SaslMechanism,
    pub(crate) username: String,
    pub(crate) password: Secret,
    pub(crate) tokens: Option<Arc<TokenCache>>,
}

/// The SASL settings as given to a builder.
#[derive(Clone, Debug, Default)]
pub(crate) struct SaslSettings {
    pub(crate) mechanism: Option<String>,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<Secret>,
    pub(crate) provider: Option<ProviderSlot>,
}

impl SaslSettings {
    /// Checks the settings against `protocol`; `None` when SASL is off.
    pub(crate) fn build(&self, protocol: SecurityProtocol) -> Result<Option<SaslConfig>> {
        if !protocol.uses_sasl() {
            let set = [
                ("sasl_mechanism", self.mechanism.is_some()),
                ("sasl_plain_username", self.username.is_some()),
                ("sasl_plain_password", self.password.is_some()),
                ("sasl_oauth_token_provider", self.provider.is_some()),
            ];
            if let Some((key, _)) = set.iter().find(|(_, on)| *on) {
                return Err(Error::config(
                    key,
                    format!(
                        "SASL settings need security_protocol SASL_PLAINTEXT or SASL_SSL (it is {}); set security_protocol, or remove {key}",
                        protocol.name()
                    ),
                ));
            }
            return Ok(None);
        }
        let mechanism = match &self.mechanism {
            Some(m) => SaslMechanism::parse(m)?,
            None => {
                return Err(Error::config(
                    "sasl_mechanism",
                    format!(
                        "required with security_protocol {}: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER",
                        protocol.name()
                    ),
                ))
            }
        };
        #[cfg(not(feature = "scram"))]
        if mechanism.is_scram() {
            return Err(Error::config(
                "sasl_mechanism",
                format!(
                    "{mechanism} needs this crate's `scram` cargo feature (features = [\"scram\"])"
                ),
            ));
        }
        let mut config = SaslConfig {
            mechanism,
            username: String::new(),
            password: Secret::default(),
            tokens: None,
        };
        if mechanism == SaslMechanism::OAuthBearer {
            for (key, on) in [
                ("sasl_plain_username", self.username.is_some()),
                ("sasl_plain_password", self.password.is_some()),
            ] {
                if on {
                    return Err(Error::config(
                        key,
                        "not used with OAUTHBEARER (the token provider supplies the credentials); remove it",
                    ));
                }
            }
            let provider = self.provider.as_ref().ok_or_else(|| {
                Error::config(
                    "sasl_oauth_token_provider",
                    "required with sasl_mechanism OAUTHBEARER (UnsecuredJwtProvider serves brokers that run the unsecured validator, for development)",
                )
            })?;
            config.tokens = Some(Arc::new(TokenCache::new(Arc::clone(&provider.0))));
            return Ok(Some(config));
        }
        if self.provider.is_some() {
            return Err(Error::config(
                "sasl_oauth_token_provider",
                format!("only used with sasl_mechanism OAUTHBEARER, not {mechanism}; remove it"),
            ));
        }
        config.username = match self.username.as_deref() {
            Some(u) if !u.is_empty() => u.to_owned(),
            _ => {
                return Err(Error::config(
                    "sasl_plain_username",
                    format!("required with sasl_mechanism {mechanism}"),
                ))
            }
        };
        config.password = match &self.password {
            Some(p) if !p.expose().is_empty() => p.clone(),
            _ => {
                return Err(Error::config(
                    "sasl_plain_password",
                    format!("required with sasl_mechanism {mechanism}"),
                ))
            }
        };
        if mechanism == SaslMechanism::Plain && config.username.contains('\0') {
            return Err(Error::config(
                "sasl_plain_username",
                "contains a NUL byte, which PLAIN cannot carry",
            ));
        }
        Ok(Some(config))
    }
}

/// One SASL mechanism's client side, as a sequence of messages.
pub(crate) trait Mechanism {
    /// The first message the client sends.
    fn first(&mut self) -> Result<Vec<u8>>;
    /// Takes the server's answer; `Some` is the next message to send, `None`
    /// means the client is satisfied (authentication complete).
    fn next(&mut self, server: &[u8]) -> Result<Option<Vec<u8>>>;
}

fn mechanism_for(config: &SaslConfig) -> Result<Box<dyn Mechanism>> {
    Ok(match config.mechanism {
        SaslMechanism::Plain => Box::new(plain::Plain::new(&config.username, &config.password)),
        #[cfg(feature = "scram")]
        SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512 => Box::new(
            scram::ScramClient::new(config.mechanism, &config.username, &config.password)?,
        ),
        #[cfg(not(feature = "scram"))]
        SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512 => {
            return Err(Error::config(
                "sasl_mechanism",
                format!("{} needs the `scram` feature", config.mechanism),
            ))
        }
        SaslMechanism::OAuthBearer => {
            let tokens = config.tokens.as_ref().ok_or_else(|| {
                Error::config("sasl_oauth_token_provider", "required with OAUTHBEARER")
            })?;
            Box::new(oauth::OAuthBearer::new(tokens.current()?)?)
        }
    })
}

/// How the driver reaches the broker: requests with their answers, and the
/// raw token frames of the pre-1.0 protocol.
pub(crate) trait Exchange {
    /// Sends `request` in `version` and returns the decoded answer.
    fn call<R: Request>(&mut self, request: &R, version: i16) -> Result<R::Response>;
    /// Sends one size-prefixed raw token and reads the size-prefixed answer
    /// (after SaslHandshake v0).
    fn raw(&mut self, token: &[u8]) -> Result<Vec<u8>>;
}

/// What a successful login tells the connection.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Session {
    /// How long the broker keeps the session (KIP-368): the connection
    /// re-authenticates before it ends. `None`: the session does not end.
    pub(crate) lifetime: Option<Duration>,
}

/// An authentication failure: its own kind, never retried as such.
pub(crate) fn auth_error(addr: &BrokerAddress, mechanism: SaslMechanism, why: String) -> Error {
    Error::new(
        ErrorKind::Authentication,
        format!("SASL {mechanism} authentication with broker {addr} failed: {why}"),
    )
}

/// Logs in with `config`'s mechanism through `ex`.
pub(crate) fn authenticate<E: Exchange>(
    ex: &mut E,
    config: &SaslConfig,
    versions: &BrokerVersions,
    addr: &BrokerAddress,
) -> Result<Session> {
    let mechanism = config.mechanism;
    // SaslAuthenticate (Kafka 1.0+) comes with SaslHandshake v1; without it,
    // SaslHandshake v0 and raw tokens.
    let auth_version = versions
        .pick(
            ApiKey::SASL_AUTHENTICATE,
            (
                SaslAuthenticateRequest::MIN_VERSION,
                SaslAuthenticateRequest::MAX_VERSION,
            ),
        )
        .ok();
    let handshake_version = if auth_version.is_some() { 1 } else { 0 };
    let hs = ex.call(
        &SaslHandshakeRequest {
            mechanism: mechanism.name().to_owned(),
            ..Default::default()
        },
        handshake_version,
    )?;
    let code = ErrorCode(hs.error_code);
    if code == ErrorCode::UNSUPPORTED_SASL_MECHANISM {
        return Err(auth_error(
            addr,
            mechanism,
            format!(
                "the broker does not enable {mechanism} on this listener; it offers [{}]: set sasl_mechanism to one of them",
                hs.mechanisms.join(", ")
            ),
        ));
    }
    if code.is_err() {
        return Err(Error::broker(
            code,
            format!("SaslHandshake with broker {addr} for {mechanism}"),
        ));
    }
    let mut client = mechanism_for(config)?;
    let mut out = client.first()?;
    let mut session = Session::default();
    // PLAIN takes one round, SCRAM two, OAUTHBEARER one or two.
    for _ in 0..4 {
        let answer = match auth_version {
            Some(v) => {
                let r = ex.call(
                    &SaslAuthenticateRequest {
                        auth_bytes: std::mem::take(&mut out).into(),
                        ..Default::default()
                    },
                    v,
                )?;
                if r.error_code != 0 {
                    let code = ErrorCode(r.error_code);
                    let msg = r
                        .error_message
                        .filter(|m| !m.is_empty())
                        .unwrap_or_else(|| code.description().to_owned());
                    return Err(auth_error(
                        addr,
                        mechanism,
                        format!("{msg} [{}]", code.name()),
                    ));
                }
                if r.session_lifetime_ms > 0 {
                    session.lifetime = Some(Duration::from_millis(r.session_lifetime_ms as u64));
                }
                r.auth_bytes.to_vec()
            }
            None => ex.raw(&out).map_err(|e| {
                if e.kind() == ErrorKind::Disconnected || e.kind() == ErrorKind::Io {
                    auth_error(
                        addr,
                        mechanism,
                        format!("the broker closed the connection (brokers before 1.0 give no reason: check the user name and password) ({e})"),
                    )
                } else {
                    e
                }
            })?,
        };
        match client
            .next(&answer)
            .map_err(|e| auth_error(addr, mechanism, e.message().to_owned()))?
        {
            Some(next) => out = next,
            None => return Ok(session),
        }
    }
    Err(auth_error(
        addr,
        mechanism,
        "the broker kept asking for more messages".into(),
    ))
}

/// The hint for a plaintext client whose broker hangs up on its first
/// request: a SASL (or TLS) listener does that.
pub(crate) const PLAINTEXT_HINT: &str = "the broker closed the connection before answering the first request: if its listener expects SASL, set security_protocol to SASL_PLAINTEXT or SASL_SSL (with sasl_mechanism)";

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(m: Option<&str>, u: Option<&str>, p: Option<&str>) -> SaslSettings {
        SaslSettings {
            mechanism: m.map(str::to_owned),
            username: u.map(str::to_owned),
            password: p.map(Secret::new),
            provider: None,
        }
    }

    #[test]
    fn bad_combinations_name_the_key() {
        let sasl = SecurityProtocol::SaslPlaintext;
        let cases = [
            (
                settings(Some("PLAIN"), None, None),
                SecurityProtocol::Plaintext,
                "sasl_mechanism",
            ),
            (
                settings(None, Some("u"), None),
                SecurityProtocol::Plaintext,
                "sasl_plain_username",
            ),
            (settings(None, None, None), sasl, "sasl_mechanism"),
            (
                settings(Some("PLAIN"), None, Some("p")),
                sasl,
                "sasl_plain_username",
            ),
            (
                settings(Some("PLAIN"), Some("u"), None),
                sasl,
                "sasl_plain_password",
            ),
            (
                settings(Some("GSSAPI"), Some("u"), Some("p")),
                sasl,
                "sasl_mechanism",
            ),
            (
                settings(Some("AWS_MSK_IAM"), None, None),
                sasl,
                "sasl_mechanism",
            ),
            (
                settings(Some("OAUTHBEARER"), None, None),
                sasl,
                "sasl_oauth_token_provider",
            ),
            (
                settings(Some("OAUTHBEARER"), Some("u"), None),
                sasl,
                "sasl_plain_username",
            ),
        ];
        for (s, protocol, key) in cases {
            let e = s.build(protocol).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config);
            assert!(e.to_string().contains(&format!("`{key}`")), "{key}: {e}");
        }
        let e = settings(Some("GSSAPI"), None, None)
            .build(sasl)
            .unwrap_err();
        assert!(e.to_string().contains("SCRAM"), "{e}");
        assert!(settings(Some("plain"), Some("u"), Some("p"))
            .build(sasl)
            .unwrap()
            .is_some());
        assert!(settings(None, None, None)
            .build(SecurityProtocol::Plaintext)
            .unwrap()
            .is_none());
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let s = settings(Some("PLAIN"), Some("alice"), Some("hunter2-secret"));
        let c = s.build(SecurityProtocol::SaslPlaintext).unwrap();
        for shown in [format!("{s:?}"), format!("{c:?}")] {
            assert!(!shown.contains("hunter2-secret"), "{shown}");
            assert!(shown.contains("alice"), "{shown}");
        }
    }
}
