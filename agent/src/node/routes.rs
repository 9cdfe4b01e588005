//! The route calculation: from what the datastore and the BGP speaker say,
//! the dataplane state felix-lite should converge to, and one status row
//! per block saying which path it takes and why. A pure function: the run
//! loop gathers the inputs (and the clocks: when a block last had a BGP
//! path), tests build them by hand.
//!
//! Which blocks exist comes from the datastore's confirmed block
//! affinities. For a block in a pool with `vxlanMode: Never` and BGP on,
//! the path is, in order (`choose` in `routes_bgp.rs`):
//!
//! 1. the mesh session to the owner, Established or down for less than the
//!    hold time, with the owner on a connected subnet: native via the owner;
//! 2. else a usable BGP-learned route covering the block (exact, or less
//!    specific but inside a pool) from a non-mesh peer (ToR, route
//!    reflector, BGPPeer) whose session is not down past the hold time: its
//!    next hop on a connected subnet, or resolved through the kernel's
//!    route to it (BIRD's `gateway recursive`): native via that gateway;
//! 3. else, once there has been no such path for longer than the hold time
//!    (at once when the last path's peer is `Failed`, by BFD, or when no
//!    non-mesh peer exists that could teach one): the VXLAN fallback;
//! 4. else no route, with the reason.
//!
//! `CrossSubnet` and `Always` keep Calico's meaning whatever BGP learns.
//!
//! Both families go through the same rules: an IPv6 block's gateway is
//! the owner's IPv6 address, its tunnel `vxlan-v6.calico` and the owner's
//! IPv6 VTEP, and the session whose health counts is the one to the owner
//! (the IPv4 session carrying IPv6 when both ends have IPv4, else the
//! IPv6 one: `NodeInfo::session_addr`).
//!
//! Restarts do not flap: the first desired state after a restart already
//! holds every remote block. Mesh sessions count down from agent start, so
//! rule 1 holds; a block whose path came from a ToR keeps the native route
//! the kernel still has (the run loop seeds the last paths from it) for a
//! hold time while the session comes back, so nothing is withdrawn in
//! between.

pub use super::routes_model::*;
use ipnet::IpNet;
use std::collections::BTreeSet;
use std::net::IpAddr;
use tabby_felix_lite::model::{
    BlockRoute, BlockRoute6, LocalVxlan, LocalVxlan6, Path, Path6, Pool, Pool6, Vtep, Vtep6,
};

pub fn calculate(inp: &Inputs) -> Output {
    let me = &inp.local;
    let mut out = Output::default();
    let d = &mut out.desired;
    d.node_interface = me.interface.clone();
    d.vxlan = match (me.vtep, me.ip) {
        (Some((tunnel_ip, mac)), Some(ip)) => Some(LocalVxlan {
            parent: me.interface.clone(),
            local_ip: ip.addr(),
            tunnel_ip,
            mac,
            // 0 is the model's "derive from the parent": felix-lite decides.
            mtu: me.vxlan_mtu.unwrap_or(0),
            disable_tx_checksum_offload: me.disable_tx_checksum_offload,
        }),
        _ => None,
    };
    d.vxlan6 = match (me.vtep6, me.ip6) {
        (Some((tunnel_ip, mac)), Some(ip)) => Some(LocalVxlan6 {
            parent: if me.interface6.is_empty() {
                me.interface.clone()
            } else {
                me.interface6.clone()
            },
            local_ip: ip.addr(),
            tunnel_ip,
            mac,
            mtu: me.vxlan_mtu6.unwrap_or(0),
        }),
        _ => None,
    };
    for p in &inp.pools {
        match p.cidr {
            IpNet::V4(cidr) => d.pools.push(Pool {
                cidr,
                nat_outgoing: p.nat_outgoing,
            }),
            IpNet::V6(cidr) => d.pools6.push(Pool6 {
                cidr,
                nat_outgoing: p.nat_outgoing,
            }),
        }
    }
    d.pools.sort();
    d.pools6.sort();
    vteps(inp, d);

    let mut seen = BTreeSet::new();
    let mut affinities = inp.affinities.clone();
    affinities.sort();
    for (block, owner) in &affinities {
        // Two affinities for one block only exist mid-handover; route it once.
        if !seen.insert(*block) {
            continue;
        }
        if owner == &me.name {
            push_route(&mut out, block, owner, Some(Hop::Blackhole));
            out.rows
                .push(row(block, owner, "blackhole", "", "own block"));
            continue;
        }
        let choice = super::routes_bgp::choose(inp, block, owner, &mut out.live, &mut out.pathless);
        let (path, label, via, reason) = match choice {
            Choice::Native(gw, r) => (Some(Hop::Native(gw)), "native", Some(gw), r),
            Choice::Vxlan(t, r) => (Some(Hop::Vxlan(t)), "vxlan", Some(t), r),
            Choice::Fallback(t, r) => (Some(Hop::Vxlan(t)), "vxlan-fallback", Some(t), r),
            Choice::NoRoute(r) => (None, "none", None, r),
        };
        let via = via.map(|v| v.to_string()).unwrap_or_default();
        if !push_route(&mut out, block, owner, path) && label != "none" {
            // A next hop of the other family: the rules never pick one,
            // but say so rather than program nonsense.
            out.rows.push(row(
                block,
                owner,
                "none",
                "",
                "next hop of the other address family",
            ));
            continue;
        }
        out.rows.push(row(block, owner, label, &via, &reason));
    }

    if inp.bgp && inp.routing {
        learned_routes(inp, &seen, &mut out);
    }
    out.desired.routes.sort();
    out.desired.routes6.sort();
    out.rows.sort();
    out
}

/// Every remote node's VTEP of each family this node has a VTEP of.
fn vteps(inp: &Inputs, d: &mut tabby_felix_lite::model::DesiredState) {
    let me = &inp.local;
    for (name, n) in inp.nodes.iter().filter(|(name, _)| *name != &me.name) {
        if let (true, Some(ip), Some(t), Some(mac)) = (me.vtep.is_some(), n.ip, n.tunnel_ip, n.mac)
        {
            d.vteps.push(Vtep {
                node: name.clone(),
                node_ip: ip.addr(),
                tunnel_ip: t,
                mac,
            });
        }
        if let (true, Some(ip), Some(t), Some(mac)) =
            (me.vtep6.is_some(), n.ip6, n.tunnel_ip6, n.mac6)
        {
            d.vteps6.push(Vtep6 {
                node: name.clone(),
                node_ip: ip.addr(),
                tunnel_ip: t,
                mac,
            });
        }
    }
}

/// A chosen path before it is split by family into felix-lite's model.
enum Hop {
    Blackhole,
    Native(IpAddr),
    Vxlan(IpAddr),
}

/// Adds `block`'s route to the desired state of its family. False when the
/// path's address is of the other family than the block (the rules never
/// choose one; this keeps it out of the kernel if they ever did).
fn push_route(out: &mut Output, block: &IpNet, owner: &str, hop: Option<Hop>) -> bool {
    let Some(hop) = hop else { return true };
    let node = owner.to_string();
    match (block, hop) {
        (IpNet::V4(cidr), hop) => {
            let path = match hop {
                Hop::Blackhole => Path::Blackhole,
                Hop::Native(IpAddr::V4(gateway)) => Path::Native { gateway },
                Hop::Vxlan(IpAddr::V4(tunnel_ip)) => Path::Vxlan { tunnel_ip },
                _ => return false,
            };
            out.desired.routes.push(BlockRoute {
                cidr: *cidr,
                path,
                node,
            });
        }
        (IpNet::V6(cidr), hop) => {
            let path = match hop {
                Hop::Blackhole => Path6::Blackhole,
                Hop::Native(IpAddr::V6(gateway)) => Path6::Native { gateway },
                Hop::Vxlan(IpAddr::V6(tunnel_ip)) => Path6::Vxlan { tunnel_ip },
                _ => return false,
            };
            out.desired.routes6.push(BlockRoute6 {
                cidr: *cidr,
                path,
                node,
            });
        }
    }
    true
}

/// Routes a non-mesh peer (a ToR, a route reflector) taught us for pod
/// prefixes no known block covers, when their next hop is usable.
fn learned_routes(inp: &Inputs, blocks: &BTreeSet<IpNet>, out: &mut Output) {
    let me = &inp.local;
    for l in &inp.learned {
        let Some(from) = l.from_peer else { continue };
        if inp.mesh.contains_key(&from) {
            continue;
        }
        if blocks
            .iter()
            .any(|b| b.contains(&l.prefix) || l.prefix.contains(b))
        {
            continue;
        }
        // Only pod addresses: anything else (node subnets, defaults) is the
        // host's routing, not Tabby's.
        if !inp.pools.iter().any(|p| p.cidr.contains(&l.prefix)) {
            continue;
        }
        let owner = format!("bgp peer {from}");
        match l.next_hop {
            Some(nh)
                if is_connected(me, nh)
                    && push_route(out, &l.prefix, &owner, Some(Hop::Native(nh))) =>
            {
                out.rows.push(row(
                    &l.prefix,
                    &owner,
                    "native",
                    &nh.to_string(),
                    "learned by BGP",
                ));
            }
            nh => out.rows.push(row(
                &l.prefix,
                &owner,
                "none",
                "",
                &format!(
                    "learned by BGP with next hop {} that is not on a connected subnet",
                    nh.map_or("(none)".to_string(), |n| n.to_string())
                ),
            )),
        }
    }
}

fn row(block: &IpNet, node: &str, path: &str, via: &str, reason: &str) -> BlockPathRow {
    BlockPathRow {
        block: *block,
        node: node.to_string(),
        path: path.to_string(),
        via: via.to_string(),
        reason: reason.to_string(),
    }
}
