//! The stream seam: how bytes get to a broker.
//!
//! A [`Transport`] opens a connection and hands back separate read and write
//! halves, because each connection is served by a writer thread and a reader
//! thread (see `io.rs`). Plain TCP is one transport; TLS (`tls.rs`, feature
//! `tls`) is the other, its halves sharing one TLS session; SASL plugs in
//! as a handshake step after ApiVersions.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::config::BrokerAddress;
use crate::error::{Error, ErrorKind, Result};

/// The read half of a broker connection.
pub(crate) trait ReadHalf: Read + Send {
    /// Bounds the next reads; `None` blocks.
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()>;

    /// Reads up to `max` bytes onto the end of `buf`, into its spare
    /// capacity without zero-filling it first (a large frame's buffer is
    /// written once, by the data). `Ok(0)` at the end of the stream. On a
    /// timeout the bytes read so far stay in `buf`.
    ///
    /// The default reads through `read_to_end`, which hands a `TcpStream`
    /// uninitialised memory (std's `read_buf`); a half that decrypts
    /// overrides it to copy its plaintext straight into `buf`.
    fn read_append(&mut self, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        buf.reserve(max);
        (&mut *self).take(max as u64).read_to_end(buf)
    }
}

/// The write half of a broker connection.
pub(crate) trait WriteHalf: Write + Send {
    /// Bounds the next writes.
    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()>;
    /// Closes both directions, waking a reader blocked on the other half.
    fn shutdown(&self);
}

/// An open connection split into halves.
pub(crate) struct Stream {
    pub(crate) reader: Box<dyn ReadHalf>,
    pub(crate) writer: Box<dyn WriteHalf>,
}

/// Opens connections to brokers.
pub(crate) trait Transport: Send + Sync {
    /// Connects to `addr` within `timeout`.
    fn connect(&self, addr: &BrokerAddress, timeout: Duration) -> Result<Stream>;
}

/// Plain TCP with `TCP_NODELAY`.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct TcpTransport;

impl ReadHalf for TcpStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
}

impl WriteHalf for TcpStream {
    fn set_write_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_write_timeout(self, timeout)
    }
    fn shutdown(&self) {
        let _ = TcpStream::shutdown(self, Shutdown::Both);
    }
}

impl Transport for TcpTransport {
    fn connect(&self, addr: &BrokerAddress, timeout: Duration) -> Result<Stream> {
        let s = tcp_connect(addr, timeout)?;
        let reader = s
            .try_clone()
            .map_err(|e| Error::io(format!("connection to {addr}"), e))?;
        Ok(Stream {
            reader: Box::new(reader),
            writer: Box::new(s),
        })
    }
}

/// Moves a position (`idx`, `off`) in a list of buffers on by `n` bytes
/// written, past any buffer that is then used up (empty ones included).
pub(crate) fn advance<B: std::ops::Deref<Target = [u8]>>(
    bufs: &[B],
    idx: &mut usize,
    off: &mut usize,
    mut n: usize,
) {
    while *idx < bufs.len() {
        let left = bufs[*idx].len() - *off;
        if n < left {
            *off += n;
            return;
        }
        n -= left;
        *idx += 1;
        *off = 0;
    }
}

/// Opens a TCP connection (with `TCP_NODELAY`) to the first address of
/// `addr` that answers within `timeout`.
pub(crate) fn tcp_connect(addr: &BrokerAddress, timeout: Duration) -> Result<TcpStream> {
    let deadline = Instant::now() + timeout;
    let addrs: Vec<_> = (addr.host.as_str(), addr.port)
        .to_socket_addrs()
        .map_err(|e| Error::io(format!("cannot resolve broker address {addr}"), e))?
        .collect();
    if addrs.is_empty() {
        return Err(Error::new(
            ErrorKind::Io,
            format!("broker address {addr} resolved to no IP address"),
        ));
    }
    let mut last_err = None;
    for sa in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&sa, left) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last_err = Some(e),
        }
    }
    Err(match last_err {
        Some(e) => Error::io(
            format!("cannot connect to broker {addr} (is it running and reachable?)"),
            e,
        ),
        None => Error::timeout(format!(
            "connecting to broker {addr} took longer than socket_connection_setup_timeout_ms ({} ms)",
            timeout.as_millis()
        )),
    })
}
