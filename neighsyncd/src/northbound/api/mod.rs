//! The management plane: REST (axum) and gRPC (tonic) over the daemon's read model ([`crate::northbound::view::View`]).
//! Handlers only read the view or ask for a dump, so no client can slow the pipeline.

pub mod auth;
pub mod grpc;
pub(crate) mod openapi;
pub(crate) mod ratelimit;
pub mod rest;
pub(crate) mod service;
pub(crate) mod tls;

use std::sync::Arc;

use crate::core::control::ResyncRequests;
use crate::northbound::view::View;
use crate::telemetry::metrics::Metrics;

/// What the API handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub view: Arc<View>,
    pub metrics: Arc<Metrics>,
    /// Where `POST /api/v1/resync` (and gRPC `Resync`) goes.
    pub resync: Arc<dyn ResyncRequests>,
    /// The effective configuration, as served by `/api/v1/config`.
    pub config: Arc<serde_json::Value>,
    pub auth: Arc<auth::Auth>,
}
