//! The APPL_DB side: what it was told (read back, written, failed), and the batches of writes
//! that bring it to what it should hold.

use super::family_of;
use super::*;

impl Told {
    pub fn from_fields(fields: &Fields) -> Told {
        Told::from_pairs(fields.iter().map(|(f, v)| (f.as_bytes(), v.as_bytes())))
    }

    /// From a hash's field/value pairs as Redis returns them (no map built: a read-back
    /// parses a whole table of them).
    pub fn from_pairs<'a>(pairs: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> Told {
        let (mut mac, mut family, mut n) = (None, None, 0);
        for (field, value) in pairs {
            n += 1;
            match field {
                b"neigh" => mac = std::str::from_utf8(value).ok().and_then(Mac::parse),
                b"family" => family = Some(value),
                _ => {}
            }
        }
        match (mac, family, n) {
            (Some(mac), Some(b"IPv4"), 2) => Told::Value(NeighValue { mac, ipv6: false }),
            (Some(mac), Some(b"IPv6"), 2) => Told::Value(NeighValue { mac, ipv6: true }),
            _ => Told::Foreign,
        }
    }
}

impl State {
    /// Marks `key` due a write (since `now_ns`), unless it is already.
    pub(super) fn mark(&mut self, key: NeighKey, now_ns: u64) {
        let i = self.appl.position_or_insert_with(key, Default::default);
        self.mark_at(i, now_ns);
    }

    /// Marks the slot at position `i` of `appl` dirty (since `now_ns`), unless it is already.
    pub(super) fn mark_at(&mut self, i: u32, now_ns: u64) {
        if self.appl.flag_at(i)
            && let Some((_, slot)) = self.appl.entry_at_mut(i)
        {
            slot.dirty = true;
            slot.since = now_ns;
        }
    }

    /// APPL_DB was read back (start, reconnect, audit): that is now what it was told. Every
    /// key either side knows is re-examined. With `seed_desired` (at start, when we know
    /// nothing yet), what APPL_DB holds is also taken as the starting point of `desired`, so
    /// the first dump replays on top of it exactly as events would: entries the rules skip keep
    /// their value, entries no kernel neighbor accounts for are deleted at the dump's end.
    ///
    /// Keys are `<ifname>:<ip>`; one that is not (someone else's) is kept whole and, as
    /// nothing in the kernel accounts for it, deleted like any other stale key.
    ///
    /// Returns how many keys APPL_DB held differently from what we believed (drift).
    pub fn replace_told(
        &mut self,
        told: impl IntoIterator<Item = (NeighKey, Told)>,
        seed_desired: bool,
        now_ns: u64,
    ) -> usize {
        let mut drift = 0;
        // In place, without a second copy of the table: slots read back are flagged ...
        for (k, t) in told {
            let slot = self.appl.get_or_insert_with(k, Default::default);
            if slot.told != Some(t) {
                drift += 1;
            }
            slot.told = Some(t);
            slot.scratch = true;
            if let (true, Told::Value(v)) = (seed_desired, t) {
                slot.desired.get_or_insert(v);
            }
        }
        // ... and what we believed APPL_DB held but it does not is forgotten.
        for n in self.told_by_if.values_mut() {
            *n = 0;
        }
        self.told_by_family = (0, 0);
        for i in 0..self.appl.len() as u32 {
            let Some((k, slot)) = self.appl.entry_at_mut(i) else {
                continue;
            };
            if !std::mem::take(&mut slot.scratch) && slot.told.take().is_some() {
                drift += 1;
            }
            if let Some(t) = slot.told {
                *self.told_by_if.entry(k.ifname()).or_default() += 1;
                if family_of(&t) == 1 {
                    self.told_by_family.1 += 1;
                } else {
                    self.told_by_family.0 += 1;
                }
            }
            if slot.desired.is_some() || slot.told.is_some() {
                self.mark_at(i, now_ns);
            }
        }
        self.appl.retain(|_, s| !s.idle());
        drift
    }

    /// Takes up to `max` dirty keys whose desired value differs from what APPL_DB holds.
    /// Returns the batch and how many dirty keys needed no write.
    pub fn take_batch(&mut self, max: usize) -> (Batch, usize) {
        let mut batch = Batch {
            route_dels: self
                .route_dels
                .drain(..)
                .map(|key| Op::Del { key })
                .collect(),
            ..Default::default()
        };
        let mut noop = 0;
        // Round the table from where the last batch stopped, so that every due key is reached
        // within one round however the positions ahead keep being marked.
        let mut at = self.due_cursor;
        while batch.ops.len() < max {
            let Some(i) = self
                .appl
                .next_flagged(at)
                .or_else(|| self.appl.next_flagged(0))
            else {
                break;
            };
            self.appl.unflag_at(i);
            at = i + 1;
            let Some((&key, slot)) = self.appl.entry_at_mut(i) else {
                continue;
            };
            slot.dirty = false;
            let (want, have, since) = (slot.desired, slot.told, slot.since);
            let op = match (want, have) {
                (Some(w), Some(Told::Value(h))) if w == h => None,
                (None, None) => None,
                (Some(w), _) => Some(Op::Set {
                    key: key.text(),
                    value: w,
                }),
                (None, Some(_)) => Some(Op::Del { key: key.text() }),
            };
            match op {
                Some(op) => {
                    batch.ops.push(op);
                    batch.targets.push((key, want, since));
                }
                None => {
                    noop += 1;
                    if slot.idle() {
                        // The last entry moves into `i`: look there again.
                        self.appl.remove(&key);
                        at = i;
                    }
                }
            }
        }
        self.due_cursor = at;
        (batch, noop)
    }

    /// The batch is in APPL_DB. Returns (key, value now held, dirty-since time) per operation.
    pub fn commit(&mut self, batch: Batch) -> Vec<(NeighKey, Option<NeighValue>, u64)> {
        for (key, value, _) in &batch.targets {
            let slot = self.appl.get_or_insert_with(*key, Default::default);
            let old = slot.told;
            let had = old.is_some();
            slot.told = value.map(Told::Value);
            if slot.idle() {
                self.appl.remove(key);
            }
            self.count_told(old, value.map(Told::Value));
            let delta = i64::from(value.is_some()) - i64::from(had);
            if delta != 0 {
                *self.told_by_if.entry(key.ifname()).or_default() += delta;
            }
        }
        batch.targets
    }

    /// Hot standby: the leader wrote `key` (`None`: deleted); that is what APPL_DB holds now.
    /// The key is due a write only while what it should hold differs.
    pub fn observe(&mut self, key: NeighKey, told: Option<Told>, now_ns: u64) {
        let slot = self.appl.get_or_insert_with(key, Default::default);
        let old = slot.told;
        slot.told = told;
        let settled = match (slot.desired, told) {
            (Some(w), Some(Told::Value(h))) => w == h,
            (None, None) => true,
            _ => false,
        };
        let idle = slot.idle();
        self.count_told(old, told);
        let delta = i64::from(told.is_some()) - i64::from(old.is_some());
        if delta != 0 {
            *self.told_by_if.entry(key.ifname()).or_default() += delta;
        }
        if !settled {
            self.mark(key, now_ns);
        } else if idle {
            self.appl.remove(&key);
        }
    }

    /// Hot standby: forgets the due keys that need no write any more (the leader wrote what
    /// they should hold), so that what is pending is what a takeover would write.
    pub fn drop_settled(&mut self) {
        let mut at = 0;
        while let Some(i) = self.appl.next_flagged(at) {
            at = i + 1;
            let Some((_, slot)) = self.appl.entry_at_mut(i) else {
                continue;
            };
            let settled = match (slot.desired, slot.told) {
                (Some(w), Some(Told::Value(h))) => w == h,
                (None, None) => true,
                _ => false,
            };
            if settled {
                slot.dirty = false;
                self.appl.unflag_at(i);
            }
        }
        self.appl.retain(|_, s| !s.idle());
    }

    /// The batch failed: its keys stay dirty (route deletes are retried too).
    pub fn abort(&mut self, batch: Batch) {
        for (key, _, since) in batch.targets {
            self.mark(key, since);
        }
        for op in batch.route_dels {
            if let Op::Del { key } = op {
                self.route_dels.push(key);
            }
        }
    }

    /// APPL_DB entries per interface (interfaces that had some keep a zero).
    pub fn told_by_interface(&self) -> &HashMap<IfName, i64> {
        &self.told_by_if
    }

    /// Neighbors APPL_DB holds, by family (IPv4, IPv6).
    pub fn told_counts(&self) -> (usize, usize) {
        self.told_by_family
    }
}
