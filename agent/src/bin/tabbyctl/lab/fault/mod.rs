//! `tabbyctl lab fault inject|clear|list NAME [--node NODE]`: the failures
//! of the seeds, put into a running lab exactly as a real host would have
//! them (a foreign route, a second NIC, a lowered MTU, a firewall drop, a
//! sysctl, a pool, a conflist), so `node doctor` can be watched finding
//! them. `clear` undoes exactly what `inject` did and is safe to repeat.
//!
//! Each group of faults lives in a file of its own and lists itself in
//! [`ALL`]; a fault is two functions over the lab and the target node.

mod cni;
mod datastore;
mod host;
mod routes;
mod vxlan;

use super::sh;
use super::state::Lab;
use super::up;
use anyhow::{bail, Result};
use std::time::Duration;

/// What a fault does to node `node` (an index into `lab.nodes`).
pub type Action = fn(&mut Lab, usize) -> Result<()>;

pub struct Fault {
    pub name: &'static str,
    /// One line for `lab fault list`: what a real host would have.
    pub about: &'static str,
    pub inject: Action,
    pub clear: Action,
}

/// Every fault, by group.
pub fn all() -> Vec<&'static Fault> {
    let groups: &[&[Fault]] = &[
        routes::FAULTS,
        cni::FAULTS,
        datastore::FAULTS,
        vxlan::FAULTS,
        host::FAULTS,
    ];
    groups.iter().flat_map(|g| g.iter()).collect()
}

pub async fn run(lab: &mut Lab, action: &str, name: Option<&str>, node: &str) -> Result<()> {
    if action == "list" {
        for f in all() {
            println!("{:<22} {}", f.name, f.about);
        }
        return Ok(());
    }
    let Some(name) = name else {
        bail!("lab fault {action}: name a fault (see `tabbyctl lab fault list`)");
    };
    let Some(fault) = all().into_iter().find(|f| f.name == name) else {
        bail!(
            "no fault {name:?}; expected one of: {}",
            all().iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
        );
    };
    let i = node_index(lab, node)?;
    let pid_before = lab.nodes[i].pid;
    if action == "inject" {
        (fault.inject)(lab, i)?;
    } else {
        (fault.clear)(lab, i)?;
    }
    lab.save()?;
    // A fault that restarted tabby-node returns once it serves again.
    if lab.nodes[i].pid != pid_before
        && lab.nodes[i].pid.is_some_and(|p| sh::alive(p, "tabby-node"))
    {
        up::wait_ready(lab, i).await?;
    }
    sh::step(
        &lab.name.clone(),
        node,
        format_args!("fault {name}: {action}ed"),
    );
    Ok(())
}

pub fn node_index(lab: &Lab, node: &str) -> Result<usize> {
    lab.node(node)?;
    Ok(lab
        .nodes
        .iter()
        .position(|n| n.name == node)
        .unwrap_or_default())
}

/// Restarts node `i`'s tabby-node with `set` added to (or replacing in)
/// its environment and `unset` removed: how a changed DaemonSet env
/// reaches a real node. `lab fault clear` calls it with the inverse.
pub fn restart_with_env(
    lab: &mut Lab,
    i: usize,
    set: &[(&str, &str)],
    unset: &[&str],
) -> Result<()> {
    if let Some(p) = lab.nodes[i].pid {
        sh::stop(p, "tabby-node", Duration::from_secs(10));
    }
    let env = &mut lab.nodes[i].env;
    env.retain(|kv| {
        let key = kv.split('=').next().unwrap_or_default();
        !unset.contains(&key) && !set.iter().any(|(k, _)| *k == key)
    });
    env.extend(set.iter().map(|(k, v)| format!("{k}={v}")));
    up::start_node(lab, i)
}

/// The value of `key` in node `i`'s tabby-node environment.
pub fn env_of<'a>(lab: &'a Lab, i: usize, key: &str) -> Option<&'a str> {
    lab.nodes[i]
        .env
        .iter()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}
