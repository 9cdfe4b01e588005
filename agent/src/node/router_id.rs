//! The BGP router ID: the node's IPv4 address as Calico uses it, or
//! `CALICO_ROUTER_ID` — an IPv4 address, or `hash` for an ID derived from
//! the node name (confd's `hashToIPv4`), which an IPv6-only node needs:
//! BGP identifiers are 4-byte values (RFC 6286) and it has no IPv4
//! address to borrow one from.

use std::net::Ipv4Addr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RouterId {
    /// Unset: the node's IPv4 address.
    #[default]
    NodeIp,
    Hash,
    Fixed(Ipv4Addr),
}

pub fn parse(value: Option<&str>) -> Result<RouterId, String> {
    match value {
        None => Ok(RouterId::NodeIp),
        Some("hash") => Ok(RouterId::Hash),
        Some(v) => match v.parse::<Ipv4Addr>() {
            Ok(a) if !a.is_unspecified() && !a.is_broadcast() && !a.is_multicast() => {
                Ok(RouterId::Fixed(a))
            }
            _ => Err(format!(
                "CALICO_ROUTER_ID: {v:?} is not a router ID (expected an IPv4 address such as 10.0.0.1, or hash)"
            )),
        },
    }
}

/// confd's `hashToIPv4`: the first four bytes of SHA-256 of the node
/// name, with a first octet above 223 moved down by 32 (no class D/E
/// identifiers).
pub fn hash(node_name: &str) -> Ipv4Addr {
    let d = ring::digest::digest(&ring::digest::SHA256, node_name.as_bytes());
    let b = d.as_ref();
    let first = if b[0] > 223 { b[0] - 32 } else { b[0] };
    Ipv4Addr::new(first, b[1], b[2], b[3])
}

/// The ID the speaker runs with, or why there is none.
pub fn resolve(id: RouterId, node_name: &str, ipv4: Option<Ipv4Addr>) -> Result<Ipv4Addr, String> {
    match (id, ipv4) {
        (RouterId::Fixed(a), _) => Ok(a),
        (RouterId::Hash, _) => Ok(hash(node_name)),
        (RouterId::NodeIp, Some(a)) => Ok(a),
        (RouterId::NodeIp, None) => Err(
            "this node has no IPv4 address for a BGP router ID: set CALICO_ROUTER_ID=hash (or an IPv4 address), as Calico requires for IPv6-only nodes"
                .into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_the_first_four_sha256_bytes_below_class_d() {
        // sha256("abc") = ba7816bf 8f01cfea ...
        assert_eq!(hash("abc"), Ipv4Addr::new(0xba, 0x78, 0x16, 0xbf));
        for n in ["node-1", "node-2", "worker-a", "x"] {
            assert!(hash(n).octets()[0] <= 223, "{n}: {}", hash(n));
        }
        assert_ne!(hash("node-1"), hash("node-2"));
    }

    #[test]
    fn parse_and_resolve() {
        assert_eq!(parse(None), Ok(RouterId::NodeIp));
        assert_eq!(parse(Some("hash")), Ok(RouterId::Hash));
        assert_eq!(
            parse(Some("10.9.9.9")),
            Ok(RouterId::Fixed(Ipv4Addr::new(10, 9, 9, 9)))
        );
        for bad in ["fd00::1", "0.0.0.0", "nope"] {
            assert!(parse(Some(bad))
                .unwrap_err()
                .starts_with("CALICO_ROUTER_ID:"));
        }
        let ip = Ipv4Addr::new(10, 0, 0, 1);
        assert_eq!(resolve(RouterId::NodeIp, "a", Some(ip)), Ok(ip));
        assert_eq!(resolve(RouterId::Hash, "abc", Some(ip)), Ok(hash("abc")));
        assert!(resolve(RouterId::NodeIp, "a", None)
            .unwrap_err()
            .contains("CALICO_ROUTER_ID=hash"));
    }
}
