//! The two threads behind a connection.
//!
//! The **writer** thread owns the connection's lifecycle: it receives calls
//! from the handle's channel, connects (with backoff) and runs the
//! handshake when needed, assigns correlation ids, registers each call that
//! expects an answer with the reader, and writes the bytes. It stops taking
//! calls while `max_in_flight` answers are outstanding.
//!
//! The **reader** thread reads frames, matches each to the oldest
//! outstanding call (Kafka answers in order on a connection), checks the
//! correlation id and hands the body to the call's reply channel. It also
//! enforces deadlines: when the oldest call's deadline passes, every pending
//! call fails and the connection is closed, as the Java client does. When
//! the connection dies for any reason, every pending call fails at once with
//! a retriable error.//!
//! **Re-authentication** (KIP-368): when the SASL login said the session
//! ends, the writer re-authenticates before it does. At 85–95 % of the
//! session it stops taking calls, lets the answers in flight drain, sends
//! SaslHandshake and SaslAuthenticate as ordinary calls through the reader,
//! and then takes calls again: nothing is failed or reordered. A broker
//! that refuses the login closes the connection, and the next call logs in
//! afresh (and gets the authentication error if that fails too).

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, Sender};

use super::backoff::Backoff;
use super::connection::{decode_response, Call, Cmd, FramePart, Reply, Shared};
use super::handshake;
use super::sasl::{self, Session};
use super::transport::{ReadHalf, WriteHalf};
use crate::bytes::Bytes;
use crate::error::{Error, ErrorKind, Result};
use crate::protocol::{encode_request, Decoder, Request, ResponseHeader};

/// The longest a reader sleeps in one read before re-checking deadlines.
const READER_TICK: Duration = Duration::from_millis(250);
/// How often an idle writer checks `connections_max_idle_ms`.
const WRITER_TICK: Duration = Duration::from_millis(500);

/// A call registered with the reader, waiting for its answer.
pub(crate) struct Pending {
    correlation_id: i32,
    header_version: i16,
    deadline: Instant,
    reply: Reply,
}

/// What the reader tells the writer.
pub(crate) enum ReaderEvent {
    /// An answer was delivered on connection generation `gen` while the
    /// writer had `max_in_flight` calls out (it may take calls again). Sent
    /// only then: a wake-up of the writer per answer cost a context switch
    /// on every request.
    Done { gen: u64 },
    /// Connection generation `gen` is gone.
    Died { gen: u64 },
}

struct Live {
    writer: Box<dyn WriteHalf>,
    pending_tx: Sender<Pending>,
    load: Arc<Load>,
    /// When to re-authenticate (KIP-368), if the SASL session ends.
    reauth_at: Option<Instant>,
}

/// What the writer and the reader of one connection share: the calls
/// written and not yet answered, counted by the writer before it registers
/// a call and by the reader when it delivers the answer.
#[derive(Default)]
pub(crate) struct Load {
    in_flight: AtomicUsize,
    /// Answers delivered so far (the writer's idle check notices activity).
    answers: AtomicU64,
    /// Set by the reader when it gives the connection up, before it fails
    /// the calls still waiting: a caller that got such a failure and sends
    /// again at once must not be written into the dead socket while the
    /// reader's `Died` event is still on its way to the writer.
    dead: AtomicBool,
}

impl Live {
    fn in_flight(&self) -> usize {
        self.load.in_flight.load(Ordering::Acquire)
    }

    fn reauth_due(&self, now: Instant) -> bool {
        self.reauth_at.is_some_and(|at| at <= now)
    }
}

/// When to re-authenticate a session of `lifetime` that began at `now`:
/// at a random point between 85 % and 95 % of it, as the Java client, so
/// connections made together do not all pause together.
fn reauth_time(now: Instant, session: Session) -> Option<Instant> {
    use std::hash::{BuildHasher, Hasher};
    let lifetime = session.lifetime?;
    let r = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let factor = 0.85 + (r % 1000) as f64 / 10_000.0;
    Some(now + lifetime.mul_f64(factor))
}

/// How often a writer whose re-authentication is due checks whether the
/// answers in flight have drained (the reader signals only a writer at its
/// in-flight limit).
const DRAIN_TICK: Duration = Duration::from_millis(5);

/// Runs the writer loop until every handle is dropped.
pub(crate) fn run_writer(shared: Arc<Shared>, cmds: Receiver<Cmd>) {
    let opts = &shared.opts;
    let (ev_tx, ev_rx) = crossbeam_channel::unbounded::<ReaderEvent>();
    let mut live: Option<Live> = None;
    let mut answers_seen = 0u64;
    let mut backoff = Backoff::new(opts.reconnect_backoff, opts.reconnect_backoff_max);
    let mut gen = 0u64;
    let mut correlation_id = 0i32;
    let mut last_active = Instant::now();
    let mut auth_failure: Option<Error> = None;

    loop {
        let now = Instant::now();
        let reauth_due = live.as_ref().is_some_and(|l| l.reauth_due(now));
        if reauth_due && live.as_ref().is_some_and(|l| l.in_flight() == 0) {
            if let Some(l) = live.as_mut() {
                if let Err(e) = reauthenticate(&shared, l, &mut correlation_id) {
                    log::warn!(
                        "{}: re-authentication failed ({e}); closing the connection",
                        shared.name
                    );
                    l.writer.shutdown();
                    live = None;
                    shared.connected.store(false, Ordering::Release);
                    backoff.fail(Instant::now());
                }
            }
            continue;
        }
        let accept_calls = live
            .as_ref()
            .map_or(true, |l| l.in_flight() < opts.max_in_flight && !reauth_due);
        // Wake up in time to re-authenticate; once it is due, check often
        // whether the answers in flight have drained.
        let wait = match live.as_ref().and_then(|l| l.reauth_at) {
            Some(_) if reauth_due => DRAIN_TICK,
            Some(at) => at.saturating_duration_since(now).min(WRITER_TICK),
            None => WRITER_TICK,
        };
        let event = if accept_calls {
            select! {
                recv(cmds) -> m => Event::Cmd(m.ok()),
                recv(ev_rx) -> e => Event::Reader(e.ok()),
                default(wait) => Event::Tick,
            }
        } else {
            select! {
                recv(ev_rx) -> e => Event::Reader(e.ok()),
                default(wait) => Event::Tick,
            }
        };
        let now = Instant::now();
        match event {
            Event::Cmd(None) | Event::Cmd(Some(Cmd::Close)) => {
                if let Some(l) = live.take() {
                    l.writer.shutdown();
                }
                shared.connected.store(false, Ordering::Release);
                // Fail whatever is still queued behind the close.
                while let Ok(cmd) = cmds.try_recv() {
                    if let Cmd::Call(call) = cmd {
                        call.reply.complete(Err(closed_error(&shared)));
                    } else if let Cmd::Connect(reply) = cmd {
                        reply.complete(Err(closed_error(&shared)));
                    }
                }
                return;
            }
            Event::Cmd(Some(Cmd::Connect(reply))) => {
                let r = ensure_live(
                    &shared,
                    &mut live,
                    &mut backoff,
                    &mut gen,
                    &ev_tx,
                    &mut auth_failure,
                )
                .map(|_| Bytes::new());
                reply.complete(r);
                last_active = now;
            }
            Event::Cmd(Some(Cmd::Call(call))) => {
                last_active = now;
                if let Err(e) = ensure_live(
                    &shared,
                    &mut live,
                    &mut backoff,
                    &mut gen,
                    &ev_tx,
                    &mut auth_failure,
                ) {
                    call.reply.complete(Err(e));
                    continue;
                }
                let Some(l) = live.as_mut() else {
                    continue;
                };
                correlation_id = correlation_id.wrapping_add(1).max(1);
                if let Err(dead) = write_call(l, call, correlation_id) {
                    log::debug!("{}: write failed: {dead}", shared.name);
                    l.writer.shutdown();
                    live = None;
                    shared.connected.store(false, Ordering::Release);
                    backoff.fail(Instant::now());
                }
            }
            Event::Reader(Some(ReaderEvent::Done { gen: g })) => {
                if g == gen {
                    last_active = now;
                }
            }
            Event::Reader(Some(ReaderEvent::Died { gen: g })) => {
                if g == gen {
                    if let Some(l) = live.take() {
                        l.writer.shutdown();
                        backoff.fail(now);
                    }
                    shared.connected.store(false, Ordering::Release);
                }
            }
            Event::Reader(None) => {}
            Event::Tick => {
                if let (Some(idle), Some(l)) = (opts.max_idle, live.as_ref()) {
                    // Answers do not wake the writer: notice them here.
                    let answers = l.load.answers.load(Ordering::Acquire);
                    if answers != answers_seen {
                        answers_seen = answers;
                        last_active = now;
                    }
                    if l.in_flight() == 0 && now.duration_since(last_active) >= idle {
                        log::debug!("{}: closing idle connection", shared.name);
                        if let Some(l) = live.take() {
                            l.writer.shutdown();
                        }
                        shared.connected.store(false, Ordering::Release);
                    }
                }
            }
        }
    }
}

enum Event {
    Cmd(Option<Cmd>),
    Reader(Option<ReaderEvent>),
    Tick,
}

fn closed_error(shared: &Shared) -> Error {
    // Retriable: the client closes connections to brokers that left the
    // metadata or moved; a request caught in that can go elsewhere.
    Error::new(
        ErrorKind::Disconnected,
        format!(
            "the connection to broker {} was closed by this client",
            shared.opts.addr
        ),
    )
}

/// Writes one call. `Err` means the connection is dead (the call has been
/// answered or handed to the reader, which fails it).
fn write_call(l: &mut Live, mut call: Call, correlation_id: i32) -> io::Result<()> {
    if call.frame.len() < 12 {
        call.reply
            .complete(Err(Error::protocol("request frame shorter than a header")));
        return Ok(());
    }
    call.frame[8..12].copy_from_slice(&correlation_id.to_be_bytes());
    match call.response_header_version {
        Some(header_version) => {
            let pending = Pending {
                correlation_id,
                header_version,
                deadline: Instant::now() + call.timeout,
                reply: call.reply,
            };
            // Counted before the reader can see the call, so its count
            // never goes below zero.
            l.load.in_flight.fetch_add(1, Ordering::AcqRel);
            if let Err(back) = l.pending_tx.send(pending) {
                // The reader is gone: the connection died a moment ago.
                back.0.reply.complete(Err(Error::new(
                    ErrorKind::Disconnected,
                    "the connection closed before the request could be sent",
                )));
                return Err(io::Error::new(io::ErrorKind::BrokenPipe, "reader gone"));
            }
            // On failure the reader sees the socket close and fails the call.
            write_frame(&mut l.writer, &call.frame, &call.tail)
        }
        None => {
            let r = write_frame(&mut l.writer, &call.frame, &call.tail);
            match &r {
                Ok(()) => call.reply.complete(Ok(Bytes::new())),
                Err(e) => call.reply.complete(Err(Error::new(
                    ErrorKind::Disconnected,
                    format!("writing to the broker failed: {e}"),
                ))),
            }
            r
        }
    }
}

/// Writes `first` then every part of `rest`, with vectored writes so a
/// request made of many record batches costs few system calls.
fn write_frame(w: &mut dyn io::Write, first: &[u8], rest: &[FramePart]) -> io::Result<()> {
    if rest.is_empty() {
        return w.write_all(first);
    }
    let bufs: Vec<&[u8]> = std::iter::once(first)
        .chain(rest.iter().map(FramePart::as_slice))
        .filter(|b| !b.is_empty())
        .collect();
    let (mut idx, mut off) = (0usize, 0usize);
    while idx < bufs.len() {
        let slices: Vec<io::IoSlice<'_>> = bufs[idx..]
            .iter()
            .take(64)
            .enumerate()
            .map(|(i, b)| io::IoSlice::new(if i == 0 { &b[off..] } else { b }))
            .collect();
        let n = match w.write_vectored(&slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        super::transport::advance(&bufs, &mut idx, &mut off, n);
    }
    Ok(())
}

/// Re-authenticates `l` (KIP-368) with SaslHandshake and SaslAuthenticate
/// sent as ordinary calls through the reader; the caller has drained the
/// calls in flight and takes no new ones until this returns.
fn reauthenticate(shared: &Shared, l: &mut Live, correlation_id: &mut i32) -> Result<()> {
    let opts = &shared.opts;
    let config = opts
        .sasl
        .as_ref()
        .ok_or_else(|| Error::protocol("re-authentication without SASL settings"))?;
    let versions = shared
        .versions
        .read()
        .clone()
        .ok_or_else(|| Error::protocol("re-authentication before the handshake"))?;
    log::debug!("{}: re-authenticating (KIP-368)", shared.name);
    let mut ex = ThroughReader {
        live: l,
        correlation_id,
        shared,
    };
    let session = sasl::authenticate(&mut ex, config, &versions, &opts.addr)?;
    l.reauth_at = reauth_time(Instant::now(), session);
    Ok(())
}

/// SASL requests written by the writer thread and answered through the
/// reader thread, like any other call.
struct ThroughReader<'a> {
    live: &'a mut Live,
    correlation_id: &'a mut i32,
    shared: &'a Shared,
}

impl sasl::Exchange for ThroughReader<'_> {
    fn call<R: Request>(&mut self, request: &R, version: i16) -> Result<R::Response> {
        let opts = &self.shared.opts;
        let mut frame = Vec::with_capacity(64);
        encode_request(&mut frame, request, version, 0, Some(&opts.client_id))?;
        let (tx, rx) = crossbeam_channel::bounded(1);
        let call = Call {
            frame,
            tail: Vec::new(),
            response_header_version: Some(R::response_header_version(version)),
            timeout: opts.request_timeout,
            reply: Reply::new(tx, 0),
        };
        *self.correlation_id = self.correlation_id.wrapping_add(1).max(1);
        if let Err(e) = write_call(self.live, call, *self.correlation_id) {
            return Err(Error::new(
                ErrorKind::Disconnected,
                format!("writing {} failed: {e}", R::API_KEY.name()),
            ));
        }
        // The reader answers or fails every call by its deadline.
        let body = match rx.recv_timeout(opts.request_timeout + READER_TICK * 4) {
            Ok(c) => c.result?,
            Err(_) => {
                return Err(Error::timeout(format!(
                    "{} during re-authentication got no answer",
                    R::API_KEY.name()
                )))
            }
        };
        decode_response::<R>(&body, version)
    }

    fn raw(&mut self, _token: &[u8]) -> Result<Vec<u8>> {
        // Sessions end only with SaslAuthenticate v1+, so re-authentication
        // never uses the pre-1.0 framing.
        Err(Error::protocol(
            "re-authentication needs SaslAuthenticate; the broker does not offer it",
        ))
    }
}

/// Connects (respecting the backoff) and runs the handshake unless already
/// connected. After an authentication failure, calls that come before the
/// backoff ends get that failure at once instead of waiting to repeat it.
fn ensure_live(
    shared: &Arc<Shared>,
    live: &mut Option<Live>,
    backoff: &mut Backoff,
    gen: &mut u64,
    ev_tx: &Sender<ReaderEvent>,
    auth_failure: &mut Option<Error>,
) -> Result<()> {
    if let Some(l) = live.as_ref() {
        if !l.load.dead.load(Ordering::Acquire) {
            return Ok(());
        }
        // The reader gave this connection up; its `Died` (same generation)
        // is ignored once a new connection is up.
        l.writer.shutdown();
        *live = None;
        shared.connected.store(false, Ordering::Release);
        backoff.fail(Instant::now());
    }
    let opts = &shared.opts;
    if let Some(at) = backoff.next_attempt() {
        let now = Instant::now();
        if at > now {
            if let Some(e) = auth_failure.as_ref() {
                return Err(e.clone());
            }
            std::thread::sleep(at - now);
        }
    }
    let deadline = Instant::now() + opts.connect_timeout;
    let result = opts
        .transport
        .connect(&opts.addr, opts.connect_timeout)
        .and_then(|mut stream| {
            let versions = handshake::run(&mut stream, opts, deadline)?;
            Ok((stream, versions))
        });
    let (mut stream, handshake) = match result {
        Ok(ok) => ok,
        Err(e) => {
            *auth_failure = (e.kind() == ErrorKind::Authentication).then(|| e.clone());
            let pause = backoff.fail(Instant::now());
            log::debug!(
                "{}: connect failed ({e}); next attempt in {} ms",
                shared.name,
                pause.as_millis()
            );
            return Err(e);
        }
    };
    backoff.reset();
    *auth_failure = None;
    let reauth_at = reauth_time(Instant::now(), handshake.session);
    if let Err(e) = stream.writer.set_write_timeout(Some(opts.request_timeout)) {
        return Err(Error::io("configuring the socket", e));
    }
    *shared.versions.write() = Some(Arc::new(handshake.versions));
    *gen += 1;
    let (pending_tx, pending_rx) = crossbeam_channel::unbounded::<Pending>();
    let reader = stream.reader;
    let ev = ev_tx.clone();
    let g = *gen;
    let max_frame = opts.max_frame;
    let load = Arc::new(Load::default());
    let reader_side = ReaderSide {
        ev_tx: ev,
        gen: g,
        load: Arc::clone(&load),
        max_in_flight: opts.max_in_flight,
        hint: opts.sasl.is_none().then_some(sasl::PLAINTEXT_HINT),
    };
    let spawned = std::thread::Builder::new()
        .name(format!("kafka-rd-{}", shared.name))
        .spawn(move || run_reader(reader, pending_rx, reader_side, max_frame));
    if let Err(e) = spawned {
        stream.writer.shutdown();
        return Err(Error::io("spawning a reader thread", e));
    }
    shared.connected.store(true, Ordering::Release);
    *live = Some(Live {
        writer: stream.writer,
        pending_tx,
        load,
        reauth_at,
    });
    Ok(())
}

/// How a reader reaches its writer.
struct ReaderSide {
    ev_tx: Sender<ReaderEvent>,
    gen: u64,
    load: Arc<Load>,
    max_in_flight: usize,
    /// Added to the failure when the broker hangs up before answering
    /// anything (a plaintext client at a SASL listener).
    hint: Option<&'static str>,
}

/// Reads answers until the connection dies or a deadline passes.
fn run_reader(
    mut r: Box<dyn ReadHalf>,
    pending_rx: Receiver<Pending>,
    side: ReaderSide,
    max_frame: usize,
) {
    let ReaderSide {
        ev_tx,
        gen,
        load,
        max_in_flight,
        hint,
    } = side;
    let mut queue: VecDeque<Pending> = VecDeque::new();
    let mut answered = 0u64;
    let mut frames = FrameReader::new(max_frame);
    let mut current_timeout = Duration::ZERO;
    let failure = loop {
        while let Ok(p) = pending_rx.try_recv() {
            queue.push_back(p);
        }
        let now = Instant::now();
        let want = match queue.front() {
            Some(p) if p.deadline <= now => {
                break Error::timeout(
                    "the broker did not answer within request_timeout_ms; the connection was closed and will be re-established",
                );
            }
            Some(p) => (p.deadline - now).min(READER_TICK),
            None => READER_TICK,
        }
        .max(Duration::from_millis(1));
        // Only touch the socket option when the wake-up must come sooner, or
        // the current one is far too short (saves a syscall per frame).
        if want < current_timeout || want > current_timeout * 4 || current_timeout.is_zero() {
            if let Err(e) = r.set_read_timeout(Some(want)) {
                break Error::io("configuring the socket", e);
            }
            current_timeout = want;
        }
        match frames.poll(&mut *r) {
            Ok(None) => continue,
            Ok(Some(frame)) => {
                let pending =
                    match queue.pop_front() {
                        Some(p) => p,
                        // The writer registers a call before writing it, so it
                        // is at most a moment behind.
                        None => match pending_rx.recv_timeout(Duration::from_secs(1)) {
                            Ok(p) => p,
                            Err(_) => break Error::protocol(
                                "the broker sent a response to no request; closing the connection",
                            ),
                        },
                    };
                match split_response(frame, pending.header_version) {
                    Ok((cid, body)) if cid == pending.correlation_id => {
                        answered += 1;
                        pending.reply.complete(Ok(body));
                        load.answers.fetch_add(1, Ordering::Release);
                        let before = load.in_flight.fetch_sub(1, Ordering::AcqRel);
                        // Only a writer at its limit waits for this.
                        if before >= max_in_flight && ev_tx.send(ReaderEvent::Done { gen }).is_err()
                        {
                            return;
                        }
                    }
                    Ok((cid, _)) => {
                        let e = Error::protocol(format!(
                            "response correlation id {cid} does not match the expected {}; closing the connection",
                            pending.correlation_id
                        ));
                        pending.reply.complete(Err(e.clone()));
                        break e;
                    }
                    Err(e) => {
                        pending.reply.complete(Err(e.clone()));
                        break e;
                    }
                }
            }
            Err(e) => break e,
        }
    };
    load.dead.store(true, Ordering::Release);
    let failure = match hint {
        Some(hint) if answered == 0 && failure.kind() == ErrorKind::Disconnected => {
            let message = if failure.message() == "the broker closed the connection" {
                hint.to_owned()
            } else {
                format!("{}: {hint}", failure.message())
            };
            Error::new(ErrorKind::Disconnected, message)
        }
        _ => failure,
    };
    // Everything still waiting fails now, retriably.
    let mut first = true;
    while let Some(p) = queue.pop_front().or_else(|| pending_rx.try_recv().ok()) {
        let e = if first && failure.kind() == ErrorKind::Timeout {
            failure.clone()
        } else {
            Error::new(
                ErrorKind::Disconnected,
                format!(
                    "the connection to the broker was lost before the answer arrived: {failure}"
                ),
            )
        };
        first = false;
        p.reply.complete(Err(e));
    }
    let _ = ev_tx.send(ReaderEvent::Died { gen });
}

/// Splits a response frame into its correlation id and body.
fn split_response(frame: Vec<u8>, header_version: i16) -> Result<(i32, Bytes)> {
    let frame = Bytes::from(frame);
    let mut d = Decoder::new(&frame);
    let header = ResponseHeader::decode(&mut d, header_version)?;
    let at = d.position();
    Ok((header.correlation_id, frame.slice(at..)))
}

/// Incremental frame reader that survives read timeouts mid-frame.
struct FrameReader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    body: Vec<u8>,
    want: Option<usize>,
    max: usize,
}

const READ_BUF: usize = 64 * 1024;
/// The most a frame's buffer is allocated ahead of its data (the length
/// comes off the wire).
const GROW_STEP: usize = 8 * 1024 * 1024;
/// The most read into a large frame's buffer per call: the buffer's pages
/// become resident as data arrives (never zero-filled ahead of it), and a
/// timeout is noticed at least this often.
const FILL_STEP: usize = 256 * 1024;

impl FrameReader {
    fn new(max: usize) -> FrameReader {
        FrameReader {
            buf: vec![0; READ_BUF],
            start: 0,
            end: 0,
            body: Vec::new(),
            want: None,
            max,
        }
    }

    /// `Ok(None)` when a read timed out; the partial frame is kept.
    fn poll(&mut self, r: &mut dyn ReadHalf) -> Result<Option<Vec<u8>>> {
        loop {
            match self.want {
                None => {
                    if self.end - self.start >= 4 {
                        let mut len = [0u8; 4];
                        len.copy_from_slice(&self.buf[self.start..self.start + 4]);
                        self.start += 4;
                        let len = i32::from_be_bytes(len);
                        if len < 4 || len as usize > self.max {
                            return Err(Error::protocol(format!(
                                "response frame length {len} is outside 4..={} (receive_message_max_bytes); the peer may not be a Kafka broker",
                                self.max
                            )));
                        }
                        self.want = Some(len as usize);
                        self.body = Vec::with_capacity((len as usize).min(GROW_STEP));
                        continue;
                    }
                    if !self.fill(r)? {
                        return Ok(None);
                    }
                }
                Some(len) => {
                    let missing = len - self.body.len();
                    let buffered = self.end - self.start;
                    if buffered > 0 {
                        let n = missing.min(buffered);
                        self.body
                            .extend_from_slice(&self.buf[self.start..self.start + n]);
                        self.start += n;
                    } else if missing >= READ_BUF / 2 {
                        // Large frame: read straight into the body's spare
                        // capacity (`ReadHalf::read_append`), so the buffer
                        // is never zero-filled first (memset was a fifth of
                        // a consumer's instructions), keeping what was read
                        // when a timeout interrupts it.
                        let have = self.body.len();
                        let want = missing.min(FILL_STEP);
                        match r.read_append(&mut self.body, want) {
                            Ok(0) => {
                                return Err(Error::new(
                                    ErrorKind::Disconnected,
                                    "the broker closed the connection",
                                ))
                            }
                            Ok(_) => {}
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e)
                                if e.kind() == io::ErrorKind::WouldBlock
                                    || e.kind() == io::ErrorKind::TimedOut =>
                            {
                                if self.body.len() == have {
                                    return Ok(None);
                                }
                            }
                            Err(e) => {
                                return Err(Error::new(
                                    ErrorKind::Disconnected,
                                    format!("reading from the broker failed: {e}"),
                                )
                                .with_source(e))
                            }
                        }
                    } else if !self.fill(r)? {
                        return Ok(None);
                    }
                    if self.body.len() == len {
                        self.want = None;
                        return Ok(Some(std::mem::take(&mut self.body)));
                    }
                }
            }
        }
    }

    /// Reads more into the buffer; `Ok(false)` on timeout.
    fn fill(&mut self, r: &mut dyn Read) -> Result<bool> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        match read_some(r, &mut self.buf[self.end..])? {
            Some(n) => {
                self.end += n;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

/// One read: `Ok(None)` on timeout, an error on EOF or failure.
fn read_some(r: &mut dyn Read, buf: &mut [u8]) -> Result<Option<usize>> {
    loop {
        match r.read(buf) {
            Ok(0) => {
                return Err(Error::new(
                    ErrorKind::Disconnected,
                    "the broker closed the connection",
                ))
            }
            Ok(n) => return Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                return Ok(None)
            }
            Err(e) => {
                return Err(Error::new(
                    ErrorKind::Disconnected,
                    format!("reading from the broker failed: {e}"),
                )
                .with_source(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Yields its chunks one read at a time, with a timeout between each.
    struct Chunky {
        chunks: VecDeque<Vec<u8>>,
        timeout_next: bool,
    }

    impl Read for Chunky {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.timeout_next {
                self.timeout_next = false;
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.timeout_next = true;
            match self.chunks.front_mut() {
                None => Ok(0),
                Some(c) => {
                    let n = c.len().min(buf.len());
                    buf[..n].copy_from_slice(&c[..n]);
                    c.drain(..n);
                    if c.is_empty() {
                        self.chunks.pop_front();
                    }
                    Ok(n)
                }
            }
        }
    }

    impl ReadHalf for Chunky {
        fn set_read_timeout(&mut self, _: Option<Duration>) -> io::Result<()> {
            Ok(())
        }
    }

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut v = (body.len() as i32).to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn frames_survive_timeouts_and_short_reads() {
        let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let mut stream = frame(&[1, 2, 3, 4, 5]);
        stream.extend(frame(&big));
        stream.extend(frame(&[9, 9, 9, 9]));
        // Split into awkward chunks: 1, 3, 7, 1000, then the rest.
        let mut chunks = VecDeque::new();
        let mut rest = stream.as_slice();
        for n in [1usize, 3, 7, 1000] {
            chunks.push_back(rest[..n].to_vec());
            rest = &rest[n..];
        }
        chunks.push_back(rest.to_vec());
        let mut r = Chunky {
            chunks,
            timeout_next: false,
        };
        let mut fr = FrameReader::new(1 << 20);
        let mut got = Vec::new();
        for _ in 0..200 {
            match fr.poll(&mut r) {
                Ok(Some(f)) => got.push(f),
                Ok(None) => {}
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::Disconnected);
                    break;
                }
            }
        }
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], vec![1, 2, 3, 4, 5]);
        assert_eq!(got[1], big);
        assert_eq!(got[2], vec![9, 9, 9, 9]);
    }

    /// Accepts at most 7 bytes per write, to exercise partial vectored writes.
    struct Dribble(Vec<u8>);

    impl io::Write for Dribble {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(7);
            self.0.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
            let mut n = 0;
            for b in bufs {
                let take = (7 - n).min(b.len());
                self.0.extend_from_slice(&b[..take]);
                n += take;
                if n == 7 {
                    break;
                }
            }
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn frames_in_parts_are_written_whole_and_in_order() {
        let parts = vec![
            FramePart::Shared(Bytes::from((0..20u8).collect::<Vec<_>>())),
            FramePart::Owned(Vec::new()),
            FramePart::Owned(vec![100, 101, 102]),
            FramePart::Shared(Bytes::from(vec![200u8; 9])),
        ];
        let mut w = Dribble(Vec::new());
        write_frame(&mut w, &[9, 8, 7], &parts).unwrap();
        let mut want = vec![9, 8, 7];
        for p in &parts {
            want.extend_from_slice(p.as_slice());
        }
        assert_eq!(w.0, want);
    }

    #[test]
    fn oversized_and_negative_lengths_are_rejected() {
        for len in [-1i32, 2, 1 << 21] {
            let mut r = Chunky {
                chunks: VecDeque::from(vec![len.to_be_bytes().to_vec()]),
                timeout_next: false,
            };
            let mut fr = FrameReader::new(1 << 20);
            let e = loop {
                match fr.poll(&mut r) {
                    Ok(None) => continue,
                    Ok(Some(_)) => panic!("accepted length {len}"),
                    Err(e) => break e,
                }
            };
            assert_eq!(e.kind(), ErrorKind::Protocol, "{len}: {e}");
        }
    }
}
