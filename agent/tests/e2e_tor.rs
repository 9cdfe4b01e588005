//! End to end, ToR / AS per rack (issue 17): two racks on two subnets, the
//! mesh off, each node peering with its rack's ToR (a real BIRD 2 in the
//! fabric namespace, `lab up --topology tor`), pool vxlanMode Never. With
//! UDP 4789 dropped in the fabric, pods reach each other only if each node
//! routes the other's block natively via its ToR, as BGP learned it.
//! Root only.

mod e2e_common;
mod tor_common;

use e2e_common::serial;
use std::time::Duration;
use tor_common::*;

const DROP_179: &str = "table inet e2e_drop_bgp {
  chain input { type filter hook input priority -10; tcp dport 179 drop; tcp sport 179 drop; }
  chain output { type filter hook output priority -10; tcp dport 179 drop; tcp sport 179 drop; }
}
";

const DROP_VXLAN: &str = "table inet e2e_drop_vxlan {
  chain forward { type filter hook forward priority -10; udp dport 4789 drop; }
}
";

#[test]
fn tor_learned_routes_carry_pods_natively_through_a_fabric_without_vxlan() {
    let _g = serial();
    let lab = two_racks("tor", &[]);
    fabric_nft(&lab, DROP_VXLAN);
    wait_tor_routes(&lab, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    let (ok, out) = lab.wait_check(Duration::from_secs(10));
    assert!(
        ok,
        "pods do not reach with VXLAN dropped:\n{out}\n{}",
        lab.logs()
    );
    for n in lab.node_names() {
        let tor = tor_of(&lab, &n);
        let (_, status) = lab.node_status(&n);
        let peer = status
            .lines()
            .find(|l| l.contains(&format!("| {tor} ")))
            .unwrap_or_else(|| panic!("{n}: no row for ToR {tor}:\n{status}"));
        assert!(
            peer.contains("node specific") && peer.contains("Established"),
            "{n}: {peer}"
        );
        let rows = block_rows(&lab, &n);
        let remote: Vec<&Vec<String>> = rows.iter().filter(|r| r[1] != n).collect();
        assert!(!remote.is_empty(), "{n}: no remote block rows:\n{status}");
        for r in remote {
            assert_eq!(
                (r[2].as_str(), r[3].as_str()),
                ("native", tor.as_str()),
                "{n}: {r:?}"
            );
            assert_eq!(
                r[4],
                format!("learned from {tor} (node specific, AS 64513)"),
                "{n}: rule (2) should have chosen the path"
            );
        }
    }
    // What BIRD carried is what the fabric routes: both blocks, from BGP.
    let fabric_routes = lab.sh("fabric", &["ip", "route"]);
    for n in lab.node_names() {
        for b in lab.blocks_of(&n) {
            assert!(
                fabric_routes
                    .lines()
                    .any(|l| l.starts_with(&b) && l.contains("proto bird")),
                "fabric has no BIRD route for {b}:\n{fabric_routes}"
            );
        }
    }
}

/// A restart of tabby-node with the mesh off must not withdraw the native
/// routes while its ToR session comes back (here: 4 s of TCP 179 dropped,
/// less than the hold time): the kernel's routes are the last paths, kept
/// for a hold time (`ip monitor` sees no deletion).
#[test]
fn a_restart_with_the_mesh_off_withdraws_no_tor_route() {
    let _g = serial();
    let lab = two_racks("torrs", &[]);
    wait_tor_routes(&lab, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    let node = &lab.node_names()[0];
    let mut monitor = std::process::Command::new("ip")
        .args(["netns", "exec", &lab.netns(node), "ip", "monitor", "route"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("ip monitor");
    // Started before the restart: give it a moment to subscribe.
    std::thread::sleep(Duration::from_millis(300));
    let (ok, out) = lab.lab(&["node", "stop", node]);
    assert!(ok, "lab node stop: {out}");
    // The ToR session cannot come back at once (in the lab it otherwise
    // does within milliseconds, before the first publish).
    fabric_nft(&lab, DROP_179);
    let (ok, out) = lab.lab(&["node", "start", node]);
    assert!(ok, "lab node start: {out}");
    // Less than the 9 s hold time without a BGP path.
    std::thread::sleep(Duration::from_secs(4));
    let (_, status) = lab.node_status(node);
    assert!(
        status.contains("keeping the last path"),
        "{node} should keep the kernel's route while the ToR is away:\n{status}"
    );
    lab.sh(
        "fabric",
        &["nft", "delete", "table", "inet", "e2e_drop_bgp"],
    );
    wait_tor_routes(&lab, Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("after the restart: {e}\n{}", lab.logs()));
    // Past the first publishes and the session coming back.
    std::thread::sleep(Duration::from_secs(2));
    let _ = monitor.kill();
    let out = monitor.wait_with_output().expect("ip monitor output");
    let seen = String::from_utf8_lossy(&out.stdout);
    let remote: Vec<String> = lab
        .node_names()
        .iter()
        .filter(|n| *n != node)
        .flat_map(|n| lab.blocks_of(n))
        .collect();
    for b in &remote {
        assert!(
            !seen
                .lines()
                .any(|l| l.starts_with("Deleted") && l.contains(b.as_str())),
            "{node} withdrew {b} during the restart:\n{seen}"
        );
    }
}

/// Recursive next hops (BIRD's `gateway recursive`): with `next hop keep`
/// the ToR passes on the owner's own address, which is in the other rack;
/// tabby-node resolves it through the kernel's route to it (the default via
/// the ToR) and routes natively via that gateway.
#[test]
fn a_next_hop_in_another_rack_is_resolved_through_the_kernel() {
    let _g = serial();
    let lab = two_racks("tornh", &[]);
    wait_tor_routes(&lab, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    let conf_path = format!("/var/run/tabby-lab/{}/bird.conf", lab.name);
    let conf = std::fs::read_to_string(&conf_path).unwrap();
    std::fs::write(&conf_path, conf.replace("next hop self;", "next hop keep;")).unwrap();
    let out = birdc(&lab, &["configure"]);
    assert!(out.contains("Reconfigur"), "birdc configure: {out}");
    let nodes = lab.node_names();
    let (a, b) = (&nodes[0], &nodes[1]);
    let (tor, b_ip) = (tor_of(&lab, a), lab.node_ip(b));
    let want = format!("next hop {b_ip} resolved via {tor}");
    let mut last = Vec::new();
    let ok = e2e_common::wait_until(Duration::from_secs(20), || {
        last = block_rows(&lab, a);
        last.iter().any(|r| r[1] == *b && r[4].ends_with(&want))
    });
    assert!(ok, "{a}: no row saying '{want}': {last:?}\n{}", lab.logs());
    for blk in lab.blocks_of(b) {
        tor_route_ok(&lab, a, &blk).unwrap_or_else(|e| panic!("{a} -> {blk}: {e}"));
    }
    let (ok, out) = lab.wait_check(Duration::from_secs(10));
    assert!(ok, "pods do not reach over the resolved next hop:\n{out}");
}
