//! Tabby against a real GoBGP (gobgpd 3.10), as eBGP and as iBGP peer:
//! session up, prefixes both ways with the right next hop and AS path,
//! withdrawals within a second.

mod common;

use common::gobgp::{Gobgp, GobgpPeer};
use common::netns::{link, Netns};
use common::tabby::{peer, Tabby};
use common::{eventually, wait_until};
use tabby_bgp::peer_config::LocalConfig;

fn exchange(tag: &str, subnet: u8, tabby_as: u32, gobgp_as: u32) {
    let ebgp = tabby_as != gobgp_as;
    let nt = Netns::new(&format!("{tag}t"));
    let ng = Netns::new(&format!("{tag}g"));
    let (ta, ga) = link(&nt, &ng, subnet, 1, 2);
    let gobgp = Gobgp::start(
        &ng,
        gobgp_as,
        &ga,
        &[GobgpPeer {
            address: ta.clone(),
            peer_as: tabby_as,
            password: None,
        }],
    );
    let local = LocalConfig::new(ta.parse().unwrap(), tabby_as);
    let tabby = Tabby::start(&nt, local, &ta, vec![peer(&ga, gobgp_as)]);
    wait_until("Tabby Established with GoBGP", 20.0, || {
        tabby.established(&ga)
    });
    wait_until("GoBGP Established with Tabby", 5.0, || {
        gobgp.established(&ta)
    });

    // Tabby -> GoBGP.
    tabby.originate(&["10.220.0.0/24"]);
    wait_until("GoBGP learns 10.220.0.0/24", 5.0, || {
        gobgp.route("10.220.0.0/24").is_some()
    });
    let g = gobgp.route("10.220.0.0/24").unwrap().to_string();
    assert!(g.contains(&format!("\"nexthop\":\"{ta}\"")), "{g}");
    if ebgp {
        assert!(g.contains(&format!("\"asns\":[{tabby_as}]")), "{g}");
    } else {
        assert!(!g.contains("\"asns\":[6"), "iBGP route has an AS path: {g}");
    }

    // GoBGP -> Tabby.
    gobgp.originate("10.221.0.0/24");
    wait_until("Tabby learns 10.221.0.0/24", 5.0, || {
        tabby.best("10.221.0.0/24").is_some()
    });
    let b = tabby.best("10.221.0.0/24").unwrap();
    assert_eq!(b.from_peer, Some(ga.parse().unwrap()));
    assert_eq!(b.next_hop, Some(ga.parse().unwrap()));
    let want: Vec<u32> = if ebgp { vec![gobgp_as] } else { vec![] };
    assert_eq!(b.as_path, want);

    tabby.withdraw(&["10.220.0.0/24"]);
    assert!(
        eventually(1.0, || gobgp.route("10.220.0.0/24").is_none()),
        "GoBGP still has 10.220.0.0/24 a second after Tabby withdrew it"
    );
    gobgp.withdraw("10.221.0.0/24");
    assert!(
        eventually(1.0, || tabby.best("10.221.0.0/24").is_none()),
        "Tabby still has 10.221.0.0/24 a second after GoBGP withdrew it"
    );
}

#[test]
fn ebgp_with_gobgp() {
    exchange("ge", 20, 65000, 65002);
}

#[test]
fn ibgp_with_gobgp() {
    exchange("gi", 21, 65000, 65000);
}
