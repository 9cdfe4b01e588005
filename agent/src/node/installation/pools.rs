//! The Installation's IPPools written to the datastore, as the operator's
//! ippool controller does: created or updated to exactly what the
//! Installation renders, and pools it managed that are gone from the
//! Installation deleted. Only pools labelled
//! `app.kubernetes.io/managed-by: tabby` are ever changed or deleted.
//!
//! Any node may do this, several at once: every wanted value is a pure
//! function of the Installation, every write is a compare-and-swap, and a
//! lost race rereads and finds nothing left to do — no flapping.
//! Conflicts that a person has to resolve (a pool of the same name or an
//! overlapping CIDR that Tabby does not manage, an immutable field
//! changed) are found before the first write, so nothing is applied.

use crate::datastore::{Datastore, Error as DsError};
use crate::resources::installation_render::{
    conflicts, managed, MANAGED_BY_LABEL, MANAGED_BY_VALUE,
};
use crate::resources::{IpPool, Kind, Resource};

/// How often a write that lost a race is retried from a fresh read.
const RETRIES: usize = 10;

/// What one pass changed, for the log and the status.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub deleted: Vec<String>,
}

/// Why the pools could not be applied: something a person must fix, or
/// the datastore failing (retried on the next change or tick).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolError {
    Conflict(String),
    Datastore(String),
}

async fn stored(ds: &dyn Datastore) -> Result<Vec<IpPool>, PoolError> {
    let list = ds
        .list(Kind::IpPool, None)
        .await
        .map_err(|e| PoolError::Datastore(format!("listing IP pools: {e}")))?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|r| match r {
            Resource::IpPool(p) => Some(p),
            _ => None,
        })
        .collect())
}

/// Brings the stored pools to `wanted`. Nothing is written if
/// [`conflicts`] finds anything.
pub async fn apply(ds: &dyn Datastore, wanted: &[IpPool]) -> Result<Outcome, PoolError> {
    let existing = stored(ds).await?;
    let problems = conflicts(wanted, &existing);
    if !problems.is_empty() {
        return Err(PoolError::Conflict(problems.join("; ")));
    }
    let mut out = Outcome::default();
    // Stale managed pools first, so a renamed pool's new CIDR is free.
    for e in existing.iter().filter(|e| managed(e)) {
        if wanted.iter().any(|w| w.metadata.name == e.metadata.name) {
            continue;
        }
        match ds
            .delete(
                Kind::IpPool,
                &e.metadata.name,
                e.metadata
                    .resource_version
                    .as_deref()
                    .and_then(|v| v.parse().ok()),
            )
            .await
        {
            Ok(_) => out.deleted.push(e.metadata.name.clone()),
            // Someone else deleted or changed it: the next pass judges again.
            Err(DsError::NotFound { .. }) | Err(DsError::Conflict { .. }) => {}
            Err(e) => return Err(PoolError::Datastore(format!("deleting an IP pool: {e}"))),
        }
    }
    for w in wanted {
        match put(ds, w).await? {
            Some(true) => out.created.push(w.metadata.name.clone()),
            Some(false) => out.updated.push(w.metadata.name.clone()),
            None => {}
        }
    }
    Ok(out)
}

/// The stored pool `current` changed to what `w` wants, keeping its other
/// labels and metadata; None when it already is.
fn changed(current: &IpPool, w: &IpPool) -> Option<IpPool> {
    let mut next = current.clone();
    next.spec = w.spec.clone();
    next.metadata
        .labels
        .insert(MANAGED_BY_LABEL.into(), MANAGED_BY_VALUE.into());
    (next != *current).then_some(next)
}

/// One pool: Some(true) created, Some(false) updated, None unchanged.
async fn put(ds: &dyn Datastore, w: &IpPool) -> Result<Option<bool>, PoolError> {
    let name = &w.metadata.name;
    let err = |e: DsError| PoolError::Datastore(format!("writing IPPool {name:?}: {e}"));
    for _ in 0..RETRIES {
        let current = match ds.get(Kind::IpPool, name).await {
            Ok(Resource::IpPool(p)) => Some(p),
            Ok(_) => None,
            Err(DsError::NotFound { .. }) => None,
            Err(e) => return Err(err(e)),
        };
        let res = match current {
            None => ds
                .create(Resource::IpPool(w.clone()))
                .await
                .map(|_| Some(true)),
            Some(c) => match changed(&c, w) {
                None => return Ok(None),
                Some(next) => ds.update(Resource::IpPool(next)).await.map(|_| Some(false)),
            },
        };
        match res {
            Ok(r) => return Ok(r),
            // Another node got there first: read again and compare.
            Err(DsError::AlreadyExists { .. }) | Err(DsError::Conflict { .. }) => continue,
            Err(e) => return Err(err(e)),
        }
    }
    Err(PoolError::Datastore(format!(
        "IPPool {name:?}: too many concurrent modifications"
    )))
}
