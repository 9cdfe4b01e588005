//! The datastore every part of Tabby shares: Calico resources keyed by
//! (kind, name), compare-and-swap on a revision, and an ordered, resumable
//! watch.
//!
//! Revisions are store-wide and increase with every write, like etcd's
//! revision and Kubernetes' resourceVersion. A resource read from a store
//! carries its last-modified revision in `metadata.resourceVersion`; an
//! update or delete that names a revision succeeds only if it is still
//! current. A list returns the store revision it was read at, and a watch
//! from that revision delivers every later change in order, so
//! list-then-watch never misses or repeats an event.

mod config;
pub mod etcd;
mod etcd_keys;
pub mod kdd;
pub mod memory;
pub mod sqlite;
mod sqlite_ping;
mod sqlite_tail;
mod sqlite_wake;
mod stream;

pub use config::{connect, DatastoreConfig, DEFAULT_ETCD_ENDPOINTS, DEFAULT_SQLITE_PATH};

use crate::resources::{Kind, Resource};
use async_trait::async_trait;
use futures::Stream;
use std::pin::Pin;

/// A store-wide revision. Kubernetes documents resourceVersion as opaque;
/// in practice it is the etcd revision, which is what this models.
pub type Revision = u64;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("{kind} {name:?} not found")]
    NotFound { kind: Kind, name: String },
    #[error("{kind} {name:?} already exists")]
    AlreadyExists { kind: Kind, name: String },
    #[error(
        "{kind} {name:?} was modified concurrently: expected revision {expected}, current is {current}"
    )]
    Conflict {
        kind: Kind,
        name: String,
        expected: Revision,
        current: Revision,
    },
    #[error("datastore unavailable: {0}")]
    Unavailable(String),
    #[error(
        "cannot watch from revision {requested}: history up to {compacted} was compacted; list again"
    )]
    Compacted {
        requested: Revision,
        compacted: Revision,
    },
    #[error("invalid request: {0}")]
    Invalid(String),
    /// Over [`crate::resources::limits::MAX_OBJECT_BYTES`]: refused by
    /// every backend, as etcd and Kubernetes refuse it.
    #[error(
        "{kind} {:?} is {size} bytes; an object may be at most {limit} bytes (1.5 MiB, the limit of etcd and Kubernetes); nothing was written",
        crate::resources::limits::shorten(name)
    )]
    TooLarge {
        kind: Kind,
        name: String,
        size: usize,
        limit: usize,
    },
    #[error("stored {kind} {name:?} could not be read: {reason}")]
    Corrupt {
        kind: Kind,
        name: String,
        reason: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One change. For `Deleted`, `resource` is the last state before deletion.
#[derive(Clone, Debug, PartialEq)]
pub struct WatchEvent {
    pub revision: Revision,
    pub event_type: EventType,
    pub resource: Resource,
}

#[derive(Clone, Debug)]
pub struct ListResult {
    pub items: Vec<Resource>,
    /// The store revision the list was read at: watch from here.
    pub revision: Revision,
}

/// One write of [`Datastore::transact`].
#[derive(Clone, Debug)]
pub enum TxnWrite {
    /// Fails with `AlreadyExists` if the name is taken.
    Create(Resource),
    /// Compare-and-swap on `metadata.resourceVersion`, as `update`.
    Update(Resource),
    /// Compare-and-swap delete.
    Delete {
        kind: Kind,
        name: String,
        revision: Revision,
    },
}

impl TxnWrite {
    fn target(&self) -> (Kind, String) {
        match self {
            TxnWrite::Create(r) | TxnWrite::Update(r) => (r.kind(), r.key_name()),
            TxnWrite::Delete { kind, name, .. } => (*kind, name.clone()),
        }
    }

    /// The write's precondition against the key's current revision (None:
    /// absent), as the error the single-key call would give.
    fn check(&self, current: Option<Revision>) -> Result<(), Error> {
        let (kind, name) = self.target();
        let expected = match self {
            TxnWrite::Create(_) => {
                return match current {
                    Some(_) => Err(Error::AlreadyExists { kind, name }),
                    None => Ok(()),
                }
            }
            TxnWrite::Update(r) => required_revision(r)?,
            TxnWrite::Delete { revision, .. } => *revision,
        };
        match current {
            None => Err(Error::NotFound { kind, name }),
            Some(c) if c != expected => Err(Error::Conflict {
                kind,
                name,
                expected,
                current: c,
            }),
            Some(_) => Ok(()),
        }
    }
}

pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent, Error>> + Send>>;

/// What a backend's own list-then-watch of one kind delivers.
#[derive(Clone, Debug)]
pub enum Follow {
    /// A complete (re)list: replaces everything known of the kind.
    Listed(ListResult),
    /// One change after it.
    Event(Box<WatchEvent>),
}

/// A follow never ends by itself; errors are reported and it carries on
/// (retrying with backoff inside).
pub type FollowStream = Pin<Box<dyn Stream<Item = Result<Follow, Error>> + Send>>;

#[async_trait]
pub trait Datastore: Send + Sync {
    /// "sqlite", "etcdv3", "kubernetes" or "memory", for messages.
    fn backend(&self) -> &'static str;

    async fn get(&self, kind: Kind, name: &str) -> Result<Resource, Error>;

    /// All resources of `kind` whose name starts with `name_prefix`, sorted
    /// by name.
    async fn list(&self, kind: Kind, name_prefix: Option<&str>) -> Result<ListResult, Error>;

    /// Fails with `AlreadyExists` if the name is taken. Returns the stored
    /// resource with its new revision.
    async fn create(&self, resource: Resource) -> Result<Resource, Error>;

    /// Compare-and-swap: `metadata.resourceVersion` must name the current
    /// revision, else `Conflict` and nothing is written.
    async fn update(&self, resource: Resource) -> Result<Resource, Error>;

    /// Writes a resource's `status` (the Installation's), compare-and-swap
    /// like [`Datastore::update`]. Where the status is part of the stored
    /// object (SQLite, etcd, memory) this is an update; Kubernetes writes
    /// it through the status subresource, which ignores the spec.
    async fn update_status(&self, resource: Resource) -> Result<Resource, Error> {
        self.update(resource).await
    }

    /// Deletes; with `Some(revision)` only if that is still current.
    /// Returns the deleted resource.
    async fn delete(
        &self,
        kind: Kind,
        name: &str,
        revision: Option<Revision>,
    ) -> Result<Resource, Error>;

    /// Applies every write or none. If a precondition fails, nothing is
    /// written and the error names the first write that failed (by kind
    /// and name). Returns each write's new revision.
    async fn transact(&self, writes: Vec<TxnWrite>) -> Result<Vec<Revision>, Error>;

    /// Every change to `kinds` (all kinds if empty) after revision `from`,
    /// in revision order. A consumer resumes after a disconnect by watching
    /// from the last revision it saw.
    async fn watch(&self, kinds: &[Kind], from: Revision) -> Result<WatchStream, Error>;

    /// The backend's own list-then-watch of `kind`, when it has one that
    /// knows more than [`Datastore::list`] + [`Datastore::watch`] can (for
    /// Kubernetes: kube-runtime's watcher, with bookmarks and relists on
    /// 410 Gone). None: the cluster cache drives list and watch itself.
    fn follow(&self, _kind: Kind) -> Option<FollowStream> {
        None
    }

    /// A cheap request that answers only if the store can serve: the
    /// cluster cache's health check, since a watch of a quiet cluster
    /// delivers nothing and so cannot tell a hung store from an idle one.
    /// The caller bounds it with its own timeout. Backends with their own
    /// liveness (Kubernetes: kube-runtime's watcher) keep the default.
    async fn ping(&self) -> Result<(), Error> {
        Ok(())
    }

    /// Tells the orchestrator whether pod networking on `node` is up (in
    /// Kubernetes, the Node's `NetworkUnavailable` condition). Nothing to
    /// tell for the other backends.
    async fn report_node_network(&self, _node: &str, _up: bool) -> Result<(), Error> {
        Ok(())
    }

    /// The Kubernetes API client this datastore talks through, for what
    /// only Kubernetes has (Pods as liveness, Leases): one client per
    /// process, not a second connection. None for the other backends.
    fn kube_client(&self) -> Option<kube::Client> {
        None
    }
}

/// Stamps what the store owns on a new resource: uid and creation time.
/// The payload never carries a revision: that is the store's.
pub(crate) fn prepare_create(r: &mut Resource) {
    use std::hash::{BuildHasher, Hasher};
    let m = r.metadata_mut();
    m.resource_version = None;
    if m.uid.is_none() {
        let a = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let b = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let h = format!("{a:016x}{b:016x}");
        m.uid = Some(format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        ));
    }
    if m.creation_timestamp.is_none() {
        m.creation_timestamp =
            Some(humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string());
    }
}

/// The revision an update must match, or `Invalid` if the caller gave none.
pub(crate) fn required_revision(r: &Resource) -> Result<Revision, Error> {
    r.revision().ok_or_else(|| {
        Error::Invalid(format!(
            "update of {} {:?} needs metadata.resourceVersion (compare-and-swap)",
            r.kind(),
            r.name()
        ))
    })
}

/// The payload as stored: v3 JSON without the revision, if within the
/// object size limit.
pub(crate) fn stored_bytes(r: &Resource) -> Result<Vec<u8>, Error> {
    let mut c = r.clone();
    c.metadata_mut().resource_version = None;
    within_limit(r, c.to_json_bytes())
}

/// `bytes` (the stored form of `r`) if they fit the object size limit,
/// else `TooLarge` naming the object.
pub(crate) fn within_limit(r: &Resource, bytes: Vec<u8>) -> Result<Vec<u8>, Error> {
    let limit = crate::resources::limits::MAX_OBJECT_BYTES;
    if bytes.len() > limit {
        return Err(Error::TooLarge {
            kind: r.kind(),
            name: r.key_name(),
            size: bytes.len(),
            limit,
        });
    }
    Ok(bytes)
}

/// The size check of [`stored_bytes`] for backends that store the
/// resource in another form (memory, Kubernetes).
pub(crate) fn check_size(r: &Resource) -> Result<(), Error> {
    stored_bytes(r).map(|_| ())
}

/// [`check_size`] for every write of a transaction, before any is made.
pub(crate) fn check_sizes(writes: &[TxnWrite]) -> Result<(), Error> {
    writes.iter().try_for_each(|w| match w {
        TxnWrite::Create(r) | TxnWrite::Update(r) => check_size(r),
        TxnWrite::Delete { .. } => Ok(()),
    })
}

pub(crate) fn decode(
    kind: Kind,
    name: &str,
    bytes: &[u8],
    rev: Revision,
) -> Result<Resource, Error> {
    let mut r = Resource::from_json_slice(bytes).map_err(|reason| Error::Corrupt {
        kind,
        name: name.to_string(),
        reason,
    })?;
    r.set_revision(rev);
    Ok(r)
}

pub(crate) fn wants(kinds: &[Kind], k: Kind) -> bool {
    kinds.is_empty() || kinds.contains(&k)
}
