//! Passes diff against the reconciler's view of the routes, kept from
//! notifications, and dump only when it must (root): full passes do, and
//! so does any pass after the kernel removed routes without a word.

mod common;

use common::{add_workload_veth, is_root, node_with_eth0, tabby_route, wait_until};
use std::net::Ipv4Addr;
use std::time::Duration;
use tabby_felix_lite::model::{BlockRoute, DesiredState, Path, Workload};
use tabby_felix_lite::reconcile::{Config, Reconciler, ReconcilerHandle, Status};

const WITHIN: Duration = Duration::from_secs(2);

fn state(blocks: u8) -> DesiredState {
    let mut routes: Vec<BlockRoute> = (0..blocks)
        .map(|i| BlockRoute {
            cidr: format!("10.246.{i}.0/26").parse().unwrap(),
            path: Path::Blackhole,
            node: "a".into(),
        })
        .collect();
    routes.push(BlockRoute {
        cidr: "10.247.0.0/26".parse().unwrap(),
        path: Path::Native {
            gateway: Ipv4Addr::new(10, 98, 0, 3),
        },
        node: "b".into(),
    });
    DesiredState {
        node_interface: "eth0".into(),
        routes,
        workloads: vec![Workload {
            ip: Ipv4Addr::new(10, 246, 0, 9),
            host_interface: "cali9".into(),
            workload_id: "default/pod-9".into(),
        }],
        ..DesiredState::default()
    }
}

fn start(tag: &str) -> (common::Netns, Reconciler) {
    let ns = node_with_eth0(tag, "10.98.0.1/24");
    add_workload_veth(&ns, "cali9", "pod9");
    let config = Config {
        resync_interval: Duration::from_secs(3600),
        ..Config::default()
    };
    let rec = Reconciler::start_in_netns(&ns.name, config).expect("start");
    (ns, rec)
}

/// The status once no pass has run for 300 ms.
fn quiet(handle: &ReconcilerHandle) -> Status {
    let mut last = handle.status();
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = handle.status();
        if now.passes == last.passes {
            return now;
        }
        last = now;
    }
}

#[test]
fn passes_woken_by_changes_use_the_view_and_a_resync_dumps() {
    if !is_root() {
        return;
    }
    let (ns, rec) = start("viewuse");
    let handle = rec.handle();
    let first = common::apply(&handle, state(2));
    assert!(first.last_pass.failures.is_empty(), "{:?}", first.last_pass);
    assert!(first.last_pass.routes_dumped >= 1, "the first pass dumps");
    // The first pass's own notifications woke one more; it used the view.
    let s = quiet(&handle);
    assert_eq!(s.last_pass.routes_dumped, 0, "{:?}", s.last_pass);
    assert_eq!(s.last_pass.routes_programmed, 4);

    let s = common::apply(&handle, state(3));
    assert_eq!(s.last_pass.routes_dumped, 0, "a desired change is diffed");
    assert_eq!(s.last_pass.routes_programmed, 5);
    assert!(tabby_route(&ns, "10.246.2.0/26").is_some());

    // An external delete is a notification: the view follows, no dump.
    quiet(&handle);
    ns.ip(&["route", "del", "10.246.1.0/26", "proto", "81"]);
    wait_until("the deleted route back", WITHIN, || {
        tabby_route(&ns, "10.246.1.0/26").is_some()
    });
    let s = quiet(&handle);
    assert_eq!(s.last_pass.routes_dumped, 0);

    let passes = s.passes;
    handle.resync();
    wait_until("the resync's pass", WITHIN, || {
        handle.status().passes > passes
    });
    let s = handle.status();
    assert!(s.last_pass.routes_dumped >= 1, "a resync dumps");
    assert_eq!(s.last_pass.applied_count, 0, "{:?}", s.last_pass.applied);
}

#[test]
fn routes_the_kernel_removes_silently_come_back() {
    if !is_root() {
        return;
    }
    let (ns, rec) = start("viewsilent");
    let handle = rec.handle();
    common::apply(&handle, state(1));
    quiet(&handle);

    // IPv4 drops the routes through a device that goes down, and announces
    // nothing: the view must not go on believing in the workload route.
    ns.ip(&["link", "set", "cali9", "down"]);
    wait_until("the kernel dropped the workload route", WITHIN, || {
        tabby_route(&ns, "10.246.0.9").is_none()
    });
    ns.ip(&["link", "set", "cali9", "up"]);
    let took = wait_until("the workload route back", WITHIN, || {
        tabby_route(&ns, "10.246.0.9").is_some()
    });
    println!("workload route back {took:?} after its device came up again");

    // The same when the device's last address goes: the native route's
    // next hop leaves with it, silently too.
    quiet(&handle);
    ns.ip(&["addr", "flush", "dev", "eth0"]);
    wait_until("the kernel dropped the native route", WITHIN, || {
        tabby_route(&ns, "10.247.0.0/26").is_none()
    });
    ns.ip(&["addr", "add", "10.98.0.1/24", "dev", "eth0"]);
    wait_until("the native route back", WITHIN, || {
        tabby_route(&ns, "10.247.0.0/26").is_some()
    });
    assert_eq!(handle.status().scheduled_resyncs, 0, "not the schedule");
}
