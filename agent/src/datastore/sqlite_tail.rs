//! Reading the SQLite event log for watchers.
//!
//! The Kubernetes-style cache runs one watch per kind (a dozen per
//! tabby-node), and every commit anywhere in the cluster wakes all of them.
//! Each reading the log on its own was a dozen SQLite read transactions
//! and blocking-pool hand-offs per commit per node: in a 50-node lab,
//! ~15 ms of CPU per node for every block claim (`tests/bench-converge.sh`
//! prints the figure), which is what kept convergence there CPU-bound. So
//! a store handle keeps one [`Tail`]: the log's newest rows, read once per
//! wake-up by whichever watcher comes first and filtered in memory by every
//! watcher. The log stays the source of truth: the tail is a contiguous
//! copy of a stretch of it, a watcher behind the tail's start (or after a
//! compaction) reads the log itself, and the slow safety poll forces a
//! read for writers that send no wake-up.

use super::{decode, wants, Error, Kind, Revision, WatchEvent};
use super::{EventType, Resource};
use rusqlite::{params, Connection};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Rows one read returns at most; a full read leaves the tail marked as
/// behind, so the next fetch reads on.
const READ_LIMIT: usize = 1000;
/// The tail keeps at most this many rows and bytes of values: enough for
/// every watcher of a process to take a burst (an IPAM block is ~4 KB),
/// small beside the node's memory goal.
const KEEP_ROWS: usize = 512;
const KEEP_BYTES: usize = 1 << 20;

/// One event as the log stores it.
struct Row {
    rev: Revision,
    kind: Option<Kind>,
    name: String,
    ty: i64,
    value: Vec<u8>,
}

fn unavailable(e: impl std::fmt::Display) -> Error {
    Error::Unavailable(e.to_string())
}

/// Up to [`READ_LIMIT`] rows after `after`, oldest first, and whether the
/// limit was hit. `Compacted` when `after` is older than the log keeps.
fn read_rows(conn: &Connection, after: Revision) -> Result<(Vec<Row>, bool), Error> {
    let compacted: i64 = conn
        .prepare_cached("SELECT value FROM meta WHERE key = 'compacted'")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(unavailable)?;
    if (after as i64) < compacted {
        return Err(Error::Compacted {
            requested: after,
            compacted: compacted as Revision,
        });
    }
    let mut stmt = conn
        .prepare_cached(
            "SELECT revision, kind, name, type, value FROM events WHERE revision > ?1
             ORDER BY revision LIMIT ?2",
        )
        .map_err(unavailable)?;
    let rows = stmt
        .query_map(params![after as i64, READ_LIMIT as i64], |r| {
            Ok(Row {
                rev: r.get::<_, i64>(0)? as Revision,
                kind: Kind::from_kind_field(&r.get::<_, String>(1)?),
                name: r.get(2)?,
                ty: r.get(3)?,
                value: r.get(4)?,
            })
        })
        .map_err(unavailable)?;
    let rows = rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)?;
    let full = rows.len() >= READ_LIMIT;
    Ok((rows, full))
}

fn event_type(ty: i64) -> EventType {
    match ty {
        0 => EventType::Added,
        1 => EventType::Modified,
        _ => EventType::Deleted,
    }
}

/// The events of `kinds` among `rows` after `after`, decoded.
fn events<'a>(
    rows: impl IntoIterator<Item = &'a Row>,
    after: Revision,
    kinds: &[Kind],
) -> Result<Vec<WatchEvent>, Error> {
    let mut out = Vec::new();
    for r in rows {
        let Some(kind) = r.kind.filter(|k| r.rev > after && wants(kinds, *k)) else {
            continue;
        };
        let resource: Resource = decode(kind, &r.name, &r.value, r.rev)?;
        out.push(WatchEvent {
            revision: r.rev,
            event_type: event_type(r.ty),
            resource,
        });
    }
    Ok(out)
}

/// One watcher reading the log itself: the matching events after `after`
/// and how far it scanned.
pub(super) fn fetch_events(
    conn: &Connection,
    after: Revision,
    kinds: &[Kind],
) -> Result<(Vec<WatchEvent>, Revision), Error> {
    let (rows, _) = read_rows(conn, after)?;
    let cursor = rows.last().map_or(after, |r| r.rev);
    Ok((events(&rows, after, kinds)?, cursor))
}

/// The newest stretch of the log, shared by one store handle's watchers.
pub(super) struct Tail {
    inner: tokio::sync::Mutex<Inner>,
}

/// Opens a read connection the way the store opens its own.
pub(super) type Opener = fn(&Path) -> Result<Connection, Error>;

struct Inner {
    path: PathBuf,
    open: Opener,
    /// The tail's own read connection, opened on first use.
    conn: Option<Arc<Mutex<Connection>>>,
    /// Every event with a revision in (base, last], oldest first; `None`
    /// until the first fetch places the tail.
    span: Option<(Revision, Revision)>,
    rows: VecDeque<Row>,
    bytes: usize,
    /// The wake-up generation the last complete read started at: a read
    /// that starts after a wake-up sees the commit behind it.
    read_gen: Option<u64>,
}

/// What a watcher's fetch is told.
pub(super) struct Fetch<'a> {
    pub after: Revision,
    pub kinds: &'a [Kind],
    /// The wake-up generation now (`Signal::generation`).
    pub generation: u64,
    /// Read the log even if no wake-up came: the safety poll fired.
    pub force: bool,
}

impl Tail {
    pub(super) fn new(path: PathBuf, open: Opener) -> Tail {
        Tail {
            inner: tokio::sync::Mutex::new(Inner {
                path,
                open,
                conn: None,
                span: None,
                rows: VecDeque::new(),
                bytes: 0,
                read_gen: None,
            }),
        }
    }

    /// The matching events after `f.after` and the cursor to go on from;
    /// `None` when the tail cannot answer (the watcher is behind its
    /// start, or the log was compacted under it): the watcher reads the
    /// log itself.
    pub(super) async fn fetch(
        &self,
        f: Fetch<'_>,
    ) -> Result<Option<(Vec<WatchEvent>, Revision)>, Error> {
        let mut t = self.inner.lock().await;
        let (base, last) = *t.span.get_or_insert((f.after, f.after));
        if f.after < base {
            return Ok(None);
        }
        let behind = f.after > last || t.read_gen != Some(f.generation);
        if f.force || behind {
            let conn = match &t.conn {
                Some(c) => c.clone(),
                None => {
                    let (path, open) = (t.path.clone(), t.open);
                    let c = tokio::task::spawn_blocking(move || open(&path))
                        .await
                        .map_err(unavailable)??;
                    t.conn.insert(Arc::new(Mutex::new(c))).clone()
                }
            };
            let read = tokio::task::spawn_blocking(move || {
                let g = conn.lock().unwrap_or_else(|p| p.into_inner());
                read_rows(&g, last)
            })
            .await
            .map_err(unavailable)?;
            let (rows, full) = match read {
                Ok(r) => r,
                Err(Error::Compacted { .. }) => {
                    // Start again wherever the next watcher stands.
                    t.reset();
                    return Ok(None);
                }
                Err(e) => return Err(e),
            };
            t.read_gen = (!full).then_some(f.generation);
            t.append(rows);
        }
        let (_, last) = t.span.unwrap_or((f.after, f.after));
        if f.after > last {
            return Ok(None);
        }
        let start = t.rows.partition_point(|r| r.rev <= f.after);
        let evs = events(t.rows.range(start..), f.after, f.kinds)?;
        Ok(Some((evs, last)))
    }
}

impl Inner {
    fn reset(&mut self) {
        self.span = None;
        self.rows.clear();
        self.bytes = 0;
        self.read_gen = None;
    }

    fn append(&mut self, rows: Vec<Row>) {
        let Some((mut base, mut last)) = self.span else {
            return;
        };
        for r in rows {
            last = r.rev;
            self.bytes += r.value.len() + r.name.len();
            self.rows.push_back(r);
        }
        while self.rows.len() > KEEP_ROWS || self.bytes > KEEP_BYTES {
            let Some(r) = self.rows.pop_front() else {
                break;
            };
            self.bytes -= r.value.len() + r.name.len();
            base = r.rev;
        }
        self.span = Some((base, last));
    }
}
