//! The handle to one broker connection: a channel into its I/O thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::RwLock;

use super::sasl::SaslConfig;
use super::transport::Transport;
use crate::bytes::Bytes;
use crate::config::{BrokerAddress, ClientConfig};
use crate::error::{Error, ErrorKind, Result};
use crate::protocol::{encode_request, BrokerVersions, Decoder, Message, Request};

/// Everything a connection needs to know, fixed at creation.
pub(crate) struct ConnectionOptions {
    pub(crate) addr: BrokerAddress,
    pub(crate) client_id: String,
    pub(crate) request_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) reconnect_backoff: Duration,
    pub(crate) reconnect_backoff_max: Duration,
    pub(crate) max_idle: Option<Duration>,
    pub(crate) max_in_flight: usize,
    pub(crate) max_frame: usize,
    /// `api_version`: the Kafka release whose API versions to assume when
    /// the broker refuses ApiVersions.
    pub(crate) api_version: Option<(u16, u16, u16)>,
    pub(crate) transport: Arc<dyn Transport>,
    /// The SASL login after ApiVersions, when `security_protocol` asks.
    pub(crate) sasl: Option<SaslConfig>,
}

impl ConnectionOptions {
    /// Options for `addr` from the shared client config.
    pub(crate) fn from_config(
        config: &ClientConfig,
        addr: BrokerAddress,
        transport: Arc<dyn Transport>,
    ) -> ConnectionOptions {
        ConnectionOptions {
            addr,
            client_id: config.client_id.clone(),
            request_timeout: config.request_timeout,
            connect_timeout: config.connection_setup_timeout,
            reconnect_backoff: config.reconnect_backoff,
            reconnect_backoff_max: config.reconnect_backoff_max,
            max_idle: config.connections_max_idle,
            max_in_flight: config.max_in_flight_requests_per_connection,
            max_frame: config.receive_message_max_bytes,
            api_version: config.api_version,
            transport,
            sasl: config.sasl.clone(),
        }
    }
}

/// State shared between the handle and its I/O threads.
pub(crate) struct Shared {
    pub(crate) opts: ConnectionOptions,
    pub(crate) name: String,
    pub(crate) versions: RwLock<Option<Arc<BrokerVersions>>>,
    pub(crate) connected: AtomicBool,
}

/// An answer (or failure) for one call, tagged with the caller's token.
#[derive(Debug)]
pub(crate) struct Completion {
    /// The token the caller chose when submitting.
    pub(crate) token: u64,
    /// The response body (after the response header), or why there is none.
    pub(crate) result: Result<Bytes>,
}

/// Where a call's answer goes. Dropping an unanswered `Reply` answers it
/// with a `Disconnected` error, so no caller ever waits for a call that a
/// dying thread forgot.
pub(crate) struct Reply {
    target: Option<Target>,
    token: u64,
}

/// A channel the caller waits on, or work run where the answer is.
enum Target {
    Channel(Sender<Completion>),
    Run(Box<dyn FnOnce(Completion) + Send>),
}

impl Reply {
    pub(crate) fn new(tx: Sender<Completion>, token: u64) -> Reply {
        Reply {
            target: Some(Target::Channel(tx)),
            token,
        }
    }

    /// A reply that runs `f` with the answer on the thread that has it:
    /// the connection's reader thread (or the writer, or whoever drops the
    /// call unanswered), saving the hand-off to a waiting thread. `f` holds
    /// up every later answer of the connection, so it must be short and
    /// never block; it must not take a lock its caller holds while
    /// submitting (a call refused at once is answered on that thread).
    pub(crate) fn run(token: u64, f: impl FnOnce(Completion) + Send + 'static) -> Reply {
        Reply {
            target: Some(Target::Run(Box::new(f))),
            token,
        }
    }

    pub(crate) fn complete(mut self, result: Result<Bytes>) {
        self.deliver(result);
    }

    fn deliver(&mut self, result: Result<Bytes>) {
        let c = Completion {
            token: self.token,
            result,
        };
        match self.target.take() {
            Some(Target::Channel(tx)) => {
                let _ = tx.send(c);
            }
            Some(Target::Run(f)) => f(c),
            None => {}
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if self.target.is_some() {
            self.deliver(Err(Error::new(
                ErrorKind::Disconnected,
                "the connection closed before the request was answered",
            )));
        }
    }
}

/// One request on its way to the I/O thread.
pub(crate) struct Call {
    /// The frame (its start, when `tail` is not empty); bytes 8..12 (the
    /// correlation id) are filled in by the writer thread.
    pub(crate) frame: Vec<u8>,
    /// The rest of the frame, written after `frame` with vectored writes:
    /// lets a produce request send its record batches without copying them.
    pub(crate) tail: Vec<FramePart>,
    /// The response header version, or `None` when the broker sends no
    /// answer (produce with acks=0).
    pub(crate) response_header_version: Option<i16>,
    /// How long after it is written the answer may take.
    pub(crate) timeout: Duration,
    pub(crate) reply: Reply,
}

/// A piece of a request frame after its first part.
pub(crate) enum FramePart {
    /// Bytes shared with the caller (a record batch).
    Shared(Bytes),
    /// Bytes owned by the frame.
    Owned(Vec<u8>),
}

impl FramePart {
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            FramePart::Shared(b) => b,
            FramePart::Owned(v) => v,
        }
    }
}

/// Commands for the writer thread.
pub(crate) enum Cmd {
    Call(Call),
    Connect(Reply),
    Close,
}

/// A handle to one broker connection, served by its own I/O threads.
///
/// Cheap to clone; the threads stop when the last handle is dropped or
/// [`close`](Connection::close) is called.
#[derive(Clone)]
pub(crate) struct Connection {
    tx: Sender<Cmd>,
    shared: Arc<Shared>,
}

impl Connection {
    /// Starts the I/O thread (it connects on the first call).
    pub(crate) fn spawn(opts: ConnectionOptions, name: String) -> Result<Connection> {
        let shared = Arc::new(Shared {
            opts,
            name,
            versions: RwLock::new(None),
            connected: AtomicBool::new(false),
        });
        let (tx, rx): (Sender<Cmd>, Receiver<Cmd>) = crossbeam_channel::unbounded();
        let s = Arc::clone(&shared);
        std::thread::Builder::new()
            .name(format!("kafka-io-{}", shared.name))
            .spawn(move || super::io::run_writer(s, rx))
            .map_err(|e| Error::io("spawning a connection thread", e))?;
        Ok(Connection { tx, shared })
    }

    /// The broker address.
    pub(crate) fn addr(&self) -> &BrokerAddress {
        &self.shared.opts.addr
    }

    /// Whether a socket is open right now.
    pub(crate) fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Acquire)
    }

    /// How long a blocking caller waits at most for the I/O thread, beyond
    /// the request's own timeout: connecting, the handshake and a backoff.
    fn slack(&self) -> Duration {
        let o = &self.shared.opts;
        o.connect_timeout * 2 + o.reconnect_backoff_max + Duration::from_secs(1)
    }

    /// The broker's API versions, connecting first if need be.
    pub(crate) fn versions(&self) -> Result<Arc<BrokerVersions>> {
        if let Some(v) = self.shared.versions.read().as_ref() {
            return Ok(Arc::clone(v));
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.tx
            .send(Cmd::Connect(Reply::new(tx, 0)))
            .map_err(|_| self.gone())?;
        match rx.recv_timeout(self.slack()) {
            Ok(c) => c.result?,
            Err(_) => return Err(self.stuck("connecting")),
        };
        self.shared
            .versions
            .read()
            .as_ref()
            .map(Arc::clone)
            .ok_or_else(|| Error::new(ErrorKind::Disconnected, "connection lost after handshake"))
    }

    /// The broker's API versions when a handshake has completed at least
    /// once, without any I/O (the fetcher uses it to stay non-blocking).
    pub(crate) fn known_versions(&self) -> Option<Arc<BrokerVersions>> {
        self.shared.versions.read().as_ref().map(Arc::clone)
    }

    /// Starts connecting (and the handshake) without waiting: `reply`
    /// completes with an empty body once connected, or with the failure.
    pub(crate) fn connect_async(&self, reply: Reply) -> Result<()> {
        self.tx.send(Cmd::Connect(reply)).map_err(|_| self.gone())
    }

    /// Encodes `request` in the negotiated version (or `version` when
    /// given) and queues it; the answer goes to `reply`. Returns the version
    /// used, which the caller needs to decode the answer.
    pub(crate) fn submit<R: Request>(
        &self,
        request: &R,
        version: Option<i16>,
        expect_response: bool,
        timeout: Duration,
        reply: Reply,
    ) -> Result<i16> {
        self.submit_sized(request, version, expect_response, timeout, reply, 128)
    }

    /// [`submit`](Connection::submit) with the encoded size known roughly in
    /// advance (a produce request carrying megabytes of batches), so the
    /// frame buffer is allocated once instead of doubling its way up.
    pub(crate) fn submit_sized<R: Request>(
        &self,
        request: &R,
        version: Option<i16>,
        expect_response: bool,
        timeout: Duration,
        reply: Reply,
        capacity: usize,
    ) -> Result<i16> {
        let version = match version {
            Some(v) => v,
            None => self.versions()?.negotiate::<R>()?,
        };
        let mut frame = Vec::with_capacity(capacity);
        encode_request(
            &mut frame,
            request,
            version,
            0,
            Some(&self.shared.opts.client_id),
        )?;
        self.submit_frame(
            frame,
            expect_response.then(|| R::response_header_version(version)),
            timeout,
            reply,
        )?;
        Ok(version)
    }

    /// Queues an already-encoded frame.
    pub(crate) fn submit_frame(
        &self,
        frame: Vec<u8>,
        response_header_version: Option<i16>,
        timeout: Duration,
        reply: Reply,
    ) -> Result<()> {
        self.submit_parts(frame, Vec::new(), response_header_version, timeout, reply)
    }

    /// Queues a frame given as a first part (header included) and further
    /// parts written after it without being copied together.
    pub(crate) fn submit_parts(
        &self,
        frame: Vec<u8>,
        tail: Vec<FramePart>,
        response_header_version: Option<i16>,
        timeout: Duration,
        reply: Reply,
    ) -> Result<()> {
        self.tx
            .send(Cmd::Call(Call {
                frame,
                tail,
                response_header_version,
                timeout,
                reply,
            }))
            .map_err(|_| self.gone())
    }

    /// Sends `request` and waits for the answer (request_timeout_ms).
    pub(crate) fn send<R: Request>(&self, request: &R) -> Result<R::Response> {
        self.send_with_timeout(request, self.shared.opts.request_timeout)
    }

    /// Sends `request` and waits up to `timeout` (after it is written) for
    /// the answer.
    pub(crate) fn send_with_timeout<R: Request>(
        &self,
        request: &R,
        timeout: Duration,
    ) -> Result<R::Response> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let version = self.submit(request, None, true, timeout, Reply::new(tx, 0))?;
        let body = match rx.recv_timeout(timeout + self.slack()) {
            Ok(c) => c.result?,
            Err(_) => return Err(self.stuck(R::API_KEY.name())),
        };
        decode_response::<R>(&body, version)
    }

    /// Negotiates the version, lets `build` make the request for it (for
    /// requests whose fields depend on the version), sends it and waits up
    /// to `timeout` for the answer.
    pub(crate) fn send_versioned<R: Request>(
        &self,
        timeout: Duration,
        build: impl FnOnce(i16) -> R,
    ) -> Result<R::Response> {
        let version = self.versions()?.negotiate::<R>()?;
        let request = build(version);
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.submit(&request, Some(version), true, timeout, Reply::new(tx, 0))?;
        let body = match rx.recv_timeout(timeout + self.slack()) {
            Ok(c) => c.result?,
            Err(_) => return Err(self.stuck(R::API_KEY.name())),
        };
        decode_response::<R>(&body, version)
    }

    /// Stops the I/O threads; pending calls fail with `Closed`/`Disconnected`.
    pub(crate) fn close(&self) {
        let _ = self.tx.send(Cmd::Close);
    }

    fn gone(&self) -> Error {
        Error::new(
            ErrorKind::Disconnected,
            format!(
                "the connection to broker {} has been closed",
                self.shared.opts.addr
            ),
        )
    }

    fn stuck(&self, what: &str) -> Error {
        Error::timeout(format!(
            "{what} on the connection to broker {} did not finish in time",
            self.shared.opts.addr
        ))
    }
}

/// Decodes a response body for request type `R` in `version`, rejecting
/// trailing bytes.
pub(crate) fn decode_response<R: Request>(body: &Bytes, version: i16) -> Result<R::Response> {
    let mut d = Decoder::new(body);
    let r = <R::Response as Message>::decode(&mut d, version).map_err(|e| {
        e.context(format_args!(
            "decoding a {} v{version} response",
            R::API_KEY
        ))
    })?;
    // Named lazily: this runs for every answer.
    d.finish(format_args!("a {} v{version} response", R::API_KEY))?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn a_run_reply_runs_once_with_the_answer_or_with_disconnected_when_dropped() {
        let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let calls = Arc::new(AtomicUsize::new(0));
        let mk = |token| {
            let (seen, calls) = (Arc::clone(&seen), Arc::clone(&calls));
            Reply::run(token, move |c: Completion| {
                calls.fetch_add(1, Ordering::SeqCst);
                let r = c.result.map(|b| b.to_vec()).map_err(|e| e.kind());
                seen.lock().push((c.token, r));
            })
        };
        mk(7).complete(Ok(Bytes::from(vec![1u8, 2])));
        drop(mk(8));
        // Answered on another thread, as a reader thread does.
        let r = mk(9);
        std::thread::spawn(move || r.complete(Err(Error::protocol("bad"))))
            .join()
            .ok();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        let seen = seen.lock();
        assert_eq!(seen[0], (7, Ok(vec![1, 2])));
        assert_eq!(seen[1], (8, Err(ErrorKind::Disconnected)));
        assert_eq!(seen[2].0, 9);
        assert_eq!(seen[2].1, Err(ErrorKind::Protocol));
    }

    #[test]
    fn a_channel_reply_dropped_unanswered_still_answers() {
        let (tx, rx) = crossbeam_channel::unbounded();
        drop(Reply::new(tx, 3));
        let c = rx.try_recv().map_err(|_| "no completion");
        assert!(
            matches!(c, Ok(Completion { token: 3, result: Err(ref e) }) if e.kind() == ErrorKind::Disconnected)
        );
    }
}
