//! Test scaffolding shared by tests/autodetect.rs, tests/host.rs and
//! tests/nft.rs: uniquely named network namespaces that delete themselves,
//! and thin wrappers over `ip`/`nft` for setting up and reading back.
#![allow(dead_code)]

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A network namespace named `tbh-<tag>-<pid>-<n>`, deleted on drop (which
/// also destroys every veth, bridge and nft table inside it).
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("tbh-{tag}-{}-{n}", std::process::id());
        run("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NS ARGS`, panicking with stderr on failure.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// `ip netns exec NS sh -c CMD`; returns (success, stdout+stderr).
    pub fn sh(&self, cmd: &str) -> (bool, String) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "sh", "-c", cmd])
            .output()
            .expect("spawn ip netns exec");
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }

    /// Like [`Self::sh`] but panics when the command fails.
    pub fn must(&self, cmd: &str) -> String {
        let (ok, out) = self.sh(cmd);
        assert!(ok, "in {}: `{cmd}` failed: {out}", self.name);
        out
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

pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
