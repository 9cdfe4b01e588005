//! The pure half of a reconcile pass: desired state → kernel route specs
//! (with validation), and kernel state vs desired → the minimal set of
//! writes. No I/O here, so every rule is unit-tested without root.

use super::ItemError;
use crate::model::{BlockRoute, Path, Vtep, Workload};
use crate::netlink::family::Net;
use crate::netlink::neigh::{KernelFdb, KernelNeigh};
use crate::netlink::routes::{KernelRoute, RouteSpec, RouteTarget};
use ipnet::Ipv4Net;
use netlink_packet_route::route::RouteType;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;

/// A route Tabby wants, with the label its errors and logs carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredRoute<N: Net = Ipv4Net> {
    pub spec: RouteSpec<N>,
    pub label: String,
}

/// The desired routes, one per destination, in the order given.
pub(crate) struct OnePerDst<N: Net> {
    pub out: Vec<DesiredRoute<N>>,
    seen: HashMap<N, usize>,
}

impl<N: Net> OnePerDst<N> {
    pub fn new() -> Self {
        OnePerDst {
            out: Vec::new(),
            seen: HashMap::new(),
        }
    }

    /// A second route to a destination is refused naming the first, except
    /// that a workload route takes its own block's blackhole's place: with
    /// `blockSize: 32` (IPv6: 128) the block is the pod's one address, and
    /// the pod's route is the route it needs.
    pub fn push(&mut self, spec: RouteSpec<N>, label: String, errors: &mut Vec<ItemError>) {
        if let Some(&i) = self.seen.get(&spec.dst) {
            let first = &self.out[i];
            if first.spec.target == RouteTarget::Blackhole
                && matches!(spec.target, RouteTarget::Link { .. })
            {
                self.out[i] = DesiredRoute { spec, label };
            } else {
                errors.push(ItemError::new(
                    &label,
                    format!(
                        "destination {} is already wanted by {}",
                        spec.dst, first.label
                    ),
                ));
            }
            return;
        }
        self.seen.insert(spec.dst, self.out.len());
        self.out.push(DesiredRoute { spec, label });
    }

    /// A block's route: its target, or why it has none.
    pub fn push_block(
        &mut self,
        dst: N,
        target: Result<RouteTarget<N::Addr>, String>,
        label: String,
        errors: &mut Vec<ItemError>,
    ) {
        match target {
            Ok(target) => self.push(RouteSpec { dst, target }, label, errors),
            Err(e) => errors.push(ItemError::new(&label, e)),
        }
    }

    /// A workload's `<ip>/<max> dev <host interface> scope link`.
    pub fn push_workload(
        &mut self,
        dst: N,
        host_interface: &str,
        label: String,
        ifaces: &Interfaces<'_>,
        errors: &mut Vec<ItemError>,
    ) {
        let target = (ifaces.by_name)(host_interface)
            .map(|oif| RouteTarget::Link { oif })
            .ok_or_else(|| format!("host interface {host_interface:?} does not exist"));
        self.push_block(dst, target, label, errors)
    }
}

/// A block CIDR with host bits set is refused (the kernel would silently
/// truncate it into another block's route).
pub(crate) fn host_bits<N: Net>(cidr: N, trunc: N, label: &str) -> Option<ItemError> {
    (cidr != trunc).then(|| {
        ItemError::new(
            label,
            format!("cidr has host bits set; expected a network address such as {trunc}"),
        )
    })
}

/// Interface indexes the desired routes refer to; `None` when absent.
pub struct Interfaces<'a> {
    pub node_interface: Option<u32>,
    /// Its name, for labels (`DesiredState.node_interface`).
    pub node_interface_name: &'a str,
    pub vxlan: Option<u32>,
    pub by_name: &'a dyn Fn(&str) -> Option<u32>,
}

/// `node_interface` names the device of native routes, so a log line says
/// where the route points (empty: not known, left out).
pub fn block_label(r: &BlockRoute, node_interface: &str) -> String {
    let path = match &r.path {
        Path::Native { gateway } if node_interface.is_empty() => {
            format!("via {gateway} (native)")
        }
        Path::Native { gateway } => format!("via {gateway} dev {node_interface} (native)"),
        Path::Vxlan { tunnel_ip } => format!("via {tunnel_ip} dev vxlan.calico (vxlan)"),
        Path::Blackhole => "blackhole".to_string(),
    };
    format!("route {} {path} for node {:?}", r.cidr, r.node)
}

pub fn workload_label(w: &Workload) -> String {
    format!(
        "workload route {}/32 dev {} ({})",
        w.ip, w.host_interface, w.workload_id
    )
}

/// An interface index as people read it: `eth0 (ifindex 2)`, or, when no
/// link has that index, `ifindex 7 (no such interface)`.
pub fn dev_label(index: u32, name: Option<&str>) -> String {
    match name {
        Some(n) => format!("{n} (ifindex {index})"),
        None => format!("ifindex {index} (no such interface)"),
    }
}

/// Where a kernel route points, by interface name: `via 10.0.0.2 dev eth0`,
/// `dev cali1 scope link`, `blackhole`.
pub fn describe_kernel_route<N: Net>(
    r: &KernelRoute<N>,
    name_of: &dyn Fn(u32) -> Option<String>,
) -> String {
    let dev = |oif: u32| name_of(oif).unwrap_or_else(|| dev_label(oif, None));
    let mut out = match (r.gateway, r.oif) {
        _ if r.kind == RouteType::BlackHole => "blackhole".into(),
        (Some(g), Some(oif)) => format!("via {g} dev {}", dev(oif)),
        (Some(g), None) => format!("via {g}"),
        (None, Some(oif)) => format!("dev {}", dev(oif)),
        (None, None) => format!("type {:?}", r.kind),
    };
    if r.onlink {
        out.push_str(" onlink");
    }
    out
}

/// Network and broadcast addresses of the given prefixes (/31 and /32 have
/// neither), each with a phrase saying whose it is.
pub fn boundary_addresses(nets: &[Ipv4Net], what: &str) -> HashMap<Ipv4Addr, String> {
    let mut out = HashMap::new();
    for net in nets.iter().filter(|n| n.prefix_len() < 31) {
        out.entry(net.network())
            .or_insert_with(|| format!("the network address of {what} {net}"));
        out.entry(net.broadcast())
            .or_insert_with(|| format!("the broadcast address of {what} {net}"));
    }
    out
}

/// Turns block routes and workloads into kernel route specs. Each item that
/// can't be programmed becomes an [`ItemError`]; the others go ahead.
pub fn desired_routes(
    blocks: &[BlockRoute],
    workloads: &[Workload],
    ifaces: &Interfaces<'_>,
    node_subnets: &[Ipv4Net],
) -> (Vec<DesiredRoute>, Vec<ItemError>) {
    let block_cidrs: Vec<Ipv4Net> = blocks.iter().map(|b| b.cidr).collect();
    let of_blocks = boundary_addresses(&block_cidrs, "block");
    let of_subnets = boundary_addresses(node_subnets, "connected subnet");
    // No next hop is ever a block's or a connected subnet's network or
    // broadcast address. Calico hands out a block's first address (.0) as a
    // VXLAN tunnel IP and routes `<block> via <block>.0 dev vxlan.calico
    // onlink`; Tabby's IPAM never gives a tunnel address on a block edge, so
    // an edge here means a bad Node resource, and it is refused by name.
    let forbidden: Vec<&HashMap<Ipv4Addr, String>> = vec![&of_subnets, &of_blocks];
    let mut errors = Vec::new();
    let mut routes = OnePerDst::new();
    for b in blocks {
        let label = block_label(b, ifaces.node_interface_name);
        if let Some(e) = host_bits(b.cidr, b.cidr.trunc(), &label) {
            errors.push(e);
            continue;
        }
        let target = match &b.path {
            Path::Blackhole => Ok(RouteTarget::Blackhole),
            Path::Native { gateway } => gateway_target(
                *gateway,
                ifaces.node_interface,
                "the node interface (DesiredState.node_interface) does not exist",
                &forbidden,
                false,
            ),
            Path::Vxlan { tunnel_ip } => gateway_target(
                *tunnel_ip,
                ifaces.vxlan,
                "vxlan.calico does not exist (no LocalVxlan in the desired state, or it failed)",
                &forbidden,
                true,
            ),
        };
        routes.push_block(b.cidr, target, label, &mut errors);
    }
    for w in workloads {
        let dst = Ipv4Net::from(w.ip);
        routes.push_workload(
            dst,
            &w.host_interface,
            workload_label(w),
            ifaces,
            &mut errors,
        );
    }
    (routes.out, errors)
}

fn gateway_target(
    gateway: Ipv4Addr,
    oif: Option<u32>,
    missing: &str,
    forbidden: &[&HashMap<Ipv4Addr, String>],
    onlink: bool,
) -> Result<RouteTarget, String> {
    if let Some(why) = forbidden.iter().find_map(|f| f.get(&gateway)) {
        return Err(format!("refused: next hop {gateway} is {why}"));
    }
    if gateway.is_unspecified() || gateway.is_broadcast() || gateway.is_multicast() {
        return Err(format!(
            "refused: next hop {gateway} is not a unicast address"
        ));
    }
    let oif = oif.ok_or_else(|| missing.to_string())?;
    Ok(RouteTarget::Gateway {
        gateway,
        oif,
        onlink,
    })
}

/// The writes that make the kernel's routes match.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RoutePlan<N: Net = Ipv4Net> {
    /// Index into the desired routes, and whether it replaces Tabby's own
    /// route for that destination (else it is a create-exclusive).
    pub add: Vec<(usize, bool)>,
    /// Tabby's routes that are no longer wanted.
    pub delete: Vec<KernelRoute<N>>,
    /// Desired routes whose destination is held by another protocol's route.
    pub blocked: Vec<(usize, u8)>,
    /// Desired routes already correct in the kernel.
    pub in_sync: usize,
}

/// Foreign routes are never touched: when one (any protocol but 81, metric 0,
/// TOS 0, main table) holds a destination Tabby wants, Tabby's route is not
/// installed and the item is reported. It is retried on every pass, so it
/// goes in as soon as the other route is gone.
pub fn diff_routes<N: Net>(desired: &[DesiredRoute<N>], kernel: &[KernelRoute<N>]) -> RoutePlan<N> {
    let mut ours: HashMap<N, &KernelRoute<N>> = HashMap::new();
    let mut foreign: HashMap<N, u8> = HashMap::new();
    let mut plan = RoutePlan {
        add: Vec::new(),
        delete: Vec::new(),
        blocked: Vec::new(),
        in_sync: 0,
    };
    for r in kernel {
        match (r.is_tabbys(), r.occupies_tabby_slot()) {
            (true, true) => {
                if ours.insert(r.dst, r).is_some() {
                    // A second one on the same slot (ip route append): drop it.
                    plan.delete.push(r.clone());
                }
            }
            (true, false) => plan.delete.push(r.clone()),
            (false, true) => {
                foreign.insert(r.dst, r.protocol);
            }
            (false, false) => {}
        }
    }
    let wanted: HashSet<N> = desired.iter().map(|d| d.spec.dst).collect();
    for (i, d) in desired.iter().enumerate() {
        match ours.get(&d.spec.dst) {
            Some(k) if k.spec().as_ref() == Some(&d.spec) => plan.in_sync += 1,
            Some(_) => plan.add.push((i, true)),
            None => match foreign.get(&d.spec.dst) {
                Some(proto) => plan.blocked.push((i, *proto)),
                None => plan.add.push((i, false)),
            },
        }
    }
    let mut stale: Vec<&KernelRoute<N>> = ours
        .values()
        .filter(|r| !wanted.contains(&r.dst))
        .copied()
        .collect();
    stale.sort_by_key(|r| r.dst);
    plan.delete.extend(stale.into_iter().cloned());
    plan
}

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

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
