//! Usage figures for `ipam show`, computed from pools and blocks.

use crate::block::Block;
use crate::pool::Pool;
use crate::store::Config;
use ipnet::IpNet;
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    /// "IP Pool" or "Block", as calicoctl groups them.
    pub grouping: &'static str,
    pub cidr: IpNet,
    pub total: u128,
    pub in_use: u128,
    /// Never handed out: IPv4 pool edges and IPReservation addresses.
    pub reserved: u128,
    /// For blocks: `host:<node>` or empty.
    pub affinity: String,
}

impl UsageRow {
    pub fn free(&self) -> u128 {
        self.total.saturating_sub(self.in_use + self.reserved)
    }
}

fn size(net: &IpNet) -> u128 {
    let bits = u32::from(net.max_prefix_len() - net.prefix_len());
    1u128.checked_shl(bits).unwrap_or(u128::MAX)
}

/// Free addresses inside `net` that are never handed out: the IPv4 edges
/// of its pool and IPReservation addresses. `reserved` is already merged,
/// so overlapping reservations count once; an address assigned before it
/// was reserved counts as in use, not reserved, so that in use + reserved
/// + free = total.
fn reserved_in(net: &IpNet, pool: Option<&Pool>, reserved: &[IpNet], blocks: &[&Block]) -> u128 {
    let mut edges: Vec<IpAddr> = Vec::new();
    if let Some(p) = pool.filter(|p| !p.is_v6()) {
        edges.push(p.cidr.network());
        edges.push(p.cidr.broadcast());
        edges.dedup();
    }
    let is_reserved = |ip: &IpAddr| reserved.iter().any(|r| r.contains(ip));
    let mut n = edges
        .iter()
        .filter(|ip| net.contains(*ip) && !is_reserved(ip))
        .count() as u128;
    for r in reserved {
        if net.contains(r) {
            n += size(r);
        } else if r.contains(net) {
            n += size(net);
        }
    }
    let held = blocks
        .iter()
        .flat_map(|b| {
            b.allocations
                .iter()
                .enumerate()
                .filter(|(_, a)| a.is_some())
                .filter_map(|(ord, _)| b.ip_of(ord as u32))
        })
        .filter(|ip| net.contains(ip) && (is_reserved(ip) || edges.contains(ip)))
        .count() as u128;
    n.saturating_sub(held).min(size(net))
}

/// What [`usage`] calls a block that no pool contains.
pub const NO_POOL: &str = "Block (no IP pool)";

/// One row per pool, followed (with `blocks_too`) by one row per block of
/// that pool, in CIDR order; then, always, one row per block no pool
/// contains (its pool was deleted; it goes once empty), so what they
/// still hold is never hidden.
pub fn usage(pools: &[Pool], blocks: &[Block], cfg: &Config, blocks_too: bool) -> Vec<UsageRow> {
    let mut pools: Vec<&Pool> = pools.iter().collect();
    pools.sort_by_key(|p| p.cidr);
    let reserved = IpNet::aggregate(&cfg.reserved);
    let mut rows = Vec::new();
    let pool_cidrs: Vec<IpNet> = pools.iter().map(|p| p.cidr).collect();
    for p in pools {
        let mut mine: Vec<&Block> = blocks.iter().filter(|b| p.cidr.contains(&b.cidr)).collect();
        mine.sort_by_key(|b| b.cidr);
        rows.push(UsageRow {
            grouping: "IP Pool",
            cidr: p.cidr,
            total: size(&p.cidr),
            in_use: mine.iter().map(|b| u128::from(b.in_use())).sum(),
            reserved: reserved_in(&p.cidr, Some(p), &reserved, &mine),
            affinity: String::new(),
        });
        if blocks_too {
            rows.extend(mine.iter().map(|b| UsageRow {
                grouping: "Block",
                cidr: b.cidr,
                total: u128::from(b.size()),
                in_use: u128::from(b.in_use()),
                reserved: reserved_in(&b.cidr, Some(p), &reserved, &[*b]),
                affinity: b.affinity.clone().unwrap_or_default(),
            }));
        }
    }
    let mut orphans: Vec<&Block> = blocks
        .iter()
        .filter(|b| !pool_cidrs.iter().any(|p| p.contains(&b.cidr)))
        .collect();
    orphans.sort_by_key(|b| b.cidr);
    rows.extend(orphans.into_iter().map(|b| UsageRow {
        grouping: NO_POOL,
        cidr: b.cidr,
        total: u128::from(b.size()),
        in_use: u128::from(b.in_use()),
        reserved: reserved_in(&b.cidr, None, &reserved, &[b]),
        affinity: b.affinity.clone().unwrap_or_default(),
    }));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::Attribute;

    #[test]
    fn pool_and_block_rows_add_up() {
        let pool = Pool {
            name: "p".into(),
            cidr: "10.0.0.0/24".parse().unwrap(),
            block_size: 26,
            node_selector: crate::selector::Selector::all(),
            disabled: false,
            allowed_uses: vec![],
        };
        let mut b = Block::new("10.0.0.0/26".parse().unwrap(), Some("host:n1".into()), 1).unwrap();
        b.assign(5, Attribute::default(), &|_| false);
        let cfg = Config {
            reserved: vec!["10.0.0.128/30".parse().unwrap()],
            ..Config::default()
        };
        let rows = usage(&[pool], &[b], &cfg, true);
        assert_eq!(rows.len(), 2);
        // The unfiltered assign took the pool's network address, so only
        // the broadcast address and the /30 remain reserved.
        assert_eq!(
            (rows[0].total, rows[0].in_use, rows[0].reserved),
            (256, 5, 5)
        );
        assert_eq!(rows[0].free(), 246);
        assert_eq!(rows[1].grouping, "Block");
        assert_eq!(
            (rows[1].total, rows[1].in_use, rows[1].reserved),
            (64, 5, 0)
        );
        assert_eq!(rows[1].affinity, "host:n1");
    }

    #[test]
    fn overlapping_and_already_assigned_reservations_count_once() {
        let pool = Pool {
            name: "p".into(),
            cidr: "10.1.0.0/24".parse().unwrap(),
            block_size: 26,
            node_selector: crate::selector::Selector::all(),
            disabled: false,
            allowed_uses: vec![],
        };
        let mut b = Block::new("10.1.0.0/26".parse().unwrap(), Some("host:n1".into()), 1).unwrap();
        // 10.1.0.0..=10.1.0.3 assigned before the reservation existed.
        b.assign(4, Attribute::default(), &|_| false);
        let cfg = Config {
            reserved: vec![
                "10.1.0.0/29".parse().unwrap(),
                "10.1.0.4/30".parse().unwrap(),
                "10.1.0.5/32".parse().unwrap(),
            ],
            ..Config::default()
        };
        let rows = usage(&[pool], &[b], &cfg, true);
        // /29 = 8 addresses (the pool's network address among them), 4 in use.
        assert_eq!(
            (rows[0].total, rows[0].in_use, rows[0].reserved),
            (256, 4, 4 + 1)
        );
        assert_eq!(rows[0].free(), 256 - 4 - 5);
        assert_eq!(
            (rows[1].in_use, rows[1].reserved, rows[1].free()),
            (4, 4, 56)
        );
    }
}
