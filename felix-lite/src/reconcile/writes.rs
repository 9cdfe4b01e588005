//! The kernel writes both families share: routes (dump, diff, one batch)
//! and a VXLAN device's permanent neighbour and FDB entries; and the text
//! an nftables write leaves in the applied list.

use super::plan::{self, DesiredRoute};
use super::PassReport;
use crate::netlink::family::{Addr, Net};
use crate::netlink::{neigh, routes, NlSocket, Request};
use crate::nft;

/// Returns how many desired routes are in the kernel afterwards.
pub fn reconcile_routes<N: Net>(
    sock: &mut NlSocket,
    desired: &[DesiredRoute<N>],
    name_of: &dyn Fn(u32) -> Option<String>,
    report: &mut PassReport,
) -> usize {
    let kernel = match routes::dump_family::<N>(sock) {
        Ok(k) => k,
        Err(e) => {
            let what = if N::MAX_LEN == 128 {
                "IPv6 routes"
            } else {
                "routes"
            };
            report.netlink_fail("routes", format!("reading {what}: {e}"));
            return 0;
        }
    };
    let plan = plan::diff_routes(desired, &kernel);
    for (i, proto) in &plan.blocked {
        report.fail(
            &desired[*i].label,
            format!(
                "destination is held by a route of protocol {proto} (not Tabby's); \
                 left alone, retried every pass"
            ),
        );
    }
    // (label, is an add, what an add replaces): failures carry the bare
    // label, which callers match on (the CNI server finds its workload's).
    let mut labels: Vec<(String, bool, Option<String>)> =
        Vec::with_capacity(plan.delete.len() + plan.add.len());
    let mut requests: Vec<Request> = Vec::with_capacity(labels.capacity());
    for r in &plan.delete {
        let how = plan::describe_kernel_route(r, name_of);
        labels.push((
            format!("stale route {} {how} (protocol 81)", r.dst),
            false,
            None,
        ));
        requests.push(routes::delete_request_of(r.dst, r.tos, r.priority));
    }
    for (i, replace) in &plan.add {
        let d = &desired[*i];
        // A replace says what it replaced: that is what was wrong.
        let was = kernel
            .iter()
            .find(|k| *replace && k.dst == d.spec.dst && k.is_tabbys() && k.occupies_tabby_slot())
            .map(|k| plan::describe_kernel_route(k, name_of));
        if let Some(old) = moves_onlink_v6(d, &kernel, *replace) {
            labels.push((
                format!("{} (its previous route, first)", d.label),
                false,
                None,
            ));
            requests.push(routes::delete_request_of(old.dst, old.tos, old.priority));
        }
        labels.push((d.label.clone(), true, was));
        requests.push(routes::add_request(&d.spec, *replace));
    }
    let total = requests.len();
    let adds = plan.add.len();
    match sock.apply(requests) {
        Ok(failures) => {
            let mut failed_adds = 0;
            let mut failed = vec![false; total];
            for (i, err) in failures {
                let (label, is_add, _) = &labels[i];
                // ESRCH on a delete: already gone, which is what we wanted.
                if !is_add && err.errno() == Some(libc::ESRCH) {
                    continue;
                }
                failed[i] = true;
                if *is_add {
                    failed_adds += 1;
                }
                let why = if *is_add && err.errno() == Some(libc::EEXIST) {
                    format!("{err}: another route took the destination; left alone")
                } else {
                    err.to_string()
                };
                report.netlink_fail(label, why);
            }
            for (i, (label, is_add, was)) in labels.iter().enumerate() {
                if !failed[i] {
                    report.applied(match (is_add, was) {
                        (true, Some(was)) => format!("replaced {label} (was {was})"),
                        (true, None) => format!("programmed {label}"),
                        (false, _) => format!("removed {label}"),
                    });
                }
            }
            plan.in_sync + adds - failed_adds
        }
        Err(e) => {
            report.netlink_fail("routes", format!("route batch of {total} failed: {e}"));
            plan.in_sync
        }
    }
}

/// IPv6 checks an `onlink` gateway against the table (ip6_route_check_nh_
/// onlink): a route to a remote block through `vxlan-v6.calico` whose
/// gateway (the owner's tunnel address, inside that block) the route being
/// replaced still sends out of another device is refused with EINVAL
/// ("Nexthop has invalid gateway or device mismatch"). So when an IPv6
/// route moves to another device (native → VXLAN fallback) the old one is
/// deleted first, in the same batch; IPv4 has no such check.
fn moves_onlink_v6<'a, N: Net>(
    d: &DesiredRoute<N>,
    kernel: &'a [routes::KernelRoute<N>],
    replace: bool,
) -> Option<&'a routes::KernelRoute<N>> {
    let routes::RouteTarget::Gateway {
        oif, onlink: true, ..
    } = d.spec.target
    else {
        return None;
    };
    if N::MAX_LEN != 128 || !replace {
        return None;
    }
    kernel.iter().find(|k| {
        k.dst == d.spec.dst && k.is_tabbys() && k.occupies_tabby_slot() && k.oif != Some(oif)
    })
}

/// Permanent neighbour (ARP or NDP) entries tunnel IP → MAC and FDB
/// entries MAC → node IP on `device`, exactly those.
pub fn reconcile_neighbours<A: Addr>(
    sock: &mut NlSocket,
    index: u32,
    device: &str,
    want_neigh: &[(A, [u8; 6])],
    want_fdb: &[([u8; 6], A)],
    report: &mut PassReport,
) {
    let arp = if A::Net::MAX_LEN == 128 { "NDP" } else { "ARP" };
    let kernel = (
        neigh::dump_neighbours_of::<A>(sock, index),
        neigh::dump_fdb_of::<A>(sock, index),
    );
    let (neighs, fdb) = match kernel {
        (Ok(n), Ok(f)) => (n, f),
        (Err(e), _) | (_, Err(e)) => {
            report.netlink_fail("neighbours", format!("reading {arp}/FDB of {device}: {e}"));
            return;
        }
    };
    let (set_n, del_n) = plan::diff_neighbours_of(want_neigh, &neighs);
    let (set_f, del_f) = plan::diff_fdb_of(want_fdb, &fdb);
    let mut labels = Vec::new();
    let mut requests = Vec::new();
    for ip in del_n {
        labels.push(format!("stale {arp} entry {ip} on {device}"));
        requests.push(neigh::delete_neighbour_request(index, ip));
    }
    for (mac, dst) in del_f {
        labels.push(format!("stale FDB entry {} dst {dst}", plan::fmt_mac(&mac)));
        requests.push(neigh::delete_fdb_request(index, mac, dst));
    }
    for (ip, mac) in set_n {
        labels.push(format!("{arp} entry {ip} lladdr {}", plan::fmt_mac(&mac)));
        requests.push(neigh::set_neighbour_request(index, ip, mac));
    }
    for (mac, dst) in set_f {
        labels.push(format!("FDB entry {} dst {dst}", plan::fmt_mac(&mac)));
        requests.push(neigh::set_fdb_request(index, mac, dst));
    }
    let total = requests.len();
    match sock.apply(requests) {
        Ok(failures) => {
            let mut failed = vec![false; total];
            for (i, err) in failures {
                failed[i] = true;
                report.netlink_fail(&labels[i], err.to_string());
            }
            for (i, label) in labels.into_iter().enumerate() {
                if !failed[i] {
                    report.applied(label);
                }
            }
        }
        Err(e) => report.netlink_fail("neighbours", format!("{arp}/FDB batch failed: {e}")),
    }
}

/// What an nftables write did, for the applied list.
pub fn nft_what(r: &nft::NftReport, family: &str) -> String {
    let mut what = Vec::new();
    if r.table_written {
        what.push(format!("table {family} {} rewritten", nft::TABLE));
    }
    if r.rules_inserted > 0 || r.rules_deleted > 0 {
        what.push(format!(
            "{} forward accept rules inserted, {} deleted ({})",
            r.rules_inserted,
            r.rules_deleted,
            r.forward_chains.join(", ")
        ));
    }
    what.join("; ")
}
