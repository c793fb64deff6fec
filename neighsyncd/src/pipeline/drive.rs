//! Carrying out what the engine says: every output of an input, then the outputs of the
//! inputs that carrying them out produces (a write's answer, a read-back, ...), until none is
//! left. A kernel event, most of a burst, has a short way: its counts, notes and view updates
//! are carried out at once, with no queue made.

use std::collections::VecDeque;

use tracing::info;

use super::intake::take_in;
use super::report::Reports;
use super::{Pipeline, PipelineError};
use crate::core::appdb_link::AppDbOrder;
use crate::core::control::AppDbWriter;
use crate::core::engine::{Input, Output};
use crate::core::neigh::SourceEvent;
use crate::southbound::monotonic_ns;

impl<W: AppDbWriter> Pipeline<W> {
    /// Hands `input` to the engine and carries out what it says, feeding back the inputs
    /// that carrying it out produces (a write's result, a read-back, ...) until none is left.
    pub(super) async fn drive(&mut self, input: Input) -> Result<(), PipelineError> {
        let outputs = VecDeque::from(self.engine.handle(monotonic_ns(), input));
        self.drive_outputs(outputs).await
    }

    /// A kernel event, most of a burst: its counts, notes and view updates are carried out at
    /// once, in a reused buffer; anything else goes the way of every input's outputs.
    pub(super) async fn kernel_event(&mut self, ev: SourceEvent) -> Result<(), PipelineError> {
        let reports = Reports {
            metrics: &self.metrics,
            view: self.view.as_ref(),
        };
        let mut rest = VecDeque::new();
        take_in(&mut self.engine, &reports, ev, &mut self.outputs, &mut rest);
        if rest.is_empty() {
            return Ok(());
        }
        self.drive_outputs(rest).await
    }

    /// Carries out `outputs`, then the outputs of the inputs that carrying them out produces.
    async fn drive_outputs(&mut self, mut outputs: VecDeque<Output>) -> Result<(), PipelineError> {
        let mut queue = VecDeque::new();
        loop {
            while let Some(o) = outputs.pop_front() {
                match o {
                    Output::Write(batch) => {
                        // Events taken in meanwhile leave what they could not carry out.
                        let (result, later) = self.write(batch).await;
                        queue.push_back(result);
                        outputs.extend(later);
                    }
                    Output::AppDb(AppDbOrder::ReadBack { seed }) => {
                        let result = self.read_back(seed).await;
                        queue.push_back(result);
                    }
                    Output::AppDb(AppDbOrder::Probe) => {
                        let result = self.probe().await;
                        queue.push_back(result);
                    }
                    Output::AppDb(AppDbOrder::Reconnect { after }) => {
                        self.health.set_redis(false);
                        self.metrics.redis_connected.set(0);
                        self.retry_at = Some(tokio::time::Instant::now() + after);
                    }
                    Output::Reconciled => self.finish_warm().await?,
                    Output::Source(order) => {
                        if let Some(next) = self.carry_out_source(order)? {
                            queue.push_back(next);
                        }
                    }
                    Output::Dump(cause) => self.sources.request_resync(cause),
                    o @ (Output::Count(_)
                    | Output::Note(_)
                    | Output::Kernel { .. }
                    | Output::KernelGone(_)) => {
                        self.reports().carry_out(o);
                    }
                    Output::Synced { neighbors, links } => {
                        self.health.set_source_synced(true);
                        info!(neighbors, links, "initial kernel dump applied");
                    }
                    Output::Landed {
                        key,
                        value,
                        since_ns,
                    } => self.landed(key, value, since_ns),
                    Output::Followed { key, value } => self.followed(key, value),
                    Output::ApplReloaded => self.appl_reloaded(),
                    Output::Gauges => self.publish_gauges(),
                }
            }
            let Some(input) = queue.pop_front() else {
                return Ok(());
            };
            outputs = VecDeque::from(self.engine.handle(monotonic_ns(), input));
        }
    }
}
