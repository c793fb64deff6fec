//! What the kernel said, what APPL_DB should hold, and what APPL_DB was told.
//!
//! * `kernel`: every IPv4/IPv6 neighbor the kernel has, keyed by (ifindex, ip), as last heard.
//! * `desired`: the `NEIGH_TABLE` the SONiC rules derive from the kernel's messages.
//! * `told`: what APPL_DB holds (as far as we wrote it, or read it back after a reconnect).
//!
//! Every change marks a key dirty; the writer drains dirty keys and writes only where
//! `desired` and `told` differ. That one mechanism gives per-key coalescing, no-op suppression
//! (a REACHABLE/STALE flap with the same MAC writes nothing), and "write only the difference"
//! for resyncs, Redis reconnects and restarts alike. Pure: no I/O.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::core::dense::DenseMap;
use crate::core::key::{IfName, LinkAddr, NeighKey};
use crate::core::links::LinkCache;
use crate::core::neigh::{NeighKind, NeighMsg, Origin};
use crate::core::ops::{Fields, Op};
use crate::core::rules::{self, ConfigSnapshot, Decision, Mac, NeighInput, NeighValue, SkipReason};

/// What APPL_DB holds for a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Told {
    Value(NeighValue),
    /// Fields we did not write ourselves (or cannot parse): always rewritten.
    Foreign,
}

/// The outcome of the rules for a kernel entry, kept for the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Set,
    Del,
    Skip(SkipReason),
}

pub use crate::core::key::KernelId;

/// What the state keeps of a kernel neighbor (its id is the map's key). 28 bytes, aligned to
/// 4 (`packed(4)`: the one u64 would otherwise pad it to 32, 4 MB at a million).
#[derive(Debug, Clone, Copy)]
#[repr(C, packed(4))]
pub struct KernelEntry {
    /// The interface name when the entry was last heard of (its APPL_DB key's first part).
    pub ifname: IfName,
    pub lladdr: LinkAddr,
    /// NUD state bits.
    pub state: u16,
    pub verdict: Verdict,
    /// NTF_* flags (the kernel's `ndm_flags` is 8 bits).
    pub flags: u8,
    /// CLOCK_MONOTONIC of the last live event for this entry (0: none).
    pub last_event_ns: u64,
    /// The dump generation that last saw the entry.
    pub seen_gen: u32,
}

impl KernelEntry {
    pub fn key(&self, id: &KernelId) -> NeighKey {
        NeighKey::of(self.ifname, id.ip())
    }
}

/// What the kernel said of a neighbor, as the rules read it.
#[derive(Clone, Copy)]
struct Heard<'a> {
    lladdr: Option<&'a [u8]>,
    state: u16,
    flags: u32,
}

impl KernelEntry {
    fn heard(&self) -> Heard<'_> {
        Heard {
            lladdr: self.lladdr.get(),
            state: self.state,
            flags: u32::from(self.flags),
        }
    }
}

/// One APPL_DB key: what it should hold, what it was told, and whether that is due a write.
/// A key with none of these is dropped. 24 bytes aligned to 4 (`packed(4)`), so that with its
/// 20-byte key it takes 44, not 48.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, packed(4))]
struct ApplSlot {
    desired: Option<NeighValue>,
    told: Option<Told>,
    /// Due a write since `since` (CLOCK_MONOTONIC); its position is flagged in `State::appl`.
    dirty: bool,
    /// Scratch for whole-table passes (a dump's sweep, a read-back); false between them.
    scratch: bool,
    since: u64,
}

impl ApplSlot {
    fn idle(&self) -> bool {
        self.desired.is_none() && self.told.is_none() && !self.dirty
    }
}

/// The dump attempts since events were last lost (see `core::dump`): an entry seen by any of
/// them was seen, and a live event since the first one began is newer than all their entries.
#[derive(Debug, Clone, Copy)]
struct DumpWindow {
    /// When the window's first attempt began (CLOCK_MONOTONIC).
    start_ns: u64,
    /// The generation of the window's first attempt ...
    first_gen: u32,
    /// ... and of the attempt in flight, which marks what it sees.
    gen_: u32,
}

/// A batch the writer took; committed or returned.
#[derive(Debug, Default)]
pub struct Batch {
    pub route_dels: Vec<Op>,
    pub ops: Vec<Op>,
    /// (key, what it will hold, when it became dirty)
    targets: Vec<(NeighKey, Option<NeighValue>, u64)>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.route_dels.is_empty() && self.ops.is_empty()
    }
}

/// Counts the caller turns into metrics.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    pub decision: Option<Verdict>,
    /// A dump entry ignored because a newer live event already spoke for the key.
    pub superseded: bool,
    pub unknown_ifindex: bool,
    /// The APPL_DB key the message was judged under.
    pub key: Option<NeighKey>,
    /// A dump entry changed what APPL_DB should hold: an event had been missed.
    pub corrected: bool,
}

/// What changed on the kernel side since the last look (for the API view). Publish `gone`
/// first: a key in both lists ends as `changed` says (looked up afresh, it may be gone too).
pub struct Touched {
    pub gone: Vec<NeighKey>,
    /// Keys whose kernel entry changed, with the entry's ifindex.
    pub changed: Vec<(NeighKey, u32)>,
}

// What a neighbor costs the state: at a million, every byte is a megabyte.
const _: () = assert!(std::mem::size_of::<(KernelId, KernelEntry)>() == 48);
const _: () = assert!(std::mem::size_of::<(NeighKey, ApplSlot)>() == 44);

/// Memory is a design constraint here (a million neighbors on a switch CPU): a kernel entry is
/// 48 bytes with its id, an APPL_DB key 44 with its key, with no heap allocation of their own
/// (names are interned, MACs inline); a key due a write is a bit.
#[derive(Debug, Default)]
pub struct State {
    kernel: DenseMap<KernelId, KernelEntry>,
    appl: DenseMap<NeighKey, ApplSlot>,
    /// Where the writer's next look for dirty keys begins: it goes round the table's flagged
    /// positions (a dirty key is a flag on its slot's position, no queue of keys).
    due_cursor: u32,
    route_dels: Vec<String>,
    dump: Option<DumpWindow>,
    /// Entries a live event deleted while a dump window was open, and when: a dump message
    /// for one of them may have been read before the delete (the dump and the events come
    /// over different channels), so it must not bring the entry back. Dense: a million
    /// deletes during one window (a table flushed while it is resynchronised) is a million
    /// tombstones, and a `HashMap`'s doubling buckets made them the daemon's peak.
    tombstones: DenseMap<KernelId, u64>,
    generation: u32,
    /// Kernel-side changes since the last [`State::take_touched`] (for the API view): keys
    /// whose kernel entry changed (with its ifindex), and keys whose entry went away. Two
    /// lists, so that a sweep of a million vanished entries is one list of keys, handed on
    /// as it is.
    touched: Vec<(NeighKey, u32)>,
    gone: Vec<NeighKey>,
    track_touched: bool,
    /// APPL_DB entries per interface (the first part of the key), for metrics.
    told_by_if: HashMap<IfName, i64>,
    /// APPL_DB entries by family (IPv4, IPv6), kept as they change: the gauges are read after
    /// every write, and counting the table each time made a burst quadratic.
    told_by_family: (usize, usize),
}

/// The family an APPL_DB entry is counted under (0: IPv4, 1: IPv6; what we cannot parse is
/// counted as IPv4).
fn family_of(t: &Told) -> usize {
    match t {
        Told::Value(v) if v.ipv6 => 1,
        _ => 0,
    }
}

impl State {
    #[cfg(test)]
    pub fn kernel(&self) -> impl Iterator<Item = (&KernelId, &KernelEntry)> {
        self.kernel.iter()
    }

    pub fn kernel_len(&self) -> usize {
        self.kernel.len()
    }

    pub fn kernel_entry(&self, ifindex: u32, ip: &IpAddr) -> Option<&KernelEntry> {
        self.kernel.get(&KernelId::new(ifindex, *ip)?)
    }

    /// What APPL_DB holds, as far as we know.
    pub fn told(&self) -> impl Iterator<Item = (NeighKey, Told)> + '_ {
        self.appl
            .iter()
            .filter_map(|(k, s)| s.told.map(|t| (*k, t)))
    }

    /// Keeps [`State::told_by_family`] as an entry goes from `old` to `new`.
    fn count_told(&mut self, old: Option<Told>, new: Option<Told>) {
        let (v4, v6) = &mut self.told_by_family;
        for (t, up) in [(old, false), (new, true)] {
            if let Some(t) = t {
                let n = if family_of(&t) == 1 {
                    &mut *v6
                } else {
                    &mut *v4
                };
                *n = if up { *n + 1 } else { n.saturating_sub(1) };
            }
        }
    }

    fn desired(&self, key: &NeighKey) -> Option<NeighValue> {
        self.appl.get(key).and_then(|s| s.desired)
    }

    fn set_desired(&mut self, key: NeighKey, value: Option<NeighValue>) -> Option<NeighValue> {
        match value {
            Some(v) => self
                .appl
                .get_or_insert_with(key, Default::default)
                .desired
                .replace(v),
            None => self.appl.get_mut(&key).and_then(|s| s.desired.take()),
        }
    }

    /// Sets what APPL_DB should hold for `key` and marks it due: one lookup for both.
    fn desire_at(&mut self, key: NeighKey, value: Option<NeighValue>, now_ns: u64) {
        let i = self.appl.position_or_insert_with(key, Default::default);
        if let Some((_, slot)) = self.appl.entry_at_mut(i) {
            slot.desired = value;
        }
        self.mark_at(i, now_ns);
    }

    pub fn pending(&self) -> usize {
        self.appl.flagged() + self.route_dels.len()
    }

    /// Records kernel-side changes for [`State::take_touched`] (off by default: costs a
    /// little per event, and only the API view needs it).
    pub fn track_touched(&mut self, on: bool) {
        self.track_touched = on;
    }

    /// Keys whose kernel side changed, with the kernel entry's id when it still exists.
    pub fn take_touched(&mut self) -> Touched {
        Touched {
            gone: std::mem::take(&mut self.gone),
            changed: std::mem::take(&mut self.touched),
        }
    }

    fn touch(&mut self, key: NeighKey, id: Option<KernelId>) {
        if self.track_touched {
            match id {
                Some(id) => self.touched.push((key, id.ifindex())),
                None => self.gone.push(key),
            }
        }
    }

    /// Applies one neighbor message.
    pub fn apply(
        &mut self,
        msg: &NeighMsg,
        links: &LinkCache,
        cfg: &ConfigSnapshot,
        now_ns: u64,
    ) -> Applied {
        let mut applied = Applied::default();
        let Some(id) = KernelId::new(msg.ifindex, msg.ip) else {
            // No kernel gives such an index: counted as unknown, and skipped.
            applied.unknown_ifindex = true;
            return applied;
        };
        let live_ts = match msg.origin {
            Origin::Live { ts_ns } => Some(ts_ns),
            Origin::Dump => None,
        };
        if let (None, Some(w)) = (live_ts, self.dump) {
            if let Some(e) = self.kernel.get_mut(&id) {
                e.seen_gen = w.gen_;
                if e.last_event_ns >= w.start_ns {
                    applied.superseded = true;
                    return applied;
                }
            } else if self.tombstones.get(&id).is_some_and(|t| *t >= w.start_ns) {
                // Deleted by a live event since the window began: the live stream has spoken
                // for this entry after the dump's view of it, including any re-creation.
                applied.superseded = true;
                return applied;
            }
        }
        // A delete keeps the name the entry was added under (the link may be gone already).
        let known = links.get(msg.ifindex).is_some();
        let added_as = match msg.kind {
            NeighKind::Del => self.kernel.get(&id).map(|e| e.ifname),
            NeighKind::New => None,
        };
        let ifname = added_as.unwrap_or_else(|| {
            applied.unknown_ifindex = !known;
            links.ifname(msg.ifindex)
        });
        let key = NeighKey::of(ifname, msg.ip);
        let desired_before = (live_ts.is_none() && self.dump.is_some()).then(|| self.desired(&key));
        // A write's latency counts from the kernel's event (eBPF: the kernel's timestamp;
        // netlink: when the socket read it), queueing before the engine included.
        let heard_ns = live_ts.unwrap_or(now_ns);
        let verdict = self.judge(
            msg.kind,
            key,
            links.master_name(msg.ifindex),
            Heard {
                lladdr: msg.lladdr.get(),
                state: msg.state,
                flags: msg.flags,
            },
            cfg,
            heard_ns,
        );
        applied.decision = Some(verdict);
        if let Some(before) = desired_before {
            applied.corrected = self.desired(&key) != before;
        }
        applied.key = Some(key);
        self.touch(key, (msg.kind == NeighKind::New).then_some(id));
        match msg.kind {
            NeighKind::Del => {
                self.kernel.remove(&id);
                if let (Some(ts), Some(w)) = (live_ts, self.dump)
                    && ts >= w.start_ns
                {
                    self.tombstones.insert(id, ts);
                }
            }
            NeighKind::New => {
                let gen_ = self.dump.map(|w| w.gen_).unwrap_or(0);
                let e = self.kernel.get_or_insert_with(id, || KernelEntry {
                    ifname,
                    lladdr: LinkAddr::ABSENT,
                    state: 0,
                    verdict,
                    flags: 0,
                    last_event_ns: 0,
                    seen_gen: 0,
                });
                e.ifname = ifname;
                e.lladdr = msg.lladdr;
                e.state = msg.state;
                // ndm_flags: 8 bits (the eBPF record keeps the low byte too).
                e.flags = (msg.flags & 0xff) as u8;
                e.verdict = verdict;
                if let Some(ts) = live_ts {
                    e.last_event_ns = e.last_event_ns.max(ts);
                }
                // Only the dump itself marks an entry seen: a live event that happened before
                // the dump began (but is applied during it) proves nothing about now, and one
                // that happened after is protected by its timestamp.
                if live_ts.is_none() && self.dump.is_some() {
                    e.seen_gen = gen_;
                }
            }
        }
        applied
    }

    /// Runs the rules for `key` and records what APPL_DB should hold.
    fn judge(
        &mut self,
        kind: NeighKind,
        key: NeighKey,
        master: Option<&str>,
        heard: Heard<'_>,
        cfg: &ConfigSnapshot,
        now_ns: u64,
    ) -> Verdict {
        let input = NeighInput {
            kind,
            ifname: key.ifname().as_str(),
            master,
            ip: key.ip(),
            lladdr: heard.lladdr,
            state: heard.state,
            flags: heard.flags,
        };
        match rules::decide(&input, cfg) {
            Decision::Set {
                value, route_del, ..
            } => {
                if let Some(r) = route_del {
                    self.route_dels.push(r);
                }
                self.desire_at(key, Some(value), now_ns);
                Verdict::Set
            }
            Decision::Del { .. } => {
                self.desire_at(key, None, now_ns);
                Verdict::Del
            }
            Decision::Skip(r) => Verdict::Skip(r),
        }
    }
}

mod appl_side;
mod dump_window;
mod rejudge;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;
