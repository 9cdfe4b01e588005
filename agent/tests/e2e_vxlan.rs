//! End to end over two subnets behind a router that carries no pod routes:
//! VXLAN Always (every remote block through vxlan.calico, onlink to the
//! owner's tunnel address, with ARP and FDB entries, the device bound to the
//! node's lab interface) and VXLANCrossSubnet (native inside a subnet,
//! VXLAN across). Root only.

mod e2e_common;

use e2e_common::{block26, serial, wait_until, Lab};
use std::time::Duration;

fn all_reach(lab: &Lab) {
    // Routes converge within a second or two of the last pod.
    let (ok, last) = lab.wait_check(Duration::from_secs(20));
    assert!(ok, "lab check:\n{last}\n{}", lab.logs());
    assert!(last.contains("30/30 pod pairs reachable"), "{last}");
}

#[test]
fn vxlan_always_two_subnets() {
    let _g = serial();
    let lab = Lab::three_nodes("vxlan", "2", "VXLAN");
    let nodes = lab.node_names();
    for n in &nodes {
        let ip = lab.node_ip(n).to_string();
        let link = lab.sh(n, &["ip", "-d", "link", "show", "vxlan.calico"]);
        assert!(
            link.contains(&format!("local {ip} dev eth0")),
            "{n}: vxlan.calico is not bound to eth0 / {ip}:\n{link}"
        );
        let (tunnel, _) = lab.vtep(n);
        assert_ne!(
            block26(tunnel),
            format!("{tunnel}/26"),
            "{n}: tunnel address {tunnel} is its block's network address"
        );
        for owner in nodes.iter().filter(|o| *o != n) {
            for block in lab.blocks_of(owner) {
                let mut why = String::new();
                let ok = wait_until(Duration::from_secs(15), || {
                    lab.vxlan_route_ok(n, owner, &block)
                        .map_err(|e| why = e)
                        .is_ok()
                });
                assert!(ok, "{n} -> {owner}'s block {block}: {why}");
            }
        }
    }
    all_reach(&lab);
}

#[test]
fn vxlan_cross_subnet() {
    let _g = serial();
    let lab = Lab::three_nodes("xsub", "2", "VXLANCrossSubnet");
    let nodes = lab.node_names();
    for n in &nodes {
        for owner in nodes.iter().filter(|o| *o != n) {
            let same = lab.node_subnet(n) == lab.node_subnet(owner);
            for block in lab.blocks_of(owner) {
                let (ok, why) = lab.wait_route_by_subnet(n, owner, &block);
                let path = if same { "native" } else { "vxlan" };
                assert!(ok, "{n} -> {owner}'s block {block} should be {path}: {why}");
            }
        }
    }
    all_reach(&lab);
}
