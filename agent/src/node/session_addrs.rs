//! This node's BGP addresses and which one a session uses. A session runs
//! over IPv4 when both ends have IPv4 and carries IPv6 on it too (RFC 4760,
//! our IPv6 address as the IPv6 next hop); between nodes without IPv4 on
//! one side it runs over IPv6 (carrying IPv4 only if both have IPv4,
//! which they then do not).

use super::cluster::{node_ipv4, node_ipv6};
use crate::resources::Node;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MyAddrs {
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
}

impl From<Ipv4Addr> for MyAddrs {
    fn from(v4: Ipv4Addr) -> Self {
        MyAddrs {
            v4: Some(v4),
            v6: None,
        }
    }
}

impl MyAddrs {
    pub fn is_empty(&self) -> bool {
        self.v4.is_none() && self.v6.is_none()
    }

    /// Ours of `peer`'s family: the session's source.
    pub fn same_family(&self, peer: IpAddr) -> Option<IpAddr> {
        match peer {
            IpAddr::V4(_) => self.v4.map(IpAddr::V4),
            IpAddr::V6(_) => self.v6.map(IpAddr::V6),
        }
    }

    /// Ours of the other family: the next hop for that family's prefixes
    /// on a session to `peer`.
    pub fn other_family(&self, peer: IpAddr) -> Option<IpAddr> {
        match peer {
            IpAddr::V4(_) => self.v6.map(IpAddr::V6),
            IpAddr::V6(_) => self.v4.map(IpAddr::V4),
        }
    }

    pub fn is_mine(&self, ip: IpAddr) -> bool {
        self.same_family(ip) == Some(ip)
    }

    /// The address a session to node `n` runs to: its IPv4 when both ends
    /// have IPv4, else its IPv6 when both have IPv6.
    pub fn session_to(&self, n: &Node) -> Option<IpAddr> {
        match (self.v4, node_ipv4(n), self.v6, node_ipv6(n)) {
            (Some(_), Some(theirs), _, _) => Some(IpAddr::V4(theirs.addr())),
            (_, _, Some(_), Some(theirs)) => Some(IpAddr::V6(theirs.addr())),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::node::{NodeBgpSpec, NodeSpec};

    fn node(v4: Option<&str>, v6: Option<&str>) -> Node {
        Node::new(
            "Node",
            "n",
            NodeSpec {
                bgp: Some(NodeBgpSpec {
                    ipv4_address: v4.map(Into::into),
                    ipv6_address: v6.map(Into::into),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
    }

    #[test]
    fn ipv4_when_both_have_it_else_ipv6() {
        let dual = MyAddrs {
            v4: Some("10.0.0.1".parse().unwrap()),
            v6: Some("fd00::1".parse().unwrap()),
        };
        let v6only = MyAddrs {
            v4: None,
            v6: Some("fd00::1".parse().unwrap()),
        };
        let both = node(Some("10.0.0.2/24"), Some("fd00::2/64"));
        let only6 = node(None, Some("fd00::3/64"));
        let only4 = node(Some("10.0.0.4/24"), None);
        assert_eq!(dual.session_to(&both), Some("10.0.0.2".parse().unwrap()));
        assert_eq!(dual.session_to(&only6), Some("fd00::3".parse().unwrap()));
        assert_eq!(v6only.session_to(&both), Some("fd00::2".parse().unwrap()));
        assert_eq!(v6only.session_to(&only4), None);
        let peer4: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(dual.other_family(peer4), Some("fd00::1".parse().unwrap()));
        assert_eq!(dual.same_family(peer4), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(v6only.same_family(peer4), None);
        assert!(dual.is_mine("fd00::1".parse().unwrap()));
    }
}
