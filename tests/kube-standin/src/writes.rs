//! What the apiserver's strategies do to an object on create and update,
//! before it is stored: system metadata, optimistic concurrency and the
//! status-subresource split.

use std::time::SystemTime;

use serde_json::{json, Map, Value};

use crate::resources::ResourceType;
use crate::status::{ApiError, Details};
use crate::util;

pub fn details(rt: &ResourceType, name: &str) -> Details {
    Details {
        name: name.to_string(),
        group: rt.group.clone(),
        kind: rt.plural.clone(),
    }
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

fn metadata_mut(obj: &mut Value) -> Result<&mut Map<String, Value>, ApiError> {
    let map = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::BadRequest("the request body must be a JSON object".into()))?;
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    meta.as_object_mut()
        .ok_or_else(|| ApiError::BadRequest("metadata must be an object".into()))
}

/// `metadata.resourceVersion` as the store's counter; absent or empty is
/// `None`, anything that is not a decimal u64 is a 400.
pub fn resource_version(obj: &Value) -> Result<Option<u64>, ApiError> {
    match meta_str(obj, "resourceVersion") {
        None | Some("") => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| ApiError::BadRequest(format!("invalid resourceVersion {s:?}"))),
    }
}

/// API conventions, "Names": object names are DNS subdomains (lowercase
/// alphanumerics, `-` and `.`, at most 253 characters).
fn validate_name(rt: &ResourceType, name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(ApiError::Invalid(format!(
            "{} {name:?} is invalid: metadata.name: Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'",
            rt.kind
        )))
    }
}

/// The spec part of an object: everything but metadata and status, which is
/// what `metadata.generation` counts changes of (API conventions,
/// "Metadata": generation is "a sequence number representing a specific
/// generation of the desired state").
fn desired_state(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        for k in ["metadata", "status", "kind", "apiVersion"] {
            m.remove(k);
        }
    }
    o
}

/// Create: `metadata.name` (or `generateName` plus five random characters),
/// the request's namespace, a fresh `uid`, `creationTimestamp` and
/// `generation: 1`. Status on create follows each kind's strategy: pods
/// start `Pending`, namespaces `Active`, custom resources with a status
/// subresource drop it; nodes and the rest keep what was sent.
pub fn prepare_create(rt: &ResourceType, ns: &str, body: Value) -> Result<Value, ApiError> {
    let mut obj = body;
    let meta = metadata_mut(&mut obj)?;
    if meta
        .get("resourceVersion")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty())
    {
        return Err(ApiError::BadRequest(
            "resourceVersion should not be set on objects to be created".into(),
        ));
    }
    let name = match meta.get("name").and_then(Value::as_str) {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => match meta.get("generateName").and_then(Value::as_str) {
            Some(prefix) if !prefix.is_empty() => format!("{prefix}{}", util::name_suffix()),
            _ => {
                return Err(ApiError::Invalid(format!(
                "{} is invalid: metadata.name: Required value: name or generateName is required",
                rt.kind
            )))
            }
        },
    };
    validate_name(rt, &name)?;
    if rt.namespaced {
        match meta.get("namespace").and_then(Value::as_str) {
            Some(n) if !n.is_empty() && n != ns => {
                return Err(ApiError::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request".into(),
                ))
            }
            _ => {}
        }
        meta.insert("namespace".into(), json!(ns));
    } else {
        meta.remove("namespace");
    }
    meta.insert("name".into(), json!(name));
    meta.insert("uid".into(), json!(util::uid()));
    meta.insert(
        "creationTimestamp".into(),
        json!(util::rfc3339(SystemTime::now())),
    );
    meta.insert("generation".into(), json!(1));
    for k in [
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "selfLink",
    ] {
        meta.remove(k);
    }
    let map = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::BadRequest("the request body must be a JSON object".into()))?;
    match (rt.custom, rt.kind.as_str()) {
        (false, "Pod") => {
            map.insert("status".into(), json!({"phase": "Pending"}));
        }
        (false, "Namespace") => {
            map.insert("status".into(), json!({"phase": "Active"}));
        }
        (true, _) if rt.status_subresource => {
            map.remove("status");
        }
        _ => {}
    }
    Ok(obj)
}

/// Which endpoint an update came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Main,
    Status,
}

/// Update (PUT, or the result of a PATCH) of `old` to `new`.
///
/// - Concurrency (API conventions, "Concurrency Control and Consistency"):
///   a `metadata.resourceVersion` in `new` must equal `old`'s, else 409
///   Conflict; without one the update is unconditional.
/// - Status subresource (API conventions, "Spec and Status"; CRD docs,
///   "Status subresource"): through the main resource `.status` is kept
///   from `old`; through `/status` built-in kinds keep `old`'s spec but take
///   `new`'s metadata (labels, annotations: what Calico's CNI plugin
///   patches on pods/status), while custom resources take only `.status`.
/// - `uid`, `creationTimestamp`, `name` and `namespace` cannot change;
///   `generation` goes up when the desired state does.
pub fn prepare_update(
    rt: &ResourceType,
    old: &Value,
    new: Value,
    target: Target,
) -> Result<Value, ApiError> {
    let name = meta_str(old, "name").unwrap_or_default().to_string();
    let d = details(rt, &name);
    if let Some(n) = meta_str(&new, "name") {
        if !n.is_empty() && n != name {
            return Err(ApiError::BadRequest(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
    }
    let old_rv = resource_version(old)?;
    if let Some(rv) = resource_version(&new)? {
        if Some(rv) != old_rv {
            return Err(ApiError::modified(&d));
        }
    }
    if let Some(uid) = meta_str(&new, "uid") {
        if !uid.is_empty() && Some(uid) != meta_str(old, "uid") {
            return Err(ApiError::precondition(
                &d,
                format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(old, "uid").unwrap_or_default()
                ),
            ));
        }
    }
    let mut obj = match (target, rt.custom) {
        (Target::Main, _) => {
            let mut o = new;
            if rt.status_subresource {
                set_or_remove(&mut o, "status", old.get("status").cloned());
            }
            o
        }
        (Target::Status, false) => {
            let mut o = new;
            set_or_remove(&mut o, "spec", old.get("spec").cloned());
            if let Some(refs) = old.pointer("/metadata/ownerReferences").cloned() {
                metadata_mut(&mut o)?.insert("ownerReferences".into(), refs);
            } else {
                metadata_mut(&mut o)?.remove("ownerReferences");
            }
            o
        }
        (Target::Status, true) => {
            let mut o = old.clone();
            set_or_remove(&mut o, "status", new.get("status").cloned());
            o
        }
    };
    let old_meta = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let generation = old_meta
        .get("generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let bump = desired_state(old) != desired_state(&obj);
    let meta = metadata_mut(&mut obj)?;
    for k in [
        "uid",
        "creationTimestamp",
        "name",
        "namespace",
        "resourceVersion",
    ] {
        match old_meta.get(k) {
            Some(v) => meta.insert(k.into(), v.clone()),
            None => meta.remove(k),
        };
    }
    meta.insert(
        "generation".into(),
        json!(if bump { generation + 1 } else { generation }),
    );
    meta.remove("managedFields");
    Ok(obj)
}

fn set_or_remove(obj: &mut Value, key: &str, value: Option<Value>) {
    if let Some(m) = obj.as_object_mut() {
        match value {
            Some(v) => m.insert(key.into(), v),
            None => m.remove(key),
        };
    }
}

/// `DeleteOptions.preconditions` (API concepts, "Deletion"): a delete whose
/// uid or resourceVersion precondition does not match the object is 409.
pub fn check_preconditions(
    rt: &ResourceType,
    obj: &Value,
    uid: Option<&str>,
    rv: Option<&str>,
) -> Result<(), ApiError> {
    let name = meta_str(obj, "name").unwrap_or_default();
    let d = details(rt, name);
    let have_uid = meta_str(obj, "uid").unwrap_or_default();
    if let Some(want) = uid {
        if want != have_uid {
            return Err(ApiError::precondition(
                &d,
                format!("Precondition failed: UID in precondition: {want}, UID in object meta: {have_uid}"),
            ));
        }
    }
    let have_rv = meta_str(obj, "resourceVersion").unwrap_or_default();
    if let Some(want) = rv {
        if want != have_rv {
            return Err(ApiError::precondition(
                &d,
                format!("Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {have_rv}"),
            ));
        }
    }
    Ok(())
}
