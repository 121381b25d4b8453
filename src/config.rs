//! Options shared by every client (producer, consumer, admin, raw client),
//! with kafka-python's names and defaults.
//!
//! A [`ClientConfig`] is immutable and cheap to clone; it is made by
//! [`ClientConfigBuilder::build`], which checks every value and fails naming
//! the offending key.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::net::sasl::{OAuthBearerTokenProvider, ProviderSlot, SaslConfig, SaslSettings};

/// The default Kafka port, used when a bootstrap server has none.
pub const DEFAULT_PORT: u16 = 9092;

/// A `host:port` pair.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BrokerAddress {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl BrokerAddress {
    /// A new address.
    pub fn new(host: impl Into<String>, port: u16) -> BrokerAddress {
        BrokerAddress {
            host: host.into(),
            port,
        }
    }

    /// Parses `host`, `host:port`, `[v6]` or `[v6]:port` (default port 9092).
    pub fn parse(s: &str) -> Result<BrokerAddress> {
        let s = s.trim();
        let bad = |why: &str| Error::config("bootstrap_servers", format!("`{s}`: {why}"));
        if s.is_empty() {
            return Err(bad("empty address"));
        }
        // Listener-style addresses (`SSL://host:9093`) as copied from a
        // broker's configuration; security comes from `security_protocol`.
        let s_no_scheme = [
            "PLAINTEXT://",
            "SSL://",
            "SASL_SSL://",
            "SASL_PLAINTEXT://",
            "tcp://",
        ]
        .iter()
        .find_map(|p| s.strip_prefix(p))
        .unwrap_or(s);
        let (host, port) = if let Some(rest) = s_no_scheme.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| bad("missing `]` after an IPv6 address"))?;
            match after {
                "" => (host, None),
                p => (
                    host,
                    Some(
                        p.strip_prefix(':')
                            .ok_or_else(|| bad("expected `:port` after `]`"))?,
                    ),
                ),
            }
        } else if s_no_scheme.matches(':').count() > 1 {
            // A bare IPv6 address without a port.
            (s_no_scheme, None)
        } else {
            match s_no_scheme.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (s_no_scheme, None),
            }
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("the port must be a number from 1 to 65535"))?,
        };
        Ok(BrokerAddress::new(host, port))
    }

    /// Parses a comma-separated list of addresses.
    pub fn parse_list(s: &str) -> Result<Vec<BrokerAddress>> {
        let list: Vec<BrokerAddress> = s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(BrokerAddress::parse)
            .collect::<Result<_>>()?;
        if list.is_empty() {
            return Err(Error::config(
                "bootstrap_servers",
                "no broker address given; expected `host:port[,host:port...]`",
            ));
        }
        Ok(list)
    }
}

impl fmt::Display for BrokerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Debug for BrokerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// How connections are secured (kafka-python's `security_protocol`).
///
/// TLS is the connection's transport (`SSL`, crate feature `tls`); SASL
/// plugs in at the connection's handshake step (see the README's design
/// section).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecurityProtocol {
    /// Unencrypted, unauthenticated TCP.
    #[default]
    Plaintext,
    /// TLS (crate feature `tls`), configured by the `ssl_*` options.
    Ssl,
    /// SASL authentication (`sasl_mechanism`) over unencrypted TCP.
    SaslPlaintext,
    /// SASL authentication over TLS (crate feature `tls`; the `ssl_*` and
    /// `sasl_*` options).
    SaslSsl,
}

impl SecurityProtocol {
    /// The name kafka-python and the broker use (`PLAINTEXT`, ...).
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Whether connections log in with SASL.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

// ---- TLS options (security_protocol=SSL) -------------------------------
// Kept together so the SASL options can sit beside them without conflicts.

impl SecurityProtocol {
    /// Whether connections run over TLS (`SSL` and `SASL_SSL`).
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }
}

/// A secret (a password) whose `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Default)]
pub(crate) struct Secret(pub(crate) String);

impl Secret {
    pub(crate) fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself, for the one place that must send it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A ready rustls configuration handed in with `ssl_context`.
#[cfg(feature = "tls")]
#[derive(Clone)]
struct SslContext(Arc<rustls::ClientConfig>);

#[cfg(feature = "tls")]
impl fmt::Debug for SslContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<rustls::ClientConfig>")
    }
}

/// The `ssl_*` settings of a builder, before checking.
#[derive(Clone, Debug, Default)]
struct SslOptions {
    cafile: Option<PathBuf>,
    certfile: Option<PathBuf>,
    keyfile: Option<PathBuf>,
    crlfile: Option<PathBuf>,
    password: Option<Secret>,
    check_hostname: Option<bool>,
    ciphers: Option<String>,
    #[cfg(feature = "tls")]
    context: Option<SslContext>,
}

/// What a built config keeps of TLS.
#[cfg(feature = "tls")]
type TlsSetting = Option<crate::net::tls::TlsConfig>;
#[cfg(not(feature = "tls"))]
type TlsSetting = ();

impl SslOptions {
    /// The keys that are set, by their kafka-python names.
    fn keys_set(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        for (key, set) in [
            ("ssl_cafile", self.cafile.is_some()),
            ("ssl_certfile", self.certfile.is_some()),
            ("ssl_keyfile", self.keyfile.is_some()),
            ("ssl_crlfile", self.crlfile.is_some()),
            ("ssl_password", self.password.is_some()),
            ("ssl_check_hostname", self.check_hostname.is_some()),
            ("ssl_ciphers", self.ciphers.is_some()),
        ] {
            if set {
                keys.push(key);
            }
        }
        #[cfg(feature = "tls")]
        if self.context.is_some() {
            keys.push("ssl_context");
        }
        keys
    }

    /// Checks the combination and, for TLS, reads the files.
    fn build(&self, protocol: SecurityProtocol) -> Result<TlsSetting> {
        let keys = self.keys_set();
        if !protocol.uses_tls() {
            if let Some(key) = keys.first() {
                return Err(Error::config(
                    key,
                    format!("is set but security_protocol is {}, which does not use TLS: set security_protocol=SSL (or SASL_SSL), or remove {key}", protocol.name()),
                ));
            }
            #[cfg(feature = "tls")]
            return Ok(None);
            #[cfg(not(feature = "tls"))]
            return Ok(());
        }
        #[cfg(not(feature = "tls"))]
        {
            Err(Error::config(
                "security_protocol",
                "SSL needs the crate's `tls` feature: kafka-blocking = { version = \"*\", features = [\"tls\"] }",
            ))
        }
        #[cfg(feature = "tls")]
        {
            use crate::net::tls::{TlsConfig, TlsFiles};
            if let Some(ctx) = &self.context {
                if let Some(key) = keys.iter().find(|k| **k != "ssl_context") {
                    return Err(Error::config(
                        key,
                        "cannot be combined with ssl_context: configure the rustls::ClientConfig instead",
                    ));
                }
                return Ok(Some(TlsConfig::from_context(Arc::clone(&ctx.0))));
            }
            if self.keyfile.is_some() && self.certfile.is_none() {
                return Err(Error::config(
                    "ssl_keyfile",
                    "is set without ssl_certfile: a client certificate needs both",
                ));
            }
            if self.password.is_some() && self.certfile.is_none() {
                return Err(Error::config(
                    "ssl_password",
                    "is set without ssl_certfile and ssl_keyfile: it opens an encrypted client key",
                ));
            }
            let files = TlsFiles {
                cafile: self.cafile.as_deref(),
                certfile: self.certfile.as_deref(),
                keyfile: self.keyfile.as_deref(),
                crlfile: self.crlfile.as_deref(),
                password: self.password.as_ref().map(|p| p.0.as_str()),
                check_hostname: self.check_hostname.unwrap_or(true),
                ciphers: self.ciphers.as_deref(),
            };
            TlsConfig::from_files(&files).map(Some)
        }
    }
}

impl ClientConfig {
    /// The transport every connection of a client with this config uses.
    pub(crate) fn transport(&self) -> Arc<dyn crate::net::Transport> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            return Arc::new(crate::net::tls::TlsTransport {
                config: Arc::clone(&tls.rustls),
            });
        }
        Arc::new(crate::net::TcpTransport)
    }
}

impl ClientConfigBuilder {
    /// `ssl_cafile`: a PEM file of the CA certificates that signed the
    /// brokers' certificates (`security_protocol=SSL`). Unset, the system's
    /// trust store is used, as kafka-python does.
    pub fn ssl_cafile(mut self, path: impl AsRef<Path>) -> Self {
        self.ssl.cafile = Some(path.as_ref().to_owned());
        self
    }

    /// `ssl_certfile`: a PEM file with this client's certificate (and its
    /// chain) for brokers that require client certificates (mTLS). The key
    /// may be in the same file or in `ssl_keyfile`.
    pub fn ssl_certfile(mut self, path: impl AsRef<Path>) -> Self {
        self.ssl.certfile = Some(path.as_ref().to_owned());
        self
    }

    /// `ssl_keyfile`: a PEM file with the private key of `ssl_certfile`
    /// (PKCS#8, PKCS#1 or SEC1; an `ENCRYPTED PRIVATE KEY` needs
    /// `ssl_password`).
    pub fn ssl_keyfile(mut self, path: impl AsRef<Path>) -> Self {
        self.ssl.keyfile = Some(path.as_ref().to_owned());
        self
    }

    /// `ssl_password`: the password of an encrypted PKCS#8 key (PBES2 with
    /// AES, as `openssl pkcs8 -topk8 -v2 aes-256-cbc` writes). Never shown
    /// in `Debug` output or errors.
    pub fn ssl_password(mut self, password: impl Into<String>) -> Self {
        self.ssl.password = Some(Secret(password.into()));
        self
    }

    /// `ssl_crlfile`: a PEM file of certificate revocation lists; a broker
    /// certificate listed there is refused.
    pub fn ssl_crlfile(mut self, path: impl AsRef<Path>) -> Self {
        self.ssl.crlfile = Some(path.as_ref().to_owned());
        self
    }

    /// `ssl_check_hostname`: check that the broker's certificate is valid
    /// for the host name connected to (default true). `false` still checks
    /// the chain, expiry and revocation.
    pub fn ssl_check_hostname(mut self, check: bool) -> Self {
        self.ssl.check_hostname = Some(check);
        self
    }

    /// `ssl_ciphers`: the cipher suites to offer, most preferred first,
    /// separated by `:` (kafka-python's key; librdkafka's
    /// `ssl.cipher.suites`). Names are IANA's (`TLS_AES_256_GCM_SHA384`,
    /// `TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384`) or OpenSSL's
    /// (`ECDHE-RSA-AES256-GCM-SHA384`); unlike OpenSSL's cipher strings the
    /// list also covers TLS 1.3 suites and takes no `!`/`+` expressions. An
    /// unknown name fails `build()`. Unset, the client offers AES-128-GCM,
    /// then AES-256-GCM, then ChaCha20-Poly1305 (TLS 1.3 first), as Chrome
    /// and Go do: AES-128-GCM costs half of AES-256-GCM's CPU per byte.
    pub fn ssl_ciphers(mut self, ciphers: impl Into<String>) -> Self {
        self.ssl.ciphers = Some(ciphers.into());
        self
    }

    /// `ssl_context`: a ready `rustls::ClientConfig` used as it is, for
    /// anything the `ssl_*` options do not cover (kafka-python's
    /// `ssl_context`). Not combinable with the other `ssl_*` options.
    #[cfg(feature = "tls")]
    pub fn ssl_context(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.ssl.context = Some(SslContext(config));
        self
    }
}

// ---- end of TLS options ------------------------------------------------

/// Options every client shares. Build one with [`ClientConfig::builder`].
///
/// ```
/// use kafka_blocking::ClientConfig;
///
/// let config = ClientConfig::builder()
///     .bootstrap_servers("127.0.0.1:9092,127.0.0.1:9093")
///     .client_id("billing")
///     .request_timeout_ms(10_000)
///     .build()?;
/// assert_eq!(config.client_id(), "billing");
/// # Ok::<(), kafka_blocking::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub(crate) bootstrap_servers: Vec<BrokerAddress>,
    pub(crate) client_id: String,
    pub(crate) request_timeout: Duration,
    pub(crate) metadata_max_age: Duration,
    pub(crate) retry_backoff: Duration,
    pub(crate) reconnect_backoff: Duration,
    pub(crate) reconnect_backoff_max: Duration,
    pub(crate) connections_max_idle: Option<Duration>,
    pub(crate) connection_setup_timeout: Duration,
    pub(crate) max_in_flight_requests_per_connection: usize,
    pub(crate) receive_message_max_bytes: usize,
    pub(crate) api_version: Option<(u16, u16, u16)>,
    pub(crate) security_protocol: SecurityProtocol,
    pub(crate) sasl: Option<SaslConfig>,
    /// The TLS configuration when `security_protocol` uses TLS.
    #[cfg(feature = "tls")]
    pub(crate) tls: TlsSetting,
}

impl ClientConfig {
    /// A builder with kafka-python's defaults.
    pub fn builder() -> ClientConfigBuilder {
        ClientConfigBuilder::default()
    }

    /// The bootstrap servers.
    pub fn bootstrap_servers(&self) -> &[BrokerAddress] {
        &self.bootstrap_servers
    }

    /// The client id sent with every request.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// How long to wait for any one response.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// How old metadata may get before it is refreshed.
    pub fn metadata_max_age(&self) -> Duration {
        self.metadata_max_age
    }

    /// The pause before retrying a failed request.
    pub fn retry_backoff(&self) -> Duration {
        self.retry_backoff
    }

    /// The highest number of unanswered requests on one connection.
    pub fn max_in_flight_requests_per_connection(&self) -> usize {
        self.max_in_flight_requests_per_connection
    }

    /// How connections are secured.
    pub fn security_protocol(&self) -> SecurityProtocol {
        self.security_protocol
    }

    /// The SASL mechanism connections log in with, when SASL is on.
    pub fn sasl_mechanism(&self) -> Option<crate::SaslMechanism> {
        self.sasl.as_ref().map(|s| s.mechanism)
    }

    /// The largest response frame accepted.
    pub fn receive_message_max_bytes(&self) -> usize {
        self.receive_message_max_bytes
    }
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            bootstrap_servers: vec![BrokerAddress::new("localhost", DEFAULT_PORT)],
            client_id: format!("kafka-blocking-{}", env!("CARGO_PKG_VERSION")),
            request_timeout: Duration::from_millis(30_000),
            metadata_max_age: Duration::from_millis(300_000),
            retry_backoff: Duration::from_millis(100),
            reconnect_backoff: Duration::from_millis(50),
            reconnect_backoff_max: Duration::from_millis(1_000),
            connections_max_idle: Some(Duration::from_millis(540_000)),
            connection_setup_timeout: Duration::from_millis(10_000),
            max_in_flight_requests_per_connection: 5,
            receive_message_max_bytes: crate::protocol::DEFAULT_MAX_FRAME_BYTES,
            api_version: None,
            security_protocol: SecurityProtocol::Plaintext,
            sasl: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

/// Builds a [`ClientConfig`]; every setter takes the kafka-python name.
///
/// Values are only checked in [`build`](ClientConfigBuilder::build), which
/// names the first invalid key.
#[derive(Clone, Debug, Default)]
pub struct ClientConfigBuilder {
    bootstrap_servers: Option<String>,
    client_id: Option<String>,
    request_timeout_ms: Option<i64>,
    metadata_max_age_ms: Option<i64>,
    retry_backoff_ms: Option<i64>,
    reconnect_backoff_ms: Option<i64>,
    reconnect_backoff_max_ms: Option<i64>,
    connections_max_idle_ms: Option<i64>,
    socket_connection_setup_timeout_ms: Option<i64>,
    max_in_flight_requests_per_connection: Option<i64>,
    receive_message_max_bytes: Option<i64>,
    api_version: Option<String>,
    security_protocol: Option<String>,
    sasl: SaslSettings,
    ssl: SslOptions,
}

fn millis(key: &str, v: Option<i64>, default: Duration, min: i64) -> Result<Duration> {
    match v {
        None => Ok(default),
        Some(v) if v < min => Err(Error::config(
            key,
            format!("{v} is below the minimum {min}"),
        )),
        Some(v) => Ok(Duration::from_millis(v as u64)),
    }
}

impl ClientConfigBuilder {
    /// `bootstrap_servers`: comma-separated `host[:port]` list used to
    /// discover the cluster (default `localhost:9092`).
    pub fn bootstrap_servers(mut self, servers: impl AsRef<str>) -> Self {
        self.bootstrap_servers = Some(servers.as_ref().to_owned());
        self
    }

    /// `client_id`: a name for this client in broker logs and quotas
    /// (default `kafka-blocking-<version>`).
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = Some(id.into());
        self
    }

    /// `request_timeout_ms`: how long to wait for a response before failing
    /// the request and closing the connection (default 30000).
    pub fn request_timeout_ms(mut self, ms: i64) -> Self {
        self.request_timeout_ms = Some(ms);
        self
    }

    /// `metadata_max_age_ms`: refresh metadata at least this often, even
    /// without errors (default 300000).
    pub fn metadata_max_age_ms(mut self, ms: i64) -> Self {
        self.metadata_max_age_ms = Some(ms);
        self
    }

    /// `retry_backoff_ms`: pause before retrying a failed request, and the
    /// shortest interval between metadata refreshes (default 100).
    pub fn retry_backoff_ms(mut self, ms: i64) -> Self {
        self.retry_backoff_ms = Some(ms);
        self
    }

    /// `reconnect_backoff_ms`: pause before reconnecting to a broker after a
    /// failure; doubles per failure up to `reconnect_backoff_max_ms`
    /// (default 50).
    pub fn reconnect_backoff_ms(mut self, ms: i64) -> Self {
        self.reconnect_backoff_ms = Some(ms);
        self
    }

    /// `reconnect_backoff_max_ms`: the cap of the reconnect backoff
    /// (default 1000).
    pub fn reconnect_backoff_max_ms(mut self, ms: i64) -> Self {
        self.reconnect_backoff_max_ms = Some(ms);
        self
    }

    /// `connections_max_idle_ms`: close connections idle this long; `-1`
    /// keeps them open (default 540000).
    pub fn connections_max_idle_ms(mut self, ms: i64) -> Self {
        self.connections_max_idle_ms = Some(ms);
        self
    }

    /// `socket_connection_setup_timeout_ms`: how long a TCP connect plus
    /// the ApiVersions handshake and the SASL login may take (default
    /// 10000, as the Java client).
    pub fn socket_connection_setup_timeout_ms(mut self, ms: i64) -> Self {
        self.socket_connection_setup_timeout_ms = Some(ms);
        self
    }

    /// `max_in_flight_requests_per_connection`: requests sent on one
    /// connection before waiting for a response (default 5).
    pub fn max_in_flight_requests_per_connection(mut self, n: i64) -> Self {
        self.max_in_flight_requests_per_connection = Some(n);
        self
    }

    /// `receive_message_max_bytes`: the largest response frame accepted
    /// (default 100 MiB); a larger one is a protocol error.
    pub fn receive_message_max_bytes(mut self, n: i64) -> Self {
        self.receive_message_max_bytes = Some(n);
        self
    }

    /// `api_version`: the Kafka release to assume (`"2.8"`, `"0.11.0"`)
    /// when a broker refuses the ApiVersions request entirely (hangs up on
    /// it). Every broker from 0.10 answers it, so this client always asks
    /// and negotiates; the setting only matters for proxies that drop the
    /// request. Then each API's version is picked from what that release
    /// supports (a table of releases 0.10.0 to 4.0, as kafka-python; a
    /// release between two is taken as the older one). Without it, such a
    /// broker is a `Disconnected` error. Releases before 0.10.0 fail at
    /// `build()`.
    pub fn api_version(mut self, version: impl Into<String>) -> Self {
        self.api_version = Some(version.into());
        self
    }

    /// `security_protocol`: `PLAINTEXT` (default), `SSL` (TLS, crate
    /// feature `tls`; see the `ssl_*` options), `SASL_PLAINTEXT` (log in
    /// with `sasl_mechanism`) or `SASL_SSL` (both).
    pub fn security_protocol(mut self, protocol: impl Into<String>) -> Self {
        self.security_protocol = Some(protocol.into());
        self
    }

    /// `sasl_mechanism`: `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512` (feature
    /// `scram`) or `OAUTHBEARER`; required with a `SASL_*`
    /// `security_protocol`. `GSSAPI` and `AWS_MSK_IAM` are not supported
    /// (build() says what to use instead).
    pub fn sasl_mechanism(mut self, mechanism: impl Into<String>) -> Self {
        self.sasl.mechanism = Some(mechanism.into());
        self
    }

    /// `sasl_plain_username`: the user for PLAIN and SCRAM.
    pub fn sasl_plain_username(mut self, username: impl Into<String>) -> Self {
        self.sasl.username = Some(username.into());
        self
    }

    /// `sasl_plain_password`: the password for PLAIN and SCRAM. Never shown
    /// in `Debug` output, errors or logs.
    pub fn sasl_plain_password(mut self, password: impl Into<String>) -> Self {
        self.sasl.password = Some(Secret::new(password));
        self
    }

    /// `sasl_oauth_token_provider`: supplies tokens for OAUTHBEARER (see
    /// [`OAuthBearerTokenProvider`]; [`UnsecuredJwtProvider`](crate::UnsecuredJwtProvider)
    /// for development brokers).
    pub fn sasl_oauth_token_provider(
        mut self,
        provider: impl OAuthBearerTokenProvider + 'static,
    ) -> Self {
        self.sasl.provider = Some(ProviderSlot(std::sync::Arc::new(provider)));
        self
    }

    /// Checks every value and builds the config.
    pub fn build(self) -> Result<ClientConfig> {
        let d = ClientConfig::default();
        let bootstrap_servers = match &self.bootstrap_servers {
            Some(s) => BrokerAddress::parse_list(s)?,
            None => d.bootstrap_servers.clone(),
        };
        let client_id = self.client_id.unwrap_or(d.client_id);
        if client_id.len() > i16::MAX as usize {
            return Err(Error::config("client_id", "longer than 32767 bytes"));
        }
        let request_timeout = millis(
            "request_timeout_ms",
            self.request_timeout_ms,
            d.request_timeout,
            1,
        )?;
        let metadata_max_age = millis(
            "metadata_max_age_ms",
            self.metadata_max_age_ms,
            d.metadata_max_age,
            0,
        )?;
        let retry_backoff = millis(
            "retry_backoff_ms",
            self.retry_backoff_ms,
            d.retry_backoff,
            0,
        )?;
        let reconnect_backoff = millis(
            "reconnect_backoff_ms",
            self.reconnect_backoff_ms,
            d.reconnect_backoff,
            0,
        )?;
        let reconnect_backoff_max = millis(
            "reconnect_backoff_max_ms",
            self.reconnect_backoff_max_ms,
            d.reconnect_backoff_max.max(reconnect_backoff),
            0,
        )?;
        if reconnect_backoff_max < reconnect_backoff {
            return Err(Error::config(
                "reconnect_backoff_max_ms",
                "must be at least reconnect_backoff_ms",
            ));
        }
        let connections_max_idle = match self.connections_max_idle_ms {
            None => d.connections_max_idle,
            Some(-1) => None,
            Some(v) if v <= 0 => {
                return Err(Error::config(
                    "connections_max_idle_ms",
                    format!("{v}: use a positive number, or -1 to never close idle connections"),
                ))
            }
            Some(v) => Some(Duration::from_millis(v as u64)),
        };
        let connection_setup_timeout = millis(
            "socket_connection_setup_timeout_ms",
            self.socket_connection_setup_timeout_ms,
            d.connection_setup_timeout,
            1,
        )?;
        let max_in_flight_requests_per_connection = match self.max_in_flight_requests_per_connection
        {
            None => d.max_in_flight_requests_per_connection,
            Some(n) if (1..=1000).contains(&n) => n as usize,
            Some(n) => {
                return Err(Error::config(
                    "max_in_flight_requests_per_connection",
                    format!("{n} is outside 1..=1000"),
                ))
            }
        };
        let receive_message_max_bytes = match self.receive_message_max_bytes {
            None => d.receive_message_max_bytes,
            Some(n) if (1024..=i32::MAX as i64).contains(&n) => n as usize,
            Some(n) => {
                return Err(Error::config(
                    "receive_message_max_bytes",
                    format!("{n} is outside 1024..=2147483647"),
                ))
            }
        };
        let api_version = match &self.api_version {
            None => None,
            Some(s) => Some(parse_api_version(s)?),
        };
        let security_protocol = match self.security_protocol.as_deref() {
            None => SecurityProtocol::Plaintext,
            Some(p) if p.eq_ignore_ascii_case("PLAINTEXT") => SecurityProtocol::Plaintext,
            Some(p) if p.eq_ignore_ascii_case("SSL") => SecurityProtocol::Ssl,
            Some(p) if p.eq_ignore_ascii_case("SASL_PLAINTEXT") => SecurityProtocol::SaslPlaintext,
            Some(p) if p.eq_ignore_ascii_case("SASL_SSL") => SecurityProtocol::SaslSsl,
            Some(p) => {
                return Err(Error::config(
                    "security_protocol",
                    format!("`{p}` is not a security protocol; use PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"),
                ))
            }
        };
        #[cfg_attr(not(feature = "tls"), allow(clippy::let_unit_value, unused_variables))]
        let tls = self.ssl.build(security_protocol)?;
        let sasl = self.sasl.build(security_protocol)?;
        Ok(ClientConfig {
            bootstrap_servers,
            client_id,
            request_timeout,
            metadata_max_age,
            retry_backoff,
            reconnect_backoff,
            reconnect_backoff_max,
            connections_max_idle,
            connection_setup_timeout,
            max_in_flight_requests_per_connection,
            receive_message_max_bytes,
            api_version,
            security_protocol,
            sasl,
            #[cfg(feature = "tls")]
            tls,
        })
    }
}

fn parse_api_version(s: &str) -> Result<(u16, u16, u16)> {
    let bad = || {
        Error::config(
            "api_version",
            format!("`{s}`: expected a Kafka release such as `2.8` or `0.11.0`"),
        )
    };
    let parts: Vec<u16> = s
        .trim()
        .split('.')
        .map(|p| p.parse::<u16>().map_err(|_| bad()))
        .collect::<Result<_>>()?;
    let release = match parts.as_slice() {
        [a, b] => (*a, *b, 0),
        [a, b, c] => (*a, *b, *c),
        _ => return Err(bad()),
    };
    if release < (0, 10, 0) {
        return Err(Error::config(
            "api_version",
            format!("`{s}`: brokers older than 0.10.0 are not supported"),
        ));
    }
    Ok(release)
}

/// Generates the shared client-option setters on a builder that has a
/// `client: ClientConfigBuilder` field, so every builder speaks the same
/// kafka-python names without repeating their documentation.
macro_rules! client_options {
    () => {
        /// `bootstrap_servers`: see [`ClientConfigBuilder::bootstrap_servers`](crate::ClientConfigBuilder::bootstrap_servers).
        pub fn bootstrap_servers(mut self, servers: impl AsRef<str>) -> Self {
            self.client = self.client.bootstrap_servers(servers);
            self
        }
        /// `client_id`: see [`ClientConfigBuilder::client_id`](crate::ClientConfigBuilder::client_id).
        pub fn client_id(mut self, id: impl Into<String>) -> Self {
            self.client = self.client.client_id(id);
            self
        }
        /// `request_timeout_ms`: see [`ClientConfigBuilder::request_timeout_ms`](crate::ClientConfigBuilder::request_timeout_ms).
        pub fn request_timeout_ms(mut self, ms: i64) -> Self {
            self.client = self.client.request_timeout_ms(ms);
            self
        }
        /// `metadata_max_age_ms`: see [`ClientConfigBuilder::metadata_max_age_ms`](crate::ClientConfigBuilder::metadata_max_age_ms).
        pub fn metadata_max_age_ms(mut self, ms: i64) -> Self {
            self.client = self.client.metadata_max_age_ms(ms);
            self
        }
        /// `retry_backoff_ms`: see [`ClientConfigBuilder::retry_backoff_ms`](crate::ClientConfigBuilder::retry_backoff_ms).
        pub fn retry_backoff_ms(mut self, ms: i64) -> Self {
            self.client = self.client.retry_backoff_ms(ms);
            self
        }
        /// `reconnect_backoff_ms`: see [`ClientConfigBuilder::reconnect_backoff_ms`](crate::ClientConfigBuilder::reconnect_backoff_ms).
        pub fn reconnect_backoff_ms(mut self, ms: i64) -> Self {
            self.client = self.client.reconnect_backoff_ms(ms);
            self
        }
        /// `reconnect_backoff_max_ms`: see [`ClientConfigBuilder::reconnect_backoff_max_ms`](crate::ClientConfigBuilder::reconnect_backoff_max_ms).
        pub fn reconnect_backoff_max_ms(mut self, ms: i64) -> Self {
            self.client = self.client.reconnect_backoff_max_ms(ms);
            self
        }
        /// `connections_max_idle_ms`: see [`ClientConfigBuilder::connections_max_idle_ms`](crate::ClientConfigBuilder::connections_max_idle_ms).
        pub fn connections_max_idle_ms(mut self, ms: i64) -> Self {
            self.client = self.client.connections_max_idle_ms(ms);
            self
        }
        /// `socket_connection_setup_timeout_ms`: see [`ClientConfigBuilder::socket_connection_setup_timeout_ms`](crate::ClientConfigBuilder::socket_connection_setup_timeout_ms).
        pub fn socket_connection_setup_timeout_ms(mut self, ms: i64) -> Self {
            self.client = self.client.socket_connection_setup_timeout_ms(ms);
            self
        }
        /// `max_in_flight_requests_per_connection`: see [`ClientConfigBuilder::max_in_flight_requests_per_connection`](crate::ClientConfigBuilder::max_in_flight_requests_per_connection).
        pub fn max_in_flight_requests_per_connection(mut self, n: i64) -> Self {
            self.client = self.client.max_in_flight_requests_per_connection(n);
            self
        }
        /// `receive_message_max_bytes`: see [`ClientConfigBuilder::receive_message_max_bytes`](crate::ClientConfigBuilder::receive_message_max_bytes).
        pub fn receive_message_max_bytes(mut self, n: i64) -> Self {
            self.client = self.client.receive_message_max_bytes(n);
            self
        }
        /// `api_version`: see [`ClientConfigBuilder::api_version`](crate::ClientConfigBuilder::api_version).
        pub fn api_version(mut self, version: impl Into<String>) -> Self {
            self.client = self.client.api_version(version);
            self
        }
        /// `security_protocol`: see [`ClientConfigBuilder::security_protocol`](crate::ClientConfigBuilder::security_protocol).
        pub fn security_protocol(mut self, protocol: impl Into<String>) -> Self {
            self.client = self.client.security_protocol(protocol);
            self
        }
        /// `sasl_mechanism`: see [`ClientConfigBuilder::sasl_mechanism`](crate::ClientConfigBuilder::sasl_mechanism).
        pub fn sasl_mechanism(mut self, mechanism: impl Into<String>) -> Self {
            self.client = self.client.sasl_mechanism(mechanism);
            self
        }
        /// `sasl_plain_username`: see [`ClientConfigBuilder::sasl_plain_username`](crate::ClientConfigBuilder::sasl_plain_username).
        pub fn sasl_plain_username(mut self, username: impl Into<String>) -> Self {
            self.client = self.client.sasl_plain_username(username);
            self
        }
        /// `sasl_plain_password`: see [`ClientConfigBuilder::sasl_plain_password`](crate::ClientConfigBuilder::sasl_plain_password).
        pub fn sasl_plain_password(mut self, password: impl Into<String>) -> Self {
            self.client = self.client.sasl_plain_password(password);
            self
        }
        /// `sasl_oauth_token_provider`: see [`ClientConfigBuilder::sasl_oauth_token_provider`](crate::ClientConfigBuilder::sasl_oauth_token_provider).
        pub fn sasl_oauth_token_provider(
            mut self,
            provider: impl crate::OAuthBearerTokenProvider + 'static,
        ) -> Self {
            self.client = self.client.sasl_oauth_token_provider(provider);
            self
        }
        /// `ssl_cafile`: see [`ClientConfigBuilder::ssl_cafile`](crate::ClientConfigBuilder::ssl_cafile).
        pub fn ssl_cafile(mut self, path: impl AsRef<std::path::Path>) -> Self {
            self.client = self.client.ssl_cafile(path);
            self
        }
        /// `ssl_certfile`: see [`ClientConfigBuilder::ssl_certfile`](crate::ClientConfigBuilder::ssl_certfile).
        pub fn ssl_certfile(mut self, path: impl AsRef<std::path::Path>) -> Self {
            self.client = self.client.ssl_certfile(path);
            self
        }
        /// `ssl_keyfile`: see [`ClientConfigBuilder::ssl_keyfile`](crate::ClientConfigBuilder::ssl_keyfile).
        pub fn ssl_keyfile(mut self, path: impl AsRef<std::path::Path>) -> Self {
            self.client = self.client.ssl_keyfile(path);
            self
        }
        /// `ssl_password`: see [`ClientConfigBuilder::ssl_password`](crate::ClientConfigBuilder::ssl_password).
        pub fn ssl_password(mut self, password: impl Into<String>) -> Self {
            self.client = self.client.ssl_password(password);
            self
        }
        /// `ssl_crlfile`: see [`ClientConfigBuilder::ssl_crlfile`](crate::ClientConfigBuilder::ssl_crlfile).
        pub fn ssl_crlfile(mut self, path: impl AsRef<std::path::Path>) -> Self {
            self.client = self.client.ssl_crlfile(path);
            self
        }
        /// `ssl_check_hostname`: see [`ClientConfigBuilder::ssl_check_hostname`](crate::ClientConfigBuilder::ssl_check_hostname).
        pub fn ssl_check_hostname(mut self, check: bool) -> Self {
            self.client = self.client.ssl_check_hostname(check);
            self
        }
        /// `ssl_ciphers`: see [`ClientConfigBuilder::ssl_ciphers`](crate::ClientConfigBuilder::ssl_ciphers).
        pub fn ssl_ciphers(mut self, ciphers: impl Into<String>) -> Self {
            self.client = self.client.ssl_ciphers(ciphers);
            self
        }
        /// `ssl_context`: see [`ClientConfigBuilder::ssl_context`](crate::ClientConfigBuilder::ssl_context).
        #[cfg(feature = "tls")]
        pub fn ssl_context(mut self, config: std::sync::Arc<rustls::ClientConfig>) -> Self {
            self.client = self.client.ssl_context(config);
            self
        }
    };
}
pub(crate) use client_options;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses() {
        assert_eq!(
            BrokerAddress::parse("k1").unwrap(),
            BrokerAddress::new("k1", 9092)
        );
        assert_eq!(
            BrokerAddress::parse(" k1:19092 ").unwrap(),
            BrokerAddress::new("k1", 19092)
        );
        assert_eq!(
            BrokerAddress::parse("[::1]:9093").unwrap(),
            BrokerAddress::new("::1", 9093)
        );
        assert_eq!(
            BrokerAddress::parse("::1").unwrap(),
            BrokerAddress::new("::1", 9092)
        );
        assert_eq!(
            BrokerAddress::parse("PLAINTEXT://h:1").unwrap(),
            BrokerAddress::new("h", 1)
        );
        assert_eq!(
            BrokerAddress::parse("SSL://h:9093").unwrap(),
            BrokerAddress::new("h", 9093)
        );
        for bad in ["", "h:0", "h:x", "h:70000", ":9092", "[::1"] {
            let e = BrokerAddress::parse(bad).unwrap_err();
            assert!(e.to_string().contains("bootstrap_servers"), "{bad}: {e}");
        }
        assert_eq!(BrokerAddress::parse_list("a, b:1,").unwrap().len(), 2);
        assert!(BrokerAddress::parse_list(" , ").is_err());
        assert_eq!(BrokerAddress::new("::1", 1).to_string(), "[::1]:1");
    }

    #[test]
    fn defaults_match_kafka_python() {
        let c = ClientConfig::builder().build().unwrap();
        assert_eq!(c.request_timeout, Duration::from_millis(30_000));
        assert_eq!(c.metadata_max_age, Duration::from_millis(300_000));
        assert_eq!(c.retry_backoff, Duration::from_millis(100));
        assert_eq!(c.reconnect_backoff, Duration::from_millis(50));
        assert_eq!(c.reconnect_backoff_max, Duration::from_millis(1_000));
        assert_eq!(c.connections_max_idle, Some(Duration::from_millis(540_000)));
        assert_eq!(c.max_in_flight_requests_per_connection, 5);
        assert_eq!(
            c.bootstrap_servers,
            vec![BrokerAddress::new("localhost", 9092)]
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases: Vec<(ClientConfigBuilder, &str)> = vec![
            (
                ClientConfig::builder().request_timeout_ms(0),
                "request_timeout_ms",
            ),
            (
                ClientConfig::builder().retry_backoff_ms(-5),
                "retry_backoff_ms",
            ),
            (
                ClientConfig::builder()
                    .reconnect_backoff_ms(500)
                    .reconnect_backoff_max_ms(100),
                "reconnect_backoff_max_ms",
            ),
            (
                ClientConfig::builder().connections_max_idle_ms(0),
                "connections_max_idle_ms",
            ),
            (
                ClientConfig::builder().max_in_flight_requests_per_connection(0),
                "max_in_flight_requests_per_connection",
            ),
            (
                ClientConfig::builder().receive_message_max_bytes(10),
                "receive_message_max_bytes",
            ),
            (ClientConfig::builder().api_version("two"), "api_version"),
            (ClientConfig::builder().api_version("0.9"), "api_version"),
            (
                ClientConfig::builder().security_protocol("SASL_GSSAPI"),
                "security_protocol",
            ),
            (
                ClientConfig::builder().bootstrap_servers(""),
                "bootstrap_servers",
            ),
        ];
        for (b, key) in cases {
            let e = b.build().unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Config);
            assert!(e.to_string().contains(&format!("`{key}`")), "{key}: {e}");
        }
        let c = ClientConfig::builder()
            .connections_max_idle_ms(-1)
            .api_version("2.8")
            .build()
            .unwrap();
        assert_eq!(c.connections_max_idle, None);
        assert_eq!(c.api_version, Some((2, 8, 0)));
    }

    #[test]
    fn sasl_settings_build_and_hide_the_password() {
        let b = ClientConfig::builder()
            .security_protocol("sasl_plaintext")
            .sasl_mechanism("PLAIN")
            .sasl_plain_username("alice")
            .sasl_plain_password("pw-that-must-not-show");
        assert!(!format!("{b:?}").contains("pw-that-must-not-show"));
        let c = b.build().unwrap();
        assert_eq!(c.security_protocol(), SecurityProtocol::SaslPlaintext);
        assert_eq!(c.sasl_mechanism(), Some(crate::SaslMechanism::Plain));
        assert!(!format!("{c:?}").contains("pw-that-must-not-show"));
        let e = ClientConfig::builder()
            .sasl_plain_password("pw-that-must-not-show")
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("`sasl_plain_password`"), "{e}");
        assert!(!e.to_string().contains("pw-that-must-not-show"), "{e}");
    }
}
