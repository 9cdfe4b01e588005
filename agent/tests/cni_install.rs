//! `tabby install-cni` puts a working plugin on a host: it installs into a
//! temporary host root, and then a real containerd (`ctr run --cni`, as in
//! cni_containerd.rs) networks a busybox container with exactly what was
//! written there — the conflist rendered from the built-in template and
//! the installed `tabby` binary, nothing copied in by the test. The node
//! is `cni_common`'s stand-in on SQLite, so the template's datastore
//! follows `DATASTORE_TYPE=sqlite` and no kubeconfig is written (no
//! `KUBERNETES_SERVICE_HOST`).
//!
//! go-cni reads only `/etc/cni/net.d` and `/opt/cni/bin`, so ctr runs in a
//! private mount namespace with the host root's two directories bound over
//! them (the real ones are never written). Skipped, saying so, without
//! containerd, ctr or busybox-static. Needs root.

mod cni_common;

use cni_common::containerd::*;
use cni_common::*;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_runs_a_container_with_what_install_cni_wrote() {
    if let Some(bin) = missing_tool() {
        eprintln!("skipped: {bin} is not installed (apt-get install containerd busybox-static)");
        return;
    }
    let node = Node::start().await;
    let work = tempfile::tempdir().unwrap();
    let host = work.path().join("host");

    let out = tokio::process::Command::new(tabby_bin())
        .args(["install-cni", "--host-root"])
        .arg(&host)
        .env_clear()
        .env("NODENAME", &node.name)
        .env("DATASTORE_TYPE", "sqlite")
        .env("TABBY_RUN_DIR", &node.run_dir)
        .env("CNI_MTU", "0")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "install-cni failed: {stderr}");
    assert!(stderr.contains("no plugin kubeconfig written"), "{stderr}");

    let net_d = host.join("etc/cni/net.d");
    let bin = host.join("opt/cni/bin");
    let conflist: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(net_d.join("10-tabby.conflist")).unwrap())
            .unwrap();
    let p = &conflist["plugins"][0];
    assert_eq!(p["nodename"], node.name.as_str());
    assert_eq!(p["datastore_type"], "sqlite");
    assert_eq!(p["run_dir"], node.run_dir.display().to_string());
    assert_eq!(
        std::fs::read(bin.join("tabby")).unwrap(),
        std::fs::read(tabby_bin()).unwrap()
    );
    assert_eq!(
        std::fs::metadata(bin.join("tabby")).unwrap().ino(),
        std::fs::metadata(bin.join("tabby-ipam")).unwrap().ino(),
        "tabby-ipam is a link of the installed binary"
    );
    assert!(!net_d.join("tabby-kubeconfig").exists());

    let containerd = start_containerd(work.path());
    let rootfs = busybox_rootfs(work.path());
    let _etc_cni = if Path::new("/etc/cni").exists() {
        CreatedDir(None)
    } else {
        std::fs::create_dir("/etc/cni").unwrap();
        CreatedDir(Some("/etc/cni"))
    };
    let id = unique("inst");
    let script = format!(
        "set -e; mount -t tmpfs tmpfs /etc/cni; mkdir -p /etc/cni/net.d; \
         mount --bind {net_d} /etc/cni/net.d; \
         mount -t tmpfs tmpfs /opt; mkdir -p /opt/cni/bin; mount --bind {bin} /opt/cni/bin; \
         exec ctr -a {sock} -n tabbytest run --rm --cni --rootfs {rootfs} {id} \
           /bin/sh -c 'ip -4 addr show dev eth0; ping -c 2 -W 2 {NODE_IP}'",
        net_d = net_d.display(),
        bin = bin.display(),
        sock = work.path().join("containerd.sock").display(),
        rootfs = rootfs.display(),
    );
    let out = in_private_mounts(&node.netns.name, &script).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ctr run failed\nstdout:\n{stdout}\nstderr:\n{}\ncontainerd log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(work.path().join("containerd.log")).unwrap_or_default()
    );
    let ip: std::net::Ipv4Addr = stdout
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.strip_suffix("/32"))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no inet line: {stdout}"));
    let pool: ipnet::Ipv4Net = POOL.parse().unwrap();
    assert!(pool.contains(&ip), "{ip} is not in the pool {POOL}");
    assert!(stdout.contains("2 packets received"), "{stdout}");
    assert!(
        node.ipam_show_ip(&ip.to_string())
            .await
            .contains("is not assigned"),
        "address still assigned after the container was removed"
    );
    drop(containerd);
}
