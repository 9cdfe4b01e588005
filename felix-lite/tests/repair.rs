//! External deletions of Tabby's kernel state are repaired from netlink
//! notifications, well before any periodic resync (root). nftables and
//! sysctls, which have notifications of their own, are in self_heal.rs.

mod common;

use common::{add_workload_veth, is_root, node_with_eth0, tabby_route, wait_until};
use std::net::Ipv4Addr;
use std::time::Duration;
use tabby_felix_lite::model::{BlockRoute, DesiredState, LocalVxlan, Path, Pool, Vtep, Workload};
use tabby_felix_lite::reconcile::{Config, Reconciler};

const REPAIR_WITHIN: Duration = Duration::from_secs(1);

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn state() -> DesiredState {
    DesiredState {
        node_interface: "eth0".into(),
        vxlan: Some(LocalVxlan {
            parent: "eth0".into(),
            local_ip: ip("10.98.0.1"),
            tunnel_ip: ip("10.245.0.1"),
            mac: [0x66, 0, 0, 0, 1, 0x0a],
            mtu: 1400,
            disable_tx_checksum_offload: false,
        }),
        routes: vec![
            BlockRoute {
                cidr: "10.245.1.0/26".parse().unwrap(),
                path: Path::Vxlan {
                    tunnel_ip: ip("10.245.1.1"),
                },
                node: "b".into(),
            },
            BlockRoute {
                cidr: "10.245.0.0/26".parse().unwrap(),
                path: Path::Blackhole,
                node: "a".into(),
            },
        ],
        vteps: vec![Vtep {
            node: "b".into(),
            node_ip: ip("10.98.0.2"),
            tunnel_ip: ip("10.245.1.1"),
            mac: [0x66, 0, 0, 0, 1, 0x0b],
        }],
        workloads: vec![Workload {
            ip: ip("10.245.0.9"),
            host_interface: "cali9".into(),
            workload_id: "default/pod-9".into(),
        }],
        pools: vec![],
        ..Default::default()
    }
}

fn has_neigh(ns: &common::Netns) -> bool {
    ns.ip_json(&["neigh", "show", "dev", "vxlan.calico"])
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["dst"] == "10.245.1.1" && n["lladdr"] == "66:00:00:00:01:0b")
}

fn has_fdb(ns: &common::Netns) -> bool {
    ns.bridge_json(&["fdb", "show", "dev", "vxlan.calico"])
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["mac"] == "66:00:00:00:01:0b" && f["dst"] == "10.98.0.2")
}

#[test]
fn external_deletions_are_repaired_within_a_second() {
    if !is_root() {
        return;
    }
    let ns = node_with_eth0("repair", "10.98.0.1/24");
    add_workload_veth(&ns, "cali9", "pod9");
    // A resync far away: only notifications can explain a quick repair.
    let config = Config {
        resync_interval: Duration::from_secs(3600),
        ..Config::default()
    };
    let rec = Reconciler::start_in_netns(&ns.name, config).expect("start");
    rec.handle().set_desired(state());
    wait_until("initial sync", Duration::from_secs(5), || {
        tabby_route(&ns, "10.245.1.0/26").is_some()
            && tabby_route(&ns, "10.245.0.9").is_some()
            && has_neigh(&ns)
            && has_fdb(&ns)
    });
    let passes = rec.handle().status().passes;

    ns.ip(&["route", "del", "10.245.1.0/26", "proto", "81"]);
    let took = wait_until("vxlan route back", REPAIR_WITHIN, || {
        tabby_route(&ns, "10.245.1.0/26").is_some()
    });
    println!("route repaired in {took:?}");

    ns.ip(&["route", "del", "10.245.0.9", "dev", "cali9"]);
    wait_until("workload route back", REPAIR_WITHIN, || {
        tabby_route(&ns, "10.245.0.9").is_some()
    });

    ns.ip(&["neigh", "del", "10.245.1.1", "dev", "vxlan.calico"]);
    let took = wait_until("ARP entry back", REPAIR_WITHIN, || has_neigh(&ns));
    println!("ARP entry repaired in {took:?}");

    common::run(
        "bridge",
        &[
            "-n",
            &ns.name,
            "fdb",
            "del",
            "66:00:00:00:01:0b",
            "dev",
            "vxlan.calico",
            "dst",
            "10.98.0.2",
            "self",
        ],
    );
    let took = wait_until("FDB entry back", REPAIR_WITHIN, || has_fdb(&ns));
    println!("FDB entry repaired in {took:?}");

    // The tunnel address and then the whole device.
    ns.ip(&["addr", "flush", "dev", "vxlan.calico"]);
    wait_until("tunnel address back", REPAIR_WITHIN, || {
        ns.ip(&["-4", "addr", "show", "dev", "vxlan.calico"])
            .contains("10.245.0.1/32")
    });
    ns.ip(&["link", "del", "vxlan.calico"]);
    wait_until("device, route, ARP and FDB back", REPAIR_WITHIN * 2, || {
        tabby_route(&ns, "10.245.1.0/26").is_some() && has_neigh(&ns) && has_fdb(&ns)
    });
    let mtu = &ns.ip_json(&["link", "show", "vxlan.calico"])[0]["mtu"];
    assert_eq!(mtu, 1400, "configured MTU, not parent - 50");
    assert!(rec.handle().status().passes > passes);
}

#[test]
fn periodic_resync_repairs_what_sends_no_event() {
    if !is_root() {
        return;
    }
    // A write of route_localnet raises no notification at all (unlike
    // proxy_arp or forwarding, which raise RTM_NEWNETCONF); only reading it
    // again, on the resync (or the sysctl timer, never slower), puts it back.
    let ns = node_with_eth0("resync", "10.98.0.1/24");
    add_workload_veth(&ns, "cali9", "pod9");
    let config = Config {
        resync_interval: Duration::from_millis(300),
        ..Config::default()
    };
    let rec = Reconciler::start_in_netns(&ns.name, config).expect("start");
    rec.handle().set_desired(state());
    let localnet = || {
        ns.exec("cat", &["/proc/sys/net/ipv4/conf/cali9/route_localnet"])
            .1
            .trim()
            .to_string()
    };
    wait_until("route_localnet on", Duration::from_secs(5), || {
        localnet() == "1"
    });
    let (ok, out) = ns.exec("sysctl", &["-w", "net.ipv4.conf.cali9.route_localnet=0"]);
    assert!(ok, "{out}");
    wait_until("route_localnet back on", Duration::from_secs(2), || {
        localnet() == "1"
    });
    let s = rec.handle().status();
    assert!(
        s.last_pass.failures.is_empty(),
        "{:?}",
        s.last_pass.failures
    );
    wait_until("the schedule ticking", Duration::from_secs(2), || {
        rec.handle().status().scheduled_resyncs >= 2
    });
}

#[test]
fn kernel_events_do_not_spawn_nft_but_a_resync_does() {
    if !is_root() {
        return;
    }
    // rtnetlink events say nothing about nftables, so a pass they wake
    // leaves `nft` alone while nftables announced no change; a requested
    // resync (like the scheduled one) checks it.
    let ns = node_with_eth0("nftresync", "10.98.0.1/24");
    add_workload_veth(&ns, "cali9", "pod9");
    let config = Config {
        resync_interval: Duration::from_secs(3600),
        ..Config::default()
    };
    let rec = Reconciler::start_in_netns(&ns.name, config).expect("start");
    let mut with_pool = state();
    with_pool.pools = vec![Pool {
        cidr: "10.245.0.0/16".parse().unwrap(),
        nat_outgoing: true,
    }];
    let status = common::apply(&rec.handle(), with_pool);
    assert!(status.last_pass.nft_checked, "new pools are checked");
    let has_table = || ns.exec("nft", &["list", "table", "ip", "tabby"]).0;
    assert!(has_table());

    let passes = rec.handle().status().passes;
    ns.ip(&["route", "del", "10.245.1.0/26", "proto", "81"]);
    wait_until("route back", REPAIR_WITHIN, || {
        tabby_route(&ns, "10.245.1.0/26").is_some()
    });
    wait_until("the event's pass reported", REPAIR_WITHIN, || {
        rec.handle().status().passes > passes
    });
    assert!(
        !rec.handle().status().last_pass.nft_checked,
        "a route event's pass ran nft"
    );

    rec.handle().resync();
    // Only a pass that checked nftables ends this wait: the resync's.
    wait_until("a resync checks nftables", Duration::from_secs(2), || {
        rec.handle().status().last_pass.nft_checked
    });
    let s = rec.handle().status();
    assert_eq!(s.last_pass.applied_count, 0, "{:?}", s.last_pass.applied);
    assert_eq!(s.scheduled_resyncs, 0, "requested, not scheduled");
}
