//! The debounce is on the leading edge (root): a change after a quiet
//! spell is applied by a pass that starts at once, and a burst of changes
//! is folded into few passes. A long debounce makes both visible without
//! tight timing: only counts, and a bound far from the debounce.

mod common;

use common::{is_root, node_with_eth0, tabby_route, wait_until};
use std::time::{Duration, Instant};
use tabby_felix_lite::model::{BlockRoute, DesiredState, Path};
use tabby_felix_lite::reconcile::{Config, Reconciler, ReconcilerHandle};

const DEBOUNCE: Duration = Duration::from_secs(2);

fn state(blocks: u32) -> DesiredState {
    DesiredState {
        node_interface: "eth0".into(),
        routes: (0..blocks)
            .map(|i| BlockRoute {
                cidr: format!("10.246.{i}.0/26").parse().unwrap(),
                path: Path::Blackhole,
                node: "a".into(),
            })
            .collect(),
        ..DesiredState::default()
    }
}

/// Waits until no pass ran for longer than the debounce; the pass count.
fn quiet(handle: &ReconcilerHandle) -> u64 {
    let mut last = handle.status().passes;
    loop {
        std::thread::sleep(DEBOUNCE + Duration::from_millis(500));
        let now = handle.status().passes;
        if now == last {
            return now;
        }
        last = now;
    }
}

fn wait_for(handle: &ReconcilerHandle, generation: u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(20),
            handle.wait_for_generation(generation),
        )
        .await
        .expect("a pass within 20 s")
        .expect("reconciler running")
    });
}

#[test]
fn a_change_after_quiet_runs_at_once_and_a_burst_is_folded() {
    if !is_root() {
        return;
    }
    let ns = node_with_eth0("debounce", "10.98.0.1/24");
    let config = Config {
        resync_interval: Duration::from_secs(3600),
        debounce: DEBOUNCE,
    };
    let rec = Reconciler::start_in_netns(&ns.name, config).expect("start");
    let handle = rec.handle();
    common::apply(&handle, state(1));

    // One change after a quiet spell: its pass does not wait the debounce.
    let before = quiet(&handle);
    let start = Instant::now();
    wait_for(&handle, handle.set_desired(state(2)));
    let took = start.elapsed();
    println!("a change after a quiet spell was applied in {took:?}");
    assert!(
        took < DEBOUNCE / 2,
        "{took:?}: the pass waited for the {DEBOUNCE:?} debounce"
    );
    assert_eq!(handle.status().passes, before + 1);
    assert!(tabby_route(&ns, "10.246.1.0/26").is_some());

    // A burst of 30 changes: the first runs at once, the rest wait for one
    // pass a debounce later.
    let before = quiet(&handle);
    let mut last = 0;
    for n in 3..33 {
        last = handle.set_desired(state(n));
    }
    wait_for(&handle, last);
    let passes = handle.status().passes - before;
    println!("30 changes in a burst took {passes} passes");
    assert!(passes <= 2, "{passes} passes for a burst of 30 changes");
    wait_until("the last block's route", Duration::from_secs(1), || {
        tabby_route(&ns, "10.246.31.0/26").is_some()
    });
}
