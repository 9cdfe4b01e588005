//! IPv6-only pods through the `tabby` plugin (`assign_ipv4: "false"`,
//! `assign_ipv6: "true"`): the pod gets only its /128 and `default via
//! fe80::ecee:eeff:feee:eeee`, the node only the /128 workload route, the
//! CNI result and the WorkloadEndpoint only the IPv6 address; CHECK, a node
//! restart (`restore_workloads`) and DEL work; both families off is
//! refused with Calico's error. Runs against the node stand-in of
//! `cni_common` (real IPAM, real reconciler, real kernel). Needs root.

mod cni_common;

use cni_common::*;
use std::time::Duration;
use tabby_agent::resources::{Kind, Resource};

const GW6: &str = "fe80::ecee:eeff:feee:eeee";

fn v6_only(node: &Node, prev: Option<&serde_json::Value>) -> String {
    let mut conf: serde_json::Value = serde_json::from_str(&node.net_conf_dual(prev)).unwrap();
    conf["ipam"]["assign_ipv4"] = "false".into();
    conf.to_string()
}

/// A few pings: the host end's IPv6 may still be settling right after ADD.
fn ping6(ns: &Netns, dst: &str) -> bool {
    (0..10).any(|_| {
        let ok = sh(&[
            "ip", "netns", "exec", &ns.name, "ping", "-6", "-c", "1", "-W", "1", dst,
        ])
        .status
        .success();
        if !ok {
            std::thread::sleep(Duration::from_millis(200));
        }
        ok
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_only_add_check_restore_del() {
    let mut node = Node::start().await;
    node.add_ipv6().await;
    let pod_ns = Netns::new("tc6only");
    let pod = Pod {
        namespace: "default",
        name: "only6",
        container_id: unique("o6"),
        netns: Some(pod_ns.path()),
    };
    let tabby = tabby_bin();
    let host = tabby_felix_lite::podlink::host_veth_name("default", "only6");

    let add = run_cni(&node, &tabby, "ADD", &pod, &v6_only(&node, None)).await;
    assert!(add.ok(), "ADD failed: {} {}", add.stdout, add.stderr);
    let result = add.json();
    let ips = result["ips"].as_array().unwrap();
    assert_eq!(ips.len(), 1, "only the IPv6 address: {result}");
    let v6 = ips[0]["address"].as_str().unwrap().to_string();
    assert!(v6.ends_with("/128"), "{v6}");
    let ip6 = v6.trim_end_matches("/128").to_string();
    assert_eq!(ips[0]["gateway"], GW6);
    assert_eq!(
        result["routes"],
        serde_json::json!([{ "dst": "::/0", "gw": GW6 }]),
        "{result}"
    );

    // The pod: no IPv4 at all, its /128 and the IPv6 default route.
    let a4 = pod_ns.ip(&["-4", "addr", "show", "dev", "eth0"]);
    assert!(!a4.contains("inet "), "an IPv6-only pod holds IPv4: {a4}");
    assert_eq!(
        pod_ns.ip(&["-4", "route"]).trim(),
        "",
        "IPv4 routes in the pod"
    );
    let a6 = pod_ns.ip(&["-6", "addr", "show", "dev", "eth0", "scope", "global"]);
    assert!(a6.contains(&format!("inet6 {v6}")), "{a6}");
    let r6 = pod_ns.ip(&["-6", "route"]);
    assert!(r6.contains(&format!("default via {GW6} dev eth0")), "{r6}");

    // The node: the /128 only, programmed before ADD returned.
    let route6 = node.netns.ip(&["-6", "route", "show", "proto", "81", &v6]);
    assert!(route6.contains(&format!("dev {host}")), "{route6:?}");
    let routes4 = node.netns.ip(&["-4", "route", "show", "dev", &host]);
    assert_eq!(routes4.trim(), "", "IPv4 route to an IPv6-only pod");
    let wep_key = format!("default/{}-k8s-only6-eth0", node.name);
    let Ok(Resource::WorkloadEndpoint(wep)) = node.ds.get(Kind::WorkloadEndpoint, &wep_key).await
    else {
        panic!("WorkloadEndpoint {wep_key} not written")
    };
    assert_eq!(wep.spec.ip_networks, vec![v6.clone()]);
    let show = node.ipam_show_ip(&ip6).await;
    assert!(show.contains(&format!("IP {ip6} is in use")), "{show}");

    // Traffic: pod -> node over IPv6, the answer back over the /128.
    assert!(ping6(&pod_ns, NODE_IP6), "pod -> node ping -6 failed");

    let check = run_cni(&node, &tabby, "CHECK", &pod, &v6_only(&node, Some(&result))).await;
    assert!(check.ok(), "CHECK failed: {}", check.stdout);
    pod_ns.ip(&["-6", "route", "del", "default"]);
    let check = run_cni(&node, &tabby, "CHECK", &pod, &v6_only(&node, Some(&result))).await;
    assert_eq!(check.error_code(), 102, "{}", check.stdout);
    pod_ns.ip(&["-6", "route", "add", "default", "via", GW6, "dev", "eth0"]);

    // A node restart: the /128 comes back from the WorkloadEndpoint alone.
    node.reconciler.take().unwrap().stop().unwrap();
    node.netns.ip(&["-6", "route", "del", &v6]);
    let (_handle, restored) = node.restart_dataplane().await;
    assert_eq!(restored, 1, "the IPv6-only endpoint was not restored");
    let route6 = node.netns.ip(&["-6", "route", "show", "proto", "81", &v6]);
    assert!(
        route6.contains(&format!("dev {host}")),
        "after restore: {route6:?}"
    );

    let del = run_cni(&node, &tabby, "DEL", &pod, &v6_only(&node, Some(&result))).await;
    assert!(del.ok(), "DEL failed: {} {}", del.stdout, del.stderr);
    let show = node.ipam_show_ip(&ip6).await;
    assert!(
        show.contains(&format!("IP {ip6} is not assigned")),
        "{show}"
    );
    let gone = node.netns.ip(&["-6", "route", "show", &v6]);
    assert_eq!(gone.trim(), "", "IPv6 workload route left behind");
    assert!(node.ds.get(Kind::WorkloadEndpoint, &wep_key).await.is_err());
    assert!(!node.netns.ip(&["link", "show"]).contains(&host));
}

/// Neither family: Calico's error, before anything is assigned or built.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neither_family_is_refused_as_calico_does() {
    let node = Node::start().await;
    let pod_ns = Netns::new("tc6none2");
    let pod = Pod {
        namespace: "default",
        name: "nofamily",
        container_id: unique("nf"),
        netns: Some(pod_ns.path()),
    };
    let mut conf: serde_json::Value = serde_json::from_str(&node.net_conf(None)).unwrap();
    conf["ipam"]["assign_ipv4"] = "false".into();
    let add = run_cni(&node, &tabby_bin(), "ADD", &pod, &conf.to_string()).await;
    assert!(!add.ok(), "ADD with no family succeeded: {}", add.stdout);
    let msg = add.json()["msg"].as_str().unwrap().to_string();
    assert!(
        msg.starts_with("IPAM plugin returned missing IP config"),
        "{msg}"
    );
    assert!(msg.contains("ipam.assign_ipv4"), "{msg}");
    assert!(!pod_ns.ip(&["link", "show"]).contains("eth0"));
}
