//! podlink in real namespaces: the pair as Calico builds it, CHECK noticing
//! drift, a stale host end from an earlier attempt replaced, teardown
//! idempotent (also once the pod netns is gone). Needs root.

mod common;

use common::{is_root, Netns};
use std::net::Ipv4Addr;
use tabby_felix_lite::netns;
use tabby_felix_lite::podlink::{self, PodLinkError, PodLinkSpec, Teardown};

fn spec(pod: &Netns, host: &str) -> PodLinkSpec {
    PodLinkSpec {
        host_ifname: host.to_string(),
        pod_ifname: "eth0".into(),
        netns: netns::path(&pod.name),
        ip: Some(Ipv4Addr::new(10, 77, 0, 5)),
        mtu: 1410,
    }
}

#[test]
fn pair_built_checked_and_removed() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let node = Netns::new("plnode");
    let pod = Netns::new("plpod");
    let host = podlink::host_veth_name("ns", &pod.name);
    // A stale host end with the same name, as a crashed earlier ADD leaves.
    node.ip(&[
        "link", "add", &host, "type", "veth", "peer", "name", "stale0",
    ]);

    let s = spec(&pod, &host);
    let s2 = s.clone();
    let link = netns::run_in(&node.name, move || podlink::setup(&s2))
        .unwrap()
        .unwrap();
    assert_eq!(link.host_mac, podlink::HOST_MAC);
    let links = node.ip_json(&["link", "show"]);
    let names: Vec<&str> = links
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["ifname"].as_str())
        .collect();
    assert!(names.contains(&host.as_str()), "{names:?}");
    assert!(
        !names.contains(&"stale0"),
        "stale pair not replaced: {names:?}"
    );
    let pod_link = &pod.ip_json(&["link", "show", "eth0"])[0];
    assert_eq!(pod_link["mtu"], 1410);
    assert_eq!(pod_link["address"], podlink::fmt_mac(&link.pod_mac));
    let routes = pod.ip(&["route"]);
    assert!(
        routes.contains("default via 169.254.1.1 dev eth0 onlink"),
        "{routes}"
    );

    let s2 = s.clone();
    netns::run_in(&node.name, move || podlink::check(&s2))
        .unwrap()
        .unwrap();
    pod.ip(&["link", "set", "eth0", "mtu", "1300"]);
    let s2 = s.clone();
    let err = netns::run_in(&node.name, move || podlink::check(&s2))
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, PodLinkError::Mismatch(_)), "{err}");
    assert!(err.to_string().contains("mtu 1300"), "{err}");

    let pod_path = netns::path(&pod.name);
    let h = host.clone();
    let first = netns::run_in(&node.name, move || {
        podlink::teardown(Some(&h), Some(&pod_path), "eth0")
    })
    .unwrap()
    .unwrap();
    assert_eq!(
        first,
        Teardown {
            removed_pod_end: true,
            removed_host_end: false
        }
    );
    drop(pod);
    let gone = netns::path("tabby-no-such-pod-netns");
    let h = host.clone();
    let again = netns::run_in(&node.name, move || {
        podlink::teardown(Some(&h), Some(&gone), "eth0")
    })
    .unwrap()
    .unwrap();
    assert_eq!(again, Teardown::default());
}

#[test]
fn refuses_bad_names_and_non_veth_host_interfaces() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let node = Netns::new("plbad");
    let pod = Netns::new("plbadpod");
    let mut s = spec(&pod, "lo");
    let s2 = s.clone();
    let err = netns::run_in(&node.name, move || podlink::setup(&s2))
        .unwrap()
        .unwrap_err();
    assert!(err.to_string().contains("not a veth"), "{err}");
    s.pod_ifname = "a/b".into();
    let err = podlink::setup(&s).unwrap_err();
    assert!(err.to_string().contains("CNI_IFNAME"), "{err}");
    // Deleting never touches a non-veth.
    let err = netns::run_in(&node.name, || podlink::teardown(Some("lo"), None, "eth0"))
        .unwrap()
        .unwrap_err();
    assert!(err.to_string().contains("not a veth"), "{err}");
}
