//! Calico's interface filtering (`FilteredEnumeration`), as a pure function
//! over a snapshot so every rule can be checked without a kernel.

use super::family::Family;
use super::host::HostInterface;
use ipnet::Ipv4Net;
use regex::Regex;
use std::fmt;
use std::net::Ipv4Addr;

/// An interface autodetection looked at and did not choose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub interface: String,
    pub why: String,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.interface, self.why)
    }
}

/// Go's `net.IP.IsGlobalUnicast` for IPv4, which is what Calico checks:
/// private ranges count, loopback/link-local/multicast/broadcast don't.
pub fn is_global_unicast(ip: Ipv4Addr) -> bool {
    <Ipv4Net as Family>::is_global_unicast(ip)
}

pub struct Filter<'a, N> {
    pub include: &'a [Regex],
    pub exclude: &'a [Regex],
    pub cidrs: &'a [N],
}

pub struct Choice<'a, N> {
    pub iface: &'a HostInterface,
    pub addr: N,
    /// Interfaces examined before the chosen one, in examination order.
    pub skipped: Vec<Skipped>,
    /// Later interfaces that would also have qualified: the choice was
    /// made by order alone, which is worth saying in the log.
    pub also_eligible: Vec<(String, N)>,
}

fn first_match<N: Family>(iface: &HostInterface, cidrs: &[N]) -> Result<N, String> {
    let addrs = N::addrs(iface);
    if addrs.is_empty() {
        return Err(format!("no {} address", N::NAME));
    }
    let mut non_global = Vec::new();
    let mut outside = Vec::new();
    for a in addrs {
        let ip = a.net.ip();
        if !N::is_global_unicast(ip) {
            non_global.push(a.net.to_string());
        } else if !cidrs.is_empty() && !cidrs.iter().any(|c| c.contains_ip(&ip)) {
            outside.push(a.net.to_string());
        } else {
            return Ok(a.net);
        }
    }
    // A global address outside the list is the interesting part; every
    // IPv6 link also has its fe80:: address, not worth repeating then.
    if !outside.is_empty() {
        return Err(format!("{} outside the cidr= list", outside.join(", ")));
    }
    Err(format!(
        "only loopback/link-local addresses: {}",
        non_global.join(", ")
    ))
}

/// Calico walks `net.Interfaces()` in **reverse** kernel-index order ("to
/// maintain behaviour with older versions", interfaces.go), so the
/// highest-index eligible interface wins. Tabby keeps that order so a node
/// migrating from Calico keeps its address; the reason string names the
/// other candidates so an unlucky order is visible at start-up.
pub fn choose<'a, N: Family>(
    ifaces: &'a [HostInterface],
    filter: &Filter<'_, N>,
) -> Result<Choice<'a, N>, Vec<Skipped>> {
    let mut skipped = Vec::new();
    let mut chosen: Option<(&HostInterface, N)> = None;
    let mut also = Vec::new();
    for iface in ifaces.iter().rev() {
        let why = if !filter.include.is_empty()
            && !filter.include.iter().any(|r| r.is_match(&iface.name))
        {
            let list: Vec<&str> = filter.include.iter().map(Regex::as_str).collect();
            Err(format!("name matches none of {}", list.join(",")))
        } else if let Some(r) = filter.exclude.iter().find(|r| r.is_match(&iface.name)) {
            Err(format!("excluded by {}", r.as_str()))
        } else {
            first_match(iface, filter.cidrs)
        };
        match (why, chosen.is_some()) {
            (Ok(addr), false) => chosen = Some((iface, addr)),
            (Ok(addr), true) => also.push((iface.name.clone(), addr)),
            (Err(why), false) => skipped.push(Skipped {
                interface: iface.name.clone(),
                why,
            }),
            (Err(_), true) => {}
        }
    }
    match chosen {
        Some((iface, addr)) => Ok(Choice {
            iface,
            addr,
            skipped,
            also_eligible: also,
        }),
        None => Err(skipped),
    }
}

pub fn compile(list: &[impl AsRef<str>]) -> Vec<Regex> {
    // Parsing already validated every pattern; one that somehow fails here
    // is dropped rather than crashing the agent.
    list.iter()
        .filter_map(|r| Regex::new(r.as_ref()).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::host::HostAddr;
    use super::super::method::DEFAULT_EXCLUDES;
    use super::*;

    fn iface(index: u32, name: &str, addrs: &[&str]) -> HostInterface {
        HostInterface {
            index,
            name: name.into(),
            up: true,
            mtu: 1500,
            addrs: addrs
                .iter()
                .map(|a| HostAddr {
                    net: a.parse().unwrap(),
                    scope_link_or_host: false,
                })
                .collect(),
            addrs6: vec![],
        }
    }

    #[test]
    fn reverse_order_defaults_and_link_local() {
        let ifaces = vec![
            iface(1, "lo", &["127.0.0.1/8"]),
            iface(2, "eth0", &["192.168.5.10/24"]),
            iface(3, "docker0", &["172.17.0.1/16"]),
            iface(4, "ens4", &["169.254.3.3/16"]),
            iface(5, "lower0", &["10.5.5.5/24"]),
        ];
        let ex = compile(DEFAULT_EXCLUDES);
        let c = choose(
            &ifaces,
            &Filter::<Ipv4Net> {
                include: &[],
                exclude: &ex,
                cidrs: &[],
            },
        )
        .ok()
        .unwrap();
        assert_eq!(c.iface.name, "eth0");
        let names: Vec<_> = c.skipped.iter().map(|s| s.interface.as_str()).collect();
        assert_eq!(names, ["lower0", "ens4", "docker0"]);
        assert!(c.skipped[0].why.contains("^lo"));
        assert!(c.skipped[1].why.contains("link-local"));
    }

    #[test]
    fn cidr_filter_and_nothing_found() {
        let ifaces = vec![
            iface(2, "eth0", &["192.168.5.10/24"]),
            iface(3, "eth1", &["10.1.1.1/24"]),
        ];
        let cidrs: Vec<Ipv4Net> = vec!["192.168.0.0/16".parse().unwrap()];
        let c = choose(
            &ifaces,
            &Filter::<Ipv4Net> {
                include: &[],
                exclude: &[],
                cidrs: &cidrs,
            },
        )
        .ok()
        .unwrap();
        assert_eq!(c.addr.to_string(), "192.168.5.10/24");
        let cidrs: Vec<Ipv4Net> = vec!["172.16.0.0/12".parse().unwrap()];
        let skipped = choose(
            &ifaces,
            &Filter::<Ipv4Net> {
                include: &[],
                exclude: &[],
                cidrs: &cidrs,
            },
        )
        .err()
        .unwrap();
        assert_eq!(skipped.len(), 2);
        assert!(
            skipped[0].why.contains("outside the cidr= list"),
            "{:?}",
            skipped
        );
    }
}

/// Subnets on this host that can hold a native next hop: every subnet of
/// `N`'s family
/// wider than /32 and not link- or host-scoped, on interfaces that Calico's
/// autodetection would consider ([`super::DEFAULT_EXCLUDES`] leaves out
/// loopback, container bridges, `cali*` and Tabby's own VXLAN devices).
/// `node` (the node address) is always first, whatever its interface.
pub fn connected_subnets<N: Family>(node: Option<N>, ifaces: &[HostInterface]) -> Vec<N> {
    // The reconciler asks on every pass: compile the list once.
    static EXCLUDES: std::sync::OnceLock<Vec<Regex>> = std::sync::OnceLock::new();
    let excludes = EXCLUDES.get_or_init(|| compile(super::DEFAULT_EXCLUDES));
    let mut out: Vec<N> = node.into_iter().map(|n| n.trunc()).collect();
    for f in ifaces {
        if excludes.iter().any(|re| re.is_match(&f.name)) {
            continue;
        }
        for a in N::addrs(f) {
            let net = a.net.trunc();
            // fe80::/64 is on every IPv6 link; the kernel gives it link
            // scope, which leaves it out here.
            if !a.scope_link_or_host && a.net.prefix_len() < N::HOST_PREFIX && !out.contains(&net) {
                out.push(net);
            }
        }
    }
    out
}

#[cfg(test)]
mod connected_tests {
    use super::*;
    use crate::autodetect::host::HostAddr;

    fn iface(name: &str, net: &str) -> HostInterface {
        HostInterface {
            index: 1,
            name: name.into(),
            up: true,
            mtu: 1500,
            addrs: vec![HostAddr {
                net: net.parse().unwrap(),
                scope_link_or_host: false,
            }],
            addrs6: vec![],
        }
    }

    #[test]
    fn excluded_interfaces_and_host_routes_hold_no_next_hop() {
        let ifaces = [
            iface("lo", "127.0.0.1/8"),
            iface("eth0", "10.0.1.5/24"),
            iface("cali1234", "10.9.0.1/24"),
            iface("vxlan.calico", "172.30.0.1/26"),
            iface("eth1", "192.0.2.7/32"),
            iface("eth2", "198.51.100.9/25"),
        ];
        let node: Ipv4Net = "10.0.1.5/24".parse().unwrap();
        assert_eq!(
            connected_subnets(Some(node), &ifaces),
            vec![
                "10.0.1.0/24".parse::<Ipv4Net>().unwrap(),
                "198.51.100.0/25".parse().unwrap()
            ]
        );
    }
}
