//! The route calculation's rules, case by case.

use super::routes::*;
use crate::resources::ippool::EncapMode;
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use tabby_felix_lite::model::{Path, Pool};

/// A prefix of whichever type the place needs (`Ipv4Net`, `IpNet`, ...).
pub(super) fn net<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().unwrap()
}
/// An address of whichever type the place needs.
pub(super) fn ip<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().unwrap()
}

const MAC_A: [u8; 6] = [0x66, 1, 1, 1, 1, 1];
const MAC_B: [u8; 6] = [0x66, 2, 2, 2, 2, 2];
const MAC_C: [u8; 6] = [0x66, 3, 3, 3, 3, 3];

/// Three nodes: a (us) and b on 10.0.1.0/24, c on 10.0.2.0/24 behind a
/// router. Each has one /26 and a VTEP; the pool is vxlanMode Never.
pub(super) fn base(mode: EncapMode) -> Inputs {
    let mut nodes = BTreeMap::new();
    nodes.insert(
        "a".to_string(),
        NodeInfo {
            ip: Some(net("10.0.1.1/24")),
            tunnel_ip: Some(ip("192.168.0.1")),
            mac: Some(MAC_A),
            ..Default::default()
        },
    );
    nodes.insert(
        "b".to_string(),
        NodeInfo {
            ip: Some(net("10.0.1.2/24")),
            tunnel_ip: Some(ip("192.168.0.65")),
            mac: Some(MAC_B),
            ..Default::default()
        },
    );
    nodes.insert(
        "c".to_string(),
        NodeInfo {
            ip: Some(net("10.0.2.3/24")),
            tunnel_ip: Some(ip("192.168.0.129")),
            mac: Some(MAC_C),
            ..Default::default()
        },
    );
    let now = Instant::now();
    Inputs {
        local: Local {
            name: "a".into(),
            ip: Some(net("10.0.1.1/24")),
            interface: "eth0".into(),
            vtep: Some((ip("192.168.0.1"), MAC_A)),
            connected: vec![net("10.0.1.0/24")],
            disable_tx_checksum_offload: false,
            vxlan_mtu: None,
            ip6: None,
            interface6: String::new(),
            vtep6: None,
            vxlan_mtu6: None,
        },
        bgp: true,
        routing: true,
        fallback: true,
        hold_time: Duration::from_secs(9),
        now,
        nodes,
        affinities: vec![
            (net("192.168.0.0/26"), "a".into()),
            (net("192.168.0.64/26"), "b".into()),
            (net("192.168.0.128/26"), "c".into()),
        ],
        pools: vec![PoolInfo {
            cidr: net("192.168.0.0/16"),
            vxlan_mode: mode,
            nat_outgoing: true,
            disabled: false,
        }],
        mesh: HashMap::from([
            (ip("10.0.1.2"), PeerHealth::Established),
            (ip("10.0.2.3"), PeerHealth::Established),
        ]),
        learned: vec![],
        peers: HashMap::new(),
        resolved: HashMap::new(),
        last: HashMap::new(),
        lost_since: HashMap::new(),
    }
}

pub(super) fn path_of(out: &Output, block: &str) -> Option<Path> {
    out.desired
        .routes
        .iter()
        .find(|r| r.cidr == net(block))
        .map(|r| r.path.clone())
}

pub(super) fn row_of<'a>(out: &'a Output, block: &str) -> &'a BlockPathRow {
    out.rows
        .iter()
        .find(|r| r.block == net(block))
        .unwrap_or_else(|| panic!("no row for {block}: {:?}", out.rows))
}

#[test]
fn own_block_is_blackholed_and_pools_vteps_and_local_vxlan_are_filled() {
    let out = calculate(&base(EncapMode::Never));
    assert_eq!(path_of(&out, "192.168.0.0/26"), Some(Path::Blackhole));
    assert_eq!(row_of(&out, "192.168.0.0/26").path, "blackhole");
    assert_eq!(
        out.desired.pools,
        vec![Pool {
            cidr: net("192.168.0.0/16"),
            nat_outgoing: true
        }]
    );
    let vx = out.desired.vxlan.as_ref().expect("local VTEP");
    assert_eq!(vx.parent, "eth0");
    assert_eq!(vx.local_ip, ip::<Ipv4Addr>("10.0.1.1"));
    assert_eq!(vx.tunnel_ip, ip::<Ipv4Addr>("192.168.0.1"));
    assert_eq!(vx.mac, MAC_A);
    let vteps: Vec<(&str, Ipv4Addr, [u8; 6])> = out
        .desired
        .vteps
        .iter()
        .map(|v| (v.node.as_str(), v.node_ip, v.mac))
        .collect();
    assert_eq!(
        vteps,
        vec![("b", ip("10.0.1.2"), MAC_B), ("c", ip("10.0.2.3"), MAC_C)],
        "every remote node, never ourselves"
    );
    assert_eq!(out.desired.node_interface, "eth0");
}

#[test]
fn felix_vxlan_settings_reach_the_local_vtep() {
    let vx = calculate(&base(EncapMode::Never)).desired.vxlan.unwrap();
    assert_eq!(vx.mtu, 0, "unset: felix-lite derives it from the parent");
    assert!(!vx.disable_tx_checksum_offload);
    let mut inp = base(EncapMode::Never);
    inp.local.vxlan_mtu = Some(1400);
    inp.local.disable_tx_checksum_offload = true;
    let vx = calculate(&inp).desired.vxlan.unwrap();
    assert_eq!(vx.mtu, 1400);
    assert!(vx.disable_tx_checksum_offload);
}

#[test]
fn never_with_bgp_routes_natively_via_the_owner_on_a_connected_subnet() {
    let out = calculate(&base(EncapMode::Never));
    assert_eq!(
        path_of(&out, "192.168.0.64/26"),
        Some(Path::Native {
            gateway: ip("10.0.1.2")
        })
    );
    let r = row_of(&out, "192.168.0.64/26");
    assert_eq!(
        (r.node.as_str(), r.path.as_str(), r.via.as_str()),
        ("b", "native", "10.0.1.2")
    );
}

#[test]
fn owner_in_another_subnet_falls_back_to_vxlan_immediately() {
    let out = calculate(&base(EncapMode::Never));
    assert_eq!(
        path_of(&out, "192.168.0.128/26"),
        Some(Path::Vxlan {
            tunnel_ip: ip("192.168.0.129")
        })
    );
    let r = row_of(&out, "192.168.0.128/26");
    assert_eq!(r.path, "vxlan-fallback");
    assert!(
        r.reason.contains("not on a connected subnet"),
        "{}",
        r.reason
    );
}

#[test]
fn a_session_down_within_the_hold_time_stays_native_and_beyond_it_falls_back() {
    let mut inp = base(EncapMode::Never);
    let now = inp.now;
    inp.mesh.insert(
        ip("10.0.1.2"),
        PeerHealth::DownSince(now - Duration::from_secs(5)),
    );
    let out = calculate(&inp);
    assert_eq!(
        path_of(&out, "192.168.0.64/26"),
        Some(Path::Native {
            gateway: ip("10.0.1.2")
        }),
        "5 s down < 9 s hold time"
    );
    inp.mesh.insert(
        ip("10.0.1.2"),
        PeerHealth::DownSince(now - Duration::from_secs(10)),
    );
    let out = calculate(&inp);
    assert_eq!(
        path_of(&out, "192.168.0.64/26"),
        Some(Path::Vxlan {
            tunnel_ip: ip("192.168.0.65")
        })
    );
    let r = row_of(&out, "192.168.0.64/26");
    assert_eq!(r.path, "vxlan-fallback");
    assert!(r.reason.contains("not Established for 10s"), "{}", r.reason);
    // Established again: back to native.
    inp.mesh.insert(ip("10.0.1.2"), PeerHealth::Established);
    assert_eq!(
        path_of(&calculate(&inp), "192.168.0.64/26"),
        Some(Path::Native {
            gateway: ip("10.0.1.2")
        })
    );
}

#[test]
fn fallback_off_leaves_unreachable_blocks_unrouted_and_says_why() {
    let mut inp = base(EncapMode::Never);
    inp.fallback = false;
    inp.mesh.insert(
        ip("10.0.1.2"),
        PeerHealth::DownSince(inp.now - Duration::from_secs(60)),
    );
    let out = calculate(&inp);
    assert_eq!(path_of(&out, "192.168.0.64/26"), None);
    assert_eq!(path_of(&out, "192.168.0.128/26"), None);
    let r = row_of(&out, "192.168.0.64/26");
    assert_eq!(r.path, "none");
    assert!(
        r.reason.contains("TABBY_VXLAN_FALLBACK=false"),
        "{}",
        r.reason
    );
    assert!(row_of(&out, "192.168.0.128/26")
        .reason
        .contains("not on a connected subnet"));
}

#[test]
fn fallback_needs_both_vteps() {
    let mut inp = base(EncapMode::Never);
    inp.nodes.get_mut("c").unwrap().tunnel_ip = None;
    let out = calculate(&inp);
    assert_eq!(path_of(&out, "192.168.0.128/26"), None);
    assert!(row_of(&out, "192.168.0.128/26")
        .reason
        .contains("node c has no VXLAN tunnel address"));
    let mut inp = base(EncapMode::Never);
    inp.local.vtep = None;
    let out = calculate(&inp);
    assert!(out.desired.vxlan.is_none());
    assert!(
        out.desired.vteps.is_empty(),
        "no VTEPs without a local device"
    );
    assert!(row_of(&out, "192.168.0.128/26")
        .reason
        .contains("this node has no VXLAN tunnel address"));
}

#[test]
fn always_uses_the_owners_tunnel_address_for_every_remote_block() {
    let out = calculate(&base(EncapMode::Always));
    for (block, tunnel) in [
        ("192.168.0.64/26", "192.168.0.65"),
        ("192.168.0.128/26", "192.168.0.129"),
    ] {
        assert_eq!(
            path_of(&out, block),
            Some(Path::Vxlan {
                tunnel_ip: ip(tunnel)
            })
        );
        assert_eq!(row_of(&out, block).path, "vxlan");
    }
}

#[test]
fn cross_subnet_is_native_within_the_subnet_and_vxlan_across() {
    let mut inp = base(EncapMode::CrossSubnet);
    // CrossSubnet does not need BGP for the decision.
    inp.bgp = false;
    inp.mesh.clear();
    let out = calculate(&inp);
    assert_eq!(
        path_of(&out, "192.168.0.64/26"),
        Some(Path::Native {
            gateway: ip("10.0.1.2")
        })
    );
    assert_eq!(
        path_of(&out, "192.168.0.128/26"),
        Some(Path::Vxlan {
            tunnel_ip: ip("192.168.0.129")
        })
    );
    assert_eq!(row_of(&out, "192.168.0.128/26").path, "vxlan");
}

#[test]
fn never_without_bgp_installs_nothing_and_backend_none_routes_nothing() {
    let mut inp = base(EncapMode::Never);
    inp.bgp = false;
    inp.mesh.clear();
    let out = calculate(&inp);
    assert_eq!(path_of(&out, "192.168.0.64/26"), None);
    assert!(row_of(&out, "192.168.0.64/26")
        .reason
        .contains("BGP is off"));
    let mut inp = base(EncapMode::Always);
    inp.routing = false;
    let out = calculate(&inp);
    assert_eq!(path_of(&out, "192.168.0.64/26"), None);
    assert_eq!(
        path_of(&out, "192.168.0.0/26"),
        Some(Path::Blackhole),
        "own blocks are still blackholed"
    );
}

#[test]
fn a_remote_block_is_routed_before_any_session_is_up() {
    // Right after a (re)start nothing is Established yet: the first
    // desired state must already hold every remote block.
    let mut inp = base(EncapMode::Never);
    let now = inp.now;
    for h in inp.mesh.values_mut() {
        *h = PeerHealth::DownSince(now);
    }
    let out = calculate(&inp);
    assert_eq!(
        path_of(&out, "192.168.0.64/26"),
        Some(Path::Native {
            gateway: ip("10.0.1.2")
        })
    );
    assert!(path_of(&out, "192.168.0.128/26").is_some());
}

#[test]
fn learned_routes_from_non_mesh_peers_fill_gaps_only() {
    let mut inp = base(EncapMode::Never);
    inp.learned = vec![
        // From a ToR, inside the pool, no known block: installed.
        LearnedRoute {
            prefix: net("192.168.5.0/26"),
            next_hop: Some(ip("10.0.1.254")),
            from_peer: Some(ip("10.0.1.254")),
        },
        // A known block: the affinity decides, not BGP.
        LearnedRoute {
            prefix: net("192.168.0.64/26"),
            next_hop: Some(ip("10.0.1.254")),
            from_peer: Some(ip("10.0.1.254")),
        },
        // From a mesh peer: the affinities already cover the mesh.
        LearnedRoute {
            prefix: net("192.168.6.0/26"),
            next_hop: Some(ip("10.0.1.2")),
            from_peer: Some(ip("10.0.1.2")),
        },
        // Outside every pool: not Tabby's business.
        LearnedRoute {
            prefix: net("10.9.0.0/16"),
            next_hop: Some(ip("10.0.1.254")),
            from_peer: Some(ip("10.0.1.254")),
        },
        // Next hop not connected: reported, not installed.
        LearnedRoute {
            prefix: net("192.168.7.0/26"),
            next_hop: Some(ip("10.7.7.7")),
            from_peer: Some(ip("10.0.1.254")),
        },
    ];
    let out = calculate(&inp);
    assert_eq!(
        path_of(&out, "192.168.5.0/26"),
        Some(Path::Native {
            gateway: ip("10.0.1.254")
        })
    );
    assert_eq!(
        path_of(&out, "192.168.0.64/26"),
        Some(Path::Native {
            gateway: ip("10.0.1.2")
        }),
        "the affinity's owner, not the ToR"
    );
    assert_eq!(path_of(&out, "192.168.6.0/26"), None);
    assert_eq!(path_of(&out, "10.9.0.0/16"), None);
    assert_eq!(path_of(&out, "192.168.7.0/26"), None);
    assert_eq!(row_of(&out, "192.168.7.0/26").path, "none");
    assert_eq!(row_of(&out, "192.168.5.0/26").node, "bgp peer 10.0.1.254");
}

#[test]
fn a_block_is_routed_once_and_unknown_owners_get_no_route() {
    let mut inp = base(EncapMode::Never);
    inp.affinities
        .push((net("192.168.0.64/26"), "zz-other".into()));
    inp.affinities.push((net("192.168.1.0/26"), "ghost".into()));
    let out = calculate(&inp);
    let n = out
        .desired
        .routes
        .iter()
        .filter(|r| r.cidr == net("192.168.0.64/26"))
        .count();
    assert_eq!(n, 1);
    assert_eq!(path_of(&out, "192.168.1.0/26"), None);
    assert!(row_of(&out, "192.168.1.0/26")
        .reason
        .contains("no Node resource"));
}

#[test]
fn output_is_deterministic() {
    let a = calculate(&base(EncapMode::Never));
    let mut inp = base(EncapMode::Never);
    inp.affinities.reverse();
    let b = calculate(&inp);
    assert_eq!(a.desired, b.desired);
    assert_eq!(a.rows, b.rows);
}

#[test]
fn a_session_failed_by_bfd_falls_back_at_once() {
    let mut inp = base(EncapMode::Never);
    inp.mesh.insert(ip("10.0.1.2"), PeerHealth::Failed(inp.now));
    let out = calculate(&inp);
    assert_eq!(
        path_of(&out, "192.168.0.64/26"),
        Some(Path::Vxlan {
            tunnel_ip: ip("192.168.0.65")
        }),
        "no hold-time grace after BFD's verdict"
    );
    let r = row_of(&out, "192.168.0.64/26");
    assert_eq!(r.path, "vxlan-fallback");
    assert!(
        r.reason.contains("BGP session to 10.0.1.2 down by BFD"),
        "{}",
        r.reason
    );
}
