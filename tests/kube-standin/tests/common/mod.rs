//! Helpers shared by the stand-in's integration tests.
#![allow(dead_code)]

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::core::Status;
use serde_json::{json, Value};
use tabby_kube_standin::StandIn;

pub const CALICO_CRDS: &str = include_str!("../fixtures/calico-crds.yaml");

pub async fn start() -> (StandIn, kube::Client) {
    let s = StandIn::start().await.expect("stand-in starts");
    let c = s.client().await.expect("client from the kubeconfig");
    (s, c)
}

pub fn pod(name: &str, node: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
    }))
    .expect("valid pod")
}

pub fn node(name: &str) -> Node {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {"podCIDR": "10.244.1.0/24"},
        "status": {"conditions": [
            {"type": "Ready", "status": "False", "reason": "KubeletNotReady"},
            {"type": "MemoryPressure", "status": "False"}
        ]},
    }))
    .expect("valid node")
}

/// The `Status` of a failed kube call; panics (a test failure) on
/// success or on a non-API error.
pub fn api_err<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> Status {
    match r {
        Err(kube::Error::Api(e)) => *e,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// A raw request through the kube client; the JSON body of the answer.
pub async fn raw(
    client: &kube::Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: Option<Value>,
) -> Result<Value, kube::Error> {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("Content-Type", content_type)
        .body(
            body.map(|b| serde_json::to_vec(&b).expect("serializable"))
                .unwrap_or_default(),
        )
        .expect("valid request");
    let text = client.request_text(req).await?;
    Ok(serde_json::from_str(&text).expect("the stand-in answers JSON"))
}

pub fn rv_of(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no resourceVersion in {v}"))
}
