//! The BGP rules for `vxlanMode: Never` (issue 17, ToR part): mesh session,
//! then a learned route from a ToR / route reflector, then the fallback
//! once no path has existed for the hold time.

use super::routes::*;
use super::routes_bgp::remember;
use super::routes_tests::{base, ip, net, path_of, row_of};
use crate::resources::ippool::EncapMode;
use std::time::Duration;
use tabby_felix_lite::model::Path;

const C_BLOCK: &str = "192.168.0.128/26";
const TOR: &str = "10.0.1.254";

fn native(gw: &str) -> Option<Path> {
    Some(Path::Native { gateway: ip(gw) })
}

fn learned(prefix: &str, nh: &str, from: &str) -> LearnedRoute {
    LearnedRoute {
        prefix: net(prefix),
        next_hop: Some(ip(nh)),
        from_peer: Some(ip(from)),
    }
}

/// Node a with mesh off and a node-specific ToR peer (AS 64513), which
/// taught it c's block (c is in another rack).
fn tor(health: PeerHealth) -> Inputs {
    let mut inp = base(EncapMode::Never);
    inp.mesh.clear();
    inp.peers.insert(
        ip(TOR),
        BgpPeerInfo {
            kind: "node specific".into(),
            asn: 64513,
            health,
        },
    );
    inp.learned = vec![learned(C_BLOCK, TOR, TOR)];
    inp
}

#[test]
fn a_tor_learned_route_makes_a_block_in_another_rack_native() {
    let out = calculate(&tor(PeerHealth::Established));
    assert_eq!(path_of(&out, C_BLOCK), native(TOR));
    let r = row_of(&out, C_BLOCK);
    assert_eq!((r.path.as_str(), r.via.as_str()), ("native", TOR));
    assert_eq!(
        r.reason,
        "learned from 10.0.1.254 (node specific, AS 64513)"
    );
    assert_eq!(
        out.live.get(&net(C_BLOCK)),
        Some(&LastPath {
            gateway: ip(TOR),
            peer: Some(ip(TOR))
        })
    );
}

#[test]
fn a_less_specific_route_inside_a_pool_covers_but_a_default_does_not() {
    let mut inp = tor(PeerHealth::Established);
    inp.learned = vec![
        learned("192.168.0.128/25", TOR, TOR),
        learned("0.0.0.0/0", "10.0.1.253", TOR),
    ];
    let out = calculate(&inp);
    assert_eq!(path_of(&out, C_BLOCK), native(TOR));
    inp.learned = vec![learned("0.0.0.0/0", TOR, TOR)];
    let out = calculate(&inp);
    assert_ne!(
        path_of(&out, C_BLOCK),
        native(TOR),
        "a default route is not a pod path"
    );
}

#[test]
fn the_mesh_session_comes_first_and_the_tor_takes_over_past_the_hold_time() {
    let mut inp = tor(PeerHealth::Established);
    inp.mesh.insert(ip("10.0.1.2"), PeerHealth::Established);
    inp.learned.push(learned("192.168.0.64/26", TOR, TOR));
    let out = calculate(&inp);
    assert_eq!(path_of(&out, "192.168.0.64/26"), native("10.0.1.2"));
    assert_eq!(
        row_of(&out, "192.168.0.64/26").reason,
        "BGP mesh peer Established"
    );
    inp.mesh.insert(
        ip("10.0.1.2"),
        PeerHealth::DownSince(inp.now - Duration::from_secs(30)),
    );
    let out = calculate(&inp);
    assert_eq!(path_of(&out, "192.168.0.64/26"), native(TOR));
    assert!(row_of(&out, "192.168.0.64/26")
        .reason
        .starts_with("learned from 10.0.1.254"));
}

#[test]
fn a_next_hop_off_subnet_is_resolved_through_the_kernel_route() {
    let mut inp = tor(PeerHealth::Established);
    inp.peers.insert(
        ip("10.0.1.3"),
        BgpPeerInfo {
            kind: "route reflector".into(),
            asn: 64512,
            health: PeerHealth::Established,
        },
    );
    inp.learned = vec![learned(C_BLOCK, "10.0.2.9", "10.0.1.3")];
    let out = calculate(&inp);
    assert_ne!(path_of(&out, C_BLOCK), native("10.0.2.9"));
    assert!(!out.live.contains_key(&net(C_BLOCK)), "unresolved: no path");
    inp.resolved.insert(ip("10.0.2.9"), ip(TOR));
    let out = calculate(&inp);
    assert_eq!(path_of(&out, C_BLOCK), native(TOR));
    assert_eq!(
        row_of(&out, C_BLOCK).reason,
        "learned from RR 10.0.1.3, next hop 10.0.2.9 resolved via 10.0.1.254"
    );
    // A gateway that is itself off-subnet is no use.
    inp.resolved.insert(ip("10.0.2.9"), ip("10.7.7.7"));
    assert_ne!(path_of(&calculate(&inp), C_BLOCK), native("10.7.7.7"));
}

#[test]
fn tor_down_keeps_the_last_path_for_the_hold_time_then_falls_back() {
    let mut inp = tor(PeerHealth::Established);
    let out = calculate(&inp);
    (inp.last, inp.lost_since) = remember(&inp, &out);
    // The session drops (Cease: the outage starts now) and the speaker
    // withdraws what it learned.
    let t0 = inp.now;
    inp.peers.get_mut(&ip(TOR)).unwrap().health = PeerHealth::DownSince(t0);
    inp.learned.clear();
    inp.now = t0 + Duration::from_secs(5);
    let out = calculate(&inp);
    assert_eq!(path_of(&out, C_BLOCK), native(TOR), "5 s < 9 s hold time");
    assert!(row_of(&out, C_BLOCK)
        .reason
        .contains("no BGP path for 5s (hold time 9s)"));
    (inp.last, inp.lost_since) = remember(&inp, &out);
    assert_eq!(inp.lost_since.get(&net(C_BLOCK)), Some(&t0));
    inp.now = t0 + Duration::from_secs(10);
    let out = calculate(&inp);
    assert_eq!(
        path_of(&out, C_BLOCK),
        Some(Path::Vxlan {
            tunnel_ip: ip("192.168.0.129")
        })
    );
    let r = row_of(&out, C_BLOCK);
    assert_eq!(r.path, "vxlan-fallback");
    assert!(
        r.reason.starts_with("no BGP path for 10s (hold time 9s)"),
        "{}",
        r.reason
    );
    // Back: the ToR path again, and the clock is forgotten.
    inp.peers.get_mut(&ip(TOR)).unwrap().health = PeerHealth::Established;
    inp.learned = vec![learned(C_BLOCK, TOR, TOR)];
    let out = calculate(&inp);
    assert_eq!(path_of(&out, C_BLOCK), native(TOR));
    let (_, lost) = remember(&inp, &out);
    assert!(!lost.contains_key(&net(C_BLOCK)));
}

#[test]
fn a_hold_timer_expiry_or_bfd_failure_falls_back_at_once() {
    let mut inp = tor(PeerHealth::Established);
    let out = calculate(&inp);
    (inp.last, inp.lost_since) = remember(&inp, &out);
    inp.learned.clear();
    // bgp.rs backdates a hold-timer expiry by a hold time.
    inp.peers.get_mut(&ip(TOR)).unwrap().health =
        PeerHealth::DownSince(inp.now - Duration::from_secs(10));
    assert_eq!(row_of(&calculate(&inp), C_BLOCK).path, "vxlan-fallback");
    inp.peers.get_mut(&ip(TOR)).unwrap().health = PeerHealth::Failed(inp.now);
    let out = calculate(&inp);
    let r = row_of(&out, C_BLOCK);
    assert_eq!(r.path, "vxlan-fallback");
    assert!(r.reason.contains("down by BFD"), "{}", r.reason);
}

#[test]
fn a_stale_route_from_a_session_down_past_the_hold_time_is_not_used() {
    // Graceful restart may keep routes of a dead session: not a path.
    let mut inp = tor(PeerHealth::Established);
    inp.peers.get_mut(&ip(TOR)).unwrap().health =
        PeerHealth::DownSince(inp.now - Duration::from_secs(30));
    let out = calculate(&inp);
    assert_eq!(row_of(&out, C_BLOCK).path, "vxlan-fallback");
}

#[test]
fn a_restart_keeps_the_kernels_native_route_while_the_tor_comes_back() {
    // Fresh start: nothing learned yet, the session counts down from now,
    // the last path is what the kernel still had.
    let mut inp = tor(PeerHealth::DownSince(base(EncapMode::Never).now));
    inp.learned.clear();
    inp.last.insert(
        net(C_BLOCK),
        LastPath {
            gateway: ip(TOR),
            peer: None,
        },
    );
    let out = calculate(&inp);
    assert_eq!(path_of(&out, C_BLOCK), native(TOR), "no withdrawal");
    // Without a kernel route nothing is installed yet: fallback waits.
    inp.last.clear();
    let out = calculate(&inp);
    assert_eq!(path_of(&out, C_BLOCK), None);
    assert!(row_of(&out, C_BLOCK)
        .reason
        .starts_with("no BGP path for 0s (hold time 9s)"));
}

#[test]
fn cross_subnet_and_always_ignore_learned_routes() {
    let mut inp = tor(PeerHealth::Established);
    inp.pools[0].vxlan_mode = EncapMode::CrossSubnet;
    let out = calculate(&inp);
    assert_eq!(
        path_of(&out, C_BLOCK),
        Some(Path::Vxlan {
            tunnel_ip: ip("192.168.0.129")
        })
    );
    assert_eq!(row_of(&out, C_BLOCK).path, "vxlan");
    assert!(out.live.is_empty() && out.pathless.is_empty());
    inp.pools[0].vxlan_mode = EncapMode::Always;
    assert_eq!(row_of(&calculate(&inp), C_BLOCK).path, "vxlan");
}

#[test]
fn mesh_routes_never_count_as_learned_paths() {
    let mut inp = tor(PeerHealth::Established);
    inp.peers.clear();
    inp.mesh.insert(ip("10.0.1.2"), PeerHealth::Established);
    inp.learned = vec![learned(C_BLOCK, "10.0.1.2", "10.0.1.2")];
    let out = calculate(&inp);
    assert_eq!(row_of(&out, C_BLOCK).path, "vxlan-fallback");
}

/// The run loop recalculates on its 1 s tick only while `clock_matters`:
/// whenever it says no, a later clock must give the same routes and rows
/// (else an idle node would miss a hold-time expiry).
#[test]
fn the_clock_matters_only_while_a_session_or_a_block_waits_out_the_hold_time() {
    use super::routes_bgp::clock_matters;
    let same_an_hour_later = |inp: &Inputs| {
        let mut later = inp.clone();
        later.now = inp.now + Duration::from_secs(3600);
        let (a, b) = (calculate(inp), calculate(&later));
        a.desired == b.desired && a.rows == b.rows
    };
    // Idle: the mesh session to b and a ToR session Established; the ToR
    // taught c's block (c is off-subnet) and prefixes of the pool outside
    // every block, as the idle bench's external peer does.
    let mut inp = base(EncapMode::Never);
    inp.peers = tor(PeerHealth::Established).peers;
    inp.learned = vec![learned(C_BLOCK, TOR, TOR)];
    for i in 0..8 {
        inp.learned
            .push(learned(&format!("192.168.9.{}/30", i * 4), TOR, TOR));
    }
    let out = calculate(&inp);
    (inp.last, inp.lost_since) = remember(&inp, &out);
    assert!(inp.lost_since.is_empty(), "{:?}", out.rows);
    assert!(!clock_matters(&inp));
    assert!(same_an_hour_later(&inp));

    // b's mesh session drops: its block stays native for the hold time.
    let mut down = inp.clone();
    down.mesh
        .insert(ip("10.0.1.2"), PeerHealth::DownSince(inp.now));
    assert!(clock_matters(&down));
    assert!(!same_an_hour_later(&down));

    // The ToR session drops and its routes go: c's block keeps the last
    // path for the hold time, then falls back; while it has no BGP path
    // its reason counts seconds, so the clock keeps mattering.
    let t0 = inp.now;
    inp.peers.get_mut(&ip(TOR)).unwrap().health = PeerHealth::DownSince(t0);
    inp.learned.clear();
    assert!(clock_matters(&inp));
    assert!(!same_an_hour_later(&inp));
    inp.now = t0 + Duration::from_secs(10);
    let out = calculate(&inp);
    (inp.last, inp.lost_since) = remember(&inp, &out);
    inp.peers.get_mut(&ip(TOR)).unwrap().health = PeerHealth::Established;
    assert!(!inp.lost_since.is_empty());
    assert!(clock_matters(&inp));
}
