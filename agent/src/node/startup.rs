//! What calico-node does before it runs: find the node address, make sure
//! an IP pool exists, and write this node's Node resource. The VXLAN tunnel
//! address is `tunnel.rs`'s.

use super::config::NodeConfig;
use super::config6::{self, Ip6Setting};
use crate::datastore::{Datastore, Error as DsError};
use crate::resources::ippool::{EncapMode, IpPoolSpec};
use crate::resources::node::NodeBgpSpec;
use crate::resources::{IpPool, Kind, Node, Resource};
use anyhow::{bail, Context};
use ipnet::{Ipv4Net, Ipv6Net};
use tabby_felix_lite::autodetect::{self, Detected, Family, IpSetting, Method};
use tabby_felix_lite::inspect::KernelSnapshot;

pub const DEFAULT_POOL_NAME: &str = "default-ipv4-ippool";
pub const DEFAULT_POOL6_NAME: &str = "default-ipv6-ippool";

/// The node address per `IP` / `IP_AUTODETECTION_METHOD`; `None` for
/// `IP=none`.
pub async fn detect_address(
    cfg: &NodeConfig,
    ds: &dyn Datastore,
) -> anyhow::Result<Option<Detected>> {
    let d = match cfg.ip {
        IpSetting::None => return Ok(None),
        IpSetting::Autodetect if cfg.autodetect == Method::KubernetesInternalIp => {
            internal_ip(cfg, ds).await?
        }
        IpSetting::Autodetect => autodetect::detect(&cfg.autodetect).await?,
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

/// `kubernetes-internal-ip`: the first InternalIP of `N`'s family of this
/// node's Node (in the Kubernetes datastore the kubelet's
/// `status.addresses`), with the prefix of the interface that holds it.
async fn internal_ip<N: Family>(
    cfg: &NodeConfig,
    ds: &dyn Datastore,
) -> anyhow::Result<Detected<N>> {
    let node = match ds.get(Kind::Node, &cfg.node_name).await {
        Ok(Resource::Node(n)) => Some(n),
        Ok(_) | Err(DsError::NotFound { .. }) => None,
        Err(e) => return Err(e).context("reading this node's Node for kubernetes-internal-ip"),
    };
    let addr = node
        .iter()
        .flat_map(|n| &n.spec.addresses)
        .filter(|a| a.kind.as_deref() == Some("InternalIP"))
        .find_map(|a| a.address.split('/').next()?.parse::<N::Ip>().ok());
    let Some(addr) = addr else {
        bail!(
            "{}=kubernetes-internal-ip: Node {:?} has no {} InternalIP address \
             (it comes from the kubelet in the Kubernetes datastore); use first-found, \
             interface=, cidr= or can-reach=",
            N::METHOD_VAR,
            cfg.node_name,
            N::NAME
        );
    };
    let mut d = autodetect::local_cidr_of::<N>(addr).await?;
    d.reason = format!("the Node's InternalIP {addr} ({})", d.reason);
    Ok(d)
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

/// The default IPv6 pool from `CALICO_IPV6POOL_*`, only when
/// `CALICO_IPV6POOL_CIDR` is set (see `config6`) and, as calico-node checks
/// each family on its own, only when no IPv6 pool exists yet.
pub async fn ensure_default_pool6(ds: &dyn Datastore, cfg: &NodeConfig) -> anyhow::Result<()> {
    let Some(want) = &cfg.ipv6.pool else {
        return Ok(());
    };
    let existing = ds.list(Kind::IpPool, None).await?;
    let has_v6 = existing.items.iter().any(|r| match r {
        Resource::IpPool(p) => p.spec.cidr.contains(':'),
        _ => false,
    });
    if has_v6 {
        return Ok(());
    }
    let mut spec = IpPoolSpec {
        cidr: want.cidr.to_string(),
        block_size: Some(want.block_size),
        vxlan_mode: Some(want.vxlan_mode),
        ipip_mode: Some(EncapMode::Never),
        nat_outgoing: want.nat_outgoing,
        node_selector: Some("all()".into()),
        ..Default::default()
    };
    spec.fill_defaults(true);
    let pool = IpPool::new("IPPool", DEFAULT_POOL6_NAME, spec);
    match ds.create(Resource::IpPool(pool)).await {
        Ok(_) => {
            tracing::info!(cidr = %want.cidr, vxlan = ?want.vxlan_mode, "created the default IPv6 pool");
            Ok(())
        }
        Err(DsError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e).context("creating the default IPv6 pool"),
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

/// `IP6=<address>`: checks that the address is on one of this node's
/// interfaces (else the start fails naming `IP6`); `IP6=autodetect` runs
/// `IP6_AUTODETECTION_METHOD` (finding nothing fails the start naming the
/// variable and every interface tried). The address, with its prefix, goes
/// to `spec.bgp.ipv6Address` (the `projectcalico.org/IPv6Address`
/// annotation in the Kubernetes datastore). `k` is the node's kernel state
/// ([`KernelSnapshot::read`]).
pub async fn write_node_ipv6(
    ds: &dyn Datastore,
    cfg: &NodeConfig,
    k: &KernelSnapshot,
) -> anyhow::Result<Option<Ipv6Net>> {
    let net = match cfg.ipv6.ip6 {
        Ip6Setting::None => return Ok(None),
        Ip6Setting::Autodetect => {
            let d: Detected<Ipv6Net> = match &cfg.ipv6.autodetect {
                Method::KubernetesInternalIp => internal_ip(cfg, ds).await?,
                m => autodetect::detect(m).await?,
            };
            tracing::info!(interface = %d.interface, address = %d.address, reason = %d.reason, "node IPv6 address");
            for w in &d.warnings {
                tracing::warn!("{w}");
            }
            d.address
        }
        Ip6Setting::Fixed { addr, prefix_len } => {
            let (interface, net) =
                config6::locate_ip6(addr, prefix_len, k).map_err(anyhow::Error::msg)?;
            tracing::info!(%interface, address = %net, "node IPv6 address (IP6)");
            net
        }
    };
    update_node(ds, &cfg.node_name, |n| {
        n.spec
            .bgp
            .get_or_insert_with(NodeBgpSpec::default)
            .ipv6_address = Some(net.to_string());
    })
    .await?;
    Ok(Some(net))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datastore::memory::MemoryStore;
    use std::collections::HashMap;
    use tabby_felix_lite::netlink::links::KernelAddr6;

    fn cfg(ip6: &str) -> NodeConfig {
        let env: HashMap<String, String> = [("NODENAME", "node-1"), ("IP6", ip6)]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        NodeConfig::from_map(&env).unwrap()
    }

    #[tokio::test]
    async fn ip6_is_written_with_the_interfaces_prefix_or_refused_by_name() {
        let ds = MemoryStore::new();
        let k = KernelSnapshot {
            addrs6: vec![KernelAddr6 {
                index: 2,
                ip: "fd00:1::5".parse().unwrap(),
                prefix_len: 64,
            }],
            ..Default::default()
        };
        let got = write_node_ipv6(&ds, &cfg("fd00:1::5"), &k).await.unwrap();
        assert_eq!(got.map(|n| n.to_string()).as_deref(), Some("fd00:1::5/64"));
        let Ok(Resource::Node(n)) = ds.get(Kind::Node, "node-1").await else {
            panic!("no Node written");
        };
        assert_eq!(
            n.spec.bgp.and_then(|b| b.ipv6_address).as_deref(),
            Some("fd00:1::5/64")
        );
        let e = write_node_ipv6(&ds, &cfg("fd00:2::5/64"), &k)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("IP6: fd00:2::5 is not on any interface"),
            "{e}"
        );
        assert_eq!(write_node_ipv6(&ds, &cfg("none"), &k).await.unwrap(), None);
    }
}
