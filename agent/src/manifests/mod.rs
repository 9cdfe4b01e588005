//! The Kubernetes manifests Tabby ships, rendered from its own types so
//! that they cannot drift from what the code reads and writes.
//! `tabbyctl manifests` writes every file in [`files`]; the committed
//! copies under `manifests/` are checked against them by a test.

pub mod crds;
pub mod installation;
pub mod installation_crd;
mod options;
pub mod rbac;
mod schema;
pub mod tabby;
pub mod workloads;
mod yamldoc;

pub use crds::{crd, crd_kinds, crds, crds_yaml, GROUP, VERSION};
pub use schema::spec_schema;

use serde::Serialize;
use serde_json::Value;

/// One generated file: its name under the manifests directory and the
/// function that renders it.
pub struct ManifestFile {
    pub name: &'static str,
    pub render: fn() -> String,
}

/// Every file `tabbyctl manifests` writes, one renderer each.
pub fn files() -> Vec<ManifestFile> {
    vec![
        ManifestFile {
            name: "crds.yaml",
            render: crds_yaml,
        },
        ManifestFile {
            name: "operator-crds.yaml",
            render: installation_crd::operator_crds_yaml,
        },
        ManifestFile {
            name: tabby::FILE,
            render: tabby::tabby_yaml,
        },
        ManifestFile {
            name: installation::FILE,
            render: installation::installation_yaml,
        },
    ]
}

/// Every file as `tabbyctl manifests --image/--installation` renders it:
/// [`files`], with tabby.yaml following `opts`.
pub fn render_all(opts: &tabby::Options) -> Vec<(&'static str, String)> {
    files()
        .into_iter()
        .map(|f| match f.name {
            tabby::FILE => (f.name, tabby::render(opts)),
            _ => (f.name, (f.render)()),
        })
        .collect()
}

/// YAML of a Kubernetes object, with whole numbers written as integers.
/// k8s-openapi holds `minimum`/`maximum` as f64, which would otherwise
/// print as `65535.0`.
pub(crate) fn to_yaml<T: Serialize>(v: &T) -> String {
    let mut value = serde_json::to_value(v).unwrap_or(Value::Null);
    integral_floats_as_ints(&mut value);
    serde_yaml::to_string(&value).unwrap_or_default()
}

fn integral_floats_as_ints(v: &mut Value) {
    match v {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64() {
                // Exactly representable: the schema's bounds are integers
                // well inside 2^53.
                if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
                    *v = Value::from(f as i64);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(integral_floats_as_ints),
        Value::Object(o) => o.values_mut().for_each(integral_floats_as_ints),
        _ => {}
    }
}
