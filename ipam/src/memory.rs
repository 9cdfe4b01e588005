//! An in-process IpamStore with the same CAS semantics as the real
//! backends, for the allocator's own tests and property tests. The agent's
//! datastore-backed store is tested against real sqlite and etcd.

use crate::block::Block;
use crate::pool::Pool;
use crate::store::*;
use async_trait::async_trait;
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Default)]
struct State {
    rev: Revision,
    pools: Vec<Pool>,
    labels: BTreeMap<String, BTreeMap<String, String>>,
    config: Config,
    blocks: BTreeMap<IpNet, Versioned<Block>>,
    affinities: BTreeMap<(String, IpNet), Versioned<Affinity>>,
    handles: BTreeMap<String, Versioned<Handle>>,
}

#[derive(Default)]
pub struct MemoryIpamStore {
    s: Mutex<State>,
}

fn cas<K: Ord, T>(
    map: &mut BTreeMap<K, Versioned<T>>,
    rev_counter: &mut Revision,
    key: K,
    value: T,
    expect: Option<Revision>,
) -> Result<Revision, StoreError> {
    match (map.get(&key), expect) {
        (Some(_), None) => return Err(StoreError::AlreadyExists),
        (None, Some(_)) => return Err(StoreError::NotFound),
        (Some(cur), Some(r)) if cur.revision != r => return Err(StoreError::Conflict),
        _ => {}
    }
    *rev_counter += 1;
    map.insert(
        key,
        Versioned {
            value,
            revision: *rev_counter,
        },
    );
    Ok(*rev_counter)
}

fn cas_delete<K: Ord, T>(
    map: &mut BTreeMap<K, Versioned<T>>,
    key: &K,
    rev: Revision,
) -> Result<(), StoreError> {
    match map.get(key) {
        None => Err(StoreError::NotFound),
        Some(cur) if cur.revision != rev => Err(StoreError::Conflict),
        Some(_) => {
            map.remove(key);
            Ok(())
        }
    }
}

impl MemoryIpamStore {
    pub fn new(pools: Vec<Pool>, config: Config) -> Self {
        let s = MemoryIpamStore::default();
        {
            let mut g = s.lock();
            g.pools = pools;
            g.config = config;
        }
        s
    }

    /// Replaces the pools (a pool applied or deleted).
    pub fn set_pools(&self, pools: Vec<Pool>) {
        self.lock().pools = pools;
    }

    pub fn set_labels(&self, node: &str, labels: BTreeMap<String, String>) {
        self.lock().labels.insert(node.to_string(), labels);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.s.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl IpamStore for MemoryIpamStore {
    async fn pools(&self) -> Result<Vec<Pool>, StoreError> {
        Ok(self.lock().pools.clone())
    }
    async fn node_labels(&self, node: &str) -> Result<BTreeMap<String, String>, StoreError> {
        Ok(self.lock().labels.get(node).cloned().unwrap_or_default())
    }
    async fn config(&self) -> Result<Config, StoreError> {
        Ok(self.lock().config.clone())
    }
    async fn get_block(&self, cidr: IpNet) -> Result<Option<Versioned<Block>>, StoreError> {
        Ok(self.lock().blocks.get(&cidr).cloned())
    }
    async fn list_blocks(&self) -> Result<Vec<Versioned<Block>>, StoreError> {
        Ok(self.lock().blocks.values().cloned().collect())
    }
    async fn create_block(&self, block: &Block) -> Result<Revision, StoreError> {
        let g = &mut *self.lock();
        cas(&mut g.blocks, &mut g.rev, block.cidr, block.clone(), None)
    }
    async fn update_block(&self, block: &Block, rev: Revision) -> Result<Revision, StoreError> {
        let g = &mut *self.lock();
        cas(
            &mut g.blocks,
            &mut g.rev,
            block.cidr,
            block.clone(),
            Some(rev),
        )
    }
    async fn delete_block(&self, cidr: IpNet, rev: Revision) -> Result<(), StoreError> {
        cas_delete(&mut self.lock().blocks, &cidr, rev)
    }
    async fn list_affinities(
        &self,
        node: Option<&str>,
    ) -> Result<Vec<Versioned<Affinity>>, StoreError> {
        Ok(self
            .lock()
            .affinities
            .values()
            .filter(|a| node.is_none_or(|n| a.value.node == n))
            .cloned()
            .collect())
    }
    async fn create_affinity(&self, a: &Affinity) -> Result<Revision, StoreError> {
        let g = &mut *self.lock();
        cas(
            &mut g.affinities,
            &mut g.rev,
            (a.node.clone(), a.cidr),
            a.clone(),
            None,
        )
    }
    async fn update_affinity(&self, a: &Affinity, rev: Revision) -> Result<Revision, StoreError> {
        let g = &mut *self.lock();
        let key = (a.node.clone(), a.cidr);
        cas(&mut g.affinities, &mut g.rev, key, a.clone(), Some(rev))
    }
    async fn delete_affinity(
        &self,
        node: &str,
        cidr: IpNet,
        rev: Revision,
    ) -> Result<(), StoreError> {
        cas_delete(&mut self.lock().affinities, &(node.to_string(), cidr), rev)
    }
    async fn get_handle(&self, id: &str) -> Result<Option<Versioned<Handle>>, StoreError> {
        Ok(self.lock().handles.get(id).cloned())
    }
    async fn list_handles(&self) -> Result<Vec<Versioned<Handle>>, StoreError> {
        Ok(self.lock().handles.values().cloned().collect())
    }
    async fn create_handle(&self, h: &Handle) -> Result<Revision, StoreError> {
        let g = &mut *self.lock();
        cas(&mut g.handles, &mut g.rev, h.id.clone(), h.clone(), None)
    }
    async fn update_handle(&self, h: &Handle, rev: Revision) -> Result<Revision, StoreError> {
        let g = &mut *self.lock();
        cas(
            &mut g.handles,
            &mut g.rev,
            h.id.clone(),
            h.clone(),
            Some(rev),
        )
    }
    async fn delete_handle(&self, id: &str, rev: Revision) -> Result<(), StoreError> {
        cas_delete(&mut self.lock().handles, &id.to_string(), rev)
    }
    async fn write_block_and_handle(
        &self,
        block: &Block,
        block_rev: Revision,
        handle: &Handle,
        handle_rev: Option<Revision>,
    ) -> Result<Written, (Part, StoreError)> {
        let g = &mut *self.lock();
        // Check both before writing either: all or nothing.
        match g.blocks.get(&block.cidr) {
            None => return Err((Part::Block, StoreError::NotFound)),
            Some(cur) if cur.revision != block_rev => {
                return Err((Part::Block, StoreError::Conflict))
            }
            _ => {}
        }
        match (g.handles.get(&handle.id), handle_rev) {
            (Some(_), None) => return Err((Part::Handle, StoreError::AlreadyExists)),
            (None, Some(_)) => return Err((Part::Handle, StoreError::NotFound)),
            (Some(cur), Some(r)) if cur.revision != r => {
                return Err((Part::Handle, StoreError::Conflict))
            }
            _ => {}
        }
        let b = cas(
            &mut g.blocks,
            &mut g.rev,
            block.cidr,
            block.clone(),
            Some(block_rev),
        )
        .map_err(|e| (Part::Block, e))?;
        let h = match handle_rev {
            Some(r) if handle.blocks.is_empty() => {
                cas_delete(&mut g.handles, &handle.id, r).map_err(|e| (Part::Handle, e))?;
                None
            }
            None if handle.blocks.is_empty() => None,
            r => Some(
                cas(
                    &mut g.handles,
                    &mut g.rev,
                    handle.id.clone(),
                    handle.clone(),
                    r,
                )
                .map_err(|e| (Part::Handle, e))?,
            ),
        };
        Ok(Written {
            block: b,
            handle: h,
        })
    }
}
