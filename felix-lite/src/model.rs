//! The desired dataplane state felix-lite accepts. The agent (or the
//! `Dataplane` gRPC service) builds it; the reconciler makes the kernel
//! match it. Nothing here knows where the state came from.

use ipnet::{Ipv4Net, Ipv6Net};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Calico's VXLAN defaults (Felix `VXLANVNI`, `VXLANPort`).
pub const VXLAN_DEVICE: &str = "vxlan.calico";
pub const VXLAN_VNI: u32 = 4096;
pub const VXLAN_PORT: u16 = 4789;
/// Bytes VXLAN adds to a packet (outer IPv4 + UDP + VXLAN + inner Ethernet).
pub const VXLAN_OVERHEAD: u32 = 50;
/// Felix's IPv6 VXLAN device (`VXLANVNI`/`VXLANPort` are shared with IPv4).
pub const VXLAN_V6_DEVICE: &str = "vxlan-v6.calico";
/// Bytes VXLAN over IPv6 adds (the outer header is 20 bytes longer).
pub const VXLAN_V6_OVERHEAD: u32 = 70;
/// What the pod's IPv6 default route points at (Calico's CNI plugin): the
/// EUI-64 link-local address of the host end's MAC `ee:ee:ee:ee:ee:ee`.
pub const POD_GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0xecee, 0xeeff, 0xfeee, 0xeeee);
/// Routing protocol number on every route Tabby writes. Only routes carrying
/// it are ever changed or deleted; Calico's Felix uses 80, BIRD 12, so a node
/// migrating from Calico keeps the two apart.
pub const TABBY_ROUTE_PROTOCOL: u8 = 81;

/// How one remote (or own) block is reached.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Path {
    /// `<block> via <node IP> dev <node interface>`.
    Native { gateway: Ipv4Addr },
    /// `<block> via <remote tunnel IP> dev vxlan.calico onlink`.
    Vxlan { tunnel_ip: Ipv4Addr },
    /// This node's own affine block: unassigned addresses are dropped here.
    Blackhole,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockRoute {
    pub cidr: Ipv4Net,
    pub path: Path,
    /// Owning node, for logs and status only.
    pub node: String,
}

/// A remote node's VXLAN endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Vtep {
    pub node: String,
    pub node_ip: Ipv4Addr,
    pub tunnel_ip: Ipv4Addr,
    pub mac: [u8; 6],
}

/// A local pod: `<ip>/32 dev <host_interface> scope link`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Workload {
    pub ip: Ipv4Addr,
    pub host_interface: String,
    pub workload_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pool {
    pub cidr: Ipv4Net,
    pub nat_outgoing: bool,
}

/// This node's own VXLAN endpoint. Absent when no pool uses VXLAN (and no
/// fallback is wanted): then `vxlan.calico` is removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalVxlan {
    /// The interface VXLAN is bound to (the autodetected node interface).
    pub parent: String,
    /// The node address: the VXLAN `local` address.
    pub local_ip: Ipv4Addr,
    /// This node's tunnel address, put on the device as a /32.
    pub tunnel_ip: Ipv4Addr,
    pub mac: [u8; 6],
    /// Felix `VXLANMTU`: 0 = parent MTU - [`VXLAN_OVERHEAD`], worked out by
    /// the reconciler on every pass ([`crate::mtu::vxlan_mtu`]).
    pub mtu: u32,
    /// Turn tx checksum offload off on the device (Felix
    /// `ChecksumOffloadBroken`).
    pub disable_tx_checksum_offload: bool,
}

/// How one remote (or own) IPv6 block is reached; [`Path`] for IPv6.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Path6 {
    /// `<block> via <node IPv6> dev <node interface>`.
    Native {
        gateway: Ipv6Addr,
    },
    /// `<block> via <remote tunnel IPv6> dev vxlan-v6.calico onlink`.
    Vxlan {
        tunnel_ip: Ipv6Addr,
    },
    Blackhole,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockRoute6 {
    pub cidr: Ipv6Net,
    pub path: Path6,
    /// Owning node, for logs and status only.
    pub node: String,
}

/// A remote node's IPv6 VXLAN endpoint (on `vxlan-v6.calico`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Vtep6 {
    pub node: String,
    pub node_ip: Ipv6Addr,
    pub tunnel_ip: Ipv6Addr,
    /// Calico derives it from `sha1("<node>-v6")` (`VXLANTunnelMACAddrV6`).
    pub mac: [u8; 6],
}

/// A local pod's IPv6 address: `<ip>/128 dev <host_interface>`. The pod's
/// default route goes via [`POD_GATEWAY_V6`], which the host end holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Workload6 {
    pub ip: Ipv6Addr,
    pub host_interface: String,
    pub workload_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pool6 {
    pub cidr: Ipv6Net,
    pub nat_outgoing: bool,
}

/// This node's own IPv6 VXLAN endpoint: `vxlan-v6.calico`. Absent: the
/// device is removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalVxlan6 {
    /// The interface holding the node's IPv6 address.
    pub parent: String,
    pub local_ip: Ipv6Addr,
    /// Put on the device as a /128.
    pub tunnel_ip: Ipv6Addr,
    pub mac: [u8; 6],
    /// Felix `VXLANMTUV6`: 0 = parent MTU - [`VXLAN_V6_OVERHEAD`].
    pub mtu: u32,
}

/// Everything the reconciler converges the kernel to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredState {
    /// The node's own interface, for native routes.
    pub node_interface: String,
    pub vxlan: Option<LocalVxlan>,
    pub routes: Vec<BlockRoute>,
    pub vteps: Vec<Vtep>,
    pub workloads: Vec<Workload>,
    pub pools: Vec<Pool>,
    /// IPv6 (dual stack or IPv6 only). Native IPv6 routes leave by
    /// `node_interface` too.
    pub vxlan6: Option<LocalVxlan6>,
    pub routes6: Vec<BlockRoute6>,
    pub vteps6: Vec<Vtep6>,
    pub workloads6: Vec<Workload6>,
    pub pools6: Vec<Pool6>,
}
