//! The route calculation's inputs and outputs (`routes.rs` computes,
//! `routes_bgp.rs` chooses a block's path): plain data, built by the run
//! loop and by tests.

use crate::resources::ippool::EncapMode;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};
use tabby_felix_lite::model::DesiredState;

/// What the calculation needs to know about one node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeInfo {
    /// `spec.bgp.ipv4Address`, with its prefix.
    pub ip: Option<Ipv4Net>,
    pub tunnel_ip: Option<Ipv4Addr>,
    pub mac: Option<[u8; 6]>,
    /// `spec.bgp.ipv6Address`, with its prefix.
    pub ip6: Option<Ipv6Net>,
    /// `spec.ipv6VXLANTunnelAddr` and the IPv6 VTEP's MAC.
    pub tunnel_ip6: Option<Ipv6Addr>,
    pub mac6: Option<[u8; 6]>,
}

impl NodeInfo {
    /// The node's address in `fam` (the gateway of its native routes).
    pub fn addr(&self, fam: Family) -> Option<IpAddr> {
        match fam {
            Family::V4 => self.ip.map(|n| IpAddr::V4(n.addr())),
            Family::V6 => self.ip6.map(|n| IpAddr::V6(n.addr())),
        }
    }

    pub fn tunnel(&self, fam: Family) -> Option<IpAddr> {
        match fam {
            Family::V4 => self.tunnel_ip.map(IpAddr::V4),
            Family::V6 => self.tunnel_ip6.map(IpAddr::V6),
        }
    }

    /// The address this node's mesh session runs to: IPv4 when both ends
    /// have one (IPv6 rides on it, RFC 4760), else IPv6.
    pub fn session_addr(&self, me: &Local) -> Option<IpAddr> {
        match (me.ip, self.ip, me.ip6, self.ip6) {
            (Some(_), Some(theirs), _, _) => Some(IpAddr::V4(theirs.addr())),
            (_, _, Some(_), Some(theirs)) => Some(IpAddr::V6(theirs.addr())),
            _ => None,
        }
    }
}

/// An address family: a block, a route and its next hop are all of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(net: &IpNet) -> Family {
        match net {
            IpNet::V4(_) => Family::V4,
            IpNet::V6(_) => Family::V6,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolInfo {
    pub cidr: IpNet,
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
    pub gateway: IpAddr,
    /// The session it depended on (the mesh peer or the one it was learned
    /// from); None when read back from the kernel at start.
    pub peer: Option<IpAddr>,
}

/// A best path from the speaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LearnedRoute {
    pub prefix: IpNet,
    pub next_hop: Option<IpAddr>,
    /// The session it came over: an IPv6 prefix may come over an IPv4 one.
    pub from_peer: Option<IpAddr>,
}

/// This node, as the route calculation sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    pub name: String,
    pub ip: Option<Ipv4Net>,
    pub interface: String,
    /// This node's VTEP (tunnel address and MAC), when it has one.
    pub vtep: Option<(Ipv4Addr, [u8; 6])>,
    /// `spec.bgp.ipv6Address` (dual stack or IPv6 only).
    pub ip6: Option<Ipv6Net>,
    /// The interface holding it (`vxlan-v6.calico`'s parent); empty: the
    /// node interface.
    pub interface6: String,
    /// This node's IPv6 VTEP on `vxlan-v6.calico`.
    pub vtep6: Option<(Ipv6Addr, [u8; 6])>,
    /// Every subnet on this host's interfaces (the node subnets among
    /// them), both families: a native next hop must be in one of them.
    pub connected: Vec<IpNet>,
    pub disable_tx_checksum_offload: bool,
    /// `FELIX_VXLANMTU`; None: felix-lite derives it from the parent.
    pub vxlan_mtu: Option<u32>,
    /// `FELIX_VXLANMTUV6`.
    pub vxlan_mtu6: Option<u32>,
}

impl Local {
    pub fn has_vtep(&self, fam: Family) -> bool {
        match fam {
            Family::V4 => self.vtep.is_some(),
            Family::V6 => self.vtep6.is_some(),
        }
    }

    /// This node's subnet in `fam`.
    pub fn net(&self, fam: Family) -> Option<IpNet> {
        match fam {
            Family::V4 => self.ip.map(IpNet::V4),
            Family::V6 => self.ip6.map(IpNet::V6),
        }
    }
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
    pub affinities: Vec<(IpNet, String)>,
    pub pools: Vec<PoolInfo>,
    /// Mesh sessions by peer address.
    pub mesh: HashMap<IpAddr, PeerHealth>,
    pub learned: Vec<LearnedRoute>,
    /// Non-mesh peers by address.
    pub peers: HashMap<IpAddr, BgpPeerInfo>,
    /// The kernel's gateway towards a learned next hop that is not on a
    /// connected subnet (recursive resolution).
    pub resolved: HashMap<IpAddr, IpAddr>,
    /// The last BGP path of each block (see [`LastPath`]).
    pub last: HashMap<IpNet, LastPath>,
    /// Since when each block has had no rule 1/2 path.
    pub lost_since: HashMap<IpNet, Instant>,
}

/// How one block is reached, for `tabbyctl node status`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct BlockPathRow {
    pub block: IpNet,
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
    pub live: BTreeMap<IpNet, LastPath>,
    /// Blocks (vxlanMode Never, BGP on) without one.
    pub pathless: BTreeSet<IpNet>,
}

pub(crate) enum Choice {
    Native(IpAddr, String),
    Vxlan(IpAddr, String),
    Fallback(IpAddr, String),
    NoRoute(String),
}

pub(crate) fn is_connected(me: &Local, ip: IpAddr) -> bool {
    is_connected_to(&me.connected, ip)
}

pub fn is_connected_to(connected: &[IpNet], ip: IpAddr) -> bool {
    connected.iter().any(|n| n.contains(&ip))
}
