//! This node's VXLAN tunnel endpoint: a tunnel address from IPAM (handle
//! `vxlan-tunnel-addr-<node>`, Tunnel use) and Felix's VTEP MAC on the
//! Node, kept in line with the pools that select this node. VXLAN is
//! needed when a VXLAN pool selects this node, or when BGP runs with
//! fallback on (fallback needs both ends to have a VTEP in advance).

use super::cluster::Cluster;
use super::config::{Backend, NodeConfig};
use super::startup::update_node;
use super::vtep;
use crate::datastore::Datastore;
use crate::ipam::DatastoreIpam;
use crate::resources::ippool::EncapMode;
use crate::resources::{IpPool, Kind, Resource};
use anyhow::{bail, Context};
use ipnet::{IpNet, Ipv4Net};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use tabby_ipam::allocator::{AssignRequest, Ipam};
use tabby_ipam::pool::Use;
use tabby_ipam::selector::Selector;
use tabby_ipam::store::IpamStore;

/// The tunnel address and MAC in use.
pub type Vtep = (Ipv4Addr, [u8; 6]);

/// The tunnel upkeep: re-checked when the pools selecting this node change.
pub struct Tunnel {
    pools: Vec<Ipv4Net>,
    /// Whether this node has an address at all (`IP=none` has no VTEP).
    has_address: bool,
    pub vtep: Option<Vtep>,
}

impl Tunnel {
    /// Gives the node its VTEP if it needs one. Without one the node still
    /// routes natively: a pool that allows no tunnel addresses must not
    /// keep it from starting, so a failure is logged, not returned.
    pub async fn start(
        ds: &dyn Datastore,
        ipam: &Ipam<DatastoreIpam>,
        cfg: &NodeConfig,
        cluster: &Cluster,
        has_address: bool,
    ) -> Tunnel {
        let pools = my_vxlan_pools(cluster, &cfg.node_name);
        let wanted = vxlan_wanted(cfg, &pools) && has_address;
        let vtep = ensure_tunnel(ds, ipam, cfg, wanted, &pools)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %format!("{e:#}"), "no VXLAN tunnel address: VXLAN and fallback unavailable");
                None
            });
        Tunnel {
            pools,
            has_address,
            vtep,
        }
    }

    /// Re-checks the VTEP when the VXLAN pools selecting this node changed.
    pub async fn on_cluster(
        &mut self,
        ds: &dyn Datastore,
        ipam: &Ipam<DatastoreIpam>,
        cfg: &NodeConfig,
        cluster: &Cluster,
    ) {
        let pools = my_vxlan_pools(cluster, &cfg.node_name);
        if pools == self.pools {
            return;
        }
        self.pools = pools;
        let wanted = vxlan_wanted(cfg, &self.pools) && self.has_address;
        match ensure_tunnel(ds, ipam, cfg, wanted, &self.pools).await {
            Ok(v) => self.vtep = v,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "updating the VXLAN tunnel address")
            }
        }
    }
}

fn my_vxlan_pools(cluster: &Cluster, me: &str) -> Vec<Ipv4Net> {
    let labels = cluster
        .nodes
        .get(me)
        .map(|n| n.metadata.labels.clone())
        .unwrap_or_default();
    let pools: Vec<_> = cluster.pools.values().cloned().collect();
    vxlan_pools(&pools, &labels)
}

/// The enabled VXLAN pools whose node selector matches `labels`.
pub fn vxlan_pools(pools: &[IpPool], labels: &BTreeMap<String, String>) -> Vec<Ipv4Net> {
    pools
        .iter()
        .filter(|p| {
            !p.spec.disabled
                && matches!(
                    p.spec.vxlan_mode,
                    Some(EncapMode::Always) | Some(EncapMode::CrossSubnet)
                )
                && p.spec
                    .node_selector
                    .as_deref()
                    .map_or(Ok(Selector::all()), Selector::parse)
                    .map(|s| s.matches(labels))
                    .unwrap_or(false)
        })
        .filter_map(|p| p.spec.cidr.parse().ok())
        .collect()
}

/// The addresses `handle` holds, as IPAM records them.
async fn held_by<S: IpamStore>(ipam: &Ipam<S>, handle: &str) -> anyhow::Result<Vec<Ipv4Addr>> {
    let Some(h) = ipam.store().get_handle(handle).await? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for cidr in h.value.blocks.keys() {
        if let Some(b) = ipam.store().get_block(*cidr).await? {
            out.extend(
                b.value
                    .ips_with_handle(handle)
                    .into_iter()
                    .filter_map(|ip| match ip {
                        IpAddr::V4(v4) => Some(v4),
                        _ => None,
                    }),
            );
        }
    }
    Ok(out)
}

/// Makes the Node's tunnel address and VTEP MAC match `wanted`: allocates
/// (handle `vxlan-tunnel-addr-<node>`, Tunnel use) or keeps the one IPAM
/// already holds for it; releases it when VXLAN is no longer wanted.
pub async fn ensure_tunnel(
    ds: &dyn Datastore,
    ipam: &Ipam<DatastoreIpam>,
    cfg: &NodeConfig,
    wanted: bool,
    vxlan_pools: &[Ipv4Net],
) -> anyhow::Result<Option<(Ipv4Addr, [u8; 6])>> {
    let me = &cfg.node_name;
    let handle = tabby_ipam::handle::vxlan_tunnel_handle(me);
    let node = match ds.get(Kind::Node, me).await? {
        Resource::Node(n) => n,
        _ => bail!("datastore returned a non-Node for Node {me}"),
    };
    let stored: Option<Ipv4Addr> = node
        .spec
        .ipv4_vxlan_tunnel_addr
        .as_deref()
        .and_then(|t| t.split('/').next()?.parse().ok());
    if !wanted {
        if stored.is_some() {
            ipam.release_by_handle(&handle).await?;
            update_node(ds, me, |n| {
                n.spec.ipv4_vxlan_tunnel_addr = None;
                n.spec.vxlan_tunnel_mac_addr = None;
            })
            .await?;
            tracing::info!("released the VXLAN tunnel address: no VXLAN pool and no fallback");
        }
        return Ok(None);
    }
    let in_pools =
        |ip: &Ipv4Addr| vxlan_pools.is_empty() || vxlan_pools.iter().any(|p| p.contains(ip));
    let held = held_by(ipam, &handle).await?;
    let keep = stored
        .filter(|s| held.contains(s) && in_pools(s))
        .or_else(|| held.iter().copied().find(|h| in_pools(h)));
    let tunnel = match keep {
        Some(t) => t,
        None => {
            if !held.is_empty() {
                ipam.release_by_handle(&handle).await?;
            }
            let mut req = AssignRequest::new(&handle, me);
            req.use_for = Use::Tunnel;
            req.pools_v4 = vxlan_pools.iter().map(|p| IpNet::V4(*p)).collect();
            req.attributes.insert("node".into(), me.clone());
            req.attributes
                .insert("type".into(), "vxlanTunnelAddress".into());
            let (v4, _) = ipam
                .auto_assign(&req)
                .await
                .context("allocating the VXLAN tunnel address")?;
            match v4.first() {
                Some(IpAddr::V4(a)) => *a,
                _ => bail!("IPAM returned no IPv4 tunnel address"),
            }
        }
    };
    let mac = vtep::node_mac(me, node.spec.vxlan_tunnel_mac_addr.as_deref());
    update_node(ds, me, |n| {
        n.spec.ipv4_vxlan_tunnel_addr = Some(tunnel.to_string());
        n.spec.vxlan_tunnel_mac_addr = Some(vtep::format_mac(&mac));
    })
    .await?;
    tracing::info!(tunnel = %tunnel, mac = %vtep::format_mac(&mac), "VXLAN tunnel endpoint");
    Ok(Some((tunnel, mac)))
}

/// Whether this node needs a VTEP at all.
pub fn vxlan_wanted(cfg: &NodeConfig, vxlan_pools: &[Ipv4Net]) -> bool {
    match cfg.backend {
        Backend::None => false,
        Backend::Vxlan => !vxlan_pools.is_empty(),
        Backend::Bird => !vxlan_pools.is_empty() || cfg.vxlan_fallback,
    }
}
