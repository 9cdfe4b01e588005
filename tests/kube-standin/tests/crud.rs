//! Create, get, list, update and delete through kube-rs, each checked
//! against the API conventions or the API concepts page.

mod common;

use common::{api_err, node, pod, raw, rv_of, start};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, ListParams, PostParams, Preconditions};
use kube::Api;
use serde_json::json;

// API concepts, "Resource versions": every object carries a resourceVersion;
// they come from one counter (etcd's revision), so every write gets a
// larger one than any before it, across kinds.
#[tokio::test]
async fn every_write_gets_a_new_larger_resource_version() {
    let (_s, c) = start().await;
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let nodes: Api<Node> = Api::all(c);
    let pp = PostParams::default();
    let p1 = pods.create(&pp, &pod("p1", "n1")).await.expect("create p1");
    let n1 = nodes.create(&pp, &node("n1")).await.expect("create n1");
    let p2 = pods.create(&pp, &pod("p2", "n1")).await.expect("create p2");
    let mut p1b = p1.clone();
    p1b.metadata.labels = Some([("x".to_string(), "y".to_string())].into());
    let p1b = pods.replace("p1", &pp, &p1b).await.expect("update p1");
    let rvs: Vec<u64> = [&p1.metadata, &n1.metadata, &p2.metadata, &p1b.metadata]
        .iter()
        .map(|m| {
            m.resource_version
                .as_deref()
                .and_then(|r| r.parse().ok())
                .expect("numeric rv")
        })
        .collect();
    assert!(
        rvs.windows(2).all(|w| w[0] < w[1]),
        "not increasing: {rvs:?}"
    );
    // Conventions, "Metadata": uid and creationTimestamp are set by the system.
    assert_eq!(p1.metadata.uid.as_ref().map(String::len), Some(36));
    assert_ne!(p1.metadata.uid, p2.metadata.uid);
    assert!(p1.metadata.creation_timestamp.is_some());
    assert_eq!(p1b.metadata.uid, p1.metadata.uid);
    // A list carries the store's resourceVersion at list time.
    let list = pods.list(&ListParams::default()).await.expect("list");
    assert_eq!(
        list.metadata.resource_version.as_deref(),
        Some(rvs[3].to_string().as_str())
    );
}

// Conventions, "Concurrency Control and Consistency": an update carrying a
// resourceVersion that is not current fails with 409 Conflict; one without
// a resourceVersion is unconditional.
#[tokio::test]
async fn a_stale_update_is_a_conflict_and_an_unversioned_one_is_not() {
    let (_s, c) = start().await;
    let nodes: Api<Node> = Api::all(c);
    let pp = PostParams::default();
    let n = nodes.create(&pp, &node("n1")).await.expect("create");
    let mut a = n.clone();
    a.spec.get_or_insert_with(Default::default).pod_cidr = Some("10.0.0.0/24".into());
    nodes.replace("n1", &pp, &a).await.expect("first update");
    let e = api_err(nodes.replace("n1", &pp, &a).await);
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    assert!(
        e.message.contains("the object has been modified"),
        "{}",
        e.message
    );
    let mut b = a.clone();
    b.metadata.resource_version = None;
    b.spec.get_or_insert_with(Default::default).pod_cidr = Some("10.0.1.0/24".into());
    let b = nodes
        .replace("n1", &pp, &b)
        .await
        .expect("unconditional update");
    assert_eq!(
        b.spec.and_then(|s| s.pod_cidr).as_deref(),
        Some("10.0.1.0/24")
    );
    // Conventions, "Metadata": generation counts changes of the desired state.
    assert_eq!(b.metadata.generation, Some(3));
    let e = api_err(nodes.replace("absent", &pp, &node("absent")).await);
    assert_eq!(e.code, 404);
}

// API concepts, "API verbs": create of a taken name is 409 AlreadyExists,
// get of a missing object is 404 NotFound; both are Status objects.
#[tokio::test]
async fn create_conflicts_and_missing_objects() {
    let (_s, c) = start().await;
    let leases: Api<Lease> = Api::namespaced(c, "kube-node-lease");
    let l: Lease = serde_json::from_value(json!({
        "metadata": {"name": "n1"}, "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40}
    }))
    .expect("lease");
    let pp = PostParams::default();
    let made = leases.create(&pp, &l).await.expect("create");
    assert_eq!(made.metadata.namespace.as_deref(), Some("kube-node-lease"));
    let e = api_err(leases.create(&pp, &l).await);
    assert_eq!((e.code, e.reason.as_str()), (409, "AlreadyExists"));
    let e = api_err(leases.get("nope").await);
    assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"));
    assert!(e.message.contains("\"nope\" not found"), "{}", e.message);
}

// Conventions, "Idempotency": generateName gets a unique suffix; names are
// DNS subdomains (422 Invalid otherwise).
#[tokio::test]
async fn generate_name_and_invalid_names() {
    let (_s, c) = start().await;
    let pods: Api<Pod> = Api::namespaced(c, "default");
    let mut p = pod("", "n1");
    p.metadata.name = None;
    p.metadata.generate_name = Some("web-".into());
    let a = pods
        .create(&PostParams::default(), &p)
        .await
        .expect("create a");
    let b = pods
        .create(&PostParams::default(), &p)
        .await
        .expect("create b");
    let (an, bn) = (
        a.metadata.name.unwrap_or_default(),
        b.metadata.name.unwrap_or_default(),
    );
    assert!(an.starts_with("web-") && an.len() == 9, "{an}");
    assert_ne!(an, bn);
    let e = api_err(
        pods.create(&PostParams::default(), &pod("Not_Valid", "n1"))
            .await,
    );
    assert_eq!(e.code, 422);
}

// API concepts, "Deletion" (DeleteOptions.preconditions): a uid or
// resourceVersion precondition that does not match is 409; delete returns
// the object; deleting a missing object is 404.
#[tokio::test]
async fn delete_honours_uid_and_resource_version_preconditions() {
    let (_s, c) = start().await;
    let pods: Api<Pod> = Api::namespaced(c, "default");
    let p = pods
        .create(&PostParams::default(), &pod("p1", "n1"))
        .await
        .expect("create");
    let wrong_uid = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some("other".into()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    assert_eq!(api_err(pods.delete("p1", &wrong_uid).await).code, 409);
    let wrong_rv = DeleteParams {
        preconditions: Some(Preconditions {
            uid: p.metadata.uid.clone(),
            resource_version: Some("999".into()),
        }),
        ..DeleteParams::default()
    };
    let rv = p.metadata.resource_version.clone();
    assert_ne!(rv.as_deref(), Some("999"));
    assert_eq!(api_err(pods.delete("p1", &wrong_rv).await).code, 409);
    let right = DeleteParams {
        preconditions: Some(Preconditions {
            uid: p.metadata.uid.clone(),
            resource_version: rv,
        }),
        ..DeleteParams::default()
    };
    let gone = pods.delete("p1", &right).await.expect("delete");
    let obj = gone.left().expect("the deleted object, not a Status");
    assert_eq!(obj.metadata.name.as_deref(), Some("p1"));
    assert_eq!(api_err(pods.get("p1").await).code, 404);
    assert_eq!(
        api_err(pods.delete("p1", &DeleteParams::default()).await).code,
        404
    );
}

// API concepts, "Resource URIs": a namespaced collection lists within one
// namespace or across all; items carry kind and apiVersion.
#[tokio::test]
async fn list_in_one_namespace_and_across_all() {
    let (_s, c) = start().await;
    let pp = PostParams::default();
    Api::<Pod>::namespaced(c.clone(), "default")
        .create(&pp, &pod("a", "n1"))
        .await
        .expect("a");
    let mut other = pod("b", "n2");
    other.metadata.namespace = Some("kube-system".into());
    Api::<Pod>::namespaced(c.clone(), "kube-system")
        .create(&pp, &other)
        .await
        .expect("b");
    let all = raw(&c, "GET", "/api/v1/pods", "application/json", None)
        .await
        .expect("list all");
    assert_eq!(all["kind"], "PodList");
    assert_eq!(all["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(all["items"][0]["kind"], "Pod");
    assert_eq!(all["items"][0]["apiVersion"], "v1");
    let one = raw(
        &c,
        "GET",
        "/api/v1/namespaces/kube-system/pods",
        "application/json",
        None,
    )
    .await
    .expect("list one");
    let names: Vec<&str> = one["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, vec!["b"]);
    // A namespace in the URL of a cluster-scoped kind does not exist.
    let e = api_err(
        raw(
            &c,
            "GET",
            "/api/v1/namespaces/default/nodes",
            "application/json",
            None,
        )
        .await,
    );
    assert_eq!(e.code, 404);
}

// "Labels and Selectors" and "Field Selectors" on a list.
#[tokio::test]
async fn list_with_label_and_field_selectors() {
    let (_s, c) = start().await;
    let pods: Api<Pod> = Api::namespaced(c, "default");
    let pp = PostParams::default();
    pods.create(&pp, &pod("a", "n1")).await.expect("a");
    let mut b = pod("b", "n2");
    b.metadata.labels = Some([("app".to_string(), "db".to_string())].into());
    pods.create(&pp, &b).await.expect("b");
    let names = |l: kube::core::ObjectList<Pod>| -> Vec<String> {
        l.items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect()
    };
    let by_node = pods
        .list(&ListParams::default().fields("spec.nodeName=n2"))
        .await
        .expect("list");
    assert_eq!(names(by_node), vec!["b"]);
    let by_label = pods
        .list(&ListParams::default().labels("app in (web,cache)"))
        .await
        .expect("list");
    assert_eq!(names(by_label), vec!["a"]);
    let both = pods
        .list(
            &ListParams::default()
                .labels("app!=web")
                .fields("metadata.name=b"),
        )
        .await
        .expect("list");
    assert_eq!(names(both), vec!["b"]);
    let e = api_err(
        pods.list(&ListParams::default().fields("spec.cidr=x"))
            .await,
    );
    assert_eq!(e.code, 400);
}

// API concepts, "Semantics for get and list" with resourceVersionMatch=Exact:
// the list as it was at that version, or 410 once compacted.
#[tokio::test]
async fn exact_list_at_a_past_version_and_410_after_compaction() {
    let (s, c) = start().await;
    let nodes: Api<Node> = Api::all(c.clone());
    let pp = PostParams::default();
    let n1 = nodes.create(&pp, &node("n1")).await.expect("n1");
    let at = n1.metadata.resource_version.clone().unwrap_or_default();
    nodes.create(&pp, &node("n2")).await.expect("n2");
    nodes
        .delete("n1", &DeleteParams::default())
        .await
        .expect("delete n1");
    let path = format!("/api/v1/nodes?resourceVersion={at}&resourceVersionMatch=Exact");
    let then = raw(&c, "GET", &path, "application/json", None)
        .await
        .expect("exact list");
    let names: Vec<&str> = then["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, vec!["n1"]);
    assert_eq!(rv_of(&then).to_string(), at);
    s.compact();
    let e = api_err(raw(&c, "GET", &path, "application/json", None).await);
    assert_eq!((e.code, e.reason.as_str()), (410, "Expired"));
}

// The storage layer skips writes that change nothing: no new
// resourceVersion (so no watch event) for an identical update.
#[tokio::test]
async fn an_update_that_changes_nothing_keeps_the_resource_version() {
    let (s, c) = start().await;
    let nodes: Api<Node> = Api::all(c);
    let n = nodes
        .create(&PostParams::default(), &node("n1"))
        .await
        .expect("create");
    let again = nodes
        .replace("n1", &PostParams::default(), &n)
        .await
        .expect("replace");
    assert_eq!(again.metadata.resource_version, n.metadata.resource_version);
    assert_eq!(
        s.current_rv().to_string(),
        n.metadata.resource_version.unwrap_or_default()
    );
}

// The kinds' strategies (AllowUnconditionalUpdate, AllowCreateOnUpdate):
// a PUT without resourceVersion is refused with 409 for leases and custom
// resources; a PUT of a missing lease creates it.
#[tokio::test]
async fn leases_and_custom_resources_need_a_resource_version_to_update() {
    let (s, c) = start().await;
    s.load_crds_yaml(common::CALICO_CRDS).expect("crds");
    let path = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1";
    let lease = json!({"metadata": {"name": "n1"}, "spec": {"holderIdentity": "n1"}});
    let made = raw(&c, "PUT", path, "application/json", Some(lease.clone()))
        .await
        .expect("create on update");
    assert_eq!(made["metadata"]["namespace"], "kube-node-lease");
    let e = api_err(raw(&c, "PUT", path, "application/json", Some(lease)).await);
    assert_eq!(e.code, 409);
    assert!(
        e.message.contains("resourceVersion must be specified"),
        "{}",
        e.message
    );
    let mut again = made.clone();
    again["spec"]["holderIdentity"] = json!("n2");
    let updated = raw(&c, "PUT", path, "application/json", Some(again))
        .await
        .expect("conditional update");
    assert!(rv_of(&updated) > rv_of(&made));
    let pools = "/apis/crd.projectcalico.org/v1/ippools";
    let pool = json!({"metadata": {"name": "p"}, "spec": {"cidr": "10.0.0.0/16"}});
    raw(&c, "POST", pools, "application/json", Some(pool.clone()))
        .await
        .expect("pool");
    let e = api_err(
        raw(
            &c,
            "PUT",
            &format!("{pools}/p"),
            "application/json",
            Some(pool.clone()),
        )
        .await,
    );
    assert_eq!(e.code, 409);
    // Custom resources are not created by PUT.
    let e = api_err(
        raw(
            &c,
            "PUT",
            &format!("{pools}/q"),
            "application/json",
            Some(pool),
        )
        .await,
    );
    assert_eq!(e.code, 404);
}
