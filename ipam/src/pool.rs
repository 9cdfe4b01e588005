//! Which pools a request may draw from, and the order in which a host
//! searches a pool for a free block.

use crate::selector::Selector;
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// IPPool.allowedUses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    Workload,
    Tunnel,
}

impl fmt::Display for Use {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Use::Workload => "Workload",
            Use::Tunnel => "Tunnel",
        })
    }
}

/// The IPAM view of an IPPool; the agent translates IPPool resources into
/// these.
#[derive(Debug, Clone)]
pub struct Pool {
    pub name: String,
    pub cidr: IpNet,
    pub block_size: u8,
    pub node_selector: Selector,
    pub disabled: bool,
    pub allowed_uses: Vec<Use>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("IP pool {0} does not exist")]
    NoSuchPool(IpNet),
    #[error("IP pool {pool} ({name}) is disabled")]
    Disabled { pool: IpNet, name: String },
    #[error("IP pool {pool} ({name}) does not select node {node} (nodeSelector: {selector})")]
    NotSelected {
        pool: IpNet,
        name: String,
        node: String,
        selector: String,
    },
    #[error("IP pool {pool} ({name}) does not allow {requested} addresses")]
    UseNotAllowed {
        pool: IpNet,
        name: String,
        requested: Use,
    },
    #[error("no enabled IPv{family} pool selects node {node} for {requested} addresses")]
    NoPool {
        family: u8,
        node: String,
        requested: Use,
    },
}

impl Pool {
    pub fn is_v6(&self) -> bool {
        self.cidr.addr().is_ipv6()
    }

    fn allows(&self, u: Use) -> bool {
        self.allowed_uses.is_empty() || self.allowed_uses.contains(&u)
    }

    /// The block of this pool that holds `ip`.
    pub fn block_of(&self, ip: IpAddr) -> Option<IpNet> {
        if !self.cidr.contains(&ip) {
            return None;
        }
        IpNet::new(ip, self.block_size).ok().map(|n| n.trunc())
    }

    /// Every block of the pool, starting at an offset derived from the host
    /// name and wrapping around. Hosts start in different places, so they
    /// rarely race for the same free block, and a host that restarts looks
    /// where it looked before (Calico seeds its block search the same way).
    pub fn block_search_order(&self, host: &str) -> impl Iterator<Item = IpNet> + '_ {
        let host_bits = self.cidr.max_prefix_len() - self.block_size;
        let block_bits = self.block_size.saturating_sub(self.cidr.prefix_len());
        // Pools with more than 2^64 blocks (IPv6) are searched in the first
        // 2^64; no host will claim more than that.
        let count: u128 = 1u128 << block_bits.min(64);
        let start = u128::from(fnv1a(host.as_bytes())) % count;
        let base = match self.cidr.network() {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        };
        let v6 = self.is_v6();
        let size = self.block_size;
        (0..count).filter_map(move |i| {
            let idx = (start + i) % count;
            let addr = base + (idx << host_bits);
            let ip = if v6 {
                IpAddr::V6(addr.into())
            } else {
                IpAddr::V4(u32::try_from(addr).ok()?.into())
            };
            IpNet::new(ip, size).ok()
        })
    }
}

pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// The pools a request for `requested` addresses of one family may use, in
/// order. With `explicit` pools (CNI `ipv4_pools`), exactly those, each of
/// which must exist, be enabled, select the node and allow the use — a
/// request that names a pool gets an error saying why it can't have it,
/// never an address from somewhere else. Without, every enabled pool of
/// the family that selects the node and allows the use.
pub fn select_pools<'a>(
    pools: &'a [Pool],
    node: &str,
    labels: &BTreeMap<String, String>,
    requested: Use,
    v6: bool,
    explicit: &[IpNet],
) -> Result<Vec<&'a Pool>, PoolError> {
    if !explicit.is_empty() {
        return explicit
            .iter()
            .map(|want| {
                let p = pools
                    .iter()
                    .find(|p| p.cidr == *want)
                    .ok_or(PoolError::NoSuchPool(*want))?;
                if p.disabled {
                    return Err(PoolError::Disabled {
                        pool: p.cidr,
                        name: p.name.clone(),
                    });
                }
                if !p.node_selector.matches(labels) {
                    return Err(PoolError::NotSelected {
                        pool: p.cidr,
                        name: p.name.clone(),
                        node: node.to_string(),
                        selector: p.node_selector.to_string(),
                    });
                }
                if !p.allows(requested) {
                    return Err(PoolError::UseNotAllowed {
                        pool: p.cidr,
                        name: p.name.clone(),
                        requested,
                    });
                }
                Ok(p)
            })
            .collect();
    }
    let found: Vec<&Pool> = pools
        .iter()
        .filter(|p| {
            p.is_v6() == v6 && !p.disabled && p.allows(requested) && p.node_selector.matches(labels)
        })
        .collect();
    if found.is_empty() {
        return Err(PoolError::NoPool {
            family: if v6 { 6 } else { 4 },
            node: node.to_string(),
            requested,
        });
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn pool(name: &str, cidr: &str, bs: u8, sel: &str) -> Pool {
        Pool {
            name: name.into(),
            cidr: cidr.parse().unwrap(),
            block_size: bs,
            node_selector: sel.parse().unwrap(),
            disabled: false,
            allowed_uses: vec![],
        }
    }

    fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn search_order_covers_every_block_once_from_a_host_offset() {
        let p = pool("p", "10.0.0.0/22", 26, "all()");
        let a: Vec<IpNet> = p.block_search_order("node-a").collect();
        let b: Vec<IpNet> = p.block_search_order("node-b").collect();
        assert_eq!(a.len(), 16);
        assert_eq!(a.iter().collect::<HashSet<_>>().len(), 16);
        assert!(a.iter().all(|n| p.cidr.contains(n) && n.prefix_len() == 26));
        assert_eq!(a, p.block_search_order("node-a").collect::<Vec<_>>());
        let mut sa = a.clone();
        let mut sb = b.clone();
        sa.sort();
        sb.sort();
        assert_eq!(sa, sb);
        let v6 = pool("v6", "fd00::/120", 122, "all()");
        assert_eq!(v6.block_search_order("n").count(), 4);
        assert_eq!(
            p.block_of("10.0.1.77".parse().unwrap()),
            Some("10.0.1.64/26".parse().unwrap())
        );
    }

    #[test]
    fn selection_by_family_selector_use_and_explicit_request() {
        let mut pools = vec![
            pool("a", "10.1.0.0/16", 26, "all()"),
            pool("rack", "10.2.0.0/16", 26, "rack == 'r1'"),
            pool("v6", "fd00::/48", 122, "all()"),
            pool("off", "10.3.0.0/16", 26, "all()"),
        ];
        pools[3].disabled = true;
        pools[0].allowed_uses = vec![Use::Tunnel];
        let r1 = labels(&[("rack", "r1")]);
        let names = |v: Vec<&Pool>| v.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(select_pools(&pools, "n", &r1, Use::Workload, false, &[]).unwrap()),
            ["rack"]
        );
        assert_eq!(
            names(select_pools(&pools, "n", &r1, Use::Tunnel, false, &[]).unwrap()),
            ["a", "rack"]
        );
        assert_eq!(
            names(select_pools(&pools, "n", &r1, Use::Workload, true, &[]).unwrap()),
            ["v6"]
        );
        assert!(matches!(
            select_pools(&pools, "n", &labels(&[]), Use::Workload, false, &[]),
            Err(PoolError::NoPool { family: 4, .. })
        ));
        let e = select_pools(
            &pools,
            "n2",
            &labels(&[]),
            Use::Workload,
            false,
            &["10.2.0.0/16".parse().unwrap()],
        )
        .unwrap_err();
        assert!(e.to_string().contains("does not select node n2"), "{e}");
        assert!(matches!(
            select_pools(
                &pools,
                "n",
                &r1,
                Use::Workload,
                false,
                &["10.3.0.0/16".parse().unwrap()]
            ),
            Err(PoolError::Disabled { .. })
        ));
        assert!(matches!(
            select_pools(
                &pools,
                "n",
                &r1,
                Use::Workload,
                false,
                &["10.9.0.0/16".parse().unwrap()]
            ),
            Err(PoolError::NoSuchPool(_))
        ));
    }
}
