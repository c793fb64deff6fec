//! A hash map for a million entries: the entries sit densely in fixed chunks, and the hash
//! table holds only their 4-byte positions.
//!
//! A `HashMap` keeps its entries in its buckets, and its buckets double: at a million 72-byte
//! entries it holds two million buckets, 150 MB for 72 MB of entries. Here the buckets are 5
//! bytes (a position and a control byte) and the entries take what they need, in chunks of
//! [`CHUNK`] that never move once allocated (growing never copies the table). A removal moves
//! the last entry into the hole, so the entries stay dense.

use std::fmt;
use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;

/// Entries per chunk.
const CHUNK: usize = 4096;

pub struct DenseMap<K, V> {
    chunks: Vec<Vec<(K, V)>>,
    len: usize,
    index: HashTable<u32>,
    hasher: foldhash::fast::RandomState,
    /// Bit `i`: the entry at position `i` is flagged.
    flags: Vec<u64>,
    flagged: usize,
}

impl<K, V> Default for DenseMap<K, V> {
    fn default() -> Self {
        DenseMap {
            chunks: Vec::new(),
            len: 0,
            index: HashTable::new(),
            hasher: foldhash::fast::RandomState::default(),
            flags: Vec::new(),
            flagged: 0,
        }
    }
}

impl<K, V> fmt::Debug for DenseMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DenseMap({} entries)", self.len)
    }
}

impl<K: Hash + Eq, V> DenseMap<K, V> {
    pub fn len(&self) -> usize {
        self.len
    }

    fn at(&self, i: u32) -> &(K, V) {
        let i = i as usize;
        &self.chunks[i / CHUNK][i % CHUNK]
    }

    fn at_mut(&mut self, i: u32) -> &mut (K, V) {
        let i = i as usize;
        &mut self.chunks[i / CHUNK][i % CHUNK]
    }

    fn position(&self, k: &K) -> Option<u32> {
        let hash = self.hasher.hash_one(k);
        self.index.find(hash, |&i| self.at(i).0 == *k).copied()
    }

    pub fn get(&self, k: &K) -> Option<&V> {
        self.position(k).map(|i| &self.at(i).1)
    }

    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        let i = self.position(k)?;
        Some(&mut self.at_mut(i).1)
    }

    /// The value at `k`, inserted with `f` if there is none.
    pub fn get_or_insert_with(&mut self, k: K, f: impl FnOnce() -> V) -> &mut V {
        let i = self.position_or_insert_with(k, f);
        &mut self.at_mut(i).1
    }

    /// The position of `k`, inserted with `f` if it is not there.
    pub fn position_or_insert_with(&mut self, k: K, f: impl FnOnce() -> V) -> u32 {
        match self.position(&k) {
            Some(i) => i,
            None => self.push(k, f()),
        }
    }

    /// How many entries are flagged.
    pub fn flagged(&self) -> usize {
        self.flagged
    }

    fn bit(i: u32) -> (usize, u64) {
        (i as usize / 64, 1 << (i % 64))
    }

    /// Flags the entry at `i` (a position below `len`); false if it already was.
    pub fn flag_at(&mut self, i: u32) -> bool {
        let (w, b) = Self::bit(i);
        match self.flags.get_mut(w) {
            Some(x) if *x & b == 0 && (i as usize) < self.len => {
                *x |= b;
                self.flagged += 1;
                true
            }
            _ => false,
        }
    }

    /// Clears the entry at `i`'s flag; false if it had none.
    pub fn unflag_at(&mut self, i: u32) -> bool {
        let (w, b) = Self::bit(i);
        match self.flags.get_mut(w) {
            Some(x) if *x & b != 0 => {
                *x &= !b;
                self.flagged -= 1;
                true
            }
            _ => false,
        }
    }

    /// The first flagged position at or after `from`.
    pub fn next_flagged(&self, from: u32) -> Option<u32> {
        if self.flagged == 0 {
            return None;
        }
        let (mut w, _) = Self::bit(from);
        let mut word = self.flags.get(w)? & (u64::MAX << (from % 64));
        loop {
            if word != 0 {
                return Some((w * 64) as u32 + word.trailing_zeros());
            }
            w += 1;
            word = *self.flags.get(w)?;
        }
    }

    /// The entry at position `i`, to change its value.
    pub fn entry_at_mut(&mut self, i: u32) -> Option<(&K, &mut V)> {
        let i = i as usize;
        let (k, v) = self.chunks.get_mut(i / CHUNK)?.get_mut(i % CHUNK)?;
        Some((&*k, v))
    }

    /// Inserts or replaces; returns the value replaced.
    pub fn insert(&mut self, k: K, v: V) -> Option<V> {
        match self.position(&k) {
            Some(i) => Some(std::mem::replace(&mut self.at_mut(i).1, v)),
            None => {
                self.push(k, v);
                None
            }
        }
    }

    fn push(&mut self, k: K, v: V) -> u32 {
        let i = u32::try_from(self.len).unwrap_or(u32::MAX);
        let hash = self.hasher.hash_one(&k);
        if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        if let Some(c) = self.chunks.last_mut() {
            c.push((k, v));
        }
        self.len += 1;
        if self.flags.len() * 64 < self.len {
            self.flags.push(0);
        }
        let (chunks, hasher) = (&self.chunks, &self.hasher);
        self.index.insert_unique(hash, i, |&j| {
            let j = j as usize;
            hasher.hash_one(&chunks[j / CHUNK][j % CHUNK].0)
        });
        i
    }

    pub fn remove(&mut self, k: &K) -> Option<V> {
        let hash = self.hasher.hash_one(k);
        let chunks = &self.chunks;
        let found = self.index.find_entry(hash, |&i| {
            let i = i as usize;
            chunks[i / CHUNK][i % CHUNK].0 == *k
        });
        let (i, _) = found.ok()?.remove();
        self.take(i)
    }

    /// Takes the entry at `i` out of the chunks (its index bucket is already gone): the last
    /// entry moves into its place, and its bucket is told so.
    fn take(&mut self, i: u32) -> Option<V> {
        let tail = self.chunks.last_mut().and_then(Vec::pop)?;
        if self.chunks.last().is_some_and(Vec::is_empty) {
            self.chunks.pop();
        }
        self.len -= 1;
        let last = u32::try_from(self.len).unwrap_or(u32::MAX);
        // The flag goes with its entry: the one at `i` leaves, the last one moves to `i`.
        self.unflag_at(i);
        if self.unflag_at(last) {
            self.flag_at(i);
        }
        if self.flags.len() > self.len.div_ceil(64) + 1 {
            self.flags.truncate(self.len.div_ceil(64));
        }
        if i == last {
            return Some(tail.1);
        }
        let moved_hash = self.hasher.hash_one(&tail.0);
        let (_, v) = std::mem::replace(self.at_mut(i), tail);
        if let Some(slot) = self.index.find_mut(moved_hash, |&j| j == last) {
            *slot = i;
        }
        Some(v)
    }

    /// The entry at position `i` (0..len). A removal moves the last entry into the hole, so
    /// a walk from the last position down can remove what it visits and still visit every
    /// entry once.
    pub fn entry_at(&self, i: usize) -> Option<(&K, &V)> {
        let (k, v) = self.chunks.get(i / CHUNK)?.get(i % CHUNK)?;
        Some((k, v))
    }

    /// Removes every entry, and gives the memory back.
    pub fn clear(&mut self) {
        *self = DenseMap {
            hasher: self.hasher.clone(),
            ..DenseMap::default()
        };
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.chunks.iter().flatten().map(|(k, v)| (k, v))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> {
        self.chunks.iter_mut().flatten().map(|(k, v)| (&*k, v))
    }

    /// Keeps the entries `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        let mut i = self.len;
        while i > 0 {
            i -= 1;
            let at = i as u32;
            let (k, v) = self.at_mut(at);
            if keep(k, v) {
                continue;
            }
            let hash = self.hasher.hash_one(&self.at(at).0);
            if let Ok(bucket) = self.index.find_entry(hash, |&j| j == at) {
                bucket.remove();
            }
            self.take(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// The same operations on a `HashMap` and a dense map leave the same entries.
        #[test]
        fn behaves_as_a_hash_map(ops in prop::collection::vec((0u8..7, 0u32..3000, any::<u16>()), 1..12_000)) {
            let mut want = HashMap::new();
            let mut want_flagged = std::collections::HashSet::new();
            let mut got = DenseMap::default();
            for (op, k, v) in ops {
                match op {
                    5 => {
                        if let Some(i) = got.position(&k) {
                            prop_assert_eq!(got.flag_at(i), want_flagged.insert(k));
                        }
                    }
                    6 => {
                        if let Some(i) = got.position(&k) {
                            prop_assert_eq!(got.unflag_at(i), want_flagged.remove(&k));
                        }
                    }
                    0 | 1 => prop_assert_eq!(got.insert(k, v), want.insert(k, v)),
                    2 => {
                        let g = got.get_or_insert_with(k, || v);
                        *g = g.wrapping_add(1);
                        let w = want.entry(k).or_insert(v);
                        *w = w.wrapping_add(1);
                    }
                    3 => prop_assert_eq!(got.remove(&k), want.remove(&k)),
                    _ => {
                        got.retain(|k, _| k % 7 != v as u32 % 7);
                        want.retain(|k, _| k % 7 != v as u32 % 7);
                    }
                }
                want_flagged.retain(|k| want.contains_key(k));
                prop_assert_eq!(got.get(&k), want.get(&k));
                prop_assert_eq!(got.len(), want.len());
                prop_assert_eq!(got.flagged(), want_flagged.len());
            }
            // The flags moved with their entries.
            let mut flagged = Vec::new();
            let mut from = 0;
            while let Some(i) = got.next_flagged(from) {
                flagged.push(got.at(i).0);
                from = i + 1;
            }
            flagged.sort();
            let mut expect_flagged: Vec<_> = want_flagged.into_iter().collect();
            expect_flagged.sort();
            prop_assert_eq!(flagged, expect_flagged);
            let mut all: Vec<_> = got.iter().map(|(k, v)| (*k, *v)).collect();
            all.sort();
            let mut expect: Vec<_> = want.into_iter().collect();
            expect.sort();
            prop_assert_eq!(all, expect);
        }
    }

    #[test]
    fn a_walk_down_by_position_can_remove_what_it_visits() {
        let mut m = DenseMap::default();
        for k in 0..2 * CHUNK as u32 + 7 {
            m.insert(k, k);
        }
        let mut visited = Vec::new();
        for i in (0..m.len()).rev() {
            let Some((&k, _)) = m.entry_at(i) else {
                panic!("position {i} of {} is empty", m.len());
            };
            visited.push(k);
            if k % 3 != 0 {
                m.remove(&k);
            }
        }
        visited.sort();
        assert_eq!(visited, (0..2 * CHUNK as u32 + 7).collect::<Vec<_>>());
        assert!(m.iter().all(|(k, _)| k % 3 == 0));
        assert_eq!(m.len(), (2 * CHUNK + 7).div_ceil(3));
        assert_eq!(m.entry_at(m.len()), None);
    }

    #[test]
    fn entries_fill_chunks_densely() {
        let mut m = DenseMap::default();
        for k in 0..3 * CHUNK as u32 + 1 {
            m.insert(k, ());
        }
        for k in 0..CHUNK as u32 {
            m.remove(&k);
        }
        assert_eq!(m.len(), 2 * CHUNK + 1);
        assert_eq!(m.chunks.len(), 3);
        assert!((0..3 * CHUNK as u32 + 1).all(|k| m.get(&k).is_some() == (k >= CHUNK as u32)));
    }
}
