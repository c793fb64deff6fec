//! The APPL_DB side: what it was told (read back, written, failed), and the batches of writes
//! that bring it to what it should hold.

use super::*;

impl State {
    /// APPL_DB was read back (start, reconnect, audit): that is now what it was told. Every
    /// key either side knows is re-examined. With `seed_desired` (at start, when we know
    /// nothing yet), what APPL_DB holds is also taken as the starting point of `desired`, so
    /// the first dump replays on top of it exactly as events would: entries the rules skip keep
    /// their value, entries no kernel neighbor accounts for are deleted at the dump's end.
    ///
    /// Returns how many keys APPL_DB held differently from what we believed (drift).
    pub fn replace_told(
        &mut self,
        told: HashMap<String, Told>,
        seed_desired: bool,
        now_ns: u64,
    ) -> usize {
        let drift = told
            .iter()
            .filter(|(k, t)| self.told.get(*k) != Some(*t))
            .count()
            + self.told.keys().filter(|k| !told.contains_key(*k)).count();
        if seed_desired {
            for (k, t) in &told {
                if let Told::Value(v) = t {
                    self.desired.entry(k.clone()).or_insert(*v);
                }
            }
        }
        self.told = told;
        for n in self.told_by_if.values_mut() {
            *n = 0;
        }
        for k in self.told.keys() {
            *self.told_by_if.entry(ifname_of(k).to_string()).or_default() += 1;
        }
        let keys: Vec<String> = self
            .desired
            .keys()
            .chain(self.told.keys())
            .cloned()
            .collect();
        for k in keys {
            self.mark(k, now_ns);
        }
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
        let keys: Vec<String> = self.dirty.keys().take(max).cloned().collect();
        for key in keys {
            let Some(since) = self.dirty.remove(&key) else {
                continue;
            };
            let want = self.desired.get(&key).copied();
            let have = self.told.get(&key).copied();
            let op = match (want, have) {
                (Some(w), Some(Told::Value(h))) if w == h => None,
                (None, None) => None,
                (Some(w), _) => Some(Op::Set {
                    key: key.clone(),
                    fields: w
                        .fields()
                        .into_iter()
                        .map(|(f, v)| (f.to_string(), v))
                        .collect(),
                }),
                (None, Some(_)) => Some(Op::Del { key: key.clone() }),
            };
            match op {
                Some(op) => {
                    batch.ops.push(op);
                    batch.targets.push((key, want, since));
                }
                None => noop += 1,
            }
        }
        (batch, noop)
    }

    /// The batch is in APPL_DB. Returns (key, value now held, dirty-since time) per operation.
    pub fn commit(&mut self, batch: Batch) -> Vec<(String, Option<NeighValue>, u64)> {
        for (key, value, _) in &batch.targets {
            let had = match value {
                Some(v) => self.told.insert(key.clone(), Told::Value(*v)),
                None => self.told.remove(key),
            }
            .is_some();
            let delta = i64::from(value.is_some()) - i64::from(had);
            if delta != 0 {
                *self
                    .told_by_if
                    .entry(ifname_of(key).to_string())
                    .or_default() += delta;
            }
        }
        batch.targets
    }

    /// The batch failed: its keys stay dirty (route deletes are retried too).
    pub fn abort(&mut self, batch: Batch) {
        for (key, _, t) in batch.targets {
            self.dirty.entry(key).or_insert(t);
        }
        for op in batch.route_dels {
            if let Op::Del { key } = op {
                self.route_dels.push(key);
            }
        }
    }

    /// APPL_DB entries per interface (interfaces that had some keep a zero).
    pub fn told_by_interface(&self) -> &HashMap<String, i64> {
        &self.told_by_if
    }

    /// Neighbors APPL_DB holds, by family (IPv4, IPv6).
    pub fn told_counts(&self) -> (usize, usize) {
        self.told.values().fold((0, 0), |(v4, v6), t| match t {
            Told::Value(v) if v.ipv6 => (v4, v6 + 1),
            _ => (v4 + 1, v6),
        })
    }
}
