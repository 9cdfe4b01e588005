//! End to end, BGP full mesh on one subnet (encapsulation None), on SQLite
//! and on a real etcd: every pod reaches every pod, every remote block has
//! a native route via its owner's node IP with Tabby's protocol number (81),
//! and `tabbyctl node status` shows each mesh peer Established. Root only.

mod e2e_common;

use e2e_common::{protocol, serial, wait_until, Lab};
use std::time::Duration;

/// Tabby's route protocol number (Calico's felix uses 80; BIRD's is 12).
const PROTO_TABBY: &str = "81";

fn mesh(tag: &str, datastore: &str) {
    let _g = serial();
    let lab = Lab::three_nodes_with(tag, "1", "None", &["--datastore", datastore]);
    let nodes = lab.node_names();
    // Sessions come up within a few connect retries (1 s in the lab).
    for n in &nodes {
        let others: Vec<String> = nodes
            .iter()
            .filter(|o| *o != n)
            .map(|o| lab.node_ip(o).to_string())
            .collect();
        let ok = wait_until(Duration::from_secs(30), || {
            let est = lab.established_peers(n);
            others.iter().all(|o| est.contains(o))
        });
        let (_, status) = lab.node_status(n);
        assert!(
            ok,
            "{n}: not every mesh peer Established:\n{status}\n{}",
            lab.logs()
        );
        assert!(
            status.starts_with("Tabby process is running.\n"),
            "{status}"
        );
        assert!(status.contains("IPv4 BGP status\n+--"), "{status}");
        assert!(status.contains("node-to-node mesh"), "{status}");
        assert!(
            status.contains("IPv6 BGP status\nNo IPv6 peers found."),
            "{status}"
        );
    }
    // Every remote block: native, via the owner's node IP, protocol 81.
    for n in &nodes {
        for owner in nodes.iter().filter(|o| *o != n) {
            let via = lab.node_ip(owner).to_string();
            for block in lab.blocks_of(owner) {
                let ok = wait_until(Duration::from_secs(15), || {
                    lab.route_to(n, &block).is_some_and(|r| {
                        r["gateway"] == via.as_str()
                            && r["dev"] == "eth0"
                            && protocol(&r) == PROTO_TABBY
                    })
                });
                assert!(
                    ok,
                    "{n}: no native route to {owner}'s block {block} via {via} proto {PROTO_TABBY}; have {:?}",
                    lab.route_to(n, &block)
                );
            }
        }
    }
    let (ok, out) = lab.check();
    assert!(ok, "lab check:\n{out}\n{}", lab.logs());
    assert!(out.contains("30/30 pod pairs reachable"), "{out}");
}

#[test]
fn bgp_mesh_one_subnet_sqlite() {
    mesh("mesh", "sqlite");
}

#[test]
fn bgp_mesh_one_subnet_etcd() {
    mesh("etcd", "etcdv3");
}
