//! What autodetection needs to know about an address family, so one set of
//! rules (Calico's `FilteredEnumeration`, `can-reach`, the warnings) serves
//! `IP_AUTODETECTION_METHOD` and `IP6_AUTODETECTION_METHOD` alike.

use super::host::{HostAddr, HostInterface};
use ipnet::{Ipv4Net, Ipv6Net};
use std::fmt::{Debug, Display};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An interface prefix of one family (`Ipv4Net` or `Ipv6Net`).
pub trait Family: Copy + Eq + Display + Debug + FromStr + Send + Sync + 'static {
    type Ip: Copy + Eq + Display + Debug + FromStr + Send + Sync + 'static;
    /// "IPv4" / "IPv6", for messages.
    const NAME: &'static str;
    /// The calico-node variable that selects the method.
    const METHOD_VAR: &'static str;
    /// A CIDR of this family as a user would write it, for messages.
    const CIDR_EXAMPLE: &'static str;
    /// 32 / 128: the prefix of a host route.
    const HOST_PREFIX: u8;

    fn addrs(iface: &HostInterface) -> &[HostAddr<Self>];
    fn ip(&self) -> Self::Ip;
    fn prefix_len(&self) -> u8;
    fn trunc(&self) -> Self;
    fn contains_ip(&self, ip: &Self::Ip) -> bool;
    /// Go's `net.IP.IsGlobalUnicast`, which is what Calico filters on:
    /// private and unique-local ranges count; loopback, link-local
    /// (169.254/16, fe80::/10), multicast and broadcast do not.
    fn is_global_unicast(ip: Self::Ip) -> bool;
    fn from_ip(ip: IpAddr) -> Option<Self::Ip>;
    fn to_ip(ip: Self::Ip) -> IpAddr;
}

impl Family for Ipv4Net {
    type Ip = Ipv4Addr;
    const NAME: &'static str = "IPv4";
    const METHOD_VAR: &'static str = "IP_AUTODETECTION_METHOD";
    const CIDR_EXAMPLE: &'static str = "A.B.C.D/N";
    const HOST_PREFIX: u8 = 32;

    fn addrs(iface: &HostInterface) -> &[HostAddr<Self>] {
        &iface.addrs
    }
    fn ip(&self) -> Ipv4Addr {
        self.addr()
    }
    fn prefix_len(&self) -> u8 {
        Ipv4Net::prefix_len(self)
    }
    fn trunc(&self) -> Self {
        Ipv4Net::trunc(self)
    }
    fn contains_ip(&self, ip: &Ipv4Addr) -> bool {
        self.contains(ip)
    }
    fn is_global_unicast(ip: Ipv4Addr) -> bool {
        !(ip.is_unspecified()
            || ip.is_loopback()
            || ip.is_link_local()
            || ip.is_multicast()
            || ip.is_broadcast())
    }
    fn from_ip(ip: IpAddr) -> Option<Ipv4Addr> {
        match ip {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        }
    }
    fn to_ip(ip: Ipv4Addr) -> IpAddr {
        IpAddr::V4(ip)
    }
}

impl Family for Ipv6Net {
    type Ip = Ipv6Addr;
    const NAME: &'static str = "IPv6";
    const METHOD_VAR: &'static str = "IP6_AUTODETECTION_METHOD";
    const CIDR_EXAMPLE: &'static str = "e.g. fd00:1::/64";
    const HOST_PREFIX: u8 = 128;

    fn addrs(iface: &HostInterface) -> &[HostAddr<Self>] {
        &iface.addrs6
    }
    fn ip(&self) -> Ipv6Addr {
        self.addr()
    }
    fn prefix_len(&self) -> u8 {
        Ipv6Net::prefix_len(self)
    }
    fn trunc(&self) -> Self {
        Ipv6Net::trunc(self)
    }
    fn contains_ip(&self, ip: &Ipv6Addr) -> bool {
        self.contains(ip)
    }
    fn is_global_unicast(ip: Ipv6Addr) -> bool {
        !(ip.is_unspecified()
            || ip.is_loopback()
            || ip.is_multicast()
            || ip.segments()[0] & 0xffc0 == 0xfe80)
    }
    fn from_ip(ip: IpAddr) -> Option<Ipv6Addr> {
        match ip {
            IpAddr::V6(a) => Some(a),
            IpAddr::V4(_) => None,
        }
    }
    fn to_ip(ip: Ipv6Addr) -> IpAddr {
        IpAddr::V6(ip)
    }
}
