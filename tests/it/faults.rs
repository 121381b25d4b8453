//! Fault injection: a TCP proxy in front of the real broker that can swallow,
//! delay, corrupt or cut traffic, and fake servers that never answer or
//! answer garbage. Everything binds 127.0.0.1 and stops on Drop.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Knobs shared by every connection of a [`Proxy`].
#[derive(Default)]
pub struct Knobs {
    /// Drop broker→client bytes instead of forwarding them (a stuck broker).
    pub swallow_responses: AtomicBool,
    /// Close each connection once this many broker→client bytes passed
    /// (0 = never).
    pub cut_after_response_bytes: AtomicU64,
    /// Sleep this many ms before forwarding each broker→client chunk.
    pub response_delay_ms: AtomicU64,
    /// XOR this byte into broker→client byte number `corrupt_at` of each
    /// connection (0 = off); counts from 1.
    pub corrupt_at: AtomicU64,
    /// Connections accepted so far.
    pub accepted: AtomicUsize,
}

/// A proxy from 127.0.0.1:<free port> to `upstream`.
pub struct Proxy {
    addr: SocketAddr,
    upstream: Arc<Mutex<Option<SocketAddr>>>,
    pub knobs: Arc<Knobs>,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    accept: Option<JoinHandle<()>>,
}

impl Proxy {
    pub fn start(upstream: &str) -> Proxy {
        let p = Proxy::bind();
        p.set_upstream(upstream);
        p
    }

    /// A proxy that listens now and learns where to forward later (so a
    /// broker can be started advertising the proxy's address).
    pub fn bind() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let upstream_slot: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let upstream_for_accept = Arc::clone(&upstream_slot);
        let knobs = Arc::new(Knobs::default());
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (k, s, c) = (Arc::clone(&knobs), Arc::clone(&stop), Arc::clone(&conns));
        let accept = std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Some(upstream) = *upstream_for_accept.lock().unwrap() else {
                    continue;
                };
                let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(5))
                else {
                    continue;
                };
                k.accepted.fetch_add(1, Ordering::SeqCst);
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                {
                    let mut all = c.lock().unwrap();
                    all.push(client.try_clone().unwrap());
                    all.push(server.try_clone().unwrap());
                }
                let (c1, s1) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || pump_requests(c1, s1));
                let k2 = Arc::clone(&k);
                std::thread::spawn(move || pump_responses(server, client, &k2));
            }
        });
        Proxy {
            addr,
            upstream: upstream_slot,
            knobs,
            stop,
            conns,
            accept: Some(accept),
        }
    }

    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    pub fn set_upstream(&self, upstream: &str) {
        *self.upstream.lock().unwrap() = Some(upstream.parse().expect("upstream address"));
    }

    /// Closes every connection made so far (clients see a reset/EOF).
    pub fn cut_all(&self) {
        for s in self.conns.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.cut_all();
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn pump_requests(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

fn pump_responses(mut from: TcpStream, mut to: TcpStream, k: &Knobs) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut passed: u64 = 0;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let delay = k.response_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
        if k.swallow_responses.load(Ordering::SeqCst) {
            continue;
        }
        let corrupt = k.corrupt_at.load(Ordering::SeqCst);
        if corrupt > passed && corrupt <= passed + n as u64 {
            buf[(corrupt - passed - 1) as usize] ^= 0x5a;
        }
        let cut = k.cut_after_response_bytes.load(Ordering::SeqCst);
        if cut > 0 && passed + n as u64 >= cut {
            let keep = (cut - passed) as usize;
            let _ = to.write_all(&buf[..keep.min(n)]);
            break;
        }
        passed += n as u64;
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

/// A server that accepts connections and answers every read with `reply`
/// (or nothing, when `reply` is empty). Stops on Drop.
pub struct FakeServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    accept: Option<JoinHandle<()>>,
}

impl FakeServer {
    pub fn start(reply: Vec<u8>) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake server");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (s, c) = (Arc::clone(&stop), Arc::clone(&conns));
        let accept = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                c.lock().unwrap().push(stream.try_clone().unwrap());
                let reply = reply.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = stream.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        if !reply.is_empty() && stream.write_all(&reply).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        FakeServer {
            addr,
            stop,
            conns,
            accept: Some(accept),
        }
    }

    pub fn addr(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for s in self.conns.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// An address on which nothing listens (connections are refused).
pub fn closed_port() -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let a = l.local_addr().expect("addr");
    drop(l);
    a.to_string()
}
