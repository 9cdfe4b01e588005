//! BGPPeer fields for ToR peerings, Calico's way: password from a mounted
//! Secret (Tabby's file convention), sourceAddress, numAllowedLocalASNumbers,
//! and their validation at apply time.

use super::cluster::Cluster;
use super::peers::{desired_peers_with, PeerType, Timers};
use super::secrets::Secrets;
use crate::resources::bgp::{BgpConfigurationSpec, BgpPeerSpec};
use crate::resources::meta::{BgpPassword, SecretKeyRef};
use crate::resources::node::{NodeBgpSpec, NodeSpec};
use crate::resources::{AsNumber, BgpConfiguration, BgpPeer, Node, Resource};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

fn timers() -> Timers {
    Timers {
        hold_time: Duration::from_secs(9),
        connect_retry: Duration::from_secs(1),
    }
}

fn node(name: &str, ip: &str) -> Resource {
    Resource::Node(Node::new(
        "Node",
        name,
        NodeSpec {
            bgp: Some(NodeBgpSpec {
                ipv4_address: Some(ip.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
    ))
}

fn pw(name: &str, key: &str) -> Option<BgpPassword> {
    Some(BgpPassword {
        secret_key_ref: Some(SecretKeyRef {
            name: name.into(),
            key: key.into(),
        }),
    })
}

fn tor(name: &str, ip: &str, f: impl FnOnce(&mut BgpPeerSpec)) -> Resource {
    let mut spec = BgpPeerSpec {
        node: Some("a".into()),
        peer_ip: Some(ip.into()),
        as_number: Some(AsNumber(64513)),
        ..Default::default()
    };
    f(&mut spec);
    Resource::BgpPeer(BgpPeer::new("BGPPeer", name, spec))
}

fn cluster(mesh: bool) -> Cluster {
    let mut c = Cluster::default();
    c.insert(node("a", "10.0.1.11/24"));
    c.insert(node("b", "10.0.2.12/24"));
    c.insert(Resource::BgpConfiguration(BgpConfiguration::new(
        "BGPConfiguration",
        "default",
        BgpConfigurationSpec {
            node_to_node_mesh_enabled: Some(mesh),
            node_mesh_password: pw("mesh", "password"),
            ..Default::default()
        },
    )));
    c
}

fn a_ip() -> Ipv4Addr {
    "10.0.1.11".parse().unwrap()
}

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn passwords_come_from_the_mounted_secret_and_a_missing_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("bgp-secrets")).unwrap();
    std::fs::write(dir.path().join("bgp-secrets/rack1"), "tor-key\n").unwrap();
    std::fs::create_dir_all(dir.path().join("mesh")).unwrap();
    std::fs::write(dir.path().join("mesh/password"), "mesh-key").unwrap();
    let secrets = Secrets {
        dir: dir.path().to_path_buf(),
    };
    let mut c = cluster(true);
    c.insert(tor("tor-good", "10.0.1.1", |s| {
        s.password = pw("bgp-secrets", "rack1")
    }));
    c.insert(tor("tor-bad", "10.0.1.2", |s| {
        s.password = pw("bgp-secrets", "rack9")
    }));
    let d = desired_peers_with(&c, "a", a_ip(), timers(), &secrets);
    let good = &d.peers[&addr("10.0.1.1")];
    assert_eq!(good.config.password.as_deref(), Some("tor-key"));
    let mesh = &d.peers[&addr("10.0.2.12")];
    assert_eq!(mesh.peer_type, PeerType::Mesh);
    assert_eq!(mesh.config.password.as_deref(), Some("mesh-key"));
    assert!(
        !d.peers.contains_key(&addr("10.0.1.2")),
        "never a session without its key"
    );
    assert_eq!(d.errors.len(), 1, "{:?}", d.errors);
    let e = &d.errors[0];
    assert!(
        e.contains("BGPPeer tor-bad") && e.contains("secret bgp-secrets key rack9"),
        "{e}"
    );
    // The mesh key missing: no mesh sessions, and said so.
    std::fs::remove_file(dir.path().join("mesh/password")).unwrap();
    let d = desired_peers_with(&c, "a", a_ip(), timers(), &secrets);
    assert!(!d.peers.contains_key(&addr("10.0.2.12")));
    assert!(d.errors.iter().any(|e| e.contains("nodeMeshPassword")));
}

#[test]
fn source_address_and_allowed_local_as_reach_the_speaker() {
    let secrets = Secrets {
        dir: "/nonexistent".into(),
    };
    let mut c = cluster(false);
    c.insert(tor("tor", "10.0.1.1", |s| {
        s.num_allowed_local_as_numbers = Some(2);
        s.ttl_security = Some(1);
    }));
    c.insert(tor("unbound", "10.0.1.2", |s| {
        s.source_address = Some("None".into());
        s.keep_original_next_hop = true;
    }));
    let d = desired_peers_with(&c, "a", a_ip(), timers(), &secrets);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(d.peers.len(), 2, "mesh off: only the BGPPeers");
    let t = &d.peers[&addr("10.0.1.1")].config;
    assert_eq!(t.source_address, Some(IpAddr::V4(a_ip())), "UseNodeIP");
    assert_eq!(t.allow_local_as, 2);
    assert_eq!(t.ttl_security, Some(1));
    let u = &d.peers[&addr("10.0.1.2")].config;
    assert_eq!(u.source_address, None);
    assert_eq!(u.allow_local_as, 0);
    assert_eq!(u.ttl_security, None);
    assert!(u.keep_original_next_hop);
}

#[test]
fn bad_secret_refs_and_counts_are_refused_naming_the_field() {
    let check = |r: Resource| -> Vec<String> {
        let mut r = r;
        crate::resources::validate::validate(&mut r)
            .into_iter()
            .map(|p| p.to_string())
            .collect()
    };
    let p = check(tor("t", "10.0.1.1", |s| {
        s.password = pw("Bad_Name", "ok");
        s.num_allowed_local_as_numbers = Some(300);
    }));
    assert!(
        p.iter()
            .any(|e| e.contains("spec.password.secretKeyRef.name")),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|e| e.contains("spec.numAllowedLocalASNumbers")),
        "{p:?}"
    );
    let p = check(tor("t", "10.0.1.1", |s| s.password = pw("ok", "../x")));
    assert!(
        p.iter()
            .any(|e| e.contains("spec.password.secretKeyRef.key")),
        "{p:?}"
    );
    assert!(check(tor("t", "10.0.1.1", |s| s.password =
        pw("bgp-secrets", "rack.1_a")))
    .is_empty());
    let mut c = BgpConfigurationSpec {
        node_mesh_password: pw("", "k"),
        ..Default::default()
    };
    c.as_number = None;
    let p = check(Resource::BgpConfiguration(BgpConfiguration::new(
        "BGPConfiguration",
        "default",
        c,
    )));
    assert!(
        p.iter()
            .any(|e| e.contains("spec.nodeMeshPassword.secretKeyRef.name")),
        "{p:?}"
    );
}
