//! The cluster cache (what tabby-node's route calculation and IPAM read)
//! follows every change of a real SQLite store, and its reflectors list
//! again when the history they would resume from was compacted.

use std::time::Duration;
use tabby_agent::cache::ClusterCache;
use tabby_agent::datastore::sqlite::SqliteStore;
use tabby_agent::datastore::Datastore;
use tabby_agent::node::cluster::{Cluster, KINDS};
use tabby_agent::resources::ipam::{AffinityState, BlockAffinitySpec};
use tabby_agent::resources::node::{NodeBgpSpec, NodeSpec};
use tabby_agent::resources::{BlockAffinity, Kind, Node, Resource};

fn node(name: &str, ip: &str) -> Resource {
    Resource::Node(Node::new(
        "Node",
        name,
        NodeSpec {
            bgp: Some(NodeBgpSpec {
                ipv4_address: Some(ip.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
    ))
}

fn affinity(node: &str, cidr: &str) -> Resource {
    Resource::BlockAffinity(BlockAffinity::new(
        "BlockAffinity",
        &tabby_agent::resources::ipam::affinity_name(node, cidr),
        BlockAffinitySpec {
            state: AffinityState::Confirmed,
            node: node.into(),
            cidr: cidr.into(),
            deleted: false,
        },
    ))
}

async fn wait_for(cache: &ClusterCache, what: &str, cond: impl Fn(&Cluster) -> bool) {
    let mut rx = cache.subscribe();
    let r = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            rx.borrow_and_update();
            if cond(&Cluster::from_cache(cache)) {
                return;
            }
            rx.changed().await.unwrap();
        }
    })
    .await;
    assert!(r.is_ok(), "timed out waiting for {what}");
}

#[tokio::test]
async fn follows_changes_and_lists_again_after_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let ds: std::sync::Arc<dyn Datastore> =
        std::sync::Arc::new(SqliteStore::open(&path).await.unwrap());
    ds.create(node("n1", "10.0.0.1/24")).await.unwrap();
    let (cache, _reflectors) = ClusterCache::follow(ds.clone(), KINDS);
    assert!(cache.wait_ready(KINDS, Duration::from_secs(10)).await);
    assert_eq!(Cluster::from_cache(&cache).nodes.len(), 1);

    ds.create(node("n2", "10.0.0.2/24")).await.unwrap();
    ds.create(affinity("n2", "192.168.1.0/26")).await.unwrap();
    wait_for(&cache, "n2 and its block", |c| {
        c.nodes.contains_key("n2") && c.confirmed_affinities().len() == 1
    })
    .await;
    ds.delete(Kind::Node, "n1", None).await.unwrap();
    wait_for(&cache, "n1 deleted", |c| !c.nodes.contains_key("n1")).await;

    // Compact the history past everything the reflectors have seen, then
    // change things: their watches report Compacted, and a new list brings
    // the cache up to date anyway.
    let seen = ds.list(Kind::Node, None).await.unwrap().revision;
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let n = conn
            .execute(
                "UPDATE meta SET value = ?1 WHERE key = 'compacted'",
                [seen as i64 + 1],
            )
            .unwrap();
        assert_eq!(n, 1, "the store records its compaction point");
    }
    ds.create(node("n3", "10.0.0.3/24")).await.unwrap();
    assert!(
        matches!(
            ds.watch(&[Kind::Node], seen).await.err(),
            Some(tabby_agent::datastore::Error::Compacted { .. })
        ) || {
            // Backends that report compaction on the stream instead.
            use futures::StreamExt;
            let mut s = ds.watch(&[Kind::Node], seen).await.unwrap();
            matches!(
                s.next().await,
                Some(Err(tabby_agent::datastore::Error::Compacted { .. }))
            )
        },
        "resuming from {seen} must report Compacted"
    );
    wait_for(&cache, "n3 after the re-list", |c| {
        c.nodes.contains_key("n3") && c.nodes.contains_key("n2")
    })
    .await;
    assert!(cache.wait_ready(KINDS, Duration::from_secs(10)).await);
}
