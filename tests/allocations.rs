//! What the record hot paths allocate: nothing per record when appending or
//! iterating, and never more than the cap when decompressing a bomb.
//!
//! This is its own test binary because it installs a global allocator that
//! counts allocations and tracks the peak of live heap bytes, which only
//! means something with one test running at a time: everything runs from
//! one `#[test]`. (The allocator wrapper needs `unsafe`; the library itself
//! forbids it.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use kafka_blocking::records::{
    compress, decompress, BatchOptions, Compression, ReadOptions, RecordBatchBuilder, RecordBatches,
};
use kafka_blocking::ErrorKind;

struct Tracking;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Allocations made by this thread (a const initializer without a
    /// destructor: reading it never allocates).
    static MINE: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn grew(n: usize) {
    ALLOCS.fetch_add(1, Relaxed);
    let _ = MINE.try_with(|c| c.set(c.get() + 1));
    let now = LIVE.fetch_add(n, Relaxed) + n;
    PEAK.fetch_max(now, Relaxed);
}

// SAFETY: forwards every call to `System` unchanged; only counts sizes.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // A resize: blocks this large are remapped in place by glibc, not
        // copied, so the old and new sizes are not both live.
        if new_size > layout.size() {
            grew(new_size - layout.size());
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Relaxed);
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// One test, so that nothing else allocates while it measures.
#[test]
fn allocations() {
    no_allocation_per_record();
    batches_with_bombs();
    unsized_bombs();
    send_allocates_nothing_per_record();
}

fn allocs_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = ALLOCS.load(Relaxed);
    let out = f();
    (out, ALLOCS.load(Relaxed) - before)
}

/// Allocations made by the calling thread only during `f` (the producer's
/// sender and connection threads allocate on their own schedule).
fn my_allocs_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = MINE.with(std::cell::Cell::get);
    let out = f();
    (out, MINE.with(std::cell::Cell::get) - before)
}

/// `Producer::send` with and without headers: appending to an open batch
/// copies the record into the batch's buffer and allocates nothing, in the
/// caller's thread. (Needs a broker for the topic's metadata: the local
/// one, or `KAFKA_BOOTSTRAP_SERVERS`.)
fn send_allocates_nothing_per_record() {
    use kafka_blocking::admin::{AdminClient, NewTopic};
    use kafka_blocking::producer::{Producer, Record};
    use kafka_blocking::testkit::LocalBroker;
    use std::time::Duration;

    let broker = LocalBroker::start().expect("start the local test broker");
    let topic = format!("allocations-{}", std::process::id());
    let admin = AdminClient::builder()
        .bootstrap_servers(broker.bootstrap_servers())
        .build()
        .unwrap();
    let _ = admin
        .create_topics([NewTopic::new(&topic, 1, 1)], false, None)
        .unwrap();
    let producer = Producer::builder()
        .bootstrap_servers(broker.bootstrap_servers())
        .linger_ms(60_000)
        .batch_size(4 << 20)
        .build()
        .unwrap();
    let value = vec![b'v'; 100];
    for headers in [false, true] {
        let records: Vec<Record<'_>> = (0..1001)
            .map(|i| {
                let r = Record::new(topic.as_str())
                    .partition(0)
                    .key(&value[..8])
                    .value(&value)
                    .timestamp(i);
                if headers {
                    r.header("trace", &value[..16]).header("span", &value[..4])
                } else {
                    r
                }
            })
            .collect();
        let mut records = records.into_iter();
        // The first send looks the topic up and opens the batch.
        let first = producer.send(records.next().unwrap()).unwrap();
        let (sent, n) = my_allocs_during(|| {
            let mut sent = 0;
            for r in records.by_ref() {
                drop(producer.send(r).unwrap());
                sent += 1;
            }
            sent
        });
        assert_eq!(sent, 1000);
        assert_eq!(n, 0, "headers={headers}: {n} allocations for 1000 sends");
        producer.flush(Duration::from_secs(30)).unwrap();
        assert!(first.wait().is_ok(), "headers={headers}: delivered");
    }
    producer.close(Duration::from_secs(10)).unwrap();
}

fn no_allocation_per_record() {
    let value = vec![b'v'; 100];
    let header = b"h".to_vec();
    let owned_headers: Vec<(String, Option<Vec<u8>>)> =
        [("trace".to_string(), Some(header))].into();
    for codec in Compression::ALL {
        // Appending: the builder's buffer was sized up front.
        let mut b = RecordBatchBuilder::with_capacity(1 << 20);
        let ((), n) = allocs_during(|| {
            for i in 0..1000 {
                let key = if i % 2 == 0 { Some(&value[..8]) } else { None };
                let headers = owned_headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_deref()));
                b.append(i, key, Some(&value), headers).unwrap();
            }
        });
        assert_eq!(n, 0, "{codec}: append allocated");
        let batch = b
            .build(&BatchOptions {
                compression: codec,
                ..BatchOptions::default()
            })
            .unwrap();

        // Iterating: a constant number of allocations per batch (the
        // decompressed buffer and its Arc), none per record or header.
        let (seen, n) = allocs_during(|| {
            let mut seen = 0;
            for batch in RecordBatches::new(batch.clone(), ReadOptions::default()) {
                for r in batch.unwrap().records() {
                    let r = r.unwrap();
                    seen += r.value.map_or(0, |v| v.len()) + r.key.map_or(0, |k| k.len());
                    seen += r
                        .headers
                        .iter()
                        .map(|(k, v)| k.len() + v.map_or(0, |v| v.len()))
                        .sum::<usize>();
                }
            }
            seen
        });
        assert_eq!(seen, 1000 * 106 + 500 * 8);
        let allowed = if codec == Compression::None { 0 } else { 4 };
        assert!(
            n <= allowed,
            "{codec}: {n} allocations to read 1000 records"
        );
    }
}

fn batches_with_bombs() {
    const CAP: usize = 1 << 20;
    let zeros = vec![0u8; 16 << 20];
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let mut b = RecordBatchBuilder::new();
        b.append(0, None, Some(&zeros), []).unwrap();
        let bomb = b
            .build(&BatchOptions {
                compression: codec,
                ..BatchOptions::default()
            })
            .unwrap();
        assert!(bomb.len() < 1 << 20, "{codec}: {} bytes", bomb.len());

        let options = ReadOptions {
            max_decompressed_bytes: CAP,
            ..ReadOptions::default()
        };
        let before = LIVE.load(Relaxed);
        PEAK.store(before, Relaxed);
        let batch = RecordBatches::new(bomb, options).next().unwrap().unwrap();
        let err = batch.records().next().unwrap().unwrap_err();
        let extra = PEAK.load(Relaxed) - before;
        assert_eq!(err.kind(), ErrorKind::Compression, "{codec}: {err}");
        // The output buffer (cap + 1 byte) plus the codec's own state
        // (e.g. zstd's context, gzip's 32 KiB window, the error message).
        assert!(
            extra <= CAP + 256 * 1024,
            "{codec}: {extra} bytes allocated for a {CAP}-byte cap"
        );
    }
}

/// The same through `decompress`, for streams that give no size up front:
/// gzip with a lying ISIZE trailer, zstd written by a streaming encoder (as
/// zstd-jni does, no content size), and LZ4 without content size.
fn unsized_bombs() {
    use std::io::Write;

    const CAP: usize = 1 << 20;
    let zeros = vec![0u8; 16 << 20];
    let mut gzip = Vec::new();
    compress(Compression::Gzip, &zeros, &mut gzip).unwrap();
    let n = gzip.len();
    gzip[n - 4..].copy_from_slice(&0u32.to_le_bytes());
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    enc.write_all(&zeros).unwrap();
    let zstd = enc.finish().unwrap();
    let mut lz4 = Vec::new();
    compress(Compression::Lz4, &zeros, &mut lz4).unwrap();

    for (codec, bomb) in [
        (Compression::Gzip, gzip),
        (Compression::Zstd, zstd),
        (Compression::Lz4, lz4),
    ] {
        let before = LIVE.load(Relaxed);
        PEAK.store(before, Relaxed);
        let err = decompress(codec, &bomb, CAP).unwrap_err();
        let extra = PEAK.load(Relaxed) - before;
        assert_eq!(err.kind(), ErrorKind::Compression, "{codec}: {err}");
        assert!(
            extra <= CAP + 256 * 1024,
            "{codec}: {extra} bytes allocated for a {CAP}-byte cap"
        );
    }
}
