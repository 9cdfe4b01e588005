//! The GC's rules, one at a time, on hand-built allocations and pods.

use super::*;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

fn pod_alloc(ip: &str, handle: &str, node: &str, ns: &str, pod: &str) -> Allocation {
    Allocation {
        ip: ip.parse().unwrap(),
        handle: handle.into(),
        block: "10.0.0.0/26".parse().unwrap(),
        node: Some(node.into()),
        namespace: Some(ns.into()),
        pod: Some(pod.into()),
        timestamp: None,
    }
}

fn tunnel(ip: &str, node: &str) -> Allocation {
    Allocation {
        namespace: None,
        pod: None,
        ..pod_alloc(ip, &format!("vxlan-tunnel-addr-{node}"), node, "", "")
    }
}

fn running(node: &str, ips: &[&str]) -> PodView {
    PodView {
        node: Some(node.into()),
        reported: true,
        finished: false,
        ips: ips.iter().map(|i| i.parse().unwrap()).collect(),
    }
}

fn pods(list: &[(&str, &str, PodView)]) -> Workloads {
    Workloads {
        pods: Some(
            list.iter()
                .map(|(ns, n, v)| ((ns.to_string(), n.to_string()), v.clone()))
                .collect::<HashMap<_, _>>(),
        ),
        containers: None,
    }
}

fn nodes(n: &[&str]) -> HashSet<String> {
    n.iter().map(|s| s.to_string()).collect()
}

fn leak(reason: Reason) -> Verdict {
    Verdict::Leak {
        reason,
        node_gone: false,
    }
}

#[test]
fn pod_rules_in_calicos_order() {
    let a = pod_alloc("10.0.0.5", "k8s-pod-network.c1", "n1", "shop", "web");
    let n = nodes(&["n1", "n2"]);
    assert_eq!(judge(&a, &n, &pods(&[])), leak(Reason::PodGone));
    let w = pods(&[("shop", "web", running("n1", &["10.0.0.5"]))]);
    assert_eq!(judge(&a, &n, &w), Verdict::Valid);
    // Same name in another namespace is another pod.
    let w = pods(&[("other", "web", running("n1", &["10.0.0.5"]))]);
    assert_eq!(judge(&a, &n, &w), leak(Reason::PodGone));
    // Rescheduled: the node check comes before the address check.
    let w = pods(&[("shop", "web", running("n2", &["10.0.0.5"]))]);
    assert_eq!(
        judge(&a, &n, &w),
        leak(Reason::OtherNode {
            pod_node: "n2".into()
        })
    );
    // Restarted with a new address.
    let w = pods(&[("shop", "web", running("n1", &["10.0.0.9"]))]);
    assert_eq!(judge(&a, &n, &w), leak(Reason::IpNotListed));
    // Failed/Evicted or Succeeded: no endpoint, so no address.
    let mut done = running("n1", &[]);
    done.finished = true;
    let w = pods(&[("shop", "web", done.clone())]);
    assert_eq!(judge(&a, &n, &w), leak(Reason::PodFinished));
    // Still starting (no addresses reported): valid, finished or not.
    done.reported = false;
    let w = pods(&[("shop", "web", done)]);
    assert_eq!(judge(&a, &n, &w), Verdict::Valid);
}

#[test]
fn node_gone_confirms_a_pod_leak_but_not_a_live_pod() {
    let a = pod_alloc("10.0.0.5", "k8s-pod-network.c1", "n9", "shop", "web");
    let n = nodes(&["n1"]);
    assert_eq!(
        judge(&a, &n, &pods(&[])),
        Verdict::Leak {
            reason: Reason::PodGone,
            node_gone: true
        }
    );
    // The pod still exists on the deleted node (the kubelet hasn't been
    // told): valid, as Calico keeps it.
    let w = pods(&[("shop", "web", running("n9", &["10.0.0.5"]))]);
    assert_eq!(judge(&a, &n, &w), Verdict::Valid);
}

#[test]
fn tunnel_addresses_leak_only_with_their_node_and_after_its_pods() {
    let n = nodes(&["n1"]);
    let t1 = tunnel("10.0.0.1", "n1");
    let t9 = tunnel("10.0.0.2", "n9");
    assert_eq!(judge(&t1, &n, &pods(&[])), Verdict::Valid);
    assert_eq!(
        judge(&t9, &n, &pods(&[])),
        Verdict::Leak {
            reason: Reason::NodeGone,
            node_gone: true
        }
    );
    // A pod still live on n9 keeps n9's tunnel address (and n9's blocks).
    let p = pod_alloc("10.0.0.5", "k8s-pod-network.c1", "n9", "shop", "web");
    let w = pods(&[("shop", "web", running("n9", &["10.0.0.5"]))]);
    let allocs = vec![t9.clone(), p.clone()];
    let v = assess(&allocs, &n, &w);
    assert_eq!(v, [Verdict::Valid, Verdict::Valid]);
    let pl = plan(&allocs, &v, &[false, false], &n, ["n9"]);
    assert!(pl.releases.is_empty() && pl.nodes.is_empty(), "{pl:?}");
    // Once the pod is gone both go at once, and so do n9's affinities.
    let v = assess(&allocs, &n, &pods(&[]));
    assert!(v.iter().all(Verdict::is_leak), "{v:?}");
    let c = Candidates::new().observe(&allocs, &v, Instant::now(), Duration::from_secs(900));
    assert_eq!(c, [true, true]);
    let pl = plan(&allocs, &v, &c, &n, ["n9"]);
    assert_eq!(pl.releases.len(), 2);
    assert_eq!(pl.nodes, ["n9"]);
}

#[test]
fn other_handles_and_unattributed_pod_addresses_are_unknown() {
    let n = nodes(&["n1"]);
    let mut admin = tunnel("10.0.0.3", "n1");
    admin.handle = "reserved-by-admin".into();
    assert_eq!(judge(&admin, &n, &pods(&[])), Verdict::Unknown);
    let mut bare = admin.clone();
    bare.handle = "k8s-pod-network.c7".into();
    // Calico can't judge a pod address without namespace/pod...
    assert_eq!(judge(&bare, &n, &pods(&[])), Verdict::Unknown);
    // ...the embedded datastores can, by the endpoints' container IDs.
    let mut w = Workloads {
        pods: None,
        containers: Some(HashSet::from(["c7".to_string()])),
    };
    assert_eq!(judge(&bare, &n, &w), Verdict::Valid);
    w.containers = Some(HashSet::new());
    assert_eq!(judge(&bare, &n, &w), leak(Reason::ContainerGone));
    // An unknown address on a deleted node keeps the node's affinities.
    admin.node = Some("n9".into());
    let v = assess(std::slice::from_ref(&admin), &n, &w);
    let pl = plan(std::slice::from_ref(&admin), &v, &[false], &n, ["n9"]);
    assert!(pl.nodes.is_empty(), "{pl:?}");
}

#[test]
fn candidates_confirm_after_the_whole_grace_period_and_forget_the_revived() {
    let a = pod_alloc("10.0.0.5", "k8s-pod-network.c1", "n1", "shop", "web");
    let allocs = [a.clone()];
    let n = nodes(&["n1"]);
    let grace = Duration::from_secs(60);
    let t0 = Instant::now();
    let gone = assess(&allocs, &n, &pods(&[]));
    let live = assess(
        &allocs,
        &n,
        &pods(&[("shop", "web", running("n1", &["10.0.0.5"]))]),
    );
    let mut c = Candidates::new();
    assert_eq!(c.observe(&allocs, &gone, t0, grace), [false]);
    assert_eq!(c.len(), 1);
    let at = |s| t0 + Duration::from_secs(s);
    assert_eq!(c.observe(&allocs, &gone, at(59), grace), [false]);
    assert_eq!(c.observe(&allocs, &gone, at(60), grace), [true]);
    // Seen live once: it starts over.
    assert_eq!(c.observe(&allocs, &live, at(61), grace), [false]);
    assert!(c.is_empty());
    assert_eq!(c.observe(&allocs, &gone, at(62), grace), [false]);
    assert_eq!(c.observe(&allocs, &gone, at(121), grace), [false]);
    assert_eq!(c.observe(&allocs, &gone, at(122), grace), [true]);
    // An allocation that disappears (released elsewhere) is forgotten.
    c.observe(&[], &[], at(123), grace);
    assert!(c.is_empty());
    assert_eq!(c.observe(&allocs, &gone, at(124), grace), [false]);
    c.forget(&a.key());
    assert_eq!(c.observe(&allocs, &gone, at(500), grace), [false]);
    // Grace 0: candidates are never confirmed.
    let mut off = Candidates::new();
    off.observe(&allocs, &gone, t0, Duration::ZERO);
    assert_eq!(
        off.observe(&allocs, &gone, at(10_000), Duration::ZERO),
        [false]
    );
}

#[test]
fn one_shot_confirmation_by_timestamp() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    let mut young = pod_alloc("10.0.0.5", "k8s-pod-network.c1", "n1", "shop", "web");
    young.timestamp = Some(1_000_000 - 60);
    let mut old = young.clone();
    old.timestamp = Some(1_000_000 - 3600);
    let mut untimed = young.clone();
    untimed.timestamp = None;
    let mut young_on_gone_node = young.clone();
    young_on_gone_node.node = Some("n9".into());
    let allocs = [young, old, untimed, young_on_gone_node];
    let v = assess(&allocs, &nodes(&["n1"]), &pods(&[]));
    let grace = Duration::from_secs(900);
    assert_eq!(
        confirmed_by_age(&allocs, &v, grace, now),
        [false, true, true, true]
    );
    assert_eq!(
        confirmed_by_age(&allocs, &v, Duration::ZERO, now),
        [true; 4]
    );
}

#[test]
fn a_handle_is_released_only_when_all_its_addresses_are_leaks() {
    // A dual-stack pod: the v4 address is listed, the v6 one is not.
    let v4 = pod_alloc("10.0.0.5", "k8s-pod-network.c1", "n1", "shop", "web");
    let v6 = pod_alloc("fd00::5", "k8s-pod-network.c1", "n1", "shop", "web");
    let other = pod_alloc("10.0.0.6", "k8s-pod-network.c2", "n1", "shop", "gone");
    let allocs = [v4.clone(), v6.clone(), other.clone()];
    let n = nodes(&["n1"]);
    let w = pods(&[("shop", "web", running("n1", &["10.0.0.5"]))]);
    let v = assess(&allocs, &n, &w);
    assert_eq!(v[1], leak(Reason::IpNotListed));
    let all = [true, true, true];
    let pl = plan(&allocs, &v, &all, &n, ["n1"]);
    assert_eq!(
        pl.releases.iter().map(|r| r.alloc.ip).collect::<Vec<_>>(),
        [other.ip]
    );
    assert_eq!(pl.held_back, std::slice::from_ref(&v6));
    // Both addresses gone from the pod: both go.
    let w = pods(&[("shop", "web", running("n1", &[]))]);
    let v = assess(&allocs, &n, &w);
    let pl = plan(&allocs, &v, &all, &n, ["n1"]);
    assert_eq!(pl.releases.len(), 3);
    assert!(pl.nodes.is_empty(), "n1 exists: {pl:?}");
}

#[test]
fn recheck_drops_what_came_back_and_its_handle_mates() {
    let v4 = pod_alloc("10.0.0.5", "k8s-pod-network.c1", "n1", "shop", "web");
    let v6 = pod_alloc("fd00::5", "k8s-pod-network.c1", "n1", "shop", "web");
    let other = pod_alloc("10.0.0.6", "k8s-pod-network.c2", "n1", "shop", "gone");
    let n = nodes(&["n1"]);
    let releases: Vec<Release> = [v4.clone(), v6, other.clone()]
        .into_iter()
        .map(|alloc| Release {
            alloc,
            reason: Reason::PodGone,
        })
        .collect();
    // Between the pass and the release the pod reappeared with its v4
    // address (a cache that was behind, a pod recreated with its name).
    let w = pods(&[("shop", "web", running("n1", &["10.0.0.5"]))]);
    let (still, live) = recheck(releases.clone(), &n, &w);
    assert_eq!(
        still.iter().map(|r| r.alloc.ip).collect::<Vec<_>>(),
        [other.ip]
    );
    assert_eq!(live.iter().map(|r| r.alloc.ip).collect::<Vec<_>>(), [v4.ip]);
    let (still, live) = recheck(releases, &n, &pods(&[]));
    assert_eq!((still.len(), live.len()), (3, 0));
}

#[test]
fn allocations_read_attributes_and_fall_back_to_the_block_host() {
    use crate::block::{Attribute, Block};
    let mut b = Block::new("10.0.0.0/30".parse().unwrap(), Some("host:n1".into()), 1).unwrap();
    let attr = |h: &str, kv: &[(&str, &str)]| Attribute {
        handle_id: Some(h.into()),
        secondary: kv
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    b.assign_ip(
        "10.0.0.1".parse().unwrap(),
        attr(
            "k8s-pod-network.c1",
            &[
                ("namespace", "shop"),
                ("pod", "web"),
                ("node", "n2"),
                ("timestamp", "1970-01-01T00:01:00Z"),
            ],
        ),
    )
    .unwrap();
    b.assign_ip("10.0.0.2".parse().unwrap(), attr("h", &[("pod", "")]))
        .unwrap();
    b.assign_ip(
        "10.0.0.3".parse().unwrap(),
        Attribute {
            handle_id: None,
            secondary: Default::default(),
        },
    )
    .unwrap();
    let a = allocations([&b]);
    assert_eq!(a.len(), 2, "the handle-less address has no owner: {a:?}");
    assert_eq!(a[0].node.as_deref(), Some("n2"));
    assert_eq!(
        (a[0].namespace.as_deref(), a[0].pod.as_deref()),
        (Some("shop"), Some("web"))
    );
    assert_eq!(a[0].timestamp, Some(60));
    assert_eq!(a[1].node.as_deref(), Some("n1"));
    assert_eq!(a[1].pod, None);
}
