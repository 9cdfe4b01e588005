//! Import handling through the public `Rib` API: interned attributes, AS
//! loops, treat-as-withdraw, import prefix lists, MP-BGP IPv6, families
//! not negotiated, and max-prefix.

mod common_rib;

use common_rib::*;
use std::net::{IpAddr, Ipv4Addr};
use tabby_bgp::peer_config::PeerConfig;
use tabby_bgp::policy::{PrefixFilter, PrefixMatch};
use tabby_bgp::rib::{BestChange, Rib};
use tabby_bgp::wire::{Family, MpUnreach, PathAttributes, Update};

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

/// `numAllowedLocalASNumbers` (allowas-in): AS per rack, where the ToR
/// sends a rack's node the routes of the other nodes of its own AS.
#[test]
fn allow_local_as_accepts_our_as_up_to_n_times() {
    let mut rib = Rib::new(local());
    let p = up_peer(&mut rib, 11, 65001, |c| c.allow_local_as = 1);
    let once = attrs(&[65001, LOCAL_AS], "10.0.0.11");
    rib.apply_update(p, &announce(&["192.0.2.0/24"], once));
    assert_eq!(rib.paths(&net("192.0.2.0/24")).len(), 1, "once: allowed");
    let twice = attrs(&[65001, LOCAL_AS, 65003, LOCAL_AS], "10.0.0.11");
    let c = rib.apply_update(p, &announce(&["192.0.2.0/24"], twice));
    assert!(
        matches!(&c.best[..], [BestChange::Withdrawn(_)]),
        "twice > 1"
    );
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
