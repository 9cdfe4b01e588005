//! `node doctor`'s `bgp`, `forward` and `sysctl` checks against faults put
//! into one running lab (3 nodes on one subnet, BGP mesh, pool
//! encapsulation None so a cut session falls back to VXLAN): for each,
//! healthy → inject → the finding with its fix → the fix (or clear) → gone.
//! Root only.

mod doctor_common;
mod e2e_common;

use doctor_common::{assert_clean, doctor, fault, run_fix, wait_report, Report};
use e2e_common::{serial, Lab, TABBYCTL};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Long enough for a hold timer (9 s) to expire, the error-wait backoff to
/// pass and a doctor run with probes to finish, on a loaded machine.
const SESSION: Duration = Duration::from_secs(60);
const QUICK: Duration = Duration::from_secs(15);

fn text(f: &Value, key: &str) -> String {
    f[key].as_str().unwrap_or_default().to_string()
}

/// Waits for a `check` finding on `node` whose `what` contains `needle`
/// (and whose evidence contains `evidence`), returning it.
fn found(lab: &Lab, node: &str, check: &str, needle: &str, evidence: &str, t: Duration) -> Value {
    let r = wait_report(lab, node, &[], t, |r| {
        r.find(check, needle)
            .is_some_and(|f| text(f, "evidence").contains(evidence))
    });
    let f = r.find(check, needle).unwrap_or_else(|| {
        panic!(
            "{node}: no [{check}] finding with {needle:?}:\n{}\n{}",
            r.text,
            lab.logs()
        )
    });
    assert!(
        text(f, "evidence").contains(evidence),
        "{node}: [{check}] evidence lacks {evidence:?}:\n{}",
        r.text
    );
    f.clone()
}

/// Waits until `node` has no finding of `check`.
fn gone(lab: &Lab, node: &str, check: &str, t: Duration) {
    let r: Report = wait_report(lab, node, &[], t, |r| r.of(check).is_empty());
    assert!(
        r.of(check).is_empty(),
        "{node}: [{check}] still found:\n{}\n{}",
        r.text,
        lab.logs()
    );
}

fn error(f: &Value) {
    assert_eq!(f["severity"], "error", "{f}");
}

#[test]
fn doctor_finds_bgp_forward_and_sysctl_faults_with_their_fixes() {
    let _g = serial();
    let started = Instant::now();
    // The fixes call `tabbyctl` by name, as an operator's shell would.
    let bin = std::path::Path::new(TABBYCTL).parent().unwrap();
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::set_var("PATH", format!("{}:{path}", bin.display()));
    let lab = Lab::up(
        "dbgp",
        &[
            "--nodes",
            "3",
            "--subnets",
            "1",
            "--pods-per-node",
            "1",
            "--encapsulation",
            "None",
        ],
    );
    for n in ["node-1", "node-2", "node-3"] {
        assert_clean(&lab, n, &[]);
    }

    // block-179 on node-1, the node every other one connects to (the
    // higher address connects on the mesh).
    fault(&lab, "inject", "block-179", "node-1");
    let r = wait_report(&lab, "node-1", &[], SESSION, |r| r.of("bgp").len() == 2);
    for f in r.of("bgp") {
        error(f);
        assert!(
            text(f, "what").contains("this node's firewall drops TCP 179"),
            "{}",
            r.text
        );
        assert!(
            text(f, "fix").starts_with("nft delete rule inet bgpblock input handle "),
            "{}",
            r.text
        );
    }
    let local = r.of("bgp")[0].clone();
    // The remote side: filtered, found by the probe, and fallback named.
    let f = found(
        &lab,
        "node-2",
        "bgp",
        "TCP 179 on node-1 does not answer",
        "VXLAN fallback carries 1 block of node-1 meanwhile",
        SESSION,
    );
    error(&f);
    assert!(text(&f, "fix").starts_with("on node-1: run tabbyctl node doctor"));
    assert!(text(&f, "fix").contains("tcp dport 179 accept"));
    run_fix(&lab, "node-1", &local);
    gone(&lab, "node-1", "bgp", SESSION);
    gone(&lab, "node-2", "bgp", SESSION);
    fault(&lab, "clear", "block-179", "node-1");
    fault(&lab, "clear", "block-179", "node-1");

    // reject-179: refused, seen from node-2; the rule, seen on node-1.
    fault(&lab, "inject", "reject-179", "node-1");
    let f = found(
        &lab,
        "node-2",
        "bgp",
        "node-1 refuses TCP 179",
        "refused",
        SESSION,
    );
    error(&f);
    let f = found(
        &lab,
        "node-1",
        "bgp",
        "firewall rejects TCP 179",
        "reject",
        QUICK,
    );
    assert!(text(&f, "fix").starts_with("nft delete rule inet bgpreject input handle "));
    fault(&lab, "clear", "reject-179", "node-1");
    gone(&lab, "node-1", "bgp", SESSION);
    gone(&lab, "node-2", "bgp", SESSION);

    // Tabby repairs these two within seconds while it runs: the doctor
    // works with node-1's tabby-node stopped.
    let (ok, out) = lab.lab(&["node", "stop", "node-1"]);
    assert!(ok, "{out}");
    fault(&lab, "inject", "forward-drop", "node-1");
    let f = found(
        &lab,
        "node-1",
        "forward",
        "drops pod traffic (policy drop)",
        "",
        QUICK,
    );
    error(&f);
    assert!(
        text(&f, "what").contains("inet filter forward")
            && text(&f, "what").contains("not running")
    );
    assert_eq!(
        text(&f, "fix"),
        "nft insert rule inet filter forward ip daddr { 172.30.0.0/16 } accept && \
         nft insert rule inet filter forward ip saddr { 172.30.0.0/16 } accept"
    );
    run_fix(&lab, "node-1", &f);
    assert!(doctor(&lab, "node-1", &[]).of("forward").is_empty());
    fault(&lab, "clear", "forward-drop", "node-1");

    fault(&lab, "inject", "ip-forward-off", "node-1");
    let f = found(
        &lab,
        "node-1",
        "sysctl",
        "IPv4 forwarding is off",
        "ip_forward = 0",
        QUICK,
    );
    error(&f);
    assert_eq!(text(&f, "fix"), "sysctl -w net.ipv4.ip_forward=1");
    run_fix(&lab, "node-1", &f);
    assert!(doctor(&lab, "node-1", &[]).of("sysctl").is_empty());
    fault(&lab, "clear", "ip-forward-off", "node-1");
    let (ok, out) = lab.lab(&["node", "start", "node-1"]);
    assert!(ok, "{out}");

    // iptables-legacy: out of Tabby's reach, so found with it running.
    fault(&lab, "inject", "forward-drop-legacy", "node-2");
    let f = found(
        &lab,
        "node-2",
        "forward",
        "iptables-legacy's FORWARD chain",
        "-P FORWARD DROP",
        QUICK,
    );
    error(&f);
    assert!(text(&f, "what").contains("cannot see or change legacy tables"));
    assert_eq!(
        text(&f, "fix"),
        "iptables-legacy -I FORWARD 1 -s 172.30.0.0/16 -j ACCEPT && \
         iptables-legacy -I FORWARD 1 -d 172.30.0.0/16 -j ACCEPT"
    );
    run_fix(&lab, "node-2", &f);
    gone(&lab, "node-2", "forward", QUICK);
    fault(&lab, "clear", "forward-drop-legacy", "node-2");
    for dir in ["-s", "-d"] {
        lab.sh(
            "node-2",
            &[
                "iptables-legacy",
                "-D",
                "FORWARD",
                dir,
                "172.30.0.0/16",
                "-j",
                "ACCEPT",
            ],
        );
    }

    // rp-filter-strict: a warning, fixed by loosening eth0 alone.
    fault(&lab, "inject", "rp-filter-strict", "node-3");
    let f = found(
        &lab,
        "node-3",
        "sysctl",
        "strict reverse-path filtering on eth0",
        "effective max = 1",
        QUICK,
    );
    assert_eq!(f["severity"], "warning", "{f}");
    assert_eq!(text(&f, "fix"), "sysctl -w net.ipv4.conf.eth0.rp_filter=2");
    run_fix(&lab, "node-3", &f);
    gone(&lab, "node-3", "sysctl", QUICK);
    fault(&lab, "clear", "rp-filter-strict", "node-3");

    for n in ["node-1", "node-2", "node-3"] {
        assert_clean(&lab, n, &[]);
    }
    eprintln!("doctor_bgp: {:.0} s", started.elapsed().as_secs_f64());
}
