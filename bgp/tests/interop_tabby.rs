//! Tabby peered with Tabby (both active, each accepting the other's
//! connection), and the RFC 4271 §6.8 collision rule exercised directly: a
//! second connection from an Established peer without graceful restart.

mod common;

use common::netns::{link, Netns};
use common::tabby::{peer, Tabby};
use common::wait_until;
use std::time::Duration;
use tabby_bgp::peer_config::LocalConfig;

#[test]
fn two_active_speakers_settle_on_one_session() {
    let na = Netns::new("tta");
    let nb = Netns::new("ttb");
    let (a, b) = link(&na, &nb, 60, 1, 2);
    let ta = Tabby::start_with(
        &na,
        LocalConfig::new(a.parse().unwrap(), 65000),
        &a,
        vec![peer(&b, 65001)],
        vec!["10.246.0.0/24".parse().unwrap()],
    );
    let tb = Tabby::start_with(
        &nb,
        LocalConfig::new(b.parse().unwrap(), 65001),
        &b,
        vec![peer(&a, 65000)],
        vec!["10.247.0.0/24".parse().unwrap()],
    );
    wait_until("both Established", 20.0, || {
        ta.established(&b) && tb.established(&a)
    });
    let since = (ta.peer(&b).since, tb.peer(&a).since);
    wait_until("routes both ways", 5.0, || {
        ta.best("10.247.0.0/24").is_some() && tb.best("10.246.0.0/24").is_some()
    });
    // Stable: no session replaced once up.
    std::thread::sleep(Duration::from_secs(3));
    assert!(ta.established(&b) && tb.established(&a));
    assert_eq!(
        (ta.peer(&b).since, tb.peer(&a).since),
        since,
        "session flapped"
    );
    let got = ta.best("10.247.0.0/24").unwrap();
    assert_eq!(got.as_path, vec![65001]);
    assert_eq!(got.next_hop, Some(b.parse().unwrap()));
}

/// A second connection from an Established peer (no graceful restart)
/// loses the §6.8 collision: it gets Cease 6/7 and the session stays.
#[test]
fn second_connection_from_established_peer_gets_cease_collision() {
    use common::bird::{Bird, BirdPeer};
    use common::inproc::{in_ns, runtime};
    use tabby_bgp::transport::MessageReader;
    use tabby_bgp::wire::{self, Capability, Message, Open, SessionContext};

    let nt = Netns::new("cot");
    let nb = Netns::new("cob");
    let (ta, ba) = link(&nt, &nb, 61, 1, 2);
    let mut bp = BirdPeer::new("tabby", &ba, 65001, &ta, 65000);
    bp.graceful_restart = false;
    let bird = Bird::start(&nb, &ba, &[bp], &[]);
    let tabby = Tabby::start(
        &nt,
        LocalConfig::new(ta.parse().unwrap(), 65000),
        &ta,
        vec![peer(&ba, 65001)],
    );
    wait_until("Established", 20.0, || tabby.established(&ba));
    let since = tabby.peer(&ba).since;

    let rt = runtime(&nb);
    let (to, from) = (ta.clone(), ba.clone());
    let notification = in_ns(&rt, async move {
        let s = dial(&from, &to).await;
        let (r, mut w) = s.into_split();
        let open = Message::Open(Open {
            version: 4,
            my_as: 65001,
            hold_time: 9,
            bgp_id: from.parse().unwrap(),
            capabilities: vec![Capability::FourOctetAs(65001)],
        });
        let mut buf = Vec::new();
        wire::encode(&open, &SessionContext::default(), &mut buf).unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut w, &buf)
            .await
            .unwrap();
        let mut reader = MessageReader::new(r);
        loop {
            match tokio::time::timeout(
                Duration::from_secs(5),
                reader.next(&SessionContext::default()),
            )
            .await
            .expect("no answer")
            .expect("read")
            {
                Message::Notification(n) => return n,
                _ => continue,
            }
        }
    });
    assert_eq!((notification.code, notification.subcode), (6, 7));
    std::thread::sleep(Duration::from_millis(500));
    assert!(tabby.established(&ba));
    assert!(bird.established("tabby"));
    assert_eq!(
        tabby.peer(&ba).since,
        since,
        "existing session was replaced"
    );
}

/// Garbage on a connection from a configured address: Tabby answers with
/// the header-error NOTIFICATION (1/1, connection not synchronised),
/// closes that connection, and the real session carries on.
#[test]
fn garbage_from_a_peer_address_gets_a_header_notification() {
    use common::bird::{Bird, BirdPeer};
    use common::inproc::{in_ns, runtime};
    use tabby_bgp::transport::MessageReader;
    use tabby_bgp::wire::{Message, SessionContext};

    let nt = Netns::new("gat");
    let nb = Netns::new("gab");
    let (ta, ba) = link(&nt, &nb, 62, 1, 2);
    let bird = Bird::start(
        &nb,
        &ba,
        &[BirdPeer::new("tabby", &ba, 65001, &ta, 65000)],
        &["10.248.0.0/24"],
    );
    let tabby = Tabby::start(
        &nt,
        LocalConfig::new(ta.parse().unwrap(), 65000),
        &ta,
        vec![peer(&ba, 65001)],
    );
    wait_until("Established", 20.0, || tabby.established(&ba));
    let since = tabby.peer(&ba).since;
    let rt = runtime(&nb);
    let (to, from) = (ta.clone(), ba.clone());
    let n = in_ns(&rt, async move {
        let s = dial(&from, &to).await;
        let (r, mut w) = s.into_split();
        tokio::io::AsyncWriteExt::write_all(&mut w, &[0u8; 64])
            .await
            .unwrap();
        let mut reader = MessageReader::new(r);
        loop {
            let m = tokio::time::timeout(
                Duration::from_secs(5),
                reader.next(&SessionContext::default()),
            )
            .await
            .expect("no answer")
            .expect("read");
            if let Message::Notification(n) = m {
                return n;
            }
        }
    });
    assert_eq!((n.code, n.subcode), (1, 1));
    std::thread::sleep(Duration::from_millis(500));
    assert!(tabby.established(&ba) && bird.established("tabby"));
    assert_eq!(tabby.peer(&ba).since, since);
    assert!(tabby.best("10.248.0.0/24").is_some());
}

/// A TCP connection to the speaker's port 179 from `from`, as a second
/// (rogue) client would open one; runs inside the caller's namespace.
async fn dial(from: &str, to: &str) -> tokio::net::TcpStream {
    let opts = tabby_bgp::transport::ConnectOptions {
        source: Some(from.parse().unwrap()),
        password: None,
        ttl_security: None,
    };
    let to = format!("{to}:179").parse().unwrap();
    tabby_bgp::transport::connect(to, &opts, Duration::from_secs(2))
        .await
        .unwrap()
}

/// The race two active speakers run at start, played by hand: Tabby's
/// session is Established on its own connection when the peer's dial (which
/// the peer has already given up, having taken Tabby's) arrives and closes
/// at once. That connection's FSM must not go on to dial the peer a
/// ConnectRetry later: its OPEN would make both ends take the peer for
/// restarted (RFC 4724 §4.2) and replace the working session, the flap
/// `two_active_speakers_settle_on_one_session` caught on a loaded machine.
#[test]
fn a_connection_the_peer_gave_up_does_not_redial_an_established_peer() {
    use common::inproc::runtime;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tabby_bgp::transport::MessageReader;
    use tabby_bgp::wire::{self, Capability, Message, Open, SessionContext};

    let nt = Netns::new("lot");
    let nb = Netns::new("lob");
    let (ta, ba) = link(&nt, &nb, 63, 1, 2);
    // The peer: answers the first connection with a handshake and keeps it
    // alive; counts every connection.
    let rt = runtime(&nb);
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let (listen, id) = (format!("{ba}:179"), ba.clone());
    let l = rt.block_on(rt.spawn(async move { tokio::net::TcpListener::bind(&listen).await }));
    let l = l.unwrap().expect("bind the peer's port 179");
    rt.spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            if count.fetch_add(1, Ordering::SeqCst) > 0 {
                continue; // dropped: closed
            }
            let (r, mut w) = s.into_split();
            let ctx = SessionContext::default();
            let open = Message::Open(Open {
                version: 4,
                my_as: 65001,
                hold_time: 9,
                bgp_id: id.parse().unwrap(),
                capabilities: vec![Capability::FourOctetAs(65001)],
            });
            let mut buf = Vec::new();
            wire::encode(&open, &ctx, &mut buf).unwrap();
            wire::encode(&Message::Keepalive, &ctx, &mut buf).unwrap();
            let mut ka = Vec::new();
            wire::encode(&Message::Keepalive, &ctx, &mut ka).unwrap();
            tokio::spawn(async move {
                let mut reader = MessageReader::new(r);
                while reader.next(&ctx).await.is_ok() {}
            });
            tokio::spawn(async move {
                let mut out = buf;
                while tokio::io::AsyncWriteExt::write_all(&mut w, &out)
                    .await
                    .is_ok()
                {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    out = ka.clone();
                }
            });
        }
    });
    let tabby = Tabby::start(
        &nt,
        LocalConfig::new(ta.parse().unwrap(), 65000),
        &ta,
        vec![peer(&ba, 65001)],
    );
    wait_until("Established", 20.0, || tabby.established(&ba));
    let since = tabby.peer(&ba).since;
    assert_eq!(accepted.load(Ordering::SeqCst), 1);

    // The peer's own dial, given up: connected, then closed unsaid.
    let (to, from) = (ta.clone(), ba.clone());
    rt.block_on(rt.spawn(async move { drop(dial(&from, &to).await) }))
        .unwrap();
    // Two ConnectRetry periods (1 s each in these tests).
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "Tabby dialled a peer whose session is up"
    );
    assert!(tabby.established(&ba));
    assert_eq!(tabby.peer(&ba).since, since, "the session was replaced");
}
