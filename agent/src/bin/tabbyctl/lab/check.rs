//! `tabbyctl lab check`: every ordered pod pair pings, from the source
//! pod's namespace, a bounded number at a time, over each family the lab
//! has (`ping -4`, `ping -6`): one matrix and one `IPv4: N/M pod pairs
//! reachable` line per family.

use super::sh::in_ns;
use super::state::{Lab, Pod};
use anyhow::{bail, Result};
use std::net::IpAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Pings in flight at once: enough to finish a 6-pod lab in about a
/// second, few enough not to starve the daemons on a small machine.
const PARALLEL: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    fn addr(self, p: &Pod) -> Option<IpAddr> {
        match self {
            Family::V4 => p.address.map(IpAddr::V4),
            Family::V6 => p.address6.map(IpAddr::V6),
        }
    }
}

/// The families `lab check` pings over, IPv4 first.
pub fn families(lab: &Lab) -> Vec<Family> {
    let f = lab.ip_family;
    [(f.has_v4(), Family::V4), (f.has_v6(), Family::V6)]
        .into_iter()
        .filter_map(|(has, fam)| has.then_some(fam))
        .collect()
}

/// `reach[i][j]`: pod i reached pod j's `fam` address with one ping.
pub fn matrix(lab: &Lab, fam: Family) -> Vec<Vec<Option<bool>>> {
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
    let flag = match fam {
        Family::V4 => "-4",
        Family::V6 => "-6",
    };
    std::thread::scope(|s| {
        for _ in 0..PARALLEL.min(pairs.len()) {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(i, j)) = pairs.get(k) else { break };
                let ok = match fam.addr(&pods[j]) {
                    Some(dst) => in_ns(&pods[i].netns, "ping")
                        .args([flag, "-c1", "-W1", "-q", &dst.to_string()])
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

/// One family's matrix as printed, and (reachable, pairs).
fn render(lab: &Lab, fam: Family, m: &[Vec<Option<bool>>]) -> (String, usize, usize) {
    let addr = |p: &Pod| fam.addr(p).map(|a| a.to_string()).unwrap_or_default();
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
                        addr(p),
                        p.node,
                        q.name,
                        addr(q),
                        q.node
                    ));
                    "FAIL"
                }
            };
            out.push_str(&format!(" {cell:>w$}"));
        }
        out.push('\n');
    }
    for f in &failed {
        out.push_str(&format!("unreachable: {f}\n"));
    }
    out.push_str(&format!(
        "{}: {ok}/{total} pod pairs reachable\n",
        fam.name()
    ));
    (out, ok, total)
}

pub fn check(lab: &Lab) -> Result<()> {
    if lab.pods.len() < 2 {
        bail!("lab {:?} has fewer than 2 pods: nothing to check", lab.name);
    }
    let mut bad = Vec::new();
    for (k, fam) in families(lab).into_iter().enumerate() {
        let (out, ok, total) = render(lab, fam, &matrix(lab, fam));
        if k > 0 {
            println!();
        }
        print!("{out}");
        if ok != total {
            bad.push(format!("{} over {}", total - ok, fam.name()));
        }
    }
    if !bad.is_empty() {
        bail!("pod pair(s) unreachable: {}", bad.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::family::IpFamily;
    use super::super::state::{DatastoreKind, Encapsulation, Plan, Topology};
    use super::*;

    fn lab(ip_family: IpFamily) -> Lab {
        let plan = Plan {
            nodes: 2,
            subnets: 1,
            pods_per_node: 1,
            encapsulation: Encapsulation::None,
            datastore: DatastoreKind::Sqlite,
            topology: Topology::Mesh,
            ip_family,
        };
        plan.layout("t", std::path::Path::new("/tmp/t"))
    }

    #[test]
    fn one_matrix_per_family_with_its_summary() {
        assert_eq!(families(&lab(IpFamily::Ipv4)), [Family::V4]);
        assert_eq!(families(&lab(IpFamily::Ipv6)), [Family::V6]);
        let mut l = lab(IpFamily::Dual);
        assert_eq!(families(&l), [Family::V4, Family::V6]);
        l.pods[0].address6 = Some("fd30::1".parse().unwrap());
        l.pods[1].address6 = Some("fd30::41".parse().unwrap());
        let m = vec![vec![None, Some(true)], vec![Some(false), None]];
        let (out, ok, total) = render(&l, Family::V6, &m);
        assert_eq!((ok, total), (1, 2));
        assert!(out.ends_with("IPv6: 1/2 pod pairs reachable\n"), "{out}");
        assert!(
            out.contains("unreachable: pod-2-1 (fd30::41, node-2) -> pod-1-1 (fd30::1, node-1)"),
            "{out}"
        );
    }
}
