//! A speaker shut down and started again in the same process (tabby-node
//! does this when the cluster's AS changes) gets its listening port back
//! at once: `shutdown` returns only after the listening socket is closed.
//! Before, the accept task was aborted after the reply, so the new bind
//! could fail with "Address already in use" and the node ran no speaker.

use std::net::{Ipv4Addr, SocketAddr};
use tabby_bgp::peer_config::{LocalConfig, PeerConfig};
use tabby_bgp::speaker::{Speaker, SpeakerConfig};

fn config(port: u16) -> SpeakerConfig {
    SpeakerConfig {
        local: LocalConfig::new(Ipv4Addr::new(127, 0, 0, 1), 64512),
        listen: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port))),
        // A configured peer so the core has something to Cease.
        peers: vec![PeerConfig::new("127.0.0.2".parse().unwrap(), 64512)],
        originate: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_speaker_binds_its_port_again_at_once() {
    // A free port, released again for the speaker to take.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut s = Speaker::start(config(port)).await.expect("first start");
    for round in 0..50 {
        s.shutdown().await.expect("shutdown");
        s = Speaker::start(config(port))
            .await
            .unwrap_or_else(|e| panic!("restart {round}: {e}"));
    }
    s.shutdown().await.expect("last shutdown");
}
