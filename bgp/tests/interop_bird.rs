//! Tabby against a real BIRD 2, as eBGP and as iBGP peer: session up,
//! prefixes both ways with the right next hop and AS path, withdrawals
//! within a second, and a wrong AS refused with the right NOTIFICATION.

mod common;

use common::bird::{Bird, BirdPeer};
use common::netns::{link, Netns};
use common::tabby::{peer, Tabby};
use common::{eventually, wait_until};
use tabby_bgp::peer_config::LocalConfig;

struct Lab {
    bird: Bird,
    tabby: Tabby,
    t_addr: String,
    b_addr: String,
    b_peers: Vec<BirdPeer>,
    _ns: (Netns, Netns),
}

fn lab(tag: &str, subnet: u8, tabby_as: u32, bird_as: u32, bird_thinks_tabby_as: u32) -> Lab {
    let nt = Netns::new(&format!("{tag}t"));
    let nb = Netns::new(&format!("{tag}b"));
    let (ta, ba) = link(&nt, &nb, subnet, 1, 2);
    let b_peers = vec![BirdPeer::new(
        "tabby",
        &ba,
        bird_as,
        &ta,
        bird_thinks_tabby_as,
    )];
    let bird = Bird::start(&nb, &ba, &b_peers, &["10.211.0.0/24"]);
    let local = LocalConfig::new(ta.parse().unwrap(), tabby_as);
    let tabby = Tabby::start(&nt, local, &ta, vec![peer(&ba, bird_as)]);
    Lab {
        bird,
        tabby,
        t_addr: ta,
        b_addr: ba,
        b_peers,
        _ns: (nt, nb),
    }
}

fn exchange(l: &Lab, tabby_as: u32, bird_as: u32) {
    let ebgp = tabby_as != bird_as;
    wait_until("BIRD Established with Tabby", 20.0, || {
        l.bird.established("tabby")
    });
    wait_until("Tabby Established with BIRD", 5.0, || {
        l.tabby.established(&l.b_addr)
    });

    // Tabby -> BIRD.
    l.tabby.originate(&["10.210.0.0/24"]);
    wait_until("BIRD learns 10.210.0.0/24", 5.0, || {
        l.bird.route("10.210.0.0/24").is_some()
    });
    let r = l.bird.route("10.210.0.0/24").unwrap();
    assert!(r.contains(&format!("BGP.next_hop: {}", l.t_addr)), "{r}");
    if ebgp {
        assert!(r.contains(&format!("BGP.as_path: {tabby_as}\n")), "{r}");
    } else {
        assert!(r.contains("BGP.as_path: \n"), "{r}");
        assert!(r.contains("BGP.local_pref: 100"), "{r}");
    }

    // BIRD -> Tabby.
    wait_until("Tabby learns 10.211.0.0/24", 5.0, || {
        l.tabby.best("10.211.0.0/24").is_some()
    });
    let b = l.tabby.best("10.211.0.0/24").unwrap();
    assert_eq!(b.next_hop, Some(l.b_addr.parse().unwrap()));
    assert_eq!(b.from_peer, Some(l.b_addr.parse().unwrap()));
    let want: Vec<u32> = if ebgp { vec![bird_as] } else { vec![] };
    assert_eq!(b.as_path, want);
    let st = l.tabby.peer(&l.b_addr);
    assert_eq!(
        (st.prefixes_received, st.prefixes_accepted),
        (1, 1),
        "{st:?}"
    );
    assert_eq!(st.prefixes_advertised, 1, "{st:?}");

    // Withdraw both ways, each within a second.
    l.tabby.withdraw(&["10.210.0.0/24"]);
    assert!(
        eventually(1.0, || l.bird.route("10.210.0.0/24").is_none()),
        "BIRD still has 10.210.0.0/24 a second after Tabby withdrew it"
    );
    l.bird.reconfigure(&l.b_addr, &l.b_peers, &[]);
    assert!(
        eventually(1.0, || l.tabby.best("10.211.0.0/24").is_none()),
        "Tabby still has 10.211.0.0/24 a second after BIRD withdrew it"
    );
}

#[test]
fn ebgp_with_bird() {
    let l = lab("be", 10, 65000, 65001, 65000);
    exchange(&l, 65000, 65001);
}

#[test]
fn ibgp_with_bird() {
    let l = lab("bi", 11, 65000, 65000, 65000);
    exchange(&l, 65000, 65000);
}

#[test]
fn wrong_as_is_refused_with_bad_peer_as() {
    // BIRD says it is AS 65001; Tabby expects 65009. BIRD thinks Tabby is
    // 65000, which is right, so only Tabby's check fails.
    let nt = Netns::new("bwt");
    let nb = Netns::new("bwb");
    let (ta, ba) = link(&nt, &nb, 12, 1, 2);
    let bird = Bird::start(
        &nb,
        &ba,
        &[BirdPeer::new("tabby", &ba, 65001, &ta, 65000)],
        &[],
    );
    let local = LocalConfig::new(ta.parse().unwrap(), 65000);
    let tabby = Tabby::start(&nt, local, &ta, vec![peer(&ba, 65009)]);
    wait_until("BIRD reports Bad peer AS", 20.0, || {
        l_contains(&bird.protocol("tabby"), "Bad peer AS")
    });
    let st = tabby.peer(&ba);
    let err = st
        .last_error
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(
        err.to_lowercase().contains("bad peer as"),
        "Tabby's status: {st:?}"
    );
    assert_ne!(st.state, tabby_bgp::fsm::State::Established);
}

fn l_contains(s: &str, what: &str) -> bool {
    s.contains(what)
}

/// `birdc reload in` makes BIRD send ROUTE-REFRESH; Tabby answers with its
/// whole Adj-RIB-Out again, which BIRD counts as received updates.
#[test]
fn route_refresh_from_bird_gets_everything_again() {
    let l = lab("brr", 13, 65000, 65001, 65000);
    wait_until("BIRD Established", 20.0, || l.bird.established("tabby"));
    l.tabby.originate(&["10.212.0.0/24", "10.212.1.0/24"]);
    wait_until("BIRD learns both", 5.0, || {
        l.bird.route("10.212.1.0/24").is_some()
    });
    let received = |bird: &Bird| -> u64 {
        let p = bird.protocol("tabby");
        let line = p
            .lines()
            .find(|x| x.trim_start().starts_with("Import updates:"))
            .unwrap_or_else(|| panic!("no import stats: {p}"));
        line.split_whitespace().nth(2).unwrap().parse().unwrap()
    };
    let before = received(&l.bird);
    l.bird.birdc(&["reload", "in", "tabby"]);
    wait_until("BIRD receives the refreshed routes", 5.0, || {
        received(&l.bird) >= before + 2
    });
    assert!(l.bird.route("10.212.0.0/24").is_some());
}

/// MP-BGP (RFC 4760): an IPv6 session carrying IPv6 unicast both ways.
#[test]
fn ipv6_unicast_with_bird() {
    let nt = Netns::new("b6t");
    let nb = Netns::new("b6b");
    let (ta, ba) = common::netns::link6(&nt, &nb, 14);
    let bp = [BirdPeer::new("tabby", &ba, 65001, &ta, 65000)];
    let bird = Bird::start(&nb, "10.179.14.2", &bp, &["2001:db8:11::/48"]);
    let tabby = Tabby::start(
        &nt,
        LocalConfig::new("10.179.14.1".parse().unwrap(), 65000),
        &ta,
        vec![peer(&ba, 65001)],
    );
    wait_until("BIRD Established over IPv6", 20.0, || {
        bird.established("tabby")
    });
    tabby.originate(&["2001:db8:10::/48"]);
    wait_until("BIRD learns 2001:db8:10::/48", 5.0, || {
        bird.route("2001:db8:10::/48").is_some()
    });
    let r = bird.route("2001:db8:10::/48").unwrap();
    assert!(r.contains(&format!("BGP.next_hop: {ta}")), "{r}");
    assert!(r.contains("BGP.as_path: 65000\n"), "{r}");
    wait_until("Tabby learns 2001:db8:11::/48", 5.0, || {
        tabby.best("2001:db8:11::/48").is_some()
    });
    let b = tabby.best("2001:db8:11::/48").unwrap();
    assert_eq!(b.next_hop, Some(ba.parse().unwrap()));
    assert_eq!(b.as_path, vec![65001]);
    tabby.withdraw(&["2001:db8:10::/48"]);
    assert!(
        eventually(1.0, || bird.route("2001:db8:10::/48").is_none()),
        "BIRD kept the withdrawn IPv6 prefix"
    );
}

/// The other way round: BIRD expects another AS for Tabby, refuses Tabby's
/// OPEN with 2/2, and Tabby's status names the NOTIFICATION it received.
#[test]
fn bird_refusing_tabby_as_shows_in_tabby_status() {
    let l = lab("bwr", 15, 65000, 65001, 65099);
    wait_until("Tabby records BIRD's NOTIFICATION", 20.0, || {
        l.tabby.peer(&l.b_addr).last_error.is_some_and(|e| {
            // The typed value and its status text agree.
            let typed = e
                .error
                .notification()
                .is_some_and(|(n, sent)| !sent && (n.code, n.subcode) == (2, 2));
            let e = e.to_string();
            typed && e.contains("NOTIFICATION received") && e.to_lowercase().contains("bad peer as")
        })
    });
    assert!(!l.tabby.established(&l.b_addr));
}
