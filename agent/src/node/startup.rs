//! What calico-node does before it runs: find the node address, make sure
//! an IP pool exists, write this node's Node resource, and give it a VXLAN
//! tunnel address when VXLAN may be used.

use super::config::{Backend, NodeConfig};
use super::vtep;
use crate::datastore::{Datastore, Error as DsError};
use crate::ipam_store::DatastoreIpam;
use crate::resources::ippool::{EncapMode, IpPoolSpec};
use crate::resources::node::NodeBgpSpec;
use crate::resources::{IpPool, Kind, Node, Resource};
use anyhow::{bail, Context};
use ipnet::{IpNet, Ipv4Net};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use tabby_felix_lite::autodetect::{self, Detected, IpSetting, Method};
use tabby_ipam::allocator::{AssignRequest, Ipam};
use tabby_ipam::pool::Use;
use tabby_ipam::selector::Selector;
use tabby_ipam::store::IpamStore;

pub const DEFAULT_POOL_NAME: &str = "default-ipv4-ippool";

pub fn tunnel_handle(node: &str) -> String {
    format!("vxlan-tunnel-addr-{node}")
}

/// The node address per `IP` / `IP_AUTODETECTION_METHOD`; `None` for
/// `IP=none`.
pub async fn detect_address(cfg: &NodeConfig) -> anyhow::Result<Option<Detected>> {
    let d = match cfg.ip {
        IpSetting::None => return Ok(None),
        IpSetting::Autodetect => {
            if cfg.autodetect == Method::KubernetesInternalIp {
                bail!("IP_AUTODETECTION_METHOD=kubernetes-internal-ip needs the Kubernetes datastore; use first-found, interface=, cidr= or can-reach=");
            }
            autodetect::detect(&cfg.autodetect).await?
        }
        IpSetting::Fixed { addr, prefix_len } => {
            let mut d = autodetect::local_cidr(addr).await?;
            if let Some(len) = prefix_len {
                d.address = Ipv4Net::new(addr, len).context("IP prefix length")?;
            }
            d
        }
    };
    tracing::info!(interface = %d.interface, address = %d.address, reason = %d.reason, "node address");
    for w in &d.warnings {
        tracing::warn!("{w}");
    }
    Ok(Some(d))
}

/// calico-node creates the default pool only if there is no pool at all.
/// Nodes starting together race here: AlreadyExists means another won.
pub async fn ensure_default_pool(ds: &dyn Datastore, cfg: &NodeConfig) -> anyhow::Result<()> {
    let existing = ds.list(Kind::IpPool, None).await?;
    if !existing.items.is_empty() {
        return Ok(());
    }
    let mut spec = IpPoolSpec {
        cidr: cfg.pool.cidr.to_string(),
        block_size: Some(cfg.pool.block_size),
        vxlan_mode: Some(cfg.pool.vxlan_mode),
        ipip_mode: Some(EncapMode::Never),
        nat_outgoing: cfg.pool.nat_outgoing,
        node_selector: Some("all()".into()),
        ..Default::default()
    };
    spec.fill_defaults(false);
    let pool = IpPool::new("IPPool", DEFAULT_POOL_NAME, spec);
    match ds.create(Resource::IpPool(pool)).await {
        Ok(_) => {
            tracing::info!(cidr = %cfg.pool.cidr, vxlan = ?cfg.pool.vxlan_mode, "created the default IP pool");
            Ok(())
        }
        Err(DsError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e).context("creating the default IP pool"),
    }
}

/// Reads, changes and writes this node's Node resource, retrying on
/// concurrent modification (compare-and-swap).
pub async fn update_node(
    ds: &dyn Datastore,
    name: &str,
    f: impl Fn(&mut Node),
) -> anyhow::Result<Node> {
    for _ in 0..20 {
        let current = match ds.get(Kind::Node, name).await {
            Ok(Resource::Node(n)) => Some(n),
            Ok(_) => bail!("datastore returned a non-Node for Node {name}"),
            Err(DsError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let mut n = current
            .clone()
            .unwrap_or_else(|| Node::new("Node", name, Default::default()));
        f(&mut n);
        if current.as_ref() == Some(&n) {
            return Ok(n);
        }
        let res = match current {
            Some(_) => ds.update(Resource::Node(n)).await,
            None => ds.create(Resource::Node(n)).await,
        };
        match res {
            Ok(Resource::Node(n)) => return Ok(n),
            Ok(_) => bail!("datastore returned a non-Node for Node {name}"),
            Err(DsError::Conflict { .. }) | Err(DsError::AlreadyExists { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    bail!("Node {name}: too many concurrent modifications")
}

/// Writes `spec.bgp.ipv4Address` (with prefix) and `asNumber` (when `AS`
/// is set).
pub async fn write_node_address(
    ds: &dyn Datastore,
    cfg: &NodeConfig,
    addr: Option<Ipv4Net>,
) -> anyhow::Result<Node> {
    update_node(ds, &cfg.node_name, |n| {
        let bgp = n.spec.bgp.get_or_insert_with(NodeBgpSpec::default);
        if let Some(a) = addr {
            bgp.ipv4_address = Some(a.to_string());
        }
        if let Some(asn) = cfg.as_number {
            bgp.as_number = Some(asn);
        }
        if *bgp == NodeBgpSpec::default() {
            n.spec.bgp = None;
        }
    })
    .await
}

/// VXLAN is needed when a VXLAN pool selects this node, or when BGP runs
/// with fallback on (fallback needs both ends to have a VTEP in advance).
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
    let handle = tunnel_handle(me);
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
