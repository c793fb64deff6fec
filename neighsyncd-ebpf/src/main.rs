//! neighsyncd's eBPF program: the kernel's neighbor tracepoints -> compact, final-state,
//! de-duplicated events in a ring buffer.
//!
//! Attach points (BTF tracepoints: no tracefs needed, typed arguments):
//! * `neigh_update_done(n, err)`: the end of every `__neigh_update` (adds, changes, deletes by
//!   `ip neigh`, ARP/NDP learning): the entry's final state after the update.
//! * `neigh_timer_handler(n, state)`: timer-driven transitions (REACHABLE -> STALE, DELAY ->
//!   PROBE -> FAILED), which `__neigh_update` does not see.
//! * `neigh_cleanup_and_release(n, rc)`: the entry is gone (deleted, flushed, device or
//!   namespace removed).
//! `neigh_create` is not needed: a new entry is NONE/INCOMPLETE until an update or the timer
//! resolves it, and rtnetlink does not report creation either. `neigh_event_send_*` only start
//! resolution (INCOMPLETE without a notification).
//!
//! Struct offsets come from userspace (read from the running kernel's BTF) in `OFFSETS`, so the
//! object loads on any kernel without a rebuild.
#![no_std]
#![no_main]

use aya_ebpf::helpers::{bpf_ktime_get_ns, bpf_probe_read_kernel};
use aya_ebpf::macros::{btf_tracepoint, map};
use aya_ebpf::maps::{LruHashMap, PerCpuArray, RingBuf};
use aya_ebpf::programs::BtfTracePointContext;
use neighsyncd_common::{DedupKey, DedupValue, KIND_REMOVE, KIND_UPDATE, NeighEvent, Offsets};

/// Overridden by the loader (`EbpfLoader::override_global`).
#[unsafe(no_mangle)]
static OFFSETS: Offsets = Offsets {
    neigh_tbl: 0,
    neigh_dev: 0,
    neigh_primary_key: 0,
    neigh_ha: 0,
    neigh_nud_state: 0,
    neigh_flags: 0,
    tbl_family: 0,
    dev_ifindex: 0,
    dev_addr_len: 0,
    dev_nd_net: 0,
    net_ns_inum: 0,
    netns_inum: 0,
};

/// Sized by the loader (`ebpf_ring_bytes`).
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 22, 0);

/// Last emitted (state class, MAC, EXT_LEARNED) per neighbor. Sized by the loader.
///
/// Why eviction never loses a change: an entry only suppresses an event identical to the one
/// emitted last. When the LRU evicts a key, the next event for it finds nothing and is emitted
/// as if new: at worst a duplicate userspace writes nothing for, never a suppressed change.
/// The map is updated only after the event is in the ring; a failed reserve removes the key,
/// so the next event is emitted again (and the counted drop makes userspace resync).
#[map]
static DEDUP: LruHashMap<DedupKey, DedupValue> = LruHashMap::with_max_entries(262_144, 0);

/// Ring-buffer reserve failures, per CPU; userspace sums them and resyncs on any increase.
#[map]
static DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

const AF_INET: u32 = 2;
const AF_INET6: u32 = 10;
const NTF_EXT_LEARNED: u32 = 0x10;

/// The state classes the SONiC rules tell apart; moves within a class write nothing.
fn class_of(state: u8) -> u8 {
    match state {
        0x02 | 0x04 | 0x08 | 0x80 => 1, // REACHABLE, STALE, DELAY, PERMANENT: a set
        0x10 => 2,                      // PROBE: dropped in EVPN mode
        0x01 | 0x20 => 3,               // INCOMPLETE, FAILED: a delete (zero MAC on dual-ToR)
        0x40 => 4,                      // NOARP: depends on EXT_LEARNED and EVPN
        _ => 5,                         // NONE and mixed states
    }
}

#[inline(always)]
fn read<T>(base: *const u8, off: u32) -> Result<T, i32> {
    // SAFETY: bpf_probe_read_kernel validates the address; a bad one returns an error.
    unsafe { bpf_probe_read_kernel(base.wrapping_add(off as usize) as *const T) }
}

#[btf_tracepoint(function = "neigh_update_done")]
pub fn neigh_update_done(ctx: BtfTracePointContext) -> i32 {
    // Argument 0 of this tracepoint is `struct neighbour *` (read through probe_read only).
    let n: *const u8 = ctx.arg(0);
    let _ = handle(n, KIND_UPDATE);
    0
}

#[btf_tracepoint(function = "neigh_timer_handler")]
pub fn neigh_timer_handler(ctx: BtfTracePointContext) -> i32 {
    // Argument 0 of this tracepoint is `struct neighbour *` (read through probe_read only).
    let n: *const u8 = ctx.arg(0);
    let _ = handle(n, KIND_UPDATE);
    0
}

#[btf_tracepoint(function = "neigh_cleanup_and_release")]
pub fn neigh_cleanup_and_release(ctx: BtfTracePointContext) -> i32 {
    // Argument 0 of this tracepoint is `struct neighbour *` (read through probe_read only).
    let n: *const u8 = ctx.arg(0);
    let _ = handle(n, KIND_REMOVE);
    0
}

fn handle(n: *const u8, kind: u8) -> Result<(), i32> {
    // SAFETY: a read-only global the loader initialised before load.
    let o: Offsets = unsafe { core::ptr::read_volatile(&OFFSETS) };
    let dev: *const u8 = read(n, o.neigh_dev)?;
    let net: *const u8 = read(dev, o.dev_nd_net)?;
    let inum: u32 = read(net, o.net_ns_inum)?;
    if inum != o.netns_inum {
        return Ok(());
    }
    let tbl: *const u8 = read(n, o.neigh_tbl)?;
    let family: u32 = read(tbl, o.tbl_family)?;
    let mut addr = [0u8; 16];
    if family == AF_INET {
        let a: [u8; 4] = read(n, o.neigh_primary_key)?;
        addr[0] = a[0];
        addr[1] = a[1];
        addr[2] = a[2];
        addr[3] = a[3];
    } else if family == AF_INET6 {
        addr = read(n, o.neigh_primary_key)?;
    } else {
        return Ok(());
    }
    let ifindex: u32 = read(dev, o.dev_ifindex)?;
    let state: u8 = read(n, o.neigh_nud_state)?;
    let flags: u32 = read(n, o.neigh_flags)?;
    let mut alen: u8 = read(dev, o.dev_addr_len)?;
    if alen > 32 {
        alen = 32;
    }
    let mut ha: [u8; 32] = read(n, o.neigh_ha)?;
    let mut i = 0usize;
    while i < 32 {
        if i >= alen as usize {
            ha[i] = 0;
        }
        i += 1;
    }
    let key = DedupKey {
        ifindex,
        family,
        addr,
    };
    let value = DedupValue {
        class: class_of(state),
        ext_learned: u8::from(flags & NTF_EXT_LEARNED != 0),
        lladdr_len: alen,
        _pad: 0,
        lladdr: ha,
    };
    if kind == KIND_UPDATE {
        // SAFETY: the value is copied out at once; a concurrent update at worst re-emits.
        if let Some(prev) = unsafe { DEDUP.get(&key) } {
            if *prev == value {
                return Ok(());
            }
        }
    }
    let Some(mut entry) = EVENTS.reserve::<NeighEvent>(0) else {
        if let Some(c) = DROPS.get_ptr_mut(0) {
            // SAFETY: a per-CPU slot: no other writer on this CPU while we run.
            unsafe { *c += 1 };
        }
        let _ = DEDUP.remove(&key);
        return Ok(());
    };
    entry.write(NeighEvent {
        // SAFETY: no preconditions.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        netns: inum,
        ifindex,
        flags,
        family: family as u8,
        kind,
        state,
        lladdr_len: alen,
        addr,
        lladdr: ha,
    });
    entry.submit(0);
    if kind == KIND_REMOVE {
        let _ = DEDUP.remove(&key);
    } else {
        let _ = DEDUP.insert(&key, &value, 0);
    }
    Ok(())
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
