//! A real containerd container gets both addresses from a dual-stack
//! conflist (issue 14, test 4): the manifest's conflist with Calico's
//! `assign_ipv6: "true"` and `ipv6_pools`, `ctr run --cni` as in
//! `cni_containerd.rs` (same private mounts, same own containerd), against
//! the node stand-in with an IPv6 pool applied by `tabbyctl apply`. Inside
//! the container: the /32 and the /128, `default via
//! fe80::ecee:eeff:feee:eeee dev eth0`, and `ping -6` to the node's IPv6
//! address. When the container exits, ctr's DEL releases both addresses.
//! Skipped, saying so, when containerd, ctr or busybox-static are not
//! installed. Needs root.

mod cni_common;

use cni_common::containerd::*;
use cni_common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_container_gets_ipv4_and_ipv6() {
    if let Some(bin) = missing_tool() {
        eprintln!("skipped: {bin} is not installed (apt-get install containerd busybox-static)");
        return;
    }
    let node = Node::start().await;
    node.add_ipv6().await;
    let work = tempfile::tempdir().unwrap();
    let containerd = start_containerd(work.path());
    let rootfs = busybox_rootfs(work.path());

    let mut list = manifest_conflist(&node);
    let ipam = &mut list["plugins"][0]["ipam"];
    ipam["assign_ipv4"] = "true".into();
    ipam["assign_ipv6"] = "true".into();
    ipam["ipv6_pools"] = serde_json::json!([POOL6]);
    // A few pings: the first may wait for neighbour discovery on both ends.
    let stdout = ctr_run(
        &node,
        work.path(),
        &rootfs,
        &list,
        "ctr6",
        &format!(
            "ip -4 addr show dev eth0; ip -6 addr show dev eth0; ip -6 route; \
             ping -6 -c 3 -i 0.3 -W 2 {NODE_IP6}"
        ),
    )
    .await;
    assert!(
        stdout.contains("default via fe80::ecee:eeff:feee:eeee dev eth0"),
        "{stdout}"
    );
    assert!(stdout.contains("/32 scope global eth0"), "{stdout}");
    assert!(stdout.contains("/128 scope global"), "{stdout}");
    let received = stdout
        .split_whitespace()
        .skip_while(|w| *w != "transmitted,")
        .nth(1)
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    assert!(received >= 1, "no IPv6 ping answered: {stdout}");
    // `inet6 fe80::…/64` (the pod end's link-local) comes first or not.
    let words: Vec<&str> = stdout.split_whitespace().collect();
    let word_after = |key: &str, suffix: &str| {
        words
            .windows(2)
            .find_map(|w| (w[0] == key).then(|| w[1].strip_suffix(suffix)).flatten())
            .unwrap_or_else(|| panic!("no {key} …{suffix} in {stdout}"))
            .to_string()
    };
    let ip = word_after("inet", "/32");
    let ip6 = word_after("inet6", "/128");
    let pool6: ipnet::Ipv6Net = POOL6.parse().unwrap();
    assert!(pool6.contains(&ip6.parse::<std::net::Ipv6Addr>().unwrap()));

    // ctr --rm called DEL after the container exited: both addresses and
    // the endpoint are gone, and the /128 route with them.
    for a in [&ip, &ip6] {
        assert!(
            node.ipam_show_ip(a).await.contains("is not assigned"),
            "{a} still assigned after the container was removed"
        );
    }
    let weps = node
        .ds
        .list(tabby_agent::resources::Kind::WorkloadEndpoint, None)
        .await
        .unwrap();
    assert!(weps.items.is_empty(), "{:?}", weps.items);
    assert_eq!(
        node.netns
            .ip(&["-6", "route", "show", &format!("{ip6}/128")])
            .trim(),
        ""
    );
    drop(containerd);
}
