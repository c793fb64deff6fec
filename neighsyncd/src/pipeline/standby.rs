//! The pipeline under hot standby (`core::ha`).
//!
//! - A standby runs everything a leader runs but writes nothing. It follows the leader's
//!   writes on the writes channel, so its picture of APPL_DB stays current without reading it
//!   again; what is due is then exactly what the leader has not written.
//! - It takes over by writing what is due once the new leader's mark has come through the
//!   channel (every older write came before it). It reads APPL_DB back first only when its
//!   picture may have a gap: the subscription broke, it just stepped down, or no mark came.
//! - A leader that APPL_DB fences off steps down.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::{Pipeline, PipelineError};
use crate::core::control::AppDbWriter;
use crate::core::engine::Input;
use crate::core::ha::Role;
use crate::sonic::lease::Observation;

/// How long a new leader waits for its own mark on the writes channel before it reads
/// APPL_DB back instead.
const MARK_WAIT: Duration = Duration::from_secs(1);

/// The pipeline's side of the election: the role it publishes, where the pipeline says that
/// APPL_DB refused its leader's token, and the leader's writes as the writes channel carries
/// them.
pub struct HaLink {
    pub role: watch::Receiver<Role>,
    /// The token APPL_DB refused.
    pub fenced: mpsc::UnboundedSender<u64>,
    pub observed: mpsc::UnboundedReceiver<Observation>,
    /// Set by the pipeline: whether it follows the writes channel's writes now (a standby,
    /// or a new leader waiting for its mark). While it does not, the subscriber drops them
    /// undecoded: they are this daemon's own writes, a leader's whole output.
    pub following: Arc<AtomicBool>,
}

/// Where a standby's picture of APPL_DB stands: a read-back, and every write the channel
/// carried since.
#[derive(Debug, Default)]
pub(super) struct Picture {
    /// When the writes channel's subscription was last (re)made.
    pub(super) subscribed: Option<Instant>,
    /// When the read-back the picture stands on started (`None`: it stands on none).
    pub(super) read_at: Option<Instant>,
    /// Taking over: waiting for this token's mark, until then.
    pub(super) awaiting: Option<(u64, tokio::time::Instant)>,
    /// The last mark seen (it may come before the election says who leads).
    pub(super) last_mark: Option<u64>,
}

impl Picture {
    /// No gap: the subscription was made before the read-back started, so every write since
    /// that read-back was followed. A cold start's own read-back (prefetched, or the seeding
    /// one) usually is: the subscription is made first.
    pub(super) fn current(&self) -> bool {
        matches!((self.subscribed, self.read_at), (Some(s), Some(r)) if s <= r)
    }

    /// The subscription was (re)made at `since`. The first one leaves a later read-back
    /// standing: nothing was followed before it. One made again does not: writes the old
    /// subscription carried may be older than the read-back, and were applied on top of it.
    pub(super) fn subscribed_at(&mut self, since: Instant) {
        if self.subscribed.is_some() {
            self.read_at = None;
        }
        self.subscribed = Some(since);
    }

    /// What was followed no longer counts (the writes were not followed while leading): a
    /// read-back is due. The subscription stands.
    fn forget(&mut self) {
        *self = Picture {
            subscribed: self.subscribed,
            ..Picture::default()
        };
    }
}

impl<W: AppDbWriter> Pipeline<W> {
    /// Whether to write now: not as a standby, nor while a takeover waits for its mark.
    pub(super) fn writing(&self) -> bool {
        self.role.writes() && self.picture.awaiting.is_none()
    }

    /// Tells the writes channel's subscriber whether the writes are followed now: by a
    /// daemon that does not write, or does not yet. Called wherever the role or the wait for
    /// a mark changes. Writes it drops while this says no are this daemon's own; a leader
    /// that steps down reads APPL_DB back before it follows again.
    pub(super) fn publish_following(&self) {
        if let Some(ha) = &self.ha {
            ha.following.store(!self.writing(), Ordering::Release);
        }
    }

    /// The election's news: leading now, or standing by.
    pub(super) async fn role_changed(&mut self) -> Result<(), PipelineError> {
        let Some(ha) = &mut self.ha else {
            return Ok(());
        };
        let role = ha.role.borrow_and_update().clone();
        let was = std::mem::replace(&mut self.role, role.clone());
        self.appdb.set_fence(role.token());
        self.health.set_role(role.as_str());
        match (&was, &role) {
            (Role::Leader { .. }, Role::Leader { .. }) => {}
            (_, Role::Leader { token }) if self.picture.current() => {
                if self.picture.last_mark == Some(*token) {
                    info!(
                        token,
                        pending = self.engine.pending(),
                        "leading: the last leader's writes are all in; writing the rest"
                    );
                } else {
                    info!(
                        token,
                        "leading: writing what the last leader had not, once its last write is in"
                    );
                    self.picture.awaiting = Some((*token, tokio::time::Instant::now() + MARK_WAIT));
                }
            }
            (_, Role::Leader { token }) => {
                info!(
                    token,
                    "leading: reading APPL_DB back, then writing only the difference"
                );
                self.drive(Input::TakeOver).await?;
            }
            (Role::Leader { .. }, Role::Standby { leader }) => {
                warn!(leader = ?leader, "another daemon leads: standing by, writing nothing");
                // What the new leader wrote while this one still led was not followed.
                self.picture.forget();
            }
            _ => {}
        }
        self.publish_following();
        Ok(())
    }

    /// What the writes channel said.
    pub(super) async fn observed(&mut self, o: Observation) -> Result<(), PipelineError> {
        match o {
            // A standby reads APPL_DB back (at the loop's top, once connected) if need be.
            Observation::Gap { since } => self.picture.subscribed_at(since),
            // A leader knows what it wrote; its own echo arrives late and is not followed.
            Observation::Writes(w) if !self.role.writes() || self.picture.awaiting.is_some() => {
                self.drive(Input::Observed(w)).await?;
            }
            Observation::Writes(_) => {}
            Observation::Marker(token) => {
                tracing::debug!(token, "a new leader's mark on the writes channel");
                self.picture.last_mark = Some(token);
                if self.picture.awaiting.is_some_and(|(t, _)| t == token) {
                    self.picture.awaiting = None;
                    self.publish_following();
                    info!(
                        token,
                        pending = self.engine.pending(),
                        "the last leader's writes are all in; writing the rest"
                    );
                }
            }
        }
        Ok(())
    }

    /// A takeover's mark did not come in time: read APPL_DB back instead.
    pub(super) async fn mark_overdue(&mut self) -> Result<(), PipelineError> {
        if let Some((token, _)) = self.picture.awaiting.take() {
            warn!(
                token,
                "no mark on the writes channel in time: reading APPL_DB back"
            );
            self.drive(Input::TakeOver).await?;
            self.publish_following();
        }
        Ok(())
    }

    /// A standby whose picture may have a gap, connected to APPL_DB: it reads it back.
    pub(super) async fn mend_picture(&mut self) -> Result<(), PipelineError> {
        if self.ha.is_none()
            || self.role.writes()
            || self.picture.current()
            || !self.appdb.is_connected()
        {
            return Ok(());
        }
        // What the channel already holds first: at start, the subscription's own notice
        // (made before the cold start's read-back, it spares a second one). Following
        // changes no role.
        while let Some(o) = self.ha.as_mut().and_then(|h| h.observed.try_recv().ok()) {
            self.observed(o).await?;
        }
        if !self.picture.current() {
            self.resync_picture().await?;
        }
        Ok(())
    }

    /// A standby reads APPL_DB back: its picture is current from here on (the read-back
    /// records when it started).
    async fn resync_picture(&mut self) -> Result<(), PipelineError> {
        let read = self.read_back(false).await;
        self.drive(read).await
    }

    /// APPL_DB refused a write (`ops` operations): a newer leader holds the fence. This
    /// daemon stands by from now on, and tells the election.
    pub(super) fn fenced(&mut self, ops: u64, why: &dyn std::fmt::Display) {
        if let Some(m) = self.metrics.ha() {
            m.fenced_writes.inc_by(ops);
        }
        warn!(
            error = %why,
            refused = ops,
            "APPL_DB refused our write: a newer leader holds it; stepping down to standby"
        );
        let token = self.role.token();
        self.role = Role::Standby { leader: None };
        self.picture.forget();
        self.publish_following();
        self.appdb.set_fence(None);
        self.health.set_role(self.role.as_str());
        if let (Some(ha), Some(t)) = (&self.ha, token) {
            let _ = ha.fenced.send(t);
        }
    }
}

/// What hot standby has to say next.
pub(super) enum HaEvent {
    /// The election changed this daemon's role.
    Role,
    /// The writes channel said this.
    Observed(Observation),
}

/// Hot standby's next news; never, without `ha`.
pub(super) async fn next_event(ha: &mut Option<HaLink>) -> HaEvent {
    let Some(h) = ha else {
        return std::future::pending().await;
    };
    tokio::select! {
        biased;
        Ok(()) = h.role.changed() => HaEvent::Role,
        Some(o) = h.observed.recv() => HaEvent::Observed(o),
        else => std::future::pending().await,
    }
}

/// When a takeover's wait for its mark ends; never, when none waits.
pub(super) async fn mark_deadline(picture: &Picture) {
    match picture.awaiting {
        Some((_, at)) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::Picture;

    #[test]
    fn a_picture_stands_on_a_read_back_made_after_the_first_subscription_only() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut p = Picture::default();
        assert!(!p.current(), "no read-back, no subscription");
        p.read_at = Some(at(10));
        assert!(
            !p.current(),
            "a read-back alone: writes since are not followed"
        );
        p.subscribed_at(at(5));
        assert!(p.current(), "subscribed before the read-back started");
        let mut late = Picture {
            read_at: Some(at(10)),
            ..Picture::default()
        };
        late.subscribed_at(at(20));
        assert!(!late.current(), "subscribed after the read-back started");
        // A subscription made again: a read-back is due, whenever the old one was made.
        p.subscribed_at(at(8));
        assert!(!p.current());
        p.read_at = Some(at(30));
        assert!(p.current());
        // Stepping down: the subscription stands, the read-back does not.
        p.forget();
        assert_eq!((p.subscribed, p.read_at), (Some(at(8)), None));
        assert!(!p.current());
    }
}
