//! What a pass says it applied names routes by where they point and
//! interfaces by name, so a log line is read without `ip link` (root).

mod common;

use common::{is_root, node_with_eth0};
use std::time::Duration;
use tabby_felix_lite::model::{BlockRoute, DesiredState, Path};
use tabby_felix_lite::reconcile::{Config, Reconciler};

fn native(gateway: &str) -> DesiredState {
    DesiredState {
        node_interface: "eth0".into(),
        routes: vec![BlockRoute {
            cidr: "10.245.2.0/26".parse().unwrap(),
            path: Path::Native {
                gateway: gateway.parse().unwrap(),
            },
            node: "c".into(),
        }],
        ..DesiredState::default()
    }
}

#[test]
fn applied_routes_name_their_device_and_what_they_replaced() {
    if !is_root() {
        return;
    }
    let ns = node_with_eth0("said", "10.98.0.1/24");
    let config = Config {
        resync_interval: Duration::from_secs(3600),
        ..Config::default()
    };
    let rec = Reconciler::start_in_netns(&ns.name, config).expect("start");
    let said = |s: tabby_felix_lite::reconcile::Status| s.last_pass.applied.join("\n");

    let first = said(common::apply(&rec.handle(), native("10.98.0.3")));
    assert!(
        first.contains(
            "programmed route 10.245.2.0/26 via 10.98.0.3 dev eth0 (native) for node \"c\""
        ),
        "{first}"
    );

    let moved = said(common::apply(&rec.handle(), native("10.98.0.4")));
    assert!(
        moved.contains(
            "replaced route 10.245.2.0/26 via 10.98.0.4 dev eth0 (native) for node \"c\" (was via 10.98.0.3 dev eth0)"
        ),
        "{moved}"
    );

    let gone = said(common::apply(
        &rec.handle(),
        DesiredState {
            node_interface: "eth0".into(),
            ..DesiredState::default()
        },
    ));
    assert!(
        gone.contains("removed stale route 10.245.2.0/26 via 10.98.0.4 dev eth0 (protocol 81)"),
        "{gone}"
    );
}
