//! End-to-end helpers: a lab built and torn down by the real `tabbyctl`
//! binary, and readers of what its nodes' kernels and daemons say.
//!
//! Needs root (network namespaces). Each test builds its own lab with a
//! unique name; tests in one binary take `serial()` so their timing is not
//! skewed by another lab's daemons competing for the CPU.

#![allow(dead_code)]

use serde_json::Value;
use std::net::Ipv4Addr;
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub const TABBYCTL: &str = env!("CARGO_BIN_EXE_tabbyctl");
/// The hold time the lab gives every tabby-node (TABBY_BGP_HOLD_TIME).
pub const HOLD: Duration = Duration::from_secs(9);

static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub struct Lab {
    pub name: String,
    pub state: Value,
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(TABBYCTL)
            .args(["lab", "down", "--name", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Lab {
    /// `tabbyctl lab up --name e2e-<tag>-<pid> ARGS`; panics with its output
    /// (and the nodes' logs) if it fails.
    pub fn up(tag: &str, args: &[&str]) -> Lab {
        let name = format!("e2e-{tag}-{}", std::process::id() % 100000);
        // A lab left by a killed earlier run of this same test.
        let _ = Command::new(TABBYCTL)
            .args(["lab", "down", "--name", &name])
            .output();
        let mut lab = Lab {
            name: name.clone(),
            state: Value::Null,
        };
        let out = lab.ctl(&["lab", "up"], args);
        if !out.status.success() {
            panic!("lab up failed:\n{}\n{}", text(&out), lab.logs());
        }
        lab.refresh();
        lab
    }

    /// The routing labs: three nodes over `subnets` subnets, two pods each,
    /// with the given IP pool encapsulation.
    pub fn three_nodes(tag: &str, subnets: &str, encapsulation: &str) -> Lab {
        Lab::three_nodes_with(tag, subnets, encapsulation, &[])
    }

    /// [`Lab::three_nodes`] with further `lab up` arguments.
    pub fn three_nodes_with(tag: &str, subnets: &str, encapsulation: &str, extra: &[&str]) -> Lab {
        let mut args = vec![
            "--nodes",
            "3",
            "--subnets",
            subnets,
            "--pods-per-node",
            "2",
            "--encapsulation",
            encapsulation,
        ];
        args.extend_from_slice(extra);
        Lab::up(tag, &args)
    }

    fn ctl(&self, pre: &[&str], args: &[&str]) -> Output {
        Command::new(TABBYCTL)
            .args(pre)
            .args(["--name", &self.name])
            .args(args)
            .output()
            .expect("running tabbyctl")
    }

    /// Runs `tabbyctl lab <args>` and returns (success, stdout+stderr).
    pub fn lab(&self, args: &[&str]) -> (bool, String) {
        let o = self.ctl(&["lab"], args);
        (o.status.success(), text(&o))
    }

    pub fn refresh(&mut self) {
        let (ok, out) = self.lab(&["status", "-o", "json"]);
        assert!(ok, "lab status: {out}");
        self.state = serde_json::from_str(&out).expect("lab status -o json");
    }

    pub fn logs(&self) -> String {
        let dir = format!("/var/run/tabby-lab/{}", self.name);
        let mut s = String::new();
        for n in 1..=6 {
            let p = format!("{dir}/node-{n}/tabby-node.log");
            if let Ok(t) = std::fs::read_to_string(&p) {
                let lines: Vec<&str> = t.lines().collect();
                s.push_str(&format!("--- {p} (last 40 lines)\n"));
                s.push_str(&lines[lines.len().saturating_sub(40)..].join("\n"));
                s.push('\n');
            }
        }
        s
    }

    pub fn nodes(&self) -> Vec<Value> {
        self.state["nodes"].as_array().cloned().unwrap_or_default()
    }

    pub fn node(&self, name: &str) -> Value {
        self.nodes()
            .into_iter()
            .find(|n| n["name"] == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    pub fn node_ip(&self, name: &str) -> Ipv4Addr {
        self.node(name)["address"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    pub fn node_subnet(&self, name: &str) -> String {
        self.node(name)["subnet"].as_str().unwrap().to_string()
    }

    pub fn netns(&self, node_or_pod: &str) -> String {
        format!("{}_{node_or_pod}", self.name)
    }

    pub fn pods(&self) -> Vec<Value> {
        self.state["pods"].as_array().cloned().unwrap_or_default()
    }

    pub fn pod_ip(&self, pod: &str) -> Ipv4Addr {
        let p = self
            .pods()
            .into_iter()
            .find(|p| p["name"] == pod)
            .unwrap_or_else(|| panic!("no pod {pod}"));
        p["address"].as_str().unwrap().parse().unwrap()
    }

    /// Node name → the /26 blocks its pods' addresses come from.
    pub fn blocks_of(&self, node: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .pods()
            .into_iter()
            .filter(|p| p["node"] == node)
            .map(|p| block26(p["address"].as_str().unwrap().parse().unwrap()))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// `ip netns exec <lab>_<ns> <args>`.
    pub fn exec(&self, ns: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.netns(ns)])
            .args(args)
            .output()
            .expect("ip netns exec")
    }

    pub fn sh(&self, ns: &str, args: &[&str]) -> String {
        let o = self.exec(ns, args);
        assert!(o.status.success(), "{args:?} in {ns} failed: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// The node's IPv4 routes, as `ip -j route` reports them.
    pub fn routes(&self, node: &str) -> Vec<Value> {
        let out = self.sh(node, &["ip", "-j", "-d", "route", "show"]);
        serde_json::from_str(&out).unwrap_or_default()
    }

    pub fn route_to(&self, node: &str, dst: &str) -> Option<Value> {
        self.routes(node).into_iter().find(|r| r["dst"] == dst)
    }

    /// `tabbyctl lab exec fabric -- tabbyctl ARGS`: tabbyctl against the
    /// lab's datastore (etcd lives in the fabric namespace).
    pub fn tabbyctl(&self, args: &[&str]) -> (bool, String) {
        let mut a = vec!["exec", "fabric", "--", "tabbyctl"];
        a.extend_from_slice(args);
        self.lab(&a)
    }

    /// `tabbyctl node status` against the node's socket.
    pub fn node_status(&self, node: &str) -> (bool, String) {
        let run_dir = self.node(node)["run_dir"].as_str().unwrap().to_string();
        let o = Command::new(TABBYCTL)
            .args(["node", "status", "--run-dir", &run_dir])
            .output()
            .expect("tabbyctl node status");
        (o.status.success(), text(&o))
    }

    pub fn check(&self) -> (bool, String) {
        self.lab(&["check"])
    }

    pub fn node_names(&self) -> Vec<String> {
        self.nodes()
            .iter()
            .map(|n| n["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// Peer rows of `node status` whose INFO is Established, by address
    /// (only the IPv4 BGP table: the block table mentions sessions too).
    pub fn established_peers(&self, node: &str) -> Vec<String> {
        let (_, out) = self.node_status(node);
        out.lines()
            .skip_while(|l| !l.starts_with("IPv4 BGP status"))
            .take_while(|l| !l.starts_with("IPv6 BGP status"))
            .filter_map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                // "", address, type, state, since, info, ""
                (cells.len() == 7 && cells[5] == "Established").then(|| cells[1].to_string())
            })
            .collect()
    }
}

pub fn block26(ip: Ipv4Addr) -> String {
    let n = u32::from(ip) & !0x3f;
    format!("{}/26", Ipv4Addr::from(n))
}

pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A route's protocol as a number (`ip -j` names the ones it knows).
pub fn protocol(r: &Value) -> String {
    match &r["protocol"] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

pub fn has_flag(r: &Value, flag: &str) -> bool {
    r["flags"]
        .as_array()
        .is_some_and(|f| f.iter().any(|x| x == flag))
}

impl Lab {
    /// The node's (VXLAN tunnel address, VTEP MAC) from its Node resource.
    pub fn vtep(&self, node: &str) -> (Ipv4Addr, String) {
        let (ok, out) = self.tabbyctl(&["get", "node", node, "-o", "json"]);
        assert!(ok, "get node {node}: {out}");
        let v: Value = serde_json::from_str(&out).expect("node JSON");
        let addr = v["spec"]["ipv4VXLANTunnelAddr"]
            .as_str()
            .unwrap_or_else(|| panic!("{node} has no ipv4VXLANTunnelAddr: {out}"));
        let addr = addr
            .split('/')
            .next()
            .unwrap()
            .parse()
            .expect("tunnel address");
        let mac = v["spec"]["vxlanTunnelMACAddr"]
            .as_str()
            .unwrap_or_else(|| panic!("{node} has no vxlanTunnelMACAddr: {out}"))
            .to_lowercase();
        (addr, mac)
    }

    /// Whether `node` routes `block` through vxlan.calico, onlink, to
    /// `owner`'s tunnel address, with the ARP and FDB entries that make the
    /// route usable.
    pub fn vxlan_route_ok(&self, node: &str, owner: &str, block: &str) -> Result<(), String> {
        let (tunnel, mac) = self.vtep(owner);
        let r = self.route_to(node, block).ok_or("no route")?;
        if r["dev"] != "vxlan.calico" || r["gateway"] != tunnel.to_string().as_str() {
            return Err(format!("route {r} is not via {tunnel} dev vxlan.calico"));
        }
        if !has_flag(&r, "onlink") {
            return Err(format!("route {r} is not onlink"));
        }
        let neigh = self.sh(node, &["ip", "neigh", "show", "dev", "vxlan.calico"]);
        if !neigh
            .lines()
            .any(|l| l.starts_with(&format!("{tunnel} ")) && l.contains(&mac))
        {
            return Err(format!("no ARP entry {tunnel} -> {mac}: {neigh}"));
        }
        let fdb = self.sh(node, &["bridge", "fdb", "show", "dev", "vxlan.calico"]);
        let owner_ip = self.node_ip(owner).to_string();
        if !fdb
            .lines()
            .any(|l| l.starts_with(&mac) && l.contains(&format!("dst {owner_ip} ")))
        {
            return Err(format!("no FDB entry {mac} dst {owner_ip}: {fdb}"));
        }
        Ok(())
    }

    /// Waits up to 15 s for `node` to route `owner`'s `block` natively when
    /// the two share a subnet and through vxlan.calico when they do not;
    /// returns (whether it did, the last reason it did not).
    pub fn wait_route_by_subnet(&self, node: &str, owner: &str, block: &str) -> (bool, String) {
        let same = self.node_subnet(node) == self.node_subnet(owner);
        let mut why = String::new();
        let ok = wait_until(Duration::from_secs(15), || {
            let r = if same {
                self.native_route_ok(node, owner, block)
            } else {
                self.vxlan_route_ok(node, owner, block)
            };
            r.map_err(|e| why = e).is_ok()
        });
        (ok, why)
    }

    /// Waits up to `timeout` for `lab check` to pass; returns (whether it
    /// did, its last output).
    pub fn wait_check(&self, timeout: Duration) -> (bool, String) {
        let mut last = String::new();
        let ok = wait_until(timeout, || {
            let (ok, out) = self.check();
            last = out;
            ok
        });
        (ok, last)
    }

    /// Whether `node` routes `block` natively via `owner`'s node IP.
    pub fn native_route_ok(&self, node: &str, owner: &str, block: &str) -> Result<(), String> {
        let via = self.node_ip(owner).to_string();
        match self.route_to(node, block) {
            Some(r) if r["gateway"] == via.as_str() && r["dev"] == "eth0" => Ok(()),
            other => Err(format!("route {other:?} is not via {via} dev eth0")),
        }
    }
}
