//! IPAM garbage collection as calico-kube-controllers' node controller does
//! it (`kube-controllers/pkg/controllers/node/ipam.go`), as pure logic: the
//! caller reads the blocks, the nodes and the workloads, and this module
//! says what is leaked and what may be released. `tabbyctl ipam check` and
//! `tabby-node controllers` both judge through it, so they agree.
//!
//! - [`judge`]: one allocation's verdict ([`Verdict`]), and [`assess`] for a
//!   whole pass (tunnel addresses of a deleted node wait for the node's
//!   other allocations).
//! - [`candidates`]: the grace period across passes, tracked in memory as
//!   Calico does, and its one-shot stand-in from the `timestamp` attribute.
//! - [`plan`]: from confirmed leaks to releases (every address of a handle
//!   must be a leak), the deleted nodes whose affinities can go, and the
//!   re-check against freshly read state right before releasing.

pub mod candidates;
pub mod judge;
pub mod plan;
#[cfg(test)]
mod tests;

pub use candidates::{confirmed_by_age, Candidates};
pub use judge::{assess, judge, Reason, Verdict};
pub use plan::{plan, recheck, Plan, Release};

use crate::block::Block;
use crate::handle::{POD_HANDLE_PREFIX, TUNNEL_HANDLE_PREFIXES};
use ipnet::IpNet;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

/// One allocated address, as the GC sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub ip: IpAddr,
    pub handle: String,
    pub block: IpNet,
    /// The `node` attribute, else the block's host: the node the address
    /// was handed out for (Calico's `allocation.node()`).
    pub node: Option<String>,
    pub namespace: Option<String>,
    pub pod: Option<String>,
    /// The `timestamp` attribute, in seconds since the epoch.
    pub timestamp: Option<i64>,
}

/// What identifies an allocation from one pass to the next.
pub type AllocKey = (IpAddr, String);

impl Allocation {
    pub fn key(&self) -> AllocKey {
        (self.ip, self.handle.clone())
    }

    /// The node a tunnel address belongs to, from its handle.
    pub fn tunnel_node(&self) -> Option<&str> {
        tunnel_node(&self.handle)
    }

    /// The node this allocation counts against when deciding whether a
    /// deleted node still has live addresses.
    pub fn owner_node(&self) -> Option<&str> {
        self.tunnel_node().or(self.node.as_deref())
    }
}

/// The node a tunnel address handle (`vxlan-tunnel-addr-<node>` etc.)
/// belongs to.
pub fn tunnel_node(handle: &str) -> Option<&str> {
    TUNNEL_HANDLE_PREFIXES
        .iter()
        .find_map(|p| handle.strip_prefix(p))
}

/// The container ID of a pod handle (`k8s-pod-network.<containerID>`).
pub fn pod_container(handle: &str) -> Option<&str> {
    handle.strip_prefix(POD_HANDLE_PREFIX)
}

/// Every allocated address in `blocks` that has a handle, in block order.
pub fn allocations<'a>(blocks: impl IntoIterator<Item = &'a Block>) -> Vec<Allocation> {
    let mut out = Vec::new();
    for b in blocks {
        for (o, a) in b.allocations.iter().enumerate() {
            let Some(attr) = a.and_then(|i| b.attributes.get(i as usize)) else {
                continue;
            };
            let (Some(handle), Some(ip)) = (attr.handle_id.clone(), b.ip_of(o as u32)) else {
                continue;
            };
            let get = |k: &str| attr.secondary.get(k).filter(|v| !v.is_empty()).cloned();
            out.push(Allocation {
                ip,
                handle,
                block: b.cidr,
                node: get("node").or_else(|| b.host().map(str::to_string)),
                namespace: get("namespace"),
                pod: get("pod"),
                timestamp: attr
                    .secondary
                    .get("timestamp")
                    .and_then(|t| crate::timestamp::parse(t)),
            });
        }
    }
    out
}

/// A pod's namespace and name.
pub type PodKey = (String, String);

/// What the datastore says about one pod, as far as its addresses go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodView {
    /// `spec.nodeName` (or the endpoint's node).
    pub node: Option<String>,
    /// Whether the kubelet has reported the pod's addresses yet. Until it
    /// has, Calico counts the pod's allocations valid: the pod may still
    /// be starting.
    pub reported: bool,
    /// Failed or Succeeded (Evicted pods are Failed): a finished pod owns
    /// no address any more.
    pub finished: bool,
    /// The addresses the pod's endpoint lists.
    pub ips: Vec<IpAddr>,
}

/// One read of the workloads allocations are made for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workloads {
    /// The pods by namespace and name; None when the source knows no pods
    /// by name, and then allocations with `namespace`/`pod` attributes are
    /// judged by container ID if they can be, else not at all.
    pub pods: Option<HashMap<PodKey, PodView>>,
    /// The container IDs of live workload endpoints, when the source keeps
    /// them (the embedded datastores, where the CNI plugin writes one
    /// endpoint per sandbox). Judges pod handles whose allocations lack the
    /// `namespace`/`pod` attributes; Calico can't judge those and keeps
    /// them, which is also what happens here when this is None.
    pub containers: Option<HashSet<String>>,
}
