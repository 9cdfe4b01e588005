//! What the allocator needs from a datastore. The agent implements this
//! over its Datastore (sqlite, etcd, later Kubernetes); every write is a
//! compare-and-swap on the revision the value was read at.

use crate::block::Block;
use crate::pool::Pool;
use async_trait::async_trait;
use ipnet::IpNet;
use std::collections::BTreeMap;

pub type Revision = u64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    pub value: T,
    pub revision: Revision,
}

/// BlockAffinity.state: pending counts as absent for ownership and
/// advertisement; it exists so a claim that dies half-way can be found
/// and cleaned up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AffinityState {
    Pending,
    Confirmed,
    PendingDeletion,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Affinity {
    pub node: String,
    pub cidr: IpNet,
    pub state: AffinityState,
}

/// IPAMHandle: how many addresses the handle holds in each block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Handle {
    pub id: String,
    pub blocks: BTreeMap<IpNet, u32>,
}

/// IPAMConfig, plus the IPReservation CIDRs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub strict_affinity: bool,
    pub auto_allocate_blocks: bool,
    /// 0 means Calico's default of 20.
    pub max_blocks_per_host: u32,
    pub reserved: Vec<IpNet>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            strict_affinity: false,
            auto_allocate_blocks: true,
            max_blocks_per_host: 0,
            reserved: Vec::new(),
        }
    }
}

impl Config {
    pub fn effective_max_blocks_per_host(&self) -> u32 {
        if self.max_blocks_per_host == 0 {
            20
        } else {
            self.max_blocks_per_host
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    AlreadyExists,
    #[error("modified concurrently")]
    Conflict,
    #[error("datastore unavailable: {0}")]
    Unavailable(String),
}

/// Which write of [`IpamStore::write_block_and_handle`] failed; nothing
/// was written either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Block,
    Handle,
}

/// Revisions after [`IpamStore::write_block_and_handle`]; `handle` is None
/// when the handle was deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub block: Revision,
    pub handle: Option<Revision>,
}

#[async_trait]
pub trait IpamStore: Send + Sync {
    async fn pools(&self) -> Result<Vec<Pool>, StoreError>;
    async fn node_labels(&self, node: &str) -> Result<BTreeMap<String, String>, StoreError>;
    async fn config(&self) -> Result<Config, StoreError>;

    async fn get_block(&self, cidr: IpNet) -> Result<Option<Versioned<Block>>, StoreError>;
    async fn list_blocks(&self) -> Result<Vec<Versioned<Block>>, StoreError>;
    /// `AlreadyExists` if a block with this CIDR exists.
    async fn create_block(&self, block: &Block) -> Result<Revision, StoreError>;
    async fn update_block(&self, block: &Block, rev: Revision) -> Result<Revision, StoreError>;
    async fn delete_block(&self, cidr: IpNet, rev: Revision) -> Result<(), StoreError>;

    /// Affinities of `node`, or of every node.
    async fn list_affinities(
        &self,
        node: Option<&str>,
    ) -> Result<Vec<Versioned<Affinity>>, StoreError>;
    /// `node`'s affinity for `cidr`, in whatever state.
    async fn get_affinity(
        &self,
        node: &str,
        cidr: IpNet,
    ) -> Result<Option<Versioned<Affinity>>, StoreError> {
        Ok(self
            .list_affinities(Some(node))
            .await?
            .into_iter()
            .find(|a| a.value.cidr == cidr))
    }
    async fn create_affinity(&self, a: &Affinity) -> Result<Revision, StoreError>;
    async fn update_affinity(&self, a: &Affinity, rev: Revision) -> Result<Revision, StoreError>;
    async fn delete_affinity(
        &self,
        node: &str,
        cidr: IpNet,
        rev: Revision,
    ) -> Result<(), StoreError>;

    async fn get_handle(&self, id: &str) -> Result<Option<Versioned<Handle>>, StoreError>;
    async fn list_handles(&self) -> Result<Vec<Versioned<Handle>>, StoreError>;
    async fn create_handle(&self, h: &Handle) -> Result<Revision, StoreError>;
    async fn update_handle(&self, h: &Handle, rev: Revision) -> Result<Revision, StoreError>;
    async fn delete_handle(&self, id: &str, rev: Revision) -> Result<(), StoreError>;

    /// Writes `block` (CAS on `block_rev`) and `handle` as one transaction:
    /// the handle is created when `handle_rev` is None, CAS-updated
    /// otherwise, and deleted when it holds nothing. All or nothing, so an
    /// assignment never exists in a block without its handle record.
    async fn write_block_and_handle(
        &self,
        block: &Block,
        block_rev: Revision,
        handle: &Handle,
        handle_rev: Option<Revision>,
    ) -> Result<Written, (Part, StoreError)>;

    /// `node`'s confirmed affine blocks as last seen, possibly stale, or
    /// None when the store keeps no cache. The allocator only acts on them
    /// through a CAS write (which fails if they are stale) and reads
    /// through the store when that write fails, so staleness can cost a
    /// retry but never a duplicate.
    async fn cached_affine_blocks(&self, _node: &str) -> Option<Vec<Versioned<Block>>> {
        None
    }
}
