//! The ring-buffer consumer: `AsyncFd` readiness, drained to empty before readiness is
//! cleared; records -> [`SourceEvent`]s; the kernel's drop counter checked after every drain
//! and on a timer, any increase answered with a resync.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use aya::maps::{Map, MapData, PerCpuArray};
use neighsyncd_common::{KIND_REMOVE, NeighEvent, RECORD_VERSION};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::canary::{self, Canary, CanaryError};
use super::{EbpfError, EbpfStats, Route};

mod pace;
mod ring;
mod routes;
use crate::core::key::LinkAddr;
use crate::core::neigh::{NeighKind, NeighMsg, Origin, ResyncCause, SourceEvent};
use crate::runtime::netns::Netns;
use ring::Ring;
#[cfg(test)]
use routes::record_netns;
use routes::{Uncertain, route_of};

/// See `Consumer::serve`: the drop counter is read at least this often while events flow ...
const DROPS_EVERY: Duration = Duration::from_millis(10);
/// ... and after any drain at least this large.
const LARGE_DRAIN: usize = 256;

/// What a ring record is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Neigh(NeighMsg),
    /// The entry's link-layer address never read consistently: ask the kernel.
    Uncertain(NeighMsg),
    /// Not a record of this build's format (`reason` is a stable label).
    Bad(&'static str),
}

/// A ring record -> what it says. Never panics: a short record, another version, an unknown
/// family, are [`Record::Bad`].
pub fn decode(bytes: &[u8]) -> Record {
    if bytes.len() < std::mem::size_of::<NeighEvent>() {
        return Record::Bad("bad_ringbuf_record");
    }
    // SAFETY: the length was checked; NeighEvent is plain data valid for any bits; the read is
    // unaligned-safe.
    let ev: NeighEvent = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
    if ev.version != RECORD_VERSION {
        return Record::Bad("ringbuf_record_version");
    }
    let ip = match ev.family {
        2 => IpAddr::V4(Ipv4Addr::new(
            ev.addr[0], ev.addr[1], ev.addr[2], ev.addr[3],
        )),
        10 => IpAddr::V6(Ipv6Addr::from(ev.addr)),
        _ => return Record::Bad("bad_ringbuf_record"),
    };
    let len = usize::from(ev.lladdr_len).min(ev.lladdr.len());
    let msg = NeighMsg {
        kind: if ev.kind == KIND_REMOVE {
            NeighKind::Del
        } else {
            NeighKind::New
        },
        ifindex: ev.ifindex,
        ip,
        lladdr: LinkAddr::new((len > 0).then(|| &ev.lladdr[..len])),
        state: u16::from(ev.state),
        flags: ev.flags & 0xff,
        origin: Origin::Live { ts_ns: ev.ts_ns },
    };
    if ev.uncertain != 0 {
        Record::Uncertain(msg)
    } else {
        Record::Neigh(msg)
    }
}

/// A ring record -> a neighbor message; `None` for a record that is not one (or not usable).
pub fn to_neigh_msg(bytes: &[u8]) -> Option<NeighMsg> {
    match decode(bytes) {
        Record::Neigh(m) => Some(m),
        Record::Uncertain(_) | Record::Bad(_) => None,
    }
}

/// Why the consumer stopped, when it was not asked to.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("the eBPF ring buffer failed: {0}")]
    Ring(std::io::Error),
    #[error("fault injected after {0} events")]
    Injected(u64),
    #[error("cannot plant the canary neighbor: {0}")]
    Canary(#[from] CanaryError),
    #[error("the program's record of the canary neighbor disagrees with the kernel: {0}")]
    Disagrees(String),
    #[error(
        "the program reported nothing for the canary neighbor within {0:?} (wrong struct offsets, or detached)"
    )]
    Silent(Duration),
}

/// The start-up verdict on the program: `Ok` once it reported the canary exactly.
pub type Verified = oneshot::Receiver<Result<(), String>>;

pub struct Spawned {
    pub task: tokio::task::JoinHandle<Result<(), ConsumerError>>,
    pub verified: Verified,
}

pub fn spawn(
    ebpf: &mut super::loader::Program,
    routes: Vec<Route>,
    canary_netns: Option<Arc<Netns>>,
    stats: Arc<EbpfStats>,
    watchdog: Duration,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<Spawned, EbpfError> {
    let ring_map = ebpf
        .take_map("EVENTS")
        .ok_or_else(|| EbpfError::Map("EVENTS", "missing".into()))?;
    let Map::RingBuf(ring_map) = ring_map else {
        return Err(EbpfError::Map("EVENTS", "not a ring buffer".into()));
    };
    let ring = Ring::new(ring_map).map_err(|e| EbpfError::Map("EVENTS", e.to_string()))?;
    let drops_map = ebpf
        .take_map("DROPS")
        .ok_or_else(|| EbpfError::Map("DROPS", "missing".into()))?;
    let drops: PerCpuArray<MapData, u64> =
        PerCpuArray::try_from(drops_map).map_err(|e| EbpfError::Map("DROPS", e.to_string()))?;
    // SAFETY: the ring's fd is owned by `ring`, which the AsyncFd owns for its whole life.
    let fd = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
        .map_err(|e| EbpfError::Map("EVENTS", e.into_parts().1.to_string()))?;
    let (verified_tx, verified) = oneshot::channel();
    let consumer = Consumer {
        drops,
        routes,
        canary_netns,
        stats,
        watchdog,
        verified: Some(verified_tx),
        held: Some(Vec::new()),
        probe: None,
        canary: None,
        last_record: Instant::now(),
    };
    Ok(Spawned {
        task: tokio::spawn(consumer.run(fd, shutdown)),
        verified,
    })
}

/// Reads every record there is, each with the index of its route. Returns the routes that
/// had uncertain records (a resync answers them), as a bit per route index below 64 and one
/// for every route beyond.
fn drain(ring: &mut Ring, routes: &[Route], batch: &mut Vec<(usize, SourceEvent)>) -> Uncertain {
    let mut uncertain = Uncertain::default();
    ring.read(|item| {
        let route = route_of(routes, item);
        match decode(item) {
            Record::Neigh(m) => batch.push((route, SourceEvent::Neigh(m))),
            Record::Uncertain(_) => uncertain.add(route),
            Record::Bad(reason) => batch.push((route, SourceEvent::Malformed(reason))),
        }
    });
    uncertain
}

fn drop_total(drops: &PerCpuArray<MapData, u64>) -> u64 {
    drops.get(&0, 0).map(|v| v.iter().sum()).unwrap_or(0)
}

/// A canary check in flight: the kernel's answer, and until when the program may take.
struct Probe {
    kernel: NeighMsg,
    deadline: Instant,
}

struct Consumer {
    drops: PerCpuArray<MapData, u64>,
    /// Where each served namespace's records go; the canary is the first's.
    routes: Vec<Route>,
    canary_netns: Option<Arc<Netns>>,
    stats: Arc<EbpfStats>,
    /// Silence this long makes the consumer plant the canary again.
    watchdog: Duration,
    /// The start-up verdict, until it is given.
    verified: Option<oneshot::Sender<Result<(), String>>>,
    /// Records read before the program was proven: forwarded once it is, dropped if not (a
    /// program that reads the wrong offsets must not write a single key).
    held: Option<Vec<(usize, SourceEvent)>>,
    probe: Option<Probe>,
    canary: Option<Canary>,
    last_record: Instant,
}

impl Consumer {
    /// Runs until shutdown or the pipeline going away (`Ok`), or a failure.
    async fn run(
        mut self,
        mut fd: AsyncFd<Ring>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), ConsumerError> {
        let res = self.serve(&mut fd, &mut shutdown).await;
        if let Some(c) = self.canary.as_mut() {
            c.remove();
        }
        if let (Err(e), Some(v)) = (&res, self.verified.take()) {
            let _ = v.send(Err(e.to_string()));
        }
        res
    }

    async fn serve(
        &mut self,
        fd: &mut AsyncFd<Ring>,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), ConsumerError> {
        let mut seen_drops = drop_total(&self.drops);
        // Reading the kernel's drop counter is a syscall: not after every wake-up (in a burst
        // there is one per few events), but at least every DROPS_EVERY, after a large drain
        // (the ring under pressure) and on every tick. A loss is answered as surely, a few
        // milliseconds later at most.
        let mut drops_read = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let fail_after = crate::runtime::fault::number("ebpf_consumer_exit_after");
        let stall_after =
            crate::runtime::fault::number("ebpf_stall_after_secs").map(Duration::from_secs);
        let started = Instant::now();
        let mut consumed = 0u64;
        let mut pace = pace::Pace::new(started);
        self.plant()?;
        loop {
            if let Some(n) = fail_after.filter(|n| consumed >= *n) {
                return Err(ConsumerError::Injected(n));
            }
            let stalled = stall_after.is_some_and(|d| started.elapsed() >= d);
            let mut batch = Vec::new();
            let mut uncertain = Uncertain::default();
            let mut ticked = false;
            tokio::select! {
                _ = crate::runtime::tasks::shutdown_signalled(shutdown) => return Ok(()),
                guard = fd.readable_mut(), if !stalled => {
                    let mut guard = guard.map_err(ConsumerError::Ring)?;
                    uncertain.merge(drain(guard.get_inner_mut(), &self.routes, &mut batch));
                    guard.clear_ready();
                    // A record submitted between the last read and clear_ready() would wait for
                    // the next wakeup: read once more after clearing.
                    uncertain.merge(drain(fd.get_mut(), &self.routes, &mut batch));
                }
                // The timer drains too, so nothing waits longer than a tick.
                _ = tick.tick() => {
                    ticked = true;
                    if !stalled {
                        uncertain.merge(drain(fd.get_mut(), &self.routes, &mut batch));
                    }
                }
            }
            // Records the reader had to skip are lost like the kernel's drops, and answered
            // the same way.
            let skipped = fd.get_mut().take_skipped();
            let read_drops = skipped > 0
                || ticked
                || batch.len() >= LARGE_DRAIN
                || drops_read.elapsed() >= DROPS_EVERY;
            if !batch.is_empty() || uncertain.count > 0 {
                self.last_record = Instant::now();
            }
            consumed += batch.len() as u64;
            let pause = pace.after_drain(batch.len(), Instant::now());
            self.stats
                .events
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            for (route, _) in &batch {
                if let Some(r) = self.routes.get(*route) {
                    r.metrics.ebpf_events.inc();
                }
            }
            self.check_canary(&batch)?;
            if self.forward(batch).await.is_err() {
                return Ok(());
            }
            if read_drops {
                drops_read = Instant::now();
                let total = drop_total(&self.drops);
                let lost = total.saturating_sub(seen_drops) + skipped;
                seen_drops = total;
                if lost > 0 {
                    self.stats.drops.fetch_add(lost, Ordering::Relaxed);
                    // Whose events were lost is unknown: every namespace counts the drops of
                    // the ring they share, and resynchronises.
                    for r in &self.routes {
                        r.metrics.ringbuf_drops.inc_by(lost);
                    }
                    warn!(
                        lost,
                        "eBPF ring buffer overflowed: events lost, resynchronising"
                    );
                    if self
                        .lost(|_| true, ResyncCause::RingbufOverflow)
                        .await
                        .is_err()
                    {
                        return Ok(());
                    }
                }
            }
            if uncertain.count > 0 {
                warn!(
                    uncertain = uncertain.count,
                    "a neighbor's link-layer address kept changing while read; resynchronising"
                );
                if self
                    .lost(|route| uncertain.has(route), ResyncCause::UncertainRead)
                    .await
                    .is_err()
                {
                    return Ok(());
                }
            }
            self.watch()?;
            if let Some(pause) = pause {
                tokio::time::sleep(pause).await;
            }
        }
    }

    /// Events of the routes `which` accepts were lost: each is told, and resynchronises.
    async fn lost(&self, which: impl Fn(usize) -> bool, cause: ResyncCause) -> Result<(), ()> {
        for (_, r) in self.routes.iter().enumerate().filter(|(i, _)| which(*i)) {
            r.tx.send(SourceEvent::Lost(cause)).await.map_err(|_| ())?;
            (r.request_dump)(cause);
        }
        Ok(())
    }

    /// Plants the canary; the program must report it before [`canary::DEADLINE`].
    fn plant(&mut self) -> Result<(), ConsumerError> {
        let canary = match self.canary.as_mut() {
            Some(c) => c,
            None => self
                .canary
                .insert(Canary::open(self.canary_netns.as_deref())?),
        };
        let kernel = canary.plant()?;
        self.probe = Some(Probe {
            kernel,
            deadline: Instant::now() + canary::DEADLINE,
        });
        Ok(())
    }

    /// The program's record of the canary, against the kernel's answer.
    fn check_canary(&mut self, batch: &[(usize, SourceEvent)]) -> Result<(), ConsumerError> {
        let (Some(probe), Some(canary)) = (&self.probe, self.canary.as_mut()) else {
            return Ok(());
        };
        // The canary is planted in the first route's namespace.
        let Some(record) = batch.iter().find_map(|ev| match ev {
            (0, SourceEvent::Neigh(m)) if canary.is_canary(m) && m.kind == NeighKind::New => {
                Some(m)
            }
            _ => None,
        }) else {
            return Ok(());
        };
        if let Some(diff) = canary::disagreement(&probe.kernel, record) {
            return Err(ConsumerError::Disagrees(diff));
        }
        canary.remove();
        self.probe = None;
        if let Some(v) = self.verified.take() {
            info!(
                "eBPF program verified: its record of the canary neighbor matches the kernel's, field by field"
            );
            let _ = v.send(Ok(()));
        }
        Ok(())
    }

    /// Forwards what was read; holds it while the program is not yet proven.
    async fn forward(&mut self, batch: Vec<(usize, SourceEvent)>) -> Result<(), ()> {
        let events = match self.held.take() {
            Some(mut held) => {
                held.extend(batch);
                if self.verified.is_some() {
                    self.held = Some(held);
                    return Ok(());
                }
                held
            }
            None => batch,
        };
        for (route, ev) in events {
            if let Some(r) = self.routes.get(route) {
                r.tx.send(ev).await.map_err(|_| ())?;
            }
        }
        Ok(())
    }

    /// The silence watchdog: a probe overdue is a failure; long silence earns a probe.
    fn watch(&mut self) -> Result<(), ConsumerError> {
        match &self.probe {
            Some(p) if Instant::now() >= p.deadline => Err(ConsumerError::Silent(canary::DEADLINE)),
            Some(_) => Ok(()),
            None if self.last_record.elapsed() >= self.watchdog => {
                info!(silent_for = ?self.last_record.elapsed(), "eBPF source silent; checking it with the canary neighbor");
                self.last_record = Instant::now();
                self.plant()
            }
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
