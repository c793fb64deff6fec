//! One SONiC namespace a daemon serves: its databases, its network namespace, and what it
//! runs there: the rtnetlink source, the CONFIG_DB watch, the engine and the pipeline that
//! writes its APPL_DB. A daemon serves one (as upstream runs it) or several (multi-ASIC, one
//! process); nothing here is shared between namespaces but the eBPF program, the API's view
//! and the listeners.

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::core::engine::{Engine, EngineConfig};
use crate::core::neigh::SourceEvent;
use crate::core::source_health::Wanted;
use crate::pipeline::Prefetched;
use crate::runtime::netns::Netns;
use crate::runtime::tasks::Tasks;
use crate::sonic::appdb::AppDb;
use crate::sonic::config_db;
use crate::sonic::dbconfig::DbLayout;
use crate::southbound::ebpf::Route;
use crate::southbound::netlink::{self, DumpRequester, NetlinkConfig};
use crate::southbound::supervisor::SourceGaveUp;
use crate::telemetry::metrics::Metrics;

/// Events queued between the sources and a namespace's pipeline: one chunk of the pipeline's
/// intake. When full, the source stops reading and the kernel
/// socket buffer (or the ring) absorbs the burst (an overflow there triggers a resync).
///
/// It was 65,536, about 4 MiB of events when full. It is full at every cold start: the first
/// dump arrives while the pipeline waits for APPL_DB's read-back. With 8192, a 100k burst still
/// overflows neither the ring nor the socket (docs/BENCHMARKING.md, "Cold start at 100k").
const EVENT_QUEUE: usize = crate::pipeline::EVENT_CHUNK;

/// Which namespace, where its databases are, and how to reach its kernel tables.
pub(super) struct Spec {
    /// The SONiC namespace's name (`None`: a single-ASIC device).
    pub(super) name: Option<String>,
    pub(super) db: DbLayout,
    /// The network namespace reached into (`None`: the one the process is in).
    pub(super) netns: Option<Arc<Netns>>,
}

impl Spec {
    /// What `cfg` asks to serve: the namespace the daemon is in (entered or not), or each of
    /// several, reached without entering them.
    pub(super) fn all(cfg: &Config) -> anyhow::Result<Vec<Spec>> {
        if cfg.namespaces.is_empty() {
            return Ok(vec![Spec {
                name: cfg.namespace.clone(),
                db: cfg.db.clone(),
                netns: None,
            }]);
        }
        cfg.namespaces
            .iter()
            .map(|s| {
                let netns =
                    Netns::open(&s.name).with_context(|| format!("namespace {}", s.name))?;
                Ok(Spec {
                    name: Some(s.name.clone()),
                    db: s.db.clone(),
                    netns: Some(Arc::new(netns)),
                })
            })
            .collect()
    }

    /// The inode number of its network namespace (what the eBPF program filters on).
    pub(super) fn netns_inode(&self) -> anyhow::Result<u32> {
        match &self.netns {
            Some(n) => Ok(n.inode()),
            None => crate::southbound::ebpf::own_netns().context("the process's network namespace"),
        }
    }
}

/// A namespace's sources running, its engine not yet started.
pub(super) struct Started {
    pub(super) engine: Engine,
    pub(super) events: mpsc::Receiver<SourceEvent>,
    /// Taken (and dropped) once the sources are attached: the pipeline then sees the end of
    /// the channel when every source has gone.
    pub(super) tx: Option<mpsc::Sender<SourceEvent>>,
    pub(super) dumps: DumpRequester,
    pub(super) netlink: tokio::task::JoinHandle<Result<(), SourceGaveUp>>,
    pub(super) config: watch::Receiver<Option<crate::core::rules::ConfigSnapshot>>,
    /// A cold start's APPL_DB read-back, fetched while the sources start.
    pub(super) prefetch: Option<tokio::task::JoinHandle<Option<Prefetched>>>,
}

impl Started {
    /// Where the eBPF program's records of this namespace go.
    pub(super) fn route(&self, spec: &Spec, metrics: Arc<Metrics>) -> anyhow::Result<Route> {
        let requester = self.dumps.clone();
        Ok(Route {
            netns: spec.netns_inode()?,
            tx: self
                .tx
                .clone()
                .context("the namespace's event channel is closed")?,
            request_dump: Box::new(move |cause| requester.lost(cause)),
            metrics,
        })
    }

    pub(super) async fn read_back(&mut self) -> Option<Prefetched> {
        match self.prefetch.take() {
            Some(task) => task.await.ok().flatten(),
            None => None,
        }
    }
}

/// Starts a namespace's rtnetlink source, CONFIG_DB watch and kernel-table watch, and (on a
/// cold start) its APPL_DB read-back.
pub(super) fn start(
    cfg: &Config,
    spec: &Spec,
    cold: bool,
    metrics: &Arc<Metrics>,
    tasks: &mut Tasks,
    shutdown: &watch::Receiver<bool>,
) -> anyhow::Result<Started> {
    let (config_tx, config_rx) = watch::channel(None);
    tasks.spawn_until_shutdown(
        "config_db_watch",
        config_db::watch(
            spec.db.config.clone(),
            cfg.ignore_interfaces.clone(),
            cfg.config_db_poll,
            config_tx,
            metrics.clone(),
        ),
    );
    let (tx, rx) = mpsc::channel::<SourceEvent>(EVENT_QUEUE);
    let wanted = Wanted::from(cfg.source);
    let engine = Engine::new(EngineConfig {
        batch_max: cfg.batch_max,
        source: wanted,
        view: false,
    });
    // Links and dumps always come over rtnetlink; neighbor events from eBPF when it loads.
    let (dumps, netlink_task) = netlink::spawn(
        NetlinkConfig {
            rcvbuf_bytes: cfg.netlink_rcvbuf,
            subscribe_neigh: wanted == Wanted::Netlink,
            netns: spec.netns.clone(),
        },
        tx.clone(),
        metrics.clone(),
        shutdown.clone(),
    )
    .context("cannot start the rtnetlink source")?;
    // The kernel's neighbor tables near their limits are worth an alert (gc_thresh3).
    tasks.spawn(
        "neigh_tables",
        netlink::tables::watch(metrics.clone(), spec.netns.clone(), shutdown.clone()),
    );
    // A cold start reads APPL_DB back while the eBPF program loads and proves itself: the two
    // take about as long as each other at 128k neighbors, and neither needs the other.
    let prefetch = cold.then(|| {
        let db = spec.db.appl.clone();
        tokio::spawn(async move {
            let mut appdb = AppDb::new(&db.url, db.id, &db.separator);
            appdb.connect().await.ok()?;
            let started = std::time::Instant::now();
            let entries = appdb.read_neighbors().await.ok()?;
            Some(Prefetched { entries, started })
        })
    });
    Ok(Started {
        engine,
        events: rx,
        tx: Some(tx),
        dumps,
        netlink: netlink_task,
        config: config_rx,
        prefetch,
    })
}
