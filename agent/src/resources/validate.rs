//! Validation at the edge: every resource is checked (and Calico's defaults
//! filled) before it reaches a datastore. Each problem names its field.

use super::bgp::{BgpConfigurationSpec, BgpPeerSpec};
use super::duration::parse_go_duration;
use super::ipam::{affinity_name, block_name};
use super::node::NodeSpec;
use super::parse::FieldProblem;
use super::reservation::parse_reserved;
use super::validate_pool::{check_name, check_pool, cidr_msg, problem};
use super::Resource;
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Checks one resource on its own and fills Calico's defaults. Problems
/// that need other resources (pool overlap) are checked by the caller.
pub(crate) fn validate(r: &mut Resource) -> Vec<FieldProblem> {
    let mut p = Vec::new();
    match r {
        Resource::IpPool(o) => {
            check_name(&o.metadata.name, &mut p);
            check_pool(&mut o.spec, &mut p);
        }
        Resource::BgpPeer(o) => {
            check_name(&o.metadata.name, &mut p);
            check_peer(&o.spec, &mut p);
        }
        Resource::BgpConfiguration(o) => {
            check_name(&o.metadata.name, &mut p);
            check_bgp_config(&o.spec, &mut p);
        }
        Resource::Node(o) => {
            check_name(&o.metadata.name, &mut p);
            check_node(&o.spec, &mut p);
        }
        Resource::IpamBlock(o) => match o.spec.cidr.parse::<IpNet>() {
            Ok(net) => o.metadata.name = block_name(&net.trunc().to_string()),
            Err(_) => p.push(problem("spec.cidr", cidr_msg(&o.spec.cidr))),
        },
        Resource::BlockAffinity(o) => {
            if o.spec.node.is_empty() {
                p.push(problem("spec.node", "required"));
            }
            match o.spec.cidr.parse::<IpNet>() {
                Ok(_) => o.metadata.name = affinity_name(&o.spec.node, &o.spec.cidr),
                Err(_) => p.push(problem("spec.cidr", cidr_msg(&o.spec.cidr))),
            }
        }
        Resource::IpamHandle(o) => {
            if o.spec.handle_id.is_empty() {
                o.spec.handle_id = o.metadata.name.clone();
            }
            if o.metadata.name.is_empty() {
                o.metadata.name = o.spec.handle_id.clone();
            }
            if o.metadata.name.is_empty() {
                p.push(problem("spec.handleID", "required"));
            }
        }
        Resource::IpamConfig(o) => {
            if o.metadata.name.is_empty() {
                o.metadata.name = "default".into();
            }
            if o.metadata.name != "default" {
                p.push(problem(
                    "metadata.name",
                    format!(
                        "{:?}: IPAMConfig is a singleton named \"default\"",
                        o.metadata.name
                    ),
                ));
            }
            if !o.spec.strict_affinity && !o.spec.auto_allocate_blocks {
                p.push(problem(
                    "spec.autoAllocateBlocks",
                    "false requires strictAffinity: true (otherwise no host could ever get a block)",
                ));
            }
        }
        Resource::WorkloadEndpoint(o) => {
            check_name(&o.metadata.name, &mut p);
            if o.metadata.namespace.as_deref().is_none_or(str::is_empty) {
                o.metadata.namespace = Some("default".into());
            }
            if o.spec.node.is_empty() {
                p.push(problem("spec.node", "required"));
            }
            for (i, n) in o.spec.ip_networks.iter().enumerate() {
                if n.parse::<IpNet>().is_err() {
                    p.push(problem(&format!("spec.ipNetworks[{i}]"), cidr_msg(n)));
                }
            }
        }
        Resource::Installation(o) => {
            p.extend(super::installation_validate::validate_installation(o));
        }
        Resource::IpReservation(o) => {
            check_name(&o.metadata.name, &mut p);
            for (i, c) in o.spec.reserved_cidrs.iter().enumerate() {
                if parse_reserved(c).is_none() {
                    p.push(problem(
                        &format!("spec.reservedCIDRs[{i}]"),
                        format!(
                            "{c:?} is neither a CIDR nor an IP address \
                             (expected e.g. 10.244.0.0/28, 10.244.0.7 or fd00::/120)"
                        ),
                    ));
                }
            }
        }
    }
    p
}

/// Calico's peerIP: an address, optionally with a port (`1.2.3.4:180`,
/// `[fd00::1]:180`).
pub fn parse_peer_ip(s: &str) -> Option<(IpAddr, Option<u16>)> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some((ip, None));
    }
    s.parse::<SocketAddr>()
        .ok()
        .map(|sa| (sa.ip(), Some(sa.port())))
}

fn check_peer(spec: &BgpPeerSpec, p: &mut Vec<FieldProblem>) {
    for (field, sel) in [
        ("spec.nodeSelector", &spec.node_selector),
        ("spec.peerSelector", &spec.peer_selector),
    ] {
        if let Some(Err(e)) = sel.as_deref().map(tabby_ipam::selector::Selector::parse) {
            p.push(problem(field, e.to_string()));
        }
    }
    if spec.node.is_some() && spec.node_selector.is_some() {
        p.push(problem(
            "spec.nodeSelector",
            "node and nodeSelector cannot both be set",
        ));
    }
    match (&spec.peer_ip, &spec.peer_selector) {
        (Some(_), Some(_)) => p.push(problem(
            "spec.peerSelector",
            "peerIP and peerSelector cannot both be set",
        )),
        (None, None) => p.push(problem(
            "spec.peerIP",
            "one of peerIP or peerSelector is required",
        )),
        (Some(ip), None) => {
            if parse_peer_ip(ip).is_none() {
                p.push(problem(
                    "spec.peerIP",
                    format!("{ip:?} is not an IP address (expected e.g. 10.0.0.1, 10.0.0.1:179 or [fd00::1]:179)"),
                ));
            }
            if spec.as_number.is_none() {
                p.push(problem("spec.asNumber", "required when peerIP is set"));
            }
        }
        (None, Some(_)) => {}
    }
    if let Some(d) = &spec.max_restart_time {
        if let Err(e) = parse_go_duration(d) {
            p.push(problem("spec.maxRestartTime", e));
        }
    }
    super::bfd::check_mode(
        "spec.failureDetectionMode",
        spec.failure_detection_mode.as_deref(),
        p,
    );
    if let Some(sa) = &spec.source_address {
        if sa != "UseNodeIP" && sa != "None" {
            p.push(problem(
                "spec.sourceAddress",
                format!("{sa:?} is not one of UseNodeIP, None"),
            ));
        }
    }
    if let Some(r) = &spec.reverse_peering {
        if r != "Auto" && r != "Manual" {
            p.push(problem(
                "spec.reversePeering",
                format!("{r:?} is not one of Auto, Manual"),
            ));
        }
    }
    check_password("spec.password", spec.password.as_ref(), p);
    if let Some(n) = spec.num_allowed_local_as_numbers {
        if n > u32::from(u8::MAX) {
            p.push(problem(
                "spec.numAllowedLocalASNumbers",
                format!("{n} is too many (expected 0 to 255)"),
            ));
        }
    }
}

/// A Secret reference Tabby can resolve: a Secret name (DNS subdomain)
/// and a key of `[-._a-zA-Z0-9]` (Kubernetes' rules), which also keeps the
/// file it names inside the secrets directory.
fn check_password(
    field: &str,
    pw: Option<&crate::resources::meta::BgpPassword>,
    p: &mut Vec<FieldProblem>,
) {
    let Some(pw) = pw else { return };
    let Some(r) = &pw.secret_key_ref else {
        p.push(problem(
            &format!("{field}.secretKeyRef"),
            "required when password is set",
        ));
        return;
    };
    let dns = |s: &str| {
        !s.is_empty()
            && s.len() <= 253
            && s.split('.').all(|l| {
                !l.is_empty()
                    && l.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            })
    };
    if !dns(&r.name) {
        p.push(problem(
            &format!("{field}.secretKeyRef.name"),
            format!(
                "{:?} is not a Secret name (lower-case DNS subdomain)",
                r.name
            ),
        ));
    }
    let key_ok = !r.key.is_empty()
        && r.key != "."
        && r.key != ".."
        && r.key.len() <= 253
        && r.key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if !key_ok {
        p.push(problem(
            &format!("{field}.secretKeyRef.key"),
            format!("{:?} is not a Secret key (expected [-._a-zA-Z0-9]+)", r.key),
        ));
    }
}

fn check_bgp_config(spec: &BgpConfigurationSpec, p: &mut Vec<FieldProblem>) {
    check_password("spec.nodeMeshPassword", spec.node_mesh_password.as_ref(), p);
    if spec.listen_port == Some(0) {
        p.push(problem("spec.listenPort", "0 is not a port (1..65535)"));
    }
    for (field, list) in [
        ("spec.serviceClusterIPs", &spec.service_cluster_ips),
        ("spec.serviceExternalIPs", &spec.service_external_ips),
        (
            "spec.serviceLoadBalancerIPs",
            &spec.service_load_balancer_ips,
        ),
    ] {
        for (i, e) in list.iter().enumerate() {
            if e.cidr.parse::<IpNet>().is_err() && e.cidr.parse::<IpAddr>().is_err() {
                p.push(problem(&format!("{field}[{i}].cidr"), cidr_msg(&e.cidr)));
            }
        }
    }
    for (i, c) in spec.communities.iter().enumerate() {
        if !valid_community(&c.value) {
            p.push(problem(
                &format!("spec.communities[{i}].value"),
                format!(
                    "{:?} is not a community (expected aa:nn or aa:nn:mm)",
                    c.value
                ),
            ));
        }
    }
    for (i, pa) in spec.prefix_advertisements.iter().enumerate() {
        if pa.cidr.parse::<IpNet>().is_err() {
            p.push(problem(
                &format!("spec.prefixAdvertisements[{i}].cidr"),
                cidr_msg(&pa.cidr),
            ));
        }
        for (j, c) in pa.communities.iter().enumerate() {
            let named = spec.communities.iter().any(|n| &n.name == c);
            if !named && !valid_community(c) {
                p.push(problem(
                    &format!("spec.prefixAdvertisements[{i}].communities[{j}]"),
                    format!("{c:?} is neither a community value nor a name from spec.communities"),
                ));
            }
        }
    }
    if let Some(b) = &spec.bind_mode {
        if b != "None" && b != "NodeIP" {
            p.push(problem(
                "spec.bindMode",
                format!("{b:?} is not one of None, NodeIP"),
            ));
        }
    }
    if let Some(d) = &spec.node_mesh_max_restart_time {
        if let Err(e) = parse_go_duration(d) {
            p.push(problem("spec.nodeMeshMaxRestartTime", e));
        }
    }
    super::bfd::check_bgp_config(spec, p);
}

/// `aa:nn` (standard, 16-bit parts) or `aa:nn:mm` (large, 32-bit parts).
fn valid_community(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    match parts.len() {
        2 => parts.iter().all(|x| x.parse::<u16>().is_ok()),
        3 => parts.iter().all(|x| x.parse::<u32>().is_ok()),
        _ => false,
    }
}

fn check_node(spec: &NodeSpec, p: &mut Vec<FieldProblem>) {
    if let Some(bgp) = &spec.bgp {
        if let Some(a) = &bgp.ipv4_address {
            if !is_v4_addr_or_net(a) {
                p.push(problem(
                    "spec.bgp.ipv4Address",
                    format!("{a:?} is not an IPv4 address (expected e.g. 10.0.0.5/24)"),
                ));
            }
        }
        if let Some(a) = &bgp.ipv6_address {
            let ok = a.parse::<IpNet>().is_ok_and(|n| n.addr().is_ipv6())
                || a.parse::<IpAddr>().is_ok_and(|i| i.is_ipv6());
            if !ok {
                p.push(problem(
                    "spec.bgp.ipv6Address",
                    format!("{a:?} is not an IPv6 address (expected e.g. fd00::5/64)"),
                ));
            }
        }
        if let Some(id) = &bgp.route_reflector_cluster_id {
            if id.parse::<Ipv4Addr>().is_err() {
                p.push(problem(
                    "spec.bgp.routeReflectorClusterID",
                    format!("{id:?} is not in IPv4 address form (e.g. 224.0.0.1)"),
                ));
            }
        }
    }
    if let Some(a) = &spec.ipv4_vxlan_tunnel_addr {
        if a.parse::<Ipv4Addr>().is_err() {
            p.push(problem(
                "spec.ipv4VXLANTunnelAddr",
                format!("{a:?} is not an IPv4 address"),
            ));
        }
    }
    if let Some(m) = &spec.vxlan_tunnel_mac_addr {
        if !is_mac(m) {
            p.push(problem(
                "spec.vxlanTunnelMACAddr",
                format!("{m:?} is not a MAC address (expected e.g. 66:d1:a3:8e:01:2c)"),
            ));
        }
    }
}

fn is_v4_addr_or_net(a: &str) -> bool {
    a.parse::<IpNet>().is_ok_and(|n| n.addr().is_ipv4())
        || a.parse::<IpAddr>().is_ok_and(|i| i.is_ipv4())
}

fn is_mac(m: &str) -> bool {
    let parts: Vec<&str> = m.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|x| x.len() == 2 && u8::from_str_radix(x, 16).is_ok())
}
