//! Keeps a [`Cluster`] current from the datastore: list, then watch from
//! the list's revision; after a disconnect resume from the last revision
//! seen; when that history was compacted, list again.

pub use super::cluster::Cluster;
use super::cluster::KINDS;
use crate::datastore::{Datastore, Error as DsError, Revision};
use futures::{FutureExt, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Lists every followed kind. Each list has its own revision; watching from
/// the smallest replays a few changes the later lists already hold, which
/// is harmless because each event carries the whole resource.
pub async fn list_all(ds: &dyn Datastore) -> Result<(Cluster, Revision), DsError> {
    let mut c = Cluster::default();
    let mut rev = Revision::MAX;
    for k in KINDS {
        let l = ds.list(*k, None).await?;
        rev = rev.min(l.revision);
        for r in l.items {
            c.insert(r);
        }
    }
    Ok((c, rev))
}

/// Starts following from an initial list already read; publishes the
/// cluster after each change.
pub fn spawn(
    ds: Arc<dyn Datastore>,
    initial: Cluster,
    from: Revision,
) -> (watch::Receiver<Arc<Cluster>>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(Arc::new(initial.clone()));
    let task = tokio::spawn(async move {
        let mut cluster = initial;
        let mut rev = from;
        loop {
            let mut stream = match ds.watch(KINDS, rev).await {
                Ok(s) => s,
                Err(DsError::Compacted { .. }) => {
                    relist(&*ds, &mut cluster, &mut rev, &tx).await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "datastore watch failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            while let Some(item) = stream.next().await {
                match item {
                    Ok(ev) => {
                        rev = rev.max(ev.revision);
                        cluster.apply(&ev);
                        // Apply whatever else is ready before publishing: a
                        // burst (many nodes starting) is one copy, not one
                        // per event.
                        let mut broken = false;
                        while let Some(Some(more)) = stream.next().now_or_never() {
                            match more {
                                Ok(ev) => {
                                    rev = rev.max(ev.revision);
                                    cluster.apply(&ev);
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, revision = rev, "datastore watch broke; resuming");
                                    broken = true;
                                    break;
                                }
                            }
                        }
                        if tx.send(Arc::new(cluster.clone())).is_err() {
                            return;
                        }
                        if broken {
                            // Compacted or not, resuming from `rev` tells:
                            // watch() reports Compacted and we list again.
                            break;
                        }
                    }
                    Err(DsError::Compacted { .. }) => {
                        relist(&*ds, &mut cluster, &mut rev, &tx).await;
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, revision = rev, "datastore watch broke; resuming");
                        break;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    (rx, task)
}

async fn relist(
    ds: &dyn Datastore,
    cluster: &mut Cluster,
    rev: &mut Revision,
    tx: &watch::Sender<Arc<Cluster>>,
) {
    loop {
        match list_all(ds).await {
            Ok((c, r)) => {
                tracing::info!(revision = r, "watch history compacted: listed again");
                *cluster = c;
                *rev = r;
                let _ = tx.send(Arc::new(cluster.clone()));
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "listing the datastore failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
