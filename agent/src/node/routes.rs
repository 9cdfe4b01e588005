//! The route calculation: from what the datastore and the BGP speaker say,
//! the dataplane state felix-lite should converge to, and one status row
//! per block saying which path it takes and why. A pure function: the run
//! loop gathers the inputs, tests build them by hand.
//!
//! Routes to remote blocks come from the datastore's confirmed block
//! affinities, not from BGP: they exist before the mesh converges and stay
//! while tabby-node restarts (the first desired state after a restart
//! already holds every remote block, so nothing is withdrawn in between).
//! BGP's role for the mesh is liveness: a mesh session that stays down past
//! its hold time moves that peer's blocks to VXLAN (`vxlan-fallback`).

use crate::resources::ippool::EncapMode;
use ipnet::Ipv4Net;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use tabby_felix_lite::model::{BlockRoute, DesiredState, LocalVxlan, Path, Pool, Vtep};

/// What the calculation needs to know about one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// `spec.bgp.ipv4Address`, with its prefix.
    pub ip: Option<Ipv4Net>,
    pub tunnel_ip: Option<Ipv4Addr>,
    pub mac: Option<[u8; 6]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolInfo {
    pub cidr: Ipv4Net,
    pub vxlan_mode: EncapMode,
    pub nat_outgoing: bool,
    pub disabled: bool,
}

/// A mesh session as the fallback timer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerHealth {
    Established,
    /// Not Established since this instant (agent start if it never was).
    DownSince(Instant),
    /// Down since this instant by a failure detector's verdict (BFD): the
    /// peer is known gone, so no grace period — as if past the hold time.
    Failed(Instant),
}

/// A best path from the speaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LearnedRoute {
    pub prefix: Ipv4Net,
    pub next_hop: Option<Ipv4Addr>,
    pub from_peer: Option<Ipv4Addr>,
}

/// This node, as the route calculation sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    pub name: String,
    pub ip: Option<Ipv4Net>,
    pub interface: String,
    /// This node's VTEP (tunnel address and MAC), when it has one.
    pub vtep: Option<(Ipv4Addr, [u8; 6])>,
    /// Every subnet on this host's interfaces (the node subnet among them):
    /// a native next hop must be in one of them.
    pub connected: Vec<Ipv4Net>,
    pub disable_tx_checksum_offload: bool,
    /// `FELIX_VXLANMTU`; None: felix-lite derives it from the parent.
    pub vxlan_mtu: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct Inputs {
    pub local: Local,
    /// BGP is on (`CALICO_NETWORKING_BACKEND=bird`).
    pub bgp: bool,
    /// Routes are distributed at all (backend is not `none`).
    pub routing: bool,
    pub fallback: bool,
    pub hold_time: Duration,
    pub now: Instant,
    pub nodes: BTreeMap<String, NodeInfo>,
    /// Confirmed affinities: (block, node).
    pub affinities: Vec<(Ipv4Net, String)>,
    pub pools: Vec<PoolInfo>,
    /// Mesh sessions by peer address.
    pub mesh: HashMap<Ipv4Addr, PeerHealth>,
    pub learned: Vec<LearnedRoute>,
}

/// How one block is reached, for `tabbyctl node status`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct BlockPathRow {
    pub block: Ipv4Net,
    pub node: String,
    /// `native`, `vxlan`, `vxlan-fallback`, `blackhole` or `none`.
    pub path: String,
    /// The next hop (node IP, tunnel IP or BGP next hop); empty if none.
    pub via: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default)]
pub struct Output {
    pub desired: DesiredState,
    pub rows: Vec<BlockPathRow>,
}

enum Choice {
    Native(Ipv4Addr, String),
    Vxlan(Ipv4Addr, String),
    Fallback(Ipv4Addr, String),
    NoRoute(String),
}

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
        let choice = choose(inp, block, owner);
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

fn is_connected(me: &Local, ip: Ipv4Addr) -> bool {
    me.connected.iter().any(|n| n.contains(&ip))
}

fn choose(inp: &Inputs, block: &Ipv4Net, owner: &str) -> Choice {
    let me = &inp.local;
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
    let vxlan = |why: String| -> Choice {
        match (me.vtep.is_some(), node.tunnel_ip) {
            (true, Some(t)) => Choice::Vxlan(t, why),
            (false, _) => {
                Choice::NoRoute(format!("{why}, but this node has no VXLAN tunnel address"))
            }
            (true, None) => Choice::NoRoute(format!(
                "{why}, but node {owner} has no VXLAN tunnel address"
            )),
        }
    };
    let owner_ip = node.ip.map(|n| n.addr());
    match mode {
        EncapMode::Always => return vxlan("pool vxlanMode Always".into()),
        EncapMode::CrossSubnet => {
            return match (me.ip, owner_ip) {
                (Some(mine), Some(theirs)) if mine.contains(&theirs) => {
                    Choice::Native(theirs, "pool vxlanMode CrossSubnet, same subnet".into())
                }
                _ => vxlan("pool vxlanMode CrossSubnet, other subnet".into()),
            }
        }
        EncapMode::Never => {}
    }
    if !inp.bgp {
        return Choice::NoRoute("pool vxlanMode Never and BGP is off".into());
    }
    let Some(owner_ip) = owner_ip else {
        return Choice::NoRoute(format!("node {owner} has no IPv4 address"));
    };
    // Why native would not work, if it would not.
    let trouble = if !is_connected(me, owner_ip) {
        Some(format!("node IP {owner_ip} is not on a connected subnet"))
    } else {
        match inp.mesh.get(&owner_ip) {
            Some(PeerHealth::DownSince(t))
                if inp.now.saturating_duration_since(*t) > inp.hold_time =>
            {
                Some(format!(
                    "BGP session to {owner_ip} not Established for {}s (hold time {}s)",
                    inp.now.saturating_duration_since(*t).as_secs(),
                    inp.hold_time.as_secs()
                ))
            }
            Some(PeerHealth::Failed(t)) => Some(format!(
                "BFD declared {owner_ip} down {}s ago",
                inp.now.saturating_duration_since(*t).as_secs()
            )),
            _ => None,
        }
    };
    let Some(trouble) = trouble else {
        let why = match inp.mesh.get(&owner_ip) {
            Some(PeerHealth::Established) => "BGP mesh peer Established",
            Some(PeerHealth::DownSince(_) | PeerHealth::Failed(_)) => {
                "BGP mesh peer down for less than the hold time"
            }
            None => "node IP on a connected subnet",
        };
        return Choice::Native(owner_ip, why.into());
    };
    if !inp.fallback {
        return Choice::NoRoute(format!(
            "{trouble}; VXLAN fallback is off (TABBY_VXLAN_FALLBACK=false)"
        ));
    }
    match (me.vtep.is_some(), node.tunnel_ip) {
        (true, Some(t)) => Choice::Fallback(t, trouble),
        (false, _) => Choice::NoRoute(format!(
            "{trouble}; this node has no VXLAN tunnel address for fallback"
        )),
        (true, None) => Choice::NoRoute(format!(
            "{trouble}; node {owner} has no VXLAN tunnel address for fallback"
        )),
    }
}
