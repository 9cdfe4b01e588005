//! `tabbyctl ipam check` judges leaks from live workloads, on SQLite and
//! etcd: a pod address is leaked when no WorkloadEndpoint carries its
//! container ID and it is older than `--leak-grace-period`; a tunnel
//! address is leaked when its node is gone. `--fix` releases exactly those.
//! WorkloadEndpoints go in as Calico's CNI plugin shapes them, through
//! `tabbyctl apply`, and come back out of `tabbyctl get`.

mod common;

use common::{Backend, Ctl};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tabby_agent::datastore::Datastore;
use tabby_agent::ipam::DatastoreIpam;
use tabby_agent::resources::ippool::IpPoolSpec;
use tabby_agent::resources::node::NodeSpec;
use tabby_agent::resources::{Kind, Object, Resource};
use tabby_ipam::allocator::{AssignRequest, Ipam};
use tabby_ipam::pool::Use;

fn ctl(b: &Backend, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let o = Ctl::for_backend(b).run_stdin(args, stdin.unwrap_or(""));
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn rfc3339_ago(secs: u64) -> String {
    humantime::format_rfc3339_seconds(SystemTime::now() - Duration::from_secs(secs)).to_string()
}

async fn assign(ipam: &Ipam<DatastoreIpam>, handle: &str, node: &str, age: Option<u64>) -> IpAddr {
    let mut attributes = BTreeMap::new();
    if let Some(a) = age {
        attributes.insert("timestamp".to_string(), rfc3339_ago(a));
    }
    let mut req = AssignRequest {
        attributes,
        ..AssignRequest::new(handle, node)
    };
    if handle.contains("tunnel-addr") {
        req.use_for = Use::Tunnel;
    }
    ipam.auto_assign(&req).await.unwrap().0[0]
}

/// As Calico's CNI plugin writes it (fields from its v3 API).
fn wep_yaml(container: &str, pod: &str, ip: IpAddr) -> String {
    format!(
        "apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata:
  name: n1-k8s-{pod}-eth0
  namespace: shop
  labels:
    projectcalico.org/namespace: shop
    projectcalico.org/orchestrator: k8s
spec:
  orchestrator: k8s
  node: n1
  containerID: {container}
  pod: {pod}
  endpoint: eth0
  serviceAccountName: default
  ipNetworks:
  - {ip}/32
  profiles:
  - kns.shop
  - ksa.shop.default
  interfaceName: cali1234567890a
  mac: 0a:58:0a:2a:00:05
  ports:
  - name: http
    port: 8080
    protocol: TCP
"
    )
}

async fn run(kind: &str) {
    let b = Backend::new(kind).await;
    let ds: Arc<dyn Datastore> = b.client().await;
    let mut spec = IpPoolSpec {
        cidr: "10.42.0.0/24".into(),
        ..Default::default()
    };
    spec.fill_defaults(false);
    ds.create(Resource::IpPool(Object::new("IPPool", "p", spec)))
        .await
        .unwrap();
    ds.create(Resource::Node(Object::new(
        "Node",
        "n1",
        NodeSpec::default(),
    )))
    .await
    .unwrap();
    let ipam = Ipam::new(DatastoreIpam::new(ds.clone()));
    let live = assign(&ipam, "k8s-pod-network.aaa", "n1", Some(3600)).await;
    let dead = assign(&ipam, "k8s-pod-network.bbb", "n1", Some(3600)).await;
    let young = assign(&ipam, "k8s-pod-network.ccc", "n1", Some(5)).await;
    let tunnel = assign(&ipam, "vxlan-tunnel-addr-n1", "n1", None).await;
    let orphan = assign(&ipam, "vxlan-tunnel-addr-n9", "n9", None).await;

    let (ok, out, err) = ctl(
        &b,
        &["apply", "-f", "-"],
        Some(&wep_yaml("aaa", "web-0", live)),
    );
    assert!(ok, "{err}");
    assert!(out.contains("1 'WorkloadEndpoint' resource(s)"), "{out}");
    let (ok, out, _) = ctl(&b, &["get", "workloadendpoints"], None);
    assert!(ok);
    assert_eq!(
        out.lines()
            .nth(1)
            .map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec![
            "shop",
            "web-0",
            "n1",
            &format!("{live}/32"),
            "cali1234567890a"
        ]),
        "{out}"
    );
    let (_, yaml, _) = ctl(
        &b,
        &["get", "wep", "shop/n1-k8s-web-0-eth0", "-o", "yaml"],
        None,
    );
    assert!(
        yaml.contains("containerID: aaa") && yaml.contains("port: 8080"),
        "{yaml}"
    );
    assert!(
        yaml.contains("namespace: shop") && yaml.contains("name: n1-k8s-web-0-eth0"),
        "{yaml}"
    );

    if let Backend::Etcd(e) = &b {
        // Where calicoctl and Calico's CNI plugin keep it.
        let mut c = etcd_client::Client::connect([e.endpoint.as_str()], None)
            .await
            .unwrap();
        let key = "/calico/resources/v3/projectcalico.org/workloadendpoints/shop/n1-k8s-web-0-eth0";
        let r = c.get(key, None).await.unwrap();
        let v = r
            .kvs()
            .first()
            .map(|kv| kv.value_str().unwrap().to_string());
        assert!(
            v.as_deref()
                .is_some_and(|v| v.contains(r#""containerID":"aaa""#)),
            "{key}: {v:?}"
        );
    }

    // Default grace (15m): the young pod is left alone.
    let (ok, out, err) = ctl(&b, &["ipam", "check"], None);
    assert!(ok, "{err}");
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    let mut want = vec![
        format!("IP {dead} is allocated to k8s-pod-network.bbb, which no live workload uses"),
        format!("IP {orphan} is allocated to vxlan-tunnel-addr-n9, but node n9 does not exist"),
        format!(
            "block {} has an affinity for node n9, which does not exist",
            ipnet::IpNet::new(orphan, 26).unwrap().trunc()
        ),
        "Check complete; found 3 problems.".to_string(),
    ];
    want.sort();
    assert_eq!(lines, want, "{out}");

    let (_, out, _) = ctl(&b, &["ipam", "check", "--leak-grace-period", "0"], None);
    assert!(
        out.contains(&format!(
            "IP {young} is allocated to k8s-pod-network.ccc, which no live workload uses"
        )),
        "{out}"
    );
    assert!(out.ends_with("found 4 problems.\n"), "{out}");

    let (ok, _, err) = ctl(&b, &["ipam", "check", "--leak-grace-period", "soon"], None);
    assert!(
        !ok && err.contains("--leak-grace-period") && err.contains("\"soon\""),
        "{err}"
    );

    let (ok, out, err) = ctl(&b, &["ipam", "check", "--fix"], None);
    assert!(ok, "{err}");
    assert!(out.ends_with("Fixed 3 problems.\n"), "{out}");
    let (_, out, _) = ctl(&b, &["ipam", "check"], None);
    assert_eq!(out, "Check complete; found 0 problems.\n");

    // Exactly the leaks went: the live pod, the young pod and the existing
    // node's tunnel address are still held by their handles.
    for (ip, holder) in [
        (live, Some("k8s-pod-network.aaa")),
        (young, Some("k8s-pod-network.ccc")),
        (tunnel, Some("vxlan-tunnel-addr-n1")),
        (dead, None),
        (orphan, None),
    ] {
        let (_, out, _) = ctl(&b, &["ipam", "show", "--ip", &ip.to_string()], None);
        match holder {
            Some(h) => assert!(out.contains(&format!("Handle: {h}\n")), "{ip}: {out}"),
            None => assert_eq!(out.trim(), format!("IP {ip} is not assigned")),
        }
    }
    for h in ["k8s-pod-network.bbb", "vxlan-tunnel-addr-n9"] {
        assert!(
            ds.get(Kind::IpamHandle, h).await.is_err(),
            "{h} record left"
        );
    }

    // Deleting the endpoint makes its (old) address a leak.
    let (ok, _, err) = ctl(
        &b,
        &["delete", "-f", "-"],
        Some(&wep_yaml("aaa", "web-0", live)),
    );
    assert!(ok, "{err}");
    let (_, out, _) = ctl(&b, &["ipam", "check"], None);
    assert!(
        out.contains(&format!("IP {live} is allocated to k8s-pod-network.aaa")),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaks_judged_from_workload_endpoints_on_sqlite() {
    run("sqlite").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaks_judged_from_workload_endpoints_on_etcd() {
    run("etcd").await
}
