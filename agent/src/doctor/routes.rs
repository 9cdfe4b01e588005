//! `route`: kernel routes Tabby did not write that take pod traffic
//! somewhere it cannot arrive — seed 000's static /27 inside another node's
//! block via the node subnet's network address, a route via an address that
//! is not the block owner's, a route sitting in Tabby's slot.
//!
//! Tabby (protocol 81) leaves foreign routes alone by design: another
//! routing daemon or an operator may own them, and deleting what we did not
//! write is how two agents fight. So the doctor names each one with the
//! `ip route del` that removes that route and nothing else.
//!
//! Ownership comes from the datastore: a block's `spec.affinity`
//! (`host:<node>`) names its node, whose `spec.bgp.ipv4Address` and
//! `spec.ipv4VXLANTunnelAddr` are the only right next hops for it.

use super::{node_ipv4, node_ipv4_net, Ctx, Finding, Severity};
use ipnet::Ipv4Net;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use tabby_felix_lite::model::TABBY_ROUTE_PROTOCOL;
use tabby_felix_lite::netlink::routes::KernelRoute;
use tabby_felix_lite::route_text;

const CHECK: &str = "route";
/// `proto kernel`: the routes the kernel adds for an interface's address.
const PROTO_KERNEL: u8 = 2;

/// One route, reduced to what the decision needs and quoted as `ip route`
/// prints it.
#[derive(Debug, Clone)]
pub(super) struct Route {
    pub dst: Ipv4Net,
    pub protocol: u8,
    pub tos: u8,
    pub metric: u32,
    pub gateway: Option<Ipv4Addr>,
    pub dev: Option<String>,
    /// blackhole, unreachable or prohibit.
    pub drops: bool,
    pub line: String,
    pub delete: String,
}

impl Route {
    fn from_kernel(r: &KernelRoute, k: &tabby_felix_lite::inspect::KernelSnapshot) -> Route {
        Route {
            dst: r.dst,
            protocol: r.protocol,
            tos: r.tos,
            metric: r.priority,
            gateway: r.gateway,
            dev: r.oif.map(|i| k.ifname(i)),
            drops: route_text::drops(r),
            line: k.route_line(r),
            delete: k.route_delete_command(r),
        }
    }

    fn is_tabbys(&self) -> bool {
        self.protocol == TABBY_ROUTE_PROTOCOL
    }

    /// Tabby's routes are unique on (prefix, TOS 0, metric 0).
    fn in_tabby_slot(&self) -> bool {
        self.tos == 0 && self.metric == 0
    }
}

#[derive(Debug, Clone, Default)]
pub(super) struct NodeAddrs {
    pub ip: Option<Ipv4Addr>,
    pub vtep: Option<Ipv4Addr>,
}

/// What the datastore and the kernel say the pod address space looks like.
#[derive(Debug, Clone, Default)]
pub(super) struct Facts {
    pub me: String,
    /// IPAM blocks and their affine node (None: unaffine or virtual).
    pub blocks: Vec<(Ipv4Net, Option<String>)>,
    pub pools: Vec<Ipv4Net>,
    pub nodes: BTreeMap<String, NodeAddrs>,
    /// Subnets whose network and broadcast addresses are no next hop: this
    /// node's connected subnets (with their interface) and every node's.
    pub subnets: Vec<(Ipv4Net, Option<String>)>,
}

pub async fn check(ctx: &Ctx) -> Vec<Finding> {
    let (Some(k), Some(c)) = (ctx.kernel(), ctx.cluster()) else {
        return Vec::new();
    };
    let mut facts = Facts {
        me: ctx.node_name.clone(),
        ..Facts::default()
    };
    for b in c.blocks.iter().filter(|b| !b.spec.deleted) {
        if let Ok(net) = b.spec.cidr.parse() {
            let owner = b
                .spec
                .affinity
                .as_deref()
                .and_then(|a| a.strip_prefix("host:"))
                .map(str::to_string);
            facts.blocks.push((net, owner));
        }
    }
    facts.pools = c
        .pools
        .iter()
        .filter_map(|p| p.spec.cidr.parse().ok())
        .collect();
    // This node's own subnets first: they name the interface.
    for a in &k.addrs {
        if let Ok(net) = Ipv4Net::new(a.ip, a.prefix_len) {
            facts.subnets.push((net.trunc(), Some(k.ifname(a.index))));
        }
    }
    for n in &c.nodes {
        let vtep = n
            .spec
            .ipv4_vxlan_tunnel_addr
            .as_deref()
            .and_then(|a| a.split('/').next()?.parse().ok());
        facts.nodes.insert(
            n.metadata.name.clone(),
            NodeAddrs {
                ip: node_ipv4(n),
                vtep,
            },
        );
        if let Some(net) = node_ipv4_net(n) {
            facts.subnets.push((net.trunc(), None));
        }
    }
    let routes: Vec<Route> = k.routes.iter().map(|r| Route::from_kernel(r, k)).collect();
    examine_all(&routes, &facts)
}

/// Every foreign route into pod space that is wrong, in kernel order.
pub(super) fn examine_all(routes: &[Route], facts: &Facts) -> Vec<Finding> {
    routes
        .iter()
        .filter_map(|r| examine(r, routes, facts))
        .collect()
}

/// Why sending block traffic to `r`'s next hop is wrong; None when the next
/// hop is the owner's node or tunnel address.
fn next_hop_problem(r: &Route, block: Ipv4Net, owner: Option<&str>, f: &Facts) -> Option<String> {
    if r.drops {
        return Some("drops it".into());
    }
    let Some(gw) = r.gateway else {
        return Some(format!(
            "sends it straight out {} with no next hop, as if the pods were on that link",
            r.dev.as_deref().unwrap_or("an interface")
        ));
    };
    for (net, dev) in &f.subnets {
        if net.prefix_len() >= 31 {
            continue;
        }
        let on = dev
            .as_deref()
            .map(|d| format!(" on {d}"))
            .unwrap_or_default();
        if gw == net.network() {
            return Some(format!(
                "sends it to {gw}, the network address of {net}{on}"
            ));
        }
        if gw == net.broadcast() {
            return Some(format!(
                "sends it to {gw}, the broadcast address of {net}{on}"
            ));
        }
    }
    let owner_addrs = owner.and_then(|o| f.nodes.get(o));
    if let Some(a) = owner_addrs {
        if Some(gw) == a.ip || Some(gw) == a.vtep {
            return None;
        }
    }
    if gw == block.network() || gw == block.broadcast() {
        let which = if gw == block.network() {
            "network"
        } else {
            "broadcast"
        };
        return Some(format!(
            "sends it to {gw}, the {which} address of the block {block}"
        ));
    }
    let whose = f
        .nodes
        .iter()
        .find(|(_, a)| a.ip == Some(gw) || a.vtep == Some(gw))
        .map(|(n, a)| {
            let what = if a.ip == Some(gw) {
                "node address"
            } else {
                "tunnel address"
            };
            format!(" ({n}'s {what})")
        })
        .unwrap_or_default();
    match (owner, owner_addrs) {
        (Some(o), Some(a)) => Some(format!(
            "sends it to {gw}{whose}, which is neither {o}'s node address ({}) nor its tunnel address ({})",
            opt(a.ip),
            opt(a.vtep)
        )),
        (Some(o), None) => Some(format!(
            "sends it to {gw}{whose}, but {o}, the block's owner, has no Node resource"
        )),
        (None, _) if !whose.is_empty() => None,
        (None, _) => Some(format!("sends it to {gw}, which is no node's address")),
    }
}

fn opt(a: Option<Ipv4Addr>) -> String {
    a.map(|a| a.to_string()).unwrap_or_else(|| "none".into())
}

fn examine(r: &Route, all: &[Route], f: &Facts) -> Option<Finding> {
    if r.is_tabbys() {
        return None;
    }
    // The kernel's own route for an interface's subnet.
    if r.protocol == PROTO_KERNEL && f.subnets.iter().any(|(s, _)| *s == r.dst) {
        return None;
    }
    let proto = route_text::protocol_name(r.protocol);
    let block = f.blocks.iter().find(|(b, _)| b.contains(&r.dst));
    let Some((block, owner)) = block else {
        return pool_space(r, f, &proto);
    };
    let owner = owner.as_deref();
    let tabby = all
        .iter()
        .find(|t| t.is_tabbys() && t.dst == *block && t.in_tabby_slot());
    // Which route the kernel uses for the addresses `r` covers.
    let (wins, how) = if r.dst.prefix_len() > block.prefix_len() {
        (
            true,
            format!("it is more specific than the block {block}, so it wins over Tabby's route"),
        )
    } else if r.in_tabby_slot() {
        (
            true,
            "it holds the slot Tabby's route for the block needs (same prefix, metric 0), so Tabby cannot program its own".into(),
        )
    } else if tabby.is_none() {
        (
            true,
            "Tabby has no route of its own for the block, so this one carries its traffic".into(),
        )
    } else {
        (
            false,
            format!(
                "Tabby's metric-0 route wins today, but this one takes over whenever Tabby's is withdrawn (metric {})",
                r.metric
            ),
        )
    };
    let whose = match owner {
        Some(o) if o == f.me => "this node's own block".to_string(),
        Some(o) => format!("{o}'s block"),
        None => "the unaffine block".to_string(),
    };
    let target = if r.dst == *block {
        format!("{whose} {block}")
    } else {
        format!("{} (inside {whose} {block})", r.dst)
    };
    let problem = if owner == Some(f.me.as_str()) {
        // Our own block's pods are local: only Tabby's workload routes and
        // its blackhole belong here.
        Some(match r.gateway {
            Some(gw) => format!("sends this node's own pods' addresses to {gw}"),
            None if r.drops => "drops traffic to this node's own pods".into(),
            None => format!(
                "sends this node's own pods' addresses out {}",
                r.dev.as_deref().unwrap_or("another interface")
            ),
        })
    } else {
        next_hop_problem(r, *block, owner, f)
    };
    let mut evidence = vec![r.line.clone()];
    if let Some(t) = tabby {
        evidence.push(format!("Tabby's route: {}", t.line));
    }
    if let Some(o) = owner.and_then(|o| f.nodes.get(o).map(|a| (o, a))) {
        evidence.push(format!(
            "{}: node address {}, tunnel address {}",
            o.0,
            opt(o.1.ip),
            opt(o.1.vtep)
        ));
    }
    let finding = |sev: Severity, what: String| {
        let f = match sev {
            Severity::Error => Finding::error(CHECK, what),
            Severity::Warning => Finding::warning(CHECK, what),
        };
        f.evidence(evidence.join("; ")).fix(r.delete.clone())
    };
    match (problem, wins) {
        (Some(p), true) => Some(finding(
            Severity::Error,
            format!(
                "a proto {proto} route for {target} {p}: pods there are unreachable from this node; {how}"
            ),
        )),
        (Some(p), false) => Some(finding(
            Severity::Warning,
            format!(
                "a proto {proto} route for {target} {p}; {how}"
            ),
        )),
        (None, true) => Some(finding(
            Severity::Warning,
            format!(
                "a proto {proto} route for {target} shadows Tabby's: its next hop is right today, but {how} and stays when the block moves"
            ),
        )),
        (None, false) => None,
    }
}

/// A foreign route for pool addresses that no single block covers: it
/// catches what no block route does (unclaimed space), and once a block is
/// claimed inside a more-specific one it shadows Tabby's.
fn pool_space(r: &Route, f: &Facts, proto: &str) -> Option<Finding> {
    let pool = f.pools.iter().find(|p| p.contains(&r.dst))?;
    // A drop for unclaimed pool space only refuses addresses no pod has.
    if r.drops {
        return None;
    }
    let edge = r.gateway.and_then(|gw| {
        f.subnets
            .iter()
            .filter(|(n, _)| n.prefix_len() < 31)
            .find(|(n, _)| gw == n.network() || gw == n.broadcast())
            .map(|(n, _)| {
                let which = if gw == n.network() {
                    "network"
                } else {
                    "broadcast"
                };
                format!("{gw}, the {which} address of {n}")
            })
    });
    let via = r
        .gateway
        .map(|g| g.to_string())
        .or_else(|| r.dev.clone())
        .unwrap_or_default();
    let f = match edge {
        Some(e) => Finding::error(
            CHECK,
            format!(
                "a proto {proto} route sends pod pool {pool} addresses {} to {e}: nothing answers there",
                r.dst
            ),
        ),
        None => Finding::warning(
            CHECK,
            format!(
                "a proto {proto} route sends pod pool {pool} addresses {} to {via}: no block covers them yet, and when one is claimed there this route competes with Tabby's",
                r.dst
            ),
        ),
    };
    Some(f.evidence(r.line.clone()).fix(r.delete.clone()))
}

#[cfg(test)]
#[path = "routes_tests.rs"]
mod tests;
