//! The cluster cache: one watch-fed copy of the datastore's resources that
//! every consumer in a process reads (the route calculation, BGP peering,
//! IPAM), in kube-runtime's watcher → reflector → store shape:
//!
//! ```text
//!  datastore ──list+watch per kind──► reflector task (reflector.rs, one per kind)
//!                                        │ replace / apply
//!                                        ▼
//!                                  ClusterCache (this file) ──changed()──► consumers
//!  own writes (IPAM) ──put/delete────────┘        ▲ read: list / get / range
//!                                                 └── node loop, IPAM view
//! ```
//!
//! Every entry carries the revision it was last modified at and is only
//! ever replaced by a newer one, whether that comes from the watch, a list,
//! or this process's own write; a deleted name keeps its revision as a
//! tombstone so an older event cannot bring it back. So the cache never
//! moves backwards, and writers that act on a cached value through a CAS
//! on its revision can only lose a retry to staleness, never correctness.
//!
//! A kind is *ready* while its reflector's watch is healthy. Consumers that
//! must not act on a possibly stale copy (IPAM's fast path) check that;
//! the node loop keeps using the last data through an outage, because the
//! dataplane should keep its state meanwhile.

mod health;
mod reflector;

pub use health::Stall;
pub use reflector::Reflectors;

use crate::datastore::{Datastore, Revision};
use crate::resources::{Kind, Resource};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime};
use tabby_bgp::log_limit::LogLimiter;
use tokio::sync::watch;

#[derive(Default)]
struct KindStore {
    ready: bool,
    /// When `ready` last became true (None while not ready).
    ready_since: Option<SystemTime>,
    /// The highest datastore revision applied: an object's, a deletion's or
    /// a list's. `node doctor` holds it against the datastore's own.
    revision: Revision,
    /// Why the kind is not ready (the last list or watch error).
    error: Option<String>,
    /// Bumped on every change that a reader could see.
    generation: u64,
    objects: BTreeMap<String, (Revision, Option<Arc<Resource>>)>,
}

impl KindStore {
    fn newer(&self, name: &str, rev: Revision) -> bool {
        self.objects.get(name).is_none_or(|(r, _)| rev > *r)
    }

    fn put(&mut self, r: Arc<Resource>, rev: Revision) -> bool {
        let name = r.key_name();
        if !self.newer(&name, rev) {
            return false;
        }
        self.objects.insert(name, (rev, Some(r)));
        self.generation += 1;
        self.revision = self.revision.max(rev);
        true
    }

    fn set_ready(&mut self, ready: bool) {
        if ready && !self.ready {
            self.ready_since = Some(SystemTime::now());
            self.error = None;
        }
        if !ready {
            self.ready_since = None;
        }
        self.ready = ready;
    }

    /// `rev` is the deletion's revision, or the last value's revision when
    /// only that is known (an event no newer than it is older still).
    fn delete(&mut self, name: &str, rev: Revision) -> bool {
        let same = self.objects.get(name).is_some_and(|(r, _)| *r == rev);
        if !(self.newer(name, rev) || same) {
            return false;
        }
        self.objects.insert(name.to_string(), (rev, None));
        self.generation += 1;
        self.revision = self.revision.max(rev);
        true
    }
}

/// One kind's state, for `node status` and `node doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindStatus {
    pub kind: Kind,
    pub ready: bool,
    pub ready_since: Option<SystemTime>,
    /// The highest datastore revision applied for the kind.
    pub revision: Revision,
    pub error: Option<String>,
}

/// The shared store. Cheap to read; every method takes `&self`.
pub struct ClusterCache {
    kinds: BTreeMap<Kind, RwLock<KindStore>>,
    changed: watch::Sender<u64>,
    /// Set while the datastore as a whole does not answer (`health.rs`):
    /// then no kind is ready, whatever its reflector believes, because a
    /// watch on a hung store looks exactly like a quiet one.
    stall: RwLock<Option<Stall>>,
    /// The reflectors' warnings, folded across kinds and retries: with
    /// the datastore down, each kind fails the same way every retry.
    warnings: Mutex<LogLimiter<String>>,
    /// Wakes reflectors sleeping out a backoff once the datastore is back.
    recovered: tokio::sync::Notify,
}

impl ClusterCache {
    /// An empty cache for `kinds` (no kind is ready until it is listed).
    pub fn new(kinds: &[Kind]) -> Arc<Self> {
        Arc::new(ClusterCache {
            kinds: kinds.iter().map(|k| (*k, RwLock::default())).collect(),
            changed: watch::channel(0).0,
            stall: RwLock::default(),
            warnings: Mutex::new(LogLimiter::new(health::WARN_WINDOW)),
            recovered: tokio::sync::Notify::new(),
        })
    }

    /// A cache for `kinds` with one reflector per kind following `ds`;
    /// the reflectors stop when the returned handle is dropped.
    pub fn follow(ds: Arc<dyn Datastore>, kinds: &[Kind]) -> (Arc<Self>, Reflectors) {
        let cache = Self::new(kinds);
        let reflectors = Reflectors::spawn(ds, cache.clone());
        (cache, reflectors)
    }

    pub fn kinds(&self) -> impl Iterator<Item = Kind> + '_ {
        self.kinds.keys().copied()
    }

    fn read(&self, kind: Kind) -> Option<RwLockReadGuard<'_, KindStore>> {
        // Each change is one insert: a panic elsewhere cannot leave a map
        // half-written, so a poisoned lock is still consistent.
        let l = self.kinds.get(&kind)?;
        Some(l.read().unwrap_or_else(|p| p.into_inner()))
    }

    fn write(&self, kind: Kind) -> Option<RwLockWriteGuard<'_, KindStore>> {
        let l = self.kinds.get(&kind)?;
        Some(l.write().unwrap_or_else(|p| p.into_inner()))
    }

    fn notify(&self) {
        self.changed.send_modify(|g| *g += 1);
    }

    /// Whether every one of `kinds` is followed, listed and watched, and
    /// the datastore answers.
    pub fn ready(&self, kinds: &[Kind]) -> bool {
        self.stall().is_none() && kinds.iter().all(|k| self.read(*k).is_some_and(|s| s.ready))
    }

    /// Every followed kind's readiness, revision and last error; while the
    /// datastore is stalled every kind is not ready, with the stall as its
    /// error.
    pub fn status(&self) -> Vec<KindStatus> {
        let stall = self.stall();
        self.kinds()
            .filter_map(|kind| {
                let s = self.read(kind)?;
                Some(KindStatus {
                    kind,
                    ready: s.ready && stall.is_none(),
                    ready_since: s.ready_since.filter(|_| stall.is_none()),
                    revision: s.revision,
                    error: match &stall {
                        Some(st) => Some(st.to_string()),
                        None => s.error.clone(),
                    },
                })
            })
            .collect()
    }

    /// Since when and why the datastore has not answered (None: it does).
    pub fn stall(&self) -> Option<Stall> {
        self.stall.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The highest revision applied over every kind: where the watches
    /// stand, and so where they resume after an outage.
    pub fn revision(&self) -> Revision {
        self.kinds()
            .filter_map(|k| self.read(k).map(|s| s.revision))
            .max()
            .unwrap_or(0)
    }

    /// Records why `kind` could not be listed or watched (kept until it
    /// is ready again).
    pub(crate) fn set_error(&self, kind: Kind, error: String) {
        if let Some(mut s) = self.write(kind) {
            s.error = Some(error);
        }
    }

    /// Waits up to `timeout` for [`Self::ready`].
    pub async fn wait_ready(&self, kinds: &[Kind], timeout: Duration) -> bool {
        let mut rx = self.changed.subscribe();
        let wait = async {
            while !self.ready(kinds) {
                if rx.changed().await.is_err() {
                    return false;
                }
            }
            true
        };
        tokio::time::timeout(timeout, wait).await.unwrap_or(false)
    }

    /// A receiver that wakes on every change (data or readiness); compare
    /// [`Self::generation`]s to learn which kinds changed.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Changes with every visible change of `kind`.
    pub fn generation(&self, kind: Kind) -> u64 {
        self.read(kind).map_or(0, |s| s.generation)
    }

    /// Every live object of `kind`, in name order.
    pub fn list(&self, kind: Kind) -> Vec<Arc<Resource>> {
        self.range(kind, "")
    }

    /// Live objects of `kind` whose names start with `prefix`.
    pub fn range(&self, kind: Kind, prefix: &str) -> Vec<Arc<Resource>> {
        let Some(s) = self.read(kind) else {
            return Vec::new();
        };
        s.objects
            .range(prefix.to_string()..)
            .take_while(|(n, _)| n.starts_with(prefix))
            .filter_map(|(_, (_, r))| r.clone())
            .collect()
    }

    /// One live object and its revision.
    pub fn get(&self, kind: Kind, name: &str) -> Option<(Revision, Arc<Resource>)> {
        let s = self.read(kind)?;
        let (rev, r) = s.objects.get(name)?;
        r.clone().map(|r| (*rev, r))
    }

    /// Records a value written or read at `rev` (kept only if newer).
    pub fn put(&self, r: Resource, rev: Revision) {
        let changed = self
            .write(r.kind())
            .is_some_and(|mut s| s.put(Arc::new(r), rev));
        if changed {
            self.notify();
        }
    }

    /// Records a deletion at `rev` (see [`KindStore::delete`]).
    pub fn delete(&self, kind: Kind, name: &str, rev: Revision) {
        let changed = self.write(kind).is_some_and(|mut s| s.delete(name, rev));
        if changed {
            self.notify();
        }
    }

    /// Replaces everything known of `kind` with a complete list whose own
    /// revision is unknown (kube-runtime's watcher does not pass it on):
    /// the list is newer than anything cached, so it wins outright; a name
    /// it lacks is deleted at the revision last seen for it, so any later
    /// event for that name still applies.
    pub(crate) fn relisted(&self, kind: Kind, items: Vec<Resource>) {
        let Some(mut s) = self.write(kind) else {
            return;
        };
        let mut present = BTreeSet::new();
        for r in items {
            let name = r.key_name();
            let at = r.revision().unwrap_or(0);
            s.revision = s.revision.max(at);
            let same = s
                .objects
                .get(&name)
                .is_some_and(|(_, v)| v.as_deref() == Some(&r));
            if !same {
                s.objects.insert(name.clone(), (at, Some(Arc::new(r))));
                s.generation += 1;
            }
            present.insert(name);
        }
        let mut gone = false;
        for (name, (_, v)) in s.objects.iter_mut() {
            if v.is_some() && !present.contains(name) {
                *v = None;
                gone = true;
            }
        }
        if gone || !s.ready {
            s.generation += 1;
        }
        s.set_ready(true);
        drop(s);
        self.notify();
    }

    /// Replaces what a list of `kind` at `rev` shows: listed objects are
    /// put, names older than `rev` that the list lacks are deleted, and
    /// the kind becomes ready.
    pub(crate) fn replace(&self, kind: Kind, items: Vec<Resource>, rev: Revision) {
        let Some(mut s) = self.write(kind) else {
            return;
        };
        let mut present = BTreeSet::new();
        for r in items {
            present.insert(r.key_name());
            let at = r.revision().unwrap_or(rev);
            s.put(Arc::new(r), at);
        }
        let mut gone = false;
        for (name, (r, v)) in s.objects.iter_mut() {
            if *r < rev && v.is_some() && !present.contains(name) {
                *r = rev;
                *v = None;
                gone = true;
            }
        }
        if gone || !s.ready {
            s.generation += 1;
        }
        // A list at `rev` is everything up to `rev`, changes or not.
        s.revision = s.revision.max(rev);
        s.set_ready(true);
        drop(s);
        self.notify();
    }

    pub(crate) fn set_ready(&self, kind: Kind, ready: bool) {
        let changed = self.write(kind).is_some_and(|mut s| {
            let was = s.ready;
            s.set_ready(ready);
            was != ready
        });
        if changed {
            self.notify();
        }
    }
}

#[cfg(test)]
mod tests;
