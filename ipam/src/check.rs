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

pub use crate::handle::{POD_HANDLE_PREFIX, TUNNEL_HANDLE_PREFIXES};

/// A pod's allocation, as `ipam check` asks about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodAllocation {
    pub ip: IpAddr,
    pub container_id: String,
    /// The allocation's `namespace` and `pod` attributes, when it has them.
    pub namespace: Option<String>,
    pub pod: Option<String>,
}

/// Whether the workloads allocations were made for still exist. The
/// embedded datastore answers from the WorkloadEndpoints node agents write
/// (by container ID); a Kubernetes backend can answer from Pods (by the
/// namespace and pod attributes, and the pod's IPs).
#[async_trait]
pub trait LiveWorkloads: Send + Sync {
    /// One answer per allocation, in order. Called once per check.
    async fn live(&self, allocs: &[PodAllocation]) -> Result<Vec<bool>, StoreError>;
}

/// The container IDs of the live workloads, known up front.
#[async_trait]
impl LiveWorkloads for HashSet<String> {
    async fn live(&self, allocs: &[PodAllocation]) -> Result<Vec<bool>, StoreError> {
        Ok(allocs
            .iter()
            .map(|a| self.contains(&a.container_id))
            .collect())
    }
}

/// How `check` judges leaks.
pub struct LeakCheck<'a> {
    pub workloads: &'a dyn LiveWorkloads,
    /// A pod allocation younger than this is never a leak: its workload
    /// endpoint may not be written yet (Calico's leakGracePeriod, 15m). An
    /// allocation without a readable `timestamp` attribute is judged by
    /// liveness alone, as calicoctl does.
    pub grace: Duration,
    pub now: SystemTime,
}

impl LeakCheck<'_> {
    fn young(&self, attrs: &BTreeMap<String, String>) -> bool {
        let Some(at) = attrs
            .get("timestamp")
            .and_then(|t| crate::timestamp::parse(t))
        else {
            return false;
        };
        let now = match self.now.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => d.as_secs() as i64,
            Err(_) => return true,
        };
        now.saturating_sub(at) < self.grace.as_secs() as i64
    }
}

/// The node a tunnel address handle belongs to.
pub fn tunnel_node(handle: &str) -> Option<&str> {
    TUNNEL_HANDLE_PREFIXES
        .iter()
        .find_map(|p| handle.strip_prefix(p))
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
    for b in &blocks {
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
    let mut pods: Vec<(PodAllocation, String)> = Vec::new();
    for b in &blocks {
        for (o, a) in b.value.allocations.iter().enumerate() {
            let attr = a.and_then(|i| b.value.attributes.get(i as usize));
            let Some(h) = attr.and_then(|a| a.handle_id.clone()) else {
                continue;
            };
            if let (Some(lc), Some(ip), Some(attr)) = (leaks, b.value.ip_of(o as u32), attr) {
                if let Some(cid) = h.strip_prefix(POD_HANDLE_PREFIX) {
                    if !lc.young(&attr.secondary) {
                        let pa = PodAllocation {
                            ip,
                            container_id: cid.to_string(),
                            namespace: attr.secondary.get("namespace").cloned(),
                            pod: attr.secondary.get("pod").cloned(),
                        };
                        pods.push((pa, h.clone()));
                    }
                } else if tunnel_node(&h).is_some_and(|n| !nodes.contains(n)) {
                    problems.push(Problem::Leaked {
                        ip,
                        handle: h.clone(),
                    });
                }
            }
            *actual
                .entry(h)
                .or_default()
                .entry(b.value.cidr)
                .or_default() += 1;
        }
    }
    if let Some(lc) = leaks.filter(|_| !pods.is_empty()) {
        let allocs: Vec<PodAllocation> = pods.iter().map(|(p, _)| p.clone()).collect();
        let live = lc.workloads.live(&allocs).await?;
        for ((p, handle), live) in pods.into_iter().zip(live) {
            if !live {
                problems.push(Problem::Leaked { ip: p.ip, handle });
            }
        }
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
