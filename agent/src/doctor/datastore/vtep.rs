//! `vtep`: a Node's `ipv4VXLANTunnelAddr` that is some other host's
//! address — another node's IP, inside a node subnet, or the tunnel
//! address of a second node. Every node routes that node's blocks via the
//! tunnel address on `vxlan.calico`, so traffic meant for the other host
//! is tunnelled instead, or the two nodes' pods become unreachable.
//!
//! tabby-node re-derives its Node's tunnel address from IPAM (handle
//! `vxlan-tunnel-addr-<node>`) only when it starts or its VXLAN pools
//! change, so a bad value stays until someone writes the right one back:
//! the fix writes back the address IPAM holds for the node, or, when IPAM
//! holds none, restarting tabby-node makes it allocate one.

use super::super::{node_ipv4, node_ipv4_net, Cluster, Ctx, Finding};
use crate::resources::Node;
use ipnet::{IpNet, Ipv4Net};
use std::net::Ipv4Addr;
use tabby_ipam::handle::vxlan_tunnel_handle;

const CHECK: &str = "vtep";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    /// `node`'s tunnel address is `other`'s node IP (`other` may be `node`).
    NodeIp {
        node: String,
        addr: Ipv4Addr,
        other: String,
    },
    /// `node`'s tunnel address is inside `other`'s node subnet.
    InSubnet {
        node: String,
        addr: Ipv4Addr,
        other: String,
        subnet: Ipv4Net,
    },
    /// `node` and `other` have the same tunnel address.
    Shared {
        node: String,
        addr: Ipv4Addr,
        other: String,
    },
}

impl Conflict {
    fn nodes(&self) -> (&str, &str) {
        match self {
            Conflict::NodeIp { node, other, .. }
            | Conflict::InSubnet { node, other, .. }
            | Conflict::Shared { node, other, .. } => (node, other),
        }
    }
}

fn tunnel(n: &Node) -> Option<Ipv4Addr> {
    n.spec
        .ipv4_vxlan_tunnel_addr
        .as_deref()?
        .split('/')
        .next()?
        .parse()
        .ok()
}

/// Every conflict among `nodes`' tunnel addresses.
pub fn conflicts(nodes: &[Node]) -> Vec<Conflict> {
    let mut out = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let Some(addr) = tunnel(n) else { continue };
        let node = n.metadata.name.clone();
        if let Some(o) = nodes.iter().find(|o| node_ipv4(o) == Some(addr)) {
            out.push(Conflict::NodeIp {
                node,
                addr,
                other: o.metadata.name.clone(),
            });
            continue;
        }
        let subnet = nodes.iter().find_map(|o| {
            let net = node_ipv4_net(o)?.trunc();
            (net.prefix_len() < 32 && net.contains(&addr)).then_some((o, net))
        });
        if let Some((o, subnet)) = subnet {
            out.push(Conflict::InSubnet {
                node,
                addr,
                other: o.metadata.name.clone(),
                subnet,
            });
            continue;
        }
        if let Some(o) = nodes[i + 1..].iter().find(|o| tunnel(o) == Some(addr)) {
            out.push(Conflict::Shared {
                node,
                addr,
                other: o.metadata.name.clone(),
            });
        }
    }
    out
}

/// The address IPAM holds for `node`'s tunnel handle.
pub fn held(c: &Cluster, node: &str) -> Option<Ipv4Addr> {
    let handle = vxlan_tunnel_handle(node);
    c.blocks.iter().find_map(|b| {
        let IpNet::V4(net) = b.spec.cidr.parse::<IpNet>().ok()? else {
            return None;
        };
        b.spec.allocations.iter().enumerate().find_map(|(ord, a)| {
            let attr = b.spec.attributes.get((*a)? as usize)?;
            (attr.handle_id.as_deref() == Some(handle.as_str()))
                .then(|| Ipv4Addr::from(u32::from(net.network()) + ord as u32))
        })
    })
}

/// How to give `node` back a tunnel address of its own.
pub fn reset_fix(node: &str, held: Option<Ipv4Addr>, bad: Ipv4Addr) -> String {
    match held.filter(|h| *h != bad) {
        Some(h) => format!(
            "tabbyctl get node {node} -o yaml | sed 's/^\\( *ipv4VXLANTunnelAddr:\\).*/\\1 {h}/' | tabbyctl apply -f -"
        ),
        None => format!(
            "restart tabby-node on {node} after removing ipv4VXLANTunnelAddr from its Node: \
             it allocates a tunnel address of its own (IPAM handle {})",
            vxlan_tunnel_handle(node)
        ),
    }
}

fn finding(c: &Conflict, cluster: &Cluster) -> Finding {
    let (what, addr, wrong) = match c {
        Conflict::NodeIp { node, addr, other } if node == other => (
            format!("node {node}'s VXLAN tunnel address {addr} is its own node IP: other nodes' VXLAN routes to its pods loop"),
            *addr,
            node.clone(),
        ),
        Conflict::NodeIp { node, addr, other } => (
            format!("node {node}'s VXLAN tunnel address {addr} is node {other}'s IP: nodes route {node}'s pods via {addr} on vxlan.calico ({other} cannot at all: it is its own address), so {node}'s pods are unreachable over VXLAN"),
            *addr,
            node.clone(),
        ),
        Conflict::InSubnet { node, addr, other, subnet } => (
            format!("node {node}'s VXLAN tunnel address {addr} is inside node {other}'s subnet {subnet}: hosts on that subnet get routed into the tunnel"),
            *addr,
            node.clone(),
        ),
        Conflict::Shared { node, addr, other } => {
            // The one whose IPAM handle does not hold it is the wrong one.
            let wrong = if held(cluster, node) == Some(*addr) { other } else { node };
            (
                format!("nodes {node} and {other} have the same VXLAN tunnel address {addr}: pods on one of them are unreachable over VXLAN"),
                *addr,
                wrong.clone(),
            )
        }
    };
    let held_addr = held(cluster, &wrong);
    Finding::error(CHECK, what)
        .evidence(format!(
            "Node {wrong}: ipv4VXLANTunnelAddr {addr}; IPAM handle {} holds {}",
            vxlan_tunnel_handle(&wrong),
            held_addr.map_or("nothing".to_string(), |h| h.to_string())
        ))
        .fix(reset_fix(&wrong, held_addr, addr))
}

pub fn check(ctx: &Ctx) -> Vec<Finding> {
    let Some(cluster) = ctx.cluster() else {
        return Vec::new();
    };
    conflicts(&cluster.nodes)
        .iter()
        .filter(|c| {
            let (a, b) = c.nodes();
            a == ctx.node_name || b == ctx.node_name
        })
        .map(|c| finding(c, cluster))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::node::{NodeBgpSpec, NodeSpec};

    fn node(name: &str, ip: &str, tunnel: Option<&str>) -> Node {
        let spec = NodeSpec {
            bgp: Some(NodeBgpSpec {
                ipv4_address: Some(ip.into()),
                ..Default::default()
            }),
            ipv4_vxlan_tunnel_addr: tunnel.map(str::to_string),
            ..Default::default()
        };
        Node::new("Node", name, spec)
    }

    #[test]
    fn tunnel_addresses_from_the_pool_are_clean() {
        let nodes = [
            node("n1", "172.31.1.11/24", Some("172.30.0.1")),
            node("n2", "172.31.2.12/24", Some("172.30.0.65")),
            node("n3", "172.31.2.13/24", None),
        ];
        assert!(conflicts(&nodes).is_empty());
    }

    #[test]
    fn another_nodes_ip_its_subnet_or_its_tunnel_address_conflict() {
        let nodes = [
            node("n1", "172.31.1.11/24", Some("172.30.0.1")),
            node("n2", "172.31.2.12/24", Some("172.31.1.11")),
            node("n3", "172.31.2.13/24", Some("172.31.1.99")),
            node("n4", "10.0.0.4/32", Some("172.30.0.1")),
        ];
        let c = conflicts(&nodes);
        assert_eq!(
            c,
            [
                Conflict::Shared {
                    node: "n1".into(),
                    addr: "172.30.0.1".parse().unwrap(),
                    other: "n4".into()
                },
                Conflict::NodeIp {
                    node: "n2".into(),
                    addr: "172.31.1.11".parse().unwrap(),
                    other: "n1".into()
                },
                Conflict::InSubnet {
                    node: "n3".into(),
                    addr: "172.31.1.99".parse().unwrap(),
                    other: "n1".into(),
                    subnet: "172.31.1.0/24".parse().unwrap()
                },
            ]
        );
    }

    #[test]
    fn the_fix_writes_back_what_ipam_holds_or_restarts_the_node() {
        let f = reset_fix(
            "node-2",
            Some("172.30.0.65".parse().unwrap()),
            "172.31.1.11".parse().unwrap(),
        );
        assert_eq!(
            f,
            "tabbyctl get node node-2 -o yaml | sed 's/^\\( *ipv4VXLANTunnelAddr:\\).*/\\1 172.30.0.65/' | tabbyctl apply -f -"
        );
        let f = reset_fix("node-2", None, "172.31.1.11".parse().unwrap());
        assert!(f.starts_with("restart tabby-node on node-2"), "{f}");
    }

    #[test]
    fn the_held_address_is_read_from_the_blocks() {
        use crate::resources::ipam::AllocationAttribute;
        let mut c = Cluster::default();
        let mut b = crate::resources::IpamBlock::new("IPAMBlock", "b", Default::default());
        b.spec.cidr = "172.30.0.64/26".into();
        b.spec.allocations = vec![None, Some(1), Some(0)];
        b.spec.attributes = vec![
            AllocationAttribute {
                handle_id: Some("k8s-pod-network.x".into()),
                ..Default::default()
            },
            AllocationAttribute {
                handle_id: Some("vxlan-tunnel-addr-node-2".into()),
                ..Default::default()
            },
        ];
        c.blocks.push(b);
        assert_eq!(held(&c, "node-2"), Some("172.30.0.65".parse().unwrap()));
        assert_eq!(held(&c, "node-1"), None);
    }
}
