//! Running code inside a named network namespace (`ip netns add NAME`).
//!
//! A netlink socket belongs to the namespace of the thread that opens it, so
//! the work runs on a fresh thread that first joins the namespace; the
//! caller's thread never changes namespace. The lab and the tests use this to
//! drive one node's dataplane from one process.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("network namespace {name}: cannot open {path}: {source}")]
    Open {
        name: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("network namespace {name}: setns failed: {source}")]
    Enter {
        name: String,
        source: std::io::Error,
    },
    #[error("network namespace {name}: the thread running the work panicked")]
    Panicked { name: String },
    #[error("network namespace {name}: cannot start a tokio runtime: {source}")]
    Runtime {
        name: String,
        source: std::io::Error,
    },
}

/// Path `ip netns` uses for a named namespace.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from("/var/run/netns").join(name)
}

/// Moves the calling thread into namespace `name` (for a thread that is
/// dedicated to that namespace, such as the reconciler's).
pub fn enter_current_thread(name: &str) -> Result<(), NetnsError> {
    setns(&open(&path(name), name)?, name)
}

/// Runs `f` on a new thread inside namespace `name` and returns its result.
pub fn run_in<T, F>(name: &str, f: F) -> Result<T, NetnsError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    run_in_file(open(&path(name), name)?, name.to_string(), f)
}

/// Runs an async body inside namespace `name` on its own current-thread
/// tokio runtime (sockets opened by the body live in that namespace).
pub fn block_on_in<T, Fut, F>(name: &str, f: F) -> Result<T, NetnsError>
where
    T: Send + 'static,
    Fut: std::future::Future<Output = T>,
    F: FnOnce() -> Fut + Send + 'static,
{
    // Building the runtime fails when the process is out of file
    // descriptors (it needs an epoll fd and an eventfd): report it, not panic.
    let owned = name.to_string();
    run_in(name, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| NetnsError::Runtime {
                name: owned,
                source,
            })?;
        Ok(rt.block_on(f()))
    })?
}

/// Moves the calling thread into the namespace at `path` (a bind mount such
/// as `/var/run/netns/NAME` or `/proc/PID/ns/net`, which is what a CNI
/// runtime passes in `CNI_NETNS`).
pub fn enter_path_current_thread(path: &Path) -> Result<(), NetnsError> {
    let name = path.display().to_string();
    setns(&open(path, &name)?, &name)
}

/// [`run_in`] for a namespace given by path rather than `ip netns` name.
pub fn run_in_path<T, F>(path: &Path, f: F) -> Result<T, NetnsError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let name = path.display().to_string();
    run_in_file(open(path, &name)?, name, f)
}

fn open(path: &Path, name: &str) -> Result<File, NetnsError> {
    File::open(path).map_err(|source| NetnsError::Open {
        name: name.to_string(),
        path: path.to_path_buf(),
        source,
    })
}

fn setns(file: &File, name: &str) -> Result<(), NetnsError> {
    // SAFETY: setns on a valid fd we own; affects only this thread.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(NetnsError::Enter {
            name: name.to_string(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// The namespace is opened in the caller's thread (so a missing one is
/// reported before a thread is spawned) and that same fd is entered.
fn run_in_file<T, F>(file: File, name: String, f: F) -> Result<T, NetnsError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let owned = name.clone();
    let handle = std::thread::spawn(move || -> Result<T, NetnsError> {
        setns(&file, &owned)?;
        drop(file);
        Ok(f())
    });
    handle.join().map_err(|_| NetnsError::Panicked { name })?
}
