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
