//! The sources at start-up and while running: the engine's source policy decides (see
//! `core::source_health`); this carries its orders out: load the eBPF program and wait for its
//! self-check, attach a source, detach eBPF and join rtnetlink's neighbor group.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::config::{Config, SourceKind};
use crate::core::control::{ResyncRequests, SourceControl};
use crate::core::engine::{Engine, Input, LiveSource, Output};
use crate::core::neigh::{ResyncCause, SourceEvent};
use crate::core::source_health::{SourceOrder, SourceReport};
use crate::southbound::ebpf::{ConsumerTask, EbpfConfig, EbpfError, EbpfSource};
use crate::southbound::netlink::DumpRequester;
use crate::telemetry::health::Health;
use crate::telemetry::metrics::Metrics;

/// The sources as the pipeline controls them: moving live neighbor events from eBPF to
/// rtnetlink detaches the program and joins the neighbor group.
pub(super) struct Sources {
    pub(super) ebpf: std::sync::Mutex<Option<EbpfSource>>,
    pub(super) dumps: DumpRequester,
}

impl ResyncRequests for Sources {
    fn request_resync(&self, cause: ResyncCause) {
        self.dumps.request(cause);
    }
}

impl SourceControl for Sources {
    fn switch_to_netlink(&self) -> u64 {
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

/// What the start-up left attached.
pub(super) struct Attached {
    pub(super) ebpf: Option<EbpfSource>,
    pub(super) consumer: Option<ConsumerTask>,
}

/// Carries out the source policy's start-up orders: load the eBPF program when wanted, wait
/// for its self-check, and attach the source the engine chooses; then the first dump.
pub(super) async fn start_sources(
    engine: &mut Engine,
    cfg: &Config,
    tx: mpsc::Sender<SourceEvent>,
    dumps: &DumpRequester,
    metrics: &Arc<Metrics>,
    health: &Health,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Attached> {
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
    let mut attached = Attached {
        ebpf: None,
        consumer: None,
    };
    let mut orders = std::collections::VecDeque::from(tell(SourceReport::Start));
    while let Some(order) = orders.pop_front() {
        match order {
            SourceOrder::LoadEbpf => {
                let requester = dumps.clone();
                let started = EbpfSource::start(
                    &EbpfConfig {
                        ring_bytes: cfg.ebpf_ring_bytes,
                        lru_entries: cfg.ebpf_lru_entries,
                        watchdog: cfg.ebpf_watchdog,
                    },
                    tx.clone(),
                    Box::new(move |cause| requester.lost(cause)),
                    metrics.clone(),
                    shutdown.clone(),
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
                        orders.extend(tell(SourceReport::EbpfUnavailable { reason, why }));
                        continue;
                    }
                };
                attached.ebpf = Some(started.source);
                attached.consumer = Some(started.consumer);
                orders.extend(tell(SourceReport::EbpfLoaded));
                // No eBPF record reaches the pipeline before the program has proven itself.
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
                orders.extend(tell(SourceReport::EbpfVerdict(verdict)));
            }
            SourceOrder::Attach { source, reason } => {
                if source == LiveSource::Netlink {
                    // Detach whatever was loaded; join the neighbor group (unless the socket
                    // was opened in it).
                    attached = Attached {
                        ebpf: None,
                        consumer: None,
                    };
                    if cfg.source != SourceKind::Netlink {
                        info!(reason, "using rtnetlink for neighbor events");
                        dumps.subscribe_neighbors();
                    }
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
    Ok(attached)
}
