//! Proves the harness with real peers only: BIRD 2 and GoBGP peer over a
//! veth pair and exchange a prefix each way.

mod common;

use common::bird::{Bird, BirdPeer};
use common::gobgp::{Gobgp, GobgpPeer};
use common::netns::{link, Netns};
use common::wait_until;

#[test]
fn bird_and_gobgp_exchange_prefixes() {
    let nb = Netns::new("hb");
    let ng = Netns::new("hg");
    let (ab, ag) = link(&nb, &ng, 1, 1, 2);
    let bird = Bird::start(
        &nb,
        &ab,
        &[BirdPeer::new("gobgp", &ab, 65001, &ag, 65002)],
        &["10.201.0.0/24"],
    );
    let gobgp = Gobgp::start(
        &ng,
        65002,
        &ag,
        &[GobgpPeer {
            address: ab.clone(),
            peer_as: 65001,
            password: None,
        }],
    );
    wait_until("BIRD Established", 20.0, || bird.established("gobgp"));
    wait_until("GoBGP Established", 5.0, || gobgp.established(&ab));
    gobgp.originate("10.202.0.0/24");

    wait_until("BIRD learns 10.202.0.0/24", 5.0, || {
        bird.route("10.202.0.0/24").is_some()
    });
    let r = bird.route("10.202.0.0/24").unwrap();
    assert!(r.contains("BGP.as_path: 65002"), "{r}");
    assert!(r.contains(&format!("BGP.next_hop: {ag}")), "{r}");

    wait_until("GoBGP learns 10.201.0.0/24", 5.0, || {
        gobgp.route("10.201.0.0/24").is_some()
    });
    let g = gobgp.route("10.201.0.0/24").unwrap().to_string();
    assert!(g.contains(&format!("\"nexthop\":\"{ab}\"")), "{g}");
    assert!(g.contains("65001"), "{g}");
}
