//! The cluster cache over the Kubernetes datastore: kube-runtime's watcher
//! feeds it; a lost API server leaves the cache (and so the dataplane) as
//! it was and is retried with backoff; a compacted history (410 Gone) is
//! relisted, deletes made meanwhile included.

mod common;

use common::Kube;
use std::time::Duration;
use tabby_agent::cache::ClusterCache;
use tabby_agent::datastore::Error;
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

async fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn names(c: &ClusterCache) -> Vec<String> {
    c.list(Kind::IpPool)
        .iter()
        .map(|r| r.name().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_survives_an_api_outage_and_a_compacted_history() {
    let k = Kube::start().await;
    let ds = k.client().await;
    ds.create(pool("a", "10.1.0.0/16")).await.unwrap();
    let (cache, _reflectors) = ClusterCache::follow(ds.clone(), &[Kind::IpPool, Kind::Node]);
    assert!(
        cache
            .wait_ready(&[Kind::IpPool, Kind::Node], Duration::from_secs(10))
            .await
    );
    assert_eq!(names(&cache), ["a"]);
    ds.create(pool("b", "10.2.0.0/16")).await.unwrap();
    eventually("b arrives by watch", || names(&cache) == ["a", "b"]).await;

    // The API goes away: writes fail as Unavailable, the cache keeps what it had.
    k.server.stop().await;
    assert!(matches!(
        ds.create(pool("c", "10.3.0.0/16")).await,
        Err(Error::Unavailable(_))
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        names(&cache),
        ["a", "b"],
        "nothing forgotten while the API is gone"
    );

    // Changes made while it was away (straight into its store), and the
    // history the watcher would resume from compacted: back up, the resumed
    // watch gets 410 Gone and the watcher relists.
    let c = tabby_agent::datastore::kdd::crs::to_cr(&pool("c", "10.3.0.0/16"));
    k.put("/apis/crd.projectcalico.org/v1/ippools", c);
    k.server
        .delete_json("/apis/crd.projectcalico.org/v1/ippools/a")
        .unwrap();
    k.server.compact();
    k.server.restart().await.unwrap();
    eventually("the relist shows c and drops a", || {
        names(&cache) == ["b", "c"]
    })
    .await;
    let other = k.client().await;
    other.create(pool("d", "10.4.0.0/16")).await.unwrap();
    eventually("and the watch carries on", || {
        names(&cache) == ["b", "c", "d"]
    })
    .await;
    assert!(cache.ready(&[Kind::IpPool, Kind::Node]));
}
