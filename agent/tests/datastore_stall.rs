//! Issue 15 items 12 and 13: a datastore that stops answering (etcd under
//! SIGSTOP, a SQLite write lock held by another process) is noticed within
//! seconds, shown as not in sync (what readiness and `node status` read),
//! logged once when lost and once when back, with how long it was gone
//! and the revision the watch resumed from; a datastore that is down
//! makes a handful of WARN lines, not one per kind per retry.

mod common;

use common::Etcd;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tabby_agent::cache::ClusterCache;
use tabby_agent::datastore::sqlite::SqliteStore;
use tabby_agent::datastore::Datastore;
use tabby_agent::node::cluster::KINDS;
use tabby_agent::resources::ippool::IpPoolSpec;
use tabby_agent::resources::{Kind, Object, Resource};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn lines(&self, needle: &str) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }
    fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

/// One subscriber for the whole test binary; each test filters the lines
/// by its own marker (the tests of this file run one at a time, see
/// `SERIAL`).
fn logs() -> Capture {
    static CAPTURE: std::sync::OnceLock<Capture> = std::sync::OnceLock::new();
    CAPTURE
        .get_or_init(|| {
            let c = Capture::default();
            let w = c.clone();
            tracing_subscriber::fmt()
                .with_env_filter("tabby_agent=info")
                .with_writer(move || w.clone())
                .with_ansi(false)
                .init();
            c
        })
        .clone()
}

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn pool(name: &str, cidr: &str) -> Resource {
    let mut spec = IpPoolSpec {
        cidr: cidr.into(),
        ..Default::default()
    };
    spec.fill_defaults(false);
    Resource::IpPool(Object::new("IPPool", name, spec))
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on the test's own child process.
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    assert_eq!(rc, 0, "kill {pid}: {}", std::io::Error::last_os_error());
}

async fn wait(what: &str, secs: u64, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "{what}: not within {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    t0.elapsed()
}

fn stall_error(cache: &ClusterCache) -> Option<String> {
    cache
        .status()
        .into_iter()
        .find(|k| !k.ready)
        .map(|k| k.error.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_etcd_is_noticed_reported_and_its_return_logged() {
    let _serial = SERIAL.lock().await;
    let logs = logs();
    let etcd = Etcd::start().await;
    let ds = etcd.client().await;
    ds.create(pool("before", "10.50.0.0/16")).await.unwrap();
    let (cache, _reflectors) = ClusterCache::follow(ds.clone(), KINDS);
    assert!(cache.wait_ready(KINDS, Duration::from_secs(10)).await);
    logs.clear();

    signal(etcd.pid(), libc::SIGSTOP);
    let noticed = wait("the stall noticed", 15, || !cache.ready(KINDS)).await;
    eprintln!("FIGURE: a SIGSTOPped etcd was noticed after {noticed:?}");
    let why = stall_error(&cache).unwrap();
    assert!(why.contains("not responding"), "{why}");
    // The outage goes on; it is logged once, not once per kind or retry.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let lost = logs.lines("datastore not responding");
    assert_eq!(lost.len(), 1, "{lost:#?}");
    assert!(lost[0].contains("WARN"), "{lost:?}");
    let warns = logs.lines(" WARN ");
    assert_eq!(warns.len(), 1, "{warns:#?}");

    signal(etcd.pid(), libc::SIGCONT);
    let back = wait("the cache in sync again", 20, || cache.ready(KINDS)).await;
    eprintln!("FIGURE: in sync again {back:?} after SIGCONT");
    ds.create(pool("after", "10.51.0.0/16")).await.unwrap();
    wait("a change after the outage arrives", 10, || {
        cache.get(Kind::IpPool, "after").is_some()
    })
    .await;
    let mut back = Vec::new();
    wait("the return logged", 10, || {
        back = logs.lines("datastore back");
        !back.is_empty()
    })
    .await;
    assert_eq!(back.len(), 1, "{back:#?}");
    eprintln!("FIGURE: lost: {}\nFIGURE: back: {}", lost[0], back[0]);
    assert!(back[0].contains("resumed from revision"), "{back:?}");
    assert!(back[0].contains("gone_secs="), "{back:?}");
    assert!(stall_error(&cache).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_write_lock_held_too_long_is_a_stall() {
    let _serial = SERIAL.lock().await;
    let logs = logs();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tabby.db");
    let ds: Arc<dyn Datastore> = Arc::new(SqliteStore::open(&path).await.unwrap());
    let (cache, _reflectors) = ClusterCache::follow(ds.clone(), KINDS);
    assert!(cache.wait_ready(KINDS, Duration::from_secs(10)).await);
    logs.clear();

    // Another process (here: another connection) takes the write lock
    // and sits on it.
    let (release, released) = std::sync::mpsc::channel::<()>();
    let p = path.clone();
    let holder = std::thread::spawn(move || {
        let c = rusqlite::Connection::open(p).unwrap();
        c.execute_batch("BEGIN IMMEDIATE").unwrap();
        let _ = released.recv();
        c.execute_batch("COMMIT").unwrap();
    });
    let noticed = wait("the held lock noticed", 15, || !cache.ready(KINDS)).await;
    eprintln!("FIGURE: a held SQLite write lock was noticed after {noticed:?}");
    let why = stall_error(&cache).unwrap();
    assert!(why.contains("write lock"), "{why}");
    release.send(()).unwrap();
    holder.join().unwrap();
    wait("in sync again", 15, || cache.ready(KINDS)).await;
    let mut back = Vec::new();
    wait("the return logged", 10, || {
        back = logs.lines("datastore back");
        !back.is_empty()
    })
    .await;
    assert_eq!(logs.lines("datastore not responding").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_etcd_makes_a_few_short_warnings_not_one_per_retry() {
    let _serial = SERIAL.lock().await;
    let logs = logs();
    let etcd = Etcd::start().await;
    let ds = etcd.client().await;
    let (cache, _reflectors) = ClusterCache::follow(ds.clone(), KINDS);
    assert!(cache.wait_ready(KINDS, Duration::from_secs(10)).await);
    logs.clear();
    drop(etcd);
    tokio::time::sleep(Duration::from_secs(20)).await;
    let warns = logs.lines(" WARN ");
    eprintln!(
        "FIGURE: {} WARN lines in 20 s with etcd down ({} kinds followed)",
        warns.len(),
        KINDS.len()
    );
    assert!(warns.len() <= 3, "{} lines: {warns:#?}", warns.len());
    for w in &warns {
        eprintln!("FIGURE: {} chars: {w}", w.len());
    }
    for w in &warns {
        assert!(w.len() <= 300, "{} characters: {w}", w.len());
    }
    assert!(!cache.ready(KINDS));
}
