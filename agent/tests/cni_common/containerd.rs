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
