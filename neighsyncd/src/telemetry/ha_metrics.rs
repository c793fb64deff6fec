//! Hot standby's metrics (`ha`): whether this daemon leads, its takeovers, and the writes
//! APPL_DB refused it. Registered only with `ha`, so that a single daemon exports none (and
//! the no-leader alert has nothing to fire on).

use prometheus::{IntCounter, IntCounterVec, IntGauge, Registry};

use super::metrics::{Metrics, counter, counter_vec, gauge};

/// Why a standby took over.
pub const TAKEOVER_CAUSES: [&str; 2] = ["lease_expired", "released"];

pub struct HaMetrics {
    /// 1 while this daemon holds the lease.
    pub leader: IntGauge,
    /// Takeovers, by cause (`lease_expired`: the leader stopped renewing; `released`: it
    /// handed over).
    pub takeovers: IntCounterVec,
    /// Operations APPL_DB refused because a newer leader held the fence.
    pub fenced_writes: IntCounter,
}

impl HaMetrics {
    fn register(r: &Registry) -> HaMetrics {
        let m = HaMetrics {
            leader: gauge(
                r,
                "ha_leader",
                "1 while this daemon leads (holds the lease).",
            ),
            takeovers: counter_vec(
                r,
                "ha_takeovers_total",
                "Times this daemon took the lead from another, by cause.",
                &["cause"],
            ),
            fenced_writes: counter(
                r,
                "ha_fenced_writes_total",
                "APPL_DB operations refused because a newer leader held the fence.",
            ),
        };
        for c in TAKEOVER_CAUSES {
            m.takeovers.with_label_values(&[c]);
        }
        m
    }
}

impl Metrics {
    /// Registers hot standby's metrics (once).
    pub fn enable_ha(&self) -> &HaMetrics {
        self.ha.get_or_init(|| HaMetrics::register(&self.registry))
    }

    /// Hot standby's metrics, when `ha` is on.
    pub fn ha(&self) -> Option<&HaMetrics> {
        self.ha.get()
    }
}
