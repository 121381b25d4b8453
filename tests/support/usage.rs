//! What this process holds, from /proc (Linux): threads, open file
//! descriptors, resident memory. Shared by `tests/leaks.rs` and
//! `examples/soak.rs`.

/// One reading.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub threads: usize,
    pub fds: usize,
    pub rss_kib: u64,
}

/// Reads /proc/self now.
pub fn usage() -> Usage {
    let count = |dir: &str| std::fs::read_dir(dir).map_or(0, |d| d.count());
    let rss_kib = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0);
    Usage {
        threads: count("/proc/self/task"),
        fds: count("/proc/self/fd"),
        rss_kib,
    }
}
