//! `node doctor`'s IPv6 checks against a real dual-stack node in a
//! throwaway namespace: a clean node reports nothing, then each fault (v6
//! forwarding off, `vxlan-v6.calico` with the wrong MTU or on the storage
//! NIC, a block route via an unconnected next hop, NAT66 gone, a dropping
//! forward chain) is named with its fix. Root only.

#[path = "../../felix-lite/tests/common/mod.rs"]
mod ns;

use ns::Netns;
use tabby_agent::doctor::{inspect_ipv6, Finding, Pool6Want, Want6};
use tabby_felix_lite::inspect::KernelSnapshot;
use tabby_felix_lite::model::Pool6;
use tabby_felix_lite::nft::Nft;

const POOL: &str = "fd00:10:244::/48";

fn want() -> Want6 {
    Want6 {
        node_ip6: Some("fd00:5::10/64".parse().unwrap()),
        pools: vec![Pool6Want {
            name: "default-ipv6-ippool".into(),
            cidr: POOL.parse().unwrap(),
            nat_outgoing: true,
            vxlan: true,
        }],
        mtu_override: None,
    }
}

fn doctor(ns: &Netns, want: Want6) -> Vec<Finding> {
    tabby_felix_lite::netns::run_in(&ns.name, move || {
        let k = KernelSnapshot::read().expect("kernel snapshot");
        inspect_ipv6(&want, &k)
    })
    .expect("enter netns")
}

fn sysctl6_forwarding(ns: &Netns, v: &str) {
    ns.must(&format!("sysctl -qw net.ipv6.conf.all.forwarding={v}"));
}

/// The node as tabby-node leaves it: eth0 holds the node address, a
/// storage NIC beside it, `vxlan-v6.calico` on eth0, a native block route
/// via a neighbour on eth0's subnet, NAT66 and the forward accepts in a
/// host firewall whose forward policy is drop.
fn clean_node() -> Netns {
    let ns = Netns::new("dr6");
    ns.veth("eth0", "vethe0");
    ns.ip(&["-6", "addr", "add", "fd00:5::10/64", "dev", "eth0", "nodad"]);
    ns.veth("stor0", "vethst");
    ns.ip(&[
        "-6",
        "addr",
        "add",
        "fd00:99::10/64",
        "dev",
        "stor0",
        "nodad",
    ]);
    ns.ip(&["link", "set", "stor0", "mtu", "9000"]);
    vxlan_on(&ns, "eth0", "fd00:5::10", 1430);
    sysctl6_forwarding(&ns, "1");
    ns.ip(&[
        "-6",
        "route",
        "add",
        "fd00:10:244:1::/122",
        "via",
        "fd00:5::11",
        "dev",
        "eth0",
        "proto",
        "81",
    ]);
    ns.must("nft add table inet host-firewall");
    ns.must(
        "nft add chain inet host-firewall forward '{ type filter hook forward priority 0; policy drop; }'",
    );
    let pools = vec![Pool6 {
        cidr: POOL.parse().unwrap(),
        nat_outgoing: true,
    }];
    tabby_felix_lite::netns::run_in(&ns.name, move || Nft::default().reconcile6(&pools))
        .expect("enter netns")
        .expect("nft reconcile6");
    ns
}

fn vxlan_on(ns: &Netns, parent: &str, local: &str, mtu: u32) {
    let _ = ns.sh("ip link del vxlan-v6.calico 2>/dev/null");
    ns.ip(&[
        "link",
        "add",
        "vxlan-v6.calico",
        "type",
        "vxlan",
        "id",
        "4096",
        "dstport",
        "4789",
        "dev",
        parent,
        "local",
        local,
    ]);
    ns.ip(&[
        "link",
        "set",
        "vxlan-v6.calico",
        "mtu",
        &mtu.to_string(),
        "up",
    ]);
}

fn one<'a>(f: &'a [Finding], needle: &str) -> &'a Finding {
    let hits: Vec<&Finding> = f.iter().filter(|f| f.what.contains(needle)).collect();
    assert_eq!(
        hits.len(),
        1,
        "expected one finding with {needle:?}: {f:#?}"
    );
    assert_eq!(hits[0].check, "ipv6");
    hits[0]
}

#[test]
fn a_clean_dual_stack_node_has_no_findings_and_each_fault_is_named() {
    if !ns::is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let ns = clean_node();
    let f = doctor(&ns, want());
    assert!(f.is_empty(), "clean node: {f:#?}");

    // IPv6 forwarding off.
    sysctl6_forwarding(&ns, "0");
    let f = doctor(&ns, want());
    let x = one(&f, "IPv6 forwarding is off");
    assert_eq!(x.fix, "sysctl -w net.ipv6.conf.all.forwarding=1");
    ns.must(&x.fix.replace("sysctl -w", "sysctl -qw"));
    assert!(doctor(&ns, want()).is_empty());

    // Wrong MTU (the kernel refuses one above parent - 70, so the fault
    // seen in the field is a stale lower one, e.g. from before a NIC MTU
    // change).
    ns.ip(&["link", "set", "vxlan-v6.calico", "mtu", "1400"]);
    let f = doctor(&ns, want());
    let x = one(&f, "has MTU 1400, expected 1430");
    assert!(
        x.what.contains("eth0's MTU 1500 minus the 70-byte"),
        "{x:#?}"
    );
    assert_eq!(x.fix, "ip link set vxlan-v6.calico mtu 1430");
    // FELIX_VXLANMTUV6 is what is expected when set.
    let mut pinned = want();
    pinned.mtu_override = Some(1400);
    assert!(doctor(&ns, pinned).is_empty());
    ns.must(&x.fix);
    assert!(doctor(&ns, want()).is_empty());

    // Bound to the storage NIC (with its MTU right for that NIC).
    vxlan_on(&ns, "stor0", "fd00:99::10", 8930);
    let f = doctor(&ns, want());
    let x = one(&f, "is bound to stor0 (local fd00:99::10)");
    assert!(x.what.contains("fd00:5::10 is on eth0"), "{x:#?}");
    assert!(
        x.fix.contains("IP6_AUTODETECTION_METHOD=interface=eth0"),
        "{x:#?}"
    );
    one(&f, "expected 1430");
    vxlan_on(&ns, "eth0", "fd00:5::10", 1430);
    assert!(doctor(&ns, want()).is_empty());

    // A block route via a next hop on no connected subnet.
    ns.ip(&[
        "-6",
        "route",
        "add",
        "fd00:10:244:2::/122",
        "via",
        "fd00:77::1",
        "dev",
        "eth0",
        "onlink",
        "proto",
        "81",
    ]);
    let f = doctor(&ns, want());
    let x = one(&f, "fd00:10:244:2::/122 goes via fd00:77::1");
    assert!(x.evidence.contains("connected: fd00:5::/64"), "{x:#?}");
    ns.ip(&["-6", "route", "del", "fd00:10:244:2::/122"]);

    // NAT66 and the forward accepts gone (tabby-node down, table flushed).
    ns.must("nft delete table ip6 tabby");
    ns.must("nft flush chain inet host-firewall forward");
    let f = doctor(&ns, want());
    one(&f, "NAT66 for natOutgoing IPv6 pool default-ipv6-ippool");
    let x = one(&f, "forward chain inet host-firewall forward drops IPv6");
    assert!(
        x.fix.starts_with(
            "nft insert rule inet host-firewall forward ip6 saddr { fd00:10:244::/48 } accept"
        ),
        "{x:#?}"
    );
    // The printed fixes restore the accepts.
    ns.must(x.fix.split(" (tabby-node").next().unwrap());
    let f = doctor(&ns, want());
    assert!(
        !f.iter().any(|f| f.what.contains("forward chain")),
        "{f:#?}"
    );
}
