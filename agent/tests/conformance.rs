//! One behaviour suite for every datastore backend: memory, the embedded
//! SQLite file, a real etcd started by the test, and the Kubernetes
//! datastore through a real kube client over HTTP to the API stand-in.

mod common;

use common::Backend;
use futures::StreamExt;
use std::collections::BTreeMap;
use std::time::Duration;
use tabby_agent::datastore::{Error, EventType, WatchEvent, WatchStream};
use tabby_agent::resources::ipam::{
    AffinityState, AllocationAttribute, BlockAffinitySpec, IpamBlockSpec, IpamConfigSpec,
    IpamHandleSpec,
};
use tabby_agent::resources::ippool::IpPoolSpec;
use tabby_agent::resources::{Kind, Object, Resource};

fn pool(name: &str, cidr: &str) -> Resource {
    let mut spec = IpPoolSpec {
        cidr: cidr.into(),
        ..Default::default()
    };
    spec.fill_defaults(false);
    Resource::IpPool(Object::new("IPPool", name, spec))
}

fn with_nat(mut r: Resource, nat: bool) -> Resource {
    if let Resource::IpPool(p) = &mut r {
        p.spec.nat_outgoing = nat;
    }
    r
}

fn nat_of(r: &Resource) -> bool {
    match r {
        Resource::IpPool(p) => p.spec.nat_outgoing,
        _ => panic!("not a pool"),
    }
}

async fn next_events(w: &mut WatchStream, n: usize) -> Vec<WatchEvent> {
    let mut out = Vec::new();
    while out.len() < n {
        let ev = tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .expect("watch event within 10s")
            .expect("watch stream ended")
            .expect("watch error");
        out.push(ev);
    }
    out
}

async fn cas_conflict_overwrites_nothing(b: Backend) {
    let s = b.client().await;
    let created = s.create(pool("p1", "10.0.0.0/16")).await.unwrap();
    let rev1 = created.revision().unwrap();
    assert!(matches!(
        s.create(pool("p1", "10.1.0.0/16")).await,
        Err(Error::AlreadyExists {
            kind: Kind::IpPool,
            ..
        })
    ));
    let updated = s.update(with_nat(created.clone(), true)).await.unwrap();
    let rev2 = updated.revision().unwrap();
    assert!(rev2 > rev1);
    // A write based on the stale revision is refused and names the current one.
    match s.update(with_nat(created.clone(), false)).await {
        Err(Error::Conflict {
            expected, current, ..
        }) => {
            assert_eq!(expected, rev1);
            assert_eq!(current, rev2);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let now = s.get(Kind::IpPool, "p1").await.unwrap();
    assert!(
        nat_of(&now),
        "the conflicting update must not have been written"
    );
    assert_eq!(now.revision(), Some(rev2));
    assert_eq!(now.metadata().uid, created.metadata().uid);
    // Update without a revision is not a silent overwrite.
    let mut blind = now.clone();
    blind.metadata_mut().resource_version = None;
    assert!(matches!(s.update(blind).await, Err(Error::Invalid(_))));
    // Delete is CAS too.
    assert!(matches!(
        s.delete(Kind::IpPool, "p1", Some(rev1)).await,
        Err(Error::Conflict { .. })
    ));
    let gone = s.delete(Kind::IpPool, "p1", Some(rev2)).await.unwrap();
    assert!(nat_of(&gone));
    assert!(matches!(
        s.get(Kind::IpPool, "p1").await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        s.update(updated).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        s.delete(Kind::IpPool, "p1", None).await,
        Err(Error::NotFound { .. })
    ));
}

async fn list_by_kind_and_prefix(b: Backend) {
    let s = b.client().await;
    for (n, c) in [
        ("a-1", "10.1.0.0/16"),
        ("a-2", "10.2.0.0/16"),
        ("b-1", "10.3.0.0/16"),
    ] {
        s.create(pool(n, c)).await.unwrap();
    }
    let cfg = Resource::IpamConfig(Object::new(
        "IPAMConfig",
        "default",
        IpamConfigSpec::default(),
    ));
    let last = s.create(cfg).await.unwrap().revision().unwrap();
    let all = s.list(Kind::IpPool, None).await.unwrap();
    let names: Vec<&str> = all.items.iter().map(|r| r.name()).collect();
    assert_eq!(names, ["a-1", "a-2", "b-1"]);
    assert!(all.revision >= last);
    let a = s.list(Kind::IpPool, Some("a-")).await.unwrap();
    assert_eq!(a.items.len(), 2);
    assert!(s.list(Kind::BgpPeer, None).await.unwrap().items.is_empty());
    assert_eq!(s.list(Kind::IpamConfig, None).await.unwrap().items.len(), 1);
}

async fn watch_is_ordered_and_resumable(b: Backend) {
    let s = b.client().await;
    s.create(pool("before", "10.99.0.0/16")).await.unwrap();
    let start = s.list(Kind::IpPool, None).await.unwrap().revision;
    let mut w = s.watch(&[Kind::IpPool], start).await.unwrap();

    let mut expect = Vec::new();
    for i in 0..10 {
        let r = s
            .create(pool(&format!("p{i}"), &format!("10.{i}.0.0/16")))
            .await
            .unwrap();
        expect.push((
            EventType::Added,
            r.name().to_string(),
            r.revision().unwrap(),
        ));
    }
    let cur = s.get(Kind::IpPool, "p3").await.unwrap();
    let r = s.update(with_nat(cur, true)).await.unwrap();
    expect.push((EventType::Modified, "p3".into(), r.revision().unwrap()));
    // A change to another kind must not show up in this watch.
    let cfg = Resource::IpamConfig(Object::new(
        "IPAMConfig",
        "default",
        IpamConfigSpec::default(),
    ));
    s.create(cfg).await.unwrap();

    let got = next_events(&mut w, 6).await;
    let seen: Vec<_> = got
        .iter()
        .map(|e| (e.event_type, e.resource.name().to_string(), e.revision))
        .collect();
    assert_eq!(seen, expect[..6]);
    // Disconnect mid-way, make more changes, resume from the last revision seen.
    let resume_from = got.last().unwrap().revision;
    drop(w);
    let del = s.delete(Kind::IpPool, "p7", None).await.unwrap();
    expect.push((EventType::Deleted, "p7".into(), 0));
    let mut w = s.watch(&[Kind::IpPool], resume_from).await.unwrap();
    let rest = next_events(&mut w, expect.len() - 6).await;
    let seen: Vec<_> = rest
        .iter()
        .map(|e| (e.event_type, e.resource.name().to_string()))
        .collect();
    let want: Vec<_> = expect[6..]
        .iter()
        .map(|(t, n, _)| (*t, n.clone()))
        .collect();
    assert_eq!(seen, want);
    let revs: Vec<u64> = rest.iter().map(|e| e.revision).collect();
    assert!(
        revs.windows(2).all(|w| w[0] < w[1]),
        "revisions in order: {revs:?}"
    );
    // The delete event carries the last state.
    let last = rest.last().unwrap();
    assert_eq!(last.resource.metadata().uid, del.metadata().uid);
    // Nothing more arrives (the IPAMConfig write was filtered out).
    assert!(tokio::time::timeout(Duration::from_millis(500), w.next())
        .await
        .is_err());

    // An all-kinds watch from the start sees the config too.
    let mut all = s.watch(&[], start).await.unwrap();
    let evs = next_events(&mut all, expect.len() + 1).await;
    assert!(evs.iter().any(|e| e.resource.kind() == Kind::IpamConfig));
}

async fn racing_clients_exactly_one_wins(b: Backend) {
    let c1 = b.client().await;
    let c2 = b.client().await;
    for round in 0..20 {
        let name = format!("race-{round}");
        let (r1, r2) = tokio::join!(
            c1.create(pool(&name, "10.0.0.0/16")),
            c2.create(pool(&name, "10.0.0.0/16"))
        );
        assert_eq!(
            r1.is_ok() as u8 + r2.is_ok() as u8,
            1,
            "round {round}: create {r1:?} / {r2:?}"
        );
        let base = c1.get(Kind::IpPool, &name).await.unwrap();
        let (u1, u2) = tokio::join!(
            c1.update(with_nat(base.clone(), true)),
            c2.update(with_nat(base.clone(), false))
        );
        assert_eq!(
            u1.is_ok() as u8 + u2.is_ok() as u8,
            1,
            "round {round}: update {u1:?} / {u2:?}"
        );
        let loser = if u1.is_ok() { &u2 } else { &u1 };
        assert!(matches!(loser, Err(Error::Conflict { .. })));
        let winner_nat = u1.is_ok();
        assert_eq!(
            nat_of(&c2.get(Kind::IpPool, &name).await.unwrap()),
            winner_nat
        );
    }
}

async fn ipam_kinds_round_trip(b: Backend) {
    let s = b.client().await;
    let mut secondary = BTreeMap::new();
    secondary.insert("node".to_string(), "node-a".to_string());
    let block = IpamBlockSpec {
        cidr: "10.244.1.0/26".into(),
        affinity: Some("host:node-a".into()),
        allocations: (0..64).map(|i| (i == 1).then_some(0)).collect(),
        unallocated: (0..64).filter(|i| *i != 1).collect(),
        attributes: vec![AllocationAttribute {
            handle_id: Some("k8s-pod-network.abc".into()),
            secondary,
            released_at: None,
        }],
        sequence_number: 7,
        ..Default::default()
    };
    let aff = BlockAffinitySpec {
        state: AffinityState::Confirmed,
        node: "node-a".into(),
        cidr: "10.244.1.0/26".into(),
        deleted: false,
    };
    let mut handle_blocks = BTreeMap::new();
    handle_blocks.insert("10.244.1.0/26".to_string(), 1);
    let handle = IpamHandleSpec {
        handle_id: "k8s-pod-network.abc".into(),
        block: handle_blocks,
        deleted: false,
    };
    let cfg = IpamConfigSpec {
        strict_affinity: true,
        max_blocks_per_host: 4,
        ..Default::default()
    };
    let items = [
        Resource::IpamBlock(Object::new("IPAMBlock", "10.244.1.0-26", block)),
        Resource::BlockAffinity(Object::new("BlockAffinity", "node-a/10.244.1.0-26", aff)),
        Resource::IpamHandle(Object::new("IPAMHandle", "k8s-pod-network.abc", handle)),
        Resource::IpamConfig(Object::new("IPAMConfig", "default", cfg)),
    ];
    for r in items {
        let stored = s.create(r.clone()).await.unwrap();
        let got = s.get(r.kind(), r.name()).await.unwrap();
        assert_eq!(got.revision(), stored.revision());
        let spec = |x: &Resource| x.to_json_value()["spec"].clone();
        assert_eq!(spec(&got), spec(&r), "{} round trip", r.kind());
        assert_eq!(got.name(), r.name());
    }
    let affs = s.list(Kind::BlockAffinity, Some("node-a/")).await.unwrap();
    assert_eq!(affs.items.len(), 1);
}

macro_rules! suite {
    ($($backend:ident),*) => {$(
        mod $backend {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cas_conflict_overwrites_nothing() {
                super::cas_conflict_overwrites_nothing(Backend::new(stringify!($backend)).await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn list_by_kind_and_prefix() {
                super::list_by_kind_and_prefix(Backend::new(stringify!($backend)).await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn watch_is_ordered_and_resumable() {
                super::watch_is_ordered_and_resumable(Backend::new(stringify!($backend)).await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn racing_clients_exactly_one_wins() {
                super::racing_clients_exactly_one_wins(Backend::new(stringify!($backend)).await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn ipam_kinds_round_trip() {
                super::ipam_kinds_round_trip(Backend::new(stringify!($backend)).await).await
            }
        }
    )*};
}

suite!(memory, sqlite, etcd, kubernetes);
