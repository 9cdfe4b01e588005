//! The pod's address from the node's IPAM: automatically from pools
//! (`Ipam.AutoAssign`) or exactly the address an `ipAddrs` annotation asks
//! for (`Ipam.AssignIp`), and undoing that when a later step of ADD fails.

use super::annotations::Assignment;
use super::config::NetConf;
use super::env::CniEnv;
use super::error::{CniError, NODE_REFUSED};
use super::rpc::call;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use tabby_proto::ipam as ip;
use tabby_proto::ipam::ipam_client::IpamClient;
use tonic::transport::Channel;

/// Calico's allocation attributes. The node adds `node` itself: it knows
/// which node it assigns for.
fn attributes(env: &CniEnv) -> HashMap<String, String> {
    HashMap::from([
        ("namespace".to_string(), env.pod_namespace.clone()),
        ("pod".to_string(), env.pod_name.clone()),
        (
            "timestamp".to_string(),
            humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        ),
    ])
}

fn parse_v4(what: &str, s: &str) -> Result<Ipv4Addr, CniError> {
    s.parse().map_err(|_| {
        CniError::new(
            NODE_REFUSED,
            format!("{what} returned {s:?}, not an IPv4 address"),
        )
    })
}

/// Assigns the pod's one IPv4 address to its handle.
pub(super) async fn assign(
    ch: &Channel,
    env: &CniEnv,
    conf: &NetConf,
    wanted: &Assignment,
) -> Result<Ipv4Addr, CniError> {
    let mut c = IpamClient::new(ch.clone());
    let pools = match wanted {
        Assignment::Pools(p) => p.clone(),
        Assignment::Address(addr) => {
            let req = ip::AssignIpRequest {
                ip: addr.to_string(),
                handle_id: env.handle_id(),
                attributes: attributes(env),
                node: conf.nodename.clone(),
            };
            let resp = call("Ipam.AssignIp", c.assign_ip(req)).await?;
            let got = parse_v4("Ipam.AssignIp", &resp.ip)?;
            // The node must not hand out another address than the one
            // the pod asked for.
            if got != *addr {
                return Err(CniError::new(
                    NODE_REFUSED,
                    format!("Ipam.AssignIp was asked for {addr} and returned {got}"),
                ));
            }
            return Ok(got);
        }
    };
    let req = ip::AutoAssignRequest {
        handle_id: env.handle_id(),
        num_ipv4: 1,
        num_ipv6: 0,
        ipv4_pools: pools,
        ipv6_pools: vec![],
        attributes: attributes(env),
        node: conf.nodename.clone(),
    };
    let resp = call("Ipam.AutoAssign", c.auto_assign(req)).await?;
    let Some(first) = resp.ipv4_addresses.first() else {
        // A node from before ipv4_addresses answers in `ipv4` only.
        let hint = if resp.ipv4.is_empty() {
            String::new()
        } else {
            format!(
                " in ipv4_addresses (only ipv4 {:?}: tabby-node is older than this plugin)",
                resp.ipv4
            )
        };
        return Err(CniError::new(
            NODE_REFUSED,
            format!("Ipam.AutoAssign returned no IPv4 address{hint}"),
        ));
    };
    parse_v4("Ipam.AutoAssign", first)
}

/// Undoes this ADD's assignment only (by address, not by handle: should
/// the handle hold an address of an earlier, working ADD, that one stays).
/// Best effort: the original error is what the runtime must see; a leak
/// here is reported by `ipam check`.
pub(super) async fn release_quietly(ch: &Channel, addr: Ipv4Addr) {
    let mut c = IpamClient::new(ch.clone());
    let req = ip::ReleaseIpRequest {
        ip: addr.to_string(),
    };
    if let Err(e) = call("Ipam.ReleaseIp", c.release_ip(req)).await {
        tracing::warn!(error = %e, %addr, "releasing after a failed ADD");
    }
}
