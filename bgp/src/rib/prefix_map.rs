//! A map keyed by prefix, split per family so IPv4 keys take 5 bytes, not
//! the 18 of an `IpNet`: with a million routes the key width decides the
//! table size. Hashing is a seeded multiply-fold, several times cheaper
//! than SipHash on these tiny keys; the per-process random seed keeps a
//! peer from precomputing colliding prefixes.

use super::sharded::Sharded;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

const K1: u64 = 0x9E37_79B9_7F4A_7C15;
const K2: u64 = 0xD6E8_FEB8_6659_FD93;

fn fold(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

#[derive(Clone, Copy)]
pub struct SeededState(u64);

impl Default for SeededState {
    fn default() -> Self {
        SeededState(RandomState::new().hash_one(0x7ab))
    }
}

impl BuildHasher for SeededState {
    type Hasher = FoldHasher;
    fn build_hasher(&self) -> FoldHasher {
        FoldHasher(self.0)
    }
}

pub struct FoldHasher(u64);

impl FoldHasher {
    fn add(&mut self, x: u64) {
        self.0 = fold(self.0 ^ x, K1);
    }
}

impl Hasher for FoldHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        fold(self.0, K2)
    }
}

pub type FastMap<K, V> = HashMap<K, V, SeededState>;

pub struct PrefixMap<V> {
    v4: Sharded<Ipv4Net, V>,
    v6: FastMap<Ipv6Net, V>,
}

impl<V> Default for PrefixMap<V> {
    fn default() -> Self {
        PrefixMap {
            v4: Sharded::default(),
            v6: FastMap::default(),
        }
    }
}

impl<V> PrefixMap<V> {
    pub fn get(&self, k: &IpNet) -> Option<&V> {
        match k {
            IpNet::V4(n) => self.v4.get(n),
            IpNet::V6(n) => self.v6.get(n),
        }
    }

    pub fn get_mut(&mut self, k: &IpNet) -> Option<&mut V> {
        match k {
            IpNet::V4(n) => self.v4.get_mut(n),
            IpNet::V6(n) => self.v6.get_mut(n),
        }
    }

    pub fn insert(&mut self, k: IpNet, v: V) -> Option<V> {
        match k {
            IpNet::V4(n) => self.v4.insert(n, v),
            IpNet::V6(n) => self.v6.insert(n, v),
        }
    }

    pub fn remove(&mut self, k: &IpNet) -> Option<V> {
        match k {
            IpNet::V4(n) => self.v4.remove(n),
            IpNet::V6(n) => self.v6.remove(n),
        }
    }

    pub fn get_or_default(&mut self, k: IpNet) -> &mut V
    where
        V: Default,
    {
        match k {
            IpNet::V4(n) => self.v4.entry(n).or_default(),
            IpNet::V6(n) => self.v6.entry(n).or_default(),
        }
    }

    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&mut self) {
        self.v4 = Sharded::default();
        self.v6 = FastMap::default();
    }

    pub fn iter(&self) -> impl Iterator<Item = (IpNet, &V)> {
        let v4 = self.v4.iter().map(|(k, v)| (IpNet::V4(*k), v));
        let v6 = self.v6.iter().map(|(k, v)| (IpNet::V6(*k), v));
        v4.chain(v6)
    }
}
