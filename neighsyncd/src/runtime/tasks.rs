//! Every task of a running daemon, named, and joined on shutdown: the shutdown signal goes out
//! on one watch channel; each task ends on it (or is ended with it); [`Tasks::join`] waits for
//! all of them and says which did not finish.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::warn;

/// Resolves once shutdown has been signalled (at once if it already was).
pub async fn shutdown_signalled(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`: drop it here, not in a caller's `select!`.
    let _ = shutdown.wait_for(|s| *s).await;
}

pub struct Tasks {
    shutdown: watch::Receiver<bool>,
    handles: Vec<(&'static str, JoinHandle<()>)>,
}

impl Tasks {
    pub fn new(shutdown: watch::Receiver<bool>) -> Tasks {
        Tasks {
            shutdown,
            handles: Vec::new(),
        }
    }

    /// A task that ends on shutdown by itself.
    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        self.handles.push((name, tokio::spawn(task)));
    }

    /// A task that would run forever (a watch loop): it is ended at shutdown.
    pub fn spawn_until_shutdown(
        &mut self,
        name: &'static str,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        let mut shutdown = self.shutdown.clone();
        self.spawn(name, async move {
            tokio::select! {
                _ = task => {}
                _ = shutdown_signalled(&mut shutdown) => {}
            }
        });
    }

    /// Waits for every task, at most `timeout` in all; a task that panicked or did not finish
    /// is named in the log (and aborted).
    pub async fn join(self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        for (name, mut handle) in self.handles {
            match tokio::time::timeout_at(deadline, &mut handle).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) if e.is_panic() => warn!(task = name, "task panicked"),
                Ok(Err(_)) => {}
                Err(_) => {
                    warn!(task = name, "task did not stop in time; aborting it");
                    handle.abort();
                }
            }
        }
    }
}
