//! The sync loop: source events -> rules -> state -> APPL_DB writer.
//!
//! One task owns the state and the APPL_DB connection. Each turn it writes everything dirty in
//! one round trip, then takes the next chunk of events; while a round trip is in flight, events
//! queue in the source channel, so batches grow with load (adaptive batching) and an idle
//! daemon writes each event at once. Redis being down only stops the writing: events keep
//! updating the state, and once Redis is back APPL_DB is read back and only the difference is
//! written.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::time::sleep_until;
use tracing::{debug, info, warn};

use crate::appdb::AppDb;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::rules::{ConfigSnapshot, SkipReason};
use crate::source::links::{LinkCache, LinkChange};
use crate::source::netlink::DumpRequester;
use crate::source::{NeighKind, Origin, ResyncCause, SourceEvent, monotonic_ns};
use crate::state::{State, Told, Verdict};
use crate::view::{KernelSide, View};

const EVENT_CHUNK: usize = 8192;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long shutdown waits to write what is pending.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(3);

pub struct PipelineConfig {
    pub batch_max: usize,
    pub audit_interval: Option<Duration>,
    /// Label for live events in metrics: `netlink` or `ebpf`.
    pub live_source: &'static str,
}

pub struct Pipeline {
    cfg: PipelineConfig,
    state: State,
    links: LinkCache,
    snapshot: ConfigSnapshot,
    appdb: AppDb,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    dumps: DumpRequester,
    events: mpsc::Receiver<SourceEvent>,
    config_rx: watch::Receiver<Option<ConfigSnapshot>>,
    backoff: Duration,
    retry_at: Option<tokio::time::Instant>,
    /// Read APPL_DB back once the writes in flight are done (audit).
    readback_pending: bool,
    initial_dump_done: bool,
    view: Option<Arc<View>>,
}

impl Pipeline {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: PipelineConfig,
        appdb: AppDb,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        dumps: DumpRequester,
        events: mpsc::Receiver<SourceEvent>,
        config_rx: watch::Receiver<Option<ConfigSnapshot>>,
    ) -> Pipeline {
        Pipeline {
            cfg,
            state: State::default(),
            links: LinkCache::default(),
            snapshot: ConfigSnapshot::default(),
            appdb,
            metrics,
            health,
            dumps,
            events,
            config_rx,
            backoff: BACKOFF_MIN,
            retry_at: None,
            readback_pending: false,
            initial_dump_done: false,
            view: None,
        }
    }

    /// Keeps `view` (the management APIs' read model) current.
    pub fn with_view(mut self, view: Arc<View>) -> Pipeline {
        self.state.track_touched(true);
        self.view = Some(view);
        self
    }

    /// Publishes the kernel-side changes of the last turn to the view.
    fn publish_touched(&mut self) {
        let Some(view) = &self.view else { return };
        for (key, id) in self.state.take_touched() {
            let entry = id.and_then(|(ifindex, ip)| self.state.kernel_entry(ifindex, &ip));
            match entry {
                Some(e) => view.kernel_update(
                    &key,
                    KernelSide {
                        ifname: e.ifname.clone(),
                        vrf: self.links.master_name(e.ifindex).map(str::to_string),
                        ip: e.ip,
                        lladdr: e.lladdr.clone(),
                        state: crate::source::nud::name(e.state),
                        skip_reason: match e.verdict {
                            Verdict::Skip(r) => Some(r.as_str()),
                            _ => None,
                        },
                    },
                ),
                None => view.kernel_remove(&key),
            }
        }
    }

    /// Runs until `shutdown` fires (or the source ends), then writes what is pending.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        // The rules need CONFIG_DB before the first message is judged.
        loop {
            if let Some(s) = self.config_rx.borrow_and_update().clone() {
                self.snapshot = s;
                break;
            }
            tokio::select! {
                r = self.config_rx.changed() => if r.is_err() { return },
                _ = shutdown.changed() => return,
            }
        }
        self.metrics.resync(ResyncCause::Startup);
        self.connect_and_read_back(true).await;
        let mut audit = self.cfg.audit_interval.map(|d| {
            let mut i = tokio::time::interval_at(tokio::time::Instant::now() + d, d);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        let mut buf = Vec::with_capacity(EVENT_CHUNK);
        loop {
            if self.appdb.is_connected() {
                if self.state.pending() > 0 {
                    self.flush().await;
                } else if self.readback_pending {
                    self.readback_pending = false;
                    self.read_back(false).await;
                    continue;
                }
            }
            let can_flush = self.appdb.is_connected() && self.state.pending() > 0;
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                r = self.config_rx.changed() => {
                    if r.is_err() { break; }
                    let snap = self.config_rx.borrow_and_update().clone();
                    if let Some(s) = snap { self.config_changed(s); }
                }
                n = self.events.recv_many(&mut buf, EVENT_CHUNK) => {
                    if n == 0 {
                        warn!("event source ended");
                        break;
                    }
                    for ev in buf.drain(..) {
                        self.handle(ev);
                    }
                }
                _ = sleep_until(self.retry_at.unwrap_or_else(tokio::time::Instant::now)), if self.retry_at.is_some() => {
                    self.connect_and_read_back(false).await;
                }
                _ = tick(&mut audit), if audit.is_some() => {
                    info!("periodic audit");
                    self.metrics.resync(ResyncCause::Audit);
                    self.dumps.request(ResyncCause::Audit);
                    self.readback_pending = true;
                }
                _ = std::future::ready(()), if can_flush => {}
            }
            self.publish_touched();
            self.metrics.pending_ops.set(self.state.pending() as i64);
        }
        self.finish().await;
    }

    async fn finish(&mut self) {
        let deadline = Instant::now() + SHUTDOWN_FLUSH;
        while self.appdb.is_connected() && self.state.pending() > 0 && Instant::now() < deadline {
            self.flush().await;
        }
        if self.state.pending() > 0 {
            warn!(
                pending = self.state.pending(),
                "exiting with APPL_DB writes pending; the next start reconciles them"
            );
        }
        info!("pipeline stopped");
    }

    fn handle(&mut self, ev: SourceEvent) {
        let now = monotonic_ns();
        match ev {
            SourceEvent::Neigh(msg) => {
                let source = match msg.origin {
                    Origin::Dump => "dump",
                    Origin::Live { .. } => self.cfg.live_source,
                };
                let kind = match msg.kind {
                    NeighKind::New => "new",
                    NeighKind::Del => "del",
                };
                self.metrics.events.with_label_values(&[source, kind]).inc();
                let applied = self.state.apply(&msg, &self.links, &self.snapshot, now);
                if applied.unknown_ifindex {
                    self.metrics.unknown_ifindex.inc();
                }
                match applied.decision {
                    Some(Verdict::Set) => self.metrics.decisions.with_label_values(&["set"]).inc(),
                    Some(Verdict::Del) => self.metrics.decisions.with_label_values(&["del"]).inc(),
                    Some(Verdict::Skip(r)) => self.count_skip(r),
                    None => {}
                }
            }
            SourceEvent::Link(link) => {
                self.metrics
                    .events
                    .with_label_values(&["netlink", "link"])
                    .inc();
                match self.links.apply(&link) {
                    LinkChange::Renamed { old } => {
                        info!(
                            ifindex = link.ifindex,
                            old,
                            new = link.name,
                            "interface renamed"
                        );
                        self.state.rename(
                            link.ifindex,
                            &link.name,
                            &self.links,
                            &self.snapshot,
                            now,
                        );
                    }
                    LinkChange::Removed { name } => {
                        debug!(ifindex = link.ifindex, name, "interface removed");
                        self.state.link_removed(link.ifindex, &self.snapshot, now);
                    }
                    LinkChange::Added | LinkChange::Updated | LinkChange::Unknown => {}
                }
            }
            SourceEvent::DumpStart { ts_ns } => self.state.dump_start(ts_ns),
            SourceEvent::DumpDone => {
                let swept = self.state.dump_done(&self.snapshot, now);
                if swept > 0 {
                    info!(swept, "dump found neighbors gone");
                    self.metrics
                        .resync_corrections
                        .with_label_values(&["del"])
                        .inc_by(swept as u64);
                }
                if !self.initial_dump_done {
                    self.initial_dump_done = true;
                    self.health.set_source_synced(true);
                    info!(
                        neighbors = self.state.kernel().count(),
                        links = self.links.len(),
                        "initial kernel dump applied"
                    );
                }
            }
            SourceEvent::Lost(cause) => {
                warn!(
                    cause = cause.as_str(),
                    "kernel events lost; resynchronising"
                );
                self.metrics.resync(cause);
            }
            SourceEvent::Malformed(reason) => {
                self.metrics.malformed(reason);
                crate::ratelimit::warn_kind(reason);
            }
        }
    }

    fn count_skip(&self, r: SkipReason) {
        self.metrics.decisions.with_label_values(&["skip"]).inc();
        self.metrics.skips.with_label_values(&[r.as_str()]).inc();
    }

    fn config_changed(&mut self, new: ConfigSnapshot) {
        let now = monotonic_ns();
        let old = std::mem::replace(&mut self.snapshot, new);
        if old.dual_tor != self.snapshot.dual_tor || old.evpn != self.snapshot.evpn {
            info!("dual-ToR/EVPN changed: re-evaluating every neighbor");
            self.metrics.resync(ResyncCause::ConfigChange);
            self.state
                .reevaluate(|_| true, &self.links, &self.snapshot, now);
        }
        let enabled: Vec<String> = self
            .snapshot
            .link_local
            .difference(&old.link_local)
            .cloned()
            .collect();
        for ifname in enabled {
            let n = self.state.reevaluate(
                |e| {
                    e.ifname == ifname
                        && matches!(e.verdict, Verdict::Skip(SkipReason::LinkLocalV6Disabled))
                },
                &self.links,
                &self.snapshot,
                now,
            );
            info!(
                ifname,
                replayed = n,
                "IPv6 link-local enabled: replaying its neighbors"
            );
        }
    }

    async fn flush(&mut self) {
        let (batch, noop) = self.state.take_batch(self.cfg.batch_max);
        self.metrics.noop_suppressed.inc_by(noop as u64);
        if batch.is_empty() {
            return;
        }
        let (n_sets, n_dels) = batch.ops.iter().fold((0, 0), |(s, d), op| match op {
            crate::appdb::Op::Set { .. } => (s + 1, d),
            crate::appdb::Op::Del { .. } => (s, d + 1),
        });
        let n_routes = batch.route_dels.len();
        let started = Instant::now();
        match self.appdb.write(&batch.route_dels, &batch.ops).await {
            Ok(()) => {
                let rtt = started.elapsed();
                self.metrics.redis_roundtrip.observe(rtt.as_secs_f64());
                self.metrics.appdb_batches.inc();
                let m = &self.metrics.appdb_ops;
                m.with_label_values(&["NEIGH_TABLE", "set"]).inc_by(n_sets);
                m.with_label_values(&["NEIGH_TABLE", "del"]).inc_by(n_dels);
                m.with_label_values(&["ROUTE_TABLE", "del"])
                    .inc_by(n_routes as u64);
                let now = monotonic_ns();
                for (key, value, since) in self.state.commit(batch) {
                    self.metrics
                        .event_to_appdb
                        .observe(now.saturating_sub(since) as f64 / 1e9);
                    if let Some(view) = &self.view {
                        view.appl_update(&key, value);
                    }
                }
                let (v4, v6) = self.state.told_counts();
                self.metrics
                    .neighbors
                    .with_label_values(&["IPv4"])
                    .set(v4 as i64);
                self.metrics
                    .neighbors
                    .with_label_values(&["IPv6"])
                    .set(v6 as i64);
                debug!(
                    sets = n_sets,
                    dels = n_dels,
                    routes = n_routes,
                    ?rtt,
                    "APPL_DB batch written"
                );
            }
            Err(e) => {
                warn!(error = %e, "APPL_DB write failed; will reconnect and reconcile");
                self.metrics.redis_errors.inc();
                self.state.abort(batch);
                self.appdb.disconnect();
                self.lost_redis();
            }
        }
    }

    fn lost_redis(&mut self) {
        self.health.set_redis(false);
        self.metrics.redis_connected.set(0);
        self.retry_at = Some(tokio::time::Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    /// Connects (if needed) and reads APPL_DB back as what it was told. At start the read-back
    /// also seeds the desired state (see [`State::replace_told`]).
    async fn connect_and_read_back(&mut self, first: bool) {
        self.retry_at = None;
        if !self.appdb.is_connected() {
            if let Err(e) = self.appdb.connect().await {
                warn!(error = %e, retry_in = ?self.backoff, "cannot connect to APPL_DB");
                self.lost_redis();
                return;
            }
            if !first {
                info!("APPL_DB connection restored; reconciling");
                self.metrics.redis_reconnects.inc();
                self.metrics.resync(ResyncCause::RedisReconnect);
            }
        }
        self.read_back(first).await;
    }

    async fn read_back(&mut self, seed: bool) {
        let started = Instant::now();
        match self.appdb.read_neighbors().await {
            Ok(map) => {
                let told = map
                    .iter()
                    .map(|(k, f)| (k.clone(), Told::from_fields(f)))
                    .collect();
                let n = map.len();
                self.state.replace_told(told, seed, monotonic_ns());
                if let Some(view) = &self.view {
                    for (key, t) in self.state.told() {
                        if let Told::Value(v) = t {
                            view.appl_update(key, Some(*v));
                        }
                    }
                }
                self.backoff = BACKOFF_MIN;
                self.health.set_redis(true);
                self.metrics.redis_connected.set(1);
                self.metrics
                    .stage_seconds
                    .with_label_values(&["appl_db_read_back"])
                    .observe(started.elapsed().as_secs_f64());
                info!(entries = n, "APPL_DB NEIGH_TABLE read back");
            }
            Err(e) => {
                warn!(error = %e, "cannot read APPL_DB back");
                self.metrics.redis_errors.inc();
                self.appdb.disconnect();
                self.lost_redis();
            }
        }
    }
}

/// The next audit tick; never, when audits are off.
async fn tick(audit: &mut Option<tokio::time::Interval>) {
    match audit {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}
