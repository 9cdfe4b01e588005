//! The IPv6 part of a reconcile pass, run after the IPv4 part on the same
//! socket: `vxlan-v6.calico` and its /128, IPv6 sysctls, the pod gateway's
//! link-local address on each IPv6 workload's host end, IPv6 block and
//! workload routes (protocol 81, like IPv4), and NDP/FDB entries of IPv6
//! VTEPs. While the desired state has no IPv6 at all, only leftovers are
//! removed (Tabby's IPv6 routes, `vxlan-v6.calico`), so an IPv4-only node
//! never writes IPv6 state, and a host with IPv6 disabled is fine.

use super::memory::{self, Memory, NeighMemo, PlanKey};
use super::plan::Interfaces;
use super::writes::{nft_what, reconcile_neighbours, reconcile_routes, NeighState};
use super::{plan6, vxlan6, PassReport};
use crate::model::{DesiredState, Workload6, POD_GATEWAY_V6, VXLAN_V6_DEVICE};
use crate::netlink::links::{self, KernelAddr6, KernelLink};
use crate::netlink::{routes, NlSocket};
use crate::sysctl;
use ipnet::Ipv6Net;
use std::sync::Arc;

/// What the IPv4 part already knows.
pub struct Ctx<'a> {
    pub links: &'a [KernelLink],
    pub node: Option<&'a KernelLink>,
    pub by_name: &'a dyn Fn(&str) -> Option<u32>,
    pub name_of: &'a dyn Fn(u32) -> Option<String>,
}

#[derive(Debug, Default)]
pub struct Outcome6 {
    pub vxlan_index: Option<u32>,
    /// `vxlan-v6.calico`'s MTU: pods must not exceed it either.
    pub vxlan_mtu: Option<u32>,
    pub sysctl_failed: bool,
}

/// Whether the desired state asks for any IPv6 at all.
pub fn wants_ipv6(state: &DesiredState, workloads6: &[Workload6]) -> bool {
    state.vxlan6.is_some()
        || !state.routes6.is_empty()
        || !state.vteps6.is_empty()
        || !state.pools6.is_empty()
        || !workloads6.is_empty()
}

pub fn run6(
    sock: &mut NlSocket,
    state: &Arc<DesiredState>,
    workloads6: &[Workload6],
    ctx: &Ctx<'_>,
    mem: &mut Memory,
    report: &mut PassReport,
) -> Outcome6 {
    let mut out = Outcome6::default();
    // Not wanted: only a leftover device is removed.
    let vx = vxlan6::reconcile6(sock, state.vxlan6.as_ref(), ctx.links, report);
    out.vxlan_index = vx.map(|(i, _)| i);
    out.vxlan_mtu = vx.map(|(_, m)| m);
    if !wants_ipv6(state, workloads6) {
        // Only Tabby's leftover IPv6 routes to remove; a kernel without
        // IPv6 refuses the dump, which then means there are none.
        let view = &mut mem.views.v6;
        if view.is_stale() {
            report.routes_dumped += 1;
            match routes::dump6(sock) {
                Ok(k) => view.refill(k),
                Err(_) => return out,
            }
        }
        if view.routes().any(|r| r.is_tabbys()) {
            let none = |o| format!("{o:?}");
            reconcile_routes::<Ipv6Net>(sock, (&[], 0), view, &none, ctx.name_of, report);
        }
        return out;
    }
    out.sysctl_failed = !reconcile_sysctls6(workloads6, ctx, report);
    let addrs = match links::dump_addrs6(sock) {
        Ok(a) => a,
        Err(e) => {
            report.netlink_fail("kernel", format!("reading IPv6 addresses: {e}"));
            return out;
        }
    };
    if let (Some((index, _)), Some(want)) = (vx, state.vxlan6.as_ref()) {
        vxlan6::reconcile_address6(sock, index, want, &addrs, report);
    }
    pod_gateways(sock, workloads6, ctx, &addrs, report);

    let node_subnets: Vec<Ipv6Net> = ctx
        .node
        .map(|n| {
            addrs
                .iter()
                .filter(|a| a.index == n.index && !a.is_link_local())
                .filter_map(|a| Ipv6Net::new(a.ip, a.prefix_len).ok())
                .map(|n| n.trunc())
                .collect()
        })
        .unwrap_or_default();
    let ifaces = Interfaces {
        node_interface: ctx.node.map(|n| n.index),
        node_interface_name: ctx.node.map(|n| n.name.as_str()).unwrap_or_default(),
        vxlan: out.vxlan_index,
        by_name: ctx.by_name,
    };
    let key = PlanKey {
        node: ifaces.node_interface,
        vxlan: ifaces.vxlan,
        oifs: workloads6
            .iter()
            .map(|w| (ctx.by_name)(&w.host_interface))
            .collect(),
        subnets: node_subnets.clone(),
    };
    let planned = memory::plan(
        &mut mem.plan6,
        state,
        memory::same_blocks6,
        workloads6,
        key,
        || plan6::desired_routes6(&state.routes6, workloads6, &ifaces, &node_subnets),
    );
    report.failures.extend(planned.errors.iter().cloned());
    let node_name = ifaces.node_interface_name;
    let label = |o| plan6::route_label6(o, &state.routes6, workloads6, node_name);
    report.routes_programmed += reconcile_routes(
        sock,
        (&planned.desired, planned.version),
        &mut mem.views.v6,
        &label,
        ctx.name_of,
        report,
    );

    if let Some((index, _)) = vx {
        let (vteps, errors) = plan6::desired_vteps6(&state.vteps6);
        report.failures.extend(errors);
        let memo = NeighMemo {
            index,
            neigh: vteps.iter().map(|v| (v.tunnel_ip, v.mac)).collect(),
            fdb: vteps.iter().map(|v| (v.mac, v.node_ip)).collect(),
        };
        let st = NeighState {
            memo: &mut mem.neigh6,
            stale: &mut mem.views.neigh_stale[1],
        };
        reconcile_neighbours(sock, memo, st, VXLAN_V6_DEVICE, report);
    }
    out
}

/// The host end of each IPv6 workload must hold the pod's gateway
/// `fe80::ecee:eeff:feee:eeee`. The kernel makes it from the MAC
/// `ee:ee:ee:ee:ee:ee` by itself (EUI-64) unless `addr_gen_mode` says
/// otherwise; then Tabby adds it (as Calico relies on the kernel, a host
/// with stable-privacy link-local addresses would leave Calico's pods
/// without a gateway; Tabby extension).
fn pod_gateways(
    sock: &mut NlSocket,
    workloads6: &[Workload6],
    ctx: &Ctx<'_>,
    addrs: &[KernelAddr6],
    report: &mut PassReport,
) {
    let mut done = std::collections::HashSet::new();
    for w in workloads6 {
        let Some(index) = (ctx.by_name)(&w.host_interface) else {
            continue; // reported by the route step
        };
        if !done.insert(index)
            || addrs
                .iter()
                .any(|a| a.index == index && a.ip == POD_GATEWAY_V6)
        {
            continue;
        }
        let req = links::add_addr6_request(index, POD_GATEWAY_V6, 64);
        match sock.execute(req.message, req.flags) {
            Ok(()) => report.applied(format!(
                "added pod gateway {POD_GATEWAY_V6}/64 to {}",
                w.host_interface
            )),
            Err(e) => report.netlink_fail(
                &plan6::workload_label6(w),
                format!("adding the pod gateway {POD_GATEWAY_V6}/64: {e}"),
            ),
        }
    }
}

fn reconcile_sysctls6(workloads6: &[Workload6], ctx: &Ctx<'_>, report: &mut PassReport) -> bool {
    let mut ok = true;
    let mut note = |r: Result<Vec<sysctl::Change>, sysctl::SysctlError>,
                    item: &str,
                    report: &mut PassReport| match r {
        Ok(changes) => changes
            .into_iter()
            .for_each(|c| report.applied(format!("sysctl {}={} (was {})", c.key, c.new, c.old))),
        Err(e) => {
            ok = false;
            report.fail(item, e.to_string());
        }
    };
    note(sysctl::ensure_host6(), "sysctl", report);
    for w in workloads6 {
        if (ctx.by_name)(&w.host_interface).is_some() {
            note(
                sysctl::ensure_workload6(&w.host_interface),
                &plan6::workload_label6(w),
                report,
            );
        }
    }
    ok
}

/// [`super::pass::sysctls_drifted`] for IPv6: reads only.
pub fn sysctls_drifted6(state: &DesiredState, workloads6: &[Workload6]) -> bool {
    if !wants_ipv6(state, workloads6) {
        return false;
    }
    let drifted = |r: Result<Vec<sysctl::Change>, sysctl::SysctlError>| {
        r.is_ok_and(|changes| !changes.is_empty())
    };
    drifted(sysctl::check_host6())
        || workloads6
            .iter()
            .any(|w| drifted(sysctl::check_workload6(&w.host_interface)))
}

/// NAT66 and IPv6 forward accepts (see [`crate::nft::v6`]); as the IPv4
/// check: whether nftables matches, and the transactions committed.
pub fn reconcile_nft6(state: &DesiredState, report: &mut PassReport) -> (bool, usize) {
    match crate::nft::Nft::default().reconcile6(&state.pools6) {
        Ok(r) => {
            if r.changed {
                report.applied(format!("nftables: {}", nft_what(&r, "ip6")));
            }
            (true, usize::from(r.changed))
        }
        Err(crate::nft::NftError::Missing(_)) if state.pools6.is_empty() => (true, 0),
        Err(e) => {
            report.fail("nftables (IPv6)", e.to_string());
            (false, 1)
        }
    }
}
