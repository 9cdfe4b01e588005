//! [`StandIn`]: one running stand-in, as a test holds it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::listener;
use crate::request::{present, resolve_path};
use crate::server::{Options, Shared};
use crate::status::ApiError;
use crate::store::Store;
use crate::writes::Target;

/// Why the stand-in could not do what a test asked.
#[derive(Debug, thiserror::Error)]
pub enum StandInError {
    #[error("stand-in I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("stand-in kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    #[error("stand-in client: {0}")]
    Kube(#[from] kube::Error),
    #[error("stand-in API: {0}")]
    Api(#[from] ApiError),
    #[error("stand-in is already serving")]
    AlreadyRunning,
}

struct Running {
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// A stand-in API server: the store, and the listener while serving.
pub struct StandIn {
    store: Arc<Store>,
    opts: Options,
    addr: SocketAddr,
    running: Mutex<Option<Running>>,
}

/// The token in the kubeconfig. Nothing checks it; it is there so clients
/// exercise their bearer-token path.
pub const TOKEN: &str = "tabby-standin-token";

impl StandIn {
    /// Serves on 127.0.0.1 at a free port with default [`Options`].
    pub async fn start() -> Result<Self, StandInError> {
        Self::start_with(SocketAddr::from(([127, 0, 0, 1], 0)), Options::default()).await
    }

    pub async fn start_with(addr: SocketAddr, opts: Options) -> Result<Self, StandInError> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let s = StandIn {
            store: Arc::new(Store::new(opts.history)),
            opts,
            addr,
            running: Mutex::new(None),
        };
        s.serve(listener);
        Ok(s)
    }

    fn serve(&self, listener: TcpListener) {
        let (tx, rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            store: self.store.clone(),
            opts: self.opts.clone(),
            shutdown: rx,
            addr: self.addr,
        });
        let task = tokio::spawn(listener::serve(listener, shared));
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Running { shutdown: tx, task });
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The store behind the server, for direct reads and writes that do not
    /// go through HTTP (and so work while the server is stopped).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A kubeconfig naming this server, a user with a bearer token and
    /// namespace `default`.
    pub fn kubeconfig_yaml(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: standin\n  cluster:\n    server: {url}\n\
             users:\n- name: standin\n  user:\n    token: {TOKEN}\n\
             contexts:\n- name: standin\n  context:\n    cluster: standin\n    user: standin\n    namespace: default\n\
             current-context: standin\n",
            url = self.url()
        )
    }

    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> Result<(), StandInError> {
        std::fs::write(path, self.kubeconfig_yaml())?;
        Ok(())
    }

    /// A kube-rs client built from [`Self::kubeconfig_yaml`], the way Tabby
    /// builds one from a kubeconfig file.
    pub async fn client(&self) -> Result<kube::Client, StandInError> {
        let kc = kube::config::Kubeconfig::from_yaml(&self.kubeconfig_yaml())?;
        let config =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await?;
        Ok(kube::Client::try_from(config)?)
    }

    /// Registers every CRD in a multi-document YAML file (such as
    /// `manifests/crds.yaml`); returns their names.
    pub fn load_crds_yaml(&self, yaml: &str) -> Result<Vec<String>, StandInError> {
        Ok(self.store.load_crds_yaml(yaml)?)
    }

    /// Drops all event history: watches from any resourceVersion older
    /// than the current one get 410 Expired.
    pub fn compact(&self) {
        self.store.compact();
    }

    /// Drops the history up to and including `rv`.
    pub fn compact_to(&self, rv: u64) {
        self.store.compact_to(rv);
    }

    pub fn current_rv(&self) -> u64 {
        self.store.current_rv()
    }

    pub fn is_serving(&self) -> bool {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Stops serving: the listener closes (new connections are refused)
    /// and every open connection and watch stream is dropped. The data stay.
    pub async fn stop(&self) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(r) = running {
            let _ = r.shutdown.send(true);
            // The accept loop ends on the signal; its result has nothing to say.
            let _ = r.task.await;
        }
    }

    /// Serves again on the same address, with the same data.
    pub async fn restart(&self) -> Result<(), StandInError> {
        if self.is_serving() {
            return Err(StandInError::AlreadyRunning);
        }
        let listener = TcpListener::bind(self.addr).await?;
        self.serve(listener);
        Ok(())
    }

    /// The object at a resource URL path such as `/api/v1/nodes/n1`, as a
    /// GET would return it.
    pub fn get_json(&self, path: &str) -> Result<Value, StandInError> {
        let t = resolve_path(&self.store, path)?;
        let name = t.name.as_deref().unwrap_or_default();
        let obj = self
            .store
            .get(&t.rt, t.ns.as_deref().unwrap_or_default(), name)?;
        Ok(present(&t.rt, &t.version, obj))
    }

    /// Creates or unconditionally replaces the object at a resource URL path
    /// (a collection path creates; an object path replaces or creates).
    pub fn put_json(&self, path: &str, mut obj: Value) -> Result<Value, StandInError> {
        let t = resolve_path(&self.store, path)?;
        let ns = t.ns.clone().unwrap_or_default();
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
            if let Some(n) = &t.name {
                m.insert("name".into(), Value::String(n.clone()));
            }
        }
        let stored = match &t.name {
            Some(name) => match self
                .store
                .update(&t.rt, &ns, name, obj.clone(), Target::Main)
            {
                Err(ApiError::NotFound { .. }) => self.store.create(&t.rt, &ns, obj.clone())?,
                r => r?,
            },
            None => self.store.create(&t.rt, &ns, obj.clone())?,
        };
        // A direct write sets the status too, which neither a create nor a
        // main-resource update would.
        let stored = match obj.get("status") {
            Some(_) if t.rt.status_subresource => {
                let name = stored["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                self.store.update(&t.rt, &ns, &name, obj, Target::Status)?
            }
            _ => stored,
        };
        Ok(present(&t.rt, &t.version, stored))
    }

    /// Deletes the object at a resource URL path.
    pub fn delete_json(&self, path: &str) -> Result<Value, StandInError> {
        let t = resolve_path(&self.store, path)?;
        let name = t.name.as_deref().unwrap_or_default();
        let obj =
            self.store
                .delete(&t.rt, t.ns.as_deref().unwrap_or_default(), name, None, None)?;
        Ok(present(&t.rt, &t.version, obj))
    }
}
