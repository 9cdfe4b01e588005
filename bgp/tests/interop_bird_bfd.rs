//! BFD with a real BIRD 2 (`protocol bfd`, `bfd on`): both sides' BFD
//! sessions come Up next to the BGP session; when everything from BIRD to
//! Tabby is dropped, Tabby declares BFD Down and closes the BGP session
//! within the detection time (not the hold time), withdrawing the routes
//! learned from BIRD; once the drop goes, BFD and BGP come back.

mod common;

use common::bird::{Bird, BirdPeer};
use common::netns::{link, Netns};
use common::tabby::{peer, Tabby};
use common::wait_until;
use std::time::{Duration, Instant};
use tabby_bfd::{Diag, State as BfdState};
use tabby_bgp::fsm::{PeerError, State};
use tabby_bgp::peer_config::{BfdSettings, LocalConfig};

fn nft(ns: &Netns, script: &str) {
    let out = ns
        .command("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .expect("stdin")
                .write_all(script.as_bytes())?;
            c.wait_with_output()
        })
        .expect("run nft");
    assert!(
        out.status.success(),
        "nft {script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn bfd_state(t: &Tabby, addr: &str) -> Option<BfdState> {
    t.peer(addr).bfd.map(|b| b.state)
}

#[test]
fn bfd_down_closes_the_session_within_the_detection_time() {
    let nt = Netns::new("bfdt");
    let nb = Netns::new("bfdb");
    let (ta, ba) = link(&nt, &nb, 61, 1, 2);
    let mut bp = BirdPeer::new("tabby", &ba, 65002, &ta, 65001);
    bp.bfd = true;
    let bird = Bird::start(&nb, &ba, &[bp], &["10.212.0.0/24"]);
    let mut p = peer(&ba, 65002);
    p.bfd = Some(BfdSettings::default());
    let hold = p.hold_time;
    let tabby = Tabby::start(
        &nt,
        LocalConfig::new(ta.parse().unwrap(), 65001),
        &ta,
        vec![p],
    );

    wait_until("Tabby Established with BIRD", 20.0, || {
        tabby.established(&ba)
    });
    wait_until("Tabby's BFD Up", 10.0, || {
        bfd_state(&tabby, &ba) == Some(BfdState::Up)
    });
    wait_until("BIRD's BFD Up", 10.0, || {
        let s = bird.birdc(&["show", "bfd", "sessions"]);
        s.lines().any(|l| l.starts_with(&ta) && l.contains(" Up "))
    });
    println!("{}", bird.birdc(&["show", "bfd", "sessions"]));
    wait_until("Tabby learns 10.212.0.0/24", 5.0, || {
        tabby.best("10.212.0.0/24").is_some()
    });
    // BIRD's 300 ms × 3 against our 300 ms: 0.9 s once Poll/Final is done.
    wait_until("fast BFD timers", 5.0, || {
        tabby
            .peer(&ba)
            .bfd
            .is_some_and(|b| b.detection_time == Duration::from_millis(900))
    });
    let detect = tabby.peer(&ba).bfd.unwrap().detection_time;

    nft(&nt, &format!("table inet bfdtest {{\n chain in {{ type filter hook input priority 0; ip saddr {ba} drop; }}\n}}\n"));
    let t0 = Instant::now();
    wait_until("BGP session down", 5.0, || !tabby.established(&ba));
    let took = t0.elapsed();
    println!(
        "BFD down after {:.2} s (detect time {:.1} s; hold time {hold} s)",
        took.as_secs_f64(),
        detect.as_secs_f64()
    );
    // The poll loop sleeps 100 ms between looks.
    assert!(took < detect + Duration::from_millis(250), "took {took:?}");
    let st = tabby.peer(&ba);
    let b = st.bfd.expect("BFD status");
    assert_eq!(
        (b.state, b.local_diag),
        (BfdState::Down, Diag::ControlDetectionTimeExpired)
    );
    let err = st.last_error.expect("last error");
    assert_eq!(
        err.error,
        PeerError::BfdDown(Diag::ControlDetectionTimeExpired)
    );
    assert_eq!(err.state, State::Established);
    assert_eq!(
        err.to_string(),
        "Established: BFD session down (Control Detection Time Expired)"
    );
    assert!(
        tabby.best("10.212.0.0/24").is_none(),
        "BIRD's route kept after BFD Down"
    );
    assert!(
        st.graceful_restart_until.is_none(),
        "no graceful-restart retention"
    );
    // BIRD hears our Down (diag 1) and drops its side too.
    wait_until("BIRD's BGP session down", 5.0, || {
        !bird.established("tabby")
    });

    nft(&nt, "delete table inet bfdtest");
    wait_until("Tabby's BFD Up again", 10.0, || {
        bfd_state(&tabby, &ba) == Some(BfdState::Up)
    });
    wait_until("Tabby Established again", 20.0, || tabby.established(&ba));
    wait_until("10.212.0.0/24 back", 5.0, || {
        tabby.best("10.212.0.0/24").is_some()
    });
    wait_until("BIRD's BFD and BGP back", 10.0, || {
        let s = bird.birdc(&["show", "bfd", "sessions"]);
        s.lines().any(|l| l.starts_with(&ta) && l.contains(" Up ")) && bird.established("tabby")
    });
}
