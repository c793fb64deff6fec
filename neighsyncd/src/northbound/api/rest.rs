//! REST: `/api/v1/...` on the read model. Errors are JSON `{"code", "message"}`.
//!
//! Each handler decodes its request into a call of the service layer (`service`) and encodes
//! what comes back; authentication is a layer in front of them (`auth::require`).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::Stream;
use serde::Deserialize;
use tokio::sync::watch;

use super::ApiState;
use super::auth::{Auth, Grant};
use super::service::{Filter, Item, ServiceError};
use crate::northbound::listeners::ListenAddr;
use crate::northbound::view::Change;

/// Request bodies larger than this are refused (413).
pub(crate) const MAX_BODY: usize = 64 * 1024;
/// Requests served at once; more wait (backpressure instead of exhaustion).
pub(crate) const MAX_CONCURRENT: usize = 64;

/// An API error: HTTP status, a stable code, a message.
pub(crate) struct ApiError(StatusCode, &'static str, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.0,
            axum::Json(neighsyncd_api::ApiErrorBody {
                code: self.1.to_string(),
                message: self.2,
            }),
        )
            .into_response()
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> ApiError {
        match e {
            ServiceError::InvalidArgument(m) => bad_request(m),
            ServiceError::NotFound(m) => ApiError(StatusCode::NOT_FOUND, "not_found", m),
            ServiceError::Standby(m) => ApiError(StatusCode::CONFLICT, "standby", m),
        }
    }
}

fn bad_request(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, "invalid_argument", msg.into())
}

pub(crate) fn unauthenticated() -> ApiError {
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

/// Auth as a layer in front of the guarded routes: reads (GET, HEAD) need a read grant,
/// everything else a write grant.
async fn require(
    State(auth): State<Arc<Auth>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let needed = match *req.method() {
        axum::http::Method::GET | axum::http::Method::HEAD => Grant::Read,
        _ => Grant::Write,
    };
    let grant = auth.grant_of(
        req.headers()
            .get(axum::http::header::AUTHORIZATION)
            .map(|v| v.as_bytes()),
    );
    if grant >= needed {
        next.run(req).await
    } else {
        unauthenticated().into_response()
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
    // Reads (GET) need a read grant, the rest a write grant: one layer decides for all.
    let guarded = Router::new()
        .route("/api/v1/neighbors", get(list))
        .route("/api/v1/neighbors/{ifname}/{ip}", get(get_one))
        .route("/api/v1/stats", get(stats))
        .route("/api/v1/config", get(config))
        .route("/api/v1/resync", post(resync))
        .route("/api/v1/events", get(events))
        .route("/api/v1/ha", get(super::role::ha))
        .route_layer(axum::middleware::from_fn_with_state(
            state.auth.clone(),
            require,
        ));
    Router::new()
        .merge(guarded)
        .route("/api/v1/openapi.json", get(openapi))
        .fallback(|| async {
            ApiError(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint".into(),
            )
        })
        .layer(tower_http::limit::RequestBodyLimitLayer::new(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            super::role::role_header,
        ))
        .with_state(state)
}

/// The list's query: a filter and a page.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    interface: Option<String>,
    family: Option<String>,
    vrf: Option<String>,
    state: Option<String>,
    namespace: Option<String>,
    page_size: Option<usize>,
    page_token: Option<String>,
}

async fn list(
    State(s): State<ApiState>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(q) = q.map_err(|e| bad_request(e.body_text()))?;
    if q.page_size == Some(0) {
        return Err(bad_request(format!(
            "page_size 0: must be 1..={}",
            super::service::MAX_PAGE_SIZE
        )));
    }
    let f = Filter {
        interface: q.interface,
        family: q.family,
        vrf: q.vrf,
        state: q.state,
        namespace: q.namespace,
    };
    let page = s.list(&f, q.page_token.as_deref(), q.page_size)?;
    Ok(axum::Json(neighsyncd_api::NeighborPage {
        seq: page.seq,
        epoch: s.view.epoch().to_string(),
        neighbors: page.neighbors,
        next_page_token: page.next_page_token,
    }))
}

/// `GET /api/v1/neighbors/{ifname}/{ip}`'s query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GetQuery {
    /// Multi-ASIC, a daemon serving several: whose neighbor (unset: the first that has it).
    namespace: Option<String>,
}

async fn get_one(
    State(s): State<ApiState>,
    path: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
    q: Result<Query<GetQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    // A path axum cannot decode (invalid percent-encoding, not UTF-8) is a JSON error too.
    let Path((ifname, ip)) = path.map_err(|e| bad_request(e.body_text()))?;
    let Query(q) = q.map_err(|e| bad_request(e.body_text()))?;
    Ok(axum::Json(s.get(&ifname, &ip, q.namespace.as_deref())?))
}

async fn stats(State(s): State<ApiState>) -> impl IntoResponse {
    axum::Json(s.stats())
}

async fn config(State(s): State<ApiState>) -> impl IntoResponse {
    axum::Json(s.config().clone())
}

async fn resync(State(s): State<ApiState>) -> Result<impl IntoResponse, ApiError> {
    s.resync()?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(neighsyncd_api::ResyncReply {
            status: "resync requested".into(),
        }),
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
    namespace: Option<String>,
    /// `<epoch>:<seq>`, as the `id` of a `snapshot_end` or `change` event.
    resume_from: Option<String>,
}

fn change_event(epoch: &str, c: &Change) -> Event {
    Event::default()
        .event("change")
        .id(format!("{epoch}:{}", c.seq))
        .json_data(c)
        .unwrap_or_default()
}

fn event_of(epoch: &str, item: Item) -> Event {
    match item {
        Item::Snapshot {
            epoch,
            seq,
            neighbors,
        } => Event::default()
            .event("snapshot")
            .json_data(neighsyncd_api::SnapshotChunk {
                epoch,
                seq,
                neighbors,
            })
            .unwrap_or_default(),
        Item::SnapshotEnd { epoch, seq, count } => Event::default()
            .event("snapshot_end")
            .id(format!("{epoch}:{seq}"))
            .json_data(neighsyncd_api::SnapshotEnd { epoch, seq, count })
            .unwrap_or_default(),
        Item::Change(c) => change_event(epoch, &c),
        Item::FellBehind { missed, seq } => Event::default()
            .event("fell_behind")
            .json_data(neighsyncd_api::FellBehind { missed, seq })
            .unwrap_or_default(),
    }
}

/// `<epoch>:<seq>`; a bare number has no epoch, so it can only get a snapshot.
fn resume_point(token: &str) -> Result<(String, u64), ApiError> {
    let (epoch, seq) = token.rsplit_once(':').unwrap_or(("", token));
    let seq = seq.parse().map_err(|_| {
        bad_request(format!(
            "resume_from {token:?}: must be <epoch>:<seq>, the id of an event"
        ))
    })?;
    Ok((epoch.to_string(), seq))
}

/// Server-Sent Events: a snapshot in chunks (`snapshot` events, then `snapshot_end`), or, with
/// `resume_from=<epoch>:<seq>`, the changes since that point; then every change in order. The
/// `id` of `snapshot_end` and `change` events is a resume point. A subscriber too slow for the
/// bounded buffer gets `fell_behind` and a fresh snapshot; it never holds the pipeline up.
async fn events(
    State(s): State<ApiState>,
    q: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Query(q) = q.map_err(|e| bad_request(e.body_text()))?;
    let f = Filter {
        interface: q.interface,
        family: q.family,
        vrf: q.vrf,
        state: q.state,
        namespace: q.namespace,
    };
    let resume = q.resume_from.as_deref().map(resume_point).transpose()?;
    let sub = s.subscribe(f, resume.as_ref().map(|(e, seq)| (e.as_str(), *seq)))?;
    let epoch = s.view.epoch().to_string();
    let stream = futures::stream::unfold((sub, epoch), |(mut sub, epoch)| async move {
        let item = sub.next().await?;
        let event = event_of(&epoch, item);
        Some((Ok(event), (sub, epoch)))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// Binds now (a bad address fails the start), serves until `shutdown`; over TLS (and mutual
/// TLS) when configured.
pub async fn serve(
    addr: ListenAddr,
    state: ApiState,
    tls: Option<std::sync::Arc<tokio_rustls::rustls::ServerConfig>>,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use crate::northbound::listeners::{Bound, bind, serve_http, stopped};
    let app = router(state);
    let bound = bind(&addr).await?;
    tracing::info!(%addr, tls = tls.is_some(), "REST API listening");
    match (bound, tls) {
        (Bound::Tcp(listener), Some(config)) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            Ok(tokio::spawn(async move {
                let stop = stopped(shutdown);
                tokio::pin!(stop);
                loop {
                    let (tcp, peer) = tokio::select! {
                        _ = &mut stop => return,
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
            }))
        }
        // A unix socket is protected by its file permissions; TLS is for TCP listeners.
        (bound, _) => Ok(serve_http(bound, app, "rest", shutdown)),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::northbound::view::View;

    /// Found by the `rest_request` fuzz target: `GET /api/v1/neighbors//%ee.vte` (a path
    /// segment that is not UTF-8 once decoded) was answered by axum's plain-text rejection.
    #[tokio::test]
    async fn an_undecodable_path_gets_a_json_error() {
        let state = ApiState::for_tests(Arc::new(View::new(8)));
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

    /// Every operation the OpenAPI document describes is routed: a request to it never gets
    /// the fallback's "no such endpoint", nor 405.
    #[tokio::test]
    async fn every_documented_operation_is_routed() {
        let state = ApiState::for_tests(Arc::new(View::new(8)));
        let doc = super::super::openapi::document();
        let paths = doc["paths"].as_object().expect("paths");
        for (path, ops) in paths {
            if path.ends_with("/events") {
                continue; // a stream that does not end; routed like the others
            }
            for method in ops.as_object().expect("operations").keys() {
                let uri = path
                    .replace("{ifname}", "Ethernet0")
                    .replace("{ip}", "10.0.0.1");
                let req = Request::builder()
                    .method(method.to_uppercase().as_str())
                    .uri(&uri)
                    .body(Body::empty())
                    .expect("request");
                let resp = routes(state.clone()).oneshot(req).await.expect("response");
                let status = resp.status();
                let body = resp.into_body().collect().await.expect("body").to_bytes();
                assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
                assert!(
                    !String::from_utf8_lossy(&body).contains("no such endpoint"),
                    "{method} {uri} is not routed"
                );
            }
        }
    }
}
