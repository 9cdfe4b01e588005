//! The kernel writes both families share: routes (dump, diff, one batch)
//! and a VXLAN device's permanent neighbour and FDB entries; and the text
//! an nftables write leaves in the applied list.

use super::memory::NeighMemo;
use super::plan::{self, DesiredRoute, Labeller};
use super::view::RouteView;
use super::PassReport;
use crate::netlink::family::{Addr, Net};
use crate::netlink::routes::KernelRoute;
use crate::netlink::{neigh, routes, NlSocket};
use crate::nft;

/// One route write of a pass, worded only when it is reported.
enum Write<'a, N: Net> {
    /// A route of Tabby's no longer wanted.
    Stale(&'a KernelRoute<N>),
    /// The route a desired one replaces, deleted first (see
    /// [`moves_onlink_v6`]).
    Previous(usize, &'a KernelRoute<N>),
    /// A desired route, and whether it replaces Tabby's own.
    Add(usize, bool),
}

/// Returns how many desired routes are in the kernel afterwards. Diffs
/// against `view`, which a stale view first gets from a dump; the writes'
/// own notifications update it afterwards. `(desired, version)` is the
/// plan (version 0: none cached), so a diff that found nothing to do is not
/// repeated while neither the plan nor the view changed.
pub fn reconcile_routes<N: Net>(
    sock: &mut NlSocket,
    (desired, plan_version): (&[DesiredRoute<N>], u64),
    view: &mut RouteView<N>,
    label: Labeller<'_>,
    name_of: &dyn Fn(u32) -> Option<String>,
    report: &mut PassReport,
) -> usize {
    if view.is_stale() {
        report.routes_dumped += 1;
        match routes::dump_family::<N>(sock) {
            Ok(k) => view.refill(k),
            Err(e) => {
                let what = if N::MAX_LEN == 128 {
                    "IPv6 routes"
                } else {
                    "routes"
                };
                report.netlink_fail("routes", format!("reading {what}: {e}"));
                return 0;
            }
        }
    }
    let seen = (plan_version, view.version());
    if let Some((p, v, in_sync)) = view.clean {
        if plan_version != 0 && (p, v) == seen {
            return in_sync;
        }
    }
    let plan = plan::diff_view(desired, view);
    let nothing = plan.add.is_empty() && plan.delete.is_empty() && plan.blocked.is_empty();
    view.clean = nothing.then_some((seen.0, seen.1, plan.in_sync));
    let view: &RouteView<N> = view;
    for (i, proto) in &plan.blocked {
        report.fail(
            &label(desired[*i].origin),
            format!(
                "destination is held by a route of protocol {proto} (not Tabby's); \
                 left alone, retried every pass"
            ),
        );
    }
    let mut writes: Vec<Write<'_, N>> = Vec::with_capacity(plan.delete.len() + plan.add.len());
    writes.extend(plan.delete.iter().map(Write::Stale));
    for (i, replace) in &plan.add {
        let d = &desired[*i];
        if let Some(old) = moves_onlink_v6(d, view.get(&d.spec.dst), *replace) {
            writes.push(Write::Previous(*i, old));
        }
        writes.push(Write::Add(*i, *replace));
    }
    // Encoded as they are sent: 100k messages are not kept at once.
    let requests = writes.iter().map(|w| match w {
        Write::Stale(r) | Write::Previous(_, r) => {
            routes::delete_request_of(r.dst, r.tos, r.priority)
        }
        Write::Add(i, replace) => routes::add_request(&desired[*i].spec, *replace),
    });
    // Failures carry the bare label, which callers match on (the CNI
    // server finds its workload's).
    let text = |w: &Write<'_, N>| match w {
        Write::Stale(r) => format!(
            "stale route {} {} (protocol 81)",
            r.dst,
            plan::describe_kernel_route(r, name_of)
        ),
        Write::Previous(i, _) => {
            format!("{} (its previous route, first)", label(desired[*i].origin))
        }
        Write::Add(i, _) => label(desired[*i].origin),
    };
    let total = writes.len();
    let adds = plan.add.len();
    match sock.apply(requests) {
        Ok(failures) => {
            let mut failed_adds = 0;
            let mut failed = vec![false; total];
            for (i, err) in failures {
                let is_add = matches!(writes[i], Write::Add(..));
                // ESRCH on a delete: already gone, which is what we wanted.
                if !is_add && err.errno() == Some(libc::ESRCH) {
                    continue;
                }
                failed[i] = true;
                if is_add {
                    failed_adds += 1;
                }
                let why = if is_add && err.errno() == Some(libc::EEXIST) {
                    format!("{err}: another route took the destination; left alone")
                } else {
                    err.to_string()
                };
                report.netlink_fail(&text(&writes[i]), why);
            }
            for (w, _) in writes.iter().zip(&failed).filter(|(_, f)| !**f) {
                report.applied_with(|| match w {
                    // A replace says what it replaced: that is what was wrong.
                    Write::Add(i, true) => {
                        let d = &desired[*i];
                        let was = view
                            .get(&d.spec.dst)
                            .iter()
                            .find(|k| k.is_tabbys() && k.occupies_tabby_slot())
                            .map(|k| plan::describe_kernel_route(k, name_of))
                            .unwrap_or_default();
                        format!("replaced {} (was {was})", text(w))
                    }
                    Write::Add(_, false) => format!("programmed {}", text(w)),
                    _ => format!("removed {}", text(w)),
                });
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
/// deleted first, in the same batch; IPv4 has no such check. `kernel` are
/// the routes to the desired route's destination.
fn moves_onlink_v6<'a, N: Net>(
    d: &DesiredRoute<N>,
    kernel: &'a [KernelRoute<N>],
    replace: bool,
) -> Option<&'a KernelRoute<N>> {
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

/// The neighbour reconcile's memory of one device: what it last wrote,
/// and whether a notification (or a full pass) says the kernel may differ.
pub struct NeighState<'a, A> {
    pub memo: &'a mut Option<NeighMemo<A>>,
    pub stale: &'a mut bool,
}

/// Permanent neighbour (ARP or NDP) entries tunnel IP → MAC and FDB
/// entries MAC → node IP on `device`, exactly those. Skipped (no dump)
/// when they are what the last complete reconcile wrote and no
/// notification about the device's entries came since.
pub fn reconcile_neighbours<A: Addr>(
    sock: &mut NlSocket,
    memo: NeighMemo<A>,
    st: NeighState<'_, A>,
    device: &str,
    report: &mut PassReport,
) {
    if !*st.stale && st.memo.as_ref() == Some(&memo) {
        return;
    }
    let failures = report.failures.len();
    reconcile_neighbours_now(sock, memo.index, device, &memo.neigh, &memo.fdb, report);
    let clean = report.failures.len() == failures;
    *st.memo = clean.then_some(memo);
    *st.stale = !clean;
}

fn reconcile_neighbours_now<A: Addr>(
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
