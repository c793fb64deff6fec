//! The engine: every decision of the sync loop, with no async, no I/O and no clock.
//!
//! `Engine::handle(now_ns, Input) -> Vec<Output>`: the async shell (`pipeline`) feeds it what
//! the kernel sources, CONFIG_DB, APPL_DB and the warm-restart timers said, and carries out
//! what comes back (writes, log lines, counts, view updates). The engine owns the state, the
//! link cache, the CONFIG_DB snapshot and the warm-restart reconcile phase; it decides what
//! APPL_DB must hold, what to write next, and how a warm start's differences are classified.
//! Its behaviour is recorded in scenario files (`engine/scenarios/`, see `engine/tests.rs`).

use std::collections::{HashMap, HashSet};

mod view;
mod vocabulary;
mod warm;

pub use vocabulary::{Count, Input, Note, Output};

use super::appdb_link::AppDbLink;
use super::key::{IfName, NeighKey};
use super::links::{LinkCache, LinkChange};
use super::neigh::{KernelSide, NeighKind, Origin, ResyncCause, SourceEvent};
use super::ops::Op;
use super::rules::{ConfigSnapshot, SkipReason};
use super::source_health::{SourceOrder, SourcePolicy, SourceReport, Wanted};
use super::state::{State, Told, Verdict};

/// Which source live neighbor events come from (a label in counts and the view).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveSource {
    Netlink,
    Ebpf,
}

impl LiveSource {
    pub fn as_str(self) -> &'static str {
        match self {
            LiveSource::Netlink => "netlink",
            LiveSource::Ebpf => "ebpf",
        }
    }
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Most operations in one APPL_DB write.
    pub batch_max: usize,
    /// The configured source (`--source`).
    pub source: Wanted,
    /// Report the kernel side of every changed neighbor ([`Output::Kernel`]) for the view.
    pub view: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Warm {
    Off,
    /// Waiting for the restore flag and the reconcile timer: nothing is written.
    Holding,
    /// The timer fired: the differences are being written.
    Reconciling,
}

pub struct Engine {
    cfg: EngineConfig,
    state: State,
    links: LinkCache,
    snapshot: ConfigSnapshot,
    initial_dump_done: bool,
    /// After a fallback to rtnetlink, live events older than this came from the detached
    /// eBPF program.
    drop_live_before: u64,
    warm: Warm,
    /// Keys a live event deleted during a warm start (DELETE), as against stale ones (STALE).
    warm_deleted: HashSet<String>,
    /// A write is out: no other until it is answered.
    writing: bool,
    sources: SourcePolicy,
    appdb: AppDbLink,
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Engine {
        let mut state = State::default();
        state.track_touched(cfg.view);
        Engine {
            state,
            links: LinkCache::default(),
            snapshot: ConfigSnapshot::default(),
            initial_dump_done: false,
            drop_live_before: 0,
            warm: Warm::Off,
            warm_deleted: HashSet::new(),
            writing: false,
            sources: SourcePolicy::new(cfg.source),
            appdb: AppDbLink::default(),
            cfg,
        }
    }

    pub fn handle(&mut self, now_ns: u64, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        self.handle_into(now_ns, input, &mut out);
        out
    }

    /// [`Engine::handle`], its outputs appended to `out` (a buffer the caller reuses).
    pub fn handle_into(&mut self, now_ns: u64, input: Input, out: &mut Vec<Output>) {
        match input {
            Input::Kernel(ev) => self.kernel(now_ns, ev, out),
            Input::Config(snapshot) => self.config(now_ns, snapshot, out),
            Input::Flush => self.flush(out),
            Input::Written(batch) => {
                self.writing = false;
                self.appdb.answered(now_ns, false);
                for (key, value, since_ns) in self.state.commit(batch) {
                    out.push(Output::Landed {
                        key,
                        value,
                        since_ns,
                    });
                }
                out.push(Output::Gauges);
                self.finish_warm(out);
            }
            Input::WriteFailed(batch) => {
                self.writing = false;
                self.state.abort(batch);
                out.push(Output::AppDb(self.appdb.failed()));
            }
            Input::ReadBack { entries, seed } => {
                let n = entries.len();
                self.appdb.answered(now_ns, true);
                let drift = self.state.replace_told(entries, seed, now_ns);
                if !seed && drift > 0 {
                    out.push(Output::Note(Note::Drift(drift)));
                    out.push(Output::Count(Count::Corrections("appl_db", drift as u64)));
                }
                out.push(Output::ApplReloaded);
                out.push(Output::Gauges);
                out.push(Output::Note(Note::ReadBack { entries: n }));
            }
            Input::WarmStart => self.warm = Warm::Holding,
            Input::Source(report) => {
                let ebpf_failed = matches!(report, SourceReport::EbpfFailed(_));
                for order in self.sources.handle(report) {
                    if ebpf_failed {
                        let action = match order {
                            SourceOrder::FallBack { .. } => "fell_back",
                            _ => "exited",
                        };
                        out.push(Output::Count(Count::SourceFailure("ebpf", action)));
                    }
                    out.push(Output::Source(order));
                }
            }
            Input::SwitchedToNetlink { since_ns } => self.drop_live_before = since_ns,
            Input::AppDb(report) => {
                let r = self.appdb.report(now_ns, report);
                if r.reconnected {
                    out.push(Output::Note(Note::AppDbRestored));
                    out.push(Output::Count(Count::AppDbReconnect));
                    out.push(Output::Count(Count::Resync(ResyncCause::RedisReconnect)));
                }
                out.extend(r.order.map(Output::AppDb));
            }
            Input::Tick => out.extend(self.appdb.tick(now_ns).map(Output::AppDb)),
            Input::ResyncRequested(cause) => {
                out.push(Output::Count(Count::Resync(cause)));
                out.push(Output::Dump(cause));
            }
            Input::AuditDue => {
                out.push(Output::Note(Note::Audit));
                out.push(Output::Count(Count::Resync(ResyncCause::Audit)));
                out.push(Output::Dump(ResyncCause::Audit));
                self.appdb.audit();
            }
            Input::TakeOver => self.appdb.audit(),
            Input::Observed(writes) => {
                for (key, told) in writes {
                    let key = NeighKey::from_appl_db(&key);
                    self.state.observe(key, told, now_ns);
                    if !key.is_raw() {
                        let value = match told {
                            Some(Told::Value(v)) => Some(v),
                            _ => None,
                        };
                        out.push(Output::Followed { key, value });
                    }
                }
                out.push(Output::Gauges);
            }
            Input::WarmTimerFired => {
                if self.warm == Warm::Holding {
                    out.push(Output::Note(Note::WarmTimerExpired {
                        pending: self.state.pending(),
                    }));
                    self.warm = Warm::Reconciling;
                }
            }
        }
        self.publish_touched(out);
    }

    /// Report the kernel side of every changed neighbor ([`Output::Kernel`]) from now on.
    pub fn report_kernel_side(&mut self, on: bool) {
        self.cfg.view = on;
        self.state.track_touched(on);
    }

    /// APPL_DB can be written now: connected, no warm hold.
    pub fn can_write(&self) -> bool {
        self.appdb.connected() && !self.holding()
    }

    /// Where live neighbor events come from (rtnetlink until a source is attached).
    pub fn live_source(&self) -> LiveSource {
        self.sources.live().unwrap_or(LiveSource::Netlink)
    }

    /// Writes are held (a warm start waiting for its reconcile timer).
    pub fn holding(&self) -> bool {
        self.warm == Warm::Holding
    }

    /// Keys whose APPL_DB value is due to change.
    pub fn pending(&self) -> usize {
        self.state.pending()
    }

    /// Hot standby: forgets due keys the leader has written (see `State::drop_settled`).
    pub fn drop_settled(&mut self) {
        self.state.drop_settled();
    }

    /// What APPL_DB holds, as far as we know.
    pub fn told(&self) -> impl Iterator<Item = (NeighKey, Told)> + '_ {
        self.state.told()
    }

    /// Neighbors APPL_DB holds, by family (IPv4, IPv6).
    pub fn told_counts(&self) -> (usize, usize) {
        self.state.told_counts()
    }

    /// APPL_DB entries per interface (interfaces that had some keep a zero).
    pub fn told_by_interface(&self) -> &HashMap<IfName, i64> {
        self.state.told_by_interface()
    }

    fn kernel(&mut self, now: u64, ev: SourceEvent, out: &mut Vec<Output>) {
        match ev {
            SourceEvent::Neigh(msg) => {
                if let Origin::Live { ts_ns } = msg.origin
                    && ts_ns < self.drop_live_before
                {
                    // Events of a detached eBPF program still in flight: a dump replaces them.
                    return;
                }
                let source = match msg.origin {
                    Origin::Dump => "dump",
                    Origin::Live { .. } => self.live_source().as_str(),
                };
                let kind = match msg.kind {
                    NeighKind::New => "new",
                    NeighKind::Del => "del",
                };
                out.push(Output::Count(Count::Event(source, kind)));
                let applied = self.state.apply(&msg, &self.links, &self.snapshot, now);
                if applied.unknown_ifindex {
                    out.push(Output::Count(Count::UnknownIfindex));
                }
                if applied.corrected && self.initial_dump_done {
                    out.push(Output::Count(Count::Corrections("kernel", 1)));
                }
                if self.warm != Warm::Off
                    && applied.decision == Some(Verdict::Del)
                    && let (Origin::Live { .. }, Some(k)) = (msg.origin, &applied.key)
                {
                    self.warm_deleted.insert(k.to_string());
                }
                match applied.decision {
                    Some(Verdict::Set) => out.push(Output::Count(Count::Set)),
                    Some(Verdict::Del) => out.push(Output::Count(Count::Del)),
                    Some(Verdict::Skip(r)) => out.push(Output::Count(Count::Skip(r))),
                    None => {}
                }
            }
            SourceEvent::Link(link) => {
                out.push(Output::Count(Count::Event("netlink", "link")));
                match self.links.apply(&link) {
                    LinkChange::Renamed { old } => {
                        out.push(Output::Note(Note::LinkRenamed {
                            ifindex: link.ifindex,
                            old,
                            new: link.name.clone(),
                        }));
                        self.state.rename(
                            link.ifindex,
                            &link.name,
                            &self.links,
                            &self.snapshot,
                            now,
                        );
                    }
                    LinkChange::Removed { name } => {
                        out.push(Output::Note(Note::LinkRemoved {
                            ifindex: link.ifindex,
                            name,
                        }));
                        self.state.link_removed(link.ifindex, &self.snapshot, now);
                    }
                    LinkChange::Added => {
                        self.state.link_added(
                            link.ifindex,
                            &link.name,
                            &self.links,
                            &self.snapshot,
                            now,
                        );
                    }
                    LinkChange::Updated | LinkChange::Unknown => {}
                }
            }
            SourceEvent::DumpStart { ts_ns, fresh } => self.state.dump_start(ts_ns, fresh),
            SourceEvent::DumpDone => {
                let swept = self.state.dump_done(&self.snapshot, now);
                if swept > 0 && self.initial_dump_done {
                    out.push(Output::Note(Note::Swept(swept)));
                    out.push(Output::Count(Count::Corrections("kernel", swept as u64)));
                }
                if !self.initial_dump_done {
                    self.initial_dump_done = true;
                    out.push(Output::Synced {
                        neighbors: self.state.kernel_len(),
                        links: self.links.len(),
                    });
                }
            }
            SourceEvent::Lost(cause) => {
                out.push(Output::Note(Note::Lost(cause)));
                out.push(Output::Count(Count::Resync(cause)));
            }
            SourceEvent::Malformed(reason) => {
                out.push(Output::Count(Count::Malformed(reason)));
                out.push(Output::Note(Note::Malformed(reason)));
            }
        }
    }

    fn config(&mut self, now: u64, new: ConfigSnapshot, out: &mut Vec<Output>) {
        let old = std::mem::replace(&mut self.snapshot, new);
        if old.dual_tor != self.snapshot.dual_tor || old.evpn != self.snapshot.evpn {
            out.push(Output::Note(Note::Reevaluated));
            out.push(Output::Count(Count::Resync(ResyncCause::ConfigChange)));
            self.state
                .reevaluate(|_, _| true, &self.links, &self.snapshot, now);
        }
        for ifname in sorted_difference(&self.snapshot.link_local, &old.link_local) {
            let id = IfName::new(&ifname);
            let replayed = self.state.reevaluate(
                |_, e| {
                    e.ifname == id
                        && matches!(e.verdict, Verdict::Skip(SkipReason::LinkLocalV6Disabled))
                },
                &self.links,
                &self.snapshot,
                now,
            );
            out.push(Output::Note(Note::LinkLocalReplayed { ifname, replayed }));
        }
        // Turned off: the link-local neighbors it let through leave APPL_DB, so what APPL_DB
        // holds stays a function of the kernel and CONFIG_DB, whatever the order in which a
        // burst and the knob reached us.
        for ifname in sorted_difference(&old.link_local, &self.snapshot.link_local) {
            let id = IfName::new(&ifname);
            let withdrawn = self.state.withdraw(
                |kid, e| {
                    e.ifname == id
                        && matches!(kid.ip(), std::net::IpAddr::V6(a) if super::rules::is_v6_link_local(&a))
                },
                SkipReason::LinkLocalV6Disabled,
                now,
            );
            out.push(Output::Note(Note::LinkLocalWithdrawn { ifname, withdrawn }));
        }
    }

    fn flush(&mut self, out: &mut Vec<Output>) {
        if !self.can_write() || self.writing {
            return;
        }
        let (batch, noop) = self.state.take_batch(self.cfg.batch_max);
        if noop > 0 {
            out.push(Output::Count(Count::NoopSuppressed(noop as u64)));
        }
        if batch.is_empty() {
            self.finish_warm(out);
            // Nothing due: an audit's read-back may run now.
            out.extend(self.appdb.idle().map(Output::AppDb));
            return;
        }
        if self.warm == Warm::Reconciling {
            for op in &batch.ops {
                out.push(Output::Note(Note::Reconcile(self.reconcile_line(op))));
            }
        }
        self.writing = true;
        out.push(Output::Write(batch));
    }
}

/// The names in `a` and not in `b`, in order (so that outputs do not depend on hashing).
fn sorted_difference(a: &HashSet<String>, b: &HashSet<String>) -> Vec<String> {
    let mut names: Vec<String> = a.difference(b).cloned().collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests;
