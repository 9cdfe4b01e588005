//! A hash map split into shards that grow one at a time. A single
//! `HashMap` doubles in one step, holding the old and the new table at
//! once: at a million routes that transient is ~75 MB on top of a ~85 MB
//! RIB, and it is what peak RSS (VmHWM) records. With 64 shards, filled
//! evenly by hash, each doubling copies 1/64 of the table.

use super::fast_hash::{FastMap, SeededState};
use std::collections::hash_map;
use std::hash::{BuildHasher, Hash};

const SHARD_BITS: u32 = 6;
/// Shard index bits, taken from the middle of the hash: hashbrown uses the
/// low bits for the bucket and the top 7 for its tag, and a shard whose
/// keys all agreed on those would probe badly.
const SHARD_SHIFT: u32 = 40;

pub struct Sharded<K, V> {
    state: SeededState,
    /// Empty until the first insert, so the many small per-operation maps
    /// cost nothing.
    shards: Vec<FastMap<K, V>>,
}

impl<K, V> Default for Sharded<K, V> {
    fn default() -> Self {
        Sharded {
            state: SeededState::default(),
            shards: Vec::new(),
        }
    }
}

impl<K: Hash + Eq, V> Sharded<K, V> {
    fn index(&self, k: &K) -> usize {
        ((self.state.hash_one(k) >> SHARD_SHIFT) & ((1 << SHARD_BITS) - 1)) as usize
    }

    fn shard_mut(&mut self, k: &K) -> &mut FastMap<K, V> {
        if self.shards.is_empty() {
            self.shards.resize_with(1 << SHARD_BITS, FastMap::default);
        }
        let i = self.index(k);
        &mut self.shards[i]
    }

    pub fn get(&self, k: &K) -> Option<&V> {
        self.shards.get(self.index(k))?.get(k)
    }

    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        let i = self.index(k);
        self.shards.get_mut(i)?.get_mut(k)
    }

    pub fn insert(&mut self, k: K, v: V) -> Option<V> {
        self.shard_mut(&k).insert(k, v)
    }

    pub fn remove(&mut self, k: &K) -> Option<V> {
        let i = self.index(k);
        self.shards.get_mut(i)?.remove(k)
    }

    pub fn entry(&mut self, k: K) -> hash_map::Entry<'_, K, V> {
        self.shard_mut(&k).entry(k)
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.len()).sum()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.shards.iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_like_a_map_across_shards() {
        let mut m: Sharded<u32, u32> = Sharded::default();
        assert_eq!(m.get(&1), None);
        assert_eq!(m.remove(&1), None);
        for i in 0..10_000 {
            assert_eq!(m.insert(i, i * 2), None);
        }
        assert_eq!(m.insert(7, 0), Some(14));
        *m.entry(8).or_default() += 1;
        assert_eq!(m.get(&8), Some(&17));
        assert_eq!(m.remove(&9), Some(18));
        assert_eq!(m.len(), 9_999);
        let mut keys: Vec<u32> = m.iter().map(|(k, _)| *k).collect();
        keys.sort_unstable();
        assert_eq!(keys.len(), 9_999);
        assert!(!keys.contains(&9));
        // Every shard got a share: the shard bits are not constant.
        assert!(m.shards.iter().all(|s| s.len() > 50));
    }
}
