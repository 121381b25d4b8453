//! Record batch encode/decode throughput per codec, no broker.
//!
//! Payload: 64 KiB of xorshift32 output over a 64-character alphabet
//! (moderately compressible); record `i` is the SIZE-byte window at
//! `(i * 7919) % (65536 - SIZE)`, null key, no headers, packed into batches
//! of ~1 MiB. Throughput is record payload bytes per second (decimal MB).
//!
//! * `encode/<codec>/<size>`: a fresh builder, append every record, build.
//! * `decode/<codec>/<size>`: read the batch (CRC checked), decompress,
//!   iterate every record and sum key and value lengths.
//! * `baseline/memcpy+crc32c/<size>`: copy the same payload bytes into a
//!   fresh buffer and CRC-32C them: the floor for the uncompressed paths.
//!
//! ```sh
//! cargo bench --bench records -- --warm-up-time 1 --measurement-time 3
//! ```

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kafka_blocking::records::{
    BatchOptions, Compression, ReadOptions, RecordBatchBuilder, RecordBatches,
};
use kafka_blocking::Bytes;

const POOL: usize = 64 * 1024;
const BATCH_BYTES: usize = 1 << 20;
const SIZES: [usize; 2] = [100, 1024];

fn pool() -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut x: u32 = 0x2545_f491;
    (0..POOL)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            ALPHABET[(x % 64) as usize]
        })
        .collect()
}

fn records(pool: &[u8], size: usize) -> Vec<&[u8]> {
    let n = BATCH_BYTES / size;
    (0..n)
        .map(|i| {
            let at = (i * 7919) % (POOL - size);
            &pool[at..at + size]
        })
        .collect()
}

fn build(records: &[&[u8]], codec: Compression) -> Bytes {
    let mut b = RecordBatchBuilder::with_capacity(BATCH_BYTES + BATCH_BYTES / 8);
    for (i, v) in records.iter().enumerate() {
        b.append(1_700_000_000_000 + i as i64, None, Some(v), [])
            .unwrap();
    }
    b.build(&BatchOptions {
        compression: codec,
        ..BatchOptions::default()
    })
    .unwrap()
}

fn decode(data: &Bytes) -> usize {
    let mut total = 0;
    for batch in RecordBatches::new(data.clone(), ReadOptions::default()) {
        for record in batch.unwrap().records() {
            let r = record.unwrap();
            total += r.key.map_or(0, |k| k.len()) + r.value.map_or(0, |v| v.len());
        }
    }
    total
}

fn benches(c: &mut Criterion) {
    let pool = pool();
    for size in SIZES {
        let recs = records(&pool, size);
        let payload: Vec<u8> = recs.concat();
        let bytes = payload.len() as u64;

        let mut g = c.benchmark_group("baseline");
        g.throughput(Throughput::BytesDecimal(bytes));
        g.bench_function(BenchmarkId::new("memcpy+crc32c", size), |b| {
            b.iter(|| {
                let mut copy = Vec::with_capacity(payload.len());
                copy.extend_from_slice(black_box(&payload));
                black_box(crc32c::crc32c(&copy))
            })
        });
        g.finish();

        for codec in Compression::ALL {
            let mut g = c.benchmark_group(format!("encode/{}", codec.name()));
            g.throughput(Throughput::BytesDecimal(bytes));
            g.bench_function(BenchmarkId::from_parameter(size), |b| {
                b.iter(|| build(black_box(&recs), codec))
            });
            g.finish();

            let data = build(&recs, codec);
            assert_eq!(decode(&data), payload.len());
            let mut g = c.benchmark_group(format!("decode/{}", codec.name()));
            g.throughput(Throughput::BytesDecimal(bytes));
            g.bench_function(BenchmarkId::from_parameter(size), |b| {
                b.iter(|| decode(black_box(&data)))
            });
            g.finish();
        }
    }
}

criterion_group!(records_benches, benches);
criterion_main!(records_benches);
