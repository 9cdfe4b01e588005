//! The host's neighbour-table limits for a lab of this size. Every lab
//! node is a network namespace of this host and the kernel's ARP/NDP tables
//! are shared by all of them, while only the host's namespace, where `lab
//! up` runs, can raise them (what was measured is in
//! `tabby_felix_lite::neigh_limits`). So the lab sizes them before it
//! starts any node, with felix-lite's rule, and never lowers them; a lab of
//! a few nodes needs nothing and changes nothing.

use super::sh::step;
use super::state::{DatastoreKind, Lab};
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

/// The host-wide per-user inotify limit: every tabby-node of a SQLite lab
/// follows the database's wake-up sidecar with one instance (see the
/// SQLite store's `sqlite_wake`), and past the limit (128 by default) a
/// node falls back to the 2 s safety poll. A lab that would leave less
/// than `INOTIFY_SPARE` for what else the host runs (systemd, containerd,
/// editors) raises it to its nodes + `INOTIFY_HEADROOM`; smaller labs
/// change nothing.
const INOTIFY_LIMIT: &str = "/proc/sys/fs/inotify/max_user_instances";
const INOTIFY_SPARE: u64 = 64;
const INOTIFY_HEADROOM: u64 = 128;

/// The limit a lab of `nodes` SQLite nodes needs, when `now` is short of it.
pub fn inotify_target(now: u64, nodes: usize) -> Option<u64> {
    let nodes = nodes as u64;
    (nodes + INOTIFY_SPARE > now).then_some(nodes + INOTIFY_HEADROOM)
}

/// Raises `fs.inotify.max_user_instances` for a SQLite lab where its size
/// needs it (never lowers it), saying so.
pub fn ensure_inotify(lab: &Lab) -> Result<()> {
    if lab.datastore != DatastoreKind::Sqlite {
        return Ok(());
    }
    let now: u64 = std::fs::read_to_string(INOTIFY_LIMIT)
        .with_context(|| format!("reading {INOTIFY_LIMIT}"))?
        .trim()
        .parse()
        .with_context(|| format!("{INOTIFY_LIMIT}: expected a number"))?;
    let Some(want) = inotify_target(now, lab.nodes.len()) else {
        return Ok(());
    };
    std::fs::write(INOTIFY_LIMIT, want.to_string())
        .with_context(|| format!("raising {INOTIFY_LIMIT} to {want} (root?)"))?;
    step(
        &lab.name,
        "host",
        format_args!(
            "raised fs.inotify.max_user_instances from {now} to {want}: every tabby-node \
             of a SQLite lab takes one for the datastore's wake-up"
        ),
    );
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

    #[test]
    fn inotify_is_raised_for_big_sqlite_labs_only_and_never_lowered() {
        // The kernel's default holds the CI labs and 50 nodes.
        assert_eq!(inotify_target(128, 3), None);
        assert_eq!(inotify_target(128, 50), None);
        assert_eq!(inotify_target(128, 100), Some(228));
        assert_eq!(inotify_target(150, 100), Some(228));
        assert_eq!(inotify_target(1024, 100), None);
    }
}
