//! Shared test helpers: a real etcd on loopback, the Kubernetes API
//! stand-in, and a store of each kind.

#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tabby_agent::datastore::{
    etcd::EtcdStore, kdd::KubeStore, memory::MemoryStore, sqlite::SqliteStore, Datastore,
};
use tabby_kube_standin::StandIn;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding a loopback port")
}

/// A real etcd server on free loopback ports with its own data directory,
/// killed when dropped. The README's test command installs `etcd-server`.
pub struct Etcd {
    child: Child,
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

impl Etcd {
    pub async fn start() -> Etcd {
        let dir = tempfile::tempdir().expect("tempdir");
        let (client, peer) = (free_port(), free_port());
        let endpoint = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new("etcd")
            .arg("--name=tabby-test")
            .arg(format!("--data-dir={}", dir.path().display()))
            .arg(format!("--listen-client-urls={endpoint}"))
            .arg(format!("--advertise-client-urls={endpoint}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=tabby-test={peer_url}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "starting etcd: is etcd-server installed? (the README's test command installs it)",
            );
        let etcd = Etcd {
            child,
            endpoint,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(s) = EtcdStore::connect(std::slice::from_ref(&etcd.endpoint)).await {
                if s.list(tabby_agent::resources::Kind::IpPool, None)
                    .await
                    .is_ok()
                {
                    return etcd;
                }
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not come up on {}",
                etcd.endpoint
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The server's process id (to stop and continue it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub async fn client(&self) -> Arc<dyn Datastore> {
        Arc::new(
            EtcdStore::connect(std::slice::from_ref(&self.endpoint))
                .await
                .expect("connecting to the test etcd"),
        )
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A backend under test plus whatever keeps it alive, and a way to open a
/// second, independent client to the same data.
pub enum Backend {
    Memory(MemoryStore),
    Sqlite(tempfile::TempDir),
    Etcd(Etcd),
    Kubernetes(Kube),
}

/// The Kubernetes API stand-in with Calico's CRDs loaded, and a kubeconfig
/// for it on disk (for processes: tabbyctl, tabby-node, kubectl).
pub struct Kube {
    pub server: StandIn,
    pub kubeconfig: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Kube {
    pub async fn start() -> Kube {
        let server = StandIn::start().await.expect("starting the API stand-in");
        server
            .load_crds_yaml(&calico_crds_yaml())
            .expect("loading Calico's CRDs");
        server
            .load_crds_yaml(&tabby_agent::manifests::installation_crd::operator_crds_yaml())
            .expect("loading the Installation CRD");
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        server
            .write_kubeconfig(&kubeconfig)
            .expect("writing a kubeconfig");
        Kube {
            server,
            kubeconfig,
            _dir: dir,
        }
    }

    pub async fn client(&self) -> Arc<dyn Datastore> {
        Arc::new(self.store().await)
    }

    pub async fn store(&self) -> KubeStore {
        KubeStore::from_client(self.server.client().await.expect("a kube client"))
    }

    /// Creates (or replaces) a core object, e.g. a Node or a Pod, as the
    /// kubelet or a user would.
    pub fn put(&self, path: &str, obj: serde_json::Value) -> serde_json::Value {
        self.server
            .put_json(path, obj)
            .expect("writing to the stand-in")
    }
}

/// Calico's CRDs as Tabby generates them (manifests/crds.yaml).
pub fn calico_crds_yaml() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests/crds.yaml");
    std::fs::read_to_string(path).unwrap_or_else(|_| minimal_crds_yaml())
}

/// Schema-less CRDs for each CRD-stored kind (the stand-in does not
/// validate schemas anyway).
fn minimal_crds_yaml() -> String {
    use tabby_agent::resources::Kind;
    Kind::ALL
        .iter()
        .filter(|k| tabby_agent::datastore::kdd::crs::is_crd(**k))
        .map(|k| {
            format!(
                "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: {p}.crd.projectcalico.org\nspec:\n  group: crd.projectcalico.org\n  scope: Cluster\n  names: {{kind: {k}, plural: {p}, singular: {s}, listKind: {k}List}}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}\n",
                k = k.as_str(),
                p = k.plural(),
                s = k.as_str().to_ascii_lowercase()
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

impl Backend {
    pub async fn new(kind: &str) -> Backend {
        match kind {
            "memory" => Backend::Memory(MemoryStore::new()),
            "sqlite" => Backend::Sqlite(tempfile::tempdir().expect("tempdir")),
            "etcd" => Backend::Etcd(Etcd::start().await),
            "kubernetes" => Backend::Kubernetes(Kube::start().await),
            other => panic!("unknown backend {other}"),
        }
    }

    /// A client. Each call opens a separate connection (sqlite, etcd).
    pub async fn client(&self) -> Arc<dyn Datastore> {
        match self {
            Backend::Memory(m) => Arc::new(m.clone()),
            Backend::Sqlite(dir) => Arc::new(
                SqliteStore::open(&dir.path().join("tabby.db"))
                    .await
                    .expect("opening sqlite"),
            ),
            Backend::Etcd(e) => e.client().await,
            Backend::Kubernetes(k) => k.client().await,
        }
    }
}

/// `tabbyctl` run as a separate process against a stored datastore, the
/// way a user runs it.
pub struct Ctl {
    env: Vec<(&'static str, String)>,
}

impl Ctl {
    pub fn sqlite(db: &std::path::Path) -> Ctl {
        Ctl {
            env: vec![
                ("DATASTORE_TYPE", "sqlite".to_string()),
                ("TABBY_DATASTORE", db.display().to_string()),
            ],
        }
    }

    pub fn etcd(endpoint: &str) -> Ctl {
        Ctl {
            env: vec![
                ("DATASTORE_TYPE", "etcdv3".to_string()),
                ("ETCD_ENDPOINTS", endpoint.to_string()),
            ],
        }
    }

    pub fn kubernetes(kubeconfig: &std::path::Path) -> Ctl {
        Ctl {
            env: vec![
                ("DATASTORE_TYPE", "kubernetes".to_string()),
                ("KUBECONFIG", kubeconfig.display().to_string()),
            ],
        }
    }

    pub fn for_backend(b: &Backend) -> Ctl {
        match b {
            Backend::Sqlite(dir) => Ctl::sqlite(&dir.path().join("tabby.db")),
            Backend::Etcd(e) => Ctl::etcd(&e.endpoint),
            Backend::Kubernetes(k) => Ctl::kubernetes(&k.kubeconfig),
            Backend::Memory(_) => panic!("tabbyctl can't reach an in-process memory store"),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tabbyctl"));
        c.args(args).envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    pub fn run(&self, args: &[&str]) -> std::process::Output {
        self.command(args).output().expect("running tabbyctl")
    }

    /// Like `run`, with `stdin` as its standard input.
    pub fn run_stdin(&self, args: &[&str], stdin: &str) -> std::process::Output {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running tabbyctl");
        let mut input = child.stdin.take().expect("stdin");
        input.write_all(stdin.as_bytes()).expect("writing stdin");
        drop(input);
        child.wait_with_output().expect("waiting for tabbyctl")
    }

    /// Runs `args`, asserts success and returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "tabbyctl {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).expect("utf-8 output")
    }
}
