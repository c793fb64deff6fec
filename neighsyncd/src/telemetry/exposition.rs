//! One exposition of several registries: a process serving several SONiC namespaces keeps
//! a [`Metrics`] per namespace (each labelled with it) and serves them as one.

use std::sync::Arc;

use prometheus::TextEncoder;

use crate::telemetry::metrics::Metrics;

/// The metrics of every namespace a process serves, exposed as one: each family once, with
/// every namespace's series (which their `namespace` label tells apart).
#[derive(Clone)]
pub struct MetricsSet(Vec<Arc<Metrics>>);

impl MetricsSet {
    pub fn new(parts: Vec<Arc<Metrics>>) -> MetricsSet {
        MetricsSet(parts)
    }

    pub fn one(m: Arc<Metrics>) -> MetricsSet {
        MetricsSet(vec![m])
    }

    /// Every family, in the first registry's order, its series from every registry.
    pub fn gather(&self) -> Vec<prometheus::proto::MetricFamily> {
        let mut out: Vec<prometheus::proto::MetricFamily> = Vec::new();
        let mut at: std::collections::HashMap<String, usize> = Default::default();
        for m in &self.0 {
            for fam in m.registry.gather() {
                match at.get(fam.name()) {
                    Some(&i) => {
                        let series = fam.get_metric().to_vec();
                        out[i].mut_metric().extend(series);
                    }
                    None => {
                        at.insert(fam.name().to_string(), out.len());
                        out.push(fam);
                    }
                }
            }
        }
        out
    }

    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.gather())
            .unwrap_or_else(|e| format!("# encoding failed: {e}\n"))
    }
}
