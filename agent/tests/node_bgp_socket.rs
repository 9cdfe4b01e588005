//! The `Bgp` service on a real tabby-node's socket is read-only: two
//! tabby-node processes in their own network namespaces (a veth between
//! them, one SQLite datastore, as node_two_nodes.rs runs them) bring up
//! their mesh session; then, over node-a's unix socket, `Bgp.ListPeers`
//! types node-b as node-to-node mesh, and `AddPeer` and `Originate` are
//! refused with FAILED_PRECONDITION, naming what to change instead, and
//! change nothing. Needs root.

#[allow(dead_code)]
#[path = "../../bgp/tests/common/netns.rs"]
mod netns;
#[allow(dead_code)]
mod node_common;
#[allow(dead_code)]
#[path = "../../bgp/tests/common/wait.rs"]
mod wait;

use netns::{link_named, Netns};
use node_common::Daemon;
use std::path::Path;
use tabby_proto::bgp as pb;
use tabby_proto::bgp::bgp_client::BgpClient;
use tonic::transport::Channel;
use wait::wait_until;

fn start(ns: &Netns, name: &str, dir: &Path) -> Daemon {
    node_common::mesh_node(ns, name, dir)
}

/// A `Bgp` client on `name`'s node socket, or None while it isn't up.
async fn client(dir: &Path, name: &str) -> Option<BgpClient<Channel>> {
    let sock = dir.join(name).join("run").join("tabby.sock");
    let ch = tabby_agent::grpc::connect_unix(&sock).await.ok()?;
    Some(BgpClient::new(ch))
}

async fn list_peers(dir: &Path, name: &str) -> Option<Vec<pb::PeerStatus>> {
    let mut c = client(dir, name).await?;
    let r = c.list_peers(pb::ListPeersRequest {}).await.ok()?;
    Some(r.into_inner().peers)
}

#[test]
fn node_socket_bgp_is_read_only_and_types_mesh_peers() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let na = Netns::new("nsa");
    let nb = Netns::new("nsb");
    let l = link_named(&na, &nb, 83, 1, 2);
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let _a = start(&na, "node-a", dir);
    let _b = start(&nb, "node-b", dir);

    let mesh_up = |peers: &[pb::PeerStatus]| {
        peers.iter().any(|p| {
            p.config.as_ref().is_some_and(|c| c.address == l.addr_b)
                && p.state == pb::SessionState::Established as i32
        })
    };
    wait_until("node-a's mesh session to node-b Established", 30.0, || {
        rt.block_on(list_peers(dir, "node-a"))
            .is_some_and(|p| mesh_up(&p))
    });

    let peers = rt.block_on(list_peers(dir, "node-a")).unwrap();
    assert_eq!(peers.len(), 1, "{peers:?}");
    let config = peers[0].config.as_ref().unwrap();
    assert_eq!(config.address, l.addr_b);
    assert_eq!(
        config.peer_type,
        pb::PeerType::NodeToNodeMesh as i32,
        "{peers:?}"
    );

    let mut c = rt.block_on(client(dir, "node-a")).unwrap();
    let add = rt
        .block_on(c.add_peer(pb::AddPeerRequest {
            peer: Some(pb::PeerConfig {
                address: "10.179.83.9".into(),
                remote_as: 64512,
                peer_type: pb::PeerType::Global as i32,
                ..Default::default()
            }),
        }))
        .unwrap_err();
    assert_eq!(add.code(), tonic::Code::FailedPrecondition, "{add:?}");
    assert!(
        add.message().contains("only writer") && add.message().contains("BGPPeer"),
        "{add:?}"
    );
    let originate = rt
        .block_on(c.originate(pb::OriginateRequest {
            prefixes: vec!["10.250.0.0/24".into()],
            communities: Vec::new(),
        }))
        .unwrap_err();
    assert_eq!(originate.code(), tonic::Code::FailedPrecondition);
    assert!(originate.message().contains("IPPool"), "{originate:?}");

    // The refused writes changed nothing: still the one mesh peer, up.
    let peers = rt.block_on(list_peers(dir, "node-a")).unwrap();
    assert_eq!(peers.len(), 1, "{peers:?}");
    assert!(mesh_up(&peers), "{peers:?}");
}
