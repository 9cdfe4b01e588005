//! IPAM's fast path over the shared [`ClusterCache`]: what an allocator
//! reads on every assignment but what rarely changes (IPAMConfig, pools,
//! node labels, affinities, blocks, IPReservations), converted to
//! `tabby_ipam` types as they are read.
//!
//! Staleness is safe by construction: the cluster cache never moves
//! backwards (see its module doc), and the allocator acts on a cached block
//! only through a CAS write on its revision: a stale copy fails that write,
//! and the allocator then reads through the store. A stale cache can cost a
//! retry, never a duplicate address. This process's own writes are put
//! into the cache at once, so the next assignment does not wait for the
//! watch to bring them back.
//!
//! Reservations are the exception: no CAS covers them, so a reservation
//! is honoured from the moment the watch delivers it (milliseconds after it
//! is written), not from the moment it is written. Calico has the same
//! race between reading reservations and writing the block; reading them
//! through on every assignment would close it only for reservations that
//! are already committed, and costs a datastore read per assignment.
//!
//! The cache is only consulted while every IPAM kind's watch is healthy:
//! otherwise every read goes to the store.

use super::convert::{config_from, pool_from, versioned_affinity, versioned_block};
use crate::cache::ClusterCache;
use crate::datastore::Revision;
use crate::resources::ipam::block_name;
use crate::resources::{Kind, Resource};
use ipnet::IpNet;
use std::collections::BTreeMap;
use std::sync::Arc;
use tabby_ipam::block::Block;
use tabby_ipam::pool::Pool;
use tabby_ipam::store::{AffinityState, Config, StoreError, Versioned};

/// The kinds IPAM reads from the cache.
pub const KINDS: [Kind; 6] = [
    Kind::IpPool,
    Kind::IpReservation,
    Kind::Node,
    Kind::IpamConfig,
    Kind::BlockAffinity,
    Kind::IpamBlock,
];

pub(crate) struct IpamView {
    cache: Arc<ClusterCache>,
}

impl IpamView {
    pub(crate) fn new(cache: Arc<ClusterCache>) -> Self {
        IpamView { cache }
    }

    pub(crate) fn ready(&self) -> bool {
        self.cache.ready(&KINDS)
    }

    pub(crate) async fn wait_ready(&self, timeout: std::time::Duration) -> bool {
        self.cache.wait_ready(&KINDS, timeout).await
    }

    pub(crate) fn pools(&self) -> Option<Result<Vec<Pool>, StoreError>> {
        self.ready().then(|| {
            self.cache
                .list(Kind::IpPool)
                .iter()
                .filter_map(|r| match &**r {
                    Resource::IpPool(p) => Some(pool_from(&p.metadata.name, &p.spec)),
                    _ => None,
                })
                .collect()
        })
    }

    pub(crate) fn labels(&self, node: &str) -> Option<BTreeMap<String, String>> {
        self.ready().then(|| {
            self.cache
                .get(Kind::Node, node)
                .map(|(_, r)| r.metadata().labels.clone())
                .unwrap_or_default()
        })
    }

    pub(crate) fn config(&self) -> Option<Config> {
        self.ready()
            .then(|| match self.cache.get(Kind::IpamConfig, "default") {
                Some((_, r)) => match &*r {
                    Resource::IpamConfig(c) => config_from(&c.spec),
                    _ => Config::default(),
                },
                None => Config::default(),
            })
    }

    /// Every reservation's networks, merged.
    pub(crate) fn reservations(&self) -> Option<Vec<IpNet>> {
        self.ready().then(|| {
            let all: Vec<IpNet> = self
                .cache
                .list(Kind::IpReservation)
                .iter()
                .filter_map(|r| match &**r {
                    Resource::IpReservation(o) => Some(o.spec.networks()),
                    _ => None,
                })
                .flatten()
                .collect();
            IpNet::aggregate(&all)
        })
    }

    /// `node`'s confirmed affine blocks, in CIDR order. A stored value that
    /// can't be read is as good as absent here; reads through the store
    /// report it.
    pub(crate) fn affine_blocks(&self, node: &str) -> Option<Vec<Versioned<Block>>> {
        if !self.ready() {
            return None;
        }
        let mut cidrs: Vec<IpNet> = self
            .cache
            .range(Kind::BlockAffinity, &format!("{node}/"))
            .iter()
            .filter_map(|r| versioned_affinity(r).ok())
            .filter(|a| a.value.node == node && a.value.state == AffinityState::Confirmed)
            .map(|a| a.value.cidr)
            .collect();
        cidrs.sort();
        Some(
            cidrs
                .into_iter()
                .filter_map(|cidr| {
                    let (revision, r) = self
                        .cache
                        .get(Kind::IpamBlock, &block_name(&cidr.to_string()))?;
                    let mut b = versioned_block(&r).ok()?;
                    b.revision = revision;
                    Some(b)
                })
                .collect(),
        )
    }

    /// Records this process's write (or read) of `r` at `rev`.
    pub(crate) fn put(&self, mut r: Resource, rev: Revision) {
        r.set_revision(rev);
        self.cache.put(r, rev);
    }

    pub(crate) fn delete(&self, kind: Kind, name: &str, rev: Revision) {
        self.cache.delete(kind, name, rev);
    }
}
