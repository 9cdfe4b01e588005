//! `bgp`: BGP sessions that are not Established, each with its cause —
//! this node's firewall dropping TCP 179, TCP 179 filtered or refused at
//! the peer (an active connect probe tells), an AS mismatch named with
//! both ASes and the resource each comes from, a hold timer expiry, a
//! TCP-MD5 password that likely differs — and whether VXLAN fallback
//! carries the peer's blocks meanwhile (it does not make a down mesh
//! session less of an error: fallback is the spare wheel).
//!
//! Sessions come from the local tabby-node (ListPeers, with the error in
//! parts: kind, NOTIFICATION code, the AS of the peer's OPEN); without
//! tabby-node there is nothing to say here.

mod diagnose;
mod sockets;
#[cfg(test)]
mod tests;

use super::{node_ipv4, Cluster, Ctx, Finding};
use diagnose::{diagnose, AsSource, Probe, Session, MESH};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tabby_felix_lite::firewall::{self, PortBlock};
use tabby_proto::bgp::{ErrorKind, PeerStatus, PeerType, SessionState};

const BGP_PORT: u16 = 179;

pub async fn check(ctx: &Ctx) -> Vec<Finding> {
    let Some(agent) = ctx.agent() else {
        return Vec::new();
    };
    let down: Vec<&PeerStatus> = agent
        .peers
        .iter()
        .filter(|p| p.state() != SessionState::Established)
        .collect();
    if down.is_empty() {
        return Vec::new();
    }
    let local_blocks = read_local_blocks();
    let syn_sent = sockets::syn_sent();
    let my_ip = agent.status.node_ip.split('/').next().unwrap_or_default();
    let mut sessions: Vec<Session> = down
        .iter()
        .map(|p| session(ctx, p, my_ip, &local_blocks, &syn_sent))
        .collect();
    let mut probes = tokio::task::JoinSet::new();
    for (i, s) in sessions.iter().enumerate() {
        if !ctx.opts.probes || !s.needs_probe() {
            continue;
        }
        if let Ok(ip) = s.address.parse::<IpAddr>() {
            let (to, timeout) = (SocketAddr::new(ip, s.port), ctx.opts.probe_timeout);
            probes.spawn(async move { (i, probe(to, timeout).await) });
        }
    }
    while let Some(r) = probes.join_next().await {
        if let Ok((i, p)) = r {
            sessions[i].probe = Some(p);
        }
    }
    sessions.iter().map(diagnose).collect()
}

/// This node's nftables rules that drop TCP 179; none when nft is
/// missing or unreadable (the forward check reports an unreadable nft).
fn read_local_blocks() -> Vec<PortBlock> {
    match firewall::nft_ruleset() {
        Ok(Some(doc)) => firewall::tcp_port_blocks(&doc, BGP_PORT),
        _ => Vec::new(),
    }
}

/// An active TCP connect to the peer, as the speaker would make one.
pub async fn probe(to: SocketAddr, timeout: Duration) -> Probe {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(to)).await {
        Err(_) => Probe::TimedOut(timeout.as_secs().max(1)),
        Ok(Ok(_)) => Probe::Open,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Probe::Refused,
        Ok(Err(e)) => Probe::Failed(e.to_string()),
    }
}

fn session(
    ctx: &Ctx,
    p: &PeerStatus,
    my_ip: &str,
    blocks: &[PortBlock],
    syn_sent: &[std::net::SocketAddrV4],
) -> Session {
    let cfg = p.config.clone().unwrap_or_default();
    let port = match cfg.port {
        0 => BGP_PORT,
        n => u16::try_from(n).unwrap_or(BGP_PORT),
    };
    let cluster = ctx.cluster();
    let node = ctx
        .remote_nodes()
        .find(|n| node_ipv4(n).is_some_and(|a| a.to_string() == cfg.address))
        .map(|n| n.metadata.name.clone());
    let mesh = cfg.peer_type() == PeerType::NodeToNodeMesh;
    let peer_type = match cfg.peer_type() {
        PeerType::NodeToNodeMesh => MESH,
        PeerType::NodeSpecific => "node specific",
        _ => "global",
    };
    let remote_as_source = match (mesh, cluster, &node) {
        (true, Some(c), Some(n)) => as_of(c, n).1,
        (false, Some(c), _) => bgp_peer_for(c, &cfg.address)
            .filter(|p| p.spec.as_number.is_some())
            .map(|p| AsSource::Peer(p.metadata.name.clone()))
            .unwrap_or_else(|| as_of(c, &ctx.node_name).1),
        _ => AsSource::Default,
    };
    let local_as_source = cluster
        .map(|c| as_of(c, &ctx.node_name))
        .unwrap_or((p.local_as, AsSource::Default));
    let fallback_blocks = node.as_ref().map_or(0, |n| {
        ctx.agent().map_or(0, |a| {
            a.status
                .block_paths
                .iter()
                .filter(|r| &r.node == n && r.path == "vxlan-fallback")
                .count()
        })
    });
    let mut node_addresses: Vec<String> = cluster
        .into_iter()
        .flat_map(|c| c.nodes.iter())
        .filter_map(node_ipv4)
        .map(|a| a.to_string())
        .collect();
    node_addresses.sort();
    let notification = matches!(
        p.last_error_kind(),
        ErrorKind::NotificationSent | ErrorKind::NotificationReceived
    )
    .then_some((p.notification_code, p.notification_subcode));
    Session {
        // confd's rule: the peer whose address sorts after ours waits.
        we_connect: !mesh || cfg.address.as_str() < my_ip,
        node,
        peer_type: peer_type.into(),
        state: p.state(),
        last_error: p.last_error.clone(),
        error_kind: p.last_error_kind(),
        error_state: p.last_error_state(),
        notification,
        peer_open_as: (p.peer_open_as != 0).then_some(p.peer_open_as),
        local_as: p.local_as,
        remote_as: cfg.remote_as,
        remote_as_source,
        local_as_source,
        probe: None,
        syn_sent: syn_sent
            .iter()
            .any(|a| a.port() == port && a.ip().to_string() == cfg.address),
        port,
        local_blocks: blocks.to_vec(),
        password: cluster.and_then(|c| password_for(c, &cfg.address, mesh)),
        fallback_blocks,
        node_addresses,
        address: cfg.address,
    }
}

/// A node's AS and where it comes from: its Node, else its own or the
/// default BGPConfiguration, else 64512 (tabby-node's order).
pub fn as_of(c: &Cluster, node: &str) -> (u32, AsSource) {
    if let Some(a) = c
        .nodes
        .iter()
        .find(|n| n.metadata.name == node)
        .and_then(|n| n.spec.bgp.as_ref()?.as_number)
    {
        return (a.0, AsSource::Node(node.into()));
    }
    let own = format!("node.{node}");
    let cfg = c
        .bgp_configs
        .iter()
        .find(|b| b.metadata.name == own)
        .or_else(|| c.bgp_configs.iter().find(|b| b.metadata.name == "default"));
    match cfg.and_then(|b| Some((b.spec.as_number?, b.metadata.name.clone()))) {
        Some((a, name)) => (a.0, AsSource::Config(name)),
        None => (64512, AsSource::Default),
    }
}

fn bgp_peer_for<'a>(c: &'a Cluster, addr: &str) -> Option<&'a crate::resources::BgpPeer> {
    c.bgp_peers.iter().find(|p| {
        p.spec.peer_ip.as_deref().is_some_and(|ip| {
            ip == addr
                || ip
                    .parse::<SocketAddr>()
                    .is_ok_and(|s| s.ip().to_string() == addr)
        })
    })
}

/// Where a TCP-MD5 password for this session is configured, if anywhere.
fn password_for(c: &Cluster, addr: &str, mesh: bool) -> Option<String> {
    let secret = |p: &crate::resources::meta::BgpPassword| {
        p.secret_key_ref
            .as_ref()
            .map(|r| format!("secret {} key {}", r.name, r.key))
    };
    if mesh {
        let d = c
            .bgp_configs
            .iter()
            .find(|b| b.metadata.name == "default")?;
        let pw = d.spec.node_mesh_password.as_ref()?;
        return Some(format!(
            "BGPConfiguration default nodeMeshPassword, {}",
            secret(pw).unwrap_or_default()
        ));
    }
    let p = bgp_peer_for(c, addr)?;
    let pw = p.spec.password.as_ref()?;
    Some(format!(
        "BGPPeer {} password, {}",
        p.metadata.name,
        secret(pw).unwrap_or_default()
    ))
}
