//! Tabby against real BIRD 2 daemons: TCP-MD5, graceful restart (Tabby
//! killed and restarted while BIRD keeps its routes) and route reflection
//! between two BIRD clients.

mod common;

use common::bird::{Bird, BirdPeer};
use common::netns::{lan, link, Netns};
use common::tabby::{peer, Tabby};
use common::{eventually, wait_until};
use std::time::{Duration, Instant};
use tabby_bgp::peer_config::LocalConfig;

fn md5_lab(tag: &str, subnet: u8, bird_password: &str) -> (Bird, Tabby, String, Netns, Netns) {
    let nt = Netns::new(&format!("{tag}t"));
    let nb = Netns::new(&format!("{tag}b"));
    let (ta, ba) = link(&nt, &nb, subnet, 1, 2);
    let mut bp = BirdPeer::new("tabby", &ba, 65001, &ta, 65000);
    bp.password = Some(bird_password.into());
    let bird = Bird::start(&nb, &ba, &[bp], &["10.231.0.0/24"]);
    let mut p = peer(&ba, 65001);
    p.password = Some("s3cr3t".into());
    let tabby = Tabby::start(
        &nt,
        LocalConfig::new(ta.parse().unwrap(), 65000),
        &ta,
        vec![p],
    );
    (bird, tabby, ba, nt, nb)
}

#[test]
fn tcp_md5_matching_password_establishes() {
    let (bird, tabby, ba, _nt, _nb) = md5_lab("m5ok", 30, "s3cr3t");
    wait_until("BIRD Established over TCP-MD5", 20.0, || {
        bird.established("tabby")
    });
    wait_until("Tabby Established over TCP-MD5", 5.0, || {
        tabby.established(&ba)
    });
    wait_until("Tabby learns BIRD's prefix", 5.0, || {
        tabby.best("10.231.0.0/24").is_some()
    });
}

#[test]
fn tcp_md5_wrong_password_never_establishes() {
    let (bird, tabby, ba, _nt, _nb) = md5_lab("m5bad", 31, "not-the-password");
    // Both sides try to connect every 1-2 s; give them several rounds.
    assert!(
        !eventually(6.0, || bird.established("tabby") || tabby.established(&ba)),
        "session came up with mismatched TCP-MD5 passwords"
    );
    assert!(tabby.best("10.231.0.0/24").is_none());
}

#[test]
fn graceful_restart_bird_keeps_routes_while_tabby_restarts() {
    let nt = Netns::new("grt");
    let nb = Netns::new("grb");
    let (ta, ba) = link(&nt, &nb, 32, 1, 2);
    let bird = Bird::start(
        &nb,
        &ba,
        &[BirdPeer::new("tabby", &ba, 65001, &ta, 65000)],
        &[],
    );
    let prefix = "10.232.0.0/24";
    let start = |restarting: bool| {
        let mut local = LocalConfig::new(ta.parse().unwrap(), 65000);
        local.restarting = restarting;
        Tabby::start_with(
            &nt,
            local,
            &ta,
            vec![peer(&ba, 65001)],
            vec![prefix.parse().unwrap()],
        )
    };
    let tabby = start(false);
    wait_until("BIRD Established", 20.0, || bird.established("tabby"));
    wait_until("BIRD learns Tabby's prefix", 5.0, || {
        bird.route(prefix).is_some()
    });

    // kill -9: sockets close with no NOTIFICATION.
    tabby.kill();
    wait_until("BIRD notices the session is gone", 10.0, || {
        !bird.established("tabby")
    });
    let p = bird.protocol("tabby");
    assert!(p.contains("Neighbor graceful restart active"), "{p}");

    // BIRD keeps the route for the restart time; watch it never vanish
    // while Tabby is down and while it comes back.
    let down_for = Instant::now() + Duration::from_secs(2);
    while Instant::now() < down_for {
        assert!(
            bird.route(prefix).is_some(),
            "BIRD dropped Tabby's route during the restart"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let tabby = retry_start(|| start(true));
    let back = Instant::now() + Duration::from_secs(20);
    while !bird.established("tabby") {
        assert!(Instant::now() < back, "Tabby did not come back");
        assert!(
            bird.route(prefix).is_some(),
            "route flapped while Tabby came back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // After Tabby's End-of-RIB the route is refreshed: still there, and BIRD
    // no longer in graceful-restart mode for this neighbour.
    wait_until("BIRD leaves graceful restart", 10.0, || {
        !bird
            .protocol("tabby")
            .contains("Neighbor graceful restart active")
    });
    let r = bird.route(prefix).expect("route kept after the restart");
    assert!(r.contains("BGP.as_path: 65000"), "{r}");
    assert!(tabby.established(&ba));
}

/// The old speaker's listening socket may linger for a moment after the
/// kill; a real restart would retry the bind too.
fn retry_start(mut f: impl FnMut() -> Tabby) -> Tabby {
    for _ in 0..50 {
        if let Ok(t) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(&mut f)) {
            return t;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("Tabby could not restart");
}

#[test]
fn route_reflector_between_two_bird_clients() {
    let nt = Netns::new("rrt");
    let n1 = Netns::new("rr1");
    let n2 = Netns::new("rr2");
    let addrs = lan(&nt, 33, &[&n1, &n2]);
    let ta = "10.179.33.1";
    let (a1, a2) = (addrs[0].clone(), addrs[1].clone());
    let b1 = Bird::start(
        &n1,
        &a1,
        &[BirdPeer::new("tabby", &a1, 65000, ta, 65000)],
        &["10.241.0.0/24"],
    );
    let b2 = Bird::start(
        &n2,
        &a2,
        &[BirdPeer::new("tabby", &a2, 65000, ta, 65000)],
        &["10.242.0.0/24"],
    );
    let mut local = LocalConfig::new(ta.parse().unwrap(), 65000);
    local.cluster_id = Some("10.179.33.100".parse().unwrap());
    let peers = [&a1, &a2]
        .iter()
        .map(|a| {
            let mut p = peer(a, 65000);
            p.route_reflector_client = true;
            p
        })
        .collect();
    let tabby = Tabby::start(&nt, local, ta, peers);
    wait_until("both clients Established", 20.0, || {
        tabby.established(&a1) && tabby.established(&a2)
    });
    for (bird, prefix, from) in [(&b2, "10.241.0.0/24", &a1), (&b1, "10.242.0.0/24", &a2)] {
        wait_until(&format!("reflected {prefix}"), 5.0, || {
            bird.route(prefix).is_some()
        });
        let r = bird.route(prefix).unwrap();
        assert!(r.contains(&format!("BGP.originator_id: {from}")), "{r}");
        assert!(r.contains("BGP.cluster_list: 10.179.33.100"), "{r}");
        assert!(r.contains(&format!("BGP.next_hop: {from}")), "{r}");
    }
}

#[test]
fn max_prefixes_exceeded_ends_the_session_with_cease() {
    let nt = Netns::new("mxt");
    let nb = Netns::new("mxb");
    let (ta, ba) = link(&nt, &nb, 34, 1, 2);
    let bird = Bird::start(
        &nb,
        &ba,
        &[BirdPeer::new("tabby", &ba, 65001, &ta, 65000)],
        &["10.243.0.0/24", "10.243.1.0/24"],
    );
    let mut p = peer(&ba, 65001);
    p.max_prefixes = 1;
    let tabby = Tabby::start(
        &nt,
        LocalConfig::new(ta.parse().unwrap(), 65000),
        &ta,
        vec![p],
    );
    wait_until("BIRD reports Tabby's Cease 6/1", 20.0, || {
        bird.protocol("tabby")
            .contains("Received: Maximum number of prefixes reached")
    });
    let st = tabby.peer(&ba);
    let err = st
        .last_error
        .as_ref()
        .map(|e| e.to_string().to_lowercase())
        .unwrap_or_default();
    assert!(err.contains("prefix"), "Tabby's status: {st:?}");
}

/// Tabby as graceful-restart helper: BIRD is killed, its routes stay in
/// Tabby's Loc-RIB marked stale, and BIRD's return refreshes them.
#[test]
fn graceful_restart_helper_keeps_bird_routes_stale_until_end_of_rib() {
    let nt = Netns::new("ght");
    let nb = Netns::new("ghb");
    let (ta, ba) = link(&nt, &nb, 35, 1, 2);
    let bp = [BirdPeer::new("tabby", &ba, 65001, &ta, 65000)];
    let prefix = "10.244.0.0/24";
    let bird = Bird::start(&nb, &ba, &bp, &[prefix]);
    let tabby = Tabby::start(
        &nt,
        LocalConfig::new(ta.parse().unwrap(), 65000),
        &ta,
        vec![peer(&ba, 65001)],
    );
    wait_until("Tabby learns BIRD's prefix", 20.0, || {
        tabby.best(prefix).is_some()
    });
    assert!(!tabby.best(prefix).unwrap().stale);

    bird.kill();
    wait_until("Tabby marks the route stale", 5.0, || {
        tabby.best(prefix).is_some_and(|b| b.stale)
    });
    assert!(!tabby.established(&ba));
    // Held well beyond any flap: BIRD advertised a 120 s restart time.
    std::thread::sleep(Duration::from_secs(2));
    assert!(tabby.best(prefix).is_some_and(|b| b.stale));

    let _bird = Bird::start(&nb, &ba, &bp, &[prefix]);
    wait_until("BIRD's End-of-RIB refreshes the route", 20.0, || {
        tabby.best(prefix).is_some_and(|b| !b.stale)
    });
    assert!(tabby.established(&ba));
}

/// The helper's timer: a peer that does not come back within its restart
/// time loses its stale routes.
#[test]
fn graceful_restart_helper_drops_stale_routes_when_the_timer_ends() {
    let nt = Netns::new("gxt");
    let nb = Netns::new("gxb");
    let (ta, ba) = link(&nt, &nb, 36, 1, 2);
    let mut bp = BirdPeer::new("tabby", &ba, 65001, &ta, 65000);
    bp.restart_time = 3;
    let prefix = "10.245.0.0/24";
    let bird = Bird::start(&nb, &ba, &[bp], &[prefix]);
    let tabby = Tabby::start(
        &nt,
        LocalConfig::new(ta.parse().unwrap(), 65000),
        &ta,
        vec![peer(&ba, 65001)],
    );
    wait_until("Tabby learns BIRD's prefix", 20.0, || {
        tabby.best(prefix).is_some()
    });
    bird.kill();
    let killed = Instant::now();
    wait_until("route marked stale", 5.0, || {
        tabby.best(prefix).is_some_and(|b| b.stale)
    });
    wait_until("stale route dropped after the restart time", 10.0, || {
        tabby.best(prefix).is_none()
    });
    let held = killed.elapsed();
    assert!(
        held >= Duration::from_millis(2500),
        "dropped after {held:?}, before the 3 s restart time"
    );
}
