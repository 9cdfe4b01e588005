//! One allocation's verdict, by Calico's rules (`allocationIsValid` and
//! `checkAllocations` in kube-controllers' node controller).

use super::{pod_container, Allocation, Workloads};
use std::collections::HashSet;
use std::fmt;

/// Why an address is no longer in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Its pod does not exist.
    PodGone,
    /// Its pod exists but runs on another node than the address was
    /// handed out for (it was rescheduled).
    OtherNode { pod_node: String },
    /// Its pod is Failed (Evicted included) or Succeeded.
    PodFinished,
    /// Its pod has reported addresses and this one is not among them.
    IpNotListed,
    /// No workload endpoint carries its handle's container ID.
    ContainerGone,
    /// A tunnel address of a node that no longer exists.
    NodeGone,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::PodGone => f.write_str("pod does not exist"),
            Reason::OtherNode { pod_node } => write!(f, "pod was rescheduled to node {pod_node}"),
            Reason::PodFinished => f.write_str("pod has finished (Failed, Evicted or Succeeded)"),
            Reason::IpNotListed => f.write_str("pod no longer lists the address"),
            Reason::ContainerGone => f.write_str("no workload endpoint has its container"),
            Reason::NodeGone => f.write_str("node does not exist"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// In use.
    Valid,
    /// Nothing here can tell: an address under a handle that is neither a
    /// pod's nor a tunnel's, or a pod address without the attributes (or a
    /// source) to look its pod up. Kept, like a valid one, and it keeps a
    /// deleted node's affinities too (Calico: "unknown source").
    Unknown,
    /// Not in use. With `node_gone` the address's node is gone as well and
    /// the leak is confirmed at once; otherwise it is a candidate until the
    /// grace period has passed.
    Leak { reason: Reason, node_gone: bool },
}

impl Verdict {
    pub fn is_leak(&self) -> bool {
        matches!(self, Verdict::Leak { .. })
    }
}

/// Judges one allocation. `nodes` are the nodes that exist.
pub fn judge(a: &Allocation, nodes: &HashSet<String>, w: &Workloads) -> Verdict {
    if let Some(n) = a.tunnel_node() {
        // A tunnel address is the node's own: valid while the node is.
        return if nodes.contains(n) {
            Verdict::Valid
        } else {
            Verdict::Leak {
                reason: Reason::NodeGone,
                node_gone: true,
            }
        };
    }
    let node_gone = a.node.as_ref().is_some_and(|n| !nodes.contains(n));
    let leak = |reason| Verdict::Leak { reason, node_gone };
    if let (Some(ns), Some(pod), Some(pods)) = (&a.namespace, &a.pod, &w.pods) {
        let Some(p) = pods.get(&(ns.clone(), pod.clone())) else {
            return leak(Reason::PodGone);
        };
        if let (Some(pn), Some(an)) = (&p.node, &a.node) {
            if pn != an {
                return leak(Reason::OtherNode {
                    pod_node: pn.clone(),
                });
            }
        }
        if !p.reported {
            return Verdict::Valid;
        }
        if p.finished {
            return leak(Reason::PodFinished);
        }
        return if p.ips.contains(&a.ip) {
            Verdict::Valid
        } else {
            leak(Reason::IpNotListed)
        };
    }
    match (pod_container(&a.handle), &w.containers) {
        (Some(cid), Some(live)) if live.contains(cid) => Verdict::Valid,
        (Some(_), Some(_)) => leak(Reason::ContainerGone),
        _ => Verdict::Unknown,
    }
}

/// Judges a pass's allocations (one verdict each, in order). A deleted
/// node's tunnel addresses are kept while any other address on that node
/// is valid or unknown: Calico only cleans a node up once nothing on it is
/// in use, and the tunnel address goes with the node.
pub fn assess(allocs: &[Allocation], nodes: &HashSet<String>, w: &Workloads) -> Vec<Verdict> {
    let mut verdicts: Vec<Verdict> = allocs.iter().map(|a| judge(a, nodes, w)).collect();
    let busy: HashSet<&str> = allocs
        .iter()
        .zip(&verdicts)
        .filter(|(a, v)| a.tunnel_node().is_none() && !v.is_leak())
        .filter_map(|(a, _)| a.node.as_deref())
        .filter(|n| !nodes.contains(*n))
        .collect();
    for (a, v) in allocs.iter().zip(verdicts.iter_mut()) {
        if a.tunnel_node().is_some_and(|n| busy.contains(n)) {
            *v = Verdict::Valid;
        }
    }
    verdicts
}
