//! Validation of an Installation: every problem names its field
//! (`spec.calicoNetwork.ipPools[1].encapsulation`), and an Installation
//! with any problem is applied not at all — by `tabbyctl apply` and by
//! tabby-node alike, which reports the same problems in `status`.

use super::installation::{
    CalicoNetworkSpec, InstallationPool, NodeAddressAutodetection, ENCAPSULATIONS,
    IGNORED_NETWORK_FIELDS, IGNORED_SPEC_FIELDS, INSTALLATION_NAME,
};
use super::installation_render::{autodetection_method, ip_pool, pool_names};
use super::parse::FieldProblem;
use super::validate_pool::{check_name, check_pool as check_ip_pool};
use super::Installation;
use ipnet::IpNet;
use std::collections::BTreeMap;

const NET: &str = "spec.calicoNetwork";

fn problem(field: String, message: impl Into<String>) -> FieldProblem {
    FieldProblem {
        field: Some(field),
        message: message.into(),
    }
}

fn one_of(field: String, value: &str, allowed: &[&str], p: &mut Vec<FieldProblem>) {
    if !allowed.contains(&value) {
        p.push(problem(
            field,
            format!("{value:?} is not one of {}", allowed.join(", ")),
        ));
    }
}

/// Fields not modelled: the operator's own (accepted, not acted on) pass,
/// anything else is a typo and refused, as for every other kind.
fn unknown_fields(
    at: &str,
    other: &BTreeMap<String, serde_json::Value>,
    known: &[&str],
    p: &mut Vec<FieldProblem>,
) {
    for k in other.keys().filter(|k| !known.contains(&k.as_str())) {
        p.push(problem(
            format!("{at}.{k}"),
            "unknown field (not a field of the operator's Installation)",
        ));
    }
}

/// Checks an Installation and fills its name (`default`). Problems that
/// need the stored pools (overlap with a pool Tabby does not manage) are
/// the caller's.
pub(crate) fn validate_installation(o: &mut Installation) -> Vec<FieldProblem> {
    let mut p = Vec::new();
    if o.metadata.name.is_empty() {
        o.metadata.name = INSTALLATION_NAME.into();
    }
    if o.metadata.name != INSTALLATION_NAME {
        p.push(problem(
            "metadata.name".into(),
            format!(
                "{:?}: the operator (and tabby-node) reads only the Installation named \"default\"",
                o.metadata.name
            ),
        ));
    }
    unknown_fields("spec", &o.spec.other, IGNORED_SPEC_FIELDS, &mut p);
    if let Some(net) = &o.spec.calico_network {
        check_network(net, &mut p);
    }
    p
}

fn check_network(net: &CalicoNetworkSpec, p: &mut Vec<FieldProblem>) {
    unknown_fields(NET, &net.other, IGNORED_NETWORK_FIELDS, p);
    if let Some(b) = &net.bgp {
        one_of(format!("{NET}.bgp"), b, &["Enabled", "Disabled"], p);
    }
    if let Some(m) = net.mtu {
        if !(68..=65535).contains(&m) {
            p.push(problem(
                format!("{NET}.mtu"),
                format!("{m} is not an MTU (expected 68..65535, or unset for the parent interface's MTU − 50)"),
            ));
        }
    }
    if net.ip_pools.len() > 25 {
        p.push(problem(
            format!("{NET}.ipPools"),
            format!(
                "{} pools: the operator allows at most 25",
                net.ip_pools.len()
            ),
        ));
    }
    let names = pool_names(&net.ip_pools);
    let mut nets: Vec<(usize, IpNet)> = Vec::new();
    for (i, (pool, name)) in net.ip_pools.iter().zip(&names).enumerate() {
        let at = format!("{NET}.ipPools[{i}]");
        if let Some(j) = names[..i].iter().position(|n| n == name && !n.is_empty()) {
            p.push(problem(
                format!("{at}.name"),
                format!("{name:?} is also the name of ipPools[{j}]"),
            ));
        }
        if name.is_empty() {
            p.push(problem(
                format!("{at}.name"),
                "required when another pool of the same address family has no name (only the first gets the default name)",
            ));
        }
        if let Some(net) = check_pool(pool, name, &at, p) {
            for (j, other) in &nets {
                if net.contains(&other.network()) || other.contains(&net.network()) {
                    p.push(problem(
                        format!("{at}.cidr"),
                        format!("{net} overlaps ipPools[{j}] ({other})"),
                    ));
                }
            }
            nets.push((i, net));
        }
    }
    if let Some(a) = &net.node_address_autodetection_v4 {
        check_autodetection(a, &format!("{NET}.nodeAddressAutodetectionV4"), p);
    }
}

fn check_pool(
    pool: &InstallationPool,
    name: &str,
    at: &str,
    p: &mut Vec<FieldProblem>,
) -> Option<IpNet> {
    unknown_fields(at, &pool.other, &[], p);
    let mut encap_ok = true;
    if let Some(e) = &pool.encapsulation {
        if e.starts_with("IPIP") && ENCAPSULATIONS.contains(&e.as_str()) {
            encap_ok = false;
            let instead = if e == "IPIP" {
                "VXLAN"
            } else {
                "VXLANCrossSubnet"
            };
            p.push(problem(
                format!("{at}.encapsulation"),
                format!("{e}: Tabby has no IPIP dataplane; use {instead} (the same routing over VXLAN) or None"),
            ));
        } else if !ENCAPSULATIONS.contains(&e.as_str()) {
            encap_ok = false;
            one_of(
                format!("{at}.encapsulation"),
                e,
                &["VXLAN", "VXLANCrossSubnet", "None"],
                p,
            );
        }
    }
    if let Some(n) = &pool.nat_outgoing {
        one_of(format!("{at}.natOutgoing"), n, &["Enabled", "Disabled"], p);
    }
    for (j, u) in pool.allowed_uses.iter().enumerate() {
        one_of(
            format!("{at}.allowedUses[{j}]"),
            u,
            &["Workload", "Tunnel", "LoadBalancer"],
            p,
        );
    }
    if pool.cidr.contains(':')
        && encap_ok
        && pool.encapsulation.as_deref().is_some_and(|e| e != "None")
    {
        p.push(problem(
            format!("{at}.encapsulation"),
            "Tabby's VXLAN is IPv4 only: an IPv6 pool needs None",
        ));
    }
    // The rendered IPPool goes through IPPool's own validation, so the
    // cidr, blockSize and nodeSelector rules are exactly `tabbyctl
    // apply`'s; its field names are mapped back to the Installation's.
    let mut rendered = ip_pool(pool, if name.is_empty() { "unnamed" } else { name });
    let mut found = Vec::new();
    check_name(&rendered.metadata.name, &mut found);
    check_ip_pool(&mut rendered.spec, &mut found);
    let mut cidr_ok = true;
    for fp in found {
        let field = match fp.field.as_deref() {
            Some("spec.cidr") => {
                cidr_ok = false;
                "cidr"
            }
            Some("spec.blockSize") => "blockSize",
            Some("spec.nodeSelector") => "nodeSelector",
            Some("metadata.name") => "name",
            _ => "encapsulation",
        };
        p.push(problem(format!("{at}.{field}"), fp.message));
    }
    if pool.cidr.is_empty() || !cidr_ok {
        return None;
    }
    pool.cidr.parse().ok()
}

fn check_autodetection(a: &NodeAddressAutodetection, at: &str, p: &mut Vec<FieldProblem>) {
    unknown_fields(at, &a.other, &[], p);
    let methods = a.methods();
    if methods.len() > 1 {
        p.push(problem(
            at.to_string(),
            format!(
                "{} are all set: one autodetection block takes exactly one method",
                methods.join(" and ")
            ),
        ));
        return;
    }
    if let Some(k) = &a.kubernetes {
        one_of(format!("{at}.kubernetes"), k, &["NodeInternalIP"], p);
        return;
    }
    for (i, c) in a.cidrs.iter().enumerate() {
        if c.parse::<ipnet::Ipv4Net>().is_err() {
            p.push(problem(
                format!("{at}.cidrs[{i}]"),
                format!("{c:?} is not an IPv4 CIDR (expected e.g. 10.0.0.0/24)"),
            ));
            return;
        }
    }
    // The env form goes through the same parser as
    // IP_AUTODETECTION_METHOD, so both accept the same values.
    if let Some(m) = autodetection_method(a) {
        if let Err(e) = m.parse::<tabby_felix_lite::autodetect::Method>() {
            p.push(problem(format!("{at}.{}", methods.join("")), e.to_string()));
        }
    }
}

#[cfg(test)]
#[path = "installation_tests.rs"]
mod tests;
