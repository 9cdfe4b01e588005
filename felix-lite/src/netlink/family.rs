//! The two address families behind one trait, so the route, neighbour and
//! diff code is written once: IPv4 (`Ipv4Net`) stays the default type
//! everywhere, IPv6 (`Ipv6Net`) is the same code with another parameter.

use ipnet::{Ipv4Net, Ipv6Net};
use netlink_packet_route::neighbour::NeighbourAddress;
use netlink_packet_route::route::RouteAddress;
use netlink_packet_route::AddressFamily;
use std::fmt::{Debug, Display};
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A prefix type of one family (`Ipv4Net` or `Ipv6Net`) and what netlink
/// needs to know about it.
pub trait Net: Copy + Eq + Hash + Ord + Debug + Display + Send + Sync + 'static {
    type Addr: Copy + Eq + Hash + Ord + Debug + Display + Send + Sync + 'static;
    const FAMILY: AddressFamily;
    /// Bits in an address: the prefix length of a host route.
    const MAX_LEN: u8;
    /// The metric a route gets when the request names none: IPv6 turns 0
    /// into 1024 (`IP6_RT_PRIO_USER`), so that is where Tabby's IPv6
    /// routes sit.
    const DEFAULT_METRIC: u32;
    fn new(addr: Self::Addr, len: u8) -> Option<Self>;
    fn network(&self) -> Self::Addr;
    fn plen(&self) -> u8;
    fn unspecified() -> Self::Addr;
    fn route_addr(a: Self::Addr) -> RouteAddress;
    fn from_route_addr(a: &RouteAddress) -> Option<Self::Addr>;
    fn neigh_addr(a: Self::Addr) -> NeighbourAddress;
    fn from_neigh_addr(a: &NeighbourAddress) -> Option<Self::Addr>;
    fn from_ip(a: IpAddr) -> Option<Self::Addr>;
    fn to_ip(a: Self::Addr) -> IpAddr;
    fn host(a: Self::Addr) -> Self {
        Self::new(a, Self::MAX_LEN).expect("a full-length prefix is valid")
    }
}

impl Net for Ipv4Net {
    type Addr = Ipv4Addr;
    const FAMILY: AddressFamily = AddressFamily::Inet;
    const MAX_LEN: u8 = 32;
    const DEFAULT_METRIC: u32 = 0;
    fn new(addr: Ipv4Addr, len: u8) -> Option<Self> {
        Ipv4Net::new(addr, len).ok()
    }
    fn network(&self) -> Ipv4Addr {
        Ipv4Net::network(self)
    }
    fn plen(&self) -> u8 {
        self.prefix_len()
    }
    fn unspecified() -> Ipv4Addr {
        Ipv4Addr::UNSPECIFIED
    }
    fn route_addr(a: Ipv4Addr) -> RouteAddress {
        RouteAddress::Inet(a)
    }
    fn from_route_addr(a: &RouteAddress) -> Option<Ipv4Addr> {
        match a {
            RouteAddress::Inet(a) => Some(*a),
            _ => None,
        }
    }
    fn neigh_addr(a: Ipv4Addr) -> NeighbourAddress {
        NeighbourAddress::Inet(a)
    }
    fn from_neigh_addr(a: &NeighbourAddress) -> Option<Ipv4Addr> {
        match a {
            NeighbourAddress::Inet(a) => Some(*a),
            // AF_BRIDGE dumps carry the VTEP address as raw bytes.
            NeighbourAddress::Other(b) => <[u8; 4]>::try_from(b.as_slice()).ok().map(Into::into),
            _ => None,
        }
    }
    fn from_ip(a: IpAddr) -> Option<Ipv4Addr> {
        match a {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        }
    }
    fn to_ip(a: Ipv4Addr) -> IpAddr {
        IpAddr::V4(a)
    }
}

impl Net for Ipv6Net {
    type Addr = Ipv6Addr;
    const FAMILY: AddressFamily = AddressFamily::Inet6;
    const MAX_LEN: u8 = 128;
    const DEFAULT_METRIC: u32 = 1024;
    fn new(addr: Ipv6Addr, len: u8) -> Option<Self> {
        Ipv6Net::new(addr, len).ok()
    }
    fn network(&self) -> Ipv6Addr {
        Ipv6Net::network(self)
    }
    fn plen(&self) -> u8 {
        self.prefix_len()
    }
    fn unspecified() -> Ipv6Addr {
        Ipv6Addr::UNSPECIFIED
    }
    fn route_addr(a: Ipv6Addr) -> RouteAddress {
        RouteAddress::Inet6(a)
    }
    fn from_route_addr(a: &RouteAddress) -> Option<Ipv6Addr> {
        match a {
            RouteAddress::Inet6(a) => Some(*a),
            _ => None,
        }
    }
    fn neigh_addr(a: Ipv6Addr) -> NeighbourAddress {
        NeighbourAddress::Inet6(a)
    }
    fn from_neigh_addr(a: &NeighbourAddress) -> Option<Ipv6Addr> {
        match a {
            NeighbourAddress::Inet6(a) => Some(*a),
            NeighbourAddress::Other(b) => <[u8; 16]>::try_from(b.as_slice()).ok().map(Into::into),
            _ => None,
        }
    }
    fn from_ip(a: IpAddr) -> Option<Ipv6Addr> {
        match a {
            IpAddr::V6(a) => Some(a),
            IpAddr::V4(_) => None,
        }
    }
    fn to_ip(a: Ipv6Addr) -> IpAddr {
        IpAddr::V6(a)
    }
}

/// The address side of [`Net`], so functions taking a bare address infer
/// its family.
pub trait Addr: Copy + Eq + Hash + Ord + Debug + Display + Send + Sync + 'static {
    type Net: Net<Addr = Self>;
}

impl Addr for Ipv4Addr {
    type Net = Ipv4Net;
}

impl Addr for Ipv6Addr {
    type Net = Ipv6Net;
}
