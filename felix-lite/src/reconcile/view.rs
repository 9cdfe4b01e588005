//! What the reconciler believes the kernel's main table holds, kept up to
//! date from rtnetlink route notifications, so a pass diffs against memory
//! instead of dumping (and decoding) every route: at 100k routes a dump is
//! most of a pass with nothing to do.
//!
//! Kept: every protocol-81 route, and every other route in Tabby's slot
//! (TOS 0, the family's default metric), which can hold a destination Tabby
//! wants. Other foreign routes never matter to a diff.
//!
//! The view is only used while nothing casts doubt on it; it is *stale*
//! (the next pass dumps the family and starts over from the dump) when:
//! - it was never filled, or the pass is full (first, scheduled, requested);
//! - the notification socket overflowed (ENOBUFS), failed, or carried a
//!   message that could not be decoded;
//! - a notification cannot be applied exactly: a second route in a slot
//!   the view holds (`ip route append`/`prepend`, an IPv6 ECMP sibling), a
//!   replace over a slot with several routes or of a route not kept;
//! - the kernel removes routes without saying so. IPv4 announces no
//!   deletion when a device goes down or its last address goes (measured on
//!   6.18): a device going down that the view has routes through, and any
//!   IPv4 address removal, make it stale. A device deleted drops its routes
//!   from the view directly (no route outlives its device), which keeps a
//!   pod's deletion cheap; its down notification comes in the same batch;
//! - a nexthop object changed (routes using one are removed silently).
//!
//! Applying a notification that happened before the dump the view was
//! filled from is harmless: each one states a route's whole new state.

use crate::netlink::family::Net;
use crate::netlink::routes::KernelRoute;
use netlink_packet_route::route::RouteType;
use std::collections::HashMap;

#[derive(Debug)]
pub struct RouteView<N: Net> {
    by_dst: HashMap<N, Vec<KernelRoute<N>>>,
    stale: bool,
    /// Multipath or nexthop-object routes kept (none normally): they have
    /// no single device, so a device going away may change them silently.
    unmodeled: usize,
    /// Moves on every change, so a diff can tell it has seen this view.
    version: u64,
    /// (plan version, view version, routes in sync) of the last diff that
    /// found nothing to do: the same plan against the same view would find
    /// the same, so it is not run again.
    pub clean: Option<(u64, u64, usize)>,
}

impl<N: Net> Default for RouteView<N> {
    fn default() -> Self {
        RouteView {
            by_dst: HashMap::new(),
            stale: true,
            unmodeled: 0,
            version: 0,
            clean: None,
        }
    }
}

fn kept<N: Net>(r: &KernelRoute<N>) -> bool {
    r.is_tabbys() || r.occupies_tabby_slot()
}

fn unmodeled<N: Net>(r: &KernelRoute<N>) -> bool {
    r.kind == RouteType::Unicast && r.oif.is_none()
}

fn same_slot<N: Net>(a: &KernelRoute<N>, b: &KernelRoute<N>) -> bool {
    a.tos == b.tos && a.priority == b.priority
}

impl<N: Net> RouteView<N> {
    /// A view of exactly these routes (a dump), trusted from now on.
    pub fn from_routes(routes: impl IntoIterator<Item = KernelRoute<N>>) -> Self {
        let mut v = RouteView {
            stale: false,
            ..RouteView::default()
        };
        for r in routes.into_iter().filter(kept) {
            v.unmodeled += usize::from(unmodeled(&r));
            v.by_dst.entry(r.dst).or_default().push(r);
        }
        v
    }

    /// Replaces the content with a dump's, a new version.
    pub fn refill(&mut self, routes: impl IntoIterator<Item = KernelRoute<N>>) {
        let version = self.version + 1;
        *self = RouteView::from_routes(routes);
        self.version = version;
    }

    pub fn is_stale(&self) -> bool {
        self.stale
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// The next pass dumps this family.
    pub fn invalidate(&mut self) {
        self.stale = true;
    }

    /// The kept routes to `dst`, in the kernel's order.
    pub fn get(&self, dst: &N) -> &[KernelRoute<N>] {
        self.by_dst.get(dst).map(Vec::as_slice).unwrap_or_default()
    }

    /// Each destination and its kept routes.
    pub fn slots(&self) -> impl Iterator<Item = (&N, &[KernelRoute<N>])> {
        self.by_dst.iter().map(|(d, r)| (d, r.as_slice()))
    }

    pub fn routes(&self) -> impl Iterator<Item = &KernelRoute<N>> {
        self.by_dst.values().flatten()
    }

    pub fn len(&self) -> usize {
        self.by_dst.values().map(Vec::len).sum()
    }

    /// RTM_NEWROUTE; `replace` is the notification's NLM_F_REPLACE.
    pub fn added(&mut self, r: KernelRoute<N>, replace: bool) {
        if self.stale {
            return;
        }
        let routes = self.by_dst.entry(r.dst).or_default();
        if routes.contains(&r) {
            return; // already known (from the dump, or said twice)
        }
        let mut in_slot = routes.iter().filter(|k| same_slot(k, &r));
        let (first, more) = (in_slot.next().is_some(), in_slot.next().is_some());
        let tabby_slot = r.occupies_tabby_slot();
        let exact = match (kept(&r), replace) {
            // Another route beside one the view holds: order unknown.
            (true, false) if tabby_slot => !first,
            // Outside Tabby's slot only protocol 81 is kept; which foreign
            // route sits beside it does not matter.
            (true, false) => true,
            // Which route a replace took is only known when the view holds
            // the whole slot and it had one route (or none).
            (true, true) => !more && (tabby_slot || !first),
            // A foreign route outside the slot: unless it replaced a kept
            // one, nothing the view holds changed.
            (false, _) => !(replace && first),
        };
        if !exact {
            self.stale = true;
            return;
        }
        if !kept(&r) {
            return;
        }
        self.version += 1;
        if replace {
            if let Some(i) = routes.iter().position(|k| same_slot(k, &r)) {
                let old = routes.remove(i);
                self.unmodeled -= usize::from(unmodeled(&old));
            }
        }
        self.unmodeled += usize::from(unmodeled(&r));
        routes.push(r);
    }

    /// RTM_DELROUTE, which names the route removed.
    pub fn deleted(&mut self, r: &KernelRoute<N>) {
        if self.stale {
            return;
        }
        let Some(routes) = self.by_dst.get_mut(&r.dst) else {
            return;
        };
        if let Some(i) = routes.iter().position(|k| k == r) {
            self.version += 1;
            let old = routes.remove(i);
            self.unmodeled -= usize::from(unmodeled(&old));
            if routes.is_empty() {
                self.by_dst.remove(&r.dst);
            }
        } else if routes.iter().any(|k| same_slot(k, r) && unmodeled(k)) {
            // Perhaps one nexthop of a multipath route the view holds.
            self.stale = true;
        }
    }

    /// The device `oif` was deleted: so were its routes.
    pub fn device_gone(&mut self, oif: u32) {
        if self.stale {
            return;
        }
        if self.unmodeled > 0 {
            self.stale = true;
            return;
        }
        self.version += 1;
        self.by_dst.retain(|_, routes| {
            routes.retain(|r| r.oif != Some(oif));
            !routes.is_empty()
        });
    }

    /// The device `oif` went down: the kernel may have removed routes
    /// through it without a word.
    pub fn device_down(&mut self, oif: u32) {
        if self.unmodeled > 0 || self.routes().any(|r| r.oif == Some(oif)) {
            self.stale = true;
        }
    }
}

/// Both families' views, and the link events of one batch of
/// notifications (a deleted device's "down" comes just before its
/// deletion, and should not cost a dump).
#[derive(Debug, Default)]
pub struct Views {
    pub v4: RouteView<ipnet::Ipv4Net>,
    pub v6: RouteView<ipnet::Ipv6Net>,
    /// Per family (IPv4, IPv6): a notification about an ARP/NDP or FDB
    /// entry of that family's VXLAN device arrived (or some were lost)
    /// since its neighbours were last reconciled. While false and the
    /// wanted entries are what the last reconcile wrote, a pass skips
    /// dumping the neighbour table, which the kernel shares between all
    /// network namespaces and walks whole for every dump.
    pub neigh_stale: [bool; 2],
    went_down: Vec<u32>,
    gone: Vec<u32>,
}

impl Views {
    pub fn invalidate(&mut self) {
        self.v4.invalidate();
        self.v6.invalidate();
        self.neigh_stale = [true, true];
    }

    pub fn link_down(&mut self, index: u32) {
        self.went_down.push(index);
    }

    pub fn link_gone(&mut self, index: u32) {
        self.gone.push(index);
        self.v4.device_gone(index);
        self.v6.device_gone(index);
    }

    /// After a batch of notifications: the devices that went down and
    /// were not deleted.
    pub fn end_batch(&mut self) {
        for index in std::mem::take(&mut self.went_down) {
            if !self.gone.contains(&index) {
                self.v4.device_down(index);
                self.v6.device_down(index);
            }
        }
        self.gone.clear();
    }
}

#[cfg(test)]
#[path = "view_tests.rs"]
mod tests;
