//! The JSON schema of a spec type, shaped for a CRD's `openAPIV3Schema`:
//! inlined (no `$ref`/`definitions`), structural, and carrying only what
//! the Kubernetes API server should apply.

use kube::core::schema::{OptionalEnum, OptionalIntOrString, StructuralSchemaRewriter};
use schemars::generate::SchemaSettings;
use schemars::transform::{transform_subschemas, AddNullable, Transform};
use schemars::{JsonSchema, Schema};
use serde_json::Value;

/// Marks a field's server-side default in the Rust types
/// (`#[schemars(extend("x-tabby-api-default" = ...))]`); [`ApiDefaultsOnly`]
/// turns it into the schema's `default`.
pub const API_DEFAULT_KEY: &str = "x-tabby-api-default";

/// Marks a field the CRD requires although serde fills it when absent
/// (`#[schemars(extend("x-tabby-required" = true))]`): schemars leaves
/// every `#[serde(default)]` field optional, and `#[schemars(required)]`
/// does not change that for a deserialize schema. [`RequiredMarkers`]
/// moves the mark into the object's `required` list.
pub const REQUIRED_KEY: &str = "x-tabby-required";

/// The schema of `S` as a JSON value, ready to go under a CRD's `spec`.
pub fn spec_schema<S: JsonSchema>() -> Value {
    // The same generator kube-derive's `CustomResource` uses, plus Tabby's
    // own clean-ups.
    let generator = SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .with_transform(RequiredMarkers)
        .with_transform(ApiDefaultsOnly)
        .with_transform(KubernetesFormats)
        .with_transform(AddNullable::default())
        .with_transform(StructuralSchemaRewriter)
        .with_transform(OptionalEnum)
        .with_transform(OptionalIntOrString)
        .into_generator();
    let mut v = generator.into_root_schema_for::<S>().to_value();
    if let Some(o) = v.as_object_mut() {
        // The Rust type name means nothing to a cluster.
        o.remove("title");
    }
    v
}

#[derive(Clone)]
struct RequiredMarkers;

impl Transform for RequiredMarkers {
    fn transform(&mut self, schema: &mut Schema) {
        if let Some(o) = schema.as_object_mut() {
            let mut marked = Vec::new();
            if let Some(Value::Object(props)) = o.get_mut("properties") {
                for (name, p) in props.iter_mut() {
                    let mark = p.as_object_mut().and_then(|p| p.remove(REQUIRED_KEY));
                    if mark == Some(Value::Bool(true)) {
                        marked.push(Value::String(name.clone()));
                    }
                }
            }
            if !marked.is_empty() {
                let required = o
                    .entry("required")
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(list) = required {
                    for m in marked {
                        if !list.contains(&m) {
                            list.push(m);
                        }
                    }
                }
            }
        }
        // Children after the parent, which has just read their marks.
        transform_subschemas(self, schema);
    }
}

/// schemars turns every `#[serde(default)]` into a schema `default`. Those
/// are how Tabby reads an absent field, not API defaults: the API server
/// would write them into every stored object (an empty `cidr`, say, which
/// then no longer fails `required`). So they go, and only the defaults
/// marked with [`API_DEFAULT_KEY`] (the ones Calico's CRDs have) stay.
#[derive(Clone)]
struct ApiDefaultsOnly;

impl Transform for ApiDefaultsOnly {
    fn transform(&mut self, schema: &mut Schema) {
        transform_subschemas(self, schema);
        if let Some(o) = schema.as_object_mut() {
            o.remove("default");
            if let Some(d) = o.remove(API_DEFAULT_KEY) {
                o.insert("default".into(), d);
            }
        }
    }
}

/// schemars names Rust's integer widths (`uint8`, `uint32`, ...), which
/// OpenAPI and Kubernetes don't know. The range they stand for is already
/// in `minimum`/`maximum`; 64-bit ones become `int64` as in Calico's CRDs.
#[derive(Clone)]
struct KubernetesFormats;

impl Transform for KubernetesFormats {
    fn transform(&mut self, schema: &mut Schema) {
        transform_subschemas(self, schema);
        let Some(o) = schema.as_object_mut() else {
            return;
        };
        match o.get("format").and_then(Value::as_str) {
            Some("uint64" | "int64") => {
                o.insert("format".into(), "int64".into());
                // 2^64-1 is not an int64; Kubernetes stores int64.
                o.remove("maximum");
            }
            Some("uint" | "uint8" | "uint16" | "uint32" | "int8" | "int16" | "int") => {
                o.remove("format");
            }
            _ => {}
        }
    }
}
