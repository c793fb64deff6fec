//! Types shared by the eBPF program (`neighsyncd-ebpf`) and the daemon: fixed-size,
//! `#[repr(C)]`, no pointers, no padding left undefined.
#![no_std]

/// `NeighEvent::kind`: the neighbor's state after an update (or a timer transition).
pub const KIND_UPDATE: u8 = 0;
/// `NeighEvent::kind`: the kernel released the neighbor (deleted, flushed, device gone).
pub const KIND_REMOVE: u8 = 1;

/// One neighbor event pushed into the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighEvent {
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC).
    pub ts_ns: u64,
    /// The network namespace's inode number.
    pub netns: u32,
    pub ifindex: u32,
    /// The neighbour's `flags` (NTF_* in the low byte).
    pub flags: u32,
    /// AF_INET (2) or AF_INET6 (10).
    pub family: u8,
    pub kind: u8,
    /// NUD state bits.
    pub state: u8,
    /// Link-layer address length (`dev->addr_len`, at most 32).
    pub lladdr_len: u8,
    /// IPv4 in the first 4 bytes, or IPv6.
    pub addr: [u8; 16],
    pub lladdr: [u8; 32],
}

/// Kernel struct offsets the daemon reads from the running kernel's BTF and hands to the
/// program as read-only globals (Rust eBPF gets no CO-RE relocations).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offsets {
    pub neigh_tbl: u32,
    pub neigh_dev: u32,
    pub neigh_primary_key: u32,
    pub neigh_ha: u32,
    pub neigh_nud_state: u32,
    pub neigh_flags: u32,
    pub tbl_family: u32,
    pub dev_ifindex: u32,
    pub dev_addr_len: u32,
    pub dev_nd_net: u32,
    pub net_ns_inum: u32,
    /// The daemon's own network namespace inode: events of other namespaces are dropped.
    pub netns_inum: u32,
}

/// The de-duplication map's key.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DedupKey {
    pub ifindex: u32,
    pub family: u32,
    pub addr: [u8; 16],
}

/// What was last emitted for a key.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DedupValue {
    /// The state class the SONiC rules distinguish (see the program).
    pub class: u8,
    pub ext_learned: u8,
    pub lladdr_len: u8,
    pub _pad: u8,
    pub lladdr: [u8; 32],
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain old data: repr(C), only integers and byte arrays, any bit pattern valid.
    unsafe impl aya::Pod for super::NeighEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Offsets {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::DedupKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::DedupValue {}
}
