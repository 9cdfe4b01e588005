//! [`Datastore::transact`] without transactions. The Kubernetes API has no
//! multi-object transaction (Calico's IPAM in KDD lives with that too: it
//! writes the handle, then the block, and undoes the handle on a block
//! conflict). Tabby checks every precondition first, so a stale write fails
//! with nothing written, exactly as elsewhere; then applies the writes in
//! order. The first write is the commit point: IPAM puts the block CAS
//! first, so an address is never handed out twice. If a later write loses
//! a race, the earlier ones are undone (CAS on what they wrote) and the
//! error returned; an undo that itself loses a race leaves what `tabbyctl
//! ipam check` reports and fixes (a handle count or an allocation without
//! its handle), never a double allocation.
//!
//! [`Datastore::transact`]: crate::datastore::Datastore::transact

use super::{ops, KubeStore};
use crate::datastore::{check_sizes, Error, Revision, TxnWrite};
use crate::resources::Resource;

/// What to do to undo one applied write.
enum Undo {
    /// It created this (at this revision): delete it.
    Delete(Resource),
    /// It replaced this (the old state) and wrote the new revision.
    Restore(Resource, Revision),
    /// It deleted this: create it again.
    Recreate(Resource),
}

pub(super) async fn transact(s: &KubeStore, writes: Vec<TxnWrite>) -> Result<Vec<Revision>, Error> {
    // Every precondition, before anything is written.
    check_sizes(&writes)?;
    let mut before = Vec::with_capacity(writes.len());
    for w in &writes {
        let (kind, name) = w.target();
        let current = match ops::get(s, kind, &name).await {
            Ok(r) => Some(r),
            Err(Error::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        w.check(current.as_ref().and_then(Resource::revision))?;
        before.push(current);
    }
    let mut undo = Vec::new();
    let mut revs = Vec::with_capacity(writes.len());
    for (w, old) in writes.into_iter().zip(before) {
        let res = match w {
            TxnWrite::Create(r) => ops::create(s, r).await.map(|made| {
                let rev = made.revision().unwrap_or(0);
                undo.push(Undo::Delete(made));
                rev
            }),
            TxnWrite::Update(r) => ops::update(s, r).await.map(|new| {
                let rev = new.revision().unwrap_or(0);
                if let Some(old) = old {
                    undo.push(Undo::Restore(old, rev));
                }
                rev
            }),
            TxnWrite::Delete {
                kind,
                name,
                revision,
            } => ops::delete(s, kind, &name, Some(revision))
                .await
                .map(|gone| {
                    undo.push(Undo::Recreate(gone));
                    revision
                }),
        };
        match res {
            Ok(rev) => revs.push(rev),
            Err(e) => {
                rollback(s, undo).await;
                return Err(e);
            }
        }
    }
    Ok(revs)
}

async fn rollback(s: &KubeStore, undo: Vec<Undo>) {
    for u in undo.into_iter().rev() {
        let res = match u {
            Undo::Delete(r) => ops::delete(s, r.kind(), &r.key_name(), r.revision())
                .await
                .map(|_| ()),
            Undo::Restore(mut old, rev) => {
                old.set_revision(rev);
                ops::update(s, old).await.map(|_| ())
            }
            Undo::Recreate(r) => ops::create(s, r).await.map(|_| ()),
        };
        if let Err(e) = res {
            tracing::warn!(error = %e, "undoing part of a failed multi-object write; `tabbyctl ipam check` reports what is left");
        }
    }
}
