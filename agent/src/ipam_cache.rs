//! A watch-fed cache of what an allocator reads on every assignment but
//! what rarely changes: IPAMConfig, pools, node labels, affinities, blocks,
//! IPReservations.
//!
//! Staleness is safe by construction. Every entry carries the revision it
//! was last modified at and is only ever replaced by a newer one, whether
//! that comes from the watch, a read through the store, or this process's
//! own write; so the cache never moves backwards. The allocator acts on a
//! cached block only through a CAS write on its revision: a stale copy
//! fails that write, and the allocator then reads through the store. A
//! stale cache can cost a retry, never a duplicate address.
//!
//! Reservations are the exception: no CAS covers them, so a reservation
//! is honoured from the moment the watch delivers it (milliseconds after it
//! is written), not from the moment it is written. Calico has the same
//! race between reading reservations and writing the block; reading them
//! through on every assignment would close it only for reservations that
//! are already committed, and costs a datastore read per assignment.
//!
//! The cache is only consulted while its watch is healthy: after a watch
//! error it is marked not ready (every read goes to the store) until it has
//! listed again.

use crate::datastore::{Datastore, EventType, Revision};
use crate::resources::{Kind, Resource};
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tabby_ipam::block::Block;
use tabby_ipam::pool::Pool;
use tabby_ipam::store::{Affinity, AffinityState, Config, StoreError, Versioned};

/// The kinds the cache follows.
pub(crate) const KINDS: [Kind; 6] = [
    Kind::IpPool,
    Kind::IpReservation,
    Kind::Node,
    Kind::IpamConfig,
    Kind::BlockAffinity,
    Kind::IpamBlock,
];

/// Values by key, each with its last-modified revision; a deleted key
/// keeps its revision as a tombstone so an older event can't revive it.
struct Revd<K, V>(BTreeMap<K, (Revision, Option<V>)>);

impl<K: Ord + Clone, V> Default for Revd<K, V> {
    fn default() -> Self {
        Revd(BTreeMap::new())
    }
}

impl<K: Ord + Clone, V> Revd<K, V> {
    fn newer(&self, k: &K, rev: Revision) -> bool {
        self.0.get(k).is_none_or(|(r, _)| rev > *r)
    }

    fn put(&mut self, k: K, rev: Revision, v: V) {
        if self.newer(&k, rev) {
            self.0.insert(k, (rev, Some(v)));
        }
    }

    /// `rev` is the deletion's revision, or the last value's revision when
    /// only that is known (any event no newer than it is older still).
    fn delete(&mut self, k: K, rev: Revision) {
        if self.newer(&k, rev) || self.0.get(&k).is_some_and(|(r, _)| *r == rev) {
            self.0.insert(k, (rev, None));
        }
    }

    /// Marks every key not in `present` that is older than `rev` deleted:
    /// a fresh list at `rev` no longer has it.
    fn retain_listed(&mut self, present: &BTreeSet<K>, rev: Revision) {
        for (k, (r, v)) in self.0.iter_mut() {
            if *r < rev && !present.contains(k) {
                *r = rev;
                *v = None;
            }
        }
    }

    fn live(&self) -> impl Iterator<Item = (&K, Revision, &V)> {
        self.0
            .iter()
            .filter_map(|(k, (r, v))| v.as_ref().map(|v| (k, *r, v)))
    }

    fn get(&self, k: &K) -> Option<(Revision, &V)> {
        self.0.get(k).and_then(|(r, v)| v.as_ref().map(|v| (*r, v)))
    }
}

#[derive(Default)]
struct State {
    ready: bool,
    pools: Revd<String, Result<Pool, StoreError>>,
    labels: Revd<String, BTreeMap<String, String>>,
    config: Revd<(), Config>,
    affinities: Revd<(String, IpNet), Affinity>,
    blocks: Revd<IpNet, Block>,
    reservations: Revd<String, Vec<IpNet>>,
}

#[derive(Default)]
pub(crate) struct IpamCache {
    s: Mutex<State>,
}

/// A resource as the cache keeps it: None for kinds it doesn't follow, an
/// error for a stored value that can't be read.
pub(crate) type Converted = Option<Result<Item, StoreError>>;

pub(crate) enum Item {
    Pool(String, Result<Pool, StoreError>),
    Labels(String, BTreeMap<String, String>),
    Config(Config),
    Affinity(Affinity),
    Block(Block),
    Reservation(String, Vec<IpNet>),
}

impl IpamCache {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update is a single insert: a panic elsewhere can't leave
        // the maps half-written.
        self.s.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn ready(&self) -> bool {
        self.lock().ready
    }

    pub(crate) fn pools(&self) -> Option<Result<Vec<Pool>, StoreError>> {
        let g = self.lock();
        g.ready
            .then(|| g.pools.live().map(|(_, _, p)| p.clone()).collect())
    }

    pub(crate) fn labels(&self, node: &str) -> Option<BTreeMap<String, String>> {
        let g = self.lock();
        g.ready.then(|| {
            g.labels
                .get(&node.to_string())
                .map(|(_, l)| l.clone())
                .unwrap_or_default()
        })
    }

    pub(crate) fn config(&self) -> Option<Config> {
        let g = self.lock();
        g.ready.then(|| {
            g.config
                .get(&())
                .map(|(_, c)| c.clone())
                .unwrap_or_default()
        })
    }

    /// Every reservation's networks, merged.
    pub(crate) fn reservations(&self) -> Option<Vec<IpNet>> {
        let g = self.lock();
        g.ready.then(|| {
            let all: Vec<IpNet> = g
                .reservations
                .live()
                .flat_map(|(_, _, n)| n.iter().copied())
                .collect();
            IpNet::aggregate(&all)
        })
    }

    /// `node`'s confirmed affine blocks, in CIDR order.
    pub(crate) fn affine_blocks(&self, node: &str) -> Option<Vec<Versioned<Block>>> {
        let g = self.lock();
        if !g.ready {
            return None;
        }
        let from = (node.to_string(), IpNet::default());
        Some(
            g.affinities
                .0
                .range(from..)
                .take_while(|((n, _), _)| n == node)
                .filter_map(|((_, cidr), (_, a))| {
                    a.as_ref()
                        .filter(|a| a.state == AffinityState::Confirmed)
                        .map(|_| *cidr)
                })
                .filter_map(|cidr| {
                    g.blocks.get(&cidr).map(|(revision, b)| Versioned {
                        value: b.clone(),
                        revision,
                    })
                })
                .collect(),
        )
    }

    pub(crate) fn put_block(&self, b: &Block, rev: Revision) {
        self.lock().blocks.put(b.cidr, rev, b.clone());
    }

    pub(crate) fn delete_block(&self, cidr: IpNet, rev: Revision) {
        self.lock().blocks.delete(cidr, rev);
    }

    pub(crate) fn put_affinity(&self, a: &Affinity, rev: Revision) {
        self.lock()
            .affinities
            .put((a.node.clone(), a.cidr), rev, a.clone());
    }

    pub(crate) fn delete_affinity(&self, node: &str, cidr: IpNet, rev: Revision) {
        self.lock().affinities.delete((node.to_string(), cidr), rev);
    }

    fn apply(&self, g: &mut State, item: Item, rev: Revision, deleted: bool) {
        match (item, deleted) {
            (Item::Pool(n, p), false) => g.pools.put(n, rev, p),
            (Item::Pool(n, _), true) => g.pools.delete(n, rev),
            (Item::Labels(n, l), false) => g.labels.put(n, rev, l),
            (Item::Labels(n, _), true) => g.labels.delete(n, rev),
            (Item::Config(c), false) => g.config.put((), rev, c),
            (Item::Config(_), true) => g.config.delete((), rev),
            (Item::Affinity(a), false) => g.affinities.put((a.node.clone(), a.cidr), rev, a),
            (Item::Affinity(a), true) => g.affinities.delete((a.node, a.cidr), rev),
            (Item::Block(b), false) => g.blocks.put(b.cidr, rev, b),
            (Item::Block(b), true) => g.blocks.delete(b.cidr, rev),
            (Item::Reservation(n, r), false) => g.reservations.put(n, rev, r),
            (Item::Reservation(n, _), true) => g.reservations.delete(n, rev),
        }
    }

    /// Replaces what a list of `kind` at `rev` shows, keeping newer entries.
    fn load(
        &self,
        kind: Kind,
        items: &[Resource],
        rev: Revision,
        convert: fn(&Resource) -> Converted,
    ) {
        let mut g = self.lock();
        let mut names = BTreeSet::new();
        let mut keys_pool = BTreeSet::new();
        let mut keys_aff = BTreeSet::new();
        let mut keys_block = BTreeSet::new();
        let mut keys_res = BTreeSet::new();
        for r in items {
            let Some(Ok(item)) = convert(r) else { continue };
            match &item {
                Item::Pool(n, _) => keys_pool.insert(n.clone()),
                Item::Labels(n, _) => names.insert(n.clone()),
                Item::Affinity(a) => keys_aff.insert((a.node.clone(), a.cidr)),
                Item::Block(b) => keys_block.insert(b.cidr),
                Item::Reservation(n, _) => keys_res.insert(n.clone()),
                Item::Config(_) => true,
            };
            self.apply(&mut g, item, r.revision().unwrap_or_default(), false);
        }
        match kind {
            Kind::IpPool => g.pools.retain_listed(&keys_pool, rev),
            Kind::Node => g.labels.retain_listed(&names, rev),
            Kind::IpamConfig if items.is_empty() => g.config.retain_listed(&BTreeSet::new(), rev),
            Kind::BlockAffinity => g.affinities.retain_listed(&keys_aff, rev),
            Kind::IpamBlock => g.blocks.retain_listed(&keys_block, rev),
            Kind::IpReservation => g.reservations.retain_listed(&keys_res, rev),
            _ => {}
        }
    }

    fn event(
        &self,
        r: &Resource,
        rev: Revision,
        deleted: bool,
        convert: fn(&Resource) -> Converted,
    ) {
        match convert(r) {
            Some(Ok(item)) => {
                let mut g = self.lock();
                self.apply(&mut g, item, rev, deleted);
            }
            // A value that can't be read is as good as absent for the fast
            // path; reads through the store will report it.
            Some(Err(e)) => tracing::warn!(resource = %r.name(), error = %e, "IPAM cache skips"),
            None => {}
        }
    }

    fn set_ready(&self, ready: bool) {
        self.lock().ready = ready;
    }
}

/// Lists every followed kind into `cache`, then follows the watch until it
/// fails, and starts over; runs until aborted.
pub(crate) async fn follow(
    ds: Arc<dyn Datastore>,
    cache: Arc<IpamCache>,
    convert: fn(&Resource) -> Converted,
) {
    loop {
        if let Err(e) = follow_once(&ds, &cache, convert).await {
            tracing::warn!(error = %e, "IPAM cache watch ended; reading through the store until it is back");
        }
        cache.set_ready(false);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn follow_once(
    ds: &Arc<dyn Datastore>,
    cache: &IpamCache,
    convert: fn(&Resource) -> Converted,
) -> Result<(), crate::datastore::Error> {
    use futures::StreamExt;
    let mut from = Revision::MAX;
    for kind in KINDS {
        let l = ds.list(kind, None).await?;
        cache.load(kind, &l.items, l.revision, convert);
        from = from.min(l.revision);
    }
    let mut events = ds.watch(&KINDS, from).await?;
    cache.set_ready(true);
    while let Some(ev) = events.next().await {
        let ev = ev?;
        cache.event(
            &ev.resource,
            ev.revision,
            ev.event_type == EventType::Deleted,
            convert,
        );
    }
    Ok(())
}
