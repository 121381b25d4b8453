//! [`TlsFront`]: a TLS-terminating front for the local broker (feature
//! `testkit-tls`), so TLS setups can be tested without a TLS-capable broker.
//!
//! The front listens on 127.0.0.1, terminates TLS with certificates it
//! generates at start (a CA, a server certificate, a client certificate),
//! and forwards the plaintext bytes to a Tansu broker it starts advertising
//! the front's address: every byte of every connection, bootstrap and
//! broker alike, goes through TLS. It does not parse Kafka; it guarantees
//! only that what reaches the broker is exactly what a client sent over a
//! verified TLS session, and that nothing reaches the broker from a client
//! whose handshake failed.

use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, RevocationReason, RevokedCertParams,
    SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;

use super::LocalBroker;
use crate::error::{Error, ErrorKind, Result};
use crate::net::tls::{handshake, provider, split};

/// Options of a [`TlsFront`].
#[derive(Debug, Clone)]
pub struct TlsFrontBuilder {
    names: Vec<String>,
    expired: bool,
    require_client_cert: bool,
    tls12_only: bool,
    key_update_every: usize,
}

impl Default for TlsFrontBuilder {
    fn default() -> TlsFrontBuilder {
        TlsFrontBuilder {
            names: vec!["localhost".into(), "127.0.0.1".into()],
            expired: false,
            require_client_cert: false,
            tls12_only: false,
            key_update_every: 0,
        }
    }
}

impl TlsFrontBuilder {
    /// The names (DNS names or IP addresses) the server certificate is
    /// valid for (default `localhost` and `127.0.0.1`). Clients connect to
    /// `localhost`, so leaving it out makes a name mismatch.
    pub fn server_names<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.names = names.into_iter().map(Into::into).collect();
        self
    }

    /// Serve a certificate that expired in 2001.
    pub fn expired_certificate(mut self) -> Self {
        self.expired = true;
        self
    }

    /// Require a client certificate signed by the front's CA (mTLS).
    pub fn require_client_cert(mut self) -> Self {
        self.require_client_cert = true;
        self
    }

    /// Speak TLS 1.2 only (default: 1.3 and 1.2).
    pub fn tls12_only(mut self) -> Self {
        self.tls12_only = true;
        self
    }

    /// After every `n` broker-to-client writes, send a TLS 1.3 KeyUpdate
    /// that asks the client to update its keys too (0 = never).
    pub fn key_update_every(mut self, n: usize) -> Self {
        self.key_update_every = n;
        self
    }

    /// Starts the front and a local broker behind it, advertising the
    /// front's address (ignores `KAFKA_BOOTSTRAP_SERVERS`: an external
    /// broker's advertised address cannot be changed).
    pub fn start(self) -> Result<TlsFront> {
        let mut front = self.listen()?;
        let broker = LocalBroker::start_advertising(&front.bootstrap)?;
        front.set_upstream(broker.bootstrap_servers())?;
        front.broker = Some(broker);
        Ok(front)
    }

    /// Starts the front forwarding to `upstream` (`host:port`), with no
    /// broker of its own.
    pub fn start_in_front_of(self, upstream: &str) -> Result<TlsFront> {
        let front = self.listen()?;
        front.set_upstream(upstream)?;
        Ok(front)
    }

    fn listen(self) -> Result<TlsFront> {
        let certs = Certs::generate(&self)?;
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| Error::io("binding the TLS front on 127.0.0.1", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("the TLS front's address", e))?;
        let dir = std::env::temp_dir().join(format!(
            "kafka-blocking-tls-{}-{}",
            std::process::id(),
            addr.port()
        ));
        fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        for (name, text) in [
            ("ca.pem", &certs.ca_pem),
            ("client.pem", &certs.client_pem),
            ("client.key", &certs.client_key_pem),
            ("revoked.crl", &certs.crl_pem),
        ] {
            let p = dir.join(name);
            fs::write(&p, text).map_err(|e| Error::io(format!("writing {}", p.display()), e))?;
        }
        let shared = Arc::new(FrontShared::default());
        let (sh, cfg) = (Arc::clone(&shared), Arc::clone(&certs.server_config));
        let every = self.key_update_every;
        let accept = std::thread::Builder::new()
            .name("tls-front-accept".into())
            .spawn(move || {
                for client in listener.incoming() {
                    if sh.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let (sh2, cfg2) = (Arc::clone(&sh), Arc::clone(&cfg));
                    let _ = std::thread::Builder::new()
                        .name("tls-front-conn".into())
                        .spawn(move || serve(client, &cfg2, &sh2, every));
                }
            })
            .map_err(|e| Error::io("spawning the TLS front", e))?;
        Ok(TlsFront {
            addr,
            bootstrap: format!("localhost:{}", addr.port()),
            dir,
            ca_pem: certs.ca_pem,
            client_key: certs.client_key_der,
            shared,
            accept: Some(accept),
            broker: None,
        })
    }
}

/// A TLS-terminating front (see the module docs). Stops, and kills its
/// broker, on drop.
///
/// ```no_run
/// # fn main() -> kafka_blocking::Result<()> {
/// use kafka_blocking::testkit::TlsFront;
/// use kafka_blocking::{Client, ClientConfig};
///
/// let front = TlsFront::builder().start()?;
/// let client = Client::new(
///     ClientConfig::builder()
///         .bootstrap_servers(front.bootstrap_servers())
///         .security_protocol("SSL")
///         .ssl_cafile(front.ca_file())
///         .build()?,
/// )?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct TlsFront {
    addr: SocketAddr,
    bootstrap: String,
    dir: PathBuf,
    ca_pem: String,
    client_key: Vec<u8>,
    shared: Arc<FrontShared>,
    accept: Option<JoinHandle<()>>,
    broker: Option<LocalBroker>,
}

#[derive(Debug, Default)]
struct FrontShared {
    upstream: Mutex<Option<SocketAddr>>,
    stop: AtomicBool,
    conns: Mutex<Vec<TcpStream>>,
    handshakes: AtomicUsize,
    failed_handshakes: AtomicUsize,
    client_bytes: AtomicU64,
    key_updates: AtomicUsize,
    /// The cipher suite of each completed handshake, in order.
    suites: Mutex<Vec<String>>,
}

impl TlsFront {
    /// The options, with defaults.
    pub fn builder() -> TlsFrontBuilder {
        TlsFrontBuilder::default()
    }

    /// `localhost:<port>`: the `bootstrap_servers` for clients.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// The front's socket address (127.0.0.1).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The CA certificate (PEM) that signed the server and client
    /// certificates.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A file holding [`ca_pem`](TlsFront::ca_pem), for `ssl_cafile`.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A client certificate signed by the CA, for `ssl_certfile`.
    pub fn client_cert_file(&self) -> PathBuf {
        self.dir.join("client.pem")
    }

    /// The client certificate's key (unencrypted PKCS#8), for `ssl_keyfile`.
    pub fn client_key_file(&self) -> PathBuf {
        self.dir.join("client.key")
    }

    /// The client key encrypted with `password` (PKCS#8, PBES2 with
    /// PBKDF2-SHA256 and AES-256-CBC), for `ssl_keyfile` + `ssl_password`.
    pub fn encrypted_client_key_file(&self, password: &str) -> Result<PathBuf> {
        let info = pkcs8::PrivateKeyInfo::try_from(self.client_key.as_slice())
            .map_err(|e| Error::new(ErrorKind::Tls, format!("reading the client key: {e}")))?;
        let params = pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(
            10_000,
            b"kafka-blocking-salt",
            b"kafka-blockingiv",
        )
        .map_err(|e| Error::new(ErrorKind::Tls, format!("encryption parameters: {e}")))?;
        let doc = info
            .encrypt_with_params(params, password)
            .map_err(|e| Error::new(ErrorKind::Tls, format!("encrypting the client key: {e}")))?;
        let pem = doc
            .to_pem("ENCRYPTED PRIVATE KEY", pkcs8::LineEnding::LF)
            .map_err(|e| Error::new(ErrorKind::Tls, format!("encoding the client key: {e}")))?;
        let p = self.dir.join("client-encrypted.key");
        fs::write(&p, pem.as_bytes())
            .map_err(|e| Error::io(format!("writing {}", p.display()), e))?;
        Ok(p)
    }

    /// A certificate revocation list (PEM) from the CA that revokes the
    /// front's server certificate, for `ssl_crlfile`.
    pub fn revoking_crl_file(&self) -> PathBuf {
        self.dir.join("revoked.crl")
    }

    /// The broker behind the front, when the front started one.
    pub fn broker(&self) -> Option<&LocalBroker> {
        self.broker.as_ref()
    }

    /// TLS handshakes that completed so far.
    pub fn handshakes(&self) -> usize {
        self.shared.handshakes.load(Ordering::SeqCst)
    }

    /// TLS handshakes that failed so far (nothing was forwarded for them).
    pub fn failed_handshakes(&self) -> usize {
        self.shared.failed_handshakes.load(Ordering::SeqCst)
    }

    /// The cipher suite (rustls' name, e.g. `TLS13_AES_128_GCM_SHA256`)
    /// each completed handshake agreed on, oldest first: what a client's
    /// `ssl_ciphers` led to.
    pub fn negotiated_cipher_suites(&self) -> Vec<String> {
        self.shared
            .suites
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// TLS 1.3 KeyUpdates sent (see [`TlsFrontBuilder::key_update_every`]).
    pub fn key_updates(&self) -> usize {
        self.shared.key_updates.load(Ordering::SeqCst)
    }

    /// Plaintext bytes received from clients and forwarded to the broker.
    pub fn client_bytes(&self) -> u64 {
        self.shared.client_bytes.load(Ordering::SeqCst)
    }

    fn set_upstream(&self, upstream: &str) -> Result<()> {
        let sa: SocketAddr = upstream.parse().map_err(|_| {
            Error::invalid_argument(format!("TLS front upstream `{upstream}` is not an ip:port"))
        })?;
        if let Ok(mut u) = self.shared.upstream.lock() {
            *u = Some(sa);
        }
        Ok(())
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Ok(mut conns) = self.shared.conns.lock() {
            for s in conns.drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

struct Certs {
    server_config: Arc<rustls::ServerConfig>,
    ca_pem: String,
    client_pem: String,
    client_key_pem: String,
    client_key_der: Vec<u8>,
    crl_pem: String,
}

fn cert_error(e: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::Tls,
        format!("generating the TLS front's certificates: {e}"),
    )
}

impl Certs {
    fn generate(o: &TlsFrontBuilder) -> Result<Certs> {
        let ca_key = KeyPair::generate().map_err(cert_error)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(cert_error)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // A name of its own, as real CAs have: two fronts' CAs are told
        // apart by name (an unknown issuer), not by a failing signature.
        static N: AtomicUsize = AtomicUsize::new(0);
        ca_params.distinguished_name.push(
            DnType::CommonName,
            format!(
                "kafka-blocking test CA {}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ),
        );
        let ca = ca_params.self_signed(&ca_key).map_err(cert_error)?;

        let server_key = KeyPair::generate().map_err(cert_error)?;
        let mut server_params = CertificateParams::new(o.names.clone()).map_err(cert_error)?;
        server_params
            .distinguished_name
            .push(DnType::CommonName, "kafka-blocking test broker");
        server_params.serial_number = Some(SerialNumber::from(7u64));
        if o.expired {
            server_params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            server_params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let server = server_params
            .signed_by(&server_key, &ca, &ca_key)
            .map_err(cert_error)?;

        let client_key = KeyPair::generate().map_err(cert_error)?;
        let mut client_params =
            CertificateParams::new(vec!["kafka-client".to_owned()]).map_err(cert_error)?;
        client_params
            .distinguished_name
            .push(DnType::CommonName, "kafka-client");
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client = client_params
            .signed_by(&client_key, &ca, &ca_key)
            .map_err(cert_error)?;

        let crl = CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2024, 1, 1),
            next_update: rcgen::date_time_ymd(2099, 1, 1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: vec![RevokedCertParams {
                serial_number: SerialNumber::from(7u64),
                revocation_time: rcgen::date_time_ymd(2024, 1, 1),
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            }],
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&ca, &ca_key)
        .map_err(cert_error)?;

        let provider = provider();
        let versions: &[&rustls::SupportedProtocolVersion] = if o.tls12_only {
            &[&rustls::version::TLS12]
        } else {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        };
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(versions)
            .map_err(cert_error)?;
        let builder = if o.require_client_cert {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.der().clone()).map_err(cert_error)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(cert_error)?;
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let chain: Vec<CertificateDer<'static>> = vec![server.der().clone(), ca.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
        let server_config = builder.with_single_cert(chain, key).map_err(cert_error)?;
        Ok(Certs {
            server_config: Arc::new(server_config),
            ca_pem: ca.pem(),
            client_pem: client.pem(),
            client_key_pem: client_key.serialize_pem(),
            client_key_der: client_key.serialize_der(),
            crl_pem: crl.pem().map_err(cert_error)?,
        })
    }
}

/// One client connection: handshake, then pump both ways until either
/// side closes.
fn serve(client: TcpStream, cfg: &Arc<rustls::ServerConfig>, sh: &Arc<FrontShared>, every: usize) {
    let Ok(conn) = rustls::ServerConnection::new(Arc::clone(cfg)) else {
        return;
    };
    let mut conn = rustls::Connection::Server(conn);
    let _ = client.set_nodelay(true);
    if let Ok(c) = client.try_clone() {
        if let Ok(mut conns) = sh.conns.lock() {
            conns.push(c);
        }
    }
    if let Err(e) = handshake(&mut conn, &client, Instant::now() + Duration::from_secs(10)) {
        log::debug!("TLS front: handshake failed: {e}");
        sh.failed_handshakes.fetch_add(1, Ordering::SeqCst);
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    if let (Some(suite), Ok(mut suites)) = (conn.negotiated_cipher_suite(), sh.suites.lock()) {
        suites.push(format!("{:?}", suite.suite()));
    }
    sh.handshakes.fetch_add(1, Ordering::SeqCst);
    let upstream = sh.upstream.lock().ok().and_then(|u| *u);
    let Some(server) =
        upstream.and_then(|u| TcpStream::connect_timeout(&u, Duration::from_secs(5)).ok())
    else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = server.set_nodelay(true);
    let _ = client.set_read_timeout(None);
    let _ = client.set_write_timeout(Some(Duration::from_secs(30)));
    let (Ok(server2), Ok(client2)) = (server.try_clone(), client.try_clone()) else {
        return;
    };
    if let Ok(mut conns) = sh.conns.lock() {
        if let Ok(s) = server.try_clone() {
            conns.push(s);
        }
    }
    let Ok((mut tls_r, mut tls_w)) = split(conn, client, "a client".into(), String::new()) else {
        return;
    };
    // Client → broker.
    let sh2 = Arc::clone(sh);
    let up = std::thread::Builder::new()
        .name("tls-front-up".into())
        .spawn(move || {
            let mut server = server2;
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = tls_r.read(&mut buf) {
                if n == 0 || server.write_all(&buf[..n]).is_err() {
                    break;
                }
                sh2.client_bytes.fetch_add(n as u64, Ordering::SeqCst);
            }
            let _ = server.shutdown(Shutdown::Both);
            let _ = client2.shutdown(Shutdown::Both);
        });
    // Broker → client.
    let mut server = server;
    let mut buf = vec![0u8; 64 * 1024];
    let mut writes = 0usize;
    while let Ok(n) = server.read(&mut buf) {
        if n == 0 || tls_w.write_all(&buf[..n]).is_err() {
            break;
        }
        writes += 1;
        if every > 0 && writes % every == 0 {
            // TLS 1.2 has no KeyUpdate; the option is a no-op there.
            if tls_w.request_key_update().is_ok() {
                sh.key_updates.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
    crate::net::transport::WriteHalf::shutdown(&tls_w);
    let _ = server.shutdown(Shutdown::Both);
    if let Ok(t) = up {
        let _ = t.join();
    }
}
