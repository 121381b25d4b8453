//! 100k structure-aware mutated inputs into every decoder a broker reaches
//! (the short version of `examples/fuzz_decoders.rs`; see
//! `tests/fuzz_engine/mod.rs`): no panic, no allocation larger than the
//! input allows. Its own test binary because it installs a counting global
//! allocator.

mod fuzz_engine;

#[test]
fn decoders_survive_100k_mutated_inputs() {
    let seed = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_202);
    let inputs = std::env::var("FUZZ_INPUTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let r = fuzz_engine::run(seed, inputs, 0);
    println!(
        "fuzz (seed {seed}): {} inputs ({} messages, {} record blobs, {} group), {} decoded, \
         {} panics, {} over-allocations, largest allocation {} B for a {} B input ({} B for a {} B message), \
         slowest {:?} ({}), {} targets, {} corpus entries, {:?}",
        r.inputs,
        r.message_inputs,
        r.record_inputs,
        r.group_inputs,
        r.decoded_ok,
        r.panics,
        r.over_allocations,
        r.largest_allocation.0,
        r.largest_allocation.1,
        r.largest_message_allocation.0,
        r.largest_message_allocation.1,
        r.slowest,
        r.slowest_what,
        r.units,
        r.corpus_entries,
        r.elapsed
    );
    assert!(r.failures.is_empty(), "{:#?}", r.failures);
    assert_eq!((r.panics, r.over_allocations), (0, 0));
    // The run must reach the decoders' insides, not only their first check.
    assert!(
        r.decoded_ok > r.inputs / 20,
        "too few inputs decoded: the mutations are too blunt"
    );
}
