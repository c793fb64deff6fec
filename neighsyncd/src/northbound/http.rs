//! The operations listener: `/metrics` (Prometheus), `/health` (liveness), `/ready` (readiness).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;
use tokio::sync::watch;

use crate::telemetry::health::{Health, rfc3339};
use crate::telemetry::metrics::MetricsSet;

#[derive(Clone)]
struct Ops {
    metrics: MetricsSet,
    health: Arc<Health>,
}

/// `profiler`: serve `/debug/pprof/profile` (for the API token's holder).
pub(crate) fn router(
    metrics: MetricsSet,
    health: Arc<Health>,
    profiler: Option<super::profile::Profiler>,
) -> Router {
    let ops = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/health", get(health_handler))
        .route("/ready", get(ready_handler))
        .with_state(Ops { metrics, health });
    match profiler {
        Some(p) => ops.merge(
            Router::new()
                .route("/debug/pprof/profile", get(super::profile::profile))
                .with_state(p),
        ),
        None => ops,
    }
}

async fn metrics_handler(State(s): State<Ops>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

async fn health_handler(State(s): State<Ops>) -> impl IntoResponse {
    axum::Json(json!({"status": "ok", "started": rfc3339(s.health.started())}))
}

async fn ready_handler(State(s): State<Ops>) -> impl IntoResponse {
    let (ok, checks) = s.health.readiness();
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.name.clone())
        .collect();
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = neighsyncd_api::Ready {
        ready: ok,
        failed,
        role: s.health.role().map(String::from),
        checks: checks
            .into_iter()
            .map(|c| neighsyncd_api::Check {
                name: c.name,
                ok: c.ok,
                critical: c.critical,
                since: c.since,
            })
            .collect(),
    };
    (code, axum::Json(body))
}

/// Binds (the error is the caller's to report and retry), then serves until `shutdown`.
pub(crate) async fn serve(
    addr: SocketAddr,
    metrics: MetricsSet,
    health: Arc<Health>,
    profiler: Option<super::profile::Profiler>,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let bound = super::listeners::bind(&super::listeners::ListenAddr::Tcp(addr)).await?;
    tracing::info!(%addr, "metrics and health listening");
    Ok(super::listeners::serve_http(
        bound,
        router(metrics, health, profiler),
        "metrics",
        shutdown,
    ))
}
