//! [`SaslFront`]: a SASL listener in front of a real broker, so a SASL
//! client can be tested against the local Tansu (which has no SASL).
//!
//! The front answers ApiVersions from the broker with SaslHandshake and
//! SaslAuthenticate added, performs the server side of PLAIN,
//! SCRAM-SHA-256/512 (feature `scram`) and OAUTHBEARER (unsecured JWTs, as
//! Kafka's unsecured validator), and once a client has logged in passes its
//! requests to the broker and the answers back, in order. Like a Kafka
//! broker it closes a connection that sends anything but ApiVersions or
//! SASL before logging in, that fails the login, or that sends a request
//! after its session (`session_lifetime`) ended without re-authenticating
//! (KIP-368). Everything binds 127.0.0.1 and stops on drop.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender};

use super::LocalBroker;
use crate::bytes::Bytes;
use crate::error::{Error, Result};
use crate::net::sasl::base64;
use crate::protocol::messages::api_versions_response::ApiVersion;
use crate::protocol::messages::{
    ApiVersionsResponse, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use crate::protocol::{
    ApiKey, Decoder, ErrorCode, Message, Request, RequestHeader, ResponseHeader,
};
use crate::SaslMechanism;

#[cfg(feature = "scram")]
use super::scram_server::{Credential, ScramServer, Sha, Step};

/// Counters a test can check.
#[derive(Debug, Default)]
pub struct SaslFrontStats {
    /// Successful logins, first ones and re-authentications.
    pub logins: AtomicUsize,
    /// Logins on a connection that was already logged in (KIP-368).
    pub reauthentications: AtomicUsize,
    /// Failed logins.
    pub failures: AtomicUsize,
    /// Connections closed because a request came after the session ended.
    pub expired: AtomicUsize,
}

/// Configures a [`SaslFront`].
#[derive(Debug, Clone)]
pub struct SaslFrontBuilder {
    users: HashMap<String, String>,
    mechanisms: Vec<SaslMechanism>,
    session_lifetime: Option<Duration>,
    bad_server_signature: bool,
    pre_1_0: bool,
    stall_logins: bool,
}

impl Default for SaslFrontBuilder {
    fn default() -> SaslFrontBuilder {
        SaslFrontBuilder {
            users: HashMap::new(),
            mechanisms: vec![
                SaslMechanism::Plain,
                #[cfg(feature = "scram")]
                SaslMechanism::ScramSha256,
                #[cfg(feature = "scram")]
                SaslMechanism::ScramSha512,
                SaslMechanism::OAuthBearer,
            ],
            session_lifetime: None,
            bad_server_signature: false,
            pre_1_0: false,
            stall_logins: false,
        }
    }
}

impl SaslFrontBuilder {
    /// Adds a user for PLAIN and SCRAM.
    pub fn user(mut self, name: impl Into<String>, password: impl Into<String>) -> Self {
        self.users.insert(name.into(), password.into());
        self
    }

    /// The mechanisms enabled (default: all this build supports).
    pub fn mechanisms(mut self, mechanisms: &[SaslMechanism]) -> Self {
        self.mechanisms = mechanisms.to_vec();
        self
    }

    /// Sessions end after this (Kafka's `connections.max.reauth.ms`); an
    /// OAUTHBEARER session also ends when its token expires.
    pub fn session_lifetime(mut self, lifetime: Duration) -> Self {
        self.session_lifetime = Some(lifetime);
        self
    }

    /// Sends a SCRAM server signature that does not verify (a server that
    /// does not know the password): the client must refuse it.
    pub fn bad_server_signature(mut self, on: bool) -> Self {
        self.bad_server_signature = on;
        self
    }

    /// Behaves as a broker older than 1.0: offers SaslHandshake v0 only
    /// and no SaslAuthenticate, so clients send raw tokens after the
    /// handshake (and a failed login just closes the connection).
    pub fn pre_1_0(mut self, on: bool) -> Self {
        self.pre_1_0 = on;
        self
    }

    /// Never answers SaslAuthenticate (a broker stuck mid-login): the
    /// client must give up within `socket_connection_setup_timeout_ms`.
    pub fn stall_logins(mut self, on: bool) -> Self {
        self.stall_logins = on;
        self
    }

    /// Starts a local broker (Tansu) advertising the front's address, and
    /// the front before it.
    pub fn start(self) -> Result<SaslFront> {
        let mut front = self.bind()?;
        let broker = LocalBroker::start_advertising(&front.addr.to_string())?;
        front.set_upstream(broker.bootstrap_servers())?;
        front.broker = Some(broker);
        Ok(front)
    }

    /// Starts the front before an already running broker at `upstream`
    /// (whose advertised address is not changed: good for tests that never
    /// get past the login).
    pub fn start_in_front_of(self, upstream: &str) -> Result<SaslFront> {
        let front = self.bind()?;
        front.set_upstream(upstream)?;
        Ok(front)
    }

    /// Starts listening without an upstream yet: connections made before
    /// [`SaslFront::set_upstream`] are closed at once. For chains whose
    /// broker must advertise another front's address (SASL_SSL: a TLS
    /// front before this one).
    pub fn bind(self) -> Result<SaslFront> {
        let listener =
            TcpListener::bind("127.0.0.1:0").map_err(|e| Error::io("binding the SASL front", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("binding the SASL front", e))?;
        let shared = Arc::new(FrontShared {
            users: Mutex::new(self.users.clone()),
            config: self,
            upstream: Mutex::new(None),
            stats: Arc::new(SaslFrontStats::default()),
            stop: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
        });
        let s = Arc::clone(&shared);
        let accept = std::thread::Builder::new()
            .name("sasl-front".into())
            .spawn(move || accept_loop(listener, s))
            .map_err(|e| Error::io("spawning the SASL front", e))?;
        Ok(SaslFront {
            addr,
            shared,
            accept: Some(accept),
            broker: None,
        })
    }
}

struct FrontShared {
    config: SaslFrontBuilder,
    /// The users now (they can change while the front runs).
    users: Mutex<HashMap<String, String>>,
    upstream: Mutex<Option<SocketAddr>>,
    stats: Arc<SaslFrontStats>,
    stop: AtomicBool,
    conns: Mutex<Vec<TcpStream>>,
}

/// A SASL listener on 127.0.0.1 in front of a broker. See the module docs.
///
/// ```no_run
/// # #[cfg(feature = "testkit")]
/// # fn main() -> kafka_blocking::Result<()> {
/// use kafka_blocking::testkit::SaslFront;
/// use kafka_blocking::ClientConfig;
///
/// let front = SaslFront::builder().user("alice", "alice-secret").start()?;
/// let config = ClientConfig::builder()
///     .bootstrap_servers(front.bootstrap_servers())
///     .security_protocol("SASL_PLAINTEXT")
///     .sasl_mechanism("PLAIN")
///     .sasl_plain_username("alice")
///     .sasl_plain_password("alice-secret")
///     .build()?;
/// # let _ = config;
/// # Ok(())
/// # }
/// # #[cfg(not(feature = "testkit"))]
/// # fn main() {}
/// ```
pub struct SaslFront {
    addr: SocketAddr,
    shared: Arc<FrontShared>,
    accept: Option<JoinHandle<()>>,
    broker: Option<LocalBroker>,
}

impl std::fmt::Debug for SaslFront {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslFront")
            .field("addr", &self.addr)
            .field("stats", &self.shared.stats)
            .finish()
    }
}

impl SaslFront {
    /// A builder with no users and every mechanism enabled.
    pub fn builder() -> SaslFrontBuilder {
        SaslFrontBuilder::default()
    }

    /// The `bootstrap_servers` to give SASL clients.
    pub fn bootstrap_servers(&self) -> String {
        self.addr.to_string()
    }

    /// The broker's own (plaintext) address behind the front.
    pub fn upstream(&self) -> Option<String> {
        self.shared
            .upstream
            .lock()
            .ok()
            .and_then(|u| u.map(|a| a.to_string()))
    }

    /// What the front has seen so far.
    pub fn stats(&self) -> &SaslFrontStats {
        &self.shared.stats
    }

    /// Adds a user or changes its password while the front runs (a
    /// password rotation): logins and re-authentications from now on use it.
    pub fn set_user(&self, name: impl Into<String>, password: impl Into<String>) {
        if let Ok(mut users) = self.shared.users.lock() {
            users.insert(name.into(), password.into());
        }
    }

    /// Where to forward logged-in connections (an `IP:port`).
    pub fn set_upstream(&self, upstream: &str) -> Result<()> {
        let addr: SocketAddr = upstream
            .parse()
            .map_err(|_| Error::config("upstream", format!("`{upstream}` is not an IP:port")))?;
        if let Ok(mut u) = self.shared.upstream.lock() {
            *u = Some(addr);
        }
        Ok(())
    }
}

impl Drop for SaslFront {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Ok(mut conns) = self.shared.conns.lock() {
            for c in conns.drain(..) {
                let _ = c.shutdown(Shutdown::Both);
            }
        }
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<FrontShared>) {
    for client in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(client) = client else { continue };
        let upstream = shared.upstream.lock().ok().and_then(|u| *u);
        let Some(upstream) = upstream else { continue };
        let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(5)) else {
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        if let (Ok(mut conns), Ok(c), Ok(s)) =
            (shared.conns.lock(), client.try_clone(), server.try_clone())
        {
            conns.retain(|c| c.peer_addr().is_ok());
            conns.push(c);
            conns.push(s);
        }
        let s = Arc::clone(&shared);
        std::thread::spawn(move || serve(client, server, &s));
    }
}

/// What the response writer sends next, in request order.
enum Slot {
    /// Bytes made here (a whole frame, length included).
    Local(Vec<u8>),
    /// The broker's next answer; `Some((v, pre_1_0))`: an ApiVersions v`v`
    /// answer to extend with the SASL APIs.
    Upstream(Option<(i16, bool)>),
    /// Close the connection.
    Close,
}

fn serve(client: TcpStream, server: TcpStream, shared: &Arc<FrontShared>) {
    let (tx, rx) = crossbeam_channel::unbounded::<Slot>();
    let (Ok(client_w), Ok(server_r)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let writer = std::thread::spawn(move || write_answers(rx, client_w, server_r));
    let mut conn = Conn {
        client,
        server,
        tx,
        shared: Arc::clone(shared),
        session: None,
        mechanism: None,
        legacy: false,
        logged_in_before: false,
    };
    let _ = conn.run();
    let _ = conn.tx.send(Slot::Close);
    drop(conn);
    let _ = writer.join();
}

fn write_answers(rx: Receiver<Slot>, mut client: TcpStream, mut server: TcpStream) {
    for slot in rx {
        let ok = match slot {
            Slot::Local(bytes) => client.write_all(&bytes).is_ok(),
            Slot::Upstream(patch) => match read_frame(&mut server) {
                Some(frame) => {
                    let frame = match patch {
                        Some((v, pre_1_0)) => add_sasl_apis(frame, v, pre_1_0),
                        None => frame,
                    };
                    client.write_all(&framed(&frame)).is_ok()
                }
                None => false,
            },
            Slot::Close => false,
        };
        if !ok {
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
}

fn read_frame(r: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).ok()?;
    let len = i32::from_be_bytes(len);
    if !(0..=(256 << 20)).contains(&len) {
        return None;
    }
    let mut buf = vec![0u8; len as usize];
    r.read_exact(&mut buf).ok()?;
    Some(buf)
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&(body.len() as i32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Adds SaslHandshake v0–1 and SaslAuthenticate v0–2 (or SaslHandshake v0
/// alone, `pre_1_0`) to an ApiVersions answer (leaving an error answer
/// alone).
fn add_sasl_apis(frame: Vec<u8>, version: i16, pre_1_0: bool) -> Vec<u8> {
    let bytes = Bytes::from(frame.clone());
    let mut d = Decoder::new(&bytes);
    let patched = (|| -> Result<Vec<u8>> {
        let header = ResponseHeader::decode(&mut d, 0)?;
        let mut r = ApiVersionsResponse::decode(&mut d, version)?;
        if r.error_code != 0 {
            return Ok(frame.clone());
        }
        r.api_keys.retain(|k| {
            k.api_key != ApiKey::SASL_HANDSHAKE.0 && k.api_key != ApiKey::SASL_AUTHENTICATE.0
        });
        let apis: &[(ApiKey, i16)] = if pre_1_0 {
            &[(ApiKey::SASL_HANDSHAKE, 0)]
        } else {
            &[(ApiKey::SASL_HANDSHAKE, 1), (ApiKey::SASL_AUTHENTICATE, 2)]
        };
        for &(key, max) in apis {
            r.api_keys.push(ApiVersion {
                api_key: key.0,
                min_version: 0,
                max_version: max,
                ..Default::default()
            });
        }
        r.api_keys.sort_by_key(|k| k.api_key);
        let mut out = Vec::with_capacity(frame.len() + 32);
        header.encode(&mut out, 0)?;
        r.encode(&mut out, version)?;
        Ok(out)
    })();
    patched.unwrap_or(frame)
}

/// The server side of one mechanism in progress.
enum ServerMech {
    Plain,
    #[cfg(feature = "scram")]
    Scram(ScramServer),
    OAuth {
        failed: Option<String>,
    },
}

/// One client connection.
struct Conn {
    client: TcpStream,
    server: TcpStream,
    tx: Sender<Slot>,
    shared: Arc<FrontShared>,
    /// `Some(end)` once logged in; `end` is `None` for endless sessions.
    session: Option<Option<Instant>>,
    mechanism: Option<(SaslMechanism, ServerMech)>,
    legacy: bool,
    logged_in_before: bool,
}

/// The outcome of one mechanism step.
enum Outcome {
    Continue(Vec<u8>),
    Done {
        answer: Vec<u8>,
        lifetime: Option<Duration>,
    },
    Fail(String),
}

impl Conn {
    fn run(&mut self) -> Option<()> {
        loop {
            let frame = read_frame(&mut self.client)?;
            if self.legacy {
                // After SaslHandshake v0: raw tokens, no headers.
                match self.step(&frame) {
                    Outcome::Continue(b) => self.send(Slot::Local(framed(&b)))?,
                    Outcome::Done { answer, .. } => {
                        self.legacy = false;
                        self.send(Slot::Local(framed(&answer)))?;
                    }
                    Outcome::Fail(_) => return None,
                }
                continue;
            }
            if frame.len() < 8 {
                return None;
            }
            let key = i16::from_be_bytes([frame[0], frame[1]]);
            let version = i16::from_be_bytes([frame[2], frame[3]]);
            let bytes = Bytes::from(frame.clone());
            match ApiKey(key) {
                ApiKey::API_VERSIONS => {
                    self.server.write_all(&framed(&frame)).ok()?;
                    let patch = (ApiVersionsResponse::MIN_VERSION
                        ..=ApiVersionsResponse::MAX_VERSION)
                        .contains(&version)
                        .then_some((version, self.shared.config.pre_1_0));
                    self.send(Slot::Upstream(patch))?;
                }
                ApiKey::SASL_HANDSHAKE => self.handshake(&bytes, version)?,
                ApiKey::SASL_AUTHENTICATE if self.shared.config.stall_logins => {}
                ApiKey::SASL_AUTHENTICATE => self.authenticate(&bytes, version)?,
                _ => match self.session {
                    None => return None,
                    Some(Some(end)) if Instant::now() >= end => {
                        self.shared.stats.expired.fetch_add(1, Ordering::SeqCst);
                        return None;
                    }
                    Some(_) => {
                        self.server.write_all(&framed(&frame)).ok()?;
                        self.send(Slot::Upstream(None))?;
                    }
                },
            }
        }
    }

    fn send(&self, slot: Slot) -> Option<()> {
        self.tx.send(slot).ok()
    }

    fn handshake(&mut self, bytes: &Bytes, version: i16) -> Option<()> {
        let mut d = Decoder::new(bytes);
        let header = RequestHeader::decode(
            &mut d,
            SaslHandshakeRequest::request_header_version(version),
        )
        .ok()?;
        let request = SaslHandshakeRequest::decode(&mut d, version).ok()?;
        let enabled = &self.shared.config.mechanisms;
        let mut response = SaslHandshakeResponse {
            mechanisms: enabled.iter().map(|m| m.name().to_owned()).collect(),
            ..Default::default()
        };
        let chosen = enabled
            .iter()
            .copied()
            .find(|m| m.name() == request.mechanism);
        match chosen {
            Some(m) => {
                self.mechanism = Some((m, self.server_mech(m)));
                self.legacy = version == 0;
            }
            None => response.error_code = ErrorCode::UNSUPPORTED_SASL_MECHANISM.0,
        }
        let out = answer::<SaslHandshakeRequest>(header.correlation_id, version, &response)?;
        self.send(Slot::Local(out))?;
        if chosen.is_none() {
            self.send(Slot::Close)?;
        }
        Some(())
    }

    fn server_mech(&self, m: SaslMechanism) -> ServerMech {
        match m {
            #[cfg(feature = "scram")]
            SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512 => {
                let sha = if m == SaslMechanism::ScramSha256 {
                    Sha::S256
                } else {
                    Sha::S512
                };
                let mut nonce = [0u8; 18];
                let _ = getrandom::getrandom(&mut nonce);
                ServerMech::Scram(ScramServer::new(
                    sha,
                    base64::encode(&nonce),
                    self.shared.config.bad_server_signature,
                ))
            }
            SaslMechanism::OAuthBearer => ServerMech::OAuth { failed: None },
            _ => ServerMech::Plain,
        }
    }

    fn authenticate(&mut self, bytes: &Bytes, version: i16) -> Option<()> {
        let mut d = Decoder::new(bytes);
        let header = RequestHeader::decode(
            &mut d,
            SaslAuthenticateRequest::request_header_version(version),
        )
        .ok()?;
        let request = SaslAuthenticateRequest::decode(&mut d, version).ok()?;
        let mut response = SaslAuthenticateResponse::default();
        let mut close = false;
        match self.step(&request.auth_bytes) {
            Outcome::Continue(b) => response.auth_bytes = b.into(),
            Outcome::Done { answer, lifetime } => {
                response.auth_bytes = answer.into();
                response.session_lifetime_ms = lifetime.map_or(0, |l| l.as_millis() as i64);
            }
            Outcome::Fail(why) => {
                response.error_code = ErrorCode::SASL_AUTHENTICATION_FAILED.0;
                response.error_message = Some(why);
                close = true;
            }
        }
        let out = answer::<SaslAuthenticateRequest>(header.correlation_id, version, &response)?;
        self.send(Slot::Local(out))?;
        if close {
            self.send(Slot::Close)?;
            return None;
        }
        Some(())
    }

    /// Runs the chosen mechanism on one client message.
    fn step(&mut self, msg: &[u8]) -> Outcome {
        let config = &self.shared.config;
        let users = match self.shared.users.lock() {
            Ok(u) => u.clone(),
            Err(_) => HashMap::new(),
        };
        let Some((_name, mech)) = self.mechanism.as_mut() else {
            return Outcome::Fail("SaslAuthenticate before SaslHandshake".into());
        };
        let result = match mech {
            ServerMech::Plain => {
                let parts: Vec<&[u8]> = msg.split(|b| *b == 0).collect();
                let known = match parts.as_slice() {
                    [_, user, pass] => users
                        .get(String::from_utf8_lossy(user).as_ref())
                        .is_some_and(|p| p.as_bytes() == *pass),
                    _ => false,
                };
                if known {
                    Outcome::Done {
                        answer: Vec::new(),
                        lifetime: None,
                    }
                } else {
                    Outcome::Fail("Authentication failed: Invalid username or password".into())
                }
            }
            #[cfg(feature = "scram")]
            ServerMech::Scram(s) => {
                let sha = if *_name == SaslMechanism::ScramSha256 {
                    Sha::S256
                } else {
                    Sha::S512
                };
                let lookup = |u: &str| -> Option<Credential> {
                    users
                        .get(u)
                        .map(|p| Credential::new(sha, p, format!("salt-{u}").into_bytes(), 4096))
                };
                match s.step(msg, &lookup) {
                    Step::Continue(b) => Outcome::Continue(b),
                    Step::Done(b, _) => Outcome::Done {
                        answer: b,
                        lifetime: None,
                    },
                    Step::Fail(why) => Outcome::Fail(why),
                }
            }
            ServerMech::OAuth { failed } => {
                if let Some(why) = failed.take() {
                    // The client acknowledged the error challenge.
                    Outcome::Fail(why)
                } else {
                    match check_unsecured_jwt(msg) {
                        Ok(expires) => Outcome::Done {
                            answer: Vec::new(),
                            lifetime: Some(expires),
                        },
                        Err(why) => {
                            *failed = Some(format!("Authentication failed: {why}"));
                            Outcome::Continue(br#"{"status":"invalid_token"}"#.to_vec())
                        }
                    }
                }
            }
        };
        match result {
            Outcome::Done { answer, lifetime } => {
                let lifetime = match (config.session_lifetime, lifetime) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (Some(a), None) => Some(a),
                    // An OAUTHBEARER token's expiry ends the session only
                    // when sessions are bounded at all (as Kafka).
                    (None, _) => None,
                };
                let stats = &self.shared.stats;
                stats.logins.fetch_add(1, Ordering::SeqCst);
                if self.logged_in_before {
                    stats.reauthentications.fetch_add(1, Ordering::SeqCst);
                }
                self.logged_in_before = true;
                self.session = Some(lifetime.map(|l| Instant::now() + l));
                self.mechanism = None;
                Outcome::Done { answer, lifetime }
            }
            Outcome::Fail(why) => {
                self.shared.stats.failures.fetch_add(1, Ordering::SeqCst);
                Outcome::Fail(why)
            }
            c => c,
        }
    }
}

/// Encodes `response` as the answer to an `R` request.
fn answer<R: Request>(
    correlation_id: i32,
    version: i16,
    response: &R::Response,
) -> Option<Vec<u8>> {
    let mut body = Vec::with_capacity(64);
    ResponseHeader {
        correlation_id,
        ..Default::default()
    }
    .encode(&mut body, R::response_header_version(version))
    .ok()?;
    response.encode(&mut body, version).ok()?;
    Some(framed(&body))
}

/// Checks an OAUTHBEARER client message carrying an unsecured JWT (as
/// Kafka's unsecured validator): returns how long the token is still valid.
fn check_unsecured_jwt(msg: &[u8]) -> std::result::Result<Duration, String> {
    let text = String::from_utf8_lossy(msg);
    let token = text
        .split('\x01')
        .find_map(|kv| kv.strip_prefix("auth=Bearer "))
        .ok_or("no bearer token")?;
    let payload = token.split('.').nth(1).ok_or("not a JWT")?;
    let mut b64 = payload.replace('-', "+").replace('_', "/");
    while b64.len() % 4 != 0 {
        b64.push('=');
    }
    let claims = base64::decode(&b64).ok_or("the JWT payload is not base64url")?;
    let claims = String::from_utf8_lossy(&claims);
    let exp: f64 = claims
        .split("\"exp\":")
        .nth(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect::<String>()
        })
        .and_then(|n| n.parse().ok())
        .ok_or("the JWT has no exp claim")?;
    if !claims.contains("\"sub\":") {
        return Err("the JWT has no sub claim".into());
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    if exp <= now {
        return Err(format!("the token expired {:.0} s ago", now - exp));
    }
    Ok(Duration::from_secs_f64(exp - now))
}
