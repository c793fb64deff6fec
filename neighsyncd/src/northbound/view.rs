//! The read model the management APIs serve: every neighbor the kernel or APPL_DB knows, what
//! each side holds, and why the rules skipped it; plus an ordered change stream.
//!
//! The pipeline writes it (a short write lock per change, a broadcast send that never waits);
//! API handlers only read it, so no client can slow the pipeline. Each change gets a sequence
//! number; a bounded history lets a subscriber resume from a sequence it saw, and one that
//! falls further behind is told so (broadcast lag) and starts again from a snapshot.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use serde::Serialize;
use tokio::sync::broadcast;

pub use crate::core::neigh::KernelSide;
use crate::core::rules::{Mac, NeighValue};

/// One neighbor, as both sides see it. JSON field names are part of the API (stable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NeighborRecord {
    /// The APPL_DB key, `<ifname>:<ip>`.
    pub key: String,
    pub ifname: String,
    /// The interface's master device (its VRF), if any.
    pub vrf: Option<String>,
    pub ip: IpAddr,
    /// `IPv4` or `IPv6`.
    pub family: &'static str,
    /// The kernel's link-layer address (lowercase), if the kernel has the neighbor.
    pub kernel_mac: Option<String>,
    /// The kernel's NUD state name (REACHABLE, STALE, ...), if the kernel has the neighbor. In
    /// eBPF mode, where moves within a state class are not reported, the class's states
    /// (`REACHABLE|STALE|DELAY`, `INCOMPLETE|FAILED`): what is really known.
    pub kernel_state: Option<&'static str>,
    /// What APPL_DB holds for it (`neigh` field), if anything.
    pub appl_db_mac: Option<String>,
    /// Why the SONiC rules skipped the kernel's last message for it.
    pub skip_reason: Option<&'static str>,
    /// When either side last changed (RFC 3339).
    pub last_changed: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Upsert,
    Remove,
}

#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub seq: u64,
    pub kind: ChangeKind,
    pub record: NeighborRecord,
}

#[derive(Default)]
struct Entry {
    kernel: Option<KernelSide>,
    appl: Option<NeighValue>,
    /// Kept so a removal can still describe the neighbor.
    ip: Option<IpAddr>,
    ifname: String,
    changed: Option<SystemTime>,
}

struct Inner {
    seq: u64,
    entries: BTreeMap<String, Entry>,
    history: VecDeque<Arc<Change>>,
}

/// A stretch of the table (see [`View::page`]).
#[derive(Debug, Default)]
pub struct Page {
    pub seq: u64,
    pub records: Vec<NeighborRecord>,
    /// Where the next stretch starts (after this key); `None`: the table ends here.
    pub resume_after: Option<String>,
}

/// A subscriber's end of the change stream.
pub type ChangeReceiver = broadcast::Receiver<Arc<Change>>;

pub struct View {
    inner: RwLock<Inner>,
    tx: broadcast::Sender<Arc<Change>>,
    history_len: usize,
    epoch: String,
}

/// A new instance epoch: 64 random bits (hex), so that two runs of the daemon never share one.
fn new_epoch() -> String {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        // No entropy source: the clock and the pid still differ from run to run.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        b = (t ^ (u64::from(std::process::id()) << 32)).to_be_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn mac_text(l: &[u8]) -> String {
    match <[u8; 6]>::try_from(l) {
        Ok(m) => Mac(m).to_string(),
        Err(_) => l
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
    }
}

fn split_key(key: &str) -> (String, Option<IpAddr>) {
    // Interface names contain no ':'; IPv6 addresses do.
    match key.split_once(':') {
        Some((ifname, ip)) => (ifname.to_string(), ip.parse().ok()),
        None => (key.to_string(), None),
    }
}

impl Entry {
    fn record(&self, key: &str) -> Option<NeighborRecord> {
        let ip = self.kernel.as_ref().map(|k| k.ip).or(self.ip)?;
        Some(NeighborRecord {
            key: key.to_string(),
            ifname: self
                .kernel
                .as_ref()
                .map(|k| k.ifname.clone())
                .unwrap_or_else(|| self.ifname.clone()),
            vrf: self.kernel.as_ref().and_then(|k| k.vrf.clone()),
            ip,
            family: if ip.is_ipv6() { "IPv6" } else { "IPv4" },
            kernel_mac: self
                .kernel
                .as_ref()
                .and_then(|k| k.lladdr.as_deref().map(mac_text)),
            kernel_state: self.kernel.as_ref().map(|k| k.state),
            appl_db_mac: self.appl.map(|v| v.mac.to_string()),
            skip_reason: self.kernel.as_ref().and_then(|k| k.skip_reason),
            last_changed: crate::telemetry::health::rfc3339(
                self.changed.unwrap_or(SystemTime::UNIX_EPOCH),
            ),
        })
    }
}

impl View {
    /// `history`: how many changes are kept for resuming subscribers.
    pub fn new(history: usize) -> View {
        let (tx, _) = broadcast::channel(history.max(16));
        View {
            inner: RwLock::new(Inner {
                seq: 0,
                entries: BTreeMap::new(),
                history: VecDeque::new(),
            }),
            tx,
            history_len: history,
            epoch: new_epoch(),
        }
    }

    fn write(&self, key: &str, f: impl FnOnce(&mut Entry)) {
        let Ok(mut inner) = self.inner.write() else {
            return;
        };
        let entry = inner.entries.entry(key.to_string()).or_insert_with(|| {
            let (ifname, ip) = split_key(key);
            Entry {
                ifname,
                ip,
                ..Default::default()
            }
        });
        let before = entry.record(key);
        f(entry);
        let gone = entry.kernel.is_none() && entry.appl.is_none();
        // `last_changed` moves only when a side really changed (a no-op resync rewrites the
        // same facts and must leave it alone).
        let changed_at = entry.changed;
        entry.changed = Some(SystemTime::now());
        let after = entry.record(key);
        let (kind, record) = match (gone, after) {
            (true, _) => {
                let rec = before.clone();
                inner.entries.remove(key);
                match rec {
                    Some(r) => (ChangeKind::Remove, r),
                    None => return,
                }
            }
            (false, Some(after)) => {
                if before.as_ref().map(|b| {
                    (
                        &b.kernel_mac,
                        b.kernel_state,
                        &b.appl_db_mac,
                        b.skip_reason,
                        &b.vrf,
                    )
                }) == Some((
                    &after.kernel_mac,
                    after.kernel_state,
                    &after.appl_db_mac,
                    after.skip_reason,
                    &after.vrf,
                )) {
                    entry.changed = changed_at;
                    return;
                }
                (ChangeKind::Upsert, after)
            }
            (false, None) => return,
        };
        inner.seq += 1;
        let change = Arc::new(Change {
            seq: inner.seq,
            kind,
            record,
        });
        inner.history.push_back(change.clone());
        while inner.history.len() > self.history_len {
            inner.history.pop_front();
        }
        // No receivers is fine; a lagging receiver learns it from its own recv.
        let _ = self.tx.send(change);
    }

    pub fn kernel_update(&self, key: &str, side: KernelSide) {
        self.write(key, |e| {
            e.ip = Some(side.ip);
            e.ifname = side.ifname.clone();
            e.kernel = Some(side);
        });
    }

    pub fn kernel_remove(&self, key: &str) {
        let known = self
            .inner
            .read()
            .map(|i| i.entries.contains_key(key))
            .unwrap_or(false);
        if known {
            self.write(key, |e| e.kernel = None);
        }
    }

    pub fn appl_update(&self, key: &str, value: Option<NeighValue>) {
        self.write(key, |e| e.appl = value);
    }

    pub fn seq(&self) -> u64 {
        self.inner.read().map(|i| i.seq).unwrap_or(0)
    }

    pub fn get(&self, key: &str) -> Option<NeighborRecord> {
        let inner = self.inner.read().ok()?;
        inner.entries.get(key)?.record(key)
    }

    /// The records after key `after`, in key order, that `keep` accepts: at most `limit` of
    /// them, from at most `scan` entries. Returns the sequence number they are consistent
    /// with, the records, and where to go on from (the last key looked at; `None` at the
    /// table's end). The read lock is held for this walk only, which starts at `after` (a
    /// range, not a scan from the first key): a page costs O(scan), never O(table).
    pub fn page(
        &self,
        after: Option<&str>,
        limit: usize,
        scan: usize,
        keep: impl Fn(&NeighborRecord) -> bool,
    ) -> Page {
        use std::ops::Bound;
        let Ok(inner) = self.inner.read() else {
            return Page::default();
        };
        let from = match after {
            Some(k) => Bound::Excluded(k),
            None => Bound::Unbounded,
        };
        let mut page = Page {
            seq: inner.seq,
            ..Page::default()
        };
        let mut last: Option<&String> = None;
        let entries = inner.entries.range::<str, _>((from, Bound::Unbounded));
        for (walked, (k, e)) in entries.enumerate() {
            if page.records.len() == limit || walked == scan {
                page.resume_after = last.cloned();
                return page;
            }
            last = Some(k);
            if let Some(r) = e.record(k).filter(|r| keep(r)) {
                page.records.push(r);
            }
        }
        page // the end of the table: nothing to resume after
    }

    /// Subscribes: the receiver sees every change after the returned sequence number, in
    /// order. The table as of then is read with [`View::page`] (see `api::service`).
    pub fn subscribe(&self) -> (u64, ChangeReceiver) {
        // Under the read lock no change can be sent, so nothing falls between the two.
        match self.inner.read() {
            Ok(inner) => (inner.seq, self.tx.subscribe()),
            Err(_) => (0, self.tx.subscribe()),
        }
    }

    /// This view's instance: sequence numbers restart with the daemon, so a resume point is
    /// only meaningful together with the epoch it was seen in.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// Resumes after `seq`: the changes since, and a receiver for what follows; `None` when the
    /// history no longer reaches back that far (take a snapshot instead).
    pub fn resume(&self, seq: u64) -> Option<(Vec<Arc<Change>>, ChangeReceiver)> {
        let inner = self.inner.read().ok()?;
        if seq > inner.seq {
            return None;
        }
        let oldest = inner
            .history
            .front()
            .map(|c| c.seq)
            .unwrap_or(inner.seq + 1);
        if seq + 1 < oldest && seq != inner.seq {
            return None;
        }
        let rx = self.tx.subscribe();
        let missed = inner
            .history
            .iter()
            .filter(|c| c.seq > seq)
            .cloned()
            .collect();
        Some((missed, rx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(mac: u8, state: &'static str) -> KernelSide {
        KernelSide {
            ifname: "Ethernet0".into(),
            vrf: None,
            ip: "10.0.0.2".parse().unwrap(),
            lladdr: Some(vec![2, 0, 0, 0, 0, mac]),
            state,
            skip_reason: None,
        }
    }

    #[test]
    fn changes_are_sequenced_and_snapshots_consistent() {
        let v = View::new(4);
        let (seq0, mut rx) = v.subscribe();
        assert_eq!((seq0, v.page(None, 10, 10, |_| true).records.len()), (0, 0));
        assert_eq!(v.epoch().len(), 16);
        assert_ne!(
            v.epoch(),
            View::new(4).epoch(),
            "each view is an instance of its own"
        );
        v.kernel_update("Ethernet0:10.0.0.2", side(1, "REACHABLE"));
        v.appl_update(
            "Ethernet0:10.0.0.2",
            Some(NeighValue {
                mac: Mac([2, 0, 0, 0, 0, 1]),
                ipv6: false,
            }),
        );
        // Same content again: no change, and `last_changed` stays.
        let stamped = v.get("Ethernet0:10.0.0.2").unwrap().last_changed;
        std::thread::sleep(std::time::Duration::from_millis(1100));
        v.kernel_update("Ethernet0:10.0.0.2", side(1, "REACHABLE"));
        assert_eq!(v.get("Ethernet0:10.0.0.2").unwrap().last_changed, stamped);
        let c1 = rx.try_recv().unwrap();
        let c2 = rx.try_recv().unwrap();
        assert!(rx.try_recv().is_err());
        assert_eq!((c1.seq, c2.seq), (1, 2));
        assert_eq!(c2.record.appl_db_mac.as_deref(), Some("02:00:00:00:00:01"));
        v.kernel_remove("Ethernet0:10.0.0.2");
        v.appl_update("Ethernet0:10.0.0.2", None);
        let last = rx.try_recv().unwrap();
        let removed = rx.try_recv().unwrap();
        assert_eq!(last.kind, ChangeKind::Upsert);
        assert_eq!(removed.kind, ChangeKind::Remove);
        assert_eq!(removed.record.ip, "10.0.0.2".parse::<IpAddr>().unwrap());
        assert!(v.get("Ethernet0:10.0.0.2").is_none());
        // Resume: within history, and beyond it.
        let (missed, _) = v.resume(2).unwrap();
        assert_eq!(missed.iter().map(|c| c.seq).collect::<Vec<_>>(), vec![3, 4]);
        for i in 0..10u8 {
            v.kernel_update("Ethernet0:10.0.0.2", side(i + 10, "STALE"));
        }
        assert!(v.resume(1).is_none());
        assert!(v.resume(v.seq()).unwrap().0.is_empty());
    }
}
