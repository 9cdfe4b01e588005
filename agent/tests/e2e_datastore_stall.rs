//! Issue 15 items 12 and 13 in a lab on etcd, as reported: etcd stopped
//! with SIGSTOP shows in `tabbyctl node status` within seconds and is
//! logged once when lost and once when back; etcd down for a minute makes
//! a handful of WARN lines per node, not 181.

mod e2e_common;

use e2e_common::{serial, Lab};
use std::time::{Duration, Instant};

fn signal(pid: i32, sig: libc::c_int) {
    // SAFETY: kill(2) on the lab's own etcd.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill {pid}: {}", std::io::Error::last_os_error());
}

fn node_log(lab: &Lab) -> Vec<String> {
    std::fs::read_to_string(format!(
        "/var/run/tabby-lab/{}/node-1/tabby-node.log",
        lab.name
    ))
    .unwrap_or_default()
    .lines()
    .map(plain)
    .collect()
}

/// The line without its terminal colours (tabby-node's log is a tty's).
fn plain(l: &str) -> String {
    let mut out = String::with_capacity(l.len());
    let mut it = l.chars();
    while let Some(c) = it.next() {
        if c == '\u{1b}' {
            for d in it.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn wait(what: &str, secs: u64, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "{what}: not within {secs} s"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    t0.elapsed()
}

#[test]
fn a_hung_or_down_etcd_is_reported_and_logged_briefly() {
    let _s = serial();
    let lab = Lab::up(
        "stall",
        &[
            "--nodes",
            "2",
            "--subnets",
            "1",
            "--pods-per-node",
            "1",
            "--encapsulation",
            "None",
            "--datastore",
            "etcdv3",
        ],
    );
    let pid = lab.state["etcd_pid"].as_u64().expect("etcd pid") as i32;
    let mark = node_log(&lab).len();

    signal(pid, libc::SIGSTOP);
    let stalled = |lab: &Lab| {
        let (_, out) = lab.node_status("node-1");
        out.contains("Datastore not in sync: datastore not responding")
    };
    let noticed = wait("node status names the stall", 30, || stalled(&lab));
    eprintln!("FIGURE: node status named the SIGSTOPped etcd after {noticed:?}");
    std::thread::sleep(Duration::from_secs(20));
    let during: Vec<String> = node_log(&lab)[mark..].to_vec();
    signal(pid, libc::SIGCONT);
    wait("node status in sync again", 30, || !stalled(&lab));
    let mut after = Vec::new();
    wait("the return logged", 30, || {
        after = node_log(&lab)[mark..].to_vec();
        after.iter().any(|l| l.contains("datastore back after"))
    });
    let lost: Vec<&String> = after
        .iter()
        .filter(|l| l.contains("datastore not responding"))
        .collect();
    let back: Vec<&String> = after
        .iter()
        .filter(|l| l.contains("datastore back after"))
        .collect();
    eprintln!(
        "FIGURE: {} log lines during the stall; lost: {lost:?}; back: {back:?}",
        during.len()
    );
    assert_eq!(lost.len(), 1, "{after:#?}");
    assert_eq!(back.len(), 1, "{after:#?}");
    assert!(back[0].contains("resumed from revision"), "{back:?}");

    // etcd down for a minute.
    let (ok, out) = lab.lab(&["fault", "inject", "datastore-down", "--node", "node-1"]);
    assert!(ok, "{out}");
    let mark = node_log(&lab).len();
    std::thread::sleep(Duration::from_secs(60));
    let warns: Vec<String> = node_log(&lab)[mark..]
        .iter()
        .filter(|l| l.contains(" WARN "))
        .cloned()
        .collect();
    let longest = warns.iter().map(String::len).max().unwrap_or(0);
    eprintln!(
        "FIGURE: {} WARN lines in the minute etcd was down (longest {longest} characters):\n{}",
        warns.len(),
        warns.join("\n")
    );
    let (ok, out) = lab.lab(&["fault", "clear", "datastore-down", "--node", "node-1"]);
    assert!(ok, "{out}");
    let reflector: Vec<&String> = warns.iter().filter(|l| l.contains("reflector")).collect();
    assert!(reflector.len() <= 2, "{reflector:#?}");
    assert!(
        warns.iter().any(|l| l.contains("datastore not responding")),
        "{warns:#?}"
    );
}
