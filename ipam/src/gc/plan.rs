//! From confirmed leaks to what to release. Calico releases an address
//! only when every address of its handle is a confirmed leak (a pod with
//! one live address keeps them all), re-checks each against the latest
//! state right before releasing, and releases a deleted node's block
//! affinities once nothing on the node is in use.

use super::{judge, Allocation, Reason, Verdict, Workloads};
use std::collections::{BTreeSet, HashMap, HashSet};

/// One address to release, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub alloc: Allocation,
    pub reason: Reason,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// In allocation order.
    pub releases: Vec<Release>,
    /// Leaks held back because another address of their handle is not a
    /// confirmed leak.
    pub held_back: Vec<Allocation>,
    /// Deleted nodes nothing in use is left on once `releases` are done:
    /// their block affinities can be released (each block only if empty).
    pub nodes: Vec<String>,
}

/// The plan for one pass. `confirmed` is per allocation, as
/// [`super::Candidates::observe`] or [`super::confirmed_by_age`] say;
/// `affinity_nodes` are the nodes that hold block affinities.
pub fn plan<'a>(
    allocs: &'a [Allocation],
    verdicts: &[Verdict],
    confirmed: &[bool],
    nodes: &HashSet<String>,
    affinity_nodes: impl IntoIterator<Item = &'a str>,
) -> Plan {
    let mut all_confirmed: HashMap<&str, bool> = HashMap::new();
    for ((a, v), c) in allocs.iter().zip(verdicts).zip(confirmed) {
        *all_confirmed.entry(&a.handle).or_insert(true) &= v.is_leak() && *c;
    }
    let mut p = Plan::default();
    let mut busy: HashSet<&str> = HashSet::new();
    for ((a, v), c) in allocs.iter().zip(verdicts).zip(confirmed) {
        match v {
            Verdict::Leak { reason, .. } if *c && all_confirmed[a.handle.as_str()] => {
                p.releases.push(Release {
                    alloc: a.clone(),
                    reason: reason.clone(),
                });
                continue;
            }
            Verdict::Leak { .. } if *c => p.held_back.push(a.clone()),
            _ => {}
        }
        if let Some(n) = a.owner_node() {
            busy.insert(n);
        }
    }
    let gone: BTreeSet<&str> = affinity_nodes
        .into_iter()
        .chain(allocs.iter().filter_map(Allocation::owner_node))
        .filter(|n| !nodes.contains(*n) && !busy.contains(n))
        .collect();
    p.nodes = gone.into_iter().map(str::to_string).collect();
    p
}

/// The re-check right before releasing: each planned release judged again
/// against `nodes` and `w` as just read from the datastore. Returns the
/// releases that still stand and those found in use again. A handle with
/// any address found in use keeps all of them, as in [`plan`].
pub fn recheck(
    releases: Vec<Release>,
    nodes: &HashSet<String>,
    w: &Workloads,
) -> (Vec<Release>, Vec<Release>) {
    let (still, live): (Vec<Release>, Vec<Release>) = releases
        .into_iter()
        .partition(|r| judge(&r.alloc, nodes, w).is_leak());
    let revived: HashSet<&str> = live.iter().map(|r| r.alloc.handle.as_str()).collect();
    let still = still
        .into_iter()
        .filter(|r| !revived.contains(r.alloc.handle.as_str()))
        .collect();
    (still, live)
}
