//! The IPv6 half of [`super::plan`]: IPv6 block routes, workload /128s and
//! VTEPs turned into kernel specs, with the same refusals of unusable next
//! hops as IPv4. The diffs themselves are shared (generic over the family).
//!
//! IPv6 has no broadcast address; what is refused instead:
//! - a native next hop outside every subnet on the node interface (it is
//!   not a neighbour, so the route could never resolve) unless it is
//!   link-local (fe80::/10, always on-link);
//! - the network address (subnet-router anycast) of a connected subnet or
//!   of a desired block;
//! - unspecified, loopback and multicast next hops.

use super::plan::{DesiredRoute, Interfaces, Origin};
use super::ItemError;
use crate::model::{BlockRoute6, Path6, Vtep6, Workload6, VXLAN_V6_DEVICE};
use crate::netlink::routes::RouteTarget;
use ipnet::Ipv6Net;
use std::collections::HashMap;
use std::net::Ipv6Addr;

pub fn block_label6(r: &BlockRoute6, node_interface: &str) -> String {
    let path = match &r.path {
        Path6::Native { gateway } if node_interface.is_empty() => {
            format!("via {gateway} (native)")
        }
        Path6::Native { gateway } => format!("via {gateway} dev {node_interface} (native)"),
        Path6::Vxlan { tunnel_ip } => format!("via {tunnel_ip} dev {VXLAN_V6_DEVICE} (vxlan)"),
        Path6::Blackhole => "blackhole".to_string(),
    };
    format!("route {} {path} for node {:?}", r.cidr, r.node)
}

pub fn workload_label6(w: &Workload6) -> String {
    format!(
        "workload route {}/128 dev {} ({})",
        w.ip, w.host_interface, w.workload_id
    )
}

/// [`super::plan::route_label`] for IPv6.
pub fn route_label6(
    o: Origin,
    blocks: &[BlockRoute6],
    workloads: &[Workload6],
    node_interface: &str,
) -> String {
    match o {
        Origin::Block(i) => blocks.get(i).map(|b| block_label6(b, node_interface)),
        Origin::Workload(i) => workloads.get(i).map(workload_label6),
    }
    .unwrap_or_else(|| format!("{o:?}"))
}

pub fn is_link_local(a: Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// Network addresses (subnet-router anycast) of the prefixes, each with
/// whose it is (worded only when a next hop is one); /127 and /128 have
/// none.
fn anycast_addresses(
    nets: &[Ipv6Net],
    what: &'static str,
) -> HashMap<Ipv6Addr, (&'static str, Ipv6Net)> {
    let mut out = HashMap::new();
    for net in nets.iter().filter(|n| n.prefix_len() < 127) {
        out.entry(net.network()).or_insert((what, *net));
    }
    out
}

fn check_unicast(gateway: Ipv6Addr) -> Result<(), String> {
    if gateway.is_unspecified() || gateway.is_loopback() || gateway.is_multicast() {
        return Err(format!(
            "refused: next hop {gateway} is not a unicast address"
        ));
    }
    Ok(())
}

/// `node_subnets` are the IPv6 subnets on the node interface (link-local
/// excluded): the native next hops' neighbours.
pub fn desired_routes6(
    blocks: &[BlockRoute6],
    workloads: &[Workload6],
    ifaces: &Interfaces<'_>,
    node_subnets: &[Ipv6Net],
) -> (Vec<DesiredRoute<Ipv6Net>>, Vec<ItemError>) {
    let block_cidrs: Vec<Ipv6Net> = blocks.iter().map(|b| b.cidr).collect();
    let of_blocks = anycast_addresses(&block_cidrs, "block");
    let of_subnets = anycast_addresses(node_subnets, "connected subnet");
    let mut errors = Vec::new();
    let mut routes = super::plan::OnePerDst::with_capacity(blocks.len() + workloads.len());
    let on_subnet = |g: Ipv6Addr| node_subnets.iter().any(|n| n.contains(&g));
    let label = |o| route_label6(o, blocks, workloads, ifaces.node_interface_name);
    for (i, b) in blocks.iter().enumerate() {
        if b.cidr != b.cidr.trunc() {
            let label = block_label6(b, ifaces.node_interface_name);
            errors.extend(super::plan::host_bits(b.cidr, b.cidr.trunc(), &label));
            continue;
        }
        let target = match &b.path {
            Path6::Blackhole => Ok(RouteTarget::Blackhole),
            Path6::Native { gateway } => {
                let g = *gateway;
                check_unicast(g)
                    .and_then(|()| forbidden(g, &[&of_subnets, &of_blocks]))
                    .and_then(|()| {
                        if is_link_local(g) || on_subnet(g) {
                            Ok(())
                        } else {
                            Err(off_subnet(g, ifaces.node_interface_name, node_subnets))
                        }
                    })
                    .and_then(|()| {
                        ifaces.node_interface.ok_or_else(|| {
                            "the node interface (DesiredState.node_interface) does not exist"
                                .to_string()
                        })
                    })
                    .map(|oif| RouteTarget::Gateway {
                        gateway: g,
                        oif,
                        onlink: false,
                    })
            }
            Path6::Vxlan { tunnel_ip } => {
                let g = *tunnel_ip;
                check_unicast(g)
                    .and_then(|()| forbidden(g, &[&of_subnets]))
                    .and_then(|()| {
                        ifaces.vxlan.ok_or_else(|| {
                            format!("{VXLAN_V6_DEVICE} does not exist (no LocalVxlan6 in the desired state, or it failed)")
                        })
                    })
                    .map(|oif| RouteTarget::Gateway {
                        gateway: g,
                        oif,
                        onlink: true,
                    })
            }
        };
        routes.push_block(b.cidr, target, Origin::Block(i), &label, &mut errors);
    }
    for (i, w) in workloads.iter().enumerate() {
        let dst = Ipv6Net::from(w.ip);
        routes.push_workload(
            dst,
            &w.host_interface,
            Origin::Workload(i),
            ifaces,
            &label,
            &mut errors,
        );
    }
    (routes.out, errors)
}

fn forbidden(
    g: Ipv6Addr,
    maps: &[&HashMap<Ipv6Addr, (&'static str, Ipv6Net)>],
) -> Result<(), String> {
    match maps.iter().find_map(|m| m.get(&g)) {
        Some((what, net)) => Err(format!(
            "refused: next hop {g} is the network (subnet-router anycast) address of {what} {net}"
        )),
        None => Ok(()),
    }
}

fn off_subnet(g: Ipv6Addr, iface: &str, subnets: &[Ipv6Net]) -> String {
    let have = if subnets.is_empty() {
        "none".to_string()
    } else {
        subnets
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "refused: next hop {g} is on no connected subnet of the node interface {iface:?} \
         (its IPv6 subnets: {have}), so it is not a neighbour"
    )
}

/// Checks IPv6 VTEPs as [`super::plan::desired_vteps`] does IPv4 ones.
pub fn desired_vteps6(vteps: &[Vtep6]) -> (Vec<Vtep6>, Vec<ItemError>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut ips = HashMap::new();
    let mut macs = HashMap::new();
    for v in vteps {
        let label = format!(
            "IPv6 VTEP of node {:?} ({} mac {})",
            v.node,
            v.tunnel_ip,
            crate::derive::fmt_mac(&v.mac)
        );
        let problem = if v.mac[0] & 1 == 1 || v.mac == [0; 6] {
            Some("mac must be a unicast, non-zero address".to_string())
        } else if v.node_ip.is_unspecified() || v.node_ip.is_multicast() || v.node_ip.is_loopback()
        {
            Some(format!("node_ip {} is not a unicast address", v.node_ip))
        } else if v.tunnel_ip.is_unspecified() || v.tunnel_ip.is_multicast() {
            Some(format!(
                "tunnel_ip {} is not a unicast address",
                v.tunnel_ip
            ))
        } else if let Some(other) = ips.get(&v.tunnel_ip) {
            Some(format!(
                "tunnel_ip {} is already used by node {other:?}",
                v.tunnel_ip
            ))
        } else {
            macs.get(&v.mac)
                .map(|other| format!("mac is already used by node {other:?}"))
        };
        if let Some(p) = problem {
            errors.push(ItemError::new(&label, p));
            continue;
        }
        ips.insert(v.tunnel_ip, v.node.clone());
        macs.insert(v.mac, v.node.clone());
        out.push(v.clone());
    }
    (out, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(cidr: &str, path: Path6) -> BlockRoute6 {
        BlockRoute6 {
            cidr: cidr.parse().unwrap(),
            path,
            node: "n2".into(),
        }
    }

    fn plan(
        blocks: &[BlockRoute6],
        subnets: &[&str],
    ) -> (Vec<DesiredRoute<Ipv6Net>>, Vec<ItemError>) {
        let by_name = |_: &str| None;
        let ifaces = Interfaces {
            node_interface: Some(2),
            node_interface_name: "eth0",
            vxlan: Some(9),
            by_name: &by_name,
        };
        let subnets: Vec<Ipv6Net> = subnets.iter().map(|s| s.parse().unwrap()).collect();
        desired_routes6(blocks, &[], &ifaces, &subnets)
    }

    #[test]
    fn a_next_hop_on_no_connected_subnet_is_refused_by_name() {
        let g = "fd00:99::1".parse().unwrap();
        let (ok, errs) = plan(
            &[block("fd00:10::/122", Path6::Native { gateway: g })],
            &["fd00:1::/64"],
        );
        assert!(ok.is_empty());
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0]
                .error
                .contains("fd00:99::1 is on no connected subnet"),
            "{}",
            errs[0]
        );
        assert!(errs[0].error.contains("fd00:1::/64"), "{}", errs[0]);
    }

    #[test]
    fn link_local_and_on_subnet_next_hops_go_ahead() {
        let (ok, errs) = plan(
            &[
                block(
                    "fd00:10::/122",
                    Path6::Native {
                        gateway: "fd00:1::2".parse().unwrap(),
                    },
                ),
                block(
                    "fd00:10::40/122",
                    Path6::Native {
                        gateway: "fe80::1".parse().unwrap(),
                    },
                ),
                block("fd00:10::80/122", Path6::Blackhole),
            ],
            &["fd00:1::/64"],
        );
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(ok.len(), 3);
    }

    #[test]
    fn network_addresses_and_multicast_are_refused() {
        let (_, errs) = plan(
            &[
                block(
                    "fd00:10::/122",
                    Path6::Native {
                        gateway: "fd00:1::".parse().unwrap(),
                    },
                ),
                block(
                    "fd00:10::40/122",
                    Path6::Vxlan {
                        tunnel_ip: "ff02::1".parse().unwrap(),
                    },
                ),
                block("fd00:10::81/122", Path6::Blackhole),
            ],
            &["fd00:1::/64"],
        );
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(
            errs[0].error.contains("subnet-router anycast"),
            "{}",
            errs[0]
        );
        assert!(errs[1].error.contains("not a unicast"), "{}", errs[1]);
        assert!(errs[2].error.contains("host bits"), "{}", errs[2]);
    }
}
