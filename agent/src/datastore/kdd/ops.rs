//! The single-object verbs. CAS is the apiserver's: an update carries
//! `metadata.resourceVersion` and a stale one is a 409. Calico's IPAM kinds
//! are deleted in two steps, as libcalico-go does: a CAS update marking
//! `deleted`, then a DELETE with a uid precondition; a read that finds the
//! mark finishes the delete, so a crash between the steps loses nothing.

use super::error::{map, revision, Target};
use super::{crs, names, node, pod, KubeStore};
use crate::datastore::{check_size, required_revision, Error, ListResult, Revision};
use crate::resources::workload::parse_workload_endpoint_name;
use crate::resources::{Kind, Resource};
use kube::api::{
    DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, Preconditions,
};
use serde_json::Value;

pub(super) fn to_value(o: &DynamicObject) -> Value {
    serde_json::to_value(o).unwrap_or(Value::Null)
}

fn to_object(kind: Kind, name: &str, v: Value) -> Result<DynamicObject, Error> {
    serde_json::from_value(v).map_err(|e| Error::Invalid(format!("{kind} {name:?}: {e}")))
}

fn rv_of(v: &Value) -> Option<&str> {
    v.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
}

/// A resource from the API's JSON, by kind.
pub(super) fn decode(kind: Kind, v: &Value) -> Result<Option<Resource>, Error> {
    match kind {
        Kind::Node => node::from_k8s(v).map(Some),
        Kind::WorkloadEndpoint => pod::wep_from_pod(v),
        k => crs::from_cr(k, v).map(Some),
    }
}

/// `<namespace>/<endpoint name>` → (namespace, pod name).
fn pod_of(key: &str) -> Result<(String, String), Error> {
    let (ns, wep) = key.split_once('/').unwrap_or(("default", key));
    match parse_workload_endpoint_name(wep) {
        Some((_, pod, _)) => Ok((ns.to_string(), pod)),
        None => Err(Error::NotFound {
            kind: Kind::WorkloadEndpoint,
            name: key.to_string(),
        }),
    }
}

async fn get_raw(s: &KubeStore, kind: Kind, name: &str) -> Result<Value, Error> {
    let t = Target { kind, name };
    let obj = match kind {
        Kind::WorkloadEndpoint => {
            let (ns, p) = pod_of(name)?;
            s.pods(&ns).get(&p).await
        }
        _ => s.api(kind).get(&names::cr_name(kind, name)).await,
    };
    obj.map(|o| to_value(&o)).map_err(|e| map(e, t))
}

pub(super) async fn get(s: &KubeStore, kind: Kind, name: &str) -> Result<Resource, Error> {
    let not_found = || Error::NotFound {
        kind,
        name: name.to_string(),
    };
    let v = get_raw(s, kind, name).await?;
    if crs::marked_deleted(kind, &v) {
        finish_delete(s, kind, &v).await;
        return Err(not_found());
    }
    decode(kind, &v)?.ok_or_else(not_found)
}

/// Step two of a two-step delete; losing a race to another finisher is fine.
async fn finish_delete(s: &KubeStore, kind: Kind, v: &Value) {
    let name = v
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: v
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .map(str::to_string),
            resource_version: None,
        }),
        ..Default::default()
    };
    if let Err(e) = s.api(kind).delete(name, &dp).await {
        tracing::debug!(%kind, name, error = %e, "finishing a two-step delete");
    }
}

pub(super) async fn list(
    s: &KubeStore,
    kind: Kind,
    prefix: Option<&str>,
) -> Result<ListResult, Error> {
    let list = s
        .api(kind)
        .list(&ListParams::default())
        .await
        .map_err(|e| map(e, Target { kind, name: "" }))?;
    let rev = revision(kind, "(list)", list.metadata.resource_version.as_deref())?;
    let mut items = Vec::new();
    for o in &list.items {
        let v = to_value(o);
        if crs::marked_deleted(kind, &v) {
            continue;
        }
        if let Some(r) = decode(kind, &v)? {
            if prefix.is_none_or(|p| r.key_name().starts_with(p)) {
                items.push(r);
            }
        }
    }
    items.sort_by_key(|r| r.key_name());
    Ok(ListResult {
        items,
        revision: rev,
    })
}

/// The Conflict error for a stale write, with the current revision read back.
async fn conflict(s: &KubeStore, kind: Kind, name: &str, expected: Revision) -> Error {
    match get_raw(s, kind, name).await {
        Ok(v) => Error::Conflict {
            kind,
            name: name.to_string(),
            expected,
            current: revision(kind, name, rv_of(&v)).unwrap_or(0),
        },
        Err(e) => e,
    }
}

pub(super) async fn create(s: &KubeStore, mut r: Resource) -> Result<Resource, Error> {
    // The API server's own limit, checked here so every backend refuses
    // the same objects with the same error.
    check_size(&r)?;
    let (kind, name) = (r.kind(), r.key_name());
    let t = || Target { kind, name: &name };
    match kind {
        Kind::Node => Err(Error::Invalid(format!(
            "Node {name:?} does not exist in Kubernetes: in the Kubernetes datastore a Node is \
             registered by its kubelet, and Tabby never creates one"
        ))),
        Kind::WorkloadEndpoint => {
            let Resource::WorkloadEndpoint(w) = &mut r else {
                unreachable!("kind is WorkloadEndpoint")
            };
            let (ns, p) = pod_of(&name)?;
            let current = s.pods(&ns).get(&p).await.map_err(|e| match map(e, t()) {
                Error::NotFound { .. } => Error::Invalid(format!(
                    "pod {ns}/{p} does not exist: in the Kubernetes datastore a \
                     WorkloadEndpoint is its Pod"
                )),
                e => e,
            })?;
            if let Some(Resource::WorkloadEndpoint(have)) = pod::wep_from_pod(&to_value(&current))?
            {
                if have.spec.container_id == w.spec.container_id {
                    return Err(Error::AlreadyExists { kind, name });
                }
            }
            w.metadata.resource_version = None;
            patch_pod(s, &ns, &p, &name, pod::add_patch(w)).await
        }
        _ => {
            let m = r.metadata_mut();
            m.resource_version = None;
            m.uid = None;
            let obj = to_object(kind, &name, crs::to_cr(&r))?;
            let made = s
                .api(kind)
                .create(&PostParams::default(), &obj)
                .await
                .map_err(|e| map(e, t()))?;
            crs::from_cr(kind, &to_value(&made))
        }
    }
}

async fn patch_pod(
    s: &KubeStore,
    ns: &str,
    p: &str,
    key: &str,
    patch: Value,
) -> Result<Resource, Error> {
    let t = Target {
        kind: Kind::WorkloadEndpoint,
        name: key,
    };
    let out = s
        .pods(ns)
        .patch_status(p, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| map(e, t))?;
    pod::wep_from_pod(&to_value(&out))?.ok_or_else(|| Error::NotFound {
        kind: Kind::WorkloadEndpoint,
        name: key.to_string(),
    })
}

pub(super) async fn update(s: &KubeStore, r: Resource) -> Result<Resource, Error> {
    let expected = required_revision(&r)?;
    check_size(&r)?;
    let (kind, name) = (r.kind(), r.key_name());
    let t = || Target { kind, name: &name };
    let res = match &r {
        Resource::Node(n) => {
            let mut k8s = get_raw(s, kind, &name).await?;
            let current = revision(kind, &name, rv_of(&k8s))?;
            if current != expected {
                return Err(Error::Conflict {
                    kind,
                    name,
                    expected,
                    current,
                });
            }
            node::merge_into_k8s(n, &mut k8s);
            let obj = to_object(kind, &name, k8s)?;
            s.api(kind)
                .replace(&name, &PostParams::default(), &obj)
                .await
                .map_err(|e| map(e, t()))
                .and_then(|o| node::from_k8s(&to_value(&o)))
        }
        Resource::WorkloadEndpoint(w) => {
            let (ns, p) = pod_of(&name)?;
            patch_pod(s, &ns, &p, &name, pod::add_patch(w)).await
        }
        _ => {
            let obj = to_object(kind, &name, crs::to_cr(&r))?;
            let cr = names::cr_name(kind, &name);
            s.api(kind)
                .replace(&cr, &PostParams::default(), &obj)
                .await
                .map_err(|e| map(e, t()))
                .and_then(|o| crs::from_cr(kind, &to_value(&o)))
        }
    };
    match res {
        Err(Error::Conflict { .. }) => Err(conflict(s, kind, &name, expected).await),
        other => other,
    }
}

/// The status subresource of a CR (the Installation's), CAS on its
/// resourceVersion like [`update`].
pub(super) async fn update_status(s: &KubeStore, r: Resource) -> Result<Resource, Error> {
    let expected = required_revision(&r)?;
    let (kind, name) = (r.kind(), r.key_name());
    let cr = names::cr_name(kind, &name);
    let obj = to_object(kind, &name, crs::to_cr(&r))?;
    let res = s
        .api(kind)
        .replace_status(&cr, &PostParams::default(), &obj)
        .await
        .map_err(|e| map(e, Target { kind, name: &name }))
        .and_then(|o| crs::from_cr(kind, &to_value(&o)));
    match res {
        Err(Error::Conflict { .. }) => Err(conflict(s, kind, &name, expected).await),
        other => other,
    }
}

pub(super) async fn delete(
    s: &KubeStore,
    kind: Kind,
    name: &str,
    rev: Option<Revision>,
) -> Result<Resource, Error> {
    let t = || Target { kind, name };
    if kind == Kind::Node {
        return Err(Error::Invalid(format!(
            "Node {name:?}: in the Kubernetes datastore a Node is the cluster's own; Tabby never \
             deletes one (kubectl delete node {name})"
        )));
    }
    let v = get_raw(s, kind, name).await?;
    let last = match decode(kind, &v)? {
        Some(r) if !crs::marked_deleted(kind, &v) => r,
        _ => {
            return Err(Error::NotFound {
                kind,
                name: name.to_string(),
            })
        }
    };
    let current = revision(kind, name, rv_of(&v))?;
    if let Some(expected) = rev.filter(|e| *e != current) {
        return Err(Error::Conflict {
            kind,
            name: name.to_string(),
            expected,
            current,
        });
    }
    if kind == Kind::WorkloadEndpoint {
        let (ns, p) = pod_of(name)?;
        let patch = pod::del_patch(Some(&current.to_string()));
        let t = Target { kind, name };
        s.pods(&ns)
            .patch_status(&p, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| map(e, t))?;
        return Ok(last);
    }
    let cr = names::cr_name(kind, name);
    let uid = v
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .map(str::to_string);
    if crs::two_step_delete(kind) {
        // Step one: the mark, CAS on the revision read (or asked for).
        let mut marked = v.clone();
        marked["spec"]["deleted"] = if kind == Kind::BlockAffinity {
            Value::String("true".into())
        } else {
            Value::Bool(true)
        };
        let obj = to_object(kind, name, marked)?;
        let r = s.api(kind).replace(&cr, &PostParams::default(), &obj).await;
        if let Err(e) = r {
            return match map(e, t()) {
                Error::Conflict { .. } => Err(conflict(s, kind, name, current).await),
                e => Err(e),
            };
        }
    }
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid,
            resource_version: (!crs::two_step_delete(kind)).then(|| current.to_string()),
        }),
        ..Default::default()
    };
    match s.api(kind).delete(&cr, &dp).await {
        Ok(_) => Ok(last),
        // Someone else finished our marked delete: it is gone all the same.
        Err(e) => match map(e, t()) {
            Error::NotFound { .. } if crs::two_step_delete(kind) => Ok(last),
            Error::Conflict { .. } => Err(conflict(s, kind, name, current).await),
            e => Err(e),
        },
    }
}

pub(super) async fn set_network_condition(
    s: &KubeStore,
    node_name: &str,
    up: bool,
) -> Result<(), Error> {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let patch = node::network_condition_patch(up, &now);
    s.api(Kind::Node)
        .patch_status(
            node_name,
            &PatchParams::default(),
            &Patch::Strategic(&patch),
        )
        .await
        .map(|_| ())
        .map_err(|e| {
            map(
                e,
                Target {
                    kind: Kind::Node,
                    name: node_name,
                },
            )
        })
}
