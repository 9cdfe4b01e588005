//! Graceful-restart stale handling through the public `Rib` API: stale
//! routes kept until End-of-RIB on negotiated families only, dropped when
//! forwarding was not preserved, and a session down without graceful
//! restart withdrawing everything.

mod common_rib;

use common_rib::*;
use std::net::{IpAddr, Ipv4Addr};
use tabby_bgp::peer_config::PeerConfig;
use tabby_bgp::rib::{BestChange, Rib};
use tabby_bgp::wire::{Family, Update};

fn gr_rib(families: &[Family]) -> (Rib, IpAddr) {
    let mut rib = Rib::new(local());
    let addr = Ipv4Addr::new(10, 0, 0, 11);
    rib.set_peer(PeerConfig::new(IpAddr::V4(addr), 64512));
    rib.session_up(
        IpAddr::V4(addr),
        session(with_gr(negotiated(addr, 64512, families), families, true)),
    );
    (rib, IpAddr::V4(addr))
}

#[test]
fn graceful_restart_keeps_routes_stale_until_end_of_rib() {
    let both = [Family::IPV4_UNICAST, Family::IPV6_UNICAST];
    let (mut rib, p) = gr_rib(&both);
    rib.apply_update(
        p,
        &announce(&["10.244.1.0/26", "10.244.2.0/26"], attrs(&[], "10.0.0.11")),
    );
    rib.apply_update(p, &announce_v6(&["fd00:10::/64"], &[], "fd00::11"));

    let c = rib.session_down(p, Some(120));
    assert_eq!(c.best.len(), 3, "stale flag changes are best-path events");
    assert!(c
        .best
        .iter()
        .all(|b| matches!(b, BestChange::Updated { path, .. } if path.stale)));
    assert_eq!(rib.len(), 3);

    // The peer comes back with both families; it re-sends one IPv4 prefix.
    let addr = Ipv4Addr::new(10, 0, 0, 11);
    rib.session_up(
        p,
        session(with_gr(negotiated(addr, 64512, &both), &both, true)),
    );
    assert_eq!(rib.stale_families(p), &both);
    rib.apply_update(p, &announce(&["10.244.1.0/26"], attrs(&[], "10.0.0.11")));
    assert!(!rib.paths(&net("10.244.1.0/26"))[0].stale);
    assert!(rib.paths(&net("10.244.2.0/26"))[0].stale);

    // IPv4 End-of-RIB sweeps the IPv4 prefix not refreshed, nothing else.
    let c = rib.apply_update(p, &Update::default());
    assert!(matches!(&c.best[..], [BestChange::Withdrawn(x)] if *x == net("10.244.2.0/26")));
    assert!(rib.paths(&net("fd00:10::/64"))[0].stale);
    assert_eq!(rib.stale_families(p), &[Family::IPV6_UNICAST]);

    // The restart timer takes the rest.
    rib.restart_timer_expired(p);
    assert!(rib.paths(&net("fd00:10::/64")).is_empty());
    assert_eq!(rib.len(), 1);
    assert!(rib.stale_families(p).is_empty());
}

#[test]
fn end_of_rib_is_never_awaited_for_a_family_not_negotiated() {
    let both = [Family::IPV4_UNICAST, Family::IPV6_UNICAST];
    let (mut rib, p) = gr_rib(&both);
    rib.apply_update(p, &announce(&["10.244.1.0/26"], attrs(&[], "10.0.0.11")));
    rib.apply_update(p, &announce_v6(&["fd00:10::/64"], &[], "fd00::11"));
    rib.session_down(p, Some(120));

    // The new session only negotiates IPv4: the IPv6 stale routes go at
    // once instead of waiting for an IPv6 End-of-RIB that cannot come.
    let addr = Ipv4Addr::new(10, 0, 0, 11);
    let v4 = [Family::IPV4_UNICAST];
    let c = rib.session_up(p, session(with_gr(negotiated(addr, 64512, &v4), &v4, true)));
    assert!(matches!(&c.best[..], [BestChange::Withdrawn(x)] if *x == net("fd00:10::/64")));
    assert_eq!(rib.stale_families(p), &v4);
    rib.apply_update(p, &Update::default());
    assert!(rib.stale_families(p).is_empty());
    // The IPv4 route was not refreshed before End-of-RIB, so it is gone.
    assert!(rib.is_empty());
}

#[test]
fn stale_routes_go_when_forwarding_was_not_preserved_or_gr_dropped() {
    let v4 = [Family::IPV4_UNICAST];
    let addr = Ipv4Addr::new(10, 0, 0, 11);
    let (mut rib, p) = gr_rib(&v4);
    rib.apply_update(p, &announce(&["10.244.1.0/26"], attrs(&[], "10.0.0.11")));
    rib.session_down(p, Some(120));
    rib.session_up(
        p,
        session(with_gr(negotiated(addr, 64512, &v4), &v4, false)),
    );
    assert!(rib.is_empty(), "F bit clear: stale routes are flushed");

    let (mut rib, p) = gr_rib(&v4);
    rib.apply_update(p, &announce(&["10.244.1.0/26"], attrs(&[], "10.0.0.11")));
    rib.session_down(p, Some(120));
    rib.session_up(p, session(negotiated(addr, 64512, &v4)));
    assert!(rib.is_empty(), "no GR capability any more");
}

#[test]
fn session_down_without_graceful_restart_withdraws_everything() {
    let v4 = [Family::IPV4_UNICAST];
    let (mut rib, p) = gr_rib(&v4);
    rib.apply_update(p, &announce(&["10.244.1.0/26"], attrs(&[], "10.0.0.11")));
    let c = rib.session_down(p, None);
    assert!(matches!(&c.best[..], [BestChange::Withdrawn(_)]));
    assert!(rib.is_empty());
}
