//! Prometheus metrics. Every label has a bounded set of values (no per-IP labels).
//!
//! Longer than 450 lines because every metric is declared here once, with its help text and
//! its label values made visible from the start (hot standby's are in `ha_metrics`).

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::core::neigh::ResyncCause;
use crate::core::rules::SkipReason;
pub use crate::telemetry::exposition::MetricsSet;

/// The stable reasons bad kernel input is skipped for.
pub const MALFORMED_REASONS: [&str; 10] = [
    "truncated_netlink_header",
    "bad_netlink_length",
    "undecodable_message",
    "bad_address",
    "missing_address",
    "address_family_mismatch",
    "missing_ifname",
    "truncated_datagram",
    "bad_ringbuf_record",
    "ringbuf_record_version",
];

const SOURCES: [&str; 3] = ["netlink", "ebpf", "dump"];
const KINDS: [&str; 2] = ["new", "del"];
const DECISIONS: [&str; 3] = ["set", "del", "skip"];

/// The series the pipeline bumps per event and per decision, looked up once: a labelled
/// lookup hashes its label values under a lock, 2% of the daemon's CPU in an eBPF burst.
struct Hot {
    events: [[IntCounter; KINDS.len()]; SOURCES.len()],
    decisions: [IntCounter; DECISIONS.len()],
}

impl Hot {
    fn resolve(events: &IntCounterVec, decisions: &IntCounterVec) -> Hot {
        Hot {
            events: SOURCES.map(|s| KINDS.map(|k| events.with_label_values(&[s, k]))),
            decisions: DECISIONS.map(|d| decisions.with_label_values(&[d])),
        }
    }
}

pub struct Metrics {
    pub registry: Registry,
    /// Kernel events by source (netlink|ebpf|dump) and kind (new|del|link).
    pub events: IntCounterVec,
    /// Rule outcomes: set, del, skip (with reason).
    pub decisions: IntCounterVec,
    pub skips: IntCounterVec,
    /// Bad input skipped, by reason.
    pub malformed_total: IntCounterVec,
    /// Neighbors of other families (bridge FDB) ignored.
    pub not_ip: IntCounter,
    pub unknown_ifindex: IntCounter,
    pub resyncs: IntCounterVec,
    /// Entries a resync or audit corrected, by where the drift was: `kernel` (missed kernel
    /// events) or `appl_db` (APPL_DB changed behind our back, or lost our writes).
    pub resync_corrections: IntCounterVec,
    pub netlink_overruns: IntCounter,
    /// Kernel dump attempts by how far they could be trusted (see `core::dump::Verdict`).
    pub dump_attempts: IntCounterVec,
    /// Management listeners that could not bind or failed (retried), by listener.
    pub listener_failures: IntCounterVec,
    /// Source tasks that died, by source and what was done about it.
    pub source_failures: IntCounterVec,
    /// APPL_DB operations written, by table and op.
    pub appdb_ops: IntCounterVec,
    /// Writes not made because APPL_DB already held the value.
    pub noop_suppressed: IntCounter,
    pub appdb_batches: IntCounter,
    pub redis_roundtrip: Histogram,
    pub redis_errors: IntCounter,
    pub redis_reconnects: IntCounter,
    pub redis_connected: IntGauge,
    /// Kernel event to APPL_DB write latency.
    pub event_to_appdb: Histogram,
    pub pending_ops: IntGauge,
    pub neighbors: IntGaugeVec,
    /// Neighbors held in APPL_DB per interface (interfaces are few: bounded).
    pub neighbors_by_interface: IntGaugeVec,
    pub source_active: IntGaugeVec,
    /// The kernel's neighbor tables (host-wide), by family: entries, gc thresholds, and how
    /// often they were full or forced a collection.
    pub kernel_neigh_entries: IntGaugeVec,
    pub kernel_neigh_gc_thresh: IntGaugeVec,
    pub kernel_neigh_table_fulls: IntCounterVec,
    pub kernel_neigh_forced_gc_runs: IntCounterVec,
    /// The kernel's cumulative counts as last read, to export their increase.
    kernel_counts_seen: std::sync::Mutex<std::collections::HashMap<(String, &'static str), u64>>,
    pub ringbuf_drops: IntCounter,
    pub ebpf_events: IntCounter,
    pub build_info: IntGaugeVec,
    pub config_reloads: IntCounter,
    pub stage_seconds: HistogramVec,
    /// Hot standby's, registered with `ha` only ([`Metrics::enable_ha`]).
    pub(super) ha: std::sync::OnceLock<super::ha_metrics::HaMetrics>,
    /// The series bumped per event, resolved once (see [`Hot`]).
    hot: Hot,
}

pub(super) fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help).namespace("neighsyncd"), labels)
        .expect("static metric definition");
    r.register(Box::new(c.clone())).expect("unique metric name");
    c
}

pub(super) fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::with_opts(Opts::new(name, help).namespace("neighsyncd"))
        .expect("static metric definition");
    r.register(Box::new(c.clone())).expect("unique metric name");
    c
}

pub(super) fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::with_opts(Opts::new(name, help).namespace("neighsyncd"))
        .expect("static metric definition");
    r.register(Box::new(g.clone())).expect("unique metric name");
    g
}

pub(super) fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help).namespace("neighsyncd"), labels)
        .expect("static metric definition");
    r.register(Box::new(g.clone())).expect("unique metric name");
    g
}

pub(super) fn histogram(r: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let h = Histogram::with_opts(
        HistogramOpts::new(name, help)
            .namespace("neighsyncd")
            .buckets(buckets),
    )
    .expect("static metric definition");
    r.register(Box::new(h.clone())).expect("unique metric name");
    h
}

impl Metrics {
    pub fn new() -> Metrics {
        Self::for_namespace(None)
    }

    /// Multi-ASIC: every series labelled `namespace="<ns>"`, so that one Prometheus tells the
    /// daemons of a device apart.
    pub fn for_namespace(namespace: Option<&str>) -> Metrics {
        let labels = namespace
            .map(|ns| std::collections::HashMap::from([("namespace".to_string(), ns.to_string())]));
        let r = Registry::new_custom(None, labels).unwrap_or_default();
        // 25 µs to 13 s, doubling: fine enough to tell 1 ms from 2 ms.
        let latency = prometheus::exponential_buckets(0.000025, 2.0, 20).expect("static buckets");
        let events = counter_vec(
            &r,
            "events_total",
            "Kernel neighbor and link events received, by source and kind.",
            &["source", "kind"],
        );
        let decisions = counter_vec(
            &r,
            "rule_decisions_total",
            "SONiC rule outcomes.",
            &["outcome"],
        );
        let m = Metrics {
            hot: Hot::resolve(&events, &decisions),
            events,
            decisions,
            skips: counter_vec(
                &r,
                "rule_skips_total",
                "Neighbor messages the SONiC rules skipped, by reason.",
                &["reason"],
            ),
            malformed_total: counter_vec(
                &r,
                "malformed_input_total",
                "Kernel input that could not be used, by reason.",
                &["reason"],
            ),
            not_ip: counter(
                &r,
                "non_ip_neighbors_total",
                "Neighbor messages of non-IP families (bridge FDB) ignored.",
            ),
            unknown_ifindex: counter(
                &r,
                "unknown_ifindex_total",
                "Neighbor messages for an ifindex the link cache did not know.",
            ),
            resyncs: counter_vec(
                &r,
                "resyncs_total",
                "Full resynchronisations (dump + diff), by cause.",
                &["cause"],
            ),
            resync_corrections: counter_vec(
                &r,
                "resync_corrections_total",
                "Entries a resynchronisation or audit corrected, by where the drift was (kernel, appl_db).",
                &["side"],
            ),
            netlink_overruns: counter(
                &r,
                "netlink_overruns_total",
                "Netlink receive buffer overruns (ENOBUFS).",
            ),
            dump_attempts: counter_vec(
                &r,
                "dump_attempts_total",
                "Kernel neighbor dump attempts, by verdict: clean (accepted), churned (entries were destroyed on the host while it ran), resized (the hash table grew), partial (cut short). Only a clean one, or three churned ones in a row, complete a resynchronisation.",
                &["verdict"],
            ),
            listener_failures: counter_vec(
                &r,
                "listener_failures_total",
                "Management listeners (metrics, REST, gRPC) that could not bind or failed; each is retried.",
                &["listener"],
            ),
            source_failures: counter_vec(
                &r,
                "source_failures_total",
                "Neighbor source tasks that died, by source and action: restarted, fell_back (to rtnetlink) or exited (the daemon stops with an error).",
                &["source", "action"],
            ),
            appdb_ops: counter_vec(
                &r,
                "appdb_operations_total",
                "ProducerStateTable operations written, by table and op.",
                &["table", "op"],
            ),
            noop_suppressed: counter(
                &r,
                "noop_writes_suppressed_total",
                "Neighbor updates not written because APPL_DB already held the value.",
            ),
            appdb_batches: counter(
                &r,
                "appdb_batches_total",
                "Redis round trips that carried APPL_DB writes.",
            ),
            redis_roundtrip: histogram(
                &r,
                "redis_roundtrip_seconds",
                "Redis round-trip latency of APPL_DB write batches.",
                latency.clone(),
            ),
            redis_errors: counter(&r, "redis_errors_total", "Redis operations that failed."),
            redis_reconnects: counter(
                &r,
                "redis_reconnects_total",
                "Successful reconnections to Redis after a failure.",
            ),
            redis_connected: gauge(
                &r,
                "redis_connected",
                "1 when the APPL_DB connection is up.",
            ),
            event_to_appdb: histogram(
                &r,
                "event_to_appdb_seconds",
                "Latency from a kernel neighbor event (kernel timestamp in eBPF mode, receipt in netlink mode) to the end of its APPL_DB write.",
                latency.clone(),
            ),
            pending_ops: gauge(
                &r,
                "pending_operations",
                "Neighbor keys whose APPL_DB write is pending.",
            ),
            neighbors: gauge_vec(
                &r,
                "neighbors",
                "Neighbors held in APPL_DB by family.",
                &["family"],
            ),
            neighbors_by_interface: gauge_vec(
                &r,
                "interface_neighbors",
                "Neighbors held in APPL_DB per interface.",
                &["interface"],
            ),
            source_active: gauge_vec(
                &r,
                "source_active",
                "The active neighbor event source (1) and why it was chosen.",
                &["source", "reason"],
            ),
            kernel_neigh_entries: gauge_vec(
                &r,
                "kernel_neigh_entries",
                "Entries in the kernel's neighbor table (host-wide), by family.",
                &["family"],
            ),
            kernel_neigh_gc_thresh: gauge_vec(
                &r,
                "kernel_neigh_gc_thresh",
                "The kernel neighbor table's gc_thresh1/2/3 (level), by family; past gc_thresh3 new neighbors are refused.",
                &["family", "level"],
            ),
            kernel_neigh_table_fulls: counter_vec(
                &r,
                "kernel_neigh_table_fulls_total",
                "Times the kernel's neighbor table was full and refused an entry, by family.",
                &["family"],
            ),
            kernel_neigh_forced_gc_runs: counter_vec(
                &r,
                "kernel_neigh_forced_gc_runs_total",
                "Forced garbage collections of the kernel's neighbor table, by family.",
                &["family"],
            ),
            kernel_counts_seen: Default::default(),
            ringbuf_drops: counter(
                &r,
                "ringbuf_drops_total",
                "Events the eBPF program could not reserve in the ring buffer.",
            ),
            ebpf_events: counter(
                &r,
                "ebpf_events_total",
                "Events consumed from the eBPF ring buffer.",
            ),
            build_info: gauge_vec(&r, "build_info", "Build information.", &["version"]),
            config_reloads: counter(
                &r,
                "config_db_refreshes_total",
                "CONFIG_DB snapshot refreshes.",
            ),
            stage_seconds: {
                let h = HistogramVec::new(
                    HistogramOpts::new(
                        "stage_seconds",
                        "Duration of pipeline stages (resync, flush).",
                    )
                    .namespace("neighsyncd")
                    .buckets(latency),
                    &["stage"],
                )
                .expect("static metric definition");
                r.register(Box::new(h.clone())).expect("unique metric name");
                h
            },
            registry: r,
            ha: std::sync::OnceLock::new(),
        };
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        // Make every bounded label value visible from the start (rate() needs a zero sample).
        for c in ResyncCause::ALL {
            m.resyncs.with_label_values(&[c.as_str()]);
        }
        for s in SkipReason::ALL {
            m.skips.with_label_values(&[s.as_str()]);
        }
        for f in ["IPv4", "IPv6"] {
            m.neighbors.with_label_values(&[f]);
        }
        for side in ["kernel", "appl_db"] {
            m.resync_corrections.with_label_values(&[side]);
        }
        for (t, op) in [
            ("NEIGH_TABLE", "set"),
            ("NEIGH_TABLE", "del"),
            ("ROUTE_TABLE", "del"),
        ] {
            m.appdb_ops.with_label_values(&[t, op]);
        }
        // Every source's new/del and every decision exist already: `Hot` resolved them.
        m.events.with_label_values(&["netlink", "link"]);
        for reason in MALFORMED_REASONS {
            m.malformed_total.with_label_values(&[reason]);
        }
        m.stage_seconds.with_label_values(&["appl_db_read_back"]);
        for l in crate::telemetry::health::Listener::ALL {
            m.listener_failures.with_label_values(&[l.as_str()]);
        }
        for (source, action) in [
            ("netlink", "restarted"),
            ("netlink", "exited"),
            ("ebpf", "fell_back"),
            ("ebpf", "exited"),
        ] {
            m.source_failures.with_label_values(&[source, action]);
        }
        // The kernel tables' series exist from the start (their first reading follows at once).
        for family in ["IPv4", "IPv6"] {
            m.kernel_neigh_entries.with_label_values(&[family]);
            for level in ["1", "2", "3"] {
                m.kernel_neigh_gc_thresh.with_label_values(&[family, level]);
            }
            m.kernel_neigh_table_fulls.with_label_values(&[family]);
            m.kernel_neigh_forced_gc_runs.with_label_values(&[family]);
        }
        for v in crate::core::dump::Verdict::ALL {
            m.dump_attempts.with_label_values(&[v.as_str()]);
        }
        m
    }

    /// Counts a kernel message of `source` (netlink|ebpf|dump) and `kind` (new|del|link).
    pub fn count_event(&self, source: &str, kind: &str) {
        let s = SOURCES.iter().position(|x| *x == source);
        let k = KINDS.iter().position(|x| *x == kind);
        match (s, k) {
            (Some(s), Some(k)) => self.hot.events[s][k].inc(),
            _ => self.events.with_label_values(&[source, kind]).inc(),
        }
    }

    /// Counts a rule outcome: `set`, `del` or `skip`.
    pub fn count_decision(&self, outcome: &str) {
        match DECISIONS.iter().position(|x| *x == outcome) {
            Some(i) => self.hot.decisions[i].inc(),
            None => self.decisions.with_label_values(&[outcome]).inc(),
        }
    }

    pub fn malformed(&self, reason: &str) {
        self.malformed_total.with_label_values(&[reason]).inc();
    }

    /// A reading of a kernel neighbor table (`family`: IPv4 or IPv6).
    pub fn kernel_table(&self, family: &str, t: &crate::core::dump::TableStats) {
        self.kernel_neigh_entries
            .with_label_values(&[family])
            .set(i64::from(t.entries));
        for (level, v) in [
            ("1", t.gc_thresh1),
            ("2", t.gc_thresh2),
            ("3", t.gc_thresh3),
        ] {
            self.kernel_neigh_gc_thresh
                .with_label_values(&[family, level])
                .set(i64::from(v));
        }
        let Ok(mut seen) = self.kernel_counts_seen.lock() else {
            return;
        };
        for (what, counter, now) in [
            ("table_fulls", &self.kernel_neigh_table_fulls, t.table_fulls),
            (
                "forced_gc_runs",
                &self.kernel_neigh_forced_gc_runs,
                t.forced_gc_runs,
            ),
        ] {
            // The first reading exports the kernel's count so far; a count that went back
            // (it cannot, short of a reboot) starts again from it.
            let before = seen.insert((family.to_string(), what), now);
            let delta = match before {
                Some(b) if now >= b => now - b,
                _ => now,
            };
            counter.with_label_values(&[family]).inc_by(delta);
        }
    }

    /// Live neighbor events come from `source` now (`reason`: why); any other is 0.
    pub fn source_switched(&self, source: &str, reason: &str) {
        for r in ["auto", "configured"] {
            self.source_active.with_label_values(&["ebpf", r]).set(0);
        }
        self.source_active
            .with_label_values(&[source, reason])
            .set(1);
    }

    pub fn resync(&self, cause: ResyncCause) {
        self.resyncs.with_label_values(&[cause.as_str()]).inc();
    }

    pub fn render(&self) -> String {
        let families = self.registry.gather();
        TextEncoder::new()
            .encode_to_string(&families)
            .unwrap_or_else(|e| format!("# encoding failed: {e}\n"))
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_event_counters_land_in_their_labelled_series() {
        let m = Metrics::new();
        m.count_event("ebpf", "new");
        m.count_event("ebpf", "new");
        m.count_event("dump", "del");
        m.count_event("netlink", "link");
        m.count_decision("skip");
        m.count_decision("set");
        assert_eq!(m.events.with_label_values(&["ebpf", "new"]).get(), 2);
        assert_eq!(m.events.with_label_values(&["dump", "del"]).get(), 1);
        assert_eq!(m.events.with_label_values(&["netlink", "link"]).get(), 1);
        assert_eq!(m.events.with_label_values(&["netlink", "new"]).get(), 0);
        assert_eq!(m.decisions.with_label_values(&["skip"]).get(), 1);
        assert_eq!(m.decisions.with_label_values(&["set"]).get(), 1);
        let text = m.render();
        assert!(
            text.contains(r#"neighsyncd_events_total{kind="new",source="ebpf"} 2"#),
            "{text}"
        );
    }
}
