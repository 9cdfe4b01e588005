//! This node's address and interface, and the other nodes' addresses and
//! VTEPs, as the `node-address`, `vxlan-*` and `mtu` checks compare them.
//!
//! The node address comes from the local tabby-node when it answers (what
//! the dataplane is programmed with), else from this node's Node resource
//! (what the other nodes route to): the checks still run with the agent
//! down, which is when stale kernel state is most likely.

use super::{node_ipv4, node_ipv4_net, Ctx};
use crate::resources::ippool::EncapMode;
use ipnet::Ipv4Net;
use std::net::Ipv4Addr;
use tabby_felix_lite::autodetect::{IpSetting, Method};
use tabby_felix_lite::inspect::KernelSnapshot;
use tabby_felix_lite::model::VXLAN_DEVICE;
use tabby_felix_lite::netlink::links::KernelLink;

/// This node's address and the interface holding it.
#[derive(Debug, Clone)]
pub struct Me {
    pub ip: Ipv4Addr,
    /// With its prefix, when known: the node subnet CrossSubnet compares.
    pub net: Option<Ipv4Net>,
    /// Where `ip` was read, for the evidence.
    pub source: &'static str,
    /// The kernel link holding `ip`; None when no interface has it.
    pub link: Option<KernelLink>,
}

/// Another node, as the datastore lists it.
#[derive(Debug, Clone)]
pub struct Remote {
    pub name: String,
    pub ip: Ipv4Addr,
    pub tunnel_ip: Option<Ipv4Addr>,
    pub mac: Option<[u8; 6]>,
}

fn parse_net(s: &str) -> Option<(Ipv4Addr, Option<Ipv4Net>)> {
    if s.is_empty() {
        return None;
    }
    match s.parse::<Ipv4Net>() {
        Ok(n) => Some((n.addr(), Some(n))),
        Err(_) => s.parse().ok().map(|a| (a, None)),
    }
}

/// This node's address: the agent's, else the Node resource's.
pub fn me(ctx: &Ctx) -> Option<Me> {
    let k = ctx.kernel()?;
    let from_agent = ctx.agent().and_then(|a| {
        parse_net(&a.dataplane.node_ip)
            .or_else(|| parse_net(&a.status.node_ip))
            .map(|(ip, net)| (ip, net, "tabby-node"))
    });
    let from_node = || {
        let n = ctx.this_node()?;
        let ip = node_ipv4(n)?;
        let net = node_ipv4_net(n).filter(|n| n.prefix_len() < 32);
        Some((ip, net, "its Node resource"))
    };
    let (ip, mut net, source) = from_agent.or_else(from_node)?;
    let link = k
        .addrs
        .iter()
        .find(|a| a.ip == ip)
        .and_then(|a| {
            if net.is_none() {
                net = Ipv4Net::new(ip, a.prefix_len).ok();
            }
            k.link_by_index(a.index)
        })
        .cloned();
    Some(Me {
        ip,
        net: net.filter(|n| n.prefix_len() < 32),
        source,
        link,
    })
}

pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<Result<_, _>>()
        .ok()?;
    parts.try_into().ok()
}

pub fn fmt_mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The other nodes with an IPv4 address other than ours.
pub fn remotes(ctx: &Ctx, me: Option<&Me>) -> Vec<Remote> {
    ctx.remote_nodes()
        .filter_map(|n| {
            let ip = node_ipv4(n)?;
            if me.is_some_and(|m| m.ip == ip) {
                return None;
            }
            Some(Remote {
                name: n.metadata.name.clone(),
                ip,
                tunnel_ip: n
                    .spec
                    .ipv4_vxlan_tunnel_addr
                    .as_deref()
                    .and_then(|t| t.split('/').next()?.parse().ok()),
                mac: n.spec.vxlan_tunnel_mac_addr.as_deref().and_then(parse_mac),
            })
        })
        .collect()
}

/// Which VXLAN modes the enabled pools use: (any Always, any CrossSubnet).
pub fn vxlan_modes(ctx: &Ctx) -> (bool, bool) {
    let pools = ctx.cluster().map(|c| c.pools.as_slice()).unwrap_or(&[]);
    let enabled = || pools.iter().filter(|p| !p.spec.disabled);
    (
        enabled().any(|p| p.spec.vxlan_mode == Some(EncapMode::Always)),
        enabled().any(|p| p.spec.vxlan_mode == Some(EncapMode::CrossSubnet)),
    )
}

/// Whether traffic to `remote` goes through VXLAN, by Calico's rule
/// (`l3_route_resolver.go`): Always, or CrossSubnet and the remote's
/// address outside our node subnet.
pub fn uses_vxlan(modes: (bool, bool), me: &Me, remote: Ipv4Addr) -> bool {
    let (always, cross) = modes;
    always || (cross && !me.net.is_some_and(|n| n.contains(&remote)))
}

pub fn vxlan_link(k: &KernelSnapshot) -> Option<&KernelLink> {
    k.link(VXLAN_DEVICE)
}

/// How this node's address was chosen, in the operator's settings:
/// `IP=...`, or the autodetection method (first-found by default).
pub fn chosen_by(ctx: &Ctx) -> String {
    let ip = ctx.env("IP").unwrap_or_default();
    match ip.parse::<IpSetting>() {
        Ok(IpSetting::Fixed { .. }) => format!("IP={ip}"),
        _ => match ctx.env("IP_AUTODETECTION_METHOD").filter(|m| !m.is_empty()) {
            Some(m) => format!("IP_AUTODETECTION_METHOD={m}"),
            None => format!(
                "IP_AUTODETECTION_METHOD={} (the default)",
                Method::<Ipv4Net>::FirstFound
            ),
        },
    }
}

/// Whether the address is fixed with `IP=A.B.C.D[/N]`.
pub fn ip_is_fixed(ctx: &Ctx) -> bool {
    matches!(
        ctx.env("IP").unwrap_or_default().parse::<IpSetting>(),
        Ok(IpSetting::Fixed { .. })
    )
}

/// The first global address on link `index`, with its prefix.
pub fn first_addr(k: &KernelSnapshot, index: u32) -> Option<Ipv4Net> {
    k.addrs_of(index)
        .filter(|a| tabby_felix_lite::autodetect::is_global_unicast(a.ip))
        .find_map(|a| Ipv4Net::new(a.ip, a.prefix_len).ok())
}
