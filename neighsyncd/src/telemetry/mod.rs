//! What every part of the daemon reports: Prometheus `metrics` and `health` (readiness checks).
//! Written by all rooms, served by the northbound; `exposition` serves several namespaces'
//! metrics as one.

pub mod exposition;
pub mod ha_metrics;
pub mod health;
pub mod metrics;
