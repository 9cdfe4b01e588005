//! How SQLite watchers learn that the event log grew, without polling it.
//!
//! The event log stays the only source of truth: a wake-up only says "read
//! the log now", and a watcher reads everything after its cursor, so a
//! wake-up that coalesces many writes, arrives twice or arrives for nothing
//! costs one read and loses nothing.
//!
//! - Within one process, a commit bumps a `tokio::sync::watch` counter per
//!   database: a bump made while the watcher reads is seen by its next wait
//!   (the channel remembers it), so none is lost, and a burst is one read.
//! - Across processes (every lab node, the CNI plugin and `tabbyctl` open
//!   the same file), a commit then writes its revision into a small sidecar
//!   file, `<db>-wake`, which each watching process follows with one
//!   inotify instance. The sidecar, not the `-wal` file, because SQLite
//!   writes the WAL frames before it publishes them in the shared-memory
//!   index (an mmap store, which inotify never sees): a reader woken by the
//!   WAL write can look before the commit is visible and would then sleep
//!   with the event unread. The sidecar is written after `COMMIT` returns.
//! - A slow safety poll ([`SAFETY_POLL`]) remains for what sends no
//!   wake-up: a writer that is not Tabby (the `sqlite3` shell, an older
//!   Tabby during an upgrade), no inotify (the per-user instance limit,
//!   128 by default, or a filesystem without it), an inotify queue
//!   overflow, or a deleted sidecar until it is watched again.

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::watch;

/// The poll behind the wake-up: long, because it only bounds the delay of
/// what sends none (module doc).
pub const SAFETY_POLL: Duration = Duration::from_secs(2);

/// Bench-only: `TABBY_SQLITE_WATCH_POLL_MS=100` turns the wake-up off and
/// polls every 100 ms, as the store did before it had one, for the
/// reference row of `tests/bench-converge.sh`.
const POLL_ENV: &str = "TABBY_SQLITE_WATCH_POLL_MS";

/// How a store's watchers wait for new events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchOptions {
    /// Wake on commits (this process's and, through the sidecar, others').
    pub wake: bool,
    /// Read the log at least this often.
    pub poll: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            wake: true,
            poll: SAFETY_POLL,
        }
    }
}

impl WatchOptions {
    /// The default, or polling only when the bench's variable is set.
    pub fn from_env() -> WatchOptions {
        match std::env::var(POLL_ENV)
            .ok()
            .map(|v| v.trim().parse::<u64>())
        {
            Some(Ok(ms)) if ms > 0 => WatchOptions {
                wake: false,
                poll: Duration::from_millis(ms),
            },
            Some(_) => {
                tracing::warn!(
                    "{POLL_ENV}: expected a number of milliseconds above 0; using the wake-up"
                );
                WatchOptions::default()
            }
            None => WatchOptions::default(),
        }
    }
}

/// The sidecar a commit writes to wake other processes.
pub(super) fn wake_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push("-wake");
    PathBuf::from(s)
}

/// One database's in-process channel, and whether its sidecar is watched.
struct Channel {
    tx: watch::Sender<u64>,
    armed: AtomicBool,
}

/// Per canonical sidecar path. Entries live as long as the process: a
/// process follows a handful of databases.
fn channels() -> &'static Mutex<HashMap<PathBuf, Arc<Channel>>> {
    static C: OnceLock<Mutex<HashMap<PathBuf, Arc<Channel>>>> = OnceLock::new();
    C.get_or_init(Default::default)
}

fn channel(key: &Path) -> Arc<Channel> {
    let mut g = channels().lock().unwrap_or_else(|p| p.into_inner());
    g.entry(key.to_path_buf())
        .or_insert_with(|| {
            Arc::new(Channel {
                tx: watch::channel(0).0,
                armed: AtomicBool::new(false),
            })
        })
        .clone()
}

/// The process's one inotify instance and the channel behind each watch.
struct Hub {
    ino: Inotify,
    by_wd: Mutex<HashMap<i32, Arc<Channel>>>,
}

/// Started by the first watcher, so that a process that only writes (the
/// CNI plugin) never takes one of the user's inotify instances.
fn hub() -> Option<&'static Hub> {
    static H: OnceLock<Option<&'static Hub>> = OnceLock::new();
    *H.get_or_init(|| {
        let ino = match Inotify::init(InitFlags::IN_CLOEXEC) {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(
                    "SQLite watch: no inotify instance ({e}; fs.inotify.max_user_instances?): \
                     other processes' writes show within {} s",
                    SAFETY_POLL.as_secs()
                );
                return None;
            }
        };
        let hub: &'static Hub = Box::leak(Box::new(Hub {
            ino,
            by_wd: Mutex::default(),
        }));
        let spawned = std::thread::Builder::new()
            .name("sqlite-wake".into())
            .spawn(move || hub.run());
        if let Err(e) = spawned {
            tracing::warn!("SQLite watch: cannot start the inotify thread: {e}");
            return None;
        }
        Some(hub)
    })
}

impl Hub {
    fn run(&self) {
        loop {
            let events = match self.ino.read_events() {
                Ok(ev) => ev,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    tracing::warn!("SQLite watch: reading inotify failed ({e}); polling only");
                    let g = self.by_wd.lock().unwrap_or_else(|p| p.into_inner());
                    for ch in g.values() {
                        ch.armed.store(false, Ordering::Release);
                    }
                    return;
                }
            };
            let mut g = self.by_wd.lock().unwrap_or_else(|p| p.into_inner());
            for ev in events {
                if ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                    g.values().for_each(|ch| bump(&ch.tx));
                    continue;
                }
                let wd = ev.wd.as_raw();
                if ev.mask.contains(AddWatchFlags::IN_IGNORED) {
                    // The sidecar went away: its next waiter watches it again.
                    if let Some(ch) = g.remove(&wd) {
                        ch.armed.store(false, Ordering::Release);
                        bump(&ch.tx);
                    }
                } else if let Some(ch) = g.get(&wd) {
                    bump(&ch.tx);
                }
            }
        }
    }

    /// Watches the sidecar (creating it) for `ch`.
    fn arm(&self, sidecar: &Path, ch: &Arc<Channel>) {
        if let Err(e) = touch(sidecar) {
            tracing::debug!("SQLite watch: {}: {e}", sidecar.display());
            return;
        }
        let mask = AddWatchFlags::IN_MODIFY
            | AddWatchFlags::IN_ATTRIB
            | AddWatchFlags::IN_DELETE_SELF
            | AddWatchFlags::IN_MOVE_SELF;
        // Held across add_watch so that the thread cannot see the new wd's
        // first event before the wd is in the map.
        let mut g = self.by_wd.lock().unwrap_or_else(|p| p.into_inner());
        match self.ino.add_watch(sidecar, mask) {
            Ok(wd) => {
                g.insert(wd.as_raw(), ch.clone());
                ch.armed.store(true, Ordering::Release);
            }
            Err(e) => tracing::warn!(
                "SQLite watch: cannot watch {} ({e}): other processes' writes show within {} s",
                sidecar.display(),
                SAFETY_POLL.as_secs()
            ),
        }
    }
}

fn bump(tx: &watch::Sender<u64>) {
    tx.send_modify(|n| *n = n.wrapping_add(1));
}

fn touch(p: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(p)
}

/// The sidecar's canonical name: two handles on one database reach one
/// channel whatever path they were opened with.
fn key(sidecar: &Path) -> PathBuf {
    let _ = touch(sidecar);
    std::fs::canonicalize(sidecar).unwrap_or_else(|_| sidecar.to_path_buf())
}

/// The writer's side, one per store handle.
pub(super) struct Signal {
    sidecar: PathBuf,
    file: Mutex<Option<File>>,
    channel: Arc<Channel>,
}

impl Signal {
    /// Blocking (it may create the sidecar).
    pub(super) fn new(db: &Path) -> Signal {
        let sidecar = wake_path(db);
        let channel = channel(&key(&sidecar));
        Signal {
            sidecar,
            file: Mutex::new(None),
            channel,
        }
    }

    /// After a commit at `rev`: wakes this process's watchers, then other
    /// processes' through the sidecar. Blocking (one `pwrite`). A failure
    /// only delays other processes' watchers to the safety poll.
    pub(super) fn committed(&self, rev: u64) {
        bump(&self.channel.tx);
        let mut g = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            *g = touch(&self.sidecar).ok();
        }
        let ok = g
            .as_ref()
            .is_some_and(|f| f.write_at(&rev.to_le_bytes(), 0).is_ok());
        if !ok {
            // Deleted or unwritable: reopened (and recreated) next time.
            *g = None;
        }
    }

    /// What a new watch waits on.
    pub(super) fn waiter(&self, opts: WatchOptions) -> Waiter {
        if opts.wake {
            self.ensure_armed();
        }
        Waiter {
            rx: opts
                .wake
                .then(|| Arc::new(tokio::sync::Mutex::new(self.channel.tx.subscribe()))),
            sidecar: self.sidecar.clone(),
            channel: self.channel.clone(),
            poll: opts.poll,
        }
    }

    fn ensure_armed(&self) {
        ensure_armed(&self.sidecar, &self.channel);
    }

    /// How many wake-ups this process has seen for the database: a read of
    /// the log that starts after this value was taken sees every commit
    /// whose wake-up it counts (a wake-up is sent after its commit).
    pub(super) fn generation(&self) -> u64 {
        *self.channel.tx.borrow()
    }
}

fn ensure_armed(sidecar: &Path, ch: &Arc<Channel>) {
    if !ch.armed.load(Ordering::Acquire) {
        if let Some(h) = hub() {
            h.arm(sidecar, ch);
        }
    }
}

/// One watch's wait: a wake-up or the poll, whichever comes first.
#[derive(Clone)]
pub(super) struct Waiter {
    rx: Option<Arc<tokio::sync::Mutex<watch::Receiver<u64>>>>,
    sidecar: PathBuf,
    channel: Arc<Channel>,
    poll: Duration,
}

impl Waiter {
    /// True when a wake-up ended the wait, false when the poll did.
    pub(super) async fn wait(self) -> bool {
        let Some(rx) = self.rx else {
            tokio::time::sleep(self.poll).await;
            return false;
        };
        if !self.channel.armed.load(Ordering::Acquire) {
            let (sidecar, ch) = (self.sidecar.clone(), self.channel.clone());
            let _ = tokio::task::spawn_blocking(move || ensure_armed(&sidecar, &ch)).await;
        }
        let mut rx = rx.lock().await;
        // `changed` returns at once for a bump made since the last wait,
        // e.g. during the read that found nothing: no wake-up is lost. The
        // sender lives in the process-wide map, so it never closes.
        tokio::time::timeout(self.poll, rx.changed()).await.is_ok()
    }
}
