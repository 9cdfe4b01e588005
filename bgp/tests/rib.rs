//! The Loc-RIB decision process through the public `Rib` API: each step of
//! best-path selection, in both arrival orders, and what a withdrawal
//! promotes. Import handling and max-prefix are in rib_import.rs,
//! graceful-restart stale handling in rib_graceful_restart.rs.

mod common_rib;

use common_rib::*;
use std::net::{IpAddr, Ipv4Addr};
use tabby_bgp::peer_config::PeerConfig;
use tabby_bgp::rib::{BestChange, Rib};
use tabby_bgp::wire::{AsSegment, Origin, PathAttributes};

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
