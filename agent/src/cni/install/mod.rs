//! `tabby install-cni`: Calico's `install` binary's job, run as the
//! DaemonSet's init container with the host's root mounted at `/host`:
//! copy the `tabby` binary to `<host>/opt/cni/bin/tabby` and link it as
//! `tabby-ipam`, write the plugin's kubeconfig (in a cluster), then write
//! `<host>/etc/cni/net.d/10-tabby.conflist` from the template — last,
//! because a runtime takes the conflist's arrival as "the network is
//! ready" and everything it names must be there by then.
//!
//! Nothing is written until the conflist is rendered and has passed the
//! plugin's own parser ([`crate::cni::conflist`]); every file is written by
//! temp file + rename ([`files`]).

pub mod files;
pub mod kubeconfig;
pub mod marker;
pub mod refresh;
pub mod template;

use std::path::PathBuf;
use tracing::{info, warn};

pub const DEFAULT_HOST_ROOT: &str = "/host";
pub const DEFAULT_CONF_NAME: &str = "10-tabby.conflist";
pub const KUBECONFIG_NAME: &str = "tabby-kubeconfig";
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The host's CNI directories, relative to its root.
pub const NET_DIR: &str = "etc/cni/net.d";
pub const BIN_DIR: &str = "opt/cni/bin";

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{0}")]
    Env(String),
    #[error("conflist template: {0}")]
    Template(String),
    #[error("the conflist rendered from {source_name} is invalid, nothing was written: {error}")]
    Invalid {
        source_name: String,
        error: crate::cni::conflist::ConflistError,
    },
    #[error("{} is not writable: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("copying {} to {}: {source}", from.display(), to.display())]
    Copy {
        from: PathBuf,
        to: PathBuf,
        source: std::io::Error,
    },
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Everything install-cni needs, read from the environment once.
#[derive(Debug, Clone)]
pub struct InstallConfig {
    pub host_root: PathBuf,
    pub conf_name: String,
    pub template: String,
    /// `CNI_NETWORK_CONFIG` or the built-in default, for messages.
    pub template_source: String,
    pub values: template::Values,
    /// Some when running in a cluster (`KUBERNETES_SERVICE_HOST` set).
    pub cluster: Option<kubeconfig::Cluster>,
    pub service_account_dir: PathBuf,
    /// The binary to install (this one).
    pub binary: PathBuf,
}

impl InstallConfig {
    /// Reads the environment. `host_root` is `--host-root`, if given; else
    /// `TABBY_HOST_ROOT`, else `/host`.
    pub fn from_env(
        get: impl Fn(&str) -> Option<String>,
        host_root: Option<PathBuf>,
        binary: PathBuf,
    ) -> Result<InstallConfig, InstallError> {
        let nonempty = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let host_root = host_root
            .or_else(|| nonempty("TABBY_HOST_ROOT").map(PathBuf::from))
            .unwrap_or_else(|| DEFAULT_HOST_ROOT.into());
        let node_name = nonempty("KUBERNETES_NODE_NAME")
            .or_else(|| nonempty("NODENAME"))
            .ok_or_else(|| {
                InstallError::Env(
                    "neither KUBERNETES_NODE_NAME nor NODENAME is set: the conflist needs the \
                     node's name"
                        .into(),
                )
            })?;
        let mtu = match nonempty("CNI_MTU") {
            None => 0,
            Some(m) => m.trim().parse::<u32>().map_err(|_| {
                InstallError::Env(format!(
                    "CNI_MTU {m:?} is not a number (0 = ask the node, or 68..=65535)"
                ))
            })?,
        };
        let (template, template_source) = match nonempty("CNI_NETWORK_CONFIG") {
            Some(t) => (t, "CNI_NETWORK_CONFIG".to_string()),
            None => (template::builtin(), "the built-in template".to_string()),
        };
        let service_account_dir = nonempty("TABBY_SERVICEACCOUNT_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| SERVICE_ACCOUNT_DIR.into());
        let cluster = match nonempty("KUBERNETES_SERVICE_HOST") {
            None => None,
            Some(host) => {
                let port = nonempty("KUBERNETES_SERVICE_PORT").unwrap_or_else(|| "443".into());
                let ca = service_account_dir.join("ca.crt");
                let pem = std::fs::read(&ca).map_err(|source| InstallError::Read {
                    path: ca.clone(),
                    source,
                })?;
                Some(kubeconfig::Cluster::new(&host, &port, pem))
            }
        };
        let conf_name = nonempty("CNI_CONF_NAME").unwrap_or_else(|| DEFAULT_CONF_NAME.into());
        let values = template::Values {
            node_name,
            mtu,
            // The path as the host's runtime and plugin see it.
            kubeconfig: format!("/{NET_DIR}/{KUBECONFIG_NAME}"),
            datastore: nonempty("DATASTORE_TYPE").unwrap_or_else(|| "kubernetes".into()),
            run_dir: nonempty("TABBY_RUN_DIR")
                .unwrap_or_else(|| crate::grpc::DEFAULT_RUN_DIR.into()),
        };
        Ok(InstallConfig {
            host_root,
            conf_name,
            template,
            template_source,
            values,
            cluster,
            service_account_dir,
            binary,
        })
    }

    pub fn net_dir(&self) -> PathBuf {
        self.host_root.join(NET_DIR)
    }

    pub fn bin_dir(&self) -> PathBuf {
        self.host_root.join(BIN_DIR)
    }
}

/// What was installed.
#[derive(Debug, Clone, PartialEq)]
pub struct Installed {
    pub conflist: PathBuf,
    pub binaries: Vec<PathBuf>,
    pub kubeconfig: Option<(PathBuf, kubeconfig::TokenSource)>,
}

/// Renders, validates and marks ([`marker`]) the conflist without writing
/// anything.
pub fn render_conflist(cfg: &InstallConfig) -> Result<String, InstallError> {
    let text = template::render(&cfg.template, &cfg.values)?;
    crate::cni::conflist::validate(&text).map_err(|error| InstallError::Invalid {
        source_name: cfg.template_source.clone(),
        error,
    })?;
    // Valid JSON by now, so marking cannot fail; the mark is what lets
    // `node doctor` tell this file from one that only has its name.
    marker::mark(&text).map_err(|e| InstallError::Template(format!("marking the conflist: {e}")))
}

/// Installs the binaries, the kubeconfig and the conflist.
pub async fn install(cfg: &InstallConfig) -> Result<Installed, InstallError> {
    let conflist = render_conflist(cfg)?;
    let (net_dir, bin_dir) = (cfg.net_dir(), cfg.bin_dir());
    files::ensure_dir(&bin_dir)?;
    files::ensure_dir(&net_dir)?;

    let tabby = bin_dir.join(crate::cni::config::PLUGIN_TYPE);
    files::copy_atomic(&cfg.binary, &tabby)?;
    let ipam = bin_dir.join(crate::cni::config::IPAM_TYPE);
    files::link_atomic(&tabby, &ipam)?;
    info!(tabby = %tabby.display(), ipam = %ipam.display(), "installed the plugin binaries");

    let kubeconfig = match &cfg.cluster {
        None => {
            warn!(
                "KUBERNETES_SERVICE_HOST is not set: not in a cluster, no plugin kubeconfig written"
            );
            None
        }
        Some(cluster) => {
            let (token, source) =
                kubeconfig::plugin_token(cluster, &cfg.service_account_dir).await?;
            let path = net_dir.join(KUBECONFIG_NAME);
            files::write_atomic(&path, kubeconfig::render(cluster, &token).as_bytes(), 0o600)?;
            info!(path = %path.display(), server = %cluster.server, ?source, "wrote the plugin kubeconfig");
            Some((path, source))
        }
    };

    let path = net_dir.join(&cfg.conf_name);
    files::write_atomic(&path, conflist.as_bytes(), 0o644)?;
    info!(path = %path.display(), node = %cfg.values.node_name, "wrote the conflist");
    Ok(Installed {
        conflist: path,
        binaries: vec![tabby, ipam],
        kubeconfig,
    })
}

#[cfg(test)]
mod tests;
