//! `node doctor`'s `route`, `pool` and `route-budget` checks on a real
//! lab (three nodes on two subnets, VXLANCrossSubnet): each seed fault is
//! injected as a host would have it, found and named, fixed by running the
//! printed fix, and gone again. Root only, like the other lab tests.

mod doctor_common;
mod e2e_common;

use doctor_common::{assert_clean, doctor, fault, run_fix, wait_report, Report};
use e2e_common::{serial, Lab, TABBYCTL};
use serde_json::Value;
use std::time::{Duration, Instant};

const NODE: &str = "node-1";
const WAIT: Duration = Duration::from_secs(30);

/// The first finding of `check` whose `what` has `needle`, waiting for it.
fn found(lab: &Lab, args: &[&str], check: &str, needle: &str) -> (Report, Value) {
    let r = wait_report(lab, NODE, args, WAIT, |r| r.find(check, needle).is_some());
    let f = r
        .find(check, needle)
        .cloned()
        .unwrap_or_else(|| panic!("no {check} finding with {needle:?}:\n{}", r.text));
    (r, f)
}

fn text(f: &Value, key: &str) -> String {
    f[key].as_str().unwrap_or_default().to_string()
}

/// Waits until no finding of `check` is left.
fn gone(lab: &Lab, check: &str) {
    let r = wait_report(lab, NODE, &[], WAIT, |r| r.of(check).is_empty());
    assert!(r.of(check).is_empty(), "the fix left:\n{}", r.text);
}

/// One ping from node-1 to `ip` (inside the lab's namespaces).
fn reaches(lab: &Lab, ip: &str) -> bool {
    lab.exec(NODE, &["ping", "-c", "1", "-W", "1", ip])
        .status
        .success()
}

fn foreign_route(lab: &Lab) {
    let pod = lab.pod_ip("pod-2-1").to_string();
    fault(lab, "inject", "foreign-route", NODE);
    let (r, f) = found(lab, &[], "route", "network address of 172.31.1.0/24");
    assert!(
        !r.ok,
        "an error-level finding fails the doctor:\n{}",
        r.text
    );
    assert_eq!(f["severity"], "error", "{f}");
    let what = text(&f, "what");
    assert!(what.contains("inside node-2's block"), "{what}");
    assert!(what.contains("more specific"), "{what}");
    // The evidence is the route as `ip route` prints it on the node.
    let statics = lab.sh(NODE, &["ip", "route", "show"]);
    let line = statics
        .lines()
        .find(|l| l.contains("proto static"))
        .unwrap_or_default()
        .trim()
        .to_string();
    assert!(text(&f, "evidence").starts_with(&line), "{f}\n{statics}");
    let fix = text(&f, "fix");
    assert_eq!(fix, format!("ip route del {line}"), "{f}");
    // Seed 000 as users saw it: node-2's pods are gone from node-1.
    assert!(!reaches(lab, &pod), "{pod} answered through {line}");
    run_fix(lab, NODE, &f);
    gone(lab, "route");
    assert!(
        e2e_common::wait_until(Duration::from_secs(10), || reaches(lab, &pod)),
        "{pod} unreachable after the fix"
    );
    fault(lab, "clear", "foreign-route", NODE);
}

fn wrong_next_hop(lab: &Lab) {
    fault(lab, "inject", "wrong-next-hop", NODE);
    let (r, f) = found(
        lab,
        &[],
        "route",
        "neither node-2's node address (172.31.1.12)",
    );
    // Behind Tabby's metric-0 route it carries nothing yet: a warning.
    assert_eq!(f["severity"], "warning", "{f}");
    assert!(r.ok, "warnings alone pass:\n{}", r.text);
    assert!(text(&f, "what").contains("sends it to 172.31.1.1"), "{f}");
    assert!(text(&f, "what").contains("takes over"), "{f}");
    let fix = text(&f, "fix");
    assert!(
        fix.starts_with("ip route del 172.30.")
            && fix.ends_with(" via 172.31.1.1 dev eth0 proto static metric 100"),
        "{fix}"
    );
    run_fix(lab, NODE, &f);
    gone(lab, "route");
    // Only that route went: Tabby's own for the block is still there.
    let block = fix
        .split_whitespace()
        .nth(3)
        .unwrap_or_default()
        .to_string();
    let tabby = lab.route_to(NODE, &block).unwrap_or_default();
    assert_eq!(tabby["gateway"], "172.31.1.12", "{tabby}");
    fault(lab, "clear", "wrong-next-hop", NODE);
}

fn overlapping_pool(lab: &Lab) {
    fault(lab, "inject", "overlapping-pool", NODE);
    let (_, f) = found(
        lab,
        &[],
        "pool",
        "contains the address of node-1 (172.31.1.11)",
    );
    assert_eq!(f["severity"], "error", "{f}");
    let what = text(&f, "what");
    assert!(
        what.starts_with("IPPool overlapping-pool (172.31.0.0/16)"),
        "{what}"
    );
    assert!(what.contains("node-3 (172.31.2.13)"), "{what}");
    assert!(
        text(&f, "evidence").contains("Node node-2 address 172.31.1.12/24"),
        "{f}"
    );
    let fix = text(&f, "fix");
    assert!(
        fix.starts_with("tabbyctl delete ippool overlapping-pool"),
        "{fix}"
    );
    assert!(
        fix.contains("10.0.0.0/16"),
        "a free range of the same size: {fix}"
    );
    run_fix(lab, NODE, &f);
    gone(lab, "pool");
    fault(lab, "clear", "overlapping-pool", NODE);
}

fn tiny_blocks(lab: &Lab) {
    fault(lab, "inject", "tiny-blocks", NODE);
    let (_, f) = found(lab, &[], "route-budget", "blockSize 32");
    assert_eq!(f["severity"], "warning", "{f}");
    let what = text(&f, "what");
    assert!(what.contains("65536 possible blocks"), "{what}");
    assert!(what.contains("runs out of addresses at 20 pods"), "{what}");
    let fix = text(&f, "fix");
    assert!(
        fix.starts_with("tabbyctl delete ippool tiny-blocks"),
        "{fix}"
    );
    assert!(fix.contains("blockSize: 26"), "{fix}");
    run_fix(lab, NODE, &f);
    gone(lab, "route-budget");
    fault(lab, "clear", "tiny-blocks", NODE);
}

fn route_limits(lab: &Lab) {
    // Three blocks in use (one per node) against a table of two routes.
    let r = doctor(lab, NODE, &["--route-limit", "2"]);
    let f = r
        .find("route-budget", "3 block routes are in use")
        .unwrap_or_else(|| panic!("{}", r.text));
    assert_eq!(f["severity"], "error", "{f}");
    assert!(!r.ok);
    assert!(text(f, "what").contains("route limit of 2"), "{f}");
    // No block size gives three nodes a block each in two routes.
    assert!(
        text(f, "fix").starts_with("3 nodes need at least one block route each"),
        "{f}"
    );
    // ...and names the block size that comes closest: one /25 per node.
    assert!(
        text(f, "fix").contains("blockSize: 25 brings it down to 3"),
        "{f}"
    );
    // Four fit today, but full nodes need two /26s each: six.
    let r = doctor(lab, NODE, &["--route-limit", "4"]);
    let f = r
        .find("route-budget", "can come to need 6 block routes")
        .unwrap_or_else(|| panic!("{}", r.text));
    assert_eq!(f["severity"], "warning", "{f}");
    assert!(text(f, "fix").contains("blockSize: 25"), "{f}");
    assert!(
        text(f, "evidence").contains("3 node(s) × 2 block(s) of /26"),
        "{f}"
    );
}

/// `apply` refuses what `overlapping-pool` wrote past it, naming the node.
fn apply_refuses(lab: &Lab) {
    let file = lab_file(lab, "wide-pool.yaml");
    std::fs::write(
        &file,
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: wide}\nspec: {cidr: 172.31.0.0/16}\n",
    )
    .unwrap();
    let (ok, out) = lab.tabbyctl(&["apply", "-f", file.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(out.contains("spec.cidr: 172.31.0.0/16 contains"), "{out}");
    assert!(
        out.contains("Node \"node-1\"'s address 172.31.1.11"),
        "{out}"
    );
    assert!(out.contains("Nothing was applied."), "{out}");
}

fn lab_file(lab: &Lab, name: &str) -> std::path::PathBuf {
    std::path::Path::new("/var/run/tabby-lab")
        .join(&lab.name)
        .join(name)
}

#[test]
fn route_pool_and_budget_faults_are_found_and_fixed() {
    let _g = serial();
    // The fixes call tabbyctl by name, as an operator's shell would.
    let bin = std::path::Path::new(TABBYCTL).parent().unwrap();
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::set_var("PATH", format!("{}:{path}", bin.display()));

    let started = Instant::now();
    let lab = Lab::three_nodes("drt", "2", "VXLANCrossSubnet");
    for n in lab.node_names() {
        assert_clean(&lab, &n, &[]);
    }
    foreign_route(&lab);
    wrong_next_hop(&lab);
    overlapping_pool(&lab);
    tiny_blocks(&lab);
    route_limits(&lab);
    apply_refuses(&lab);
    // Every fault is out again, and the lab is as healthy as it started.
    assert_clean(&lab, NODE, &[]);
    let (ok, out) = lab.wait_check(Duration::from_secs(30));
    assert!(ok, "{out}");
    eprintln!("doctor_routes: {:.1} s", started.elapsed().as_secs_f64());
}
