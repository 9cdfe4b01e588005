//! `ipv6`: the IPv6 twins of the IPv4 checks, run when the node has IPv6
//! (`FELIX_IPV6SUPPORT` not false, and an IPv6 node address or an IPv6
//! pool): IPv6 forwarding, `vxlan-v6.calico` (VNI, port, parent, local
//! address, MTU), Tabby's IPv6 block routes with a next hop on no
//! connected IPv6 subnet, NAT66 for `natOutgoing` pools and the IPv6
//! forward accepts.
//!
//! The parent check is the IPv6 form of "VXLAN bound to the storage NIC":
//! the device must hang off the interface holding the node's IPv6 address
//! (`spec.bgp.ipv6Address`), or every other node's VTEP traffic for this
//! node arrives on an interface it was never meant for.

use super::{Ctx, Finding};
use crate::resources::ippool::EncapMode;
use ipnet::Ipv6Net;
use std::net::Ipv6Addr;
use tabby_felix_lite::inspect::KernelSnapshot;
use tabby_felix_lite::model::{
    Pool6, TABBY_ROUTE_PROTOCOL, VXLAN_PORT, VXLAN_V6_DEVICE, VXLAN_V6_OVERHEAD, VXLAN_VNI,
};
use tabby_felix_lite::nft::{Nft, NftError};
use tabby_felix_lite::sysctl;

const CHECK: &str = "ipv6";

/// What the node should have, from its settings and the cluster.
#[derive(Debug, Clone, Default)]
pub struct Want6 {
    /// This node's `spec.bgp.ipv6Address`.
    pub node_ip6: Option<Ipv6Net>,
    pub pools: Vec<Pool6Want>,
    /// `FELIX_VXLANMTUV6`.
    pub mtu_override: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct Pool6Want {
    pub name: String,
    pub cidr: Ipv6Net,
    pub nat_outgoing: bool,
    /// `vxlanMode` Always or CrossSubnet.
    pub vxlan: bool,
}

pub async fn check(ctx: &Ctx) -> Vec<Finding> {
    let Some(k) = ctx.kernel() else {
        return Vec::new();
    };
    let support = ctx
        .env("FELIX_IPV6SUPPORT")
        .is_none_or(|v| !matches!(v.to_ascii_lowercase().as_str(), "false" | "0" | "no"));
    let node_ip6 = ctx
        .this_node()
        .and_then(|n| n.spec.bgp.as_ref()?.ipv6_address.as_deref()?.parse().ok());
    let pools = ctx
        .cluster()
        .into_iter()
        .flat_map(|c| c.pools.iter())
        .filter(|p| !p.spec.disabled)
        .filter_map(|p| {
            Some(Pool6Want {
                name: p.metadata.name.clone(),
                cidr: p.spec.cidr.parse().ok()?,
                nat_outgoing: p.spec.nat_outgoing,
                vxlan: matches!(
                    p.spec.vxlan_mode,
                    Some(EncapMode::Always | EncapMode::CrossSubnet)
                ),
            })
        })
        .collect::<Vec<_>>();
    if !support || (node_ip6.is_none() && pools.is_empty()) {
        return Vec::new();
    }
    let want = Want6 {
        node_ip6,
        pools,
        mtu_override: ctx.env("FELIX_VXLANMTUV6").and_then(|v| v.parse().ok()),
    };
    inspect(&want, k)
}

/// Every IPv6 check against `k` and the sysctls and nftables of the
/// calling thread's network namespace.
pub fn inspect(want: &Want6, k: &KernelSnapshot) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Ok(v) = sysctl::read(&["net", "ipv6", "conf", "all", "forwarding"]) {
        if v != "1" {
            out.push(
                Finding::error(
                    CHECK,
                    "IPv6 forwarding is off: this node drops every IPv6 packet to or from its \
                     pods that crosses it, and routes nothing for other nodes",
                )
                .evidence(format!("net.ipv6.conf.all.forwarding = {v}"))
                .fix("sysctl -w net.ipv6.conf.all.forwarding=1"),
            );
        }
    }
    out.extend(vxlan6(want, k));
    out.extend(routes6(want, k));
    out.extend(nft6(want));
    out
}

/// The interface holding the node's IPv6 address.
fn parent_of(want: &Want6, k: &KernelSnapshot) -> Option<(u32, String)> {
    let ip = want.node_ip6?.addr();
    let a = k.addrs6.iter().find(|a| a.ip == ip)?;
    Some((a.index, k.ifname(a.index)))
}

fn vxlan6(want: &Want6, k: &KernelSnapshot) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(dev) = k.link(VXLAN_V6_DEVICE) else {
        if let Some(p) = want.pools.iter().find(|p| p.vxlan) {
            if want.node_ip6.is_some() {
                out.push(
                    Finding::error(
                        CHECK,
                        format!(
                            "{VXLAN_V6_DEVICE} is missing while IPv6 pool {} ({}) uses VXLAN: \
                             IPv6 traffic to pods on other subnets has no tunnel",
                            p.name, p.cidr
                        ),
                    )
                    .evidence(format!("ip -6 link show {VXLAN_V6_DEVICE}: does not exist"))
                    .fix("check that tabby-node runs (it creates the device) and its log for why it did not"),
                );
            }
        }
        return out;
    };
    let info = dev.vxlan.clone().unwrap_or_default();
    let recreate =
        format!("ip link del {VXLAN_V6_DEVICE} (tabby-node re-creates it as it should be)");
    if info.vni != Some(VXLAN_VNI) || info.port != Some(VXLAN_PORT) {
        out.push(
            Finding::error(
                CHECK,
                format!(
                    "{VXLAN_V6_DEVICE} has VNI {} and port {}, not Calico's VNI {VXLAN_VNI} and \
                     port {VXLAN_PORT}: other nodes' IPv6 VXLAN packets are not delivered to it",
                    opt(info.vni),
                    opt(info.port)
                ),
            )
            .evidence(format!("ip -d link show {VXLAN_V6_DEVICE}"))
            .fix(recreate.clone()),
        );
    }
    let parent = parent_of(want, k);
    if let (Some((pidx, pname)), Some(node_ip)) = (&parent, want.node_ip6) {
        let bound = info.parent.map(|i| k.ifname(i));
        if info.parent != Some(*pidx) || info.local6.is_some_and(|l| l != node_ip.addr()) {
            out.push(
                Finding::error(
                    CHECK,
                    format!(
                        "{VXLAN_V6_DEVICE} is bound to {} (local {}) but the node's IPv6 address \
                         {} is on {pname}: other nodes send IPv6 VXLAN to {} and the tunnel \
                         leaves by the wrong interface",
                        bound.as_deref().unwrap_or("no interface"),
                        info.local6.map_or("unset".into(), |l| l.to_string()),
                        node_ip.addr(),
                        node_ip.addr()
                    ),
                )
                .evidence(format!(
                    "ip -d link show {VXLAN_V6_DEVICE}: dev {}; spec.bgp.ipv6Address {node_ip}",
                    bound.as_deref().unwrap_or("-")
                ))
                .fix(format!(
                    "if {pname} is the right interface: {recreate}; if not, pin the address with \
                     IP6_AUTODETECTION_METHOD=interface={pname} (or IP6=ADDR/LEN) and restart tabby-node"
                )),
            );
        }
        let nic_mtu = k.link_by_index(*pidx).map(|l| l.mtu);
        let want_mtu = want
            .mtu_override
            .or(nic_mtu.map(|m| m.saturating_sub(VXLAN_V6_OVERHEAD)));
        if let Some(m) = want_mtu {
            if dev.mtu != m {
                let why = match want.mtu_override {
                    Some(o) => format!("FELIX_VXLANMTUV6={o}"),
                    None => format!(
                        "{pname}'s MTU {} minus the {VXLAN_V6_OVERHEAD}-byte IPv6 VXLAN overhead",
                        nic_mtu.unwrap_or_default()
                    ),
                };
                out.push(
                    Finding::error(
                        CHECK,
                        format!(
                            "{VXLAN_V6_DEVICE} has MTU {}, expected {m} ({why}): {}",
                            dev.mtu,
                            if dev.mtu > m {
                                "full-size IPv6 pod packets do not fit the tunnel and are dropped"
                            } else {
                                "pod traffic is fragmented or clamped for nothing"
                            }
                        ),
                    )
                    .evidence(format!("ip link show {VXLAN_V6_DEVICE}: mtu {}", dev.mtu))
                    .fix(format!("ip link set {VXLAN_V6_DEVICE} mtu {m}")),
                );
            }
        }
    }
    out
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("unset".into(), |v| v.to_string())
}

/// This node's connected IPv6 subnets (no link-local, no /128).
fn connected6(k: &KernelSnapshot) -> Vec<Ipv6Net> {
    k.addrs6
        .iter()
        .filter(|a| !a.is_link_local() && !a.ip.is_loopback() && a.prefix_len < 128)
        .filter_map(|a| Ipv6Net::new(a.ip, a.prefix_len).ok().map(|n| n.trunc()))
        .collect()
}

fn routes6(want: &Want6, k: &KernelSnapshot) -> Vec<Finding> {
    let connected = connected6(k);
    let vxlan = k.link(VXLAN_V6_DEVICE).map(|l| l.index);
    let link_local = |g: &Ipv6Addr| g.segments()[0] & 0xffc0 == 0xfe80;
    let mut out = Vec::new();
    for r in &k.routes6 {
        let Some(gw) = r.gateway else { continue };
        let in_pool = want.pools.iter().any(|p| p.cidr.contains(&r.dst));
        if r.protocol != TABBY_ROUTE_PROTOCOL || !in_pool || r.oif == vxlan || link_local(&gw) {
            continue;
        }
        if connected.iter().any(|c| c.contains(&gw)) {
            continue;
        }
        let dev = r.oif.map_or("?".into(), |i| k.ifname(i));
        out.push(
            Finding::error(
                CHECK,
                format!(
                    "IPv6 block route {} goes via {gw}, which is on none of this node's IPv6 \
                     subnets: the next hop is unreachable without a router that knows pod routes",
                    r.dst
                ),
            )
            .evidence(format!(
                "ip -6 route show {}: via {gw} dev {dev}{} proto {TABBY_ROUTE_PROTOCOL}; connected: {}",
                r.dst,
                if r.onlink { " onlink" } else { "" },
                if connected.is_empty() {
                    "none".to_string()
                } else {
                    connected.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                }
            ))
            .fix(
                "give the owning node's spec.bgp.ipv6Address its real prefix, or set the pool's \
                 vxlanMode to CrossSubnet so IPv6 blocks across subnets go through vxlan-v6.calico",
            ),
        );
    }
    out
}

fn nft6(want: &Want6) -> Vec<Finding> {
    let pools: Vec<Pool6> = want
        .pools
        .iter()
        .map(|p| Pool6 {
            cidr: p.cidr,
            nat_outgoing: p.nat_outgoing,
        })
        .collect();
    let drift = match Nft::default().drift6(&pools) {
        Ok(d) => d,
        Err(NftError::Missing(_)) => return Vec::new(),
        Err(e) => {
            return vec![
                Finding::warning(CHECK, "cannot read the IPv6 nftables state")
                    .evidence(e.to_string())
                    .fix("check that `nft list ruleset` works on this node (run as root)"),
            ]
        }
    };
    let mut out = Vec::new();
    if drift.nat66_missing {
        let nat: Vec<String> = want
            .pools
            .iter()
            .filter(|p| p.nat_outgoing)
            .map(|p| format!("{} ({})", p.name, p.cidr))
            .collect();
        out.push(
            Finding::error(
                CHECK,
                format!(
                    "NAT66 for natOutgoing IPv6 pool {} is missing or stale: IPv6 pod traffic \
                     leaves with pod source addresses nobody routes back",
                    nat.join(", ")
                ),
            )
            .evidence("nft list table ip6 tabby: no `ip6 saddr @masq-pools ip6 daddr != @all-pools masquerade` for these pools")
            .fix("check that tabby-node runs and its log for nft errors (it rewrites table ip6 tabby on its next pass)"),
        );
    }
    for c in &drift.chains_without_accepts {
        if c.policy != "drop" {
            continue;
        }
        out.push(
            Finding::error(
                CHECK,
                format!(
                    "forward chain {} {} {} drops IPv6 and has no accept for the IPv6 pools ahead \
                     of it: IPv6 pod traffic crossing this node is dropped",
                    c.family, c.table, c.chain
                ),
            )
            .evidence(format!(
                "nft list chain {} {} {}: policy drop, no tabby:forward6 rules",
                c.family, c.table, c.chain
            ))
            .fix({
                let set = want
                    .pools
                    .iter()
                    .map(|p| p.cidr.to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                let rule = |dir: &str| {
                    format!(
                        "nft insert rule {} {} {} ip6 {dir} {{ {set} }} accept",
                        c.family, c.table, c.chain
                    )
                };
                format!(
                    "{}; {} (tabby-node adds both while it runs)",
                    rule("saddr"),
                    rule("daddr")
                )
            }),
        );
    }
    out
}
