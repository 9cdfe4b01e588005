//! The SQLite store's shared log tail (one read of the event log per
//! wake-up for all of a handle's watchers): each watcher still gets exactly
//! its kinds' events in order, a watcher behind the tail or left unread
//! through a burst longer than the tail keeps reads the log itself, and a
//! writer that sends no wake-up is still seen through the safety poll even
//! though the tail had read everything the wake-ups announced.

use futures::StreamExt;
use std::time::Duration;
use tabby_agent::datastore::sqlite::{SqliteStore, WatchOptions};
use tabby_agent::datastore::{Datastore, EventType, WatchStream};
use tabby_agent::resources::asn::AsNumber;
use tabby_agent::resources::bgp::BgpPeerSpec;
use tabby_agent::resources::ippool::IpPoolSpec;
use tabby_agent::resources::{Kind, Object, Resource};

const NO_POLL: WatchOptions = WatchOptions {
    wake: true,
    poll: Duration::from_secs(3600),
};

fn pool(n: u32) -> Resource {
    let mut spec = IpPoolSpec {
        cidr: format!("10.{}.{}.0/24", 40 + n / 256, n % 256),
        ..Default::default()
    };
    spec.fill_defaults(false);
    Resource::IpPool(Object::new("IPPool", &format!("p{n}"), spec))
}

fn peer(n: u32) -> Resource {
    let spec = BgpPeerSpec {
        peer_ip: Some(format!("192.0.2.{}", n % 250 + 1)),
        as_number: Some(AsNumber(64512)),
        ..Default::default()
    };
    Resource::BgpPeer(Object::new("BGPPeer", &format!("peer{n}"), spec))
}

async fn next(w: &mut WatchStream, what: &str) -> (Kind, EventType, String) {
    let ev = tokio::time::timeout(Duration::from_secs(20), w.next())
        .await
        .unwrap_or_else(|_| panic!("{what}: no event within 20 s"))
        .expect("stream open")
        .expect("no error");
    (
        ev.resource.kind(),
        ev.event_type,
        ev.resource.name().to_string(),
    )
}

/// Nothing more arrives within `d`.
async fn quiet(w: &mut WatchStream, d: Duration) {
    if let Ok(Some(ev)) = tokio::time::timeout(d, w.next()).await {
        panic!(
            "unexpected event {:?}",
            ev.map(|e| e.resource.name().to_string())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_of_several_kinds_each_get_their_own_events_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tabby.db");
    let reader = SqliteStore::open_with(&db, NO_POLL).await.unwrap();
    let writer = SqliteStore::open_with(&db, NO_POLL).await.unwrap();
    let from = reader.list(Kind::IpPool, None).await.unwrap().revision;
    let mut pools = reader.watch(&[Kind::IpPool], from).await.unwrap();
    let mut peers = reader.watch(&[Kind::BgpPeer], from).await.unwrap();
    let mut both = reader
        .watch(&[Kind::IpPool, Kind::BgpPeer], from)
        .await
        .unwrap();
    // Left unread through a burst of 900 events, longer than the tail
    // keeps: it must fall back to reading the log and lose nothing.
    let mut late = reader.watch(&[Kind::IpPool], from).await.unwrap();
    const N: u32 = 450;
    let burst = tokio::spawn(async move {
        for n in 0..N {
            writer.create(pool(n)).await.unwrap();
            writer.create(peer(n)).await.unwrap();
        }
    });
    for n in 0..N {
        let p = format!("p{n}");
        let q = format!("peer{n}");
        assert_eq!(
            next(&mut pools, &p).await,
            (Kind::IpPool, EventType::Added, p.clone())
        );
        assert_eq!(
            next(&mut peers, &q).await,
            (Kind::BgpPeer, EventType::Added, q.clone())
        );
        assert_eq!(next(&mut both, &p).await.2, p);
        assert_eq!(next(&mut both, &q).await.2, q);
    }
    burst.await.unwrap();
    for n in 0..N {
        let p = format!("p{n}");
        assert_eq!(next(&mut late, &p).await.2, p, "the unread watcher");
    }
    for w in [&mut pools, &mut peers, &mut both, &mut late] {
        quiet(w, Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_before_the_tail_reads_the_log_itself() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tabby.db");
    let store = SqliteStore::open_with(&db, NO_POLL).await.unwrap();
    let start = store.list(Kind::IpPool, None).await.unwrap().revision;
    for n in 0..700 {
        store.create(pool(n)).await.unwrap();
    }
    // Places the tail at the head of the log.
    let head = store.list(Kind::IpPool, None).await.unwrap().revision;
    let mut now = store.watch(&[Kind::IpPool], head).await.unwrap();
    store.create(pool(700)).await.unwrap();
    assert_eq!(next(&mut now, "p700").await.2, "p700");
    // A watch from the start: 701 events, most before the tail's start.
    let mut old = store.watch(&[Kind::IpPool], start).await.unwrap();
    for n in 0..=700 {
        let p = format!("p{n}");
        assert_eq!(next(&mut old, &p).await.2, p);
    }
    quiet(&mut old, Duration::from_millis(300)).await;
}

/// A write that sends no wake-up (the `sqlite3` shell, an older Tabby): the
/// tail has read everything the wake-ups announced, so only the safety
/// poll's forced read can find it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_without_a_wake_up_arrives_with_the_safety_poll() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tabby.db");
    let poll = WatchOptions {
        wake: true,
        poll: Duration::from_millis(300),
    };
    let store = SqliteStore::open_with(&db, poll).await.unwrap();
    let from = store.list(Kind::IpPool, None).await.unwrap().revision;
    let mut w = store.watch(&[Kind::IpPool], from).await.unwrap();
    store.create(pool(1)).await.unwrap();
    assert_eq!(next(&mut w, "p1").await.2, "p1");
    // What Tabby's own write does, minus the wake-up.
    let value = pool(2).to_json_bytes();
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    let rev: i64 = conn
        .query_row(
            "UPDATE meta SET value = value + 1 WHERE key = 'revision' RETURNING value",
            [],
            |r| r.get(0),
        )
        .unwrap();
    conn.execute(
        "INSERT INTO resources (kind, name, value, mod_revision) VALUES ('IPPool', 'p2', ?1, ?2)",
        rusqlite::params![value, rev],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO events (revision, kind, name, type, value) VALUES (?1, 'IPPool', 'p2', 0, ?2)",
        rusqlite::params![rev, value],
    )
    .unwrap();
    conn.execute_batch("COMMIT").unwrap();
    let t0 = std::time::Instant::now();
    assert_eq!(next(&mut w, "p2").await.2, "p2");
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "p2 took {:?} with a 300 ms safety poll",
        t0.elapsed()
    );
}
