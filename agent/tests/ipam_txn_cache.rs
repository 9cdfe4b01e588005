//! What the fast assignment path stands on, against memory, SQLite and a
//! real etcd: `Datastore::transact` is all-or-nothing and names the write
//! that failed; the allocator's watch-fed cache may go stale under other
//! writers without ever causing a duplicate, and follows pool changes.

mod common;

use common::Backend;
use futures::StreamExt;
use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;
use tabby_agent::datastore::{Error, TxnWrite};
use tabby_agent::ipam::DatastoreIpam;
use tabby_agent::resources::ipam::IpamHandleSpec;
use tabby_agent::resources::ippool::IpPoolSpec;
use tabby_agent::resources::{Kind, Object, Resource};
use tabby_ipam::allocator::{AssignRequest, Ipam, IpamError};

fn handle(name: &str, n: u32) -> Resource {
    let mut spec = IpamHandleSpec {
        handle_id: name.into(),
        ..Default::default()
    };
    spec.block.insert("10.0.0.0/26".into(), n);
    Resource::IpamHandle(Object::new("IPAMHandle", name, spec))
}

fn count(r: &Resource) -> u32 {
    match r {
        Resource::IpamHandle(h) => h.spec.block.values().sum(),
        _ => panic!("not a handle"),
    }
}

async fn transact_all_or_nothing(kind: &str) {
    let b = Backend::new(kind).await;
    let ds = b.client().await;
    let a = ds.create(handle("a", 1)).await.unwrap();
    let rev_a = a.revision().unwrap();
    let start = ds.list(Kind::IpamHandle, None).await.unwrap().revision;

    // A create and a CAS update together.
    let mut a2 = handle("a", 2);
    a2.set_revision(rev_a);
    let revs = ds
        .transact(vec![TxnWrite::Update(a2), TxnWrite::Create(handle("b", 1))])
        .await
        .unwrap();
    assert_eq!(revs.len(), 2);
    let (a_now, b_now) = (
        ds.get(Kind::IpamHandle, "a").await.unwrap(),
        ds.get(Kind::IpamHandle, "b").await.unwrap(),
    );
    assert_eq!((count(&a_now), count(&b_now)), (2, 1));
    assert_eq!(a_now.revision(), Some(revs[0]));
    assert_eq!(b_now.revision(), Some(revs[1]));

    // A stale revision on the second write: nothing is written, and the
    // error names that write.
    let mut a3 = handle("a", 3);
    a3.set_revision(revs[0]);
    let mut b3 = handle("b", 3);
    b3.set_revision(rev_a);
    let e = ds
        .transact(vec![TxnWrite::Update(a3.clone()), TxnWrite::Update(b3)])
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Conflict { kind: Kind::IpamHandle, name, expected, current }
            if name == "b" && *expected == rev_a && *current == revs[1]),
        "{e}"
    );
    assert_eq!(count(&ds.get(Kind::IpamHandle, "a").await.unwrap()), 2);

    // Create of an existing name; delete of a missing one.
    let e = ds
        .transact(vec![
            TxnWrite::Update(a3.clone()),
            TxnWrite::Create(handle("b", 9)),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::AlreadyExists { name, .. } if name == "b"),
        "{e}"
    );
    let e = ds
        .transact(vec![
            TxnWrite::Update(a3.clone()),
            TxnWrite::Delete {
                kind: Kind::IpamHandle,
                name: "zz".into(),
                revision: 1,
            },
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::NotFound { name, .. } if name == "zz"),
        "{e}"
    );
    assert_eq!(count(&ds.get(Kind::IpamHandle, "a").await.unwrap()), 2);

    // Update and delete together, then the watch shows exactly the writes
    // that happened, in order.
    ds.transact(vec![
        TxnWrite::Update(a3),
        TxnWrite::Delete {
            kind: Kind::IpamHandle,
            name: "b".into(),
            revision: revs[1],
        },
    ])
    .await
    .unwrap();
    assert_eq!(count(&ds.get(Kind::IpamHandle, "a").await.unwrap()), 3);
    assert!(ds.get(Kind::IpamHandle, "b").await.is_err());
    let mut w = ds.watch(&[Kind::IpamHandle], start).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let ev = tokio::time::timeout(Duration::from_secs(5), w.next())
            .await
            .expect("watch delivers")
            .unwrap()
            .unwrap();
        seen.push(format!("{:?} {}", ev.event_type, ev.resource.name()));
    }
    assert_eq!(seen, ["Modified a", "Added b", "Modified a", "Deleted b"]);
}

#[tokio::test]
async fn transact_on_memory() {
    transact_all_or_nothing("memory").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transact_on_sqlite() {
    transact_all_or_nothing("sqlite").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transact_on_etcd() {
    transact_all_or_nothing("etcd").await
}

fn pool(disabled: bool) -> Resource {
    let mut spec = IpPoolSpec {
        cidr: "10.50.0.0/24".into(),
        disabled,
        ..Default::default()
    };
    spec.fill_defaults(false);
    Resource::IpPool(Object::new("IPPool", "p", spec))
}

/// A cached allocator and a read-through one take turns on the same node,
/// so the cached one keeps acting on blocks the other just changed (SQLite
/// watchers poll every 100 ms; etcd's watch lags the write): every address
/// is still unique, and the handle records agree with the blocks.
async fn stale_cache_never_duplicates(kind: &str) {
    let b = Backend::new(kind).await;
    let admin = b.client().await;
    admin.create(pool(false)).await.unwrap();
    let cached = DatastoreIpam::cached(b.client().await);
    assert!(cached.wait_ready(Duration::from_secs(10)).await);
    let fast = Ipam::new(cached);
    let slow = Ipam::new(DatastoreIpam::new(b.client().await));
    let mut all: Vec<IpAddr> = Vec::new();
    let mut n = 0;
    for round in 0..15 {
        let who = if round % 2 == 0 { &fast } else { &slow };
        for _ in 0..3 {
            n += 1;
            let req = AssignRequest::new(&format!("k8s-pod-network.c{n}"), "n1");
            all.extend(who.auto_assign(&req).await.unwrap().0);
        }
        // The read-through allocator also frees some, so a cached block
        // can be stale in both directions.
        if round % 4 == 1 {
            let freed = slow
                .release_by_handle(&format!("k8s-pod-network.c{}", n - 1))
                .await
                .unwrap();
            assert_eq!(freed.len(), 1);
            all.retain(|ip| !freed.contains(ip));
        }
    }
    let unique: HashSet<IpAddr> = all.iter().copied().collect();
    assert_eq!(unique.len(), all.len(), "an address was handed out twice");
    let problems = tabby_ipam::check::check(slow.store(), &HashSet::from(["n1".to_string()]), None)
        .await
        .unwrap();
    assert!(problems.is_empty(), "{problems:?}");

    // The cache follows the pool: once it is disabled, the cached
    // allocator refuses (it doesn't keep using the stale enabled copy).
    let mut p = admin.get(Kind::IpPool, "p").await.unwrap();
    let Resource::IpPool(o) = &mut p else {
        panic!()
    };
    o.spec.disabled = true;
    admin.update(p).await.unwrap();
    let mut refused = None;
    for i in 0..100 {
        let req = AssignRequest::new(&format!("k8s-pod-network.late{i}"), "n1");
        match fast.auto_assign(&req).await {
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    assert!(
        matches!(refused, Some(IpamError::Pool(_))),
        "the cached allocator never saw the pool disabled: {refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_cache_never_duplicates_on_sqlite() {
    stale_cache_never_duplicates("sqlite").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_cache_never_duplicates_on_etcd() {
    stale_cache_never_duplicates("etcd").await
}
