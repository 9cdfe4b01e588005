//! What a request names: the resource URL (API concepts, "Resource URIs")
//! resolved against what is served, and its query parameters.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::resources::ResourceType;
use crate::status::ApiError;
use crate::store::Store;
use crate::util::percent_decode;

/// A resource URL, resolved against what is served.
pub struct Resolved {
    pub rt: ResourceType,
    pub version: String,
    pub ns: Option<String>,
    pub name: Option<String>,
    pub sub: Option<String>,
}

pub type Query = HashMap<String, String>;

pub fn parse_query(q: Option<&str>) -> Query {
    q.unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

pub fn not_found() -> ApiError {
    ApiError::NotFound {
        message: "the server could not find the requested resource".into(),
        details: Default::default(),
    }
}

/// `<plural>`, `<plural>/<name>`, `<plural>/<name>/<sub>`, each optionally
/// under `namespaces/<ns>/`.
fn resolve(store: &Store, group: &str, version: &str, rest: &[&str]) -> Result<Resolved, ApiError> {
    let (ns, rest) = if rest.len() >= 3
        && rest[0] == "namespaces"
        && !matches!(rest[2], "status" | "finalize")
    {
        (Some(rest[1].to_string()), &rest[2..])
    } else {
        (None, rest)
    };
    let (plural, name, sub) = match rest {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(n.to_string()), None),
        [p, n, s] => (*p, Some(n.to_string()), Some(s.to_string())),
        _ => return Err(not_found()),
    };
    let rt = store
        .resource(group, version, plural)
        .ok_or_else(not_found)?;
    // A cluster-scoped kind has no namespaced URLs; a namespaced object
    // needs its namespace (only its collection may be listed across all).
    let scope_ok = !matches!(
        (rt.namespaced, &ns, &name),
        (false, Some(_), _) | (true, None, Some(_))
    );
    if !scope_ok
        || sub
            .as_deref()
            .is_some_and(|s| s != "status" || !rt.status_subresource)
    {
        return Err(not_found());
    }
    Ok(Resolved {
        rt,
        version: version.to_string(),
        ns,
        name,
        sub,
    })
}

/// Resolves a resource URL path (`/api/v1/...` or `/apis/<g>/<v>/...`).
pub fn resolve_path(store: &Store, path: &str) -> Result<Resolved, ApiError> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["api", v, rest @ ..] if !rest.is_empty() => resolve(store, "", v, rest),
        ["apis", g, v, rest @ ..] if !rest.is_empty() => resolve(store, g, v, rest),
        _ => Err(not_found()),
    }
}

/// Sets `kind` and `apiVersion` for the version the client asked for.
pub fn present(rt: &ResourceType, version: &str, mut obj: Value) -> Value {
    if let Some(m) = obj.as_object_mut() {
        m.insert("kind".into(), json!(rt.kind));
        m.insert("apiVersion".into(), json!(rt.api_version(version)));
    }
    obj
}

/// `resourceVersion` as the store's counter: absent or empty is `None`.
pub fn query_rv(q: &Query) -> Result<Option<u64>, ApiError> {
    match q.get("resourceVersion").map(String::as_str) {
        None | Some("") => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| ApiError::BadRequest(format!("invalid resourceVersion {s:?}"))),
    }
}
