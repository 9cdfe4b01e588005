//! IPv6 prefixes over an IPv4 session with BIRD (MP-BGP, RFC 4760): Tabby
//! offers its configured IPv6 next hop for them, and takes BIRD's.

mod common;

use common::bird::{Bird, BirdPeer};
use common::netns::{link_named, Netns};
use common::tabby::{peer, Tabby};
use common::wait_until;
use tabby_bgp::peer_config::LocalConfig;

#[test]
fn ipv6_prefixes_over_an_ipv4_session() {
    let nt = Netns::new("mp6t");
    let nb = Netns::new("mp6b");
    let l = link_named(&nt, &nb, 90, 1, 2);
    // IPv6 next hops must be on-link for BIRD's eBGP import.
    nt.ip(&["addr", "add", "fd00:90::1/64", "dev", &l.if_a, "nodad"]);
    nb.ip(&["addr", "add", "fd00:90::2/64", "dev", &l.if_b, "nodad"]);
    let mut bp = BirdPeer::new("tabby", &l.addr_b, 65001, &l.addr_a, 65000);
    bp.ipv6_next_hop = Some("fd00:90::2".into());
    let bird = Bird::start(&nb, &l.addr_b, &[bp], &["fd00:91::/64"]);
    let mut p = peer(&l.addr_b, 65001);
    p.other_family_next_hop = Some("fd00:90::1".parse().unwrap());
    let local = LocalConfig::new(l.addr_a.parse().unwrap(), 65000);
    let tabby = Tabby::start(&nt, local, &l.addr_a, vec![p]);
    wait_until("BIRD Established with Tabby", 20.0, || {
        bird.established("tabby")
    });

    tabby.originate(&["fd00:92::/64", "10.92.0.0/24"]);
    wait_until("BIRD learns fd00:92::/64", 5.0, || {
        bird.route("fd00:92::/64").is_some()
    });
    let r = bird.route("fd00:92::/64").unwrap();
    assert!(r.contains("BGP.next_hop: fd00:90::1"), "{r}");
    assert!(r.contains("BGP.as_path: 65000\n"), "{r}");
    let r = bird.route("10.92.0.0/24").expect("IPv4 prefix too");
    assert!(r.contains(&format!("BGP.next_hop: {}", l.addr_a)), "{r}");

    wait_until("Tabby learns fd00:91::/64", 5.0, || {
        tabby.best("fd00:91::/64").is_some()
    });
    let b = tabby.best("fd00:91::/64").unwrap();
    assert_eq!(b.next_hop, Some("fd00:90::2".parse().unwrap()));
    assert_eq!(b.as_path, vec![65001]);

    tabby.withdraw(&["fd00:92::/64"]);
    wait_until("BIRD drops fd00:92::/64", 2.0, || {
        bird.route("fd00:92::/64").is_none()
    });
}
