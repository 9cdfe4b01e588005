//! Two "nodes" joined by a veth, each with a "pod" in a third and fourth
//! namespace; Tabby's reconciler on each node programs vxlan.calico, the
//! block routes, ARP/FDB and workload routes, and the pods ping each other
//! across the VXLAN tunnel (root).

mod common;

use common::{is_root, wait_until, Netns};
use std::net::Ipv4Addr;
use std::time::Duration;
use tabby_felix_lite::model::{BlockRoute, DesiredState, LocalVxlan, Path, Vtep, Workload};
use tabby_felix_lite::reconcile::{Config, Reconciler};

struct NodeSpec {
    node_ip: &'static str,
    block: &'static str,
    tunnel_ip: &'static str,
    pod_ip: &'static str,
    mac: [u8; 6],
}

const A: NodeSpec = NodeSpec {
    node_ip: "10.97.0.1",
    block: "10.246.10.0/26",
    tunnel_ip: "10.246.10.1",
    pod_ip: "10.246.10.5",
    mac: [0x66, 0, 0, 0, 2, 0x0a],
};
const B: NodeSpec = NodeSpec {
    node_ip: "10.97.0.2",
    block: "10.246.20.0/26",
    tunnel_ip: "10.246.20.1",
    pod_ip: "10.246.20.5",
    mac: [0x66, 0, 0, 0, 2, 0x0b],
};

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn desired(me: &NodeSpec, peer: &NodeSpec, peer_name: &str) -> DesiredState {
    DesiredState {
        node_interface: "eth0".into(),
        vxlan: Some(LocalVxlan {
            parent: "eth0".into(),
            local_ip: ip(me.node_ip),
            tunnel_ip: ip(me.tunnel_ip),
            mac: me.mac,
            mtu: 0,
            disable_tx_checksum_offload: false,
        }),
        routes: vec![
            BlockRoute {
                cidr: me.block.parse().unwrap(),
                path: Path::Blackhole,
                node: "me".into(),
            },
            // Calico's usual form: via the remote block's first address.
            BlockRoute {
                cidr: peer.block.parse().unwrap(),
                path: Path::Vxlan {
                    tunnel_ip: ip(peer.tunnel_ip),
                },
                node: peer_name.into(),
            },
        ],
        vteps: vec![Vtep {
            node: peer_name.into(),
            node_ip: ip(peer.node_ip),
            tunnel_ip: ip(peer.tunnel_ip),
            mac: peer.mac,
        }],
        workloads: vec![Workload {
            ip: ip(me.pod_ip),
            host_interface: "cali1".into(),
            workload_id: "default/pod".into(),
        }],
        pools: vec![],
        ..Default::default()
    }
}

/// A pod namespace wired to `node` by the veth cali1 (node) / eth0 (pod),
/// with its address and a default route out of eth0, Calico style (the
/// host side answers ARP by proxy).
fn pod(node: &Netns, tag: &str, pod_ip: &str) -> Netns {
    let pod = Netns::new(tag);
    node.ip(&[
        "link", "add", "cali1", "type", "veth", "peer", "name", "eth0", "netns", &pod.name,
    ]);
    node.ip(&["link", "set", "cali1", "up"]);
    pod.ip(&["addr", "add", &format!("{pod_ip}/32"), "dev", "eth0"]);
    pod.ip(&["link", "set", "eth0", "up"]);
    pod.ip(&["route", "add", "default", "dev", "eth0"]);
    pod
}

#[test]
fn pods_on_two_nodes_ping_across_vxlan() {
    if !is_root() {
        return;
    }
    let node_a = Netns::new("nodea");
    let node_b = Netns::new("nodeb");
    node_a.ip(&[
        "link",
        "add",
        "eth0",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        &node_b.name,
    ]);
    node_a.ip(&["addr", "add", &format!("{}/24", A.node_ip), "dev", "eth0"]);
    node_b.ip(&["addr", "add", &format!("{}/24", B.node_ip), "dev", "eth0"]);
    node_a.ip(&["link", "set", "eth0", "up"]);
    node_b.ip(&["link", "set", "eth0", "up"]);
    let pod_a = pod(&node_a, "poda", A.pod_ip);
    let pod_b = pod(&node_b, "podb", B.pod_ip);

    let rec_a = Reconciler::start_in_netns(&node_a.name, Config::default()).expect("start A");
    let rec_b = Reconciler::start_in_netns(&node_b.name, Config::default()).expect("start B");
    rec_a.handle().set_desired(desired(&A, &B, "b"));
    rec_b.handle().set_desired(desired(&B, &A, "a"));
    for (rec, name) in [(&rec_a, "A"), (&rec_b, "B")] {
        wait_until(
            &format!("node {name} converged"),
            Duration::from_secs(5),
            || {
                let s = rec.handle().status();
                s.passes > 0 && s.last_pass.routes_programmed == 3
            },
        );
        let s = rec.handle().status();
        assert!(
            s.last_pass.failures.is_empty(),
            "{name}: {:?}",
            s.last_pass.failures
        );
    }

    let mut last = String::new();
    let ok = (0..10).any(|_| {
        let (ok, out) = pod_a.exec("ping", &["-c", "2", "-i", "0.2", "-W", "1", B.pod_ip]);
        last = out;
        ok
    });
    assert!(ok, "pod A could not ping pod B: {last}");
    let (ok, out) = pod_b.exec("ping", &["-c", "2", "-i", "0.2", "-W", "1", A.pod_ip]);
    assert!(ok, "pod B could not ping pod A: {out}");

    // The traffic really went through the tunnel.
    let stats = node_a.ip_json(&["-s", "link", "show", "vxlan.calico"]);
    let tx = stats[0]["stats64"]["tx"]["packets"].as_u64().unwrap();
    assert!(tx >= 4, "vxlan.calico sent {tx} packets");
}
