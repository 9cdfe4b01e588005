//! What this node originates into BGP, as Calico's BIRD config does it:
//! its own blocks and the default BGPConfiguration's service CIDRs
//! (`serviceClusterIPs`, `serviceExternalIPs`, `serviceLoadBalancerIPs`,
//! static routes every node exports to every peer, mesh peers included),
//! each with the communities `prefixAdvertisements` attach to it (to the
//! named CIDR and every prefix inside it, as BIRD's `net ~ cidr`).
//!
//! Service prefixes are kube-proxy's on each node: they are never routed
//! into the kernel by Tabby (the route calculation only takes learned
//! prefixes inside an IP pool).

use super::cluster::Cluster;
use crate::resources::bgp::BgpConfigurationSpec;
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::IpAddr;
use tabby_bgp::wire::LargeCommunity;

/// The communities one originated prefix carries, each list sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Communities {
    /// RFC 1997, `asn << 16 | value`.
    pub standard: Vec<u32>,
    /// RFC 8092.
    pub large: Vec<LargeCommunity>,
}

impl Communities {
    pub fn is_empty(&self) -> bool {
        self.standard.is_empty() && self.large.is_empty()
    }
}

/// Each originated prefix and its communities.
pub type Originations = BTreeMap<IpNet, Communities>;

/// `aa:nn` as a standard community.
pub fn standard_community(s: &str) -> Option<u32> {
    let (a, n) = s.split_once(':')?;
    Some(u32::from(a.parse::<u16>().ok()?) << 16 | u32::from(n.parse::<u16>().ok()?))
}

/// A service CIDR entry: a CIDR, or one address (a /32).
pub fn service_cidr(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .map(|n| n.trunc())
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

/// The service CIDRs of a BGPConfiguration, in field order.
pub fn service_cidrs(spec: &BgpConfigurationSpec) -> Vec<IpNet> {
    spec.service_cluster_ips
        .iter()
        .chain(&spec.service_external_ips)
        .chain(&spec.service_load_balancer_ips)
        .filter_map(|e| service_cidr(&e.cidr))
        .collect()
}

/// The communities `prefixAdvertisements` give `prefix`: names resolved
/// through `communities`, values taken as they are. What does not parse
/// was rejected at apply time; it is skipped here.
fn communities_for(spec: &BgpConfigurationSpec, prefix: &IpNet) -> Communities {
    let mut out = Communities::default();
    for pa in &spec.prefix_advertisements {
        let Ok(cidr) = pa.cidr.parse::<IpNet>() else {
            continue;
        };
        if !cidr.contains(prefix) {
            continue;
        }
        for c in &pa.communities {
            let value = spec
                .communities
                .iter()
                .find(|n| &n.name == c)
                .map_or(c.as_str(), |n| n.value.as_str());
            if let Some(v) = standard_community(value) {
                out.standard.push(v);
            } else if let Some(v) = LargeCommunity::parse(value) {
                out.large.push(v);
            }
        }
    }
    out.standard.sort_unstable();
    out.standard.dedup();
    out.large.sort_unstable();
    out.large.dedup();
    out
}

/// Everything node `me` originates, both families: a session carries
/// IPv6 only where it has an IPv6 next hop to give (the speaker's
/// `other_family_next_hop`, or an IPv6 session).
pub fn originations(cluster: &Cluster, me: &str) -> Originations {
    let mut prefixes: Vec<IpNet> = cluster
        .confirmed_affinities()
        .into_iter()
        .filter(|(_, n)| n == me)
        .map(|(b, _)| b)
        .collect();
    // Calico reads the service fields from the default BGPConfiguration
    // only (they are cluster-wide).
    let spec = cluster.default_bgp_config().map(|c| &c.spec);
    if let Some(spec) = spec {
        prefixes.extend(service_cidrs(spec));
    }
    prefixes
        .into_iter()
        .map(|p| (p, spec.map(|s| communities_for(s, &p)).unwrap_or_default()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::bgp::{CidrEntry, Community, PrefixAdvertisement};
    use crate::resources::ipam::{AffinityState, BlockAffinitySpec};
    use crate::resources::{BgpConfiguration, BlockAffinity, Resource};

    fn cidrs(v: &[&str]) -> Vec<CidrEntry> {
        v.iter()
            .map(|c| CidrEntry {
                cidr: c.to_string(),
            })
            .collect()
    }

    fn cluster(spec: BgpConfigurationSpec) -> Cluster {
        let mut c = Cluster::default();
        c.insert(Resource::BlockAffinity(BlockAffinity::new(
            "BlockAffinity",
            "a/10.244.1.0-26",
            BlockAffinitySpec {
                node: "a".into(),
                cidr: "10.244.1.0/26".into(),
                state: AffinityState::Confirmed,
                ..Default::default()
            },
        )));
        c.insert(Resource::BgpConfiguration(BgpConfiguration::new(
            "BGPConfiguration",
            "default",
            spec,
        )));
        c
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_and_service_cidrs_with_their_communities() {
        let spec = BgpConfigurationSpec {
            service_cluster_ips: cidrs(&["10.96.0.0/12", "fd00:96::/112"]),
            service_external_ips: cidrs(&["192.0.2.7"]),
            service_load_balancer_ips: cidrs(&["198.51.100.0/24"]),
            communities: vec![
                Community {
                    name: "svc".into(),
                    value: "65000:100".into(),
                },
                Community {
                    name: "big".into(),
                    value: "4200000000:1:2".into(),
                },
            ],
            prefix_advertisements: vec![
                PrefixAdvertisement {
                    cidr: "10.96.0.0/12".into(),
                    communities: vec!["svc".into(), "65000:7".into(), "big".into()],
                },
                // A pool-wide CIDR tags the blocks inside it.
                PrefixAdvertisement {
                    cidr: "10.244.0.0/16".into(),
                    communities: vec!["65000:200".into()],
                },
            ],
            ..Default::default()
        };
        let o = originations(&cluster(spec), "a");
        let c = |std: &[(u32, u32)], large: &[(u32, u32, u32)]| Communities {
            standard: std.iter().map(|(a, n)| a << 16 | n).collect(),
            large: large
                .iter()
                .map(|(g, a, b)| LargeCommunity::new(*g, *a, *b))
                .collect(),
        };
        let want: Originations = [
            (net("10.244.1.0/26"), c(&[(65000, 200)], &[])),
            (
                net("10.96.0.0/12"),
                c(&[(65000, 7), (65000, 100)], &[(4_200_000_000, 1, 2)]),
            ),
            (net("192.0.2.7/32"), c(&[], &[])),
            (net("198.51.100.0/24"), c(&[], &[])),
            // IPv6 too: a session sends it only with an IPv6 next hop.
            (net("fd00:96::/112"), c(&[], &[])),
        ]
        .into_iter()
        .collect();
        assert_eq!(o, want);
        assert!(
            originations(&cluster(BgpConfigurationSpec::default()), "b").is_empty(),
            "another node's block is not ours"
        );
    }
}
