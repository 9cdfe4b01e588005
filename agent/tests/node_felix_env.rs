//! Felix's `vxlan.calico` settings on a real tabby-node: one node in its
//! own network namespace (a veth to a peer namespace is its node
//! interface, MTU 1500) with a `vxlanMode: Always` pool, read back from the
//! kernel with `ip -j link` and `ethtool -k`: `FELIX_VXLANMTU` sets the
//! device MTU (unset: parent - 50), and
//! `FELIX_FEATUREDETECTOVERRIDE=ChecksumOffloadBroken=true` turns tx
//! checksum offload off, which this kernel (> 5.7) otherwise leaves on.
//! Needs root.

#[allow(dead_code)]
#[path = "../../bgp/tests/common/netns.rs"]
mod netns;
#[allow(dead_code)]
mod node_common;
#[allow(dead_code)]
#[path = "../../bgp/tests/common/wait.rs"]
mod wait;

use netns::{link_named, stdout_if_ok, Netns};
use node_common::Daemon;
use std::path::{Path, PathBuf};
use tabby_proto::dataplane as dp;

/// The parent's MTU (a fresh veth's default).
const PARENT_MTU: u32 = 1500;

/// tabby-node in `ns`, killed on drop; the datastore, run dir and log are in
/// `dir`.
struct Node {
    _daemon: Daemon,
    ns: Netns,
    _peer: Netns,
    dir: tempfile::TempDir,
}

impl Node {
    fn start(tag: &str, subnet: u8, extra: &[(&str, &str)]) -> Node {
        let ns = Netns::new(tag);
        let peer = Netns::new(&format!("{tag}p"));
        link_named(&ns, &peer, subnet, 1, 2);
        let dir = tempfile::tempdir().unwrap();
        let mut env = vec![
            ("CALICO_NETWORKING_BACKEND", "vxlan"),
            ("CALICO_IPV4POOL_CIDR", "172.30.0.0/16"),
            ("CALICO_IPV4POOL_VXLAN", "Always"),
        ];
        env.extend_from_slice(extra);
        let daemon = node_common::spawn(
            &ns,
            "node-a",
            &dir.path().join("tabby.db"),
            &dir.path().join("run"),
            &dir.path().join("node.log"),
            &env,
        );
        Node {
            _daemon: daemon,
            ns,
            _peer: peer,
            dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("node.log")).unwrap_or_default()
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("run").join("tabby.sock")
    }

    /// The pod MTU of the node's last reconcile pass: `vxlan.calico`'s MTU
    /// once a pass has made the device (and set its offload), the parent's
    /// before.
    fn pod_mtu(&self) -> Option<u32> {
        dataplane_status(&self.socket()).map(|s| s.pod_mtu)
    }

    /// `ip -j link show vxlan.calico` inside the namespace: the device's MTU.
    fn vxlan_mtu(&self) -> Option<u64> {
        let out = stdout_if_ok(
            self.ns
                .command("ip")
                .args(["-j", "link", "show", "vxlan.calico"]),
        )?;
        let v: serde_json::Value = serde_json::from_str(&out).ok()?;
        v[0]["mtu"].as_u64()
    }

    /// The `tx-checksumming:` line of `ethtool -k vxlan.calico`.
    fn tx_checksumming(&self) -> String {
        let out = stdout_if_ok(self.ns.command("ethtool").args(["-k", "vxlan.calico"]))
            .unwrap_or_else(|| panic!("ethtool -k vxlan.calico failed\n{}", self.log()));
        out.lines()
            .find(|l| l.starts_with("tx-checksumming:"))
            .unwrap_or_else(|| panic!("no tx-checksumming line in:\n{out}"))
            .trim()
            .to_string()
    }

    /// Waits until a pass has built `vxlan.calico` with `mtu`.
    fn wait_for_vxlan(&self, mtu: u32) {
        let ok = wait::eventually(30.0, || {
            self.pod_mtu() == Some(mtu) && self.vxlan_mtu() == Some(u64::from(mtu))
        });
        assert!(
            ok,
            "vxlan.calico with mtu {mtu}: pod_mtu {:?}, device mtu {:?}\n{}",
            self.pod_mtu(),
            self.vxlan_mtu(),
            self.log()
        );
    }
}

fn dataplane_status(sock: &Path) -> Option<dp::DataplaneStatus> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ch = tabby_agent::grpc::connect_unix(sock).await.ok()?;
        let mut c = dp::dataplane_client::DataplaneClient::new(ch);
        Some(c.status(dp::StatusRequest {}).await.ok()?.into_inner())
    })
}

#[test]
fn felix_vxlanmtu_sets_the_device_mtu() {
    let node = Node::start("fvmtu", 91, &[("FELIX_VXLANMTU", "1400")]);
    node.wait_for_vxlan(1400);
}

#[test]
fn checksum_offload_broken_override_turns_tx_offload_off() {
    let node = Node::start(
        "fvcsum",
        92,
        &[("FELIX_FEATUREDETECTOVERRIDE", "ChecksumOffloadBroken=true")],
    );
    node.wait_for_vxlan(PARENT_MTU - 50);
    assert_eq!(node.tx_checksumming(), "tx-checksumming: off");
    // Decided once at start, and the log says why.
    let log = node.log();
    assert!(
        log.contains("FELIX_FEATUREDETECTOVERRIDE sets ChecksumOffloadBroken"),
        "{log}"
    );
}

#[test]
fn defaults_are_parent_minus_50_and_offload_on_for_this_kernel() {
    let release = tabby_felix_lite::features::kernel_release().unwrap();
    let version = tabby_felix_lite::features::parse_kernel_release(&release).unwrap();
    assert!(
        version > tabby_felix_lite::features::LAST_BROKEN_KERNEL,
        "this test needs a kernel above 5.7.0, not {release}"
    );
    let node = Node::start("fvdef", 93, &[]);
    node.wait_for_vxlan(PARENT_MTU - 50);
    assert_eq!(node.tx_checksumming(), "tx-checksumming: on");
}
