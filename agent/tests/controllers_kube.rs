//! `tabby-node controllers` (the real binary) against the Kubernetes API
//! stand-in with `DATASTORE_TYPE=kubernetes`: an address whose Pod was
//! deleted through the API is released once the grace period has passed,
//! and not before; the live Pod's address stays. Two controllers at once:
//! one holds the Lease and collects, the other waits, and takes over as
//! soon as the first shuts down (SIGTERM releases the Lease). `tabbyctl
//! ipam check` reports the same leak from the same Pods.

mod common;

use common::Kube;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tabby_agent::ipam::DatastoreIpam;
use tabby_agent::resources::ippool::IpPoolSpec;
use tabby_agent::resources::{Object, Resource};
use tabby_ipam::allocator::{AssignRequest, Ipam};
use tabby_ipam::store::IpamStore;

const GRACE: Duration = Duration::from_secs(2);
const LEASE: &str = "tabby-kube-controllers";

/// A controllers process and the lines it logged (ANSI colours removed).
struct Controllers {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut esc = false;
    for c in s.chars() {
        match (esc, c) {
            (false, '\x1b') => esc = true,
            (false, c) => out.push(c),
            (true, c) if c.is_ascii_alphabetic() => esc = false,
            (true, _) => {}
        }
    }
    out
}

impl Controllers {
    fn start(k: &Kube, name: &str) -> Controllers {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tabby-node"))
            .args(["controllers", "--leak-grace-period", "2s"])
            .env("DATASTORE_TYPE", "kubernetes")
            .env("KUBECONFIG", &k.kubeconfig)
            .env("POD_NAME", name)
            .env("POD_NAMESPACE", "kube-system")
            .env("TABBY_LEASE_DURATION", "10s")
            .env("TABBY_LEASE_RENEW_PERIOD", "200ms")
            .env("TABBY_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting tabby-node controllers");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (err, sink) = (child.stderr.take().expect("stderr"), log.clone());
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(strip_ansi(&line));
            }
        });
        Controllers { child, log }
    }

    fn logged(&self, what: &str) -> Vec<String> {
        let l = self.log.lock().unwrap();
        l.iter().filter(|s| s.contains(what)).cloned().collect()
    }

    fn all(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// SIGTERM, and its exit status.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: signalling a child we spawned and have not reaped.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = self.child.try_wait().expect("waiting for controllers") {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "controllers ignored SIGTERM:\n{}",
                self.all()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Controllers {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_for<F: std::future::Future<Output = bool>>(
    what: &str,
    limit: Duration,
    mut f: impl FnMut() -> F,
) -> Duration {
    let t0 = Instant::now();
    while !f().await {
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    t0.elapsed()
}

struct Cluster {
    k: Kube,
    client: kube::Client,
    ipam: Ipam<DatastoreIpam>,
}

impl Cluster {
    async fn start() -> Cluster {
        let k = Kube::start().await;
        let client = k.server.client().await.expect("a kube client");
        let ds = k.client().await;
        let mut spec = IpPoolSpec {
            cidr: "10.42.0.0/24".into(),
            ..Default::default()
        };
        spec.fill_defaults(false);
        ds.create(Resource::IpPool(Object::new("IPPool", "p", spec)))
            .await
            .unwrap();
        for ns in ["shop", "kube-system"] {
            let n: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
            Api::<Namespace>::all(client.clone())
                .create(&PostParams::default(), &n)
                .await
                .unwrap();
        }
        let node: Node = serde_json::from_value(json!({"metadata": {"name": "n1"}})).unwrap();
        Api::<Node>::all(client.clone())
            .create(&PostParams::default(), &node)
            .await
            .unwrap();
        Cluster {
            ipam: Ipam::new(DatastoreIpam::new(ds)),
            k,
            client,
        }
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "shop")
    }

    /// A running pod on n1 with an address from IPAM, as the CNI plugin
    /// and the kubelet leave it.
    async fn pod(&self, name: &str) -> IpAddr {
        let attributes: BTreeMap<String, String> =
            [("namespace", "shop"), ("pod", name), ("node", "n1")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let req = AssignRequest {
            attributes,
            ..AssignRequest::new(&format!("k8s-pod-network.c-{name}"), "n1")
        };
        let ip = self.ipam.auto_assign(&req).await.unwrap().0[0];
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}
        }))
        .unwrap();
        self.pods()
            .create(&PostParams::default(), &pod)
            .await
            .unwrap();
        let status = json!({"status": {
            "phase": "Running", "podIP": ip.to_string(), "podIPs": [{"ip": ip.to_string()}]
        }});
        self.pods()
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
        ip
    }

    async fn delete_pod(&self, name: &str) {
        self.pods()
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }

    async fn held(&self, ip: IpAddr) -> bool {
        let blocks = self.ipam.store().list_blocks().await.unwrap();
        blocks
            .iter()
            .any(|b| b.value.cidr.contains(&ip) && b.value.holder(ip).is_some())
    }

    async fn lease_holder(&self) -> Option<String> {
        Api::<Lease>::namespaced(self.client.clone(), "kube-system")
            .get_opt(LEASE)
            .await
            .unwrap()
            .and_then(|l| l.spec?.holder_identity)
    }
}

/// A release is in the datastore before its log line has come through the
/// stderr reader: wait for the line rather than race it.
async fn logged_soon(ctl: &Controllers, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while ctl.logged(what).is_empty() {
        assert!(
            Instant::now() < deadline,
            "never logged {what:?}:\n{}",
            ctl.all()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_pods_address_is_released_after_the_grace_period() {
    let c = Cluster::start().await;
    let live = c.pod("web-live").await;
    let dead = c.pod("web-dead").await;
    c.delete_pod("web-dead").await;
    // tabbyctl judges by the same rules, from the same Pods.
    let out =
        common::Ctl::kubernetes(&c.k.kubeconfig).ok(&["ipam", "check", "--leak-grace-period", "0"]);
    assert_eq!(
        out,
        format!(
            "IP {dead} is allocated to k8s-pod-network.c-web-dead, which no live workload uses\n\
             Check complete; found 1 problems.\n"
        )
    );

    let t0 = Instant::now();
    let mut ctl = Controllers::start(&c.k, "ctl-a");
    wait_for(
        "the address to be released",
        Duration::from_secs(30),
        || {
            let c = &c;
            async move { !c.held(dead).await }
        },
    )
    .await;
    let took = t0.elapsed();
    assert!(
        took >= GRACE,
        "released after {took:?}, inside the grace period"
    );
    assert!(c.held(live).await, "the live pod's address was released");
    logged_soon(&ctl, "garbage collected leaked IP address").await;
    let line = ctl.logged("garbage collected leaked IP address");
    assert_eq!(line.len(), 1, "{}", ctl.all());
    for field in [
        format!("ip={dead}"),
        "handle=k8s-pod-network.c-web-dead".into(),
        "pod=web-dead".into(),
        "namespace=shop".into(),
        "node=n1".into(),
        "reason=pod does not exist".into(),
    ] {
        assert!(line[0].contains(&field), "{field} missing: {}", line[0]);
    }
    assert_eq!(c.lease_holder().await.as_deref(), Some("ctl-a"));
    // SIGTERM: a clean exit that gives the Lease up.
    let status = ctl.terminate();
    assert!(status.success(), "{status}: {}", ctl.all());
    assert_eq!(c.lease_holder().await, None, "{}", ctl.all());
    assert!(c.held(live).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_controllers_one_leader() {
    let c = Cluster::start().await;
    let mut a = Controllers::start(&c.k, "ctl-a");
    let mut b = Controllers::start(&c.k, "ctl-b");
    wait_for("a lease holder", Duration::from_secs(20), || {
        let c = &c;
        async move { c.lease_holder().await.is_some() }
    })
    .await;
    let first = c.lease_holder().await.unwrap();
    let (leader, follower, follower_name) = if first == "ctl-a" {
        (&mut a, &mut b, "ctl-b")
    } else {
        (&mut b, &mut a, "ctl-a")
    };
    // A leak, collected by the leader alone.
    let dead = c.pod("web-dead").await;
    c.delete_pod("web-dead").await;
    wait_for(
        "the address to be released",
        Duration::from_secs(30),
        || {
            let c = &c;
            async move { !c.held(dead).await }
        },
    )
    .await;
    assert_eq!(c.lease_holder().await.as_deref(), Some(first.as_str()));
    logged_soon(leader, "garbage collected leaked IP address").await;
    assert_eq!(
        leader.logged("became the leader").len(),
        1,
        "{}",
        leader.all()
    );
    assert_eq!(
        leader.logged("garbage collected leaked IP address").len(),
        1
    );
    assert!(
        follower.logged("became the leader").is_empty(),
        "{}",
        follower.all()
    );
    assert!(
        follower.logged("garbage collected").is_empty(),
        "{}",
        follower.all()
    );

    // The leader stops: the follower takes over well inside the 10 s lease,
    // because a clean shutdown releases it.
    assert!(leader.terminate().success(), "{}", leader.all());
    let took = wait_for("the follower to take over", Duration::from_secs(20), || {
        let c = &c;
        async move { c.lease_holder().await.as_deref() == Some(follower_name) }
    })
    .await;
    assert!(took < Duration::from_secs(5), "takeover took {took:?}");
    let again = c.pod("web-dead-2").await;
    c.delete_pod("web-dead-2").await;
    wait_for("the new leader to collect", Duration::from_secs(30), || {
        let c = &c;
        async move { !c.held(again).await }
    })
    .await;
    logged_soon(follower, "garbage collected leaked IP address").await;
    assert_eq!(
        follower.logged("garbage collected leaked IP address").len(),
        1
    );
    assert!(follower.terminate().success());
}

/// A leader that dies without releasing the Lease (SIGKILL, a lost node)
/// is replaced only once the lease has gone unrenewed for its duration —
/// never sooner, so two replicas never collect at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_is_replaced_after_the_lease_lapses() {
    let c = Cluster::start().await;
    let mut a = Controllers::start(&c.k, "ctl-a");
    wait_for("ctl-a to hold the lease", Duration::from_secs(20), || {
        let c = &c;
        async move { c.lease_holder().await.as_deref() == Some("ctl-a") }
    })
    .await;
    let mut b = Controllers::start(&c.k, "ctl-b");
    // b is running and following before a dies.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(b.logged("became the leader").is_empty(), "{}", b.all());
    a.child.kill().expect("SIGKILL");
    let _ = a.child.wait();
    let took = wait_for("ctl-b to take over", Duration::from_secs(30), || {
        let c = &c;
        async move { c.lease_holder().await.as_deref() == Some("ctl-b") }
    })
    .await;
    // The lease is 10 s; b may have seen the last renewal up to its own
    // poll period before the kill.
    assert!(
        took >= Duration::from_secs(8),
        "took over after only {took:?}: {}",
        b.all()
    );
    assert!(took < Duration::from_secs(20), "took {took:?}: {}", b.all());
    let dead = c.pod("web-dead").await;
    c.delete_pod("web-dead").await;
    wait_for("the new leader to collect", Duration::from_secs(30), || {
        let c = &c;
        async move { !c.held(dead).await }
    })
    .await;
    assert!(b.terminate().success(), "{}", b.all());
}
