//! Throwaway network namespaces for the integration tests (and the route
//! benchmark), and thin wrappers over `ip`/`bridge`/`sh` for setting them up
//! and reading them back.
#![allow(dead_code)]

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A named network namespace deleted on drop (which also destroys every
/// veth, bridge and nft table inside it). Names carry the pid and a counter
/// so tests in parallel (and parallel test binaries) never collide.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("tabby-{tag}-{}-{n}", std::process::id());
        run("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n <ns> ARGS`, panicking with stderr on failure.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// `ip -n <ns> -j ARGS` parsed.
    pub fn ip_json(&self, args: &[&str]) -> serde_json::Value {
        let mut full = vec!["-j"];
        full.extend_from_slice(args);
        parse_json(&self.ip(&full))
    }

    /// `ip netns exec <ns> CMD ARGS`, returning (success, stdout+stderr).
    pub fn exec(&self, cmd: &str, args: &[&str]) -> (bool, String) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, cmd])
            .args(args)
            .output()
            .expect("ip netns exec runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// `ip netns exec <ns> sh -c CMD`, returning (success, stdout+stderr).
    pub fn sh(&self, cmd: &str) -> (bool, String) {
        self.exec("sh", &["-c", cmd])
    }

    /// Like [`Self::sh`] but panics when the command fails.
    pub fn must(&self, cmd: &str) -> String {
        let (ok, out) = self.sh(cmd);
        assert!(ok, "in {}: `{cmd}` failed: {out}", self.name);
        out
    }

    /// `bridge -n <ns> -j ARGS` parsed.
    pub fn bridge_json(&self, args: &[&str]) -> serde_json::Value {
        let mut full = vec!["-n", self.name.as_str(), "-j"];
        full.extend_from_slice(args);
        parse_json(&run("bridge", &full))
    }

    /// A veth pair with both ends in this namespace, both up.
    pub fn veth(&self, a: &str, b: &str) {
        self.ip(&["link", "add", a, "type", "veth", "peer", "name", b]);
        self.ip(&["link", "set", a, "up"]);
        self.ip(&["link", "set", b, "up"]);
    }

    /// A veth pair from this namespace (`a`) to `other` (`b`), both up,
    /// with the given addresses (empty = none).
    pub fn link_to(&self, a: &str, a_addr: &str, other: &Netns, b: &str, b_addr: &str) {
        self.ip(&[
            "link",
            "add",
            a,
            "type",
            "veth",
            "peer",
            "name",
            b,
            "netns",
            &other.name,
        ]);
        if !a_addr.is_empty() {
            self.ip(&["addr", "add", a_addr, "dev", a]);
        }
        if !b_addr.is_empty() {
            other.ip(&["addr", "add", b_addr, "dev", b]);
        }
        self.ip(&["link", "set", a, "up"]);
        other.ip(&["link", "set", b, "up"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn parse_json(text: &str) -> serde_json::Value {
    if text.trim().is_empty() {
        return serde_json::Value::Array(vec![]);
    }
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes; returns how
/// long it took, or panics with `what`.
pub fn wait_until(
    what: &str,
    timeout: std::time::Duration,
    mut cond: impl FnMut() -> bool,
) -> std::time::Duration {
    let start = std::time::Instant::now();
    loop {
        if cond() {
            return start.elapsed();
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A "node": a namespace with `eth0` (address `ip/24`) whose veth peer
/// `peer0` is in the same namespace.
pub fn node_with_eth0(tag: &str, cidr: &str) -> Netns {
    let ns = Netns::new(tag);
    ns.veth("eth0", "peer0");
    ns.ip(&["addr", "add", cidr, "dev", "eth0"]);
    ns
}

/// Adds a host-side workload veth `host_if` whose other end stays in the
/// node namespace (enough for a scope-link route to be programmed).
pub fn add_workload_veth(ns: &Netns, host_if: &str, pod_if: &str) {
    ns.veth(host_if, pod_if);
}

/// `ip -j route show proto 81` entries whose `dst` is `dst`.
pub fn tabby_route(ns: &Netns, dst: &str) -> Option<serde_json::Value> {
    ns.ip_json(&["route", "show", "proto", "81"])
        .as_array()
        .and_then(|a| a.iter().find(|r| r["dst"] == dst).cloned())
}

/// Hands `state` to the reconciler and waits (10 s at most) for the pass
/// that applied it, returning that pass's status.
pub fn apply(
    handle: &tabby_felix_lite::reconcile::ReconcilerHandle,
    state: tabby_felix_lite::model::DesiredState,
) -> tabby_felix_lite::reconcile::Status {
    let generation = handle.set_desired(state);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            tokio::time::timeout(
                std::time::Duration::from_secs(10),
                handle.wait_for_generation(generation),
            )
            .await
            .expect("a pass within 10 s")
            .expect("reconciler running")
        })
}
