//! Route-reflector peering and reverse peerings, as `desired_peers` builds
//! them from Calico's documented configuration.

use super::cluster::Cluster;
use super::peers::{desired_peers, DesiredPeer, PeerType, Timers};
use crate::resources::bgp::{BgpConfigurationSpec, BgpPeerSpec};
use crate::resources::node::{NodeBgpSpec, NodeSpec};
use crate::resources::{parse_documents, validate::validate};
use crate::resources::{AsNumber, BgpConfiguration, BgpPeer, Node, Resource};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use tabby_bgp::policy::PrefixFilter;

const CLUSTER_ID: &str = "244.0.0.1";

fn node(name: &str, ip: &str, cluster_id: Option<&str>) -> Resource {
    let mut n = Node::new(
        "Node",
        name,
        NodeSpec {
            bgp: Some(NodeBgpSpec {
                ipv4_address: Some(format!("{ip}/24")),
                route_reflector_cluster_id: cluster_id.map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    if cluster_id.is_some() {
        n.metadata
            .labels
            .insert("route-reflector".into(), "true".into());
    }
    Resource::Node(n)
}

fn peer(name: &str, spec: BgpPeerSpec) -> Resource {
    Resource::BgpPeer(BgpPeer::new("BGPPeer", name, spec))
}

/// Calico's documented route-reflector setup: 2 reflectors (r1, r2) of one
/// cluster, 2 clients (a, b), the mesh off, one BGPPeer from every node
/// to the reflectors.
fn rr_cluster(mesh: bool, reverse: Option<&str>) -> Cluster {
    let mut c = Cluster::default();
    c.insert(node("a", "10.0.0.1", None));
    c.insert(node("b", "10.0.0.2", None));
    c.insert(node("r1", "10.0.0.3", Some(CLUSTER_ID)));
    c.insert(node("r2", "10.0.0.4", Some(CLUSTER_ID)));
    c.insert(Resource::BgpConfiguration(BgpConfiguration::new(
        "BGPConfiguration",
        "default",
        BgpConfigurationSpec {
            node_to_node_mesh_enabled: Some(mesh),
            as_number: Some(AsNumber(64512)),
            ..Default::default()
        },
    )));
    c.insert(peer(
        "peer-with-route-reflectors",
        BgpPeerSpec {
            node_selector: Some("all()".into()),
            peer_selector: Some("route-reflector == 'true'".into()),
            reverse_peering: reverse.map(str::to_string),
            ..Default::default()
        },
    ));
    c
}

fn peers_of(c: &Cluster, me: &str, ip: &str) -> BTreeMap<IpAddr, DesiredPeer> {
    let t = Timers {
        hold_time: Duration::from_secs(9),
        connect_retry: Duration::from_secs(1),
    };
    desired_peers(c, me, ip.parse::<Ipv4Addr>().unwrap(), t)
}

fn addrs(p: &BTreeMap<IpAddr, DesiredPeer>) -> Vec<String> {
    p.keys().map(|a| a.to_string()).collect()
}

#[test]
fn clients_peer_only_with_the_reflectors_and_do_not_reflect() {
    let c = rr_cluster(false, None);
    let p = peers_of(&c, "a", "10.0.0.1");
    assert_eq!(addrs(&p), ["10.0.0.3", "10.0.0.4"]);
    for d in p.values() {
        assert_eq!(d.peer_type, PeerType::NodeSpecific);
        assert!(
            !d.config.route_reflector_client,
            "a client reflects nothing"
        );
        assert_eq!(d.config.export.learned, PrefixFilter::Nothing);
        assert!(d.config.export.originated);
    }
}

#[test]
fn a_reflector_peers_with_every_client_by_reverse_peering() {
    let c = rr_cluster(false, None);
    let p = peers_of(&c, "r1", "10.0.0.3");
    assert_eq!(addrs(&p), ["10.0.0.1", "10.0.0.2", "10.0.0.4"]);
    for client in ["10.0.0.1", "10.0.0.2"] {
        let d = &p[&client.parse::<IpAddr>().unwrap()];
        assert!(d.config.route_reflector_client, "{client} is an rr client");
        assert_eq!(d.config.export.learned, PrefixFilter::Any);
        assert_eq!(d.peer_type, PeerType::NodeSpecific);
    }
    let r2 = &p[&"10.0.0.4".parse::<IpAddr>().unwrap()];
    assert!(
        !r2.config.route_reflector_client,
        "same cluster ID: a non-client peer"
    );
    assert_eq!(r2.config.export.learned, PrefixFilter::Any);
}

#[test]
fn manual_reverse_peering_leaves_the_reflector_to_its_own_peers() {
    let c = rr_cluster(false, Some("Manual"));
    // r1 is selected by nodeSelector all() too, so it still peers with r2.
    assert_eq!(addrs(&peers_of(&c, "r1", "10.0.0.3")), ["10.0.0.4"]);
    assert_eq!(
        addrs(&peers_of(&c, "a", "10.0.0.1")),
        ["10.0.0.3", "10.0.0.4"]
    );
}

#[test]
fn a_reflector_of_another_cluster_is_a_client() {
    let mut c = rr_cluster(false, None);
    c.insert(node("r2", "10.0.0.4", Some("244.0.0.2")));
    let p = peers_of(&c, "r1", "10.0.0.3");
    assert!(
        p[&"10.0.0.4".parse::<IpAddr>().unwrap()]
            .config
            .route_reflector_client
    );
}

#[test]
fn with_the_mesh_on_reflectors_stay_out_of_it() {
    let c = rr_cluster(true, None);
    let p = peers_of(&c, "a", "10.0.0.1");
    let types: Vec<(String, PeerType)> = p
        .iter()
        .map(|(a, d)| (a.to_string(), d.peer_type))
        .collect();
    assert_eq!(
        types,
        [
            ("10.0.0.2".to_string(), PeerType::Mesh),
            ("10.0.0.3".to_string(), PeerType::NodeSpecific),
            ("10.0.0.4".to_string(), PeerType::NodeSpecific),
        ]
    );
    // The reflector skips the mesh even though it is on.
    assert_eq!(
        addrs(&peers_of(&c, "r1", "10.0.0.3")),
        ["10.0.0.1", "10.0.0.2", "10.0.0.4"]
    );
}

#[test]
fn an_ebgp_peer_of_a_reflector_is_no_client_and_gets_only_our_blocks() {
    let mut c = rr_cluster(false, None);
    c.insert(peer(
        "tor",
        BgpPeerSpec {
            node: Some("r1".into()),
            peer_ip: Some("10.0.0.254".into()),
            as_number: Some(AsNumber(65001)),
            ..Default::default()
        },
    ));
    let p = peers_of(&c, "r1", "10.0.0.3");
    let tor = &p[&"10.0.0.254".parse::<IpAddr>().unwrap()];
    assert!(!tor.config.route_reflector_client);
    assert_eq!(tor.config.export.learned, PrefixFilter::Nothing);
}

#[test]
fn reverse_peering_must_be_auto_or_manual() {
    let check = |v: &str| -> Vec<String> {
        let y = format!(
            "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {{name: p}}\nspec: {{peerSelector: all(), reversePeering: {v}}}\n"
        );
        let mut r = parse_documents("t.yaml", &y).unwrap().remove(0).resource;
        validate(&mut r).iter().map(|p| p.to_string()).collect()
    };
    assert!(check("Manual").is_empty());
    assert!(check("Auto").is_empty());
    let bad = check("Sometimes");
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(
        bad[0].contains("spec.reversePeering") && bad[0].contains("Auto, Manual"),
        "{bad:?}"
    );
}
