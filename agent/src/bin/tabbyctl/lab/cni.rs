//! Each node's CNI directories, laid out as `tabby install-cni` leaves a
//! host (`<node dir>/host` standing for the host's root): the conflist
//! rendered, validated and marked by install-cni's own code, and the
//! plugin binaries (links to the built `tabby`, where install-cni copies:
//! the debug binary is hundreds of MB). tabby-node gets `CNI_NET_DIR` and
//! `CNI_BIN_DIR` pointing there, so `node doctor` run through `lab exec`
//! reads what a runtime on that node would. The template's ipam section
//! gets `assign_ipv4`/`assign_ipv6` for the lab's `--ip-family`. Pods are still added by
//! calling the plugin directly (see `pods`).

use super::sh;
use super::state::{DatastoreKind, Lab, Node};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use tabby_agent::cni::config::{IPAM_TYPE, PLUGIN_TYPE};
use tabby_agent::cni::install::{files, render_conflist, InstallConfig, BIN_DIR, NET_DIR};

/// The node's stand-in for the host's root.
pub fn host_root(n: &Node) -> PathBuf {
    n.run_dir.parent().unwrap_or(Path::new("/")).join("host")
}

pub fn net_dir(n: &Node) -> PathBuf {
    host_root(n).join(NET_DIR)
}

pub fn bin_dir(n: &Node) -> PathBuf {
    host_root(n).join(BIN_DIR)
}

/// `CNI_NET_DIR`/`CNI_BIN_DIR` for the node's tabby-node.
pub fn env(n: &Node) -> Vec<(String, String)> {
    vec![
        ("CNI_NET_DIR".into(), net_dir(n).display().to_string()),
        ("CNI_BIN_DIR".into(), bin_dir(n).display().to_string()),
    ]
}

/// (Re)links `name` in the node's bin dir to the built plugin.
pub fn link_plugin(n: &Node, name: &str) -> Result<()> {
    let to = bin_dir(n).join(name);
    let from = sh::binary(PLUGIN_TYPE)?;
    match std::fs::remove_file(&to) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", to.display())),
    }
    std::os::unix::fs::symlink(&from, &to)
        .with_context(|| format!("linking {} to {}", to.display(), from.display()))
}

/// What install-cni writes, for node `n` whose tabby-node runs with
/// `node_env`: binaries first, the conflist last.
pub fn install(lab: &Lab, n: &Node, node_env: &[(String, String)]) -> Result<()> {
    let get = |k: &str| {
        node_env
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let mut cfg = InstallConfig::from_env(get, Some(host_root(n)), sh::binary(PLUGIN_TYPE)?)?;
    if lab.datastore == DatastoreKind::Kubernetes {
        // install-cni writes a kubeconfig of its own in a cluster; the lab
        // has the API's.
        cfg.values.kubeconfig = lab.kubeconfig().display().to_string();
    }
    // The families, as Calico's manifests put them in the template's ipam
    // section (`calico-config`'s `cni_network_config`).
    let (v4, v6) = lab.ip_family.assign();
    let ipam = r#""type": "tabby-ipam""#;
    anyhow::ensure!(
        cfg.template.contains(ipam),
        "the conflist template has no {ipam} to add assign_ipv4/assign_ipv6 to"
    );
    cfg.template = cfg.template.replace(
        ipam,
        &format!(r#"{ipam}, "assign_ipv4": "{v4}", "assign_ipv6": "{v6}""#),
    );
    let conflist = render_conflist(&cfg)?;
    files::ensure_dir(&cfg.bin_dir())?;
    files::ensure_dir(&cfg.net_dir())?;
    link_plugin(n, PLUGIN_TYPE)?;
    link_plugin(n, IPAM_TYPE)?;
    files::write_atomic(
        &cfg.net_dir().join(&cfg.conf_name),
        conflist.as_bytes(),
        0o644,
    )?;
    Ok(())
}
