//! Loc-RIB decision process, import handling, graceful-restart stale
//! handling and max-prefix, through the public `Rib` API.

mod common_rib;

use common_rib::*;
use std::net::{IpAddr, Ipv4Addr};
use tabby_bgp::peer_config::PeerConfig;
use tabby_bgp::policy::{PrefixFilter, PrefixMatch};
use tabby_bgp::rib::{BestChange, Rib};
use tabby_bgp::wire::{AsSegment, Family, MpUnreach, Origin, PathAttributes, Update};

fn best_peer(rib: &Rib, prefix: &str) -> Option<IpAddr> {
    rib.paths(&net(prefix)).first().and_then(|p| p.source.peer)
}

type Tweak<'a> = &'a dyn Fn(&mut PathAttributes);
type PeerTweak<'a> = &'a dyn Fn(&mut PeerConfig);

/// Peers 10.0.0.11 (AS `as1`) and 10.0.0.12 (AS `as2`) announce the same
/// prefix with attributes tweaked by `a` and `b`. Runs both arrival orders,
/// requires the same winner, and returns it (11 or 12).
fn race(as1: u32, as2: u32, a: Tweak, b: Tweak, pa: PeerTweak, pb: PeerTweak) -> u8 {
    let build = |asn: u32, nh: &str, t: Tweak| {
        let path = if asn == LOCAL_AS { vec![] } else { vec![asn] };
        let mut x = attrs(&path, nh);
        t(&mut x);
        x
    };
    let mut winners = Vec::new();
    for first_is_1 in [true, false] {
        let mut rib = Rib::new(local());
        let p1 = up_peer(&mut rib, 11, as1, pa);
        let p2 = up_peer(&mut rib, 12, as2, pb);
        let u1 = announce(&["192.0.2.0/24"], build(as1, "10.0.0.11", a));
        let u2 = announce(&["192.0.2.0/24"], build(as2, "10.0.0.12", b));
        if first_is_1 {
            rib.apply_update(p1, &u1);
            rib.apply_update(p2, &u2);
        } else {
            rib.apply_update(p2, &u2);
            rib.apply_update(p1, &u1);
        }
        assert_eq!(rib.paths(&net("192.0.2.0/24")).len(), 2);
        winners.push(best_peer(&rib, "192.0.2.0/24").unwrap());
    }
    assert_eq!(winners[0], winners[1], "arrival order changed the winner");
    match winners[0] {
        IpAddr::V4(v4) => v4.octets()[3],
        IpAddr::V6(_) => unreachable!(),
    }
}

const NONE: Tweak = &|_| {};
const NO_PEER: PeerTweak = &|_| {};

#[test]
fn weight_beats_local_pref() {
    let w = race(
        64512,
        64512,
        &|a| a.local_pref = Some(500),
        NONE,
        NO_PEER,
        &|p| p.weight = 10,
    );
    assert_eq!(w, 12);
}

#[test]
fn highest_local_pref_with_default_100() {
    assert_eq!(
        race(
            64512,
            64512,
            &|a| a.local_pref = Some(101),
            NONE,
            NO_PEER,
            NO_PEER
        ),
        11
    );
    assert_eq!(
        race(
            64512,
            64512,
            &|a| a.local_pref = Some(99),
            NONE,
            NO_PEER,
            NO_PEER
        ),
        12
    );
}

#[test]
fn local_pref_from_ebgp_is_ignored() {
    // eBGP peer 11 sends LOCAL_PREF 500; it counts as 100, so the iBGP
    // path with 150 wins.
    let w = race(
        65001,
        64512,
        &|a| a.local_pref = Some(500),
        &|a| a.local_pref = Some(150),
        NO_PEER,
        NO_PEER,
    );
    assert_eq!(w, 12);
}

#[test]
fn locally_originated_wins_after_local_pref() {
    let mut rib = Rib::new(local());
    let p = up_peer(&mut rib, 11, 64512, |_| {});
    rib.apply_update(p, &announce(&["192.0.2.0/24"], attrs(&[], "10.0.0.11")));
    rib.originate(&[net("192.0.2.0/24")], &[]);
    assert_eq!(best_peer(&rib, "192.0.2.0/24"), None);
    // But a higher LOCAL_PREF still beats it.
    let mut a = attrs(&[], "10.0.0.11");
    a.local_pref = Some(200);
    rib.apply_update(p, &announce(&["192.0.2.0/24"], a));
    assert_eq!(best_peer(&rib, "192.0.2.0/24"), Some(p));
}

#[test]
fn shortest_as_path_and_a_set_counts_one() {
    let w = race(
        65001,
        65002,
        &|a| a.as_path = vec![AsSegment::Sequence(vec![65001, 65010, 65011])],
        &|a| a.as_path = vec![AsSegment::Sequence(vec![65002, 65020])],
        NO_PEER,
        NO_PEER,
    );
    assert_eq!(w, 12);
    // 65001 + {a,b,c,d} counts 2, shorter than a 3-AS sequence.
    let w = race(
        65001,
        65002,
        &|a| {
            a.as_path = vec![
                AsSegment::Sequence(vec![65001]),
                AsSegment::Set(vec![1, 2, 3, 4]),
            ]
        },
        &|a| a.as_path = vec![AsSegment::Sequence(vec![65002, 65020, 65021])],
        NO_PEER,
        NO_PEER,
    );
    assert_eq!(w, 11);
}

#[test]
fn lowest_origin() {
    let w = race(
        65001,
        65002,
        &|a| a.origin = Some(Origin::Incomplete),
        &|a| a.origin = Some(Origin::Egp),
        NO_PEER,
        NO_PEER,
    );
    assert_eq!(w, 12);
}

#[test]
fn med_only_between_the_same_neighbour_as() {
    // Same neighbour AS 65001 (two sessions to it): lower MED wins even
    // though peer 11 has the lower router id.
    let w = race(
        65001,
        65001,
        &|a| a.med = Some(50),
        &|a| a.med = Some(10),
        NO_PEER,
        NO_PEER,
    );
    assert_eq!(w, 12);
    // Different neighbour ASes: MED ignored, router id decides (11).
    let w = race(
        65001,
        65002,
        &|a| a.med = Some(50),
        &|a| a.med = Some(10),
        NO_PEER,
        NO_PEER,
    );
    assert_eq!(w, 11);
    // A missing MED is the lowest value.
    let w = race(65001, 65001, &|a| a.med = Some(1), NONE, NO_PEER, NO_PEER);
    assert_eq!(w, 12);
}

#[test]
fn ebgp_over_ibgp() {
    // iBGP path through 65001 (length 1) vs eBGP from 65002 (length 1).
    let w = race(
        64512,
        65002,
        &|a| a.as_path = vec![AsSegment::Sequence(vec![65001])],
        NONE,
        NO_PEER,
        NO_PEER,
    );
    assert_eq!(w, 12);
}

#[test]
fn lowest_router_id_prefers_originator_id() {
    assert_eq!(race(65001, 65002, NONE, NONE, NO_PEER, NO_PEER), 11);
    // Peer 11's path was reflected from a router with a higher id.
    let w = race(
        64512,
        64512,
        &|a| a.originator_id = Some(Ipv4Addr::new(10, 9, 9, 9)),
        NONE,
        NO_PEER,
        NO_PEER,
    );
    assert_eq!(w, 12);
}

#[test]
fn lowest_peer_address_breaks_the_last_tie() {
    // Both paths carry the same ORIGINATOR_ID, so only the address differs.
    let same = &|a: &mut PathAttributes| a.originator_id = Some(Ipv4Addr::new(10, 5, 5, 5));
    assert_eq!(race(64512, 64512, same, same, NO_PEER, NO_PEER), 11);
}

#[test]
fn withdrawal_promotes_the_next_best_and_reports_changes() {
    let mut rib = Rib::new(local());
    let p1 = up_peer(&mut rib, 11, 65001, |_| {});
    let p2 = up_peer(&mut rib, 12, 65002, |_| {});
    rib.apply_update(
        p1,
        &announce(&["192.0.2.0/24"], attrs(&[65001], "10.0.0.11")),
    );
    let c = rib.apply_update(
        p2,
        &announce(&["192.0.2.0/24"], attrs(&[65002, 1], "10.0.0.12")),
    );
    assert!(
        c.best.is_empty(),
        "a worse path changes no best: {:?}",
        c.best
    );
    let c = rib.apply_update(p1, &withdraw(&["192.0.2.0/24"]));
    assert!(matches!(
        &c.best[..],
        [BestChange::Updated { path, .. }] if path.source.peer == Some(p2)
    ));
    let c = rib.apply_update(p2, &withdraw(&["192.0.2.0/24"]));
    assert!(matches!(&c.best[..], [BestChange::Withdrawn(p)] if *p == net("192.0.2.0/24")));
    assert!(rib.is_empty());
}

#[test]
fn updates_share_one_interned_attribute_set() {
    let mut rib = Rib::new(local());
    let p = up_peer(&mut rib, 11, 65001, |_| {});
    rib.apply_update(
        p,
        &announce(
            &["192.0.2.0/24", "198.51.100.0/24"],
            attrs(&[65001], "10.0.0.11"),
        ),
    );
    rib.apply_update(
        p,
        &announce(&["203.0.113.0/24"], attrs(&[65001], "10.0.0.11")),
    );
    let a = &rib.paths(&net("192.0.2.0/24"))[0].attrs;
    let b = &rib.paths(&net("203.0.113.0/24"))[0].attrs;
    assert!(std::sync::Arc::ptr_eq(a, b));
}

#[test]
fn local_as_in_path_is_a_loop() {
    let mut rib = Rib::new(local());
    let p = up_peer(&mut rib, 11, 65001, |_| {});
    rib.apply_update(
        p,
        &announce(&["192.0.2.0/24"], attrs(&[65001], "10.0.0.11")),
    );
    // Re-announced with our AS in the path: the old path goes too.
    let c = rib.apply_update(
        p,
        &announce(
            &["192.0.2.0/24"],
            attrs(&[65001, LOCAL_AS, 65003], "10.0.0.11"),
        ),
    );
    assert!(matches!(&c.best[..], [BestChange::Withdrawn(_)]));
    let counts = rib.peer_counts(p).unwrap();
    assert_eq!((counts.received, counts.accepted), (1, 0));
}

#[test]
fn treat_as_withdraw_removes_the_prefixes() {
    let mut rib = Rib::new(local());
    let p = up_peer(&mut rib, 11, 65001, |_| {});
    rib.apply_update(
        p,
        &announce(&["192.0.2.0/24"], attrs(&[65001], "10.0.0.11")),
    );
    let mut u = announce(&["192.0.2.0/24"], attrs(&[65001], "10.0.0.11"));
    u.treat_as_withdraw = Some("malformed COMMUNITIES".into());
    rib.apply_update(p, &u);
    assert!(rib.is_empty());
    assert_eq!(rib.peer_counts(p).unwrap().received, 0);
}

#[test]
fn import_filter_by_prefix_list() {
    let mut rib = Rib::new(local());
    let pool = PrefixMatch::or_longer(net("10.244.0.0/16"));
    let p = up_peer(&mut rib, 11, 64512, |c| {
        c.import.filter = PrefixFilter::List(vec![pool]);
    });
    rib.apply_update(
        p,
        &announce(
            &[
                "10.244.3.0/26",
                "10.244.0.0/16",
                "10.0.0.0/8",
                "192.0.2.0/24",
            ],
            attrs(&[], "10.0.0.11"),
        ),
    );
    assert_eq!(rib.paths(&net("10.244.3.0/26")).len(), 1);
    assert_eq!(rib.paths(&net("10.244.0.0/16")).len(), 1);
    assert!(rib.paths(&net("10.0.0.0/8")).is_empty());
    assert!(rib.paths(&net("192.0.2.0/24")).is_empty());
    let c = rib.peer_counts(p).unwrap();
    assert_eq!((c.received, c.accepted), (4, 2));
    // Withdrawing a rejected prefix takes it out of "received".
    rib.apply_update(p, &withdraw(&["192.0.2.0/24"]));
    let c = rib.peer_counts(p).unwrap();
    assert_eq!((c.received, c.accepted), (3, 2));

    let exact = PrefixMatch::exact(net("10.244.0.0/16"));
    assert!(exact.matches(&net("10.244.0.0/16")));
    assert!(!exact.matches(&net("10.244.1.0/24")));
}

#[test]
fn ipv6_through_mp_reach_and_unreach() {
    let mut rib = Rib::new(local());
    let p = up_peer(&mut rib, 11, 65001, |_| {});
    let c = rib.apply_update(p, &announce_v6(&["fd00:10::/64"], &[65001], "fd00::11"));
    assert_eq!(c.best.len(), 1);
    assert_eq!(
        rib.paths(&net("fd00:10::/64"))[0].attrs.next_hop,
        Some(ip("fd00::11"))
    );
    let u = Update {
        attrs: PathAttributes {
            mp_unreach: Some(MpUnreach {
                family: Family::IPV6_UNICAST,
                withdrawn: vec![net("fd00:10::/64")],
            }),
            ..PathAttributes::default()
        },
        ..Update::default()
    };
    rib.apply_update(p, &u);
    assert!(rib.is_empty());
}

#[test]
fn families_not_negotiated_are_ignored() {
    let mut rib = Rib::new(local());
    let addr = Ipv4Addr::new(10, 0, 0, 11);
    rib.set_peer(PeerConfig::new(IpAddr::V4(addr), 65001));
    rib.session_up(
        IpAddr::V4(addr),
        session(negotiated(addr, 65001, &[Family::IPV4_UNICAST])),
    );
    rib.apply_update(
        IpAddr::V4(addr),
        &announce_v6(&["fd00:10::/64"], &[65001], "fd00::11"),
    );
    assert!(rib.is_empty());
}

#[test]
fn max_prefix_is_reported() {
    let mut rib = Rib::new(local());
    let p = up_peer(&mut rib, 11, 65001, |c| c.max_prefixes = 2);
    let c = rib.apply_update(
        p,
        &announce(
            &["192.0.2.0/24", "198.51.100.0/24"],
            attrs(&[65001], "10.0.0.11"),
        ),
    );
    assert_eq!(c.max_prefix_exceeded, None);
    let c = rib.apply_update(
        p,
        &announce(&["203.0.113.0/24"], attrs(&[65001], "10.0.0.11")),
    );
    assert_eq!(c.max_prefix_exceeded, Some(2));
    // The transport then ends the session without graceful restart.
    let c = rib.session_down(p, None);
    assert_eq!(c.best.len(), 3);
    assert!(rib.is_empty());
}

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
