//! `apply`, `create`, `replace` and `delete -f` as calicoctl does them, but
//! all-or-nothing: every document is parsed and validated (including checks
//! against what is already stored) before the first write, and if a write
//! still fails (a concurrent change), the writes already made are undone.

use crate::datastore::{Datastore, Error as StoreError};
use crate::resources::installation_render;
use crate::resources::validate::{overlapping_pool, validate};
use crate::resources::{IpPool, Kind, ParseError, ParsedDocument, Resource};
use ipnet::IpNet;
use std::collections::HashSet;
use std::net::IpAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Create, or update what exists.
    Apply,
    /// Fail if anything exists.
    Create,
    /// Fail if anything is missing.
    Replace,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The input is wrong; nothing was written.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<ParseError>),
    /// The datastore refused a write; earlier writes of this call were undone.
    #[error("{source_name}: document {document} ({kind} {name:?}): {error}; nothing was applied")]
    Store {
        source_name: String,
        document: usize,
        kind: Kind,
        name: String,
        error: StoreError,
    },
    /// Reading the current state failed before anything was written.
    #[error("{0}")]
    Unavailable(StoreError),
}

fn doc_error(source: &str, d: &ParsedDocument, field: Option<&str>, message: String) -> ParseError {
    ParseError {
        source: source.to_string(),
        document: d.document,
        kind: Some(d.resource.kind().as_str().to_string()),
        name: Some(d.resource.name().to_string()),
        field: field.map(str::to_string),
        message,
    }
}

async fn current(
    store: &dyn Datastore,
    kind: Kind,
    name: &str,
) -> Result<Option<Resource>, ApplyError> {
    match store.get(kind, name).await {
        Ok(r) => Ok(Some(r)),
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(ApplyError::Unavailable(e)),
    }
}

/// Checks each document on its own (fills defaults, derives IPAM names) and
/// against the others in the same input.
pub fn validate_documents(source: &str, docs: &mut [ParsedDocument]) -> Vec<ParseError> {
    let mut errors = Vec::new();
    for d in docs.iter_mut() {
        for p in validate(&mut d.resource) {
            errors.push(doc_error(source, d, p.field.as_deref(), p.message));
        }
    }
    let mut seen = HashSet::new();
    for d in docs.iter() {
        if !seen.insert((d.resource.kind(), d.resource.key_name())) {
            errors.push(doc_error(
                source,
                d,
                Some("metadata.name"),
                "appears more than once in this input".into(),
            ));
        }
    }
    errors
}

/// Validates `docs` against each other and the store, then writes them.
/// Returns the stored resources, in document order.
pub async fn apply_documents(
    store: &dyn Datastore,
    source: &str,
    mut docs: Vec<ParsedDocument>,
    mode: Mode,
) -> Result<Vec<Resource>, ApplyError> {
    let mut errors = validate_documents(source, &mut docs);
    if !errors.is_empty() {
        return Err(ApplyError::Invalid(errors));
    }

    let mut existing = Vec::with_capacity(docs.len());
    for d in &docs {
        existing.push(current(store, d.resource.kind(), &d.resource.key_name()).await?);
    }
    for (d, cur) in docs.iter().zip(&existing) {
        match (mode, cur) {
            (Mode::Create, Some(_)) => errors.push(doc_error(
                source,
                d,
                None,
                "already exists (use apply or replace to change it)".into(),
            )),
            (Mode::Replace, None) => errors.push(doc_error(
                source,
                d,
                None,
                "does not exist (use apply or create)".into(),
            )),
            _ => {}
        }
        if let (Resource::IpPool(new), Some(Resource::IpPool(old))) = (&d.resource, cur) {
            if new.spec.cidr != old.spec.cidr {
                errors.push(doc_error(
                    source,
                    d,
                    Some("spec.cidr"),
                    format!(
                        "is immutable (stored {}, given {}): create a new pool instead",
                        old.spec.cidr, new.spec.cidr
                    ),
                ));
            }
            if new.spec.block_size != old.spec.block_size {
                errors.push(doc_error(
                    source,
                    d,
                    Some("spec.blockSize"),
                    format!(
                        "is immutable (stored {}, given {})",
                        old.spec.block_size.unwrap_or_default(),
                        new.spec.block_size.unwrap_or_default()
                    ),
                ));
            }
        }
    }
    errors.extend(pool_overlaps(store, source, &docs).await?);
    errors.extend(pools_over_nodes(store, source, &docs, &existing).await?);
    errors.extend(installation_conflicts(store, source, &docs).await?);
    if !errors.is_empty() {
        return Err(ApplyError::Invalid(errors));
    }

    let mut done: Vec<(Resource, Option<Resource>)> = Vec::new();
    for (d, cur) in docs.iter().zip(existing) {
        let mut r = d.resource.clone();
        let result = match &cur {
            None => store.create(r).await,
            Some(old) => {
                // A resourceVersion in the file makes this a CAS against the
                // version the user read; otherwise against what we just read.
                if r.metadata().resource_version.is_none() {
                    r.metadata_mut().resource_version = old.metadata().resource_version.clone();
                }
                // The status is tabby-node's to write; a file has none.
                if let (Resource::Installation(new), Resource::Installation(old)) = (&mut r, old) {
                    if new.status.is_none() {
                        new.status.clone_from(&old.status);
                    }
                }
                let m = r.metadata_mut();
                m.uid.clone_from(&old.metadata().uid);
                m.creation_timestamp
                    .clone_from(&old.metadata().creation_timestamp);
                store.update(r).await
            }
        };
        match result {
            Ok(stored) => done.push((stored, cur)),
            Err(error) => {
                undo(store, done).await;
                return Err(ApplyError::Store {
                    source_name: source.to_string(),
                    document: d.document,
                    kind: d.resource.kind(),
                    name: d.resource.name().to_string(),
                    error,
                });
            }
        }
    }
    Ok(done.into_iter().map(|(r, _)| r).collect())
}

/// An Installation's pools against the stored pools tabby-node does not
/// manage (same name with another cidr, overlap) and the immutable fields
/// of those it does: what tabby-node would otherwise report as Degraded.
async fn installation_conflicts(
    store: &dyn Datastore,
    source: &str,
    docs: &[ParsedDocument],
) -> Result<Vec<ParseError>, ApplyError> {
    let mut errors = Vec::new();
    for d in docs {
        let Resource::Installation(i) = &d.resource else {
            continue;
        };
        let stored: Vec<IpPool> = store
            .list(Kind::IpPool, None)
            .await
            .map_err(ApplyError::Unavailable)?
            .items
            .into_iter()
            .filter_map(|r| match r {
                Resource::IpPool(p) => Some(p),
                _ => None,
            })
            .collect();
        for c in installation_render::conflicts(&installation_render::ip_pools(&i.spec), &stored) {
            let (field, msg) = c
                .split_once(": ")
                .unwrap_or(("spec.calicoNetwork.ipPools", &c));
            errors.push(doc_error(source, d, Some(field), msg.to_string()));
        }
    }
    Ok(errors)
}

/// Every new pool against every other pool, stored or in this input.
async fn pool_overlaps(
    store: &dyn Datastore,
    source: &str,
    docs: &[ParsedDocument],
) -> Result<Vec<ParseError>, ApplyError> {
    let new_pools: Vec<(&ParsedDocument, &IpPool)> = docs
        .iter()
        .filter_map(|d| match &d.resource {
            Resource::IpPool(p) => Some((d, p)),
            _ => None,
        })
        .collect();
    if new_pools.is_empty() {
        return Ok(Vec::new());
    }
    let stored = store
        .list(Kind::IpPool, None)
        .await
        .map_err(ApplyError::Unavailable)?;
    let mut all: Vec<IpPool> = stored
        .items
        .into_iter()
        .filter_map(|r| match r {
            Resource::IpPool(p)
                if !new_pools
                    .iter()
                    .any(|(_, n)| n.metadata.name == p.metadata.name) =>
            {
                Some(p)
            }
            _ => None,
        })
        .collect();
    all.extend(new_pools.iter().map(|(_, p)| (*p).clone()));
    Ok(new_pools
        .iter()
        .filter_map(|(d, p)| {
            overlapping_pool(p, &all).map(|other| {
                doc_error(
                    source,
                    d,
                    Some("spec.cidr"),
                    format!(
                        "{} overlaps IPPool {:?} ({})",
                        p.spec.cidr, other.metadata.name, other.spec.cidr
                    ),
                )
            })
        })
        .collect())
}

/// A pool that contains a node's own address: IPAM would hand the node's
/// address to a pod and its block routes would capture traffic to the node
/// (seed 002). The one exception is disabling a stored pool — the way out
/// of a pool created before this check, which must stay possible.
async fn pools_over_nodes(
    store: &dyn Datastore,
    source: &str,
    docs: &[ParsedDocument],
    existing: &[Option<Resource>],
) -> Result<Vec<ParseError>, ApplyError> {
    let pools: Vec<(&ParsedDocument, &IpPool, IpNet)> = docs
        .iter()
        .zip(existing)
        .filter_map(|(d, cur)| match &d.resource {
            Resource::IpPool(p) if !(p.spec.disabled && cur.is_some()) => {
                Some((d, p, p.spec.cidr.parse().ok()?))
            }
            _ => None,
        })
        .collect();
    if pools.is_empty() {
        return Ok(Vec::new());
    }
    let nodes: Vec<(String, String, IpAddr)> = store
        .list(Kind::Node, None)
        .await
        .map_err(ApplyError::Unavailable)?
        .items
        .into_iter()
        .filter_map(|r| match r {
            Resource::Node(n) => Some(n),
            _ => None,
        })
        .flat_map(|n| {
            let bgp = n.spec.bgp.unwrap_or_default();
            [
                ("ipv4Address", bgp.ipv4_address),
                ("ipv6Address", bgp.ipv6_address),
            ]
            .into_iter()
            .filter_map(move |(field, a)| {
                let a = a?;
                let ip = a.split('/').next()?.parse().ok()?;
                Some((n.metadata.name.clone(), format!("spec.bgp.{field} {a}"), ip))
            })
            .collect::<Vec<_>>()
        })
        .collect();
    let mut errors = Vec::new();
    for (d, p, net) in pools {
        let inside: Vec<String> = nodes
            .iter()
            .filter(|(_, _, ip)| net.contains(ip))
            .map(|(name, field, ip)| format!("Node {name:?}'s address {ip} ({field})"))
            .collect();
        if inside.is_empty() {
            continue;
        }
        errors.push(doc_error(
            source,
            d,
            Some("spec.cidr"),
            format!(
                "{} contains {}: pods would be given node addresses; choose a range outside the node subnets",
                p.spec.cidr,
                inside.join(", ")
            ),
        ));
    }
    Ok(errors)
}

/// Reverts this call's writes, newest first. Best effort: a revert that
/// itself conflicts means someone else changed the resource since, and their
/// change wins.
async fn undo(store: &dyn Datastore, done: Vec<(Resource, Option<Resource>)>) {
    for (stored, before) in done.into_iter().rev() {
        let res = match before {
            None => store
                .delete(stored.kind(), &stored.key_name(), stored.revision())
                .await
                .map(|_| ()),
            Some(mut old) => {
                old.metadata_mut().resource_version = stored.metadata().resource_version.clone();
                store.update(old).await.map(|_| ())
            }
        };
        if let Err(e) = res {
            tracing::warn!(kind = %stored.kind(), name = stored.name(), error = %e, "could not undo a partial apply");
        }
    }
}

/// `delete -f`: every resource must exist before any is deleted.
pub async fn delete_documents(
    store: &dyn Datastore,
    source: &str,
    docs: &[ParsedDocument],
) -> Result<Vec<Resource>, ApplyError> {
    let mut errors = Vec::new();
    let mut found = Vec::new();
    for d in docs {
        let mut r = d.resource.clone();
        // Validation also derives IPAM names from their specs.
        let _ = validate(&mut r);
        match current(store, r.kind(), &r.key_name()).await? {
            Some(cur) => found.push((d, cur)),
            None => errors.push(doc_error(source, d, None, "does not exist".into())),
        }
    }
    if !errors.is_empty() {
        return Err(ApplyError::Invalid(errors));
    }
    let mut deleted = Vec::new();
    for (d, cur) in found {
        let rev = d.resource.revision().or(cur.revision());
        match store.delete(cur.kind(), &cur.key_name(), rev).await {
            Ok(r) => deleted.push(r),
            Err(error) => {
                return Err(ApplyError::Store {
                    source_name: source.to_string(),
                    document: d.document,
                    kind: cur.kind(),
                    name: cur.name().to_string(),
                    error,
                })
            }
        }
    }
    Ok(deleted)
}
