//! `route-budget`: how many block routes the cluster needs against the
//! route table that has to hold them (seed 002: an AWS VPC route table of
//! 200 routes filled by per-node block routes), and block sizes that make
//! the count explode — `blockSize: 32` on a /16 is 65536 possible blocks,
//! one route per pod, and `apply` accepts it as Calico does.
//!
//! Every node holds one route per block (its own as a blackhole, the
//! others' via their node), and so does a fabric that carries pod routes.
//! Blocks are claimed as pods arrive, so the count grows with the nodes'
//! pods: the potential is nodes × the blocks a full node needs (capped by
//! IPAMConfig's maxBlocksPerHost and by the pool's own size).

use super::pools::{pools_of, Pool};
use super::{Ctx, Finding};

const CHECK: &str = "route-budget";
/// Kubernetes' default kubelet `maxPods`: what a full node holds.
const MAX_PODS: u64 = 110;
/// Calico's block cap when IPAMConfig's maxBlocksPerHost is 0.
const DEFAULT_MAX_BLOCKS_PER_HOST: u64 = 20;
/// Blocks smaller than this many addresses make routes follow pods rather
/// than nodes (a /29 holds 8: a full node needs 14 of them).
const MIN_BLOCK_ADDRESSES: u64 = 16;

/// What the budget is computed from.
#[derive(Debug, Clone)]
pub(super) struct Inputs {
    /// Each pool with its blockSize and how many nodes its nodeSelector
    /// picks (the nodes that can claim its blocks).
    pub pools: Vec<(Pool, u8, u64)>,
    pub nodes: u64,
    /// Blocks in use (IPAM blocks not deleted, any pool).
    pub blocks: u64,
    /// IPAMConfig maxBlocksPerHost as stored (0: the default).
    pub max_blocks_per_host: u32,
    /// The most addresses any one node has allocated.
    pub busiest_node: u64,
    pub route_limit: Option<u64>,
}

pub async fn check(ctx: &Ctx) -> Vec<Finding> {
    let Some(c) = ctx.cluster() else {
        return Vec::new();
    };
    let mut pools = Vec::new();
    for p in &c.pools {
        let Some(pool) = pools_of(std::slice::from_ref(p), &c.blocks).pop() else {
            continue;
        };
        let bs = p
            .spec
            .block_size
            .unwrap_or(if pool.cidr.addr().is_ipv6() { 122 } else { 26 });
        let selector = p.spec.node_selector.as_deref().unwrap_or("all()");
        // A selector that does not parse was refused at apply; count every
        // node rather than none.
        let nodes = match tabby_ipam::selector::Selector::parse(selector) {
            Ok(sel) => c
                .nodes
                .iter()
                .filter(|n| sel.matches(&n.metadata.labels))
                .count(),
            Err(_) => c.nodes.len(),
        };
        pools.push((pool, bs, nodes as u64));
    }
    let mut per_node = std::collections::BTreeMap::<&str, u64>::new();
    let live = c.blocks.iter().filter(|b| !b.spec.deleted);
    for b in live.clone() {
        if let Some(n) = b
            .spec
            .affinity
            .as_deref()
            .and_then(|a| a.strip_prefix("host:"))
        {
            *per_node.entry(n).or_default() +=
                b.spec.allocations.iter().filter(|a| a.is_some()).count() as u64;
        }
    }
    findings(&Inputs {
        pools,
        nodes: c.nodes.len() as u64,
        blocks: live.count() as u64,
        max_blocks_per_host: c
            .ipam_config
            .as_ref()
            .map_or(0, |i| i.spec.max_blocks_per_host),
        busiest_node: per_node.values().copied().max().unwrap_or(0),
        route_limit: ctx.opts.route_limit,
    })
}

/// Addresses in one block of `bs` in a pool of `pool`'s family.
fn block_addresses(pool: &Pool, bs: u8) -> u64 {
    let bits = u32::from(pool.cidr.max_prefix_len().saturating_sub(bs));
    1u64.checked_shl(bits).unwrap_or(u64::MAX)
}

/// How many blocks of `bs` the pool has room for.
fn pool_blocks(pool: &Pool, bs: u8) -> u64 {
    let bits = u32::from(bs.saturating_sub(pool.cidr.prefix_len()));
    1u64.checked_shl(bits).unwrap_or(u64::MAX)
}

impl Inputs {
    fn cap(&self) -> u64 {
        match self.max_blocks_per_host {
            0 => DEFAULT_MAX_BLOCKS_PER_HOST,
            n => u64::from(n),
        }
    }

    fn pods(&self) -> u64 {
        MAX_PODS.max(self.busiest_node)
    }

    /// The blocks of `bs` a full node needs, within the per-host cap.
    fn blocks_per_node(&self, pool: &Pool, bs: u8) -> u64 {
        self.pods()
            .div_ceil(block_addresses(pool, bs))
            .min(self.cap())
    }

    /// Routes the pool can come to need: every node it serves full.
    fn potential(&self, pool: &Pool, bs: u8, nodes: u64) -> u64 {
        nodes
            .saturating_mul(self.blocks_per_node(pool, bs))
            .min(pool_blocks(pool, bs))
    }

    /// The largest blockSize (most blocks) whose routes fit `limit` with
    /// every node full; None when the nodes alone are more than the limit.
    fn fitting_block_size(&self, pool: &Pool, nodes: u64, limit: u64) -> Option<u8> {
        let max = pool.cidr.max_prefix_len();
        let floor = if max == 32 { 20 } else { 116 }.max(pool.cidr.prefix_len());
        // No smaller than a block of MIN_BLOCK_ADDRESSES: the warning below.
        let ceiling = max - MIN_BLOCK_ADDRESSES.trailing_zeros() as u8;
        (floor..=ceiling)
            .rev()
            .find(|&bs| self.potential(pool, bs, nodes) <= limit && nodes <= pool_blocks(pool, bs))
    }
}

pub(super) fn findings(i: &Inputs) -> Vec<Finding> {
    let mut out = Vec::new();
    let enabled: Vec<&(Pool, u8, u64)> = i.pools.iter().filter(|(p, _, _)| !p.disabled).collect();
    for (p, bs, nodes) in &enabled {
        let addrs = block_addresses(p, *bs);
        if addrs >= MIN_BLOCK_ADDRESSES {
            continue;
        }
        let need = i.pods().div_ceil(addrs);
        let cap = i.cap();
        let capped = if need > cap {
            format!(
                ", more than the {cap} blocks a node may claim (IPAMConfig maxBlocksPerHost), so a node runs out of addresses at {} pods",
                cap * addrs
            )
        } else {
            String::new()
        };
        let good = i
            .route_limit
            .and_then(|l| i.fitting_block_size(p, (*nodes).max(1), l))
            .unwrap_or(26.max(p.cidr.prefix_len()).min(p.cidr.max_prefix_len()));
        let good = if p.cidr.addr().is_ipv6() && good < 116 {
            122
        } else {
            good
        };
        out.push(
            Finding::warning(
                CHECK,
                format!(
                    "IPPool {} has blockSize {bs}: {addrs} address(es) per block, {} possible blocks in {}; a node with {} pods needs {need} blocks, each a route on every node{capped}",
                    p.name,
                    pool_blocks(p, *bs),
                    p.cidr,
                    i.pods()
                ),
            )
            .evidence(format!(
                "IPPool {} spec.cidr {} spec.blockSize {bs}; {} node(s); maxBlocksPerHost {}",
                p.name, p.cidr, i.nodes, i.max_blocks_per_host
            ))
            .fix(recreate(p, good)),
        );
    }
    let Some(limit) = i.route_limit else {
        return out;
    };
    // The pool that can grow largest decides the potential.
    let worst = enabled
        .iter()
        .map(|(p, bs, nodes)| (p, *bs, *nodes, i.potential(p, *bs, *nodes)))
        .max_by_key(|w| w.3);
    let potential = worst.map_or(0, |w| w.3).max(i.blocks);
    if i.blocks <= limit && potential <= limit {
        return out;
    }
    // Every node needs a block of its own: fit them all.
    let fit = worst.map(|(p, _, _, _)| (p, i.fitting_block_size(p, i.nodes, limit)));
    let fix = match fit {
        Some((p, Some(bs))) => recreate(p, bs),
        Some((p, None)) => {
            // The fewest routes any block size gives: one block per node.
            let least = i
                .fitting_block_size(p, i.nodes, i.nodes)
                .map(|bs| format!(" (blockSize: {bs} brings it down to {}, one per node)", i.nodes))
                .unwrap_or_default();
            format!(
                "{} nodes need at least one block route each, more than the limit of {limit}: raise the route table's limit{least}, or use vxlanMode: Always so the fabric routes node addresses only",
                i.nodes
            )
        }
        None => format!(
            "raise the route table's limit above {}, or use vxlanMode: Always so the fabric routes node addresses only",
            i.blocks
        ),
    };
    let how = worst.map_or(String::new(), |(p, bs, nodes, _)| {
        format!(
            "{nodes} node(s) × {} block(s) of /{bs} for {} pods each in IPPool {}",
            i.blocks_per_node(p, bs),
            i.pods(),
            p.name
        )
    });
    let evidence = format!(
        "{} block(s) in use; potential {potential} ({how}); --route-limit {limit}",
        i.blocks
    );
    let f = if i.blocks > limit {
        Finding::error(
            CHECK,
            format!(
                "{} block routes are in use, more than the route limit of {limit}: the routes past it are not installed and those blocks' pods are unreachable",
                i.blocks
            ),
        )
    } else {
        Finding::warning(
            CHECK,
            format!(
                "the pools can come to need {potential} block routes, more than the route limit of {limit} ({} in use today)",
                i.blocks
            ),
        )
    };
    out.push(f.evidence(evidence).fix(fix));
    out
}

/// blockSize is immutable: the pool is replaced, not edited.
fn recreate(p: &Pool, bs: u8) -> String {
    if p.blocks == 0 {
        format!(
            "tabbyctl delete ippool {}  # nothing was allocated from it; apply it again with blockSize: {bs}",
            p.name
        )
    } else {
        format!(
            "blockSize: {bs} — blockSize is immutable: create a new pool with blockSize: {bs}, set disabled: true on IPPool {} and move its pods, then tabbyctl delete ippool {}",
            p.name, p.name
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::pools::test_pool as pool;
    use super::*;
    use crate::doctor::Severity;

    /// The lab: three nodes, one /26 each in the default pool.
    fn lab(limit: Option<u64>) -> Inputs {
        Inputs {
            pools: vec![(pool("default-ipv4-ippool", "172.30.0.0/16", 3), 26, 3)],
            nodes: 3,
            blocks: 3,
            max_blocks_per_host: 0,
            busiest_node: 3,
            route_limit: limit,
        }
    }

    #[test]
    fn no_limit_and_default_blocks_say_nothing() {
        assert!(findings(&lab(None)).is_empty());
        // 3 nodes × 2 /26 blocks for 110 pods = 6: fits exactly.
        assert!(findings(&lab(Some(6))).is_empty());
    }

    #[test]
    fn more_blocks_than_the_limit_is_an_error() {
        let f = findings(&lab(Some(2)));
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].severity, Severity::Error);
        assert!(
            f[0].what.starts_with("3 block routes are in use"),
            "{}",
            f[0].what
        );
        assert!(f[0].what.contains("route limit of 2"));
        // Three nodes cannot share two routes, whatever the block size.
        assert!(
            f[0].fix
                .starts_with("3 nodes need at least one block route each"),
            "{}",
            f[0].fix
        );
        // The closest it gets: one /25 per node holds 110 pods.
        assert!(
            f[0].fix.contains("blockSize: 25 brings it down to 3"),
            "{}",
            f[0].fix
        );
    }

    #[test]
    fn a_limit_the_potential_exceeds_names_a_block_size_that_fits() {
        let f = findings(&lab(Some(4)));
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].severity, Severity::Warning);
        assert!(f[0].what.contains("need 6 block routes"), "{}", f[0].what);
        // One /25 (128 addresses) per node holds 110 pods: 3 routes.
        assert!(f[0].fix.contains("blockSize: 25"), "{}", f[0].fix);
        assert!(
            f[0].evidence.contains("3 node(s) × 2 block(s) of /26"),
            "{}",
            f[0].evidence
        );
        // seed 002's 200-route table: 50 nodes of /28 blocks need 7 each;
        // 4 /27s (128 addresses) per node fit.
        let mut big = lab(Some(200));
        big.pools[0].1 = 28;
        big.pools[0].2 = 50;
        big.nodes = 50;
        big.blocks = 120;
        let f = findings(&big);
        assert!(f[0].fix.contains("blockSize: 27"), "{f:?}");
        assert_eq!(f[0].severity, Severity::Warning);
        big.blocks = 201;
        assert_eq!(findings(&big)[0].severity, Severity::Error);
    }

    #[test]
    fn tiny_blocks_warn_always() {
        let mut i = lab(None);
        // It serves no node (nodeSelector: !all()), and still warns.
        i.pools
            .push((pool("tiny-blocks", "10.99.0.0/16", 0), 32, 0));
        let f = findings(&i);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].severity, Severity::Warning);
        assert!(f[0].what.contains("blockSize 32"), "{}", f[0].what);
        assert!(f[0].what.contains("65536 possible blocks"), "{}", f[0].what);
        assert!(
            f[0].what.contains("runs out of addresses at 20 pods"),
            "{}",
            f[0].what
        );
        assert!(
            f[0].fix.starts_with("tabbyctl delete ippool tiny-blocks"),
            "{}",
            f[0].fix
        );
        assert!(f[0].fix.contains("blockSize: 26"), "{}", f[0].fix);
        // A disabled pool claims no new blocks.
        i.pools[1].0.disabled = true;
        assert!(findings(&i).is_empty());
        // With a limit, a pool that serves no node adds nothing.
        i.pools[1].0.disabled = false;
        i.route_limit = Some(6);
        assert_eq!(findings(&i).len(), 1);
        i.route_limit = None;
        // /28 (16 addresses) is the smallest that does not warn.
        i.pools[1] = (pool("small", "10.99.0.0/16", 0), 28, 3);
        assert!(findings(&i).is_empty());
    }
}
