//! A node stand-in for the CNI tests, made of the real pieces: a "node"
//! network namespace with an interface and address, felix-lite's
//! reconciler running inside it, the `Ipam` service over a real SQLite
//! file and the `Dataplane` service over that reconciler, both served on a
//! unix socket in a temp dir (`<dir>/run/tabby.sock`). The `tabby` binary
//! is then run exactly as a runtime runs it: `CNI_*` environment, the
//! conflist entry rendered as libcni renders it on stdin, from the node's
//! netns.
//!
//! Needs root (network namespaces). Every name is unique per test and
//! everything is removed on drop.

#![allow(dead_code)]

pub mod containerd;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tabby_agent::datastore::{sqlite::SqliteStore, Datastore};
use tabby_agent::grpc::dataplane::DataplaneService;
use tabby_agent::grpc::{bind_socket, ipam::IpamService};
use tabby_agent::ipam::DatastoreIpam;
use tabby_agent::resources::ippool::IpPoolSpec;
use tabby_agent::resources::{Object, Resource};
use tabby_felix_lite::model::DesiredState;
use tabby_felix_lite::reconcile::{Config, Reconciler};
use tabby_ipam::allocator::Ipam;
use tabby_proto::dataplane::dataplane_server::DataplaneServer;
use tabby_proto::ipam::ipam_server::IpamServer;
use tokio_stream::wrappers::UnixListenerStream;

pub const NODE_IP: &str = "10.250.0.1";
pub const NODE_IF: &str = "nic0";
pub const NODE_MTU: u32 = 1400;
pub const POOL: &str = "10.251.0.0/24";
/// The dual-stack tests' node IPv6 address (on NODE_IF) and IPv6 pool.
pub const NODE_IP6: &str = "fd00:250::1";
pub const POOL6: &str = "fd00:251::/120";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A unique short tag for this test's names.
pub fn unique(tag: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("{tag}{}x{n}", std::process::id() % 100000)
}

pub fn sh(args: &[&str]) -> std::process::Output {
    std::process::Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("running {args:?}: {e}"))
}

pub fn sh_ok(args: &[&str]) -> String {
    let o = sh(args);
    assert!(
        o.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `ip netns add` on create, `ip netns del` on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = unique(tag);
        sh_ok(&["ip", "netns", "add", &name]);
        Netns { name }
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/var/run/netns").join(&self.name)
    }

    /// `ip -n <ns> -j <args>` parsed.
    pub fn ip_json(&self, args: &[&str]) -> Value {
        let mut full = vec!["ip", "-n", &self.name, "-j"];
        full.extend_from_slice(args);
        let out = sh_ok(&full);
        if out.trim().is_empty() {
            return Value::Array(vec![]);
        }
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{full:?}: {e}: {out}"))
    }

    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["ip", "-n", &self.name];
        full.extend_from_slice(args);
        sh_ok(&full)
    }

    /// One ping from inside this namespace to `dst`, waiting up to 2 s.
    pub fn ping_once(&self, dst: &str) -> std::process::Output {
        sh(&[
            "ip", "netns", "exec", &self.name, "ping", "-c", "1", "-W", "2", dst,
        ])
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = sh(&["ip", "netns", "del", &self.name]);
    }
}

pub struct Node {
    pub name: String,
    pub dir: tempfile::TempDir,
    pub run_dir: PathBuf,
    pub db: PathBuf,
    pub ds: Arc<dyn Datastore>,
    pub reconciler: Option<Reconciler>,
    server: Option<tokio::task::JoinHandle<()>>,
    // Last: the namespace goes after the reconciler inside it has stopped.
    pub netns: Netns,
}

impl Node {
    /// Builds the node netns (loopback, `nic0` with NODE_IP/24 and MTU
    /// NODE_MTU), the pool, the reconciler and the socket.
    pub async fn start() -> Node {
        let netns = Netns::new("tcnode");
        let name = netns.name.clone();
        netns.ip(&["link", "set", "lo", "up"]);
        // No `dummy` link type on this kernel: a veth pair inside the node
        // stands in for its NIC.
        let mtu = NODE_MTU.to_string();
        netns.ip(&[
            "link", "add", NODE_IF, "mtu", &mtu, "type", "veth", "peer", "name", "nic0p", "mtu",
            &mtu,
        ]);
        netns.ip(&["addr", "add", &format!("{NODE_IP}/24"), "dev", NODE_IF]);
        netns.ip(&["link", "set", NODE_IF, "up"]);
        netns.ip(&["link", "set", "nic0p", "up"]);
        // A real node has a default route, and Calico's proxy ARP depends
        // on it: the host end answers for 169.254.1.1 only if the node has
        // a route to that address through another interface.
        netns.ip(&[
            "route",
            "add",
            "default",
            "via",
            "10.250.0.254",
            "dev",
            NODE_IF,
        ]);

        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("tabby.db");
        let ds: Arc<dyn Datastore> = Arc::new(SqliteStore::open(&db).await.unwrap());
        let mut spec = IpPoolSpec {
            cidr: POOL.into(),
            block_size: Some(26),
            ..Default::default()
        };
        spec.fill_defaults(false);
        ds.create(Resource::IpPool(Object::new(
            "IPPool",
            "default-ipv4-ippool",
            spec,
        )))
        .await
        .unwrap();

        let reconciler = Reconciler::start_in_netns(
            &name,
            Config {
                resync_interval: Duration::from_secs(30),
                debounce: Duration::from_millis(20),
            },
        )
        .unwrap();
        let handle = reconciler.handle();
        let generation = handle.set_desired(DesiredState {
            node_interface: NODE_IF.into(),
            ..Default::default()
        });
        let status = tokio::time::timeout(
            Duration::from_secs(10),
            handle.wait_for_generation(generation),
        )
        .await
        .expect("first reconcile pass")
        .unwrap();
        assert_eq!(status.last_pass.pod_mtu, Some(NODE_MTU));

        let run_dir = dir.path().join("run");
        let listener = bind_socket(&run_dir.join("tabby.sock")).unwrap();
        let ipam = IpamService::new(Arc::new(Ipam::new(DatastoreIpam::new(ds.clone()))), &name);
        let dataplane =
            DataplaneService::new(ds.clone(), &name, handle).with_node_address(NODE_IF, NODE_IP);
        let server = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(IpamServer::new(ipam))
                .add_service(DataplaneServer::new(dataplane))
                .serve_with_incoming(UnixListenerStream::new(listener))
                .await;
        });
        Node {
            name,
            dir,
            run_dir,
            db,
            ds,
            reconciler: Some(reconciler),
            server: Some(server),
            netns,
        }
    }

    /// The manifest's conflist entry as libcni renders it for this node:
    /// the list's `cniVersion` and `name` copied in, the placeholders
    /// filled, `prevResult` added when given.
    /// A node restart's dataplane half: a fresh reconciler (the old one
    /// must be stopped, and what the test wants gone removed, first), the
    /// local workloads restored from their WorkloadEndpoints and applied.
    /// Returns the new handle and how many workloads came back.
    pub async fn restart_dataplane(
        &mut self,
    ) -> (tabby_felix_lite::reconcile::ReconcilerHandle, usize) {
        let fresh = Reconciler::start_in_netns(
            &self.netns.name,
            Config {
                resync_interval: Duration::from_secs(30),
                debounce: Duration::from_millis(20),
            },
        )
        .unwrap();
        let handle = fresh.handle();
        let restored =
            tabby_agent::grpc::dataplane::restore_workloads(&*self.ds, &self.name, &handle)
                .await
                .unwrap();
        let generation = handle.set_desired(DesiredState {
            node_interface: NODE_IF.into(),
            ..Default::default()
        });
        tokio::time::timeout(
            Duration::from_secs(10),
            handle.wait_for_generation(generation),
        )
        .await
        .unwrap()
        .unwrap();
        self.reconciler = Some(fresh);
        (handle, restored)
    }

    pub fn net_conf(&self, prev: Option<&Value>) -> String {
        let list: Value = serde_json::from_str(
            &std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/10-tabby.conflist"),
            )
            .unwrap(),
        )
        .unwrap();
        let mut conf = list["plugins"][0].clone();
        conf["cniVersion"] = list["cniVersion"].clone();
        conf["name"] = list["name"].clone();
        conf["nodename"] = Value::String(self.name.clone());
        conf["run_dir"] = Value::String(self.run_dir.display().to_string());
        if let Some(p) = prev {
            conf["prevResult"] = p.clone();
        }
        conf.to_string()
    }

    /// For dual stack: NODE_IP6/64 on the node's interface and an IPv6
    /// pool POOL6 (/124 blocks) applied with `tabbyctl apply`, as an
    /// operator does.
    pub async fn add_ipv6(&self) {
        self.netns.ip(&[
            "addr",
            "add",
            &format!("{NODE_IP6}/64"),
            "dev",
            NODE_IF,
            "nodad",
        ]);
        let pool = format!(
            "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: default-ipv6-ippool\n\
             spec:\n  cidr: {POOL6}\n  blockSize: 124\n  nodeSelector: all()\n"
        );
        let file = self.dir.path().join("pool6.yaml");
        std::fs::write(&file, pool).unwrap();
        let out = self
            .tabbyctl(&["apply", "-f", &file.display().to_string()])
            .await;
        assert!(out.contains("applied 1 'IPPool'"), "tabbyctl apply: {out}");
    }

    /// The dual-stack form of [`Node::net_conf`]: Calico's
    /// `assign_ipv6: "true"` with `ipv6_pools` naming POOL6.
    pub fn net_conf_dual(&self, prev: Option<&Value>) -> String {
        let mut conf: Value = serde_json::from_str(&self.net_conf(prev)).unwrap();
        conf["ipam"]["assign_ipv4"] = "true".into();
        conf["ipam"]["assign_ipv6"] = "true".into();
        conf["ipam"]["ipv6_pools"] = serde_json::json!([POOL6]);
        conf.to_string()
    }

    /// `tabbyctl ipam show --ip` against this node's datastore.
    pub async fn ipam_show_ip(&self, ip: &str) -> String {
        self.tabbyctl(&["ipam", "show", "--ip", ip]).await
    }

    /// tabbyctl against this node's datastore; its stdout, asserting success.
    pub async fn tabbyctl(&self, args: &[&str]) -> String {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tabbyctl"))
            .args(args)
            .env("DATASTORE_TYPE", "sqlite")
            .env("TABBY_DATASTORE", &self.db)
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "tabbyctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.abort();
        }
        if let Some(r) = self.reconciler.take() {
            let _ = r.stop();
        }
    }
}

/// One pod as the runtime sees it.
pub struct Pod<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub container_id: String,
    /// None: CNI_NETNS unset (a DEL after the sandbox is gone).
    pub netns: Option<PathBuf>,
}

pub struct CniRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CniRun {
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {:?} / stderr {}",
                self.stdout, self.stderr
            )
        })
    }

    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// The first assigned address of a successful ADD, without its `/32`.
    pub fn first_ip(&self) -> String {
        self.json()["ips"][0]["address"]
            .as_str()
            .unwrap_or_else(|| panic!("no ips[0].address in {}", self.stdout))
            .trim_end_matches("/32")
            .to_string()
    }

    /// The CNI error code of a failed run (asserting it failed).
    pub fn error_code(&self) -> u64 {
        assert_ne!(self.code, Some(0), "expected a failure: {}", self.stdout);
        self.json()["code"]
            .as_u64()
            .expect("error result has a code")
    }
}

/// Runs the plugin binary `bin` from the node's netns with the runtime's
/// environment: CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME,
/// CNI_ARGS (as containerd's CRI plugin sets them) and CNI_PATH.
pub async fn run_cni(node: &Node, bin: &Path, cmd: &str, pod: &Pod<'_>, stdin: &str) -> CniRun {
    run_cni_in(&node.netns.name, bin, cmd, pod, stdin).await
}

/// [`run_cni`] from the network namespace named `netns` (a node that is
/// not this module's stand-in, e.g. a real tabby-node).
pub async fn run_cni_in(netns: &str, bin: &Path, cmd: &str, pod: &Pod<'_>, stdin: &str) -> CniRun {
    use tokio::io::AsyncWriteExt;
    let args = format!(
        "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID=0b2d7a6c-{}",
        pod.namespace, pod.name, pod.container_id, pod.container_id
    );
    let mut c = tokio::process::Command::new("ip");
    c.args(["netns", "exec", netns])
        .arg(bin)
        .env_remove("TABBY_LOG")
        .env("CNI_COMMAND", cmd)
        .env("CNI_CONTAINERID", &pod.container_id)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_ARGS", args)
        .env("CNI_PATH", bin.parent().unwrap())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    match &pod.netns {
        Some(p) => c.env("CNI_NETNS", p),
        None => c.env_remove("CNI_NETNS"),
    };
    let mut child = c.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the plugin finished within 60 s")
        .unwrap();
    CniRun {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn tabby_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tabby"))
}
