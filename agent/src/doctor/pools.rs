//! `pool`: IP pools whose addresses are not pod addresses — a pool over a
//! node subnet or containing a node's own address (seed 002: pods handed
//! the addresses hosts use, and block routes capturing traffic to the
//! nodes), over a service CIDR, or over another pool.
//!
//! `apply` refuses these today, but a pool created before a node got its
//! address, written by kubectl straight to the CRDs, or left from an older
//! release is still in the datastore; only the doctor sees it.

use super::{Ctx, Finding};
use crate::resources::{IpPool, Node};
use ipnet::IpNet;

const CHECK: &str = "pool";

/// A pool as the checks see it.
#[derive(Debug, Clone)]
pub(super) struct Pool {
    pub name: String,
    pub cidr: IpNet,
    pub disabled: bool,
    /// IPAM blocks allocated from it.
    pub blocks: usize,
}

/// A node's address with its prefix (`spec.bgp.ipv4Address`/`ipv6Address`).
#[derive(Debug, Clone)]
pub(super) struct NodeAddr {
    pub node: String,
    pub addr: IpNet,
}

pub async fn check(ctx: &Ctx) -> Vec<Finding> {
    let Some(c) = ctx.cluster() else {
        return Vec::new();
    };
    let pools = pools_of(&c.pools, &c.blocks);
    let nodes = node_addrs(&c.nodes);
    let mut services: Vec<(IpNet, String)> = ctx
        .opts
        .service_cidrs
        .iter()
        .map(|n| (n.trunc(), "--service-cidr".to_string()))
        .collect();
    for b in &c.bgp_configs {
        for s in &b.spec.service_cluster_ips {
            if let Ok(n) = s.cidr.parse::<IpNet>() {
                services.push((
                    n.trunc(),
                    format!("BGPConfiguration {} serviceClusterIPs", b.metadata.name),
                ));
            }
        }
    }
    findings(&pools, &nodes, &services)
}

pub(super) fn pools_of(pools: &[IpPool], blocks: &[crate::resources::IpamBlock]) -> Vec<Pool> {
    pools
        .iter()
        .filter_map(|p| {
            let cidr: IpNet = p.spec.cidr.parse().ok()?;
            let blocks = blocks
                .iter()
                .filter(|b| !b.spec.deleted)
                .filter_map(|b| b.spec.cidr.parse::<IpNet>().ok())
                .filter(|b| cidr.contains(b))
                .count();
            Some(Pool {
                name: p.metadata.name.clone(),
                cidr,
                disabled: p.spec.disabled,
                blocks,
            })
        })
        .collect()
}

pub(super) fn node_addrs(nodes: &[Node]) -> Vec<NodeAddr> {
    let mut out = Vec::new();
    for n in nodes {
        let Some(bgp) = &n.spec.bgp else { continue };
        for a in [&bgp.ipv4_address, &bgp.ipv6_address].into_iter().flatten() {
            let parsed = a
                .parse::<IpNet>()
                .ok()
                .or_else(|| a.parse::<std::net::IpAddr>().ok().map(IpNet::from));
            if let Some(addr) = parsed {
                out.push(NodeAddr {
                    node: n.metadata.name.clone(),
                    addr,
                });
            }
        }
    }
    out
}

pub(super) fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The first aligned range of `like`'s size in the private ranges that
/// overlaps nothing in `taken`: a CIDR to move the pool to.
pub(super) fn free_range(like: &IpNet, taken: &[IpNet]) -> Option<IpNet> {
    let bases: &[&str] = match like {
        IpNet::V4(_) => &["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"],
        IpNet::V6(_) => &["fd00::/8"],
    };
    for base in bases {
        let Ok(base) = base.parse::<IpNet>() else {
            continue;
        };
        let Ok(subnets) = base.subnets(like.prefix_len().max(base.prefix_len())) else {
            continue;
        };
        // A bounded walk: a datastore full of pools must not stall the doctor.
        if let Some(n) = subnets
            .take(65536)
            .find(|n| !taken.iter().any(|t| overlaps(n, t)))
        {
            return Some(n);
        }
    }
    None
}

/// The way out for `p`: delete it when nothing was allocated from it, else
/// disable it so it hands out no more addresses while its pods move.
fn fix_for(p: &Pool, all: &[Pool], nodes: &[NodeAddr], services: &[(IpNet, String)]) -> String {
    let mut taken: Vec<IpNet> = all
        .iter()
        .filter(|o| o.name != p.name)
        .map(|o| o.cidr)
        .collect();
    taken.extend(nodes.iter().map(|n| n.addr.trunc()));
    taken.extend(services.iter().map(|s| s.0));
    let instead = free_range(&p.cidr, &taken)
        .map(|n| format!("a free range of the same size: {n}"))
        .unwrap_or_else(|| "no free private range of the same size was found".into());
    if p.blocks == 0 {
        format!(
            "tabbyctl delete ippool {}  # nothing was allocated from it; to keep a pool, create it again on {instead}",
            p.name
        )
    } else {
        format!(
            "set disabled: true on IPPool {} (tabbyctl get ippool {} -o yaml, add it under spec, tabbyctl apply -f), move its {} block(s)' pods, then tabbyctl delete ippool {}; {instead}",
            p.name, p.name, p.blocks, p.name
        )
    }
}

pub(super) fn findings(
    pools: &[Pool],
    nodes: &[NodeAddr],
    services: &[(IpNet, String)],
) -> Vec<Finding> {
    let mut out = Vec::new();
    for p in pools.iter().filter(|p| !p.disabled) {
        let evidence_pool = format!("IPPool {} spec.cidr {}", p.name, p.cidr);
        let inside: Vec<&NodeAddr> = nodes
            .iter()
            .filter(|n| p.cidr.contains(&n.addr.addr()))
            .collect();
        if !inside.is_empty() {
            let list = inside
                .iter()
                .map(|n| format!("{} ({})", n.node, n.addr.addr()))
                .collect::<Vec<_>>()
                .join(", ");
            out.push(
                Finding::error(
                    CHECK,
                    format!(
                        "IPPool {} ({}) contains the address of {list}: IPAM can hand a node's address to a pod, and routes for its blocks capture traffic meant for the node",
                        p.name, p.cidr
                    ),
                )
                .evidence(evidence(&evidence_pool, &inside))
                .fix(fix_for(p, pools, nodes, services)),
            );
        } else {
            let mut subnets: Vec<(IpNet, Vec<&NodeAddr>)> = Vec::new();
            for n in nodes.iter().filter(|n| overlaps(&p.cidr, &n.addr.trunc())) {
                match subnets.iter_mut().find(|(s, _)| *s == n.addr.trunc()) {
                    Some((_, v)) => v.push(n),
                    None => subnets.push((n.addr.trunc(), vec![n])),
                }
            }
            if !subnets.is_empty() {
                let list = subnets
                    .iter()
                    .map(|(s, _)| s.to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                let on: Vec<&NodeAddr> = subnets.iter().flat_map(|(_, v)| v.clone()).collect();
                out.push(
                    Finding::error(
                        CHECK,
                        format!(
                            "IPPool {} ({}) overlaps the node subnet {list}: pods get addresses of the hosts' own network, which the hosts then cannot reach",
                            p.name, p.cidr
                        ),
                    )
                    .evidence(evidence(&evidence_pool, &on))
                    .fix(fix_for(p, pools, nodes, services)),
                );
            }
        }
        for (s, source) in services.iter().filter(|(s, _)| overlaps(&p.cidr, s)) {
            out.push(
                Finding::error(
                    CHECK,
                    format!(
                        "IPPool {} ({}) overlaps the service CIDR {s}: a pod given one of its addresses is shadowed by a service's",
                        p.name, p.cidr
                    ),
                )
                .evidence(format!("{evidence_pool}; {source} {s}"))
                .fix(fix_for(p, pools, nodes, services)),
            );
        }
        for q in pools.iter().filter(|q| q.name != p.name) {
            // One finding per pair: on the enabled one, or the first by name.
            if !overlaps(&p.cidr, &q.cidr) || (!q.disabled && q.name < p.name) {
                continue;
            }
            // Remove the one with fewer allocations (the newcomer, usually).
            let victim = if q.blocks <= p.blocks { q } else { p };
            out.push(
                Finding::error(
                    CHECK,
                    format!(
                        "IPPool {} ({}) overlaps IPPool {} ({}): both hand out the same addresses",
                        p.name, p.cidr, q.name, q.cidr
                    ),
                )
                .evidence(format!(
                    "{evidence_pool} ({} block(s)); IPPool {} spec.cidr {} ({} block(s){})",
                    p.blocks,
                    q.name,
                    q.cidr,
                    q.blocks,
                    if q.disabled { ", disabled" } else { "" }
                ))
                .fix(fix_for(victim, pools, nodes, services)),
            );
        }
    }
    out
}

fn evidence(pool: &str, nodes: &[&NodeAddr]) -> String {
    let mut s = pool.to_string();
    for n in nodes {
        s.push_str(&format!("; Node {} address {}", n.node, n.addr));
    }
    s
}

/// An enabled pool with `blocks` blocks in use, for the tests of this
/// module and of `budget`.
#[cfg(test)]
pub(super) fn test_pool(name: &str, cidr: &str, blocks: usize) -> Pool {
    Pool {
        name: name.into(),
        cidr: cidr.parse().unwrap(),
        disabled: false,
        blocks,
    }
}

#[cfg(test)]
mod tests {
    use super::test_pool as pool;
    use super::*;

    fn lab_nodes() -> Vec<NodeAddr> {
        [
            ("node-1", "172.31.1.11/24"),
            ("node-2", "172.31.1.12/24"),
            ("node-3", "172.31.2.13/24"),
        ]
        .iter()
        .map(|(n, a)| NodeAddr {
            node: n.to_string(),
            addr: a.parse().unwrap(),
        })
        .collect()
    }

    #[test]
    fn the_lab_pool_is_clean() {
        let f = findings(&[pool("default", "172.30.0.0/16", 3)], &lab_nodes(), &[]);
        assert!(f.is_empty(), "{f:?}");
    }

    #[test]
    fn a_pool_containing_node_addresses_names_them_and_a_free_range() {
        let pools = [
            pool("default", "172.30.0.0/16", 3),
            pool("overlap", "172.31.0.0/16", 0),
        ];
        let f = findings(&pools, &lab_nodes(), &[]);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].what
                .contains("node-1 (172.31.1.11), node-2 (172.31.1.12), node-3 (172.31.2.13)"),
            "{}",
            f[0].what
        );
        assert!(f[0].evidence.contains("Node node-3 address 172.31.2.13/24"));
        assert!(
            f[0].fix.starts_with("tabbyctl delete ippool overlap  #"),
            "{}",
            f[0].fix
        );
        assert!(f[0].fix.contains("10.0.0.0/16"), "{}", f[0].fix);
    }

    #[test]
    fn a_pool_over_a_subnet_without_node_addresses() {
        let f = findings(&[pool("p", "172.31.1.128/25", 2)], &lab_nodes(), &[]);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].what.contains("overlaps the node subnet 172.31.1.0/24"));
        // Blocks in use: disable first, never delete under running pods.
        assert!(
            f[0].fix.starts_with("set disabled: true on IPPool p"),
            "{}",
            f[0].fix
        );
        assert!(f[0].fix.contains("10.0.0.0/25"), "{}", f[0].fix);
    }

    #[test]
    fn service_cidrs_and_other_pools() {
        let services = [(
            "10.96.0.0/12".parse().unwrap(),
            "--service-cidr".to_string(),
        )];
        let pools = [
            pool("a", "10.100.0.0/16", 1),
            pool("b", "10.100.128.0/17", 0),
            Pool {
                disabled: true,
                ..pool("c", "10.100.0.0/24", 0)
            },
        ];
        let f = findings(&pools, &lab_nodes(), &services);
        let svc: Vec<_> = f
            .iter()
            .filter(|f| f.what.contains("service CIDR"))
            .collect();
        // a and b are in 10.96.0.0/12 (10.96-10.111); c is disabled.
        assert_eq!(svc.len(), 2, "{f:?}");
        assert!(svc[0].evidence.contains("--service-cidr 10.96.0.0/12"));
        let pairs: Vec<_> = f
            .iter()
            .filter(|f| f.what.contains("overlaps IPPool"))
            .collect();
        // a-b once, a-c on the enabled side (b and c do not meet).
        assert_eq!(pairs.len(), 2, "{pairs:?}");
        assert!(
            pairs[1].evidence.contains("disabled"),
            "{}",
            pairs[1].evidence
        );
        // The pool with fewer blocks is the one to delete, on a free range
        // outside the service CIDR too.
        assert!(
            pairs[0].fix.starts_with("tabbyctl delete ippool b"),
            "{}",
            pairs[0].fix
        );
        assert!(!pairs[0].fix.contains("10.96."), "{}", pairs[0].fix);
    }

    #[test]
    fn free_ranges_skip_what_is_taken() {
        let taken: Vec<IpNet> = vec!["10.0.0.0/9".parse().unwrap()];
        assert_eq!(
            free_range(&"172.31.0.0/16".parse().unwrap(), &taken),
            Some("10.128.0.0/16".parse().unwrap())
        );
        let v6 = free_range(
            &"fd00:1::/48".parse().unwrap(),
            &["fd00::/48".parse().unwrap()],
        );
        assert_eq!(v6, Some("fd00:0:1::/48".parse().unwrap()));
    }
}
