//! The contended case: PROCESSES separate assigner processes (this bench
//! binary re-run as a child, as `agent/tests/ipam_processes.rs` does), each
//! one node with its own watch-fed cache, all assigning at once against one
//! etcd; next to PROCESSES raw CAS clients on their own keys in the same
//! run. Every address is collected and duplicates are asserted away.

use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp};
use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tabby_agent::datastore::{etcd::EtcdStore, Datastore};
use tabby_agent::ipam::DatastoreIpam;
use tabby_agent::resources::ippool::IpPoolSpec;
use tabby_agent::resources::{Object, Resource};
use tabby_ipam::allocator::{AssignRequest, Ipam};

pub const PROCESSES: usize = 8;
/// Assignments per process.
pub const EACH: usize = 250;
const CHILD_ENV: &str = "TABBY_BENCH_ASSIGNER_CHILD";

fn epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// utime+stime of a process in seconds (/proc/PID/stat fields 14, 15).
pub fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |r| r.1);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // sysconf(_SC_CLK_TCK) is 100 on every Linux this runs on.
    (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) / 100.0
}

fn wait_file(p: &Path) {
    while !p.exists() {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// In a child process: the run's part, then exit. Otherwise returns.
pub async fn child_if_asked() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let parts: Vec<&str> = spec.split('|').collect();
    let [endpoint, id, dir] = parts[..] else {
        panic!("{CHILD_ENV}: expected endpoint|id|dir, got {spec:?}");
    };
    let ds: Arc<dyn Datastore> = Arc::new(
        EtcdStore::connect(&[endpoint.to_string()])
            .await
            .expect("child connects to etcd"),
    );
    // IPAM_BENCH_UNCACHED=1: no watch-fed cache (every read goes to etcd),
    // to tell the cache's watch fan-out from the assignments themselves.
    let store = if std::env::var_os("IPAM_BENCH_UNCACHED").is_some() {
        DatastoreIpam::new(ds)
    } else {
        let s = DatastoreIpam::cached(ds);
        assert!(s.wait_ready(Duration::from_secs(30)).await, "cache loads");
        s
    };
    let ipam = Ipam::new(store);
    let dir = Path::new(dir);
    std::fs::write(dir.join(format!("ready-{id}")), b"").unwrap();
    wait_file(&dir.join("go"));
    let (start, cpu0) = (epoch(), cpu_seconds("self"));
    let mut got = Vec::with_capacity(EACH);
    for i in 0..EACH {
        let req = AssignRequest::new(
            &format!("k8s-pod-network.c{id}-{i}"),
            &format!("cnode-{id}"),
        );
        got.extend(ipam.auto_assign(&req).await.unwrap().0);
    }
    let (end, cpu) = (epoch(), cpu_seconds("self") - cpu0);
    let ips: Vec<String> = got.iter().map(|ip| ip.to_string()).collect();
    println!("RESULT {start:.6} {end:.6} {cpu:.2} {}", ips.join(","));
    std::process::exit(0);
}

pub struct Contended {
    pub rate: f64,
    /// CPU milliseconds per assignment: the assigners', etcd's.
    pub cpu_assigners_ms: f64,
    pub cpu_etcd_ms: f64,
}

/// Aggregate assignments per second over all processes, and where the
/// machine's CPU went (on 2 shared cores, CPU per assignment bounds the
/// aggregate rate).
pub async fn assign_processes(endpoint: &str, etcd_pid: u32, ds: Arc<dyn Datastore>) -> Contended {
    let mut spec = IpPoolSpec {
        cidr: "10.90.0.0/16".into(),
        ..Default::default()
    };
    spec.fill_defaults(false);
    ds.create(Resource::IpPool(Object::new("IPPool", "contended", spec)))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..PROCESSES)
        .map(|id| {
            Command::new(&exe)
                .env(
                    CHILD_ENV,
                    format!("{endpoint}|{id}|{}", dir.path().display()),
                )
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn assigner child")
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(0..PROCESSES).all(|id| dir.path().join(format!("ready-{id}")).exists()) {
        assert!(Instant::now() < deadline, "assigner children did not start");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let etcd_cpu0 = cpu_seconds(&etcd_pid.to_string());
    std::fs::write(dir.path().join("go"), b"").unwrap();
    let (mut first, mut last) = (f64::MAX, 0f64);
    let mut seen = HashSet::new();
    let (mut total, mut cpu) = (0, 0.0);
    for c in children {
        let out = tokio::task::spawn_blocking(move || c.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        assert!(out.status.success(), "assigner child failed");
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("RESULT "))
            .expect("child prints RESULT");
        let mut f = line.split(' ');
        first = first.min(f.next().unwrap().parse().unwrap());
        last = last.max(f.next().unwrap().parse().unwrap());
        cpu += f.next().unwrap().parse::<f64>().unwrap();
        for ip in f.next().unwrap_or("").split(',').filter(|s| !s.is_empty()) {
            total += 1;
            assert!(seen.insert(ip.to_string()), "address {ip} handed out twice");
        }
    }
    assert_eq!(
        total,
        PROCESSES * EACH,
        "every assignment returned one address"
    );
    assert_eq!(seen.len(), total, "0 duplicates");
    let etcd_cpu = cpu_seconds(&etcd_pid.to_string()) - etcd_cpu0;
    Contended {
        rate: total as f64 / (last - first),
        cpu_assigners_ms: cpu * 1e3 / total as f64,
        cpu_etcd_ms: etcd_cpu * 1e3 / total as f64,
    }
}

/// PROCESSES raw CAS clients, each on its own key: etcd's concurrent
/// transaction rate.
/// Returns the rate and etcd's CPU milliseconds per transaction.
pub async fn raw_concurrent(endpoint: &str, etcd_pid: u32) -> (f64, f64) {
    let mut tasks = Vec::new();
    for id in 0..PROCESSES {
        let mut c = Client::connect([endpoint], None).await.unwrap();
        let key = format!("/bench/raw-{id}");
        let put = c.put(key.as_str(), "0", None).await.unwrap();
        let mut rev = put.header().unwrap().revision();
        tasks.push(async move {
            let start = Instant::now();
            for i in 0..EACH {
                let txn = Txn::new()
                    .when([Compare::mod_revision(key.as_str(), CompareOp::Equal, rev)])
                    .and_then([TxnOp::put(key.as_str(), i.to_string(), None)]);
                let r = c.txn(txn).await.unwrap();
                assert!(r.succeeded());
                rev = r.header().unwrap().revision();
            }
            start.elapsed()
        });
    }
    let (start, cpu0) = (Instant::now(), cpu_seconds(&etcd_pid.to_string()));
    let handles: Vec<_> = tasks.into_iter().map(tokio::spawn).collect();
    for h in handles {
        h.await.unwrap();
    }
    let n = (PROCESSES * EACH) as f64;
    let cpu = cpu_seconds(&etcd_pid.to_string()) - cpu0;
    (n / start.elapsed().as_secs_f64(), cpu * 1e3 / n)
}
