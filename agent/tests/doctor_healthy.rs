//! `node doctor` on healthy labs finds nothing: every check group stays
//! quiet on a working mesh (one subnet, no encapsulation), VXLAN Always and
//! VXLANCrossSubnet over two subnets, run on every node and through
//! `--all-nodes`; `node status` says `No problems found.`. A doctor that
//! cries wolf on a working cluster would teach operators to ignore it.
//! Root only.

mod doctor_common;
mod e2e_common;

use doctor_common::assert_clean;
use e2e_common::{serial, Lab, TABBYCTL};
use std::time::Duration;

fn healthy(lab: &Lab) {
    let (ok, out) = lab.wait_check(Duration::from_secs(30));
    assert!(
        ok,
        "the lab is not healthy to begin with:\n{out}\n{}",
        lab.logs()
    );
    for node in lab.node_names() {
        assert_clean(lab, &node, &[]);
    }
    // The cluster view: each node's report through `lab exec`.
    let template = format!("{TABBYCTL} lab --name {} exec {{node}} --", lab.name);
    let (ok, out) = lab.lab(&[
        "exec",
        "fabric",
        "--",
        "tabbyctl",
        "node",
        "doctor",
        "--all-nodes",
        "--exec",
        &template,
    ]);
    assert!(ok, "node doctor --all-nodes:\n{out}");
    for node in lab.node_names() {
        assert!(
            out.contains(&format!("{node}: no problems found")),
            "--all-nodes misses {node}:\n{out}"
        );
    }
    let (ok, out) = lab.lab(&["exec", "node-1", "--", "tabbyctl", "node", "status"]);
    assert!(ok, "node status:\n{out}");
    assert!(
        out.contains("Problems\nNo problems found.\n"),
        "node status:\n{out}"
    );
}

#[test]
fn mesh_one_subnet_has_no_findings() {
    let _g = serial();
    let lab = Lab::three_nodes("dr-mesh", "1", "None");
    healthy(&lab);
    // And a problem shows in node status's Problems section, fix included.
    doctor_common::fault(&lab, "inject", "foreign-route", "node-1");
    let (ok, out) = lab.lab(&["exec", "node-1", "--", "tabbyctl", "node", "status"]);
    doctor_common::fault(&lab, "clear", "foreign-route", "node-1");
    assert!(ok, "node status:\n{out}");
    let problems = out.split("\nProblems\n").nth(1).unwrap_or_default();
    assert!(
        problems.starts_with("ERROR   [route] ") && problems.contains("-> fix: ip route del "),
        "node status does not show the foreign route:\n{out}"
    );
}

#[test]
fn vxlan_always_has_no_findings() {
    let _g = serial();
    let lab = Lab::three_nodes("dr-vxlan", "2", "VXLAN");
    healthy(&lab);
}

#[test]
fn vxlan_cross_subnet_has_no_findings() {
    let _g = serial();
    let lab = Lab::three_nodes("dr-cross", "2", "VXLANCrossSubnet");
    healthy(&lab);
}
