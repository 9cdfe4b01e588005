//! End to end, service advertisement: 3 Tabby nodes (mesh on) and a real
//! BIRD 2 in the lab's fabric namespace with one eBGP `protocol bgp` per
//! node, reached through a global BGPPeer. BIRD learns the default
//! BGPConfiguration's `serviceClusterIPs` from every node (one path per
//! node) with the standard and large communities `prefixAdvertisements`
//! attach, by name and by value, and every block the pool-wide one tags;
//! no node routes the service CIDR into its kernel; removing it from
//! BGPConfiguration withdraws it from every node. A BGPConfiguration
//! with a bad CIDR, an unknown community name or a bad value is rejected
//! whole, naming each field. Root only.

mod e2e_bird;
mod e2e_common;

use e2e_bird::Bird;
use e2e_common::{serial, wait_until, Lab};
use std::time::Duration;

const SVC: &str = "10.96.0.0/12";
const BIRD_AS: u32 = 65000;
/// How birdc prints the two large communities.
const LARGE: &str = "BGP.large_community: (65000, 100, 1) (4200000000, 7, 8)";

fn apply(lab: &Lab, yaml: &str) -> (bool, String) {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), yaml).unwrap();
    lab.tabbyctl(&["apply", "-f", f.path().to_str().unwrap()])
}

fn bgp_config(services: &str) -> String {
    format!(
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {{name: default}}\nspec:\n{services}  communities:\n  - {{name: svc, value: \"65000:100\"}}\n  - {{name: big, value: \"65000:100:1\"}}\n  prefixAdvertisements:\n  - cidr: {SVC}\n    communities: [svc, \"65000:200\", big, \"4200000000:7:8\"]\n  - cidr: 172.30.0.0/16\n    communities: [\"65000:300\"]\n"
    )
}

#[test]
fn service_cluster_ips_reach_bird_from_every_node_with_communities() {
    let _g = serial();
    let lab = Lab::up(
        "svc",
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
    let (bird, router) = Bird::peering_every_node(
        &lab,
        BIRD_AS,
        64512,
        "  ipv4 { import all; export none; };\n",
    );

    // Rejected whole, every problem named.
    let bad = "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\nspec:\n  serviceClusterIPs: [{cidr: 10.96.0.0/33}]\n  communities: [{name: svc, value: \"65000:70000\"}]\n  prefixAdvertisements: [{cidr: 10.96.0.0/12, communities: [nosuch]}]\n";
    let (ok, out) = apply(&lab, bad);
    assert!(!ok, "{out}");
    for field in [
        "spec.serviceClusterIPs[0].cidr",
        "spec.communities[0].value",
        "spec.prefixAdvertisements[0].communities[0]",
    ] {
        assert!(out.contains(field), "{field} not named in:\n{out}");
    }

    let peer = format!(
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {{name: bird}}\nspec: {{peerIP: {router}, asNumber: {BIRD_AS}}}\n---\n"
    );
    let with_svc = bgp_config(&format!("  serviceClusterIPs: [{{cidr: {SVC}}}]\n"));
    let (ok, out) = apply(&lab, &(peer + &with_svc));
    assert!(ok, "{out}");

    let protos: Vec<String> = nodes.iter().map(|n| n.replace('-', "_")).collect();
    let ok = wait_until(Duration::from_secs(20), || {
        bird.route_all(SVC).is_some_and(|r| {
            protos.iter().all(|p| r.contains(&format!("[{p} ")))
                && r.matches("BGP.community: (65000,100) (65000,200)").count() == nodes.len()
                && r.matches(LARGE).count() == nodes.len()
        })
    });
    assert!(
        ok,
        "BIRD: want {SVC} from every node with (65000,100) (65000,200) and {LARGE}:\n{:?}\n{}\n{}",
        bird.route_all(SVC),
        bird.birdc(&["show", "protocols"]),
        lab.logs()
    );
    // Shown with --nocapture: what birdc prints.
    eprintln!(
        "birdc show route all {SVC}:\n{}",
        bird.route_all(SVC).unwrap_or_default()
    );
    // The nodes' own blocks reach BIRD too, tagged by the pool-wide
    // prefixAdvertisement only.
    for n in &nodes {
        for block in lab.blocks_of(n) {
            let via = format!("via {}", lab.node_ip(n));
            let mut r = String::new();
            let ok = wait_until(Duration::from_secs(10), || {
                r = bird.route_all(&block).unwrap_or_default();
                r.contains(&via)
                    && r.contains("BGP.community: (65000,300)\n")
                    && !r.contains("BGP.large_community")
            });
            assert!(ok, "{block}: want {via} with (65000,300) only: {r}");
        }
    }
    // Mesh peers learn each other's service route, and leave it to
    // kube-proxy: no kernel route for it anywhere.
    for n in &nodes {
        assert!(lab.route_to(n, SVC).is_none(), "{n} routes {SVC}");
    }

    let (ok, out) = apply(&lab, &bgp_config(""));
    assert!(ok, "{out}");
    let ok = wait_until(Duration::from_secs(15), || bird.route_all(SVC).is_none());
    assert!(ok, "{SVC} still in BIRD: {:?}", bird.route_all(SVC));
    assert!(
        protos.iter().all(|p| bird.established(p)),
        "withdrawing is no session reset"
    );
}
