//! The sources at start-up and while running: the engine's source policy decides (see
//! `core::source_health`); this carries its orders out: load the eBPF program and wait for its
//! self-check, attach a source, detach eBPF and join rtnetlink's neighbor group.
//!
//! One program serves every namespace the process serves: the first namespace's order loads
//! it, and every other namespace's policy is told the same outcome.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::{Config, SourceKind};
use crate::core::control::{ResyncRequests, SourceControl};
use crate::core::engine::{Engine, Input, LiveSource, Output};
use crate::core::neigh::ResyncCause;
use crate::core::source_health::{SourceOrder, SourceReport};
use crate::runtime::netns::Netns;
use crate::southbound::ebpf::{ConsumerTask, EbpfConfig, EbpfError, EbpfSource, Loaded, Route};
use crate::southbound::netlink::DumpRequester;
use crate::telemetry::health::Health;
use crate::telemetry::metrics::Metrics;

/// The process's eBPF program, shared by the namespaces it serves.
pub(super) type Program = Arc<Mutex<Option<EbpfSource>>>;

/// A namespace's sources as its pipeline controls them: moving live neighbor events from
/// eBPF to rtnetlink detaches the program and joins the neighbor group.
pub(super) struct Sources {
    pub(super) ebpf: Program,
    pub(super) dumps: DumpRequester,
}

impl ResyncRequests for Sources {
    fn request_resync(&self, cause: ResyncCause) {
        self.dumps.request(cause);
    }
}

impl SourceControl for Sources {
    fn switch_to_netlink(&self) -> u64 {
        // Every namespace falls back together (the consumer they share died): the first
        // detaches the program.
        if let Ok(mut e) = self.ebpf.lock() {
            e.take();
        }
        // Every record of the detached program is older than what this returns.
        SourceControl::switch_to_netlink(&self.dumps)
    }

    fn lost(&self, cause: ResyncCause) {
        self.dumps.lost(cause);
    }
}

/// What loading the program came to, told to every namespace's policy.
#[derive(Clone)]
enum Outcome {
    Unavailable { reason: &'static str, why: String },
    Verdict(Result<(), String>),
}

/// The program loaded first thing at start-up (see [`Loaded::load`]), or why it could not be.
pub type Preloaded = Result<Loaded, EbpfError>;

/// What the eBPF source is configured with.
fn ebpf_config(cfg: &Config) -> EbpfConfig {
    EbpfConfig {
        ring_bytes: cfg.ebpf_ring_bytes,
        lru_entries: cfg.ebpf_lru_entries,
        watchdog: cfg.ebpf_watchdog,
    }
}

/// Loads the eBPF program when the configured source may use it (`None`: rtnetlink only).
/// Called before the daemon starts, while the process is small.
pub fn preload_ebpf(cfg: &Config) -> Option<Preloaded> {
    (cfg.source != SourceKind::Netlink).then(|| Loaded::load(&ebpf_config(cfg)))
}

/// The one eBPF program: loaded on the first order, its outcome remembered for the others.
pub(super) struct SharedEbpf {
    /// The program loaded at start-up, which the first order attaches.
    preloaded: Option<Preloaded>,
    /// Where each namespace's records go (taken by the load).
    routes: Option<Vec<Route>>,
    /// The first namespace's, where the canary is planted (`None`: the process's own).
    canary_netns: Option<Arc<Netns>>,
    outcome: Option<Outcome>,
    pub(super) program: Program,
    pub(super) consumer: Option<ConsumerTask>,
    /// How many namespaces attached it.
    attached: usize,
}

impl SharedEbpf {
    pub(super) fn new(
        preloaded: Option<Preloaded>,
        routes: Vec<Route>,
        canary_netns: Option<Arc<Netns>>,
    ) -> SharedEbpf {
        SharedEbpf {
            preloaded,
            routes: Some(routes),
            canary_netns,
            outcome: None,
            program: Arc::new(Mutex::new(None)),
            consumer: None,
            attached: 0,
        }
    }

    /// Loads the program (once) and waits for its self-check: what the policy is told.
    async fn load(&mut self, cfg: &Config, shutdown: watch::Receiver<bool>) -> Vec<SourceReport> {
        let outcome = match &self.outcome {
            Some(o) => o.clone(),
            None => {
                let o = self.load_once(cfg, shutdown).await;
                self.outcome = Some(o.clone());
                o
            }
        };
        match outcome {
            Outcome::Unavailable { reason, why } => {
                vec![SourceReport::EbpfUnavailable { reason, why }]
            }
            Outcome::Verdict(v) => vec![SourceReport::EbpfLoaded, SourceReport::EbpfVerdict(v)],
        }
    }

    async fn load_once(&mut self, cfg: &Config, shutdown: watch::Receiver<bool>) -> Outcome {
        let routes = self.routes.take().unwrap_or_default();
        let started = EbpfSource::start(
            &ebpf_config(cfg),
            self.preloaded.take(),
            routes,
            self.canary_netns.clone(),
            shutdown,
        );
        let started = match started {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "eBPF source unavailable");
                let reason = match e {
                    EbpfError::NotBuilt => "ebpf_not_built",
                    EbpfError::Btf(_) => "ebpf_no_btf",
                    EbpfError::Offsets(_) | EbpfError::Layout(_) => "ebpf_layout",
                    _ => "ebpf_load_failed",
                };
                let why = e.to_string();
                return Outcome::Unavailable { reason, why };
            }
        };
        if let Ok(mut p) = self.program.lock() {
            *p = Some(started.source);
        }
        self.consumer = Some(started.consumer);
        // No eBPF record reaches a pipeline before the program has proven itself.
        let verdict = match tokio::time::timeout(
            crate::southbound::ebpf::canary::DEADLINE + std::time::Duration::from_secs(1),
            started.verified,
        )
        .await
        {
            Ok(Ok(v)) => v,
            Ok(Err(_)) => Err("the consumer ended before its verdict".into()),
            Err(_) => Err("no verdict in time".into()),
        };
        if let Err(why) = &verdict {
            warn!(reason = %why, "the eBPF program failed its self-check");
        }
        Outcome::Verdict(verdict)
    }

    /// After every namespace attached its source: a program none of them took is detached.
    pub(super) fn settle(&mut self) {
        if self.attached == 0 {
            if let Ok(mut p) = self.program.lock() {
                p.take();
            }
            self.consumer = None;
        }
    }
}

/// Carries out one namespace's source policy at start-up: load the eBPF program when wanted
/// (or take the outcome another namespace's load had), and attach the source the engine
/// chooses; then the first dump.
pub(super) async fn start_sources(
    engine: &mut Engine,
    cfg: &Config,
    ebpf: &mut SharedEbpf,
    dumps: &DumpRequester,
    metrics: &Metrics,
    health: &Health,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut tell = |report| -> Vec<SourceOrder> {
        engine
            .handle(crate::southbound::monotonic_ns(), Input::Source(report))
            .into_iter()
            .filter_map(|o| match o {
                Output::Source(order) => Some(order),
                _ => None,
            })
            .collect()
    };
    let mut orders = std::collections::VecDeque::from(tell(SourceReport::Start));
    while let Some(order) = orders.pop_front() {
        match order {
            SourceOrder::LoadEbpf => {
                for report in ebpf.load(cfg, shutdown.clone()).await {
                    orders.extend(tell(report));
                }
            }
            SourceOrder::Attach { source, reason } => {
                if source == LiveSource::Netlink {
                    // Join the neighbor group (unless the socket was opened in it).
                    if cfg.source != SourceKind::Netlink {
                        info!(reason, "using rtnetlink for neighbor events");
                        dumps.subscribe_neighbors();
                    }
                } else {
                    ebpf.attached += 1;
                }
                // Settled: now the first dump (after any subscription it needs).
                dumps.request(ResyncCause::Startup);
                metrics.source_switched(source.as_str(), reason);
                health.set_source_attached(true);
                info!(
                    source = source.as_str(),
                    reason, "neighbor event source attached"
                );
            }
            SourceOrder::Fail(why) => anyhow::bail!(why),
            SourceOrder::FallBack { .. } => {} // only once running
        }
    }
    Ok(())
}
