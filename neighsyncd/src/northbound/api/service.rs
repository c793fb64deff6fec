//! The API's one service layer: what REST and gRPC both serve, decided once. The adapters
//! (`rest`, `grpc`) only decode requests into these calls and encode what comes back.
//!
//! - a filter, validated the same way for both;
//! - a page by key range, built under the view's read lock in O(page);
//! - stats, config, resync;
//! - a subscription: a snapshot (or the changes since a resume point), then every change in
//!   order, and a fresh snapshot after falling behind.

use std::net::IpAddr;
use std::sync::Arc;

use serde::Deserialize;
use tokio::sync::broadcast;

use super::ApiState;
use crate::core::neigh::ResyncCause;
use crate::northbound::view::{Change, ChangeReceiver, NeighborRecord};

pub(crate) const DEFAULT_PAGE_SIZE: usize = 100;
pub(crate) const MAX_PAGE_SIZE: usize = 1000;

/// Why a call was refused; each adapter maps it to its own status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ServiceError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
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
            && self.family.as_ref().is_none_or(|f| f == r.family)
            && self.vrf.as_ref().is_none_or(|v| r.vrf.as_ref() == Some(v))
            && self
                .state
                .as_ref()
                // In eBPF mode a state is known up to its class ("REACHABLE|STALE|DELAY").
                .is_none_or(|s| r.kernel_state.is_some_and(|k| k.split('|').any(|x| x == s)))
    }
}

/// One page of a list.
pub(crate) struct Page {
    /// The view's sequence number when the page was read.
    pub seq: u64,
    pub neighbors: Vec<NeighborRecord>,
    /// The last key returned, when more follow.
    pub next_page_token: Option<String>,
}

/// What a subscriber receives, in order.
pub(crate) enum Item {
    Snapshot {
        seq: u64,
        neighbors: Vec<NeighborRecord>,
    },
    Change(Arc<Change>),
    /// The subscriber fell `missed` changes behind; a snapshot follows.
    FellBehind {
        missed: u64,
        seq: u64,
    },
}

/// A running subscription; [`Subscription::next`] yields its items.
pub(crate) struct Subscription {
    state: ApiState,
    filter: Filter,
    pending: std::collections::VecDeque<Item>,
    changes: ChangeReceiver,
}

impl Subscription {
    /// The next item; `None` once the daemon stops.
    pub(crate) async fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            match self.changes.recv().await {
                Ok(c) if self.filter.matches(&c.record) => return Some(Item::Change(c)),
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    let (seq, neighbors, rx) = self.state.view.subscribe();
                    self.changes = rx;
                    self.pending.push_back(Item::FellBehind { missed, seq });
                    self.pending.push_back(self.snapshot(seq, neighbors));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    fn snapshot(&self, seq: u64, neighbors: Vec<NeighborRecord>) -> Item {
        Item::Snapshot {
            seq,
            neighbors: neighbors
                .into_iter()
                .filter(|r| self.filter.matches(r))
                .collect(),
        }
    }
}

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
        let (seq, mut neighbors) = self.view.page(after, size + 1, |r| filter.matches(r));
        let more = neighbors.len() > size;
        neighbors.truncate(size);
        let next_page_token = if more {
            neighbors.last().map(|r| r.key.clone())
        } else {
            None
        };
        Ok(Page {
            seq,
            neighbors,
            next_page_token,
        })
    }

    /// One neighbor by interface name and IP address text.
    pub(crate) fn get(&self, ifname: &str, ip: &str) -> Result<NeighborRecord, ServiceError> {
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| ServiceError::InvalidArgument(format!("{ip:?} is not an IP address")))?;
        let key = crate::core::rules::neigh_key(ifname, &ip);
        self.view
            .get(&key)
            .ok_or_else(|| ServiceError::NotFound(format!("no neighbor {key}")))
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
    pub(crate) fn resync(&self) {
        self.resync.request_resync(ResyncCause::Requested);
    }

    /// Subscribes: from a snapshot, or from the changes after `resume_from` when the view's
    /// history still reaches back that far.
    pub(crate) fn subscribe(
        &self,
        filter: Filter,
        resume_from: Option<u64>,
    ) -> Result<Subscription, ServiceError> {
        filter.validate()?;
        let sub = match resume_from.and_then(|seq| self.view.resume(seq)) {
            Some((missed, changes)) => Subscription {
                state: self.clone(),
                pending: missed
                    .into_iter()
                    .filter(|c| filter.matches(&c.record))
                    .map(Item::Change)
                    .collect(),
                filter,
                changes,
            },
            None => {
                let (seq, neighbors, changes) = self.view.subscribe();
                let mut sub = Subscription {
                    state: self.clone(),
                    filter,
                    pending: Default::default(),
                    changes,
                };
                let first = sub.snapshot(seq, neighbors);
                sub.pending.push_back(first);
                sub
            }
        };
        Ok(sub)
    }
}

/// The counters of `metrics` as JSON (see [`ApiState::stats`]).
fn stats_json(metrics: &crate::telemetry::metrics::Metrics) -> serde_json::Value {
    use serde_json::json;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::neigh::KernelSide;
    use crate::northbound::view::View;

    struct NoSource;
    impl crate::core::control::ResyncRequests for NoSource {
        fn request_resync(&self, _: ResyncCause) {}
    }

    fn state(n: u8) -> ApiState {
        let view = Arc::new(View::new(16));
        for i in 0..n {
            let ifname = if i % 2 == 0 { "Ethernet0" } else { "Ethernet4" };
            let ip: IpAddr = format!("10.0.0.{i}").parse().unwrap();
            view.kernel_update(
                &crate::core::rules::neigh_key(ifname, &ip),
                KernelSide {
                    ifname: ifname.into(),
                    vrf: None,
                    ip,
                    lladdr: Some(vec![2, 0, 0, 0, 0, i]),
                    state: "REACHABLE",
                    skip_reason: None,
                },
            );
        }
        ApiState {
            view,
            metrics: Arc::new(crate::telemetry::metrics::Metrics::new()),
            resync: Arc::new(NoSource),
            config: Arc::new(serde_json::json!({})),
            auth: Arc::new(super::super::auth::Auth::new(None, true).unwrap()),
        }
    }

    #[test]
    fn pages_walk_the_filtered_keys_once_in_order() {
        let s = state(25);
        let f = Filter {
            interface: Some("Ethernet4".into()),
            ..Default::default()
        };
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = s.list(&f, after.as_deref(), Some(5)).unwrap();
            assert!(page.neighbors.len() <= 5);
            seen.extend(page.neighbors.iter().map(|r| r.key.clone()));
            match page.next_page_token {
                Some(t) => after = Some(t),
                None => break,
            }
        }
        let mut want: Vec<String> = (0..25u8)
            .filter(|i| i % 2 == 1)
            .map(|i| format!("Ethernet4:10.0.0.{i}"))
            .collect();
        want.sort();
        assert_eq!(seen, want);
    }

    #[test]
    fn bad_arguments_are_refused_with_a_reason() {
        let s = state(1);
        let bad_family = Filter {
            family: Some("IPv5".into()),
            ..Default::default()
        };
        assert!(matches!(
            s.list(&bad_family, None, None),
            Err(ServiceError::InvalidArgument(m)) if m.contains("IPv4 or IPv6")
        ));
        assert!(matches!(
            s.list(&Filter::default(), None, Some(MAX_PAGE_SIZE + 1)),
            Err(ServiceError::InvalidArgument(_))
        ));
        assert!(matches!(
            s.get("Ethernet0", "not-an-ip"),
            Err(ServiceError::InvalidArgument(_))
        ));
        assert!(matches!(
            s.get("Ethernet0", "10.9.9.9"),
            Err(ServiceError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn a_subscription_starts_with_a_filtered_snapshot_then_changes() {
        let s = state(4);
        let f = Filter {
            interface: Some("Ethernet0".into()),
            ..Default::default()
        };
        let mut sub = s.subscribe(f, None).unwrap();
        match sub.next().await {
            Some(Item::Snapshot { seq, neighbors }) => {
                assert_eq!(seq, 4);
                assert_eq!(neighbors.len(), 2);
            }
            _ => panic!("expected a snapshot first"),
        }
        s.view.kernel_remove("Ethernet4:10.0.0.1"); // filtered out
        s.view.kernel_remove("Ethernet0:10.0.0.2");
        match sub.next().await {
            Some(Item::Change(c)) => assert_eq!(c.record.key, "Ethernet0:10.0.0.2"),
            _ => panic!("expected the matching change"),
        }
        // Resuming from seq 4 replays both removals' matching half.
        let mut resumed = s
            .subscribe(
                Filter {
                    interface: Some("Ethernet0".into()),
                    ..Default::default()
                },
                Some(4),
            )
            .unwrap();
        match resumed.next().await {
            Some(Item::Change(c)) => assert_eq!(c.seq, 6),
            _ => panic!("expected the missed change"),
        }
    }
}
