//! The plain values the agent's metrics and liveness read from the
//! reconciler, against a real kernel in a throwaway namespace (root):
//! pass durations kept per pass, netlink errors counted (a route the
//! kernel refuses), and a heartbeat that moves while the loop waits.

mod common;

use common::{apply, is_root, node_with_eth0};
use std::time::{Duration, Instant};
use tabby_felix_lite::model::{BlockRoute, DesiredState, Path};
use tabby_felix_lite::reconcile::{Config, Reconciler, HEARTBEAT_EVERY};

/// A native route whose gateway is on no connected subnet: the kernel
/// answers ENETUNREACH, which is a netlink error, not a planning refusal.
fn unreachable_gateway(cidr: &str) -> DesiredState {
    DesiredState {
        node_interface: "eth0".into(),
        routes: vec![BlockRoute {
            cidr: cidr.parse().unwrap(),
            path: Path::Native {
                gateway: "10.98.0.9".parse().unwrap(),
            },
            node: "far".into(),
        }],
        ..DesiredState::default()
    }
}

#[test]
fn durations_netlink_errors_and_heartbeat() {
    if !is_root() {
        return;
    }
    let ns = node_with_eth0("ctr", "10.99.0.1/24");
    let rec = Reconciler::start_in_netns(
        &ns.name,
        Config {
            resync_interval: Duration::from_secs(3600),
            ..Config::default()
        },
    )
    .expect("start");
    let handle = rec.handle();
    let started = Instant::now();

    // Waiting for the first desired state still beats.
    std::thread::sleep(HEARTBEAT_EVERY * 2 + Duration::from_millis(500));
    assert!(
        handle.heartbeat() > started + HEARTBEAT_EVERY,
        "no beat while waiting"
    );
    assert_eq!(handle.status().passes, 0);

    let s = apply(&handle, unreachable_gateway("10.244.9.0/26"));
    assert_eq!(s.last_pass.netlink_errors, 1, "{:?}", s.last_pass.failures);
    assert_eq!(s.netlink_errors, 1);
    assert_eq!(s.recent_durations.len() as u64, s.passes);

    let s = apply(&handle, unreachable_gateway("10.244.10.0/26"));
    assert_eq!(s.last_pass.netlink_errors, 1);
    assert_eq!(s.netlink_errors, 2, "cumulative over passes");
    assert_eq!(s.recent_durations.len() as u64, s.passes);

    // Idle: no pass runs, the heartbeat keeps moving.
    let passes = s.passes;
    std::thread::sleep(HEARTBEAT_EVERY * 3);
    let idle_for = Instant::now().saturating_duration_since(handle.heartbeat());
    assert!(
        idle_for <= HEARTBEAT_EVERY + Duration::from_millis(500),
        "{idle_for:?}"
    );
    assert_eq!(handle.status().passes, passes, "a beat is not a pass");
}
