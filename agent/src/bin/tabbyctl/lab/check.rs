//! `tabbyctl lab check`: every ordered pod pair pings, from the source
//! pod's namespace, a bounded number at a time.

use super::sh::in_ns;
use super::state::Lab;
use anyhow::{bail, Result};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Pings in flight at once: enough to finish a 6-pod lab in about a
/// second, few enough not to starve the daemons on a small machine.
const PARALLEL: usize = 8;

/// `reach[i][j]`: pod i reached pod j with one ping.
pub fn matrix(lab: &Lab) -> Vec<Vec<Option<bool>>> {
    let pods = &lab.pods;
    let pairs: Vec<(usize, usize)> = (0..pods.len())
        .flat_map(|i| {
            (0..pods.len())
                .filter(move |&j| j != i)
                .map(move |j| (i, j))
        })
        .collect();
    let results: Vec<std::sync::Mutex<Option<bool>>> =
        pairs.iter().map(|_| std::sync::Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..PARALLEL.min(pairs.len()) {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(i, j)) = pairs.get(k) else { break };
                let ok = match pods[j].address {
                    Some(dst) => in_ns(&pods[i].netns, "ping")
                        .args(["-c1", "-W1", "-q", &dst.to_string()])
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .map(|s| s.success())
                        .unwrap_or(false),
                    None => false,
                };
                *results[k].lock().unwrap_or_else(|e| e.into_inner()) = Some(ok);
            });
        }
    });
    let mut m = vec![vec![None; pods.len()]; pods.len()];
    for (k, &(i, j)) in pairs.iter().enumerate() {
        m[i][j] = *results[k].lock().unwrap_or_else(|e| e.into_inner());
    }
    m
}

pub fn check(lab: &Lab) -> Result<()> {
    if lab.pods.len() < 2 {
        bail!("lab {:?} has fewer than 2 pods: nothing to check", lab.name);
    }
    let m = matrix(lab);
    let w = lab
        .pods
        .iter()
        .map(|p| p.name.len())
        .max()
        .unwrap_or(4)
        .max(8);
    let mut out = format!("{:<w$}", "FROM\\TO");
    for p in &lab.pods {
        out.push_str(&format!(" {:>w$}", p.name));
    }
    out.push('\n');
    let (mut ok, mut total) = (0, 0);
    let mut failed = Vec::new();
    for (i, p) in lab.pods.iter().enumerate() {
        out.push_str(&format!("{:<w$}", p.name));
        for (j, q) in lab.pods.iter().enumerate() {
            let cell = match m[i][j] {
                None => "-",
                Some(true) => {
                    ok += 1;
                    total += 1;
                    "ok"
                }
                Some(false) => {
                    total += 1;
                    failed.push(format!(
                        "{} ({}, {}) -> {} ({}, {})",
                        p.name,
                        p.address.map(|a| a.to_string()).unwrap_or_default(),
                        p.node,
                        q.name,
                        q.address.map(|a| a.to_string()).unwrap_or_default(),
                        q.node
                    ));
                    "FAIL"
                }
            };
            out.push_str(&format!(" {cell:>w$}"));
        }
        out.push('\n');
    }
    print!("{out}");
    for f in &failed {
        println!("unreachable: {f}");
    }
    println!("{ok}/{total} pod pairs reachable");
    if ok != total {
        bail!("{} pod pair(s) unreachable", total - ok);
    }
    Ok(())
}
