//! The management plane never stops neighbor sync: a listener that cannot bind (the port is
//! taken, the socket directory is missing) or that fails later is logged, counted
//! (`neighsyncd_listener_failures_total`), shown in `/ready`'s checks, and retried with backoff,
//! while the neighbors keep flowing.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use crate::telemetry::health::{Health, Listener};
use crate::telemetry::metrics::Metrics;

/// Where an API listens: TCP, or a unix socket (protected by its file permissions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Tcp(a) => write!(f, "{a}"),
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Keeps one listener up until shutdown. `start` binds and spawns the server (a bind error is
/// its `Err`); the server task ends at shutdown, or early when it fails.
pub async fn keep_serving<F, Fut>(
    listener: Listener,
    addr: String,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
    mut start: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::io::Result<tokio::task::JoinHandle<()>>>,
{
    let name = listener.as_str();
    let mut delay = RETRY_MIN;
    loop {
        match start().await {
            Ok(server) => {
                health.set_listener(listener, true);
                delay = RETRY_MIN;
                let _ = server.await;
                health.set_listener(listener, false);
                if *shutdown.borrow() {
                    return;
                }
                warn!(listener = name, %addr, "listener stopped; restarting it");
            }
            Err(e) => {
                health.set_listener(listener, false);
                warn!(listener = name, %addr, error = %e, retry_in = ?delay,
                    "cannot listen; neighbor sync goes on, retrying");
            }
        }
        metrics.listener_failures.with_label_values(&[name]).inc();
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = crate::runtime::tasks::shutdown_signalled(&mut shutdown) => return,
        }
        delay = (delay * 2).min(RETRY_MAX);
        info!(listener = name, %addr, "retrying the listener");
    }
}

/// Creates the directory a unix socket lives in (`/run/neighsyncd` by default), owner-only.
pub fn socket_dir(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.exists() => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir),
        _ => Ok(()),
    }
}
