//! `vxlan-v6.calico` between two "nodes" (root): each reconciler creates
//! the device with Felix's VNI 4096, port 4789 and MTU parent - 70, puts
//! its /128 tunnel address on it, writes permanent NDP and FDB entries for
//! the peer's IPv6 VTEP, and the tunnel addresses ping each other across
//! it.

mod common;

use common::{is_root, wait_until, Netns};
use std::net::Ipv6Addr;
use std::time::Duration;
use tabby_felix_lite::model::{BlockRoute6, DesiredState, LocalVxlan6, Path6, Vtep6};
use tabby_felix_lite::reconcile::{Config, Reconciler};

struct Node {
    ip: &'static str,
    block: &'static str,
    tunnel: &'static str,
    mac: [u8; 6],
}

const A: Node = Node {
    ip: "fd00:98::1",
    block: "fd00:247:10::/122",
    tunnel: "fd00:247:10::1",
    mac: [0x66, 0, 0, 0, 6, 0x0a],
};
const B: Node = Node {
    ip: "fd00:98::2",
    block: "fd00:247:20::/122",
    tunnel: "fd00:247:20::1",
    mac: [0x66, 0, 0, 0, 6, 0x0b],
};

fn ip6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn desired(me: &Node, peer: &Node) -> DesiredState {
    DesiredState {
        node_interface: "eth0".into(),
        vxlan6: Some(LocalVxlan6 {
            parent: "eth0".into(),
            local_ip: ip6(me.ip),
            tunnel_ip: ip6(me.tunnel),
            mac: me.mac,
            mtu: 0,
        }),
        routes6: vec![
            BlockRoute6 {
                cidr: me.block.parse().unwrap(),
                path: Path6::Blackhole,
                node: "me".into(),
            },
            BlockRoute6 {
                cidr: peer.block.parse().unwrap(),
                path: Path6::Vxlan {
                    tunnel_ip: ip6(peer.tunnel),
                },
                node: "peer".into(),
            },
        ],
        vteps6: vec![Vtep6 {
            node: "peer".into(),
            node_ip: ip6(peer.ip),
            tunnel_ip: ip6(peer.tunnel),
            mac: peer.mac,
        }],
        ..DesiredState::default()
    }
}

fn mac_text(m: [u8; 6]) -> String {
    m.map(|b| format!("{b:02x}")).join(":")
}

#[test]
fn two_nodes_ping_across_vxlan_v6() {
    if !is_root() {
        return;
    }
    let a = Netns::new("vx6a");
    let b = Netns::new("vx6b");
    a.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", &b.name,
    ]);
    a.ip(&["link", "set", "eth0", "mtu", "1500"]);
    a.ip(&[
        "addr",
        "add",
        &format!("{}/64", A.ip),
        "dev",
        "eth0",
        "nodad",
    ]);
    b.ip(&[
        "addr",
        "add",
        &format!("{}/64", B.ip),
        "dev",
        "eth0",
        "nodad",
    ]);
    a.ip(&["link", "set", "eth0", "up"]);
    b.ip(&["link", "set", "eth0", "up"]);
    let rec_a = Reconciler::start_in_netns(&a.name, Config::default()).expect("start A");
    let rec_b = Reconciler::start_in_netns(&b.name, Config::default()).expect("start B");
    for (rec, me, peer, name) in [(&rec_a, &A, &B, "A"), (&rec_b, &B, &A, "B")] {
        let s = common::apply(&rec.handle(), desired(me, peer));
        assert!(
            s.last_pass.failures.is_empty(),
            "{name}: {:?}",
            s.last_pass.failures
        );
        assert_eq!(s.last_pass.routes_programmed, 2, "{name}");
        assert_eq!(s.last_pass.pod_mtu, Some(1430), "{name}");
    }

    // The device as Felix makes it.
    let link = &a.ip_json(&["-d", "link", "show", "vxlan-v6.calico"])[0];
    let info = &link["linkinfo"]["info_data"];
    assert_eq!(info["id"], 4096, "{link}");
    assert_eq!(info["port"], 4789, "{link}");
    assert_eq!(info["local6"], A.ip, "{link}");
    assert_eq!(info["learning"], false, "{link}");
    assert_eq!(link["mtu"], 1430, "{link}");
    assert_eq!(link["address"], mac_text(A.mac), "{link}");
    let addrs = a.must("ip -6 addr show dev vxlan-v6.calico");
    assert!(addrs.contains(&format!("{}/128", A.tunnel)), "{addrs}");

    // Permanent NDP and FDB entries for B's VTEP, and the block route.
    let neigh = a.ip_json(&["-6", "neigh", "show", "dev", "vxlan-v6.calico"]);
    let n = neigh
        .as_array()
        .and_then(|v| v.iter().find(|n| n["dst"] == B.tunnel))
        .unwrap_or_else(|| panic!("no NDP entry for {}: {neigh}", B.tunnel));
    assert_eq!(n["lladdr"], mac_text(B.mac), "{n}");
    assert!(n["state"].to_string().contains("PERMANENT"), "{n}");
    let fdb = a.bridge_json(&["fdb", "show", "dev", "vxlan-v6.calico"]);
    assert!(
        fdb.as_array().is_some_and(|v| v
            .iter()
            .any(|f| f["mac"] == mac_text(B.mac) && f["dst"] == B.ip)),
        "{fdb}"
    );
    let r = a.ip_json(&["-6", "route", "show", B.block]);
    assert_eq!(r[0]["gateway"], B.tunnel, "{r}");
    assert_eq!(r[0]["dev"], "vxlan-v6.calico", "{r}");

    // Tunnel address to tunnel address, encapsulated.
    let mut last = String::new();
    let ok = (0..10).any(|_| {
        let (ok, out) = a.exec(
            "ping",
            &[
                "-6", "-c", "2", "-i", "0.2", "-W", "1", "-I", A.tunnel, B.tunnel,
            ],
        );
        last = out;
        ok
    });
    assert!(ok, "A could not ping B's tunnel address: {last}");
    let stats = a.ip_json(&["-s", "link", "show", "vxlan-v6.calico"]);
    let tx = stats[0]["stats64"]["tx"]["packets"].as_u64().unwrap();
    assert!(tx >= 2, "vxlan-v6.calico sent {tx} packets");

    // A second full pass writes nothing.
    let before = rec_a.handle().status().passes;
    rec_a.handle().resync();
    wait_until("the resync pass", Duration::from_secs(3), || {
        let s = rec_a.handle().status();
        s.passes > before && s.last_pass.nft_checked
    });
    let s = rec_a.handle().status();
    assert!(s.last_pass.applied.is_empty(), "{:?}", s.last_pass.applied);

    // And nothing keeps waking passes: after the stragglers of the
    // resync's own notifications, the loop is idle (no pass feeding on
    // the events of its own writes).
    std::thread::sleep(Duration::from_millis(500));
    let settled = rec_a.handle().status().passes;
    std::thread::sleep(Duration::from_millis(1500));
    let later = rec_a.handle().status().passes;
    assert!(
        later <= settled + 1,
        "{} passes in 1.5 s while idle",
        later - settled
    );

    // A deleted NDP entry comes back from the neighbour notification.
    a.ip(&["-6", "neigh", "del", B.tunnel, "dev", "vxlan-v6.calico"]);
    wait_until("NDP entry back", Duration::from_secs(3), || {
        a.must("ip -6 neigh show dev vxlan-v6.calico")
            .contains(B.tunnel)
    });

    // No IPv6 VXLAN wanted: the device goes.
    common::apply(&rec_a.handle(), DesiredState::default());
    assert!(!a.sh("ip link show vxlan-v6.calico").0);
}
