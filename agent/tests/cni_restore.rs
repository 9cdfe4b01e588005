//! A node restart keeps its pods: `restore_workloads` rebuilds the
//! reconciler's workload set from the WorkloadEndpoints the Dataplane
//! service wrote at ADD, and the workload routes come back (a dual-stack
//! pod's /32 and /128 both). Also: the
//! node refuses SetDesiredState over its socket, saying why. Needs root.

mod cni_common;

use cni_common::*;
use tabby_agent::grpc::connect_unix;
use tabby_agent::grpc::dataplane::restore_workloads;
use tabby_proto::dataplane::dataplane_client::DataplaneClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workloads_come_back_after_a_node_restart() {
    let mut node = Node::start().await;
    node.add_ipv6().await;
    let pod_ns = Netns::new("tcrst");
    let pod = Pod {
        namespace: "default",
        name: "survivor",
        container_id: unique("rst"),
        netns: Some(pod_ns.path()),
    };
    let add = run_cni(&node, &tabby_bin(), "ADD", &pod, &node.net_conf_dual(None)).await;
    assert!(add.ok(), "{}", add.stdout);
    let ip = add.first_ip();
    let v6 = add.json()["ips"][1]["address"]
        .as_str()
        .expect("an IPv6 address")
        .to_string();
    let host = tabby_felix_lite::podlink::host_veth_name("default", "survivor");

    // The node process dies; its routes go with whoever cleans up (here:
    // by hand, the worst case).
    node.reconciler.take().unwrap().stop().unwrap();
    node.netns.ip(&["route", "del", &format!("{ip}/32")]);
    node.netns.ip(&["-6", "route", "del", &v6]);

    let (handle, restored) = node.restart_dataplane().await;
    assert_eq!(restored, 1);
    let route = node
        .netns
        .ip(&["route", "show", "proto", "81", &format!("{ip}/32")]);
    assert!(route.contains(&format!("dev {host}")), "{route:?}");
    let route6 = node.netns.ip(&["-6", "route", "show", "proto", "81", &v6]);
    assert!(route6.contains(&format!("dev {host}")), "{route6:?}");
    // Another node's workloads are not this node's business.
    assert_eq!(
        restore_workloads(&*node.ds, "some-other-node", &handle)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_desired_state_is_refused_with_the_reason() {
    let node = Node::start().await;
    let mut c = DataplaneClient::new(
        connect_unix(&node.run_dir.join("tabby.sock"))
            .await
            .unwrap(),
    );
    let err = c
        .set_desired_state(tabby_proto::dataplane::SetDesiredStateRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(err.message().contains("computes"), "{}", err.message());
    let status = c
        .status(tabby_proto::dataplane::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.pod_mtu, NODE_MTU);
    assert_eq!(status.node_name, node.name);
    assert_eq!(status.interface, NODE_IF);
}
