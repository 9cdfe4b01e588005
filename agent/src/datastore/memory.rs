//! An in-process store for unit tests. Same semantics as the real backends
//! (the conformance suite runs against all three), no persistence.

use super::stream::polling_stream;
use super::*;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

#[derive(Default)]
struct Inner {
    revision: Revision,
    items: BTreeMap<(Kind, String), Resource>,
    events: Vec<WatchEvent>,
}

#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
    changed: Arc<Notify>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock can only come from a bug in this
        // file; the data is still consistent because every write is a
        // single insert.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, g: &mut Inner, event_type: EventType, mut resource: Resource) -> Resource {
        g.revision += 1;
        resource.set_revision(g.revision);
        g.events.push(WatchEvent {
            revision: g.revision,
            event_type,
            resource: resource.clone(),
        });
        self.changed.notify_waiters();
        resource
    }
}

#[async_trait]
impl Datastore for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn get(&self, kind: Kind, name: &str) -> Result<Resource, Error> {
        self.lock()
            .items
            .get(&(kind, name.to_string()))
            .cloned()
            .ok_or_else(|| Error::NotFound {
                kind,
                name: name.to_string(),
            })
    }

    async fn list(&self, kind: Kind, name_prefix: Option<&str>) -> Result<ListResult, Error> {
        let g = self.lock();
        let items = g
            .items
            .iter()
            .filter(|((k, n), _)| *k == kind && n.starts_with(name_prefix.unwrap_or("")))
            .map(|(_, r)| r.clone())
            .collect();
        Ok(ListResult {
            items,
            revision: g.revision,
        })
    }

    async fn create(&self, mut resource: Resource) -> Result<Resource, Error> {
        prepare_create(&mut resource);
        check_size(&resource)?;
        let key = (resource.kind(), resource.key_name());
        let mut g = self.lock();
        if g.items.contains_key(&key) {
            return Err(Error::AlreadyExists {
                kind: key.0,
                name: key.1,
            });
        }
        let stored = self.record(&mut g, EventType::Added, resource);
        g.items.insert(key, stored.clone());
        Ok(stored)
    }

    async fn update(&self, resource: Resource) -> Result<Resource, Error> {
        let expected = required_revision(&resource)?;
        check_size(&resource)?;
        let key = (resource.kind(), resource.key_name());
        let mut g = self.lock();
        let current = match g.items.get(&key) {
            None => {
                return Err(Error::NotFound {
                    kind: key.0,
                    name: key.1,
                })
            }
            Some(c) => c.revision().unwrap_or(0),
        };
        if current != expected {
            return Err(Error::Conflict {
                kind: key.0,
                name: key.1,
                expected,
                current,
            });
        }
        let stored = self.record(&mut g, EventType::Modified, resource);
        g.items.insert(key, stored.clone());
        Ok(stored)
    }

    async fn delete(
        &self,
        kind: Kind,
        name: &str,
        revision: Option<Revision>,
    ) -> Result<Resource, Error> {
        let key = (kind, name.to_string());
        let mut g = self.lock();
        let current = g.items.get(&key).cloned().ok_or_else(|| Error::NotFound {
            kind,
            name: name.to_string(),
        })?;
        let cur_rev = current.revision().unwrap_or(0);
        if let Some(expected) = revision.filter(|r| *r != cur_rev) {
            return Err(Error::Conflict {
                kind,
                name: name.to_string(),
                expected,
                current: cur_rev,
            });
        }
        g.items.remove(&key);
        self.record(&mut g, EventType::Deleted, current.clone());
        Ok(current)
    }

    async fn transact(&self, writes: Vec<TxnWrite>) -> Result<Vec<Revision>, Error> {
        check_sizes(&writes)?;
        let mut g = self.lock();
        for w in &writes {
            let cur = g.items.get(&w.target()).and_then(Resource::revision);
            w.check(cur)?;
        }
        let mut revs = Vec::with_capacity(writes.len());
        for w in writes {
            let key = w.target();
            let stored = match w {
                TxnWrite::Create(mut r) => {
                    prepare_create(&mut r);
                    Some(self.record(&mut g, EventType::Added, r))
                }
                TxnWrite::Update(r) => Some(self.record(&mut g, EventType::Modified, r)),
                TxnWrite::Delete { .. } => {
                    if let Some(last) = g.items.remove(&key) {
                        self.record(&mut g, EventType::Deleted, last);
                    }
                    None
                }
            };
            if let Some(r) = stored {
                g.items.insert(key, r);
            }
            revs.push(g.revision);
        }
        Ok(revs)
    }

    async fn watch(&self, kinds: &[Kind], from: Revision) -> Result<WatchStream, Error> {
        let kinds = kinds.to_vec();
        let me = self.clone();
        let waiter = self.clone();
        Ok(polling_stream(
            from,
            move |after| {
                let g = me.lock();
                let evs = g
                    .events
                    .iter()
                    .filter(|e| e.revision > after && wants(&kinds, e.resource.kind()))
                    .cloned()
                    .collect();
                futures::future::ready(Ok((evs, g.revision)))
            },
            move || {
                let w = waiter.clone();
                async move {
                    // Bounded wait: a notify that fires between fetch and
                    // wait is caught by the next fetch at most 200ms later.
                    let _ = tokio::time::timeout(
                        std::time::Duration::from_millis(200),
                        w.changed.notified(),
                    )
                    .await;
                }
            },
        ))
    }
}
