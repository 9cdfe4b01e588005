use super::*;
use crate::model::Vtep;
use crate::netlink::neigh::{KernelFdb, KernelNeigh};
use netlink_packet_route::route::{RouteScope, RouteType};

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

fn block(cidr: &str, path: Path) -> BlockRoute {
    BlockRoute {
        cidr: net(cidr),
        path,
        node: "n".into(),
    }
}

fn lookup(name: &str) -> Option<u32> {
    match name {
        "cali1" => Some(10),
        _ => None,
    }
}

fn ifaces() -> Interfaces<'static> {
    Interfaces {
        node_interface: Some(2),
        node_interface_name: "eth0",
        vxlan: Some(9),
        by_name: &lookup,
    }
}

fn kernel(dst: &str, protocol: u8, gateway: Option<&str>, oif: u32) -> KernelRoute {
    KernelRoute {
        dst: net(dst),
        protocol,
        tos: 0,
        priority: 0,
        kind: RouteType::Unicast,
        scope: RouteScope::Universe,
        gateway: gateway.map(ip),
        oif: Some(oif),
        onlink: false,
    }
}

fn desired(dst: &str, gateway: &str, oif: u32) -> DesiredRoute {
    DesiredRoute {
        spec: RouteSpec {
            dst: net(dst),
            target: RouteTarget::Gateway {
                gateway: ip(gateway),
                oif,
                onlink: false,
            },
        },
        origin: Origin::Block(0),
    }
}

#[test]
fn native_gateways_on_block_or_subnet_boundaries_are_refused() {
    let blocks = [
        block(
            "10.244.1.0/26",
            Path::Native {
                gateway: ip("10.0.0.2"),
            },
        ),
        block(
            "10.244.2.0/26",
            Path::Native {
                gateway: ip("10.244.1.0"),
            },
        ),
        block(
            "10.244.3.0/26",
            Path::Native {
                gateway: ip("10.0.0.255"),
            },
        ),
        block(
            "10.244.4.0/26",
            Path::Native {
                gateway: ip("10.0.0.0"),
            },
        ),
    ];
    let (ok, errors) = desired_routes(&blocks, &[], &ifaces(), &[net("10.0.0.0/24")]);
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].spec.dst, net("10.244.1.0/26"));
    let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(text.len(), 3, "{text:?}");
    assert!(
        text[0].contains("10.244.2.0/26")
            && text[0].contains("network address of block 10.244.1.0/26")
    );
    assert!(text[1].contains("broadcast address of connected subnet 10.0.0.0/24"));
    assert!(text[2].contains("network address of connected subnet 10.0.0.0/24"));
}

#[test]
fn vxlan_next_hop_is_a_host_address_never_a_block_edge() {
    let blocks = [block(
        "10.244.1.0/26",
        Path::Vxlan {
            tunnel_ip: ip("10.244.1.1"),
        },
    )];
    let (ok, errors) = desired_routes(&blocks, &[], &ifaces(), &[net("10.0.0.0/24")]);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        ok[0].spec.target,
        RouteTarget::Gateway {
            gateway: ip("10.244.1.1"),
            oif: 9,
            onlink: true
        }
    );
    // Calico's usual tunnel address, the block's .0, is refused by name.
    let blocks = [block(
        "10.244.1.0/26",
        Path::Vxlan {
            tunnel_ip: ip("10.244.1.0"),
        },
    )];
    let (ok, errors) = desired_routes(&blocks, &[], &ifaces(), &[net("10.0.0.0/24")]);
    assert!(ok.is_empty());
    assert!(
        errors[0]
            .to_string()
            .contains("network address of block 10.244.1.0/26"),
        "{errors:?}"
    );
    let blocks = [block(
        "10.244.1.0/26",
        Path::Vxlan {
            tunnel_ip: ip("10.0.0.255"),
        },
    )];
    let (_, errors) = desired_routes(&blocks, &[], &ifaces(), &[net("10.0.0.0/24")]);
    assert!(errors[0]
        .error
        .contains("broadcast address of connected subnet"));
}

#[test]
fn bad_items_are_reported_and_the_rest_go_ahead() {
    let blocks = [
        block("10.244.1.5/26", Path::Blackhole),
        block("10.244.2.0/26", Path::Blackhole),
        block(
            "10.244.2.0/26",
            Path::Native {
                gateway: ip("10.0.0.3"),
            },
        ),
    ];
    let workloads = [
        Workload {
            ip: ip("10.244.2.7"),
            host_interface: "cali1".into(),
            workload_id: "a".into(),
        },
        Workload {
            ip: ip("10.244.2.8"),
            host_interface: "cali-missing".into(),
            workload_id: "b".into(),
        },
    ];
    let no_vxlan = Interfaces {
        vxlan: None,
        ..ifaces()
    };
    let (ok, errors) = desired_routes(&blocks, &workloads, &no_vxlan, &[]);
    assert_eq!(ok.len(), 2);
    assert_eq!(ok[1].spec.target, RouteTarget::Link { oif: 10 });
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors[0].error.contains("host bits"));
    assert!(errors[1]
        .error
        .contains("already wanted by route 10.244.2.0/26 blackhole"));
    assert!(errors[2].error.contains("\"cali-missing\" does not exist"));

    let blocks = [block(
        "10.244.1.0/26",
        Path::Vxlan {
            tunnel_ip: ip("10.244.1.1"),
        },
    )];
    let (_, errors) = desired_routes(&blocks, &[], &no_vxlan, &[]);
    assert!(errors[0].error.contains("vxlan.calico does not exist"));
}

#[test]
fn a_pod_route_takes_the_place_of_its_slash_32_blocks_blackhole() {
    // blockSize 32: the block is the pod's address. The pod's route wins;
    // a native route to the same destination is still refused.
    let blocks = [block("10.244.3.7/32", Path::Blackhole)];
    let pod = Workload {
        ip: ip("10.244.3.7"),
        host_interface: "cali1".into(),
        workload_id: "a".into(),
    };
    let (ok, errors) = desired_routes(&blocks, &[pod], &ifaces(), &[]);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].spec.target, RouteTarget::Link { oif: 10 });
    let blocks = [
        block("10.244.3.7/32", Path::Blackhole),
        block(
            "10.244.3.7/32",
            Path::Native {
                gateway: ip("10.0.0.3"),
            },
        ),
    ];
    let (ok, errors) = desired_routes(&blocks, &[], &ifaces(), &[net("10.0.0.0/24")]);
    assert_eq!((ok.len(), errors.len()), (1, 1), "{errors:?}");
    assert_eq!(ok[0].spec.target, RouteTarget::Blackhole);
}

#[test]
fn diff_adds_replaces_deletes_and_never_touches_foreign_routes() {
    let want = [
        desired("10.1.0.0/24", "10.0.0.2", 2), // in sync
        desired("10.2.0.0/24", "10.0.0.2", 2), // ours, wrong gateway: replace
        desired("10.3.0.0/24", "10.0.0.2", 2), // missing: add
        desired("10.4.0.0/24", "10.0.0.2", 2), // held by BIRD: blocked
    ];
    let mut other_metric = kernel("10.1.0.0/24", 81, Some("10.0.0.2"), 2);
    other_metric.priority = 100;
    let have = [
        kernel("10.1.0.0/24", 81, Some("10.0.0.2"), 2),
        other_metric.clone(),
        kernel("10.2.0.0/24", 81, Some("10.0.0.9"), 2),
        kernel("10.4.0.0/24", 12, Some("10.0.0.7"), 2),
        kernel("10.5.0.0/24", 81, Some("10.0.0.2"), 2), // stale: delete
        kernel("10.6.0.0/24", 3, Some("10.0.0.2"), 2),  // foreign, unwanted: untouched
    ];
    let plan = diff_routes(&want, &have);
    assert_eq!(plan.in_sync, 1);
    assert_eq!(plan.add, vec![(1, true), (2, false)]);
    assert_eq!(plan.blocked, vec![(3, 12)]);
    let deleted: Vec<(Ipv4Net, u32)> = plan.delete.iter().map(|r| (r.dst, r.priority)).collect();
    assert_eq!(
        deleted,
        vec![(net("10.1.0.0/24"), 100), (net("10.5.0.0/24"), 0)]
    );
    assert!(plan.delete.iter().all(|r| r.protocol == 81));
}

fn vtep(node: &str, node_ip: &str, tunnel: &str, last: u8) -> Vtep {
    Vtep {
        node: node.into(),
        node_ip: ip(node_ip),
        tunnel_ip: ip(tunnel),
        mac: [0x66, 0, 0, 0, 0, last],
    }
}

#[test]
fn vteps_with_clashing_or_bad_fields_are_refused() {
    let mut multicast = vtep("m", "10.0.0.9", "10.244.9.0", 9);
    multicast.mac[0] = 0x01;
    let (ok, errors) = desired_vteps(&[
        vtep("a", "10.0.0.1", "10.244.1.0", 1),
        vtep("b", "10.0.0.2", "10.244.1.0", 2),
        vtep("c", "10.0.0.3", "10.244.3.0", 1),
        vtep("d", "0.0.0.0", "10.244.4.0", 4),
        multicast,
    ]);
    assert_eq!(ok.len(), 1);
    assert_eq!(errors.len(), 4);
    assert!(errors[0]
        .error
        .contains("tunnel_ip 10.244.1.0 is already used by node \"a\""));
    assert!(errors[1]
        .error
        .contains("mac is already used by node \"a\""));
    assert!(errors[2].error.contains("node_ip 0.0.0.0"));
    assert!(errors[3].error.contains("unicast"));
}

#[test]
fn neighbour_and_fdb_diffs_are_minimal() {
    let vteps = [
        vtep("a", "10.0.0.1", "10.244.1.0", 1),
        vtep("b", "10.0.0.2", "10.244.2.0", 2),
    ];
    let neighs = [
        KernelNeigh {
            ip: ip("10.244.1.0"),
            mac: Some(vteps[0].mac),
            permanent: true,
        },
        KernelNeigh {
            ip: ip("10.244.2.0"),
            mac: Some(vteps[1].mac),
            permanent: false,
        },
        KernelNeigh {
            ip: ip("10.244.7.0"),
            mac: Some([0x66, 0, 0, 0, 0, 7]),
            permanent: true,
        },
        KernelNeigh {
            ip: ip("10.244.8.0"),
            mac: None,
            permanent: false,
        },
    ];
    let (set, delete) = diff_neighbours(&vteps, &neighs);
    assert_eq!(set, vec![(ip("10.244.2.0"), vteps[1].mac)]);
    assert_eq!(delete, vec![ip("10.244.7.0")]);

    let fdb = [
        KernelFdb {
            mac: vteps[0].mac,
            dst: ip("10.0.0.1"),
            permanent: true,
        },
        KernelFdb {
            mac: vteps[1].mac,
            dst: ip("10.0.0.99"),
            permanent: true,
        },
        KernelFdb {
            mac: [0x66, 0, 0, 0, 0, 7],
            dst: ip("10.0.0.7"),
            permanent: true,
        },
    ];
    let (set, delete) = diff_fdb(&vteps, &fdb);
    assert_eq!(set, vec![(vteps[1].mac, ip("10.0.0.2"))]);
    assert_eq!(
        delete,
        vec![
            (vteps[1].mac, ip("10.0.0.99")),
            ([0x66, 0, 0, 0, 0, 7], ip("10.0.0.7"))
        ]
    );
}

#[test]
fn labels_name_interfaces_not_just_indexes() {
    let native = block(
        "10.244.1.0/26",
        Path::Native {
            gateway: ip("10.0.0.2"),
        },
    );
    assert_eq!(
        block_label(&native, "eth0"),
        "route 10.244.1.0/26 via 10.0.0.2 dev eth0 (native) for node \"n\""
    );
    let blocks = [native];
    let (ok, _) = desired_routes(&blocks, &[], &ifaces(), &[]);
    let label = route_label(ok[0].origin, &blocks, &[], "eth0");
    assert!(label.contains("dev eth0"), "{label}");

    let names = |i: u32| (i == 2).then(|| "eth0".to_string());
    let mut r = kernel("10.244.9.0/26", 81, Some("10.0.0.7"), 2);
    assert_eq!(describe_kernel_route(&r, &names), "via 10.0.0.7 dev eth0");
    r.oif = Some(7);
    r.onlink = true;
    assert_eq!(
        describe_kernel_route(&r, &names),
        "via 10.0.0.7 dev ifindex 7 (no such interface) onlink"
    );
    r.onlink = false;
    r.kind = RouteType::BlackHole;
    assert_eq!(describe_kernel_route(&r, &names), "blackhole");
    assert_eq!(dev_label(2, Some("eth0")), "eth0 (ifindex 2)");
}
