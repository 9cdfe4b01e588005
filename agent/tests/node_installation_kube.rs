//! The Installation in the Kubernetes datastore (the API stand-in with
//! Calico's and the operator's CRDs): an invalid Installation put straight
//! into the API (no tabbyctl to refuse it) gets status Degraded naming the
//! field, through the status subresource, and nothing of it is applied —
//! no pool, and no CALICO_IPV4POOL_* default pool either; once `tabbyctl
//! apply` replaces it with a valid one, the node creates the pool as a
//! `crd.projectcalico.org` IPPool with the managed-by label and the
//! Installation is Ready. The CR is the operator's own: no
//! `projectcalico.org/metadata` annotation. Needs root.

mod common;
#[allow(dead_code)]
#[path = "../../bgp/tests/common/netns.rs"]
mod netns;
#[allow(dead_code)]
mod node_common;
#[allow(dead_code)]
#[path = "../../bgp/tests/common/wait.rs"]
mod wait;

use common::{Ctl, Kube};
use serde_json::{json, Value};
use std::os::fd::AsRawFd;
use std::time::Duration;
use tabby_agent::datastore::Datastore;
use tabby_agent::resources::{Kind, Resource};

const INSTALLATIONS: &str = "/apis/operator.tigera.io/v1/installations";

/// A listener on 127.0.0.1:`port` inside `ns` (made on a thread that
/// entered it), forwarding to the stand-in on the test's loopback.
fn forward(ns: &str, to: std::net::SocketAddr) -> tokio::task::JoinHandle<()> {
    let ns = ns.to_string();
    let port = to.port();
    let std_listener = std::thread::spawn(move || {
        let f = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
        // SAFETY: setns on a valid namespace fd only changes this thread's
        // network namespace; the thread ends right after.
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {ns}: {}", std::io::Error::last_os_error());
        let l = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        l.set_nonblocking(true).unwrap();
        l
    })
    .join()
    .unwrap();
    let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut out) = tokio::net::TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                }
            });
        }
    })
}

/// The Installation's condition `kind`, read through the datastore.
async fn condition(ds: &dyn Datastore, kind: &str) -> Value {
    let Ok(Resource::Installation(o)) = ds.get(Kind::Installation, "default").await else {
        return Value::Null;
    };
    o.status
        .as_ref()
        .and_then(|s| s["conditions"].as_array())
        .and_then(|c| c.iter().find(|c| c["type"] == kind).cloned())
        .unwrap_or(Value::Null)
}

async fn eventually<F: std::future::Future<Output = bool>>(mut f: impl FnMut() -> F) -> bool {
    for _ in 0..150 {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_installation_in_the_api_is_degraded_and_not_applied() {
    let kube = Kube::start().await;
    kube.put("/api/v1/nodes", json!({"metadata": {"name": "kinst"}}));
    kube.put(
        INSTALLATIONS,
        json!({
            "apiVersion": "operator.tigera.io/v1",
            "kind": "Installation",
            "metadata": {"name": "default"},
            "spec": {"calicoNetwork": {
                "mtu": 1300,
                "ipPools": [{"cidr": "10.250.0.0/16", "encapsulation": "IPIPCrossSubnet"}]
            }}
        }),
    );
    let ns = netns::Netns::new("kinst");
    let peer = netns::Netns::new("kinstp");
    let link = netns::link_named(&ns, &peer, 88, 1, 2);
    let _forward = forward(&ns.name, kube.server.addr());
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = kube.kubeconfig.display().to_string();
    let ip = format!("{}/24", link.addr_a);
    let _node = node_common::spawn(
        &ns,
        "kinst",
        &dir.path().join("unused.db"),
        &dir.path().join("run"),
        &dir.path().join("node.log"),
        &[
            ("DATASTORE_TYPE", "kubernetes"),
            ("KUBECONFIG", &kubeconfig),
            ("CALICO_NETWORKING_BACKEND", "none"),
            ("IP", &ip),
        ],
    );
    let log = || std::fs::read_to_string(dir.path().join("node.log")).unwrap_or_default();
    let ds = kube.client().await;

    let degraded =
        eventually(|| async { condition(&*ds, "Degraded").await["status"] == "True" }).await;
    assert!(degraded, "never Degraded\n{}", log());
    let msg = condition(&*ds, "Degraded").await["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        msg.contains(
            "spec.calicoNetwork.ipPools[0].encapsulation: IPIPCrossSubnet: Tabby has no IPIP"
        ),
        "{msg}"
    );
    assert_eq!(condition(&*ds, "Ready").await["status"], "False");
    // Nothing applied: no pool at all (the Installation also stops the
    // CALICO_IPV4POOL_* default pool), and no status.computed.
    let pools = ds.list(Kind::IpPool, None).await.unwrap();
    assert!(pools.items.is_empty(), "{:?}", pools.items);
    let Ok(Resource::Installation(inst)) = ds.get(Kind::Installation, "default").await else {
        panic!("no Installation")
    };
    assert!(inst.status.as_ref().unwrap().get("computed").is_none());

    // A valid one through tabbyctl: applied, Ready.
    let yaml = "apiVersion: operator.tigera.io/v1\nkind: Installation\nmetadata: {name: default}\nspec:\n  calicoNetwork:\n    ipPools:\n    - cidr: 10.250.0.0/16\n      encapsulation: VXLANCrossSubnet\n";
    let o = Ctl::kubernetes(&kube.kubeconfig).run_stdin(&["apply", "-f", "-"], yaml);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ready = eventually(|| async { condition(&*ds, "Ready").await["status"] == "True" }).await;
    assert!(ready, "never Ready\n{}", log());
    let client = kube.server.client().await.unwrap();
    let pools: kube::Api<kube::api::DynamicObject> = kube::Api::all_with(
        client.clone(),
        &tabby_agent::datastore::kdd::KubeStore::api_resource(Kind::IpPool),
    );
    let p = pools.get("default-ipv4-ippool").await.unwrap();
    let p = serde_json::to_value(&p).unwrap();
    assert_eq!(p["spec"]["cidr"], "10.250.0.0/16");
    assert_eq!(p["spec"]["vxlanMode"], "CrossSubnet");
    // The label is a v3 label: as for every Calico resource in KDD, a key
    // outside projectcalico.org/ lives in the metadata annotation only.
    let Ok(Resource::IpPool(v3)) = ds.get(Kind::IpPool, "default-ipv4-ippool").await else {
        panic!("the pool does not read back")
    };
    assert_eq!(v3.metadata.labels["app.kubernetes.io/managed-by"], "tabby");
    assert!(p["metadata"]["annotations"]["projectcalico.org/metadata"]
        .as_str()
        .is_some_and(|m| m.contains("app.kubernetes.io/managed-by")));
    // The operator's own object: its metadata is the CR's.
    let insts: kube::Api<kube::api::DynamicObject> = kube::Api::all_with(
        client,
        &tabby_agent::datastore::kdd::KubeStore::api_resource(Kind::Installation),
    );
    let raw = serde_json::to_value(insts.get("default").await.unwrap()).unwrap();
    assert!(
        raw["metadata"]["annotations"]["projectcalico.org/metadata"].is_null(),
        "{raw}"
    );
    assert_eq!(raw["status"]["conditions"][0]["type"], "Ready");
}
