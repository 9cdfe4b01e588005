//! The slice of the datastore the route calculation and BGP peering read
//! (Nodes, IP pools, block affinities, BGP peers and configuration), taken
//! from the cluster cache, and its translation into the route
//! calculation's inputs.

use super::routes::{NodeInfo, PoolInfo};
use super::vtep;
use crate::cache::ClusterCache;
use crate::resources::ipam::AffinityState;
use crate::resources::ippool::EncapMode;
use crate::resources::{BgpConfiguration, BgpPeer, BlockAffinity, IpPool, Kind, Node, Resource};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

pub const KINDS: &[Kind] = &[
    Kind::Node,
    Kind::IpPool,
    Kind::BlockAffinity,
    Kind::BgpPeer,
    Kind::BgpConfiguration,
];

#[derive(Debug, Default, Clone)]
pub struct Cluster {
    pub nodes: BTreeMap<String, Node>,
    pub pools: BTreeMap<String, IpPool>,
    pub affinities: BTreeMap<String, BlockAffinity>,
    pub peers: BTreeMap<String, BgpPeer>,
    pub bgp_configs: BTreeMap<String, BgpConfiguration>,
}

impl Cluster {
    pub fn insert(&mut self, r: Resource) {
        match r {
            Resource::Node(n) => {
                self.nodes.insert(n.metadata.name.clone(), n);
            }
            Resource::IpPool(p) => {
                self.pools.insert(p.metadata.name.clone(), p);
            }
            Resource::BlockAffinity(a) => {
                self.affinities.insert(a.metadata.name.clone(), a);
            }
            Resource::BgpPeer(p) => {
                self.peers.insert(p.metadata.name.clone(), p);
            }
            Resource::BgpConfiguration(c) => {
                self.bgp_configs.insert(c.metadata.name.clone(), c);
            }
            _ => {}
        }
    }

    /// The view as the cache holds it now.
    pub fn from_cache(cache: &ClusterCache) -> Cluster {
        let mut c = Cluster::default();
        c.refresh(cache, KINDS);
        c
    }

    /// Takes `kinds` again from the cache, leaving the others as they are:
    /// a block claim changes only affinities, and copying every Node (the
    /// biggest objects) for each one was a measurable share of a node's
    /// CPU per claim in a 50-node cluster.
    pub fn refresh(&mut self, cache: &ClusterCache, kinds: &[Kind]) {
        for k in kinds {
            match k {
                Kind::Node => self.nodes.clear(),
                Kind::IpPool => self.pools.clear(),
                Kind::BlockAffinity => self.affinities.clear(),
                Kind::BgpPeer => self.peers.clear(),
                Kind::BgpConfiguration => self.bgp_configs.clear(),
                _ => continue,
            }
            for r in cache.list(*k) {
                self.insert(Resource::clone(&r));
            }
        }
    }

    pub fn node_infos(&self) -> BTreeMap<String, NodeInfo> {
        self.nodes
            .iter()
            .map(|(name, n)| (name.clone(), node_info(n)))
            .collect()
    }

    pub fn pool_infos(&self) -> Vec<PoolInfo> {
        self.pools
            .values()
            .filter_map(|p| {
                let cidr: IpNet = p.spec.cidr.parse().ok()?;
                Some(PoolInfo {
                    cidr,
                    vxlan_mode: p.spec.vxlan_mode.unwrap_or(EncapMode::Never),
                    nat_outgoing: p.spec.nat_outgoing,
                    disabled: p.spec.disabled,
                })
            })
            .collect()
    }

    /// Confirmed affinities of both families as (block, node). Pending
    /// ones are a claim in progress: the block may still go to someone else.
    pub fn confirmed_affinities(&self) -> Vec<(IpNet, String)> {
        self.affinities
            .values()
            .filter(|a| a.spec.state == AffinityState::Confirmed && !a.spec.deleted)
            .filter_map(|a| Some((a.spec.cidr.parse().ok()?, a.spec.node.clone())))
            .collect()
    }

    /// BGPConfiguration: the node-specific instance over `default`.
    pub fn bgp_config(&self, node: &str) -> Option<&BgpConfiguration> {
        self.bgp_configs
            .get(&format!("node.{node}"))
            .or_else(|| self.bgp_configs.get("default"))
    }

    pub fn default_bgp_config(&self) -> Option<&BgpConfiguration> {
        self.bgp_configs.get("default")
    }
}

pub fn node_ipv4(n: &Node) -> Option<Ipv4Net> {
    let text = n.spec.bgp.as_ref()?.ipv4_address.as_deref()?;
    text.parse::<Ipv4Net>()
        .ok()
        .or_else(|| text.parse::<Ipv4Addr>().ok().map(Ipv4Net::from))
}

/// `spec.bgp.ipv6Address` (Calico writes it with its prefix length).
pub fn node_ipv6(n: &Node) -> Option<Ipv6Net> {
    let text = n.spec.bgp.as_ref()?.ipv6_address.as_deref()?;
    text.parse::<Ipv6Net>()
        .ok()
        .or_else(|| text.parse::<Ipv6Addr>().ok().map(Ipv6Net::from))
}

fn node_info(n: &Node) -> NodeInfo {
    let tunnel_ip = n
        .spec
        .ipv4_vxlan_tunnel_addr
        .as_deref()
        .and_then(|t| t.split('/').next()?.parse().ok());
    let tunnel_ip6: Option<Ipv6Addr> = n
        .spec
        .ipv6_vxlan_tunnel_addr
        .as_deref()
        .and_then(|t| t.split('/').next()?.parse().ok());
    let name = &n.metadata.name;
    NodeInfo {
        ip: node_ipv4(n),
        tunnel_ip,
        mac: tunnel_ip.map(|_| vtep::node_mac(name, n.spec.vxlan_tunnel_mac_addr.as_deref())),
        ip6: node_ipv6(n),
        tunnel_ip6,
        mac6: tunnel_ip6.map(|_| vtep::node_mac6(name, n.spec.vxlan_tunnel_mac_addr_v6.as_deref())),
    }
}
