//! The IPAM allocator over the real datastores: concurrent allocators, each
//! with its own connection (its own SQLite handle on the shared file, its
//! own etcd client) and its own watch-fed cache, never hand out an address
//! twice and leave nothing behind after releasing everything. On etcd: 8
//! clients × 500 assigns, one node each; and 8 clients sharing one node,
//! so that their cached blocks go stale under each other all the time.
//! `ipam check` is clean with everything held and after release.

mod common;

use common::Backend;
use std::collections::HashSet;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};
use tabby_agent::ipam::DatastoreIpam;
use tabby_agent::resources::ippool::IpPoolSpec;
use tabby_agent::resources::{Kind, Object, Resource};
use tabby_ipam::allocator::{AssignRequest, Ipam};
use tabby_ipam::check::{check, LeakCheck};

const ALLOCATORS: usize = 8;

async fn run(b: Backend, assigns: usize, one_node: bool) {
    let admin = b.client().await;
    let mut spec = IpPoolSpec {
        cidr: "10.30.0.0/18".into(),
        block_size: Some(27),
        ..Default::default()
    };
    spec.fill_defaults(false);
    admin
        .create(Resource::IpPool(Object::new("IPPool", "p", spec)))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for t in 0..ALLOCATORS {
        let store = DatastoreIpam::cached(b.client().await);
        assert!(store.wait_ready(std::time::Duration::from_secs(10)).await);
        let ipam = Ipam::new(store);
        let node = if one_node {
            "node-shared".to_string()
        } else {
            format!("node-{t}")
        };
        tasks.push(tokio::spawn(async move {
            let assigns = assigns;
            let mut got = Vec::new();
            for i in 0..assigns {
                let req = AssignRequest::new(&format!("k8s-pod-network.t{t}-{i}"), &node);
                let (v4, _) = ipam.auto_assign(&req).await.unwrap();
                got.extend(v4);
            }
            got
        }));
    }
    let mut all: Vec<IpAddr> = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<IpAddr> = all.iter().copied().collect();
    assert_eq!(
        unique.len(),
        ALLOCATORS * assigns,
        "an address was handed out twice"
    );
    let handles = admin.list(Kind::IpamHandle, None).await.unwrap();
    assert_eq!(handles.items.len(), ALLOCATORS * assigns);
    // Every block belongs to its node through a confirmed affinity.
    let affs = admin.list(Kind::BlockAffinity, None).await.unwrap().items;
    let blocks = admin.list(Kind::IpamBlock, None).await.unwrap().items;
    assert_eq!(affs.len(), blocks.len());
    for a in &affs {
        let Resource::BlockAffinity(a) = a else {
            panic!()
        };
        assert_eq!(a.spec.state.as_str(), "confirmed");
    }

    // `ipam check` is clean while everything is held (every pod live, no
    // grace): handle records agree with the blocks the fast path wrote.
    let ipam = Ipam::new(DatastoreIpam::new(b.client().await));
    let nodes: HashSet<String> = (0..ALLOCATORS)
        .map(|t| format!("node-{t}"))
        .chain(["node-shared".to_string()])
        .collect();
    let live: HashSet<String> = (0..ALLOCATORS)
        .flat_map(|t| (0..assigns).map(move |i| format!("t{t}-{i}")))
        .collect();
    let leaks = LeakCheck {
        workloads: &live,
        grace: Duration::ZERO,
        now: SystemTime::now(),
    };
    let problems = check(ipam.store(), &nodes, Some(&leaks)).await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    for t in 0..ALLOCATORS {
        for i in 0..assigns {
            let r = ipam
                .release_by_handle(&format!("k8s-pod-network.t{t}-{i}"))
                .await
                .unwrap();
            assert_eq!(r.len(), 1);
        }
    }
    assert!(admin
        .list(Kind::IpamHandle, None)
        .await
        .unwrap()
        .items
        .is_empty());
    for blk in admin.list(Kind::IpamBlock, None).await.unwrap().items {
        let Resource::IpamBlock(blk) = blk else {
            panic!()
        };
        assert!(
            blk.spec.allocations.iter().all(Option::is_none),
            "leak in {}",
            blk.spec.cidr
        );
        assert_eq!(blk.spec.unallocated.len(), 32);
    }
    let problems = check(ipam.store(), &nodes, Some(&leaks)).await.unwrap();
    assert!(problems.is_empty(), "after release: {problems:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_allocators() {
    // The 8-process × 500 run on SQLite is in ipam_processes.rs.
    run(Backend::new("sqlite").await, 40, false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_allocators_one_node() {
    run(Backend::new("sqlite").await, 40, true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_concurrent_allocators_one_node() {
    run(Backend::new("etcd").await, 75, true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_concurrent_allocators() {
    run(Backend::new("etcd").await, 500, false).await
}

// The Kubernetes datastore: resourceVersion CAS, no transactions (block
// first, undone on a later conflict), caches fed by kube-runtime watchers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubernetes_concurrent_allocators() {
    run(Backend::new("kubernetes").await, 40, false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubernetes_concurrent_allocators_one_node() {
    run(Backend::new("kubernetes").await, 40, true).await
}
