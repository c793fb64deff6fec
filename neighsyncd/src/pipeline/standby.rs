//! The pipeline under hot standby (`core::ha`): a standby runs everything a leader runs but
//! writes nothing (the leader writes the same); it takes over by reading APPL_DB back and
//! writing the difference; a leader that APPL_DB fences off steps down.

use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::{Pipeline, PipelineError};
use crate::core::control::AppDbWriter;
use crate::core::engine::Input;
use crate::core::ha::Role;

/// The pipeline's side of the election: the role it publishes, and where the pipeline says
/// that APPL_DB refused its leader's token.
pub struct HaLink {
    pub role: watch::Receiver<Role>,
    /// The token APPL_DB refused.
    pub fenced: mpsc::UnboundedSender<u64>,
}

impl<W: AppDbWriter> Pipeline<W> {
    /// The election's news: leading now (read APPL_DB back, write the difference), or
    /// standing by (write nothing more).
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
            (_, Role::Leader { token }) => {
                info!(
                    token,
                    "leading: reading APPL_DB back, then writing only the difference"
                );
                self.drive(Input::TakeOver).await?;
            }
            (Role::Leader { .. }, Role::Standby { leader }) => {
                warn!(leader = ?leader, "another daemon leads: standing by, writing nothing");
            }
            _ => {}
        }
        Ok(())
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
        self.appdb.set_fence(None);
        self.health.set_role(self.role.as_str());
        if let (Some(ha), Some(t)) = (&self.ha, token) {
            let _ = ha.fenced.send(t);
        }
    }
}

/// The election's next news; never, without `ha`.
pub(super) async fn role_change(ha: &mut Option<HaLink>) {
    match ha {
        Some(h) => {
            if h.role.changed().await.is_err() {
                std::future::pending::<()>().await
            }
        }
        None => std::future::pending().await,
    }
}
