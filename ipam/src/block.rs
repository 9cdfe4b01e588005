//! One IPAM block: a blockSize CIDR whose addresses are handed out by
//! ordinal, as Calico's AllocationBlock does.
//!
//! Free ordinals form a FIFO queue: assignment takes from the head, release
//! appends to the tail, so the address that has been free the longest is
//! reused first (a just-released pod IP is not immediately handed to a new
//! pod that stale conntrack or DNS entries could confuse with the old one).
//! Allocations with the same handle and attributes share one attribute
//! entry, and entries no allocation refers to are dropped on release, so a
//! block's stored size stays bounded by its live allocations.

use ipnet::IpNet;
use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error("{cidr}: blocks hold at most 2^16 addresses (prefix /{prefix} is too short)")]
    TooLarge { cidr: IpNet, prefix: u8 },
    #[error("{ip} is not inside block {cidr}")]
    NotInBlock { ip: IpAddr, cidr: IpNet },
    #[error("{ip} is already assigned (handle {handle:?})")]
    AlreadyAssigned { ip: IpAddr, handle: Option<String> },
}

/// Who an allocation belongs to: its handle and free-form attributes
/// (namespace, pod, node, timestamp).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attribute {
    pub handle_id: Option<String>,
    pub secondary: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub cidr: IpNet,
    /// `host:<node>`; None = unaffine.
    pub affinity: Option<String>,
    /// Per ordinal: index into `attributes`, None when free.
    pub allocations: Vec<Option<u32>>,
    /// Free ordinals, oldest-free first.
    pub unallocated: VecDeque<u32>,
    pub attributes: Vec<Attribute>,
    /// Bumped on every change.
    pub sequence_number: u64,
    /// The sequence number at which each allocated ordinal was assigned, so
    /// a release computed from a stale copy can tell the address was
    /// released and reassigned in between.
    pub sequence_for_allocation: BTreeMap<u32, u64>,
    pub deleted: bool,
}

/// Addresses beyond this many per block are refused: Calico's blockSize
/// floor (/20 v4, /116 v6) gives at most 4096, and this leaves headroom
/// without letting a bad spec allocate gigabytes.
const MAX_ORDINALS: u32 = 1 << 16;

impl Block {
    /// A block with every address free, in address order.
    pub fn new(cidr: IpNet, affinity: Option<String>, sequence: u64) -> Result<Block, BlockError> {
        let cidr = cidr.trunc();
        let bits = cidr.max_prefix_len() - cidr.prefix_len();
        if 1u64 << bits.min(63) > u64::from(MAX_ORDINALS) {
            return Err(BlockError::TooLarge {
                cidr,
                prefix: cidr.prefix_len(),
            });
        }
        let size = 1u32 << bits;
        Ok(Block {
            cidr,
            affinity,
            allocations: vec![None; size as usize],
            unallocated: (0..size).collect(),
            attributes: Vec::new(),
            sequence_number: sequence,
            sequence_for_allocation: BTreeMap::new(),
            deleted: false,
        })
    }

    pub fn size(&self) -> u32 {
        // new() bounds the length by MAX_ORDINALS, so this cannot truncate.
        self.allocations.len() as u32
    }

    pub fn in_use(&self) -> u32 {
        self.allocations.iter().filter(|a| a.is_some()).count() as u32
    }

    pub fn is_empty(&self) -> bool {
        self.in_use() == 0
    }

    /// The node this block is affine to, if it is a host affinity.
    pub fn host(&self) -> Option<&str> {
        self.affinity.as_deref()?.strip_prefix("host:")
    }

    pub fn ordinal_of(&self, ip: IpAddr) -> Option<u32> {
        if !self.cidr.contains(&ip) {
            return None;
        }
        let off = match (ip, self.cidr.network()) {
            (IpAddr::V4(a), IpAddr::V4(n)) => u128::from(u32::from(a) - u32::from(n)),
            (IpAddr::V6(a), IpAddr::V6(n)) => u128::from(a) - u128::from(n),
            _ => return None,
        };
        u32::try_from(off).ok().filter(|o| *o < self.size())
    }

    pub fn ip_of(&self, ordinal: u32) -> Option<IpAddr> {
        if ordinal >= self.size() {
            return None;
        }
        Some(match self.cidr.network() {
            IpAddr::V4(n) => IpAddr::V4((u32::from(n) + ordinal).into()),
            IpAddr::V6(n) => IpAddr::V6((u128::from(n) + u128::from(ordinal)).into()),
        })
    }

    fn attribute_index(&mut self, attr: Attribute) -> u32 {
        if let Some(i) = self.attributes.iter().position(|a| *a == attr) {
            return i as u32;
        }
        self.attributes.push(attr);
        (self.attributes.len() - 1) as u32
    }

    fn take(&mut self, ordinal: u32, attr: u32) {
        self.allocations[ordinal as usize] = Some(attr);
        self.sequence_for_allocation
            .insert(ordinal, self.sequence_number);
    }

    /// Assigns up to `n` free addresses, oldest-free first, skipping those
    /// `skip` rejects (reserved addresses; they stay free, in place).
    pub fn assign(
        &mut self,
        n: usize,
        attr: Attribute,
        skip: &dyn Fn(IpAddr) -> bool,
    ) -> Vec<IpAddr> {
        let mut picked = Vec::new();
        let mut kept = VecDeque::with_capacity(self.unallocated.len());
        while let Some(o) = self.unallocated.pop_front() {
            match self.ip_of(o) {
                Some(ip) if picked.len() < n && !skip(ip) => picked.push((o, ip)),
                _ => kept.push_back(o),
            }
            if picked.len() == n {
                break;
            }
        }
        kept.extend(self.unallocated.drain(..));
        self.unallocated = kept;
        if picked.is_empty() {
            return Vec::new();
        }
        self.sequence_number += 1;
        let idx = self.attribute_index(attr);
        for (o, _) in &picked {
            self.take(*o, idx);
        }
        picked.into_iter().map(|(_, ip)| ip).collect()
    }

    /// Assigns one specific address.
    pub fn assign_ip(&mut self, ip: IpAddr, attr: Attribute) -> Result<(), BlockError> {
        let o = self.ordinal_of(ip).ok_or(BlockError::NotInBlock {
            ip,
            cidr: self.cidr,
        })?;
        if let Some(i) = self.allocations[o as usize] {
            return Err(BlockError::AlreadyAssigned {
                ip,
                handle: self
                    .attributes
                    .get(i as usize)
                    .and_then(|a| a.handle_id.clone()),
            });
        }
        self.unallocated.retain(|u| *u != o);
        self.sequence_number += 1;
        let idx = self.attribute_index(attr);
        self.take(o, idx);
        Ok(())
    }

    /// Who holds `ip`, if anyone.
    pub fn holder(&self, ip: IpAddr) -> Option<&Attribute> {
        let i = (*self.allocations.get(self.ordinal_of(ip)? as usize)?)?;
        self.attributes.get(i as usize)
    }

    pub fn ips_with_handle(&self, handle: &str) -> Vec<IpAddr> {
        self.allocations
            .iter()
            .enumerate()
            .filter_map(|(o, a)| {
                let attr = self.attributes.get((*a)? as usize)?;
                (attr.handle_id.as_deref() == Some(handle))
                    .then(|| self.ip_of(o as u32))
                    .flatten()
            })
            .collect()
    }

    /// Frees the given addresses (those not assigned are ignored) and
    /// returns, for each freed address, the handle it had.
    pub fn release(&mut self, ips: &[IpAddr]) -> Vec<(IpAddr, Option<String>)> {
        let mut freed = Vec::new();
        for ip in ips {
            let Some(o) = self.ordinal_of(*ip) else {
                continue;
            };
            if let Some(i) = self.allocations[o as usize].take() {
                let handle = self
                    .attributes
                    .get(i as usize)
                    .and_then(|a| a.handle_id.clone());
                self.unallocated.push_back(o);
                self.sequence_for_allocation.remove(&o);
                freed.push((*ip, handle));
            }
        }
        if !freed.is_empty() {
            self.sequence_number += 1;
            self.drop_unused_attributes();
        }
        freed
    }

    pub fn release_handle(&mut self, handle: &str) -> Vec<IpAddr> {
        let ips = self.ips_with_handle(handle);
        self.release(&ips).into_iter().map(|(ip, _)| ip).collect()
    }

    /// Removes attribute entries no allocation refers to and renumbers the
    /// rest.
    fn drop_unused_attributes(&mut self) {
        let mut used = vec![false; self.attributes.len()];
        for i in self.allocations.iter().flatten() {
            if let Some(u) = used.get_mut(*i as usize) {
                *u = true;
            }
        }
        let mut remap = vec![None; self.attributes.len()];
        let mut next = 0u32;
        for (i, u) in used.iter().enumerate() {
            if *u {
                remap[i] = Some(next);
                next += 1;
            }
        }
        let mut i = 0;
        self.attributes.retain(|_| {
            let keep = used[i];
            i += 1;
            keep
        });
        for a in self.allocations.iter_mut() {
            *a = a.and_then(|i| remap.get(i as usize).copied().flatten());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn attr(h: &str) -> Attribute {
        Attribute {
            handle_id: Some(h.to_string()),
            secondary: BTreeMap::new(),
        }
    }

    fn no_skip(_: IpAddr) -> bool {
        false
    }

    #[test]
    fn fifo_reuse_and_ordinals() {
        let mut b = Block::new("10.0.0.0/30".parse().unwrap(), None, 1).unwrap();
        assert_eq!(b.size(), 4);
        let got = b.assign(2, attr("a"), &no_skip);
        assert_eq!(
            got,
            [
                "10.0.0.0".parse::<IpAddr>().unwrap(),
                "10.0.0.1".parse().unwrap()
            ]
        );
        b.release(&["10.0.0.0".parse().unwrap()]);
        // The longest-free addresses (.2, .3) come before the just-released .0.
        let next = b.assign(3, attr("b"), &no_skip);
        let want: Vec<IpAddr> = ["10.0.0.2", "10.0.0.3", "10.0.0.0"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(next, want);
        assert_eq!(b.in_use(), 4);
        assert!(b.assign(1, attr("c"), &no_skip).is_empty());
    }

    #[test]
    fn skipped_addresses_stay_free_in_place() {
        let mut b = Block::new("10.0.0.0/30".parse().unwrap(), None, 1).unwrap();
        let net: IpAddr = "10.0.0.0".parse().unwrap();
        let got = b.assign(4, attr("a"), &|ip| ip == net);
        assert_eq!(got.len(), 3);
        assert!(!got.contains(&net));
        assert_eq!(b.unallocated, [0]);
    }

    #[test]
    fn specific_ip_and_errors() {
        let mut b = Block::new("fd00::/126".parse().unwrap(), Some("host:n1".into()), 1).unwrap();
        assert_eq!(b.host(), Some("n1"));
        let ip: IpAddr = "fd00::2".parse().unwrap();
        b.assign_ip(ip, attr("x")).unwrap();
        assert_eq!(
            b.assign_ip(ip, attr("y")),
            Err(BlockError::AlreadyAssigned {
                ip,
                handle: Some("x".into())
            })
        );
        assert!(matches!(
            b.assign_ip("fd01::1".parse().unwrap(), attr("y")),
            Err(BlockError::NotInBlock { .. })
        ));
        assert!(!b.assign(4, attr("z"), &no_skip).contains(&ip));
        assert!(Block::new("10.0.0.0/8".parse().unwrap(), None, 0).is_err());
    }

    #[test]
    fn attributes_are_shared_and_garbage_collected() {
        let mut b = Block::new("10.0.0.0/28".parse().unwrap(), None, 1).unwrap();
        b.assign(2, attr("a"), &no_skip);
        b.assign(1, attr("b"), &no_skip);
        b.assign(1, attr("a"), &no_skip);
        assert_eq!(b.attributes.len(), 2);
        assert_eq!(b.release_handle("a").len(), 3);
        assert_eq!(b.attributes, [attr("b")]);
        let ip = b.ips_with_handle("b")[0];
        assert_eq!(b.holder(ip), Some(&attr("b")));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Assign(u8, u8),
        ReleaseHandle(u8),
        ReleaseIp(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1u8..5, 0u8..6).prop_map(|(n, h)| Op::Assign(n, h)),
            (0u8..6).prop_map(Op::ReleaseHandle),
            any::<u8>().prop_map(Op::ReleaseIp),
        ]
    }

    proptest! {
        /// Against a model (ip -> handle): no address is ever held twice,
        /// every address is inside the block, counts and handles agree, and
        /// the free queue plus the allocations cover each ordinal exactly once.
        #[test]
        fn matches_model(ops in proptest::collection::vec(op(), 1..200)) {
            let mut b = Block::new("10.1.2.0/27".parse().unwrap(), None, 1).unwrap();
            let mut model: HashMap<IpAddr, String> = HashMap::new();
            for op in ops {
                match op {
                    Op::Assign(n, h) => {
                        let h = format!("h{h}");
                        let free_before = b.size() as usize - model.len();
                        let got = b.assign(n as usize, attr(&h), &no_skip);
                        prop_assert_eq!(got.len(), (n as usize).min(free_before));
                        for ip in got {
                            prop_assert!(b.cidr.contains(&ip));
                            prop_assert!(model.insert(ip, h.clone()).is_none(), "{} assigned twice", ip);
                        }
                    }
                    Op::ReleaseHandle(h) => {
                        let h = format!("h{h}");
                        let mut freed = b.release_handle(&h);
                        let mut want: Vec<IpAddr> = model.iter().filter(|(_, v)| **v == h).map(|(k, _)| *k).collect();
                        freed.sort();
                        want.sort();
                        prop_assert_eq!(&freed, &want);
                        model.retain(|_, v| *v != h);
                    }
                    Op::ReleaseIp(o) => {
                        let ip = b.ip_of(u32::from(o) % b.size()).unwrap();
                        let freed = b.release(&[ip]);
                        prop_assert_eq!(freed.first().map(|f| f.0), model.remove(&ip).map(|_| ip));
                    }
                }
                prop_assert_eq!(b.in_use() as usize, model.len());
                let mut seen = vec![0u8; b.size() as usize];
                for o in &b.unallocated { seen[*o as usize] += 1; }
                for (o, a) in b.allocations.iter().enumerate() { if a.is_some() { seen[o] += 1; } }
                prop_assert!(seen.iter().all(|c| *c == 1));
                for (ip, h) in &model {
                    prop_assert_eq!(b.holder(*ip).and_then(|a| a.handle_id.as_deref()), Some(h.as_str()));
                }
            }
        }
    }
}
