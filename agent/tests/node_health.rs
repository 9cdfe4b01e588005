//! calico-node's probes and Prometheus metrics on real tabby-node
//! processes: two mesh nodes in their own network namespaces, each with
//! FELIX_HEALTHENABLED and FELIX_PROMETHEUSMETRICSENABLED. `/readiness` is
//! 200 once the mesh is up, turns 503 naming the peer when node-b is
//! frozen past the 30 s grace (so "at least one Established" is the rule
//! that fails), `tabby-node health --ready` exits 1 with the reason, and
//! it all comes back when node-b thaws. `/metrics` is scraped over HTTP
//! inside the namespace, parsed as OpenMetrics text, and its peer and
//! block-path counts are those `node status` shows. Needs root.

#[allow(dead_code)]
#[path = "../../bgp/tests/common/netns.rs"]
mod netns;
#[allow(dead_code)]
mod node_common;
mod openmetrics;
#[allow(dead_code)]
#[path = "../../bgp/tests/common/wait.rs"]
mod wait;

use netns::{link_named, Netns};
use node_common::Daemon;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};
use tabby_proto::node as pb;
use wait::wait_until;

const OBSERVE: [(&str, &str); 4] = [
    ("TABBY_BGP_HOLD_TIME", "3"),
    ("TABBY_BGP_CONNECT_RETRY", "1"),
    ("FELIX_HEALTHENABLED", "true"),
    ("FELIX_PROMETHEUSMETRICSENABLED", "true"),
];

fn start(ns: &Netns, name: &str, dir: &Path) -> Daemon {
    node_common::spawn(
        ns,
        name,
        &dir.join("tabby.db"),
        &dir.join(name).join("run"),
        &dir.join(format!("{name}.log")),
        &OBSERVE,
    )
}

/// GET `path` from `port` on loopback inside `ns`, from a thread that
/// joins the namespace (the test process stays where it is): the status
/// code and the body, or None when nothing answers.
fn get(ns: &Netns, port: u16, path: &str) -> Option<(u16, String)> {
    let ns_path = format!("/run/netns/{}", ns.name);
    let path = path.to_string();
    std::thread::spawn(move || {
        let f = std::fs::File::open(&ns_path).ok()?;
        use std::os::fd::AsRawFd;
        // SAFETY: setns on a valid namespace fd affects only this thread.
        if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return None;
        }
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).ok()?;
        tabby_agent::observe::probe::parse_response(&raw)
    })
    .join()
    .ok()?
}

fn readiness(ns: &Netns) -> Option<(u16, String)> {
    get(ns, 9099, "/readiness")
}

/// `tabby-node health FLAG` inside `ns`: exit code and stdout.
fn health_cmd(ns: &Netns, flag: &str) -> (i32, String) {
    let out = ns
        .command("env")
        .args([
            "-i",
            "FELIX_HEALTHENABLED=true",
            env!("CARGO_BIN_EXE_tabby-node"),
            "health",
            flag,
        ])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

fn status(dir: &Path, name: &str) -> Option<pb::StatusResponse> {
    let sock = dir.join(name).join("run").join("tabby.sock");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ch = tabby_agent::grpc::connect_unix(&sock).await.ok()?;
        let mut c = pb::node_client::NodeClient::new(ch);
        Some(c.status(pb::StatusRequest {}).await.ok()?.into_inner())
    })
}

fn scrape(ns: &Netns) -> openmetrics::Exposition {
    let (code, body) = get(ns, 9091, "/metrics").expect("/metrics answers");
    assert_eq!(code, 200, "{body}");
    openmetrics::parse(&format!("{body}\n")).unwrap_or_else(|e| panic!("{e}\n{body}"))
}

/// What `node status` shows, in the metrics' terms: peers by (type,
/// Established or not) and blocks by path.
type Counts = (BTreeMap<(String, bool), f64>, BTreeMap<String, f64>);

fn counts_from_status(s: &pb::StatusResponse) -> Counts {
    let mut peers = BTreeMap::new();
    for p in &s.ipv4_peers {
        *peers
            .entry((p.peer_type.clone(), p.state == "up"))
            .or_insert(0.0) += 1.0;
    }
    let mut paths = BTreeMap::new();
    for r in &s.block_paths {
        *paths.entry(r.path.clone()).or_insert(0.0) += 1.0;
    }
    (peers, paths)
}

fn counts_from_metrics(m: &openmetrics::Exposition) -> Counts {
    let mut peers = BTreeMap::new();
    for s in m.matching("tabby_bgp_peers", &[]) {
        if s.value > 0.0 {
            let key = (s.labels["type"].clone(), s.labels["state"] == "Established");
            *peers.entry(key).or_insert(0.0) += s.value;
        }
    }
    let mut paths = BTreeMap::new();
    for s in m.matching("tabby_block_routes", &[]) {
        if s.value > 0.0 {
            paths.insert(s.labels["path"].clone(), s.value);
        }
    }
    (peers, paths)
}

/// The two views agree (polled: they are read a moment apart).
fn metrics_match_status(ns: &Netns, dir: &Path, name: &str) -> openmetrics::Exposition {
    let mut last = None;
    for _ in 0..20 {
        let m = scrape(ns);
        let s = status(dir, name).expect("node status");
        let (want, got) = (counts_from_status(&s), counts_from_metrics(&m));
        if want == got {
            return m;
        }
        last = Some((want, got));
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("metrics never matched node status: {last:?}");
}

#[test]
fn readiness_follows_the_bgp_peer_and_metrics_match_node_status() {
    let na = Netns::new("hla");
    let nb = Netns::new("hlb");
    let l = link_named(&na, &nb, 84, 1, 2);
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let started = Instant::now();
    let _a = start(&na, "node-a", dir);
    let b = start(&nb, "node-b", dir);

    wait_until("node-a ready", 30.0, || {
        readiness(&na).is_some_and(|(c, _)| c == 200)
    });
    assert_eq!(health_cmd(&na, "--ready"), (0, String::new()));
    assert_eq!(health_cmd(&na, "--live"), (0, String::new()));
    assert_eq!(get(&na, 9099, "/liveness").map(|r| r.0), Some(200));
    assert_eq!(get(&na, 9099, "/nope").map(|r| r.0), Some(404));

    let m = metrics_match_status(&na, dir, "node-a");
    let (peers, paths) = counts_from_metrics(&m);
    assert_eq!(
        peers.get(&("node-to-node mesh".into(), true)),
        Some(&1.0),
        "{peers:?}"
    );
    assert_eq!(paths.get("native"), Some(&1.0), "{paths:?}");
    assert_eq!(paths.get("blackhole"), Some(&1.0), "{paths:?}");
    assert_eq!(m.types["tabby_reconcile_passes"], "counter");
    let passes = m.sum("tabby_reconcile_passes_total", &[]).unwrap();
    assert!(passes >= 1.0, "{passes}");
    assert_eq!(
        m.sum("tabby_reconcile_pass_duration_seconds_count", &[]),
        Some(passes)
    );
    assert_eq!(
        m.sum("tabby_ipam_blocks", &[]),
        Some(1.0),
        "the tunnel address's block"
    );
    assert!(m.sum("tabby_ipam_addresses_in_use", &[]).unwrap() >= 1.0);
    assert_eq!(m.sum("tabby_netlink_errors_total", &[]), Some(0.0));
    assert_eq!(
        m.sum("tabby_vxlan_fallback_activations_total", &[]),
        Some(0.0)
    );
    let peer_b = [("peer", l.addr_b.as_str())];
    assert!(m.sum("tabby_bgp_prefixes_received", &peer_b).unwrap() >= 1.0);
    assert!(m.sum("tabby_bgp_prefixes_advertised", &peer_b).unwrap() >= 1.0);

    // Past calico-node's 30 s grace one Established peer would do; node-a
    // has only node-b, so freezing node-b must make it not ready.
    if let Some(left) = Duration::from_secs(31).checked_sub(started.elapsed()) {
        std::thread::sleep(left);
    }
    assert_eq!(readiness(&na).map(|r| r.0), Some(200));
    netns::run("kill", &["-STOP", &b.0.id().to_string()]);
    wait_until("node-a not ready after the hold time", 10.0, || {
        readiness(&na).is_some_and(|(c, _)| c == 503)
    });
    let (_, body) = readiness(&na).unwrap();
    assert!(
        body.starts_with("BGP not established with any peer: ") && body.contains(&l.addr_b),
        "{body}"
    );
    let (code, out) = health_cmd(&na, "--ready");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with("tabby-node is not ready: BGP not established with any peer: ")
            && out.contains(&l.addr_b),
        "{out}"
    );
    // Still live: the peer is gone, not the node's loops.
    assert_eq!(health_cmd(&na, "--live"), (0, String::new()));
    let m = metrics_match_status(&na, dir, "node-a");
    assert_eq!(m.sum("tabby_bgp_session_flaps_total", &peer_b), Some(1.0));
    assert_eq!(
        m.sum("tabby_bgp_peers", &[("state", "Established")]),
        Some(0.0)
    );

    netns::run("kill", &["-CONT", &b.0.id().to_string()]);
    wait_until("node-a ready again", 45.0, || {
        readiness(&na).is_some_and(|(c, _)| c == 200)
    });
    assert_eq!(health_cmd(&na, "--ready"), (0, String::new()));
    let m = metrics_match_status(&na, dir, "node-a");
    assert!(
        m.sum("tabby_vxlan_fallback_activations_total", &[])
            .unwrap()
            >= 1.0
    );
    assert_eq!(
        m.sum("tabby_bgp_peers", &[("state", "Established")]),
        Some(1.0)
    );
}
