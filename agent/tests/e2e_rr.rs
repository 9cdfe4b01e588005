//! End to end, route reflectors Calico's way (`lab up --topology rr`): 4
//! nodes on 2 subnets, the first of each a Tabby route reflector, the mesh
//! off. Every pod reaches every pod; each client peers with the 2
//! reflectors only, and each reflector with every node; each client's
//! speaker has every other node's block as a best path, reflected with
//! its owner's next hop; with one reflector's tabby-node stopped, the
//! other still gives every client every running node's block and pods
//! still reach. And BIRD 2 as an external reflector (`rr client`, `rr
//! cluster id`) for 3 Tabby nodes with the mesh off: every node learns
//! every other node's block from BIRD with the owner's next hop. Root only.

mod e2e_bird;
mod e2e_common;

use e2e_bird::Bird;
use e2e_common::{serial, wait_until, Lab};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use tabby_proto::bgp::best_path_event::Event;
use tabby_proto::bgp::bgp_client::BgpClient;
use tabby_proto::bgp::{BestPath, WatchBestPathsRequest};

/// The speaker's best paths by prefix, the snapshot `WatchBestPaths`
/// opens with, read from the node's socket.
fn best_paths(run_dir: &str) -> BTreeMap<String, BestPath> {
    let socket = tabby_agent::grpc::socket_path(Path::new(run_dir));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let Ok(ch) = tabby_agent::grpc::connect_unix(&socket).await else {
            return BTreeMap::new();
        };
        let Ok(s) = BgpClient::new(ch)
            .watch_best_paths(WatchBestPathsRequest {})
            .await
        else {
            return BTreeMap::new();
        };
        let mut s = s.into_inner();
        let mut out = BTreeMap::new();
        while let Ok(Some(e)) = s.message().await {
            match e.event {
                Some(Event::Updated(b)) => {
                    out.insert(b.prefix.clone(), b);
                }
                Some(Event::EndOfSnapshot(_)) | None => break,
                Some(Event::Withdrawn(p)) => {
                    out.remove(&p);
                }
            }
        }
        out
    })
}

/// The `node status` peer rows: (address, type, info).
fn peer_rows(lab: &Lab, node: &str) -> Vec<(String, String, String)> {
    let (_, out) = lab.node_status(node);
    out.lines()
        .skip_while(|l| !l.starts_with("IPv4 BGP status"))
        .take_while(|l| !l.starts_with("IPv6 BGP status"))
        .filter_map(|l| {
            let c: Vec<&str> = l.split('|').map(str::trim).collect();
            (c.len() == 7 && c[1] != "PEER ADDRESS")
                .then(|| (c[1].to_string(), c[2].to_string(), c[5].to_string()))
        })
        .collect()
}

/// Whether `client` has every block of `owners` as a best path learned
/// from one of `via` with the owner's node IP as next hop; the reason if not.
fn has_blocks(lab: &Lab, client: &str, owners: &[String], via: &[String]) -> Result<(), String> {
    let run_dir = lab.node(client)["run_dir"].as_str().unwrap().to_string();
    let paths = best_paths(&run_dir);
    for owner in owners {
        let nh = lab.node_ip(owner).to_string();
        for block in lab.blocks_of(owner) {
            match paths.get(&block) {
                Some(p) if p.next_hop == nh && via.contains(&p.from_peer) => {}
                other => {
                    return Err(format!(
                        "{client}: {owner}'s block {block}: want next hop {nh} from one of {via:?}, have {other:?}"
                    ))
                }
            }
        }
    }
    Ok(())
}

#[test]
fn route_reflectors_carry_every_block_and_survive_one_reflector_down() {
    let _g = serial();
    let lab = Lab::up(
        "rr",
        &[
            "--nodes",
            "4",
            "--subnets",
            "2",
            "--pods-per-node",
            "1",
            "--topology",
            "rr",
        ],
    );
    assert_eq!(lab.state["topology"], "rr", "{}", lab.state);
    assert_eq!(
        lab.state["route_reflectors"],
        serde_json::json!(["node-1", "node-3"]),
        "one reflector per subnet"
    );
    let (ok, status) = lab.lab(&["status"]);
    assert!(ok && status.contains("rr topology"), "{status}");
    assert!(
        status.contains("route reflector (cluster 244.0.0.1)") && status.contains("rr client"),
        "{status}"
    );
    let nodes = lab.node_names();
    let rrs = ["node-1".to_string(), "node-3".to_string()];
    let rr_ips: Vec<String> = rrs.iter().map(|r| lab.node_ip(r).to_string()).collect();
    let clients: Vec<String> = nodes.iter().filter(|n| !rrs.contains(n)).cloned().collect();

    // Sessions: a client has exactly the two reflectors, a reflector every
    // other node (its clients by reverse peering, the other reflector).
    for n in &nodes {
        let want: Vec<String> = if rrs.contains(n) {
            nodes
                .iter()
                .filter(|o| *o != n)
                .map(|o| lab.node_ip(o).to_string())
                .collect()
        } else {
            rr_ips.clone()
        };
        let ok = wait_until(Duration::from_secs(20), || {
            let rows = peer_rows(&lab, n);
            let addrs: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
            addrs == want && rows.iter().all(|r| r.2 == "Established")
        });
        let (_, st) = lab.node_status(n);
        assert!(
            ok,
            "{n}: want sessions to {want:?} only:\n{st}\n{}",
            lab.logs()
        );
        assert!(
            peer_rows(&lab, n).iter().all(|r| r.1 == "node specific"),
            "{st}"
        );
    }

    // Every client learns every other node's block through the
    // reflectors, next hop unchanged by reflection.
    for c in &clients {
        let others: Vec<String> = nodes.iter().filter(|o| *o != c).cloned().collect();
        let mut why = String::new();
        let ok = wait_until(Duration::from_secs(15), || {
            has_blocks(&lab, c, &others, &rr_ips)
                .map_err(|e| why = e)
                .is_ok()
        });
        assert!(ok, "{why}");
    }
    let (ok, out) = lab.wait_check(Duration::from_secs(20));
    assert!(ok, "lab check:\n{out}\n{}", lab.logs());
    assert!(out.contains("12/12 pod pairs reachable"), "{out}");

    // One reflector down: the other keeps every running node's block on
    // every client.
    let (ok, out) = lab.lab(&["node", "stop", "node-1"]);
    assert!(ok, "{out}");
    let survivor = vec![lab.node_ip("node-3").to_string()];
    for c in &clients {
        let others: Vec<String> = nodes
            .iter()
            .filter(|o| *o != c && o.as_str() != "node-1")
            .cloned()
            .collect();
        let mut why = String::new();
        let ok = wait_until(Duration::from_secs(15), || {
            // From node-3 only: node-1's session is gone.
            let gone = peer_rows(&lab, c)
                .iter()
                .any(|r| r.0 == rr_ips[0] && r.2 != "Established");
            gone && has_blocks(&lab, c, &others, &survivor)
                .map_err(|e| why = e)
                .is_ok()
        });
        let (_, st) = lab.node_status(c);
        assert!(ok, "after node-1 stopped: {why}\n{st}\n{}", lab.logs());
    }
    // node-1's kernel keeps its routes and workloads when tabby-node
    // stops, and the others route its block from the datastore.
    let (ok, out) = lab.wait_check(Duration::from_secs(20));
    assert!(
        ok,
        "lab check with node-1's reflector down:\n{out}\n{}",
        lab.logs()
    );
}

#[test]
fn bird_reflects_every_block_with_its_original_next_hop() {
    let _g = serial();
    let lab = Lab::up(
        "rrbird",
        &[
            "--nodes",
            "3",
            "--subnets",
            "1",
            "--pods-per-node",
            "1",
            "--encapsulation",
            "None",
        ],
    );
    let nodes = lab.node_names();
    // iBGP in the nodes' AS; `direct`: next hops are on the shared subnet.
    let (bird, router) = Bird::peering_every_node(
        &lab,
        64512,
        64512,
        "  rr client; rr cluster id 244.0.0.9; direct;\n  ipv4 { import all; export all; };\n",
    );
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        f.path(),
        format!(
            "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {{name: default}}\nspec: {{nodeToNodeMeshEnabled: false}}\n---\n\
             apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {{name: bird-rr}}\nspec: {{peerIP: {router}, asNumber: 64512}}\n"
        ),
    )
    .unwrap();
    let (ok, out) = lab.tabbyctl(&["apply", "-f", f.path().to_str().unwrap()]);
    assert!(ok, "{out}");

    let via = vec![router.clone()];
    for n in &nodes {
        // The mesh is gone: BIRD is the node's only session.
        let ok = wait_until(Duration::from_secs(20), || {
            let rows = peer_rows(&lab, n);
            rows.len() == 1
                && rows[0].0 == router
                && rows[0].1 == "global"
                && rows[0].2 == "Established"
        });
        let (_, st) = lab.node_status(n);
        assert!(
            ok,
            "{n}: want one global session to BIRD:\n{st}\n{}",
            bird.log()
        );
        let others: Vec<String> = nodes.iter().filter(|o| *o != n).cloned().collect();
        let mut why = String::new();
        let ok = wait_until(Duration::from_secs(15), || {
            has_blocks(&lab, n, &others, &via)
                .map_err(|e| why = e)
                .is_ok()
        });
        assert!(ok, "{why}\n{}", bird.birdc(&["show", "route", "all"]));
    }
    // BIRD itself has each block from its owner.
    let block = &lab.blocks_of("node-1")[0];
    let r = bird.route_all(block).unwrap_or_default();
    assert!(r.contains(&format!("via {}", lab.node_ip("node-1"))), "{r}");
    let (ok, out) = lab.wait_check(Duration::from_secs(20));
    assert!(ok, "lab check:\n{out}\n{}", lab.logs());
    assert!(out.contains("6/6 pod pairs reachable"), "{out}");
}

/// A running node made a reflector by editing its Node (label and
/// `routeReflectorClusterID`), as an operator would: its speaker starts
/// again with the cluster ID and reflects between the other two.
#[test]
fn a_node_becomes_a_reflector_live() {
    let _g = serial();
    let lab = Lab::up(
        "rrlive",
        &[
            "--nodes",
            "3",
            "--subnets",
            "1",
            "--pods-per-node",
            "1",
            "--encapsulation",
            "None",
        ],
    );
    let (ok, out) = lab.tabbyctl(&["get", "node", "node-1", "-o", "json"]);
    assert!(ok, "{out}");
    let mut node: serde_json::Value = serde_json::from_str(&out).unwrap();
    node["metadata"]["labels"] = serde_json::json!({"route-reflector": "true"});
    node["spec"]["bgp"]["routeReflectorClusterID"] = "244.0.0.1".into();
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        f.path(),
        format!(
            "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {{name: default}}\nspec: {{nodeToNodeMeshEnabled: false}}\n---\n\
             apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {{name: peer-with-route-reflectors}}\nspec: {{nodeSelector: all(), peerSelector: \"route-reflector == 'true'\"}}\n---\n{node}\n"
        ),
    )
    .unwrap();
    let (ok, out) = lab.tabbyctl(&["apply", "-f", f.path().to_str().unwrap()]);
    assert!(ok, "{out}");
    let rr = vec![lab.node_ip("node-1").to_string()];
    for (client, other) in [("node-2", "node-3"), ("node-3", "node-2")] {
        let mut why = String::new();
        let ok = wait_until(Duration::from_secs(20), || {
            let rows = peer_rows(&lab, client);
            rows.len() == 1
                && rows[0].0 == rr[0]
                && rows[0].2 == "Established"
                && has_blocks(&lab, client, &[other.to_string()], &rr)
                    .map_err(|e| why = e)
                    .is_ok()
        });
        let (_, st) = lab.node_status(client);
        assert!(
            ok,
            "{client}: want {other}'s block via node-1 only: {why}\n{st}\n{}",
            lab.logs()
        );
    }
    let (ok, out) = lab.wait_check(Duration::from_secs(20));
    assert!(ok, "lab check:\n{out}\n{}", lab.logs());
}
