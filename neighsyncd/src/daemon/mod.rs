//! Wiring: the tasks of a running daemon, their supervision, and its one shutdown path.
//!
//! A shutdown signal (SIGTERM, SIGINT) is broadcast on a watch channel; the pipeline finishes
//! the batch in flight and writes what is pending, then every task ends and is joined. A source
//! that dies is restarted, replaced (eBPF -> rtnetlink with `--source auto`), or stops the
//! daemon with an error; a management listener that fails never stops neighbor sync.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::config::Config;
use crate::northbound::listeners;
use crate::northbound::view::View;
use crate::pipeline::{Commands, HaLink, Inputs, Outputs, Pipeline, PipelineConfig, WarmPlan};
use crate::runtime::tasks::Tasks;
use crate::sonic::appdb::AppDb;
use crate::sonic::dbconfig::DbLayout;
use crate::sonic::warm::{WarmDb, WarmState};
use crate::telemetry::health::{Health, Listener};
use crate::telemetry::metrics::{Metrics, MetricsSet};

mod ha;
mod ha_channels;
mod partition;
mod supervise;
use supervise::supervise;
mod sources;
use partition::Spec;
pub use sources::{Preloaded, preload_ebpf};
use sources::{SharedEbpf, Sources, start_sources};

/// Changes kept for API subscribers resuming from a sequence number.
const VIEW_HISTORY: usize = 16_384;

/// How long shutdown waits for every task to end after the pipeline has written what it could.
const JOIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Resync requests from the APIs, for every namespace served.
struct AllNamespaces(Vec<Commands>);

impl crate::core::control::ResyncRequests for AllNamespaces {
    fn request_resync(&self, cause: crate::core::neigh::ResyncCause) {
        for c in &self.0 {
            c.request_resync(cause);
        }
    }
}

pub async fn run(
    cfg: Config,
    log: Option<crate::logging::LevelHandle>,
    ebpf: Option<Preloaded>,
) -> anyhow::Result<()> {
    crate::runtime::fault::announce();
    info!(version = crate::VERSION, "neighsyncd starting");
    #[cfg(not(neighsyncd_ebpf))]
    warn!(
        "this neighsyncd was built without its eBPF program: neighbor events come from rtnetlink only (see `neighsyncd --version`; build with the nightly toolchain and bpf-linker to embed it)"
    );
    let specs = Spec::all(&cfg)?;
    let several = !cfg.namespaces.is_empty();
    if several {
        let names: Vec<&str> = specs.iter().filter_map(|s| s.name.as_deref()).collect();
        info!(namespaces = ?names, "serving {} SONiC namespaces from one process", names.len());
    }
    // Each namespace's metrics, labelled with it; exposed as one.
    let metrics: Vec<Arc<Metrics>> = specs
        .iter()
        .map(|s| Arc::new(Metrics::for_namespace(s.name.as_deref())))
        .collect();
    let all_metrics = MetricsSet::new(metrics.clone());
    // Process-wide counters (the listeners') go with the first namespace's.
    let process_metrics = metrics[0].clone();
    let listeners: Vec<Listener> = [
        (cfg.metrics_listen.is_some(), Listener::Metrics),
        (cfg.rest_listen.is_some(), Listener::Rest),
        (cfg.grpc_listen.is_some(), Listener::Grpc),
    ]
    .into_iter()
    .filter_map(|(on, l)| on.then_some(l))
    .collect();
    let mut health = Health::with_listeners(&listeners);
    if several {
        let names: Vec<String> = specs.iter().filter_map(|s| s.name.clone()).collect();
        health = health.with_parts(&names);
    }
    let health = Arc::new(health);
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
        let (m, h, stop) = (all_metrics.clone(), health.clone(), shutdown_rx.clone());
        tasks.spawn(
            "metrics_listener",
            listeners::keep_serving(
                Listener::Metrics,
                addr.to_string(),
                health.clone(),
                process_metrics.clone(),
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

    // Hot standby: who leads is decided first; only the leader writes, the warm-restart
    // state included.
    let mut election = None;
    let mut ha_link = None;
    let mut ha_status = None;
    // The election runs from the first round on (a lease won must be renewed while the
    // sources start), until the pipeline has written what it had: a leader then releases
    // the lease, and a standby takes over at once.
    let (election_stop, election_stopped) = watch::channel(false);
    if let Some(timing) = cfg.ha {
        let (mut e, role) =
            ha::Election::new(&specs[0].db, timing, metrics[0].clone(), health.part(0));
        e.first_round(shutdown_rx.clone()).await;
        ha_status = Some(e.status());
        let (fenced_tx, fenced_rx) = mpsc::unbounded_channel();
        let (observed_tx, observed) = mpsc::unbounded_channel();
        let following = Arc::new(AtomicBool::new(true));
        // Subscribed before APPL_DB is read back, so that a standby's picture can stand on
        // the cold start's read-back (else it reads APPL_DB again).
        let first = tokio::time::timeout(
            ha_channels::FIRST_SUBSCRIPTION,
            ha_channels::subscribe_writes(&specs[0].db),
        )
        .await
        .ok()
        .flatten();
        tasks.spawn_until_shutdown(
            "ha_follow_writes",
            ha_channels::follow_writes(
                specs[0].db.clone(),
                first,
                observed_tx,
                following.clone(),
                shutdown_rx.clone(),
            ),
        );
        ha_link = Some(HaLink {
            role,
            fenced: fenced_tx,
            observed,
            following,
        });
        election = Some(tokio::spawn(e.run(fenced_rx, election_stopped)));
    }
    let writes = ha_link
        .as_ref()
        .is_none_or(|l: &HaLink| l.role.borrow().writes());

    // Warm start is decided before anything is read or written (swss' AppRestartAssist), in
    // every namespace (by the leader, with hot standby).
    let warm = tokio::select! {
        w = futures::future::try_join_all(specs.iter().map(|s| async move {
            if writes { warm_start_check(&s.db).await } else { Ok(None) }
        })) => w?,
        _ = stopped(shutdown_rx.clone()) => {
            tasks.join(JOIN_TIMEOUT).await;
            return Ok(());
        }
    };

    if let Some(handle) = log {
        // The log level is the process's: the first namespace's CONFIG_DB sets it.
        tasks.spawn_until_shutdown(
            "log_level_watch",
            crate::log_level::watch(specs[0].db.config.clone(), handle, cfg.log_level.clone()),
        );
    }

    let mut started = Vec::with_capacity(specs.len());
    for ((spec, w), m) in specs.iter().zip(&warm).zip(&metrics) {
        started.push(partition::start(
            &cfg,
            spec,
            w.is_none(),
            m,
            &mut tasks,
            &shutdown_rx,
        )?);
    }
    // One eBPF program for every namespace (when the source policy loads it).
    let routes = started
        .iter()
        .zip(&specs)
        .zip(&metrics)
        .map(|((st, spec), m)| st.route(spec, m.clone()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut ebpf = SharedEbpf::new(ebpf, routes, specs[0].netns.clone());
    for (i, st) in started.iter_mut().enumerate() {
        start_sources(
            &mut st.engine,
            &cfg,
            &mut ebpf,
            &st.dumps,
            &metrics[i],
            &health.part(i),
            shutdown_rx.clone(),
        )
        .await?;
    }
    ebpf.settle();

    // The management APIs' read model (kept current by the pipelines), one partition per
    // namespace.
    let view = Arc::new(if several {
        View::for_namespaces(
            VIEW_HISTORY,
            specs.iter().filter_map(|s| s.name.clone()).collect(),
        )
    } else {
        View::for_namespace(VIEW_HISTORY, cfg.namespace.clone())
    });
    let mut pipelines = Vec::new();
    let mut netlinks = Vec::new();
    let mut commands = Vec::new();
    for (i, ((mut st, spec), w)) in started.into_iter().zip(&specs).zip(warm).enumerate() {
        st.tx = None;
        let read_back = st.read_back().await;
        let appdb = AppDb::new(&spec.db.appl.url, spec.db.appl.id, &spec.db.appl.separator);
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        let pipeline = Pipeline::new(
            PipelineConfig {
                audit_interval: cfg.audit_interval,
                warm: w.map(|db| WarmPlan {
                    db,
                    restore_timeout: cfg.warm_restore_timeout,
                }),
            },
            st.engine,
            appdb,
            Inputs {
                events: st.events,
                config: st.config,
                commands: Some(commands_rx),
                read_back,
                ha: ha_link.take(),
            },
            Outputs {
                sources: Arc::new(Sources {
                    ebpf: ebpf.program.clone(),
                    dumps: st.dumps.clone(),
                }),
                metrics: metrics[i].clone(),
                health: health.part(i),
                view: Some(view.part(i)),
            },
        );
        pipelines.push(pipeline);
        netlinks.push(st.netlink);
        commands.push(commands_tx);
    }
    let api_state = crate::northbound::api::ApiState {
        view: view.clone(),
        metrics: all_metrics.clone(),
        resync: Arc::new(AllNamespaces(
            commands.iter().cloned().map(Commands).collect(),
        )),
        config: Arc::new(cfg.to_json()),
        auth,
        ha: ha_status,
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
                process_metrics.clone(),
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
                process_metrics.clone(),
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

    let pipelines = pipelines
        .into_iter()
        .map(|p| tokio::spawn(p.run(shutdown_rx.clone())))
        .collect();
    let result = supervise(
        pipelines,
        netlinks,
        ebpf.consumer.take(),
        commands,
        shutdown_rx.clone(),
    )
    .await;
    let _ = shutdown_tx.send(true);
    if let Some(task) = election {
        let _ = election_stop.send(true);
        let _ = tokio::time::timeout(JOIN_TIMEOUT, task).await;
    }
    tasks.join(JOIN_TIMEOUT).await;
    result?;
    info!("neighsyncd stopped");
    Ok(())
}

async fn stopped(mut shutdown: watch::Receiver<bool>) {
    crate::runtime::tasks::shutdown_signalled(&mut shutdown).await
}

/// Connects to STATE_DB and CONFIG_DB (retrying while Redis is not up yet) and runs
/// `checkWarmStart`. Returns the warm-restart handles when this is a warm start.
async fn warm_start_check(db: &DbLayout) -> anyhow::Result<Option<WarmDb>> {
    let mut delay = std::time::Duration::from_millis(100);
    let mut db = loop {
        let conns = async {
            let state = crate::sonic::appdb::connect(&db.state.url).await?;
            let config = crate::sonic::appdb::connect(&db.config.url).await?;
            Ok::<_, redis::RedisError>((state, config))
        }
        .await;
        match conns {
            Ok((state, config)) => {
                break WarmDb {
                    state,
                    state_sep: db.state.separator.clone(),
                    config,
                    config_sep: db.config.separator.clone(),
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
