//! Which BGP sessions this node should have, as confd renders them for
//! BIRD: the node-to-node mesh (every other Node with an address of a
//! family this node has: `session_addrs`) and
//! the BGPPeer resources that select this node (both ways: see
//! `peer_select` for reverse peering and the route-reflector roles).

use super::cluster::Cluster;
use super::peer_select::{
    cluster_id, is_rr_client, labels_match, node_at, node_side, reverse_peers, NodeSide,
};
use super::secrets::Secrets;
use super::session_addrs::MyAddrs;
use crate::resources::duration::parse_go_duration;
use crate::resources::meta::BgpPassword;
use crate::resources::AsNumber;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use tabby_bgp::peer_config::{PeerConfig, DEFAULT_RESTART_TIME};
use tabby_bgp::policy::{ExportPolicy, PrefixFilter};
use tabby_bgp::wire::types::Family;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerType {
    Mesh,
    Global,
    NodeSpecific,
}

impl PeerType {
    /// As `calicoctl node status` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerType::Mesh => "node-to-node mesh",
            PeerType::Global => "global",
            PeerType::NodeSpecific => "node specific",
        }
    }

    /// As the `Bgp` service's ListPeers reports it.
    pub fn to_bgp_proto(self) -> tabby_proto::bgp::PeerType {
        use tabby_proto::bgp::PeerType as Pb;
        match self {
            PeerType::Mesh => Pb::NodeToNodeMesh,
            PeerType::Global => Pb::Global,
            PeerType::NodeSpecific => Pb::NodeSpecific,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DesiredPeer {
    pub config: PeerConfig,
    pub peer_type: PeerType,
}

/// Timers from the environment (`TABBY_BGP_*`).
#[derive(Debug, Clone, Copy)]
pub struct Timers {
    pub hold_time: Duration,
    pub connect_retry: Duration,
}

/// AS from the Node, else BGPConfiguration, else 64512.
pub fn node_as(cluster: &Cluster, name: &str) -> u32 {
    cluster
        .nodes
        .get(name)
        .and_then(|n| n.spec.bgp.as_ref()?.as_number)
        .or_else(|| cluster.bgp_config(name)?.spec.as_number)
        .unwrap_or(AsNumber::DEFAULT)
        .0
}

/// BIRD's `graceful restart time`: nodeMeshMaxRestartTime / maxRestartTime,
/// 120 s by default.
fn restart_time(text: Option<&str>) -> u16 {
    text.and_then(|t| parse_go_duration(t).ok())
        .map(|d| d.as_secs().min(u64::from(u16::MAX)) as u16)
        .unwrap_or(DEFAULT_RESTART_TIME)
}

fn base(addr: IpAddr, asn: u32, t: Timers) -> PeerConfig {
    let mut c = PeerConfig::new(addr, asn);
    c.hold_time = t.hold_time.as_secs().min(u64::from(u16::MAX)) as u16;
    c.connect_retry = t.connect_retry;
    // Calico's `error wait time 5,30` is 1x and 6x its connect retry (5 s):
    // keep that ratio so short lab timers also recover quickly.
    c.error_wait = (t.connect_retry, t.connect_retry * 6);
    c.families = vec![Family::IPV4_UNICAST];
    // Only our own blocks leave this node, never another node's.
    c.export = ExportPolicy {
        originated: true,
        learned: PrefixFilter::Nothing,
        add_communities: Vec::new(),
    };
    c
}

/// The session's own family, and the other one when we have an address of
/// it to give as its next hop (IPv6 over an IPv4 session, RFC 4760): an
/// IPv4-only node offers what it always did.
fn set_families(c: &mut PeerConfig, my: MyAddrs) {
    let (own, other) = match c.address {
        IpAddr::V4(_) => (Family::IPV4_UNICAST, Family::IPV6_UNICAST),
        IpAddr::V6(_) => (Family::IPV6_UNICAST, Family::IPV4_UNICAST),
    };
    c.other_family_next_hop = my.other_family(c.address);
    c.families = vec![own];
    if c.other_family_next_hop.is_some() {
        c.families.push(other);
    }
}

/// `peerIP` may carry a port (`10.0.0.1:1790`).
fn parse_peer_ip(s: &str) -> Option<(IpAddr, Option<u16>)> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some((ip, None));
    }
    s.parse::<SocketAddr>()
        .ok()
        .map(|sa| (sa.ip(), Some(sa.port())))
}

/// One session a BGPPeer asks for: address, port, AS, the peer's cluster
/// ID when it is a node, and how the peer was selected.
type Target = (IpAddr, Option<u16>, u32, Option<Ipv4Addr>, PeerType);

/// Every session this node should run, keyed by peer address (passwords
/// from no secrets directory: tests of everything else).
pub fn desired_peers(
    cluster: &Cluster,
    me: &str,
    my: impl Into<MyAddrs>,
    timers: Timers,
) -> BTreeMap<IpAddr, DesiredPeer> {
    desired_peers_with(cluster, me, my, timers, &Secrets::from_env()).peers
}

/// The sessions, and the peers left out because their password cannot be
/// read (a session without its TCP-MD5 key could never come up, and would
/// hide why).
#[derive(Debug, Default)]
pub struct Desired {
    pub peers: BTreeMap<IpAddr, DesiredPeer>,
    pub errors: Vec<String>,
}

fn password(
    secrets: &Secrets,
    pw: Option<&BgpPassword>,
    what: &str,
    errors: &mut Vec<String>,
) -> Result<Option<String>, ()> {
    let Some(r) = pw.and_then(|p| p.secret_key_ref.as_ref()) else {
        return Ok(None);
    };
    secrets.read(r).map(Some).map_err(|e| {
        errors.push(format!("{what}: password {e}"));
    })
}

pub fn desired_peers_with(
    cluster: &Cluster,
    me: &str,
    my: impl Into<MyAddrs>,
    timers: Timers,
    secrets: &Secrets,
) -> Desired {
    let my: MyAddrs = my.into();
    let mut d = Desired::default();
    let out = &mut d.peers;
    let Some(my_node) = cluster.nodes.get(me) else {
        return d;
    };
    let mesh = cluster
        .default_bgp_config()
        .is_none_or(|c| c.spec.mesh_enabled());
    let my_cluster = cluster_id(my_node);
    let my_as = node_as(cluster, me);
    let mesh_pw = if mesh && my_cluster.is_none() {
        password(
            secrets,
            cluster
                .default_bgp_config()
                .and_then(|c| c.spec.node_mesh_password.as_ref()),
            "node-to-node mesh (BGPConfiguration default nodeMeshPassword)",
            &mut d.errors,
        )
    } else {
        Ok(None)
    };
    if mesh && my_cluster.is_none() && mesh_pw.is_ok() {
        let gr = restart_time(
            cluster
                .default_bgp_config()
                .and_then(|c| c.spec.node_mesh_max_restart_time.as_deref()),
        );
        for (name, n) in &cluster.nodes {
            // A reflector runs no mesh session, so none is set up to it.
            if name == me || cluster_id(n).is_some() {
                continue;
            }
            let Some(ip) = my.session_to(n) else { continue };
            let Some(mine) = my.same_family(ip).filter(|m| *m != ip) else {
                continue;
            };
            let mut c = base(ip, node_as(cluster, name), timers);
            // confd: `passive on` when the peer's address sorts after ours
            // as a string, so exactly one side connects.
            c.passive = ip.to_string() > mine.to_string();
            c.max_restart_time = gr;
            // No pool filter on import (Calico's template says `import
            // all` too): the route calculation ignores what mesh peers
            // announce (their blocks are routed from the affinities), and a
            // filter built from the pools would make every pool change a
            // change of every mesh peer's configuration, which the speaker
            // applies by resetting the session.
            c.source_address = Some(mine);
            set_families(&mut c, my);
            c.bfd = super::bfd::for_mesh(cluster, my_node, c.address);
            c.password = mesh_pw.clone().unwrap_or_default();
            out.insert(
                c.address,
                DesiredPeer {
                    config: c,
                    peer_type: PeerType::Mesh,
                },
            );
        }
    }
    for p in cluster.peers.values() {
        let s = &p.spec;
        let gr = restart_time(s.max_restart_time.as_deref());
        let mut targets: Vec<Target> = Vec::new();
        if let Some(side) = node_side(s, me, my_node) {
            let peer_type = match side {
                NodeSide::Specific => PeerType::NodeSpecific,
                NodeSide::Global => PeerType::Global,
            };
            if let Some((ip, port)) = s.peer_ip.as_deref().and_then(parse_peer_ip) {
                let asn = s.as_number.map(|a| a.0).unwrap_or(my_as);
                let cid = node_at(cluster, ip).and_then(cluster_id);
                targets.push((ip, port, asn, cid, peer_type));
            }
            if let Some(sel) = &s.peer_selector {
                for (name, n) in &cluster.nodes {
                    if name == me || !labels_match(sel, n) {
                        continue;
                    }
                    if let Some(ip) = my.session_to(n) {
                        let asn = node_as(cluster, name);
                        targets.push((ip, None, asn, cluster_id(n), peer_type));
                    }
                }
            }
        }
        for (name, n) in reverse_peers(cluster, s, me, my_node) {
            if let Some(ip) = my.session_to(n) {
                let asn = node_as(cluster, name);
                targets.push((ip, None, asn, cluster_id(n), PeerType::NodeSpecific));
            }
        }
        if targets.is_empty() {
            continue;
        }
        // Only a BGPPeer that concerns this node needs its secret here.
        let what = format!("BGPPeer {}", p.metadata.name);
        let Ok(pw) = password(secrets, s.password.as_ref(), &what, &mut d.errors) else {
            continue;
        };
        for (ip, port, asn, peer_cluster, peer_type) in targets {
            // A peer of a family we have no address of cannot be reached
            // from us (BIRD would refuse the protocol the same way).
            let Some(mine) = my.same_family(ip) else {
                continue;
            };
            if mine == ip || out.contains_key(&ip) {
                continue;
            }
            let mut c = base(ip, asn, timers);
            c.max_restart_time = gr;
            c.keep_original_next_hop = s.keep_original_next_hop;
            c.route_reflector_client = is_rr_client(my_cluster, asn == my_as, peer_cluster);
            if my_cluster.is_some() && asn == my_as {
                // A reflector passes on what it learned over iBGP; the
                // RIB's RFC 4456 rules decide to whom.
                c.export.learned = PrefixFilter::Any;
            }
            if let Some(port) = port {
                c.port = port;
            }
            let mode = s.failure_detection_mode.as_deref();
            c.bfd = super::bfd::for_peer(cluster, my_node, ip, mode);
            c.password = pw.clone();
            // Calico's default UseNodeIP: the session's source is the node
            // IP; None lets the kernel choose.
            if s.source_address.as_deref() != Some("None") {
                c.source_address = Some(mine);
            }
            set_families(&mut c, my);
            // Validated to fit at apply time.
            // Calico's template tests it as a Go value: 0 is off.
            c.ttl_security = s.ttl_security.filter(|h| *h > 0);
            c.allow_local_as = s
                .num_allowed_local_as_numbers
                .map_or(0, |n| n.min(u32::from(u8::MAX)) as u8);
            out.insert(
                ip,
                DesiredPeer {
                    config: c,
                    peer_type,
                },
            );
        }
    }
    d
}
