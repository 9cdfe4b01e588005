//! The Kubernetes datastore's mapping, through a real kube client over HTTP
//! to the API stand-in: objects Calico wrote read correctly, and what Tabby
//! writes is stored in Calico's form (checked by reading the raw objects
//! back from the API).

mod common;

use common::Kube;
use serde_json::json;
use tabby_agent::datastore::Error;
use tabby_agent::resources::ipam::{
    AffinityState, BlockAffinitySpec, IpamBlockSpec, IpamHandleSpec,
};
use tabby_agent::resources::workload::WorkloadEndpointSpec;
use tabby_agent::resources::{Kind, Object, Resource};

const CRD: &str = "/apis/crd.projectcalico.org/v1";

fn node(name: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Node",
           "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
           "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.5"}]}})
}

#[tokio::test]
async fn calico_written_ipam_objects_read_and_tabby_writes_calicos_names() {
    let k = Kube::start().await;
    let ds = k.client().await;
    // As Calico's IPAM leaves them in a cluster.
    k.put(
        &format!("{CRD}/blockaffinities"),
        json!({"apiVersion": "crd.projectcalico.org/v1", "kind": "BlockAffinity",
               "metadata": {"name": "node-a-10-244-1-0-26"},
               "spec": {"cidr": "10.244.1.0/26", "deleted": "false", "node": "node-a", "state": "confirmed"}}),
    );
    let a = ds
        .get(Kind::BlockAffinity, "node-a/10.244.1.0-26")
        .await
        .unwrap();
    let Resource::BlockAffinity(a) = a else {
        panic!()
    };
    assert_eq!(a.spec.state, AffinityState::Confirmed);
    let listed = ds.list(Kind::BlockAffinity, Some("node-a/")).await.unwrap();
    assert_eq!(listed.items.len(), 1);

    // Tabby's writes, read back raw.
    let block = IpamBlockSpec {
        cidr: "10.244.2.0/26".into(),
        affinity: Some("host:node-b".into()),
        allocations: vec![None; 64],
        unallocated: (0..64).collect(),
        ..Default::default()
    };
    ds.create(Resource::IpamBlock(Object::new(
        "IPAMBlock",
        "10.244.2.0-26",
        block,
    )))
    .await
    .unwrap();
    let raw = k
        .server
        .get_json(&format!("{CRD}/ipamblocks/10-244-2-0-26"))
        .unwrap();
    assert_eq!(raw["spec"]["cidr"], "10.244.2.0/26");
    assert_eq!(raw["spec"]["deleted"], false);
    let aff = BlockAffinitySpec {
        state: AffinityState::Pending,
        node: "node-b".into(),
        cidr: "10.244.2.0/26".into(),
        deleted: false,
    };
    ds.create(Resource::BlockAffinity(Object::new(
        "BlockAffinity",
        "node-b/10.244.2.0-26",
        aff,
    )))
    .await
    .unwrap();
    let raw = k
        .server
        .get_json(&format!("{CRD}/blockaffinities/node-b-10-244-2-0-26"))
        .unwrap();
    assert_eq!(raw["spec"]["deleted"], "false");
    assert_eq!(raw["spec"]["state"], "pending");
    let handle = IpamHandleSpec {
        handle_id: "k8s-pod-network.ABCdef".into(),
        ..Default::default()
    };
    ds.create(Resource::IpamHandle(Object::new(
        "IPAMHandle",
        "k8s-pod-network.ABCdef",
        handle,
    )))
    .await
    .unwrap();
    let raw = k
        .server
        .get_json(&format!("{CRD}/ipamhandles/k8s-pod-network.abcdef"))
        .unwrap();
    assert_eq!(raw["spec"]["handleID"], "k8s-pod-network.ABCdef");
    assert!(ds
        .get(Kind::IpamHandle, "k8s-pod-network.ABCdef")
        .await
        .is_ok());
}

#[tokio::test]
async fn ipam_deletes_take_calicos_two_steps_and_a_marked_object_is_gone() {
    let k = Kube::start().await;
    let ds = k.client().await;
    let h = IpamHandleSpec {
        handle_id: "h1".into(),
        ..Default::default()
    };
    let made = ds
        .create(Resource::IpamHandle(Object::new("IPAMHandle", "h1", h)))
        .await
        .unwrap();
    // A stale revision deletes nothing.
    let stale = made.revision().unwrap() - 1;
    assert!(matches!(
        ds.delete(Kind::IpamHandle, "h1", Some(stale)).await,
        Err(Error::Conflict { .. })
    ));
    ds.delete(Kind::IpamHandle, "h1", made.revision())
        .await
        .unwrap();
    assert!(k.server.get_json(&format!("{CRD}/ipamhandles/h1")).is_err());

    // A delete interrupted after step one (the mark): readers see nothing,
    // and the first read finishes it.
    k.put(
        &format!("{CRD}/ipamblocks"),
        json!({"apiVersion": "crd.projectcalico.org/v1", "kind": "IPAMBlock",
               "metadata": {"name": "10-244-9-0-26"},
               "spec": {"cidr": "10.244.9.0/26", "deleted": true, "allocations": [], "unallocated": [], "attributes": []}}),
    );
    assert!(ds
        .list(Kind::IpamBlock, None)
        .await
        .unwrap()
        .items
        .is_empty());
    assert!(matches!(
        ds.get(Kind::IpamBlock, "10.244.9.0-26").await,
        Err(Error::NotFound { .. })
    ));
    assert!(
        k.server
            .get_json(&format!("{CRD}/ipamblocks/10-244-9-0-26"))
            .is_err(),
        "the read finished the delete"
    );
}

#[tokio::test]
async fn nodes_are_core_nodes_with_calico_annotations() {
    let k = Kube::start().await;
    let ds = k.client().await;
    // Tabby never creates a Node: the kubelet does.
    let fresh = Resource::Node(Object::new("Node", "node-x", Default::default()));
    let e = ds.create(fresh).await.unwrap_err().to_string();
    assert!(e.contains("kubelet"), "{e}");
    k.put("/api/v1/nodes", node("node-a"));
    let Resource::Node(mut n) = ds.get(Kind::Node, "node-a").await.unwrap() else {
        panic!()
    };
    assert_eq!(n.spec.addresses[0].address, "10.0.0.5");
    n.spec.bgp = Some(Default::default());
    n.spec.bgp.as_mut().unwrap().ipv4_address = Some("10.0.0.5/24".into());
    n.spec.ipv4_vxlan_tunnel_addr = Some("10.244.0.1".into());
    n.metadata.labels.insert("rack".into(), "r1".into());
    let updated = ds.update(Resource::Node(n.clone())).await.unwrap();
    let raw = k.server.get_json("/api/v1/nodes/node-a").unwrap();
    assert_eq!(
        raw["metadata"]["annotations"]["projectcalico.org/IPv4Address"],
        "10.0.0.5/24"
    );
    assert_eq!(
        raw["metadata"]["annotations"]["projectcalico.org/IPv4VXLANTunnelAddr"],
        "10.244.0.1"
    );
    assert_eq!(raw["metadata"]["labels"]["rack"], "r1");
    assert_eq!(
        raw["metadata"]["labels"]["kubernetes.io/hostname"],
        "node-a"
    );
    assert_eq!(
        raw["status"]["addresses"][0]["address"], "10.0.0.5",
        "status untouched"
    );
    // CAS: the copy read before the update is stale now.
    assert!(matches!(
        ds.update(Resource::Node(n)).await,
        Err(Error::Conflict { .. })
    ));
    assert!(ds
        .delete(Kind::Node, "node-a", updated.revision())
        .await
        .is_err());
    // The NetworkUnavailable condition, up then down.
    ds.report_node_network("node-a", true).await.unwrap();
    let raw = k.server.get_json("/api/v1/nodes/node-a").unwrap();
    let cond = |raw: &serde_json::Value| {
        raw["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "NetworkUnavailable")
            .cloned()
            .unwrap()
    };
    assert_eq!(cond(&raw)["status"], "False");
    assert_eq!(cond(&raw)["reason"], "CalicoIsUp");
    ds.report_node_network("node-a", false).await.unwrap();
    let raw = k.server.get_json("/api/v1/nodes/node-a").unwrap();
    assert_eq!(cond(&raw)["reason"], "CalicoIsDown");
    assert_eq!(
        raw["status"]["conditions"].as_array().unwrap().len(),
        1,
        "merged by type"
    );
}

#[tokio::test]
async fn workload_endpoints_are_pods_and_writes_patch_their_status() {
    let k = Kube::start().await;
    let ds = k.client().await;
    k.put(
        "/api/v1/namespaces/shop/pods",
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web"}},
               "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "x"}]}}),
    );
    let key = "shop/node--a-k8s-web--1-eth0";
    assert!(
        matches!(
            ds.get(Kind::WorkloadEndpoint, key).await,
            Err(Error::NotFound { .. })
        ),
        "no address yet: no endpoint"
    );
    let spec = WorkloadEndpointSpec {
        orchestrator: "k8s".into(),
        node: "node-a".into(),
        pod: "web-1".into(),
        endpoint: "eth0".into(),
        container_id: "abc123".into(),
        ip_networks: vec!["10.244.1.5/32".into()],
        ..Default::default()
    };
    let mut w = Object::new("WorkloadEndpoint", "node--a-k8s-web--1-eth0", spec);
    w.metadata.namespace = Some("shop".into());
    ds.create(Resource::WorkloadEndpoint(w)).await.unwrap();
    let raw = k
        .server
        .get_json("/api/v1/namespaces/shop/pods/web-1")
        .unwrap();
    let ann = &raw["metadata"]["annotations"];
    assert_eq!(ann["cni.projectcalico.org/podIP"], "10.244.1.5/32");
    assert_eq!(ann["cni.projectcalico.org/podIPs"], "10.244.1.5/32");
    assert_eq!(ann["cni.projectcalico.org/containerID"], "abc123");
    let Resource::WorkloadEndpoint(got) = ds.get(Kind::WorkloadEndpoint, key).await.unwrap() else {
        panic!()
    };
    assert_eq!(got.spec.ip_networks, ["10.244.1.5/32"]);
    assert_eq!(got.metadata.labels["app"], "web");
    let listed = ds
        .list(Kind::WorkloadEndpoint, Some("shop/"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    ds.delete(Kind::WorkloadEndpoint, key, None).await.unwrap();
    let raw = k
        .server
        .get_json("/api/v1/namespaces/shop/pods/web-1")
        .unwrap();
    assert_eq!(
        raw["metadata"]["annotations"]["cni.projectcalico.org/podIP"],
        ""
    );
    assert_eq!(
        raw["metadata"]["annotations"]["cni.projectcalico.org/podIPs"],
        ""
    );
    assert!(ds
        .list(Kind::WorkloadEndpoint, None)
        .await
        .unwrap()
        .items
        .is_empty());
    // No pod, no endpoint to write.
    let mut orphan = Object::new(
        "WorkloadEndpoint",
        "node--a-k8s-gone-eth0",
        WorkloadEndpointSpec {
            pod: "gone".into(),
            ..Default::default()
        },
    );
    orphan.metadata.namespace = Some("shop".into());
    let e = ds
        .create(Resource::WorkloadEndpoint(orphan))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("shop/gone"), "{e}");
}
