//! A real runtime calls the plugin: containerd (`ctr run --cni`, which
//! drives go-cni/libcni exactly as the CRI plugin does, minus the K8S_POD_*
//! arguments) runs a busybox container whose network the `tabby` plugin
//! builds against the node stand-in of `cni_common`. Inside the container
//! the pod sees its /32 and the 169.254.1.1 default route and pings the
//! node; when the container exits, ctr calls DEL (without CNI_NETNS, the
//! sandbox is gone), and the address, endpoint and veth go.
//!
//! go-cni reads `/etc/cni/net.d` and `/opt/cni/bin` only, so ctr runs in a
//! private mount namespace with tmpfs over both (the host's are never
//! written; `/etc/cni` is created empty if missing and removed again), and
//! from the node's netns so the host end lands there. containerd itself is
//! this test's own instance (own root, state and socket). Skipped, saying
//! so, when containerd, ctr or busybox-static are not installed. Needs root.

mod cni_common;

use cni_common::containerd::*;
use cni_common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_runs_a_container_on_tabby() {
    if let Some(bin) = missing_tool() {
        eprintln!("skipped: {bin} is not installed (apt-get install containerd busybox-static)");
        return;
    }
    let node = Node::start().await;
    let work = tempfile::tempdir().unwrap();
    let containerd = start_containerd(work.path());
    let rootfs = busybox_rootfs(work.path());

    let stdout = ctr_run(
        &node,
        work.path(),
        &rootfs,
        &manifest_conflist(&node),
        "ctr",
        &format!("ip -4 addr show dev eth0; ip route; ping -c 2 -W 2 {NODE_IP}"),
    )
    .await;
    assert!(
        stdout.contains("default via 169.254.1.1 dev eth0"),
        "{stdout}"
    );
    assert!(stdout.contains("/32 scope global eth0"), "{stdout}");
    assert!(stdout.contains("2 packets received"), "{stdout}");
    let ip = stdout
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.strip_suffix("/32"))
        .unwrap_or_else(|| panic!("no inet line: {stdout}"))
        .to_string();

    // ctr --rm called DEL after the container exited: nothing is left.
    assert!(
        node.ipam_show_ip(&ip).await.contains("is not assigned"),
        "address still assigned after the container was removed"
    );
    let weps = node
        .ds
        .list(tabby_agent::resources::Kind::WorkloadEndpoint, None)
        .await
        .unwrap();
    assert!(weps.items.is_empty(), "{:?}", weps.items);
    assert!(!node.netns.ip(&["link", "show"]).contains("cali"));
    drop(containerd);
}
