//! The route calculation for IPv6 blocks: the same rules as IPv4, with the
//! owner's IPv6 address as the gateway and the session (IPv4 when both
//! ends have it, RFC 4760) deciding health.

use super::routes::*;
use super::routes_tests::{base, ip, net};
use crate::resources::ippool::EncapMode;
use std::net::Ipv6Addr;
use std::time::Duration;
use tabby_felix_lite::model::Path6;

const MAC6: [u8; 6] = [0x66, 6, 6, 6, 6, 6];

/// `base`'s three nodes, dual stack: a and b on fd00:1::/64, c on
/// fd00:2::/64; an IPv6 pool fd10::/48 (vxlanMode `mode`) with one /122
/// each; every node an IPv6 VTEP.
fn dual(mode: EncapMode) -> Inputs {
    let mut inp = base(EncapMode::Never);
    for (name, addr, tunnel) in [
        ("a", "fd00:1::1/64", "fd10::1"),
        ("b", "fd00:1::2/64", "fd10::41"),
        ("c", "fd00:2::3/64", "fd10::81"),
    ] {
        let n = inp.nodes.get_mut(name).unwrap();
        n.ip6 = Some(net(addr));
        n.tunnel_ip6 = Some(ip(tunnel));
        n.mac6 = Some(MAC6);
    }
    inp.local.ip6 = Some(net("fd00:1::1/64"));
    inp.local.vtep6 = Some((ip("fd10::1"), MAC6));
    inp.local.connected.push(net("fd00:1::/64"));
    inp.affinities.extend([
        (net("fd10::/122"), "a".into()),
        (net("fd10::40/122"), "b".into()),
        (net("fd10::80/122"), "c".into()),
    ]);
    inp.pools.push(PoolInfo {
        cidr: net("fd10::/48"),
        vxlan_mode: mode,
        nat_outgoing: false,
        disabled: false,
    });
    inp
}

fn path6(out: &Output, block: &str) -> Option<Path6> {
    let cidr: ipnet::Ipv6Net = net(block);
    out.desired
        .routes6
        .iter()
        .find(|r| r.cidr == cidr)
        .map(|r| r.path.clone())
}

fn native(gw: &str) -> Option<Path6> {
    Some(Path6::Native { gateway: ip(gw) })
}

fn vxlan(t: &str) -> Option<Path6> {
    Some(Path6::Vxlan { tunnel_ip: ip(t) })
}

#[test]
fn dual_stack_blocks_go_native_via_the_owners_ipv6_address_on_the_ipv4_session() {
    let out = calculate(&dual(EncapMode::Never));
    assert_eq!(path6(&out, "fd10::/122"), Some(Path6::Blackhole));
    assert_eq!(path6(&out, "fd10::40/122"), native("fd00:1::2"));
    let row = out
        .rows
        .iter()
        .find(|r| r.block == net::<ipnet::IpNet>("fd10::40/122"))
        .unwrap();
    assert_eq!(
        (row.path.as_str(), row.via.as_str(), row.reason.as_str()),
        ("native", "fd00:1::2", "BGP mesh peer Established")
    );
    // c is on another IPv6 subnet: the fallback, through its IPv6 VTEP.
    assert_eq!(path6(&out, "fd10::80/122"), vxlan("fd10::81"));
    // IPv4 is untouched by the IPv6 half.
    assert_eq!(out.desired.routes.len(), 3);
    let pools: Vec<String> = out
        .desired
        .pools6
        .iter()
        .map(|p| p.cidr.to_string())
        .collect();
    assert_eq!(pools, ["fd10::/48"]);
    let vx6 = out.desired.vxlan6.as_ref().expect("IPv6 VTEP");
    assert_eq!(vx6.local_ip, ip::<Ipv6Addr>("fd00:1::1"));
    assert_eq!(vx6.tunnel_ip, ip::<Ipv6Addr>("fd10::1"));
    let vteps: Vec<&str> = out.desired.vteps6.iter().map(|v| v.node.as_str()).collect();
    assert_eq!(vteps, ["b", "c"], "every remote IPv6 VTEP, never ours");
}

#[test]
fn the_ipv4_session_down_past_the_hold_time_moves_ipv6_blocks_to_the_tunnel() {
    let mut inp = dual(EncapMode::Never);
    let now = inp.now;
    inp.mesh.insert(
        ip("10.0.1.2"),
        PeerHealth::DownSince(now - Duration::from_secs(5)),
    );
    assert_eq!(path6(&calculate(&inp), "fd10::40/122"), native("fd00:1::2"));
    inp.mesh.insert(
        ip("10.0.1.2"),
        PeerHealth::DownSince(now - Duration::from_secs(20)),
    );
    let out = calculate(&inp);
    assert_eq!(path6(&out, "fd10::40/122"), vxlan("fd10::41"));
    let row = out
        .rows
        .iter()
        .find(|r| r.block == net::<ipnet::IpNet>("fd10::40/122"))
        .unwrap();
    assert_eq!(row.path, "vxlan-fallback");
    assert!(
        row.reason.contains("10.0.1.2 not Established"),
        "{}",
        row.reason
    );
}

#[test]
fn cross_subnet_is_native_within_the_ipv6_subnet_and_vxlan_across() {
    let out = calculate(&dual(EncapMode::CrossSubnet));
    assert_eq!(path6(&out, "fd10::40/122"), native("fd00:1::2"));
    assert_eq!(path6(&out, "fd10::80/122"), vxlan("fd10::81"));
    let out = calculate(&dual(EncapMode::Always));
    assert_eq!(path6(&out, "fd10::40/122"), vxlan("fd10::41"));
}

#[test]
fn ipv6_only_nodes_take_their_health_from_the_ipv6_session() {
    let mut inp = dual(EncapMode::Never);
    for n in inp.nodes.values_mut() {
        n.ip = None;
        n.tunnel_ip = None;
    }
    inp.local.ip = None;
    inp.local.vtep = None;
    inp.affinities.retain(|(b, _)| !b.addr().is_ipv4());
    inp.pools.retain(|p| !p.cidr.addr().is_ipv4());
    inp.mesh.clear();
    inp.mesh.insert(ip("fd00:1::2"), PeerHealth::Established);
    let out = calculate(&inp);
    assert_eq!(path6(&out, "fd10::40/122"), native("fd00:1::2"));
    assert!(out.desired.routes.is_empty() && out.desired.vxlan.is_none());
    // No session to b at all: nothing native, the tunnel at once.
    inp.mesh.clear();
    let out = calculate(&inp);
    assert_eq!(path6(&out, "fd10::40/122"), vxlan("fd10::41"));
}

#[test]
fn a_learned_ipv6_route_needs_an_ipv6_next_hop() {
    let mut inp = dual(EncapMode::Never);
    inp.mesh.clear();
    let tor: std::net::IpAddr = ip("10.0.1.254");
    inp.peers.insert(
        tor,
        BgpPeerInfo {
            kind: "node specific".into(),
            asn: 64513,
            health: PeerHealth::Established,
        },
    );
    inp.learned = vec![
        LearnedRoute {
            prefix: net("fd10::80/122"),
            next_hop: Some(ip("fd00:1::fe")),
            from_peer: Some(tor),
        },
        // An IPv4 next hop for an IPv6 prefix is never used.
        LearnedRoute {
            prefix: net("fd10::40/122"),
            next_hop: Some(ip("10.0.1.254")),
            from_peer: Some(tor),
        },
    ];
    let out = calculate(&inp);
    assert_eq!(path6(&out, "fd10::80/122"), native("fd00:1::fe"));
    assert!(
        !matches!(path6(&out, "fd10::40/122"), Some(Path6::Native { .. })),
        "{:?}",
        out.rows
    );
}
