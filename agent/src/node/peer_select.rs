//! Which nodes a BGPPeer concerns, both ways, and the route-reflector
//! roles, as Calico's confd decides them:
//!
//! - a BGPPeer's *node side* (`node`, `nodeSelector`, or every node when
//!   neither is set) says which nodes run the sessions; its *peer side*
//!   (`peerIP`, or `peerSelector` expanded to the selected nodes) says to
//!   whom;
//! - **reverse peering** (unless `reversePeering: Manual`): a node the
//!   peer side selects also peers with every node of the node side, so
//!   the usual `nodeSelector: all()` + `peerSelector: route-reflector ==
//!   'true'` makes each reflector peer with every client without a second
//!   BGPPeer;
//! - a node with `routeReflectorClusterID` is a reflector; its iBGP peers
//!   whose cluster ID is empty or different are its clients (BIRD's `rr
//!   client`), reflectors of the same cluster are non-client peers.

use super::cluster::{node_ipv4, Cluster};
use crate::resources::bgp::BgpPeerSpec;
use crate::resources::Node;
use std::net::{IpAddr, Ipv4Addr};
use tabby_ipam::selector::Selector;

/// How a BGPPeer's node side selected this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeSide {
    /// `node: <name>` or a `nodeSelector` that matches.
    Specific,
    /// Neither set: every node.
    Global,
}

pub fn labels_match(selector: &str, node: &Node) -> bool {
    Selector::parse(selector)
        .map(|s| s.matches(&node.metadata.labels))
        .unwrap_or(false)
}

/// Whether the BGPPeer's node side selects the node `name`.
pub fn node_side(spec: &BgpPeerSpec, name: &str, node: &Node) -> Option<NodeSide> {
    match (&spec.node, &spec.node_selector) {
        (Some(n), _) => (n == name).then_some(NodeSide::Specific),
        (None, Some(sel)) => labels_match(sel, node).then_some(NodeSide::Specific),
        (None, None) => Some(NodeSide::Global),
    }
}

/// The nodes this node peers with because the BGPPeer's `peerSelector`
/// selects it (reverse peering), with their names.
pub fn reverse_peers<'a>(
    cluster: &'a Cluster,
    spec: &BgpPeerSpec,
    me: &str,
    my_node: &Node,
) -> Vec<(&'a str, &'a Node)> {
    if spec.reverse_peering.as_deref() == Some("Manual") {
        return Vec::new();
    }
    let Some(sel) = &spec.peer_selector else {
        return Vec::new();
    };
    if !labels_match(sel, my_node) {
        return Vec::new();
    }
    cluster
        .nodes
        .iter()
        .filter(|(name, n)| name.as_str() != me && node_side(spec, name, n).is_some())
        .map(|(name, n)| (name.as_str(), n))
        .collect()
}

/// `spec.bgp.routeReflectorClusterID`, when set (an empty string is unset,
/// as in Calico).
pub fn cluster_id(node: &Node) -> Option<Ipv4Addr> {
    node.spec
        .bgp
        .as_ref()?
        .route_reflector_cluster_id
        .as_deref()
        .filter(|s| !s.is_empty())?
        .parse()
        .ok()
}

/// The node whose BGP address is `ip`, if any (a `peerIP` may name a
/// node that is itself a reflector).
pub fn node_at(cluster: &Cluster, ip: IpAddr) -> Option<&Node> {
    cluster
        .nodes
        .values()
        .find(|n| node_ipv4(n).is_some_and(|a| IpAddr::V4(a.addr()) == ip))
}

/// Calico's `rr client`: we reflect, the session is iBGP, and the peer is
/// not a reflector of our own cluster.
pub fn is_rr_client(
    my_cluster_id: Option<Ipv4Addr>,
    ibgp: bool,
    peer_cluster_id: Option<Ipv4Addr>,
) -> bool {
    match my_cluster_id {
        Some(mine) => ibgp && peer_cluster_id != Some(mine),
        None => false,
    }
}
