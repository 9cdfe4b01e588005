//! BGP configuration faults, written to the datastore as an operator's
//! `calicoctl apply` would.
//!
//! `as-mismatch`: the node's Node gets `spec.bgp.asNumber: 65001` while its
//! tabby-node keeps announcing the AS it started with (it reads its own AS
//! at start). Every other node now expects 65001 from it and refuses its
//! OPEN with a bad peer AS NOTIFICATION (2/2) — the mismatch a Calico mesh
//! shows when one node's AS is changed and its BGP daemon does not follow.
//! Clear removes the asNumber again (lab nodes have none: 64512 from the
//! default), which matches what the node announces.

use super::super::sh::{in_ns, run};
use super::super::state::Lab;
use super::Fault;
use anyhow::{bail, Context, Result};
use serde_yaml::Value;
use std::io::Write;
use std::process::Stdio;

pub const MISMATCH_AS: u32 = 65001;

pub const FAULTS: &[Fault] = &[Fault {
    name: "as-mismatch",
    about: "the node's Node asNumber changed to 65001 while its tabby-node announces its old AS",
    inject: |lab, i| set_as(lab, i, Some(MISMATCH_AS)),
    clear: |lab, i| set_as(lab, i, None),
}];

/// `tabbyctl ARGS` with the lab's datastore, from the fabric namespace
/// (where an etcdv3 lab's etcd is reachable), feeding `stdin`.
fn tabbyctl(lab: &Lab, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let mut c = in_ns(&lab.fabric.netns, "env");
    for (k, v) in lab.datastore_env() {
        c.arg(format!("{k}={v}"));
    }
    c.arg(std::env::current_exe()?).args(args);
    let Some(input) = stdin else {
        let out = run(&mut c)?;
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    };
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting tabbyctl")?;
    child
        .stdin
        .take()
        .context("tabbyctl's stdin")?
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "tabbyctl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Sets (or with None removes) the Node's `spec.bgp.asNumber`.
fn set_as(lab: &mut Lab, i: usize, asn: Option<u32>) -> Result<()> {
    let name = lab.nodes[i].name.clone();
    let text = tabbyctl(lab, &["get", "node", &name, "-o", "yaml"], None)?;
    let mut doc: Value =
        serde_yaml::from_str(&text).with_context(|| format!("Node {name} as YAML"))?;
    let bgp = doc
        .get_mut("spec")
        .and_then(|s| s.get_mut("bgp"))
        .and_then(Value::as_mapping_mut)
        .with_context(|| format!("Node {name} has no spec.bgp"))?;
    let key = Value::from("asNumber");
    match asn {
        Some(a) => {
            bgp.insert(key, Value::from(u64::from(a)));
        }
        None => {
            if bgp.remove(&key).is_none() {
                return Ok(());
            }
        }
    }
    // The stored revision would make the apply a compare-and-swap: a
    // plain apply is what an operator does.
    if let Some(m) = doc.get_mut("metadata").and_then(Value::as_mapping_mut) {
        m.remove(Value::from("resourceVersion"));
    }
    tabbyctl(
        lab,
        &["apply", "-f", "-"],
        Some(&serde_yaml::to_string(&doc)?),
    )?;
    Ok(())
}
