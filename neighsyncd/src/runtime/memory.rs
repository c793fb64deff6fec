//! The heap's shape: one glibc arena, and freed heap given back after a one-off peak (reading
//! the kernel's BTF for the eBPF program's offsets). On a switch CPU the daemon's resident size
//! is what operators watch.

/// One malloc arena for the whole process; call it first, while this is the only thread.
///
/// glibc gives each thread that allocates its own arena, and memory freed in one is not reused
/// by another. A cold start reads APPL_DB back on one runtime thread while the pipeline fills
/// its tables on another: the read-back's transient buffers and the tables each took their
/// arena to its own peak, 28.0-28.7 MB at 100k (eBPF mode, everything staged) with one arena
/// against 31.1-35.9 with glibc's default (docs/BENCHMARKING.md). Two runtime threads contend
/// little for one arena's lock.
pub fn one_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; M_ARENA_MAX takes any positive count.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Returns free heap pages to the system (glibc's `malloc_trim`); a no-op elsewhere.
pub fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}
