//! The pipeline's side of a warm restart: APPL_DB's staging cleared and read back, nothing
//! written until the restore flag is set and the reconcile timer fires, then `reconciled`.

use tracing::{info, warn};

use super::{Pipeline, PipelineError, WarmPhase, WarmPlan};
use crate::core::appdb_link::{AppDbOrder, AppDbReport};
use crate::core::control::AppDbWriter;
use crate::core::engine::{Input, Output};
use crate::sonic::warm::{WarmDb, WarmError, WarmState};
use crate::southbound::monotonic_ns;

use std::time::Duration;
use tokio::sync::watch;

impl<W: AppDbWriter> Pipeline<W> {
    pub(super) async fn start_warm(
        &mut self,
        mut plan: WarmPlan,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), PipelineError> {
        self.health.set_warm_restart_done(false);
        self.drive(Input::WarmStart).await?;
        // Nothing can be restored without APPL_DB: keep trying, at the engine's backoff.
        while !self.appdb.is_connected() {
            if let Err(e) = self.appdb.connect().await {
                warn!(error = %e, "warm start: cannot connect to APPL_DB; retrying");
                let after = self
                    .engine
                    .handle(monotonic_ns(), Input::AppDb(AppDbReport::Unreachable))
                    .into_iter()
                    .find_map(|o| match o {
                        Output::AppDb(AppDbOrder::Reconnect { after }) => Some(after),
                        _ => None,
                    })
                    .unwrap_or(crate::core::appdb_link::BACKOFF_MAX);
                tokio::select! {
                    _ = tokio::time::sleep(after) => {}
                    _ = shutdown.changed() => return Ok(()),
                }
            }
        }
        if let Err(e) = self.appdb.clear_staging().await {
            warn!(error = %e, "warm start: cannot clear NEIGH_TABLE staging state");
        }
        let read = self.read_back(true).await;
        self.drive(read).await?;
        info!("Restored appDB table to NEIGH_TABLE internal cache map");
        plan.db.set_state(WarmState::Restored).await?;
        let timeout = plan.restore_timeout;
        let mut db = plan.db;
        self.warm = Some(WarmPhase::Restoring(tokio::spawn(async move {
            db.wait_restore(timeout).await?;
            let timer = db.reconcile_timer().await?;
            Ok((db, timer))
        })));
        Ok(())
    }

    /// The engine says the reconcile is complete: `reconciled`.
    pub(super) async fn finish_warm(&mut self) -> Result<(), PipelineError> {
        if let Some(WarmPhase::Reconciling(mut db)) = self.warm.take() {
            db.set_state(WarmState::Reconciled).await?;
            self.health.set_warm_restart_done(true);
        }
        Ok(())
    }
}

/// The restore-flag wait's result.
pub(super) async fn restore_wait(
    warm: &mut Option<WarmPhase>,
) -> Result<(WarmDb, Duration), WarmError> {
    match warm {
        Some(WarmPhase::Restoring(handle)) => match handle.await {
            Ok(res) => res,
            Err(e) => Err(WarmError::Redis(redis::RedisError::from(
                std::io::Error::other(format!("restore wait task failed: {e}")),
            ))),
        },
        _ => std::future::pending().await,
    }
}
