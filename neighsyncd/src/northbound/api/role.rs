//! Hot standby in the management plane: every response names this daemon's role, and
//! `GET /api/v1/ha` shows the lease.

use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::ApiState;
use super::rest::ApiError;

/// The response header (and gRPC metadata) naming a hot-standby daemon's role.
pub const ROLE_HEADER: &str = "x-neighsyncd-role";

pub(super) async fn ha(State(s): State<ApiState>) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(s.ha().await?))
}

/// Hot standby: every response names this daemon's role (`x-neighsyncd-role`).
pub(super) async fn role_header(
    State(s): State<ApiState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut resp = next.run(req).await;
    if let Some(role) = s.role() {
        resp.headers_mut()
            .insert(ROLE_HEADER, axum::http::HeaderValue::from_static(role));
    }
    resp
}
