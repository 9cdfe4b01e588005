//! End to end, ToR session lost (issue 17): in the ToR lab (mesh off, one
//! BIRD 2 ToR per rack) TCP 179 is dropped in the fabric. The sessions die
//! by hold timer, the speaker withdraws what the ToR taught, and after the
//! hold time the remote blocks go through vxlan.calico (`vxlan-fallback`),
//! pods still reaching; with the drop gone the ToR path comes back.
//! Root only.

mod e2e_common;
mod tor_common;

use e2e_common::{serial, wait_until, HOLD};
use std::time::{Duration, Instant};
use tor_common::*;

const DROP_179: &str = "table inet e2e_drop_bgp {
  chain input { type filter hook input priority -10; tcp dport 179 drop; tcp sport 179 drop; }
  chain output { type filter hook output priority -10; tcp dport 179 drop; tcp sport 179 drop; }
}
";

#[test]
fn a_lost_tor_session_falls_back_to_vxlan_after_the_hold_time_and_comes_back() {
    let _g = serial();
    let lab = two_racks("torfb", &[]);
    wait_tor_routes(&lab, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    let nodes = lab.node_names();
    let (a, b) = (&nodes[0], &nodes[1]);
    let b_block = lab.blocks_of(b)[0].clone();

    fabric_nft(&lab, DROP_179);
    let cut = Instant::now();
    let mut why = String::new();
    let fell_back = wait_until(HOLD + Duration::from_secs(10), || {
        lab.vxlan_route_ok(a, b, &b_block)
            .map_err(|e| why = e)
            .is_ok()
    });
    let (_, status) = lab.node_status(a);
    assert!(
        fell_back,
        "{a}: {b_block} never went to vxlan.calico: {why}\n{status}\n{}",
        lab.logs()
    );
    // Not before the session had been silent for a hold time: the last
    // keepalive (every hold/3 = 3 s) may have come up to 3 s before the cut.
    let took = cut.elapsed();
    assert!(
        took >= HOLD - Duration::from_secs(4),
        "fell back after {took:?}, before the {HOLD:?} hold time"
    );
    let row = block_rows(&lab, a)
        .into_iter()
        .find(|r| r[0] == b_block)
        .unwrap_or_else(|| panic!("no row for {b_block}:\n{status}"));
    assert_eq!(row[2], "vxlan-fallback", "{row:?}");
    assert!(row[4].starts_with("no BGP path for "), "{row:?}");
    assert!(
        lab.established_peers(a).is_empty(),
        "{a}: ToR still Established with TCP 179 dropped:\n{status}"
    );
    let (ok, out) = lab.wait_check(Duration::from_secs(10));
    assert!(ok, "pods do not reach over the fallback:\n{out}");

    lab.sh(
        "fabric",
        &["nft", "delete", "table", "inet", "e2e_drop_bgp"],
    );
    wait_tor_routes(&lab, Duration::from_secs(25)).unwrap_or_else(|e| {
        panic!(
            "ToR path not back after the drop went: {e}\n{}\n{}",
            lab.node_status(a).1,
            lab.logs()
        )
    });
    let (ok, out) = lab.wait_check(Duration::from_secs(10));
    assert!(ok, "pods do not reach after recovery:\n{out}");
    println!(
        "fell back {:.1} s after the cut (hold time {} s)",
        took.as_secs_f64(),
        HOLD.as_secs()
    );
}
