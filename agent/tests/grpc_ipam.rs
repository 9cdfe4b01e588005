//! The Ipam gRPC service over a real unix socket, as the CNI plugin reaches
//! it: assign with handle and attributes, show, release (idempotent), and
//! errors with the codes the plugin maps (RESOURCE_EXHAUSTED naming the
//! pool, INVALID_ARGUMENT naming the field), pools named by name, and
//! AssignIp of one specific address.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use tabby_agent::datastore::{sqlite::SqliteStore, Datastore};
use tabby_agent::grpc::{bind_socket, connect_unix, ipam::IpamService};
use tabby_agent::ipam::DatastoreIpam;
use tabby_agent::resources::ippool::IpPoolSpec;
use tabby_agent::resources::{Object, Resource};
use tabby_ipam::allocator::Ipam;
use tabby_proto::ipam::ipam_client::IpamClient;
use tabby_proto::ipam::ipam_server::IpamServer;
use tabby_proto::ipam::*;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipam_over_the_node_socket() {
    let dir = tempfile::tempdir().unwrap();
    let ds: Arc<dyn Datastore> =
        Arc::new(SqliteStore::open(&dir.path().join("t.db")).await.unwrap());
    let mut spec = IpPoolSpec {
        cidr: "10.70.0.0/29".into(),
        block_size: Some(29),
        ..Default::default()
    };
    spec.fill_defaults(false);
    ds.create(Resource::IpPool(Object::new("IPPool", "small", spec)))
        .await
        .unwrap();

    let sock = dir.path().join("run/tabby.sock");
    let listener = bind_socket(&sock).unwrap();
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let svc = IpamService::new(Arc::new(Ipam::new(DatastoreIpam::new(ds))), "node-a");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(IpamServer::new(svc))
            .serve_with_incoming(UnixListenerStream::new(listener)),
    );

    let mut c = IpamClient::new(connect_unix(&sock).await.unwrap());
    let mut attrs = HashMap::new();
    attrs.insert("pod".to_string(), "web-0".to_string());
    let r = c
        .auto_assign(AutoAssignRequest {
            handle_id: "k8s-pod-network.abc".into(),
            num_ipv4: 2,
            attributes: attrs,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.ipv4.len(), 2);
    assert!(
        r.ipv4
            .iter()
            .all(|a| a.starts_with("10.70.0.") && a.ends_with("/29")),
        "{:?}",
        r.ipv4
    );

    let ip = r.ipv4[0].split('/').next().unwrap().to_string();
    // The same addresses bare, for callers that need no prefix.
    let bare: Vec<&str> = r
        .ipv4
        .iter()
        .map(|a| a.split('/').next().unwrap())
        .collect();
    assert_eq!(r.ipv4_addresses, bare);
    let s = c
        .show(ShowRequest {
            ip: ip.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(s.ip_in_use);
    assert_eq!(s.handle_id, "k8s-pod-network.abc");
    assert_eq!(s.attributes.get("pod").map(String::as_str), Some("web-0"));
    // The serving node labels what it assigned for, as the CNI plugin no
    // longer looks the name up to send it.
    assert_eq!(s.attributes.get("node").map(String::as_str), Some("node-a"));
    let s = c.show(ShowRequest::default()).await.unwrap().into_inner();
    assert_eq!(
        (s.rows[0].total, s.rows[0].in_use, s.rows[0].reserved),
        (8, 2, 2)
    );

    // 8 addresses - 2 edges - 2 in use = 4 left: asking for 5 fails whole.
    let e = c
        .auto_assign(AutoAssignRequest {
            handle_id: "k8s-pod-network.big".into(),
            num_ipv4: 5,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert!(
        e.message()
            .contains("IP pool 10.70.0.0/29 has no free addresses"),
        "{}",
        e.message()
    );

    let e = c
        .auto_assign(AutoAssignRequest {
            handle_id: "x".into(),
            num_ipv4: 1,
            ipv4_pools: vec!["not-a-cidr".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    // Neither a CIDR nor a pool's name.
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(
        e.message()
            .starts_with("ipv4_pools: \"not-a-cidr\" is neither a CIDR nor the name"),
        "{}",
        e.message()
    );
    let e = c
        .auto_assign(AutoAssignRequest {
            handle_id: "x".into(),
            num_ipv4: 1,
            ipv4_pools: vec!["fd00::/64".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("not an IPv4 pool"), "{}", e.message());

    // A pool named by its IPPool name, as Calico's CNI config and pool
    // annotations may name it.
    let by_name = c
        .auto_assign(AutoAssignRequest {
            handle_id: "k8s-pod-network.named".into(),
            num_ipv4: 1,
            ipv4_pools: vec!["small".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(by_name.ipv4_addresses[0].starts_with("10.70.0."));

    // AssignIp: exactly the address asked for, labelled like AutoAssign's.
    let free = "10.70.0.6";
    assert_ne!(by_name.ipv4_addresses[0], free, "the test needs .6 free");
    let a = c
        .assign_ip(AssignIpRequest {
            ip: free.into(),
            handle_id: "k8s-pod-network.fixed".into(),
            attributes: HashMap::from([("pod".to_string(), "db-0".to_string())]),
            node: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((a.ip.as_str(), a.pool.as_str()), (free, "10.70.0.0/29"));
    let s = c
        .show(ShowRequest {
            ip: free.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.handle_id, "k8s-pod-network.fixed");
    assert_eq!(s.attributes.get("node").map(String::as_str), Some("node-a"));
    assert!(s.attributes.contains_key("timestamp"));
    let again = |ip: &str| AssignIpRequest {
        ip: ip.into(),
        handle_id: "k8s-pod-network.other".into(),
        ..Default::default()
    };
    let e = c.assign_ip(again(free)).await.unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists);
    assert_eq!(
        e.message(),
        "10.70.0.6 is already in use by handle k8s-pod-network.fixed"
    );
    let e = c.assign_ip(again("10.71.0.1")).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert_eq!(e.message(), "10.71.0.1 is not in any IP pool");
    let e = c.assign_ip(again("10.70.0.300")).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    for handle in ["k8s-pod-network.fixed", "k8s-pod-network.named"] {
        let rel = c
            .release_by_handle(ReleaseByHandleRequest {
                handle_id: handle.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(rel.released.len(), 1, "{handle}");
    }

    let rel = c
        .release_by_handle(ReleaseByHandleRequest {
            handle_id: "k8s-pod-network.abc".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rel.released.len(), 2);
    let rel = c
        .release_by_handle(ReleaseByHandleRequest {
            handle_id: "k8s-pod-network.abc".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(rel.released.is_empty(), "release is idempotent");
    let s = c.show(ShowRequest::default()).await.unwrap().into_inner();
    assert_eq!(s.rows[0].in_use, 0);
}
