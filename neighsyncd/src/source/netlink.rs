//! The rtnetlink source: one NETLINK_ROUTE socket, subscribed to link (and, unless eBPF
//! delivers neighbor events, neighbor) notifications *before* dumping, so nothing falls between
//! the dump and the subscription.
//!
//! Dumps run on the same socket as the subscription, so the kernel queues dump entries and live
//! events in the order it produced them. An overrun (ENOBUFS) means multicast events were lost:
//! we report it and dump again. A dump that overlaps an overrun, or that the kernel flags
//! inconsistent, is redone before it is declared done.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::LinkMessage;
use netlink_packet_route::neighbour::NeighbourMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::parse::{Parsed, encode, parse_datagram};
use super::{ResyncCause, SourceEvent, monotonic_ns};
use crate::metrics::Metrics;

const RTMGRP_LINK: u32 = 0x1;
const RTMGRP_NEIGH: u32 = 0x4;
const RECV_BUF: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("cannot open the rtnetlink socket: {0}")]
    Open(io::Error),
    #[error("cannot subscribe to rtnetlink groups: {0}")]
    Bind(io::Error),
    #[error("cannot register the rtnetlink socket with the runtime: {0}")]
    Register(io::Error),
}

#[derive(Debug, Clone)]
pub struct NetlinkConfig {
    /// Socket receive buffer (SO_RCVBUFFORCE where allowed, else SO_RCVBUF).
    pub rcvbuf_bytes: usize,
    /// Subscribe to neighbor notifications (off when the eBPF source delivers them).
    pub subscribe_neigh: bool,
}

/// Asks the source for a dump (coalesced: requests during a dump make it run once more).
#[derive(Debug, Clone)]
pub struct DumpRequester(mpsc::UnboundedSender<ResyncCause>);

impl DumpRequester {
    /// A requester and the receiving end, for driving a pipeline without a netlink source
    /// (tests that feed it messages the kernel here cannot produce).
    pub fn channel() -> (DumpRequester, mpsc::UnboundedReceiver<ResyncCause>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (DumpRequester(tx), rx)
    }

    pub fn request(&self, cause: ResyncCause) {
        // The source task only goes away at shutdown; a request then has nothing left to do.
        let _ = self.0.send(cause);
    }
}

struct NlSocket(Socket);

impl AsRawFd for NlSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// Opens, subscribes and spawns the source task. The first dump (cause `Startup`) starts at once.
pub fn spawn(
    cfg: NetlinkConfig,
    tx: mpsc::Sender<SourceEvent>,
    metrics: Arc<Metrics>,
) -> Result<(DumpRequester, tokio::task::JoinHandle<()>), NetlinkError> {
    let mut socket = Socket::new(NETLINK_ROUTE).map_err(NetlinkError::Open)?;
    let groups = RTMGRP_LINK | if cfg.subscribe_neigh { RTMGRP_NEIGH } else { 0 };
    socket
        .bind(&SocketAddr::new(0, groups))
        .map_err(NetlinkError::Bind)?;
    set_rcvbuf(socket.as_raw_fd(), cfg.rcvbuf_bytes);
    socket.set_non_blocking(true).map_err(NetlinkError::Open)?;
    // SAFETY: the fd is owned by `socket`, which the AsyncFd owns for its whole life.
    let fd = unsafe { AsyncFd::register_with_interest(NlSocket(socket), Interest::READABLE) }
        .map_err(|e| NetlinkError::Register(e.into_parts().1))?;
    let (req_tx, req_rx) = mpsc::unbounded_channel();
    req_tx
        .send(ResyncCause::Startup)
        .map_err(|_| NetlinkError::Register(io::Error::other("request channel closed")))?;
    let task = tokio::spawn(run(fd, tx, req_rx, metrics));
    Ok((DumpRequester(req_tx), task))
}

fn set_rcvbuf(fd: RawFd, bytes: usize) {
    let val = bytes.min(i32::MAX as usize) as libc::c_int;
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    for (opt, name) in [
        (libc::SO_RCVBUFFORCE, "SO_RCVBUFFORCE"),
        (libc::SO_RCVBUF, "SO_RCVBUF"),
    ] {
        // SAFETY: `val` lives across the call and `len` is its size.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&val as *const libc::c_int).cast(),
                len,
            )
        };
        if rc == 0 {
            debug!(bytes, option = name, "netlink receive buffer set");
            return;
        }
    }
    warn!(
        bytes,
        "could not set the netlink receive buffer; using the system default"
    );
}

/// Where the dump in flight is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Links,
    Inet,
    Inet6,
}

struct Dump {
    phase: Phase,
    seq: u32,
    /// An overrun or a request arrived during this dump: run it again before declaring it done.
    redo: bool,
}

async fn run(
    fd: AsyncFd<NlSocket>,
    tx: mpsc::Sender<SourceEvent>,
    mut requests: mpsc::UnboundedReceiver<ResyncCause>,
    metrics: Arc<Metrics>,
) {
    let mut buf = vec![0u8; RECV_BUF];
    let mut parsed = Vec::with_capacity(256);
    let mut dump: Option<Dump> = None;
    let mut next_seq: u32 = 1;
    loop {
        tokio::select! {
            req = requests.recv() => {
                let Some(cause) = req else { return };
                debug!(cause = cause.as_str(), "dump requested");
                match dump.as_mut() {
                    Some(d) => d.redo = true,
                    None => {
                        if start_dump(&fd, &tx, &mut dump, &mut next_seq).await.is_err() {
                            return;
                        }
                    }
                }
            }
            guard = fd.readable() => {
                let mut guard = match guard {
                    Ok(g) => g,
                    Err(e) => {
                        warn!(error = %e, "netlink socket failed; source stops");
                        return;
                    }
                };
                // Drain to empty before clearing readiness.
                loop {
                    let res = guard.try_io(|inner| {
                        // SAFETY: buf is a valid writable buffer of buf.len() bytes.
                        let n = unsafe {
                            libc::recv(inner.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_TRUNC)
                        };
                        if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
                    });
                    let n = match res {
                        Err(_would_block) => break,
                        Ok(Ok(n)) => n,
                        Ok(Err(e)) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                            warn!("netlink receive buffer overrun: events lost, resynchronising");
                            metrics.netlink_overruns.inc();
                            if tx.send(SourceEvent::Lost(ResyncCause::NetlinkOverrun)).await.is_err() {
                                return;
                            }
                            match dump.as_mut() {
                                Some(d) => d.redo = true,
                                None => {
                                    if start_dump(&fd, &tx, &mut dump, &mut next_seq).await.is_err() {
                                        return;
                                    }
                                }
                            }
                            continue;
                        }
                        Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Ok(Err(e)) => {
                            warn!(error = %e, "netlink receive failed; source stops");
                            return;
                        }
                    };
                    if n > buf.len() {
                        // A datagram larger than our buffer: its tail is gone. Treat as a loss.
                        metrics.malformed("truncated_datagram");
                        if let Some(d) = dump.as_mut() { d.redo = true; }
                        else if start_dump(&fd, &tx, &mut dump, &mut next_seq).await.is_err() { return; }
                        continue;
                    }
                    parsed.clear();
                    parse_datagram(&buf[..n], dump.as_ref().map(|d| d.seq), monotonic_ns(), &mut parsed);
                    for p in parsed.drain(..) {
                        if handle(p, &fd, &tx, &mut dump, &mut next_seq, &metrics).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    }
}

struct Closed;

async fn handle(
    p: Parsed,
    fd: &AsyncFd<NlSocket>,
    tx: &mpsc::Sender<SourceEvent>,
    dump: &mut Option<Dump>,
    next_seq: &mut u32,
    metrics: &Metrics,
) -> Result<(), Closed> {
    match p {
        Parsed::Event(ev) => tx.send(ev).await.map_err(|_| Closed)?,
        Parsed::NotIp => metrics.not_ip.inc(),
        Parsed::Other => {}
        Parsed::DumpInterrupted { .. } => {
            if let Some(d) = dump.as_mut() {
                d.redo = true;
            }
        }
        Parsed::DumpError { errno, .. } => {
            warn!(errno, "neighbor dump failed; retrying");
            if let Some(d) = dump.as_mut() {
                d.redo = true;
                d.phase = Phase::Inet6; // treat as finished; the redo starts over
            }
            return finish_phase(fd, tx, dump, next_seq).await;
        }
        Parsed::DumpDone { .. } => return finish_phase(fd, tx, dump, next_seq).await,
    }
    Ok(())
}

async fn finish_phase(
    fd: &AsyncFd<NlSocket>,
    tx: &mpsc::Sender<SourceEvent>,
    dump: &mut Option<Dump>,
    next_seq: &mut u32,
) -> Result<(), Closed> {
    let Some(d) = dump.as_mut() else {
        return Ok(());
    };
    let next = match d.phase {
        Phase::Links => Some(Phase::Inet),
        Phase::Inet => Some(Phase::Inet6),
        Phase::Inet6 => None,
    };
    match next {
        Some(phase) => {
            d.phase = phase;
            d.seq = bump(next_seq);
            send_request(fd, phase, d.seq);
        }
        None if d.redo => {
            *dump = None;
            return start_dump(fd, tx, dump, next_seq).await;
        }
        None => {
            *dump = None;
            info!("kernel dump complete");
            tx.send(SourceEvent::DumpDone).await.map_err(|_| Closed)?;
        }
    }
    Ok(())
}

fn bump(next_seq: &mut u32) -> u32 {
    let s = *next_seq;
    *next_seq = next_seq.wrapping_add(1).max(1);
    s
}

async fn start_dump(
    fd: &AsyncFd<NlSocket>,
    tx: &mpsc::Sender<SourceEvent>,
    dump: &mut Option<Dump>,
    next_seq: &mut u32,
) -> Result<(), Closed> {
    let ts_ns = monotonic_ns();
    tx.send(SourceEvent::DumpStart { ts_ns })
        .await
        .map_err(|_| Closed)?;
    let seq = bump(next_seq);
    send_request(fd, Phase::Links, seq);
    *dump = Some(Dump {
        phase: Phase::Links,
        seq,
        redo: false,
    });
    Ok(())
}

fn send_request(fd: &AsyncFd<NlSocket>, phase: Phase, seq: u32) {
    let msg = match phase {
        Phase::Links => RouteNetlinkMessage::GetLink(LinkMessage::default()),
        Phase::Inet | Phase::Inet6 => {
            let mut n = NeighbourMessage::default();
            n.header.family = if phase == Phase::Inet {
                AddressFamily::Inet
            } else {
                AddressFamily::Inet6
            };
            RouteNetlinkMessage::GetNeighbour(n)
        }
    };
    let bytes = encode(msg, NLM_F_REQUEST | NLM_F_DUMP, seq);
    // Requests are tiny; a netlink send to the kernel does not block for lack of buffer.
    if let Err(e) = fd.get_ref().0.send(&bytes, 0) {
        warn!(error = %e, ?phase, "cannot send the dump request");
    }
}
