//! Calico's custom resources (`crd.projectcalico.org/v1`) as Tabby's v3
//! resources, both ways, as libcalico-go's `resources.go` does it: the CR
//! carries the v3 spec; the rest of the v3 metadata (labels, annotations,
//! creation time; not name, namespace, resourceVersion or uid, which the
//! CR has itself) is JSON in the `projectcalico.org/metadata` annotation;
//! only label and annotation keys of Calico or the operator are also put
//! on the CR. The IPAM kinds are Calico's internal model, written without
//! that annotation, so their metadata is the CR's own.

use super::names::{cr_name, store_name};
use crate::datastore::Error;
use crate::resources::{Kind, Resource, API_CRD_V1, API_V3};
use serde_json::{json, Map, Value};

pub const METADATA_ANNOTATION: &str = "projectcalico.org/metadata";

/// The kinds stored as Calico CRDs (Node and WorkloadEndpoint are core
/// Nodes and Pods).
pub fn is_crd(kind: Kind) -> bool {
    !matches!(kind, Kind::Node | Kind::WorkloadEndpoint)
}

/// IPAM's own model kinds: no metadata annotation (Calico writes none).
fn is_model(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::IpamBlock | Kind::BlockAffinity | Kind::IpamHandle
    )
}

/// Kinds whose metadata is the CR's own (no `projectcalico.org/metadata`
/// annotation): IPAM's model kinds, and the Installation, which is the
/// operator's object and not a Calico resource at all.
fn own_metadata(kind: Kind) -> bool {
    is_model(kind) || kind == Kind::Installation
}

fn calico_key(k: &str) -> bool {
    k.contains("projectcalico.org/") || k.contains("operator.tigera.io/")
}

/// The CR for `r`, ready to POST or PUT (with its resourceVersion and uid
/// when it has them).
pub fn to_cr(r: &Resource) -> Value {
    let kind = r.kind();
    let v3 = r.to_json_value();
    let meta = v3.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let mut spec = v3.get("spec").cloned().unwrap_or_else(|| json!({}));
    if kind == Kind::BlockAffinity {
        // Calico's CRD types `deleted` as a string.
        if let Some(d) = spec.get_mut("deleted") {
            let s = if d.as_bool() == Some(true) {
                "true"
            } else {
                "false"
            };
            *d = Value::String(s.into());
        }
    }
    let mut cr_meta = Map::new();
    cr_meta.insert("name".into(), cr_name(kind, &r.key_name()).into());
    for k in ["resourceVersion", "uid"] {
        if let Some(v) = meta.get(k) {
            cr_meta.insert(k.into(), v.clone());
        }
    }
    let pick = |field: &str, all: bool| -> Map<String, Value> {
        meta.get(field)
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| all || calico_key(k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let model = own_metadata(kind);
    let labels = pick("labels", model);
    let mut annotations = pick("annotations", model);
    if !model {
        let mut rest = meta.as_object().cloned().unwrap_or_default();
        for k in ["name", "namespace", "resourceVersion", "uid"] {
            rest.remove(k);
        }
        annotations.insert(
            METADATA_ANNOTATION.into(),
            Value::String(Value::Object(rest).to_string()),
        );
    }
    if !labels.is_empty() {
        cr_meta.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        cr_meta.insert("annotations".into(), Value::Object(annotations));
    }
    let api = if kind == Kind::Installation {
        kind.api_version()
    } else {
        API_CRD_V1
    };
    let mut cr = json!({
        "apiVersion": api,
        "kind": kind.as_str(),
        "metadata": Value::Object(cr_meta),
        "spec": spec,
    });
    // Only the Installation has a status; the API server takes it through
    // the status subresource (`Datastore::update_status`), not here.
    if let Some(st) = v3.get("status").filter(|s| !s.is_null()) {
        cr["status"] = st.clone();
    }
    cr
}

/// Reads a CR (as the API returned it) as Tabby's v3 resource.
pub fn from_cr(kind: Kind, cr: &Value) -> Result<Resource, Error> {
    let cr_meta = cr.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let cr_name = cr_meta
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let corrupt = |reason: String| Error::Corrupt {
        kind,
        name: cr_name.clone(),
        reason,
    };
    let mut spec = cr.get("spec").cloned().unwrap_or_else(|| json!({}));
    if kind == Kind::IpPool {
        upgrade_old_pool_fields(&mut spec);
    }
    let annotations = cr_meta
        .get("annotations")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut meta: Map<String, Value> = match annotations.get(METADATA_ANNOTATION) {
        Some(Value::String(s)) => serde_json::from_str::<Value>(s)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .ok_or_else(|| {
                corrupt(format!(
                    "annotation {METADATA_ANNOTATION} is not a JSON object"
                ))
            })?,
        _ => {
            // Written by kubectl or by Calico's IPAM: the CR's own metadata.
            let mut m = Map::new();
            if let Some(l) = cr_meta.get("labels") {
                m.insert("labels".into(), l.clone());
            }
            let rest: Map<String, Value> = annotations
                .into_iter()
                .filter(|(k, _)| k != METADATA_ANNOTATION)
                .collect();
            if !rest.is_empty() {
                m.insert("annotations".into(), Value::Object(rest));
            }
            m
        }
    };
    meta.insert("name".into(), store_name(kind, &cr_name, &spec).into());
    for k in ["resourceVersion", "uid"] {
        if let Some(v) = cr_meta.get(k) {
            meta.insert(k.into(), v.clone());
        }
    }
    if !meta.contains_key("creationTimestamp") {
        if let Some(v) = cr_meta.get("creationTimestamp") {
            meta.insert("creationTimestamp".into(), v.clone());
        }
    }
    let mut v3 = json!({
        "apiVersion": if kind == Kind::Installation { kind.api_version() } else { API_V3 },
        "kind": kind.as_str(),
        "metadata": Value::Object(meta),
        "spec": spec,
    });
    if kind == Kind::Installation {
        if let Some(st) = cr.get("status").filter(|s| !s.is_null()) {
            v3["status"] = st.clone();
        }
    }
    Resource::from_json_slice(v3.to_string().as_bytes()).map_err(corrupt)
}

/// Calico before v3 stored `ipip: {enabled, mode}` and `nat-outgoing`; its
/// KDD reader converts them, so a cluster upgraded from then still reads.
fn upgrade_old_pool_fields(spec: &mut Value) {
    let Some(m) = spec.as_object_mut() else {
        return;
    };
    if let Some(ipip) = m.remove("ipip") {
        let enabled = ipip
            .get("enabled")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if enabled && !m.contains_key("ipipMode") {
            let mode = match ipip.get("mode").and_then(Value::as_str) {
                Some("cross-subnet") => "CrossSubnet",
                _ => "Always",
            };
            m.insert("ipipMode".into(), mode.into());
        }
    }
    if let Some(nat) = m.remove("nat-outgoing") {
        m.entry("natOutgoing").or_insert(nat);
    }
}

/// The watch/list filter of the two-step delete: a block, affinity or
/// handle marked `deleted` is already gone as far as readers are concerned.
pub fn marked_deleted(kind: Kind, cr: &Value) -> bool {
    if !is_model(kind) {
        return false;
    }
    match cr.get("spec").and_then(|s| s.get("deleted")) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    }
}

/// Whether deletes of this kind go in two steps (mark, then delete with a
/// uid precondition), as Calico's IPAM kinds do.
pub fn two_step_delete(kind: Kind) -> bool {
    is_model(kind)
}

#[cfg(test)]
#[path = "crs_tests.rs"]
mod tests;
