//! Types shared by the eBPF program (`neighsyncd-ebpf`) and the daemon: fixed-size,
//! `#[repr(C)]`, no pointers, no padding left undefined.
#![no_std]

/// `NeighEvent::kind`: the neighbor's state after an update (or a timer transition).
pub const KIND_UPDATE: u8 = 0;
/// `NeighEvent::kind`: the kernel released the neighbor (deleted, flushed, device gone).
pub const KIND_REMOVE: u8 = 1;

/// The version of [`NeighEvent`]: bumped with every change of its layout or meaning. The
/// daemon refuses records of another version (an object from another build).
pub const RECORD_VERSION: u16 = 2;

/// The most network namespaces one program serves (the `NETNS` map's size): a switch has one
/// per ASIC.
pub const NETNS_MAX: u32 = 256;

/// NUD states for which the kernel reports a link-layer address (`NUD_VALID`): rtnetlink
/// omits `NDA_LLADDR` in any other state, and so does the program.
pub const NUD_VALID: u8 = 0x80 | 0x40 | 0x02 | 0x10 | 0x04 | 0x08;

/// The state classes the SONiC rules tell apart. The program de-duplicates moves within a class
/// (a REACHABLE/STALE/DELAY flap writes nothing), so in eBPF mode a neighbor's state is known up
/// to its class: [`class_label`] says which states that is.
pub const fn class_of(state: u8) -> u8 {
    match state {
        0x02 | 0x04 | 0x08 => 1, // REACHABLE, STALE, DELAY: a set
        0x10 => 2,               // PROBE: dropped in EVPN mode
        0x01 | 0x20 => 3,        // INCOMPLETE, FAILED: a delete (zero MAC on dual-ToR)
        0x40 => 4,               // NOARP: depends on EXT_LEARNED and EVPN
        0x80 => 6,               // PERMANENT: a set (no timer moves it)
        _ => 5,                  // NONE and mixed states
    }
}

/// What is known of a state whose moves within its class are not reported: the class's
/// states, `|`-separated (a single state where the class has one).
pub const fn class_label(state: u8) -> &'static str {
    match class_of(state) {
        1 => "REACHABLE|STALE|DELAY",
        2 => "PROBE",
        3 => "INCOMPLETE|FAILED",
        4 => "NOARP",
        6 => "PERMANENT",
        _ => {
            if state == 0 {
                "NONE"
            } else {
                "MIXED"
            }
        }
    }
}

/// One neighbor event pushed into the ring buffer. 80 bytes, every byte defined.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighEvent {
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC), taken after the entry was read.
    pub ts_ns: u64,
    /// [`RECORD_VERSION`].
    pub version: u16,
    /// [`KIND_UPDATE`] or [`KIND_REMOVE`].
    pub kind: u8,
    /// AF_INET (2) or AF_INET6 (10).
    pub family: u8,
    /// The network namespace's inode number.
    pub netns: u32,
    pub ifindex: u32,
    /// The neighbour's `flags` (NTF_* in the low byte).
    pub flags: u32,
    /// NUD state bits.
    pub state: u8,
    /// Link-layer address length: `dev->addr_len` (at most 32) in a [`NUD_VALID`] state, else 0.
    pub lladdr_len: u8,
    /// 1: the link-layer address kept changing while it was read (its seqlock never settled);
    /// the daemon asks the kernel instead of trusting `lladdr`.
    pub uncertain: u8,
    pub _pad: [u8; 5],
    /// IPv4 in the first 4 bytes, or IPv6.
    pub addr: [u8; 16],
    pub lladdr: [u8; 32],
}

const _: () = assert!(core::mem::size_of::<NeighEvent>() == 80);

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
    /// `neighbour.flags` is a `u8` on older kernels and a `u32` on newer ones: 1 or 4.
    pub neigh_flags_size: u32,
    /// `neighbour.ha_lock`'s sequence counter, for a consistent read of `ha`.
    pub neigh_ha_seq: u32,
}

/// The de-duplication map's key.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DedupKey {
    /// The network namespace's inode number: one program serves several namespaces, whose
    /// interface indexes overlap.
    pub netns: u32,
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
