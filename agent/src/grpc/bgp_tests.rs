//! The `Bgp` service's two modes, over a speaker with no sockets (no
//! listener, one passive peer): on the node socket every write is refused
//! and leaves the speaker as it was, and ListPeers reports the agent's peer
//! types; standalone, the same writes reach the speaker.

use super::bgp::{BgpService, PeerTypes};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use tabby_bgp::peer_config::{LocalConfig, PeerConfig};
use tabby_bgp::speaker::{Speaker, SpeakerConfig};
use tabby_proto::bgp as pb;
use tabby_proto::bgp::bgp_server::Bgp;
use tonic::{Code, Request, Status};

const MESH_PEER: &str = "10.0.0.2";

async fn speaker() -> Speaker {
    let mut peer = PeerConfig::new(MESH_PEER.parse().unwrap(), 64512);
    // Passive and no listener: the test opens no socket.
    peer.passive = true;
    Speaker::start(SpeakerConfig {
        local: LocalConfig::new("10.0.0.1".parse().unwrap(), 64512),
        listen: None,
        peers: vec![peer],
        originate: Vec::new(),
    })
    .await
    .expect("speaker starts")
}

fn add_peer(address: &str) -> Request<pb::AddPeerRequest> {
    Request::new(pb::AddPeerRequest {
        peer: Some(pb::PeerConfig {
            address: address.into(),
            remote_as: 64512,
            peer_type: pb::PeerType::Global as i32,
            ..Default::default()
        }),
    })
}

fn originate(prefix: &str) -> Request<pb::OriginateRequest> {
    Request::new(pb::OriginateRequest {
        prefixes: vec![prefix.into()],
        communities: Vec::new(),
    })
}

fn assert_refused(e: Status, instead: &str) {
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(
        e.message().contains("only writer") && e.message().contains(instead),
        "{e:?}"
    );
}

#[tokio::test]
async fn node_socket_refuses_writes_and_reports_the_agents_peer_types() {
    let speaker = speaker().await;
    let mesh: IpAddr = MESH_PEER.parse().unwrap();
    let types: PeerTypes = Arc::new(move || HashMap::from([(mesh, pb::PeerType::NodeToNodeMesh)]));
    let svc = BgpService::node(speaker.clone(), types);

    assert_refused(
        svc.add_peer(add_peer("10.0.0.3")).await.unwrap_err(),
        "BGPPeer",
    );
    let remove = Request::new(pb::RemovePeerRequest {
        address: MESH_PEER.into(),
    });
    assert_refused(svc.remove_peer(remove).await.unwrap_err(), "BGPPeer");
    assert_refused(
        svc.originate(originate("10.250.0.0/24")).await.unwrap_err(),
        "IPPool",
    );
    let withdraw = Request::new(pb::WithdrawRequest {
        prefixes: vec!["10.250.0.0/24".into()],
    });
    assert_refused(svc.withdraw(withdraw).await.unwrap_err(), "IPPool");
    // Refused before the input is looked at: a bad request gets the same.
    assert_refused(svc.add_peer(add_peer("x")).await.unwrap_err(), "BGPPeer");

    // Nothing reached the speaker.
    let peers = speaker.peers().await.unwrap();
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].config.address, mesh);
    assert!(speaker.best_paths().await.unwrap().is_empty());

    let list = svc
        .list_peers(Request::new(pb::ListPeersRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.peers.len(), 1);
    let config = list.peers[0].config.as_ref().unwrap();
    assert_eq!(config.address, MESH_PEER);
    assert_eq!(config.peer_type, pb::PeerType::NodeToNodeMesh as i32);
}

#[tokio::test]
async fn standalone_serves_every_write() {
    let speaker = speaker().await;
    let svc = BgpService::standalone(speaker.clone());
    svc.originate(originate("10.250.0.0/24")).await.unwrap();
    assert_eq!(speaker.best_paths().await.unwrap().len(), 1);
    let withdraw = Request::new(pb::WithdrawRequest {
        prefixes: vec!["10.250.0.0/24".into()],
    });
    svc.withdraw(withdraw).await.unwrap();
    assert!(speaker.best_paths().await.unwrap().is_empty());
    let remove = Request::new(pb::RemovePeerRequest {
        address: MESH_PEER.into(),
    });
    svc.remove_peer(remove).await.unwrap();
    assert!(speaker.peers().await.unwrap().is_empty());
    // Writes are served, so their input is checked (a valid AddPeer would
    // start connecting, which a unit test must not).
    let e = svc.add_peer(add_peer("x")).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("peer.address"), "{e:?}");
}
