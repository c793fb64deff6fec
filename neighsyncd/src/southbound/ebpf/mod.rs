//! The eBPF source: the program on the kernel's neighbor tracepoints, its offsets from the
//! running kernel's BTF, and the ring-buffer consumer. Rtnetlink still supplies links and the
//! reconciliation dumps; this replaces only the neighbor multicast.

pub mod btf;
pub(crate) mod canary;
mod consumer;
mod loader;
mod offsets;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use crate::core::neigh::{ResyncCause, SourceEvent};
use crate::runtime::netns::Netns;
use crate::telemetry::metrics::Metrics;

pub use consumer::{ConsumerError, Record, Verified, decode, to_neigh_msg};
use loader::Program;
pub use offsets::own_netns;

#[derive(Debug, thiserror::Error)]
pub enum EbpfError {
    #[error(
        "eBPF object not built into this binary: install nightly rust-src and bpf-linker (sudo bash scripts/setup.sh) and run `cargo xtask build-ebpf` before building"
    )]
    NotBuilt,
    #[error("the kernel's BTF is unusable ({0}); this kernel needs CONFIG_DEBUG_INFO_BTF")]
    Btf(String),
    #[error("kernel struct layout: {0}")]
    Offsets(#[from] btf::BtfError),
    #[error("kernel struct layout: {0}")]
    Layout(String),
    #[error("cannot read this process's network namespace: {0}")]
    Netns(std::io::Error),
    #[error("loading the eBPF program failed (CAP_BPF and CAP_PERFMON needed): {0}")]
    Load(String),
    #[error("attaching to tracepoint {0} failed: {1}")]
    Attach(&'static str, String),
    #[error("eBPF map {0}: {1}")]
    Map(&'static str, String),
}

#[derive(Debug, Clone, Copy)]
pub struct EbpfConfig {
    /// Ring buffer size in bytes (a power of two, at least a page).
    pub ring_bytes: u32,
    pub lru_entries: u32,
    /// Silence this long makes the consumer check the program with the canary neighbor.
    pub watchdog: std::time::Duration,
}

/// Counters the consumer keeps (read for metrics and tests).
#[derive(Debug, Default)]
pub struct EbpfStats {
    pub events: AtomicU64,
    pub drops: AtomicU64,
}

/// The attached program; dropping it detaches and stops the consumer.
pub struct EbpfSource {
    _program: Program,
    stats: Arc<EbpfStats>,
    consumer: tokio::task::AbortHandle,
}

impl Drop for EbpfSource {
    fn drop(&mut self) {
        self.consumer.abort();
    }
}

/// The consumer task: `Ok` when it stopped at shutdown (or was detached), an error when it died.
pub type ConsumerTask = tokio::task::JoinHandle<Result<(), ConsumerError>>;

/// A loaded and attached program.
pub struct Started {
    pub source: EbpfSource,
    pub consumer: ConsumerTask,
    /// The start-up verdict (the canary neighbor, field by field); no record reaches the
    /// pipeline before it is `Ok`.
    pub verified: Verified,
}

/// Fills the program's namespace filter. Fault injection (`ebpf_silent`): a filter that
/// matches none of them, as a program reading the wrong namespace would.
fn serve_namespaces(
    ebpf: &mut Program,
    inodes: impl Iterator<Item = u32>,
) -> Result<(), EbpfError> {
    let map = ebpf
        .map_mut("NETNS")
        .ok_or_else(|| EbpfError::Map("NETNS", "missing".into()))?;
    let mut netns: aya::maps::HashMap<_, u32, u8> =
        aya::maps::HashMap::try_from(map).map_err(|e| EbpfError::Map("NETNS", e.to_string()))?;
    let silent = crate::runtime::fault::get("ebpf_silent").is_some();
    for inode in inodes {
        let inode = if silent { inode.wrapping_add(1) } else { inode };
        netns
            .insert(inode, 1, 0)
            .map_err(|e| EbpfError::Map("NETNS", e.to_string()))?;
    }
    Ok(())
}

#[cfg(neighsyncd_ebpf)]
static OBJECT: &[u8] = aya::include_bytes_aligned!(env!("NEIGHSYNCD_EBPF_OBJECT_PATH"));
#[cfg(not(neighsyncd_ebpf))]
static OBJECT: &[u8] = &[];

/// Tracepoints the program attaches to (see the program's comment for why these).
const TRACEPOINTS: [&str; 3] = [
    "neigh_update_done",
    "neigh_timer_handler",
    "neigh_cleanup_and_release",
];

/// Where the records of one served network namespace go.
pub struct Route {
    /// The namespace's inode number (what the program reads as `ns.inum`).
    pub netns: u32,
    pub tx: mpsc::Sender<SourceEvent>,
    /// Called when this namespace's events were lost (ring overflow): its resync.
    pub request_dump: Box<dyn Fn(ResyncCause) + Send + Sync>,
    pub metrics: Arc<Metrics>,
}

/// The program in the kernel, its maps made, not yet attached.
pub struct Loaded {
    ebpf: Program,
    offsets: neighsyncd_common::Offsets,
}

impl Loaded {
    /// Resolves the kernel's struct offsets from its BTF and loads the object.
    ///
    /// The daemon does this first thing, before its runtime, logging and tables exist: reading
    /// the kernel's BTF for the offsets takes a few megabytes for a moment (see
    /// [`loader`] for the far larger parse aya's own loader would add).
    pub fn load(cfg: &EbpfConfig) -> Result<Loaded, EbpfError> {
        if OBJECT.is_empty() {
            return Err(EbpfError::NotBuilt);
        }
        let offsets = offsets::resolve()?;
        let ebpf = Program::load(
            OBJECT,
            &[("OFFSETS", loader::bytes_of(&offsets))],
            &[("EVENTS", cfg.ring_bytes), ("DEDUP", cfg.lru_entries)],
        )?;
        crate::runtime::memory::release_free_heap();
        Ok(Loaded { ebpf, offsets })
    }
}

impl EbpfSource {
    /// Attaches the program (`preloaded`, or loaded now when `None`) and spawns the
    /// ring-buffer consumer on the current runtime. One program serves every namespace in
    /// `routes` (at least one); the canary that proves it is planted in the first, which is
    /// `canary_netns` (`None`: the process's own namespace).
    pub fn start(
        cfg: &EbpfConfig,
        preloaded: Option<Result<Loaded, EbpfError>>,
        routes: Vec<Route>,
        canary_netns: Option<Arc<Netns>>,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<Started, EbpfError> {
        if routes.is_empty() || routes.len() > neighsyncd_common::NETNS_MAX as usize {
            return Err(EbpfError::Map(
                "NETNS",
                format!(
                    "{} namespaces: one program serves 1 to {}",
                    routes.len(),
                    neighsyncd_common::NETNS_MAX
                ),
            ));
        }
        let Loaded { mut ebpf, offsets } = preloaded.unwrap_or_else(|| Loaded::load(cfg))?;
        tracing::info!(?offsets, "eBPF: kernel struct offsets from BTF");
        serve_namespaces(&mut ebpf, routes.iter().map(|r| r.netns))?;
        for tp in TRACEPOINTS {
            ebpf.attach(tp)?;
        }
        let stats = Arc::new(EbpfStats::default());
        let spawned = consumer::spawn(
            &mut ebpf,
            routes,
            canary_netns,
            stats.clone(),
            cfg.watchdog,
            shutdown,
        )?;
        Ok(Started {
            source: EbpfSource {
                _program: ebpf,
                stats,
                consumer: spawned.task.abort_handle(),
            },
            consumer: spawned.task,
            verified: spawned.verified,
        })
    }

    pub fn stats(&self) -> Arc<EbpfStats> {
        self.stats.clone()
    }

    pub fn events(&self) -> u64 {
        self.stats.events.load(Ordering::Relaxed)
    }
}
