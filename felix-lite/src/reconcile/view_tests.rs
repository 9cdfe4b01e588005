use super::*;
use ipnet::Ipv4Net;
use netlink_packet_route::route::RouteScope;
use std::net::Ipv4Addr;

fn route(dst: &str, protocol: u8, gateway: &str, oif: u32) -> KernelRoute<Ipv4Net> {
    KernelRoute {
        dst: dst.parse().unwrap(),
        protocol,
        tos: 0,
        priority: 0,
        kind: RouteType::Unicast,
        scope: RouteScope::Universe,
        gateway: Some(gateway.parse::<Ipv4Addr>().unwrap()),
        oif: Some(oif),
        onlink: false,
    }
}

fn fresh() -> RouteView<Ipv4Net> {
    RouteView::from_routes(Vec::new())
}

#[test]
fn a_new_view_is_stale_until_a_dump_fills_it() {
    let mut v = RouteView::<Ipv4Net>::default();
    assert!(v.is_stale());
    v.added(route("10.1.0.0/26", 81, "10.0.0.2", 2), false);
    assert!(
        v.is_stale() && v.len() == 0,
        "events do not make it trusted"
    );
    let v = RouteView::from_routes(vec![
        route("10.1.0.0/26", 81, "10.0.0.2", 2),
        // Foreign and outside Tabby's slot: not kept.
        KernelRoute {
            priority: 100,
            ..route("10.2.0.0/26", 4, "10.0.0.3", 2)
        },
        route("10.3.0.0/26", 4, "10.0.0.3", 2),
    ]);
    assert!(!v.is_stale());
    assert_eq!(v.len(), 2);
}

#[test]
fn adds_replaces_and_deletes_are_followed_exactly() {
    let mut v = fresh();
    let a = route("10.1.0.0/26", 81, "10.0.0.2", 2);
    let v0 = v.version();
    v.added(a.clone(), false);
    let v1 = v.version();
    assert!(v1 > v0, "a change moves the version");
    v.added(a.clone(), false); // said twice (before and in a dump)
    assert_eq!(
        v.version(),
        v1,
        "nothing changed: a diff need not run again"
    );
    assert_eq!(v.get(&a.dst), std::slice::from_ref(&a));
    let b = route("10.1.0.0/26", 81, "10.0.0.9", 3);
    v.added(b.clone(), true);
    assert_eq!(v.get(&a.dst), std::slice::from_ref(&b));
    v.deleted(&a); // not there any more: nothing to do
    assert!(!v.is_stale());
    let v2 = v.version();
    v.deleted(&b);
    assert!(v.version() > v2);
    assert!(v.get(&a.dst).is_empty());
    v.clean = Some((1, v.version(), 0));
    v.refill(Vec::new());
    assert_eq!(v.clean, None, "a dump is diffed afresh");
    assert_eq!(v.len(), 0);
    assert!(!v.is_stale());
}

#[test]
fn a_second_route_in_a_slot_or_an_unknown_replace_makes_it_stale() {
    let mut v = fresh();
    v.added(route("10.1.0.0/26", 81, "10.0.0.2", 2), false);
    // ip route append: which one comes first is not known.
    v.added(route("10.1.0.0/26", 4, "10.0.0.3", 2), false);
    assert!(v.is_stale());

    // A foreign replace outside the slot of a kept protocol-81 route there.
    let metric = |r: KernelRoute<Ipv4Net>| KernelRoute { priority: 7, ..r };
    let mut v = fresh();
    v.added(metric(route("10.1.0.0/26", 81, "10.0.0.2", 2)), false);
    v.added(metric(route("10.1.0.0/26", 4, "10.0.0.2", 2)), false);
    assert!(!v.is_stale(), "beside it, not over it");
    v.added(metric(route("10.1.0.0/26", 4, "10.0.0.5", 2)), true);
    assert!(v.is_stale(), "it may have replaced Tabby's");
}

#[test]
fn a_deleted_device_takes_its_routes_a_device_down_makes_it_stale() {
    let mut views = Views {
        v4: RouteView::from_routes(vec![
            route("10.1.0.0/26", 81, "10.0.0.2", 2),
            route("10.1.0.64/26", 81, "10.0.0.2", 5),
        ]),
        v6: RouteView::from_routes(Vec::new()),
        ..Views::default()
    };
    // A pod's veth deleted: "down" then "gone" in one batch.
    views.link_down(5);
    views.link_gone(5);
    views.end_batch();
    assert!(!views.v4.is_stale());
    assert_eq!(views.v4.len(), 1);
    // A device going down that routes use, without being deleted: IPv4
    // drops them without a notification.
    views.link_down(7);
    views.end_batch();
    assert!(!views.v4.is_stale(), "no route uses ifindex 7");
    views.link_down(2);
    views.end_batch();
    assert!(views.v4.is_stale());
    assert!(!views.v6.is_stale());
}

#[test]
fn multipath_routes_make_device_changes_doubtful() {
    let mut mp = route("10.1.0.0/26", 4, "10.0.0.2", 2);
    mp.gateway = None;
    mp.oif = None;
    let mut v = RouteView::from_routes(vec![mp.clone()]);
    v.device_gone(9);
    assert!(v.is_stale());
    let mut v = RouteView::from_routes(vec![mp]);
    // One nexthop of it going away.
    v.deleted(&route("10.1.0.0/26", 4, "10.0.0.2", 2));
    assert!(v.is_stale());
}
