//! `blockSize: 32` on a real kernel: the node's own block is the pod's one
//! address, so the block's blackhole and the pod's route share a
//! destination; the pod's route is programmed and the pass is clean, and
//! with the pod gone the blackhole comes back. Root only.

mod common;

use common::{add_workload_veth, apply, is_root, node_with_eth0, tabby_route};
use tabby_felix_lite::model::{BlockRoute, DesiredState, Path, Workload};
use tabby_felix_lite::reconcile::Reconciler;

fn state(with_pod: bool) -> DesiredState {
    DesiredState {
        node_interface: "eth0".into(),
        routes: vec![BlockRoute {
            cidr: "10.244.9.7/32".parse().unwrap(),
            path: Path::Blackhole,
            node: "me".into(),
        }],
        workloads: with_pod
            .then(|| Workload {
                ip: "10.244.9.7".parse().unwrap(),
                host_interface: "cali1".into(),
                workload_id: "default/pod-1".into(),
            })
            .into_iter()
            .collect(),
        ..Default::default()
    }
}

#[test]
fn a_pod_in_a_slash_32_block_gets_its_route() {
    if !is_root() {
        return;
    }
    let ns = node_with_eth0("blk32", "10.99.0.1/24");
    add_workload_veth(&ns, "cali1", "pod1");
    let rec = Reconciler::start_in_netns(&ns.name, Default::default()).expect("start");
    let status = apply(&rec.handle(), state(true));
    assert!(
        status.last_pass.failures.is_empty(),
        "{:?}",
        status.last_pass.failures
    );
    let r = tabby_route(&ns, "10.244.9.7").expect("the pod's route");
    assert_eq!(r["dev"], "cali1", "{r}");
    let status = apply(&rec.handle(), state(false));
    assert!(status.last_pass.failures.is_empty());
    let r = tabby_route(&ns, "blackhole 10.244.9.7")
        .or_else(|| tabby_route(&ns, "10.244.9.7"))
        .expect("the block's blackhole");
    assert_eq!(r["type"], "blackhole", "{r}");
    rec.stop().unwrap();
}
