//! Reads from the event history: where a watch starts, and lists at an
//! exact past resourceVersion.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::broadcast;

use crate::resources::ResourceType;
use crate::status::ApiError;
use crate::store::{Event, EventType, ObjKey, Store};

/// What a new watch sends before live events.
pub struct WatchStart {
    /// Objects to send as synthetic ADDED events (a watch without a
    /// resourceVersion, or from "0", starts with the current state).
    pub initial: Vec<Value>,
    /// Recorded events after the requested resourceVersion.
    pub backlog: Vec<Arc<Event>>,
    /// Live events from the moment the above were taken.
    pub rx: broadcast::Receiver<Arc<Event>>,
    /// The store's resourceVersion at that moment: everything up to it is
    /// in `initial` or `backlog`.
    pub start_rv: u64,
}

fn in_scope(k: &ObjKey, rt: &ResourceType, ns: Option<&str>) -> bool {
    k.same_resource(rt) && ns.is_none_or(|n| k.namespace == n)
}

impl Store {
    /// Starts a watch (API concepts, "Efficient detection of changes" and
    /// "Semantics for watch"): `from` None or 0 means "current state as
    /// ADDED, then changes"; a resourceVersion means "changes strictly
    /// after it", which needs the history since then: older than the
    /// compacted history is 410 Expired ("too old resource version").
    pub fn watch_from(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        from: Option<u64>,
    ) -> Result<WatchStart, ApiError> {
        let g = self.lock();
        // Subscribing under the lock: no write can fall between the
        // snapshot and the live stream.
        let rx = self.subscribe();
        let (initial, backlog) = match from {
            None | Some(0) => {
                let initial = g
                    .objects
                    .iter()
                    .filter(|(k, _)| in_scope(k, rt, ns))
                    .map(|(_, v)| v.clone())
                    .collect();
                (initial, Vec::new())
            }
            Some(rv) => {
                if rv < g.compacted {
                    return Err(ApiError::too_old(rv, g.compacted + 1));
                }
                let backlog = g
                    .log
                    .iter()
                    .filter(|e| e.rv > rv && in_scope(&e.key, rt, ns))
                    .cloned()
                    .collect();
                (Vec::new(), backlog)
            }
        };
        Ok(WatchStart {
            initial,
            backlog,
            rx,
            start_rv: g.rv,
        })
    }

    /// A list as of exactly `rv` (API concepts, "resourceVersionMatch":
    /// `Exact`), rebuilt by undoing the recorded events after it. 410 if
    /// the history no longer reaches back that far; 504 for a version the
    /// store has not reached ("Too large resource version").
    pub fn list_at(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        rv: u64,
    ) -> Result<Vec<Value>, ApiError> {
        let g = self.lock();
        if rv > g.rv {
            return Err(ApiError::Timeout(format!(
                "Too large resource version: {rv}, current: {}",
                g.rv
            )));
        }
        if rv < g.compacted {
            return Err(ApiError::too_old(rv, g.compacted + 1));
        }
        let mut state: BTreeMap<ObjKey, Value> = g
            .objects
            .iter()
            .filter(|(k, _)| in_scope(k, rt, ns))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for e in g.log.iter().rev().take_while(|e| e.rv > rv) {
            if !in_scope(&e.key, rt, ns) {
                continue;
            }
            match (&e.type_, &e.prev) {
                (EventType::Added, _) => {
                    state.remove(&e.key);
                }
                (_, Some(prev)) => {
                    state.insert(e.key.clone(), prev.clone());
                }
                (_, None) => {}
            }
        }
        Ok(state.into_values().collect())
    }

    /// Forgets all recorded history: only watches from the current
    /// resourceVersion (or without one) succeed afterwards.
    pub fn compact(&self) {
        let rv = self.current_rv();
        self.compact_to(rv);
    }
}
