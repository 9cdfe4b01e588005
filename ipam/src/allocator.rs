//! Auto-assignment and release with Calico's block-affinity semantics.
//!
//! A host assigns from its confirmed affine blocks first, claims a new block
//! when they are full (up to maxBlocksPerHost), and, unless strictAffinity
//! is set, borrows from other hosts' blocks as a last resort. Every write is
//! a CAS; a conflict re-reads and retries, with jittered backoff, up to a
//! bound, after which the caller gets a clear "try again" error.
//!
//! An assignment writes the block and its handle record in one transaction
//! ([`IpamStore::write_block_and_handle`]). Records written by older
//! versions or other tools may still be missing; release by handle
//! therefore falls back to scanning blocks when the handle record is
//! absent, so nothing is leaked for good.

use crate::block::{Attribute, Block};
use crate::pool::{select_pools, Pool, PoolError, Use};
use crate::store::*;
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

/// Calico's datastoreRetries.
const MAX_CONFLICTS: u32 = 100;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// A specific address ([`Ipam::assign_ip`]) can't be had.
    #[error(transparent)]
    Assign(#[from] crate::assign_error::AssignIpError),
    #[error("IP pool {pools} has no free addresses ({wanted} requested)")]
    Exhausted { pools: String, wanted: usize },
    #[error(
        "node {node} has reached IPAMConfig maxBlocksPerHost ({limit}{}) and {}; raise maxBlocksPerHost or free addresses",
        if *.configured == 0 { ", the effective value of 0" } else { "" },
        if *.strict { "strictAffinity forbids borrowing" } else { "no other block has a free address" }
    )]
    BlockLimit {
        node: String,
        limit: u32,
        configured: u32,
        strict: bool,
    },
    #[error("the datastore reported {0} conflicting writes in a row; try again")]
    TooManyConflicts(u32),
    #[error("datastore: {0}")]
    Store(StoreError),
}

impl From<StoreError> for IpamError {
    fn from(e: StoreError) -> Self {
        IpamError::Store(e)
    }
}

#[derive(Debug, Clone)]
pub struct AssignRequest {
    /// e.g. `k8s-pod-network.<containerID>`.
    pub handle_id: String,
    pub node: String,
    pub num_v4: usize,
    pub num_v6: usize,
    /// Explicitly requested pools (CNI `ipv4_pools`/`ipv6_pools`).
    pub pools_v4: Vec<IpNet>,
    pub pools_v6: Vec<IpNet>,
    pub attributes: BTreeMap<String, String>,
    pub use_for: Use,
    /// Addresses this request must not get, on top of the IPReservations
    /// (a tunnel address must not be one in use on a node's interface or
    /// subnet); they stay free for other requests.
    pub exclude: Vec<IpNet>,
}

impl AssignRequest {
    /// One IPv4 workload address for `handle_id` on `node`, from any pool
    /// that selects the node; adjust fields for anything else.
    pub fn new(handle_id: &str, node: &str) -> Self {
        AssignRequest {
            handle_id: handle_id.to_string(),
            node: node.to_string(),
            num_v4: 1,
            num_v6: 0,
            pools_v4: Vec::new(),
            pools_v6: Vec::new(),
            attributes: BTreeMap::new(),
            use_for: Use::Workload,
            exclude: Vec::new(),
        }
    }
}

pub struct Ipam<S> {
    pub(crate) store: S,
}

/// What this call may take from a block: not reserved, not the edges of an
/// IPv4 pool (they are the network and broadcast address of anyone who
/// treats the pool as a subnet), and for tunnel addresses not the block's
/// own network or broadcast address, so a VTEP is always a host address.
fn skippable(ip: IpAddr, pools: &[Pool], reserved: &[IpNet], u: Use, block: IpNet) -> bool {
    if reserved.iter().any(|r| r.contains(&ip)) {
        return true;
    }
    if let Some(p) = pools.iter().find(|p| p.cidr.contains(&ip)) {
        if ip.is_ipv4() && (ip == p.cidr.network() || ip == p.cidr.broadcast()) {
            return true;
        }
    }
    u == Use::Tunnel && ip.is_ipv4() && (ip == block.network() || ip == block.broadcast())
}

pub(crate) struct Conflicts {
    pub(crate) n: u32,
    pub(crate) seed: u64,
}

impl Conflicts {
    /// Counts a conflict and waits a short, jittered time so racing hosts
    /// spread out instead of colliding again in lock-step.
    pub(crate) async fn hit(&mut self) -> Result<(), IpamError> {
        self.n += 1;
        if self.n >= MAX_CONFLICTS {
            return Err(IpamError::TooManyConflicts(self.n));
        }
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let cap = 1u64 << self.n.min(6);
        tokio::time::sleep(Duration::from_millis(self.seed % (cap + 1))).await;
        Ok(())
    }
}

/// A per-caller, never-zero seed for the backoff jitter (xorshift state).
pub(crate) fn seed_for(s: &str) -> u64 {
    crate::pool::fnv1a(s.as_bytes()) | 1
}

impl<S: IpamStore> Ipam<S> {
    pub fn new(store: S) -> Self {
        Ipam { store }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Assigns the requested addresses, all or nothing: if a family can't
    /// be satisfied, what was assigned for this request is released again.
    pub async fn auto_assign(
        &self,
        req: &AssignRequest,
    ) -> Result<(Vec<IpAddr>, Vec<IpAddr>), IpamError> {
        // Assumed absent (a new workload's handle) until a write says
        // otherwise: that saves a read on the common path.
        let mut handle = HandleState {
            value: Handle {
                id: req.handle_id.clone(),
                blocks: BTreeMap::new(),
            },
            rev: None,
        };
        let v4 = self
            .assign_family(req, false, req.num_v4, &mut handle)
            .await?;
        match self.assign_family(req, true, req.num_v6, &mut handle).await {
            Ok(v6) => Ok((v4, v6)),
            Err(e) => {
                self.release_ips(&v4).await?;
                Err(e)
            }
        }
    }

    async fn assign_family(
        &self,
        req: &AssignRequest,
        v6: bool,
        want: usize,
        handle: &mut HandleState,
    ) -> Result<Vec<IpAddr>, IpamError> {
        if want == 0 {
            return Ok(Vec::new());
        }
        let mut cfg = self.store.config().await?;
        cfg.reserved.extend(req.exclude.iter().copied());
        let labels = self.store.node_labels(&req.node).await?;
        let all_pools = self.store.pools().await?;
        let explicit = if v6 { &req.pools_v6 } else { &req.pools_v4 };
        let pools: Vec<Pool> =
            select_pools(&all_pools, &req.node, &labels, req.use_for, v6, explicit)?
                .into_iter()
                .cloned()
                .collect();
        let attr = Attribute {
            handle_id: Some(req.handle_id.clone()),
            secondary: req.attributes.clone(),
        };
        let in_pools = |c: &IpNet| pools.iter().any(|p| p.cidr.contains(c));
        let mut cx = TakeCtx {
            attr: &attr,
            pools: &pools,
            cfg: &cfg,
            use_for: req.use_for,
            handle,
            conflicts: Conflicts {
                n: 0,
                seed: seed_for(&req.handle_id),
            },
        };
        let mut got: Vec<IpAddr> = Vec::new();
        let mut limit_hit = false;

        let result: Result<(), IpamError> = async {
            // 0. The fast path: this host's blocks as the store's cache last
            // saw them. A stale copy fails its CAS and sends us to step 1,
            // which reads through.
            if let Some(cached) = self.store.cached_affine_blocks(&req.node).await {
                for vb in cached {
                    if !in_pools(&vb.value.cidr)
                        || vb.value.deleted
                        || vb.value.host() != Some(req.node.as_str())
                    {
                        continue;
                    }
                    let t = self.take_from(&mut cx, vb, want - got.len());
                    match t.await? {
                        Take::Got(ips) => got.extend(ips),
                        Take::Empty => continue,
                        Take::Conflict => {
                            cx.conflicts.hit().await?;
                            break;
                        }
                    }
                    if got.len() == want {
                        return Ok(());
                    }
                }
            }
            'outer: while got.len() < want {
                // 1. This host's confirmed blocks.
                let affs: Vec<IpNet> = self
                    .store
                    .list_affinities(Some(&req.node))
                    .await?
                    .into_iter()
                    .filter(|a| a.value.state == AffinityState::Confirmed)
                    .map(|a| a.value.cidr)
                    .collect();
                for cidr in affs.iter().filter(|c| in_pools(c)) {
                    let Some(vb) = self.store.get_block(*cidr).await? else {
                        continue;
                    };
                    if vb.value.host() != Some(req.node.as_str()) {
                        continue;
                    }
                    match self.take_from(&mut cx, vb, want - got.len()).await? {
                        Take::Got(ips) => got.extend(ips),
                        Take::Empty => continue,
                        Take::Conflict => {
                            cx.conflicts.hit().await?;
                            continue 'outer;
                        }
                    }
                    if got.len() == want {
                        break 'outer;
                    }
                }
                // 2. A new block, within the per-host limit.
                let host_blocks = affs.len() as u32;
                if cfg.auto_allocate_blocks {
                    if host_blocks < cfg.effective_max_blocks_per_host() {
                        match self.claim_free_block(&req.node, &pools).await {
                            // Take from the new block straight away rather
                            // than re-reading every affine block first.
                            Ok(Some(cidr)) => {
                                if let Some(vb) = self.store.get_block(cidr).await? {
                                    let t = self.take_from(&mut cx, vb, want - got.len());
                                    match t.await? {
                                        Take::Got(ips) => got.extend(ips),
                                        Take::Empty => {}
                                        Take::Conflict => cx.conflicts.hit().await?,
                                    }
                                }
                                continue 'outer;
                            }
                            Ok(None) => {}
                            Err(IpamError::Store(StoreError::Conflict)) => {
                                cx.conflicts.hit().await?;
                                continue 'outer;
                            }
                            Err(e) => return Err(e),
                        }
                    } else {
                        limit_hit = true;
                    }
                }
                // 3. Borrow from anyone's block.
                if !cfg.strict_affinity {
                    let mut progressed = false;
                    for vb in self.store.list_blocks().await? {
                        if !in_pools(&vb.value.cidr) || vb.value.deleted {
                            continue;
                        }
                        match self.take_from(&mut cx, vb, want - got.len()).await? {
                            Take::Got(ips) => {
                                got.extend(ips);
                                progressed = true;
                            }
                            Take::Empty => {}
                            Take::Conflict => {
                                cx.conflicts.hit().await?;
                                continue 'outer;
                            }
                        }
                        if got.len() == want {
                            break 'outer;
                        }
                    }
                    if progressed {
                        continue 'outer;
                    }
                }
                break;
            }
            Ok(())
        }
        .await;

        if let Err(e) = result {
            self.release_ips(&got).await?;
            return Err(e);
        }
        if got.len() < want {
            self.release_ips(&got).await?;
            // The pool may still have unclaimed blocks: say that the limit,
            // not the pool, is what ran out.
            if limit_hit {
                return Err(IpamError::BlockLimit {
                    node: req.node.clone(),
                    limit: cfg.effective_max_blocks_per_host(),
                    configured: cfg.max_blocks_per_host,
                    strict: cfg.strict_affinity,
                });
            }
            return Err(IpamError::Exhausted {
                pools: pools
                    .iter()
                    .map(|p| p.cidr.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                wanted: want,
            });
        }
        Ok(got)
    }

    /// Assigns up to `n` from one block and records them on the handle,
    /// in one transaction: a block CAS that fails means someone else
    /// changed the block (re-read it); a handle that isn't as we thought is
    /// read and the write retried.
    async fn take_from(
        &self,
        cx: &mut TakeCtx<'_>,
        vb: Versioned<Block>,
        n: usize,
    ) -> Result<Take, IpamError> {
        let mut b = vb.value;
        let cidr = b.cidr;
        let (pools, cfg, u) = (cx.pools, cx.cfg, cx.use_for);
        let ips = b.assign(n, cx.attr.clone(), &|ip| {
            skippable(ip, pools, &cfg.reserved, u, cidr)
        });
        let handle = &mut *cx.handle;
        if ips.is_empty() {
            return Ok(Take::Empty);
        }
        loop {
            let mut h = handle.value.clone();
            *h.blocks.entry(cidr).or_default() += ips.len() as u32;
            match self
                .store
                .write_block_and_handle(&b, vb.revision, &h, handle.rev)
                .await
            {
                Ok(w) => {
                    handle.value = h;
                    handle.rev = w.handle;
                    return Ok(Take::Got(ips));
                }
                // NotFound: the block's host released it meanwhile; look again.
                Err((Part::Block, StoreError::Conflict | StoreError::NotFound)) => {
                    return Ok(Take::Conflict)
                }
                Err((
                    Part::Handle,
                    StoreError::Conflict | StoreError::NotFound | StoreError::AlreadyExists,
                )) => {
                    cx.conflicts.hit().await?;
                    *handle = match self.store.get_handle(&handle.value.id).await? {
                        Some(v) => HandleState {
                            value: v.value,
                            rev: Some(v.revision),
                        },
                        None => HandleState {
                            value: Handle {
                                id: handle.value.id.clone(),
                                blocks: BTreeMap::new(),
                            },
                            rev: None,
                        },
                    };
                }
                Err((_, e)) => return Err(e.into()),
            }
        }
    }
}

/// What every `take_from` of one family's assignment shares: the
/// request's invariants, plus the handle and conflict count that the
/// takes update in turn.
struct TakeCtx<'a> {
    attr: &'a Attribute,
    pools: &'a [Pool],
    cfg: &'a Config,
    use_for: Use,
    handle: &'a mut HandleState,
    conflicts: Conflicts,
}

/// A request's handle record as its last write left it.
struct HandleState {
    value: Handle,
    rev: Option<Revision>,
}

enum Take {
    Got(Vec<IpAddr>),
    Empty,
    Conflict,
}
