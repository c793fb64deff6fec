//! The sync loop: source events -> rules -> state -> APPL_DB writer.
//!
//! One task owns the state and the APPL_DB connection. Each turn it writes what is due in one
//! round trip; while the round trip is out it goes on taking the kernel's events into the state
//! (`intake`), so what is due grows with load (adaptive batching), the sources' queues stay
//! short, and an idle daemon writes each event at once. Redis being down only stops the
//! writing: events keep updating the state, and once Redis is back APPL_DB is read back and
//! only the difference is written.

mod appdb_io;
mod drive;
mod intake;
mod report;
mod standby;
mod warm;
pub use standby::HaLink;
use warm::restore_wait;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::time::sleep_until;
use tracing::{error, info, warn};

use crate::core::appdb_link::LIVENESS;
use crate::core::control::{AppDbWriter, ResyncRequests, SourceControl};
use crate::core::engine::{Engine, Input, Output};
use crate::core::ha::Role;
use crate::core::neigh::{ResyncCause, SourceEvent};
use crate::core::rules::ConfigSnapshot;
use crate::core::source_health::{SourceOrder, SourceReport};
use crate::northbound::view::ViewPart;
use crate::sonic::appdb::AppDb;
use crate::sonic::warm::{WarmDb, WarmError};
use crate::telemetry::health::Health;
use crate::telemetry::metrics::Metrics;

/// A warm start in progress: writes are held until the reconcile timer fires.
pub struct WarmPlan {
    pub db: WarmDb,
    pub restore_timeout: Duration,
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
    /// The source policy stops the daemon (a source failed with no fallback).
    #[error("{0}")]
    SourceFailed(String),
    #[error("the CONFIG_DB watch ended")]
    ConfigWatchEnded,
}

/// Events the pipeline takes in at a time; the sources queue at most this many ahead of it.
pub(crate) const EVENT_CHUNK: usize = 8192;
/// How long shutdown waits to write what is pending.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(3);

pub struct PipelineConfig {
    pub audit_interval: Option<Duration>,
    /// A warm start: APPL_DB staging is cleared and read back, and nothing is written until
    /// the restore flag is set and the reconcile timer has fired; then only the difference.
    pub warm: Option<WarmPlan>,
}

/// What the engine hears from while running, besides the kernel and CONFIG_DB.
#[derive(Debug)]
pub enum Command {
    /// The supervisor's news of a source (a consumer died, rtnetlink gave up).
    Source(SourceReport),
    /// A management API asks for a resync.
    Resync(ResyncCause),
}

/// The sending end of the commands channel; the APIs' resync requests go through it (and
/// so through the engine).
#[derive(Clone)]
pub struct Commands(pub mpsc::UnboundedSender<Command>);

impl ResyncRequests for Commands {
    fn request_resync(&self, cause: ResyncCause) {
        // The pipeline only goes away at shutdown; a request then has nothing left to do.
        let _ = self.0.send(Command::Resync(cause));
    }
}

/// A read-back made before the pipeline started.
pub struct Prefetched {
    pub entries: Vec<(crate::core::key::NeighKey, crate::core::state::Told)>,
    /// When its first command was sent (what a standby's picture stands on; see `standby`).
    pub started: std::time::Instant,
}

/// Where the engine's inputs come from.
pub struct Inputs {
    pub events: mpsc::Receiver<SourceEvent>,
    pub config: watch::Receiver<Option<ConfigSnapshot>>,
    /// None: nothing sends commands (tests that drive a pipeline alone).
    pub commands: Option<mpsc::UnboundedReceiver<Command>>,
    /// APPL_DB as read back while the sources were starting (a cold start reads it once,
    /// beside the eBPF program's loading): the first seeding read-back uses it.
    pub read_back: Option<Prefetched>,
    /// Hot standby: the election's role for this daemon (`None`: the only writer).
    pub ha: Option<HaLink>,
}

/// Where the engine's outputs go, besides APPL_DB.
pub struct Outputs {
    pub sources: Arc<dyn SourceControl>,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    /// The management APIs' read model, kept current when there is one.
    pub view: Option<ViewPart>,
}

/// The async shell around the [`Engine`]: it owns the channels, the APPL_DB connection, the
/// timers and the warm-restart database, and carries out what the engine decides.
pub struct Pipeline<W: AppDbWriter = AppDb> {
    audit_interval: Option<Duration>,
    engine: Engine,
    appdb: W,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    sources: Arc<dyn SourceControl>,
    events: mpsc::Receiver<SourceEvent>,
    commands: Option<mpsc::UnboundedReceiver<Command>>,
    config_rx: watch::Receiver<Option<ConfigSnapshot>>,
    /// When the engine's ordered reconnect is due.
    retry_at: Option<tokio::time::Instant>,
    view: Option<ViewPart>,
    warm_plan: Option<WarmPlan>,
    warm: Option<WarmPhase>,
    prefetched: Option<Prefetched>,
    ha: Option<HaLink>,
    /// What this daemon is to APPL_DB (a standby writes nothing).
    role: Role,
    /// A standby's picture of APPL_DB (see `standby`).
    picture: standby::Picture,
    /// A kernel event's outputs, reused from event to event (see `kernel_event`).
    outputs: Vec<Output>,
}

impl<W: AppDbWriter> Pipeline<W> {
    /// `engine` has already chosen the live source (its start-up orders are the daemon's).
    pub fn new(
        cfg: PipelineConfig,
        mut engine: Engine,
        mut appdb: W,
        inputs: Inputs,
        outputs: Outputs,
    ) -> Pipeline<W> {
        engine.report_kernel_side(outputs.view.is_some());
        if let Some(ha) = &inputs.ha {
            let role = ha.role.borrow().clone();
            appdb.set_fence(role.token());
            outputs.health.set_role(role.as_str());
        }
        let pipeline = Pipeline {
            audit_interval: cfg.audit_interval,
            engine,
            appdb,
            metrics: outputs.metrics,
            health: outputs.health,
            sources: outputs.sources,
            events: inputs.events,
            commands: inputs.commands,
            config_rx: inputs.config,
            retry_at: None,
            view: outputs.view,
            warm_plan: cfg.warm,
            warm: None,
            prefetched: inputs.read_back,
            role: inputs
                .ha
                .as_ref()
                .map(|h| h.role.borrow().clone())
                .unwrap_or(Role::Single),
            ha: inputs.ha,
            picture: standby::Picture::default(),
            outputs: Vec::new(),
        };
        pipeline.publish_following();
        pipeline
    }

    /// The source policy's orders while running: a fallback to rtnetlink, or a stop.
    fn carry_out_source(&mut self, order: SourceOrder) -> Result<Option<Input>, PipelineError> {
        match order {
            SourceOrder::FallBack { reason, why } => {
                error!(reason = %why, "the eBPF consumer died; falling back to rtnetlink");
                let since_ns = self.sources.switch_to_netlink();
                self.sources.lost(ResyncCause::SourceRestart);
                self.metrics.source_switched("netlink", reason);
                Ok(Some(Input::SwitchedToNetlink { since_ns }))
            }
            SourceOrder::Fail(why) => {
                error!(reason = %why, "a neighbor source failed with no fallback; stopping");
                self.health.set_sources_alive(false);
                Err(PipelineError::SourceFailed(why))
            }
            // Start-up orders are the daemon's; none comes while running.
            SourceOrder::LoadEbpf | SourceOrder::Attach { .. } => Ok(None),
        }
    }

    /// Runs until `shutdown` fires (or the source ends), then writes what is pending.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), PipelineError> {
        // The rules need CONFIG_DB before the first message is judged.
        loop {
            let snapshot = self.config_rx.borrow_and_update().clone();
            if let Some(s) = snapshot {
                self.drive(Input::Config(s)).await?;
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
            let connected = self.connect().await;
            self.drive(connected).await?;
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
        let mut commands = self.commands.take();
        loop {
            self.mend_picture().await?;
            if self.engine.can_write() && self.writing() {
                // Writes what is due, or (nothing due) an audit's read-back or the end of a
                // warm start's reconcile.
                self.drive(Input::Flush).await?;
            }
            let can_flush = self.engine.can_write() && self.writing() && self.engine.pending() > 0;
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
                    if let Some(s) = snap { self.drive(Input::Config(s)).await?; }
                }
                Some(command) = next_command(&mut commands) => {
                    let input = match command {
                        // A source ending at shutdown is no failure.
                        Command::Source(_) if *shutdown.borrow() => break,
                        Command::Source(report) => Input::Source(report),
                        Command::Resync(cause) => Input::ResyncRequested(cause),
                    };
                    if let Err(e) = self.drive(input).await {
                        ended = Some(e);
                        break;
                    }
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
                        self.kernel_event(ev).await?;
                    }
                }
                _ = sleep_until(self.retry_at.unwrap_or_else(tokio::time::Instant::now)), if self.retry_at.is_some() => {
                    self.retry_at = None;
                    let connected = self.connect().await;
                    self.drive(connected).await?;
                }
                _ = liveness.tick() => {
                    if !self.role.writes() {
                        // What the leader wrote is due no more.
                        self.engine.drop_settled();
                    }
                    self.drive(Input::Tick).await?
                }
                e = standby::next_event(&mut self.ha) => match e {
                    standby::HaEvent::Role => self.role_changed().await?,
                    standby::HaEvent::Observed(o) => self.observed(o).await?,
                },
                _ = standby::mark_deadline(&self.picture) => self.mark_overdue().await?,
                // A standby's audit checks the kernel; APPL_DB it follows.
                _ = tick(&mut audit), if audit.is_some() => {
                    let input = if self.role.writes() {
                        Input::AuditDue
                    } else {
                        Input::ResyncRequested(ResyncCause::Audit)
                    };
                    self.drive(input).await?
                }
                res = restore_wait(&mut self.warm), if restoring => {
                    let (db, timer) = res?;
                    info!(timer_secs = timer.as_secs(), "starting the warm-restart reconcile timer");
                    self.warm = Some(WarmPhase::Timer(tokio::time::Instant::now() + timer, db));
                }
                _ = sleep_until(timer_at.unwrap_or_else(tokio::time::Instant::now)), if timer_at.is_some() => {
                    if let Some(WarmPhase::Timer(_, db)) = self.warm.take() {
                        self.warm = Some(WarmPhase::Reconciling(db));
                        self.drive(Input::WarmTimerFired).await?;
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

    async fn finish(&mut self) {
        let deadline = Instant::now() + SHUTDOWN_FLUSH;
        while self.engine.can_write() && self.engine.pending() > 0 && Instant::now() < deadline {
            if self.drive(Input::Flush).await.is_err() {
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
}

/// The next command; never, when nothing sends any.
async fn next_command(commands: &mut Option<mpsc::UnboundedReceiver<Command>>) -> Option<Command> {
    match commands {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
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
