//! The lab's layout, plan checks and record format.
use super::*;

fn plan(nodes: usize, subnets: usize) -> Plan {
    Plan {
        nodes,
        subnets,
        pods_per_node: 2,
        encapsulation: Encapsulation::VxlanCrossSubnet,
        datastore: DatastoreKind::Sqlite,
        topology: Topology::Mesh,
        ip_family: IpFamily::Ipv4,
    }
}

#[test]
fn nodes_fill_subnets_in_order_with_distinct_addresses() {
    let lab = plan(3, 2).layout("lab", Path::new("/tmp/x"));
    let subnets: Vec<&str> = lab.nodes.iter().map(|n| n.subnet.as_str()).collect();
    assert_eq!(subnets, ["172.31.1.0/24", "172.31.1.0/24", "172.31.2.0/24"]);
    let addrs: Vec<String> = lab.nodes.iter().map(|n| n.address.to_string()).collect();
    assert_eq!(addrs, ["172.31.1.11", "172.31.1.12", "172.31.2.13"]);
    assert_eq!(lab.fabric.bridges[1].router, Ipv4Addr::new(172, 31, 2, 1));
    assert_eq!(lab.pods.len(), 6);
    assert_eq!(lab.pods[5].netns, "lab_pod-3-2");
    assert_eq!(lab.pods[5].node, "node-3");
    // Every namespace carries the lab's prefix, so `down` finds them.
    assert!(lab.nodes.iter().all(|n| n.netns.starts_with("lab_")));
    assert_eq!(lab.fabric.netns, "lab_fabric");
}

#[test]
fn dual_layout_mirrors_ipv4_in_ipv6() {
    let mut p = plan(3, 2);
    p.ip_family = IpFamily::Dual;
    let lab = p.layout("lab", Path::new("/tmp/x"));
    let a6: Vec<String> = lab
        .nodes
        .iter()
        .map(|n| n.address6.unwrap().to_string())
        .collect();
    assert_eq!(a6, ["fd31:1::11", "fd31:1::12", "fd31:2::13"]);
    let b = &lab.fabric.bridges[1];
    assert_eq!(
        (b.subnet6.as_deref(), b.router6),
        (Some("fd31:2::/64"), "fd31:2::1".parse().ok())
    );
    assert_eq!(serde_json::to_value(&lab).unwrap()["ip_family"], "dual");
    // An ipv4 lab records no IPv6, and an old record reads as ipv4.
    let mut v = serde_json::to_value(plan(1, 1).layout("t", Path::new("/t"))).unwrap();
    assert!(
        v["nodes"][0].get("address6").is_none()
            && v["fabric"]["bridges"][0].get("router6").is_none()
    );
    v.as_object_mut().unwrap().remove("ip_family");
    assert_eq!(
        serde_json::from_value::<Lab>(v).unwrap().ip_family,
        IpFamily::Ipv4
    );
    for t in [Topology::Tor, Topology::Rr] {
        p.topology = t;
        let e = p.validate().unwrap_err().to_string();
        assert!(
            e.contains("--ip-family dual") && e.contains("--topology"),
            "{e}"
        );
    }
}

#[test]
fn bad_plans_and_names_are_refused() {
    assert!(plan(2, 3).validate().is_err());
    assert!(plan(0, 1).validate().is_err());
    assert!(plan(4, 2).validate().is_ok());
    assert!(plan(MAX_NODES, 1).validate().is_ok());
    let e = plan(MAX_NODES + 1, 1).validate().unwrap_err().to_string();
    assert!(e.contains("--nodes 101: expected 1 to 100"), "{e}");
    assert!(check_name("e2e-mesh-1").is_ok());
    // '_' separates the lab from the namespace's own name.
    let e = check_name("a_b").unwrap_err().to_string();
    assert!(e.contains("--name") && e.contains("a_b"), "{e}");
    assert!(check_name("").is_err());
}

#[test]
fn record_round_trips_with_cli_spellings() {
    let mut lab = plan(1, 1).layout("t", Path::new("/tmp/t"));
    lab.encapsulation = Encapsulation::Vxlan;
    let v = serde_json::to_value(&lab).unwrap();
    assert_eq!(v["encapsulation"], "VXLAN");
    assert_eq!(v["datastore"], "sqlite");
    let back: Lab = serde_json::from_value(v).unwrap();
    assert_eq!(back.nodes[0].address, lab.nodes[0].address);
    assert_eq!(
        Encapsulation::VxlanCrossSubnet.pool_vxlan_mode(),
        "CrossSubnet"
    );
    assert_eq!(Encapsulation::Vxlan.backend(), "vxlan");
}
