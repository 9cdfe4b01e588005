//! End to end, pod lifecycle and daemon restart: deleting a pod through the
//! CNI plugin releases its address and removes its route; kill -9 of one
//! tabby-node and a restart lose at most one ping of a 10-per-second stream
//! across it, the other nodes keeping its routes meanwhile (graceful
//! restart). Root only.

mod e2e_common;

use e2e_common::{serial, wait_until, Lab};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn pod_delete_releases_address_and_route() {
    let _g = serial();
    let mut lab = Lab::three_nodes("poddel", "1", "None");
    let pod = "pod-1-1";
    let ip = lab.pod_ip(pod).to_string();
    let (ok, out) = lab.tabbyctl(&["ipam", "show", "--ip", &ip]);
    assert!(ok && out.contains("is in use"), "before delete: {out}");
    let route = lab.sh("node-1", &["ip", "route", "show", &format!("{ip}/32")]);
    assert!(
        route.contains("dev cali"),
        "no workload route for {ip}: {route:?}"
    );

    let (ok, out) = lab.lab(&["pod", "delete", pod]);
    assert!(ok, "pod delete: {out}");
    lab.refresh();
    let (_, out) = lab.tabbyctl(&["ipam", "show", "--ip", &ip]);
    assert!(out.contains("is not assigned"), "after delete: {out}");
    let route = lab.sh("node-1", &["ip", "route", "show", &format!("{ip}/32")]);
    assert!(
        route.trim().is_empty(),
        "workload route for {ip} is still there: {route}"
    );
    assert!(lab.pods().iter().all(|p| p["name"] != pod));

    // The lab still works for the remaining pods, and a new pod gets wired.
    let (ok, out) = lab.lab(&["pod", "add", "pod-1-9", "--node", "node-1"]);
    assert!(ok, "pod add: {out}");
    lab.refresh();
    let mut last = String::new();
    let ok = wait_until(Duration::from_secs(15), || {
        let (ok, out) = lab.check();
        last = out;
        ok
    });
    assert!(ok, "{last}");
}

#[test]
fn kill_and_restart_keeps_routes() {
    let _g = serial();
    let lab = Lab::three_nodes("restart", "1", "None");
    let mut last = String::new();
    let ok = wait_until(Duration::from_secs(30), || {
        let (ok, out) = lab.check();
        last = out;
        ok
    });
    assert!(ok, "lab not converged: {last}\n{}", lab.logs());
    let victim = "node-2";
    let dst = lab.pod_ip("pod-2-1").to_string();
    let blocks = lab.blocks_of(victim);

    // 10 pings a second from a node-1 pod to a node-2 pod, across the
    // restart.
    let ping = Command::new("ip")
        .args(["netns", "exec", &lab.netns("pod-1-1")])
        .args(["ping", "-i", "0.1", "-c", "100000", "-W", "1", &dst])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ping");
    std::thread::sleep(Duration::from_secs(2));
    let (ok, out) = lab.lab(&["node", "kill", victim]);
    assert!(ok, "{out}");
    std::thread::sleep(Duration::from_secs(2));
    // While it is down, the others keep its blocks' routes.
    for n in ["node-1", "node-3"] {
        for b in &blocks {
            assert!(
                lab.native_route_ok(n, victim, b).is_ok(),
                "{n} dropped {victim}'s block {b} while it restarts"
            );
        }
    }
    let (ok, out) = lab.lab(&["node", "start", victim]);
    assert!(ok, "restart: {out}\n{}", lab.logs());
    // A few seconds more of the restarted node, then ping's summary
    // (it prints it on SIGINT; `ip netns exec` exec'd it, same pid).
    std::thread::sleep(Duration::from_secs(3));
    let _ = Command::new("kill")
        .args(["-INT", &ping.id().to_string()])
        .status();
    let out = ping.wait_with_output().expect("ping output");
    let text = String::from_utf8_lossy(&out.stdout);
    let summary = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("no ping summary: {text}"));
    let nums: Vec<u32> = summary
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|s| s.parse().ok())
        .collect();
    let (sent, got) = (nums[0], nums[1]);
    println!("across the restart of {victim}: {summary}");
    assert!(
        sent - got <= 1,
        "lost {} of {sent} pings across the restart: {summary}\n{}",
        sent - got,
        lab.logs()
    );
    // The restarted node is a full member again.
    let ok = wait_until(Duration::from_secs(30), || {
        lab.established_peers(victim).len() == 2
    });
    assert!(ok, "{}", lab.node_status(victim).1);
    for n in ["node-1", "node-3"] {
        for b in &blocks {
            assert!(lab.native_route_ok(n, victim, b).is_ok(), "{n}: {b}");
        }
    }
}

/// `lab down` after a crash: the record is gone and a daemon still runs,
/// yet everything with the lab's prefix goes; a second `down` is a no-op.
#[test]
fn down_after_a_crash_is_complete_and_idempotent() {
    let _g = serial();
    let lab = Lab::up(
        "crash",
        &["--nodes", "2", "--subnets", "1", "--pods-per-node", "1"],
    );
    let pid = lab.node("node-1")["pid"].as_u64().unwrap();
    std::fs::remove_file(format!("/var/run/tabby-lab/{}/lab.json", lab.name)).unwrap();
    let (ok, out) = lab.lab(&["down"]);
    assert!(ok, "{out}");
    let left: Vec<String> = String::from_utf8_lossy(
        &Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .lines()
    .filter(|l| l.starts_with(&format!("{}_", lab.name)))
    .map(str::to_string)
    .collect();
    assert!(left.is_empty(), "namespaces left: {left:?}");
    assert!(
        wait_until(Duration::from_secs(5), || !std::path::Path::new(&format!(
            "/proc/{pid}"
        ))
        .exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z "))),
        "tabby-node {pid} survived lab down"
    );
    assert!(!std::path::Path::new(&format!("/var/run/tabby-lab/{}", lab.name)).exists());
    let (ok, out) = lab.lab(&["down"]);
    assert!(ok && out.contains("removed 0 namespace(s)"), "{out}");
}
