//! What the tigera operator renders from an Installation's
//! `calicoNetwork` (CALICO.md §13), as pure functions: the IPPools, the
//! `IP_AUTODETECTION_METHOD` value, the networking backend and the spec as
//! applied with its defaults (`status.computed`). tabby-node's
//! `node::installation` writes what these return.

use super::installation::{
    CalicoNetworkSpec, InstallationPool, InstallationSpec, NodeAddressAutodetection,
    DEFAULT_ENCAPSULATION_V4,
};
use super::ippool::{AllowedUse, EncapMode, IpPoolSpec};
use super::IpPool;
use ipnet::IpNet;

/// The label on every pool tabby-node writes for the Installation. Tabby's
/// own value rather than the operator's `tigera-operator`: only pools with
/// it are ever updated or deleted by tabby-node (a pool made with
/// `tabbyctl`/`calicoctl` is never touched), and a real operator installed
/// later does not take Tabby's pools for its own, nor Tabby its.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "tabby";

/// The name the operator gives the first pool of each family when the
/// Installation does not name it.
pub fn default_pool_name(v6: bool) -> &'static str {
    if v6 {
        "default-ipv6-ippool"
    } else {
        "default-ipv4-ippool"
    }
}

fn is_v6(cidr: &str) -> bool {
    cidr.contains(':')
}

/// Each pool's name: its own, else the family default for the first
/// unnamed pool of that family (a second unnamed one is a validation
/// error, so it is left empty here).
pub fn pool_names(pools: &[InstallationPool]) -> Vec<String> {
    let (mut v4_done, mut v6_done) = (false, false);
    pools
        .iter()
        .map(|p| match &p.name {
            Some(n) => n.clone(),
            None => {
                let v6 = is_v6(&p.cidr);
                let done = if v6 { &mut v6_done } else { &mut v4_done };
                if *done {
                    String::new()
                } else {
                    *done = true;
                    default_pool_name(v6).to_string()
                }
            }
        })
        .collect()
}

/// The encapsulation a pool gets: its own, else VXLANCrossSubnet (v4; the
/// operator would say IPIP, which Tabby has not) or None (v6).
pub fn encapsulation(p: &InstallationPool) -> &str {
    match &p.encapsulation {
        Some(e) => e,
        None if is_v6(&p.cidr) => "None",
        None => DEFAULT_ENCAPSULATION_V4,
    }
}

/// §13: `VXLAN` → vxlanMode Always, `VXLANCrossSubnet` → CrossSubnet,
/// `None` → Never. IPIP never gets here (validation refuses it).
fn vxlan_mode(encapsulation: &str) -> EncapMode {
    match encapsulation {
        "VXLAN" => EncapMode::Always,
        "VXLANCrossSubnet" => EncapMode::CrossSubnet,
        _ => EncapMode::Never,
    }
}

fn allowed_use(s: &str) -> Option<AllowedUse> {
    match s {
        "Workload" => Some(AllowedUse::Workload),
        "Tunnel" => Some(AllowedUse::Tunnel),
        "LoadBalancer" => Some(AllowedUse::LoadBalancer),
        _ => None,
    }
}

/// The IPPool the operator would write for `p`, named `name`, with
/// Calico's defaults filled and the managed-by label.
pub fn ip_pool(p: &InstallationPool, name: &str) -> IpPool {
    let v6 = is_v6(&p.cidr);
    let nat = match p.nat_outgoing.as_deref() {
        Some(v) => v == "Enabled",
        // The operator's defaults: NAT on for IPv4, off for IPv6.
        None => !v6,
    };
    let mut spec = IpPoolSpec {
        cidr: p.cidr.clone(),
        block_size: p.block_size,
        ipip_mode: Some(EncapMode::Never),
        vxlan_mode: Some(vxlan_mode(encapsulation(p))),
        nat_outgoing: nat,
        disabled: p.disable_new_allocations.unwrap_or(false),
        disable_bgp_export: p.disable_bgp_export.unwrap_or(false),
        node_selector: p.node_selector.clone(),
        allowed_uses: p
            .allowed_uses
            .iter()
            .filter_map(|u| allowed_use(u))
            .collect(),
        ..Default::default()
    };
    spec.fill_defaults(v6);
    let mut pool = IpPool::new("IPPool", name, spec);
    pool.metadata
        .labels
        .insert(MANAGED_BY_LABEL.into(), MANAGED_BY_VALUE.into());
    pool
}

/// The pools the Installation asks for; none given means the operator's
/// default, `192.168.0.0/16` with every default.
pub fn effective_pools(net: Option<&CalicoNetworkSpec>) -> Vec<InstallationPool> {
    match net {
        Some(n) if !n.ip_pools.is_empty() => n.ip_pools.clone(),
        _ => vec![InstallationPool {
            cidr: "192.168.0.0/16".into(),
            ..Default::default()
        }],
    }
}

/// Every pool of the Installation, in its order.
pub fn ip_pools(spec: &InstallationSpec) -> Vec<IpPool> {
    let pools = effective_pools(spec.calico_network.as_ref());
    pool_names(&pools)
        .iter()
        .zip(&pools)
        .map(|(name, p)| ip_pool(p, name))
        .collect()
}

/// `IP_AUTODETECTION_METHOD` for an autodetection block, in the
/// operator's precedence; None when no method is set (the operator then
/// renders `IP=none`).
pub fn autodetection_method(a: &NodeAddressAutodetection) -> Option<String> {
    if let Some(i) = &a.interface {
        return Some(format!("interface={i}"));
    }
    if let Some(i) = &a.skip_interface {
        return Some(format!("skip-interface={i}"));
    }
    if let Some(d) = &a.can_reach {
        return Some(format!("can-reach={d}"));
    }
    if a.first_found == Some(true) {
        return Some("first-found".into());
    }
    if !a.cidrs.is_empty() {
        return Some(format!("cidr={}", a.cidrs.join(",")));
    }
    a.kubernetes
        .as_ref()
        .map(|_| "kubernetes-internal-ip".to_string())
}

/// Whether the Installation wants BGP: `bgp: Enabled` or unset (the
/// operator's default for Calico's CNI) → `bird`, `Disabled` → `vxlan`.
pub fn bgp_enabled(net: Option<&CalicoNetworkSpec>) -> bool {
    net.and_then(|n| n.bgp.as_deref()) != Some("Disabled")
}

/// `status.computed`: the spec as applied, with every default Tabby filled
/// in (bgp, pool names, encapsulation, natOutgoing, blockSize,
/// nodeSelector, allowedUses, autodetection).
pub fn computed(spec: &InstallationSpec) -> serde_json::Value {
    let mut s = spec.clone();
    let net = s.calico_network.get_or_insert_with(Default::default);
    net.bgp = Some(
        if bgp_enabled(Some(net)) {
            "Enabled"
        } else {
            "Disabled"
        }
        .into(),
    );
    net.ip_pools = effective_pools(Some(net));
    let names = pool_names(&net.ip_pools);
    for (p, name) in net.ip_pools.iter_mut().zip(names) {
        let pool = ip_pool(p, &name);
        p.name = Some(name);
        p.encapsulation = Some(encapsulation(p).to_string());
        p.nat_outgoing = Some(
            if pool.spec.nat_outgoing {
                "Enabled"
            } else {
                "Disabled"
            }
            .into(),
        );
        p.block_size = pool.spec.block_size;
        p.node_selector = pool.spec.node_selector.clone();
        p.disable_bgp_export = Some(pool.spec.disable_bgp_export);
        p.disable_new_allocations = Some(pool.spec.disabled);
        p.allowed_uses = pool
            .spec
            .allowed_uses
            .iter()
            .map(|u| format!("{u:?}"))
            .collect();
    }
    if net.node_address_autodetection_v4.is_none() {
        net.node_address_autodetection_v4 = Some(NodeAddressAutodetection {
            first_found: Some(true),
            ..Default::default()
        });
    }
    serde_json::to_value(&s).unwrap_or(serde_json::Value::Null)
}

/// Whether tabby-node manages `p` (and so may change or delete it).
pub fn managed(p: &IpPool) -> bool {
    p.metadata.labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY_VALUE)
}

/// The problems that stop the whole Installation from being applied,
/// judged against the stored pools; `wanted[i]` is `ipPools[i]`.
pub fn conflicts(wanted: &[IpPool], existing: &[IpPool]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, w) in wanted.iter().enumerate() {
        let at = format!("spec.calicoNetwork.ipPools[{i}]");
        let Ok(net) = w.spec.cidr.parse::<IpNet>() else {
            continue;
        };
        if let Some(e) = existing.iter().find(|e| e.metadata.name == w.metadata.name) {
            if !managed(e) && e.spec.cidr != w.spec.cidr {
                out.push(format!(
                    "{at}.name: IPPool {:?} already exists with cidr {} and is not managed by the \
                     Installation: name this pool differently, or delete that pool",
                    w.metadata.name, e.spec.cidr
                ));
            } else if managed(e) && e.spec.cidr != w.spec.cidr {
                out.push(format!(
                    "{at}.cidr: IPPool {:?} has cidr {}, and a pool's cidr cannot change: give the \
                     new range a new pool name (the old pool is then deleted)",
                    w.metadata.name, e.spec.cidr
                ));
            } else if e.spec.block_size != w.spec.block_size {
                out.push(format!(
                    "{at}.blockSize: IPPool {:?} has blockSize {}, which cannot change: give the \
                     pool a new name to replace it",
                    w.metadata.name,
                    e.spec.block_size.unwrap_or_default()
                ));
            }
        }
        // Managed pools do not count: wanted ones were checked against
        // each other by validation, the rest are deleted in this pass.
        let blocking = existing.iter().find(|e| {
            e.metadata.name != w.metadata.name
                && !managed(e)
                && e.spec
                    .cidr
                    .parse::<IpNet>()
                    .is_ok_and(|o| o.contains(&net.network()) || net.contains(&o.network()))
        });
        if let Some(e) = blocking {
            out.push(format!(
                "{at}.cidr: {net} overlaps IPPool {:?} ({}), which the Installation does not \
                 manage: delete that pool or choose another cidr",
                e.metadata.name, e.spec.cidr
            ));
        }
    }
    out
}
