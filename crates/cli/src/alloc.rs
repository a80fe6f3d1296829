//! The process's allocator: jemalloc.
//!
//! Why not glibc's: hyper's HTTP/1.1 read buffers are 8 KiB, and two are
//! allocated and freed per proxied request (the last message's bytes are
//! still referenced when the next read reserves room). glibc serves
//! anything above 1 KiB outside its per-thread cache, through its bins;
//! jemalloc's thread cache holds sizes up to 32 KiB. Instructions per
//! request: HTTP/1.1 32.2k -> 30.8k, HTTP/2 52.4k -> 49.7k (BENCHMARKS.md).
//!
//! Why not mimalloc (tried first): it kept more per service in config
//! (2.8 KB against glibc's 1.96) and, with transparent huge pages on, its
//! arenas added 8 MiB idle. jemalloc stays at ~2 KB a service, once its
//! free pages are given back after a large config (`purge`).

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Gives every arena's free pages back to the kernel now, rather than
/// after jemalloc's decay time (10 s), which an idle proxy may never
/// reach: it only counts down while the allocator is in use.
#[allow(unsafe_code)]
pub fn purge() {
    // 4096 is MALLCTL_ARENAS_ALL.
    // SAFETY: a void mallctl: no old value is read, no new value written.
    let rc = unsafe {
        tikv_jemalloc_sys::mallctl(
            c"arena.4096.purge".as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        // Memory, not correctness: the pages go back after jemalloc's decay time instead.
        tracing::warn!(errno = rc, "jemalloc could not purge its free pages; RSS stays higher until it decays them");
    }
}
