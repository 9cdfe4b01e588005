//! Running a real tabby-node in a test's network namespace, the one way the
//! `node_*` tests do it: a clean environment (only what the test sets),
//! one SQLite datastore, a run dir for its socket, its log in a file.
//! A test crate that uses it declares `mod netns` (bgp/tests/common) too.

use crate::netns::Netns;
use std::path::Path;
use std::process::{Child, Stdio};

/// A running tabby-node, killed on drop.
pub struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        // SIGCONT first: a stopped (frozen) node must still die.
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.0.id().to_string()])
            .output();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// tabby-node `name` in `ns` on the SQLite file `db`, serving its socket
/// in `run_dir`, logging to `log`, with `env` on top.
pub fn spawn(
    ns: &Netns,
    name: &str,
    db: &Path,
    run_dir: &Path,
    log: &Path,
    env: &[(&str, &str)],
) -> Daemon {
    let log = std::fs::File::create(log).unwrap();
    let mut c = ns.command("env");
    c.arg("-i")
        .arg("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .arg(format!("NODENAME={name}"))
        .arg("DATASTORE_TYPE=sqlite")
        .arg(format!("TABBY_DATASTORE={}", db.display()))
        .arg(format!("TABBY_RUN_DIR={}", run_dir.display()))
        .arg("TABBY_LOG=info");
    for (k, v) in env {
        c.arg(format!("{k}={v}"));
    }
    c.arg(env!("CARGO_BIN_EXE_tabby-node"));
    Daemon(
        c.stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn tabby-node"),
    )
}

/// A mesh node as the two-node tests run it: `dir/tabby.db` shared,
/// `dir/<name>/run`, `dir/<name>.log`, short BGP timers.
pub fn mesh_node(ns: &Netns, name: &str, dir: &Path) -> Daemon {
    spawn(
        ns,
        name,
        &dir.join("tabby.db"),
        &dir.join(name).join("run"),
        &dir.join(format!("{name}.log")),
        &[
            ("TABBY_BGP_HOLD_TIME", "3"),
            ("TABBY_BGP_CONNECT_RETRY", "1"),
        ],
    )
}
