//! The `tabby` CNI plugin in Kubernetes mode against a real tabby-node on
//! the Kubernetes datastore: tabby-node runs in its own network namespace
//! with `DATASTORE_TYPE=kubernetes` and a kubeconfig for the test API
//! server (tabby-kube-standin, Calico's CRDs registered), and the plugin
//! is run as the runtime runs it with Calico's conflist keys
//! (`datastore_type`, `kubernetes.kubeconfig`, `policy`, `log_level`).
//!
//! Checked: the pool comes from the pod's `ipv4pools` annotation over the
//! namespace's over the conflist's; `ipAddrs` gives exactly that address;
//! a malformed annotation, an address in use and an unreachable API server
//! are CNI errors with their codes, naming what was wrong, and assign
//! nothing; after ADD the Pod carries Calico's status annotations
//! (written by tabby-node, the WorkloadEndpoint being the Pod), after DEL
//! `podIP`/`podIPs` are blank. Needs root (network namespaces).

mod cni_common;
#[allow(dead_code)]
#[path = "../../bgp/tests/common/netns.rs"]
mod netns;
#[allow(dead_code)]
mod node_common;

use cni_common::{run_cni_in, tabby_bin, unique, CniRun, Pod};
use serde_json::{json, Value};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tabby_agent::datastore::kdd::pod::{CONTAINER_ID, IPV4_POOLS, IP_ADDRS, POD_IP, POD_IPS};
use tabby_agent::datastore::{kdd::KubeStore, Datastore};
use tabby_agent::resources::ippool::IpPoolSpec;
use tabby_agent::resources::{Object, Resource};
use tabby_kube_standin::StandIn;
use tabby_proto::ipam::ipam_client::IpamClient;

/// name, CIDR: the conflist names the first, annotations the others.
const POOLS: [(&str, &str); 3] = [
    ("pool-a", "10.251.0.0/24"),
    ("pool-b", "10.252.0.0/24"),
    ("pool-c", "10.253.0.0/24"),
];

/// Calico's CRDs: the generated manifest once it exists, else the
/// stand-in's fixture (the same kinds, schemas cut to "preserve unknown
/// fields", which is all the stand-in reads of them).
fn crds_yaml() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let generated = root.join("manifests/crds.yaml");
    let path = if generated.exists() {
        generated
    } else {
        root.join("tests/kube-standin/tests/fixtures/calico-crds.yaml")
    };
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A listener on 127.0.0.1:`port` inside `ns`, made on a thread that
/// entered the namespace (a socket stays in the namespace it was made in).
fn listen_in(ns: &str, port: u16) -> std::net::TcpListener {
    let ns = ns.to_string();
    std::thread::spawn(move || {
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
    .unwrap()
}

/// The API server as the node sees it: its loopback port forwarded to the
/// stand-in on the test's loopback, so the stand-in's own kubeconfig works
/// for tabby-node and the plugin inside the node's namespace.
fn forward(ns: &str, to: std::net::SocketAddr) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::TcpListener::from_std(listen_in(ns, to.port())).unwrap();
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

struct Cluster {
    api: StandIn,
    node: String,
    dir: tempfile::TempDir,
    ns: netns::Netns,
    _peer: netns::Netns,
    _forward: tokio::task::JoinHandle<()>,
    _daemon: node_common::Daemon,
}

impl Cluster {
    async fn start() -> Cluster {
        let api = StandIn::start().await.unwrap();
        api.load_crds_yaml(&crds_yaml()).unwrap();
        let node = unique("kn");
        // The kubelet registers the Node; Tabby only annotates it.
        api.put_json("/api/v1/nodes", json!({"metadata": {"name": node}}))
            .unwrap();
        let ds = KubeStore::from_client(api.client().await.unwrap());
        for (name, cidr) in POOLS {
            let mut spec = IpPoolSpec {
                cidr: cidr.into(),
                block_size: Some(26),
                node_selector: Some("all()".into()),
                ..Default::default()
            };
            spec.fill_defaults(false);
            ds.create(Resource::IpPool(Object::new("IPPool", name, spec)))
                .await
                .unwrap();
        }

        let ns = netns::Netns::new("cnik");
        let peer = netns::Netns::new("cnikp");
        let link = netns::link_named(&ns, &peer, 61, 1, 2);
        let forward = forward(&ns.name, api.addr());
        let dir = tempfile::tempdir().unwrap();
        api.write_kubeconfig(dir.path().join("kubeconfig")).unwrap();
        let kubeconfig = dir.path().join("kubeconfig").display().to_string();
        let ip = format!("{}/24", link.addr_a);
        let daemon = node_common::spawn(
            &ns,
            &node,
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
        let c = Cluster {
            api,
            node,
            dir,
            ns,
            _peer: peer,
            _forward: forward,
            _daemon: daemon,
        };
        c.wait_serving().await;
        c
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("node.log")).unwrap_or_default()
    }

    fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    async fn ipam(&self) -> Option<IpamClient<tonic::transport::Channel>> {
        let sock = self.run_dir().join("tabby.sock");
        let ch = tabby_agent::grpc::connect_unix(&sock).await.ok()?;
        Some(IpamClient::new(ch))
    }

    /// Until the node answers on its socket; its log if it never does.
    async fn wait_serving(&self) {
        for _ in 0..120 {
            if let Some(mut c) = self.ipam().await {
                if c.show(tabby_proto::ipam::ShowRequest::default())
                    .await
                    .is_ok()
                {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!(
            "tabby-node never served its socket; its log:\n{}",
            self.log()
        );
    }

    /// Addresses in use across the pools, as the node's IPAM reports.
    async fn in_use(&self) -> u64 {
        let mut c = self.ipam().await.expect("node socket");
        let rows = c
            .show(tabby_proto::ipam::ShowRequest::default())
            .await
            .unwrap()
            .into_inner()
            .rows;
        rows.iter()
            .filter(|r| r.grouping == "IP Pool")
            .map(|r| r.in_use)
            .sum()
    }

    fn namespace(&self, name: &str, annotations: Value) {
        self.api
            .put_json(
                "/api/v1/namespaces",
                json!({"metadata": {"name": name, "annotations": annotations}}),
            )
            .unwrap();
    }

    fn pod(&self, ns: &str, name: &str, annotations: Value) {
        self.api
            .put_json(
                &format!("/api/v1/namespaces/{ns}/pods"),
                json!({
                    "metadata": {"name": name, "namespace": ns, "annotations": annotations},
                    "spec": {"nodeName": self.node, "containers": [{"name": "c", "image": "busybox"}]},
                }),
            )
            .unwrap();
    }

    fn pod_annotations(&self, ns: &str, name: &str) -> Value {
        let p = self
            .api
            .get_json(&format!("/api/v1/namespaces/{ns}/pods/{name}"))
            .unwrap();
        p["metadata"]["annotations"].clone()
    }

    /// Calico's conflist entry with the tabby types, this node's run dir,
    /// `ipam.ipv4_pools` naming pool-a, and `kubeconfig`.
    fn conf(&self, kubeconfig: &Path, prev: Option<&Value>) -> String {
        let mut c = json!({
            "cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "tabby",
            "log_level": "info", "datastore_type": "kubernetes",
            "nodename": self.node, "run_dir": self.run_dir(), "mtu": 0,
            "ipam": {"type": "tabby-ipam", "ipv4_pools": [POOLS[0].0]},
            "policy": {"type": "k8s"},
            "kubernetes": {"kubeconfig": kubeconfig},
        });
        if let Some(p) = prev {
            c["prevResult"] = p.clone();
        }
        c.to_string()
    }

    async fn cni(&self, cmd: &str, pod: &Pod<'_>, conf: &str) -> CniRun {
        run_cni_in(&self.ns.name, &tabby_bin(), cmd, pod, conf).await
    }
}

fn in_pool(ip: &str, pool: usize) -> bool {
    let net: ipnet::Ipv4Net = POOLS[pool].1.parse().unwrap();
    net.contains(&ip.parse::<std::net::Ipv4Addr>().unwrap())
}

/// ADD that must fail with `code` naming `names`, and assign nothing.
async fn refused(c: &Cluster, pod: &Pod<'_>, conf: &str, code: u64, names: &[&str]) {
    let before = c.in_use().await;
    let add = c.cni("ADD", pod, conf).await;
    assert_eq!(add.error_code(), code, "{}", add.stdout);
    let msg = add.json()["msg"].as_str().unwrap_or_default().to_string();
    for n in names {
        assert!(msg.contains(n), "{msg:?} does not name {n:?}");
    }
    assert_eq!(c.in_use().await, before, "a refused ADD assigned something");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotations_choose_the_address_and_the_pod_records_it() {
    let c = Cluster::start().await;
    let kubeconfig = c.dir.path().join("kubeconfig");
    let conf = c.conf(&kubeconfig, None);
    c.namespace("plain", json!({}));
    c.namespace("team-b", json!({IPV4_POOLS: r#"["pool-b"]"#}));
    c.pod("plain", "web", json!({}));
    c.pod("team-b", "api", json!({}));
    c.pod(
        "team-b",
        "batch",
        json!({IPV4_POOLS: r#"["10.253.0.0/24"]"#}),
    );
    c.pod("plain", "db", json!({IP_ADDRS: r#"["10.252.0.77"]"#}));
    c.pod("plain", "bad", json!({IPV4_POOLS: "pool-b"}));
    c.pod("plain", "dup", json!({IP_ADDRS: r#"["10.252.0.77"]"#}));

    let sandboxes: Vec<cni_common::Netns> =
        (0..6).map(|_| cni_common::Netns::new("cnikpod")).collect();
    let pod = |i: usize, ns: &'static str, name: &'static str| Pod {
        namespace: ns,
        name,
        container_id: unique("cid"),
        netns: Some(sandboxes[i].path()),
    };
    let web = pod(0, "plain", "web");
    let api = pod(1, "team-b", "api");
    let batch = pod(2, "team-b", "batch");
    let db = pod(3, "plain", "db");

    let before_any = c.in_use().await;
    // No annotation: the conflist's pool. Namespace over conflist, pod over
    // namespace.
    let mut added = Vec::new();
    for (p, pool) in [(&web, 0), (&api, 1), (&batch, 2)] {
        let add = c.cni("ADD", p, &conf).await;
        assert!(
            add.ok(),
            "ADD {}: {} {}\n{}",
            p.name,
            add.stdout,
            add.stderr,
            c.log()
        );
        let ip = add.first_ip();
        assert!(
            in_pool(&ip, pool),
            "{} got {ip}, not from {}",
            p.name,
            POOLS[pool].0
        );
        added.push((p, add.json(), ip));
    }
    // ipAddrs: exactly that address, though the pool is not the conflist's.
    let add = c.cni("ADD", &db, &conf).await;
    assert!(add.ok(), "ADD db: {} {}", add.stdout, add.stderr);
    assert_eq!(add.first_ip(), "10.252.0.77");
    added.push((&db, add.json(), "10.252.0.77".to_string()));

    // tabby-node wrote Calico's status annotations on each Pod.
    for (p, _, ip) in &added {
        let a = c.pod_annotations(p.namespace, p.name);
        assert_eq!(a[POD_IP], format!("{ip}/32"), "{}: {a}", p.name);
        assert_eq!(a[POD_IPS], format!("{ip}/32"), "{}: {a}", p.name);
        assert_eq!(a[CONTAINER_ID], p.container_id.as_str(), "{}: {a}", p.name);
    }

    // Refused, with nothing assigned: a malformed annotation (code 7,
    // naming it), the address another pod holds (the node refuses, naming
    // it), an API server that doesn't answer (try again later).
    let bad = pod(4, "plain", "bad");
    refused(
        &c,
        &bad,
        &conf,
        7,
        &[IPV4_POOLS, "pod plain/bad", "JSON list"],
    )
    .await;
    let dup = pod(5, "plain", "dup");
    refused(
        &c,
        &dup,
        &conf,
        100,
        &["10.252.0.77", "already in use", &db.container_id],
    )
    .await;
    let gone = c.dir.path().join("gone-kubeconfig");
    std::fs::write(
        &gone,
        std::fs::read_to_string(&kubeconfig)
            .unwrap()
            .replace(&format!(":{}", c.api.addr().port()), ":1"),
    )
    .unwrap();
    refused(
        &c,
        &bad,
        &c.conf(&gone, None),
        11,
        &["Kubernetes API", "try again later"],
    )
    .await;
    let missing = c.dir.path().join("no-such-kubeconfig");
    refused(
        &c,
        &bad,
        &c.conf(&missing, None),
        7,
        &["kubernetes.kubeconfig"],
    )
    .await;

    // DEL blanks the addresses on the Pod (containerID stays, as Calico
    // leaves it) and releases the address.
    for (p, result, _) in &added {
        let del = c.cni("DEL", p, &c.conf(&kubeconfig, Some(result))).await;
        assert!(del.ok(), "DEL {}: {} {}", p.name, del.stdout, del.stderr);
        let a = c.pod_annotations(p.namespace, p.name);
        assert_eq!(a[POD_IP], "", "{}: {a}", p.name);
        assert_eq!(a[POD_IPS], "", "{}: {a}", p.name);
        assert_eq!(a[CONTAINER_ID], p.container_id.as_str());
    }
    assert_eq!(c.in_use().await, before_any);
}
