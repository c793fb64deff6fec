//! The rtnetlink source: a NETLINK_ROUTE socket subscribed to link (and, unless eBPF delivers
//! neighbor events, neighbor) notifications *before* any dump, so nothing falls between the
//! dump and the subscription; and a second socket, without subscriptions, for dumps.
//!
//! Dumps have a socket of their own so that a small event buffer cannot starve a dump (the
//! kernel reports a dump that cannot get buffer space as ENOBUFS too, which on a shared socket
//! would be indistinguishable from lost events). Dump entries and live events are ordered by
//! time instead (see [`super`]). An overrun of the event socket means multicast events were
//! lost: we report it, abort the dump in flight, and dump again once the losses pause; when a
//! dump can be trusted, and when it must be redone, is [`crate::core::dump`]'s decision.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::LinkMessage;
use netlink_packet_route::neighbour::NeighbourMessage;
use netlink_packet_route::neighbour_table::NeighbourTableMessage;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::monotonic_ns;
use super::parse::{Parsed, encode, parse_datagram};
use crate::core::dump::{Attempt, Family, Outcome, Planner, Step};
use crate::core::neigh::{ResyncCause, SourceEvent};
use crate::runtime::netns::Netns;
use crate::telemetry::metrics::Metrics;

mod requests;
mod socket;
pub mod tables;

pub use requests::{DumpRequester, Request};
use socket::{DUMP_RCVBUF, NlSocket, Recv, open, recv};

const RTNLGRP_NEIGH: u32 = 3;
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
    /// The network namespace the sockets are made in (`None`: the process's own).
    pub netns: Option<Arc<Netns>>,
}

/// The requests channel's receiving end, shared so that a restarted source takes it over.
pub(crate) type Requests = Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Request>>>;

/// Opens and subscribes (failing at once if the kernel refuses), then spawns the source under
/// its supervisor (see [`super::supervisor`]). Nothing is dumped until asked: the caller first
/// settles which groups to join, then requests the `Startup` dump. The task ends `Ok` at
/// shutdown, and with an error when the source kept failing.
pub fn spawn(
    cfg: NetlinkConfig,
    tx: mpsc::Sender<SourceEvent>,
    metrics: Arc<Metrics>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<
    (
        DumpRequester,
        tokio::task::JoinHandle<Result<(), super::supervisor::SourceGaveUp>>,
    ),
    NetlinkError,
> {
    let first = Source::open(&cfg, cfg.subscribe_neigh, tx.clone(), metrics.clone())?;
    let (req_tx, req_rx) = mpsc::unbounded_channel();
    let requests = Arc::new(tokio::sync::Mutex::new(req_rx));
    let task = tokio::spawn(super::supervisor::run(
        first, cfg, requests, tx, metrics, shutdown,
    ));
    Ok((DumpRequester(req_tx), task))
}

/// Why the source loop stopped.
#[derive(Debug)]
pub(crate) enum Exit {
    /// Shutdown, or the pipeline went away.
    Done,
    /// A socket failed (or a fault was injected): the supervisor restarts the source.
    Failed(String),
}

enum Stop {
    Closed,
    Failed(String),
}

/// The pipeline went away: the source stops.
struct Closed;

impl From<Closed> for Stop {
    fn from(_: Closed) -> Stop {
        Stop::Closed
    }
}

pub(crate) struct Source {
    events: Arc<AsyncFd<NlSocket>>,
    /// Reopened when a dump in flight is aborted (the kernel then drops what it had left).
    dumps: Arc<AsyncFd<NlSocket>>,
    dump_rcvbuf: usize,
    netns: Option<Arc<Netns>>,
    tx: mpsc::Sender<SourceEvent>,
    metrics: Arc<Metrics>,
    planner: Planner,
    attempt: Option<Attempt>,
    /// The sequence number of the dump request in flight.
    seq: u32,
    next_seq: u32,
    parsed: Vec<Parsed>,
    /// Fault injection: a slow reader (see [`crate::runtime::fault`]) ...
    dump_delay: Option<Duration>,
    /// ... and a source that fails after this many live events.
    fail_after: Option<u64>,
    live_events: u64,
}

impl Source {
    /// Opens the event socket (links, and neighbors with `subscribe_neigh`) and the dump socket.
    pub(crate) fn open(
        cfg: &NetlinkConfig,
        subscribe_neigh: bool,
        tx: mpsc::Sender<SourceEvent>,
        metrics: Arc<Metrics>,
    ) -> Result<Source, NetlinkError> {
        let groups = RTMGRP_LINK | if subscribe_neigh { RTMGRP_NEIGH } else { 0 };
        let dump_rcvbuf = DUMP_RCVBUF.max(cfg.rcvbuf_bytes);
        Ok(Source {
            events: Arc::new(open(cfg.netns.as_deref(), groups, cfg.rcvbuf_bytes)?),
            dumps: Arc::new(open(cfg.netns.as_deref(), 0, dump_rcvbuf)?),
            dump_rcvbuf,
            netns: cfg.netns.clone(),
            tx,
            metrics,
            planner: Planner::default(),
            attempt: None,
            seq: 0,
            next_seq: 1,
            parsed: Vec::with_capacity(256),
            dump_delay: crate::runtime::fault::number("dump_delay_ms").map(Duration::from_millis),
            fail_after: crate::runtime::fault::number("source_exit_after"),
            live_events: 0,
        })
    }

    /// This source replaces one that failed: events were lost in between.
    pub(crate) fn after_failure(mut self) -> Source {
        self.planner.lost(Instant::now());
        self
    }

    /// Runs until shutdown, the pipeline going away, or a failure. `subscribed` remembers a
    /// join of the neighbor group across restarts.
    pub(crate) async fn run(
        mut self,
        mut requests: tokio::sync::OwnedMutexGuard<mpsc::UnboundedReceiver<Request>>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
        subscribed: Arc<std::sync::atomic::AtomicBool>,
    ) -> Exit {
        let events = self.events.clone();
        let mut buf = vec![0u8; RECV_BUF];
        let res: Result<(), Stop> = async {
            loop {
                let dumps = self.dumps.clone();
                let wake = self.planner.next_start(Instant::now());
                if self.fail_after.is_some_and(|n| self.live_events >= n) {
                    return Err(Stop::Failed(format!(
                        "fault injected after {} live events",
                        self.live_events
                    )));
                }
                tokio::select! {
                    _ = crate::runtime::tasks::shutdown_signalled(&mut shutdown) => return Err(Stop::Closed),
                    req = requests.recv() => {
                        match req {
                            None => return Err(Stop::Closed),
                            Some(Request::Dump(cause)) => {
                                debug!(cause = cause.as_str(), "dump requested");
                                self.planner.requested();
                            }
                            Some(Request::Lost(cause)) => self.lost(cause),
                            Some(Request::SubscribeNeighbors) => {
                                subscribed.store(true, std::sync::atomic::Ordering::SeqCst);
                                if let Err(e) = self.events.get_ref().0.add_membership(RTNLGRP_NEIGH) {
                                    warn!(error = %e, "cannot join the netlink neighbor group");
                                }
                            }
                        }
                    }
                    guard = events.readable() => {
                        let mut guard = guard.map_err(|e| Stop::Failed(format!("netlink event socket failed: {e}")))?;
                        // Drain to empty before clearing readiness (try_io clears it on WouldBlock).
                        loop {
                            match recv(&mut guard, &mut buf) {
                                Ok(Recv::Empty) => break,
                                Ok(Recv::Data(n)) => self.datagram(&buf, n, false).await?,
                                Ok(Recv::Overrun) => {
                                    warn!("netlink receive buffer overrun: events lost, resynchronising");
                                    self.metrics.netlink_overruns.inc();
                                    self.send(SourceEvent::Lost(ResyncCause::NetlinkOverrun)).await?;
                                    self.lost(ResyncCause::NetlinkOverrun);
                                }
                                Err(e) => return Err(Stop::Failed(format!("netlink receive failed: {e}"))),
                            }
                        }
                    }
                    guard = dumps.readable() => {
                        let mut guard = guard.map_err(|e| Stop::Failed(format!("netlink dump socket failed: {e}")))?;
                        loop {
                            match recv(&mut guard, &mut buf) {
                                Ok(Recv::Empty) => break,
                                Ok(Recv::Data(n)) => {
                                    self.datagram(&buf, n, true).await?;
                                    if let Some(d) = self.dump_delay {
                                        tokio::time::sleep(d).await;
                                    }
                                }
                                Ok(Recv::Overrun) => {
                                    warn!("netlink dump socket overrun; the dump will be redone");
                                    if let Some(a) = self.attempt.as_mut() { a.mark_partial(); }
                                }
                                Err(e) => return Err(Stop::Failed(format!("netlink dump receive failed: {e}"))),
                            }
                        }
                    }
                    _ = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now).into()), if wake.is_some() => {
                        self.start_attempt().await?;
                    }
                }
            }
        }
        .await;
        match res {
            Ok(()) | Err(Stop::Closed) => Exit::Done,
            Err(Stop::Failed(why)) => Exit::Failed(why),
        }
    }

    async fn send(&self, ev: SourceEvent) -> Result<(), Closed> {
        self.tx.send(ev).await.map_err(|_| Closed)
    }

    /// Events were lost: the dump in flight (if any) can no longer be trusted; the planner
    /// schedules a new one once losses pause.
    fn lost(&mut self, cause: ResyncCause) {
        if self.planner.lost(Instant::now()) {
            debug!(
                cause = cause.as_str(),
                "events lost during a dump: aborting it"
            );
            self.attempt = None;
            self.metrics
                .dump_attempts
                .with_label_values(&["partial"])
                .inc();
            match open(self.netns.as_deref(), 0, self.dump_rcvbuf) {
                Ok(s) => self.dumps = Arc::new(s),
                // Keep the old socket: what is left of the aborted dump carries a stale
                // sequence number and is dropped; the next request waits for it to end.
                Err(e) => warn!(error = %e, "cannot reopen the netlink dump socket"),
            }
        }
    }

    async fn datagram(
        &mut self,
        buf: &[u8],
        n: usize,
        from_dump_socket: bool,
    ) -> Result<(), Closed> {
        if n > buf.len() {
            // A datagram larger than our buffer: its tail is gone.
            self.metrics.malformed("truncated_datagram");
            if from_dump_socket {
                if let Some(a) = self.attempt.as_mut() {
                    a.mark_partial();
                }
            } else {
                self.send(SourceEvent::Lost(ResyncCause::NetlinkOverrun))
                    .await?;
                self.lost(ResyncCause::NetlinkOverrun);
            }
            return Ok(());
        }
        let dump_seq = from_dump_socket.then_some(self.seq);
        let mut parsed = std::mem::take(&mut self.parsed);
        parse_datagram(&buf[..n], dump_seq, monotonic_ns(), &mut parsed);
        let mut res = Ok(());
        if !from_dump_socket {
            self.live_events += parsed.len() as u64;
        }
        for p in parsed.drain(..) {
            res = self.handle(p).await;
            if res.is_err() {
                break;
            }
        }
        self.parsed = parsed;
        res
    }

    async fn handle(&mut self, p: Parsed) -> Result<(), Closed> {
        match p {
            Parsed::Event(ev) => self.send(ev).await?,
            Parsed::NotIp => self.metrics.not_ip.inc(),
            Parsed::Other | Parsed::Stale => {}
            Parsed::Table { family, stats } => {
                if let Some(a) = self.attempt.as_mut() {
                    a.table(family, stats);
                }
            }
            Parsed::DumpInterrupted { .. } => {
                if let Some(a) = self.attempt.as_mut() {
                    a.mark_partial();
                }
            }
            Parsed::DumpError { errno, .. } => {
                warn!(errno, "kernel dump failed; it will be redone");
                if let Some(a) = self.attempt.as_mut() {
                    a.mark_partial();
                }
                return self.finish_attempt().await;
            }
            Parsed::DumpDone { .. } => return self.finish_step().await,
        }
        Ok(())
    }

    /// The current request's dump ended: send the next one, or judge the attempt.
    async fn finish_step(&mut self) -> Result<(), Closed> {
        let Some(a) = self.attempt.as_mut() else {
            return Ok(());
        };
        match a.advance() {
            Some(step) => self.send_request(step).await,
            None => self.finish_attempt().await,
        }
    }

    async fn finish_attempt(&mut self) -> Result<(), Closed> {
        let Some(a) = self.attempt.take() else {
            return Ok(());
        };
        let verdict = a.verdict();
        self.metrics
            .dump_attempts
            .with_label_values(&[verdict.as_str()])
            .inc();
        match self.planner.attempt_done(verdict, Instant::now()) {
            Outcome::Complete => {
                info!(verdict = verdict.as_str(), "kernel dump complete");
                self.send(SourceEvent::DumpDone).await
            }
            Outcome::Retry => {
                info!(
                    verdict = verdict.as_str(),
                    "kernel dump cannot be trusted alone (the neighbor table changed under it); dumping again"
                );
                Ok(())
            }
        }
    }

    async fn start_attempt(&mut self) -> Result<(), Closed> {
        let fresh = self.planner.start();
        let ts_ns = monotonic_ns();
        self.send(SourceEvent::DumpStart { ts_ns, fresh }).await?;
        let a = Attempt::default();
        let step = a.step();
        self.attempt = Some(a);
        self.send_request(step).await
    }

    async fn send_request(&mut self, step: Step) -> Result<(), Closed> {
        self.seq = bump(&mut self.next_seq);
        let msg = match step {
            Step::Links => RouteNetlinkMessage::GetLink(LinkMessage::default()),
            Step::Tables => {
                RouteNetlinkMessage::GetNeighbourTable(NeighbourTableMessage::default())
            }
            Step::Neighbors(family) => {
                let mut n = NeighbourMessage::default();
                n.header.family = match family {
                    Family::Inet => AddressFamily::Inet,
                    Family::Inet6 => AddressFamily::Inet6,
                };
                RouteNetlinkMessage::GetNeighbour(n)
            }
        };
        let bytes = encode(msg, NLM_F_REQUEST | NLM_F_DUMP, self.seq);
        let mut delay = Duration::from_millis(10);
        // A request to the kernel only fails under memory pressure: retry, never give up on a
        // dump (the pipeline's correctness depends on its completion).
        while let Err(e) = self.dumps.get_ref().0.send(&bytes, 0) {
            warn!(error = %e, ?step, "cannot send the dump request; retrying");
            if self.tx.is_closed() {
                return Err(Closed);
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
        Ok(())
    }
}

fn bump(next_seq: &mut u32) -> u32 {
    let s = *next_seq;
    *next_seq = next_seq.wrapping_add(1).max(1);
    s
}
