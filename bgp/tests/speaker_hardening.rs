//! Issue 15 against the running speaker, on real sockets in namespaces:
//! scripted peers (`common::raw`) that park connections or send oversized
//! UPDATEs, BIRD 2 as the observer of what Tabby passes on, and the peer
//! status after a hold-timer expiry.

mod common;

use common::bird::{Bird, BirdPeer};
use common::inproc::runtime;
use common::netns::{link_named, Netns};
use common::raw::{open, Got, RawPeer};
use common::tabby::{peer, Tabby};
use common::{eventually, wait_until};
use std::time::Duration;
use tabby_bgp::peer_config::{LocalConfig, PeerConfig};
use tabby_bgp::wire::{
    AsSegment, Capability, Message, Origin, PathAttributes, RawAttribute, Update,
};

const TABBY_AS: u32 = 65000;
const PEER_AS: u32 = 65001;

fn passive(address: &str, asn: u32) -> PeerConfig {
    let mut p = peer(address, asn);
    p.passive = true;
    p
}

/// Tabby in one namespace (`.1`), the scripted peers in another (`.2`,
/// and `.3` for a second one), so Tabby has the lower router id: the
/// peer's connections are the ones §6.8 keeps.
struct Lab {
    tabby: Tabby,
    peer_rt: tokio::runtime::Runtime,
    ta: String,
    ba: String,
    bb: String,
    _nt: Netns,
    nb: Netns,
}

fn lab(tag: &str, subnet: u8, peers: impl FnOnce(&str, &str) -> Vec<PeerConfig>) -> Lab {
    let nt = Netns::new(&format!("{tag}t"));
    let nb = Netns::new(&format!("{tag}b"));
    let l = link_named(&nt, &nb, subnet, 1, 2);
    let bb = format!("10.179.{subnet}.3");
    nb.ip(&["addr", "add", &format!("{bb}/24"), "dev", &l.if_b]);
    let tabby = Tabby::start(
        &nt,
        LocalConfig::new(l.addr_a.parse().unwrap(), TABBY_AS),
        &l.addr_a,
        peers(&l.addr_b, &bb),
    );
    Lab {
        tabby,
        peer_rt: runtime(&nb),
        ta: l.addr_a,
        ba: l.addr_b,
        bb,
        _nt: nt,
        nb,
    }
}

impl Lab {
    fn run<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = T> + Send + 'static,
    ) -> T {
        common::inproc::in_ns(&self.peer_rt, f)
    }

    /// A scripted peer from `from` that completes the handshake.
    fn legit(&self, from: &str, id: &str) -> Result<(), Box<Got>> {
        let (from, to, id) = (from.to_owned(), self.ta.clone(), id.to_owned());
        self.run(async move {
            let mut p = RawPeer::connect(&from, &to).await;
            p.establish(open(PEER_AS, 9, &id, false)).await
        })
    }
}

/// Connections the test keeps open while a real one tries, held by a task
/// on the peers' runtime until the returned sender is dropped.
fn park(
    lab: &Lab,
    how: &'static str,
    n: usize,
) -> (
    tokio::sync::oneshot::Sender<()>,
    std::sync::mpsc::Receiver<Vec<Got>>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (tx, rx) = std::sync::mpsc::channel();
    let (from, to) = (lab.ba.clone(), lab.ta.clone());
    let ready = std::sync::Arc::new(std::sync::Barrier::new(2));
    let r2 = ready.clone();
    lab.peer_rt.spawn(async move {
        let mut parked = Vec::new();
        for _ in 0..n {
            let mut p = RawPeer::connect(&from, &to).await;
            if how == "hold0" {
                p.send(&Message::Open(open(PEER_AS, 0, &from, false))).await;
                let _ = p.wait_for(3.0, |m| matches!(m, Message::Keepalive)).await;
            }
            parked.push(p);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        r2.wait();
        let _ = stopped.await;
        let mut seen = Vec::new();
        for p in &mut parked {
            seen.push(p.wait_for(1.0, |_| false).await);
        }
        let _ = tx.send(seen);
    });
    ready.wait();
    (stop, rx)
}

#[test]
fn a_connection_that_never_sends_open_does_not_block_the_peer() {
    let lab = lab("pko", 70, |ba, _| vec![passive(ba, PEER_AS)]);
    let (stop, _seen) = park(&lab, "silent", 1);
    for i in 0..2 {
        let r = lab.legit(&lab.ba, &lab.ba);
        assert!(r.is_ok(), "real session {i} refused: {r:?}");
        // The scripted peer closed that session: until Tabby has read the
        // close, a new connection meets an Established session and loses
        // its collision (6/7), as it should; that is not what is tested.
        wait_until("the first session closed", 10.0, || {
            !lab.tabby.established(&lab.ba)
        });
    }
    drop(stop);
}

#[test]
fn an_open_with_hold_time_zero_and_no_keepalive_does_not_block_the_peer() {
    let lab = lab("pkz", 71, |ba, _| vec![passive(ba, PEER_AS)]);
    let (stop, seen) = park(&lab, "hold0", 1);
    let r = lab.legit(&lab.ba, &lab.ba);
    assert!(r.is_ok(), "real session refused: {r:?}");
    drop(stop);
    let seen = seen.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(
        matches!(seen[0].notification(), Some((6, 7))) || matches!(seen[0], Got::Closed(_)),
        "the parked connection survived: {:?}",
        seen[0]
    );
}

#[test]
fn two_silent_connections_do_not_refuse_the_peer() {
    let lab = lab("pk2", 72, |ba, _| vec![passive(ba, PEER_AS)]);
    let (stop, _seen) = park(&lab, "silent", 2);
    let r = lab.legit(&lab.ba, &lab.ba);
    assert!(r.is_ok(), "real session refused: {r:?}");
    drop(stop);
}

#[test]
fn a_silent_connection_is_closed_after_the_open_timeout() {
    let lab = lab("pkt", 73, |ba, _| {
        let mut p = passive(ba, PEER_AS);
        p.open_timeout = Duration::from_secs(2);
        vec![p]
    });
    let (from, to) = (lab.ba.clone(), lab.ta.clone());
    let got = lab.run(async move {
        let mut p = RawPeer::connect(&from, &to).await;
        p.wait_for(6.0, |_| false).await
    });
    assert_eq!(got.notification(), Some((4, 0)), "{got:?}");
}

/// An attribute that makes the peer's UPDATE exactly 4,096 bytes: passed
/// on over eBGP, our AS is prepended and it no longer fits.
fn big_update(prefix: &str, path: &[u32], next_hop: &str, extra: usize) -> Update {
    Update {
        attrs: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: vec![AsSegment::Sequence(path.to_vec())],
            next_hop: Some(next_hop.parse().unwrap()),
            other: vec![RawAttribute {
                flags: 0xc0,
                code: 240,
                data: vec![b'Y'; extra],
            }],
            ..PathAttributes::default()
        },
        nlri: vec![prefix.parse().unwrap()],
        ..Update::default()
    }
}

/// Origin 4 + AS_PATH 9 + NEXT_HOP 7 + the attribute's 4-byte header,
/// 23 of header and lengths, 4 of NLRI: 4,096 - 51.
const FILL_4096: usize = 4096 - 51;

#[test]
fn an_update_too_large_to_pass_on_withdraws_the_prefix() {
    let lab = lab("big", 74, |ba, bb| {
        let mut observer = peer(bb, 65007);
        observer.families = vec![tabby_bgp::wire::Family::IPV4_UNICAST];
        vec![passive(ba, PEER_AS), observer]
    });
    let bird = Bird::start(
        &lab.nb,
        &lab.bb,
        &[BirdPeer::new("tabby", &lab.bb, 65007, &lab.ta, TABBY_AS)],
        &[],
    );
    wait_until("BIRD Established", 20.0, || bird.established("tabby"));
    let prefix = "10.203.0.0/24";
    let (from, to) = (lab.ba.clone(), lab.ta.clone());
    let (go, mut went) = tokio::sync::mpsc::unbounded_channel::<Update>();
    lab.peer_rt.spawn(async move {
        let mut p = RawPeer::connect(&from, &to).await;
        p.establish(open(PEER_AS, 90, &from, false))
            .await
            .expect("source peer establishes");
        while let Some(u) = went.recv().await {
            p.send(&Message::Update(u)).await;
        }
        // Keep the session while the test looks at BIRD.
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    go.send(big_update(prefix, &[PEER_AS], &lab.ba, 8)).unwrap();
    wait_until("BIRD has the small route", 10.0, || {
        bird.route(prefix).is_some()
    });
    let big = big_update(prefix, &[PEER_AS], &lab.ba, FILL_4096);
    let mut check = Vec::new();
    tabby_bgp::wire::encode(
        &Message::Update(big.clone()),
        &Default::default(),
        &mut check,
    )
    .unwrap();
    assert_eq!(check.len(), 4096);
    go.send(big).unwrap();
    wait_until("Tabby has the big route", 5.0, || {
        lab.tabby
            .best(prefix)
            .is_some_and(|b| b.next_hop == Some(lab.ba.parse().unwrap()))
    });
    assert!(
        eventually(5.0, || bird.route(prefix).is_none()),
        "BIRD kept the stale path: {:?}",
        bird.route(prefix)
    );
    assert!(bird.established("tabby"), "the observer's session broke");
}

#[test]
fn with_extended_messages_a_large_update_is_passed_on() {
    let lab = lab("ext", 75, |ba, bb| {
        vec![passive(ba, PEER_AS), passive(bb, 65002)]
    });
    let prefix = "10.204.0.0/24";
    let (src, rcv, to) = (lab.ba.clone(), lab.bb.clone(), lab.ta.clone());
    let got = lab.run(async move {
        let mut r = RawPeer::connect(&rcv, &to).await;
        r.establish(open(65002, 90, &rcv, true))
            .await
            .expect("receiver");
        let theirs = r.their_open.clone().unwrap();
        assert!(
            theirs.capabilities.contains(&Capability::ExtendedMessage),
            "Tabby does not advertise extended messages: {theirs:?}"
        );
        assert!(r.ctx.extended_message);
        let mut s = RawPeer::connect(&src, &to).await;
        s.establish(open(PEER_AS, 90, &src, false))
            .await
            .expect("source");
        let big = big_update(prefix, &[PEER_AS], &src, FILL_4096);
        s.send(&Message::Update(big)).await;
        let want: ipnet::Ipv4Net = prefix.parse().unwrap();
        r.wait_for(
            5.0,
            |m| matches!(m, Message::Update(u) if u.nlri.contains(&want)),
        )
        .await
    });
    let Got::Msg(Message::Update(u)) = got else {
        panic!("no UPDATE for {prefix}: {got:?}");
    };
    let extra = u
        .attrs
        .other
        .iter()
        .find(|a| a.code == 240)
        .expect("attribute");
    assert_eq!(extra.data.len(), FILL_4096);
    assert_eq!(
        u.attrs.as_path,
        vec![AsSegment::Sequence(vec![TABBY_AS, PEER_AS])]
    );
}

#[test]
fn the_status_names_the_latest_failure_after_a_hold_timer_expiry() {
    let lab = lab("hte", 76, |ba, _| {
        let mut p = peer(ba, PEER_AS);
        p.hold_time = 3;
        vec![p]
    });
    // Tabby's own connection attempts go unanswered (a host that vanished
    // looks like this); only the scripted peer's connection gets through.
    let rules = "table inet hte {\n chain c {\n  type filter hook input priority 0; policy accept;\n  tcp dport 179 drop\n }\n}\n";
    let mut nft = lab.nb.command("nft");
    nft.args(["-f", "-"]).stdin(std::process::Stdio::piped());
    let mut child = nft.spawn().expect("nft");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), rules.as_bytes()).unwrap();
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());

    let (from, to) = (lab.ba.clone(), lab.ta.clone());
    lab.peer_rt.spawn(async move {
        let mut p = RawPeer::connect(&from, &to).await;
        p.establish(open(PEER_AS, 3, &from, false))
            .await
            .expect("establishes");
        // Then silence: no KEEPALIVE, so Tabby's hold timer expires.
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(p);
    });
    wait_until("Established", 10.0, || lab.tabby.established(&lab.ba));
    wait_until("hold timer expiry", 10.0, || {
        lab.tabby
            .peer(&lab.ba)
            .last_error
            .is_some_and(|e| e.error.is_hold_timer_expired())
    });
    let latest = || lab.tabby.peer(&lab.ba).last_error.map(|e| e.to_string());
    assert!(
        eventually(6.0, || latest().is_some_and(|e| e.starts_with("Connect: "))),
        "the status still shows {:?}",
        latest()
    );
}

/// Item 4: a Tabby peer that preserved forwarding restarts with one of
/// its two prefixes; its End-of-RIB drops the other at once and ends the
/// graceful-restart wait (the timer no longer fires long after).
#[test]
fn end_of_rib_ends_the_graceful_restart_wait() {
    let nt = Netns::new("eort");
    let nb = Netns::new("eorb");
    let l = link_named(&nt, &nb, 77, 1, 2);
    let (ta, ba) = (l.addr_a, l.addr_b);
    let (kept, gone) = ("10.244.1.0/24", "10.244.2.0/24");
    let start_b = |restarting: bool, prefixes: &[&str]| {
        let mut local = LocalConfig::new(ba.parse().unwrap(), PEER_AS);
        local.restarting = restarting;
        let originate = prefixes.iter().map(|p| p.parse().unwrap()).collect();
        Tabby::start_with(&nb, local, &ba, vec![peer(&ta, TABBY_AS)], originate)
    };
    let b = start_b(false, &[kept, gone]);
    let tabby = Tabby::start(
        &nt,
        LocalConfig::new(ta.parse().unwrap(), TABBY_AS),
        &ta,
        vec![peer(&ba, PEER_AS)],
    );
    wait_until("both prefixes", 20.0, || {
        tabby.best(kept).is_some() && tabby.best(gone).is_some()
    });
    b.kill();
    wait_until("routes stale", 15.0, || {
        tabby.best(kept).is_some_and(|b| b.stale)
    });
    let st = tabby.peer(&ba);
    assert!(st.graceful_restart_until.is_some(), "{st:?}");
    let mut b = None;
    for _ in 0..50 {
        // The killed speaker's socket may linger a moment.
        match std::panic::catch_unwind(|| start_b(true, &[kept])) {
            Ok(t) => {
                b = Some(t);
                break;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    let _b = b.expect("peer restarts");
    wait_until("session back", 20.0, || tabby.established(&ba));
    wait_until("End-of-RIB drops the prefix not sent again", 10.0, || {
        tabby.best(gone).is_none()
    });
    assert!(tabby.best(kept).is_some_and(|b| !b.stale));
    let st = tabby.peer(&ba);
    assert_eq!(
        st.graceful_restart_until, None,
        "the restart timer still runs after End-of-RIB"
    );
}
