//! Hot standby's election (`ha`): the first round before anything is read or written, then
//! a task that renews the leader's lease or, standing by, tries for it every renewal interval
//! and at once when the leader announces its release. It publishes the daemon's role; the
//! pipeline follows it (see `pipeline::standby`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::core::ha::{HaStatus, HaTiming, LeaseInfo, Role};
use crate::sonic::appdb::NEIGH_TABLE;
use crate::sonic::appdb::connect;
use crate::sonic::dbconfig::DbLayout;
use crate::sonic::lease::{Acquired, Lease, marker, raise_fence};
use crate::sonic::producer::writes_channel;
use crate::telemetry::health::Health;
use crate::telemetry::metrics::Metrics;

/// This daemon's name in the lease: host, pid, and a random part (a restarted daemon with
/// the same pid is another holder).
pub(super) fn holder_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    format!(
        "{host}:{}:{:08x}",
        std::process::id(),
        u32::from_be_bytes(b)
    )
}

/// The election's connections and what it reports to.
pub(super) struct Election {
    lease: Lease,
    timing: HaTiming,
    db: DbLayout,
    state: Option<MultiplexedConnection>,
    appl: Option<MultiplexedConnection>,
    role: watch::Sender<Role>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    /// When the last renewal that succeeded was sent (a leader's).
    renewed: Instant,
}

impl Election {
    pub(super) fn new(
        db: &DbLayout,
        timing: HaTiming,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
    ) -> (Election, watch::Receiver<Role>) {
        let lease = Lease::new(&holder_name(), timing.lease.as_millis() as u64, db.state.id);
        let (role, rx) = watch::channel(Role::Standby { leader: None });
        metrics.enable_ha();
        (
            Election {
                lease,
                timing,
                db: db.clone(),
                state: None,
                appl: None,
                role,
                metrics,
                health,
                renewed: Instant::now(),
            },
            rx,
        )
    }

    pub(super) fn role(&self) -> Role {
        self.role.borrow().clone()
    }

    /// What the management plane sees of it.
    pub(super) fn status(&self) -> Arc<dyn HaStatus> {
        Arc::new(Status {
            role: self.role.subscribe(),
            me: self.lease.holder().to_string(),
            state_url: self.db.state.url.clone(),
            conn: tokio::sync::Mutex::new(None),
        })
    }

    /// The first round: who leads? Retries until STATE_DB and APPL_DB answer (or shutdown).
    pub(super) async fn first_round(&mut self, mut shutdown: watch::Receiver<bool>) -> Role {
        info!(
            holder = self.lease.holder(),
            "hot standby: electing a leader"
        );
        let mut delay = Duration::from_millis(100);
        loop {
            if let Some(role) = self.attempt(false).await {
                return role;
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = crate::runtime::tasks::shutdown_signalled(&mut shutdown) => return self.role(),
            }
            delay = (delay * 2).min(self.timing.renew);
        }
    }

    /// One try for the lease; `None` when Redis did not answer. `takeover`: a win is a
    /// takeover (at start, it is not).
    async fn attempt(&mut self, takeover: bool) -> Option<Role> {
        let sent = Instant::now();
        let t = self.timing.call_timeout();
        let conn = ensure(&mut self.state, &self.db.state.url, t).await?;
        let got = tokio::time::timeout(t, self.lease.acquire(conn)).await;
        let role = match got {
            Ok(Ok(Acquired::Won { token, released })) => {
                // The fence first: from now on no older leader can write a key. Then the
                // mark on the writes channel, after every write an older leader published.
                if !self.raise(token).await {
                    return None;
                }
                self.mark(token).await;
                self.renewed = sent;
                let cause = match (takeover, released) {
                    (false, _) => "start",
                    (true, true) => "released",
                    (true, false) => "lease_expired",
                };
                if let (true, Some(m)) = (takeover, self.metrics.ha()) {
                    m.takeovers.with_label_values(&[cause]).inc();
                }
                info!(token, cause, "hot standby: this daemon leads");
                Role::Leader { token }
            }
            Ok(Ok(Acquired::Held { holder, .. })) => Role::Standby {
                leader: Some(holder),
            },
            Ok(Err(e)) => {
                warn!(error = %e, "hot standby: STATE_DB refused the lease call");
                self.state = None;
                return None;
            }
            Err(_) => {
                self.state = None;
                return None;
            }
        };
        self.publish(role.clone());
        Some(role)
    }

    /// Raises APPL_DB's fence to `token`; `false` when APPL_DB did not answer or holds a newer
    /// token (then the lease is released, for another to take).
    async fn raise(&mut self, token: u64) -> bool {
        let t = self.timing.call_timeout();
        let raised = match ensure(&mut self.appl, &self.db.appl.url, t).await {
            Some(conn) => tokio::time::timeout(t, raise_fence(conn, token)).await,
            None => return self.give_back(token).await,
        };
        match raised {
            Ok(Ok(true)) => true,
            Ok(Ok(false)) => {
                warn!(
                    token,
                    "hot standby: APPL_DB holds a newer token; not leading"
                );
                self.give_back(token).await
            }
            _ => {
                self.appl = None;
                self.give_back(token).await
            }
        }
    }

    /// Publishes the new leader's mark on the writes channel (see `pipeline::standby`). A mark
    /// that does not go out costs the new leader a read-back of APPL_DB.
    async fn mark(&mut self, token: u64) {
        let t = self.timing.call_timeout();
        let channel = writes_channel(NEIGH_TABLE, self.db.appl.id);
        if let Some(conn) = ensure(&mut self.appl, &self.db.appl.url, t).await {
            let mut cmd = redis::cmd("PUBLISH");
            cmd.arg(&channel).arg(marker(token));
            let publish = cmd.query_async::<i64>(conn);
            match tokio::time::timeout(t, publish).await {
                Ok(Ok(n)) => tracing::debug!(token, subscribers = n, "leader's mark published"),
                other => {
                    warn!(token, result = ?other.map(|r| r.map_err(|e| e.to_string())), "hot standby: the leader's mark did not go out");
                    self.appl = None;
                }
            }
        }
    }

    /// Releases a lease this daemon cannot lead with. Always `false` (not leading).
    async fn give_back(&mut self, token: u64) -> bool {
        let t = self.timing.call_timeout();
        if let Some(conn) = ensure(&mut self.state, &self.db.state.url, t).await {
            let _ = tokio::time::timeout(t, self.lease.release(conn, token)).await;
        }
        false
    }

    fn publish(&mut self, role: Role) {
        if let Some(m) = self.metrics.ha() {
            m.leader.set(i64::from(matches!(role, Role::Leader { .. })));
        }
        self.health.set_role(role.as_str());
        self.role.send_if_modified(|r| {
            let changed = *r != role;
            *r = role;
            changed
        });
    }

    /// A leader renews its lease: `false` when it must step down (the lease is another's, or
    /// renewals have failed for too long to be sure it is still ours).
    async fn renew(&mut self, token: u64) -> bool {
        let sent = Instant::now();
        let t = self.timing.call_timeout();
        let renewed = match ensure(&mut self.state, &self.db.state.url, t).await {
            Some(conn) => tokio::time::timeout(t, self.lease.renew(conn, token)).await,
            None => return self.renewed.elapsed() < self.timing.self_fence_after(),
        };
        match renewed {
            Ok(Ok(true)) => {
                self.renewed = sent;
                true
            }
            Ok(Ok(false)) => {
                warn!(
                    token,
                    "hot standby: the lease is another's now; stepping down"
                );
                false
            }
            _ => {
                self.state = None;
                let ok = self.renewed.elapsed() < self.timing.self_fence_after();
                if !ok {
                    warn!(
                        token,
                        since = ?self.renewed.elapsed(),
                        "hot standby: cannot renew the lease; stepping down before it can expire"
                    );
                }
                ok
            }
        }
    }

    /// Runs until `stop` (sent once the pipeline has written what it had): renews or tries,
    /// steps down when APPL_DB fenced the pipeline off, and a leader releases the lease at
    /// the end so that a standby takes over at once.
    pub(super) async fn run(
        mut self,
        mut fenced: mpsc::UnboundedReceiver<u64>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(self.timing.renew);
        // A process paused for long resumes where it was: its pipeline goes on writing (and
        // APPL_DB's fence refuses it) while the renewal waits for its next slot.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut releases = super::ha_channels::Releases::new(
            self.db.state.url.clone(),
            self.lease.channel().into(),
        );
        let mut last_tick = Instant::now();
        loop {
            tokio::select! {
                _ = crate::runtime::tasks::shutdown_signalled(&mut stop) => break,
                Some(token) = fenced.recv() => {
                    if self.role().token() == Some(token) {
                        self.publish(Role::Standby { leader: None });
                    }
                    continue;
                }
                _ = tick.tick() => {
                    // Frozen past the lease (SIGSTOP, a stalled host): whatever this daemon
                    // held is gone. It renews at its next slot, not at once: meanwhile its
                    // pipeline goes on where it was, and APPL_DB's fence refuses its writes.
                    let frozen = last_tick.elapsed();
                    last_tick = Instant::now();
                    if frozen > self.timing.lease && self.role().token().is_some() {
                        warn!(?frozen, "hot standby: this daemon was frozen past its lease");
                        continue;
                    }
                }
                _ = releases.next(), if !matches!(self.role(), Role::Leader { .. }) => {}
            }
            match self.role() {
                Role::Leader { token } => {
                    if !self.renew(token).await {
                        self.publish(Role::Standby { leader: None });
                    }
                }
                _ => {
                    self.attempt(true).await;
                }
            }
        }
        if let Role::Leader { token } = self.role() {
            let t = self.timing.call_timeout();
            let released = match ensure(&mut self.state, &self.db.state.url, t).await {
                Some(conn) => tokio::time::timeout(t, self.lease.release(conn, token)).await,
                None => return,
            };
            if matches!(released, Ok(Ok(true))) {
                info!(
                    token,
                    "hot standby: lease released for a standby to take over"
                );
            }
        }
    }
}

/// The role and the lease, for the management APIs (`neighsyncctl ha`).
struct Status {
    role: watch::Receiver<Role>,
    me: String,
    state_url: String,
    conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
}

impl HaStatus for Status {
    fn role(&self) -> Role {
        self.role.borrow().clone()
    }

    fn me(&self) -> &str {
        &self.me
    }

    fn lease(
        &self,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<LeaseInfo, String>> + Send + '_>> {
        Box::pin(async move {
            let mut slot = self.conn.lock().await;
            let t = Duration::from_secs(1);
            let conn = ensure(&mut slot, &self.state_url, t)
                .await
                .ok_or("STATE_DB does not answer")?;
            match tokio::time::timeout(t, crate::sonic::lease::read(conn)).await {
                Ok(Ok(info)) => Ok(info),
                Ok(Err(e)) => {
                    *slot = None;
                    Err(e.to_string())
                }
                Err(_) => {
                    *slot = None;
                    Err("STATE_DB does not answer".into())
                }
            }
        })
    }
}

/// The connection in `slot`, made if there is none (`None`: Redis did not answer in `t`).
async fn ensure<'a>(
    slot: &'a mut Option<MultiplexedConnection>,
    url: &str,
    t: Duration,
) -> Option<&'a mut MultiplexedConnection> {
    if slot.is_none() {
        *slot = tokio::time::timeout(t, connect(url)).await.ok()?.ok();
    }
    slot.as_mut()
}
