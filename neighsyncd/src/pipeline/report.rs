//! The engine's reports, carried out: counts become metrics, notes log lines, and what APPL_DB
//! and the kernel hold goes to the management APIs' view.

use tracing::{debug, info, warn};

use super::Pipeline;
use crate::core::control::AppDbWriter;
use crate::core::engine::{Count, Note, Output};
use crate::core::key::NeighKey;
use crate::core::state::Told;
use crate::northbound::view::ViewPart;
use crate::runtime::log_throttle;
use crate::southbound::monotonic_ns;
use crate::telemetry::metrics::Metrics;

impl<W: AppDbWriter> Pipeline<W> {
    pub(super) fn reports(&self) -> Reports<'_> {
        Reports {
            metrics: &self.metrics,
            view: self.view.as_ref(),
        }
    }

    /// A key now holds `value` in APPL_DB, dirty since `since_ns`.
    pub(super) fn landed(
        &self,
        key: NeighKey,
        value: Option<crate::core::rules::NeighValue>,
        since_ns: u64,
    ) {
        self.metrics
            .event_to_appdb
            .observe(monotonic_ns().saturating_sub(since_ns) as f64 / 1e9);
        if let Some(view) = &self.view
            && !key.is_raw()
        {
            view.appl_update(key, value);
        }
    }

    /// Hot standby: a key holds `value` in APPL_DB as the leader wrote it, for the view.
    pub(super) fn followed(&self, key: NeighKey, value: Option<crate::core::rules::NeighValue>) {
        if let Some(view) = &self.view {
            view.appl_update(key, value);
        }
    }

    /// What APPL_DB holds changed wholesale (a read-back).
    pub(super) fn appl_reloaded(&self) {
        if let Some(view) = &self.view {
            for (key, t) in self.engine.told() {
                if let (Told::Value(v), false) = (t, key.is_raw()) {
                    view.appl_update(key, Some(v));
                }
            }
        }
    }

    /// What APPL_DB holds, by family and interface: after every write, and after every
    /// read-back (a restart with nothing to write must not show zero).
    pub(super) fn publish_gauges(&self) {
        let (v4, v6) = self.engine.told_counts();
        let m = &self.metrics;
        m.neighbors.with_label_values(&["IPv4"]).set(v4 as i64);
        m.neighbors.with_label_values(&["IPv6"]).set(v6 as i64);
        for (ifname, n) in self.engine.told_by_interface() {
            m.neighbors_by_interface
                .with_label_values(&[ifname.as_str()])
                .set(*n);
        }
    }
}

/// The reports a kernel event can make that need neither APPL_DB nor the engine: counts, log
/// lines and the view's kernel side. They are carried out at once even while a round trip is
/// out (see `intake`).
pub(super) struct Reports<'a> {
    pub(super) metrics: &'a Metrics,
    pub(super) view: Option<&'a ViewPart>,
}

impl Reports<'_> {
    /// Carries out `o` if it is one of these; hands it back otherwise.
    pub(super) fn carry_out(&self, o: Output) -> Option<Output> {
        match o {
            Output::Count(c) => self.count(c),
            Output::Note(n) => log_note(n),
            Output::Kernel { key, side } => self.kernel_side(key, side),
            Output::KernelGone(keys) => self.kernel_gone(keys),
            other => return Some(other),
        }
        None
    }

    fn count(&self, c: Count) {
        let m = self.metrics;
        match c {
            Count::Event(source, kind) => m.count_event(source, kind),
            Count::UnknownIfindex => m.unknown_ifindex.inc(),
            Count::Corrections(side, n) => {
                m.resync_corrections.with_label_values(&[side]).inc_by(n)
            }
            Count::Set => m.count_decision("set"),
            Count::Del => m.count_decision("del"),
            Count::Skip(r) => {
                m.count_decision("skip");
                m.skips.with_label_values(&[r.as_str()]).inc();
            }
            Count::Resync(cause) => m.resync(cause),
            Count::Malformed(reason) => m.malformed(reason),
            Count::NoopSuppressed(n) => m.noop_suppressed.inc_by(n),
            Count::SourceFailure(source, action) => {
                m.source_failures.with_label_values(&[source, action]).inc()
            }
            Count::AppDbReconnect => m.redis_reconnects.inc(),
        }
    }

    /// The kernel side of a neighbor, for the view (`None`: gone).
    fn kernel_side(&self, key: NeighKey, side: Option<crate::core::neigh::KernelSide>) {
        if let Some(view) = self.view {
            match side {
                Some(side) => view.kernel_update(key, side),
                None => view.kernel_remove(key),
            }
        }
    }

    /// Neighbors the kernel no longer has, for the view.
    fn kernel_gone(&self, keys: Vec<NeighKey>) {
        if let Some(view) = self.view {
            for key in keys {
                view.kernel_remove(key);
            }
        }
    }
}

/// The log line for each fact the engine reports.
pub(super) fn log_note(n: Note) {
    match n {
        Note::LinkRenamed { ifindex, old, new } => {
            info!(ifindex, old, new, "interface renamed")
        }
        Note::LinkRemoved { ifindex, name } => debug!(ifindex, name, "interface removed"),
        Note::Swept(swept) => info!(swept, "dump found neighbors gone"),
        Note::Lost(cause) => warn!(
            cause = cause.as_str(),
            "kernel events lost; resynchronising"
        ),
        Note::Malformed(reason) => log_throttle::warn_kind(reason),
        Note::Reevaluated => info!("dual-ToR/EVPN changed: re-evaluating every neighbor"),
        Note::LinkLocalReplayed { ifname, replayed } => info!(
            ifname,
            replayed, "IPv6 link-local enabled: replaying its neighbors"
        ),
        Note::LinkLocalWithdrawn { ifname, withdrawn } => info!(
            ifname,
            withdrawn, "IPv6 link-local disabled: withdrawing its neighbors"
        ),
        Note::Drift(drift) => warn!(drift, "APPL_DB differed from what was written; correcting"),
        Note::ReadBack { entries } => info!(entries, "APPL_DB NEIGH_TABLE read back"),
        Note::WarmTimerExpired { pending } => {
            info!(pending, "warmstart timer expired; reconciling")
        }
        Note::Reconcile(line) => info!("{line}"),
        Note::AppDbRestored => info!("APPL_DB connection restored; reconciling"),
        Note::Audit => info!("periodic audit"),
    }
}
