//! The management plane: REST (axum) and gRPC (tonic) over the daemon's read model ([`crate::view::View`]).
//! Handlers only read the view or ask for a dump, so no client can slow the pipeline.

pub mod auth;
pub mod grpc;
pub mod openapi;
pub mod ratelimit;
pub mod rest;
pub mod tls;

use std::sync::Arc;

use crate::metrics::Metrics;
use crate::source::netlink::DumpRequester;
use crate::view::View;

/// What the API handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub view: Arc<View>,
    pub metrics: Arc<Metrics>,
    pub dumps: DumpRequester,
    /// The effective configuration, as served by `/api/v1/config`.
    pub config: Arc<serde_json::Value>,
    pub auth: Arc<auth::Auth>,
}
