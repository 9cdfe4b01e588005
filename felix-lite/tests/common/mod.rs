//! Throwaway network namespaces for tests (and the route benchmark).
#![allow(dead_code)]

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A named network namespace deleted on drop. Names carry the pid and a
/// counter so tests in parallel (and parallel test binaries) never collide.
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

    /// `bridge -n <ns> -j ARGS` parsed.
    pub fn bridge_json(&self, args: &[&str]) -> serde_json::Value {
        let mut full = vec!["-n", self.name.as_str(), "-j"];
        full.extend_from_slice(args);
        parse_json(&run("bridge", &full))
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
    ns.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "peer0",
    ]);
    ns.ip(&["addr", "add", cidr, "dev", "eth0"]);
    ns.ip(&["link", "set", "eth0", "up"]);
    ns.ip(&["link", "set", "peer0", "up"]);
    ns
}

/// Adds a host-side workload veth `host_if` whose other end stays in the
/// node namespace (enough for a scope-link route to be programmed).
pub fn add_workload_veth(ns: &Netns, host_if: &str, pod_if: &str) {
    ns.ip(&[
        "link", "add", host_if, "type", "veth", "peer", "name", pod_if,
    ]);
    ns.ip(&["link", "set", host_if, "up"]);
    ns.ip(&["link", "set", pod_if, "up"]);
}

/// `ip -j route show proto 81` entries whose `dst` is `dst`.
pub fn tabby_route(ns: &Netns, dst: &str) -> Option<serde_json::Value> {
    ns.ip_json(&["route", "show", "proto", "81"])
        .as_array()
        .and_then(|a| a.iter().find(|r| r["dst"] == dst).cloned())
}
