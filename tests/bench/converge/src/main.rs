//! Pod-route convergence of a running lab: claims fresh blocks on one node
//! through the CNI plugin (a CNI ADD, exactly as the lab's pod helper and a
//! container runtime run it, into a pool of /31 blocks: the timed pod claims
//! a new block, an untimed second one fills it, so the next timed pod claims
//! a new block again) and times, for every other node, the route's
//! arrival in that node's kernel, read from netlink events. Prints one row:
//! p50/p99/max over all (claim, node) pairs. Benchmark-only.

mod claims;
// The /proc reader bench-idle uses; only its CPU counter is read here.
#[allow(dead_code)]
mod idle_proc;
mod netlink;
mod results;

use anyhow::{bail, Context, Result};
use clap::Parser;
use std::collections::HashMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Opts {
    /// A lab's directory (holds lab.json); several: claims alternate
    /// between them.
    #[arg(long, required = true)]
    lab_dir: Vec<PathBuf>,
    /// Fresh blocks to claim, one after another.
    #[arg(long, default_value_t = 200)]
    claims: usize,
    /// The node that claims them.
    #[arg(long, default_value = "node-1")]
    node: String,
    /// The pool the pods take addresses from.
    #[arg(long, default_value = "bench-converge")]
    pool: String,
    /// Its blockSize. Not 32: a /32 block's blackhole on the claiming node
    /// has the pod route's destination and the dataplane refuses the pod
    /// route. With 31, one untimed pod fills each block.
    #[arg(long, default_value_t = 31)]
    block_len: u8,
    /// The `tabby` CNI plugin.
    #[arg(long)]
    plugin: PathBuf,
    /// Each lab's row label, in --lab-dir order.
    #[arg(long)]
    label: Vec<String>,
    /// How long one claim may take to reach every node.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// Claims first made and not counted, each waited for up to 60 s:
    /// `lab up` returns before every BGP session is up.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
}

struct NodeInfo {
    name: String,
    netns: String,
    run_dir: String,
    pid: u32,
}

/// Pod namespaces this run created, removed however it ends.
struct PodNetns(Vec<String>);
impl Drop for PodNetns {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// One lab under test and what its claims measured.
struct LabRun {
    label: String,
    nodes: Vec<NodeInfo>,
    /// The claiming node.
    a: usize,
    lat: Vec<f64>,
    cni_ms: Vec<f64>,
    own_ms: Vec<f64>,
    from_claim: Vec<f64>,
    missing: usize,
    /// Each other node's CPU ticks when the counted claims start.
    cpu_start: Vec<u64>,
    /// CPU ms per counted claim of each other node, sorted.
    cpu_per_claim: Vec<f64>,
    /// The datastore the lab's nodes use, for the claim watch.
    datastore: tabby_agent::datastore::DatastoreConfig,
}

/// Listener ids: lab * STRIDE + node.
const STRIDE: usize = 10_000;

fn load(dir: &std::path::Path, node: &str, label: &str) -> Result<LabRun> {
    let lab: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("lab.json"))
            .with_context(|| format!("reading {}/lab.json", dir.display()))?,
    )
    .context("lab.json")?;
    let nodes: Vec<NodeInfo> = lab["nodes"]
        .as_array()
        .context("lab.json: nodes")?
        .iter()
        .map(|n| NodeInfo {
            name: n["name"].as_str().unwrap_or_default().into(),
            netns: n["netns"].as_str().unwrap_or_default().into(),
            run_dir: n["run_dir"].as_str().unwrap_or_default().into(),
            pid: n["pid"].as_u64().unwrap_or(0) as u32,
        })
        .collect();
    let a = nodes
        .iter()
        .position(|n| n.name == node)
        .with_context(|| format!("no node {node} in {}", dir.display()))?;
    let datastore = match lab["datastore"].as_str() {
        Some("sqlite") => tabby_agent::datastore::DatastoreConfig::Sqlite {
            path: dir.join("tabby.db"),
        },
        Some("etcdv3") => tabby_agent::datastore::DatastoreConfig::Etcd {
            endpoints: vec![lab["etcd_endpoint"]
                .as_str()
                .context("lab.json: etcd_endpoint")?
                .to_string()],
        },
        other => bail!("lab.json: datastore {other:?}: the bench follows sqlite and etcdv3 labs"),
    };
    Ok(LabRun {
        label: label.into(),
        nodes,
        a,
        lat: vec![],
        cni_ms: vec![],
        own_ms: vec![],
        from_claim: vec![],
        missing: 0,
        cpu_start: vec![],
        cpu_per_claim: vec![],
        datastore,
    })
}

fn main() -> Result<()> {
    let o = Opts::parse();
    if o.lab_dir.len() != o.label.len() {
        bail!("give one --label per --lab-dir");
    }
    let mut labs = o
        .lab_dir
        .iter()
        .zip(&o.label)
        .map(|(d, l)| load(d, &o.node, l))
        .collect::<Result<Vec<_>>>()?;
    let (tx, rx) = mpsc::channel();
    // Node A too: its own route for the block (the blackhole Calico
    // installs) splits the figure into "claim reached A's dataplane" and
    // the rest (BGP, the other nodes' dataplanes).
    for (l, lab) in labs.iter().enumerate() {
        for (i, n) in lab.nodes.iter().enumerate() {
            netlink::listen(l * STRIDE + i, &n.netns, tx.clone())?;
        }
    }
    drop(tx);
    let (ctx, crx) = mpsc::channel();
    for (l, lab) in labs.iter().enumerate() {
        let a = &lab.nodes[lab.a];
        claims::watch(l, lab.datastore.clone(), &a.netns, &a.name, ctx.clone())?;
    }
    drop(ctx);
    let mut claimed: HashMap<(usize, (Ipv4Addr, u8)), Instant> = HashMap::new();
    let mut pods = PodNetns(Vec::new());
    // Events per destination, kept across claims: a route can reach a node
    // before the plugin has answered with its address.
    let mut seen: HashMap<(Ipv4Addr, u8), HashMap<usize, Instant>> = HashMap::new();
    let fill = (1u32 << (32 - o.block_len.min(32))) - 1;
    let tag = std::process::id();
    // Claims alternate between the labs, so every row sees the same
    // background load on a shared machine.
    for c in 0..o.claims + o.warmup {
        for (l, lab) in labs.iter_mut().enumerate() {
            let counted = c >= o.warmup;
            if c == o.warmup {
                lab.cpu_start = other_cpu(lab);
            }
            let others = lab.nodes.len() - 1;
            let a = lab.a;
            let pod_ns = format!("tbc{tag}-{l}-{c}");
            run(Command::new("ip").args(["netns", "add", &pod_ns]))?;
            pods.0.push(pod_ns.clone());
            let t0 = Instant::now();
            let ip = cni_add(&o, &lab.nodes[a], &pod_ns, &format!("p{c}"))?;
            let key = (block_of(ip, o.block_len), o.block_len);
            if counted {
                lab.cni_ms.push(t0.elapsed().as_secs_f64() * 1e3);
            }
            let wait = if counted { o.timeout_ms } else { 60_000 };
            let deadline = t0 + Duration::from_millis(wait);
            let mine = |k: usize| k / STRIDE == l && k % STRIDE != a;
            loop {
                drain(&rx, &mut seen, None);
                let got = seen
                    .get(&key)
                    .map_or(0, |m| m.keys().filter(|&&k| mine(k)).count());
                if got >= others || Instant::now() >= deadline {
                    break;
                }
                drain(&rx, &mut seen, Some(deadline));
            }
            let arrived = seen.remove(&key).unwrap_or_default();
            // Untimed: the rest of the block, so the next claim needs a new one.
            for f in 0..fill {
                let ns = format!("tbc{tag}-{l}-{c}f{f}");
                run(Command::new("ip").args(["netns", "add", &ns]))?;
                pods.0.push(ns.clone());
                cni_add(&o, &lab.nodes[a], &ns, &format!("p{c}f{f}"))?;
            }
            let own = arrived.get(&(l * STRIDE + a)).copied();
            let remote: Vec<Instant> = arrived
                .iter()
                .filter(|(k, _)| mine(**k))
                .map(|(_, t)| *t)
                .collect();
            if !counted {
                if remote.len() < others {
                    bail!(
                        "{}: warm-up claim {ip} reached {} of {others} nodes in 60 s",
                        lab.label,
                        remote.len()
                    );
                }
                continue;
            }
            lab.missing += others - remote.len();
            let ms = |t: Instant| t.saturating_duration_since(t0).as_secs_f64() * 1e3;
            lab.own_ms.extend(own.map(ms));
            while let Ok(c) = crx.try_recv() {
                claimed.insert((c.lab, c.block), c.at);
            }
            if let Some(at) = claimed.remove(&(l, key)) {
                let after = |t: &Instant| t.saturating_duration_since(at).as_secs_f64() * 1e3;
                lab.from_claim.extend(remote.iter().map(after));
            }
            lab.lat.extend(remote.into_iter().map(ms));
        }
    }
    let mut missing = 0;
    for lab in &mut labs {
        let end = other_cpu(lab);
        let tick_ms = 1e3 / idle_proc::clock_ticks();
        lab.cpu_per_claim = end
            .iter()
            .zip(&lab.cpu_start)
            .map(|(b, a)| b.saturating_sub(*a) as f64 * tick_ms / o.claims.max(1) as f64)
            .collect();
        lab.cpu_per_claim.sort_by(f64::total_cmp);
        for v in [
            &mut lab.lat,
            &mut lab.cni_ms,
            &mut lab.own_ms,
            &mut lab.from_claim,
        ] {
            v.sort_by(f64::total_cmp);
        }
        missing += lab.missing;
    }
    fn row(lab: &LabRun, claims: usize) -> results::Row<'_> {
        results::Row {
            label: &lab.label,
            nodes: lab.nodes.len(),
            claims,
            lat: &lab.lat,
            from_claim: &lab.from_claim,
            cni: &lab.cni_ms,
            own: &lab.own_ms,
            missing: lab.missing,
            cpu_per_claim: &lab.cpu_per_claim,
        }
    }
    // The row labelled "(ref)" is every other row's reference.
    let reference = labs
        .iter()
        .find(|l| l.label.ends_with("(ref)"))
        .map(|l| row(l, o.claims));
    for lab in &labs {
        let r = row(lab, o.claims);
        results::print(&r, &o.node);
        let reference = reference.as_ref().filter(|x| x.label != r.label);
        results::emit(&r, reference).context("appending to $BENCH_RESULTS")?;
    }
    if missing > 0 {
        bail!(
            "{missing} (claim, node) routes did not arrive within {} ms",
            o.timeout_ms
        );
    }
    Ok(())
}

/// utime+stime ticks of every node but the claiming one (0 for a node
/// whose /proc cannot be read: it shows as a 0 ms row, not a failed run).
fn other_cpu(lab: &LabRun) -> Vec<u64> {
    lab.nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != lab.a)
        .map(|(_, n)| idle_proc::Counters::read(n.pid).map_or(0, |c| c.cpu_ticks))
        .collect()
}

/// Moves arrived events into `seen`; with a deadline, waits for the first.
fn drain(
    rx: &Receiver<netlink::Seen>,
    seen: &mut HashMap<(Ipv4Addr, u8), HashMap<usize, Instant>>,
    wait_until: Option<Instant>,
) {
    let mut put = |s: netlink::Seen| {
        seen.entry((s.dst, s.len))
            .or_default()
            .entry(s.node)
            .or_insert(s.at);
    };
    if let Some(d) = wait_until {
        if let Ok(s) = rx.recv_timeout(d.saturating_duration_since(Instant::now())) {
            put(s);
        }
    }
    while let Ok(s) = rx.try_recv() {
        put(s);
    }
}

fn block_of(ip: Ipv4Addr, len: u8) -> Ipv4Addr {
    let mask = u32::MAX
        .checked_shl(32 - u32::from(len.min(32)))
        .unwrap_or(0);
    Ipv4Addr::from(u32::from(ip) & mask)
}

fn run(c: &mut Command) -> Result<()> {
    let out = c.output().context("spawning")?;
    if !out.status.success() {
        bail!("{:?}: {}", c, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// One CNI ADD on node `n`, as the lab's pod helper runs it; returns the
/// pod's IPv4 address.
fn cni_add(o: &Opts, n: &NodeInfo, pod_ns: &str, pod: &str) -> Result<Ipv4Addr> {
    let conf = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "k8s-pod-network",
        "type": "tabby",
        "nodename": n.name,
        "run_dir": n.run_dir,
        "mtu": 0,
        "ipam": { "type": "tabby-ipam", "ipv4_pools": [o.pool] },
    });
    let bin_dir = o.plugin.parent().context("plugin directory")?;
    let cid = format!("bench{}{pod}", std::process::id());
    let mut child = Command::new("ip")
        .args(["netns", "exec", &n.netns, "env", "-i"])
        .arg("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .arg("CNI_COMMAND=ADD")
        .arg(format!("CNI_CONTAINERID={cid}"))
        .arg(format!("CNI_NETNS=/var/run/netns/{pod_ns}"))
        .arg("CNI_IFNAME=eth0")
        .arg(format!("CNI_PATH={}", bin_dir.display()))
        .arg(format!(
            "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME={pod};K8S_POD_INFRA_CONTAINER_ID={cid}"
        ))
        .arg(&o.plugin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running the CNI plugin")?;
    child
        .stdin
        .take()
        .context("plugin stdin")?
        .write_all(conf.to_string().as_bytes())?;
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "CNI ADD of {pod} failed: {} {}",
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let v: serde_json::Value = serde_json::from_str(&stdout).context("CNI result")?;
    let addr = v["ips"][0]["address"]
        .as_str()
        .context("CNI result: ips[0].address")?;
    addr.split('/')
        .next()
        .unwrap_or_default()
        .parse()
        .with_context(|| format!("CNI result address {addr}"))
}
