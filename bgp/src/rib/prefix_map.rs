//! A map keyed by prefix, split per family so IPv4 keys take 5 bytes, not
//! the 18 of an `IpNet`: with a million routes the key width decides the
//! table size. Both halves hash with [`super::fast_hash`].

use super::fast_hash::FastMap;
use super::sharded::Sharded;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

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
