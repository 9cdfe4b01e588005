//! The embedded store shared by separate processes on one host, as several
//! `tabby-node`/`tabbyctl` processes share it: races between processes have
//! exactly one winner, and a watch in one process sees writes of another
//! (woken without the poll: the safety poll is set to an hour here).

mod common;

use futures::StreamExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use tabby_agent::datastore::sqlite::{SqliteStore, WatchOptions};
use tabby_agent::datastore::{Datastore, EventType, WatchStream};
use tabby_agent::resources::ippool::IpPoolSpec;
use tabby_agent::resources::{Kind, Object, Resource};

fn tabbyctl(db: &Path, args: &[&str], stdin: Option<&str>) -> std::process::Child {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tabbyctl"));
    c.args(args)
        .env("DATASTORE_TYPE", "sqlite")
        .env("TABBY_DATASTORE", db)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawning tabbyctl");
    if let Some(text) = stdin {
        use std::io::Write;
        let mut si = child.stdin.take().expect("stdin");
        si.write_all(text.as_bytes()).expect("writing stdin");
    }
    child
}

fn done(c: std::process::Child) -> Output {
    c.wait_with_output().expect("waiting for tabbyctl")
}

fn pool_yaml(name: &str, n: u8, rv: Option<u64>, nat: bool) -> String {
    let rv = rv
        .map(|r| format!("\n  resourceVersion: \"{r}\""))
        .unwrap_or_default();
    format!(
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: {name}{rv}\nspec:\n  cidr: 10.20.{n}.0/24\n  natOutgoing: {nat}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_racing_on_one_key_exactly_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tabby.db");
    let store = SqliteStore::open(&db).await.unwrap();
    for round in 0..10 {
        let name = format!("race-{round}");
        let y = pool_yaml(&name, round, None, false);
        let a = tabbyctl(&db, &["create", "-f", "-"], Some(&y));
        let b = tabbyctl(&db, &["create", "-f", "-"], Some(&y));
        let (a, b) = (done(a), done(b));
        assert_eq!(
            a.status.success() as u8 + b.status.success() as u8,
            1,
            "round {round}: create must have one winner\n{}\n{}",
            String::from_utf8_lossy(&a.stderr),
            String::from_utf8_lossy(&b.stderr)
        );
        // Both processes replace from the same resourceVersion: a real CAS
        // race across processes.
        let rv = store.get(Kind::IpPool, &name).await.unwrap().revision();
        let a = tabbyctl(
            &db,
            &["replace", "-f", "-"],
            Some(&pool_yaml(&name, round, rv, true)),
        );
        let b = tabbyctl(
            &db,
            &["replace", "-f", "-"],
            Some(&pool_yaml(&name, round, rv, true)),
        );
        let (a, b) = (done(a), done(b));
        assert_eq!(
            a.status.success() as u8 + b.status.success() as u8,
            1,
            "round {round}: replace must have one winner"
        );
        let loser = if a.status.success() { &b } else { &a };
        let msg = String::from_utf8_lossy(&loser.stderr);
        assert!(msg.contains("modified concurrently"), "{msg}");
        let now = store.get(Kind::IpPool, &name).await.unwrap();
        assert_eq!(
            now.revision(),
            rv.map(|r| r + 1),
            "exactly one write landed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sees_writes_from_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tabby.db");
    let store = SqliteStore::open(&db).await.unwrap();
    let from = store.list(Kind::IpPool, None).await.unwrap().revision;
    let mut w = store.watch(&[Kind::IpPool], from).await.unwrap();
    let out = done(tabbyctl(
        &db,
        &["apply", "-f", "-"],
        Some(&pool_yaml("x", 1, None, false)),
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = done(tabbyctl(&db, &["delete", "ippool", "x"], None));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut seen = Vec::new();
    for _ in 0..2 {
        let ev = tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .expect("event within 10s")
            .expect("stream open")
            .expect("no error");
        seen.push((ev.event_type, ev.resource.name().to_string()));
    }
    assert_eq!(
        seen,
        [
            (EventType::Added, "x".into()),
            (EventType::Deleted, "x".into())
        ]
    );
}

/// Long enough that an event arriving within a test came from a wake-up.
const NO_POLL: WatchOptions = WatchOptions {
    wake: true,
    poll: Duration::from_secs(3600),
};

async fn next_event(w: &mut WatchStream, what: &str) -> (EventType, String) {
    let ev = tokio::time::timeout(Duration::from_secs(20), w.next())
        .await
        .unwrap_or_else(|_| panic!("{what}: no event although the safety poll is an hour"))
        .expect("stream open")
        .expect("no error");
    (ev.event_type, ev.resource.name().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_is_woken_by_another_process_without_the_poll() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tabby.db");
    let store = SqliteStore::open_with(&db, NO_POLL).await.unwrap();
    let from = store.list(Kind::IpPool, None).await.unwrap().revision;
    let mut w = store.watch(&[Kind::IpPool], from).await.unwrap();
    // One process after another, each waited for: every wake-up, not only
    // the first, must arrive.
    for n in 0..3 {
        let name = format!("p{n}");
        let out = done(tabbyctl(
            &db,
            &["apply", "-f", "-"],
            Some(&pool_yaml(&name, n, None, false)),
        ));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            next_event(&mut w, &name).await,
            (EventType::Added, name.clone())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_from_another_connection_wakes_the_watch_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tabby.db");
    let reader = SqliteStore::open_with(&db, NO_POLL).await.unwrap();
    let writer = SqliteStore::open_with(&db, NO_POLL).await.unwrap();
    let from = reader.list(Kind::IpPool, None).await.unwrap().revision;
    let mut w = reader.watch(&[Kind::IpPool], from).await.unwrap();
    let burst = tokio::spawn(async move {
        for n in 0..50u8 {
            let mut spec = IpPoolSpec {
                cidr: format!("10.30.{n}.0/24"),
                ..Default::default()
            };
            spec.fill_defaults(false);
            let pool = Object::new("IPPool", &format!("b{n}"), spec);
            writer.create(Resource::IpPool(pool)).await.unwrap();
        }
    });
    for n in 0..50 {
        let name = format!("b{n}");
        assert_eq!(next_event(&mut w, &name).await, (EventType::Added, name));
    }
    burst.await.unwrap();
}

/// Nodes started together open the same new file at once (the lab, or a
/// host whose tabby-node and tabbyctl start side by side). Switching a new
/// file to WAL and creating the schema race in ways SQLite reports as
/// "database is locked" without waiting; every open must still succeed.
#[test]
fn many_openers_of_one_new_file_all_succeed() {
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("fresh.db");
        let openers: Vec<_> = (0..8)
            .map(|_| {
                let db = db.clone();
                std::thread::spawn(move || {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap()
                        .block_on(SqliteStore::open(&db))
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                })
            })
            .collect();
        for o in openers {
            let r = o.join().unwrap();
            assert!(r.is_ok(), "round {round}: {r:?}");
        }
    }
}
