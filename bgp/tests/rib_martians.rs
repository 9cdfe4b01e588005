//! Issue 15 item 3 through the public `Rib` API: martian prefixes and
//! routes whose NEXT_HOP is our own address are never accepted (so never
//! passed on), are counted as received but filtered, and do not disturb
//! the routes around them.

mod common_rib;

use common_rib::*;
use tabby_bgp::rib::Rib;

#[test]
fn martian_prefixes_are_filtered_and_counted() {
    let mut rib = Rib::new(local());
    let p = up_peer(&mut rib, 11, 65001, |_| {});
    let other = up_peer(&mut rib, 12, 65002, |_| {});
    let v4 = [
        "0.0.0.0/8",
        "0.1.2.0/24",
        "127.0.0.0/8",
        "127.0.0.1/32",
        "224.0.0.0/4",
        "239.1.0.0/16",
        "240.0.0.0/4",
        "255.255.255.255/32",
        "169.254.0.0/16",
        "169.254.7.0/24",
    ];
    let fine = ["0.0.0.0/0", "10.1.0.0/16", "192.0.2.0/24", "128.0.0.0/1"];
    let mut all: Vec<&str> = v4.to_vec();
    all.extend(fine);
    let c = rib.apply_update(p, &announce(&all, attrs(&[65001], "10.0.0.11")));
    for m in v4 {
        assert!(rib.paths(&net(m)).is_empty(), "martian {m} accepted");
    }
    for f in fine {
        assert_eq!(rib.paths(&net(f)).len(), 1, "{f} not accepted");
    }
    let sent = c.export_for(other).map(|e| e.announced_count());
    assert_eq!(sent, Some(fine.len()), "martians passed on");

    let v6 = [
        "::/128",
        "::1/128",
        "ff00::/8",
        "ff02::1/128",
        "fe80::/10",
        "fe80::/64",
        "::ffff:0:0/96",
        "::ffff:10.0.0.0/104",
    ];
    let fine6 = ["::/0", "2001:db8::/32", "fd00:1::/64"];
    let mut all6: Vec<&str> = v6.to_vec();
    all6.extend(fine6);
    rib.apply_update(p, &announce_v6(&all6, &[65001], "fd00::11"));
    for m in v6 {
        assert!(rib.paths(&net(m)).is_empty(), "martian {m} accepted");
    }
    for f in fine6 {
        assert_eq!(rib.paths(&net(f)).len(), 1, "{f} not accepted");
    }
    let c = rib.peer_counts(p).unwrap();
    let martians = (v4.len() + v6.len()) as u64;
    let accepted = (fine.len() + fine6.len()) as u64;
    assert_eq!(c.accepted, accepted);
    assert_eq!(c.received, accepted + martians);
    assert_eq!(c.martians, martians);

    // A martian withdrawn is no longer counted.
    rib.apply_update(p, &withdraw(&["127.0.0.0/8"]));
    let c = rib.peer_counts(p).unwrap();
    assert_eq!(c.martians, martians - 1);
    assert_eq!(c.received, accepted + martians - 1);
}

#[test]
fn a_route_moved_onto_our_own_next_hop_is_withdrawn() {
    // The re-announcement is not accepted, so the path it replaces goes.
    let mut rib = Rib::new(local());
    let p = up_peer(&mut rib, 11, 65001, |_| {});
    rib.apply_update(
        p,
        &announce(&["192.0.2.0/24"], attrs(&[65001], "10.0.0.11")),
    );
    assert_eq!(rib.paths(&net("192.0.2.0/24")).len(), 1);
    // 10.0.0.1 is our address on the session (`common_rib::session`).
    rib.apply_update(p, &announce(&["192.0.2.0/24"], attrs(&[65001], "10.0.0.1")));
    assert!(
        rib.paths(&net("192.0.2.0/24")).is_empty(),
        "route via our own address accepted"
    );
    let c = rib.peer_counts(p).unwrap();
    assert_eq!((c.received, c.accepted), (1, 0));
}

#[test]
fn a_next_hop_that_is_our_own_address_is_not_accepted() {
    let mut rib = Rib::new(local());
    let p = up_peer(&mut rib, 11, 65001, |_| {});
    // Our router id (10.0.0.1, also the session address here) and our
    // IPv6 session address.
    rib.apply_update(
        p,
        &announce(&["198.51.100.0/24"], attrs(&[65001], "10.0.0.1")),
    );
    rib.apply_update(p, &announce_v6(&["2001:db8:1::/48"], &[65001], "fd00::1"));
    assert!(rib.paths(&net("198.51.100.0/24")).is_empty());
    assert!(rib.paths(&net("2001:db8:1::/48")).is_empty());
    let c = rib.peer_counts(p).unwrap();
    assert_eq!((c.received, c.accepted), (2, 0));
}
