//! How the daemon's heap gives memory back. glibc keeps freed memory for reuse; on a switch
//! CPU the daemon's resident size is what operators watch.

/// glibc's own starting mmap threshold: blocks this large and larger are mapped on their own,
/// and unmapped when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;

/// Keeps large blocks out of the heap's arenas for the process's whole life. Call it first,
/// before any thread starts.
///
/// glibc raises its mmap threshold each time a mapped block is freed, up to the size of that
/// block. Loading the eBPF program frees a few megabytes of kernel BTF at start-up; from then
/// on every block up to that size (a cold start's read-back, the state's chunks) was carved
/// out of an arena, and each worker thread's arena kept what a start-up's transients left in
/// it. At 100k neighbors that was 1-7 MiB of resident memory in eBPF mode, more or less by
/// which worker thread ran what (docs/BENCHMARKING.md, "Cold start at 100k"). Setting the
/// threshold fixes it where glibc starts: a large block is unmapped when freed.
pub fn keep_large_blocks_mapped() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it has no preconditions.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
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
