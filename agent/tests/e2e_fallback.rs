//! End to end, VXLAN fallback: with TCP 179 dropped on one node (nftables
//! in its namespace) its BGP sessions leave Established, and within the
//! hold time + 5 s every pod pair reaches again, the cut-off blocks routed
//! through vxlan.calico; without the drop the routes go back to native.
//! Root only.

mod e2e_common;

use e2e_common::{serial, wait_until, Lab, HOLD};
use std::time::{Duration, Instant};

const DROP_179: &str = "table inet e2e_drop_bgp {
  chain input { type filter hook input priority -10; tcp dport 179 drop; tcp sport 179 drop; }
  chain output { type filter hook output priority -10; tcp dport 179 drop; tcp sport 179 drop; }
}
";

#[test]
fn vxlan_fallback_when_bgp_is_cut() {
    let _g = serial();
    let lab = Lab::three_nodes("fallback", "1", "None");
    let nodes = lab.node_names();
    let cut = &nodes[0];
    let others: Vec<&String> = nodes.iter().filter(|n| *n != cut).collect();
    let native = |lab: &Lab| -> Result<(), String> {
        for n in &nodes {
            for o in nodes.iter().filter(|o| *o != n) {
                for b in lab.blocks_of(o) {
                    lab.native_route_ok(n, o, &b)
                        .map_err(|e| format!("{n} -> {o}'s {b}: {e}"))?;
                }
            }
        }
        Ok(())
    };
    let mut why = String::new();
    assert!(
        wait_until(Duration::from_secs(30), || native(&lab)
            .map_err(|e| why = e)
            .is_ok()),
        "routes never became native: {why}\n{}",
        lab.logs()
    );

    let f = std::env::temp_dir().join(format!("{}-drop.nft", lab.name));
    std::fs::write(&f, DROP_179).unwrap();
    lab.sh(cut, &["nft", "-f", f.to_str().unwrap()]);
    let _ = std::fs::remove_file(&f);

    // The sessions die by hold timer (keepalives are dropped too).
    let left = wait_until(HOLD + Duration::from_secs(10), || {
        lab.established_peers(cut).is_empty()
    });
    let (_, status) = lab.node_status(cut);
    assert!(
        left,
        "{cut}: sessions stayed Established with TCP 179 dropped:\n{status}"
    );
    let down_at = Instant::now();

    // Both ends route each other's blocks through VXLAN, and all pods reach.
    let ok = wait_until(HOLD + Duration::from_secs(5), || {
        for o in &others {
            for (from, owner) in [(cut, *o), (*o, cut)] {
                for b in lab.blocks_of(owner) {
                    if let Err(e) = lab.vxlan_route_ok(from, owner, &b) {
                        why = format!("{from} -> {owner}'s {b}: {e}");
                        return false;
                    }
                }
            }
        }
        let (ok, out) = lab.check();
        why = out;
        ok
    });
    assert!(
        ok,
        "no VXLAN fallback within hold time + 5 s of the sessions going down ({:?}): {why}\n{}\n{}",
        down_at.elapsed(),
        lab.node_status(cut).1,
        lab.logs()
    );

    // node status names the path for what it is.
    let (_, status) = lab.node_status(cut);
    for o in &others {
        for b in lab.blocks_of(o) {
            assert!(
                status
                    .lines()
                    .any(|l| l.contains(&format!("| {b} ")) && l.contains("| vxlan-fallback ")),
                "{cut}: {o}'s block {b} not shown as vxlan-fallback:\n{status}"
            );
        }
    }

    lab.sh(cut, &["nft", "delete", "table", "inet", "e2e_drop_bgp"]);
    let back = wait_until(Duration::from_secs(30), || {
        if lab.established_peers(cut).len() != others.len() {
            why = "sessions not Established".into();
            return false;
        }
        native(&lab).map_err(|e| why = e).is_ok()
    });
    let statuses: String = nodes.iter().map(|n| lab.node_status(n).1).collect();
    assert!(
        back,
        "routes did not go back to native after the drop was removed: {why}\n{statuses}\n{}",
        lab.logs()
    );
    let (ok, out) = lab.check();
    assert!(ok, "after recovery:\n{out}");
}

/// Encapsulation None across two subnets: the fabric carries no pod routes
/// and a BGP next hop in the other subnet is not directly connected, so
/// those blocks go through vxlan.calico (shown as vxlan-fallback) while
/// same-subnet blocks stay native; every pod reaches every pod.
#[test]
fn bgp_next_hop_across_the_fabric_falls_back_to_vxlan() {
    let _g = serial();
    let lab = Lab::three_nodes("nhop", "2", "None");
    let nodes = lab.node_names();
    for n in &nodes {
        for o in nodes.iter().filter(|o| *o != n) {
            let same = lab.node_subnet(n) == lab.node_subnet(o);
            for b in lab.blocks_of(o) {
                let (ok, why) = lab.wait_route_by_subnet(n, o, &b);
                assert!(ok, "{n} -> {o}'s block {b} (same subnet: {same}): {why}");
                if !same {
                    let (_, status) = lab.node_status(n);
                    assert!(
                        status
                            .lines()
                            .any(|l| l.contains(&format!("| {b} "))
                                && l.contains("| vxlan-fallback ")),
                        "{n}: {b} not shown as vxlan-fallback:\n{status}"
                    );
                }
            }
        }
    }
    let (ok, last) = lab.wait_check(Duration::from_secs(15));
    assert!(ok, "{last}\n{}", lab.logs());
}
