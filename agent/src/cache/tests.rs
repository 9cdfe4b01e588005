//! The cluster cache's rules, against the in-memory datastore (the
//! conformance suite runs the same backends for real elsewhere).

use super::*;
use crate::datastore::memory::MemoryStore;
use crate::resources::ippool::IpPoolSpec;
use crate::resources::Object;

fn pool(name: &str, cidr: &str) -> Resource {
    let mut spec = IpPoolSpec {
        cidr: cidr.into(),
        ..Default::default()
    };
    spec.fill_defaults(false);
    Resource::IpPool(Object::new("IPPool", name, spec))
}

fn cidr_of(r: &Resource) -> String {
    match r {
        Resource::IpPool(p) => p.spec.cidr.clone(),
        _ => panic!("not a pool"),
    }
}

#[test]
fn an_older_value_never_replaces_a_newer_one() {
    let c = ClusterCache::new(&[Kind::IpPool]);
    c.put(pool("a", "10.1.0.0/16"), 5);
    c.put(pool("a", "10.2.0.0/16"), 4);
    assert_eq!(cidr_of(&c.get(Kind::IpPool, "a").unwrap().1), "10.1.0.0/16");
    c.put(pool("a", "10.3.0.0/16"), 6);
    assert_eq!(c.get(Kind::IpPool, "a").unwrap().0, 6);
}

#[test]
fn a_tombstone_keeps_an_older_event_from_reviving_a_name() {
    let c = ClusterCache::new(&[Kind::IpPool]);
    c.put(pool("a", "10.1.0.0/16"), 5);
    c.delete(Kind::IpPool, "a", 7);
    c.put(pool("a", "10.1.0.0/16"), 6);
    assert!(c.get(Kind::IpPool, "a").is_none());
    c.put(pool("a", "10.9.0.0/16"), 8);
    assert!(c.get(Kind::IpPool, "a").is_some());
}

#[test]
fn a_list_drops_what_it_no_longer_has_and_keeps_newer_entries() {
    let c = ClusterCache::new(&[Kind::IpPool]);
    assert!(!c.ready(&[Kind::IpPool]));
    c.put(pool("gone", "10.1.0.0/16"), 3);
    c.put(pool("newer", "10.2.0.0/16"), 12);
    c.replace(Kind::IpPool, vec![], 10);
    assert!(c.ready(&[Kind::IpPool]));
    assert!(c.get(Kind::IpPool, "gone").is_none());
    assert!(
        c.get(Kind::IpPool, "newer").is_some(),
        "written after the list"
    );
}

#[test]
fn generations_move_only_for_the_kind_that_changed() {
    let c = ClusterCache::new(&[Kind::IpPool, Kind::Node]);
    let (p, n) = (c.generation(Kind::IpPool), c.generation(Kind::Node));
    c.put(pool("a", "10.1.0.0/16"), 1);
    assert_ne!(c.generation(Kind::IpPool), p);
    assert_eq!(c.generation(Kind::Node), n);
    // An unchanged (older) put is not a change.
    let g = c.generation(Kind::IpPool);
    c.put(pool("a", "10.1.0.0/16"), 1);
    assert_eq!(c.generation(Kind::IpPool), g);
}

#[test]
fn range_lists_only_names_with_the_prefix() {
    let c = ClusterCache::new(&[Kind::IpPool]);
    for (i, n) in ["n1/a", "n1/b", "n10/a", "n2/a"].iter().enumerate() {
        c.put(pool(n, "10.1.0.0/16"), i as u64 + 1);
    }
    let names: Vec<String> = c
        .range(Kind::IpPool, "n1/")
        .iter()
        .map(|r| r.name().to_string())
        .collect();
    assert_eq!(names, ["n1/a", "n1/b"]);
}

#[tokio::test]
async fn reflectors_list_then_follow_each_kind() {
    let ds: Arc<dyn Datastore> = Arc::new(MemoryStore::new());
    ds.create(pool("before", "10.1.0.0/16")).await.unwrap();
    let (c, _r) = ClusterCache::follow(ds.clone(), &[Kind::IpPool, Kind::Node]);
    assert!(
        c.wait_ready(&[Kind::IpPool, Kind::Node], Duration::from_secs(5))
            .await
    );
    assert!(c.get(Kind::IpPool, "before").is_some());
    let mut rx = c.subscribe();
    ds.create(pool("after", "10.2.0.0/16")).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while c.get(Kind::IpPool, "after").is_none() {
        tokio::time::timeout_at(deadline, rx.changed())
            .await
            .expect("the watch delivers the new pool")
            .unwrap();
    }
    ds.delete(Kind::IpPool, "before", None).await.unwrap();
    while c.get(Kind::IpPool, "before").is_some() {
        tokio::time::timeout_at(deadline, rx.changed())
            .await
            .expect("the watch delivers the deletion")
            .unwrap();
    }
    assert_eq!(c.list(Kind::IpPool).len(), 1);
}

#[test]
fn status_has_the_highest_revision_applied_and_readiness_with_its_error() {
    let c = ClusterCache::new(&[Kind::IpPool, Kind::Node]);
    let st = |k: Kind| c.status().into_iter().find(|s| s.kind == k).unwrap();
    assert!(!st(Kind::IpPool).ready && st(Kind::IpPool).ready_since.is_none());
    c.put(pool("a", "10.1.0.0/16"), 5);
    c.delete(Kind::IpPool, "a", 9);
    // An older event changes nothing, so it does not move the revision.
    c.put(pool("a", "10.1.0.0/16"), 7);
    assert_eq!(st(Kind::IpPool).revision, 9);
    // A list is everything up to its revision, even with nothing in it.
    c.replace(Kind::Node, vec![], 12);
    let n = st(Kind::Node);
    assert_eq!(n.revision, 12);
    assert!(n.ready && n.ready_since.is_some() && n.error.is_none());
    c.set_ready(Kind::Node, false);
    c.set_error(Kind::Node, "watching nodes: connection refused".into());
    let n = st(Kind::Node);
    assert!(!n.ready && n.ready_since.is_none());
    assert_eq!(
        n.error.as_deref(),
        Some("watching nodes: connection refused")
    );
    c.set_ready(Kind::Node, true);
    assert_eq!(st(Kind::Node).error, None, "ready again clears the error");
}
