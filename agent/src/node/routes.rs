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
//! Restarts do not flap: the first desired state after a restart already
//! holds every remote block. Mesh sessions count down from agent start, so
//! rule 1 holds; a block whose path came from a ToR keeps the native route
//! the kernel still has (the run loop seeds the last paths from it) for a
//! hold time while the session comes back, so nothing is withdrawn in
//! between.

pub use super::routes_model::*;
use ipnet::Ipv4Net;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use tabby_felix_lite::model::{BlockRoute, LocalVxlan, Path, Pool, Vtep};

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
    d.pools = inp
        .pools
        .iter()
        .map(|p| Pool {
            cidr: p.cidr,
            nat_outgoing: p.nat_outgoing,
        })
        .collect();
    d.pools.sort();
    if d.vxlan.is_some() {
        for (name, n) in &inp.nodes {
            if name == &me.name {
                continue;
            }
            if let (Some(ip), Some(t), Some(mac)) = (n.ip, n.tunnel_ip, n.mac) {
                d.vteps.push(Vtep {
                    node: name.clone(),
                    node_ip: ip.addr(),
                    tunnel_ip: t,
                    mac,
                });
            }
        }
    }

    let mut seen = BTreeSet::new();
    let mut affinities = inp.affinities.clone();
    affinities.sort();
    for (block, owner) in &affinities {
        // Two affinities for one block only exist mid-handover; route it once.
        if !seen.insert(*block) {
            continue;
        }
        if owner == &me.name {
            d.routes.push(BlockRoute {
                cidr: *block,
                path: Path::Blackhole,
                node: owner.clone(),
            });
            out.rows
                .push(row(block, owner, "blackhole", "", "own block"));
            continue;
        }
        let choice = super::routes_bgp::choose(inp, block, owner, &mut out.live, &mut out.pathless);
        let (path, label, via, reason) = match choice {
            Choice::Native(gw, r) => (Some(Path::Native { gateway: gw }), "native", gw, r),
            Choice::Vxlan(t, r) => (Some(Path::Vxlan { tunnel_ip: t }), "vxlan", t, r),
            Choice::Fallback(t, r) => (Some(Path::Vxlan { tunnel_ip: t }), "vxlan-fallback", t, r),
            Choice::NoRoute(r) => (None, "none", Ipv4Addr::UNSPECIFIED, r),
        };
        if let Some(path) = path {
            d.routes.push(BlockRoute {
                cidr: *block,
                path,
                node: owner.clone(),
            });
            out.rows
                .push(row(block, owner, label, &via.to_string(), &reason));
        } else {
            out.rows.push(row(block, owner, label, "", &reason));
        }
    }

    if inp.bgp && inp.routing {
        learned_routes(inp, &seen, &mut out);
    }
    out.desired.routes.sort();
    out.rows.sort();
    out
}

/// Routes a non-mesh peer (a ToR, a route reflector) taught us for pod
/// prefixes no known block covers, when their next hop is usable.
fn learned_routes(inp: &Inputs, blocks: &BTreeSet<Ipv4Net>, out: &mut Output) {
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
            Some(nh) if is_connected(me, nh) => {
                out.desired.routes.push(BlockRoute {
                    cidr: l.prefix,
                    path: Path::Native { gateway: nh },
                    node: owner.clone(),
                });
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

fn row(block: &Ipv4Net, node: &str, path: &str, via: &str, reason: &str) -> BlockPathRow {
    BlockPathRow {
        block: *block,
        node: node.to_string(),
        path: path.to_string(),
        via: via.to_string(),
        reason: reason.to_string(),
    }
}
