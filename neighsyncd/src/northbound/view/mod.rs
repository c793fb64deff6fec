//! The read model the management APIs serve: every neighbor the kernel or APPL_DB knows, what
//! each side holds, and why the rules skipped it; plus an ordered change stream.
//!
//! The pipeline writes it (a short write lock per change, and a wake-up that never waits);
//! API handlers only read it, so no client can slow the pipeline. Each change gets a sequence
//! number and goes into one bounded history that every subscriber reads at its own pace: a
//! subscriber is a position in it, so a stalled one holds nothing. One that falls further
//! behind than the history reaches is told so and starts again from a snapshot, as is one
//! that resumes from a sequence number the history no longer holds.
//!
//! Memory is the point of its shape: per neighbor a 20-byte key (interned interface name and
//! address) and 28 bytes of facts, from which records are rendered only when asked for.

use std::collections::VecDeque;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use crate::core::key::NeighKey;
pub use crate::core::neigh::KernelSide;
use crate::core::rules::{Mac, NeighValue};

pub use neighsyncd_api::{Change, ChangeKind, NeighborRecord};

/// What the view keeps of a neighbor: both sides, and when they last changed. Its key says
/// the interface and the address. Records are rendered from it when asked for.
#[derive(Debug, Clone, Default)]
struct Facts {
    kernel: Option<KernelSide>,
    appl: Option<NeighValue>,
    /// When either side last really changed (Unix time, s: what records show; u32 lasts to
    /// 2106, and four bytes fewer per neighbor are 4 MB at a million).
    changed_s: u32,
}

impl Facts {
    fn is_empty(&self) -> bool {
        self.kernel.is_none() && self.appl.is_none()
    }

    fn same_facts(&self, other: &Facts) -> bool {
        self.appl == other.appl
            && match (&self.kernel, &other.kernel) {
                (Some(a), Some(b)) => a.same_facts(b),
                (a, b) => a.is_none() && b.is_none(),
            }
    }

    fn record(&self, key: &NeighKey, namespace: Option<&str>) -> NeighborRecord {
        let k = self.kernel.as_ref();
        NeighborRecord {
            key: key.to_string(),
            namespace: namespace.map(str::to_string),
            ifname: key.ifname().as_str().to_string(),
            vrf: k.and_then(|k| k.vrf).map(|v| v.as_str().to_string()),
            ip: key.ip(),
            family: if key.ip().is_ipv6() { "IPv6" } else { "IPv4" }.into(),
            kernel_mac: k.and_then(|k| k.lladdr.get().map(mac_text)),
            kernel_state: k.map(|k| k.state_label().into()),
            appl_db_mac: self.appl.map(|v| v.mac.to_string()),
            skip_reason: k.and_then(|k| k.skip_reason).map(|r| r.as_str().into()),
            last_changed: crate::telemetry::health::rfc3339(
                SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(self.changed_s)),
            ),
        }
    }
}

/// One change as the history keeps it: the neighbor's facts after it (a removal: before).
/// Its sequence number is its place in the history (see [`Inner::oldest`]): 52 bytes a
/// change, not 64.
struct Delta {
    kind: ChangeKind,
    key: NeighKey,
    facts: Facts,
}

impl Delta {
    fn change(&self, seq: u64, namespace: Option<&str>) -> Change {
        Change {
            seq,
            kind: self.kind,
            record: self.facts.record(&self.key, namespace),
        }
    }
}

struct Inner {
    seq: u64,
    entries: ChunkedMap<NeighKey, Facts>,
    /// The last changes, oldest first: what subscribers read, and resume from.
    history: VecDeque<Delta>,
}

impl Inner {
    /// The sequence number of the history's first change (the last one's is `seq`); one
    /// past `seq` when the history is empty.
    fn oldest(&self) -> u64 {
        self.seq + 1 - self.history.len() as u64
    }
}

/// A stretch of the table (see [`View::page`]).
#[derive(Debug, Default)]
pub struct Page {
    pub seq: u64,
    pub records: Vec<NeighborRecord>,
    /// Where the next stretch starts (after this key); `None`: the table ends here.
    pub resume_after: Option<NeighKey>,
}

/// A subscriber fell so far behind that the history no longer holds the changes it missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("fell {0} changes behind")]
pub struct Lagged(pub u64);

/// A subscriber's place in the change stream. It holds no changes of its own: it reads the
/// view's one shared history, so a stalled subscriber costs nothing beyond it.
pub struct ChangeReceiver {
    view: Arc<View>,
    /// The sequence number it reads next.
    next: u64,
    seen: watch::Receiver<u64>,
}

impl ChangeReceiver {
    /// The next change, waiting for it; [`Lagged`] (once) when the history moved past the
    /// changes this subscriber had yet to read.
    pub async fn recv(&mut self) -> Result<Arc<Change>, Lagged> {
        loop {
            // Marked seen before looking: a change sent after the look wakes the wait.
            self.seen.borrow_and_update();
            if let Some(next) = self.try_recv() {
                return next;
            }
            if self.seen.changed().await.is_err() {
                // The view is gone (it cannot be while this receiver holds it).
                std::future::pending::<()>().await;
            }
        }
    }

    /// The next change if there is one already.
    pub fn try_recv(&mut self) -> Option<Result<Arc<Change>, Lagged>> {
        let inner = self.view.inner.read().ok()?;
        if self.next > inner.seq {
            return None;
        }
        let oldest = inner.oldest();
        if self.next < oldest {
            let missed = oldest - self.next;
            self.next = oldest;
            return Some(Err(Lagged(missed)));
        }
        let seq = self.next;
        let delta = inner.history.get((seq - oldest) as usize)?;
        self.next += 1;
        Some(Ok(Arc::new(
            delta.change(seq, self.view.namespace_of(&delta.key)),
        )))
    }
}

pub struct View {
    inner: RwLock<Inner>,
    /// The last sequence number, for waiting subscribers.
    notify: watch::Sender<u64>,
    history_len: usize,
    epoch: String,
    /// Multi-ASIC: the SONiC namespace of each partition (see [`View::part`]), in every
    /// record of it.
    namespaces: Vec<Option<String>>,
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

/// The Unix time in seconds, from the coarse clock (the last tick's time: no clock read, a
/// variable's), as every change of a burst asks for it.
fn unix_s_now() -> u32 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write; CLOCK_REALTIME_COARSE exists on Linux.
    if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) } != 0 {
        return SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
            .unwrap_or(0);
    }
    u32::try_from(ts.tv_sec).unwrap_or(if ts.tv_sec < 0 { 0 } else { u32::MAX })
}

impl View {
    /// `history`: how many changes are kept for subscribers to read and resume from.
    pub fn new(history: usize) -> View {
        Self::for_namespace(history, None)
    }

    /// A view whose records name `namespace` (multi-ASIC).
    pub fn for_namespace(history: usize, namespace: Option<String>) -> View {
        Self::with_partitions(history, vec![namespace])
    }

    /// A view of several namespaces (one process serving several), partition `i` being
    /// `namespaces[i]`'s: one table, one sequence of changes, every record naming its own.
    pub fn for_namespaces(history: usize, namespaces: Vec<String>) -> View {
        Self::with_partitions(history, namespaces.into_iter().map(Some).collect())
    }

    fn with_partitions(history: usize, namespaces: Vec<Option<String>>) -> View {
        View {
            inner: RwLock::new(Inner {
                seq: 0,
                entries: ChunkedMap::default(),
                history: VecDeque::new(),
            }),
            notify: watch::channel(0).0,
            history_len: history.max(16),
            epoch: new_epoch(),
            namespaces,
        }
    }

    /// The namespace of `key`'s partition.
    fn namespace_of(&self, key: &NeighKey) -> Option<&str> {
        self.namespaces.get(key.partition())?.as_deref()
    }

    /// How many partitions (namespaces) the view holds.
    pub fn partitions(&self) -> usize {
        self.namespaces.len()
    }

    /// The partition of namespace `ns`.
    pub fn partition_of(&self, ns: &str) -> Option<usize> {
        self.namespaces
            .iter()
            .position(|n| n.as_deref() == Some(ns))
    }

    /// Where partition `i`'s pipeline writes: every key it gives is put in partition `i`.
    pub fn part(self: &Arc<Self>, i: usize) -> ViewPart {
        ViewPart {
            view: self.clone(),
            part: i,
        }
    }

    /// A page token for `key`: its text, with its partition before a `/` (which no interface
    /// name holds) when that is not the first.
    pub fn token(&self, key: &NeighKey) -> String {
        match key.partition() {
            0 => key.to_string(),
            p => format!("{p}/{key}"),
        }
    }

    /// The key a [`View::token`] stands for; `None` when no such interface was ever seen.
    pub fn parse_token(&self, token: &str) -> Option<NeighKey> {
        match token.split_once('/') {
            Some((p, key)) => NeighKey::parse_existing(key)?.in_partition(p.parse().ok()?),
            None => NeighKey::parse_existing(token),
        }
    }

    fn write(&self, key: NeighKey, f: impl FnOnce(&mut Facts)) {
        let Ok(mut guard) = self.inner.write() else {
            return;
        };
        let inner = &mut *guard;
        // One search: the key's place serves the look, the insert and the removal.
        let spot = inner.entries.locate(&key);
        let (kind, facts) = match inner.entries.at_mut(spot) {
            None => {
                let mut facts = Facts::default();
                f(&mut facts);
                if facts.is_empty() {
                    return;
                }
                facts.changed_s = unix_s_now();
                inner.entries.insert_at(spot, key, facts.clone());
                (ChangeKind::Upsert, facts)
            }
            Some(entry) => {
                let before = entry.clone();
                f(entry);
                if entry.is_empty() {
                    inner.entries.remove_at(spot);
                    (ChangeKind::Remove, before)
                } else if entry.same_facts(&before) {
                    // A no-op (a resync rewriting the same facts): `last_changed` stays.
                    return;
                } else {
                    entry.changed_s = unix_s_now();
                    (ChangeKind::Upsert, entry.clone())
                }
            }
        };
        inner.seq += 1;
        let seq = inner.seq;
        // Room is made before the push: a full history never grows past its length (a
        // `VecDeque` one past a power of two would double).
        while inner.history.len() >= self.history_len {
            inner.history.pop_front();
        }
        if inner.history.capacity() == 0 {
            inner.history.reserve_exact(self.history_len);
        }
        inner.history.push_back(Delta { kind, key, facts });
        drop(guard);
        // Waking costs a lock per slot of tokio's notifier even with no one to wake: a tenth
        // of the daemon's CPU in an eBPF burst. A receiver made later looks at the sequence
        // number before it waits (see `ChangeReceiver::recv`), so it misses nothing.
        if self.notify.receiver_count() > 0 {
            self.notify.send_replace(seq);
        }
    }

    pub fn kernel_update(&self, key: NeighKey, side: KernelSide) {
        self.write(key, |e| e.kernel = Some(side));
    }

    pub fn kernel_remove(&self, key: NeighKey) {
        self.write(key, |e| e.kernel = None);
    }

    pub fn appl_update(&self, key: NeighKey, value: Option<NeighValue>) {
        self.write(key, |e| e.appl = value);
    }

    pub fn seq(&self) -> u64 {
        self.inner.read().map(|i| i.seq).unwrap_or(0)
    }

    pub fn get(&self, key: &NeighKey) -> Option<NeighborRecord> {
        let inner = self.inner.read().ok()?;
        Some(inner.entries.get(key)?.record(key, self.namespace_of(key)))
    }

    /// The records after key `after`, in key order, that `keep` accepts: at most `limit` of
    /// them, from at most `scan` entries. Returns the sequence number they are consistent
    /// with, the records, and where to go on from (the last key looked at; `None` at the
    /// table's end). The read lock is held for this walk only, which starts at `after` (a
    /// range, not a scan from the first key): a page costs O(scan), never O(table).
    pub fn page(
        &self,
        after: Option<&NeighKey>,
        limit: usize,
        scan: usize,
        keep: impl Fn(&NeighborRecord) -> bool,
    ) -> Page {
        let Ok(inner) = self.inner.read() else {
            return Page::default();
        };
        let mut page = Page {
            seq: inner.seq,
            ..Page::default()
        };
        let mut last: Option<&NeighKey> = None;
        for (walked, (k, e)) in inner.entries.after(after).enumerate() {
            if page.records.len() == limit || walked == scan {
                page.resume_after = last.copied();
                return page;
            }
            last = Some(k);
            let r = e.record(k, self.namespace_of(k));
            if keep(&r) {
                page.records.push(r);
            }
        }
        page // the end of the table: nothing to resume after
    }

    /// Subscribes: the receiver sees every change after the returned sequence number, in
    /// order. The table as of then is read with [`View::page`] (see `api::service`).
    pub fn subscribe(self: &Arc<Self>) -> (u64, ChangeReceiver) {
        let seq = self.seq();
        (seq, self.receiver_after(seq))
    }

    fn receiver_after(self: &Arc<Self>, seq: u64) -> ChangeReceiver {
        ChangeReceiver {
            view: self.clone(),
            next: seq + 1,
            seen: self.notify.subscribe(),
        }
    }

    /// This view's instance: sequence numbers restart with the daemon, so a resume point is
    /// only meaningful together with the epoch it was seen in.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// Resumes after `seq`: a receiver that reads the changes since, then what follows;
    /// `None` when the history no longer reaches back that far (take a snapshot instead).
    pub fn resume(self: &Arc<Self>, seq: u64) -> Option<ChangeReceiver> {
        let inner = self.inner.read().ok()?;
        if seq > inner.seq {
            return None;
        }
        let oldest = inner.oldest();
        if seq + 1 < oldest && seq != inner.seq {
            return None;
        }
        drop(inner);
        Some(self.receiver_after(seq))
    }
}

mod part;
pub use part::ViewPart;

mod ordered;
use ordered::ChunkedMap;

#[cfg(test)]
mod tests;
