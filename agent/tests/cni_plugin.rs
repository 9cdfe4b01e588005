//! The `tabby` CNI plugin end to end against a node stand-in made of the
//! real pieces (see `cni_common`): ADD builds the pod's veth pair and
//! registers it with the node, the pod reaches the node, CHECK notices
//! drift, DEL undoes everything and can be repeated.
//!
//! The binary is called the way containerd's CRI plugin calls it through
//! go-cni/libcni: the same `CNI_*` variables (CNI_ARGS with IgnoreUnknown
//! and the K8S_POD_* keys the CRI plugin adds), the conflist entry rendered
//! with the list's cniVersion and name, and `prevResult` for CHECK and
//! DEL. `cni_containerd.rs` runs the plugin under containerd itself
//! (`ctr run --cni`). Needs root.

mod cni_common;

use cni_common::*;
use std::time::Duration;
use tabby_agent::resources::{Kind, Resource};

fn find_link<'a>(links: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    links
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["ifname"] == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_check_del_against_a_real_node() {
    let node = Node::start().await;
    let pod_ns = Netns::new("tcpod");
    let pod = Pod {
        namespace: "team-a",
        name: "web-7d9f",
        container_id: unique("c0ffee"),
        netns: Some(pod_ns.path()),
    };
    let tabby = tabby_bin();

    // ADD
    let add = run_cni(&node, &tabby, "ADD", &pod, &node.net_conf(None)).await;
    assert!(add.ok(), "ADD failed: {} {}", add.stdout, add.stderr);
    let result = add.json();
    let host = tabby_felix_lite::podlink::host_veth_name("team-a", "web-7d9f");
    assert_eq!(result["cniVersion"], "1.0.0");
    assert_eq!(result["interfaces"][0]["name"], host.as_str());
    assert_eq!(result["interfaces"][0]["mac"], "ee:ee:ee:ee:ee:ee");
    assert_eq!(result["interfaces"][1]["name"], "eth0");
    assert_eq!(
        result["interfaces"][1]["sandbox"],
        pod_ns.path().display().to_string()
    );
    assert_eq!(result["ips"][0]["interface"], 1);
    assert_eq!(result["routes"][0]["dst"], "0.0.0.0/0");
    let address = result["ips"][0]["address"].as_str().unwrap().to_string();
    assert!(address.ends_with("/32"), "{address}");
    let ip = address.trim_end_matches("/32").to_string();
    let pool: ipnet::Ipv4Net = POOL.parse().unwrap();
    assert!(pool.contains(&ip.parse::<std::net::Ipv4Addr>().unwrap()));

    // The veth pair: host end in the node, MAC and MTU as Calico sets them.
    let links = node.netns.ip_json(&["link", "show"]);
    let h = find_link(&links, &host).expect("host end exists");
    assert_eq!(h["address"], "ee:ee:ee:ee:ee:ee");
    assert_eq!(h["mtu"], NODE_MTU);
    assert!(
        h["flags"].as_array().unwrap().iter().any(|f| f == "UP"),
        "{h}"
    );
    let plinks = pod_ns.ip_json(&["link", "show"]);
    let p = find_link(&plinks, "eth0").expect("pod end exists");
    assert_eq!(p["mtu"], NODE_MTU);
    assert_eq!(p["address"], result["interfaces"][1]["mac"]);
    let addrs = pod_ns.ip_json(&["-4", "addr", "show", "dev", "eth0"]);
    let a = &addrs[0]["addr_info"][0];
    assert_eq!(
        (a["local"].as_str(), a["prefixlen"].as_u64()),
        (Some(ip.as_str()), Some(32))
    );
    let routes = pod_ns.ip(&["route"]);
    assert!(
        routes.contains("default via 169.254.1.1 dev eth0 onlink"),
        "{routes}"
    );
    assert!(
        routes.contains("169.254.1.1 dev eth0 scope link"),
        "{routes}"
    );

    // The node side, written by the reconciler: the workload route with
    // protocol 81, and the WorkloadEndpoint with Calico's name.
    let host_route = node
        .netns
        .ip(&["route", "show", "proto", "81", &format!("{ip}/32")]);
    assert!(
        host_route.contains(&format!("dev {host} scope link")),
        "{host_route:?}"
    );
    let proxy_arp = sh_ok(&[
        "ip",
        "netns",
        "exec",
        &node.netns.name,
        "cat",
        &format!("/proc/sys/net/ipv4/conf/{host}/proxy_arp"),
    ]);
    assert_eq!(proxy_arp.trim(), "1");
    let wep_key = format!("team-a/{}-k8s-web--7d9f-eth0", node.name);
    let Resource::WorkloadEndpoint(wep) = node
        .ds
        .get(Kind::WorkloadEndpoint, &wep_key)
        .await
        .expect("WorkloadEndpoint written")
    else {
        panic!("not a WorkloadEndpoint")
    };
    assert_eq!(wep.spec.container_id, pod.container_id);
    assert_eq!(wep.spec.interface_name, host);
    assert_eq!(wep.spec.ip_networks, vec![address.clone()]);
    assert_eq!(wep.spec.node, node.name);
    let show = node.ipam_show_ip(&ip).await;
    assert!(show.contains(&format!("IP {ip} is in use")), "{show}");
    assert!(
        show.contains(&format!("k8s-pod-network.{}", pod.container_id)),
        "{show}"
    );

    // The pod reaches the node through 169.254.1.1 (proxy ARP on the host
    // end) and the node answers through the workload route.
    let ping = sh(&[
        "ip",
        "netns",
        "exec",
        &pod_ns.name,
        "ping",
        "-c",
        "2",
        "-i",
        "0.2",
        "-W",
        "2",
        NODE_IP,
    ]);
    assert!(
        ping.status.success(),
        "pod -> node ping failed: {}",
        String::from_utf8_lossy(&ping.stdout)
    );

    // CHECK with the ADD result passes, and notices a missing default route.
    let check = run_cni(&node, &tabby, "CHECK", &pod, &node.net_conf(Some(&result))).await;
    assert!(check.ok(), "CHECK failed: {}", check.stdout);
    assert_eq!(check.stdout.trim(), "");
    pod_ns.ip(&["route", "del", "default"]);
    let check = run_cni(&node, &tabby, "CHECK", &pod, &node.net_conf(Some(&result))).await;
    assert_eq!(check.error_code(), 102);
    assert!(
        check.json()["msg"]
            .as_str()
            .unwrap()
            .contains("default via 169.254.1.1"),
        "{}",
        check.stdout
    );

    // DEL undoes everything; a second DEL is fine.
    for round in 0..2 {
        let del = run_cni(&node, &tabby, "DEL", &pod, &node.net_conf(Some(&result))).await;
        assert!(
            del.ok(),
            "DEL #{round} failed: {} {}",
            del.stdout,
            del.stderr
        );
        assert_eq!(del.stdout.trim(), "");
    }
    let show = node.ipam_show_ip(&ip).await;
    assert!(show.contains(&format!("IP {ip} is not assigned")), "{show}");
    assert!(find_link(&node.netns.ip_json(&["link", "show"]), &host).is_none());
    assert!(find_link(&pod_ns.ip_json(&["link", "show"]), "eth0").is_none());
    let gone = node.netns.ip(&["route", "show", &format!("{ip}/32")]);
    assert_eq!(gone.trim(), "", "workload route left behind");
    assert!(matches!(
        node.ds.get(Kind::WorkloadEndpoint, &wep_key).await,
        Err(tabby_agent::datastore::Error::NotFound { .. })
    ));
}

/// The runtime may destroy the sandbox before DEL (the veth dies with the
/// netns) and then call DEL without CNI_NETNS: the address, route and
/// endpoint must still go. A second pod on the node is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn del_after_the_sandbox_is_gone() {
    let node = Node::start().await;
    let tabby = tabby_bin();
    let keep_ns = Netns::new("tckeep");
    let keep = Pod {
        namespace: "default",
        name: "keeper",
        container_id: unique("keep"),
        netns: Some(keep_ns.path()),
    };
    let add = run_cni(&node, &tabby, "ADD", &keep, &node.net_conf(None)).await;
    assert!(add.ok(), "{}", add.stdout);
    let keep_ip = add.first_ip();

    let gone_ns = Netns::new("tcgone");
    let mut gone = Pod {
        namespace: "default",
        name: "short-lived",
        container_id: unique("gone"),
        netns: Some(gone_ns.path()),
    };
    let add = run_cni(&node, &tabby, "ADD", &gone, &node.net_conf(None)).await;
    assert!(add.ok(), "{}", add.stdout);
    let ip = add.first_ip();
    assert_ne!(ip, keep_ip);
    drop(gone_ns);
    gone.netns = None;
    // Without prevResult either: the node finds the workload by pod name.
    let del = run_cni(&node, &tabby, "DEL", &gone, &node.net_conf(None)).await;
    assert!(del.ok(), "DEL failed: {} {}", del.stdout, del.stderr);
    assert!(node.ipam_show_ip(&ip).await.contains("is not assigned"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        node.netns
            .ip(&["route", "show", &format!("{ip}/32")])
            .trim(),
        ""
    );
    let wep = format!("default/{}-k8s-short--lived-eth0", node.name);
    assert!(node.ds.get(Kind::WorkloadEndpoint, &wep).await.is_err());

    // The other pod still works.
    assert!(node.ipam_show_ip(&keep_ip).await.contains("is in use"));
    let ping = keep_ns.ping_once(NODE_IP);
    assert!(ping.status.success());
    let del = run_cni(&node, &tabby, "DEL", &keep, &node.net_conf(None)).await;
    assert!(del.ok(), "{}", del.stdout);
}
