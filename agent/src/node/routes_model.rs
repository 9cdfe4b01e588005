//! The route calculation's inputs and outputs (`routes.rs` computes,
//! `routes_bgp.rs` chooses a block's path): plain data, built by the run
//! loop and by tests.

use crate::resources::ippool::EncapMode;
use ipnet::Ipv4Net;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use tabby_felix_lite::model::DesiredState;

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

pub(crate) enum Choice {
    Native(Ipv4Addr, String),
    Vxlan(Ipv4Addr, String),
    Fallback(Ipv4Addr, String),
    NoRoute(String),
}

pub(crate) fn is_connected(me: &Local, ip: Ipv4Addr) -> bool {
    is_connected_to(&me.connected, ip)
}

pub fn is_connected_to(connected: &[Ipv4Net], ip: Ipv4Addr) -> bool {
    connected.iter().any(|n| n.contains(&ip))
}
