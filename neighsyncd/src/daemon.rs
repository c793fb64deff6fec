//! Wiring: the tasks of a running daemon and its one shutdown path.
//!
//! A shutdown signal (SIGTERM, SIGINT) is broadcast on a watch channel; the pipeline finishes
//! the batch in flight and writes what is pending, then every task ends.

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::appdb::AppDb;
use crate::config::{Config, SourceKind};
use crate::health::Health;
use crate::metrics::Metrics;
use crate::pipeline::{Pipeline, PipelineConfig, WarmPlan};
use crate::sonic_config;
use crate::source::ResyncCause;
use crate::source::SourceEvent;
use crate::source::ebpf::{EbpfConfig, EbpfError, EbpfSource};
use crate::source::netlink::{self, DumpRequester, NetlinkConfig};
use crate::warm::{WarmDb, WarmState};

/// Events queued between the source and the pipeline. When full, the source stops reading and
/// the kernel socket buffer absorbs the burst (an overflow there triggers a resync).
const EVENT_QUEUE: usize = 65_536;
/// Changes kept for API subscribers resuming from a sequence number.
const VIEW_HISTORY: usize = 65_536;

pub async fn run(cfg: Config, log: Option<crate::logging::LevelHandle>) -> anyhow::Result<()> {
    crate::fault::announce();
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::default());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);

    let _http = match cfg.metrics_listen {
        Some(addr) => Some(
            crate::http::serve(addr, metrics.clone(), health.clone(), shutdown_rx.clone())
                .await
                .with_context(|| format!("cannot listen on {addr} (metrics_listen)"))?,
        ),
        None => None,
    };

    // Warm start is decided before anything is read or written (swss' AppRestartAssist).
    let warm = warm_start_check(&cfg).await?;

    let log_task = log.map(|handle| {
        tokio::spawn(crate::log_level::watch(
            cfg.db.config.clone(),
            handle,
            cfg.log_level.clone(),
        ))
    });

    let (config_tx, config_rx) = watch::channel(None);
    let config_task = tokio::spawn(sonic_config::watch(
        cfg.db.config.clone(),
        cfg.ignore_interfaces.clone(),
        cfg.config_db_poll,
        config_tx,
        metrics.clone(),
    ));

    let (tx, rx) = mpsc::channel::<SourceEvent>(EVENT_QUEUE);
    // Links and dumps always come over rtnetlink; neighbor events from eBPF when it loads.
    let (dumps, source_task) = netlink::spawn(
        NetlinkConfig {
            rcvbuf_bytes: cfg.netlink_rcvbuf,
            subscribe_neigh: cfg.source == SourceKind::Netlink,
        },
        tx.clone(),
        metrics.clone(),
    )
    .context("cannot start the rtnetlink source")?;
    let (live_source, reason, ebpf) = choose_source(&cfg, tx, &dumps, &metrics)?;
    let ebpf = Arc::new(std::sync::Mutex::new(ebpf));
    // Settled: now the first dump (after any subscription it needs).
    dumps.request(ResyncCause::Startup);
    let dumps_for_check = dumps.clone();
    metrics
        .source_active
        .with_label_values(&[live_source, reason])
        .set(1);
    health.set_source_attached(true);
    info!(
        source = live_source,
        reason, "neighbor event source attached"
    );

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
        dumps,
        rx,
        config_rx,
    );
    // The management APIs' read model (kept current by the pipeline).
    let view = Arc::new(crate::view::View::new(VIEW_HISTORY));
    let mut pipeline = pipeline.with_view(view.clone());
    if live_source == "ebpf" {
        let (ebpf, dumps, metrics) = (ebpf.clone(), dumps_for_check.clone(), metrics.clone());
        pipeline = pipeline.with_ebpf_check(Box::new(move || {
            if let Ok(mut e) = ebpf.lock() {
                e.take();
            }
            dumps.subscribe_neighbors();
            dumps.request(ResyncCause::Requested);
            metrics
                .source_active
                .with_label_values(&["ebpf", "auto"])
                .set(0);
            metrics
                .source_active
                .with_label_values(&["ebpf", "configured"])
                .set(0);
            metrics
                .source_active
                .with_label_values(&["netlink", "ebpf_startup_check_failed"])
                .set(1);
        }));
    }
    if let Some(db) = warm {
        pipeline = pipeline.with_warm_start(WarmPlan {
            db,
            restore_timeout: cfg.warm_restore_timeout,
        });
    }
    let api_state = crate::api::ApiState {
        view: view.clone(),
        metrics: metrics.clone(),
        dumps: dumps_for_check.clone(),
        config: Arc::new(cfg.to_json()),
        auth: Arc::new(
            crate::api::auth::Auth::new(cfg.api_token_file.as_deref(), cfg.api_reads_open)
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
    let _grpc = match &cfg.grpc_listen {
        Some(addr) => Some(
            crate::api::grpc::serve(
                addr.clone(),
                api_state.clone(),
                cfg.api_tls.as_ref(),
                shutdown_rx.clone(),
            )
            .await
            .with_context(|| format!("cannot listen on {addr} (grpc_listen)"))?,
        ),
        None => None,
    };
    let _rest = match &cfg.rest_listen {
        Some(addr) => Some(
            crate::api::rest::serve(addr.clone(), api_state, rest_tls, shutdown_rx.clone())
                .await
                .with_context(|| format!("cannot listen on {addr} (rest_listen)"))?,
        ),
        None => None,
    };
    let signals = tokio::spawn(wait_for_signal(shutdown_tx));
    let result = pipeline.run(shutdown_rx).await;
    signals.abort();
    source_task.abort();
    config_task.abort();
    if let Some(t) = log_task {
        t.abort();
    }
    result?;
    info!("neighsyncd stopped");
    Ok(())
}

/// Connects to STATE_DB and CONFIG_DB (retrying while Redis is not up yet) and runs
/// `checkWarmStart`. Returns the warm-restart handles when this is a warm start.
async fn warm_start_check(cfg: &Config) -> anyhow::Result<Option<WarmDb>> {
    let mut delay = std::time::Duration::from_millis(100);
    let mut db = loop {
        let conns = async {
            let state = crate::appdb::connect(&cfg.db.state.url).await?;
            let config = crate::appdb::connect(&cfg.db.config.url).await?;
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

/// Picks the live neighbor source: eBPF when asked (or, with `auto`, when it loads), else
/// rtnetlink multicast. Returns (label, reason, the attached eBPF source).
fn choose_source(
    cfg: &Config,
    tx: mpsc::Sender<SourceEvent>,
    dumps: &DumpRequester,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<(&'static str, &'static str, Option<EbpfSource>)> {
    if cfg.source == SourceKind::Netlink {
        return Ok(("netlink", "configured", None));
    }
    let requester = dumps.clone();
    let started = EbpfSource::start(
        &EbpfConfig {
            ring_bytes: cfg.ebpf_ring_bytes,
            lru_entries: cfg.ebpf_lru_entries,
        },
        tx,
        Box::new(move |cause| requester.lost(cause)),
        metrics.clone(),
    );
    match (started, cfg.source) {
        (Ok(src), SourceKind::Ebpf) => Ok(("ebpf", "configured", Some(src))),
        (Ok(src), _) => Ok(("ebpf", "auto", Some(src))),
        (Err(e), SourceKind::Ebpf) => Err(anyhow::anyhow!("--source ebpf: {e}")),
        (Err(e), _) => {
            warn!(error = %e, "eBPF source unavailable; falling back to rtnetlink");
            dumps.subscribe_neighbors();
            let reason = match e {
                EbpfError::NotBuilt => "ebpf_not_built",
                EbpfError::Btf(_) | EbpfError::Offsets(_) => "ebpf_no_btf",
                _ => "ebpf_load_failed",
            };
            Ok(("netlink", reason, None))
        }
    }
}

async fn wait_for_signal(tx: watch::Sender<bool>) {
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
    }
    let _ = tx.send(true);
}
