//! `lab up --ip-family ipv4|ipv6|dual`: which families the lab's nodes and
//! pods get, and the IPv6 addressing that mirrors the IPv4 one.
//!
//! IPv6 scheme (ipv6 and dual labs): node subnet N (172.31.N.0/24) also
//! carries `fd31:N::/64`, its router (the fabric, forwarding on) `fd31:N::1`
//! and node H `fd31:N::H` — the IPv4 host part written as the IPv6 one, so
//! node 172.31.2.13 is fd31:2::13. Pods come from the pool `fd30::/48`
//! (Calico's IPv6 block size, /122). Both are ULA and live only inside the
//! lab's namespaces.
//!
//! An ipv6 lab keeps the IPv4 fabric underneath (the lab's etcd or API
//! stand-in is reached over it), but tabby-node is told `IP=none`, gets no
//! `CALICO_IPV4POOL_*` and `CALICO_ROUTER_ID=hash` (Calico's router ID for
//! a node without IPv4: a hash of the node name), and pods get IPv6 only
//! (`assign_ipv4: "false"`).

use serde::{Deserialize, Serialize};
use std::net::Ipv6Addr;

/// The pod pool of ipv6 and dual labs.
pub const POD_POOL6: &str = "fd30::/48";
/// Calico's default IPv6 block size (`CALICO_IPV6POOL_BLOCK_SIZE`).
pub const BLOCK_SIZE6: u8 = 122;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum IpFamily {
    #[default]
    Ipv4,
    Ipv6,
    Dual,
}

impl std::fmt::Display for IpFamily {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IpFamily::Ipv4 => "ipv4",
            IpFamily::Ipv6 => "ipv6",
            IpFamily::Dual => "dual",
        })
    }
}

impl IpFamily {
    pub fn has_v4(self) -> bool {
        self != IpFamily::Ipv6
    }

    pub fn has_v6(self) -> bool {
        self != IpFamily::Ipv4
    }

    /// The conflist's `ipam.assign_ipv4` and `ipam.assign_ipv6`.
    pub fn assign(self) -> (&'static str, &'static str) {
        let s = |b: bool| if b { "true" } else { "false" };
        (s(self.has_v4()), s(self.has_v6()))
    }
}

/// Subnet `s` (0-based) as IPv6: `fd31:<s+1>::/64`.
pub fn subnet6(s: usize) -> String {
    format!("fd31:{}::/64", s + 1)
}

/// Address `host` of subnet `s` (0-based), the decimal host part of the
/// IPv4 address read as IPv6 hex digits (host 13 of subnet 2: fd31:2::13).
pub fn addr6(s: usize, host: u8) -> Ipv6Addr {
    format!("fd31:{}::{host}", s + 1)
        .parse()
        .expect("subnets 1-20 and hosts 1-255 form valid IPv6 addresses")
}

/// tabby-node's IPv6 (and, for ipv6 labs, IPv4-less) environment;
/// `vxlan_mode` is the IPv4 pool's (`CALICO_IPV4POOL_VXLAN`), which the
/// IPv6 pool follows.
pub fn node_env(
    family: IpFamily,
    addr6: Option<Ipv6Addr>,
    vxlan_mode: &str,
) -> Vec<(String, String)> {
    let mut env = Vec::new();
    if !family.has_v6() {
        return env;
    }
    if let Some(a) = addr6 {
        env.push(("IP6".into(), format!("{a}/64")));
    }
    env.extend([
        ("CALICO_IPV6POOL_CIDR".into(), POD_POOL6.into()),
        ("CALICO_IPV6POOL_BLOCK_SIZE".into(), BLOCK_SIZE6.to_string()),
        ("CALICO_IPV6POOL_VXLAN".into(), vxlan_mode.into()),
        ("FELIX_IPV6SUPPORT".into(), "true".into()),
    ]);
    if !family.has_v4() {
        env.push(("CALICO_ROUTER_ID".into(), "hash".into()));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_addresses_mirror_the_ipv4_ones() {
        assert_eq!(subnet6(0), "fd31:1::/64");
        assert_eq!(subnet6(19), "fd31:20::/64");
        assert_eq!(addr6(0, 1).to_string(), "fd31:1::1");
        assert_eq!(addr6(1, 13).to_string(), "fd31:2::13");
        assert_eq!(addr6(19, 60).to_string(), "fd31:20::60");
        assert_eq!(addr6(0, 255).to_string(), "fd31:1::255");
    }

    #[test]
    fn families_and_their_environment() {
        assert_eq!(IpFamily::Ipv4.assign(), ("true", "false"));
        assert_eq!(IpFamily::Ipv6.assign(), ("false", "true"));
        assert_eq!(IpFamily::Dual.assign(), ("true", "true"));
        assert!(node_env(IpFamily::Ipv4, None, "Never").is_empty());
        let a = addr6(0, 11);
        let get = |env: &[(String, String)], k: &str| {
            env.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone())
        };
        let dual = node_env(IpFamily::Dual, Some(a), "CrossSubnet");
        assert_eq!(get(&dual, "IP6").as_deref(), Some("fd31:1::11/64"));
        assert_eq!(
            get(&dual, "CALICO_IPV6POOL_CIDR").as_deref(),
            Some("fd30::/48")
        );
        assert_eq!(
            get(&dual, "CALICO_IPV6POOL_BLOCK_SIZE").as_deref(),
            Some("122")
        );
        assert_eq!(
            get(&dual, "CALICO_IPV6POOL_VXLAN").as_deref(),
            Some("CrossSubnet")
        );
        assert_eq!(get(&dual, "FELIX_IPV6SUPPORT").as_deref(), Some("true"));
        assert_eq!(get(&dual, "CALICO_ROUTER_ID"), None);
        let v6 = node_env(IpFamily::Ipv6, Some(a), "Always");
        assert_eq!(get(&v6, "CALICO_ROUTER_ID").as_deref(), Some("hash"));
        assert_eq!(get(&v6, "CALICO_IPV6POOL_VXLAN").as_deref(), Some("Always"));
    }

    #[test]
    fn the_flag_parses_and_persists_lowercase() {
        use clap::ValueEnum;
        assert_eq!(IpFamily::from_str("dual", false).unwrap(), IpFamily::Dual);
        assert!(IpFamily::from_str("ipv5", false).is_err());
        assert_eq!(serde_json::to_value(IpFamily::Ipv6).unwrap(), "ipv6");
    }
}
