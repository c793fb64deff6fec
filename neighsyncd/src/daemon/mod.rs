//! Wiring: the tasks of a running daemon, their supervision, and its one shutdown path.
//!
//! A shutdown signal (SIGTERM, SIGINT) is broadcast on a watch channel; the pipeline finishes
//! the batch in flight and writes what is pending, then every task ends and is joined. A source
//! that dies is restarted, replaced (eBPF -> rtnetlink with `--source auto`), or stops the
//! daemon with an error; a management listener that fails never stops neighbor sync.

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::config::Config;
use crate::core::engine::{Engine, EngineConfig};
use crate::core::neigh::SourceEvent;
use crate::core::source_health::{SourceReport, Wanted};
use crate::northbound::listeners;
use crate::pipeline::{
    Command, Commands, Inputs, Outputs, Pipeline, PipelineConfig, PipelineError, WarmPlan,
};
use crate::runtime::tasks::Tasks;
use crate::sonic::appdb::AppDb;
use crate::sonic::config_db;
use crate::sonic::warm::{WarmDb, WarmState};
use crate::southbound::ebpf::{ConsumerError, ConsumerTask};
use crate::southbound::netlink::{self, NetlinkConfig};
use crate::southbound::supervisor::SourceGaveUp;
use crate::telemetry::health::{Health, Listener};
use crate::telemetry::metrics::Metrics;

mod sources;
use sources::{Sources, start_sources};

/// Events queued between the source and the pipeline. When full, the source stops reading and
/// the kernel socket buffer absorbs the burst (an overflow there triggers a resync).
const EVENT_QUEUE: usize = 65_536;
/// Changes kept for API subscribers resuming from a sequence number.
const VIEW_HISTORY: usize = 32_768;

/// How long shutdown waits for every task to end after the pipeline has written what it could.
const JOIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub async fn run(cfg: Config, log: Option<crate::logging::LevelHandle>) -> anyhow::Result<()> {
    crate::runtime::fault::announce();
    info!(version = crate::VERSION, "neighsyncd starting");
    #[cfg(not(neighsyncd_ebpf))]
    warn!(
        "this neighsyncd was built without its eBPF program: neighbor events come from rtnetlink only (see `neighsyncd --version`; build with the nightly toolchain and bpf-linker to embed it)"
    );
    let metrics = Arc::new(Metrics::for_namespace(cfg.namespace.as_deref()));
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

    let auth = Arc::new(
        crate::northbound::api::auth::Auth::new(cfg.api_token_file.as_deref(), cfg.api_reads_open)
            .context("api_token_file")?,
    );
    let profiler = cfg
        .profiler
        .then(|| crate::northbound::profile::Profiler::new(auth.clone()));
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
                move || {
                    crate::northbound::http::serve(
                        addr,
                        m.clone(),
                        h.clone(),
                        profiler.clone(),
                        stop.clone(),
                    )
                },
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
    let wanted = Wanted::from(cfg.source);
    let mut engine = Engine::new(EngineConfig {
        batch_max: cfg.batch_max,
        source: wanted,
        view: false,
    });
    // Links and dumps always come over rtnetlink; neighbor events from eBPF when it loads.
    let (dumps, netlink_task) = netlink::spawn(
        NetlinkConfig {
            rcvbuf_bytes: cfg.netlink_rcvbuf,
            subscribe_neigh: wanted == Wanted::Netlink,
        },
        tx.clone(),
        metrics.clone(),
        shutdown_rx.clone(),
    )
    .context("cannot start the rtnetlink source")?;
    // The kernel's neighbor tables near their limits are worth an alert (gc_thresh3).
    tasks.spawn(
        "neigh_tables",
        netlink::tables::watch(metrics.clone(), shutdown_rx.clone()),
    );
    // A cold start reads APPL_DB back while the eBPF program loads and proves itself: the two
    // take about as long as each other at 128k neighbors, and neither needs the other.
    let prefetch = warm.is_none().then(|| {
        let db = cfg.db.appl.clone();
        tokio::spawn(async move {
            let mut appdb = AppDb::new(&db.url, db.id, &db.separator);
            appdb.connect().await.ok()?;
            appdb.read_neighbors().await.ok()
        })
    });
    let attached = start_sources(
        &mut engine,
        &cfg,
        tx.clone(),
        &dumps,
        &metrics,
        &health,
        shutdown_rx.clone(),
    )
    .await?;
    let sources = Arc::new(Sources {
        ebpf: std::sync::Mutex::new(attached.ebpf),
        dumps: dumps.clone(),
    });
    drop(tx);
    let read_back = match prefetch {
        Some(task) => task.await.ok().flatten(),
        None => None,
    };

    let appdb = AppDb::new(&cfg.db.appl.url, cfg.db.appl.id, &cfg.db.appl.separator);
    let (commands_tx, commands_rx) = mpsc::unbounded_channel();
    // The management APIs' read model (kept current by the pipeline).
    let view = Arc::new(crate::northbound::view::View::for_namespace(
        VIEW_HISTORY,
        cfg.namespace.clone(),
    ));
    let pipeline = Pipeline::new(
        PipelineConfig {
            audit_interval: cfg.audit_interval,
            warm: warm.map(|db| WarmPlan {
                db,
                restore_timeout: cfg.warm_restore_timeout,
            }),
        },
        engine,
        appdb,
        Inputs {
            events: rx,
            config: config_rx,
            commands: Some(commands_rx),
            read_back,
        },
        Outputs {
            sources,
            metrics: metrics.clone(),
            health: health.clone(),
            view: Some(view.clone()),
        },
    );
    let api_state = crate::northbound::api::ApiState {
        view: view.clone(),
        metrics: metrics.clone(),
        resync: Arc::new(Commands(commands_tx.clone())),
        config: Arc::new(cfg.to_json()),
        auth,
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
        attached.consumer,
        commands_tx,
        shutdown_rx.clone(),
    )
    .await;
    let _ = shutdown_tx.send(true);
    tasks.join(JOIN_TIMEOUT).await;
    result?;
    info!("neighsyncd stopped");
    Ok(())
}

/// Runs until the pipeline ends (shutdown, or an error), telling it meanwhile what becomes of
/// the sources: the rtnetlink supervisor giving up, or the eBPF consumer dying. What follows
/// (a fallback, a stop) is the engine's source policy.
async fn supervise(
    mut pipeline: tokio::task::JoinHandle<Result<(), PipelineError>>,
    mut netlink: tokio::task::JoinHandle<Result<(), SourceGaveUp>>,
    mut consumer: Option<ConsumerTask>,
    commands: mpsc::UnboundedSender<Command>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut netlink_done = false;
    loop {
        tokio::select! {
            r = &mut pipeline => {
                return match r {
                    Ok(r) => r.map_err(anyhow::Error::from),
                    Err(e) => Err(anyhow::anyhow!("the sync pipeline panicked: {e}")),
                };
            }
            r = &mut netlink, if !netlink_done => {
                netlink_done = true;
                let why = match r {
                    Ok(Ok(())) => continue,
                    Ok(Err(gave_up)) => gave_up.to_string(),
                    Err(e) => format!("the rtnetlink source supervisor died: {e}"),
                };
                let _ = commands.send(Command::Source(SourceReport::NetlinkGaveUp(why)));
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
                let _ = commands.send(Command::Source(SourceReport::EbpfFailed(why)));
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
