//! The IPAM allocator's store, over Tabby's datastore: Calico resources in,
//! `tabby_ipam` types out. Every write keeps the datastore's CAS.
//!
//! A long-running allocator (tabby-node) uses [`DatastoreIpam::with_cache`]
//! over the process's [`ClusterCache`]: pools, config, labels, affinities
//! and blocks come from it (see `ipam::cache`), and an assignment is one
//! transaction. One-shot tools use [`DatastoreIpam::new`], which reads
//! through.

use super::cache::{IpamView, KINDS};
use super::convert::*;
use crate::cache::{ClusterCache, Reflectors};
use crate::datastore::{Datastore, Error, TxnWrite};
use crate::resources::ipam::{affinity_name, block_name};
use crate::resources::{Kind, Resource};
use async_trait::async_trait;
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::sync::Arc;
use tabby_ipam::block::Block;
use tabby_ipam::pool::Pool;
use tabby_ipam::store::{
    Affinity, Config, Handle, IpamStore, Part, Revision, StoreError, Versioned, Written,
};

pub struct DatastoreIpam {
    ds: Arc<dyn Datastore>,
    cache: Option<IpamView>,
    /// Set when this store started its own reflectors ([`Self::cached`]).
    _reflectors: Option<Reflectors>,
}

impl DatastoreIpam {
    /// Reads through to the datastore on every call.
    pub fn new(ds: Arc<dyn Datastore>) -> Self {
        DatastoreIpam {
            ds,
            cache: None,
            _reflectors: None,
        }
    }

    /// Reads what rarely changes from `cache`, which must follow at least
    /// the IPAM kinds ([`KINDS`]); reads go through the datastore whenever
    /// those are not all ready.
    pub fn with_cache(ds: Arc<dyn Datastore>, cache: Arc<ClusterCache>) -> Self {
        DatastoreIpam {
            ds,
            cache: Some(IpamView::new(cache)),
            _reflectors: None,
        }
    }

    /// A cache of its own: starts reflectors for the IPAM kinds (stopped on
    /// drop). For tools and tests without a process-wide cache.
    pub fn cached(ds: Arc<dyn Datastore>) -> Self {
        let (cache, reflectors) = ClusterCache::follow(ds.clone(), &KINDS);
        DatastoreIpam {
            ds,
            cache: Some(IpamView::new(cache)),
            _reflectors: Some(reflectors),
        }
    }

    /// Waits (up to `timeout`) until the cache is loaded; for tests and
    /// benchmarks that want the steady state from the first call.
    pub async fn wait_ready(&self, timeout: std::time::Duration) -> bool {
        match &self.cache {
            Some(c) => c.wait_ready(timeout).await,
            None => false,
        }
    }

    async fn create(&self, r: Resource) -> Result<Revision, StoreError> {
        let stored = self.ds.create(r).await.map_err(store_err)?;
        Ok(stored.revision().unwrap_or_default())
    }

    /// CAS update of `r` against `rev`.
    async fn update(&self, mut r: Resource, rev: Revision) -> Result<Revision, StoreError> {
        r.set_revision(rev);
        let stored = self.ds.update(r).await.map_err(store_err)?;
        Ok(stored.revision().unwrap_or_default())
    }

    /// Every stored IPReservation's networks, read through (see
    /// `ipam::cache` for when the cached copy is used instead).
    async fn reservations(&self) -> Result<Vec<IpNet>, StoreError> {
        let l = self
            .ds
            .list(Kind::IpReservation, None)
            .await
            .map_err(store_err)?;
        let nets: Vec<IpNet> = l
            .items
            .iter()
            .filter_map(|r| match r {
                Resource::IpReservation(o) => Some(o.spec.networks()),
                _ => None,
            })
            .flatten()
            .collect();
        Ok(IpNet::aggregate(&nets))
    }

    fn cache_put(&self, f: impl FnOnce(&IpamView)) {
        if let Some(c) = &self.cache {
            f(c)
        }
    }
}

/// Which part of a block+handle transaction an error is about.
fn txn_err(e: Error) -> (Part, StoreError) {
    let part = match &e {
        Error::NotFound { kind, .. }
        | Error::AlreadyExists { kind, .. }
        | Error::Conflict { kind, .. }
            if *kind == Kind::IpamHandle =>
        {
            Part::Handle
        }
        _ => Part::Block,
    };
    (part, store_err(e))
}

fn store_err(e: Error) -> StoreError {
    match e {
        Error::NotFound { .. } => StoreError::NotFound,
        Error::AlreadyExists { .. } => StoreError::AlreadyExists,
        Error::Conflict { .. } => StoreError::Conflict,
        other => StoreError::Unavailable(other.to_string()),
    }
}

#[async_trait]
impl IpamStore for DatastoreIpam {
    async fn pools(&self) -> Result<Vec<Pool>, StoreError> {
        if let Some(p) = self.cache.as_ref().and_then(|c| c.pools()) {
            return p;
        }
        let l = self.ds.list(Kind::IpPool, None).await.map_err(store_err)?;
        l.items
            .iter()
            .filter_map(|r| match r {
                Resource::IpPool(p) => Some(pool_from(&p.metadata.name, &p.spec)),
                _ => None,
            })
            .collect()
    }

    async fn node_labels(&self, node: &str) -> Result<BTreeMap<String, String>, StoreError> {
        if let Some(l) = self.cache.as_ref().and_then(|c| c.labels(node)) {
            return Ok(l);
        }
        match self.ds.get(Kind::Node, node).await {
            Ok(r) => Ok(r.metadata().labels.clone()),
            Err(Error::NotFound { .. }) => Ok(BTreeMap::new()),
            Err(e) => Err(store_err(e)),
        }
    }

    async fn config(&self) -> Result<Config, StoreError> {
        let mut cfg = match self.cache.as_ref().and_then(|c| c.config()) {
            Some(c) => c,
            None => match self.ds.get(Kind::IpamConfig, "default").await {
                Ok(Resource::IpamConfig(c)) => config_from(&c.spec),
                Ok(_) | Err(Error::NotFound { .. }) => Config::default(),
                Err(e) => return Err(store_err(e)),
            },
        };
        cfg.reserved = match self.cache.as_ref().and_then(|c| c.reservations()) {
            Some(r) => r,
            None => self.reservations().await?,
        };
        Ok(cfg)
    }

    async fn get_block(&self, cidr: IpNet) -> Result<Option<Versioned<Block>>, StoreError> {
        match self
            .ds
            .get(Kind::IpamBlock, &block_name(&cidr.to_string()))
            .await
        {
            Ok(r @ Resource::IpamBlock(_)) => {
                let b = versioned_block(&r)?;
                self.cache_put(|c| c.put(r, b.revision));
                Ok(Some(b))
            }
            Ok(_) | Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_err(e)),
        }
    }

    async fn list_blocks(&self) -> Result<Vec<Versioned<Block>>, StoreError> {
        let l = self
            .ds
            .list(Kind::IpamBlock, None)
            .await
            .map_err(store_err)?;
        let blocks: Vec<Versioned<Block>> = l
            .items
            .iter()
            .map(versioned_block)
            .collect::<Result<_, _>>()?;
        self.cache_put(|c| {
            for (r, b) in l.items.into_iter().zip(&blocks) {
                c.put(r, b.revision)
            }
        });
        Ok(blocks)
    }

    async fn create_block(&self, block: &Block) -> Result<Revision, StoreError> {
        let r = block_resource(block);
        let rev = self.create(r.clone()).await?;
        self.cache_put(|c| c.put(r, rev));
        Ok(rev)
    }

    async fn update_block(&self, block: &Block, rev: Revision) -> Result<Revision, StoreError> {
        let r = block_resource(block);
        let rev = self.update(r.clone(), rev).await?;
        self.cache_put(|c| c.put(r, rev));
        Ok(rev)
    }

    async fn delete_block(&self, cidr: IpNet, rev: Revision) -> Result<(), StoreError> {
        let name = block_name(&cidr.to_string());
        self.ds
            .delete(Kind::IpamBlock, &name, Some(rev))
            .await
            .map_err(store_err)?;
        self.cache_put(|c| c.delete(Kind::IpamBlock, &name, rev));
        Ok(())
    }

    async fn list_affinities(
        &self,
        node: Option<&str>,
    ) -> Result<Vec<Versioned<Affinity>>, StoreError> {
        let prefix = node.map(|n| format!("{n}/"));
        let l = self
            .ds
            .list(Kind::BlockAffinity, prefix.as_deref())
            .await
            .map_err(store_err)?;
        let items: Vec<Resource> = l
            .items
            .into_iter()
            .filter(|r| matches!(r, Resource::BlockAffinity(_)))
            .collect();
        let affs: Vec<Versioned<Affinity>> = items
            .iter()
            .map(versioned_affinity)
            .collect::<Result<_, _>>()?;
        self.cache_put(|c| {
            for (r, a) in items.into_iter().zip(&affs) {
                c.put(r, a.revision)
            }
        });
        Ok(affs)
    }

    async fn create_affinity(&self, a: &Affinity) -> Result<Revision, StoreError> {
        let r = affinity_resource(a);
        let rev = self.create(r.clone()).await?;
        self.cache_put(|c| c.put(r, rev));
        Ok(rev)
    }

    async fn update_affinity(&self, a: &Affinity, rev: Revision) -> Result<Revision, StoreError> {
        let r = affinity_resource(a);
        let rev = self.update(r.clone(), rev).await?;
        self.cache_put(|c| c.put(r, rev));
        Ok(rev)
    }

    async fn delete_affinity(
        &self,
        node: &str,
        cidr: IpNet,
        rev: Revision,
    ) -> Result<(), StoreError> {
        let name = affinity_name(node, &cidr.to_string());
        self.ds
            .delete(Kind::BlockAffinity, &name, Some(rev))
            .await
            .map_err(store_err)?;
        self.cache_put(|c| c.delete(Kind::BlockAffinity, &name, rev));
        Ok(())
    }

    async fn get_handle(&self, id: &str) -> Result<Option<Versioned<Handle>>, StoreError> {
        match self.ds.get(Kind::IpamHandle, id).await {
            Ok(r) => versioned_handle(&r).map(Some),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_err(e)),
        }
    }

    async fn list_handles(&self) -> Result<Vec<Versioned<Handle>>, StoreError> {
        let l = self
            .ds
            .list(Kind::IpamHandle, None)
            .await
            .map_err(store_err)?;
        l.items.iter().map(versioned_handle).collect()
    }

    async fn create_handle(&self, h: &Handle) -> Result<Revision, StoreError> {
        self.create(handle_resource(h)).await
    }

    async fn update_handle(&self, h: &Handle, rev: Revision) -> Result<Revision, StoreError> {
        self.update(handle_resource(h), rev).await
    }

    async fn delete_handle(&self, id: &str, rev: Revision) -> Result<(), StoreError> {
        self.ds
            .delete(Kind::IpamHandle, id, Some(rev))
            .await
            .map(|_| ())
            .map_err(store_err)
    }

    async fn write_block_and_handle(
        &self,
        block: &Block,
        block_rev: Revision,
        handle: &Handle,
        handle_rev: Option<Revision>,
    ) -> Result<Written, (Part, StoreError)> {
        let mut b = block_resource(block);
        b.set_revision(block_rev);
        let h = match handle_rev {
            None => TxnWrite::Create(handle_resource(handle)),
            Some(revision) if handle.blocks.is_empty() => TxnWrite::Delete {
                kind: Kind::IpamHandle,
                name: handle.id.clone(),
                revision,
            },
            Some(rev) => {
                let mut r = handle_resource(handle);
                r.set_revision(rev);
                TxnWrite::Update(r)
            }
        };
        let deleted = matches!(h, TxnWrite::Delete { .. });
        let revs = self
            .ds
            .transact(vec![TxnWrite::Update(b.clone()), h])
            .await
            .map_err(txn_err)?;
        let (block_rev, handle_rev) = (revs[0], revs[1]);
        self.cache_put(|c| c.put(b, block_rev));
        Ok(Written {
            block: block_rev,
            handle: (!deleted).then_some(handle_rev),
        })
    }

    async fn cached_affine_blocks(&self, node: &str) -> Option<Vec<Versioned<Block>>> {
        self.cache.as_ref()?.affine_blocks(node)
    }
}
