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

/// A BGP session as the fallback timer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerHealth {
    Established,
    /// Not Established since this instant (agent start if it never was).
    DownSince(Instant),
    /// Down by BFD since this instant: no grace period.
    Failed(Instant),
}

/// A non-mesh BGP peer (ToR, route reflector, BGPPeer), for rule 2 and the
/// status reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpPeerInfo {
    /// As `node status` prints the type: `node specific`, `global`.
    pub kind: String,
    pub asn: u32,
    pub health: PeerHealth,
}

/// The last rule 1/2 path a block had: kept for a hold time once it goes
/// (seeded at start from the kernel's routes, with no peer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastPath {
    pub gateway: Ipv4Addr,
    /// The session it depended on (the mesh peer or the one it was learned
    /// from); None when read back from the kernel at start.
    pub peer: Option<Ipv4Addr>,
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
    /// Non-mesh peers by address.
    pub peers: HashMap<Ipv4Addr, BgpPeerInfo>,
    /// The kernel's gateway towards a learned next hop that is not on a
    /// connected subnet (recursive resolution).
    pub resolved: HashMap<Ipv4Addr, Ipv4Addr>,
    /// The last BGP path of each block (see [`LastPath`]).
    pub last: HashMap<Ipv4Net, LastPath>,
    /// Since when each block has had no rule 1/2 path.
    pub lost_since: HashMap<Ipv4Net, Instant>,
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
    /// Blocks (vxlanMode Never, BGP on) with a rule 1/2 path now.
    pub live: BTreeMap<Ipv4Net, LastPath>,
    /// Blocks (vxlanMode Never, BGP on) without one.
    pub pathless: BTreeSet<Ipv4Net>,
}

pub(super) enum Choice {
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

pub(super) fn is_connected(me: &Local, ip: Ipv4Addr) -> bool {
    is_connected_to(&me.connected, ip)
}

pub fn is_connected_to(connected: &[Ipv4Net], ip: Ipv4Addr) -> bool {
    connected.iter().any(|n| n.contains(&ip))
}
