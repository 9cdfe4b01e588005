//! Sizing the kernel's neighbour tables (`arp_cache`, `ndisc_cache`) for
//! what Tabby brings into them.
//!
//! The kernel refuses a new ARP/NDP entry once the table holds
//! `gc_thresh3` entries that garbage collection may remove (`neighbour:
//! arp_cache: neighbor table overflow!`, `ping: sendmsg: No buffer space
//! available`); above `gc_thresh2` it runs a forced collection at most
//! every 5 s that evicts entries still in use; below `gc_thresh1` the
//! periodic collection leaves the table alone. Defaults: 128/512/1024.
//!
//! What was measured on this kernel (6.18):
//! - The tables are host-wide: one `arp_cache` for every network
//!   namespace, so 50 lab nodes share one `gc_thresh3`.
//! - `/proc/sys/net/ipv4/neigh/default` (and `ipv6`) exists only in the
//!   host's namespace: inside `ip netns exec` it is missing (only the
//!   per-device directories are there), and `RTM_SETNEIGHTBL` with a
//!   threshold is refused there too (`ip ntable change name arp_cache
//!   thresh3 N` fails with ENOENT). The table dump (`ip ntable show`,
//!   [`crate::netlink::ntable`]) answers in every namespace with the
//!   host's figures. So a tabby-node in a lab namespace can read the limits
//!   but only something in the host's namespace can raise them:
//!   `tabbyctl lab up` does, before it starts the nodes. felix-lite does
//!   not `setns` into the host's namespace to get round this: the
//!   dataplane writes only in the namespace it was given. It reports the
//!   `sysctl -w` to run on the host instead.
//! - Permanent entries added over netlink (Tabby's VTEP ARP/NDP entries)
//!   are exempt from the garbage-collection count since Linux 4.19 (they
//!   are in `entries` but never count against `gc_thresh3`). What
//!   overflowed the 50-node lab was the dynamic ARP the VTEPs and peers
//!   bring with them: every node resolving every other node's underlay
//!   address.
//!
//! The sizing rule ([`demand4`], [`size`]): Tabby's demand is its
//! permanent VTEP entries (counted although exempt: older kernels count
//! them, and the cap costs nothing until entries exist), plus one dynamic
//! entry per distinct underlay next hop (each VTEP's node address and each
//! native route's gateway: worst case all on-link, as in a one-subnet
//! cluster), plus two per local workload (the host's entry for the pod and
//! the pod's own for its gateway, in its namespace but the same table).
//! The limits fit while `gc_thresh2` ≥ demand (forced collection would
//! otherwise evict Tabby's own live entries) and `gc_thresh3` ≥ demand +
//! 512 (room for the rest of the host). When they don't, all three are
//! raised to the kernel's own proportions 1:4:8 around `gc_thresh3` =
//! 2 × demand + 1024 rounded up to a multiple of 1024, so a growing cluster
//! raises them again only after it doubled; a value already higher is
//! kept (never lowered).

use crate::model::{DesiredState, Path, Path6};
use crate::netlink::ntable::NeighTable;
use crate::sysctl::{self, Change, SysctlError};
use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::net::IpAddr;

/// Room under `gc_thresh3` kept for everything on the host that is not
/// Tabby's.
pub const HEADROOM: u64 = 512;
/// `gc_thresh3` is raised in steps of this many entries.
const STEP: u64 = 1024;
/// The kernel keeps the thresholds in an `int`.
const MAX: u64 = i32::MAX as u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];

    fn ip(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }

    /// "IPv4" / "IPv6".
    pub fn label(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    /// The kernel's name for the table: `arp_cache` / `ndisc_cache`.
    pub fn table(self) -> &'static str {
        match self {
            Family::V4 => "arp_cache",
            Family::V6 => "ndisc_cache",
        }
    }

    /// `net.ipv4.neigh.default.gc_thresh3`, as `sysctl` prints it.
    pub fn key(self, leaf: &str) -> String {
        format!("net.{}.neigh.default.{leaf}", self.ip())
    }

    pub fn of(table: &NeighTable) -> Family {
        if table.ipv6 {
            Family::V6
        } else {
            Family::V4
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Thresholds {
    pub gc_thresh1: u32,
    pub gc_thresh2: u32,
    pub gc_thresh3: u32,
}

impl Thresholds {
    pub const KERNEL_DEFAULT: Thresholds = Thresholds {
        gc_thresh1: 128,
        gc_thresh2: 512,
        gc_thresh3: 1024,
    };

    pub fn of(table: &NeighTable) -> Thresholds {
        Thresholds {
            gc_thresh1: table.gc_thresh1,
            gc_thresh2: table.gc_thresh2,
            gc_thresh3: table.gc_thresh3,
        }
    }

    /// (`gc_thresh1`, value) … in the order they are raised: the hard
    /// limit first, so the three stay ordered after every write.
    fn leaves(&self) -> [(&'static str, u32); 3] {
        [
            ("gc_thresh3", self.gc_thresh3),
            ("gc_thresh2", self.gc_thresh2),
            ("gc_thresh1", self.gc_thresh1),
        ]
    }

    /// `net.ipv4.neigh.default.gc_thresh1=N net.ipv4…` for `sysctl -w`.
    pub fn sysctl_args(&self, family: Family) -> String {
        let mut l = self.leaves();
        l.reverse();
        l.iter()
            .map(|(leaf, v)| format!("{}={v}", family.key(leaf)))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// `128/512/1024`.
    pub fn slashed(&self) -> String {
        format!(
            "{}/{}/{}",
            self.gc_thresh1, self.gc_thresh2, self.gc_thresh3
        )
    }
}

/// Whether `demand` entries fit under `current`: None when they do, else
/// what to raise the thresholds to (see the module doc; never lower than
/// `current`).
pub fn size(current: Thresholds, demand: u64) -> Option<Thresholds> {
    let fits = demand <= u64::from(current.gc_thresh2)
        && demand + HEADROOM <= u64::from(current.gc_thresh3);
    if fits {
        return None;
    }
    let want3 = (2 * demand + STEP)
        .div_ceil(STEP)
        .saturating_mul(STEP)
        .min(MAX);
    let raise = |cur: u32, want: u64| cur.max(want as u32);
    let target = Thresholds {
        gc_thresh1: raise(current.gc_thresh1, want3 / 8),
        gc_thresh2: raise(current.gc_thresh2, want3 / 2),
        gc_thresh3: raise(current.gc_thresh3, want3),
    };
    (target != current).then_some(target)
}

/// IPv4 entries Tabby's desired state brings into `arp_cache` with
/// `workloads` local pods (the workload list is kept apart from the state
/// by the reconciler, hence the count).
pub fn demand4(state: &DesiredState, workloads: usize) -> u64 {
    let mut underlay: BTreeSet<IpAddr> = BTreeSet::new();
    let mut permanent = 0;
    if state.vxlan.is_some() {
        permanent = state.vteps.len();
        underlay.extend(state.vteps.iter().map(|v| IpAddr::V4(v.node_ip)));
    }
    underlay.extend(state.routes.iter().filter_map(|r| match r.path {
        Path::Native { gateway } => Some(IpAddr::V4(gateway)),
        _ => None,
    }));
    (permanent + underlay.len() + 2 * workloads) as u64
}

/// The same for IPv6 and `ndisc_cache`.
pub fn demand6(state: &DesiredState, workloads6: usize) -> u64 {
    let mut underlay: BTreeSet<IpAddr> = BTreeSet::new();
    let mut permanent = 0;
    if state.vxlan6.is_some() {
        permanent = state.vteps6.len();
        underlay.extend(state.vteps6.iter().map(|v| IpAddr::V6(v.node_ip)));
    }
    underlay.extend(state.routes6.iter().filter_map(|r| match r.path {
        Path6::Native { gateway } => Some(IpAddr::V6(gateway)),
        _ => None,
    }));
    (permanent + underlay.len() + 2 * workloads6) as u64
}

/// Why the limits could not be raised, worded for a person: the need,
/// the cause and the `sysctl -w` that fixes it on the host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RaiseError {
    /// The first sysctl that could not be written.
    pub key: String,
    pub message: String,
}

/// Writes the thresholds that `to` raises above `from` (hard limit first),
/// in the calling thread's network namespace. Returns what changed; an
/// error names the sysctl that failed and the fix.
pub fn raise(
    family: Family,
    from: Thresholds,
    to: Thresholds,
    demand: u64,
) -> Result<Vec<Change>, RaiseError> {
    let mut changes = Vec::new();
    let old = from.leaves();
    for ((leaf, new), (_, was)) in to.leaves().into_iter().zip(old) {
        if new <= was {
            continue;
        }
        let parts = ["net", family.ip(), "neigh", "default", leaf];
        if let Err(e) = sysctl::write(&parts, &new.to_string()) {
            return Err(RaiseError {
                key: family.key(leaf),
                message: format!(
                    "the {} neighbour table ({}) is too small for {demand} entries: \
                     gc_thresh1/2/3 are {}, need {}; {}; run on the host: sysctl -w {}",
                    family.label(),
                    family.table(),
                    from.slashed(),
                    to.slashed(),
                    why(family, &e),
                    to.sysctl_args(family)
                ),
            });
        }
        changes.push(Change {
            key: family.key(leaf),
            old: was.to_string(),
            new: new.to_string(),
        });
    }
    Ok(changes)
}

fn why(family: Family, e: &SysctlError) -> String {
    let SysctlError::Io { key, source, .. } = e else {
        return e.to_string();
    };
    match source.kind() {
        ErrorKind::NotFound => format!(
            "{key} cannot be written from here: the neighbour tables are host-wide and \
             /proc/sys/net/{}/neigh/default exists only in the host's network namespace",
            family.ip()
        ),
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => format!(
            "{key} cannot be written: /proc/sys is read-only here (an unprivileged container?): \
             {source}"
        ),
        _ => format!("writing {key}: {source}"),
    }
}

/// `net.ipv4.neigh.default.gc_thresh3 1024 → 3072, …`: one log line's worth.
pub fn describe(changes: &[Change]) -> String {
    changes
        .iter()
        .map(|c| format!("{} {} → {}", c.key, c.old, c.new))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BlockRoute, LocalVxlan, Vtep, Workload};
    use std::net::Ipv4Addr;

    const DEF: Thresholds = Thresholds::KERNEL_DEFAULT;

    fn th(a: u32, b: u32, c: u32) -> Thresholds {
        Thresholds {
            gc_thresh1: a,
            gc_thresh2: b,
            gc_thresh3: c,
        }
    }

    #[test]
    fn a_node_with_a_few_hundred_entries_fits_the_defaults() {
        assert_eq!(size(DEF, 0), None);
        // 49 peers over VXLAN: 49 permanent + 49 underlay.
        assert_eq!(size(DEF, 98), None);
        assert_eq!(size(DEF, 512), None, "exactly the soft limit, 512 to spare");
    }

    #[test]
    fn past_the_soft_limit_all_three_are_raised_in_the_kernels_proportions() {
        // 2 × 513 + 1024 = 2050, rounded up to 3072.
        assert_eq!(size(DEF, 513), Some(th(384, 1536, 3072)));
        // 1000 VTEPs and their underlay neighbours.
        let t = size(DEF, 2000).unwrap();
        assert_eq!(t, th(640, 2560, 5120));
        assert!(2000 <= t.gc_thresh2 && 2000 + 512 <= t.gc_thresh3);
        // What was raised fits, and keeps fitting until the demand grows
        // past the new soft limit.
        assert_eq!(size(t, 2000), None);
        assert_eq!(size(t, 2560), None);
        assert!(size(t, 2561).is_some());
    }

    #[test]
    fn a_value_an_operator_set_higher_is_never_lowered() {
        // Hard limit high already, soft limit left at its default.
        let t = size(th(50_000, 512, 100_000), 600).unwrap();
        assert_eq!(t, th(50_000, 1536, 100_000));
        // A hard limit too close to the demand alone is a reason too.
        assert_eq!(size(th(128, 4096, 1024), 700), Some(th(384, 4096, 3072)));
    }

    #[test]
    fn huge_demands_stop_at_the_kernels_int() {
        let t = size(DEF, u64::from(u32::MAX)).unwrap();
        assert_eq!(t.gc_thresh3, i32::MAX as u32);
        assert_eq!(t.gc_thresh2, i32::MAX as u32 / 2);
    }

    #[test]
    fn the_fix_spells_all_three_sysctls_low_to_high() {
        assert_eq!(
            th(384, 1536, 3072).sysctl_args(Family::V6),
            "net.ipv6.neigh.default.gc_thresh1=384 net.ipv6.neigh.default.gc_thresh2=1536 \
             net.ipv6.neigh.default.gc_thresh3=3072"
        );
    }

    fn vtep(i: u8, node_ip: [u8; 4]) -> Vtep {
        Vtep {
            node: format!("n{i}"),
            node_ip: node_ip.into(),
            tunnel_ip: Ipv4Addr::new(10, 244, i, 0),
            mac: [0x66, 0, 0, 0, 0, i],
        }
    }

    #[test]
    fn demand_counts_vteps_their_distinct_underlay_hops_and_two_per_pod() {
        let mut s = DesiredState {
            vteps: vec![vtep(1, [192, 168, 0, 1]), vtep(2, [192, 168, 0, 2])],
            routes: vec![
                BlockRoute {
                    cidr: "10.244.1.0/26".parse().unwrap(),
                    path: Path::Native {
                        gateway: Ipv4Addr::new(192, 168, 0, 1),
                    },
                    node: "n1".into(),
                },
                BlockRoute {
                    cidr: "10.244.3.0/26".parse().unwrap(),
                    path: Path::Native {
                        gateway: Ipv4Addr::new(192, 168, 0, 3),
                    },
                    node: "n3".into(),
                },
            ],
            workloads: vec![Workload {
                ip: Ipv4Addr::new(10, 244, 0, 5),
                host_interface: "cali1".into(),
                workload_id: "w".into(),
            }],
            ..DesiredState::default()
        };
        // Without vxlan.calico the VTEPs are not installed: two gateways.
        assert_eq!(demand4(&s, 1), 2 + 2);
        s.vxlan = Some(LocalVxlan {
            parent: "eth0".into(),
            local_ip: Ipv4Addr::new(192, 168, 0, 9),
            tunnel_ip: Ipv4Addr::new(10, 244, 0, 0),
            mac: [0x66, 0, 0, 0, 0, 9],
            mtu: 0,
            disable_tx_checksum_offload: false,
        });
        // 2 permanent + {.1, .2, .3} + 2 for the pod.
        assert_eq!(demand4(&s, 1), 2 + 3 + 2);
        assert_eq!(demand6(&s, 0), 0);
    }

    #[test]
    fn the_error_names_the_sysctl_the_need_and_the_host_fix() {
        let e = SysctlError::Io {
            key: "net.ipv4.neigh.default.gc_thresh3".into(),
            op: "write",
            path: "/proc/sys/net/ipv4/neigh/default/gc_thresh3".into(),
            source: std::io::Error::from(ErrorKind::NotFound),
        };
        let w = why(Family::V4, &e);
        assert!(w.contains("host's network namespace"), "{w}");
        let ro = SysctlError::Io {
            key: "k".into(),
            op: "write",
            path: "p".into(),
            source: std::io::Error::from(ErrorKind::ReadOnlyFilesystem),
        };
        assert!(why(Family::V4, &ro).contains("read-only"));
    }
}
