//! Choosing one remote block's path (the rules in `routes.rs`'s module
//! doc): Calico's encapsulation modes first, then for `vxlanMode: Never`
//! the BGP rules — mesh session, learned route, fallback after a hold time.

use super::routes_model::{is_connected, Choice, Family, Inputs, LastPath, NodeInfo, PeerHealth};
use crate::resources::ippool::EncapMode;
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

pub(super) fn choose(
    inp: &Inputs,
    block: &IpNet,
    owner: &str,
    live: &mut BTreeMap<IpNet, LastPath>,
    pathless: &mut BTreeSet<IpNet>,
) -> Choice {
    let me = &inp.local;
    let fam = Family::of(block);
    if !inp.routing {
        return Choice::NoRoute("CALICO_NETWORKING_BACKEND=none".into());
    }
    let Some(node) = inp.nodes.get(owner) else {
        return Choice::NoRoute(format!("node {owner} has no Node resource"));
    };
    let mode = inp
        .pools
        .iter()
        .find(|p| p.cidr.contains(block))
        .map_or(EncapMode::Never, |p| p.vxlan_mode);
    let owner_ip = node.addr(fam);
    match mode {
        EncapMode::Always => return vxlan(inp, fam, node, owner, "pool vxlanMode Always".into()),
        EncapMode::CrossSubnet => {
            return match (me.net(fam), owner_ip) {
                (Some(mine), Some(theirs)) if mine.contains(&theirs) => {
                    Choice::Native(theirs, "pool vxlanMode CrossSubnet, same subnet".into())
                }
                _ => vxlan(
                    inp,
                    fam,
                    node,
                    owner,
                    "pool vxlanMode CrossSubnet, other subnet".into(),
                ),
            }
        }
        EncapMode::Never => {}
    }
    if !inp.bgp {
        return Choice::NoRoute("pool vxlanMode Never and BGP is off".into());
    }
    // Rule 1: the mesh session to the owner.
    // An IPv6 block's session may be the IPv4 one (MP-BGP): its health
    // counts, its gateway is the owner's IPv6 address.
    let session = node.session_addr(me);
    let mesh_trouble = match (owner_ip, session) {
        (None, _) => format!("node {owner} has no {} address", fam.name()),
        (Some(ip), _) if !is_connected(me, ip) => {
            format!("node IP {ip} is not on a connected subnet")
        }
        (Some(ip), None) => format!("no BGP mesh session to {ip}"),
        (Some(ip), Some(peer)) => match inp.mesh.get(&peer) {
            None => format!("no BGP mesh session to {peer}"),
            Some(h) => match down_for(inp, h) {
                Ok(why) => {
                    live.insert(
                        *block,
                        LastPath {
                            gateway: ip,
                            peer: Some(peer),
                        },
                    );
                    return Choice::Native(ip, why.into());
                }
                Err(t) => t.replace("{peer}", &peer.to_string()),
            },
        },
    };
    // Rule 2: a route learned from a non-mesh peer.
    if let Some((gw, peer, why)) = learned_path(inp, block) {
        live.insert(
            *block,
            LastPath {
                gateway: gw,
                peer: Some(peer),
            },
        );
        return Choice::Native(gw, why);
    }
    pathless.insert(*block);
    // Rules 3 and 4.
    let last = inp.last.get(block);
    let since = lost_since(inp, block);
    let gone = inp.now.saturating_duration_since(since);
    let failed = last
        .and_then(|l| l.peer)
        .and_then(|p| health_of(inp, p))
        .is_some_and(|h| matches!(h, PeerHealth::Failed(_)));
    // With no non-mesh peer nothing can teach a path: waiting is useless.
    let trouble = if inp.peers.is_empty() {
        mesh_trouble
    } else if failed {
        format!("{mesh_trouble}; the BGP path's peer is down by BFD")
    } else {
        let what = format!(
            "no BGP path for {}s (hold time {}s)",
            gone.as_secs(),
            inp.hold_time.as_secs()
        );
        if gone <= inp.hold_time {
            return match last {
                Some(l) => Choice::Native(l.gateway, format!("{what}, keeping the last path")),
                None => Choice::NoRoute(format!("{what}; {mesh_trouble}")),
            };
        }
        format!("{what}; {mesh_trouble}")
    };
    if !inp.fallback {
        return Choice::NoRoute(format!(
            "{trouble}; VXLAN fallback is off (TABBY_VXLAN_FALLBACK=false)"
        ));
    }
    match (me.has_vtep(fam), node.tunnel(fam)) {
        (true, Some(t)) => Choice::Fallback(t, trouble),
        (false, _) => Choice::NoRoute(format!(
            "{trouble}; this node has no VXLAN tunnel address for fallback"
        )),
        (true, None) => Choice::NoRoute(format!(
            "{trouble}; node {owner} has no VXLAN tunnel address for fallback"
        )),
    }
}

fn vxlan(inp: &Inputs, fam: Family, node: &NodeInfo, owner: &str, why: String) -> Choice {
    match (inp.local.has_vtep(fam), node.tunnel(fam)) {
        (true, Some(t)) => Choice::Vxlan(t, why),
        (false, _) => Choice::NoRoute(format!("{why}, but this node has no VXLAN tunnel address")),
        (true, None) => Choice::NoRoute(format!(
            "{why}, but node {owner} has no VXLAN tunnel address"
        )),
    }
}

/// Ok(reason) while a session still counts as up; Err(why not) once it is
/// down past the hold time (or failed by BFD). `{peer}` is for the caller.
fn down_for(inp: &Inputs, h: &PeerHealth) -> Result<&'static str, String> {
    match h {
        PeerHealth::Established => Ok("BGP mesh peer Established"),
        PeerHealth::DownSince(t) => {
            let d = inp.now.saturating_duration_since(*t);
            if d > inp.hold_time {
                Err(format!(
                    "BGP session to {{peer}} not Established for {}s (hold time {}s)",
                    d.as_secs(),
                    inp.hold_time.as_secs()
                ))
            } else {
                Ok("BGP mesh peer down for less than the hold time")
            }
        }
        PeerHealth::Failed(_) => Err("BGP session to {peer} down by BFD".into()),
    }
}

fn health_of(inp: &Inputs, peer: IpAddr) -> Option<PeerHealth> {
    inp.mesh
        .get(&peer)
        .copied()
        .or_else(|| inp.peers.get(&peer).map(|p| p.health))
}

/// A session that still counts as up (Established, or down no longer than
/// the hold time).
fn usable(inp: &Inputs, h: PeerHealth, hold: Duration) -> bool {
    match h {
        PeerHealth::Established => true,
        PeerHealth::DownSince(t) => inp.now.saturating_duration_since(t) <= hold,
        PeerHealth::Failed(_) => false,
    }
}

/// Whether the passing of time alone can change what [`calculate`]
/// returns for `inp`: only while a session is down but not yet past the
/// hold time (rules 1 and 2 still count it, and the reasons count its
/// seconds) or while some block has no BGP path (its hold time runs out,
/// its reason counts seconds). Otherwise a recalculation with a later
/// `now` gives the same routes and rows, and the run loop's 1 s ticker
/// need not recalculate (with thousands of learned routes that was most
/// of an idle node's CPU).
///
/// [`calculate`]: super::routes::calculate
pub fn clock_matters(inp: &Inputs) -> bool {
    let counting = |h: &PeerHealth| matches!(h, PeerHealth::DownSince(_));
    !inp.lost_since.is_empty()
        || inp.mesh.values().any(counting)
        || inp.peers.values().any(|p| counting(&p.health))
}

/// Since when `block` has had no rule 1/2 path: the run loop's record, else
/// (it just went) when the session its last path depended on went down;
/// with no last path, when the last non-mesh session went down (none has
/// been able to teach one since); else now.
pub fn lost_since(inp: &Inputs, block: &IpNet) -> Instant {
    if let Some(t) = inp.lost_since.get(block) {
        return *t;
    }
    let down = |h: PeerHealth| match h {
        PeerHealth::DownSince(t) | PeerHealth::Failed(t) => Some(t),
        PeerHealth::Established => None,
    };
    let since = match inp.last.get(block) {
        Some(l) => l.peer.and_then(|p| health_of(inp, p)).and_then(down),
        None => inp
            .peers
            .values()
            .map(|p| down(p.health))
            .collect::<Option<Vec<_>>>()
            .and_then(|v| v.into_iter().max()),
    };
    since.map_or(inp.now, |t| t.min(inp.now))
}

/// Rule 2: the most specific usable learned route covering `block`, as
/// (gateway, peer, reason).
fn learned_path(inp: &Inputs, block: &IpNet) -> Option<(IpAddr, IpAddr, String)> {
    let me = &inp.local;
    let mut best: Option<(u8, IpAddr, IpAddr, String)> = None;
    for l in &inp.learned {
        let (Some(from), Some(nh)) = (l.from_peer, l.next_hop) else {
            continue;
        };
        // A next hop of the other family cannot carry the block.
        if nh.is_ipv4() != block.addr().is_ipv4() {
            continue;
        }
        if inp.mesh.contains_key(&from) || !l.prefix.contains(block) {
            continue;
        }
        if !inp.pools.iter().any(|p| p.cidr.contains(&l.prefix)) {
            continue;
        }
        let Some(peer) = inp.peers.get(&from) else {
            continue;
        };
        if !usable(inp, peer.health, inp.hold_time) {
            continue;
        }
        if best.as_ref().is_some_and(|b| b.0 >= l.prefix.prefix_len()) {
            continue;
        }
        let label = if peer.kind == "route reflector" {
            format!("RR {from}")
        } else {
            format!("{from} ({}, AS {})", peer.kind, peer.asn)
        };
        let (gw, why) = if is_connected(me, nh) {
            let why = if nh == from {
                format!("learned from {label}")
            } else {
                format!("learned from {label}, next hop {nh}")
            };
            (nh, why)
        } else {
            match inp.resolved.get(&nh) {
                Some(gw) if is_connected(me, *gw) => (
                    *gw,
                    format!("learned from {label}, next hop {nh} resolved via {gw}"),
                ),
                _ => continue,
            }
        };
        best = Some((l.prefix.prefix_len(), gw, from, why));
    }
    best.map(|(_, gw, from, why)| (gw, from, why))
}

/// The run loop's memory after a calculation: the last path of every block
/// that has one now, and since when each pathless block has had none.
/// Blocks in neither set (gone, or in another mode) are forgotten.
pub fn remember(
    inp: &Inputs,
    out: &super::routes_model::Output,
) -> (
    std::collections::HashMap<IpNet, LastPath>,
    std::collections::HashMap<IpNet, Instant>,
) {
    let mut last = inp.last.clone();
    last.extend(out.live.iter().map(|(b, p)| (*b, *p)));
    last.retain(|b, _| out.live.contains_key(b) || out.pathless.contains(b));
    let lost = out
        .pathless
        .iter()
        .map(|b| (*b, lost_since(inp, b)))
        .collect();
    (last, lost)
}
