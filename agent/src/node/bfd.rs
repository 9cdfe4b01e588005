//! Which of this node's BGP sessions run BFD: Calico's BGPPeer
//! `failureDetectionMode: BFDIfDirectlyConnected`, and Tabby's
//! BGPConfiguration `nodeToNodeMeshFailureDetectionMode` for the mesh —
//! both only towards a peer on this node's own subnet (its Node's
//! `bgp.ipv4Address` prefix): single-hop BFD (RFC 5881) needs a direct
//! path, as Calico says ("only supports BFD on directly connected
//! peerings").

use super::cluster::{node_ipv4, Cluster};
use crate::resources::bfd::{settings, wants_bfd};
use crate::resources::Node;
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Mutex;
use tabby_bgp::peer_config::BfdSettings;

/// Peers already told about (the peer set is recomputed on every change).
static SAID_NOT_DIRECT: Mutex<Option<HashSet<IpAddr>>> = Mutex::new(None);

/// BFD for a BGPPeer session with this `failureDetectionMode`.
pub fn for_peer(
    cluster: &Cluster,
    me: &Node,
    peer: IpAddr,
    mode: Option<&str>,
) -> Option<BfdSettings> {
    if !wants_bfd(mode) {
        return None;
    }
    let direct = node_ipv4(me).is_some_and(|net| match peer {
        IpAddr::V4(a) => net.prefix_len() < 32 && net.contains(&a),
        IpAddr::V6(_) => false,
    });
    if !direct {
        let mut said = SAID_NOT_DIRECT.lock().unwrap_or_else(|e| e.into_inner());
        if said.get_or_insert_with(HashSet::new).insert(peer) {
            tracing::info!(
                %peer,
                node_ip = ?node_ipv4(me).map(|n| n.to_string()),
                "BFD not enabled for this peer: failureDetectionMode is BFDIfDirectlyConnected but the peer is not on this node's subnet"
            );
        }
        return None;
    }
    Some(settings(cluster.default_bgp_config().map(|c| &c.spec)))
}

/// BFD for a mesh session, per the default BGPConfiguration.
pub fn for_mesh(cluster: &Cluster, me: &Node, peer: IpAddr) -> Option<BfdSettings> {
    let mode = cluster
        .default_bgp_config()
        .and_then(|c| c.spec.node_to_node_mesh_failure_detection_mode.as_deref());
    for_peer(cluster, me, peer, mode)
}

#[cfg(test)]
mod tests {
    use super::super::peers::{desired_peers, Timers};
    use super::*;
    use crate::resources::bgp::{BgpConfigurationSpec, BgpPeerSpec};
    use crate::resources::node::{NodeBgpSpec, NodeSpec};
    use crate::resources::{AsNumber, BgpConfiguration, BgpPeer, Resource};
    use std::time::Duration;

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

    fn peer(name: &str, ip: &str, mode: &str) -> Resource {
        Resource::BgpPeer(BgpPeer::new(
            "BGPPeer",
            name,
            BgpPeerSpec {
                peer_ip: Some(ip.into()),
                as_number: Some(AsNumber(65100)),
                failure_detection_mode: Some(mode.into()),
                ..Default::default()
            },
        ))
    }

    #[test]
    fn bfd_only_when_asked_and_directly_connected() {
        let mut c = Cluster::default();
        c.insert(node("a", "10.0.0.5/24"));
        c.insert(node("b", "10.0.0.9/24"));
        c.insert(node("far", "10.9.0.9/24"));
        c.insert(peer("tor", "10.0.0.1", "BFDIfDirectlyConnected"));
        c.insert(peer("remote", "10.8.0.1", "BFDIfDirectlyConnected"));
        c.insert(peer("plain", "10.0.0.2", "None"));
        let t = Timers {
            hold_time: Duration::from_secs(9),
            connect_retry: Duration::from_secs(1),
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let p = desired_peers(
            &c,
            "a",
            "10.0.0.5".parse::<std::net::Ipv4Addr>().unwrap(),
            t,
        );
        assert_eq!(p[&ip("10.0.0.1")].config.bfd, Some(BfdSettings::default()));
        assert_eq!(p[&ip("10.8.0.1")].config.bfd, None, "not on our subnet");
        assert_eq!(p[&ip("10.0.0.2")].config.bfd, None, "mode None");
        assert_eq!(
            p[&ip("10.0.0.9")].config.bfd,
            None,
            "mesh BFD is off by default"
        );

        c.insert(Resource::BgpConfiguration(BgpConfiguration::new(
            "BGPConfiguration",
            "default",
            BgpConfigurationSpec {
                node_to_node_mesh_failure_detection_mode: Some("BFDIfDirectlyConnected".into()),
                bfd_minimum_send_interval: Some("100ms".into()),
                bfd_multiplier: Some(4),
                ..Default::default()
            },
        )));
        let p = desired_peers(
            &c,
            "a",
            "10.0.0.5".parse::<std::net::Ipv4Addr>().unwrap(),
            t,
        );
        let want = BfdSettings {
            min_rx: Duration::from_millis(300),
            min_tx: Duration::from_millis(100),
            multiplier: 4,
        };
        assert_eq!(
            p[&ip("10.0.0.9")].config.bfd,
            Some(want),
            "mesh, same subnet"
        );
        assert_eq!(p[&ip("10.9.0.9")].config.bfd, None, "mesh, other subnet");
        assert_eq!(p[&ip("10.0.0.1")].config.bfd, Some(want));
    }
}
