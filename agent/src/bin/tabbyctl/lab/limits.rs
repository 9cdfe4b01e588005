//! The host's neighbour-table limits for a lab of this size. Every lab
//! node is a network namespace of this host and the kernel's ARP/NDP tables
//! are shared by all of them, while only the host's namespace, where `lab
//! up` runs, can raise them (what was measured is in
//! `tabby_felix_lite::neigh_limits`). So the lab sizes them before it
//! starts any node, with felix-lite's rule, and never lowers them; a lab of
//! a few nodes needs nothing and changes nothing.

use super::sh::step;
use super::state::Lab;
use anyhow::{Context, Result};
use tabby_felix_lite::neigh_limits::{self, Family, Thresholds};
use tabby_felix_lite::netlink::{ntable, NlSocket};

/// Entries a lab of `nodes` nodes and `pods` pods brings into one table:
/// every node resolves every other node's underlay address and the
/// router's, and the router every node's (N² + N); every node holds a
/// permanent VTEP entry for every other node (N(N-1), counted although the
/// kernel exempts them, as felix-lite does); two per pod.
pub fn demand(nodes: usize, pods: usize) -> u64 {
    let n = nodes as u64;
    n * n + n + n * n.saturating_sub(1) + 2 * pods as u64
}

/// Raises the limits of `families`' tables where this lab needs it,
/// saying so.
pub fn ensure(lab: &Lab, families: &[Family]) -> Result<()> {
    let want = demand(lab.nodes.len(), lab.pods.len());
    let mut sock = NlSocket::open().context("opening a netlink socket")?;
    let tables = ntable::dump_tables(&mut sock).context("reading the kernel's neighbour tables")?;
    for &family in families {
        let Some(t) = tables.iter().find(|t| Family::of(t) == family) else {
            continue;
        };
        let now = Thresholds::of(t);
        let Some(target) = neigh_limits::size(now, want) else {
            continue;
        };
        let changes = neigh_limits::raise(family, now, target, want)
            .context("the lab's nodes would overflow the host's neighbour table")?;
        step(
            &lab.name,
            "host",
            format_args!(
                "raised the {} neighbour table limits for {} nodes and {} pods (about {want} \
                 entries, in one table shared by every namespace on this host): {}",
                family.label(),
                lab.nodes.len(),
                lab.pods.len(),
                neigh_limits::describe(&changes)
            ),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_labs_leave_the_host_alone_and_fifty_nodes_get_room() {
        let def = Thresholds::KERNEL_DEFAULT;
        // The CI labs: 3-4 nodes, 2 pods each.
        assert_eq!(demand(4, 8), 16 + 4 + 12 + 16);
        assert_eq!(neigh_limits::size(def, demand(4, 8)), None);
        // The one that collapsed: 50 nodes on one subnet.
        assert_eq!(demand(50, 100), 2500 + 50 + 2450 + 200);
        let t = neigh_limits::size(def, demand(50, 100)).expect("a raise");
        assert_eq!(
            (t.gc_thresh1, t.gc_thresh2, t.gc_thresh3),
            (1536, 6144, 12288)
        );
    }
}
