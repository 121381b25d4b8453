//! SASL OAUTHBEARER (RFC 7628, KIP-255) with SASL extensions (KIP-342):
//! the token provider a user implements, the cache that asks it again
//! before a token expires, and an unsecured-JWT provider for development.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use super::{base64, Mechanism};
use crate::error::{Error, ErrorKind, Result};

/// An OAuth 2 bearer token with its lifetime and SASL extensions.
///
/// `Debug` never shows the token itself.
#[derive(Clone)]
pub struct OAuthBearerToken {
    value: String,
    expires_at: SystemTime,
    extensions: Vec<(String, String)>,
}

impl OAuthBearerToken {
    /// A token valid for `lifetime` from now.
    pub fn new(value: impl Into<String>, lifetime: Duration) -> OAuthBearerToken {
        OAuthBearerToken::expiring_at(value, SystemTime::now() + lifetime)
    }

    /// A token that expires at `expires_at`.
    pub fn expiring_at(value: impl Into<String>, expires_at: SystemTime) -> OAuthBearerToken {
        OAuthBearerToken {
            value: value.into(),
            expires_at,
            extensions: Vec::new(),
        }
    }

    /// Adds a SASL extension (KIP-342), e.g. Confluent Cloud's
    /// `logicalCluster` and `identityPoolId`. Keys are letters only, and
    /// `auth` is reserved; a bad one fails the login with a clear error.
    pub fn with_extension(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.extensions.push((key.into(), value.into()));
        self
    }

    /// When the token expires.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// The SASL extensions sent with the token.
    pub fn extensions(&self) -> &[(String, String)] {
        &self.extensions
    }

    /// The token itself (a secret).
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for OAuthBearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthBearerToken")
            .field("value", &"***")
            .field("expires_at", &self.expires_at)
            .field("extensions", &self.extensions)
            .finish()
    }
}

/// Supplies OAUTHBEARER tokens (kafka-python's `sasl_oauth_token_provider`).
///
/// The client calls [`token`](OAuthBearerTokenProvider::token) when it
/// first logs in and again once four fifths of the token's lifetime have
/// passed, so a connection re-authenticating (KIP-368) presents a fresh
/// token before the old one expires. Calls come from connection threads;
/// a slow provider delays only the connection that asks.
///
/// ```
/// use std::time::Duration;
/// use kafka_blocking::{OAuthBearerToken, OAuthBearerTokenProvider};
///
/// struct FromMyIdentityProvider;
///
/// impl OAuthBearerTokenProvider for FromMyIdentityProvider {
///     fn token(&self) -> kafka_blocking::Result<OAuthBearerToken> {
///         // Fetch a token from your identity provider here.
///         Ok(OAuthBearerToken::new("eyJ...", Duration::from_secs(3600))
///             .with_extension("logicalCluster", "lkc-abc123"))
///     }
/// }
/// ```
pub trait OAuthBearerTokenProvider: Send + Sync {
    /// A token to log in with.
    fn token(&self) -> Result<OAuthBearerToken>;
}

/// **For development and tests only**: makes unsigned JWTs (`alg: none`),
/// which only a broker running Kafka's *unsecured* validator
/// (`OAuthBearerUnsecuredValidatorCallbackHandler`, the default when no
/// validator is configured) accepts. Never use it against a production
/// cluster: anyone can make such a token for any principal.
#[derive(Debug, Clone)]
pub struct UnsecuredJwtProvider {
    principal: String,
    lifetime: Duration,
    scope: Vec<String>,
    extensions: Vec<(String, String)>,
}

impl UnsecuredJwtProvider {
    /// Tokens for `principal` (the `sub` claim), valid for one hour.
    pub fn new(principal: impl Into<String>) -> UnsecuredJwtProvider {
        UnsecuredJwtProvider {
            principal: principal.into(),
            lifetime: Duration::from_secs(3600),
            scope: Vec::new(),
            extensions: Vec::new(),
        }
    }

    /// How long each token is valid (the `exp` claim).
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// Adds a scope to the `scope` claim.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope.push(scope.into());
        self
    }

    /// Adds a SASL extension sent with every token.
    pub fn extension(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.extensions.push((key.into(), value.into()));
        self
    }

    /// Makes an unsigned JWT issued at `issued` valid for `lifetime`.
    fn jwt(&self, issued: SystemTime, lifetime: Duration) -> String {
        // Whole milliseconds, rounded down: the claims never outlive the
        // token's real expiry.
        let secs = |ms: u128| format!("{}.{:03}", ms / 1000, ms % 1000);
        let iat = issued
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let exp = iat + lifetime.as_millis();
        let mut claims = format!(
            "{{\"sub\":{},\"iat\":{},\"exp\":{}",
            json_string(&self.principal),
            secs(iat),
            secs(exp)
        );
        if !self.scope.is_empty() {
            let scopes: Vec<String> = self.scope.iter().map(|s| json_string(s)).collect();
            claims.push_str(&format!(",\"scope\":[{}]", scopes.join(",")));
        }
        claims.push('}');
        format!(
            "{}.{}.",
            base64::encode_url(br#"{"alg":"none"}"#),
            base64::encode_url(claims.as_bytes())
        )
    }
}

impl OAuthBearerTokenProvider for UnsecuredJwtProvider {
    fn token(&self) -> Result<OAuthBearerToken> {
        let now = SystemTime::now();
        let mut t =
            OAuthBearerToken::expiring_at(self.jwt(now, self.lifetime), now + self.lifetime);
        t.extensions = self.extensions.clone();
        Ok(t)
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The provider and its last token: asks again once four fifths of the
/// token's lifetime have passed.
pub(crate) struct TokenCache {
    provider: Arc<dyn OAuthBearerTokenProvider>,
    last: Mutex<Option<(OAuthBearerToken, SystemTime)>>,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OAuthBearerTokenProvider")
    }
}

impl TokenCache {
    pub(crate) fn new(provider: Arc<dyn OAuthBearerTokenProvider>) -> TokenCache {
        TokenCache {
            provider,
            last: Mutex::new(None),
        }
    }

    /// A token that is not past four fifths of its lifetime.
    pub(crate) fn current(&self) -> Result<OAuthBearerToken> {
        let now = SystemTime::now();
        let mut last = self.last.lock();
        if let Some((t, fetched)) = last.as_ref() {
            let life = t.expires_at.duration_since(*fetched).unwrap_or_default();
            if now < *fetched + life.mul_f64(0.8) {
                return Ok(t.clone());
            }
        }
        let t = self.provider.token().map_err(|e| {
            Error::new(
                ErrorKind::Authentication,
                format!("sasl_oauth_token_provider failed to supply a token: {e}"),
            )
        })?;
        *last = Some((t.clone(), now));
        Ok(t)
    }
}

/// The client side of OAUTHBEARER.
pub(crate) struct OAuthBearer {
    message: Vec<u8>,
    sent_error_ack: bool,
    server_error: Option<String>,
}

impl OAuthBearer {
    pub(crate) fn new(token: OAuthBearerToken) -> Result<OAuthBearer> {
        if token.expires_at <= SystemTime::now() {
            return Err(Error::new(
                ErrorKind::Authentication,
                "sasl_oauth_token_provider returned a token that has already expired",
            ));
        }
        Ok(OAuthBearer {
            message: client_first(&token)?,
            sent_error_ack: false,
            server_error: None,
        })
    }
}

/// `n,,\x01auth=Bearer <token>\x01key=value\x01...\x01` (RFC 7628 §3.1).
fn client_first(token: &OAuthBearerToken) -> Result<Vec<u8>> {
    let bad = |why: String| Error::new(ErrorKind::Authentication, why);
    if token.value.is_empty()
        || !token
            .value
            .bytes()
            .all(|b| b.is_ascii_graphic() || b == b' ')
    {
        return Err(bad(
            "the OAUTHBEARER token is empty or holds characters a bearer token cannot".into(),
        ));
    }
    let mut m = format!("n,,\x01auth=Bearer {}\x01", token.value);
    for (k, v) in &token.extensions {
        if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphabetic()) || k == "auth" {
            return Err(bad(format!(
                "SASL extension key `{k}` is invalid: letters only, and `auth` is reserved"
            )));
        }
        if !v
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) || b" \t\r\n".contains(&b))
        {
            return Err(bad(format!(
                "the value of SASL extension `{k}` holds characters an extension cannot carry"
            )));
        }
        m.push_str(&format!("{k}={v}\x01"));
    }
    m.push('\x01');
    Ok(m.into_bytes())
}

impl Mechanism for OAuthBearer {
    fn first(&mut self) -> Result<Vec<u8>> {
        Ok(std::mem::take(&mut self.message))
    }

    fn next(&mut self, server: &[u8]) -> Result<Option<Vec<u8>>> {
        if server.is_empty() && !self.sent_error_ack {
            return Ok(None);
        }
        if self.sent_error_ack {
            // The broker should have failed the login after our ack.
            return Err(Error::new(
                ErrorKind::Authentication,
                format!(
                    "the broker rejected the token: {}",
                    self.server_error.as_deref().unwrap_or("no reason given")
                ),
            ));
        }
        // An error challenge (a JSON status, RFC 7628 §3.2.2): acknowledge
        // it with a lone separator; the broker then fails the login.
        self.server_error = Some(String::from_utf8_lossy(server).into_owned());
        self.sent_error_ack = true;
        Ok(Some(vec![0x01]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_first_with_extensions() {
        let t = OAuthBearerToken::new("abc.def.", Duration::from_secs(60))
            .with_extension("traceId", "x y");
        let m = client_first(&t).unwrap();
        assert_eq!(m, b"n,,\x01auth=Bearer abc.def.\x01traceId=x y\x01\x01");
        for (k, v) in [("auth", "x"), ("a1", "x"), ("", "x"), ("ok", "\x02")] {
            let t = OAuthBearerToken::new("t", Duration::from_secs(60)).with_extension(k, v);
            assert!(client_first(&t).is_err(), "{k}={v:?}");
        }
    }

    #[test]
    fn unsecured_jwt_claims() {
        let p = UnsecuredJwtProvider::new("alice").scope("read");
        let jwt = p.jwt(
            UNIX_EPOCH + Duration::from_secs(1000),
            Duration::from_secs(60),
        );
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], "eyJhbGciOiJub25lIn0");
        assert_eq!(parts[2], "");
        let mut padded = parts[1].replace('-', "+").replace('_', "/");
        while padded.len() % 4 != 0 {
            padded.push('=');
        }
        let claims = String::from_utf8(base64::decode(&padded).unwrap()).unwrap();
        assert_eq!(
            claims,
            r#"{"sub":"alice","iat":1000.000,"exp":1060.000,"scope":["read"]}"#
        );
        let t = p.token().unwrap();
        assert!(!format!("{t:?}").contains(t.value()));
    }

    #[test]
    fn tokens_are_refreshed_before_they_expire() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        struct Counting(AtomicUsize, Duration);
        impl OAuthBearerTokenProvider for Counting {
            fn token(&self) -> Result<OAuthBearerToken> {
                self.0.fetch_add(1, Ordering::SeqCst);
                Ok(OAuthBearerToken::new("t", self.1))
            }
        }
        let long = Arc::new(Counting(AtomicUsize::new(0), Duration::from_secs(3600)));
        let cache = TokenCache::new(long.clone());
        cache.current().unwrap();
        cache.current().unwrap();
        assert_eq!(long.0.load(Ordering::SeqCst), 1);
        // Past four fifths of a 50 ms lifetime, the provider is asked again.
        let short = Arc::new(Counting(AtomicUsize::new(0), Duration::from_millis(50)));
        let cache = TokenCache::new(short.clone());
        cache.current().unwrap();
        std::thread::sleep(Duration::from_millis(45));
        cache.current().unwrap();
        assert_eq!(short.0.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn error_challenge_is_acknowledged_then_fails() {
        let mut m = OAuthBearer::new(OAuthBearerToken::new("t", Duration::from_secs(60))).unwrap();
        m.first().unwrap();
        assert_eq!(
            m.next(br#"{"status":"invalid_token"}"#).unwrap(),
            Some(vec![1])
        );
        let e = m.next(b"").unwrap_err();
        assert!(e.to_string().contains("invalid_token"), "{e}");
        assert!(OAuthBearer::new(OAuthBearerToken::expiring_at("t", UNIX_EPOCH)).is_err());
    }
}
