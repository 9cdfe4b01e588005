//! `apply`, `create`, `replace` and `delete -f` as calicoctl does them, but
//! all-or-nothing: every document is parsed and validated (including checks
//! against what is already stored) before the first write, and if a write
//! still fails (a concurrent change), the writes already made are undone.

use super::ranges;
use crate::datastore::{Datastore, Error as StoreError};
use crate::resources::installation_render;
use crate::resources::limits::MAX_OBJECT_BYTES;
use crate::resources::validate::validate;
use crate::resources::{IpPool, Kind, ParseError, ParsedDocument, Resource};
use ipnet::IpNet;
use std::collections::{HashMap, HashSet};
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

/// Everything stored of `kind`, by key name: one list per kind instead of
/// one read per document.
async fn stored(
    store: &dyn Datastore,
    kind: Kind,
) -> Result<HashMap<String, Resource>, ApplyError> {
    Ok(store
        .list(kind, None)
        .await
        .map_err(ApplyError::Unavailable)?
        .items
        .into_iter()
        .map(|r| (r.key_name(), r))
        .collect())
}

/// Checks each document on its own (fills defaults, derives IPAM names) and
/// against the others in the same input.
pub fn validate_documents(source: &str, docs: &mut [ParsedDocument]) -> Vec<ParseError> {
    let mut errors = Vec::new();
    for d in docs.iter_mut() {
        for p in validate(&mut d.resource) {
            errors.push(doc_error(source, d, p.field.as_deref(), p.message));
        }
        // What every backend refuses (see MAX_OBJECT_BYTES), refused here
        // with the document it came from.
        let size = d.resource.to_json_bytes().len();
        if size > MAX_OBJECT_BYTES {
            errors.push(doc_error(
                source,
                d,
                None,
                format!(
                    "is {size} bytes; an object may be at most {MAX_OBJECT_BYTES} bytes \
                     (1.5 MiB, the limit of etcd and Kubernetes)"
                ),
            ));
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

    // New pools are checked against the stored pools and nodes too.
    let pool_checks: &[Kind] = if docs.iter().any(|d| d.resource.kind() == Kind::IpPool) {
        &[Kind::IpPool, Kind::Node]
    } else {
        &[]
    };
    let mut by_kind: HashMap<Kind, HashMap<String, Resource>> = HashMap::new();
    for &k in docs
        .iter()
        .map(|d| d.resource.kind())
        .collect::<Vec<_>>()
        .iter()
        .chain(pool_checks)
    {
        if let std::collections::hash_map::Entry::Vacant(e) = by_kind.entry(k) {
            e.insert(stored(store, k).await?);
        }
    }
    let existing: Vec<Option<Resource>> = docs
        .iter()
        .map(|d| {
            by_kind
                .get(&d.resource.kind())
                .and_then(|m| m.get(&d.resource.key_name()))
                .cloned()
        })
        .collect();
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
    let no_pools = HashMap::new();
    let pools = by_kind.get(&Kind::IpPool).unwrap_or(&no_pools);
    errors.extend(pool_overlaps(pools, source, &docs));
    errors.extend(pools_over_nodes(
        by_kind.get(&Kind::Node).unwrap_or(&no_pools),
        source,
        &docs,
        &existing,
    ));
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
fn pool_overlaps(
    stored: &HashMap<String, Resource>,
    source: &str,
    docs: &[ParsedDocument],
) -> Vec<ParseError> {
    let new_pools: Vec<(&ParsedDocument, &IpPool)> = docs
        .iter()
        .filter_map(|d| match &d.resource {
            Resource::IpPool(p) => Some((d, p)),
            _ => None,
        })
        .collect();
    if new_pools.is_empty() {
        return Vec::new();
    }
    let replaced: HashSet<&str> = new_pools
        .iter()
        .map(|(_, p)| p.metadata.name.as_str())
        .collect();
    // The new pools first (index = position in new_pools), then the
    // stored ones they leave in place; each tagged with its own index so
    // only distinct pools are compared.
    let mut all: Vec<&IpPool> = new_pools.iter().map(|(_, p)| *p).collect();
    all.extend(stored.values().filter_map(|r| match r {
        Resource::IpPool(p) if !replaced.contains(p.metadata.name.as_str()) => Some(p),
        _ => None,
    }));
    let nets: Vec<(usize, IpNet)> = all
        .iter()
        .enumerate()
        .filter_map(|(i, p)| Some((i, p.spec.cidr.parse().ok()?)))
        .collect();
    let found = ranges::overlaps(&nets);
    nets.iter()
        .zip(found)
        .filter(|((i, _), _)| *i < new_pools.len())
        .filter_map(|((i, _), other)| {
            let (d, p) = new_pools[*i];
            let other = all[nets[other?].0];
            Some(doc_error(
                source,
                d,
                Some("spec.cidr"),
                format!(
                    "{} overlaps IPPool {:?} ({})",
                    p.spec.cidr, other.metadata.name, other.spec.cidr
                ),
            ))
        })
        .collect()
}

/// A pool that contains a node's own address: IPAM would hand the node's
/// address to a pod and its block routes would capture traffic to the node
/// (seed 002). The one exception is disabling a stored pool — the way out
/// of a pool created before this check, which must stay possible.
fn pools_over_nodes(
    nodes: &HashMap<String, Resource>,
    source: &str,
    docs: &[ParsedDocument],
    existing: &[Option<Resource>],
) -> Vec<ParseError> {
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
        return Vec::new();
    }
    let mut names: Vec<&String> = nodes.keys().collect();
    // Reported in name order, as the list returns them.
    names.sort();
    let addrs: Vec<(String, String, IpAddr)> = names
        .into_iter()
        .filter_map(|k| match &nodes[k] {
            Resource::Node(n) => Some(n),
            _ => None,
        })
        .flat_map(|n| {
            let bgp = n.spec.bgp.clone().unwrap_or_default();
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
    let ips: Vec<IpAddr> = addrs.iter().map(|(_, _, ip)| *ip).collect();
    let nets: Vec<IpNet> = pools.iter().map(|(_, _, n)| *n).collect();
    let mut errors = Vec::new();
    for ((d, p, _), hits) in pools.iter().zip(ranges::contained(&nets, &ips)) {
        if hits.is_empty() {
            continue;
        }
        let inside: Vec<String> = hits
            .iter()
            .map(|&h| {
                let (name, field, ip) = &addrs[h];
                format!("Node {name:?}'s address {ip} ({field})")
            })
            .collect();
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
    errors
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
