//! Claiming a block for a host, Calico's way: a pending BlockAffinity,
//! then the IPAMBlock (a CAS create), then the affinity confirmed. Each
//! step is a separate write, so a crash between them leaves a pending
//! affinity that the next claim of the same block picks up again (or that
//! `ipam check` reports), never a block that no affinity points at.

use crate::allocator::{Ipam, IpamError};
use crate::block::Block;
use crate::pool::Pool;
use crate::store::*;
use ipnet::IpNet;
use std::collections::HashSet;

impl<S: IpamStore> Ipam<S> {
    /// Finds the first block (in this host's search order) that no one has
    /// created, and claims it.
    pub(crate) async fn claim_free_block(
        &self,
        node: &str,
        pools: &[Pool],
    ) -> Result<Option<IpNet>, IpamError> {
        let existing: HashSet<IpNet> = self
            .store
            .list_blocks()
            .await?
            .into_iter()
            .map(|b| b.value.cidr)
            .collect();
        for p in pools {
            if let Some(cidr) = p.block_search_order(node).find(|c| !existing.contains(c)) {
                self.claim(node, cidr).await?;
                return Ok(Some(cidr));
            }
        }
        Ok(None)
    }

    /// Calico's claim: pending affinity → block (CAS create) → confirmed.
    /// A pending affinity left by a crash is picked up again here; a block
    /// that turns out to be another host's makes us drop our pending
    /// affinity and report a conflict so the caller looks elsewhere.
    pub async fn claim(&self, node: &str, cidr: IpNet) -> Result<(), IpamError> {
        let pending = Affinity {
            node: node.to_string(),
            cidr,
            state: AffinityState::Pending,
        };
        let rev = match self.store.create_affinity(&pending).await {
            Ok(r) => r,
            // Our own leftover pending affinity is picked up; one being
            // released (pendingDeletion) must finish first: retry later.
            Err(StoreError::AlreadyExists) => match self.store.get_affinity(node, cidr).await? {
                Some(a) if a.value.state != AffinityState::PendingDeletion => a.revision,
                _ => return Err(IpamError::Store(StoreError::Conflict)),
            },
            Err(e) => return Err(e.into()),
        };
        let block = Block::new(cidr, Some(format!("host:{node}")), 1).map_err(|e| {
            IpamError::Store(StoreError::Unavailable(format!("invalid block: {e}")))
        })?;
        match self.store.create_block(&block).await {
            Ok(_) => {}
            Err(StoreError::AlreadyExists) => {
                let ours = self
                    .store
                    .get_block(cidr)
                    .await?
                    .is_some_and(|b| b.value.host() == Some(node));
                if !ours {
                    let _ = self.store.delete_affinity(node, cidr, rev).await;
                    return Err(IpamError::Store(StoreError::Conflict));
                }
            }
            Err(e) => return Err(e.into()),
        }
        let confirmed = Affinity {
            state: AffinityState::Confirmed,
            ..pending
        };
        match self.store.update_affinity(&confirmed, rev).await {
            Ok(_) => Ok(()),
            Err(StoreError::NotFound) => Err(IpamError::Store(StoreError::Conflict)),
            Err(e) => Err(e.into()),
        }
    }
}
