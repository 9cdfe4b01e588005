//! The three patch formats the apiserver accepts for JSON clients
//! (API concepts, "Patch"; `kubectl patch --type`).

use serde_json::{Map, Value};

use crate::status::ApiError;

/// Which patch format a request's Content-Type names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json`, RFC 7386.
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/json-patch+json`, RFC 6902.
    Json,
}

impl PatchKind {
    /// Server-side apply (`application/apply-patch+yaml`) and anything else
    /// is refused with 415, the apiserver's answer to an unknown patch type.
    pub fn from_content_type(ct: &str) -> Result<Self, ApiError> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        match base {
            "application/merge-patch+json" => Ok(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
            "application/json-patch+json" => Ok(PatchKind::Json),
            other => Err(ApiError::UnsupportedMediaType(format!(
                "the body of the request was in an unknown format - accepted media types include: \
                 application/json-patch+json, application/merge-patch+json, \
                 application/strategic-merge-patch+json (got {other:?})"
            ))),
        }
    }
}

/// Applies `patch` of `kind` to `doc`.
pub fn apply(kind: PatchKind, doc: &Value, patch: &Value) -> Result<Value, ApiError> {
    match kind {
        PatchKind::Merge => Ok(merge(doc, patch)),
        PatchKind::Strategic => Ok(strategic(doc, patch, None)),
        PatchKind::Json => json_patch(doc, patch),
    }
}

/// RFC 7386: objects merge recursively, `null` removes a member, anything
/// else (arrays included) replaces.
pub fn merge(doc: &Value, patch: &Value) -> Value {
    let Value::Object(p) = patch else {
        return patch.clone();
    };
    let mut out = match doc {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    for (k, v) in p {
        if v.is_null() {
            out.remove(k);
        } else {
            let merged = merge(out.get(k).unwrap_or(&Value::Null), v);
            out.insert(k.clone(), merged);
        }
    }
    Value::Object(out)
}

/// The patch merge key of a list field, from the Go types' `patchMergeKey`
/// tags. Keyed by field name alone, wherever it appears: the kinds Tabby
/// patches have no two lists of the same name with different keys.
fn merge_key(field: &str) -> Option<&'static str> {
    Some(match field {
        "conditions" => "type",
        "addresses" => "type",
        "containers" | "initContainers" | "ephemeralContainers" => "name",
        "env" | "volumes" | "imagePullSecrets" => "name",
        "volumeMounts" => "mountPath",
        "ports" => "containerPort",
        "podIPs" | "hostIPs" => "ip",
        "ownerReferences" => "uid",
        "containerStatuses" | "initContainerStatuses" => "name",
        _ => return None,
    })
}

/// Strategic merge patch: as RFC 7386, except that a list with a known
/// patch merge key is merged element by element on that key (an element
/// carrying `"$patch": "delete"` removes its match). `$setElementOrder`,
/// `$retainKeys`, `$deleteFromPrimitiveList` and `"$patch": "replace"` are
/// not implemented: `$`-directives other than the element delete are dropped.
fn strategic(doc: &Value, patch: &Value, field: Option<&str>) -> Value {
    match patch {
        Value::Object(p) => {
            let mut out = match doc {
                Value::Object(m) => m.clone(),
                _ => Map::new(),
            };
            for (k, v) in p {
                if k.starts_with('$') {
                    continue;
                }
                if v.is_null() {
                    out.remove(k);
                } else {
                    let merged = strategic(out.get(k).unwrap_or(&Value::Null), v, Some(k));
                    out.insert(k.clone(), merged);
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            let key = field.and_then(merge_key);
            match (key, doc) {
                (Some(key), Value::Array(existing)) => merge_list(existing, items, key),
                _ => Value::Array(items.iter().filter(|i| !is_delete(i)).cloned().collect()),
            }
        }
        other => other.clone(),
    }
}

fn is_delete(v: &Value) -> bool {
    v.get("$patch").and_then(Value::as_str) == Some("delete")
}

fn merge_list(existing: &[Value], patch: &[Value], key: &str) -> Value {
    let mut out: Vec<Value> = existing.to_vec();
    for item in patch {
        let id = item.get(key);
        let pos = id.and_then(|id| out.iter().position(|e| e.get(key) == Some(id)));
        match (pos, is_delete(item)) {
            (Some(i), true) => {
                out.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => out[i] = strategic(&out[i], item, None),
            (None, false) => out.push(strategic(&Value::Null, item, None)),
        }
    }
    Value::Array(out)
}

/// RFC 6901 pointer segments, with `~1` and `~0` unescaped.
fn segments(path: &str) -> Result<Vec<String>, ApiError> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| ApiError::BadRequest(format!("json patch: invalid path {path:?}")))?;
    Ok(rest
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn missing(path: &str) -> ApiError {
    ApiError::Invalid(format!("json patch: path {path:?} does not exist"))
}

fn parent<'a>(doc: &'a mut Value, segs: &[String], path: &str) -> Result<&'a mut Value, ApiError> {
    let mut cur = doc;
    for s in segs {
        cur = match cur {
            Value::Object(m) => m.get_mut(s).ok_or_else(|| missing(path))?,
            Value::Array(a) => {
                let i: usize = s.parse().map_err(|_| missing(path))?;
                a.get_mut(i).ok_or_else(|| missing(path))?
            }
            _ => return Err(missing(path)),
        };
    }
    Ok(cur)
}

fn remove_at(doc: &mut Value, path: &str) -> Result<Value, ApiError> {
    let segs = segments(path)?;
    let (last, init) = segs.split_last().ok_or_else(|| missing(path))?;
    match parent(doc, init, path)? {
        Value::Object(m) => m.remove(last).ok_or_else(|| missing(path)),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| missing(path))?;
            if i < a.len() {
                Ok(a.remove(i))
            } else {
                Err(missing(path))
            }
        }
        _ => Err(missing(path)),
    }
}

fn add_at(doc: &mut Value, path: &str, value: Value, replace: bool) -> Result<(), ApiError> {
    let segs = segments(path)?;
    let Some((last, init)) = segs.split_last() else {
        *doc = value;
        return Ok(());
    };
    match parent(doc, init, path)? {
        Value::Object(m) => {
            if replace && !m.contains_key(last) {
                return Err(missing(path));
            }
            m.insert(last.clone(), value);
        }
        Value::Array(a) => {
            if last == "-" && !replace {
                a.push(value);
            } else {
                let i: usize = last.parse().map_err(|_| missing(path))?;
                if replace {
                    *a.get_mut(i).ok_or_else(|| missing(path))? = value;
                } else if i <= a.len() {
                    a.insert(i, value);
                } else {
                    return Err(missing(path));
                }
            }
        }
        _ => return Err(missing(path)),
    }
    Ok(())
}

/// RFC 6902: add, remove, replace, move, copy and test, applied in order;
/// the whole patch fails if one operation does.
pub fn json_patch(doc: &Value, patch: &Value) -> Result<Value, ApiError> {
    let ops = patch
        .as_array()
        .ok_or_else(|| ApiError::BadRequest("json patch must be an array of operations".into()))?;
    let mut out = doc.clone();
    for op in ops {
        let name = op.get("op").and_then(Value::as_str).unwrap_or_default();
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::BadRequest("json patch operation without a path".into()))?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| ApiError::BadRequest(format!("json patch {name} needs a value")))
        };
        let from = || {
            op.get("from")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::BadRequest(format!("json patch {name} needs from")))
        };
        match name {
            "add" => add_at(&mut out, path, value()?, false)?,
            "replace" => add_at(&mut out, path, value()?, true)?,
            "remove" => {
                remove_at(&mut out, path)?;
            }
            "move" => {
                let v = remove_at(&mut out, from()?)?;
                add_at(&mut out, path, v, false)?;
            }
            "copy" => {
                let v = out.pointer(from()?).cloned().ok_or_else(|| missing(path))?;
                add_at(&mut out, path, v, false)?;
            }
            "test" => {
                if out.pointer(path) != Some(&value()?) {
                    return Err(ApiError::Invalid(format!(
                        "json patch test operation failed at {path:?}"
                    )));
                }
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "json patch: unknown operation {other:?}"
                )))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // RFC 7386 section 3's example, in part.
    #[test]
    fn merge_patch_follows_rfc_7386() {
        let doc = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        let p = json!({"a": "z", "c": {"f": null}, "l": [3]});
        assert_eq!(
            merge(&doc, &p),
            json!({"a": "z", "c": {"d": "e"}, "l": [3]})
        );
    }

    #[test]
    fn strategic_merge_merges_conditions_by_type() {
        let doc = json!({"status": {"conditions": [
            {"type": "Ready", "status": "False"},
            {"type": "MemoryPressure", "status": "False"}]}});
        let p = json!({"status": {"conditions": [
            {"type": "Ready", "status": "True"},
            {"type": "NetworkUnavailable", "status": "False"},
            {"type": "MemoryPressure", "$patch": "delete"}]}});
        let out = apply(PatchKind::Strategic, &doc, &p).expect("applies");
        assert_eq!(
            out["status"]["conditions"],
            json!([{"type": "Ready", "status": "True"},
                   {"type": "NetworkUnavailable", "status": "False"}])
        );
        // A merge patch of the same list replaces it whole.
        let out = apply(
            PatchKind::Merge,
            &doc,
            &json!({"status": {"conditions": []}}),
        )
        .expect("applies");
        assert_eq!(out["status"]["conditions"], json!([]));
    }

    #[test]
    fn strategic_merge_replaces_lists_without_a_merge_key() {
        let doc = json!({"spec": {"taints": [{"key": "a"}]}});
        let out = apply(
            PatchKind::Strategic,
            &doc,
            &json!({"spec": {"taints": [{"key": "b"}]}}),
        )
        .expect("applies");
        assert_eq!(out["spec"]["taints"], json!([{"key": "b"}]));
    }

    // RFC 6902 sections 4.1-4.6.
    #[test]
    fn json_patch_operations() {
        let doc = json!({"a": {"b": [1, 2]}, "c": "x"});
        let p = json!([
            {"op": "test", "path": "/c", "value": "x"},
            {"op": "add", "path": "/a/b/-", "value": 3},
            {"op": "add", "path": "/a/b/0", "value": 0},
            {"op": "replace", "path": "/c", "value": "y"},
            {"op": "copy", "from": "/c", "path": "/d"},
            {"op": "move", "from": "/d", "path": "/e~1f"},
            {"op": "remove", "path": "/a/b/1"}
        ]);
        let out = json_patch(&doc, &p).expect("applies");
        assert_eq!(out, json!({"a": {"b": [0, 2, 3]}, "c": "y", "e/f": "y"}));
        assert!(json_patch(&doc, &json!([{"op": "test", "path": "/c", "value": "q"}])).is_err());
        assert!(json_patch(&doc, &json!([{"op": "replace", "path": "/zz", "value": 1}])).is_err());
        assert!(json_patch(&doc, &json!([{"op": "remove", "path": "/a/b/9"}])).is_err());
    }

    #[test]
    fn unknown_patch_types_are_415() {
        let e = PatchKind::from_content_type("application/apply-patch+yaml").expect_err("415");
        assert_eq!(e.code(), 415);
        assert_eq!(
            PatchKind::from_content_type("application/merge-patch+json; charset=utf-8"),
            Ok(PatchKind::Merge)
        );
    }
}
