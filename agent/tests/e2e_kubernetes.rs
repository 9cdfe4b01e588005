//! End to end on the Kubernetes datastore: a lab whose nodes run
//! tabby-node with `DATASTORE_TYPE=kubernetes` against the API stand-in
//! (in the lab's fabric namespace, Calico's generated CRDs loaded, Nodes
//! and Pods registered as kubelets would). Pods are networked through the
//! CNI plugin and ping across subnets; `kubectl` (Debian's
//! kubernetes-client) shows what Tabby wrote in Calico's form. A pod
//! deleted in the API leaks its address until `tabby-node controllers`
//! frees it after the grace period.

mod e2e_common;

use e2e_common::{serial, Lab};
use serde_json::Value;
use std::time::Duration;

/// `kubectl ARGS` inside the lab's fabric namespace, where its API is.
fn kubectl(lab: &Lab, args: &str) -> String {
    let (ok, out) = lab.lab(&[
        "exec",
        "fabric",
        "--",
        "sh",
        "-c",
        &format!("kubectl --kubeconfig \"$KUBECONFIG\" {args}"),
    ]);
    assert!(ok, "kubectl {args}: {out}");
    out
}

/// A process killed when dropped (a failed assertion must not leave it).
struct Controllers(std::process::Child);

impl Drop for Controllers {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn shown_ip(lab: &Lab, ip: std::net::Ipv4Addr) -> String {
    lab.tabbyctl(&["ipam", "show", "--ip", &ip.to_string()]).1
}

#[test]
fn pods_ping_across_subnets_with_the_kubernetes_datastore() {
    let _s = serial();
    let lab = Lab::up(
        "kdd",
        &[
            "--datastore",
            "kubernetes",
            "--nodes",
            "2",
            "--subnets",
            "2",
            "--pods-per-node",
            "1",
        ],
    );
    let (ok, out) = lab.wait_check(Duration::from_secs(30));
    assert!(ok, "pods unreachable:\n{out}\n{}", lab.logs());

    // What Tabby wrote, as kubectl shows it.
    let pools = kubectl(&lab, "get ippools.crd.projectcalico.org");
    assert!(pools.contains("default-ipv4-ippool"), "{pools}");
    let affs: Value = serde_json::from_str(&kubectl(
        &lab,
        "get blockaffinities.crd.projectcalico.org -o json",
    ))
    .unwrap();
    let items = affs["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "one block per node: {affs}");
    for a in items {
        assert_eq!(a["spec"]["deleted"], "false", "Calico's string form");
        assert_eq!(a["spec"]["state"], "confirmed");
        let name = a["metadata"]["name"].as_str().unwrap();
        let node = a["spec"]["node"].as_str().unwrap();
        assert!(name.starts_with(&format!("{node}-172-30-")), "{name}");
    }
    let yaml = kubectl(&lab, "get blockaffinities.crd.projectcalico.org -o yaml");
    assert!(yaml.contains("kind: BlockAffinity"), "{yaml}");

    // Nodes: Calico's annotations and the NetworkUnavailable condition.
    let node: Value = serde_json::from_str(&kubectl(&lab, "get node node-1 -o json")).unwrap();
    let ann = &node["metadata"]["annotations"];
    assert_eq!(ann["projectcalico.org/IPv4Address"], "172.31.1.11/24");
    assert!(
        ann["projectcalico.org/IPv4VXLANTunnelAddr"].is_string(),
        "{ann}"
    );
    let cond = node["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "NetworkUnavailable")
        .cloned()
        .expect("NetworkUnavailable condition");
    assert_eq!(cond["status"], "False");
    assert_eq!(cond["reason"], "CalicoIsUp");

    // Pods: the CNI ADD recorded each address on its Pod, as Calico's does.
    for p in lab.pods() {
        let (ns, name) = (
            p["namespace"].as_str().unwrap(),
            p["name"].as_str().unwrap(),
        );
        let pod: Value =
            serde_json::from_str(&kubectl(&lab, &format!("get pod -n {ns} {name} -o json")))
                .unwrap();
        let want = format!("{}/32", lab.pod_ip(name));
        assert_eq!(
            pod["metadata"]["annotations"]["cni.projectcalico.org/podIP"],
            want.as_str()
        );
    }

    // A pod added later: the lab creates its Pod (the scheduler's part),
    // the CNI plugin (reading the pod through the API) networks it.
    let (ok, out) = lab.lab(&["pod", "add", "late", "--node", "node-2"]);
    assert!(ok, "{out}\n{}", lab.logs());
    let pod: Value = serde_json::from_str(&kubectl(&lab, "get pod late -o json")).unwrap();
    let ip = pod["metadata"]["annotations"]["cni.projectcalico.org/podIP"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(ip.starts_with("172.30."), "{ip}");
    let (ok, out) = lab.lab(&["pod", "delete", "late"]);
    assert!(ok, "{out}");
    let (_, out) = lab.lab(&[
        "exec",
        "fabric",
        "--",
        "sh",
        "-c",
        "kubectl --kubeconfig \"$KUBECONFIG\" get pod late",
    ]);
    assert!(
        out.contains("NotFound") || out.contains("not found"),
        "{out}"
    );

    // A pod deleted in the API with no CNI DEL (its node lost it): the
    // address leaks, and `tabby-node controllers` frees it once the grace
    // period (3 s here, 15 m by default) has passed — not before.
    let leaked = lab.pod_ip("pod-2-1");
    let shown = |lab: &Lab| {
        lab.tabbyctl(&["ipam", "show", "--ip", &leaked.to_string()])
            .1
    };
    assert!(shown(&lab).contains("is in use"), "{}", shown(&lab));
    kubectl(&lab, "delete pod -n default pod-2-1");
    let dir = format!("/var/run/tabby-lab/{}", lab.name);
    let log = std::fs::File::create(format!("{dir}/controllers.log")).unwrap();
    let started = std::time::Instant::now();
    let mut ctl = Controllers(
        std::process::Command::new("ip")
            .args(["netns", "exec", &format!("{}_fabric", lab.name)])
            .arg(env!("CARGO_BIN_EXE_tabby-node"))
            .args(["controllers", "--leak-grace-period", "3s"])
            .env("DATASTORE_TYPE", "kubernetes")
            .env("KUBECONFIG", format!("{dir}/kubeconfig"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("tabby-node controllers"),
    );
    let freed = e2e_common::wait_until(Duration::from_secs(30), || {
        shown(&lab).contains("is not assigned")
    });
    let took = started.elapsed();
    let read_log = || std::fs::read_to_string(format!("{dir}/controllers.log")).unwrap_or_default();
    // The release lands in the datastore a moment before its log line.
    e2e_common::wait_until(Duration::from_secs(10), || {
        read_log().contains("garbage collected leaked IP address")
    });
    let ctl_log = read_log();
    assert!(freed, "the leak was never collected:\n{ctl_log}");
    assert!(
        took >= Duration::from_secs(3),
        "collected before the grace period: {took:?}"
    );
    assert!(
        ctl_log.contains("garbage collected leaked IP address"),
        "{ctl_log}"
    );
    let live = lab.pod_ip("pod-1-1");
    assert!(
        shown_ip(&lab, live).contains("is in use"),
        "the live pod keeps its address"
    );
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &ctl.0.id().to_string()])
        .status();
    assert!(
        ctl.0.wait().unwrap().success(),
        "controllers exit cleanly on SIGTERM"
    );

    // A node stopped cleanly says so on its Node.
    let (ok, out) = lab.lab(&["node", "stop", "node-2"]);
    assert!(ok, "{out}");
    let node: Value = serde_json::from_str(&kubectl(&lab, "get node node-2 -o json")).unwrap();
    let down = node["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| {
            c["type"] == "NetworkUnavailable"
                && c["reason"] == "CalicoIsDown"
                && c["status"] == "True"
        });
    assert!(down, "{}", node["status"]);
}
