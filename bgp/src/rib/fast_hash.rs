//! The RIB's hash function: a seeded multiply-fold, several times cheaper
//! than SipHash on the RIB's tiny keys (prefixes, addresses, pointers); the
//! per-process random seed keeps a peer from precomputing colliding
//! prefixes.
//!
//! It is its own module so that both [`super::prefix_map`] and
//! [`super::sharded`] build on it without depending on each other: the
//! prefix map is made of sharded maps, and the shards are `FastMap`s.

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
