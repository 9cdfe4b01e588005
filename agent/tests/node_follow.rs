//! tabby-node's view of the datastore follows every change, and lists
//! again when the history it would resume from was compacted.

use std::time::Duration;
use tabby_agent::datastore::sqlite::SqliteStore;
use tabby_agent::datastore::Datastore;
use tabby_agent::node::follow;
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

async fn wait_for(
    rx: &mut tokio::sync::watch::Receiver<std::sync::Arc<follow::Cluster>>,
    what: &str,
    cond: impl Fn(&follow::Cluster) -> bool,
) {
    let r = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if cond(&rx.borrow_and_update()) {
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
    let (cluster, rev) = follow::list_all(&*ds).await.unwrap();
    assert_eq!(cluster.nodes.len(), 1);
    let (mut rx, task) = follow::spawn(ds.clone(), cluster, rev);

    ds.create(node("n2", "10.0.0.2/24")).await.unwrap();
    ds.create(affinity("n2", "192.168.1.0/26")).await.unwrap();
    wait_for(&mut rx, "n2 and its block", |c| {
        c.nodes.contains_key("n2") && c.confirmed_affinities().len() == 1
    })
    .await;
    ds.delete(Kind::Node, "n1", None).await.unwrap();
    wait_for(&mut rx, "n1 deleted", |c| !c.nodes.contains_key("n1")).await;

    // Compact the history past everything the follower has seen, then
    // change things: resuming fails with Compacted, and a new list brings
    // the follower up to date anyway.
    task.abort();
    let seen = follow::list_all(&*ds).await.unwrap().1;
    let (cluster, _) = follow::list_all(&*ds).await.unwrap();
    ds.create(node("n3", "10.0.0.3/24")).await.unwrap();
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
    let (mut rx, _task) = follow::spawn(ds.clone(), cluster, seen);
    wait_for(&mut rx, "n3 after the re-list", |c| {
        c.nodes.contains_key("n3") && c.nodes.contains_key("n2")
    })
    .await;
}
