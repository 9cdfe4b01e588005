//! PATCH in its three formats, and the status subresource split, on pods,
//! nodes and a custom resource.

mod common;

use common::{api_err, node, pod, raw, start, CALICO_CRDS};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;

fn condition<'a>(n: &'a Node, type_: &str) -> Option<&'a str> {
    n.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

// Strategic merge patch ("Update API Objects in Place Using kubectl patch";
// NodeStatus.conditions has patchMergeKey "type"): conditions merge by type,
// so one condition changes and the others stay.
#[tokio::test]
async fn strategic_merge_patch_of_node_status_merges_conditions_by_type() {
    let (_s, c) = start().await;
    let nodes: Api<Node> = Api::all(c);
    nodes
        .create(&PostParams::default(), &node("n1"))
        .await
        .expect("create");
    let patch = json!({"status": {"conditions": [
        {"type": "NetworkUnavailable", "status": "False", "reason": "CalicoIsUp"},
        {"type": "Ready", "status": "True"}
    ]}});
    let n = nodes
        .patch_status("n1", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .expect("patch status");
    assert_eq!(condition(&n, "Ready"), Some("True"));
    assert_eq!(condition(&n, "MemoryPressure"), Some("False"));
    assert_eq!(condition(&n, "NetworkUnavailable"), Some("False"));
    // A merge patch of the same list replaces it whole (RFC 7386).
    let patch = json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}});
    let n = nodes
        .patch_status("n1", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("merge patch status");
    assert_eq!(
        n.status.and_then(|s| s.conditions).map(|c| c.len()),
        Some(1)
    );
}

// API conventions, "Spec and Status": with a status subresource, a write to
// the object ignores .status and a write to /status ignores .spec.
#[tokio::test]
async fn status_and_spec_are_written_only_through_their_own_endpoint() {
    let (_s, c) = start().await;
    let nodes: Api<Node> = Api::all(c);
    nodes
        .create(&PostParams::default(), &node("n1"))
        .await
        .expect("create");
    let main = json!({"spec": {"podCIDR": "10.9.0.0/24"}, "status": {"conditions": []}});
    let n = nodes
        .patch("n1", &PatchParams::default(), &Patch::Merge(&main))
        .await
        .expect("patch main");
    assert_eq!(
        n.spec.as_ref().and_then(|s| s.pod_cidr.as_deref()),
        Some("10.9.0.0/24")
    );
    assert_eq!(condition(&n, "Ready"), Some("False"), "status kept");
    let status = json!({"spec": {"podCIDR": "10.8.0.0/24"}, "status": {"conditions": []}});
    let n = nodes
        .patch_status("n1", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("patch status");
    assert_eq!(
        n.spec.as_ref().and_then(|s| s.pod_cidr.as_deref()),
        Some("10.9.0.0/24"),
        "spec kept"
    );
    assert_eq!(
        n.status.and_then(|s| s.conditions).map(|c| c.len()),
        Some(0)
    );
}

// What Calico's CNI plugin does: PATCH pods/<name>/status with only
// metadata.annotations. The pod status strategy keeps metadata changes.
#[tokio::test]
async fn pod_status_patch_with_annotations_sets_them() {
    let (_s, c) = start().await;
    let pods: Api<Pod> = Api::namespaced(c, "default");
    let created = pods
        .create(&PostParams::default(), &pod("p1", "n1"))
        .await
        .expect("create");
    // The pod strategy starts every pod Pending.
    assert_eq!(
        created.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Pending")
    );
    let patch = json!({"metadata": {"annotations": {
        "cni.projectcalico.org/podIP": "10.244.1.5/32",
        "cni.projectcalico.org/podIPs": "10.244.1.5/32"}}});
    let p = pods
        .patch_status("p1", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .expect("patch pods/status");
    let ann = p.metadata.annotations.unwrap_or_default();
    assert_eq!(
        ann.get("cni.projectcalico.org/podIP").map(String::as_str),
        Some("10.244.1.5/32")
    );
    assert!(p.metadata.resource_version > created.metadata.resource_version);
    // A status patch carrying a stale resourceVersion is a conflict.
    let stale = json!({"metadata": {"resourceVersion": created.metadata.resource_version},
                       "status": {"phase": "Running"}});
    let e = api_err(
        pods.patch_status("p1", &PatchParams::default(), &Patch::Merge(&stale))
            .await,
    );
    assert_eq!(e.code, 409);
}

// RFC 6902 JSON patch on pods/status, including a failing `test`.
#[tokio::test]
async fn json_patch_of_pod_status() {
    let (_s, c) = start().await;
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    pods.create(&PostParams::default(), &pod("p1", "n1"))
        .await
        .expect("create");
    // kube's Patch::Json needs its `jsonpatch` feature, which the workspace
    // does not enable: send the request as it goes on the wire.
    let ops = json!([
        {"op": "test", "path": "/status/phase", "value": "Pending"},
        {"op": "replace", "path": "/status/phase", "value": "Running"},
        {"op": "add", "path": "/status/podIP", "value": "10.244.1.5"}
    ]);
    let path = "/api/v1/namespaces/default/pods/p1/status";
    let ct = "application/json-patch+json";
    raw(&c, "PATCH", path, ct, Some(ops.clone()))
        .await
        .expect("json patch status");
    let st = pods
        .get_status("p1")
        .await
        .expect("get")
        .status
        .unwrap_or_default();
    assert_eq!(
        (st.phase.as_deref(), st.pod_ip.as_deref()),
        (Some("Running"), Some("10.244.1.5"))
    );
    // The `test` operation now fails, and so does the whole patch.
    let e = api_err(raw(&c, "PATCH", path, ct, Some(ops)).await);
    assert_eq!(e.code, 422);
    let st = pods
        .get_status("p1")
        .await
        .expect("get")
        .status
        .unwrap_or_default();
    assert_eq!(st.phase.as_deref(), Some("Running"));
}

// Strategic merge of spec.containers by name, on the main resource.
#[tokio::test]
async fn strategic_merge_patch_of_pod_containers_by_name() {
    let (_s, c) = start().await;
    let pods: Api<Pod> = Api::namespaced(c, "default");
    pods.create(&PostParams::default(), &pod("p1", "n1"))
        .await
        .expect("create");
    let patch = json!({"spec": {"containers": [{"name": "c", "image": "busybox:2"}, {"name": "d", "image": "x"}]}});
    let p = pods
        .patch("p1", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .expect("patch");
    let images: Vec<(String, Option<String>)> = p
        .spec
        .map(|s| {
            s.containers
                .into_iter()
                .map(|c| (c.name, c.image))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        images,
        vec![
            ("c".into(), Some("busybox:2".into())),
            ("d".into(), Some("x".into()))
        ]
    );
}

// CRD docs, "Status subresource": a custom resource's /status takes only
// .status; a main write ignores .status. Strategic merge is 415 for custom
// resources, and unknown patch types are 415 everywhere.
#[tokio::test]
async fn custom_resource_status_subresource_and_patch_types() {
    let (s, c) = start().await;
    s.load_crds_yaml(CALICO_CRDS).expect("crds");
    let base = "/apis/crd.projectcalico.org/v1/kubecontrollersconfigurations";
    let body = json!({"apiVersion": "crd.projectcalico.org/v1", "kind": "KubeControllersConfiguration",
        "metadata": {"name": "default"}, "spec": {"logSeverityScreen": "Info"}, "status": {"x": 1}});
    let made = raw(&c, "POST", base, "application/json", Some(body))
        .await
        .expect("create");
    assert!(
        made.get("status").is_none(),
        "status dropped on create: {made}"
    );
    let path = format!("{base}/default/status");
    let st = json!({"metadata": {"labels": {"a": "b"}}, "spec": {"logSeverityScreen": "Debug"}, "status": {"ready": true}});
    let after = raw(&c, "PATCH", &path, "application/merge-patch+json", Some(st))
        .await
        .expect("status patch");
    assert_eq!(after["status"]["ready"], true);
    assert_eq!(after["spec"]["logSeverityScreen"], "Info");
    assert!(
        after["metadata"].get("labels").is_none(),
        "custom /status takes only status"
    );
    let main = json!({"status": {"ready": false}, "spec": {"logSeverityScreen": "Warning"}});
    let after = raw(
        &c,
        "PATCH",
        &format!("{base}/default"),
        "application/merge-patch+json",
        Some(main),
    )
    .await
    .expect("main patch");
    assert_eq!(
        (
            after["status"]["ready"].clone(),
            after["spec"]["logSeverityScreen"].clone()
        ),
        (json!(true), json!("Warning"))
    );
    let e = api_err(
        raw(
            &c,
            "PATCH",
            &format!("{base}/default"),
            "application/strategic-merge-patch+json",
            Some(json!({})),
        )
        .await,
    );
    assert_eq!(e.code, 415);
    let e = api_err(
        raw(
            &c,
            "PATCH",
            "/api/v1/nodes/n1",
            "application/apply-patch+yaml",
            Some(json!({})),
        )
        .await,
    );
    assert_eq!(e.code, 415);
    // A kind without a status subresource has no /status.
    let pools = "/apis/crd.projectcalico.org/v1/ippools";
    let pool = json!({"metadata": {"name": "p"}, "spec": {"cidr": "10.0.0.0/16"}, "status": {"kept": true}});
    let made = raw(&c, "POST", pools, "application/json", Some(pool))
        .await
        .expect("pool");
    assert_eq!(made["status"]["kept"], true);
    let e = api_err(
        raw(
            &c,
            "GET",
            &format!("{pools}/p/status"),
            "application/json",
            None,
        )
        .await,
    );
    assert_eq!(e.code, 404);
}
