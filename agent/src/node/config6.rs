//! The IPv6 half of calico-node's environment: `IP6`,
//! `IP6_AUTODETECTION_METHOD`, the `CALICO_IPV6POOL_*` default pool and
//! `FELIX_IPV6SUPPORT`, parsed from a lookup function like the IPv4 half
//! (`config.rs`). Every error names the variable and what was expected.
//!
//! Calico's defaults: `IP6` unset means no IPv6 node address (IPv6 is
//! opted into with `IP6=autodetect` or an address); IPv6 pools default to
//! /122 blocks, no VXLAN and no NAT outgoing. Where calico-node makes up a
//! random ULA /48 when `CALICO_IPV6POOL_CIDR` is unset, Tabby creates no
//! IPv6 pool (Tabby deviation: a generated pool differs on every cluster and
//! is never what a dual-stack cluster's service CIDRs were planned around).
//!
//! The default pool is created by `startup::ensure_default_pool6`; the
//! node address is written by `startup::write_node_ipv6`.

use crate::resources::ippool::EncapMode;
use ipnet::Ipv6Net;
use std::net::Ipv6Addr;
use tabby_felix_lite::autodetect::Method;
use tabby_felix_lite::inspect::KernelSnapshot;

/// `IP6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ip6Setting {
    /// Unset or `none`: no IPv6 node address.
    None,
    Autodetect,
    /// Without `/N` the prefix is the interface's, as Calico does.
    Fixed {
        addr: Ipv6Addr,
        prefix_len: Option<u8>,
    },
}

/// `IP6_AUTODETECTION_METHOD`: the IPv4 methods, with IPv6 CIDRs (run by
/// the same felix-lite code as IPv4's).
pub type Method6 = Method<Ipv6Net>;

/// The default IPv6 pool (`CALICO_IPV6POOL_*`), when `CALICO_IPV6POOL_CIDR`
/// is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultPool6 {
    pub cidr: Ipv6Net,
    pub block_size: u8,
    pub vxlan_mode: EncapMode,
    pub nat_outgoing: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv6Config {
    pub ip6: Ip6Setting,
    pub autodetect: Method6,
    pub pool: Option<DefaultPool6>,
    /// `FELIX_IPV6SUPPORT` (Felix's default: true).
    pub ipv6_support: bool,
    /// `FELIX_VXLANMTUV6`: None (unset or 0) = the parent's MTU − 70.
    pub vxlan_mtu6: Option<u32>,
}

impl Default for Ipv6Config {
    fn default() -> Self {
        Ipv6Config {
            ip6: Ip6Setting::None,
            autodetect: Method6::FirstFound,
            pool: None,
            ipv6_support: true,
            vxlan_mtu6: None,
        }
    }
}

const IP6_EXPECTED: &str =
    "expected autodetect, none, an IPv6 address such as fd00::5 or ADDRESS/LEN such as fd00::5/64";

fn parse_ip6(v: &str) -> Result<Ip6Setting, String> {
    let s = v.trim();
    match s {
        "" | "none" => return Ok(Ip6Setting::None),
        "autodetect" => return Ok(Ip6Setting::Autodetect),
        _ => {}
    }
    let (addr, prefix_len) = match s.split_once('/') {
        Some(_) => {
            let n: Ipv6Net = s
                .parse()
                .map_err(|_| format!("IP6: {v:?} is not an IPv6 address ({IP6_EXPECTED})"))?;
            (n.addr(), Some(n.prefix_len()))
        }
        None => (
            s.parse::<Ipv6Addr>()
                .map_err(|_| format!("IP6: {v:?} is not an IPv6 address ({IP6_EXPECTED})"))?,
            None,
        ),
    };
    let bad = if addr.is_unspecified() || addr.is_loopback() || addr.is_multicast() {
        Some("not a unicast address")
    } else if addr.segments()[0] & 0xffc0 == 0xfe80 {
        Some("link-local, which peers on other links cannot reach")
    } else if addr.to_ipv4_mapped().is_some() {
        Some("an IPv4-mapped address; put IPv4 addresses in IP")
    } else {
        None
    };
    if let Some(why) = bad {
        return Err(format!(
            "IP6: {addr} is {why} (expected the node's global or unique-local IPv6 address)"
        ));
    }
    Ok(Ip6Setting::Fixed { addr, prefix_len })
}

fn parse_method6(v: &str) -> Result<Method6, String> {
    v.parse::<Method6>().map_err(|e| e.to_string())
}

fn parse_bool(var: &str, v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(format!(
            "{var}: {v:?} is not a boolean (expected true or false)"
        )),
    }
}

fn default_pool6(get: &dyn Fn(&str) -> Option<String>) -> Result<Option<DefaultPool6>, String> {
    let block_size = match get("CALICO_IPV6POOL_BLOCK_SIZE") {
        None => 122,
        Some(v) => v
            .parse::<u8>()
            .ok()
            .filter(|b| (116..=128).contains(b))
            .ok_or_else(|| {
                format!("CALICO_IPV6POOL_BLOCK_SIZE: {v:?} is not an IPv6 block size (expected 116-128)")
            })?,
    };
    let vxlan_mode = vxlan_mode_var("CALICO_IPV6POOL_VXLAN", get("CALICO_IPV6POOL_VXLAN"))?;
    let nat_outgoing = match get("CALICO_IPV6POOL_NAT_OUTGOING") {
        None => false,
        Some(v) => parse_bool("CALICO_IPV6POOL_NAT_OUTGOING", &v)?,
    };
    let Some(text) = get("CALICO_IPV6POOL_CIDR") else {
        return Ok(None);
    };
    let cidr: Ipv6Net = text.parse().map_err(|_| {
        format!(
            "CALICO_IPV6POOL_CIDR: {text:?} is not an IPv6 CIDR (expected e.g. fd00:10:244::/48)"
        )
    })?;
    if cidr.trunc() != cidr {
        return Err(format!(
            "CALICO_IPV6POOL_CIDR: {cidr} has host bits set (expected {})",
            cidr.trunc()
        ));
    }
    if block_size < cidr.prefix_len() {
        return Err(format!(
            "CALICO_IPV6POOL_BLOCK_SIZE: /{block_size} blocks do not fit in CALICO_IPV6POOL_CIDR {cidr} (expected at least {})",
            cidr.prefix_len()
        ));
    }
    Ok(Some(DefaultPool6 {
        cidr,
        block_size,
        vxlan_mode,
        nat_outgoing,
    }))
}

impl Ipv6Config {
    /// `get` returns a variable's trimmed, non-empty value.
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Ipv6Config, String> {
        let ip6 = parse_ip6(&get("IP6").unwrap_or_default())?;
        let autodetect = parse_method6(&get("IP6_AUTODETECTION_METHOD").unwrap_or_default())?;
        let pool = default_pool6(get)?;
        let ipv6_support = match get("FELIX_IPV6SUPPORT") {
            None => true,
            Some(v) => parse_bool("FELIX_IPV6SUPPORT", &v)?,
        };
        Ok(Ipv6Config {
            ip6,
            autodetect,
            pool,
            ipv6_support,
            vxlan_mtu6: parse_vxlan_mtu6(get("FELIX_VXLANMTUV6"))?,
        })
    }
}

/// IPv6 links carry at least 1280 bytes (RFC 8200 §5).
fn parse_vxlan_mtu6(v: Option<String>) -> Result<Option<u32>, String> {
    let Some(v) = v else { return Ok(None) };
    match v.parse::<u32>() {
        Ok(0) => Ok(None),
        Ok(n @ 1280..=65535) => Ok(Some(n)),
        _ => Err(format!(
            "FELIX_VXLANMTUV6: {v:?} is not an MTU (expected 0 for the parent's MTU − 70, or 1280–65535)"
        )),
    }
}

/// `IP6=<address>` must be on one of this node's interfaces: the interface
/// and the address with its prefix (the interface's when `IP6` gave none).
pub fn locate_ip6(
    addr: Ipv6Addr,
    prefix_len: Option<u8>,
    k: &KernelSnapshot,
) -> Result<(String, Ipv6Net), String> {
    let Some(a) = k.addrs6.iter().find(|a| a.ip == addr) else {
        let mut have: Vec<String> = k
            .addrs6
            .iter()
            .filter(|a| !a.is_link_local() && !a.ip.is_loopback())
            .map(|a| format!("{}/{} on {}", a.ip, a.prefix_len, k.ifname(a.index)))
            .collect();
        if have.is_empty() {
            have.push("none".into());
        }
        return Err(format!(
            "IP6: {addr} is not on any interface of this node (its IPv6 addresses: {}); \
             expected one of them, or IP6=autodetect",
            have.join(", ")
        ));
    };
    let len = prefix_len.unwrap_or(a.prefix_len);
    let net = Ipv6Net::new(addr, len).map_err(|e| format!("IP6: prefix /{len}: {e}"))?;
    Ok((k.ifname(a.index), net))
}

/// `CALICO_IPV4POOL_VXLAN` / `CALICO_IPV6POOL_VXLAN`: unset is Never.
pub(super) fn vxlan_mode_var(var: &str, value: Option<String>) -> Result<EncapMode, String> {
    match value.as_deref() {
        None | Some("Never") => Ok(EncapMode::Never),
        Some("Always") => Ok(EncapMode::Always),
        Some("CrossSubnet") => Ok(EncapMode::CrossSubnet),
        Some(other) => Err(format!(
            "{var}: {other:?} is not a VXLAN mode (expected Never, Always or CrossSubnet)"
        )),
    }
}

#[cfg(test)]
#[path = "config6_tests.rs"]
mod tests;
