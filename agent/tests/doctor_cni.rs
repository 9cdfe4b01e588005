//! `node doctor`'s `cni`, `ipam`, `vtep` and `datastore` checks against
//! one real lab (2 nodes on 2 subnets, SQLite): healthy first, then each
//! fault injected with `lab fault` as a host would have it, found with its
//! fix, the fix run as printed (or the fault cleared), and gone again.
//! Needs root.

mod doctor_common;
mod e2e_common;

use doctor_common::*;
use e2e_common::*;
use serde_json::Value;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn s(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

/// Waits for `check`'s finding whose `what` has `needle` on `node`.
fn found(lab: &Lab, node: &str, check: &str, needle: &str) -> Value {
    let r = wait_report(lab, node, &[], WAIT, |r| r.find(check, needle).is_some());
    r.find(check, needle)
        .cloned()
        .unwrap_or_else(|| panic!("no {check} finding with {needle:?} on {node}:\n{}", r.text))
}

/// Waits until `node` has no `check` finding at all.
fn gone(lab: &Lab, node: &str, check: &str) {
    let r = wait_report(lab, node, &[], WAIT, |r| r.of(check).is_empty());
    assert!(
        r.of(check).is_empty(),
        "{check} still found on {node}:\n{}",
        r.text
    );
}

#[test]
fn cni_ipam_vtep_and_datastore_faults_are_found_and_fixed() {
    let _g = serial();
    // The fixes say `tabbyctl`, as an operator in tabby-node's pod types
    // it: this test's build is that tabbyctl.
    let bin = std::path::Path::new(TABBYCTL).parent().unwrap();
    std::env::set_var(
        "PATH",
        format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    );
    let lab = Lab::up(
        "dcni",
        &["--nodes", "2", "--subnets", "2", "--pods-per-node", "1"],
    );
    assert_clean(&lab, "node-1", &[]);
    assert_clean(&lab, "node-2", &[]);
    let net_d = format!("/var/run/tabby-lab/{}/node-1/host/etc/cni/net.d", lab.name);

    // Seed 003: a leftover flannel conflist sorts first and wins.
    fault(&lab, "inject", "foreign-conflist", "node-1");
    let f = found(&lab, "node-1", "cni", "05-flannel.conflist");
    assert_eq!(s(&f, "severity"), "error");
    assert!(
        s(&f, "what").contains("not Tabby's 10-tabby.conflist"),
        "{f}"
    );
    assert_eq!(
        s(&f, "evidence"),
        format!("ls {net_d}: 05-flannel.conflist 10-tabby.conflist")
    );
    assert_eq!(
        s(&f, "fix"),
        format!("mv {net_d}/05-flannel.conflist {net_d}/05-flannel.conflist.disabled")
    );
    run_fix(&lab, "node-1", &f);
    gone(&lab, "node-1", "cni");
    fault(&lab, "clear", "foreign-conflist", "node-1");

    // The plugin binary gone from the bin dir.
    fault(&lab, "inject", "missing-cni-bin", "node-1");
    let f = found(&lab, "node-1", "cni", "the tabby CNI plugin is missing");
    assert_eq!(s(&f, "severity"), "error");
    assert!(s(&f, "fix").starts_with("install -m 0755 "), "{f}");
    assert!(
        s(&f, "fix").ends_with("/node-1/host/opt/cni/bin/tabby"),
        "{f}"
    );
    run_fix(&lab, "node-1", &f);
    gone(&lab, "node-1", "cni");
    fault(&lab, "clear", "missing-cni-bin", "node-1");

    // An ADD an hour ago whose DEL never came.
    fault(&lab, "inject", "ipam-leak", "node-1");
    let f = found(&lab, "node-1", "ipam", "is leaked");
    assert_eq!(s(&f, "severity"), "warning");
    assert!(s(&f, "what").contains("k8s-pod-network."), "{f}");
    let ip = s(&f, "what").split_whitespace().nth(1).unwrap().to_string();
    assert_eq!(s(&f, "fix"), format!("tabbyctl ipam release --ip {ip}"));
    // It is node-1's block's address: node-2 does not report it.
    assert!(doctor(&lab, "node-2", &[]).of("ipam").is_empty());
    run_fix(&lab, "node-1", &f);
    gone(&lab, "node-1", "ipam");
    fault(&lab, "clear", "ipam-leak", "node-1");

    // node-2's Node claims node-1's IP as its tunnel address.
    let ip1 = lab.node_ip("node-1").to_string();
    let (tunnel2, _) = lab.vtep("node-2");
    fault(&lab, "inject", "vtep-conflict", "node-1");
    let needle = format!("node node-2's VXLAN tunnel address {ip1} is node node-1's IP");
    let f = found(&lab, "node-1", "vtep", &needle);
    assert_eq!(s(&f, "severity"), "error");
    assert!(
        s(&f, "evidence").contains(&format!("holds {tunnel2}")),
        "{f}"
    );
    assert!(s(&f, "fix").contains(&format!("\\1 {tunnel2}/")), "{f}");
    found(&lab, "node-2", "vtep", &needle);
    // tabby-node on node-2 does not repair its Node by itself: a few
    // seconds on, the bad address is still there.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(lab.vtep("node-2").0.to_string(), ip1);
    run_fix(&lab, "node-1", &f);
    gone(&lab, "node-1", "vtep");
    gone(&lab, "node-2", "vtep");
    assert_eq!(lab.vtep("node-2").0, tunnel2);
    fault(&lab, "clear", "vtep-conflict", "node-1");

    // The SQLite file replaced by a directory.
    fault(&lab, "inject", "datastore-down", "node-1");
    let f = found(&lab, "node-1", "datastore", "cannot be read");
    assert_eq!(s(&f, "severity"), "error");
    assert!(s(&f, "fix").starts_with("TABBY_DATASTORE="), "{f}");
    fault(&lab, "clear", "datastore-down", "node-1");
    gone(&lab, "node-1", "datastore");

    // Clearing twice is harmless, and the lab is healthy again.
    for name in [
        "foreign-conflist",
        "missing-cni-bin",
        "ipam-leak",
        "vtep-conflict",
        "datastore-down",
    ] {
        fault(&lab, "clear", name, "node-1");
    }
    assert_clean(&lab, "node-1", &[]);
    assert_clean(&lab, "node-2", &[]);
    let (ok, out) = lab.wait_check(Duration::from_secs(30));
    assert!(ok, "{out}");
}
