//! One reconcile pass: read the kernel, diff against the desired state,
//! write the difference. Per-item failures are recorded and the pass goes on.

use super::memory::{self, Memory, NeighMemo, PlanKey};
use super::plan::{self, Interfaces};
use super::{pass6, vxlan, writes, PassReport};
use crate::autodetect::{connected_subnets, HostAddr, HostInterface};
use crate::model::{DesiredState, Workload, Workload6, VXLAN_DEVICE};
use crate::netlink::links::{KernelAddr, KernelLink};
use crate::netlink::{links, NlSocket};
use crate::{ethtool, mtu, nft, sysctl};
use ipnet::Ipv4Net;
use std::collections::HashMap;
use std::sync::Arc;

/// What a pass found out besides its report.
pub struct PassOutcome {
    /// `vxlan.calico`'s index (for event filtering).
    pub vxlan_index: Option<u32>,
    /// `vxlan-v6.calico`'s.
    pub vxlan6_index: Option<u32>,
    /// Whether nftables was checked and found (or made) to match the pools.
    pub nft_ok: bool,
    /// nftables transactions this pass may have committed (0 or 1), so the
    /// notifications they caused are not taken for someone else's change.
    pub nft_commits: usize,
    /// A sysctl could not be read or written: the sysctl timer then leaves
    /// it to the next pass instead of retrying every few seconds.
    pub sysctl_failed: bool,
}

/// `check_nft` false skips nftables, which costs an `nft` spawn: the caller
/// asks when the pools changed, the last check failed, nftables announced a
/// change, or on the resync schedule. `mem` is what earlier passes left
/// (route views, plans); a full pass invalidates its views first.
pub fn run(
    sock: &mut NlSocket,
    state: &Arc<DesiredState>,
    workloads: &[Workload],
    workloads6: &[Workload6],
    check_nft: bool,
    mem: &mut Memory,
) -> (PassReport, PassOutcome) {
    let mut report = PassReport::default();
    let links_now = match links::dump_links(sock) {
        Ok(l) => l,
        Err(e) => {
            report.netlink_fail("kernel", format!("reading links: {e}"));
            return (report, outcome(None, false, 0));
        }
    };
    let vx = vxlan::reconcile(sock, state.vxlan.as_ref(), &links_now, &mut report);
    let addrs = match links::dump_addrs(sock) {
        Ok(a) => a,
        Err(e) => {
            report.netlink_fail("kernel", format!("reading addresses: {e}"));
            return (report, outcome(vx, false, 0));
        }
    };
    if let (Some((index, _)), Some(want)) = (vx, state.vxlan.as_ref()) {
        vxlan::reconcile_address(sock, index, want, &addrs, &mut report);
        if want.disable_tx_checksum_offload {
            match ethtool::set_tx_checksum(VXLAN_DEVICE, false) {
                Ok(true) => report.applied(format!("{VXLAN_DEVICE}: tx checksum offload off")),
                Ok(false) => {}
                Err(e) => report.fail(
                    VXLAN_DEVICE,
                    format!("turning tx checksum offload off: {e}"),
                ),
            }
        }
    }

    let index_of: HashMap<&str, u32> = links_now
        .iter()
        .map(|l| (l.name.as_str(), l.index))
        .collect();
    let name_of = |index: u32| {
        links_now
            .iter()
            .find(|l| l.index == index)
            .map(|l| l.name.clone())
    };
    let node = (!state.node_interface.is_empty())
        .then(|| links_now.iter().find(|l| l.name == state.node_interface))
        .flatten();
    // The same subnets the agent routes natively into: their network and
    // broadcast addresses are never a next hop.
    let node_subnets = connected_subnets(None, &host_interfaces(&links_now, &addrs));
    let by_name = |name: &str| index_of.get(name).copied();
    let ifaces = Interfaces {
        node_interface: node.map(|n| n.index),
        node_interface_name: &state.node_interface,
        vxlan: vx.map(|(i, _)| i),
        by_name: &by_name,
    };
    let key = PlanKey {
        node: ifaces.node_interface,
        vxlan: ifaces.vxlan,
        oifs: workloads
            .iter()
            .map(|w| by_name(&w.host_interface))
            .collect(),
        subnets: node_subnets.clone(),
    };
    let planned = memory::plan(
        &mut mem.plan4,
        state,
        memory::same_blocks4,
        workloads,
        key,
        || plan::desired_routes(&state.routes, workloads, &ifaces, &node_subnets),
    );
    report.failures.extend(planned.errors.iter().cloned());
    let label = |o| plan::route_label(o, &state.routes, workloads, &state.node_interface);
    report.routes_programmed = writes::reconcile_routes(
        sock,
        (&planned.desired, planned.version),
        &mut mem.views.v4,
        &label,
        &name_of,
        &mut report,
    );
    let v6 = pass6::Ctx {
        links: &links_now,
        node,
        by_name: &by_name,
        name_of: &name_of,
    };
    let vx6 = pass6::run6(sock, state, workloads6, &v6, mem, &mut report);

    if let Some((index, _)) = vx {
        reconcile_vteps(sock, index, state, mem, &mut report);
    }
    let sysctl_failed = !reconcile_sysctls(workloads, &index_of, &mut report);
    let (nft_ok, nft_commits) = if check_nft {
        report.nft_checked = true;
        reconcile_nft(state, &mut report)
    } else {
        (false, 0)
    };

    report.pod_mtu = match (vx, node) {
        (Some((_, vx_mtu)), _) => Some(vx_mtu),
        (None, Some(n)) => Some(mtu::pod_mtu(n.mtu, mtu::Encap::None)),
        (None, None) => None,
    };
    if let Some(m6) = vx6.vxlan_mtu {
        report.pod_mtu = Some(report.pod_mtu.map_or(m6, |m| m.min(m6)));
    }
    let mut out = outcome(vx, nft_ok, nft_commits);
    out.sysctl_failed = sysctl_failed || vx6.sysctl_failed;
    out.vxlan6_index = vx6.vxlan_index;
    (report, out)
}

fn outcome(vx: Option<(u32, u32)>, nft_ok: bool, nft_commits: usize) -> PassOutcome {
    PassOutcome {
        vxlan_index: vx.map(|(i, _)| i),
        vxlan6_index: None,
        nft_ok,
        nft_commits,
        sysctl_failed: false,
    }
}

/// Whether a host or workload sysctl differs from what a pass would set:
/// reads only, for the reconciler's short sysctl timer. Errors say nothing
/// new (the next pass reports them), so they count as no drift.
pub fn sysctls_drifted(workloads: &[Workload]) -> bool {
    let drifted = |r: Result<Vec<sysctl::Change>, sysctl::SysctlError>| {
        r.is_ok_and(|changes| !changes.is_empty())
    };
    drifted(sysctl::check_host())
        || workloads
            .iter()
            .any(|w| drifted(sysctl::check_workload(&w.host_interface)))
}

fn reconcile_vteps(
    sock: &mut NlSocket,
    index: u32,
    state: &DesiredState,
    mem: &mut Memory,
    report: &mut PassReport,
) {
    let (vteps, errors) = plan::desired_vteps(&state.vteps);
    report.failures.extend(errors);
    let memo = NeighMemo {
        index,
        neigh: vteps.iter().map(|v| (v.tunnel_ip, v.mac)).collect(),
        fdb: vteps.iter().map(|v| (v.mac, v.node_ip)).collect(),
    };
    let st = writes::NeighState {
        memo: &mut mem.neigh4,
        stale: &mut mem.views.neigh_stale[0],
    };
    writes::reconcile_neighbours(sock, memo, st, VXLAN_DEVICE, report);
}

/// `ip_forward` for the host; proxy ARP and forwarding on each workload's
/// host-side interface (H2's `sysctl` module decides the values). False
/// when one could not be set.
fn reconcile_sysctls(
    workloads: &[Workload],
    index_of: &HashMap<&str, u32>,
    report: &mut PassReport,
) -> bool {
    let mut ok = true;
    match sysctl::ensure_host() {
        Ok(changes) => changes
            .into_iter()
            .for_each(|c| report.applied(sysctl_applied(&c))),
        Err(e) => {
            ok = false;
            report.fail("sysctl", e.to_string());
        }
    }
    for w in workloads {
        if !index_of.contains_key(w.host_interface.as_str()) {
            continue; // already reported by the route step
        }
        match sysctl::ensure_workload(&w.host_interface) {
            Ok(changes) => changes
                .into_iter()
                .for_each(|c| report.applied(sysctl_applied(&c))),
            Err(e) => {
                ok = false;
                report.fail(&plan::workload_label(w), e.to_string());
            }
        }
    }
    ok
}

/// `sysctl net.ipv4.ip_forward=1 (was 0)`, as `sysctl -w` would be typed.
fn sysctl_applied(c: &sysctl::Change) -> String {
    format!("sysctl {}={} (was {})", c.key, c.new, c.old)
}

/// NAT outgoing and FORWARD accepts for the pools (H2's `nft` module; it
/// reads back and writes nothing when the ruleset already matches).
/// Whether nftables matches the pools afterwards, and how many
/// transactions were committed: one if anything was written. A failed
/// check counts one too, since a failed read-back comes after a commit:
/// taking Tabby's own commit for someone else's would retry a check that
/// keeps failing as fast as the rate limit allows, writing each time.
fn reconcile_nft(state: &DesiredState, report: &mut PassReport) -> (bool, usize) {
    let (ok4, commits4) = reconcile_nft4(state, report);
    let (ok6, commits6) = pass6::reconcile_nft6(state, report);
    (ok4 && ok6, commits4 + commits6)
}

fn reconcile_nft4(state: &DesiredState, report: &mut PassReport) -> (bool, usize) {
    match nft::reconcile(&state.pools) {
        Ok(r) => {
            if r.changed {
                report.applied(format!("nftables: {}", writes::nft_what(&r, "ip")));
            }
            (true, usize::from(r.changed))
        }
        // Without pools there is nothing to remove on a host without nft.
        Err(nft::NftError::Missing(_)) if state.pools.is_empty() => (true, 0),
        Err(e) => {
            report.fail("nftables", e.to_string());
            (false, 1)
        }
    }
}

/// The kernel's links and addresses as autodetection sees interfaces.
/// The address dump carries no scope; what scope would exclude (loopback,
/// link-local) only adds boundary addresses no next hop should have.
fn host_interfaces(links: &[KernelLink], addrs: &[KernelAddr]) -> Vec<HostInterface> {
    links
        .iter()
        .map(|l| HostInterface {
            index: l.index,
            name: l.name.clone(),
            up: l.up,
            mtu: l.mtu,
            addrs: addrs
                .iter()
                .filter(|a| a.index == l.index)
                .filter_map(|a| Ipv4Net::new(a.ip, a.prefix_len).ok())
                .map(|net| HostAddr {
                    net,
                    scope_link_or_host: false,
                })
                .collect(),
            // Only IPv4 next hops are checked against these subnets.
            addrs6: Vec::new(),
        })
        .collect()
}
