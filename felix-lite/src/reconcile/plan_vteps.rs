//! The VTEP part of [`super::plan`] (re-exported there): which VTEPs to
//! program, and kernel ARP/NDP and FDB entries vs desired → the writes.

use super::ItemError;
use crate::model::Vtep;
use crate::netlink::neigh::{KernelFdb, KernelNeigh};
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

/// Checks VTEPs and returns the ones to program, keyed for the ARP
/// (tunnel IP → MAC) and FDB (MAC → node IP) tables.
pub fn desired_vteps(vteps: &[Vtep]) -> (Vec<Vtep>, Vec<ItemError>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut ips = HashMap::new();
    let mut macs = HashMap::new();
    for v in vteps {
        let label = format!(
            "VTEP of node {:?} ({} mac {})",
            v.node,
            v.tunnel_ip,
            fmt_mac(&v.mac)
        );
        let problem = if v.mac[0] & 1 == 1 || v.mac == [0; 6] {
            Some("mac must be a unicast, non-zero address".to_string())
        } else if v.node_ip.is_unspecified() || v.node_ip.is_multicast() || v.node_ip.is_broadcast()
        {
            Some(format!("node_ip {} is not a unicast address", v.node_ip))
        } else if let Some(other) = ips.get(&v.tunnel_ip) {
            Some(format!(
                "tunnel_ip {} is already used by node {other:?}",
                v.tunnel_ip
            ))
        } else {
            macs.get(&v.mac)
                .map(|other| format!("mac is already used by node {other:?}"))
        };
        if let Some(p) = problem {
            errors.push(ItemError::new(&label, p));
            continue;
        }
        ips.insert(v.tunnel_ip, v.node.clone());
        macs.insert(v.mac, v.node.clone());
        out.push(v.clone());
    }
    (out, errors)
}

pub use crate::derive::fmt_mac;

/// ARP entries to set (tunnel IP, MAC) and permanent ones to delete.
/// Non-permanent entries are the kernel's own and left alone.
pub fn diff_neighbours(
    vteps: &[Vtep],
    kernel: &[KernelNeigh],
) -> (Vec<(Ipv4Addr, [u8; 6])>, Vec<Ipv4Addr>) {
    let want: Vec<(Ipv4Addr, [u8; 6])> = vteps.iter().map(|v| (v.tunnel_ip, v.mac)).collect();
    diff_neighbours_of(&want, kernel)
}

/// [`diff_neighbours`] for either family: `vteps` are (tunnel IP, MAC).
pub fn diff_neighbours_of<A: Copy + Eq + std::hash::Hash>(
    vteps: &[(A, [u8; 6])],
    kernel: &[KernelNeigh<A>],
) -> (Vec<(A, [u8; 6])>, Vec<A>) {
    let have: HashMap<A, &KernelNeigh<A>> = kernel.iter().map(|n| (n.ip, n)).collect();
    let want: HashMap<A, [u8; 6]> = vteps.iter().copied().collect();
    let set = vteps
        .iter()
        .filter(|(ip, mac)| !matches!(have.get(ip), Some(n) if n.permanent && n.mac == Some(*mac)))
        .copied()
        .collect();
    let delete = kernel
        .iter()
        .filter(|n| n.permanent && !want.contains_key(&n.ip))
        .map(|n| n.ip)
        .collect();
    (set, delete)
}

/// (VTEP MAC, remote node IP).
pub type FdbEntry = ([u8; 6], Ipv4Addr);

/// FDB entries to set (MAC, node IP) and (MAC, dst) pairs to delete, so each
/// VTEP MAC ends with exactly one permanent entry to its node.
pub fn diff_fdb(vteps: &[Vtep], kernel: &[KernelFdb]) -> (Vec<FdbEntry>, Vec<FdbEntry>) {
    let want: Vec<FdbEntry> = vteps.iter().map(|v| (v.mac, v.node_ip)).collect();
    diff_fdb_of(&want, kernel)
}

/// [`diff_fdb`] for either family: `vteps` are (MAC, node IP).
#[allow(clippy::type_complexity)]
pub fn diff_fdb_of<A: Copy + Eq>(
    vteps: &[([u8; 6], A)],
    kernel: &[KernelFdb<A>],
) -> (Vec<([u8; 6], A)>, Vec<([u8; 6], A)>) {
    let want: BTreeMap<[u8; 6], A> = vteps.iter().copied().collect();
    let mut set = Vec::new();
    let mut delete = Vec::new();
    for (mac, dst) in &want {
        let ok = kernel
            .iter()
            .any(|f| f.mac == *mac && f.dst == *dst && f.permanent);
        if !ok {
            set.push((*mac, *dst));
        }
    }
    for f in kernel {
        if want.get(&f.mac) != Some(&f.dst) {
            delete.push((f.mac, f.dst));
        }
    }
    (set, delete)
}
