//! End to end, BFD on the node-to-node mesh (Tabby's BGPConfiguration
//! `nodeToNodeMeshFailureDetectionMode: BFDIfDirectlyConnected`): with BGP
//! (TCP 179) and BFD (UDP 3784) dropped between two nodes while VXLAN (UDP
//! 4789) passes, each node's block on the other goes `vxlan-fallback`
//! within 2 s — BFD's 0.9 s detection instead of the 9 s hold time — and
//! every pod still reaches every pod; without the drop, BFD and BGP come
//! back and the routes go native again. Root only.

mod e2e_common;

use e2e_common::{serial, wait_until, Lab, HOLD};
use std::time::{Duration, Instant};

const MESH_BFD: &str = "apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
spec:
  nodeToNodeMeshEnabled: true
  nodeToNodeMeshFailureDetectionMode: BFDIfDirectlyConnected
";

const DROP: &str = "table inet e2e_drop_bfd {
  chain input { type filter hook input priority -10; udp dport 4789 accept; tcp dport 179 drop; tcp sport 179 drop; udp dport 3784 drop; }
  chain output { type filter hook output priority -10; udp dport 4789 accept; tcp dport 179 drop; tcp sport 179 drop; udp dport 3784 drop; }
}
";

/// The BFD section of `node status`: (peer, state, info) rows.
fn bfd_rows(lab: &Lab, node: &str) -> Vec<(String, String, String)> {
    let (_, out) = lab.node_status(node);
    out.lines()
        .skip_while(|l| !l.starts_with("BFD status"))
        .take_while(|l| !l.starts_with("Block paths"))
        .filter_map(|l| {
            let c: Vec<&str> = l.split('|').map(str::trim).collect();
            (c.len() == 5 && c[1] != "PEER ADDRESS")
                .then(|| (c[1].to_string(), c[2].to_string(), c[3].to_string()))
        })
        .collect()
}

#[test]
fn mesh_bfd_falls_back_to_vxlan_within_two_seconds() {
    let _g = serial();
    let lab = Lab::up(
        "bfd",
        &[
            "--nodes",
            "2",
            "--subnets",
            "1",
            "--pods-per-node",
            "1",
            "--encapsulation",
            "None",
        ],
    );
    let path = format!("/tmp/{}-bfd.yaml", lab.name);
    std::fs::write(&path, MESH_BFD).unwrap();
    let (ok, out) = lab.tabbyctl(&["apply", "-f", &path]);
    let _ = std::fs::remove_file(&path);
    assert!(ok, "apply BGPConfiguration: {out}");

    let nodes = lab.node_names();
    let (cut, other) = (&nodes[0], &nodes[1]);
    let native = |lab: &Lab| -> Result<(), String> {
        for (n, o) in [(cut, other), (other, cut)] {
            for b in lab.blocks_of(o) {
                lab.native_route_ok(n, o, &b)
                    .map_err(|e| format!("{n} -> {o}'s {b}: {e}"))?;
            }
        }
        Ok(())
    };
    // Up, and on the fast timers (Poll/Final done): 3 × 300 ms.
    let bfd_up = |lab: &Lab| {
        nodes.iter().all(|n| {
            let rows = bfd_rows(lab, n);
            !rows.is_empty()
                && rows
                    .iter()
                    .all(|(_, s, i)| s == "Up" && i == "detect time 0.9 s")
        })
    };
    let mut why = String::new();
    let ready = wait_until(Duration::from_secs(30), || {
        if !bfd_up(&lab) {
            why = "BFD not Up on both nodes".into();
            return false;
        }
        lab.established_peers(cut).len() == 1 && native(&lab).map_err(|e| why = e).is_ok()
    });
    assert!(
        ready,
        "mesh with BFD never came up native: {why}\n{}\n{}",
        lab.node_status(cut).1,
        lab.logs()
    );

    let f = std::env::temp_dir().join(format!("{}-drop.nft", lab.name));
    std::fs::write(&f, DROP).unwrap();
    lab.sh(cut, &["nft", "-f", f.to_str().unwrap()]);
    let _ = std::fs::remove_file(&f);
    let t0 = Instant::now();
    let blocks = lab.blocks_of(other);
    let fell_back = loop {
        let all = blocks.iter().all(|b| {
            lab.route_to(cut, b)
                .is_some_and(|r| r["dev"] == "vxlan.calico")
        });
        if all || t0.elapsed() > HOLD {
            break all.then(|| t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = fell_back.unwrap_or_else(|| {
        panic!(
            "{cut} never routed {other}'s blocks through vxlan.calico:\n{}\n{}",
            lab.node_status(cut).1,
            lab.logs()
        )
    });
    println!(
        "vxlan-fallback after {:.2} s (BFD detect time 0.9 s; hold time {} s)",
        took.as_secs_f64(),
        HOLD.as_secs()
    );
    assert!(took < Duration::from_secs(2), "fallback took {took:?}");
    for b in &blocks {
        lab.vxlan_route_ok(cut, other, b)
            .unwrap_or_else(|e| panic!("{cut} -> {other}'s {b}: {e}"));
    }
    let (_, status) = lab.node_status(cut);
    assert!(
        status.contains("down by BFD"),
        "the block path says why:\n{status}"
    );
    assert!(
        status.contains("BFD session down (Control Detection Time Expired)"),
        "the peer row names BFD:\n{status}"
    );
    // The other side falls back as well, and every pod reaches every pod.
    let (ok, last) = lab.wait_check(Duration::from_secs(10));
    assert!(
        ok,
        "pods do not reach over the fallback: {last}\n{}",
        lab.node_status(other).1
    );

    lab.sh(cut, &["nft", "delete", "table", "inet", "e2e_drop_bfd"]);
    let back = wait_until(Duration::from_secs(30), || {
        if !bfd_up(&lab) {
            why = "BFD not Up again".into();
            return false;
        }
        if lab.established_peers(cut).len() != 1 {
            why = "session not Established again".into();
            return false;
        }
        native(&lab).map_err(|e| why = e).is_ok()
    });
    assert!(
        back,
        "not native again after the drop went: {why}\n{}\n{}",
        lab.node_status(cut).1,
        lab.logs()
    );
    let (ok, out) = lab.check();
    assert!(ok, "after recovery:\n{out}");
}
