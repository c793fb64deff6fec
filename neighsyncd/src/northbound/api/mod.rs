//! The management plane: REST (axum) and gRPC (tonic) over the daemon's read model ([`crate::northbound::view::View`]).
//! Handlers only read the view or ask for a dump, so no client can slow the pipeline.

pub mod auth;
pub mod grpc;
pub(crate) mod openapi;
pub(crate) mod ratelimit;
pub mod rest;
pub(crate) mod role;
pub(crate) mod service;
pub(crate) mod tls;

use std::sync::Arc;

use crate::core::control::ResyncRequests;
use crate::northbound::view::View;
use crate::telemetry::metrics::MetricsSet;

/// What the API handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub view: Arc<View>,
    pub metrics: MetricsSet,
    /// Where `POST /api/v1/resync` (and gRPC `Resync`) goes.
    pub resync: Arc<dyn ResyncRequests>,
    /// The effective configuration, as served by `/api/v1/config`.
    pub config: Arc<serde_json::Value>,
    pub auth: Arc<auth::Auth>,
    /// Hot standby (`ha`): this daemon's role and the lease; `None` without it.
    pub ha: Option<Arc<dyn crate::core::ha::HaStatus>>,
}

#[cfg(test)]
impl ApiState {
    /// The handlers' state over `view`: reads open, no token, resync requests going nowhere.
    pub(crate) fn for_tests(view: Arc<View>) -> ApiState {
        struct NoSource;
        impl ResyncRequests for NoSource {
            fn request_resync(&self, _: crate::core::neigh::ResyncCause) {}
        }
        ApiState {
            view,
            metrics: MetricsSet::one(Arc::new(crate::telemetry::metrics::Metrics::new())),
            resync: Arc::new(NoSource),
            config: Arc::new(serde_json::json!({})),
            auth: Arc::new(auth::Auth::new(None, true).expect("no token file to read")),
            ha: None,
        }
    }
}
