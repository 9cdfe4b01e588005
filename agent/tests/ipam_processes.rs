//! 8 separate allocator processes × 500 assigns on one shared SQLite file,
//! as several tabby-node processes on a host would run them: no address is
//! handed out twice, and after every process releases what it got, nothing
//! is left and `ipam check` is clean. The test re-runs its own binary as
//! the child allocators.

use std::collections::HashSet;
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use tabby_agent::datastore::{sqlite::SqliteStore, Datastore};
use tabby_agent::ipam::DatastoreIpam;
use tabby_agent::resources::ippool::IpPoolSpec;
use tabby_agent::resources::{Kind, Object, Resource};
use tabby_ipam::allocator::{AssignRequest, Ipam};
use tabby_ipam::check::check;

const PROCESSES: usize = 8;
const ASSIGNS: usize = 500;
const CHILD_ENV: &str = "TABBY_TEST_ALLOCATOR_CHILD";

/// In a child: assign ASSIGNS addresses, print them, release them all.
/// In the parent run this test does nothing.
#[tokio::test(flavor = "current_thread")]
async fn allocator_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (db, id) = spec.split_once('|').expect("db|id");
    let ds: Arc<dyn Datastore> = Arc::new(SqliteStore::open(db.as_ref()).await.unwrap());
    // As tabby-node runs it: a watch-fed cache in every process.
    let store = DatastoreIpam::cached(ds);
    assert!(store.wait_ready(std::time::Duration::from_secs(10)).await);
    let ipam = Ipam::new(store);
    let mut got = Vec::new();
    for i in 0..ASSIGNS {
        let req = AssignRequest::new(&format!("k8s-pod-network.p{id}-{i}"), &format!("node-{id}"));
        got.extend(ipam.auto_assign(&req).await.unwrap().0);
    }
    println!(
        "ALLOCATED {}",
        got.iter()
            .map(|ip| ip.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    // Wait until every process has allocated before releasing, so the
    // parent sees all 4000 at once.
    let flag = std::path::Path::new(db).with_extension("release");
    while !flag.exists() {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for i in 0..ASSIGNS {
        let released = ipam
            .release_by_handle(&format!("k8s-pod-network.p{id}-{i}"))
            .await
            .unwrap();
        assert_eq!(released.len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_processes_share_one_sqlite_file() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tabby.db");
    let ds: Arc<dyn Datastore> = Arc::new(SqliteStore::open(&db).await.unwrap());
    let mut spec = IpPoolSpec {
        cidr: "10.60.0.0/16".into(),
        ..Default::default()
    };
    spec.fill_defaults(false);
    ds.create(Resource::IpPool(Object::new("IPPool", "p", spec)))
        .await
        .unwrap();

    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..PROCESSES)
        .map(|id| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "allocator_child",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, format!("{}|{id}", db.display()))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();

    // All processes allocate concurrently; check while everything is held.
    let mut seen_total = 0;
    loop {
        let handles = ds.list(Kind::IpamHandle, None).await.unwrap().items.len();
        if handles == PROCESSES * ASSIGNS {
            break;
        }
        seen_total += 1;
        assert!(seen_total < 6000, "allocators did not finish in 10 minutes");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let blocks = ds.list(Kind::IpamBlock, None).await.unwrap().items;
    let in_use: usize = blocks
        .iter()
        .map(|b| match b {
            Resource::IpamBlock(b) => b.spec.allocations.iter().flatten().count(),
            _ => 0,
        })
        .sum();
    assert_eq!(in_use, PROCESSES * ASSIGNS);
    let nodes: HashSet<String> = (0..PROCESSES).map(|p| format!("node-{p}")).collect();
    let checker = DatastoreIpam::new(ds.clone());
    let problems = check(&checker, &nodes, None).await.unwrap();
    assert!(problems.is_empty(), "while held: {problems:?}");
    std::fs::write(db.with_extension("release"), b"go").unwrap();

    let mut all: Vec<IpAddr> = Vec::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "child failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = stdout
            .lines()
            .find_map(|l| l.split("ALLOCATED ").nth(1))
            .expect("child printed its addresses");
        // libtest may print its own "test ... ok" around our line.
        let line = line.split_whitespace().next().unwrap_or_default();
        all.extend(line.split(',').map(|s| s.parse::<IpAddr>().unwrap()));
    }
    assert_eq!(all.len(), PROCESSES * ASSIGNS);
    let unique: HashSet<IpAddr> = all.iter().copied().collect();
    assert_eq!(unique.len(), all.len(), "an address was handed out twice");
    assert!(ds
        .list(Kind::IpamHandle, None)
        .await
        .unwrap()
        .items
        .is_empty());
    for b in ds.list(Kind::IpamBlock, None).await.unwrap().items {
        let Resource::IpamBlock(b) = b else { panic!() };
        assert!(
            b.spec.allocations.iter().all(Option::is_none),
            "leak in {}",
            b.spec.cidr
        );
    }
    let problems = check(&checker, &nodes, None).await.unwrap();
    assert!(problems.is_empty(), "after release: {problems:?}");
}
