//! The `tabby` plugin's other verbs and its failures, each as a CNI error
//! result with the spec's code and a message naming what was wrong; the
//! `tabby-ipam` mode of the same binary; a failed ADD leaks no address.
//! The binary is run as a runtime runs it (see `cni_plugin.rs`). Needs
//! root for the tests that build a node.

mod cni_common;

use cni_common::*;
use std::path::PathBuf;
use tabby_agent::grpc::connect_unix;
use tabby_proto::ipam::ipam_client::IpamClient;
use tabby_proto::ipam::ReleaseByHandleRequest;

fn pod<'a>(netns: Option<PathBuf>) -> Pod<'a> {
    Pod {
        namespace: "default",
        name: "p",
        container_id: unique("cid"),
        netns,
    }
}

/// Runs the binary in the caller's netns with the given environment only.
async fn bare(env: &[(&str, &str)], stdin: &str) -> CniRun {
    use tokio::io::AsyncWriteExt;
    let mut c = tokio::process::Command::new(tabby_bin());
    c.env_clear()
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    CniRun {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

const CONF: &str = r#"{"cniVersion":"1.0.0","name":"k8s-pod-network","type":"tabby",
  "run_dir":"/nonexistent/tabby-test-run","ipam":{"type":"tabby-ipam"}}"#;

fn add_env(netns: &str) -> Vec<(&str, &str)> {
    vec![
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "abc123"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_NETNS", netns),
        ("CNI_ARGS", "K8S_POD_NAMESPACE=default;K8S_POD_NAME=p"),
        ("CNI_PATH", "/opt/cni/bin"),
    ]
}

#[tokio::test]
async fn version_lists_the_supported_versions() {
    let r = bare(&[("CNI_COMMAND", "VERSION")], r#"{"cniVersion":"1.0.0"}"#).await;
    assert!(r.ok(), "{}", r.stdout);
    let v = r.json();
    assert_eq!(v["cniVersion"], "1.0.0");
    let supported: Vec<&str> = v["supportedVersions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    for want in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        assert!(supported.contains(&want), "{supported:?}");
    }
    // 1.1.0's GC is accepted (a no-op: `ipam check` finds leaks).
    let gc = bare(&[("CNI_COMMAND", "GC")], &CONF.replace("1.0.0", "1.1.0")).await;
    assert!(gc.ok(), "{}", gc.stdout);
    let bogus = bare(&[("CNI_COMMAND", "FROB")], CONF).await;
    assert_eq!(bogus.error_code(), 4);
    assert!(bogus.json()["msg"]
        .as_str()
        .unwrap()
        .contains("CNI_COMMAND"));
}

#[tokio::test]
async fn input_errors_carry_the_spec_codes() {
    // Bad JSON: 6, naming the position.
    let r = bare(
        &add_env("/proc/self/ns/net"),
        "{\"cniVersion\": \"1.0.0\",\n \"name\": ,}",
    )
    .await;
    assert_eq!(r.error_code(), 6);
    let msg = r.json()["msg"].as_str().unwrap().to_string();
    assert!(msg.contains("line 2 column"), "{msg}");

    // Missing CNI_NETNS on ADD: 4, naming the variable.
    let mut env = add_env("");
    env.retain(|(k, _)| *k != "CNI_NETNS");
    let r = bare(&env, CONF).await;
    assert_eq!(r.error_code(), 4);
    assert!(
        r.json()["msg"].as_str().unwrap().contains("CNI_NETNS"),
        "{}",
        r.stdout
    );

    // Unknown version: 1.
    let r = bare(
        &add_env("/proc/self/ns/net"),
        &CONF.replace("1.0.0", "2.0.0"),
    )
    .await;
    assert_eq!(r.error_code(), 1);

    // Wrong IPAM type: 7, naming the field.
    let r = bare(
        &add_env("/proc/self/ns/net"),
        &CONF.replace("tabby-ipam", "host-local"),
    )
    .await;
    assert_eq!(r.error_code(), 7);
    assert!(r.json()["msg"].as_str().unwrap().contains("ipam.type"));

    // Node socket missing: 11, naming the socket path.
    let r = bare(&add_env("/proc/self/ns/net"), CONF).await;
    assert_eq!(r.error_code(), 11);
    let msg = r.json()["msg"].as_str().unwrap().to_string();
    assert!(
        msg.contains("/nonexistent/tabby-test-run/tabby.sock"),
        "{msg}"
    );
    assert!(msg.contains("try again later"), "{msg}");

    // STATUS without a node: 50 (plugin not available).
    let r = bare(&[("CNI_COMMAND", "STATUS")], CONF).await;
    assert_eq!(r.error_code(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_missing_netns_against_a_node() {
    let node = Node::start().await;
    let status = run_cni(
        &node,
        &tabby_bin(),
        "STATUS",
        &pod(None),
        &node.net_conf(None),
    )
    .await;
    assert!(status.ok(), "{}", status.stdout);
    // A netns path that doesn't exist: 3 (container unknown), nothing
    // assigned.
    let p = pod(Some(PathBuf::from("/var/run/netns/tabby-no-such-netns")));
    let r = run_cni(&node, &tabby_bin(), "ADD", &p, &node.net_conf(None)).await;
    assert_eq!(r.error_code(), 3);
    assert!(r.json()["msg"]
        .as_str()
        .unwrap()
        .contains("tabby-no-such-netns"));
}

/// An ADD that fails after the address was assigned (here: the node
/// refuses the workload, a pod name Calico's endpoint naming can't encode)
/// releases the address and removes the veth. An ADD into a sandbox that
/// already has the interface changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_add_leaks_nothing() {
    let node = Node::start().await;
    let pod_ns = Netns::new("tcfail");
    let mut p = pod(Some(pod_ns.path()));
    p.name = "trailing-";
    let r = run_cni(&node, &tabby_bin(), "ADD", &p, &node.net_conf(None)).await;
    assert_eq!(r.error_code(), 100, "{}", r.stdout);
    assert!(
        r.json()["msg"].as_str().unwrap().contains("pod"),
        "{}",
        r.stdout
    );
    let mut c = IpamClient::new(
        connect_unix(&node.run_dir.join("tabby.sock"))
            .await
            .unwrap(),
    );
    let released = c
        .release_by_handle(ReleaseByHandleRequest {
            handle_id: format!("k8s-pod-network.{}", p.container_id),
        })
        .await
        .unwrap()
        .into_inner()
        .released;
    assert!(released.is_empty(), "ADD left {released:?} assigned");
    let host = tabby_felix_lite::podlink::host_veth_name("default", "trailing-");
    assert!(!node.netns.ip(&["link", "show"]).contains(&host));
    assert!(!pod_ns.ip(&["link", "show"]).contains("eth0"));

    // A second ADD for a working pod must not disturb it.
    let ok = pod(Some(pod_ns.path()));
    let add = run_cni(&node, &tabby_bin(), "ADD", &ok, &node.net_conf(None)).await;
    assert!(add.ok(), "{}", add.stdout);
    let again = run_cni(&node, &tabby_bin(), "ADD", &ok, &node.net_conf(None)).await;
    assert_eq!(again.error_code(), 101);
    assert!(again.json()["msg"]
        .as_str()
        .unwrap()
        .contains("already exists"));
    let ip = add.first_ip();
    assert!(node.ipam_show_ip(&ip).await.contains("is in use"));
    let ping = pod_ns.ping_once(NODE_IP);
    assert!(
        ping.status.success(),
        "the first ADD's network was disturbed"
    );
}

/// `tabby-ipam` (the same binary under that name) only assigns and
/// releases, for a main plugin of another kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipam_mode() {
    let node = Node::start().await;
    let link = node.dir.path().join("bin/tabby-ipam");
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(tabby_bin(), &link).unwrap();
    let mut conf: serde_json::Value = serde_json::from_str(&node.net_conf(None)).unwrap();
    conf["type"] = "bridge".into();
    conf["cniVersion"] = "0.4.0".into();
    let conf = conf.to_string();
    let p = pod(Some(PathBuf::from("/proc/self/ns/net")));
    let add = run_cni(&node, &link, "ADD", &p, &conf).await;
    assert!(add.ok(), "{} {}", add.stdout, add.stderr);
    let res = add.json();
    assert_eq!(res["cniVersion"], "0.4.0");
    assert!(res.get("interfaces").is_none());
    assert_eq!(res["ips"][0]["version"], "4");
    let ip = add.first_ip();
    assert!(node.ipam_show_ip(&ip).await.contains("is in use"));
    let mut with_prev: serde_json::Value = serde_json::from_str(&conf).unwrap();
    with_prev["prevResult"] = res.clone();
    let check = run_cni(&node, &link, "CHECK", &p, &with_prev.to_string()).await;
    assert!(check.ok(), "{}", check.stdout);
    for _ in 0..2 {
        let del = run_cni(&node, &link, "DEL", &p, &with_prev.to_string()).await;
        assert!(del.ok(), "{}", del.stdout);
    }
    assert!(node.ipam_show_ip(&ip).await.contains("is not assigned"));
    let check = run_cni(&node, &link, "CHECK", &p, &with_prev.to_string()).await;
    assert_eq!(check.error_code(), 102);
}

/// Issue 15's small ones, none needing a node (the socket is missing, so
/// anything that got as far as asking the node would fail with 11): the
/// JSON position said once, a non-UTF-8 variable reported as such, "." and
/// ".." refused as interface names, a regular file refused as CNI_NETNS,
/// and a 100 KB container ID not echoed whole.
#[tokio::test]
async fn environment_edge_cases_are_refused_before_the_node_is_asked() {
    let r = bare(&add_env("/proc/self/ns/net"), "{").await;
    assert_eq!(r.error_code(), 6);
    let msg = r.json()["msg"].as_str().unwrap().to_string();
    assert_eq!(msg.matches(" at line ").count(), 1, "{msg}");

    for ifname in [".", ".."] {
        let mut env = add_env("/proc/self/ns/net");
        env.retain(|(k, _)| *k != "CNI_IFNAME");
        env.push(("CNI_IFNAME", ifname));
        let r = bare(&env, CONF).await;
        assert_eq!(r.error_code(), 4, "{ifname}: {}", r.stdout);
        assert!(r.stdout.contains("CNI_IFNAME"), "{}", r.stdout);
    }

    let file = tempfile::NamedTempFile::new().unwrap();
    let r = bare(&add_env(file.path().to_str().unwrap()), CONF).await;
    assert_eq!(r.error_code(), 4, "{}", r.stdout);
    assert!(
        r.stdout.contains("is not a network namespace"),
        "{}",
        r.stdout
    );

    // The kernel caps one environment string at 128 KiB.
    let long = "a".repeat(100_000);
    let mut env = add_env("/proc/self/ns/net");
    env.retain(|(k, _)| *k != "CNI_CONTAINERID");
    env.push(("CNI_CONTAINERID", &long));
    let r = bare(&env, CONF).await;
    assert_eq!(
        r.error_code(),
        4,
        "{}",
        &r.stdout[..r.stdout.len().min(300)]
    );
    assert!(r.stdout.len() < 1000, "{} bytes echoed", r.stdout.len());

    // Not UTF-8: said so, not "is not set".
    use std::os::unix::ffi::OsStrExt;
    let out = tokio::process::Command::new(tabby_bin())
        .env_clear()
        .envs(
            add_env("/proc/self/ns/net")
                .into_iter()
                .filter(|(k, _)| *k != "CNI_CONTAINERID"),
        )
        .env(
            "CNI_CONTAINERID",
            std::ffi::OsStr::from_bytes(b"abc\xff\xfe"),
        )
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("CNI_CONTAINERID"), "{stdout}");
    assert!(stdout.contains("not valid UTF-8"), "{stdout}");
    assert!(!stdout.contains("not set"), "{stdout}");
}
