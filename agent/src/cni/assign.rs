//! The pod's address from the node's IPAM: automatically from pools
//! (`Ipam.AutoAssign`) or exactly the address an `ipAddrs` annotation asks
//! for (`Ipam.AssignIp`), and undoing that when a later step of ADD fails.
//! With `assign_ipv6: "true"` one AutoAssign asks for both families: the
//! node's allocator assigns both or neither; with `assign_ipv4: "false"`
//! too it asks for IPv6 only.

use super::annotations::Assignment;
use super::config::NetConf;
use super::env::CniEnv;
use super::error::{CniError, NODE_REFUSED};
use super::rpc::call;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
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

/// The pod's addresses: IPv4, IPv6 or both, as the config asks (at least
/// one: `config` refuses a config that asks for neither).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Assigned {
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
}

impl Assigned {
    fn all(&self) -> impl Iterator<Item = IpAddr> {
        self.v4
            .map(IpAddr::V4)
            .into_iter()
            .chain(self.v6.map(IpAddr::V6))
    }
}

/// Assigns the pod's IPv4 address (and IPv6 one, if the config asks) to
/// its handle. An `ipAddrs` annotation is used as it is, IPv4 only: as in
/// Calico, the annotation's addresses replace automatic assignment.
pub(super) async fn assign(
    ch: &Channel,
    env: &CniEnv,
    conf: &NetConf,
    wanted: &Assignment,
) -> Result<Assigned, CniError> {
    let mut c = IpamClient::new(ch.clone());
    let pools = match wanted {
        Assignment::Pools { v4, v6 } => (v4.clone(), v6.clone()),
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
            return Ok(Assigned {
                v4: Some(got),
                v6: None,
            });
        }
    };
    let (pools, annotated6) = pools;
    let (v4, v6) = (conf.ipam.wants_ipv4(), conf.ipam.wants_ipv6());
    // An ipv6pools annotation replaces the conflist's list.
    let pools6 = match (v6, annotated6) {
        (false, _) => vec![],
        (true, Some(annotated)) => annotated,
        (true, None) => conf.ipam.ipv6_pools.clone(),
    };
    let req = ip::AutoAssignRequest {
        handle_id: env.handle_id(),
        num_ipv4: u32::from(v4),
        num_ipv6: u32::from(v6),
        ipv4_pools: if v4 { pools } else { vec![] },
        ipv6_pools: pools6.clone(),
        attributes: attributes(env),
        node: conf.nodename.clone(),
    };
    let resp = call("Ipam.AutoAssign", c.auto_assign(req))
        .await
        .map_err(|e| ipv6_hint(e, v6, &pools6))?;
    let got4 = match v4.then(|| first_v4(&resp)).transpose() {
        Ok(a) => a,
        Err(e) => {
            // No usable IPv4 but perhaps an IPv6 address: not half a pod.
            let v6 = resp.ipv6_addresses.first().and_then(|s| s.parse().ok());
            release_quietly(ch, &Assigned { v4: None, v6 }).await;
            return Err(e);
        }
    };
    if !v6 {
        return Ok(Assigned { v4: got4, v6: None });
    }
    let got6 = resp.ipv6_addresses.first().and_then(|s| s.parse().ok());
    let Some(got6) = got6 else {
        // The node assigned IPv4 only (one that predates dual stack would):
        // undo it, a half-assigned pod is what all-or-nothing rules out.
        release_quietly(ch, &Assigned { v4: got4, v6: None }).await;
        return Err(CniError::new(
            NODE_REFUSED,
            format!(
                "Ipam.AutoAssign returned no IPv6 address (ipv6_addresses {:?}) though \
                 ipam.assign_ipv6 is \"true\"",
                resp.ipv6_addresses
            ),
        ));
    };
    Ok(Assigned {
        v4: got4,
        v6: Some(got6),
    })
}

/// AutoAssign's IPv4 address.
fn first_v4(resp: &ip::AutoAssignResponse) -> Result<Ipv4Addr, CniError> {
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

/// An AutoAssign refused over IPv6 names the config that asked for it.
fn ipv6_hint(mut e: CniError, v6: bool, pools6: &[String]) -> CniError {
    if v6 && e.msg.contains("IPv6") {
        let pools = if pools6.is_empty() {
            "any IPv6 pool that selects the node".to_string()
        } else {
            format!("{pools6:?}")
        };
        e.msg = format!(
            "{} (the CNI config has ipam.assign_ipv6 \"true\"; IPv6 pools from ipam.ipv6_pools \
             or a cni.projectcalico.org/ipv6pools annotation: {pools}; nothing was assigned)",
            e.msg
        );
    }
    e
}

/// Undoes this ADD's assignment only (by address, not by handle: should
/// the handle hold an address of an earlier, working ADD, that one stays).
/// Best effort: the original error is what the runtime must see; a leak
/// here is reported by `ipam check`.
pub(super) async fn release_quietly(ch: &Channel, got: &Assigned) {
    let mut c = IpamClient::new(ch.clone());
    for addr in got.all() {
        let req = ip::ReleaseIpRequest {
            ip: addr.to_string(),
        };
        if let Err(e) = call("Ipam.ReleaseIp", c.release_ip(req)).await {
            tracing::warn!(error = %e, %addr, "releasing after a failed ADD");
        }
    }
}
