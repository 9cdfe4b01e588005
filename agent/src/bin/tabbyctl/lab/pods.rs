//! Pods: a namespace each, wired by calling the `tabby` CNI plugin exactly
//! as a container runtime does (CNI_* environment, the network's config on
//! stdin), from the node's namespace.

use super::sh::{self, in_ns, ip};
use super::state::{DatastoreKind, Lab, Pod};
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::Stdio;

/// The network configuration a runtime hands the plugin: the conflist's
/// plugin entry with the list's name and cniVersion injected.
pub fn net_config(lab: &Lab, node: &str) -> Result<String> {
    let n = lab.node(node)?;
    let mut conf = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "k8s-pod-network",
        "type": "tabby",
        "nodename": n.name,
        "run_dir": n.run_dir,
        "mtu": 0,
        "ipam": { "type": "tabby-ipam" },
    });
    // As Calico's conflist on a KDD cluster: the plugin reads the pod's
    // IPAM annotations through the API.
    if lab.datastore == DatastoreKind::Kubernetes {
        conf["datastore_type"] = "kubernetes".into();
        conf["kubernetes"] = serde_json::json!({"kubeconfig": lab.kubeconfig()});
    }
    Ok(conf.to_string())
}

fn cni(lab: &Lab, p: &Pod, command: &str) -> Result<String> {
    let bin_dir = sh::bin_dir()?;
    let plugin = sh::binary("tabby")?;
    let node = lab.node(&p.node)?;
    let mut cmd = in_ns(&node.netns, "env");
    cmd.arg("-i")
        .arg("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .arg(format!("CNI_COMMAND={command}"))
        .arg(format!("CNI_CONTAINERID={}", p.container_id))
        .arg(format!("CNI_NETNS=/var/run/netns/{}", p.netns))
        .arg("CNI_IFNAME=eth0")
        .arg(format!("CNI_PATH={}", bin_dir.display()))
        .arg(format!(
            "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={}",
            p.namespace, p.name, p.container_id
        ))
        .arg(&plugin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("running {}", plugin.display()))?;
    child
        .stdin
        .take()
        .context("plugin stdin")?
        .write_all(net_config(lab, &p.node)?.as_bytes())?;
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "CNI {command} of pod {} on {} failed ({}): {} {}",
            p.name,
            p.node,
            out.status,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(stdout)
}

/// The first IPv4 address of a CNI result.
fn result_ip(result: &str) -> Result<Ipv4Addr> {
    let v: serde_json::Value = serde_json::from_str(result)
        .with_context(|| format!("CNI result is not JSON: {result}"))?;
    v["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|ip| ip["address"].as_str())
        .filter_map(|a| a.split('/').next()?.parse::<Ipv4Addr>().ok())
        .next()
        .with_context(|| format!("CNI result has no IPv4 address in ips[]: {result}"))
}

/// Creates pod `i`'s namespace and runs CNI ADD for it.
pub fn add(lab: &Lab, i: usize) -> Result<Ipv4Addr> {
    let p = &lab.pods[i];
    ip(&["netns", "add", &p.netns])?;
    ip(&["-n", &p.netns, "link", "set", "lo", "up"])?;
    result_ip(&cni(lab, p, "ADD")?)
}

/// CNI DEL, then the namespace goes, as a runtime tears a pod down.
pub fn delete(lab: &Lab, i: usize) -> Result<()> {
    let p = &lab.pods[i];
    cni(lab, p, "DEL")?;
    ip(&["netns", "del", &p.netns])?;
    Ok(())
}
