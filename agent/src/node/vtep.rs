//! VTEP MAC addresses as Felix derives them (felix/calc/vxlan_resolver.go):
//! `Node.spec.vxlanTunnelMACAddr` if set, else the byte `'f'` (0x66)
//! followed by the first five bytes of SHA-1 of the node name. Every node
//! computes every other node's MAC the same way, so they agree without
//! asking each other.

/// Felix's derived MAC for `node_name` (IPv4 VTEP).
pub fn derived_mac(node_name: &str) -> [u8; 6] {
    tabby_felix_lite::derive::vtep_mac(node_name)
}

pub fn format_mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// `aa:bb:cc:dd:ee:ff` (or with `-`), as Go's net.ParseMAC accepts for
/// 6-byte addresses.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut m = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return None;
        }
        m[i] = u8::from_str_radix(p, 16).ok()?;
    }
    Some(m)
}

/// Felix's derived MAC for `node_name`'s IPv6 VTEP: the same rule over
/// `<node>-v6`, so a dual-stack node's two VTEPs differ.
pub fn derived_mac6(node_name: &str) -> [u8; 6] {
    derived_mac(&format!("{node_name}-v6"))
}

/// The MAC a node's IPv6 VTEP uses (`vxlanTunnelMACAddrV6`, else derived).
pub fn node_mac6(node_name: &str, stored: Option<&str>) -> [u8; 6] {
    stored
        .and_then(parse_mac)
        .unwrap_or_else(|| derived_mac6(node_name))
}

/// The MAC a node's VTEP uses: its stored one if valid, else Felix's
/// derivation.
pub fn node_mac(node_name: &str, stored: Option<&str>) -> [u8; 6] {
    stored
        .and_then(parse_mac)
        .unwrap_or_else(|| derived_mac(node_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_is_f_then_five_hash_bytes() {
        // sha1("abc") = a9993e3647...
        assert_eq!(derived_mac("abc"), [0x66, 0xa9, 0x99, 0x3e, 0x36, 0x47]);
        assert_eq!(format_mac(&derived_mac("abc")), "66:a9:99:3e:36:47");
    }

    #[test]
    fn stored_mac_wins_and_bad_ones_fall_back() {
        assert_eq!(
            node_mac("abc", Some("02:00:00:00:00:01")),
            [2, 0, 0, 0, 0, 1]
        );
        assert_eq!(node_mac("abc", Some("nonsense")), derived_mac("abc"));
        assert_eq!(parse_mac("02-00-00-00-00-0A"), Some([2, 0, 0, 0, 0, 10]));
        assert_eq!(parse_mac("02:00:00:00:00"), None);
    }

    #[test]
    fn the_ipv6_vtep_hashes_node_dash_v6() {
        assert_eq!(derived_mac6("abc"), derived_mac("abc-v6"));
        assert_ne!(derived_mac6("abc"), derived_mac("abc"));
        assert_eq!(derived_mac6("abc")[0], 0x66);
        assert_eq!(
            node_mac6("abc", Some("02:00:00:00:00:06")),
            [2, 0, 0, 0, 0, 6]
        );
    }
}
