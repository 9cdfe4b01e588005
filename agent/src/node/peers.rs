//! Which BGP sessions this node should have, as confd renders them for
//! BIRD: the node-to-node mesh (every other Node with an IPv4 address) and
//! the BGPPeer resources that select this node (both ways: see
//! `peer_select` for reverse peering and the route-reflector roles).

use super::cluster::{node_ipv4, Cluster};
use super::peer_select::{
    cluster_id, is_rr_client, labels_match, node_at, node_side, reverse_peers, NodeSide,
};
use super::secrets::Secrets;
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
    my_ip: Ipv4Addr,
    timers: Timers,
) -> BTreeMap<IpAddr, DesiredPeer> {
    desired_peers_with(cluster, me, my_ip, timers, &Secrets::from_env()).peers
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
    my_ip: Ipv4Addr,
    timers: Timers,
    secrets: &Secrets,
) -> Desired {
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
            let Some(ip) = node_ipv4(n) else { continue };
            if ip.addr() == my_ip {
                continue;
            }
            let mut c = base(IpAddr::V4(ip.addr()), node_as(cluster, name), timers);
            // confd: `passive on` when the peer's address sorts after ours
            // as a string, so exactly one side connects.
            c.passive = ip.addr().to_string() > my_ip.to_string();
            c.max_restart_time = gr;
            // No pool filter on import (Calico's template says `import
            // all` too): the route calculation ignores what mesh peers
            // announce (their blocks are routed from the affinities), and a
            // filter built from the pools would make every pool change a
            // change of every mesh peer's configuration, which the speaker
            // applies by resetting the session.
            c.source_address = Some(IpAddr::V4(my_ip));
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
                    if let Some(ip) = node_ipv4(n) {
                        let asn = node_as(cluster, name);
                        targets.push((IpAddr::V4(ip.addr()), None, asn, cluster_id(n), peer_type));
                    }
                }
            }
        }
        for (name, n) in reverse_peers(cluster, s, me, my_node) {
            if let Some(ip) = node_ipv4(n) {
                let asn = node_as(cluster, name);
                targets.push((
                    IpAddr::V4(ip.addr()),
                    None,
                    asn,
                    cluster_id(n),
                    PeerType::NodeSpecific,
                ));
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
            if ip == IpAddr::V4(my_ip) || out.contains_key(&ip) {
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
                c.source_address = Some(IpAddr::V4(my_ip));
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::bgp::{BgpConfigurationSpec, BgpPeerSpec};
    use crate::resources::ippool::IpPoolSpec;
    use crate::resources::node::{NodeBgpSpec, NodeSpec};
    use crate::resources::{BgpConfiguration, IpPool, Node, Resource};

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
}
