//! A counting global allocator: live heap bytes, to tell a leak (live
//! bytes grow) from allocator caching and fragmentation (RSS grows, live
//! bytes do not). Shared by `tests/leaks.rs` and `examples/soak.rs`;
//! including this module installs it as the global allocator.

/// Counts live heap bytes, to tell a leak (live bytes grow) from allocator
/// caching and fragmentation (RSS grows, live bytes do not).
struct LiveBytes;

pub static LIVE: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

// SAFETY: forwards every call to `System` unchanged; only counts sizes.
unsafe impl std::alloc::GlobalAlloc for LiveBytes {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as i64, std::sync::atomic::Ordering::Relaxed);
        std::alloc::System.alloc(l)
    }
    unsafe fn alloc_zeroed(&self, l: std::alloc::Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as i64, std::sync::atomic::Ordering::Relaxed);
        std::alloc::System.alloc_zeroed(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        LIVE.fetch_sub(l.size() as i64, std::sync::atomic::Ordering::Relaxed);
        std::alloc::System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: std::alloc::Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(
            n as i64 - l.size() as i64,
            std::sync::atomic::Ordering::Relaxed,
        );
        std::alloc::System.realloc(p, l, n)
    }
}

#[global_allocator]
static ALLOCATOR: LiveBytes = LiveBytes;

/// Live heap bytes now, in KiB.
pub fn live_heap_kib() -> u64 {
    (LIVE.load(std::sync::atomic::Ordering::Relaxed).max(0) / 1024) as u64
}
