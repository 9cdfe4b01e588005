//! `tabbyctl lab down`: everything a lab made goes, whether `lab up`
//! finished, failed half-way or its record is lost.

use super::sh;
use super::sh::step;
use super::state::{default_dir, ns_prefix, Lab};
use anyhow::{Context, Result};
use std::path::Path;
use std::time::Duration;

pub fn down(name: &str, dir: &Path) -> Result<()> {
    let lab = Lab::load(dir).ok();
    let mut stopped = 0;
    if let Some(lab) = &lab {
        // SIGTERM first so the daemons close their sessions cleanly.
        for n in &lab.nodes {
            if let Some(pid) = n.pid {
                if sh::alive(pid, "tabby-node") {
                    sh::stop(pid, "tabby-node", Duration::from_secs(3));
                    stopped += 1;
                }
            }
        }
        if let Some(pid) = lab.etcd_pid {
            if sh::alive(pid, "etcd") {
                sh::stop(pid, "etcd", Duration::from_secs(3));
                stopped += 1;
            }
        }
        if let Some(pid) = lab.bird_pid {
            if sh::alive(pid, "bird") {
                sh::stop(pid, "bird", Duration::from_secs(3));
                stopped += 1;
            }
        }
        if let Some(pid) = lab.kube_pid {
            if sh::alive(pid, "kube-standin") {
                sh::stop(pid, "kube-standin", Duration::from_secs(3));
                stopped += 1;
            }
        }
    }
    // Whatever still runs inside the lab's namespaces (a daemon the record
    // does not know, a ping) is the lab's and is killed with them.
    let prefix = ns_prefix(name);
    let namespaces: Vec<String> = sh::netns_list()?
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    for ns in &namespaces {
        for pid in sh::netns_pids(ns) {
            sh::signal(pid, "KILL");
            stopped += 1;
        }
    }
    for ns in &namespaces {
        sh::ip(&["netns", "del", ns])?;
    }
    // The directory is removed only when it is a lab's: it holds lab.json,
    // or it is the default one under /var/run/tabby-lab (--dir may point
    // anywhere).
    let removed = if Lab::file(dir).exists() || (dir == default_dir(name) && dir.exists()) {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        true
    } else {
        false
    };
    step(
        name,
        "down",
        format_args!(
            "stopped {stopped} process(es), removed {} namespace(s){}",
            namespaces.len(),
            if removed {
                format!(" and {}", dir.display())
            } else {
                String::new()
            }
        ),
    );
    Ok(())
}
