//! Request routing: the apiserver's URL layout (API concepts, "Resource
//! URIs") onto store operations.

use std::sync::Arc;

use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{json, Value};

use crate::discovery;
use crate::patch::PatchKind;
use crate::request::{not_found, parse_query, present, query_rv, resolve_path, Query, Resolved};
use crate::select::{FieldSelector, LabelSelector, Selectors};
use crate::server::{self, Body, Shared};
use crate::status::ApiError;
use crate::writes::{self, Target};

/// Largest request body accepted (the apiserver's limit is 3 MiB per object).
const MAX_BODY: usize = 3 * 1024 * 1024;

pub async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    match route(&shared, req).await {
        Ok(r) => r,
        Err(e) => server::error(&e),
    }
}

async fn route(shared: &Shared, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path().to_string();
    let q = parse_query(req.uri().query());
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let is_get = req.method() == Method::GET;
    match (segs.as_slice(), is_get) {
        (["version"], true) => return Ok(server::json(StatusCode::OK, &discovery::version())),
        (["healthz" | "readyz" | "livez"], true) => return Ok(server::text(StatusCode::OK, "ok")),
        (["api"], true) => {
            return Ok(server::json(
                StatusCode::OK,
                &discovery::core_versions(shared.addr),
            ))
        }
        (["apis"], true) => {
            return Ok(server::json(
                StatusCode::OK,
                &discovery::groups(&shared.store.resources()),
            ))
        }
        (["apis", g], true) => {
            return discovery::group(&shared.store.resources(), g)
                .map(|v| server::json(StatusCode::OK, &v))
                .ok_or_else(not_found)
        }
        (["api", v], true) | (["apis", _, v], true) => {
            let group = if segs[0] == "api" { "" } else { segs[1] };
            return discovery::resource_list(&shared.store.resources(), group, v)
                .map(|l| server::json(StatusCode::OK, &l))
                .ok_or_else(not_found);
        }
        _ => {}
    }
    let t = resolve_path(&shared.store, &path)?;
    if q.contains_key("dryRun") {
        // Silently persisting a dry run would be worse than refusing it.
        return Err(ApiError::BadRequest(
            "dryRun is not supported by the stand-in".into(),
        ));
    }
    let table = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("as=Table"));
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|c| c.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let method = req.method().clone();
    let body = read_body(req).await?;
    let ns = t.ns.clone().unwrap_or_default();
    let store = &shared.store;
    let rt = &t.rt;
    let ok = |code: StatusCode, obj: Value| Ok(server::json(code, &present(rt, &t.version, obj)));
    let target = if t.sub.is_some() {
        Target::Status
    } else {
        Target::Main
    };
    match (&t.name, method) {
        (None, Method::GET) => {
            let sel = Selectors {
                labels: LabelSelector::parse(q.get("labelSelector").map_or("", |s| s))?,
                fields: FieldSelector::parse(q.get("fieldSelector").map_or("", |s| s), &rt.kind)?,
            };
            if matches!(q.get("watch").map(String::as_str), Some("true" | "1")) {
                return crate::watch::serve(shared, &t, sel, &q);
            }
            list(shared, &t, &sel, &q, table)
        }
        (None, Method::POST) => {
            if rt.namespaced && t.ns.is_none() {
                return Err(ApiError::MethodNotAllowed(
                    "create needs a namespace in the URL".into(),
                ));
            }
            ok(
                StatusCode::CREATED,
                store.create(rt, &ns, json_body(&body)?)?,
            )
        }
        (Some(name), Method::GET) => {
            let obj = store.get(rt, &ns, name)?;
            if table {
                return Ok(server::json(
                    StatusCode::OK,
                    &discovery::table(rt, vec![obj], None, &q),
                ));
            }
            ok(StatusCode::OK, obj)
        }
        (Some(name), Method::PUT) => {
            let body = json_body(&body)?;
            let exists = store.get(rt, &ns, name).is_ok();
            if !exists && target == Target::Main && writes::creates_on_update(rt) {
                return ok(StatusCode::CREATED, store.create(rt, &ns, body)?);
            }
            if exists
                && writes::resource_version(&body)?.is_none()
                && !writes::unconditional_update(rt)
            {
                return Err(ApiError::precondition(
                    &writes::details(rt, name),
                    writes::rv_required_message(rt, name),
                ));
            }
            ok(StatusCode::OK, store.update(rt, &ns, name, body, target)?)
        }
        (Some(name), Method::PATCH) => {
            let kind = PatchKind::from_content_type(&content_type)?;
            ok(
                StatusCode::OK,
                store.patch(rt, &ns, name, kind, &json_body(&body)?, target)?,
            )
        }
        (Some(name), Method::DELETE) if t.sub.is_none() => {
            let opts = if body.is_empty() {
                json!({})
            } else {
                json_body(&body)?
            };
            let pre = |f: &str| {
                opts.pointer(&format!("/preconditions/{f}"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            let (uid, rv) = (pre("uid"), pre("resourceVersion"));
            ok(
                StatusCode::OK,
                store.delete(rt, &ns, name, uid.as_deref(), rv.as_deref())?,
            )
        }
        (_, m) => Err(ApiError::MethodNotAllowed(format!(
            "{m} is not supported on this path"
        ))),
    }
}

async fn read_body(req: Request<Incoming>) -> Result<Vec<u8>, ApiError> {
    let collected = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| ApiError::BadRequest(format!("reading the request body: {e}")))?;
    Ok(collected.to_bytes().to_vec())
}

fn json_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("the request body is not JSON: {e}")))
}

/// LIST (API concepts, "Retrieving large results sets in chunks" is not
/// implemented: `limit` is ignored and every item is returned at once,
/// which a client must accept since the server may always do so).
fn list(
    shared: &Shared,
    t: &Resolved,
    sel: &Selectors,
    q: &Query,
    table: bool,
) -> Result<Response<Body>, ApiError> {
    let rv = query_rv(q)?;
    let exact = q.get("resourceVersionMatch").map(String::as_str) == Some("Exact");
    let (items, list_rv) = match (rv, exact) {
        (Some(rv), true) => (shared.store.list_at(&t.rt, t.ns.as_deref(), rv)?, rv),
        (None, true) => {
            return Err(ApiError::BadRequest(
                "resourceVersionMatch is forbidden unless resourceVersion is provided".into(),
            ))
        }
        (rv, false) => {
            let (items, now) = shared.store.list_now(&t.rt, t.ns.as_deref());
            if let Some(rv) = rv.filter(|rv| *rv > now) {
                return Err(ApiError::Timeout(format!(
                    "Too large resource version: {rv}, current: {now}"
                )));
            }
            (items, now)
        }
    };
    let items: Vec<Value> = items.into_iter().filter(|o| sel.matches(o)).collect();
    if table {
        return Ok(server::json(
            StatusCode::OK,
            &discovery::table(&t.rt, items, Some(list_rv), q),
        ));
    }
    let items: Vec<Value> = items
        .into_iter()
        .map(|o| present(&t.rt, &t.version, o))
        .collect();
    Ok(server::json(
        StatusCode::OK,
        &json!({
            "kind": format!("{}List", t.rt.kind),
            "apiVersion": t.rt.api_version(&t.version),
            "metadata": {"resourceVersion": list_rv.to_string()},
            "items": items,
        }),
    ))
}
