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

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::SystemTime;

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

impl Told {
    pub fn from_fields(fields: &Fields) -> Told {
        let mac = fields.get("neigh").and_then(|m| Mac::parse(m));
        let fam = fields.get("family").map(String::as_str);
        match (mac, fam, fields.len()) {
            (Some(mac), Some("IPv4"), 2) => Told::Value(NeighValue { mac, ipv6: false }),
            (Some(mac), Some("IPv6"), 2) => Told::Value(NeighValue { mac, ipv6: true }),
            _ => Told::Foreign,
        }
    }
}

/// The outcome of the rules for a kernel entry, kept for the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Set,
    Del,
    Skip(SkipReason),
}

#[derive(Debug, Clone)]
pub struct KernelEntry {
    pub ifindex: u32,
    pub ip: IpAddr,
    /// The interface name when the entry was last heard of (its APPL_DB key's first part).
    pub ifname: String,
    pub lladdr: Option<Vec<u8>>,
    pub state: u16,
    pub flags: u32,
    /// CLOCK_MONOTONIC of the last live event for this entry (0: none).
    pub last_event_ns: u64,
    /// The dump generation that last saw the entry.
    pub seen_gen: u64,
    pub verdict: Verdict,
    pub changed_at: SystemTime,
}

impl KernelEntry {
    pub fn key(&self) -> String {
        rules::neigh_key(&self.ifname, &self.ip)
    }
}

/// The dump attempts since events were last lost (see `core::dump`): an entry seen by any of
/// them was seen, and a live event since the first one began is newer than all their entries.
#[derive(Debug, Clone, Copy)]
struct DumpWindow {
    /// When the window's first attempt began (CLOCK_MONOTONIC).
    start_ns: u64,
    /// The generation of the window's first attempt ...
    first_gen: u64,
    /// ... and of the attempt in flight, which marks what it sees.
    gen_: u64,
}

/// A batch the writer took; committed or returned.
#[derive(Debug, Default)]
pub struct Batch {
    pub route_dels: Vec<Op>,
    pub ops: Vec<Op>,
    /// (key, what it will hold, when it became dirty)
    targets: Vec<(String, Option<NeighValue>, u64)>,
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
    pub key: Option<String>,
    /// A dump entry changed what APPL_DB should hold: an event had been missed.
    pub corrected: bool,
}

#[derive(Debug, Default)]
pub struct State {
    kernel: HashMap<(u32, IpAddr), KernelEntry>,
    desired: HashMap<String, NeighValue>,
    told: HashMap<String, Told>,
    /// Dirty keys and the CLOCK_MONOTONIC time they first became dirty.
    dirty: HashMap<String, u64>,
    route_dels: Vec<String>,
    dump: Option<DumpWindow>,
    /// Entries a live event deleted while a dump window was open, and when: a dump message
    /// for one of them may have been read before the delete (the dump and the events come
    /// over different channels), so it must not bring the entry back.
    tombstones: HashMap<(u32, IpAddr), u64>,
    generation: u64,
    /// Kernel-side changes since the last [`State::take_touched`] (for the API view).
    touched: Vec<(String, Option<(u32, IpAddr)>)>,
    track_touched: bool,
    /// APPL_DB entries per interface (the first part of the key), for metrics.
    told_by_if: HashMap<String, i64>,
}

fn ifname_of(key: &str) -> &str {
    key.split_once(':').map(|(i, _)| i).unwrap_or(key)
}

impl State {
    pub fn kernel(&self) -> impl Iterator<Item = &KernelEntry> {
        self.kernel.values()
    }

    pub fn kernel_entry(&self, ifindex: u32, ip: &IpAddr) -> Option<&KernelEntry> {
        self.kernel.get(&(ifindex, *ip))
    }

    pub fn told(&self) -> &HashMap<String, Told> {
        &self.told
    }

    pub fn pending(&self) -> usize {
        self.dirty.len() + self.route_dels.len()
    }

    /// Records kernel-side changes for [`State::take_touched`] (off by default: costs a
    /// little per event, and only the API view needs it).
    pub fn track_touched(&mut self, on: bool) {
        self.track_touched = on;
    }

    /// Keys whose kernel side changed, with the kernel entry's id when it still exists.
    pub fn take_touched(&mut self) -> Vec<(String, Option<(u32, IpAddr)>)> {
        std::mem::take(&mut self.touched)
    }

    fn touch(&mut self, key: String, id: Option<(u32, IpAddr)>) {
        if self.track_touched {
            self.touched.push((key, id));
        }
    }

    fn mark(&mut self, key: String, now_ns: u64) {
        self.dirty.entry(key).or_insert(now_ns);
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
        let id = (msg.ifindex, msg.ip);
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
        let ifname = match (msg.kind, self.kernel.get(&id)) {
            (NeighKind::Del, Some(e)) => e.ifname.clone(),
            _ => {
                applied.unknown_ifindex = !known;
                links.name(msg.ifindex)
            }
        };
        let desired_before = (live_ts.is_none() && self.dump.is_some()).then(|| {
            self.desired
                .get(&rules::neigh_key(&ifname, &msg.ip))
                .copied()
        });
        let verdict = self.decide_and_apply(
            msg.kind,
            &ifname,
            links.master_name(msg.ifindex),
            msg,
            cfg,
            now_ns,
        );
        applied.decision = Some(verdict);
        let key = rules::neigh_key(&ifname, &msg.ip);
        if let Some(before) = desired_before {
            applied.corrected = self.desired.get(&key).copied() != before;
        }
        applied.key = Some(key.clone());
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
                let e = self.kernel.entry(id).or_insert_with(|| KernelEntry {
                    ifindex: msg.ifindex,
                    ip: msg.ip,
                    ifname: ifname.clone(),
                    lladdr: None,
                    state: 0,
                    flags: 0,
                    last_event_ns: 0,
                    seen_gen: 0,
                    verdict,
                    changed_at: SystemTime::now(),
                });
                if e.lladdr != msg.lladdr || e.state != msg.state || e.verdict != verdict {
                    e.changed_at = SystemTime::now();
                }
                e.ifname = ifname;
                e.lladdr = msg.lladdr.clone();
                e.state = msg.state;
                e.flags = msg.flags;
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

    fn decide_and_apply(
        &mut self,
        kind: NeighKind,
        ifname: &str,
        master: Option<&str>,
        msg: &NeighMsg,
        cfg: &ConfigSnapshot,
        now_ns: u64,
    ) -> Verdict {
        let input = NeighInput {
            kind,
            ifname,
            master,
            ip: msg.ip,
            lladdr: msg.lladdr.as_deref(),
            state: msg.state,
            flags: msg.flags,
        };
        match rules::decide(&input, cfg) {
            Decision::Set {
                key,
                value,
                route_del,
            } => {
                if let Some(r) = route_del {
                    self.route_dels.push(r);
                }
                self.desired.insert(key.clone(), value);
                self.mark(key, now_ns);
                Verdict::Set
            }
            Decision::Del { key } => {
                self.desired.remove(&key);
                self.mark(key, now_ns);
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
