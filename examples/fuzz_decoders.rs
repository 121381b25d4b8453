//! The long fuzz run: structure-aware mutated inputs into every decoder a
//! broker reaches (see `tests/fuzz_engine/mod.rs`).
//!
//! ```text
//! cargo run --release --example fuzz_decoders -- [inputs, default 10000000] [seed, default 1]
//! ```
//!
//! Exits non-zero on a panic, an allocation larger than the input allows,
//! or an input that runs for 30 s.

#[path = "../tests/fuzz_engine/mod.rs"]
mod fuzz_engine;

fn main() {
    let mut args = std::env::args().skip(1);
    let inputs: u64 = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000_000);
    let seed: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1);
    let r = fuzz_engine::run(seed, inputs, 1_000_000);
    println!("seed {seed}: {r:#?}");
    println!(
        "{} inputs in {:?} ({:.0}/s): {} panics, {} over-allocations, slowest input {:?} ({})",
        r.inputs,
        r.elapsed,
        r.inputs as f64 / r.elapsed.as_secs_f64(),
        r.panics,
        r.over_allocations,
        r.slowest,
        r.slowest_what
    );
    if r.panics > 0 || r.over_allocations > 0 {
        std::process::exit(1);
    }
}
