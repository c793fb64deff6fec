//! An ordered map kept as sorted chunks of at most [`CHUNK`] entries: what the view pages
//! through by key. Memory is its reason: `BTreeMap`'s nodes hold 11 entries and end half full
//! when keys arrive in order (a burst's addresses do), nearly doubling the view; here a key
//! that lands past the end of the last chunk starts a new chunk, so an in-order burst fills
//! every chunk, and a chunk is split in two only when a key lands inside a full one.

/// Entries per chunk at most: an insert moves at most this many entries within one chunk.
const CHUNK: usize = 256;

/// A key's place in a [`ChunkedMap`]: its chunk, and where in it the key is (`Ok`) or would
/// go (`Err`).
#[derive(Debug, Clone, Copy)]
pub struct Spot {
    chunk: usize,
    at: Result<usize, usize>,
}

pub struct ChunkedMap<K, V> {
    chunks: Vec<Vec<(K, V)>>,
    len: usize,
}

impl<K, V> Default for ChunkedMap<K, V> {
    fn default() -> Self {
        ChunkedMap {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<K: Ord, V> ChunkedMap<K, V> {
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// The chunk that holds `k`, or would: the last whose first key is not above it.
    fn chunk_of(&self, k: &K) -> usize {
        self.chunks
            .partition_point(|c| c.first().is_some_and(|(f, _)| f <= k))
            .saturating_sub(1)
    }

    /// (chunk, position in it): `Ok` where `k` is, `Err` where it would go.
    fn find(&self, k: &K) -> (usize, Result<usize, usize>) {
        let c = self.chunk_of(k);
        match self.chunks.get(c) {
            Some(chunk) => (c, chunk.binary_search_by(|(x, _)| x.cmp(k))),
            None => (0, Err(0)),
        }
    }

    pub fn get(&self, k: &K) -> Option<&V> {
        match self.find(k) {
            (c, Ok(i)) => Some(&self.chunks[c][i].1),
            _ => None,
        }
    }

    /// Where `k` is, or would go: for the `_at` methods, which then need not search again.
    pub fn locate(&self, k: &K) -> Spot {
        let (chunk, at) = self.find(k);
        Spot { chunk, at }
    }

    /// The value at `spot` (from [`ChunkedMap::locate`], the map unchanged since), if the key
    /// was there.
    pub fn at_mut(&mut self, spot: Spot) -> Option<&mut V> {
        let i = spot.at.ok()?;
        Some(&mut self.chunks.get_mut(spot.chunk)?.get_mut(i)?.1)
    }

    /// Inserts or replaces; returns the value replaced.
    #[cfg(test)]
    pub fn insert(&mut self, k: K, v: V) -> Option<V> {
        let spot = self.locate(&k);
        self.insert_at(spot, k, v)
    }

    /// [`ChunkedMap::insert`] at `spot`: `k`'s, from [`ChunkedMap::locate`] with the map
    /// unchanged since.
    pub fn insert_at(&mut self, spot: Spot, k: K, v: V) -> Option<V> {
        let Spot { chunk: c, at } = spot;
        let i = match at {
            Ok(i) => return Some(std::mem::replace(&mut self.chunks[c][i].1, v)),
            Err(i) => i,
        };
        self.len += 1;
        let last = c + 1 == self.chunks.len();
        let Some(len) = self.chunks.get(c).map(Vec::len) else {
            self.chunks.push(vec![(k, v)]);
            return None;
        };
        let next_len = self.chunks.get(c + 1).map(Vec::len);
        let prev_len = c.checked_sub(1).map(|p| self.chunks[p].len());
        // Room in the next chunk for the key and this chunk's entries after it.
        let next_takes_tail = i >= CHUNK / 2 && next_len.is_some_and(|n| n + (len - i) < CHUNK);
        let chunk = &mut self.chunks[c];
        if len < CHUNK {
            chunk.insert(i, (k, v));
        } else if next_takes_tail {
            // Near the end of a full chunk (a key a few places late: the kernel's and APPL_DB's
            // updates of a burst interleave), and the next has room: the key and the tail
            // after it move to the front of the next.
            let (this, rest) = self.chunks.split_at_mut(c + 1);
            let tail = this[c].drain(i..);
            rest[0].splice(0..0, std::iter::once((k, v)).chain(tail));
        } else if next_len.is_some_and(|n| n < CHUNK) {
            // A full chunk hands its last entry to the next rather than splitting: keys that
            // arrive in no order (a dump's) fill chunks well past half.
            if let Some(moved) = chunk.pop() {
                self.chunks[c + 1].insert(0, moved);
            }
            self.chunks[c].insert(i, (k, v));
        } else if prev_len.is_some_and(|p| p < CHUNK) {
            // ... or its first to the previous one (the key itself, if it goes first).
            if i == 0 {
                self.chunks[c - 1].push((k, v));
            } else {
                let moved = chunk.remove(0);
                chunk.insert(i - 1, (k, v));
                self.chunks[c - 1].push(moved);
            }
        } else if last && i >= CHUNK / 2 {
            // Near the end of the last, full chunk: a nearly in-order arrival (the kernel's
            // and APPL_DB's updates of a burst interleave, so a key may come a few places
            // late). The key and the tail after it start the next chunk, leaving this one
            // nearly full rather than both half empty.
            let mut next = Vec::with_capacity(CHUNK);
            next.push((k, v));
            next.extend(chunk.drain(i..));
            self.chunks.push(next);
        } else {
            let mut right = chunk.split_off(CHUNK / 2);
            if i <= CHUNK / 2 {
                chunk.insert(i, (k, v));
            } else {
                right.insert(i - CHUNK / 2, (k, v));
            }
            self.chunks.insert(c + 1, right);
        }
        None
    }

    #[cfg(test)]
    pub fn remove(&mut self, k: &K) -> Option<V> {
        let spot = self.locate(k);
        self.remove_at(spot)
    }

    /// [`ChunkedMap::remove`] at `spot` (from [`ChunkedMap::locate`], the map unchanged since).
    pub fn remove_at(&mut self, spot: Spot) -> Option<V> {
        let Spot {
            chunk: c,
            at: Ok(i),
        } = spot
        else {
            return None;
        };
        self.len -= 1;
        let chunk = &mut self.chunks[c];
        let (_, v) = chunk.remove(i);
        if chunk.is_empty() {
            self.chunks.remove(c);
        } else if chunk.len() < chunk.capacity() / 4 {
            chunk.shrink_to(chunk.len() * 2);
        }
        Some(v)
    }

    /// The entries after `after` (all, with `None`), in key order.
    pub fn after<'a>(&'a self, after: Option<&K>) -> impl Iterator<Item = (&'a K, &'a V)> + 'a {
        let (c, i) = match after {
            None => (0, 0),
            Some(k) => match self.find(k) {
                (c, Ok(i)) => (c, i + 1),
                (c, Err(i)) => (c, i),
            },
        };
        self.chunks
            .iter()
            .skip(c)
            .enumerate()
            .flat_map(move |(n, chunk)| chunk.iter().skip(if n == 0 { i } else { 0 }))
            .map(|(k, v)| (k, v))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The same operations on a `BTreeMap` and on a chunked map leave the same entries, in
        /// the same order, from any starting key.
        #[test]
        fn behaves_as_a_btree_map(ops in prop::collection::vec((0u8..3, 0u32..2000, any::<u16>()), 1..3000)) {
            let mut want = BTreeMap::new();
            let mut got = ChunkedMap::default();
            for (op, k, v) in ops {
                match op {
                    0 | 1 => prop_assert_eq!(got.insert(k, v), want.insert(k, v)),
                    _ => prop_assert_eq!(got.remove(&k), want.remove(&k)),
                }
                prop_assert_eq!(got.get(&k), want.get(&k));
            }
            prop_assert_eq!(got.len(), want.len());
            let all: Vec<_> = got.after(None).map(|(k, v)| (*k, *v)).collect();
            prop_assert_eq!(&all, &want.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>());
            for from in [0u32, 7, 999, 1999, 5000] {
                let got: Vec<_> = got.after(Some(&from)).map(|(k, _)| *k).take(300).collect();
                let want: Vec<_> = want.range(from + 1..).map(|(k, _)| *k).take(300).collect();
                prop_assert_eq!(got, want);
            }
        }
    }

    #[test]
    fn an_in_order_burst_fills_its_chunks() {
        let mut m = ChunkedMap::default();
        for k in 0..10 * CHUNK as u32 {
            m.insert(k, ());
        }
        assert_eq!(m.chunks.len(), 10);
        assert!(m.chunks.iter().all(|c| c.len() == CHUNK));
    }

    /// Keys in no order (a dump's) fill chunks to well past half.
    #[test]
    fn keys_in_no_order_fill_chunks_well() {
        let mut m = ChunkedMap::default();
        let n: u64 = 100 * CHUNK as u64;
        // A permutation of 0..n (n is a power of two; the multiplier is odd).
        for i in 0..n {
            m.insert((i * 2_654_435_761 + 12345) % n, ());
        }
        assert_eq!(m.len(), n as usize);
        let slots: usize = m.chunks.iter().map(Vec::capacity).sum();
        assert!(
            slots <= n as usize * 125 / 100,
            "{slots} slots for {n} entries in {} chunks",
            m.chunks.len()
        );
    }

    /// Keys that come a few places late (the kernel side and the APPL_DB side of a burst
    /// interleave) still leave chunks nearly full.
    #[test]
    fn a_nearly_in_order_burst_nearly_fills_its_chunks() {
        let mut m = ChunkedMap::default();
        let n = 100 * CHUNK as u32;
        // In blocks of ten, the first key of each comes last.
        for block in (0..n).step_by(10) {
            for k in (block + 1..block + 10).chain([block]) {
                if k < n {
                    m.insert(k, ());
                }
            }
        }
        assert_eq!(m.len(), n as usize);
        let slots: usize = m.chunks.iter().map(Vec::capacity).sum();
        assert!(
            slots <= n as usize * 105 / 100,
            "{slots} slots for {n} entries; (len, capacity) of the first chunks: {:?}",
            m.chunks
                .iter()
                .map(|c| (c.len(), c.capacity()))
                .take(12)
                .collect::<Vec<_>>()
        );
    }

    /// Inserts, replacements and removals through a key's located spot, against `BTreeMap`.
    #[test]
    fn located_inserts_and_removals_keep_the_map_ordered() {
        let mut m = ChunkedMap::default();
        let mut model = std::collections::BTreeMap::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for step in 0..40_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = (x % 3000) as u32;
            let spot = m.locate(&k);
            if x.is_multiple_of(3) {
                assert_eq!(
                    m.remove_at(spot),
                    model.remove(&k),
                    "step {step}: remove {k}"
                );
            } else if let Some(v) = m.at_mut(spot) {
                *v = step;
                model.insert(k, step);
            } else {
                assert_eq!(m.insert_at(spot, k, step), None, "step {step}: insert {k}");
                model.insert(k, step);
            }
            assert_eq!(m.len(), model.len());
        }
        let got: Vec<_> = m.after(None).map(|(k, v)| (*k, *v)).collect();
        let want: Vec<_> = model.into_iter().collect();
        assert_eq!(got, want);
        assert!(m.remove(&u32::MAX).is_none());
    }
}
