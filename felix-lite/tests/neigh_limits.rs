//! The neighbour-table limits seen from a network namespace, as a lab
//! node sees them: the table dump answers there with the host's figures,
//! the sysctls cannot be written there, and a reconciler whose VTEPs need
//! more reports the host's `sysctl -w` in its status instead of writing.
//!
//! Nothing here lowers or raises the host's limits (they are shared with
//! every test running on this machine): the entries added are permanent,
//! which the kernel does not count against them.

mod common;

use common::{is_root, node_with_eth0, Netns};
use std::net::Ipv4Addr;
use tabby_felix_lite::model::{DesiredState, LocalVxlan, Vtep};
use tabby_felix_lite::netlink::{ntable, NlSocket};
use tabby_felix_lite::netns;
use tabby_felix_lite::reconcile::{Config, Reconciler};

fn host_thresh(leaf: &str) -> u32 {
    std::fs::read_to_string(format!("/proc/sys/net/ipv4/neigh/default/{leaf}"))
        .expect("host sysctl")
        .trim()
        .parse()
        .expect("a number")
}

fn tables_in(ns: &Netns) -> Vec<ntable::NeighTable> {
    netns::run_in(&ns.name, || {
        let mut sock = NlSocket::open().expect("socket");
        ntable::dump_tables(&mut sock).expect("table dump")
    })
    .expect("enter netns")
}

#[test]
fn the_table_dump_shows_the_hosts_limits_and_entries_inside_a_namespace() {
    if !is_root() {
        return;
    }
    let ns = Netns::new("ntbl");
    // What the design rests on: the sysctls are not there in a namespace.
    let (present, _) = ns.sh("test -e /proc/sys/net/ipv4/neigh/default/gc_thresh3");
    assert!(
        !present,
        "this kernel shows neigh/default in a namespace: revisit neigh_limits' doc"
    );
    let before = host_thresh("gc_thresh3");
    ns.veth("d0", "d1");
    ns.ip(&["link", "set", "d0", "up"]);
    let batch: String = (0..2000u32)
        .map(|i| {
            let a = Ipv4Addr::from(0x0a63_0000 + i);
            format!("neigh add {a} lladdr 66:00:00:00:00:01 dev d0 nud permanent\n")
        })
        .collect();
    let file = std::env::temp_dir().join(format!("{}.batch", ns.name));
    std::fs::write(&file, batch).expect("batch file");
    let r = ns.exec("ip", &["-batch", &file.display().to_string()]);
    let _ = std::fs::remove_file(&file);
    assert!(r.0, "{}", r.1);
    let tables = tables_in(&ns);
    let v4 = tables
        .iter()
        .find(|t| !t.ipv6)
        .unwrap_or_else(|| panic!("no IPv4 table in {tables:?}"));
    assert_eq!(v4.name, "arp_cache");
    // Another test's lab may raise the limit meanwhile, never lower it.
    assert!(
        (before..=host_thresh("gc_thresh3")).contains(&v4.gc_thresh3),
        "{v4:?}"
    );
    assert_eq!(v4.gc_thresh2, host_thresh("gc_thresh2").min(v4.gc_thresh2));
    assert!(v4.gc_thresh1 <= v4.gc_thresh2 && v4.gc_thresh2 <= v4.gc_thresh3);
    // Host-wide: our 2000 permanent entries are in the count.
    assert!(v4.entries >= 2000, "{v4:?}");
    if let Some(v6) = tables.iter().find(|t| t.ipv6) {
        assert_eq!(v6.name, "ndisc_cache");
    }
}

fn vteps(n: u32) -> Vec<Vtep> {
    (0..n)
        .map(|i| Vtep {
            node: format!("n{i}"),
            // Distinct underlay addresses: each is a neighbour to resolve.
            node_ip: Ipv4Addr::from(0x6440_0000 + i),
            tunnel_ip: Ipv4Addr::from(0x0a80_0000 + (i << 6)),
            mac: [0x66, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8, 1],
        })
        .collect()
}

#[test]
fn a_node_in_a_namespace_that_needs_bigger_tables_reports_the_host_fix_and_writes_nothing() {
    if !is_root() {
        return;
    }
    let t2 = host_thresh("gc_thresh2");
    let t3 = host_thresh("gc_thresh3");
    // Enough VTEPs (each one permanent entry and one underlay neighbour)
    // to pass the host's soft limit, whatever it is now.
    let n = t2 / 2 + 1;
    if n > 20_000 {
        eprintln!("skipped: the host's gc_thresh2 is {t2}; {n} VTEPs would make a slow test");
        return;
    }
    let ns = node_with_eth0("nlim", "100.127.0.1/24");
    ns.ip(&["link", "set", "eth0", "up"]);
    ns.ip(&["link", "set", "peer0", "up"]);
    let state = DesiredState {
        node_interface: "eth0".into(),
        vxlan: Some(LocalVxlan {
            parent: "eth0".into(),
            local_ip: "100.127.0.1".parse().unwrap(),
            tunnel_ip: "10.127.0.0".parse().unwrap(),
            mac: [0x66, 0, 0, 0, 0, 0xfe],
            mtu: 0,
            disable_tx_checksum_offload: false,
        }),
        vteps: vteps(n),
        ..DesiredState::default()
    };
    let rec = Reconciler::start_in_netns(&ns.name, Config::default()).expect("start");
    let s = common::apply(&rec.handle(), state.clone());
    let standing = &s.last_pass.standing;
    assert_eq!(standing.len(), 1, "{standing:?}");
    let e = &standing[0];
    eprintln!("status shows: {e}");
    assert_eq!(e.item, "net.ipv4.neigh.default.gc_thresh3", "{e}");
    for want in [
        &format!("too small for {} entries", 2 * n),
        "host's network namespace",
        "run on the host: sysctl -w net.ipv4.neigh.default.gc_thresh1=",
    ] {
        assert!(e.error.contains(want), "{want:?} missing in {e}");
    }
    // A problem the pass does not retry is not a per-pass failure, and the
    // permanent entries went in regardless.
    assert!(
        !s.last_pass
            .failures
            .iter()
            .any(|f| f.item.contains("gc_thresh")),
        "{:?}",
        s.last_pass.failures
    );
    let neigh = ns.must("ip -4 neigh show dev vxlan.calico nud permanent");
    assert_eq!(neigh.lines().count(), n as usize);

    // The next pass still shows it; the host is untouched.
    let mut again = state;
    again.vteps = vteps(n + 1);
    let s = common::apply(&rec.handle(), again);
    assert_eq!(s.last_pass.standing.len(), 1, "{:?}", s.last_pass.standing);
    assert!(host_thresh("gc_thresh3") >= t3);
    assert!(s.last_pass.applied.iter().all(|a| !a.contains("gc_thresh")));
    drop(rec);
}
