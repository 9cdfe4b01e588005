//! Dual stack through the `tabby` plugin: with Calico's `assign_ipv6:
//! "true"` and `ipv6_pools`, ADD gives the pod an IPv4 /32 and an IPv6
//! /128 with `default via fe80::ecee:eeff:feee:eeee`, the node programs
//! both workload routes before ADD returns, the result and the
//! WorkloadEndpoint carry both addresses, and DEL releases both. Without
//! an IPv6 pool, ADD fails naming `assign_ipv6` and assigns nothing. Runs
//! against the node stand-in of `cni_common` (real IPAM over SQLite, real
//! reconciler, real kernel); the IPv6 pool is applied with `tabbyctl
//! apply`. Needs root.

mod cni_common;

use cni_common::*;
use std::net::Ipv6Addr;
use std::time::Duration;
use tabby_agent::resources::{Kind, Resource};

const GW6: &str = "fe80::ecee:eeff:feee:eeee";

/// A few pings, as the host end's IPv6 may still be settling right after
/// ADD (neighbour discovery, the gateway address).
fn ping6(ns: &Netns, dst: &str) -> bool {
    for _ in 0..10 {
        let o = sh(&[
            "ip", "netns", "exec", &ns.name, "ping", "-6", "-c", "1", "-W", "1", dst,
        ]);
        if o.status.success() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_stack_add_check_del() {
    let node = Node::start().await;
    node.add_ipv6().await;
    let pod_ns = Netns::new("tc6pod");
    let pod = Pod {
        namespace: "team-a",
        name: "web6",
        container_id: unique("d5a1"),
        netns: Some(pod_ns.path()),
    };
    let tabby = tabby_bin();
    let host = tabby_felix_lite::podlink::host_veth_name("team-a", "web6");

    let add = run_cni(&node, &tabby, "ADD", &pod, &node.net_conf_dual(None)).await;
    assert!(add.ok(), "ADD failed: {} {}", add.stdout, add.stderr);
    let result = add.json();
    let ips = result["ips"].as_array().unwrap();
    assert_eq!(ips.len(), 2, "{result}");
    let v4 = ips[0]["address"].as_str().unwrap().to_string();
    assert!(v4.ends_with("/32"), "{v4}");
    let ip = v4.trim_end_matches("/32").to_string();
    let v6 = ips[1]["address"].as_str().unwrap().to_string();
    assert!(v6.ends_with("/128"), "{v6}");
    let ip6 = v6.trim_end_matches("/128").to_string();
    let pool6: ipnet::Ipv6Net = POOL6.parse().unwrap();
    assert!(pool6.contains(&ip6.parse::<Ipv6Addr>().unwrap()), "{ip6}");
    assert_eq!(ips[1]["gateway"], GW6);
    assert_eq!(ips[1]["interface"], 1);
    let routes = result["routes"].as_array().unwrap();
    assert!(
        routes.iter().any(|r| r["dst"] == "::/0" && r["gw"] == GW6),
        "{result}"
    );
    assert!(routes.iter().any(|r| r["dst"] == "0.0.0.0/0"), "{result}");

    // The pod: both addresses, both default routes.
    let a6 = pod_ns.ip(&["-6", "addr", "show", "dev", "eth0", "scope", "global"]);
    assert!(a6.contains(&format!("inet6 {v6}")), "{a6}");
    let a4 = pod_ns.ip(&["-4", "addr", "show", "dev", "eth0"]);
    assert!(a4.contains(&format!("inet {v4}")), "{a4}");
    let r6 = pod_ns.ip(&["-6", "route"]);
    assert!(r6.contains(&format!("default via {GW6} dev eth0")), "{r6}");

    // The node: the /128 with Tabby's protocol, programmed before ADD
    // returned (no waiting here), and the endpoint with both networks.
    let host_route = node.netns.ip(&["-6", "route", "show", "proto", "81", &v6]);
    assert!(
        host_route.contains(&format!("dev {host}")),
        "{host_route:?}"
    );
    let wep_key = format!("team-a/{}-k8s-web6-eth0", node.name);
    let Ok(Resource::WorkloadEndpoint(wep)) = node.ds.get(Kind::WorkloadEndpoint, &wep_key).await
    else {
        panic!("WorkloadEndpoint {wep_key} not written")
    };
    assert_eq!(wep.spec.ip_networks, vec![v4.clone(), v6.clone()]);
    for a in [&ip, &ip6] {
        let show = node.ipam_show_ip(a).await;
        assert!(show.contains(&format!("IP {a} is in use")), "{show}");
    }

    // IPv6 traffic: the pod reaches the node's IPv6 address through the
    // link-local gateway; the answer comes back over the /128 route.
    assert!(ping6(&pod_ns, NODE_IP6), "pod -> node ping -6 failed");
    assert!(pod_ns.ping_once(NODE_IP).status.success(), "IPv4 ping");

    let check = run_cni(
        &node,
        &tabby,
        "CHECK",
        &pod,
        &node.net_conf_dual(Some(&result)),
    )
    .await;
    assert!(check.ok(), "CHECK failed: {}", check.stdout);
    // CHECK notices the pod's IPv6 default route gone.
    pod_ns.ip(&["-6", "route", "del", "default"]);
    let check = run_cni(
        &node,
        &tabby,
        "CHECK",
        &pod,
        &node.net_conf_dual(Some(&result)),
    )
    .await;
    assert_eq!(check.error_code(), 102, "{}", check.stdout);
    let msg = check.json()["msg"].as_str().unwrap().to_string();
    assert!(msg.contains(&format!("default via {GW6}")), "{msg}");

    let del = run_cni(
        &node,
        &tabby,
        "DEL",
        &pod,
        &node.net_conf_dual(Some(&result)),
    )
    .await;
    assert!(del.ok(), "DEL failed: {} {}", del.stdout, del.stderr);
    for a in [&ip, &ip6] {
        let show = node.ipam_show_ip(a).await;
        assert!(show.contains(&format!("IP {a} is not assigned")), "{show}");
    }
    let gone = node.netns.ip(&["-6", "route", "show", &v6]);
    assert_eq!(gone.trim(), "", "IPv6 workload route left behind");
    assert!(node.ds.get(Kind::WorkloadEndpoint, &wep_key).await.is_err());
}

/// `assign_ipv6: "true"` on a node with no IPv6 pool: a CNI error naming
/// the config, and all-or-nothing: no IPv4 address stays assigned, no veth
/// is left. The same config works once the pool exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_ipv6_pool_is_an_error_and_assigns_nothing() {
    let node = Node::start().await;
    let pod_ns = Netns::new("tc6none");
    let pod = Pod {
        namespace: "default",
        name: "nopool",
        container_id: unique("e6"),
        netns: Some(pod_ns.path()),
    };
    let tabby = tabby_bin();
    // Any IPv6 pool, not just the one named: the node has none at all.
    let mut conf: serde_json::Value = serde_json::from_str(&node.net_conf_dual(None)).unwrap();
    conf["ipam"].as_object_mut().unwrap().remove("ipv6_pools");
    let add = run_cni(&node, &tabby, "ADD", &pod, &conf.to_string()).await;
    assert!(
        !add.ok(),
        "ADD without an IPv6 pool succeeded: {}",
        add.stdout
    );
    let err = add.json();
    let msg = err["msg"].as_str().unwrap();
    assert!(msg.contains("IPv6"), "{msg}");
    assert!(msg.contains("ipam.assign_ipv6"), "{msg}");
    assert!(msg.contains("ipam.ipv6_pools"), "{msg}");
    let blocks = node.tabbyctl(&["ipam", "show", "--show-blocks"]).await;
    assert!(
        blocks_in_use(&blocks) == 0,
        "an address stayed assigned:\n{blocks}"
    );
    let host = tabby_felix_lite::podlink::host_veth_name("default", "nopool");
    assert!(!node.netns.ip(&["link", "show"]).contains(&host));
    assert!(!pod_ns.ip(&["link", "show"]).contains("eth0"));

    // With the pool, the same ADD works (so the failure was the pool's).
    node.add_ipv6().await;
    let add = run_cni(&node, &tabby, "ADD", &pod, &conf.to_string()).await;
    assert!(
        add.ok(),
        "ADD with an IPv6 pool: {} {}",
        add.stdout,
        add.stderr
    );
    assert_eq!(add.json()["ips"].as_array().unwrap().len(), 2);
    // Both addresses counted: the table parse above can see an assignment.
    let blocks = node.tabbyctl(&["ipam", "show", "--show-blocks"]).await;
    assert_eq!(blocks_in_use(&blocks), 2, "{blocks}");
    let del = run_cni(&node, &tabby, "DEL", &pod, &conf.to_string()).await;
    assert!(del.ok(), "{}", del.stdout);
}

/// The IPS IN USE column summed over the pools of `tabbyctl ipam show
/// --show-blocks` (`| IP Pool | … | 1 (0%) |`): 0 when nothing is assigned.
fn blocks_in_use(table: &str) -> u64 {
    table
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            if cells.get(1) != Some(&"IP Pool") {
                return None;
            }
            cells.get(4)?.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}

/// `tabby-ipam` (delegated to by another main plugin) with the dual-stack
/// ipam section: both addresses in a 0.4.0 result (`version` "4" and
/// "6"), CHECK against IPAM, DEL releasing both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipam_plugin_assigns_and_releases_both_families() {
    let node = Node::start().await;
    node.add_ipv6().await;
    let link = node.dir.path().join("bin/tabby-ipam");
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(tabby_bin(), &link).unwrap();
    let mut conf: serde_json::Value = serde_json::from_str(&node.net_conf_dual(None)).unwrap();
    conf["type"] = "bridge".into();
    conf["cniVersion"] = "0.4.0".into();
    let pod = Pod {
        namespace: "default",
        name: "bridged",
        container_id: unique("ipam6"),
        netns: Some("/proc/self/ns/net".into()),
    };
    let add = run_cni(&node, &link, "ADD", &pod, &conf.to_string()).await;
    assert!(add.ok(), "{} {}", add.stdout, add.stderr);
    let res = add.json();
    assert_eq!(res["ips"][0]["version"], "4");
    assert_eq!(res["ips"][1]["version"], "6");
    let ip = add.first_ip();
    let ip6 = res["ips"][1]["address"]
        .as_str()
        .unwrap()
        .trim_end_matches("/128")
        .to_string();
    for a in [&ip, &ip6] {
        assert!(node.ipam_show_ip(a).await.contains("is in use"), "{a}");
    }
    conf["prevResult"] = res.clone();
    let check = run_cni(&node, &link, "CHECK", &pod, &conf.to_string()).await;
    assert!(check.ok(), "{}", check.stdout);
    let del = run_cni(&node, &link, "DEL", &pod, &conf.to_string()).await;
    assert!(del.ok(), "{}", del.stdout);
    for a in [&ip, &ip6] {
        assert!(
            node.ipam_show_ip(a).await.contains("is not assigned"),
            "{a}"
        );
    }
    // After DEL the addresses are not the handle's any more: CHECK fails.
    let check = run_cni(&node, &link, "CHECK", &pod, &conf.to_string()).await;
    assert_eq!(check.error_code(), 102);
}
