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

/// A bound listener.
pub(crate) enum Bound {
    Tcp(tokio::net::TcpListener),
    /// A unix socket is protected by its file permissions (TLS is for TCP listeners).
    Unix(tokio::net::UnixListener),
}

/// Binds now, so that a bad or taken address fails the listener's start. A unix socket's
/// directory is created, and a stale socket file replaced.
pub(crate) async fn bind(addr: &ListenAddr) -> std::io::Result<Bound> {
    match addr {
        ListenAddr::Tcp(a) => Ok(Bound::Tcp(tokio::net::TcpListener::bind(a).await?)),
        ListenAddr::Unix(p) => {
            socket_dir(p)?;
            let _ = std::fs::remove_file(p);
            Ok(Bound::Unix(tokio::net::UnixListener::bind(p)?))
        }
    }
}

/// Resolves once shutdown is signalled (or its sender is gone).
pub(crate) async fn stopped(mut shutdown: watch::Receiver<bool>) {
    crate::runtime::tasks::shutdown_signalled(&mut shutdown).await
}

/// Serves `app` (plain HTTP) on `bound` until shutdown, then finishes the requests in flight.
pub(crate) fn serve_http(
    bound: Bound,
    app: axum::Router,
    name: &'static str,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let res = match bound {
            Bound::Tcp(l) => {
                axum::serve(l, app)
                    .with_graceful_shutdown(stopped(shutdown))
                    .await
            }
            Bound::Unix(l) => {
                axum::serve(l, app)
                    .with_graceful_shutdown(stopped(shutdown))
                    .await
            }
        };
        if let Err(e) = res {
            warn!(listener = name, error = %e, "listener failed");
        }
    })
}

/// Creates the directory a unix socket lives in (`/run/neighsyncd` by default), owner-only.
fn socket_dir(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.exists() => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dir),
        _ => Ok(()),
    }
}
