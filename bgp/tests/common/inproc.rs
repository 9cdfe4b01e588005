//! Sockets of an in-process speaker inside a test namespace: the network
//! namespace is per thread, so a runtime built on a thread that entered
//! the namespace has all its workers (and their sockets) there.

use super::netns::Netns;
use std::os::fd::AsRawFd;

fn enter(name: &str) {
    let path = format!("/run/netns/{name}");
    let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
    // SAFETY: setns on a valid namespace fd only changes this thread's
    // network namespace.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {name}: {}", std::io::Error::last_os_error());
}

/// A tokio runtime whose worker threads live in `ns`.
pub fn runtime(ns: &Netns) -> tokio::runtime::Runtime {
    let name = ns.name.clone();
    std::thread::spawn(move || {
        enter(&name);
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
    .join()
    .expect("runtime thread")
}

/// Runs `fut` on one of the runtime's workers (which live in the runtime's
/// namespace) and waits for it. `block_on` alone would run it on the
/// caller's thread, in the caller's namespace.
pub fn in_ns<T: Send + 'static>(
    rt: &tokio::runtime::Runtime,
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    rt.block_on(rt.spawn(fut))
        .expect("task inside the namespace panicked")
}
