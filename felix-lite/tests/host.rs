//! Sysctls, tx checksum offload and host MTU, in namespaces of their own.

mod common;

use common::Netns;
use tabby_felix_lite::{ethtool, mtu, netns, sysctl};

fn host_value(path: &str) -> String {
    std::fs::read_to_string(path).unwrap().trim().to_string()
}

#[test]
fn sysctls_apply_in_the_namespace_only() {
    let ns = Netns::new("sys");
    ns.veth("cali0123abcd", "vethwl");
    // The host has no such interface: a write that leaked out of the
    // namespace would fail instead of silently succeeding.
    assert!(!std::path::Path::new("/proc/sys/net/ipv4/conf/cali0123abcd").exists());
    let host_rp_default = host_value("/proc/sys/net/ipv4/conf/default/rp_filter");
    // Make the namespace differ from any host setting we could confuse it with.
    ns.must("sysctl -qw net.ipv4.ip_forward=0 net.ipv4.conf.default.rp_filter=2");
    ns.must("sysctl -qw net.ipv4.conf.cali0123abcd.rp_filter=0");

    // Workload first: setting ip_forward=1 would switch every interface's
    // forwarding on and hide whether ensure_workload sets it.
    let (wl, host) = netns::run_in(&ns.name, || {
        (
            sysctl::ensure_workload("cali0123abcd").unwrap(),
            sysctl::ensure_host().unwrap(),
        )
    })
    .unwrap();
    assert_eq!(host.len(), 1);
    assert_eq!(
        (
            host[0].key.as_str(),
            host[0].old.as_str(),
            host[0].new.as_str()
        ),
        ("net.ipv4.ip_forward", "0", "1")
    );
    let keys: Vec<&str> = wl.iter().map(|c| c.key.as_str()).collect();
    for k in ["proxy_arp", "forwarding", "route_localnet", "rp_filter"] {
        assert!(
            keys.contains(&format!("net.ipv4.conf.cali0123abcd.{k}").as_str()),
            "{k} not in {keys:?}"
        );
    }
    let read = |k: &str| ns.must(&format!("sysctl -n {k}")).trim().to_string();
    assert_eq!(read("net.ipv4.ip_forward"), "1");
    assert_eq!(read("net.ipv4.conf.cali0123abcd.proxy_arp"), "1");
    assert_eq!(read("net.ipv4.conf.cali0123abcd.forwarding"), "1");
    assert_eq!(read("net.ipv4.conf.cali0123abcd.route_localnet"), "1");
    assert_eq!(read("net.ipv4.neigh.cali0123abcd.proxy_delay"), "0");
    // rp_filter follows the namespace's default (2), as Felix does.
    assert_eq!(read("net.ipv4.conf.cali0123abcd.rp_filter"), "2");
    assert_eq!(
        host_value("/proc/sys/net/ipv4/conf/default/rp_filter"),
        host_rp_default
    );

    // Second pass: nothing to change.
    let again = netns::run_in(&ns.name, || {
        let mut c = sysctl::ensure_host().unwrap();
        c.extend(sysctl::ensure_workload("cali0123abcd").unwrap());
        c
    })
    .unwrap();
    assert!(again.is_empty(), "{again:?}");

    let e = netns::run_in(&ns.name, || {
        sysctl::ensure_workload("calimissing")
            .unwrap_err()
            .to_string()
    })
    .unwrap();
    assert!(e.contains("calimissing does not exist"), "{e}");
    let e = sysctl::ensure_workload("../x").unwrap_err().to_string();
    assert!(e.contains("not a valid Linux interface name"), "{e}");
}

#[test]
fn host_ip_forward_untouched_by_namespace_writes() {
    let before = host_value("/proc/sys/net/ipv4/ip_forward");
    let ns = Netns::new("fwd");
    ns.must("sysctl -qw net.ipv4.ip_forward=0");
    netns::run_in(&ns.name, || sysctl::ensure_host().unwrap()).unwrap();
    assert_eq!(ns.must("sysctl -n net.ipv4.ip_forward").trim(), "1");
    assert_eq!(host_value("/proc/sys/net/ipv4/ip_forward"), before);
}

fn ethtool_tx(ns: &Netns, dev: &str) -> String {
    let out = ns.must(&format!("ethtool -k {dev}"));
    out.lines()
        .find(|l| l.starts_with("tx-checksumming:"))
        .unwrap_or_else(|| panic!("no tx-checksumming in {out}"))
        .trim_start_matches("tx-checksumming:")
        .trim()
        .to_string()
}

#[test]
fn tx_checksum_toggles_on_a_veth() {
    let ns = Netns::new("eth");
    ns.veth("vxp0", "vxp1");
    assert_eq!(ethtool_tx(&ns, "vxp0"), "on");
    let (got_before, changed, got_after, changed_again) = netns::run_in(&ns.name, || {
        (
            ethtool::tx_checksum("vxp0").unwrap(),
            ethtool::set_tx_checksum("vxp0", false).unwrap(),
            ethtool::tx_checksum("vxp0").unwrap(),
            ethtool::set_tx_checksum("vxp0", false).unwrap(),
        )
    })
    .unwrap();
    assert!(got_before && changed && !got_after && !changed_again);
    assert_eq!(ethtool_tx(&ns, "vxp0"), "off");
    assert_eq!(
        ethtool_tx(&ns, "vxp1"),
        "on",
        "the peer is a separate device"
    );
    netns::run_in(&ns.name, || ethtool::set_tx_checksum("vxp0", true).unwrap()).unwrap();
    assert_eq!(ethtool_tx(&ns, "vxp0"), "on");
    let e = netns::run_in(&ns.name, || {
        ethtool::tx_checksum("nosuchdev").unwrap_err().to_string()
    })
    .unwrap();
    assert!(
        e.contains("nosuchdev") && e.contains("No such device"),
        "{e}"
    );
}

#[test]
fn host_mtu_from_namespace_links() {
    let ns = Netns::new("mtu");
    ns.veth("eth0", "vethm0");
    ns.ip(&["link", "set", "eth0", "mtu", "1400"]);
    ns.veth("ens5", "vethm1");
    ns.ip(&["link", "set", "ens5", "mtu", "9001"]);
    ns.veth("stor0", "vethm2");
    ns.ip(&["link", "set", "stor0", "mtu", "1300"]);
    let (by_pattern, by_node) = netns::block_on_in(&ns.name, || async {
        (
            mtu::host_mtu(None, mtu::DEFAULT_IFACE_PATTERN)
                .await
                .unwrap(),
            mtu::host_mtu(Some("ens5"), mtu::DEFAULT_IFACE_PATTERN)
                .await
                .unwrap(),
        )
    })
    .unwrap();
    // stor0 is outside Felix's pattern; eth0 is the smallest that matches.
    assert_eq!(by_pattern.mtu, 1400, "{by_pattern:?}");
    assert_eq!(by_node.mtu, 9001, "{by_node:?}");
    assert_eq!(mtu::pod_mtu(by_node.mtu, mtu::Encap::Vxlan), 8951);
}
