//! `ipam`: `tabbyctl ipam check`'s problems as findings, each on the node
//! it belongs to (the block's affine node, or the node an address was
//! assigned on); problems whose node is gone belong to no node and are
//! reported on every one. Leaks are judged as `ipam check` judges them,
//! with Calico's 15 minute leakGracePeriod, so a pod being created right
//! now is never called leaked. A problem must show in two reads a moment
//! apart: a CNI ADD between the block write and the handle write is not an
//! inconsistency.

use super::super::{Cluster, Ctx, Finding};
use crate::ipam::workloads::live_workloads;
use crate::ipam::DatastoreIpam;
use ipnet::IpNet;
use std::collections::HashSet;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};
use tabby_ipam::check::{check as ipam_check, tunnel_node, LeakCheck, Problem};

const CHECK: &str = "ipam";
pub const LEAK_GRACE: Duration = Duration::from_secs(15 * 60);
const RECHECK: Duration = Duration::from_secs(1);
const FIX_ALL: &str = "tabbyctl ipam check --fix";

/// The node a block is affine to (`host:<node>`).
fn block_host(c: &Cluster, net: &IpNet) -> Option<String> {
    c.blocks
        .iter()
        .find(|b| b.spec.cidr.parse::<IpNet>().ok().as_ref() == Some(net))?
        .spec
        .affinity
        .as_deref()?
        .strip_prefix("host:")
        .map(str::to_string)
}

fn host_of_ip(c: &Cluster, ip: IpAddr) -> Option<String> {
    let net = c
        .blocks
        .iter()
        .filter_map(|b| b.spec.cidr.parse::<IpNet>().ok())
        .find(|n| n.contains(&ip))?;
    block_host(c, &net)
}

/// The node `p` belongs to; None: no node that exists.
fn owner(p: &Problem, c: &Cluster) -> Option<String> {
    match p {
        Problem::UnconfirmedBlock { node, .. } | Problem::DanglingAffinity { node, .. } => {
            Some(node.clone())
        }
        Problem::AffinityOfMissingNode { .. } => None,
        Problem::HandleMismatch {
            actual, recorded, ..
        } => actual
            .keys()
            .chain(recorded.iter().flat_map(|r| r.keys()))
            .find_map(|net| block_host(c, net)),
        Problem::Leaked { ip, handle } => match tunnel_node(handle) {
            Some(_) => None,
            None => host_of_ip(c, *ip),
        },
        Problem::BlockOutsidePools { cidr, .. } => block_host(c, cidr),
        Problem::TunnelNotHeld { node, .. } => Some(node.clone()),
    }
}

/// The finding for one problem.
pub fn finding(p: &Problem) -> Finding {
    let (what, fix) = match p {
        Problem::Leaked { ip, handle } if tunnel_node(handle).is_none() => (
            format!("IP {ip} is leaked: it is still assigned to {handle}, but no pod uses it (a CNI DEL that never came), so the pool loses it"),
            format!("tabbyctl ipam release --ip {ip}"),
        ),
        Problem::Leaked { ip, .. } => (
            format!("{p}: the tunnel address of a deleted node is still assigned"),
            format!("tabbyctl ipam release --ip {ip}"),
        ),
        Problem::UnconfirmedBlock { .. } => (
            format!("{p} (a block claim was interrupted): the node may claim another block instead"),
            FIX_ALL.to_string(),
        ),
        Problem::AffinityOfMissingNode { .. } => (
            format!("{p}: its addresses are neither used nor free"),
            FIX_ALL.to_string(),
        ),
        Problem::DanglingAffinity { .. } => (
            format!("{p} (a block claim was interrupted)"),
            FIX_ALL.to_string(),
        ),
        Problem::HandleMismatch { .. } => (
            format!("{p}: releasing by that handle would free the wrong addresses"),
            FIX_ALL.to_string(),
        ),
        Problem::BlockOutsidePools { in_use: 0, .. } => (
            format!("{p}: nothing can be allocated from it"),
            FIX_ALL.to_string(),
        ),
        Problem::BlockOutsidePools { .. } => (
            format!("{p}: its pods keep their addresses, but no new ones come from it"),
            "nothing to run: the block goes once its pods are deleted (or re-create the pool to keep it)".to_string(),
        ),
        Problem::TunnelNotHeld { node, .. } => (
            format!("{p}: IPAM may hand it to a pod while vxlan.calico carries it"),
            format!("restart tabby-node on {node}: it allocates itself a tunnel address IPAM holds"),
        ),
    };
    Finding::warning(CHECK, what)
        .evidence(format!("tabbyctl ipam check: {p}"))
        .fix(fix)
}

pub async fn check(ctx: &Ctx) -> Vec<Finding> {
    let (Some(ds), Some(cluster)) = (ctx.datastore.clone(), ctx.cluster()) else {
        return Vec::new();
    };
    let nodes: HashSet<String> = cluster
        .nodes
        .iter()
        .map(|n| n.metadata.name.clone())
        .collect();
    let store = DatastoreIpam::new(ds.clone());
    let workloads = live_workloads(ds);
    let read = || async {
        let leaks = LeakCheck {
            workloads: workloads.as_ref(),
            grace: LEAK_GRACE,
            now: SystemTime::now(),
        };
        ipam_check(&store, &nodes, Some(&leaks)).await
    };
    let first = match read().await {
        Ok(p) if p.is_empty() => return Vec::new(),
        Ok(p) => p,
        Err(e) => {
            return vec![Finding::error(CHECK, "IPAM's records cannot be read")
                .evidence(e.to_string())
                .fix("check the datastore (see the datastore findings) and retry")]
        }
    };
    tokio::time::sleep(RECHECK).await;
    let Ok(second) = read().await else {
        return Vec::new();
    };
    first
        .iter()
        .filter(|p| second.contains(p))
        .filter(|p| owner(p, cluster).is_none_or(|n| n == ctx.node_name))
        .map(finding)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leaked_pod_address_is_released_by_address_and_the_rest_by_check_fix() {
        let p = Problem::Leaked {
            ip: "172.30.1.7".parse().unwrap(),
            handle: "k8s-pod-network.abc".into(),
        };
        let f = finding(&p);
        assert!(f.what.starts_with("IP 172.30.1.7 is leaked"), "{}", f.what);
        assert_eq!(f.fix, "tabbyctl ipam release --ip 172.30.1.7");
        assert_eq!(
            f.evidence,
            "tabbyctl ipam check: IP 172.30.1.7 is allocated to k8s-pod-network.abc, which no live workload uses"
        );
        let p = Problem::DanglingAffinity {
            cidr: "172.30.0.64/26".parse().unwrap(),
            node: "n1".into(),
        };
        assert_eq!(finding(&p).fix, FIX_ALL);
    }

    #[test]
    fn problems_belong_to_the_blocks_node_or_to_none() {
        let mut c = Cluster::default();
        let mut b =
            crate::resources::IpamBlock::new("IPAMBlock", "172-30-0-64-26", Default::default());
        b.spec.cidr = "172.30.0.64/26".into();
        b.spec.affinity = Some("host:node-2".into());
        c.blocks.push(b);
        let leak = |ip: &str, h: &str| Problem::Leaked {
            ip: ip.parse().unwrap(),
            handle: h.into(),
        };
        assert_eq!(
            owner(&leak("172.30.0.70", "k8s-pod-network.x"), &c).as_deref(),
            Some("node-2")
        );
        assert_eq!(
            owner(&leak("172.30.0.70", "vxlan-tunnel-addr-gone"), &c),
            None
        );
        let m = Problem::HandleMismatch {
            handle: "h".into(),
            recorded: None,
            actual: [("172.30.0.64/26".parse().unwrap(), 1)].into(),
        };
        assert_eq!(owner(&m, &c).as_deref(), Some("node-2"));
    }
}
