//! `tabbyctl lab up`: the fabric, the nodes and their tabby-node daemons,
//! then the pods through the CNI plugin.

use super::sh::{self, in_ns, ip, ip_in, step, sysctl_in};
use super::state::Topology;
use super::state::{ns_prefix, DatastoreKind, Lab, Node, Plan, ETCD_PORT, POD_POOL};
use super::tor;
use super::{cni, pods};
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::time::Duration;

pub async fn up(name: &str, dir: &Path, plan: Plan) -> Result<()> {
    plan.validate()?;
    let existing: Vec<String> = sh::netns_list()?
        .into_iter()
        .filter(|n| n.starts_with(&ns_prefix(name)))
        .collect();
    if !existing.is_empty() || Lab::file(dir).exists() {
        bail!(
            "lab {name:?} already exists ({}); remove it first with `tabbyctl lab down --name {name}`",
            if existing.is_empty() {
                Lab::file(dir).display().to_string()
            } else {
                format!("namespaces {}", existing.join(", "))
            }
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut lab = plan.layout(name, dir);
    // Recorded before anything exists so that `lab down` can always find
    // the directory, whatever step fails.
    lab.save()?;
    let r = build(&mut lab).await;
    lab.save()?;
    if let Err(e) = r {
        return Err(e.context(format!(
            "lab {name:?} is partly up; logs are under {}; remove it with `tabbyctl lab down --name {name}`",
            dir.display()
        )));
    }
    println!(
        "[{name}] lab is up: {} node(s) on {} subnet(s), {} pod(s) ({} encapsulation, {} datastore, {} topology, {} ip family)",
        lab.nodes.len(),
        lab.fabric.bridges.len(),
        lab.pods.len(),
        lab.encapsulation,
        lab.datastore,
        lab.topology,
        lab.ip_family
    );
    println!("[{name}] next: tabbyctl lab status --name {name}; tabbyctl lab check --name {name}");
    for n in &lab.nodes {
        println!(
            "[{name}] node status of {}: TABBY_RUN_DIR={} tabbyctl node status",
            n.name,
            n.run_dir.display()
        );
    }
    Ok(())
}

async fn build(lab: &mut Lab) -> Result<()> {
    let name = lab.name.clone();
    use tabby_felix_lite::neigh_limits::Family as NeighFamily;
    // The IPv4 fabric carries every lab (an IPv6 one's datastore too).
    let mut families = vec![NeighFamily::V4];
    if lab.ip_family.has_v6() {
        families.push(NeighFamily::V6);
    }
    super::limits::ensure(lab, &families)?;
    super::limits::ensure_inotify(lab)?;
    fabric(lab)?;
    for n in &lab.nodes {
        node_netns(lab, n)?;
        cni::install(lab, n, &node_env(lab, n))?;
        step(
            &name,
            &n.name,
            format_args!(
                "namespace {} at {} on {}, CNI config in {}",
                n.netns,
                match n.address6 {
                    Some(a6) => format!("{} and {a6}", n.address),
                    None => n.address.to_string(),
                },
                n.subnet,
                cni::net_dir(n).display()
            ),
        );
    }
    match lab.datastore {
        DatastoreKind::Etcdv3 => etcd(lab)?,
        DatastoreKind::Kubernetes => super::kube::start(lab)?,
        DatastoreKind::Sqlite => {}
    }
    lab.save()?;
    super::rr::configure(lab)?;
    if lab.topology == Topology::Tor {
        tor::start(lab)?;
        lab.save()?;
    }
    // The first node creates the default pool (as calico-node does); the
    // others start once it is serving so they find the pool in place.
    for i in 0..lab.nodes.len() {
        start_node(lab, i)?;
        lab.save()?;
        if i == 0 {
            wait_ready(lab, 0).await?;
        }
    }
    for i in 1..lab.nodes.len() {
        wait_ready(lab, i).await?;
    }
    wait_sessions(lab).await;
    for i in 0..lab.pods.len() {
        let addr = pods::add(lab, i)?;
        lab.pods[i].set_addrs(addr);
        lab.save()?;
        let p = &lab.pods[i];
        step(
            &name,
            &p.node,
            format_args!("pod {} ({}) at {addr}", p.name, p.netns),
        );
    }
    Ok(())
}

fn fabric(lab: &Lab) -> Result<()> {
    let f = &lab.fabric;
    ip(&["netns", "add", &f.netns])?;
    ip_in(&f.netns, &["link", "set", "lo", "up"])?;
    // A plain router: it forwards between the node subnets it is attached
    // to and knows no pod routes.
    sysctl_in(&f.netns, "net.ipv4.ip_forward=1")?;
    for b in &f.bridges {
        ip_in(&f.netns, &["link", "add", &b.name, "type", "bridge"])?;
        let prefix_len = b.subnet.rsplit('/').next().unwrap_or("24");
        ip_in(
            &f.netns,
            &[
                "addr",
                "add",
                &format!("{}/{prefix_len}", b.router),
                "dev",
                &b.name,
            ],
        )?;
        if let (Some(subnet6), Some(router6)) = (&b.subnet6, b.router6) {
            // nodad: a tentative address would not route for a second or
            // two, and the lab assigned it uniquely.
            let len = subnet6.rsplit('/').next().unwrap_or("64");
            let a = format!("{router6}/{len}");
            ip_in(&f.netns, &["addr", "add", &a, "dev", &b.name, "nodad"])?;
        }
        ip_in(&f.netns, &["link", "set", &b.name, "up"])?;
    }
    if lab.ip_family.has_v6() {
        sysctl_in(&f.netns, "net.ipv6.conf.all.forwarding=1")?;
    }
    step(
        &lab.name,
        "fabric",
        format_args!(
            "namespace {} with {} (router {})",
            f.netns,
            f.bridges
                .iter()
                .map(|b| format!("{} {}", b.name, b.subnet))
                .collect::<Vec<_>>()
                .join(", "),
            f.bridges
                .iter()
                .map(|b| match b.router6 {
                    Some(r6) => format!("{} {r6}", b.router),
                    None => b.router.to_string(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    Ok(())
}

fn node_netns(lab: &Lab, n: &Node) -> Result<()> {
    let f = &lab.fabric.netns;
    let bridge = lab
        .fabric
        .bridges
        .iter()
        .find(|b| b.subnet == n.subnet)
        .context("node subnet has no bridge")?;
    ip(&["netns", "add", &n.netns])?;
    ip_in(&n.netns, &["link", "set", "lo", "up"])?;
    ip_in(
        f,
        &[
            "link",
            "add",
            &n.fabric_link,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &n.netns,
        ],
    )?;
    ip_in(f, &["link", "set", &n.fabric_link, "master", &bridge.name])?;
    ip_in(f, &["link", "set", &n.fabric_link, "up"])?;
    let prefix_len = n.subnet.rsplit('/').next().unwrap_or("24");
    ip_in(
        &n.netns,
        &[
            "addr",
            "add",
            &format!("{}/{prefix_len}", n.address),
            "dev",
            "eth0",
        ],
    )?;
    ip_in(&n.netns, &["link", "set", "eth0", "up"])?;
    ip_in(
        &n.netns,
        &["route", "add", "default", "via", &bridge.router.to_string()],
    )?;
    sysctl_in(&n.netns, "net.ipv4.ip_forward=1")?;
    if let (Some(a6), Some(r6)) = (n.address6, bridge.router6) {
        ip_in(
            &n.netns,
            &["addr", "add", &format!("{a6}/64"), "dev", "eth0", "nodad"],
        )?;
        ip_in(
            &n.netns,
            &["-6", "route", "add", "default", "via", &r6.to_string()],
        )?;
        sysctl_in(&n.netns, "net.ipv6.conf.all.forwarding=1")?;
    }
    Ok(())
}

/// etcd runs inside the fabric namespace on the first router address,
/// which every node reaches through its default route (the host's own
/// loopback is not reachable from the node namespaces).
pub fn etcd(lab: &mut Lab) -> Result<()> {
    let f = lab.fabric.netns.clone();
    let addr = lab.fabric.bridges[0].router;
    let endpoint = format!("http://{addr}:{ETCD_PORT}");
    let peer = "http://127.0.0.1:2380";
    let data = lab.dir.join("etcd");
    let mut cmd = in_ns(&f, "etcd");
    cmd.arg(format!("--name={}", lab.name))
        .arg(format!("--data-dir={}", data.display()))
        .arg(format!(
            "--listen-client-urls={endpoint},http://127.0.0.1:{ETCD_PORT}"
        ))
        .arg(format!("--advertise-client-urls={endpoint}"))
        .arg(format!("--listen-peer-urls={peer}"))
        .arg(format!("--initial-advertise-peer-urls={peer}"))
        .arg(format!("--initial-cluster={}={peer}", lab.name));
    let pid = sh::spawn_detached(&mut cmd, &lab.dir.join("etcd.log"))?;
    lab.etcd_pid = Some(pid);
    lab.etcd_endpoint = Some(endpoint.clone());
    sh::wait_datastore(
        &f,
        &lab.datastore_env(),
        "etcd",
        &endpoint,
        &lab.dir.join("etcd.log"),
    )?;
    step(
        &lab.name,
        "etcd",
        format_args!("etcd in {f} at {endpoint} (pid {pid})"),
    );
    Ok(())
}

/// tabby-node's environment, as calico-node's manifest would set it.
fn node_env(lab: &Lab, n: &Node) -> Vec<(String, String)> {
    let prefix_len = n.subnet.rsplit('/').next().unwrap_or("24");
    let mut env: Vec<(String, String)> = vec![("NODENAME".into(), n.name.clone())];
    if lab.ip_family.has_v4() {
        env.extend([
            ("IP".into(), format!("{}/{prefix_len}", n.address)),
            ("CALICO_IPV4POOL_CIDR".into(), POD_POOL.into()),
            (
                "CALICO_IPV4POOL_VXLAN".into(),
                lab.encapsulation.pool_vxlan_mode().into(),
            ),
        ]);
    } else {
        // An IPv6-only node as Calico configures one; the namespace keeps
        // its IPv4 fabric address for the lab's datastore only.
        env.push(("IP".into(), "none".into()));
    }
    env.extend(super::family::node_env(
        lab.ip_family,
        n.address6,
        lab.encapsulation.pool_vxlan_mode(),
    ));
    env.extend([
        (
            "CALICO_NETWORKING_BACKEND".into(),
            lab.encapsulation.backend().into(),
        ),
        ("TABBY_RUN_DIR".into(), n.run_dir.display().to_string()),
        // Short timers so that failures and recoveries show within seconds.
        ("TABBY_BGP_HOLD_TIME".into(), "9".into()),
        ("TABBY_BGP_CONNECT_RETRY".into(), "1".into()),
        (
            "TABBY_LOG".into(),
            std::env::var("TABBY_LOG").unwrap_or_else(|_| "info".into()),
        ),
    ]);
    env.extend(tor::node_as_env(lab, &n.subnet));
    // Bench-only: the convergence bench's reference row restores the old
    // 100 ms SQLite watch poll (tests/bench-converge.sh).
    if let Ok(ms) = std::env::var("TABBY_SQLITE_WATCH_POLL_MS") {
        env.push(("TABBY_SQLITE_WATCH_POLL_MS".into(), ms));
    }
    // Where BGP passwords are read (a Secret mounted on every node).
    env.push((
        "TABBY_BGP_SECRETS_DIR".into(),
        lab.dir.join("bgp-secrets").display().to_string(),
    ));
    env.extend(lab.datastore_env());
    // Where this node's runtime reads CNI configs, for `node doctor`.
    env.extend(cni::env(n));
    env
}

pub fn start_node(lab: &mut Lab, i: usize) -> Result<()> {
    let bin = sh::binary("tabby-node")?;
    if lab.nodes[i].env.is_empty() {
        lab.nodes[i].env = node_env(lab, &lab.nodes[i])
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
    }
    let n = &mut lab.nodes[i];
    std::fs::create_dir_all(&n.run_dir)
        .with_context(|| format!("creating {}", n.run_dir.display()))?;
    let mut cmd = in_ns(&n.netns, "env");
    // A clean environment: only what a calico-node manifest would set.
    cmd.arg("-i")
        .arg("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    cmd.args(&n.env);
    cmd.arg(&bin);
    let pid = sh::spawn_detached(&mut cmd, &n.log)?;
    n.pid = Some(pid);
    step(
        &lab.name,
        &n.name,
        format_args!("tabby-node started (pid {pid}, log {})", n.log.display()),
    );
    Ok(())
}

/// How often `lab up` asks a starting node whether it answers yet.
const READY_POLL: Duration = Duration::from_millis(200);

/// Waits until the node answers `Node.Status` on its socket.
pub async fn wait_ready(lab: &Lab, i: usize) -> Result<()> {
    let n = &lab.nodes[i];
    let socket = tabby_agent::grpc::socket_path(&n.run_dir);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if tabby_agent::ctl::client::node_status(&socket).await.is_ok() {
            step(
                &lab.name,
                &n.name,
                format_args!("tabby-node is serving on {}", socket.display()),
            );
            return Ok(());
        }
        if let Some(pid) = n.pid {
            // Asked twice: a daemon in the middle of starting can look
            // gone for an instant.
            if !sh::alive(pid, "tabby-node") && {
                tokio::time::sleep(Duration::from_millis(300)).await;
                !sh::alive(pid, "tabby-node")
            } {
                bail!(
                    "tabby-node on {} exited; last log lines:\n{}",
                    n.name,
                    tail(&n.log, 15)
                );
            }
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "tabby-node on {} did not answer on {} within 30 s; last log lines:\n{}",
                n.name,
                socket.display(),
                tail(&n.log, 15)
            );
        }
        tokio::time::sleep(READY_POLL).await;
    }
}

/// Waits (bounded) for every node's BGP peers to be Established, so that
/// what `lab up` hands over has converged. Not reaching it is reported, not
/// fatal: `node status` and `lab check` then show what is wrong.
async fn wait_sessions(lab: &Lab) {
    if lab.encapsulation.backend() != "bird" {
        return;
    }
    let started = tokio::time::Instant::now();
    let deadline = started + Duration::from_secs(30);
    loop {
        let mut pending = Vec::new();
        for (i, n) in lab.nodes.iter().enumerate() {
            match tabby_agent::ctl::client::node_status(&tabby_agent::grpc::socket_path(&n.run_dir))
                .await
            {
                Ok(s) => {
                    // A node without IPv4 peers over IPv6 sessions; a dual
                    // one carries IPv6 over its IPv4 sessions.
                    let peers = if lab.ip_family.has_v4() {
                        &s.ipv4_peers
                    } else {
                        &s.ipv6_peers
                    };
                    let up = peers.iter().filter(|p| p.info == "Established").count();
                    if up < peers.len() || peers.len() < super::rr::expected_sessions(lab, i) {
                        pending.push(format!("{} {up}/{}", n.name, peers.len()));
                    }
                }
                Err(_) => pending.push(format!("{} not answering", n.name)),
            }
        }
        if pending.is_empty() {
            step(
                &lab.name,
                "bgp",
                format_args!(
                    "every BGP session Established on every node ({}, {:.1} s)",
                    lab.topology,
                    started.elapsed().as_secs_f64()
                ),
            );
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            step(
                &lab.name,
                "bgp",
                format_args!(
                    "warning: BGP sessions not all Established after 30 s ({}); see tabbyctl node status",
                    pending.join(", ")
                ),
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}
