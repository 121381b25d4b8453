//! Choosing a partition: the Java client's murmur2 for keyed records, a
//! sticky partition for unkeyed ones, or round-robin.

use std::sync::atomic::{AtomicU32, Ordering};

/// Kafka's murmur2 hash (`org.apache.kafka.common.utils.Utils.murmur2`),
/// the hash the Java client and kafka-python use for keyed records.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition the Java client's default partitioner picks for `key`:
/// `(murmur2(key) & 0x7fffffff) % partitions`.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    if partitions <= 0 {
        return 0;
    }
    (murmur2(key) & 0x7fff_ffff) % partitions
}

/// How records without an explicit partition are spread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Partitioner {
    /// The Java client's default: murmur2 of the key for keyed records;
    /// unkeyed records stick to one partition until its batch is sent, then
    /// move on (KIP-480).
    #[default]
    Default,
    /// Every record (keyed or not) goes to the next partition in turn.
    RoundRobin,
    /// Keyed records by murmur2; unkeyed ones spread uniformly at random per
    /// record (kafka-python's behaviour before sticky partitioning).
    Random,
}

/// Round-robin and sticky state shared by the producer's clones.
#[derive(Debug, Default)]
pub(crate) struct PartitionerState {
    counter: AtomicU32,
}

impl PartitionerState {
    /// The next value of the round-robin counter.
    pub(crate) fn next(&self) -> u32 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }
}

/// A small, fast, thread-local random number (xorshift), for picking a
/// fresh sticky partition.
pub(crate) fn random_u32() -> u32 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u32> = Cell::new({
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0x1234_5678, |d| d.subsec_nanos());
            (t ^ 0x9e37_79b9) | 1
        });
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        s.set(x);
        x
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_client() {
        // From Apache Kafka's UtilsTest.testMurmur2.
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (data, want) in cases {
            assert_eq!(murmur2(data), *want, "{:?}", String::from_utf8_lossy(data));
        }
    }

    #[test]
    fn partitions_match_kafka_python() {
        // From kafka-python's test_murmur2_java_compatibility (1000 partitions).
        let cases: &[(&[u8], i32)] = &[
            (b"", 681),
            (b"a", 524),
            (b"ab", 434),
            (b"abc", 107),
            (b"123456789", 566),
            (b"\x00 ", 742),
        ];
        for (key, want) in cases {
            assert_eq!(partition_for_key(key, 1000), *want, "{key:?}");
        }
    }
}
