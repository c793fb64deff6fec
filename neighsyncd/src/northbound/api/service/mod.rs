//! The API's one service layer: what REST and gRPC both serve, decided once. The adapters
//! (`rest`, `grpc`) only decode requests into these calls and encode what comes back.
//!
//! - a filter, validated the same way for both;
//! - a page by key range, built under the view's read lock in O(page);
//! - stats, config, resync;
//! - a subscription: a snapshot (or the changes since a resume point), then every change in
//!   order, and a fresh snapshot after falling behind.

use std::net::IpAddr;

use serde::Deserialize;

use super::ApiState;
use crate::core::key::{IfName, NeighKey};
use crate::core::neigh::ResyncCause;
use crate::northbound::view::NeighborRecord;

pub(crate) const DEFAULT_PAGE_SIZE: usize = 100;
pub(crate) const MAX_PAGE_SIZE: usize = 1000;

/// Why a call was refused; each adapter maps it to its own status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ServiceError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    /// A mutating call to a hot standby: only the leader acts.
    #[error("{0}")]
    Standby(String),
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

/// Which neighbors a list or a subscription wants. Empty fields match everything.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Filter {
    pub interface: Option<String>,
    pub family: Option<String>,
    pub vrf: Option<String>,
    pub state: Option<String>,
    /// Multi-ASIC: the SONiC namespace (a daemon serves one; another matches nothing).
    pub namespace: Option<String>,
}

impl Filter {
    pub(crate) fn validate(&self) -> Result<(), ServiceError> {
        if let Some(f) = &self.family
            && f != "IPv4"
            && f != "IPv6"
        {
            return Err(ServiceError::InvalidArgument(format!(
                "family {f:?}: must be IPv4 or IPv6"
            )));
        }
        if let Some(s) = &self.state
            && !STATES.contains(&s.as_str())
        {
            return Err(ServiceError::InvalidArgument(format!(
                "state {s:?}: must be one of {}",
                STATES.join(", ")
            )));
        }
        Ok(())
    }

    pub(crate) fn matches(&self, r: &NeighborRecord) -> bool {
        self.interface.as_ref().is_none_or(|i| *i == r.ifname)
            && self
                .namespace
                .as_ref()
                .is_none_or(|n| r.namespace.as_ref() == Some(n))
            && self.family.as_ref().is_none_or(|f| *f == r.family)
            && self.vrf.as_ref().is_none_or(|v| r.vrf.as_ref() == Some(v))
            && self
                .state
                .as_ref()
                // In eBPF mode a state is known up to its class ("REACHABLE|STALE|DELAY").
                .is_none_or(|s| {
                    r.kernel_state
                        .as_deref()
                        .is_some_and(|k| k.split('|').any(|x| x == s))
                })
    }
}

/// One page of a list.
pub(crate) struct Page {
    /// The view's sequence number when the page was read.
    pub seq: u64,
    pub neighbors: Vec<NeighborRecord>,
    /// Where the next page starts, when more may follow. A page can hold fewer neighbors than
    /// asked (a sparse filter) and still have a next one.
    pub next_page_token: Option<String>,
}

/// Entries looked at per page or snapshot chunk, matching or not: the view's lock is never
/// held for longer than this many entries.
const SCAN: usize = 4096;

mod subscription;

use subscription::Reading;
#[cfg(test)]
use subscription::SNAPSHOT_CHUNK;
pub(crate) use subscription::{Item, Subscription};

impl ApiState {
    /// Neighbors after `after` (a page token: the last key of the previous page), in key order.
    pub(crate) fn list(
        &self,
        filter: &Filter,
        after: Option<&str>,
        page_size: Option<usize>,
    ) -> Result<Page, ServiceError> {
        filter.validate()?;
        let size = match page_size {
            None | Some(0) => DEFAULT_PAGE_SIZE,
            Some(n) if n <= MAX_PAGE_SIZE => n,
            Some(n) => {
                return Err(ServiceError::InvalidArgument(format!(
                    "page_size {n}: must be 1..={MAX_PAGE_SIZE}"
                )));
            }
        };
        // A token is a key this daemon handed out: its interface is known here.
        let after = after
            .map(|t| {
                self.view.parse_token(t).ok_or_else(|| {
                    ServiceError::InvalidArgument(format!("page token {t:?}: not a key of ours"))
                })
            })
            .transpose()?;
        let page = self
            .view
            .page(after.as_ref(), size, SCAN.max(size), |r| filter.matches(r));
        Ok(Page {
            seq: page.seq,
            neighbors: page.records,
            next_page_token: page.resume_after.map(|k| self.view.token(&k)),
        })
    }

    /// One neighbor by interface name and IP address text; serving several namespaces,
    /// `namespace`'s, or (`None`) the first namespace's that has it.
    pub(crate) fn get(
        &self,
        ifname: &str,
        ip: &str,
        namespace: Option<&str>,
    ) -> Result<NeighborRecord, ServiceError> {
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| ServiceError::InvalidArgument(format!("{ip:?} is not an IP address")))?;
        let missing = || ServiceError::NotFound(format!("no neighbor {ifname}:{ip}"));
        let ifname = IfName::existing(ifname).ok_or_else(missing)?;
        let key = NeighKey::of(ifname, ip);
        let parts = match namespace {
            Some(ns) => {
                let p = self
                    .view
                    .partition_of(ns)
                    .ok_or_else(|| ServiceError::NotFound(format!("no namespace {ns:?} here")))?;
                p..p + 1
            }
            None => 0..self.view.partitions(),
        };
        parts
            .into_iter()
            .find_map(|p| self.view.get(&key.in_partition(p)?))
            .ok_or_else(missing)
    }

    /// The daemon's counters: `{metric: value}` or `{metric: {"label=value,...": value}}`.
    pub(crate) fn stats(&self) -> serde_json::Value {
        stats_json(&self.metrics)
    }

    /// The effective configuration.
    pub(crate) fn config(&self) -> &serde_json::Value {
        &self.config
    }

    /// Asks for a full resync (a dump, then the difference is written); the engine counts it.
    /// A hot standby refuses: the leader writes.
    pub(crate) fn resync(&self) -> Result<(), ServiceError> {
        if let Some(ha) = &self.ha
            && let crate::core::ha::Role::Standby { leader } = ha.role()
        {
            return Err(ServiceError::Standby(format!(
                "this daemon is a hot standby and writes nothing; ask the leader ({})",
                leader.as_deref().unwrap_or("none elected yet")
            )));
        }
        self.resync.request_resync(ResyncCause::Requested);
        Ok(())
    }

    /// Hot standby's role (`None` without `ha`), for every response's metadata.
    pub(crate) fn role(&self) -> Option<&'static str> {
        self.ha.as_ref().map(|h| h.role().as_str())
    }

    /// Hot standby as this daemon sees it: its role, and the lease.
    pub(crate) async fn ha(&self) -> Result<neighsyncd_api::HaReply, ServiceError> {
        let Some(ha) = &self.ha else {
            return Err(ServiceError::NotFound(
                "hot standby is off (start with --ha)".into(),
            ));
        };
        let lease = ha.lease().await.unwrap_or_default();
        Ok(neighsyncd_api::HaReply {
            role: ha.role().as_str().into(),
            me: ha.me().into(),
            leader: lease.holder,
            token: lease.token,
            lease_age_ms: lease.age_ms,
            lease_expires_in_ms: lease.expires_in_ms,
        })
    }

    /// Subscribes: from a snapshot, or from the changes after `resume` (an instance epoch
    /// and a sequence number) when it is this instance's and its history still reaches back
    /// that far. A resume point from another instance (the daemon restarted) gets a snapshot:
    /// its sequence numbers mean nothing here.
    pub(crate) fn subscribe(
        &self,
        filter: Filter,
        resume: Option<(&str, u64)>,
    ) -> Result<Subscription, ServiceError> {
        filter.validate()?;
        let resumed = resume
            .filter(|(epoch, _)| *epoch == self.view.epoch())
            .and_then(|(_, seq)| self.view.resume(seq));
        Ok(match resumed {
            Some(changes) => Subscription {
                state: self.clone(),
                pending: Default::default(),
                reading: None,
                filter,
                changes,
            },
            None => {
                let (seq, changes) = self.view.subscribe();
                Subscription {
                    state: self.clone(),
                    filter,
                    pending: Default::default(),
                    reading: Some(Reading {
                        seq,
                        after: None,
                        count: 0,
                    }),
                    changes,
                }
            }
        })
    }
}

/// The counters of `metrics` as JSON (see [`ApiState::stats`]).
fn stats_json(metrics: &crate::telemetry::metrics::MetricsSet) -> serde_json::Value {
    use serde_json::json;
    let mut out = serde_json::Map::new();
    for fam in metrics.gather() {
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

#[cfg(test)]
mod tests;
