use super::*;

/// The lab's layout: node-1 and node-2 on 172.31.1.0/24, node-3 on
/// 172.31.2.0/24, one /26 each, looked at from node-1.
fn facts() -> Facts {
    let mut nodes = BTreeMap::new();
    for (n, ip, vtep) in [
        ("node-1", "172.31.1.11", "172.30.112.193"),
        ("node-2", "172.31.1.12", "172.30.221.129"),
        ("node-3", "172.31.2.13", "172.30.74.65"),
    ] {
        nodes.insert(
            n.to_string(),
            NodeAddrs {
                ip: Some(ip.parse().unwrap()),
                vtep: Some(vtep.parse().unwrap()),
            },
        );
    }
    Facts {
        me: "node-1".into(),
        blocks: vec![
            ("172.30.112.192/26".parse().unwrap(), Some("node-1".into())),
            ("172.30.221.128/26".parse().unwrap(), Some("node-2".into())),
            ("172.30.74.64/26".parse().unwrap(), Some("node-3".into())),
        ],
        pools: vec!["172.30.0.0/16".parse().unwrap()],
        nodes,
        subnets: vec![
            ("172.31.1.0/24".parse().unwrap(), Some("eth0".into())),
            ("172.31.1.0/24".parse().unwrap(), None),
            ("172.31.2.0/24".parse().unwrap(), None),
        ],
    }
}

fn route(dst: &str, protocol: u8, gw: Option<&str>, dev: Option<&str>, metric: u32) -> Route {
    let mut line = dst.to_string();
    if let Some(g) = gw {
        line += &format!(" via {g}");
    }
    if let Some(d) = dev {
        line += &format!(" dev {d}");
    }
    line += &format!(" proto {}", route_text::protocol_name(protocol));
    Route {
        dst: dst.parse().unwrap(),
        protocol,
        tos: 0,
        metric,
        gateway: gw.map(|g| g.parse().unwrap()),
        dev: dev.map(str::to_string),
        drops: false,
        delete: format!("ip route del {line}"),
        line,
    }
}

/// The routes a healthy node-1 holds (VXLANCrossSubnet).
fn healthy() -> Vec<Route> {
    vec![
        route("0.0.0.0/0", 3, Some("172.31.1.1"), Some("eth0"), 0),
        route(
            "172.30.74.64/26",
            81,
            Some("172.30.74.65"),
            Some("vxlan.calico"),
            0,
        ),
        route("172.30.112.194/32", 81, None, Some("cali1"), 0),
        Route {
            drops: true,
            ..route("172.30.112.192/26", 81, None, None, 0)
        },
        route(
            "172.30.221.128/26",
            81,
            Some("172.31.1.12"),
            Some("eth0"),
            0,
        ),
        route("172.31.1.0/24", 2, None, Some("eth0"), 0),
    ]
}

fn with(extra: Route) -> Vec<Finding> {
    let mut rs = healthy();
    rs.push(extra);
    examine_all(&rs, &facts())
}

#[test]
fn a_healthy_node_has_no_findings() {
    assert!(examine_all(&healthy(), &facts()).is_empty());
}

#[test]
fn seed_000_more_specific_route_via_the_subnets_network_address() {
    let f = with(route(
        "172.30.221.128/27",
        4,
        Some("172.31.1.0"),
        Some("eth0"),
        0,
    ));
    assert_eq!(f.len(), 1, "{f:?}");
    let f = &f[0];
    assert_eq!(f.severity, Severity::Error);
    assert!(
        f.what.contains("network address of 172.31.1.0/24 on eth0"),
        "{}",
        f.what
    );
    assert!(
        f.what
            .contains("172.30.221.128/27 (inside node-2's block 172.30.221.128/26)"),
        "{}",
        f.what
    );
    assert!(f.what.contains("more specific"), "{}", f.what);
    assert!(
        f.evidence
            .starts_with("172.30.221.128/27 via 172.31.1.0 dev eth0 proto static"),
        "{}",
        f.evidence
    );
    assert_eq!(
        f.fix,
        "ip route del 172.30.221.128/27 via 172.31.1.0 dev eth0 proto static"
    );
}

#[test]
fn broadcast_and_block_edge_next_hops_are_named() {
    let f = with(route(
        "172.30.221.160/27",
        4,
        Some("172.31.1.255"),
        Some("eth0"),
        0,
    ));
    assert!(
        f[0].what.contains("broadcast address of 172.31.1.0/24"),
        "{f:?}"
    );
    let f = with(route(
        "172.30.74.64/28",
        4,
        Some("172.30.74.127"),
        Some("vxlan.calico"),
        0,
    ));
    assert!(
        f[0].what
            .contains("broadcast address of the block 172.30.74.64/26"),
        "{f:?}"
    );
}

#[test]
fn a_standby_route_to_a_non_owner_is_a_warning_naming_the_owner() {
    let f = with(route(
        "172.30.221.128/26",
        4,
        Some("172.31.1.1"),
        Some("eth0"),
        100,
    ));
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].severity, Severity::Warning);
    assert!(
        f[0].what
            .contains("neither node-2's node address (172.31.1.12)"),
        "{}",
        f[0].what
    );
    assert!(f[0].what.contains("takes over"), "{}", f[0].what);
    assert!(f[0]
        .evidence
        .contains("Tabby's route: 172.30.221.128/26 via 172.31.1.12"));
}

#[test]
fn another_nodes_address_is_the_wrong_owner() {
    let f = with(route(
        "172.30.221.128/28",
        12,
        Some("172.31.2.13"),
        Some("eth0"),
        0,
    ));
    assert_eq!(f[0].severity, Severity::Error);
    assert!(
        f[0].what.contains("(node-3's node address)"),
        "{}",
        f[0].what
    );
    assert!(f[0].what.starts_with("a proto bird route"), "{}", f[0].what);
}

#[test]
fn right_next_hops_only_warn_when_they_shadow_tabby() {
    // Correct and behind Tabby's own route: nothing to say.
    assert!(with(route(
        "172.30.221.128/26",
        12,
        Some("172.31.1.12"),
        Some("eth0"),
        32
    ))
    .is_empty());
    // Correct today but more specific: it stays when the block moves.
    let f = with(route(
        "172.30.74.64/27",
        12,
        Some("172.30.74.65"),
        Some("vxlan.calico"),
        0,
    ));
    assert_eq!(f[0].severity, Severity::Warning);
    assert!(f[0].what.contains("shadows Tabby's"), "{}", f[0].what);
}

#[test]
fn routes_into_this_nodes_own_block_and_drops_are_errors() {
    let f = with(route(
        "172.30.112.224/27",
        4,
        Some("172.31.1.12"),
        Some("eth0"),
        0,
    ));
    assert_eq!(f[0].severity, Severity::Error);
    assert!(f[0].what.contains("this node's own block"), "{}", f[0].what);
    let f = with(Route {
        drops: true,
        ..route("172.30.221.128/28", 4, None, None, 0)
    });
    assert!(f[0].what.contains("drops it"), "{f:?}");
    let f = with(route("172.30.221.128/28", 3, None, Some("eth0"), 0));
    assert!(f[0].what.contains("no next hop"), "{f:?}");
}

#[test]
fn pool_space_outside_blocks() {
    let f = with(route(
        "172.30.0.0/24",
        4,
        Some("172.31.1.0"),
        Some("eth0"),
        0,
    ));
    assert_eq!(f[0].severity, Severity::Error);
    assert!(f[0].what.contains("pod pool 172.30.0.0/16"), "{f:?}");
    let f = with(route(
        "172.30.0.0/16",
        4,
        Some("172.31.1.1"),
        Some("eth0"),
        0,
    ));
    assert_eq!(f[0].severity, Severity::Warning);
    // Routes around the pool (the default route, a /12) are not pod routes.
    assert!(with(route(
        "172.16.0.0/12",
        4,
        Some("172.31.1.1"),
        Some("eth0"),
        0
    ))
    .is_empty());
    // Nor is a drop for unclaimed pool space.
    assert!(with(Route {
        drops: true,
        ..route("172.30.0.0/16", 4, None, None, 0)
    })
    .is_empty());
}
