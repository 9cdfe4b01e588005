//! The reconciler against a real kernel, in throwaway namespaces (root).

mod common;

use common::{add_workload_veth, is_root, node_with_eth0, tabby_route, wait_until, Netns};
use std::net::Ipv4Addr;
use std::time::Duration;
use tabby_felix_lite::model::{BlockRoute, DesiredState, LocalVxlan, Path, Pool, Vtep, Workload};
use tabby_felix_lite::reconcile::{Config, Reconciler};

const MAC_A: [u8; 6] = [0x66, 0, 0, 0, 0, 0x0a];
const MAC_B: [u8; 6] = [0x66, 0, 0, 0, 0, 0x0b];
const MAC_C: [u8; 6] = [0x66, 0, 0, 0, 0, 0x0c];

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn block(cidr: &str, path: Path, node: &str) -> BlockRoute {
    BlockRoute {
        cidr: cidr.parse().unwrap(),
        path,
        node: node.into(),
    }
}

/// Node A at 10.99.0.1/24 with one VXLAN peer (B), one native peer (C), its
/// own blackholed block and one workload on cali1.
fn full_state() -> DesiredState {
    DesiredState {
        node_interface: "eth0".into(),
        vxlan: Some(LocalVxlan {
            parent: "eth0".into(),
            local_ip: ip("10.99.0.1"),
            tunnel_ip: ip("10.244.0.1"),
            mac: MAC_A,
            mtu: 0,
            disable_tx_checksum_offload: false,
        }),
        routes: vec![
            block("10.244.0.0/26", Path::Blackhole, "a"),
            block(
                "10.244.1.0/26",
                Path::Vxlan {
                    tunnel_ip: ip("10.244.1.1"),
                },
                "b",
            ),
            block(
                "10.244.2.0/26",
                Path::Native {
                    gateway: ip("10.99.0.3"),
                },
                "c",
            ),
            block(
                "10.244.3.0/26",
                Path::Vxlan {
                    tunnel_ip: ip("10.244.3.1"),
                },
                "d",
            ),
        ],
        vteps: vec![
            Vtep {
                node: "b".into(),
                node_ip: ip("10.99.0.2"),
                tunnel_ip: ip("10.244.1.1"),
                mac: MAC_B,
            },
            Vtep {
                node: "d".into(),
                node_ip: ip("10.99.0.4"),
                tunnel_ip: ip("10.244.3.1"),
                mac: MAC_C,
            },
        ],
        workloads: vec![Workload {
            ip: ip("10.244.0.5"),
            host_interface: "cali1".into(),
            workload_id: "default/pod-1".into(),
        }],
        pools: vec![Pool {
            cidr: "10.244.0.0/16".parse().unwrap(),
            nat_outgoing: true,
        }],
        ..Default::default()
    }
}

fn slow_resync() -> Config {
    Config {
        resync_interval: Duration::from_secs(3600),
        ..Config::default()
    }
}

fn setup(tag: &str) -> (Netns, Reconciler) {
    let ns = node_with_eth0(tag, "10.99.0.1/24");
    add_workload_veth(&ns, "cali1", "pod1");
    let rec = Reconciler::start_in_netns(&ns.name, slow_resync()).expect("start");
    (ns, rec)
}

#[test]
fn every_element_is_programmed() {
    if !is_root() {
        return;
    }
    let (ns, rec) = setup("all");
    let mut state = full_state();
    // Felix's ChecksumOffloadBroken workaround, through H2's ethtool module.
    state.vxlan.as_mut().unwrap().disable_tx_checksum_offload = true;
    let status = common::apply(&rec.handle(), state.clone());
    assert!(
        status.last_pass.failures.is_empty(),
        "{:?}",
        status.last_pass.failures
    );
    assert_eq!(status.last_pass.routes_programmed, 5);
    assert_eq!(status.last_pass.pod_mtu, Some(1450));
    assert!(status.last_sync.is_some());

    let link = &ns.ip_json(&["-d", "link", "show", "vxlan.calico"])[0];
    let data = &link["linkinfo"]["info_data"];
    assert_eq!(link["linkinfo"]["info_kind"], "vxlan");
    assert_eq!(data["id"], 4096);
    assert_eq!(data["port"], 4789);
    assert_eq!(data["local"], "10.99.0.1");
    assert_eq!(data["link"], "eth0");
    assert_eq!(data["learning"], false);
    assert_eq!(link["mtu"], 1450);
    assert_eq!(link["address"], "66:00:00:00:00:0a");
    assert!(link["flags"].as_array().unwrap().iter().any(|f| f == "UP"));

    let addrs = &ns.ip_json(&["addr", "show", "dev", "vxlan.calico"])[0]["addr_info"];
    let v4: Vec<_> = addrs
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["family"] == "inet")
        .collect();
    assert_eq!(v4.len(), 1);
    assert_eq!(v4[0]["local"], "10.244.0.1");
    assert_eq!(v4[0]["prefixlen"], 32);

    let r = tabby_route(&ns, "10.244.1.0/26").expect("vxlan route");
    assert_eq!(r["gateway"], "10.244.1.1");
    assert_eq!(r["dev"], "vxlan.calico");
    assert!(r["flags"].as_array().unwrap().iter().any(|f| f == "onlink"));
    let r = tabby_route(&ns, "10.244.2.0/26").expect("native route");
    assert_eq!(r["gateway"], "10.99.0.3");
    assert_eq!(r["dev"], "eth0");
    let r = tabby_route(&ns, "10.244.0.0/26").expect("blackhole route");
    assert_eq!(r["type"], "blackhole");
    let r = tabby_route(&ns, "10.244.0.5").expect("workload route");
    assert_eq!(r["dev"], "cali1");
    assert_eq!(r["scope"], "link");
    assert_eq!(
        ns.ip_json(&["route", "show", "proto", "81"])
            .as_array()
            .unwrap()
            .len(),
        5
    );

    let neigh = ns.ip_json(&["neigh", "show", "dev", "vxlan.calico"]);
    let n = neigh
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["dst"] == "10.244.1.1")
        .expect("ARP");
    assert_eq!(n["lladdr"], "66:00:00:00:00:0b");
    assert_eq!(n["state"][0], "PERMANENT");

    let fdb = ns.bridge_json(&["fdb", "show", "dev", "vxlan.calico"]);
    let f = fdb
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["mac"] == "66:00:00:00:00:0b")
        .expect("FDB");
    assert_eq!(f["dst"], "10.99.0.2");
    assert_eq!(f["state"], "permanent");
    assert!(f["flags"].as_array().unwrap().iter().any(|x| x == "self"));

    let (_, proxy_arp) = ns.exec("cat", &["/proc/sys/net/ipv4/conf/cali1/proxy_arp"]);
    assert_eq!(proxy_arp.trim(), "1");
    let (_, fwd) = ns.exec("cat", &["/proc/sys/net/ipv4/ip_forward"]);
    assert_eq!(fwd.trim(), "1");

    let (_, offload) = ns.exec("ethtool", &["-k", "vxlan.calico"]);
    assert!(offload.contains("tx-checksumming: off"), "{offload}");

    // NAT outgoing for the pool, through H2's nft module.
    let (ok, out) = ns.exec("nft", &["-j", "list", "table", "ip", "tabby"]);
    assert!(ok && out.contains("masquerade"), "{out}");

    // A second pass over an unchanged kernel writes nothing.
    let status = common::apply(&rec.handle(), state);
    assert_eq!(
        status.last_pass.applied_count, 0,
        "{:?}",
        status.last_pass.applied
    );

    // Without pools, the table goes.
    let mut no_pools = full_state();
    no_pools.pools.clear();
    let status = common::apply(&rec.handle(), no_pools);
    assert!(
        status.last_pass.failures.is_empty(),
        "{:?}",
        status.last_pass.failures
    );
    let (ok, _) = ns.exec("nft", &["list", "table", "ip", "tabby"]);
    assert!(!ok, "table ip tabby removed");
}

#[test]
fn wrong_vxlan_parent_is_replaced() {
    if !is_root() {
        return;
    }
    let ns = node_with_eth0("parent", "10.99.0.1/24");
    add_workload_veth(&ns, "cali1", "pod1");
    ns.ip(&[
        "link",
        "add",
        "vxlan.calico",
        "type",
        "vxlan",
        "id",
        "4096",
        "dstport",
        "4789",
        "dev",
        "peer0",
        "local",
        "10.99.0.1",
        "nolearning",
    ]);
    let rec = Reconciler::start_in_netns(&ns.name, slow_resync()).expect("start");
    let status = common::apply(&rec.handle(), full_state());
    let link = &ns.ip_json(&["-d", "link", "show", "vxlan.calico"])[0];
    assert_eq!(link["linkinfo"]["info_data"]["link"], "eth0");
    assert_eq!(link["address"], "66:00:00:00:00:0a");
    let said = status.last_pass.applied.join("\n");
    // Interfaces by name, with the index only beside it.
    assert!(
        said.contains("deleted vxlan.calico: bound to dev peer0 (ifindex "),
        "{said}"
    );
    assert!(said.contains("want dev eth0 (ifindex "), "{said}");
    assert!(tabby_route(&ns, "10.244.1.0/26").is_some());
}

#[test]
fn foreign_routes_are_left_alone() {
    if !is_root() {
        return;
    }
    let (ns, rec) = setup("foreign");
    // Someone else's route on a prefix Tabby doesn't want, and one (BIRD's
    // protocol 12) holding a destination Tabby does want.
    ns.ip(&[
        "route",
        "add",
        "10.250.0.0/24",
        "via",
        "10.99.0.7",
        "proto",
        "static",
    ]);
    ns.ip(&[
        "route",
        "add",
        "10.244.2.0/26",
        "via",
        "10.99.0.9",
        "proto",
        "12",
    ]);
    let status = common::apply(&rec.handle(), full_state());
    let blocked: Vec<_> = status
        .last_pass
        .failures
        .iter()
        .filter(|f| f.item.contains("10.244.2.0/26"))
        .collect();
    assert_eq!(blocked.len(), 1, "{:?}", status.last_pass.failures);
    assert!(
        blocked[0].error.contains("protocol 12"),
        "{}",
        blocked[0].error
    );
    assert!(tabby_route(&ns, "10.244.2.0/26").is_none());
    let all = ns.ip_json(&["route", "show", "10.244.2.0/26"]);
    assert_eq!(all[0]["gateway"], "10.99.0.9", "BIRD's route untouched");
    let other = ns.ip_json(&["route", "show", "10.250.0.0/24"]);
    assert_eq!(other[0]["gateway"], "10.99.0.7");
    assert_eq!(other[0]["protocol"], "static");

    // Removing everything from Tabby's desired state leaves them too.
    common::apply(&rec.handle(), DesiredState::default());
    assert_eq!(
        ns.ip_json(&["route", "show", "proto", "81"])
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        ns.ip_json(&["route", "show", "10.250.0.0/24"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        ns.ip_json(&["route", "show", "10.244.2.0/26"])
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Once the other route is gone, Tabby's goes in (event-driven).
    common::apply(&rec.handle(), full_state());
    ns.ip(&["route", "del", "10.244.2.0/26", "proto", "12"]);
    wait_until(
        "Tabby's route after BIRD's left",
        Duration::from_secs(1),
        || tabby_route(&ns, "10.244.2.0/26").is_some(),
    );
}

#[test]
fn network_and_broadcast_gateways_are_refused() {
    if !is_root() {
        return;
    }
    let (ns, rec) = setup("refuse");
    let mut state = full_state();
    state.routes.extend([
        // The network and broadcast address of eth0's subnet.
        block(
            "10.244.5.0/26",
            Path::Native {
                gateway: ip("10.99.0.0"),
            },
            "e",
        ),
        block(
            "10.244.6.0/26",
            Path::Vxlan {
                tunnel_ip: ip("10.99.0.255"),
            },
            "f",
        ),
        // The broadcast address of a block as a node's next hop.
        block(
            "10.244.7.0/26",
            Path::Native {
                gateway: ip("10.244.1.63"),
            },
            "g",
        ),
    ]);
    let status = common::apply(&rec.handle(), state);
    let failures = &status.last_pass.failures;
    assert_eq!(failures.len(), 3, "{failures:?}");
    for (dst, why) in [
        (
            "10.244.5.0/26",
            "network address of connected subnet 10.99.0.0/24",
        ),
        (
            "10.244.6.0/26",
            "broadcast address of connected subnet 10.99.0.0/24",
        ),
        ("10.244.7.0/26", "broadcast address of block 10.244.1.0/26"),
    ] {
        let f = failures.iter().find(|f| f.item.contains(dst)).expect(dst);
        assert!(f.error.contains(why), "{f}");
        assert!(tabby_route(&ns, dst).is_none(), "{dst} not programmed");
    }
    // The valid routes went in regardless, including Calico's usual
    // "via the first address of the remote block" VXLAN route.
    assert_eq!(status.last_pass.routes_programmed, 5);
    assert!(tabby_route(&ns, "10.244.1.0/26").is_some());
}

#[test]
fn removing_items_removes_exactly_those() {
    if !is_root() {
        return;
    }
    let (ns, rec) = setup("remove");
    add_workload_veth(&ns, "cali2", "pod2");
    let handle = rec.handle();
    common::apply(&rec.handle(), full_state());
    let generation = handle.add_workload(Workload {
        ip: ip("10.244.0.6"),
        host_interface: "cali2".into(),
        workload_id: "default/pod-2".into(),
    });
    wait_until("second workload", Duration::from_secs(5), || {
        handle.status().generation >= generation && tabby_route(&ns, "10.244.0.6").is_some()
    });

    let mut state = full_state();
    state.routes.retain(|r| r.node != "d");
    state.vteps.retain(|v| v.node != "d");
    state.workloads.clear();
    let status = common::apply(&rec.handle(), state);
    assert!(
        status.last_pass.failures.is_empty(),
        "{:?}",
        status.last_pass.failures
    );
    assert!(
        tabby_route(&ns, "10.244.3.0/26").is_none(),
        "d's block gone"
    );
    assert!(tabby_route(&ns, "10.244.0.5").is_none(), "pod-1 gone");
    assert!(
        tabby_route(&ns, "10.244.0.6").is_some(),
        "pod-2 (added by handle) kept"
    );
    for kept in ["10.244.0.0/26", "10.244.1.0/26", "10.244.2.0/26"] {
        assert!(tabby_route(&ns, kept).is_some(), "{kept} kept");
    }
    let neigh = ns.ip_json(&["neigh", "show", "dev", "vxlan.calico"]);
    let dsts: Vec<_> = neigh
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["dst"].clone())
        .collect();
    assert_eq!(dsts, vec![serde_json::json!("10.244.1.1")]);
    let fdb = ns.bridge_json(&["fdb", "show", "dev", "vxlan.calico"]);
    let macs: Vec<_> = fdb
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f.get("dst").is_some())
        .map(|f| f["mac"].clone())
        .collect();
    assert_eq!(macs, vec![serde_json::json!("66:00:00:00:00:0b")]);

    let generation = handle.remove_workload(ip("10.244.0.6"));
    wait_until("pod-2 removed", Duration::from_secs(5), || {
        handle.status().generation >= generation && tabby_route(&ns, "10.244.0.6").is_none()
    });

    // No VXLAN at all: the device (and with it its routes/ARP/FDB) goes.
    let mut state = full_state();
    state.vxlan = None;
    state.vteps.clear();
    state
        .routes
        .retain(|r| !matches!(r.path, Path::Vxlan { .. }));
    let status = common::apply(&rec.handle(), state);
    assert!(
        status.last_pass.failures.is_empty(),
        "{:?}",
        status.last_pass.failures
    );
    assert_eq!(
        ns.ip_json(&["link", "show"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["ifname"] == "vxlan.calico")
            .count(),
        0
    );
    assert_eq!(status.last_pass.pod_mtu, Some(1500));
    assert!(tabby_route(&ns, "10.244.2.0/26").is_some());
}
