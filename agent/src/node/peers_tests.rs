//! Mesh and BGPPeer selection (`peers.rs`), case by case.

use super::cluster::Cluster;
use super::peers::*;
use crate::resources::bgp::{BgpConfigurationSpec, BgpPeerSpec};
use crate::resources::ippool::IpPoolSpec;
use crate::resources::node::{NodeBgpSpec, NodeSpec};
use crate::resources::AsNumber;
use crate::resources::{BgpConfiguration, IpPool, Node, Resource};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use tabby_bgp::peer_config::DEFAULT_RESTART_TIME;
use tabby_bgp::policy::PrefixFilter;

fn node(name: &str, ip: &str, asn: Option<u32>, labels: &[(&str, &str)]) -> Resource {
    let mut n = Node::new(
        "Node",
        name,
        NodeSpec {
            bgp: Some(NodeBgpSpec {
                ipv4_address: Some(ip.into()),
                as_number: asn.map(AsNumber),
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    n.metadata.labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Resource::Node(n)
}

fn timers() -> Timers {
    Timers {
        hold_time: Duration::from_secs(9),
        connect_retry: Duration::from_secs(1),
    }
}

fn cluster() -> Cluster {
    let mut c = Cluster::default();
    c.insert(node("a", "10.0.0.5/24", None, &[("rack", "r1")]));
    c.insert(node("b", "10.0.0.9/24", Some(65010), &[("rack", "r2")]));
    c.insert(node("c", "10.0.0.11/24", None, &[("rr", "true")]));
    c.insert(Resource::IpPool(IpPool::new(
        "IPPool",
        "p",
        IpPoolSpec {
            cidr: "192.168.0.0/16".into(),
            ..Default::default()
        },
    )));
    c
}

fn a_ip() -> Ipv4Addr {
    "10.0.0.5".parse().unwrap()
}

#[test]
fn mesh_peers_every_other_node_and_one_side_is_passive() {
    let c = cluster();
    let p = desired_peers(&c, "a", a_ip(), timers());
    let b = &p[&"10.0.0.9".parse::<IpAddr>().unwrap()];
    let cc = &p[&"10.0.0.11".parse::<IpAddr>().unwrap()];
    assert_eq!(p.len(), 2);
    assert_eq!(b.peer_type, PeerType::Mesh);
    // confd compares the addresses as strings: "10.0.0.9" > "10.0.0.5"
    // makes us passive towards b, "10.0.0.11" < "10.0.0.5" active
    // towards c (numerically it would be the other way round).
    assert!(b.config.passive);
    assert!(!cc.config.passive);
    assert_eq!(b.config.remote_as, 65010, "the peer's own AS");
    assert_eq!(cc.config.remote_as, 64512, "default AS");
    assert_eq!(b.config.hold_time, 9);
    assert_eq!(b.config.connect_retry, Duration::from_secs(1));
    assert_eq!(
        b.config.error_wait,
        (Duration::from_secs(1), Duration::from_secs(6))
    );
    assert_eq!(b.config.max_restart_time, DEFAULT_RESTART_TIME);
    // `import all`, as Calico's template: the pools are not in it.
    assert_eq!(b.config.import.filter, PrefixFilter::Any);
    assert!(b.config.export.originated);
    assert_eq!(b.config.export.learned, PrefixFilter::Nothing);
    assert_eq!(node_as(&c, "b"), 65010);
    assert_eq!(node_as(&c, "a"), 64512);
}

/// Issue 15 item 6: a pool applied, disabled or deleted used to change
/// every mesh peer's import filter, and the speaker applies a changed
/// peer by resetting its session (Cease 6/2 on every node).
#[test]
fn pool_changes_leave_every_peer_alone() {
    let mut c = cluster();
    let before = desired_peers(&c, "a", a_ip(), timers());
    let pool = |cidr: &str, disabled: bool| {
        Resource::IpPool(IpPool::new(
            "IPPool",
            "extra",
            IpPoolSpec {
                cidr: cidr.into(),
                disabled,
                ..Default::default()
            },
        ))
    };
    c.insert(pool("10.250.0.0/16", false));
    assert_eq!(
        desired_peers(&c, "a", a_ip(), timers()),
        before,
        "pool added"
    );
    c.insert(pool("10.250.0.0/16", true));
    assert_eq!(
        desired_peers(&c, "a", a_ip(), timers()),
        before,
        "pool disabled"
    );
    c.pools.clear();
    assert_eq!(
        desired_peers(&c, "a", a_ip(), timers()),
        before,
        "pools deleted"
    );
}

#[test]
fn mesh_off_and_bgp_peers_select_by_node_and_selector() {
    let mut c = cluster();
    c.insert(Resource::BgpConfiguration(BgpConfiguration::new(
        "BGPConfiguration",
        "default",
        BgpConfigurationSpec {
            node_to_node_mesh_enabled: Some(false),
            as_number: Some(AsNumber(65000)),
            ..Default::default()
        },
    )));
    let peer = |name: &str, spec: BgpPeerSpec| {
        Resource::BgpPeer(crate::resources::BgpPeer::new("BGPPeer", name, spec))
    };
    c.insert(peer(
        "tor",
        BgpPeerSpec {
            peer_ip: Some("10.0.0.1".into()),
            as_number: Some(AsNumber(65100)),
            max_restart_time: Some("30s".into()),
            ..Default::default()
        },
    ));
    c.insert(peer(
        "rack1",
        BgpPeerSpec {
            node_selector: Some("rack == 'r1'".into()),
            peer_ip: Some("10.0.0.2:1790".into()),
            as_number: Some(AsNumber(65101)),
            ..Default::default()
        },
    ));
    c.insert(peer(
        "only-b",
        BgpPeerSpec {
            node: Some("b".into()),
            peer_ip: Some("10.0.0.3".into()),
            ..Default::default()
        },
    ));
    c.insert(peer(
        "to-rr",
        BgpPeerSpec {
            node: Some("a".into()),
            peer_selector: Some("rr == 'true'".into()),
            ..Default::default()
        },
    ));
    let p = desired_peers(&c, "a", a_ip(), timers());
    let get = |s: &str| p.get(&s.parse::<IpAddr>().unwrap());
    assert!(get("10.0.0.9").is_none(), "mesh is off");
    let tor = get("10.0.0.1").expect("global peer");
    assert_eq!(tor.peer_type, PeerType::Global);
    assert_eq!(tor.config.remote_as, 65100);
    assert_eq!(tor.config.max_restart_time, 30);
    let r1 = get("10.0.0.2").expect("selected by rack label");
    assert_eq!(r1.peer_type, PeerType::NodeSpecific);
    assert_eq!(r1.config.port, 1790);
    assert!(get("10.0.0.3").is_none(), "for node b only");
    let rr = get("10.0.0.11").expect("peerSelector expands to node c");
    assert_eq!(rr.peer_type, PeerType::NodeSpecific);
    assert_eq!(rr.config.remote_as, 65000, "BGPConfiguration AS");
    assert_eq!(p.len(), 3);
}

/// `cluster()` with IPv6 addresses: a and b dual stack, d IPv6 only.
fn dual_cluster() -> Cluster {
    let mut c = cluster();
    for (name, v6) in [("a", "fd00::5/64"), ("b", "fd00::9/64")] {
        let n = c.nodes.get_mut(name).unwrap();
        n.spec.bgp.as_mut().unwrap().ipv6_address = Some(v6.into());
    }
    let mut d = node("d", "unused", None, &[]);
    if let Resource::Node(n) = &mut d {
        let b = n.spec.bgp.as_mut().unwrap();
        b.ipv4_address = None;
        b.ipv6_address = Some("fd00::d/64".into());
    }
    c.insert(d);
    c
}

#[test]
fn dual_stack_sessions_carry_ipv6_over_ipv4_and_ipv6_only_nodes_get_ipv6_sessions() {
    use tabby_bgp::wire::types::Family;
    let c = dual_cluster();
    let my = super::session_addrs::MyAddrs {
        v4: Some(a_ip()),
        v6: Some("fd00::5".parse().unwrap()),
    };
    let p = desired_peers(&c, "a", my, timers());
    let to_b = &p[&"10.0.0.9".parse::<IpAddr>().unwrap()].config;
    assert_eq!(to_b.families, [Family::IPV4_UNICAST, Family::IPV6_UNICAST]);
    assert_eq!(to_b.other_family_next_hop, Some("fd00::5".parse().unwrap()));
    // c has no IPv6: still IPv4 over IPv4, IPv6 offered with our next hop
    // (c ignores what it cannot use).
    assert!(p.contains_key(&"10.0.0.11".parse::<IpAddr>().unwrap()));
    // d has no IPv4: an IPv6 session between IPv6 addresses.
    let to_d = &p[&"fd00::d".parse::<IpAddr>().unwrap()].config;
    assert_eq!(to_d.source_address, Some("fd00::5".parse().unwrap()));
    assert_eq!(to_d.families, [Family::IPV6_UNICAST, Family::IPV4_UNICAST]);
    // An IPv4-only node offers only IPv4, as before, and has no session
    // to d (no common family).
    let p4 = desired_peers(&c, "a", a_ip(), timers());
    let to_b = &p4[&"10.0.0.9".parse::<IpAddr>().unwrap()].config;
    assert_eq!(to_b.families, [Family::IPV4_UNICAST]);
    assert_eq!(to_b.other_family_next_hop, None);
    assert!(!p4.keys().any(|a| a.is_ipv6()));
}
