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

use crate::core::engine::{Count, Engine, EngineConfig, Input, LiveSource, Note, Output};
use crate::core::neigh::{ResyncCause, SourceEvent};
use crate::core::rules::ConfigSnapshot;
use crate::core::state::Told;
use crate::northbound::view::View;
use crate::runtime::log_throttle;
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

/// What [`Pipeline::feed`] leaves to its caller.
#[derive(Default)]
struct Fed {
    write: Option<crate::core::state::Batch>,
    reconciled: bool,
}

/// The warm start's I/O side; its decisions (hold, reconcile, classify) are the engine's.
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

/// The async shell around the [`Engine`]: it owns the channels, the APPL_DB connection, the
/// timers and the warm-restart database, and carries out what the engine decides.
pub struct Pipeline {
    audit_interval: Option<Duration>,
    engine: Engine,
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
    view: Option<Arc<View>>,
    warm_plan: Option<WarmPlan>,
    warm: Option<WarmPhase>,
    /// When APPL_DB last answered (a write, a read-back, a probe).
    redis_seen: Instant,
}

impl Pipeline {
    pub fn new(
        cfg: PipelineConfig,
        appdb: AppDb,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        dumps: DumpRequester,
        events: mpsc::Receiver<SourceEvent>,
        config_rx: watch::Receiver<Option<ConfigSnapshot>>,
    ) -> Pipeline {
        let live_source = match cfg.live_source {
            "ebpf" => LiveSource::Ebpf,
            _ => LiveSource::Netlink,
        };
        Pipeline {
            audit_interval: cfg.audit_interval,
            engine: Engine::new(EngineConfig {
                batch_max: cfg.batch_max,
                live_source,
                view: false,
            }),
            appdb,
            metrics,
            health,
            dumps,
            events,
            config_rx,
            backoff: BACKOFF_MIN,
            retry_at: None,
            readback_pending: false,
            view: None,
            warm_plan: None,
            warm: None,
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

    /// Keeps `view` (the management APIs' read model) current.
    pub fn with_view(mut self, view: Arc<View>) -> Pipeline {
        self.engine.report_kernel_side(true);
        self.view = Some(view);
        self
    }

    /// Hands `input` to the engine and carries out what it says, except what needs the shell's
    /// own I/O: a write (only `Input::Flush` yields one) and the end of a warm reconcile.
    fn feed(&mut self, input: Input) -> Fed {
        let mut fed = Fed::default();
        for o in self.engine.handle(monotonic_ns(), input) {
            match o {
                Output::Write(batch) => fed.write = Some(batch),
                Output::Reconciled => fed.reconciled = true,
                o => self.carry_out(o),
            }
        }
        fed
    }

    fn carry_out(&mut self, o: Output) {
        let m = &self.metrics;
        match o {
            Output::Count(c) => match c {
                Count::Event(source, kind) => m.events.with_label_values(&[source, kind]).inc(),
                Count::UnknownIfindex => m.unknown_ifindex.inc(),
                Count::Corrections(side, n) => {
                    m.resync_corrections.with_label_values(&[side]).inc_by(n)
                }
                Count::Set => m.decisions.with_label_values(&["set"]).inc(),
                Count::Del => m.decisions.with_label_values(&["del"]).inc(),
                Count::Skip(r) => {
                    m.decisions.with_label_values(&["skip"]).inc();
                    m.skips.with_label_values(&[r.as_str()]).inc();
                }
                Count::Resync(cause) => m.resync(cause),
                Count::Malformed(reason) => m.malformed(reason),
                Count::NoopSuppressed(n) => m.noop_suppressed.inc_by(n),
            },
            Output::Note(n) => log_note(n),
            Output::Synced { neighbors, links } => {
                self.health.set_source_synced(true);
                info!(neighbors, links, "initial kernel dump applied");
            }
            Output::Write(_) | Output::Reconciled => {} // see `feed`
            Output::Landed {
                key,
                value,
                since_ns,
            } => {
                let now = monotonic_ns();
                m.event_to_appdb
                    .observe(now.saturating_sub(since_ns) as f64 / 1e9);
                if let Some(view) = &self.view {
                    view.appl_update(&key, value);
                }
            }
            Output::ApplReloaded => {
                if let Some(view) = &self.view {
                    for (key, t) in self.engine.told() {
                        if let Told::Value(v) = t {
                            view.appl_update(key, Some(*v));
                        }
                    }
                }
            }
            Output::Gauges => self.publish_gauges(),
            Output::Kernel { key, side } => {
                if let Some(view) = &self.view {
                    match side {
                        Some(side) => view.kernel_update(&key, side),
                        None => view.kernel_remove(&key),
                    }
                }
            }
        }
    }

    /// Runs until `shutdown` fires (or the source ends), then writes what is pending.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), PipelineError> {
        // The rules need CONFIG_DB before the first message is judged.
        loop {
            let snapshot = self.config_rx.borrow_and_update().clone();
            if let Some(s) = snapshot {
                self.feed(Input::Config(s));
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
        let mut audit = self.audit_interval.map(|d| {
            let mut i = tokio::time::interval_at(tokio::time::Instant::now() + d, d);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        let mut buf = Vec::with_capacity(EVENT_CHUNK);
        let mut ended = None;
        let mut liveness = tokio::time::interval(LIVENESS);
        liveness.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if self.appdb.is_connected() && !self.engine.holding() {
                if self.engine.pending() > 0 {
                    self.flush().await?;
                } else if self.readback_pending {
                    self.readback_pending = false;
                    self.read_back(false).await;
                    continue;
                } else {
                    // Nothing due: a warm start's reconcile may be complete.
                    self.flush().await?;
                }
            }
            let can_flush =
                self.appdb.is_connected() && self.engine.pending() > 0 && !self.engine.holding();
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
                    if let Some(s) = snap { self.feed(Input::Config(s)); }
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
                    for ev in std::mem::take(&mut buf) {
                        self.feed(Input::Kernel(ev));
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
                        self.feed(Input::WarmTimerFired);
                        self.warm = Some(WarmPhase::Reconciling(db));
                    }
                }
                _ = std::future::ready(()), if can_flush => {}
            }
            self.metrics.pending_ops.set(self.engine.pending() as i64);
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
        self.feed(Input::WarmStart);
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

    /// The engine says the reconcile is complete: `reconciled`.
    async fn finish_warm(&mut self) -> Result<(), PipelineError> {
        if let Some(WarmPhase::Reconciling(mut db)) = self.warm.take() {
            db.set_state(WarmState::Reconciled).await?;
            self.health.set_warm_restart_done(true);
        }
        Ok(())
    }

    async fn finish(&mut self) {
        let deadline = Instant::now() + SHUTDOWN_FLUSH;
        while self.appdb.is_connected()
            && self.engine.pending() > 0
            && !self.engine.holding()
            && Instant::now() < deadline
        {
            if self.flush().await.is_err() {
                break;
            }
        }
        if self.engine.pending() > 0 {
            warn!(
                pending = self.engine.pending(),
                "exiting with APPL_DB writes pending; the next start reconciles them"
            );
        }
        info!("pipeline stopped");
    }

    /// Asks the engine what to write, writes it, and tells the engine how it went.
    async fn flush(&mut self) -> Result<(), PipelineError> {
        let fed = self.feed(Input::Flush);
        if fed.reconciled {
            self.finish_warm().await?;
        }
        let Some(batch) = fed.write else {
            return Ok(());
        };
        let (n_sets, n_dels) = batch.ops.iter().fold((0, 0), |(s, d), op| match op {
            crate::core::ops::Op::Set { .. } => (s + 1, d),
            crate::core::ops::Op::Del { .. } => (s, d + 1),
        });
        let n_routes = batch.route_dels.len();
        let started = Instant::now();
        let span = tracing::info_span!(
            "appdb_write",
            sets = n_sets,
            dels = n_dels,
            routes = n_routes
        );
        let result = self
            .appdb
            .write(&batch.route_dels, &batch.ops)
            .instrument(span)
            .await;
        let input = match result {
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
                debug!(
                    sets = n_sets,
                    dels = n_dels,
                    routes = n_routes,
                    ?rtt,
                    "APPL_DB batch written"
                );
                Input::Written(batch)
            }
            Err(e) => {
                warn!(error = %e, "APPL_DB write failed; will reconnect and reconcile");
                self.metrics.redis_errors.inc();
                self.appdb.disconnect();
                self.lost_redis();
                Input::WriteFailed(batch)
            }
        };
        if self.feed(input).reconciled {
            self.finish_warm().await?;
        }
        Ok(())
    }

    /// What APPL_DB holds, by family and interface: after every write, and after every
    /// read-back (a restart with nothing to write must not show zero).
    fn publish_gauges(&self) {
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
    /// also seeds the desired state (see [`crate::core::state::State::replace_told`]).
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
            Ok(entries) => {
                self.feed(Input::ReadBack { entries, seed });
                self.redis_seen = Instant::now();
                self.backoff = BACKOFF_MIN;
                self.health.set_redis(true);
                self.metrics.redis_connected.set(1);
                self.metrics
                    .stage_seconds
                    .with_label_values(&["appl_db_read_back"])
                    .observe(started.elapsed().as_secs_f64());
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

/// The log line for each fact the engine reports.
fn log_note(n: Note) {
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
