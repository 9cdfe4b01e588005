//! One reflector per kind: list, then watch from the list's revision; after
//! a broken watch resume from the last revision seen; when that history
//! was compacted, list again. Each kind has its own revision to resume
//! from, as each Kubernetes resource has its own resourceVersion. A backend
//! with its own list-then-watch (Kubernetes: kube-runtime's watcher) is
//! followed as it is instead.

use super::health::{self, backoff, jitter};
use super::ClusterCache;
use crate::datastore::{Datastore, Error as DsError, EventType, Follow, FollowStream, Revision};
use crate::resources::Kind;
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// A watch that ended without an error (the server closed it) is resumed
/// after this; errors back off as `health::backoff` says.
const RESUME_AFTER: Duration = Duration::from_millis(200);

/// The running reflectors; dropping this stops them.
pub struct Reflectors {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Reflectors {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Reflectors {
    pub(super) fn spawn(ds: Arc<dyn Datastore>, cache: Arc<ClusterCache>) -> Self {
        let kinds: Vec<Kind> = cache.kinds().collect();
        let mut tasks: Vec<_> = kinds
            .into_iter()
            .map(|kind| {
                let span = tracing::info_span!("reflector", kind = kind.as_str());
                tokio::spawn(run(ds.clone(), cache.clone(), kind).instrument(span))
            })
            .collect();
        let span = tracing::info_span!("datastore_health", backend = ds.backend());
        tasks.push(tokio::spawn(health::monitor(ds, cache).instrument(span)));
        Reflectors { tasks }
    }
}

async fn run(ds: Arc<dyn Datastore>, cache: Arc<ClusterCache>, kind: Kind) {
    if let Some(stream) = ds.follow(kind) {
        return run_follow(stream, &cache, kind).await;
    }
    let mut from: Option<Revision> = None;
    let mut attempt = 0u32;
    loop {
        let rev = match from {
            Some(r) => r,
            None => match ds.list(kind, None).await {
                Ok(l) => {
                    cache.replace(kind, l.items, l.revision);
                    l.revision
                }
                Err(e) => {
                    let wait = backoff(attempt, jitter());
                    if let Some(suppressed) = cache.warn_now(warn_key("list", &e)) {
                        tracing::warn!(error = %e, suppressed, retry_secs = wait.as_secs(), "listing failed; retrying");
                    } else {
                        tracing::debug!(error = %e, "listing failed; retrying");
                    }
                    cache.set_error(kind, format!("listing {}: {e}", kind.plural()));
                    cache.retry_after(wait).await;
                    attempt = attempt.saturating_add(1);
                    continue;
                }
            },
        };
        let mut watched = false;
        match follow(&*ds, &cache, kind, rev, &mut watched).await {
            // The stream ended or broke: resume from what was seen.
            Ok(seen) => {
                cache.set_ready(kind, false);
                from = Some(seen);
                attempt = 0;
                tokio::time::sleep(RESUME_AFTER).await;
            }
            Err((DsError::Compacted { .. }, _)) => {
                tracing::info!(revision = rev, "watch history compacted: listing again");
                cache.set_ready(kind, false);
                from = None;
            }
            Err((e, seen)) => {
                // A watch that was up is a first failure again.
                if watched {
                    attempt = 0;
                }
                let wait = backoff(attempt, jitter());
                if let Some(suppressed) = cache.warn_now(warn_key("watch", &e)) {
                    tracing::warn!(error = %e, revision = seen, suppressed, retry_secs = wait.as_secs(), "watch failed; resuming");
                } else {
                    tracing::debug!(error = %e, revision = seen, "watch failed; resuming");
                }
                cache.set_ready(kind, false);
                cache.set_error(kind, format!("watching {}: {e}", kind.plural()));
                from = Some(seen);
                cache.retry_after(wait).await;
                attempt = attempt.saturating_add(1);
            }
        }
    }
}

/// Follows the watch from `rev` until it ends; returns the last revision
/// seen, with the error when it broke. `watched`: the watch was set up.
async fn follow(
    ds: &dyn Datastore,
    cache: &ClusterCache,
    kind: Kind,
    rev: Revision,
    watched: &mut bool,
) -> Result<Revision, (DsError, Revision)> {
    let mut seen = rev;
    let mut events = ds.watch(&[kind], rev).await.map_err(|e| (e, seen))?;
    *watched = true;
    tracing::debug!(revision = rev, "watching");
    cache.set_ready(kind, true);
    while let Some(ev) = events.next().await {
        let ev = ev.map_err(|e| (e, seen))?;
        seen = seen.max(ev.revision);
        match ev.event_type {
            EventType::Deleted => cache.delete(kind, &ev.resource.key_name(), ev.revision),
            EventType::Added | EventType::Modified => cache.put(ev.resource, ev.revision),
        }
    }
    Ok(seen)
}

/// Applies a backend's own follow stream. It retries by itself (and
/// relists when it must), so an error is only logged: the cache keeps the
/// last state it had, as the dataplane does, until the stream delivers
/// again. Marking the kind not ready would leave a quiet kind unready long
/// after the API came back, since a resumed watch delivers nothing new.
async fn run_follow(mut stream: FollowStream, cache: &ClusterCache, kind: Kind) {
    while let Some(item) = stream.next().await {
        match item {
            Ok(Follow::Listed(l)) => cache.relisted(kind, l.items),
            Ok(Follow::Event(ev)) => match ev.event_type {
                EventType::Deleted => cache.delete(kind, &ev.resource.key_name(), ev.revision),
                EventType::Added | EventType::Modified => cache.put(ev.resource, ev.revision),
            },
            Err(e) => {
                tracing::warn!(error = %e, "watch failed; the watcher retries with backoff");
                cache.set_error(kind, format!("watching {}: {e}", kind.plural()));
            }
        }
    }
}

/// What the warning limiter counts as one warning: every reflector's
/// failure because the store went away is one, whatever words the
/// transport used for it (a reset, a canceled stream, a refused connect
/// arrive together when etcd stops); other errors by their text.
fn warn_key(op: &str, e: &DsError) -> String {
    match e {
        DsError::Unavailable(_) => format!("{op}: datastore unavailable"),
        e => format!("{op}: {e}"),
    }
}
