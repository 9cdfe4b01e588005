//! This node's VXLAN tunnel endpoints, one per address family: a tunnel
//! address from IPAM (handle `vxlan-tunnel-addr-<node>`, IPv6
//! `vxlan-v6-tunnel-addr-<node>`, Tunnel use) and Felix's VTEP MAC on the
//! Node, kept in line with the pools that select this node. VXLAN is
//! needed in a family when a VXLAN pool of it selects this node, or when
//! BGP runs with fallback on (fallback needs both ends to have a VTEP in
//! advance) and the node has an address of that family.

use super::cluster::{node_ipv4, node_ipv6, Cluster};
use super::config::{Backend, NodeConfig};
use super::routes::Family;
use super::startup::update_node;
use super::vtep;
use crate::datastore::Datastore;
use crate::ipam::DatastoreIpam;
use crate::resources::ippool::EncapMode;
use crate::resources::{IpPool, Kind, Node, Resource};
use anyhow::{bail, Context};
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use tabby_ipam::allocator::{AssignRequest, Ipam};
use tabby_ipam::pool::Use;
use tabby_ipam::selector::Selector;
use tabby_ipam::store::IpamStore;

/// The tunnel address and MAC in use.
pub type Vtep = (Ipv4Addr, [u8; 6]);
pub type Vtep6 = (Ipv6Addr, [u8; 6]);

/// One family's upkeep state.
#[derive(Debug, Default)]
struct Side {
    pools: Pools,
    /// Whether this node has an address of the family (`IP=none` has no
    /// IPv4 VTEP).
    has_address: bool,
    /// The last attempt failed (e.g. IPAM's view of the pools lagged the
    /// cluster's): try again without waiting for another pool change.
    retry: bool,
    vtep: Option<(IpAddr, [u8; 6])>,
}

/// The tunnel upkeep: re-checked when the pools selecting this node
/// change, and again on the tick after a failure.
pub struct Tunnel {
    v4: Side,
    v6: Side,
    pub vtep: Option<Vtep>,
    pub vtep6: Option<Vtep6>,
}

/// The pools the tunnel address depends on (one family).
#[derive(Debug, Clone, Default, PartialEq)]
struct Pools {
    /// Enabled VXLAN pools selecting this node: where a new address comes
    /// from.
    enabled: Vec<IpNet>,
    /// The same, disabled ones included: an address in one of them stays
    /// (`disabled` stops new allocations only, so re-addressing the VTEP
    /// there would be a change it need not make).
    keep: Vec<IpNet>,
    /// Every pool of the family: with no VXLAN pool (the fallback VTEP), any.
    all: Vec<IpNet>,
}

impl Tunnel {
    /// Gives the node its VTEPs if it needs them. Without one the node
    /// still routes natively: a pool that allows no tunnel addresses must
    /// not keep it from starting, so a failure is logged, not returned.
    pub async fn start(
        ds: &dyn Datastore,
        ipam: &Ipam<DatastoreIpam>,
        cfg: &NodeConfig,
        cluster: &Cluster,
        has_v4: bool,
        has_v6: bool,
    ) -> Tunnel {
        let side = |has_address| Side {
            has_address,
            retry: true,
            ..Side::default()
        };
        let mut t = Tunnel {
            v4: side(has_v4),
            v6: side(has_v6 && cfg.ipv6.ipv6_support),
            vtep: None,
            vtep6: None,
        };
        t.update(ds, ipam, cfg, cluster, Family::V4).await;
        t.update(ds, ipam, cfg, cluster, Family::V6).await;
        t
    }

    /// Re-checks the VTEPs when the VXLAN pools selecting this node
    /// changed, or when the last attempt failed.
    pub async fn on_cluster(
        &mut self,
        ds: &dyn Datastore,
        ipam: &Ipam<DatastoreIpam>,
        cfg: &NodeConfig,
        cluster: &Cluster,
    ) {
        for fam in [Family::V4, Family::V6] {
            let side = self.side(fam);
            if my_pools(cluster, &cfg.node_name, fam) == side.pools && !side.retry {
                continue;
            }
            self.update(ds, ipam, cfg, cluster, fam).await;
        }
    }

    fn side(&mut self, fam: Family) -> &mut Side {
        match fam {
            Family::V4 => &mut self.v4,
            Family::V6 => &mut self.v6,
        }
    }

    async fn update(
        &mut self,
        ds: &dyn Datastore,
        ipam: &Ipam<DatastoreIpam>,
        cfg: &NodeConfig,
        cluster: &Cluster,
        fam: Family,
    ) {
        let exclude = in_use_elsewhere(cluster, fam).await;
        let side = self.side(fam);
        side.pools = my_pools(cluster, &cfg.node_name, fam);
        // A disabled VXLAN pool still carries its pods over VXLAN.
        let wanted = vxlan_wanted(cfg, &side.pools.keep) && side.has_address;
        match ensure_tunnel(ds, ipam, cfg, fam, wanted, &side.pools, &exclude).await {
            Ok(v) => {
                side.vtep = v;
                side.retry = false;
            }
            Err(e) => {
                // The old address (if any) is still held and still on the
                // Node: keep using it.
                tracing::warn!(error = %format!("{e:#}"), family = fam.name(), kept = ?side.vtep.map(|v| v.0), "updating the VXLAN tunnel address; retrying");
                side.retry = true;
            }
        }
        self.vtep = match self.v4.vtep {
            Some((IpAddr::V4(a), mac)) => Some((a, mac)),
            _ => None,
        };
        self.vtep6 = match self.v6.vtep {
            Some((IpAddr::V6(a), mac)) => Some((a, mac)),
            _ => None,
        };
    }
}

fn of_family(fam: Family) -> impl Fn(&IpNet) -> bool {
    move |n| Family::of(n) == fam
}

fn my_pools(cluster: &Cluster, me: &str, fam: Family) -> Pools {
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
    let keep = of_family(fam);
    Pools {
        enabled: vxlan_pools(&pools, &labels)
            .into_iter()
            .filter(&keep)
            .collect(),
        keep: vxlan_pools(&with_disabled, &labels)
            .into_iter()
            .filter(&keep)
            .collect(),
        all: pools
            .iter()
            .filter_map(|p| p.spec.cidr.parse().ok())
            .filter(&keep)
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
/// otherwise hand the VTEP the router's address) and, for IPv4, the
/// addresses on this host's interfaces other than `vxlan.calico` itself.
async fn in_use_elsewhere(cluster: &Cluster, fam: Family) -> Vec<IpNet> {
    let mut out: Vec<IpNet> = Vec::new();
    let subnets: Vec<IpNet> = match fam {
        Family::V4 => cluster
            .nodes
            .values()
            .filter_map(node_ipv4)
            .map(IpNet::V4)
            .collect(),
        Family::V6 => cluster
            .nodes
            .values()
            .filter_map(node_ipv6)
            .map(IpNet::V6)
            .collect(),
    };
    let whole_from = match fam {
        Family::V4 => WHOLE_SUBNET_FROM,
        Family::V6 => 48,
    };
    for n in subnets {
        if n.prefix_len() >= whole_from {
            out.push(n.trunc());
        } else {
            out.push(IpNet::from(n.addr()));
            if let Some(first) = n.trunc().hosts().next() {
                out.push(IpNet::from(first));
            }
        }
    }
    if fam == Family::V6 {
        out.sort();
        out.dedup();
        return out;
    }
    match tabby_felix_lite::autodetect::host::interfaces().await {
        Ok(ifaces) => out.extend(
            ifaces
                .iter()
                .filter(|i| i.name != tabby_felix_lite::model::VXLAN_DEVICE)
                .flat_map(|i| i.addrs.iter())
                .map(|a| IpNet::V4(ipnet::Ipv4Net::from(a.net.addr()))),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "listing interfaces to keep the tunnel address off them")
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The enabled VXLAN pools (both families) whose node selector matches
/// `labels`.
pub fn vxlan_pools(pools: &[IpPool], labels: &BTreeMap<String, String>) -> Vec<IpNet> {
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

/// The addresses of `fam` that `handle` holds, as IPAM records them.
async fn held_by<S: IpamStore>(
    ipam: &Ipam<S>,
    handle: &str,
    fam: Family,
) -> anyhow::Result<Vec<IpAddr>> {
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
                    .filter(|ip| ip.is_ipv4() == (fam == Family::V4)),
            );
        }
    }
    Ok(out)
}

/// What differs between the two families' tunnels: Calico's handle, Node
/// fields, MAC rule and IPAM attribute.
struct Names {
    handle: String,
    kind: &'static str,
}

fn names(me: &str, fam: Family) -> Names {
    match fam {
        Family::V4 => Names {
            handle: tabby_ipam::handle::vxlan_tunnel_handle(me),
            kind: "vxlanTunnelAddress",
        },
        Family::V6 => Names {
            handle: tabby_ipam::handle::vxlan_v6_tunnel_handle(me),
            kind: "vxlanV6TunnelAddress",
        },
    }
}

fn stored(node: &Node, fam: Family) -> (Option<IpAddr>, Option<&str>) {
    let (addr, mac) = match fam {
        Family::V4 => (
            &node.spec.ipv4_vxlan_tunnel_addr,
            &node.spec.vxlan_tunnel_mac_addr,
        ),
        Family::V6 => (
            &node.spec.ipv6_vxlan_tunnel_addr,
            &node.spec.vxlan_tunnel_mac_addr_v6,
        ),
    };
    let addr = addr
        .as_deref()
        .and_then(|t| t.split('/').next()?.parse::<IpAddr>().ok())
        .filter(|a| a.is_ipv4() == (fam == Family::V4));
    (addr, mac.as_deref())
}

fn set_stored(node: &mut Node, fam: Family, v: Option<(IpAddr, [u8; 6])>) {
    let addr = v.map(|(a, _)| a.to_string());
    let mac = v.map(|(_, m)| vtep::format_mac(&m));
    match fam {
        Family::V4 => {
            node.spec.ipv4_vxlan_tunnel_addr = addr;
            node.spec.vxlan_tunnel_mac_addr = mac;
        }
        Family::V6 => {
            node.spec.ipv6_vxlan_tunnel_addr = addr;
            node.spec.vxlan_tunnel_mac_addr_v6 = mac;
        }
    }
}

/// Makes the Node's tunnel address and VTEP MAC of `fam` match `wanted`:
/// keeps the one IPAM holds for it while it is in a VXLAN pool selecting
/// the node and not in `exclude`; otherwise assigns the new one first and
/// only then releases the old, so a failed allocation leaves the node its
/// working address. Releases it when VXLAN is no longer wanted.
async fn ensure_tunnel(
    ds: &dyn Datastore,
    ipam: &Ipam<DatastoreIpam>,
    cfg: &NodeConfig,
    fam: Family,
    wanted: bool,
    pools: &Pools,
    exclude: &[IpNet],
) -> anyhow::Result<Option<(IpAddr, [u8; 6])>> {
    let me = &cfg.node_name;
    let Names { handle, kind } = names(me, fam);
    let node = match ds.get(Kind::Node, me).await? {
        Resource::Node(n) => n,
        _ => bail!("datastore returned a non-Node for Node {me}"),
    };
    let (stored_addr, stored_mac) = stored(&node, fam);
    if !wanted {
        if stored_addr.is_some() {
            ipam.release_by_handle(&handle).await?;
            update_node(ds, me, |n| set_stored(n, fam, None)).await?;
            tracing::info!(
                family = fam.name(),
                "released the VXLAN tunnel address: no VXLAN pool and no fallback"
            );
        }
        return Ok(None);
    }
    let usable = |ip: &IpAddr| {
        let in_pool = if pools.keep.is_empty() {
            pools.all.iter().any(|p| p.contains(ip))
        } else {
            pools.keep.iter().any(|p| p.contains(ip))
        };
        in_pool && !exclude.iter().any(|x| x.contains(ip))
    };
    let held = held_by(ipam, &handle, fam).await?;
    let keep = stored_addr
        .filter(|s| held.contains(s) && usable(s))
        .or_else(|| held.iter().copied().find(|h| usable(h)));
    let tunnel = match keep {
        Some(t) => t,
        None => {
            let mut req = AssignRequest::new(&handle, me);
            req.use_for = Use::Tunnel;
            match fam {
                Family::V4 => req.pools_v4 = pools.enabled.clone(),
                Family::V6 => {
                    req.num_v4 = 0;
                    req.num_v6 = 1;
                    req.pools_v6 = pools.enabled.clone();
                }
            }
            req.exclude = exclude.to_vec();
            req.attributes.insert("node".into(), me.clone());
            req.attributes.insert("type".into(), kind.into());
            let (v4, v6) = ipam.auto_assign(&req).await.with_context(|| {
                format!(
                    "allocating the {} VXLAN tunnel address (never inside a node subnet or on an interface)",
                    fam.name()
                )
            })?;
            match (fam, v4.first(), v6.first()) {
                (Family::V4, Some(a @ IpAddr::V4(_)), _) => *a,
                (Family::V6, _, Some(a @ IpAddr::V6(_))) => *a,
                _ => bail!("IPAM returned no {} tunnel address", fam.name()),
            }
        }
    };
    let mac = match fam {
        Family::V4 => vtep::node_mac(me, stored_mac),
        Family::V6 => vtep::node_mac6(me, stored_mac),
    };
    if stored_addr != Some(tunnel) || stored_mac.is_none() {
        update_node(ds, me, |n| set_stored(n, fam, Some((tunnel, mac)))).await?;
    }
    // The Node names the new address now: only then do the old ones go,
    // each only while this handle still holds it.
    for old in held.iter().filter(|h| **h != tunnel) {
        ipam.release_ip_held_by(*old, &handle).await?;
        tracing::info!(old = %old, new = %tunnel, "released the previous VXLAN tunnel address");
    }
    tracing::info!(tunnel = %tunnel, mac = %vtep::format_mac(&mac), family = fam.name(), "VXLAN tunnel endpoint");
    Ok(Some((tunnel, mac)))
}

/// Whether this node needs a VTEP at all.
pub fn vxlan_wanted(cfg: &NodeConfig, vxlan_pools: &[IpNet]) -> bool {
    match cfg.backend {
        Backend::None => false,
        Backend::Vxlan => !vxlan_pools.is_empty(),
        Backend::Bird => !vxlan_pools.is_empty() || cfg.vxlan_fallback,
    }
}
