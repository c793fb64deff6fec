//! The pipeline's APPL_DB I/O: connect, write a batch, read NEIGH_TABLE back, probe. Each
//! returns what happened as the engine's next input; the engine decides what follows
//! (`core::appdb_link`).

use std::time::Instant;

use tracing::{Instrument, debug, warn};

use super::report::Reports;
use super::{Pipeline, intake};
use crate::core::appdb_link::AppDbReport;
use crate::core::control::AppDbWriter;
use crate::core::engine::{Input, Output};
use crate::core::ops::Op;
use crate::core::state::Batch;

impl<W: AppDbWriter> Pipeline<W> {
    /// A call failed: the connection is dropped (the engine orders the reconnect).
    fn drop_connection(&mut self, what: &str, e: &dyn std::fmt::Display) {
        warn!(error = %e, "{what}; will reconnect and reconcile");
        self.metrics.redis_errors.inc();
        self.appdb.disconnect();
    }

    fn unreachable(&mut self, what: &str, e: &dyn std::fmt::Display) -> Input {
        self.drop_connection(what, e);
        Input::AppDb(AppDbReport::Unreachable)
    }

    pub(super) async fn connect(&mut self) -> Input {
        match self.appdb.connect().await {
            Ok(()) => Input::AppDb(AppDbReport::Connected),
            Err(e) if W::is_fenced(&e) => {
                // Connect again at once, as a standby (no token to raise).
                self.fenced(0, &e);
                self.unreachable("APPL_DB holds a newer leader's token", &e)
            }
            Err(e) => self.unreachable("cannot connect to APPL_DB", &e),
        }
    }

    /// Writes `batch`; the kernel's events that arrive meanwhile are applied (see `intake`),
    /// and what they leave for the pipeline comes back with the answer.
    pub(super) async fn write(&mut self, batch: Batch) -> (Input, Vec<Output>) {
        let mut later = Vec::new();
        let (n_sets, n_dels) = batch.ops.iter().fold((0, 0), |(s, d), op| match op {
            Op::Set { .. } => (s + 1, d),
            Op::Del { .. } => (s, d + 1),
        });
        let n_routes = batch.route_dels.len();
        if !self.role.writes() {
            // A standby: the leader writes the same. What it would have written is noted as
            // written; taking over reads APPL_DB back and writes the difference.
            return (Input::Written(batch), later);
        }
        let started = Instant::now();
        let span = tracing::info_span!(
            "appdb_write",
            sets = n_sets,
            dels = n_dels,
            routes = n_routes
        );
        let result = {
            let reports = Reports {
                metrics: &self.metrics,
                view: self.view.as_ref(),
            };
            let write = self
                .appdb
                .write(&batch.route_dels, &batch.ops)
                .instrument(span);
            intake::while_writing(
                write,
                &mut self.events,
                &mut self.engine,
                &reports,
                &mut later,
            )
            .await
        };
        let input = match result {
            Ok(()) => {
                let rtt = started.elapsed();
                self.metrics.redis_roundtrip.observe(rtt.as_secs_f64());
                self.metrics.appdb_batches.inc();
                let m = &self.metrics.appdb_ops;
                m.with_label_values(&["NEIGH_TABLE", "set"]).inc_by(n_sets);
                m.with_label_values(&["NEIGH_TABLE", "del"]).inc_by(n_dels);
                m.with_label_values(&["ROUTE_TABLE", "del"])
                    .inc_by(n_routes as u64);
                debug!(
                    sets = n_sets,
                    dels = n_dels,
                    routes = n_routes,
                    ?rtt,
                    "APPL_DB batch written"
                );
                Input::Written(batch)
            }
            Err(e) if W::is_fenced(&e) => {
                // The newer leader owns APPL_DB and reads it back when it takes over.
                self.fenced(n_sets + n_dels + n_routes as u64, &e);
                Input::Written(batch)
            }
            Err(e) => {
                self.drop_connection("APPL_DB write failed", &e);
                Input::WriteFailed(batch)
            }
        };
        (input, later)
    }

    /// Reads APPL_DB back as what it was told. At start the read-back also seeds the desired
    /// state (see [`crate::core::state::State::replace_told`]).
    pub(super) async fn read_back(&mut self, seed: bool) -> Input {
        if seed && let Some(p) = self.prefetched.take() {
            self.health.set_redis(true);
            self.metrics.redis_connected.set(1);
            self.picture.read_at = Some(p.started);
            return Input::ReadBack {
                entries: p.entries,
                seed,
            };
        }
        let started = Instant::now();
        match self
            .appdb
            .read_neighbors()
            .instrument(tracing::info_span!("appl_db_read_back"))
            .await
        {
            Ok(entries) => {
                self.health.set_redis(true);
                self.metrics.redis_connected.set(1);
                self.metrics
                    .stage_seconds
                    .with_label_values(&["appl_db_read_back"])
                    .observe(started.elapsed().as_secs_f64());
                self.picture.read_at = Some(started);
                Input::ReadBack { entries, seed }
            }
            Err(e) => self.unreachable("cannot read APPL_DB back", &e),
        }
    }

    /// Nothing was written for a while: is APPL_DB still there?
    pub(super) async fn probe(&mut self) -> Input {
        match self.appdb.ping().await {
            Ok(()) => Input::AppDb(AppDbReport::Answered),
            Err(e) => self.unreachable("APPL_DB connection lost", &e),
        }
    }
}
