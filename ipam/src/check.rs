//! `ipam check`: inconsistencies between blocks, affinities and handles,
//! and the repair `--fix` makes for each. Every repair is a CAS write, so a
//! fix that races a live allocator fails (and can be rerun) instead of
//! undoing the allocator's work.

use crate::allocator::{Ipam, IpamError};
use crate::store::*;
use async_trait::async_trait;
use ipnet::IpNet;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

pub use crate::gc::tunnel_node;
use crate::gc::{Allocation, Workloads};
pub use crate::handle::{POD_HANDLE_PREFIX, TUNNEL_HANDLE_PREFIXES};

/// Where the workloads allocations are made for are read from. The
/// embedded datastores answer from the WorkloadEndpoints the CNI plugin
/// writes (by namespace and pod, and by container ID); the Kubernetes
/// datastore from Pods.
#[async_trait]
pub trait LiveWorkloads: Send + Sync {
    /// The workloads as they are now. Read once per check or GC pass.
    async fn snapshot(&self) -> Result<Workloads, StoreError>;

    /// The workloads `allocs` belong to, read from the datastore itself
    /// (never a cache): the GC's re-check right before it releases them.
    /// Pods not in the answer are gone.
    async fn recheck(&self, _allocs: &[&Allocation]) -> Result<Workloads, StoreError> {
        self.snapshot().await
    }
}

/// The container IDs of the live workloads, known up front.
#[async_trait]
impl LiveWorkloads for HashSet<String> {
    async fn snapshot(&self) -> Result<Workloads, StoreError> {
        Ok(Workloads {
            pods: None,
            containers: Some(self.clone()),
        })
    }
}

/// How `check` judges leaks: by [`crate::gc`]'s rules, the grace period
/// taken from each allocation's `timestamp` attribute (a one-shot check
/// has no memory of earlier passes).
pub struct LeakCheck<'a> {
    pub workloads: &'a dyn LiveWorkloads,
    /// A leaked pod allocation younger than this is not reported: its
    /// workload endpoint may not be written yet (Calico's leakGracePeriod,
    /// 15m). An allocation without a readable `timestamp` attribute is
    /// judged by liveness alone, as calicoctl does; one whose node is gone
    /// is reported at once, as kube-controllers does.
    pub grace: Duration,
    pub now: SystemTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A block is `host:<node>` but the node's affinity for it is not
    /// confirmed (a claim interrupted after creating the block).
    /// Fix: confirm the affinity.
    UnconfirmedBlock { cidr: IpNet, node: String },
    /// An affinity for a node that no longer exists.
    /// Fix: delete the block if empty, else make it unaffine; drop the
    /// affinity.
    AffinityOfMissingNode { cidr: IpNet, node: String },
    /// A pending affinity with no block (a claim interrupted before the
    /// block was created). Fix: delete it.
    DanglingAffinity { cidr: IpNet, node: String },
    /// Handle records that disagree with what the blocks hold (missing,
    /// wrong counts, or holding nothing). Fix: rewrite from the blocks.
    HandleMismatch {
        handle: String,
        recorded: Option<BTreeMap<IpNet, u32>>,
        actual: BTreeMap<IpNet, u32>,
    },
    /// A pod address whose workload is gone (past the grace period), or a
    /// tunnel address of a node that no longer exists. Fix: release.
    Leaked { ip: IpAddr, handle: String },
    /// A block no IP pool contains: its pool was deleted. It keeps its
    /// addresses until they are released and then goes (Calico's pool
    /// deletion leaves such blocks the same way). Fix: delete it, with its
    /// affinity, once it is empty; one that holds addresses is left.
    BlockOutsidePools { cidr: IpNet, in_use: u32 },
    /// A Node's VXLAN tunnel address (`ipv4VXLANTunnelAddr`, which its
    /// `vxlan.calico` carries) that IPAM does not hold for the node's
    /// tunnel handle: another allocation can be given it. Not fixed here:
    /// the node's tabby-node allocates itself a new one (see
    /// [`check_tunnels`]).
    TunnelNotHeld {
        node: String,
        ip: IpAddr,
        /// The handle that holds the address instead, if any.
        holder: Option<String>,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sum = |m: &BTreeMap<IpNet, u32>| m.values().sum::<u32>();
        match self {
            Problem::UnconfirmedBlock { cidr, node } => write!(
                f,
                "block {cidr} is affine to {node} but the affinity is not confirmed"
            ),
            Problem::AffinityOfMissingNode { cidr, node } => write!(
                f,
                "block {cidr} has an affinity for node {node}, which does not exist"
            ),
            Problem::DanglingAffinity { cidr, node } => write!(
                f,
                "node {node} has a pending affinity for block {cidr}, which does not exist"
            ),
            Problem::HandleMismatch {
                handle,
                recorded: None,
                actual,
            } => write!(
                f,
                "handle {handle} holds {} address(es) but has no handle record",
                sum(actual)
            ),
            Problem::HandleMismatch {
                handle,
                recorded: Some(r),
                actual,
            } => write!(
                f,
                "handle {handle} records {} address(es) but holds {}",
                sum(r),
                sum(actual)
            ),
            Problem::BlockOutsidePools { cidr, in_use: 0 } => write!(
                f,
                "block {cidr} is in no IP pool (its pool was deleted) and is empty"
            ),
            Problem::BlockOutsidePools { cidr, in_use } => write!(
                f,
                "block {cidr} is in no IP pool (its pool was deleted); it goes once its {in_use} address(es) are released"
            ),
            Problem::TunnelNotHeld {
                node,
                ip,
                holder: None,
            } => write!(
                f,
                "node {node}'s VXLAN tunnel address {ip} is not assigned in IPAM"
            ),
            Problem::TunnelNotHeld {
                node,
                ip,
                holder: Some(h),
            } => write!(
                f,
                "node {node}'s VXLAN tunnel address {ip} is held by {h}, not {}",
                crate::handle::vxlan_tunnel_handle(node)
            ),
            Problem::Leaked { ip, handle } => match tunnel_node(handle) {
                Some(node) => write!(
                    f,
                    "IP {ip} is allocated to {handle}, but node {node} does not exist"
                ),
                None => write!(
                    f,
                    "IP {ip} is allocated to {handle}, which no live workload uses"
                ),
            },
        }
    }
}

/// Finds every problem. `nodes` are the nodes that exist. With `leaks`,
/// pod addresses (handle `k8s-pod-network.<containerID>`) whose workload
/// is gone are reported as leaked, and so are tunnel addresses of nodes
/// that no longer exist. Addresses under other handles have no owner this
/// check can ask about and are never called leaked.
pub async fn check<S: IpamStore + ?Sized>(
    store: &S,
    nodes: &HashSet<String>,
    leaks: Option<&LeakCheck<'_>>,
) -> Result<Vec<Problem>, StoreError> {
    let blocks = store.list_blocks().await?;
    let affs = store.list_affinities(None).await?;
    let mut problems = Vec::new();

    let block_cidrs: HashSet<IpNet> = blocks.iter().map(|b| b.value.cidr).collect();
    let confirmed: HashSet<(&str, IpNet)> = affs
        .iter()
        .filter(|a| a.value.state == AffinityState::Confirmed)
        .map(|a| (a.value.node.as_str(), a.value.cidr))
        .collect();
    for a in &affs {
        let (node, cidr) = (a.value.node.clone(), a.value.cidr);
        if !nodes.contains(&node) {
            problems.push(Problem::AffinityOfMissingNode { cidr, node });
        } else if a.value.state == AffinityState::Pending && !block_cidrs.contains(&cidr) {
            problems.push(Problem::DanglingAffinity { cidr, node });
        }
    }
    let pools = store.pools().await?;
    for b in &blocks {
        let cidr = b.value.cidr;
        if !pools.iter().any(|p| p.cidr.contains(&cidr)) {
            problems.push(Problem::BlockOutsidePools {
                cidr,
                in_use: b.value.in_use(),
            });
        }
        if let Some(node) = b.value.host() {
            if nodes.contains(node) && !confirmed.contains(&(node, b.value.cidr)) {
                problems.push(Problem::UnconfirmedBlock {
                    cidr: b.value.cidr,
                    node: node.to_string(),
                });
            }
        }
    }

    let mut actual: BTreeMap<String, BTreeMap<IpNet, u32>> = BTreeMap::new();
    let allocs = crate::gc::allocations(blocks.iter().map(|b| &b.value));
    for a in &allocs {
        *actual
            .entry(a.handle.clone())
            .or_default()
            .entry(a.block)
            .or_default() += 1;
    }
    if let Some(lc) = leaks {
        let w = lc.workloads.snapshot().await?;
        let verdicts = crate::gc::assess(&allocs, nodes, &w);
        let confirmed = crate::gc::confirmed_by_age(&allocs, &verdicts, lc.grace, lc.now);
        let affinity_nodes = affs.iter().map(|a| a.value.node.as_str());
        let plan = crate::gc::plan(&allocs, &verdicts, &confirmed, nodes, affinity_nodes);
        // Tunnel addresses first, then pods, each in block order.
        let (tunnels, pods): (Vec<_>, Vec<_>) = plan
            .releases
            .into_iter()
            .partition(|r| r.alloc.tunnel_node().is_some());
        problems.extend(tunnels.into_iter().chain(pods).map(|r| Problem::Leaked {
            ip: r.alloc.ip,
            handle: r.alloc.handle,
        }));
    }
    let mut records: BTreeMap<String, BTreeMap<IpNet, u32>> = store
        .list_handles()
        .await?
        .into_iter()
        .map(|h| (h.value.id, h.value.blocks))
        .collect();
    for (id, counts) in &actual {
        let recorded = records.remove(id);
        if recorded.as_ref() != Some(counts) {
            problems.push(Problem::HandleMismatch {
                handle: id.clone(),
                recorded,
                actual: counts.clone(),
            });
        }
    }
    for (id, recorded) in records {
        problems.push(Problem::HandleMismatch {
            handle: id,
            recorded: Some(recorded),
            actual: BTreeMap::new(),
        });
    }
    Ok(problems)
}

/// Repairs `problems` as their docs say. Returns how many were repaired.
/// Leaks are released first, because releasing changes handle counts;
/// handle records are then rewritten from the blocks as they are now.
pub async fn fix<S: IpamStore>(ipam: &Ipam<S>, problems: &[Problem]) -> Result<usize, IpamError> {
    let store = ipam.store();
    let mut ordered: Vec<&Problem> = problems.iter().collect();
    ordered.sort_by_key(|p| match p {
        Problem::Leaked { .. } => 0,
        Problem::HandleMismatch { .. } => 2,
        _ => 1,
    });
    let mut fixed = 0;
    for p in ordered {
        match p {
            Problem::BlockOutsidePools { cidr, .. } => {
                // Only once empty: its addresses are still somebody's.
                let Some(vb) = store.get_block(*cidr).await? else {
                    // Gone meanwhile (a leak release above emptied it).
                    fixed += 1;
                    continue;
                };
                if !ipam.release_orphan_block(vb).await? {
                    continue;
                }
            }
            // The node's own tabby-node replaces it (it must be on the
            // node's vxlan.calico, which only that node can change).
            Problem::TunnelNotHeld { .. } => continue,
            Problem::UnconfirmedBlock { cidr, node } => {
                let a = Affinity {
                    node: node.clone(),
                    cidr: *cidr,
                    state: AffinityState::Confirmed,
                };
                match store.get_affinity(node, *cidr).await? {
                    Some(cur) => store.update_affinity(&a, cur.revision).await?,
                    None => store.create_affinity(&a).await?,
                };
            }
            Problem::AffinityOfMissingNode { cidr, node } => {
                if let Some(b) = store.get_block(*cidr).await? {
                    if b.value.host() == Some(node.as_str()) {
                        if b.value.is_empty() {
                            store.delete_block(*cidr, b.revision).await?;
                        } else {
                            let mut blk = b.value;
                            blk.affinity = None;
                            store.update_block(&blk, b.revision).await?;
                        }
                    }
                }
                if let Some(cur) = store.get_affinity(node, *cidr).await? {
                    store.delete_affinity(node, *cidr, cur.revision).await?;
                }
            }
            Problem::DanglingAffinity { cidr, node } => {
                if let Some(cur) = store.get_affinity(node, *cidr).await? {
                    store.delete_affinity(node, *cidr, cur.revision).await?;
                }
            }
            Problem::HandleMismatch { handle, .. } => {
                let actual = held_by(store, handle).await?;
                let want = Handle {
                    id: handle.clone(),
                    blocks: actual.clone(),
                };
                match (store.get_handle(handle).await?, actual.is_empty()) {
                    (Some(cur), true) => store.delete_handle(handle, cur.revision).await?,
                    (Some(cur), false) => {
                        store.update_handle(&want, cur.revision).await?;
                    }
                    (None, false) => {
                        store.create_handle(&want).await?;
                    }
                    (None, true) => {}
                }
            }
            Problem::Leaked { ip, handle } => {
                ipam.release_ip_held_by(*ip, handle).await?;
            }
        }
        fixed += 1;
    }
    Ok(fixed)
}

/// What `handle` holds in each block right now.
async fn held_by<S: IpamStore + ?Sized>(
    store: &S,
    handle: &str,
) -> Result<BTreeMap<IpNet, u32>, StoreError> {
    Ok(store
        .list_blocks()
        .await?
        .into_iter()
        .filter_map(|b| {
            let n = b.value.ips_with_handle(handle).len() as u32;
            (n > 0).then_some((b.value.cidr, n))
        })
        .collect())
}

/// Each Node's VXLAN tunnel address (`tunnels`: node name → the address its
/// Node records) that IPAM does not hold under the node's tunnel handle.
pub async fn check_tunnels<S: IpamStore + ?Sized>(
    store: &S,
    tunnels: &BTreeMap<String, IpAddr>,
) -> Result<Vec<Problem>, StoreError> {
    if tunnels.is_empty() {
        return Ok(Vec::new());
    }
    let blocks = store.list_blocks().await?;
    let mut problems = Vec::new();
    for (node, ip) in tunnels {
        let holder = blocks
            .iter()
            .find(|b| b.value.cidr.contains(ip))
            .and_then(|b| b.value.holder(*ip))
            .map(|a| a.handle_id.clone().unwrap_or_default());
        if holder.as_deref() != Some(crate::handle::vxlan_tunnel_handle(node).as_str()) {
            problems.push(Problem::TunnelNotHeld {
                node: node.clone(),
                ip: *ip,
                holder,
            });
        }
    }
    Ok(problems)
}
