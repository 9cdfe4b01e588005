//! Pods: a namespace each, wired by calling the `tabby` CNI plugin exactly
//! as a container runtime does (CNI_* environment, the network's config on
//! stdin), from the node's namespace.

use super::sh::{self, in_ns, ip};
use super::state::{DatastoreKind, Lab, Pod};
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
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
    // As the conflist `lab up` installs on the node (`cni::install`).
    let (v4, v6) = lab.ip_family.assign();
    conf["ipam"]["assign_ipv4"] = v4.into();
    conf["ipam"]["assign_ipv6"] = v6.into();
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

/// A pod's addresses, one per family the lab has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Addrs {
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
}

impl std::fmt::Display for Addrs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v: Vec<String> = self
            .v4
            .map(IpAddr::V4)
            .into_iter()
            .chain(self.v6.map(IpAddr::V6))
            .map(|a| a.to_string())
            .collect();
        f.write_str(&v.join(", "))
    }
}

impl Pod {
    pub fn set_addrs(&mut self, a: Addrs) {
        self.address = a.v4;
        self.address6 = a.v6;
    }
}

/// The CNI result's addresses: one of each family `lab` gives its pods.
fn result_ips(lab: &Lab, result: &str) -> Result<Addrs> {
    let v: serde_json::Value = serde_json::from_str(result)
        .with_context(|| format!("CNI result is not JSON: {result}"))?;
    let ips: Vec<IpAddr> = v["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|ip| ip["address"].as_str())
        .filter_map(|a| a.split('/').next()?.parse().ok())
        .collect();
    let a = Addrs {
        v4: ips.iter().find_map(|a| match a {
            IpAddr::V4(a) => Some(*a),
            IpAddr::V6(_) => None,
        }),
        v6: ips.iter().find_map(|a| match a {
            IpAddr::V6(a) => Some(*a),
            IpAddr::V4(_) => None,
        }),
    };
    let f = lab.ip_family;
    if f.has_v4() && a.v4.is_none() {
        bail!("CNI result has no IPv4 address in ips[] ({f} lab): {result}");
    }
    if f.has_v6() && a.v6.is_none() {
        bail!("CNI result has no IPv6 address in ips[] ({f} lab): {result}");
    }
    Ok(a)
}

/// Creates pod `i`'s namespace and runs CNI ADD for it.
pub fn add(lab: &Lab, i: usize) -> Result<Addrs> {
    let p = &lab.pods[i];
    ip(&["netns", "add", &p.netns])?;
    ip(&["-n", &p.netns, "link", "set", "lo", "up"])?;
    result_ips(lab, &cni(lab, p, "ADD")?)
}

/// CNI DEL, then the namespace goes, as a runtime tears a pod down.
pub fn delete(lab: &Lab, i: usize) -> Result<()> {
    let p = &lab.pods[i];
    cni(lab, p, "DEL")?;
    ip(&["netns", "del", &p.netns])?;
    Ok(())
}
