//! Runs the testkit's TLS front with a local broker behind it until Ctrl-C,
//! and prints the settings to reach it: a way to try a TLS setup (or
//! `kcat -X security.protocol=SSL ...`) without a TLS-capable broker.
//!
//! ```text
//! cargo run --example tls_front [-- --mtls] [--tls12]
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kafka_blocking::testkit::TlsFront;

fn main() -> kafka_blocking::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut b = TlsFront::builder();
    for a in &args {
        match a.as_str() {
            "--mtls" => b = b.require_client_cert(),
            "--tls12" => b = b.tls12_only(),
            other => {
                eprintln!("unknown option {other}; usage: tls_front [--mtls] [--tls12]");
                std::process::exit(2);
            }
        }
    }
    let front = b.start()?;
    println!("bootstrap_servers={}", front.bootstrap_servers());
    println!("security_protocol=SSL");
    println!("ssl_cafile={}", front.ca_file().display());
    if args.iter().any(|a| a == "--mtls") {
        println!("ssl_certfile={}", front.client_cert_file().display());
        println!("ssl_keyfile={}", front.client_key_file().display());
    }
    println!("(Ctrl-C to stop)");
    let stop = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&stop);
    ctrlc::set_handler(move || s.store(true, Ordering::SeqCst))
        .map_err(|e| kafka_blocking::Error::new(kafka_blocking::ErrorKind::Io, e.to_string()))?;
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(front);
    Ok(())
}
