//! Object metadata and the generic object envelope shared by every kind.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The apiVersion calicoctl reads and writes.
pub const API_V3: &str = "projectcalico.org/v3";
/// The apiVersion of Calico's CRDs as kubectl shows them.
pub const API_CRD_V1: &str = "crd.projectcalico.org/v1";

/// Kubernetes-style metadata. Unknown metadata fields (managedFields,
/// finalizers, ...) that kubectl exports carry are accepted and dropped:
/// they have no meaning for Calico's resources.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The datastore revision at which this object was read. An update that
    /// carries it is a compare-and-swap against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// One resource: `apiVersion`, `kind`, `metadata`, `spec` (and `status` for
/// the kinds that have one). Unknown top-level or spec fields are rejected so
/// that a typo is an error rather than a silently ignored setting.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Object<S> {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: S,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
}

impl ObjectMeta {
    /// How a datastore keys an object of a namespaced kind:
    /// `<namespace>/<name>`, namespace "default" when unset.
    pub fn namespaced_key(&self) -> String {
        let ns = self.namespace.as_deref().unwrap_or("default");
        format!("{ns}/{}", self.name)
    }
}

impl<S: Default> Object<S> {
    /// A fresh v3 object of `kind` named `name`.
    pub fn new(kind: &str, name: &str, spec: S) -> Self {
        Object {
            api_version: API_V3.to_string(),
            kind: kind.to_string(),
            metadata: ObjectMeta {
                name: name.to_string(),
                ..Default::default()
            },
            spec,
            status: None,
        }
    }
}

/// A reference to a key in a Kubernetes Secret, as BGPPeer.password uses.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeyRef {
    pub name: String,
    pub key: String,
}

/// `password: {secretKeyRef: {...}}`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BgpPassword {
    // Optional for serde so that `tabbyctl apply` can name the field in
    // its error; a password without it means nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-tabby-required" = true))]
    pub secret_key_ref: Option<SecretKeyRef>,
}
