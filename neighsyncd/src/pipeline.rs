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
use tracing::{Instrument, debug, info, warn};

use crate::core::links::{LinkCache, LinkChange};
use crate::core::neigh::{NeighKind, Origin, ResyncCause, SourceEvent};
use crate::core::rules::{ConfigSnapshot, SkipReason};
use crate::core::state::{State, Told, Verdict};
use crate::northbound::view::{KernelSide, View};
use crate::sonic::appdb::AppDb;
use crate::sonic::warm::{WarmDb, WarmError, WarmState};
use crate::southbound::monotonic_ns;
use crate::southbound::netlink::DumpRequester;
use crate::telemetry::health::Health;
use crate::telemetry::metrics::Metrics;

/// A warm start in progress: writes are held until the reconcile timer fires.
pub struct WarmPlan {
    pub db: WarmDb,
    pub restore_timeout: Duration,
}

enum WarmPhase {
    /// Waiting for the restore flag; yields the reconcile timer.
    Restoring(tokio::task::JoinHandle<Result<(WarmDb, Duration), WarmError>>),
    Timer(tokio::time::Instant, WarmDb),
    /// Timer fired: writing the difference; `reconciled` once nothing is pending.
    Reconciling(WarmDb),
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("warm restart: {0}")]
    Warm(#[from] WarmError),
    /// Every neighbor source is gone: nothing would keep APPL_DB current.
    #[error("the neighbor event sources ended")]
    SourceEnded,
    #[error("the CONFIG_DB watch ended")]
    ConfigWatchEnded,
}

const EVENT_CHUNK: usize = 8192;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// How long APPL_DB may go without a round trip before the connection is probed.
const LIVENESS: Duration = Duration::from_secs(1);
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
    warm_plan: Option<WarmPlan>,
    warm: Option<WarmPhase>,
    /// After a fallback to rtnetlink, live events older than this came from the detached
    /// eBPF program.
    drop_live_before: u64,
    /// When APPL_DB last answered (a write, a read-back, a probe).
    redis_seen: Instant,
    /// Keys a live event deleted during a warm start's reconcile window (vs. stale ones).
    warm_deleted: std::collections::HashSet<String>,
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
            warm_plan: None,
            warm: None,
            warm_deleted: Default::default(),
            drop_live_before: 0,
            redis_seen: Instant::now(),
        }
    }

    /// Runs as a warm start: APPL_DB staging is cleared and read back, and nothing is written
    /// until the restore flag is set and the reconcile timer has fired; then only the
    /// difference is written.
    pub fn with_warm_start(mut self, plan: WarmPlan) -> Pipeline {
        self.warm_plan = Some(plan);
        self
    }

    fn holding(&self) -> bool {
        matches!(
            self.warm,
            Some(WarmPhase::Restoring(_)) | Some(WarmPhase::Timer(..))
        )
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
                        state: if self.cfg.live_source == "ebpf" {
                            // Moves within a class are not reported: say what is known.
                            neighsyncd_common::class_label(e.state as u8)
                        } else {
                            crate::core::neigh::nud::name(e.state)
                        },
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
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), PipelineError> {
        // The rules need CONFIG_DB before the first message is judged.
        loop {
            if let Some(s) = self.config_rx.borrow_and_update().clone() {
                self.snapshot = s;
                break;
            }
            tokio::select! {
                r = self.config_rx.changed() => if r.is_err() {
                    return if *shutdown.borrow() { Ok(()) } else { Err(PipelineError::ConfigWatchEnded) };
                },
                _ = shutdown.changed() => return Ok(()),
            }
        }
        self.metrics.resync(ResyncCause::Startup);
        if let Some(plan) = self.warm_plan.take() {
            self.start_warm(plan, &mut shutdown).await?;
        } else {
            self.connect_and_read_back(true).await;
        }
        let mut audit = self.cfg.audit_interval.map(|d| {
            let mut i = tokio::time::interval_at(tokio::time::Instant::now() + d, d);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        let mut buf = Vec::with_capacity(EVENT_CHUNK);
        let mut ended = None;
        let mut liveness = tokio::time::interval(LIVENESS);
        liveness.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if self.appdb.is_connected() && !self.holding() {
                if self.state.pending() > 0 {
                    self.flush().await;
                } else if self.readback_pending {
                    self.readback_pending = false;
                    self.read_back(false).await;
                    continue;
                }
                if self.state.pending() == 0 {
                    self.finish_warm().await?;
                }
            }
            let can_flush =
                self.appdb.is_connected() && self.state.pending() > 0 && !self.holding();
            let restoring = matches!(self.warm, Some(WarmPhase::Restoring(_)));
            let timer_at = match &self.warm {
                Some(WarmPhase::Timer(at, _)) => Some(*at),
                _ => None,
            };
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                r = self.config_rx.changed() => {
                    if r.is_err() {
                        // At shutdown the watch ends too (maybe before we saw the signal).
                        if !*shutdown.borrow() {
                            ended = Some(PipelineError::ConfigWatchEnded);
                        }
                        break;
                    }
                    let snap = self.config_rx.borrow_and_update().clone();
                    if let Some(s) = snap { self.config_changed(s); }
                }
                n = self.events.recv_many(&mut buf, EVENT_CHUNK) => {
                    if n == 0 {
                        // The sources end at shutdown, perhaps between our look at the signal
                        // and this channel: only an unasked-for end is an error.
                        if !*shutdown.borrow() {
                            ended = Some(PipelineError::SourceEnded);
                        }
                        break;
                    }
                    for ev in buf.drain(..) {
                        self.handle(ev);
                    }
                }
                _ = sleep_until(self.retry_at.unwrap_or_else(tokio::time::Instant::now)), if self.retry_at.is_some() => {
                    self.connect_and_read_back(false).await;
                }
                _ = liveness.tick(), if self.appdb.is_connected() => {
                    if self.redis_seen.elapsed() >= LIVENESS {
                        self.probe_redis().await;
                    }
                }
                _ = tick(&mut audit), if audit.is_some() => {
                    info!("periodic audit");
                    self.metrics.resync(ResyncCause::Audit);
                    self.dumps.request(ResyncCause::Audit);
                    self.readback_pending = true;
                }
                res = restore_wait(&mut self.warm), if restoring => {
                    let (db, timer) = res?;
                    info!(timer_secs = timer.as_secs(), "starting the warm-restart reconcile timer");
                    self.warm = Some(WarmPhase::Timer(tokio::time::Instant::now() + timer, db));
                }
                _ = sleep_until(timer_at.unwrap_or_else(tokio::time::Instant::now)), if timer_at.is_some() => {
                    if let Some(WarmPhase::Timer(_, db)) = self.warm.take() {
                        info!(pending = self.state.pending(), "warmstart timer expired; reconciling");
                        self.warm = Some(WarmPhase::Reconciling(db));
                    }
                }
                _ = std::future::ready(()), if can_flush => {}
            }
            self.publish_touched();
            self.metrics.pending_ops.set(self.state.pending() as i64);
        }
        self.finish().await;
        match ended {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn start_warm(
        &mut self,
        mut plan: WarmPlan,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), PipelineError> {
        self.health.set_warm_restart_done(false);
        // Nothing can be restored without APPL_DB: keep trying.
        while !self.appdb.is_connected() {
            if let Err(e) = self.appdb.connect().await {
                warn!(error = %e, "warm start: cannot connect to APPL_DB; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(self.backoff) => {}
                    _ = shutdown.changed() => return Ok(()),
                }
                self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
            }
        }
        if let Err(e) = self.appdb.clear_staging().await {
            warn!(error = %e, "warm start: cannot clear NEIGH_TABLE staging state");
        }
        self.read_back(true).await;
        info!("Restored appDB table to NEIGH_TABLE internal cache map");
        plan.db.set_state(WarmState::Restored).await?;
        let timeout = plan.restore_timeout;
        let mut db = plan.db;
        self.warm = Some(WarmPhase::Restoring(tokio::spawn(async move {
            db.wait_restore(timeout).await?;
            let timer = db.reconcile_timer().await?;
            Ok((db, timer))
        })));
        Ok(())
    }

    /// After the reconcile flush: `reconciled`.
    async fn finish_warm(&mut self) -> Result<(), PipelineError> {
        if let Some(WarmPhase::Reconciling(_)) = &self.warm
            && let Some(WarmPhase::Reconciling(mut db)) = self.warm.take()
        {
            db.set_state(WarmState::Reconciled).await?;
            self.warm_deleted.clear();
            self.health.set_warm_restart_done(true);
        }
        Ok(())
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
                if let Origin::Live { ts_ns } = msg.origin
                    && ts_ns < self.drop_live_before
                {
                    // Events of a detached eBPF program still in flight: a dump replaces them.
                    return;
                }
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
                if applied.corrected && self.initial_dump_done {
                    self.metrics
                        .resync_corrections
                        .with_label_values(&["kernel"])
                        .inc();
                }
                if self.warm.is_some()
                    && applied.decision == Some(Verdict::Del)
                    && let (Origin::Live { .. }, Some(k)) = (msg.origin, &applied.key)
                {
                    self.warm_deleted.insert(k.clone());
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
                let _span = tracing::info_span!("kernel_dump_done").entered();
                let swept = self.state.dump_done(&self.snapshot, now);
                if swept > 0 && self.initial_dump_done {
                    info!(swept, "dump found neighbors gone");
                    self.metrics
                        .resync_corrections
                        .with_label_values(&["kernel"])
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
                crate::runtime::log_throttle::warn_kind(reason);
            }
            SourceEvent::SwitchedToNetlink { since_ns } => {
                self.drop_live_before = since_ns;
                self.cfg.live_source = "netlink";
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
            crate::sonic::appdb::Op::Set { .. } => (s + 1, d),
            crate::sonic::appdb::Op::Del { .. } => (s, d + 1),
        });
        let n_routes = batch.route_dels.len();
        if matches!(self.warm, Some(WarmPhase::Reconciling(_))) {
            self.log_reconcile(&batch.ops);
        }
        let started = Instant::now();
        let span = tracing::info_span!(
            "appdb_write",
            sets = n_sets,
            dels = n_dels,
            routes = n_routes
        );
        match self
            .appdb
            .write(&batch.route_dels, &batch.ops)
            .instrument(span)
            .await
        {
            Ok(()) => {
                self.redis_seen = Instant::now();
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
                self.publish_gauges();
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

    /// What APPL_DB holds, by family and interface: after every write, and after every
    /// read-back (a restart with nothing to write must not show zero).
    fn publish_gauges(&self) {
        let (v4, v6) = self.state.told_counts();
        let m = &self.metrics;
        m.neighbors.with_label_values(&["IPv4"]).set(v4 as i64);
        m.neighbors.with_label_values(&["IPv6"]).set(v6 as i64);
        for (ifname, n) in self.state.told_by_interface() {
            m.neighbors_by_interface
                .with_label_values(&[ifname.as_str()])
                .set(*n);
        }
    }

    /// The per-entry lines SONiC's warm-restart tests look for.
    fn log_reconcile(&self, ops: &[crate::sonic::appdb::Op]) {
        for op in ops {
            match op {
                crate::sonic::appdb::Op::Set { key, fields } => {
                    let fv: String = fields.iter().map(|(f, v)| format!("{f}:{v}, ")).collect();
                    info!("NEIGH_TABLE NEW, key: {key}, {fv}cache-state:NEW, ");
                }
                crate::sonic::appdb::Op::Del { key } => {
                    let state = if self.warm_deleted.contains(key) {
                        "DELETE"
                    } else {
                        "STALE"
                    };
                    info!("NEIGH_TABLE STALE/DELETE, key: {key}, cache-state:{state}, ");
                }
            }
        }
    }

    /// Nothing was written for a while: is APPL_DB still there? A failure is handled like a
    /// failed write: reconnect, read back, write the difference.
    async fn probe_redis(&mut self) {
        match self.appdb.ping().await {
            Ok(()) => self.redis_seen = Instant::now(),
            Err(e) => {
                warn!(error = %e, "APPL_DB connection lost; will reconnect and reconcile");
                self.metrics.redis_errors.inc();
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
        match self
            .appdb
            .read_neighbors()
            .instrument(tracing::info_span!("appl_db_read_back"))
            .await
        {
            Ok(map) => {
                let told = map
                    .iter()
                    .map(|(k, f)| (k.clone(), Told::from_fields(f)))
                    .collect();
                let n = map.len();
                let drift = self.state.replace_told(told, seed, monotonic_ns());
                if !seed && drift > 0 {
                    warn!(drift, "APPL_DB differed from what was written; correcting");
                    self.metrics
                        .resync_corrections
                        .with_label_values(&["appl_db"])
                        .inc_by(drift as u64);
                }
                if let Some(view) = &self.view {
                    for (key, t) in self.state.told() {
                        if let Told::Value(v) = t {
                            view.appl_update(key, Some(*v));
                        }
                    }
                }
                self.publish_gauges();
                self.redis_seen = Instant::now();
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

/// The restore-flag wait's result.
async fn restore_wait(warm: &mut Option<WarmPhase>) -> Result<(WarmDb, Duration), WarmError> {
    match warm {
        Some(WarmPhase::Restoring(handle)) => match handle.await {
            Ok(res) => res,
            Err(e) => Err(WarmError::Redis(redis::RedisError::from(
                std::io::Error::other(format!("restore wait task failed: {e}")),
            ))),
        },
        _ => std::future::pending().await,
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
