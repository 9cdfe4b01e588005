//! The SQLite store's health check. Readers never wait in WAL mode, so
//! what stalls the store is a writer sitting on the write lock (a stopped
//! `tabbyctl` mid-apply, a process stuck inside a transaction): every
//! write then waits out the busy timeout, with nothing in the logs. The
//! ping takes the write lock and lets go at once, on a connection of its
//! own so that it does not queue behind this process's own writes.

use super::Error;
use rusqlite::Connection;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// How long the ping waits for the write lock before calling it held too
/// long. Below the cluster cache's ping timeout, so the ping answers with
/// this reason rather than a bare timeout.
pub(super) const LOCK_TOO_LONG: Duration = Duration::from_secs(4);

/// Blocking: run it on a blocking thread. `slot` keeps the connection
/// between pings; `open` opens one as the store does.
pub(super) fn ping(
    path: &Path,
    slot: &Mutex<Option<Connection>>,
    open: fn(&Path) -> Result<Connection, Error>,
) -> Result<(), Error> {
    let mut g = slot.lock().unwrap_or_else(|p| p.into_inner());
    if g.is_none() {
        let c = open(path)?;
        c.busy_timeout(LOCK_TOO_LONG)
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        *g = Some(c);
    }
    let Some(c) = g.as_ref() else {
        return Err(Error::Unavailable("no ping connection".into()));
    };
    match c.execute_batch("BEGIN IMMEDIATE; ROLLBACK;") {
        Ok(()) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::DatabaseBusy =>
        {
            Err(Error::Unavailable(format!(
                "the SQLite write lock on {} has been held by another connection for over {} s",
                path.display(),
                LOCK_TOO_LONG.as_secs()
            )))
        }
        Err(e) => {
            // A broken connection is opened afresh next time.
            *g = None;
            Err(Error::Unavailable(e.to_string()))
        }
    }
}
