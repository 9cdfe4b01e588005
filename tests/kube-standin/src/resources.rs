//! Which resources are served: the built-in kinds Tabby touches, plus one
//! entry per registered CustomResourceDefinition.

use serde_json::Value;

/// A column of the server-side Table (`additionalPrinterColumns`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrinterColumn {
    pub name: String,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    pub type_: String,
    /// A simple JSONPath such as `.spec.cidr`.
    pub json_path: String,
    pub priority: i64,
}

/// One served resource (a "resource" in the API-concepts sense: a plural
/// name under a group, with a kind and a scope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    /// Empty for the core group.
    pub group: String,
    /// Served versions, the preferred (storage) one first.
    pub versions: Vec<String>,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    /// Whether `/status` is a subresource (and so main-resource writes
    /// ignore `.status`).
    pub status_subresource: bool,
    /// True for kinds that come from a CRD: they have no strategic-merge
    /// patch (the apiserver answers 415) and `/status` keeps only `.status`.
    pub custom: bool,
    pub printer_columns: Vec<PrinterColumn>,
}

impl ResourceType {
    fn builtin(
        group: &str,
        version: &str,
        plural: &str,
        kind: &str,
        namespaced: bool,
        short: &[&str],
        status: bool,
    ) -> Self {
        ResourceType {
            group: group.into(),
            versions: vec![version.into()],
            plural: plural.into(),
            singular: kind.to_ascii_lowercase(),
            kind: kind.into(),
            namespaced,
            short_names: short.iter().map(|s| s.to_string()).collect(),
            status_subresource: status,
            custom: false,
            printer_columns: Vec::new(),
        }
    }

    /// `v1` or `group/version`.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.group, version)
        }
    }

    pub fn serves(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }
}

/// The built-in kinds (API reference for Kubernetes 1.33): their scope,
/// short names and whether they have a status subresource.
pub fn builtins() -> Vec<ResourceType> {
    vec![
        ResourceType::builtin("", "v1", "nodes", "Node", false, &["no"], true),
        ResourceType::builtin("", "v1", "pods", "Pod", true, &["po"], true),
        ResourceType::builtin("", "v1", "namespaces", "Namespace", false, &["ns"], true),
        ResourceType::builtin(
            "coordination.k8s.io",
            "v1",
            "leases",
            "Lease",
            true,
            &[],
            false,
        ),
        crd_resource(),
    ]
}

/// `apiextensions.k8s.io/v1` `customresourcedefinitions`.
pub fn crd_resource() -> ResourceType {
    ResourceType::builtin(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
        &["crd", "crds"],
        true,
    )
}

/// Why a CRD object cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CustomResourceDefinition: {0}")]
pub struct CrdError(pub String);

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

/// The resource an `apiextensions.k8s.io/v1` CRD object defines.
///
/// CRD docs ("Create a CustomResourceDefinition"): the object's name must be
/// `<plural>.<group>`; `spec.scope` is `Cluster` or `Namespaced`; each
/// served version may declare `subresources.status` and
/// `additionalPrinterColumns`.
pub fn from_crd(crd: &Value) -> Result<ResourceType, CrdError> {
    let group = str_at(crd, &["spec", "group"]).ok_or_else(|| CrdError("spec.group".into()))?;
    let names = crd
        .pointer("/spec/names")
        .ok_or_else(|| CrdError("spec.names".into()))?;
    let plural = str_at(names, &["plural"]).ok_or_else(|| CrdError("spec.names.plural".into()))?;
    let kind = str_at(names, &["kind"]).ok_or_else(|| CrdError("spec.names.kind".into()))?;
    let name = str_at(crd, &["metadata", "name"]).unwrap_or_default();
    if name != format!("{plural}.{group}") {
        return Err(CrdError(format!(
            "metadata.name must be spec.names.plural+\".\"+spec.group ({plural}.{group}), not {name:?}"
        )));
    }
    let namespaced = match str_at(crd, &["spec", "scope"]) {
        Some("Namespaced") => true,
        Some("Cluster") => false,
        other => {
            return Err(CrdError(format!(
                "spec.scope must be Cluster or Namespaced, not {other:?}"
            )))
        }
    };
    let mut versions = Vec::new();
    let mut status_subresource = false;
    let mut printer_columns = Vec::new();
    let listed = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .ok_or_else(|| CrdError("spec.versions".into()))?;
    for v in listed {
        let vname = str_at(v, &["name"]).ok_or_else(|| CrdError("spec.versions[].name".into()))?;
        if v.get("served").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        // The storage version goes first: it is the preferred one in discovery.
        if v.get("storage").and_then(Value::as_bool) == Some(true) {
            versions.insert(0, vname.to_string());
            if v.pointer("/subresources/status").is_some() {
                status_subresource = true;
            }
            printer_columns = columns(v);
        } else {
            versions.push(vname.to_string());
            if printer_columns.is_empty() {
                printer_columns = columns(v);
            }
            status_subresource |= v.pointer("/subresources/status").is_some();
        }
    }
    if versions.is_empty() {
        return Err(CrdError("no served version".into()));
    }
    let singular = str_at(names, &["singular"])
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_ascii_lowercase());
    let short_names = names
        .get("shortNames")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok(ResourceType {
        group: group.into(),
        versions,
        plural: plural.into(),
        singular,
        kind: kind.into(),
        namespaced,
        short_names,
        status_subresource,
        custom: true,
        printer_columns,
    })
}

fn columns(version: &Value) -> Vec<PrinterColumn> {
    let Some(cols) = version
        .get("additionalPrinterColumns")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    cols.iter()
        .filter_map(|c| {
            Some(PrinterColumn {
                name: c.get("name")?.as_str()?.to_string(),
                type_: c
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("string")
                    .to_string(),
                json_path: c.get("jsonPath")?.as_str()?.to_string(),
                priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn crd(scope: &str, status: bool) -> Value {
        let mut v = json!({"name": "v1", "served": true, "storage": true});
        if status {
            v["subresources"] = json!({"status": {}});
        }
        json!({
            "metadata": {"name": "ippools.crd.projectcalico.org"},
            "spec": {
                "group": "crd.projectcalico.org",
                "names": {"kind": "IPPool", "plural": "ippools", "singular": "ippool", "listKind": "IPPoolList"},
                "scope": scope,
                "versions": [v],
            }
        })
    }

    #[test]
    fn a_cluster_scoped_crd_without_status() {
        let r = from_crd(&crd("Cluster", false)).expect("valid");
        assert_eq!(r.group, "crd.projectcalico.org");
        assert_eq!(r.versions, vec!["v1"]);
        assert!(!r.namespaced);
        assert!(!r.status_subresource);
        assert!(r.custom);
    }

    #[test]
    fn a_namespaced_crd_with_status() {
        let r = from_crd(&crd("Namespaced", true)).expect("valid");
        assert!(r.namespaced);
        assert!(r.status_subresource);
    }

    #[test]
    fn a_crd_whose_name_does_not_match_is_refused() {
        let mut c = crd("Cluster", false);
        c["metadata"]["name"] = json!("pools.example.org");
        assert!(from_crd(&c).is_err());
        let mut c = crd("Everywhere", false);
        c["metadata"]["name"] = json!("ippools.crd.projectcalico.org");
        assert!(from_crd(&c).is_err());
    }
}
