//! Discovery documents (API concepts, "Discovery API": the unaggregated
//! `/api`, `/apis` and per-group-version resource lists) and the
//! server-side Table kubectl asks for (API concepts, "Receiving resources
//! as Tables").

use std::net::SocketAddr;
use std::time::SystemTime;

use serde_json::{json, Value};

use crate::request::Query;
use crate::resources::ResourceType;
use crate::util;

/// The Kubernetes version the stand-in claims: the API level of the
/// k8s-openapi feature the workspace builds against (v1_33).
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-tabby-standin",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

pub fn core_versions(addr: SocketAddr) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr.to_string()}],
    })
}

/// Groups in first-registered order (built-ins first), each with its
/// versions, the preferred one first.
fn group_entries(all: &[ResourceType]) -> Vec<Value> {
    let mut names: Vec<&str> = Vec::new();
    for r in all.iter().filter(|r| !r.group.is_empty()) {
        if !names.contains(&r.group.as_str()) {
            names.push(&r.group);
        }
    }
    names.into_iter().map(|g| group_entry(all, g)).collect()
}

fn group_entry(all: &[ResourceType], group: &str) -> Value {
    let mut versions: Vec<&str> = Vec::new();
    for r in all.iter().filter(|r| r.group == group) {
        for v in &r.versions {
            if !versions.contains(&v.as_str()) {
                versions.push(v);
            }
        }
    }
    let gv = |v: &str| json!({"groupVersion": format!("{group}/{v}"), "version": v});
    json!({
        "name": group,
        "versions": versions.iter().map(|v| gv(v)).collect::<Vec<_>>(),
        "preferredVersion": versions.first().map(|v| gv(v)).unwrap_or(Value::Null),
    })
}

pub fn groups(all: &[ResourceType]) -> Value {
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": group_entries(all)})
}

pub fn group(all: &[ResourceType], name: &str) -> Option<Value> {
    if !all.iter().any(|r| r.group == name) {
        return None;
    }
    let mut g = group_entry(all, name);
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Some(g)
}

/// The `APIResourceList` for one group/version: each resource with the
/// verbs the stand-in serves, and its status subresource if it has one.
pub fn resource_list(all: &[ResourceType], group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for r in all.iter().filter(|r| r.group == group && r.serves(version)) {
        let mut e = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
        });
        if !r.short_names.is_empty() {
            e["shortNames"] = json!(r.short_names);
        }
        resources.push(e);
        if r.status_subresource {
            resources.push(json!({
                "name": format!("{}/status", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }))
}

/// Evaluates a simple JSONPath (`.a.b.c`, with optional `{}` braces) as
/// `additionalPrinterColumns` use them; anything fancier gives `None`.
fn json_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let p = path.trim().trim_start_matches('{').trim_end_matches('}');
    let p = p.strip_prefix('.')?;
    p.split('.').try_fold(obj, |cur, seg| cur.get(seg))
}

fn age(obj: &Value) -> Value {
    let ts = obj
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .and_then(util::parse_rfc3339);
    match ts {
        Some(t) => json!(util::human_duration(
            SystemTime::now().duration_since(t).unwrap_or_default()
        )),
        None => json!("<unknown>"),
    }
}

/// A `meta.k8s.io/v1 Table`. Columns are Name and Age (the apiserver's
/// default), or Name followed by a CRD's `additionalPrinterColumns`; `date`
/// columns are shown as ages, as the apiserver's CRD table convertor does.
/// Row objects are PartialObjectMetadata unless `includeObject` says
/// `Object` or `None`.
pub fn table(rt: &ResourceType, items: Vec<Value>, list_rv: Option<u64>, q: &Query) -> Value {
    let mut defs = vec![json!({"name": "Name", "type": "string", "format": "name",
        "description": "Name must be unique within a namespace.", "priority": 0})];
    let custom = !rt.printer_columns.is_empty();
    if custom {
        for c in &rt.printer_columns {
            defs.push(json!({"name": c.name, "type": c.type_, "format": "", "description": "", "priority": c.priority}));
        }
    } else {
        defs.push(json!({"name": "Age", "type": "date", "format": "",
            "description": "CreationTimestamp is a timestamp representing the server time when this object was created.",
            "priority": 0}));
    }
    let include = q
        .get("includeObject")
        .map(String::as_str)
        .unwrap_or("Metadata");
    let rows: Vec<Value> = items
        .into_iter()
        .map(|obj| {
            let mut cells = vec![obj
                .pointer("/metadata/name")
                .cloned()
                .unwrap_or(Value::Null)];
            if custom {
                for c in &rt.printer_columns {
                    let v = json_path(&obj, &c.json_path)
                        .cloned()
                        .unwrap_or(Value::Null);
                    cells.push(if c.type_ == "date" && !v.is_null() {
                        age(&json!({"metadata": {"creationTimestamp": v}}))
                    } else {
                        v
                    });
                }
            } else {
                cells.push(age(&obj));
            }
            let object = match include {
                "None" => Value::Null,
                "Object" => obj,
                _ => json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
                }),
            };
            json!({"cells": cells, "object": object})
        })
        .collect();
    let mut meta = json!({});
    if let Some(rv) = list_rv {
        meta["resourceVersion"] = json!(rv.to_string());
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": defs,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_json_paths() {
        let o = json!({"spec": {"cidr": "10.0.0.0/16", "n": {"m": 3}}});
        assert_eq!(json_path(&o, ".spec.cidr"), Some(&json!("10.0.0.0/16")));
        assert_eq!(json_path(&o, "{.spec.n.m}"), Some(&json!(3)));
        assert_eq!(json_path(&o, ".spec.missing"), None);
        assert_eq!(json_path(&o, "spec"), None);
    }
}
