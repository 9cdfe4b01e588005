//! CRD registration, discovery documents and Tables (API concepts,
//! "Discovery API" and "Receiving resources as Tables").

mod common;

use common::{api_err, raw, start, CALICO_CRDS};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::discovery::Discovery;
use kube::Api;
use serde_json::{json, Value};

fn names(list: &Value, field: &str) -> Vec<String> {
    list[field]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["name"].as_str().map(str::to_string))
        .collect()
}

// CRD docs, "Create a CustomResourceDefinition": once created, the new
// group/version/plural is served with the CRD's scope; deleting the CRD
// stops serving it.
#[tokio::test]
async fn creating_a_crd_serves_its_group_and_deleting_it_stops() {
    let (_s, c) = start().await;
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.org"},
        "spec": {"group": "example.org", "scope": "Namespaced",
                 "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "shortNames": ["wd"]},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                               "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}]}]}
    });
    let path = "/apis/example.org/v1/namespaces/default/widgets";
    assert_eq!(
        api_err(raw(&c, "GET", path, "application/json", None).await).code,
        404
    );
    raw(
        &c,
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        "application/json",
        Some(crd),
    )
    .await
    .expect("create CRD");
    let gvk = GroupVersionKind::gvk("example.org", "v1", "Widget");
    let widgets: Api<DynamicObject> =
        Api::namespaced_with(c.clone(), "default", &ApiResource::from_gvk(&gvk));
    let mut w = DynamicObject::new("w1", &ApiResource::from_gvk(&gvk)).within("default");
    w.data = json!({"spec": {"size": 3}});
    let made = widgets
        .create(&PostParams::default(), &w)
        .await
        .expect("create widget");
    assert_eq!(made.types.map(|t| t.kind).as_deref(), Some("Widget"));
    // Namespaced scope: no cluster-level object URL.
    let e = api_err(
        raw(
            &c,
            "GET",
            "/apis/example.org/v1/widgets/w1",
            "application/json",
            None,
        )
        .await,
    );
    assert_eq!(e.code, 404);
    let rl = raw(&c, "GET", "/apis/example.org/v1", "application/json", None)
        .await
        .expect("resources");
    assert_eq!(rl["resources"][0]["namespaced"], true);
    assert_eq!(rl["resources"][0]["shortNames"], json!(["wd"]));
    // The Table has Name then the declared printer column.
    let table = table(&c, path).await;
    assert_eq!(names(&table, "columnDefinitions"), vec!["Name", "Size"]);
    assert_eq!(table["rows"][0]["cells"], json!(["w1", 3]));
    raw(
        &c,
        "DELETE",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.org",
        "application/json",
        None,
    )
    .await
    .expect("delete CRD");
    assert_eq!(
        api_err(raw(&c, "GET", path, "application/json", None).await).code,
        404
    );
}

// "Discovery API": /api, /api/v1, /apis and each group's resource list,
// with CRD groups and status subresources; kube-rs's own discovery reads
// them.
#[tokio::test]
async fn discovery_documents_list_builtin_and_crd_resources() {
    let (s, c) = start().await;
    s.load_crds_yaml(CALICO_CRDS).expect("crds");
    let version = raw(&c, "GET", "/version", "application/json", None)
        .await
        .expect("version");
    assert_eq!(
        (version["major"].as_str(), version["minor"].as_str()),
        (Some("1"), Some("33"))
    );
    let api = raw(&c, "GET", "/api", "application/json", None)
        .await
        .expect("/api");
    assert_eq!(api["versions"], json!(["v1"]));
    let core = raw(&c, "GET", "/api/v1", "application/json", None)
        .await
        .expect("/api/v1");
    let core_names = names(&core, "resources");
    for want in ["nodes", "pods", "pods/status", "namespaces", "nodes/status"] {
        assert!(
            core_names.iter().any(|n| n == want),
            "{want} missing from {core_names:?}"
        );
    }
    let groups = raw(&c, "GET", "/apis", "application/json", None)
        .await
        .expect("/apis");
    let group_names = names(&groups, "groups");
    assert_eq!(
        group_names,
        vec![
            "coordination.k8s.io",
            "apiextensions.k8s.io",
            "crd.projectcalico.org"
        ]
    );
    let calico = raw(
        &c,
        "GET",
        "/apis/crd.projectcalico.org/v1",
        "application/json",
        None,
    )
    .await
    .expect("calico");
    let calico_names = names(&calico, "resources");
    assert_eq!(
        calico_names.len(),
        12,
        "11 kinds and one status subresource: {calico_names:?}"
    );
    let pools = calico["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["name"] == "ippools")
        .cloned();
    let pools = pools.expect("ippools listed");
    assert_eq!(
        (pools["kind"].as_str(), pools["namespaced"].as_bool()),
        (Some("IPPool"), Some(false))
    );
    let d = Discovery::new(c).run().await.expect("kube-rs discovery");
    let (ar, caps) = d
        .resolve_gvk(&GroupVersionKind::gvk(
            "crd.projectcalico.org",
            "v1",
            "BlockAffinity",
        ))
        .expect("kube-rs found BlockAffinity");
    assert_eq!(ar.plural, "blockaffinities");
    assert_eq!(caps.scope, kube::discovery::Scope::Cluster);
}

async fn table(c: &kube::Client, path: &str) -> Value {
    let req = http::Request::get(path)
        .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")
        .body(Vec::new())
        .expect("request");
    serde_json::from_str(&c.request_text(req).await.expect("table")).expect("json")
}

// "Receiving resources as Tables": Accept asking for a Table gets a
// meta.k8s.io/v1 Table (Name, Age) whose rows carry PartialObjectMetadata;
// a plain Accept gets the list.
#[tokio::test]
async fn table_when_asked_for_and_plain_json_otherwise() {
    let (s, c) = start().await;
    s.put_json(
        "/api/v1/nodes/n1",
        json!({"metadata": {"name": "n1", "labels": {"a": "b"}}}),
    )
    .expect("n1");
    let t = table(&c, "/api/v1/nodes").await;
    assert_eq!(
        (t["kind"].as_str(), t["apiVersion"].as_str()),
        (Some("Table"), Some("meta.k8s.io/v1"))
    );
    assert_eq!(names(&t, "columnDefinitions"), vec!["Name", "Age"]);
    assert_eq!(t["rows"][0]["cells"][0], "n1");
    assert!(
        t["rows"][0]["cells"][1]
            .as_str()
            .is_some_and(|a| a.ends_with('s')),
        "{t}"
    );
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(t["rows"][0]["object"]["metadata"]["labels"]["a"], "b");
    assert!(t["rows"][0]["object"].get("spec").is_none());
    let one = table(&c, "/api/v1/nodes/n1").await;
    assert_eq!(one["rows"].as_array().map(Vec::len), Some(1));
    let plain = raw(&c, "GET", "/api/v1/nodes", "application/json", None)
        .await
        .expect("list");
    assert_eq!(plain["kind"], "NodeList");
}
