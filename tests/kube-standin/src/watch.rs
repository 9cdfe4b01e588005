//! WATCH: a chunked stream of newline-delimited `{"type", "object"}` events
//! (API concepts, "Efficient detection of changes", "Watch bookmarks",
//! "Streaming lists").

use std::sync::Arc;

use http::Response;
use hyper::body::Bytes;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};
use tokio::time::{interval_at, sleep, Duration, Instant};

use crate::request::{present, query_rv, Query, Resolved};
use crate::resources::ResourceType;
use crate::select::Selectors;
use crate::server::{self, Body, Shared};
use crate::status::ApiError;
use crate::store::{Event, EventType};

fn line(type_: &str, object: &Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({"type": type_, "object": object})).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

/// What one event looks like through a selector: the apiserver's watch
/// filter turns an object that starts matching into ADDED and one that
/// stops matching into DELETED (with its new state).
fn translate(e: &Event, sel: &Selectors) -> Option<&'static str> {
    let now = sel.matches(&e.object);
    let before = e.prev.as_ref().is_some_and(|p| sel.matches(p));
    match (e.type_, before, now) {
        (EventType::Added, _, true) => Some("ADDED"),
        (EventType::Modified, true, true) => Some("MODIFIED"),
        (EventType::Modified, false, true) => Some("ADDED"),
        (EventType::Modified, true, false) => Some("DELETED"),
        (EventType::Deleted, _, true) => Some("DELETED"),
        _ => None,
    }
}

struct Watch {
    rt: ResourceType,
    version: String,
    ns: Option<String>,
    sel: Selectors,
    tx: mpsc::Sender<Bytes>,
    /// Every event up to here has been sent or filtered out, so a bookmark
    /// may carry it.
    last_rv: u64,
}

impl Watch {
    async fn send(&self, type_: &str, obj: &Value) -> bool {
        self.tx.send(line(type_, obj)).await.is_ok()
    }

    async fn event(&mut self, e: &Event) -> bool {
        if e.rv <= self.last_rv {
            return true;
        }
        self.last_rv = e.rv;
        let in_scope = e.key.same_resource(&self.rt)
            && self.ns.as_deref().is_none_or(|n| e.key.namespace == n);
        match translate(e, &self.sel) {
            Some(t) if in_scope => {
                let obj = present(&self.rt, &self.version, e.object.clone());
                self.send(t, &obj).await
            }
            _ => true,
        }
    }

    /// A BOOKMARK carries only kind, apiVersion and the resourceVersion
    /// (plus, closing a streaming list, the initial-events-end annotation).
    async fn bookmark(&self, initial_end: bool) -> bool {
        let mut meta = json!({"resourceVersion": self.last_rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = json!({
            "kind": self.rt.kind,
            "apiVersion": self.rt.api_version(&self.version),
            "metadata": meta,
        });
        self.send("BOOKMARK", &obj).await
    }
}

/// Answers a watch request. A resourceVersion older than the history is
/// not an HTTP error: like the apiserver, the stream opens (200) and its
/// only event is an ERROR carrying a 410 Expired Status, which is what
/// makes kube-runtime's watcher relist.
pub fn serve(
    shared: &Shared,
    t: &Resolved,
    sel: Selectors,
    q: &Query,
) -> Result<Response<Body>, ApiError> {
    let flag = |k: &str| matches!(q.get(k).map(String::as_str), Some("true" | "1"));
    let bookmarks = flag("allowWatchBookmarks");
    let send_initial = flag("sendInitialEvents");
    let rv = query_rv(q)?;
    if send_initial && q.get("resourceVersionMatch").map(String::as_str) != Some("NotOlderThan") {
        return Err(ApiError::Invalid(
            "sendInitialEvents requires resourceVersionMatch=NotOlderThan".into(),
        ));
    }
    let timeout = match q.get("timeoutSeconds") {
        Some(s) => Some(Duration::from_secs(s.parse().map_err(|_| {
            ApiError::BadRequest(format!("invalid timeoutSeconds {s:?}"))
        })?)),
        None => None,
    };
    let (tx, rx) = mpsc::channel(256);
    let from = if send_initial { None } else { rv };
    let start = match shared.store.watch_from(&t.rt, t.ns.as_deref(), from) {
        Ok(s) => s,
        Err(e @ ApiError::Expired(_)) => {
            let _ = tx.try_send(line("ERROR", &e.to_status()));
            return Ok(server::stream(rx));
        }
        Err(e) => return Err(e),
    };
    let mut w = Watch {
        rt: t.rt.clone(),
        version: t.version.clone(),
        ns: t.ns.clone(),
        sel,
        tx,
        last_rv: 0,
    };
    let mut shutdown = shared.shutdown.clone();
    let every = shared.opts.bookmark_interval.max(Duration::from_millis(10));
    tokio::spawn(async move {
        let mut rx_ev = start.rx;
        for obj in &start.initial {
            if w.sel.matches(obj)
                && !w
                    .send("ADDED", &present(&w.rt, &w.version, obj.clone()))
                    .await
            {
                return;
            }
        }
        for e in &start.backlog {
            if !w.event(e).await {
                return;
            }
        }
        w.last_rv = start.start_rv;
        if send_initial && bookmarks && !w.bookmark(true).await {
            return;
        }
        let mut tick = interval_at(Instant::now() + every, every);
        let deadline = sleep(timeout.unwrap_or(Duration::from_secs(u32::MAX as u64)));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                ev = rx_ev.recv() => match ev {
                    Ok(e) => if !w.event(&e).await { return },
                    // A watcher too slow for the event buffer, or the store
                    // gone: end the stream, the client re-watches.
                    Err(_) => return,
                },
                _ = tick.tick(), if bookmarks => {
                    if !drain(&mut rx_ev, &mut w).await || !w.bookmark(false).await {
                        return;
                    }
                }
                _ = &mut deadline, if timeout.is_some() => return,
                _ = server::stopped(&mut shutdown) => return,
                _ = w.tx.closed() => return,
            }
        }
    });
    Ok(server::stream(rx))
}

/// Processes every event already published, so the bookmark that follows
/// does not claim a resourceVersion whose event is still queued.
async fn drain(rx: &mut broadcast::Receiver<Arc<Event>>, w: &mut Watch) -> bool {
    loop {
        match rx.try_recv() {
            Ok(e) => {
                if !w.event(&e).await {
                    return false;
                }
            }
            Err(broadcast::error::TryRecvError::Empty) => return true,
            Err(_) => return false,
        }
    }
}
