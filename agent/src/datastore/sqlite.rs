//! The embedded default: one SQLite file (bundled SQLite, WAL) that several
//! `tabby-node` and `tabbyctl` processes on one host share. Every write is a
//! `BEGIN IMMEDIATE` transaction that checks the revision, bumps the
//! store-wide revision and appends to an event log; watchers in any process
//! follow the log, which is what makes watch work across processes.

use super::sqlite_tail::{fetch_events, Fetch, Tail};
use super::sqlite_wake::Signal;
pub use super::sqlite_wake::{WatchOptions, SAFETY_POLL};
use super::stream::polling_stream;
use super::*;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How many events the log keeps; a watch from further back gets
/// `Compacted` and must list again, as with etcd.
const EVENT_HISTORY: u64 = 100_000;
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct SqliteStore {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
    /// The ping's own connection (opened on first use): it must not queue
    /// behind this handle's writes, which is what it measures.
    ping: Arc<Mutex<Option<Connection>>>,
    /// Wakes watchers after a commit (sqlite_wake.rs).
    signal: Arc<Signal>,
    /// The log's newest rows, read once per wake-up for every watcher of
    /// this handle (sqlite_tail.rs).
    tail: Arc<Tail>,
    watch: WatchOptions,
}

fn unavailable(e: impl std::fmt::Display) -> Error {
    Error::Unavailable(e.to_string())
}

pub(super) fn open_conn(path: &Path) -> Result<Connection, Error> {
    let conn = Connection::open(path)
        .map_err(|e| Error::Unavailable(format!("opening {}: {e}", path.display())))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(unavailable)?;
    retry_busy(|| conn.pragma_update(None, "journal_mode", "WAL"))?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(unavailable)?;
    Ok(conn)
}

/// Runs `f` again while SQLite reports the database busy, up to
/// [`BUSY_TIMEOUT`]: the busy handler does not cover switching a new file
/// to WAL or a lock upgrade that could deadlock, which is exactly what two
/// processes opening the same new file at once run into.
fn retry_busy<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> Result<T, Error> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match f() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            r => return r.map_err(unavailable),
        }
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('revision', 0), ('compacted', 0);
CREATE TABLE IF NOT EXISTS resources (
    kind TEXT NOT NULL, name TEXT NOT NULL, value BLOB NOT NULL,
    mod_revision INTEGER NOT NULL, PRIMARY KEY (kind, name));
CREATE TABLE IF NOT EXISTS events (
    revision INTEGER PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL,
    type INTEGER NOT NULL, value BLOB NOT NULL);
";

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`.
    pub async fn open(path: &Path) -> Result<SqliteStore, Error> {
        SqliteStore::open_with(path, WatchOptions::from_env()).await
    }

    /// As [`SqliteStore::open`], with how its watchers wait spelled out.
    pub async fn open_with(path: &Path, watch: WatchOptions) -> Result<SqliteStore, Error> {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Error::Unavailable(format!("creating {}: {e}", dir.display())))?;
            }
            let conn = open_conn(&path)?;
            // The write lock is taken up front: `CREATE TABLE IF NOT EXISTS`
            // in autocommit reads the schema and then upgrades, and SQLite
            // answers an upgrade race with SQLITE_BUSY at once, without the
            // busy handler (two nodes opening a new file together).
            retry_busy(|| conn.execute_batch(&format!("BEGIN IMMEDIATE;{SCHEMA}COMMIT;")))?;
            Ok(SqliteStore {
                signal: Arc::new(Signal::new(&path)),
                tail: Arc::new(Tail::new(path.clone(), open_conn)),
                path,
                conn: Arc::new(Mutex::new(conn)),
                ping: Arc::default(),
                watch,
            })
        })
        .await
        .map_err(unavailable)?
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut g = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut g)
        })
        .await
        .map_err(unavailable)?
    }

    /// One write: checks `check` against the current row inside an
    /// IMMEDIATE transaction, then writes the row and the event at the next
    /// revision.
    async fn write(
        &self,
        kind: Kind,
        name: String,
        check: impl FnOnce(Option<(Vec<u8>, Revision)>) -> Result<WriteOp, Error> + Send + 'static,
    ) -> Result<Resource, Error> {
        let signal = self.signal.clone();
        self.run(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            let op = check(current_row(&tx, kind, &name)?)?;
            let rev = apply(&tx, kind, &name, &op)?;
            tx.commit().map_err(unavailable)?;
            signal.committed(rev);
            let bytes = match op {
                WriteOp::Put { value, .. } => value,
                WriteOp::Delete { last } => last,
            };
            decode(kind, &name, &bytes, rev)
        })
        .await
    }
}

fn current_row(
    tx: &rusqlite::Transaction,
    kind: Kind,
    name: &str,
) -> Result<Option<(Vec<u8>, Revision)>, Error> {
    let row: Option<(Vec<u8>, i64)> = tx
        .query_row(
            "SELECT value, mod_revision FROM resources WHERE kind = ?1 AND name = ?2",
            params![kind.as_str(), name],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(unavailable)?;
    Ok(row.map(|(v, r)| (v, r as Revision)))
}

/// Writes the row and its event at the next store revision, inside `tx`.
fn apply(
    tx: &rusqlite::Transaction,
    kind: Kind,
    name: &str,
    op: &WriteOp,
) -> Result<Revision, Error> {
    let rev: i64 = tx
        .query_row(
            "UPDATE meta SET value = value + 1 WHERE key = 'revision' RETURNING value",
            [],
            |r| r.get(0),
        )
        .map_err(unavailable)?;
    let (ty, value) = match op {
        WriteOp::Put { value, created } => {
            tx.execute(
                "INSERT INTO resources (kind, name, value, mod_revision) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (kind, name) DO UPDATE SET value = ?3, mod_revision = ?4",
                params![kind.as_str(), name, value, rev],
            )
            .map_err(unavailable)?;
            (if *created { 0 } else { 1 }, value)
        }
        WriteOp::Delete { last } => {
            tx.execute(
                "DELETE FROM resources WHERE kind = ?1 AND name = ?2",
                params![kind.as_str(), name],
            )
            .map_err(unavailable)?;
            (2, last)
        }
    };
    tx.execute(
        "INSERT INTO events (revision, kind, name, type, value) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![rev, kind.as_str(), name, ty, value],
    )
    .map_err(unavailable)?;
    if (rev as u64).is_multiple_of(1000) && rev as u64 > EVENT_HISTORY {
        let keep_from = rev - EVENT_HISTORY as i64;
        tx.execute("DELETE FROM events WHERE revision < ?1", params![keep_from])
            .map_err(unavailable)?;
        tx.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'compacted'",
            params![keep_from - 1],
        )
        .map_err(unavailable)?;
    }
    Ok(rev as Revision)
}

enum WriteOp {
    Put { value: Vec<u8>, created: bool },
    Delete { last: Vec<u8> },
}

#[async_trait]
impl Datastore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    /// See [`super::sqlite_ping`]: a writer sitting on the write lock is
    /// what stalls a SQLite store.
    async fn ping(&self) -> Result<(), Error> {
        let (path, ping) = (self.path.clone(), self.ping.clone());
        tokio::task::spawn_blocking(move || super::sqlite_ping::ping(&path, &ping, open_conn))
            .await
            .map_err(unavailable)?
    }

    async fn get(&self, kind: Kind, name: &str) -> Result<Resource, Error> {
        let name = name.to_string();
        self.run(move |conn| {
            let row: Option<(Vec<u8>, i64)> = conn
                .query_row(
                    "SELECT value, mod_revision FROM resources WHERE kind = ?1 AND name = ?2",
                    params![kind.as_str(), name],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(unavailable)?;
            match row {
                Some((v, rev)) => decode(kind, &name, &v, rev as Revision),
                None => Err(Error::NotFound { kind, name }),
            }
        })
        .await
    }

    async fn list(&self, kind: Kind, name_prefix: Option<&str>) -> Result<ListResult, Error> {
        let prefix = name_prefix.unwrap_or("").to_string();
        self.run(move |conn| {
            // One read transaction so the items and the revision agree.
            let tx = conn.transaction().map_err(unavailable)?;
            let revision: i64 = tx
                .query_row("SELECT value FROM meta WHERE key = 'revision'", [], |r| {
                    r.get(0)
                })
                .map_err(unavailable)?;
            let mut items = Vec::new();
            {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT name, value, mod_revision FROM resources
                         WHERE kind = ?1 AND substr(name, 1, length(?2)) = ?2 ORDER BY name",
                    )
                    .map_err(unavailable)?;
                let rows = stmt
                    .query_map(params![kind.as_str(), prefix], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, Vec<u8>>(1)?,
                            r.get::<_, i64>(2)?,
                        ))
                    })
                    .map_err(unavailable)?;
                for row in rows {
                    let (name, v, rev) = row.map_err(unavailable)?;
                    items.push(decode(kind, &name, &v, rev as Revision)?);
                }
            }
            Ok(ListResult {
                items,
                revision: revision as Revision,
            })
        })
        .await
    }

    async fn create(&self, mut resource: Resource) -> Result<Resource, Error> {
        prepare_create(&mut resource);
        let (kind, name) = (resource.kind(), resource.key_name());
        let value = stored_bytes(&resource)?;
        let n = name.clone();
        self.write(kind, name, move |cur| match cur {
            Some(_) => Err(Error::AlreadyExists { kind, name: n }),
            None => Ok(WriteOp::Put {
                value,
                created: true,
            }),
        })
        .await
    }

    async fn update(&self, resource: Resource) -> Result<Resource, Error> {
        let expected = required_revision(&resource)?;
        let (kind, name) = (resource.kind(), resource.key_name());
        let value = stored_bytes(&resource)?;
        let n = name.clone();
        self.write(kind, name, move |cur| match cur {
            None => Err(Error::NotFound { kind, name: n }),
            Some((_, current)) if current != expected => Err(Error::Conflict {
                kind,
                name: n,
                expected,
                current,
            }),
            Some(_) => Ok(WriteOp::Put {
                value,
                created: false,
            }),
        })
        .await
    }

    async fn delete(
        &self,
        kind: Kind,
        name: &str,
        revision: Option<Revision>,
    ) -> Result<Resource, Error> {
        let n = name.to_string();
        self.write(kind, name.to_string(), move |cur| match cur {
            None => Err(Error::NotFound { kind, name: n }),
            Some((_, current)) if revision.is_some_and(|r| r != current) => Err(Error::Conflict {
                kind,
                name: n,
                expected: revision.unwrap_or_default(),
                current,
            }),
            Some((last, _)) => Ok(WriteOp::Delete { last }),
        })
        .await
    }

    async fn transact(&self, writes: Vec<TxnWrite>) -> Result<Vec<Revision>, Error> {
        let signal = self.signal.clone();
        self.run(move |conn| {
            // One IMMEDIATE transaction: every check, then every write. Each
            // write gets its own revision (the event log has one event per
            // revision); readers see all of them or none.
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            let mut ops = Vec::with_capacity(writes.len());
            for w in writes {
                let (kind, name) = w.target();
                let cur = current_row(&tx, kind, &name)?;
                w.check(cur.as_ref().map(|c| c.1))?;
                let op = match w {
                    TxnWrite::Create(mut r) => {
                        prepare_create(&mut r);
                        WriteOp::Put {
                            value: stored_bytes(&r)?,
                            created: true,
                        }
                    }
                    TxnWrite::Update(r) => WriteOp::Put {
                        value: stored_bytes(&r)?,
                        created: false,
                    },
                    TxnWrite::Delete { .. } => WriteOp::Delete {
                        last: cur.map(|c| c.0).unwrap_or_default(),
                    },
                };
                ops.push((kind, name, op));
            }
            let mut revs = Vec::with_capacity(ops.len());
            for (kind, name, op) in &ops {
                revs.push(apply(&tx, *kind, name, op)?);
            }
            tx.commit().map_err(unavailable)?;
            if let Some(&last) = revs.last() {
                signal.committed(last);
            }
            Ok(revs)
        })
        .await
    }

    async fn watch(&self, kinds: &[Kind], from: Revision) -> Result<WatchStream, Error> {
        // A watch behind the shared tail (or after a compaction) reads the
        // log through its own connection, opened when first needed, so
        // that it never waits behind this handle's writes.
        let path = self.path.clone();
        let own: Arc<Mutex<Option<Connection>>> = Arc::default();
        let kinds = kinds.to_vec();
        // Subscribed before the first read, so a commit between the two
        // wakes the second.
        let signal = self.signal.clone();
        let opts = self.watch;
        let waiter = tokio::task::spawn_blocking({
            let signal = signal.clone();
            move || signal.waiter(opts)
        })
        .await
        .map_err(unavailable)?;
        // Set when the last wait ended without a wake-up: the safety poll
        // (or polling only) reads the log whatever the tail thinks.
        let force = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tail = self.tail.clone();
        let force_w = force.clone();
        Ok(polling_stream(
            from,
            move |after| {
                let (own, kinds, path) = (own.clone(), kinds.clone(), path.clone());
                let (tail, force, signal) = (tail.clone(), force.clone(), signal.clone());
                async move {
                    let f = Fetch {
                        after,
                        kinds: &kinds,
                        generation: signal.generation(),
                        force: force.swap(false, std::sync::atomic::Ordering::AcqRel),
                    };
                    if let Some(r) = tail.fetch(f).await? {
                        return Ok(r);
                    }
                    tokio::task::spawn_blocking(move || {
                        let mut g = own.lock().unwrap_or_else(|p| p.into_inner());
                        let conn = match &mut *g {
                            Some(c) => c,
                            slot @ None => slot.insert(open_conn(&path)?),
                        };
                        fetch_events(conn, after, &kinds)
                    })
                    .await
                    .map_err(unavailable)?
                }
            },
            move || {
                let (waiter, force) = (waiter.clone(), force_w.clone());
                async move {
                    if !waiter.wait().await {
                        force.store(true, std::sync::atomic::Ordering::Release);
                    }
                }
            },
        ))
    }
}
