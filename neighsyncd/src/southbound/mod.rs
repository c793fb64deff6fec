//! Where kernel neighbor events come from: rtnetlink (`netlink`, with `parse` for its bytes)
//! and the eBPF ring buffer (`ebpf`), restarted by `supervisor`. Sources only turn bytes into
//! [`SourceEvent`](crate::core::neigh::SourceEvent)s and carry out dump requests; every decision
//! is the core's.

pub mod ebpf;
pub mod netlink;
pub mod parse;
pub(crate) mod supervisor;

/// CLOCK_MONOTONIC now, in nanoseconds: the clock `bpf_ktime_get_ns` reads.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}
