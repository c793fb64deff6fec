//! Giving freed heap back to the system after a one-off peak (loading the eBPF program parses
//! several megabytes of kernel BTF). glibc keeps freed memory for reuse; on a switch CPU the
//! daemon's resident size is what operators watch.

/// Returns free heap pages to the system (glibc's `malloc_trim`); a no-op elsewhere.
pub fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}
