//! Release by IP, by handle, or by IP only while a given handle holds it;
//! handle records follow the blocks, and an emptied block goes back to the
//! pool when its host doesn't need it.

use crate::allocator::{seed_for, Conflicts, Ipam, IpamError};
use crate::block::Block;
use crate::store::*;
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// What [`Ipam::release_host_affinities`] did with each of the node's
/// affinities.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostRelease {
    pub released: Vec<IpNet>,
    /// Blocks that still hold addresses (or changed meanwhile).
    pub kept: Vec<IpNet>,
}

impl<S: IpamStore> Ipam<S> {
    /// Releases addresses; ones not assigned are ignored. Returns those
    /// released.
    pub async fn release_ips(&self, ips: &[IpAddr]) -> Result<Vec<IpAddr>, IpamError> {
        if ips.is_empty() {
            return Ok(Vec::new());
        }
        let blocks: Vec<IpNet> = self
            .store
            .list_blocks()
            .await?
            .into_iter()
            .map(|b| b.value.cidr)
            .filter(|c| ips.iter().any(|ip| c.contains(ip)))
            .collect();
        let mut released = Vec::new();
        for cidr in blocks {
            let mine: Vec<IpAddr> = ips.iter().copied().filter(|ip| cidr.contains(ip)).collect();
            released.extend(self.release_in_block(cidr, |b| b.release(&mine)).await?);
        }
        Ok(released)
    }

    /// Releases `ip` only while `handle_id` still holds it, so a repair
    /// racing a release and re-assignment of the same address can't free
    /// the new holder's. Returns whether it was released.
    pub async fn release_ip_held_by(&self, ip: IpAddr, handle_id: &str) -> Result<bool, IpamError> {
        let Some(cidr) = self
            .store
            .list_blocks()
            .await?
            .into_iter()
            .map(|b| b.value.cidr)
            .find(|c| c.contains(&ip))
        else {
            return Ok(false);
        };
        let released = self
            .release_in_block(cidr, |b| {
                if b.holder(ip).and_then(|a| a.handle_id.as_deref()) == Some(handle_id) {
                    b.release(&[ip])
                } else {
                    Vec::new()
                }
            })
            .await?;
        Ok(!released.is_empty())
    }

    /// Releases everything held by `handle_id`. Idempotent: an unknown
    /// handle releases nothing and is not an error.
    pub async fn release_by_handle(&self, handle_id: &str) -> Result<Vec<IpAddr>, IpamError> {
        let blocks: Vec<IpNet> = match self.store.get_handle(handle_id).await? {
            Some(h) => h.value.blocks.keys().copied().collect(),
            // No record (e.g. a crash between block and handle write): find
            // the addresses by scanning.
            None => self
                .store
                .list_blocks()
                .await?
                .into_iter()
                .filter(|b| !b.value.ips_with_handle(handle_id).is_empty())
                .map(|b| b.value.cidr)
                .collect(),
        };
        let mut released = Vec::new();
        for cidr in blocks {
            let id = handle_id.to_string();
            released.extend(
                self.release_in_block(cidr, move |b| {
                    let ips = b.release_handle(&id);
                    ips.into_iter().map(|ip| (ip, Some(id.clone()))).collect()
                })
                .await?,
            );
        }
        Ok(released)
    }

    async fn release_in_block(
        &self,
        cidr: IpNet,
        f: impl Fn(&mut Block) -> Vec<(IpAddr, Option<String>)>,
    ) -> Result<Vec<IpAddr>, IpamError> {
        let mut conflicts = Conflicts {
            n: 0,
            seed: seed_for(&cidr.to_string()),
        };
        loop {
            let Some(vb) = self.store.get_block(cidr).await? else {
                return Ok(Vec::new());
            };
            let mut b = vb.value;
            let freed = f(&mut b);
            if freed.is_empty() {
                return Ok(Vec::new());
            }
            let mut per_handle: BTreeMap<String, i64> = BTreeMap::new();
            for (_, h) in &freed {
                if let Some(h) = h {
                    *per_handle.entry(h.clone()).or_default() -= 1;
                }
            }
            // One handle with a record (the usual release by handle): block
            // and handle change in one transaction. Otherwise the block
            // first, then each handle.
            let single = match per_handle.iter().next() {
                Some((id, d)) if per_handle.len() == 1 => {
                    self.store.get_handle(id).await?.map(|vh| (vh, *d))
                }
                _ => None,
            };
            if let Some((vh, d)) = single {
                let mut h = vh.value;
                let left = i64::from(h.blocks.get(&cidr).copied().unwrap_or(0)) + d;
                if left > 0 {
                    h.blocks.insert(cidr, left as u32);
                } else {
                    h.blocks.remove(&cidr);
                }
                match self
                    .store
                    .write_block_and_handle(&b, vb.revision, &h, Some(vh.revision))
                    .await
                {
                    Ok(_) => {}
                    Err((_, StoreError::Conflict | StoreError::NotFound)) => {
                        conflicts.hit().await?;
                        continue;
                    }
                    Err((_, e)) => return Err(e.into()),
                }
            } else {
                match self.store.update_block(&b, vb.revision).await {
                    Ok(_) => {}
                    Err(StoreError::Conflict) => {
                        conflicts.hit().await?;
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                }
                for (h, d) in per_handle {
                    self.adjust_handle(&h, cidr, d).await?;
                }
            }
            if b.is_empty() {
                self.release_unneeded_affinity(cidr).await?;
            }
            return Ok(freed.into_iter().map(|(ip, _)| ip).collect());
        }
    }

    /// Gives an empty block back to the pool when its host has another
    /// confirmed block in the same pool, so pools don't fragment into
    /// blocks nobody needs; a host's last block in a pool is kept. A block
    /// in no pool (its pool was deleted) has nothing to go back to and no
    /// future allocations: it goes as soon as it is empty, as Calico's
    /// pool deletion leaves it. Calico's order: affinity to pendingDeletion
    /// (allocators stop using it), CAS delete of the block (fails if an
    /// allocator got there first, and then the affinity is restored), then
    /// the affinity itself.
    async fn release_unneeded_affinity(&self, cidr: IpNet) -> Result<(), IpamError> {
        let Some(vb) = self.store.get_block(cidr).await? else {
            return Ok(());
        };
        if !vb.value.is_empty() {
            return Ok(());
        }
        let pools = self.store.pools().await?;
        let Some(pool) = pools.iter().find(|p| p.cidr.contains(&cidr)) else {
            return self.release_orphan_block(vb).await.map(|_| ());
        };
        let Some(node) = vb.value.host().map(str::to_string) else {
            return Ok(());
        };
        let affs = self.store.list_affinities(Some(&node)).await?;
        let others = affs.iter().any(|a| {
            a.value.cidr != cidr
                && a.value.state == AffinityState::Confirmed
                && pool.cidr.contains(&a.value.cidr)
        });
        let Some(mine) = affs.into_iter().find(|a| a.value.cidr == cidr) else {
            return Ok(());
        };
        if !others || mine.value.state != AffinityState::Confirmed {
            return Ok(());
        }
        self.release_empty_block(mine, vb.revision)
            .await
            .map(|_| ())
    }

    /// Releases a deleted node's block affinities, as Calico's
    /// `ReleaseHostAffinities` with "must be empty": each empty block
    /// affine to `node` is deleted with its affinity; a block that still
    /// holds addresses keeps both (the caller retries once they are
    /// released); an affinity whose block is gone or belongs to another
    /// host is deleted. Returns the blocks released and those kept.
    pub async fn release_host_affinities(&self, node: &str) -> Result<HostRelease, IpamError> {
        let mut out = HostRelease::default();
        for aff in self.store.list_affinities(Some(node)).await? {
            let cidr = aff.value.cidr;
            let block = self.store.get_block(cidr).await?;
            match block {
                Some(vb) if vb.value.host() == Some(node) => {
                    if vb.value.is_empty() && self.release_empty_block(aff, vb.revision).await? {
                        out.released.push(cidr);
                    } else {
                        out.kept.push(cidr);
                    }
                }
                _ => match self.store.delete_affinity(node, cidr, aff.revision).await {
                    Ok(()) | Err(StoreError::NotFound) => out.released.push(cidr),
                    Err(StoreError::Conflict) => out.kept.push(cidr),
                    Err(e) => return Err(e.into()),
                },
            }
        }
        Ok(out)
    }

    /// Deletes `node`'s empty blocks that no pool contains (their pool was
    /// deleted), with their affinities, as Calico's pool deletion does;
    /// the ones still holding addresses stay until they are released.
    /// Returns the blocks deleted.
    pub async fn release_orphan_blocks(&self, node: &str) -> Result<Vec<IpNet>, IpamError> {
        let pools = self.store.pools().await?;
        let mut out = Vec::new();
        for aff in self.store.list_affinities(Some(node)).await? {
            let cidr = aff.value.cidr;
            if pools.iter().any(|p| p.cidr.contains(&cidr)) {
                continue;
            }
            if let Some(vb) = self.store.get_block(cidr).await? {
                if self.release_orphan_block(vb).await? {
                    out.push(cidr);
                }
            }
        }
        Ok(out)
    }

    /// Deletes an empty block that no pool contains, with its host's
    /// affinity (Calico's order, [`Self::release_empty_block`]). False when
    /// it still holds addresses, is back in a pool, or changed meanwhile.
    pub async fn release_orphan_block(&self, vb: Versioned<Block>) -> Result<bool, IpamError> {
        let cidr = vb.value.cidr;
        if !vb.value.is_empty()
            || self
                .store
                .pools()
                .await?
                .iter()
                .any(|p| p.cidr.contains(&cidr))
        {
            return Ok(false);
        }
        if let Some(node) = vb.value.host().map(str::to_string) {
            if let Some(aff) = self.store.get_affinity(&node, cidr).await? {
                return self.release_empty_block(aff, vb.revision).await;
            }
        }
        match self.store.delete_block(cidr, vb.revision).await {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict | StoreError::NotFound) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Calico's order for giving back an empty block: affinity to
    /// pendingDeletion (allocators stop using it), CAS delete of the block
    /// at `block_rev` (fails if an allocator got there first, and then the
    /// affinity is restored), then the affinity itself. Returns whether the
    /// block went.
    async fn release_empty_block(
        &self,
        aff: Versioned<Affinity>,
        block_rev: Revision,
    ) -> Result<bool, IpamError> {
        let (node, cidr) = (aff.value.node.clone(), aff.value.cidr);
        let restore = aff.value.state;
        let mut a = aff.value;
        a.state = AffinityState::PendingDeletion;
        let rev = match self.store.update_affinity(&a, aff.revision).await {
            Ok(r) => r,
            Err(StoreError::Conflict | StoreError::NotFound) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        // Past this point a Conflict means another writer (a claimer, or a
        // concurrent release) changed the affinity: its state wins.
        let settled = |r: Result<(), StoreError>| match r {
            Ok(()) | Err(StoreError::NotFound | StoreError::Conflict) => Ok(()),
            Err(e) => Err(IpamError::Store(e)),
        };
        match self.store.delete_block(cidr, block_rev).await {
            Ok(()) => settled(self.store.delete_affinity(&node, cidr, rev).await).map(|_| true),
            Err(StoreError::Conflict | StoreError::NotFound) => {
                a.state = restore;
                settled(self.store.update_affinity(&a, rev).await.map(|_| ())).map(|_| false)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn adjust_handle(&self, id: &str, block: IpNet, delta: i64) -> Result<(), IpamError> {
        let mut conflicts = Conflicts {
            n: 0,
            seed: seed_for(id),
        };
        loop {
            let res = match self.store.get_handle(id).await? {
                None if delta <= 0 => return Ok(()),
                None => {
                    let mut h = Handle {
                        id: id.to_string(),
                        blocks: BTreeMap::new(),
                    };
                    h.blocks.insert(block, delta as u32);
                    self.store.create_handle(&h).await.map(|_| ())
                }
                Some(vh) => {
                    let mut h = vh.value;
                    let cur = i64::from(h.blocks.get(&block).copied().unwrap_or(0));
                    let new = (cur + delta).max(0) as u32;
                    if new == 0 {
                        h.blocks.remove(&block);
                    } else {
                        h.blocks.insert(block, new);
                    }
                    if h.blocks.is_empty() {
                        self.store.delete_handle(id, vh.revision).await
                    } else {
                        self.store.update_handle(&h, vh.revision).await.map(|_| ())
                    }
                }
            };
            match res {
                Ok(()) => return Ok(()),
                Err(StoreError::Conflict | StoreError::AlreadyExists | StoreError::NotFound) => {
                    conflicts.hit().await?
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}
