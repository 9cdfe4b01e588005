//! The `Bgp` gRPC service as `tabby-node bgp` serves it
//! ([`BgpService::standalone`]) over a real speaker peered with a real
//! BIRD: peers added and removed through the API, originated prefixes with
//! communities reach BIRD, and the best-path stream opens with a snapshot
//! and then follows BIRD's withdrawal. Uses the bgp crate's interop
//! harness.

#[allow(dead_code)]
#[path = "../../bgp/tests/common/bird.rs"]
mod bird;
#[allow(dead_code)]
#[path = "../../bgp/tests/common/inproc.rs"]
mod inproc;
#[allow(dead_code)]
#[path = "../../bgp/tests/common/netns.rs"]
mod netns;
#[allow(dead_code)]
#[path = "../../bgp/tests/common/tabby.rs"]
mod tabby;
#[allow(dead_code)]
#[path = "../../bgp/tests/common/wait.rs"]
mod wait;

use bird::{Bird, BirdPeer};
use netns::{link, Netns};
use std::time::Duration;
use tabby::Tabby;
use tabby_agent::grpc::bgp::BgpService;
use tabby_bgp::peer_config::LocalConfig;
use tabby_proto::bgp as pb;
use tabby_proto::bgp::best_path_event::Event;
use tabby_proto::bgp::bgp_client::BgpClient;
use tonic::transport::Channel;
use wait::wait_until;

#[test]
fn grpc_service_drives_the_speaker() {
    let nt = Netns::new("svt");
    let nb = Netns::new("svb");
    let (ta, ba) = link(&nt, &nb, 40, 1, 2);
    let bird = Bird::start(
        &nb,
        &ba,
        &[BirdPeer::new("tabby", &ba, 65001, &ta, 65000)],
        &["10.251.0.0/24"],
    );
    let tabby = Tabby::start(
        &nt,
        LocalConfig::new(ta.parse().unwrap(), 65000),
        &ta,
        vec![],
    );
    let speaker = tabby.speaker.clone();
    let port = tabby.run(async move {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(l);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(BgpService::standalone(speaker).into_server())
                .serve_with_incoming(incoming),
        );
        port
    });
    let client = tabby.run(async move {
        BgpClient::connect(format!("http://127.0.0.1:{port}"))
            .await
            .unwrap()
    });

    // Bad input names the field.
    let mut c = client.clone();
    let err = tabby.run(async move {
        c.add_peer(pb::AddPeerRequest {
            peer: Some(pb::PeerConfig {
                address: "10.0.0.300".into(),
                remote_as: 1,
                ..Default::default()
            }),
        })
        .await
        .unwrap_err()
    });
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("peer.address"), "{err:?}");

    let (mut c, b) = (client.clone(), ba.clone());
    tabby.run(async move {
        c.add_peer(pb::AddPeerRequest {
            peer: Some(pb::PeerConfig {
                address: b,
                remote_as: 65001,
                peer_type: pb::PeerType::Global as i32,
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    });
    wait_until("BIRD Established", 20.0, || bird.established("tabby"));
    let list = |c: &BgpClient<Channel>| {
        let mut c = c.clone();
        tabby.run(async move {
            c.list_peers(pb::ListPeersRequest {})
                .await
                .unwrap()
                .into_inner()
        })
    };
    wait_until("ListPeers shows Established with one prefix", 5.0, || {
        let l = list(&client);
        l.peers.len() == 1
            && l.peers[0].state == pb::SessionState::Established as i32
            && l.peers[0].prefixes_accepted == 1
    });
    let st = list(&client).peers.remove(0);
    assert_eq!(
        st.config.as_ref().unwrap().peer_type,
        pb::PeerType::Global as i32
    );
    assert!(st.since_unix > 1_700_000_000, "{st:?}");
    // Both ASes of the session, as node doctor names them in a mismatch.
    assert_eq!(st.peer_open_as, 65001, "{st:?}");
    assert_ne!(st.local_as, 0, "{st:?}");

    let mut c = client.clone();
    tabby.run(async move {
        c.originate(pb::OriginateRequest {
            prefixes: vec!["10.250.0.0/24".into()],
            communities: vec!["65000:100".into()],
        })
        .await
        .unwrap();
    });
    wait_until("BIRD learns the originated prefix", 5.0, || {
        bird.route("10.250.0.0/24").is_some()
    });
    let r = bird.route("10.250.0.0/24").unwrap();
    assert!(r.contains("BGP.community: (65000,100)"), "{r}");

    // Snapshot, then BIRD's withdrawal as a change.
    let mut c = client.clone();
    let (snapshot, withdrawn) = tabby.run(async move {
        let mut s = c
            .watch_best_paths(pb::WatchBestPathsRequest {})
            .await
            .unwrap()
            .into_inner();
        let mut snapshot = Vec::new();
        loop {
            let e = s.message().await.unwrap().unwrap();
            assert!(e.snapshot);
            match e.event.unwrap() {
                Event::Updated(b) => snapshot.push(b),
                Event::EndOfSnapshot(_) => break,
                Event::Withdrawn(w) => panic!("withdrawal {w} inside the snapshot"),
            }
        }
        (snapshot, s)
    });
    let learned = snapshot
        .iter()
        .find(|b| b.prefix == "10.251.0.0/24")
        .expect("BIRD's prefix in the snapshot");
    assert_eq!(learned.from_peer, ba);
    assert_eq!(learned.as_path, vec![65001]);
    assert!(snapshot
        .iter()
        .any(|b| b.prefix == "10.250.0.0/24" && b.from_peer.is_empty()));

    bird.reconfigure(&ba, &[BirdPeer::new("tabby", &ba, 65001, &ta, 65000)], &[]);
    let mut s = withdrawn;
    let got = tabby.run(async move {
        tokio::time::timeout(Duration::from_secs(5), async move {
            loop {
                let e = s.message().await.unwrap().unwrap();
                if let Some(Event::Withdrawn(p)) = e.event {
                    return (p, e.snapshot);
                }
            }
        })
        .await
    });
    assert_eq!(got.unwrap(), ("10.251.0.0/24".to_string(), false));

    let (mut c, b) = (client.clone(), ba.clone());
    tabby.run(async move {
        c.remove_peer(pb::RemovePeerRequest { address: b })
            .await
            .unwrap();
    });
    wait_until("BIRD sees the session closed", 5.0, || {
        !bird.established("tabby")
    });
    assert!(list(&client).peers.is_empty());
}

/// A watcher that stops reading falls behind the change buffer and is told
/// so (`Lagged`, on which the gRPC stream sends a fresh snapshot); the new
/// snapshot holds every prefix originated meanwhile. Behind gRPC, HTTP/2
/// windows and the stream's queue absorb tens of thousands of events
/// first, so this is checked on the speaker's watch directly.
#[test]
fn lagging_watcher_is_told_and_a_new_snapshot_is_complete() {
    use tokio::sync::broadcast::error::RecvError;
    let nt = Netns::new("svl");
    let tabby = Tabby::start(
        &nt,
        LocalConfig::new("10.179.41.1".parse().unwrap(), 65000),
        "127.0.0.1",
        vec![],
    );
    let speaker = tabby.speaker.clone();
    let (lagged, snapshot) = tabby.run(async move {
        let mut w = speaker.watch().await.unwrap();
        assert!(w.snapshot.is_empty());
        // One change batch per call, more than the buffer holds.
        for i in 0..5000u32 {
            let p = format!("10.{}.{}.0/24", 100 + i / 256, i % 256)
                .parse()
                .unwrap();
            speaker.originate(vec![p], vec![]).await.unwrap();
        }
        let lagged = matches!(w.changes.recv().await, Err(RecvError::Lagged(_)));
        (lagged, speaker.watch().await.unwrap().snapshot.len())
    });
    assert!(
        lagged,
        "a watcher 5000 batches behind was not told it lagged"
    );
    assert_eq!(snapshot, 5000);
}
