//! The pure half of a reconcile pass: desired state → kernel route specs
//! (with validation), and kernel state vs desired → the minimal set of
//! writes. No I/O here, so every rule is unit-tested without root.

use super::view::RouteView;
use super::ItemError;
use crate::model::{BlockRoute, Path, Workload};
use crate::netlink::family::Net;
use crate::netlink::routes::{KernelRoute, RouteSpec, RouteTarget};
use ipnet::Ipv4Net;
use netlink_packet_route::route::RouteType;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

/// Where a desired route comes from: an index into the block routes or
/// the workloads it was planned from. Its label (for errors and logs) is
/// only formatted when one is needed: formatting 100k labels was a third of
/// a pass with nothing to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    Block(usize),
    Workload(usize),
}

/// Turns an [`Origin`] into its label.
pub type Labeller<'a> = &'a dyn Fn(Origin) -> String;

/// A route Tabby wants, and what it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredRoute<N: Net = Ipv4Net> {
    pub spec: RouteSpec<N>,
    pub origin: Origin,
}

/// The label of an IPv4 route planned from `blocks` and `workloads`.
pub fn route_label(
    o: Origin,
    blocks: &[BlockRoute],
    workloads: &[Workload],
    node_interface: &str,
) -> String {
    match o {
        Origin::Block(i) => blocks.get(i).map(|b| block_label(b, node_interface)),
        Origin::Workload(i) => workloads.get(i).map(workload_label),
    }
    .unwrap_or_else(|| format!("{o:?}"))
}

/// The desired routes, one per destination, in the order given.
pub(crate) struct OnePerDst<N: Net> {
    pub out: Vec<DesiredRoute<N>>,
    seen: HashMap<N, usize>,
}

impl<N: Net> OnePerDst<N> {
    pub fn with_capacity(n: usize) -> Self {
        OnePerDst {
            out: Vec::with_capacity(n),
            seen: HashMap::with_capacity(n),
        }
    }

    /// A second route to a destination is refused naming the first, except
    /// that a workload route takes its own block's blackhole's place: with
    /// `blockSize: 32` (IPv6: 128) the block is the pod's one address, and
    /// the pod's route is the route it needs.
    pub fn push(
        &mut self,
        spec: RouteSpec<N>,
        origin: Origin,
        label: Labeller<'_>,
        errors: &mut Vec<ItemError>,
    ) {
        let i = match self.seen.entry(spec.dst) {
            Entry::Vacant(e) => {
                e.insert(self.out.len());
                self.out.push(DesiredRoute { spec, origin });
                return;
            }
            Entry::Occupied(e) => *e.get(),
        };
        let first = &self.out[i];
        if first.spec.target == RouteTarget::Blackhole
            && matches!(spec.target, RouteTarget::Link { .. })
        {
            self.out[i] = DesiredRoute { spec, origin };
        } else {
            errors.push(ItemError::new(
                &label(origin),
                format!(
                    "destination {} is already wanted by {}",
                    spec.dst,
                    label(first.origin)
                ),
            ));
        }
    }

    /// A block's route: its target, or why it has none.
    pub fn push_block(
        &mut self,
        dst: N,
        target: Result<RouteTarget<N::Addr>, String>,
        origin: Origin,
        label: Labeller<'_>,
        errors: &mut Vec<ItemError>,
    ) {
        match target {
            Ok(target) => self.push(RouteSpec { dst, target }, origin, label, errors),
            Err(e) => errors.push(ItemError::new(&label(origin), e)),
        }
    }

    /// A workload's `<ip>/<max> dev <host interface> scope link`.
    pub fn push_workload(
        &mut self,
        dst: N,
        host_interface: &str,
        origin: Origin,
        ifaces: &Interfaces<'_>,
        label: Labeller<'_>,
        errors: &mut Vec<ItemError>,
    ) {
        let target = (ifaces.by_name)(host_interface)
            .map(|oif| RouteTarget::Link { oif })
            .ok_or_else(|| format!("host interface {host_interface:?} does not exist"));
        self.push_block(dst, target, origin, label, errors)
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

/// Whose network or broadcast address an address is; worded only when a
/// next hop turns out to be one (100k blocks make 200k of these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Boundary {
    pub broadcast: bool,
    pub what: &'static str,
    pub net: Ipv4Net,
}

impl std::fmt::Display for Boundary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let which = if self.broadcast {
            "broadcast"
        } else {
            "network"
        };
        write!(f, "the {which} address of {} {}", self.what, self.net)
    }
}

/// Network and broadcast addresses of the given prefixes (/31 and /32 have
/// neither), each saying whose it is.
pub fn boundary_addresses(nets: &[Ipv4Net], what: &'static str) -> HashMap<Ipv4Addr, Boundary> {
    let mut out = HashMap::new();
    for net in nets.iter().filter(|n| n.prefix_len() < 31) {
        let (net, what) = (*net, what);
        out.entry(net.network()).or_insert(Boundary {
            broadcast: false,
            what,
            net,
        });
        out.entry(net.broadcast()).or_insert(Boundary {
            broadcast: true,
            what,
            net,
        });
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
    let forbidden: Vec<&HashMap<Ipv4Addr, Boundary>> = vec![&of_subnets, &of_blocks];
    let mut errors = Vec::new();
    let mut routes = OnePerDst::with_capacity(blocks.len() + workloads.len());
    let label = |o| route_label(o, blocks, workloads, ifaces.node_interface_name);
    for (i, b) in blocks.iter().enumerate() {
        if b.cidr != b.cidr.trunc() {
            let label = block_label(b, ifaces.node_interface_name);
            errors.extend(host_bits(b.cidr, b.cidr.trunc(), &label));
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
        routes.push_block(b.cidr, target, Origin::Block(i), &label, &mut errors);
    }
    for (i, w) in workloads.iter().enumerate() {
        let dst = Ipv4Net::from(w.ip);
        routes.push_workload(
            dst,
            &w.host_interface,
            Origin::Workload(i),
            ifaces,
            &label,
            &mut errors,
        );
    }
    (routes.out, errors)
}

fn gateway_target(
    gateway: Ipv4Addr,
    oif: Option<u32>,
    missing: &str,
    forbidden: &[&HashMap<Ipv4Addr, Boundary>],
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
    diff_view(desired, &RouteView::from_routes(kernel.iter().cloned()))
}

/// Tabby's route in a destination's slot (the first), and the protocol of
/// a foreign one there (the last) when Tabby has none.
fn occupant<N: Net>(routes: &[KernelRoute<N>]) -> (Option<&KernelRoute<N>>, Option<u8>) {
    let ours = routes
        .iter()
        .find(|r| r.is_tabbys() && r.occupies_tabby_slot());
    let foreign = routes
        .iter()
        .filter(|r| !r.is_tabbys() && r.occupies_tabby_slot())
        .last()
        .map(|r| r.protocol);
    (ours, foreign)
}

/// [`diff_routes`] against a [`RouteView`]; `desired` holds one route per
/// destination (as [`desired_routes`] makes it). Costs one lookup per
/// desired route and a walk over the view, without hashing it again unless
/// some route of Tabby's is no longer wanted.
pub fn diff_view<N: Net>(desired: &[DesiredRoute<N>], view: &RouteView<N>) -> RoutePlan<N> {
    let mut plan = RoutePlan {
        add: Vec::new(),
        delete: Vec::new(),
        blocked: Vec::new(),
        in_sync: 0,
    };
    let mut ours_total = 0;
    for (_, routes) in view.slots() {
        let mut first = true;
        for r in routes.iter().filter(|r| r.is_tabbys()) {
            if r.occupies_tabby_slot() && first {
                first = false;
                ours_total += 1;
            } else {
                // Off Tabby's slot, or a second one on it (ip route append).
                plan.delete.push(r.clone());
            }
        }
    }
    let mut ours_wanted = 0;
    for (i, d) in desired.iter().enumerate() {
        match occupant(view.get(&d.spec.dst)) {
            (Some(k), _) => {
                ours_wanted += 1;
                if k.spec().as_ref() == Some(&d.spec) {
                    plan.in_sync += 1;
                } else {
                    plan.add.push((i, true));
                }
            }
            (None, Some(proto)) => plan.blocked.push((i, proto)),
            (None, None) => plan.add.push((i, false)),
        }
    }
    if ours_wanted < ours_total {
        let wanted: HashSet<N> = desired.iter().map(|d| d.spec.dst).collect();
        let mut stale: Vec<&KernelRoute<N>> = view
            .slots()
            .filter(|(dst, _)| !wanted.contains(dst))
            .filter_map(|(_, routes)| occupant(routes).0)
            .collect();
        stale.sort_by_key(|r| r.dst);
        plan.delete.extend(stale.into_iter().cloned());
    }
    plan
}

// The VTEP half (ARP/NDP and FDB entries) lives in `plan_vteps`.
pub use super::plan_vteps::{
    desired_vteps, diff_fdb, diff_fdb_of, diff_neighbours, diff_neighbours_of, fmt_mac, FdbEntry,
};

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
