//! A containerd of the test's own (own root, state and socket, the CRI
//! plugin off) and a busybox rootfs, for the tests that let a real runtime
//! call the plugin.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Containerd {
    child: Child,
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // runc's state dir for the test namespace, empty once ctr --rm is done.
        let _ = std::fs::remove_dir("/run/containerd/runc/tabbytest");
    }
}

/// Removes `/etc/cni` on drop if this test created it (and it is empty).
pub struct CreatedDir(pub Option<&'static str>);

impl Drop for CreatedDir {
    fn drop(&mut self) {
        if let Some(d) = self.0 {
            let _ = std::fs::remove_dir(d);
        }
    }
}

pub fn installed(bin: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {bin}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn start_containerd(dir: &Path) -> Containerd {
    let sock = dir.join("containerd.sock");
    let config = format!(
        "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
         disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
         [grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n",
        root = dir.join("root").display(),
        state = dir.join("state").display(),
        sock = sock.display()
    );
    std::fs::write(dir.join("config.toml"), config).unwrap();
    let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
    let child = Command::new("containerd")
        .arg("--config")
        .arg(dir.join("config.toml"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let c = Containerd { child };
    let start = Instant::now();
    while !sock.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "containerd did not start: {}",
            std::fs::read_to_string(dir.join("containerd.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    c
}

pub fn busybox_rootfs(dir: &Path) -> std::path::PathBuf {
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy("/usr/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for applet in ["sh", "ip", "ping", "cat"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    for d in ["proc", "sys", "dev", "etc", "tmp"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    rootfs
}

/// The tools a containerd test needs; the first one missing, if any.
pub fn missing_tool() -> Option<&'static str> {
    [
        "containerd",
        "ctr",
        "containerd-shim-runc-v2",
        "runc",
        "busybox",
    ]
    .into_iter()
    .find(|b| !installed(b))
}

/// Runs `script` with `sh -c` in network namespace `netns` and a private
/// mount namespace, so the container's bind mounts over /etc/cni and /opt
/// stay in it.
pub async fn in_private_mounts(netns: &str, script: &str) -> std::process::Output {
    tokio::process::Command::new("ip")
        .args(["netns", "exec", netns, "unshare", "-m", "sh", "-c", script])
        .output()
        .await
        .expect("running ip netns exec … unshare -m")
}

/// `manifests/10-tabby.conflist`, filled in for `node`: what the tests give
/// containerd (a test adds its own ipam settings before [`ctr_run`]).
pub fn manifest_conflist(node: &super::Node) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/10-tabby.conflist");
    let mut list: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    list["plugins"][0]["nodename"] = node.name.clone().into();
    list["plugins"][0]["run_dir"] = node.run_dir.display().to_string().into();
    list
}

/// `ctr run --rm --cni` of a busybox container (id `<tag>…`) running
/// `in_container` with `sh -c`, on the test's own containerd in `work`,
/// with `list` as the only conflist and the `tabby` plugin as the only
/// binary: go-cni reads `/etc/cni/net.d` and `/opt/cni/bin` only, so they
/// are tmpfs in a private mount namespace (`/etc/cni` created empty if
/// missing and removed again), from the node's netns so the host end lands
/// there. Asserts that it succeeded; returns the container's stdout (ctr
/// --rm has already called DEL).
pub async fn ctr_run(
    node: &super::Node,
    work: &Path,
    rootfs: &Path,
    list: &serde_json::Value,
    tag: &str,
    in_container: &str,
) -> String {
    let conflist = work.join("10-tabby.conflist");
    std::fs::write(&conflist, list.to_string()).unwrap();
    let _etc_cni = if Path::new("/etc/cni").exists() {
        CreatedDir(None)
    } else {
        std::fs::create_dir("/etc/cni").unwrap();
        CreatedDir(Some("/etc/cni"))
    };
    let script = format!(
        "set -e; mount -t tmpfs tmpfs /etc/cni; mkdir -p /etc/cni/net.d; \
         cp {conflist} /etc/cni/net.d/10-tabby.conflist; \
         mount -t tmpfs tmpfs /opt; mkdir -p /opt/cni/bin; cp {tabby} /opt/cni/bin/tabby; \
         exec ctr -a {sock} -n tabbytest run --rm --cni --rootfs {rootfs} {id} \
           /bin/sh -c '{in_container}'",
        conflist = conflist.display(),
        tabby = super::tabby_bin().display(),
        sock = work.join("containerd.sock").display(),
        rootfs = rootfs.display(),
        id = super::unique(tag),
    );
    let out = in_private_mounts(&node.netns.name, &script).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "ctr run failed\nstdout:\n{stdout}\nstderr:\n{stderr}\ncontainerd log:\n{}",
        std::fs::read_to_string(work.join("containerd.log")).unwrap_or_default()
    );
    stdout
}
