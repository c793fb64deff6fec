//! A subscription: the snapshot read in chunks under short locks, then the changes; a fresh
//! snapshot after falling behind.

use std::sync::Arc;

use super::{ApiState, Filter, SCAN};
use crate::core::key::NeighKey;
use crate::northbound::view::{Change, ChangeReceiver, Lagged, NeighborRecord};

/// Neighbors per snapshot message: a 1M-neighbor snapshot is ~4000 messages of ~70 KB, far
/// below every stock client's 4 MiB default.
pub(crate) const SNAPSHOT_CHUNK: usize = 256;

/// What a subscriber receives, in order.
pub(crate) enum Item {
    /// Part of the snapshot as of `seq` (at most [`SNAPSHOT_CHUNK`] neighbors, in key order).
    Snapshot {
        epoch: String,
        seq: u64,
        neighbors: Vec<NeighborRecord>,
    },
    /// The snapshot is complete (`count` neighbors); the changes after `seq` follow.
    SnapshotEnd {
        epoch: String,
        seq: u64,
        count: u64,
    },
    Change(Arc<Change>),
    /// The subscriber fell `missed` changes behind; a new snapshot follows.
    FellBehind {
        missed: u64,
        seq: u64,
    },
}

/// A snapshot being read, chunk by chunk, under short read locks. Changes made meanwhile
/// also arrive as changes after the end marker: applying them over the snapshot, in order,
/// gives the table (an upsert or a remove applied twice is harmless).
pub(super) struct Reading {
    pub(super) seq: u64,
    pub(super) after: Option<NeighKey>,
    pub(super) count: u64,
}

/// A running subscription; [`Subscription::next`] yields its items.
pub(crate) struct Subscription {
    pub(super) state: ApiState,
    pub(super) filter: Filter,
    pub(super) pending: std::collections::VecDeque<Item>,
    pub(super) reading: Option<Reading>,
    pub(super) changes: ChangeReceiver,
}

impl Subscription {
    /// The next item; `None` once the daemon stops.
    pub(crate) async fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            if let Some(item) = self.read_snapshot() {
                return Some(item);
            }
            match self.changes.recv().await {
                Ok(c) if self.filter.matches(&c.record) => return Some(Item::Change(c)),
                Ok(_) => {}
                Err(Lagged(missed)) => {
                    let (seq, rx) = self.state.view.subscribe();
                    self.changes = rx;
                    self.reading = Some(Reading {
                        seq,
                        after: None,
                        count: 0,
                    });
                    return Some(Item::FellBehind { missed, seq });
                }
            }
        }
    }

    /// The snapshot's next chunk, or its end marker; `None` when no snapshot is being read.
    fn read_snapshot(&mut self) -> Option<Item> {
        let view = self.state.view.clone();
        let epoch = view.epoch().to_string();
        loop {
            let r = self.reading.as_mut()?;
            let page = view.page(r.after.as_ref(), SNAPSHOT_CHUNK, SCAN, |x| {
                self.filter.matches(x)
            });
            r.count += page.records.len() as u64;
            let done = page.resume_after.is_none();
            r.after = page.resume_after;
            let seq = r.seq;
            let count = r.count;
            if done {
                self.reading = None;
            }
            if !page.records.is_empty() {
                if done {
                    self.pending.push_back(Item::SnapshotEnd {
                        epoch: epoch.clone(),
                        seq,
                        count,
                    });
                }
                return Some(Item::Snapshot {
                    epoch,
                    seq,
                    neighbors: page.records,
                });
            }
            if done {
                return Some(Item::SnapshotEnd { epoch, seq, count });
            }
        }
    }
}
