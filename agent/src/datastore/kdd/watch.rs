//! Watching Kubernetes. [`watch`] is the datastore trait's resumable watch
//! from a revision: one apiserver watch per kind, re-issued from the last
//! resourceVersion (bookmarks included) when the server ends it, a 410 Gone
//! as `Compacted`. [`follow`] is what the cluster cache uses: kube-runtime's
//! watcher (list, watch from the list's resourceVersion, bookmarks, relist
//! on 410, backoff on errors), one per kind.
//!
//! ```text
//!   apiserver ──watch/kind──▶ task ─┐
//!   apiserver ──watch/kind──▶ task ─┼─▶ mpsc ─▶ TaskStream (aborts the
//!   apiserver ──watch/kind──▶ task ─┘            tasks when dropped)
//! ```

use super::error::{map, revision, Target};
use super::{crs, ops, pod, KubeStore};
use crate::datastore::{
    Error, EventType, Follow, FollowStream, ListResult, WatchEvent, WatchStream,
};
use crate::resources::Kind;
use futures::{Stream, StreamExt};
use kube::api::{DynamicObject, WatchEvent as KubeEvent, WatchParams};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use serde_json::Value;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Server-side watch timeout: the apiserver's own default range (5–10 min)
/// ends watches anyway; asking for less keeps re-watches regular.
const WATCH_TIMEOUT_SECS: u32 = 290;

/// A channel fed by tasks that stop when the stream is dropped.
struct TaskStream<T> {
    rx: mpsc::Receiver<T>,
    tasks: Vec<JoinHandle<()>>,
}

impl<T> Stream for TaskStream<T> {
    type Item = T;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.rx.poll_recv(cx)
    }
}

impl<T> Drop for TaskStream<T> {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// One API event as zero or one datastore events. `applied` is an add or
/// a change; otherwise the object was deleted.
fn convert(kind: Kind, applied: bool, added: bool, v: &Value) -> Result<Option<WatchEvent>, Error> {
    let name = v
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let rev = revision(
        kind,
        name,
        v.pointer("/metadata/resourceVersion")
            .and_then(Value::as_str),
    )?;
    let event = |event_type, resource| {
        Some(WatchEvent {
            revision: rev,
            event_type,
            resource,
        })
    };
    let marked = crs::marked_deleted(kind, v);
    if !applied {
        // A marked IPAM object was reported deleted when it was marked.
        if marked {
            return Ok(None);
        }
        let r = match kind {
            Kind::WorkloadEndpoint => pod::endpoint_of_pod(v)?,
            _ => ops::decode(kind, v)?,
        };
        return Ok(r.and_then(|r| event(EventType::Deleted, r)));
    }
    if marked {
        return Ok(crs::from_cr(kind, v)
            .ok()
            .and_then(|r| event(EventType::Deleted, r)));
    }
    match ops::decode(kind, v)? {
        Some(r) => Ok(event(
            if added {
                EventType::Added
            } else {
                EventType::Modified
            },
            r,
        )),
        // A Pod that stopped being an endpoint (finished, addresses gone).
        None if kind == Kind::WorkloadEndpoint => {
            Ok(pod::endpoint_of_pod(v)?.and_then(|r| event(EventType::Deleted, r)))
        }
        None => Ok(None),
    }
}

pub(super) fn watch(s: &KubeStore, kinds: &[Kind], from: u64) -> Result<WatchStream, Error> {
    let kinds: Vec<Kind> = if kinds.is_empty() {
        Kind::ALL.to_vec()
    } else {
        kinds.to_vec()
    };
    let (tx, rx) = mpsc::channel(256);
    let tasks = kinds
        .into_iter()
        .map(|kind| tokio::spawn(watch_kind(s.clone(), kind, from, tx.clone())))
        .collect();
    Ok(Box::pin(TaskStream { rx, tasks }))
}

async fn watch_kind(
    s: KubeStore,
    kind: Kind,
    from: u64,
    tx: mpsc::Sender<Result<WatchEvent, Error>>,
) {
    let api = s.api(kind);
    let mut rv = from.to_string();
    loop {
        let wp = WatchParams::default().timeout(WATCH_TIMEOUT_SECS);
        let stream = match api.watch(&wp, &rv).await {
            Ok(st) => st,
            Err(e) => {
                let _ = tx
                    .send(Err(watch_error(
                        map(
                            e,
                            Target {
                                kind,
                                name: "(watch)",
                            },
                        ),
                        &rv,
                    )))
                    .await;
                return;
            }
        };
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            let (applied, added, obj): (bool, bool, DynamicObject) = match ev {
                Ok(KubeEvent::Added(o)) => (true, true, o),
                Ok(KubeEvent::Modified(o)) => (true, false, o),
                Ok(KubeEvent::Deleted(o)) => (false, false, o),
                Ok(KubeEvent::Bookmark(b)) => {
                    rv = b.metadata.resource_version;
                    continue;
                }
                Ok(KubeEvent::Error(status)) => {
                    let e = map(
                        kube::Error::Api(status),
                        Target {
                            kind,
                            name: "(watch)",
                        },
                    );
                    let _ = tx.send(Err(watch_error(e, &rv))).await;
                    return;
                }
                Err(e) => {
                    let e = map(
                        e,
                        Target {
                            kind,
                            name: "(watch)",
                        },
                    );
                    let _ = tx.send(Err(watch_error(e, &rv))).await;
                    return;
                }
            };
            if let Some(v) = &obj.metadata.resource_version {
                rv = v.clone();
            }
            let v = ops::to_value(&obj);
            match convert(kind, applied, added, &v) {
                Ok(None) => {}
                Ok(Some(ev)) => {
                    if tx.send(Ok(ev)).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    if tx.send(Err(e)).await.is_err() {
                        return;
                    }
                }
            }
        }
        // The server ended the watch (its timeout): carry on from rv.
    }
}

/// A 410 names the revision asked for.
fn watch_error(e: Error, rv: &str) -> Error {
    match e {
        Error::Compacted { .. } => {
            let r = rv.parse().unwrap_or(0);
            Error::Compacted {
                requested: r,
                compacted: r,
            }
        }
        e => e,
    }
}

pub(super) fn follow(s: &KubeStore, kind: Kind) -> FollowStream {
    let (tx, rx) = mpsc::channel(256);
    let task = tokio::spawn(follow_kind(s.clone(), kind, tx));
    Box::pin(TaskStream {
        rx,
        tasks: vec![task],
    })
}

async fn follow_kind(s: KubeStore, kind: Kind, tx: mpsc::Sender<Result<Follow, Error>>) {
    let stream = watcher::watcher(s.api(kind), watcher::Config::default()).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut listing: Vec<crate::resources::Resource> = Vec::new();
    let mut list_rev = 0;
    let mut absent_reported = false;
    while let Some(ev) = stream.next().await {
        let out = match ev {
            Ok(Event::Init) => {
                listing.clear();
                list_rev = 0;
                continue;
            }
            Ok(Event::InitApply(o)) => {
                let v = ops::to_value(&o);
                match initial(kind, &v) {
                    Ok(Some((r, rev))) => {
                        list_rev = list_rev.max(rev);
                        listing.push(r);
                        continue;
                    }
                    Ok(None) => continue,
                    Err(e) => Err(e),
                }
            }
            Ok(Event::InitDone) => Ok(Some(Follow::Listed(ListResult {
                items: std::mem::take(&mut listing),
                revision: list_rev,
            }))),
            Ok(Event::Apply(o)) => {
                let v = ops::to_value(&o);
                convert(kind, true, false, &v).map(|e| e.map(|e| Follow::Event(Box::new(e))))
            }
            Ok(Event::Delete(o)) => {
                let v = ops::to_value(&o);
                convert(kind, false, false, &v).map(|e| e.map(|e| Follow::Event(Box::new(e))))
            }
            // No Installation CRD: a cluster installed from manifests, not
            // by the operator. That is an empty list, not an outage, so the
            // cache gets ready; the watcher keeps retrying and lists the
            // kind once the CRD is there.
            Err(watcher::Error::InitialListFailed(kube::Error::Api(st)))
                if kind == Kind::Installation && st.code == 404 =>
            {
                if absent_reported {
                    continue;
                }
                absent_reported = true;
                tracing::debug!("no installations.operator.tigera.io CRD: no Installation");
                Ok(Some(Follow::Listed(ListResult {
                    items: Vec::new(),
                    revision: 0,
                })))
            }
            Err(e) => Err(Error::Unavailable(format!(
                "watching {}: {e}",
                kind.plural()
            ))),
        };
        let send = match out {
            Ok(None) => continue,
            Ok(Some(f)) => tx.send(Ok(f)).await,
            Err(e) => tx.send(Err(e)).await,
        };
        if send.is_err() {
            return;
        }
    }
}

/// An object of the initial list, unless it is not (or no longer) one of
/// the kind's resources.
fn initial(kind: Kind, v: &Value) -> Result<Option<(crate::resources::Resource, u64)>, Error> {
    if crs::marked_deleted(kind, v) {
        return Ok(None);
    }
    Ok(ops::decode(kind, v)?.map(|r| {
        let rev = r.revision().unwrap_or(0);
        (r, rev)
    }))
}
