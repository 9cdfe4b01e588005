//! Network namespaces joined by veth pairs, removed on drop.
//!
//! Every daemon (and every in-process Tabby speaker) gets its own namespace,
//! so each one may listen on port 179 and tests can run in parallel without
//! sharing anything but the namespace name prefix.

use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Runs a command and panics with its output when it fails: harness set-up
/// errors are test failures that must say what went wrong.
pub fn run(cmd: &str, args: &[&str]) -> Output {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A fresh namespace with loopback up. `tag` names the test so leftover
    /// namespaces (after a crash) say where they came from.
    pub fn new(tag: &str) -> Netns {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let name = format!("tb-{tag}-{}-{n}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NS ...`
    pub fn ip(&self, args: &[&str]) -> Output {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// A command run inside the namespace, not yet started.
    pub fn command(&self, program: &str) -> Command {
        command_in(&self.name, program)
    }
}

fn command_in(ns: &str, program: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, program]);
    c
}

/// A routing daemon (BIRD, gobgpd) running inside a namespace, with its
/// config and its stdout+stderr (in `dir/<log>`) in a temporary directory;
/// killed and reaped on drop, before the directory goes.
pub struct Daemon {
    child: Child,
    pub dir: tempfile::TempDir,
    log: &'static str,
    ns: String,
}

impl Daemon {
    /// Starts `cmd` (from [`Netns::command`] on `ns`) with its output going
    /// to `dir/<log>`.
    pub fn spawn(
        ns: &Netns,
        dir: tempfile::TempDir,
        log: &'static str,
        mut cmd: Command,
    ) -> Daemon {
        let out = std::fs::File::create(dir.path().join(log)).expect(log);
        let child = cmd
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        Daemon {
            child,
            dir,
            log,
            ns: ns.name.clone(),
        }
    }

    /// A command (e.g. the daemon's CLI) run in the daemon's namespace.
    pub fn command(&self, program: &str) -> Command {
        command_in(&self.ns, program)
    }

    /// Everything the daemon has printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(self.log)).unwrap_or_default()
    }

    /// `kill -9`: the daemon's sockets close without a NOTIFICATION.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `cmd`: its stdout when it ran and succeeded, else None.
pub fn stdout_if_ok(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Joins two namespaces with a veth pair and gives each end an address in
/// `10.179.{subnet}.0/24`: `a` gets `.{host_a}`, `b` gets `.{host_b}`.
pub fn link(a: &Netns, b: &Netns, subnet: u8, host_a: u8, host_b: u8) -> (String, String) {
    let l = link_named(a, b, subnet, host_a, host_b);
    (l.addr_a, l.addr_b)
}

pub struct Link {
    pub addr_a: String,
    pub addr_b: String,
    pub if_a: String,
    pub if_b: String,
}

pub fn link_named(a: &Netns, b: &Netns, subnet: u8, host_a: u8, host_b: u8) -> Link {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let if_a = format!("va{subnet}x{n}");
    let if_b = format!("vb{subnet}x{n}");
    a.ip(&[
        "link", "add", &if_a, "type", "veth", "peer", "name", &if_b, "netns", &b.name,
    ]);
    let addr_a = format!("10.179.{subnet}.{host_a}");
    let addr_b = format!("10.179.{subnet}.{host_b}");
    a.ip(&["addr", "add", &format!("{addr_a}/24"), "dev", &if_a]);
    b.ip(&["addr", "add", &format!("{addr_b}/24"), "dev", &if_b]);
    a.ip(&["link", "set", &if_a, "up"]);
    b.ip(&["link", "set", &if_b, "up"]);
    Link {
        addr_a,
        addr_b,
        if_a,
        if_b,
    }
}

/// A shared segment: a bridge in `hub` holding `10.179.{subnet}.1`, and
/// one veth per member plugged into it, members getting `.2`, `.3`, ...
/// (so every member's address is on-link for every other: route
/// reflection keeps next hops unchanged).
pub fn lan(hub: &Netns, subnet: u8, members: &[&Netns]) -> Vec<String> {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let br = format!("br{subnet}x{n}");
    hub.ip(&["link", "add", &br, "type", "bridge"]);
    hub.ip(&["addr", "add", &format!("10.179.{subnet}.1/24"), "dev", &br]);
    hub.ip(&["link", "set", &br, "up"]);
    let mut out = Vec::new();
    for (i, m) in members.iter().enumerate() {
        let k = SEQ.fetch_add(1, Ordering::Relaxed);
        let (ih, im) = (format!("vh{subnet}x{k}"), format!("vm{subnet}x{k}"));
        hub.ip(&[
            "link", "add", &ih, "type", "veth", "peer", "name", &im, "netns", &m.name,
        ]);
        hub.ip(&["link", "set", &ih, "master", &br]);
        hub.ip(&["link", "set", &ih, "up"]);
        let addr = format!("10.179.{subnet}.{}", i + 2);
        m.ip(&["addr", "add", &format!("{addr}/24"), "dev", &im]);
        m.ip(&["link", "set", &im, "up"]);
        out.push(addr);
    }
    out
}

/// Like [`link`] with IPv6 `fd00:179:{subnet}::/64` (no DAD, so the
/// addresses are usable at once).
pub fn link6(a: &Netns, b: &Netns, subnet: u8) -> (String, String) {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let (ia, ib) = (format!("w{subnet}a{n}"), format!("w{subnet}b{n}"));
    a.ip(&[
        "link", "add", &ia, "type", "veth", "peer", "name", &ib, "netns", &b.name,
    ]);
    let aa = format!("fd00:179:{subnet}::1");
    let ab = format!("fd00:179:{subnet}::2");
    a.ip(&["addr", "add", &format!("{aa}/64"), "dev", &ia, "nodad"]);
    b.ip(&["addr", "add", &format!("{ab}/64"), "dev", &ib, "nodad"]);
    a.ip(&["link", "set", &ia, "up"]);
    b.ip(&["link", "set", &ib, "up"]);
    (aa, ab)
}
