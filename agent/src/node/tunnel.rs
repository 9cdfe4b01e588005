//! This node's VXLAN tunnel endpoint: a tunnel address from IPAM (handle
//! `vxlan-tunnel-addr-<node>`, Tunnel use) and Felix's VTEP MAC on the
//! Node, kept in line with the pools that select this node. VXLAN is
//! needed when a VXLAN pool selects this node, or when BGP runs with
//! fallback on (fallback needs both ends to have a VTEP in advance).

use super::cluster::{node_ipv4, Cluster};
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

/// The tunnel upkeep: re-checked when the pools selecting this node
/// change, and again on the tick after a failure.
pub struct Tunnel {
    pools: Pools,
    /// Whether this node has an address at all (`IP=none` has no VTEP).
    has_address: bool,
    /// The last attempt failed (e.g. IPAM's view of the pools lagged the
    /// cluster's): try again without waiting for another pool change.
    retry: bool,
    pub vtep: Option<Vtep>,
}

/// The pools the tunnel address depends on.
#[derive(Debug, Clone, Default, PartialEq)]
struct Pools {
    /// Enabled VXLAN pools selecting this node: where a new address comes
    /// from.
    enabled: Vec<Ipv4Net>,
    /// The same, disabled ones included: an address in one of them stays
    /// (`disabled` stops new allocations only, so re-addressing the VTEP
    /// there would be a change it need not make).
    keep: Vec<Ipv4Net>,
    /// Every IPv4 pool: with no VXLAN pool (the fallback VTEP), any.
    all: Vec<Ipv4Net>,
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
        let mut t = Tunnel {
            pools: Pools::default(),
            has_address,
            retry: true,
            vtep: None,
        };
        t.update(ds, ipam, cfg, cluster).await;
        t
    }

    /// Re-checks the VTEP when the VXLAN pools selecting this node changed,
    /// or when the last attempt failed.
    pub async fn on_cluster(
        &mut self,
        ds: &dyn Datastore,
        ipam: &Ipam<DatastoreIpam>,
        cfg: &NodeConfig,
        cluster: &Cluster,
    ) {
        if my_pools(cluster, &cfg.node_name) == self.pools && !self.retry {
            return;
        }
        self.update(ds, ipam, cfg, cluster).await;
    }

    async fn update(
        &mut self,
        ds: &dyn Datastore,
        ipam: &Ipam<DatastoreIpam>,
        cfg: &NodeConfig,
        cluster: &Cluster,
    ) {
        self.pools = my_pools(cluster, &cfg.node_name);
        // A disabled VXLAN pool still carries its pods over VXLAN.
        let wanted = vxlan_wanted(cfg, &self.pools.keep) && self.has_address;
        let exclude = in_use_elsewhere(cluster).await;
        match ensure_tunnel(ds, ipam, cfg, wanted, &self.pools, &exclude).await {
            Ok(v) => {
                self.vtep = v;
                self.retry = false;
            }
            Err(e) => {
                // The old address (if any) is still held and still on the
                // Node: keep using it.
                tracing::warn!(error = %format!("{e:#}"), kept = ?self.vtep.map(|v| v.0), "updating the VXLAN tunnel address; retrying");
                self.retry = true;
            }
        }
    }
}

fn my_pools(cluster: &Cluster, me: &str) -> Pools {
    let labels = cluster
        .nodes
        .get(me)
        .map(|n| n.metadata.labels.clone())
        .unwrap_or_default();
    let pools: Vec<_> = cluster.pools.values().cloned().collect();
    let mut with_disabled = pools.clone();
    for p in &mut with_disabled {
        p.spec.disabled = false;
    }
    Pools {
        enabled: vxlan_pools(&pools, &labels),
        keep: vxlan_pools(&with_disabled, &labels),
        all: pools
            .iter()
            .filter_map(|p| p.spec.cidr.parse().ok())
            .collect(),
    }
}

/// Node subnets at least this specific are kept out of tunnel addresses
/// whole; a wider one (a /8 node network with the pod pool inside it) only
/// loses its nodes' addresses and its first address, where the router
/// usually is.
const WHOLE_SUBNET_FROM: u8 = 16;

/// Addresses a tunnel address must never be: every Node's subnet (its
/// address, its neighbours, its router: a pool overlapping it would
/// otherwise hand the VTEP the router's address) and the addresses on this
/// host's interfaces other than `vxlan.calico` itself.
async fn in_use_elsewhere(cluster: &Cluster) -> Vec<IpNet> {
    let mut out: Vec<IpNet> = Vec::new();
    for n in cluster.nodes.values().filter_map(node_ipv4) {
        if n.prefix_len() >= WHOLE_SUBNET_FROM {
            out.push(IpNet::V4(n.trunc()));
        } else {
            out.push(IpNet::V4(Ipv4Net::from(n.addr())));
            if let Some(first) = n.trunc().hosts().next() {
                out.push(IpNet::V4(Ipv4Net::from(first)));
            }
        }
    }
    match tabby_felix_lite::autodetect::host::interfaces().await {
        Ok(ifaces) => out.extend(
            ifaces
                .iter()
                .filter(|i| i.name != tabby_felix_lite::model::VXLAN_DEVICE)
                .flat_map(|i| i.addrs.iter())
                .map(|a| IpNet::V4(Ipv4Net::from(a.net.addr()))),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "listing interfaces to keep the tunnel address off them")
        }
    }
    out.sort();
    out.dedup();
    out
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

/// Makes the Node's tunnel address and VTEP MAC match `wanted`: keeps the
/// one IPAM holds for it (handle `vxlan-tunnel-addr-<node>`) while it is in
/// a VXLAN pool selecting the node and not in `exclude`; otherwise assigns
/// the new one first and only then releases the old, so a failed
/// allocation leaves the node its working address. Releases it when VXLAN
/// is no longer wanted.
async fn ensure_tunnel(
    ds: &dyn Datastore,
    ipam: &Ipam<DatastoreIpam>,
    cfg: &NodeConfig,
    wanted: bool,
    pools: &Pools,
    exclude: &[IpNet],
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
    let usable = |ip: &Ipv4Addr| {
        let in_pool = if pools.keep.is_empty() {
            pools.all.iter().any(|p| p.contains(ip))
        } else {
            pools.keep.iter().any(|p| p.contains(ip))
        };
        in_pool && !exclude.iter().any(|x| x.contains(&IpAddr::V4(*ip)))
    };
    let held = held_by(ipam, &handle).await?;
    let keep = stored
        .filter(|s| held.contains(s) && usable(s))
        .or_else(|| held.iter().copied().find(|h| usable(h)));
    let tunnel = match keep {
        Some(t) => t,
        None => {
            let mut req = AssignRequest::new(&handle, me);
            req.use_for = Use::Tunnel;
            req.pools_v4 = pools.enabled.iter().map(|p| IpNet::V4(*p)).collect();
            req.exclude = exclude.to_vec();
            req.attributes.insert("node".into(), me.clone());
            req.attributes
                .insert("type".into(), "vxlanTunnelAddress".into());
            let (v4, _) = ipam
                .auto_assign(&req)
                .await
                .context(
                    "allocating the VXLAN tunnel address (never inside a node subnet or on an interface)",
                )?;
            match v4.first() {
                Some(IpAddr::V4(a)) => *a,
                _ => bail!("IPAM returned no IPv4 tunnel address"),
            }
        }
    };
    let mac = vtep::node_mac(me, node.spec.vxlan_tunnel_mac_addr.as_deref());
    if stored != Some(tunnel) || node.spec.vxlan_tunnel_mac_addr.is_none() {
        update_node(ds, me, |n| {
            n.spec.ipv4_vxlan_tunnel_addr = Some(tunnel.to_string());
            n.spec.vxlan_tunnel_mac_addr = Some(vtep::format_mac(&mac));
        })
        .await?;
    }
    // The Node names the new address now: only then do the old ones go,
    // each only while this handle still holds it.
    for old in held.iter().filter(|h| **h != tunnel) {
        ipam.release_ip_held_by(IpAddr::V4(*old), &handle).await?;
        tracing::info!(old = %old, new = %tunnel, "released the previous VXLAN tunnel address");
    }
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
