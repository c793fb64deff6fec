//! Keeps the rtnetlink source running. The source loop runs in a task of its own, so a panic is
//! contained; when it fails, it is reopened and restarted (its events were lost meanwhile, so a
//! verified dump follows), counted in `neighsyncd_source_failures_total`. A source that keeps
//! failing (more than [`BUDGET`] restarts within [`BUDGET_WINDOW`]) is given up on: the daemon
//! then stops with an error, and its service manager restarts it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use super::netlink::{Exit, NetlinkConfig, Requests, Source};
use crate::core::neigh::{ResyncCause, SourceEvent};
use crate::telemetry::metrics::Metrics;

pub const BUDGET: usize = 5;
pub const BUDGET_WINDOW: Duration = Duration::from_secs(60);
const RETRY: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
#[error("the rtnetlink source failed {BUDGET} times within {BUDGET_WINDOW:?}; last: {0}")]
pub struct SourceGaveUp(pub String);

/// Restarts within the window, oldest first.
#[derive(Debug, Default)]
pub struct Budget(VecDeque<Instant>);

impl Budget {
    /// Whether one more restart at `now` is within the budget (and records it if so).
    pub fn allow(&mut self, now: Instant) -> bool {
        while self
            .0
            .front()
            .is_some_and(|t| now.duration_since(*t) >= BUDGET_WINDOW)
        {
            self.0.pop_front();
        }
        if self.0.len() >= BUDGET {
            return false;
        }
        self.0.push_back(now);
        true
    }
}

pub(crate) async fn run(
    first: Source,
    cfg: NetlinkConfig,
    requests: Requests,
    tx: mpsc::Sender<SourceEvent>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), SourceGaveUp> {
    let subscribed = Arc::new(AtomicBool::new(cfg.subscribe_neigh));
    let mut budget = Budget::default();
    let mut next = Some(first);
    loop {
        let source = match next.take() {
            Some(s) => s,
            None => match Source::open(
                &cfg,
                subscribed.load(Ordering::SeqCst),
                tx.clone(),
                metrics.clone(),
            ) {
                Ok(s) => s.after_failure(),
                Err(e) => {
                    warn!(error = %e, "cannot reopen the rtnetlink source; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY) => continue,
                        _ = crate::runtime::tasks::shutdown_signalled(&mut shutdown) => return Ok(()),
                    }
                }
            },
        };
        let guard = requests.clone().lock_owned().await;
        let task = tokio::spawn(source.run(guard, shutdown.clone(), subscribed.clone()));
        let why = match task.await {
            Ok(Exit::Done) => return Ok(()),
            Ok(Exit::Failed(why)) => why,
            Err(e) if e.is_panic() => format!("panicked: {}", panic_text(e.into_panic())),
            Err(_) => return Ok(()),
        };
        if *shutdown.borrow() {
            return Ok(());
        }
        if !budget.allow(Instant::now()) {
            metrics
                .source_failures
                .with_label_values(&["netlink", "exited"])
                .inc();
            error!(reason = %why, "the rtnetlink source keeps failing; giving up");
            return Err(SourceGaveUp(why));
        }
        metrics
            .source_failures
            .with_label_values(&["netlink", "restarted"])
            .inc();
        error!(reason = %why, "the rtnetlink source failed; restarting it and resynchronising");
        if tx
            .send(SourceEvent::Lost(ResyncCause::SourceRestart))
            .await
            .is_err()
        {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(RETRY) => {}
            _ = crate::runtime::tasks::shutdown_signalled(&mut shutdown) => return Ok(()),
        }
        info!("reopening the rtnetlink source");
    }
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    match p.downcast::<String>() {
        Ok(s) => *s,
        Err(p) => p
            .downcast::<&'static str>()
            .map(|s| s.to_string())
            .unwrap_or_else(|_| "(no message)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_allows_a_few_restarts_a_minute() {
        let t0 = Instant::now();
        let mut b = Budget::default();
        for i in 0..BUDGET as u64 {
            assert!(b.allow(t0 + Duration::from_secs(i)));
        }
        assert!(!b.allow(t0 + Duration::from_secs(10)), "one too many");
        // A minute after the first restart, there is room again.
        assert!(b.allow(t0 + BUDGET_WINDOW + Duration::from_secs(1)));
    }
}
