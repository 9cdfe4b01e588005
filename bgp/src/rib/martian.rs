//! Routes no peer may give us (RFC 4271 §6.3 and common practice, BIRD's
//! and GoBGP's martian lists): prefixes inside address blocks that are
//! never routed between hosts, and routes whose NEXT_HOP is this speaker
//! itself, which would loop traffic back to us. Both are treated as
//! filtered by import policy: received, counted, never accepted, so
//! never passed on.

use super::peer::SessionInfo;
use crate::peer_config::LocalConfig;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// "This network", loopback, multicast, class E (with broadcast) and
/// link-local.
const V4: [(Ipv4Addr, u8); 5] = [
    (Ipv4Addr::new(0, 0, 0, 0), 8),
    (Ipv4Addr::new(127, 0, 0, 0), 8),
    (Ipv4Addr::new(224, 0, 0, 0), 4),
    (Ipv4Addr::new(240, 0, 0, 0), 4),
    (Ipv4Addr::new(169, 254, 0, 0), 16),
];

/// Unspecified, loopback, multicast, link-local, IPv4-mapped.
const V6: [(Ipv6Addr, u8); 5] = [
    (Ipv6Addr::UNSPECIFIED, 128),
    (Ipv6Addr::LOCALHOST, 128),
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8),
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10),
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96),
];

/// True when `prefix` lies inside a martian block. A shorter prefix that
/// merely covers one (a default route, 128.0.0.0/1) is not a martian.
pub fn is_martian(prefix: &IpNet) -> bool {
    match prefix {
        IpNet::V4(p) => V4
            .iter()
            .any(|&(a, len)| Ipv4Net::new(a, len).is_ok_and(|block| block.contains(p))),
        IpNet::V6(p) => V6
            .iter()
            .any(|&(a, len)| Ipv6Net::new(a, len).is_ok_and(|block| block.contains(p))),
    }
}

/// True when `next_hop` is one of our own addresses on this session (or
/// our router id): a route through it would send traffic back to us.
pub fn is_own_next_hop(next_hop: IpAddr, local: &LocalConfig, session: &SessionInfo) -> bool {
    match next_hop.to_canonical() {
        IpAddr::V4(a) => a == local.router_id || session.next_hop_v4 == Some(a),
        IpAddr::V6(a) => session.next_hop_v6 == Some(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_and_what_they_contain_are_martians_but_covering_prefixes_are_not() {
        for m in [
            "0.0.0.0/8",
            "127.0.0.1/32",
            "224.0.0.0/3",
            "255.255.255.255/32",
        ] {
            // 224.0.0.0/3 covers 224/4 and 240/4, both martian: it lies in
            // neither, so it is not one.
            assert_eq!(is_martian(&net(m)), m != "224.0.0.0/3", "{m}");
        }
        assert!(!is_martian(&net("0.0.0.0/0")));
        assert!(!is_martian(&net("::/0")));
        assert!(is_martian(&net("::/128")));
        assert!(!is_martian(&net("::/127")));
        assert!(is_martian(&net("::ffff:192.0.2.0/120")));
        assert!(!is_martian(&net("2001:db8::/32")));
    }
}
