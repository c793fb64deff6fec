//! Wiring: the tasks of a running daemon, their supervision, and its one shutdown path.
//!
//! A shutdown signal (SIGTERM, SIGINT) is broadcast on a watch channel; the pipeline finishes
//! the batch in flight and writes what is pending, then every task ends and is joined. A source
//! that dies is restarted, replaced (eBPF -> rtnetlink with `--source auto`), or stops the
//! daemon with an error; a management listener that fails never stops neighbor sync.

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use crate::config::{Config, SourceKind};
use crate::core::neigh::ResyncCause;
use crate::core::neigh::SourceEvent;
use crate::northbound::listeners;
use crate::pipeline::{Pipeline, PipelineConfig, PipelineError, WarmPlan};
use crate::runtime::tasks::Tasks;
use crate::sonic::appdb::AppDb;
use crate::sonic::config_db;
use crate::sonic::warm::{WarmDb, WarmState};
use crate::southbound::ebpf::{ConsumerError, ConsumerTask, EbpfConfig, EbpfError, EbpfSource};
use crate::southbound::netlink::{self, DumpRequester, NetlinkConfig};
use crate::southbound::supervisor::SourceGaveUp;
use crate::telemetry::health::{Health, Listener};
use crate::telemetry::metrics::Metrics;

/// Events queued between the source and the pipeline. When full, the source stops reading and
/// the kernel socket buffer absorbs the burst (an overflow there triggers a resync).
const EVENT_QUEUE: usize = 65_536;
/// Changes kept for API subscribers resuming from a sequence number.
const VIEW_HISTORY: usize = 65_536;

/// How long shutdown waits for every task to end after the pipeline has written what it could.
const JOIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub async fn run(cfg: Config, log: Option<crate::logging::LevelHandle>) -> anyhow::Result<()> {
    crate::runtime::fault::announce();
    let metrics = Arc::new(Metrics::new());
    let listeners: Vec<Listener> = [
        (cfg.metrics_listen.is_some(), Listener::Metrics),
        (cfg.rest_listen.is_some(), Listener::Rest),
        (cfg.grpc_listen.is_some(), Listener::Grpc),
    ]
    .into_iter()
    .filter_map(|(on, l)| on.then_some(l))
    .collect();
    let health = Arc::new(Health::with_listeners(&listeners));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut tasks = Tasks::new(shutdown_rx.clone());
    tasks.spawn(
        "signals",
        wait_for_signal(shutdown_tx.clone(), shutdown_rx.clone()),
    );

    if let Some(addr) = cfg.metrics_listen {
        let (m, h, stop) = (metrics.clone(), health.clone(), shutdown_rx.clone());
        tasks.spawn(
            "metrics_listener",
            listeners::keep_serving(
                Listener::Metrics,
                addr.to_string(),
                health.clone(),
                metrics.clone(),
                shutdown_rx.clone(),
                move || crate::northbound::http::serve(addr, m.clone(), h.clone(), stop.clone()),
            ),
        );
    }

    // Warm start is decided before anything is read or written (swss' AppRestartAssist).
    let warm = tokio::select! {
        w = warm_start_check(&cfg) => w?,
        _ = stopped(shutdown_rx.clone()) => {
            tasks.join(JOIN_TIMEOUT).await;
            return Ok(());
        }
    };

    if let Some(handle) = log {
        tasks.spawn_until_shutdown(
            "log_level_watch",
            crate::log_level::watch(cfg.db.config.clone(), handle, cfg.log_level.clone()),
        );
    }
    let (config_tx, config_rx) = watch::channel(None);
    tasks.spawn_until_shutdown(
        "config_db_watch",
        config_db::watch(
            cfg.db.config.clone(),
            cfg.ignore_interfaces.clone(),
            cfg.config_db_poll,
            config_tx,
            metrics.clone(),
        ),
    );

    let (tx, rx) = mpsc::channel::<SourceEvent>(EVENT_QUEUE);
    // Links and dumps always come over rtnetlink; neighbor events from eBPF when it loads.
    let (dumps, netlink_task) = netlink::spawn(
        NetlinkConfig {
            rcvbuf_bytes: cfg.netlink_rcvbuf,
            subscribe_neigh: cfg.source == SourceKind::Netlink,
        },
        tx.clone(),
        metrics.clone(),
        shutdown_rx.clone(),
    )
    .context("cannot start the rtnetlink source")?;
    let mut chosen = choose_source(&cfg, tx.clone(), &dumps, &metrics, shutdown_rx.clone())?;
    // No eBPF record reaches the pipeline before the program has proven itself on this kernel.
    if let Some(verified) = chosen.verified.take() {
        let verdict = match tokio::time::timeout(
            crate::southbound::ebpf::canary::DEADLINE + std::time::Duration::from_secs(1),
            verified,
        )
        .await
        {
            Ok(Ok(v)) => v,
            Ok(Err(_)) => Err("the consumer ended before its verdict".into()),
            Err(_) => Err("no verdict in time".into()),
        };
        if let Err(why) = verdict {
            if cfg.source == SourceKind::Ebpf {
                anyhow::bail!("--source ebpf: the eBPF program failed its self-check: {why}");
            }
            warn!(reason = %why, "the eBPF program failed its self-check; using rtnetlink");
            chosen = Chosen {
                label: "netlink",
                reason: "ebpf_verification_failed",
                ebpf: None,
                consumer: None,
                verified: None,
            };
            dumps.subscribe_neighbors();
        }
    }
    let live_source = chosen.label;
    let ebpf = Arc::new(std::sync::Mutex::new(chosen.ebpf.take()));
    // Settled: now the first dump (after any subscription it needs).
    dumps.request(ResyncCause::Startup);
    metrics
        .source_active
        .with_label_values(&[live_source, chosen.reason])
        .set(1);
    health.set_source_attached(true);
    info!(
        source = live_source,
        reason = chosen.reason,
        "neighbor event source attached"
    );
    let fallback = Fallback {
        ebpf: ebpf.clone(),
        dumps: dumps.clone(),
        metrics: metrics.clone(),
        events: tx.downgrade(),
    };
    drop(tx);

    let appdb = AppDb::new(&cfg.db.appl.url, cfg.db.appl.id, &cfg.db.appl.separator);
    let pipeline = Pipeline::new(
        PipelineConfig {
            batch_max: cfg.batch_max,
            audit_interval: cfg.audit_interval,
            live_source,
        },
        appdb,
        metrics.clone(),
        health.clone(),
        dumps.clone(),
        rx,
        config_rx,
    );
    // The management APIs' read model (kept current by the pipeline).
    let view = Arc::new(crate::northbound::view::View::new(VIEW_HISTORY));
    let mut pipeline = pipeline.with_view(view.clone());
    if let Some(db) = warm {
        pipeline = pipeline.with_warm_start(WarmPlan {
            db,
            restore_timeout: cfg.warm_restore_timeout,
        });
    }
    let api_state = crate::northbound::api::ApiState {
        view: view.clone(),
        metrics: metrics.clone(),
        resync: Arc::new(dumps.clone()),
        config: Arc::new(cfg.to_json()),
        auth: Arc::new(
            crate::northbound::api::auth::Auth::new(
                cfg.api_token_file.as_deref(),
                cfg.api_reads_open,
            )
            .context("api_token_file")?,
        ),
    };
    let rest_tls = match &cfg.api_tls {
        Some(files) => Some(
            files
                .server_config()
                .context("api_tls_cert / api_tls_key")?,
        ),
        None => None,
    };
    if let Some(addr) = cfg.grpc_listen.clone() {
        let (state, tls, stop) = (api_state.clone(), cfg.api_tls.clone(), shutdown_rx.clone());
        tasks.spawn(
            "grpc_listener",
            listeners::keep_serving(
                Listener::Grpc,
                addr.to_string(),
                health.clone(),
                metrics.clone(),
                shutdown_rx.clone(),
                move || {
                    let (addr, state, tls, stop) =
                        (addr.clone(), state.clone(), tls.clone(), stop.clone());
                    async move {
                        crate::northbound::api::grpc::serve(addr, state, tls.as_ref(), stop).await
                    }
                },
            ),
        );
    }
    if let Some(addr) = cfg.rest_listen.clone() {
        let (state, stop) = (api_state, shutdown_rx.clone());
        tasks.spawn(
            "rest_listener",
            listeners::keep_serving(
                Listener::Rest,
                addr.to_string(),
                health.clone(),
                metrics.clone(),
                shutdown_rx.clone(),
                move || {
                    crate::northbound::api::rest::serve(
                        addr.clone(),
                        state.clone(),
                        rest_tls.clone(),
                        stop.clone(),
                    )
                },
            ),
        );
    }

    let pipeline = tokio::spawn(pipeline.run(shutdown_rx.clone()));
    let result = supervise(
        pipeline,
        netlink_task,
        chosen.consumer,
        &cfg,
        &fallback,
        &health,
        &shutdown_tx,
    )
    .await;
    let _ = shutdown_tx.send(true);
    tasks.join(JOIN_TIMEOUT).await;
    result?;
    info!("neighsyncd stopped");
    Ok(())
}

/// Moves neighbor events from eBPF to rtnetlink: the program is detached, the neighbor group
/// joined, and a dump replaces what the program may have missed.
#[derive(Clone)]
struct Fallback {
    ebpf: Arc<std::sync::Mutex<Option<EbpfSource>>>,
    dumps: DumpRequester,
    metrics: Arc<Metrics>,
    /// The pipeline's channel (weak: the daemon must not keep it open).
    events: mpsc::WeakSender<SourceEvent>,
}

impl Fallback {
    async fn to_netlink(&self, reason: &'static str) {
        if let Ok(mut e) = self.ebpf.lock() {
            e.take();
        }
        // Every record of the detached program is older than this; every rtnetlink event,
        // received after the subscription below, is newer.
        let since_ns = crate::southbound::monotonic_ns();
        self.dumps.subscribe_neighbors();
        if let Some(tx) = self.events.upgrade() {
            let _ = tx.send(SourceEvent::SwitchedToNetlink { since_ns }).await;
        }
        self.dumps.lost(ResyncCause::SourceRestart);
        for r in ["auto", "configured"] {
            self.metrics
                .source_active
                .with_label_values(&["ebpf", r])
                .set(0);
        }
        self.metrics
            .source_active
            .with_label_values(&["netlink", reason])
            .set(1);
    }
}

/// Runs until the pipeline ends (shutdown, or an error), watching the sources meanwhile: the
/// rtnetlink supervisor giving up, or the eBPF consumer dying, stops the daemon with an error
/// (with `--source auto`, a dead consumer falls back to rtnetlink instead).
async fn supervise(
    mut pipeline: tokio::task::JoinHandle<Result<(), PipelineError>>,
    mut netlink: tokio::task::JoinHandle<Result<(), SourceGaveUp>>,
    mut consumer: Option<ConsumerTask>,
    cfg: &Config,
    fallback: &Fallback,
    health: &Health,
    shutdown: &watch::Sender<bool>,
) -> anyhow::Result<()> {
    let mut failure: Option<anyhow::Error> = None;
    let mut netlink_done = false;
    loop {
        tokio::select! {
            r = &mut pipeline => {
                let r = match r {
                    Ok(r) => r.map_err(anyhow::Error::from),
                    Err(e) => Err(anyhow::anyhow!("the sync pipeline panicked: {e}")),
                };
                return match failure {
                    Some(f) => Err(f),
                    None => r,
                };
            }
            r = &mut netlink, if !netlink_done => {
                netlink_done = true;
                let why = match r {
                    Ok(Ok(())) => continue,
                    Ok(Err(gave_up)) => anyhow::Error::from(gave_up),
                    Err(e) => anyhow::anyhow!("the rtnetlink source supervisor died: {e}"),
                };
                health.set_sources_alive(false);
                failure.get_or_insert(why);
                let _ = shutdown.send(true);
            }
            r = wait_consumer(&mut consumer) => {
                consumer = None;
                let why = match r {
                    Ok(Ok(())) => continue,
                    Ok(Err(e)) => e.to_string(),
                    Err(e) if e.is_cancelled() => continue, // detached on purpose (fallback)
                    Err(e) => format!("panicked: {e}"),
                };
                if *shutdown.borrow() {
                    continue;
                }
                if cfg.source == SourceKind::Auto {
                    fallback.metrics.source_failures.with_label_values(&["ebpf", "fell_back"]).inc();
                    error!(reason = %why, "the eBPF consumer died; falling back to rtnetlink");
                    fallback.to_netlink("ebpf_consumer_failed").await;
                } else {
                    fallback.metrics.source_failures.with_label_values(&["ebpf", "exited"]).inc();
                    error!(reason = %why, "the eBPF consumer died (--source ebpf: no fallback)");
                    health.set_sources_alive(false);
                    failure.get_or_insert(anyhow::anyhow!("the eBPF source failed: {why}"));
                    let _ = shutdown.send(true);
                }
            }
        }
    }
}

async fn wait_consumer(
    consumer: &mut Option<ConsumerTask>,
) -> Result<Result<(), ConsumerError>, tokio::task::JoinError> {
    match consumer {
        Some(t) => t.await,
        None => std::future::pending().await,
    }
}

async fn stopped(mut shutdown: watch::Receiver<bool>) {
    crate::runtime::tasks::shutdown_signalled(&mut shutdown).await
}

/// Connects to STATE_DB and CONFIG_DB (retrying while Redis is not up yet) and runs
/// `checkWarmStart`. Returns the warm-restart handles when this is a warm start.
async fn warm_start_check(cfg: &Config) -> anyhow::Result<Option<WarmDb>> {
    let mut delay = std::time::Duration::from_millis(100);
    let mut db = loop {
        let conns = async {
            let state = crate::sonic::appdb::connect(&cfg.db.state.url).await?;
            let config = crate::sonic::appdb::connect(&cfg.db.config.url).await?;
            Ok::<_, redis::RedisError>((state, config))
        }
        .await;
        match conns {
            Ok((state, config)) => {
                break WarmDb {
                    state,
                    state_sep: cfg.db.state.separator.clone(),
                    config,
                    config_sep: cfg.db.config.separator.clone(),
                };
            }
            Err(e) => {
                warn!(error = %e, "cannot reach STATE_DB/CONFIG_DB yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
            }
        }
    };
    let ws = db.check(true).await.context("warm-restart check")?;
    if !ws.enabled {
        return Ok(None);
    }
    db.set_state(WarmState::Initialized)
        .await
        .context("warm-restart state")?;
    Ok(Some(db))
}

/// The live neighbor source chosen at start.
struct Chosen {
    label: &'static str,
    reason: &'static str,
    ebpf: Option<EbpfSource>,
    consumer: Option<ConsumerTask>,
    verified: Option<crate::southbound::ebpf::Verified>,
}

/// Picks the live neighbor source: eBPF when asked (or, with `auto`, when it loads), else
/// rtnetlink multicast.
fn choose_source(
    cfg: &Config,
    tx: mpsc::Sender<SourceEvent>,
    dumps: &DumpRequester,
    metrics: &Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Chosen> {
    let netlink = |reason| Chosen {
        label: "netlink",
        reason,
        ebpf: None,
        consumer: None,
        verified: None,
    };
    if cfg.source == SourceKind::Netlink {
        return Ok(netlink("configured"));
    }
    let requester = dumps.clone();
    let started = EbpfSource::start(
        &EbpfConfig {
            ring_bytes: cfg.ebpf_ring_bytes,
            lru_entries: cfg.ebpf_lru_entries,
            watchdog: cfg.ebpf_watchdog,
        },
        tx,
        Box::new(move |cause| requester.lost(cause)),
        metrics.clone(),
        shutdown,
    );
    match (started, cfg.source) {
        (Ok(started), source) => Ok(Chosen {
            label: "ebpf",
            reason: if source == SourceKind::Ebpf {
                "configured"
            } else {
                "auto"
            },
            ebpf: Some(started.source),
            consumer: Some(started.consumer),
            verified: Some(started.verified),
        }),
        (Err(e), SourceKind::Ebpf) => Err(anyhow::anyhow!("--source ebpf: {e}")),
        (Err(e), _) => {
            warn!(error = %e, "eBPF source unavailable; falling back to rtnetlink");
            dumps.subscribe_neighbors();
            Ok(netlink(match e {
                EbpfError::NotBuilt => "ebpf_not_built",
                EbpfError::Btf(_) => "ebpf_no_btf",
                EbpfError::Offsets(_) | EbpfError::Layout(_) => "ebpf_layout",
                _ => "ebpf_load_failed",
            }))
        }
    }
}

/// SIGTERM or SIGINT starts the shutdown; the task also ends when shutdown comes another way.
async fn wait_for_signal(tx: watch::Sender<bool>, shutdown: watch::Receiver<bool>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        warn!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: finishing the batch in flight"),
        _ = int.recv() => info!("SIGINT: finishing the batch in flight"),
        _ = stopped(shutdown) => return,
    }
    let _ = tx.send(true);
}
