//! The object store: one map of JSON objects, one resourceVersion counter
//! for all of them (etcd's revision), and the event history watches read.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::patch::{self, PatchKind};
use crate::resources::{self, ResourceType};
use crate::status::ApiError;
use crate::writes::{self, Target};

/// Where an object lives. Objects are keyed by group and resource, not
/// version: as in the apiserver, one object is served under every version
/// of its resource (without conversion: only `apiVersion` changes).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjKey {
    pub group: String,
    pub plural: String,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
}

impl ObjKey {
    pub fn new(rt: &ResourceType, namespace: &str, name: &str) -> Self {
        ObjKey {
            group: rt.group.clone(),
            plural: rt.plural.clone(),
            namespace: if rt.namespaced {
                namespace.to_string()
            } else {
                String::new()
            },
            name: name.to_string(),
        }
    }

    pub fn same_resource(&self, rt: &ResourceType) -> bool {
        self.group == rt.group && self.plural == rt.plural
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One committed write. `object` is the new state (for a delete, the last
/// state stamped with the delete's resourceVersion); `prev` the state before.
#[derive(Debug, Clone)]
pub struct Event {
    pub rv: u64,
    pub type_: EventType,
    pub key: ObjKey,
    pub object: Value,
    pub prev: Option<Value>,
}

pub(crate) struct Inner {
    pub(crate) rv: u64,
    pub(crate) objects: BTreeMap<ObjKey, Value>,
    pub(crate) resources: Vec<ResourceType>,
    /// Every event with `rv > compacted`, oldest first, at most
    /// `log_capacity` of them.
    pub(crate) log: VecDeque<Arc<Event>>,
    pub(crate) log_capacity: usize,
    pub(crate) compacted: u64,
}

/// The store, shared by the server and the test that owns it.
pub struct Store {
    inner: Mutex<Inner>,
    events: broadcast::Sender<Arc<Event>>,
}

impl Inner {
    /// Stamps a new resourceVersion on the object, stores (or removes) it,
    /// records the event and publishes it.
    fn commit(
        &mut self,
        tx: &broadcast::Sender<Arc<Event>>,
        type_: EventType,
        key: ObjKey,
        mut object: Value,
        prev: Option<Value>,
    ) -> Value {
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        match type_ {
            EventType::Deleted => {
                self.objects.remove(&key);
            }
            _ => {
                self.objects.insert(key.clone(), object.clone());
            }
        }
        let ev = Arc::new(Event {
            rv: self.rv,
            type_,
            key: key.clone(),
            object: object.clone(),
            prev,
        });
        self.log.push_back(ev.clone());
        while self.log.len() > self.log_capacity {
            if let Some(old) = self.log.pop_front() {
                self.compacted = old.rv;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = tx.send(ev);
        if key.group == "apiextensions.k8s.io" && key.plural == "customresourcedefinitions" {
            self.crd_changed(tx, type_, &object);
        }
        object
    }

    /// A CRD write changes what is served; deleting a CRD deletes its
    /// objects (the apiserver does so through the CRD's finalizer).
    fn crd_changed(&mut self, tx: &broadcast::Sender<Arc<Event>>, type_: EventType, crd: &Value) {
        let Ok(rt) = resources::from_crd(crd) else {
            return;
        };
        self.resources
            .retain(|r| !(r.custom && r.group == rt.group && r.plural == rt.plural));
        if type_ != EventType::Deleted {
            self.resources.push(rt);
            return;
        }
        let gone: Vec<(ObjKey, Value)> = self
            .objects
            .iter()
            .filter(|(k, _)| k.same_resource(&rt))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in gone {
            self.commit(tx, EventType::Deleted, k, v.clone(), Some(v));
        }
    }
}

impl Store {
    pub fn new(log_capacity: usize) -> Self {
        let (events, _) = broadcast::channel(4096);
        Store {
            inner: Mutex::new(Inner {
                rv: 0,
                objects: BTreeMap::new(),
                resources: resources::builtins(),
                log: VecDeque::new(),
                log_capacity: log_capacity.max(1),
                compacted: 0,
            }),
            events,
        }
    }

    /// The lock is never held across an await; a panic while holding it
    /// leaves consistent data (every write is one `commit`), so poisoning is
    /// ignored rather than turned into a panic here.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.events.subscribe()
    }

    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// The served resource for `group/version/plural`, if any.
    pub fn resource(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        self.lock()
            .resources
            .iter()
            .find(|r| r.group == group && r.plural == plural && r.serves(version))
            .cloned()
    }

    pub fn resources(&self) -> Vec<ResourceType> {
        self.lock().resources.clone()
    }

    pub fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.lock()
            .objects
            .get(&ObjKey::new(rt, ns, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&writes::details(rt, name)))
    }

    /// Every object of `rt` (in `ns`, if given), in key order, and the
    /// store's resourceVersion at that moment.
    pub fn list_now(&self, rt: &ResourceType, ns: Option<&str>) -> (Vec<Value>, u64) {
        let g = self.lock();
        let items = g
            .objects
            .iter()
            .filter(|(k, _)| k.same_resource(rt) && ns.is_none_or(|n| k.namespace == n))
            .map(|(_, v)| v.clone())
            .collect();
        (items, g.rv)
    }

    pub fn create(&self, rt: &ResourceType, ns: &str, body: Value) -> Result<Value, ApiError> {
        let obj = writes::prepare_create(rt, ns, body)?;
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if rt.plural == "customresourcedefinitions" {
            resources::from_crd(&obj).map_err(|e| ApiError::Invalid(e.to_string()))?;
        }
        let key = ObjKey::new(rt, ns, &name);
        let mut g = self.lock();
        if g.objects.contains_key(&key) {
            return Err(ApiError::already_exists(&writes::details(rt, &name)));
        }
        Ok(g.commit(&self.events, EventType::Added, key, obj, None))
    }

    /// PUT. `body` may carry a resourceVersion to make it conditional.
    pub fn update(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        body: Value,
        target: Target,
    ) -> Result<Value, ApiError> {
        self.modify(rt, ns, name, target, |_| Ok(body))
    }

    /// PATCH: the patch is applied to the current object under the store
    /// lock, then stored as an update (so a resourceVersion the patch sets
    /// is a precondition, as on the apiserver).
    pub fn patch(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        kind: PatchKind,
        body: &Value,
        target: Target,
    ) -> Result<Value, ApiError> {
        if kind == PatchKind::Strategic && rt.custom {
            // The apiserver has no patch strategy for custom resources.
            return Err(ApiError::UnsupportedMediaType(
                "the body of the request was in an unknown format - accepted media types include: \
                 application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
                    .into(),
            ));
        }
        self.modify(rt, ns, name, target, |old| patch::apply(kind, old, body))
    }

    fn modify(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        target: Target,
        f: impl FnOnce(&Value) -> Result<Value, ApiError>,
    ) -> Result<Value, ApiError> {
        if target == Target::Status && !rt.status_subresource {
            return Err(ApiError::not_found(&writes::details(rt, name)));
        }
        let key = ObjKey::new(rt, ns, name);
        let mut g = self.lock();
        let old = g
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&writes::details(rt, name)))?;
        let new = writes::prepare_update(rt, &old, f(&old)?, target)?;
        if rt.plural == "customresourcedefinitions" {
            resources::from_crd(&new).map_err(|e| ApiError::Invalid(e.to_string()))?;
        }
        // An update that changes nothing is not written (the apiserver's
        // storage skips identical writes): same resourceVersion, no event.
        if new == old {
            return Ok(old);
        }
        Ok(g.commit(&self.events, EventType::Modified, key, new, Some(old)))
    }

    pub fn delete(
        &self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        uid: Option<&str>,
        rv: Option<&str>,
    ) -> Result<Value, ApiError> {
        let key = ObjKey::new(rt, ns, name);
        let mut g = self.lock();
        let old = g
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&writes::details(rt, name)))?;
        writes::check_preconditions(rt, &old, uid, rv)?;
        Ok(g.commit(
            &self.events,
            EventType::Deleted,
            key,
            old.clone(),
            Some(old),
        ))
    }

    /// Loads every CRD in a multi-document YAML stream (documents of other
    /// kinds are skipped), creating or replacing each. Returns the names.
    pub fn load_crds_yaml(&self, yaml: &str) -> Result<Vec<String>, ApiError> {
        use serde::Deserialize;
        let crd = resources::crd_resource();
        let mut names = Vec::new();
        for doc in serde_yaml::Deserializer::from_str(yaml) {
            let v = Value::deserialize(doc)
                .map_err(|e| ApiError::BadRequest(format!("CRD YAML: {e}")))?;
            if v.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition") {
                continue;
            }
            let name = v
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            match self.create(&crd, "", v.clone()) {
                Ok(_) => {}
                Err(ApiError::AlreadyExists { .. }) => {
                    let mut v = v;
                    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
                        m.remove("resourceVersion");
                    }
                    self.update(&crd, "", &name, v, Target::Main)?;
                }
                Err(e) => return Err(e),
            }
            names.push(name);
        }
        Ok(names)
    }

    /// Drops all history up to and including `rv`: a watch or exact list
    /// from an older resourceVersion then gets 410.
    pub fn compact_to(&self, rv: u64) {
        let mut g = self.lock();
        let rv = rv.min(g.rv);
        while g.log.front().is_some_and(|e| e.rv <= rv) {
            g.log.pop_front();
        }
        g.compacted = g.compacted.max(rv);
    }
}
