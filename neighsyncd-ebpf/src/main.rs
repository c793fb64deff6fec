//! neighsyncd's eBPF program: the kernel's neighbor tracepoints -> compact, final-state,
//! de-duplicated events in a ring buffer.
//!
//! Attach points (raw tracepoints: no tracefs needed, and no kernel BTF to load them, which
//! would cost the daemon ~15 MB of peak memory to parse):
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
//!
//! Reading an entry that another CPU may be updating (these tracepoints run after the entry's
//! lock is dropped):
//! * `ha` is read under its seqlock (`ha_lock`), with full barriers around the read; a read that
//!   never settles (4 tries) is flagged `uncertain` and the daemon resynchronises instead of
//!   trusting it.
//! * The ring slot is reserved *before* the entry is read: records follow reservation order, so
//!   the last record of a neighbor was read after its last update. What was emitted is recorded
//!   for de-duplication only if a second look finds the entry unchanged; otherwise the record is
//!   dropped, so the next event is emitted whatever it says.
//! * What remains: two updates of one neighbor on two CPUs in the same instant can still leave a
//!   stale de-duplication record, so that a later flip back is suppressed. rtnetlink's own
//!   notifications can arrive in the wrong order in that case too; the periodic audit, on by
//!   default with eBPF, repairs it.
#![no_std]
#![no_main]
// `atomic_xadd`: the BPF target has no `AtomicU64::fetch_add`, but its instruction set does.
#![allow(internal_features)]
#![feature(core_intrinsics)]

use aya_ebpf::helpers::{bpf_ktime_get_ns, bpf_probe_read_kernel, bpf_probe_read_kernel_buf};
use aya_ebpf::macros::{map, raw_tracepoint};
use aya_ebpf::maps::{HashMap, LruHashMap, PerCpuArray, RingBuf};
use aya_ebpf::programs::RawTracePointContext;
use core::intrinsics::AtomicOrdering;
use neighsyncd_common::{
    DedupKey, DedupValue, KIND_REMOVE, KIND_UPDATE, NETNS_MAX, NUD_VALID, NeighEvent, Offsets,
    RECORD_VERSION, class_of,
};

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
    neigh_flags_size: 4,
    neigh_ha_seq: 0,
};

/// Sized by the loader (`ebpf_ring_bytes`).
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 19, 0);

/// The network namespaces served (inode numbers -> 1), filled by the loader: events of any
/// other namespace are dropped before anything is read or reserved. One program serves every
/// SONiC namespace a daemon serves (multi-ASIC).
#[map]
static NETNS: HashMap<u32, u8> = HashMap::with_max_entries(NETNS_MAX, 0);

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

/// A word for a fully ordered atomic operation: the program's memory barrier.
#[map]
static BARRIER: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// `smp_mb()`: an atomic fetch-and-add is fully ordered in the BPF memory model (x86 `lock
/// xadd`, arm64 `ldaddal`), so the loads around it stay on their side of it.
#[inline(always)]
fn full_barrier() {
    if let Some(p) = BARRIER.get_ptr_mut(0) {
        // SAFETY: a per-CPU slot of a map, valid for the program's run; the result is used,
        // so this is BPF_ATOMIC | BPF_FETCH (fully ordered), not a plain XADD.
        let old = unsafe { core::intrinsics::atomic_xadd::<u64, u64, { AtomicOrdering::SeqCst }>(p, 1) };
        core::hint::black_box(old);
    }
}

const AF_INET: u32 = 2;
const AF_INET6: u32 = 10;
const NTF_EXT_LEARNED: u32 = 0x10;

#[inline(always)]
fn read<T>(base: *const u8, off: u32) -> Result<T, i32> {
    // SAFETY: bpf_probe_read_kernel validates the address; a bad one returns an error.
    unsafe { bpf_probe_read_kernel(base.wrapping_add(off as usize) as *const T) }
}

#[raw_tracepoint(tracepoint = "neigh_update_done")]
pub fn neigh_update_done(ctx: RawTracePointContext) -> i32 {
    // Argument 0 of this tracepoint is `struct neighbour *` (read through probe_read only).
    let n: *const u8 = ctx.arg(0);
    handle_or_count(n, KIND_UPDATE);
    0
}

#[raw_tracepoint(tracepoint = "neigh_timer_handler")]
pub fn neigh_timer_handler(ctx: RawTracePointContext) -> i32 {
    // Argument 0 of this tracepoint is `struct neighbour *` (read through probe_read only).
    let n: *const u8 = ctx.arg(0);
    handle_or_count(n, KIND_UPDATE);
    0
}

#[raw_tracepoint(tracepoint = "neigh_cleanup_and_release")]
pub fn neigh_cleanup_and_release(ctx: RawTracePointContext) -> i32 {
    // Argument 0 of this tracepoint is `struct neighbour *` (read through probe_read only).
    let n: *const u8 = ctx.arg(0);
    handle_or_count(n, KIND_REMOVE);
    0
}

/// An event that could not be read (a kernel read failed) is as good as lost: it is counted
/// with the drops, so userspace resynchronises instead of missing it silently.
#[inline(always)]
fn handle_or_count(n: *const u8, kind: u8) {
    if handle(n, kind).is_err() {
        count_drop();
    }
}

#[inline(always)]
fn count_drop() {
    if let Some(c) = DROPS.get_ptr_mut(0) {
        // SAFETY: a per-CPU slot: no other writer on this CPU while we run.
        unsafe { *c += 1 };
    }
}

/// Large temporaries live here, not on the 512-byte stack: what was emitted, and a second
/// look at the entry after it was.
#[repr(C)]
struct Scratch {
    emitted: DedupValue,
    again: DedupValue,
}

#[map]
static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// `ha` read into `dst` under `ha_lock` (the kernel's `neigh_ha_snapshot`); `false`: it never
/// settled.
#[inline(always)]
fn read_ha(n: *const u8, o: &Offsets, dst: &mut [u8; 32]) -> Result<bool, i32> {
    let src = n.wrapping_add(o.neigh_ha as usize);
    let mut tries = 0;
    while tries < 4 {
        let s1: u32 = read(n, o.neigh_ha_seq)?;
        if s1 & 1 == 0 {
            full_barrier();
            // SAFETY: bpf_probe_read_kernel validates the source; `dst` is ours.
            unsafe { bpf_probe_read_kernel_buf(src, dst) }?;
            full_barrier();
            let s2: u32 = read(n, o.neigh_ha_seq)?;
            if s1 == s2 {
                return Ok(true);
            }
        }
        tries += 1;
    }
    // SAFETY: as above.
    unsafe { bpf_probe_read_kernel_buf(src, dst) }?;
    Ok(false)
}

/// What the program reports of an entry, and what de-duplication compares, read into `out`.
/// Returns (state, flags, settled).
#[inline(always)]
fn snapshot(
    n: *const u8,
    dev: *const u8,
    o: &Offsets,
    out: &mut DedupValue,
) -> Result<(u8, u32, bool), i32> {
    let state: u8 = read(n, o.neigh_nud_state)?;
    let flags: u32 = if o.neigh_flags_size == 1 {
        u32::from(read::<u8>(n, o.neigh_flags)?)
    } else {
        read(n, o.neigh_flags)?
    };
    let mut alen: u8 = read(dev, o.dev_addr_len)?;
    if alen > 32 {
        alen = 32;
    }
    // rtnetlink reports no address outside NUD_VALID: neither do we.
    if state & NUD_VALID == 0 {
        alen = 0;
    }
    let settled = read_ha(n, o, &mut out.lladdr)?;
    let mut i = 0usize;
    while i < 32 {
        if i >= alen as usize {
            out.lladdr[i] = 0;
        }
        i += 1;
    }
    out.class = class_of(state);
    out.ext_learned = u8::from(flags & NTF_EXT_LEARNED != 0);
    out.lladdr_len = alen;
    out._pad = 0;
    Ok((state, flags, settled))
}

fn handle(n: *const u8, kind: u8) -> Result<(), i32> {
    // SAFETY: a read-only global the loader initialised before load.
    let o: Offsets = unsafe { core::ptr::read_volatile(&OFFSETS) };
    let dev: *const u8 = read(n, o.neigh_dev)?;
    let net: *const u8 = read(dev, o.dev_nd_net)?;
    let inum: u32 = read(net, o.net_ns_inum)?;
    // SAFETY: the value is only tested for presence.
    if unsafe { NETNS.get(&inum) }.is_none() {
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
    let key = DedupKey {
        netns: inum,
        ifindex,
        family,
        addr,
    };
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return Err(-1);
    };
    // SAFETY: this CPU's slot; nothing else runs on this CPU while we do.
    let scratch = unsafe { &mut *scratch };
    // A first look, before reserving: an update that changes nothing userspace was told (a
    // REACHABLE/STALE flap, a refresh) ends here without a ring record. A discarded record
    // would still wake the consumer: 200k wake-ups in a 200k-change flap storm, a second of
    // its CPU. Ending on this look is safe: an update after it fires the tracepoint again,
    // and that event is read after its own reservation.
    if kind == KIND_UPDATE
        && let Ok((_, _, true)) = snapshot(n, dev, &o, &mut scratch.again)
        // SAFETY: the value is compared at once; a concurrent update at worst re-emits.
        && let Some(prev) = unsafe { DEDUP.get(&key) }
        && *prev == scratch.again
    {
        return Ok(());
    }
    // Reserve first: the slot's place in the ring is fixed before the entry is read.
    let Some(mut entry) = EVENTS.reserve::<NeighEvent>(0) else {
        let _ = DEDUP.remove(&key);
        return Err(-1);
    };
    let Ok((state, flags, settled)) = snapshot(n, dev, &o, &mut scratch.emitted) else {
        entry.discard(0);
        let _ = DEDUP.remove(&key);
        return Err(-1);
    };
    if kind == KIND_UPDATE && settled {
        // SAFETY: the value is compared at once; a concurrent update at worst re-emits.
        if let Some(prev) = unsafe { DEDUP.get(&key) } {
            if *prev == scratch.emitted {
                entry.discard(0);
                return Ok(());
            }
        }
    }
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` is the reserved slot, ours until submitted; every field is written.
    unsafe {
        (*ev).ts_ns = bpf_ktime_get_ns();
        (*ev).version = RECORD_VERSION;
        (*ev).kind = kind;
        (*ev).family = family as u8;
        (*ev).netns = inum;
        (*ev).ifindex = ifindex;
        (*ev).flags = flags;
        (*ev).state = state;
        (*ev).lladdr_len = scratch.emitted.lladdr_len;
        (*ev).uncertain = u8::from(!settled);
        (*ev)._pad = [0; 5];
        (*ev).addr = addr;
        (*ev).lladdr = scratch.emitted.lladdr;
    }
    entry.submit(0);
    if kind == KIND_REMOVE || !settled {
        let _ = DEDUP.remove(&key);
        return Ok(());
    }
    // Record what was emitted only if the entry still says so: otherwise another CPU changed
    // it meanwhile, and the next event must be emitted whatever it says.
    match snapshot(n, dev, &o, &mut scratch.again) {
        Ok((_, _, true)) if scratch.again == scratch.emitted => {
            let _ = DEDUP.insert(&key, &scratch.emitted, 0);
        }
        _ => {
            let _ = DEDUP.remove(&key);
        }
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
