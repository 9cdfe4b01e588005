//! The IPAM garbage collector's passes against a real datastore (SQLite
//! and etcd), with WorkloadEndpoints as the CNI plugin writes them as the
//! liveness source: a deleted node's pod and tunnel addresses and its
//! empty block go in the first pass; a pod address whose pod is gone, or
//! was rescheduled to another node, goes only once it has been a leak
//! candidate for the whole grace period; a pod still listing one of its
//! handle's addresses keeps both; a candidate seen live again starts over.

mod common;

use common::Backend;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tabby_agent::controllers::gc::IpamGc;
use tabby_agent::datastore::Datastore;
use tabby_agent::ipam::workloads::WorkloadEndpoints;
use tabby_agent::ipam::DatastoreIpam;
use tabby_agent::resources::ippool::IpPoolSpec;
use tabby_agent::resources::node::NodeSpec;
use tabby_agent::resources::workload::{workload_endpoint_name, WorkloadEndpointSpec};
use tabby_agent::resources::{Kind, Object, Resource, WorkloadEndpoint};
use tabby_ipam::allocator::{AssignRequest, Ipam};
use tabby_ipam::gc::Reason;
use tabby_ipam::pool::Use;
use tabby_ipam::store::IpamStore;
use tokio::sync::watch;

const GRACE: Duration = Duration::from_secs(2);

async fn assign(
    ipam: &Ipam<DatastoreIpam>,
    handle: &str,
    node: &str,
    pod: &str,
    n: usize,
) -> Vec<IpAddr> {
    let mut attributes = BTreeMap::new();
    if !pod.is_empty() {
        attributes.insert("namespace".to_string(), "shop".to_string());
        attributes.insert("pod".to_string(), pod.to_string());
    }
    attributes.insert("node".to_string(), node.to_string());
    let mut req = AssignRequest {
        attributes,
        num_v4: n,
        ..AssignRequest::new(handle, node)
    };
    if handle.contains("tunnel-addr") {
        req.use_for = Use::Tunnel;
    }
    ipam.auto_assign(&req).await.unwrap().0
}

async fn endpoint(ds: &Arc<dyn Datastore>, pod: &str, node: &str, ips: &[IpAddr]) {
    let spec = WorkloadEndpointSpec {
        orchestrator: "k8s".into(),
        node: node.into(),
        container_id: format!("c-{pod}"),
        pod: pod.into(),
        endpoint: "eth0".into(),
        ip_networks: ips.iter().map(|ip| format!("{ip}/32")).collect(),
        ..Default::default()
    };
    let name = workload_endpoint_name(node, pod, "eth0").unwrap();
    let mut w = WorkloadEndpoint::new("WorkloadEndpoint", &name, spec);
    w.metadata.namespace = Some("shop".into());
    ds.create(Resource::WorkloadEndpoint(w)).await.unwrap();
}

async fn holder(ipam: &Ipam<DatastoreIpam>, ip: IpAddr) -> Option<String> {
    let blocks = ipam.store().list_blocks().await.unwrap();
    blocks
        .iter()
        .find(|b| b.value.cidr.contains(&ip))
        .and_then(|b| b.value.holder(ip).and_then(|a| a.handle_id.clone()))
}

async fn run(kind: &str) {
    let b = Backend::new(kind).await;
    let ds = b.client().await;
    let mut spec = IpPoolSpec {
        cidr: "10.42.0.0/24".into(),
        ..Default::default()
    };
    spec.fill_defaults(false);
    ds.create(Resource::IpPool(Object::new("IPPool", "p", spec)))
        .await
        .unwrap();
    for n in ["n1", "n2"] {
        ds.create(Resource::Node(Object::new("Node", n, NodeSpec::default())))
            .await
            .unwrap();
    }
    let ipam = Ipam::new(DatastoreIpam::new(ds.clone()));
    let live = assign(&ipam, "k8s-pod-network.live", "n1", "web-0", 1).await;
    let dead = assign(&ipam, "k8s-pod-network.dead", "n1", "web-1", 1).await;
    let moved = assign(&ipam, "k8s-pod-network.moved", "n1", "web-2", 1).await;
    let dual = assign(&ipam, "k8s-pod-network.dual", "n1", "web-3", 2).await;
    let flap = assign(&ipam, "k8s-pod-network.flap", "n1", "web-4", 1).await;
    let tunnel1 = assign(&ipam, "vxlan-tunnel-addr-n1", "n1", "", 1).await;
    let on_n2 = assign(&ipam, "k8s-pod-network.api", "n2", "api-0", 1).await;
    let tunnel2 = assign(&ipam, "vxlan-tunnel-addr-n2", "n2", "", 1).await;
    endpoint(&ds, "web-0", "n1", &live).await;
    // web-2 now runs on n2 with another address; web-3 lists one of two.
    endpoint(&ds, "web-2", "n2", &["10.42.0.250".parse().unwrap()]).await;
    endpoint(&ds, "web-3", "n1", &dual[..1]).await;
    let n2_blocks: Vec<_> = ipam
        .store()
        .list_affinities(Some("n2"))
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.value.cidr)
        .collect();
    assert!(!n2_blocks.is_empty());
    ds.delete(Kind::Node, "n2", None).await.unwrap();

    let (_leader_tx, leader) = watch::channel(true);
    let mut gc = IpamGc::new(
        ds.clone(),
        Box::new(WorkloadEndpoints::new(ds.clone())),
        GRACE,
    );
    let t0 = Instant::now();
    let r = gc.pass(&leader).await.unwrap();
    // n2 is gone: its addresses go at once, then its (now empty) block.
    let mut released: Vec<(IpAddr, Reason)> = r
        .released
        .iter()
        .map(|r| (r.alloc.ip, r.reason.clone()))
        .collect();
    released.sort_by_key(|(ip, _)| *ip);
    let mut want = vec![(on_n2[0], Reason::PodGone), (tunnel2[0], Reason::NodeGone)];
    want.sort_by_key(|(ip, _)| *ip);
    assert_eq!(released, want, "{r:?}");
    assert_eq!(r.nodes, [("n2".to_string(), n2_blocks.clone())]);
    assert!(ipam
        .store()
        .list_affinities(Some("n2"))
        .await
        .unwrap()
        .is_empty());
    for c in &n2_blocks {
        assert!(ipam.store().get_block(*c).await.unwrap().is_none(), "{c}");
    }
    // dead, moved, flap and dual's unlisted address wait out the grace period.
    assert_eq!(r.candidates, 4, "{r:?}");
    for (ip, h) in [(dead[0], "dead"), (moved[0], "moved"), (flap[0], "flap")] {
        assert_eq!(
            holder(&ipam, ip).await.as_deref(),
            Some(&*format!("k8s-pod-network.{h}"))
        );
    }
    let r = gc.pass(&leader).await.unwrap();
    assert!(r.released.is_empty() && r.candidates == 4, "{r:?}");

    // web-4 comes back before the grace period is over: forgotten.
    endpoint(&ds, "web-4", "n1", &flap).await;
    let r = gc.pass(&leader).await.unwrap();
    assert_eq!(r.candidates, 3, "{r:?}");
    let w = ds
        .get(
            Kind::WorkloadEndpoint,
            &format!(
                "shop/{}",
                workload_endpoint_name("n1", "web-4", "eth0").unwrap()
            ),
        )
        .await
        .unwrap();
    ds.delete(Kind::WorkloadEndpoint, &format!("shop/{}", w.name()), None)
        .await
        .unwrap();

    tokio::time::sleep(GRACE.saturating_sub(t0.elapsed()) + Duration::from_millis(100)).await;
    let r = gc.pass(&leader).await.unwrap();
    let mut released: Vec<(IpAddr, Reason)> = r
        .released
        .iter()
        .map(|r| (r.alloc.ip, r.reason.clone()))
        .collect();
    released.sort_by_key(|(ip, _)| *ip);
    let mut want = vec![
        (dead[0], Reason::PodGone),
        (
            moved[0],
            Reason::OtherNode {
                pod_node: "n2".into(),
            },
        ),
    ];
    want.sort_by_key(|(ip, _)| *ip);
    assert_eq!(released, want, "{r:?}");
    // dual's second address is confirmed but its handle is still in use;
    // flap is a candidate again, from scratch.
    assert_eq!((r.held_back, r.candidates), (1, 2), "{r:?}");
    for (ip, h) in [
        (live[0], "k8s-pod-network.live"),
        (dual[0], "k8s-pod-network.dual"),
        (dual[1], "k8s-pod-network.dual"),
        (flap[0], "k8s-pod-network.flap"),
        (tunnel1[0], "vxlan-tunnel-addr-n1"),
    ] {
        assert_eq!(holder(&ipam, ip).await.as_deref(), Some(h), "{ip}");
    }
    for ip in [dead[0], moved[0], on_n2[0], tunnel2[0]] {
        assert_eq!(holder(&ipam, ip).await, None, "{ip}");
    }
    for h in [
        "k8s-pod-network.dead",
        "k8s-pod-network.moved",
        "vxlan-tunnel-addr-n2",
    ] {
        assert!(ipam.store().get_handle(h).await.unwrap().is_none(), "{h}");
    }
    // Not leading: a pass releases nothing.
    let (_tx, follower) = watch::channel(false);
    tokio::time::sleep(GRACE).await;
    let r = gc.pass(&follower).await.unwrap();
    assert!(r.released.is_empty() && r.interrupted, "{r:?}");
    assert!(holder(&ipam, flap[0]).await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_passes_on_sqlite() {
    run("sqlite").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_passes_on_etcd() {
    run("etcd").await
}
