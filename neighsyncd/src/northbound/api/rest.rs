//! REST: `/api/v1/...` on the read model. Errors are JSON `{"code", "message"}`.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::Stream;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{broadcast, watch};

use super::ApiState;
use crate::core::neigh::ResyncCause;
use crate::northbound::listeners::ListenAddr;
use crate::northbound::view::{Change, NeighborRecord};

pub const DEFAULT_PAGE_SIZE: usize = 100;
pub const MAX_PAGE_SIZE: usize = 1000;
/// Request bodies larger than this are refused (413).
pub const MAX_BODY: usize = 64 * 1024;
/// Requests served at once; more wait (backpressure instead of exhaustion).
pub const MAX_CONCURRENT: usize = 64;

/// An API error: HTTP status, a stable code, a message.
pub struct ApiError(StatusCode, &'static str, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.0,
            axum::Json(json!({"code": self.1, "message": self.2})),
        )
            .into_response()
    }
}

fn bad_request(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, "invalid_argument", msg.into())
}

fn unauthenticated() -> ApiError {
    ApiError(
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "a valid bearer token is required".into(),
    )
}

static LIMITER: std::sync::LazyLock<super::ratelimit::RateLimiter> =
    std::sync::LazyLock::new(|| {
        super::ratelimit::RateLimiter::new(super::ratelimit::RATE, super::ratelimit::BURST)
    });

async fn rate_limit(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if LIMITER.try_acquire() {
        next.run(req).await
    } else {
        ApiError(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests; retry later".into(),
        )
        .into_response()
    }
}

pub fn router(state: ApiState) -> Router {
    routes(state)
        .layer(axum::middleware::from_fn(rate_limit))
        .layer(tower::limit::ConcurrencyLimitLayer::new(MAX_CONCURRENT))
}

/// The routes and their body limit, without the process-wide rate and concurrency limits
/// (the fuzzer drives this directly).
pub fn routes(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/neighbors", get(list))
        .route("/api/v1/neighbors/{ifname}/{ip}", get(get_one))
        .route("/api/v1/stats", get(stats))
        .route("/api/v1/config", get(config))
        .route("/api/v1/resync", post(resync))
        .route("/api/v1/events", get(events))
        .route("/api/v1/openapi.json", get(openapi))
        .fallback(|| async {
            ApiError(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint".into(),
            )
        })
        .layer(tower_http::limit::RequestBodyLimitLayer::new(MAX_BODY))
        .with_state(state)
}

/// Filters shared by the list and the event stream.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    pub interface: Option<String>,
    pub family: Option<String>,
    pub vrf: Option<String>,
    pub state: Option<String>,
    pub page_size: Option<usize>,
    pub page_token: Option<String>,
}

const STATES: [&str; 10] = [
    "NONE",
    "INCOMPLETE",
    "REACHABLE",
    "STALE",
    "DELAY",
    "PROBE",
    "FAILED",
    "NOARP",
    "PERMANENT",
    "MIXED",
];

impl Filter {
    pub fn validate(&self) -> Result<(), ApiError> {
        if let Some(f) = &self.family
            && f != "IPv4"
            && f != "IPv6"
        {
            return Err(bad_request(format!("family {f:?}: must be IPv4 or IPv6")));
        }
        if let Some(s) = &self.state
            && !STATES.contains(&s.as_str())
        {
            return Err(bad_request(format!(
                "state {s:?}: must be one of {}",
                STATES.join(", ")
            )));
        }
        if let Some(n) = self.page_size
            && !(1..=MAX_PAGE_SIZE).contains(&n)
        {
            return Err(bad_request(format!(
                "page_size {n}: must be 1..={MAX_PAGE_SIZE}"
            )));
        }
        Ok(())
    }

    pub fn matches(&self, r: &NeighborRecord) -> bool {
        self.interface.as_ref().is_none_or(|i| *i == r.ifname)
            && self.family.as_ref().is_none_or(|f| f == r.family)
            && self.vrf.as_ref().is_none_or(|v| r.vrf.as_ref() == Some(v))
            && self
                .state
                .as_ref()
                // In eBPF mode a state is known up to its class ("REACHABLE|STALE|DELAY").
                .is_none_or(|s| r.kernel_state.is_some_and(|k| k.split('|').any(|x| x == s)))
    }
}

async fn list(
    State(s): State<ApiState>,
    headers: HeaderMap,
    q: Result<Query<Filter>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    if !s.auth.may_read(&headers) {
        return Err(unauthenticated());
    }
    let Query(f) = q.map_err(|e| bad_request(e.body_text()))?;
    f.validate()?;
    let size = f.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
    let (seq, all) = s.view.snapshot();
    // Records come sorted by key: the page token is the last key returned.
    let page: Vec<NeighborRecord> = all
        .into_iter()
        .filter(|r| f.page_token.as_ref().is_none_or(|t| r.key > *t))
        .filter(|r| f.matches(r))
        .take(size + 1)
        .collect();
    let more = page.len() > size;
    let page: Vec<NeighborRecord> = page.into_iter().take(size).collect();
    let next = if more {
        page.last().map(|r| r.key.clone())
    } else {
        None
    };
    Ok(axum::Json(
        json!({"seq": seq, "neighbors": page, "next_page_token": next}),
    ))
}

async fn get_one(
    State(s): State<ApiState>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
) -> Result<impl IntoResponse, ApiError> {
    if !s.auth.may_read(&headers) {
        return Err(unauthenticated());
    }
    // A path axum cannot decode (invalid percent-encoding, not UTF-8) is a JSON error too.
    let Path((ifname, ip)) = path.map_err(|e| bad_request(e.body_text()))?;
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| bad_request(format!("{ip:?} is not an IP address")))?;
    let key = crate::core::rules::neigh_key(&ifname, &ip);
    match s.view.get(&key) {
        Some(r) => Ok(axum::Json(r)),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no neighbor {key}"),
        )),
    }
}

/// The daemon's counters as JSON: `{metric: value}` or `{metric: {"label=value,...": value}}`.
pub fn stats_json(metrics: &crate::telemetry::metrics::Metrics) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for fam in metrics.registry.gather() {
        let name = fam
            .name()
            .strip_prefix("neighsyncd_")
            .unwrap_or(fam.name())
            .to_string();
        let mut values = serde_json::Map::new();
        for m in fam.get_metric() {
            let labels: Vec<String> = m
                .get_label()
                .iter()
                .map(|l| format!("{}={}", l.name(), l.value()))
                .collect();
            let v = match fam.get_field_type() {
                prometheus::proto::MetricType::COUNTER => json!(m.get_counter().get_value()),
                prometheus::proto::MetricType::GAUGE => json!(m.get_gauge().get_value()),
                prometheus::proto::MetricType::HISTOGRAM => {
                    let h = m.get_histogram();
                    json!({"count": h.get_sample_count(), "sum": h.get_sample_sum()})
                }
                _ => continue,
            };
            values.insert(labels.join(","), v);
        }
        let v = match values.len() {
            1 if values.contains_key("") => values.remove("").unwrap_or_default(),
            _ => serde_json::Value::Object(values),
        };
        out.insert(name, v);
    }
    serde_json::Value::Object(out)
}

async fn stats(
    State(s): State<ApiState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    if !s.auth.may_read(&headers) {
        return Err(unauthenticated());
    }
    Ok(axum::Json(stats_json(&s.metrics)))
}

async fn config(
    State(s): State<ApiState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    if !s.auth.may_read(&headers) {
        return Err(unauthenticated());
    }
    Ok(axum::Json(s.config.as_ref().clone()))
}

async fn resync(
    State(s): State<ApiState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    if !s.auth.may_write(&headers) {
        return Err(unauthenticated());
    }
    s.metrics.resync(ResyncCause::Requested);
    s.resync.request_resync(ResyncCause::Requested);
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({"status": "resync requested"})),
    ))
}

async fn openapi() -> impl IntoResponse {
    axum::Json(super::openapi::document())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    interface: Option<String>,
    family: Option<String>,
    vrf: Option<String>,
    state: Option<String>,
    resume_from: Option<u64>,
}

fn snapshot_event(seq: u64, records: Vec<NeighborRecord>, f: &Filter) -> Event {
    let records: Vec<NeighborRecord> = records.into_iter().filter(|r| f.matches(r)).collect();
    Event::default()
        .event("snapshot")
        .id(seq.to_string())
        .json_data(json!({"seq": seq, "neighbors": records}))
        .unwrap_or_default()
}

fn change_event(c: &Change) -> Event {
    Event::default()
        .event("change")
        .id(c.seq.to_string())
        .json_data(c)
        .unwrap_or_default()
}

/// Server-Sent Events: a snapshot (or, with `resume_from`, the changes since that sequence),
/// then every change in order. A subscriber too slow for the bounded buffer gets
/// `fell_behind` and a fresh snapshot; it never holds the pipeline up.
async fn events(
    State(s): State<ApiState>,
    headers: HeaderMap,
    q: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    if !s.auth.may_read(&headers) {
        return Err(unauthenticated());
    }
    let Query(q) = q.map_err(|e| bad_request(e.body_text()))?;
    let f = Filter {
        interface: q.interface,
        family: q.family,
        vrf: q.vrf,
        state: q.state,
        ..Default::default()
    };
    f.validate()?;
    let view = s.view.clone();
    let mut first: Vec<Event> = Vec::new();
    let rx = match q.resume_from.and_then(|seq| view.resume(seq)) {
        Some((missed, rx)) => {
            first.extend(
                missed
                    .iter()
                    .filter(|c| f.matches(&c.record))
                    .map(|c| change_event(c)),
            );
            rx
        }
        None => {
            let (seq, records, rx) = view.subscribe();
            first.push(snapshot_event(seq, records, &f));
            rx
        }
    };
    let f = Arc::new(f);
    let stream = futures::stream::unfold(
        (first.into_iter(), rx, view, f),
        |(mut pending, mut rx, view, f)| async move {
            loop {
                if let Some(ev) = pending.next() {
                    return Some((Ok(ev), (pending, rx, view, f)));
                }
                match rx.recv().await {
                    Ok(c) if f.matches(&c.record) => {
                        return Some((Ok(change_event(&c)), (pending, rx, view, f)));
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        let (seq, records, new_rx) = view.subscribe();
                        let behind = Event::default()
                            .event("fell_behind")
                            .json_data(json!({"missed": n, "seq": seq}))
                            .unwrap_or_default();
                        let snap = snapshot_event(seq, records, &f);
                        pending = vec![behind, snap].into_iter();
                        rx = new_rx;
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// Binds now (a bad address fails the start), serves until `shutdown`; over TLS (and mutual
/// TLS) when configured.
pub async fn serve(
    addr: ListenAddr,
    state: ApiState,
    tls: Option<std::sync::Arc<tokio_rustls::rustls::ServerConfig>>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let app = router(state);
    let addr = match addr {
        ListenAddr::Tcp(a) => a,
        ListenAddr::Unix(path) => {
            // A unix socket is protected by its file permissions; TLS is for TCP listeners.
            crate::northbound::listeners::socket_dir(&path)?;
            let _ = std::fs::remove_file(&path);
            let listener = tokio::net::UnixListener::bind(&path)?;
            tracing::info!(path = %path.display(), "REST API listening");
            return Ok(tokio::spawn(async move {
                let res = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = shutdown.changed().await;
                    })
                    .await;
                if let Err(e) = res {
                    tracing::warn!(error = %e, "REST listener failed");
                }
            }));
        }
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, tls = tls.is_some(), "REST API listening");
    if let Some(config) = tls {
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        return Ok(tokio::spawn(async move {
            loop {
                let (tcp, peer) = tokio::select! {
                    _ = shutdown.changed() => return,
                    r = listener.accept() => match r {
                        Ok(c) => c,
                        Err(e) => { tracing::warn!(error = %e, "REST accept failed"); continue; }
                    },
                };
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    let tls = match acceptor.accept(tcp).await {
                        Ok(t) => t,
                        Err(e) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake refused");
                            return;
                        }
                    };
                    let svc = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
                });
            }
        }));
    }
    Ok(tokio::spawn(async move {
        let res = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = shutdown.changed().await;
            })
            .await;
        if let Err(e) = res {
            tracing::warn!(error = %e, "REST listener failed");
        }
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::core::control::ResyncRequests;
    use crate::core::neigh::ResyncCause;
    use crate::northbound::view::View;

    struct NoSource;

    impl ResyncRequests for NoSource {
        fn request_resync(&self, _: ResyncCause) {}
    }

    /// Found by the `rest_request` fuzz target: `GET /api/v1/neighbors//%ee.vte` (a path
    /// segment that is not UTF-8 once decoded) was answered by axum's plain-text rejection.
    #[tokio::test]
    async fn an_undecodable_path_gets_a_json_error() {
        let state = ApiState {
            view: Arc::new(View::new(8)),
            metrics: Arc::new(crate::telemetry::metrics::Metrics::new()),
            resync: Arc::new(NoSource),
            config: Arc::new(serde_json::json!({})),
            auth: Arc::new(crate::northbound::api::auth::Auth::new(None, true).expect("auth")),
        };
        for uri in [
            "/api/v1/neighbors//%ee.vte",
            "/api/v1/neighbors/Ethernet0/%ff",
        ] {
            let req = Request::builder()
                .uri(uri)
                .body(Body::empty())
                .expect("request");
            let resp = routes(state.clone()).oneshot(req).await.expect("response");
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{uri}");
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            let v: serde_json::Value = serde_json::from_slice(&body)
                .unwrap_or_else(|e| panic!("{uri}: not JSON ({e}): {body:?}"));
            assert_eq!(v["code"], "invalid_argument", "{uri}: {v}");
        }
    }
}
