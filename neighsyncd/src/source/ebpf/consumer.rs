//! The ring-buffer consumer: `AsyncFd` readiness, drained to empty before readiness is
//! cleared; records -> [`SourceEvent`]s; the kernel's drop counter checked after every drain
//! and on a timer, any increase answered with a resync.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aya::Ebpf;
use aya::maps::{MapData, PerCpuArray, RingBuf};
use neighsyncd_common::{KIND_REMOVE, NeighEvent};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use tracing::warn;

use super::{EbpfError, EbpfStats};
use crate::metrics::Metrics;
use crate::source::{NeighKind, NeighMsg, Origin, ResyncCause, SourceEvent};

/// A ring record -> a neighbor message; `None` for a record that is not one.
pub fn to_neigh_msg(bytes: &[u8]) -> Option<NeighMsg> {
    if bytes.len() < std::mem::size_of::<NeighEvent>() {
        return None;
    }
    // SAFETY: the length was checked; NeighEvent is plain data valid for any bits; the read is
    // unaligned-safe.
    let ev: NeighEvent = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
    let ip = match ev.family {
        2 => IpAddr::V4(Ipv4Addr::new(
            ev.addr[0], ev.addr[1], ev.addr[2], ev.addr[3],
        )),
        10 => IpAddr::V6(Ipv6Addr::from(ev.addr)),
        _ => return None,
    };
    let len = usize::from(ev.lladdr_len).min(ev.lladdr.len());
    Some(NeighMsg {
        kind: if ev.kind == KIND_REMOVE {
            NeighKind::Del
        } else {
            NeighKind::New
        },
        ifindex: ev.ifindex,
        ip,
        lladdr: (len > 0).then(|| ev.lladdr[..len].to_vec()),
        state: u16::from(ev.state),
        flags: ev.flags & 0xff,
        origin: Origin::Live { ts_ns: ev.ts_ns },
    })
}

/// Why the consumer stopped, when it was not asked to.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("the eBPF ring buffer failed: {0}")]
    Ring(std::io::Error),
    #[error("fault injected after {0} events")]
    Injected(u64),
}

pub fn spawn(
    ebpf: &mut Ebpf,
    tx: mpsc::Sender<SourceEvent>,
    request_dump: Box<dyn Fn(ResyncCause) + Send + Sync>,
    stats: Arc<EbpfStats>,
    metrics: Arc<Metrics>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<Result<(), ConsumerError>>, EbpfError> {
    let ring_map = ebpf
        .take_map("EVENTS")
        .ok_or_else(|| EbpfError::Map("EVENTS", "missing".into()))?;
    let ring = RingBuf::try_from(ring_map).map_err(|e| EbpfError::Map("EVENTS", e.to_string()))?;
    let drops_map = ebpf
        .take_map("DROPS")
        .ok_or_else(|| EbpfError::Map("DROPS", "missing".into()))?;
    let drops: PerCpuArray<MapData, u64> =
        PerCpuArray::try_from(drops_map).map_err(|e| EbpfError::Map("DROPS", e.to_string()))?;
    // SAFETY: the ring's fd is owned by `ring`, which the AsyncFd owns for its whole life.
    let fd = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
        .map_err(|e| EbpfError::Map("EVENTS", e.into_parts().1.to_string()))?;
    Ok(tokio::spawn(run(
        fd,
        drops,
        tx,
        request_dump,
        stats,
        metrics,
        shutdown,
    )))
}

fn drain(ring: &mut RingBuf<MapData>, batch: &mut Vec<SourceEvent>) {
    while let Some(item) = ring.next() {
        batch.push(match to_neigh_msg(&item) {
            Some(m) => SourceEvent::Neigh(m),
            None => SourceEvent::Malformed("bad_ringbuf_record"),
        });
    }
}

fn drop_total(drops: &PerCpuArray<MapData, u64>) -> u64 {
    drops.get(&0, 0).map(|v| v.iter().sum()).unwrap_or(0)
}

/// Runs until shutdown or the pipeline going away (`Ok`), or a failure.
async fn run(
    mut fd: AsyncFd<RingBuf<aya::maps::MapData>>,
    drops: PerCpuArray<MapData, u64>,
    tx: mpsc::Sender<SourceEvent>,
    request_dump: Box<dyn Fn(ResyncCause) + Send + Sync>,
    stats: Arc<EbpfStats>,
    metrics: Arc<Metrics>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), ConsumerError> {
    let mut seen_drops = drop_total(&drops);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let fail_after = crate::fault::number("ebpf_consumer_exit_after");
    let mut consumed = 0u64;
    loop {
        if let Some(n) = fail_after.filter(|n| consumed >= *n) {
            return Err(ConsumerError::Injected(n));
        }
        let mut batch = Vec::new();
        tokio::select! {
            _ = crate::tasks::shutdown_signalled(&mut shutdown) => return Ok(()),
            guard = fd.readable_mut() => {
                let mut guard = guard.map_err(ConsumerError::Ring)?;
                drain(guard.get_inner_mut(), &mut batch);
                guard.clear_ready();
                // A record submitted between the last read and clear_ready() would wait for
                // the next wakeup: read once more after clearing.
                drain(fd.get_mut(), &mut batch);
            }
            // The timer drains too, so nothing waits longer than a tick.
            _ = tick.tick() => drain(fd.get_mut(), &mut batch),
        }
        consumed += batch.len() as u64;
        stats
            .events
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        metrics.ebpf_events.inc_by(batch.len() as u64);
        for ev in batch {
            if tx.send(ev).await.is_err() {
                return Ok(());
            }
        }
        let total = drop_total(&drops);
        if total > seen_drops {
            let lost = total - seen_drops;
            seen_drops = total;
            stats.drops.fetch_add(lost, Ordering::Relaxed);
            metrics.ringbuf_drops.inc_by(lost);
            warn!(
                lost,
                "eBPF ring buffer overflowed: events lost, resynchronising"
            );
            if tx
                .send(SourceEvent::Lost(ResyncCause::RingbufOverflow))
                .await
                .is_err()
            {
                return Ok(());
            }
            request_dump(ResyncCause::RingbufOverflow);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_convert_and_garbage_is_refused() {
        let mut ev = NeighEvent {
            ts_ns: 7,
            netns: 1,
            ifindex: 3,
            flags: 0x10,
            family: 2,
            kind: 0,
            state: 0x02,
            lladdr_len: 6,
            addr: [0; 16],
            lladdr: [0; 32],
        };
        ev.addr[..4].copy_from_slice(&[10, 0, 0, 2]);
        ev.lladdr[..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        // SAFETY: viewing a plain-data struct as bytes.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                (&ev as *const NeighEvent).cast::<u8>(),
                std::mem::size_of::<NeighEvent>(),
            )
        };
        let m = to_neigh_msg(bytes).unwrap();
        assert_eq!(m.ip, "10.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(m.lladdr.as_deref(), Some(&[2, 0, 0, 0, 0, 1][..]));
        assert_eq!(m.kind, NeighKind::New);
        assert_eq!(m.origin, Origin::Live { ts_ns: 7 });
        assert!(to_neigh_msg(&bytes[..10]).is_none());
        ev.family = 7;
        // SAFETY: as above.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                (&ev as *const NeighEvent).cast::<u8>(),
                std::mem::size_of::<NeighEvent>(),
            )
        };
        assert!(to_neigh_msg(bytes).is_none());
    }
}
